//! Helpers shared by the intake tests: a fixed clock, samples, and independent signers.
#![allow(dead_code)]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use revoke_intake::{Intake, IntakeError, NormalizedEvent, Request, RiskRules, Source};
use serde_json::Value;
use sha2::{Digest, Sha256, Sha512};

/// 2024-03-15T12:00:00Z, a Friday.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 15, 12, 0, 0)
        .single()
        .expect("valid time")
}

pub fn sample(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/samples/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            HeaderValue::from_str(v).expect("header value"),
        );
    }
    h
}

pub fn source(kind: &str, params: Value) -> Source {
    Source::build("test", kind, &params, &RiskRules::default()).expect("source builds")
}

pub fn call(
    src: &Source,
    method: &str,
    path: &str,
    h: &HeaderMap,
    body: &[u8],
) -> Result<Intake, IntakeError> {
    src.handle(&Request {
        method,
        path,
        headers: h,
        body,
        now: now(),
    })
}

pub fn post(src: &Source, h: &HeaderMap, body: &[u8]) -> Result<Intake, IntakeError> {
    call(src, "POST", "", h, body)
}

pub fn one(r: Result<Intake, IntakeError>) -> NormalizedEvent {
    match r {
        Ok(Intake::Event(e)) => e,
        other => panic!("expected one event, found {other:?}"),
    }
}

pub fn unauthenticated(r: Result<Intake, IntakeError>) -> String {
    match r {
        Err(IntakeError::Unauthenticated(m)) => m,
        other => panic!("expected Unauthenticated, found {other:?}"),
    }
}

pub fn malformed(r: Result<Intake, IntakeError>) -> String {
    match r {
        Err(IntakeError::Malformed(m)) => m,
        other => panic!("expected Malformed, found {other:?}"),
    }
}

pub fn unprocessable(r: Result<Intake, IntakeError>) -> String {
    match r {
        Err(IntakeError::Unprocessable(m)) => m,
        other => panic!("expected Unprocessable, found {other:?}"),
    }
}

pub fn ignored(r: Result<Intake, IntakeError>) -> (Option<String>, String) {
    match r {
        Ok(Intake::Ignored {
            source_event_id,
            reason,
        }) => (source_event_id, reason),
        other => panic!("expected Ignored, found {other:?}"),
    }
}

pub fn too_large(r: Result<Intake, IntakeError>) -> usize {
    match r {
        Err(IntakeError::TooLarge { limit }) => limit,
        other => panic!("expected TooLarge, found {other:?}"),
    }
}

/// The body with one byte changed.
pub fn flip(body: &[u8]) -> Vec<u8> {
    let mut b = body.to_vec();
    let i = b.len() / 2;
    b[i] ^= 0x01;
    b
}

/// A string with one character changed (hex or base64 stays well-formed).
pub fn flip_char(s: &str) -> String {
    let mut c: Vec<char> = s.chars().collect();
    let i = c.len() / 2;
    c[i] = if c[i] == 'a' { 'b' } else { 'a' };
    c.into_iter().collect()
}

pub fn hmac256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("key");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

pub fn hmac512(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = <Hmac<Sha512> as KeyInit>::new_from_slice(key).expect("key");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

pub fn hex_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}
