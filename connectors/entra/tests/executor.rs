//! The Entra connector through revoked's own planner, executor and SQLite store, against the
//! Graph stand-in behind the validating proxy: the planner leaves out protected accounts that a
//! job reaches by their UPN while the protected entries name only an alias (an otherMails
//! address, a proxyAddresses one); a distribution list becomes a skipped removal and a person's
//! step; a run dies while Graph's answer to a group removal is held back (its runtime dropped,
//! as a kill -9 leaves it: its lease held, nothing recorded), and a second executor takes over
//! once the lease is over and converges with no duplicate mutation; a third run sends nothing.

use std::collections::BTreeMap;

use chrono::Utc;
use revoke_connector_entra::EntraFactory;
use revoke_core::{Phase, PlanId};
use revoke_engine::{plan, Executor, Registry};
use revoke_harness::leaver as job;
use revoke_store::ActionState;
use revoke_testkit::entra::{EntraStandin, GroupKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_apply_converges_with_no_duplicate_mutation_and_protected_aliases_stay() {
    let e = EntraStandin::start_validated().expect("the entra stand-in should start");
    let (alice, boss, cfo, eng, dl) = e.world(|w| {
        let alice = w.user("alice@contoso.com");
        let boss = w.user("boss@contoso.com");
        w.get_mut(&boss).expect("boss").other_mails = vec!["ceo-office@contoso.com".into()];
        let cfo = w.user("cfo@contoso.com");
        w.get_mut(&cfo)
            .expect("cfo")
            .proxy_addresses
            .push("smtp:finance-head@contoso.com".into());
        let eng = w.group("Engineering", GroupKind::Security);
        let ops = w.group("Ops", GroupKind::Unified);
        let dl = w.group("All Staff", GroupKind::Distribution);
        for u in [&alice, &boss, &cfo] {
            w.add_member(&eng, u);
            w.add_member(&dl, u);
        }
        w.add_member(&ops, &alice);
        (alice, boss, cfo, eng, dl)
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
accounts = ["CEO-Office@contoso.com", "finance-head@contoso.com"]
[connectors.entra]
kind = "entra"
tenant_id = "{tenant}"
client_id = "{client}"
client_secret = "{secret}"
token_url = "{token_url}"
graph_url = "{graph_url}"
"#,
        tenant = e.tenant_id(),
        client = e.client_id(),
        secret = e.client_secret(),
        token_url = e.token_url(),
        graph_url = e.graph_url(),
    ))
    .expect("config");
    let registry = Registry::new().with(EntraFactory);
    registry.validate(&config).expect("valid");
    let connectors = registry.build(&config).expect("connectors");
    let jobs = vec![
        job("job-alice", "alice@contoso.com"),
        job("job-boss", "boss@contoso.com"),
        job("job-cfo", "cfo@contoso.com"),
    ];
    let plan = plan(&config, &connectors, jobs, PlanId("p1".into()), Utc::now())
        .await
        .expect("plan");
    // boss and cfo are protected by an alias only: none of their actions is planned, and the
    // plan says why.
    for p in [&boss, &cfo] {
        assert!(
            plan.actions
                .iter()
                .all(|a| a.account.as_ref().is_none_or(|x| x.id != *p)),
            "{p} is protected"
        );
    }
    let notes = serde_json::to_string(&plan.notes).expect("json");
    for n in ["ceo-office@contoso.com", "finance-head@contoso.com"] {
        assert!(notes.to_lowercase().contains(n), "{n} in {notes}");
    }
    // The distribution list: a removal that will be skipped, and a person's step after it.
    let manual: Vec<_> = plan
        .actions
        .iter()
        .filter(|a| a.phase == Phase::Manual)
        .collect();
    assert_eq!(manual.len(), 1, "{manual:#?}");
    assert_eq!(manual[0].kind.0, "remove_in_exchange");
    assert!(manual[0].target.contains(&dl), "{}", manual[0].target);
    assert!(e.mutations().is_empty(), "planning is read-only");

    let scratch = revoke_harness::scratch_store().await;
    let store = scratch.store.clone();
    let first = Executor::new(
        store.clone(),
        registry.build(&config).expect("connectors"),
        &config,
        "revokectl@first:1",
    );
    // Graph removes alice from a group, its answer never comes back, the run dies.
    e.hold("DELETE", "/$ref");
    revoke_harness::kill_when(first, &store, &plan, "a group removal sent", || {
        e.held() > 0
    })
    .await;
    e.release();

    let second = Executor::new(store.clone(), connectors, &config, "revokectl@second:2");
    let summary = revoke_harness::run_to_end(&second, &plan.id).await;
    assert_eq!((summary.failed, summary.blocked), (0, 0), "{summary:?}");
    // Only the skipped distribution list removal can be not confirmed, and when it is is set by
    // the order of the reads back, not by chance: Entra's actions are read back together once a
    // run has nothing more to send. A skip the killed run made (attempt 1) is read back first
    // thing by the next run, before the delete: alice is still in the list, not confirmed. A
    // skip the killed run did not finish is made again by the next run and read back at its end,
    // after the delete: alice is in no list any more, confirmed.
    let records = store.actions(&plan.id).await.expect("actions");
    let skip = records
        .iter()
        .find(|r| r.state == ActionState::Skipped)
        .expect("the distribution list's removal is skipped");
    let before_the_delete = usize::from(skip.attempts == 1);
    assert_eq!(
        (summary.skipped, summary.not_confirmed),
        (1, before_the_delete),
        "{summary:?}, the skip at attempt {}",
        skip.attempts
    );
    assert!(e.user(&alice).is_none(), "alice is deleted");
    for p in [&boss, &cfo] {
        let u = e.user(p).expect("untouched");
        assert!(u.account_enabled && u.revocations == 0);
        assert_eq!(e.world(|w| w.groups_of(p)).len(), 2);
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in e.mutations() {
        *counts
            .entry(format!("{} {}", r.method, r.path))
            .or_default() += 1;
    }
    for (call, n) in &counts {
        assert_eq!(*n, 1, "{call}: {counts:#?}");
    }
    assert_eq!(
        counts.get(&format!("DELETE /v1.0/groups/{eng}/members/{alice}/$ref")),
        Some(&1)
    );
    assert!(
        counts.keys().all(|c| !c.contains(&dl)),
        "nothing sent for the distribution list: {counts:#?}"
    );
    let records = store.actions(&plan.id).await.expect("actions");
    let retried = records
        .iter()
        .filter(|r| r.action.kind.0 == "remove_group_membership" && r.attempts >= 2)
        .count();
    assert!(retried >= 1, "the held removal was leased again");
    let skipped = records
        .iter()
        .find(|r| r.action.target.contains(&dl) && r.action.kind.0 == "remove_group_membership")
        .expect("the distribution list removal");
    let state = format!("{:?} {:?}", skipped.state, skipped.note);
    assert!(state.to_lowercase().contains("skipped"), "{state}");

    // A third run of the same plan: everything is settled, nothing is sent.
    e.clear_requests();
    let third = Executor::new(
        store.clone(),
        registry.build(&config).expect("connectors"),
        &config,
        "revokectl@third:3",
    );
    third.run_plan(&plan.id).await.expect("run");
    assert!(e.mutations().is_empty(), "{:?}", e.mutations());
    e.assert_valid();
}
