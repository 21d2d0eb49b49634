//! The Canaille stand-in: it starts, issues a token, and has the habits the SCIM connector's
//! tests rely on (ignored filters, 500 on `count`, members named by userName, empty groups
//! without `members`, only `replace` takes a member out).

use revoke_testkit::Canaille;
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

struct Api<'a> {
    c: &'a Canaille,
    http: reqwest::Client,
}

impl Api<'_> {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.c.scim_url()))
            .bearer_auth(self.c.token());
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/scim+json")
                .body(b.to_string());
        }
        let r = req.send().await.expect("canaille answers");
        let status = r.status().as_u16();
        let bytes = r.bytes().await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn user(&self, name: &str) -> String {
        let (s, v) = self
            .call(
                reqwest::Method::POST,
                "/Users",
                Some(json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": name, "active": true,
                    "name": {"formatted": name, "familyName": name},
                    "emails": [{"value": format!("{name}@example.org")}],
                })),
            )
            .await;
        assert_eq!(s, 201, "create {name}: {v}");
        v["id"].as_str().expect("id").to_string()
    }
}

#[tokio::test]
async fn canaille_has_the_habits_the_scim_tests_rely_on() {
    let c = Canaille::start().expect("canaille starts");
    let api = Api {
        c: &c,
        http: client(),
    };
    assert!(c.scim_url().starts_with("http://127.0.0.1:"));
    let dave = api.user("tk-dave").await;
    let erin = api.user("tk-erin").await;

    // The token is checked.
    let r = api
        .http
        .get(format!("{}/Users", c.scim_url()))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status().as_u16(), 401, "{}", c.log());

    // Filters are ignored; count is a 500.
    let (s, v) = api
        .call(
            reqwest::Method::GET,
            "/Users?filter=userName%20eq%20%22tk-dave%22",
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["totalResults"], 2, "{v}");
    let (s, _) = api
        .call(reqwest::Method::GET, "/Users?startIndex=1&count=10", None)
        .await;
    assert_eq!(s, 500);

    // Members are named by userName, with a $ref that is the user's location.
    let r = |id: &str| format!("{}/Users/{id}", c.scim_url());
    let (s, g) = api
        .call(
            reqwest::Method::POST,
            "/Groups",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "tk-eng",
                "members": [{"value": dave, "$ref": r(&dave)}, {"value": erin, "$ref": r(&erin)}],
            })),
        )
        .await;
    assert_eq!(s, 201, "{g}");
    let gid = g["id"].as_str().expect("group id").to_string();
    let values: Vec<&str> = g["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["value"].as_str())
        .collect();
    assert_eq!(values, ["tk-dave", "tk-erin"]);
    let (_, u) = api
        .call(reqwest::Method::GET, &format!("/Users/{dave}"), None)
        .await;
    assert_eq!(g["members"][0]["$ref"], u["meta"]["location"]);
    assert_eq!(u["groups"][0]["value"], gid.as_str(), "{u}");
    let (s, by_name) = api.call(reqwest::Method::GET, "/Users/tk-dave", None).await;
    assert_eq!((s, by_name["id"].as_str()), (200, Some(dave.as_str())));

    // Only a replace of members takes one out.
    let patch = |op: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [op]});
    let path = format!("/Groups/{gid}");
    let (s, _) = api
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(patch(
                json!({"op": "remove", "path": "members[value eq \"tk-dave\"]"}),
            )),
        )
        .await;
    assert_eq!(s, 500);
    let (s, _) = api
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(patch(
                json!({"op": "remove", "path": "members", "value": [{"value": "tk-dave"}]}),
            )),
        )
        .await;
    assert_eq!(s, 400);
    let (s, v) = api
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(patch(
                json!({"op": "replace", "path": "members", "value": [{"value": "tk-erin"}]}),
            )),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["members"].as_array().map(Vec::len), Some(1));

    // Deleting the last member leaves a group without members.
    let (s, _) = api
        .call(reqwest::Method::DELETE, &format!("/Users/{erin}"), None)
        .await;
    assert_eq!(s, 204);
    let (_, v) = api.call(reqwest::Method::GET, &path, None).await;
    assert!(v.get("members").is_none(), "{v}");
    let (s, _) = api
        .call(reqwest::Method::DELETE, &format!("/Users/{erin}"), None)
        .await;
    assert_eq!(s, 404);
}
