//! The moto world the IAM tests share: a leaver with every sub-resource moto supports, a
//! bystander, and a service user the leaver owns.
#![allow(dead_code)]

pub mod engine;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use aws_sdk_iam::types::{StatusType, Tag};
use revoke_aws::{sdk_config, AccessConfig, AccountSet};
use revoke_connector_aws_iam::IamFactory;
use revoke_core::{
    Action, ActionId, Connector, ConnectorError, ConnectorFactory, JobId, Journal, MemoryJournal,
    Outcome, Phase, Subject,
};
use revoke_testkit::Moto;
use serde_json::{json, Value};

pub const INSTANCE: &str = "aws";
pub const CERT: &str = include_str!("../fixtures/signing-cert.pem");
pub const SSH_KEY: &str = include_str!("../fixtures/ssh-key.pub");

pub fn params(moto: &Moto, extra: Value) -> Value {
    let mut p = json!({
        "kind": "aws-iam",
        "endpoint_url": moto.endpoint(),
        "region": "us-east-1",
        "access_key_id": "testing",
        "secret_access_key": "testing",
    });
    if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            p.insert(k.clone(), v.clone());
        }
    }
    p
}

/// The connector keys that rotate owned keys into files under `dir`.
pub fn file_rotation(dir: &std::path::Path) -> Value {
    serde_json::json!({"rotation_destination": "file", "secrets_dir": dir.to_str()})
}

pub fn connector(moto: &Moto, extra: Value) -> Arc<dyn Connector> {
    let p = params(moto, extra);
    let f = IamFactory;
    if let Err(issues) = f.validate("connectors.aws", &p) {
        panic!("config should be valid: {issues:?}");
    }
    f.build(INSTANCE, &p).expect("build")
}

/// An IAM client for `account` (the credentials' own, or through AssumeRole), for seeding.
pub async fn iam_in(moto: &Moto, account: Option<&str>) -> aws_sdk_iam::Client {
    let access = AccessConfig::from_table(&params(
        moto,
        match account {
            Some(a) => json!({"accounts": [a]}),
            None => json!({}),
        },
    ))
    .expect("access");
    let base = sdk_config(&access).await;
    match account {
        None => aws_sdk_iam::Client::new(&base),
        Some(a) => {
            let set = AccountSet::new(base, &access, "revoked-test");
            aws_sdk_iam::Client::new(&set.config_for(a).await.expect("assume role"))
        }
    }
}

pub fn alice() -> Subject {
    let mut s = Subject::new("E1001");
    s.email = Some("alice@example.com".into());
    s.usernames.insert(INSTANCE.into(), "alice".into());
    s
}

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build().expect("tag")
}

/// What was made for a user, to find it again.
#[derive(Debug, Default, Clone)]
pub struct Seeded {
    pub keys: Vec<String>,
    pub mfa_serial: String,
    pub service_key: String,
}

/// alice (tagged with her email): two keys (one inactive), a console password, a virtual MFA
/// device, an SSH key, a signing certificate, an inline policy, an AWS managed policy, a group,
/// a permissions boundary. bob: a key and the same group. svc-ci: owner = alice, one key.
pub async fn seed(iam: &aws_sdk_iam::Client) -> Seeded {
    let mut s = Seeded::default();
    iam.create_group()
        .group_name("admins")
        .send()
        .await
        .expect("group");
    for (user, email) in [("alice", "alice@example.com"), ("bob", "bob@example.com")] {
        // moto has no PutUserPermissionsBoundary and keeps no boundary for users; real IAM does.
        let mut create = iam.create_user().user_name(user).tags(tag("email", email));
        if user == "alice" {
            create = create.permissions_boundary("arn:aws:iam::aws:policy/PowerUserAccess");
        }
        create.send().await.expect("user");
        iam.add_user_to_group()
            .group_name("admins")
            .user_name(user)
            .send()
            .await
            .expect("add to group");
    }
    iam.create_access_key()
        .user_name("bob")
        .send()
        .await
        .expect("bob key");
    for _ in 0..2 {
        let k = iam
            .create_access_key()
            .user_name("alice")
            .send()
            .await
            .expect("key");
        s.keys
            .push(k.access_key.expect("key").access_key_id().to_string());
    }
    iam.update_access_key()
        .user_name("alice")
        .access_key_id(&s.keys[1])
        .status(StatusType::Inactive)
        .send()
        .await
        .expect("deactivate");
    iam.create_login_profile()
        .user_name("alice")
        .password("Correct-Horse-1")
        .send()
        .await
        .expect("login profile");
    let mfa = iam
        .create_virtual_mfa_device()
        .virtual_mfa_device_name("alice")
        .send()
        .await
        .expect("virtual mfa");
    s.mfa_serial = mfa
        .virtual_mfa_device
        .expect("device")
        .serial_number()
        .to_string();
    iam.enable_mfa_device()
        .user_name("alice")
        .serial_number(&s.mfa_serial)
        .authentication_code1("123456")
        .authentication_code2("654321")
        .send()
        .await
        .expect("enable mfa");
    iam.upload_ssh_public_key()
        .user_name("alice")
        .ssh_public_key_body(SSH_KEY.trim())
        .send()
        .await
        .expect("ssh key");
    iam.upload_signing_certificate()
        .user_name("alice")
        .certificate_body(CERT)
        .send()
        .await
        .expect("signing certificate");
    iam.put_user_policy()
        .user_name("alice")
        .policy_name("s3-own-bucket")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::alice/*"}]}"#)
        .send()
        .await
        .expect("inline policy");
    iam.attach_user_policy()
        .user_name("alice")
        .policy_arn("arn:aws:iam::aws:policy/ReadOnlyAccess")
        .send()
        .await
        .expect("attach");
    iam.create_user()
        .user_name("svc-ci")
        .tags(tag("owner", "alice@example.com"))
        .send()
        .await
        .expect("service user");
    let k = iam
        .create_access_key()
        .user_name("svc-ci")
        .send()
        .await
        .expect("service key");
    s.service_key = k.access_key.expect("key").access_key_id().to_string();
    s
}

/// The proposals as the planner would turn them into actions (no times: all due now; no phase
/// order either: `apply_all` runs the phases in order).
pub fn actions(c: &dyn Connector, subject: &Subject, d: &revoke_core::Discovery) -> Vec<Action> {
    Action::from_proposals(&JobId("job-1".into()), INSTANCE, d, c.plan(subject, d))
        .expect("every proposal names a discovered account")
}

/// Applies every action once its dependencies are done, phase by phase, as the executor would,
/// each with its own journal (kept in `journals` across calls).
pub async fn apply_all(
    c: &dyn Connector,
    actions: &[Action],
    journals: &mut HashMap<ActionId, Arc<MemoryJournal>>,
) -> BTreeMap<ActionId, Result<Outcome, ConnectorError>> {
    let mut out: BTreeMap<ActionId, Result<Outcome, ConnectorError>> = BTreeMap::new();
    for phase in [
        Phase::Contain,
        Phase::Transfer,
        Phase::Revoke,
        Phase::Delete,
    ] {
        loop {
            let ready: Vec<&Action> = actions
                .iter()
                .filter(|a| a.phase == phase && !out.contains_key(&a.id))
                .filter(|a| {
                    a.depends_on
                        .iter()
                        .all(|d| matches!(out.get(d), Some(Ok(_))))
                })
                .collect();
            if ready.is_empty() {
                break;
            }
            for a in ready {
                let j = journals.entry(a.id.clone()).or_default().clone();
                let r = c.apply(a, &a.key, j.as_ref() as &dyn Journal).await;
                out.insert(a.id.clone(), r);
            }
        }
    }
    out
}

/// dana@example.org as `revokectl plan --user` makes her: only an id, whatever was typed.
pub fn typed(id: &str) -> Subject {
    Subject::new(id)
}

/// What dana's world holds, to find it again.
#[derive(Debug, Default, Clone)]
pub struct Dana {
    pub dana_id: String,
    pub dana_key: String,
    pub admin_id: String,
    pub admin_key: String,
    pub svc_key: String,
}

/// dana (tagged `email = dana@example.org`): an active key, a console password, an inline
/// policy, an AWS managed policy, the group engineers. admin, a break-glass user tagged
/// `owner = dana@example.org` (protected in the tests that say so): one key. svc-build, a
/// service user tagged `owner = Dana@Example.org`: one key. bob: a bystander in engineers.
pub async fn seed_dana(iam: &aws_sdk_iam::Client) -> Dana {
    let mut w = Dana::default();
    iam.create_group()
        .group_name("engineers")
        .send()
        .await
        .expect("group");
    for (user, k, v) in [
        ("dana", "email", "dana@example.org"),
        ("admin", "owner", "dana@example.org"),
        ("svc-build", "owner", "Dana@Example.org"),
        ("bob", "email", "bob@example.org"),
    ] {
        let u = iam
            .create_user()
            .user_name(user)
            .tags(tag(k, v))
            .send()
            .await
            .expect("user");
        let id = u.user.expect("user").user_id().to_string();
        let key = iam
            .create_access_key()
            .user_name(user)
            .send()
            .await
            .expect("key")
            .access_key
            .expect("key")
            .access_key_id()
            .to_string();
        match user {
            "dana" => (w.dana_id, w.dana_key) = (id, key),
            "admin" => (w.admin_id, w.admin_key) = (id, key),
            "svc-build" => w.svc_key = key,
            _ => {}
        }
    }
    for user in ["dana", "bob"] {
        iam.add_user_to_group()
            .group_name("engineers")
            .user_name(user)
            .send()
            .await
            .expect("add to group");
    }
    iam.create_login_profile()
        .user_name("dana")
        .password("Correct-Horse-1")
        .send()
        .await
        .expect("login profile");
    iam.put_user_policy()
        .user_name("dana")
        .policy_name("dana-s3")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::dana/*"}]}"#)
        .send()
        .await
        .expect("inline policy");
    iam.attach_user_policy()
        .user_name("dana")
        .policy_arn("arn:aws:iam::aws:policy/ReadOnlyAccess")
        .send()
        .await
        .expect("attach");
    w
}

/// The mutating IAM calls that name `user` (any case), in order, as `Action Param`.
pub fn mutations_on(calls: &[revoke_testkit::AwsCall], user: &str) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.service == "iam" && !c.is_read())
        .filter(|c| {
            c.param("UserName")
                .is_some_and(|u| u.eq_ignore_ascii_case(user))
        })
        .map(|c| {
            let detail = ["AccessKeyId", "PolicyName", "PolicyArn", "GroupName"]
                .iter()
                .find_map(|k| c.param(k))
                .unwrap_or("");
            format!("{} {detail}", c.action).trim().to_string()
        })
        .collect()
}
