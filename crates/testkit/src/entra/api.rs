//! The Graph v1.0 calls of the contract, dispatched by path, and `$batch`
//!
//! | call | answers |
//! |---|---|
//! | `GET /users?$filter&$select&$top&$count` | the forms of [`parse_filter`]; paged; `$count` only with `ConsistencyLevel: eventual` |
//! | `GET /users/{id or UPN}?$select` | 404 `Request_ResourceNotFound` when gone |
//! | `PATCH /users/{id}` | `accountEnabled`, `displayName` (and `@odata.type`); 204; a synced user 400 |
//! | `DELETE /users/{id}` | soft delete, 204; then 404; a synced user 400 |
//! | `POST /users/{id}/[microsoft.graph.]revokeSignInSessions` | 200 `{"value":true}` |
//! | `POST /users/{id}/[microsoft.graph.]assignLicense` | 200 the user; 400 for a group-assigned or unassigned SKU |
//! | `GET /users/{id}/memberOf` | groups, directory roles, administrative units; paged |
//! | `GET /users/{id}/appRoleAssignments`, `DELETE .../{aid}` | 204; 404 |
//! | `GET /users/{id}/authentication/methods`, `DELETE .../{kind}Methods/{mid}` | 204; 404; the password method 405 |
//! | `GET /users/{id}/ownedDevices`, `/registeredDevices` | paged |
//! | `GET /roleManagement/directory/roleAssignments?$filter=principalId eq 'x'`, `DELETE .../{rid}` | 204; 404 |
//! | `DELETE /groups/{gid}/members/{uid}/$ref` | 204; not a member 404; mail-enabled, distribution, dynamic, on-prem synced 400 |
//! | `GET`, `DELETE /directory/deletedItems/{id}`, `GET /directory/deletedItems/microsoft.graph.user` | 204; 404 |
//! | `POST /$batch` | 1..=20 parts, each through [`super::serve`]; answers shuffled |

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::{json, Map, Value};

use super::world::{Group, GroupKind, Method, MethodKind, User, World};
use super::{lock, serve, Answer, Call, Shared};

const T0: &str = "2026-01-05T09:00:00Z";

/// Graph's 400 for a change to an object mastered in on-premises AD (a synced group's members, a
/// synced user's accountEnabled)
const ON_PREM_MASTERED: &str = "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration.";
const CONTEXT: &str = "https://graph.microsoft.com/v1.0/$metadata";

/// The properties a user has without `$select` (Graph's default set)
const USER_DEFAULT: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

/// A percent-decoded path segment or query value
pub(crate) fn decode(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_pairs(q: &Option<String>) -> Vec<(String, String)> {
    q.as_deref()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn not_found(s: &Shared, id: &str) -> Answer {
    s.error(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        &format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
    )
}

fn bad_request(s: &Shared, code: &str, message: &str) -> Answer {
    s.error(StatusCode::BAD_REQUEST, code, message)
}

fn method_not_allowed(s: &Shared) -> Answer {
    s.error(
        StatusCode::METHOD_NOT_ALLOWED,
        "Request_BadRequest",
        "Specified HTTP method is not allowed for the request target.",
    )
}

/// Every call under `/v1.0` but `$batch`
pub(crate) fn dispatch(s: &Arc<Shared>, call: &Call) -> Answer {
    let rest = call.path.strip_prefix("/v1.0").unwrap_or(&call.path);
    let segs: Vec<String> = rest
        .trim_matches('/')
        .split('/')
        .filter(|x| !x.is_empty())
        .map(decode)
        .collect();
    let seg: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = call.method.as_str();
    let action = |name: &str, x: &str| x == name || x == format!("microsoft.graph.{name}");
    match seg.as_slice() {
        ["users"] => match m {
            "GET" => list_users(s, call),
            _ => method_not_allowed(s),
        },
        ["users", id] => match m {
            "GET" => get_user(s, call, id),
            "PATCH" => patch_user(s, call, id),
            "DELETE" => delete_user(s, id),
            _ => method_not_allowed(s),
        },
        ["users", id, a] if action("revokeSignInSessions", a) => match m {
            "POST" => revoke_sessions(s, id),
            _ => method_not_allowed(s),
        },
        ["users", id, a] if action("assignLicense", a) => match m {
            "POST" => assign_license(s, call, id),
            _ => method_not_allowed(s),
        },
        ["users", id, "memberOf"] => match m {
            "GET" => member_of(s, call, id),
            _ => method_not_allowed(s),
        },
        ["users", id, "appRoleAssignments"] => match m {
            "GET" => app_roles(s, call, id),
            _ => method_not_allowed(s),
        },
        ["users", id, "appRoleAssignments", aid] => match m {
            "DELETE" => delete_app_role(s, id, aid),
            _ => method_not_allowed(s),
        },
        ["users", id, "authentication", "methods"] => match m {
            "GET" => methods(s, call, id),
            _ => method_not_allowed(s),
        },
        ["users", id, "authentication", kind, mid] if MethodKind::from_segment(kind).is_some() => {
            match m {
                "DELETE" => delete_method(s, id, kind, mid),
                _ => method_not_allowed(s),
            }
        }
        ["users", id, rel @ ("ownedDevices" | "registeredDevices")] => match m {
            "GET" => devices(s, call, id, rel == &"ownedDevices"),
            _ => method_not_allowed(s),
        },
        ["roleManagement", "directory", "roleAssignments"] => match m {
            "GET" => role_assignments(s, call),
            _ => method_not_allowed(s),
        },
        ["roleManagement", "directory", "roleAssignments", rid] => match m {
            "DELETE" => delete_role_assignment(s, rid),
            _ => method_not_allowed(s),
        },
        ["groups", gid, "members", uid, "$ref"] => match m {
            "DELETE" => remove_member(s, gid, uid),
            _ => method_not_allowed(s),
        },
        ["directory", "deletedItems", "microsoft.graph.user"] => match m {
            "GET" => deleted_users(s, call),
            _ => method_not_allowed(s),
        },
        ["directory", "deletedItems", id] => match m {
            "GET" => get_deleted(s, id),
            "DELETE" => purge(s, id),
            _ => method_not_allowed(s),
        },
        _ => bad_request(
            s,
            "BadRequest",
            &format!(
                "Resource not found for the segment '{}'.",
                seg.last().copied().unwrap_or("")
            ),
        ),
    }
}

/// A user by object id or UPN (Graph takes both in the path)
fn find_user<'a>(w: &'a World, key: &str) -> Option<&'a User> {
    w.users
        .get(key)
        .or_else(|| w.users.values().find(|u| u.id.eq_ignore_ascii_case(key)))
        .or_else(|| w.users.values().find(|u| u.upn.eq_ignore_ascii_case(key)))
}

fn user_id(w: &World, key: &str) -> Option<String> {
    find_user(w, key).map(|u| u.id.clone())
}

/// Every property the stand-in knows of a user
pub(crate) fn user_json(u: &User) -> Map<String, Value> {
    let mut skus: Vec<&str> = Vec::new();
    for l in &u.licenses {
        if !skus.contains(&l.sku_id.as_str()) {
            skus.push(&l.sku_id);
        }
    }
    let v = json!({
        "id": u.id,
        "businessPhones": [],
        "displayName": u.display_name,
        "givenName": null,
        "jobTitle": null,
        "mail": u.mail,
        "mobilePhone": null,
        "officeLocation": null,
        "preferredLanguage": null,
        "surname": null,
        "userPrincipalName": u.upn,
        "otherMails": u.other_mails,
        "proxyAddresses": u.proxy_addresses,
        "employeeId": u.employee_id,
        "accountEnabled": u.account_enabled,
        "userType": u.user_type,
        "onPremisesSyncEnabled": u.on_prem_sync_enabled,
        "onPremisesImmutableId": u.on_prem_immutable_id,
        "onPremisesSamAccountName": u.on_prem_sam,
        "signInSessionsValidFromDateTime": u.sessions_valid_from,
        "assignedLicenses": skus.iter().map(|s| json!({ "disabledPlans": [], "skuId": s})).collect::<Vec<_>>(),
        "licenseAssignmentStates": u.licenses.iter().map(|l| json!({

                        "assignedByGroup": l.by_group,
            "disabledPlans": [],
            "error": "None",
            "lastUpdatedDateTime": T0,
            "skuId": l.sku_id,
            "state": "Active",
        })).collect::<Vec<_>>(),
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The user's properties `$select` names (names compared case-insensitively), or the default
/// set; an unknown name is the error message
fn select_user(u: &User, select: Option<&str>) -> Result<Value, String> {
    let all = user_json(u);
    let mut out = Map::new();
    match select {
        None => {
            for k in USER_DEFAULT {
                if let Some(v) = all.get(*k) {
                    out.insert((*k).to_owned(), v.clone());
                }
            }
        }
        Some(sel) => {
            for name in sel.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                match all
                    .iter()
                    .find(|(k, _)| *k != "@odata.type" && k.eq_ignore_ascii_case(name))
                {
                    Some((k, v)) => {
                        out.insert(k.clone(), v.clone());
                    }
                    None => {
                        return Err(format!(
                        "Could not find a property named '{name}' on type 'microsoft.graph.user'."
                    ))
                    }
                }
            }
        }
    }
    Ok(Value::Object(out))
}

/// Keeps `$select`'s properties of a directory object (and its `@odata.type`); unknown names
/// are left out, as Graph does for properties of another derived type
fn select_loose(mut v: Map<String, Value>, select: Option<&str>) -> Value {
    if let Some(sel) = select {
        let names: Vec<&str> = sel.split(',').map(str::trim).collect();
        v.retain(|k, _| k == "@odata.type" || names.iter().any(|n| n.eq_ignore_ascii_case(k)));
    }
    Value::Object(v)
}

/// One page of `items`, with `@odata.nextLink` when more are left
fn page(s: &Shared, call: &Call, items: Vec<Value>, context: &str) -> Answer {
    let pairs = query_pairs(&call.query);
    let size = *lock(&s.page_size);
    let top = param(&pairs, "$top").and_then(|t| t.parse::<usize>().ok());
    let size = top.map_or(size, |t| t.clamp(1, 999).min(size));
    let offset = match param(&pairs, "$skiptoken") {
        None => 0,
        Some(t) => match t.strip_prefix("RFNwdAIA").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => n,
            None => {
                return bad_request(
                    s,
                    "Directory_ExpiredPageToken",
                    "The specified page token value has expired and can no longer be included in your request.",
                )
            }
        },
    };
    let total = items.len();
    let end = (offset + size).min(total);
    let mut body = json!({
        "@odata.context": format!("{CONTEXT}#{context}"),
        "value": items.into_iter().skip(offset).take(size).collect::<Vec<_>>(),
    });
    if param(&pairs, "$count").is_some_and(|c| c.eq_ignore_ascii_case("true")) {
        body["@odata.count"] = json!(total);
    }
    if end < total {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("$skiptoken"))
        {
            q.append_pair(k, v);
        }
        q.append_pair("$skiptoken", &format!("RFNwdAIA{end}"));
        body["@odata.nextLink"] = json!(format!(
            "{}{}?{}",
            lock(&s.public_origin),
            call.path,
            q.finish()
        ));
    }
    Answer::json(StatusCode::OK, body)
}

/// The user properties `$filter` takes, and which of them are advanced queries
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FilterProp {
    /// `id eq 'x'`
    Id,
    /// `userPrincipalName eq 'x'`
    Upn,
    /// `mail eq 'x'`
    Mail,
    /// `employeeId eq 'x'`
    EmployeeId,
    /// `onPremisesImmutableId eq 'x'`
    ImmutableId,
    /// `onPremisesSamAccountName eq 'x'` (advanced: `ConsistencyLevel: eventual` + `$count=true`)
    Sam,
    /// `otherMails/any(m:m eq 'x')`
    OtherMails,
    /// `proxyAddresses/any(p:p eq 'smtp:x')`
    ProxyAddresses,
}

/// Why a `$filter` is refused: a syntax error (400 `BadRequest`) or an unsupported clause (400
/// `Request_UnsupportedQuery`, naming the property)
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FilterError {
    Syntax(String),
    Unsupported(String),
}

/// An OData string literal (`'o''brien'`) that must make up the whole of `s`
fn literal(s: &str) -> Option<String> {
    let inner = s.trim().strip_prefix('\'')?.strip_suffix('\'')?;
    let mut out = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            // a quote inside must be doubled
            if chars.next() != Some('\'') {
                return None;
            }
        }
        out.push(c);
    }
    Some(out)
}

/// Exactly the forms of the contract: `<prop> eq '<v>'` and `<coll>/any(x:x eq '<v>')`
pub(crate) fn parse_filter(expr: &str) -> Result<(FilterProp, String), FilterError> {
    let e = expr.trim();
    let syntax = || FilterError::Syntax(format!("Invalid filter clause: syntax error in '{e}'."));
    if let Some((coll, rest)) = e.split_once("/any(") {
        let prop = match coll.trim() {
            c if c.eq_ignore_ascii_case("otherMails") => FilterProp::OtherMails,
            c if c.eq_ignore_ascii_case("proxyAddresses") => FilterProp::ProxyAddresses,
            c => return Err(FilterError::Unsupported(c.to_owned())),
        };
        let body = rest.trim_end().strip_suffix(')').ok_or_else(syntax)?;
        let (var, cond) = body.split_once(':').ok_or_else(syntax)?;
        let var = var.trim();
        if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(syntax());
        }
        let cond = cond.trim_start();
        let Some(after_var) = cond.strip_prefix(var) else {
            // another lambda (`startswith(m,'x')`) is OData, just not served; `n eq` is wrong
            return Err(if cond.contains(" eq ") {
                syntax()
            } else {
                FilterError::Unsupported(coll.trim().to_owned())
            });
        };
        let value = after_var
            .strip_prefix(" eq ")
            .or_else(|| after_var.trim_start().strip_prefix("eq "))
            .ok_or_else(|| FilterError::Unsupported(coll.trim().to_owned()))?;
        return literal(value).map(|v| (prop, v)).ok_or_else(syntax);
    }
    let Some((lhs, rhs)) = e.split_once(' ') else {
        // a function (`startswith(mail,'x')`) is OData, just not one of the served forms
        return Err(match e.split_once('(') {
            Some((f, _)) if !f.is_empty() && f.chars().all(|c| c.is_ascii_alphabetic()) => {
                FilterError::Unsupported(f.to_owned())
            }
            _ => syntax(),
        });
    };
    let rhs = rhs.trim_start();
    let Some(value) = rhs.strip_prefix("eq ") else {
        return Err(FilterError::Unsupported(lhs.to_owned()));
    };
    let prop = match lhs {
        p if p.eq_ignore_ascii_case("id") => FilterProp::Id,
        p if p.eq_ignore_ascii_case("userPrincipalName") => FilterProp::Upn,
        p if p.eq_ignore_ascii_case("mail") => FilterProp::Mail,
        p if p.eq_ignore_ascii_case("employeeId") => FilterProp::EmployeeId,
        p if p.eq_ignore_ascii_case("onPremisesImmutableId") => FilterProp::ImmutableId,
        p if p.eq_ignore_ascii_case("onPremisesSamAccountName") => FilterProp::Sam,
        p => return Err(FilterError::Unsupported(p.to_owned())),
    };
    literal(value).map(|v| (prop, v)).ok_or_else(syntax)
}

fn matches(u: &User, prop: FilterProp, v: &str) -> bool {
    let eq = |x: &str| x.to_lowercase() == v.to_lowercase();
    let opt = |x: &Option<String>| x.as_deref().is_some_and(eq);
    match prop {
        FilterProp::Id => eq(&u.id),
        FilterProp::Upn => eq(&u.upn),
        FilterProp::Mail => opt(&u.mail),
        FilterProp::EmployeeId => opt(&u.employee_id),
        FilterProp::ImmutableId => opt(&u.on_prem_immutable_id),
        FilterProp::Sam => opt(&u.on_prem_sam),
        FilterProp::OtherMails => u.other_mails.iter().any(|m| eq(m)),
        FilterProp::ProxyAddresses => u.proxy_addresses.iter().any(|m| eq(m)),
    }
}

fn advanced(call: &Call, pairs: &[(String, String)]) -> bool {
    let eventual = call
        .headers
        .get("consistencylevel")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("eventual"));
    eventual && param(pairs, "$count").is_some_and(|c| c.eq_ignore_ascii_case("true"))
}

fn unsupported_filter(s: &Shared, prop: &str, resource: &str) -> Answer {
    bad_request(
        s,
        "Request_UnsupportedQuery",
        &format!("Unsupported or invalid query filter clause specified for property '{prop}' of resource '{resource}'."),
    )
}

fn list_users(s: &Arc<Shared>, call: &Call) -> Answer {
    let pairs = query_pairs(&call.query);
    let count = param(&pairs, "$count").is_some_and(|c| c.eq_ignore_ascii_case("true"));
    if count && !advanced(call, &pairs) {
        // `$count` on directory objects is itself an advanced query
        return bad_request(
            s,
            "Request_BadRequest",
            "$count is not currently supported without the ConsistencyLevel: eventual header.",
        );
    }
    let filter = match param(&pairs, "$filter") {
        None => None,
        Some(f) => match parse_filter(f) {
            Ok((FilterProp::Sam, _)) if !advanced(call, &pairs) => {
                return unsupported_filter(s, "onPremisesSamAccountName", "User")
            }
            Ok(p) => Some(p),
            Err(FilterError::Syntax(m)) => return bad_request(s, "BadRequest", &m),
            Err(FilterError::Unsupported(p)) => return unsupported_filter(s, &p, "User"),
        },
    };
    let select = param(&pairs, "$select");
    let w = s.world();
    let mut items = Vec::new();
    for u in w.users.values() {
        if filter.as_ref().is_none_or(|(p, v)| matches(u, *p, v)) {
            match select_user(u, select) {
                Ok(v) => items.push(v),
                Err(m) => return bad_request(s, "Request_BadRequest", &m),
            }
        }
    }
    if let (true, Some(sel)) = (items.is_empty(), select) {
        // an unknown $select name is refused even when nothing matches
        if let Some(u) = w.users.values().next() {
            if let Err(m) = select_user(u, Some(sel)) {
                return bad_request(s, "Request_BadRequest", &m);
            }
        }
    }
    drop(w);
    page(s, call, items, "users")
}

fn get_user(s: &Shared, call: &Call, key: &str) -> Answer {
    let pairs = query_pairs(&call.query);
    let w = s.world();
    let Some(u) = find_user(&w, key) else {
        return not_found(s, key);
    };
    match select_user(u, param(&pairs, "$select")) {
        Ok(mut v) => {
            v["@odata.context"] = json!(format!("{CONTEXT}#users/$entity"));
            Answer::json(StatusCode::OK, v)
        }
        Err(m) => bad_request(s, "Request_BadRequest", &m),
    }
}

fn json_body(s: &Shared, call: &Call) -> Result<Map<String, Value>, Answer> {
    match serde_json::from_slice::<Value>(&call.body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(bad_request(
            s,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
        )),
    }
}

fn patch_user(s: &Shared, call: &Call, key: &str) -> Answer {
    let body = match json_body(s, call) {
        Ok(b) => b,
        Err(a) => return a,
    };
    for (k, v) in &body {
        let ok = match k.as_str() {
            "accountEnabled" => v.is_boolean(),
            "displayName" => v.is_string(),
            "@odata.type" => v == "#microsoft.graph.user",
            _ => {
                return bad_request(
                    s,
                    "Request_BadRequest",
                    &format!(
                    "Property '{k}' does not exist as a declared property or extension property."
                ),
                )
            }
        };
        if !ok {
            return bad_request(
                s,
                "Request_BadRequest",
                &format!("Invalid value specified for property '{k}' of resource 'User'."),
            );
        }
    }
    let mut w = s.world();
    let Some(id) = user_id(&w, key) else {
        return not_found(s, key);
    };
    if w.users
        .get(&id)
        .is_some_and(|u| u.on_prem_sync_enabled == Some(true))
    {
        // a synced user's accountEnabled and displayName are mastered in on-premises AD
        return bad_request(s, "Request_BadRequest", ON_PREM_MASTERED);
    }
    if let Some(u) = w.users.get_mut(&id) {
        if let Some(b) = body.get("accountEnabled").and_then(Value::as_bool) {
            u.account_enabled = b;
        }
        if let Some(n) = body.get("displayName").and_then(Value::as_str) {
            u.display_name = n.to_owned();
        }
    }
    Answer::no_content()
}

fn delete_user(s: &Shared, key: &str) -> Answer {
    let mut w = s.world();
    match user_id(&w, key) {
        Some(id)
            if w.get(&id)
                .is_some_and(|u| u.on_prem_sync_enabled == Some(true)) =>
        {
            bad_request(s, "Request_BadRequest", ON_PREM_MASTERED)
        }
        Some(id) => {
            w.soft_delete(&id);
            Answer::no_content()
        }
        None => not_found(s, key),
    }
}

fn revoke_sessions(s: &Shared, key: &str) -> Answer {
    let mut w = s.world();
    let Some(id) = user_id(&w, key) else {
        return not_found(s, key);
    };
    if let Some(u) = w.users.get_mut(&id) {
        u.sessions = 0;
        u.revocations += 1;
        u.sessions_valid_from = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    }
    Answer::json(
        StatusCode::OK,
        json!({"@odata.context": format!("{CONTEXT}#Edm.Boolean"), "value": true}),
    )
}

fn assign_license(s: &Shared, call: &Call, key: &str) -> Answer {
    let body = match json_body(s, call) {
        Ok(b) => b,
        Err(a) => return a,
    };
    let (Some(Value::Array(add)), Some(Value::Array(remove))) =
        (body.get("addLicenses"), body.get("removeLicenses"))
    else {
        return bad_request(
            s,
            "Request_BadRequest",
            "Invalid value specified for property 'addLicenses' or 'removeLicenses' of resource 'User': both are required.",
        );
    };
    let mut add_skus = Vec::new();
    for a in add {
        match a.get("skuId").and_then(Value::as_str) {
            Some(sku) => add_skus.push(sku.to_owned()),
            None => {
                return bad_request(
                    s,
                    "Request_BadRequest",
                    "Invalid value specified for property 'skuId' of resource 'AssignedLicense'.",
                )
            }
        }
    }
    let mut remove_skus = Vec::new();
    for r in remove {
        match r.as_str() {
            Some(sku) => remove_skus.push(sku.to_lowercase()),
            None => {
                return bad_request(
                    s,
                    "Request_BadRequest",
                    "Invalid value specified for property 'removeLicenses' of resource 'User'.",
                )
            }
        }
    }
    let mut w = s.world();
    let Some(id) = user_id(&w, key) else {
        return not_found(s, key);
    };
    let Some(u) = w.users.get_mut(&id) else {
        return not_found(s, key);
    };
    for sku in &remove_skus {
        let held: Vec<_> = u
            .licenses
            .iter()
            .filter(|l| l.sku_id.to_lowercase() == *sku)
            .collect();
        if held.is_empty() {
            return bad_request(
                s,
                "Request_BadRequest",
                "User does not have a corresponding license.",
            );
        }
        if held.iter().all(|l| l.by_group.is_some()) {
            return bad_request(
                s,
                "Request_BadRequest",
                "User license is inherited from a group membership and it cannot be removed directly from the user.",
            );
        }
    }
    u.licenses
        .retain(|l| l.by_group.is_some() || !remove_skus.contains(&l.sku_id.to_lowercase()));
    for sku in add_skus {
        if !u
            .licenses
            .iter()
            .any(|l| l.sku_id == sku && l.by_group.is_none())
        {
            u.licenses.push(super::world::License {
                sku_id: sku,
                by_group: None,
            });
        }
    }
    let mut v = select_user(u, None).unwrap_or_default();
    v["@odata.context"] = json!(format!("{CONTEXT}#users/$entity"));
    Answer::json(StatusCode::OK, v)
}

/// groupTypes, mailEnabled, securityEnabled, mail, onPremisesSyncEnabled, membershipRule
type GroupShape = (
    Vec<&'static str>,
    bool,
    bool,
    Option<String>,
    Option<bool>,
    Option<&'static str>,
);

fn group_json(g: &Group, domain: &str) -> Map<String, Value> {
    let nick: String = g
        .display_name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let mail = format!("{nick}@{}", domain.replace(".onmicrosoft.com", ".com"));
    let (types, mail_enabled, security_enabled, mail, sync, rule): GroupShape = match g.kind {
        GroupKind::Security => (vec![], false, true, None, None, None),
        GroupKind::Unified => (vec!["Unified"], true, false, Some(mail), None, None),
        GroupKind::MailEnabledSecurity => (vec![], true, true, Some(mail), None, None),
        GroupKind::Distribution => (vec![], true, false, Some(mail), None, None),
        GroupKind::Dynamic => (
            vec!["DynamicMembership"],
            false,
            true,
            None,
            None,
            Some("(user.department -eq \"Sales\")"),
        ),
        GroupKind::OnPremSynced => (vec![], false, true, None, Some(true), None),
    };
    let v = json!({
        "@odata.type": "#microsoft.graph.group",
        "id": g.id,
        "displayName": g.display_name,
        "groupTypes": types,
        "mailEnabled": mail_enabled,
        "securityEnabled": security_enabled,
        "mail": mail,
        "mailNickname": nick,
        "onPremisesSyncEnabled": sync,
        "membershipRule": rule,
        "membershipRuleProcessingState": rule.map(|_| "On"),
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn member_of(s: &Shared, call: &Call, key: &str) -> Answer {
    let pairs = query_pairs(&call.query);
    let select = param(&pairs, "$select");
    let w = s.world();
    let Some(id) = user_id(&w, key) else {
        return not_found(s, key);
    };
    let mut items: Vec<Value> = w
        .groups
        .values()
        .filter(|g| g.members.contains(&id))
        .map(|g| select_loose(group_json(g, &w.domain), select))
        .collect();
    for (rid, (name, template, members)) in &w.directory_roles {
        if members.contains(&id) {
            let v = json!({
                "@odata.type": "#microsoft.graph.directoryRole",
                "id": rid,
                "displayName": name,
                "description": name,
                "roleTemplateId": template,
            });
            if let Value::Object(m) = v {
                items.push(select_loose(m, select));
            }
        }
    }
    for (aid, (name, members)) in &w.admin_units {
        if members.contains(&id) {
            let v = json!({
                "@odata.type": "#microsoft.graph.administrativeUnit",
                "id": aid,
                "displayName": name,
                "description": null,
                "visibility": null,
            });
            if let Value::Object(m) = v {
                items.push(select_loose(m, select));
            }
        }
    }
    drop(w);
    page(s, call, items, "directoryObjects")
}

fn app_roles(s: &Shared, call: &Call, key: &str) -> Answer {
    let pairs = query_pairs(&call.query);
    let w = s.world();
    let Some(u) = find_user(&w, key) else {
        return not_found(s, key);
    };
    let items: Vec<Value> = w
        .apps_of(&u.id)
        .into_iter()
        .map(|a| {
            let v = json!({
                "id": a.id,
                "deletedDateTime": null,
                "appRoleId": a.app_role_id,
                "createdDateTime": T0,
                "principalDisplayName": u.display_name,
                "principalId": a.principal_id,
                "principalType": "User",
                "resourceDisplayName": a.resource_display_name,
                "resourceId": a.resource_id,
            });
            match v {
                Value::Object(m) => select_loose(m, param(&pairs, "$select")),
                other => other,
            }
        })
        .collect();
    let ctx = format!("users('{}')/appRoleAssignments", u.id);
    drop(w);
    page(s, call, items, &ctx)
}

fn delete_app_role(s: &Shared, key: &str, aid: &str) -> Answer {
    let mut w = s.world();
    let Some(id) = user_id(&w, key) else {
        return not_found(s, key);
    };
    let held = w
        .app_role_assignments
        .get(aid)
        .is_some_and(|a| a.principal_id == id);
    if !held {
        return not_found(s, aid);
    }
    w.app_role_assignments.remove(aid);
    Answer::no_content()
}

fn method_json(m: &Method, u: &User) -> Value {
    let mut v = match m.kind {
        MethodKind::Password => json!({"password": null, "createdDateTime": T0}),
        MethodKind::Phone => {
            json!({"phoneNumber": "+1 2065550123", "phoneType": "mobile", "smsSignInState": "notSupported"})
        }
        MethodKind::Fido2 => json!({
            "displayName": "YubiKey 5 NFC", "createdDateTime": T0,
            "aaGuid": "cb69481e-8ff7-4039-93ec-0a2729a154a8", "model": "YubiKey 5 NFC",
            "attestationCertificates": [], "attestationLevel": "attested"
        }),
        MethodKind::MicrosoftAuthenticator => json!({
            "displayName": "Pixel 8", "deviceTag": "SoftwareTokenActivated",
            "phoneAppVersion": "6.2401.0119", "createdDateTime": T0
        }),
        MethodKind::SoftwareOath => json!({"secretKey": null}),
        MethodKind::TemporaryAccessPass => json!({
            "temporaryAccessPass": null, "createdDateTime": T0, "startDateTime": T0,
            "lifetimeInMinutes": 60, "isUsableOnce": false, "isUsable": false,
            "methodUsabilityReason": "Expired"
        }),
        MethodKind::WindowsHelloForBusiness => json!({
            "displayName": "LAPTOP-7", "createdDateTime": T0, "keyStrength": "normal"
        }),
        MethodKind::Email => {
            json!({"emailAddress": u.other_mails.first().cloned().unwrap_or_else(|| "personal@example.net".into())})
        }
    };
    v["@odata.type"] = json!(m.kind.odata_type());
    v["id"] = json!(m.id);
    v
}

fn methods(s: &Shared, call: &Call, key: &str) -> Answer {
    let w = s.world();
    let Some(u) = find_user(&w, key) else {
        return not_found(s, key);
    };
    let items: Vec<Value> = w
        .methods_of(&u.id)
        .iter()
        .map(|m| method_json(m, u))
        .collect();
    let ctx = format!("users('{}')/authentication/methods", u.id);
    drop(w);
    page(s, call, items, &ctx)
}

fn delete_method(s: &Shared, key: &str, kind_seg: &str, mid: &str) -> Answer {
    let Some(kind) = MethodKind::from_segment(kind_seg) else {
        return method_not_allowed(s);
    };
    if kind == MethodKind::Password {
        // passwordMethods has no DELETE in Graph v1.0 (a password is reset, not removed)
        return method_not_allowed(s);
    }
    let mut w = s.world();
    let Some(id) = user_id(&w, key) else {
        return not_found(s, key);
    };
    let found = w
        .methods
        .get(mid)
        .is_some_and(|m| m.user_id == id && m.kind == kind);
    if !found {
        return s.error(
            StatusCode::NOT_FOUND,
            "itemNotFound",
            &format!("The {kind_seg} entry '{mid}' was not found for the user."),
        );
    }
    w.methods.remove(mid);
    Answer::no_content()
}

fn devices(s: &Shared, call: &Call, key: &str, owned: bool) -> Answer {
    let pairs = query_pairs(&call.query);
    let w = s.world();
    let Some(id) = user_id(&w, key) else {
        return not_found(s, key);
    };
    let items: Vec<Value> = w
        .devices
        .values()
        .filter(|d| {
            if owned {
                d.owners.contains(&id)
            } else {
                d.registered_users.contains(&id)
            }
        })
        .map(|d| {
            let v = json!({
                "@odata.type": "#microsoft.graph.device",
                "id": d.id,
                "accountEnabled": true,
                "deviceId": d.id,
                "displayName": d.display_name,
                "operatingSystem": "Windows",
                "operatingSystemVersion": "10.0.22631.4169",
                "trustType": "AzureAd",
            });
            match v {
                Value::Object(m) => select_loose(m, param(&pairs, "$select")),
                other => other,
            }
        })
        .collect();
    drop(w);
    page(s, call, items, "directoryObjects")
}

fn role_assignments(s: &Shared, call: &Call) -> Answer {
    let pairs = query_pairs(&call.query);
    let filter = match param(&pairs, "$filter") {
        None => None,
        Some(f) => {
            let f = f.trim();
            let parsed = f.split_once(' ').and_then(|(lhs, rhs)| {
                let v = literal(rhs.trim_start().strip_prefix("eq ")?)?;
                Some((lhs.to_owned(), v))
            });
            match parsed {
                Some((lhs, v))
                    if lhs.eq_ignore_ascii_case("principalId")
                        || lhs.eq_ignore_ascii_case("roleDefinitionId") =>
                {
                    Some((lhs.eq_ignore_ascii_case("principalId"), v))
                }
                Some((lhs, _)) => return unsupported_filter(s, &lhs, "RoleAssignment"),
                None => {
                    return bad_request(
                        s,
                        "BadRequest",
                        &format!("Invalid filter clause: syntax error in '{f}'."),
                    )
                }
            }
        }
    };
    let w = s.world();
    let items: Vec<Value> = w
        .role_assignments
        .values()
        .filter(|r| match &filter {
            None => true,
            Some((true, v)) => r.principal_id.eq_ignore_ascii_case(v),
            Some((false, v)) => r.role_definition_id.eq_ignore_ascii_case(v),
        })
        .map(|r| {
            json!({
                "id": r.id,
                "principalId": r.principal_id,
                "roleDefinitionId": r.role_definition_id,
                "directoryScopeId": r.directory_scope_id,
            })
        })
        .collect();
    drop(w);
    page(s, call, items, "roleManagement/directory/roleAssignments")
}

fn delete_role_assignment(s: &Shared, rid: &str) -> Answer {
    if s.world().remove_role_assignment(rid) {
        Answer::no_content()
    } else {
        not_found(s, rid)
    }
}

fn remove_member(s: &Shared, gid: &str, uid: &str) -> Answer {
    let mut w = s.world();
    let Some(g) = w.groups.get_mut(gid) else {
        return not_found(s, gid);
    };
    if !g.members.contains(uid) {
        return s.error(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            "One or more removed object references do not exist for the following modified properties: 'members'.",
        );
    }
    let refusal = match g.kind {
        GroupKind::Security | GroupKind::Unified => None,
        GroupKind::MailEnabledSecurity | GroupKind::Distribution => Some(
            "Unable to update the specified properties for objects that have originated within an external service.",
        ),
        GroupKind::OnPremSynced => Some(ON_PREM_MASTERED),
        GroupKind::Dynamic => Some(
            "Insufficient privileges to complete the operation. Members of a group with dynamic membership are set by its membership rule.",
        ),
    };
    if let Some(message) = refusal {
        return bad_request(s, "Request_BadRequest", message);
    }
    g.members.remove(uid);
    Answer::no_content()
}

fn deleted_json(w: &World, id: &str) -> Option<Value> {
    let d = w.deleted.get(id)?;
    let mut v = select_user(&d.user, None).ok()?;
    v["@odata.type"] = json!("#microsoft.graph.user");
    v["deletedDateTime"] = json!(d.deleted_at);
    Some(v)
}

fn get_deleted(s: &Shared, id: &str) -> Answer {
    let w = s.world();
    match deleted_json(&w, id) {
        Some(mut v) => {
            v["@odata.context"] = json!(format!("{CONTEXT}#directoryObjects/$entity"));
            Answer::json(StatusCode::OK, v)
        }
        None => not_found(s, id),
    }
}

fn deleted_users(s: &Shared, call: &Call) -> Answer {
    let w = s.world();
    let items: Vec<Value> = w
        .deleted
        .keys()
        .filter_map(|id| deleted_json(&w, id))
        .collect();
    drop(w);
    page(s, call, items, "directoryObjects")
}

fn purge(s: &Shared, id: &str) -> Answer {
    if s.world().purge(id) {
        Answer::no_content()
    } else {
        not_found(s, id)
    }
}

/// `POST /$batch`: 1 to 20 parts, ids unique; each part goes through [`serve`] (token check,
/// budgets, storms, faults, recorder, hold) with the envelope's `Authorization`; a part whose
/// `dependsOn` failed is 424; the answers come back shuffled, as Graph may order them
pub(crate) async fn batch(s: &Arc<Shared>, call: &Call) -> Answer {
    let invalid = |m: &str| bad_request(s, "BadRequest", m);
    let Ok(body) = serde_json::from_slice::<Value>(&call.body) else {
        return invalid("Invalid batch payload format.");
    };
    let Some(requests) = body.get("requests").and_then(Value::as_array) else {
        return invalid("Invalid batch payload format.");
    };
    if requests.is_empty() {
        return invalid("Invalid batch payload format: the batch holds no requests.");
    }
    if requests.len() > 20 {
        return invalid("Invalid batch payload format: a batch holds at most 20 requests.");
    }
    let mut ids = HashSet::new();
    for r in requests {
        let id = r.get("id").and_then(Value::as_str).unwrap_or("");
        let method = r.get("method").and_then(Value::as_str).unwrap_or("");
        let url = r.get("url").and_then(Value::as_str).unwrap_or("");
        if id.is_empty() || method.is_empty() || url.is_empty() {
            return invalid(
                "Invalid batch payload format: every request needs an id, a method and a url.",
            );
        }
        if !ids.insert(id.to_lowercase()) {
            return invalid("Batch request contains duplicate request ids.");
        }
    }
    let authorization = call.headers.get(http::header::AUTHORIZATION).cloned();
    let mut statuses: BTreeMap<String, u16> = BTreeMap::new();
    let mut responses = Vec::new();
    for r in requests {
        let id = r["id"].as_str().unwrap_or("").to_owned();
        let method = r["method"].as_str().unwrap_or("").to_ascii_uppercase();
        let url = r["url"].as_str().unwrap_or("");
        let depends: Vec<String> = match r.get("dependsOn") {
            Some(Value::Array(d)) => d
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        let failed_dependency = depends
            .iter()
            .any(|d| statuses.get(d).is_none_or(|st| !(200..300).contains(st)));
        let answer = if failed_dependency {
            s.error(
                StatusCode::FAILED_DEPENDENCY,
                "BadRequest",
                "Failed dependency.",
            )
        } else if url.starts_with("http://") || url.starts_with("https://") {
            s.error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Invalid request: the url of a batch request is relative to the version (e.g. /users).",
            )
        } else {
            let mut headers = HeaderMap::new();
            if let Some(a) = &authorization {
                headers.insert(http::header::AUTHORIZATION, a.clone());
            }
            if let Some(Value::Object(h)) = r.get("headers") {
                for (k, v) in h {
                    if let (Ok(name), Some(Ok(value))) = (
                        HeaderName::from_bytes(k.as_bytes()),
                        v.as_str().map(HeaderValue::from_str),
                    ) {
                        headers.insert(name, value);
                    }
                }
            }
            let body = match r.get("body") {
                None | Some(Value::Null) => Vec::new(),
                Some(b) => serde_json::to_vec(b).unwrap_or_default(),
            };
            if !body.is_empty() && !headers.contains_key(http::header::CONTENT_TYPE) {
                s.error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "Content-Type header is required when a batch request has a body.",
                )
            } else {
                let (path, query) = match url.split_once('?') {
                    Some((p, q)) => (p, Some(q.to_owned())),
                    None => (url, None),
                };
                let part = Call {
                    method: method.clone(),
                    path: format!("/v1.0/{}", path.trim_start_matches('/')),
                    query,
                    headers,
                    body,
                    in_batch: true,
                };
                Box::pin(serve(s, part)).await
            }
        };
        statuses.insert(id.clone(), answer.status.as_u16());
        let mut headers = Map::new();
        for (k, v) in &answer.headers {
            headers.insert(k.clone(), json!(v));
        }
        let mut out = json!({"id": id, "status": answer.status.as_u16()});
        if let Some(b) = answer.body {
            headers.insert(
                "Content-Type".into(),
                json!("application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8"),
            );
            out["body"] = b;
        }
        out["headers"] = Value::Object(headers);
        responses.push(out);
    }
    {
        use rand::seq::SliceRandom;
        responses.shuffle(&mut rand::rng());
    }
    Answer::json(StatusCode::OK, json!({ "responses": responses }))
}

#[cfg(test)]
mod tests {
    use super::{decode, literal, parse_filter, FilterError, FilterProp};

    #[test]
    fn the_listed_filter_forms_parse_and_nothing_else_does() {
        let ok = |f: &str| parse_filter(f).expect(f);
        assert_eq!(
            ok("userPrincipalName eq 'a@b.com'"),
            (FilterProp::Upn, "a@b.com".into())
        );
        assert_eq!(
            ok("mail eq 'o''brien@b.com'"),
            (FilterProp::Mail, "o'brien@b.com".into())
        );
        assert_eq!(
            ok("otherMails/any(m:m eq 'x@y.z')"),
            (FilterProp::OtherMails, "x@y.z".into())
        );
        assert_eq!(
            ok("proxyAddresses/any(p: p eq 'smtp:x@y.z')"),
            (FilterProp::ProxyAddresses, "smtp:x@y.z".into())
        );
        assert_eq!(
            ok("employeeId eq ''''"),
            (FilterProp::EmployeeId, "'".into())
        );
        assert_eq!(
            ok("onPremisesSamAccountName eq 'S'"),
            (FilterProp::Sam, "S".into())
        );
        // an injection attempt that was escaped is one literal
        assert_eq!(
            ok("mail eq 'x'' or accountEnabled eq true or mail eq ''y'"),
            (
                FilterProp::Mail,
                "x' or accountEnabled eq true or mail eq 'y".into()
            )
        );
        for bad in [
            "mail eq 'o'brien'",
            "mail eq 'x' or mail eq 'y'",
            "mail eq x",
            "otherMails/any(m:n eq 'x')",
            "otherMails/any(m:m eq 'x'",
        ] {
            assert!(
                matches!(parse_filter(bad), Err(FilterError::Syntax(_))),
                "{bad}"
            );
        }
        for unsupported in [
            "displayName eq 'x'",
            "mail ne 'x'",
            "startswith(mail,'x')",
            "imAddresses/any(i:i eq 'x')",
            "otherMails/any(m:startswith(m,'x'))",
        ] {
            assert!(
                matches!(parse_filter(unsupported), Err(FilterError::Unsupported(_))),
                "{unsupported}: {:?}",
                parse_filter(unsupported)
            );
        }
    }

    #[test]
    fn literals_and_path_segments_decode() {
        assert_eq!(literal("'a''b'"), Some("a'b".into()));
        assert_eq!(literal("'a'b'"), None);
        assert_eq!(literal("a"), None);
        assert_eq!(
            decode("x_y.com%23EXT%23%40t.onmicrosoft.com"),
            "x_y.com#EXT#@t.onmicrosoft.com"
        );
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
    }
}
