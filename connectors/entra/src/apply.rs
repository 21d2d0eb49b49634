//! Apply and verify, each on the user the plan pinned (its object id). Every call names the
//! pinned object id, never a UPN, so a write cannot reach another user whatever was renamed
//! or reused since the plan.
//!
//! - Contain reads the user first (`GET /users/{id}`): an account already disabled is
//!   `AlreadyDone` without a write. Graph cannot list sessions, so `revoke_sessions` records
//!   `sessions_revoked` in the action's journal once Graph confirmed it, and a later attempt
//!   that finds it is `AlreadyDone`.
//! - A removal (group membership, app role, directory role, method) is one write on its first
//!   attempt, conditional by nature: Graph refuses it with 404 when the membership or assignment
//!   is gone, and only then does the connector read the pinned user's list to conclude
//!   `AlreadyDone`. A later attempt (the answer to an earlier one may have been lost) reads
//!   first and writes only what is still there.
//! - Whenever the pinned user is gone (404), nothing is left to act on, unless its planned UPN
//!   now names another user (deleted and re-created, or the UPN given to someone else): then
//!   the action fails as `identity_changed` and sends nothing more.
//! - A group Graph cannot change and a licence that comes from a group are `Skipped` with the
//!   reason, without a request when discovery knew, or on Graph's 400 saying so.

use reqwest::Method;
use revoke_core::{AccountPin, Action, ActionKey, ConnectorError, Journal, Outcome, Verdict};
use serde_json::{json, Value};
use tracing::debug;

use crate::classify::{self, Reply};
use crate::client::{encode, Client};
use crate::config::is_guid;
use crate::discover::{
    fetch_lists, fetch_objects, is_object_id, parse_user, role_assignments_path, search, Get, User,
    CHANGEABLE_KINDS, USER_SELECT,
};
use crate::plan::{
    DELETE_USER, DISABLE_USER, PURGE_USER, REMOVE_APP_ROLE, REMOVE_AUTH_METHOD,
    REMOVE_DIRECTORY_ROLE, REMOVE_GROUP, REMOVE_LICENSE, REVOKE_SESSIONS,
};

/// The journal entry of a confirmed session revocation (its value: the user id).
pub const SESSIONS_REVOKED: &str = "sessions_revoked";

pub struct Ctx<'a> {
    pub client: &'a Client,
    pub instance: &'a str,
}

fn param<'a>(action: &'a Action, name: &str) -> Result<&'a str, ConnectorError> {
    action
        .params
        .get(name)
        .map(String::as_str)
        .filter(|v| is_object_id(v))
        .ok_or_else(|| {
            ConnectorError::permanent(
                "bad_action",
                format!(
                    "{} {}: expected a graph id in the {name} parameter, found {:?}",
                    action.kind,
                    action.target,
                    action.params.get(name)
                ),
            )
        })
}

fn flag(action: &Action, name: &str) -> String {
    action.params.get(name).cloned().unwrap_or_default()
}

/// The pinned account and its id, which the plan's `user_id` must agree with.
fn pinned(action: &Action) -> Result<(&AccountPin, &str), ConnectorError> {
    let pin = action.pinned()?;
    let user_id = param(action, "user_id")?;
    if pin.id != user_id || !is_guid(user_id) {
        return Err(ConnectorError::permanent(
            "bad_action",
            format!(
                "{} {}: expected user_id to be the pinned {} {} (a guid), found {user_id}",
                action.kind, action.target, pin.id_kind, pin.id
            ),
        ));
    }
    Ok((pin, user_id))
}

fn unknown(kind: &str) -> ConnectorError {
    ConnectorError::unknown_action(format!("the entra connector has no action {kind:?}"))
}

/// `GET /users/{id}`; `None` when it is gone.
pub async fn get_user(client: &Client, id: &str) -> Result<Option<User>, ConnectorError> {
    let path = format!("/users/{}?$select={USER_SELECT}", encode(id));
    let Some(v) = client.get(&path).await? else {
        return Ok(None);
    };
    match parse_user(&v) {
        Some(u) if u.id.eq_ignore_ascii_case(id) => Ok(Some(u)),
        _ => Err(classify::bad_response(
            &Method::GET,
            &path,
            "expected the user with the id asked for",
        )),
    }
}

pub async fn apply(
    ctx: &Ctx<'_>,
    action: &Action,
    key: &ActionKey,
    journal: &dyn Journal,
) -> Result<Outcome, ConnectorError> {
    debug!(connector = %ctx.instance, action_id = %action.id, key = %key, kind = %action.kind, "entra apply");
    let (pin, uid) = pinned(action)?;
    let c = ctx.client;
    let first = journal.attempt() <= 1;
    match action.kind.0.as_str() {
        DISABLE_USER => disable(c, pin, uid, action).await,
        REVOKE_SESSIONS => {
            if journal.latest(SESSIONS_REVOKED).await?.is_some() {
                return Ok(Outcome::AlreadyDone);
            }
            let path = format!("/users/{uid}/microsoft.graph.revokeSignInSessions");
            let r = c.send(Method::POST, &path, None, &[]).await?;
            match r.status {
                s if (200..300).contains(&s) => {
                    journal.record(SESSIONS_REVOKED, uid).await?;
                    Ok(Outcome::Done)
                }
                404 => user_gone(c, pin, uid).await,
                _ => Err(classify::status(&Method::POST, &path, &r)),
            }
        }
        REMOVE_GROUP => {
            let gid = param(action, "group_id")?;
            let kind = flag(action, "group_kind");
            if !CHANGEABLE_KINDS.contains(&kind.as_str()) {
                return Ok(Outcome::Skipped {
                    reason: format!("graph cannot change the members of {kind} group {gid}: a manual step (see the plan's notes)"),
                });
            }
            let list = format!("/users/{uid}/memberOf?$select=id");
            if !first && !listed(c, pin, uid, &list, gid, "id").await? {
                return Ok(Outcome::AlreadyDone);
            }
            let path = format!("/groups/{gid}/members/{uid}/$ref");
            let r = c.send(Method::DELETE, &path, None, &[]).await?;
            if let Some(k) = classify::unchangeable_group(&r) {
                return Ok(Outcome::Skipped {
                    reason: format!(
                        "graph refused to change group {gid}, now {k}: {}",
                        classify::message(&r)
                    ),
                });
            }
            removed(c, pin, uid, &Method::DELETE, &path, &r, &list, gid, "id").await
        }
        REMOVE_APP_ROLE => {
            let aid = param(action, "assignment_id")?;
            let list = format!("/users/{uid}/appRoleAssignments");
            if !first && !listed(c, pin, uid, &list, aid, "id").await? {
                return Ok(Outcome::AlreadyDone);
            }
            let path = format!("/users/{uid}/appRoleAssignments/{aid}");
            let r = c.send(Method::DELETE, &path, None, &[]).await?;
            removed(c, pin, uid, &Method::DELETE, &path, &r, &list, aid, "id").await
        }
        REMOVE_DIRECTORY_ROLE => {
            let rid = param(action, "assignment_id")?;
            let list = role_assignments_path(uid);
            if !first && !listed(c, pin, uid, &list, rid, "id").await? {
                return Ok(Outcome::AlreadyDone);
            }
            let path = format!("/roleManagement/directory/roleAssignments/{rid}");
            let r = c.send(Method::DELETE, &path, None, &[]).await?;
            removed(c, pin, uid, &Method::DELETE, &path, &r, &list, rid, "id").await
        }
        REMOVE_AUTH_METHOD => {
            let mid = param(action, "method_id")?;
            let seg = param(action, "method_type")?;
            if crate::discover::method_segment(&format!(
                "#microsoft.graph.{}AuthenticationMethod",
                seg.trim_end_matches("Methods")
            )) != Some(seg)
            {
                return Err(ConnectorError::permanent(
                    "bad_action",
                    format!(
                        "{} {}: unknown method type {seg:?}",
                        action.kind, action.target
                    ),
                ));
            }
            let list = format!("/users/{uid}/authentication/methods");
            if !first && !listed(c, pin, uid, &list, mid, "id").await? {
                return Ok(Outcome::AlreadyDone);
            }
            let path = format!("/users/{uid}/authentication/{seg}/{mid}");
            let r = c.send(Method::DELETE, &path, None, &[]).await?;
            removed(c, pin, uid, &Method::DELETE, &path, &r, &list, mid, "id").await
        }
        REMOVE_LICENSE => remove_license(c, pin, uid, action).await,
        DELETE_USER => {
            if flag(action, "on_prem_sync") == "true" {
                return Ok(Outcome::Skipped {
                    reason: format!("user {uid} is synced from on-premises AD: graph cannot delete it; delete it (or take it out of the sync scope) in AD"),
                });
            }
            let path = format!("/users/{uid}");
            let r = c.send(Method::DELETE, &path, None, &[]).await?;
            match r.status {
                s if (200..300).contains(&s) => Ok(Outcome::Done),
                404 => {
                    if deleted_item(c, uid).await?.is_some() {
                        Ok(Outcome::AlreadyDone)
                    } else {
                        user_gone(c, pin, uid).await
                    }
                }
                400 if classify::unchangeable_group(&r) == Some("on_prem_synced") => {
                    Ok(Outcome::Skipped {
                        reason: format!(
                            "graph refused to delete user {uid}: {}",
                            classify::message(&r)
                        ),
                    })
                }
                _ => Err(classify::status(&Method::DELETE, &path, &r)),
            }
        }
        PURGE_USER => {
            let path = format!("/directory/deletedItems/{uid}");
            let r = c.send(Method::DELETE, &path, None, &[]).await?;
            match r.status {
                s if (200..300).contains(&s) => Ok(Outcome::Done),
                404 => {
                    if get_user(c, uid).await?.is_some() {
                        Err(ConnectorError::conflict(
                            "user_restored",
                            format!("user {uid} is not in the deleted items but active again (restored since the delete); nothing was purged"),
                        ))
                    } else {
                        Ok(Outcome::AlreadyDone)
                    }
                }
                _ => Err(classify::status(&Method::DELETE, &path, &r)),
            }
        }
        other => Err(unknown(other)),
    }
}

/// `GET /directory/deletedItems/{id}`; `None` when it is not there.
async fn deleted_item(client: &Client, uid: &str) -> Result<Option<Value>, ConnectorError> {
    client.get(&format!("/directory/deletedItems/{uid}")).await
}

/// The pinned user is gone, so the effect holds on it; unless its planned UPN now names
/// another user, which apply must not call done (it may be the leaver, re-created).
async fn user_gone(
    client: &Client,
    pin: &AccountPin,
    uid: &str,
) -> Result<Outcome, ConnectorError> {
    if !pin.name.is_empty() && crate::discover::check_value("userPrincipalName", &pin.name).is_ok()
    {
        let g = search(crate::config::Identifier::UserPrincipalName, &pin.name);
        let users = client.list(&g.path, g.advanced).await?.unwrap_or_default();
        if let Some(other) = users
            .iter()
            .filter_map(parse_user)
            .find(|u| u.holds(crate::config::Identifier::UserPrincipalName, &pin.name))
        {
            if !other.id.eq_ignore_ascii_case(uid) {
                return Err(pin.changed(format!(
                    "{} {} (userPrincipalName {})",
                    pin.id_kind, other.id, pin.name
                )));
            }
        }
    }
    Ok(Outcome::AlreadyDone)
}

/// Whether `id` is in the pinned user's list at `path` (item field `field`); a user gone is
/// `user_gone`'s to judge, so it is an error here only when the UPN names another user.
async fn listed(
    client: &Client,
    pin: &AccountPin,
    uid: &str,
    path: &str,
    id: &str,
    field: &str,
) -> Result<bool, ConnectorError> {
    match client.list(path, false).await? {
        Some(items) => Ok(items
            .iter()
            .any(|i| i.get(field).and_then(Value::as_str) == Some(id))),
        None => {
            user_gone(client, pin, uid).await?;
            Ok(false)
        }
    }
}

/// The outcome of a removal's write: 2xx done; 404 read back (not listed any more: done before).
#[allow(clippy::too_many_arguments)]
async fn removed(
    client: &Client,
    pin: &AccountPin,
    uid: &str,
    method: &Method,
    path: &str,
    r: &Reply,
    list: &str,
    id: &str,
    field: &str,
) -> Result<Outcome, ConnectorError> {
    match r.status {
        s if (200..300).contains(&s) => Ok(Outcome::Done),
        404 => {
            if listed(client, pin, uid, list, id, field).await? {
                Err(ConnectorError::permanent(
                    "not_found",
                    format!(
                        "{method} {path}: 404 {}, yet {id} is still listed for user {uid}",
                        classify::message(r)
                    ),
                ))
            } else {
                Ok(Outcome::AlreadyDone)
            }
        }
        _ => Err(classify::status(method, path, r)),
    }
}

async fn disable(
    c: &Client,
    pin: &AccountPin,
    uid: &str,
    action: &Action,
) -> Result<Outcome, ConnectorError> {
    let Some(user) = get_user(c, uid).await? else {
        return user_gone(c, pin, uid).await;
    };
    if user.enabled == Some(false) {
        return Ok(Outcome::AlreadyDone);
    }
    if user.on_prem_sync || flag(action, "on_prem_sync") == "true" {
        return Ok(Outcome::Skipped {
            reason: format!("user {} ({uid}) is synced from on-premises AD, where accountEnabled is mastered: graph cannot disable it; disable it in AD", user.upn),
        });
    }
    // Real Graph takes the body without `@odata.type` (see docs/connectors/entra.md).
    let path = format!("/users/{uid}");
    let body = json!({"accountEnabled": false});
    let r = c.send(Method::PATCH, &path, Some(&body), &[]).await?;
    match r.status {
        s if (200..300).contains(&s) => Ok(Outcome::Done),
        404 => user_gone(c, pin, uid).await,
        // Synced from AD since the plan was made.
        400 if classify::unchangeable_group(&r) == Some("on_prem_synced") => Ok(Outcome::Skipped {
            reason: format!(
                "graph refused to disable user {uid}: {}; disable it in AD",
                classify::message(&r)
            ),
        }),
        _ => Err(classify::status(&Method::PATCH, &path, &r)),
    }
}

async fn remove_license(
    c: &Client,
    pin: &AccountPin,
    uid: &str,
    action: &Action,
) -> Result<Outcome, ConnectorError> {
    let sku = param(action, "sku_id")?;
    let from_group = |sku: &str| {
        Outcome::Skipped {
        reason: format!("licence {sku} of user {uid} comes from a group: graph cannot remove it from the user; it goes with the membership"),
    }
    };
    if flag(action, "assigned") == "group" {
        return Ok(from_group(sku));
    }
    let Some(user) = get_user(c, uid).await? else {
        return user_gone(c, pin, uid).await;
    };
    match user.licenses.iter().find(|l| l.sku_id == sku) {
        None => return Ok(Outcome::AlreadyDone),
        Some(l) if !l.direct => return Ok(from_group(sku)),
        Some(_) => {}
    }
    let path = format!("/users/{uid}/microsoft.graph.assignLicense");
    let body = json!({"addLicenses": [], "removeLicenses": [sku]});
    let r = c.send(Method::POST, &path, Some(&body), &[]).await?;
    match r.status {
        s if (200..300).contains(&s) => Ok(Outcome::Done),
        404 => user_gone(c, pin, uid).await,
        400 if classify::license_from_group(&r) => Ok(from_group(sku)),
        400 => match get_user(c, uid).await? {
            Some(u) if u.licenses.iter().any(|l| l.sku_id == sku && l.direct) => {
                Err(classify::status(&Method::POST, &path, &r))
            }
            _ => Ok(Outcome::AlreadyDone),
        },
        _ => Err(classify::status(&Method::POST, &path, &r)),
    }
}

/// One read a verdict needs: an object (`None` on 404) or a list.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Read {
    Object(String),
    List(String),
}

/// The reads of one action's verdict.
fn reads_of(action: &Action) -> Result<Vec<Read>, ConnectorError> {
    let (_, uid) = pinned(action)?;
    let user = Read::Object(format!("/users/{uid}?$select={USER_SELECT}"));
    Ok(match action.kind.0.as_str() {
        DISABLE_USER | REVOKE_SESSIONS | REMOVE_LICENSE | DELETE_USER => vec![user],
        PURGE_USER => vec![Read::Object(format!("/directory/deletedItems/{uid}")), user],
        REMOVE_GROUP => vec![Read::List(format!("/users/{uid}/memberOf?$select=id"))],
        REMOVE_APP_ROLE => vec![Read::List(format!("/users/{uid}/appRoleAssignments"))],
        REMOVE_DIRECTORY_ROLE => vec![Read::List(role_assignments_path(uid))],
        REMOVE_AUTH_METHOD => vec![Read::List(format!("/users/{uid}/authentication/methods"))],
        other => return Err(unknown(other)),
    })
}

/// What the reads found: `None` for a 404.
type Found = std::collections::BTreeMap<Read, Option<Value>>;

/// The verdict of one action from what its reads found (pure).
fn judge(instance: &str, action: &Action, found: &Found) -> Result<Verdict, ConnectorError> {
    let (_, uid) = pinned(action)?;
    let not = |detail: String| Verdict::NotConfirmed { detail };
    let reads = reads_of(action)?;
    let got = |i: usize| reads.get(i).and_then(|r| found.get(r)).cloned().flatten();
    let user = || got(0).as_ref().and_then(parse_user);
    // Whether the list (the first read) holds an item with this id; a user gone holds none.
    let listed = |id: &str| {
        got(0)
            .and_then(|v| v.get("value").and_then(Value::as_array).cloned())
            .unwrap_or_default()
            .iter()
            .any(|i| i.get("id").and_then(Value::as_str) == Some(id))
    };
    let still = |id: &str, what: &str| {
        if listed(id) {
            not(format!("user {uid} still has {what} {id}"))
        } else {
            Verdict::Confirmed
        }
    };
    Ok(match action.kind.0.as_str() {
        DISABLE_USER | REVOKE_SESSIONS => match user() {
            None => Verdict::Confirmed,
            Some(u) if u.enabled == Some(false) => Verdict::Confirmed,
            Some(_) if action.kind.0 == REVOKE_SESSIONS => not(format!(
                "user {uid} can still sign in (accountEnabled is not false); graph cannot list sessions, so their revocation is confirmed only on a disabled user"
            )),
            Some(_) => not(format!("user {uid} is still enabled")),
        },
        REMOVE_GROUP => {
            let gid = param(action, "group_id")?;
            let kind = flag(action, "group_kind");
            if !listed(gid) {
                Verdict::Confirmed
            } else if CHANGEABLE_KINDS.contains(&kind.as_str()) {
                not(format!("user {uid} is still a member of group {gid}"))
            } else {
                not(format!(
                    "user {uid} is still a member of {kind} group {gid}: only the manual step {instance}.{} removes it",
                    action.target
                ))
            }
        }
        REMOVE_APP_ROLE => still(param(action, "assignment_id")?, "app role assignment"),
        REMOVE_DIRECTORY_ROLE => {
            still(param(action, "assignment_id")?, "directory role assignment")
        }
        REMOVE_AUTH_METHOD => still(param(action, "method_id")?, "authentication method"),
        REMOVE_LICENSE => {
            let sku = param(action, "sku_id")?;
            match user() {
                Some(u) if u.licenses.iter().any(|l| l.sku_id == sku && l.direct) => {
                    not(format!("user {uid} still has licence {sku} assigned directly"))
                }
                _ => Verdict::Confirmed,
            }
        }
        DELETE_USER => match user() {
            None => Verdict::Confirmed,
            Some(_) => not(format!("user {uid} still exists")),
        },
        PURGE_USER => {
            if got(0).is_some() {
                not(format!("user {uid} is still in the deleted items"))
            } else if got(1).is_some() {
                not(format!("user {uid} is active again"))
            } else {
                Verdict::Confirmed
            }
        }
        other => return Err(unknown(other)),
    })
}

/// Read-only. Reads back several actions at once: each read once however many actions need it
/// (one `memberOf` of a user confirms all their group removals), in `$batch` requests of up to
/// `batch` reads; one verdict per action, in order. The verdict is about the pinned user: gone
/// is confirmed (a later user with the same UPN is another account, which verify does not judge).
pub async fn verify_many(
    ctx: &Ctx<'_>,
    actions: &[Action],
    batch: usize,
) -> Vec<Result<Verdict, ConnectorError>> {
    let mut wanted: Vec<Read> = Vec::new();
    for a in actions {
        if let Ok(reads) = reads_of(a) {
            for r in reads {
                if !wanted.contains(&r) {
                    wanted.push(r);
                }
            }
        }
    }
    let found = match read_all(ctx.client, &wanted, batch).await {
        Ok(f) => f,
        Err(e) => return actions.iter().map(|_| Err(e.clone())).collect(),
    };
    actions
        .iter()
        .map(|a| judge(ctx.instance, a, &found))
        .collect()
}

/// Every read, lists followed through their pages (as `{"value": [...]}`).
async fn read_all(client: &Client, wanted: &[Read], batch: usize) -> Result<Found, ConnectorError> {
    let lists: Vec<Get> = wanted
        .iter()
        .filter_map(|r| match r {
            Read::List(p) => Some(Get {
                path: p.clone(),
                advanced: false,
            }),
            Read::Object(_) => None,
        })
        .collect();
    let objects: Vec<String> = wanted
        .iter()
        .filter_map(|r| match r {
            Read::Object(p) => Some(p.clone()),
            Read::List(_) => None,
        })
        .collect();
    let mut found = Found::new();
    let got = fetch_lists(client, &lists, batch).await?;
    for (g, items) in lists.into_iter().zip(got) {
        found.insert(Read::List(g.path), items.map(|v| json!({ "value": v })));
    }
    let got = fetch_objects(client, &objects, batch).await?;
    for (p, v) in objects.into_iter().zip(got) {
        found.insert(Read::Object(p), v);
    }
    Ok(found)
}

/// Read-only re-check of one action.
pub async fn verify(ctx: &Ctx<'_>, action: &Action) -> Result<Verdict, ConnectorError> {
    verify_many(ctx, std::slice::from_ref(action), 1)
        .await
        .pop()
        .unwrap_or_else(|| Err(unknown(&action.kind.0)))
}
