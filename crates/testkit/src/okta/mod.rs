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
//! - `Authorization: SSWS <token>` ([`OktaStandin::token`]); anything else is 401 `E0000011`.
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
//! Every answer carries `X-Rate-Limit-Limit`, `-Remaining` and `-Reset` (epoch seconds, rounded
//! up); the budget (600 per minute unless [`OktaStandin::set_rate_limit`]) is one for the org
//! (Okta keeps one per endpoint bucket), counts every authenticated call, and a call over it is
//! 429 `E0000047`. The recorder counts the requests that arrive before a reset it announced
//! (with remaining 0 or a 429): [`OktaStandin::early_requests`].
//!
//! Simplifications, on purpose: no paging (every list fits one page), no custom profile schema,
//! deactivation keeps group memberships and admin roles.

mod api;
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
    /// (method, path suffix) whose answers are held back after the change is made
    stall: Mutex<Option<(String, String)>>,
    released: AtomicBool,
}

#[derive(Debug)]
struct Pace {
    limit: u64,
    window: Duration,
    window_start: Instant,
    window_start_epoch: f64,
    used: u64,
    /// The reset (epoch seconds) announced with remaining 0 or a 429
    announced: Option<f64>,
    early: u64,
    faults: Vec<(u32, u16)>,
    requests: Vec<RecordedRequest>,
}

fn epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Pace {
    fn new(limit: u64, window: Duration) -> Self {
        Self {
            limit,
            window,
            window_start: Instant::now(),
            window_start_epoch: epoch(),
            used: 0,
            announced: None,
            early: 0,
            faults: Vec::new(),
            requests: Vec::new(),
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
            pace: Mutex::new(Pace::new(600, Duration::from_secs(60))),
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

    /// The org's budget: `limit` calls per `window`, starting a fresh window now
    pub fn set_rate_limit(&self, limit: u64, window: Duration) {
        let mut p = lock(&self.shared.pace);
        let requests = std::mem::take(&mut p.requests);
        *p = Pace::new(limit, window);
        p.requests = requests;
    }

    /// Spends the rest of the current window's budget (the next call is a 429)
    pub fn exhaust_budget(&self) {
        let mut p = lock(&self.shared.pace);
        p.used = p.limit;
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

    /// Requests that arrived before a reset the stand-in had announced (with remaining 0 or a 429)
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

/// Records the request, checks the token, spends the budget, injects faults and adds the
/// rate-limit headers
async fn gate(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let at = Instant::now();
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let authorized = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("SSWS "))
        .is_some_and(|t| t.trim() == shared.token);
    let req = Request::from_parts(req.into_parts().0, req_body_placeholder());
    let refusal = {
        let mut p = lock(&shared.pace);
        if p.announced.is_some_and(|until| epoch() < until) {
            p.early += 1;
        }
        p.roll(at);
        if !authorized {
            Some(okta_error(
                StatusCode::UNAUTHORIZED,
                "E0000011",
                "Invalid token provided",
            ))
        } else if p.used >= p.limit {
            Some(okta_error(
                StatusCode::TOO_MANY_REQUESTS,
                "E0000047",
                "API call exceeded rate limit due to too many requests.",
            ))
        } else {
            p.used += 1;
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
        });
        while !shared.released.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Recorded when it arrived (status 0: the answer was held back).
        return response;
    }
    let mut p = lock(&shared.pace);
    let remaining = p.limit.saturating_sub(p.used);
    let reset = p.reset_epoch();
    if remaining == 0 || response.status() == StatusCode::TOO_MANY_REQUESTS {
        p.announced = Some(reset as f64);
    }
    let h = response.headers_mut();
    h.insert("x-rate-limit-limit", HeaderValue::from(p.limit));
    h.insert("x-rate-limit-remaining", HeaderValue::from(remaining));
    h.insert("x-rate-limit-reset", HeaderValue::from(reset));
    p.requests.push(RecordedRequest {
        method,
        path,
        query,
        status: response.status().as_u16(),
        at,
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
