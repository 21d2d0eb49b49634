use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Subject;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub String);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How urgently access must go: high risk contains at once, whatever the effective date.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    #[default]
    Standard,
    High,
}

impl fmt::Display for Risk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Risk::Standard => "standard",
            Risk::High => "high",
        })
    }
}

/// One offboarding: who, why, from when, and who asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub subject: Subject,
    pub reason: String,
    pub effective_at: DateTime<Utc>,
    pub risk: Risk,
    /// Where the job came from: `cli`, `api`, a webhook source name.
    pub source: String,
    pub requested_by: String,
    /// The name of the policy (in config) the job is planned under.
    pub policy: String,
}
