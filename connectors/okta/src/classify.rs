//! Every Okta failure, mapped to a `ConnectorError` class and a stable code.
//!
//! Only the executor retries; this module only says whether retrying can help and when.
//! Okta's error body is `{"errorCode", "errorSummary", "errorLink", "errorId", "errorCauses"}`;
//! the code decides before the status where it is precise:
//! - `E0000047` (API call exceeded rate limit, a 429) is RateLimited, waiting until
//!   `X-Rate-Limit-Reset` (epoch seconds), at least one second.
//! - `E0000038` (not allowed in the user's current status) is Conflict `user_status`.
//! - `E0000011` (invalid token) and any other 401 is Auth `unauthorized`; 403 (`E0000006`) Auth
//!   `forbidden`.
//! - 404 (`E0000007`) is decided by the caller: on the pinned user it is AlreadyDone, on a
//!   group or an app it is Permanent `not_found`; here it is Permanent `not_found`.
//! - 400 (`E0000001` validation) is Permanent `bad_request`; 409 Conflict; 5xx and transport
//!   faults Retryable.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use reqwest::Method;
use revoke_core::ConnectorError;
use serde_json::Value;

/// Okta's error code of a rate-limited call.
pub const E_RATE_LIMIT: &str = "E0000047";
/// Okta's error code of a resource that does not exist.
pub const E_NOT_FOUND: &str = "E0000007";

/// What Okta's error body says.
pub trait OktaAnswer {
    /// Okta's `errorCode`, if the body has one.
    fn error_code(&self) -> Option<String>;
}

impl OktaAnswer for Reply {
    fn error_code(&self) -> Option<String> {
        self.json()?
            .get("errorCode")
            .and_then(Value::as_str)
            .map(str::to_string)
    }
}

/// Okta's `errorCode errorSummary` (with the first cause), else the body itself.
pub fn message(body: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return excerpt(body);
    };
    let code = v.get("errorCode").and_then(Value::as_str);
    let summary = v.get("errorSummary").and_then(Value::as_str);
    let cause = v
        .get("errorCauses")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .and_then(|c| c.get("errorSummary"))
        .and_then(Value::as_str);
    match (code, summary) {
        (Some(c), Some(s)) => match cause {
            Some(x) => format!("{c} {s} ({x})"),
            None => format!("{c} {s}"),
        },
        _ => excerpt(body),
    }
}

/// Seconds since the epoch now, with the fraction.
fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `X-Rate-Limit-Reset` (epoch seconds) as a wait from now: at least one second, so a reset
/// that the clocks' skew puts in the past never makes a call go early.
pub fn reset_after(headers: &HeaderMap) -> Option<Duration> {
    let reset = headers
        .get("x-rate-limit-reset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())?;
    let wait = (reset as f64 - now_epoch()).max(0.0);
    Some(Duration::from_secs_f64(wait).max(Duration::from_secs(1)))
}

/// `X-Rate-Limit-Remaining`, if present.
pub fn remaining(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("x-rate-limit-remaining")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// A refusal for pace, or a hold longer than the client waits itself.
pub fn rate_limited(method: &Method, path: &str, wait: Duration, why: &str) -> ConnectorError {
    ConnectorError::rate_limited(
        wait,
        "rate_limit",
        format!(
            "{method} {path}: {why}; the budget resets in {}ms",
            wait.as_millis()
        ),
    )
}

/// Whether an answer is Okta's rate-limit refusal.
pub fn is_rate_limited(r: &Reply) -> bool {
    r.status == 429 || r.error_code().as_deref() == Some(E_RATE_LIMIT)
}

/// Any status the caller did not expect.
pub fn status(method: &Method, path: &str, r: &Reply) -> ConnectorError {
    let msg = format!("{method} {path}: {} {}", r.status, message(&r.body));
    if is_rate_limited(r) {
        return rate_limited(
            method,
            path,
            reset_after(&r.headers).unwrap_or(Duration::from_secs(60)),
            &format!("{} {}", r.status, message(&r.body)),
        );
    }
    if r.error_code().as_deref() == Some("E0000038") {
        return ConnectorError::conflict("user_status", msg);
    }
    match r.status {
        400 => ConnectorError::permanent("bad_request", msg),
        401 => ConnectorError::auth("unauthorized", msg),
        403 => ConnectorError::auth("forbidden", msg),
        404 => ConnectorError::permanent("not_found", msg),
        409 => ConnectorError::conflict("conflict", msg),
        s if s >= 500 => ConnectorError::retryable("server_error", msg),
        _ => ConnectorError::permanent("unexpected_status", msg),
    }
}

/// The OAuth `error` of a token endpoint's answer (`invalid_client`, `use_dpop_nonce`, ...).
pub fn oauth_error(r: &Reply) -> Option<String> {
    r.json()?
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// A refusal of the token endpoint (RFC 6749 section 5.2 body `{"error", "error_description"}`):
/// a wrong client, key, assertion, scope or DPoP proof is Auth (a person must fix the app), a
/// rate limit waits, 5xx is retryable. Never quotes the assertion.
pub fn token_error(path: &str, r: &Reply) -> ConnectorError {
    let method = Method::POST;
    if is_rate_limited(r) {
        return status(&method, path, r);
    }
    let v = r.json().unwrap_or(Value::Null);
    let error = v.get("error").and_then(Value::as_str);
    let desc = v.get("error_description").and_then(Value::as_str);
    let msg = match (error, desc) {
        (Some(e), Some(d)) => format!("POST {path}: {} {e}: {d}", r.status),
        (Some(e), None) => format!("POST {path}: {} {e}", r.status),
        _ => format!("POST {path}: {} {}", r.status, message(&r.body)),
    };
    match (r.status, error) {
        (s, _) if s >= 500 => ConnectorError::retryable("server_error", msg),
        (_, Some("invalid_client")) => ConnectorError::auth("oauth_invalid_client", msg),
        (_, Some("invalid_scope")) => ConnectorError::auth("oauth_invalid_scope", msg),
        (_, Some("invalid_dpop_proof" | "use_dpop_nonce")) => {
            ConnectorError::auth("oauth_dpop", msg)
        }
        (_, Some(_)) | (400 | 401 | 403, None) => ConnectorError::auth("oauth_token", msg),
        _ => ConnectorError::permanent("unexpected_status", msg),
    }
}

/// A 401 to a call made with a cached OAuth access token (revoked or expired early): retryable,
/// so the executor's next attempt fetches a new token; the client sends nothing again itself.
pub fn token_expired(method: &Method, path: &str, r: &Reply) -> ConnectorError {
    ConnectorError::retryable(
        "token_expired",
        format!(
            "{method} {path}: {} {}; the access token is dropped, the next attempt gets a new one",
            r.status,
            message(&r.body)
        ),
    )
}

/// A 401 asking for a DPoP nonce the API just gave (`DPoP-Nonce`): retryable, the next attempt's
/// proof carries it.
pub fn dpop_nonce(method: &Method, path: &str, r: &Reply) -> ConnectorError {
    ConnectorError::retryable(
        "dpop_nonce",
        format!(
            "{method} {path}: {} the API asks for a DPoP nonce; the next attempt sends it",
            r.status
        ),
    )
}

/// A request that never got an answer, and an answer whose body is not as documented: the
/// same for every REST connector.
pub use revoke_http::{bad_response, excerpt, transport, Reply};

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn reply(status: u16, headers: &[(&'static str, String)], body: &str) -> Reply {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, HeaderValue::from_str(v).expect("header"));
        }
        Reply {
            status,
            headers: h,
            body: body.to_string(),
        }
    }

    fn okta(code: &str, summary: &str) -> String {
        format!(
            r#"{{"errorCode":"{code}","errorSummary":"{summary}","errorLink":"{code}","errorId":"oae1","errorCauses":[]}}"#
        )
    }

    #[test]
    fn statuses_and_codes_map_to_classes_with_oktas_message() {
        let cases = [
            (
                400,
                okta("E0000001", "Api validation failed: login"),
                "permanent",
                "bad_request",
            ),
            (
                401,
                okta("E0000011", "Invalid token provided"),
                "auth",
                "unauthorized",
            ),
            (
                403,
                okta(
                    "E0000006",
                    "You do not have permission to perform the requested action",
                ),
                "auth",
                "forbidden",
            ),
            (
                403,
                okta(
                    "E0000038",
                    "This operation is not allowed in the user's current status.",
                ),
                "conflict",
                "user_status",
            ),
            (
                404,
                okta("E0000007", "Not found: Resource not found: 00u1 (User)"),
                "permanent",
                "not_found",
            ),
            (409, okta("E0000175", "conflict"), "conflict", "conflict"),
            (
                429,
                okta(
                    "E0000047",
                    "API call exceeded rate limit due to too many requests.",
                ),
                "rate_limited",
                "rate_limit",
            ),
            (
                502,
                "<html>bad gateway</html>".to_string(),
                "retryable",
                "server_error",
            ),
            (
                418,
                okta("E0000000", "teapot"),
                "permanent",
                "unexpected_status",
            ),
        ];
        for (code, body, class, want) in cases {
            let e = status(
                &Method::DELETE,
                "/api/v1/users/00u1",
                &reply(code, &[], &body),
            );
            assert_eq!(
                (e.class.name(), e.code.as_str()),
                (class, want),
                "{code} {body}"
            );
            assert!(
                e.message
                    .starts_with(&format!("DELETE /api/v1/users/00u1: {code}")),
                "{}",
                e.message
            );
        }
        let e = status(
            &Method::GET,
            "/x",
            &reply(
                404,
                &[],
                &okta("E0000007", "Not found: Resource not found: x (User)"),
            ),
        );
        assert!(e.message.contains("E0000007 Not found"), "{}", e.message);
        let body = r#"{"errorCode":"E0000001","errorSummary":"Api validation failed: login","errorCauses":[{"errorSummary":"login: An object with this field already exists"}]}"#;
        assert_eq!(message(body), "E0000001 Api validation failed: login (login: An object with this field already exists)");
    }

    #[test]
    fn token_endpoint_refusals_are_auth_and_name_oauths_error() {
        let cases = [
            (
                401,
                r#"{"error":"invalid_client","error_description":"The client_assertion signature is invalid."}"#,
                "auth",
                "oauth_invalid_client",
            ),
            (
                400,
                r#"{"error":"invalid_scope","error_description":"The following scopes are not allowed: okta.roles.manage"}"#,
                "auth",
                "oauth_invalid_scope",
            ),
            (
                400,
                r#"{"error":"invalid_dpop_proof","error_description":"The DPoP proof JWT is invalid."}"#,
                "auth",
                "oauth_dpop",
            ),
            (
                400,
                r#"{"error":"unsupported_grant_type"}"#,
                "auth",
                "oauth_token",
            ),
            (503, "down", "retryable", "server_error"),
            (429, &okta("E0000047", "slow"), "rate_limited", "rate_limit"),
        ];
        for (code, body, class, want) in cases {
            let e = token_error("/oauth2/v1/token", &reply(code, &[], body));
            assert_eq!(
                (e.class.name(), e.code.as_str()),
                (class, want),
                "{code} {body}"
            );
            assert!(
                e.message
                    .starts_with(&format!("POST /oauth2/v1/token: {code}")),
                "{}",
                e.message
            );
        }
        let e = token_expired(
            &Method::GET,
            "/api/v1/users/x",
            &reply(401, &[], &okta("E0000011", "Invalid token provided")),
        );
        assert_eq!(
            (e.class.name(), e.code.as_str()),
            ("retryable", "token_expired")
        );
    }

    #[test]
    fn a_rate_limit_waits_until_the_epoch_reset_and_never_less_than_a_second() {
        let now = now_epoch() as u64;
        let e = status(
            &Method::GET,
            "/api/v1/users",
            &reply(
                429,
                &[("x-rate-limit-reset", (now + 5).to_string())],
                &okta("E0000047", "slow"),
            ),
        );
        let wait = e.retry_after().expect("a wait");
        assert!(
            wait > Duration::from_secs(3) && wait <= Duration::from_secs(6),
            "{wait:?}"
        );
        // A reset already past (clock skew) still waits a second.
        let past =
            reset_after(&reply(429, &[("x-rate-limit-reset", (now - 10).to_string())], "").headers);
        assert_eq!(past, Some(Duration::from_secs(1)));
        // E0000047 under another status is a rate limit too; no header: a minute.
        let e = status(
            &Method::GET,
            "/x",
            &reply(403, &[], &okta("E0000047", "slow")),
        );
        assert_eq!(e.class.name(), "rate_limited");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(60)));
        assert_eq!(
            remaining(&reply(200, &[("x-rate-limit-remaining", "0".into())], "").headers),
            Some(0)
        );
    }
}
