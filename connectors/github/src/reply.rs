//! One GitHub response, read whole, shared by the client (which makes it) and classify (which
//! judges it).

use http::{HeaderMap, StatusCode};
use revoke_core::ConnectorError;
use serde_json::Value;

/// One response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Result<Value, ConnectorError> {
        serde_json::from_str(&self.body).map_err(|e| {
            ConnectorError::permanent(
                "bad_response",
                format!(
                    "expected json from github, found {} ({e})",
                    excerpt(&self.body)
                ),
            )
        })
    }
}

pub fn excerpt(s: &str) -> String {
    let s = s.trim();
    if s.len() > 200 {
        let mut end = 200;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s.to_string()
    }
}
