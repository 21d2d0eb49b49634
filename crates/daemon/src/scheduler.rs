//! The scheduler: claims jobs that are due, plans them (read-only discovery) and hands their
//! actions to the workers; and the observer that turns executor events into metrics.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use revoke_core::Risk;
use revoke_engine::queue::{plan_claimed, Planned};
use revoke_engine::ExecEvent;
use revoke_store::{ActionState, QueuedJob};
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{info, warn};

use crate::state::AppState;

/// Jobs claimed (and discovered together) at once: a burst of terminations is planned from one
/// discovery per connector instance instead of one round per handful.
const CLAIM_BATCH: u32 = 64;

/// Plans due jobs until told to stop.
pub async fn run(state: Arc<AppState>) {
    let mut stop = state.stop.clone();
    let poll = state.config.daemon.poll();
    // A claim lasts as long as an action's lease: a replica that dies while planning holds the job
    // no longer than it would hold an action. A claim that runs out mid-planning is safe:
    // `job_planned` records only the plan of the replica that still holds the claim.
    let claim = state.config.executor.lease();
    while !*stop.borrow() {
        let mut full = false;
        match state
            .store
            .claim_due_jobs(&state.owner, Utc::now(), claim, CLAIM_BATCH)
            .await
        {
            Ok(jobs) if !jobs.is_empty() => {
                full = jobs.len() >= CLAIM_BATCH as usize;
                plan_batch(&state, jobs).await;
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "claiming due jobs failed; will try again"),
        }
        if full {
            // More may be due right now (a bulk import): claim again without waiting.
            continue;
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

/// Plans the claimed jobs (`revoke_engine::queue::plan_claimed`: one discovery for all of them,
/// a plan each) and wakes the workers as soon as each plan is recorded.
async fn plan_batch(state: &AppState, claimed: Vec<QueuedJob>) {
    plan_claimed(
        &state.config,
        &state.connectors,
        state.store.as_ref(),
        &state.owner,
        claimed,
        |q, outcome| match outcome {
            Planned::Recorded { .. } => {
                revoke_telemetry::job_finished(&q.job.source, "planned");
                state.wake_workers.notify_one();
            }
            Planned::Failed { .. } => revoke_telemetry::job_finished(&q.job.source, "failed"),
            Planned::Retry { .. } | Planned::NotRecorded { .. } => {}
        },
    )
    .await;
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
