//! Apply and verify: each action reads first, resolves its pin (the entity id) and writes only
//! when the effect does not hold yet, so a rerun and a retried attempt send nothing twice.
//!
//! Vault answers deletes of what is gone with 204 again (no 404), and a revoke of a missing
//! accessor with 200 and a warning: "already done" is therefore always concluded from a read of
//! the pinned object, never from a write's answer.

use reqwest::Method;
use revoke_core::{Action, ActionKey, ConnectorError, Journal, Outcome, Verdict};
use serde_json::{json, Value};
use tracing::{debug, warn};

use crate::client::Client;
use crate::discover::{lookup_accessor, lookup_alias, lookup_self, v1, v1_with};
use crate::plan::{
    DELETE_ALIAS, DELETE_ENTITY, DELETE_USER, DISABLE_ENTITY, REMOVE_GROUP, REMOVE_POLICIES,
    REVOKE_LOGIN_TOKENS, REVOKE_ROOT_TOKEN, REVOKE_TOKEN,
};

pub struct Ctx<'a> {
    pub client: &'a Client,
    pub instance: &'a str,
}

fn pinned(action: &Action) -> Result<&str, ConnectorError> {
    match &action.account {
        Some(p) => Ok(p.id.as_str()),
        None => action.param("entity_id"),
    }
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

async fn entity(client: &Client, id: &str) -> Result<Option<Value>, ConnectorError> {
    client.get_data(&v1_with("identity/entity/id", id)).await
}

/// Checks that the alias still names the pinned entity: another entity is `identity_changed`.
/// `None`: no entity has the alias now.
async fn alias_pin(
    client: &Client,
    action: &Action,
    pin: &str,
) -> Result<Option<()>, ConnectorError> {
    let name = action.param("alias_name")?;
    let accessor = action.param("mount_accessor")?;
    match lookup_alias(client, name, accessor).await? {
        None => Ok(None),
        Some(e) if e["id"] == pin => Ok(Some(())),
        Some(e) => Err(match &action.account {
            Some(p) => p.changed(format!("entity {}", e["id"].as_str().unwrap_or_default())),
            None => ConnectorError::permanent(
                "identity_changed",
                format!("{name} now names another entity; nothing was sent"),
            ),
        }),
    }
}

/// The pinned entity's live tokens among `accessors`.
async fn alive(client: &Client, accessors: &str, pin: &str) -> Result<Vec<String>, ConnectorError> {
    let mut out = Vec::new();
    for a in accessors.split(',').filter(|a| !a.is_empty()) {
        if let Some(t) = lookup_accessor(client, a).await? {
            if t.entity_id == pin {
                out.push(a.to_string());
            }
        }
    }
    Ok(out)
}

pub async fn apply(
    ctx: &Ctx<'_>,
    action: &Action,
    key: &ActionKey,
    journal: &dyn Journal,
) -> Result<Outcome, ConnectorError> {
    let c = ctx.client;
    let pin = pinned(action)?;
    debug!(connector = %ctx.instance, action_id = %action.id, key = %key, attempt = journal.attempt(), "vault apply");
    match action.kind.0.as_str() {
        DISABLE_ENTITY => {
            let Some(e) = entity(c, pin).await? else {
                return Ok(Outcome::AlreadyDone);
            };
            if e["disabled"].as_bool() == Some(true) {
                return Ok(Outcome::AlreadyDone);
            }
            c.write(
                Method::POST,
                &v1_with("identity/entity/id", pin),
                Some(&json!({"disabled": true})),
            )
            .await?;
            Ok(Outcome::Done)
        }
        REVOKE_LOGIN_TOKENS => {
            let accessors = action
                .params
                .get("accessors")
                .map(String::as_str)
                .unwrap_or("");
            let live = alive(c, accessors, pin).await?;
            if !accessors.is_empty() && live.is_empty() {
                return Ok(Outcome::AlreadyDone);
            }
            // The login name must still name the pinned entity (another entity: nothing is
            // sent). With its alias gone, no later login happened under it (a login makes an
            // alias), so every token under its login path is still the leaver's.
            alias_pin(c, action, pin).await?;
            let path = format!(
                "{}/{}",
                v1(&[
                    "sys/leases/revoke-prefix/auth",
                    action.param("mount")?,
                    "login"
                ]),
                crate::client::encode(action.param("alias_name")?)
            );
            c.write(Method::PUT, &path, None).await?;
            Ok(Outcome::Done)
        }
        REVOKE_TOKEN => {
            let accessor = action.param("accessor")?;
            match lookup_accessor(c, accessor).await? {
                None => Ok(Outcome::AlreadyDone),
                Some(t) if t.entity_id != pin => Err(ConnectorError::permanent(
                    "identity_changed",
                    format!(
                        "token accessor {accessor} was planned for entity {pin} but is tied to {:?}; nothing was sent",
                        t.entity_id
                    ),
                )),
                Some(_) => {
                    c.write(
                        Method::POST,
                        "/v1/auth/token/revoke-accessor",
                        Some(&json!({ "accessor": accessor })),
                    )
                    .await?;
                    Ok(Outcome::Done)
                }
            }
        }
        REVOKE_ROOT_TOKEN => {
            // Pinned to the accessor: it must still name a root token no entity owns, and never
            // the connector's own token or one it may descend from.
            let accessor = action.param("accessor")?;
            let Some(t) = lookup_accessor(c, accessor).await? else {
                return Ok(Outcome::AlreadyDone);
            };
            if !t.is_unowned_root() {
                return Err(ConnectorError::permanent(
                    "identity_changed",
                    format!("token accessor {accessor} was planned as a root token no entity owns, but now has policies {:?} and entity {:?}; nothing was sent", t.policies, t.entity_id),
                ));
            }
            match lookup_self(c).await? {
                Some(me) if me.accessor == accessor => {
                    return Err(ConnectorError::permanent(
                        "own_token",
                        format!("root token accessor {accessor} is the connector's own token now; nothing was sent"),
                    ))
                }
                Some(me) if me.orphan => {}
                _ => {
                    return Err(ConnectorError::permanent(
                        "own_token_at_risk",
                        format!("the connector's token is not a known orphan now, so revoking root token {accessor} could revoke it too; nothing was sent"),
                    ))
                }
            }
            c.write(
                Method::POST,
                "/v1/auth/token/revoke-accessor",
                Some(&json!({ "accessor": accessor })),
            )
            .await?;
            Ok(Outcome::Done)
        }
        REMOVE_GROUP => {
            let gid = action.param("group_id")?;
            let path = v1_with("identity/group/id", gid);
            let Some(g) = c.get_data(&path).await? else {
                return Err(ConnectorError::permanent(
                    "group_gone",
                    format!("group {gid} no longer exists, so entity {pin} is no member of it; nothing was sent"),
                ));
            };
            if g["type"] == "external" {
                return Ok(Outcome::Skipped {
                    reason: format!(
                        "group {gid} is external: its members come from the identity provider"
                    ),
                });
            }
            let members = strs(&g["member_entity_ids"]);
            if !members.iter().any(|m| m == pin) {
                return Ok(Outcome::AlreadyDone);
            }
            let rest: Vec<&String> = members.iter().filter(|m| *m != pin).collect();
            let index = g["modify_index"].as_u64();
            c.write(
                Method::POST,
                &path,
                Some(&json!({ "member_entity_ids": rest })),
            )
            .await?;
            // OpenBao and Vault have no compare-and-set on groups: a change another writer made
            // between our read and our write is overwritten. The group's modify_index tells it.
            // This read is a check only: its failure (a 429) must not turn the done write into
            // an error, so it is best effort.
            if let (Some(before), Some(after)) = (
                index,
                c.get_data(&path)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|g| g["modify_index"].as_u64()),
            ) {
                if after != before + 1 {
                    warn!(connector = %ctx.instance, action_id = %action.id, group_id = gid, before, after, "the group changed beside our write: a concurrent change to its members may have been overwritten");
                }
            }
            Ok(Outcome::Done)
        }
        REMOVE_POLICIES => {
            let planned: Vec<String> =
                serde_json::from_str(action.param("policies")?).unwrap_or_default();
            let Some(e) = entity(c, pin).await? else {
                return Ok(Outcome::AlreadyDone);
            };
            let now = strs(&e["policies"]);
            if !now.iter().any(|p| planned.contains(p)) {
                return Ok(Outcome::AlreadyDone);
            }
            let rest: Vec<&String> = now.iter().filter(|p| !planned.contains(p)).collect();
            c.write(
                Method::POST,
                &v1_with("identity/entity/id", pin),
                Some(&json!({ "policies": rest })),
            )
            .await?;
            Ok(Outcome::Done)
        }
        DELETE_USER => {
            let mount = action.param("mount")?;
            let name = action.param("alias_name")?;
            let path = format!(
                "{}/{}",
                v1(&["auth", mount, "users"]),
                crate::client::encode(name)
            );
            if c.get_data(&path).await?.is_none() {
                return Ok(Outcome::AlreadyDone);
            }
            match alias_pin(c, action, pin).await? {
                Some(()) => {
                    c.write(Method::DELETE, &path, None).await?;
                    Ok(Outcome::Done)
                }
                None => Err(ConnectorError::permanent(
                    "identity_unproven",
                    format!("the userpass user {name} on {mount}/ exists but no alias ties it to entity {pin} any more; nothing was sent"),
                )),
            }
        }
        DELETE_ALIAS => {
            let aid = action.param("alias_id")?;
            let path = v1_with("identity/entity-alias/id", aid);
            let Some(a) = c.get_data(&path).await? else {
                return Ok(Outcome::AlreadyDone);
            };
            if a["canonical_id"] != pin {
                return Err(match &action.account {
                    Some(p) => p.changed(format!(
                        "entity {} (alias {aid} was merged into it)",
                        a["canonical_id"].as_str().unwrap_or_default()
                    )),
                    None => ConnectorError::permanent("identity_changed", "alias moved"),
                });
            }
            c.write(Method::DELETE, &path, None).await?;
            Ok(Outcome::Done)
        }
        DELETE_ENTITY => {
            if entity(c, pin).await?.is_none() {
                return Ok(Outcome::AlreadyDone);
            }
            c.write(Method::DELETE, &v1_with("identity/entity/id", pin), None)
                .await?;
            Ok(Outcome::Done)
        }
        other => Err(ConnectorError::unknown_action(format!(
            "expected a vault action kind, found {other:?}"
        ))),
    }
}

pub async fn verify(ctx: &Ctx<'_>, action: &Action) -> Result<Verdict, ConnectorError> {
    let c = ctx.client;
    let pin = pinned(action)?;
    let not = |detail: String| Ok(Verdict::NotConfirmed { detail });
    match action.kind.0.as_str() {
        DISABLE_ENTITY => match entity(c, pin).await? {
            None => Ok(Verdict::Confirmed),
            Some(e) if e["disabled"].as_bool() == Some(true) => Ok(Verdict::Confirmed),
            Some(_) => not(format!("entity {pin} is not disabled")),
        },
        REVOKE_LOGIN_TOKENS => {
            let accessors = action
                .params
                .get("accessors")
                .map(String::as_str)
                .unwrap_or("");
            let live = if accessors.is_empty() {
                // Not scanned at plan time: scan now for the login path's tokens.
                let prefix = format!(
                    "auth/{}/login/{}",
                    action.param("mount")?,
                    action.param("alias_name")?
                );
                let set = std::iter::once(pin.to_string()).collect();
                crate::discover::scan_tokens(c, &set, false)
                    .await?
                    .tokens
                    .into_iter()
                    .filter(|t| t.path == prefix)
                    .map(|t| t.accessor)
                    .collect()
            } else {
                alive(c, accessors, pin).await?
            };
            if live.is_empty() {
                Ok(Verdict::Confirmed)
            } else {
                not(format!("tokens still live: {}", live.join(", ")))
            }
        }
        REVOKE_TOKEN | REVOKE_ROOT_TOKEN => {
            let accessor = action.param("accessor")?;
            match lookup_accessor(c, accessor).await? {
                None => Ok(Verdict::Confirmed),
                Some(_) => not(format!("token accessor {accessor} is still live")),
            }
        }
        REMOVE_GROUP => {
            let gid = action.param("group_id")?;
            match c.get_data(&v1_with("identity/group/id", gid)).await? {
                None => Ok(Verdict::Confirmed),
                Some(g) if strs(&g["member_entity_ids"]).iter().any(|m| m == pin) => {
                    not(format!("entity {pin} is still a member of group {gid}"))
                }
                Some(_) => Ok(Verdict::Confirmed),
            }
        }
        REMOVE_POLICIES => {
            let planned: Vec<String> =
                serde_json::from_str(action.param("policies")?).unwrap_or_default();
            match entity(c, pin).await? {
                None => Ok(Verdict::Confirmed),
                Some(e) => {
                    let left: Vec<String> = strs(&e["policies"])
                        .into_iter()
                        .filter(|p| planned.contains(p))
                        .collect();
                    if left.is_empty() {
                        Ok(Verdict::Confirmed)
                    } else {
                        not(format!(
                            "entity {pin} still has policies {}",
                            left.join(", ")
                        ))
                    }
                }
            }
        }
        DELETE_USER => {
            let path = format!(
                "{}/{}",
                v1(&["auth", action.param("mount")?, "users"]),
                crate::client::encode(action.param("alias_name")?)
            );
            match c.get_data(&path).await? {
                None => Ok(Verdict::Confirmed),
                Some(_) => match alias_pin(c, action, pin).await {
                    // Someone else's user of the same name (pinned elsewhere) is not ours.
                    Err(e) if e.code == "identity_changed" => Ok(Verdict::Confirmed),
                    Err(e) => Err(e),
                    Ok(_) => not(format!(
                        "the userpass user {} still exists",
                        action.param("alias_name")?
                    )),
                },
            }
        }
        DELETE_ALIAS => {
            let aid = action.param("alias_id")?;
            match c
                .get_data(&v1_with("identity/entity-alias/id", aid))
                .await?
            {
                None => Ok(Verdict::Confirmed),
                Some(_) => not(format!("alias {aid} still exists")),
            }
        }
        DELETE_ENTITY => match entity(c, pin).await? {
            None => Ok(Verdict::Confirmed),
            Some(_) => not(format!("entity {pin} still exists")),
        },
        other => Err(ConnectorError::unknown_action(format!(
            "expected a vault action kind, found {other:?}"
        ))),
    }
}

/// The verdict of `action` from one read of its pinned entity (`None`: gone), when that read
/// settles it; `None` when it needs its own read (tokens, users, a group or an alias the
/// entity no longer lists).
fn judge(action: &Action, pin: &str, e: Option<&Value>) -> Option<Verdict> {
    let not = |detail: String| Some(Verdict::NotConfirmed { detail });
    match (action.kind.0.as_str(), e) {
        (DISABLE_ENTITY | REMOVE_POLICIES | DELETE_ENTITY, None) => Some(Verdict::Confirmed),
        (DISABLE_ENTITY, Some(e)) if e["disabled"].as_bool() == Some(true) => {
            Some(Verdict::Confirmed)
        }
        (DISABLE_ENTITY, Some(_)) => not(format!("entity {pin} is not disabled")),
        (REMOVE_POLICIES, Some(e)) => {
            let planned: Vec<String> = serde_json::from_str(action.param("policies").ok()?).ok()?;
            let left: Vec<String> = strs(&e["policies"])
                .into_iter()
                .filter(|p| planned.contains(p))
                .collect();
            if left.is_empty() {
                Some(Verdict::Confirmed)
            } else {
                not(format!(
                    "entity {pin} still has policies {}",
                    left.join(", ")
                ))
            }
        }
        (DELETE_ENTITY, Some(_)) => not(format!("entity {pin} still exists")),
        // Deleting an entity takes it out of every group's members (measured on OpenBao 2.7.2:
        // the group's member_entity_ids loses it and its modify_index moves); ids are not reused.
        (REMOVE_GROUP, None) => Some(Verdict::Confirmed),
        // The entity lists the internal groups it is a direct member of (what discovery read).
        (REMOVE_GROUP, Some(e)) => {
            let gid = action.param("group_id").ok()?;
            if strs(&e["direct_group_ids"]).iter().any(|g| g == gid) {
                not(format!("entity {pin} is still a member of group {gid}"))
            } else {
                Some(Verdict::Confirmed)
            }
        }
        // An alias the entity still carries is not deleted; one it no longer carries may have
        // moved to another entity (a merge): that needs the alias's own read.
        (DELETE_ALIAS, Some(e)) => {
            let aid = action.param("alias_id").ok()?;
            e["aliases"]
                .as_array()
                .is_some_and(|a| a.iter().any(|al| al["id"] == aid))
                .then(|| Verdict::NotConfirmed {
                    detail: format!("alias {aid} still exists"),
                })
        }
        _ => None,
    }
}

/// Reads back many applied actions together: each pinned entity once, settling its disable,
/// policies, group memberships (its `direct_group_ids`; none once it is gone), delete and the
/// aliases it still carries; everything else (tokens, userpass users, what the entity no longer shows) is read
/// one by one as `verify` does.
pub async fn verify_many(
    ctx: &Ctx<'_>,
    actions: &[Action],
) -> Vec<Result<Verdict, ConnectorError>> {
    let c = ctx.client;
    let by_entity = |k: &str| {
        matches!(
            k,
            DISABLE_ENTITY | REMOVE_POLICIES | DELETE_ENTITY | REMOVE_GROUP | DELETE_ALIAS
        )
    };
    let mut read: std::collections::BTreeMap<String, Result<Option<Value>, ConnectorError>> =
        std::collections::BTreeMap::new();
    for a in actions.iter().filter(|a| by_entity(&a.kind.0)) {
        if let Ok(pin) = pinned(a) {
            if !read.contains_key(pin) {
                let e = entity(c, pin).await;
                read.insert(pin.to_string(), e);
            }
        }
    }
    let mut out = Vec::with_capacity(actions.len());
    let mut one_by_one = 0usize;
    for a in actions {
        let entry = pinned(a)
            .ok()
            .filter(|_| by_entity(&a.kind.0))
            .and_then(|p| read.get(p).map(|r| (p, r)));
        let settled = match entry {
            Some((_, Err(e))) => Some(Err(e.clone())),
            Some((pin, Ok(e))) => judge(a, pin, e.as_ref()).map(Ok),
            None => None,
        };
        match settled {
            Some(r) => out.push(r),
            None => {
                one_by_one += 1;
                out.push(verify(ctx, a).await);
            }
        }
    }
    debug!(connector = %ctx.instance, actions = actions.len(), entities = read.len(), one_by_one, "vault actions verified together");
    out
}
