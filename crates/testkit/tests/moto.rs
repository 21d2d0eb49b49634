//! Checks the moto stand-in against the real moto_server: recording, reset, and the IAM order checker

#![allow(clippy::unwrap_used)]

use revoke_testkit::moto::{actions, calls_named, count_calls, CallCounts};
use revoke_testkit::{iam_order_violations, AwsCall, Moto};

fn seed_alice(moto: &Moto) {
    moto.iam("CreateUser", &[("UserName", "alice")]).unwrap();
    moto.iam("CreateGroup", &[("GroupName", "admins")]).unwrap();
    moto.iam(
        "AddUserToGroup",
        &[("UserName", "alice"), ("GroupName", "admins")],
    )
    .unwrap();
    moto.iam("CreateAccessKey", &[("UserName", "alice")])
        .unwrap();
}

/// The AccessKeyId in a CreateAccessKey or ListAccessKeys answer
fn access_key_id(xml: &str) -> String {
    let start = xml.find("<AccessKeyId>").expect("an AccessKeyId") + "<AccessKeyId>".len();
    let end = start + xml[start..].find('<').unwrap();
    xml[start..end].to_owned()
}

#[test]
fn moto_deletes_a_user_real_iam_would_refuse_and_the_checker_reports_it() {
    let moto = Moto::start().expect("moto should start");
    seed_alice(&moto);
    // moto accepts this; real IAM answers DeleteConflict.
    moto.iam("DeleteUser", &[("UserName", "alice")])
        .expect("moto is lenient about DeleteUser");
    let err = moto.iam("GetUser", &[("UserName", "alice")]).unwrap_err();
    assert!(err.to_string().contains("NoSuchEntity"), "{err}");

    let calls = moto.recorded().unwrap();
    assert_eq!(
        actions(&calls),
        [
            "CreateUser",
            "CreateGroup",
            "AddUserToGroup",
            "CreateAccessKey",
            "DeleteUser",
            "GetUser"
        ]
    );
    let delete = calls_named(&calls, "DeleteUser").next().unwrap();
    assert_eq!(delete.service, "iam");
    assert_eq!(delete.access_key, Moto::ACCESS_KEY_ID);
    assert_eq!(delete.param("UserName"), Some("alice"));
    assert_eq!(delete.param("Version"), Some("2010-05-08"));
    assert_eq!(
        count_calls(&calls),
        CallCounts {
            reads: 1,
            mutations: 5
        }
    );
    assert_eq!(
        iam_order_violations(&calls),
        [
            "DeleteUser alice while it still had: 1 access key(s), group admins",
            "group admins still lists alice after DeleteUser alice",
        ],
        "moto's log:\n{}",
        moto.log()
    );
}

#[test]
fn the_real_order_passes_and_reset_forgets_state_and_recording() {
    let moto = Moto::start().expect("moto should start");
    seed_alice(&moto);
    moto.iam(
        "GetPolicy",
        &[("PolicyArn", "arn:aws:iam::aws:policy/ReadOnlyAccess")],
    )
    .expect("MOTO_IAM_LOAD_MANAGED_POLICIES should load the AWS managed policies");

    let keys = moto
        .iam("ListAccessKeys", &[("UserName", "alice")])
        .unwrap();
    let key = access_key_id(&keys);
    moto.iam(
        "DeleteAccessKey",
        &[("UserName", "alice"), ("AccessKeyId", &key)],
    )
    .unwrap();
    moto.iam(
        "RemoveUserFromGroup",
        &[("UserName", "alice"), ("GroupName", "admins")],
    )
    .unwrap();
    moto.iam("DeleteUser", &[("UserName", "alice")]).unwrap();
    let calls = moto.recorded().unwrap();
    assert_eq!(iam_order_violations(&calls), Vec::<String>::new());
    assert_eq!(calls.len(), 9, "{:?}", actions(&calls));

    moto.reset().unwrap();
    assert_eq!(moto.recorded().unwrap(), Vec::<AwsCall>::new());
    let err = moto
        .iam("GetGroup", &[("GroupName", "admins")])
        .unwrap_err();
    assert!(err.to_string().contains("NoSuchEntity"), "{err}");
    // data.json answers 500 once an IAM user was deleted, until a reset.
    let data = moto
        .data()
        .expect("data.json should work again after a reset");
    assert_eq!(data["iam"]["Group"].as_array().map(Vec::len), Some(0));
}

#[test]
fn recording_can_be_paused_and_cleared() {
    let moto = Moto::start().expect("moto should start");
    moto.stop_recording().unwrap();
    moto.iam("CreateUser", &[("UserName", "seeded")]).unwrap();
    moto.start_recording().unwrap();
    moto.iam("GetUser", &[("UserName", "seeded")]).unwrap();
    assert_eq!(actions(&moto.recorded().unwrap()), ["GetUser"]);
    moto.clear_recording().unwrap();
    assert_eq!(moto.recorded().unwrap(), Vec::<AwsCall>::new());
    assert!(moto.endpoint().starts_with("http://127.0.0.1:"));
}

#[tokio::test]
async fn json_protocol_calls_are_decoded_from_an_async_test() {
    let moto = Moto::start().expect("moto should start");
    // An Organizations call as an SDK sends it, over a plain socket.
    let body = r#"{"FeatureSet":"ALL"}"#;
    let request = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: AWSOrganizationsV20161128.CreateOrganization\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=AKIDORGS/20260101/us-east-1/organizations/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", moto.port()))
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let calls = moto.recorded().unwrap();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].service, "organizations");
    assert_eq!(calls[0].action, "CreateOrganization");
    assert_eq!(calls[0].access_key, "AKIDORGS");
    assert_eq!(calls[0].param("FeatureSet"), Some("ALL"));
    assert!(!calls[0].is_read());

    let data = moto.data().unwrap();
    let orgs = &data["organizations"]["FakeOrganization"];
    assert_eq!(orgs.as_array().map(Vec::len), Some(1), "{orgs}");
    assert_eq!(orgs[0]["feature_set"], "ALL", "{orgs}");
}

#[test]
fn authorization_can_be_turned_on_and_off_and_users_get_keys_for_it() {
    let moto = Moto::start().expect("moto should start");
    let (key, secret) = moto
        .user_with_policy(
            "reader",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:GetUser","Resource":"*"}]}"#,
        )
        .unwrap();
    assert!(key.starts_with("AKIA"), "{key}");
    assert!(secret.len() >= 20);
    let policy = moto
        .iam(
            "GetUserPolicy",
            &[("UserName", "reader"), ("PolicyName", "test-policy")],
        )
        .unwrap();
    assert!(
        policy.contains("iam%3AGetUser") || policy.contains("iam:GetUser"),
        "{policy}"
    );

    moto.enable_auth().unwrap();
    // The testkit's own requests carry a key moto never issued: refused now.
    let err = moto.iam("GetUser", &[("UserName", "reader")]).unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    moto.disable_auth().unwrap();
    moto.iam("GetUser", &[("UserName", "reader")])
        .expect("open again");
}
