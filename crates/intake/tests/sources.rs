//! Every source against realistic payloads: what authenticates, what does not and why, and
//! what the payload becomes.

mod common;

use common::*;
use revoke_intake::{EventKind, Intake, IntakeError};
use serde_json::json;

/// The reason of a `Probe` (answered without proven authenticity, stored nowhere).
fn probe(r: Result<Intake, IntakeError>) -> String {
    match r {
        Ok(Intake::Probe { reason }) => reason,
        other => panic!("expected Probe, found {other:?}"),
    }
}

mod standard_webhooks {
    use super::*;
    use revoke_intake::standard_webhooks_sign;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const OTHER: &str = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=";

    fn src() -> revoke_intake::Source {
        source("standard_webhooks", json!({ "secret": SECRET }))
    }

    fn signed(secret: &str, id: &str, ts: i64, body: &[u8]) -> http::HeaderMap {
        let sig = standard_webhooks_sign(secret, id, ts, body).expect("signs");
        headers(&[
            ("webhook-id", id),
            ("webhook-timestamp", &ts.to_string()),
            ("webhook-signature", &sig),
        ])
    }

    fn now_ts() -> i64 {
        now().timestamp()
    }

    #[test]
    fn valid_signature_is_accepted_and_mapped() {
        let body = sample("standard_webhooks_terminated.json");
        let e = one(post(
            &src(),
            &signed(SECRET, "msg_2dH7", now_ts(), &body),
            &body,
        ));
        assert_eq!(e.source, "test");
        assert_eq!(e.source_kind, "standard_webhooks");
        assert_eq!(e.source_event_id, "msg_2dH7");
        assert_eq!(e.kind, EventKind::Termination);
        assert_eq!(e.employee_id.as_deref(), Some("E-10442"));
        assert_eq!(e.email.as_deref(), Some("jane.doe@example.com"));
        assert_eq!(e.username.as_deref(), Some("jdoe"));
        assert_eq!(e.effective_at.to_rfc3339(), "2024-03-16T00:00:00+00:00");
        assert_eq!(e.reason.as_deref(), Some("Gross misconduct"));
        assert!(e.involuntary);
        assert!(e.high_risk);
        assert_eq!(e.received_at, now());
        assert_eq!(e.body_sha256, hex_sha256(&body));
        assert_eq!(e.reply, None);
    }

    #[test]
    fn several_signatures_in_the_header_one_valid() {
        let body = sample("standard_webhooks_terminated.json");
        let good = standard_webhooks_sign(SECRET, "m1", now_ts(), &body).expect("signs");
        let bad = standard_webhooks_sign(OTHER, "m1", now_ts(), &body).expect("signs");
        let h = headers(&[
            ("webhook-id", "m1"),
            ("webhook-timestamp", &now_ts().to_string()),
            ("webhook-signature", &format!("v1a,whatever {bad} {good}")),
        ]);
        one(post(&src(), &h, &body));
    }

    #[test]
    fn cancellation_and_other_types() {
        let body = sample("standard_webhooks_cancelled.json");
        let e = one(post(&src(), &signed(SECRET, "m2", now_ts(), &body), &body));
        assert_eq!(e.kind, EventKind::Cancellation);
        assert!(!e.high_risk);
        assert_eq!(e.effective_at, now().fixed_offset());

        let body = br#"{"type":"employee.hired","data":{"employee_id":"E1"}}"#;
        let (id, reason) = ignored(post(&src(), &signed(SECRET, "m3", now_ts(), body), body));
        assert_eq!(id.as_deref(), Some("m3"));
        assert!(reason.contains("employee.hired"), "{reason}");
    }

    #[test]
    fn forged_body_is_refused() {
        let body = sample("standard_webhooks_terminated.json");
        let h = signed(SECRET, "m1", now_ts(), &body);
        let m = unauthenticated(post(&src(), &h, &flip(&body)));
        assert!(m.contains("webhook-signature"), "{m}");
        assert!(m.contains("matches"), "{m}");
    }

    #[test]
    fn forged_signature_is_refused() {
        let body = sample("standard_webhooks_terminated.json");
        let sig = standard_webhooks_sign(SECRET, "m1", now_ts(), &body).expect("signs");
        let h = headers(&[
            ("webhook-id", "m1"),
            ("webhook-timestamp", &now_ts().to_string()),
            ("webhook-signature", &flip_char(&sig)),
        ]);
        unauthenticated(post(&src(), &h, &body));
        // The id is signed too.
        let mut h = signed(SECRET, "m1", now_ts(), &body);
        h.insert("webhook-id", http::HeaderValue::from_static("m9"));
        unauthenticated(post(&src(), &h, &body));
    }

    #[test]
    fn missing_headers_are_named() {
        let body = sample("standard_webhooks_terminated.json");
        for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            let mut h = signed(SECRET, "m1", now_ts(), &body);
            h.remove(missing);
            let m = unauthenticated(post(&src(), &h, &body));
            assert_eq!(m, format!("missing header {missing}"));
        }
    }

    #[test]
    fn wrong_secret_is_refused() {
        let body = sample("standard_webhooks_terminated.json");
        unauthenticated(post(&src(), &signed(OTHER, "m1", now_ts(), &body), &body));
    }

    #[test]
    fn expired_and_future_timestamps_are_refused() {
        let body = sample("standard_webhooks_terminated.json");
        let m = unauthenticated(post(
            &src(),
            &signed(SECRET, "m1", now_ts() - 301, &body),
            &body,
        ));
        assert!(m.contains("301 s in the past"), "{m}");
        assert!(m.contains("within 300 s"), "{m}");
        let m = unauthenticated(post(
            &src(),
            &signed(SECRET, "m1", now_ts() + 301, &body),
            &body,
        ));
        assert!(m.contains("301 s in the future"), "{m}");
        // At the edge it still passes.
        one(post(
            &src(),
            &signed(SECRET, "m1", now_ts() - 300, &body),
            &body,
        ));
        // A configured tolerance is honoured.
        let strict = source(
            "standard_webhooks",
            json!({ "secret": SECRET, "tolerance_secs": 10 }),
        );
        unauthenticated(post(
            &strict,
            &signed(SECRET, "m1", now_ts() - 11, &body),
            &body,
        ));
        let h = headers(&[
            ("webhook-id", "m1"),
            ("webhook-timestamp", "yesterday"),
            ("webhook-signature", "v1,AAAA"),
        ]);
        let m = unauthenticated(post(&src(), &h, &body));
        assert!(m.contains("expected unix seconds"), "{m}");
    }

    #[test]
    fn rotation_accepts_either_secret() {
        let src = source("standard_webhooks", json!({ "secrets": [SECRET, OTHER] }));
        let body = sample("standard_webhooks_terminated.json");
        one(post(&src, &signed(OTHER, "m1", now_ts(), &body), &body));
        one(post(&src, &signed(SECRET, "m1", now_ts(), &body), &body));
    }

    #[test]
    fn malformed_json_names_the_problem() {
        let body = br#"{"type": "employee.terminated", "data": {"#;
        let m = malformed(post(&src(), &signed(SECRET, "m1", now_ts(), body), body));
        assert!(
            m.starts_with("body: expected JSON, found invalid JSON"),
            "{m}"
        );
        let body = br#"{"data": {}}"#;
        let m = malformed(post(&src(), &signed(SECRET, "m1", now_ts(), body), body));
        assert_eq!(m, "field type: expected a non-empty string, found nothing");
        let body = br#"{"type":"employee.terminated","data":{"employee_id":"E1","effective_at":"next friday"}}"#;
        let m = malformed(post(&src(), &signed(SECRET, "m1", now_ts(), body), body));
        assert!(
            m.starts_with("field data.effective_at: expected an RFC 3339 time"),
            "{m}"
        );
        assert!(m.contains("\"next friday\""), "{m}");
        let body = br#"{"type":"employee.terminated","data":{"employee_id":"E1","involuntary":"perhaps"}}"#;
        let m = malformed(post(&src(), &signed(SECRET, "m1", now_ts(), body), body));
        assert!(
            m.starts_with("field data.involuntary: expected true or false"),
            "{m}"
        );
    }

    #[test]
    fn oversized_body_is_too_large_before_anything_else() {
        let src = source(
            "standard_webhooks",
            json!({ "secret": SECRET, "max_body_bytes": 64 }),
        );
        assert_eq!(src.max_body_bytes(), 64);
        let body = sample("standard_webhooks_terminated.json");
        // No signature at all: size is checked first.
        let r = post(&src, &headers(&[]), &body);
        assert_eq!(too_large(r), 64);
        assert_eq!(
            source("standard_webhooks", json!({ "secret": SECRET })).max_body_bytes(),
            262_144
        );
    }

    #[test]
    fn no_identifier_is_unprocessable() {
        let body = br#"{"type":"employee.terminated","data":{"employee_id":"  ","reason":"x"}}"#;
        let m = unprocessable(post(&src(), &signed(SECRET, "m7", now_ts(), body), body));
        assert!(m.contains("\"m7\""), "{m}");
        assert!(m.contains("employee id, email or username"), "{m}");
    }

    #[test]
    fn date_only_ends_at_end_of_day_in_zone() {
        let src = source(
            "standard_webhooks",
            json!({ "secret": SECRET, "timezone": "Europe/Berlin" }),
        );
        let body = br#"{"type":"employee.terminated","data":{"email":"a@example.com","effective_at":"2024-01-31"}}"#;
        let e = one(post(&src, &signed(SECRET, "m1", now_ts(), body), body));
        assert_eq!(e.effective_at.to_rfc3339(), "2024-02-01T00:00:00+01:00");
        // A full time keeps the offset it was given in.
        let body = br#"{"type":"employee.terminated","data":{"email":"a@example.com","effective_at":"2024-01-31T17:30:00-05:00"}}"#;
        let e = one(post(&src, &signed(SECRET, "m1", now_ts(), body), body));
        assert_eq!(e.effective_at.to_rfc3339(), "2024-01-31T17:30:00-05:00");
    }

    #[test]
    fn risk_rules_apply() {
        let body = br#"{"type":"employee.terminated","data":{"email":"a@example.com","reason":"Terminated for CAUSE"}}"#;
        let e = one(post(&src(), &signed(SECRET, "m1", now_ts(), body), body));
        assert!(e.high_risk);
        assert!(!e.involuntary);
        let body = br#"{"type":"employee.terminated","data":{"email":"a@example.com","reason":"Relocation","high_risk":false}}"#;
        let e = one(post(&src(), &signed(SECRET, "m1", now_ts(), body), body));
        assert!(!e.high_risk);
        let body = br#"{"type":"employee.terminated","data":{"email":"a@example.com","involuntary":true}}"#;
        let e = one(post(&src(), &signed(SECRET, "m1", now_ts(), body), body));
        assert!(e.high_risk);
        let lenient = revoke_intake::RiskRules {
            involuntary_is_high: false,
            high_reasons: vec![],
        };
        let src = revoke_intake::Source::build(
            "lenient",
            "standard_webhooks",
            &json!({ "secret": SECRET }),
            &lenient,
        )
        .expect("builds");
        let e = one(post(&src, &signed(SECRET, "m1", now_ts(), body), body));
        assert!(!e.high_risk);
    }

    #[test]
    fn wrong_method_is_malformed() {
        let body = sample("standard_webhooks_terminated.json");
        let r = call(
            &src(),
            "GET",
            "",
            &signed(SECRET, "m1", now_ts(), &body),
            &body,
        );
        assert_eq!(malformed(r), "method: expected POST, found GET");
    }
}

mod bamboohr {
    use super::*;

    const KEY: &str = "bamboo-private-key-7f3a";
    const OTHER: &str = "bamboo-private-key-rotated";

    fn src() -> revoke_intake::Source {
        source("bamboohr", json!({ "secret": KEY }))
    }

    fn signed(key: &str, ts: &str, body: &[u8]) -> http::HeaderMap {
        let sig = hex::encode(hmac256(key.as_bytes(), &[body, ts.as_bytes()]));
        headers(&[("X-BambooHR-Signature", &sig), ("X-BambooHR-Timestamp", ts)])
    }

    fn ts() -> String {
        now().timestamp().to_string()
    }

    #[test]
    fn field_based_termination() {
        let body = sample("bamboohr_field_based.json");
        let e = one(post(&src(), &signed(KEY, &ts(), &body), &body));
        assert_eq!(e.kind, EventKind::Termination);
        assert_eq!(e.employee_id.as_deref(), Some("40312"));
        assert_eq!(e.email.as_deref(), Some("jane.doe@example.com"));
        assert_eq!(e.effective_at.to_rfc3339(), "2024-02-01T00:00:00+00:00");
        assert_eq!(e.reason.as_deref(), Some("Performance"));
        assert!(e.involuntary);
        assert!(e.high_risk);
        assert_eq!(
            e.source_event_id,
            "40312:termination:2024-01-31:2024-01-29T16:05:12+0000"
        );
    }

    #[test]
    fn iso_timestamp_header_is_accepted() {
        let body = sample("bamboohr_field_based.json");
        let ts = "2024-03-15T11:58:00+0000";
        one(post(&src(), &signed(KEY, ts, &body), &body));
    }

    #[test]
    fn batch_gives_several_events() {
        let body = sample("bamboohr_batch.json");
        let events = match post(&src(), &signed(KEY, &ts(), &body), &body) {
            Ok(Intake::Events(v)) => v,
            other => panic!("expected events, found {other:?}"),
        };
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].employee_id.as_deref(), Some("41001"));
        assert!(!events[0].involuntary);
        assert!(!events[0].high_risk);
        assert_eq!(
            events[0].effective_at.to_rfc3339(),
            "2024-03-01T00:00:00+00:00"
        );
        assert_eq!(events[1].employee_id.as_deref(), Some("41002"));
        assert!(events[1].high_risk, "reason mentions cause");
        // Status flipped without a date: effective at the change time.
        assert_eq!(
            events[1].effective_at.to_rfc3339(),
            "2024-02-20T09:00:03+00:00"
        );
        assert_ne!(events[0].source_event_id, events[1].source_event_id);
    }

    #[test]
    fn configured_fields_and_zone() {
        let src = source(
            "bamboohr",
            json!({
                "secret": KEY,
                "timezone": "Europe/Berlin",
                "fields": { "employee_id": "Employee #", "username": "Work Email" }
            }),
        );
        let body = sample("bamboohr_field_based.json");
        let e = one(post(&src, &signed(KEY, &ts(), &body), &body));
        assert_eq!(e.employee_id.as_deref(), Some("1042"));
        assert_eq!(e.username.as_deref(), Some("jane.doe@example.com"));
        assert_eq!(e.effective_at.to_rfc3339(), "2024-02-01T00:00:00+01:00");
    }

    #[test]
    fn reactivation_is_a_cancellation_and_other_changes_are_ignored() {
        let body = br#"{"employees":[{"action":"Updated","changedFields":["Status"],"fields":{"Status":"Active"},"id":"7","timestamp":"2024-03-15T10:00:00+0000"}]}"#;
        let e = one(post(&src(), &signed(KEY, &ts(), body), body));
        assert_eq!(e.kind, EventKind::Cancellation);
        let body = br#"{"employees":[{"action":"Updated","changedFields":["Job Title"],"fields":{"Job Title":"CFO","Status":"Inactive"},"id":"7"}]}"#;
        let (_, reason) = ignored(post(&src(), &signed(KEY, &ts(), body), body));
        assert!(reason.contains("employee 7"), "{reason}");
        let body =
            br#"{"employees":[{"action":"Deleted","changedFields":[],"fields":{},"id":"8"}]}"#;
        ignored(post(&src(), &signed(KEY, &ts(), body), body));
    }

    #[test]
    fn event_based_payload_is_ignored_with_advice() {
        let body = sample("bamboohr_event_based.json");
        let (_, reason) = ignored(post(&src(), &signed(KEY, &ts(), &body), &body));
        assert!(reason.contains("field-based"), "{reason}");
    }

    #[test]
    fn forged_missing_wrong_and_stale_are_refused() {
        let body = sample("bamboohr_field_based.json");
        let h = signed(KEY, &ts(), &body);
        let m = unauthenticated(post(&src(), &h, &flip(&body)));
        assert!(m.contains("X-BambooHR-Signature"), "{m}");
        // The timestamp is signed: changing it breaks the signature.
        let mut h2 = h.clone();
        let later = (now().timestamp() + 5).to_string();
        h2.insert("x-bamboohr-timestamp", later.parse().expect("value"));
        unauthenticated(post(&src(), &h2, &body));
        let sig = h
            .get("x-bamboohr-signature")
            .and_then(|v| v.to_str().ok())
            .expect("sig");
        let h3 = headers(&[
            ("X-BambooHR-Signature", &flip_char(sig)),
            ("X-BambooHR-Timestamp", &ts()),
        ]);
        unauthenticated(post(&src(), &h3, &body));
        for missing in ["X-BambooHR-Signature", "X-BambooHR-Timestamp"] {
            let mut h = signed(KEY, &ts(), &body);
            h.remove(missing);
            assert_eq!(
                unauthenticated(post(&src(), &h, &body)),
                format!("missing header {missing}")
            );
        }
        unauthenticated(post(&src(), &signed(OTHER, &ts(), &body), &body));
        let old = (now().timestamp() - 600).to_string();
        let m = unauthenticated(post(&src(), &signed(KEY, &old, &body), &body));
        assert!(m.contains("600 s in the past"), "{m}");
        let soon = (now().timestamp() + 600).to_string();
        let m = unauthenticated(post(&src(), &signed(KEY, &soon, &body), &body));
        assert!(m.contains("600 s in the future"), "{m}");
        let m = unauthenticated(post(&src(), &signed(KEY, "not-a-time", &body), &body));
        assert!(
            m.contains("expected unix seconds or an ISO 8601 time"),
            "{m}"
        );
        let bad_hex = headers(&[
            ("X-BambooHR-Signature", "zz"),
            ("X-BambooHR-Timestamp", &ts()),
        ]);
        let m = unauthenticated(post(&src(), &bad_hex, &body));
        assert!(m.contains("expected a hex HMAC"), "{m}");
    }

    #[test]
    fn rotation() {
        let src = source("bamboohr", json!({ "secrets": [OTHER, KEY] }));
        let body = sample("bamboohr_field_based.json");
        one(post(&src, &signed(KEY, &ts(), &body), &body));
        one(post(&src, &signed(OTHER, &ts(), &body), &body));
    }

    #[test]
    fn malformed_too_large_and_unprocessable() {
        let body = b"{\"employees\": [";
        let m = malformed(post(&src(), &signed(KEY, &ts(), body), body));
        assert!(m.starts_with("body: expected JSON"), "{m}");
        let body = b"employees[40312][changedFields][0]=Status";
        let m = malformed(post(&src(), &signed(KEY, &ts(), body), body));
        assert!(m.contains("form-encoded"), "{m}");
        let body = br#"{"employees": {"id": 1}}"#;
        let m = malformed(post(&src(), &signed(KEY, &ts(), body), body));
        assert_eq!(
            m,
            "field employees: expected a list of employees, found a table"
        );
        let body = br#"{"employees":[{"changedFields":["Termination Date"],"fields":{"Termination Date":"31.01.2024"},"id":"9"}]}"#;
        let m = malformed(post(&src(), &signed(KEY, &ts(), body), body));
        assert!(
            m.starts_with("field employees[0].fields.Termination Date: expected"),
            "{m}"
        );

        let small = source("bamboohr", json!({ "secret": KEY, "max_body_bytes": 100 }));
        let body = sample("bamboohr_field_based.json");
        assert_eq!(
            too_large(post(&small, &signed(KEY, &ts(), &body), &body)),
            100
        );

        let body =
            br#"{"employees":[{"changedFields":["Status"],"fields":{"Status":"Inactive"}}]}"#;
        let m = unprocessable(post(&src(), &signed(KEY, &ts(), body), body));
        assert!(m.contains("employee id, email or username"), "{m}");
    }
}

mod hibob {
    use super::*;

    const SECRET: &str = "bob-webhook-secret-31";
    const OTHER: &str = "bob-webhook-secret-32";

    fn src() -> revoke_intake::Source {
        source("hibob", json!({ "secret": SECRET }))
    }

    fn signed(key: &str, body: &[u8]) -> http::HeaderMap {
        headers(&[("Bob-Signature", &b64(&hmac512(key.as_bytes(), &[body])))])
    }

    #[test]
    fn employee_left_is_a_termination() {
        let body = sample("hibob_employee_left.json");
        let e = one(post(&src(), &signed(SECRET, &body), &body));
        assert_eq!(e.kind, EventKind::Termination);
        assert_eq!(e.employee_id.as_deref(), Some("3332883854254932743"));
        assert_eq!(e.email.as_deref(), Some("jane.doe@example.com"));
        assert_eq!(
            e.effective_at.to_rfc3339(),
            "2024-03-15T00:00:04.211873+00:00"
        );
        assert_eq!(
            e.source_event_id,
            "employee.left:3332883854254932743:2024-03-15T00:00:04.211873"
        );
        // An explicit id wins.
        let body = br#"{"id":"evt-77","type":"employee.inactivated","triggeredAt":"2024-03-15T00:00:00","data":{"employeeId":"5"}}"#;
        let e = one(post(&src(), &signed(SECRET, body), body));
        assert_eq!(e.source_event_id, "evt-77");
    }

    #[test]
    fn updates_without_termination_are_ignored() {
        let body = sample("hibob_employee_updated.json");
        let (id, reason) = ignored(post(&src(), &signed(SECRET, &body), &body));
        assert!(id.is_some());
        assert!(reason.contains("employee.updated"), "{reason}");
        let body = br#"{"type":"employee.activated","triggeredAt":"2024-03-15T00:00:00","data":{"employeeId":"5"}}"#;
        assert_eq!(
            one(post(&src(), &signed(SECRET, body), body)).kind,
            EventKind::Cancellation
        );
    }

    #[test]
    fn connection_test_is_answered() {
        let reason = probe(post(&src(), &headers(&[]), b"Ping test"));
        assert_eq!(reason, "hibob connection test");
        probe(post(&src(), &headers(&[]), br#"{"text":"Ping test"}"#));
    }

    #[test]
    fn forged_missing_wrong_are_refused() {
        let body = sample("hibob_employee_left.json");
        let m = unauthenticated(post(&src(), &signed(SECRET, &body), &flip(&body)));
        assert!(m.contains("Bob-Signature"), "{m}");
        assert_eq!(
            unauthenticated(post(&src(), &headers(&[]), &body)),
            "missing header Bob-Signature"
        );
        unauthenticated(post(&src(), &signed(OTHER, &body), &body));
        let h = headers(&[("Bob-Signature", "%%%")]);
        let m = unauthenticated(post(&src(), &h, &body));
        assert!(m.contains("expected a base64 HMAC"), "{m}");
        // A hex SHA-256 is not what Bob sends.
        let h = headers(&[(
            "Bob-Signature",
            &hex::encode(hmac256(SECRET.as_bytes(), &[&body])),
        )]);
        unauthenticated(post(&src(), &h, &body));
    }

    #[test]
    fn rotation() {
        let src = source("hibob", json!({ "secrets": [SECRET, OTHER] }));
        let body = sample("hibob_employee_left.json");
        one(post(&src, &signed(OTHER, &body), &body));
    }

    #[test]
    fn malformed_too_large_unprocessable() {
        let body = b"{not json";
        let m = malformed(post(&src(), &signed(SECRET, body), body));
        assert!(m.starts_with("body: expected JSON"), "{m}");
        let small = source("hibob", json!({ "secret": SECRET, "max_body_bytes": 10 }));
        let body = sample("hibob_employee_left.json");
        assert_eq!(too_large(post(&small, &signed(SECRET, &body), &body)), 10);
        let body = br#"{"type":"employee.left","triggeredAt":"2024-03-15T00:00:00","data":{}}"#;
        unprocessable(post(&src(), &signed(SECRET, body), body));
    }

    #[test]
    fn configured_event_sets() {
        let src = source(
            "hibob",
            json!({ "secret": SECRET, "termination_events": ["employee.left"], "cancellation_events": [] }),
        );
        let body = br#"{"type":"employee.inactivated","triggeredAt":"2024-03-15T00:00:00","data":{"employeeId":"5"}}"#;
        ignored(post(&src, &signed(SECRET, body), body));
    }
}

mod gusto {
    use super::*;

    const TOKEN: &str = "6590f590-3dba-495e-9bea-c361e1e2efc0";
    const OTHER: &str = "0b0d5e1e-2222-4c4c-8888-0123456789ab";

    fn src() -> revoke_intake::Source {
        source("gusto", json!({ "secret": TOKEN }))
    }

    fn signed(key: &str, body: &[u8]) -> http::HeaderMap {
        headers(&[(
            "X-Gusto-Signature",
            &hex::encode(hmac256(key.as_bytes(), &[body])),
        )])
    }

    #[test]
    fn terminated_and_cancelled() {
        let body = sample("gusto_employee_terminated.json");
        let e = one(post(&src(), &signed(TOKEN, &body), &body));
        assert_eq!(e.kind, EventKind::Termination);
        assert_eq!(e.source_event_id, "03ffbf0c-48a9-4f1c-932a-546413a26ad1");
        assert_eq!(
            e.employee_id.as_deref(),
            Some("bcfc9744-0ab3-4ef3-ab0d-e728255d659c")
        );
        assert_eq!(e.effective_at.to_rfc3339(), "2024-03-15T11:59:00+00:00");
        let body = sample("gusto_termination_cancelled.json");
        let e = one(post(&src(), &signed(TOKEN, &body), &body));
        assert_eq!(e.kind, EventKind::Cancellation);
        let body = br#"{"uuid":"u1","event_type":"employee.updated","entity_type":"Employee","entity_uuid":"x","timestamp":1710503940}"#;
        let (id, _) = ignored(post(&src(), &signed(TOKEN, body), body));
        assert_eq!(id.as_deref(), Some("u1"));
        let body = br#"{"uuid":"u2","event_type":"employee.terminated","entity_type":"Company","entity_uuid":"x"}"#;
        ignored(post(&src(), &signed(TOKEN, body), body));
    }

    #[test]
    fn verification_request_is_a_probe_without_repeating_the_token() {
        let body = br#"{"verification_token": "asefasedfe23e234easd"}"#;
        let reason = probe(post(&src(), &headers(&[]), body));
        assert!(!reason.contains("asefasedfe23e234easd"), "{reason}");
        // Anything else unsigned is refused.
        let body = sample("gusto_employee_terminated.json");
        assert_eq!(
            unauthenticated(post(&src(), &headers(&[]), &body)),
            "missing header X-Gusto-Signature"
        );
    }

    #[test]
    fn forged_and_wrong_are_refused() {
        let body = sample("gusto_employee_terminated.json");
        let m = unauthenticated(post(&src(), &signed(TOKEN, &body), &flip(&body)));
        assert!(m.contains("X-Gusto-Signature"), "{m}");
        unauthenticated(post(&src(), &signed(OTHER, &body), &body));
    }

    #[test]
    fn rotation() {
        let src = source("gusto", json!({ "secret": [TOKEN, OTHER] }));
        let body = sample("gusto_employee_terminated.json");
        one(post(&src, &signed(OTHER, &body), &body));
    }

    #[test]
    fn malformed_too_large_unprocessable() {
        let body = b"[1, 2";
        malformed(post(&src(), &signed(TOKEN, body), body));
        let body = br#"{"uuid":"u","entity_type":"Employee"}"#;
        let m = malformed(post(&src(), &signed(TOKEN, body), body));
        assert_eq!(
            m,
            "field event_type: expected a non-empty string, found nothing"
        );
        let small = source("gusto", json!({ "secret": TOKEN, "max_body_bytes": 32 }));
        let body = sample("gusto_employee_terminated.json");
        too_large(post(&small, &signed(TOKEN, &body), &body));
        let body = br#"{"uuid":"u3","event_type":"employee.terminated","entity_type":"Employee","timestamp":1710503940}"#;
        unprocessable(post(&src(), &signed(TOKEN, body), body));
    }
}

mod personio {
    use super::*;

    const SECRET: &str = "personio-shared-secret";
    const OTHER: &str = "personio-shared-secret-2";

    fn src() -> revoke_intake::Source {
        source("personio", json!({ "secret": SECRET }))
    }

    fn signed(key: &str, body: &[u8]) -> http::HeaderMap {
        headers(&[(
            "X-Personio-Signature",
            &hex::encode(hmac256(key.as_bytes(), &[body])),
        )])
    }

    #[test]
    fn employment_terminated() {
        let body = sample("personio_employment_terminated.json");
        let e = one(post(&src(), &signed(SECRET, &body), &body));
        assert_eq!(e.kind, EventKind::Termination);
        assert_eq!(e.employee_id.as_deref(), Some("2871935"));
        assert_eq!(e.source_event_id, "0b9f0e5c-6a55-4f52-8e0e-3a3f2f1f5e21");
        assert_eq!(e.effective_at.to_rfc3339(), "2024-03-15T00:00:00+01:00");
    }

    #[test]
    fn update_with_termination_date_in_berlin_across_dst() {
        let src = source(
            "personio",
            json!({ "secret": SECRET, "timezone": "Europe/Berlin" }),
        );
        let body = sample("personio_employment_updated.json");
        let e = one(post(&src, &signed(SECRET, &body), &body));
        assert_eq!(e.employee_id.as_deref(), Some("2871936"));
        assert_eq!(e.email.as_deref(), Some("max.mustermann@example.de"));
        // Last day 2024-03-31 (DST starts that night): access ends 2024-04-01 00:00 CEST.
        assert_eq!(e.effective_at.to_rfc3339(), "2024-04-01T00:00:00+02:00");
        assert_eq!(e.reason.as_deref(), Some("Resignation"));
        assert!(!e.involuntary);
        let body = br#"{"company_id":"1","event_name":"employment.updated","occurred_at":"2024-03-01T09:12:44+01:00","payload":{"id":"9","person":{"id":"2"}}}"#;
        ignored(post(&src, &signed(SECRET, body), body));
    }

    #[test]
    fn custom_header_and_prefix() {
        let src = source(
            "personio",
            json!({ "secret": SECRET, "signature_header": "X-Hub-Signature-256" }),
        );
        let body = sample("personio_employment_terminated.json");
        let sig = format!(
            "sha256={}",
            hex::encode(hmac256(SECRET.as_bytes(), &[&body]))
        );
        one(post(
            &src,
            &headers(&[("X-Hub-Signature-256", &sig)]),
            &body,
        ));
        assert_eq!(
            unauthenticated(post(&src, &signed(SECRET, &body), &body)),
            "missing header x-hub-signature-256"
        );
    }

    #[test]
    fn forged_missing_wrong_rotation() {
        let body = sample("personio_employment_terminated.json");
        unauthenticated(post(&src(), &signed(SECRET, &body), &flip(&body)));
        unauthenticated(post(&src(), &headers(&[]), &body));
        unauthenticated(post(&src(), &signed(OTHER, &body), &body));
        let rotated = source("personio", json!({ "secrets": [SECRET, OTHER] }));
        one(post(&rotated, &signed(OTHER, &body), &body));
    }

    #[test]
    fn malformed_too_large_unprocessable() {
        let body = b"<xml/>";
        malformed(post(&src(), &signed(SECRET, body), body));
        let small = source("personio", json!({ "secret": SECRET, "max_body_bytes": 8 }));
        too_large(post(&small, &headers(&[]), b"123456789"));
        let body = br#"{"company_id":"1","event_name":"employment.terminated","occurred_at":"2024-03-15T00:00:00+01:00","payload":{}}"#;
        unprocessable(post(&src(), &signed(SECRET, body), body));
    }
}

mod okta {
    use super::*;

    const SECRET: &str = "okta-hook-secret-value";
    const OTHER: &str = "okta-hook-secret-next";

    fn src() -> revoke_intake::Source {
        source("okta", json!({ "secret": SECRET }))
    }

    fn auth(v: &str) -> http::HeaderMap {
        headers(&[("Authorization", v)])
    }

    #[test]
    fn verification_challenge_after_the_secret() {
        let h = headers(&[
            ("Authorization", SECRET),
            (
                "X-Okta-Verification-Challenge",
                "lu0FhWCsWCr3dm6x8thSa4u7yZQoZSKaVzAdpFIW",
            ),
        ]);
        match call(&src(), "GET", "", &h, b"") {
            Ok(Intake::Challenge(v)) => assert_eq!(
                v,
                json!({ "verification": "lu0FhWCsWCr3dm6x8thSa4u7yZQoZSKaVzAdpFIW" })
            ),
            other => panic!("expected a challenge, found {other:?}"),
        }
        let h = headers(&[("X-Okta-Verification-Challenge", "abc")]);
        assert_eq!(
            unauthenticated(call(&src(), "GET", "", &h, b"")),
            "missing header authorization"
        );
        let m = malformed(call(&src(), "GET", "", &auth(SECRET), b""));
        assert!(m.contains("X-Okta-Verification-Challenge"), "{m}");
    }

    #[test]
    fn event_batch() {
        let body = sample("okta_event_hook.json");
        let events = match post(&src(), &auth(SECRET), &body) {
            Ok(Intake::Events(v)) => v,
            other => panic!("expected events, found {other:?}"),
        };
        assert_eq!(events.len(), 2);
        assert_eq!(
            events[0].source_event_id,
            "2d1b4a8e-4b0e-11ee-8a4d-6f1c2e3d4a5b"
        );
        assert_eq!(events[0].email.as_deref(), Some("jane.doe@example.com"));
        assert_eq!(events[0].username.as_deref(), Some("jane.doe@example.com"));
        assert_eq!(
            events[0].effective_at.to_rfc3339(),
            "2024-03-15T11:59:30.112+00:00"
        );
        assert_eq!(events[1].email, None);
        assert_eq!(events[1].username.as_deref(), Some("sam.lee"));
        assert!(events.iter().all(|e| e.kind == EventKind::Termination));
        // Each event carries its own hash: the same event in another batch is a redelivery,
        // the same uuid with other content is another body (409 at the daemon).
        assert_ne!(events[0].body_sha256, events[1].body_sha256);
        assert!(events.iter().all(|e| e.body_sha256 != hex_sha256(&body)));
        let mut doc: serde_json::Value = serde_json::from_slice(&body).expect("json");
        let list = doc["data"]["events"].as_array_mut().expect("events");
        list.remove(1);
        let alone = serde_json::to_vec(&doc).expect("json");
        let again = post(&src(), &auth(SECRET), &alone)
            .expect("accepted")
            .into_events();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].source_event_id, events[0].source_event_id);
        assert_eq!(again[0].body_sha256, events[0].body_sha256);
        doc["data"]["events"][0]["published"] = "2024-03-16T00:00:00.000Z".into();
        let changed = serde_json::to_vec(&doc).expect("json");
        let changed = post(&src(), &auth(SECRET), &changed)
            .expect("accepted")
            .into_events();
        assert_ne!(changed[0].body_sha256, events[0].body_sha256);
    }

    #[test]
    fn failed_outcomes_and_other_types_are_ignored() {
        let body = br#"{"eventId":"d1","data":{"events":[{"uuid":"e1","eventType":"user.lifecycle.deactivate","outcome":{"result":"FAILURE"},"target":[{"type":"User","alternateId":"a@example.com"}]}]}}"#;
        let (id, reason) = ignored(post(&src(), &auth(SECRET), body));
        assert_eq!(id.as_deref(), Some("d1"));
        assert!(reason.contains("FAILURE"), "{reason}");
        let body = br#"{"eventId":"d2","data":{"events":[{"uuid":"e2","eventType":"user.lifecycle.unsuspend","published":"2024-03-15T11:00:00Z","outcome":{"result":"SUCCESS"},"target":[{"type":"User","alternateId":"a@example.com"}]}]}}"#;
        assert_eq!(
            one(post(&src(), &auth(SECRET), body)).kind,
            EventKind::Cancellation
        );
    }

    #[test]
    fn wrong_missing_and_hashed_secret() {
        let body = sample("okta_event_hook.json");
        let m = unauthenticated(post(&src(), &auth(OTHER), &body));
        assert!(m.contains("authorization"), "{m}");
        unauthenticated(post(&src(), &auth(&flip_char(SECRET)), &body));
        unauthenticated(post(&src(), &headers(&[]), &body));
        let hashed = source(
            "okta",
            json!({ "token_sha256": hex_sha256(SECRET.as_bytes()) }),
        );
        match post(&hashed, &auth(SECRET), &body) {
            Ok(Intake::Events(v)) => assert_eq!(v.len(), 2),
            other => panic!("expected events, found {other:?}"),
        }
        let rotated = source("okta", json!({ "secrets": [SECRET, OTHER] }));
        post(&rotated, &auth(OTHER), &body).expect("second secret authenticates");
        let custom = source("okta", json!({ "secret": SECRET, "header": "X-Hook-Auth" }));
        post(&custom, &headers(&[("X-Hook-Auth", SECRET)]), &body).expect("custom header");
        unauthenticated(post(&custom, &auth(SECRET), &body));
    }

    #[test]
    fn malformed_too_large_unprocessable() {
        let m = malformed(post(&src(), &auth(SECRET), b"{"));
        assert!(m.starts_with("body: expected JSON"), "{m}");
        let m = malformed(post(&src(), &auth(SECRET), br#"{"data":{}}"#));
        assert_eq!(
            m,
            "field data.events: expected a list of events, found nothing"
        );
        let small = source("okta", json!({ "secret": SECRET, "max_body_bytes": 100 }));
        too_large(post(&small, &auth(SECRET), &sample("okta_event_hook.json")));
        let body = br#"{"data":{"events":[{"uuid":"e3","eventType":"user.lifecycle.deactivate","target":[{"type":"AppInstance","alternateId":"Slack"}]}]}}"#;
        let m = unprocessable(post(&src(), &auth(SECRET), body));
        assert!(m.contains("e3"), "{m}");
    }
}

mod scim {
    use super::*;

    const TOKEN: &str = "scim-bearer-token-f00d";
    const OTHER: &str = "scim-bearer-token-beef";

    fn src() -> revoke_intake::Source {
        source(
            "scim",
            json!({ "token_sha256": hex_sha256(TOKEN.as_bytes()) }),
        )
    }

    fn bearer(t: &str) -> http::HeaderMap {
        headers(&[("Authorization", &format!("Bearer {t}"))])
    }

    #[test]
    fn entra_patch_with_string_false() {
        let body = sample("scim_patch_entra.json");
        let path = "/scim/v2/Users/jane.doe%40example.com";
        let e = one(call(&src(), "PATCH", path, &bearer(TOKEN), &body));
        assert_eq!(e.kind, EventKind::Termination);
        assert_eq!(e.username.as_deref(), Some("jane.doe@example.com"));
        assert_eq!(e.effective_at, now().fixed_offset());
        assert_eq!(
            e.reply,
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "id": "jane.doe@example.com",
                "userName": "jane.doe@example.com",
                "active": false
            }))
        );
        // The id is derived from method, id and body, so a retry deduplicates.
        let again = one(call(&src(), "PATCH", path, &bearer(TOKEN), &body));
        assert_eq!(again.source_event_id, e.source_event_id);
        let other = one(call(
            &src(),
            "PUT",
            path,
            &bearer(TOKEN),
            &sample("scim_put_user.json"),
        ));
        assert_ne!(other.source_event_id, e.source_event_id);
    }

    #[test]
    fn okta_patch_without_path_and_without_prefix() {
        let body = sample("scim_patch_okta.json");
        let e = one(call(&src(), "PATCH", "/Users/jdoe", &bearer(TOKEN), &body));
        assert_eq!(e.username.as_deref(), Some("jdoe"));
    }

    #[test]
    fn put_full_user() {
        let src = source("scim", json!({ "secret": TOKEN, "id_is": "employee_id" }));
        let body = sample("scim_put_user.json");
        let e = one(call(
            &src,
            "PUT",
            "/scim/v2/Users/2819c223",
            &bearer(TOKEN),
            &body,
        ));
        assert_eq!(e.employee_id.as_deref(), Some("2819c223"));
        assert_eq!(e.username.as_deref(), Some("jane.doe@example.com"));
        assert_eq!(e.email.as_deref(), Some("jane.doe@example.com"));
        let default_src = src_email();
        let e = one(call(
            &default_src,
            "PUT",
            "/scim/v2/Users/j%40example.com",
            &bearer(TOKEN),
            &body,
        ));
        assert_eq!(e.email.as_deref(), Some("j@example.com"));
        assert_eq!(e.employee_id.as_deref(), Some("E-10442"));
    }

    fn src_email() -> revoke_intake::Source {
        source("scim", json!({ "secret": TOKEN, "id_is": "email" }))
    }

    #[test]
    fn anything_but_deactivation_is_ignored() {
        let body = br#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":true}]}"#;
        ignored(call(
            &src(),
            "PATCH",
            "/scim/v2/Users/u1",
            &bearer(TOKEN),
            body,
        ));
        let body = br#"{"Operations":[{"op":"Replace","path":"title","value":"CFO"}]}"#;
        ignored(call(
            &src(),
            "PATCH",
            "/scim/v2/Users/u1",
            &bearer(TOKEN),
            body,
        ));
        let body = br#"{"userName":"u1","active":"TRUE"}"#;
        ignored(call(
            &src(),
            "PUT",
            "/scim/v2/Users/u1",
            &bearer(TOKEN),
            body,
        ));
        ignored(call(
            &src(),
            "DELETE",
            "/scim/v2/Users/u1",
            &bearer(TOKEN),
            b"",
        ));
        ignored(call(
            &src(),
            "PATCH",
            "/scim/v2/Groups/g1",
            &bearer(TOKEN),
            b"{}",
        ));
    }

    #[test]
    fn lookups_answer_with_a_user() {
        let path = "/scim/v2/Users?filter=userName+eq+%22jane.doe%40example.com%22";
        match call(&src(), "GET", path, &bearer(TOKEN), b"") {
            Ok(Intake::Challenge(v)) => {
                assert_eq!(v["totalResults"], 1);
                assert_eq!(v["Resources"][0]["id"], "jane.doe@example.com");
                assert_eq!(v["Resources"][0]["active"], true);
            }
            other => panic!("expected a reply, found {other:?}"),
        }
        match call(&src(), "GET", "/scim/v2/Users/u1", &bearer(TOKEN), b"") {
            Ok(Intake::Challenge(v)) => assert_eq!(v["id"], "u1"),
            other => panic!("expected a reply, found {other:?}"),
        }
        unauthenticated(call(&src(), "GET", "/scim/v2/Users/u1", &headers(&[]), b""));
    }

    #[test]
    fn auth_failures() {
        let body = sample("scim_patch_entra.json");
        let path = "/scim/v2/Users/u1";
        assert_eq!(
            unauthenticated(call(&src(), "PATCH", path, &headers(&[]), &body)),
            "missing header authorization"
        );
        unauthenticated(call(&src(), "PATCH", path, &bearer(OTHER), &body));
        unauthenticated(call(
            &src(),
            "PATCH",
            path,
            &bearer(&flip_char(TOKEN)),
            &body,
        ));
        let basic = headers(&[("Authorization", "Basic dXNlcjpwYXNz")]);
        let m = unauthenticated(call(&src(), "PATCH", path, &basic, &body));
        assert!(m.contains("Bearer"), "{m}");
        let rotated = source(
            "scim",
            json!({ "token_sha256": [hex_sha256(OTHER.as_bytes()), hex_sha256(TOKEN.as_bytes())] }),
        );
        one(call(&rotated, "PATCH", path, &bearer(TOKEN), &body));
        one(call(&rotated, "PATCH", path, &bearer(OTHER), &body));
    }

    #[test]
    fn malformed_too_large_and_no_id() {
        let path = "/scim/v2/Users/u1";
        let m = malformed(call(&src(), "PATCH", path, &bearer(TOKEN), b"{"));
        assert!(m.starts_with("body: expected JSON"), "{m}");
        let m = malformed(call(
            &src(),
            "PATCH",
            path,
            &bearer(TOKEN),
            br#"{"schemas":[]}"#,
        ));
        assert!(m.starts_with("field Operations"), "{m}");
        let body = br#"{"Operations":[{"op":"replace","path":"active","value":"maybe"}]}"#;
        let m = malformed(call(&src(), "PATCH", path, &bearer(TOKEN), body));
        assert!(m.contains("expected true or false"), "{m}");
        let m = malformed(call(
            &src(),
            "PATCH",
            "/scim/v2/Widgets/1",
            &bearer(TOKEN),
            b"{}",
        ));
        assert!(m.starts_with("path: expected /scim/v2/Users"), "{m}");
        // No identifier: the path's id is blank.
        let body = sample("scim_patch_okta.json");
        malformed(call(
            &src(),
            "PATCH",
            "/scim/v2/Users/%20",
            &bearer(TOKEN),
            &body,
        ));
        let small = source("scim", json!({ "secret": TOKEN, "max_body_bytes": 16 }));
        too_large(call(&small, "PATCH", path, &bearer(TOKEN), &body));
    }
}

mod generic {
    use super::*;

    const TOKEN: &str = "generic-token-5a5a";

    fn params() -> serde_json::Value {
        json!({
            "token_sha256": hex_sha256(TOKEN.as_bytes()),
            "timezone": "Europe/Berlin",
            "event_id": "/id",
            "employee_id": "/person/worker_id",
            "email": "/person/work_email",
            "username": "/person/login",
            "effective_at": "/offboarding/last_day",
            "reason": "/offboarding/reason",
            "involuntary": "/offboarding/involuntary",
            "event_kind": "/action",
            "termination_values": ["offboard"],
            "cancellation_values": ["cancel_offboard"]
        })
    }

    fn bearer(t: &str) -> http::HeaderMap {
        headers(&[("Authorization", &format!("Bearer {t}"))])
    }

    #[test]
    fn pointers_map_the_payload() {
        let src = source("generic", params());
        let body = sample("generic_offboarding.json");
        let e = one(post(&src, &bearer(TOKEN), &body));
        assert_eq!(e.source_event_id, "evt_01HS8Z6V3K2Q");
        assert_eq!(e.employee_id.as_deref(), Some("W-2231"));
        assert_eq!(e.email.as_deref(), Some("jane.doe@example.com"));
        assert_eq!(e.username.as_deref(), Some("jdoe"));
        assert_eq!(e.effective_at.to_rfc3339(), "2024-02-01T00:00:00+01:00");
        assert!(e.involuntary);
        assert!(e.high_risk);
    }

    #[test]
    fn kind_values_and_default_event_id() {
        let src = source("generic", params());
        let body = br#"{"id":"c1","action":"cancel_offboard","person":{"worker_id":"W1"}}"#;
        assert_eq!(
            one(post(&src, &bearer(TOKEN), body)).kind,
            EventKind::Cancellation
        );
        let body = br#"{"id":"c2","action":"promote","person":{"worker_id":"W1"}}"#;
        let (id, _) = ignored(post(&src, &bearer(TOKEN), body));
        assert_eq!(id.as_deref(), Some("c2"));
        let body = br#"{"id":"c3","person":{"worker_id":"W1"}}"#;
        let m = malformed(post(&src, &bearer(TOKEN), body));
        assert!(m.starts_with("field /action (event_kind)"), "{m}");

        let plain = source("generic", json!({ "secret": TOKEN, "email": "/email" }));
        let body = br#"{"email":"a@example.com"}"#;
        let e = one(post(&plain, &bearer(TOKEN), body));
        assert_eq!(e.source_event_id, hex_sha256(body));
        assert_eq!(e.kind, EventKind::Termination);
    }

    #[test]
    fn auth_failures_and_rotation() {
        let src = source("generic", params());
        let body = sample("generic_offboarding.json");
        unauthenticated(post(&src, &headers(&[]), &body));
        unauthenticated(post(&src, &bearer("nope"), &body));
        unauthenticated(post(&src, &bearer(&flip_char(TOKEN)), &body));
        let rotated = source(
            "generic",
            json!({ "secret": ["old-token", TOKEN], "email": "/person/work_email" }),
        );
        one(post(&rotated, &bearer(TOKEN), &body));
        one(post(&rotated, &bearer("old-token"), &body));
    }

    #[test]
    fn malformed_too_large_unprocessable() {
        let src = source("generic", params());
        malformed(post(&src, &bearer(TOKEN), b"nope"));
        let body = br#"{"id":"x","action":"offboard","person":{"worker_id":"W1"},"offboarding":{"last_day":"soon"}}"#;
        let m = malformed(post(&src, &bearer(TOKEN), body));
        assert!(
            m.starts_with("field /offboarding/last_day: expected an RFC 3339 time"),
            "{m}"
        );
        let body = br#"{"action":"offboard","person":{"worker_id":"W1"}}"#;
        let m = malformed(post(&src, &bearer(TOKEN), body));
        assert!(m.starts_with("field /id (event_id)"), "{m}");
        let small = source(
            "generic",
            json!({ "secret": TOKEN, "email": "/e", "max_body_bytes": 5 }),
        );
        too_large(post(&small, &bearer(TOKEN), b"{\"e\":1}"));
        let body = br#"{"id":"x","action":"offboard","person":{}}"#;
        unprocessable(post(&src, &bearer(TOKEN), body));
    }
}

mod cross_cutting {
    use super::*;
    use revoke_intake::{standard_webhooks_sign, Source, SourceKind};

    #[test]
    fn debug_never_shows_secrets() {
        let whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let cases = [
            (
                "standard_webhooks",
                json!({ "secret": whsec }),
                vec![whsec, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
            ),
            (
                "bamboohr",
                json!({ "secret": "bamboo-top-secret" }),
                vec!["bamboo-top-secret"],
            ),
            (
                "hibob",
                json!({ "secrets": ["bob-top-secret"] }),
                vec!["bob-top-secret"],
            ),
            (
                "gusto",
                json!({ "secret": "gusto-top-secret" }),
                vec!["gusto-top-secret"],
            ),
            (
                "personio",
                json!({ "secret": "personio-top-secret" }),
                vec!["personio-top-secret"],
            ),
            (
                "okta",
                json!({ "secret": "okta-top-secret" }),
                vec!["okta-top-secret"],
            ),
            (
                "scim",
                json!({ "secret": "scim-top-secret" }),
                vec!["scim-top-secret"],
            ),
            (
                "generic",
                json!({ "secret": "generic-top-secret", "email": "/e" }),
                vec!["generic-top-secret"],
            ),
        ];
        for (kind, params, secrets) in cases {
            let src = source(kind, params);
            let debug = format!("{src:?} {src:#?}");
            assert!(debug.contains("redacted"), "{debug}");
            for s in secrets {
                assert!(!debug.contains(s), "{kind}: {debug}");
                assert!(
                    !debug.contains(&hex_sha256(s.as_bytes())),
                    "{kind}: {debug}"
                );
            }
            // Bytes of keys would show as numbers in a derived Debug.
            assert!(!debug.contains("hmac_keys"), "{debug}");
        }
        let src = source("scim", json!({ "secret": "scim-top-secret" }));
        let h = headers(&[("Authorization", "Bearer scim-top-secret")]);
        let req = revoke_intake::Request {
            method: "PATCH",
            path: "/Users/x",
            headers: &h,
            body: b"{}",
            now: now(),
        };
        let debug = format!("{req:?}");
        assert!(!debug.contains("scim-top-secret"), "{debug}");
        assert_eq!(src.kind(), SourceKind::Scim);
        assert_eq!(src.name(), "test");
    }

    #[test]
    fn injection_looking_values_are_data() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let src = source("standard_webhooks", json!({ "secret": secret }));
        let body = br#"{"type":"employee.terminated","data":{"employee_id":"*)(uid=*","username":"../x","email":"a';DROP/**/TABLE/**/users;--@example.com","reason":"${jndi:ldap://x}"}}"#;
        let sig = standard_webhooks_sign(secret, "m1", now().timestamp(), body).expect("signs");
        let h = headers(&[
            ("webhook-id", "m1"),
            ("webhook-timestamp", &now().timestamp().to_string()),
            ("webhook-signature", &sig),
        ]);
        let e = one(post(&src, &h, body));
        assert_eq!(e.employee_id.as_deref(), Some("*)(uid=*"));
        assert_eq!(e.username.as_deref(), Some("../x"));
        assert_eq!(
            e.email.as_deref(),
            Some("a';DROP/**/TABLE/**/users;--@example.com")
        );
        assert_eq!(e.reason.as_deref(), Some("${jndi:ldap://x}"));

        let scim = source("scim", json!({ "secret": "t" }));
        let body = sample("scim_patch_okta.json");
        let e = one(call(
            &scim,
            "PATCH",
            "/scim/v2/Users/*)(uid=*",
            &headers(&[("Authorization", "Bearer t")]),
            &body,
        ));
        assert_eq!(e.username.as_deref(), Some("*)(uid=*"));
        let e = one(call(
            &scim,
            "PATCH",
            "/scim/v2/Users/..%2Fx",
            &headers(&[("Authorization", "Bearer t")]),
            &body,
        ));
        assert_eq!(e.username.as_deref(), Some("../x"));
    }

    #[test]
    fn statuses_and_labels() {
        let cases = [
            (
                IntakeError::Unauthenticated(String::new()),
                401,
                "unauthenticated",
            ),
            (IntakeError::Malformed(String::new()), 400, "malformed"),
            (
                IntakeError::Unprocessable(String::new()),
                422,
                "unprocessable",
            ),
            (IntakeError::TooLarge { limit: 1 }, 413, "too_large"),
            (IntakeError::Config(String::new()), 500, "config"),
        ];
        for (e, status, label) in cases {
            assert_eq!(e.status(), status);
            assert_eq!(e.result_label(), label);
        }
    }

    #[test]
    fn kinds_round_trip() {
        for k in SourceKind::ALL {
            assert_eq!(SourceKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(SourceKind::parse("BambooHR"), None);
        assert_eq!(
            SourceKind::ALL.map(|k| k.as_str()),
            [
                "standard_webhooks",
                "bamboohr",
                "hibob",
                "gusto",
                "personio",
                "okta",
                "scim",
                "generic"
            ]
        );
    }

    #[test]
    fn event_serializes_snake_case_without_reply() {
        let src = source("scim", json!({ "secret": "t" }));
        let e = one(call(
            &src,
            "PATCH",
            "/Users/u1",
            &headers(&[("Authorization", "Bearer t")]),
            &sample("scim_patch_okta.json"),
        ));
        let v = serde_json::to_value(&e).expect("serializes");
        assert_eq!(v["kind"], "termination");
        assert!(v.get("reply").is_none());
        let back: revoke_intake::NormalizedEvent = serde_json::from_value(v).expect("parses");
        assert_eq!(back.reply, None);
        assert_eq!(back.source_event_id, e.source_event_id);
        assert_eq!(Intake::Event(e).into_events().len(), 1);
    }

    #[test]
    fn risk_rules() {
        let r = revoke_intake::RiskRules::default();
        assert!(r.involuntary_is_high);
        assert_eq!(r.high_reasons, ["misconduct", "cause", "security"]);
        assert!(r.is_high(false, Some("Gross MISCONDUCT"), None));
        assert!(r.is_high(true, None, None));
        assert!(r.is_high(false, None, Some(true)));
        assert!(
            r.is_high(true, None, Some(false)),
            "explicit false does not override"
        );
        assert!(!r.is_high(false, Some("Relocation"), None));
        assert!(!r.is_high(false, None, None));
        let parsed: revoke_intake::RiskRules =
            serde_json::from_value(json!({ "high_reasons": ["fraud"] })).expect("parses");
        assert!(parsed.involuntary_is_high, "defaults fill missing keys");
        assert!(parsed.is_high(false, Some("Suspected fraud"), None));
        assert!(!parsed.is_high(false, Some("misconduct"), None));
        assert!(
            serde_json::from_value::<revoke_intake::RiskRules>(json!({ "high_reason": [] }))
                .is_err()
        );
        let _ = Source::build("x", "okta", &json!({ "secret": "s" }), &parsed).expect("builds");
    }
}

#[test]
fn sources_can_be_shared_between_tasks() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<revoke_intake::Source>();
    assert_send_sync::<revoke_intake::NormalizedEvent>();
    assert_send_sync::<revoke_intake::Intake>();
    assert_send_sync::<IntakeError>();
}

/// The department each source carries lands in the event (and so in the job's stored event,
/// which batch views count by); a source or payload without one gives none.
mod department {
    use super::*;
    use revoke_intake::standard_webhooks_sign;

    const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const KEY: &str = "bamboo-private-key-7f3a";
    const TOKEN: &str = "dept-token-77";

    fn standard(body: &[u8]) -> revoke_intake::NormalizedEvent {
        let ts = now().timestamp();
        let sig = standard_webhooks_sign(WHSEC, "msg_dept", ts, body).expect("signs");
        let h = headers(&[
            ("webhook-id", "msg_dept"),
            ("webhook-timestamp", &ts.to_string()),
            ("webhook-signature", &sig),
        ]);
        one(post(
            &source("standard_webhooks", json!({ "secret": WHSEC })),
            &h,
            body,
        ))
    }

    fn bamboo(params: serde_json::Value, body: &[u8]) -> Result<Intake, IntakeError> {
        let ts = now().timestamp().to_string();
        let sig = hex::encode(hmac256(KEY.as_bytes(), &[body, ts.as_bytes()]));
        let h = headers(&[
            ("X-BambooHR-Signature", &sig),
            ("X-BambooHR-Timestamp", &ts),
        ]);
        post(&source("bamboohr", params), &h, body)
    }

    fn bearer() -> http::HeaderMap {
        headers(&[("Authorization", &format!("Bearer {TOKEN}"))])
    }

    #[test]
    fn standard_webhooks_data_department_is_stored_under_department() {
        let e = standard(&sample("standard_webhooks_terminated.json"));
        assert_eq!(e.department.as_deref(), Some("Sales"));
        // The key the store's batch views read from the recorded event.
        let stored = serde_json::to_value(&e).expect("serializes");
        assert_eq!(stored["department"], "Sales");
        let none = standard(&sample("standard_webhooks_cancelled.json"));
        assert_eq!(none.department, None);
        assert!(serde_json::to_value(&none).expect("serializes")["department"].is_null());
        // A label, not an identifier: trimmed, control characters dropped, bounded; blank is none.
        let body = br#"{"type":"employee.terminated","data":{"employee_id":"E1","department":"  Sales\u001b[31m  "}}"#;
        assert_eq!(standard(body).department.as_deref(), Some("Sales[31m"));
        let long = "D".repeat(300);
        let body =
            json!({"type":"employee.terminated","data":{"employee_id":"E1","department":long}})
                .to_string();
        assert_eq!(
            standard(body.as_bytes())
                .department
                .map(|d| d.chars().count()),
            Some(128)
        );
        let body =
            br#"{"type":"employee.terminated","data":{"employee_id":"E1","department":"  "}}"#;
        assert_eq!(standard(body).department, None);
        let body = br#"{"type":"employee.terminated","data":{"employee_id":"E1","department":7}}"#;
        assert_eq!(standard(body).department.as_deref(), Some("7"));
        let body =
            br#"{"type":"employee.terminated","data":{"employee_id":"E1","department":["x"]}}"#;
        let ts = now().timestamp();
        let sig = standard_webhooks_sign(WHSEC, "m", ts, body).expect("signs");
        let h = headers(&[
            ("webhook-id", "m"),
            ("webhook-timestamp", &ts.to_string()),
            ("webhook-signature", &sig),
        ]);
        let m = malformed(post(
            &source("standard_webhooks", json!({ "secret": WHSEC })),
            &h,
            body,
        ));
        assert!(m.contains("data.department"), "{m}");
    }

    #[test]
    fn bamboohr_department_field_by_default_or_as_configured() {
        let body = sample("bamboohr_field_based.json");
        let e = one(bamboo(json!({ "secret": KEY }), &body));
        assert_eq!(e.department.as_deref(), Some("Finance"));
        // BambooHR may post {"value": ...} and camelCase aliases.
        let body = br#"{"employees":[{"action":"Updated","changedFields":["Status"],"fields":{"Status":"Inactive","department":{"value":"IT"}},"id":"9","timestamp":"2024-03-15T10:00:00+0000"}]}"#;
        let e = one(bamboo(json!({ "secret": KEY }), body));
        assert_eq!(e.department.as_deref(), Some("IT"));
        // A renamed field, configured.
        let body = br#"{"employees":[{"action":"Updated","changedFields":["Status"],"fields":{"Status":"Inactive","Department":"Ignored","Cost Center":"CC-17"},"id":"9","timestamp":"2024-03-15T10:00:00+0000"}]}"#;
        let e = one(bamboo(
            json!({ "secret": KEY, "fields": { "department": "Cost Center" } }),
            body,
        ));
        assert_eq!(e.department.as_deref(), Some("CC-17"));
        // Not posted: none.
        let body = sample("bamboohr_batch.json");
        match bamboo(json!({ "secret": KEY }), &body) {
            Ok(Intake::Events(v)) => assert!(v.iter().all(|e| e.department.is_none()), "{v:?}"),
            other => panic!("expected events, found {other:?}"),
        }
    }

    #[test]
    fn scim_enterprise_department_from_put_and_from_an_entra_patch() {
        let src = source("scim", json!({ "secret": TOKEN }));
        for (method, body, department) in [
            ("PUT", "scim_put_user.json", Some("Tour Operations")),
            (
                "PATCH",
                "scim_patch_entra_department.json",
                Some("Customer Success"),
            ),
            ("PATCH", "scim_patch_entra.json", None),
        ] {
            let e = one(call(
                &src,
                method,
                "/scim/v2/Users/jdoe",
                &bearer(),
                &sample(body),
            ));
            assert_eq!(e.department.as_deref(), department, "{body}");
        }
    }

    #[test]
    fn generic_department_pointer() {
        let params = json!({
            "token_sha256": hex_sha256(TOKEN.as_bytes()),
            "employee_id": "/person/worker_id",
            "department": "/person/org/department"
        });
        let body = sample("generic_offboarding.json");
        let e = one(post(&source("generic", params.clone()), &bearer(), &body));
        assert_eq!(e.department.as_deref(), Some("Field Service"));
        // No pointer: none, whatever the payload holds.
        let mut without = params.clone();
        without.as_object_mut().expect("table").remove("department");
        let e = one(post(&source("generic", without), &bearer(), &body));
        assert_eq!(e.department, None);
        // The pointer finds nothing: none; finds a table: 400 naming the pointer.
        let e = one(post(
            &source("generic", params.clone()),
            &bearer(),
            br#"{"person":{"worker_id":"W-1"}}"#,
        ));
        assert_eq!(e.department, None);
        let m = malformed(post(
            &source("generic", params),
            &bearer(),
            br#"{"person":{"worker_id":"W-1","org":{"department":{"name":"x"}}}}"#,
        ));
        assert!(m.contains("/person/org/department"), "{m}");
    }

    #[test]
    fn sources_whose_payloads_carry_no_department_give_none() {
        // HiBob v2, Gusto, Personio and Okta send ids and metadata only.
        let body = sample("hibob_employee_left.json");
        let sig = b64(&hmac512(KEY.as_bytes(), &[&body]));
        let e = one(post(
            &source("hibob", json!({ "secret": KEY })),
            &headers(&[("Bob-Signature", &sig)]),
            &body,
        ));
        assert_eq!(e.department, None);
    }
}
