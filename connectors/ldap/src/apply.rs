//! Apply and verify. Every action is pinned to the entry's immutable id (`id_attribute`,
//! entryUUID by default): it first finds that entry again, wherever it is now, and never acts on
//! whatever else now carries the planned DN or username. Every apply reads before it writes: an
//! effect that already holds sends no modification and is `AlreadyDone`, concluded only from the
//! pinned entry being gone or from values read and checked here.
//!
//! Operations per action (after the connection's one bind; "pin" = 1 search per user base, plus
//! a root DSE read and 1 search per naming context only when the entry is under none of them):
//! - lock_account: pin; 1 base read of the planned DN only when the entry has moved other than
//!   by our own lock; then at most 1 modify (ppolicy, attribute) or 1 modrdn (move), carrying an
//!   assertion that the entry still has the pinned id.
//! - remove_group_member: pin; 1 base read of the group; when the group lists one of the
//!   leaver's usernames in memberUid, 1 search per user base for other entries answering to it;
//!   when it lists the planned DN and the entry has moved, 1 base read of that DN; then at most
//!   1 modify (removing the exact stored values; with the leaver as the last member of a
//!   groupOfNames/groupOfUniqueNames, adding the placeholder in the same modify).
//! - delete_account: pin (and the planned-DN read as for the lock); then at most 1 delete,
//!   carrying the same assertion.

use std::collections::{BTreeMap, HashSet};

use ldap3::{Mod, Scope, SearchEntry};
use revoke_core::dn::{first_rdn, same_dn};
use revoke_core::{Action, ActionKey, ConnectorError, Outcome, Verdict};
use tracing::{debug, info};

use crate::classify;
use crate::client::{attr, values, Client};
use crate::config::{LdapConfig, LockMethod, PPOLICY_LOCKED};
use crate::discover::{
    emptied, is_locked, member_dn, memberships, parse_list, usernames, MEMBER_ATTRS, PWD_LOCKED,
};
use crate::pin::{self, Found};
use crate::plan::{DELETE_ACCOUNT, LOCK_ACCOUNT, REMOVE_GROUP_MEMBER};

/// The services an action needs: the connection, the config and the instance name.
pub struct Ctx<'a> {
    pub client: &'a Client,
    pub cfg: &'a LdapConfig,
    pub instance: &'a str,
}

/// How often an action reads and writes again when the directory changed under it (a value
/// removed meanwhile, refint rewriting a member, the entry moved) before it gives up for now.
const ROUNDS: usize = 3;

fn unknown(action: &Action) -> ConnectorError {
    ConnectorError::permanent(
        "unknown_action",
        format!(
            "expected one of {LOCK_ACCOUNT}, {REMOVE_GROUP_MEMBER}, {DELETE_ACCOUNT}, found {:?}",
            action.kind.0
        ),
    )
}

fn changing(what: &str) -> ConnectorError {
    ConnectorError::retryable(
        "entry_changing",
        format!("{what} changed under every one of {ROUNDS} read-then-write rounds"),
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
        LOCK_ACCOUNT => {
            let pin = action.pinned()?;
            match pin::current(ctx.client, ctx.cfg, pin).await? {
                Found::Gone => Verdict::Confirmed,
                Found::Here(e) | Found::Elsewhere(e) if is_locked(ctx.cfg, &e) => {
                    Verdict::Confirmed
                }
                Found::Here(e) | Found::Elsewhere(e) => Verdict::NotConfirmed {
                    detail: format!(
                        "{} ({} {}) is not locked ({})",
                        e.dn, pin.id_kind, pin.id, ctx.cfg.lock_method
                    ),
                },
            }
        }
        REMOVE_GROUP_MEMBER => match listed(ctx, action).await? {
            None => Verdict::Confirmed,
            Some((_, ours)) => match ours.first() {
                None => Verdict::Confirmed,
                Some((attr, value)) => Verdict::NotConfirmed {
                    detail: format!("{} still has {attr}: {value}", action.target),
                },
            },
        },
        DELETE_ACCOUNT => {
            let pin = action.pinned()?;
            match pin::current(ctx.client, ctx.cfg, pin).await? {
                Found::Gone => Verdict::Confirmed,
                Found::Here(e) | Found::Elsewhere(e) => Verdict::NotConfirmed {
                    detail: format!("{} ({} {}) still exists", e.dn, pin.id_kind, pin.id),
                },
            }
        }
        _ => return Err(unknown(action)),
    };
    debug!(connector = %ctx.instance, action_id = %action.id, dn = %action.target, verdict = %verdict, "ldap action verified");
    Ok(verdict)
}

async fn lock(ctx: &Ctx<'_>, action: &Action) -> Result<Outcome, ConnectorError> {
    let pin = action.pinned()?;
    let assertion = pin::assertion(ctx.cfg, pin)?;
    for _ in 0..ROUNDS {
        let Some(entry) = pin::entry_for_write(ctx.client, ctx.cfg, pin).await? else {
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
                        Some(&assertion),
                    )
                    .await?,
            ),
            LockMethod::Attribute => {
                let attr = ctx.cfg.lock_attribute.clone().unwrap_or_default();
                let value = ctx.cfg.lock_value.as_deref().unwrap_or_default();
                (
                    "lock",
                    ctx.client
                        .modify(
                            dn,
                            vec![Mod::Replace(attr, values(&[value]))],
                            Some(&assertion),
                        )
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
                (
                    "move",
                    ctx.client
                        .modifydn(dn, rdn, disabled, Some(&assertion))
                        .await?,
                )
            }
        };
        match res.rc {
            0 => return Ok(Outcome::Done),
            // Moved, deleted or replaced since we found it: find it again.
            32 | 122 => continue,
            _ => return Err(classify::result(op, dn, &res)),
        }
    }
    Err(changing(&pin.to_string()))
}

async fn delete(ctx: &Ctx<'_>, action: &Action) -> Result<Outcome, ConnectorError> {
    let pin = action.pinned()?;
    let assertion = pin::assertion(ctx.cfg, pin)?;
    for _ in 0..ROUNDS {
        let Some(entry) = pin::entry_for_write(ctx.client, ctx.cfg, pin).await? else {
            return Ok(Outcome::AlreadyDone);
        };
        let res = ctx.client.delete(&entry.dn, Some(&assertion)).await?;
        match res.rc {
            0 => return Ok(Outcome::Done),
            32 | 122 => continue,
            66 => {
                return Err(ConnectorError::permanent(
                    "has_children",
                    format!(
                        "delete {}: the entry has entries below it; remove them by hand first",
                        entry.dn
                    ),
                ))
            }
            _ => return Err(classify::result("delete", &entry.dn, &res)),
        }
    }
    Err(changing(&pin.to_string()))
}

/// The usernames the plan saw on the entry (memberUid groups list them).
fn planned_names(action: &Action) -> Vec<String> {
    match (
        action.params.get("usernames"),
        action.params.get("username"),
    ) {
        (Some(list), _) => parse_list(list),
        (None, Some(one)) => vec![one.clone()],
        (None, None) => vec![],
    }
}

/// The group as read now, and every (attribute, stored value) of it that names the pinned
/// entry: its DN now, the planned DN while no other entry holds it, and every username it has
/// or had. `None` when the group is gone. A listed value that now names another entry (the
/// planned DN given to a new entry, a username another entry also answers to) makes the action
/// `identity_changed`, whatever else is listed.
async fn listed(
    ctx: &Ctx<'_>,
    action: &Action,
) -> Result<Option<(SearchEntry, Vec<(&'static str, String)>)>, ConnectorError> {
    let (client, cfg) = (ctx.client, ctx.cfg);
    let pin = action.pinned()?;
    let group_dn = action.target.as_str();
    let planned_dn = pin.name.as_str();
    let mut names = planned_names(action);
    let now_dn = match pin::resolve(client, cfg, pin).await? {
        // Out of scope or not, a membership of the pinned entry is the leaver's access.
        Found::Here(e) | Found::Elsewhere(e) => {
            for n in usernames(cfg, &e) {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
            Some(e.dn)
        }
        Found::Gone => None,
    };

    let mut wanted = vec!["objectClass"];
    wanted.extend(MEMBER_ATTRS);
    let (entries, res) = client
        .search(group_dn, Scope::Base, "(objectClass=*)", &wanted)
        .await?;
    match res.rc {
        0 => {}
        32 => return Ok(None),
        _ => return Err(classify::result("search", group_dn, &res)),
    }
    let Some(group) = entries.into_iter().next() else {
        return Ok(None);
    };

    let mut dns = vec![planned_dn];
    if let Some(now) = now_dn.as_deref() {
        if !same_dn(now, planned_dn) {
            dns.push(now);
        }
    }
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let candidates = memberships(&group, &dns, &name_refs);

    // Whom the planned DN names now, if it is not where the pinned entry is: read only if listed.
    let planned_is_ours = now_dn.as_deref().is_some_and(|n| same_dn(n, planned_dn));
    let lists_planned = candidates
        .iter()
        .any(|(a, v)| *a != "memberUid" && same_dn(member_dn(v), planned_dn));
    let planned_other = if planned_is_ours || !lists_planned {
        None
    } else {
        pin::other_at(client, cfg, pin, planned_dn).await?
    };
    // Other entries answering to a listed memberUid.
    let listed_names: Vec<&str> = candidates
        .iter()
        .filter(|(a, _)| *a == "memberUid")
        .map(|(_, v)| v.as_str())
        .collect();
    let others = pin::others_named(client, cfg, pin, &listed_names).await?;

    let mut ours = Vec::new();
    let mut contested = Vec::new();
    for (a, v) in candidates {
        let other = if a == "memberUid" {
            others
                .iter()
                .find(|e| attr(e, &cfg.user_attribute).contains(&v))
        } else if same_dn(member_dn(&v), planned_dn) && !planned_is_ours {
            planned_other.as_ref()
        } else {
            None
        };
        match other {
            Some(e) => contested.push(format!(
                "{} (listed in {group_dn} as {a}: {v})",
                pin::describe(cfg, e)
            )),
            None => ours.push((a, v)),
        }
    }
    if !contested.is_empty() {
        return Err(pin.changed(contested.join("; ")));
    }
    Ok(Some((group, ours)))
}

fn delete_mods(present: &[(&'static str, String)]) -> Vec<Mod<String>> {
    let mut by_attr: BTreeMap<&str, HashSet<String>> = BTreeMap::new();
    for (a, v) in present {
        by_attr.entry(a).or_default().insert(v.clone());
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
    let group_dn = action.target.as_str();
    for _ in 0..ROUNDS {
        let Some((group, ours)) = listed(ctx, action).await? else {
            return Ok(Outcome::AlreadyDone);
        };
        if ours.is_empty() {
            return Ok(Outcome::AlreadyDone);
        }
        let mut mods: Vec<Mod<String>> = Vec::new();
        let emptied = emptied(&group, &ours);
        if !emptied.is_empty() {
            // The leaver is the last value of a MUST attribute: add the placeholder and delete
            // the leaver in one modify, which the server applies atomically.
            let Some(placeholder) = ctx.cfg.group_placeholder_dn.as_deref() else {
                return Err(last_member(group_dn));
            };
            for attr in emptied {
                debug!(connector = %ctx.instance, dn = %group_dn, placeholder = %placeholder, attribute = attr, "replacing the last member with the placeholder");
                mods.push(Mod::Add(attr.to_string(), values(&[placeholder])));
            }
        }
        mods.extend(delete_mods(&ours));
        let res = ctx.client.modify(group_dn, mods, None).await?;
        match res.rc {
            0 => return Ok(Outcome::Done),
            // A value removed or added meanwhile (16 noSuchAttribute, 20 the placeholder there
            // already): read the group again and remove what is left.
            16 | 20 => continue,
            32 => return Ok(Outcome::AlreadyDone),
            65 => return Err(last_member(group_dn)),
            _ => return Err(classify::result("modify", group_dn, &res)),
        }
    }
    Err(changing(group_dn))
}
