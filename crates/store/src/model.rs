use chrono::{DateTime, Utc};
use revoke_core::{Action, ActionId, ConnectorError, Job, Outcome, PlanId, Verdict};
use serde::{Deserialize, Serialize};

/// Where an action stands. Stored as the snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionState {
    Pending,
    Running,
    Done,
    AlreadyDone,
    Skipped,
    Failed,
    Blocked,
    AwaitingAck,
    Acknowledged,
    Cancelled,
}

impl ActionState {
    pub const ALL: [ActionState; 10] = [
        ActionState::Pending,
        ActionState::Running,
        ActionState::Done,
        ActionState::AlreadyDone,
        ActionState::Skipped,
        ActionState::Failed,
        ActionState::Blocked,
        ActionState::AwaitingAck,
        ActionState::Acknowledged,
        ActionState::Cancelled,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            ActionState::Pending => "pending",
            ActionState::Running => "running",
            ActionState::Done => "done",
            ActionState::AlreadyDone => "already_done",
            ActionState::Skipped => "skipped",
            ActionState::Failed => "failed",
            ActionState::Blocked => "blocked",
            ActionState::AwaitingAck => "awaiting_ack",
            ActionState::Acknowledged => "acknowledged",
            ActionState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// A state a dependent action may proceed after.
    pub fn is_success(&self) -> bool {
        matches!(
            self,
            ActionState::Done
                | ActionState::AlreadyDone
                | ActionState::Skipped
                | ActionState::Acknowledged
        )
    }

    /// A state nothing more will happen in.
    pub fn is_final(&self) -> bool {
        self.is_success()
            || matches!(
                self,
                ActionState::Failed | ActionState::Blocked | ActionState::Cancelled
            )
    }

    pub fn from_outcome(o: &Outcome) -> Self {
        match o {
            Outcome::Done => ActionState::Done,
            Outcome::AlreadyDone => ActionState::AlreadyDone,
            Outcome::Skipped { .. } => ActionState::Skipped,
        }
    }
}

impl std::fmt::Display for ActionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    Succeeded(Outcome),
    /// `retry_at: Some` puts the action back in the queue; `None` fails it for good.
    Failed {
        error: ConnectorError,
        retry_at: Option<DateTime<Utc>>,
    },
}

/// How one attempt ended, for [`crate::Store::finish_attempts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptEnd {
    pub id: ActionId,
    pub attempt: u32,
    pub result: AttemptResult,
}

/// An action with everything recorded about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRecord {
    pub plan_id: PlanId,
    pub action: Action,
    pub state: ActionState,
    pub attempts: u32,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last error, if the last attempt failed.
    pub error: Option<ConnectorError>,
    /// Why it was skipped or blocked, or who acknowledged it.
    pub note: Option<String>,
    pub verdict: Option<Verdict>,
    pub verified_at: Option<DateTime<Utc>>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
}

impl ActionRecord {
    /// The one-object-per-action result line (JSON lines output).
    pub fn result_line(&self) -> ResultLine {
        ResultLine {
            job_id: self.action.job_id.0.clone(),
            action_id: self.action.id.0.clone(),
            connector: self.action.connector.clone(),
            kind: self.action.kind.0.clone(),
            target: self.action.target.clone(),
            phase: self.action.phase.as_str().to_string(),
            outcome: self.state.as_str().to_string(),
            attempts: self.attempts,
            not_before: self.action.not_before,
            started_at: self.started_at,
            finished_at: self.finished_at,
            verdict: self.verdict.as_ref().map(ToString::to_string),
            error_class: self.error.as_ref().map(|e| e.class.name().to_string()),
            error_code: self.error.as_ref().map(|e| e.code.clone()),
            error_message: self.error.as_ref().map(|e| e.message.clone()),
            note: self.note.clone(),
        }
    }
}

/// The result of one action as reported to people and tools.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultLine {
    pub job_id: String,
    pub action_id: String,
    pub connector: String,
    pub kind: String,
    pub target: String,
    pub phase: String,
    pub outcome: String,
    pub attempts: u32,
    pub not_before: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub verdict: Option<String>,
    pub error_class: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub note: Option<String>,
}

/// A job and the plan it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub job: Job,
    pub plan_id: PlanId,
    pub created_at: DateTime<Utc>,
}
