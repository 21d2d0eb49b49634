//! A configured source: which system sends events, its secrets, and `handle`, which hands
//! each request to the module of its kind in `sources`.

use std::fmt;

use crate::config::{self, Parsed, Spec};
use crate::ctx::Ctx;
use crate::error::IntakeError;
use crate::event::{Intake, RiskRules};
use crate::kind::SourceKind;
use crate::request::Request;
use crate::sources;

/// A configured source, ready to authenticate and parse requests.
#[derive(Clone)]
pub struct Source {
    name: String,
    parsed: Parsed,
    rules: RiskRules,
}

impl fmt::Debug for Source {
    // Secrets are redacted: only how many there are is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("name", &self.name)
            .field("kind", &self.parsed.kind)
            .field("common", &self.parsed.common)
            .field(
                "secrets",
                &format_args!(
                    "[redacted: {} key(s), {} token hash(es)]",
                    self.parsed.secrets.hmac_keys.len(),
                    self.parsed.secrets.token_hashes.len()
                ),
            )
            .field("spec", &self.parsed.spec)
            .field("rules", &self.rules)
            .finish()
    }
}

impl Source {
    /// Validates and builds a source from its `[intake.<name>]` section; the error lists every
    /// config issue.
    pub fn build(
        name: &str,
        kind: &str,
        params: &serde_json::Value,
        rules: &RiskRules,
    ) -> Result<Source, IntakeError> {
        let path = format!("intake.{name}");
        match config::parse(&path, kind, params) {
            Ok(parsed) => Ok(Source {
                name: name.to_string(),
                parsed,
                rules: rules.clone(),
            }),
            Err(issues) => Err(IntakeError::Config(
                issues
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )),
        }
    }

    /// The configured name, as in `/intake/<name>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Which system this source accepts events from.
    pub fn kind(&self) -> SourceKind {
        self.parsed.kind
    }

    /// The largest body accepted (param `max_body_bytes`, default 262144); the daemon should
    /// stop reading past it.
    pub fn max_body_bytes(&self) -> usize {
        self.parsed.common.max_body_bytes
    }

    /// Authenticates the raw body first, then parses it. Size is checked before anything.
    pub fn handle(&self, req: &Request<'_>) -> Result<Intake, IntakeError> {
        if req.body.len() > self.max_body_bytes() {
            return Err(IntakeError::TooLarge {
                limit: self.max_body_bytes(),
            });
        }
        let ctx = Ctx {
            name: &self.name,
            parsed: &self.parsed,
            rules: &self.rules,
        };
        match &self.parsed.spec {
            Spec::StandardWebhooks => sources::standard_webhooks::handle(&ctx, req),
            Spec::BambooHr(fields) => sources::bamboohr::handle(&ctx, req, fields),
            Spec::HiBob(events) => sources::hibob::handle(&ctx, req, events),
            Spec::Gusto(events) => sources::gusto::handle(&ctx, req, events),
            Spec::Personio { signature_header } => {
                sources::personio::handle(&ctx, req, signature_header)
            }
            Spec::Okta { header, events } => sources::okta::handle(&ctx, req, header, events),
            Spec::Scim { id_is } => sources::scim::handle(&ctx, req, *id_is),
            Spec::Generic(spec) => sources::generic::handle(&ctx, req, spec),
        }
    }
}
