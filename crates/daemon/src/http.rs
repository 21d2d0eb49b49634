//! The HTTP surface: intake endpoints, the JSON API, health, metrics and the OpenAPI document.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use chrono::Utc;
use revoke_config::TokenScope;
use revoke_core::{ActionId, JobId};
use revoke_engine::EvidenceFormat;
use revoke_intake::{EventKind, Intake, NormalizedEvent};
use revoke_store::{CancelTarget, IntakeRef, JobState, StoreError};
use serde::Deserialize;
use tracing::{info, warn};

use crate::state::AppState;
use crate::types::{
    CancelAnswer, CancelRequest, ErrorBody, IntakeAnswer, JobDetail, JobSummary, Progress, Status,
    SubmitJob, Submitted,
};

/// The OpenAPI description of this API, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Largest API request body (job submissions are small).
const API_BODY_LIMIT: usize = 64 * 1024;

pub fn router(state: Arc<AppState>) -> Router {
    let intake_limit = state
        .sources
        .values()
        .map(|s| s.source.max_body_bytes())
        .max()
        .unwrap_or(0)
        .max(API_BODY_LIMIT);
    Router::new()
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
        // Each source checks its own (smaller) limit; this one bounds what is read at all.
        .layer(DefaultBodyLimit::max(intake_limit + 1))
        .with_state(state)
}

// ---------------------------------------------------------------------------------------------
// Errors

/// An error answer: a status and a message that says what was expected and found.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    challenge: bool,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            challenge: false,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response();
        if self.challenge {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"revoked\""),
            );
        }
        r
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => {
                ApiError::new(StatusCode::NOT_FOUND, format!("not found: {what}"))
            }
            StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            other => {
                warn!(error = %other, "store error answering a request");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the store is unavailable; try again",
                )
            }
        }
    }
}

impl From<revoke_engine::EngineError> for ApiError {
    fn from(e: revoke_engine::EngineError) -> Self {
        match e {
            revoke_engine::EngineError::Store(s) => s.into(),
            other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        }
    }
}

/// The token's name (the acting identity) when the request carries a token with `need`.
fn authorize(state: &AppState, headers: &HeaderMap, need: TokenScope) -> Result<String, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(bearer) = bearer.filter(|b| !b.is_empty()) else {
        return Err(ApiError {
            challenge: true,
            ..ApiError::new(
                StatusCode::UNAUTHORIZED,
                "expected an Authorization: Bearer token, found none",
            )
        });
    };
    let Some(token) = state.token(bearer) else {
        return Err(ApiError {
            challenge: true,
            ..ApiError::new(
                StatusCode::UNAUTHORIZED,
                "expected a configured API token, found an unknown one",
            )
        });
    };
    if token.scope < need {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "expected a token with the {} scope, found {} ({})",
                need.as_str(),
                token.name,
                token.scope.as_str()
            ),
        ));
    }
    Ok(format!("token:{}", token.name))
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

/// Every intake request: authenticate the raw body, parse, then record, deduplicated.
/// A too-large body is refused with a 413 the sender can read: up to this many of its bytes are
/// read and thrown away first (within [`DRAIN_TIME`]), so that a client that writes its whole
/// body before it reads the answer is not cut off with a broken pipe. Past either bound the
/// answer is sent and the connection closed.
const DRAIN_BYTES: usize = 16 * 1024 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads and discards what is left of a body, within the drain bounds.
async fn drain(mut stream: axum::body::BodyDataStream, mut budget: usize) {
    use futures_util::StreamExt;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(chunk)) = stream.next().await {
            if chunk.len() >= budget {
                return;
            }
            budget -= chunk.len();
        }
    })
    .await;
}

/// The body, if it is at most `limit` bytes: refused from Content-Length before anything is
/// read, else as soon as the stream passes the limit; either way drained (see [`DRAIN_BYTES`]).
async fn read_body(
    headers: &HeaderMap,
    body: axum::body::Body,
    limit: usize,
) -> Result<Bytes, revoke_intake::IntakeError> {
    use futures_util::StreamExt;
    let too_large = revoke_intake::IntakeError::TooLarge { limit };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut stream = body.into_data_stream();
    if declared.is_some_and(|n| n > limit as u64) {
        drain(stream, DRAIN_BYTES).await;
        return Err(too_large);
    }
    let mut buf = Vec::with_capacity(declared.map_or(8 * 1024, |n| n as usize));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            revoke_intake::IntakeError::Malformed(format!("the body could not be read: {e}"))
        })?;
        if buf.len() + chunk.len() > limit {
            drain(stream, DRAIN_BYTES.saturating_sub(buf.len() + chunk.len())).await;
            return Err(too_large);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

async fn intake(
    State(state): State<Arc<AppState>>,
    Path(p): Path<IntakePath>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Body,
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
        Err(e) => {
            revoke_telemetry::webhook_received(&p.source, e.result_label());
            warn!(source = %p.source, status = e.status(), error = %e, "intake request refused");
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            return ApiError::new(status, e.to_string()).into_response();
        }
    };
    let now = Utc::now();
    let mut path = p.rest.map(|r| format!("/{r}")).unwrap_or_default();
    if let Some(q) = uri.query() {
        path = format!("{path}?{q}");
    }
    let req = revoke_intake::Request {
        method: method.as_str(),
        path: &path,
        headers: &headers,
        body: &body,
        now,
    };
    let handled = src.source.handle(&req);
    let intake = match handled {
        Ok(i) => i,
        Err(e) => {
            revoke_telemetry::webhook_received(&p.source, e.result_label());
            warn!(source = %p.source, status = e.status(), error = %e, "intake request refused");
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            return ApiError::new(status, e.to_string()).into_response();
        }
    };
    match intake {
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
            for ev in &events {
                match record_event(&state, &src.policy, ev).await {
                    Ok(Recorded::Job(s)) => {
                        any_new |= !s.duplicate;
                        answer.jobs.push(s);
                    }
                    Ok(Recorded::Cancelled(ids)) => {
                        any_new = true;
                        answer.cancelled.extend(ids);
                    }
                    Ok(Recorded::Duplicate) => {}
                    Err(e) => {
                        revoke_telemetry::webhook_received(&p.source, "error");
                        return e.into_response();
                    }
                }
            }
            let result = if any_new { "accepted" } else { "duplicate" };
            revoke_telemetry::webhook_received(&p.source, result);
            state.wake_scheduler.notify_one();
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

enum Recorded {
    Job(Submitted),
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
            let Some(new) = crate::state::job_from_event(ev, policy) else {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "expected an employee id, email or username in the event, found none",
                ));
            };
            let risk = new.job.risk;
            let s = state
                .store
                .submit_job(&new, state.guard, &actor, now)
                .await?;
            if !s.duplicate {
                info!(job_id = %s.job_id, source = %ev.source, source_event_id = %ev.source_event_id, risk = %risk, state = %s.state, "termination received");
                if s.state == JobState::AwaitingApproval {
                    revoke_telemetry::blast_radius_tripped(&ev.source);
                    warn!(job_id = %s.job_id, source = %ev.source, recent_jobs = s.recent_jobs, limit = state.guard.max_jobs, "blast-radius guard: job held for approval");
                }
            }
            Ok(Recorded::Job(Submitted {
                job_id: s.job_id.0,
                state: s.state.as_str().to_string(),
                duplicate: s.duplicate,
            }))
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

#[derive(Debug, Deserialize)]
struct ListQuery {
    state: Option<String>,
    limit: Option<u32>,
}

async fn list_jobs(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<JobSummary>>, ApiError> {
    authorize(&state, &headers, TokenScope::Read)?;
    let filter = match q.state.as_deref() {
        None => None,
        Some(s) => Some(JobState::parse(s).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "state: expected one of {}, found {s:?}",
                    JobState::ALL
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?),
    };
    let jobs = state
        .store
        .queued_jobs(filter, q.limit.unwrap_or(100).min(1000))
        .await?;
    Ok(Json(jobs.iter().map(JobSummary::of).collect()))
}

async fn submit_job(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
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
        effective_at: req.effective_at.unwrap_or_else(|| now.fixed_offset()),
        reason: req.reason.clone(),
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
            "expected an employee_id, email or username, found none",
        ));
    };
    new.job.requested_by = actor.clone();
    let s = state
        .store
        .submit_job(&new, state.guard, &actor, now)
        .await?;
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
) -> Result<Json<JobSummary>, ApiError> {
    let actor = authorize(state, headers, TokenScope::Operator)?;
    let q = state
        .store
        .decide_job(&JobId(id), approve, &actor, Utc::now())
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
) -> Result<Json<JobSummary>, ApiError> {
    decide(&state, &headers, id, true).await
}

async fn reject(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<JobSummary>, ApiError> {
    decide(&state, &headers, id, false).await
}

async fn cancel(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
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
    Ok((
        [(header::CONTENT_TYPE, format.content_type())],
        ev.render(format),
    )
        .into_response())
}
