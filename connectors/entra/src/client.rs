//! The HTTP client of one Entra tenant: the app's token, the write and read budgets and the
//! throttling hold, shared by every job and task of the instance.
//!
//! - reqwest on an explicit rustls config (revoke-http): no redirects, no retries.
//! - The token: client credentials (`grant_type=client_credentials`, the client secret or a
//!   client assertion signed with the certificate's key (RS256, `x5t`, `aud` the token URL,
//!   `iss` = `sub` the client id, five minutes), scope `https://graph.microsoft.com/.default`)
//!   posted to the token URL, written by hand: the
//!   `oauth2` crate, even with its default features off, brings rand 0.8 and a second
//!   thiserror into the tree, and its request goes through its own HTTP hook; this call is
//!   paced with the reads, classified, and never retried. It is kept until a minute before it
//!   expires. A Graph 401 (`InvalidAuthenticationToken`: the token expired or was revoked
//!   under way) drops it and sends the call once more with a new one; the first request was
//!   refused before Graph acted on it.
//! - The budgets: at most `writes_per_window` writes in any `window_secs`, and
//!   `reads_per_window` reads (each part of a `$batch` counts) in any `read_window_secs`. A
//!   slot is taken as a call leaves and freed one window after its answer came back, so the
//!   calls that reach Graph in any window never outnumber the budget, whatever the network
//!   delays. A call that would wait longer than the request timeout fails at once as
//!   `rate_limited` with the wait, so the executor reschedules instead of a task sleeping.
//! - A 429 (or a 503/504 with `Retry-After`) holds every call of the instance until its
//!   `Retry-After` is over; the 429 itself is returned as `rate_limited`, never resent here.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;
use revoke_core::ConnectorError;
pub use revoke_http::encode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, info};

use crate::classify::{self, Reply};
use crate::config::EntraConfig;

/// The scope of an app-only Graph token.
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

/// A token is renewed this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// Most pages followed for one list.
const MAX_PAGES: usize = 200;

/// Which budget a call spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spend {
    Read,
    Write,
}

/// At most `limit` calls in any `window`: a slot is taken as a call leaves and kept one window
/// past its answer.
#[derive(Debug)]
struct Pace {
    limit: usize,
    window: Duration,
    state: Mutex<PaceState>,
    freed: Notify,
}

#[derive(Debug, Default)]
struct PaceState {
    in_flight: usize,
    /// When the answers of the calls of the last window came back, oldest first.
    done: VecDeque<Instant>,
}

impl Pace {
    fn new(limit: u64, window: Duration) -> Self {
        Self {
            limit: limit.max(1) as usize,
            window,
            state: Mutex::new(PaceState::default()),
            freed: Notify::new(),
        }
    }

    /// Takes `n` slots at once (a batch's parts), waiting up to `max_hold`.
    async fn take(
        &self,
        n: usize,
        max_hold: Duration,
        method: &Method,
        path: &str,
    ) -> Result<(), ConnectorError> {
        let n = n.min(self.limit);
        let give_up = Instant::now() + max_hold;
        loop {
            let wake = {
                let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                while s.done.front().is_some_and(|t| *t + self.window <= now) {
                    s.done.pop_front();
                }
                if s.in_flight + s.done.len() + n <= self.limit {
                    s.in_flight += n;
                    return Ok(());
                }
                // The slot that frees first: the oldest answer's, or (all in flight) one
                // window from now at the latest.
                let need = s.in_flight + s.done.len() + n - self.limit;
                s.done
                    .get(need - 1)
                    .map(|t| *t + self.window)
                    .unwrap_or(now + self.window)
            };
            let now = Instant::now();
            if wake > give_up {
                return Err(classify::rate_limited(
                    method,
                    path,
                    wake.saturating_duration_since(now),
                    "the instance's graph budget is spent",
                ));
            }
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = self.freed.notified() => {}
            }
        }
    }

    /// `n` calls got their answers.
    fn give(&self, n: usize) {
        let n = n.min(self.limit);
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.in_flight = s.in_flight.saturating_sub(n);
        let now = Instant::now();
        for _ in 0..n {
            s.done.push_back(now);
        }
        drop(s);
        self.freed.notify_waiters();
    }
}

/// How the app proves who it is at the token endpoint.
enum Credential {
    Secret(SecretString),
    /// A client assertion signed with the certificate's key (`x5t` in its header).
    Certificate(Box<revoke_http::jwt::Rs256>),
}

/// Lifetime of a client assertion: used once, at once, so five minutes is plenty.
const ASSERTION_SECS: u64 = 300;

impl Credential {
    fn from_config(cfg: &EntraConfig) -> Result<Self, String> {
        if let Some(s) = &cfg.client_secret {
            return Ok(Credential::Secret(s.clone()));
        }
        let Some(key) = &cfg.private_key else {
            return Err("expected client_secret or private_key".into());
        };
        let signer = revoke_http::jwt::Rs256::from_pkcs8_pem(key.expose_secret())
            .map_err(|e| format!("private_key: {e}"))?;
        let x5t = match (&cfg.certificate, &cfg.certificate_thumbprint) {
            (Some(pem), _) => {
                revoke_http::jwt::x5t_of_cert_pem(pem).map_err(|e| format!("certificate: {e}"))?
            }
            (None, Some(t)) => {
                use base64::Engine;
                let bytes = crate::config::thumbprint_bytes(t)
                    .ok_or("certificate_thumbprint: expected 40 hex digits")?;
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
            }
            (None, None) => return Err("expected certificate or certificate_thumbprint".into()),
        };
        Ok(Credential::Certificate(Box::new(signer.with_x5t(x5t))))
    }

    /// The form fields after `client_id`.
    fn form(&self, client_id: &str, token_url: &str) -> Result<String, ConnectorError> {
        match self {
            Credential::Secret(s) => Ok(format!("client_secret={}", encode(s.expose_secret()))),
            Credential::Certificate(signer) => {
                let now = revoke_http::jwt::now();
                let claims = json!({
                    "aud": token_url,
                    "iss": client_id,
                    "sub": client_id,
                    "jti": revoke_http::jwt::jti(),
                    "nbf": now,
                    "iat": now,
                    "exp": now + ASSERTION_SECS,
                });
                let jwt = signer.sign(&claims).map_err(|e| {
                    ConnectorError::permanent(
                        "bad_credentials",
                        format!("signing the client assertion: {e}"),
                    )
                })?;
                Ok(format!(
                    "client_assertion_type={}&client_assertion={jwt}",
                    encode("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                ))
            }
        }
    }
}

/// A token and when it stops being used.
struct Token {
    value: SecretString,
    renew_at: Instant,
    generation: u64,
}

/// The connection state of one instance.
pub struct Client {
    instance: String,
    http: reqwest::Client,
    graph: String,
    token_url: String,
    client_id: String,
    credential: Credential,
    token: tokio::sync::Mutex<Option<Token>>,
    generation: AtomicU64,
    writes: Pace,
    reads: Pace,
    hold_until: Mutex<Option<Instant>>,
    max_hold: Duration,
    calls: AtomicU64,
    batches: AtomicU64,
    parts: AtomicU64,
    throttled: AtomicU64,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("instance", &self.instance)
            .field("graph", &self.graph)
            .field("token_url", &self.token_url)
            .finish_non_exhaustive()
    }
}

/// Counts of what a client sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// HTTP round trips, the token's included.
    pub round_trips: u64,
    /// Graph calls: a `$batch` counts each part, not itself.
    pub calls: u64,
    /// 429 answers received (a batch's parts included).
    pub throttled: u64,
}

impl Client {
    /// Builds the HTTP client; makes no network call.
    pub fn new(instance: &str, cfg: &EntraConfig) -> Result<Self, String> {
        let http = revoke_http::client(cfg.timeout())?;
        Ok(Self {
            instance: instance.to_string(),
            http,
            graph: cfg.graph_base(),
            token_url: cfg.token_endpoint(),
            client_id: cfg.client_id.clone(),
            credential: Credential::from_config(cfg)?,
            token: tokio::sync::Mutex::new(None),
            generation: AtomicU64::new(0),
            writes: Pace::new(cfg.writes_per_window, cfg.write_window()),
            reads: Pace::new(cfg.reads_per_window, cfg.read_window()),
            hold_until: Mutex::new(None),
            max_hold: cfg.timeout(),
            calls: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            parts: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
        })
    }

    pub fn counts(&self) -> Counts {
        let round_trips = self.calls.load(Ordering::Relaxed);
        let batches = self.batches.load(Ordering::Relaxed);
        let parts = self.parts.load(Ordering::Relaxed);
        Counts {
            round_trips,
            calls: round_trips - batches.min(round_trips) + parts,
            throttled: self.throttled.load(Ordering::Relaxed),
        }
    }

    fn pace(&self, spend: Spend) -> &Pace {
        match spend {
            Spend::Read => &self.reads,
            Spend::Write => &self.writes,
        }
    }

    /// Waits out a throttling hold, up to `max_hold`.
    async fn wait_hold(&self, method: &Method, path: &str) -> Result<(), ConnectorError> {
        let until = *self.hold_until.lock().unwrap_or_else(|e| e.into_inner());
        let Some(until) = until else {
            return Ok(());
        };
        let wait = until.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            return Ok(());
        }
        if wait > self.max_hold {
            return Err(classify::rate_limited(
                method,
                path,
                wait,
                "graph throttled this instance",
            ));
        }
        info!(connector = %self.instance, wait_ms = wait.as_millis() as u64, "graph throttled this instance, holding calls until its retry-after");
        tokio::time::sleep_until(until).await;
        Ok(())
    }

    /// Holds every later call for the wait a throttled answer asked for.
    fn observe(&self, r: &Reply) {
        if classify::is_throttled(r) {
            self.throttled.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(wait) = classify::hold_for(r) {
            let until = Instant::now() + wait;
            let mut h = self.hold_until.lock().unwrap_or_else(|e| e.into_inner());
            if h.is_none_or(|at| at < until) {
                *h = Some(until);
            }
        }
    }

    /// Waits for the hold and a slot of the budget.
    async fn admit(
        &self,
        spend: Spend,
        n: usize,
        method: &Method,
        path: &str,
    ) -> Result<(), ConnectorError> {
        self.wait_hold(method, path).await?;
        self.pace(spend)
            .take(n, self.max_hold, method, path)
            .await?;
        // A 429 may have come back while this call waited for its slot.
        if let Err(e) = self.wait_hold(method, path).await {
            self.pace(spend).give(n);
            return Err(e);
        }
        Ok(())
    }

    /// A valid token, fetched when there is none or it is about to expire.
    async fn token(&self) -> Result<(SecretString, u64), ConnectorError> {
        let mut slot = self.token.lock().await;
        if let Some(t) = slot.as_ref() {
            if t.renew_at > Instant::now() {
                return Ok((t.value.clone(), t.generation));
            }
        }
        let (value, expires_in) = self.fetch_token().await?;
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let lifetime = Duration::from_secs(expires_in).saturating_sub(TOKEN_MARGIN);
        *slot = Some(Token {
            value: value.clone(),
            renew_at: Instant::now() + lifetime,
            generation,
        });
        Ok((value, generation))
    }

    /// Drops the token of `generation` (a 401 said it is no good).
    async fn invalidate(&self, generation: u64) {
        let mut slot = self.token.lock().await;
        if slot.as_ref().is_some_and(|t| t.generation == generation) {
            *slot = None;
        }
    }

    /// The client-credentials call: paced with the reads, classified, never retried.
    async fn fetch_token(&self) -> Result<(SecretString, u64), ConnectorError> {
        let method = Method::POST;
        let what = "the token endpoint";
        self.admit(Spend::Read, 1, &method, what).await?;
        let form = format!(
            "grant_type=client_credentials&client_id={}&{}&scope={}",
            encode(&self.client_id),
            self.credential.form(&self.client_id, &self.token_url)?,
            encode(GRAPH_SCOPE),
        );
        self.calls.fetch_add(1, Ordering::Relaxed);
        let result = self
            .http
            .post(&self.token_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(form)
            .send()
            .await;
        let r = match result {
            Ok(resp) => read(resp, &method, what).await,
            Err(e) => Err(classify::transport(&method, what, &e.without_url())),
        };
        self.reads.give(1);
        let r = r?;
        self.observe(&r);
        if !r.is_success() {
            return Err(classify::status(&method, what, &r));
        }
        let v = r.json().unwrap_or(Value::Null);
        let token = v.get("access_token").and_then(Value::as_str);
        let kind_ok = v
            .get("token_type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("bearer"));
        let expires_in = v
            .get("expires_in")
            .and_then(|e| e.as_u64().or_else(|| e.as_str()?.parse().ok()))
            .unwrap_or(3_599);
        match token {
            Some(t) if kind_ok && !t.is_empty() => {
                debug!(connector = %self.instance, expires_in, "entra token fetched");
                Ok((SecretString::from(t.to_string()), expires_in))
            }
            _ => Err(classify::bad_response(
                &method,
                what,
                "expected {\"token_type\": \"Bearer\", \"access_token\": ...}",
            )),
        }
    }

    /// The absolute URL of a path, or of a `@odata.nextLink` on Graph itself; a link elsewhere
    /// is refused, so the token never leaves for another host.
    fn url(&self, path: &str) -> Result<String, ConnectorError> {
        if path.starts_with('/') {
            Ok(format!("{}{path}", self.graph))
        } else if path.starts_with(&format!("{}/", self.graph)) {
            Ok(path.to_string())
        } else {
            Err(classify::bad_response(
                &Method::GET,
                path,
                "expected a link on the configured graph_url",
            ))
        }
    }

    /// The path of a Graph URL relative to the version root (for `$batch`).
    pub fn relative<'a>(&self, url: &'a str) -> Option<&'a str> {
        if url.starts_with('/') {
            Some(url)
        } else {
            url.strip_prefix(self.graph.as_str())
                .filter(|p| p.starts_with('/'))
        }
    }

    /// Sends one Graph call within its budget. Any status comes back but a 429, which is
    /// `rate_limited`; a 401 gets a new token and the call once more.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        extra: &[(&'static str, &'static str)],
    ) -> Result<Reply, ConnectorError> {
        let spend = if method == Method::GET {
            Spend::Read
        } else {
            Spend::Write
        };
        let url = self.url(path)?;
        let shown = self.relative(path).unwrap_or(path).to_string();
        let mut refreshed = false;
        loop {
            let (token, generation) = self.token().await?;
            self.admit(spend, 1, &method, &shown).await?;
            let mut rb = self
                .http
                .request(method.clone(), &url)
                .header("accept", "application/json")
                .header("authorization", format!("Bearer {}", token.expose_secret()));
            for (k, v) in extra {
                rb = rb.header(*k, *v);
            }
            if let Some(b) = body {
                rb = rb.json(b);
            }
            self.calls.fetch_add(1, Ordering::Relaxed);
            let r = match rb.send().await {
                Ok(resp) => read(resp, &method, &shown).await,
                Err(e) => Err(classify::transport(&method, &shown, &e.without_url())),
            };
            self.pace(spend).give(1);
            let r = r?;
            self.observe(&r);
            if r.status == 401 && !refreshed {
                debug!(connector = %self.instance, "graph answered 401, fetching a new token");
                self.invalidate(generation).await;
                refreshed = true;
                continue;
            }
            if classify::is_throttled(&r) {
                return Err(classify::status(&method, &shown, &r));
            }
            return Ok(r);
        }
    }

    /// Sends up to 20 GETs (paths relative to the version root, with the headers each needs)
    /// in one `POST /$batch`. Each part spends a read and is classified on its own: a 429 part
    /// holds the instance and is that read's `rate_limited` error; any other status comes back
    /// as a reply. A refusal of the batch itself is the error of every read.
    pub async fn batch_get(
        &self,
        reqs: &[(String, bool)],
    ) -> Result<Vec<Result<Reply, ConnectorError>>, ConnectorError> {
        let method = Method::POST;
        let what = "/$batch";
        let requests: Vec<Value> = reqs
            .iter()
            .enumerate()
            .map(|(i, (path, advanced))| {
                let mut part = json!({"id": (i + 1).to_string(), "method": "GET", "url": path});
                if *advanced {
                    part["headers"] = json!({"ConsistencyLevel": "eventual"});
                }
                part
            })
            .collect();
        let body = json!({ "requests": requests });
        let url = format!("{}/$batch", self.graph);
        let mut refreshed = false;
        loop {
            let (token, generation) = self.token().await?;
            self.admit(Spend::Read, reqs.len(), &method, what).await?;
            self.calls.fetch_add(1, Ordering::Relaxed);
            self.batches.fetch_add(1, Ordering::Relaxed);
            let sent = self
                .http
                .post(&url)
                .header("accept", "application/json")
                .header("authorization", format!("Bearer {}", token.expose_secret()))
                .json(&body)
                .send()
                .await;
            let r = match sent {
                Ok(resp) => read(resp, &method, what).await,
                Err(e) => Err(classify::transport(&method, what, &e.without_url())),
            };
            self.reads.give(reqs.len());
            let r = r?;
            self.observe(&r);
            if r.status == 401 && !refreshed {
                self.invalidate(generation).await;
                refreshed = true;
                continue;
            }
            if !r.is_success() {
                return Err(classify::status(&method, what, &r));
            }
            self.parts.fetch_add(reqs.len() as u64, Ordering::Relaxed);
            let answers = r
                .json()
                .and_then(|v| v.get("responses").and_then(Value::as_array).cloned())
                .ok_or_else(|| {
                    classify::bad_response(&method, what, "expected {\"responses\": [...]}")
                })?;
            let mut out: Vec<Option<Reply>> = vec![None; reqs.len()];
            for a in &answers {
                let slot = a
                    .get("id")
                    .and_then(Value::as_str)
                    .and_then(|id| id.parse::<usize>().ok())
                    .filter(|n| (1..=reqs.len()).contains(n));
                let (Some(n), Some(status)) = (slot, a.get("status").and_then(Value::as_u64))
                else {
                    continue;
                };
                let mut headers = HeaderMap::new();
                if let Some(h) = a.get("headers").and_then(Value::as_object) {
                    for (k, v) in h {
                        let (Ok(name), Some(Ok(value))) = (
                            HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()),
                            v.as_str().map(HeaderValue::from_str),
                        ) else {
                            continue;
                        };
                        headers.insert(name, value);
                    }
                }
                let body = match a.get("body") {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                };
                out[n - 1] = Some(Reply {
                    status: status as u16,
                    headers,
                    body,
                });
            }
            // A token that expired under way: a new one, and the batch once more.
            if !refreshed && out.iter().flatten().any(|r| r.status == 401) {
                self.invalidate(generation).await;
                refreshed = true;
                continue;
            }
            return Ok(reqs
                .iter()
                .zip(out)
                .map(|((p, _), reply)| {
                    let Some(reply) = reply else {
                        return Err(classify::bad_response(
                            &Method::GET,
                            p,
                            "the batch answer has no part for this request",
                        ));
                    };
                    self.observe(&reply);
                    if classify::is_throttled(&reply) {
                        Err(classify::status(&Method::GET, p, &reply))
                    } else {
                        Ok(reply)
                    }
                })
                .collect());
        }
    }

    /// Every item of a paged Graph list (`value`, `@odata.nextLink`), one call per page; `None`
    /// when the first page is a 404.
    pub async fn list(
        &self,
        path: &str,
        advanced: bool,
    ) -> Result<Option<Vec<Value>>, ConnectorError> {
        let extra: &[(&str, &str)] = if advanced {
            &[("consistencylevel", "eventual")]
        } else {
            &[]
        };
        let mut out = Vec::new();
        let mut next = Some(path.to_string());
        let mut pages = 0;
        while let Some(p) = next.take() {
            pages += 1;
            let r = self.send(Method::GET, &p, None, extra).await?;
            if r.status == 404 && pages == 1 {
                return Ok(None);
            }
            let (items, link) = page(&Method::GET, &p, &r)?;
            out.extend(items);
            next = link;
            if pages >= MAX_PAGES && next.is_some() {
                return Err(classify::bad_response(
                    &Method::GET,
                    path,
                    "more than 200 pages; stopped",
                ));
            }
        }
        Ok(Some(out))
    }

    /// One object; `None` on a 404.
    pub async fn get(&self, path: &str) -> Result<Option<Value>, ConnectorError> {
        let r = self.send(Method::GET, path, None, &[]).await?;
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
}

/// The items of one page and the link to the next.
pub fn page(
    method: &Method,
    path: &str,
    r: &Reply,
) -> Result<(Vec<Value>, Option<String>), ConnectorError> {
    if !r.is_success() {
        return Err(classify::status(method, path, r));
    }
    let v = r.json().unwrap_or(Value::Null);
    let items = v
        .get("value")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| classify::bad_response(method, path, "expected {\"value\": [...]}"))?;
    let next = v
        .get("@odata.nextLink")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok((items, next))
}

/// Reads an answer in full.
async fn read(
    resp: reqwest::Response,
    method: &Method,
    path: &str,
) -> Result<Reply, ConnectorError> {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .text()
        .await
        .map_err(|e| classify::transport(method, path, &e.without_url()))?;
    Ok(Reply {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_pace_never_lets_more_than_the_limit_into_one_window() {
        let pace = Pace::new(3, Duration::from_secs(10));
        let m = Method::PATCH;
        let start = Instant::now();
        for _ in 0..3 {
            pace.take(1, Duration::from_secs(60), &m, "/x")
                .await
                .expect("slot");
            pace.give(1);
        }
        assert_eq!(Instant::now(), start, "the first three go at once");
        pace.take(1, Duration::from_secs(60), &m, "/x")
            .await
            .expect("slot");
        assert!(Instant::now() >= start + Duration::from_secs(10));
        pace.give(1);
        // A wait longer than the hold is refused at once, as rate_limited.
        pace.take(2, Duration::from_secs(60), &m, "/x")
            .await
            .expect("slot");
        let e = pace
            .take(1, Duration::from_secs(1), &m, "/x")
            .await
            .expect_err("refused");
        assert_eq!(e.class.name(), "rate_limited");
        assert!(e.retry_after().is_some_and(|w| w > Duration::from_secs(1)));
    }
}
