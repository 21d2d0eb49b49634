//! The vault connector through revoked's own planner, executor and SQLite store, against a real
//! OpenBao: the planner leaves out a protected person whom the job reaches by their userpass
//! login while the protected entry names their OIDC alias; a run dies right after its first
//! mutation reached the server (its runtime dropped, as a kill -9 leaves it: its lease held,
//! nothing more recorded), a second executor takes over once the lease is over and converges
//! with each action's change made exactly once (counted in the server's audit log); the key
//! holder's rekey waits for a person; a third run sends nothing.

mod common;

use chrono::Utc;
use revoke_connector_vault::VaultFactory;
use revoke_core::{Phase, PlanId};
use revoke_engine::{plan, Executor, Registry};
use revoke_harness::job;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_apply_converges_with_no_duplicate_mutation_and_a_protected_person_stays()
{
    let w = common::world();
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
accounts = ["CEO-Office@example.org"]
[connectors.vault]
kind = "vault"
address = "{address}"
token = "{token}"
key_holders = ["alice@example.org"]
# The dev server's root token is the testkit's (root tokens: tests/root_tokens.rs).
root_tokens = "ignore"
# Paced, so the run is still sending when it is killed.
requests_per_second = 20
[connectors.vault.mounts.userpass]
type = "userpass"
[connectors.vault.mounts.oidc]
type = "oidc"
alias = "email"
"#,
        address = w.bao.address(),
        token = w.me.token,
    ))
    .expect("config");
    let registry = Registry::new().with(VaultFactory);
    registry.validate(&config).expect("valid");
    let connectors = registry.build(&config).expect("connectors");
    let jobs = vec![
        job(
            "job-alice",
            common::subject("alice", Some("alice@example.org")),
        ),
        job("job-boss", common::subject("boss", None)),
    ];
    let plan = plan(&config, &connectors, jobs, PlanId("p1".into()), Utc::now())
        .await
        .expect("plan");
    assert!(
        plan.actions
            .iter()
            .all(|a| a.account.as_ref().is_none_or(|p| p.id != w.boss)),
        "boss is protected by his OIDC alias: {:#?}",
        plan.actions
    );
    assert!(plan
        .actions
        .iter()
        .any(|a| a.account.as_ref().is_some_and(|p| p.id == w.alice)));
    let notes = serde_json::to_string(&plan.notes).expect("json");
    assert!(
        notes.contains("ceo-office@example.org") && notes.contains("CEO-Office@example.org"),
        "{notes}"
    );
    assert!(
        plan.actions.iter().any(|a| a.connector == "manual"
            && a.target == "vault.root_key"
            && a.params.get("found_by").is_some_and(|f| f == "vault")),
        "alice's key share: a person's rekey step: {:#?}",
        plan.actions
    );
    assert!(w.mutations().is_empty(), "planning is read-only");
    let text = serde_json::to_string(&plan).expect("json");
    assert!(
        !text.contains(&w.me.token),
        "the token never reaches the plan"
    );
    let sent_by_connector = plan
        .actions
        .iter()
        .filter(|a| a.phase != Phase::Manual)
        .count();

    let scratch = revoke_harness::scratch_store().await;
    let store = scratch.store.clone();
    let first = Executor::new(
        store.clone(),
        registry.build(&config).expect("connectors"),
        &config,
        "revokectl@first:1",
    );
    revoke_harness::kill_when(first, &store, &plan, "a first mutation sent", || {
        !w.mutations().is_empty()
    })
    .await;
    let at_kill = w.mutations().len();
    assert!(
        at_kill < sent_by_connector,
        "the run was killed mid-apply: {at_kill} of {sent_by_connector}"
    );
    eprintln!("killed after {at_kill} of {sent_by_connector} mutations");

    let second = Executor::new(store.clone(), connectors, &config, "revokectl@second:2");
    let summary = revoke_harness::run_to_end(&second, &plan.id).await;
    assert_eq!(
        (
            summary.failed,
            summary.blocked,
            summary.not_confirmed,
            summary.awaiting_ack
        ),
        (0, 0, 0, 1),
        "{summary:?}"
    );
    // Each action's change made exactly once. The request in flight at the kill may reach the
    // server twice: OpenBao drops a write whose client went away ("failed to persist packed
    // storage entry: context canceled", seen in 1 of 8 runs), and then the next run, reading
    // first, sends it again; never is a change made twice.
    let made = w.made();
    let muts = w.mutations();
    assert_eq!(
        made.len(),
        sent_by_connector,
        "each action's change made exactly once ({at_kill} sent before the kill): {:#?}",
        w.audit_detail()
    );
    assert!(
        muts.len() <= made.len() + 1,
        "at most the request in flight at the kill is sent again: {:#?}",
        w.audit_detail()
    );
    assert!(
        w.bao.entity(&w.alice).expect("read").is_none(),
        "alice is deleted"
    );
    let boss = w.bao.entity(&w.boss).expect("read").expect("boss stays");
    assert_eq!(boss["disabled"], false);
    let ops = w.bao.group(&w.ops).expect("read").expect("ops");
    assert!(ops["member_entity_ids"]
        .as_array()
        .expect("members")
        .iter()
        .any(|m| m == w.boss.as_str()));

    let records =
        serde_json::to_string(&store.actions(&plan.id).await.expect("actions")).expect("json");
    assert!(
        !records.contains(&w.me.token),
        "the token never reaches the store's records"
    );

    // A third run of the same plan: everything is settled, nothing is sent.
    let third = Executor::new(
        store.clone(),
        registry.build(&config).expect("connectors"),
        &config,
        "revokectl@third:3",
    );
    third.run_plan(&plan.id).await.expect("run");
    assert_eq!(w.mutations().len(), muts.len(), "{:#?}", w.mutations());
}
