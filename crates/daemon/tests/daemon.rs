//! `revoked` end to end: signed intake against a real slapd, deduplication, bad input, the
//! blast-radius guard, cancellation before the delete phase, SIGTERM during apply, evidence,
//! readiness, OTLP spans, and secrets kept out of everything it writes.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use revoke_testkit::{Slapd, DEMO_LDIF};
use serde_json::json;

const ALICE: &str = "uid=alice,ou=people,dc=example,dc=org";

fn slapd() -> Slapd {
    let s = Slapd::start().expect("slapd starts");
    s.add_ldif(DEMO_LDIF).expect("demo directory loads");
    s
}

fn alice_locked(slapd: &Slapd) -> bool {
    slapd
        .search(ALICE, "(objectClass=*)", &["pwdAccountLockedTime"])
        .unwrap()
        .contains("pwdAccountLockedTime: 000001010000Z")
}

/// A tiny OTLP/HTTP receiver: answers 200 to everything and keeps the bodies.
fn otlp_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let sink = sink.clone();
            std::thread::spawn(move || {
                let mut s = stream;
                s.set_read_timeout(Some(Duration::from_secs(5))).ok();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    // Read the head, then exactly content-length bytes of body.
                    let n = match s.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if buf.len() >= head_end + 4 + len {
                        sink.lock()
                            .unwrap()
                            .extend_from_slice(&buf[head_end + 4..head_end + 4 + len]);
                        let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\ncontent-type: application/x-protobuf\r\n\r\n");
                        buf.drain(..head_end + 4 + len);
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), got)
}

#[test]
fn signed_high_risk_termination_is_contained_deduplicated_and_evidenced() {
    let slapd = slapd();
    let setup = Setup::new(&slapd, None, "");
    let (otlp, spans) = otlp_receiver();
    let log = setup.dir.path().join("revoked.log");
    let d = Daemon::start_with(
        &setup.config,
        &log,
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp)],
    );
    let c = client();
    assert_eq!(c.get(&d, "/livez", None).0, 200);
    assert_eq!(c.get(&d, "/readyz", None).0, 200);

    // HR knows alice by email and employee number only; the directory finds her by mail.
    let delivery = Delivery::termination(json!({
        "employee_id": "1001", "email": "alice@example.org",
        "reason": "terminated for cause", "involuntary": true,
        "effective_at": "2030-01-01",
    }));
    let (status, answer) = c.deliver(&d, &delivery, WEBHOOK_SECRET);
    assert_eq!(status, 202, "{answer}");
    let job = answer["jobs"][0]["job_id"].as_str().unwrap().to_string();
    assert_eq!(answer["jobs"][0]["duplicate"], false);

    // High risk (involuntary): contained now, although the effective date is years away.
    let detail = c.wait_job(&d, &job, "contained", |j| {
        phases_done(j, &["contain", "revoke"])
    });
    assert!(alice_locked(&slapd), "alice is locked in the directory");
    assert_eq!(detail["risk"], "high");
    assert_eq!(detail["state"], "planned");
    assert!(detail["plan_fingerprint"]
        .as_str()
        .is_some_and(|f| f.len() == 64));
    let delete = detail["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["phase"] == "delete")
        .expect("a delete action");
    assert_eq!(
        delete["outcome"], "pending",
        "the delete phase waits for the retention period"
    );

    // The same delivery again (a retry by the sender): the same job, nothing new.
    let before = slapd.op_counts().unwrap();
    let (status, again) = c.deliver(&d, &delivery, WEBHOOK_SECRET);
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["jobs"][0]["job_id"], job.as_str());
    assert_eq!(again["jobs"][0]["duplicate"], true);
    let jobs = c.get_json(&d, "/api/v1/jobs");
    assert_eq!(jobs.as_array().unwrap().len(), 1, "{jobs:#}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        slapd.op_counts().unwrap().since(&before).mutations(),
        0,
        "a redelivery changes nothing"
    );

    // Evidence, in every format.
    let (s, md) = c.get(
        &d,
        &format!("/api/v1/jobs/{job}/evidence?format=md"),
        Some(READ_TOKEN),
    );
    assert_eq!(s, 200, "{md}");
    assert!(
        md.contains(&format!("job {job}"))
            && md.contains("## Audit trail")
            && md.contains("job.received"),
        "{md}"
    );
    assert!(md.contains("| Audit chain | intact |"), "{md}");
    let (_, csv) = c.get(
        &d,
        &format!("/api/v1/jobs/{job}/evidence?format=csv"),
        Some(READ_TOKEN),
    );
    let lock_row = csv
        .lines()
        .find(|l| l.contains("lock_account"))
        .expect("a lock row");
    assert!(
        lock_row.contains(&delivery.id)
            && lock_row.contains("confirmed")
            && lock_row.contains("revoked@"),
        "{lock_row}"
    );
    let ev = c.get_json(&d, &format!("/api/v1/jobs/{job}/evidence"));
    assert_eq!(ev["source_event_id"], delivery.id.as_str());
    assert_eq!(ev["sla_breaches"], 0);
    assert_eq!(ev["event_body_sha256"], sha256_hex(&delivery.body).as_str());
    let (s, _) = c.get(
        &d,
        &format!("/api/v1/jobs/{job}/evidence?format=pdf"),
        Some(READ_TOKEN),
    );
    assert_eq!(s, 400);

    // Metrics: the webhook results and the time to contain of a high-risk job.
    let (_, metrics) = c.get(&d, "/metrics", None);
    assert!(
        metrics.contains(r#"revoke_webhooks_received_total{source="hr",result="accepted"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"revoke_webhooks_received_total{source="hr",result="duplicate"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"revoke_time_to_contain_seconds_count{risk="high"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"revoke_actions_total{connector="corp-ldap",kind="lock_account",outcome="done"} 1"#
        ),
        "{metrics}"
    );
    assert!(!metrics.contains("alice"), "no user names in labels");

    // Graceful stop: exit 0, and the spans were exported on the way out.
    let status = d.terminate();
    assert!(status.success(), "revoked exits 0 on SIGTERM: {status:?}");
    let body = spans.lock().unwrap().clone();
    let has = |s: &str| body.windows(s.len()).any(|w| w == s.as_bytes());
    assert!(
        has("action") && has("job_id") && has(&job) && has("lock_account") && has("corp-ldap"),
        "OTLP export carries action spans with their fields ({} bytes)",
        body.len()
    );

    // Secrets appear nowhere the daemon wrote.
    let log_text = std::fs::read_to_string(&log).unwrap();
    for secret in [WEBHOOK_SECRET, OPERATOR_TOKEN, READ_TOKEN] {
        assert!(!log_text.contains(secret), "the log leaks a secret");
        assert!(!md.contains(secret) && !csv.contains(secret));
    }
    assert!(
        !log_text.contains("bind_password = \"secret\"")
            && !log_text.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    );
}

#[test]
fn bad_requests_are_refused_clearly_and_change_nothing() {
    let slapd = slapd();
    let setup = Setup::new(&slapd, None, "");
    let d = Daemon::start(&setup.config, &setup.dir.path().join("revoked.log"));
    let c = client();
    let before = slapd.op_counts().unwrap();
    let bob = json!({ "username": "bob", "high_risk": true });

    // Forged: signed with another secret.
    let (s, a) = c.deliver(
        &d,
        &Delivery::termination(bob.clone()),
        "whsec_dGhpcyBpcyBub3QgdGhlIHNlY3JldA==",
    );
    assert_eq!(s, 401, "{a}");
    assert!(a["error"].as_str().unwrap().contains("signature"), "{a}");
    // Signed, then one byte of the body changed.
    let mut tampered = Delivery::termination(bob.clone());
    let sig = tampered.signature(WEBHOOK_SECRET);
    tampered.body = tampered.body.replace("bob", "bof");
    let r = c
        .http
        .post(d.url("/intake/hr"))
        .header("webhook-id", &tampered.id)
        .header("webhook-timestamp", tampered.timestamp.to_string())
        .header("webhook-signature", sig)
        .body(tampered.body.clone())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // Expired and future timestamps (outside the 5-minute tolerance), correctly signed.
    for shift in [-600i64, 600] {
        let mut old = Delivery::termination(bob.clone());
        old.timestamp += shift;
        let (s, a) = c.deliver(&d, &old, WEBHOOK_SECRET);
        assert_eq!(s, 401, "{a}");
        assert!(a["error"].as_str().unwrap().contains("timestamp"), "{a}");
    }
    // Missing headers.
    let r = c.http.post(d.url("/intake/hr")).body("{}").send().unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // Oversized (the source allows 4096 bytes).
    let big = Delivery::termination(json!({ "username": "bob", "reason": "x".repeat(5000) }));
    let (s, _) = c.deliver(&d, &big, WEBHOOK_SECRET);
    assert_eq!(s, 413);
    // Far larger than any limit: refused before it is read.
    let huge = Delivery::termination(json!({ "username": "bob", "reason": "x".repeat(2_000_000) }));
    let (s, _) = c.deliver(&d, &huge, WEBHOOK_SECRET);
    assert_eq!(s, 413);
    // Malformed JSON, correctly signed.
    let mut bad = Delivery::termination(bob.clone());
    bad.body = "{\"type\": \"employee.terminated\", \"data\": {".into();
    let (s, a) = c.deliver(&d, &bad, WEBHOOK_SECRET);
    assert_eq!(s, 400, "{a}");
    // No identifier at all.
    let (s, a) = c.deliver(
        &d,
        &Delivery::termination(json!({ "reason": "left" })),
        WEBHOOK_SECRET,
    );
    assert_eq!(s, 422, "{a}");
    // An unknown source.
    let r = c
        .http
        .post(d.url("/intake/nope"))
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert!(
        c.get_json(&d, "/api/v1/jobs")
            .as_array()
            .unwrap()
            .is_empty(),
        "no job from any refused request"
    );

    // Authentic, but naming nobody the directory knows, or values that look like injections:
    // accepted as data, planned, and failed as unknown users; nothing is touched.
    let mut jobs = Vec::new();
    for name in ["nobody-here", "*)(uid=*", "../x", "alice)(objectClass=*"] {
        let (s, a) = c.deliver(
            &d,
            &Delivery::termination(json!({ "username": name, "high_risk": true })),
            WEBHOOK_SECRET,
        );
        assert_eq!(s, 202, "{a}");
        jobs.push((name, a["jobs"][0]["job_id"].as_str().unwrap().to_string()));
    }
    for (name, job) in &jobs {
        let j = c.wait_job(&d, job, "failed", |j| j["state"] == "failed");
        let note = j["note"].as_str().unwrap_or_default();
        assert!(
            note.contains("unknown") && note.contains("corp-ldap"),
            "{name}: {note}"
        );
        assert_eq!(j["subject"], *name, "the value is kept as data, untouched");
    }
    assert_eq!(
        slapd.op_counts().unwrap().since(&before).mutations(),
        0,
        "nothing was changed"
    );
    assert!(!alice_locked(&slapd));

    // The API: no token, an unknown token, a read token where an operator is needed.
    let (s, _) = c.get(&d, "/api/v1/jobs", None);
    assert_eq!(s, 401);
    let (s, _) = c.get(&d, "/api/v1/jobs", Some("rvk_not-a-token"));
    assert_eq!(s, 401);
    let (s, a) = c.post(
        &d,
        "/api/v1/jobs",
        Some(READ_TOKEN),
        json!({ "username": "bob" }),
    );
    assert_eq!(s, 403, "{a}");
    let (s, a) = c.post(
        &d,
        "/api/v1/jobs",
        Some(OPERATOR_TOKEN),
        json!({ "username": "bob", "colour": "red" }),
    );
    assert_eq!(s, 400, "unknown fields are refused: {a}");
    let (s, _) = c.get(&d, "/api/v1/jobs/does-not-exist", Some(READ_TOKEN));
    assert_eq!(s, 404);
    let (_, metrics) = c.get(&d, "/metrics", None);
    assert!(
        metrics
            .contains(r#"revoke_webhooks_received_total{source="hr",result="unauthenticated"} 5"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"revoke_webhooks_received_total{source="hr",result="too_large"}"#),
        "{metrics}"
    );
}

/// Writes a whole request (as a client that sends its body before it reads, like Python's
/// http.client) and returns the status line of the answer.
fn raw_request(d: &Daemon, head: &str, body: &[u8]) -> String {
    let addr = d.base.trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    s.flush().unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn an_oversized_body_gets_a_413_the_sender_can_read() {
    let slapd = slapd();
    let setup = Setup::new(&slapd, None, "");
    let d = Daemon::start(&setup.config, &setup.dir.path().join("revoked.log"));
    // Declared larger than the source's 4096 bytes, and written in full before reading: more
    // than loopback's socket buffers hold, so a server that answered and closed at once would
    // cut the sender off with a broken pipe.
    let body = vec![b'x'; 12_000_000];
    for _ in 0..5 {
        let head = format!(
            "POST /intake/hr HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        assert_eq!(
            raw_request(&d, &head, &body),
            "HTTP/1.1 413 Payload Too Large"
        );
    }
    // Chunked, no length declared: refused once past the source's own limit.
    let mut chunked = Vec::new();
    for _ in 0..2048 {
        chunked.extend_from_slice(format!("{:x}\r\n", 4096).as_bytes());
        chunked.extend_from_slice(&[b'y'; 4096]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let head = "POST /intake/hr HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(
        raw_request(&d, head, &chunked),
        "HTTP/1.1 413 Payload Too Large"
    );
    let c = client();
    assert!(c
        .get_json(&d, "/api/v1/jobs")
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn an_hr_event_naming_a_protected_account_by_email_or_employee_id_touches_nothing() {
    let slapd = slapd();
    let setup = Setup::new(&slapd, None, "");
    let d = Daemon::start(&setup.config, &setup.dir.path().join("revoked.log"));
    let c = client();
    let before = slapd.op_counts().unwrap();
    // `breakglass` is protected by its uid; these events name it only by its employee number
    // or its email, as an HR system does.
    let mut jobs = Vec::new();
    for data in [
        json!({ "employee_id": "9999", "high_risk": true }),
        json!({ "email": "BreakGlass@example.org", "high_risk": true }),
    ] {
        let (s, a) = c.deliver(&d, &Delivery::termination(data), WEBHOOK_SECRET);
        assert_eq!(s, 202, "{a}");
        jobs.push(a["jobs"][0]["job_id"].as_str().unwrap().to_string());
    }
    // And a real leaver named only by employee number is found and contained.
    let (s, a) = c.deliver(
        &d,
        &Delivery::termination(json!({ "employee_id": "1001", "high_risk": true })),
        WEBHOOK_SECRET,
    );
    assert_eq!(s, 202, "{a}");
    let alice_job = a["jobs"][0]["job_id"].as_str().unwrap().to_string();
    for job in &jobs {
        let j = c.wait_job(&d, job, "planned", |j| j["state"] == "planned");
        let actions = j["actions"].as_array().unwrap();
        assert!(
            actions.is_empty(),
            "nothing planned for the protected account: {j}"
        );
    }
    c.wait_job(&d, &alice_job, "contained", |j| {
        phases_done(j, &["contain"])
    });
    assert!(
        alice_locked(&slapd),
        "alice, named by employee number, is locked"
    );
    let breakglass = slapd
        .search(
            "uid=breakglass,ou=people,dc=example,dc=org",
            "(objectClass=*)",
            &["pwdAccountLockedTime"],
        )
        .unwrap();
    assert!(!breakglass.contains("pwdAccountLockedTime"), "{breakglass}");
    let touched: Vec<String> = mutations_per_dn(&slapd)
        .into_keys()
        .filter(|k| k.contains("breakglass"))
        .collect();
    assert!(touched.is_empty(), "{touched:?}");
    assert!(slapd.op_counts().unwrap().since(&before).mutations() > 0);
}

#[test]
fn blast_radius_guard_holds_jobs_until_approved() {
    let slapd = slapd();
    let setup = Setup::new(&slapd, None, "[guard]\nmax_jobs = 2\nwindow_secs = 3600\n");
    let d = Daemon::start(&setup.config, &setup.dir.path().join("revoked.log"));
    let c = client();
    let mut ids = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let (s, a) = c.deliver(
            &d,
            &Delivery::termination(json!({ "username": name, "high_risk": true })),
            WEBHOOK_SECRET,
        );
        assert_eq!(s, 202, "{a}");
        ids.push(a["jobs"][0]["job_id"].as_str().unwrap().to_string());
        assert_eq!(
            a["jobs"][0]["state"],
            if name == "carol" {
                "awaiting_approval"
            } else {
                "scheduled"
            }
        );
    }
    c.wait_job(&d, &ids[0], "contained", |j| phases_done(j, &["contain"]));
    std::thread::sleep(Duration::from_millis(500));
    let held = c.get_json(&d, &format!("/api/v1/jobs/{}", ids[2]));
    assert_eq!(held["state"], "awaiting_approval");
    assert!(
        held["actions"].as_array().unwrap().is_empty(),
        "a held job is not even planned"
    );
    assert!(held["note"].as_str().unwrap().contains("blast-radius"));
    let (_, m) = c.get(&d, "/metrics", None);
    assert!(
        m.contains(r#"revoke_blast_radius_tripped_total{source="hr"} 1"#),
        "{m}"
    );
    assert!(m.contains("revoke_jobs_awaiting_approval 1"), "{m}");
    // A read token may not approve; an operator may, once.
    let path = format!("/api/v1/jobs/{}/approve", ids[2]);
    assert_eq!(c.post(&d, &path, Some(READ_TOKEN), json!({})).0, 403);
    // A body that is not `{"reason": ...}` is refused and decides nothing.
    let (s, a) = c.post(&d, &path, Some(OPERATOR_TOKEN), json!({ "why": "x" }));
    assert_eq!(s, 400, "{a}");
    let still = c.get_json(&d, &format!("/api/v1/jobs/{}", ids[2]));
    assert_eq!(still["state"], "awaiting_approval");
    let (s, a) = c.post(
        &d,
        &path,
        Some(OPERATOR_TOKEN),
        json!({ "reason": "expected: the <b>Q4</b> reorganisation" }),
    );
    assert_eq!(s, 200, "{a}");
    assert!(
        a["note"]
            .as_str()
            .unwrap()
            .ends_with("expected: the <b>Q4</b> reorganisation"),
        "{a}"
    );
    assert_eq!(c.post(&d, &path, Some(OPERATOR_TOKEN), json!({})).0, 409);
    c.wait_job(&d, &ids[2], "contained after approval", |j| {
        phases_done(j, &["contain"])
    });
    let ev = c.get_json(&d, &format!("/api/v1/jobs/{}/evidence", ids[2]));
    let kinds: Vec<&str> = ev["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(&kinds[..3], &["job.received", "job.held", "job.approved"]);
    let approved = ev["audit"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "job.approved")
        .unwrap();
    assert_eq!(approved["actor"], "token:ops", "the approver is on record");
    assert!(
        approved
            .to_string()
            .contains("expected: the <b>Q4</b> reorganisation"),
        "the reason is in the decision's own entry: {approved}"
    );
}

#[test]
fn cancellation_before_the_delete_phase_cancels_what_has_not_run() {
    let slapd = slapd();
    let setup = Setup::new(&slapd, None, "");
    let d = Daemon::start(&setup.config, &setup.dir.path().join("revoked.log"));
    let c = client();
    // Standard risk, effective a minute ago: contain and revoke run now, delete in 30 days.
    let effective = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    let (s, a) = c.deliver(
        &d,
        &Delivery::termination(
            json!({ "employee_id": "1002", "email": "bob@example.org", "effective_at": effective }),
        ),
        WEBHOOK_SECRET,
    );
    assert_eq!(s, 202, "{a}");
    let job = a["jobs"][0]["job_id"].as_str().unwrap().to_string();
    let j = c.wait_job(&d, &job, "revoked", |j| {
        phases_done(j, &["contain", "revoke"])
    });
    assert_eq!(j["risk"], "standard");
    let before = slapd.op_counts().unwrap();
    // HR cancels the termination (a rehire): the pending delete never runs, and why is recorded.
    let (s, a) = c.deliver(
        &d,
        &Delivery::cancellation(json!({ "employee_id": "1002", "reason": "rehired" })),
        WEBHOOK_SECRET,
    );
    assert_eq!(s, 202, "{a}");
    assert_eq!(a["cancelled"][0], job.as_str());
    let j = c.get_json(&d, &format!("/api/v1/jobs/{job}"));
    assert_eq!(j["state"], "cancelled");
    let delete = j["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["phase"] == "delete")
        .unwrap();
    assert_eq!(delete["outcome"], "cancelled");
    assert!(
        delete["note"].as_str().unwrap().contains("rehired"),
        "{delete}"
    );
    let lock = j["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "lock_account")
        .unwrap();
    assert_eq!(lock["outcome"], "done", "what ran stays on record");
    // An API cancel of a closed job is a conflict.
    let (s, _) = c.post(
        &d,
        &format!("/api/v1/jobs/{job}/cancel"),
        Some(OPERATOR_TOKEN),
        json!({ "reason": "again" }),
    );
    assert_eq!(s, 409);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(slapd.op_counts().unwrap().since(&before).mutations(), 0);
}

#[test]
fn sigterm_during_apply_then_restart_sends_no_mutation_twice() {
    let slapd = slapd();
    const N: usize = 40;
    slapd.add_ldif(&leavers_ldif(N)).unwrap();
    // One action at a time, so SIGTERM lands in the middle of the run.
    let setup = Setup::new(&slapd, None, "concurrency = 1\n[guard]\nmax_jobs = 0\n");
    let log = setup.dir.path().join("revoked.log");
    let d = Daemon::start(&setup.config, &log);
    let c = client();
    let before = slapd.op_counts().unwrap();
    let mut jobs = Vec::new();
    for i in 0..N {
        let (s, a) = c.post(&d, "/api/v1/jobs", Some(OPERATOR_TOKEN), json!({ "username": format!("u{i}"), "high_risk": true, "idempotency_key": format!("k{i}") }));
        assert_eq!(s, 202, "{a}");
        jobs.push(a["job_id"].as_str().unwrap().to_string());
    }
    wait_until("the first mutations", Duration::from_secs(60), || {
        slapd.op_counts().unwrap().since(&before).mutations() >= 3
    });
    let status = d.terminate();
    assert!(status.success(), "exit 0 after SIGTERM: {status:?}");
    let mid = slapd.op_counts().unwrap().since(&before).mutations();
    assert!(
        mid < (2 * N) as u64,
        "SIGTERM landed mid-apply ({mid} of {} mutations done)",
        2 * N
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("letting actions in flight finish"), "{text}");
    // Restart: the rest is done, and nothing done before is sent again.
    let d = Daemon::start(&setup.config, &log);
    for job in &jobs {
        c.wait_job(&d, job, "contained and revoked", |j| {
            phases_done(j, &["contain", "revoke"])
        });
    }
    let per_dn = mutations_per_dn(&slapd);
    for i in 0..N {
        for dn in [
            format!("mod uid=u{i},ou=people,dc=example,dc=org"),
            format!("mod cn=g{i},ou=groups,dc=example,dc=org"),
        ] {
            assert_eq!(
                per_dn.get(&dn).copied(),
                Some(1),
                "{dn} modified exactly once: {per_dn:#?}"
            );
        }
    }
}

#[test]
fn ready_notification_is_sent_once_listening() {
    use std::os::unix::net::UnixDatagram;
    let slapd = slapd();
    let setup = Setup::new(&slapd, None, "");
    let sock_path = setup.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let d = Daemon::start_with(
        &setup.config,
        &setup.dir.path().join("revoked.log"),
        &[("NOTIFY_SOCKET", sock_path.to_str().unwrap())],
    );
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
    // Ready means the listener answers and migrations ran.
    assert_eq!(client().get(&d, "/readyz", None).0, 200);
    let status = d.terminate();
    assert!(status.success());
    let n = sock.recv(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1"));
}

#[test]
fn idp_sources_scim_and_okta_reach_a_job() {
    const SCIM_TOKEN: &str = "entra-scim-bearer-token-0123456789";
    const OKTA_SECRET: &str = "okta-hook-authentication-secret";
    let slapd = slapd();
    let extra = format!(
        "[intake.entra]\nkind = \"scim\"\ntoken_sha256 = \"{}\"\n[intake.okta]\nkind = \"okta\"\nsecret = \"{OKTA_SECRET}\"\n",
        sha256_hex(SCIM_TOKEN)
    );
    let setup = Setup::new(&slapd, None, &extra);
    let log = setup.dir.path().join("revoked.log");
    let d = Daemon::start(&setup.config, &log);
    let c = client();

    // Entra ID deactivates bob through SCIM: PATCH active "False", bearer-authenticated.
    let patch = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "Replace", "path": "active", "value": "False" }]
    });
    let r = c
        .http
        .patch(d.url("/intake/entra/scim/v2/Users/bob"))
        .bearer_auth("wrong-token")
        .json(&patch)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = c
        .http
        .patch(d.url("/intake/entra/scim/v2/Users/bob"))
        .bearer_auth(SCIM_TOKEN)
        .json(&patch)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let reply: serde_json::Value = r.json().unwrap();
    assert_eq!(reply["active"], false, "a SCIM-shaped answer: {reply}");
    let jobs = c.get_json(&d, "/api/v1/jobs?limit=10");
    let bob = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["source"] == "entra")
        .expect("a job from entra");
    assert_eq!(bob["subject"], "bob");
    // A deactivation happened now: standard risk, due now; bob is locked.
    let job = bob["job_id"].as_str().unwrap().to_string();
    c.wait_job(&d, &job, "contained", |j| phases_done(j, &["contain"]));
    assert!(slapd
        .search(
            "uid=bob,ou=people,dc=example,dc=org",
            "(objectClass=*)",
            &["pwdAccountLockedTime"]
        )
        .unwrap()
        .contains("000001010000Z"));

    // Okta: the one-time verification, then a deactivation event hook for carol.
    let r = c
        .http
        .get(d.url("/intake/okta"))
        .header("x-okta-verification-challenge", "abc123")
        .send()
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        401,
        "the challenge is answered only to Okta"
    );
    let r = c
        .http
        .get(d.url("/intake/okta"))
        .header("authorization", OKTA_SECRET)
        .header("x-okta-verification-challenge", "abc123")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().unwrap()["verification"],
        "abc123"
    );
    let hook = json!({
        "eventType": "com.okta.event_hook", "eventId": "delivery-1",
        "data": { "events": [{
            "uuid": "7c1d-okta-event", "published": chrono::Utc::now().to_rfc3339(),
            "eventType": "user.lifecycle.deactivate", "outcome": { "result": "SUCCESS" },
            "target": [{ "id": "00u1", "type": "User", "alternateId": "carol@example.org" }]
        }]}
    });
    let r = c
        .http
        .post(d.url("/intake/okta"))
        .header("authorization", OKTA_SECRET)
        .json(&hook)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let a: serde_json::Value = r.json().unwrap();
    let job = a["jobs"][0]["job_id"].as_str().unwrap().to_string();
    c.wait_job(&d, &job, "contained", |j| phases_done(j, &["contain"]));
    let r = c
        .http
        .post(d.url("/intake/okta"))
        .header("authorization", OKTA_SECRET)
        .json(&hook)
        .send()
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        200,
        "Okta retries deliver the same event: deduplicated"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains(SCIM_TOKEN) && !text.contains(OKTA_SECRET),
        "no intake secret in the log"
    );
}
