//! Due jobs of the daemon's queue planned without the daemon, for `revokectl resume`: what
//! `revokectl import` (or intake, or the API) queued and what has come due since is claimed,
//! discovered and planned the way the daemon's scheduler does it (`revoked::scheduler`), then run
//! by the same executor. Jobs not yet due, and jobs held by the blast-radius guard, stay queued.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use revoke_core::{JobId, PlanId};
use revoke_engine::EngineError;
use revoke_store::{QueuedJob, Store};
use tracing::{info, warn};

use crate::context::Context;

/// Planning attempts before a job fails for good, and the backoff between them: the
/// scheduler's (`revoked::scheduler`), so a job planned by either retries on the same clock.
const MAX_PLANNING_ATTEMPTS: u32 = 12;
/// Jobs claimed (and discovered together) at a time.
const CLAIM: u32 = 64;

/// What planning the due jobs did.
#[derive(Debug, Default)]
pub struct DuePlanned {
    /// Jobs planned now, with their plans (to run next).
    pub planned: Vec<(QueuedJob, PlanId, usize)>,
    /// Planning failed for a reason that may pass: due again at that time.
    pub retry: Vec<(QueuedJob, String, DateTime<Utc>)>,
    /// Planning failed for good (an unknown person, a permanent error).
    pub failed: Vec<(QueuedJob, String)>,
}

/// Claims every due scheduled job, in rounds of [`CLAIM`], and plans each as the scheduler does:
/// one discovery for a round (each job on its own when that fails), a plan per job recorded with
/// `job_planned` (which needs the claim and a still-scheduled job, so a job is planned once even
/// with a daemon beside us), a retryable discovery error due again later, any other failing it.
pub async fn plan_due(
    ctx: &Context,
    store: &Arc<dyn Store>,
    owner: &str,
) -> anyhow::Result<DuePlanned> {
    let mut out = DuePlanned::default();
    let claim = ctx.config.executor.lease();
    let mut seen: BTreeSet<JobId> = BTreeSet::new();
    loop {
        let claimed = store
            .claim_due_jobs(owner, Utc::now(), claim, CLAIM)
            .await?;
        // A job is planned, retried later or failed, so it is never claimed twice in one run;
        // stop rather than loop should a store ever hand one back.
        let claimed: Vec<QueuedJob> = claimed
            .into_iter()
            .filter(|q| seen.insert(q.job.id.clone()))
            .collect();
        if claimed.is_empty() {
            return Ok(out);
        }
        plan_round(ctx, store, owner, claimed, &mut out).await;
    }
}

async fn plan_round(
    ctx: &Context,
    store: &Arc<dyn Store>,
    owner: &str,
    claimed: Vec<QueuedJob>,
    out: &mut DuePlanned,
) {
    let jobs: Vec<revoke_core::Job> = claimed.iter().map(|q| q.job.clone()).collect();
    let shared = if jobs.len() > 1 {
        revoke_engine::discover(&ctx.config, &ctx.connectors, &jobs)
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
                let mine: Vec<revoke_core::Discovery> = all
                    .iter()
                    .filter(|d| d.subject == q.job.subject.id)
                    .cloned()
                    .collect();
                revoke_engine::plan_jobs(
                    &ctx.config,
                    &ctx.connectors,
                    vec![q.job.clone()],
                    &mine,
                    id,
                    Utc::now(),
                )
            }
            None => {
                revoke_engine::plan(
                    &ctx.config,
                    &ctx.connectors,
                    vec![q.job.clone()],
                    id,
                    Utc::now(),
                )
                .await
            }
        };
        record(store, owner, q, planned, out).await;
    }
}

/// Records a claimed job's plan, or why it could not be made.
async fn record(
    store: &Arc<dyn Store>,
    owner: &str,
    q: QueuedJob,
    planned: Result<revoke_core::Plan, EngineError>,
    out: &mut DuePlanned,
) {
    let job = q.job.id.clone();
    match planned {
        Ok(plan) => match store.job_planned(&job, &plan, owner, Utc::now()).await {
            Ok(()) => {
                info!(job_id = %job, plan_id = %plan.id, actions = plan.actions.len(), "job planned");
                let n = plan.actions.len();
                out.planned.push((q, plan.id, n));
            }
            Err(e) => {
                warn!(job_id = %job, error = %e, "recording the plan failed; the claim will expire and the job be planned again")
            }
        },
        Err(e) => {
            let retry_at = match &e {
                EngineError::Discovery { error, .. }
                    if error.is_retryable()
                        || matches!(error.class, revoke_core::ErrorClass::Auth) =>
                {
                    (q.planning_attempts + 1 < MAX_PLANNING_ATTEMPTS).then(|| {
                        let secs = 5u64
                            .saturating_mul(1 << q.planning_attempts.min(7))
                            .min(600);
                        Utc::now() + chrono::Duration::seconds(secs as i64)
                    })
                }
                EngineError::Store(_) => {
                    warn!(job_id = %job, error = %e, "planning failed in the store; the claim will expire");
                    return;
                }
                _ => None,
            };
            let message = e.to_string();
            if let Err(e) = store
                .job_planning_failed(&job, owner, &message, retry_at, Utc::now())
                .await
            {
                warn!(job_id = %job, error = %e, "recording the planning failure failed");
                return;
            }
            match retry_at {
                Some(t) => {
                    warn!(job_id = %job, error = %message, retry_at = %t, "planning failed; will retry");
                    out.retry.push((q, message, t));
                }
                None => {
                    warn!(job_id = %job, error = %message, "planning failed for good");
                    out.failed.push((q, message));
                }
            }
        }
    }
}
