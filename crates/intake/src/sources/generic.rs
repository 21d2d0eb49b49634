//! A generic JSON webhook for systems without a dedicated kind: `Authorization: Bearer
//! <token>`, and JSON Pointers (RFC 6901) saying where each field is.

use serde_json::Value;

use crate::auth::sha256_hex;
use crate::config::GenericSpec;
use crate::ctx::Ctx;
use crate::describe::describe;
use crate::error::IntakeError;
use crate::event::{EventKind, Intake};
use crate::norm::{expect_method, finish, opt_bool, opt_string, opt_time, parse_json, Draft};
use crate::request::Request;

fn at<'v>(json: &'v Value, pointer: &Option<String>) -> Option<&'v Value> {
    pointer.as_deref().and_then(|p| json.pointer(p))
}

fn label(pointer: &Option<String>) -> String {
    pointer.clone().unwrap_or_default()
}

pub(crate) fn handle(
    src: &Ctx<'_>,
    req: &Request<'_>,
    g: &GenericSpec,
) -> Result<Intake, IntakeError> {
    expect_method(req, &["POST", "PUT"])?;
    super::check_bearer(src, req)?;
    let body_sha = sha256_hex(req.body);
    let json = parse_json(req.body)?;

    let event_id = match &g.event_id {
        None => body_sha.clone(),
        Some(p) => match opt_string(json.pointer(p), p)? {
            Some(id) if !id.trim().is_empty() => id,
            _ => {
                return Err(IntakeError::Malformed(format!(
                    "field {p} (event_id): expected a non-empty string, found {}",
                    json.pointer(p)
                        .map_or_else(|| "nothing".to_string(), describe)
                )))
            }
        },
    };
    let kind = match &g.event_kind {
        None => EventKind::Termination,
        Some(p) => {
            let value = opt_string(json.pointer(p), p)?.unwrap_or_default();
            if g.termination_values.iter().any(|v| v == &value) {
                EventKind::Termination
            } else if g.cancellation_values.iter().any(|v| v == &value) {
                EventKind::Cancellation
            } else if json.pointer(p).is_none() {
                return Err(IntakeError::Malformed(format!(
                    "field {p} (event_kind): expected one of {:?}, found nothing",
                    g.termination_values
                        .iter()
                        .chain(&g.cancellation_values)
                        .collect::<Vec<_>>()
                )));
            } else {
                return Ok(Intake::Ignored {
                    source_event_id: Some(event_id),
                    reason: format!(
                        "event kind {value:?} is neither a termination nor a cancellation value"
                    ),
                });
            }
        }
    };
    let mut d = Draft::new(kind, event_id);
    d.employee_id = opt_string(at(&json, &g.employee_id), &label(&g.employee_id))?;
    d.email = opt_string(at(&json, &g.email), &label(&g.email))?;
    d.username = opt_string(at(&json, &g.username), &label(&g.username))?;
    d.effective_at = opt_time(at(&json, &g.effective_at), &label(&g.effective_at), src)?;
    d.reason = opt_string(at(&json, &g.reason), &label(&g.reason))?;
    d.department = opt_string(at(&json, &g.department), &label(&g.department))?;
    d.involuntary = opt_bool(at(&json, &g.involuntary), &label(&g.involuntary))?.unwrap_or(false);
    d.high_risk = opt_bool(at(&json, &g.high_risk), &label(&g.high_risk))?;
    Ok(Intake::Event(finish(src, req, &body_sha, d)?))
}
