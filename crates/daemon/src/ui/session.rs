//! Console sign-in: an API token is exchanged for a server-side session, kept in the store
//! (so every replica behind a load balancer knows it, and a restart keeps it) and named by an
//! opaque cookie; each session has its own CSRF token. Only the SHA-256 of the cookie value is
//! stored. Every request checks again that the session's token is still configured: a token
//! removed from the configuration ends its sessions, and a scope lowered since sign-in applies.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderMap};
use chrono::Utc;
use rand::RngCore as _;
use revoke_config::TokenScope;
use revoke_store::{NewConsoleSession, Store, StoreError};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::state::Token;

/// The session cookie; `Path=/ui`, `HttpOnly`, `SameSite=Strict` (and `Secure` behind TLS).
pub(crate) const SESSION_COOKIE: &str = "revoked_session";
/// The sign-in form's CSRF cookie (double submit: the form carries the same value).
pub(crate) const LOGIN_COOKIE: &str = "revoked_login";

/// A session ends this long after sign-in, whatever happens.
pub(crate) const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// ... or this long after its last request.
pub(crate) const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
/// Live sessions held at most (all replicas together); a sign-in beyond it is refused.
pub(crate) const MAX_SESSIONS: u64 = 10_000;

/// One signed-in browser: the token's name and scope, and its CSRF token.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The configured token's name (`token:NAME` in the audit log).
    pub name: String,
    pub scope: TokenScope,
    pub csrf: String,
}

impl Session {
    /// The acting identity, as the API writes it.
    pub fn actor(&self) -> String {
        format!("token:{}", self.name)
    }

    pub fn may_act(&self) -> bool {
        self.scope >= TokenScope::Operator
    }

    /// Whether `given` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, given: &str) -> bool {
        !given.is_empty() && bool::from(self.csrf.as_bytes().ct_eq(given.as_bytes()))
    }
}

/// The console's sessions, in the shared store.
#[derive(Debug, Clone)]
pub(crate) struct Sessions {
    store: Arc<dyn Store>,
}

/// 32 random bytes as hex: session ids and CSRF tokens.
pub(crate) fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

fn key(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Sessions {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Sessions { store }
    }

    /// Starts a session; the cookie value, or `None` when `MAX_SESSIONS` live sessions exist.
    pub async fn create(
        &self,
        name: &str,
        scope: TokenScope,
    ) -> Result<Option<(String, Session)>, StoreError> {
        let now = Utc::now();
        let id = random_token();
        let s = Session {
            name: name.to_string(),
            scope,
            csrf: random_token(),
        };
        let recorded = self
            .store
            .create_console_session(
                &NewConsoleSession {
                    id_sha256: key(&id),
                    token_name: s.name.clone(),
                    scope: scope.as_str().to_string(),
                    csrf: s.csrf.clone(),
                    created_at: now,
                    expires_at: now + chrono(SESSION_LIFETIME),
                    idle_until: now + chrono(SESSION_IDLE),
                },
                MAX_SESSIONS,
            )
            .await?;
        Ok(recorded.then_some((id, s)))
    }

    /// The live session a request's cookie names (its idle time restarts), with the scope its
    /// token has now; `None` when there is none, it expired, or its token is no longer
    /// configured.
    pub async fn get(
        &self,
        headers: &HeaderMap,
        tokens: &[Token],
    ) -> Result<Option<Session>, StoreError> {
        let Some(id) = cookie(headers, SESSION_COOKIE) else {
            return Ok(None);
        };
        let k = key(&id);
        let now = Utc::now();
        let Some(row) = self
            .store
            .console_session(&k, now, now + chrono(SESSION_IDLE))
            .await?
        else {
            return Ok(None);
        };
        let signed_in = match row.scope.as_str() {
            "operator" => TokenScope::Operator,
            _ => TokenScope::Read,
        };
        let Some(now_scope) = tokens
            .iter()
            .find(|t| t.name == row.token_name)
            .map(|t| t.scope)
        else {
            self.store.end_console_session(&k).await?;
            return Ok(None);
        };
        Ok(Some(Session {
            name: row.token_name,
            scope: signed_in.min(now_scope),
            csrf: row.csrf,
        }))
    }

    /// Ends the session a request's cookie names.
    pub async fn remove(&self, headers: &HeaderMap) -> Result<(), StoreError> {
        match cookie(headers, SESSION_COOKIE) {
            Some(id) => self.store.end_console_session(&key(&id)).await,
            None => Ok(()),
        }
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Whether the request came through TLS (a reverse proxy says so in `X-Forwarded-Proto`).
pub(crate) fn behind_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value for the console's cookies; `max_age` 0 removes it.
pub(crate) fn set_cookie(name: &str, value: &str, max_age: Duration, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tokens(scope: TokenScope) -> Vec<Token> {
        vec![Token {
            name: "ops".into(),
            sha256: [0; 32],
            scope,
        }]
    }

    #[tokio::test]
    async fn a_session_is_found_by_its_cookie_only_ends_on_sign_out_and_with_its_token() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("db").display());
        let store: Arc<dyn Store> = Arc::new(revoke_store::SqliteStore::open(&url).await.unwrap());
        let sessions = Sessions::new(store.clone());
        let (id, s) = sessions
            .create("ops", TokenScope::Operator)
            .await
            .unwrap()
            .unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            format!("other=1; {SESSION_COOKIE}={id}").parse().unwrap(),
        );
        let ops = tokens(TokenScope::Operator);
        let found = sessions.get(&h, &ops).await.unwrap().unwrap();
        assert_eq!(found.actor(), "token:ops");
        assert!(found.may_act());
        assert!(found.csrf_matches(&s.csrf));
        assert!(!found.csrf_matches(""));
        assert!(!found.csrf_matches(&random_token()));
        // Another replica (another handle on the same store) knows it.
        let other = Sessions::new(Arc::new(
            revoke_store::SqliteStore::open(&url).await.unwrap(),
        ));
        assert!(other.get(&h, &ops).await.unwrap().is_some());
        // A scope lowered since sign-in applies; a token removed ends the session.
        let lowered = sessions
            .get(&h, &tokens(TokenScope::Read))
            .await
            .unwrap()
            .unwrap();
        assert!(!lowered.may_act());
        let mut forged = HeaderMap::new();
        forged.insert(
            header::COOKIE,
            format!("{SESSION_COOKIE}={}", random_token())
                .parse()
                .unwrap(),
        );
        assert!(sessions.get(&forged, &ops).await.unwrap().is_none());
        sessions.remove(&h).await.unwrap();
        assert!(sessions.get(&h, &ops).await.unwrap().is_none());
        let (id, _) = sessions
            .create("ops", TokenScope::Operator)
            .await
            .unwrap()
            .unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            format!("{SESSION_COOKIE}={id}").parse().unwrap(),
        );
        assert!(
            sessions.get(&h, &[]).await.unwrap().is_none(),
            "its token is gone"
        );
        assert!(
            sessions.get(&h, &ops).await.unwrap().is_none(),
            "and so is the session, for good"
        );
    }
}
