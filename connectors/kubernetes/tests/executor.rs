//! The Kubernetes connector through revoked's own planner, executor and SQLite store, against the
//! Kubernetes stand-in: the planner leaves out a protected person reached by their email while
//! the cluster knows them by their OIDC username; with `certificate_users` the plan holds the
//! CA-rotation step for a person to acknowledge; a run dies while the API server's answer to a
//! subject removal is held back (its runtime dropped, as a kill -9 leaves it: its lease held,
//! nothing recorded), and a second executor takes over once the lease is over and converges with
//! no mutation sent twice; a third run sends nothing. With `service_account_policy = "delete"`,
//! the planner orders a ServiceAccount's unbinding after its delete, and the executor keeps it.

use std::collections::BTreeMap;

use chrono::Utc;
use revoke_connector_kubernetes::{binding_path, KubernetesFactory, ROTATE_CA};
use revoke_core::PlanId;
use revoke_engine::{plan, Executor, Registry};
use revoke_harness::leaver as job;
use revoke_testkit::kube::{user, Res};
use revoke_testkit::KubeStandin;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_apply_converges_with_no_duplicate_mutation_and_a_protected_person_stays()
{
    let k = KubeStandin::start().expect("the stand-in starts");
    k.world(|w| {
        w.cluster_role_binding(
            "ivan-admin",
            "cluster-admin",
            &[user("oidc:ivan@example.org")],
        );
        w.cluster_role_binding(
            "readers",
            "view",
            &[
                user("oidc:ivan@example.org"),
                user("oidc:boss@example.org"),
                user("oidc:dana@example.org"),
            ],
        );
        w.cluster_role_binding(
            "boss-admin",
            "cluster-admin",
            &[user("oidc:boss@example.org")],
        );
        w.role_binding(
            "shop",
            "ivan-edit",
            "edit",
            &[user("oidc:ivan@example.org")],
        );
        w.service_account(
            "ci",
            "deployer",
            &[("revoked.dev/owner", "ivan@example.org")],
        );
        w.token_secret("ci", "deployer-token", "deployer");
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
accounts = ["Boss@example.org"]
[connectors.k8s]
kind = "kubernetes"
api_url = "{url}"
token = "{token}"
username_template = "oidc:{{email}}"
owner_annotation = "revoked.dev/owner"
certificate_users = true
"#,
        url = k.url(),
        token = k.token(),
    ))
    .expect("config");
    let registry = Registry::new().with(KubernetesFactory);
    registry.validate(&config).expect("valid");
    let connectors = registry.build(&config).expect("connectors");
    let jobs = vec![
        job("job-ivan", "ivan@example.org"),
        job("job-boss", "boss@example.org"),
    ];
    let plan = plan(&config, &connectors, jobs, PlanId("p1".into()), Utc::now())
        .await
        .expect("plan");
    // boss is protected by his email: none of his actions is planned, and the plan says why.
    assert!(plan.actions.iter().all(|a| a
        .account
        .as_ref()
        .is_none_or(|p| p.id != "oidc:boss@example.org")));
    let notes = serde_json::to_string(&plan.notes).expect("json");
    assert!(notes.contains("Boss@example.org"), "{notes}");
    // ivan's certificate: a person's step, never an action sent to the cluster.
    let manual: Vec<_> = plan
        .actions
        .iter()
        .filter(|a| a.connector == "manual")
        .collect();
    assert_eq!(manual.len(), 1, "{:#?}", plan.actions);
    assert_eq!(manual[0].kind.0, ROTATE_CA);
    assert!(k.mutations().is_empty(), "planning is read-only");

    let scratch = revoke_harness::scratch_store().await;
    let store = scratch.store.clone();
    let first = Executor::new(
        store.clone(),
        registry.build(&config).expect("connectors"),
        &config,
        "revokectl@first:1",
    );
    // The API server takes ivan out of `readers`, its answer never comes back, the run dies.
    let readers = binding_path(None, "readers");
    k.stall("PATCH", &readers);
    revoke_harness::kill_when(first, &store, &plan, "the subject removal sent", || {
        k.requests()
            .iter()
            .any(|r| r.method == "PATCH" && r.path == readers)
    })
    .await;
    k.release();

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
    let names = |ns: &str, name: &str, res: Res| -> Vec<String> {
        k.world(|w| w.subjects(res, ns, name))
            .iter()
            .map(|s| s["name"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(
        names("", "readers", Res::ClusterRoleBinding),
        ["oidc:boss@example.org", "oidc:dana@example.org"]
    );
    assert_eq!(
        names("", "boss-admin", Res::ClusterRoleBinding),
        ["oidc:boss@example.org"]
    );
    k.world(|w| {
        assert!(w.get(Res::ClusterRoleBinding, "", "ivan-admin").is_none());
        assert!(w.get(Res::RoleBinding, "shop", "ivan-edit").is_none());
        assert!(w.get(Res::Secret, "ci", "deployer-token").is_none());
    });
    // No mutation reached the cluster twice.
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in k.mutations() {
        *counts
            .entry(format!("{} {}", r.method, r.path))
            .or_default() += 1;
    }
    assert_eq!(counts.len(), 4, "{counts:#?}");
    for (call, n) in &counts {
        assert_eq!(*n, 1, "{call}: {counts:#?}");
    }
    let records = store.actions(&plan.id).await.expect("actions");
    let removal = records
        .iter()
        .find(|r| r.action.target == "clusterrolebinding/readers")
        .expect("the subject removal");
    assert!(removal.attempts >= 2, "{}", removal.attempts);

    // A third run of the same plan: everything is settled, nothing is sent.
    k.clear_requests();
    let third = Executor::new(
        store.clone(),
        registry.build(&config).expect("connectors"),
        &config,
        "revokectl@third:3",
    );
    third.run_plan(&plan.id).await.expect("run");
    assert!(k.mutations().is_empty(), "{:?}", k.mutations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_service_account_is_unbound_after_its_delete_through_the_executor() {
    let k = KubeStandin::start().expect("the stand-in starts");
    k.world(|w| {
        w.cluster_role_binding(
            "ivan-admin",
            "cluster-admin",
            &[user("oidc:ivan@example.org")],
        );
        w.service_account(
            "ci",
            "deployer",
            &[("revoked.dev/owner", "ivan@example.org")],
        );
        w.token_secret("ci", "deployer-token", "deployer");
        w.cluster_role_binding(
            "deployer-admin",
            "cluster-admin",
            &[revoke_testkit::kube::service_account("ci", "deployer")],
        );
        w.role_binding(
            "ci",
            "deploy",
            "edit",
            &[
                revoke_testkit::kube::service_account("ci", "deployer"),
                user("oidc:dana@example.org"),
            ],
        );
    });
    let config = revoke_config::load_str(&format!(
        r#"
[executor.retry]
base_ms = 10
cap_ms = 40
max_attempts = 20
max_elapsed_secs = 60
[connectors.k8s]
kind = "kubernetes"
api_url = "{url}"
token = "{token}"
username_template = "oidc:{{email}}"
owner_annotation = "revoked.dev/owner"
service_account_policy = "delete"
"#,
        url = k.url(),
        token = k.token(),
    ))
    .expect("config");
    let registry = Registry::new().with(KubernetesFactory);
    registry.validate(&config).expect("valid");
    let connectors = registry.build(&config).expect("connectors");
    let plan = plan(
        &config,
        &connectors,
        vec![job("job-ivan", "ivan@example.org")],
        PlanId("p-sa".into()),
        Utc::now(),
    )
    .await
    .expect("plan");
    let kinds: Vec<String> = plan
        .actions
        .iter()
        .map(|a| format!("{} {}", a.kind.0, a.target))
        .collect();
    assert_eq!(kinds.len(), 4, "{kinds:#?}");
    let scratch = revoke_harness::scratch_store().await;
    let store = scratch.store.clone();
    let executor = Executor::new(store.clone(), connectors, &config, "revokectl@sa:1");
    executor.record(&plan).await.expect("record");
    let summary = executor.run_plan(&plan.id).await.expect("run");
    assert_eq!(
        (summary.failed, summary.blocked, summary.not_confirmed),
        (0, 0, 0),
        "{summary:?}"
    );
    // The ServiceAccount went before its bindings were touched.
    let writes: Vec<String> = k
        .mutations()
        .iter()
        .map(|m| format!("{} {}", m.method, m.path))
        .collect();
    let sa = writes
        .iter()
        .position(|w| w.contains("/serviceaccounts/deployer"))
        .expect("the ServiceAccount was deleted");
    for b in ["clusterrolebindings/deployer-admin", "rolebindings/deploy"] {
        let at = writes
            .iter()
            .position(|w| w.ends_with(b))
            .expect("the binding was written");
        assert!(sa < at, "{writes:#?}");
    }
    k.world(|w| {
        assert!(w.get(Res::ServiceAccount, "ci", "deployer").is_none());
        assert!(w.get(Res::Secret, "ci", "deployer-token").is_none());
        assert!(w
            .get(Res::ClusterRoleBinding, "", "deployer-admin")
            .is_none());
        assert_eq!(w.subjects(Res::RoleBinding, "ci", "deploy").len(), 1);
    });
}
