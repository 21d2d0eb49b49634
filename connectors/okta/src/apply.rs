//! Apply and verify, each on the user the plan pinned (its Okta id). Every action reads
//! `GET /api/v1/users/{pinned id}` first; a user that is gone (404 `E0000007`) has nothing left
//! to act on, unless its planned login now names another user (the leaver deleted and the login
//! given to someone else between plan and apply): then the action fails as `identity_changed`
//! and sends nothing. Each removal reads its target before it writes, so an effect that already
//! holds is `AlreadyDone` without a write.
//!
//! Okta cannot list a user's sessions, so `clear_sessions` records `sessions_cleared` in the
//! action's journal once Okta confirmed it, and a later attempt that finds it is `AlreadyDone`.
//! The delete is Okta's two-step delete: the first `DELETE` of a user that is not DEPROVISIONED
//! only deactivates it; each step re-reads the status, so a crash between them resumes.

use reqwest::Method;
use revoke_core::{AccountPin, Action, ActionKey, ConnectorError, Journal, Outcome, Verdict};
use serde_json::Value;
use tracing::debug;

use crate::classify;
use crate::client::Client;
use crate::discover::{find, get_user, is_object_id, is_user_id, User};
use crate::plan::{
    APP_GROUP, CLEAR_SESSIONS, DEACTIVATE_USER, DELETE_USER, REMOVE_ADMIN_ROLE, REMOVE_APP,
    REMOVE_GROUP, RESET_FACTORS, REVOKE_GRANTS, SUSPEND_USER,
};

/// The journal entry of a confirmed session clearing (its value: the user id).
pub const SESSIONS_CLEARED: &str = "sessions_cleared";

pub struct Ctx<'a> {
    pub client: &'a Client,
    pub instance: &'a str,
    pub employee_attr: &'a str,
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
                    "{} {}: expected an Okta id in the {name} parameter, found {:?}",
                    action.kind,
                    action.target,
                    action.params.get(name)
                ),
            )
        })
}

/// The pinned account and its id, which the plan's `user_id` must agree with.
fn pinned(action: &Action) -> Result<(&AccountPin, &str), ConnectorError> {
    let pin = action.pinned()?;
    let user_id = param(action, "user_id")?;
    if pin.id != user_id || !is_user_id(user_id) {
        return Err(ConnectorError::permanent(
            "bad_action",
            format!(
                "{} {}: expected user_id to be the pinned {} {} (20 letters and digits), found {user_id}",
                action.kind, action.target, pin.id_kind, pin.id
            ),
        ));
    }
    Ok((pin, user_id))
}

fn unknown(kind: &str) -> ConnectorError {
    ConnectorError::unknown_action(format!("the okta connector has no action {kind:?}"))
}

pub async fn apply(
    ctx: &Ctx<'_>,
    action: &Action,
    key: &ActionKey,
    journal: &dyn Journal,
) -> Result<Outcome, ConnectorError> {
    debug!(connector = %ctx.instance, action_id = %action.id, key = %key, kind = %action.kind, "okta apply");
    let (pin, user_id) = pinned(action)?;
    if action.kind.0 == REMOVE_GROUP
        && action.params.get("group_type").map(String::as_str) == Some(APP_GROUP)
    {
        // Discovery found an APP_GROUP: Okta refuses to change its members, so nothing is sent;
        // the plan's manual step (remove_in_source) says who removes it where.
        return Ok(Outcome::Skipped {
            reason: format!(
                "okta group {:?} ({}) is an APP_GROUP: okta cannot change its members; the manual step {}.{} removes the membership where the group comes from",
                action.params.get("group_name").map(String::as_str).unwrap_or(""),
                param(action, "group_id")?,
                ctx.instance,
                action.target
            ),
        });
    }
    if action.kind.0 == CLEAR_SESSIONS && journal.latest(SESSIONS_CLEARED).await?.is_some() {
        return Ok(Outcome::AlreadyDone);
    }
    let Some(user) = get_user(ctx.client, user_id, ctx.employee_attr).await? else {
        return gone(ctx, pin).await;
    };
    match action.kind.0.as_str() {
        SUSPEND_USER => suspend(ctx.client, &user).await,
        DEACTIVATE_USER => deactivate(ctx.client, &user).await,
        CLEAR_SESSIONS => clear_sessions(ctx.client, user_id, journal).await,
        RESET_FACTORS => reset_factors(ctx.client, user_id).await,
        REVOKE_GRANTS => revoke_grants(ctx.client, user_id).await,
        REMOVE_GROUP => remove_group(ctx.client, &user, param(action, "group_id")?).await,
        REMOVE_APP => remove_app(ctx.client, &user, param(action, "app_id")?).await,
        REMOVE_ADMIN_ROLE => remove_role(ctx.client, &user, param(action, "role_id")?).await,
        DELETE_USER => delete(ctx.client, &user).await,
        other => Err(unknown(other)),
    }
}

/// The pinned user is gone, so the effect holds on it; unless its planned login now names
/// another user, which apply must not call done (it may be the leaver, re-created).
async fn gone(ctx: &Ctx<'_>, pin: &AccountPin) -> Result<Outcome, ConnectorError> {
    if !pin.name.is_empty() {
        if let Some(other) = find(ctx.client, "login", &pin.name, ctx.employee_attr).await? {
            if other.id != pin.id {
                return Err(
                    pin.changed(format!("{} {} (login {})", pin.id_kind, other.id, pin.name))
                );
            }
        }
    }
    Ok(Outcome::AlreadyDone)
}

/// A write whose success is any 2xx; 404 on the pinned user (it went meanwhile) is AlreadyDone.
async fn write(client: &Client, method: Method, path: &str) -> Result<Outcome, ConnectorError> {
    let r = client.send(method.clone(), path, None).await?;
    match r.status {
        s if (200..300).contains(&s) => Ok(Outcome::Done),
        404 if path.starts_with("/api/v1/users/") => Ok(Outcome::AlreadyDone),
        _ => Err(classify::status(&method, path, &r)),
    }
}

async fn suspend(client: &Client, user: &User) -> Result<Outcome, ConnectorError> {
    match user.status.as_str() {
        "SUSPENDED" | "DEPROVISIONED" => Ok(Outcome::AlreadyDone),
        "ACTIVE" => {
            write(client, Method::POST, &format!("/api/v1/users/{}/lifecycle/suspend", user.id)).await
        }
        other => Ok(Outcome::Skipped {
            reason: format!(
                "okta suspends only ACTIVE users and {} is {other}: deactivate them by hand or set contain = \"deactivate\"",
                user.login
            ),
        }),
    }
}

async fn deactivate(client: &Client, user: &User) -> Result<Outcome, ConnectorError> {
    if user.status == "DEPROVISIONED" {
        return Ok(Outcome::AlreadyDone);
    }
    let path = format!(
        "/api/v1/users/{}/lifecycle/deactivate?sendEmail=false",
        user.id
    );
    write(client, Method::POST, &path).await
}

async fn clear_sessions(
    client: &Client,
    user_id: &str,
    journal: &dyn Journal,
) -> Result<Outcome, ConnectorError> {
    let path = format!("/api/v1/users/{user_id}/sessions?oauthTokens=true");
    let out = write(client, Method::DELETE, &path).await?;
    if out == Outcome::Done {
        journal.record(SESSIONS_CLEARED, user_id).await?;
    }
    Ok(out)
}

/// How many items `GET path` lists.
async fn count(client: &Client, path: &str) -> Result<usize, ConnectorError> {
    Ok(client.list(path).await?.unwrap_or_default().len())
}

async fn reset_factors(client: &Client, uid: &str) -> Result<Outcome, ConnectorError> {
    if count(client, &format!("/api/v1/users/{uid}/factors")).await? == 0 {
        return Ok(Outcome::AlreadyDone);
    }
    let path = format!("/api/v1/users/{uid}/lifecycle/reset_factors");
    write(client, Method::POST, &path).await
}

async fn revoke_grants(client: &Client, uid: &str) -> Result<Outcome, ConnectorError> {
    if count(client, &format!("/api/v1/users/{uid}/grants")).await? == 0 {
        return Ok(Outcome::AlreadyDone);
    }
    write(
        client,
        Method::DELETE,
        &format!("/api/v1/users/{uid}/grants"),
    )
    .await
}

/// The user's groups, by id, with their type.
async fn groups_of(client: &Client, uid: &str) -> Result<Vec<(String, String)>, ConnectorError> {
    let path = format!("/api/v1/users/{uid}/groups");
    Ok(client
        .list(&path)
        .await?
        .unwrap_or_default()
        .iter()
        .map(|g| {
            let s = |k: &str| g.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            (s("id"), s("type"))
        })
        .collect())
}

async fn remove_group(client: &Client, user: &User, gid: &str) -> Result<Outcome, ConnectorError> {
    let groups = groups_of(client, &user.id).await?;
    let Some((_, gtype)) = groups.iter().find(|(id, _)| id == gid) else {
        return Ok(Outcome::AlreadyDone);
    };
    if gtype != "OKTA_GROUP" {
        return Ok(Outcome::Skipped {
            reason: format!("okta group {gid} is now {gtype}: okta cannot change its members; remove the membership where the group comes from"),
        });
    }
    let path = format!("/api/v1/groups/{gid}/users/{}", user.id);
    let r = client.send(Method::DELETE, &path, None).await?;
    match r.status {
        s if (200..300).contains(&s) => Ok(Outcome::Done),
        404 => Err(ConnectorError::permanent(
            "group_not_found",
            format!("DELETE {path}: 404 {}", classify::message(&r.body)),
        )),
        _ => Err(classify::status(&Method::DELETE, &path, &r)),
    }
}

/// The user's assignment to an app: its scope (`USER`, `GROUP`), or `None`.
async fn app_scope(
    client: &Client,
    uid: &str,
    aid: &str,
) -> Result<Option<String>, ConnectorError> {
    let path = format!("/api/v1/apps/{aid}/users/{uid}");
    Ok(client.get_json(&path).await?.map(|v| {
        v.get("scope")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    }))
}

async fn remove_app(client: &Client, user: &User, aid: &str) -> Result<Outcome, ConnectorError> {
    match app_scope(client, &user.id, aid).await?.as_deref() {
        None => Ok(Outcome::AlreadyDone),
        Some("USER") => {
            let path = format!("/api/v1/apps/{aid}/users/{}", user.id);
            let r = client.send(Method::DELETE, &path, None).await?;
            match r.status {
                s if (200..300).contains(&s) => Ok(Outcome::Done),
                404 => Ok(Outcome::AlreadyDone),
                _ => Err(classify::status(&Method::DELETE, &path, &r)),
            }
        }
        Some(scope) => Ok(Outcome::Skipped {
            reason: format!("the okta app {aid} is now assigned to {} with scope {scope}: it goes with the group", user.login),
        }),
    }
}

async fn roles_of(client: &Client, uid: &str) -> Result<Vec<(String, String)>, ConnectorError> {
    let path = format!("/api/v1/users/{uid}/roles");
    Ok(client
        .list(&path)
        .await?
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            (s("id"), s("assignmentType"))
        })
        .collect())
}

async fn remove_role(client: &Client, user: &User, rid: &str) -> Result<Outcome, ConnectorError> {
    if !roles_of(client, &user.id)
        .await?
        .iter()
        .any(|(id, _)| id == rid)
    {
        return Ok(Outcome::AlreadyDone);
    }
    write(
        client,
        Method::DELETE,
        &format!("/api/v1/users/{}/roles/{rid}", user.id),
    )
    .await
}

/// Okta's two-step delete: a user not yet DEPROVISIONED is deactivated by the first DELETE; the
/// second deletes it. Each step follows a read of the status.
async fn delete(client: &Client, user: &User) -> Result<Outcome, ConnectorError> {
    let path = format!("/api/v1/users/{}", user.id);
    if user.status == "DEPROVISIONED" {
        return write(client, Method::DELETE, &path).await;
    }
    if write(client, Method::DELETE, &path).await? == Outcome::AlreadyDone {
        return Ok(Outcome::AlreadyDone);
    }
    write(client, Method::DELETE, &path).await?;
    Ok(Outcome::Done)
}

/// Read-only. The verdict is about the pinned user: gone is confirmed (a later user with the same
/// login is another account, which verify does not judge).
pub async fn verify(ctx: &Ctx<'_>, action: &Action) -> Result<Verdict, ConnectorError> {
    let (_, user_id) = pinned(action)?;
    let Some(u) = get_user(ctx.client, user_id, ctx.employee_attr).await? else {
        return Ok(Verdict::Confirmed);
    };
    let not = |detail: String| Verdict::NotConfirmed { detail };
    let verdict = match action.kind.0.as_str() {
        DELETE_USER => not(format!("user {user_id} still exists (status {})", u.status)),
        SUSPEND_USER | CLEAR_SESSIONS => {
            if ["SUSPENDED", "DEPROVISIONED"].contains(&u.status.as_str()) {
                Verdict::Confirmed
            } else {
                not(format!("user {user_id} has status {}, expected SUSPENDED or DEPROVISIONED (okta cannot list sessions; a user who can sign in can open new ones)", u.status))
            }
        }
        DEACTIVATE_USER => {
            if u.status == "DEPROVISIONED" {
                Verdict::Confirmed
            } else {
                not(format!(
                    "user {user_id} has status {}, expected DEPROVISIONED",
                    u.status
                ))
            }
        }
        RESET_FACTORS | REVOKE_GRANTS => {
            let what = if action.kind.0 == RESET_FACTORS {
                "factors"
            } else {
                "grants"
            };
            match count(ctx.client, &format!("/api/v1/users/{user_id}/{what}")).await? {
                0 => Verdict::Confirmed,
                n => not(format!("user {user_id} still has {n} {what}")),
            }
        }
        REMOVE_GROUP => {
            let gid = param(action, "group_id")?;
            let member = groups_of(ctx.client, user_id)
                .await?
                .iter()
                .any(|(id, _)| id == gid);
            let app_group = action.params.get("group_type").map(String::as_str) == Some(APP_GROUP);
            match (member, app_group) {
                (false, _) => Verdict::Confirmed,
                (true, true) => not(format!(
                    "user {user_id} is still a member of APP_GROUP {gid}: only the manual step {}.{} removes it",
                    ctx.instance, action.target
                )),
                (true, false) => not(format!("user {user_id} is still in group {gid}")),
            }
        }
        REMOVE_APP => {
            let aid = param(action, "app_id")?;
            match app_scope(ctx.client, user_id, aid).await? {
                Some(scope) if scope == "USER" => {
                    not(format!("user {user_id} is still assigned to app {aid}"))
                }
                _ => Verdict::Confirmed,
            }
        }
        REMOVE_ADMIN_ROLE => {
            let rid = param(action, "role_id")?;
            if roles_of(ctx.client, user_id)
                .await?
                .iter()
                .any(|(id, _)| id == rid)
            {
                not(format!("user {user_id} still holds admin role {rid}"))
            } else {
                Verdict::Confirmed
            }
        }
        other => return Err(unknown(other)),
    };
    Ok(verdict)
}
