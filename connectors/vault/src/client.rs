//! The HTTP client of one Vault or OpenBao cluster: the credential, the namespace, a pace, and
//! the hold a 429 puts on every call, shared by every job.
//!
//! - The credential: a token, or an AppRole login (`auth/<approle_mount>/login`) whose token is
//!   kept until a tenth of its lease is left, then replaced before a call leaves with it.
//! - The pace: at most `requests_per_second` calls leave per second (0: no pace).
//! - A 429 from a rate-limit quota holds every call of this instance until its `Retry-After` (one
//!   second when the cluster sends none) has passed: the executor also waits that long before it
//!   retries the refused action, and no other action's call goes out early meanwhile.
//!
//! The client never retries (only the executor does) and never follows a redirect (a standby
//! redirecting to the active node would carry the token to wherever it points).

use crate::classify::VaultAnswer;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex as StdMutex;
use std::time::{Duration, Instant};

use reqwest::Method;
use revoke_core::ConnectorError;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use tokio::sync::Mutex;
use tracing::{debug, info};

use crate::classify::{self, Reply};
use crate::config::VaultConfig;

pub use revoke_http::encode;

#[derive(Debug)]
enum Credential {
    Token(SecretString),
    AppRole {
        role_id: String,
        secret_id: SecretString,
        mount: String,
        cached: Mutex<Option<(SecretString, Instant)>>,
    },
}

/// The client of one cluster (see the module doc).
#[derive(Debug)]
pub struct Client {
    instance: String,
    base: String,
    http: reqwest::Client,
    credential: Credential,
    namespace: Option<String>,
    pace: Option<Duration>,
    next_slot: Mutex<Instant>,
    hold_until: StdMutex<Option<Instant>>,
    calls: AtomicU64,
    rate_limited: AtomicU64,
    early: AtomicU64,
    logins: AtomicU64,
}

impl Client {
    pub fn new(instance: &str, cfg: &VaultConfig) -> Result<Self, String> {
        let credential = match (&cfg.token, &cfg.role_id, &cfg.secret_id) {
            (Some(t), None, _) => Credential::Token(t.clone()),
            (None, Some(r), Some(s)) => Credential::AppRole {
                role_id: r.clone(),
                secret_id: s.clone(),
                mount: cfg.approle_mount.trim_matches('/').to_string(),
                cached: Mutex::new(None),
            },
            _ => return Err("expected token, or role_id with secret_id".into()),
        };
        Ok(Self {
            instance: instance.to_string(),
            base: cfg.base_url(),
            http: revoke_http::client(cfg.timeout())?,
            credential,
            namespace: cfg.namespace.clone(),
            pace: (cfg.requests_per_second > 0)
                .then(|| Duration::from_secs_f64(1.0 / cfg.requests_per_second as f64)),
            next_slot: Mutex::new(Instant::now()),
            hold_until: StdMutex::new(None),
            calls: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            early: AtomicU64::new(0),
            logins: AtomicU64::new(0),
        })
    }

    /// HTTP calls sent so far (AppRole logins included).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// 429 answers received so far.
    pub fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }

    /// Calls that left before the `Retry-After` of an earlier 429 had passed (0 unless the hold
    /// is broken).
    pub fn early(&self) -> u64 {
        self.early.load(Ordering::Relaxed)
    }

    /// AppRole logins so far.
    pub fn logins(&self) -> u64 {
        self.logins.load(Ordering::Relaxed)
    }

    /// Waits for the hold of a 429 and for this call's slot of the pace.
    async fn wait_turn(&self) {
        loop {
            let hold = *self.hold_until.lock().unwrap_or_else(|e| e.into_inner());
            match hold {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t.into()).await,
                _ => break,
            }
        }
        if let Some(gap) = self.pace {
            let at = {
                let mut next = self.next_slot.lock().await;
                let now = Instant::now();
                let at = (*next).max(now);
                *next = at + gap;
                at
            };
            tokio::time::sleep_until(at.into()).await;
        }
        let hold = *self.hold_until.lock().unwrap_or_else(|e| e.into_inner());
        if hold.is_some_and(|t| t > Instant::now()) {
            self.early.fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn exchange(
        &self,
        method: &Method,
        path: &str,
        token: Option<&SecretString>,
        body: Option<&Value>,
    ) -> Result<Reply, ConnectorError> {
        self.wait_turn().await;
        let url = format!("{}{path}", self.base);
        let mut rb = self
            .http
            .request(method.clone(), &url)
            .header("accept", "application/json");
        if let Some(t) = token {
            rb = rb.header("X-Vault-Token", t.expose_secret());
        }
        if let Some(ns) = &self.namespace {
            rb = rb.header("X-Vault-Namespace", ns);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        let resp = rb
            .send()
            .await
            .map_err(|e| revoke_http::transport(method, path, &e.without_url()))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .text()
            .await
            .map_err(|e| revoke_http::transport(method, path, &e.without_url()))?;
        let r = Reply {
            status,
            headers,
            body,
        };
        if r.status == 429 {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
            let wait = r
                .retry_after()
                .unwrap_or(Duration::from_secs(1))
                .max(Duration::from_secs(1));
            let until = Instant::now() + wait;
            let mut hold = self.hold_until.lock().unwrap_or_else(|e| e.into_inner());
            if hold.is_none_or(|h| h < until) {
                *hold = Some(until);
            }
            info!(connector = %self.instance, wait_ms = wait.as_millis() as u64, "vault rate-limit quota reached, holding this instance's calls");
        }
        debug!(connector = %self.instance, %method, path, status, "vault call");
        Ok(r)
    }

    /// The token to send: the configured one, or the AppRole's (logging in when none is valid).
    async fn token(&self) -> Result<SecretString, ConnectorError> {
        match &self.credential {
            Credential::Token(t) => Ok(t.clone()),
            Credential::AppRole {
                role_id,
                secret_id,
                mount,
                cached,
            } => {
                let mut c = cached.lock().await;
                if let Some((t, until)) = c.as_ref() {
                    if *until > Instant::now() {
                        return Ok(t.clone());
                    }
                }
                let path = format!(
                    "/v1/auth/{}/login",
                    mount.split('/').map(encode).collect::<Vec<_>>().join("/")
                );
                let body = json!({"role_id": role_id, "secret_id": secret_id.expose_secret()});
                self.logins.fetch_add(1, Ordering::Relaxed);
                let r = self
                    .exchange(&Method::POST, &path, None, Some(&body))
                    .await?;
                if !r.is_success() {
                    return Err(classify::status(&Method::POST, &path, &r));
                }
                let v = r.json().unwrap_or(Value::Null);
                let token = v["auth"]["client_token"].as_str().ok_or_else(|| {
                    revoke_http::bad_response(&Method::POST, &path, "expected auth.client_token")
                })?;
                let lease = v["auth"]["lease_duration"].as_u64().unwrap_or(0);
                // Replaced when a tenth of the lease is left, so no call leaves with a token
                // about to expire; a lease of 0 (no expiry) is kept for an hour.
                let keep = if lease == 0 {
                    Duration::from_secs(3600)
                } else {
                    Duration::from_secs(lease - lease / 10)
                };
                let t = SecretString::from(token.to_string());
                *c = Some((t.clone(), Instant::now() + keep));
                Ok(t)
            }
        }
    }

    /// Sends one API call (`path` from `/v1/`); any status comes back.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, ConnectorError> {
        let token = self.token().await?;
        self.exchange(&method, path, Some(&token), body).await
    }

    /// A read: the body on 200, `None` on 404 (and on 204, Vault's "nothing found" of a lookup).
    pub async fn read(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, ConnectorError> {
        let r = self.send(method.clone(), path, body).await?;
        match r.status {
            200 => r
                .json()
                .map(Some)
                .ok_or_else(|| revoke_http::bad_response(&method, path, "expected a JSON body")),
            204 | 404 => Ok(None),
            _ => Err(classify::status(&method, path, &r)),
        }
    }

    /// A GET of `path`'s `data`, `None` on 404.
    pub async fn get_data(&self, path: &str) -> Result<Option<Value>, ConnectorError> {
        Ok(self
            .read(Method::GET, path, None)
            .await?
            .map(|v| v.get("data").cloned().unwrap_or(Value::Null)))
    }

    /// A write that must succeed (2xx).
    pub async fn write(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, ConnectorError> {
        let r = self.send(method.clone(), path, body).await?;
        if r.is_success() {
            Ok(r)
        } else {
            Err(classify::status(&method, path, &r))
        }
    }
}
