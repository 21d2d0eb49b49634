//! The engine against an in-process API with Slack's habits (every answer HTTP 200, errors as
//! `{"ok": false, "error": ...}`, cursor pages, form bodies): outcome rules on body predicates,
//! a child resource (private channels per user) planned after its parent's contain across
//! resources, pinning by a read by id, the idempotency key header, hostile subject values that
//! cannot change a URL's shape, and a next-page link to another host refused. The API is ours
//! (a mock for classification and escaping, as docs/connectors.md allows); the real servers are
//! in tests/servers.rs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use revoke_connector_http::{HttpConnector, KIND};
use revoke_core::{Action, Connector, ErrorClass, JobId, MemoryJournal, Outcome, Subject, Verdict};
use serde_json::{json, Value};

const INSTANCE: &str = "chat";

const DEFINITION: &str = r#"
system = "Chat"
base_url = "http://placeholder"
idempotency_header = "X-Idempotency-Key"
rate_limit = { requests = 1000, per_secs = 1 }

[auth]
type = "bearer"
token = "xoxb-test"

[resources.user]
id = "$.id"
id_kind = "user id"
name = "$.name"
identifiers = ["$.name", "$.profile.email"]
state = { deactivated = { path = "$.deleted", equals = true }, invite_regenerated = { path = "$.invite_id", not_equals = "{{item.invite_id}}" } }
read = { path = "/users.info", query = { user = "{{item.id}}" }, item = "$.user" }

[[resources.user.discover]]
path = "/users.lookupByEmail"
query = { email = "{{subject.email}}" }
items = "$.user"
absent_if = [{ path = "$.error", equals = "users_not_found" }]
error_if = [{ path = "$.ok", equals = false }]

[[resources.user.discover]]
path = "/users.list"
items = "$.members[*]"
error_if = [{ path = "$.ok", equals = false }]
paginate = { type = "cursor", next = "$.response_metadata.next_cursor", param = "cursor" }

[[resources.user.discover]]
path = "/users.byName/{{subject.username}}"
items = "$.user"
absent = [404]

[[resources.user.match]]
path = "$.profile.email"
equals = "{{subject.email}}"
case = "insensitive"

[[resources.user.match]]
path = "$.name"
equals = "{{subject.username}}"

[[resources.user.actions]]
name = "reset_sessions"
phase = "contain"
summary = "end every session of {{item.name}}"
request = { method = "POST", path = "/admin.users.session.reset", form = { user_id = "{{item.id}}" } }
outcomes = [
  { status = [200], body = [{ path = "$.ok", equals = true }], result = "done" },
  { status = [200], body = [{ path = "$.error", equals = "ratelimited" }], result = "rate_limited" },
  { status = [429], result = "rate_limited" },
  { status = [200], body = [{ path = "$.ok", equals = false }], result = "permanent", code = "chat_error" },
]
verify = { request = { path = "/sessions.count", query = { user = "{{item.id}}" } }, confirmed = [{ status = [200], body = [{ path = "$.count", equals = 0 }] }] }

[[resources.user.actions]]
name = "deactivate"
phase = "revoke"
after = ["channel.kick"]
unless = "deactivated"
request = { method = "POST", path = "/users.deactivate", json = { user = "{{item.id}}", note = "offboarded by revoked ({{action.key}})" } }
outcomes = [
  { status = [200], body = [{ path = "$.ok", equals = true }], result = "done" },
  { status = [200], body = [{ path = "$.error", equals = "already_deactivated" }], result = "already_done" },
  { status = [200], body = [{ path = "$.ok", equals = false }], result = "permanent", code = "chat_error" },
]
verify = { confirmed = [{ status = [200], body = [{ path = "$.deleted", equals = true }] }] }

[[resources.user.actions]]
name = "regenerate_invite"
phase = "revoke"
unless = "invite_regenerated"
request = { method = "POST", path = "/users.regenerateInvite", form = { user = "{{item.id}}" } }
outcomes = [{ status = [200], body = [{ path = "$.ok", equals = true }], result = "done" }]
verify = { confirmed = [{ status = [200], body = [{ path = "$.invite_id", not_equals = "{{item.invite_id}}" }] }] }

[[resources.user.actions]]
name = "unlist"
phase = "revoke"
summary = "take {{item.name}} out of the directory"
request = { method = "POST", path = "/directory.remove", form = { name = "{{item.name}}" } }
outcomes = [
  { status = [200], body = [{ path = "$.ok", equals = true }], result = "done" },
  { status = [200], body = [{ path = "$.error", equals = "not_listed" }], result = "already_done" },
]
verify = { request = { path = "/directory.list" }, confirmed = [{ status = [200], body = [{ path = "$.names[*]", not_equals = "{{item.name}}" }] }] }

[[resources.user.actions]]
name = "confirm_devices"
phase = "manual"
summary = "wipe the Chat app from {{item.name}}'s phone"

[resources.channel]
within = "user"
id = "$.id"
name = "$.name"
keep = [{ path = "$.is_private", equals = true }]

[[resources.channel.discover]]
path = "/users.conversations"
query = { user = "{{parent.id}}", types = "private_channel" }
items = "$.channels[*]"
error_if = [{ path = "$.ok", equals = false }]
paginate = { type = "cursor", next = "$.response_metadata.next_cursor", param = "cursor" }

[[resources.channel.actions]]
name = "kick"
phase = "revoke"
after = ["user.reset_sessions"]
summary = "remove {{parent.name}} from #{{item.name}}"
request = { method = "POST", path = "/conversations.kick", form = { channel = "{{item.id}}", user = "{{parent.id}}" } }
outcomes = [
  { status = [200], body = [{ path = "$.ok", equals = true }], result = "done" },
  { status = [200], body = [{ path = "$.error", equals = "not_in_channel" }], result = "already_done" },
  { status = [200], body = [{ path = "$.error", equals = "ratelimited" }], result = "rate_limited" },
  { status = [429], result = "rate_limited" },
  { status = [200], body = [{ path = "$.ok", equals = false }], result = "permanent", code = "chat_error" },
]
verify = { request = { path = "/conversations.members", query = { channel = "{{item.id}}" } }, confirmed = [{ status = [200], body = [{ path = "$.members[*]", not_equals = "{{parent.id}}" }] }] }
"#;

/// The API's state and what it was sent.
#[derive(Debug, Default)]
struct Chat {
    users: Vec<Value>,
    /// channel id -> (name, members)
    channels: BTreeMap<String, (String, BTreeSet<String>)>,
    sessions: BTreeMap<String, u32>,
    /// Every request: method, raw path and query, the idempotency header.
    seen: Vec<(String, String, Option<String>)>,
    /// The next this many kicks answer ratelimited (Retry-After: 7).
    ratelimit_kicks: u32,
    /// users.info answers this id instead of the one asked for.
    info_answers: Option<String>,
    /// Mutating requests received.
    writes: u32,
    /// Names listed in the directory.
    directory: BTreeSet<String>,
    /// Tokens handed out by /auth/token (a token exchange, as Docker Hub's).
    exchanged: u32,
}

type Shared = Arc<Mutex<Chat>>;

fn query(uri: &Uri, body: &[u8]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let raw = format!(
        "http://x/?{}&{}",
        uri.query().unwrap_or(""),
        String::from_utf8_lossy(body)
    );
    if let Ok(u) = reqwest::Url::parse(&raw) {
        for (k, v) in u.query_pairs() {
            if !k.is_empty() {
                out.insert(k.into_owned(), v.into_owned());
            }
        }
    }
    out
}

async fn handle(
    State(st): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = st.lock().expect("state");
    s.seen.push((
        method.to_string(),
        uri.to_string(),
        headers
            .get("x-idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    ));
    if uri.path() == "/auth/token" {
        let b: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if b == json!({"identifier": "acme", "secret": "pat-1"}) {
            s.exchanged += 1;
            let t = format!("jwt-{}", s.exchanged);
            return (StatusCode::OK, axum::Json(json!({"access_token": t}))).into_response();
        }
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"detail": "bad secret"})),
        )
            .into_response();
    }
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    let exchanged = auth.is_some_and(|a| a.starts_with("Bearer jwt-"));
    if auth != Some("Bearer xoxb-test") && !exchanged {
        return (
            StatusCode::OK,
            axum::Json(json!({"ok": false, "error": "not_authed"})),
        )
            .into_response();
    }
    let mut q = query(&uri, &body);
    if let Ok(j) = serde_json::from_slice::<Value>(&body) {
        if let Some(m) = j.as_object() {
            for (k, v) in m {
                if let Some(v) = v.as_str() {
                    q.insert(k.clone(), v.to_string());
                }
            }
        }
    }
    let arg = |k: &str| q.get(k).cloned().unwrap_or_default();
    let ok = |v: Value| {
        let mut v = v;
        v["ok"] = json!(true);
        (StatusCode::OK, axum::Json(v)).into_response()
    };
    let err =
        |e: &str| (StatusCode::OK, axum::Json(json!({"ok": false, "error": e}))).into_response();
    let path = uri.path().to_string();
    if method != Method::GET {
        s.writes += 1;
    }
    match path.as_str() {
        "/users.lookupByEmail" => {
            let e = arg("email").to_lowercase();
            match s
                .users
                .iter()
                .find(|u| u["profile"]["email"].as_str().map(str::to_lowercase) == Some(e.clone()))
            {
                Some(u) => ok(json!({"user": u})),
                None => err("users_not_found"),
            }
        }
        "/users.list" => {
            // Two pages of one user each, then the rest.
            let cursor: usize = arg("cursor").parse().unwrap_or(0);
            let page: Vec<Value> = s.users.iter().skip(cursor).take(1).cloned().collect();
            let next = if cursor + 1 < s.users.len() {
                (cursor + 1).to_string()
            } else {
                String::new()
            };
            ok(json!({"members": page, "response_metadata": {"next_cursor": next}}))
        }
        "/users.info" => {
            let id = arg("user");
            let want = s.info_answers.clone().unwrap_or(id);
            match s.users.iter().find(|u| u["id"] == json!(want)) {
                Some(u) => ok(json!({"user": u})),
                None => err("user_not_found"),
            }
        }
        "/users.conversations" => {
            let user = arg("user");
            let chans: Vec<Value> = s
                .channels
                .iter()
                .filter(|(_, (_, m))| m.contains(&user))
                .map(|(id, (name, _))| json!({"id": id, "name": name, "is_private": !id.starts_with("CP")}))
                .collect();
            ok(json!({"channels": chans, "response_metadata": {"next_cursor": ""}}))
        }
        "/conversations.members" => match s.channels.get(&arg("channel")) {
            Some((_, m)) => ok(json!({"members": m.iter().collect::<Vec<_>>()})),
            None => err("channel_not_found"),
        },
        "/sessions.count" => {
            let n = s.sessions.get(&arg("user")).copied().unwrap_or(0);
            ok(json!({"count": n}))
        }
        "/admin.users.session.reset" => {
            s.sessions.insert(arg("user_id"), 0);
            ok(json!({}))
        }
        "/conversations.kick" => {
            if s.ratelimit_kicks > 0 {
                s.ratelimit_kicks -= 1;
                return (
                    StatusCode::OK,
                    [("retry-after", "7")],
                    axum::Json(json!({"ok": false, "error": "ratelimited"})),
                )
                    .into_response();
            }
            let (c, u) = (arg("channel"), arg("user"));
            match s.channels.get_mut(&c).map(|(_, m)| m.remove(&u)) {
                None => err("channel_not_found"),
                Some(true) => ok(json!({})),
                Some(false) => err("not_in_channel"),
            }
        }
        "/users.regenerateInvite" => {
            let id = arg("user");
            match s.users.iter_mut().find(|u| u["id"] == json!(id)) {
                Some(u) => {
                    let next = format!("{}+", u["invite_id"].as_str().unwrap_or(""));
                    u["invite_id"] = json!(next);
                    ok(json!({}))
                }
                None => err("user_not_found"),
            }
        }
        "/directory.remove" => {
            if s.directory.remove(&arg("name")) {
                ok(json!({}))
            } else {
                err("not_listed")
            }
        }
        "/directory.list" => ok(json!({"names": s.directory.iter().collect::<Vec<_>>()})),
        // The users again, one per page: by RFC 8288 Link headers, by page number, and a Link
        // to another host.
        "/people.linked" | "/people.elsewhere" => {
            let at: usize = arg("at").parse().unwrap_or(0);
            let page: Vec<Value> = s.users.iter().skip(at).take(1).cloned().collect();
            let mut resp = (StatusCode::OK, axum::Json(json!({"people": page}))).into_response();
            if at + 1 < s.users.len() {
                let next = if path == "/people.linked" {
                    format!("</people.linked?at={}>; rel=\"next\"", at + 1)
                } else {
                    "<http://evil.example/people.elsewhere?at=1>; rel=\"next\"".to_string()
                };
                resp.headers_mut().insert(
                    "link",
                    axum::http::HeaderValue::from_str(&next).expect("header"),
                );
            }
            resp
        }
        // SCIM-style: startIndex from 1, one per page, totalResults.
        "/people.offset" => {
            let at: usize = arg("startIndex").parse().unwrap_or(1);
            let rows: Vec<Value> = s.users.iter().skip(at - 1).take(1).cloned().collect();
            ok(json!({"people": rows, "totalResults": s.users.len()}))
        }
        "/people.paged" => {
            let page: usize = arg("page").parse().unwrap_or(1);
            let per: usize = arg("per_page").parse().unwrap_or(1);
            let rows: Vec<Value> = s
                .users
                .iter()
                .skip((page - 1) * per)
                .take(per)
                .cloned()
                .collect();
            ok(json!({"people": rows}))
        }
        "/users.deactivate" => {
            let id = arg("user");
            match s.users.iter_mut().find(|u| u["id"] == json!(id)) {
                Some(u) if u["deleted"] == json!(true) => err("already_deactivated"),
                Some(u) => {
                    u["deleted"] = json!(true);
                    ok(json!({}))
                }
                None => err("user_not_found"),
            }
        }
        p if p.starts_with("/users.byName/") => {
            let name = p.trim_start_matches("/users.byName/").to_string();
            match s.users.iter().find(|u| u["name"] == json!(name)) {
                Some(u) => ok(json!({"user": u})),
                None => (StatusCode::NOT_FOUND, "").into_response(),
            }
        }
        _ => (StatusCode::NOT_FOUND, "").into_response(),
    }
}

/// The API on a free port on its own thread; dropped with the runtime at the end of the test.
async fn serve(chat: Chat) -> (String, Shared) {
    let st: Shared = Arc::new(Mutex::new(chat));
    let app = axum::Router::new().fallback(handle).with_state(st.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), st)
}

fn seeded() -> Chat {
    let user = |id: &str, name: &str, email: &str| {
        json!({"id": id, "name": name, "deleted": false, "invite_id": format!("inv-{id}"),
            "profile": {"email": email}})
    };
    let mut c = Chat {
        users: vec![
            user("U1", "ivan", "ivan@example.com"),
            // Ivan's admin account: matched by email (case ignored), not by name.
            user("U2", "ivan-admin", "IVAN@example.com"),
            // A name that contains Ivan's: never a substring match.
            user("U3", "ivana", "ivana@example.com"),
        ],
        ..Chat::default()
    };
    let members = |m: &[&str]| m.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    c.channels
        .insert("C1".into(), ("secret".into(), members(&["U1", "U3"])));
    c.channels
        .insert("C2".into(), ("ops".into(), members(&["U1", "U2"])));
    // An open channel: listed by users.conversations, left out by `keep`.
    c.channels.insert(
        "CP1".into(),
        ("general".into(), members(&["U1", "U2", "U3"])),
    );
    c.directory = ["ivan", "ivan-admin", "ivana"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    c.sessions.insert("U1".into(), 3);
    c.sessions.insert("U2".into(), 1);
    c
}

fn connector(base: &str) -> HttpConnector {
    let mut v = revoke_connector_http::parse_toml(DEFINITION).expect("parses");
    v["kind"] = json!(KIND);
    v["base_url"] = json!(base);
    HttpConnector::from_params(INSTANCE, &v).unwrap_or_else(|e| panic!("valid: {e:#?}"))
}

fn ivan() -> Subject {
    let mut s = Subject::new("ivan");
    s.email = Some("ivan@example.com".into());
    s
}

async fn plan(c: &HttpConnector, s: &Subject) -> (revoke_core::Discovery, Vec<Action>) {
    let d = c.discover(s).await.expect("discover");
    let acts = Action::from_proposals(&JobId("job-1".into()), INSTANCE, &d, c.plan(s, &d))
        .expect("the proposals name discovered accounts");
    (d, acts)
}

fn find<'a>(acts: &'a [Action], kind: &str, target: &str) -> &'a Action {
    acts.iter()
        .find(|a| a.kind.0 == kind && a.target == target)
        .unwrap_or_else(|| {
            panic!(
                "no {kind} {target} in {:#?}",
                acts.iter()
                    .map(|a| (&a.kind.0, &a.target))
                    .collect::<Vec<_>>()
            )
        })
}

#[tokio::test]
async fn two_accounts_their_channels_ordered_across_resources_and_ok_false_rules() {
    let (base, st) = serve(seeded()).await;
    let c = connector(&base);
    let (d, acts) = plan(&c, &ivan()).await;
    let mut ids: Vec<(&str, &str)> = d
        .accounts
        .iter()
        .map(|a| (a.id.as_str(), a.matched_by.as_str()))
        .collect();
    ids.sort();
    assert_eq!(
        ids.iter().map(|i| i.0).collect::<Vec<_>>(),
        vec!["U1", "U2"],
        "{d:#?}"
    );
    assert!(
        ids[0].1.contains("$.name = ivan") && ids[0].1.contains("$.profile.email"),
        "{ids:?}"
    );
    assert!(
        ids[1].1.contains("IVAN@example.com (case ignored)"),
        "{ids:?}"
    );
    assert!(st.lock().expect("state").writes == 0, "discovery wrote");
    // The open channel is listed by users.conversations and left out by `keep`: no finding.
    assert!(
        d.findings.iter().all(|f| !f.target.contains("CP1")),
        "{:#?}",
        d.findings
    );

    let mut plan_view: Vec<String> = acts
        .iter()
        .map(|a| {
            let after: Vec<String> = a
                .depends_on
                .iter()
                .map(|id| {
                    let b = acts.iter().find(|b| &b.id == id).expect("dep");
                    format!("{} {}", b.kind.0, b.target)
                })
                .collect();
            format!(
                "{} {} [{}] {} <- {:?}",
                a.phase.as_str(),
                a.kind.0,
                a.target,
                a.summary,
                after
            )
        })
        .collect();
    plan_view.sort();
    insta::assert_snapshot!("chat_plan", plan_view.join("\n"));

    // Apply in the planned order (phases, then after): the first kick is rate-limited by a
    // 200 {"ok": false, "error": "ratelimited"} with Retry-After.
    st.lock().expect("state").ratelimit_kicks = 1;
    let key = &find(&acts, "user.reset_sessions", "user/U1").key;
    let a = find(&acts, "user.reset_sessions", "user/U1");
    assert_eq!(
        c.apply(a, key, &MemoryJournal::new()).await.expect("apply"),
        Outcome::Done
    );
    assert_eq!(c.verify(a).await.expect("verify"), Verdict::Confirmed);
    let kick = find(&acts, "channel.kick", "user/U1/channel/C1");
    let e = c
        .apply(kick, &kick.key, &MemoryJournal::new())
        .expect_err_async()
        .await;
    assert!(matches!(e.class, ErrorClass::RateLimited { .. }), "{e:?}");
    assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(7)));
    assert_eq!(
        c.apply(kick, &kick.key, &MemoryJournal::new())
            .await
            .expect("kick"),
        Outcome::Done
    );
    assert_eq!(c.verify(kick).await.expect("verify"), Verdict::Confirmed);
    // Someone removed Ivan from C2 by hand: not_in_channel is already done.
    st.lock()
        .expect("state")
        .channels
        .get_mut("C2")
        .expect("C2")
        .1
        .remove("U1");
    let kick2 = find(&acts, "channel.kick", "user/U1/channel/C2");
    assert_eq!(
        c.apply(kick2, &kick2.key, &MemoryJournal::new())
            .await
            .expect("kick"),
        Outcome::AlreadyDone
    );
    // U3 stays in C1.
    assert!(st.lock().expect("state").channels["C1"].1.contains("U3"));

    // The deactivation carries the action key as a header and in the JSON note.
    let deact = find(&acts, "user.deactivate", "user/U1");
    assert_eq!(
        c.apply(deact, &deact.key, &MemoryJournal::new())
            .await
            .expect("deactivate"),
        Outcome::Done
    );
    assert_eq!(c.verify(deact).await.expect("verify"), Verdict::Confirmed);
    let seen = st.lock().expect("state").seen.clone();
    let sent = seen
        .iter()
        .find(|(m, u, _)| m == "POST" && u.starts_with("/users.deactivate"))
        .expect("sent");
    assert_eq!(sent.2.as_deref(), Some(deact.key.0.as_str()));
    // Rerun: the read by id sees `deleted: true` and sends nothing.
    let writes = st.lock().expect("state").writes;
    assert_eq!(
        c.apply(deact, &deact.key, &MemoryJournal::new())
            .await
            .expect("rerun"),
        Outcome::AlreadyDone
    );
    assert_eq!(st.lock().expect("state").writes, writes);
    // The manual step is a person's (connector `manual`), never sent to the system; if it
    // were handed to the connector anyway, it sends nothing.
    let manual = find(&acts, "user.confirm_devices", "chat.user/U1");
    assert_eq!(manual.connector, "manual");
    let writes = st.lock().expect("state").writes;
    assert!(matches!(
        c.apply(manual, &manual.key, &MemoryJournal::new())
            .await
            .expect("manual"),
        Outcome::Skipped { .. }
    ));
    assert_eq!(st.lock().expect("state").writes, writes);
}

/// A trait to await an expected error without a match at each call.
trait ExpectErr {
    async fn expect_err_async(self) -> revoke_core::ConnectorError;
}

impl<F: std::future::Future<Output = Result<Outcome, revoke_core::ConnectorError>>> ExpectErr
    for F
{
    async fn expect_err_async(self) -> revoke_core::ConnectorError {
        match self.await {
            Ok(o) => panic!("expected an error, got {o:?}"),
            Err(e) => e,
        }
    }
}

#[tokio::test]
async fn a_read_by_id_answering_someone_else_stops_the_write() {
    let (base, st) = serve(seeded()).await;
    let c = connector(&base);
    let (_, acts) = plan(&c, &ivan()).await;
    let deact = find(&acts, "user.deactivate", "user/U1");
    st.lock().expect("state").info_answers = Some("U3".into());
    let writes = st.lock().expect("state").writes;
    let e = c
        .apply(deact, &deact.key, &MemoryJournal::new())
        .expect_err_async()
        .await;
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "identity_changed")
    );
    assert!(
        e.message.contains("U1") && e.message.contains("U3"),
        "{}",
        e.message
    );
    assert_eq!(st.lock().expect("state").writes, writes, "a write was sent");
    assert!(matches!(
        c.verify(deact).await.expect("verify"),
        Verdict::NotConfirmed { .. }
    ));
}

#[tokio::test]
async fn hostile_subject_values_cannot_change_a_urls_shape() {
    let (base, st) = serve(seeded()).await;
    let c = connector(&base);
    for bad in [
        "../admin",
        "a/b",
        "x?user=U1",
        "x#frag",
        "%2F..%2Fadmin",
        "a\"b'c",
        "a\r\nX-Evil: 1",
        "ivan/../ivan",
    ] {
        let mut s = Subject::new(bad);
        s.email = Some(format!("{bad}@example.com"));
        let d = c.discover(&s).await.expect("discover answers");
        assert!(!d.found, "{bad:?} matched {d:#?}");
    }
    let seen = st.lock().expect("state").seen.clone();
    for (_, uri, _) in &seen {
        let (path, q) = uri.split_once('?').unwrap_or((uri, ""));
        assert!(
            !uri.contains('#') && !uri.contains(' ') && !uri.contains('\r'),
            "{uri}"
        );
        if let Some(name) = path.strip_prefix("/users.byName/") {
            assert!(
                !name.contains('/'),
                "a value broke out of its segment: {uri}"
            );
        } else {
            assert!(
                ["/users.lookupByEmail", "/users.list"].contains(&path),
                "{uri}"
            );
        }
        let keys: BTreeSet<&str> = q
            .split('&')
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.split('=').next())
            .collect();
        assert!(
            keys.is_subset(&["email", "cursor"].into_iter().collect()),
            "{uri}"
        );
    }
    assert!(
        seen.iter().any(|(_, u, _)| u == "/users.byName/..%2Fadmin"),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|(_, u, _)| u == "/users.byName/%252F..%252Fadmin"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_subject_nobody_matches_is_not_found_and_nothing_is_planned() {
    let (base, _st) = serve(seeded()).await;
    let c = connector(&base);
    let mut s = Subject::new("iva");
    s.email = Some("iva@example.com".into());
    let (d, acts) = plan(&c, &s).await;
    assert!(!d.found && acts.is_empty(), "{d:#?}");
}

#[tokio::test]
async fn a_captured_value_in_a_state_makes_a_second_regeneration_already_done() {
    let (base, st) = serve(seeded()).await;
    let c = connector(&base);
    let (_, acts) = plan(&c, &ivan()).await;
    let regen = find(&acts, "user.regenerate_invite", "user/U1");
    assert_eq!(
        regen.params.get("item.invite_id").map(String::as_str),
        Some("inv-U1")
    );
    assert_eq!(
        c.apply(regen, &regen.key, &MemoryJournal::new())
            .await
            .expect("apply"),
        Outcome::Done
    );
    assert_eq!(c.verify(regen).await.expect("verify"), Verdict::Confirmed);
    // After a crash the executor applies again: the invite id is no longer the one discovery
    // saw, so the state holds and nothing is sent.
    let writes = st.lock().expect("state").writes;
    assert_eq!(
        c.apply(regen, &regen.key, &MemoryJournal::new())
            .await
            .expect("again"),
        Outcome::AlreadyDone
    );
    assert_eq!(st.lock().expect("state").writes, writes);
}

#[tokio::test]
async fn a_write_by_name_uses_the_name_the_read_by_id_answers_now() {
    let (base, st) = serve(seeded()).await;
    let c = connector(&base);
    let (_, acts) = plan(&c, &ivan()).await;
    let unlist = find(&acts, "user.unlist", "user/U1");
    assert_eq!(
        unlist.params.get("item.name").map(String::as_str),
        Some("ivan")
    );
    // Ivan is renamed after the plan, and someone new takes his old name in the directory.
    {
        let mut s = st.lock().expect("state");
        s.users[0]["name"] = json!("ivan.old");
        s.directory.insert("ivan.old".into());
    }
    assert_eq!(
        c.apply(unlist, &unlist.key, &MemoryJournal::new())
            .await
            .expect("apply"),
        Outcome::Done
    );
    let s = st.lock().expect("state");
    assert!(
        !s.directory.contains("ivan.old"),
        "the pinned user, by its name now"
    );
    assert!(
        s.directory.contains("ivan"),
        "the old name, now someone else's, is untouched"
    );
    let sent = s
        .seen
        .iter()
        .filter(|(m, u, _)| m == "POST" && u.starts_with("/directory.remove"))
        .count();
    assert_eq!(sent, 1);
}

#[tokio::test]
async fn a_token_exchange_fetches_one_token_for_many_calls() {
    let (base, st) = serve(seeded()).await;
    let mut v = revoke_connector_http::parse_toml(DEFINITION).expect("parses");
    v["kind"] = json!(KIND);
    v["base_url"] = json!(base);
    v["auth"] = json!({
        "type": "token_exchange",
        "url": format!("{base}/auth/token"),
        "json": {"identifier": "acme"},
        "secret_field": "secret",
        "secret": "pat-1",
        "token_path": "$.access_token",
    });
    let c = HttpConnector::from_params(INSTANCE, &v).unwrap_or_else(|e| panic!("valid: {e:#?}"));
    for _ in 0..3 {
        let (d, _) = plan(&c, &ivan()).await;
        assert_eq!(d.accounts.len(), 2);
    }
    assert_eq!(st.lock().expect("state").exchanged, 1);
    // No secret in the connector's Debug output (what a panic or a log of it would show).
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("pat-1") && !shown.contains("jwt-1"),
        "{shown}"
    );
    let bearer = connector(&base);
    assert!(!format!("{bearer:?}").contains("xoxb-test"));
    // A definition file may not hold the secret itself.
    let issues = revoke_connector_http::check_file_secrets("f", &v);
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0].path, "f.auth.secret");
}

/// A one-resource definition reading `path` with `paginate`.
struct Listing(Value);

impl Listing {
    fn with_max_pages(mut self, n: u64) -> HttpConnector {
        self.0["resources"]["user"]["discover"][0]["max_pages"] = json!(n);
        HttpConnector::from_params(INSTANCE, &self.0).unwrap_or_else(|e| panic!("valid: {e:#?}"))
    }
}

fn listing(base: &str, paginate: Value, path: &str) -> Listing {
    Listing(json!({
        "kind": KIND,
        "system": "Chat",
        "base_url": base,
        "auth": {"type": "bearer", "token": "xoxb-test"},
        "resources": {"user": {
            "id": "$.id",
            "name": "$.name",
            "discover": [{"path": path, "items": "$.people[*]", "paginate": paginate, "max_pages": 5}],
            "match": [{"path": "$.profile.email", "equals": "{{subject.email}}", "case": "insensitive"}],
        }},
    }))
}

#[tokio::test]
async fn link_and_page_pagination_read_every_page_and_a_link_elsewhere_is_refused() {
    let (base, st) = serve(seeded()).await;
    // Ivan's two accounts are on pages 1 and 2 of 3.
    for (paginate, path) in [
        (json!({"type": "link"}), "/people.linked"),
        (
            json!({"type": "page", "param": "page", "start": 1, "size_param": "per_page", "size": 1}),
            "/people.paged",
        ),
        (
            json!({"type": "offset", "param": "startIndex", "start": 1, "total": "$.totalResults"}),
            "/people.offset",
        ),
    ] {
        let c = listing(&base, paginate, path).with_max_pages(5);
        let before = st.lock().expect("state").seen.len();
        let d = c.discover(&ivan()).await.expect("discover");
        let mut ids: Vec<&str> = d.accounts.iter().map(|a| a.id.as_str()).collect();
        ids.sort();
        assert_eq!(ids, vec!["U1", "U2"], "{path}");
        let pages = st.lock().expect("state").seen.len() - before;
        // link and offset (totalResults): 3 pages; page: 3 full pages and the empty fourth.
        let want = if path == "/people.paged" { 4 } else { 3 };
        assert_eq!(pages, want, "{path}");
    }
    let c = listing(&base, json!({"type": "link"}), "/people.elsewhere").with_max_pages(5);
    let e = c
        .discover(&ivan())
        .await
        .expect_err("a link to another host");
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "foreign_url")
    );
    // A listing longer than max_pages is an error, never a silent truncation.
    let c = listing(
        &base,
        json!({"type": "page", "param": "page", "start": 1, "size_param": "per_page", "size": 1}),
        "/people.paged",
    )
    .with_max_pages(2);
    let e = c.discover(&ivan()).await.expect_err("too many pages");
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "too_many_pages")
    );
}

#[tokio::test]
async fn discover_many_sends_a_listing_shared_by_the_subjects_once() {
    let (base, st) = serve(seeded()).await;
    let c = connector(&base);
    let mut ivana = Subject::new("ivana");
    ivana.email = Some("ivana@example.com".into());
    let subjects = vec![ivan(), ivana, Subject::new("nobody")];
    let count = |path: &str| {
        st.lock()
            .expect("state")
            .seen
            .iter()
            .filter(|(_, u, _)| u.starts_with(path))
            .count()
    };
    let mut one_by_one = Vec::new();
    for s in &subjects {
        one_by_one.push(c.discover(s).await.expect("discover"));
    }
    let (lists_each, all_each) = (count("/users.list"), st.lock().expect("state").seen.len());
    let many = c.discover_many(&subjects).await.expect("discover_many");
    let lists_many = count("/users.list") - lists_each;
    let all_many = st.lock().expect("state").seen.len() - all_each;
    assert_eq!(
        serde_json::to_value(&many).expect("json"),
        serde_json::to_value(&one_by_one).expect("json"),
        "the same findings either way"
    );
    // users.list has 3 pages of one user and names no subject value: read once for the three.
    assert_eq!((lists_each, lists_many), (9, 3));
    eprintln!("3 subjects: {all_each} requests one by one, {all_many} with discover_many");
    assert!(all_many < all_each);
}

/// `verify_many` sends a verify request that renders the same for several actions once (the
/// user read by id for two of its actions, the directory listing for both accounts), with the
/// verdicts of one by one.
#[tokio::test]
async fn verify_many_shares_a_read_among_actions_with_the_same_verdicts() {
    let (base, _st) = serve(seeded()).await;
    let mut v = revoke_connector_http::parse_toml(DEFINITION).expect("parses");
    v["kind"] = json!(KIND);
    v["base_url"] = json!(base);
    v["batch_verify"] = json!(true);
    let c = HttpConnector::from_params(INSTANCE, &v).unwrap_or_else(|e| panic!("{e:#?}"));
    assert!(c.batch_verification());
    let (_, acts) = plan(&c, &ivan()).await;
    let acts: Vec<Action> = acts
        .into_iter()
        .filter(|a| a.connector != "manual")
        .collect();
    let mut order = acts.clone();
    let rank = |k: &str| match k {
        "user.reset_sessions" => 0,
        "channel.kick" => 1,
        _ => 2,
    };
    order.sort_by_key(|a| rank(&a.kind.0));
    for a in &order {
        c.apply(a, &a.key, &MemoryJournal::new())
            .await
            .unwrap_or_else(|e| panic!("{} {}: {e}", a.kind.0, a.target));
    }
    let before = c.calls();
    let one_by_one: Vec<String> = {
        let mut out = Vec::new();
        for a in &acts {
            out.push(format!("{:?}", c.verify(a).await.expect("verify")));
        }
        out
    };
    let single = c.calls() - before;
    let before = c.calls();
    let together: Vec<String> = c
        .verify_many(&acts)
        .await
        .into_iter()
        .map(|r| format!("{:?}", r.expect("verify")))
        .collect();
    let shared = c.calls() - before;
    assert_eq!(one_by_one, together);
    assert!(together.iter().all(|v| v == "Confirmed"), "{together:#?}");
    println!(
        "verify of {} actions: {single} requests one by one, {shared} together",
        acts.len()
    );
    assert!(shared < single, "{shared} !< {single}");
}
