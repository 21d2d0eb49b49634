//! Standard Webhooks (standardwebhooks.com): our own event schema, signed the Standard
//! Webhooks way. `revokectl` and any HR tool with a Standard Webhooks sender can use it.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;

use crate::auth::{check_tolerance, hmac_sha256_matches, sha256_hex};
use crate::ctx::Ctx;
use crate::describe::describe;
use crate::error::IntakeError;
use crate::event::{EventKind, Intake};
use crate::norm::{
    expect_method, finish, opt_bool, opt_string, opt_time, parse_json, req_string, Draft,
};
use crate::request::Request;

pub(crate) const TERMINATED: &str = "employee.terminated";
pub(crate) const CANCELLED: &str = "employee.termination_cancelled";

/// Verifies `webhook-id`, `webhook-timestamp` and `webhook-signature`, then reads
/// `{"type", "data": {...}}`.
pub(crate) fn handle(src: &Ctx<'_>, req: &Request<'_>) -> Result<Intake, IntakeError> {
    expect_method(req, &["POST"])?;
    let id = src.auth_header(req, "webhook-id")?;
    let ts_text = src.auth_header(req, "webhook-timestamp")?;
    let sigs = src.auth_header(req, "webhook-signature")?;
    // Counted before anything is decoded or any MAC computed: an unsigned request may list
    // entries, but not make us work per entry beyond this bound.
    let max = src.common().max_signatures;
    let listed = sigs.split_whitespace().count();
    if listed > max {
        return Err(IntakeError::Unauthenticated(format!(
            "header webhook-signature: expected at most {max} signatures, found {listed}"
        )));
    }
    let ts: i64 = ts_text.parse().map_err(|_| {
        IntakeError::Unauthenticated(format!(
            "header webhook-timestamp: expected unix seconds, found {:?}",
            ts_text.chars().take(40).collect::<String>()
        ))
    })?;
    let sent = chrono::DateTime::from_timestamp(ts, 0).ok_or_else(|| {
        IntakeError::Unauthenticated(format!(
            "header webhook-timestamp: expected unix seconds, found {ts} which is out of range"
        ))
    })?;
    check_tolerance(
        "webhook-timestamp",
        sent,
        req.now,
        src.common().tolerance_secs,
    )?;

    let mut saw_v1 = false;
    let mut candidates = Vec::new();
    for part in sigs.split_whitespace() {
        let Some((version, b64)) = part.split_once(',') else {
            continue;
        };
        if version != "v1" {
            continue;
        }
        saw_v1 = true;
        if let Ok(tag) = STANDARD.decode(b64) {
            candidates.push(tag);
        }
    }
    if !saw_v1 {
        return Err(IntakeError::Unauthenticated(
            "header webhook-signature: expected \"v1,<base64>\" entries, found none".to_string(),
        ));
    }
    // One MAC per configured secret, compared with every candidate.
    if !hmac_sha256_matches(
        src.hmac_keys(),
        &[id.as_bytes(), b".", ts_text.as_bytes(), b".", req.body],
        &candidates,
    ) {
        return Err(IntakeError::Unauthenticated(
            "header webhook-signature: expected a v1 signature by a configured secret, found none that matches"
                .to_string(),
        ));
    }

    let body_sha = sha256_hex(req.body);
    let json = parse_json(req.body)?;
    let event_type = req_string(json.get("type"), "type")?;
    let kind = match event_type.as_str() {
        TERMINATED => EventKind::Termination,
        CANCELLED => EventKind::Cancellation,
        other => {
            return Ok(Intake::Ignored {
                source_event_id: Some(id.to_string()),
                reason: format!("event type {other:?} is neither {TERMINATED:?} nor {CANCELLED:?}"),
            })
        }
    };
    let data = match json.get("data") {
        Some(Value::Object(m)) => m,
        other => {
            return Err(IntakeError::Malformed(format!(
                "field data: expected a table, found {}",
                other.map_or_else(|| "nothing".to_string(), describe)
            )))
        }
    };
    let mut d = Draft::new(kind, id);
    d.employee_id = opt_string(data.get("employee_id"), "data.employee_id")?;
    d.email = opt_string(data.get("email"), "data.email")?;
    d.username = opt_string(data.get("username"), "data.username")?;
    d.client_domain = opt_string(data.get("client_domain"), "data.client_domain")?;
    d.effective_at = opt_time(data.get("effective_at"), "data.effective_at", src)?;
    d.reason = opt_string(data.get("reason"), "data.reason")?;
    d.department = opt_string(data.get("department"), "data.department")?;
    d.involuntary = opt_bool(data.get("involuntary"), "data.involuntary")?.unwrap_or(false);
    d.high_risk = opt_bool(data.get("high_risk"), "data.high_risk")?;
    Ok(Intake::Event(finish(src, req, &body_sha, d)?))
}
