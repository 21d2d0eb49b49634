//! The API's error answer: a status and a JSON `{"error": ...}` saying what was expected and
//! found, and how store and engine errors map to it.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use revoke_store::StoreError;
use tracing::warn;

use crate::types::ErrorBody;

/// An error answer: a status and a message that says what was expected and found.
#[derive(Debug)]
pub struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    pub(crate) challenge: bool,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
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
            StoreError::BodyConflict(c) => {
                warn!(source = %c.source, source_event_id = %c.event_id, first_body_sha256 = %c.first_body_sha256, body_sha256 = %c.body_sha256, first_job_id = ?c.first_job_id.as_ref().map(|j| j.0.as_str()), "same event id with a different body refused");
                ApiError::new(StatusCode::CONFLICT, c.to_string())
            }
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

/// Runs CPU-heavy work (signature checks, parsing, rendering) on the blocking pool, never on
/// the async workers; a panic in it becomes a 500 (JSON at the API, a page in the console).
pub(crate) async fn blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!(task = what, error = %e, "a blocking task failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error: {what} failed; see the daemon's log"),
        )
    })
}
