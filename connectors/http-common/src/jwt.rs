//! Signed JSON Web Tokens (RFC 7515 compact form) for the connectors that authenticate with a key
//! rather than a secret: Google's service-account assertion (RFC 7523), Okta's and Entra's
//! `private_key_jwt` client assertions, and DPoP proofs (RFC 9449).
//!
//! Signed with ring, which rustls has already, rather than jsonwebtoken (a second RSA stack).
//! [`Rs256`] holds an RSA key read from PKCS#8 PEM, with an optional `kid` and `x5t` in every
//! header; the caller writes the claims. [`Es256`] is a P-256 key made in memory, for DPoP proofs
//! that carry their public key in the header.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use ring::rsa::PublicKeyComponents;
use ring::signature::{
    EcdsaKeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256,
};
use serde_json::{json, Map, Value};

/// Why a key could not be read or a token not signed; never quotes the key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("the key's pem body is not base64")]
    NotBase64,
    #[error("expected an RSA key in PKCS#8, found one ring rejects ({0})")]
    NotRsaPkcs8(String),
    #[error("the certificate's pem body is not base64")]
    CertNotBase64,
    #[error("signing failed")]
    Sign,
}

/// Seconds since the epoch (0 if the clock is before it).
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A fresh random `jti`: 16 random bytes, base64url.
pub fn jti() -> String {
    let mut b = [0u8; 16];
    // SystemRandom fails only when the OS has no randomness: then a time-based id is still unique
    // enough for a replay cache, and signing itself would fail anyway.
    if SystemRandom::new().fill(&mut b).is_err() {
        b[..8].copy_from_slice(&now().to_be_bytes());
    }
    URL_SAFE_NO_PAD.encode(b)
}

/// The DER inside a PEM block (the first one's body: lines between `-----` markers).
fn pem_body(pem: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .filter(|l| !l.is_empty())
        .collect();
    let body = if body.is_empty() {
        // No BEGIN line: the body alone.
        pem.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("-----"))
            .collect()
    } else {
        body
    };
    STANDARD.decode(body.as_bytes())
}

/// `x5t`: the base64url SHA-1 thumbprint of a PEM certificate's DER (what Entra reads to find
/// the certificate of a client assertion).
pub fn x5t_of_cert_pem(cert_pem: &str) -> Result<String, JwtError> {
    let der = pem_body(cert_pem).map_err(|_| JwtError::CertNotBase64)?;
    let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &der);
    Ok(URL_SAFE_NO_PAD.encode(d.as_ref()))
}

/// `x5t#S256`: the base64url SHA-256 thumbprint of a PEM certificate's DER.
pub fn x5t_s256_of_cert_pem(cert_pem: &str) -> Result<String, JwtError> {
    let der = pem_body(cert_pem).map_err(|_| JwtError::CertNotBase64)?;
    Ok(sha256_b64url(&der))
}

/// base64url(SHA-256(bytes)): DPoP's `ath` of an access token, a thumbprint.
pub fn sha256_b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// An RS256 signer over an RSA private key.
pub struct Rs256 {
    key: RsaKeyPair,
    rng: SystemRandom,
    kid: Option<String>,
    x5t: Option<String>,
}

impl std::fmt::Debug for Rs256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rs256")
            .field("kid", &self.kid)
            .field("x5t", &self.x5t)
            .finish_non_exhaustive()
    }
}

impl Rs256 {
    /// Reads an unencrypted PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) holding an RSA key.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, JwtError> {
        let der = pem_body(pem).map_err(|_| JwtError::NotBase64)?;
        let key = RsaKeyPair::from_pkcs8(&der).map_err(|e| JwtError::NotRsaPkcs8(e.to_string()))?;
        Ok(Self {
            key,
            rng: SystemRandom::new(),
            kid: None,
            x5t: None,
        })
    }

    /// Every header names this key id (`kid`): Okta's service app finds its key by it.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// Every header carries this certificate thumbprint (`x5t`, see [`x5t_of_cert_pem`]).
    pub fn with_x5t(mut self, x5t: impl Into<String>) -> Self {
        self.x5t = Some(x5t.into());
        self
    }

    /// `{"alg":"RS256","typ":"JWT"}` with `kid` and `x5t` when set.
    pub fn header(&self) -> Value {
        let mut h = Map::new();
        h.insert("alg".into(), json!("RS256"));
        h.insert("typ".into(), json!("JWT"));
        if let Some(kid) = &self.kid {
            h.insert("kid".into(), json!(kid));
        }
        if let Some(x5t) = &self.x5t {
            h.insert("x5t".into(), json!(x5t));
        }
        Value::Object(h)
    }

    /// The compact JWT of `claims` (written by the caller: `iss`, `aud`, `exp`, ...).
    pub fn sign(&self, claims: &Value) -> Result<String, JwtError> {
        self.sign_with_header(&self.header(), claims)
    }

    /// The compact JWT of `claims` under a header of the caller's (its `alg` must be RS256).
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> Result<String, JwtError> {
        let input = signing_input(header, claims);
        let mut sig = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &self.rng, input.as_bytes(), &mut sig)
            .map_err(|_| JwtError::Sign)?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }

    /// The public half as DER `RSAPublicKey` (what `ring::signature::UnparsedPublicKey` takes).
    pub fn public_key_der(&self) -> Vec<u8> {
        self.key.public_key().as_ref().to_vec()
    }

    /// The public half as a JWK (`kty`, `n`, `e`, and `kid` when set): what to register with Okta.
    pub fn public_jwk(&self) -> Value {
        let c: PublicKeyComponents<Vec<u8>> = self.key.public().into();
        let mut j = json!({
            "kty": "RSA",
            "n": URL_SAFE_NO_PAD.encode(&c.n),
            "e": URL_SAFE_NO_PAD.encode(&c.e),
        });
        if let Some(kid) = &self.kid {
            j["kid"] = json!(kid);
        }
        j
    }
}

/// The public half as DER `RSAPublicKey` (for `ring::signature::UnparsedPublicKey`).
impl KeyPair for Rs256 {
    type PublicKey = <RsaKeyPair as KeyPair>::PublicKey;
    fn public_key(&self) -> &Self::PublicKey {
        self.key.public_key()
    }
}

/// An ES256 signer over a P-256 key made in memory (a DPoP key: never stored, never registered).
pub struct Es256 {
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for Es256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Es256").finish_non_exhaustive()
    }
}

impl Es256 {
    /// A new random key.
    pub fn generate() -> Result<Self, JwtError> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| JwtError::Sign)?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng)
            .map_err(|_| JwtError::Sign)?;
        Ok(Self { key, rng })
    }

    /// The public half as a JWK (`kty` EC, `crv` P-256, `x`, `y`).
    pub fn public_jwk(&self) -> Value {
        // The uncompressed point: 0x04, then x and y of 32 bytes each.
        let p = self.key.public_key().as_ref();
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&p[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&p[33..65]),
        })
    }

    /// The uncompressed public point (for `ring::signature::UnparsedPublicKey`).
    pub fn public_key_bytes(&self) -> &[u8] {
        self.key.public_key().as_ref()
    }

    /// The compact JWT of `claims` under `header` plus `"alg":"ES256"`.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> Result<String, JwtError> {
        let mut header = header.clone();
        header["alg"] = json!("ES256");
        let input = signing_input(&header, claims);
        let sig = self
            .key
            .sign(&self.rng, input.as_bytes())
            .map_err(|_| JwtError::Sign)?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref())))
    }

    /// An RFC 9449 DPoP proof for a request: header `typ` `dpop+jwt` with this key's JWK; claims
    /// `jti`, `htm`, `htu` (the URL without query or fragment), `iat`, and `ath` (the hash of
    /// the access token) and `nonce` when given.
    pub fn dpop_proof(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<String, JwtError> {
        let htu = url.split(['?', '#']).next().unwrap_or(url);
        let mut claims = json!({"jti": jti(), "htm": method, "htu": htu, "iat": now()});
        if let Some(t) = access_token {
            claims["ath"] = json!(sha256_b64url(t.as_bytes()));
        }
        if let Some(n) = nonce {
            claims["nonce"] = json!(n);
        }
        self.sign_with_header(
            &json!({"typ": "dpop+jwt", "jwk": self.public_jwk()}),
            &claims,
        )
    }
}

/// The parts of a compact JWT, decoded: header, claims, signature, and the signed input. For
/// stand-ins and tests that check a token; verifies nothing itself.
pub fn decode_unverified(token: &str) -> Option<(Value, Value, Vec<u8>, String)> {
    let mut parts = token.split('.');
    let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
    let claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).ok()?).ok()?;
    let sig = URL_SAFE_NO_PAD.decode(s).ok()?;
    Some((header, claims, sig, format!("{h}.{c}")))
}

#[cfg(test)]
mod tests {
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256};

    use super::*;

    fn openssl(args: &[&str]) -> String {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl is needed to make a test key (apt-get install openssl)");
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn rsa_pem() -> String {
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
    }

    #[test]
    fn an_rs256_token_carries_kid_and_x5t_and_verifies_with_the_public_half() {
        let k = Rs256::from_pkcs8_pem(&rsa_pem())
            .expect("key")
            .with_kid("k1")
            .with_x5t("abc");
        let t = k
            .sign(&json!({"iss": "c", "aud": "https://x/token"}))
            .expect("sign");
        let (h, c, sig, input) = decode_unverified(&t).expect("three parts");
        assert_eq!(
            h,
            json!({"alg": "RS256", "typ": "JWT", "kid": "k1", "x5t": "abc"})
        );
        assert_eq!(c["aud"], "https://x/token");
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, k.public_key().as_ref())
            .verify(input.as_bytes(), &sig)
            .expect("verifies");
        // A tampered token does not.
        assert!(
            UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, k.public_key().as_ref())
                .verify(format!("{input}x").as_bytes(), &sig)
                .is_err()
        );
        let jwk = k.public_jwk();
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["e"], "AQAB");
        assert_eq!(jwk["kid"], "k1");
    }

    #[test]
    fn a_dpop_proof_has_its_key_in_the_header_the_request_in_the_claims_and_verifies() {
        let k = Es256::generate().expect("key");
        let p = k
            .dpop_proof(
                "GET",
                "https://o.okta.com/api/v1/users?search=x#f",
                Some("tok"),
                Some("n1"),
            )
            .expect("proof");
        let (h, c, sig, input) = decode_unverified(&p).expect("parts");
        assert_eq!(h["typ"], "dpop+jwt");
        assert_eq!(h["alg"], "ES256");
        assert_eq!(h["jwk"]["crv"], "P-256");
        assert_eq!(c["htm"], "GET");
        assert_eq!(c["htu"], "https://o.okta.com/api/v1/users");
        assert_eq!(c["ath"], sha256_b64url(b"tok"));
        assert_eq!(c["nonce"], "n1");
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, k.public_key_bytes())
            .verify(input.as_bytes(), &sig)
            .expect("verifies");
        let p2 = k
            .dpop_proof("GET", "https://x/", None, None)
            .expect("proof");
        let (_, c2, _, _) = decode_unverified(&p2).expect("parts");
        assert_ne!(c2["jti"], c["jti"]);
        assert!(c2.get("ath").is_none());
    }

    #[test]
    fn a_bad_key_is_a_clear_error_without_the_key() {
        for pem in [
            "-----BEGIN PRIVATE KEY-----\nnot base64 hunter2!\n-----END PRIVATE KEY-----",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
        ] {
            let e = Rs256::from_pkcs8_pem(pem).expect_err("refused").to_string();
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn the_thumbprints_of_a_certificate_are_its_der_digests() {
        let der = [1u8, 2, 3];
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            STANDARD.encode(der)
        );
        let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &der);
        assert_eq!(
            x5t_of_cert_pem(&pem).expect("x5t"),
            URL_SAFE_NO_PAD.encode(sha1.as_ref())
        );
        assert_eq!(
            x5t_s256_of_cert_pem(&pem).expect("x5t"),
            sha256_b64url(&der)
        );
    }
}
