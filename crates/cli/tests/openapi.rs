//! The daemon's OpenAPI document (`crates/daemon/openapi.json`, served at `/openapi.json`):
//! every route of `crates/daemon/src/http.rs` is described with its methods, every `$ref`
//! resolves, and what the daemon's body types serialize to matches the schemas.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{TimeZone, Utc};
use revoke_store::{QueueStats, ResultLine};
use revoked::types::{
    CancelAnswer, CancelRequest, ErrorBody, IntakeAnswer, JobDetail, JobSummary, Progress, Status,
    SubmitJob, Submitted,
};
use serde_json::{json, Value};

/// Every route of the router in `crates/daemon/src/http.rs`, with the methods the document
/// describes. `openapi_routes_match_the_router` fails when the router gains or loses a route.
const ROUTES: &[(&str, &[&str])] = &[
    ("/livez", &["get"]),
    ("/readyz", &["get"]),
    ("/metrics", &["get"]),
    ("/openapi.json", &["get"]),
    ("/intake/{source}", &["get", "post", "put"]),
    (
        "/intake/{source}/{rest}",
        &["get", "post", "put", "patch", "delete"],
    ),
    ("/api/v1/status", &["get"]),
    ("/api/v1/jobs", &["get", "post"]),
    ("/api/v1/jobs/{id}", &["get"]),
    ("/api/v1/jobs/{id}/approve", &["post"]),
    ("/api/v1/jobs/{id}/reject", &["post"]),
    ("/api/v1/jobs/{id}/cancel", &["post"]),
    ("/api/v1/jobs/{id}/actions/{action}/ack", &["post"]),
    ("/api/v1/jobs/{id}/evidence", &["get"]),
    ("/api/v1/batches", &["get"]),
    ("/api/v1/batches/{id}", &["get"]),
    ("/api/v1/batches/{id}/approve", &["post"]),
    ("/api/v1/batches/{id}/reject", &["post"]),
];

const METHODS: [&str; 7] = ["get", "post", "put", "patch", "delete", "head", "options"];

/// Operations that need the operator scope (the others under /api/ need read).
const OPERATOR: &[(&str, &str)] = &[
    ("/api/v1/jobs", "post"),
    ("/api/v1/jobs/{id}/approve", "post"),
    ("/api/v1/jobs/{id}/reject", "post"),
    ("/api/v1/jobs/{id}/cancel", "post"),
    ("/api/v1/jobs/{id}/actions/{action}/ack", "post"),
    ("/api/v1/batches/{id}/approve", "post"),
    ("/api/v1/batches/{id}/reject", "post"),
];

fn doc() -> Value {
    serde_json::from_str(revoked::http::OPENAPI).expect("openapi.json is JSON")
}

/// The routes of http.rs: `.route("PATH", get(a).post(b))`, one a line; `{*rest}` is `{rest}`.
fn router_routes() -> BTreeMap<String, BTreeSet<String>> {
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../daemon/src/http.rs"
    ))
    .expect("read http.rs");
    // The router only: routes of http.rs's own unit tests (a panicking handler) are not the API.
    let src = src.split("#[cfg(test)]").next().unwrap_or(&src);
    let mut out = BTreeMap::new();
    for line in src.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix(".route(\"") else {
            continue;
        };
        let (path, handlers) = rest.split_once('"').expect("a quoted path");
        let path = path.replace("{*", "{");
        let mut methods = BTreeSet::new();
        for m in METHODS.iter().chain(&["any"]) {
            let call = format!("{m}(");
            let found = handlers.match_indices(&call).any(|(i, _)| {
                i == 0 || !handlers[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            });
            if found {
                methods.insert(m.to_string());
            }
        }
        assert!(!methods.is_empty(), "no method found in {line}");
        out.insert(path, methods);
    }
    assert!(
        out.len() >= 10,
        "expected the router's routes, found {out:?}"
    );
    out
}

#[test]
fn openapi_is_3_1_and_describes_every_route_with_its_methods() {
    let doc = doc();
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let paths = doc["paths"].as_object().expect("paths");
    for (path, methods) in ROUTES {
        let item = paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} is not in openapi.json"));
        for m in *methods {
            let op = &item[*m];
            assert!(op.is_object(), "{m} {path} is not described");
            assert!(op["summary"].is_string(), "{m} {path}: no summary");
            let responses = op["responses"].as_object().expect("responses");
            assert!(
                responses.keys().any(|k| k.starts_with('2')),
                "{m} {path}: no success answer"
            );
        }
        for m in METHODS {
            if item.get(m).is_some() {
                assert!(
                    methods.contains(&m),
                    "{m} {path} is described but not routed"
                );
            }
        }
    }
    let listed: BTreeSet<&str> = ROUTES.iter().map(|(p, _)| *p).collect();
    let documented: BTreeSet<&str> = paths.keys().map(String::as_str).collect();
    assert_eq!(listed, documented, "documented paths that are not routes");
}

#[test]
fn openapi_routes_match_the_router() {
    let routed = router_routes();
    let listed: BTreeMap<String, BTreeSet<String>> = ROUTES
        .iter()
        .map(|(p, ms)| (p.to_string(), ms.iter().map(|m| m.to_string()).collect()))
        .collect();
    assert_eq!(
        routed.keys().collect::<Vec<_>>(),
        listed.keys().collect::<Vec<_>>(),
        "the routes of http.rs and of this list (and openapi.json) differ"
    );
    for (path, methods) in &routed {
        if methods.contains("any") {
            continue; // intake: the source decides; the document lists what sources accept
        }
        assert_eq!(methods, &listed[path], "methods of {path}");
    }
}

#[test]
fn the_api_needs_a_bearer_token_and_says_what_each_refusal_means() {
    let doc = doc();
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"],
        json!({
            "type": "http",
            "scheme": "bearer",
            "description": doc["components"]["securitySchemes"]["bearer"]["description"]
        })
    );
    let error = json!({ "$ref": "#/components/schemas/ErrorBody" });
    for (path, methods) in ROUTES {
        for m in *methods {
            let op = &doc["paths"][*path][*m];
            let responses = op["responses"].as_object().expect("responses");
            if path.starts_with("/api/") {
                assert_eq!(op["security"], json!([{ "bearer": [] }]), "{m} {path}");
                assert!(responses.contains_key("401"), "{m} {path}: no 401");
                let operator = OPERATOR.contains(&(*path, *m));
                assert_eq!(
                    responses.contains_key("403"),
                    operator,
                    "{m} {path}: 403 exactly for operator operations"
                );
                if path.contains("{id}") {
                    assert!(responses.contains_key("404"), "{m} {path}: no 404");
                }
                if path.ends_with("/approve")
                    || path.ends_with("/reject")
                    || path.ends_with("/cancel")
                {
                    assert!(responses.contains_key("409"), "{m} {path}: no 409");
                }
            } else {
                assert_eq!(op["security"], json!([]), "{m} {path} needs no token");
            }
            if path.starts_with("/intake/") {
                for code in ["400", "401", "413", "422"] {
                    assert!(responses.contains_key(code), "{m} {path}: no {code}");
                }
            }
        }
    }
    assert!(doc["paths"]["/api/v1/jobs"]["post"]["responses"]
        .as_object()
        .is_some_and(|r| r.contains_key("413") && r.contains_key("422")));
    for name in [
        "BadRequest",
        "Unauthorized",
        "Forbidden",
        "NotFound",
        "Conflict",
        "PayloadTooLarge",
        "Unprocessable",
    ] {
        assert_eq!(
            doc["components"]["responses"][name]["content"]["application/json"]["schema"], error,
            "{name}"
        );
    }
    assert!(
        doc["components"]["responses"]["Unauthorized"]["headers"]["WWW-Authenticate"].is_object()
    );
}

/// Every `$ref` in `v`, with where it is.
fn refs(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    out.push((at.to_string(), x.as_str().unwrap_or("").to_string()));
                } else {
                    refs(x, &format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                refs(x, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_ref_resolves_and_every_schema_is_used() {
    let doc = doc();
    let mut all = Vec::new();
    refs(&doc, "", &mut all);
    assert!(all.len() > 50, "{} refs", all.len());
    for (at, r) in &all {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{at}: expected a local $ref, found {r:?}"));
        assert!(
            doc.pointer(pointer).is_some(),
            "{at}: $ref {r} does not resolve"
        );
    }
    let used: BTreeSet<&str> = all.iter().map(|(_, r)| r.as_str()).collect();
    for section in ["schemas", "responses", "parameters"] {
        for name in doc["components"][section]
            .as_object()
            .expect(section)
            .keys()
        {
            let r = format!("#/components/{section}/{name}");
            assert!(used.contains(r.as_str()), "{r} is never used");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The body types against their schemas

/// What is wrong with `value` as an instance of `schema` (a small subset of JSON Schema:
/// $ref, type, enum, properties, required, items, allOf, oneOf). Object schemas with
/// properties are closed: a key the document does not describe is an error.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(r) = schema["$ref"].as_str() {
        let target = doc
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("{r} does not resolve"));
        return check(doc, target, value, at, errors);
    }
    if let Some(options) = schema["oneOf"].as_array() {
        let fits = options
            .iter()
            .filter(|o| {
                let mut e = Vec::new();
                check(doc, o, value, at, &mut e);
                e.is_empty()
            })
            .count();
        if fits == 0 {
            errors.push(format!("{at}: matches no oneOf alternative"));
        }
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let ok = types.contains(&actual) || (actual == "integer" && types.contains(&"number"));
        if !ok {
            errors.push(format!("{at}: expected {types:?}, found {actual} {value}"));
            return;
        }
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            errors.push(format!("{at}: expected one of {allowed:?}, found {value}"));
        }
    }
    if let (Some(items), Value::Array(a)) = (schema.get("items"), value) {
        for (i, x) in a.iter().enumerate() {
            check(doc, items, x, &format!("{at}[{i}]"), errors);
        }
    }
    if let Value::Object(obj) = value {
        // Properties and required keys of the schema and of every allOf part.
        let mut parts = vec![schema];
        let mut resolved = Vec::new();
        for p in schema["allOf"].as_array().into_iter().flatten() {
            let p = match p["$ref"].as_str() {
                Some(r) => doc.pointer(r.trim_start_matches('#')).expect("resolves"),
                None => p,
            };
            resolved.push(p);
        }
        parts.extend(resolved);
        let mut properties = serde_json::Map::new();
        let mut required = BTreeSet::new();
        for p in &parts {
            if let Some(props) = p["properties"].as_object() {
                properties.extend(props.clone());
            }
            for r in p["required"].as_array().into_iter().flatten() {
                required.insert(r.as_str().unwrap_or("").to_string());
            }
        }
        for r in &required {
            if !obj.contains_key(r) {
                errors.push(format!("{at}: required {r} is missing"));
            }
        }
        if !properties.is_empty() {
            for (k, x) in obj {
                match properties.get(k) {
                    Some(s) => check(doc, s, x, &format!("{at}.{k}"), errors),
                    None => errors.push(format!("{at}: {k} is not in the schema")),
                }
            }
        }
    }
}

fn conforms(schema: &str, value: &impl serde::Serialize) {
    let doc = doc();
    let value = serde_json::to_value(value).expect("serializes");
    let mut errors = Vec::new();
    check(
        &doc,
        &json!({ "$ref": format!("#/components/schemas/{schema}") }),
        &value,
        schema,
        &mut errors,
    );
    assert!(
        errors.is_empty(),
        "{schema}:\n{}\n{value:#}",
        errors.join("\n")
    );
}

fn summary(full: bool) -> JobSummary {
    let t = Utc
        .with_ymd_and_hms(2026, 12, 1, 16, 0, 0)
        .single()
        .expect("time");
    JobSummary {
        job_id: "j1".into(),
        state: "awaiting_approval".into(),
        subject: "alice".into(),
        source: "api".into(),
        source_event_id: full.then(|| "hr-1".into()),
        risk: "high".into(),
        reason: "misconduct".into(),
        received_at: t,
        effective_at: t,
        due_at: t,
        plan_id: full.then(|| "p1".into()),
        note: full.then(|| "held".into()),
    }
}

fn line(full: bool) -> ResultLine {
    let t = full.then(Utc::now);
    ResultLine {
        job_id: "j1".into(),
        action_id: "corp-ldap.lock_account.1a2b".into(),
        connector: "corp-ldap".into(),
        kind: "lock_account".into(),
        target: "uid=alice".into(),
        phase: "contain".into(),
        outcome: if full { "failed" } else { "pending" }.into(),
        attempts: 2,
        not_before: t,
        started_at: t,
        finished_at: t,
        verdict: full.then(|| "confirmed".into()),
        error_class: full.then(|| "transient".into()),
        error_code: full.then(|| "busy".into()),
        error_message: full.then(|| "server busy".into()),
        note: full.then(|| "n".into()),
    }
}

#[test]
fn the_batch_bodies_match_their_schemas() {
    use revoke_store::{BatchDecision, BatchDetail, BatchJob, JobBatch, JobState};
    use revoked::types::BatchDecisionRequest;
    let t = Utc
        .with_ymd_and_hms(2030, 1, 2, 3, 4, 5)
        .single()
        .expect("time");
    for full in [true, false] {
        let batch = JobBatch {
            batch_id: "b-0123456789abcdef".into(),
            source: "import".into(),
            opened_at: t,
            last_held_at: t,
            held: 3,
            awaiting_approval: if full { 0 } else { 3 },
            closed_at: full.then_some(t),
            decision: full.then(|| "approved".into()),
            decided_by: full.then(|| "token:ops".into()),
        };
        conforms("JobBatch", &batch);
        let counts: std::collections::BTreeMap<String, u64> =
            [("import".to_string(), 3)].into_iter().collect();
        conforms(
            "BatchDetail",
            &BatchDetail {
                batch: batch.clone(),
                by_state: counts.clone(),
                by_source: counts.clone(),
                by_reason: counts.clone(),
                by_risk: counts.clone(),
                by_department: counts.clone(),
                effective_from: full.then_some(t),
                effective_to: full.then_some(t),
                sample: vec![BatchJob {
                    job_id: revoke_core::JobId("j".into()),
                    subject: "alice".into(),
                    employee_id: full.then(|| "E1".into()),
                    email: full.then(|| "a@example.org".into()),
                    reason: "resigned".into(),
                    risk: "standard".into(),
                    effective_at: t,
                    received_at: t,
                    state: JobState::AwaitingApproval,
                }],
            },
        );
        conforms(
            "BatchDecision",
            &BatchDecision {
                batch,
                state: JobState::Scheduled,
                job_ids: vec![revoke_core::JobId("j".into())],
            },
        );
        conforms(
            "BatchDecisionRequest",
            &BatchDecisionRequest {
                expect: full.then_some(3),
            },
        );
    }
}

#[test]
fn the_daemon_bodies_match_their_schemas() {
    for full in [true, false] {
        conforms(
            "SubmitJob",
            &SubmitJob {
                employee_id: full.then(|| "E1".into()),
                email: full.then(|| "a@example.org".into()),
                username: Some("alice".into()),
                client_domain: None,
                effective_at: full.then(|| Utc::now().fixed_offset()),
                reason: full.then(|| "resigned".into()),
                involuntary: full,
                high_risk: full.then_some(true),
                policy: full.then(|| "default".into()),
                idempotency_key: full.then(|| "k".into()),
            },
        );
        conforms(
            "SubmitJob",
            &SubmitJob {
                client_domain: Some("clientco.example".into()),
                policy: full.then(|| "default".into()),
                ..SubmitJob::default()
            },
        );
        conforms("JobSummary", &summary(full));
        conforms("ResultLine", &line(full));
        let records = Vec::new();
        let mut progress = Progress::of(&records);
        if full {
            progress.next_due = Some(Utc::now());
        }
        conforms("Progress", &progress);
        conforms(
            "JobDetail",
            &JobDetail {
                summary: summary(full),
                plan_fingerprint: full.then(|| "ab".into()),
                progress,
                actions: vec![line(full)],
            },
        );
        conforms(
            "IntakeAnswer",
            &IntakeAnswer {
                jobs: vec![Submitted {
                    job_id: "j1".into(),
                    state: "scheduled".into(),
                    duplicate: full,
                }],
                cancelled: if full { vec!["j0".into()] } else { vec![] },
                ignored: full.then(|| "not a termination".into()),
            },
        );
    }
    conforms(
        "Submitted",
        &Submitted {
            job_id: "j1".into(),
            state: "rejected".into(),
            duplicate: true,
        },
    );
    conforms(
        "CancelRequest",
        &CancelRequest {
            reason: "rehired".into(),
        },
    );
    conforms(
        "CancelAnswer",
        &CancelAnswer {
            job_id: "j1".into(),
            cancelled_actions: vec!["a".into()],
        },
    );
    conforms(
        "Status",
        &Status {
            version: "0.1.0".into(),
            queue: QueueStats {
                due_actions: 1,
                running_actions: 2,
                scheduled_jobs: 3,
                awaiting_approval: 4,
            },
        },
    );
    conforms(
        "ErrorBody",
        &ErrorBody {
            error: "expected x, found y".into(),
        },
    );
    for state in revoke_store::JobState::ALL {
        conforms("JobState", &state);
    }
    for state in revoke_store::ActionState::ALL {
        conforms("ActionOutcome", &state);
    }
    for phase in revoke_core::Phase::ALL {
        conforms("Phase", &phase);
    }
}

#[test]
fn the_evidence_matches_its_schema() {
    let now = Utc::now();
    let ev = revoke_engine::Evidence {
        job_id: "j1".into(),
        subject: "alice".into(),
        employee_id: Some("E1".into()),
        email: None,
        source: "hr".into(),
        source_event_id: Some("msg_1".into()),
        event_body_sha256: Some("ab".into()),
        received_at: Some(now),
        termination_at: now,
        risk: "high".into(),
        reason: "misconduct".into(),
        requested_by: "hr event msg_1".into(),
        state: "planned".into(),
        state_note: None,
        plan_id: Some("p1".into()),
        plan_fingerprint: Some("cd".into()),
        plan_created_at: Some(now),
        sla_hours: 24,
        actions: vec![revoke_engine::EvidenceAction {
            action_id: "a1".into(),
            connector: "corp-ldap".into(),
            kind: "lock_account".into(),
            target: "uid=alice".into(),
            account: Some(revoke_core::AccountPin {
                id: "5f3c-uuid".into(),
                id_kind: "entryUUID".into(),
                name: "uid=alice".into(),
            }),
            phase: "contain".into(),
            outcome: "done".into(),
            attempts: 1,
            idempotency_key: "k".into(),
            not_before: None,
            started_at: Some(now),
            finished_at: Some(now),
            acted_by: Some("revoked@h:1".into()),
            verdict: Some("confirmed".into()),
            verified_at: Some(now),
            error: None,
            note: None,
            late: false,
            journal: vec![revoke_core::JournalEntry {
                name: "new_key".into(),
                value: "AKIA1".into(),
                at: now,
            }],
        }],
        sla_breaches: 0,
        audit: vec![revoke_engine::EvidenceAudit {
            seq: 1,
            at: now,
            actor: "token:ops".into(),
            kind: "job.received".into(),
            action_id: None,
            data: json!({ "source": "hr" }),
            prev_hash: "00".into(),
            hash: "11".into(),
        }],
        audit_chain_intact: true,
        audit_head_hash: Some("11".into()),
        generated_at: now,
    };
    conforms("Evidence", &ev);
}

#[test]
fn the_checker_itself_catches_drift() {
    let doc = doc();
    let mut errors = Vec::new();
    let schema = json!({ "$ref": "#/components/schemas/Submitted" });
    check(
        &doc,
        &schema,
        &json!({ "job_id": "j", "state": "scheduled", "duplicate": false, "extra": 1 }),
        "x",
        &mut errors,
    );
    check(
        &doc,
        &schema,
        &json!({ "job_id": "j", "state": "sleeping", "duplicate": false }),
        "x",
        &mut errors,
    );
    check(
        &doc,
        &schema,
        &json!({ "job_id": "j", "state": "scheduled" }),
        "x",
        &mut errors,
    );
    check(
        &doc,
        &schema,
        &json!({ "job_id": 1, "state": "scheduled", "duplicate": true }),
        "x",
        &mut errors,
    );
    assert_eq!(errors.len(), 4, "{errors:#?}");
}
