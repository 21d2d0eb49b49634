//! Intake authentication against the real `revoked` binary: an unsigned flood of signature
//! candidates is refused at once by the bounds (not after seconds of HMACs), a timestamp 301 s
//! ahead is refused, and the documented generic example loads and maps its event kind.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use revoke_testkit::{Slapd, DEMO_LDIF};
use serde_json::json;

fn slapd() -> Slapd {
    let s = Slapd::start().expect("slapd starts");
    s.add_ldif(DEMO_LDIF).expect("demo directory loads");
    s
}

/// The ```toml block of docs/intake.md that configures `[intake.workday]`, verbatim.
fn documented_generic_example() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/intake.md");
    let text = std::fs::read_to_string(path).unwrap();
    let start = text
        .find("```toml\n[intake.workday]")
        .expect("docs/intake.md has the [intake.workday] example");
    let block = &text[start + "```toml\n".len()..];
    block[..block.find("```").unwrap()].to_string()
}

fn check_config(config: &std::path::Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_revoked"))
        .arg("--config")
        .arg(config)
        .arg("--check-config")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn post_raw(
    c: &Client,
    d: &Daemon,
    source: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let mut rb = c
        .http
        .post(d.url(&format!("/intake/{source}")))
        .header("content-type", "application/json");
    for (k, v) in headers {
        rb = rb.header(*k, v);
    }
    let r = rb.body(body).send().unwrap();
    let status = r.status().as_u16();
    let text = r.text().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

fn error_text(v: &serde_json::Value) -> String {
    v.get("error")
        .and_then(|e| e.as_str())
        .map_or_else(|| v.to_string(), str::to_string)
}

/// Issue 13's attack: 30,000 empty `v1,` entries (120 KB) and a 256 KiB body to a source with
/// the default limits. Before, the 401 came after an HMAC per entry ("none matches", seconds of
/// CPU); now it says the header is over its bound. Seventeen candidates are refused by count,
/// and a valid delivery is still accepted.
#[test]
fn a_flood_of_signature_candidates_is_refused_by_the_bounds() {
    let slapd = slapd();
    let setup = Setup::new(
        &slapd,
        None,
        &format!("[intake.flood]\nkind = \"standard_webhooks\"\nsecret = \"{WEBHOOK_SECRET}\"\n"),
    );
    let d = Daemon::start(&setup.config, &setup.dir.path().join("log"));
    let c = client();

    let mut body = br#"{"type":"employee.terminated","data":{"employee_id":"E-1","pad":""#.to_vec();
    body.resize(262_144 - 3, b'x');
    body.extend_from_slice(br#""}}"#);
    let ts = chrono::Utc::now().timestamp().to_string();
    let flood = vec!["v1,"; 30_000].join(" ");
    let (status, answer) = post_raw(
        &c,
        &d,
        "flood",
        &[
            ("webhook-id", "msg_flood".to_string()),
            ("webhook-timestamp", ts.clone()),
            ("webhook-signature", flood),
        ],
        body.clone(),
    );
    assert_eq!(status, 401, "{answer}");
    assert!(
        error_text(&answer)
            .contains("header webhook-signature: expected at most 4096 bytes, found 119999"),
        "{answer}"
    );

    // Well-formed candidates (32 bytes, base64) that no secret made.
    let seventeen = vec!["v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="; 17].join(" ");
    let (status, answer) = post_raw(
        &c,
        &d,
        "flood",
        &[
            ("webhook-id", "msg_flood".to_string()),
            ("webhook-timestamp", ts),
            ("webhook-signature", seventeen),
        ],
        body,
    );
    assert_eq!(status, 401, "{answer}");
    assert!(
        error_text(&answer).contains("expected at most 16 signatures, found 17"),
        "{answer}"
    );

    let ok = Delivery::termination(json!({ "username": "alice" }));
    let (status, answer) = c.deliver(&d, &ok, WEBHOOK_SECRET);
    assert_eq!(status, 202, "{answer}");
}

/// A correctly signed timestamp 301 s ahead is 300.x s ahead of the daemon's clock; before,
/// truncation to whole seconds made it 300 and it was accepted (202).
#[test]
fn a_timestamp_301_s_ahead_is_refused() {
    let slapd = slapd();
    let setup = Setup::new(&slapd, None, "");
    let d = Daemon::start(&setup.config, &setup.dir.path().join("log"));
    let c = client();
    // Start early in a second, so that the daemon reads its clock within the same second and
    // the timestamp is more than 300 s and at most 301 s ahead of it.
    wait_until("the start of a second", Duration::from_secs(3), || {
        chrono::Utc::now().timestamp_subsec_millis() < 300
    });
    let mut ahead = Delivery::termination(json!({ "username": "alice" }));
    ahead.timestamp = chrono::Utc::now().timestamp() + 301;
    let (status, answer) = c.deliver(&d, &ahead, WEBHOOK_SECRET);
    assert_eq!(status, 401, "{answer}");
    let m = error_text(&answer);
    assert!(
        m.contains("header webhook-timestamp: expected a time within 300 s of now, found one 300."),
        "{m}"
    );
    assert!(m.contains("s in the future"), "{m}");
    // Within the bound it is accepted.
    let mut near = Delivery::termination(json!({ "username": "alice" }));
    near.timestamp = chrono::Utc::now().timestamp() + 290;
    let (status, answer) = c.deliver(&d, &near, WEBHOOK_SECRET);
    assert_eq!(status, 202, "{answer}");
}

/// The `[intake.workday]` example of docs/intake.md, verbatim: `revoked --check-config` takes
/// it (before, TOML refused the second `kind`), and the running daemon maps its event kind.
#[test]
fn the_documented_generic_example_loads_and_maps_the_event_kind() {
    let slapd = slapd();
    let setup = Setup::new(&slapd, None, &documented_generic_example());
    let (ok, out) = check_config(&setup.config);
    assert!(ok, "the documented example does not load: {out}");

    let d = Daemon::start(&setup.config, &setup.dir.path().join("log"));
    let c = client();
    let bearer = [("authorization", "Bearer example-token".to_string())];
    let (status, answer) = post_raw(
        &c,
        &d,
        "workday",
        &bearer,
        json!({ "id": "wd-1", "action": "offboard", "person": { "worker_id": "W-1", "work_email": "nobody@example.org" }, "offboarding": { "last_day": "2099-12-31" } })
            .to_string()
            .into_bytes(),
    );
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["jobs"].as_array().map(Vec::len), Some(1), "{answer}");
    let (status, answer) = post_raw(
        &c,
        &d,
        "workday",
        &bearer,
        json!({ "id": "wd-2", "action": "cancel_offboard", "person": { "worker_id": "W-1", "work_email": "nobody@example.org" } })
            .to_string()
            .into_bytes(),
    );
    assert!(status == 200 || status == 202, "{status}: {answer}");
    assert!(answer.get("cancelled").is_some(), "{answer}");

    // The old name, where configuration can see it: a pointer as the source kind.
    let old = Setup::new(
        &slapd,
        None,
        "[intake.legacy]\nkind = \"/action\"\ntoken_sha256 = \"4d1566a1d7df42a8517456d60ea06ed284e535cfe4c956aa6ee172dbcdf945f7\"\nemail = \"/e\"\n",
    );
    let (ok, out) = check_config(&old.config);
    assert!(!ok, "{out}");
    assert!(out.contains("intake.legacy.kind"), "{out}");
    assert!(out.contains("event_kind"), "{out}");
}
