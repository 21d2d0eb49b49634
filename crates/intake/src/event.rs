//! The normalized termination event and the outcome of handling one request.

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

/// What the HR system or IdP says happened to the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The person leaves (or left): their access must end at `effective_at`.
    Termination,
    /// A termination was cancelled, or the person was rehired or reactivated.
    Cancellation,
}

impl EventKind {
    /// The snake_case name, as serialized.
    pub fn as_str(&self) -> &'static str {
        match self {
            EventKind::Termination => "termination",
            EventKind::Cancellation => "cancellation",
        }
    }
}

/// One authentic event in a shape the daemon schedules jobs from, whatever sent it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormalizedEvent {
    /// The configured source name (`[intake.<name>]`), or `import`.
    pub source: String,
    /// The source kind string (`bamboohr`), or `import`.
    pub source_kind: String,
    /// The dedup key within the source; see docs/intake.md for how each kind chooses it.
    pub source_event_id: String,
    /// Termination, or cancellation of one.
    pub kind: EventKind,
    /// The HR system's employee id, as sent (never interpreted).
    pub employee_id: Option<String>,
    /// The work email, as sent.
    pub email: Option<String>,
    /// The login (IdP username, SCIM id), as sent.
    pub username: Option<String>,
    /// A departing client's email domain (checked, lowercase) instead of a person: set only by
    /// the generic sources (Standard Webhooks, the import) and the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_domain: Option<String>,
    /// When access must end, with the offset it was given in (or of the configured zone).
    pub effective_at: DateTime<FixedOffset>,
    /// The termination reason, as sent; risk rules match on it.
    pub reason: Option<String>,
    /// The person's department, when the source carries one (batch views count jobs by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// The employer ended the employment; high risk by default.
    pub involuntary: bool,
    /// Explicit in the payload, or derived by [`RiskRules`].
    pub high_risk: bool,
    /// The `now` of the request that carried the event.
    pub received_at: DateTime<Utc>,
    /// Hex SHA-256 of the raw body (of the line, for imports; of the event, for the sources that
    /// batch several events in one body: Okta and BambooHR), for audit and to tell a redelivery
    /// from another body under the same event id.
    pub body_sha256: String,
    /// SCIM only: the body the daemon answers with (a minimal SCIM User resource).
    #[serde(skip)]
    pub reply: Option<serde_json::Value>,
}

/// The outcome of one request that intake answers without an error: authentic, or a probe.
// The variants' shape is the daemon's contract; an outcome is returned once per request and
// never stored in bulk, so the size difference does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Intake {
    /// One authentic event to act on.
    Event(NormalizedEvent),
    /// Several events from one request (BambooHR, Okta batches); at least two.
    Events(Vec<NormalizedEvent>),
    /// Answer 200 with this JSON body and schedule nothing: Okta's one-time verification
    /// (`{"verification": ...}`) and SCIM look-ups (`GET /Users...`).
    Challenge(serde_json::Value),
    /// Authentic, but nothing to act on (e.g. HiBob `employee.updated`): answer 200/202, no job.
    Ignored {
        /// The sender's id of the ignored event, when it has one, for logs.
        source_event_id: Option<String>,
        /// Why nothing is scheduled, for logs.
        reason: String,
    },
    /// Answered without proven authenticity (HiBob's `Ping test`, Gusto's subscription
    /// verification request): a vendor's set-up probe that anyone can send. The daemon answers
    /// 200/202 but writes nothing to the store (no audit row, no job), so unauthenticated
    /// traffic cannot grow the database; it only counts it. `Ignored` is for authentic events.
    Probe {
        /// What the probe was, for the metric and a rate-limited log line; never repeats a token.
        reason: String,
    },
}

impl Intake {
    /// The events to schedule, whichever variant carries them (none for the others).
    pub fn into_events(self) -> Vec<NormalizedEvent> {
        match self {
            Intake::Event(e) => vec![e],
            Intake::Events(v) => v,
            Intake::Challenge(_) | Intake::Ignored { .. } | Intake::Probe { .. } => Vec::new(),
        }
    }

    /// Wraps zero, one or several events; zero becomes `Ignored` with the reasons given.
    pub(crate) fn from_events(
        mut events: Vec<NormalizedEvent>,
        source_event_id: Option<String>,
        reasons: &[String],
    ) -> Intake {
        match events.len() {
            0 => Intake::Ignored {
                source_event_id,
                reason: if reasons.is_empty() {
                    "no termination or cancellation in the payload".to_string()
                } else {
                    reasons.join("; ")
                },
            },
            1 => match events.pop() {
                Some(e) => Intake::Event(e),
                None => Intake::Events(events),
            },
            _ => Intake::Events(events),
        }
    }
}

/// How high risk is derived from a termination; config section `[risk]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RiskRules {
    /// An involuntary termination is high risk.
    pub involuntary_is_high: bool,
    /// Case-insensitive substrings of the reason that make a termination high risk.
    pub high_reasons: Vec<String>,
}

impl Default for RiskRules {
    fn default() -> Self {
        Self {
            involuntary_is_high: true,
            high_reasons: vec![
                "misconduct".to_string(),
                "cause".to_string(),
                "security".to_string(),
            ],
        }
    }
}

impl RiskRules {
    /// High if the payload says so, or if involuntary (when so configured), or if the reason
    /// contains one of `high_reasons`. An explicit `false` does not override the rules.
    pub fn is_high(&self, involuntary: bool, reason: Option<&str>, explicit: Option<bool>) -> bool {
        if explicit == Some(true) {
            return true;
        }
        if involuntary && self.involuntary_is_high {
            return true;
        }
        let Some(reason) = reason else {
            return false;
        };
        let reason = reason.to_lowercase();
        self.high_reasons
            .iter()
            .map(|r| r.trim().to_lowercase())
            .any(|r| !r.is_empty() && reason.contains(&r))
    }
}
