//! What an unauthenticated request may cost, and where authentication draws its lines: the
//! bounds on signature candidates and header sizes (checked before any MAC), exact timestamp
//! tolerance, and the generic source's event-kind pointer, which is `event_kind`.

mod common;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use common::*;
use revoke_intake::{
    standard_webhooks_sign, validate, EventKind, Intake, IntakeError, Request, Source,
};
use serde_json::{json, Value};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OLD_SECRET: &str = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=";

/// A termination padded to `len` bytes, as a flood would send.
fn padded_body(len: usize) -> Vec<u8> {
    let head = r#"{"type":"employee.terminated","data":{"employee_id":"E-1","pad":""#;
    let tail = r#""}}"#;
    let mut b = head.as_bytes().to_vec();
    b.resize(len - tail.len(), b'x');
    b.extend_from_slice(tail.as_bytes());
    b
}

fn webhook_headers(ts: i64, sigs: &str) -> http::HeaderMap {
    headers(&[
        ("webhook-id", "msg_sig"),
        ("webhook-timestamp", &ts.to_string()),
        ("webhook-signature", sigs),
    ])
}

/// `n` well-formed `v1,` entries that no configured secret made.
fn forged(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("v1,{}", b64(&[i as u8; 32])))
        .collect()
}

fn at(
    src: &Source,
    now: DateTime<Utc>,
    h: &http::HeaderMap,
    body: &[u8],
) -> Result<Intake, IntakeError> {
    src.handle(&Request {
        method: "POST",
        path: "",
        headers: h,
        body,
        now,
    })
}

fn issues(kind: &str, params: Value) -> Vec<(String, String)> {
    validate("intake.src", kind, &params)
        .into_iter()
        .map(|i| (i.path, i.message))
        .collect()
}

mod candidates {
    use super::*;

    fn src() -> Source {
        source(
            "standard_webhooks",
            json!({ "secrets": [OLD_SECRET, SECRET] }),
        )
    }

    /// The attack of issue 13: 30,000 empty `v1,` entries (about 120 KB) and a 256 KiB body.
    /// Before, each entry cost an HMAC over the body per secret (seconds of CPU) and the answer
    /// was "none matches"; now the header is refused by its size before any MAC.
    #[test]
    fn thirty_thousand_empty_entries_are_refused_by_size() {
        let body = padded_body(262_144);
        let sigs = vec!["v1,"; 30_000].join(" ");
        let m = unauthenticated(post(
            &src(),
            &webhook_headers(now().timestamp(), &sigs),
            &body,
        ));
        assert_eq!(
            m,
            "header webhook-signature: expected at most 4096 bytes, found 119999"
        );
    }

    #[test]
    fn more_candidates_than_allowed_are_refused_by_count() {
        let body = padded_body(262_144);
        let ts = now().timestamp();
        let valid = standard_webhooks_sign(SECRET, "msg_sig", ts, &body).expect("signs");
        // Sixteen (the default bound) with the valid one last: accepted.
        let mut sigs = forged(15);
        sigs.push(valid.clone());
        assert!(sigs.join(" ").len() <= 4096);
        let e = one(post(&src(), &webhook_headers(ts, &sigs.join(" ")), &body));
        assert_eq!(e.employee_id.as_deref(), Some("E-1"));
        // Seventeen, even with a valid one among them: refused, saying the bound.
        let mut sigs = forged(16);
        sigs.push(valid);
        let m = unauthenticated(post(&src(), &webhook_headers(ts, &sigs.join(" ")), &body));
        assert_eq!(
            m,
            "header webhook-signature: expected at most 16 signatures, found 17"
        );
        // Within the bound, entries that do not decode, are another version or another length
        // are unequal; a valid one by the older secret still authenticates.
        let body = br#"{"type":"employee.terminated","data":{"employee_id":"E-3"}}"#;
        let valid = standard_webhooks_sign(OLD_SECRET, "msg_sig", ts, body).expect("signs");
        let short = format!("v1,{}", b64(&[7u8; 31]));
        let sigs = format!("v1, v1,!!! {short} v9,abc {valid}");
        one(post(&src(), &webhook_headers(ts, &sigs), body));
        let sigs = format!("v1, v1,!!! {short} v9,abc");
        let m = unauthenticated(post(&src(), &webhook_headers(ts, &sigs), body));
        assert!(m.ends_with("found none that matches"), "{m}");
    }

    #[test]
    fn the_bounds_are_per_source() {
        let body = br#"{"type":"employee.terminated","data":{"employee_id":"E-2"}}"#;
        let ts = now().timestamp();
        let valid = standard_webhooks_sign(SECRET, "msg_sig", ts, body).expect("signs");
        let tight = source(
            "standard_webhooks",
            json!({ "secret": SECRET, "max_signatures": 2, "max_signature_header_bytes": 256 }),
        );
        let two = format!("{} {valid}", forged(1)[0]);
        one(post(&tight, &webhook_headers(ts, &two), body));
        let three = format!("{} {two}", forged(1)[0]);
        assert_eq!(
            unauthenticated(post(&tight, &webhook_headers(ts, &three), body)),
            "header webhook-signature: expected at most 2 signatures, found 3"
        );
        let long = format!("{valid} v2,{}", "A".repeat(256));
        assert_eq!(
            unauthenticated(post(&tight, &webhook_headers(ts, &long), body)),
            format!(
                "header webhook-signature: expected at most 256 bytes, found {}",
                long.len()
            )
        );
        // The same bound covers the id and the timestamp headers.
        let mut h = webhook_headers(ts, &valid);
        h.insert(
            "webhook-id",
            http::HeaderValue::from_str(&"i".repeat(257)).expect("value"),
        );
        assert_eq!(
            unauthenticated(post(&tight, &h, body)),
            "header webhook-id: expected at most 256 bytes, found 257"
        );
    }
}

/// A kind, its params, the header it authenticates with, and other headers it needs first.
type Bounded<'a> = (&'a str, Value, &'a str, &'a [(&'a str, &'a str)]);

/// Every source's signature or token header is bounded the same way, before it is decoded or
/// hashed: one byte over `max_signature_header_bytes` is refused, naming the header.
#[test]
fn every_source_bounds_its_signature_or_token_header() {
    let token = "t".repeat(10);
    let cases: [Bounded<'_>; 7] = [
        (
            "bamboohr",
            json!({ "secret": "k" }),
            "X-BambooHR-Signature",
            &[("X-BambooHR-Timestamp", "1710504000")],
        ),
        ("hibob", json!({ "secret": "k" }), "Bob-Signature", &[]),
        ("gusto", json!({ "secret": "k" }), "X-Gusto-Signature", &[]),
        (
            "personio",
            json!({ "secret": "k" }),
            "x-personio-signature",
            &[],
        ),
        ("okta", json!({ "secret": token }), "authorization", &[]),
        ("scim", json!({ "secret": token }), "authorization", &[]),
        (
            "generic",
            json!({ "secret": token, "email": "/e" }),
            "authorization",
            &[],
        ),
    ];
    for (kind, params, header, extra) in cases {
        for limit in [None, Some(300usize)] {
            let mut params = params.clone();
            if let Some(l) = limit {
                params["max_signature_header_bytes"] = json!(l);
            }
            let limit = limit.unwrap_or(4096);
            let src = source(kind, params);
            let value = format!("Bearer {}", "a".repeat(limit + 1 - 7));
            assert_eq!(value.len(), limit + 1);
            let mut pairs: Vec<(&str, &str)> = extra.to_vec();
            pairs.push((header, &value));
            let (method, path) = if kind == "scim" {
                ("PATCH", "/scim/v2/Users/u1")
            } else {
                ("POST", "")
            };
            let r = call(&src, method, path, &headers(&pairs), b"{}");
            assert_eq!(
                unauthenticated(r),
                format!(
                    "header {header}: expected at most {limit} bytes, found {}",
                    limit + 1
                ),
                "{kind}"
            );
        }
    }
}

#[test]
fn bound_params_are_validated() {
    assert_eq!(
        issues(
            "standard_webhooks",
            json!({ "secret": SECRET, "max_signatures": 64, "max_signature_header_bytes": 65536 })
        ),
        vec![]
    );
    let found = issues(
        "standard_webhooks",
        json!({ "secret": SECRET, "max_signatures": 0, "max_signature_header_bytes": 100 }),
    );
    assert_eq!(
        found,
        vec![
            (
                "intake.src.max_signatures".to_string(),
                "expected a whole number from 1 to 64, found a number (0)".to_string()
            ),
            (
                "intake.src.max_signature_header_bytes".to_string(),
                "expected a whole number from 256 to 65536, found a number (100)".to_string()
            ),
        ]
    );
    let found = issues("hibob", json!({ "secret": "k", "max_signatures": 4 }));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "intake.src.max_signatures");
    assert!(
        found[0]
            .1
            .starts_with("expected no max_signatures for kind \"hibob\""),
        "{}",
        found[0].1
    );
}

mod tolerance {
    use super::*;

    /// 12:00:00.250: the daemon's clock always has a fraction of a second.
    fn now_frac() -> DateTime<Utc> {
        now() + TimeDelta::milliseconds(250)
    }

    fn src() -> Source {
        source("standard_webhooks", json!({ "secret": SECRET }))
    }

    fn signed_at(ts: i64) -> (http::HeaderMap, &'static [u8]) {
        let body: &[u8] = br#"{"type":"employee.terminated","data":{"employee_id":"E-4"}}"#;
        let sig = standard_webhooks_sign(SECRET, "msg_sig", ts, body).expect("signs");
        (webhook_headers(ts, &sig), body)
    }

    /// now + 301 s (whole seconds, as Standard Webhooks sends them) is 300.75 s ahead of a
    /// now of 12:00:00.250: before, truncation to 300 s let it in.
    #[test]
    fn standard_webhooks_future_side_is_not_truncated() {
        let base = now().timestamp();
        let (h, body) = signed_at(base + 301);
        let m = unauthenticated(at(&src(), now_frac(), &h, body));
        assert!(m.contains("300.750 s in the future"), "{m}");
        let (h, body) = signed_at(base + 300);
        one(at(&src(), now_frac(), &h, body));
        let (h, body) = signed_at(base - 300);
        let m = unauthenticated(at(&src(), now_frac(), &h, body));
        assert!(m.contains("300.250 s in the past"), "{m}");
        let (h, body) = signed_at(base - 299);
        one(at(&src(), now_frac(), &h, body));
    }

    /// BambooHR timestamps may carry fractions: now ± 300 s exactly is accepted, ± 300.001 s
    /// refused, on both sides.
    #[test]
    fn bamboohr_boundary_is_exact_to_the_millisecond() {
        let src = source("bamboohr", json!({ "secret": "bamboo-key" }));
        let body = br#"{"employees":[{"id":"7","action":"Updated","changedFields":["Status"],"fields":{"Status":"Inactive"}}]}"#;
        let now = now_frac();
        let tol = TimeDelta::seconds(300);
        let ms = TimeDelta::milliseconds(1);
        for (sent, ok) in [
            (now + tol, true),
            (now - tol, true),
            (now + tol + ms, false),
            (now - tol - ms, false),
        ] {
            let ts = sent.to_rfc3339_opts(SecondsFormat::Millis, true);
            let sig = hex::encode(hmac256(b"bamboo-key", &[body, ts.as_bytes()]));
            let h = headers(&[
                ("X-BambooHR-Signature", &sig),
                ("X-BambooHR-Timestamp", &ts),
            ]);
            let r = at(&src, now, &h, body);
            if ok {
                assert!(matches!(r, Ok(Intake::Event(_))), "{ts}: {r:?}");
            } else {
                let m = unauthenticated(r);
                assert!(m.contains("300.001 s in the"), "{ts}: {m}");
            }
        }
    }
}

mod generic_event_kind {
    use super::*;

    const TOKEN: &str = "example-token";

    /// The documented `[intake.workday]` example, as the daemon hands it over (without `kind`).
    fn documented() -> Value {
        json!({
            "token_sha256": "4d1566a1d7df42a8517456d60ea06ed284e535cfe4c956aa6ee172dbcdf945f7",
            "timezone": "Europe/Berlin",
            "event_id": "/id",
            "employee_id": "/person/worker_id",
            "email": "/person/work_email",
            "effective_at": "/offboarding/last_day",
            "reason": "/offboarding/reason",
            "involuntary": "/offboarding/involuntary",
            "event_kind": "/action",
            "termination_values": ["offboard"],
            "cancellation_values": ["cancel_offboard"]
        })
    }

    #[test]
    fn the_documented_example_maps_terminations_and_cancellations() {
        assert_eq!(hex_sha256(TOKEN.as_bytes()), documented()["token_sha256"]);
        assert_eq!(issues("generic", documented()), vec![]);
        let src = source("generic", documented());
        let h = headers(&[("Authorization", &format!("Bearer {TOKEN}"))]);
        let body = br#"{"id":"w1","action":"offboard","person":{"worker_id":"W-9"}}"#;
        assert_eq!(one(post(&src, &h, body)).kind, EventKind::Termination);
        let body = br#"{"id":"w2","action":"cancel_offboard","person":{"worker_id":"W-9"}}"#;
        assert_eq!(one(post(&src, &h, body)).kind, EventKind::Cancellation);
        let body = br#"{"id":"w3","action":"transfer","person":{"worker_id":"W-9"}}"#;
        assert!(matches!(post(&src, &h, body), Ok(Intake::Ignored { .. })));
    }

    #[test]
    fn the_old_name_is_refused_where_we_can_see_it() {
        // As a source kind: `kind = "/action"` without `kind = "generic"`.
        let found = issues("/action", json!({}));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "intake.src.kind");
        assert!(
            found[0].1.contains("configured as event_kind"),
            "{}",
            found[0].1
        );
        // Among the parameters, by a caller that hands over the whole table.
        let mut params = documented();
        let map = params.as_object_mut().expect("table");
        map.remove("event_kind");
        map.insert("kind".to_string(), json!("/action"));
        let found = issues("generic", params);
        assert!(
            found
                .iter()
                .any(|(p, m)| p == "intake.src.kind" && m.contains("under event_kind")),
            "{found:?}"
        );
    }
}

/// Probes are answered before authentication, so only a body of a probe's size is read as
/// one; anything longer must be signed like any other request.
#[test]
fn only_small_bodies_are_read_as_unauthenticated_probes() {
    let bob = source("hibob", json!({ "secret": "k" }));
    assert!(matches!(
        post(&bob, &headers(&[]), b"Ping test"),
        Ok(Intake::Probe { .. })
    ));
    let padded = format!("{}Ping test", " ".repeat(300));
    assert_eq!(
        unauthenticated(post(&bob, &headers(&[]), padded.as_bytes())),
        "missing header Bob-Signature"
    );
    let gusto = source("gusto", json!({ "secret": "k" }));
    let small = json!({ "verification_token": "a".repeat(40) }).to_string();
    assert!(matches!(
        post(&gusto, &headers(&[]), small.as_bytes()),
        Ok(Intake::Probe { .. })
    ));
    let large = json!({ "verification_token": "a".repeat(2000) }).to_string();
    assert_eq!(
        unauthenticated(post(&gusto, &headers(&[]), large.as_bytes())),
        "missing header X-Gusto-Signature"
    );
}
