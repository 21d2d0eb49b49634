//! The scim2-server stand-in: it starts, checks the token, and keeps tenants apart.

use revoke_testkit::Scim2Server;
use serde_json::{json, Value};

fn client() -> reqwest::Client {
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("tls versions")
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .expect("client")
}

#[tokio::test]
async fn tenants_are_separate_and_the_token_is_checked() {
    let scim = Scim2Server::start().expect("scim2-server starts");
    let http = client();
    let (a, b) = (scim.tenant_url("tenant-a"), scim.tenant_url("tenant-b"));
    assert!(a.starts_with("http://127.0.0.1:") && a.ends_with("/tenant-a/v2"));

    let created = http
        .post(format!("{a}/Users"))
        .bearer_auth(Scim2Server::TOKEN)
        .header("Content-Type", "application/scim+json")
        .body(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "alice"})
                .to_string(),
        )
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201, "{}", scim.log());

    let count = |url: String| {
        let http = http.clone();
        async move {
            let r = http
                .get(format!("{url}/Users"))
                .bearer_auth(Scim2Server::TOKEN)
                .send()
                .await
                .expect("list");
            assert_eq!(r.status(), 200);
            let v: Value = serde_json::from_slice(&r.bytes().await.expect("body")).expect("json");
            v["totalResults"].as_u64().expect("totalResults")
        }
    };
    assert_eq!(count(a.clone()).await, 1);
    assert_eq!(count(b).await, 0);

    let denied = http
        .get(format!("{a}/Users"))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("list");
    assert_eq!(denied.status(), 401);
}
