//! The JSON bodies of the daemon's API, shared with `revokectl --server` so both ends agree.

use chrono::{DateTime, FixedOffset, Utc};
use revoke_store::{ActionRecord, ActionState, QueueStats, QueuedJob, ResultLine};
use serde::{Deserialize, Serialize};

/// `POST /api/v1/jobs`: offboard one person, or one departing client (`client_domain`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitJob {
    #[serde(default)]
    pub employee_id: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    /// A departing client's email domain instead of a person: every share and collaborator
    /// of the domain, in the connectors that take client jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_domain: Option<String>,
    /// When access must end (RFC 3339 with an offset); now when absent.
    #[serde(default)]
    pub effective_at: Option<DateTime<FixedOffset>>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub involuntary: bool,
    /// Contain at once; derived from `[risk]` rules when absent.
    #[serde(default)]
    pub high_risk: Option<bool>,
    /// The policy to plan under (default: `default`).
    #[serde(default)]
    pub policy: Option<String>,
    /// Repeating a request with the same key returns the first job instead of making another.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// What a submission (API or intake) made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    pub job_id: String,
    pub state: String,
    /// The event or key was seen before: `job_id` is the job the first delivery made.
    pub duplicate: bool,
}

/// The answer of an intake endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntakeAnswer {
    /// One per termination in the request.
    pub jobs: Vec<Submitted>,
    /// Jobs a cancellation (or rehire) event cancelled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cancelled: Vec<String>,
    /// Why an authentic request made no job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
}

/// How many actions of a job are where.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub total: usize,
    pub done: usize,
    pub already_done: usize,
    pub skipped: usize,
    pub pending: usize,
    pub running: usize,
    pub failed: usize,
    pub blocked: usize,
    pub cancelled: usize,
    pub awaiting_ack: usize,
    pub acknowledged: usize,
    /// The earliest time a pending action becomes due (the delete phase, during retention).
    pub next_due: Option<DateTime<Utc>>,
}

impl Progress {
    pub fn of(records: &[ActionRecord]) -> Self {
        let mut p = Progress {
            total: records.len(),
            ..Progress::default()
        };
        for r in records {
            match r.state {
                ActionState::Done => p.done += 1,
                ActionState::AlreadyDone => p.already_done += 1,
                ActionState::Skipped => p.skipped += 1,
                ActionState::Pending => {
                    p.pending += 1;
                    if let Some(t) = r.action.not_before {
                        p.next_due = Some(p.next_due.map_or(t, |n| n.min(t)));
                    }
                }
                ActionState::Running => p.running += 1,
                ActionState::Failed => p.failed += 1,
                ActionState::Blocked => p.blocked += 1,
                ActionState::Cancelled => p.cancelled += 1,
                ActionState::AwaitingAck => p.awaiting_ack += 1,
                ActionState::Acknowledged => p.acknowledged += 1,
            }
        }
        p
    }
}

/// One job in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSummary {
    pub job_id: String,
    pub state: String,
    pub subject: String,
    pub source: String,
    pub source_event_id: Option<String>,
    pub risk: String,
    pub reason: String,
    pub received_at: DateTime<Utc>,
    pub effective_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub plan_id: Option<String>,
    pub note: Option<String>,
}

impl JobSummary {
    pub fn of(q: &QueuedJob) -> Self {
        JobSummary {
            job_id: q.job.id.0.clone(),
            state: q.state.as_str().to_string(),
            subject: q.job.subject.id.clone(),
            source: q.job.source.clone(),
            source_event_id: q.source_event_id.clone(),
            risk: q.job.risk.to_string(),
            reason: q.job.reason.clone(),
            received_at: q.received_at,
            effective_at: q.job.effective_at,
            due_at: q.due_at,
            plan_id: q.plan_id.as_ref().map(|p| p.0.clone()),
            note: q.note.clone(),
        }
    }
}

/// `GET /api/v1/jobs/{id}`: a job with its plan and every action's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobDetail {
    #[serde(flatten)]
    pub summary: JobSummary,
    pub plan_fingerprint: Option<String>,
    pub progress: Progress,
    pub actions: Vec<ResultLine>,
}

/// `POST /api/v1/jobs/{id}/approve` and `.../reject`: an optional body saying why (kept in the
/// decision's audit entry and the job's note). No body is a decision without a reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideRequest {
    #[serde(default)]
    pub reason: String,
}

/// `POST /api/v1/jobs/{id}/cancel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    pub reason: String,
}

/// What a cancellation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelAnswer {
    pub job_id: String,
    /// Actions that had not run and now never will.
    pub cancelled_actions: Vec<String>,
}

/// `GET /api/v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub queue: QueueStats,
}

/// Every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// `POST /api/v1/batches/{id}/approve` and `.../reject`: how many jobs awaiting approval the
/// person reviewed. When given and the batch holds another number now (a job joined, or one was
/// decided on its own), the decision is refused with a 409 and nothing changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchDecisionRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<u64>,
}
