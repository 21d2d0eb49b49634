//! A configured source as its handler sees it: the name, the parsed section and the risk
//! rules, borrowed from the public `Source` for one request.

use crate::config::{Common, Parsed};
use crate::error::IntakeError;
use crate::event::RiskRules;
use crate::kind::SourceKind;
use crate::request::Request;

/// What a source's handler and the shared steps of `norm` read about the source.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    /// The configured name, as in `/intake/<name>`.
    pub name: &'a str,
    pub parsed: &'a Parsed,
    pub rules: &'a RiskRules,
}

impl<'a> Ctx<'a> {
    pub(crate) fn kind(&self) -> SourceKind {
        self.parsed.kind
    }

    pub(crate) fn common(&self) -> &'a Common {
        &self.parsed.common
    }

    pub(crate) fn hmac_keys(&self) -> &'a [Vec<u8>] {
        &self.parsed.secrets.hmac_keys
    }

    pub(crate) fn token_hashes(&self) -> &'a [[u8; 32]] {
        &self.parsed.secrets.token_hashes
    }

    /// A header authentication reads (signature, timestamp, id, token): missing, unreadable or
    /// longer than the source's `max_signature_header_bytes` is `Unauthenticated`.
    pub(crate) fn auth_header<'h>(
        &self,
        req: &Request<'h>,
        name: &str,
    ) -> Result<&'h str, IntakeError> {
        crate::auth::auth_header(req.headers, name, self.common().max_signature_header_bytes)
    }
}
