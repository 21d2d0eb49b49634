//! The org authorization server's token endpoint for one OAuth 2.0 service app (client
//! credentials with a `private_key_jwt` assertion, DPoP as Okta does it), and the check of the
//! access tokens it issued

use std::time::Instant;

use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256};
use serde_json::{json, Value};

use super::{epoch, lock, random_alnum, ServiceApp, Shared};

/// A compact JWT's header, claims, signature and signed input
fn parts(token: &str) -> Option<(Value, Value, Vec<u8>, String)> {
    let mut it = token.split('.');
    let (h, c, s) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() {
        return None;
    }
    let header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
    let claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).ok()?).ok()?;
    Some((
        header,
        claims,
        URL_SAFE_NO_PAD.decode(s).ok()?,
        format!("{h}.{c}"),
    ))
}

fn sha256_b64url(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, b).as_ref())
}

/// Checks a DPoP proof's signature (by the `jwk` in its header: P-256 or RSA), `typ`, `htm`,
/// `htu` (its path), `iat` (within a minute), a fresh `jti`, and `ath` and `nonce` when asked;
/// returns the key's JWK
fn dpop_proof(
    app: &mut ServiceApp,
    proof: &str,
    method: &str,
    path: &str,
    access_token: Option<&str>,
    nonce: Option<&str>,
) -> Result<Value, String> {
    let (h, c, sig, input) = parts(proof).ok_or("the DPoP proof is not a JWT")?;
    if h["typ"] != "dpop+jwt" {
        return Err("the DPoP proof's typ is not dpop+jwt".into());
    }
    let jwk = h["jwk"].clone();
    let b64 = |k: &str| {
        jwk[k]
            .as_str()
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
            .unwrap_or_default()
    };
    let ok = match (h["alg"].as_str(), jwk["kty"].as_str()) {
        (Some("ES256"), Some("EC")) if jwk["crv"] == "P-256" => {
            let mut point = vec![4u8];
            point.extend(b64("x"));
            point.extend(b64("y"));
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                .verify(input.as_bytes(), &sig)
                .is_ok()
        }
        (Some("RS256"), Some("RSA")) => ring::signature::RsaPublicKeyComponents {
            n: b64("n"),
            e: b64("e"),
        }
        .verify(&RSA_PKCS1_2048_8192_SHA256, input.as_bytes(), &sig)
        .is_ok(),
        _ => false,
    };
    if !ok {
        return Err("the DPoP proof's signature does not verify with its jwk".into());
    }
    let htu_path = c["htu"]
        .as_str()
        .and_then(|u| u.split_once("://"))
        .map(|(_, rest)| rest.find('/').map_or("/", |i| &rest[i..]))
        .unwrap_or("");
    if c["htm"] != method || htu_path != path {
        return Err(format!(
            "the DPoP proof is for {} {}, not {method} {path}",
            c["htm"], c["htu"]
        ));
    }
    if c["htu"].as_str().is_some_and(|u| u.contains('?')) {
        return Err("the DPoP proof's htu has a query".into());
    }
    let iat = c["iat"].as_f64().unwrap_or(0.0);
    if (epoch() - iat).abs() > 60.0 {
        return Err("the DPoP proof's iat is not within a minute".into());
    }
    let jti = c["jti"].as_str().unwrap_or("").to_string();
    if jti.is_empty() || !app.jtis.insert(format!("dpop:{jti}")) {
        return Err("the DPoP proof's jti is missing or was used before".into());
    }
    if let Some(t) = access_token {
        if c["ath"] != sha256_b64url(t.as_bytes()) {
            return Err("the DPoP proof's ath is not the hash of the access token".into());
        }
    }
    if let Some(n) = nonce {
        if c["nonce"] != n {
            return Err("use_dpop_nonce".into());
        }
    }
    Ok(jwk)
}

/// Whether the request's `Authorization` is the API token or a live access token (with its
/// DPoP proof when the token is bound); the nonce to send back with the 401 when the API asks
/// for one ([`super::OktaStandin::require_api_nonce`]) and the proof lacks it
pub(crate) fn authorized(
    shared: &Shared,
    req: &Parts,
    method: &str,
    path: &str,
) -> Result<(), Option<String>> {
    let nonce = lock(&shared.app).as_ref().and_then(|a| a.api_nonce.clone());
    if authorized_inner(shared, req, method, path, nonce.as_deref()) {
        return Ok(());
    }
    let asked = lock(&shared.app).as_ref().is_some_and(|a| {
        a.refusals
            .last()
            .is_some_and(|r| r.ends_with("use_dpop_nonce"))
    });
    Err(if asked { nonce } else { None })
}

fn authorized_inner(
    shared: &Shared,
    req: &Parts,
    method: &str,
    path: &str,
    api_nonce: Option<&str>,
) -> bool {
    let header = |k: &str| req.headers.get(k).and_then(|v| v.to_str().ok());
    let Some(auth) = header("authorization") else {
        return false;
    };
    if let Some(t) = auth.strip_prefix("SSWS ") {
        return t.trim() == shared.token;
    }
    let mut guard = lock(&shared.app);
    let Some(app) = guard.as_mut() else {
        return false;
    };
    let (scheme, token) = auth.split_once(' ').unwrap_or(("", ""));
    let Some((expires, bound)) = app.issued.get(token).cloned() else {
        app.refusals
            .push(format!("{method} {path}: unknown or revoked access token"));
        return false;
    };
    if expires <= Instant::now() {
        app.refusals
            .push(format!("{method} {path}: expired access token"));
        return false;
    }
    match (scheme, bound) {
        ("Bearer", None) => true,
        ("DPoP", Some(jwk)) => {
            let Some(proof) = header("dpop") else {
                app.refusals.push(format!("{method} {path}: no DPoP proof"));
                return false;
            };
            match dpop_proof(app, proof, method, path, Some(token), api_nonce) {
                Ok(k) if k == jwk => true,
                Ok(_) => {
                    app.refusals
                        .push(format!("{method} {path}: a DPoP proof of another key"));
                    false
                }
                Err(e) => {
                    app.refusals.push(format!("{method} {path}: {e}"));
                    false
                }
            }
        }
        (s, _) => {
            app.refusals.push(format!(
                "{method} {path}: scheme {s:?} does not fit the token"
            ));
            false
        }
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// `POST /oauth2/v1/token`
pub(crate) fn token(shared: &Shared, req: &Parts, form: &[u8]) -> Response {
    let mut guard = lock(&shared.app);
    let Some(app) = guard.as_mut() else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "No service app is registered.",
        );
    };
    let refuse = |app: &mut ServiceApp, status: StatusCode, error: &str, why: &str| {
        app.refusals.push(format!("token: {error}: {why}"));
        oauth_error(status, error, why)
    };
    let f: std::collections::HashMap<String, String> =
        form_urlencoded::parse(form).into_owned().collect();
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    if get("grant_type") != "client_credentials" {
        return refuse(
            app,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "expected client_credentials",
        );
    }
    if get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
        return refuse(
            app,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "expected a jwt-bearer client assertion",
        );
    }
    // The assertion: RS256 by the app's key, its kid, iss = sub = client id, aud the token URL.
    let Some((h, c, sig, input)) = parts(get("client_assertion")) else {
        return refuse(
            app,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "the client_assertion is not a JWT",
        );
    };
    let verified = h["alg"] == "RS256"
        && UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &app.public_key)
            .verify(input.as_bytes(), &sig)
            .is_ok();
    if !verified {
        return refuse(
            app,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The client_assertion signature is invalid.",
        );
    }
    if let Some(kid) = &app.kid {
        if h["kid"] != kid.as_str() {
            return refuse(
                app,
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "The client_assertion kid is not a key of the app.",
            );
        }
    }
    let now = epoch();
    let aud_ok = c["aud"]
        .as_str()
        .is_some_and(|a| a.ends_with("/oauth2/v1/token"));
    if c["iss"] != app.client_id.as_str() || c["sub"] != app.client_id.as_str() || !aud_ok {
        return refuse(
            app,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The client_assertion iss, sub or aud is wrong.",
        );
    }
    if c["exp"].as_f64().is_none_or(|e| e <= now) {
        return refuse(
            app,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The client_assertion has expired.",
        );
    }
    let jti = c["jti"].as_str().unwrap_or("").to_string();
    if jti.is_empty() || !app.jtis.insert(format!("assertion:{jti}")) {
        return refuse(
            app,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The client_assertion jti is missing or was used before.",
        );
    }
    let scopes: Vec<String> = get("scope").split(' ').map(str::to_string).collect();
    let denied: Vec<&String> = scopes.iter().filter(|s| !app.granted.contains(s)).collect();
    if !denied.is_empty() {
        let why = format!(
            "The following scopes are not allowed: {}",
            denied
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        );
        return refuse(app, StatusCode::BAD_REQUEST, "invalid_scope", &why);
    }
    // DPoP: a proof with the server's nonce, else 400 use_dpop_nonce with the nonce.
    let proof = req.headers.get("dpop").and_then(|v| v.to_str().ok());
    let bound = match proof {
        None if app.require_dpop => {
            return refuse(
                app,
                StatusCode::BAD_REQUEST,
                "invalid_dpop_proof",
                "DPoP proof is missing.",
            )
        }
        None => None,
        Some(p) => {
            let nonce = app.nonce.clone();
            match dpop_proof(app, p, "POST", "/oauth2/v1/token", None, Some(&nonce)) {
                Ok(jwk) => Some(jwk),
                Err(e) if e == "use_dpop_nonce" => {
                    let mut r = oauth_error(
                        StatusCode::BAD_REQUEST,
                        "use_dpop_nonce",
                        "Authorization server requires nonce in DPoP proof.",
                    );
                    if let Ok(v) = HeaderValue::from_str(&nonce) {
                        r.headers_mut().insert("dpop-nonce", v);
                    }
                    return r;
                }
                Err(e) => return refuse(app, StatusCode::BAD_REQUEST, "invalid_dpop_proof", &e),
            }
        }
    };
    let token = random_alnum(48);
    let kind = if bound.is_some() { "DPoP" } else { "Bearer" };
    app.issued
        .insert(token.clone(), (Instant::now() + app.ttl, bound));
    app.tokens_issued += 1;
    (
        StatusCode::OK,
        axum::Json(json!({
            "token_type": kind,
            "expires_in": app.ttl.as_secs().max(1),
            "access_token": token,
            "scope": scopes.join(" "),
        })),
    )
        .into_response()
}
