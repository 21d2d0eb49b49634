//! The operator console at `/ui/`: server-rendered pages (maud, every value escaped) over the
//! same store calls as the JSON API, signed in with an API token (read sees, operator acts).
//!
//! Security: a server-side session behind an `HttpOnly`, `SameSite=Strict` cookie (`Secure` behind
//! TLS); every POST needs the session's CSRF token in the form and is refused with a foreign
//! `Origin`; every answer carries a strict Content-Security-Policy (`default-src 'self'`, no
//! inline script or style) and the usual headers. Every action lands in the audit log with the
//! signed-in token's name, written by the same store method the API uses.

mod connectors;
mod dag;
mod pages;
mod session;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, NaiveDate, Utc};
use revoke_core::{ActionId, JobId};
use revoke_engine::EvidenceFormat;
use revoke_store::{
    ActionRecord, ActionState, CancelTarget, JobCursor, JobQuery, JobState, QueuedJob,
};
use tracing::{error, info, warn};

use crate::extract::{with_body_deadline, Path};
use crate::state::AppState;
use session::{behind_tls, cookie, set_cookie, Session, Sessions, LOGIN_COOKIE, SESSION_COOKIE};

/// What the console's handlers share: the daemon's state and the signed-in sessions.
#[derive(Debug)]
pub(crate) struct Console {
    app: Arc<AppState>,
    sessions: Sessions,
}

type Shared = Arc<Console>;

/// Largest form the console takes (a reason is at most `MAX_REASON` characters).
const FORM_LIMIT: usize = 16 * 1024;
const MAX_REASON: usize = 2000;
/// Jobs on one page of the listing.
const PAGE_SIZE: u32 = 50;

const CSS: &str = include_str!("../../ui/console.css");
const JS: &str = include_str!("../../ui/console.js");

/// The console's Content-Security-Policy: nothing but this origin's own files, no inline script
/// or style, no framing, forms only to this origin.
pub(crate) const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// The console's routes under `/ui`, with its own layers (HTML errors, security headers, body
/// limit and deadline); merged into the daemon's router after the API's JSON layers.
pub fn router(app: Arc<AppState>) -> Router {
    let body_timeout = app.config.daemon.body_read_timeout();
    let console = Arc::new(Console {
        sessions: Sessions::new(app.store.clone()),
        app,
    });
    let routes = Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/jobs") }))
        .route("/ui/", get(|| async { Redirect::to("/ui/jobs") }))
        .route("/ui/assets/console.css", get(css))
        .route("/ui/assets/console.js", get(js))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/jobs", get(jobs))
        .route("/ui/jobs/{id}", get(job))
        .route("/ui/jobs/{id}/evidence", get(evidence))
        .route("/ui/jobs/{id}/approve", post(approve))
        .route("/ui/jobs/{id}/reject", post(reject))
        .route("/ui/jobs/{id}/cancel", post(cancel))
        .route("/ui/jobs/{id}/ack", post(ack))
        .route("/ui/approvals", get(approvals))
        .route("/ui/manual", get(manual))
        .route("/ui/connectors", get(connectors::page))
        .route("/ui/{*rest}", get(unknown).post(unknown))
        .with_state(console)
        .layer(DefaultBodyLimit::max(FORM_LIMIT))
        .layer(axum::middleware::from_fn(catch_panic))
        .layer(axum::middleware::from_fn(security_headers));
    with_body_deadline(routes, body_timeout)
}

// ---------------------------------------------------------------------------------------------
// Layers, errors

/// The headers every console answer carries.
async fn security_headers(req: Request, next: Next) -> Response {
    let tls = behind_tls(req.headers());
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    for (name, value) in [
        ("content-security-policy", CSP),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
        (
            "permissions-policy",
            "camera=(), microphone=(), geolocation=(), payment=()",
        ),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    r
}

/// A handler that panics answers an HTML 500 and the daemon goes on serving.
async fn catch_panic(req: Request, next: Next) -> Response {
    use futures_util::FutureExt;
    let path = req.uri().path().to_string();
    match std::panic::AssertUnwindSafe(next.run(req))
        .catch_unwind()
        .await
    {
        Ok(r) => r,
        Err(_) => {
            error!(%path, "a console handler panicked");
            Page::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error: the page failed; see the daemon's log",
            )
        }
    }
}

/// An answer of the console.
pub(crate) struct Page;

impl Page {
    pub(crate) fn html(status: StatusCode, body: maud::Markup) -> Response {
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body.into_string(),
        )
            .into_response()
    }

    pub(crate) fn error(status: StatusCode, message: &str) -> Response {
        Self::html(status, pages::error_page(status, message, None))
    }
}

/// An error answer of a console handler: a status and a message, as an HTML page.
#[derive(Debug)]
pub(crate) struct UiError {
    status: StatusCode,
    message: String,
}

impl UiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        UiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        Page::error(self.status, &self.message)
    }
}

impl From<revoke_store::StoreError> for UiError {
    fn from(e: revoke_store::StoreError) -> Self {
        let api = crate::error::ApiError::from(e);
        UiError::new(api.status, api.message)
    }
}

impl From<revoke_engine::EngineError> for UiError {
    fn from(e: revoke_engine::EngineError) -> Self {
        let api = crate::error::ApiError::from(e);
        UiError::new(api.status, api.message)
    }
}

async fn unknown(uri: axum::http::Uri) -> UiError {
    UiError::new(
        StatusCode::NOT_FOUND,
        format!("expected a page of the console, found {}", uri.path()),
    )
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        CSS,
    )
        .into_response()
}

async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        JS,
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Sign-in and the checks every page and form goes through

/// The signed-in session, or a redirect to the sign-in page.
async fn signed_in(c: &Console, headers: &HeaderMap) -> Result<Session, Redirect> {
    match c.sessions.get(headers, &c.app.tokens).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(Redirect::to("/ui/login")),
        Err(e) => {
            warn!(error = %e, "console: cannot read the session from the store");
            Err(Redirect::to("/ui/login"))
        }
    }
}

/// The form fields of a POST body (`application/x-www-form-urlencoded`).
fn form(body: &[u8]) -> BTreeMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// Whether the request's `Origin` (or, without one, `Sec-Fetch-Site`) says it came from a page
/// of this console: the origin's host is the request's `Host`, or the `X-Forwarded-Host` a proxy
/// set (a page of another site can set neither header on a form POST). A request with neither
/// (a non-browser client) passes on its CSRF token alone.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let Some(host) = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"))
        else {
            return false;
        };
        let ours = |name: header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .is_some_and(|v| !v.trim().is_empty() && v.trim().eq_ignore_ascii_case(host))
        };
        return ours(header::HOST) || ours(header::HeaderName::from_static("x-forwarded-host"));
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site) => site == "same-origin",
        None => true,
    }
}

/// A POST of a signed-in operator: same origin, the session's CSRF token, the operator scope.
async fn acting(
    c: &Console,
    headers: &HeaderMap,
    f: &BTreeMap<String, String>,
) -> Result<Session, UiError> {
    if !same_origin(headers) {
        return Err(UiError::new(
            StatusCode::FORBIDDEN,
            "expected a form of this console, found a request from another origin",
        ));
    }
    let Some(s) = c.sessions.get(headers, &c.app.tokens).await.map_err(|e| {
        UiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot read the session: {e}"),
        )
    })?
    else {
        return Err(UiError::new(
            StatusCode::UNAUTHORIZED,
            "expected a signed-in session, found none (sign in again)",
        ));
    };
    if !s.csrf_matches(f.get("csrf").map(String::as_str).unwrap_or("")) {
        return Err(UiError::new(
            StatusCode::FORBIDDEN,
            "expected the form's CSRF token of this session, found none or another",
        ));
    }
    if !s.may_act() {
        return Err(UiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "expected a token with the operator scope, found {} (read)",
                s.name
            ),
        ));
    }
    Ok(s)
}

/// The reason a form gives, required and bounded.
fn reason(f: &BTreeMap<String, String>) -> Result<String, UiError> {
    let r = f.get("reason").map(|r| r.trim()).unwrap_or("");
    if r.is_empty() {
        return Err(UiError::new(
            StatusCode::BAD_REQUEST,
            "reason: expected why, found an empty reason",
        ));
    }
    if r.chars().count() > MAX_REASON {
        return Err(UiError::new(
            StatusCode::BAD_REQUEST,
            format!("reason: expected at most {MAX_REASON} characters"),
        ));
    }
    Ok(r.to_string())
}

async fn login_page(State(c): State<Shared>, headers: HeaderMap) -> Response {
    if let Ok(Some(_)) = c.sessions.get(&headers, &c.app.tokens).await {
        return Redirect::to("/ui/jobs").into_response();
    }
    let csrf = session::random_token();
    let mut r = Page::html(StatusCode::OK, pages::login(&csrf, None));
    set(
        &mut r,
        &set_cookie(
            LOGIN_COOKIE,
            &csrf,
            std::time::Duration::from_secs(3600),
            behind_tls(&headers),
        ),
    );
    r
}

fn set(r: &mut Response, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

async fn login(State(c): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let f = form(&body);
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    let given = f.get("csrf").cloned().unwrap_or_default();
    if !same_origin(&headers)
        || expected.is_empty()
        || !bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_bytes(),
            given.as_bytes(),
        ))
    {
        return Page::error(
            StatusCode::FORBIDDEN,
            "expected the sign-in form of this console (its CSRF token and origin), found another request; reload the sign-in page",
        );
    }
    let token = f.get("token").map(|t| t.trim()).unwrap_or("");
    let Some(t) = c.app.token(token).filter(|_| !token.is_empty()) else {
        if let Some(suppressed) = c.app.refusals.allow("console:sign-in") {
            warn!(suppressed, "console sign-in refused: unknown token");
        }
        return Page::html(
            StatusCode::UNAUTHORIZED,
            pages::login(
                &expected,
                Some("expected a configured API token, found an unknown one"),
            ),
        );
    };
    let (id, s) = match c.sessions.create(&t.name, t.scope).await {
        Ok(Some(created)) => created,
        Ok(None) => {
            return Page::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many console sessions; try again later",
            )
        }
        Err(e) => {
            return Page::error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("cannot record the session: {e}"),
            )
        }
    };
    audit(
        &c,
        &s,
        "console.signed_in",
        None,
        serde_json::json!({ "scope": s.scope.as_str() }),
    )
    .await;
    info!(by = %s.actor(), scope = s.scope.as_str(), "console sign-in");
    let tls = behind_tls(&headers);
    let mut r = Redirect::to("/ui/jobs").into_response();
    set(
        &mut r,
        &set_cookie(SESSION_COOKIE, &id, session::SESSION_LIFETIME, tls),
    );
    set(
        &mut r,
        &set_cookie(LOGIN_COOKIE, "", std::time::Duration::ZERO, tls),
    );
    r
}

async fn logout(State(c): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let f = form(&body);
    let Ok(Some(s)) = c.sessions.get(&headers, &c.app.tokens).await else {
        return Redirect::to("/ui/login").into_response();
    };
    if !same_origin(&headers) || !s.csrf_matches(f.get("csrf").map(String::as_str).unwrap_or("")) {
        return Page::error(
            StatusCode::FORBIDDEN,
            "expected the form's CSRF token of this session, found none or another",
        );
    }
    if let Err(e) = c.sessions.remove(&headers).await {
        return Page::error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("cannot end the session: {e}"),
        );
    }
    audit(&c, &s, "console.signed_out", None, serde_json::json!({})).await;
    let mut r = Redirect::to("/ui/login").into_response();
    set(
        &mut r,
        &set_cookie(
            SESSION_COOKIE,
            "",
            std::time::Duration::ZERO,
            behind_tls(&headers),
        ),
    );
    r
}

/// An audit entry for an event that changes no state (sign-in, sign-out).
async fn audit(c: &Console, s: &Session, kind: &str, job: Option<&JobId>, data: serde_json::Value) {
    let entry = revoke_store::NewAuditEntry {
        at: Utc::now(),
        actor: s.actor(),
        kind: kind.into(),
        job_id: job.map(|j| j.0.clone()),
        action_id: None,
        data: data.to_string(),
    };
    if let Err(e) = c.app.store.append_audit(&entry).await {
        warn!(kind, error = %e, "console audit entry not written");
    }
}

// ---------------------------------------------------------------------------------------------
// Jobs

/// The filters of the jobs page, as the form sends them.
#[derive(Debug, Default, Clone)]
pub(crate) struct JobFilters {
    pub state: String,
    pub source: String,
    pub risk: String,
    pub subject: String,
    /// `YYYY-MM-DD`: received on or after that day (UTC).
    pub since: String,
    /// `YYYY-MM-DD`: received on or before that day (UTC).
    pub until: String,
    pub cursor: String,
}

impl JobFilters {
    fn parse(raw: Option<&str>) -> Self {
        let mut f = JobFilters::default();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            let v = v.trim().to_string();
            match &*k {
                "state" => f.state = v,
                "source" => f.source = v,
                "risk" => f.risk = v,
                "subject" => f.subject = v,
                "since" => f.since = v,
                "until" => f.until = v,
                "cursor" => f.cursor = v,
                _ => {}
            }
        }
        f
    }

    /// The query string of these filters with another cursor.
    pub fn with_cursor(&self, cursor: &str) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("state", &self.state),
            ("source", &self.source),
            ("risk", &self.risk),
            ("subject", &self.subject),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if !v.is_empty() {
                s.append_pair(k, v);
            }
        }
        if !cursor.is_empty() {
            s.append_pair("cursor", cursor);
        }
        s.finish()
    }

    fn query(&self) -> Result<JobQuery, String> {
        let mut q = JobQuery {
            limit: PAGE_SIZE,
            ..JobQuery::default()
        };
        if !self.state.is_empty() {
            q.states = vec![JobState::parse(&self.state)
                .ok_or_else(|| format!("state: expected a job state, found {:?}", self.state))?];
        }
        if !self.source.is_empty() {
            q.source = Some(self.source.clone());
        }
        if !self.subject.is_empty() {
            q.subject = Some(self.subject.clone());
        }
        let day = |name: &str, v: &str, add: i64| -> Result<Option<DateTime<Utc>>, String> {
            if v.is_empty() {
                return Ok(None);
            }
            let d = NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map_err(|_| format!("{name}: expected a date (2030-01-31), found {v:?}"))?;
            let d = d + chrono::Duration::days(add);
            Ok(d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()))
        };
        q.since = day("since", &self.since, 0)?;
        q.until = day("until", &self.until, 1)?;
        if let (Some(a), Some(b)) = (q.since, q.until) {
            if a >= b {
                return Err("until: expected a day on or after since".into());
            }
        }
        if !self.risk.is_empty() && !matches!(self.risk.as_str(), "high" | "standard") {
            return Err(format!(
                "risk: expected high or standard, found {:?}",
                self.risk
            ));
        }
        if !self.cursor.is_empty() {
            q.after =
                Some(JobCursor::parse(&self.cursor).ok_or_else(|| {
                    "cursor: expected the cursor of a next-page link".to_string()
                })?);
        }
        Ok(q)
    }
}

/// One job as the listing shows it.
#[derive(Debug)]
pub(crate) struct JobRow {
    pub q: QueuedJob,
    /// Access removal past the SLA (finished late, or still open past it).
    pub sla_breach: bool,
}

/// Whether a job's access removal is past the SLA: its contain and revoke actions finished
/// later than termination + SLA, or are still open past it (evidence's `late`, per job); a job
/// not yet planned past the deadline is open too.
pub(crate) fn sla_breach(
    q: &QueuedJob,
    records: &[ActionRecord],
    sla: chrono::Duration,
    now: DateTime<Utc>,
) -> bool {
    let deadline = q.job.effective_at + sla;
    match q.state {
        JobState::Scheduled | JobState::AwaitingApproval => now > deadline,
        JobState::Planned => records
            .iter()
            .filter(|r| r.action.job_id == q.job.id)
            .filter(|r| {
                matches!(
                    r.action.phase,
                    revoke_core::Phase::Contain | revoke_core::Phase::Revoke
                )
            })
            .any(|r| match (r.state, r.finished_at) {
                (s, Some(f)) if s.is_success() => f > deadline,
                (ActionState::Cancelled, _) => false,
                _ => now > deadline,
            }),
        _ => false,
    }
}

fn sla(c: &Console) -> chrono::Duration {
    chrono::Duration::hours(c.app.config.evidence.sla_hours as i64)
}

async fn jobs(
    State(c): State<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, UiError> {
    let s = match signed_in(&c, &headers).await {
        Ok(s) => s,
        Err(r) => return Ok(r.into_response()),
    };
    let filters = JobFilters::parse(raw.as_deref());
    let query = filters
        .query()
        .map_err(|m| UiError::new(StatusCode::BAD_REQUEST, m))?;
    let page = c.app.store.list_jobs(&query).await?;
    let now = Utc::now();
    let mut rows = Vec::new();
    let mut plans: BTreeMap<String, Vec<ActionRecord>> = BTreeMap::new();
    for q in page.jobs {
        if !filters.risk.is_empty() && q.job.risk.to_string() != filters.risk {
            continue;
        }
        let records = match &q.plan_id {
            Some(p) if !plans.contains_key(&p.0) => {
                let r = c.app.store.actions(p).await?;
                plans.entry(p.0.clone()).or_insert(r)
            }
            Some(p) => plans.entry(p.0.clone()).or_default(),
            None => &mut Vec::new(),
        };
        let sla_breach = sla_breach(&q, records, sla(&c), now);
        rows.push(JobRow { q, sla_breach });
    }
    let counts = state_counts(&c).await?;
    let next = page.next.map(|n| filters.with_cursor(&n.encode()));
    Ok(Page::html(
        StatusCode::OK,
        pages::jobs(&s, &filters, &rows, &counts, next.as_deref()),
    ))
}

/// Jobs per state, counted up to `COUNT_CAP` each (`None`: more than that).
pub(crate) const COUNT_CAP: u32 = 1000;

async fn state_counts(c: &Console) -> Result<Vec<(JobState, Option<usize>)>, UiError> {
    let mut out = Vec::new();
    for st in JobState::ALL {
        let page = c
            .app
            .store
            .list_jobs(&JobQuery {
                states: vec![st],
                limit: COUNT_CAP,
                ..JobQuery::default()
            })
            .await?;
        out.push((st, page.next.is_none().then_some(page.jobs.len())));
    }
    Ok(out)
}

/// Everything the job page shows.
#[derive(Debug)]
pub(crate) struct JobView {
    pub q: QueuedJob,
    pub plan: Option<revoke_core::Plan>,
    pub evidence: revoke_engine::Evidence,
    pub records: Vec<ActionRecord>,
    /// Access removal past the SLA, as the listing flags it.
    pub sla_breach: bool,
}

async fn job(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let s = match signed_in(&c, &headers).await {
        Ok(s) => s,
        Err(r) => return Ok(r.into_response()),
    };
    let job = JobId(id);
    let Some(q) = c.app.store.queued_job(&job).await? else {
        return Err(UiError::new(
            StatusCode::NOT_FOUND,
            format!("not found: job {job}"),
        ));
    };
    let (plan, records) = match &q.plan_id {
        Some(p) => (
            c.app.store.plan(p).await?,
            c.app
                .store
                .actions(p)
                .await?
                .into_iter()
                .filter(|r| r.action.job_id == job)
                .collect(),
        ),
        None => (None, Vec::new()),
    };
    let sla_std = std::time::Duration::from_secs(c.app.config.evidence.sla_hours * 3600);
    let evidence =
        revoke_engine::evidence::collect(c.app.store.as_ref(), &job, sla_std, Utc::now()).await?;
    let sla_breach = sla_breach(&q, &records, sla(&c), Utc::now());
    let view = JobView {
        q,
        plan,
        evidence,
        records,
        sla_breach,
    };
    Ok(Page::html(StatusCode::OK, pages::job(&s, &view)))
}

async fn evidence(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, UiError> {
    if let Err(r) = signed_in(&c, &headers).await {
        return Ok(r.into_response());
    }
    let f = form(raw.unwrap_or_default().as_bytes());
    let name = f.get("format").map(String::as_str).unwrap_or("json");
    let format = EvidenceFormat::parse(name).ok_or_else(|| {
        UiError::new(
            StatusCode::BAD_REQUEST,
            format!("format: expected json, jsonl, csv or md, found {name:?}"),
        )
    })?;
    let sla_std = std::time::Duration::from_secs(c.app.config.evidence.sla_hours * 3600);
    let job = JobId(id);
    let ev =
        revoke_engine::evidence::collect(c.app.store.as_ref(), &job, sla_std, Utc::now()).await?;
    let body = crate::error::blocking("rendering evidence", move || ev.render(format))
        .await
        .map_err(|e| UiError::new(e.status, e.message))?;
    let safe: String = job
        .0
        .chars()
        .filter(|ch| ch.is_ascii_alphanumeric() || *ch == '-')
        .take(64)
        .collect();
    let disposition = format!("attachment; filename=\"evidence-{safe}.{name}\"");
    let mut r = ([(header::CONTENT_TYPE, format.content_type())], body).into_response();
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

// ---------------------------------------------------------------------------------------------
// Actions: the API's store calls, as the signed-in token

/// Where to go after a form: the page it names (`back`, a console path), else the job.
fn back(f: &BTreeMap<String, String>, job: &JobId) -> Redirect {
    match f.get("back") {
        // A path of this console only: no other host, no header-breaking characters.
        Some(b)
            if b.starts_with("/ui/") && b.bytes().all(|c| c.is_ascii_graphic() && c != b'\\') =>
        {
            Redirect::to(b)
        }
        _ => Redirect::to(&format!("/ui/jobs/{}", urlencode(&job.0))),
    }
}

pub(crate) fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn decide(
    c: &Console,
    headers: &HeaderMap,
    id: String,
    body: &[u8],
    approve: bool,
) -> Result<Response, UiError> {
    let f = form(body);
    let s = acting(c, headers, &f).await?;
    let why = reason(&f)?;
    let actor = s.actor();
    let job = JobId(id);
    // The store writes the reason into the decision's own audit entry, in its transaction.
    let q = c
        .app
        .store
        .decide_job_because(&job, approve, &why, &actor, Utc::now())
        .await?;
    let outcome = if approve { "approved" } else { "rejected" };
    info!(job_id = %q.job.id, by = %actor, outcome, "held job decided in the console");
    if !approve {
        revoke_telemetry::job_finished(&q.job.source, "rejected");
    }
    c.app.wake_scheduler.notify_one();
    Ok(back(&f, &job).into_response())
}

async fn approve(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    decide(&c, &headers, id, &body, true).await
}

async fn reject(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    decide(&c, &headers, id, &body, false).await
}

async fn cancel(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    let f = form(&body);
    let s = acting(&c, &headers, &f).await?;
    let why = reason(&f)?;
    let actor = s.actor();
    let job = JobId(id);
    let done = c
        .app
        .store
        .cancel_jobs(
            &CancelTarget::Job(job.clone()),
            &why,
            None,
            &actor,
            Utc::now(),
        )
        .await?;
    info!(job_id = %job, by = %actor, actions = done.actions.len(), "job cancelled in the console");
    if let Some(q) = c.app.store.queued_job(&job).await? {
        revoke_telemetry::job_finished(&q.job.source, "cancelled");
    }
    Ok(back(&f, &job).into_response())
}

async fn ack(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    let f = form(&body);
    let s = acting(&c, &headers, &f).await?;
    let actor = s.actor();
    let job = JobId(id);
    let action = f.get("action").cloned().unwrap_or_default();
    let Some(plan) = c.app.store.plan_of_job(&job).await? else {
        return Err(UiError::new(
            StatusCode::NOT_FOUND,
            format!("not found: job {job} has no plan yet"),
        ));
    };
    let known = c
        .app
        .store
        .actions(&plan)
        .await?
        .into_iter()
        .any(|r| r.action.job_id == job && r.action.id.0 == action);
    if !known {
        return Err(UiError::new(
            StatusCode::NOT_FOUND,
            format!("not found: action {action:?} of job {job}"),
        ));
    }
    c.app
        .store
        .acknowledge(&job, &ActionId(action.clone()), &actor, Utc::now())
        .await?;
    info!(job_id = %job, action_id = %action, by = %actor, "manual step acknowledged in the console");
    c.app.wake_workers.notify_one();
    Ok(back(&f, &job).into_response())
}

// ---------------------------------------------------------------------------------------------
// Approvals and manual steps across jobs

/// Jobs read at most for the approvals and manual-steps pages.
pub(crate) const ACROSS_LIMIT: u32 = 500;

async fn approvals(State(c): State<Shared>, headers: HeaderMap) -> Result<Response, UiError> {
    let s = match signed_in(&c, &headers).await {
        Ok(s) => s,
        Err(r) => return Ok(r.into_response()),
    };
    let page = c
        .app
        .store
        .list_jobs(&JobQuery {
            states: vec![JobState::AwaitingApproval],
            limit: ACROSS_LIMIT,
            ..JobQuery::default()
        })
        .await?;
    let batches = c.app.store.batches(true, 100).await?;
    Ok(Page::html(
        StatusCode::OK,
        pages::approvals(&s, &page.jobs, page.next.is_some(), &batches),
    ))
}

/// A manual step waiting for a person, with its job.
#[derive(Debug)]
pub(crate) struct Waiting {
    pub q: QueuedJob,
    pub rec: ActionRecord,
}

async fn manual(State(c): State<Shared>, headers: HeaderMap) -> Result<Response, UiError> {
    let s = match signed_in(&c, &headers).await {
        Ok(s) => s,
        Err(r) => return Ok(r.into_response()),
    };
    let page = c
        .app
        .store
        .list_jobs(&JobQuery {
            states: vec![JobState::Planned],
            limit: ACROSS_LIMIT,
            ..JobQuery::default()
        })
        .await?;
    let mut plans: BTreeMap<String, Vec<ActionRecord>> = BTreeMap::new();
    let mut waiting = Vec::new();
    for q in &page.jobs {
        let Some(p) = &q.plan_id else { continue };
        if !plans.contains_key(&p.0) {
            let r = c.app.store.actions(p).await?;
            plans.insert(p.0.clone(), r);
        }
        for rec in plans.get(&p.0).into_iter().flatten() {
            if rec.action.job_id == q.job.id && rec.state == ActionState::AwaitingAck {
                waiting.push(Waiting {
                    q: q.clone(),
                    rec: rec.clone(),
                });
            }
        }
    }
    Ok(Page::html(
        StatusCode::OK,
        pages::manual(&s, &waiting, page.next.is_some()),
    ))
}
