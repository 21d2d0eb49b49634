//! Every GitHub failure, mapped to a `ConnectorError` class and a stable code.
//!
//! Only the executor retries; this module only says whether retrying can help and when.
//! Decisions worth knowing:
//! - A 403 or 429 that GitHub marks as a rate limit (`retry-after`, `x-ratelimit-remaining: 0`,
//!   "secondary rate limit") is RateLimited with the wait GitHub asked for (pace.rs decides).
//!   Any other 403 is Auth: a missing scope or permission, or SAML enforcement on the token.
//! - 404 is decided by the caller: on the person it is AlreadyDone, on the org or team it is
//!   Permanent (`org_not_found`, `team_not_found`); here it is Permanent `not_found`.
//! - 409 and 422 are Conflict (the target is in a state that forbids the action).
//! - 5xx and transport faults are Retryable, with `retry-after` when GitHub sent one.

use std::time::Duration;

use http::{Method, StatusCode};
use revoke_core::{ConnectorError, ErrorClass};
use serde_json::Value;

use crate::pace::WaitReason;
use crate::reply::{excerpt, Reply};

/// GitHub's own message from an error body, or the body itself.
pub fn message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| excerpt(body))
}

fn retry_after(r: &Reply) -> Option<Duration> {
    r.headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// A response GitHub refused for pace.
pub fn limited(
    method: &Method,
    path: &str,
    r: &Reply,
    wait: Duration,
    reason: WaitReason,
) -> ConnectorError {
    let code = match reason {
        WaitReason::SecondaryLimit => "secondary_rate_limit",
        _ => "rate_limit",
    };
    ConnectorError::rate_limited(
        wait,
        code,
        format!(
            "{method} {path}: {} {}; next request allowed in {}s",
            r.status.as_u16(),
            message(&r.body),
            wait.as_secs()
        ),
    )
}

/// Any status the caller did not expect.
pub fn status(method: &Method, path: &str, r: &Reply) -> ConnectorError {
    let msg = format!(
        "{method} {path}: {} {}",
        r.status.as_u16(),
        message(&r.body)
    );
    match r.status {
        StatusCode::UNAUTHORIZED => ConnectorError::auth("bad_credentials", msg),
        StatusCode::FORBIDDEN => ConnectorError::auth("forbidden", msg),
        StatusCode::NOT_FOUND => ConnectorError::permanent("not_found", msg),
        StatusCode::CONFLICT => ConnectorError::conflict("conflict", msg),
        StatusCode::UNPROCESSABLE_ENTITY => ConnectorError::conflict("unprocessable", msg),
        StatusCode::TOO_MANY_REQUESTS => ConnectorError::rate_limited(
            retry_after(r).unwrap_or(Duration::from_secs(60)),
            "rate_limit",
            msg,
        ),
        s if s.is_server_error() => ConnectorError::new(
            ErrorClass::Retryable {
                retry_after: retry_after(r),
            },
            "server_error",
            msg,
        ),
        _ => ConnectorError::permanent("unexpected_status", msg),
    }
}

/// A request that never got an answer.
pub fn transport(method: &Method, path: &str, e: &octocrab::Error) -> ConnectorError {
    let msg = format!("{method} {path}: {e}");
    match e {
        octocrab::Error::GitHub { source, .. } => {
            let code = source.status_code;
            let msg = format!("{method} {path}: {} {}", code.as_u16(), source.message);
            match code {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => {
                    ConnectorError::auth("app_installation_token", msg)
                }
                s if s.is_server_error() => ConnectorError::retryable("server_error", msg),
                _ => ConnectorError::permanent("app_installation_token", msg),
            }
        }
        octocrab::Error::UriParse { .. }
        | octocrab::Error::Uri { .. }
        | octocrab::Error::InvalidHeaderValue { .. }
        | octocrab::Error::Http { .. }
        | octocrab::Error::Serde { .. }
        | octocrab::Error::SerdeUrlEncoded { .. } => ConnectorError::permanent("bad_request", msg),
        _ => ConnectorError::retryable("connection", msg),
    }
}

/// GraphQL errors of a 200 answer.
pub fn graphql(errors: &[Value]) -> ConnectorError {
    let types: Vec<&str> = errors
        .iter()
        .filter_map(|e| e.get("type").and_then(Value::as_str))
        .collect();
    let msg = errors
        .iter()
        .filter_map(|e| e.get("message").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("; ");
    let msg = format!("graphql: {msg}");
    if types.contains(&"RATE_LIMITED") {
        ConnectorError::rate_limited(Duration::from_secs(60), "rate_limit", msg)
    } else if types.contains(&"NOT_FOUND") {
        ConnectorError::permanent("org_not_found", msg)
    } else if types.contains(&"FORBIDDEN") || types.contains(&"INSUFFICIENT_SCOPES") {
        ConnectorError::auth("forbidden", msg)
    } else {
        ConnectorError::permanent("graphql_error", msg)
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue};
    use serde_json::json;

    use super::*;

    fn reply(status: u16, headers: &[(&'static str, &'static str)], body: &str) -> Reply {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, HeaderValue::from_static(v));
        }
        Reply {
            status: StatusCode::from_u16(status).expect("status"),
            headers: h,
            body: body.to_string(),
        }
    }

    #[test]
    fn statuses_map_to_classes_with_githubs_message() {
        let gh = |m: &str| format!("{{\"message\":\"{m}\",\"documentation_url\":\"x\"}}");
        let cases = [
            (
                401,
                vec![],
                gh("Bad credentials"),
                "auth",
                "bad_credentials",
            ),
            (
                403,
                vec![],
                gh("Resource protected by organization SAML enforcement"),
                "auth",
                "forbidden",
            ),
            (404, vec![], gh("Not Found"), "permanent", "not_found"),
            (409, vec![], gh("Conflict"), "conflict", "conflict"),
            (
                422,
                vec![],
                gh("Validation Failed"),
                "conflict",
                "unprocessable",
            ),
            (
                429,
                vec![("retry-after", "3")],
                gh("slow down"),
                "rate_limited",
                "rate_limit",
            ),
            (
                502,
                vec![],
                "<html>bad gateway</html>".to_string(),
                "retryable",
                "server_error",
            ),
            (418, vec![], gh("teapot"), "permanent", "unexpected_status"),
        ];
        for (code, headers, body, class, want) in cases {
            let e = status(
                &Method::DELETE,
                "/orgs/a/memberships/b",
                &reply(code, &headers, &body),
            );
            assert_eq!((e.class.name(), e.code.as_str()), (class, want), "{code}");
            assert!(e
                .message
                .starts_with(&format!("DELETE /orgs/a/memberships/b: {code}")));
        }
        let e = status(&Method::GET, "/x", &reply(503, &[("retry-after", "9")], ""));
        assert_eq!(
            e.class,
            ErrorClass::Retryable {
                retry_after: Some(Duration::from_secs(9))
            }
        );
        let e = status(
            &Method::GET,
            "/x",
            &reply(403, &[], &gh("Must have admin rights")),
        );
        assert!(
            e.message.contains("Must have admin rights"),
            "{}",
            e.message
        );
    }

    #[test]
    fn graphql_errors_are_classified_by_type() {
        let e = graphql(&[
            json!({"type": "NOT_FOUND", "message": "Could not resolve to an Organization with the login of 'x'."}),
        ]);
        assert_eq!(e.code, "org_not_found");
        assert!(e.message.contains("Could not resolve"));
        assert_eq!(
            graphql(&[json!({"type": "RATE_LIMITED", "message": "m"})])
                .class
                .name(),
            "rate_limited"
        );
        assert_eq!(
            graphql(&[json!({"type": "FORBIDDEN", "message": "m"})])
                .class
                .name(),
            "auth"
        );
        assert_eq!(
            graphql(&[json!({"message": "Field 'x' doesn't exist"})]).code,
            "graphql_error"
        );
    }
}
