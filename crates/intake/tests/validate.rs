//! `validate` and `Source::build` on good and bad `[intake.<name>]` sections.

mod common;

use revoke_intake::{validate, IntakeError, RiskRules, Source};
use serde_json::json;

fn issues(kind: &str, params: serde_json::Value) -> Vec<(String, String)> {
    validate("intake.src", kind, &params)
        .into_iter()
        .map(|i| (i.path, i.message))
        .collect()
}

fn one_issue(kind: &str, params: serde_json::Value) -> (String, String) {
    let mut v = issues(kind, params);
    assert_eq!(v.len(), 1, "{v:?}");
    v.remove(0)
}

#[test]
fn good_configs_have_no_issues() {
    let cases = [
        (
            "standard_webhooks",
            json!({ "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "timezone": "Europe/Berlin", "tolerance_secs": 120, "max_body_bytes": 65536 }),
        ),
        (
            "bamboohr",
            json!({ "secret": "k", "fields": { "employee_id": "Employee #" }, "date_format": "%m/%d/%Y" }),
        ),
        (
            "hibob",
            json!({ "secrets": ["a", "b"], "termination_events": ["employee.left"] }),
        ),
        ("gusto", json!({ "secret": "t" })),
        (
            "personio",
            json!({ "secret": "s", "signature_header": "X-Signature" }),
        ),
        (
            "okta",
            json!({ "token_sha256": "a".repeat(64), "header": "X-Okta-Auth" }),
        ),
        (
            "scim",
            json!({ "token_sha256": ["b".repeat(64)], "id_is": "email" }),
        ),
        (
            "generic",
            json!({ "secret": "t", "email": "/person/email", "event_kind": "/type", "termination_values": ["left"] }),
        ),
    ];
    for (kind, params) in cases {
        assert_eq!(issues(kind, params.clone()), vec![], "{kind}");
        Source::build("src", kind, &params, &RiskRules::default()).expect("builds");
    }
}

#[test]
fn unknown_kind_lists_the_known_ones() {
    let (path, message) = one_issue("workday", json!({}));
    assert_eq!(path, "intake.src.kind");
    assert_eq!(
        message,
        "expected one of \"standard_webhooks\", \"bamboohr\", \"hibob\", \"gusto\", \"personio\", \"okta\", \"scim\", \"generic\", found \"workday\""
    );
}

#[test]
fn whsec_secret_must_be_base64_and_is_not_repeated() {
    let (path, message) = one_issue(
        "standard_webhooks",
        json!({ "secret": "whsec_!!not*base64!!" }),
    );
    assert_eq!(path, "intake.src.secret");
    assert!(message.contains("not base64"), "{message}");
    assert!(!message.contains("not*base64"), "{message}");
    let (path, message) = one_issue(
        "standard_webhooks",
        json!({ "secret": "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }),
    );
    assert_eq!(path, "intake.src.secret");
    assert!(message.contains("without the whsec_ prefix"), "{message}");
    assert!(!message.contains("MfKQ9r8G"), "{message}");
    let (path, _) = one_issue(
        "standard_webhooks",
        json!({ "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_%%%"] }),
    );
    assert_eq!(path, "intake.src.secrets[1]");
}

#[test]
fn missing_and_mistyped_secrets() {
    let (path, message) = one_issue("bamboohr", json!({}));
    assert_eq!(path, "intake.src.secret");
    assert!(message.contains("found none"), "{message}");
    let (path, message) = one_issue("scim", json!({}));
    assert_eq!(path, "intake.src.token_sha256");
    assert!(message.contains("found neither"), "{message}");
    let (path, message) = one_issue("gusto", json!({ "secret": 42 }));
    assert_eq!(path, "intake.src.secret");
    assert!(message.ends_with("found a number"), "{message}");
    let (_, message) = one_issue("gusto", json!({ "secret": "" }));
    assert!(message.ends_with("found an empty string"), "{message}");
    let (path, message) = one_issue("okta", json!({ "token_sha256": "abc123" }));
    assert_eq!(path, "intake.src.token_sha256");
    assert_eq!(
        message,
        "expected 64 hex characters (the SHA-256 of the token), found a string of 6 characters"
    );
    let (path, message) = one_issue(
        "hibob",
        json!({ "secret": "s", "token_sha256": "a".repeat(64) }),
    );
    assert_eq!(path, "intake.src.token_sha256");
    assert!(message.contains("HMAC"), "{message}");
}

#[test]
fn bad_timezone_and_numbers() {
    let (path, message) = one_issue(
        "gusto",
        json!({ "secret": "t", "timezone": "Mars/Olympus_Mons" }),
    );
    assert_eq!(path, "intake.src.timezone");
    assert_eq!(
        message,
        "expected an IANA time zone like \"Europe/Berlin\" or \"UTC\", found the string \"Mars/Olympus_Mons\""
    );
    let (path, message) = one_issue("gusto", json!({ "secret": "t", "max_body_bytes": 0 }));
    assert_eq!(path, "intake.src.max_body_bytes");
    assert_eq!(
        message,
        "expected a whole number from 1 to 16777216, found a number (0)"
    );
    let (path, _) = one_issue("gusto", json!({ "secret": "t", "tolerance_secs": "300" }));
    assert_eq!(path, "intake.src.tolerance_secs");
    let (path, _) = one_issue("gusto", json!({ "secret": "t", "date_format": "%Q" }));
    assert_eq!(path, "intake.src.date_format");
}

#[test]
fn generic_pointers() {
    let (path, message) = one_issue("generic", json!({ "secret": "t", "email": "person.email" }));
    assert_eq!(path, "intake.src.email");
    assert!(message.contains("JSON Pointer"), "{message}");
    assert!(message.ends_with("found \"person.email\""), "{message}");
    let (path, _) = one_issue("generic", json!({ "secret": "t", "email": "/a/~2b" }));
    assert_eq!(path, "intake.src.email");
    let (path, message) = one_issue("generic", json!({ "secret": "t", "reason": "/r" }));
    assert_eq!(path, "intake.src.employee_id");
    assert!(
        message.contains("employee_id, email or username"),
        "{message}"
    );
    let (path, _) = one_issue(
        "generic",
        json!({ "secret": "t", "email": "/e", "event_kind": "/k" }),
    );
    assert_eq!(path, "intake.src.termination_values");
    let (path, _) = one_issue(
        "generic",
        json!({ "secret": "t", "email": "/e", "termination_values": ["x"] }),
    );
    assert_eq!(path, "intake.src.event_kind");
    // The department pointer is checked like every other pointer.
    let (path, message) = one_issue(
        "generic",
        json!({ "secret": "t", "email": "/e", "department": "org.department" }),
    );
    assert_eq!(path, "intake.src.department");
    assert!(message.ends_with("found \"org.department\""), "{message}");
    let (path, _) = one_issue(
        "generic",
        json!({ "secret": "t", "email": "/e", "department": 3 }),
    );
    assert_eq!(path, "intake.src.department");
    assert!(issues(
        "generic",
        json!({ "secret": "t", "email": "/e", "department": "/org/dept" })
    )
    .is_empty());
    // BambooHR: department is a field role.
    assert!(issues(
        "bamboohr",
        json!({ "secret": "k", "fields": { "department": "Division" } })
    )
    .is_empty());
}

#[test]
fn kind_specific_checks() {
    let (path, message) = one_issue("scim", json!({ "secret": "t", "id_is": "uid" }));
    assert_eq!(path, "intake.src.id_is");
    assert!(
        message.contains("\"username\", \"employee_id\", \"email\""),
        "{message}"
    );
    let (path, _) = one_issue("okta", json!({ "secret": "t", "header": "Bad Header" }));
    assert_eq!(path, "intake.src.header");
    let (path, message) = one_issue(
        "bamboohr",
        json!({ "secret": "t", "fields": { "hire_date": "Hire Date" } }),
    );
    assert_eq!(path, "intake.src.fields.hire_date");
    assert!(message.contains("\"termination_date\""), "{message}");
    let (path, _) = one_issue(
        "hibob",
        json!({ "secret": "t", "termination_events": ["employee.left"], "cancellation_events": ["employee.left"] }),
    );
    assert_eq!(path, "intake.src.cancellation_events");
    let (path, message) = one_issue("gusto", json!("secret"));
    assert_eq!(path, "intake.src");
    assert!(
        message.starts_with("expected a table of parameters"),
        "{message}"
    );
}

#[test]
fn several_issues_are_all_reported_and_build_refuses() {
    let params = json!({ "timezone": "Nowhere", "max_body_bytes": -1 });
    let v = issues("personio", params.clone());
    let paths: Vec<&str> = v.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "intake.src.max_body_bytes",
            "intake.src.timezone",
            "intake.src.secret"
        ]
    );
    match Source::build("src", "personio", &params, &RiskRules::default()) {
        Err(IntakeError::Config(m)) => {
            assert!(
                m.contains("intake.src.timezone: expected an IANA time zone"),
                "{m}"
            );
            assert!(m.contains("intake.src.secret"), "{m}");
        }
        other => panic!("expected a config error, found {other:?}"),
    }
}
