//! The endpoints, in the shapes the `okta` 3.4.6 SDK's models parse

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::world::{GroupType, RoleAssignment, User, World};
use super::{okta_error, Shared};

type S = State<Arc<Shared>>;

const T0: &str = "2026-01-05T09:00:00.000Z";

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/v1/users", get(list_users))
        .route("/api/v1/users/{id}", get(get_user).delete(delete_user))
        .route("/api/v1/users/{id}/lifecycle/suspend", post(suspend))
        .route("/api/v1/users/{id}/lifecycle/deactivate", post(deactivate))
        .route("/api/v1/users/{id}/sessions", delete(clear_sessions))
        .route("/api/v1/users/{id}/groups", get(user_groups))
        .route("/api/v1/users/{id}/roles", get(user_roles))
        .route("/api/v1/users/{id}/roles/{rid}", delete(remove_role))
        .route("/api/v1/users/{id}/factors", get(user_factors))
        .route(
            "/api/v1/users/{id}/lifecycle/reset_factors",
            post(reset_factors),
        )
        .route(
            "/api/v1/users/{id}/grants",
            get(user_grants).delete(revoke_grants),
        )
        .route("/api/v1/groups/{gid}/users/{uid}", delete(remove_member))
        .route("/api/v1/apps", get(list_apps))
        .route(
            "/api/v1/apps/{aid}/users/{uid}",
            get(get_app_user).delete(remove_app_user),
        )
}

pub(crate) async fn no_route() -> Response {
    okta_error(
        StatusCode::NOT_FOUND,
        "E0000022",
        "The endpoint does not support the provided HTTP method",
    )
}

fn not_found(what: &str, id: &str) -> Response {
    okta_error(
        StatusCode::NOT_FOUND,
        "E0000007",
        &format!("Not found: Resource not found: {id} ({what})"),
    )
}

fn invalid(summary: &str) -> Response {
    okta_error(StatusCode::BAD_REQUEST, "E0000001", summary)
}

fn query_pairs(q: &Option<String>) -> Vec<(String, String)> {
    q.as_deref()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// `profile.<attr> eq "<value>"` (or `<attr> eq "<value>"`)
fn parse_eq(expr: &str) -> Option<(String, String)> {
    let (lhs, rhs) = expr.trim().split_once(" eq ")?;
    let v = rhs.trim().strip_prefix('"')?.strip_suffix('"')?;
    if v.contains('"') {
        return None;
    }
    Some((lhs.trim().to_string(), v.to_string()))
}

fn base(uri: &str) -> String {
    format!("https://stand-in.okta.com{uri}")
}

pub(crate) fn user_json(u: &User) -> Value {
    let mut profile = json!({
        "firstName": u.login.split('@').next().unwrap_or(""),
        "lastName": "Leaver",
        "login": u.login,
        "email": u.email,
        "mobilePhone": null,
    });
    if let Some(e) = &u.second_email {
        profile["secondEmail"] = json!(e);
    }
    if let Some(e) = &u.employee_number {
        profile["employeeNumber"] = json!(e);
    }
    let activated = if u.status == "STAGED" {
        Value::Null
    } else {
        json!(T0)
    };
    json!({
        "id": u.id,
        "status": u.status,
        "created": T0,
        "activated": activated,
        "statusChanged": T0,
        "lastLogin": T0,
        "lastUpdated": T0,
        "passwordChanged": T0,
        "type": {"id": "oty00000000000000001"},
        "profile": profile,
        "credentials": {
            "password": {},
            "provider": {"type": "OKTA", "name": "OKTA"}
        },
        "_links": {"self": {"href": base(&format!("/api/v1/users/{}", u.id))}}
    })
}

fn profile_value(u: &User, attr: &str) -> Option<String> {
    match attr {
        "profile.login" => Some(u.login.clone()),
        "profile.email" => Some(u.email.clone()),
        "profile.secondEmail" => u.second_email.clone(),
        "profile.employeeNumber" => u.employee_number.clone(),
        "id" => Some(u.id.clone()),
        "status" => Some(u.status.clone()),
        _ => None,
    }
}

async fn list_users(State(s): S, RawQuery(q): RawQuery) -> Response {
    let pairs = query_pairs(&q);
    let w = s.world();
    let limit = pairs
        .iter()
        .find(|(k, _)| k == "limit")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(200);
    let search = pairs
        .iter()
        .find(|(k, _)| k == "search" || k == "filter")
        .map(|(_, v)| v.clone());
    let users: Vec<Value> = match search {
        None => w.users.values().take(limit).map(user_json).collect(),
        Some(expr) => {
            // `a eq "x"`, or several joined by ` or `
            let terms: Option<Vec<(String, String)>> = expr.split(" or ").map(parse_eq).collect();
            let Some(terms) = terms else {
                return okta_error(
                    StatusCode::BAD_REQUEST,
                    "E0000031",
                    &format!("Invalid search criteria: {expr}"),
                );
            };
            w.users
                .values()
                .filter(|u| {
                    terms.iter().any(|(attr, value)| {
                        profile_value(u, attr).is_some_and(|v| v.eq_ignore_ascii_case(value))
                    })
                })
                .take(limit)
                .map(user_json)
                .collect()
        }
    };
    Json(users).into_response()
}

/// A user by id, or by login (as Okta also accepts)
fn resolve<'a>(w: &'a World, id: &str) -> Option<&'a User> {
    w.users
        .get(id)
        .or_else(|| w.users.values().find(|u| u.login.eq_ignore_ascii_case(id)))
}

async fn get_user(State(s): S, Path(id): Path<String>) -> Response {
    let w = s.world();
    match resolve(&w, &id) {
        Some(u) => Json(user_json(u)).into_response(),
        None => not_found("User", &id),
    }
}

async fn delete_user(State(s): S, Path(id): Path<String>) -> Response {
    let mut w = s.world();
    let Some(u) = resolve(&w, &id).cloned() else {
        return not_found("User", &id);
    };
    if u.status == "DEPROVISIONED" {
        w.remove_user(&u.id);
    } else {
        w.deactivate(&u.id);
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn suspend(State(s): S, Path(id): Path<String>) -> Response {
    let mut w = s.world();
    let Some(u) = w.users.get_mut(&id) else {
        return not_found("User", &id);
    };
    if u.status != "ACTIVE" {
        return invalid("Api validation failed: Cannot suspend a user that is not active");
    }
    u.status = "SUSPENDED".into();
    u.sessions = 0;
    Json(json!({})).into_response()
}

async fn deactivate(State(s): S, Path(id): Path<String>) -> Response {
    let mut w = s.world();
    let Some(u) = w.users.get(&id) else {
        return not_found("User", &id);
    };
    if u.status == "DEPROVISIONED" {
        return invalid("Api validation failed: the user is already deactivated");
    }
    w.deactivate(&id);
    Json(json!({})).into_response()
}

async fn clear_sessions(State(s): S, Path(id): Path<String>, RawQuery(q): RawQuery) -> Response {
    let tokens = query_pairs(&q)
        .iter()
        .any(|(k, v)| k == "oauthTokens" && v == "true");
    let mut w = s.world();
    let Some(u) = w.users.get_mut(&id) else {
        return not_found("User", &id);
    };
    u.sessions = 0;
    if tokens {
        u.oauth_tokens = 0;
    }
    StatusCode::NO_CONTENT.into_response()
}

fn group_json(g: &super::world::Group) -> Value {
    let object_class = match g.kind {
        GroupType::AppGroup => "okta:windows_security_principal",
        _ => "okta:user_group",
    };
    json!({
        "id": g.id,
        "created": T0,
        "lastUpdated": T0,
        "lastMembershipUpdated": T0,
        "objectClass": [object_class],
        "type": g.kind.as_str(),
        "profile": {"name": g.name, "description": null},
        "_links": {"self": {"href": base(&format!("/api/v1/groups/{}", g.id))}}
    })
}

async fn user_groups(State(s): S, Path(id): Path<String>) -> Response {
    let w = s.world();
    if !w.users.contains_key(&id) {
        return not_found("User", &id);
    }
    let groups: Vec<Value> = w
        .groups
        .values()
        .filter(|g| g.members.contains(&id))
        .map(group_json)
        .collect();
    Json(groups).into_response()
}

async fn remove_member(State(s): S, Path((gid, uid)): Path<(String, String)>) -> Response {
    let mut w = s.world();
    if !w.users.contains_key(&uid) {
        return not_found("User", &uid);
    }
    let Some(g) = w.groups.get_mut(&gid) else {
        return not_found("UserGroup", &gid);
    };
    if g.kind != GroupType::OktaGroup {
        return invalid(
            "Api validation failed: cannot modify the members of a group not managed by Okta",
        );
    }
    g.members.remove(&uid);
    StatusCode::NO_CONTENT.into_response()
}

fn role_json(r: &RoleAssignment) -> Value {
    json!({
        "id": r.id,
        "label": r.role_type.replace('_', " ").to_lowercase(),
        "type": r.role_type,
        "status": "ACTIVE",
        "created": T0,
        "lastUpdated": T0,
        "assignmentType": r.assignment_type,
        "_links": {"assignee": {"href": base(&format!("/api/v1/users/{}", r.user_id))}}
    })
}

async fn user_roles(State(s): S, Path(id): Path<String>) -> Response {
    let w = s.world();
    if !w.users.contains_key(&id) {
        return not_found("User", &id);
    }
    Json(w.roles_of(&id).iter().map(role_json).collect::<Vec<_>>()).into_response()
}

async fn remove_role(State(s): S, Path((id, rid)): Path<(String, String)>) -> Response {
    let mut w = s.world();
    if !w.users.contains_key(&id) {
        return not_found("User", &id);
    }
    match w.roles.get(&rid) {
        Some(r) if r.user_id == id => {
            w.roles.remove(&rid);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => not_found("Role", &rid),
    }
}

async fn user_factors(State(s): S, Path(id): Path<String>) -> Response {
    let w = s.world();
    let Some(u) = w.users.get(&id) else {
        return not_found("User", &id);
    };
    let factors: Vec<Value> = u
        .factors
        .iter()
        .map(|(fid, ftype)| {
            let provider = if ftype.starts_with("token:software") {
                "GOOGLE"
            } else {
                "OKTA"
            };
            json!({
                "id": fid,
                "factorType": ftype,
                "provider": provider,
                "vendorName": provider,
                "status": "ACTIVE",
                "created": T0,
                "lastUpdated": T0,
                "profile": {},
                "_links": {"self": {"href": base(&format!("/api/v1/users/{id}/factors/{fid}"))}}
            })
        })
        .collect();
    Json(factors).into_response()
}

async fn reset_factors(State(s): S, Path(id): Path<String>) -> Response {
    let mut w = s.world();
    let Some(u) = w.users.get_mut(&id) else {
        return not_found("User", &id);
    };
    u.factors.clear();
    Json(json!({})).into_response()
}

async fn revoke_grants(State(s): S, Path(id): Path<String>) -> Response {
    let mut w = s.world();
    let Some(u) = w.users.get_mut(&id) else {
        return not_found("User", &id);
    };
    u.grants.clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn user_grants(State(s): S, Path(id): Path<String>) -> Response {
    let w = s.world();
    let Some(u) = w.users.get(&id) else {
        return not_found("User", &id);
    };
    let grants: Vec<Value> = u
        .grants
        .iter()
        .map(|g| {
            json!({
                "id": g,
                "status": "ACTIVE",
                "created": T0,
                "lastUpdated": T0,
                "issuer": "https://stand-in.okta.com/oauth2/default",
                "clientId": "0oa00000000000000001",
                "userId": id,
                "scopeId": "scp00000000000000001",
                "source": "END_USER",
                "_links": {}
            })
        })
        .collect();
    Json(grants).into_response()
}

fn app_json(a: &super::world::App) -> Value {
    json!({
        "id": a.id,
        "name": "bookmark",
        "label": a.label,
        "status": "ACTIVE",
        "created": T0,
        "lastUpdated": T0,
        "signOnMode": "BOOKMARK",
        "accessibility": {"selfService": false, "errorRedirectUrl": null, "loginRedirectUrl": null},
        "visibility": {"autoSubmitToolbar": false, "hide": {"iOS": false, "web": false}},
        "features": [],
        "credentials": {"userNameTemplate": {"template": "${source.login}", "type": "BUILT_IN"}},
        "settings": {"app": {"requestIntegration": false, "url": "https://example.com/app"}},
        "_links": {"self": {"href": base(&format!("/api/v1/apps/{}", a.id))}}
    })
}

async fn list_apps(State(s): S, RawQuery(q): RawQuery) -> Response {
    let pairs = query_pairs(&q);
    let w = s.world();
    let filter = pairs
        .iter()
        .find(|(k, _)| k == "filter")
        .map(|(_, v)| v.clone());
    // `expand=user/{uid}` embeds that user's app user (with its scope) in each app
    let expand = pairs
        .iter()
        .find(|(k, _)| k == "expand")
        .and_then(|(_, v)| v.strip_prefix("user/").map(str::to_string));
    let apps: Vec<Value> = match filter {
        None => w.apps.values().map(app_json).collect(),
        Some(expr) => match parse_eq(&expr) {
            Some((attr, uid)) if attr == "user.id" => w
                .apps
                .values()
                .filter(|a| a.users.contains_key(&uid))
                .map(|a| {
                    let mut j = app_json(a);
                    if let (Some(e), Some(u)) = (&expand, w.users.get(&uid)) {
                        if *e == uid {
                            let scope = a.users.get(&uid).map(String::as_str).unwrap_or("USER");
                            j["_embedded"] = json!({"user": app_user_json(&a.id, u, scope)});
                        }
                    }
                    j
                })
                .collect(),
            _ => {
                return okta_error(
                    StatusCode::BAD_REQUEST,
                    "E0000031",
                    &format!("Invalid search criteria: {expr}"),
                )
            }
        },
    };
    Json(apps).into_response()
}

fn app_user_json(aid: &str, u: &User, scope: &str) -> Value {
    json!({
        "id": u.id,
        "externalId": null,
        "created": T0,
        "lastUpdated": T0,
        "scope": scope,
        "status": "PROVISIONED",
        "statusChanged": T0,
        "passwordChanged": null,
        "syncState": "DISABLED",
        "credentials": {"userName": u.login},
        "profile": {},
        "_links": {
            "app": {"href": base(&format!("/api/v1/apps/{aid}"))},
            "user": {"href": base(&format!("/api/v1/users/{}", u.id))}
        }
    })
}

async fn get_app_user(State(s): S, Path((aid, uid)): Path<(String, String)>) -> Response {
    let w = s.world();
    let Some(a) = w.apps.get(&aid) else {
        return not_found("App", &aid);
    };
    match (a.users.get(&uid), w.users.get(&uid)) {
        (Some(scope), Some(u)) => Json(app_user_json(&aid, u, scope)).into_response(),
        _ => not_found("AppUser", &uid),
    }
}

async fn remove_app_user(State(s): S, Path((aid, uid)): Path<(String, String)>) -> Response {
    let mut w = s.world();
    let Some(a) = w.apps.get_mut(&aid) else {
        return not_found("App", &aid);
    };
    match a.users.get(&uid).map(String::as_str) {
        None => not_found("AppUser", &uid),
        Some("USER") => {
            a.users.remove(&uid);
            StatusCode::NO_CONTENT.into_response()
        }
        Some(_) => invalid("Api validation failed: the assignment comes from a group"),
    }
}
