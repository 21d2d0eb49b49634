//! Every HTTP status and transport fault of a SCIM app, mapped to a `ConnectorError` class and a
//! stable code.
//!
//! Only the executor retries; this module only says whether retrying can help. Statuses whose
//! meaning depends on the request (404 on a removal is success, 412 is re-read once, 400
//! `noTarget` on a member removal is success) are decided in apply.rs before anything reaches
//! `status`.
//!
//! Decisions worth knowing:
//! - 401 and 403 are Auth: the token or the app's SCIM permission is wrong.
//! - 409 is Conflict (a uniqueness clash or a state the app refuses to change).
//! - 412 reaching here is Retryable: the ETag went stale twice within one apply.
//! - 429 is RateLimited with the server's Retry-After (seconds), 30 s when it gave none.
//! - 5xx and every transport fault (refused, reset, timed out) are Retryable; 503 and 504 keep the
//!   server's Retry-After when it sent one.
//! - Any other 4xx is Permanent; SCIM's `scimType` and `detail` go into the message.

use std::time::Duration;

use revoke_core::ConnectorError;
use serde_json::Value;

/// The wait when a 429 carries no Retry-After.
pub const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(30);

/// An HTTP answer that is not what the request wanted, as far as classification needs it.
#[derive(Debug, Clone, Default)]
pub struct Failure {
    pub status: u16,
    /// Retry-After in seconds, when the server sent it as a number.
    pub retry_after: Option<Duration>,
    /// The SCIM error body (`scimType`, `detail`), when it was JSON.
    pub body: Option<Value>,
    /// The start of the body when it was not JSON.
    pub text: String,
}

impl Failure {
    /// SCIM's `scimType` of an error body (`invalidFilter`, `noTarget`, `uniqueness`, ...).
    pub fn scim_type(&self) -> Option<&str> {
        self.body.as_ref()?.get("scimType")?.as_str()
    }

    fn detail(&self) -> String {
        let detail = self
            .body
            .as_ref()
            .and_then(|b| b.get("detail"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| self.text.trim().chars().take(300).collect());
        match (self.scim_type(), detail.is_empty()) {
            (Some(t), false) => format!(": {t}: {detail}"),
            (Some(t), true) => format!(": {t}"),
            (None, false) => format!(": {detail}"),
            (None, true) => String::new(),
        }
    }
}

/// Parses a Retry-After header given in seconds (HTTP dates are rare in SCIM apps; ignored).
pub fn retry_after(header: Option<&str>) -> Option<Duration> {
    header?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A failed request `what` (e.g. `PATCH /Users/2819c223`), classified by its status.
pub fn status(what: &str, f: &Failure) -> ConnectorError {
    let message = format!("{what}: http {}{}", f.status, f.detail());
    match f.status {
        401 => ConnectorError::auth("unauthorized", message),
        403 => ConnectorError::auth("forbidden", message),
        404 => ConnectorError::permanent("not_found", message),
        409 => ConnectorError::conflict("conflict", message),
        412 => ConnectorError::retryable("precondition_failed", message),
        429 => ConnectorError::rate_limited(
            f.retry_after.unwrap_or(DEFAULT_RATE_LIMIT_WAIT),
            "rate_limited",
            message,
        ),
        400 => ConnectorError::permanent("bad_request", message),
        500..=599 => ConnectorError::new(
            revoke_core::ErrorClass::Retryable {
                retry_after: f.retry_after,
            },
            "server_error",
            message,
        ),
        s if (400..500).contains(&s) => ConnectorError::permanent(format!("http_{s}"), message),
        s => ConnectorError::permanent(format!("unexpected_{s}"), message),
    }
}

/// A transport fault of request `what`.
pub fn transport(what: &str, err: &reqwest::Error) -> ConnectorError {
    // reqwest's Display names the URL, which holds no secret (auth goes in a header).
    let mut message = format!("{what}: {err}");
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    if err.is_timeout() {
        ConnectorError::retryable("timeout", message)
    } else if err.is_connect() || err.is_request() || err.is_body() {
        ConnectorError::retryable("connection", message)
    } else if err.is_builder() {
        ConnectorError::permanent("client", message)
    } else {
        ConnectorError::retryable("connection", message)
    }
}

/// A 2xx answer whose body is not the SCIM resource expected.
pub fn bad_response(what: &str, why: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::permanent("bad_response", format!("{what}: {why}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn f(status: u16, body: Option<Value>) -> Failure {
        Failure {
            status,
            retry_after: None,
            body,
            text: String::new(),
        }
    }

    #[test]
    fn statuses() {
        let cases: &[(u16, &str, &str)] = &[
            (401, "auth", "unauthorized"),
            (403, "auth", "forbidden"),
            (404, "permanent", "not_found"),
            (409, "conflict", "conflict"),
            (412, "retryable", "precondition_failed"),
            (429, "rate_limited", "rate_limited"),
            (400, "permanent", "bad_request"),
            (422, "permanent", "http_422"),
            (500, "retryable", "server_error"),
            (503, "retryable", "server_error"),
        ];
        for (s, class, code) in cases {
            let e = status("GET /Users", &f(*s, None));
            assert_eq!((e.class.name(), e.code.as_str()), (*class, *code), "{s}");
        }
    }

    #[test]
    fn scim_detail_and_retry_after_are_kept() {
        let e = status(
            "GET /Users?filter=x",
            &f(
                400,
                Some(json!({"status": "400", "scimType": "invalidFilter", "detail": "bad at 3"})),
            ),
        );
        assert_eq!(
            e.message,
            "GET /Users?filter=x: http 400: invalidFilter: bad at 3"
        );
        let mut limited = f(429, None);
        limited.retry_after = retry_after(Some(" 7 "));
        assert_eq!(
            status("PATCH /Users/1", &limited).retry_after(),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            status("PATCH /Users/1", &f(429, None)).retry_after(),
            Some(DEFAULT_RATE_LIMIT_WAIT)
        );
        let mut busy = f(503, None);
        busy.retry_after = Some(Duration::from_secs(2));
        busy.text = "<html>busy</html>".into();
        let e = status("DELETE /Users/1", &busy);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        assert_eq!(e.message, "DELETE /Users/1: http 503: <html>busy</html>");
        assert_eq!(retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
    }
}
