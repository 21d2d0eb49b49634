//! The Okta connector through revoked's own planner, executor and SQLite store, against the Okta
//! stand-in: the planner leaves out a protected account that a job reaches by its login while
//! the protected entry names its second email; a run dies while Okta's answer to a group removal
//! is held back (its runtime dropped, as a kill -9 leaves it: its lease held, nothing recorded),
//! and a second executor takes over once the lease is over and converges with no duplicate
//! mutation; a third run sends nothing. A DPoP service app configured by its key file (read by
//! the config layer, as in production) plans and runs a job to the end on one access token.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use revoke_connector_okta::OktaFactory;
use revoke_core::PlanId;
use revoke_engine::{plan, Executor, Registry};
use revoke_harness::leaver as job;
use revoke_testkit::okta::{GroupType, OktaStandin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_apply_converges_with_no_duplicate_mutation_and_a_protected_account_stays()
{
    let okta = OktaStandin::start().expect("the okta stand-in should start");
    let (alice, boss, eng) = okta.world(|w| {
        let alice = w.user("alice@example.com", "alice@example.com");
        let boss = w.user("boss@example.com", "boss@example.com");
        w.get_mut(&boss).expect("boss").second_email = Some("ceo-office@example.com".into());
        let eng = w.group("Engineering", GroupType::OktaGroup);
        let ad = w.group("AD-Staff", GroupType::AppGroup);
        for u in [&alice, &boss] {
            w.add_member(&eng, u);
        }
        w.add_member(&ad, &alice);
        let jira = w.app("Jira");
        w.assign_app(&jira, &alice, "USER");
        w.grant_role(&alice, "USER_ADMIN", "USER");
        w.add_factor(&alice, "sms");
        w.add_grant(&alice);
        (alice, boss, eng)
    });
    let config = revoke_config::load_str(&format!(
        r#"
[executor]
lease_secs = 1
[executor.retry]
base_ms = 10
cap_ms = 40
max_attempts = 20
max_elapsed_secs = 60
[protected]
accounts = ["CEO-Office@example.com"]
[connectors.okta]
kind = "okta"
org_url = "{url}"
token = "{token}"
"#,
        url = okta.url(),
        token = okta.token(),
    ))
    .expect("config");
    let registry = Registry::new().with(OktaFactory);
    registry.validate(&config).expect("valid");
    let connectors = registry.build(&config).expect("connectors");
    let jobs = vec![
        job("job-alice", "alice@example.com"),
        job("job-boss", "boss@example.com"),
    ];
    let plan = plan(&config, &connectors, jobs, PlanId("p1".into()), Utc::now())
        .await
        .expect("plan");
    // boss is protected by his second email: none of his actions is planned, and the plan says why.
    assert!(plan
        .actions
        .iter()
        .all(|a| a.account.as_ref().is_none_or(|p| p.id != boss)));
    assert!(plan
        .actions
        .iter()
        .any(|a| a.account.as_ref().is_some_and(|p| p.id == alice)));
    let notes = serde_json::to_string(&plan.notes).expect("json");
    assert!(
        notes.contains("ceo-office@example.com") && notes.contains("CEO-Office@example.com"),
        "{notes}"
    );
    // The APP_GROUP membership: a removal apply skips, and a manual step for a person.
    assert!(
        plan.actions.iter().any(|a| a.connector == "manual"
            && a.target.starts_with("okta.groups/")
            && a.params.get("found_by").is_some_and(|f| f == "okta")),
        "the APP_GROUP manual step: {:?}",
        plan.actions
    );
    assert!(okta.mutations().is_empty(), "planning is read-only");

    let scratch = revoke_harness::scratch_store().await;
    let store = scratch.store.clone();
    let first = Executor::new(
        store.clone(),
        registry.build(&config).expect("connectors"),
        &config,
        "revokectl@first:1",
    );
    // Okta removes alice from Engineering, its answer never comes back, the run dies.
    let removal = format!("/api/v1/groups/{eng}/users/{alice}");
    okta.stall("DELETE", &removal);
    revoke_harness::kill_when(first, &store, &plan, "the group removal sent", || {
        okta.requests().iter().any(|r| r.path == removal)
    })
    .await;
    okta.release();

    let second = Executor::new(store.clone(), connectors, &config, "revokectl@second:2");
    let summary = revoke_harness::run_to_end(&second, &plan.id).await;
    // The APP_GROUP removal is skipped, honestly not confirmed (alice is still a member until a
    // person removes her in the directory), and its manual step awaits a person.
    assert_eq!(
        (
            summary.failed,
            summary.blocked,
            summary.skipped,
            summary.not_confirmed,
            summary.awaiting_ack
        ),
        (0, 0, 1, 1, 1),
        "{summary:?}"
    );
    assert!(okta.user(&alice).is_none(), "alice is deleted");
    let b = okta.user(&boss).expect("boss untouched");
    assert_eq!(b.status, "ACTIVE");
    assert_eq!(okta.world(|w| w.groups_of(&boss)), vec![eng.clone()]);
    // No mutation twice, but Okta's two-step delete (deactivate, then delete).
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in okta.mutations() {
        *counts
            .entry(format!("{} {}", r.method, r.path))
            .or_default() += 1;
    }
    for (call, n) in &counts {
        let want = if *call == format!("DELETE /api/v1/users/{alice}") {
            2
        } else {
            1
        };
        assert_eq!(*n, want, "{call}: {counts:#?}");
    }
    assert_eq!(counts.get(&format!("DELETE {removal}")), Some(&1));
    let records = store.actions(&plan.id).await.expect("actions");
    let group = records
        .iter()
        .find(|r| {
            r.action.kind.0 == "remove_group_membership"
                && r.action.params.get("group_type").map(String::as_str) != Some("APP_GROUP")
        })
        .expect("the group removal");
    assert!(group.attempts >= 2, "{}", group.attempts);

    // A third run of the same plan: everything is settled, nothing is sent.
    okta.clear_requests();
    let third = Executor::new(
        store.clone(),
        registry.build(&config).expect("connectors"),
        &config,
        "revokectl@third:3",
    );
    third.run_plan(&plan.id).await.expect("run");
    assert!(okta.mutations().is_empty(), "{:?}", okta.mutations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpop_service_app_configured_by_its_key_file_runs_a_plan_to_the_end() {
    let okta = OktaStandin::start().expect("the okta stand-in should start");
    let alice = okta.world(|w| {
        let alice = w.user("alice@example.com", "alice@example.com");
        let eng = w.group("Engineering", GroupType::OktaGroup);
        w.add_member(&eng, &alice);
        alice
    });
    let out = std::process::Command::new("openssl")
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
    let pem = String::from_utf8_lossy(&out.stdout).into_owned();
    let key = revoke_http::jwt::Rs256::from_pkcs8_pem(&pem).expect("key");
    okta.service_app(
        "0oaexec1",
        Some("kid-exec"),
        &key.public_key_der(),
        &[
            "okta.users.manage",
            "okta.groups.manage",
            "okta.apps.manage",
            "okta.roles.manage",
        ],
        true,
        Duration::from_secs(3_600),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("okta-key.pem");
    std::fs::write(&key_file, &pem).expect("key file");
    // The key comes from private_key_file, as in production; the config layer reads it.
    let config = revoke_config::load_str(&format!(
        r#"
[connectors.okta]
kind = "okta"
org_url = "{url}"
client_id = "0oaexec1"
private_key_file = "{key}"
key_id = "kid-exec"
"#,
        url = okta.url(),
        key = key_file.display(),
    ))
    .expect("config");
    let registry = Registry::new().with(OktaFactory);
    registry.validate(&config).expect("valid");
    let connectors = registry.build(&config).expect("connectors");
    let plan = plan(
        &config,
        &connectors,
        vec![job("job-alice", "alice@example.com")],
        PlanId("p-oauth".into()),
        Utc::now(),
    )
    .await
    .expect("plan");
    let store = revoke_store::open(&format!("sqlite://{}", dir.path().join("db").display()))
        .await
        .expect("store");
    let exec = Executor::new(store, connectors, &config, "revokectl@oauth:1");
    exec.record(&plan).await.expect("record");
    let summary = tokio::time::timeout(Duration::from_secs(120), exec.run_plan(&plan.id))
        .await
        .expect("the run ends")
        .expect("run");
    assert_eq!(
        (summary.failed, summary.blocked, summary.not_confirmed),
        (0, 0, 0),
        "{summary:?}"
    );
    assert!(okta.user(&alice).is_none(), "alice is deleted");
    assert_eq!(okta.oauth_refusals(), Vec::<String>::new());
    // One token for planning and the whole run (the same connector instance).
    assert_eq!(okta.tokens_issued(), 1);
}
