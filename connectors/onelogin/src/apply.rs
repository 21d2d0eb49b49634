//! Apply and verify. Every action reads the user first, so an effect that already holds is
//! `AlreadyDone` without a write; a user that is gone (404) has nothing left to suspend, sign
//! out, strip or delete.
//!
//! OneLogin cannot show whether a user has sessions, so `logout_user` records `logged_out` in
//! the action's journal once OneLogin confirmed it, and a later attempt that finds it is
//! `AlreadyDone`.

use reqwest::Method;
use revoke_core::{Action, ActionKey, ConnectorError, Journal, Outcome, Verdict};
use serde_json::json;
use tracing::debug;

use crate::batch::Batcher;
use crate::classify;
use crate::client::Client;
use crate::discover::{get_user, STATUS_SUSPENDED};
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
    let user_id = id_param(action, "user_id")?;
    match action.kind.0.as_str() {
        SUSPEND_USER => suspend(ctx.client, user_id).await,
        LOGOUT_USER => logout(ctx.client, user_id, journal).await,
        REMOVE_ROLE => {
            let role_id = id_param(action, "role_id")?;
            remove_role(ctx, role_id, user_id).await
        }
        DELETE_USER => delete(ctx.client, user_id).await,
        other => Err(unknown(other)),
    }
}

fn unknown(kind: &str) -> ConnectorError {
    ConnectorError::permanent(
        "unknown_action",
        format!("the onelogin connector has no action {kind:?}"),
    )
}

async fn suspend(client: &Client, user_id: u64) -> Result<Outcome, ConnectorError> {
    match get_user(client, user_id).await? {
        None => return Ok(Outcome::AlreadyDone),
        Some(u) if u.status == STATUS_SUSPENDED => return Ok(Outcome::AlreadyDone),
        Some(_) => {}
    }
    let path = format!("/api/2/users/{user_id}");
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
    if journal.latest(LOGGED_OUT).await?.is_some() {
        return Ok(Outcome::AlreadyDone);
    }
    if get_user(client, user_id).await?.is_none() {
        return Ok(Outcome::AlreadyDone);
    }
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

async fn remove_role(ctx: &Ctx<'_>, role_id: u64, user_id: u64) -> Result<Outcome, ConnectorError> {
    match get_user(ctx.client, user_id).await? {
        None => return Ok(Outcome::AlreadyDone),
        Some(u) if !u.role_ids.contains(&role_id) => return Ok(Outcome::AlreadyDone),
        Some(_) => {}
    }
    ctx.batcher.remove(role_id, user_id).await?;
    Ok(Outcome::Done)
}

async fn delete(client: &Client, user_id: u64) -> Result<Outcome, ConnectorError> {
    if get_user(client, user_id).await?.is_none() {
        return Ok(Outcome::AlreadyDone);
    }
    let path = format!("/api/2/users/{user_id}");
    let r = client.send(Method::DELETE, &path, None).await?;
    match r.status {
        s if (200..300).contains(&s) => Ok(Outcome::Done),
        404 => Ok(Outcome::AlreadyDone),
        _ => Err(classify::status(&Method::DELETE, &path, &r)),
    }
}

pub async fn verify(ctx: &Ctx<'_>, action: &Action) -> Result<Verdict, ConnectorError> {
    let user_id = id_param(action, "user_id")?;
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
