//! Signature and token checks. Nothing here compares secrets by hand: MACs are checked with
//! `verify_slice`, tokens by their SHA-256 with `subtle`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
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

/// Whether one of `keys` signs the concatenation of `parts` with HMAC-SHA256 as `tag`.
pub(crate) fn hmac_sha256_matches(keys: &[Vec<u8>], parts: &[&[u8]], tag: &[u8]) -> bool {
    keys.iter()
        .any(|k| mac_matches::<Hmac<Sha256>>(k, parts, tag))
}

/// Whether one of `keys` signs the concatenation of `parts` with HMAC-SHA512 as `tag`.
pub(crate) fn hmac_sha512_matches(keys: &[Vec<u8>], parts: &[&[u8]], tag: &[u8]) -> bool {
    keys.iter()
        .any(|k| mac_matches::<Hmac<Sha512>>(k, parts, tag))
}

fn mac_matches<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
    let Ok(mut mac) = <M as KeyInit>::new_from_slice(key) else {
        return false;
    };
    for part in parts {
        mac.update(part);
    }
    mac.verify_slice(tag).is_ok()
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

/// A header that authentication needs: missing or unreadable is `Unauthenticated`.
pub(crate) fn auth_header<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, IntakeError> {
    match headers.get(name) {
        None => Err(IntakeError::Unauthenticated(format!(
            "missing header {name}"
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

/// Refuses a signed timestamp more than `tolerance_secs` away from `now`, either way.
pub(crate) fn check_tolerance(
    header: &str,
    sent: DateTime<Utc>,
    now: DateTime<Utc>,
    tolerance_secs: i64,
) -> Result<(), IntakeError> {
    let age = now.signed_duration_since(sent).num_seconds();
    if age > tolerance_secs {
        return Err(IntakeError::Unauthenticated(format!(
            "header {header}: expected a time within {tolerance_secs} s of now, found one {age} s in the past ({})",
            sent.to_rfc3339()
        )));
    }
    if -age > tolerance_secs {
        return Err(IntakeError::Unauthenticated(format!(
            "header {header}: expected a time within {tolerance_secs} s of now, found one {} s in the future ({})",
            -age,
            sent.to_rfc3339()
        )));
    }
    Ok(())
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
