//! A stateful Microsoft Graph v1.0 stand-in (an Entra ID tenant: users, groups of every kind,
//! directory and app roles, authentication methods, licences, devices, soft delete) with the
//! Microsoft identity platform's token endpoint, served in process
//!
//! [`EntraStandin`] answers the calls docs/connectors/entra.md lists (the contract the Entra
//! connector, this stand-in and the validating proxy share) from an in-memory [`World`] that
//! tests seed and inspect, with real Graph's statuses and error bodies
//! (`{"error":{"code","message","innerError"}}`).
//!
//! - Token: `POST /{tenant}/oauth2/v2.0/token` ([`EntraStandin::token_url`]),
//!   `grant_type=client_credentials`, `scope=https://graph.microsoft.com/.default`, and either
//!   the client secret (form `client_secret`, or HTTP Basic) or a client assertion (RS256 JWT
//!   signed with the private key of [`EntraStandin::certificate_pem`]; its signature is checked
//!   with the certificate's public key (ring), its `x5t`/`x5t#S256` against the certificate's
//!   thumbprint, `aud` = the token URL, `iss` = `sub` = the client id, `exp` in the future and
//!   `nbf` not). Errors are AADSTS-shaped: `{"error","error_description":"AADSTS...","error_codes"}`.
//! - Graph under `/v1.0` ([`EntraStandin::graph_url`]): `Authorization: Bearer <token>` (an
//!   unknown or expired token is 401 `InvalidAuthenticationToken`); the reads and writes of the
//!   contract (the table in `entra/api.rs`), `$filter` on the listed user properties (exactly those
//!   forms, values compared case-insensitively; anything else is 400 `Request_UnsupportedQuery`,
//!   `onPremisesSamAccountName` only with `ConsistencyLevel: eventual` and `$count=true`),
//!   `$select` (an unknown property is 400; without it a user has Graph's default properties
//!   only), paging with an absolute `@odata.nextLink` ([`EntraStandin::set_page_size`]) and
//!   `POST /$batch` (1 to 20 parts, each answered through the same gate, handlers and budgets,
//!   the answers in a shuffled order).
//! - Throttling: a write budget (default 3,000 per 150 s) and a read budget (default 3,500 per
//!   10 s), both for the tenant, settable by tests; over one: 429 `TooManyRequests` with
//!   `Retry-After` (whole seconds to the end of the window). [`EntraStandin::storm`] scripts the
//!   next N calls as 429 with a given Retry-After ([`EntraStandin::unavailable`]: 503 with one).
//!   [`EntraStandin::early_requests`] counts the
//!   calls (a `$batch` counts once, as it arrives) that came before a Retry-After the stand-in
//!   had given expired.
//! - [`EntraStandin::hold`] makes the change of matching calls and then holds their answers
//!   until [`EntraStandin::release`] (the kill -9 test kills the client meanwhile).
//! - The recorder keeps every request (method, path, query, body, status, whether a `$batch`
//!   part); [`EntraStandin::mutations`] are the non-GET Graph calls (not the token call, not the
//!   `$batch` envelope: its parts are recorded one by one).
//!
//! [`EntraStandin::start_validated`] puts graphspec's [`GraphProxy`] (openapi-core over
//! Microsoft's own v1.0 description, trimmed) in front: every request and answer of the contract,
//! the 404/400/429 answers and each `$batch` part included, passes it with no violation (test
//! `every_call_of_the_contract_passes_microsofts_own_description`). `@odata.type` is sent where
//! real Graph sends it (memberOf, devices, authentication methods, deletedItems) and nowhere else
//! (the description requires it on every object; the proxy allows its absence elsewhere by a
//! named, logged rule).
//!
//! Fixtures ([`World`]): [`World::leaver`] (a user with a group of each kind, an administrative
//! unit, a directory role, an app role, every method type, a direct and a group-assigned licence,
//! a device), [`World::odd_tenant`] (quotes in names and values, a UPN reused by a new object, an
//! alias equal to another user's UPN, a guest, a user in 25 groups, a synced user),
//! [`World::crowd`] (n leavers sharing m groups, for benchmarks), [`World::reuse_upn`].
//!
//! Answers Graph does not document exactly (guesses, named so a test does not take them for
//! fact): removing a member who is not one is 404 `Request_ResourceNotFound` before the group's
//! kind is looked at; a dynamic group's 400 message; assignLicense removing a SKU the user does
//! not hold (400 "User does not have a corresponding license."); a method not found (404
//! `itemNotFound`); DELETE on passwordMethods (405: the description has no such operation); a
//! `$batch` of 0 or more than 20 parts (400 `BadRequest` "Invalid batch payload format...");
//! the AADSTS codes of a bad `aud` (700212) or `iss`/`sub` (700023) in an assertion; DELETE of a
//! user synced from on-premises AD (400 with the on-premises-mastered message, as its PATCH).
//!
//! Measured here (2 cores shared with other builds; release build, reqwest client, one call at a
//! time, 200 calls each): the first start in a process 0.29-0.36 s (openssl makes the certificate
//! once), later starts 44-63 µs; GET /users/{id} 35 µs, memberOf of 20 groups 65 µs, PATCH 24 µs,
//! a `$batch` of 20 memberOf reads 1.3 ms. Behind the proxy: start 1.6-1.8 s, GET 3.0 ms, memberOf
//! 11 ms, PATCH 2.9 ms, the same `$batch` 270 ms (each part and each group in it validated).
//!
//! Simplifications, on purpose: no transitive memberships, no restore from deletedItems, one
//! budget per tenant (Graph also has per-app and global limits), a read costs one unit whatever
//! the endpoint (Graph weighs some at 2 to 5 resource units), `$top` can only lower the stand-in's
//! page size, PATCH takes `accountEnabled` and `displayName` only.

pub(crate) mod api;
mod token;
mod world;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

pub use world::{
    AppRoleAssignment, Crowd, Deleted, Device, Group, GroupKind, Leaver, License, Method,
    MethodKind, OddTenant, RoleAssignment, User, World, PASSWORD_METHOD_ID, ROLE_GLOBAL_ADMIN,
    ROLE_USER_ADMIN, SKU_E3, SKU_E5,
};

use crate::serve::ServerThread;
use crate::{GraphProxy, TestkitError};

/// The scope a client-credentials token must ask for
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

/// One request the stand-in received
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The HTTP method
    pub method: String,
    /// The path as received (still percent-encoded), e.g. `/v1.0/users/{id}`
    pub path: String,
    /// The query string, if any (still percent-encoded)
    pub query: Option<String>,
    /// The body as text (the token call's form too)
    pub body: String,
    /// The status answered
    pub status: u16,
    /// Whether it was a part of a `$batch`
    pub in_batch: bool,
    /// When it arrived
    pub at: Instant,
}

impl RecordedRequest {
    /// Whether it is a Graph call that changes something (not a GET, not the token call, not
    /// the `$batch` envelope)
    pub fn is_mutation(&self) -> bool {
        self.method != "GET" && self.path.starts_with("/v1.0/") && !is_batch_path(&self.path)
    }
}

fn is_batch_path(path: &str) -> bool {
    path == "/v1.0/$batch" || path.eq_ignore_ascii_case("/v1.0/%24batch")
}

/// The Graph stand-in: an axum server on a free 127.0.0.1 port, on its own thread
#[derive(Debug)]
pub struct EntraStandin {
    /// graphspec's validating proxy in front, once [`EntraStandin::start_validated`] started it
    proxy: Option<GraphProxy>,
    shared: Arc<Shared>,
    server: ServerThread,
}

/// The app registration's certificate, made once per process (`openssl`)
#[derive(Debug)]
pub(crate) struct Credentials {
    pub(crate) key_pem: String,
    pub(crate) cert_pem: String,
    /// The certificate's DER (thumbprints)
    pub(crate) cert_der: Vec<u8>,
    /// The RSA public key (PKCS#1 DER), for ring
    pub(crate) public_key: Vec<u8>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) world: Mutex<World>,
    pub(crate) tenant_id: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) creds: &'static Credentials,
    /// `http://127.0.0.1:PORT`: the token URL's origin (the assertion's `aud`)
    pub(crate) origin: Mutex<String>,
    /// The origin `@odata.nextLink` points at (this stand-in, or the proxy in front of it)
    pub(crate) public_origin: Mutex<String>,
    pub(crate) tokens: Mutex<HashMap<String, Instant>>,
    pub(crate) page_size: Mutex<usize>,
    pace: Mutex<Pace>,
    /// (method, path suffix) whose answers are held back after the change is made
    hold: Mutex<Option<(String, String)>>,
    released: AtomicBool,
    held: AtomicU64,
    pub(crate) request_ids: AtomicU64,
}

#[derive(Debug)]
struct Budget {
    limit: u64,
    window: Duration,
    start: Instant,
    used: u64,
}

impl Budget {
    fn new(limit: u64, window: Duration) -> Self {
        Budget {
            limit,
            window,
            start: Instant::now(),
            used: 0,
        }
    }

    /// Spends one unit, or gives the whole seconds until the window ends (at least 1)
    fn spend(&mut self, now: Instant) -> Result<(), u64> {
        if now >= self.start + self.window {
            self.start = now;
            self.used = 0;
        }
        if self.used >= self.limit {
            let left = (self.start + self.window).saturating_duration_since(now);
            return Err(left.as_secs_f64().ceil().max(1.0) as u64);
        }
        self.used += 1;
        Ok(())
    }
}

#[derive(Debug)]
struct Pace {
    writes: Budget,
    reads: Budget,
    /// The latest moment a Retry-After the stand-in gave points to
    retry_until: Option<Instant>,
    early: u64,
    /// Scripted 429s: (calls left, Retry-After seconds)
    storms: Vec<(u32, u64)>,
    /// Scripted failures: (calls left, status, Retry-After seconds)
    faults: Vec<(u32, u16, Option<u64>)>,
    requests: Vec<RecordedRequest>,
    /// Added to every answer but a `$batch` part's (the envelope carries it once)
    latency: Duration,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        lock(&self.world)
    }
}

/// One call as the handlers see it (a request of its own or a `$batch` part)
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) method: String,
    /// Percent-encoded path, starting with `/`
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
    pub(crate) in_batch: bool,
}

/// One answer as the handlers give it
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Option<Value>,
}

impl Answer {
    pub(crate) fn json(status: StatusCode, body: Value) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: Some(body),
        }
    }

    pub(crate) fn no_content() -> Answer {
        Answer {
            status: StatusCode::NO_CONTENT,
            headers: Vec::new(),
            body: None,
        }
    }

    fn into_response(self) -> Response {
        let mut r = match self.body {
            Some(b) => (self.status, axum::Json(b)).into_response(),
            None => self.status.into_response(),
        };
        for (k, v) in self.headers {
            if let (Ok(name), Ok(value)) = (
                http::header::HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(&v),
            ) {
                r.headers_mut().insert(name, value);
            }
        }
        r
    }
}

impl Shared {
    /// Graph's error answer: `{"error":{"code","message","innerError":{...}}}`
    pub(crate) fn error(&self, status: StatusCode, code: &str, message: &str) -> Answer {
        let n = self.request_ids.fetch_add(1, Ordering::Relaxed);
        let request_id = format!("{:08x}-0000-4000-8000-{:012x}", n, n);
        Answer::json(
            status,
            json!({
                "error": {
                    "code": code,
                    "message": message,
                    "innerError": {
                        "date": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
                        "request-id": request_id,
                        "client-request-id": request_id,
                    }
                }
            }),
        )
    }

    fn throttled(&self, retry_after: u64) -> Answer {
        let mut a = self.error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests.",
        );
        a.headers
            .push(("Retry-After".into(), retry_after.to_string()));
        a
    }
}

static CREDENTIALS: OnceLock<Result<Credentials, String>> = OnceLock::new();

fn credentials() -> Result<&'static Credentials, TestkitError> {
    CREDENTIALS
        .get_or_init(|| token::make_credentials().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| TestkitError::Parse {
            what: "the stand-in's app certificate".into(),
            reason: e.clone(),
        })
}

fn random_hex(n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}

fn random_guid() -> String {
    let h = random_hex(32);
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

impl EntraStandin {
    /// Starts an empty tenant (`contoso.onmicrosoft.com`) with a fresh tenant id, client id and
    /// client secret; the certificate is made once per process
    pub fn start() -> Result<EntraStandin, TestkitError> {
        let creds = credentials()?;
        let shared = Arc::new(Shared {
            world: Mutex::new(World::new("contoso.onmicrosoft.com")),
            tenant_id: random_guid(),
            client_id: random_guid(),
            client_secret: format!("Xy8Q~{}", random_hex(35)),
            creds,
            origin: Mutex::new(String::new()),
            public_origin: Mutex::new(String::new()),
            tokens: Mutex::new(HashMap::new()),
            page_size: Mutex::new(100),
            pace: Mutex::new(Pace {
                writes: Budget::new(3_000, Duration::from_secs(150)),
                reads: Budget::new(3_500, Duration::from_secs(10)),
                retry_until: None,
                early: 0,
                storms: Vec::new(),
                faults: Vec::new(),
                requests: Vec::new(),
                latency: Duration::ZERO,
            }),
            hold: Mutex::new(None),
            released: AtomicBool::new(false),
            held: AtomicU64::new(0),
            request_ids: AtomicU64::new(1),
        });
        let app = axum::Router::new()
            .fallback(entry)
            .with_state(shared.clone());
        let server = ServerThread::start("entra stand-in", app)?;
        let origin = format!("http://{}", server.addr());
        *lock(&shared.origin) = origin.clone();
        *lock(&shared.public_origin) = origin;
        Ok(EntraStandin {
            proxy: None,
            shared,
            server,
        })
    }

    /// Starts a tenant as [`EntraStandin::start`] with graphspec's [`GraphProxy`] in front:
    /// [`EntraStandin::graph_url`] is then the proxy's, so every Graph call (and each `$batch`
    /// part) is checked against Microsoft's own v1.0 description; [`EntraStandin::assert_valid`]
    /// fails a test on any violation. The token call comes here directly (it is not Graph).
    /// Blocking (~1.5 s for the proxy's start); from an async test, fine on a multi-thread
    /// runtime or before the first await.
    pub fn start_validated() -> Result<EntraStandin, TestkitError> {
        let mut e = EntraStandin::start()?;
        let proxy = GraphProxy::start(&e.direct_graph_url())?;
        e.proxy = Some(proxy);
        Ok(e)
    }

    /// The proxy in front, when started by [`EntraStandin::start_validated`]
    pub fn proxy(&self) -> Option<&GraphProxy> {
        self.proxy.as_ref()
    }

    /// Panics listing every violation the proxy recorded (nothing to check without a proxy)
    pub fn assert_valid(&self) {
        if let Some(p) = &self.proxy {
            p.assert_clean();
        }
    }

    /// `http://127.0.0.1:PORT` (in place of both `https://graph.microsoft.com` and
    /// `https://login.microsoftonline.com`), this stand-in's own origin
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The connector's `graph_url`: the proxy's base URL when validated, else
    /// [`EntraStandin::direct_graph_url`]
    pub fn graph_url(&self) -> String {
        match &self.proxy {
            Some(p) => p.base_url(),
            None => self.direct_graph_url(),
        }
    }

    /// This stand-in's own Graph URL, `http://127.0.0.1:PORT/v1.0`, past any proxy
    pub fn direct_graph_url(&self) -> String {
        format!("{}/v1.0", self.url())
    }

    /// The connector's `token_url`: `http://127.0.0.1:PORT/{tenant}/oauth2/v2.0/token` (also the
    /// client assertion's `aud`)
    pub fn token_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.url(), self.shared.tenant_id)
    }

    /// Points `@odata.nextLink` at another origin (a proxy in front of this stand-in), e.g.
    /// `http://127.0.0.1:PORT2`; the links keep the `/v1.0/...` path
    pub fn set_public_origin(&self, origin: &str) {
        *lock(&self.shared.public_origin) = origin.trim_end_matches('/').to_owned();
    }

    /// The directory (tenant) id
    pub fn tenant_id(&self) -> String {
        self.shared.tenant_id.clone()
    }

    /// The app registration's client (application) id
    pub fn client_id(&self) -> String {
        self.shared.client_id.clone()
    }

    /// The app registration's client secret
    pub fn client_secret(&self) -> String {
        self.shared.client_secret.clone()
    }

    /// The app registration's certificate (PEM); client assertions signed with
    /// [`EntraStandin::private_key_pem`] are accepted
    pub fn certificate_pem(&self) -> String {
        self.shared.creds.cert_pem.clone()
    }

    /// The certificate's private key (PKCS#8 PEM)
    pub fn private_key_pem(&self) -> String {
        self.shared.creds.key_pem.clone()
    }

    /// The certificate's SHA-1 thumbprint, upper-case hex, as the Azure portal shows it
    pub fn certificate_thumbprint(&self) -> String {
        token::sha1_hex(&self.shared.creds.cert_der)
    }

    /// A valid access token without the token call (for tests of the Graph side alone)
    pub fn issue_token(&self) -> String {
        token::new_token(&self.shared)
    }

    /// Makes every issued token expired (the next Graph call with one is 401)
    pub fn expire_tokens(&self) {
        let past = Instant::now();
        for v in lock(&self.shared.tokens).values_mut() {
            *v = past;
        }
    }

    /// How many tokens were issued
    pub fn tokens_issued(&self) -> usize {
        lock(&self.shared.tokens).len()
    }

    /// The page size of every list (default 100; small in tests so paging is exercised)
    pub fn set_page_size(&self, n: usize) {
        *lock(&self.shared.page_size) = n.max(1);
    }

    /// The tenant's write budget: `limit` writes per `window`, starting a fresh window now
    pub fn set_write_budget(&self, limit: u64, window: Duration) {
        lock(&self.shared.pace).writes = Budget::new(limit, window);
    }

    /// The tenant's read budget: `limit` reads per `window`, starting a fresh window now
    pub fn set_read_budget(&self, limit: u64, window: Duration) {
        lock(&self.shared.pace).reads = Budget::new(limit, window);
    }

    /// The next `n` Graph calls (a `$batch` part counts, the envelope does not) get 429 with
    /// `Retry-After: retry_after_secs`
    pub fn storm(&self, n: u32, retry_after_secs: u64) {
        lock(&self.shared.pace).storms.push((n, retry_after_secs));
    }

    /// Adds `latency` to every answer (a `$batch` once, not per part), as Graph's ~50-150 ms, so a
    /// benchmark's wall time shows what round trips cost (default none)
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.shared.pace).latency = latency;
    }

    /// The next `n` Graph calls get `status` (e.g. 503) with Graph's error body
    pub fn fail_next(&self, n: u32, status: u16) {
        lock(&self.shared.pace).faults.push((n, status, None));
    }

    /// The next `n` Graph calls get 503 `serviceNotAvailable` with `Retry-After:
    /// retry_after_secs` (Graph sends it on 503 and 504 too); a call before it expired is early
    pub fn unavailable(&self, n: u32, retry_after_secs: u64) {
        lock(&self.shared.pace)
            .faults
            .push((n, 503, Some(retry_after_secs)));
    }

    /// Calls that arrived before a Retry-After the stand-in had given expired (a `$batch` counts
    /// once, when it arrives)
    pub fn early_requests(&self) -> u64 {
        lock(&self.shared.pace).early
    }

    /// Makes the change of `method` calls whose path ends with `path_suffix` (e.g. `"DELETE"`,
    /// `"/$ref"`), then holds their answers until [`EntraStandin::release`]
    pub fn hold(&self, method: &str, path_suffix: &str) {
        self.shared.released.store(false, Ordering::SeqCst);
        *lock(&self.shared.hold) = Some((method.to_owned(), path_suffix.to_owned()));
    }

    /// How many answers have been held so far (a test waits for 1 before it kills the client)
    pub fn held(&self) -> u64 {
        self.shared.held.load(Ordering::SeqCst)
    }

    /// Lets every held answer go and stops holding
    pub fn release(&self) {
        *lock(&self.shared.hold) = None;
        self.shared.released.store(true, Ordering::SeqCst);
    }

    /// Seeds or inspects the tenant; returns what the closure returns
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

    /// The Graph calls that change something (see [`RecordedRequest::is_mutation`])
    pub fn mutations(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(RecordedRequest::is_mutation)
            .collect()
    }

    /// How many Graph calls changed something or tried to ([`EntraStandin::mutations`])
    pub fn mutation_count(&self) -> usize {
        self.mutations().len()
    }

    /// How many answers (batch parts included) were 429
    pub fn throttled(&self) -> usize {
        self.requests().iter().filter(|r| r.status == 429).count()
    }

    /// Forgets the request record (and the early count)
    pub fn clear_requests(&self) {
        let mut p = lock(&self.shared.pace);
        p.requests.clear();
        p.early = 0;
    }
}

/// Every request: read it whole and serve it
async fn entry(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 4 << 20)
        .await
        .unwrap_or_default()
        .to_vec();
    let call = Call {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
        in_batch: false,
    };
    serve(&shared, call).await.into_response()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// Records the call, checks the token, counts early calls, spends the budget, plays storms and
/// faults, dispatches, and holds the answer when asked
pub(crate) async fn serve(shared: &Arc<Shared>, call: Call) -> Answer {
    let at = Instant::now();
    let answer = if call.method == "POST" && token::is_token_path(&call.path) {
        token::issue(shared, &call)
    } else if !call.path.starts_with("/v1.0/") {
        shared.error(
            StatusCode::NOT_FOUND,
            "BadRequest",
            &format!("Invalid version: {}", call.path.trim_start_matches('/')),
        )
    } else {
        let valid = bearer(&call.headers)
            .and_then(|t| lock(&shared.tokens).get(&t).copied())
            .is_some_and(|expiry| at < expiry);
        if !valid {
            shared.error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "Access token is empty or has expired or is not valid.",
            )
        } else {
            if !call.in_batch {
                let mut p = lock(&shared.pace);
                if p.retry_until.is_some_and(|until| at < until) {
                    p.early += 1;
                }
            }
            if is_batch_path(&call.path) {
                if call.method == "POST" {
                    Box::pin(api::batch(shared, &call)).await
                } else {
                    shared.error(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "Request_BadRequest",
                        "Only POST is supported on $batch.",
                    )
                }
            } else {
                let refusal = {
                    let mut p = lock(&shared.pace);
                    let storm = p.storms.iter_mut().find(|s| s.0 > 0).map(|s| {
                        s.0 -= 1;
                        s.1
                    });
                    let budget = if call.method == "GET" {
                        &mut p.reads
                    } else {
                        &mut p.writes
                    };
                    let over = match storm {
                        Some(secs) => Some(secs),
                        None => budget.spend(at).err(),
                    };
                    if let Some(secs) = over {
                        let until = at + Duration::from_secs(secs);
                        p.retry_until = Some(p.retry_until.map_or(until, |u| u.max(until)));
                        Some(shared.throttled(secs))
                    } else {
                        let fault = p.faults.iter_mut().find(|f| f.0 > 0).map(|f| {
                            f.0 -= 1;
                            (f.1, f.2)
                        });
                        fault.map(|(s, retry_after)| {
                            let status = StatusCode::from_u16(s)
                                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                            let (code, message) = if status == StatusCode::SERVICE_UNAVAILABLE {
                                (
                                    "serviceNotAvailable",
                                    "The service is temporarily unavailable.",
                                )
                            } else {
                                ("UnknownError", "An unexpected error occurred.")
                            };
                            let mut a = shared.error(status, code, message);
                            if let Some(secs) = retry_after {
                                let until = at + Duration::from_secs(secs);
                                p.retry_until = Some(p.retry_until.map_or(until, |u| u.max(until)));
                                a.headers.push(("Retry-After".into(), secs.to_string()));
                            }
                            a
                        })
                    }
                };
                match refusal {
                    Some(r) => r,
                    None => api::dispatch(shared, &call),
                }
            }
        }
    };
    lock(&shared.pace).requests.push(RecordedRequest {
        method: call.method.clone(),
        path: call.path.clone(),
        query: call.query.clone(),
        body: String::from_utf8_lossy(&call.body).into_owned(),
        status: answer.status.as_u16(),
        in_batch: call.in_batch,
        at,
    });
    let latency = lock(&shared.pace).latency;
    if !call.in_batch && !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let holds = lock(&shared.hold)
        .as_ref()
        .is_some_and(|(m, suffix)| *m == call.method && call.path.ends_with(suffix.as_str()));
    if holds {
        shared.held.fetch_add(1, Ordering::SeqCst);
        while !shared.released.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    answer
}
