//! What authenticating one request costs at the bounds an unauthenticated sender controls: the
//! largest body and the most signature candidates a source accepts. A plain `std::time` loop
//! (no bench framework): `cargo bench -p revoke-intake --bench signatures` measures,
//! `cargo test --benches` runs a short pass that checks the outcomes only (no timing asserts).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{TimeZone, Utc};
use http::{HeaderMap, HeaderValue};
use revoke_intake::{standard_webhooks_sign, Intake, IntakeError, Request, RiskRules, Source};
use serde_json::json;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OLD_SECRET: &str = "whsec_b2xkLXNlY3JldC1zdGlsbC1hY2NlcHRlZA==";
const TS: i64 = 1_710_504_000;

/// A termination event padded to exactly `len` bytes of JSON.
fn body(len: usize) -> Vec<u8> {
    let head = r#"{"type":"employee.terminated","data":{"employee_id":"E-1","padding":""#;
    let tail = r#""}}"#;
    let mut b = head.as_bytes().to_vec();
    b.resize(len - tail.len(), b'x');
    b.extend_from_slice(tail.as_bytes());
    b
}

/// `count` well-formed `v1,` entries, none of which a configured secret made, then `last`.
fn signatures(count: usize, last: Option<&str>) -> String {
    let mut entries: Vec<String> = (0..count)
        .map(|i| format!("v1,{}", STANDARD.encode([i as u8; 32])))
        .collect();
    if let Some(l) = last {
        entries.pop();
        entries.push(l.to_string());
    }
    entries.join(" ")
}

fn headers(sigs: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("webhook-id", HeaderValue::from_static("msg_bench"));
    h.insert("webhook-timestamp", HeaderValue::from(TS));
    h.insert("webhook-signature", HeaderValue::from_str(sigs).unwrap());
    h
}

struct Case {
    name: &'static str,
    source: Source,
    headers: HeaderMap,
    body: Vec<u8>,
    /// `Ok(())` when the request must authenticate, else the start of the 401 message.
    expect: Result<(), &'static str>,
}

impl Case {
    fn run(&self) -> Result<Intake, IntakeError> {
        let now = Utc.timestamp_opt(TS, 250_000_000).unwrap();
        let req = Request {
            method: "POST",
            path: "",
            headers: &self.headers,
            body: &self.body,
            now,
        };
        self.source.handle(black_box(&req))
    }

    fn check(&self) {
        match (self.run(), self.expect) {
            (Ok(Intake::Event(_)), Ok(())) => {}
            (Err(IntakeError::Unauthenticated(m)), Err(start)) if m.starts_with(start) => {}
            (other, _) => panic!("{}: unexpected outcome {other:?}", self.name),
        }
    }
}

fn source(params: serde_json::Value) -> Source {
    Source::build("bench", "standard_webhooks", &params, &RiskRules::default()).unwrap()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let default_body = body(262_144);
    let valid = standard_webhooks_sign(SECRET, "msg_bench", TS, &default_body).unwrap();
    let two_secrets = json!({ "secrets": [OLD_SECRET, SECRET] });
    let max_params = json!({
        "secrets": [OLD_SECRET, SECRET],
        "max_signatures": 64,
        "max_body_bytes": 16_777_216,
        "max_signature_header_bytes": 65_536,
    });
    let max_body = body(16_777_216);
    let empty_v1 = vec!["v1,"; 30_000].join(" ");

    let cases = [
        Case {
            name: "defaults: 256 KiB body, 16 forged candidates, 2 secrets (refused)",
            source: source(two_secrets.clone()),
            headers: headers(&signatures(16, None)),
            body: default_body.clone(),
            expect: Err("header webhook-signature: expected a v1 signature"),
        },
        Case {
            name: "defaults: 256 KiB body, 16 forged candidates, 1 secret (refused)",
            source: source(json!({ "secret": SECRET })),
            headers: headers(&signatures(16, None)),
            body: default_body.clone(),
            expect: Err("header webhook-signature: expected a v1 signature"),
        },
        Case {
            name: "defaults: 256 KiB body, 16 candidates, the last valid (accepted, parsed)",
            source: source(two_secrets.clone()),
            headers: headers(&signatures(16, Some(&valid))),
            body: default_body.clone(),
            expect: Ok(()),
        },
        Case {
            name: "defaults: 17 candidates (refused before any MAC)",
            source: source(two_secrets.clone()),
            headers: headers(&signatures(17, None)),
            body: default_body.clone(),
            expect: Err("header webhook-signature: expected at most 16 signatures, found 17"),
        },
        Case {
            name: "defaults: 30,000 empty v1 entries (refused before any MAC)",
            source: source(two_secrets),
            headers: headers(&empty_v1),
            body: default_body,
            expect: Err("header webhook-signature: expected at most 4096 bytes, found 119999"),
        },
        Case {
            name: "largest config: 16 MiB body, 64 forged candidates, 2 secrets (refused)",
            source: source(max_params),
            headers: headers(&signatures(64, None)),
            body: max_body,
            expect: Err("header webhook-signature: expected a v1 signature"),
        },
    ];

    for case in &cases {
        case.check();
        if !full {
            continue;
        }
        // Enough rounds for a stable median, bounded in time for the 16 MiB case. The median
        // and best say what a request costs; the machine may be shared, so the mean says less.
        let budget = Duration::from_secs(2);
        let started = Instant::now();
        let mut samples = Vec::new();
        while samples.len() < 10_000 && (samples.len() < 5 || started.elapsed() < budget) {
            let t = Instant::now();
            black_box(case.run()).ok();
            samples.push(t.elapsed());
        }
        samples.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{:<78} median {:>8.3} ms  best {:>8.3} ms  p90 {:>8.3} ms  ({} rounds)",
            case.name,
            ms(samples[samples.len() / 2]),
            ms(samples[0]),
            ms(samples[samples.len() * 9 / 10]),
            samples.len()
        );
    }
    if !full {
        println!(
            "signatures: {} cases checked (run `cargo bench` to measure)",
            cases.len()
        );
    }
}
