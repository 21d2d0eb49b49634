use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a successful apply did. "Already gone" is success, never an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Done,
    AlreadyDone,
    Skipped { reason: String },
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::AlreadyDone => "already_done",
            Outcome::Skipped { .. } => "skipped",
        }
    }
}

/// The class a connector gives each of its errors; the executor decides retries from it alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "class", rename_all = "snake_case")]
pub enum ErrorClass {
    /// A passing fault (timeout, unavailable, busy); the service may say when to come back.
    Retryable {
        #[serde(default, with = "opt_millis", skip_serializing_if = "Option::is_none")]
        retry_after: Option<Duration>,
    },
    /// The service rations calls and said when the next one is allowed.
    RateLimited {
        #[serde(with = "millis")]
        retry_after: Duration,
    },
    /// Credentials are missing, wrong or lack a permission.
    Auth,
    /// The target is in a state that forbids the action (it may change by a person's hand).
    Conflict,
    /// Retrying cannot help.
    Permanent,
}

impl ErrorClass {
    pub fn name(&self) -> &'static str {
        match self {
            ErrorClass::Retryable { .. } => "retryable",
            ErrorClass::RateLimited { .. } => "rate_limited",
            ErrorClass::Auth => "auth",
            ErrorClass::Conflict => "conflict",
            ErrorClass::Permanent => "permanent",
        }
    }
}

/// An error a connector classified itself: class, a stable code, and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ConnectorError {
    #[serde(flatten)]
    pub class: ErrorClass,
    pub code: String,
    pub message: String,
}

impl ConnectorError {
    pub fn new(class: ErrorClass, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            class,
            code: code.into(),
            message: message.into(),
        }
    }
    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Retryable { retry_after: None }, code, message)
    }
    pub fn rate_limited(
        retry_after: Duration,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(ErrorClass::RateLimited { retry_after }, code, message)
    }
    pub fn auth(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Auth, code, message)
    }
    pub fn conflict(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Conflict, code, message)
    }
    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Permanent, code, message)
    }

    /// An action kind (or, for a connector defined in configuration, a resource or action) this
    /// build does not know. It is refused before anything is sent, and it is not permanent: during
    /// a rolling update a newer replica planned it, and another replica (or this one, upgraded)
    /// knows it; the executor tries again after [`ConnectorError::UNKNOWN_ACTION_WAIT`], and its
    /// retry limits end it as failed if no replica ever knows it.
    pub fn unknown_action(message: impl Into<String>) -> Self {
        Self::new(
            ErrorClass::Retryable {
                retry_after: Some(Self::UNKNOWN_ACTION_WAIT),
            },
            "unknown_action",
            message,
        )
    }

    /// How long an action of an unknown kind waits for another replica: most of a rolling update
    /// fits in the executor's default retry budget (8 attempts, 15 minutes) at this floor.
    pub const UNKNOWN_ACTION_WAIT: Duration = Duration::from_secs(30);

    /// Whether the executor may try again.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.class,
            ErrorClass::Retryable { .. } | ErrorClass::RateLimited { .. }
        )
    }

    /// The earliest moment the service asked us to come back, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.class {
            ErrorClass::Retryable { retry_after } => retry_after,
            ErrorClass::RateLimited { retry_after } => Some(retry_after),
            _ => None,
        }
    }
}

/// The result of re-reading a target after apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Confirmed,
    NotConfirmed { detail: String },
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Confirmed => f.write_str("confirmed"),
            Verdict::NotConfirmed { detail } => write!(f, "not confirmed: {detail}"),
        }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

pub(crate) mod opt_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_action_waits_for_another_replica_and_is_not_permanent() {
        let e = ConnectorError::unknown_action("the ldap connector has no action \"x\"");
        assert_eq!(e.code, "unknown_action");
        assert!(e.is_retryable(), "a newer replica may know it");
        assert_eq!(e.retry_after(), Some(ConnectorError::UNKNOWN_ACTION_WAIT));
        assert!(ConnectorError::UNKNOWN_ACTION_WAIT >= Duration::from_secs(30));
        // It round-trips through the store's JSON as the same class.
        let back: ConnectorError =
            serde_json::from_value(serde_json::to_value(&e).expect("json")).expect("back");
        assert_eq!(back, e);
    }
}
