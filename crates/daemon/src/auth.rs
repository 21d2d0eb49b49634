//! Bearer tokens of the API: who is asking, and whether their scope allows it.

use axum::http::{header, HeaderMap, StatusCode};
use revoke_config::TokenScope;

use crate::error::ApiError;
use crate::state::AppState;

/// The token's name (the acting identity) when the request carries a token with `need`.
pub(crate) fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    need: TokenScope,
) -> Result<String, ApiError> {
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
