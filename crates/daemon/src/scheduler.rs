//! The scheduler: claims jobs that are due, plans them (read-only discovery) and hands their
//! actions to the workers; and the observer that turns executor events into metrics.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use revoke_core::{PlanId, Risk};
use revoke_engine::{EngineError, ExecEvent};
use revoke_store::{ActionState, QueuedJob};
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{info, warn, Instrument};

use crate::state::AppState;

/// Planning attempts before a job fails for good (a directory down for hours).
const MAX_PLANNING_ATTEMPTS: u32 = 12;

/// Plans due jobs until told to stop.
pub async fn run(state: Arc<AppState>) {
    let mut stop = state.stop.clone();
    let poll = state.config.daemon.poll();
    // A claim lasts as long as an action's lease: a replica that dies while planning holds the job
    // no longer than it would hold an action. A claim that runs out mid-planning is safe:
    // `job_planned` records only the plan of the replica that still holds the claim.
    let claim = state.config.executor.lease();
    while !*stop.borrow() {
        match state
            .store
            .claim_due_jobs(&state.owner, Utc::now(), claim, 8)
            .await
        {
            Ok(jobs) if !jobs.is_empty() => plan_batch(&state, jobs).await,
            Ok(_) => {}
            Err(e) => warn!(error = %e, "claiming due jobs failed; will try again"),
        }
        match state.store.queue_stats(Utc::now()).await {
            Ok(s) => {
                revoke_telemetry::queue_depth(s.due_actions);
                revoke_telemetry::jobs_awaiting_approval(s.awaiting_approval);
            }
            Err(e) => warn!(error = %e, "reading queue stats failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = state.wake_scheduler.notified() => {}
            _ = stop.changed() => {}
        }
    }
}

/// Plans the claimed jobs, one plan each, from one discovery for all of them (one
/// `discover_many` per connector instance, so a connector that batches serves a burst in one
/// call). When that discovery fails, each job is discovered on its own, so the error is the
/// job's own and one bad subject cannot hold the others back.
async fn plan_batch(state: &AppState, claimed: Vec<QueuedJob>) {
    let jobs: Vec<revoke_core::Job> = claimed.iter().map(|q| q.job.clone()).collect();
    tracing::debug!(jobs = jobs.len(), "planning claimed jobs");
    let shared = if jobs.len() > 1 {
        revoke_engine::discover(&state.config, &state.connectors, &jobs)
            .await
            .map_err(|e| warn!(jobs = jobs.len(), error = %e, "batch discovery failed; discovering each job on its own"))
            .ok()
    } else {
        None
    };
    for q in claimed {
        let span = tracing::info_span!("job", job_id = %q.job.id, source = %q.job.source, risk = %q.job.risk);
        let id = PlanId(uuid::Uuid::new_v4().to_string());
        let planned = match &shared {
            Some(all) => {
                let mine: Vec<revoke_core::Discovery> = all
                    .iter()
                    .filter(|d| d.subject == q.job.subject.id)
                    .cloned()
                    .collect();
                revoke_engine::plan_jobs(
                    &state.config,
                    &state.connectors,
                    vec![q.job.clone()],
                    &mine,
                    id,
                    Utc::now(),
                )
            }
            None => {
                revoke_engine::plan(
                    &state.config,
                    &state.connectors,
                    vec![q.job.clone()],
                    id,
                    Utc::now(),
                )
                .instrument(span.clone())
                .await
            }
        };
        record(state, q, planned).instrument(span).await;
    }
}

/// Records a claimed job's plan, or why it could not be made (retry later or fail for good).
async fn record(state: &AppState, q: QueuedJob, planned: Result<revoke_core::Plan, EngineError>) {
    let job = q.job.clone();
    match planned {
        Ok(plan) => {
            let actions = plan.actions.len();
            match state
                .store
                .job_planned(&job.id, &plan, &state.owner, Utc::now())
                .await
            {
                Ok(()) => {
                    revoke_telemetry::job_finished(&job.source, "planned");
                    info!(job_id = %job.id, plan_id = %plan.id, actions, fingerprint = %plan.fingerprint, "job planned");
                    state.wake_workers.notify_one();
                }
                Err(e) => {
                    warn!(job_id = %job.id, error = %e, "recording the plan failed; the claim will expire and the job be planned again")
                }
            }
        }
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
                    warn!(job_id = %job.id, error = %e, "planning failed in the store; the claim will expire");
                    return;
                }
                _ => None,
            };
            let message = e.to_string();
            match retry_at {
                Some(t) => {
                    warn!(job_id = %job.id, error = %message, retry_at = %t, "planning failed; will retry")
                }
                None => {
                    revoke_telemetry::job_finished(&job.source, "failed");
                    warn!(job_id = %job.id, error = %message, "planning failed for good");
                }
            }
            if let Err(e) = state
                .store
                .job_planning_failed(&job.id, &state.owner, &message, retry_at, Utc::now())
                .await
            {
                warn!(job_id = %job.id, error = %e, "recording the planning failure failed");
            }
        }
    }
}

/// Turns executor events into metrics: per action, and time to contain per job.
pub async fn observe(state: Arc<AppState>, mut rx: UnboundedReceiver<ExecEvent>) {
    while let Some(ev) = rx.recv().await {
        let ExecEvent::Finished(line) = ev else {
            continue;
        };
        let duration = match (line.started_at, line.finished_at) {
            (Some(s), Some(f)) => (f - s).to_std().unwrap_or_default(),
            _ => Duration::ZERO,
        };
        revoke_telemetry::action_finished(&line.connector, &line.kind, &line.outcome, duration);
        let succeeded = ActionState::parse(&line.outcome).is_some_and(|s| s.is_success());
        if line.phase != "contain" || !succeeded {
            continue;
        }
        if let Err(e) = contain_time(&state, &line.job_id).await {
            warn!(job_id = %line.job_id, error = %e, "time to contain not measured");
        }
    }
}

/// Observes the time from termination (received, or effective if later) to the last contain
/// action done, once every contain action of the job has succeeded.
async fn contain_time(state: &AppState, job: &str) -> Result<(), revoke_store::StoreError> {
    let job = revoke_core::JobId(job.to_string());
    let Some(q) = state.store.queued_job(&job).await? else {
        return Ok(());
    };
    let Some(plan) = &q.plan_id else {
        return Ok(());
    };
    let records = state.store.actions(plan).await?;
    let contain: Vec<_> = records
        .iter()
        .filter(|r| r.action.job_id == job && r.action.phase == revoke_core::Phase::Contain)
        .collect();
    if contain.is_empty() || !contain.iter().all(|r| r.state.is_success()) {
        return Ok(());
    }
    let Some(last) = contain.iter().filter_map(|r| r.finished_at).max() else {
        return Ok(());
    };
    let start = match q.job.risk {
        Risk::High => q.received_at,
        _ => q.received_at.max(q.job.effective_at),
    };
    let secs = (last - start).num_milliseconds().max(0) as f64 / 1000.0;
    revoke_telemetry::time_to_contain_for_risk(&q.job.risk.to_string(), secs);
    info!(job_id = %job, seconds = secs, risk = %q.job.risk, "job contained");
    Ok(())
}
