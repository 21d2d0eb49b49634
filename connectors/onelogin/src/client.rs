//! The HTTP client of one OneLogin instance: the access token and the rate budget, shared by every
//! job and task of the instance.
//!
//! - reqwest on an explicit rustls config (ring, the system's roots), no redirects, no retries.
//! - The token (client credentials, `POST /auth/oauth2/v2/token`) is cached until shortly
//!   before it expires; a 401 makes the client fetch a new one and send the call once more.
//! - The budget: OneLogin answers every call with `X-RateLimit-Remaining` and `X-RateLimit-Reset`
//!   (seconds). When remaining reaches 0 every call is held until the reset, when the reset is
//!   within the request timeout; a longer hold fails at once as `rate_limited` with the wait, so
//!   the executor reschedules instead of a task sleeping for an hour. A 429 is `rate_limited`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use reqwest::Method;
use revoke_core::ConnectorError;
pub use revoke_http::encode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use tokio::time::Instant;
use tracing::{debug, info};

use crate::classify::{self, Reply};
use crate::config::OneLoginConfig;

struct Token {
    value: SecretString,
    generation: u64,
    fresh_until: Instant,
}

/// The connection state of one instance.
pub struct Client {
    instance: String,
    http: reqwest::Client,
    base: String,
    client_id: String,
    client_secret: SecretString,
    max_hold: Duration,
    token: tokio::sync::Mutex<Option<Token>>,
    generation: AtomicU64,
    hold_until: Mutex<Option<Instant>>,
    calls: AtomicU64,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("instance", &self.instance)
            .field("base", &self.base)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds the HTTP client; makes no network call.
    pub fn new(instance: &str, cfg: &OneLoginConfig) -> Result<Self, String> {
        let http = revoke_http::client(cfg.timeout())?;
        Ok(Self {
            instance: instance.to_string(),
            http,
            base: cfg.base_url(),
            client_id: cfg.client_id.clone(),
            client_secret: cfg.client_secret.clone(),
            max_hold: cfg.timeout(),
            token: tokio::sync::Mutex::new(None),
            generation: AtomicU64::new(0),
            hold_until: Mutex::new(None),
            calls: AtomicU64::new(0),
        })
    }

    /// Access tokens fetched so far.
    pub fn tokens_fetched(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// HTTP calls sent so far (token calls included).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// A valid token: the cached one, or a new one.
    async fn token(&self) -> Result<(SecretString, u64), ConnectorError> {
        let mut slot = self.token.lock().await;
        if let Some(t) = slot.as_ref() {
            if Instant::now() < t.fresh_until {
                return Ok((t.value.clone(), t.generation));
            }
        }
        *slot = None;
        let path = "/auth/oauth2/v2/token";
        let method = Method::POST;
        self.wait_budget(&method, path).await?;
        let r = self
            .raw(
                method.clone(),
                path,
                Some(&json!({"grant_type": "client_credentials"})),
                None,
            )
            .await?;
        if !r.is_success() {
            let mut e = classify::status(&method, path, &r);
            if matches!(r.status, 400 | 401 | 403) {
                e = ConnectorError::auth(
                    "bad_client_credentials",
                    format!(
                        "{method} {path}: {} {} (check client_id and client_secret)",
                        r.status,
                        classify::message(&r.body)
                    ),
                );
            }
            return Err(e);
        }
        let v = r.json().unwrap_or(Value::Null);
        let Some(value) = v.get("access_token").and_then(Value::as_str) else {
            return Err(classify::bad_response(
                &method,
                path,
                "no access_token in the answer",
            ));
        };
        let expires_in =
            Duration::from_secs(v.get("expires_in").and_then(Value::as_u64).unwrap_or(3_600));
        let margin = (expires_in / 10).min(Duration::from_secs(60));
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        debug!(connector = %self.instance, generation, expires_in_secs = expires_in.as_secs(), "onelogin access token fetched");
        let value = SecretString::from(value.to_string());
        *slot = Some(Token {
            value: value.clone(),
            generation,
            fresh_until: Instant::now() + expires_in - margin,
        });
        Ok((value, generation))
    }

    /// Forgets the token of `generation` (not a newer one another task fetched meanwhile).
    async fn invalidate(&self, generation: u64) {
        let mut slot = self.token.lock().await;
        if slot.as_ref().is_some_and(|t| t.generation == generation) {
            *slot = None;
        }
    }

    /// Holds the call while the budget is spent, up to `max_hold`.
    async fn wait_budget(&self, method: &Method, path: &str) -> Result<(), ConnectorError> {
        let until = *self.hold_until.lock().unwrap_or_else(|e| e.into_inner());
        let Some(until) = until else {
            return Ok(());
        };
        let now = Instant::now();
        if until <= now {
            return Ok(());
        }
        let wait = until - now;
        if wait > self.max_hold {
            return Err(classify::rate_limited(
                method,
                path,
                wait,
                "the OneLogin rate budget is spent",
            ));
        }
        info!(connector = %self.instance, wait_ms = wait.as_millis() as u64, "onelogin rate budget spent, holding calls until it resets");
        tokio::time::sleep_until(until).await;
        Ok(())
    }

    /// Reads the budget headers off an answer.
    fn observe(&self, r: &Reply) {
        let remaining = r
            .headers
            .get("x-ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if remaining == Some(0) || r.status == 429 {
            let reset = classify::reset_after(&r.headers).unwrap_or(Duration::from_secs(60));
            let until = Instant::now() + reset;
            let mut hold = self.hold_until.lock().unwrap_or_else(|e| e.into_inner());
            if hold.is_none_or(|at| at < until) {
                *hold = Some(until);
            }
        }
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&SecretString>,
    ) -> Result<Reply, ConnectorError> {
        let url = format!("{}{path}", self.base);
        let mut rb = self
            .http
            .request(method.clone(), &url)
            .header("accept", "application/json");
        rb = match token {
            Some(t) => rb.bearer_auth(t.expose_secret()),
            None => rb.basic_auth(&self.client_id, Some(self.client_secret.expose_secret())),
        };
        if let Some(b) = body {
            rb = rb.json(b);
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        let resp = rb
            .send()
            .await
            .map_err(|e| classify::transport(&method, path, &e.without_url()))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .text()
            .await
            .map_err(|e| classify::transport(&method, path, &e.without_url()))?;
        let r = Reply {
            status,
            headers,
            body,
        };
        self.observe(&r);
        Ok(r)
    }

    /// Sends one API call with the token (refreshed once on a 401) within the budget. Any
    /// status comes back but 429, which is `rate_limited`, and a second 401, which is `auth`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, ConnectorError> {
        let mut refreshed = false;
        loop {
            let (token, generation) = self.token().await?;
            self.wait_budget(&method, path).await?;
            let r = self.raw(method.clone(), path, body, Some(&token)).await?;
            match r.status {
                401 if !refreshed => {
                    debug!(connector = %self.instance, "onelogin answered 401, fetching a new token");
                    self.invalidate(generation).await;
                    refreshed = true;
                }
                401 | 429 => return Err(classify::status(&method, path, &r)),
                _ => return Ok(r),
            }
        }
    }
}
