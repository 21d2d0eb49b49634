//! Apply and verify, each on the user the plan pinned (its numeric id). Every action reads
//! `GET /api/2/users/{pinned id}` first, so an effect that already holds is `AlreadyDone`
//! without a write. A user that is gone (404) has nothing left to suspend, sign out, strip or
//! delete, unless its planned username or email now names another user (the leaver deleted and
//! re-created between plan and apply): then apply fails as `identity_changed` and sends nothing.
//!
//! OneLogin cannot show whether a user has sessions, so `logout_user` records `logged_out` in
//! the action's journal once OneLogin confirmed it, and a later attempt that finds it is
//! `AlreadyDone`.

use reqwest::Method;
use revoke_core::{AccountPin, Action, ActionKey, ConnectorError, Journal, Outcome, Verdict};
use serde_json::json;
use tracing::debug;

use crate::batch::Batcher;
use crate::classify;
use crate::client::Client;
use crate::discover::{find, get_user, User, STATUS_SUSPENDED};
use crate::plan::{DELETE_USER, LOGOUT_USER, REMOVE_ROLE, SUSPEND_USER};

/// The journal entry of a confirmed logout (its value: the user id).
pub const LOGGED_OUT: &str = "logged_out";

pub struct Ctx<'a> {
    pub client: &'a Client,
    pub batcher: &'a Batcher,
    pub instance: &'a str,
}

fn id_param(action: &Action, name: &str) -> Result<u64, ConnectorError> {
    action
        .params
        .get(name)
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| {
            ConnectorError::permanent(
                "bad_action",
                format!(
                    "{} {}: expected a numeric {name} parameter, found {:?}",
                    action.kind,
                    action.target,
                    action.params.get(name)
                ),
            )
        })
}

pub async fn apply(
    ctx: &Ctx<'_>,
    action: &Action,
    key: &ActionKey,
    journal: &dyn Journal,
) -> Result<Outcome, ConnectorError> {
    debug!(connector = %ctx.instance, action = %action.id, key = %key, kind = %action.kind, "onelogin apply");
    let (pin, user_id) = pinned(action)?;
    if action.kind.0 == LOGOUT_USER && journal.latest(LOGGED_OUT).await?.is_some() {
        return Ok(Outcome::AlreadyDone);
    }
    let Some(user) = get_user(ctx.client, user_id).await? else {
        return gone(ctx.client, pin).await;
    };
    match action.kind.0.as_str() {
        SUSPEND_USER => suspend(ctx.client, &user).await,
        LOGOUT_USER => logout(ctx.client, user_id, journal).await,
        REMOVE_ROLE => {
            let role_id = id_param(action, "role_id")?;
            remove_role(ctx, role_id, &user).await
        }
        DELETE_USER => delete(ctx.client, user_id).await,
        other => Err(unknown(other)),
    }
}

/// The pinned account and its numeric id, which the plan's `user_id` must agree with.
fn pinned(action: &Action) -> Result<(&AccountPin, u64), ConnectorError> {
    let pin = action.pinned()?;
    let user_id = id_param(action, "user_id")?;
    if pin.id != user_id.to_string() {
        return Err(ConnectorError::permanent(
            "bad_action",
            format!(
                "{} {}: expected user_id to be the pinned {} {}, found {user_id}",
                action.kind, action.target, pin.id_kind, pin.id
            ),
        ));
    }
    Ok((pin, user_id))
}

/// The pinned user is gone, so the effect holds on it; unless its planned username or email now
/// names another user, which apply must not call done (it may be the leaver, re-created).
async fn gone(client: &Client, pin: &AccountPin) -> Result<Outcome, ConnectorError> {
    for field in ["username", "email"] {
        if pin.name.is_empty() || (field == "email" && !pin.name.contains('@')) {
            continue;
        }
        if let Some(other) = find(client, field, &pin.name).await? {
            if other.to_string() != pin.id {
                return Err(pin.changed(format!("{} {other} ({field} {})", pin.id_kind, pin.name)));
            }
        }
    }
    Ok(Outcome::AlreadyDone)
}

fn unknown(kind: &str) -> ConnectorError {
    ConnectorError::unknown_action(format!("the onelogin connector has no action {kind:?}"))
}

async fn suspend(client: &Client, user: &User) -> Result<Outcome, ConnectorError> {
    if user.status == STATUS_SUSPENDED {
        return Ok(Outcome::AlreadyDone);
    }
    let path = format!("/api/2/users/{}", user.id);
    let r = client
        .send(
            Method::PUT,
            &path,
            Some(&json!({ "status": STATUS_SUSPENDED })),
        )
        .await?;
    match r.status {
        s if (200..300).contains(&s) => Ok(Outcome::Done),
        404 => Ok(Outcome::AlreadyDone),
        _ => Err(classify::status(&Method::PUT, &path, &r)),
    }
}

async fn logout(
    client: &Client,
    user_id: u64,
    journal: &dyn Journal,
) -> Result<Outcome, ConnectorError> {
    let path = format!("/api/1/users/{user_id}/logout");
    // OneLogin's v1 answer body differs between its reference and its SDK; only the status counts.
    let r = client.send(Method::PUT, &path, None).await?;
    match r.status {
        s if (200..300).contains(&s) => {
            journal.record(LOGGED_OUT, &user_id.to_string()).await?;
            Ok(Outcome::Done)
        }
        404 => Ok(Outcome::AlreadyDone),
        _ => Err(classify::status(&Method::PUT, &path, &r)),
    }
}

async fn remove_role(ctx: &Ctx<'_>, role_id: u64, user: &User) -> Result<Outcome, ConnectorError> {
    if !user.role_ids.contains(&role_id) {
        return Ok(Outcome::AlreadyDone);
    }
    ctx.batcher.remove(role_id, user.id).await?;
    Ok(Outcome::Done)
}

async fn delete(client: &Client, user_id: u64) -> Result<Outcome, ConnectorError> {
    let path = format!("/api/2/users/{user_id}");
    let r = client.send(Method::DELETE, &path, None).await?;
    match r.status {
        s if (200..300).contains(&s) => Ok(Outcome::Done),
        404 => Ok(Outcome::AlreadyDone),
        _ => Err(classify::status(&Method::DELETE, &path, &r)),
    }
}

/// Read-only. The verdict is about the pinned user: gone is confirmed (a later user with the
/// same username is another account, which verify does not judge).
pub async fn verify(ctx: &Ctx<'_>, action: &Action) -> Result<Verdict, ConnectorError> {
    let (_, user_id) = pinned(action)?;
    let user = get_user(ctx.client, user_id).await?;
    let verdict = match (action.kind.0.as_str(), user) {
        (_, None) => Verdict::Confirmed,
        (DELETE_USER, Some(_)) => Verdict::NotConfirmed {
            detail: format!("user {user_id} still exists"),
        },
        (SUSPEND_USER, Some(u)) | (LOGOUT_USER, Some(u)) => {
            if u.status == STATUS_SUSPENDED {
                Verdict::Confirmed
            } else {
                Verdict::NotConfirmed {
                    detail: format!(
                        "user {user_id} has status {} ({}), expected 2 (suspended)",
                        u.status,
                        crate::discover::status_name(u.status)
                    ),
                }
            }
        }
        (REMOVE_ROLE, Some(u)) => {
            let role_id = id_param(action, "role_id")?;
            if u.role_ids.contains(&role_id) {
                Verdict::NotConfirmed {
                    detail: format!("user {user_id} still holds role {role_id}"),
                }
            } else {
                Verdict::Confirmed
            }
        }
        (other, _) => return Err(unknown(other)),
    };
    Ok(verdict)
}
