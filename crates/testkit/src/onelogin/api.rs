//! The endpoints: the token call, users (v2), the v1 logout, roles (v2)

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};

use super::world::{matches, status};
use super::{lock, v1_error, v2_error, Shared};

type S = State<Arc<Shared>>;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/auth/oauth2/v2/token", post(token))
        .route("/api/2/users", get(list_users))
        .route(
            "/api/2/users/{id}",
            get(get_user).put(update_user).delete(delete_user),
        )
        .route("/api/1/users/{id}/logout", put(logout))
        .route("/api/2/roles", get(list_roles))
        .route(
            "/api/2/roles/{id}/users",
            get(role_users).delete(remove_role_users),
        )
}

pub(crate) async fn no_route() -> Response {
    v2_error(StatusCode::NOT_FOUND, "NotFoundError", "No Route Exists")
}

fn not_found() -> Response {
    v2_error(
        StatusCode::NOT_FOUND,
        "NotFoundError",
        "The resource with the given id could not be found",
    )
}

fn bad_id() -> Response {
    v2_error(
        StatusCode::BAD_REQUEST,
        "BadRequestError",
        "id must be a positive integer",
    )
}

/// The client id of `Authorization: Basic base64(id:secret)` or `client_id:ID, client_secret:S`
pub(crate) fn basic_client_id(headers: &HeaderMap) -> Option<String> {
    client_pair(headers).map(|(id, _)| id)
}

fn client_pair(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    if let Some(b64) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (id, secret) = text.split_once(':')?;
        return Some((id.to_owned(), secret.to_owned()));
    }
    // The legacy form: `client_id:ID, client_secret:SECRET`
    let (a, b) = value.split_once(',')?;
    let id = a.trim().strip_prefix("client_id:")?;
    let secret = b.trim().strip_prefix("client_secret:")?;
    Some((id.to_owned(), secret.to_owned()))
}

/// The grant type of a JSON or form body
fn grant_type(body: &[u8]) -> Option<String> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return v
            .get("grant_type")
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    form_urlencoded::parse(body)
        .find(|(k, _)| k == "grant_type")
        .map(|(_, v)| v.into_owned())
}

fn token_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": true, "code": status.as_u16(), "type": kind, "message": message })),
    )
        .into_response()
}

async fn token(State(s): S, headers: HeaderMap, body: Bytes) -> Response {
    let Some((id, secret)) = client_pair(&headers) else {
        return token_error(
            StatusCode::BAD_REQUEST,
            "bad request",
            "Authorization Information is incorrect",
        );
    };
    if grant_type(&body).as_deref() != Some("client_credentials") {
        return token_error(
            StatusCode::BAD_REQUEST,
            "bad request",
            "grant_type is incorrect/absent",
        );
    }
    let mut auth = lock(&s.auth);
    if id != auth.client_id || secret != auth.client_secret {
        return token_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Authentication Failure",
        );
    }
    auth.issued += 1;
    let access = super::random_hex(64);
    let ttl = auth.ttl;
    auth.tokens.insert(access.clone(), Instant::now() + ttl);
    Json(json!({
        "access_token": access,
        "created_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "expires_in": ttl.as_secs(),
        "refresh_token": super::random_hex(64),
        "token_type": "bearer",
        "account_id": 123_456,
    }))
    .into_response()
}

/// Query pairs, decoded
fn query(raw: &Option<String>) -> Vec<(String, String)> {
    raw.as_deref()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// One page of `items` with OneLogin's pagination headers (`limit` at most `max`)
fn page(items: Vec<Value>, q: &[(String, String)], max: usize) -> Response {
    let limit = param(q, "limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(50)
        .clamp(1, max);
    let page = param(q, "page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let total = items.len();
    let pages = total.div_ceil(limit).max(1);
    let chunk: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * limit)
        .take(limit)
        .collect();
    let mut r = Json(Value::Array(chunk.clone())).into_response();
    let h = r.headers_mut();
    h.insert("total-pages", HeaderValue::from(pages));
    h.insert("current-page", HeaderValue::from(page));
    h.insert("total-count", HeaderValue::from(total));
    h.insert("page-items", HeaderValue::from(chunk.len()));
    r
}

async fn list_users(State(s): S, RawQuery(raw): RawQuery) -> Response {
    let q = query(&raw);
    let w = s.world();
    let email = param(&q, "email");
    let username = param(&q, "username");
    let external_id = param(&q, "external_id");
    let items: Vec<Value> = w
        .users
        .values()
        .filter(|u| email.is_none_or(|e| matches(e, &u.email)))
        .filter(|u| {
            external_id.is_none_or(|x| u.external_id.as_deref().is_some_and(|v| matches(x, v)))
        })
        .filter(|u| username.is_none_or(|n| u.username.as_deref().is_some_and(|un| matches(n, un))))
        .map(|u| w.listed(u))
        .collect();
    page(items, &q, 100)
}

async fn get_user(State(s): S, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return bad_id();
    };
    let w = s.world();
    match w.get(id) {
        Some(u) => Json(w.detailed(u)).into_response(),
        None => not_found(),
    }
}

async fn update_user(State(s): S, Path(id): Path<String>, body: Bytes) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return bad_id();
    };
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
        return v2_error(
            StatusCode::BAD_REQUEST,
            "BadRequestError",
            "the body must be a JSON object",
        );
    };
    let mut w = s.world();
    if w.get(id).is_none() {
        return not_found();
    }
    let code = |k: &str| {
        fields
            .get(k)
            .map(|v| v.as_u64().and_then(|n| u8::try_from(n).ok()))
    };
    let mut errors = Vec::new();
    let new_status = match code("status") {
        Some(Some(n)) if status::ALL.contains(&n) => Some(n),
        Some(_) => {
            errors.push(
                json!({"field": "status", "message": ["must be one of 0, 1, 2, 3, 4, 5, 7, 8"]}),
            );
            None
        }
        None => None,
    };
    let new_state = match code("state") {
        Some(Some(n)) if n <= 3 => Some(n),
        Some(_) => {
            errors.push(json!({"field": "state", "message": ["must be one of 0, 1, 2, 3"]}));
            None
        }
        None => None,
    };
    if !errors.is_empty() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "statusCode": 422,
                "name": "UnprocessableEntityError",
                "message": "Validation Failed",
                "errors": errors,
            })),
        )
            .into_response();
    }
    if let Some(u) = w.users.get_mut(&id) {
        if let Some(n) = new_status {
            u.status = n;
        }
        if let Some(n) = new_state {
            u.state = n;
        }
    }
    match w.get(id) {
        Some(u) => Json(w.detailed(u)).into_response(),
        None => not_found(),
    }
}

async fn delete_user(State(s): S, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return bad_id();
    };
    if s.world().delete_user(id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        not_found()
    }
}

async fn logout(State(s): S, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return v1_error(StatusCode::BAD_REQUEST, "bad request", "ID is incorrect");
    };
    let mut w = s.world();
    match w.users.get_mut(&id) {
        Some(u) => {
            u.sessions = 0;
            u.logouts += 1;
            Json(json!({
                "status": { "error": false, "code": 200, "type": "success", "message": "Success" }
            }))
            .into_response()
        }
        None => v1_error(StatusCode::NOT_FOUND, "not found", "User not found"),
    }
}

async fn list_roles(State(s): S, RawQuery(raw): RawQuery) -> Response {
    let q = query(&raw);
    let w = s.world();
    let name = param(&q, "name").or_else(|| param(&q, "role_name"));
    let items: Vec<Value> = w
        .roles
        .values()
        .filter(|r| name.is_none_or(|n| matches(n, &r.name)))
        .map(|r| w.role_json(r))
        .collect();
    page(items, &q, 650)
}

async fn role_users(State(s): S, Path(id): Path<String>, RawQuery(raw): RawQuery) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return bad_id();
    };
    let q = query(&raw);
    let w = s.world();
    let Some(role) = w.roles.get(&id) else {
        return not_found();
    };
    let items: Vec<Value> = role
        .users
        .iter()
        .filter_map(|uid| w.get(*uid))
        .map(|u| {
            json!({
                "id": u.id,
                "name": format!("{} {}", u.firstname, u.lastname).trim().to_owned(),
                "email": u.email,
                "username": u.username,
                "assigned": true,
            })
        })
        .collect();
    page(items, &q, 100)
}

/// The user ids of `[1, 2]` (the reference's sample) or `{"user_id": [1, 2]}` (the SDK's)
fn user_ids(body: &[u8]) -> Option<Vec<u64>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let list = match &v {
        Value::Array(a) => a,
        Value::Object(o) => o.get("user_id")?.as_array()?,
        _ => return None,
    };
    list.iter().map(Value::as_u64).collect()
}

async fn remove_role_users(State(s): S, Path(id): Path<String>, body: Bytes) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return bad_id();
    };
    let Some(ids) = user_ids(&body).filter(|ids| !ids.is_empty()) else {
        return v2_error(
            StatusCode::BAD_REQUEST,
            "BadRequestError",
            "user_id must be a non-empty array of integers",
        );
    };
    let mut w = s.world();
    let Some(role) = w.roles.get_mut(&id) else {
        return not_found();
    };
    for uid in ids {
        role.users.remove(&uid);
    }
    StatusCode::NO_CONTENT.into_response()
}
