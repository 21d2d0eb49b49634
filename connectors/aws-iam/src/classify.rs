//! Every IAM error to a class and a stable code. IAM's own codes first, then the classes all
//! AWS services share (revoke_aws::classify).

use aws_sdk_iam::error::SdkError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use revoke_aws::{classify as shared, Fault};
use revoke_core::ConnectorError;

/// The error of an IAM or Secrets Manager call, kept with its fault so callers can ask
/// `is_gone` before turning it into a `ConnectorError`.
#[derive(Debug)]
pub struct CallError {
    pub op: &'static str,
    pub fault: Fault,
}

impl CallError {
    pub fn of<E>(op: &'static str, e: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        Self {
            op,
            fault: Fault::of(e),
        }
    }

    /// The thing named is not there (the user, the key, the policy): for a removal, success.
    pub fn is_gone(&self) -> bool {
        matches!(
            self.fault.code(),
            "NoSuchEntity" | "NoSuchEntityException" | "ResourceNotFoundException"
        )
    }

    pub fn classify(&self) -> ConnectorError {
        classify(self.op, &self.fault)
    }
}

impl From<CallError> for ConnectorError {
    fn from(e: CallError) -> Self {
        e.classify()
    }
}

/// The code of our own refusal of an action kind this build does not know (never one of AWS's):
/// [`ConnectorError::unknown_action`], which a newer replica may know.
pub(crate) const UNKNOWN_ACTION_KIND: &str = "RevokedUnknownActionKind";

/// IAM's own codes; the rest by the shared rules.
pub fn classify(op: &str, f: &Fault) -> ConnectorError {
    let msg = || format!("{op}: {}", f.describe());
    match f.code() {
        UNKNOWN_ACTION_KIND => ConnectorError::unknown_action(msg()),
        "NoSuchEntity" | "NoSuchEntityException" => ConnectorError::permanent("not_found", msg()),
        // IAM refuses to delete a user that still has something attached: a person added it
        // after the plan. Conflict, so the job shows it and a new plan removes it.
        "DeleteConflict" | "DeleteConflictException" => {
            ConnectorError::conflict("delete_conflict", msg())
        }
        // Two access keys already (IAM's limit), or another quota.
        "LimitExceeded" | "LimitExceededException" => {
            ConnectorError::conflict("limit_exceeded", msg())
        }
        "EntityAlreadyExists" | "EntityAlreadyExistsException" => {
            ConnectorError::conflict("already_exists", msg())
        }
        "UnmodifiableEntity" | "UnmodifiableEntityException" => {
            ConnectorError::permanent("unmodifiable", msg())
        }
        "InvalidInput"
        | "InvalidInputException"
        | "ValidationError"
        | "MalformedPolicyDocument" => ConnectorError::permanent("invalid_input", msg()),
        // moto answers 500 to ListServiceSpecificCredentials; real IAM's ServiceFailure is 500 too.
        "EntityTemporarilyUnmodifiable" => ConnectorError::retryable("busy", msg()),
        _ => shared(op, f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iam_codes() {
        let cases = [
            (404, "NoSuchEntity", "permanent", "not_found"),
            (409, "DeleteConflict", "conflict", "delete_conflict"),
            (409, "LimitExceeded", "conflict", "limit_exceeded"),
            (400, "InvalidInput", "permanent", "invalid_input"),
            (409, "EntityTemporarilyUnmodifiable", "retryable", "busy"),
            (409, "ConcurrentModification", "retryable", "service_busy"),
            (400, "Throttling", "rate_limited", "throttled"),
            (403, "AccessDenied", "auth", "access_denied"),
            (500, "ServiceFailure", "retryable", "service_busy"),
            // Our own refusal of a kind a newer replica planned: waits for that replica.
            (400, UNKNOWN_ACTION_KIND, "retryable", "unknown_action"),
        ];
        for (status, code, class, want) in cases {
            let e = classify("iam:DeleteUser", &Fault::service(status, code, "m"));
            assert_eq!((e.class.name(), e.code.as_str()), (class, want), "{code}");
        }
    }

    #[test]
    fn gone_is_only_not_found() {
        let gone = CallError {
            op: "iam:GetUser",
            fault: Fault::service(404, "NoSuchEntity", "user alice cannot be found"),
        };
        assert!(gone.is_gone());
        let denied = CallError {
            op: "iam:GetUser",
            fault: Fault::service(403, "AccessDenied", "no"),
        };
        assert!(!denied.is_gone());
    }
}
