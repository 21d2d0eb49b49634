//! Okta event hooks: a one-time `GET` verification with `X-Okta-Verification-Challenge`, then
//! `POST`s of `{"eventId", "data": {"events": [...]}}`. Okta does not sign; it sends a
//! configured header (default `Authorization`) whose value is the shared secret.

use http::HeaderName;
use serde_json::{json, Value};

use super::event_sha256;
use crate::auth::{sha256_hex, token_matches};
use crate::config::EventSets;
use crate::ctx::Ctx;
use crate::describe::describe;
use crate::error::IntakeError;
use crate::event::Intake;
use crate::norm::{expect_method, finish, opt_string, opt_time, parse_json, Draft};
use crate::request::Request;

const CHALLENGE: &str = "X-Okta-Verification-Challenge";

pub(crate) fn handle(
    src: &Ctx<'_>,
    req: &Request<'_>,
    header: &HeaderName,
    sets: &EventSets,
) -> Result<Intake, IntakeError> {
    expect_method(req, &["GET", "POST"])?;
    let name = header.as_str();
    let presented = src.auth_header(req, name)?;
    if !token_matches(src.token_hashes(), presented.as_bytes()) {
        return Err(IntakeError::Unauthenticated(format!(
            "header {name}: expected the configured secret, found a value that matches none"
        )));
    }
    if req.method.eq_ignore_ascii_case("GET") {
        let challenge = req
            .headers
            .get(CHALLENGE)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                IntakeError::Malformed(format!(
                    "header {CHALLENGE}: expected the verification challenge on a GET, found nothing"
                ))
            })?;
        return Ok(Intake::Challenge(json!({ "verification": challenge })));
    }

    let body_sha = sha256_hex(req.body);
    let payload = parse_json(req.body)?;
    let delivery = opt_string(payload.get("eventId"), "eventId")?;
    let events = match payload.pointer("/data/events") {
        Some(Value::Array(list)) => list,
        other => {
            return Err(IntakeError::Malformed(format!(
                "field data.events: expected a list of events, found {}",
                other.map_or_else(|| "nothing".to_string(), describe)
            )))
        }
    };
    let mut out = Vec::new();
    let mut reasons = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let label = format!("data.events[{i}]");
        let event_type =
            opt_string(e.get("eventType"), &format!("{label}.eventType"))?.unwrap_or_default();
        let uuid = match opt_string(e.get("uuid"), &format!("{label}.uuid"))? {
            Some(u) => u,
            None => format!(
                "{}:{i}",
                delivery.clone().unwrap_or_else(|| body_sha.clone())
            ),
        };
        let Some(kind) = super::classify(sets, &event_type) else {
            reasons.push(format!("event {uuid}: type {event_type:?} is not acted on"));
            continue;
        };
        let outcome = opt_string(
            e.pointer("/outcome/result"),
            &format!("{label}.outcome.result"),
        )?;
        if outcome
            .as_deref()
            .is_some_and(|r| !r.eq_ignore_ascii_case("success"))
        {
            reasons.push(format!(
                "event {uuid}: outcome {:?}, not a success",
                outcome.unwrap_or_default()
            ));
            continue;
        }
        let user = match e.get("target") {
            Some(Value::Array(targets)) => targets
                .iter()
                .find(|t| t.get("type").and_then(Value::as_str) == Some("User")),
            _ => None,
        };
        let mut d = Draft::new(kind, uuid);
        if let Some(user) = user {
            let login = opt_string(
                user.get("alternateId"),
                &format!("{label}.target.alternateId"),
            )?;
            d.email = login.clone().filter(|l| l.contains('@'));
            d.username = login;
        }
        d.effective_at = opt_time(e.get("published"), &format!("{label}.published"), src)?;
        // One delivery may batch several events, and an event may come again in another
        // batch: each event is deduplicated (and a changed one refused) by its own hash.
        out.push(finish(src, req, &event_sha256(e), d)?);
    }
    Ok(Intake::from_events(out, delivery, &reasons))
}
