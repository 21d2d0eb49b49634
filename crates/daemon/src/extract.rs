//! Request extractors with JSON rejections (query, path, a bounded API body) and body reading:
//! a body is refused past its limit (from Content-Length before reading, else while streaming),
//! drained within bounds so the sender can read the 413, and cut off at its deadline.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest API request body (job submissions are small).
pub(crate) const API_BODY_LIMIT: usize = 64 * 1024;

/// The first letter lowercased (axum's rejection texts start with a capital).
pub(crate) fn lowercase_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// `axum::extract::Query` with a JSON rejection.
#[derive(Debug)]
pub(crate) struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(q) => Ok(Query(q.0)),
            Err(e) => Err(ApiError::new(
                e.status(),
                format!("query: {}", lowercase_first(&e.body_text())),
            )),
        }
    }
}

/// `axum::extract::Path` with a JSON rejection.
#[derive(Debug)]
pub(crate) struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(p) => Ok(Path(p.0)),
            Err(e) => Err(ApiError::new(
                e.status(),
                format!("path: {}", lowercase_first(&e.body_text())),
            )),
        }
    }
}

/// An API request body of at most [`API_BODY_LIMIT`] bytes: 413 past it (from Content-Length
/// before reading), 408 when it does not arrive within `daemon.body_read_timeout_secs`.
#[derive(Debug)]
pub(crate) struct ApiBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        match read_body(&parts.headers, body, API_BODY_LIMIT).await {
            Ok(b) => Ok(ApiBody(b)),
            Err(e) => Err(e.into()),
        }
    }
}

/// A too-large body is refused with a 413 the sender can read: up to this many of its bytes are
/// read and thrown away first (within [`DRAIN_TIME`]), so that a client that writes its whole
/// body before it reads the answer is not cut off with a broken pipe. Past either bound the
/// answer is sent and the connection closed.
pub(crate) const DRAIN_BYTES: usize = 16 * 1024 * 1024;
pub(crate) const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads and discards what is left of a body, within the drain bounds.
pub(crate) async fn drain(mut stream: axum::body::BodyDataStream, mut budget: usize) {
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

/// The error a body yields once `daemon.body_read_timeout_secs` have passed since its head.
#[derive(Debug)]
pub(crate) struct BodyTimeout(u64);

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "expected the whole request body within {} s of its head, found it still arriving",
            self.0
        )
    }
}

impl std::error::Error for BodyTimeout {}

/// `routes` with every request's body bounded by [`body_with_deadline`]; added last, so it is the
/// outermost layer (the API's and the console's routers both end with it).
pub(crate) fn with_body_deadline(
    routes: axum::Router,
    timeout: std::time::Duration,
) -> axum::Router {
    routes.layer(axum::middleware::from_fn(
        move |req: Request, next: axum::middleware::Next| {
            next.run(req.map(|b| body_with_deadline(b, timeout)))
        },
    ))
}

/// `body`, ending in a [`BodyTimeout`] error if it is still arriving `timeout` after now (the
/// whole body, not each chunk: a client that sends a byte a second is cut off too).
pub(crate) fn body_with_deadline(body: Body, timeout: std::time::Duration) -> Body {
    use futures_util::StreamExt;
    type BoxError = Box<dyn std::error::Error + Send + Sync>;
    let deadline = tokio::time::Instant::now() + timeout;
    let secs = timeout.as_secs();
    let chunks = futures_util::stream::unfold(Some(body.into_data_stream()), move |s| async move {
        let mut s = s?;
        match tokio::time::timeout_at(deadline, s.next()).await {
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(s))),
            Ok(Some(Err(e))) => Some((Err(BoxError::from(e)), None)),
            Ok(None) => None,
            Err(_) => Some((Err(BoxError::from(BodyTimeout(secs))), None)),
        }
    });
    Body::from_stream(chunks)
}

/// Why a body was not read.
#[derive(Debug)]
pub(crate) enum BodyError {
    TooLarge { limit: usize },
    Timeout(String),
    Broken(String),
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge { limit } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("expected a body of at most {limit} bytes, found a larger one"),
            ),
            BodyError::Timeout(m) => ApiError::new(StatusCode::REQUEST_TIMEOUT, m),
            BodyError::Broken(m) => ApiError::new(StatusCode::BAD_REQUEST, m),
        }
    }
}

/// The [`BodyTimeout`] somewhere in the chain of a body error, if that is what it is.
pub(crate) fn body_timeout(e: &axum::Error) -> Option<&BodyTimeout> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<BodyTimeout>() {
            return Some(t);
        }
        cur = err.source();
    }
    None
}

/// The body, if it is at most `limit` bytes: refused from Content-Length before anything is
/// read, else as soon as the stream passes the limit; either way drained (see [`DRAIN_BYTES`]).
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, BodyError> {
    use futures_util::StreamExt;
    let too_large = BodyError::TooLarge { limit };
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
        let chunk = chunk.map_err(|e| match body_timeout(&e) {
            Some(t) => BodyError::Timeout(t.to_string()),
            None => BodyError::Broken(format!("the body could not be read: {e}")),
        })?;
        if buf.len() + chunk.len() > limit {
            drain(stream, DRAIN_BYTES.saturating_sub(buf.len() + chunk.len())).await;
            return Err(too_large);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}
