//! The HTTP surface: intake endpoints, the JSON API, health, metrics and the OpenAPI document.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use chrono::Utc;
use revoke_config::TokenScope;
use revoke_core::{ActionId, JobId};
use revoke_engine::EvidenceFormat;
use revoke_intake::{EventKind, Intake, NormalizedEvent};
use revoke_store::{CancelTarget, IntakeRef, JobState};
use serde::Deserialize;
use tracing::{error, info, warn};

use crate::auth::authorize;
use crate::error::blocking;
pub use crate::error::ApiError;
use crate::extract::{
    lowercase_first, read_body, with_body_deadline, ApiBody, BodyError, Path, Query, API_BODY_LIMIT,
};
use crate::jobs_api::{self, approve_batch, list_jobs};
use crate::state::AppState;
use crate::types::{
    CancelAnswer, CancelRequest, DecideRequest, ErrorBody, IntakeAnswer, JobDetail, JobSummary,
    Progress, Status, SubmitJob, Submitted,
};

/// The OpenAPI description of this API, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

pub fn router(state: Arc<AppState>) -> Router {
    let body_timeout = state.config.daemon.body_read_timeout();
    let console = crate::ui::router(state.clone()); // the operator console at /ui (HTML errors)
    let routes = Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/intake/{source}", any(intake))
        .route("/intake/{source}/{*rest}", any(intake))
        .route("/api/v1/status", get(status))
        .route("/api/v1/jobs", get(list_jobs).post(submit_job))
        .route("/api/v1/jobs/{id}", get(get_job))
        .route("/api/v1/jobs/{id}/approve", post(approve))
        .route("/api/v1/jobs/{id}/reject", post(reject))
        .route("/api/v1/jobs/{id}/cancel", post(cancel))
        .route("/api/v1/jobs/{id}/actions/{action}/ack", post(ack))
        .route("/api/v1/jobs/{id}/evidence", get(evidence))
        .route("/api/v1/batches", get(jobs_api::list_batches))
        .route("/api/v1/batches/{id}", get(jobs_api::get_batch))
        .route("/api/v1/batches/{id}/approve", post(approve_batch))
        .route("/api/v1/batches/{id}/reject", post(jobs_api::reject_batch))
        .fallback(not_found)
        .with_state(state);
    harden(routes, body_timeout).merge(console)
}

/// The layers every route gets: a panic answers a JSON 500, every other error answer is JSON
/// too, and a request body must arrive within `body_timeout` of the head.
pub fn harden(routes: Router, body_timeout: std::time::Duration) -> Router {
    let routes = routes
        // Intake reads its bodies itself (each source's own limit, see `read_body`) and so does
        // `ApiBody`; this bounds any other extractor that would buffer a body.
        .layer(DefaultBodyLimit::max(API_BODY_LIMIT))
        .layer(axum::middleware::from_fn(catch_panic))
        .layer(axum::middleware::from_fn(json_errors));
    with_body_deadline(routes, body_timeout)
}

// ---------------------------------------------------------------------------------------------
// Errors

/// Every unknown route.
async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "expected a route of this API (see /openapi.json), found {method} {}",
            uri.path()
        ),
    )
}

/// A handler that panics answers a JSON 500 instead of dropping the connection.
async fn catch_panic(req: Request, next: Next) -> Response {
    use futures_util::FutureExt;
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    match std::panic::AssertUnwindSafe(next.run(req))
        .catch_unwind()
        .await
    {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            error!(%method, %path, panic = %what, "a request handler panicked");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error: the request handler failed; see the daemon's log",
            )
            .into_response()
        }
    }
}

/// Health and metrics answer plain text on purpose (probes and Prometheus read them).
fn is_plain_text_route(path: &str) -> bool {
    matches!(path, "/livez" | "/readyz" | "/metrics")
}

/// Largest error body of a layer below that is carried over into the JSON message.
const ERROR_TEXT_LIMIT: usize = 4096;

/// Turns an error answer that is not JSON (axum's own rejections: 405, 413 from
/// `DefaultBodyLimit`, query and path errors of extractors not wrapped here) into an
/// [`ErrorBody`], keeping its status and headers (`Allow` on a 405).
async fn json_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let r = next.run(req).await;
    let is_json = r
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"));
    if r.status().as_u16() < 400 || is_json || is_plain_text_route(&path) {
        return r;
    }
    let (mut parts, body) = r.into_parts();
    let text = axum::body::to_bytes(body, ERROR_TEXT_LIMIT)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if parts.status == StatusCode::METHOD_NOT_ALLOWED {
        let allow = parts
            .headers
            .get(header::ALLOW)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        format!("{path}: expected one of the methods {allow}, found {method}")
    } else if text.is_empty() {
        format!(
            "{}: {method} {path}",
            parts
                .status
                .canonical_reason()
                .unwrap_or("error")
                .to_lowercase()
        )
    } else {
        lowercase_first(&text)
    };
    let body = serde_json::to_vec(&ErrorBody { error: message }).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}

// ---------------------------------------------------------------------------------------------
// Health, metrics, OpenAPI

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if *state.stop.borrow() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    match state.store.ready().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")).into_response(),
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    match &state.metrics {
        Some(m) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            m.render(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are off\n").into_response(),
    }
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

// ---------------------------------------------------------------------------------------------
// Intake

#[derive(Debug, Deserialize)]
struct IntakePath {
    source: String,
    #[serde(default)]
    rest: Option<String>,
}

/// Intake bodies up to this size are authenticated and parsed on the async worker (an HMAC over
/// 8 KiB per configured secret and a parse of it take microseconds); larger ones on the blocking
/// pool.
const INLINE_BODY_BYTES: usize = 8 * 1024;

/// Every intake request: authenticate the raw body, parse, then record, deduplicated.
async fn intake(
    State(state): State<Arc<AppState>>,
    Path(p): Path<IntakePath>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(src) = state.sources.get(&p.source) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            format!("expected a configured intake source, found {:?}", p.source),
        )
        .into_response();
    };
    let body = match read_body(&headers, body, src.source.max_body_bytes()).await {
        Ok(b) => b,
        Err(BodyError::TooLarge { limit }) => {
            return refused(
                &state,
                &p.source,
                &revoke_intake::IntakeError::TooLarge { limit },
            )
        }
        Err(BodyError::Broken(m)) => {
            return refused(&state, &p.source, &revoke_intake::IntakeError::Malformed(m))
        }
        Err(BodyError::Timeout(m)) => {
            revoke_telemetry::webhook_received(&p.source, "timeout");
            if let Some(suppressed) = state.refusals.allow(&format!("{}:timeout", p.source)) {
                warn!(source = %p.source, status = 408, error = %m, suppressed, "intake request refused");
            }
            let mut r = ApiError::new(StatusCode::REQUEST_TIMEOUT, m).into_response();
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
    };
    let now = Utc::now();
    let body_len = body.len();
    let mut path = p.rest.map(|r| format!("/{r}")).unwrap_or_default();
    if let Some(q) = uri.query() {
        path = format!("{path}?{q}");
    }
    // Signature checks (an HMAC over the whole body per secret) and parsing of a large body run
    // on the blocking pool: a flood of large unsigned requests must not stall health checks and
    // other requests. A small body costs a few microseconds, less than the trip to that pool
    // and back, and is handled in place.
    let handle = {
        let (state, name) = (state.clone(), p.source.clone());
        move || {
            let req = revoke_intake::Request {
                method: method.as_str(),
                path: &path,
                headers: &headers,
                body: &body,
                now,
            };
            state.sources.get(&name).map(|src| src.source.handle(&req))
        }
    };
    let handled = if body_len <= INLINE_BODY_BYTES {
        Ok(handle())
    } else {
        blocking("checking and parsing an intake request", handle).await
    };
    let intake = match handled {
        Ok(Some(Ok(i))) => i,
        Ok(Some(Err(e))) => return refused(&state, &p.source, &e),
        Ok(None) => {
            return ApiError::new(
                StatusCode::NOT_FOUND,
                format!("expected a configured intake source, found {:?}", p.source),
            )
            .into_response()
        }
        Err(e) => {
            revoke_telemetry::webhook_received(&p.source, "error");
            return e.into_response();
        }
    };
    match intake {
        Intake::Probe { reason } => {
            // Anyone can send a vendor's set-up probe: it is answered, counted and (rate-limited)
            // logged, and writes nothing to the store.
            revoke_telemetry::webhook_received(&p.source, "probe");
            if let Some(suppressed) = state.refusals.allow(&format!("{}:probe", p.source)) {
                info!(source = %p.source, reason = %reason, suppressed, "intake probe answered; nothing stored");
            }
            (
                StatusCode::ACCEPTED,
                Json(IntakeAnswer {
                    ignored: Some(reason),
                    ..IntakeAnswer::default()
                }),
            )
                .into_response()
        }
        Intake::Challenge(body) => {
            revoke_telemetry::webhook_received(&p.source, "challenge");
            info!(source = %p.source, "intake verification answered");
            Json(body).into_response()
        }
        Intake::Ignored {
            source_event_id,
            reason,
        } => {
            revoke_telemetry::webhook_received(&p.source, "ignored");
            let entry = revoke_store::NewAuditEntry {
                at: now,
                actor: format!("intake:{}", p.source),
                kind: "intake.ignored".into(),
                job_id: None,
                action_id: None,
                data: serde_json::json!({ "source": p.source, "source_event_id": source_event_id, "reason": reason }).to_string(),
            };
            if let Err(e) = state.store.append_audit(&entry).await {
                return ApiError::from(e).into_response();
            }
            info!(source = %p.source, reason = %reason, "intake event ignored");
            (
                StatusCode::ACCEPTED,
                Json(IntakeAnswer {
                    ignored: Some(reason),
                    ..IntakeAnswer::default()
                }),
            )
                .into_response()
        }
        other => {
            let events = other.into_events();
            let reply = events.iter().find_map(|e| e.reply.clone());
            let mut answer = IntakeAnswer::default();
            let mut any_new = false;
            let mut due_now = false;
            for ev in &events {
                match record_event(&state, &src.policy, ev).await {
                    Ok(Recorded::Job(s, due)) => {
                        any_new |= !s.duplicate;
                        due_now |= due;
                        answer.jobs.push(s);
                    }
                    Ok(Recorded::Cancelled(ids)) => {
                        any_new = true;
                        answer.cancelled.extend(ids);
                    }
                    Ok(Recorded::Duplicate) => {}
                    Err(e) => {
                        let label = if e.status == StatusCode::CONFLICT {
                            "conflict"
                        } else {
                            "error"
                        };
                        revoke_telemetry::webhook_received(&p.source, label);
                        return e.into_response();
                    }
                }
            }
            let result = if any_new { "accepted" } else { "duplicate" };
            revoke_telemetry::webhook_received(&p.source, result);
            // Only a job that can be planned now needs the scheduler at once; one held for
            // approval or due later is found by its poll (a flood of held jobs would otherwise
            // keep it claiming and counting beside the intake writer).
            if due_now {
                state.wake_scheduler.notify_one();
            }
            if let Some(reply) = reply {
                return Json(reply).into_response();
            }
            let status = if any_new {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            (status, Json(answer)).into_response()
        }
    }
}

/// How often at most one line per source and reason is logged for refused or unauthenticated
/// intake requests (the next line says how many were held back).
pub const INTAKE_LOG_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

/// A refused intake request: counted every time, logged at most once per source and reason per
/// [`INTAKE_LOG_WINDOW`] (unauthenticated floods must not grow the logs).
fn refused(state: &AppState, source: &str, e: &revoke_intake::IntakeError) -> Response {
    let label = e.result_label();
    revoke_telemetry::webhook_received(source, label);
    if let Some(suppressed) = state.refusals.allow(&format!("{source}:{label}")) {
        warn!(source = %source, status = e.status(), error = %e, suppressed, "intake request refused");
    }
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    ApiError::new(status, e.to_string()).into_response()
}

enum Recorded {
    /// The job, and whether it is new, scheduled and due now.
    Job(Submitted, bool),
    Cancelled(Vec<String>),
    Duplicate,
}

/// Records one authentic event: a termination becomes a job (once), a cancellation cancels the
/// person's open jobs (once).
async fn record_event(
    state: &AppState,
    policy: &str,
    ev: &NormalizedEvent,
) -> Result<Recorded, ApiError> {
    let now = Utc::now();
    let actor = format!("intake:{}", ev.source);
    match ev.kind {
        EventKind::Termination => {
            if let Some(ours) = ev
                .client_domain
                .as_deref()
                .and_then(|d| revoke_core::ClientDomain::parse(d).ok())
                .and_then(|d| state.config.protected.domain_for(&d).map(str::to_string))
            {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "event {:?}: client domain {:?} overlaps the protected domain {ours:?}",
                        ev.source_event_id,
                        ev.client_domain.as_deref().unwrap_or_default()
                    ),
                ));
            }
            let Some(new) = crate::state::job_from_event(ev, policy) else {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "expected an employee id, email, username or client domain in the event, found none",
                ));
            };
            let risk = new.job.risk;
            let due = new.due_at <= Utc::now();
            let s = state.intake.submit(new, actor).await?;
            if !s.duplicate {
                info!(job_id = %s.job_id, source = %ev.source, source_event_id = %ev.source_event_id, risk = %risk, state = %s.state, "termination received");
                if s.state == JobState::AwaitingApproval {
                    revoke_telemetry::blast_radius_tripped(&ev.source);
                    warn!(job_id = %s.job_id, source = %ev.source, recent_jobs = s.recent_jobs, limit = state.guard.max_jobs, "blast-radius guard: job held for approval");
                }
            }
            let due = due && !s.duplicate && s.state == JobState::Scheduled;
            Ok(Recorded::Job(
                Submitted {
                    job_id: s.job_id.0,
                    state: s.state.as_str().to_string(),
                    duplicate: s.duplicate,
                },
                due,
            ))
        }
        EventKind::Cancellation => {
            let target = CancelTarget::Subject {
                employee_id: ev.employee_id.clone(),
                email: ev.email.clone(),
            };
            let reason = format!(
                "termination cancelled by {} event {}{}",
                ev.source,
                ev.source_event_id,
                ev.reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            );
            let intake = IntakeRef {
                source: ev.source.clone(),
                event_id: ev.source_event_id.clone(),
                body_sha256: Some(ev.body_sha256.clone()),
            };
            let c = state
                .store
                .cancel_jobs(&target, &reason, Some(&intake), &actor, now)
                .await?;
            if c.duplicate {
                return Ok(Recorded::Duplicate);
            }
            for j in &c.job_ids {
                revoke_telemetry::job_finished(&ev.source, "cancelled");
                info!(job_id = %j, source = %ev.source, actions = c.actions.len(), "job cancelled by the source");
            }
            Ok(Recorded::Cancelled(
                c.job_ids.into_iter().map(|j| j.0).collect(),
            ))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// API

async fn status(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<Status>, ApiError> {
    authorize(&state, &headers, TokenScope::Read)?;
    let queue = state.store.queue_stats(Utc::now()).await?;
    Ok(Json(Status {
        version: env!("CARGO_PKG_VERSION").to_string(),
        queue,
    }))
}

async fn submit_job(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ApiBody(body): ApiBody,
) -> Result<Response, ApiError> {
    let actor = authorize(&state, &headers, TokenScope::Operator)?;
    if body.len() > API_BODY_LIMIT {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "expected at most {API_BODY_LIMIT} bytes, found {}",
                body.len()
            ),
        ));
    }
    let req: SubmitJob = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("expected a job as JSON: {e}"),
        )
    })?;
    for (field, value) in [
        ("employee_id", &req.employee_id),
        ("email", &req.email),
        ("username", &req.username),
    ] {
        if let Some(v) = value {
            revoke_core::identifier::check(field, v)
                .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
        }
    }
    let client = match &req.client_domain {
        None => None,
        Some(_) if req.employee_id.is_some() || req.email.is_some() || req.username.is_some() => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "expected either a person (employee_id, email, username) or a client_domain, found both",
            ));
        }
        Some(d) => {
            let domain = revoke_core::ClientDomain::parse(d)
                .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
            if let Some(ours) = state.config.protected.domain_for(&domain) {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("client_domain: {domain:?} overlaps the protected domain {ours:?}"),
                ));
            }
            Some(domain)
        }
    };
    let policy = req
        .policy
        .clone()
        .unwrap_or_else(|| AppState::default_policy().to_string());
    if state.config.policy(&policy).is_none() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("policy: expected a configured policy, found {policy:?}"),
        ));
    }
    let now = Utc::now();
    let body_sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body));
    let ev = NormalizedEvent {
        source: "api".into(),
        source_kind: "api".into(),
        source_event_id: req
            .idempotency_key
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        kind: EventKind::Termination,
        employee_id: req.employee_id.clone(),
        email: req.email.clone(),
        username: req.username.clone(),
        client_domain: client.map(|d| d.to_string()),
        effective_at: req.effective_at.unwrap_or_else(|| now.fixed_offset()),
        reason: req.reason.clone(),
        department: None,
        involuntary: req.involuntary,
        high_risk: state
            .risk
            .is_high(req.involuntary, req.reason.as_deref(), req.high_risk),
        received_at: now,
        body_sha256,
        reply: None,
    };
    let Some(mut new) = crate::state::job_from_event(&ev, &policy) else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "expected an employee_id, email, username or client_domain, found none",
        ));
    };
    new.job.requested_by = actor.clone();
    let s = state.intake.submit(new, actor).await?;
    if !s.duplicate && s.state == JobState::AwaitingApproval {
        revoke_telemetry::blast_radius_tripped("api");
        warn!(job_id = %s.job_id, recent_jobs = s.recent_jobs, "blast-radius guard: job held for approval");
    }
    state.wake_scheduler.notify_one();
    let status = if s.duplicate {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((
        status,
        Json(Submitted {
            job_id: s.job_id.0,
            state: s.state.as_str().to_string(),
            duplicate: s.duplicate,
        }),
    )
        .into_response())
}

async fn get_job(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<JobDetail>, ApiError> {
    authorize(&state, &headers, TokenScope::Read)?;
    let job = JobId(id);
    let q = state
        .store
        .queued_job(&job)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("not found: job {job}")))?;
    let (fingerprint, records) = match &q.plan_id {
        Some(p) => (
            state.store.plan(p).await?.map(|p| p.fingerprint),
            state
                .store
                .actions(p)
                .await?
                .into_iter()
                .filter(|r| r.action.job_id == job)
                .collect(),
        ),
        None => (None, Vec::new()),
    };
    Ok(Json(JobDetail {
        summary: JobSummary::of(&q),
        plan_fingerprint: fingerprint,
        progress: Progress::of(&records),
        actions: records.iter().map(|r| r.result_line()).collect(),
    }))
}

async fn decide(
    state: &AppState,
    headers: &HeaderMap,
    id: String,
    approve: bool,
    body: &[u8],
) -> Result<Json<JobSummary>, ApiError> {
    let actor = authorize(state, headers, TokenScope::Operator)?;
    let req: DecideRequest = if body.iter().all(u8::is_ascii_whitespace) {
        DecideRequest::default()
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("expected no body or {{\"reason\": \"...\"}}: {e}"),
            )
        })?
    };
    let q = state
        .store
        .decide_job_because(&JobId(id), approve, &req.reason, &actor, Utc::now())
        .await?;
    let outcome = if approve { "approved" } else { "rejected" };
    info!(job_id = %q.job.id, by = %actor, outcome, "held job decided");
    if !approve {
        revoke_telemetry::job_finished(&q.job.source, "rejected");
    }
    state.wake_scheduler.notify_one();
    Ok(Json(JobSummary::of(&q)))
}

async fn approve(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiBody(body): ApiBody,
) -> Result<Json<JobSummary>, ApiError> {
    decide(&state, &headers, id, true, &body).await
}

async fn reject(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiBody(body): ApiBody,
) -> Result<Json<JobSummary>, ApiError> {
    decide(&state, &headers, id, false, &body).await
}

async fn cancel(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiBody(body): ApiBody,
) -> Result<Json<CancelAnswer>, ApiError> {
    let actor = authorize(&state, &headers, TokenScope::Operator)?;
    let req: CancelRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("expected {{\"reason\": \"...\"}}: {e}"),
        )
    })?;
    if req.reason.trim().is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "reason: expected why the job is cancelled, found an empty string",
        ));
    }
    let job = JobId(id);
    let c = state
        .store
        .cancel_jobs(
            &CancelTarget::Job(job.clone()),
            &req.reason,
            None,
            &actor,
            Utc::now(),
        )
        .await?;
    info!(job_id = %job, by = %actor, actions = c.actions.len(), "job cancelled");
    if let Some(q) = state.store.queued_job(&job).await? {
        revoke_telemetry::job_finished(&q.job.source, "cancelled");
    }
    Ok(Json(CancelAnswer {
        job_id: job.0,
        cancelled_actions: c.actions.into_iter().map(|a| a.0).collect(),
    }))
}

async fn ack(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
) -> Result<Json<revoke_store::ResultLine>, ApiError> {
    let actor = authorize(&state, &headers, TokenScope::Operator)?;
    let job = JobId(id);
    let plan = state.store.plan_of_job(&job).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("not found: job {job} has no plan yet"),
        )
    })?;
    // The full action id, or the bare manual step id (`collect-laptop`).
    let records = state.store.actions(&plan).await?;
    let rec = records
        .iter()
        .filter(|r| r.action.job_id == job)
        .find(|r| {
            r.action.id.0 == action
                || (r.action.is_manual() && r.action.id.0.starts_with(&format!("manual.{action}.")))
        })
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("not found: action {action:?} of job {job}"),
            )
        })?;
    let id = ActionId(rec.action.id.0.clone());
    state
        .store
        .acknowledge(&job, &id, &actor, Utc::now())
        .await?;
    let rec = state.store.action(&id).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("not found: action {id} was acknowledged but is no longer in the store"),
        )
    })?;
    Ok(Json(rec.result_line()))
}

#[derive(Debug, Deserialize)]
struct EvidenceQuery {
    format: Option<String>,
}

async fn evidence(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<EvidenceQuery>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, TokenScope::Read)?;
    let format = match q.format.as_deref() {
        None => EvidenceFormat::Json,
        Some(f) => EvidenceFormat::parse(f).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("format: expected json, jsonl, csv or md, found {f:?}"),
            )
        })?,
    };
    let sla = std::time::Duration::from_secs(state.config.evidence.sla_hours * 3600);
    let ev =
        revoke_engine::evidence::collect(state.store.as_ref(), &JobId(id), sla, Utc::now()).await?;
    // A big job's evidence (every action and audit entry) is rendered off the async workers.
    let body = blocking("rendering evidence", move || ev.render(format)).await?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Serves `routes` with the daemon's layers and accept loop; returns the address and the stop.
    async fn serve(routes: Router) -> (std::net::SocketAddr, tokio::sync::watch::Sender<bool>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let limits = crate::serve::Limits {
            header_read_timeout: std::time::Duration::from_secs(5),
            max_connections: 8,
            shutdown_grace: std::time::Duration::from_secs(5),
        };
        let app = harden(routes, std::time::Duration::from_secs(5));
        tokio::spawn(crate::serve::serve(listener, app, limits, stopped));
        (addr, stop)
    }

    async fn fetch(addr: std::net::SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut answer = String::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(20),
            s.read_to_string(&mut answer),
        )
        .await
        .unwrap()
        .unwrap();
        answer
    }

    async fn boom() -> &'static str {
        panic!("boom")
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_a_json_500_and_the_server_goes_on() {
        let routes = Router::new()
            .route("/boom", get(boom))
            .route(
                "/boom-blocking",
                get(|| async {
                    blocking("a test", || -> u8 { panic!("boom") })
                        .await
                        .map(|_| ())
                }),
            )
            .route("/fine", get(|| async { "fine" }));
        let (addr, _stop) = serve(routes).await;
        for path in ["/boom", "/boom-blocking"] {
            let answer = fetch(addr, path).await;
            assert!(answer.starts_with("HTTP/1.1 500"), "{path}: {answer}");
            assert!(
                answer.contains("content-type: application/json"),
                "{path}: {answer}"
            );
            assert!(
                answer.contains(r#"{"error":"internal error: "#),
                "{path}: {answer}"
            );
        }
        assert!(fetch(addr, "/fine").await.ends_with("fine"));
    }
}
