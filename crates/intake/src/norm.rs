//! Shared steps of turning a parsed payload into a `NormalizedEvent`: reading fields with
//! errors that name them, and the final checks every source applies.

use chrono::{DateTime, FixedOffset, Utc};
use serde_json::Value;

use crate::ctx::Ctx;
use crate::describe::describe;
use crate::error::IntakeError;
use crate::event::{EventKind, NormalizedEvent, RiskRules};
use crate::request::Request;
use crate::time::{from_unix, parse_effective, EFFECTIVE_EXPECTED};

/// An event before the checks shared by all sources.
#[derive(Debug, Clone)]
pub(crate) struct Draft {
    pub kind: EventKind,
    pub source_event_id: String,
    pub employee_id: Option<String>,
    pub email: Option<String>,
    pub username: Option<String>,
    /// A departing client's email domain instead of a person (generic sources and imports).
    pub client_domain: Option<String>,
    /// `None`: effective now.
    pub effective_at: Option<DateTime<FixedOffset>>,
    pub reason: Option<String>,
    pub department: Option<String>,
    pub involuntary: bool,
    pub high_risk: Option<bool>,
    pub reply: Option<Value>,
}

impl Draft {
    pub(crate) fn new(kind: EventKind, source_event_id: impl Into<String>) -> Self {
        Self {
            kind,
            source_event_id: source_event_id.into(),
            employee_id: None,
            email: None,
            username: None,
            client_domain: None,
            effective_at: None,
            reason: None,
            department: None,
            involuntary: false,
            high_risk: None,
            reply: None,
        }
    }
}

/// Trims; an empty string is no value. The value is otherwise kept byte for byte: intake
/// never interprets identifiers (`*)(uid=*` stays `*)(uid=*`).
pub(crate) fn clean(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// Longest department kept, in characters; a longer one is cut there.
pub(crate) const MAX_DEPARTMENT_CHARS: usize = 128;

/// A department as batch views show it: trimmed, control characters (a terminal escape in
/// `revokectl batches`) dropped, at most [`MAX_DEPARTMENT_CHARS`]; empty is none. It is a label
/// for counting, never an identifier, so it is cleaned rather than refused.
pub(crate) fn department(v: Option<String>) -> Option<String> {
    let v = v?;
    let kept: String = v
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .chars()
        .take(MAX_DEPARTMENT_CHARS)
        .collect();
    let kept = kept.trim_end().to_string();
    (!kept.is_empty()).then_some(kept)
}

/// Applies the checks every source shares and derives high risk.
pub(crate) fn finish(
    src: &Ctx<'_>,
    req: &Request<'_>,
    body_sha256: &str,
    d: Draft,
) -> Result<NormalizedEvent, IntakeError> {
    build_event(
        src.name,
        src.kind().as_str(),
        src.rules,
        req.now,
        body_sha256,
        d,
    )
}

/// The shared tail of `finish`, also used by the import.
pub(crate) fn build_event(
    source: &str,
    source_kind: &str,
    rules: &RiskRules,
    now: DateTime<Utc>,
    body_sha256: &str,
    d: Draft,
) -> Result<NormalizedEvent, IntakeError> {
    let employee_id = clean(d.employee_id);
    let email = clean(d.email);
    let username = clean(d.username);
    for (field, value) in [
        ("employee_id", &employee_id),
        ("email", &email),
        ("username", &username),
    ] {
        if let Some(v) = value {
            revoke_core::identifier::check(field, v).map_err(|e| {
                IntakeError::Unprocessable(format!("event {:?}: {e}", d.source_event_id))
            })?;
        }
    }
    let client_domain = match clean(d.client_domain) {
        None => None,
        Some(_) if employee_id.is_some() || email.is_some() || username.is_some() => {
            return Err(IntakeError::Unprocessable(format!(
                "event {:?}: expected either a person (employee id, email, username) or a client domain, found both",
                d.source_event_id
            )));
        }
        Some(raw) => Some(
            revoke_core::ClientDomain::parse(&raw)
                .map_err(|e| {
                    IntakeError::Unprocessable(format!("event {:?}: {e}", d.source_event_id))
                })?
                .to_string(),
        ),
    };
    if employee_id.is_none() && email.is_none() && username.is_none() && client_domain.is_none() {
        return Err(IntakeError::Unprocessable(format!(
            "event {:?}: expected an employee id, email or username, found none",
            d.source_event_id
        )));
    }
    let reason = clean(d.reason);
    let high_risk = d.kind == EventKind::Termination
        && rules.is_high(d.involuntary, reason.as_deref(), d.high_risk);
    Ok(NormalizedEvent {
        source: source.to_string(),
        source_kind: source_kind.to_string(),
        source_event_id: d.source_event_id,
        kind: d.kind,
        employee_id,
        email,
        username,
        client_domain,
        effective_at: d.effective_at.unwrap_or_else(|| now.fixed_offset()),
        reason,
        department: department(d.department),
        involuntary: d.involuntary,
        high_risk,
        received_at: now,
        body_sha256: body_sha256.to_string(),
        reply: d.reply,
    })
}

/// Parses the body as JSON, every number literal kept exactly (see [`exact_numbers`]); the
/// error names the problem serde found.
pub(crate) fn parse_json(body: &[u8]) -> Result<Value, IntakeError> {
    let parsed = serde_json::from_slice(body).map_err(|e| {
        IntakeError::Malformed(format!("body: expected JSON, found invalid JSON ({e})"))
    })?;
    Ok(exact_numbers(body, parsed))
}

/// `parsed` (what serde_json made of the valid JSON `text`) with every number whose value
/// would not print back to its literal's digits (an integer beyond i64/u64, `1.50`, `1e3`)
/// replaced by a string of the literal's exact text. A 30-digit employee id is then that
/// id, not `1.2345678901234568e+29`, and two ids that differ past f64 precision stay two
/// ids (and two event ids). Numbers that print back unchanged stay numbers, so a body
/// without such a literal is parsed once. (serde_json's `arbitrary_precision` would do the
/// same, but features unify across the workspace and it changes number handling in every
/// crate.)
pub(crate) fn exact_numbers(text: &[u8], parsed: Value) -> Value {
    let lossy = lossy_literals(text);
    if lossy.is_empty() {
        return parsed;
    }
    let mut quoted = Vec::with_capacity(text.len() + 2 * lossy.len());
    let mut at = 0;
    for r in lossy {
        quoted.extend_from_slice(&text[at..r.start]);
        quoted.push(b'"');
        quoted.extend_from_slice(&text[r.clone()]);
        quoted.push(b'"');
        at = r.end;
    }
    quoted.extend_from_slice(&text[at..]);
    // Valid JSON with a number value quoted is valid JSON; keep what serde made otherwise.
    serde_json::from_slice(&quoted).unwrap_or(parsed)
}

/// Where the number literals of the valid JSON `text` lie that serde_json's value would not
/// print back digit for digit. Outside strings, valid JSON has numbers only as values, each a
/// maximal run of `-+.eE` and digits starting with `-` or a digit.
fn lossy_literals(text: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut in_string = false;
    while let Some(&b) = text.get(i) {
        if in_string {
            match b {
                b'\\' => i += 2,
                b'"' => {
                    in_string = false;
                    i += 1;
                }
                _ => i += 1,
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while text
                    .get(i)
                    .is_some_and(|c| matches!(c, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                {
                    i += 1;
                }
                let literal = &text[start..i];
                let printed = serde_json::from_slice::<Value>(literal).map(|v| v.to_string());
                if printed.is_ok_and(|p| p.as_bytes() != literal) {
                    out.push(start..i);
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// Requires a method; anything else is malformed.
pub(crate) fn expect_method(req: &Request<'_>, allowed: &[&str]) -> Result<(), IntakeError> {
    if allowed.iter().any(|m| req.method.eq_ignore_ascii_case(m)) {
        Ok(())
    } else {
        Err(IntakeError::Malformed(format!(
            "method: expected {}, found {}",
            allowed.join(" or "),
            req.method
        )))
    }
}

fn found(v: Option<&Value>) -> String {
    v.map_or_else(|| "nothing".to_string(), describe)
}

/// A string field; numbers are taken as their literal's exact text (numeric ids; see
/// [`exact_numbers`]). Missing or null is
/// `None`; any other type is malformed.
pub(crate) fn opt_string(v: Option<&Value>, field: &str) -> Result<Option<String>, IntakeError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(IntakeError::Malformed(format!(
            "field {field}: expected a string, found {}",
            describe(other)
        ))),
    }
}

/// A string field that must be there.
pub(crate) fn req_string(v: Option<&Value>, field: &str) -> Result<String, IntakeError> {
    match opt_string(v, field)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(IntakeError::Malformed(format!(
            "field {field}: expected a non-empty string, found {}",
            found(v)
        ))),
    }
}

/// A boolean field: `true`/`false`, or the strings true/false/yes/no/1/0 in any case.
pub(crate) fn opt_bool(v: Option<&Value>, field: &str) -> Result<Option<bool>, IntakeError> {
    let bad = |v: &Value| {
        IntakeError::Malformed(format!(
            "field {field}: expected true or false, found {}",
            describe(v)
        ))
    };
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) => match parse_bool(s) {
            Some(b) => Ok(Some(b)),
            None if s.trim().is_empty() => Ok(None),
            None => Err(bad(&Value::String(s.clone()))),
        },
        Some(Value::Number(n)) => match n.as_u64() {
            Some(0) => Ok(Some(false)),
            Some(1) => Ok(Some(true)),
            _ => Err(bad(&Value::Number(n.clone()))),
        },
        Some(other) => Err(bad(other)),
    }
}

/// true/false/yes/no/1/0, case-insensitive.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "y" => Some(true),
        "false" | "no" | "0" | "n" => Some(false),
        _ => None,
    }
}

/// An effective time field: a string read by `parse_effective`, or a number of unix seconds.
pub(crate) fn opt_time(
    v: Option<&Value>,
    field: &str,
    src: &Ctx<'_>,
) -> Result<Option<DateTime<FixedOffset>>, IntakeError> {
    let common = src.common();
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => parse_effective(s, common.tz, common.date_format.as_deref())
            .map(Some)
            .ok_or_else(|| {
                IntakeError::Malformed(format!(
                    "field {field}: expected {EFFECTIVE_EXPECTED}, found {}",
                    describe(&Value::String(s.clone()))
                ))
            }),
        Some(Value::Number(n)) => n.as_i64().and_then(from_unix).map(Some).ok_or_else(|| {
            IntakeError::Malformed(format!(
                "field {field}: expected unix seconds, found {}",
                describe(&Value::Number(n.clone()))
            ))
        }),
        Some(other) => Err(IntakeError::Malformed(format!(
            "field {field}: expected {EFFECTIVE_EXPECTED}, found {}",
            describe(other)
        ))),
    }
}

/// Looks a key up case-insensitively, trying each candidate name in order.
pub(crate) fn get_ci<'v>(
    obj: &'v serde_json::Map<String, Value>,
    names: &[String],
) -> Option<(&'v str, &'v Value)> {
    for name in names {
        if let Some((k, v)) = obj.get_key_value(name.as_str()) {
            return Some((k.as_str(), v));
        }
        if let Some((k, v)) = obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
            return Some((k.as_str(), v));
        }
    }
    None
}
