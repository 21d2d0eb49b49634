//! Against scim2-server: its `eq` filter on userName ignores case as Python's `lower()` does,
//! which takes a KELVIN SIGN for `k`; discovery reports only a user that holds the value asked
//! for, ignoring case and nothing more.

use std::sync::Arc;

use revoke_connector_scim::{ScimFactory, KIND};
use revoke_core::{Connector, ConnectorFactory, Subject};
use revoke_testkit::Scim2Server;
use serde_json::{json, Value};

fn http() -> reqwest::Client {
    revoke_http::client(std::time::Duration::from_secs(60)).expect("http client")
}

async fn create_user(url: &str, user_name: &str) -> String {
    let r = http()
        .post(format!("{url}/Users"))
        .bearer_auth(Scim2Server::TOKEN)
        .header("Content-Type", "application/scim+json")
        .body(
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": user_name,
                "active": true,
            })
            .to_string(),
        )
        .send()
        .await
        .expect("the server answers");
    assert_eq!(r.status().as_u16(), 201);
    let v: Value = r.json().await.expect("json");
    v["id"].as_str().expect("id").to_string()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn listed(url: &str, filter: &str) -> usize {
    let r = http()
        .get(format!("{url}/Users?filter={}", encode(filter)))
        .bearer_auth(Scim2Server::TOKEN)
        .send()
        .await
        .expect("the server answers");
    let v: Value = r.json().await.expect("json");
    v["Resources"].as_array().map_or(0, Vec::len)
}

fn connector(url: &str) -> Arc<dyn Connector> {
    let p = json!({"kind": KIND, "base_url": url, "token": Scim2Server::TOKEN, "timeout_secs": 5});
    ScimFactory
        .validate("connectors.app", &p)
        .expect("config is valid");
    ScimFactory.build("app", &p).expect("connector builds")
}

#[tokio::test]
async fn a_user_the_app_matched_by_a_fold_is_not_the_subject() {
    let server = Scim2Server::start().expect("scim2-server starts");
    let url = server.tenant_url("identifiers");
    let kim = create_user(&url, "kim").await;
    let c = connector(&url);

    let d = c.discover(&Subject::new("KIM")).await.expect("discover");
    assert_eq!(
        d.accounts.first().map(|a| a.id.as_str()),
        Some(kim.as_str())
    );

    for look_alike in ["\u{212A}im", "ｋｉｍ"] {
        let folds = listed(&url, &format!("userName eq \"{look_alike}\"")).await > 0;
        let d = c
            .discover(&Subject::new(look_alike))
            .await
            .expect("discover");
        assert!(
            !d.found && d.accounts.is_empty(),
            "{look_alike:?} (the app's filter folds it: {folds}) must find nothing: {d:?}"
        );
    }
    assert!(
        listed(&url, "userName eq \"\u{212A}im\"").await > 0,
        "scim2-server folds a Kelvin sign, so the check above is the connector's"
    );
}
