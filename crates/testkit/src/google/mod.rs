//! A stateful Google Workspace stand-in (Admin SDK Directory users, groups, members, tokens,
//! ASPs, roles and role assignments; the Data Transfer API; Gmail settings; Licensing; and an
//! OAuth 2 token endpoint taking RFC 7523 JWT-bearer assertions) served in process
//!
//! [`GoogleStandin`] answers the calls the Google Workspace connector makes, from an in-memory
//! [`World`] that tests seed and inspect, in the shapes of Google's discovery documents (the ones
//! google-api-python-client 2.202.0 ships). [`GoogleStandin::prism`] puts `prism proxy --errors`
//! in front of it with those documents converted to Swagger 2.0 (`tests/google/make-spec.mjs`),
//! so every request and answer is checked against what Google declares.
//!
//! - `POST /token` (the `token_uri` of the service-account key [`GoogleStandin::service_account_key`]
//!   hands out): `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` and an `assertion` signed
//!   RS256 with the key's private half, verified here with its public half; `iss` must be the
//!   service account, `aud` this token URI or Google's own (`https://oauth2.googleapis.com/token`,
//!   which google-auth always sends), `exp` in the future and at most an hour after `iat`,
//!   `scope` non-empty; `sub` (domain-wide delegation) an existing user. A wrong signature is
//!   Google's 400 `invalid_grant` "Invalid JWT Signature."; an unknown `sub` is 400
//!   `invalid_grant` "Invalid email or User ID". Tokens live 3,600 s.
//! - Admin SDK and Licensing calls need a token whose `sub` is a super admin (else 403
//!   "Not Authorized to access this resource/api") and the API's scope (else 403
//!   `insufficientPermissions`). Gmail calls need a token whose `sub` is the mailbox's user
//!   (else 403 "Delegation denied"); a suspended user's Gmail answers 400 `failedPrecondition`
//!   "Mail service not enabled" (GAM-team/got-your-back#258).
//! - Status codes the discovery documents do not declare, from Google's references: deletes,
//!   `signOut` and `verificationCodes/invalidate` answer 204 with no body ("If successful, the
//!   response body is empty"); a key that names nothing answers 404 `notFound` "Resource Not
//!   Found: userKey" (memberKey, groupKey, clientId, ...); a new forwarding address that exists
//!   answers 409 `alreadyExists`.
//! - The rate budget ([`GoogleStandin::set_rate_limit`]) counts every API call; a call over it is
//!   **403** `userRateLimitExceeded` (Google's Directory API answers 403, not 429);
//!   [`GoogleStandin::rate_storm`] answers the next n calls 403 with any reason
//!   (`rateLimitExceeded`, `quotaExceeded`).
//! - `GET /drive/v3/files?q='me' in owners` lists the token user's own files (`id`, `name`,
//!   `size`; [`User::drive_files`] of them, [`User::drive_bytes`] shared out), `pageSize` up to
//!   1,000 and `nextPageToken`; any other `q` is a 400.
//! - `POST /batch/admin/directory_v1` (Google's batch endpoint): each `application/http` part is
//!   replayed through Prism (once [`GoogleStandin::prism`] started it) or this stand-in, so it is
//!   checked, gated, budgeted and recorded (`in_batch`) as a call of its own; the answer is one
//!   `application/http` part per request, `Content-ID: <response-ID>`.
//! - A transfer is `inProgress` until it was read [`World::transfer_polls`] times
//!   (`GET transfers/{id}`), then `completed`, and the old owner's Drive files are the new owner's.
//!
//! Simplifications, on purpose: one customer, no org units, no paging of members; the user search
//! knows `email` and `externalId` (`=` or `:`, a value in single quotes, a trailing `*`).

mod api;
mod world;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

pub use world::{
    Asp, DriveFile, Grant, Group, Member, MobileDevice, Permission, Role, RoleAssignment,
    SharedDrive, Transfer, User, World, DRIVE_APP_ID, FOLDER,
};

use crate::process::run;
use crate::serve::ServerThread;
use crate::{Prism, TestkitError};

/// The service account's email (the `iss` of its assertions)
pub const SERVICE_ACCOUNT: &str = "revoked@revoked-test.iam.gserviceaccount.com";

/// One request the stand-in received
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The HTTP method
    pub method: String,
    /// The path as received (still percent-encoded)
    pub path: String,
    /// The query string, if any
    pub query: Option<String>,
    /// The delegated subject of the token used (`None` without a valid token; `token` for the
    /// token call)
    pub subject: Option<String>,
    /// The request body as text
    pub body: String,
    /// The status answered
    pub status: u16,
    /// When it arrived
    pub at: Instant,
    /// Whether it was a part of a batch request, replayed by the batch endpoint (the batch
    /// request itself is recorded too, after its parts, with the path [`BATCH_PATH`])
    pub in_batch: bool,
}

impl RecordedRequest {
    /// Whether it changes something (every non-GET but the token call and a batch request,
    /// whose parts are recorded each on its own)
    pub fn is_mutation(&self) -> bool {
        self.method != "GET" && self.path != TOKEN_PATH && self.path != BATCH_PATH
    }
}

const TOKEN_PATH: &str = "/token";

/// Google's batch endpoint of the Directory API
pub const BATCH_PATH: &str = "/batch/admin/directory_v1";

/// The header a replayed part carries, so the recorder tells it from a call of its own
pub(crate) const PART_HEADER: &str = "x-standin-batch-part";

/// The audience Google documents for a service account's assertion ("always
/// https://oauth2.googleapis.com/token")
const GOOGLE_TOKEN_AUDIENCE: &str = "https://oauth2.googleapis.com/token";

/// The Google stand-in: an axum server on a free 127.0.0.1 port, on its own thread
#[derive(Debug)]
pub struct GoogleStandin {
    shared: Arc<Shared>,
    server: ServerThread,
    key_pem: String,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) world: Mutex<World>,
    pub(crate) auth: Mutex<Auth>,
    pace: Mutex<Pace>,
    /// Where the batch endpoint replays its parts: this stand-in, or Prism in front of it
    pub(crate) replay: Mutex<String>,
}

#[derive(Debug)]
pub(crate) struct Issued {
    pub(crate) subject: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) expiry: Instant,
}

pub(crate) struct Auth {
    pub(crate) key: ring::signature::RsaKeyPair,
    pub(crate) token_uri: String,
    pub(crate) tokens: HashMap<String, Issued>,
    pub(crate) issued: u64,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("token_uri", &self.token_uri)
            .field("issued", &self.issued)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Pace {
    limit: u64,
    window: Duration,
    window_start: Instant,
    used: u64,
    /// (n, reason, path it must contain): the next n such calls answer 403 with that reason
    storm: Vec<(u32, String, Option<String>)>,
    faults: Vec<(u32, u16, Option<String>)>,
    /// (method, path prefix): answers held back after the world changed, until released
    stalls: Vec<(String, String)>,
    requests: Vec<RecordedRequest>,
    /// Added to every answer but a batch's parts' (a network round trip, for benches)
    latency: Duration,
}

impl Pace {
    fn new() -> Self {
        // Directory API: 2,400 queries per minute per user per project.
        Self {
            limit: 2_400,
            window: Duration::from_secs(60),
            window_start: Instant::now(),
            used: 0,
            storm: Vec::new(),
            faults: Vec::new(),
            stalls: Vec::new(),
            requests: Vec::new(),
            latency: Duration::ZERO,
        }
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

/// Google's JSON error body (`{"error": {"code", "message", "errors": [{domain, reason,
/// message}], "status"}}`)
pub(crate) fn google_error(status: StatusCode, reason: &str, message: &str) -> Response {
    let domain = match reason {
        "userRateLimitExceeded" | "rateLimitExceeded" | "quotaExceeded" => "usageLimits",
        _ => "global",
    };
    let grpc = match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ALREADY_EXISTS",
        _ => "UNAVAILABLE",
    };
    (
        status,
        axum::Json(json!({
            "error": {
                "code": status.as_u16(),
                "message": message,
                "errors": [{"message": message, "domain": domain, "reason": reason}],
                "status": grpc,
            }
        })),
    )
        .into_response()
}

/// A fresh 2048-bit RSA key as PKCS#8 PEM (`openssl genpkey`, as Google's console hands out)
fn new_key() -> Result<String, TestkitError> {
    let mut cmd = Command::new("openssl");
    cmd.args([
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
    ]);
    run(cmd, "openssl genpkey (apt-get install openssl)", None)
}

fn pem_der(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .ok()
}

impl GoogleStandin {
    /// Starts an empty domain (`example.com`) with a fresh service-account key
    pub fn start() -> Result<GoogleStandin, TestkitError> {
        let key_pem = new_key()?;
        let der = pem_der(&key_pem).ok_or_else(|| TestkitError::Parse {
            what: "the key of openssl genpkey".into(),
            reason: "expected PEM".into(),
        })?;
        let key =
            ring::signature::RsaKeyPair::from_pkcs8(&der).map_err(|e| TestkitError::Parse {
                what: "the key of openssl genpkey".into(),
                reason: format!("ring rejects it: {e}"),
            })?;
        let shared = Arc::new(Shared {
            world: Mutex::new(World::default()),
            auth: Mutex::new(Auth {
                key,
                token_uri: String::new(),
                tokens: HashMap::new(),
                issued: 0,
            }),
            pace: Mutex::new(Pace::new()),
            replay: Mutex::new(String::new()),
        });
        let app = api::routes()
            .fallback(api::no_route)
            .layer(axum::middleware::from_fn_with_state(shared.clone(), gate))
            .with_state(shared.clone());
        let server = ServerThread::start("google stand-in", app)?;
        lock(&shared.auth).token_uri = format!("http://{}{TOKEN_PATH}", server.addr());
        *lock(&shared.replay) = server.addr().to_string();
        Ok(GoogleStandin {
            shared,
            server,
            key_pem,
        })
    }

    /// Starts Prism in proxy mode with Google's own descriptions in front of this stand-in
    /// (the connector's `api_url` is then [`Prism::rest_url`]; the token call still comes here)
    ///
    /// From then on the batch endpoint replays each part through this Prism too, so each inner
    /// request and its answer are checked as a call of its own would be.
    pub fn prism(&self) -> Result<Prism, TestkitError> {
        let prism = Prism::start_with_spec(&google_spec()?, &self.url())?;
        *lock(&self.shared.replay) = prism.rest_url().trim_start_matches("http://").to_owned();
        Ok(prism)
    }

    /// The API base URL (`http://127.0.0.1:PORT`), in place of `https://admin.googleapis.com`
    /// (and gmail.googleapis.com, licensing.googleapis.com: the paths do not overlap)
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The service-account key JSON, as Google's console hands it out, with `token_uri` here
    pub fn service_account_key(&self) -> String {
        json!({
            "type": "service_account",
            "project_id": "revoked-test",
            "private_key_id": "0123456789abcdef0123456789abcdef01234567",
            "private_key": self.key_pem,
            "client_email": SERVICE_ACCOUNT,
            "client_id": "104567890123456789012",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": lock(&self.shared.auth).token_uri,
            "universe_domain": "googleapis.com",
        })
        .to_string()
    }

    /// How many access tokens were issued
    pub fn tokens_issued(&self) -> u64 {
        lock(&self.shared.auth).issued
    }

    /// Expires every token issued so far (the next call with one is a 401)
    pub fn expire_tokens_now(&self) {
        let now = Instant::now();
        for t in lock(&self.shared.auth).tokens.values_mut() {
            t.expiry = now;
        }
    }

    /// The budget: `limit` API calls per `window` (Google: 2,400 per minute per user), from now
    pub fn set_rate_limit(&self, limit: u64, window: Duration) {
        let mut p = lock(&self.shared.pace);
        p.limit = limit;
        p.window = window;
        p.window_start = Instant::now();
        p.used = 0;
    }

    /// The next `n` API calls get 403 with this reason (`userRateLimitExceeded`,
    /// `rateLimitExceeded`, `quotaExceeded`)
    pub fn rate_storm(&self, n: u32, reason: &str) {
        lock(&self.shared.pace)
            .storm
            .push((n, reason.to_owned(), None));
    }

    /// [`GoogleStandin::rate_storm`] for the calls whose path contains `path_contains` only (a
    /// part of a batch request, say)
    pub fn rate_storm_at(&self, n: u32, reason: &str, path_contains: &str) {
        lock(&self.shared.pace)
            .storm
            .push((n, reason.to_owned(), Some(path_contains.to_owned())));
    }

    /// The next `n` API calls whose path contains `path_contains` (any, with `None`) get `status`
    pub fn fail_next(&self, n: u32, status: u16, path_contains: Option<&str>) {
        lock(&self.shared.pace)
            .faults
            .push((n, status, path_contains.map(str::to_owned)));
    }

    /// Holds back the answers to `method` calls whose path starts with `path_prefix`: the call
    /// takes effect (and is recorded) but its answer waits until [`GoogleStandin::release`], so a
    /// test can kill the caller between the effect and the answer
    pub fn stall(&self, method: &str, path_prefix: &str) {
        lock(&self.shared.pace)
            .stalls
            .push((method.to_owned(), path_prefix.to_owned()));
    }

    /// Delays every answer by `latency` (the token call's too), but not a batch's parts, which
    /// Google answers inside its frontend: a network round trip, for benches
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.shared.pace).latency = latency;
    }

    /// Lets every held-back answer go
    pub fn release(&self) {
        lock(&self.shared.pace).stalls.clear();
    }

    /// Seeds or inspects the world; returns what the closure returns
    pub fn world<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        f(&mut self.shared.world())
    }

    /// A user as it is now (`None` once deleted)
    pub fn user(&self, id: &str) -> Option<User> {
        self.shared.world().users.get(id).cloned()
    }

    /// Every request received, in the order they were answered
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.pace).requests.clone()
    }

    /// The mutating requests received (see [`RecordedRequest::is_mutation`])
    pub fn mutations(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(RecordedRequest::is_mutation)
            .collect()
    }

    /// Forgets the request record (the world, tokens and knobs stay)
    pub fn clear_requests(&self) {
        lock(&self.shared.pace).requests.clear();
    }
}

/// The trimmed Swagger 2.0 description of the Google APIs used, made from Google's discovery
/// documents by `tests/google/make-spec.mjs` and committed beside it (so tests need only Prism)
pub fn google_spec() -> Result<PathBuf, TestkitError> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/google/google-apis.swagger.json");
    if path.exists() {
        Ok(path)
    } else {
        Err(TestkitError::Parse {
            what: path.display().to_string(),
            reason: "the Google description is missing: run `npm ci && node make-spec.mjs` in tests/google".into(),
        })
    }
}

/// The bearer token of `Authorization: Bearer X`
fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let scheme = value.get(..7)?;
    scheme
        .eq_ignore_ascii_case("bearer ")
        .then(|| value[7..].trim().to_owned())
}

/// The scope an API path needs (any scope containing it will do)
fn scope_for(path: &str) -> Option<&'static str> {
    if path.starts_with("/admin/directory/") {
        Some("admin.directory")
    } else if path.starts_with("/admin/datatransfer/") {
        Some("admin.datatransfer")
    } else if path.starts_with("/gmail/") {
        Some("gmail.settings")
    } else if path.starts_with("/apps/licensing/") {
        Some("apps.licensing")
    } else if path.starts_with("/drive/") {
        Some("auth/drive")
    } else {
        None
    }
}

/// Who may call what: a token, its scope, its delegated subject (an admin for the Admin SDK and
/// Licensing, the mailbox's user for Gmail); `Ok(subject)` or Google's refusal
fn authorize(
    shared: &Shared,
    path: &str,
    query: Option<&str>,
    token: Option<&str>,
) -> Result<String, Box<Response>> {
    let unauthenticated = || {
        google_error(
            StatusCode::UNAUTHORIZED,
            "authError",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        )
    };
    let (subject, scopes) = {
        let auth = lock(&shared.auth);
        let Some(t) = token.and_then(|t| auth.tokens.get(t)) else {
            return Err(Box::new(unauthenticated()));
        };
        if Instant::now() >= t.expiry {
            return Err(Box::new(unauthenticated()));
        }
        (t.subject.clone(), t.scopes.clone())
    };
    if let Some(need) = scope_for(path) {
        if !scopes.iter().any(|s| s.contains(need)) {
            return Err(Box::new(google_error(
                StatusCode::FORBIDDEN,
                "insufficientPermissions",
                "Request had insufficient authentication scopes.",
            )));
        }
    }
    let w = shared.world();
    if let Some(rest) = path.strip_prefix("/gmail/v1/users/") {
        let user_id = decode(rest.split('/').next().unwrap_or(""));
        let own = user_id == "me" || w.find(&subject).is_some_and(|u| u.answers_to(&user_id));
        if !own {
            return Err(Box::new(google_error(
                StatusCode::FORBIDDEN,
                "forbidden",
                &format!("Delegation denied for {subject}"),
            )));
        }
        if w.find(&subject).is_some_and(|u| u.suspended) {
            return Err(Box::new(google_error(
                StatusCode::BAD_REQUEST,
                "failedPrecondition",
                "Mail service not enabled",
            )));
        }
    } else if path.starts_with("/drive/") {
        // Drive answers as the token's own user; `useDomainAdminAccess` only to an admin.
        let as_admin =
            query.is_some_and(|q| q.split('&').any(|kv| kv == "useDomainAdminAccess=true"));
        if as_admin && !w.find(&subject).is_some_and(|u| u.is_admin && !u.suspended) {
            return Err(Box::new(google_error(
                StatusCode::FORBIDDEN,
                "forbidden",
                "The user does not have sufficient permissions (useDomainAdminAccess needs an administrator)",
            )));
        }
        if w.find(&subject).is_none_or(|u| u.suspended) {
            return Err(Box::new(google_error(
                StatusCode::FORBIDDEN,
                "forbidden",
                "The user does not have sufficient permissions",
            )));
        }
    } else if !w.find(&subject).is_some_and(|u| u.is_admin && !u.suspended) {
        return Err(Box::new(google_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Not Authorized to access this resource/api",
        )));
    }
    Ok(subject)
}

/// A percent-decoded path segment
pub(crate) fn decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Records the request, checks the token, spends the budget, injects storms and faults
async fn gate(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let at = Instant::now();
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 4 << 20)
        .await
        .unwrap_or_default();
    let token = bearer(&parts.headers);
    let in_batch = parts.headers.contains_key(PART_HEADER);
    let req = Request::from_parts(parts, Body::from(bytes.clone()));
    let mut subject = None;
    let response = if path == TOKEN_PATH {
        subject = Some("token".to_owned());
        next.run(req).await
    } else if path == BATCH_PATH {
        // The batch itself spends no budget: each part does, as it is replayed through here.
        match authorize(&shared, &path, query.as_deref(), token.as_deref()) {
            Err(refusal) => *refusal,
            Ok(sub) => {
                subject = Some(sub);
                next.run(req).await
            }
        }
    } else {
        match authorize(&shared, &path, query.as_deref(), token.as_deref()) {
            Err(refusal) => *refusal,
            Ok(sub) => {
                subject = Some(sub);
                let refusal = {
                    let mut p = lock(&shared.pace);
                    if at >= p.window_start + p.window {
                        p.window_start = at;
                        p.used = 0;
                    }
                    if let Some(storm) = p
                        .storm
                        .iter_mut()
                        .find(|s| s.0 > 0 && s.2.as_deref().is_none_or(|n| path.contains(n)))
                    {
                        storm.0 -= 1;
                        Some(google_error(
                            StatusCode::FORBIDDEN,
                            &storm.1.clone(),
                            "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user' of service 'admin.googleapis.com'.",
                        ))
                    } else if p.used >= p.limit {
                        Some(google_error(
                            StatusCode::FORBIDDEN,
                            "userRateLimitExceeded",
                            "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user' of service 'admin.googleapis.com'.",
                        ))
                    } else {
                        p.used += 1;
                        let fault = p
                            .faults
                            .iter_mut()
                            .find(|f| f.0 > 0 && f.2.as_deref().is_none_or(|n| path.contains(n)));
                        fault.map(|f| {
                            f.0 -= 1;
                            let status = StatusCode::from_u16(f.1)
                                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                            google_error(status, "backendError", "Backend Error")
                        })
                    }
                };
                match refusal {
                    Some(r) => r,
                    None => next.run(req).await,
                }
            }
        }
    };
    let (stalled, latency) = {
        let mut p = lock(&shared.pace);
        p.requests.push(RecordedRequest {
            method: method.clone(),
            path: path.clone(),
            query,
            subject,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            status: response.status().as_u16(),
            at,
            in_batch,
        });
        (p.stalls.clone(), p.latency)
    };
    if !in_batch && !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if stalled
        .iter()
        .any(|(m, prefix)| *m == method && path.starts_with(prefix.as_str()))
    {
        while lock(&shared.pace)
            .stalls
            .iter()
            .any(|(m, prefix)| *m == method && path.starts_with(prefix.as_str()))
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    response
}

/// Checks an RFC 7523 assertion and issues a token (see the module docs); the JSON answer or
/// Google's OAuth error
pub(crate) fn issue_token(shared: &Shared, body: &[u8]) -> Response {
    use base64::Engine;
    let oauth_error = |status: StatusCode, error: &str, description: &str| {
        (
            status,
            axum::Json(json!({"error": error, "error_description": description})),
        )
            .into_response()
    };
    let form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Invalid grant_type: ",
        );
    }
    let Some(assertion) = form.get("assertion") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter: assertion",
        );
    };
    let parts: Vec<&str> = assertion.split('.').collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let decoded = |s: &str| b64.decode(s).ok();
    let (Some(header), Some(claims), Some(sig)) = (
        parts.first().and_then(|p| decoded(p)),
        parts.get(1).and_then(|p| decoded(p)),
        parts.get(2).and_then(|p| decoded(p)),
    ) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.");
    };
    let header: Value = serde_json::from_slice(&header).unwrap_or_default();
    let claims: Value = serde_json::from_slice(&claims).unwrap_or_default();
    let mut auth = lock(&shared.auth);
    let signed = format!("{}.{}", parts[0], parts[1]);
    let public = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        ring::signature::KeyPair::public_key(&auth.key)
            .as_ref()
            .to_vec(),
    );
    if parts.len() != 3
        || header["alg"] != "RS256"
        || public.verify(signed.as_bytes(), &sig).is_err()
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid JWT Signature.",
        );
    }
    let now = chrono::Utc::now().timestamp();
    let (iat, exp) = (claims["iat"].as_i64(), claims["exp"].as_i64());
    let timely =
        matches!((iat, exp), (Some(i), Some(e)) if e > now && e - i <= 3_600 && i <= now + 300);
    if !timely {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.");
    }
    // google-auth always sends Google's documented audience, whatever the key's token_uri says
    // (service_account.py, `_GOOGLE_OAUTH2_TOKEN_ENDPOINT`): both are the token endpoint.
    let aud = claims["aud"].as_str();
    if claims["iss"] != SERVICE_ACCOUNT
        || (aud != Some(auth.token_uri.as_str()) && aud != Some(GOOGLE_TOKEN_AUDIENCE))
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid JWT: Failed audience check.",
        );
    }
    let scopes: Vec<String> = claims["scope"]
        .as_str()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if scopes.is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "Empty or missing scope not allowed.",
        );
    }
    let Some(subject) = claims["sub"].as_str().map(str::to_owned) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "unauthorized_client", "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.");
    };
    if shared.world().find(&subject).is_none() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid email or User ID",
        );
    }
    auth.issued += 1;
    let token = format!("ya29.{}", random_hex(48));
    auth.tokens.insert(
        token.clone(),
        Issued {
            subject,
            scopes,
            expiry: Instant::now() + Duration::from_secs(3_600),
        },
    );
    axum::Json(json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}))
        .into_response()
}

fn random_hex(n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}

/// The delegated subject of a request's token
pub(crate) fn token_subject(shared: &Shared, headers: &HeaderMap) -> Option<String> {
    let t = bearer(headers)?;
    lock(&shared.auth).tokens.get(&t).map(|i| i.subject.clone())
}
