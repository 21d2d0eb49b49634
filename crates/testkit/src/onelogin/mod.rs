//! A stateful OneLogin stand-in (API v2 users and roles, the v1 logout, OAuth 2 client
//! credentials) served in process
//!
//! [`OneloginStandin`] answers the calls the OneLogin connector makes, from an in-memory [`World`]
//! that tests seed and inspect, in the shapes of OneLogin's API reference and its Python SDK
//! (`onelogin` 3.x, whose models `crates/testkit/tests/onelogin.rs` deserializes every answer
//! with):
//!
//! - `POST /auth/oauth2/v2/token`: client credentials in `Authorization: Basic` (or the legacy
//!   `client_id:ID, client_secret:SECRET`), `grant_type=client_credentials` as JSON or a form;
//!   answers `access_token`, `created_at`, `expires_in`, `refresh_token`, `token_type`,
//!   `account_id`. Tokens live 36,000 s (OneLogin's 10 hours) unless [`OneloginStandin::set_token_ttl`].
//! - `GET /api/2/users` (`email`, `username` with `*` wildcards, `limit` up to 100, `page`;
//!   `Total-Pages`, `Current-Page`, `Total-Count`, `Page-Items` headers), `GET`, `PUT`,
//!   `DELETE /api/2/users/:id` (a 404 `NotFoundError` when gone; status codes 0-8 as OneLogin's:
//!   2 is suspended, 3 locked).
//! - `PUT /api/1/users/:id/logout` (v1 answers: `{"status": {...}}`).
//! - `GET /api/2/roles`, `GET /api/2/roles/:id/users`, `DELETE /api/2/roles/:id/users` with a
//!   JSON array of user ids (`[1, 2]`, the reference's sample) or `{"user_id": [1, 2]}` (what the
//!   Python SDK sends); users not in the role are ignored.
//!
//! Every answer carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`
//! (seconds until the window resets); the budget (5,000 per hour unless
//! [`OneloginStandin::set_rate_limit`]) is per account, counts every authenticated API call (not
//! the token call), and a call over it is a 429. An unknown or expired token is a 401.
//!
//! Simplifications, on purpose: one account, no apps, groups or custom attributes; the
//! search is exact (case-insensitive) or `*` wildcards, never other operators.

mod api;
mod world;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub use world::{status, Role, User, World};

use crate::serve::ServerThread;
use crate::TestkitError;

/// One request the stand-in received
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The HTTP method
    pub method: String,
    /// The path as received (still percent-encoded)
    pub path: String,
    /// The query string, if any
    pub query: Option<String>,
    /// The bearer token used (for the token call: `basic:CLIENT_ID`); `None` without one
    pub token: Option<String>,
    /// The request body as text (for checking batch bodies)
    pub body: String,
    /// The status answered
    pub status: u16,
    /// When it arrived (before the latency knob)
    pub at: Instant,
}

impl RecordedRequest {
    /// Whether it changes something (every non-GET but the token call)
    pub fn is_mutation(&self) -> bool {
        self.method != "GET" && self.path != TOKEN_PATH
    }
}

const TOKEN_PATH: &str = "/auth/oauth2/v2/token";

/// The OneLogin stand-in: an axum server on a free 127.0.0.1 port, on its own thread
///
/// ```no_run
/// use revoke_testkit::onelogin::OneloginStandin;
///
/// let ol = OneloginStandin::start().unwrap();
/// let (alice, admins) = ol.world(|w| {
///     let alice = w.user("alice@example.com", "alice");
///     let admins = w.role("Admins");
///     w.assign(admins, alice);
///     (alice, admins)
/// });
/// let (client_id, client_secret) = ol.credentials();
/// // point the client at ol.url(); then:
/// assert_eq!(ol.roles_of(alice), vec![admins]);
/// ```
#[derive(Debug)]
pub struct OneloginStandin {
    shared: Arc<Shared>,
    server: ServerThread,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) world: Mutex<World>,
    pub(crate) auth: Mutex<Auth>,
    pace: Mutex<Pace>,
}

#[derive(Debug)]
pub(crate) struct Auth {
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) ttl: Duration,
    /// token -> expiry
    pub(crate) tokens: HashMap<String, Instant>,
    pub(crate) issued: u64,
}

#[derive(Debug)]
struct Pace {
    limit: u64,
    window: Duration,
    window_start: Instant,
    used: u64,
    latency: Duration,
    faults: Vec<Fault>,
    requests: Vec<RecordedRequest>,
}

#[derive(Debug)]
struct Fault {
    left: u32,
    status: u16,
    path_contains: Option<String>,
}

impl Pace {
    fn new() -> Self {
        Self {
            limit: 5_000,
            window: Duration::from_secs(3_600),
            window_start: Instant::now(),
            used: 0,
            latency: Duration::ZERO,
            faults: Vec::new(),
            requests: Vec::new(),
        }
    }

    fn roll(&mut self, now: Instant) {
        if now >= self.window_start + self.window {
            self.window_start = now;
            self.used = 0;
        }
    }

    /// Whole seconds until the window resets (at least 1 while it runs)
    fn reset_secs(&self, now: Instant) -> u64 {
        let left = (self.window_start + self.window).saturating_duration_since(now);
        left.as_secs_f64().ceil().max(1.0) as u64
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        lock(&self.world)
    }

    /// Whether `token` is one we issued and it has not expired
    fn token_valid(&self, token: &str) -> bool {
        lock(&self.auth)
            .tokens
            .get(token)
            .is_some_and(|expiry| Instant::now() < *expiry)
    }
}

impl OneloginStandin {
    /// Starts an empty stand-in with fresh client credentials
    pub fn start() -> Result<OneloginStandin, TestkitError> {
        let shared = Arc::new(Shared {
            world: Mutex::new(World::default()),
            auth: Mutex::new(Auth {
                client_id: random_hex(64),
                client_secret: random_hex(64),
                ttl: Duration::from_secs(36_000),
                tokens: HashMap::new(),
                issued: 0,
            }),
            pace: Mutex::new(Pace::new()),
        });
        let app = api::routes()
            .fallback(api::no_route)
            .layer(axum::middleware::from_fn_with_state(shared.clone(), gate))
            .with_state(shared.clone());
        let server = ServerThread::start("onelogin stand-in", app)?;
        Ok(OneloginStandin { shared, server })
    }

    /// The API base URL (`http://127.0.0.1:PORT`), in place of `https://api.us.onelogin.com`
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The API credential pair (client id, client secret) the token call accepts
    pub fn credentials(&self) -> (String, String) {
        let a = lock(&self.shared.auth);
        (a.client_id.clone(), a.client_secret.clone())
    }

    /// How long tokens issued from now on live (OneLogin: 36,000 s); `expires_in` says so
    pub fn set_token_ttl(&self, ttl: Duration) {
        lock(&self.shared.auth).ttl = ttl;
    }

    /// Expires every token issued so far (the next call with one is a 401)
    pub fn expire_tokens_now(&self) {
        let now = Instant::now();
        for expiry in lock(&self.shared.auth).tokens.values_mut() {
            *expiry = now;
        }
    }

    /// How many access tokens were issued, to check a client caches them
    pub fn tokens_issued(&self) -> u64 {
        lock(&self.shared.auth).issued
    }

    /// The account's rate budget: `limit` calls per `window`, starting a fresh window now
    /// (OneLogin: 5,000 per hour, the default)
    pub fn set_rate_limit(&self, limit: u64, window: Duration) {
        let mut p = lock(&self.shared.pace);
        p.limit = limit;
        p.window = window;
        p.window_start = Instant::now();
        p.used = 0;
    }

    /// Delays every answer by `latency` (after the request is recorded)
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.shared.pace).latency = latency;
    }

    /// The next `n` API calls get `status` (500, 502, 503, ...) with OneLogin's error body
    pub fn fail_next(&self, n: u32, status: u16) {
        lock(&self.shared.pace).faults.push(Fault {
            left: n,
            status,
            path_contains: None,
        });
    }

    /// The next `n` API calls whose path contains `path_contains` get `status`
    pub fn fail_matching(&self, path_contains: &str, n: u32, status: u16) {
        lock(&self.shared.pace).faults.push(Fault {
            left: n,
            status,
            path_contains: Some(path_contains.to_owned()),
        });
    }

    /// Seeds or inspects the world; returns what the closure returns
    pub fn world<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        f(&mut self.shared.world())
    }

    /// A user as it is now (`None` once deleted)
    pub fn user(&self, id: u64) -> Option<User> {
        self.shared.world().get(id).cloned()
    }

    /// The role ids a user holds
    pub fn roles_of(&self, id: u64) -> Vec<u64> {
        self.shared.world().roles_of(id)
    }

    /// Every request received, in the order they were answered
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.pace).requests.clone()
    }

    /// How many requests with this method have a path starting with `path_prefix`
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        lock(&self.shared.pace)
            .requests
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.path.starts_with(path_prefix))
            .count()
    }

    /// The mutating requests received (see [`RecordedRequest::is_mutation`])
    pub fn mutations(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.pace)
            .requests
            .iter()
            .filter(|r| r.is_mutation())
            .cloned()
            .collect()
    }

    /// Forgets the request record (the world, tokens and knobs stay)
    pub fn clear_requests(&self) {
        lock(&self.shared.pace).requests.clear();
    }

    /// Forgets the world, the record and every knob (credentials and tokens stay valid)
    pub fn reset(&self) {
        *self.shared.world() = World::default();
        let mut p = lock(&self.shared.pace);
        *p = Pace::new();
    }
}

/// OneLogin's v2 error body (`{"statusCode", "name", "message"}`)
pub(crate) fn v2_error(status: StatusCode, name: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "statusCode": status.as_u16(), "name": name, "message": message })),
    )
        .into_response()
}

/// OneLogin's v1 error body (`{"status": {"error", "code", "type", "message"}}`)
pub(crate) fn v1_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "status": { "error": true, "code": status.as_u16(), "type": kind, "message": message }
        })),
    )
        .into_response()
}

/// The credential of `Authorization: bearer X` (also OneLogin's v1 `bearer:X`)
fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let scheme = value.get(..7)?;
    if !scheme.eq_ignore_ascii_case("bearer:") && !scheme.eq_ignore_ascii_case("bearer ") {
        return None;
    }
    let rest = &value[7..];
    Some(rest.trim().to_owned())
}

/// Everything OneLogin does around an endpoint: records the request, waits the latency, checks
/// the token, spends the rate budget, injects faults and adds the rate-limit headers
async fn gate(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let at = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let token_call = path == TOKEN_PATH;
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 4 << 20)
        .await
        .unwrap_or_default();
    let token = if token_call {
        api::basic_client_id(&parts.headers).map(|id| format!("basic:{id}"))
    } else {
        bearer(&parts.headers)
    };
    let req = Request::from_parts(parts, Body::from(bytes.clone()));

    let latency = lock(&shared.pace).latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let v1 = path.starts_with("/api/1/");

    let mut response = if token_call {
        next.run(req).await
    } else if !token.as_deref().is_some_and(|t| shared.token_valid(t)) {
        if v1 {
            v1_error(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "Authentication Failure",
            )
        } else {
            v2_error(
                StatusCode::UNAUTHORIZED,
                "UnauthorizedError",
                "Unauthorized",
            )
        }
    } else {
        let refusal = {
            let mut p = lock(&shared.pace);
            p.roll(at);
            if p.used >= p.limit {
                Some(StatusCode::TOO_MANY_REQUESTS)
            } else {
                p.used += 1;
                let fault = p.faults.iter_mut().find(|f| {
                    f.left > 0
                        && f.path_contains
                            .as_deref()
                            .is_none_or(|needle| path.contains(needle))
                });
                fault.map(|f| {
                    f.left -= 1;
                    StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                })
            }
        };
        match refusal {
            None => next.run(req).await,
            Some(StatusCode::TOO_MANY_REQUESTS) => v2_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequestsError",
                "Rate limit exceeded",
            ),
            Some(status) => v2_error(status, "InternalServerError", "Internal Server Error"),
        }
    };

    let mut p = lock(&shared.pace);
    p.roll(Instant::now());
    let remaining = p.limit.saturating_sub(p.used);
    let reset = p.reset_secs(Instant::now());
    let h = response.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from(p.limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    h.insert("x-ratelimit-reset", HeaderValue::from(reset));
    p.requests.push(RecordedRequest {
        method: method.as_str().to_owned(),
        path,
        query,
        token,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        status: response.status().as_u16(),
        at,
    });
    response
}

fn random_hex(n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}
