//! A configured source as its handler sees it: the name, the parsed section and the risk
//! rules, borrowed from the public `Source` for one request.

use crate::config::{Common, Parsed};
use crate::event::RiskRules;
use crate::kind::SourceKind;

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
}
