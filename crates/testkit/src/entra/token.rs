//! The Microsoft identity platform's token endpoint, client credentials only: a client secret
//! (form or HTTP Basic) or a client assertion signed with the app's certificate key

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::{lock, Answer, Call, Credentials, Shared, GRAPH_SCOPE};
use crate::process::run;
use crate::TestkitError;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// `/{tenant}/oauth2/v2.0/token`
pub(crate) fn is_token_path(path: &str) -> bool {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    segs.len() == 4 && segs[1] == "oauth2" && segs[2] == "v2.0" && segs[3] == "token"
}

fn pem_der(pem: &str, label: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = pem[start..].find(&end)? + start;
    let body: String = pem[start..stop]
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .ok()
}

/// A fresh 2048-bit RSA key (PKCS#8 PEM) and a self-signed certificate for it, as an app
/// registration's uploaded certificate
pub(crate) fn make_credentials() -> Result<Credentials, TestkitError> {
    let dir = tempfile::tempdir().map_err(|e| TestkitError::io("make a temp dir", e))?;
    let key_path = dir.path().join("key.pem");
    let mut cmd = Command::new("openssl");
    cmd.args([
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
    ])
    .arg(&key_path);
    run(cmd, "openssl genpkey (apt-get install openssl)", None)?;
    let mut cmd = Command::new("openssl");
    cmd.args(["req", "-x509", "-new", "-key"])
        .arg(&key_path)
        .args(["-subj", "/CN=revoked-entra-standin", "-days", "30"]);
    let cert_pem = run(cmd, "openssl req -x509", None)?;
    let key_pem = std::fs::read_to_string(&key_path)
        .map_err(|e| TestkitError::io("read the key openssl made", e))?;
    let bad = |reason: &str| TestkitError::Parse {
        what: "the key and certificate of openssl".into(),
        reason: reason.into(),
    };
    let key_der = pem_der(&key_pem, "PRIVATE KEY").ok_or_else(|| bad("expected a PKCS#8 PEM"))?;
    let cert_der = pem_der(&cert_pem, "CERTIFICATE").ok_or_else(|| bad("expected a PEM cert"))?;
    let pair = ring::signature::RsaKeyPair::from_pkcs8(&key_der)
        .map_err(|e| bad(&format!("ring rejects the key: {e}")))?;
    // Assertions are checked with the certificate's key, as Entra does with the uploaded cert
    let public_key = rsa_public_key_of_cert(&cert_der)
        .ok_or_else(|| bad("no RSA public key found in the certificate"))?;
    if public_key.as_slice() != ring::signature::KeyPair::public_key(&pair).as_ref() {
        return Err(bad("the certificate's key is not the private key's"));
    }
    Ok(Credentials {
        key_pem,
        cert_pem,
        cert_der,
        public_key,
    })
}

/// The length of a DER element whose length octets start at `b[0]`: (length, octets used)
fn der_len(b: &[u8]) -> Option<(usize, usize)> {
    let first = *b.first()?;
    if first < 0x80 {
        return Some((first as usize, 1));
    }
    let n = (first & 0x7f) as usize;
    if n == 0 || n > 4 {
        return None;
    }
    let len = b
        .get(1..=n)?
        .iter()
        .fold(0usize, |acc, x| (acc << 8) | *x as usize);
    Some((len, 1 + n))
}

/// The RSAPublicKey (PKCS#1 DER, what ring verifies with) of an X.509 certificate's
/// subjectPublicKeyInfo: the BIT STRING after the rsaEncryption algorithm identifier
fn rsa_public_key_of_cert(cert: &[u8]) -> Option<Vec<u8>> {
    const RSA_ENCRYPTION: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    ];
    let at = cert
        .windows(RSA_ENCRYPTION.len())
        .position(|w| w == RSA_ENCRYPTION)?;
    let mut i = at + RSA_ENCRYPTION.len();
    if cert.get(i..i + 2) == Some(&[0x05, 0x00]) {
        i += 2;
    }
    if *cert.get(i)? != 0x03 {
        return None;
    }
    let (len, used) = der_len(cert.get(i + 1..)?)?;
    let start = i + 1 + used;
    // the first octet of a BIT STRING counts its unused bits: 0 here
    if *cert.get(start)? != 0 {
        return None;
    }
    cert.get(start + 1..start + len).map(<[u8]>::to_vec)
}

/// SHA-1 of `der`, upper-case hex (the portal's thumbprint)
pub(crate) fn sha1_hex(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

pub(crate) fn new_token(shared: &Shared) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    // Shaped like a JWT (three parts); the stand-in only looks it up
    let token = format!(
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.{}.{}",
        b64.encode(format!(
            "{{\"aud\":\"https://graph.microsoft.com\",\"tid\":\"{}\",\"appid\":\"{}\"}}",
            shared.tenant_id, shared.client_id
        )),
        super::random_hex(64)
    );
    lock(&shared.tokens).insert(token.clone(), Instant::now() + Duration::from_secs(3_599));
    token
}

fn aad_error(status: StatusCode, error: &str, code: u32, description: &str) -> Answer {
    let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
    Answer::json(
        status,
        json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description} Trace ID: 00000000-0000-0000-0000-000000000000 Correlation ID: 00000000-0000-0000-0000-000000000000 Timestamp: {now}"),
            "error_codes": [code],
            "timestamp": now,
            "trace_id": "00000000-0000-0000-0000-000000000000",
            "correlation_id": "00000000-0000-0000-0000-000000000000",
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}

/// `POST /{tenant}/oauth2/v2.0/token`
pub(crate) fn issue(shared: &Shared, call: &Call) -> Answer {
    let tenant = call
        .path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("");
    if !tenant.eq_ignore_ascii_case(&shared.tenant_id)
        && !tenant.eq_ignore_ascii_case(shared.world().domain())
    {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
        );
    }
    let form: HashMap<String, String> = form_urlencoded::parse(&call.body).into_owned().collect();
    let basic = call
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            let (id, secret) = s.split_once(':')?;
            let dec = |x: &str| {
                form_urlencoded::parse(format!("x={x}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            Some((dec(id)?, dec(secret)?))
        });
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    let client_id = form
        .get("client_id")
        .cloned()
        .or_else(|| basic.as_ref().map(|b| b.0.clone()))
        .unwrap_or_default();
    if client_id.is_empty() {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    }
    if client_id != shared.client_id {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{}'.",
                shared.tenant_id
            ),
        );
    }
    if form.get("scope").map(String::as_str) != Some(GRAPH_SCOPE) {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            "The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
        );
    }
    let secret = form
        .get("client_secret")
        .cloned()
        .or_else(|| basic.as_ref().map(|b| b.1.clone()));
    let assertion = form.get("client_assertion");
    match (secret, assertion) {
        (Some(s), None) => {
            if s != shared.client_secret {
                return aad_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app.",
                );
            }
        }
        (None, Some(a)) => {
            if form.get("client_assertion_type").map(String::as_str) != Some(ASSERTION_TYPE) {
                return aad_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    700010,
                    "Invalid client_assertion_type.",
                );
            }
            if let Err(refusal) = check_assertion(shared, a) {
                return *refusal;
            }
        }
        (Some(_), Some(_)) => {
            return aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                7000216,
                "Only one of client_secret and client_assertion may be sent.",
            )
        }
        (None, None) => {
            return aad_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )
        }
    }
    Answer::json(
        StatusCode::OK,
        json!({
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": new_token(shared),
        }),
    )
}

/// Checks an RS256 client assertion: signature with the certificate's key, `x5t`/`x5t#S256`,
/// `aud` the token URL, `iss` = `sub` = the client id, `exp`/`nbf`
fn check_assertion(shared: &Shared, assertion: &str) -> Result<(), Box<Answer>> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let malformed = || {
        Box::new(aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            50027,
            "JWT token is invalid or malformed.",
        ))
    };
    let parts: Vec<&str> = assertion.split('.').collect();
    if parts.len() != 3 {
        return Err(malformed());
    }
    let decode = |s: &str| b64.decode(s.trim_end_matches('=')).ok();
    let (Some(header), Some(claims), Some(sig)) =
        (decode(parts[0]), decode(parts[1]), decode(parts[2]))
    else {
        return Err(malformed());
    };
    let header: Value = serde_json::from_slice(&header).map_err(|_| malformed())?;
    let claims: Value = serde_json::from_slice(&claims).map_err(|_| malformed())?;
    let der = &shared.creds.cert_der;
    let sha1 = b64.encode(ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        der,
    ));
    let sha256 = b64.encode(ring::digest::digest(&ring::digest::SHA256, der));
    let thumb_ok = header["x5t"].as_str().map(|t| t.trim_end_matches('=')) == Some(sha1.as_str())
        || header["x5t#S256"].as_str().map(|t| t.trim_end_matches('=')) == Some(sha256.as_str());
    if !thumb_ok {
        return Err(Box::new(aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700027,
            "The certificate with identifier used to sign the client assertion is not registered on application.",
        )));
    }
    let public = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        &shared.creds.public_key,
    );
    let signed = format!("{}.{}", parts[0], parts[1]);
    if header["alg"] != "RS256" || public.verify(signed.as_bytes(), &sig).is_err() {
        return Err(Box::new(aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700027,
            "Client assertion failed signature validation.",
        )));
    }
    let token_url = format!(
        "{}/{}/oauth2/v2.0/token",
        lock(&shared.origin),
        shared.tenant_id
    );
    let aud_ok = match &claims["aud"] {
        Value::String(a) => *a == token_url,
        Value::Array(list) => list.iter().any(|a| a.as_str() == Some(token_url.as_str())),
        _ => false,
    };
    if !aud_ok {
        return Err(Box::new(aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700212,
            &format!("No matching federated identity record found for presented assertion audience '{}'.", claims["aud"]),
        )));
    }
    if claims["iss"].as_str() != Some(shared.client_id.as_str())
        || claims["sub"].as_str() != Some(shared.client_id.as_str())
    {
        return Err(Box::new(aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700023,
            "Client assertion audience claim does not match Realm issuer, or the issuer and subject are not the client id.",
        )));
    }
    let now = chrono::Utc::now().timestamp();
    let exp = claims["exp"].as_i64();
    let nbf = claims["nbf"].as_i64().unwrap_or(i64::MIN);
    // Entra allows five minutes of clock skew
    if exp.is_none_or(|e| e + 300 < now) || nbf > now + 300 {
        return Err(Box::new(aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700024,
            "Client assertion is not within its valid time range.",
        )));
    }
    Ok(())
}
