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
    outln!("Plan {} (fingerprint {})", plan.id, &plan.fingerprint[..16]);
    for j in &plan.jobs {
        outln!(
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
        outln!(
            "\n{connector} ({n} action{})",
            if n == 1 { "" } else { "s" }
        );
        // The accounts these actions are pinned to, and why each is the leaver's.
        let mut pins: Vec<&revoke_core::AccountPin> = phases
            .values()
            .flatten()
            .filter_map(|a| a.account.as_ref())
            .collect();
        pins.sort();
        pins.dedup();
        for pin in pins {
            let why = plan
                .snapshot
                .findings
                .iter()
                .find(|f| {
                    f.connector == *connector
                        && f.kind == revoke_engine::IDENTITY
                        && f.attrs.get("id") == Some(&pin.id)
                })
                .and_then(|f| f.attrs.get("matched_by"))
                .map(|m| format!("; matched by {m}"))
                .unwrap_or_default();
            outln!("  account {} ({} {}{why})", pin.name, pin.id_kind, pin.id);
        }
        for (phase, actions) in phases {
            outln!("  {phase} ({})", actions.len());
            for a in actions {
                outln!(
                    "    {:<44} {:<30} {}",
                    a.id.0,
                    when(a.not_before, now),
                    a.summary
                );
            }
        }
    }
    if !plan.notes.is_empty() {
        outln!("\nNotes:");
        for n in &plan.notes {
            outln!(
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
        outln!("\nNo changes: nothing to remove.");
    } else {
        outln!(
            "\nPlan: {mutating} to change ({scheduled} scheduled for later), {manual} manual step{} to acknowledge.",
            if manual == 1 { "" } else { "s" }
        );
    }
}

/// Shows one executor event as `output` asks; returns how many actions it finished (the
/// progress bar's steps).
pub fn event(ev: &ExecEvent, output: Format) -> usize {
    let finished = match ev {
        ExecEvent::Finished(_) => 1,
        ExecEvent::Blocked { action_ids } => action_ids.len(),
        _ => 0,
    };
    if let ExecEvent::Waiting {
        action_ids,
        owner,
        until,
    } = ev
    {
        // Said on stderr in every format: it explains a silence, it is not a result.
        let secs = (*until - Utc::now()).num_seconds().max(0);
        crate::out::note(format_args!(
            "waiting for {} action(s) leased by {owner} until {} ({secs} s): if that run stopped, its leases run out then and the actions run here ({})",
            action_ids.len(),
            until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            action_ids.join(", ")
        ));
        return finished;
    }
    match output {
        Format::Jsonl | Format::Yaml => {
            if let ExecEvent::Finished(line) = ev {
                if let Err(e) = crate::out::item(line, output) {
                    tracing::warn!(error = %e, "cannot write a result");
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
                outln!("  retry    {action_id}  attempt {attempt} failed ({error}); next in {delay_ms} ms")
            }
            ExecEvent::Finished(l) => {
                let detail = match (&l.error_code, &l.verdict) {
                    (Some(code), _) => {
                        format!("{}: {}", code, l.error_message.as_deref().unwrap_or(""))
                    }
                    (None, Some(v)) => v.clone(),
                    (None, None) => String::new(),
                };
                outln!(
                    "  {:<12} {:<44} {} (attempt {}) {}",
                    l.outcome,
                    l.action_id,
                    l.target,
                    l.attempts,
                    detail
                )
            }
            ExecEvent::Blocked { action_ids } => {
                for a in action_ids {
                    outln!("  {:<12} {a} (a prerequisite failed)", "blocked");
                }
            }
            ExecEvent::Waiting { .. } => {}
        },
    }
    finished
}

pub fn summary(s: &RunSummary, records: &[ActionRecord], now: DateTime<Utc>) {
    outln!(
        "\nSummary: {} done, {} already done, {} skipped, {} failed, {} blocked, {} scheduled, {} awaiting acknowledgement, {} acknowledged, {} not confirmed",
        s.done, s.already_done, s.skipped, s.failed, s.blocked, s.scheduled, s.awaiting_ack, s.acknowledged, s.not_confirmed
    );
    for r in records
        .iter()
        .filter(|r| r.action.not_before.is_some_and(|t| t > now) && !r.state.is_final())
    {
        outln!(
            "  scheduled    {:<44} {}",
            r.action.id,
            when(r.action.not_before, now)
        );
    }
    for r in records
        .iter()
        .filter(|r| r.state == revoke_store::ActionState::AwaitingAck)
    {
        outln!(
            "  awaiting     {:<44} {}  (revokectl ack {} {})",
            r.action.id,
            r.action.summary,
            r.action.job_id,
            r.action.id
        );
    }
    if let Some(t) = s.next_due {
        outln!(
            "Run `revokectl resume` after {} to run what is scheduled.",
            t.to_rfc3339_opts(SecondsFormat::Secs, true)
        );
    }
}

pub fn records(records: &[ActionRecord]) {
    outln!(
        "\n{:<44} {:<9} {:<13} {:>8}  {:<20} verdict / error",
        "action",
        "phase",
        "state",
        "attempts",
        "finished"
    );
    for r in records {
        let detail = match (&r.error, &r.verdict) {
            (Some(e), _) => format!("{} {}: {}", e.class.name(), e.code, e.message),
            (None, Some(v)) => v.to_string(),
            (None, None) => r.note.clone().unwrap_or_default(),
        };
        outln!(
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
        outln!("no jobs recorded");
        return;
    }
    outln!(
        "{:<38} {:<20} {:<21} {:>5} {:>6} {:>7} {:>6} {:>9} {:>6}",
        "job",
        "subject",
        "created",
        "done",
        "failed",
        "blocked",
        "sched",
        "awaiting",
        "issues"
    );
    for (j, s) in rows {
        outln!(
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
        outln!("no jobs");
        return;
    }
    outln!(
        "{:<38} {:<17} {:<24} {:<10} {:<8} {:<20} note",
        "job",
        "state",
        "subject",
        "source",
        "risk",
        "due"
    );
    for j in jobs {
        outln!(
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
    outln!("Job {}  {}", s.job_id, s.state);
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
        outln!("  {k:<12} {v}");
    }
    let p = &d.progress;
    outln!(
        "\nProgress: {} action(s): {} done, {} already done, {} skipped, {} pending, {} running, {} failed, {} blocked, {} cancelled, {} awaiting acknowledgement, {} acknowledged",
        p.total, p.done, p.already_done, p.skipped, p.pending, p.running, p.failed, p.blocked, p.cancelled, p.awaiting_ack, p.acknowledged
    );
    if let Some(t) = p.next_due {
        outln!("Next due: {}", secs(t));
    }
    if d.actions.is_empty() {
        return;
    }
    outln!(
        "\n{:<44} {:<9} {:<13} {:>8}  {:<20} verdict / error",
        "action",
        "phase",
        "outcome",
        "attempts",
        "finished"
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
        outln!(
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
    outln!("revoked {}", s.version);
    let q = &s.queue;
    outln!("  scheduled jobs     {}", q.scheduled_jobs);
    outln!("  awaiting approval  {}", q.awaiting_approval);
    outln!("  due actions        {}", q.due_actions);
    outln!("  running actions    {}", q.running_actions);
    if q.awaiting_approval > 0 {
        outln!("\nJobs held by the blast-radius guard: `revokectl jobs --state awaiting_approval`, then `revokectl approve JOB` or `revokectl reject JOB`.");
    }
}

fn short_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Batches of held jobs, one a line.
pub fn batches(list: &[revoke_store::JobBatch], all: bool) {
    if list.is_empty() {
        outln!(
            "{}",
            if all {
                "no batches"
            } else {
                "no batch awaits approval"
            }
        );
        return;
    }
    outln!(
        "{:<20} {:<16} {:>6} {:>9}  {:<21} {:<21} decision",
        "batch",
        "source",
        "held",
        "awaiting",
        "opened",
        "last hold"
    );
    for b in list {
        outln!(
            "{:<20} {:<16} {:>6} {:>9}  {:<21} {:<21} {}",
            b.batch_id,
            b.source,
            b.held,
            b.awaiting_approval,
            short_time(b.opened_at),
            short_time(b.last_held_at),
            match (&b.decision, &b.decided_by) {
                (Some(d), Some(by)) => format!("{d} by {by}"),
                (Some(d), None) => d.clone(),
                _ => "-".to_string(),
            }
        );
    }
    if list.iter().any(|b| b.awaiting_approval > 0) {
        outln!("\nShow one with `revokectl batches ID`; decide it with `revokectl approve --batch ID` or `revokectl reject --batch ID`.");
    }
}

fn counts(m: &BTreeMap<String, u64>) -> String {
    let mut v: Vec<(&String, &u64)> = m.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What one batch contains.
pub fn batch_detail(d: &revoke_store::BatchDetail) {
    let b = &d.batch;
    outln!(
        "batch {} (source {}): {} job(s) awaiting approval of {} held",
        b.batch_id,
        b.source,
        b.awaiting_approval,
        b.held
    );
    outln!(
        "  opened {}, last hold {}{}",
        short_time(b.opened_at),
        short_time(b.last_held_at),
        match (&b.decision, &b.decided_by, b.closed_at) {
            (Some(dec), by, Some(at)) => format!(
                ", {dec} by {} at {}",
                by.as_deref().unwrap_or("?"),
                short_time(at)
            ),
            _ => String::new(),
        }
    );
    outln!("  by state:      {}", counts(&d.by_state));
    if b.awaiting_approval > 0 {
        outln!("  by source:     {}", counts(&d.by_source));
        outln!("  by department: {}", counts(&d.by_department));
        outln!("  by reason:     {}", counts(&d.by_reason));
        outln!("  by risk:       {}", counts(&d.by_risk));
        if let (Some(from), Some(to)) = (d.effective_from, d.effective_to) {
            outln!(
                "  effective:     {} to {}",
                short_time(from),
                short_time(to)
            );
        }
        outln!("  sample ({} of {}):", d.sample.len(), b.awaiting_approval);
        for j in &d.sample {
            outln!(
                "    {:<38} {:<24} {:<8} {:<21} {}",
                j.job_id,
                j.subject,
                j.risk,
                short_time(j.effective_at),
                j.reason
            );
        }
    }
}
