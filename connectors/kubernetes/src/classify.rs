//! Every Kubernetes API failure, mapped to a `ConnectorError` class and a stable code.
//!
//! Only the executor retries; this module only says whether retrying can help and when. The API
//! server's error body is a `Status` (`kind: Status`, `status: Failure`, `reason`, `message`,
//! `details.retryAfterSeconds`, `code`); the reason decides before the status where it is precise:
//! - 429 `TooManyRequests` (API Priority and Fairness, or max-in-flight) is RateLimited, waiting
//!   `Retry-After` (else `details.retryAfterSeconds`, else one second).
//! - 409 `Conflict` (a stale `metadata.resourceVersion` on PUT, or a `preconditions` mismatch on
//!   DELETE) is Retryable `conflict`: the next attempt re-reads the object and decides again.
//!   409 `AlreadyExists` is Conflict `already_exists`.
//! - 401 is Auth `unauthorized`, 403 Auth `forbidden` (the connector's ServiceAccount lacks a
//!   verb: docs/connectors/kubernetes.md lists the ones it needs).
//! - 404 `NotFound` is decided by the caller (the pinned binding gone is `AlreadyDone`); here it
//!   is Permanent `not_found`.
//! - 410 `Expired` (a list's `continue` token too old) is Retryable `expired`: the next attempt
//!   lists from the start.
//! - 500 `InternalError`, 503, 504 `Timeout`/`ServerTimeout` and transport faults are Retryable,
//!   with `details.retryAfterSeconds` when the server gave it; 400/422 `BadRequest`/`Invalid` and
//!   any other 4xx are Permanent.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::Method;
use revoke_core::ConnectorError;
pub use revoke_http::{excerpt, Reply};
use serde_json::Value;

/// What the API server's `Status` body and headers say.
pub trait KubeAnswer {
    /// The `reason` of a `Status` body (`Conflict`, `NotFound`, `TooManyRequests`).
    fn reason(&self) -> Option<String>;

    fn retry_after_seconds(&self) -> Option<u64>;
}

impl KubeAnswer for Reply {
    fn reason(&self) -> Option<String> {
        let v = self.json()?;
        (v.get("kind").and_then(Value::as_str) == Some("Status"))
            .then(|| v.get("reason").and_then(Value::as_str).map(str::to_string))
            .flatten()
    }

    fn retry_after_seconds(&self) -> Option<u64> {
        self.json()?
            .get("details")?
            .get("retryAfterSeconds")?
            .as_u64()
    }
}

/// A `Status` as `reason: message`, else the body itself.
pub fn message(body: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return excerpt(body);
    };
    match (
        v.get("reason").and_then(Value::as_str),
        v.get("message").and_then(Value::as_str),
    ) {
        (Some(r), Some(m)) => format!("{r}: {}", excerpt(m)),
        (None, Some(m)) => excerpt(m),
        _ => excerpt(body),
    }
}

/// `Retry-After` in seconds (the API server sends seconds, never a date).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Any status the caller did not expect.
pub fn status(method: &Method, path: &str, r: &Reply) -> ConnectorError {
    let msg = format!("{method} {path}: {} {}", r.status, message(&r.body));
    let reason = r.reason();
    let server_wait =
        || retry_after(&r.headers).or_else(|| r.retry_after_seconds().map(Duration::from_secs));
    match (r.status, reason.as_deref()) {
        (429, _) | (_, Some("TooManyRequests")) => ConnectorError::rate_limited(
            server_wait().unwrap_or(Duration::from_secs(1)),
            "rate_limited",
            msg,
        ),
        (409, Some("AlreadyExists")) => ConnectorError::conflict("already_exists", msg),
        (409, _) => ConnectorError::retryable("conflict", msg),
        (401, _) => ConnectorError::auth("unauthorized", msg),
        (403, _) => ConnectorError::auth("forbidden", msg),
        (404, _) => ConnectorError::permanent("not_found", msg),
        (410, _) => ConnectorError::retryable("expired", msg),
        (500..=599, _) => ConnectorError::new(
            revoke_core::ErrorClass::Retryable {
                retry_after: server_wait(),
            },
            "server_error",
            msg,
        ),
        (400, _) | (422, _) => ConnectorError::permanent("invalid", msg),
        _ => ConnectorError::permanent("unexpected_status", msg),
    }
}

/// An answer whose body is not what the API documents.
pub fn bad_response(method: &Method, path: &str, what: &str) -> ConnectorError {
    revoke_http::bad_response(method, path, what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use revoke_core::ErrorClass;
    use serde_json::json;

    fn reply(status: u16, body: Value, headers: &[(&'static str, &str)]) -> Reply {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, v.parse().expect("header value"));
        }
        Reply {
            status,
            headers: h,
            body: body.to_string(),
        }
    }

    fn st(code: u16, reason: &str, message: &str) -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code})
    }

    fn class(r: &Reply) -> (ErrorClass, String) {
        let e = status(&Method::DELETE, "/apis/x", r);
        (e.class, e.code)
    }

    #[test]
    fn apf_rejections_wait_the_servers_retry_after() {
        let mut body = st(
            429,
            "TooManyRequests",
            "too many requests, please try again later",
        );
        body["details"] = json!({"retryAfterSeconds": 3});
        let (c, code) = class(&reply(429, body.clone(), &[("retry-after", "7")]));
        assert_eq!(code, "rate_limited");
        assert_eq!(
            c,
            ErrorClass::RateLimited {
                retry_after: Duration::from_secs(7)
            }
        );
        let (c, _) = class(&reply(429, body, &[]));
        assert_eq!(
            c,
            ErrorClass::RateLimited {
                retry_after: Duration::from_secs(3)
            },
            "details.retryAfterSeconds when there is no header"
        );
    }

    #[test]
    fn a_stale_resource_version_or_precondition_is_retried_after_a_fresh_read() {
        let body = st(409, "Conflict", "Operation cannot be fulfilled on clusterrolebindings.rbac.authorization.k8s.io \"x\": the object has been modified; please apply your changes to the latest version and try again");
        let (c, code) = class(&reply(409, body, &[]));
        assert_eq!(
            (c, code.as_str()),
            (ErrorClass::Retryable { retry_after: None }, "conflict")
        );
        let (c, code) = class(&reply(409, st(409, "AlreadyExists", "exists"), &[]));
        assert_eq!((c, code.as_str()), (ErrorClass::Conflict, "already_exists"));
    }

    #[test]
    fn the_rest_by_status() {
        for (s, reason, want_code, want) in [
            (401, "Unauthorized", "unauthorized", ErrorClass::Auth),
            (403, "Forbidden", "forbidden", ErrorClass::Auth),
            (404, "NotFound", "not_found", ErrorClass::Permanent),
            (
                410,
                "Expired",
                "expired",
                ErrorClass::Retryable { retry_after: None },
            ),
            (422, "Invalid", "invalid", ErrorClass::Permanent),
            (
                500,
                "InternalError",
                "server_error",
                ErrorClass::Retryable { retry_after: None },
            ),
            (418, "Teapot", "unexpected_status", ErrorClass::Permanent),
        ] {
            let (c, code) = class(&reply(s, st(s, reason, "m"), &[]));
            assert_eq!((c, code.as_str()), (want, want_code), "{s}");
        }
        let mut body = st(
            504,
            "Timeout",
            "the server was unable to return a response in the time allotted",
        );
        body["details"] = json!({"retryAfterSeconds": 2});
        let (c, _) = class(&reply(504, body, &[]));
        assert_eq!(
            c,
            ErrorClass::Retryable {
                retry_after: Some(Duration::from_secs(2))
            }
        );
    }

    #[test]
    fn messages_say_reason_and_message_on_one_line() {
        let r = reply(
            404,
            st(404, "NotFound", "rolebindings \"x\" not found"),
            &[],
        );
        let e = status(&Method::GET, "/p", &r);
        assert_eq!(
            e.message,
            "GET /p: 404 NotFound: rolebindings \"x\" not found"
        );
        assert_eq!(message("<html>\n oops </html>"), "<html> oops </html>");
    }
}
