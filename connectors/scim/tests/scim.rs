//! The SCIM connector against scim2-server (one server per test binary, one tenant per test).
//!
//! Writes are counted, and ETags made stale on purpose, by a small proxy in this file between the
//! connector and scim2-server: it forwards every request and, when told to, changes the resource
//! behind the connector's back just before forwarding a conditional write.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use revoke_connector_scim::{
    ScimFactory, DEACTIVATE_USER, DELETE_USER, GROUP_MEMBERSHIP, KIND, REMOVE_GROUP_MEMBER,
    SCIM_USER,
};
use revoke_core::{
    Action, Connector, ConnectorFactory, Discovery, JobId, MemoryJournal, Outcome, ProposedAction,
    Subject, Verdict,
};
use revoke_testkit::Scim2Server;
use serde_json::{json, Value};

const INSTANCE: &str = "app";

fn server() -> &'static Scim2Server {
    static SERVER: OnceLock<Scim2Server> = OnceLock::new();
    SERVER.get_or_init(|| Scim2Server::start().expect("scim2-server starts"))
}

fn http() -> reqwest::Client {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("tls versions")
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .expect("http client")
}

/// One tenant of scim2-server, with helpers to seed and read it directly (not through the proxy).
struct Tenant {
    url: String,
    http: reqwest::Client,
}

impl Tenant {
    fn new(name: &str) -> Self {
        Self {
            url: server().tenant_url(name),
            http: http(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(Scim2Server::TOKEN);
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/scim+json")
                .body(b.to_string());
        }
        let r = req.send().await.expect("scim2-server answers");
        let status = r.status().as_u16();
        let bytes = r.bytes().await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn user(&self, user_name: &str, email: Option<&str>) -> String {
        let mut body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": user_name, "active": true,
        });
        if let Some(e) = email {
            body["emails"] = json!([{"value": e, "primary": true}]);
        }
        let (status, v) = self.call(reqwest::Method::POST, "/Users", Some(body)).await;
        assert_eq!(status, 201, "create user {user_name:?}: {v}");
        v["id"].as_str().expect("id").to_string()
    }

    async fn group(&self, name: &str, members: &[&str]) -> String {
        let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": name, "members": members,
        });
        let (status, v) = self
            .call(reqwest::Method::POST, "/Groups", Some(body))
            .await;
        assert_eq!(status, 201, "create group {name}: {v}");
        v["id"].as_str().expect("id").to_string()
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }
}

fn params(url: &str, extra: Value) -> Value {
    let mut p =
        json!({"kind": KIND, "base_url": url, "token": Scim2Server::TOKEN, "timeout_secs": 5});
    if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    p
}

fn connector(url: &str, extra: Value) -> Arc<dyn Connector> {
    let p = params(url, extra);
    ScimFactory
        .validate(&format!("connectors.{INSTANCE}"), &p)
        .expect("config is valid");
    ScimFactory.build(INSTANCE, &p).expect("connector builds")
}

/// The proposals as actions, the way the planner makes them.
fn actions(d: &Discovery, proposals: Vec<ProposedAction>) -> Vec<Action> {
    Action::from_proposals(&JobId("job-1".into()), INSTANCE, d, proposals)
        .expect("the proposals name discovered accounts")
}

/// Discovers `s` and plans it: the actions as the planner would make them.
async fn plan_actions(c: &dyn Connector, s: &Subject) -> Vec<Action> {
    let d = c.discover(s).await.expect("discover");
    actions(&d, c.plan(s, &d))
}

async fn apply(c: &dyn Connector, a: &Action) -> Outcome {
    c.apply(a, &a.key, &MemoryJournal::new())
        .await
        .unwrap_or_else(|e| panic!("{} {}: {e}", a.kind, a.target))
}

fn alice() -> Subject {
    let mut s = Subject::new("alice");
    s.email = Some("alice@example.com".into());
    s
}

/// A proxy in front of scim2-server that counts writes and can make ETags stale.
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    writes: Mutex<Vec<String>>,
    /// How many conditional writes still get the resource changed just before they are forwarded.
    meddle: AtomicU32,
}

impl Proxy {
    async fn start(upstream: &str) -> (Arc<Proxy>, String) {
        let proxy = Arc::new(Proxy {
            upstream: upstream.to_string(),
            http: http(),
            writes: Mutex::new(vec![]),
            meddle: AtomicU32::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(proxy.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (proxy, format!("http://{addr}"))
    }

    fn writes(&self) -> Vec<String> {
        self.writes.lock().expect("lock").clone()
    }
}

async fn forward(State(p): State<Arc<Proxy>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map(|x| x.to_string())
        .unwrap_or_default();
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .expect("request body");
    if method != axum::http::Method::GET {
        p.writes
            .lock()
            .expect("lock")
            .push(format!("{method} {path}"));
        let left = headers
            .contains_key("if-match")
            .then(|| {
                p.meddle
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .ok()
            })
            .flatten();
        if let Some(left) = left {
            // Someone else edits the resource between the connector's read and its write (a new
            // value each time: scim2-server keeps the version when nothing changes).
            let edit = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "displayName", "value": format!("edited meanwhile {path} {left}")}]});
            let r = p
                .http
                .patch(format!("{}{path}", p.upstream))
                .bearer_auth(Scim2Server::TOKEN)
                .header("Content-Type", "application/scim+json")
                .body(edit.to_string())
                .send()
                .await
                .expect("meddle");
            assert!(r.status().is_success(), "meddling edit: {}", r.status());
        }
    }
    let mut up = p
        .http
        .request(method, format!("{}{path}", p.upstream))
        .body(body.to_vec());
    for name in ["authorization", "content-type", "if-match", "accept"] {
        if let Some(v) = headers.get(name) {
            up = up.header(name, v.clone());
        }
    }
    let r = up.send().await.expect("upstream answers");
    let mut out = Response::builder().status(r.status().as_u16());
    for name in ["content-type", "etag", "retry-after"] {
        if let Some(v) = r.headers().get(name) {
            out = out.header(name, v.clone());
        }
    }
    out.body(Body::from(r.bytes().await.expect("upstream body")))
        .expect("response")
}

/// The plan with server ids replaced by names, for the snapshot.
fn render(proposals: &[ProposedAction], names: &[(&str, &str)]) -> Value {
    let redact = |s: &str| {
        names.iter().fold(s.to_string(), |s, (id, name)| {
            s.replace(id, &format!("<{name}>"))
        })
    };
    let mut sorted: Vec<&ProposedAction> = proposals.iter().collect();
    sorted.sort_by_key(|p| (p.phase, redact(&p.target)));
    Value::Array(
        sorted
            .into_iter()
            .map(|p| {
                let mut after: Vec<String> = p
                    .after
                    .iter()
                    .map(|(k, t)| format!("{} {}", k.0, redact(t)))
                    .collect();
                after.sort();
                json!({
                    "kind": p.kind.0, "target": redact(&p.target), "phase": format!("{:?}", p.phase),
                    "after": after,
                    "account": redact(&p.account), "summary": redact(&p.summary),
                    "params": p.params.iter().map(|(k, v)| (k.clone(), Value::String(redact(v)))).collect::<serde_json::Map<_, _>>(),
                })
            })
            .collect(),
    )
}

fn finding<'a>(d: &'a Discovery, kind: &str) -> Vec<&'a revoke_core::Finding> {
    d.findings.iter().filter(|f| f.kind == kind).collect()
}

#[tokio::test]
async fn discovery_by_user_name_and_by_email() {
    let t = Tenant::new("discovery");
    let alice_id = t.user("alice", Some("alice@example.com")).await;
    let bob_id = t.user("bob", Some("bob@example.com")).await;
    let eng = t.group("eng", &[&alice_id, &bob_id]).await;
    t.group("ops", &[&bob_id]).await;
    let c = connector(&t.url, json!({}));

    let d = c.discover(&alice()).await.expect("discover");
    assert!(d.found);
    let user = finding(&d, SCIM_USER);
    assert_eq!(user.len(), 1);
    assert_eq!(user[0].target, alice_id);
    assert_eq!(user[0].attrs["userName"], "alice");
    assert_eq!(user[0].attrs["active"], "true");
    assert_eq!(user[0].attrs["email"], "alice@example.com");
    assert_eq!(user[0].attrs["matched_by"], "userName");
    let groups = finding(&d, GROUP_MEMBERSHIP);
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].target, eng);
    assert_eq!(groups[0].attrs["display"], "eng");

    // Known to HR by another id: found by email.
    let mut by_mail = Subject::new("E1234");
    by_mail.email = Some("ALICE@example.com".into());
    let d = c.discover(&by_mail).await.expect("discover");
    assert_eq!(finding(&d, SCIM_USER)[0].target, alice_id);
    assert_eq!(finding(&d, SCIM_USER)[0].attrs["matched_by"], "emails");

    // match_by = userName only: the email is not tried.
    let c2 = connector(&t.url, json!({"match_by": "userName"}));
    assert!(!c2.discover(&by_mail).await.expect("discover").found);
    // A username per instance wins over the subject id.
    let mut mapped = Subject::new("E1234");
    mapped.usernames.insert(INSTANCE.into(), "bob".into());
    assert_eq!(
        finding(&c2.discover(&mapped).await.expect("discover"), SCIM_USER)[0].target,
        bob_id
    );
    assert!(
        !c.discover(&Subject::new("nobody"))
            .await
            .expect("discover")
            .found
    );

    // discover_many keeps the order.
    let many = c
        .discover_many(&[Subject::new("bob"), Subject::new("nobody"), alice()])
        .await
        .expect("discover_many");
    let found: Vec<bool> = many.iter().map(|d| d.found).collect();
    assert_eq!(found, [true, false, true]);
}

#[tokio::test]
async fn plan_snapshot() {
    let t = Tenant::new("plan");
    let alice_id = t.user("alice", Some("alice@example.com")).await;
    let eng = t.group("eng", &[&alice_id]).await;
    let ops = t.group("ops", &[&alice_id]).await;
    let c = connector(&t.url, json!({}));
    let d = c.discover(&alice()).await.expect("discover");
    let p = c.plan(&alice(), &d);
    insta::assert_json_snapshot!(
        "plan",
        render(&p, &[(&alice_id, "alice"), (&eng, "eng"), (&ops, "ops")])
    );
}

#[tokio::test]
async fn apply_end_to_end_then_an_idempotent_rerun_sends_no_write() {
    let t = Tenant::new("e2e");
    let alice_id = t.user("alice", Some("alice@example.com")).await;
    let bob_id = t.user("bob", None).await;
    let eng = t.group("eng", &[&alice_id, &bob_id]).await;
    let (proxy, url) = Proxy::start(&t.url).await;
    let c = connector(&url, json!({}));

    let acts = plan_actions(&*c, &alice()).await;
    let kinds: Vec<&str> = acts.iter().map(|a| a.kind.0.as_str()).collect();
    assert_eq!(kinds, [DEACTIVATE_USER, REMOVE_GROUP_MEMBER, DELETE_USER]);

    assert_eq!(apply(&*c, &acts[0]).await, Outcome::Done);
    let (_, user) = t.get(&format!("/Users/{alice_id}")).await;
    assert_eq!(user["active"], false);

    assert_eq!(apply(&*c, &acts[1]).await, Outcome::Done);
    let (_, group) = t.get(&format!("/Groups/{eng}")).await;
    let members: Vec<&str> = group["members"]
        .as_array()
        .map(|m| m.iter().filter_map(|m| m["value"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(members, [bob_id.as_str()], "bob stays");

    assert_eq!(apply(&*c, &acts[2]).await, Outcome::Done);
    assert_eq!(t.get(&format!("/Users/{alice_id}")).await.0, 404);
    for a in &acts {
        assert_eq!(
            c.verify(a).await.expect("verify"),
            Verdict::Confirmed,
            "{}",
            a.kind
        );
    }
    // ServiceProviderConfig says etag: every write carried If-Match (checked by the stale test).
    assert_eq!(proxy.writes().len(), 3, "{:?}", proxy.writes());

    // The rerun: every action is already done, and not one PATCH or DELETE is sent.
    for a in &acts {
        assert_eq!(apply(&*c, a).await, Outcome::AlreadyDone, "{}", a.kind);
    }
    assert_eq!(proxy.writes().len(), 3, "{:?}", proxy.writes());
    // Nothing left to discover.
    assert!(!c.discover(&alice()).await.expect("discover").found);
}

#[tokio::test]
async fn value_form_and_no_delete() {
    let t = Tenant::new("valueform");
    let alice_id = t.user("alice", None).await;
    let c = connector(
        &t.url,
        json!({"deactivate_form": "value", "delete_users": false, "groups": false}),
    );
    let acts = plan_actions(&*c, &alice()).await;
    let kinds: Vec<&str> = acts.iter().map(|a| a.kind.0.as_str()).collect();
    assert_eq!(kinds, [DEACTIVATE_USER]);
    assert_eq!(acts[0].params["form"], "value");
    assert_eq!(apply(&*c, &acts[0]).await, Outcome::Done);
    assert_eq!(
        t.get(&format!("/Users/{alice_id}")).await.1["active"],
        false
    );
    assert_eq!(apply(&*c, &acts[0]).await, Outcome::AlreadyDone);
    // Discovered again: inactive, so nothing to plan.
    assert!(c
        .plan(&alice(), &c.discover(&alice()).await.expect("discover"))
        .is_empty());
}

#[tokio::test]
async fn a_stale_etag_is_read_again_once_then_left_to_the_executor() {
    let t = Tenant::new("stale");
    t.user("alice", None).await;
    let (proxy, url) = Proxy::start(&t.url).await;
    let c = connector(&url, json!({"groups": false}));
    let acts = plan_actions(&*c, &alice()).await;
    let deactivate = &acts[0];

    // Changed once between read and write: 412, read again, written.
    proxy.meddle.store(1, Ordering::SeqCst);
    assert_eq!(apply(&*c, deactivate).await, Outcome::Done);
    let patches = proxy
        .writes()
        .iter()
        .filter(|w| w.starts_with("PATCH"))
        .count();
    assert_eq!(patches, 2, "{:?}", proxy.writes());

    // Changed before every write: two 412s, then a retryable error for the executor.
    let delete = acts
        .iter()
        .find(|a| a.kind.0 == DELETE_USER)
        .expect("delete");
    proxy.meddle.store(5, Ordering::SeqCst);
    let e = match c.apply(delete, &delete.key, &MemoryJournal::new()).await {
        Err(e) => e,
        Ok(o) => panic!(
            "stale twice, expected an error, found {o:?}; writes {:?}",
            proxy.writes()
        ),
    };
    assert_eq!(
        (e.class.name(), e.code.as_str()),
        ("retryable", "precondition_failed"),
        "{e}"
    );
    assert_eq!(
        proxy.meddle.load(Ordering::SeqCst),
        3,
        "exactly two conditional writes"
    );
    proxy.meddle.store(0, Ordering::SeqCst);
    assert_eq!(apply(&*c, delete).await, Outcome::Done);
}

#[tokio::test]
async fn hostile_names_find_nothing_or_exactly_their_user() {
    let t = Tenant::new("hostile");
    let names = [
        r#"quo"te"#,
        "paren)s",
        r"back\slash",
        "*)(uid=*",
        "../x",
        r#"x" or userName pr or "y"#,
    ];
    let mut ids = vec![];
    for n in names {
        ids.push(t.user(n, None).await);
    }
    let plain = t.user("plain", None).await;
    let c = connector(&t.url, json!({"match_by": ["userName"]}));
    for (n, id) in names.iter().zip(&ids) {
        let d = c.discover(&Subject::new(*n)).await.expect("discover");
        let u = finding(&d, SCIM_USER);
        assert_eq!(u.len(), 1, "{n}");
        assert_eq!(&u[0].target, id, "{n}");
    }
    for n in [
        "*",
        r#"" or userName pr or ""#,
        r#"plain" or "1"="1"#,
        "pla*",
        r"plain\",
        "plain)",
    ] {
        let d = c.discover(&Subject::new(n)).await.expect("discover");
        assert!(!d.found, "{n} found {:?}", d.findings);
    }
    assert_eq!(
        finding(
            &c.discover(&Subject::new("plain")).await.expect("discover"),
            SCIM_USER
        )[0]
        .target,
        plain
    );
    // An id from the server is one path segment: `../x` as an id cannot reach another resource.
    let acts = plan_actions(&*c, &Subject::new("../x")).await;
    assert_eq!(apply(&*c, &acts[0]).await, Outcome::Done);
}

#[tokio::test]
async fn wrong_token_is_an_auth_error() {
    let t = Tenant::new("auth");
    let p = json!({"kind": KIND, "base_url": t.url, "token": "wrong-token"});
    let c = ScimFactory.build(INSTANCE, &p).expect("builds");
    let e = c.check().await.expect_err("wrong token");
    assert_eq!(e.class.name(), "auth", "{e}");
    assert!(!e.to_string().contains("wrong-token"), "{e}");
    let e = c.discover(&alice()).await.expect_err("wrong token");
    assert_eq!(
        (e.class.name(), e.code.as_str()),
        ("auth", "unauthorized"),
        "{e}"
    );
}

#[tokio::test]
async fn bad_config_messages() {
    let issues = ScimFactory
        .validate(
            "connectors.app",
            &json!({"kind": "scim", "base_url": "scim.example.com", "username": "svc",
                    "password": "", "match_by": ["email"], "deactivate_form": "soft",
                    "groups": "yes", "extra": 1}),
        )
        .expect_err("invalid");
    let lines: Vec<String> = issues.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "connectors.app.base_url: expected the SCIM root as an http(s) url (it must start with https:// or http://), found \"scim.example.com\"",
            "connectors.app.deactivate_form: expected path or value, found \"soft\"",
            "connectors.app.extra: unknown key; expected one of base_url, token, username, password, match_by, deactivate_form, delete_users, groups, timeout_secs, read_concurrency",
            "connectors.app.groups: expected true or false, found \"yes\"",
            "connectors.app.match_by: expected userName or emails, found \"email\"",
            "connectors.app.password: expected a password, found an empty string",
        ]
    );
}
