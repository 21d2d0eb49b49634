//! Intake: turns one signed HR or IdP webhook into normalized termination events.
//!
//! Pure: no network, no files, no clock, no async. The daemon hands over the raw request
//! pieces ([`Request`], with the current time) and gets an [`Intake`] back, or an
//! [`IntakeError`] that maps to an HTTP status. Every source checks the body size, then
//! authenticates the raw body, and only then parses it. `docs/intake.md` documents
//! each vendor's headers, signature scheme, events and dedup key.

mod auth;
mod config;
mod ctx;
mod describe;
mod error;
mod event;
mod import;
mod kind;
mod norm;
mod request;
mod source;
mod sources;
mod time;

pub use auth::standard_webhooks_sign;
pub use config::validate;
pub use error::{ImportError, IntakeError};
pub use event::{EventKind, Intake, NormalizedEvent, RiskRules};
pub use import::parse_import;
pub use kind::SourceKind;
pub use request::Request;
pub use source::Source;
