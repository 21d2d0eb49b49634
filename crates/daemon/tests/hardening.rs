//! The daemon's HTTP surface against hostile clients, on the real binary: slow heads and bodies
//! are cut off, idle connections closed, connections bounded, unauthenticated probes leave no
//! trace in the store or the logs, and every error answer is JSON.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use revoke_testkit::Slapd;

/// Nothing here waits on a timer of its own for longer than this; each bound under test is 1-2 s.
const DEADLINE: Duration = Duration::from_secs(20);

fn slapd() -> Slapd {
    Slapd::start().expect("slapd starts")
}

/// A setup whose `[daemon]` table also has `keys` (one `key = value` per line).
fn setup_with(slapd: &Slapd, daemon_keys: &str, extra: &str) -> Setup {
    let setup = Setup::new(slapd, None, extra);
    let text = std::fs::read_to_string(&setup.config).unwrap();
    let text = text.replacen("[daemon]\n", &format!("[daemon]\n{daemon_keys}\n"), 1);
    std::fs::write(&setup.config, text).unwrap();
    setup
}

fn start(setup: &Setup) -> Daemon {
    Daemon::start(&setup.config, &setup.dir.path().join("revoked.log"))
}

fn connect(d: &Daemon) -> TcpStream {
    let addr = d.base.trim_start_matches("http://");
    let s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Whether the peer has closed `s`: a read that ends (or fails), or a write that fails.
fn closed_within(s: &mut TcpStream, deadline: Duration, mut dribble: Option<&[u8]>) -> bool {
    let end = Instant::now() + deadline;
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        if let Some(bytes) = dribble {
            if let Some((first, rest)) = bytes.split_first() {
                if s.write_all(&[*first]).is_err() {
                    return true;
                }
                dribble = Some(rest);
            }
        }
        match s.read(&mut buf) {
            Ok(0) => return true,
            // hyper may say why before it closes; keep reading until the end.
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

/// Reads one response (head and a Content-Length body) from `s`, within the deadline.
fn read_response(s: &mut TcpStream) -> Option<(u16, String, String)> {
    let end = Instant::now() + DEADLINE;
    s.set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    while Instant::now() < end {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
        if let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let l = l.to_ascii_lowercase();
                    l.strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= head_end + 4 + len {
                let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                let body = String::from_utf8_lossy(&buf[head_end + 4..head_end + 4 + len]);
                return Some((status, head.to_ascii_lowercase(), body.to_string()));
            }
        }
    }
    None
}

/// A JSON error answer: `content-type: application/json` and a non-empty `error` message.
fn assert_json_error(what: &str, content_type: Option<&str>, body: &str) {
    assert!(
        content_type.is_some_and(|c| c.starts_with("application/json")),
        "{what}: expected a JSON answer, found content-type {content_type:?} and body {body:?}"
    );
    let v: serde_json::Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{what}: expected a JSON body, found {body:?}: {e}"));
    assert!(
        v["error"].as_str().is_some_and(|e| !e.trim().is_empty()),
        "{what}: expected a non-empty error message, found {v}"
    );
}

#[test]
fn a_client_dribbling_its_head_is_disconnected_and_so_is_an_idle_one() {
    let slapd = slapd();
    let setup = setup_with(&slapd, "header_read_timeout_secs = 1", "");
    let d = start(&setup);

    // A byte of the head every half second: the head never completes.
    let mut s = connect(&d);
    let head =
        "POST /intake/hr HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n".repeat(20);
    assert!(
        closed_within(&mut s, DEADLINE, Some(head.as_bytes())),
        "a connection dribbling its head was still open after {DEADLINE:?}"
    );

    // A keep-alive connection that answered one request and then sits idle.
    let mut s = connect(&d);
    s.write_all(b"GET /livez HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let (status, _, body) = read_response(&mut s).expect("an answer");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    assert!(
        closed_within(&mut s, DEADLINE, None),
        "an idle keep-alive connection was still open after {DEADLINE:?}"
    );

    // The daemon still serves.
    assert_eq!(client().get(&d, "/livez", None).0, 200);
}

#[test]
fn a_body_dribbled_a_byte_a_second_is_cut_with_a_json_408() {
    let slapd = slapd();
    let setup = setup_with(&slapd, "body_read_timeout_secs = 1", "");
    let d = start(&setup);
    let token_header = format!("authorization: Bearer {OPERATOR_TOKEN}\r\n");
    for (path, auth) in [("/intake/hr", ""), ("/api/v1/jobs", token_header.as_str())] {
        let mut s = connect(&d);
        s.write_all(
            format!(
                "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{auth}content-length: 100\r\n\r\n{{"
            )
            .as_bytes(),
        )
        .unwrap();
        let mut writer = s.try_clone().unwrap();
        let dribbler = std::thread::spawn(move || {
            for _ in 0..99 {
                std::thread::sleep(Duration::from_secs(1));
                if writer.write_all(b" ").is_err() {
                    return;
                }
            }
        });
        let (status, head, body) = read_response(&mut s).unwrap_or_else(|| {
            panic!("{path}: no answer within {DEADLINE:?} to a body dribbled a byte a second")
        });
        assert_eq!(status, 408, "{path}: {head}\n{body}");
        let ct = head
            .lines()
            .find_map(|l| l.strip_prefix("content-type:").map(str::trim));
        assert_json_error(path, ct, &body);
        assert!(
            closed_within(&mut s, DEADLINE, None),
            "{path}: the connection stayed open after the 408"
        );
        drop(s);
        dribbler.join().unwrap();
    }
    let (_, metrics) = client().get(&d, "/metrics", None);
    assert!(
        metrics.contains(r#"revoke_webhooks_received_total{source="hr",result="timeout"} 1"#),
        "{metrics}"
    );
}

#[test]
fn at_the_connection_bound_the_next_connection_waits_until_one_closes() {
    let slapd = slapd();
    // Long enough a head timeout that the two holders keep their slots for the whole test.
    let setup = setup_with(
        &slapd,
        "max_connections = 2\nheader_read_timeout_secs = 120",
        "",
    );
    let d = start(&setup);
    let livez = b"GET /livez HTTP/1.1\r\nhost: x\r\n\r\n";
    let mut holders: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = connect(&d);
            s.write_all(livez).unwrap();
            let (status, _, _) = read_response(&mut s).expect("a holder is served");
            assert_eq!(status, 200);
            s
        })
        .collect();

    // The third connects (the kernel's backlog takes it) but is not served while both are open.
    let mut third = connect(&d);
    third.write_all(livez).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0u8; 64];
    match third.read(&mut buf) {
        Ok(n) => panic!(
            "the third connection was served while two were open: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{e}"
        ),
    }

    // One closes: the third is served.
    drop(holders.pop());
    let (status, _, body) = read_response(&mut third).unwrap_or_else(|| {
        panic!("the third connection was not served within {DEADLINE:?} of a slot freeing")
    });
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    assert!(
        d.log_text().contains("connection bound reached"),
        "the bound is logged"
    );
}

/// Audit rows in the daemon's store.
fn audit_rows(setup: &Setup) -> usize {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = revoke_store::open(&setup.db_url()).await.unwrap();
        store.audit_log().await.unwrap().len()
    })
}

#[test]
fn unsigned_probes_write_nothing_and_refusals_are_logged_at_a_bounded_rate() {
    let slapd = slapd();
    let setup = setup_with(&slapd, "", "");
    let whsec = setup.dir.path().join("whsec");
    let mut text = std::fs::read_to_string(&setup.config).unwrap();
    text += &format!(
        "[intake.bob]\nkind = \"hibob\"\nsecret_file = \"{w}\"\n[intake.pay]\nkind = \"gusto\"\nsecret_file = \"{w}\"\n",
        w = whsec.display()
    );
    std::fs::write(&setup.config, text).unwrap();
    let d = start(&setup);
    let c = client();
    let before = audit_rows(&setup);
    let started = Instant::now();

    // Answered as before (202 saying why nothing is scheduled); checked last, so that what
    // fails first on a daemon that stores probes is the store and the metric.
    let mut answers = Vec::new();
    for _ in 0..500 {
        let r = c
            .http
            .post(d.url("/intake/bob"))
            .body("Ping test")
            .send()
            .unwrap();
        answers.push(r.status().as_u16());
    }
    for i in 0..20 {
        let r = c
            .http
            .post(d.url("/intake/pay"))
            .header("content-type", "application/json")
            .body(r#"{"verification_token":"tok_not_logged"}"#)
            .send()
            .unwrap();
        assert!(
            r.status().is_success(),
            "gusto verification {i}: {}",
            r.status()
        );
    }
    // Refusals: unsigned and wrongly signed events.
    for i in 0..300 {
        let r = c
            .http
            .post(d.url("/intake/bob"))
            .header("bob-signature", "AAAA")
            .body(r#"{"type":"employee.left","data":{"employeeId":"1"}}"#)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "refusal {i}");
    }
    let elapsed = started.elapsed();

    assert_eq!(
        audit_rows(&setup),
        before,
        "unsigned probes and refused requests wrote to the store"
    );
    let (_, metrics) = c.get(&d, "/metrics", None);
    for line in [
        r#"revoke_webhooks_received_total{source="bob",result="probe"} 500"#,
        r#"revoke_webhooks_received_total{source="pay",result="probe"} 20"#,
        r#"revoke_webhooks_received_total{source="bob",result="unauthenticated"} 300"#,
    ] {
        assert!(metrics.contains(line), "expected {line} in\n{metrics}");
    }
    // At most one line per source and reason per 10 s window, and the token is never logged.
    let log = d.log_text();
    let windows = elapsed.as_secs() as usize / 10 + 1;
    let probe_lines = log
        .lines()
        .filter(|l| l.contains("intake probe answered") && l.contains("bob"))
        .count();
    let refusal_lines = log
        .lines()
        .filter(|l| l.contains("intake request refused") && l.contains("bob"))
        .count();
    assert!(
        (1..=windows).contains(&probe_lines),
        "{probe_lines} probe lines for 500 pings in {elapsed:?}"
    );
    assert!(
        (1..=windows).contains(&refusal_lines),
        "{refusal_lines} refusal lines for 300 refusals in {elapsed:?}"
    );
    assert!(
        !log.contains("tok_not_logged"),
        "a verification token was logged"
    );
    assert!(answers.iter().all(|s| *s == 202), "{answers:?}");
}

#[test]
fn every_error_answer_is_json() {
    let slapd = slapd();
    let setup = setup_with(&slapd, "", "");
    let d = start(&setup);
    let http = client().http;
    let check = |what: &str, rb: reqwest::blocking::RequestBuilder, want: u16| {
        let r = rb.send().unwrap();
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let allow = r
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = r.text().unwrap();
        assert_eq!(status, want, "{what}: {body}");
        assert_json_error(what, ct.as_deref(), &body);
        allow
    };
    let url = |p: &str| d.url(p);

    check("unknown route", http.get(url("/nope")), 404);
    check(
        "unknown API route",
        http.get(url("/api/v1/nope")).bearer_auth(READ_TOKEN),
        404,
    );
    let allow = check(
        "wrong method",
        http.delete(url("/api/v1/jobs")).bearer_auth(OPERATOR_TOKEN),
        405,
    );
    assert!(
        allow
            .as_deref()
            .is_some_and(|a| a.contains("GET") && a.contains("POST")),
        "405 without an Allow header: {allow:?}"
    );
    check(
        "bad query parameter",
        http.get(url("/api/v1/jobs?limit=many"))
            .bearer_auth(READ_TOKEN),
        400,
    );
    check(
        "bad path parameter",
        http.get(url("/api/v1/jobs/%FF%FE")).bearer_auth(READ_TOKEN),
        400,
    );
    check(
        "malformed JSON body",
        http.post(url("/api/v1/jobs"))
            .bearer_auth(OPERATOR_TOKEN)
            .header("content-type", "application/json")
            .body("{"),
        400,
    );
    let big = format!(r#"{{"username":"bob","reason":"{}"}}"#, "x".repeat(100_000));
    check(
        "too large API body",
        http.post(url("/api/v1/jobs"))
            .bearer_auth(OPERATOR_TOKEN)
            .header("content-type", "application/json")
            .body(big.clone()),
        413,
    );
    check(
        "too large cancel body",
        http.post(url("/api/v1/jobs/j1/cancel"))
            .bearer_auth(OPERATOR_TOKEN)
            .header("content-type", "application/json")
            .body(big),
        413,
    );
    check(
        "unknown intake source",
        http.post(url("/intake/nosuch")).body("{}"),
        404,
    );

    // Health and metrics stay plain text.
    let r = http.get(url("/livez")).send().unwrap();
    assert_eq!(r.text().unwrap(), "ok\n");
    let r = http.get(url("/metrics")).send().unwrap();
    assert!(r
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("text/plain")));
}
