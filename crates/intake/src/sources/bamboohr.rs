//! BambooHR field-based (global) webhooks: `{"employees": [{"id", "action", "timestamp",
//! "changedFields", "fields"}]}`, signed with `X-BambooHR-Signature` = hex HMAC-SHA256 of the
//! raw body followed by the `X-BambooHR-Timestamp` value.

use serde_json::{Map, Value};

use super::event_sha256;
use crate::auth::{check_tolerance, hex_signature, hmac_sha256_matches, sha256_hex};
use crate::config::BambooFields;
use crate::ctx::Ctx;
use crate::describe::describe;
use crate::error::IntakeError;
use crate::event::{EventKind, Intake};
use crate::norm::{expect_method, finish, get_ci, opt_string, parse_json, Draft};
use crate::request::Request;
use crate::time::{parse_effective, parse_instant, parse_with_offset, EFFECTIVE_EXPECTED};

const SIGNATURE: &str = "X-BambooHR-Signature";
const TIMESTAMP: &str = "X-BambooHR-Timestamp";

/// One value of a posted field: a string, a number, or `{"value": ...}`.
fn field_value(
    fields: &Map<String, Value>,
    names: &[String],
    label: &str,
) -> Result<Option<(String, String)>, IntakeError> {
    let Some((key, v)) = get_ci(fields, names) else {
        return Ok(None);
    };
    let inner = match v {
        Value::Object(o) => o.get("value"),
        other => Some(other),
    };
    let text = opt_string(inner, &format!("{label}.fields.{key}"))?;
    Ok(text.map(|t| (key.to_string(), t.trim().to_string())))
}

pub(crate) fn handle(
    src: &Ctx<'_>,
    req: &Request<'_>,
    f: &BambooFields,
) -> Result<Intake, IntakeError> {
    expect_method(req, &["POST"])?;
    let sig_text = src.auth_header(req, SIGNATURE)?;
    let ts_text = src.auth_header(req, TIMESTAMP)?;
    let sent = parse_instant(ts_text).ok_or_else(|| {
        IntakeError::Unauthenticated(format!(
            "header {TIMESTAMP}: expected unix seconds or an ISO 8601 time with offset, found {:?}",
            ts_text.chars().take(40).collect::<String>()
        ))
    })?;
    check_tolerance(TIMESTAMP, sent, req.now, src.common().tolerance_secs)?;
    let tag = hex_signature(SIGNATURE, sig_text)?;
    if !hmac_sha256_matches(src.hmac_keys(), &[req.body, ts_text.as_bytes()], &[tag]) {
        return Err(IntakeError::Unauthenticated(format!(
            "header {SIGNATURE}: expected the HMAC-SHA256 of body + timestamp by a configured secret, found one that matches none"
        )));
    }

    let body_sha = sha256_hex(req.body);
    if req.body.starts_with(b"employees[") || req.body.starts_with(b"type=") {
        return Err(IntakeError::Malformed(
            "body: expected JSON, found form-encoded data (set the BambooHR webhook format to JSON)"
                .to_string(),
        ));
    }
    let json = parse_json(req.body)?;
    let employees = match json.get("employees") {
        Some(Value::Array(list)) => list,
        None if json.get("type").is_some() => {
            return Ok(Intake::Ignored {
                source_event_id: None,
                reason: "bamboohr event-based payloads carry no field values; configure a field-based webhook that posts Status, Employment Status and Termination Date".to_string(),
            })
        }
        other => {
            return Err(IntakeError::Malformed(format!(
                "field employees: expected a list of employees, found {}",
                other.map_or_else(|| "nothing".to_string(), describe)
            )))
        }
    };

    let mut events = Vec::new();
    let mut reasons = Vec::new();
    for (i, entry) in employees.iter().enumerate() {
        let label = format!("employees[{i}]");
        let Some(obj) = entry.as_object() else {
            return Err(IntakeError::Malformed(format!(
                "field {label}: expected a table, found {}",
                describe(entry)
            )));
        };
        let entry_id = match obj.get("id") {
            Some(v) => opt_string(Some(v), &format!("{label}.id"))?,
            None => opt_string(obj.get("employeeId"), &format!("{label}.employeeId"))?,
        };
        let empty = Map::new();
        let fields = match obj.get("fields") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(m)) => m,
            Some(other) => {
                return Err(IntakeError::Malformed(format!(
                    "field {label}.fields: expected a table, found {}",
                    describe(other)
                )))
            }
        };
        let changed: Vec<&str> = match obj.get("changedFields") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            Some(other) => {
                return Err(IntakeError::Malformed(format!(
                    "field {label}.changedFields: expected a list of field names, found {}",
                    describe(other)
                )))
            }
        };
        let action = opt_string(obj.get("action"), &format!("{label}.action"))?;
        let who = entry_id.clone().unwrap_or_else(|| format!("#{i}"));
        if action
            .as_deref()
            .is_some_and(|a| a.eq_ignore_ascii_case("deleted"))
        {
            reasons.push(format!("employee {who}: record deleted, not a termination"));
            continue;
        }

        let status = field_value(fields, &f.status, &label)?;
        let employment_status = field_value(fields, &f.employment_status, &label)?;
        let date = field_value(fields, &f.termination_date, &label)?;
        let changed_any = |key: Option<&str>, names: &[String]| {
            changed.iter().any(|c| {
                key.is_some_and(|k| c.eq_ignore_ascii_case(k))
                    || names.iter().any(|n| c.eq_ignore_ascii_case(n))
            })
        };
        let status_changed = changed_any(status.as_ref().map(|s| s.0.as_str()), &f.status);
        let employment_changed = changed_any(
            employment_status.as_ref().map(|s| s.0.as_str()),
            &f.employment_status,
        );
        let date_changed = changed_any(date.as_ref().map(|s| s.0.as_str()), &f.termination_date);
        let relevant = changed.is_empty() || status_changed || employment_changed || date_changed;

        let inactive = status
            .as_ref()
            .is_some_and(|s| s.1.eq_ignore_ascii_case("inactive"));
        let active = status
            .as_ref()
            .is_some_and(|s| s.1.eq_ignore_ascii_case("active"));
        let terminated_status = employment_status
            .as_ref()
            .is_some_and(|s| s.1.to_lowercase().contains("terminat"));
        let date_text = date.as_ref().map(|d| d.1.clone()).filter(|d| !d.is_empty());
        let date_cleared = date.is_some() && date_text.is_none() && date_changed;

        let kind = if (active && status_changed) || date_cleared {
            EventKind::Cancellation
        } else if relevant
            && (inactive
                || terminated_status
                || (date_text.is_some() && (date_changed || changed.is_empty())))
        {
            EventKind::Termination
        } else {
            reasons.push(format!(
                "employee {who}: no termination in the changed fields"
            ));
            continue;
        };

        let change_ts = opt_string(obj.get("timestamp"), &format!("{label}.timestamp"))?;
        let effective_at = match (&date_text, kind) {
            (Some(d), EventKind::Termination) => {
                let c = src.common();
                Some(
                    parse_effective(d, c.tz, c.date_format.as_deref()).ok_or_else(|| {
                        IntakeError::Malformed(format!(
                            "field {label}.fields.{}: expected {EFFECTIVE_EXPECTED}, found {}",
                            date.as_ref().map_or("Termination Date", |d| d.0.as_str()),
                            describe(&Value::String(d.clone()))
                        ))
                    })?,
                )
            }
            _ => change_ts.as_deref().and_then(parse_with_offset),
        };
        let stamp = change_ts
            .clone()
            .unwrap_or_else(|| body_sha.chars().take(16).collect());
        let event_id = format!(
            "{who}:{}:{}:{stamp}",
            kind.as_str(),
            date_text.clone().unwrap_or_default()
        );
        let mut d = Draft::new(kind, event_id);
        d.employee_id = match &f.employee_id {
            Some(name) => field_value(fields, std::slice::from_ref(name), &label)?.map(|v| v.1),
            None => entry_id.clone(),
        };
        d.email = field_value(fields, &f.email, &label)?.map(|v| v.1);
        d.username = field_value(fields, &f.username, &label)?.map(|v| v.1);
        d.effective_at = effective_at;
        d.reason = field_value(fields, &f.termination_reason, &label)?.map(|v| v.1);
        d.department = field_value(fields, &f.department, &label)?.map(|v| v.1);
        d.involuntary = field_value(fields, &f.termination_type, &label)?
            .is_some_and(|t| t.1.to_lowercase().contains("involuntary"));
        // A batch may carry the same employee's change again with others: each event is
        // deduplicated (and a changed one refused) by its own hash.
        events.push(finish(src, req, &event_sha256(entry), d)?);
    }
    Ok(Intake::from_events(events, None, &reasons))
}
