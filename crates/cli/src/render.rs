//! Human-readable output. Machine-readable output is JSON from the same types.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use revoke_core::{Phase, Plan};
use revoke_engine::{ExecEvent, RunSummary};
use revoke_store::{ActionRecord, JobRecord};
use revoked::types::{JobDetail, JobSummary, Status};

use crate::Format;

fn when(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match t {
        Some(t) if t > now => format!("scheduled {}", t.to_rfc3339_opts(SecondsFormat::Secs, true)),
        _ => "now".into(),
    }
}

pub fn plan(plan: &Plan, now: DateTime<Utc>) {
    println!("Plan {} (fingerprint {})", plan.id, &plan.fingerprint[..16]);
    for j in &plan.jobs {
        println!(
            "  job {}  {}  risk {}  effective {}  policy {}",
            j.id,
            j.subject.id,
            j.risk,
            j.effective_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            j.policy
        );
    }
    let mut by_connector: BTreeMap<&str, BTreeMap<Phase, Vec<&revoke_core::Action>>> =
        BTreeMap::new();
    for a in &plan.actions {
        by_connector
            .entry(&a.connector)
            .or_default()
            .entry(a.phase)
            .or_default()
            .push(a);
    }
    for (connector, phases) in &by_connector {
        let n: usize = phases.values().map(Vec::len).sum();
        println!(
            "\n{connector} ({n} action{})",
            if n == 1 { "" } else { "s" }
        );
        for (phase, actions) in phases {
            println!("  {phase} ({})", actions.len());
            for a in actions {
                println!(
                    "    {:<44} {:<30} {}",
                    a.id.0,
                    when(a.not_before, now),
                    a.summary
                );
            }
        }
    }
    if !plan.notes.is_empty() {
        println!("\nNotes:");
        for n in &plan.notes {
            println!(
                "  ! {} ({}): {}",
                n.subject,
                n.connector.as_deref().unwrap_or("-"),
                n.message
            );
        }
    }
    let mutating = plan.actions.iter().filter(|a| !a.is_manual()).count();
    let scheduled = plan
        .actions
        .iter()
        .filter(|a| a.not_before.is_some_and(|t| t > now))
        .count();
    let manual = plan.actions.len() - mutating;
    if plan.actions.is_empty() {
        println!("\nNo changes: nothing to remove.");
    } else {
        println!(
            "\nPlan: {mutating} to change ({scheduled} scheduled for later), {manual} manual step{} to acknowledge.",
            if manual == 1 { "" } else { "s" }
        );
    }
}

pub fn event(ev: &ExecEvent, output: Format) {
    match output {
        Format::Jsonl => {
            if let ExecEvent::Finished(line) = ev {
                if let Ok(s) = serde_json::to_string(line) {
                    println!("{s}");
                }
            }
        }
        Format::Json => {}
        Format::Table => match ev {
            ExecEvent::Attempt { .. } => {}
            ExecEvent::Retrying {
                action_id,
                attempt,
                delay_ms,
                error,
            } => {
                println!("  retry    {action_id}  attempt {attempt} failed ({error}); next in {delay_ms} ms")
            }
            ExecEvent::Finished(l) => {
                let detail = match (&l.error_code, &l.verdict) {
                    (Some(code), _) => {
                        format!("{}: {}", code, l.error_message.as_deref().unwrap_or(""))
                    }
                    (None, Some(v)) => v.clone(),
                    (None, None) => String::new(),
                };
                println!(
                    "  {:<12} {:<44} {} (attempt {}) {}",
                    l.outcome, l.action_id, l.target, l.attempts, detail
                )
            }
            ExecEvent::Blocked { action_ids } => {
                for a in action_ids {
                    println!("  {:<12} {a} (a prerequisite failed)", "blocked");
                }
            }
        },
    }
}

pub fn summary(s: &RunSummary, records: &[ActionRecord], now: DateTime<Utc>) {
    println!(
        "\nSummary: {} done, {} already done, {} skipped, {} failed, {} blocked, {} scheduled, {} awaiting acknowledgement, {} acknowledged, {} not confirmed",
        s.done, s.already_done, s.skipped, s.failed, s.blocked, s.scheduled, s.awaiting_ack, s.acknowledged, s.not_confirmed
    );
    for r in records
        .iter()
        .filter(|r| r.action.not_before.is_some_and(|t| t > now) && !r.state.is_final())
    {
        println!(
            "  scheduled    {:<44} {}",
            r.action.id,
            when(r.action.not_before, now)
        );
    }
    for r in records
        .iter()
        .filter(|r| r.state == revoke_store::ActionState::AwaitingAck)
    {
        println!(
            "  awaiting     {:<44} {}  (revokectl ack {} {})",
            r.action.id, r.action.summary, r.action.job_id, r.action.id
        );
    }
    if let Some(t) = s.next_due {
        println!(
            "Run `revokectl resume` after {} to run what is scheduled.",
            t.to_rfc3339_opts(SecondsFormat::Secs, true)
        );
    }
}

pub fn records(records: &[ActionRecord]) {
    println!(
        "\n{:<44} {:<9} {:<13} {:>8}  {:<20} verdict / error",
        "action", "phase", "state", "attempts", "finished"
    );
    for r in records {
        let detail = match (&r.error, &r.verdict) {
            (Some(e), _) => format!("{} {}: {}", e.class.name(), e.code, e.message),
            (None, Some(v)) => v.to_string(),
            (None, None) => r.note.clone().unwrap_or_default(),
        };
        println!(
            "{:<44} {:<9} {:<13} {:>8}  {:<20} {}",
            r.action.id,
            r.action.phase,
            r.state,
            r.attempts,
            r.finished_at
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
                .unwrap_or_default(),
            detail
        );
    }
}

pub fn jobs(rows: &[(JobRecord, RunSummary)]) {
    if rows.is_empty() {
        println!("no jobs recorded");
        return;
    }
    println!(
        "{:<38} {:<20} {:<21} {:>5} {:>6} {:>7} {:>6} {:>9} {:>6}",
        "job", "subject", "created", "done", "failed", "blocked", "sched", "awaiting", "issues"
    );
    for (j, s) in rows {
        println!(
            "{:<38} {:<20} {:<21} {:>5} {:>6} {:>7} {:>6} {:>9} {:>6}",
            j.job.id,
            j.job.subject.id,
            j.created_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            s.done + s.already_done + s.skipped + s.acknowledged,
            s.failed,
            s.blocked,
            s.scheduled,
            s.awaiting_ack,
            s.not_confirmed
        );
    }
}

fn secs(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `revokectl jobs`: the daemon's queue.
pub fn job_summaries(jobs: &[JobSummary]) {
    if jobs.is_empty() {
        println!("no jobs");
        return;
    }
    println!(
        "{:<38} {:<17} {:<24} {:<10} {:<8} {:<20} note",
        "job", "state", "subject", "source", "risk", "due"
    );
    for j in jobs {
        println!(
            "{:<38} {:<17} {:<24} {:<10} {:<8} {:<20} {}",
            j.job_id,
            j.state,
            j.subject,
            j.source,
            j.risk,
            secs(j.due_at),
            j.note.as_deref().unwrap_or("")
        );
    }
}

/// `revokectl --server URL show JOB`: the job, its progress and each action.
pub fn job_detail(d: &JobDetail) {
    let s = &d.summary;
    println!("Job {}  {}", s.job_id, s.state);
    let rows = [
        ("subject", s.subject.clone()),
        (
            "source",
            match &s.source_event_id {
                Some(e) => format!("{} (event {e})", s.source),
                None => s.source.clone(),
            },
        ),
        ("risk", s.risk.clone()),
        ("reason", s.reason.clone()),
        ("received", secs(s.received_at)),
        ("effective", secs(s.effective_at)),
        ("due", secs(s.due_at)),
        ("plan", s.plan_id.clone().unwrap_or_else(|| "-".into())),
        (
            "fingerprint",
            d.plan_fingerprint.clone().unwrap_or_else(|| "-".into()),
        ),
        ("note", s.note.clone().unwrap_or_else(|| "-".into())),
    ];
    for (k, v) in rows {
        println!("  {k:<12} {v}");
    }
    let p = &d.progress;
    println!(
        "\nProgress: {} action(s): {} done, {} already done, {} skipped, {} pending, {} running, {} failed, {} blocked, {} cancelled, {} awaiting acknowledgement, {} acknowledged",
        p.total, p.done, p.already_done, p.skipped, p.pending, p.running, p.failed, p.blocked, p.cancelled, p.awaiting_ack, p.acknowledged
    );
    if let Some(t) = p.next_due {
        println!("Next due: {}", secs(t));
    }
    if d.actions.is_empty() {
        return;
    }
    println!(
        "\n{:<44} {:<9} {:<13} {:>8}  {:<20} verdict / error",
        "action", "phase", "outcome", "attempts", "finished"
    );
    for a in &d.actions {
        let detail = match (&a.error_code, &a.verdict) {
            (Some(code), _) => format!(
                "{} {code}: {}",
                a.error_class.as_deref().unwrap_or("error"),
                a.error_message.as_deref().unwrap_or("")
            ),
            (None, Some(v)) => v.clone(),
            (None, None) => a.note.clone().unwrap_or_default(),
        };
        println!(
            "{:<44} {:<9} {:<13} {:>8}  {:<20} {}",
            a.action_id,
            a.phase,
            a.outcome,
            a.attempts,
            a.finished_at.map(secs).unwrap_or_default(),
            detail
        );
    }
}

/// `revokectl --server URL status`: the daemon's version and queue.
pub fn queue_status(s: &Status) {
    println!("revoked {}", s.version);
    let q = &s.queue;
    println!("  scheduled jobs     {}", q.scheduled_jobs);
    println!("  awaiting approval  {}", q.awaiting_approval);
    println!("  due actions        {}", q.due_actions);
    println!("  running actions    {}", q.running_actions);
    if q.awaiting_approval > 0 {
        println!("\nJobs held by the blast-radius guard: `revokectl jobs --state awaiting_approval`, then `revokectl approve JOB` or `revokectl reject JOB`.");
    }
}
