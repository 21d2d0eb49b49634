//! Every Google failure, mapped to a `ConnectorError` class and a stable code.
//!
//! Only the executor retries; this module only says whether retrying can help and when.
//! Decisions worth knowing:
//! - Google's Directory API answers a spent quota with **403**, not 429: `userRateLimitExceeded`
//!   (per user per minute), `rateLimitExceeded` (per project; Gmail too) and `quotaExceeded`
//!   (too many concurrent operations) are `rate_limited`, with the client's backoff as the wait;
//!   `dailyLimitExceeded` is `rate_limited` for an hour. Every other 403 (`forbidden`,
//!   `insufficientPermissions`, "Not Authorized to access this resource/api", "Delegation
//!   denied") is `auth`: the delegation or the scopes are missing.
//! - 429 is `rate_limited` (Retry-After when given).
//! - 401 reaches here only after the client fetched a new token once: `auth`.
//! - 404 is decided by the caller (on the pinned account or a member it is AlreadyDone); here it
//!   is `permanent` `not_found`.
//! - 400 `failedPrecondition` (Gmail for a suspended user: "Mail service not enabled"; an
//!   unverified forwarding address) is `conflict`; any other 400 is `permanent` `bad_request`.
//! - 409 and 412 are `conflict`; 5xx and transport faults are `retryable`.
//! - The token call: `invalid_grant` and `unauthorized_client` are `auth` (a wrong key, a clock
//!   far off, no domain-wide delegation for these scopes, an unknown subject).

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::Method;
use revoke_core::ConnectorError;
use serde_json::Value;

/// What Google's error body says.
pub trait GoogleAnswer {
    /// Google's error reason (`error.errors[0].reason`, else `error.status`), if any.
    fn reason(&self) -> Option<String>;
}

impl GoogleAnswer for Reply {
    fn reason(&self) -> Option<String> {
        let v = self.json()?;
        let e = v.get("error")?;
        e.get("errors")
            .and_then(|x| x.get(0))
            .and_then(|x| x.get("reason"))
            .and_then(Value::as_str)
            .or_else(|| e.get("status").and_then(Value::as_str))
            .map(str::to_string)
    }
}

/// Google's message (`error.message`, or the OAuth `error_description`), else the body.
pub fn message(body: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return excerpt(body);
    };
    v.get("error")
        .and_then(|e| e.get("message"))
        .or_else(|| v.get("error_description"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| excerpt(body))
}

/// Whether a 403's reason is one of Google's quota answers.
pub fn is_rate_reason(reason: &str) -> bool {
    matches!(
        reason,
        "userRateLimitExceeded" | "rateLimitExceeded" | "quotaExceeded" | "dailyLimitExceeded"
    )
}

/// Whether an answer is a refusal for pace (403 with a quota reason, or 429).
pub fn is_rate_limited(r: &Reply) -> bool {
    r.status == 429 || (r.status == 403 && r.reason().is_some_and(|x| is_rate_reason(&x)))
}

/// `Retry-After` in seconds, when given.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Any status the caller did not expect; `backoff` is the wait for a rate-limit answer.
pub fn status(method: &Method, path: &str, r: &Reply, backoff: Duration) -> ConnectorError {
    let reason = r.reason().unwrap_or_default();
    let msg = format!("{method} {path}: {} {}", r.status, message(&r.body));
    match r.status {
        400 if reason == "failedPrecondition" => {
            ConnectorError::conflict("failed_precondition", msg)
        }
        400 => ConnectorError::permanent("bad_request", msg),
        401 => ConnectorError::auth("unauthorized", msg),
        403 if reason == "dailyLimitExceeded" => {
            ConnectorError::rate_limited(Duration::from_secs(3_600), "daily_limit", msg)
        }
        403 if is_rate_reason(&reason) => ConnectorError::rate_limited(
            retry_after(&r.headers).unwrap_or(backoff),
            "rate_limit",
            format!("{msg} ({reason})"),
        ),
        403 if reason == "insufficientPermissions" => ConnectorError::auth(
            "insufficient_scopes",
            format!("{msg} (grant the scopes listed in docs/connectors/google-workspace.md to the service account's client id)"),
        ),
        403 => ConnectorError::auth("forbidden", msg),
        404 => ConnectorError::permanent("not_found", msg),
        409 => ConnectorError::conflict("conflict", msg),
        412 => ConnectorError::conflict("precondition_failed", msg),
        429 => ConnectorError::rate_limited(
            retry_after(&r.headers).unwrap_or(backoff),
            "rate_limit",
            msg,
        ),
        s if s >= 500 => ConnectorError::retryable("server_error", msg),
        _ => ConnectorError::permanent("unexpected_status", msg),
    }
}

/// A refused token call (`{"error", "error_description"}`).
pub fn token(r: &Reply, backoff: Duration) -> ConnectorError {
    let v = r.json().unwrap_or(Value::Null);
    let error = v.get("error").and_then(Value::as_str).unwrap_or("");
    let msg = format!(
        "POST token: {} {error} {}",
        r.status,
        v.get("error_description")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| excerpt(&r.body))
    );
    match (r.status, error) {
        (_, "invalid_grant") => ConnectorError::auth(
            "bad_service_account_key",
            format!("{msg} (check the key, the clock, and that the subject is a user of the domain)"),
        ),
        (_, "unauthorized_client") | (_, "access_denied") => ConnectorError::auth(
            "delegation_not_authorized",
            format!("{msg} (grant domain-wide delegation with the scopes in docs/connectors/google-workspace.md)"),
        ),
        (_, "invalid_scope") => ConnectorError::auth("invalid_scope", msg),
        (429, _) => ConnectorError::rate_limited(
            retry_after(&r.headers).unwrap_or(backoff),
            "rate_limit",
            msg,
        ),
        (s, _) if s >= 500 => ConnectorError::retryable("server_error", msg),
        (400..=403, _) => ConnectorError::auth("token_refused", msg),
        _ => ConnectorError::permanent("unexpected_status", msg),
    }
}

/// A request that never got an answer, and an answer whose body is not as documented: the
/// same for every REST connector.
pub use revoke_http::{bad_response, excerpt, transport, Reply};

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn reply(status: u16, headers: &[(&'static str, &'static str)], body: &str) -> Reply {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, HeaderValue::from_static(v));
        }
        Reply {
            status,
            headers: h,
            body: body.to_string(),
        }
    }

    fn google(code: u16, reason: &str, message: &str) -> String {
        serde_json::json!({"error": {"code": code, "message": message,
            "errors": [{"message": message, "domain": "usageLimits", "reason": reason}]}})
        .to_string()
    }

    #[test]
    fn statuses_map_to_classes_with_googles_reason() {
        let backoff = Duration::from_secs(2);
        let cases = [
            (
                400,
                google(400, "invalid", "Invalid Input"),
                "permanent",
                "bad_request",
            ),
            (
                400,
                google(400, "failedPrecondition", "Mail service not enabled"),
                "conflict",
                "failed_precondition",
            ),
            (
                401,
                google(401, "authError", "Invalid Credentials"),
                "auth",
                "unauthorized",
            ),
            (
                403,
                google(403, "userRateLimitExceeded", "Quota exceeded"),
                "rate_limited",
                "rate_limit",
            ),
            (
                403,
                google(403, "rateLimitExceeded", "Rate Limit Exceeded"),
                "rate_limited",
                "rate_limit",
            ),
            (
                403,
                google(403, "quotaExceeded", "Quota exceeded"),
                "rate_limited",
                "rate_limit",
            ),
            (
                403,
                google(403, "dailyLimitExceeded", "Daily Limit Exceeded"),
                "rate_limited",
                "daily_limit",
            ),
            (
                403,
                google(
                    403,
                    "forbidden",
                    "Not Authorized to access this resource/api",
                ),
                "auth",
                "forbidden",
            ),
            (
                403,
                google(403, "insufficientPermissions", "Insufficient Permission"),
                "auth",
                "insufficient_scopes",
            ),
            (
                404,
                google(404, "notFound", "Resource Not Found: userKey"),
                "permanent",
                "not_found",
            ),
            (
                409,
                google(409, "duplicate", "Entity already exists."),
                "conflict",
                "conflict",
            ),
            (
                412,
                google(412, "conditionNotMet", "Precondition Failed"),
                "conflict",
                "precondition_failed",
            ),
            (429, String::new(), "rate_limited", "rate_limit"),
            (
                503,
                google(503, "backendError", "Backend Error"),
                "retryable",
                "server_error",
            ),
            (
                418,
                "<html>teapot</html>".to_string(),
                "permanent",
                "unexpected_status",
            ),
        ];
        for (code, body, class, want) in cases {
            let e = status(
                &Method::PUT,
                "/admin/directory/v1/users/1",
                &reply(code, &[], &body),
                backoff,
            );
            assert_eq!(
                (e.class.name(), e.code.as_str()),
                (class, want),
                "{code} {body}"
            );
            assert!(e
                .message
                .starts_with(&format!("PUT /admin/directory/v1/users/1: {code}")));
        }
        let e = status(
            &Method::GET,
            "/x",
            &reply(403, &[], &google(403, "userRateLimitExceeded", "q")),
            backoff,
        );
        assert_eq!(e.retry_after(), Some(backoff));
        assert!(e.message.contains("userRateLimitExceeded"));
        let e = status(
            &Method::GET,
            "/x",
            &reply(429, &[("retry-after", "7")], ""),
            backoff,
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert!(is_rate_limited(&reply(
            403,
            &[],
            &google(403, "quotaExceeded", "q")
        )));
        assert!(!is_rate_limited(&reply(
            403,
            &[],
            &google(403, "forbidden", "q")
        )));
    }

    #[test]
    fn token_refusals_are_auth_except_pace_and_outages() {
        let b = Duration::from_secs(1);
        let t = |status: u16, body: &str| token(&reply(status, &[], body), b);
        let e = t(
            400,
            r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
        );
        assert_eq!(
            (e.class.name(), e.code.as_str()),
            ("auth", "bad_service_account_key")
        );
        assert!(e.message.contains("Invalid JWT Signature."));
        let e = t(
            401,
            r#"{"error":"unauthorized_client","error_description":"Client is unauthorized"}"#,
        );
        assert_eq!(e.code, "delegation_not_authorized");
        assert_eq!(t(503, "unavailable").class.name(), "retryable");
        assert_eq!(t(429, "{}").class.name(), "rate_limited");
    }
}
