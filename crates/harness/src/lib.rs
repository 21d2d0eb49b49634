//! The harness of the connector tests that go through revoked's own executor and store: a job as
//! the tests write it, a throwaway SQLite store, and a run of a plan killed mid-apply.
//!
//! A dev-dependency only (`publish = false`): it stands above the engine and the store, so the
//! testkit (below the store, whose conformance suite starts its PostgreSQL) does not have to.
//!
//! A kill here is the run's runtime dropped (`shutdown_background`) at a point the test names by
//! what the stand-in saw (a request received, an answer held), never by a timer: its leases stay
//! held and nothing more is recorded, as a kill -9 of the process leaves them. The real-process
//! kills (`revokectl` and `revoked` killed by SIGKILL) are in `crates/cli/tests` and
//! `crates/daemon/tests`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use revoke_core::{Job, JobId, Plan, PlanId, Risk, Subject};
use revoke_engine::{Executor, RunSummary};
use revoke_store::Store;

/// How long [`kill_when`] waits for its point before the test fails.
pub const KILL_POINT_WAIT: Duration = Duration::from_secs(60);

/// How long [`run_to_end`] lets a run take before the test fails.
pub const RUN_WAIT: Duration = Duration::from_secs(120);

/// A job for `subject` under the default policy, effective 60 days ago (so a plan holds its
/// deletes after any retention the tests configure), of standard risk.
pub fn job(id: &str, subject: Subject) -> Job {
    Job {
        id: JobId(id.into()),
        subject,
        reason: "left".into(),
        effective_at: Utc::now() - chrono::Duration::days(60),
        risk: Risk::Standard,
        source: "test".into(),
        requested_by: "test".into(),
        policy: "default".into(),
    }
}

/// [`job`] for a leaver known by their email, their subject id its local part.
pub fn leaver(id: &str, email: &str) -> Job {
    let mut subject = Subject::new(email.split('@').next().unwrap_or(email));
    subject.email = Some(email.to_string());
    job(id, subject)
}

/// A SQLite store in a temp dir that lives as long as the value.
#[derive(Debug)]
pub struct Scratch {
    /// The store.
    pub store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

/// Opens a [`Scratch`] store.
///
/// # Panics
/// When the temp dir or the store cannot be made.
pub async fn scratch_store() -> Scratch {
    let dir = tempfile::tempdir().expect("a temp dir for the store");
    let store = revoke_store::open(&format!("sqlite://{}", dir.path().join("db").display()))
        .await
        .expect("a SQLite store");
    Scratch { store, _dir: dir }
}

/// Records `plan` with `executor`, runs it on a runtime of its own until `reached()` holds, then
/// drops that runtime: the run dies where the test said, its leases held. `what` names the point
/// in the failure message.
///
/// # Panics
/// When the plan cannot be recorded, or `reached()` does not hold within [`KILL_POINT_WAIT`] (the
/// message then lists each action's state and error, from the store).
pub async fn kill_when(
    executor: Executor,
    store: &Arc<dyn Store>,
    plan: &Plan,
    what: &str,
    reached: impl Fn() -> bool,
) {
    executor.record(plan).await.expect("the plan is recorded");
    let doomed = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime for the run to kill");
    let id = plan.id.clone();
    doomed.spawn(async move { executor.run_plan(&id).await });
    let started = Instant::now();
    while !reached() {
        if started.elapsed() > KILL_POINT_WAIT {
            let states: Vec<String> = store
                .actions(&plan.id)
                .await
                .map(|records| {
                    records
                        .iter()
                        .map(|r| format!("{} {:?} {:?}", r.action.kind.0, r.state, r.error))
                        .collect()
                })
                .unwrap_or_default();
            panic!("the run never reached its kill point ({what}): {states:#?}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    doomed.shutdown_background();
}

/// Runs `plan` with `executor` to its end.
///
/// # Panics
/// When the run fails or takes longer than [`RUN_WAIT`].
pub async fn run_to_end(executor: &Executor, plan: &PlanId) -> RunSummary {
    tokio::time::timeout(RUN_WAIT, executor.run_plan(plan))
        .await
        .expect("the run ends in time")
        .expect("the run")
}
