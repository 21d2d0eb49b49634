//! Every Organizations failure, mapped to a `ConnectorError` class and a stable code.
//!
//! Organizations' own codes come first; everything else (throttling, credentials, 5xx, network)
//! falls back to the classes all AWS services share (`revoke_aws::classify`). Only the executor
//! retries. Decisions worth knowing:
//! - The closure quota (`ConstraintViolationException`, reason `CLOSE_ACCOUNT_QUOTA_EXCEEDED`) is
//!   a Conflict: retrying within the 30 days cannot help; a person decides (move the account,
//!   or close it later).
//! - Too many closures at a time (`CLOSE_ACCOUNT_REQUESTS_LIMIT_EXCEEDED`) passes: Retryable,
//!   after a minute.
//! - `AccountNotFoundException` is Permanent: the account is not (or no longer) in the
//!   organization, so this organization cannot act on it; it is not "already gone".
//! - `AccountAlreadyClosedException` and `DuplicateAccountException` are Conflicts here; apply
//!   reads them as "already done" where they mean that.
//! - `SourceParentNotFoundException` on MoveAccount means the account moved since apply read
//!   its parent: Retryable, the next attempt reads again.

use std::time::Duration;

use revoke_aws::fault::snake;
use revoke_aws::{Fault, FaultKind};
use revoke_core::{ConnectorError, ErrorClass};

/// How long to wait when AWS says too many accounts are being closed at once.
pub const CLOSE_REQUESTS_WAIT: Duration = Duration::from_secs(60);

/// Classifies a failed Organizations call. `op` names it (`organizations:CloseAccount`);
/// `reason` is the `Reason` of a ConstraintViolationException, when there was one.
pub fn classify(op: &str, f: &Fault, reason: Option<&str>) -> ConnectorError {
    if f.kind != FaultKind::Service {
        return revoke_aws::classify(op, f);
    }
    let msg = format!("{op}: {}", f.describe());
    match f.code() {
        "AccountNotFoundException" => ConnectorError::permanent(
            "account_not_found",
            format!("{msg} (the account is not a member of the organization)"),
        ),
        "AccountAlreadyClosedException" => ConnectorError::conflict("account_already_closed", msg),
        "ConstraintViolationException" => constraint(&msg, f, reason),
        "TooManyRequestsException" => ConnectorError::rate_limited(
            f.retry_after.unwrap_or(revoke_aws::fault::THROTTLE_WAIT),
            "throttled",
            msg,
        ),
        "AWSOrganizationsNotInUseException" => ConnectorError::permanent(
            "organizations_not_in_use",
            format!("{msg} (the credentials' account is not in an organization)"),
        ),
        "AccessDeniedForDependencyException" => {
            ConnectorError::auth("access_denied_for_dependency", msg)
        }
        "ConcurrentModificationException" | "ServiceException" => {
            ConnectorError::retryable("service_busy", msg)
        }
        "ConflictException" => ConnectorError::conflict("conflict", msg),
        "DuplicateAccountException" => ConnectorError::conflict("already_in_destination", msg),
        "SourceParentNotFoundException" => ConnectorError::retryable("account_moved", msg),
        "DestinationParentNotFoundException"
        | "ParentNotFoundException"
        | "OrganizationalUnitNotFoundException" => ConnectorError::permanent("ou_not_found", msg),
        "TargetNotFoundException" => ConnectorError::permanent("target_not_found", msg),
        "InvalidInputException" => ConnectorError::permanent("invalid_input", msg),
        "UnsupportedAPIEndpointException" => ConnectorError::permanent("unsupported_endpoint", msg),
        _ => revoke_aws::classify(op, f),
    }
}

fn constraint(msg: &str, f: &Fault, reason: Option<&str>) -> ConnectorError {
    let reason = reason.unwrap_or_else(|| {
        // Without the typed error, the message still tells the quota apart.
        if f.message.to_ascii_lowercase().contains("quota") {
            "CLOSE_ACCOUNT_QUOTA_EXCEEDED"
        } else {
            ""
        }
    });
    let msg = if reason.is_empty() {
        msg.to_string()
    } else {
        format!("{msg} [{reason}]")
    };
    match reason {
        "CLOSE_ACCOUNT_QUOTA_EXCEEDED" => ConnectorError::conflict(
            "closure_quota_exceeded",
            format!("{msg}; AWS closes at most 10% of member accounts per 30 days: move the account to a suspended OU, or close it when the quota allows"),
        ),
        "CLOSE_ACCOUNT_REQUESTS_LIMIT_EXCEEDED" => ConnectorError::new(
            ErrorClass::Retryable {
                retry_after: Some(f.retry_after.unwrap_or(CLOSE_REQUESTS_WAIT)),
            },
            "closure_requests_limit",
            msg,
        ),
        "CANNOT_CLOSE_MANAGEMENT_ACCOUNT" => ConnectorError::permanent("management_account", msg),
        "" => ConnectorError::conflict("constraint_violation", msg),
        other => ConnectorError::conflict(snake(&other.to_ascii_lowercase()), msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(code: &str, reason: Option<&str>) -> (&'static str, String) {
        let e = classify(
            "organizations:CloseAccount",
            &Fault::service(400, code, "m"),
            reason,
        );
        (e.class.name(), e.code)
    }

    #[test]
    fn organizations_codes_come_first() {
        let cases = [
            (
                "AccountNotFoundException",
                None,
                "permanent",
                "account_not_found",
            ),
            (
                "AccountAlreadyClosedException",
                None,
                "conflict",
                "account_already_closed",
            ),
            (
                "ConstraintViolationException",
                Some("CLOSE_ACCOUNT_QUOTA_EXCEEDED"),
                "conflict",
                "closure_quota_exceeded",
            ),
            (
                "ConstraintViolationException",
                Some("CLOSE_ACCOUNT_REQUESTS_LIMIT_EXCEEDED"),
                "retryable",
                "closure_requests_limit",
            ),
            (
                "ConstraintViolationException",
                Some("CANNOT_CLOSE_MANAGEMENT_ACCOUNT"),
                "permanent",
                "management_account",
            ),
            (
                "ConstraintViolationException",
                Some("TAG_POLICY_VIOLATION"),
                "conflict",
                "tag_policy_violation",
            ),
            (
                "ConstraintViolationException",
                None,
                "conflict",
                "constraint_violation",
            ),
            (
                "TooManyRequestsException",
                None,
                "rate_limited",
                "throttled",
            ),
            (
                "AWSOrganizationsNotInUseException",
                None,
                "permanent",
                "organizations_not_in_use",
            ),
            (
                "AccessDeniedForDependencyException",
                None,
                "auth",
                "access_denied_for_dependency",
            ),
            (
                "ConcurrentModificationException",
                None,
                "retryable",
                "service_busy",
            ),
            ("ConflictException", None, "conflict", "conflict"),
            (
                "DuplicateAccountException",
                None,
                "conflict",
                "already_in_destination",
            ),
            (
                "SourceParentNotFoundException",
                None,
                "retryable",
                "account_moved",
            ),
            (
                "DestinationParentNotFoundException",
                None,
                "permanent",
                "ou_not_found",
            ),
            ("InvalidInputException", None, "permanent", "invalid_input"),
            // The shared classes.
            ("AccessDeniedException", None, "auth", "access_denied"),
            (
                "ServiceUnavailableException",
                None,
                "retryable",
                "service_busy",
            ),
            ("SomethingNew", None, "permanent", "something_new"),
        ];
        for (code, reason, want_class, want_code) in cases {
            assert_eq!(
                class(code, reason),
                (want_class, want_code.to_string()),
                "{code} {reason:?}"
            );
        }
    }

    #[test]
    fn the_quota_is_told_apart_by_its_message_too_and_says_what_to_do() {
        let f = Fault::service(
            400,
            "ConstraintViolationException",
            "You have exceeded close account quota for the past 30 days.",
        );
        let e = classify("organizations:CloseAccount", &f, None);
        assert_eq!(
            (e.class.name(), e.code.as_str()),
            ("conflict", "closure_quota_exceeded")
        );
        assert!(!e.is_retryable());
        assert!(e.message.starts_with("organizations:CloseAccount: ConstraintViolationException (400): You have exceeded close account quota"), "{}", e.message);
        assert!(e.message.contains("suspended OU"), "{}", e.message);
    }

    #[test]
    fn waits_are_kept() {
        let f = Fault::service(400, "ConstraintViolationException", "m");
        let e = classify(
            "organizations:CloseAccount",
            &f,
            Some("CLOSE_ACCOUNT_REQUESTS_LIMIT_EXCEEDED"),
        );
        assert_eq!(e.retry_after(), Some(CLOSE_REQUESTS_WAIT));
        let mut f = Fault::service(400, "TooManyRequestsException", "slow down");
        f.retry_after = Some(Duration::from_secs(9));
        let e = classify("organizations:ListTagsForResource", &f, None);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(9)));
        let f = Fault {
            kind: FaultKind::Timeout,
            status: None,
            code: None,
            message: "no answer in time".into(),
            retry_after: None,
        };
        let e = classify("organizations:ListAccounts", &f, None);
        assert_eq!((e.class.name(), e.code.as_str()), ("retryable", "timeout"));
    }
}
