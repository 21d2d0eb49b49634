//! The HTTP client of one Okta org: the API token and the rate budget, shared by every job and
//! task of the instance.
//!
//! - reqwest on an explicit rustls config (ring, the system's roots), no redirects, no retries.
//! - `Authorization: SSWS <token>` on every call.
//! - The budget: Okta answers every call with `X-Rate-Limit-Limit`, `-Remaining` and `-Reset`
//!   (epoch seconds). The client keeps the latest remaining count of the current window and
//!   spends one from it as each call leaves, so calls in flight are counted too; at 0, or on a 429
//!   (`E0000047`), every later call of the instance is held until the reset when it is within the
//!   request timeout; a longer hold fails at once as `rate_limited` with the wait, so the executor
//!   reschedules. A 429 itself is returned as `rate_limited`, never resent here. Okta keeps a
//!   budget per endpoint bucket; one budget per instance is stricter (it holds the users calls
//!   when the groups bucket is spent too), and never early.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use reqwest::Method;
use revoke_core::ConnectorError;
pub use revoke_http::encode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::time::Instant;
use tracing::info;

use crate::classify::{self, Reply};
use crate::config::OktaConfig;

/// The connection state of one instance.
pub struct Client {
    instance: String,
    http: reqwest::Client,
    base: String,
    token: SecretString,
    max_hold: Duration,
    budget: Mutex<Budget>,
    calls: AtomicU64,
}

/// What the client knows of the org's rate budget.
#[derive(Debug, Default)]
struct Budget {
    /// Calls left in the window ending at `reset_epoch`, less the calls sent since; `None`:
    /// not known (no answer yet in this window).
    remaining: Option<u64>,
    /// The window's reset, epoch seconds, as Okta last said.
    reset_epoch: u64,
    /// No call leaves before this.
    hold_until: Option<Instant>,
    /// When `reset_epoch` comes, on this process's clock (at least a second after the answer
    /// that told it).
    reset_at: Option<Instant>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("instance", &self.instance)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds the HTTP client; makes no network call.
    pub fn new(instance: &str, cfg: &OktaConfig) -> Result<Self, String> {
        let http = revoke_http::client(cfg.timeout())?;
        Ok(Self {
            instance: instance.to_string(),
            http,
            base: cfg.base_url(),
            token: cfg.token.clone(),
            max_hold: cfg.timeout(),
            budget: Mutex::new(Budget::default()),
            calls: AtomicU64::new(0),
        })
    }

    /// HTTP calls sent so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Holds the call while the budget is spent, up to `max_hold`; spends one call of it.
    async fn wait_budget(&self, method: &Method, path: &str) -> Result<(), ConnectorError> {
        loop {
            let until = {
                let mut b = self.budget.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                if b.hold_until.is_some_and(|h| h <= now) {
                    b.hold_until = None;
                    b.remaining = None;
                }
                match (b.hold_until, b.remaining) {
                    (Some(h), _) => h,
                    (None, Some(0)) => match b.reset_at {
                        Some(at) if at <= now => {
                            // The window it counted is over.
                            b.remaining = None;
                            return Ok(());
                        }
                        at => {
                            let h = at.unwrap_or(now + Duration::from_secs(1));
                            b.hold_until = Some(h);
                            h
                        }
                    },
                    (None, Some(n)) => {
                        b.remaining = Some(n - 1);
                        return Ok(());
                    }
                    (None, None) => return Ok(()),
                }
            };
            let wait = until.saturating_duration_since(Instant::now());
            if wait > self.max_hold {
                return Err(classify::rate_limited(
                    method,
                    path,
                    wait,
                    "the Okta rate budget is spent",
                ));
            }
            info!(connector = %self.instance, wait_ms = wait.as_millis() as u64, "okta rate budget spent, holding calls until it resets");
            tokio::time::sleep_until(until).await;
        }
    }

    /// Reads the budget headers off an answer.
    fn observe(&self, r: &Reply) {
        let reset_epoch = r
            .headers
            .get("x-rate-limit-reset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let reset_wait = classify::reset_after(&r.headers);
        let mut b = self.budget.lock().unwrap_or_else(|e| e.into_inner());
        if classify::is_rate_limited(r) {
            let until = Instant::now() + reset_wait.unwrap_or(Duration::from_secs(60));
            if b.hold_until.is_none_or(|at| at < until) {
                b.hold_until = Some(until);
            }
            b.remaining = Some(0);
            return;
        }
        let (Some(remaining), Some(reset)) = (classify::remaining(&r.headers), reset_epoch) else {
            return;
        };
        if reset == b.reset_epoch {
            // The same window: the lower count wins (answers come back in any order).
            b.remaining = Some(b.remaining.map_or(remaining, |x| x.min(remaining)));
        } else {
            // Another window (a new one, or another bucket's, or a limit Okta changed): the
            // latest answer wins. A late answer of an older window can make the client hold a
            // second longer than needed, or (at a window's edge, with calls in flight) send one
            // that is refused with a 429, never one before a reset it knew of.
            b.reset_epoch = reset;
            b.remaining = Some(remaining);
        }
        b.reset_at = reset_wait.map(|w| Instant::now() + w);
    }

    /// Sends one API call within the budget. Any status comes back but a rate-limit refusal,
    /// which is `rate_limited`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, ConnectorError> {
        self.wait_budget(&method, path).await?;
        let url = format!("{}{path}", self.base);
        let mut rb = self
            .http
            .request(method.clone(), &url)
            .header("accept", "application/json")
            .header(
                "authorization",
                format!("SSWS {}", self.token.expose_secret()),
            );
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
        if classify::is_rate_limited(&r) {
            return Err(classify::status(&method, path, &r));
        }
        Ok(r)
    }

    /// A GET whose answer must be a success with a JSON body.
    pub async fn get_json(&self, path: &str) -> Result<Option<Value>, ConnectorError> {
        let r = self.send(Method::GET, path, None).await?;
        if r.status == 404 {
            return Ok(None);
        }
        if !r.is_success() {
            return Err(classify::status(&Method::GET, path, &r));
        }
        r.json()
            .map(Some)
            .ok_or_else(|| classify::bad_response(&Method::GET, path, "expected a json body"))
    }

    /// Every item of a paged list (`Link: <...>; rel="next"`), following at most 100 pages.
    pub async fn list(&self, path: &str) -> Result<Option<Vec<Value>>, ConnectorError> {
        let mut out = Vec::new();
        let mut next = Some(path.to_string());
        let mut pages = 0;
        while let Some(p) = next.take() {
            pages += 1;
            let r = self.send(Method::GET, &p, None).await?;
            if r.status == 404 && pages == 1 {
                return Ok(None);
            }
            if !r.is_success() {
                return Err(classify::status(&Method::GET, &p, &r));
            }
            let items = r
                .json()
                .and_then(|v| v.as_array().cloned())
                .ok_or_else(|| classify::bad_response(&Method::GET, &p, "expected a json list"))?;
            out.extend(items);
            next = next_link(&r, &self.base);
            if pages >= 100 && next.is_some() {
                return Err(classify::bad_response(
                    &Method::GET,
                    path,
                    "more than 100 pages; stopped",
                ));
            }
        }
        Ok(Some(out))
    }
}

/// The path and query of the `rel="next"` link, when it points at the same org.
fn next_link(r: &Reply, base: &str) -> Option<String> {
    for v in r.headers.get_all("link") {
        let v = v.to_str().ok()?;
        for part in v.split(',') {
            let (url, rel) = part.split_once(';')?;
            if rel.replace(' ', "") == "rel=\"next\"" {
                let url = url.trim().trim_start_matches('<').trim_end_matches('>');
                return url.strip_prefix(base).map(str::to_string);
            }
        }
    }
    None
}
