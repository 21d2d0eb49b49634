//! `GET /api/v1/jobs`: the daemon's jobs, newest first, with filters and keyset paging. The body
//! is the JSON array of [`JobSummary`] it always was; when more jobs match, the next page's URL
//! is in a `Link: <...>; rel="next"` header (the same filters and an opaque `cursor`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use revoke_config::TokenScope;
use revoke_store::{BatchDecision, BatchDetail, JobBatch, JobCursor, JobQuery, JobState};
use tracing::info;

use crate::auth::authorize;
use crate::error::ApiError;
use crate::extract::{ApiBody, Path, Query};
use crate::state::AppState;
use crate::types::{BatchDecisionRequest, ErrorBody, JobSummary};

/// The query parameters the listing takes; anything else is a 400 naming it.
const PARAMS: [&str; 7] = [
    "state", "subject", "source", "since", "until", "limit", "cursor",
];

/// `GET /api/v1/jobs?state=&subject=&source=&since=&until=&limit=&cursor=`.
pub(crate) async fn list_jobs(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if let Err(e) = authorize(&state, &headers, TokenScope::Read) {
        return e.into_response();
    }
    let query = match parse_query(&uri) {
        Ok(q) => q,
        Err(message) => return bad_request(message),
    };
    let page = match state.store.list_jobs(&query).await {
        Ok(p) => p,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let jobs: Vec<JobSummary> = page.jobs.iter().map(JobSummary::of).collect();
    let mut r = Json(jobs).into_response();
    if let Some(next) = page.next {
        let link = format!("<{}>; rel=\"next\"", next_url(&uri, &next));
        if let Ok(v) = HeaderValue::from_str(&link) {
            r.headers_mut().insert(header::LINK, v);
        }
    }
    r
}

/// A 400 whose message names the parameter (the message starts with it).
fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(ErrorBody { error: message })).into_response()
}

/// The same path and query with `cursor` set to `next` (the client's own encoding of every other
/// parameter is kept).
fn next_url(uri: &Uri, next: &JobCursor) -> String {
    let mut parts: Vec<&str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty() && p.split('=').next() != Some("cursor"))
        .collect();
    let cursor = format!("cursor={}", next.encode());
    parts.push(&cursor);
    format!("{}?{}", uri.path(), parts.join("&"))
}

/// The store query a request asks for; the error says which parameter is wrong and how.
pub(crate) fn parse_query(uri: &Uri) -> Result<JobQuery, String> {
    let pairs = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map_err(|e| format!("query: expected name=value pairs, found {e}"))?
        .0;
    let mut q = JobQuery::default();
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in &pairs {
        let Some(known) = PARAMS.iter().find(|p| **p == name.as_str()) else {
            return Err(format!(
                "{name}: expected one of the parameters {}, found {name:?}",
                PARAMS.join(", ")
            ));
        };
        // `state` may repeat (any of them); every other parameter is given once.
        if *known != "state" && seen.contains(known) {
            return Err(format!("{name}: expected it once, found it more than once"));
        }
        seen.push(known);
        match *known {
            "state" => {
                for s in value.split(',').map(str::trim) {
                    let st = JobState::parse(s).ok_or_else(|| {
                        format!(
                            "state: expected one of {} (several separated by commas), found {s:?}",
                            JobState::ALL
                                .iter()
                                .map(|s| s.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })?;
                    if !q.states.contains(&st) {
                        q.states.push(st);
                    }
                }
            }
            "subject" => {
                q.subject = Some(non_empty(name, value, "an employee id, email or username")?)
            }
            "source" => q.source = Some(non_empty(name, value, "an intake source name")?),
            "since" => q.since = Some(time(name, value)?),
            "until" => q.until = Some(time(name, value)?),
            "limit" => {
                q.limit = value
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=JobQuery::MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        format!(
                            "limit: expected a whole number from 1 to {}, found {value:?}",
                            JobQuery::MAX_LIMIT
                        )
                    })?;
            }
            _ => {
                q.after = Some(JobCursor::parse(value.trim()).ok_or_else(|| {
                    format!(
                        "cursor: expected the cursor of a Link rel=\"next\" header of this listing, found {value:?}"
                    )
                })?);
            }
        }
    }
    if let (Some(since), Some(until)) = (q.since, q.until) {
        if since >= until {
            return Err(format!(
                "until: expected a time after since ({}), found {}",
                since.to_rfc3339(),
                until.to_rfc3339()
            ));
        }
    }
    Ok(q)
}

fn non_empty(name: &str, value: &str, what: &str) -> Result<String, String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(format!("{name}: expected {what}, found an empty value"));
    }
    Ok(v.to_string())
}

fn time(name: &str, value: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(value.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!(
                "{name}: expected an RFC 3339 time (2030-01-31T17:00:00Z), found {value:?} ({e})"
            )
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<JobQuery, String> {
        parse_query(&format!("/api/v1/jobs?{q}").parse::<Uri>().unwrap())
    }

    #[test]
    fn parameters_are_parsed_and_bad_ones_named() {
        let q = parse("state=failed,cancelled&state=failed&subject=a%2Bb%40x.org&limit=5").unwrap();
        assert_eq!(q.states, vec![JobState::Failed, JobState::Cancelled]);
        assert_eq!(q.subject.as_deref(), Some("a+b@x.org"));
        assert_eq!(q.limit, 5);
        assert_eq!(parse("").unwrap(), JobQuery::default());
        for (bad, name) in [
            ("state=done", "state:"),
            ("limit=0", "limit:"),
            ("limit=1001", "limit:"),
            ("limit=x", "limit:"),
            ("limit=1&limit=2", "limit:"),
            ("since=yesterday", "since:"),
            (
                "since=2030-01-02T00:00:00Z&until=2030-01-01T00:00:00Z",
                "until:",
            ),
            ("cursor=abc", "cursor:"),
            ("subject=", "subject:"),
            ("stat=failed", "stat:"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.starts_with(name), "{bad}: {e}");
        }
    }

    #[test]
    fn the_next_url_keeps_the_filters_and_replaces_the_cursor() {
        let uri: Uri = "/api/v1/jobs?state=failed&cursor=00&subject=a%40b"
            .parse()
            .unwrap();
        let next = JobCursor::parse(&hex::encode("5.job-1")).unwrap();
        assert_eq!(
            next_url(&uri, &next),
            format!(
                "/api/v1/jobs?state=failed&subject=a%40b&cursor={}",
                next.encode()
            )
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Batches: the jobs the blast-radius guard held together (see `revoke_store::JobBatch`),
// reviewed and decided as one unit.

/// `GET /api/v1/batches` parameters.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchesParams {
    /// Every batch, decided ones too (default: only those with a job awaiting approval).
    #[serde(default)]
    all: bool,
    limit: Option<u32>,
}

/// `GET /api/v1/batches/{id}` parameters.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchParams {
    sample: Option<u32>,
}

/// Batches listed at most, and sampled jobs shown at most.
const MAX_BATCHES: u32 = 1000;
const DEFAULT_SAMPLE: u32 = 20;
const MAX_SAMPLE: u32 = 10_000;

/// `GET /api/v1/batches?all=&limit=`: newest first.
pub(crate) async fn list_batches(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(p): Query<BatchesParams>,
) -> Result<Json<Vec<JobBatch>>, ApiError> {
    authorize(&state, &headers, TokenScope::Read)?;
    let limit = p.limit.unwrap_or(100).clamp(1, MAX_BATCHES);
    Ok(Json(state.store.batches(!p.all, limit).await?))
}

/// `GET /api/v1/batches/{id}?sample=`: what the batch contains.
pub(crate) async fn get_batch(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<BatchParams>,
) -> Result<Json<BatchDetail>, ApiError> {
    authorize(&state, &headers, TokenScope::Read)?;
    let sample = p.sample.unwrap_or(DEFAULT_SAMPLE).min(MAX_SAMPLE);
    match state.store.batch(&id, sample).await? {
        Some(b) => Ok(Json(b)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("not found: batch {id} (GET /api/v1/batches lists them)"),
        )),
    }
}

pub(crate) async fn approve_batch(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiBody(body): ApiBody,
) -> Result<Json<BatchDecision>, ApiError> {
    decide_batch(&state, &headers, id, true, &body).await
}

pub(crate) async fn reject_batch(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiBody(body): ApiBody,
) -> Result<Json<BatchDecision>, ApiError> {
    decide_batch(&state, &headers, id, false, &body).await
}

/// Approves or rejects every job of a batch still awaiting approval, as the token's name; an
/// empty body decides whatever the batch holds, `{"expect": N}` only the N jobs reviewed.
async fn decide_batch(
    state: &AppState,
    headers: &HeaderMap,
    id: String,
    approve: bool,
    body: &[u8],
) -> Result<Json<BatchDecision>, ApiError> {
    let actor = authorize(state, headers, TokenScope::Operator)?;
    let req: BatchDecisionRequest = if body.iter().all(u8::is_ascii_whitespace) {
        BatchDecisionRequest::default()
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("expected {{}} or {{\"expect\": N}} (the count of jobs reviewed): {e}"),
            )
        })?
    };
    let d = state
        .store
        .decide_batch(&id, approve, req.expect, &actor, Utc::now())
        .await?;
    let outcome = if approve { "approved" } else { "rejected" };
    info!(batch_id = %id, by = %actor, outcome, jobs = d.job_ids.len(), "held batch decided");
    if !approve {
        for _ in &d.job_ids {
            revoke_telemetry::job_finished(&d.batch.source, "rejected");
        }
    }
    state.wake_scheduler.notify_one();
    Ok(Json(d))
}
