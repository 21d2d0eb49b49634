//! Identifiers against the real daemon: numeric ids beyond f64 precision stay two employees
//! (and two jobs), and look-alike identifiers are refused with 422 at intake and at the API
//! before anything reaches a directory that would fold them into someone else.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use revoke_testkit::Slapd;
use serde_json::json;

const BOB_SECRET: &str = "bob-webhook-secret-for-identifier-tests";

/// Two 30-digit ids that are one f64 (1.2345678901234568e29).
const ID_A: &str = "123456789012345678901234567890";
const ID_B: &str = "123456789012345678901234567891";

const DAVE: &str = "dn: uid=dave,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: dave
cn: Dave Doe
sn: Doe
mail: dave@example.org
employeeNumber: 123
";

fn slapd_with_dave() -> Slapd {
    let s = Slapd::start().expect("slapd starts");
    s.add_ldif(DAVE).expect("dave loads");
    s
}

fn start(slapd: &Slapd) -> (Setup, Daemon) {
    let setup = Setup::new(
        slapd,
        None,
        &format!("[intake.bob]\nkind = \"hibob\"\nsecret = \"{BOB_SECRET}\"\n"),
    );
    let d = Daemon::start(&setup.config, &setup.dir.path().join("revoked.log"));
    (setup, d)
}

fn bob_left(c: &Client, d: &Daemon, employee_id: &str) -> (u16, serde_json::Value) {
    let body = format!(
        r#"{{"companyId":1,"type":"employee.left","triggeredBy":"x","triggeredAt":"2024-03-15T00:00:04.211873","version":"v2","data":{{"employeeId":{employee_id}}}}}"#
    );
    let sig = base64(&hmac_sha512(BOB_SECRET.as_bytes(), body.as_bytes()));
    let r = c
        .http
        .post(d.url("/intake/bob"))
        .header("content-type", "application/json")
        .header("Bob-Signature", sig)
        .body(body)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// HMAC-SHA512 (RFC 2104), written out: the daemon's own dependencies have SHA-2 but no HMAC.
fn hmac_sha512(key: &[u8], msg: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha512};
    let mut k = [0u8; 128];
    k[..key.len()].copy_from_slice(key);
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let inner = Sha512::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    Sha512::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn hibob_numeric_ids_beyond_f64_precision_are_two_jobs_each_with_its_exact_id() {
    let slapd = slapd_with_dave();
    let (_setup, d) = start(&slapd);
    let c = client();
    let mut jobs = Vec::new();
    for id in [ID_A, ID_B] {
        let (status, answer) = bob_left(&c, &d, id);
        assert_eq!(status, 202, "employeeId {id}: {answer}");
        assert_eq!(answer["jobs"][0]["duplicate"], false, "{answer}");
        jobs.push(answer["jobs"][0]["job_id"].as_str().unwrap().to_string());
    }
    assert_ne!(jobs[0], jobs[1]);
    for (job, id) in jobs.iter().zip([ID_A, ID_B]) {
        let detail = c.get_json(&d, &format!("/api/v1/jobs/{job}"));
        assert_eq!(detail["subject"], id, "{detail:#}");
        assert_eq!(
            detail["source_event_id"],
            format!("employee.left:{id}:2024-03-15T00:00:04.211873"),
            "{detail:#}"
        );
    }
}

#[test]
fn look_alike_identifiers_are_refused_with_422_and_make_no_job() {
    let slapd = slapd_with_dave();
    let (_setup, d) = start(&slapd);
    let c = client();
    for data in [
        json!({ "username": "ｄａｖｅ", "involuntary": true }),
        json!({ "employee_id": "１２３", "involuntary": true }),
        json!({ "email": "d\u{430}ve@example.org", "involuntary": true }),
        json!({ "username": "da\u{200B}ve", "involuntary": true }),
    ] {
        let (status, answer) = c.deliver(&d, &Delivery::termination(data.clone()), WEBHOOK_SECRET);
        assert_eq!(status, 422, "intake {data}: {answer}");
        let (status, answer) = c.post(&d, "/api/v1/jobs", Some(OPERATOR_TOKEN), data.clone());
        assert_eq!(status, 422, "api {data}: {answer}");
        assert!(
            answer["error"]
                .as_str()
                .is_some_and(|e| e.contains("expected")),
            "{answer}"
        );
    }
    let (status, answer) = c.deliver(
        &d,
        &Delivery::termination(json!({ "username": "ｄａｖｅ" })),
        WEBHOOK_SECRET,
    );
    assert_eq!(status, 422);
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("username") && error.contains("look-alike of \"dave\""),
        "{answer}"
    );
    // A numeric employee_id at the API is refused as a type error, never rounded.
    let r = c
        .http
        .post(d.url("/api/v1/jobs"))
        .bearer_auth(OPERATOR_TOKEN)
        .header("content-type", "application/json")
        .body(format!(r#"{{"employee_id":{ID_A}}}"#))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400, "{}", r.text().unwrap());
    let jobs = c.get_json(&d, "/api/v1/jobs");
    let listed = jobs.as_array().or(jobs["jobs"].as_array()).map(Vec::len);
    assert_eq!(listed, Some(0), "no job was made: {jobs:#}");
}

#[test]
fn a_client_domain_is_checked_at_the_api_and_a_job_no_connector_takes_fails_with_the_reason() {
    let slapd = slapd_with_dave();
    let (_setup, d) = start(&slapd);
    let c = client();
    for (data, expected) in [
        (
            json!({ "client_domain": "clientco.test", "username": "dave" }),
            "found both",
        ),
        (
            json!({ "client_domain": "*)(uid=*" }),
            "client domain: expected",
        ),
        (
            json!({ "client_domain": "../x" }),
            "client domain: expected",
        ),
        (
            json!({ "client_domain": "clientco" }),
            "at least two labels",
        ),
        (
            json!({ "client_domain": "Example.ORG" }),
            "protected domain \"example.org\"",
        ),
        (
            json!({ "client_domain": "eu.example.org" }),
            "protected domain",
        ),
        (json!({ "client_domain": 7 }), "expected a job as JSON"),
    ] {
        let (status, answer) = c.post(&d, "/api/v1/jobs", Some(OPERATOR_TOKEN), data.clone());
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(
            status == 422 || status == 400,
            "api {data}: {status} {answer}"
        );
        assert!(error.contains(expected), "api {data}: {answer}");
    }
    // The same rules at intake (a Standard Webhooks source).
    for (data, expected) in [
        (
            json!({ "client_domain": "eu.example.org" }),
            "protected domain \"example.org\"",
        ),
        (
            json!({ "client_domain": "*)(uid=*" }),
            "client domain: expected",
        ),
        (
            json!({ "client_domain": "clientco.test", "email": "a@clientco.test" }),
            "found both",
        ),
    ] {
        let (status, answer) = c.deliver(&d, &Delivery::termination(data.clone()), WEBHOOK_SECRET);
        assert_eq!(status, 422, "intake {data}: {answer}");
        assert!(
            answer["error"]
                .as_str()
                .is_some_and(|e| e.contains(expected)),
            "intake {data}: {answer}"
        );
    }
    let jobs = c.get_json(&d, "/api/v1/jobs");
    let listed = jobs.as_array().or(jobs["jobs"].as_array()).map(Vec::len);
    assert_eq!(listed, Some(0), "no job was made: {jobs:#}");
    // A well-formed client job is taken; the only connector (LDAP) does not take client jobs,
    // so planning fails with the reason and nothing is sent to the directory.
    let (status, answer) = c.post(
        &d,
        "/api/v1/jobs",
        Some(OPERATOR_TOKEN),
        json!({ "client_domain": "ClientCo.test", "high_risk": true }),
    );
    assert_eq!(status, 202, "{answer}");
    let id = answer["job_id"].as_str().unwrap().to_string();
    let j = c.wait_job(&d, &id, "failed", |j| j["state"] == "failed");
    let note = j["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("\"clientco.test\"") && note.contains("takes client jobs (corp-ldap)"),
        "{j:#}"
    );
    assert_eq!(j["subject"], "clientco.test", "{j:#}");
    assert_eq!(j["actions"], json!([]), "{j:#}");
}
