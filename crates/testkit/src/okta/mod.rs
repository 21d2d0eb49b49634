//! A stateful Okta stand-in (management API v1: users, lifecycle, sessions, groups, apps, admin
//! roles, factors, grants) served in process
//!
//! [`OktaStandin`] answers the calls the Okta connector makes, from an in-memory [`World`] that
//! tests seed and inspect, in the shapes of Okta's current management API as the official Python
//! SDK (`okta` 3.4.6, strict pydantic models generated from the v5 spec) parses them:
//! `tests/python/okta_check.py` drives the stand-in through Prism with that SDK and parses every
//! answer with its models. [`OktaStandin::prism`] puts Prism (proxy, `--errors`) in front with
//! Okta's `@okta/openapi` 2.15.0 description trimmed to paths, methods and parameters
//! (`tests/okta/okta-v2.trimmed.json`, made by `tests/okta/trim_spec.py`): that description is
//! stale, so its body schemas are dropped and its one stale status code (DELETE user: 202 there,
//! 204 today) is a Prism warning the tests allow for that operation only.
//!
//! - `Authorization: SSWS <token>` ([`OktaStandin::token`]), or an access token of the OAuth 2.0
//!   service app ([`OktaStandin::service_app`]): `POST /oauth2/v1/token` (client credentials) checks
//!   the `private_key_jwt` assertion's RS256 signature with the app's public key, its `iss`,
//!   `sub`, `aud`, `exp`, `kid` and a `jti` never seen before, and the scopes; with DPoP required it
//!   first answers 400 `use_dpop_nonce` with a `DPoP-Nonce`, then checks the proof (signature by
//!   the `jwk` in its header, `htm`, `htu`, the nonce) and binds the token to that key. A DPoP token
//!   is accepted only as `Authorization: DPoP <token>` with a proof of that key for the call
//!   (`htm`, `htu`, `ath`, a fresh `jti`). Anything else is 401 `E0000011`.
//! - `GET /api/v1/users?search=profile.<attr> eq "<value>"` (case-insensitive, as Okta), `GET
//!   /api/v1/users/{id}` (by id, or by login as Okta also accepts), `DELETE /api/v1/users/{id}`
//!   (the two-step delete: a user not DEPROVISIONED is deactivated, 204; a DEPROVISIONED one is
//!   deleted, 204; then 404 `E0000007`).
//! - `POST .../lifecycle/suspend` (ACTIVE only, else 400 `E0000001`), `POST
//!   .../lifecycle/deactivate` (not when DEPROVISIONED: 400 `E0000001`; signs out and unassigns
//!   every app), both 200 `{}`.
//! - `DELETE .../sessions?oauthTokens=true` (204, idempotent; the tokens only with the flag).
//! - `GET .../groups`, `DELETE /api/v1/groups/{gid}/users/{uid}` (204; an APP_GROUP or BUILT_IN
//!   group is 400 `E0000001`, a guess: Okta's exact answer is not documented).
//! - `GET /api/v1/apps?filter=user.id eq "<uid>"`, `GET` and `DELETE
//!   /api/v1/apps/{aid}/users/{uid}` (204; a GROUP-scoped assignment is 400 `E0000001`, a guess).
//! - `GET .../roles`, `DELETE .../roles/{rid}` (204); `GET .../factors`, `POST
//!   .../lifecycle/reset_factors` (200 `{}`, also for a DEPROVISIONED user: Okta's rule there is
//!   not documented), `GET` and `DELETE .../grants` (204).
//!
//! Every answer carries its bucket's `X-Rate-Limit-Limit`, `-Remaining` and `-Reset` (epoch
//! seconds, rounded up). The buckets are Okta's ([`bucket`]: users list and search, a user read, a
//! user write, groups, a group, apps, an app, the token endpoint, the rest of `/api/v1`), each
//! with its own window (Okta's Workforce limits per minute unless [`OktaStandin::set_rate_limit`]
//! or [`OktaStandin::set_bucket_limit`]); a call over its bucket's budget is 429 `E0000047`. The
//! recorder counts the requests that arrive in a bucket before a reset it announced for that
//! bucket (with remaining 0 or a 429): [`OktaStandin::early_requests`].
//!
//! Simplifications, on purpose: no paging (every list fits one page), no custom profile schema,
//! deactivation keeps group memberships and admin roles.

mod api;
mod oauth;
mod world;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub use world::{App, Group, GroupType, RoleAssignment, User, World};

use crate::serve::ServerThread;
use crate::{Prism, TestkitError};

/// One request the stand-in received
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The HTTP method
    pub method: String,
    /// The path as received (still percent-encoded)
    pub path: String,
    /// The query string, if any
    pub query: Option<String>,
    /// The status answered (0: held back by [`OktaStandin::stall`]; recorded on arrival)
    pub status: u16,
    /// When it arrived
    pub at: Instant,
    /// Its rate-limit bucket ([`bucket`])
    pub bucket: &'static str,
}

impl RecordedRequest {
    /// Whether it changes something (every non-GET)
    pub fn is_mutation(&self) -> bool {
        self.method != "GET"
    }
}

/// The Okta stand-in: an axum server on a free 127.0.0.1 port, on its own thread
#[derive(Debug)]
pub struct OktaStandin {
    shared: Arc<Shared>,
    server: ServerThread,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) world: Mutex<World>,
    token: String,
    pace: Mutex<Pace>,
    pub(crate) app: Mutex<Option<ServiceApp>>,
    /// (method, path suffix) whose answers are held back after the change is made
    stall: Mutex<Option<(String, String)>>,
    released: AtomicBool,
}

#[derive(Debug)]
struct Pace {
    buckets: std::collections::HashMap<&'static str, Window>,
    early: u64,
    faults: Vec<(u32, u16)>,
    requests: Vec<RecordedRequest>,
}

/// One bucket's window
#[derive(Debug)]
struct Window {
    limit: u64,
    window: Duration,
    window_start: Instant,
    window_start_epoch: f64,
    used: u64,
    /// The reset (epoch seconds) announced with remaining 0 or a 429
    announced: Option<f64>,
}

/// Okta's buckets and their Workforce limits per minute (developer.okta.com/docs/reference/rl-global-mgmt)
pub const BUCKETS: &[(&str, u64)] = &[
    ("users", 600),
    ("users/{id} get", 2_000),
    ("users/{id}", 600),
    ("groups", 500),
    ("groups/{id}", 1_000),
    ("apps", 100),
    ("apps/{id}", 500),
    ("oauth2/token", 600),
    ("api/v1", 1_200),
];

/// The bucket of a call: `/api/v1/apps/{id}` alone and every other `/api/v1/apps*`,
/// `/api/v1/groups/{id}` alone and every other `/api/v1/groups*`, `/api/v1/users` (list, create),
/// GET `/api/v1/users/{idOrLogin}`, other methods on `/api/v1/users/{id}`, `/oauth2/v1/token`,
/// and the rest of `/api/v1`
pub fn bucket(method: &str, path: &str) -> &'static str {
    if path.starts_with("/oauth2/") {
        return "oauth2/token";
    }
    let Some(rest) = path.strip_prefix("/api/v1/") else {
        return "api/v1";
    };
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match (segs.as_slice(), method == "GET") {
        (["apps", _], _) => "apps/{id}",
        (["apps", ..], _) => "apps",
        (["groups", _], _) => "groups/{id}",
        (["groups", ..], _) => "groups",
        (["users"], _) => "users",
        (["users", _], true) => "users/{id} get",
        (["users", _], false) => "users/{id}",
        _ => "api/v1",
    }
}

/// The OAuth 2.0 service app the stand-in knows (one)
#[derive(Debug)]
pub(crate) struct ServiceApp {
    pub(crate) client_id: String,
    pub(crate) kid: Option<String>,
    /// DER `RSAPublicKey`
    pub(crate) public_key: Vec<u8>,
    pub(crate) granted: Vec<String>,
    pub(crate) require_dpop: bool,
    pub(crate) nonce: String,
    pub(crate) ttl: Duration,
    pub(crate) jtis: std::collections::HashSet<String>,
    /// access token -> (expiry, the DPoP key's JWK when bound)
    pub(crate) issued: std::collections::HashMap<String, (Instant, Option<serde_json::Value>)>,
    pub(crate) tokens_issued: u64,
    pub(crate) refusals: Vec<String>,
    /// The nonce API calls' DPoP proofs must carry, when set
    pub(crate) api_nonce: Option<String>,
}

fn epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Pace {
    fn new(limits: &[(&'static str, u64)], window: Duration) -> Self {
        Self {
            buckets: limits
                .iter()
                .map(|(b, l)| (*b, Window::new(*l, window)))
                .collect(),
            early: 0,
            faults: Vec::new(),
            requests: Vec::new(),
        }
    }

    fn window(&mut self, bucket: &'static str) -> &mut Window {
        self.buckets
            .entry(bucket)
            .or_insert_with(|| Window::new(600, Duration::from_secs(60)))
    }
}

impl Window {
    fn new(limit: u64, window: Duration) -> Self {
        Self {
            limit,
            window,
            window_start: Instant::now(),
            window_start_epoch: epoch(),
            used: 0,
            announced: None,
        }
    }

    fn roll(&mut self, now: Instant) {
        if now >= self.window_start + self.window {
            self.window_start = now;
            self.window_start_epoch = epoch();
            self.used = 0;
        }
    }

    /// The window's end in epoch seconds, rounded up (Okta's header is whole seconds)
    fn reset_epoch(&self) -> u64 {
        (self.window_start_epoch + self.window.as_secs_f64()).ceil() as u64
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        lock(&self.world)
    }
}

/// Okta's error body
pub(crate) fn okta_error(status: StatusCode, code: &str, summary: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "errorCode": code,
            "errorSummary": summary,
            "errorLink": code,
            "errorId": format!("oae{:020}", epoch() as u64),
            "errorCauses": [],
        })),
    )
        .into_response()
}

impl OktaStandin {
    /// Starts an empty org with a fresh API token
    pub fn start() -> Result<OktaStandin, TestkitError> {
        let shared = Arc::new(Shared {
            world: Mutex::new(World::default()),
            token: format!("00{}", random_alnum(40)),
            pace: Mutex::new(Pace::new(BUCKETS, Duration::from_secs(60))),
            app: Mutex::new(None),
            stall: Mutex::new(None),
            released: AtomicBool::new(false),
        });
        let app = api::routes()
            .fallback(api::no_route)
            .layer(axum::middleware::from_fn_with_state(shared.clone(), gate))
            .with_state(shared.clone());
        let server = ServerThread::start("okta stand-in", app)?;
        Ok(OktaStandin { shared, server })
    }

    /// The org URL (`http://127.0.0.1:PORT`), in place of `https://acme.okta.com`
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// Starts Prism in proxy mode with the trimmed `@okta/openapi` description in front of this
    /// stand-in (the connector's `org_url` is then [`Prism::rest_url`])
    pub fn prism(&self) -> Result<Prism, TestkitError> {
        Prism::start_with_spec(&okta_spec()?, &self.url())
    }

    /// The API token (`Authorization: SSWS <token>`)
    pub fn token(&self) -> String {
        self.shared.token.clone()
    }

    /// Every bucket's budget: `limit` calls per `window`, starting fresh windows now
    pub fn set_rate_limit(&self, limit: u64, window: Duration) {
        let limits: Vec<(&'static str, u64)> = BUCKETS.iter().map(|(b, _)| (*b, limit)).collect();
        self.set_limits(&limits, window);
    }

    /// Okta's Workforce limits ([`BUCKETS`]) per `window` (a minute on a real org; shorter
    /// here to run faster at the same proportions), starting fresh windows now
    pub fn set_documented_limits(&self, window: Duration) {
        self.set_limits(BUCKETS, window);
    }

    /// One bucket's budget: `limit` calls per `window`, starting a fresh window now
    pub fn set_bucket_limit(&self, bucket: &'static str, limit: u64, window: Duration) {
        *lock(&self.shared.pace).window(bucket) = Window::new(limit, window);
    }

    fn set_limits(&self, limits: &[(&'static str, u64)], window: Duration) {
        let mut p = lock(&self.shared.pace);
        p.buckets = Pace::new(limits, window).buckets;
        p.early = 0;
    }

    /// Spends the rest of every bucket's current window (the next call of each is a 429)
    pub fn exhaust_budget(&self) {
        for w in lock(&self.shared.pace).buckets.values_mut() {
            w.used = w.limit;
        }
    }

    /// Spends the rest of one bucket's current window
    pub fn exhaust_bucket(&self, bucket: &'static str) {
        let mut p = lock(&self.shared.pace);
        let w = p.window(bucket);
        w.used = w.limit;
    }

    /// Registers the OAuth 2.0 service app `client_id` with its public key (DER `RSAPublicKey`,
    /// as `ring`'s `KeyPair::public_key` gives it), its key id, the scopes granted to it, and
    /// whether it requires DPoP (Okta's default for new service apps); tokens live `ttl`
    pub fn service_app(
        &self,
        client_id: &str,
        kid: Option<&str>,
        public_key_der: &[u8],
        granted: &[&str],
        require_dpop: bool,
        ttl: Duration,
    ) {
        *lock(&self.shared.app) = Some(ServiceApp {
            client_id: client_id.to_string(),
            kid: kid.map(str::to_string),
            public_key: public_key_der.to_vec(),
            granted: granted.iter().map(|s| s.to_string()).collect(),
            require_dpop,
            nonce: random_alnum(22),
            ttl,
            jtis: Default::default(),
            issued: Default::default(),
            tokens_issued: 0,
            refusals: Vec::new(),
            api_nonce: None,
        });
    }

    /// Access tokens issued so far
    pub fn tokens_issued(&self) -> u64 {
        lock(&self.shared.app)
            .as_ref()
            .map_or(0, |a| a.tokens_issued)
    }

    /// Why the token endpoint or an OAuth call was refused, in order (for a test's message)
    pub fn oauth_refusals(&self) -> Vec<String> {
        lock(&self.shared.app)
            .as_ref()
            .map_or_else(Vec::new, |a| a.refusals.clone())
    }

    /// From now on API calls with a DPoP token must carry a new nonce in their proof: a proof
    /// without it is 401 with `WWW-Authenticate: DPoP error="use_dpop_nonce"` and the nonce in
    /// `DPoP-Nonce` (RFC 9449 section 9)
    pub fn require_api_nonce(&self) {
        if let Some(a) = lock(&self.shared.app).as_mut() {
            a.api_nonce = Some(random_alnum(22));
        }
    }

    /// Revokes every access token issued (the next call with one is a 401)
    pub fn revoke_access_tokens(&self) {
        if let Some(a) = lock(&self.shared.app).as_mut() {
            a.issued.clear();
        }
    }

    /// The next `n` authenticated calls get `status` with Okta's error body
    pub fn fail_next(&self, n: u32, status: u16) {
        lock(&self.shared.pace).faults.push((n, status));
    }

    /// Holds back the answers to `method` calls whose path ends with `path_suffix`, after the
    /// change is made, until [`OktaStandin::release`] (a client that dies meanwhile never learns
    /// it succeeded)
    pub fn stall(&self, method: &str, path_suffix: &str) {
        self.shared.released.store(false, Ordering::SeqCst);
        *lock(&self.shared.stall) = Some((method.to_owned(), path_suffix.to_owned()));
    }

    /// Lets every held answer go and stops holding
    pub fn release(&self) {
        *lock(&self.shared.stall) = None;
        self.shared.released.store(true, Ordering::SeqCst);
    }

    /// Seeds or inspects the org; returns what the closure returns
    pub fn world<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        f(&mut self.shared.world())
    }

    /// A user as it is now (`None` once deleted)
    pub fn user(&self, id: &str) -> Option<User> {
        self.shared.world().get(id).cloned()
    }

    /// Every request received, in the order they were answered
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.pace).requests.clone()
    }

    /// The mutating requests received
    pub fn mutations(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(RecordedRequest::is_mutation)
            .collect()
    }

    /// How many answers were 429
    pub fn throttled(&self) -> usize {
        self.requests().iter().filter(|r| r.status == 429).count()
    }

    /// How many answers of one bucket were 429
    pub fn throttled_in(&self, bucket: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.status == 429 && r.bucket == bucket)
            .count()
    }

    /// Requests that arrived in a bucket before a reset the stand-in had announced for that
    /// bucket (with remaining 0 or a 429)
    pub fn early_requests(&self) -> u64 {
        lock(&self.shared.pace).early
    }

    /// Forgets the request record
    pub fn clear_requests(&self) {
        lock(&self.shared.pace).requests.clear();
    }
}

/// `tests/okta/okta-v2.trimmed.json`
pub fn okta_spec() -> Result<std::path::PathBuf, TestkitError> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/okta/okta-v2.trimmed.json");
    if path.exists() {
        Ok(path)
    } else {
        Err(TestkitError::Parse {
            what: path.display().to_string(),
            reason: "the trimmed Okta description is missing: see tests/okta/trim_spec.py".into(),
        })
    }
}

/// Records the request, checks the credential, spends its bucket's budget, injects faults and
/// adds the bucket's rate-limit headers
async fn gate(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let at = Instant::now();
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let bucket = bucket(&method, &path);
    let (parts, body) = req.into_parts();
    let token_call = path == "/oauth2/v1/token" && method == "POST";
    let form = if token_call {
        axum::body::to_bytes(body, 1 << 20)
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let auth = if token_call {
        Ok(())
    } else {
        oauth::authorized(&shared, &parts, &method, &path)
    };
    let authorized = auth.is_ok();
    let nonce_asked = auth.err().flatten();
    let req = Request::from_parts(parts.clone(), req_body_placeholder());
    let refusal = {
        let mut p = lock(&shared.pace);
        let w = p.window(bucket);
        let early = w.announced.is_some_and(|until| epoch() < until);
        w.roll(at);
        let over = w.used >= w.limit;
        if !over && authorized {
            w.used += 1;
        }
        if early {
            p.early += 1;
        }
        if !authorized {
            let mut r = okta_error(
                StatusCode::UNAUTHORIZED,
                "E0000011",
                "Invalid token provided",
            );
            if let Some(n) = nonce_asked
                .as_deref()
                .and_then(|n| HeaderValue::from_str(n).ok())
            {
                r.headers_mut().insert("dpop-nonce", n);
                r.headers_mut().insert(
                    "www-authenticate",
                    HeaderValue::from_static("DPoP error=\"use_dpop_nonce\""),
                );
            }
            Some(r)
        } else if over {
            Some(okta_error(
                StatusCode::TOO_MANY_REQUESTS,
                "E0000047",
                "API call exceeded rate limit due to too many requests.",
            ))
        } else {
            let fault = p.faults.iter_mut().find(|f| f.0 > 0).map(|f| {
                f.0 -= 1;
                f.1
            });
            fault.map(|s| {
                okta_error(
                    StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    "E0000009",
                    "Internal Server Error",
                )
            })
        }
    };
    let mut response = match refusal {
        Some(r) => r,
        None if token_call => oauth::token(&shared, &parts, &form),
        None => next.run(req).await,
    };
    let stalled = lock(&shared.stall)
        .as_ref()
        .is_some_and(|(m, suffix)| *m == method && path.ends_with(suffix.as_str()));
    if stalled {
        lock(&shared.pace).requests.push(RecordedRequest {
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            status: 0,
            at,
            bucket,
        });
        while !shared.released.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Recorded when it arrived (status 0: the answer was held back).
        return response;
    }
    let mut p = lock(&shared.pace);
    let w = p.window(bucket);
    let remaining = w.limit.saturating_sub(w.used);
    let reset = w.reset_epoch();
    let limit = w.limit;
    if remaining == 0 || response.status() == StatusCode::TOO_MANY_REQUESTS {
        w.announced = Some(reset as f64);
    }
    let h = response.headers_mut();
    h.insert("x-rate-limit-limit", HeaderValue::from(limit));
    h.insert("x-rate-limit-remaining", HeaderValue::from(remaining));
    h.insert("x-rate-limit-reset", HeaderValue::from(reset));
    p.requests.push(RecordedRequest {
        method,
        path,
        query,
        status: response.status().as_u16(),
        at,
        bucket,
    });
    response
}

/// The connector's calls carry no body the stand-in reads
fn req_body_placeholder() -> Body {
    Body::empty()
}

fn random_alnum(n: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}
