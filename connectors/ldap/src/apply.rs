//! Apply and verify. Every apply reads before it writes: an effect that already holds sends no
//! modification and is `AlreadyDone`.
//!
//! Operations per action (after the connection's one bind):
//! - lock_account: 1 search per user base (2 with `move`), then at most 1 modify (ppolicy,
//!   attribute) or 1 modrdn (move).
//! - remove_group_member: with `move` and a DN-valued attribute, 1 search per user base to learn
//!   the current DN; then 1 compare per candidate value (the current DN, and the planned DN if it
//!   differs; the username for memberUid); then at most 1 modify. Where discovery saw the leaver
//!   as a group's last member, 1 base read of the group first, then 1 modify that adds the
//!   placeholder and removes the leaver (a refused modify, 65, only if membership changed since).
//! - delete_account: 1 search per user base, then at most 1 delete.

use std::collections::{BTreeMap, HashSet};

use ldap3::{Mod, Scope};
use revoke_core::{Action, ActionKey, ConnectorError, Outcome, Verdict};
use tracing::{debug, info};

use crate::classify;
use crate::client::{values, Client};
use crate::config::{LdapConfig, LockMethod, PPOLICY_LOCKED};
use crate::discover::{find_user, is_locked, PWD_LOCKED};
use crate::escape::{first_rdn, same_dn};
use crate::plan::{DELETE_ACCOUNT, LOCK_ACCOUNT, REMOVE_GROUP_MEMBER};

/// The services an action needs: the connection, the config and the instance name.
pub struct Ctx<'a> {
    pub client: &'a Client,
    pub cfg: &'a LdapConfig,
    pub instance: &'a str,
}

fn unknown(action: &Action) -> ConnectorError {
    ConnectorError::permanent(
        "unknown_action",
        format!(
            "expected one of {LOCK_ACCOUNT}, {REMOVE_GROUP_MEMBER}, {DELETE_ACCOUNT}, found {:?}",
            action.kind.0
        ),
    )
}

pub async fn apply(
    ctx: &Ctx<'_>,
    action: &Action,
    key: &ActionKey,
) -> Result<Outcome, ConnectorError> {
    // LDAP has no idempotency header; the key is for correlating logs with the store's ledger.
    debug!(connector = %ctx.instance, action_id = %action.id, key = %key, kind = %action.kind, dn = %action.target, "applying ldap action");
    let outcome = match action.kind.0.as_str() {
        LOCK_ACCOUNT => lock(ctx, action).await?,
        REMOVE_GROUP_MEMBER => remove_member(ctx, action).await?,
        DELETE_ACCOUNT => delete(ctx, action).await?,
        _ => return Err(unknown(action)),
    };
    info!(connector = %ctx.instance, action_id = %action.id, kind = %action.kind, dn = %action.target, outcome = outcome.as_str(), "ldap action applied");
    Ok(outcome)
}

pub async fn verify(ctx: &Ctx<'_>, action: &Action) -> Result<Verdict, ConnectorError> {
    let verdict = match action.kind.0.as_str() {
        LOCK_ACCOUNT => match find_user(ctx.client, ctx.cfg, action.param("username")?).await? {
            None => Verdict::Confirmed,
            Some(e) if is_locked(ctx.cfg, &e) => Verdict::Confirmed,
            Some(e) => Verdict::NotConfirmed {
                detail: format!("{} is not locked ({})", e.dn, ctx.cfg.lock_method),
            },
        },
        REMOVE_GROUP_MEMBER => {
            let present = listed_values(ctx, action).await?;
            match present.first() {
                None => Verdict::Confirmed,
                Some((attr, value)) => Verdict::NotConfirmed {
                    detail: format!("{} still has {attr}: {value}", action.target),
                },
            }
        }
        DELETE_ACCOUNT => match find_user(ctx.client, ctx.cfg, action.param("username")?).await? {
            None => Verdict::Confirmed,
            Some(e) => Verdict::NotConfirmed {
                detail: format!("{} still exists", e.dn),
            },
        },
        _ => return Err(unknown(action)),
    };
    debug!(connector = %ctx.instance, action_id = %action.id, dn = %action.target, verdict = %verdict, "ldap action verified");
    Ok(verdict)
}

async fn lock(ctx: &Ctx<'_>, action: &Action) -> Result<Outcome, ConnectorError> {
    let Some(entry) = find_user(ctx.client, ctx.cfg, action.param("username")?).await? else {
        return Ok(Outcome::AlreadyDone);
    };
    if is_locked(ctx.cfg, &entry) {
        return Ok(Outcome::AlreadyDone);
    }
    let dn = entry.dn.as_str();
    let (op, res) = match ctx.cfg.lock_method {
        LockMethod::Ppolicy => (
            "lock",
            ctx.client
                .modify(
                    dn,
                    vec![Mod::Replace(
                        PWD_LOCKED.to_string(),
                        values(&[PPOLICY_LOCKED]),
                    )],
                )
                .await?,
        ),
        LockMethod::Attribute => {
            let attr = ctx.cfg.lock_attribute.clone().unwrap_or_default();
            let value = ctx.cfg.lock_value.as_deref().unwrap_or_default();
            (
                "lock",
                ctx.client
                    .modify(dn, vec![Mod::Replace(attr, values(&[value]))])
                    .await?,
            )
        }
        LockMethod::Move => {
            let disabled = ctx.cfg.disabled_base_dn.as_deref().unwrap_or_default();
            let rdn = first_rdn(dn).ok_or_else(|| {
                ConnectorError::permanent(
                    "bad_dn",
                    format!("expected a DN with an RDN, found {dn:?}"),
                )
            })?;
            ("move", ctx.client.modifydn(dn, rdn, disabled).await?)
        }
    };
    match res.rc {
        0 => Ok(Outcome::Done),
        32 => Ok(Outcome::AlreadyDone),
        _ => Err(classify::result(op, dn, &res)),
    }
}

/// The (attribute, value) pairs of the action's group that still hold the leaver, by compare.
/// `None` for the group itself gone is folded into "nothing listed".
async fn listed_values(
    ctx: &Ctx<'_>,
    action: &Action,
) -> Result<Vec<(String, String)>, ConnectorError> {
    let group = action.target.as_str();
    let attributes: Vec<&str> = action
        .param("attribute")?
        .split(',')
        .map(str::trim)
        .collect();
    let username = action.param("username")?;
    let planned_dn = action.param("user_dn")?;
    let dn_valued = attributes
        .iter()
        .any(|a| !a.eq_ignore_ascii_case("memberUid"));

    // refint rewrites member values when an entry is moved: ask for the DN the entry has now.
    let mut dns = vec![planned_dn.to_string()];
    if dn_valued && ctx.cfg.lock_method == LockMethod::Move {
        if let Some(e) = find_user(ctx.client, ctx.cfg, username).await? {
            if !same_dn(&e.dn, planned_dn) {
                dns.insert(0, e.dn);
            }
        }
    }

    let mut present = Vec::new();
    for attr in attributes {
        let candidates: Vec<&str> = if attr.eq_ignore_ascii_case("memberUid") {
            vec![username]
        } else {
            dns.iter().map(String::as_str).collect()
        };
        for value in candidates {
            let res = ctx.client.compare(group, attr, value).await?;
            match res.rc {
                6 => present.push((attr.to_string(), value.to_string())),
                5 | 16 => {}
                32 => return Ok(vec![]),
                _ => return Err(classify::result("compare", group, &res)),
            }
        }
    }
    Ok(present)
}

fn delete_mods(present: &[(String, String)]) -> Vec<Mod<String>> {
    let mut by_attr: BTreeMap<&str, HashSet<String>> = BTreeMap::new();
    for (a, v) in present {
        by_attr.entry(a.as_str()).or_default().insert(v.clone());
    }
    by_attr
        .into_iter()
        .map(|(a, vs)| Mod::Delete(a.to_string(), vs))
        .collect()
}

fn last_member(group: &str) -> ConnectorError {
    ConnectorError::permanent(
        "last_member",
        format!(
            "{group}: the leaver is its only member and the schema requires one; set group_placeholder_dn \
             to put a placeholder in their place, or remove the group by hand"
        ),
    )
}

async fn remove_member(ctx: &Ctx<'_>, action: &Action) -> Result<Outcome, ConnectorError> {
    let group = action.target.as_str();
    // A value someone else removed between our compare and our modify makes the whole modify fail
    // with 16; compare again and remove what is left.
    for _ in 0..3 {
        let present = listed_values(ctx, action).await?;
        if present.is_empty() {
            return Ok(Outcome::AlreadyDone);
        }
        if action.params.get("sole_member").map(String::as_str) == Some("true")
            && would_empty(ctx, group, &present).await?
        {
            return replace_last_member(ctx, group, &present).await;
        }
        let res = ctx.client.modify(group, delete_mods(&present)).await?;
        match res.rc {
            0 => return Ok(Outcome::Done),
            16 => continue,
            32 => return Ok(Outcome::AlreadyDone),
            65 => return replace_last_member(ctx, group, &present).await,
            _ => return Err(classify::result("modify", group, &res)),
        }
    }
    Ok(Outcome::AlreadyDone)
}

/// Whether removing `present` would leave a DN-valued membership attribute (a MUST of
/// groupOfNames and groupOfUniqueNames) without a value: one base-scope read of the group.
async fn would_empty(
    ctx: &Ctx<'_>,
    group: &str,
    present: &[(String, String)],
) -> Result<bool, ConnectorError> {
    let attrs: Vec<&str> = present
        .iter()
        .map(|(a, _)| a.as_str())
        .filter(|a| !a.eq_ignore_ascii_case("memberUid"))
        .collect();
    if attrs.is_empty() {
        return Ok(false);
    }
    let (entries, _) = ctx
        .client
        .search(group, Scope::Base, "(objectClass=*)", &attrs)
        .await?;
    let Some(entry) = entries.first() else {
        return Ok(false);
    };
    Ok(attrs.iter().any(|a| {
        let removing = present
            .iter()
            .filter(|(x, _)| x.eq_ignore_ascii_case(a))
            .count();
        crate::client::attr(entry, a).len() <= removing
    }))
}

/// The leaver is the last value of a MUST attribute: add the placeholder and delete the leaver in
/// one modify, which the server applies atomically.
async fn replace_last_member(
    ctx: &Ctx<'_>,
    group: &str,
    present: &[(String, String)],
) -> Result<Outcome, ConnectorError> {
    let Some(placeholder) = ctx.cfg.group_placeholder_dn.as_deref() else {
        return Err(last_member(group));
    };
    let mut mods: Vec<Mod<String>> = Vec::new();
    let mut seen = HashSet::new();
    for (attr, _) in present
        .iter()
        .filter(|(a, _)| !a.eq_ignore_ascii_case("memberUid"))
    {
        if seen.insert(attr.to_ascii_lowercase()) {
            mods.push(Mod::Add(attr.clone(), values(&[placeholder])));
        }
    }
    mods.extend(delete_mods(present));
    debug!(connector = %ctx.instance, dn = %group, placeholder = %placeholder, "replacing the last member with the placeholder");
    let res = ctx.client.modify(group, mods).await?;
    match res.rc {
        0 => Ok(Outcome::Done),
        16 | 32 => Ok(Outcome::AlreadyDone),
        65 => Err(last_member(group)),
        _ => Err(classify::result("modify", group, &res)),
    }
}

async fn delete(ctx: &Ctx<'_>, action: &Action) -> Result<Outcome, ConnectorError> {
    let Some(entry) = find_user(ctx.client, ctx.cfg, action.param("username")?).await? else {
        return Ok(Outcome::AlreadyDone);
    };
    let res = ctx.client.delete(&entry.dn).await?;
    match res.rc {
        0 => Ok(Outcome::Done),
        32 => Ok(Outcome::AlreadyDone),
        66 => Err(ConnectorError::permanent(
            "has_children",
            format!(
                "delete {}: the entry has entries below it; remove them by hand first",
                entry.dn
            ),
        )),
        _ => Err(classify::result("delete", &entry.dn, &res)),
    }
}
