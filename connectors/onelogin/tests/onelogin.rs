//! The OneLogin connector against the OneLogin stand-in of crates/testkit: discovery, plan, apply
//! end to end, an idempotent rerun, a token expiring mid-job, the rate budget, the batch role
//! call, awkward names and config errors.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use revoke_connector_onelogin::{
    validate, OneLoginConfig, OneLoginConnector, OneLoginFactory, ACCOUNT, DELETE_USER,
    LOGOUT_USER, REMOVE_ROLE, ROLE_MEMBERSHIP, SUSPEND_USER,
};
use revoke_core::{
    Action, ActionId, Connector, ConnectorError, ConnectorFactory, Discovery, JobId, MemoryJournal,
    Outcome, Phase, ProposedAction, Subject, Verdict,
};
use revoke_testkit::onelogin::{status, OneloginStandin};
use serde_json::{json, Value};

const OL: &str = "corp-onelogin";

fn standin() -> OneloginStandin {
    OneloginStandin::start().expect("the onelogin stand-in should start")
}

fn config(ol: &OneloginStandin, extra: Value) -> Value {
    let (id, secret) = ol.credentials();
    let mut v = json!({
        "kind": "onelogin",
        "base_url": ol.url(),
        "client_id": id,
        "client_secret": secret,
    });
    if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in e {
            m.insert(k.clone(), x.clone());
        }
    }
    v
}

fn connector(ol: &OneloginStandin, extra: Value) -> Arc<OneLoginConnector> {
    let v = config(ol, extra);
    if let Err(issues) = validate("connectors.ol", &v) {
        panic!("config should be valid: {issues:?}");
    }
    Arc::new(
        OneLoginConnector::new(OL, OneLoginConfig::from_value(&v).expect("config"))
            .expect("connector"),
    )
}

fn subject(email: &str) -> Subject {
    let mut s = Subject::new(email.split('@').next().unwrap_or(email));
    s.email = Some(email.to_string());
    s
}

fn actions(job: &str, d: &Discovery, proposed: Vec<ProposedAction>) -> Vec<Action> {
    Action::from_proposals(&JobId(job.to_string()), OL, d, proposed)
        .expect("the proposals name discovered accounts")
}

/// Plans every subject; returns the actions of all of them.
async fn plan_all(conn: &OneLoginConnector, subjects: &[Subject]) -> Vec<Action> {
    let found = conn.discover_many(subjects).await.expect("discovery");
    let mut out = Vec::new();
    for (s, d) in subjects.iter().zip(&found) {
        out.extend(actions("job-1", d, conn.plan(s, d)));
    }
    out
}

type Journals = HashMap<ActionId, Arc<MemoryJournal>>;

/// The executor's order: phase by phase, every action of a phase at once (as the executor's
/// workers would), each with its own journal kept across runs.
async fn run(
    conn: &Arc<OneLoginConnector>,
    all: &[Action],
    journals: &mut Journals,
) -> Vec<(Action, Result<Outcome, ConnectorError>)> {
    let mut out = Vec::new();
    for phase in [Phase::Contain, Phase::Revoke, Phase::Delete] {
        // Within Contain, logout follows suspend.
        let kinds: Vec<Vec<&str>> = if phase == Phase::Contain {
            vec![vec![SUSPEND_USER], vec![LOGOUT_USER]]
        } else {
            vec![vec![REMOVE_ROLE, DELETE_USER]]
        };
        for group in kinds {
            let these: Vec<&Action> = all
                .iter()
                .filter(|a| a.phase == phase && group.contains(&a.kind.0.as_str()))
                .collect();
            let futs = these.iter().map(|a| {
                let j = journals
                    .entry(a.id.clone())
                    .or_insert_with(|| Arc::new(MemoryJournal::new()))
                    .clone();
                let conn = conn.clone();
                let a = (*a).clone();
                async move {
                    let r = conn.apply(&a, &a.key, j.as_ref()).await;
                    (a, r)
                }
            });
            out.extend(join_all(futs).await);
        }
    }
    out
}

fn assert_all(results: &[(Action, Result<Outcome, ConnectorError>)], want: Outcome) {
    for (a, r) in results {
        assert_eq!(
            r.as_ref().ok(),
            Some(&want),
            "{} {}: {r:?}",
            a.kind,
            a.target
        );
    }
}

/// alice (Admins, Sales), bob (Sales), carol (no roles, already suspended)
fn seed(ol: &OneloginStandin) -> (u64, u64, u64, u64, u64) {
    ol.world(|w| {
        let alice = w.user("alice.smith@example.com", "alice");
        let bob = w.user("bob.jones@example.com", "bob");
        let carol = w.user("carol.white@example.com", "carol");
        w.set_status(carol, status::SUSPENDED);
        let admins = w.role("Admins");
        let sales = w.role("Sales");
        w.role("Unused");
        w.assign(admins, alice);
        w.assign(sales, alice);
        w.assign(sales, bob);
        (alice, bob, carol, admins, sales)
    })
}

#[tokio::test]
async fn discovery_finds_the_user_its_status_and_roles_and_the_plan_orders_the_actions() {
    let ol = standin();
    let (alice, _, carol, admins, sales) = seed(&ol);
    let conn = connector(&ol, json!({}));
    let subjects = [
        subject("alice.smith@example.com"),
        subject("carol.white@example.com"),
        subject("nobody@example.com"),
    ];
    let found = conn.discover_many(&subjects).await.expect("discovery");
    assert_eq!(
        found.iter().map(|d| d.found).collect::<Vec<_>>(),
        [true, true, false]
    );
    let a = &found[0];
    assert_eq!(a.findings[0].kind, ACCOUNT);
    assert_eq!(a.findings[0].target, format!("users/{alice}"));
    assert_eq!(a.findings[0].attrs["status_name"], "active");
    let roles: Vec<(&str, &str)> = a
        .findings
        .iter()
        .filter(|f| f.kind == ROLE_MEMBERSHIP)
        .map(|f| (f.target.as_str(), f.attrs["role_name"].as_str()))
        .collect();
    let (t_admins, t_sales) = (
        format!("roles/{admins}/users/{alice}"),
        format!("roles/{sales}/users/{alice}"),
    );
    assert_eq!(
        roles,
        [(t_admins.as_str(), "Admins"), (t_sales.as_str(), "Sales")]
    );
    assert_eq!(found[1].findings[0].attrs["status"], "2");
    // The role list is read once for all subjects; discovery writes nothing.
    assert_eq!(ol.count("GET", "/api/2/roles"), 1);
    assert!(ol.mutations().is_empty());

    let plan = conn.plan(&subjects[0], a);
    let got: Vec<(&str, Phase, usize)> = plan
        .iter()
        .map(|p| (p.kind.0.as_str(), p.phase, p.after.len()))
        .collect();
    assert_eq!(
        got,
        [
            (SUSPEND_USER, Phase::Contain, 0),
            (LOGOUT_USER, Phase::Contain, 1),
            (REMOVE_ROLE, Phase::Revoke, 1),
            (REMOVE_ROLE, Phase::Revoke, 1),
            (DELETE_USER, Phase::Delete, 3),
        ]
    );
    assert!(plan.iter().all(|p| p.account == alice.to_string()));
    // The whole plan for this directory state, as a reviewer reads it.
    let lines: Vec<String> = plan
        .iter()
        .map(|p| {
            let after: Vec<&str> = p.after.iter().map(|(k, _)| k.0.as_str()).collect();
            format!(
                "{:?} {} {} after [{}]: {}",
                p.phase,
                p.kind.0,
                p.target,
                after.join(", "),
                p.summary
            )
        })
        .collect();
    insta::assert_snapshot!("plan_alice", lines.join("\n"));
    assert_eq!(plan[2].params["role_id"], admins.to_string());
    assert_eq!(conn.plan(&subjects[2], &found[2]), vec![]);

    // username matching, and the switches
    let conn = connector(
        &ol,
        json!({"match_by": "username", "delete_users": false, "remove_roles": false}),
    );
    let s = Subject::new("carol");
    let d = conn.discover(&s).await.expect("discovery");
    assert_eq!(d.findings.len(), 1);
    assert_eq!(d.findings[0].target, format!("users/{carol}"));
    let kinds: Vec<String> = conn.plan(&s, &d).iter().map(|p| p.kind.0.clone()).collect();
    assert_eq!(kinds, [SUSPEND_USER, LOGOUT_USER]);
}

#[tokio::test]
async fn apply_end_to_end_then_a_rerun_sends_no_mutation() {
    let ol = standin();
    let (alice, bob, _, admins, sales) = seed(&ol);
    let conn = connector(&ol, json!({}));
    let subjects = [subject("alice.smith@example.com")];
    let all = plan_all(&conn, &subjects).await;
    let mut journals = Journals::new();
    let results = run(&conn, &all, &mut journals).await;
    assert_all(&results, Outcome::Done);
    assert!(ol.user(alice).is_none(), "alice is deleted");
    assert_eq!(ol.world(|w| w.role_users(admins)), Vec::<u64>::new());
    assert_eq!(ol.world(|w| w.role_users(sales)), vec![bob]);
    let muts: Vec<String> = ol
        .mutations()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(muts.len(), 5, "{muts:#?}");
    assert_eq!(muts[0], format!("PUT /api/2/users/{alice}"));
    assert_eq!(muts[1], format!("PUT /api/1/users/{alice}/logout"));
    assert_eq!(muts[4], format!("DELETE /api/2/users/{alice}"));
    let mut roles = muts[2..4].to_vec();
    roles.sort();
    let mut want = vec![
        format!("DELETE /api/2/roles/{admins}/users"),
        format!("DELETE /api/2/roles/{sales}/users"),
    ];
    want.sort();
    assert_eq!(roles, want);
    for a in &all {
        assert_eq!(conn.verify(a).await.expect("verify"), Verdict::Confirmed);
    }

    ol.clear_requests();
    let results = run(&conn, &all, &mut journals).await;
    assert_all(&results, Outcome::AlreadyDone);
    assert_eq!(ol.mutations(), vec![], "a rerun writes nothing");
}

#[tokio::test]
async fn without_delete_a_rerun_is_still_silent_and_the_user_stays_suspended() {
    let ol = standin();
    let (alice, ..) = seed(&ol);
    let conn = connector(&ol, json!({"delete_users": false}));
    let all = plan_all(&conn, &[subject("alice.smith@example.com")]).await;
    let mut journals = Journals::new();
    assert_all(&run(&conn, &all, &mut journals).await, Outcome::Done);
    let u = ol.user(alice).expect("alice stays");
    assert_eq!((u.status, u.sessions, u.logouts), (status::SUSPENDED, 0, 1));
    assert!(ol.roles_of(alice).is_empty());
    ol.clear_requests();
    assert_all(&run(&conn, &all, &mut journals).await, Outcome::AlreadyDone);
    assert_eq!(ol.mutations(), vec![]);
    for a in &all {
        assert_eq!(conn.verify(a).await.expect("verify"), Verdict::Confirmed);
    }
}

#[tokio::test]
async fn a_token_that_expires_mid_job_is_fetched_again_once_and_the_job_goes_on() {
    let ol = standin();
    let (alice, ..) = seed(&ol);
    let conn = connector(&ol, json!({}));
    let all = plan_all(&conn, &[subject("alice.smith@example.com")]).await;
    assert_eq!(conn.tokens_fetched(), 1, "one token for all of discovery");
    ol.expire_tokens_now();
    let results = run(&conn, &all, &mut Journals::new()).await;
    assert_all(&results, Outcome::Done);
    assert!(ol.user(alice).is_none());
    assert_eq!(conn.tokens_fetched(), 2);
    assert_eq!(ol.tokens_issued(), 2);
    let unauthorized = ol.requests().iter().filter(|r| r.status == 401).count();
    assert_eq!(unauthorized, 1, "one 401, then the new token");

    // Wrong credentials: one token call, an auth error that names the cause, never the secret.
    let conn = connector(&ol, json!({"client_secret": "not-the-secret"}));
    let e = conn.check().await.expect_err("bad secret");
    assert_eq!(
        (e.class.name(), e.code.as_str()),
        ("auth", "bad_client_credentials")
    );
    assert!(!e.message.contains("not-the-secret"));
    assert!(!format!("{conn:?}").contains(&ol.credentials().1));
}

#[tokio::test]
async fn a_spent_budget_holds_calls_until_the_reset_and_a_long_one_is_rate_limited() {
    let ol = standin();
    seed(&ol);
    let conn = connector(&ol, json!({}));
    // alice's discovery is 3 calls (find, read, roles); the 4th must wait for the window.
    ol.set_rate_limit(3, Duration::from_millis(1_500));
    let started = Instant::now();
    let found = conn
        .discover_many(&[
            subject("alice.smith@example.com"),
            subject("bob.jones@example.com"),
        ])
        .await
        .expect("discovery waits, then goes on");
    assert!(found.iter().all(|d| d.found));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "held until the reset: {:?}",
        started.elapsed()
    );
    assert!(
        ol.requests().iter().all(|r| r.status != 429),
        "no call was sent into a spent budget"
    );

    // A reset further away than the request timeout is not slept through: rate_limited at once.
    let other = connector(&ol, json!({}));
    other
        .check()
        .await
        .expect("a token, and a budget with room");
    let conn = connector(&ol, json!({"timeout_secs": 1}));
    ol.set_rate_limit(1, Duration::from_secs(30));
    let e = conn
        .discover(&subject("alice.smith@example.com"))
        .await
        .expect_err("budget spent");
    assert_eq!(e.class.name(), "rate_limited");
    assert!(e.retry_after() >= Some(Duration::from_secs(25)), "{e:?}");
    // A client that did not see it spent gets OneLogin's 429: rate_limited with the reset as the
    // wait.
    let e = other.check().await.expect_err("429");
    assert_eq!(
        (e.class.name(), e.code.as_str()),
        ("rate_limited", "rate_limit")
    );
    assert!(e.retry_after() >= Some(Duration::from_secs(25)), "{e:?}");
    assert_eq!(ol.requests().last().map(|r| r.status), Some(429));
}

#[tokio::test]
async fn leavers_sharing_a_role_are_removed_in_one_call() {
    let ol = standin();
    let n = 8;
    let (everyone, eng, ids) = ol.world(|w| {
        let everyone = w.role("Everyone");
        let eng = w.role("Engineering");
        let ids: Vec<u64> = (0..n)
            .map(|i| {
                let id = w.user(&format!("leaver{i}@example.com"), &format!("leaver{i}"));
                w.assign(everyone, id);
                if i % 2 == 0 {
                    w.assign(eng, id);
                }
                id
            })
            .collect();
        let stays = w.user("stays@example.com", "stays");
        w.assign(everyone, stays);
        (everyone, eng, ids)
    });
    let conn = connector(&ol, json!({}));
    let subjects: Vec<Subject> = (0..n)
        .map(|i| subject(&format!("leaver{i}@example.com")))
        .collect();
    let all = plan_all(&conn, &subjects).await;
    let results = run(&conn, &all, &mut Journals::new()).await;
    assert_all(&results, Outcome::Done);
    assert_eq!(
        ol.count("DELETE", &format!("/api/2/roles/{everyone}/users")),
        1
    );
    assert_eq!(ol.count("DELETE", &format!("/api/2/roles/{eng}/users")), 1);
    let body = ol
        .requests()
        .into_iter()
        .find(|r| r.method == "DELETE" && r.path == format!("/api/2/roles/{everyone}/users"))
        .expect("the batch call")
        .body;
    let mut sent: Vec<u64> = serde_json::from_str(&body).expect("a JSON array of ids");
    sent.sort_unstable();
    assert_eq!(sent, ids);
    assert_eq!(
        ol.world(|w| w.role_users(everyone)).len(),
        1,
        "only the stayer"
    );

    // A role deleted before its batch: each waiting action gets the permanent error.
    let (gone, a, b) = ol.world(|w| {
        let r = w.role("Temp");
        let a = w.user("a@example.com", "a");
        let b = w.user("b@example.com", "b");
        w.assign(r, a);
        w.assign(r, b);
        (r, a, b)
    });
    let all = plan_all(&conn, &[subject("a@example.com"), subject("b@example.com")]).await;
    let removals: Vec<Action> = all
        .into_iter()
        .filter(|x| x.kind.0 == REMOVE_ROLE)
        .collect();
    ol.fail_matching(&format!("/api/2/roles/{gone}/users"), 1, 404);
    let journal = MemoryJournal::new();
    let futs = removals.iter().map(|x| conn.apply(x, &x.key, &journal));
    let results = join_all(futs).await;
    for r in results {
        let e = r.expect_err("role gone");
        assert_eq!(e.code, "role_not_found", "{e:?}");
    }
    assert_eq!(ol.count("DELETE", &format!("/api/2/roles/{gone}/users")), 1);
    assert_eq!(ol.roles_of(a), vec![gone]);
    assert_eq!(ol.roles_of(b), vec![gone]);
}

#[tokio::test]
async fn names_with_quotes_parentheses_slashes_and_stars_match_only_themselves() {
    let ol = standin();
    let (quote, paren, dots) = ol.world(|w| {
        let quote = w.user("o\"brien@example.com", "o\"brien");
        let paren = w.user("x)y@example.com", "x)(uid=*");
        let dots = w.user("dots@example.com", "../x");
        w.user("other@example.com", "other");
        (quote, paren, dots)
    });
    let conn = connector(&ol, json!({}));
    let d = conn
        .discover(&subject("o\"brien@example.com"))
        .await
        .expect("discovery");
    assert_eq!(d.findings[0].target, format!("users/{quote}"));
    let d = conn
        .discover(&subject("x)y@example.com"))
        .await
        .expect("discovery");
    assert_eq!(d.findings[0].target, format!("users/{paren}"));
    // A star is OneLogin's wildcard: it matches every user there, so the exact check drops them.
    let d = conn
        .discover(&subject("*@example.com"))
        .await
        .expect("discovery");
    assert!(!d.found, "{d:?}");

    let conn = connector(&ol, json!({"match_by": "username"}));
    let d = conn
        .discover(&Subject::new("../x"))
        .await
        .expect("discovery");
    assert_eq!(d.findings[0].target, format!("users/{dots}"));
    let d = conn
        .discover(&Subject::new("x)(uid=*"))
        .await
        .expect("discovery");
    assert_eq!(d.findings[0].target, format!("users/{paren}"));
    let d = conn.discover(&Subject::new("*")).await.expect("discovery");
    assert!(!d.found);

    for r in ol.requests() {
        let q = r.query.unwrap_or_default();
        assert!(
            !q.contains(['"', ')', '(', '/', '*', '@']),
            "unencoded query {q:?}"
        );
        assert!(r.path.starts_with("/api/2/") || r.path.starts_with("/auth/"));
    }
    assert!(ol.mutations().is_empty());
}

#[test]
fn bad_config_is_reported_per_key_and_a_good_one_builds_without_a_call() {
    let f = OneLoginFactory;
    assert_eq!(f.kind(), "onelogin");
    let issues = f
        .validate(
            "connectors.ol",
            &json!({"kind": "onelogin", "region": "mars", "client_secret": "s3cr3t-value", "match_by": 3}),
        )
        .expect_err("invalid");
    let text: Vec<String> = issues.iter().map(ToString::to_string).collect();
    for want in [
        "connectors.ol.match_by: expected a string, found the number 3",
        "connectors.ol.client_id: missing required key",
        "connectors.ol.region: expected \"us\" or \"eu\", found \"mars\"",
    ] {
        assert!(text.iter().any(|t| t == want), "{want} not in {text:#?}");
    }
    assert!(!text.concat().contains("s3cr3t-value"));
    let issues = f
        .validate(
            "connectors.ol",
            &json!({"region": "us", "base_url": "ftp://x", "client_id": "i", "client_secret": ""}),
        )
        .expect_err("invalid");
    let text: Vec<String> = issues.iter().map(ToString::to_string).collect();
    assert!(text
        .iter()
        .any(|t| t.starts_with("connectors.ol.base_url: expected only one of")));
    assert!(text
        .iter()
        .any(|t| t.starts_with("connectors.ol.base_url: expected an http(s) url")));
    assert!(text.iter().any(|t| t
        .starts_with("connectors.ol.client_secret: expected the API credential's client secret")));

    let good =
        json!({"kind": "onelogin", "subdomain": "acme", "client_id": "i", "client_secret": "s"});
    assert_eq!(f.validate("connectors.ol", &good), Ok(()));
    let conn = f
        .build("ol", &good)
        .expect("builds without any network call");
    assert_eq!((conn.instance(), conn.kind()), ("ol", "onelogin"));
    assert!(!format!("{conn:?}").contains("\"s\""));
}

#[tokio::test]
async fn a_subject_given_as_one_identifier_is_found_by_any() {
    let ol = standin();
    let (alice, _, _, _, _) = seed(&ol);
    ol.world(|w| w.set_external_id(alice, "E-1004"));
    let conn = connector(&ol, json!({}));
    // Only a username (match_by is email), only an employee id, the id alone as each kind.
    let mut hr = Subject::new("ignored");
    hr.employee_id = Some("E-1004".into());
    for (s, via) in [
        (Subject::new("alice"), "username = alice"),
        (
            Subject::new("ALICE.SMITH@example.com"),
            "email = ALICE.SMITH@example.com",
        ),
        (Subject::new("E-1004"), "external_id = E-1004"),
        (hr, "external_id = E-1004"),
    ] {
        let d = conn.discover(&s).await.expect("discovery");
        assert_eq!(d.accounts.len(), 1, "{s:?}: {d:?}");
        let a = &d.accounts[0];
        assert_eq!(a.id, alice.to_string());
        assert_eq!(a.id_kind, "OneLogin user id");
        assert_eq!(a.name, "alice");
        assert_eq!(a.matched_by, via);
        for i in ["alice", "alice.smith@example.com", "E-1004"] {
            assert!(a.identifiers.contains(i), "{i} in {:?}", a.identifiers);
        }
    }
    // external_id is exact; wildcards and odd values find nothing.
    for s in ["e-1004", "E-*", "*", "../x", "a/b", "?", "#", "%2F", "\""] {
        let d = conn.discover(&Subject::new(s)).await.expect("discovery");
        assert!(!d.found, "{s}: {d:?}");
    }
    assert!(ol.mutations().is_empty());
}

#[tokio::test]
async fn a_user_deleted_and_recreated_between_plan_and_apply_is_left_alone() {
    let ol = standin();
    let (old, _, _, admins, _) = seed(&ol);
    let conn = connector(&ol, json!({}));
    let all = plan_all(&conn, &[subject("alice.smith@example.com")]).await;
    assert_eq!(all.len(), 5);
    // An admin deletes alice and makes her again: same username and email, a new id, a role.
    let new = ol.world(|w| {
        w.remove_user(old);
        let new = w.user("alice.smith@example.com", "alice");
        w.assign(admins, new);
        new
    });
    assert_ne!(new, old);
    ol.clear_requests();
    for a in &all {
        let e = conn
            .apply(a, &a.key, &MemoryJournal::new())
            .await
            .expect_err("the planned username now names another user");
        assert_eq!(e.code, "identity_changed", "{}: {e}", a.kind);
        assert!(!e.is_retryable());
        assert!(
            e.message.contains(&old.to_string()) && e.message.contains(&new.to_string()),
            "{e}"
        );
    }
    assert_eq!(ol.mutations(), vec![], "nothing was sent");
    let u = ol.user(new).expect("the new alice stays");
    assert_eq!((u.status, u.sessions), (status::ACTIVE, 1));
    assert_eq!(ol.roles_of(new), vec![admins]);
    // verify judges the pinned user, which is gone.
    for a in &all {
        assert_eq!(conn.verify(a).await.expect("verify"), Verdict::Confirmed);
    }
}

#[tokio::test]
async fn a_renamed_user_is_acted_on_by_its_pinned_id() {
    let ol = standin();
    let (old, ..) = seed(&ol);
    let conn = connector(
        &ol,
        json!({"match_by": "username", "remove_roles": false, "delete_users": false}),
    );
    let all = plan_all(&conn, &[Subject::new("alice")]).await;
    let new = ol.world(|w| {
        w.set_username(old, "alice.old");
        w.user("alice.new@example.com", "alice")
    });
    let results = run(&conn, &all, &mut Journals::new()).await;
    assert_all(&results, Outcome::Done);
    assert_eq!(ol.user(old).expect("old").status, status::SUSPENDED);
    let n = ol.user(new).expect("new");
    assert_eq!(
        (n.status, n.logouts),
        (status::ACTIVE, 0),
        "the new alice is untouched"
    );
}
