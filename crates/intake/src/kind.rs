//! Which system a source accepts events from, as named by `kind` in config.

use std::fmt;

/// Which system sends events, chosen by `kind` in config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    /// Our own schema, signed per standardwebhooks.com (`revokectl`, scripts).
    StandardWebhooks,
    /// BambooHR field-based webhooks.
    BambooHr,
    /// HiBob (Bob) webhooks v2.
    HiBob,
    /// Gusto webhooks.
    Gusto,
    /// Personio webhooks (API v2).
    Personio,
    /// Okta event hooks.
    Okta,
    /// SCIM 2.0 provisioning from Entra ID or Okta.
    Scim,
    /// Any JSON webhook mapped with JSON Pointers.
    Generic,
}

impl SourceKind {
    /// Every kind, in the order they are documented.
    pub const ALL: [SourceKind; 8] = [
        SourceKind::StandardWebhooks,
        SourceKind::BambooHr,
        SourceKind::HiBob,
        SourceKind::Gusto,
        SourceKind::Personio,
        SourceKind::Okta,
        SourceKind::Scim,
        SourceKind::Generic,
    ];

    /// The kind named by a config string; exact, lowercase.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The config string of this kind.
    pub fn as_str(&self) -> &'static str {
        match self {
            SourceKind::StandardWebhooks => "standard_webhooks",
            SourceKind::BambooHr => "bamboohr",
            SourceKind::HiBob => "hibob",
            SourceKind::Gusto => "gusto",
            SourceKind::Personio => "personio",
            SourceKind::Okta => "okta",
            SourceKind::Scim => "scim",
            SourceKind::Generic => "generic",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
