//! HiBob (Bob) webhooks v2: `{"companyId", "type", "triggeredBy", "triggeredAt", "version",
//! "data": {"employeeId", ...}}`, signed with `Bob-Signature` = base64 HMAC-SHA512 of the body.

use chrono::TimeZone;
use serde_json::Value;

use crate::auth::{base64_signature, hmac_sha512_matches, sha256_hex};
use crate::config::EventSets;
use crate::ctx::Ctx;
use crate::error::IntakeError;
use crate::event::Intake;
use crate::norm::{expect_method, finish, opt_string, parse_json, req_string, Draft};
use crate::request::Request;
use crate::time::{parse_naive, parse_with_offset};

const SIGNATURE: &str = "Bob-Signature";
/// The longest body read as a possible connection test (`{"text": "Ping test"}` with room for
/// whitespace).
const MAX_PROBE_BYTES: usize = 256;

/// Bob's connection test: `Ping test` as plain text, or `{"text":"Ping test"}`.
fn is_ping(body: &[u8]) -> bool {
    // Answered before authentication: nothing longer than a ping is even parsed.
    if body.len() > MAX_PROBE_BYTES {
        return false;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.eq_ignore_ascii_case("ping test") {
        return true;
    }
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("text").and_then(Value::as_str).map(str::to_string))
        .is_some_and(|t| t.eq_ignore_ascii_case("ping test"))
}

pub(crate) fn handle(
    src: &Ctx<'_>,
    req: &Request<'_>,
    sets: &EventSets,
) -> Result<Intake, IntakeError> {
    expect_method(req, &["POST"])?;
    // The connection test carries nothing to act on; it is answered even unsigned so that
    // Bob can establish the webhook, as a probe: nothing about it is stored.
    if is_ping(req.body) {
        return Ok(Intake::Probe {
            reason: "hibob connection test".to_string(),
        });
    }
    let sig_text = src.auth_header(req, SIGNATURE)?;
    let tag = base64_signature(SIGNATURE, sig_text)?;
    if !hmac_sha512_matches(src.hmac_keys(), &[req.body], &[tag]) {
        return Err(IntakeError::Unauthenticated(format!(
            "header {SIGNATURE}: expected the base64 HMAC-SHA512 of the body by a configured secret, found one that matches none"
        )));
    }

    let body_sha = sha256_hex(req.body);
    let json = parse_json(req.body)?;
    let event_type = req_string(json.get("type"), "type")?;
    let data = json.get("data").unwrap_or(&Value::Null);
    let employee = data.get("employee").unwrap_or(&Value::Null);
    let employee_id = match opt_string(data.get("employeeId"), "data.employeeId")? {
        Some(id) => Some(id),
        None => opt_string(employee.get("id"), "data.employee.id")?,
    };
    let triggered_at = opt_string(json.get("triggeredAt"), "triggeredAt")?;
    let event_id = match opt_string(json.get("id"), "id")? {
        Some(id) => id,
        None => format!(
            "{event_type}:{}:{}",
            employee_id.clone().unwrap_or_default(),
            triggered_at.clone().unwrap_or_else(|| body_sha.clone())
        ),
    };
    let Some(kind) = super::classify(sets, &event_type) else {
        return Ok(Intake::Ignored {
            source_event_id: Some(event_id),
            reason: format!("event type {event_type:?} is not a termination or cancellation"),
        });
    };
    let effective_at = match triggered_at.as_deref() {
        None => None,
        // Bob sends triggeredAt without an offset; it is read as UTC.
        Some(t) => match parse_with_offset(t) {
            Some(t) => Some(t),
            None => Some(
                parse_naive(t)
                    .map(|n| chrono::Utc.from_utc_datetime(&n).fixed_offset())
                    .ok_or_else(|| {
                        IntakeError::Malformed(format!(
                            "field triggeredAt: expected an ISO 8601 time, found {:?}",
                            t.chars().take(40).collect::<String>()
                        ))
                    })?,
            ),
        },
    };
    let mut d = Draft::new(kind, event_id);
    d.employee_id = employee_id;
    d.email = match opt_string(data.get("email"), "data.email")? {
        Some(e) => Some(e),
        None => match opt_string(data.get("workEmail"), "data.workEmail")? {
            Some(e) => Some(e),
            None => opt_string(employee.get("email"), "data.employee.email")?,
        },
    };
    d.effective_at = effective_at;
    d.reason = opt_string(data.get("reason"), "data.reason")?;
    Ok(Intake::Event(finish(src, req, &body_sha, d)?))
}
