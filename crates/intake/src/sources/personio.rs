//! Personio webhooks (API v2): `{"company_id", "event_name", "occurred_at", "payload", "meta"}`.
//! Personio's public docs do not describe a signature; we expect a hex HMAC-SHA256 of the body
//! in a configurable header (default `X-Personio-Signature`, an optional `sha256=` prefix is
//! accepted), e.g. added by a signing proxy. See docs/intake.md.

use http::HeaderName;
use serde_json::Value;

use crate::auth::{hex_signature, hmac_sha256_matches, sha256_hex};
use crate::ctx::Ctx;
use crate::error::IntakeError;
use crate::event::{EventKind, Intake};
use crate::norm::{expect_method, finish, opt_string, opt_time, parse_json, req_string, Draft};
use crate::request::Request;

/// The first of several pointers that holds a string (or number).
fn first_string(json: &Value, pointers: &[&str]) -> Result<Option<String>, IntakeError> {
    for p in pointers {
        if let Some(s) = opt_string(json.pointer(p), &p[1..].replace('/', "."))? {
            if !s.trim().is_empty() {
                return Ok(Some(s));
            }
        }
    }
    Ok(None)
}

pub(crate) fn handle(
    src: &Ctx<'_>,
    req: &Request<'_>,
    header: &HeaderName,
) -> Result<Intake, IntakeError> {
    expect_method(req, &["POST"])?;
    let name = header.as_str();
    let sig_text = src.auth_header(req, name)?;
    let sig_text = sig_text.strip_prefix("sha256=").unwrap_or(sig_text);
    let tag = hex_signature(name, sig_text)?;
    if !hmac_sha256_matches(src.hmac_keys(), &[req.body], &[tag]) {
        return Err(IntakeError::Unauthenticated(format!(
            "header {name}: expected the hex HMAC-SHA256 of the body by a configured secret, found one that matches none"
        )));
    }

    let body_sha = sha256_hex(req.body);
    let json = parse_json(req.body)?;
    let event_name = req_string(json.get("event_name"), "event_name")?;
    let occurred_at = opt_string(json.get("occurred_at"), "occurred_at")?;
    let subject_id = first_string(
        &json,
        &[
            "/payload/person/id",
            "/payload/person_id",
            "/payload/employee_id",
            "/payload/id",
        ],
    )?;
    let event_id = match first_string(&json, &["/meta/event_id", "/meta/id", "/id"])? {
        Some(id) => id,
        None => format!(
            "{event_name}:{}:{}",
            first_string(&json, &["/payload/id"])?.unwrap_or_default(),
            occurred_at.clone().unwrap_or_else(|| body_sha.clone())
        ),
    };
    let termination_date = [
        "/payload/termination_date",
        "/payload/termination/date",
        "/payload/termination/termination_date",
    ]
    .iter()
    .find_map(|p| json.pointer(p).filter(|v| !v.is_null()).map(|v| (*p, v)));

    let name_lc = event_name.to_ascii_lowercase();
    let kind = match name_lc.as_str() {
        "employment.terminated" => EventKind::Termination,
        "employment.updated" | "employment.created" if termination_date.is_some() => {
            EventKind::Termination
        }
        _ => {
            return Ok(Intake::Ignored {
                source_event_id: Some(event_id),
                reason: format!(
                    "event {event_name:?} is not employment.terminated nor an employment update with a termination date"
                ),
            })
        }
    };
    let mut d = Draft::new(kind, event_id);
    d.employee_id = subject_id;
    d.email = first_string(&json, &["/payload/email", "/payload/person/email"])?;
    d.effective_at = match termination_date {
        Some((p, v)) => opt_time(Some(v), &p[1..].replace('/', "."), src)?,
        None => None,
    };
    if d.effective_at.is_none() {
        d.effective_at = opt_time(json.get("occurred_at"), "occurred_at", src)?;
    }
    d.reason = first_string(
        &json,
        &["/payload/termination_reason", "/payload/termination/reason"],
    )?;
    let termination_type = first_string(
        &json,
        &["/payload/termination_type", "/payload/termination/type"],
    )?
    .unwrap_or_default()
    .to_lowercase();
    d.involuntary =
        termination_type.contains("involuntary") || termination_type.contains("employer");
    Ok(Intake::Event(finish(src, req, &body_sha, d)?))
}
