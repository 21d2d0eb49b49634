//! The Google Workspace connector through revoked's own planner, executor and SQLite store,
//! against the Google stand-in: a run that dies between the Drive transfer's insert and its
//! journal entry (the stand-in takes the insert and holds its answer back, the run is dropped,
//! as a kill -9 leaves it: its lease held, nothing recorded), then a second executor that takes
//! over once the lease is over and converges with one transfer, not two. The planner also
//! leaves out a protected account that a job reaches by its primary address while the
//! protected entry names its alias. And a departing client's job, end to end.

use chrono::Utc;
use revoke_connector_google_workspace::GoogleFactory;
use revoke_core::{ClientDomain, PlanId, Subject};
use revoke_engine::{plan, Executor, Registry};
use revoke_harness::leaver as job;
use revoke_testkit::google::GoogleStandin;

const TRANSFERS: &str = "/admin/datatransfer/v1/transfers";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_between_the_transfer_insert_and_its_journal_entry_resumes_with_one_transfer()
{
    let g = GoogleStandin::start().expect("the google stand-in should start");
    let (alice, archive, dave) = g.world(|w| {
        let admin = w.user("admin@example.com");
        w.edit(&admin, |u| u.is_admin = true);
        let archive = w.user("archive@example.com");
        let alice = w.user("alice@example.com");
        w.edit(&alice, |u| {
            u.drive_files = 50;
            u.drive_bytes = 50 << 20;
        });
        w.grant(&alice, "1-a.apps.googleusercontent.com", "Slack");
        let eng = w.group("eng@example.com", "Engineering");
        w.add_member(&eng, &alice);
        let dave = w.user("dave@example.com");
        w.edit(&dave, |u| u.aliases = vec!["boss@example.com".into()]);
        w.grant(&dave, "1-a.apps.googleusercontent.com", "Slack");
        w.transfer_polls = 2;
        (alice, archive, dave)
    });
    let key = serde_json::to_string(&g.service_account_key()).expect("a TOML string");
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
accounts = ["BOSS@example.com"]
[connectors.google]
kind = "google-workspace"
private_key = {key}
admin_email = "admin@example.com"
api_url = "{url}"
transfer_to = "archive@example.com"
transfer_poll_ms = 10
transfer_wait_secs = 1
"#,
        url = g.url()
    ))
    .expect("config");
    let registry = Registry::new().with(GoogleFactory);
    registry.validate(&config).expect("valid");
    let connectors = registry.build(&config).expect("connectors");
    let jobs = vec![
        job("job-alice", "alice@example.com"),
        job("job-dave", "dave@example.com"),
    ];
    let plan = plan(&config, &connectors, jobs, PlanId("p1".into()), Utc::now())
        .await
        .expect("plan");
    // dave is protected by his alias: none of his actions is planned, and the plan says why.
    assert!(plan
        .actions
        .iter()
        .all(|a| a.account.as_ref().is_none_or(|p| p.id != dave)));
    assert!(plan
        .actions
        .iter()
        .any(|a| a.account.as_ref().is_some_and(|p| p.id == alice)));
    let note = serde_json::to_string(&plan.notes).expect("json");
    assert!(
        note.contains("boss@example.com") && note.contains("BOSS@example.com"),
        "{note}"
    );

    let scratch = revoke_harness::scratch_store().await;
    let store = scratch.store.clone();
    // The first run, on a runtime of its own with connectors of its own (its own connections),
    // so that shutting that runtime down drops every task of it, as a kill -9 would.
    let first_connectors = registry.build(&config).expect("connectors");
    let first = Executor::new(
        store.clone(),
        first_connectors,
        &config,
        "revokectl@first:1",
    );
    // Google takes the transfer, its answer never comes back, the run dies.
    g.stall("POST", TRANSFERS);
    revoke_harness::kill_when(first, &store, &plan, "the transfer sent", || {
        g.world(|w| w.transfers.len()) > 0
    })
    .await;
    g.release();
    assert_eq!(g.world(|w| w.transfers.len()), 1);

    // The second run takes over once the dead run's lease is over, and finds the transfer.
    let second = Executor::new(store.clone(), connectors, &config, "revokectl@second:2");
    let summary = revoke_harness::run_to_end(&second, &plan.id).await;
    assert_eq!(
        (summary.failed, summary.blocked, summary.not_confirmed),
        (0, 0, 0),
        "{summary:?}"
    );
    let inserts = g
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == TRANSFERS)
        .count();
    assert_eq!(inserts, 1, "one transfer, not two");
    assert_eq!(g.world(|w| w.transfers.len()), 1);
    assert_eq!(g.user(&archive).map(|u| u.drive_files), Some(50));
    assert!(
        g.user(&alice).is_none(),
        "alice is deleted after the transfer"
    );
    let d = g.user(&dave).expect("dave untouched");
    assert!(!d.suspended && d.grants.len() == 1);
    // The transfer's id is in the action's journal, kept in the store.
    let records = store.actions(&plan.id).await.expect("actions");
    let transfer = records
        .iter()
        .find(|r| r.action.kind.0 == "transfer_drive")
        .expect("the transfer action");
    assert!(transfer.attempts >= 2, "{}", transfer.attempts);
}

/// A departing client's job through the planner, the executor and the store: the planner sends
/// the client's subject to this connector (it takes client jobs), leaves out the share of a
/// protected client address and says so, and the run removes every other share of the client;
/// a second run sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_job_converges_through_the_executor_and_spares_a_protected_address() {
    let g = GoogleStandin::start().expect("the google stand-in should start");
    let (roadmap, budget, project) = g.world(|w| {
        let admin = w.user("admin@example.com");
        w.edit(&admin, |u| u.is_admin = true);
        w.user("archive@example.com");
        let alice = w.user("alice@example.com");
        let roadmap = w.file(&alice, "Roadmap");
        w.share(&roadmap, "user", "lee@clientco.test", "reader");
        w.share(&roadmap, "domain", "clientco.test", "reader");
        let budget = w.file(&alice, "Budget");
        w.share(&budget, "group", "partners@clientco.test", "writer");
        let project = w.shared_drive("Client project");
        w.drive_member(&project, &alice, "organizer");
        let lee = w.permission_id("user:lee@clientco.test");
        if let Some(d) = w.drives.get_mut(&project) {
            d.permissions.push(revoke_testkit::google::Permission {
                id: lee,
                kind: "user".into(),
                email: Some("lee@clientco.test".into()),
                domain: None,
                role: "writer".into(),
            });
        }
        (roadmap, budget, project)
    });
    let key = serde_json::to_string(&g.service_account_key()).expect("a TOML string");
    let config = revoke_config::load_str(&format!(
        r#"
[executor]
lease_secs = 1
[protected]
accounts = ["Partners@ClientCo.test"]
domains = ["example.com"]
[connectors.google]
kind = "google-workspace"
private_key = {key}
admin_email = "admin@example.com"
api_url = "{url}"
transfer_to = "archive@example.com"
"#,
        url = g.url()
    ))
    .expect("config");
    let registry = Registry::new().with(GoogleFactory);
    registry.validate(&config).expect("valid");
    let connectors = registry.build(&config).expect("connectors");
    let mut client = job("job-client", "x@example.com");
    client.subject = Subject::client(ClientDomain::parse("clientco.test").expect("domain"));
    let plan = plan(
        &config,
        &connectors,
        vec![client],
        PlanId("c1".into()),
        Utc::now(),
    )
    .await
    .expect("plan");
    assert_eq!(plan.actions.len(), 3, "{:#?}", plan.actions);
    let note = serde_json::to_string(&plan.notes).expect("json");
    assert!(note.contains("partners@clientco.test"), "{note}");

    let scratch = revoke_harness::scratch_store().await;
    let store = scratch.store.clone();
    let executor = Executor::new(store.clone(), connectors, &config, "revokectl@client:1");
    executor.record(&plan).await.expect("record");
    let summary = executor.run_plan(&plan.id).await.expect("run");
    assert_eq!(
        (
            summary.done,
            summary.failed,
            summary.blocked,
            summary.not_confirmed
        ),
        (3, 0, 0, 0),
        "{summary:?}"
    );
    g.world(|w| {
        let grantees = |f: &str| -> Vec<String> {
            w.files[f]
                .permissions
                .iter()
                .filter_map(|p| p.email.clone().or(p.domain.clone()))
                .collect()
        };
        assert_eq!(grantees(&roadmap), ["alice@example.com"]);
        assert_eq!(
            grantees(&budget),
            ["alice@example.com", "partners@clientco.test"],
            "the protected address keeps its share"
        );
        assert!(w.drives[&project]
            .permissions
            .iter()
            .all(|p| p.email.as_deref() != Some("lee@clientco.test")));
    });
    g.clear_requests();
    let again = executor.run_plan(&plan.id).await.expect("second run");
    assert_eq!((again.failed, again.blocked), (0, 0), "{again:?}");
    assert_eq!(g.mutations(), vec![], "a second run writes nothing");
}
