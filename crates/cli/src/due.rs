//! Due jobs of the daemon's queue planned without the daemon, for `revokectl resume`: what
//! `revokectl import` (or intake, or the API) queued and what has come due since is claimed and
//! planned by the daemon scheduler's own policy (`revoke_engine::queue::plan_claimed`: one
//! discovery per round, a plan per job, a retryable error due again later, any other failing the
//! job), then run by the same executor. Jobs not yet due, and jobs held by the blast-radius
//! guard, stay queued.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use revoke_core::{JobId, PlanId};
use revoke_engine::queue::{plan_claimed, Planned};
use revoke_store::{QueuedJob, Store};

use crate::context::Context;

/// Jobs claimed (and discovered together) at a time.
const CLAIM: u32 = 64;

/// What planning the due jobs did.
#[derive(Debug, Default)]
pub struct DuePlanned {
    /// Jobs planned now, with their plans (to run next) and their number of actions.
    pub planned: Vec<(QueuedJob, PlanId, usize)>,
    /// Planning failed for a reason that may pass: due again at that time.
    pub retry: Vec<(QueuedJob, String, DateTime<Utc>)>,
    /// Planning failed for good (an unknown person, a permanent error).
    pub failed: Vec<(QueuedJob, String)>,
    /// Planned or failed, but the store did not take it: the claim runs out and a later run
    /// (or the daemon) plans it again.
    pub not_recorded: Vec<(QueuedJob, String)>,
}

/// Claims every due scheduled job, in rounds of [`CLAIM`], and plans each as the scheduler
/// does. `job_planned` needs the claim and a still-scheduled job, so a job is planned once even
/// with a daemon beside us.
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
        plan_claimed(
            &ctx.config,
            &ctx.connectors,
            store.as_ref(),
            owner,
            claimed,
            |q, planned| match planned {
                Planned::Recorded { plan_id, actions } => out.planned.push((q, plan_id, actions)),
                Planned::Retry { error, at } => out.retry.push((q, error, at)),
                Planned::Failed { error } => out.failed.push((q, error)),
                Planned::NotRecorded { error } => out.not_recorded.push((q, error)),
            },
        )
        .await;
    }
}
