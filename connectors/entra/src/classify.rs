//! Every Microsoft Graph and Microsoft identity platform failure, mapped to a `ConnectorError`
//! class and a stable code.
//!
//! Only the executor retries; this module only says whether retrying can help and when.
//! Graph's error body is `{"error": {"code", "message", "innerError": {"request-id", "date"}}}`;
//! the token endpoint's is `{"error": "invalid_client", "error_description": "AADSTS7000215: ..."}`.
//! - 429 is RateLimited, waiting `Retry-After` seconds (Graph sends it on every throttled
//!   answer; without one, 10 s).
//! - 503 and 504 are Retryable, with `Retry-After` when Graph gave one; other 5xx Retryable.
//! - 401 (`InvalidAuthenticationToken`, the token endpoint's `invalid_client`) is Auth
//!   `unauthorized`; 403 (`Authorization_RequestDenied`) Auth `forbidden`.
//! - 404 (`Request_ResourceNotFound`) is decided by the caller: on the pinned user or a removal
//!   it is AlreadyDone after a read; here it is Permanent `not_found`.
//! - 400 is Permanent: `unsupported_query` for `Request_UnsupportedQuery`, else `bad_request`
//!   (the group kinds Graph cannot change are recognised by [`unchangeable_group`] first).
//! - 409 and 412 are Conflict.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::Method;
use revoke_core::ConnectorError;
use serde_json::Value;

/// Graph's code of an object that does not exist (or a reference that does not).
pub const NOT_FOUND: &str = "Request_ResourceNotFound";

/// The wait after a 429 that carries no `Retry-After`.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(10);

/// What Graph's error body says (and the token endpoint's).
pub trait GraphAnswer {
    /// Graph's `error.code`, or the token endpoint's `error`.
    fn error_code(&self) -> Option<String>;

    /// Graph's `error.message`, or the token endpoint's `error_description`.
    fn error_message(&self) -> String;
}

impl GraphAnswer for Reply {
    fn error_code(&self) -> Option<String> {
        let v = self.json()?;
        let e = v.get("error")?;
        e.get("code")
            .and_then(Value::as_str)
            .or_else(|| e.as_str())
            .map(str::to_string)
    }

    fn error_message(&self) -> String {
        let Some(v) = self.json() else {
            return String::new();
        };
        v.get("error")
            .and_then(|e| e.get("message"))
            .or_else(|| v.get("error_description"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    }
}

/// `code: message` of an error answer, else the body itself.
pub fn message(r: &Reply) -> String {
    match r.error_code() {
        Some(c) => {
            let m = r.error_message();
            let first_line = m.lines().next().unwrap_or("");
            if first_line.is_empty() {
                c
            } else {
                format!("{c}: {}", excerpt(first_line))
            }
        }
        None => excerpt(&r.body),
    }
}

/// `Retry-After` in seconds (Graph never sends the date form); at most an hour.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)?;
    Some(Duration::from_secs_f64(secs.min(3_600.0)))
}

/// Whether the answer is a throttling refusal (its wait holds every call of the instance).
pub fn is_throttled(r: &Reply) -> bool {
    r.status == 429
}

/// The wait a throttled or unavailable answer asks for.
pub fn hold_for(r: &Reply) -> Option<Duration> {
    match r.status {
        429 => Some(retry_after(&r.headers).unwrap_or(DEFAULT_RETRY_AFTER)),
        503 | 504 => retry_after(&r.headers),
        _ => None,
    }
}

/// A refusal for pace: the client's own budget, or a hold longer than it waits itself.
pub fn rate_limited(method: &Method, path: &str, wait: Duration, why: &str) -> ConnectorError {
    ConnectorError::rate_limited(
        wait,
        "rate_limit",
        format!(
            "{method} {path}: {why}; the next call may go in {}ms",
            wait.as_millis()
        ),
    )
}

/// Why Graph refuses to change this group's members (or this user), from a 400's message: an
/// object mastered in Exchange (mail-enabled security, distribution list), on-premises AD, or
/// a dynamic rule.
pub fn unchangeable_group(r: &Reply) -> Option<&'static str> {
    if r.status != 400 {
        return None;
    }
    let m = r.error_message().to_ascii_lowercase();
    if m.contains("on-premises mastered") || m.contains("directory sync") {
        Some("on_prem_synced")
    } else if m.contains("originated within an external service") {
        Some("mail_enabled")
    } else if m.contains("dynamic") {
        Some("dynamic")
    } else {
        None
    }
}

/// Whether a 400 to `assignLicense` says the licence comes from a group.
pub fn license_from_group(r: &Reply) -> bool {
    r.status == 400
        && r.error_message()
            .to_ascii_lowercase()
            .contains("inherited from a group")
}

/// Any status the caller did not expect.
pub fn status(method: &Method, path: &str, r: &Reply) -> ConnectorError {
    let msg = format!("{method} {path}: {} {}", r.status, message(r));
    let code = r.error_code().unwrap_or_default();
    match r.status {
        429 => rate_limited(
            method,
            path,
            retry_after(&r.headers).unwrap_or(DEFAULT_RETRY_AFTER),
            &format!("429 {}", message(r)),
        ),
        400 if code == "Request_UnsupportedQuery" => {
            ConnectorError::permanent("unsupported_query", msg)
        }
        400 if code == "invalid_client" || code == "unauthorized_client" => {
            ConnectorError::auth("unauthorized", msg)
        }
        400 => ConnectorError::permanent("bad_request", msg),
        401 => ConnectorError::auth("unauthorized", msg),
        403 => ConnectorError::auth("forbidden", msg),
        404 => ConnectorError::permanent("not_found", msg),
        409 | 412 => ConnectorError::conflict("conflict", msg),
        503 | 504 => ConnectorError::new(
            revoke_core::ErrorClass::Retryable {
                retry_after: retry_after(&r.headers),
            },
            "unavailable",
            msg,
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

    fn reply(status: u16, headers: &[(&'static str, &str)], body: &str) -> Reply {
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

    fn graph(code: &str, message: &str) -> String {
        serde_json::json!({"error": {"code": code, "message": message,
            "innerError": {"request-id": "5e0e4b1c", "date": "2026-12-05T14:00:00"}}})
        .to_string()
    }

    #[test]
    fn statuses_and_codes_map_to_classes_with_graphs_message() {
        let cases = [
            (400, graph("Request_BadRequest", "Invalid object identifier 'x'."), "permanent", "bad_request"),
            (400, graph("Request_UnsupportedQuery", "Unsupported or invalid query filter clause specified for property 'onPremisesSamAccountName' of resource 'User'."), "permanent", "unsupported_query"),
            (401, graph("InvalidAuthenticationToken", "Access token has expired or is not yet valid."), "auth", "unauthorized"),
            (401, r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#.to_string(), "auth", "unauthorized"),
            (400, r#"{"error":"unauthorized_client","error_description":"AADSTS700016: Application not found in the directory."}"#.to_string(), "auth", "unauthorized"),
            (403, graph("Authorization_RequestDenied", "Insufficient privileges to complete the operation."), "auth", "forbidden"),
            (404, graph(NOT_FOUND, "Resource 'x' does not exist or one of its queried reference-property objects are not present."), "permanent", "not_found"),
            (409, graph("Request_MultipleObjectsWithSameKeyValue", "conflict"), "conflict", "conflict"),
            (429, graph("TooManyRequests", "Too many requests"), "rate_limited", "rate_limit"),
            (500, graph("generalException", "boom"), "retryable", "server_error"),
            (502, "<html>bad gateway</html>".to_string(), "retryable", "server_error"),
            (503, graph("serviceNotAvailable", "busy"), "retryable", "unavailable"),
            (418, graph("x", "teapot"), "permanent", "unexpected_status"),
        ];
        for (code, body, class, want) in cases {
            let e = status(&Method::DELETE, "/users/u1", &reply(code, &[], &body));
            assert_eq!(
                (e.class.name(), e.code.as_str()),
                (class, want),
                "{code} {body}"
            );
            assert!(
                e.message.starts_with(&format!("DELETE /users/u1: {code}")),
                "{}",
                e.message
            );
        }
        let e = status(
            &Method::GET,
            "/x",
            &reply(404, &[], &graph(NOT_FOUND, "Resource 'x' does not exist.")),
        );
        assert_eq!(
            e.message,
            "GET /x: 404 Request_ResourceNotFound: Resource 'x' does not exist."
        );
        let r = reply(
            401,
            &[],
            r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1"}"#,
        );
        assert_eq!(
            message(&r),
            "invalid_client: AADSTS7000215: Invalid client secret provided."
        );
    }

    #[test]
    fn throttling_waits_retry_after_and_holds_for_503_only_when_told() {
        let e = status(
            &Method::GET,
            "/users",
            &reply(429, &[("retry-after", "7")], ""),
        );
        assert_eq!(e.class.name(), "rate_limited");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        let e = status(&Method::GET, "/users", &reply(429, &[], ""));
        assert_eq!(e.retry_after(), Some(DEFAULT_RETRY_AFTER));
        let e = status(
            &Method::GET,
            "/users",
            &reply(503, &[("retry-after", "3")], ""),
        );
        assert_eq!(
            (e.class.name(), e.retry_after()),
            ("retryable", Some(Duration::from_secs(3)))
        );
        assert_eq!(hold_for(&reply(503, &[], "")), None);
        assert_eq!(
            hold_for(&reply(429, &[("retry-after", "2")], "")),
            Some(Duration::from_secs(2))
        );
        assert_eq!(hold_for(&reply(200, &[("retry-after", "2")], "")), None);
        assert_eq!(
            retry_after(&reply(429, &[("retry-after", "soon")], "").headers),
            None
        );
    }

    #[test]
    fn the_groups_graph_cannot_change_are_told_apart_by_their_400() {
        let cases = [
            ("Unable to update the specified properties for objects that have originated within an external service.", Some("mail_enabled")),
            ("Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration.", Some("on_prem_synced")),
            ("Insufficient privileges to complete the operation. Group membership of a dynamic group cannot be changed.", Some("dynamic")),
            ("Invalid object identifier 'x'.", None),
        ];
        for (m, want) in cases {
            assert_eq!(
                unchangeable_group(&reply(400, &[], &graph("Request_BadRequest", m))),
                want,
                "{m}"
            );
        }
        assert_eq!(
            unchangeable_group(&reply(
                403,
                &[],
                &graph("Authorization_RequestDenied", "dynamic")
            )),
            None
        );
        assert!(license_from_group(&reply(400, &[], &graph("Request_BadRequest", "User license is inherited from a group membership and it cannot be removed directly from the user."))));
        assert!(!license_from_group(&reply(
            400,
            &[],
            &graph(
                "Request_BadRequest",
                "License 1 does not correspond to a valid company License."
            )
        )));
    }
}
