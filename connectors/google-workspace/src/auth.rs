//! The service account's credentials: an RFC 7523 JWT-bearer assertion, signed RS256 with the
//! key's private half, exchanged at the key's `token_uri` for an access token, once per delegated
//! subject (the admin for the Admin SDK, Data Transfer and Licensing; the leaver for Gmail).
//!
//! Signed with ring (already in the tree through rustls) rather than yup-oauth2 or gcp_auth:
//! gcp_auth 0.12 retries a failed token call itself (up to 5 times, 50 to 400 ms apart), which
//! only the executor may do; yup-oauth2 12 brings a second HTTP stack (hyper-util's client with
//! hyper-rustls and HTTP/2) next to reqwest and one authenticator per impersonated user. The
//! token call goes through the connector's own client instead, so it is paced, classified and
//! never retried. The reasoning is in docs/connectors/google-workspace.md.

use revoke_http::jwt::{self, Rs256};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::config::KeyFile;

/// Google's maximum assertion lifetime (one hour).
const LIFETIME_SECS: u64 = 3_600;

/// Signs assertions for one service account (the signing itself is `revoke_http::jwt`'s).
pub struct Signer {
    pub client_email: String,
    pub token_uri: String,
    key: Rs256,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Parses the PKCS#8 key; the message never quotes it.
    pub fn new(key: &KeyFile) -> Result<Self, String> {
        let key_pair = Rs256::from_pkcs8_pem(key.private_key_pem.expose_secret())
            .map_err(|e| format!("private_key: {e}"))?;
        Ok(Self {
            client_email: key.client_email.clone(),
            token_uri: key.token_uri.clone(),
            key: key_pair,
        })
    }

    /// The assertion for `subject` and `scopes`: `iss` the service account, `sub` the user it
    /// acts as, `aud` the token URI, valid one hour from now.
    pub fn assertion(&self, subject: &str, scopes: &[&str]) -> Result<String, String> {
        let now = jwt::now();
        self.key
            .sign(&json!({
                "iss": self.client_email,
                "sub": subject,
                "scope": scopes.join(" "),
                "aud": self.token_uri,
                "iat": now,
                "exp": now + LIFETIME_SECS,
            }))
            .map_err(|_| "signing the assertion failed".to_string())
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use ring::signature::{KeyPair, UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
    use secrecy::SecretString;

    use super::*;

    fn openssl_key() -> String {
        let out = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .output()
            .expect("openssl is needed to make a test key (apt-get install openssl)");
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn the_assertion_is_rs256_signed_with_the_claims_google_checks() {
        let pem = openssl_key();
        let key = KeyFile {
            client_email: "sa@p.iam.gserviceaccount.com".into(),
            private_key_pem: SecretString::from(pem),
            token_uri: "https://oauth2.googleapis.com/token".into(),
        };
        let signer = Signer::new(&key).expect("key");
        let jwt = signer
            .assertion("admin@example.com", &["a", "b"])
            .expect("assertion");
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
        assert_eq!(claims["iss"], "sa@p.iam.gserviceaccount.com");
        assert_eq!(claims["sub"], "admin@example.com");
        assert_eq!(claims["scope"], "a b");
        assert_eq!(claims["aud"], "https://oauth2.googleapis.com/token");
        assert_eq!(
            claims["exp"].as_u64().unwrap_or(0) - claims["iat"].as_u64().unwrap_or(0),
            3_600
        );
        let public = UnparsedPublicKey::new(
            &RSA_PKCS1_2048_8192_SHA256,
            signer.key.public_key().as_ref().to_vec(),
        );
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).expect("b64");
        public
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .expect("the signature verifies with the public half");
    }

    #[test]
    fn a_bad_key_is_a_clear_error_without_the_key() {
        for pem in [
            "-----BEGIN PRIVATE KEY-----\nnot base64 hunter2!\n-----END PRIVATE KEY-----",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
        ] {
            let key = KeyFile {
                client_email: "sa@p".into(),
                private_key_pem: SecretString::from(pem.to_string()),
                token_uri: "https://x/token".into(),
            };
            let e = Signer::new(&key).expect_err("refused");
            assert!(e.starts_with("private_key: "), "{e}");
            assert!(!e.contains("hunter2"));
        }
    }
}
