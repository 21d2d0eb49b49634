//! The raw pieces of one HTTP request, as the daemon hands them over.

use std::fmt;

use chrono::{DateTime, Utc};
use http::HeaderMap;

/// The raw pieces of one HTTP request, as the daemon received them.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// `POST`, `GET` (Okta verification, SCIM look-ups), `PATCH`, `PUT`.
    pub method: &'a str,
    /// The path after `/intake/<name>`, query included: `""` or `/scim/v2/Users/2819c223`.
    pub path: &'a str,
    /// All request headers; signatures and tokens are read from them.
    pub headers: &'a HeaderMap,
    /// The raw body, exactly as received: signatures cover these bytes.
    pub body: &'a [u8],
    /// Used for timestamp tolerance and `received_at`.
    pub now: DateTime<Utc>,
}

impl fmt::Debug for Request<'_> {
    // Header values may carry bearer tokens: only their names are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .field(
                "headers",
                &self.headers.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            )
            .field("body_len", &self.body.len())
            .field("now", &self.now)
            .finish()
    }
}
