//! Every answer to a class, from the definition's rules only.
//!
//! An action's answer goes through its `outcomes` rules in order, the first match wins; an
//! answer no rule matches is the permanent `unclassified_answer` (never success). The answers
//! of reads (discovery, the read by id, verify) are classified the same way for every
//! definition: 2xx is an answer, 429 is `rate_limited`, 5xx `retryable`, 401 and 403 `auth`,
//! anything else permanent. `retry` and `rate_limited` wait for the answer's Retry-After (seconds
//! or an HTTP date) or X-RateLimit-Reset (seconds to wait, or an epoch time when above 10^9),
//! else the rule's `retry_after_secs`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use reqwest::Method;
use revoke_core::{ConnectorError, ErrorClass, Outcome};
use serde_json::Value;

use crate::config::{Case, OutcomeRule, Predicate, Result_, StatusRule};
use crate::jsonpath::{scalar_text, JsonPath};
use crate::template::{render, Position, Var};

/// Code of an answer no outcome rule matched.
pub const E_UNCLASSIFIED: &str = "unclassified_answer";
/// Code of a 429 or of a rule's `rate_limited` without its own code.
pub const E_RATE_LIMIT: &str = "rate_limited";

pub use revoke_http::{excerpt, Reply};

/// An answer read in full; a body cut off while it was read counts as empty (the status has
/// arrived, and the rules judge by it).
pub async fn read(resp: reqwest::Response) -> Reply {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.text().await.unwrap_or_default();
    Reply {
        status,
        headers,
        body,
    }
}

fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The wait an answer asks for: Retry-After (seconds or an HTTP date), else X-RateLimit-Reset,
/// else X-Retry-After (Docker Hub's; each seconds, or an epoch time when above 10^9); at least
/// one second.
pub fn wait_of(headers: &HeaderMap) -> Option<Duration> {
    let num = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|n| n.is_finite() && *n >= 0.0)
    };
    let date = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| chrono::DateTime::parse_from_rfc2822(s.trim()).ok())
        .map(|d| d.timestamp() as f64 - now_epoch());
    let secs = if let Some(s) = num("retry-after") {
        s
    } else if let Some(s) = date {
        s
    } else if let Some(r) = num("x-ratelimit-reset").or_else(|| num("x-retry-after")) {
        if r > 1e9 {
            r - now_epoch()
        } else {
            r
        }
    } else {
        return None;
    };
    Some(Duration::from_secs_f64(secs.clamp(1.0, 86_400.0)))
}

fn str_eq(a: &str, b: &str, case: Case) -> bool {
    match case {
        Case::Exact => a == b,
        Case::Insensitive => a.to_lowercase() == b.to_lowercase(),
    }
}

fn value_eq(a: &Value, b: &Value, case: Case) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => str_eq(x, y, case),
        // TOML has no null and integers come back as numbers either way.
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Whether the predicate holds on `body` (None: not JSON, where nothing holds but
/// `exists = false`).
pub fn holds(p: &Predicate, body: Option<&Value>) -> bool {
    holds_with(p, body, &|_| None)
}

/// A predicate's string values with their templates rendered (a value naming a variable
/// without a value stays as written, and so matches nothing that names it).
fn rendered_value(v: &Value, value: &dyn Fn(&Var) -> Option<String>) -> Value {
    match v {
        Value::String(s) if s.contains("{{") => {
            Value::String(render(s, value, Position::Raw).unwrap_or_else(|_| s.clone()))
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| rendered_value(x, value)).collect()),
        other => other.clone(),
    }
}

/// [`holds`] with the predicate's values rendered with `value` first.
pub fn holds_with(
    p: &Predicate,
    body: Option<&Value>,
    value: &dyn Fn(&Var) -> Option<String>,
) -> bool {
    let r = |v: &Option<Value>| v.as_ref().map(|x| rendered_value(x, value));
    // A templated value is text (ids are captured as their decimal text): it equals a number
    // or a boolean in the answer whose text it is (`{{parent.id}}` = 7).
    let templated = |v: &Value| matches!(v, Value::String(s) if s.contains("{{"));
    let eq = |found: &Value, want: &Value, was: &Value, case: Case| {
        if templated(was) {
            if let (Some(t), Value::String(w)) = (scalar_text(found), want) {
                return str_eq(&t, w, case);
            }
        }
        value_eq(found, want, case)
    };
    let orig = p;
    let p = &Predicate {
        path: p.path.clone(),
        equals: r(&p.equals),
        not_equals: r(&p.not_equals),
        one_of: p
            .one_of
            .as_ref()
            .map(|l| l.iter().map(|x| rendered_value(x, value)).collect()),
        all_in: p
            .all_in
            .as_ref()
            .map(|l| l.iter().map(|x| rendered_value(x, value)).collect()),
        exists: p.exists,
        case: p.case,
    };
    let Ok(path) = JsonPath::parse(&p.path) else {
        return false;
    };
    let found = body.map(|b| path.select(b)).unwrap_or_default();
    if let Some(e) = p.exists {
        return found.is_empty() != e;
    }
    if let (Some(want), Some(was)) = (&p.equals, &orig.equals) {
        return found.iter().any(|v| eq(v, want, was, p.case));
    }
    if let (Some(no), Some(was)) = (&p.not_equals, &orig.not_equals) {
        // No value at the path equals it (also when there is none).
        return found.iter().all(|v| !eq(v, no, was, p.case));
    }
    if let (Some(set), Some(was)) = (&p.one_of, &orig.one_of) {
        return found
            .iter()
            .any(|v| set.iter().zip(was).any(|(w, o)| eq(v, w, o, p.case)));
    }
    if let (Some(set), Some(was)) = (&p.all_in, &orig.all_in) {
        // At least one value, and each in the set (an empty or missing list proves nothing).
        return !found.is_empty()
            && found
                .iter()
                .all(|v| set.iter().zip(was).any(|(w, o)| eq(v, w, o, p.case)));
    }
    false
}

fn status_matches(status: Option<&Vec<u16>>, s: u16) -> bool {
    status.is_none_or(|l| l.contains(&s))
}

/// Whether a verify rule matches the answer.
pub fn status_rule_matches(
    r: &StatusRule,
    reply: &Reply,
    body: Option<&Value>,
    value: &dyn Fn(&Var) -> Option<String>,
) -> bool {
    status_matches(r.status.as_ref(), reply.status)
        && r.body.iter().all(|p| holds_with(p, body, value))
}

/// The error body's own words, when it has them (`error`, `message`, `detail`).
fn message(body: Option<&Value>, raw: &str) -> String {
    if let Some(b) = body {
        for k in ["error", "message", "detail", "error_description"] {
            if let Some(s) = b.get(k).and_then(Value::as_str) {
                return s.to_string();
            }
        }
    }
    excerpt(raw)
}

/// An action's answer through its outcome rules.
pub fn outcome(
    rules: &[OutcomeRule],
    method: &Method,
    path: &str,
    reply: &Reply,
    value: &dyn Fn(&Var) -> Option<String>,
) -> Result<Outcome, ConnectorError> {
    let body = reply.json();
    for r in rules {
        if !status_matches(r.status.as_ref(), reply.status)
            || !r.body.iter().all(|p| holds_with(p, body.as_ref(), value))
        {
            continue;
        }
        let Some(result) = Result_::parse(&r.result) else {
            continue;
        };
        let code = r.code.clone().unwrap_or_else(|| r.result.clone());
        let msg = format!(
            "{method} {path}: {} {}",
            reply.status,
            message(body.as_ref(), &reply.body)
        );
        let wait = wait_of(&reply.headers)
            .or(r.retry_after_secs.map(Duration::from_secs))
            .unwrap_or(Duration::from_secs(60));
        return match result {
            Result_::Done => Ok(Outcome::Done),
            Result_::AlreadyDone => Ok(Outcome::AlreadyDone),
            Result_::Retry => Err(ConnectorError::new(
                ErrorClass::Retryable {
                    retry_after: wait_of(&reply.headers)
                        .or(r.retry_after_secs.map(Duration::from_secs)),
                },
                code,
                msg,
            )),
            Result_::RateLimited => Err(ConnectorError::rate_limited(wait, code, msg)),
            Result_::Permanent => Err(ConnectorError::permanent(code, msg)),
            Result_::Auth => Err(ConnectorError::auth(code, msg)),
            Result_::Conflict => Err(ConnectorError::conflict(code, msg)),
        };
    }
    Err(ConnectorError::permanent(
        E_UNCLASSIFIED,
        format!(
            "{method} {path}: {} {} (no outcome rule of the definition matches this answer)",
            reply.status,
            excerpt(&reply.body)
        ),
    ))
}

/// A read's answer that is not a success (nor a status the definition names as absent/gone).
pub fn read_status(method: &Method, path: &str, reply: &Reply) -> ConnectorError {
    let body = reply.json();
    let msg = format!(
        "{method} {path}: {} {}",
        reply.status,
        message(body.as_ref(), &reply.body)
    );
    match reply.status {
        429 => ConnectorError::rate_limited(
            wait_of(&reply.headers).unwrap_or(Duration::from_secs(60)),
            E_RATE_LIMIT,
            msg,
        ),
        500..=599 => ConnectorError::new(
            ErrorClass::Retryable {
                retry_after: wait_of(&reply.headers),
            },
            "unavailable",
            msg,
        ),
        401 | 403 => ConnectorError::auth("forbidden", msg),
        _ => ConnectorError::permanent("unexpected_status", msg),
    }
}

/// A refusal of the OAuth token endpoint.
pub fn token_error(reply: &Reply) -> ConnectorError {
    let body = reply.json();
    let msg = format!(
        "token endpoint: {} {}",
        reply.status,
        message(body.as_ref(), &reply.body)
    );
    match reply.status {
        429 => ConnectorError::rate_limited(
            wait_of(&reply.headers).unwrap_or(Duration::from_secs(60)),
            E_RATE_LIMIT,
            msg,
        ),
        500..=599 => ConnectorError::retryable("token_unavailable", msg),
        _ => ConnectorError::auth("token_refused", msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use serde_json::json;

    fn reply(status: u16, headers: &[(&'static str, &str)], body: &str) -> Reply {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, HeaderValue::from_str(v).expect("a value"));
        }
        Reply {
            status,
            headers: h,
            body: body.to_string(),
        }
    }

    fn rules(v: serde_json::Value) -> Vec<OutcomeRule> {
        serde_json::from_value(v).expect("a value")
    }

    #[test]
    fn the_first_matching_rule_wins_and_unmatched_is_never_success() {
        let r = rules(json!([
            {"status": [200], "body": [{"path": "$.ok", "equals": true}], "result": "done"},
            {"status": [200], "body": [{"path": "$.error", "equals": "not_in_channel"}], "result": "already_done"},
            {"status": [200], "body": [{"path": "$.error", "equals": "ratelimited"}], "result": "rate_limited"},
            {"status": [200], "body": [{"path": "$.ok", "equals": false}], "result": "permanent", "code": "slack_error"},
            {"status": [404], "result": "already_done"},
            {"status": [503], "result": "retry"}
        ]));
        let m = Method::POST;
        let o = |rep: &Reply| outcome(&r, &m, "/x", rep, &|_| None);
        assert_eq!(
            o(&reply(200, &[], r#"{"ok":true}"#)).expect("a value"),
            Outcome::Done
        );
        assert_eq!(
            o(&reply(200, &[], r#"{"ok":false,"error":"not_in_channel"}"#)).expect("a value"),
            Outcome::AlreadyDone
        );
        let e = o(&reply(
            200,
            &[("retry-after", "7")],
            r#"{"ok":false,"error":"ratelimited"}"#,
        ))
        .expect_err("an error");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert!(matches!(e.class, ErrorClass::RateLimited { .. }));
        let e = o(&reply(
            200,
            &[],
            r#"{"ok":false,"error":"channel_not_found"}"#,
        ))
        .expect_err("an error");
        assert_eq!(
            (e.code.as_str(), &e.class),
            ("slack_error", &ErrorClass::Permanent)
        );
        assert!(e.message.contains("channel_not_found"), "{}", e.message);
        assert_eq!(
            o(&reply(404, &[], "")).expect("a value"),
            Outcome::AlreadyDone
        );
        // 200 that is neither ok:true nor ok:false (not JSON) matches no rule.
        let e = o(&reply(200, &[], "<html>")).expect_err("an error");
        assert_eq!(e.code, E_UNCLASSIFIED);
        // 204 is named by no rule: not success.
        assert_eq!(
            o(&reply(204, &[], "")).expect_err("an error").code,
            E_UNCLASSIFIED
        );
        let e = o(&reply(503, &[("x-ratelimit-reset", "3")], "")).expect_err("an error");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        assert!(e.is_retryable());
    }

    #[test]
    fn waits_come_from_retry_after_or_the_reset_epoch_and_never_below_a_second() {
        assert_eq!(
            wait_of(&reply(429, &[("retry-after", "0")], "").headers),
            Some(Duration::from_secs(1))
        );
        let epoch = (now_epoch() + 30.0).to_string();
        let w =
            wait_of(&reply(429, &[("x-ratelimit-reset", &epoch)], "").headers).expect("a value");
        assert!(
            w > Duration::from_secs(25) && w <= Duration::from_secs(31),
            "{w:?}"
        );
        assert_eq!(wait_of(&reply(429, &[], "").headers), None);
        // Docker Hub's X-Retry-After: a unix time.
        let w = wait_of(&reply(429, &[("x-retry-after", &epoch)], "").headers).expect("a value");
        assert!(
            w > Duration::from_secs(25) && w <= Duration::from_secs(31),
            "{w:?}"
        );
        let at = chrono::Utc::now() + chrono::Duration::seconds(40);
        let date = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let w = wait_of(&reply(503, &[("retry-after", &date)], "").headers).expect("a date");
        assert!(
            w > Duration::from_secs(35) && w <= Duration::from_secs(41),
            "{w:?}"
        );
        let e = read_status(&Method::GET, "/u", &reply(429, &[], ""));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(60)));
        assert_eq!(
            read_status(&Method::GET, "/u", &reply(403, &[], "")).class,
            ErrorClass::Auth
        );
        assert!(read_status(&Method::GET, "/u", &reply(502, &[], "")).is_retryable());
        assert_eq!(
            read_status(&Method::GET, "/u", &reply(400, &[], "")).class,
            ErrorClass::Permanent
        );
    }

    #[test]
    fn predicates_compare_values_and_cases_as_written() {
        let p = |v: serde_json::Value| -> Predicate { serde_json::from_value(v).expect("a value") };
        let b = json!({"active": false, "n": 3, "name": "Alice", "tags": ["a", "b"]});
        assert!(holds(
            &p(json!({"path": "$.active", "equals": false})),
            Some(&b)
        ));
        assert!(!holds(
            &p(json!({"path": "$.active", "equals": "false"})),
            Some(&b)
        ));
        assert!(holds(&p(json!({"path": "$.n", "in": [1, 3]})), Some(&b)));
        assert!(!holds(
            &p(json!({"path": "$.name", "equals": "alice"})),
            Some(&b)
        ));
        assert!(holds(
            &p(json!({"path": "$.name", "equals": "alice", "case": "insensitive"})),
            Some(&b)
        ));
        assert!(holds(
            &p(json!({"path": "$.tags[*]", "equals": "b"})),
            Some(&b)
        ));
        assert!(holds(
            &p(json!({"path": "$.gone", "exists": false})),
            Some(&b)
        ));
        assert!(holds(
            &p(json!({"path": "$.gone", "not_equals": 1})),
            Some(&b)
        ));
        assert!(!holds(
            &p(json!({"path": "$.tags[*]", "not_equals": "a"})),
            Some(&b)
        ));
        let member = p(json!({"path": "$.tags[*]", "not_equals": "{{parent.id}}"}));
        let parent = |v: &Var| matches!(v, Var::Parent(f) if f == "id").then(|| "b".to_string());
        assert!(!holds_with(&member, Some(&b), &parent));
        assert!(holds_with(&member, Some(&json!({"tags": ["a"]})), &parent));
        assert!(holds(&p(json!({"path": "$.gone", "exists": false})), None));
        // A templated value (text, as ids are captured) equals a number whose text it is; a
        // constant string still does not ("7" written is not 7).
        let seven = |v: &Var| matches!(v, Var::Parent(_)).then(|| "7".to_string());
        let owner = json!({"assigned_to": {"id": 7}});
        let is = p(json!({"path": "$.assigned_to.id", "equals": "{{parent.id}}"}));
        let not = p(json!({"path": "$.assigned_to.id", "not_equals": "{{parent.id}}"}));
        let among = p(json!({"path": "$.assigned_to.id", "in": ["{{parent.id}}"]}));
        assert!(holds_with(&is, Some(&owner), &seven));
        assert!(!holds_with(&not, Some(&owner), &seven));
        assert!(holds_with(&among, Some(&owner), &seven));
        assert!(!holds_with(
            &is,
            Some(&json!({"assigned_to": {"id": 70}})),
            &seven
        ));
        assert!(!holds(
            &p(json!({"path": "$.assigned_to.id", "equals": "7"})),
            Some(&owner)
        ));
        // all_in: every value in the set, and at least one.
        let only = p(json!({"path": "$.roles[*]", "all_in": ["subscriber"]}));
        assert!(holds(&only, Some(&json!({"roles": ["subscriber"]}))));
        assert!(!holds(
            &only,
            Some(&json!({"roles": ["subscriber", "shop_manager"]}))
        ));
        assert!(!holds(&only, Some(&json!({"roles": []}))));
        assert!(!holds(&only, Some(&json!({}))));
    }
}
