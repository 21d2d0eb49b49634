//! Gusto webhooks: `{"uuid", "event_type", "resource_type", "resource_uuid", "entity_type",
//! "entity_uuid", "timestamp"}`, signed with `X-Gusto-Signature` = hex HMAC-SHA256 of the body
//! keyed with the subscription's verification token.

use serde_json::Value;

use crate::auth::{hex_signature, hmac_sha256_matches, sha256_hex};
use crate::config::EventSets;
use crate::ctx::Ctx;
use crate::error::IntakeError;
use crate::event::Intake;
use crate::norm::{expect_method, finish, opt_string, opt_time, parse_json, req_string, Draft};
use crate::request::Request;

const SIGNATURE: &str = "X-Gusto-Signature";
/// The longest body read as a possible verification request (a token of a few dozen
/// characters in `{"verification_token": "..."}`).
const MAX_PROBE_BYTES: usize = 1024;

/// The subscription verification request: `{"verification_token": "..."}` and nothing else.
fn is_verification(body: &[u8]) -> bool {
    // Answered before authentication: nothing longer than a verification request is parsed.
    if body.len() > MAX_PROBE_BYTES {
        return false;
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => {
            m.len() == 1 && m.get("verification_token").is_some_and(Value::is_string)
        }
        _ => false,
    }
}

pub(crate) fn handle(
    src: &Ctx<'_>,
    req: &Request<'_>,
    sets: &EventSets,
) -> Result<Intake, IntakeError> {
    expect_method(req, &["POST"])?;
    if req.headers.get(SIGNATURE).is_none() && is_verification(req.body) {
        // Nothing to act on and nothing proven (unsigned), so a probe; the token (the future
        // secret) is deliberately not repeated.
        return Ok(Intake::Probe {
            reason: "gusto subscription verification request: the token is not logged; copy it from Gusto into this source's secret and verify the subscription".to_string(),
        });
    }
    let sig_text = src.auth_header(req, SIGNATURE)?;
    let tag = hex_signature(SIGNATURE, sig_text)?;
    if !hmac_sha256_matches(src.hmac_keys(), &[req.body], &[tag]) {
        return Err(IntakeError::Unauthenticated(format!(
            "header {SIGNATURE}: expected the hex HMAC-SHA256 of the body by a configured verification token, found one that matches none"
        )));
    }

    let body_sha = sha256_hex(req.body);
    let json = parse_json(req.body)?;
    let event_type = req_string(json.get("event_type"), "event_type")?;
    let entity_uuid = opt_string(json.get("entity_uuid"), "entity_uuid")?;
    let event_id = match opt_string(json.get("uuid"), "uuid")? {
        Some(u) => u,
        None => format!(
            "{event_type}:{}:{}",
            entity_uuid.clone().unwrap_or_default(),
            json.get("timestamp")
                .map(Value::to_string)
                .unwrap_or_default()
        ),
    };
    let entity_type = opt_string(json.get("entity_type"), "entity_type")?;
    if entity_type
        .as_deref()
        .is_some_and(|t| !t.eq_ignore_ascii_case("employee"))
    {
        return Ok(Intake::Ignored {
            source_event_id: Some(event_id),
            reason: format!(
                "entity type {:?} is not an employee",
                entity_type.unwrap_or_default()
            ),
        });
    }
    let Some(kind) = super::classify(sets, &event_type) else {
        return Ok(Intake::Ignored {
            source_event_id: Some(event_id),
            reason: format!("event type {event_type:?} is not a termination or cancellation"),
        });
    };
    let mut d = Draft::new(kind, event_id);
    d.employee_id = entity_uuid;
    // Gusto payloads carry no termination date: the event time is the effective time.
    d.effective_at = opt_time(json.get("timestamp"), "timestamp", src)?;
    Ok(Intake::Event(finish(src, req, &body_sha, d)?))
}
