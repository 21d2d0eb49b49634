//! Signature and token checks. Nothing here compares secrets by hand: MACs and token hashes are
//! compared with `subtle`, in constant time.
//!
//! Cost is bounded before any work: a request costs one MAC over the body per configured secret,
//! however many candidate signatures it lists (each candidate is then a 32- or 64-byte constant-
//! time compare), and every header read for authentication is refused unread past the source's
//! `max_signature_header_bytes`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256, Sha512};
use subtle::{Choice, ConstantTimeEq};

use crate::error::IntakeError;

/// SHA-256 of some bytes.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = Sha256::digest(bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(&digest);
    out
}

/// Hex SHA-256 of some bytes.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha256(bytes))
}

/// Whether one of `keys` signs the concatenation of `parts` with HMAC-SHA256 as one of
/// `candidates`. One MAC per key, whatever the number of candidates.
pub(crate) fn hmac_sha256_matches(
    keys: &[Vec<u8>],
    parts: &[&[u8]],
    candidates: &[Vec<u8>],
) -> bool {
    any_matches(&macs::<Hmac<Sha256>>(keys, parts), candidates)
}

/// Whether one of `keys` signs the concatenation of `parts` with HMAC-SHA512 as one of
/// `candidates`. One MAC per key, whatever the number of candidates.
pub(crate) fn hmac_sha512_matches(
    keys: &[Vec<u8>],
    parts: &[&[u8]],
    candidates: &[Vec<u8>],
) -> bool {
    any_matches(&macs::<Hmac<Sha512>>(keys, parts), candidates)
}

/// The MAC of the concatenation of `parts` under each key, each computed once.
fn macs<M: Mac + KeyInit>(keys: &[Vec<u8>], parts: &[&[u8]]) -> Vec<Vec<u8>> {
    keys.iter()
        .filter_map(|key| {
            let mut mac = <M as KeyInit>::new_from_slice(key).ok()?;
            for part in parts {
                mac.update(part);
            }
            Some(mac.finalize().into_bytes().to_vec())
        })
        .collect()
}

/// Whether any candidate equals any expected MAC. Every pair is compared in constant time and
/// none stops early, so the time says nothing about which (or whether one) matched; a candidate
/// of another length is simply unequal.
fn any_matches(expected: &[Vec<u8>], candidates: &[Vec<u8>]) -> bool {
    let mut found = Choice::from(0u8);
    for mac in expected {
        for candidate in candidates {
            found |= mac[..].ct_eq(&candidate[..]);
        }
    }
    found.into()
}

/// Whether the SHA-256 of the presented token equals one of the configured hashes.
pub(crate) fn token_matches(hashes: &[[u8; 32]], presented: &[u8]) -> bool {
    let presented = sha256(presented);
    let mut found = Choice::from(0u8);
    for h in hashes {
        found |= presented[..].ct_eq(&h[..]);
    }
    found.into()
}

/// A header that authentication needs: missing, longer than `max_bytes` (checked before it is
/// read any further) or unreadable is `Unauthenticated`.
pub(crate) fn auth_header<'h>(
    headers: &'h HeaderMap,
    name: &str,
    max_bytes: usize,
) -> Result<&'h str, IntakeError> {
    match headers.get(name) {
        None => Err(IntakeError::Unauthenticated(format!(
            "missing header {name}"
        ))),
        Some(v) if v.len() > max_bytes => Err(IntakeError::Unauthenticated(format!(
            "header {name}: expected at most {max_bytes} bytes, found {}",
            v.len()
        ))),
        Some(v) => v.to_str().map(str::trim).map_err(|_| {
            IntakeError::Unauthenticated(format!(
                "header {name}: expected visible ASCII, found other bytes"
            ))
        }),
    }
}

/// Decodes a hex signature header; anything else is `Unauthenticated`.
pub(crate) fn hex_signature(name: &str, value: &str) -> Result<Vec<u8>, IntakeError> {
    hex::decode(value.trim()).map_err(|_| {
        IntakeError::Unauthenticated(format!(
            "header {name}: expected a hex HMAC, found {} characters that are not hex",
            value.len()
        ))
    })
}

/// Decodes a base64 signature header; anything else is `Unauthenticated`.
pub(crate) fn base64_signature(name: &str, value: &str) -> Result<Vec<u8>, IntakeError> {
    STANDARD.decode(value.trim()).map_err(|_| {
        IntakeError::Unauthenticated(format!(
            "header {name}: expected a base64 HMAC, found {} characters that are not base64",
            value.len()
        ))
    })
}

/// Refuses a signed timestamp more than `tolerance_secs` away from `now`, either way. The
/// distance is compared exactly (to the nanosecond), never truncated to whole seconds: exactly
/// `tolerance_secs` is accepted on both sides, anything further is refused.
pub(crate) fn check_tolerance(
    header: &str,
    sent: DateTime<Utc>,
    now: DateTime<Utc>,
    tolerance_secs: i64,
) -> Result<(), IntakeError> {
    let tolerance = TimeDelta::seconds(tolerance_secs);
    let age = now.signed_duration_since(sent);
    let (distance, side) = if age < TimeDelta::zero() {
        (-age, "future")
    } else {
        (age, "past")
    };
    if distance > tolerance {
        return Err(IntakeError::Unauthenticated(format!(
            "header {header}: expected a time within {tolerance_secs} s of now, found one {} s in the {side} ({})",
            seconds_text(distance),
            sent.to_rfc3339()
        )));
    }
    Ok(())
}

/// Seconds, with milliseconds when there are any (`300.001`), so a refusal just past the bound
/// reads as one.
fn seconds_text(d: TimeDelta) -> String {
    let ms = d.num_milliseconds();
    // A distance past the bound by less than a millisecond still shows that it is past.
    let ms = if TimeDelta::milliseconds(ms) < d {
        ms + 1
    } else {
        ms
    };
    if ms % 1000 == 0 {
        format!("{}", ms / 1000)
    } else {
        format!("{}.{:03}", ms / 1000, ms % 1000)
    }
}

/// Decodes a Standard Webhooks secret (`whsec_` + base64) to its key bytes. The error never
/// repeats the secret.
pub(crate) fn decode_whsec(secret: &str) -> Result<Vec<u8>, String> {
    let Some(b64) = secret.trim().strip_prefix("whsec_") else {
        return Err(
            "expected \"whsec_\" followed by a base64 key, found a value without the whsec_ prefix"
                .to_string(),
        );
    };
    let key = STANDARD.decode(b64).map_err(|_| {
        "expected \"whsec_\" followed by a base64 key, found whsec_ followed by text that is not base64"
            .to_string()
    })?;
    if key.is_empty() {
        return Err("expected \"whsec_\" followed by a base64 key, found an empty key".to_string());
    }
    Ok(key)
}

/// Signs a message the Standard Webhooks way (`v1,<base64 HMAC-SHA256 of id.timestamp.body>`);
/// `revokectl` uses it to send a sample termination and the tests to forge none.
pub fn standard_webhooks_sign(
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, IntakeError> {
    let key = decode_whsec(secret).map_err(|m| IntakeError::Config(format!("secret: {m}")))?;
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).map_err(|_| {
        IntakeError::Config("secret: expected a key HMAC accepts, found one it refuses".to_string())
    })?;
    let ts = timestamp.to_string();
    for part in [msg_id.as_bytes(), b".", ts.as_bytes(), b".", body] {
        mac.update(part);
    }
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    use chrono::TimeZone;

    /// 12:00:00.250 UTC: a `now` with a fraction of a second, as the daemon's always has.
    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 3, 15, 12, 0, 0)
            .single()
            .expect("valid")
            + TimeDelta::milliseconds(250)
    }

    #[test]
    fn tolerance_is_exact_on_both_sides() {
        let now = now();
        let tol = TimeDelta::seconds(300);
        let ms = TimeDelta::milliseconds(1);
        for sent in [now - tol, now + tol, now] {
            assert_eq!(check_tolerance("h", sent, now, 300), Ok(()), "{sent}");
        }
        let Err(IntakeError::Unauthenticated(m)) = check_tolerance("h", now + tol + ms, now, 300)
        else {
            panic!("300.001 s ahead was accepted");
        };
        assert!(m.contains("300.001 s in the future"), "{m}");
        let Err(IntakeError::Unauthenticated(m)) = check_tolerance("h", now - tol - ms, now, 300)
        else {
            panic!("300.001 s behind was accepted");
        };
        assert!(m.contains("300.001 s in the past"), "{m}");
        // Whole-second timestamps (Standard Webhooks) against a sub-second now: 12:05:01 is
        // 300.750 s ahead, refused; 11:55:01 is 299.250 s behind, accepted.
        let whole = |s: i64| now - TimeDelta::milliseconds(250) + TimeDelta::seconds(s);
        assert!(check_tolerance("h", whole(301), now, 300).is_err());
        assert!(check_tolerance("h", whole(-299), now, 300).is_ok());
        assert!(check_tolerance("h", whole(-301), now, 300).is_err());
        // Under a millisecond past the bound is refused and still reads as past it.
        let Err(IntakeError::Unauthenticated(m)) =
            check_tolerance("h", now + tol + TimeDelta::microseconds(1), now, 300)
        else {
            panic!("300.000001 s ahead was accepted");
        };
        assert!(m.contains("300.001 s in the future"), "{m}");
    }

    #[test]
    fn one_mac_per_key_compared_with_every_candidate() {
        let keys = vec![b"old".to_vec(), b"new".to_vec()];
        let parts: [&[u8]; 2] = [b"body", b"ts"];
        let good = macs::<Hmac<Sha256>>(&keys[1..], &parts).remove(0);
        let wrong_len = good[..31].to_vec();
        let other = vec![0u8; 32];
        assert!(hmac_sha256_matches(
            &keys,
            &parts,
            &[Vec::new(), wrong_len.clone(), other.clone(), good.clone()]
        ));
        assert!(!hmac_sha256_matches(&keys, &parts, &[wrong_len, other]));
        assert!(!hmac_sha256_matches(&keys, &parts, &[]));
        assert!(!hmac_sha256_matches(&[], &parts, &[good]));
        let good512 = macs::<Hmac<Sha512>>(&keys[..1], &[b"x"]).remove(0);
        assert_eq!(good512.len(), 64);
        assert!(hmac_sha512_matches(
            &keys,
            &[b"x"],
            std::slice::from_ref(&good512)
        ));
        assert!(!hmac_sha512_matches(&keys, &[b"y"], &[good512]));
    }

    #[test]
    fn oversized_auth_header_is_refused_unread() {
        let mut headers = HeaderMap::new();
        headers.insert("x-sig", http::HeaderValue::from_static("abcdef"));
        assert_eq!(auth_header(&headers, "x-sig", 6), Ok("abcdef"));
        assert_eq!(
            auth_header(&headers, "x-sig", 5),
            Err(IntakeError::Unauthenticated(
                "header x-sig: expected at most 5 bytes, found 6".to_string()
            ))
        );
    }

    #[test]
    fn token_hash_compare() {
        let hashes = [sha256(b"one"), sha256(b"two")];
        assert!(token_matches(&hashes, b"two"));
        assert!(!token_matches(&hashes, b"three"));
        assert!(!token_matches(&[], b"one"));
    }

    #[test]
    fn whsec_errors_do_not_echo_the_secret() {
        let e = decode_whsec("supersecretvalue").expect_err("no prefix");
        assert!(!e.contains("supersecretvalue"));
        let e = decode_whsec("whsec_!!!notbase64!!!").expect_err("not base64");
        assert!(!e.contains("notbase64"));
    }

    #[test]
    fn sign_matches_the_spec_example() {
        // The example of the Standard Webhooks specification.
        let sig = standard_webhooks_sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        )
        .expect("signs");
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
