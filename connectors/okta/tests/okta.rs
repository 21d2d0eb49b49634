//! The Okta connector against the Okta stand-in of crates/testkit, behind Prism with Okta's
//! `@okta/openapi` description trimmed to paths and parameters: the SDK check of the stand-in,
//! discovery and the plan (snapshot), apply end to end and a rerun with no mutation, verify,
//! a protected account reached by its second email, hostile identifiers, a login reused after
//! planning, a 429 storm, and classification of the org's failures.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use revoke_connector_okta::{
    validate, OktaConfig, OktaConnector, ACCOUNT, APP_GROUP, CLEAR_SESSIONS, DEACTIVATE_USER,
    DELETE_USER, REMOVE_GROUP, REMOVE_IN_SOURCE, SUSPEND_USER,
};
use revoke_core::{
    Action, ActionId, Connector, ConnectorError, Discovery, JobId, MemoryJournal, Outcome, Phase,
    Protected, Subject, Verdict,
};
use revoke_testkit::moto::python_dir;
use revoke_testkit::okta::{GroupType, OktaStandin};
use revoke_testkit::Prism;
use serde_json::{json, Value};

const OKTA: &str = "corp-okta";

struct Env {
    okta: OktaStandin,
    prism: Prism,
}

impl Env {
    fn start() -> Env {
        let okta = OktaStandin::start().expect("the okta stand-in should start");
        let prism = okta.prism().expect("prism should start");
        Env { okta, prism }
    }

    /// No Prism error at all, and warnings only for the error statuses a test provoked (Prism
    /// passes an undeclared 4xx/5xx through with a warning). The description's one stale code
    /// (DELETE user: 202 there, 204 today) is corrected in the trimmed spec itself, marked
    /// `x-revoked-allowance` (tests/okta/trim_spec.py), because Prism turns an undeclared 2xx
    /// into a 500.
    fn assert_clean_but(&self, injected: &[u16]) {
        assert_eq!(self.prism.errors(), Vec::<String>::new(), "prism errors");
        let unexpected: Vec<String> = self
            .prism
            .details()
            .into_iter()
            .filter(|v| !injected.contains(&v.status))
            .map(|v| v.to_string())
            .collect();
        assert_eq!(unexpected, Vec::<String>::new(), "prism warnings");
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("prism violations: {:#?}", self.prism.violations());
        }
    }
}

fn config(env: &Env, extra: Value) -> Value {
    let mut v = json!({
        "kind": "okta",
        "org_url": env.prism.rest_url(),
        "token": env.okta.token(),
    });
    if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in e {
            m.insert(k.clone(), x.clone());
        }
    }
    v
}

fn connector(env: &Env, extra: Value) -> Arc<OktaConnector> {
    let v = config(env, extra);
    if let Err(issues) = validate("connectors.okta", &v) {
        panic!("config should be valid: {issues:?}");
    }
    Arc::new(
        OktaConnector::new(OKTA, OktaConfig::from_value(&v).expect("config")).expect("connector"),
    )
}

fn subject(email: &str) -> Subject {
    let mut s = Subject::new(email.split('@').next().unwrap_or(email));
    s.email = Some(email.to_string());
    s
}

struct Seeded {
    alice: String,
    boss: String,
}

/// alice: in Engineering (OKTA_GROUP) and AD-Staff (APP_GROUP), Jira direct, Slack through a
/// group, USER_ADMIN directly and HELP_DESK_ADMIN through a group, two factors and a grant;
/// boss: a second email `ceo-office@example.com`; bob in Engineering too.
fn seed(okta: &OktaStandin) -> Seeded {
    okta.world(|w| {
        let alice = w.user("alice@example.com", "alice@example.com");
        w.get_mut(&alice).expect("alice").employee_number = Some("E1001".into());
        let bob = w.user("bob@example.com", "bob@example.com");
        let boss = w.user("boss@example.com", "boss@example.com");
        w.get_mut(&boss).expect("boss").second_email = Some("ceo-office@example.com".into());
        let eng = w.group("Engineering", GroupType::OktaGroup);
        let ad = w.group("AD-Staff", GroupType::AppGroup);
        let everyone = w.group("Everyone", GroupType::BuiltIn);
        for u in [&alice, &bob, &boss] {
            w.add_member(&everyone, u);
        }
        w.add_member(&eng, &alice);
        w.add_member(&eng, &bob);
        w.add_member(&ad, &alice);
        let jira = w.app("Jira");
        let slack = w.app("Slack");
        w.assign_app(&jira, &alice, "USER");
        w.assign_app(&slack, &alice, "GROUP");
        w.assign_app(&jira, &bob, "USER");
        w.grant_role(&alice, "USER_ADMIN", "USER");
        w.grant_role(&alice, "HELP_DESK_ADMIN", "GROUP");
        w.add_factor(&alice, "sms");
        w.add_factor(&alice, "token:software:totp");
        w.add_grant(&alice);
        Seeded { alice, boss }
    })
}

/// The connector's own actions (the manual steps a person does are left out: the executor never
/// sends them to the connector).
fn actions(job: &str, d: &Discovery, conn: &OktaConnector, s: &Subject) -> Vec<Action> {
    Action::from_proposals(&JobId(job.to_string()), OKTA, d, conn.plan(s, d))
        .expect("the proposals name discovered accounts")
        .into_iter()
        .filter(|a| a.connector == OKTA)
        .collect()
}

/// A removal of an APP_GROUP membership, which apply skips without a call.
fn is_app_group(a: &Action) -> bool {
    a.params.get("group_type").map(String::as_str) == Some(APP_GROUP)
}

type Journals = HashMap<ActionId, Arc<MemoryJournal>>;

/// The executor's order: the lifecycle call (and factors, grants), sessions, revoke, delete.
fn order(a: &Action) -> u8 {
    match (a.phase, a.kind.0.as_str()) {
        (Phase::Contain, CLEAR_SESSIONS) => 1,
        (Phase::Contain, _) => 0,
        (Phase::Revoke, _) => 2,
        _ => 3,
    }
}

/// The executor's order: contain (the lifecycle call, then sessions), revoke, delete.
async fn run(
    conn: &OktaConnector,
    all: &[Action],
    journals: &mut Journals,
) -> Vec<(Action, Result<Outcome, ConnectorError>)> {
    let mut out = Vec::new();
    let mut sorted: Vec<&Action> = all.iter().collect();
    sorted.sort_by_key(|a| order(a));
    for a in sorted {
        let j = journals
            .entry(a.id.clone())
            .or_insert_with(|| Arc::new(MemoryJournal::new()))
            .clone();
        let r = conn.apply(a, &a.key, j.as_ref()).await;
        if is_app_group(a) {
            // Skipped, every time, with the reason and the manual step; left out of what the
            // callers check.
            match r {
                Ok(Outcome::Skipped { reason }) => {
                    assert!(
                        reason.contains("APP_GROUP") && reason.contains(".groups/"),
                        "{reason}"
                    )
                }
                other => panic!("{} {}: {other:?}", a.kind, a.target),
            }
            continue;
        }
        out.push((a.clone(), r));
    }
    out
}

#[test]
fn oktas_python_sdk_parses_every_answer_of_the_standin_through_prism() {
    let python = python_dir().join(".venv/bin/python");
    assert!(
        python.exists(),
        "expected {} (run: tests/python/.venv/bin/pip install -r tests/python/requirements.txt)",
        python.display()
    );
    let env = Env::start();
    let s = seed(&env.okta);
    let out = Command::new(&python)
        .arg(python_dir().join("okta_check.py"))
        .args([
            env.prism.rest_url().as_str(),
            &env.okta.token(),
            "alice@example.com",
            "AD-Staff",
        ])
        .env("OKTA_TESTING_TESTINGDISABLEHTTPSCHECK", "true")
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "the SDK check failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).expect("the script prints JSON");
    assert_eq!(seen["user"]["id"], s.alice);
    assert_eq!(seen["user"]["status"], "ACTIVE");
    assert_eq!(seen["rate_limit"]["x-rate-limit-limit"], "600");
    assert_eq!(
        seen["groups"],
        json!([
            ["AD-Staff", "APP_GROUP"],
            ["Engineering", "OKTA_GROUP"],
            ["Everyone", "BUILT_IN"]
        ])
    );
    assert_eq!(
        seen["roles"],
        json!([["HELP_DESK_ADMIN", "GROUP"], ["USER_ADMIN", "USER"]])
    );
    assert_eq!(seen["factors"], json!(["sms", "token:software:totp"]));
    assert_eq!(seen["grants"], 1);
    assert_eq!(seen["apps"], json!([["Jira", "USER"], ["Slack", "GROUP"]]));
    assert_eq!(seen["after_suspend"], "SUSPENDED");
    assert_eq!(seen["factors_grants_after"], json!([0, 0]));
    assert_eq!(seen["groups_after"], json!(["AD-Staff", "Everyone"]));
    assert_eq!(seen["roles_after"], json!(["GROUP"]));
    assert_eq!(seen["after_deactivate"], "DEPROVISIONED");
    assert_eq!(seen["delete_status"], 204);
    assert_eq!(seen["after_delete"]["status"], 404);
    assert!(
        seen["after_delete"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("E0000007")),
        "{seen}"
    );
    assert_eq!(seen["role_models"], json!(["StandardRole"]));
    assert!(env.okta.user(&s.alice).is_none());
    env.assert_clean_but(&[404]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_plan_snapshot() {
    let env = Env::start();
    seed(&env.okta);
    let conn = connector(&env, json!({"retention_days": 30}));
    let s = subject("alice@example.com");
    let d = conn.discover(&s).await.expect("discovery");
    assert!(d.found);
    assert_eq!(d.accounts.len(), 1);
    let plan: Vec<String> = conn
        .plan(&s, &d)
        .iter()
        .map(|p| {
            format!(
                "{:?} {} {} | {} | after {:?} | delay {:?}",
                p.phase,
                p.kind.0,
                p.target,
                p.summary,
                p.after
                    .iter()
                    .map(|(k, t)| format!("{} {t}", k.0))
                    .collect::<Vec<_>>(),
                p.delay.map(|d| d.as_secs() / 86_400)
            )
        })
        .collect();
    let findings: Vec<String> = d
        .findings
        .iter()
        .map(|f| format!("{} {} {:?}", f.kind, f.target, f.attrs))
        .collect();
    insta::assert_json_snapshot!(
        "plan_alice",
        json!({
            "account": {"id": d.accounts[0].id, "identifiers": d.accounts[0].identifiers, "matched_by": d.accounts[0].matched_by},
            "findings": findings,
            "notes": d.notes,
            "plan": plan,
        })
    );
    // Deactivation is named for what it is, in the plan and in a note.
    let conn = connector(&env, json!({"contain": "deactivate"}));
    let d = conn.discover(&s).await.expect("discovery");
    let p = conn.plan(&s, &d);
    assert_eq!(p[0].kind.0, DEACTIVATE_USER);
    assert!(
        p[0].summary.contains("cannot be undone"),
        "{}",
        p[0].summary
    );
    assert!(
        d.notes.iter().any(|n| n.contains("cannot be undone")),
        "{:?}",
        d.notes
    );
    // Found by the employee number alone too.
    let d = conn
        .discover(&Subject::new("E1001"))
        .await
        .expect("discovery");
    assert!(d.found);
    assert_eq!(d.accounts[0].matched_by, "profile.employeeNumber = E1001");
    let d = conn
        .discover(&subject("nobody@example.com"))
        .await
        .expect("discovery");
    assert!(!d.found);
    assert!(env.okta.mutations().is_empty(), "planning is read-only");
    env.assert_clean_but(&[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_end_to_end_then_a_rerun_sends_no_mutation_and_verify_confirms() {
    let env = Env::start();
    let seeded = seed(&env.okta);
    let conn = connector(&env, json!({}));
    let s = subject("alice@example.com");
    let d = conn.discover(&s).await.expect("discovery");
    let all = actions("job-1", &d, &conn, &s);
    let mut journals = Journals::new();
    for (a, r) in run(&conn, &all, &mut journals).await {
        assert_eq!(
            r.as_ref().ok(),
            Some(&Outcome::Done),
            "{} {}: {r:?}",
            a.kind,
            a.target
        );
    }
    assert!(env.okta.user(&seeded.alice).is_none(), "deleted");
    let muts: Vec<String> = env
        .okta
        .mutations()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path.replace(&seeded.alice, "ALICE")))
        .collect();
    insta::assert_json_snapshot!("mutations_alice", muts);
    // bob keeps his group and app.
    let bob_groups = env.okta.world(|w| {
        let bob = w.by_login("bob@example.com").expect("bob");
        (w.groups_of(&bob).len(), w.apps_of(&bob).len())
    });
    assert_eq!(bob_groups, (2, 1));
    for a in &all {
        assert_eq!(
            conn.verify(a).await.expect("verify"),
            Verdict::Confirmed,
            "{}",
            a.kind
        );
    }
    env.okta.clear_requests();
    for (a, r) in run(&conn, &all, &mut journals).await {
        assert_eq!(
            r.as_ref().ok(),
            Some(&Outcome::AlreadyDone),
            "{} {}: {r:?}",
            a.kind,
            a.target
        );
    }
    assert_eq!(env.okta.mutations(), vec![], "a rerun sends no mutation");
    env.assert_clean_but(&[404]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_two_step_delete_resumes_and_suspend_skips_a_user_okta_cannot_suspend() {
    let env = Env::start();
    let seeded = seed(&env.okta);
    let conn = connector(
        &env,
        json!({"remove_groups": false, "remove_apps": false, "remove_admin_roles": false}),
    );
    let s = subject("alice@example.com");
    let d = conn.discover(&s).await.expect("discovery");
    let all = actions("job-1", &d, &conn, &s);
    let delete = all
        .iter()
        .find(|a| a.kind.0 == DELETE_USER)
        .expect("delete");
    // A crash after the first DELETE: the user is DEPROVISIONED; the next attempt sends one DELETE.
    env.okta
        .world(|w| w.get_mut(&seeded.alice).expect("alice").status = "DEPROVISIONED".into());
    env.okta.clear_requests();
    let j = MemoryJournal::new();
    assert_eq!(
        conn.apply(delete, &delete.key, &j).await.expect("delete"),
        Outcome::Done
    );
    assert_eq!(env.okta.mutations().len(), 1);
    assert_eq!(
        conn.apply(delete, &delete.key, &j).await.expect("again"),
        Outcome::AlreadyDone
    );
    // Okta suspends only ACTIVE users: a LOCKED_OUT one is skipped with the reason.
    let bob = subject("bob@example.com");
    env.okta.world(|w| {
        let id = w.by_login("bob@example.com").expect("bob");
        w.get_mut(&id).expect("bob").status = "LOCKED_OUT".into();
    });
    let d = conn.discover(&bob).await.expect("discovery");
    assert!(
        d.notes.iter().any(|n| n.contains("LOCKED_OUT")),
        "{:?}",
        d.notes
    );
    let all = actions("job-2", &d, &conn, &bob);
    let suspend = all
        .iter()
        .find(|a| a.kind.0 == SUSPEND_USER)
        .expect("suspend");
    env.okta.clear_requests();
    match conn.apply(suspend, &suspend.key, &j).await.expect("apply") {
        Outcome::Skipped { reason } => assert!(reason.contains("LOCKED_OUT"), "{reason}"),
        other => panic!("expected skipped, got {other:?}"),
    }
    assert!(env.okta.mutations().is_empty());
    env.assert_clean_but(&[404]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_account_reached_by_its_second_email_is_protected() {
    let env = Env::start();
    let seeded = seed(&env.okta);
    let conn = connector(&env, json!({}));
    let d = conn
        .discover(&subject("boss@example.com"))
        .await
        .expect("discovery");
    assert_eq!(d.accounts[0].id, seeded.boss);
    let protected = Protected::new(["CEO-Office@example.com"]);
    assert_eq!(
        protected.match_account(&d.accounts[0]),
        Some(("ceo-office@example.com", "CEO-Office@example.com"))
    );
    // Every action of the subject is on that account, so the planner leaves them all out.
    let s = subject("boss@example.com");
    assert!(conn.plan(&s, &d).iter().all(|p| p.account == seeded.boss));
    env.assert_clean_but(&[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_identifiers_are_refused_before_any_request() {
    let env = Env::start();
    seed(&env.okta);
    let conn = connector(&env, json!({}));
    let hostile = [
        subject("*@example.com"),
        subject("\"alice\"@example.com"),
        subject("alice@example.com\" or profile.login sw \"a"),
        Subject::new("../x"),
        Subject::new("*"),
        Subject::new("alice\\"),
        {
            let mut x = subject("alice@example.com");
            x.employee_id = Some("E1001\" or true".into());
            x
        },
    ];
    for h in &hostile {
        env.okta.clear_requests();
        let e = conn.discover(h).await.expect_err("refused");
        assert_eq!(e.code, "bad_identifier", "{h:?}: {e}");
        assert!(e.message.contains("nothing was sent"), "{e}");
        assert!(
            env.okta.requests().is_empty(),
            "{h:?}: {:?}",
            env.okta.requests()
        );
    }
    // An apostrophe is a real login character; it is searched for as itself.
    env.okta
        .world(|w| w.user("o'brien@example.com", "o'brien@example.com"));
    let d = conn
        .discover(&subject("o'brien@example.com"))
        .await
        .expect("discovery");
    assert!(d.found);
    env.assert_clean_but(&[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_reused_after_planning_is_identity_changed_and_nothing_is_sent() {
    let env = Env::start();
    let seeded = seed(&env.okta);
    let conn = connector(&env, json!({}));
    let s = subject("alice@example.com");
    let d = conn.discover(&s).await.expect("discovery");
    let all = actions("job-1", &d, &conn, &s);
    // alice is deleted and her login given to a new hire before the job runs.
    let new_alice = env.okta.world(|w| {
        w.remove_user(&seeded.alice);
        w.user("alice@example.com", "alice@example.com")
    });
    env.okta.clear_requests();
    let mut journals = Journals::new();
    for (a, r) in run(&conn, &all, &mut journals).await {
        let e = r.expect_err("identity changed");
        assert_eq!(e.code, "identity_changed", "{}: {e}", a.kind);
        assert!(e.message.contains(&new_alice), "{e}");
    }
    assert!(
        env.okta.mutations().is_empty(),
        "{:?}",
        env.okta.mutations()
    );
    assert_eq!(
        env.okta.user(&new_alice).expect("new hire").status,
        "ACTIVE"
    );
    // Verify does not judge the new hire: the pinned account is gone, which confirms.
    let contain = all
        .iter()
        .find(|a| a.phase == Phase::Contain)
        .expect("contain");
    assert_eq!(
        conn.verify(contain).await.expect("verify"),
        Verdict::Confirmed
    );
    env.assert_clean_but(&[404]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_converges_with_no_early_request() {
    let env = Env::start();
    let seeded = seed(&env.okta);
    let conn = connector(&env, json!({"timeout_secs": 1}));
    let s = subject("alice@example.com");
    let d = conn.discover(&s).await.expect("discovery");
    let all = actions("job-1", &d, &conn, &s);
    // 4 calls a second, and the current window already spent: the first call is a 429.
    env.okta.set_rate_limit(4, Duration::from_secs(1));
    env.okta.exhaust_budget();
    env.okta.clear_requests();
    let mut journals = Journals::new();
    let mut pending: Vec<Action> = all.clone();
    let mut rounds = 0;
    let mut rate_limited = 0;
    while !pending.is_empty() {
        rounds += 1;
        assert!(rounds < 60, "no convergence: {pending:?}");
        let mut next = Vec::new();
        let mut longest = Duration::ZERO;
        let mut blocked: Option<u8> = None;
        pending.sort_by_key(order);
        for a in pending {
            // What follows a refused action waits for it, as the executor's `after` makes it.
            if blocked.is_some_and(|o| order(&a) > o) {
                next.push(a);
                continue;
            }
            let j = journals
                .entry(a.id.clone())
                .or_insert_with(|| Arc::new(MemoryJournal::new()))
                .clone();
            match conn.apply(&a, &a.key, j.as_ref()).await {
                Ok(_) => {}
                Err(e) if e.class.name() == "rate_limited" => {
                    rate_limited += 1;
                    let wait = e.retry_after().expect("a wait");
                    assert!(
                        wait >= Duration::from_millis(1) && wait <= Duration::from_secs(2),
                        "{wait:?}"
                    );
                    longest = longest.max(wait);
                    blocked = Some(blocked.map_or(order(&a), |o| o.min(order(&a))));
                    next.push(a);
                }
                Err(e) => panic!("{} {}: {e}", a.kind, a.target),
            }
        }
        // The executor leases each refused action again at its retry-after (all at once here).
        tokio::time::sleep(longest).await;
        pending = next;
    }
    assert!(rate_limited >= 1, "the storm was felt");
    assert!(env.okta.user(&seeded.alice).is_none());
    assert_eq!(env.okta.early_requests(), 0, "{:?}", env.okta.requests());
    env.assert_clean_but(&[404, 429]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_orgs_failures_are_classified() {
    let env = Env::start();
    seed(&env.okta);
    let conn = connector(&env, json!({}));
    let s = subject("alice@example.com");
    env.okta.fail_next(1, 503);
    let e = conn.discover(&s).await.expect_err("503");
    assert_eq!(
        (e.class.name(), e.code.as_str()),
        ("retryable", "server_error"),
        "{e}"
    );
    let mut cfg = config(&env, json!({}));
    cfg["token"] = json!("00wrong");
    let bad =
        OktaConnector::new(OKTA, OktaConfig::from_value(&cfg).expect("config")).expect("connector");
    let e = bad.check().await.expect_err("401");
    assert_eq!(
        (e.class.name(), e.code.as_str()),
        ("auth", "unauthorized"),
        "{e}"
    );
    assert!(e.message.contains("E0000011"), "{e}");
    assert!(!e.message.contains("00wrong") && !format!("{bad:?}").contains("00wrong"));
    conn.check().await.expect("the right token works");
    let d = conn.discover(&s).await.expect("discovery");
    assert!(d.findings.iter().any(|f| f.kind == ACCOUNT));
    env.assert_clean_but(&[401, 503]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_leavers_under_a_tight_budget_provoke_no_429() {
    let env = Env::start();
    env.okta.world(|w| {
        let eng = w.group("Engineering", GroupType::OktaGroup);
        for i in 0..4 {
            let id = w.user(&format!("l{i}@example.com"), &format!("l{i}@example.com"));
            w.add_member(&eng, &id);
        }
    });
    // 12 calls a second; each step sends up to 4 calls at once.
    env.okta.set_rate_limit(12, Duration::from_secs(1));
    let conn = connector(&env, json!({"timeout_secs": 5}));
    let subjects: Vec<Subject> = (0..4)
        .map(|i| subject(&format!("l{i}@example.com")))
        .collect();
    let mut all = Vec::new();
    for s in &subjects {
        let d = conn.discover(s).await.expect("discovery");
        all.extend(actions("job-1", &d, &conn, s));
    }
    for step in 0..4u8 {
        let tasks: Vec<_> = all
            .iter()
            .filter(|a| order(a) == step)
            .cloned()
            .map(|a| {
                let conn = conn.clone();
                tokio::spawn(async move {
                    let j = MemoryJournal::new();
                    let r = conn.apply(&a, &a.key, &j).await;
                    (a, r)
                })
            })
            .collect();
        for t in tasks {
            let (a, r) = t.await.expect("task");
            assert_eq!(
                r.as_ref().ok(),
                Some(&Outcome::Done),
                "{} {}: {r:?}",
                a.kind,
                a.target
            );
        }
    }
    assert_eq!(env.okta.throttled(), 0, "{:?}", env.okta.requests());
    assert_eq!(env.okta.early_requests(), 0);
    assert!(
        env.okta.requests().len() > 24,
        "the budget was spent more than twice"
    );
    env.assert_clean_but(&[]);
}

fn rsa_pem() -> String {
    let out = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .expect("openssl is needed to make a test key (apt-get install openssl)");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A service app registered at the stand-in with `granted`, and a connector of it (straight to
/// the stand-in: the trimmed description has no token endpoint for Prism to pass).
fn oauth_connector(
    okta: &OktaStandin,
    granted: &[&str],
    require_dpop: bool,
    extra: Value,
) -> Arc<OktaConnector> {
    let pem = rsa_pem();
    let key = revoke_http::jwt::Rs256::from_pkcs8_pem(&pem).expect("key");
    okta.service_app(
        "0oasvc1",
        Some("kid-1"),
        &key.public_key_der(),
        granted,
        require_dpop,
        Duration::from_secs(3_600),
    );
    let mut v = json!({
        "kind": "okta", "org_url": okta.url(),
        "client_id": "0oasvc1", "private_key": pem, "key_id": "kid-1",
    });
    if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in e {
            m.insert(k.clone(), x.clone());
        }
    }
    if let Err(issues) = validate("connectors.okta", &v) {
        panic!("config should be valid: {issues:?}");
    }
    Arc::new(
        OktaConnector::new(OKTA, OktaConfig::from_value(&v).expect("config")).expect("connector"),
    )
}

const ALL_SCOPES: &[&str] = &[
    "okta.users.manage",
    "okta.groups.manage",
    "okta.apps.manage",
    "okta.roles.manage",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpop_service_app_applies_end_to_end_on_one_token_and_a_rerun_sends_no_mutation() {
    let okta = OktaStandin::start().expect("the okta stand-in should start");
    let seeded = seed(&okta);
    let conn = oauth_connector(&okta, ALL_SCOPES, true, json!({}));
    let s = subject("alice@example.com");
    let d = conn.discover(&s).await.expect("discovery");
    let all = actions("job-1", &d, &conn, &s);
    let mut journals = Journals::new();
    for (a, r) in run(&conn, &all, &mut journals).await {
        assert_eq!(
            r.as_ref().ok(),
            Some(&Outcome::Done),
            "{} {}: {r:?}",
            a.kind,
            a.target
        );
    }
    assert!(okta.user(&seeded.alice).is_none(), "deleted");
    for (a, r) in run(&conn, &all, &mut journals).await {
        assert_eq!(
            r.as_ref().ok(),
            Some(&Outcome::AlreadyDone),
            "{} {}: {r:?}",
            a.kind,
            a.target
        );
    }
    assert_eq!(okta.oauth_refusals(), Vec::<String>::new());
    // One token for every call; its request took Okta's DPoP nonce round (400 use_dpop_nonce, then 200).
    assert_eq!((okta.tokens_issued(), conn.tokens_fetched()), (1, 1));
    let token_calls: Vec<u16> = okta
        .requests()
        .iter()
        .filter(|r| r.path == "/oauth2/v1/token")
        .map(|r| r.status)
        .collect();
    assert_eq!(token_calls, vec![400, 200]);
    assert!(okta
        .requests()
        .iter()
        .all(|r| r.path == "/oauth2/v1/token" || r.status != 401));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_access_token_is_retryable_and_the_next_attempt_gets_a_new_one() {
    let okta = OktaStandin::start().expect("the okta stand-in should start");
    seed(&okta);
    let conn = oauth_connector(&okta, ALL_SCOPES, true, json!({}));
    let s = subject("alice@example.com");
    conn.discover(&s).await.expect("discovery");
    okta.revoke_access_tokens();
    let before = okta.requests().len();
    let e = conn
        .discover(&s)
        .await
        .expect_err("the cached token is refused");
    assert_eq!(
        (e.class.name(), e.code.as_str()),
        ("retryable", "token_expired"),
        "{e}"
    );
    // The refused call was sent once, not again by the client.
    assert_eq!(okta.requests().len(), before + 1);
    let d = conn
        .discover(&s)
        .await
        .expect("the executor's next attempt");
    assert!(d.found);
    assert_eq!(okta.tokens_issued(), 2);
    // A token refused right after it was fetched is not a stale one: auth, not retried.
    okta.revoke_access_tokens();
    let conn2 = {
        // A second service app key the org does not know: the token request itself is refused.
        let pem = rsa_pem();
        let v = json!({"kind": "okta", "org_url": okta.url(), "client_id": "0oasvc1",
            "private_key": pem, "key_id": "kid-1"});
        OktaConnector::new(OKTA, OktaConfig::from_value(&v).expect("config")).expect("connector")
    };
    let e = conn2
        .check()
        .await
        .expect_err("a key the app does not have");
    assert_eq!(
        (e.class.name(), e.code.as_str()),
        ("auth", "oauth_invalid_client"),
        "{e}"
    );
    assert!(
        !e.message.contains("eyJ"),
        "no assertion in the message: {e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_are_the_least_the_features_need_and_a_bearer_app_works_without_dpop() {
    let okta = OktaStandin::start().expect("the okta stand-in should start");
    seed(&okta);
    // Granted no roles scope: the default (roles removal on) asks for it and is refused.
    let granted = &ALL_SCOPES[..3];
    let conn = oauth_connector(&okta, granted, false, json!({}));
    let e = conn
        .check()
        .await
        .expect_err("okta.roles.manage not granted");
    assert_eq!(
        (e.class.name(), e.code.as_str()),
        ("auth", "oauth_invalid_scope"),
        "{e}"
    );
    assert!(e.message.contains("okta.roles.manage"), "{e}");
    // Without roles removal it asks for three scopes only, and a Bearer token (no DPoP) works.
    let conn = oauth_connector(
        &okta,
        granted,
        false,
        json!({"remove_admin_roles": false, "dpop": false}),
    );
    conn.check().await.expect("check");
    let s = subject("alice@example.com");
    let d = conn.discover(&s).await.expect("discovery");
    assert!(d.found);
    assert_eq!(okta.tokens_issued(), 1);
    assert!(
        !okta.requests().iter().any(|r| r.path.ends_with("/roles")),
        "roles not read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_in_one_bucket_holds_that_bucket_only_with_no_early_request() {
    let env = Env::start();
    let seeded = seed(&env.okta);
    // One second of hold at most: a spent bucket whose window is 30 s refuses at once.
    let conn = connector(&env, json!({"timeout_secs": 1}));
    let s = subject("alice@example.com");
    let d = conn.discover(&s).await.expect("discovery");
    let all = actions("job-1", &d, &conn, &s);
    env.okta.set_rate_limit(1_000, Duration::from_secs(60));
    env.okta
        .set_bucket_limit("groups", 1, Duration::from_secs(30));
    env.okta.exhaust_bucket("groups");
    env.okta.clear_requests();
    let mut journals = Journals::new();
    let mut refused = Vec::new();
    for (a, r) in run(&conn, &all, &mut journals).await {
        match r {
            Err(e) if e.class.name() == "rate_limited" => {
                assert!(e.message.contains("groups"), "{e}");
                refused.push(a.kind.0.clone());
            }
            Ok(o) => assert!(matches!(o, Outcome::Done), "{} {}: {o:?}", a.kind, a.target),
            Err(e) => panic!("{} {}: {e}", a.kind, a.target),
        }
    }
    // Only the group removal waits for its bucket; the app and role removals (apps and
    // api/v1 buckets) and even the delete go on at once.
    assert_eq!(refused, vec!["remove_group_membership".to_string()]);
    assert!(env.okta.user(&seeded.alice).is_none());
    assert_eq!(env.okta.throttled(), env.okta.throttled_in("groups"));
    assert!(
        env.okta.throttled_in("groups") <= 1,
        "{:?}",
        env.okta.requests()
    );
    assert_eq!(env.okta.early_requests(), 0, "{:?}", env.okta.requests());
    env.assert_clean_but(&[404, 429]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_many_shares_the_first_searches_and_finds_what_discover_finds() {
    let env = Env::start();
    seed(&env.okta);
    env.okta.world(|w| {
        for i in 0..3 {
            w.user(&format!("l{i}@example.com"), &format!("l{i}@example.com"));
        }
        // Found only by its email (its login is another).
        let x = w.user("xavier", "xavier@example.com");
        w.get_mut(&x).expect("x").employee_number = Some("E7".into());
    });
    let conn = connector(&env, json!({}));
    let mut subjects: Vec<Subject> = ["alice", "l0", "l1", "l2", "xavier", "nobody"]
        .iter()
        .map(|n| subject(&format!("{n}@example.com")))
        .collect();
    subjects[0].employee_id = Some("E1001".into());
    let one_by_one = {
        let mut v = Vec::new();
        for s in &subjects {
            v.push(conn.discover(s).await.expect("discovery"));
        }
        v
    };
    let searches = |okta: &OktaStandin| {
        okta.requests()
            .iter()
            .filter(|r| r.path == "/api/v1/users")
            .count()
    };
    let single = searches(&env.okta);
    env.okta.clear_requests();
    let many = conn.discover_many(&subjects).await.expect("discover_many");
    assert_eq!(
        serde_json::to_value(&many).expect("json"),
        serde_json::to_value(&one_by_one).expect("json")
    );
    // One by one: 1 each for alice and l0-l2 (login), 2 for xavier (login, email), 4 for
    // nobody (login, email, the job id as login and as employee number). Batched: one search
    // for the six first lookups, then xavier's and nobody's other lookups alone.
    let batched = searches(&env.okta);
    assert_eq!((single, batched), (10, 1 + 1 + 3));
    // Each app comes with alice's app user embedded (expand=user/{id}): no read per app.
    assert!(
        !env.okta
            .requests()
            .iter()
            .any(|r| r.path.starts_with("/api/v1/apps/")),
        "{:?}",
        env.okta.requests()
    );
    assert!(env.okta.mutations().is_empty(), "read-only");
    // A hostile value anywhere in the batch sends nothing.
    env.okta.clear_requests();
    let mut bad = subjects.clone();
    bad.push(subject("x\"or\"@example.com"));
    let e = conn.discover_many(&bad).await.expect_err("refused");
    assert_eq!(e.code, "bad_identifier");
    assert!(env.okta.requests().is_empty());
    env.assert_clean_but(&[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_group_membership_is_a_skipped_removal_and_a_manual_step_verified_honestly() {
    let env = Env::start();
    let seeded = seed(&env.okta);
    let conn = connector(&env, json!({}));
    let s = subject("alice@example.com");
    let d = conn.discover(&s).await.expect("discovery");
    let all = Action::from_proposals(&JobId("job-1".into()), OKTA, &d, conn.plan(&s, &d))
        .expect("the proposals name discovered accounts");
    let ad = env
        .okta
        .world(|w| w.group_id("AD-Staff"))
        .expect("AD-Staff");
    let target = format!("groups/{ad}/users/{}", seeded.alice);
    let skip = all
        .iter()
        .find(|a| a.connector == OKTA && a.kind.0 == REMOVE_GROUP && a.target == target)
        .expect("the removal is planned, to be skipped");
    assert_eq!(
        skip.params.get("group_type").map(String::as_str),
        Some(APP_GROUP)
    );
    let manual = all
        .iter()
        .find(|a| a.connector == "manual")
        .expect("a manual step");
    assert_eq!(manual.target, format!("{OKTA}.{target}"));
    assert_eq!(manual.phase, Phase::Manual);
    assert_eq!(
        manual.account.as_ref().map(|p| p.id.as_str()),
        Some(seeded.alice.as_str()),
        "pinned to alice's Okta id"
    );
    assert!(manual.params.get("found_by").is_some_and(|f| f == OKTA));
    assert!(
        manual
            .params
            .get("instructions")
            .is_some_and(|i| i.contains("Active Directory") && i.contains("AD-Staff")),
        "{:?}",
        manual.params
    );
    assert!(
        all.iter().any(|a| a.kind.0 == REMOVE_IN_SOURCE)
            || manual.kind.0.contains(REMOVE_IN_SOURCE),
        "{:?}",
        manual.kind
    );
    // The skip sends nothing at all, not even a read.
    env.okta.clear_requests();
    let j = MemoryJournal::new();
    match conn.apply(skip, &skip.key, &j).await {
        Ok(Outcome::Skipped { reason }) => {
            assert!(
                reason.contains(&manual.target),
                "the reason names the manual step: {reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(env.okta.requests().is_empty(), "{:?}", env.okta.requests());
    // Verify is honest: not confirmed while the membership holds, confirmed once a person
    // removed it at the source (the next import drops it in Okta).
    match conn.verify(skip).await.expect("verify") {
        Verdict::NotConfirmed { detail } => {
            assert!(
                detail.contains("only the manual step") && detail.contains(&manual.target),
                "{detail}"
            )
        }
        v => panic!("{v:?}"),
    }
    env.okta.world(|w| w.remove_member(&ad, &seeded.alice));
    assert_eq!(conn.verify(skip).await.expect("verify"), Verdict::Confirmed);
    env.assert_clean_but(&[]);
}

#[test]
fn oktas_python_sdk_signs_in_as_a_dpop_service_app_at_the_standin() {
    let python = python_dir().join(".venv/bin/python");
    assert!(python.exists(), "expected {}", python.display());
    let okta = OktaStandin::start().expect("the okta stand-in should start");
    let s = seed(&okta);
    let pem = rsa_pem();
    let key = revoke_http::jwt::Rs256::from_pkcs8_pem(&pem).expect("key");
    okta.service_app(
        "0oasdk1",
        Some("kid-sdk"),
        &key.public_key_der(),
        &ALL_SCOPES[..3],
        true,
        Duration::from_secs(3_600),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("key.pem");
    std::fs::write(&key_file, &pem).expect("key file");
    let out = Command::new(&python)
        .arg(python_dir().join("okta_check.py"))
        .args([
            "--oauth",
            okta.url().as_str(),
            "0oasdk1",
            key_file.to_str().expect("utf-8"),
            "kid-sdk",
            "alice@example.com",
            &okta.token(),
        ])
        .env("OKTA_TESTING_TESTINGDISABLEHTTPSCHECK", "true")
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "the SDK check failed: {}{}\nrefusals: {:?}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        okta.oauth_refusals()
    );
    let seen: Value = serde_json::from_slice(&out.stdout).expect("the script prints JSON");
    assert_eq!(seen["user"]["id"], s.alice);
    assert_eq!(seen["token_type"], "DPoP", "{seen}");
    assert_eq!(
        seen["groups"],
        json!(["AD-Staff", "Engineering", "Everyone"])
    );
    assert_eq!(
        seen["embedded"],
        json!([["Jira", "USER"], ["Slack", "GROUP"]])
    );
    assert_eq!(okta.oauth_refusals(), Vec::<String>::new());
    assert_eq!(okta.tokens_issued(), 1);
    // The SDK took the same nonce round as the connector: 400 use_dpop_nonce, then 200.
    let token_calls: Vec<u16> = okta
        .requests()
        .iter()
        .filter(|r| r.path == "/oauth2/v1/token")
        .map(|r| r.status)
        .collect();
    assert_eq!(token_calls, vec![400, 200]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_asking_for_a_dpop_nonce_is_retryable_and_the_next_attempt_carries_it() {
    let okta = OktaStandin::start().expect("the okta stand-in should start");
    seed(&okta);
    let conn = oauth_connector(&okta, ALL_SCOPES, true, json!({}));
    let s = subject("alice@example.com");
    conn.discover(&s).await.expect("discovery");
    okta.require_api_nonce();
    let before = okta.requests().len();
    let e = conn.discover(&s).await.expect_err("a nonce is asked for");
    assert_eq!(
        (e.class.name(), e.code.as_str()),
        ("retryable", "dpop_nonce"),
        "{e}"
    );
    assert_eq!(
        okta.requests().len(),
        before + 1,
        "nothing resent by the client"
    );
    let d = conn
        .discover(&s)
        .await
        .expect("the next attempt carries the nonce");
    assert!(d.found);
    assert_eq!(okta.tokens_issued(), 1, "the same token");
}
