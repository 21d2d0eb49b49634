//! Apply and verify. Every apply reads before it writes: an effect that already holds sends no
//! modification and is `AlreadyDone`.
//!
//! Requests per action (after the connector's one GET /ServiceProviderConfig):
//! - deactivate_user: 1 GET /Users/{id}, then at most 1 PATCH.
//! - remove_group_member: 1 GET /Groups/{id}?attributes=members (plus 1 GET
//!   /Groups?filter=members.value when the app sends no members), then at most 1 PATCH.
//! - delete_user: 1 GET /Users/{id}, then at most 1 DELETE.
//!
//! When the app announces ETag support, each write carries If-Match with the version just read;
//! a 412 (someone changed the resource in between) re-reads and writes once more, and a second
//! 412 is a retryable `precondition_failed` for the executor.

use reqwest::Method;
use revoke_core::{Action, ActionKey, ConnectorError, Outcome, Verdict};
use serde_json::{json, Value};
use tracing::{debug, info};

use crate::classify;
use crate::client::{Client, Reply, Resource};
use crate::config::{DeactivateForm, ScimConfig};
use crate::discover::is_active;
use crate::escape::{eq_filter, member_path, segment};
use crate::plan::{DEACTIVATE_USER, DELETE_USER, REMOVE_GROUP_MEMBER};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// Reads and writes per action: the first write, and one more after a 412.
const ATTEMPTS: usize = 2;

/// The services an action needs: the client, the config and the instance name.
pub struct Ctx<'a> {
    pub client: &'a Client,
    pub cfg: &'a ScimConfig,
    pub instance: &'a str,
}

fn unknown(action: &Action) -> ConnectorError {
    ConnectorError::permanent(
        "unknown_action",
        format!(
            "expected one of {DEACTIVATE_USER}, {REMOVE_GROUP_MEMBER}, {DELETE_USER}, found {:?}",
            action.kind.0
        ),
    )
}

/// The PATCH body that sets `active` to false in the configured form.
pub fn deactivate_body(form: DeactivateForm) -> Value {
    let op = match form {
        DeactivateForm::Path => json!({"op": "replace", "path": "active", "value": false}),
        DeactivateForm::Value => json!({"op": "replace", "value": {"active": false}}),
    };
    json!({"schemas": [PATCH_OP], "Operations": [op]})
}

/// The PATCH body that removes one member from a group.
pub fn remove_member_body(user_id: &str) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": member_path(user_id)}]})
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
    let id = action.param("user_id")?;
    let path = format!("/Users/{}", segment(id));
    let body = deactivate_body(ctx.cfg.deactivate_form);
    for attempt in 0..ATTEMPTS {
        let Some(user) = ctx.client.get("/Users", id, None).await? else {
            return Ok(Outcome::AlreadyDone);
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

/// Whether the group lists the user: `None` when the app sends no `members` at all (some never
/// do, scim2-server leaves out an empty list).
fn lists(group: &Value, user_id: &str) -> Option<bool> {
    let members = group.get("members")?.as_array()?;
    Some(
        members
            .iter()
            .any(|m| m.get("value").and_then(Value::as_str) == Some(user_id)),
    )
}

/// The leaver's membership of one group, as far as the app tells.
enum Membership {
    /// The group is gone (404), and the membership with it.
    GroupGone,
    Absent,
    Present(Resource),
    /// The app sends no members and refuses the search by member: the removal is sent and
    /// judged by its answer.
    Unknown(Resource),
}

async fn membership(ctx: &Ctx<'_>, gid: &str, user_id: &str) -> Result<Membership, ConnectorError> {
    let Some(group) = ctx.client.get("/Groups", gid, Some("members")).await? else {
        return Ok(Membership::GroupGone);
    };
    match lists(&group.body, user_id) {
        Some(true) => return Ok(Membership::Present(group)),
        Some(false) => return Ok(Membership::Absent),
        None => {}
    }
    // No members attribute: an empty group, or an app that does not send members. Ask by member.
    match ctx
        .client
        .list(
            "/Groups",
            &eq_filter("members.value", user_id),
            Some("displayName"),
        )
        .await
    {
        Ok(groups) => Ok(
            if groups
                .iter()
                .any(|g| g.get("id").and_then(Value::as_str) == Some(gid))
            {
                Membership::Present(group)
            } else {
                Membership::Absent
            },
        ),
        Err(e) if e.code == "bad_request" || e.code == "http_501" || e.code == "forbidden" => {
            Ok(Membership::Unknown(group))
        }
        Err(e) => Err(e),
    }
}

async fn remove_member(ctx: &Ctx<'_>, action: &Action) -> Result<Outcome, ConnectorError> {
    let gid = action.target.as_str();
    let user_id = action.param("user_id")?;
    let path = format!("/Groups/{}", segment(gid));
    let body = remove_member_body(user_id);
    for attempt in 0..ATTEMPTS {
        let group = match membership(ctx, gid, user_id).await? {
            Membership::GroupGone | Membership::Absent => return Ok(Outcome::AlreadyDone),
            Membership::Present(g) | Membership::Unknown(g) => g,
        };
        // No If-Match on a group: removing one member by value is applied by the server to the
        // group as it is, so it loses no other writer's change, and a version check would only
        // make the removals of many leavers from one large group race each other (412s).
        let _ = group;
        let r = ctx
            .client
            .send(Method::PATCH, &path, Some(&body), None)
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

async fn delete(ctx: &Ctx<'_>, action: &Action) -> Result<Outcome, ConnectorError> {
    let id = action.param("user_id")?;
    let path = format!("/Users/{}", segment(id));
    for attempt in 0..ATTEMPTS {
        let Some(user) = ctx.client.get("/Users", id, None).await? else {
            return Ok(Outcome::AlreadyDone);
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

pub async fn verify(ctx: &Ctx<'_>, action: &Action) -> Result<Verdict, ConnectorError> {
    let verdict = match action.kind.0.as_str() {
        DEACTIVATE_USER => match ctx
            .client
            .get("/Users", action.param("user_id")?, None)
            .await?
        {
            None => Verdict::Confirmed,
            Some(u) if !is_active(&u.body) => Verdict::Confirmed,
            Some(_) => Verdict::NotConfirmed {
                detail: format!("user {} is still active", action.target),
            },
        },
        REMOVE_GROUP_MEMBER => {
            let user_id = action.param("user_id")?;
            match membership(ctx, &action.target, user_id).await? {
                Membership::GroupGone | Membership::Absent => Verdict::Confirmed,
                Membership::Present(_) => Verdict::NotConfirmed {
                    detail: format!("group {} still lists {user_id}", action.target),
                },
                Membership::Unknown(_) => Verdict::NotConfirmed {
                    detail: format!(
                        "group {} sends no members and cannot be searched by member; cannot confirm the removal",
                        action.target
                    ),
                },
            }
        }
        DELETE_USER => match ctx
            .client
            .get("/Users", action.param("user_id")?, None)
            .await?
        {
            None => Verdict::Confirmed,
            Some(_) => Verdict::NotConfirmed {
                detail: format!("user {} still exists", action.target),
            },
        },
        _ => return Err(unknown(action)),
    };
    debug!(connector = %ctx.instance, action_id = %action.id, target = %action.target, verdict = %verdict, "scim action verified");
    Ok(verdict)
}
