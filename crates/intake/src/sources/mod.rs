//! One module per source kind: how it authenticates and what its payload means.

pub(crate) mod bamboohr;
pub(crate) mod generic;
pub(crate) mod gusto;
pub(crate) mod hibob;
pub(crate) mod okta;
pub(crate) mod personio;
pub(crate) mod scim;
pub(crate) mod standard_webhooks;

use crate::config::EventSets;
use crate::ctx::Ctx;
use crate::error::IntakeError;
use crate::event::EventKind;
use crate::request::Request;

/// Hex SHA-256 of one event of a batched delivery (Okta, BambooHR), as parsed and written
/// back: the same event in another batch has the same hash, a changed one another.
pub(crate) fn event_sha256(event: &serde_json::Value) -> String {
    crate::auth::sha256_hex(&serde_json::to_vec(event).unwrap_or_default())
}

/// Maps a vendor event type to what we do with it; `None` is ignored.
pub(crate) fn classify(sets: &EventSets, event_type: &str) -> Option<EventKind> {
    if sets.termination.iter().any(|t| t == event_type) {
        Some(EventKind::Termination)
    } else if sets.cancellation.iter().any(|t| t == event_type) {
        Some(EventKind::Cancellation)
    } else {
        None
    }
}

/// Checks `Authorization: Bearer <token>` against the source's token hashes.
pub(crate) fn check_bearer(src: &Ctx<'_>, req: &Request<'_>) -> Result<(), IntakeError> {
    let value = src.auth_header(req, "authorization")?;
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => {
            return Err(IntakeError::Unauthenticated(
                "header Authorization: expected \"Bearer <token>\", found another scheme"
                    .to_string(),
            ))
        }
    };
    if crate::auth::token_matches(src.token_hashes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(IntakeError::Unauthenticated(
            "header Authorization: expected a configured bearer token, found one that matches none"
                .to_string(),
        ))
    }
}
