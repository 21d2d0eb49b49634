//! An SDK error reduced to what classification needs, and the classes every AWS service shares.
//! Each connector's `classify` handles its service's own codes first and falls back to
//! [`classify`] here.

use std::time::Duration;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use revoke_core::{ConnectorError, ErrorClass};

/// How far a request got before it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The service answered with an error.
    Service,
    /// No answer in time (connect or operation timeout).
    Timeout,
    /// The request could not be sent (connection refused, DNS, TLS, no credentials).
    Dispatch,
    /// An answer came that could not be read.
    Response,
    /// The request could not be built (a bug or a bad parameter).
    Construction,
}

/// What an SDK error says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    pub status: Option<u16>,
    pub code: Option<String>,
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl Fault {
    pub fn service(status: u16, code: &str, message: &str) -> Self {
        Self {
            kind: FaultKind::Service,
            status: Some(status),
            code: Some(code.to_string()),
            message: message.to_string(),
            retry_after: None,
        }
    }

    /// Reads an error of any AWS SDK client.
    pub fn of<E>(err: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let raw = err.raw_response();
        let status = raw.map(|r| r.status().as_u16());
        let retry_after = raw
            .and_then(|r| r.headers().get("retry-after"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let (kind, code, message) = match err {
            SdkError::ServiceError(se) => {
                let e = se.err();
                (
                    FaultKind::Service,
                    e.code().map(str::to_string),
                    e.message().unwrap_or("").to_string(),
                )
            }
            SdkError::TimeoutError(_) => (FaultKind::Timeout, None, "no answer in time".into()),
            SdkError::DispatchFailure(d) => {
                let what = if d.is_timeout() {
                    "timed out"
                } else if d.is_io() {
                    "connection failed"
                } else {
                    "request could not be sent"
                };
                (
                    FaultKind::Dispatch,
                    None,
                    format!("{what}: {}", source_chain(err)),
                )
            }
            SdkError::ResponseError(_) => (
                FaultKind::Response,
                None,
                format!("unreadable answer: {}", source_chain(err)),
            ),
            _ => (
                FaultKind::Construction,
                None,
                format!("request could not be built: {}", source_chain(err)),
            ),
        };
        Self {
            kind,
            status,
            code,
            message,
            retry_after,
        }
    }

    pub fn code(&self) -> &str {
        self.code.as_deref().unwrap_or("")
    }

    /// "code (status): message", for error messages.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        if let Some(c) = &self.code {
            s.push_str(c);
        }
        if let Some(st) = self.status {
            if s.is_empty() {
                s = format!("http {st}");
            } else {
                s.push_str(&format!(" ({st})"));
            }
        }
        if !self.message.is_empty() {
            if !s.is_empty() {
                s.push_str(": ");
            }
            s.push_str(&self.message);
        }
        s
    }
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.contains(&t) {
            parts.push(t);
        }
        cur = s.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

/// How long to wait after a throttling answer that did not say.
pub const THROTTLE_WAIT: Duration = Duration::from_secs(2);

/// The class of a fault by what all AWS services share: throttling, credentials, 5xx, network.
/// `op` names the operation in the message (`iam:DeleteUser`).
pub fn classify(op: &str, f: &Fault) -> ConnectorError {
    let msg = format!("{op}: {}", f.describe());
    match f.kind {
        FaultKind::Timeout => return ConnectorError::retryable("timeout", msg),
        FaultKind::Dispatch => {
            // Missing credentials surface as a dispatch failure before anything is sent.
            if f.message.contains("credentials") {
                return ConnectorError::auth("no_credentials", msg);
            }
            return ConnectorError::retryable("unreachable", msg);
        }
        FaultKind::Response => {
            return if f.status.is_some_and(|s| s >= 500) {
                ConnectorError::retryable("bad_answer", msg)
            } else {
                ConnectorError::permanent("bad_answer", msg)
            }
        }
        FaultKind::Construction => return ConnectorError::permanent("bad_request", msg),
        FaultKind::Service => {}
    }
    match f.code() {
        "Throttling"
        | "ThrottlingException"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "RequestThrottled"
        | "SlowDown" => {
            ConnectorError::rate_limited(f.retry_after.unwrap_or(THROTTLE_WAIT), "throttled", msg)
        }
        "AccessDenied"
        | "AccessDeniedException"
        | "UnauthorizedOperation"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "UnrecognizedClientException"
        | "AuthFailure"
        | "MissingAuthenticationToken"
        | "IncompleteSignature" => ConnectorError::auth("access_denied", msg),
        "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "ServiceFailure"
        | "ServiceException"
        | "InternalFailure"
        | "InternalError"
        | "InternalServerError"
        | "ConcurrentModification"
        | "ConcurrentModificationException"
        | "EntityTemporarilyUnmodifiable"
        | "RequestTimeout"
        | "RequestTimeoutException" => ConnectorError::retryable("service_busy", msg),
        _ => match f.status {
            Some(429) => ConnectorError::rate_limited(
                f.retry_after.unwrap_or(THROTTLE_WAIT),
                "throttled",
                msg,
            ),
            Some(401 | 403) => ConnectorError::auth("access_denied", msg),
            Some(s) if s >= 500 => ConnectorError::new(
                ErrorClass::Retryable {
                    retry_after: f.retry_after,
                },
                "service_error",
                msg,
            ),
            _ => ConnectorError::permanent(snake(f.code()), msg),
        },
    }
}

/// `NoSuchEntity` -> `no_such_entity`, for stable error codes.
pub fn snake(code: &str) -> String {
    let chars: Vec<char> = code.chars().collect();
    let mut out = String::new();
    for (i, &ch) in chars.iter().enumerate() {
        if ch.is_ascii_uppercase() {
            let prev = i.checked_sub(1).map(|j| chars[j]);
            let next = chars.get(i + 1);
            let boundary = prev.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit())
                || (prev.is_some_and(|p| p.is_ascii_uppercase())
                    && next.is_some_and(|n| n.is_ascii_lowercase()));
            if boundary {
                out.push('_');
            }
            out.push(ch.to_ascii_lowercase());
        } else if ch.is_ascii_alphanumeric() {
            out.push(ch);
        } else {
            out.push('_');
        }
    }
    if out.is_empty() {
        "service_error".into()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(f: &Fault) -> (String, String) {
        let e = classify("iam:DeleteUser", f);
        (e.class.name().to_string(), e.code)
    }

    #[test]
    fn shared_codes_have_shared_classes() {
        let cases = [
            (400, "Throttling", "rate_limited", "throttled"),
            (400, "AccessDenied", "auth", "access_denied"),
            (403, "InvalidClientTokenId", "auth", "access_denied"),
            (503, "ServiceUnavailable", "retryable", "service_busy"),
            (409, "ConcurrentModification", "retryable", "service_busy"),
            (500, "Weird", "retryable", "service_error"),
            (429, "Weird", "rate_limited", "throttled"),
            (404, "NoSuchEntity", "permanent", "no_such_entity"),
            (409, "DeleteConflict", "permanent", "delete_conflict"),
        ];
        for (status, code, want_class, want_code) in cases {
            assert_eq!(
                class(&Fault::service(status, code, "m")),
                (want_class.to_string(), want_code.to_string()),
                "{code}"
            );
        }
    }

    #[test]
    fn throttling_waits_as_told_or_two_seconds() {
        let mut f = Fault::service(400, "Throttling", "rate exceeded");
        assert_eq!(
            classify("iam:ListUsers", &f).retry_after(),
            Some(THROTTLE_WAIT)
        );
        f.retry_after = Some(Duration::from_secs(7));
        let e = classify("iam:ListUsers", &f);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(e.message, "iam:ListUsers: Throttling (400): rate exceeded");
    }

    #[test]
    fn network_faults() {
        let f = Fault {
            kind: FaultKind::Dispatch,
            status: None,
            code: None,
            message: "connection failed: refused".into(),
            retry_after: None,
        };
        assert_eq!(class(&f), ("retryable".into(), "unreachable".into()));
        let f = Fault {
            message: "failed to load credentials".into(),
            ..f
        };
        assert_eq!(class(&f), ("auth".into(), "no_credentials".into()));
    }

    #[test]
    fn snake_case_codes() {
        assert_eq!(snake("NoSuchEntity"), "no_such_entity");
        assert_eq!(
            snake("AWSOrganizationsNotInUseException"),
            "aws_organizations_not_in_use_exception"
        );
        assert_eq!(snake(""), "service_error");
    }
}
