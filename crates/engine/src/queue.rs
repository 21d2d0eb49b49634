//! Planning jobs claimed from the store's queue, one policy for every caller: the daemon's
//! scheduler and `revokectl resume` both claim due jobs and hand them here. One discovery serves
//! every claimed job (one `discover_many` per connector instance); when it fails, each job is
//! discovered on its own, so an error is the job's own and one bad subject cannot hold the others
//! back. Each plan is recorded with `job_planned` (which needs the claim and a still-scheduled job,
//! so a job is planned at most once even with several planners). A discovery error that may pass
//! (retryable, or an authentication error) is due again later with a backoff, anything else fails
//! the job for good.

use chrono::{DateTime, Utc};
use revoke_config::Config;
use revoke_core::{Discovery, ErrorClass, Job, PlanId};
use revoke_store::{QueuedJob, Store};
use tracing::{info, warn};

use crate::{discover, plan, plan_jobs, Connectors, EngineError};

/// Planning attempts before a job fails for good (a directory down for hours).
pub const MAX_PLANNING_ATTEMPTS: u32 = 12;

/// What became of one claimed job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Planned {
    /// Its plan is recorded: its actions are due to the executor.
    Recorded { plan_id: PlanId, actions: usize },
    /// Planning failed for a reason that may pass: the job is due again at `at`.
    Retry { error: String, at: DateTime<Utc> },
    /// Planning failed for good (an unknown person, a permanent error).
    Failed { error: String },
    /// The store could not record the outcome; the claim will expire and the job be planned
    /// again.
    NotRecorded { error: String },
}

/// The backoff before planning attempt `attempts + 1`: 5 s doubling, at most 10 minutes.
pub fn planning_retry_at(attempts: u32, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    (attempts + 1 < MAX_PLANNING_ATTEMPTS).then(|| {
        let secs = 5u64.saturating_mul(1 << attempts.min(7)).min(600);
        now + chrono::Duration::seconds(secs as i64)
    })
}

/// Plans each claimed job and records the outcome, calling `each` as soon as a job's outcome is
/// recorded (the daemon wakes its workers there, so the first job's actions start while the
/// others are planned).
pub async fn plan_claimed(
    config: &Config,
    connectors: &Connectors,
    store: &dyn Store,
    owner: &str,
    claimed: Vec<QueuedJob>,
    mut each: impl FnMut(QueuedJob, Planned),
) {
    let jobs: Vec<Job> = claimed.iter().map(|q| q.job.clone()).collect();
    tracing::debug!(jobs = jobs.len(), "planning claimed jobs");
    let shared = if jobs.len() > 1 {
        discover(config, connectors, &jobs)
            .await
            .map_err(|e| warn!(jobs = jobs.len(), error = %e, "batch discovery failed; discovering each job on its own"))
            .ok()
    } else {
        None
    };
    for q in claimed {
        let id = PlanId(uuid::Uuid::new_v4().to_string());
        let planned = match &shared {
            Some(all) => {
                let mine: Vec<Discovery> = all
                    .iter()
                    .filter(|d| d.subject == q.job.subject.id)
                    .cloned()
                    .collect();
                plan_jobs(
                    config,
                    connectors,
                    vec![q.job.clone()],
                    &mine,
                    id,
                    Utc::now(),
                )
            }
            None => plan(config, connectors, vec![q.job.clone()], id, Utc::now()).await,
        };
        let outcome = record(store, owner, &q, planned).await;
        each(q, outcome);
    }
}

/// Records a claimed job's plan, or why it could not be made.
async fn record(
    store: &dyn Store,
    owner: &str,
    q: &QueuedJob,
    planned: Result<revoke_core::Plan, EngineError>,
) -> Planned {
    let job = &q.job.id;
    match planned {
        Ok(plan) => match store.job_planned(job, &plan, owner, Utc::now()).await {
            Ok(()) => {
                info!(job_id = %job, plan_id = %plan.id, actions = plan.actions.len(), fingerprint = %plan.fingerprint, "job planned");
                Planned::Recorded {
                    actions: plan.actions.len(),
                    plan_id: plan.id,
                }
            }
            Err(e) => {
                warn!(job_id = %job, error = %e, "recording the plan failed; the claim will expire and the job be planned again");
                Planned::NotRecorded {
                    error: e.to_string(),
                }
            }
        },
        Err(e) => {
            let retry_at = match &e {
                EngineError::Discovery { error, .. }
                    if error.is_retryable() || matches!(error.class, ErrorClass::Auth) =>
                {
                    planning_retry_at(q.planning_attempts, Utc::now())
                }
                EngineError::Store(_) => {
                    warn!(job_id = %job, error = %e, "planning failed in the store; the claim will expire");
                    return Planned::NotRecorded {
                        error: e.to_string(),
                    };
                }
                _ => None,
            };
            let error = e.to_string();
            if let Err(e) = store
                .job_planning_failed(job, owner, &error, retry_at, Utc::now())
                .await
            {
                warn!(job_id = %job, error = %e, "recording the planning failure failed");
                return Planned::NotRecorded {
                    error: e.to_string(),
                };
            }
            match retry_at {
                Some(at) => {
                    warn!(job_id = %job, error = %error, retry_at = %at, "planning failed; will retry");
                    Planned::Retry { error, at }
                }
                None => {
                    warn!(job_id = %job, error = %error, "planning failed for good");
                    Planned::Failed { error }
                }
            }
        }
    }
}
