//! What the HTTP connectors (OneLogin, SCIM, Google Workspace, Okta) share: the client every one
//! of them builds the same way, the percent-encoding of untrusted values into URLs, and the
//! classes of the failures that are nobody's vendor's (no answer at all, a body not as documented).
//!
//! The client never retries and never follows a redirect: only the executor retries (a
//! connector classifies each answer itself), and a redirect would carry a bearer token to
//! wherever a server points.

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
    fn the_client_builds_without_the_network() {
        assert!(client(Duration::from_secs(5)).is_ok());
    }
}
