//! Evidence for one offboarding case, as auditors sample it (SOC 2 CC6.2/CC6.3, ISO 27001 A.5.18):
//! the HR event, the plan and its fingerprint, every action with its times, acting identity,
//! outcome, verification and journal, and the audit entries with their chain hashes. Access
//! removed later than the SLA after the termination time is flagged.

use std::fmt::Write as _;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use revoke_core::{JobId, JournalEntry, Phase, Verdict};
use revoke_store::{verify_chain, ActionState, AuditEntry, Store};
use serde::{Deserialize, Serialize};

use crate::EngineError;

/// Everything recorded about one job, in the shape exports are made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub job_id: String,
    pub subject: String,
    pub employee_id: Option<String>,
    pub email: Option<String>,
    pub source: String,
    pub source_event_id: Option<String>,
    /// SHA-256 of the raw request body the event came in.
    pub event_body_sha256: Option<String>,
    /// When revoked received the termination (the HR event time as we saw it).
    pub received_at: Option<DateTime<Utc>>,
    /// When access had to end.
    pub termination_at: DateTime<Utc>,
    pub risk: String,
    pub reason: String,
    pub requested_by: String,
    /// The daemon job state (`planned`, `cancelled`...), or `planned` for a CLI job.
    pub state: String,
    pub state_note: Option<String>,
    pub plan_id: Option<String>,
    pub plan_fingerprint: Option<String>,
    pub plan_created_at: Option<DateTime<Utc>>,
    pub sla_hours: u64,
    pub actions: Vec<EvidenceAction>,
    /// Actions removing access that finished after the SLA, or are still open past it.
    pub sla_breaches: usize,
    pub audit: Vec<EvidenceAudit>,
    /// Whether the whole audit chain verifies (no altered, missing or reordered entry).
    pub audit_chain_intact: bool,
    /// The hash of the newest audit entry: record it elsewhere to detect truncation later.
    pub audit_head_hash: Option<String>,
    pub generated_at: DateTime<Utc>,
}

/// One action of the case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceAction {
    pub action_id: String,
    pub connector: String,
    pub kind: String,
    pub target: String,
    /// The account the action was pinned to: its immutable id as discovery saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<revoke_core::AccountPin>,
    pub phase: String,
    pub outcome: String,
    pub attempts: u32,
    pub idempotency_key: String,
    pub not_before: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Who performed it: the executor that recorded the result, or the person who acknowledged.
    pub acted_by: Option<String>,
    pub verdict: Option<String>,
    pub verified_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub note: Option<String>,
    /// Access removal finished (or is still open) later than termination + SLA.
    pub late: bool,
    /// What the action recorded about itself across its attempts (the id of a key it created, a
    /// step it finished), oldest first; left out when it recorded nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub journal: Vec<JournalEntry>,
}

/// One audit entry about the case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceAudit {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub kind: String,
    pub action_id: Option<String>,
    pub data: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// Collects the evidence of `job` from the store. `NotFound` when there is no such job.
pub async fn collect(
    store: &dyn Store,
    job: &JobId,
    sla: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<Evidence, EngineError> {
    let queued = store.queued_job(job).await?;
    let plan_id = match &queued {
        Some(q) => q.plan_id.clone(),
        None => store.plan_of_job(job).await?,
    };
    let plan = match &plan_id {
        Some(p) => store.plan(p).await?,
        None => None,
    };
    let the_job = match (&queued, &plan) {
        (Some(q), _) => q.job.clone(),
        (None, Some(p)) => p
            .jobs
            .iter()
            .find(|j| &j.id == job)
            .cloned()
            .ok_or_else(|| revoke_store::StoreError::NotFound(format!("job {job}")))?,
        (None, None) => return Err(revoke_store::StoreError::NotFound(format!("job {job}")).into()),
    };
    let records = match &plan_id {
        Some(p) => store.actions(p).await?,
        None => Vec::new(),
    };
    let audit = store.job_audit(job).await?;
    let whole = store.audit_log().await?;
    let audit_chain_intact = verify_chain(&whole).is_empty();
    let audit_head_hash = whole.last().map(|e| e.hash.clone());

    let sla_chrono = ChronoDuration::from_std(sla).unwrap_or_else(|_| ChronoDuration::hours(24));
    let deadline = the_job.effective_at + sla_chrono;
    let mut actions = Vec::new();
    for r in records.iter().filter(|r| r.action.job_id == *job) {
        let removes_access = matches!(r.action.phase, Phase::Contain | Phase::Revoke);
        let late = removes_access
            && match (r.state, r.finished_at) {
                (s, Some(f)) if s.is_success() => f > deadline,
                (ActionState::Cancelled, _) => false,
                _ => now > deadline,
            };
        actions.push(EvidenceAction {
            action_id: r.action.id.0.clone(),
            connector: r.action.connector.clone(),
            kind: r.action.kind.0.clone(),
            target: r.action.target.clone(),
            account: r.action.account.clone(),
            phase: r.action.phase.as_str().to_string(),
            outcome: r.state.as_str().to_string(),
            attempts: r.attempts,
            idempotency_key: r.action.key.0.clone(),
            not_before: r.action.not_before,
            started_at: r.started_at,
            finished_at: r.finished_at,
            acted_by: acted_by(&audit, &r.action.id.0),
            verdict: r.verdict.as_ref().map(|v| match v {
                Verdict::Confirmed => "confirmed".to_string(),
                Verdict::NotConfirmed { detail } => format!("not confirmed: {detail}"),
            }),
            verified_at: r.verified_at,
            error: r.error.as_ref().map(ToString::to_string),
            note: r.note.clone(),
            late,
            journal: store.journal(&r.action.id).await?,
        });
    }
    let sla_breaches = actions.iter().filter(|a| a.late).count();
    let event = queued.as_ref().and_then(|q| q.event.as_ref());
    Ok(Evidence {
        job_id: job.0.clone(),
        subject: the_job.subject.id.clone(),
        employee_id: the_job.subject.employee_id.clone(),
        email: the_job.subject.email.clone(),
        source: the_job.source.clone(),
        source_event_id: queued.as_ref().and_then(|q| q.source_event_id.clone()),
        event_body_sha256: event
            .and_then(|e| e.get("body_sha256"))
            .and_then(|v| v.as_str())
            .map(str::to_string),
        received_at: queued.as_ref().map(|q| q.received_at),
        termination_at: the_job.effective_at,
        risk: the_job.risk.to_string(),
        reason: the_job.reason.clone(),
        requested_by: the_job.requested_by.clone(),
        state: queued
            .as_ref()
            .map_or("planned".to_string(), |q| q.state.as_str().to_string()),
        state_note: queued.as_ref().and_then(|q| q.note.clone()),
        plan_id: plan_id.map(|p| p.0),
        plan_fingerprint: plan.as_ref().map(|p| p.fingerprint.clone()),
        plan_created_at: plan.as_ref().map(|p| p.created_at),
        sla_hours: sla.as_secs() / 3600,
        actions,
        sla_breaches,
        audit: audit
            .iter()
            .map(|e| EvidenceAudit {
                seq: e.seq,
                at: e.at,
                actor: e.actor.clone(),
                kind: e.kind.clone(),
                action_id: e.action_id.clone(),
                data: serde_json::from_str(&e.data)
                    .unwrap_or_else(|_| serde_json::Value::String(e.data.clone())),
                prev_hash: e.prev_hash.clone(),
                hash: e.hash.clone(),
            })
            .collect(),
        audit_chain_intact,
        audit_head_hash,
        generated_at: now,
    })
}

/// The identity that recorded an action's final result (or acknowledged it).
fn acted_by(audit: &[AuditEntry], action: &str) -> Option<String> {
    audit
        .iter()
        .rev()
        .find(|e| {
            e.action_id.as_deref() == Some(action)
                && matches!(
                    e.kind.as_str(),
                    "action.finished" | "action.acknowledged" | "action.cancelled"
                )
        })
        .map(|e| e.actor.clone())
}

/// The export formats of `revokectl evidence` and `GET /api/v1/jobs/{id}/evidence`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvidenceFormat {
    Json,
    Jsonl,
    Csv,
    Md,
}

impl EvidenceFormat {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "json" => Some(Self::Json),
            "jsonl" => Some(Self::Jsonl),
            "csv" => Some(Self::Csv),
            "md" | "markdown" => Some(Self::Md),
            _ => None,
        }
    }

    pub fn content_type(&self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Jsonl => "application/jsonl",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Md => "text/markdown; charset=utf-8",
        }
    }
}

impl Evidence {
    pub fn render(&self, format: EvidenceFormat) -> String {
        match format {
            EvidenceFormat::Json => serde_json::to_string_pretty(self).unwrap_or_default() + "\n",
            EvidenceFormat::Jsonl => self.to_jsonl(),
            EvidenceFormat::Csv => self.to_csv(),
            EvidenceFormat::Md => self.to_markdown(),
        }
    }

    /// One `case` line, one `action` line per action, one `audit` line per entry.
    fn to_jsonl(&self) -> String {
        let mut case = serde_json::to_value(self).unwrap_or_default();
        if let Some(m) = case.as_object_mut() {
            m.remove("actions");
            m.remove("audit");
            m.insert("record".into(), "case".into());
        }
        let mut out = format!("{case}\n");
        for a in &self.actions {
            let mut v = serde_json::to_value(a).unwrap_or_default();
            if let Some(m) = v.as_object_mut() {
                m.insert("record".into(), "action".into());
                m.insert("job_id".into(), self.job_id.clone().into());
            }
            let _ = writeln!(out, "{v}");
        }
        for e in &self.audit {
            let mut v = serde_json::to_value(e).unwrap_or_default();
            if let Some(m) = v.as_object_mut() {
                m.insert("record".into(), "audit".into());
                m.insert("job_id".into(), self.job_id.clone().into());
            }
            let _ = writeln!(out, "{v}");
        }
        out
    }

    /// One row per action, with the case's columns repeated so each row stands alone.
    fn to_csv(&self) -> String {
        let header = [
            "job_id",
            "subject",
            "source",
            "source_event_id",
            "received_at",
            "termination_at",
            "plan_fingerprint",
            "action_id",
            "connector",
            "kind",
            "target",
            "phase",
            "outcome",
            "attempts",
            "started_at",
            "finished_at",
            "acted_by",
            "verdict",
            "verified_at",
            "late",
            "error",
            "account",
            "account_id",
        ];
        let mut out = header.join(",") + "\n";
        let t = |d: &Option<DateTime<Utc>>| d.map(|d| d.to_rfc3339()).unwrap_or_default();
        for a in &self.actions {
            let row = [
                self.job_id.clone(),
                self.subject.clone(),
                self.source.clone(),
                self.source_event_id.clone().unwrap_or_default(),
                t(&self.received_at),
                self.termination_at.to_rfc3339(),
                self.plan_fingerprint.clone().unwrap_or_default(),
                a.action_id.clone(),
                a.connector.clone(),
                a.kind.clone(),
                a.target.clone(),
                a.phase.clone(),
                a.outcome.clone(),
                a.attempts.to_string(),
                t(&a.started_at),
                t(&a.finished_at),
                a.acted_by.clone().unwrap_or_default(),
                a.verdict.clone().unwrap_or_default(),
                t(&a.verified_at),
                a.late.to_string(),
                a.error.clone().unwrap_or_default(),
                a.account
                    .as_ref()
                    .map(|p| p.name.clone())
                    .unwrap_or_default(),
                a.account
                    .as_ref()
                    .map(|p| format!("{} {}", p.id_kind, p.id))
                    .unwrap_or_default(),
            ];
            out += &row
                .iter()
                .map(|c| csv_field(c))
                .collect::<Vec<_>>()
                .join(",");
            out.push('\n');
        }
        out
    }

    fn to_markdown(&self) -> String {
        let t = |d: &Option<DateTime<Utc>>| d.map(|d| d.to_rfc3339()).unwrap_or_else(|| "-".into());
        let mut s = String::new();
        let _ = writeln!(s, "# Offboarding evidence: job {}\n", self.job_id);
        let _ = writeln!(s, "| | |\n|---|---|");
        let rows = [
            ("Subject", md(&self.subject)),
            (
                "Employee id",
                md(self.employee_id.as_deref().unwrap_or("-")),
            ),
            ("Email", md(self.email.as_deref().unwrap_or("-"))),
            ("Source", md(&self.source)),
            (
                "Source event id",
                md(self.source_event_id.as_deref().unwrap_or("-")),
            ),
            (
                "Event body SHA-256",
                md(self.event_body_sha256.as_deref().unwrap_or("-")),
            ),
            ("Received", t(&self.received_at)),
            ("Termination time", self.termination_at.to_rfc3339()),
            ("Risk", self.risk.clone()),
            ("Reason", md(&self.reason)),
            ("Requested by", md(&self.requested_by)),
            (
                "State",
                format!(
                    "{}{}",
                    self.state,
                    self.state_note
                        .as_deref()
                        .map(|n| format!(" ({})", md(n)))
                        .unwrap_or_default()
                ),
            ),
            ("Plan", md(self.plan_id.as_deref().unwrap_or("-"))),
            (
                "Plan fingerprint",
                md(self.plan_fingerprint.as_deref().unwrap_or("-")),
            ),
            (
                "SLA",
                format!("{} h after the termination time", self.sla_hours),
            ),
            ("SLA breaches", self.sla_breaches.to_string()),
            (
                "Audit chain",
                if self.audit_chain_intact {
                    "intact".into()
                } else {
                    "BROKEN".to_string()
                },
            ),
            (
                "Audit head hash",
                md(self.audit_head_hash.as_deref().unwrap_or("-")),
            ),
            ("Generated", self.generated_at.to_rfc3339()),
        ];
        for (k, v) in rows {
            let _ = writeln!(s, "| {k} | {v} |");
        }
        let _ = writeln!(s, "\n## Actions\n");
        let _ = writeln!(s, "| Action | Phase | Target | Pinned to | Outcome | Started | Finished | By | Verification | Late |\n|---|---|---|---|---|---|---|---|---|---|");
        for a in &self.actions {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                md(&a.action_id),
                a.phase,
                md(&a.target),
                a.account
                    .as_ref()
                    .map(|p| md(&format!("{} {}", p.id_kind, p.id)))
                    .unwrap_or_else(|| "-".into()),
                md(&a.outcome),
                t(&a.started_at),
                t(&a.finished_at),
                md(a.acted_by.as_deref().unwrap_or("-")),
                md(a.verdict.as_deref().unwrap_or("-")),
                if a.late { "**late**" } else { "no" }
            );
        }
        if self.actions.iter().any(|a| !a.journal.is_empty()) {
            let _ = writeln!(s, "\n## Journal\n");
            let _ = writeln!(s, "| Action | Time | Name | Value |\n|---|---|---|---|");
            for a in &self.actions {
                for e in &a.journal {
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | {} |",
                        md(&a.action_id),
                        e.at.to_rfc3339(),
                        md(&e.name),
                        md(&e.value)
                    );
                }
            }
        }
        let _ = writeln!(s, "\n## Audit trail\n");
        let _ = writeln!(
            s,
            "| Seq | Time | Actor | Event | Action | Hash |\n|---|---|---|---|---|---|"
        );
        for e in &self.audit {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | `{}` |",
                e.seq,
                e.at.to_rfc3339(),
                md(&e.actor),
                md(&e.kind),
                md(e.action_id.as_deref().unwrap_or("-")),
                e.hash
            );
        }
        s
    }
}

/// A CSV field quoted when it must be (RFC 4180); a leading `=`, `+`, `-` or `@` is prefixed with
/// `'` so a spreadsheet never runs a value as a formula.
fn csv_field(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@']) {
        format!("'{v}")
    } else {
        v.to_string()
    };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

/// A value made safe inside a Markdown table cell.
fn md(v: &str) -> String {
    v.replace('|', "\\|").replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd|' /C calc'!A0"), "'=cmd|' /C calc'!A0");
        assert_eq!(csv_field("plain"), "plain");
    }

    #[test]
    fn markdown_cells_cannot_break_the_table() {
        assert_eq!(md("a|b\nc"), "a\\|b c");
    }
}
