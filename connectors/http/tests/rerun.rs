//! Rerun silence: an action's `before` read (sent before the write on every attempt) makes a
//! second apply of the same plan (the executor's retry after a crash) send no write, while a
//! read that shows the thing still there still writes, and one that shows it now someone
//! else's refuses. Against an in-process API with Mattermost's membership habits (a child item
//! read by both ids, a team membership removed softly with `delete_at`, an invite id
//! regenerated), a Slack-like member listing read over several pages, and devices assigned to
//! people. The API is ours (classification and counting, as docs/connectors.md allows); the
//! shipped recipes use the same fields against their vendor-checked stand-ins.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use revoke_connector_http::{validate, HttpConnector, KIND};
use revoke_core::{Action, Connector, ErrorClass, JobId, MemoryJournal, Outcome, Subject, Verdict};
use serde_json::{json, Value};

const INSTANCE: &str = "team_chat";

const DEFINITION: &str = r#"
system = "TeamChat"
base_url = "http://placeholder"
rate_limit = { requests = 1000, per_secs = 1 }

[resources.user]
id = "$.id"
id_kind = "user id"
name = "$.username"
read = { path = "/users/{{item.id}}", gone = [404] }

[[resources.user.discover]]
path = "/users/username/{{subject.username}}"
absent = [404]

[[resources.user.match]]
path = "$.username"
equals = "{{subject.username}}"

# Private channels; membership listed a member id a page (Slack's conversations.members).
[resources.channel]
within = "user"
id = "$.id"
name = "$.name"

[[resources.channel.discover]]
path = "/users/{{parent.id}}/channels"
items = "$[*]"

[[resources.channel.actions]]
name = "remove_member"
phase = "revoke"
summary = "remove {{parent.username}} from {{item.name}}"
before = { path = "/channels/{{item.id}}/member_ids", items = "$.ids[*]", paginate = { type = "cursor", next = "$.next", param = "cursor" }, present = [{ path = "$", equals = "{{parent.id}}" }], absent = [404] }
request = { method = "DELETE", path = "/channels/{{item.id}}/members/{{parent.id}}" }
outcomes = [{ status = [200], result = "done" }, { status = [404], result = "already_done" }]
verify = { request = { path = "/channels/{{item.id}}/members/{{parent.id}}" }, confirmed = [{ status = [404] }] }

# Invite-only teams: the membership read by both ids, removed softly (delete_at set).
[resources.team]
within = "user"
id = "$.id"
name = "$.name"

[[resources.team.discover]]
path = "/users/{{parent.id}}/teams"
items = "$[*]"

[[resources.team.actions]]
name = "remove_member"
phase = "revoke"
summary = "remove {{parent.username}} from team {{item.name}}"
before = { path = "/teams/{{item.id}}/members/{{parent.id}}", absent = [404], present = [{ path = "$.user_id", equals = "{{parent.id}}" }, { path = "$.delete_at", equals = 0 }] }
request = { method = "DELETE", path = "/teams/{{item.id}}/members/{{parent.id}}" }
outcomes = [{ status = [200], result = "done" }, { status = [404], result = "already_done" }]
verify = { request = { path = "/teams/{{item.id}}/members/{{parent.id}}" }, confirmed = [{ status = [404] }, { status = [200], body = [{ path = "$.delete_at", exists = true }, { path = "$.delete_at", not_equals = 0 }] }] }

# The invite id discovery saw against the team's now: regenerated once, never twice.
[[resources.team.actions]]
name = "regenerate_invite_id"
phase = "revoke"
after = ["remove_member"]
summary = "regenerate the invite id of team {{item.name}}"
before = { path = "/teams/{{item.id}}", absent = [404], present = [{ path = "$.invite_id", equals = "{{item.invite_id}}" }] }
request = { method = "POST", path = "/teams/{{item.id}}/regenerate_invite_id" }
outcomes = [{ status = [200], result = "done" }, { status = [404], result = "already_done" }]
verify = { request = { path = "/teams/{{item.id}}" }, confirmed = [{ status = [200], body = [{ path = "$.invite_id", not_equals = "{{item.invite_id}}" }] }, { status = [404] }] }

# Devices assigned to people: one handed to someone else since the plan is not theirs to take.
[resources.device]
within = "user"
id = "$.id"
name = "$.name"

[[resources.device.discover]]
path = "/users/{{parent.id}}/devices"
items = "$[*]"

[[resources.device.actions]]
name = "unassign"
phase = "revoke"
summary = "take device {{item.name}} from {{parent.username}}"
before = { path = "/devices/{{item.id}}", absent = [404], refuse = [{ path = "$.assigned_to", exists = true }, { path = "$.assigned_to", not_equals = "{{parent.id}}" }], present = [{ path = "$.assigned_to", equals = "{{parent.id}}" }] }
request = { method = "POST", path = "/devices/{{item.id}}/unassign" }
outcomes = [{ status = [200], result = "done" }, { status = [404], result = "already_done" }]
verify = { request = { path = "/devices/{{item.id}}" }, confirmed = [{ status = [200], body = [{ path = "$.assigned_to", not_equals = "{{parent.id}}" }] }, { status = [404] }] }
"#;

#[derive(Debug, Default)]
struct World {
    /// id -> username
    users: BTreeMap<String, String>,
    /// channel id -> (name, member ids)
    channels: BTreeMap<String, (String, BTreeSet<String>)>,
    /// team id -> (name, invite id, user id -> delete_at)
    teams: BTreeMap<String, (String, String, BTreeMap<String, u64>)>,
    /// device id -> (name, assigned to)
    devices: BTreeMap<String, (String, Option<String>)>,
    /// Every write: method and path.
    writes: Vec<String>,
    /// Every read: path and query.
    reads: Vec<String>,
    regenerated: u32,
}

type Shared = Arc<Mutex<World>>;

fn nf() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"id": "not_found"})),
    )
        .into_response()
}

async fn handle(State(st): State<Shared>, method: Method, uri: Uri, _body: Bytes) -> Response {
    let mut w = st.lock().expect("state");
    let path = uri.path().to_string();
    if method == Method::GET {
        w.reads.push(uri.to_string());
    } else {
        w.writes.push(format!("{method} {path}"));
    }
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let q: BTreeMap<String, String> = uri
        .query()
        .map(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let ok = |v: Value| (StatusCode::OK, axum::Json(v)).into_response();
    match (method.as_str(), seg.as_slice()) {
        ("GET", ["users", "username", name]) => {
            match w.users.iter().find(|(_, n)| n.as_str() == *name) {
                Some((id, n)) => ok(json!({"id": id, "username": n})),
                None => nf(),
            }
        }
        ("GET", ["users", id]) => match w.users.get(*id) {
            Some(n) => ok(json!({"id": id, "username": n})),
            None => nf(),
        },
        ("GET", ["users", id, "channels"]) => ok(Value::Array(
            w.channels
                .iter()
                .filter(|(_, (_, m))| m.contains(*id))
                .map(|(c, (n, _))| json!({"id": c, "name": n}))
                .collect(),
        )),
        ("GET", ["users", id, "teams"]) => ok(Value::Array(
            w.teams
                .iter()
                .filter(|(_, (_, _, m))| m.get(*id) == Some(&0))
                .map(|(t, (n, inv, _))| json!({"id": t, "name": n, "invite_id": inv}))
                .collect(),
        )),
        ("GET", ["users", id, "devices"]) => ok(Value::Array(
            w.devices
                .iter()
                .filter(|(_, (_, a))| a.as_deref() == Some(*id))
                .map(|(d, (n, a))| json!({"id": d, "name": n, "assigned_to": a}))
                .collect(),
        )),
        // One member id a page, the cursor the next index.
        ("GET", ["channels", c, "member_ids"]) => match w.channels.get(*c) {
            Some((_, m)) => {
                let at: usize = q.get("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
                let ids: Vec<&String> = m.iter().skip(at).take(1).collect();
                let next = if at + 1 < m.len() {
                    (at + 1).to_string()
                } else {
                    String::new()
                };
                ok(json!({"ids": ids, "next": next}))
            }
            None => nf(),
        },
        ("GET", ["channels", c, "members", u]) => match w.channels.get(*c) {
            Some((_, m)) if m.contains(*u) => ok(json!({"channel_id": c, "user_id": u})),
            _ => nf(),
        },
        ("DELETE", ["channels", c, "members", u]) => {
            match w.channels.get_mut(*c).map(|(_, m)| m.remove(*u)) {
                Some(true) => ok(json!({"status": "OK"})),
                _ => nf(),
            }
        }
        ("GET", ["teams", t]) => match w.teams.get(*t) {
            Some((n, inv, _)) => ok(json!({"id": t, "name": n, "invite_id": inv})),
            None => nf(),
        },
        ("GET", ["teams", t, "members", u]) => {
            match w.teams.get(*t).and_then(|(_, _, m)| m.get(*u)) {
                Some(d) => ok(json!({"team_id": t, "user_id": u, "delete_at": d})),
                None => nf(),
            }
        }
        // Mattermost removes softly: the membership stays with delete_at set, and a second
        // removal answers 200 again (a write the read before it avoids).
        ("DELETE", ["teams", t, "members", u]) => {
            match w.teams.get_mut(*t).and_then(|(_, _, m)| m.get_mut(*u)) {
                Some(d) => {
                    *d = 1_700_000_000_000;
                    ok(json!({"status": "OK"}))
                }
                None => nf(),
            }
        }
        ("POST", ["teams", t, "regenerate_invite_id"]) => {
            w.regenerated += 1;
            let n = w.regenerated;
            match w.teams.get_mut(*t) {
                Some((name, inv, _)) => {
                    *inv = format!("inv-{t}-{n}");
                    ok(json!({"id": t, "name": name, "invite_id": inv}))
                }
                None => nf(),
            }
        }
        // An unassigned device has no `assigned_to` (null would count as a value for `exists`).
        ("GET", ["devices", d]) => match w.devices.get(*d) {
            Some((n, Some(a))) => ok(json!({"id": d, "name": n, "assigned_to": a})),
            Some((n, None)) => ok(json!({"id": d, "name": n})),
            None => nf(),
        },
        ("POST", ["devices", d, "unassign"]) => match w.devices.get_mut(*d) {
            Some((_, a)) => {
                *a = None;
                ok(json!({"status": "OK"}))
            }
            None => nf(),
        },
        _ => nf(),
    }
}

async fn serve(w: World) -> (String, Shared) {
    let st: Shared = Arc::new(Mutex::new(w));
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

fn seeded() -> World {
    let mut w = World::default();
    for (id, n) in [("U1", "ivan"), ("U2", "olga"), ("U3", "petr")] {
        w.users.insert(id.into(), n.into());
    }
    let set = |m: &[&str]| m.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    // Ivan is the last of three members: his id is on the listing's third page.
    w.channels
        .insert("C1".into(), ("secret".into(), set(&["U0", "U00", "U1"])));
    w.channels
        .insert("C2".into(), ("ops".into(), set(&["U1", "U2"])));
    let mut m = BTreeMap::new();
    m.insert("U1".to_string(), 0);
    m.insert("U2".to_string(), 0);
    w.teams
        .insert("T1".into(), ("board".into(), "inv-T1-0".into(), m));
    w.devices
        .insert("D1".into(), ("laptop".into(), Some("U1".into())));
    w
}

fn definition(with_before: bool) -> Value {
    let mut v = revoke_connector_http::parse_toml(DEFINITION).expect("parses");
    if !with_before {
        for r in v["resources"]
            .as_object_mut()
            .expect("resources")
            .values_mut()
        {
            let acts = r.get_mut("actions").and_then(Value::as_array_mut);
            for a in acts.into_iter().flatten() {
                a.as_object_mut().expect("action").remove("before");
            }
        }
    }
    v["kind"] = json!(KIND);
    v
}

fn connector(base: &str, with_before: bool) -> HttpConnector {
    let mut v = definition(with_before);
    v["base_url"] = json!(base);
    HttpConnector::from_params(INSTANCE, &v).unwrap_or_else(|e| panic!("valid: {e:#?}"))
}

/// The plan for ivan, in an order its dependencies allow (channels, teams, then invites,
/// devices: the test applies them one after another).
async fn plan(c: &HttpConnector) -> Vec<Action> {
    let s = Subject::new("ivan");
    let d = c.discover(&s).await.expect("discover");
    let mut acts = Action::from_proposals(&JobId("job-1".into()), INSTANCE, &d, c.plan(&s, &d))
        .expect("the proposals name discovered accounts");
    let rank = |a: &Action| match a.kind.0.as_str() {
        "channel.remove_member" => 0,
        "team.remove_member" => 1,
        "team.regenerate_invite_id" => 2,
        _ => 3,
    };
    acts.sort_by_key(|a| (rank(a), a.target.clone()));
    acts
}

fn find<'a>(acts: &'a [Action], kind: &str, target: &str) -> &'a Action {
    acts.iter()
        .find(|a| a.kind.0 == kind && a.target == target)
        .unwrap_or_else(|| panic!("no {kind} {target}"))
}

async fn apply_all(c: &HttpConnector, acts: &[Action]) -> Vec<Outcome> {
    let mut out = Vec::new();
    for a in acts {
        out.push(
            c.apply(a, &a.key, &MemoryJournal::new())
                .await
                .unwrap_or_else(|e| panic!("{} {}: {e}", a.kind.0, a.target)),
        );
    }
    out
}

fn writes(st: &Shared) -> usize {
    st.lock().expect("state").writes.len()
}

#[tokio::test]
async fn a_second_apply_of_the_same_plan_sends_no_write() {
    let (base, st) = serve(seeded()).await;
    let c = connector(&base, true);
    let acts = plan(&c).await;
    assert_eq!(
        acts.iter()
            .map(|a| format!("{} {}", a.kind.0, a.target))
            .collect::<Vec<_>>(),
        vec![
            "channel.remove_member user/U1/channel/C1",
            "channel.remove_member user/U1/channel/C2",
            "team.remove_member user/U1/team/T1",
            "team.regenerate_invite_id user/U1/team/T1",
            "device.unassign user/U1/device/D1",
        ]
    );
    assert_eq!(writes(&st), 0, "discovery wrote");
    let reads = |st: &Shared| st.lock().expect("state").reads.len();
    let r0 = reads(&st);
    let first = apply_all(&c, &acts).await;
    // The reads before the writes: every page of each listing (C1 3, C2 2), the team
    // membership, the team, the device.
    assert_eq!(reads(&st) - r0, 8);
    assert!(first.iter().all(|o| *o == Outcome::Done), "{first:?}");
    assert_eq!(writes(&st), 5);
    for a in &acts {
        assert_eq!(
            c.verify(a).await.expect("verify"),
            Verdict::Confirmed,
            "{}",
            a.target
        );
    }
    // The channel's member listing was read over every page before its removal: 3 pages for
    // C1 (ivan on the third).
    let c1_pages = st
        .lock()
        .expect("state")
        .reads
        .iter()
        .filter(|r| r.starts_with("/channels/C1/member_ids"))
        .count();
    assert_eq!(c1_pages, 3);

    // A crash, and the executor applies the same actions again: every read before the write
    // shows it done, and nothing is sent.
    let r1 = reads(&st);
    let second = apply_all(&c, &acts).await;
    // C1 has two members left (2 pages), C2 one (1 page), then 3 single reads.
    assert_eq!(reads(&st) - r1, 6);
    assert!(
        second.iter().all(|o| *o == Outcome::AlreadyDone),
        "{second:?}"
    );
    let w = st.lock().expect("state");
    assert_eq!(w.writes.len(), 5, "{:#?}", w.writes);
    assert_eq!(w.regenerated, 1, "the invite id was regenerated twice");
}

/// What `before` saves, measured against the same definition without it (the recipes' state
/// last session): the second apply re-sends every write the system's answers allow.
#[tokio::test]
async fn without_the_read_before_a_second_apply_writes_again() {
    let (base, st) = serve(seeded()).await;
    let c = connector(&base, false);
    let acts = plan(&c).await;
    apply_all(&c, &acts).await;
    assert_eq!(writes(&st), 5);
    let second = apply_all(&c, &acts).await;
    let w = st.lock().expect("state");
    println!(
        "without before, the second apply sent {} writes: {:?} ({second:?})",
        w.writes.len() - 5,
        &w.writes[5..]
    );
    assert_eq!(w.writes.len(), 10, "{:#?}", w.writes);
    assert_eq!(w.regenerated, 2);
}

#[tokio::test]
async fn a_read_showing_the_membership_still_there_still_writes() {
    let (base, st) = serve(seeded()).await;
    let c = connector(&base, true);
    let acts = plan(&c).await;
    let chan = find(&acts, "channel.remove_member", "user/U1/channel/C1");
    let team = find(&acts, "team.remove_member", "user/U1/team/T1");
    let invite = find(&acts, "team.regenerate_invite_id", "user/U1/team/T1");
    // The first attempts crashed before their writes reached the server: the reads show
    // everything still there, so each write is sent.
    for a in [chan, team, invite] {
        assert_eq!(
            c.apply(a, &a.key, &MemoryJournal::new())
                .await
                .expect("apply"),
            Outcome::Done
        );
    }
    assert_eq!(writes(&st), 3);
    // Someone added ivan back to the channel and the team after the removal: the read shows
    // him there again, and the removal is sent again (what the plan asked for holds again).
    {
        let mut w = st.lock().expect("state");
        w.channels.get_mut("C1").expect("C1").1.insert("U1".into());
        w.teams.get_mut("T1").expect("T1").2.insert("U1".into(), 0);
    }
    for a in [chan, team] {
        assert_eq!(
            c.apply(a, &a.key, &MemoryJournal::new())
                .await
                .expect("again"),
            Outcome::Done
        );
    }
    // The invite id is not the one discovery saw any more: not regenerated a second time.
    assert_eq!(
        c.apply(invite, &invite.key, &MemoryJournal::new())
            .await
            .expect("invite"),
        Outcome::AlreadyDone
    );
    let w = st.lock().expect("state");
    assert_eq!(w.writes.len(), 5, "{:#?}", w.writes);
    assert_eq!(w.regenerated, 1);
}

#[tokio::test]
async fn a_read_showing_the_item_now_someone_elses_refuses_and_sends_nothing() {
    let (base, st) = serve(seeded()).await;
    let c = connector(&base, true);
    let acts = plan(&c).await;
    let dev = find(&acts, "device.unassign", "user/U1/device/D1");
    // The laptop was handed to olga after the plan was made.
    st.lock()
        .expect("state")
        .devices
        .get_mut("D1")
        .expect("D1")
        .1 = Some("U2".into());
    let e = match c.apply(dev, &dev.key, &MemoryJournal::new()).await {
        Ok(o) => panic!("expected a refusal, got {o:?}"),
        Err(e) => e,
    };
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "identity_changed")
    );
    assert!(e.message.contains("U2"), "{}", e.message);
    assert_eq!(writes(&st), 0);
    // Unassigned since (nobody's): not there any more, already done, nothing sent.
    st.lock()
        .expect("state")
        .devices
        .get_mut("D1")
        .expect("D1")
        .1 = None;
    assert_eq!(
        c.apply(dev, &dev.key, &MemoryJournal::new())
            .await
            .expect("apply"),
        Outcome::AlreadyDone
    );
    assert_eq!(writes(&st), 0);
}

#[tokio::test]
async fn a_member_listing_longer_than_max_pages_is_an_error_not_a_silent_absence() {
    let (base, st) = serve(seeded()).await;
    let mut v = definition(true);
    v["base_url"] = json!(base);
    v["resources"]["channel"]["actions"][0]["before"]["max_pages"] = json!(2);
    let c = HttpConnector::from_params(INSTANCE, &v).unwrap_or_else(|e| panic!("{e:#?}"));
    let acts = plan(&c).await;
    let chan = find(&acts, "channel.remove_member", "user/U1/channel/C1");
    let e = match c.apply(chan, &chan.key, &MemoryJournal::new()).await {
        Ok(o) => panic!("expected too_many_pages, got {o:?}"),
        Err(e) => e,
    };
    assert_eq!(e.code, "too_many_pages");
    assert_eq!(writes(&st), 0);
}

#[test]
fn a_before_is_checked_like_every_request() {
    let mut v = definition(true);
    v["base_url"] = json!("https://chat.example.com");
    let b = &mut v["resources"]["device"]["actions"][0]["before"];
    b["method"] = json!("POST");
    b["present"][0]["equals"] = json!("{{item.nothing.}}");
    b["refuse"][0] = json!({"path": "$.x[", "exists": true});
    v["resources"]["user"]["actions"] = json!([{
        "name": "note", "phase": "manual", "summary": "ask",
        "before": {"path": "/users/{{item.id}}"}
    }]);
    let issues = validate("connectors.team_chat", &v).expect_err("refused");
    let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
    let at = "connectors.team_chat.resources.device.actions[0].before";
    for want in [
        format!("{at}.method"),
        format!("{at}.present[0].equals"),
        format!("{at}.refuse[0].path"),
        "connectors.team_chat.resources.user.actions[0]".to_string(),
    ] {
        assert!(paths.contains(&want.as_str()), "{want} not in {issues:#?}");
    }
}
