//! The SCIM connector against two real SCIM servers: scim2-server (one server per test binary,
//! a tenant per test) and Canaille (one server per test binary, shared: each test prefixes the
//! names it makes). Most test bodies run on both (`on_both!`): scim2-server follows RFC 7643
//! (members by id, no `groups` on users, 204 answers), Canaille does not (members by userName,
//! filters ignored, 500 on `count`, only `replace` removes a member, 200 answers).
//!
//! Writes are counted, ETags made stale on purpose, filters dropped and users' `groups` hidden
//! by a small proxy in this file between the connector and the server: it forwards every request
//! and, when told to, changes the resource behind the connector's back just before forwarding a
//! conditional write.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use revoke_connector_scim::{
    ScimFactory, DEACTIVATE_USER, DELETE_USER, GROUP_MEMBERSHIP, ID_KIND, KIND,
    REMOVE_GROUP_MEMBER, SCIM_USER,
};
use revoke_core::{
    Action, ClientDomain, Connector, ConnectorFactory, Discovery, JobId, MemoryJournal, Outcome,
    ProposedAction, Subject, Verdict,
};
use revoke_testkit::{Canaille, Scim2Server};
use serde_json::{json, Value};

const INSTANCE: &str = "app";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn scim2() -> &'static Scim2Server {
    static SERVER: OnceLock<Scim2Server> = OnceLock::new();
    SERVER.get_or_init(|| Scim2Server::start().expect("scim2-server starts"))
}

fn canaille() -> &'static Canaille {
    static SERVER: OnceLock<Canaille> = OnceLock::new();
    SERVER.get_or_init(|| Canaille::start().expect("canaille starts"))
}

fn http() -> reqwest::Client {
    revoke_http::client(std::time::Duration::from_secs(60)).expect("http client")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Scim2,
    Canaille,
}

/// One test's app on one server, with helpers to seed and read it directly (not through the
/// proxy).
struct App {
    server: Server,
    url: String,
    token: String,
    /// Prefixes names on a shared server (Canaille), so tests running at once stay apart.
    prefix: String,
    http: reqwest::Client,
}

impl App {
    fn new(server: Server, test: &str) -> Self {
        let (url, token, prefix) = match server {
            Server::Scim2 => (
                scim2().tenant_url(test),
                Scim2Server::TOKEN.to_string(),
                String::new(),
            ),
            Server::Canaille => (
                canaille().scim_url(),
                canaille().token().to_string(),
                format!("{test}-"),
            ),
        };
        Self {
            server,
            url,
            token,
            prefix,
            http: http(),
        }
    }

    /// A userName or group name unique to this test on its server.
    fn n(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn mail(&self, local: &str) -> String {
        format!("{}{local}@example.com", self.prefix)
    }

    /// A subject known by its username and email.
    fn subject(&self, name: &str) -> Subject {
        let mut s = Subject::new(self.n(name));
        s.email = Some(self.mail(name));
        s
    }

    /// The connector options this server needs (documented in docs/connectors/scim.md), with
    /// the test's own.
    fn options(&self, extra: Value) -> Value {
        let mut p = match self.server {
            Server::Scim2 => json!({}),
            Server::Canaille => json!({"page_size": 0, "member_removal": "replace"}),
        };
        if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        p
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/scim+json")
                .body(b.to_string());
        }
        let r = req.send().await.expect("the server answers");
        let status = r.status().as_u16();
        let bytes = r.bytes().await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Creates a user from `fields` (userName and more); returns its id.
    async fn user_with(&self, fields: Value) -> String {
        let mut body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
            "active": true,
        });
        if let (Some(b), Some(f)) = (body.as_object_mut(), fields.as_object()) {
            b.extend(f.clone());
        }
        if self.server == Server::Canaille {
            // Canaille needs a formatted name.
            let n = body["userName"].clone();
            body["name"] = json!({"formatted": n, "familyName": n});
        }
        let (status, v) = self.call(reqwest::Method::POST, "/Users", Some(body)).await;
        assert_eq!(status, 201, "create user {fields}: {v}");
        v["id"].as_str().expect("id").to_string()
    }

    async fn user(&self, user_name: &str, email: Option<&str>) -> String {
        let mut f = json!({"userName": user_name});
        if let Some(e) = email {
            f["emails"] = match self.server {
                Server::Scim2 => json!([{"value": e, "primary": true}]),
                // Canaille refuses `primary`.
                Server::Canaille => json!([{"value": e}]),
            };
        }
        self.user_with(f).await
    }

    /// A group of the users `members` (ids).
    async fn group(&self, name: &str, members: &[&str]) -> String {
        let members: Vec<Value> = members
            .iter()
            .map(|m| json!({"value": m, "$ref": format!("{}/Users/{m}", self.url)}))
            .collect();
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

    /// Whether the server has user `id` in group `gid`, by either witness it offers.
    async fn is_member(&self, gid: &str, id: &str) -> bool {
        let (_, user) = self.get(&format!("/Users/{id}")).await;
        let (_, group) = self.get(&format!("/Groups/{gid}")).await;
        let by_user = user["groups"]
            .as_array()
            .is_some_and(|gs| gs.iter().any(|g| g["value"] == gid));
        let by_group = group["members"].as_array().is_some_and(|ms| {
            ms.iter().any(|m| {
                m["value"] == id || (!user["userName"].is_null() && m["value"] == user["userName"])
            })
        });
        by_user || by_group
    }

    /// The connector, through a proxy that counts writes and can meddle.
    async fn connector(&self, extra: Value) -> (Arc<Proxy>, Arc<dyn Connector>) {
        let (proxy, url) = Proxy::start(&self.url, &self.token).await;
        (proxy, connector(&url, &self.token, self.options(extra)))
    }
}

fn params(url: &str, token: &str, extra: Value) -> Value {
    let mut p = json!({"kind": KIND, "base_url": url, "token": token, "timeout_secs": 5});
    if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    p
}

fn connector(url: &str, token: &str, extra: Value) -> Arc<dyn Connector> {
    let p = params(url, token, extra);
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

fn of_kind<'a>(acts: &'a [Action], kind: &str) -> &'a Action {
    acts.iter()
        .find(|a| a.kind.0 == kind)
        .unwrap_or_else(|| panic!("no {kind} in {acts:#?}"))
}

async fn apply(c: &dyn Connector, a: &Action) -> Outcome {
    c.apply(a, &a.key, &MemoryJournal::new())
        .await
        .unwrap_or_else(|e| panic!("{} {}: {e}", a.kind, a.target))
}

/// A proxy in front of a SCIM server that counts writes, can make ETags stale, can ignore
/// filters (as Canaille does) and can hide users' `groups` (as scim2-server does).
struct Proxy {
    upstream: String,
    token: String,
    http: reqwest::Client,
    writes: Mutex<Vec<String>>,
    /// How many conditional writes still get the resource changed just before they are forwarded.
    meddle: AtomicU32,
    /// Drop the `filter` query parameter: the server lists everything.
    ignore_filter: AtomicBool,
    /// Remove `groups` from every user answered.
    hide_user_groups: AtomicBool,
}

impl Proxy {
    async fn start(upstream: &str, token: &str) -> (Arc<Proxy>, String) {
        let proxy = Arc::new(Proxy {
            upstream: upstream.to_string(),
            token: token.to_string(),
            http: http(),
            writes: Mutex::new(vec![]),
            meddle: AtomicU32::new(0),
            ignore_filter: AtomicBool::new(false),
            hide_user_groups: AtomicBool::new(false),
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

fn strip_groups(v: &mut Value) {
    if let Some(rs) = v.get_mut("Resources").and_then(Value::as_array_mut) {
        rs.iter_mut().for_each(strip_groups);
    }
    if let Some(o) = v.as_object_mut() {
        o.remove("groups");
    }
}

async fn forward(State(p): State<Arc<Proxy>>, req: Request) -> Response {
    let method = req.method().clone();
    let mut path = req
        .uri()
        .path_and_query()
        .map(|x| x.to_string())
        .unwrap_or_default();
    if p.ignore_filter.load(Ordering::SeqCst) {
        if let Some((base, q)) = path.clone().split_once('?') {
            let kept: Vec<&str> = q
                .split('&')
                .filter(|kv| !kv.starts_with("filter="))
                .collect();
            path = format!("{base}?{}", kept.join("&"));
        }
    }
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
                .bearer_auth(&p.token)
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
        .request(method.clone(), format!("{}{path}", p.upstream))
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
    let mut bytes = r.bytes().await.expect("upstream body").to_vec();
    if p.hide_user_groups.load(Ordering::SeqCst) && path.contains("/Users") {
        if let Ok(mut v) = serde_json::from_slice::<Value>(&bytes) {
            strip_groups(&mut v);
            bytes = v.to_string().into_bytes();
        }
    }
    out.body(Body::from(bytes)).expect("response")
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

/// Runs each named test body (an `async fn(Server)`) once on scim2-server and once on Canaille.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod scim2_server {
            $( #[tokio::test] async fn $name() { super::$name(super::Server::Scim2).await } )*
        }
        mod canaille {
            $( #[tokio::test] async fn $name() { super::$name(super::Server::Canaille).await } )*
        }
    };
}

on_both!(
    discovery_by_user_name_and_by_email,
    a_subject_given_as_one_identifier_is_found_by_any,
    apply_end_to_end_then_an_idempotent_rerun_sends_no_write,
    value_form_and_no_delete,
    removal_under_retention_really_takes_the_pinned_user_out,
    a_group_that_ended_empty_is_confirmed,
    discovery_is_not_misled_by_an_ignored_filter,
    a_user_deleted_and_recreated_between_plan_and_apply_is_left_alone,
    a_renamed_user_is_acted_on_by_its_pinned_id,
    wrong_token_is_an_auth_error,
    a_departing_clients_users_go_and_nobody_else,
);

/// A departing client's users (an address at its domain or a subdomain) are each deactivated,
/// taken out of a group they share with one of ours, and deleted; look-alike domains and our own
/// people stay. Canaille ignores the filter and lists everyone: the domain is checked here.
async fn a_departing_clients_users_go_and_nobody_else(server: Server) {
    let t = App::new(server, "clientjob");
    let dom = format!("{}clientco.com", t.prefix);
    let ann = t.user(&t.n("ann"), Some(&format!("Ann@{dom}"))).await;
    let sub = t.user(&t.n("sub"), Some(&format!("sub@eu.{dom}"))).await;
    let look = t.user(&t.n("look"), Some(&format!("l@not{dom}"))).await;
    let evil = t
        .user(&t.n("evil"), Some(&format!("e@{dom}.evil.com")))
        .await;
    let bob = t.user(&t.n("bob"), Some(&t.mail("bob"))).await;
    let shared = t.group(&t.n("shared"), &[&ann, &sub, &bob]).await;
    let (proxy, c) = t.connector(json!({})).await;
    assert!(c.takes_client_jobs());
    let client = Subject::client(ClientDomain::parse(&dom).expect("domain"));
    let acts = plan_actions(&*c, &client).await;
    let mut pinned: Vec<&str> = acts
        .iter()
        .filter_map(|a| a.account.as_ref().map(|p| p.id.as_str()))
        .collect();
    pinned.sort();
    pinned.dedup();
    let mut expected = vec![ann.as_str(), sub.as_str()];
    expected.sort();
    assert_eq!(pinned, expected, "the client's users and only them");
    let removals: Vec<&Action> = acts
        .iter()
        .filter(|a| a.kind.0 == REMOVE_GROUP_MEMBER)
        .collect();
    assert_eq!(removals.len(), 2, "one removal per member of the client");
    assert_ne!(removals[0].key, removals[1].key);
    assert!(removals.iter().all(|a| a.params["group_id"] == shared));
    for a in &acts {
        assert_eq!(
            apply(&*c, a).await,
            Outcome::Done,
            "{} {}",
            a.kind,
            a.target
        );
        assert_eq!(
            c.verify(a).await.expect("verify"),
            Verdict::Confirmed,
            "{}",
            a.kind
        );
    }
    for gone in [&ann, &sub] {
        assert_eq!(t.get(&format!("/Users/{gone}")).await.0, 404);
    }
    assert!(t.is_member(&shared, &bob).await, "bob stays in the group");
    for kept in [&look, &evil, &bob] {
        let (status, user) = t.get(&format!("/Users/{kept}")).await;
        assert_eq!(
            (status, user["active"].as_bool()),
            (200, Some(true)),
            "{kept}"
        );
    }
    let writes = proxy.writes().len();
    for a in &acts {
        assert_eq!(apply(&*c, a).await, Outcome::AlreadyDone, "{}", a.kind);
    }
    assert_eq!(proxy.writes().len(), writes, "a rerun writes nothing");
    assert!(!c.discover(&client).await.expect("discover").found);
}

async fn discovery_by_user_name_and_by_email(server: Server) {
    let t = App::new(server, "discovery");
    let alice_id = t.user(&t.n("alice"), Some(&t.mail("alice"))).await;
    let bob_id = t.user(&t.n("bob"), Some(&t.mail("bob"))).await;
    let eng = t.group(&t.n("eng"), &[&alice_id, &bob_id]).await;
    t.group(&t.n("ops"), &[&bob_id]).await;
    let (_, c) = t.connector(json!({})).await;
    let alice = t.subject("alice");

    let d = c.discover(&alice).await.expect("discover");
    assert!(d.found);
    let user = finding(&d, SCIM_USER);
    assert_eq!(user.len(), 1);
    assert_eq!(user[0].target, alice_id);
    assert_eq!(user[0].attrs["userName"], t.n("alice"));
    assert_eq!(user[0].attrs["active"], "true");
    assert_eq!(user[0].attrs["email"], t.mail("alice"));
    assert_eq!(user[0].attrs["matched_by"], "userName");
    let groups = finding(&d, GROUP_MEMBERSHIP);
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0].target, eng);
    assert_eq!(groups[0].attrs["display"], t.n("eng"));
    assert_eq!(d.accounts.len(), 1);
    assert_eq!(d.accounts[0].id, alice_id);
    assert_eq!(d.accounts[0].id_kind, ID_KIND);

    // Known to HR by another id: found by email.
    let mut by_mail = Subject::new("E1234");
    by_mail.email = Some(t.mail("alice").to_uppercase());
    let d = c.discover(&by_mail).await.expect("discover");
    assert_eq!(finding(&d, SCIM_USER)[0].target, alice_id);
    assert_eq!(finding(&d, SCIM_USER)[0].attrs["matched_by"], "emails");

    // match_by = userName only: the email is not tried.
    let (_, c2) = t.connector(json!({"match_by": "userName"})).await;
    assert!(!c2.discover(&by_mail).await.expect("discover").found);
    // A username per instance wins over the subject id.
    let mut mapped = Subject::new("E1234");
    mapped.usernames.insert(INSTANCE.into(), t.n("bob"));
    assert_eq!(
        finding(&c2.discover(&mapped).await.expect("discover"), SCIM_USER)[0].target,
        bob_id
    );
    assert!(
        !c.discover(&Subject::new(t.n("nobody")))
            .await
            .expect("discover")
            .found
    );

    // discover_many keeps the order.
    let many = c
        .discover_many(&[Subject::new(t.n("bob")), Subject::new(t.n("nobody")), alice])
        .await
        .expect("discover_many");
    let found: Vec<bool> = many.iter().map(|d| d.found).collect();
    assert_eq!(found, [true, false, true]);
}

async fn a_subject_given_as_one_identifier_is_found_by_any(server: Server) {
    let t = App::new(server, "oneid");
    let dave = t
        .user_with(json!({
            "userName": t.n("dave"), "externalId": t.n("ext-dave"),
            "emails": [{"value": t.mail("dave")}, {"value": t.mail("dave.alias")}],
            ENTERPRISE: {"employeeNumber": t.n("1004")},
        }))
        .await;
    // Another user whose userName is dave's employee number: a lookup by employee number must
    // find dave only through the right attribute, and userName wins when tried first.
    t.user(&t.n("noise"), Some(&t.mail("noise"))).await;
    let (_, c) = t.connector(json!({})).await;

    for (id, via) in [
        (t.n("dave"), "userName"),
        (t.mail("dave"), "emails"),
        (t.mail("dave.alias").to_uppercase(), "emails"),
        (t.n("1004"), "employeeNumber"),
    ] {
        let d = c
            .discover(&Subject::new(id.as_str()))
            .await
            .expect("discover");
        assert_eq!(d.accounts.len(), 1, "{id}: {d:?}");
        let a = &d.accounts[0];
        assert_eq!(a.id, dave, "{id}");
        assert_eq!(a.name, t.n("dave"));
        assert!(a.matched_by.starts_with(via), "{id}: {}", a.matched_by);
        for i in [
            t.n("dave"),
            t.mail("dave"),
            t.mail("dave.alias"),
            t.n("1004"),
        ] {
            assert!(
                a.identifiers.contains(&i),
                "{id}: {i} not in {:?}",
                a.identifiers
            );
        }
    }
    // An HR event with only the employee id.
    let mut hr = Subject::new("ignored-id");
    hr.employee_id = Some(t.n("1004"));
    assert_eq!(
        c.discover(&hr).await.expect("discover").accounts[0].id,
        dave
    );
    // scim2-server keeps externalId; Canaille drops it.
    if server == Server::Scim2 {
        let d = c
            .discover(&Subject::new(t.n("ext-dave")))
            .await
            .expect("discover");
        assert_eq!(d.accounts[0].id, dave);
        assert!(d.accounts[0].matched_by.starts_with("externalId"));
        assert!(c
            .discover(&Subject::new(t.n("EXT-DAVE")))
            .await
            .expect("discover")
            .accounts
            .is_empty());
    }
    // Values that look like query syntax find nothing.
    for hostile in [
        "*",
        "\" or userName pr or \"",
        "../x",
        "a/b",
        "?",
        "#",
        "%2F",
        "'",
    ] {
        let d = c.discover(&Subject::new(hostile)).await.expect("discover");
        assert!(!d.found, "{hostile} found {:?}", d.accounts);
    }
}

async fn apply_end_to_end_then_an_idempotent_rerun_sends_no_write(server: Server) {
    let t = App::new(server, "e2e");
    let alice_id = t.user(&t.n("alice"), Some(&t.mail("alice"))).await;
    let bob_id = t.user(&t.n("bob"), None).await;
    let eng = t.group(&t.n("eng"), &[&alice_id, &bob_id]).await;
    let (proxy, c) = t.connector(json!({})).await;
    let alice = t.subject("alice");

    let acts = plan_actions(&*c, &alice).await;
    let kinds: Vec<&str> = acts.iter().map(|a| a.kind.0.as_str()).collect();
    assert_eq!(kinds, [DEACTIVATE_USER, REMOVE_GROUP_MEMBER, DELETE_USER]);
    assert!(acts
        .iter()
        .all(|a| a.account.as_ref().map(|p| p.id.as_str()) == Some(alice_id.as_str())));

    assert_eq!(apply(&*c, &acts[0]).await, Outcome::Done);
    let (_, user) = t.get(&format!("/Users/{alice_id}")).await;
    assert_eq!(user["active"], false);

    assert_eq!(apply(&*c, &acts[1]).await, Outcome::Done);
    assert!(!t.is_member(&eng, &alice_id).await, "alice is out");
    assert!(t.is_member(&eng, &bob_id).await, "bob stays");

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
    assert_eq!(proxy.writes().len(), 3, "{:?}", proxy.writes());

    // The rerun: every action is already done, and not one PATCH or DELETE is sent.
    for a in &acts {
        assert_eq!(apply(&*c, a).await, Outcome::AlreadyDone, "{}", a.kind);
    }
    assert_eq!(proxy.writes().len(), 3, "{:?}", proxy.writes());
    // Nothing left to discover.
    assert!(!c.discover(&alice).await.expect("discover").found);
}

async fn value_form_and_no_delete(server: Server) {
    let t = App::new(server, "valueform");
    let alice_id = t.user(&t.n("alice"), None).await;
    let (_, c) = t
        .connector(json!({"deactivate_form": "value", "delete_users": false, "groups": false}))
        .await;
    let alice = t.subject("alice");
    let acts = plan_actions(&*c, &alice).await;
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
        .plan(&alice, &c.discover(&alice).await.expect("discover"))
        .is_empty());
}

/// Issue 12 §6: under a policy with retention (the user is not deleted), the group removal must
/// send its PATCH and take dave out; on Canaille, whose members are named by userName, it used
/// to say already_done and send nothing.
async fn removal_under_retention_really_takes_the_pinned_user_out(server: Server) {
    let t = App::new(server, "retention");
    let dave = t.user(&t.n("dave"), Some(&t.mail("dave"))).await;
    let erin = t.user(&t.n("erin"), None).await;
    let eng = t.group(&t.n("eng"), &[&dave, &erin]).await;
    let (proxy, c) = t.connector(json!({"delete_users": false})).await;
    let mut s = Subject::new(t.mail("dave"));
    s.email = Some(t.mail("dave"));

    let acts = plan_actions(&*c, &s).await;
    let remove = of_kind(&acts, REMOVE_GROUP_MEMBER);
    assert_eq!(remove.target, eng);
    assert_eq!(apply(&*c, remove).await, Outcome::Done);
    assert_eq!(proxy.writes(), [format!("PATCH /Groups/{eng}")]);
    assert!(!t.is_member(&eng, &dave).await, "dave is out of the group");
    assert!(t.is_member(&eng, &erin).await, "erin stays");
    assert_eq!(c.verify(remove).await.expect("verify"), Verdict::Confirmed);
    assert_eq!(apply(&*c, remove).await, Outcome::AlreadyDone);
    assert_eq!(proxy.writes().len(), 1, "{:?}", proxy.writes());
}

/// Issue 12 §6: verify of a removal that left the group empty is confirmed (the group comes back
/// without `members`; Canaille ignored the filter the connector fell back to and "still lists").
async fn a_group_that_ended_empty_is_confirmed(server: Server) {
    let t = App::new(server, "ended-empty");
    let dave = t.user(&t.n("dave"), None).await;
    let solo = t.group(&t.n("solo"), &[&dave]).await;
    t.group(&t.n("other"), &[&dave]).await;
    let (_, c) = t.connector(json!({"delete_users": false})).await;
    let acts = plan_actions(&*c, &Subject::new(t.n("dave"))).await;
    let remove = acts
        .iter()
        .find(|a| a.kind.0 == REMOVE_GROUP_MEMBER && a.target == solo)
        .expect("removal from solo");
    assert_eq!(apply(&*c, remove).await, Outcome::Done);
    let (_, g) = t.get(&format!("/Groups/{solo}")).await;
    assert!(
        g.get("members")
            .is_none_or(|m| m.as_array().is_some_and(Vec::is_empty)),
        "{g}"
    );
    assert_eq!(c.verify(remove).await.expect("verify"), Verdict::Confirmed);
    assert_eq!(apply(&*c, remove).await, Outcome::AlreadyDone);
    // The same through a server that ignores filters and sends users without groups.
    let (proxy, c) = t.connector(json!({"delete_users": false})).await;
    proxy.ignore_filter.store(true, Ordering::SeqCst);
    proxy.hide_user_groups.store(true, Ordering::SeqCst);
    assert_eq!(c.verify(remove).await.expect("verify"), Verdict::Confirmed);
}

/// Discovery through a server that ignores the member filter (every group comes back) and sends
/// users without `groups` (so the search is all there is): only the groups that list dave.
async fn discovery_is_not_misled_by_an_ignored_filter(server: Server) {
    let t = App::new(server, "ignored-filter");
    let dave = t.user(&t.n("dave"), None).await;
    let erin = t.user(&t.n("erin"), None).await;
    let eng = t.group(&t.n("eng"), &[&dave, &erin]).await;
    t.group(&t.n("ops"), &[&erin]).await;
    let (proxy, c) = t.connector(json!({})).await;
    proxy.ignore_filter.store(true, Ordering::SeqCst);
    proxy.hide_user_groups.store(true, Ordering::SeqCst);
    let d = c
        .discover(&Subject::new(t.n("dave")))
        .await
        .expect("discover");
    let groups: Vec<&str> = finding(&d, GROUP_MEMBERSHIP)
        .iter()
        .map(|f| f.target.as_str())
        .collect();
    assert_eq!(groups, [eng.as_str()]);
    assert_eq!(d.accounts[0].id, dave);
    // The same lookups of a subject with nothing: no account, whatever the server listed.
    assert!(
        !c.discover(&Subject::new(t.n("zed")))
            .await
            .expect("discover")
            .found
    );
}

/// Issue 12 §2: dave is deleted and a new dave (another id, in the same group) created between
/// plan and apply. Every action fails as identity_changed, sends nothing, and the new dave is
/// untouched; verify still judges the pinned (gone) user.
async fn a_user_deleted_and_recreated_between_plan_and_apply_is_left_alone(server: Server) {
    let t = App::new(server, "recreated");
    let old = t.user(&t.n("dave"), Some(&t.mail("dave"))).await;
    let eng = t.group(&t.n("eng"), &[&old]).await;
    let (proxy, c) = t.connector(json!({})).await;
    let acts = plan_actions(&*c, &t.subject("dave")).await;
    assert_eq!(acts.len(), 3);

    assert_eq!(
        t.call(reqwest::Method::DELETE, &format!("/Users/{old}"), None)
            .await
            .0,
        204
    );
    let new = t.user(&t.n("dave"), Some(&t.mail("dave"))).await;
    assert_ne!(new, old);
    let (s, _) = t
        .call(
            reqwest::Method::PATCH,
            &format!("/Groups/{eng}"),
            Some(
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "add", "path": "members",
                    "value": [{"value": new, "$ref": format!("{}/Users/{new}", t.url)}]}]}),
            ),
        )
        .await;
    assert!((200..300).contains(&s), "add the new dave: {s}");
    assert!(t.is_member(&eng, &new).await);

    for a in &acts {
        let e = c
            .apply(a, &a.key, &MemoryJournal::new())
            .await
            .expect_err("the planned name now names another user");
        assert_eq!(e.code, "identity_changed", "{}: {e}", a.kind);
        assert!(!e.is_retryable());
        assert!(e.message.contains(&old) && e.message.contains(&new), "{e}");
    }
    assert_eq!(proxy.writes(), Vec::<String>::new(), "nothing was sent");
    let (s, user) = t.get(&format!("/Users/{new}")).await;
    assert_eq!((s, &user["active"]), (200, &json!(true)));
    assert!(
        t.is_member(&eng, &new).await,
        "the new dave stays in the group"
    );
    for a in &acts {
        assert_eq!(
            c.verify(a).await.expect("verify"),
            Verdict::Confirmed,
            "{}",
            a.kind
        );
    }
}

/// The pinned user renamed (and its old userName given to a new user) is still the one acted
/// on, by its id; the new user is untouched.
async fn a_renamed_user_is_acted_on_by_its_pinned_id(server: Server) {
    let t = App::new(server, "renamed");
    let old = t.user(&t.n("dave"), None).await;
    let (proxy, c) = t
        .connector(json!({"groups": false, "delete_users": false}))
        .await;
    let acts = plan_actions(&*c, &Subject::new(t.n("dave"))).await;
    let (s, v) = t
        .call(
            reqwest::Method::PATCH,
            &format!("/Users/{old}"),
            Some(
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "userName", "value": t.n("dave.old")}]}),
            ),
        )
        .await;
    assert!((200..300).contains(&s), "rename: {s} {v}");
    let new = t.user(&t.n("dave"), None).await;
    assert_eq!(apply(&*c, &acts[0]).await, Outcome::Done);
    assert_eq!(proxy.writes().len(), 1);
    assert_eq!(t.get(&format!("/Users/{old}")).await.1["active"], false);
    assert_eq!(t.get(&format!("/Users/{new}")).await.1["active"], true);
    assert_eq!(
        c.verify(&acts[0]).await.expect("verify"),
        Verdict::Confirmed
    );
}

async fn wrong_token_is_an_auth_error(server: Server) {
    let t = App::new(server, "auth");
    let p = params(&t.url, "wrong-token", t.options(json!({})));
    let c = ScimFactory.build(INSTANCE, &p).expect("builds");
    let e = c.check().await.expect_err("wrong token");
    assert_eq!(e.class.name(), "auth", "{e}");
    assert!(!e.to_string().contains("wrong-token"), "{e}");
    let e = c
        .discover(&t.subject("alice"))
        .await
        .expect_err("wrong token");
    assert_eq!(
        (e.class.name(), e.code.as_str()),
        ("auth", "unauthorized"),
        "{e}"
    );
    // The right token passes the check, with the server's own options.
    let c = connector(&t.url, &t.token, t.options(json!({})));
    c.check().await.expect("check");
    if server == Server::Canaille {
        // Canaille answers 500 to any `count`: without page_size = 0 the check cannot pass.
        let c = connector(&t.url, &t.token, json!({}));
        let e = c.check().await.expect_err("count is a 500 on canaille");
        assert!(e.is_retryable(), "{e}");
    }
}

#[tokio::test]
async fn plan_snapshot() {
    let t = App::new(Server::Scim2, "plan");
    let alice_id = t.user("alice", Some("alice@example.com")).await;
    let eng = t.group("eng", &[&alice_id]).await;
    let ops = t.group("ops", &[&alice_id]).await;
    let (_, c) = t.connector(json!({})).await;
    let d = c.discover(&t.subject("alice")).await.expect("discover");
    let p = c.plan(&t.subject("alice"), &d);
    insta::assert_json_snapshot!(
        "plan",
        render(&p, &[(&alice_id, "alice"), (&eng, "eng"), (&ops, "ops")])
    );
}

/// scim2-server only: Canaille's ETags have one-second resolution, so an edit made between the
/// connector's read and write within the same second keeps the ETag and no 412 comes.
#[tokio::test]
async fn a_stale_etag_is_read_again_once_then_left_to_the_executor() {
    let t = App::new(Server::Scim2, "stale");
    t.user("alice", None).await;
    let (proxy, c) = t.connector(json!({"groups": false})).await;
    let acts = plan_actions(&*c, &t.subject("alice")).await;
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

/// scim2-server only: Canaille builds URLs from userNames, and refuses most of these.
#[tokio::test]
async fn hostile_names_find_nothing_or_exactly_their_user() {
    let t = App::new(Server::Scim2, "hostile");
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
    let (_, c) = t.connector(json!({"match_by": ["userName"]})).await;
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
            "connectors.app.extra: unknown key; expected one of base_url, token, username, password, match_by, deactivate_form, member_removal, page_size, delete_users, groups, timeout_secs, read_concurrency",
            "connectors.app.groups: expected true or false, found \"yes\"",
            "connectors.app.match_by: expected userName, emails, employeeNumber or externalId, found \"email\"",
            "connectors.app.password: expected a password, found an empty string",
        ]
    );
}
