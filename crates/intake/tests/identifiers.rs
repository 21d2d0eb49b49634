//! Identifiers kept exactly and checked by one rule: JSON numbers that become identifiers or
//! event ids keep their literal's digits, and look-alike identifiers (fullwidth, mixed scripts,
//! invisible characters) are refused, in every source and in the import.

mod common;

use common::*;
use revoke_intake::{parse_import, ImportError, RiskRules};
use serde_json::json;

const BOB_SECRET: &str = "bob-webhook-secret-31";
const TOKEN: &str = "generic-token-5a5a";

/// Two 30-digit ids that are one f64 (1.2345678901234568e29).
const ID_A: &str = "123456789012345678901234567890";
const ID_B: &str = "123456789012345678901234567891";

fn hibob() -> revoke_intake::Source {
    source("hibob", json!({ "secret": BOB_SECRET }))
}

fn bob_signed(body: &[u8]) -> http::HeaderMap {
    headers(&[(
        "Bob-Signature",
        &b64(&hmac512(BOB_SECRET.as_bytes(), &[body])),
    )])
}

fn bob_left(employee_id: &str) -> Vec<u8> {
    format!(
        r#"{{"companyId":1,"type":"employee.left","triggeredBy":"x","triggeredAt":"2024-03-15T00:00:04.211873","version":"v2","data":{{"employeeId":{employee_id}}}}}"#
    )
    .into_bytes()
}

fn generic() -> revoke_intake::Source {
    source(
        "generic",
        json!({
            "token_sha256": hex_sha256(TOKEN.as_bytes()),
            "employee_id": "/employee_id",
            "email": "/email",
            "username": "/username",
        }),
    )
}

fn bearer() -> http::HeaderMap {
    headers(&[("Authorization", &format!("Bearer {TOKEN}"))])
}

#[test]
fn hibob_numeric_ids_beyond_f64_stay_two_employees_and_two_events() {
    let a = one(post(
        &hibob(),
        &bob_signed(&bob_left(ID_A)),
        &bob_left(ID_A),
    ));
    let b = one(post(
        &hibob(),
        &bob_signed(&bob_left(ID_B)),
        &bob_left(ID_B),
    ));
    assert_eq!(a.employee_id.as_deref(), Some(ID_A));
    assert_eq!(b.employee_id.as_deref(), Some(ID_B));
    assert_eq!(
        a.source_event_id,
        format!("employee.left:{ID_A}:2024-03-15T00:00:04.211873")
    );
    assert_ne!(a.source_event_id, b.source_event_id);
}

#[test]
fn number_literals_keep_their_exact_text() {
    for (literal, want) in [
        (ID_A, ID_A),
        (
            "-123456789012345678901234567890",
            "-123456789012345678901234567890",
        ),
        ("18446744073709551615", "18446744073709551615"),
        ("-9223372036854775808", "-9223372036854775808"),
        ("1004", "1004"),
        ("1.50", "1.50"),
        ("1.5", "1.5"),
        ("1e3", "1e3"),
        ("12345678901234567.0", "12345678901234567.0"),
    ] {
        let body =
            format!(r#"{{"note":"a \"1e3\" \\","employee_id":{literal},"n":[1.50,{literal}]}}"#);
        let e = one(post(&generic(), &bearer(), body.as_bytes()));
        assert_eq!(e.employee_id.as_deref(), Some(want), "{body}");
    }
}

#[test]
fn look_alike_identifiers_are_unprocessable_in_every_field() {
    for (field, value, says) in [
        ("username", "ｄａｖｅ", "a look-alike of \"dave\""),
        ("employee_id", "１２３", "a look-alike of \"123\""),
        ("email", "dave@ex\u{430}mple.org", "mixing"),
        ("username", "d\u{430}ve", "mixing"),
        ("username", "da\u{200B}ve", "U+200B (format)"),
        ("email", "dave\u{202E}@example.org", "U+202E (format)"),
        ("username", "da ve", "U+0020 (space)"),
    ] {
        let body = serde_json::to_vec(&json!({ field: value })).expect("json");
        let m = unprocessable(post(&generic(), &bearer(), &body));
        assert!(m.contains(field) && m.contains(says), "{value:?}: {m}");
    }
    // Surrounding spaces are trimmed as before; what is left must pass.
    let e = one(post(&generic(), &bearer(), br#"{"username":"  dave  "}"#));
    assert_eq!(e.username.as_deref(), Some("dave"));
}

#[test]
fn hibob_refuses_a_fullwidth_employee_id() {
    let body = bob_left("\"１２３\"");
    let m = unprocessable(post(&hibob(), &bob_signed(&body), &body));
    assert!(m.contains("employee_id") && m.contains("\"123\""), "{m}");
}

fn import(name: &str, text: &str) -> Result<Vec<revoke_intake::NormalizedEvent>, ImportError> {
    parse_import(
        name,
        text.as_bytes(),
        chrono_tz::UTC,
        &RiskRules::default(),
        now(),
    )
}

#[test]
fn import_keeps_numeric_ids_exact() {
    let text = format!("{{\"employee_id\":{ID_A}}}\n{{\"employee_id\":{ID_B}}}\n");
    let events = import("leavers.jsonl", &text).expect("imports");
    let ids: Vec<_> = events.iter().map(|e| e.employee_id.as_deref()).collect();
    assert_eq!(ids, [Some(ID_A), Some(ID_B)]);
    assert_ne!(events[0].source_event_id, events[1].source_event_id);
}

#[test]
fn import_refuses_look_alikes_naming_line_and_field() {
    let text = "{\"username\":\"dave\"}\n{\"username\":\"ｄａｖｅ\"}\n";
    match import("leavers.jsonl", text) {
        Err(ImportError::Line {
            line,
            field,
            message,
            ..
        }) => {
            assert_eq!((line, field.as_str()), (2, "username"));
            assert!(
                message.starts_with("expected an identifier that NFKC") && message.contains("dave"),
                "{message}"
            );
        }
        other => panic!("expected a line error, found {other:?}"),
    }
    let csv = "employee_id,email\n１２３,\n";
    match import("leavers.csv", csv) {
        Err(ImportError::Line { line, field, .. }) => {
            assert_eq!((line, field.as_str()), (2, "employee_id"))
        }
        other => panic!("expected a line error, found {other:?}"),
    }
}

fn standard_webhook(body: &[u8]) -> Result<revoke_intake::Intake, revoke_intake::IntakeError> {
    const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let ts = now().timestamp();
    let sig = revoke_intake::standard_webhooks_sign(WHSEC, "msg_client", ts, body).expect("signs");
    let h = headers(&[
        ("webhook-id", "msg_client"),
        ("webhook-timestamp", &ts.to_string()),
        ("webhook-signature", &sig),
    ]);
    post(
        &source("standard_webhooks", json!({ "secret": WHSEC })),
        &h,
        body,
    )
}

#[test]
fn a_client_domain_is_taken_checked_and_never_mixed_with_a_person() {
    let body = br#"{"type":"employee.terminated","data":{"client_domain":" ClientCo.TEST. "}}"#;
    let e = one(standard_webhook(body));
    assert_eq!(e.client_domain.as_deref(), Some("clientco.test"));
    assert_eq!((e.employee_id, e.email, e.username), (None, None, None));
    for (data, expected) in [
        (
            json!({"client_domain": "*)(uid=*"}),
            "client domain: expected only ASCII",
        ),
        (json!({"client_domain": "../x"}), "client domain: expected"),
        (json!({"client_domain": "clientco"}), "at least two labels"),
        (
            json!({"client_domain": "clientco.test", "email": "a@clientco.test"}),
            "found both",
        ),
        (json!({"client_domain": ""}), "found none"),
    ] {
        let body = json!({"type": "employee.terminated", "data": data}).to_string();
        let m = unprocessable(standard_webhook(body.as_bytes()));
        assert!(m.contains(expected), "{data}: {m}");
    }
    let events = import(
        "clients.csv",
        "client_domain,reason\nClientCo.test,contract ended\n",
    )
    .expect("imports");
    assert_eq!(events[0].client_domain.as_deref(), Some("clientco.test"));
    for (text, expected) in [
        ("client_domain\n../x\n", "expected only ASCII"),
        (
            "client_domain,email\nclientco.test,a@b.test\n",
            "found both",
        ),
    ] {
        match import("clients.csv", text) {
            Err(ImportError::Line {
                line,
                field,
                message,
                ..
            }) => {
                assert_eq!((line, field.as_str()), (2, "client_domain"), "{message}");
                assert!(message.contains(expected), "{message}");
            }
            other => panic!("{text}: expected a line error, found {other:?}"),
        }
    }
}
