//! The endpoints: the token call, Directory users, tokens, ASPs, verification codes, groups and
//! members, roles and role assignments, Data Transfer transfers, Gmail settings, Licensing

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::world::{User, World};
use super::{decode, google_error, issue_token, Shared};

use axum::http::HeaderMap;

type S = State<Arc<Shared>>;

const D: &str = "/admin/directory/v1";

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/token", post(token))
        .route(super::BATCH_PATH, post(batch))
        .route(&format!("{D}/users"), get(list_users))
        .route(
            &format!("{D}/users/{{user}}"),
            get(get_user).put(update_user).delete(delete_user),
        )
        .route(&format!("{D}/users/{{user}}/signOut"), post(sign_out))
        .route(&format!("{D}/users/{{user}}/tokens"), get(list_tokens))
        .route(
            &format!("{D}/users/{{user}}/tokens/{{client}}"),
            get(get_token).delete(delete_token),
        )
        .route(&format!("{D}/users/{{user}}/asps"), get(list_asps))
        .route(
            &format!("{D}/users/{{user}}/asps/{{code}}"),
            get(get_asp).delete(delete_asp),
        )
        .route(
            &format!("{D}/users/{{user}}/verificationCodes/invalidate"),
            post(invalidate_codes),
        )
        .route(&format!("{D}/groups"), get(list_groups))
        .route(
            &format!("{D}/groups/{{group}}/members/{{member}}"),
            get(get_member).delete(delete_member),
        )
        .route(&format!("{D}/customer/{{customer}}/roles"), get(list_roles))
        .route(
            &format!("{D}/customer/{{customer}}/roleassignments"),
            get(list_assignments),
        )
        .route(
            &format!("{D}/customer/{{customer}}/roleassignments/{{id}}"),
            get(get_assignment).delete(delete_assignment),
        )
        .route(
            "/admin/datatransfer/v1/transfers",
            get(list_transfers).post(insert_transfer),
        )
        .route("/admin/datatransfer/v1/transfers/{id}", get(get_transfer))
        .route(
            "/gmail/v1/users/{user}/settings/vacation",
            get(get_vacation).put(put_vacation),
        )
        .route(
            "/gmail/v1/users/{user}/settings/autoForwarding",
            get(get_forwarding).put(put_forwarding),
        )
        .route(
            "/gmail/v1/users/{user}/settings/forwardingAddresses",
            get(list_forwarding_addresses).post(add_forwarding_address),
        )
        .route(
            "/apps/licensing/v1/product/{product}/sku/{sku}/user/{user}",
            get(get_licence).delete(delete_licence),
        )
        .route("/drive/v3/files", get(list_files))
        .route("/drive/v3/files/{file}", get(get_file).patch(update_file))
        .route("/drive/v3/files/{file}/permissions", get(list_permissions))
        .route(
            "/drive/v3/files/{file}/permissions/{perm}",
            get(get_permission).delete(delete_permission),
        )
        .route("/drive/v3/drives", get(list_drives))
        .route(
            &format!("{D}/customer/{{customer}}/devices/mobile"),
            get(list_mobile),
        )
        .route(
            &format!("{D}/customer/{{customer}}/devices/mobile/{{id}}"),
            get(get_mobile),
        )
        .route(
            &format!("{D}/customer/{{customer}}/devices/mobile/{{id}}/action"),
            post(mobile_action),
        )
        .route(
            &format!("{D}/users/{{user}}/twoStepVerification/turnOff"),
            post(turn_off_2sv),
        )
}

pub(crate) async fn no_route() -> Response {
    google_error(StatusCode::NOT_FOUND, "notFound", "Not Found")
}

/// Google's 404 for a key that names nothing (`Resource Not Found: userKey`)
fn not_found(what: &str) -> Response {
    google_error(
        StatusCode::NOT_FOUND,
        "notFound",
        &format!("Resource Not Found: {what}"),
    )
}

fn bad_request(message: &str) -> Response {
    google_error(StatusCode::BAD_REQUEST, "invalid", message)
}

fn empty() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

fn query(raw: &Option<String>) -> Vec<(String, String)> {
    raw.as_deref()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn customer_ok(w: &World, c: &str) -> bool {
    c == "my_customer" || c == w.customer_id
}

/// The user a path's userKey names (the key as received, percent-decoded by axum)
fn user_id(w: &World, key: &str) -> Option<String> {
    w.find(key).map(|u| u.id.clone())
}

async fn token(State(s): S, body: Bytes) -> Response {
    issue_token(&s, &body)
}

/// One clause of the user search: (field, value, prefix match)
fn search_clause(q: &str) -> Result<(String, String, bool), ()> {
    let q = q.trim();
    let at = q.find(['=', ':']).ok_or(())?;
    let field = q[..at].trim().to_owned();
    let mut value = q[at + 1..].trim().to_owned();
    if value.len() >= 2 && value.starts_with('\'') && value.ends_with('\'') {
        value = value[1..value.len() - 1].to_owned();
    } else if value.contains(['\'', '"', ' ']) {
        return Err(());
    }
    let prefix = value.ends_with('*');
    if prefix {
        value.pop();
    }
    if !["email", "externalId"].contains(&field.as_str()) || value.is_empty() {
        return Err(());
    }
    Ok((field, value, prefix))
}

fn matches_search(u: &User, field: &str, value: &str, prefix: bool) -> bool {
    let hit = |candidate: &str| {
        let (c, v) = (candidate.to_ascii_lowercase(), value.to_ascii_lowercase());
        if prefix {
            c.starts_with(&v)
        } else {
            c == v
        }
    };
    match field {
        "email" => hit(&u.primary_email) || u.aliases.iter().any(|a| hit(a)),
        _ => u.employee_ids.iter().any(|e| hit(e)),
    }
}

async fn list_users(State(s): S, RawQuery(raw): RawQuery) -> Response {
    let q = query(&raw);
    let w = s.world();
    match (param(&q, "customer"), param(&q, "domain")) {
        (Some(c), _) if !customer_ok(&w, c) => return not_found("customer"),
        (None, None) => return bad_request("Bad Request"),
        _ => {}
    }
    let clause = match param(&q, "query") {
        None => None,
        Some(text) => match search_clause(text) {
            Ok(c) => Some(c),
            Err(()) => return bad_request("Invalid Input"),
        },
    };
    let max = param(&q, "maxResults")
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, 500);
    let offset = param(&q, "pageToken")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(0);
    let all: Vec<Value> = w
        .users
        .values()
        .filter(|u| {
            clause
                .as_ref()
                .is_none_or(|(f, v, p)| matches_search(u, f, v, *p))
        })
        .map(|u| w.user_json(u))
        .collect();
    let mut out = json!({"kind": "admin#directory#users", "etag": "\"users\""});
    let page: Vec<Value> = all.iter().skip(offset).take(max).cloned().collect();
    if !page.is_empty() {
        out["users"] = json!(page);
    }
    if offset + max < all.len() {
        out["nextPageToken"] = json!((offset + max).to_string());
    }
    Json(out).into_response()
}

async fn get_user(State(s): S, Path(user): Path<String>) -> Response {
    let w = s.world();
    match w.find(&user) {
        Some(u) => Json(w.user_json(u)).into_response(),
        None => not_found("userKey"),
    }
}

async fn update_user(State(s): S, Path(user): Path<String>, body: Bytes) -> Response {
    let Ok(patch) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("Invalid JSON payload received.");
    };
    let mut w = s.world();
    let Some(id) = user_id(&w, &user) else {
        return not_found("userKey");
    };
    if let Some(sus) = patch.get("suspended") {
        let Some(sus) = sus.as_bool() else {
            return bad_request("Invalid value for suspended");
        };
        w.edit(&id, |u| u.suspended = sus);
    }
    let u = w.users.get(&id).cloned();
    match u {
        Some(u) => Json(w.user_json(&u)).into_response(),
        None => not_found("userKey"),
    }
}

async fn delete_user(State(s): S, Path(user): Path<String>) -> Response {
    let mut w = s.world();
    let Some(id) = user_id(&w, &user) else {
        return not_found("userKey");
    };
    w.delete_user(&id);
    empty()
}

async fn sign_out(State(s): S, Path(user): Path<String>) -> Response {
    let mut w = s.world();
    let Some(id) = user_id(&w, &user) else {
        return not_found("userKey");
    };
    w.edit(&id, |u| u.sessions = 0);
    empty()
}

fn token_json(u: &User, t: &super::Grant) -> Value {
    json!({
        "kind": "admin#directory#token",
        "etag": format!("\"{}\"", t.client_id),
        "clientId": t.client_id,
        "displayText": t.display_text,
        "anonymous": false,
        "nativeApp": false,
        "scopes": t.scopes,
        "userKey": u.id,
    })
}

async fn list_tokens(State(s): S, Path(user): Path<String>) -> Response {
    let w = s.world();
    let Some(u) = w.find(&user) else {
        return not_found("userKey");
    };
    let items: Vec<Value> = u.grants.iter().map(|t| token_json(u, t)).collect();
    let mut out = json!({"kind": "admin#directory#tokenList", "etag": "\"tokens\""});
    if !items.is_empty() {
        out["items"] = json!(items);
    }
    Json(out).into_response()
}

async fn get_token(State(s): S, Path((user, client)): Path<(String, String)>) -> Response {
    let w = s.world();
    let Some(u) = w.find(&user) else {
        return not_found("userKey");
    };
    match u.grants.iter().find(|t| t.client_id == client) {
        Some(t) => Json(token_json(u, t)).into_response(),
        None => not_found("clientId"),
    }
}

async fn delete_token(State(s): S, Path((user, client)): Path<(String, String)>) -> Response {
    let mut w = s.world();
    let Some(id) = user_id(&w, &user) else {
        return not_found("userKey");
    };
    let had = w
        .users
        .get(&id)
        .is_some_and(|u| u.grants.iter().any(|t| t.client_id == client));
    if !had {
        return not_found("clientId");
    }
    w.edit(&id, |u| u.grants.retain(|t| t.client_id != client));
    empty()
}

fn asp_json(u: &User, a: &super::Asp) -> Value {
    json!({
        "kind": "admin#directory#asp",
        "etag": format!("\"{}\"", a.code_id),
        "codeId": a.code_id,
        "name": a.name,
        "creationTime": "1700000000000",
        "lastTimeUsed": "1764000000000",
        "userKey": u.id,
    })
}

async fn list_asps(State(s): S, Path(user): Path<String>) -> Response {
    let w = s.world();
    let Some(u) = w.find(&user) else {
        return not_found("userKey");
    };
    let items: Vec<Value> = u.asps.iter().map(|a| asp_json(u, a)).collect();
    let mut out = json!({"kind": "admin#directory#asps", "etag": "\"asps\""});
    if !items.is_empty() {
        out["items"] = json!(items);
    }
    Json(out).into_response()
}

async fn get_asp(State(s): S, Path((user, code)): Path<(String, String)>) -> Response {
    let Ok(code) = code.parse::<i64>() else {
        return bad_request("Invalid value for codeId");
    };
    let w = s.world();
    let Some(u) = w.find(&user) else {
        return not_found("userKey");
    };
    match u.asps.iter().find(|a| a.code_id == code) {
        Some(a) => Json(asp_json(u, a)).into_response(),
        None => not_found("codeId"),
    }
}

async fn delete_asp(State(s): S, Path((user, code)): Path<(String, String)>) -> Response {
    let Ok(code) = code.parse::<i64>() else {
        return bad_request("Invalid value for codeId");
    };
    let mut w = s.world();
    let Some(id) = user_id(&w, &user) else {
        return not_found("userKey");
    };
    let had = w
        .users
        .get(&id)
        .is_some_and(|u| u.asps.iter().any(|a| a.code_id == code));
    if !had {
        return not_found("codeId");
    }
    w.edit(&id, |u| u.asps.retain(|a| a.code_id != code));
    empty()
}

async fn invalidate_codes(State(s): S, Path(user): Path<String>) -> Response {
    let mut w = s.world();
    let Some(id) = user_id(&w, &user) else {
        return not_found("userKey");
    };
    w.edit(&id, |u| u.backup_codes = 0);
    empty()
}

async fn list_groups(State(s): S, RawQuery(raw): RawQuery) -> Response {
    let q = query(&raw);
    let w = s.world();
    let ids: Vec<String> = match param(&q, "userKey") {
        Some(key) => {
            let member = user_id(&w, key).or_else(|| {
                w.groups
                    .values()
                    .find(|g| g.id == key || g.email.eq_ignore_ascii_case(key))
                    .map(|g| g.id.clone())
            });
            match member {
                Some(m) => w.groups_of(&m),
                None => return not_found("userKey"),
            }
        }
        None => w.groups.keys().cloned().collect(),
    };
    let max = param(&q, "maxResults")
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(200)
        .clamp(1, 200);
    let offset = param(&q, "pageToken")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(0);
    let page: Vec<Value> = ids
        .iter()
        .skip(offset)
        .take(max)
        .filter_map(|id| w.groups.get(id))
        .map(|g| w.group_json(g))
        .collect();
    let mut out = json!({"kind": "admin#directory#groups", "etag": "\"groups\""});
    if !page.is_empty() {
        out["groups"] = json!(page);
    }
    if offset + max < ids.len() {
        out["nextPageToken"] = json!((offset + max).to_string());
    }
    Json(out).into_response()
}

fn group_id(w: &World, key: &str) -> Option<String> {
    w.groups
        .values()
        .find(|g| g.id == key || g.email.eq_ignore_ascii_case(key))
        .map(|g| g.id.clone())
}

/// The member id a memberKey names: a user (email, alias, id) or a group (email, id)
fn member_id(w: &World, key: &str) -> Option<String> {
    user_id(w, key).or_else(|| group_id(w, key))
}

async fn get_member(State(s): S, Path((group, member)): Path<(String, String)>) -> Response {
    let w = s.world();
    let Some(gid) = group_id(&w, &group) else {
        return not_found("groupKey");
    };
    let mid = member_id(&w, &member);
    let found = w
        .groups
        .get(&gid)
        .and_then(|g| g.members.iter().find(|m| Some(&m.id) == mid.as_ref()));
    match found {
        Some(m) => Json(json!({
            "kind": "admin#directory#member",
            "etag": format!("\"{}-{}\"", gid, m.id),
            "id": m.id,
            "email": m.email,
            "role": m.role,
            "type": m.kind,
            "status": "ACTIVE",
        }))
        .into_response(),
        None => not_found("memberKey"),
    }
}

async fn delete_member(State(s): S, Path((group, member)): Path<(String, String)>) -> Response {
    let mut w = s.world();
    let Some(gid) = group_id(&w, &group) else {
        return not_found("groupKey");
    };
    let Some(mid) = member_id(&w, &member) else {
        return not_found("memberKey");
    };
    let Some(g) = w.groups.get_mut(&gid) else {
        return not_found("groupKey");
    };
    if !g.members.iter().any(|m| m.id == mid) {
        return not_found("memberKey");
    }
    g.members.retain(|m| m.id != mid);
    empty()
}

async fn list_roles(State(s): S, Path(customer): Path<String>) -> Response {
    let w = s.world();
    if !customer_ok(&w, &customer) {
        return not_found("customer");
    }
    let items: Vec<Value> = w
        .roles
        .values()
        .map(|r| {
            json!({
                "kind": "admin#directory#role",
                "etag": format!("\"{}\"", r.id),
                "roleId": r.id,
                "roleName": r.name,
                "isSuperAdminRole": r.super_admin,
                "isSystemRole": r.super_admin,
                "rolePrivileges": [],
            })
        })
        .collect();
    Json(json!({"kind": "admin#directory#roles", "etag": "\"roles\"", "items": items}))
        .into_response()
}

fn assignment_json(a: &super::RoleAssignment) -> Value {
    json!({
        "kind": "admin#directory#roleAssignment",
        "etag": format!("\"{}\"", a.id),
        "roleAssignmentId": a.id,
        "roleId": a.role_id,
        "assignedTo": a.assigned_to,
        "assigneeType": "user",
        "scopeType": "CUSTOMER",
    })
}

async fn list_assignments(
    State(s): S,
    Path(customer): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = query(&raw);
    let w = s.world();
    if !customer_ok(&w, &customer) {
        return not_found("customer");
    }
    let who = match param(&q, "userKey") {
        Some(key) => match user_id(&w, key) {
            Some(id) => Some(id),
            None => return not_found("userKey"),
        },
        None => None,
    };
    let items: Vec<Value> = w
        .role_assignments
        .values()
        .filter(|a| who.as_ref().is_none_or(|id| &a.assigned_to == id))
        .map(assignment_json)
        .collect();
    let mut out = json!({"kind": "admin#directory#roleAssignments", "etag": "\"ra\""});
    if !items.is_empty() {
        out["items"] = json!(items);
    }
    Json(out).into_response()
}

async fn get_assignment(State(s): S, Path((customer, id)): Path<(String, String)>) -> Response {
    let w = s.world();
    if !customer_ok(&w, &customer) {
        return not_found("customer");
    }
    match w.role_assignments.get(&id) {
        Some(a) => Json(assignment_json(a)).into_response(),
        None => not_found("roleAssignmentId"),
    }
}

async fn delete_assignment(State(s): S, Path((customer, id)): Path<(String, String)>) -> Response {
    let mut w = s.world();
    if !customer_ok(&w, &customer) {
        return not_found("customer");
    }
    match w.role_assignments.remove(&id) {
        Some(_) => empty(),
        None => not_found("roleAssignmentId"),
    }
}

async fn list_transfers(State(s): S, RawQuery(raw): RawQuery) -> Response {
    let q = query(&raw);
    let w = s.world();
    let items: Vec<Value> = w
        .transfers
        .values()
        .filter(|t| param(&q, "oldOwnerUserId").is_none_or(|o| t.old_owner == o))
        .filter(|t| param(&q, "newOwnerUserId").is_none_or(|n| t.new_owner == n))
        .filter(|t| param(&q, "status").is_none_or(|st| t.status == st))
        .map(|t| w.transfer_json(t))
        .collect();
    let mut out = json!({"kind": "admin#datatransfer#dataTransfersList", "etag": "\"transfers\""});
    if !items.is_empty() {
        out["dataTransfers"] = json!(items);
    }
    Json(out).into_response()
}

async fn insert_transfer(State(s): S, body: Bytes) -> Response {
    let Ok(b) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("Invalid JSON payload received.");
    };
    let mut w = s.world();
    let old = b["oldOwnerUserId"].as_str().unwrap_or("").to_owned();
    let new = b["newOwnerUserId"].as_str().unwrap_or("").to_owned();
    if !w.users.contains_key(&old) || !w.users.contains_key(&new) || old == new {
        return bad_request("Invalid oldOwnerUserId or newOwnerUserId");
    }
    let apps = b["applicationDataTransfers"].clone();
    if apps.as_array().is_none_or(|a| a.is_empty()) {
        return bad_request("applicationDataTransfers is required");
    }
    let id = w.start_transfer(&old, &new, apps);
    let t = w.transfers.get(&id).cloned();
    match t {
        Some(t) => Json(w.transfer_json(&t)).into_response(),
        None => not_found("dataTransferId"),
    }
}

async fn get_transfer(State(s): S, Path(id): Path<String>) -> Response {
    let mut w = s.world();
    let Some(t) = w.transfers.get_mut(&id) else {
        return not_found("dataTransferId");
    };
    if t.status == "inProgress" {
        t.polls_left = t.polls_left.saturating_sub(1);
        if t.polls_left == 0 {
            w.complete_transfer(&id);
        }
    }
    let t = w.transfers.get(&id).cloned();
    match t {
        Some(t) => Json(w.transfer_json(&t)).into_response(),
        None => not_found("dataTransferId"),
    }
}

/// The mailbox's user (authorize() already checked the token's subject owns it)
fn mailbox(w: &World, user: &str) -> Option<String> {
    let user = decode(user);
    w.find(&user).map(|u| u.id.clone())
}

async fn get_vacation(State(s): S, Path(user): Path<String>) -> Response {
    let w = s.world();
    match mailbox(&w, &user).and_then(|id| w.users.get(&id)) {
        Some(u) => Json(u.vacation.clone()).into_response(),
        None => not_found("userId"),
    }
}

async fn put_vacation(State(s): S, Path(user): Path<String>, body: Bytes) -> Response {
    let Ok(b) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("Invalid JSON payload received.");
    };
    let mut w = s.world();
    let Some(id) = mailbox(&w, &user) else {
        return not_found("userId");
    };
    w.edit(&id, |u| u.vacation = b.clone());
    Json(b).into_response()
}

async fn get_forwarding(State(s): S, Path(user): Path<String>) -> Response {
    let w = s.world();
    match mailbox(&w, &user).and_then(|id| w.users.get(&id)) {
        Some(u) => Json(u.auto_forwarding.clone()).into_response(),
        None => not_found("userId"),
    }
}

async fn put_forwarding(State(s): S, Path(user): Path<String>, body: Bytes) -> Response {
    let Ok(b) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("Invalid JSON payload received.");
    };
    let mut w = s.world();
    let Some(id) = mailbox(&w, &user) else {
        return not_found("userId");
    };
    if b["enabled"] == true {
        let to = b["emailAddress"]
            .as_str()
            .unwrap_or("")
            .to_ascii_lowercase();
        let accepted = w
            .users
            .get(&id)
            .and_then(|u| u.forwarding_addresses.get(&to))
            .is_some_and(|st| st == "accepted");
        if !accepted {
            return google_error(
                StatusCode::BAD_REQUEST,
                "failedPrecondition",
                "Unverified forwarding address",
            );
        }
    }
    w.edit(&id, |u| u.auto_forwarding = b.clone());
    Json(b).into_response()
}

async fn list_forwarding_addresses(State(s): S, Path(user): Path<String>) -> Response {
    let w = s.world();
    let Some(u) = mailbox(&w, &user).and_then(|id| w.users.get(&id)) else {
        return not_found("userId");
    };
    let items: Vec<Value> = u
        .forwarding_addresses
        .iter()
        .map(|(a, st)| json!({"forwardingEmail": a, "verificationStatus": st}))
        .collect();
    let mut out = json!({});
    if !items.is_empty() {
        out["forwardingAddresses"] = json!(items);
    }
    Json(out).into_response()
}

async fn add_forwarding_address(State(s): S, Path(user): Path<String>, body: Bytes) -> Response {
    let Ok(b) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("Invalid JSON payload received.");
    };
    let to = b["forwardingEmail"]
        .as_str()
        .unwrap_or("")
        .to_ascii_lowercase();
    if !to.contains('@') {
        return bad_request("Invalid forwardingEmail");
    }
    let mut w = s.world();
    let Some(id) = mailbox(&w, &user) else {
        return not_found("userId");
    };
    if w.users
        .get(&id)
        .is_some_and(|u| u.forwarding_addresses.contains_key(&to))
    {
        return google_error(
            StatusCode::CONFLICT,
            "alreadyExists",
            "Forwarding address already exists",
        );
    }
    // An address in the domain is accepted at once with domain-wide delegation; another one
    // waits for its owner to confirm.
    let internal = to.ends_with(&format!("@{}", w.domain));
    let status = if internal { "accepted" } else { "pending" };
    w.edit(&id, |u| {
        u.forwarding_addresses.insert(to.clone(), status.to_owned());
    });
    Json(json!({"forwardingEmail": to, "verificationStatus": status})).into_response()
}

fn licence_json(product: &str, sku: &str, email: &str) -> Value {
    json!({
        "kind": "licensing#licenseAssignment",
        "etags": format!("\"{product}-{sku}-{email}\""),
        "productId": product,
        "skuId": sku,
        "userId": email,
        "selfLink": format!("https://licensing.googleapis.com/apps/licensing/v1/product/{product}/sku/{sku}/user/{email}"),
        "productName": "Google Workspace",
        "skuName": sku,
    })
}

async fn get_licence(
    State(s): S,
    Path((product, sku, user)): Path<(String, String, String)>,
) -> Response {
    let w = s.world();
    let Some(u) = w.find(&user) else {
        return not_found("userId");
    };
    if u.licences.contains(&(product.clone(), sku.clone())) {
        Json(licence_json(&product, &sku, &u.primary_email)).into_response()
    } else {
        google_error(
            StatusCode::NOT_FOUND,
            "notFound",
            "User does not have a license for specified sku and product",
        )
    }
}

async fn delete_licence(
    State(s): S,
    Path((product, sku, user)): Path<(String, String, String)>,
) -> Response {
    let mut w = s.world();
    let Some(id) = user_id(&w, &user) else {
        return not_found("userId");
    };
    let key = (product, sku);
    if !w.users.get(&id).is_some_and(|u| u.licences.contains(&key)) {
        return google_error(
            StatusCode::NOT_FOUND,
            "notFound",
            "User does not have a license for specified sku and product",
        );
    }
    w.edit(&id, |u| {
        u.licences.remove(&key);
    });
    empty()
}

/// One clause of a Drive search: `'me' in owners`, `trashed = false`, `name = '...'`,
/// `mimeType = '...'`, `'<id>' in parents`, `appProperties has { key='k' and value='v' }`; anything else is Google's 400 "Invalid Value"
#[derive(Debug, Clone, PartialEq, Eq)]
enum Clause {
    MeOwner,
    NotTrashed,
    Name(String),
    Mime(String),
    Parent(String),
    AppProperty(String, String),
}

/// A quoted Drive search value (`\'` is a quote)
fn quoted(v: &str) -> Option<String> {
    let v = v.trim();
    let inner = v.strip_prefix('\'')?.strip_suffix('\'')?;
    // Every quote inside must be escaped.
    let bare = inner.replace("\\'", "");
    (!bare.contains('\'')).then(|| inner.replace("\\'", "'"))
}

/// Splits a Drive search at its top-level ` and `s (not inside quotes or braces)
fn split_and(text: &str) -> Vec<String> {
    let (mut out, mut cur) = (Vec::new(), String::new());
    let (mut depth, mut quoted, mut escaped) = (0u32, false, false);
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if !quoted && depth == 0 && chars[i..].iter().take(5).collect::<String>() == " and " {
            out.push(std::mem::take(&mut cur));
            i += 5;
            continue;
        }
        match c {
            '\\' if quoted && !escaped => escaped = true,
            '\'' if !escaped => quoted = !quoted,
            '{' if !quoted => depth += 1,
            '}' if !quoted => depth = depth.saturating_sub(1),
            _ => escaped = false,
        }
        if c != '\\' {
            escaped = false;
        }
        cur.push(c);
        i += 1;
    }
    out.push(cur);
    out
}

fn drive_query(q: &str) -> Result<Vec<Clause>, ()> {
    let mut out = Vec::new();
    let text = q.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return Ok(out);
    }
    for c in split_and(&text) {
        let c = c.trim();
        let clause = if c == "'me' in owners" {
            Clause::MeOwner
        } else if c == "trashed = false" {
            Clause::NotTrashed
        } else if let Some(v) = c.strip_prefix("name = ") {
            Clause::Name(quoted(v).ok_or(())?)
        } else if let Some(v) = c.strip_prefix("mimeType = ") {
            Clause::Mime(quoted(v).ok_or(())?)
        } else if let Some(v) = c.strip_suffix(" in parents") {
            Clause::Parent(quoted(v).ok_or(())?)
        } else if let Some(inner) = c
            .strip_prefix("appProperties has {")
            .and_then(|x| x.strip_suffix('}'))
        {
            let parts = split_and(inner.trim());
            let [k, v] = parts.as_slice() else {
                return Err(());
            };
            let k = quoted(k.trim().strip_prefix("key=").ok_or(())?).ok_or(())?;
            let v = quoted(v.trim().strip_prefix("value=").ok_or(())?).ok_or(())?;
            Clause::AppProperty(k, v)
        } else {
            return Err(());
        };
        out.push(clause);
    }
    Ok(out)
}

/// The addresses (lowercase) of the user a token was issued for
fn addresses_of(w: &World, subject: &str) -> Vec<String> {
    w.find(subject)
        .map(|u| {
            std::iter::once(&u.primary_email)
                .chain(u.aliases.iter())
                .map(|a| a.to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default()
}

fn is_admin(w: &World, subject: &str) -> bool {
    w.find(subject).is_some_and(|u| u.is_admin && !u.suspended)
}

/// The role a user holds on a shared drive
fn drive_role(w: &World, drive: &str, subject: &str) -> Option<String> {
    let mine = addresses_of(w, subject);
    w.drives.get(drive)?.permissions.iter().find_map(|p| {
        p.email
            .as_ref()
            .filter(|e| mine.contains(&e.to_ascii_lowercase()))
            .map(|_| p.role.clone())
    })
}

/// Whether a user can see a file: its owner, a user permission on one of their addresses, or a
/// member of its shared drive
fn can_see(w: &World, f: &super::DriveFile, subject: &str) -> bool {
    let mine = addresses_of(w, subject);
    let me = w.find(subject).map(|u| u.id.clone());
    if f.owner.is_some() && f.owner == me {
        return true;
    }
    if f.permissions.iter().any(|p| {
        p.email
            .as_ref()
            .is_some_and(|e| mine.contains(&e.to_ascii_lowercase()))
    }) {
        return true;
    }
    f.drive_id
        .as_ref()
        .is_some_and(|d| drive_role(w, d, subject).is_some())
}

fn file_not_found(id: &str) -> Response {
    google_error(
        StatusCode::NOT_FOUND,
        "notFound",
        &format!("File not found: {id}."),
    )
}

fn truthy(q: &[(String, String)], name: &str) -> bool {
    param(q, name) == Some("true")
}

/// `files.list`: the token's own counted files (`'me' in owners`, [`User::drive_files`] of them,
/// named `file N`), then the files and folders of [`World::files`] the token's user can see and
/// the search matches; `corpora` `user` (My Drive and shared with me), `drive` (one shared drive,
/// `driveId`), `allDrives` (both); the last two need `includeItemsFromAllDrives` and
/// `supportsAllDrives`, as Google requires
async fn list_files(State(s): S, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let q = query(&raw);
    let Ok(clauses) = drive_query(param(&q, "q").unwrap_or("")) else {
        return bad_request("Invalid Value");
    };
    let corpora = param(&q, "corpora").unwrap_or("user");
    let all_drives = truthy(&q, "includeItemsFromAllDrives") && truthy(&q, "supportsAllDrives");
    if !matches!(corpora, "user" | "drive" | "allDrives") {
        return bad_request("Invalid Value");
    }
    if corpora != "user" && !all_drives {
        return bad_request(
            "The includeItemsFromAllDrives parameter must be set to true when the corpora parameter is drive or allDrives.",
        );
    }
    let drive = param(&q, "driveId");
    if (corpora == "drive") != drive.is_some() {
        return bad_request(
            "The driveId parameter must be specified if and only if corpora is set to drive.",
        );
    }
    let Some(subject) = super::token_subject(&s, &headers) else {
        return google_error(StatusCode::UNAUTHORIZED, "authError", "Invalid Credentials");
    };
    let w = s.world();
    let Some(u) = w.find(&subject) else {
        return not_found("fileOwner");
    };
    // The counted files: only a plain search of one's own files lists them.
    let plain = clauses
        .iter()
        .all(|c| matches!(c, Clause::MeOwner | Clause::NotTrashed))
        && clauses.contains(&Clause::MeOwner)
        && corpora != "drive";
    let counted = if plain { u.drive_files } else { 0 };
    let size = u.drive_bytes.checked_div(u.drive_files).unwrap_or(0);
    let real: Vec<Value> = w
        .files
        .values()
        .filter(|f| match (corpora, &f.drive_id) {
            ("user", Some(_)) => false,
            ("drive", d) => d.as_deref() == drive,
            _ => true,
        })
        .filter(|f| {
            clauses.iter().all(|c| match c {
                Clause::MeOwner => f.owner.as_deref() == Some(u.id.as_str()),
                Clause::NotTrashed => true,
                Clause::Name(n) => &f.name == n,
                Clause::Mime(m) => &f.mime_type == m,
                Clause::Parent(p) => f.parents.contains(p),
                Clause::AppProperty(k, v) => f.app_properties.get(k) == Some(v),
            })
        })
        // After the search, which is cheaper: a scan of a large world stays quick.
        .filter(|f| can_see(&w, f, &subject))
        .map(|f| w.file_json(f))
        .collect();
    let total = counted + real.len() as u64;
    let max = param(&q, "pageSize")
        .and_then(|m| m.parse::<u64>().ok())
        .unwrap_or(100)
        .clamp(1, 1_000);
    let offset = param(&q, "pageToken")
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0);
    let files: Vec<Value> = (offset..total.min(offset + max))
        .map(|n| {
            if n < counted {
                json!({
                    "kind": "drive#file",
                    "id": format!("1{}f{n}", u.id),
                    "name": format!("file {n}"),
                    "size": size.to_string(),
                })
            } else {
                real[(n - counted) as usize].clone()
            }
        })
        .collect();
    let mut out = json!({"kind": "drive#fileList", "incompleteSearch": false, "files": files});
    if offset + max < total {
        out["nextPageToken"] = json!((offset + max).to_string());
    }
    Json(out).into_response()
}

/// A file the token's user can see; a shared drive's file only with `supportsAllDrives`
/// (Google answers 404 without it)
fn visible_file(
    w: &World,
    id: &str,
    subject: &str,
    q: &[(String, String)],
) -> Result<super::DriveFile, Box<Response>> {
    let f = w
        .files
        .get(id)
        .ok_or_else(|| Box::new(file_not_found(id)))?;
    let admin = truthy(q, "useDomainAdminAccess") && is_admin(w, subject);
    if (f.drive_id.is_some() && !truthy(q, "supportsAllDrives"))
        || !(admin || can_see(w, f, subject))
    {
        return Err(Box::new(file_not_found(id)));
    }
    Ok(f.clone())
}

async fn get_file(
    State(s): S,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = query(&raw);
    let subject = super::token_subject(&s, &headers).unwrap_or_default();
    let w = s.world();
    match visible_file(&w, &id, &subject, &q) {
        Ok(f) => Json(w.file_json(&f)).into_response(),
        Err(r) => *r,
    }
}

/// `files.update`: `addParents`/`removeParents` (a move; into a shared drive it needs the
/// drive's `organizer` role for a folder, `organizer` or `fileOrganizer` for a file, and takes
/// the folder's contents along: the drive owns them from then on) and `appProperties`
async fn update_file(
    State(s): S,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let q = query(&raw);
    let patch: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => return bad_request("Invalid JSON payload received."),
        }
    };
    let subject = super::token_subject(&s, &headers).unwrap_or_default();
    let mut w = s.world();
    let f = match visible_file(&w, &id, &subject, &q) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let me = w.find(&subject).map(|u| u.id.clone());
    let may_edit = f.owner.is_some() && f.owner == me
        || f.drive_id
            .as_ref()
            .and_then(|d| drive_role(&w, d, &subject))
            .is_some_and(|r| matches!(r.as_str(), "organizer" | "fileOrganizer" | "writer"));
    if !may_edit {
        return google_error(
            StatusCode::FORBIDDEN,
            "insufficientFilePermissions",
            "The user does not have sufficient permissions for this file.",
        );
    }
    let list = |k: &str| -> Vec<String> {
        param(&q, k)
            .map(|v| {
                v.split(',')
                    .filter(|x| !x.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let (add, remove) = (list("addParents"), list("removeParents"));
    if let Some(r) = remove.iter().find(|r| !f.parents.contains(r)) {
        return bad_request(&format!("File {id} does not have parent {r}."));
    }
    // Where the new parent lives: a shared drive (its id, or a folder in it) or My Drive.
    let mut target_drive = None;
    for a in &add {
        let d = if w.drives.contains_key(a) {
            Some(a.clone())
        } else if let Some(p) = w.files.get(a) {
            p.drive_id.clone()
        } else {
            return file_not_found(a);
        };
        if let Some(d) = d {
            if !truthy(&q, "supportsAllDrives") {
                return file_not_found(a);
            }
            let role = drive_role(&w, &d, &subject);
            let ok = match role.as_deref() {
                Some("organizer") => true,
                Some("fileOrganizer") => f.mime_type != super::FOLDER,
                _ => false,
            };
            if !ok {
                return google_error(
                    StatusCode::FORBIDDEN,
                    "teamDrivesFolderMoveInNotSupported",
                    "Moving folders into shared drives requires the organizer role on the shared drive.",
                );
            }
            target_drive = Some(d);
        }
    }
    let mut parents: Vec<String> = f
        .parents
        .iter()
        .filter(|p| !remove.contains(p))
        .cloned()
        .collect();
    parents.extend(add.iter().cloned());
    if parents.len() > 1 {
        return google_error(
            StatusCode::FORBIDDEN,
            "cannotAddParent",
            "Increasing the number of parents is not allowed.",
        );
    }
    // The file and everything under it move into the drive.
    let mut moved = vec![id.clone()];
    if target_drive.is_some() {
        let mut i = 0;
        while i < moved.len() {
            let parent = moved[i].clone();
            moved.extend(
                w.files
                    .values()
                    .filter(|x| x.parents.contains(&parent))
                    .map(|x| x.id.clone()),
            );
            i += 1;
        }
    }
    for m in &moved {
        let d = target_drive.clone();
        w.edit_file(m, |x| {
            if let Some(d) = d {
                x.drive_id = Some(d);
                x.owner = None;
                x.permissions.retain(|p| p.role != "owner");
            }
        });
    }
    let props = patch
        .get("appProperties")
        .and_then(Value::as_object)
        .cloned();
    w.edit_file(&id, |x| {
        x.parents = parents;
        for (k, v) in props.into_iter().flatten() {
            match v.as_str() {
                Some(v) => {
                    x.app_properties.insert(k, v.to_owned());
                }
                None => {
                    x.app_properties.remove(&k);
                }
            }
        }
    });
    let f = w.files.get(&id).cloned();
    match f {
        Some(f) => Json(w.file_json(&f)).into_response(),
        None => file_not_found(&id),
    }
}

/// The permissions of a file or of a shared drive (a drive's id names its root), as the token's
/// user sees them; a drive's with `useDomainAdminAccess` for an admin
fn permissions_of(
    w: &World,
    id: &str,
    subject: &str,
    q: &[(String, String)],
) -> Result<Vec<super::Permission>, Box<Response>> {
    if let Some(d) = w.drives.get(id) {
        let admin = truthy(q, "useDomainAdminAccess") && is_admin(w, subject);
        if !truthy(q, "supportsAllDrives") || !(admin || drive_role(w, id, subject).is_some()) {
            return Err(Box::new(file_not_found(id)));
        }
        return Ok(d.permissions.clone());
    }
    visible_file(w, id, subject, q).map(|f| f.permissions)
}

/// The permissions of a file as Drive lists them: a shared drive's file lists the drive's members
/// too, inherited, and says which part of each permission is the file's own (Drive v3
/// `permissionDetails`; one permission id with both parts for a member also shared the file)
fn listed(w: &World, id: &str, ps: &[super::Permission]) -> Vec<Value> {
    let mut items: Vec<Value> = ps.iter().map(World::permission_json).collect();
    let drive = w
        .files
        .get(id)
        .and_then(|f| f.drive_id.as_ref())
        .and_then(|d| w.drives.get(d));
    let Some(d) = drive else {
        return items;
    };
    let detail = |kind: &str, role: &str, inherited: bool| {
        let mut v = json!({"permissionType": kind, "role": role, "inherited": inherited});
        if inherited {
            v["inheritedFrom"] = json!(d.id);
        }
        v
    };
    for v in &mut items {
        let role = v["role"].as_str().unwrap_or("").to_owned();
        v["permissionDetails"] = json!([detail("file", &role, false)]);
    }
    for p in &d.permissions {
        let inherited = detail("member", &p.role, true);
        match items.iter_mut().find(|v| v["id"] == json!(p.id)) {
            Some(v) => {
                if let Some(a) = v["permissionDetails"].as_array_mut() {
                    a.push(inherited);
                }
            }
            None => {
                let mut v = World::permission_json(p);
                v["permissionDetails"] = json!([inherited]);
                items.push(v);
            }
        }
    }
    items
}

async fn list_permissions(
    State(s): S,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = query(&raw);
    let subject = super::token_subject(&s, &headers).unwrap_or_default();
    let w = s.world();
    match permissions_of(&w, &id, &subject, &q) {
        Ok(ps) => {
            Json(json!({"kind": "drive#permissionList", "permissions": listed(&w, &id, &ps)}))
                .into_response()
        }
        Err(r) => *r,
    }
}

fn permission_not_found(id: &str) -> Response {
    google_error(
        StatusCode::NOT_FOUND,
        "notFound",
        &format!("Permission not found: {id}."),
    )
}

async fn get_permission(
    State(s): S,
    headers: HeaderMap,
    Path((id, perm)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = query(&raw);
    let subject = super::token_subject(&s, &headers).unwrap_or_default();
    let w = s.world();
    match permissions_of(&w, &id, &subject, &q) {
        // A drive member reads as the inherited permission on each of the drive's files.
        Ok(ps) => match listed(&w, &id, &ps)
            .into_iter()
            .find(|p| p["id"] == perm.as_str())
        {
            Some(p) => Json(p).into_response(),
            None => permission_not_found(&perm),
        },
        Err(r) => *r,
    }
}

/// Deletes a permission (204); the owner's cannot be (403 `cannotDeletePermission`), and only
/// the owner, a writer of a file, or a drive's organizer (or an admin with
/// `useDomainAdminAccess`) may
async fn delete_permission(
    State(s): S,
    headers: HeaderMap,
    Path((id, perm)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = query(&raw);
    let subject = super::token_subject(&s, &headers).unwrap_or_default();
    let mut w = s.world();
    let ps = match permissions_of(&w, &id, &subject, &q) {
        Ok(ps) => ps,
        Err(r) => return *r,
    };
    let Some(p) = ps.iter().find(|p| p.id == perm) else {
        return permission_not_found(&perm);
    };
    if p.role == "owner" {
        return google_error(
            StatusCode::FORBIDDEN,
            "cannotDeletePermission",
            "The authenticated user cannot delete the owner's permission.",
        );
    }
    let admin = truthy(&q, "useDomainAdminAccess") && is_admin(&w, &subject);
    let me = w.find(&subject).map(|u| u.id.clone());
    let allowed = admin
        || match w.drives.get(&id) {
            Some(_) => drive_role(&w, &id, &subject).as_deref() == Some("organizer"),
            None => w.files.get(&id).is_some_and(|f| {
                (f.owner.is_some() && f.owner == me)
                    || f.drive_id
                        .as_ref()
                        .and_then(|d| drive_role(&w, d, &subject))
                        .is_some_and(|r| matches!(r.as_str(), "organizer" | "fileOrganizer"))
            }),
        };
    if !allowed {
        return google_error(
            StatusCode::FORBIDDEN,
            "insufficientFilePermissions",
            "The user does not have sufficient permissions for this file.",
        );
    }
    if let Some(d) = w.drives.get_mut(&id) {
        d.permissions.retain(|p| p.id != perm);
    } else {
        w.edit_file(&id, |f| f.permissions.retain(|p| p.id != perm));
    }
    empty()
}

/// `drives.list`: every shared drive with `useDomainAdminAccess` (an admin), else the token
/// user's
async fn list_drives(State(s): S, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let q = query(&raw);
    let subject = super::token_subject(&s, &headers).unwrap_or_default();
    let w = s.world();
    let admin = truthy(&q, "useDomainAdminAccess") && is_admin(&w, &subject);
    let ids: Vec<&super::SharedDrive> = w
        .drives
        .values()
        .filter(|d| admin || drive_role(&w, &d.id, &subject).is_some())
        .collect();
    let max = param(&q, "pageSize")
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(10)
        .clamp(1, 100);
    let offset = param(&q, "pageToken")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(0);
    let page: Vec<Value> = ids
        .iter()
        .skip(offset)
        .take(max)
        .map(|d| json!({"kind": "drive#drive", "id": d.id, "name": d.name}))
        .collect();
    let mut out = json!({"kind": "drive#driveList", "drives": page});
    if offset + max < ids.len() {
        out["nextPageToken"] = json!((offset + max).to_string());
    }
    Json(out).into_response()
}

/// `mobiledevices.list`; `query` knows `email:<address>` (the owner's, any case)
async fn list_mobile(
    State(s): S,
    Path(customer): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = query(&raw);
    let w = s.world();
    if !customer_ok(&w, &customer) {
        return not_found("customer");
    }
    let email = match param(&q, "query") {
        None => None,
        Some(text) => match text.trim().strip_prefix("email:") {
            Some(e) if !e.is_empty() && !e.contains([' ', '*']) => Some(e.to_ascii_lowercase()),
            _ => return bad_request("Invalid Input: query"),
        },
    };
    let items: Vec<Value> = w
        .mobile_devices
        .values()
        .filter(|d| {
            email
                .as_ref()
                .is_none_or(|e| d.owner_emails.iter().any(|o| o.eq_ignore_ascii_case(e)))
        })
        .map(|d| w.mobile_json(d))
        .collect();
    let mut out = json!({"kind": "admin#directory#mobiledevices", "etag": "\"mobile\""});
    if !items.is_empty() {
        out["mobiledevices"] = json!(items);
    }
    Json(out).into_response()
}

async fn get_mobile(State(s): S, Path((customer, id)): Path<(String, String)>) -> Response {
    let w = s.world();
    if !customer_ok(&w, &customer) {
        return not_found("customer");
    }
    match w.mobile_devices.get(&id) {
        Some(d) => Json(w.mobile_json(d)).into_response(),
        None => not_found("resourceId"),
    }
}

/// `mobiledevices.action`: `admin_account_wipe` (status `ACCOUNT_WIPING`), `admin_remote_wipe`
/// (`WIPING`), `approve`, `block`; every action is kept in [`super::MobileDevice::actions`]
async fn mobile_action(
    State(s): S,
    Path((customer, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Ok(b) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("Invalid JSON payload received.");
    };
    let action = b["action"].as_str().unwrap_or("").to_owned();
    let status = match action.as_str() {
        "admin_account_wipe" => "ACCOUNT_WIPING",
        "admin_remote_wipe" => "WIPING",
        "approve" => "APPROVED",
        "block" => "BLOCKED",
        _ => return bad_request("Invalid Input: action"),
    };
    let mut w = s.world();
    if !customer_ok(&w, &customer) {
        return not_found("customer");
    }
    match w.mobile_devices.get_mut(&id) {
        Some(d) => {
            d.status = status.to_owned();
            d.actions.push(action);
            empty()
        }
        None => not_found("resourceId"),
    }
}

/// `twoStepVerification.turnOff`: 204; a user not enrolled is a 400
async fn turn_off_2sv(State(s): S, Path(user): Path<String>) -> Response {
    let mut w = s.world();
    let Some(id) = user_id(&w, &user) else {
        return not_found("userKey");
    };
    if !w.users.get(&id).is_some_and(|u| u.two_sv) {
        return bad_request("2-Step Verification is not enrolled for the user.");
    }
    w.edit(&id, |u| u.two_sv = false);
    empty()
}

/// One part of a batch request: its `Content-ID` (without `<>`) and the HTTP request it holds
struct Part {
    id: String,
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// The boundary of a `multipart/mixed` content type
fn boundary_of(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/mixed") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

fn split_head(s: &str) -> Option<(&str, &str)> {
    s.split_once("\r\n\r\n").or_else(|| s.split_once("\n\n"))
}

fn header_pairs(head: &str) -> Vec<(String, String)> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// The parts of a batch body (Google's format: each part `Content-Type: application/http`, an
/// optional `Content-ID`, an empty line, then the request line, its headers and body)
fn parse_parts(boundary: &str, body: &str) -> Option<Vec<Part>> {
    let delimiter = format!("--{boundary}");
    let mut sections = body.split(delimiter.as_str());
    sections.next()?;
    let mut out = Vec::new();
    for (n, section) in sections.enumerate() {
        if section.starts_with("--") {
            return Some(out);
        }
        let section = section.strip_prefix("\r\n").unwrap_or(section);
        let (mime, http) = split_head(section)?;
        let mime = header_pairs(mime);
        let id = mime
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-id"))
            .map(|(_, v)| v.trim_matches(['<', '>']).to_owned())
            .unwrap_or_else(|| format!("part{}", n + 1));
        let (head, body) = split_head(http).unwrap_or((http.trim_end(), ""));
        let mut lines = head.lines();
        let mut request_line = lines.next()?.split_whitespace();
        let method = request_line.next()?.to_owned();
        let target = request_line.next()?.to_owned();
        let rest: String = lines.collect::<Vec<_>>().join("\n");
        out.push(Part {
            id,
            method,
            target,
            headers: header_pairs(&rest),
            body: body.strip_suffix("\r\n").unwrap_or(body).to_owned(),
        });
    }
    None
}

/// An answer read off the wire: its status line, headers and body
type Answer = (String, Vec<(String, String)>, Vec<u8>);

/// Sends one part to `addr` (this stand-in or Prism in front of it) over HTTP/1.1 and reads the
/// answer: (status line, headers, body)
fn replay(addr: &str, part: &Part, authorization: Option<&str>) -> std::io::Result<Answer> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    let mut req = format!(
        "{} {} HTTP/1.1\r\nHost: {addr}\r\n",
        part.method, part.target
    );
    let mut has_auth = false;
    for (k, v) in &part.headers {
        let k_l = k.to_ascii_lowercase();
        if matches!(
            k_l.as_str(),
            "host" | "connection" | "content-length" | "transfer-encoding"
        ) {
            continue;
        }
        has_auth |= k_l == "authorization";
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let (false, Some(a)) = (has_auth, authorization) {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    req.push_str(&format!(
        "{}: {}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{}",
        super::PART_HEADER,
        part.id,
        part.body.len(),
        part.body
    ));
    stream.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an http answer");
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(bad)?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut body = raw[end + 4..].to_vec();
    let mut lines = head.lines();
    let status_line = lines.next().ok_or_else(bad)?.to_owned();
    let headers = header_pairs(&lines.collect::<Vec<_>>().join("\n"));
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n").ok_or_else(bad)?;
            let size = std::str::from_utf8(&rest[..eol])
                .ok()
                .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
                .ok_or_else(bad)?;
            rest = &rest[eol + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(rest.get(..size).ok_or_else(bad)?);
            rest = rest.get(size + 2..).unwrap_or(&[]);
        }
        body = out;
    }
    Ok((status_line, headers, body))
}

/// `POST /batch/admin/directory_v1`: each part replayed through the same URL the connector
/// calls (Prism, once [`super::GoogleStandin::prism`] started it, else this stand-in), so each
/// inner call is authorized, spends the budget, meets storms and faults and is recorded as a
/// call of its own; the answer is one `application/http` part per request, `Content-ID:
/// <response-ID>`, as Google's batch answers
/// (https://developers.google.com/workspace/admin/directory/v1/guides/batch)
async fn batch(State(s): S, headers: HeaderMap, body: Bytes) -> Response {
    let ct = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(boundary) = boundary_of(ct) else {
        return bad_request("expected a multipart/mixed body");
    };
    let Some(parts) = parse_parts(&boundary, &String::from_utf8_lossy(&body)) else {
        return bad_request("expected multipart/mixed parts holding http requests");
    };
    if parts.is_empty() || parts.len() > 1_000 {
        return bad_request("a batch holds 1 to 1000 requests");
    }
    let authorization = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let addr = super::lock(&s.replay).clone();
    let answers = tokio::task::spawn_blocking(move || {
        parts
            .iter()
            .map(|p| (p.id.clone(), replay(&addr, p, authorization.as_deref())))
            .collect::<Vec<_>>()
    })
    .await;
    let Ok(answers) = answers else {
        return google_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "backendError",
            "Backend Error",
        );
    };
    let out_boundary = "batch_standin_answer";
    let mut out = String::new();
    for (id, answer) in answers {
        let (status_line, headers, body) = match answer {
            Ok(a) => a,
            Err(_) => (
                "HTTP/1.1 503 Service Unavailable".to_owned(),
                vec![("Content-Type".to_owned(), "application/json".to_owned())],
                br#"{"error":{"code":503,"message":"Backend Error","errors":[{"message":"Backend Error","domain":"global","reason":"backendError"}],"status":"UNAVAILABLE"}}"#.to_vec(),
            ),
        };
        out.push_str(&format!(
            "--{out_boundary}\r\nContent-Type: application/http\r\nContent-ID: <response-{id}>\r\n\r\n{status_line}\r\n"
        ));
        for (k, v) in &headers {
            if k.eq_ignore_ascii_case("content-type") || k.eq_ignore_ascii_case("retry-after") {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        out.push_str(&format!(
            "Content-Length: {}\r\n\r\n{}\r\n",
            body.len(),
            String::from_utf8_lossy(&body)
        ));
    }
    out.push_str(&format!("--{out_boundary}--\r\n"));
    (
        [(
            http::header::CONTENT_TYPE,
            format!("multipart/mixed; boundary={out_boundary}"),
        )],
        out,
    )
        .into_response()
}
