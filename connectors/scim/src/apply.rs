//! Apply and verify, each on the user the plan pinned (its SCIM `id`). Every apply reads before
//! it writes: an effect that already holds sends no modification and is `AlreadyDone`.
//!
//! Every action first reads `GET /Users/{pinned id}`:
//! - the user is there (under its planned userName or a new one): act on it, by its id;
//! - the app answers with another user (an app that also resolves the path by userName):
//!   `identity_changed`, nothing sent;
//! - 404: the pinned user is gone, which is the only thing "already done" is concluded from;
//!   but when the planned userName now names another user (the leaver deleted and re-created
//!   between plan and apply), apply fails as `identity_changed` and sends nothing.
//!
//! Group membership is judged by [`crate::member`]: the user is "not a member" only when neither
//! the group's members (by id, `$ref` or a userName the app resolves to the pinned id) nor the
//! user's own `groups` list it. No filter search decides it.
//!
//! Requests per action (after the connector's one GET /ServiceProviderConfig):
//! - deactivate_user: 1 GET /Users/{id}, then at most 1 PATCH.
//! - remove_group_member: 1 GET /Users/{id}, 1 GET /Groups/{id} (plus 1 GET /Users/{value} per
//!   member entry whose value is only the user's userName), then at most 1 PATCH.
//! - delete_user: 1 GET /Users/{id}, then at most 1 DELETE.
//! - when the pinned user is gone: 1 GET /Users?filter=userName more.
//!
//! When the app announces ETag support, user writes and `replace` member removals carry
//! If-Match with the version just read; a 412 (someone changed the resource in between) re-reads
//! and writes once more, and a second 412 is a retryable `precondition_failed` for the executor.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use reqwest::Method;
use revoke_core::{AccountPin, Action, ActionKey, ConnectorError, Outcome, Verdict};
use serde_json::{json, Value};
use tracing::{debug, info};

use crate::classify;
use crate::client::{Client, Reply, Resource};
use crate::config::{DeactivateForm, MatchBy, MemberRemoval, ScimConfig};
use crate::discover::{find_by, is_active, str_at, ID_KIND};
use crate::escape::{member_path, segment};
use crate::member::{entries_naming, others, user_lists_group, Who};
use crate::plan::{DEACTIVATE_USER, DELETE_USER, REMOVE_GROUP_MEMBER};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// Reads and writes per action: the first write, and one more after a 412.
const ATTEMPTS: usize = 2;

/// One lock per group for `replace` member removals: a read-modify-write of the whole member
/// list, which two removals from one group must not interleave (an app whose ETags have
/// one-second resolution, as Canaille's, cannot catch that itself).
#[derive(Debug, Default)]
pub struct GroupLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl GroupLocks {
    async fn lock(&self, gid: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(gid.to_string())
            .or_default()
            .clone();
        m.lock_owned().await
    }
}

/// The services an action needs: the client, the config, the instance name and the locks.
pub struct Ctx<'a> {
    pub client: &'a Client,
    pub cfg: &'a ScimConfig,
    pub instance: &'a str,
    pub locks: &'a GroupLocks,
}

fn unknown(action: &Action) -> ConnectorError {
    ConnectorError::unknown_action(format!(
        "expected one of {DEACTIVATE_USER}, {REMOVE_GROUP_MEMBER}, {DELETE_USER}, found {:?}",
        action.kind.0
    ))
}

/// The PATCH body that sets `active` to false in the configured form.
pub fn deactivate_body(form: DeactivateForm) -> Value {
    let op = match form {
        DeactivateForm::Path => json!({"op": "replace", "path": "active", "value": false}),
        DeactivateForm::Value => json!({"op": "replace", "value": {"active": false}}),
    };
    json!({"schemas": [PATCH_OP], "Operations": [op]})
}

/// The PATCH body that removes the member entries whose values are `values`.
pub fn remove_member_body(values: &[&str]) -> Value {
    let ops: Vec<Value> = values
        .iter()
        .map(|v| json!({"op": "remove", "path": member_path(v)}))
        .collect();
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

/// The PATCH body that sets a group's members to `members`.
pub fn replace_members_body(members: Vec<Value>) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "members", "value": members}]})
}

/// The pinned account of an action, and the plan's `user_id` agreeing with it.
fn pin_of(action: &Action) -> Result<&AccountPin, ConnectorError> {
    let pin = action.pinned()?;
    match action.params.get("user_id") {
        Some(id) if id != &pin.id => Err(ConnectorError::permanent(
            "bad_action",
            format!(
                "{} {}: expected user_id to be the pinned {ID_KIND} {}, found {id:?}",
                action.kind, action.target, pin.id
            ),
        )),
        _ => Ok(pin),
    }
}

fn describe(user: &Value) -> String {
    format!(
        "{ID_KIND} {} (userName {:?})",
        str_at(user, "id").unwrap_or("?"),
        str_at(user, "userName").unwrap_or_default()
    )
}

/// The pinned user as it is now; `None` when it is gone.
async fn resolve(ctx: &Ctx<'_>, pin: &AccountPin) -> Result<Option<Resource>, ConnectorError> {
    let Some(user) = ctx.client.get("/Users", &pin.id, None).await? else {
        return Ok(None);
    };
    if str_at(&user.body, "id") != Some(pin.id.as_str()) {
        return Err(pin.changed(describe(&user.body)));
    }
    Ok(Some(user))
}

/// The pinned user is gone, so the effect holds on it; unless its planned userName now names
/// another user, which apply must not call done: it may be the leaver, re-created.
async fn gone(ctx: &Ctx<'_>, pin: &AccountPin) -> Result<Outcome, ConnectorError> {
    if !pin.name.is_empty() {
        if let Some(other) = find_by(ctx.client, MatchBy::UserName, &pin.name).await? {
            if str_at(&other, "id") != Some(pin.id.as_str()) {
                return Err(pin.changed(describe(&other)));
            }
        }
    }
    Ok(Outcome::AlreadyDone)
}

pub async fn apply(
    ctx: &Ctx<'_>,
    action: &Action,
    key: &ActionKey,
) -> Result<Outcome, ConnectorError> {
    // SCIM has no idempotency header; the key is for correlating logs with the store's ledger.
    debug!(connector = %ctx.instance, action_id = %action.id, key = %key, kind = %action.kind, target = %action.target, "applying scim action");
    let outcome = match action.kind.0.as_str() {
        DEACTIVATE_USER => deactivate(ctx, action).await?,
        REMOVE_GROUP_MEMBER => remove_member(ctx, action).await?,
        DELETE_USER => delete(ctx, action).await?,
        _ => return Err(unknown(action)),
    };
    info!(connector = %ctx.instance, action_id = %action.id, kind = %action.kind, target = %action.target, outcome = outcome.as_str(), "scim action applied");
    Ok(outcome)
}

/// The If-Match to send: the version just read, when the app checks them.
async fn if_match<'r>(
    ctx: &Ctx<'_>,
    read: &'r Resource,
) -> Result<Option<&'r str>, ConnectorError> {
    Ok(if ctx.client.features().await?.etag {
        read.version.as_deref()
    } else {
        None
    })
}

/// What a write's answer means: done, already done, try again (412 before the last attempt).
enum Written {
    Outcome(Outcome),
    Stale,
}

fn judge(
    reply: &Reply,
    what: &str,
    attempt: usize,
    gone_ok: bool,
) -> Result<Written, ConnectorError> {
    match reply.status {
        200..=299 => Ok(Written::Outcome(Outcome::Done)),
        404 if gone_ok => Ok(Written::Outcome(Outcome::AlreadyDone)),
        412 if attempt + 1 < ATTEMPTS => Ok(Written::Stale),
        _ => Err(classify::status(what, &reply.failure())),
    }
}

async fn deactivate(ctx: &Ctx<'_>, action: &Action) -> Result<Outcome, ConnectorError> {
    let pin = pin_of(action)?;
    let path = format!("/Users/{}", segment(&pin.id));
    let body = deactivate_body(ctx.cfg.deactivate_form);
    for attempt in 0..ATTEMPTS {
        let Some(user) = resolve(ctx, pin).await? else {
            return gone(ctx, pin).await;
        };
        if !is_active(&user.body) {
            return Ok(Outcome::AlreadyDone);
        }
        let r = ctx
            .client
            .send(
                Method::PATCH,
                &path,
                Some(&body),
                if_match(ctx, &user).await?,
            )
            .await?;
        match judge(&r, &format!("PATCH {path}"), attempt, true)? {
            Written::Outcome(o) => return Ok(o),
            Written::Stale => {
                debug!(connector = %ctx.instance, path = %path, "stale etag; reading again")
            }
        }
    }
    Err(stale(&path))
}

/// The pinned user's membership of one group, as far as the app tells.
enum Membership {
    /// The group is gone (404), and the membership with it.
    GroupGone,
    /// Neither the group's members nor the user's `groups` list it.
    Absent,
    /// The group's members name the user: these entries.
    Present {
        group: Resource,
        entries: Vec<Value>,
    },
    /// The user's `groups` lists the group, but no member entry can be told to be the user.
    Unclear,
}

async fn membership(
    ctx: &Ctx<'_>,
    gid: &str,
    user: &Resource,
    pin: &AccountPin,
) -> Result<Membership, ConnectorError> {
    // A replace needs the group's version, which some apps send only with the whole group.
    let attributes = match ctx.cfg.member_removal {
        MemberRemoval::Filter => Some("members"),
        MemberRemoval::Replace => None,
    };
    let Some(group) = ctx.client.get("/Groups", gid, attributes).await? else {
        return Ok(Membership::GroupGone);
    };
    let who = Who::of(&user.body, &pin.id);
    let entries = entries_naming(ctx.client, &group.body, &who).await?;
    let listed_by_user = user_lists_group(&user.body, gid) == Some(true);
    Ok(match entries {
        Some(e) if !e.is_empty() => Membership::Present { group, entries: e },
        _ if listed_by_user => Membership::Unclear,
        _ => Membership::Absent,
    })
}

/// The group a `remove_group_member` action is about: its `group_id` param (a client job's
/// actions, whose targets name the member too), else its target.
fn group_of(action: &Action) -> &str {
    action
        .params
        .get("group_id")
        .map(String::as_str)
        .unwrap_or(&action.target)
}

async fn remove_member(ctx: &Ctx<'_>, action: &Action) -> Result<Outcome, ConnectorError> {
    let pin = pin_of(action)?;
    let gid = group_of(action);
    let path = format!("/Groups/{}", segment(gid));
    let _serial = match ctx.cfg.member_removal {
        MemberRemoval::Replace => Some(ctx.locks.lock(gid).await),
        MemberRemoval::Filter => None,
    };
    for attempt in 0..ATTEMPTS {
        let Some(user) = resolve(ctx, pin).await? else {
            return gone(ctx, pin).await;
        };
        let (body, version) = match (
            membership(ctx, gid, &user, pin).await?,
            ctx.cfg.member_removal,
        ) {
            (Membership::GroupGone | Membership::Absent, _) => return Ok(Outcome::AlreadyDone),
            (Membership::Present { entries, .. }, MemberRemoval::Filter) => {
                let mut values: Vec<&str> =
                    entries.iter().filter_map(|m| str_at(m, "value")).collect();
                values.sort_unstable();
                values.dedup();
                // No If-Match: removing members by value is applied by the server to the group as
                // it is, so it loses no other writer's change, and a version check would only
                // make the removals of many leavers from one large group race each other.
                (remove_member_body(&values), None)
            }
            (Membership::Unclear, MemberRemoval::Filter) => {
                (remove_member_body(&[pin.id.as_str()]), None)
            }
            (Membership::Present { group, entries }, MemberRemoval::Replace) => {
                let version = if_match(ctx, &group).await?.map(str::to_string);
                (replace_members_body(others(&group.body, &entries)), version)
            }
            (Membership::Unclear, MemberRemoval::Replace) => {
                return Err(unclear(gid, pin));
            }
        };
        let r = ctx
            .client
            .send(Method::PATCH, &path, Some(&body), version.as_deref())
            .await?;
        // RFC 7644 §3.5.2.2: a filter that matches no member is 400 noTarget.
        if r.status == 400 && r.failure().scim_type() == Some("noTarget") {
            return Ok(Outcome::AlreadyDone);
        }
        match judge(&r, &format!("PATCH {path}"), attempt, true)? {
            Written::Outcome(o) => return Ok(o),
            Written::Stale => {
                debug!(connector = %ctx.instance, path = %path, "stale etag; reading again")
            }
        }
    }
    Err(stale(&path))
}

fn unclear(gid: &str, pin: &AccountPin) -> ConnectorError {
    ConnectorError::permanent(
        "membership_unclear",
        format!(
            "expected group {gid} to list {pin} among its members, as the user's groups attribute says, found no member entry that is the user"
        ),
    )
}

async fn delete(ctx: &Ctx<'_>, action: &Action) -> Result<Outcome, ConnectorError> {
    let pin = pin_of(action)?;
    let path = format!("/Users/{}", segment(&pin.id));
    for attempt in 0..ATTEMPTS {
        let Some(user) = resolve(ctx, pin).await? else {
            return gone(ctx, pin).await;
        };
        let r = ctx
            .client
            .send(Method::DELETE, &path, None, if_match(ctx, &user).await?)
            .await?;
        match judge(&r, &format!("DELETE {path}"), attempt, true)? {
            Written::Outcome(o) => return Ok(o),
            Written::Stale => {
                debug!(connector = %ctx.instance, path = %path, "stale etag; reading again")
            }
        }
    }
    Err(stale(&path))
}

/// Unreachable in practice (the last attempt's 412 is classified by `judge`); kept total.
fn stale(path: &str) -> ConnectorError {
    ConnectorError::retryable(
        "precondition_failed",
        format!("{path}: the resource changed between read and write {ATTEMPTS} times"),
    )
}

/// Read-only. The verdict is about the pinned user: gone is confirmed (a later user with the
/// same userName is another account, which verify does not judge).
pub async fn verify(ctx: &Ctx<'_>, action: &Action) -> Result<Verdict, ConnectorError> {
    let pin = pin_of(action)?;
    let user = resolve(ctx, pin).await?;
    let verdict = match (action.kind.0.as_str(), user) {
        (DEACTIVATE_USER | REMOVE_GROUP_MEMBER | DELETE_USER, None) => Verdict::Confirmed,
        (DEACTIVATE_USER, Some(u)) if !is_active(&u.body) => Verdict::Confirmed,
        (DEACTIVATE_USER, Some(_)) => Verdict::NotConfirmed {
            detail: format!("user {pin} is still active"),
        },
        (REMOVE_GROUP_MEMBER, Some(u)) => match membership(ctx, group_of(action), &u, pin).await? {
            Membership::GroupGone | Membership::Absent => Verdict::Confirmed,
            Membership::Present { .. } => Verdict::NotConfirmed {
                detail: format!("group {} still lists {pin}", group_of(action)),
            },
            Membership::Unclear => Verdict::NotConfirmed {
                detail: unclear(group_of(action), pin).message,
            },
        },
        (DELETE_USER, Some(_)) => Verdict::NotConfirmed {
            detail: format!("user {pin} still exists"),
        },
        _ => return Err(unknown(action)),
    };
    debug!(connector = %ctx.instance, action_id = %action.id, target = %action.target, verdict = %verdict, "scim action verified");
    Ok(verdict)
}
