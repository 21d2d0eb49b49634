//! The engine of `kind = "http"` against two real SCIM servers with different status semantics,
//! through one definition (tests/fixtures/scim.toml, the doc's example):
//! - scim2-server 0.8.3 (a tenant per test): PATCH and DELETE answer 204;
//! - Canaille 0.3.6 (one shared server, names prefixed per test): PATCH answers 200 with the
//!   resource and a new ETag, a stale If-Match 412, a second DELETE 404; it ignores `filter`
//!   (every list answers every user, so the match rules decide) and answers 500 to `count` (the
//!   definition's pagination sends none). Its token comes from its own OAuth token endpoint
//!   (client credentials), as the definition's `auth` fetches it.

use std::sync::OnceLock;

use revoke_connector_http::{HttpConnector, KIND};
use revoke_core::{
    Action, Connector, Discovery, ErrorClass, JobId, MemoryJournal, Outcome, Subject, Verdict,
};
use revoke_testkit::{Canaille, Scim2Server};
use serde_json::{json, Value};

const INSTANCE: &str = "app";
const DEFINITION: &str = include_str!("fixtures/scim.toml");
/// The same definition in YAML, given through `definition_file` as the config layer hands it
/// over (the file's text in `definition`).
const DEFINITION_YAML: &str = include_str!("fixtures/scim.yaml");

fn scim2() -> &'static Scim2Server {
    static SERVER: OnceLock<Scim2Server> = OnceLock::new();
    SERVER.get_or_init(|| Scim2Server::start().expect("scim2-server starts"))
}

fn canaille() -> &'static Canaille {
    static SERVER: OnceLock<Canaille> = OnceLock::new();
    SERVER.get_or_init(|| Canaille::start().expect("canaille starts"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Scim2,
    Canaille,
}

struct App {
    url: String,
    token: String,
    prefix: String,
    server: Server,
    http: reqwest::Client,
    /// The definition from the YAML file instead of the TOML one.
    yaml: bool,
}

impl App {
    fn new(server: Server, test: &str) -> App {
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
        App {
            url,
            token,
            prefix,
            server,
            http: revoke_http::client(std::time::Duration::from_secs(60)).expect("client"),
            yaml: false,
        }
    }

    fn n(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The definition as an instance table: the server's url, and its credential (scim2-server:
    /// a bearer token; Canaille: client credentials at its token endpoint).
    fn params(&self, edit: impl FnOnce(&mut Value)) -> Value {
        let mut v = if self.yaml {
            json!({"definition_file": "/etc/revoked/scim.yaml", "definition": DEFINITION_YAML})
        } else {
            revoke_connector_http::parse_toml(DEFINITION).expect("the fixture parses")
        };
        v["kind"] = json!(KIND);
        v["base_url"] = json!(self.url);
        v["auth"] = match self.server {
            Server::Scim2 => json!({"type": "bearer", "token": self.token}),
            Server::Canaille => {
                let (id, secret) = canaille().client_credentials();
                json!({
                    "type": "oauth2_client_credentials",
                    "token_url": format!("http://127.0.0.1:{}/oauth/token", canaille().port()),
                    "client_id": id,
                    "client_secret": secret,
                    "scopes": ["openid"],
                })
            }
        };
        edit(&mut v);
        v
    }

    fn connector(&self, edit: impl FnOnce(&mut Value)) -> HttpConnector {
        HttpConnector::from_params(INSTANCE, &self.params(edit))
            .unwrap_or_else(|e| panic!("the definition is valid: {e:#?}"))
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

    /// Creates a user; returns its id.
    async fn user(&self, name: &str, email: &str) -> String {
        let user_name = self.n(name);
        let (status, v) = self
            .call(
                reqwest::Method::POST,
                "/Users",
                Some(json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": user_name,
                    "name": {"formatted": user_name, "familyName": user_name},
                    "emails": [{"value": email}],
                    "active": true,
                })),
            )
            .await;
        assert_eq!(status, 201, "create {user_name}: {v}");
        v["id"].as_str().expect("id").to_string()
    }

    async fn get(&self, id: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, &format!("/Users/{id}"), None)
            .await
    }
}

fn actions(d: &Discovery, c: &HttpConnector, s: &Subject) -> Vec<Action> {
    Action::from_proposals(&JobId("job-1".into()), INSTANCE, d, c.plan(s, d))
        .expect("the proposals name discovered accounts")
}

async fn apply(c: &HttpConnector, a: &Action) -> Outcome {
    c.apply(a, &a.key, &MemoryJournal::new())
        .await
        .unwrap_or_else(|e| panic!("{} {}: {e}", a.kind, a.target))
}

/// The plan with ids and the test's prefix replaced by names, so both servers give one snapshot.
fn normalized(acts: &[Action], ids: &[(&str, &str)], prefix: &str) -> Value {
    let fix = |s: &str| {
        let mut s = s.replace(prefix, "");
        for (id, name) in ids {
            s = s.replace(id, name);
        }
        s
    };
    let by_id: std::collections::BTreeMap<_, _> =
        acts.iter().map(|a| (a.id.clone(), a.clone())).collect();
    let mut out: Vec<Value> = acts
        .iter()
        .map(|a| {
            json!({
                "kind": a.kind.0,
                "target": fix(&a.target),
                "phase": a.phase.as_str(),
                "summary": fix(&a.summary),
                "account": fix(&a.account.as_ref().map(|p| p.to_string()).unwrap_or_default()),
                "after": a.depends_on.iter().map(|d| {
                    let b = &by_id[d];
                    format!("{} {}", b.kind.0, fix(&b.target))
                }).collect::<Vec<_>>(),
                "grace_days": a.grace.map(|g| g.as_secs() / 86_400),
            })
        })
        .collect();
    out.sort_by_key(|v| v.to_string());
    Value::Array(out)
}

async fn person_with_an_alt_account(server: Server, test: &str, yaml: bool) {
    let mut app = App::new(server, test);
    app.yaml = yaml;
    let mail = format!("{}alice@example.com", app.prefix);
    let alice = app.user("alice", &mail).await;
    // The person's sysadmin alt account shares the email; a neighbour shares a prefix only.
    let alt = app.user("alice-sysadmin", &mail.to_uppercase()).await;
    let decoy = app
        .user("alice2", &format!("{}alice2@example.com", app.prefix))
        .await;
    let c = app.connector(|_| {});
    let mut s = Subject::new(app.n("alice"));
    s.email = Some(mail.clone());

    let calls0 = c.calls();
    let d = c.discover(&s).await.expect("discover");
    let discovery_calls = c.calls() - calls0;
    assert!(d.found);
    let mut got: Vec<(String, String)> = d
        .accounts
        .iter()
        .map(|a| (a.id.clone(), a.matched_by.clone()))
        .collect();
    got.sort();
    let mut want = vec![alice.clone(), alt.clone()];
    want.sort();
    assert_eq!(
        got.iter().map(|g| g.0.clone()).collect::<Vec<_>>(),
        want,
        "{d:#?}"
    );
    let why = |id: &str| {
        got.iter()
            .find(|g| g.0 == id)
            .map(|g| g.1.clone())
            .unwrap_or_default()
    };
    assert!(why(&alice).contains("$.userName ="), "{}", why(&alice));
    assert!(why(&alt).contains("$.emails[*].value ="), "{}", why(&alt));
    assert!(why(&alt).contains("case ignored"), "{}", why(&alt));
    let alt_account = d.accounts.iter().find(|a| a.id == alt).expect("alt");
    // Canaille keeps emails lowercased, scim2-server as given.
    assert!(
        alt_account
            .identifiers
            .iter()
            .any(|i| i.eq_ignore_ascii_case(&mail)),
        "{alt_account:?}"
    );

    let acts = actions(&d, &c, &s);
    let ids = [
        (alice.as_str(), "<alice>"),
        (alt.as_str(), "<alice-sysadmin>"),
    ];
    insta::assert_json_snapshot!("plan_two_accounts", normalized(&acts, &ids, &app.prefix));

    // Apply in order: every deactivate, then every delete.
    let before = c.mutations();
    let calls1 = c.calls();
    for kind in ["user.deactivate", "user.delete"] {
        for a in acts.iter().filter(|a| a.kind.0 == kind) {
            assert_eq!(apply(&c, a).await, Outcome::Done, "{}", a.target);
            assert_eq!(
                c.verify(a).await.expect("verify"),
                Verdict::Confirmed,
                "{kind} {}",
                a.target
            );
        }
    }
    assert_eq!(c.mutations() - before, 4);
    assert_eq!(app.get(&alice).await.0, 404);
    assert_eq!(app.get(&alt).await.0, 404);
    let (status, v) = app.get(&decoy).await;
    assert_eq!((status, v["active"].clone()), (200, json!(true)));

    // The rerun reads first and sends nothing: the deactivated and deleted users are gone.
    let apply_calls = c.calls() - calls1;
    let before = c.mutations();
    let calls2 = c.calls();
    for a in &acts {
        assert_eq!(apply(&c, a).await, Outcome::AlreadyDone, "{}", a.kind);
    }
    assert_eq!(c.mutations(), before, "the rerun sent a write");
    let rerun_calls = c.calls() - calls2;
    // The cost per leaver (two accounts), one line per server in the test output.
    eprintln!(
        "{server:?}: discovery {discovery_calls} requests (token included), apply + verify of 4 actions {apply_calls} (4 reads, 4 writes, 4 verify reads), rerun {rerun_calls} (reads only)"
    );
    if server == Server::Scim2 {
        // One GET per discovery request (one page each), a read before each write, a read to verify.
        assert_eq!((discovery_calls, apply_calls, rerun_calls), (2, 12, 4));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim2_a_person_and_their_alt_account_are_each_planned_applied_and_rerun_idle() {
    person_with_an_alt_account(Server::Scim2, "alt", false).await;
}

/// The YAML definition (`definition_file`), against the same real server: the same plan
/// snapshot, the same costs, a rerun as idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim2_the_yaml_definition_plans_applies_and_reruns_as_the_toml_one() {
    person_with_an_alt_account(Server::Scim2, "yaml", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canaille_a_person_and_their_alt_account_are_each_planned_applied_and_rerun_idle() {
    person_with_an_alt_account(Server::Canaille, "alt", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim2_an_already_disabled_user_is_not_deactivated_again() {
    let app = App::new(Server::Scim2, "disabled");
    let id = app.user("dora", "dora@example.com").await;
    let (st, _) = app
        .call(
            reqwest::Method::PATCH,
            &format!("/Users/{id}"),
            Some(
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "active", "value": false}]}),
            ),
        )
        .await;
    assert!(st == 200 || st == 204, "{st}");
    let c = app.connector(|_| {});
    let s = Subject::new("dora");
    let d = c.discover(&s).await.expect("discover");
    let acts = actions(&d, &c, &s);
    assert_eq!(
        acts.iter().map(|a| a.kind.0.as_str()).collect::<Vec<_>>(),
        vec!["user.delete"]
    );
    assert!(
        d.notes
            .iter()
            .any(|n| n.contains("deactivate not planned, it is already disabled")),
        "{:?}",
        d.notes
    );
}

/// Canaille's own semantics through the rules: a stale If-Match is 412 (a conflict, nothing
/// changed), a PATCH answers 200 with a body, and without a read by id a second DELETE is sent
/// and its 404 is `already_done` by the rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canaille_stale_etag_is_a_conflict_and_a_second_delete_is_already_done_by_the_rule() {
    let app = App::new(Server::Canaille, "etag");
    let id = app.user("bob", "etag-bob@example.com").await;
    let c = app.connector(|v| {
        let user = &mut v["resources"]["user"];
        user.as_object_mut().expect("table").remove("read");
        let acts = user["actions"].as_array_mut().expect("actions");
        acts[0]["request"]["headers"]["If-Match"] = json!("{{item.meta.version}}");
        for a in acts.iter_mut() {
            a["verify"]["request"] = json!({"path": "/Users/{{item.id}}"});
        }
    });
    let s = Subject::new(app.n("bob"));
    let d = c.discover(&s).await.expect("discover");
    let acts = actions(&d, &c, &s);
    let deactivate = acts
        .iter()
        .find(|a| a.kind.0 == "user.deactivate")
        .expect("deactivate");
    assert!(
        deactivate.params.contains_key("item.meta.version"),
        "{:?}",
        deactivate.params
    );

    // Someone else changes bob after discovery (ETags have one-second resolution).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (st, _) = app
        .call(
            reqwest::Method::PATCH,
            &format!("/Users/{id}"),
            Some(
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "displayName", "value": "Bob B"}]}),
            ),
        )
        .await;
    assert_eq!(st, 200);
    let e = c
        .apply(deactivate, &deactivate.key, &MemoryJournal::new())
        .await
        .expect_err("a stale If-Match is refused");
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Conflict, "precondition_failed")
    );
    assert_eq!(
        app.get(&id).await.1["active"],
        json!(true),
        "nothing changed"
    );

    // Planned again with the ETag as it is now: 200 with the resource is done.
    let d = c.discover(&s).await.expect("discover");
    let acts = actions(&d, &c, &s);
    let deactivate = acts
        .iter()
        .find(|a| a.kind.0 == "user.deactivate")
        .expect("deactivate");
    assert_eq!(apply(&c, deactivate).await, Outcome::Done);
    assert_eq!(
        c.verify(deactivate).await.expect("verify"),
        Verdict::Confirmed
    );
    let delete = acts
        .iter()
        .find(|a| a.kind.0 == "user.delete")
        .expect("delete");
    let before = c.mutations();
    assert_eq!(apply(&c, delete).await, Outcome::Done);
    assert_eq!(apply(&c, delete).await, Outcome::AlreadyDone);
    assert_eq!(
        c.mutations() - before,
        2,
        "without a read by id the second DELETE is sent (and answered 404)"
    );
    assert_eq!(c.verify(delete).await.expect("verify"), Verdict::Confirmed);
}
