//! Every Vault / OpenBao failure, mapped to a `ConnectorError` class and a stable code.
//!
//! Only the executor retries; this module only says whether retrying can help and when. Vault's
//! error body is `{"errors": ["..."]}`:
//! - 429 (a rate-limit quota) is RateLimited `rate_limited`, waiting `Retry-After` seconds when
//!   the cluster sends it (`sys/quotas/config enable_rate_limit_response_headers`), else one
//!   second;
//! - 401 and 403 (`permission denied`: a missing capability, a bad or expired token) are Auth;
//! - 404 is decided by the caller (the pinned entity gone is already done); here Permanent
//!   `not_found`;
//! - 503 (sealed, a standby without forwarding), 500, 502 and 412 (Enterprise's eventual
//!   consistency: the node has not yet seen the index asked for) are Retryable;
//! - any other 4xx is Permanent `bad_request` with Vault's message.

use std::time::Duration;

use reqwest::Method;
use revoke_core::ConnectorError;
pub use revoke_http::{excerpt, Reply};
use serde_json::Value;

/// What Vault's error body and headers say.
pub trait VaultAnswer {
    /// Vault's `errors`, joined.
    fn errors(&self) -> String;

    /// `Retry-After` in seconds, if sent.
    fn retry_after(&self) -> Option<Duration>;
}

impl VaultAnswer for Reply {
    fn errors(&self) -> String {
        self.json()
            .and_then(|v| {
                v.get("errors").and_then(Value::as_array).map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(|e| e.split_whitespace().collect::<Vec<_>>().join(" "))
                        .collect::<Vec<_>>()
                        .join("; ")
                })
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| excerpt(&self.body))
    }

    fn retry_after(&self) -> Option<Duration> {
        self.headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
    }
}

/// The class of an answer that is not a success.
pub fn status(method: &Method, path: &str, r: &Reply) -> ConnectorError {
    let msg = format!("{method} {path}: {} {}", r.status, r.errors());
    match r.status {
        429 => ConnectorError::rate_limited(
            r.retry_after()
                .unwrap_or(Duration::from_secs(1))
                .max(Duration::from_secs(1)),
            "rate_limited",
            msg,
        ),
        401 => ConnectorError::auth("unauthorized", msg),
        403 => ConnectorError::auth("permission_denied", msg),
        404 => ConnectorError::permanent("not_found", msg),
        412 => ConnectorError::retryable("index_not_seen", msg),
        503 if r.errors().contains("sealed") => ConnectorError::retryable("sealed", msg),
        500 | 502 | 503 | 504 => ConnectorError::retryable("server_error", msg),
        s if (400..500).contains(&s) => ConnectorError::permanent("bad_request", msg),
        _ => ConnectorError::permanent("unexpected_status", msg),
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderMap, HeaderValue};
    use revoke_core::ErrorClass;

    use super::*;

    fn reply(status: u16, retry_after: Option<&str>, body: &str) -> Reply {
        let mut h = HeaderMap::new();
        if let Some(v) = retry_after {
            h.insert("retry-after", HeaderValue::from_str(v).expect("header"));
        }
        Reply {
            status,
            headers: h,
            body: body.to_string(),
        }
    }

    #[test]
    fn statuses_map_to_classes_with_vaults_message() {
        let cases = [
            (
                400,
                r#"{"errors":["1 error occurred:\n\t* invalid accessor\n\n"]}"#,
                "permanent",
                "bad_request",
            ),
            (
                401,
                r#"{"errors":["missing client token"]}"#,
                "auth",
                "unauthorized",
            ),
            (
                403,
                r#"{"errors":["permission denied"]}"#,
                "auth",
                "permission_denied",
            ),
            (404, r#"{"errors":[]}"#, "permanent", "not_found"),
            (
                412,
                r#"{"errors":["required index state not present"]}"#,
                "retryable",
                "index_not_seen",
            ),
            (500, "oops", "retryable", "server_error"),
            (
                503,
                r#"{"errors":["Vault is sealed"]}"#,
                "retryable",
                "sealed",
            ),
            (302, "", "permanent", "unexpected_status"),
        ];
        for (code, body, class, want) in cases {
            let e = status(&Method::POST, "/v1/x", &reply(code, None, body));
            assert_eq!(
                (e.class.name(), e.code.as_str()),
                (class, want),
                "{code}: {e:?}"
            );
        }
        let e = status(
            &Method::POST,
            "/v1/x",
            &reply(
                400,
                None,
                r#"{"errors":["1 error occurred:\n\t* invalid accessor\n\n"]}"#,
            ),
        );
        assert!(e.message.contains("* invalid accessor"), "{}", e.message);
    }

    #[test]
    fn a_quota_429_waits_retry_after_or_a_second() {
        let body = r#"{"errors":["request path \"sys/auth\": rate limit quota exceeded"]}"#;
        let e = status(&Method::GET, "/v1/sys/auth", &reply(429, Some("3"), body));
        assert_eq!(
            e.class,
            ErrorClass::RateLimited {
                retry_after: Duration::from_secs(3)
            }
        );
        let e = status(&Method::GET, "/v1/sys/auth", &reply(429, None, body));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));
        assert!(
            e.message.contains("rate limit quota exceeded"),
            "{}",
            e.message
        );
    }
}
