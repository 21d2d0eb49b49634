//! Every OneLogin failure, mapped to a `ConnectorError` class and a stable code.
//!
//! Only the executor retries; this module only says whether retrying can help and when.
//! Decisions worth knowing:
//! - 401 reaches here only after the client refreshed its token once: the credential pair is
//!   wrong, revoked, or lacks the scope (OneLogin answers "Insufficient Permission" with a 401
//!   too). 403 is Auth as well.
//! - 404 is decided by the caller: on the person it is AlreadyDone, on a role it is Permanent
//!   `role_not_found`; here it is Permanent `not_found`.
//! - 409 is Conflict. 422 with field errors (`errors: [{field, message}]`) is Permanent
//!   `validation_failed` (the request itself is wrong, resending cannot help); a 422 without
//!   them is Conflict (the user is in a state that forbids the change).
//! - 429 is RateLimited with `X-RateLimit-Reset` (seconds) as the wait; 5xx and transport
//!   faults are Retryable.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::Method;
use revoke_core::ConnectorError;
use serde_json::Value;

/// OneLogin's message: v2 `message`, v1 `status.message` (a string or `{attribute,
/// description}`), the token call's `message`; else the body itself.
pub fn message(body: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return excerpt(body);
    };
    let m = v
        .get("message")
        .or_else(|| v.get("status").and_then(|s| s.get("message")));
    match m {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| excerpt(body)),
        _ => excerpt(body),
    }
}

/// `X-RateLimit-Reset`: seconds until OneLogin refills the budget.
pub fn reset_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get("x-ratelimit-reset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// A refusal for pace, or a hold longer than the client waits itself.
pub fn rate_limited(method: &Method, path: &str, wait: Duration, why: &str) -> ConnectorError {
    ConnectorError::rate_limited(
        wait,
        "rate_limit",
        format!(
            "{method} {path}: {why}; the budget resets in {}s",
            wait.as_secs()
        ),
    )
}

/// Any status the caller did not expect.
pub fn status(method: &Method, path: &str, r: &Reply) -> ConnectorError {
    let msg = format!("{method} {path}: {} {}", r.status, message(&r.body));
    match r.status {
        400 => ConnectorError::permanent("bad_request", msg),
        401 => ConnectorError::auth("unauthorized", msg),
        403 => ConnectorError::auth("forbidden", msg),
        404 => ConnectorError::permanent("not_found", msg),
        409 => ConnectorError::conflict("conflict", msg),
        422 => {
            let field_errors = r
                .json()
                .and_then(|v| v.get("errors").and_then(Value::as_array).cloned())
                .is_some_and(|e| !e.is_empty());
            if field_errors {
                ConnectorError::permanent("validation_failed", msg)
            } else {
                ConnectorError::conflict("unprocessable", msg)
            }
        }
        429 => rate_limited(
            method,
            path,
            reset_after(&r.headers).unwrap_or(Duration::from_secs(60)),
            &format!("429 {}", message(&r.body)),
        ),
        s if s >= 500 => ConnectorError::retryable("server_error", msg),
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

    #[test]
    fn statuses_map_to_classes_with_onelogins_message() {
        let v2 = |code: u16, name: &str, m: &str| {
            format!("{{\"statusCode\":{code},\"name\":\"{name}\",\"message\":\"{m}\"}}")
        };
        let v1 = r#"{"status":{"error":true,"code":403,"type":"forbidden","message":"user is not authorized to access this User"}}"#;
        let cases = [
            (400, vec![], v2(400, "BadRequestError", "bad"), "permanent", "bad_request"),
            (401, vec![], v2(401, "UnauthorizedError", "Unauthorized"), "auth", "unauthorized"),
            (403, vec![], v1.to_string(), "auth", "forbidden"),
            (404, vec![], v2(404, "NotFoundError", "gone"), "permanent", "not_found"),
            (409, vec![], v2(409, "ConflictError", "busy"), "conflict", "conflict"),
            (
                422,
                vec![],
                r#"{"statusCode":422,"name":"UnprocessableEntityError","message":"Validation Failed","errors":[{"field":"status","message":["bad"]}]}"#.to_string(),
                "permanent",
                "validation_failed",
            ),
            (422, vec![], v2(422, "UnprocessableEntityError", "locked by policy"), "conflict", "unprocessable"),
            (429, vec![("x-ratelimit-reset", "7")], v2(429, "TooManyRequestsError", "slow"), "rate_limited", "rate_limit"),
            (502, vec![], "<html>bad gateway</html>".to_string(), "retryable", "server_error"),
            (418, vec![], v2(418, "Teapot", "x"), "permanent", "unexpected_status"),
        ];
        for (code, headers, body, class, want) in cases {
            let e = status(
                &Method::PUT,
                "/api/2/users/1",
                &reply(code, &headers, &body),
            );
            assert_eq!((e.class.name(), e.code.as_str()), (class, want), "{code}");
            assert!(e
                .message
                .starts_with(&format!("PUT /api/2/users/1: {code}")));
        }
        let e = status(
            &Method::GET,
            "/x",
            &reply(429, &[("x-ratelimit-reset", "7")], ""),
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        let e = status(&Method::GET, "/x", &reply(403, &[], v1));
        assert!(e.message.contains("not authorized to access this User"));
        assert_eq!(
            message(
                r#"{"status":{"code":400,"message":{"attribute":"id","description":"ID is incorrect"}}}"#
            ),
            "ID is incorrect"
        );
    }
}
