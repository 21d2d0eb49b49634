//! Small stateful stand-ins for the shipped recipes of the `http` connector
//! (`connectors/http/recipes/*.toml`), served in process like the other stand-ins
//!
//! Each vendor module holds a `World` that tests seed and inspect and one function answering a
//! request from it; this module holds what they share ([`Standin`]): one axum server on a free
//! 127.0.0.1 port, the bearer token it accepts (anything else is the vendor's 401), the record of
//! every request (method, raw path, query, body, status), and injected faults (the next N requests
//! whose path contains a text answer a given status, e.g. 429 with `Retry-After`).
//!
//! - [`mattermost`]: Mattermost API v4 (users, sessions, personal access tokens, teams, channels),
//!   shapes from Mattermost's OpenAPI source as packaged in PyPI `mattermost-api-reference-client`
//!   (which `tests/python/recipes_check.py` drives the stand-in with).
//! - [`dockerhub`]: one Docker Hub organization (token exchange, members, groups), its exchanges
//!   checked afterwards against Docker's own Hub API description (`tests/recipes/hub_check.py`).
//! - [`wordpress`]: WordPress REST users and application passwords (Basic with an application
//!   password), its answers checked against the JSON schemas of npm `wp-types` (`tests/recipes`).
//! - [`discord`]: one guild's members (search, read, kick), `Authorization: Bot TOKEN`.
//! - [`rmm`]: a generic RMM of ours (no vendor description exists), refusing out-of-order removals.
//! - [`zendesk`]: Zendesk Support users (search, suspend, downgrade, delete); PyPI `zenpy` drives it.
//! - [`slack`]: Slack Web API methods (`admin.users.session.reset`, `users.conversations`,
//!   `conversations.kick`, ...) answering HTTP 200 with `{"ok": false, "error": ...}`, and Slack's
//!   SCIM API (`/scim/v2/Users`); PyPI `slack-sdk` drives it in `tests/python/recipes_check.py`.

pub mod discord;
pub mod dockerhub;
pub mod mattermost;
pub mod rmm;
pub mod slack;
pub mod wordpress;
pub mod zendesk;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::serve::ServerThread;
use crate::TestkitError;

/// One request a recipe stand-in received
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The HTTP method
    pub method: String,
    /// The path as received (still percent-encoded)
    pub path: String,
    /// The query string, if any
    pub query: Option<String>,
    /// The request body as text
    pub body: String,
    /// The status answered
    pub status: u16,
    /// The request's Content-Type and Authorization (its credential replaced by `redacted`),
    /// for checking the exchange against a vendor's description afterwards
    pub headers: Vec<(String, String)>,
    /// The answer's body as text (empty for none)
    pub answer: String,
}

impl Recorded {
    /// Whether it asked for a change: every method but GET, and Slack's read methods (which
    /// Slack also accepts as POST) are not counted as changes by their stand-in
    pub fn is_mutation(&self) -> bool {
        self.method != "GET"
    }
}

/// A request as a vendor function sees it
#[derive(Debug)]
pub struct Req {
    /// The HTTP method, upper case
    pub method: String,
    /// The path's segments, percent-decoded one by one (`..%2Fx` stays one segment `../x`)
    pub segs: Vec<String>,
    /// The query's pairs, decoded
    pub query: Vec<(String, String)>,
    /// The request headers
    pub headers: HeaderMap,
    /// The body as JSON, when it is JSON
    pub json: Option<Value>,
    /// The body's pairs when it is a form
    pub form: Vec<(String, String)>,
}

impl Req {
    /// A query value
    pub fn query(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }

    /// An argument of a Slack-style method: a form field, a JSON body field or a query value
    pub fn arg(&self, k: &str) -> Option<String> {
        self.form
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .or_else(|| {
                self.json
                    .as_ref()
                    .and_then(|j| j.get(k))
                    .and_then(|v| match v {
                        Value::String(s) => Some(s.clone()),
                        Value::Null => None,
                        other => Some(other.to_string()),
                    })
            })
            .or_else(|| self.query(k).map(str::to_owned))
    }

    /// The segments as `&str`, for matching
    pub fn path(&self) -> Vec<&str> {
        self.segs.iter().map(String::as_str).collect()
    }
}

/// A vendor function's answer
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status
    pub status: u16,
    /// The body (JSON); `Value::Null` for none
    pub body: Value,
    /// Extra headers
    pub headers: Vec<(String, String)>,
}

impl Reply {
    /// A JSON answer
    pub fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body,
            headers: Vec::new(),
        }
    }

    /// An answer with no body
    pub fn empty(status: u16) -> Reply {
        Reply::json(status, Value::Null)
    }

    /// With a header
    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.to_owned(), v.to_owned()));
        self
    }
}

#[derive(Debug)]
struct Fault {
    left: u32,
    path_contains: String,
    reply: Reply,
}

/// What a vendor module gives [`Standin::start`]
pub(crate) struct Vendor<W> {
    pub(crate) name: &'static str,
    /// The Authorization scheme with its space: `"Bearer "` (Discord: `"Bot "`)
    pub(crate) scheme: &'static str,
    pub(crate) answer: fn(&mut W, &Req) -> Reply,
    pub(crate) unauthorized: fn(&Req) -> Reply,
    /// Raw paths answered without the Authorization check (Docker Hub's token exchange)
    pub(crate) open: &'static [&'static str],
    /// With `scheme = "Basic "`: the user name; the credential is then
    /// base64(`user:token`) (WordPress's Application Passwords)
    pub(crate) basic_user: Option<&'static str>,
}

struct Shared<W> {
    world: Mutex<W>,
    log: Mutex<Vec<Recorded>>,
    faults: Mutex<Vec<Fault>>,
    /// (path contains, how long): the next such request is answered from the world, then its
    /// answer is held (what a run killed while waiting for it sees)
    /// A hold of `None` lasts until [`Standin::release`]
    holds: Mutex<Vec<(String, Option<std::time::Duration>)>>,
    /// Answers held until released, now
    held: AtomicUsize,
    released: AtomicBool,
    token: String,
    vendor: Vendor<W>,
}

/// A recipe stand-in: a vendor's `World` behind an axum server on a free 127.0.0.1 port
pub struct Standin<W: Send + 'static> {
    shared: Arc<Shared<W>>,
    server: ServerThread,
}

impl<W: Send + 'static> std::fmt::Debug for Standin<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Standin")
            .field("vendor", &self.shared.vendor.name)
            .field("addr", &self.server.addr())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<W: Send + 'static> Standin<W> {
    pub(crate) fn start(vendor: Vendor<W>, world: W) -> Result<Standin<W>, TestkitError> {
        let name = vendor.name;
        let shared = Arc::new(Shared {
            world: Mutex::new(world),
            log: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
            holds: Mutex::new(Vec::new()),
            held: AtomicUsize::new(0),
            released: AtomicBool::new(false),
            token: format!("{name}-token-{}", rand::random::<u64>()),
            vendor,
        });
        let app = axum::Router::new()
            .fallback(handle::<W>)
            .with_state(shared.clone());
        let server = ServerThread::start(name, app)?;
        Ok(Standin { shared, server })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The token it accepts (after the vendor's scheme: `Bearer`, Discord's `Bot`)
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// Reads or changes the world
    pub fn world<R>(&self, f: impl FnOnce(&mut W) -> R) -> R {
        f(&mut lock(&self.shared.world))
    }

    /// Every request so far
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.log).clone()
    }

    /// The requests that asked for a change so far
    pub fn mutations(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.is_mutation())
            .collect()
    }

    /// Forgets the requests so far
    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// The next `times` requests whose raw path contains `path_contains` get `reply` instead of
    /// an answer from the world (which is not touched)
    pub fn fail_next(&self, times: u32, path_contains: &str, reply: Reply) {
        lock(&self.shared.faults).push(Fault {
            left: times,
            path_contains: path_contains.to_owned(),
            reply,
        });
    }
}

impl<W: Send + 'static> Standin<W> {
    /// The next request whose raw path contains `path_contains` is answered from the world (the
    /// change is made and recorded at once) but its answer is held for `hold`: a client killed
    /// meanwhile never learns the outcome
    pub fn hold_next(&self, path_contains: &str, hold: std::time::Duration) {
        lock(&self.shared.holds).push((path_contains.to_owned(), Some(hold)));
    }

    /// The next request whose raw path contains `path_contains` is answered from the world (the
    /// change is made and recorded at once) and its answer held until [`Standin::release`]; while
    /// it is held, [`Standin::held`] counts it (the kill point of a kill -9 test, set by the
    /// server rather than by a timer)
    pub fn hold(&self, path_contains: &str) {
        self.shared.released.store(false, Ordering::SeqCst);
        lock(&self.shared.holds).push((path_contains.to_owned(), None));
    }

    /// How many answers are held now
    pub fn held(&self) -> usize {
        self.shared.held.load(Ordering::SeqCst)
    }

    /// Lets every held answer go
    pub fn release(&self) {
        self.shared.released.store(true, Ordering::SeqCst);
    }
}

/// Percent-decodes one path segment or query piece (`+` stays `+` in a path)
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle<W: Send + 'static>(State(shared): State<Arc<Shared<W>>>, req: Request) -> Response {
    let method = req.method().as_str().to_owned();
    let raw_path = req.uri().path().to_owned();
    let raw_query = req.uri().query().map(str::to_owned);
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 4 << 20)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let ctype = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let form = if ctype.starts_with("application/x-www-form-urlencoded") {
        form_urlencoded::parse(&bytes).into_owned().collect()
    } else {
        Vec::new()
    };
    let r = Req {
        method: method.clone(),
        segs: raw_path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect(),
        query: raw_query
            .as_deref()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default(),
        json: serde_json::from_slice(&bytes).ok(),
        headers: parts.headers,
        form,
    };
    let bearer = r
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix(shared.vendor.scheme))
        .map(str::trim);
    let open = shared.vendor.open.contains(&raw_path.as_str());
    let expected = match shared.vendor.basic_user {
        Some(user) => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{}", shared.token))
        }
        None => shared.token.clone(),
    };
    let reply = if !open && bearer != Some(expected.as_str()) {
        (shared.vendor.unauthorized)(&r)
    } else {
        let fault = {
            let mut faults = lock(&shared.faults);
            let hit = faults
                .iter_mut()
                .find(|f| f.left > 0 && raw_path.contains(&f.path_contains));
            hit.map(|f| {
                f.left -= 1;
                f.reply.clone()
            })
        };
        match fault {
            Some(f) => f,
            None => (shared.vendor.answer)(&mut lock(&shared.world), &r),
        }
    };
    let hold = {
        let mut holds = lock(&shared.holds);
        holds
            .iter()
            .position(|(p, _)| raw_path.contains(p.as_str()))
            .map(|i| holds.remove(i).1)
    };
    let mut headers = Vec::new();
    if !ctype.is_empty() {
        headers.push(("Content-Type".to_owned(), ctype.clone()));
    }
    if let Some(a) = r.headers.get("authorization").and_then(|v| v.to_str().ok()) {
        let scheme = a.split(' ').next().unwrap_or("");
        headers.push(("Authorization".to_owned(), format!("{scheme} redacted")));
    }
    lock(&shared.log).push(Recorded {
        method,
        path: raw_path,
        query: raw_query,
        body: text,
        status: reply.status,
        headers,
        answer: if reply.body.is_null() {
            String::new()
        } else {
            reply.body.to_string()
        },
    });
    match hold {
        Some(Some(d)) => tokio::time::sleep(d).await,
        Some(None) => {
            shared.held.fetch_add(1, Ordering::SeqCst);
            while !shared.released.load(Ordering::SeqCst) {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            shared.held.fetch_sub(1, Ordering::SeqCst);
        }
        None => {}
    }
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = if reply.body.is_null() {
        status.into_response()
    } else {
        let mut resp = Response::new(Body::from(reply.body.to_string()));
        *resp.status_mut() = status;
        resp.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        resp
    };
    for (k, v) in reply.headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

/// A deterministic 26-character id in Mattermost's alphabet (lower case letters and digits):
/// `prefix` then `n`, zero-padded
pub(crate) fn id26(prefix: &str, n: u64) -> String {
    format!("{prefix}{n:0>width$}", width = 26 - prefix.len())
}
