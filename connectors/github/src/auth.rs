//! Credentials: a personal access token, or a GitHub App (a JWT signed with the App's key is
//! exchanged for an installation token, which is refreshed before it expires).
//!
//! Installation tokens live one hour. We mint one on first use and again once fewer than
//! `REFRESH_BEFORE` remain, so a long job never sends a token that expires in flight.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tokio::sync::Mutex;

/// An installation token with less than this left is replaced before use.
pub const REFRESH_BEFORE: Duration = Duration::minutes(5);

pub enum Auth {
    Token(SecretString),
    App(Box<AppAuth>),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Token(_) => f.write_str("Auth::Token(..)"),
            Auth::App(a) => write!(f, "Auth::{a:?}"),
        }
    }
}

pub struct AppAuth {
    pub app_id: u64,
    pub installation_id: u64,
    key: RsaKeyPair,
    rng: SystemRandom,
    cached: Mutex<Option<(SecretString, DateTime<Utc>)>>,
    minted: AtomicU64,
}

impl std::fmt::Debug for AppAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AppAuth(app_id={}, installation_id={})",
            self.app_id, self.installation_id
        )
    }
}

/// The DER inside a PEM block, and whether it is PKCS#8 (`BEGIN PRIVATE KEY`) rather than
/// PKCS#1 (`BEGIN RSA PRIVATE KEY`, what GitHub hands out).
fn pem_der(pem: &str) -> Result<(Vec<u8>, bool), String> {
    let pkcs8 = pem.contains("-----BEGIN PRIVATE KEY-----");
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    let der = STANDARD
        .decode(body.as_bytes())
        .map_err(|e| format!("private_key: the PEM body is not base64 ({e})"))?;
    Ok((der, pkcs8))
}

impl AppAuth {
    pub fn new(app_id: u64, installation_id: u64, pem: &SecretString) -> Result<Self, String> {
        let (der, pkcs8) = pem_der(pem.expose_secret())?;
        let key = if pkcs8 {
            RsaKeyPair::from_pkcs8(&der)
        } else {
            RsaKeyPair::from_der(&der)
        }
        .map_err(|e| {
            format!("private_key: expected an RSA private key, found one ring rejects ({e})")
        })?;
        Ok(Self {
            app_id,
            installation_id,
            key,
            rng: SystemRandom::new(),
            cached: Mutex::new(None),
            minted: AtomicU64::new(0),
        })
    }

    /// The App's JWT: RS256, issued a minute in the past for clock drift, valid nine minutes
    /// (GitHub allows ten).
    pub fn jwt(&self) -> Result<String, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let header = URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "typ": "JWT"}).to_string());
        let claims = URL_SAFE_NO_PAD.encode(
            json!({"iat": now.saturating_sub(60), "exp": now + 540, "iss": self.app_id.to_string()})
                .to_string(),
        );
        let signing_input = format!("{header}.{claims}");
        let mut sig = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &self.rng,
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| "signing the app jwt failed".to_string())?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }

    /// The token slot, locked while a token is checked and, when due, minted, so concurrent
    /// requests mint one token, not one each.
    pub async fn slot(&self) -> tokio::sync::MutexGuard<'_, Option<(SecretString, DateTime<Utc>)>> {
        self.cached.lock().await
    }

    /// The slot's token while it has more than `REFRESH_BEFORE` left.
    pub fn fresh(slot: &Option<(SecretString, DateTime<Utc>)>) -> Option<SecretString> {
        slot.as_ref()
            .filter(|(_, exp)| *exp - Utc::now() > REFRESH_BEFORE)
            .map(|(t, _)| t.clone())
    }

    pub fn count_minted(&self) {
        self.minted.fetch_add(1, Ordering::Relaxed);
    }

    /// How many installation tokens this instance has minted.
    pub fn minted(&self) -> u64 {
        self.minted.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};

    use super::*;

    fn openssl_key() -> Option<String> {
        let out = std::process::Command::new("openssl")
            .args(["genrsa", "-traditional", "2048"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    #[test]
    fn the_jwt_is_rs256_signed_by_the_apps_key_with_its_id_as_issuer() {
        let Some(pem) = openssl_key() else {
            panic!("openssl is needed to make a test key (apt-get install openssl)");
        };
        assert!(pem.contains("BEGIN RSA PRIVATE KEY"), "{pem}");
        let app = AppAuth::new(4242, 7, &SecretString::from(pem)).expect("key");
        let jwt = app.jwt().expect("jwt");
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
        assert_eq!(claims["iss"], "4242");
        assert!(claims["exp"].as_u64() > claims["iat"].as_u64());
        let public = app.key.public().as_ref().to_vec();
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public)
            .verify(
                format!("{}.{}", parts[0], parts[1]).as_bytes(),
                &URL_SAFE_NO_PAD.decode(parts[2]).expect("b64"),
            )
            .expect("signature verifies with the app's public key");
    }

    #[test]
    fn a_bad_key_is_a_clear_error() {
        let e = AppAuth::new(
            1,
            1,
            &SecretString::from(
                "-----BEGIN RSA PRIVATE KEY-----\nnot base64!\n-----END RSA PRIVATE KEY-----",
            ),
        )
        .expect_err("bad");
        assert!(
            e.starts_with("private_key: the PEM body is not base64"),
            "{e}"
        );
        let e = AppAuth::new(
            1,
            1,
            &SecretString::from(
                "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----",
            ),
        )
        .expect_err("bad");
        assert!(
            e.starts_with("private_key: expected an RSA private key"),
            "{e}"
        );
    }
}
