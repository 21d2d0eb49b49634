//! Instance variables (`[vars]`, `{{vars.<name>}}`): a value of the instance a request needs
//! (WordPress deletes a user with `reassign=<user id>`; a Mattermost alt account is the
//! username with a suffix), escaped by position like every value, recorded in the plan, and
//! checked at validation (an unknown variable is an error). Against an in-process API that
//! records raw request lines (ours, as docs/connectors.md allows).

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use revoke_connector_http::{validate, HttpConnector, KIND};
use revoke_core::{Action, Connector, JobId, MemoryJournal, Outcome, Subject};
use serde_json::{json, Value};

const DEFINITION: &str = r#"
system = "Blog"
base_url = "http://placeholder"
rate_limit = { requests = 1000, per_secs = 1 }

[vars]
reassign_to = "1"
alt_suffix = ".admin"

[resources.user]
id = "$.id"
id_kind = "user id"
name = "$.slug"

[[resources.user.discover]]
path = "/users/by-slug/{{subject.username}}"
absent = [404]

# The person's admin account: their username with the instance's suffix.
[[resources.user.discover]]
path = "/users/by-slug/{{subject.username}}{{vars.alt_suffix}}"
absent = [404]

[[resources.user.match]]
path = "$.slug"
equals = "{{subject.username}}"

[[resources.user.match]]
path = "$.slug"
equals = "{{subject.username}}{{vars.alt_suffix}}"

[[resources.user.actions]]
name = "delete"
phase = "delete"
summary = "delete {{item.slug}}, their posts to user {{vars.reassign_to}}"
request = { method = "DELETE", path = "/users/{{item.id}}", query = { reassign = "{{vars.reassign_to}}", force = "true" } }
outcomes = [{ status = [200], result = "done" }, { status = [404], result = "already_done" }]
verify = { request = { path = "/users/{{item.id}}" }, confirmed = [{ status = [404] }] }
"#;

type Seen = Arc<Mutex<Vec<String>>>;

async fn handle(State(seen): State<Seen>, method: Method, uri: Uri) -> Response {
    seen.lock().expect("seen").push(format!("{method} {uri}"));
    let users = [
        ("1", "editor"),
        ("7", "ivan"),
        ("8", "ivan.admin"),
        ("9", "ivan.administrator"),
    ];
    let path = uri.path();
    if let Some(slug) = path.strip_prefix("/users/by-slug/") {
        return match users.iter().find(|(_, s)| *s == slug) {
            Some((id, s)) => {
                axum::Json(json!({"id": id.parse::<u64>().unwrap_or(0), "slug": s})).into_response()
            }
            None => StatusCode::NOT_FOUND.into_response(),
        };
    }
    if method == Method::DELETE {
        return axum::Json(json!({"deleted": true})).into_response();
    }
    StatusCode::NOT_FOUND.into_response()
}

async fn serve() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), seen)
}

fn params(base: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let mut v = revoke_connector_http::parse_toml(DEFINITION).expect("parses");
    v["kind"] = json!(KIND);
    v["base_url"] = json!(base);
    edit(&mut v);
    v
}

async fn plan(c: &HttpConnector, who: &str) -> Vec<Action> {
    let s = Subject::new(who);
    let d = c.discover(&s).await.expect("discover");
    Action::from_proposals(&JobId("job-1".into()), "blog", &d, c.plan(&s, &d)).expect("actions")
}

#[tokio::test]
async fn a_variable_fills_a_query_value_and_finds_the_alt_account() {
    let (base, seen) = serve().await;
    let c = HttpConnector::from_params("blog", &params(&base, |_| {}))
        .unwrap_or_else(|e| panic!("{e:#?}"));
    let acts = plan(&c, "ivan").await;
    // The person and their admin account (the suffix); ivan.administrator is nobody's.
    let mut targets: Vec<&str> = acts.iter().map(|a| a.target.as_str()).collect();
    targets.sort();
    assert_eq!(targets, vec!["user/7", "user/8"]);
    let a = acts.iter().find(|a| a.target == "user/7").expect("ivan");
    assert_eq!(a.summary, "delete ivan, their posts to user 1");
    assert_eq!(
        a.params.get("vars.reassign_to").map(String::as_str),
        Some("1")
    );
    assert_eq!(
        c.apply(a, &a.key, &MemoryJournal::new())
            .await
            .expect("apply"),
        Outcome::Done
    );
    let s = seen.lock().expect("seen");
    assert!(
        s.contains(&"DELETE /users/7?force=true&reassign=1".to_string()),
        "{s:#?}"
    );
    assert!(
        s.contains(&"GET /users/by-slug/ivan.admin".to_string()),
        "{s:#?}"
    );
}

#[tokio::test]
async fn a_variable_is_escaped_by_position_like_every_value() {
    let (base, seen) = serve().await;
    let c = HttpConnector::from_params(
        "blog",
        &params(&base, |v| {
            v["vars"]["reassign_to"] = json!("1&force=false");
            v["vars"]["alt_suffix"] = json!("/../../admin?x=1#");
        }),
    )
    .unwrap_or_else(|e| panic!("{e:#?}"));
    let acts = plan(&c, "ivan").await;
    assert_eq!(acts.len(), 1, "only ivan himself");
    let a = &acts[0];
    c.apply(a, &a.key, &MemoryJournal::new())
        .await
        .expect("apply");
    let s = seen.lock().expect("seen");
    assert!(
        s.contains(&"GET /users/by-slug/ivan%2F..%2F..%2Fadmin%3Fx%3D1%23".to_string()),
        "{s:#?}"
    );
    assert!(
        s.contains(&"DELETE /users/7?force=true&reassign=1%26force%3Dfalse".to_string()),
        "{s:#?}"
    );
}

#[test]
fn an_unknown_or_misnamed_variable_is_refused_at_check_time() {
    let v = params("https://blog.example.com", |v| {
        v["resources"]["user"]["actions"][0]["request"]["query"]["reassign"] =
            json!("{{vars.reassign}}");
        v["vars"]["Bad-Name"] = json!("x");
        v["vars"]["crlf"] = json!("a\r\nb");
    });
    let issues = validate("connectors.blog", &v).expect_err("refused");
    let got: Vec<(&str, &str)> = issues
        .iter()
        .map(|i| (i.path.as_str(), i.message.as_str()))
        .collect();
    assert!(
        got.iter().any(|(p, m)| *p
            == "connectors.blog.resources.user.actions[0].request.query.reassign"
            && m.contains("alt_suffix")
            && m.contains("{{vars.reassign}}")),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|(p, _)| *p == "connectors.blog.vars.Bad-Name"),
        "{got:#?}"
    );
    assert!(
        got.iter().any(|(p, _)| *p == "connectors.blog.vars.crlf"),
        "{got:#?}"
    );
    // A definition without [vars] naming one.
    let v = params("https://blog.example.com", |v| {
        v.as_object_mut().expect("table").remove("vars");
    });
    let issues = validate("connectors.blog", &v).expect_err("refused");
    assert!(
        issues
            .iter()
            .all(|i| i.message.contains("the definition has none")),
        "{issues:#?}"
    );
    // A match rule naming only a variable is a constant: refused.
    let v = params("https://blog.example.com", |v| {
        v["resources"]["user"]["match"][1]["equals"] = json!("{{vars.alt_suffix}}");
    });
    let issues = validate("connectors.blog", &v).expect_err("refused");
    assert!(
        issues
            .iter()
            .any(|i| i.path == "connectors.blog.resources.user.match[1].equals"),
        "{issues:#?}"
    );
}
