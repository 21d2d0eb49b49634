//! What the HTTP connectors (OneLogin, SCIM, Google Workspace, Okta, Entra ID, Vault, Kubernetes,
//! the HTTP connector) share: the client every one of them builds the same way, the
//! percent-encoding of untrusted values into URLs, an answer read in full ([`Reply`]) and its
//! excerpt for messages, the classes of the failures that are nobody's vendor's (no answer at all,
//! a body not as documented), and signed JWTs for key-based credentials ([`jwt`]). What an answer
//! means is each connector's own: it reads a [`Reply`] through a trait of its classify.rs.
//!
//! The client never retries and never follows a redirect: only the executor retries (a
//! connector classifies each answer itself), and a redirect would carry a bearer token to
//! wherever a server points.

pub mod jwt;

use std::sync::Arc;
use std::time::Duration;

use revoke_core::ConnectorError;
use rustls::{ClientConfig, RootCertStore};

/// The TLS settings: the system's roots, with the ring provider named explicitly.
pub fn tls_config() -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The builder of [`client`], for a connector that adds to it (default headers).
pub fn builder(timeout: Duration) -> Result<reqwest::ClientBuilder, String> {
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config()?)
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never())
        .user_agent(concat!("revoked/", env!("CARGO_PKG_VERSION"))))
}

/// An HTTP client with `timeout` per request (connecting: at most 10 s of it), no redirects,
/// no retries, and revoked's user agent; makes no network call.
pub fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    builder(timeout)?
        .build()
        .map_err(|e| format!("cannot build the http client: {e}"))
}

/// Percent-encodes a query value or path segment: everything but RFC 3986 unreserved
/// characters, so `../x` stays one segment and `&`, `=`, `#`, `?` stay inside their value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One answer, read in full (a batch part too): what a connector's classify.rs judges.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Reply {
    /// The body as JSON; `None` when it is not JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.body).ok()
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// The first 200 characters of a body, on one line, for an error message.
pub fn excerpt(body: &str) -> String {
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(200) {
        Some((at, _)) => format!("{}...", &one_line[..at]),
        None => one_line,
    }
}

/// A request that never got an answer: a request we could not build is permanent, a timeout
/// or a lost connection retryable. `e` should come `without_url()`, so no token in a query
/// string reaches a log.
pub fn transport(method: &reqwest::Method, path: &str, e: &reqwest::Error) -> ConnectorError {
    let msg = format!("{method} {path}: {e}");
    if e.is_builder() {
        ConnectorError::permanent("bad_request", msg)
    } else if e.is_timeout() {
        ConnectorError::retryable("timeout", msg)
    } else {
        ConnectorError::retryable("connection", msg)
    }
}

/// An answer whose body is not what the vendor documents.
pub fn bad_response(method: &reqwest::Method, path: &str, what: &str) -> ConnectorError {
    ConnectorError::permanent("bad_response", format!("{method} {path}: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unreserved_characters_are_left_as_they_are() {
        assert_eq!(encode("a-Z.0_~"), "a-Z.0_~");
        assert_eq!(encode("../x"), "..%2Fx");
        assert_eq!(encode("a b&c=d#?"), "a%20b%26c%3Dd%23%3F");
        assert_eq!(encode("é"), "%C3%A9");
    }

    #[test]
    fn an_excerpt_is_one_line_of_at_most_200_characters() {
        assert_eq!(excerpt("a\n  b\tc"), "a b c");
        let long = "é".repeat(250);
        let e = excerpt(&long);
        assert_eq!(e.chars().count(), 203);
        assert!(e.ends_with("..."));
    }

    #[test]
    fn a_reply_reads_its_body_as_json_when_it_is_json() {
        let r = Reply {
            status: 204,
            headers: reqwest::header::HeaderMap::new(),
            body: String::new(),
        };
        assert!(r.is_success() && r.json().is_none());
        let r = Reply {
            status: 404,
            body: r#"{"error":"x"}"#.into(),
            ..r
        };
        assert!(!r.is_success());
        assert_eq!(
            r.json()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .as_deref(),
            Some("x")
        );
    }

    #[test]
    fn the_client_builds_without_the_network() {
        assert!(client(Duration::from_secs(5)).is_ok());
    }
}
