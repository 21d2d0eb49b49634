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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ldap3::{Mod, Scope, SearchEntry};
use revoke_core::dn::{first_rdn, normalize_dn, same_dn};
use revoke_core::{AccountPin, Action, ActionKey, ConnectorError, Outcome, Verdict};
use tracing::{debug, info};

use crate::classify;
use crate::client::{attr, values, Assertion, Client};
use crate::config::{LdapConfig, LockMethod, PPOLICY_LOCKED};
use crate::discover::{
    emptied, is_locked, member_dn, memberships, parse_list, search_users, user_attrs, usernames,
    MEMBER_ATTRS, PWD_LOCKED,
};
use crate::escape::{any_of, eq, rdn_filter};
use crate::lookup::Lookups;
use crate::pin::{self, Found};
use crate::plan::{DELETE_ACCOUNT, LOCK_ACCOUNT, REMOVE_GROUP_MEMBER};

/// The services an action needs: the connection, the config and the instance name.
pub struct Ctx<'a> {
    pub client: &'a Client,
    pub cfg: &'a LdapConfig,
    pub instance: &'a str,
    /// Pin look-ups shared by the actions in flight.
    pub lookups: &'a Arc<Lookups>,
    /// Cleared when the server refuses a critical assertion control (rc 12): from then on every
    /// write is preceded by its read, as before blind writes.
    pub blind: &'a AtomicBool,
}

/// How many pins one verification search covers.
const VERIFY_CHUNK: usize = 200;

/// How often an action reads and writes again when the directory changed under it (a value
/// removed meanwhile, refint rewriting a member, the entry moved) before it gives up for now.
const ROUNDS: usize = 3;

fn unknown(action: &Action) -> ConnectorError {
    ConnectorError::unknown_action(format!(
        "expected one of {LOCK_ACCOUNT}, {REMOVE_GROUP_MEMBER}, {DELETE_ACCOUNT}, found {:?}",
        action.kind.0
    ))
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
    attempt: u32,
) -> Result<Outcome, ConnectorError> {
    // Only a first attempt writes before it reads: a later one may follow an attempt whose answer
    // was lost (a timeout, a replica killed mid-call), and must send nothing if it took effect.
    let first = attempt <= 1;
    // LDAP has no idempotency header; the key is for correlating logs with the store's ledger.
    debug!(connector = %ctx.instance, action_id = %action.id, key = %key, kind = %action.kind, dn = %action.target, "applying ldap action");
    let outcome = match action.kind.0.as_str() {
        LOCK_ACCOUNT => lock(ctx, action, first).await?,
        REMOVE_GROUP_MEMBER => remove_member(ctx, action, first).await?,
        DELETE_ACCOUNT => delete(ctx, action, first).await?,
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

/// A write sent without reading first, on the planned DN: its critical assertion (the entry
/// there carries the pinned id, and for a lock is not locked yet) is what makes it safe. `None`
/// when the write did not happen for a reason the read-first path sorts out (no such entry,
/// assertion failed, control unsupported).
async fn blind_on_entry(
    ctx: &Ctx<'_>,
    pin: &AccountPin,
    op: &str,
    send: impl std::future::Future<Output = Result<ldap3::result::LdapResult, ConnectorError>>,
) -> Result<Option<Outcome>, ConnectorError> {
    let res = send.await?;
    match res.rc {
        0 => Ok(Some(Outcome::Done)),
        // Gone, moved, changed hands or already locked: the read-first path judges it.
        32 | 122 => {
            debug!(connector = %ctx.instance, dn = %pin.name, rc = res.rc, "blind {op} refused, reading first");
            Ok(None)
        }
        12 => {
            ctx.blind.store(false, Ordering::Relaxed);
            info!(connector = %ctx.instance, "the server does not support the assertion control; every write reads first from now on");
            Ok(None)
        }
        _ => Err(classify::result(op, &pin.name, &res)),
    }
}

/// Whether writes may be sent before reading (not with `move`, whose entry changes DN).
fn blind(ctx: &Ctx<'_>) -> bool {
    ctx.cfg.lock_method != LockMethod::Move && ctx.blind.load(Ordering::Relaxed)
}

/// The lock as one modify of the planned DN, asserting that the entry there is the pinned one
/// and is not locked yet.
async fn lock_blind(ctx: &Ctx<'_>, pin: &AccountPin) -> Result<Option<Outcome>, ConnectorError> {
    let (name, value) = match ctx.cfg.lock_method {
        LockMethod::Ppolicy => (PWD_LOCKED.to_string(), PPOLICY_LOCKED.to_string()),
        LockMethod::Attribute => (
            ctx.cfg.lock_attribute.clone().unwrap_or_default(),
            ctx.cfg.lock_value.clone().unwrap_or_default(),
        ),
        LockMethod::Move => return Ok(None),
    };
    let assertion = Assertion::new(format!(
        "(&{}(!{}))",
        eq(&ctx.cfg.id_attribute, &pin.id),
        eq(&name, &value)
    ))?
    .critical();
    let mods = vec![Mod::Replace(name, values(&[&value]))];
    blind_on_entry(
        ctx,
        pin,
        "lock",
        ctx.client.modify(&pin.name, mods, Some(&assertion)),
    )
    .await
}

async fn lock(ctx: &Ctx<'_>, action: &Action, first: bool) -> Result<Outcome, ConnectorError> {
    let pin = action.pinned()?;
    if first && blind(ctx) {
        if let Some(done) = lock_blind(ctx, pin).await? {
            return Ok(done);
        }
    }
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

async fn delete(ctx: &Ctx<'_>, action: &Action, first: bool) -> Result<Outcome, ConnectorError> {
    let pin = action.pinned()?;
    let assertion = pin::assertion(ctx.cfg, pin)?;
    if first && blind(ctx) {
        let critical = assertion.clone().critical();
        let send = ctx.client.delete(&pin.name, Some(&critical));
        match blind_on_entry(ctx, pin, "delete", send).await {
            Ok(Some(done)) => return Ok(done),
            Ok(None) => {}
            Err(e) if e.code == "ldap_rc_66" => return Err(has_children(&pin.name)),
            Err(e) => return Err(e),
        }
    }
    for _ in 0..ROUNDS {
        let Some(entry) = pin::entry_for_write(ctx.client, ctx.cfg, pin).await? else {
            return Ok(Outcome::AlreadyDone);
        };
        let res = ctx.client.delete(&entry.dn, Some(&assertion)).await?;
        match res.rc {
            0 => return Ok(Outcome::Done),
            32 | 122 => continue,
            66 => return Err(has_children(&entry.dn)),
            _ => return Err(classify::result("delete", &entry.dn, &res)),
        }
    }
    Err(changing(&pin.to_string()))
}

fn has_children(dn: &str) -> ConnectorError {
    ConnectorError::permanent(
        "has_children",
        format!("delete {dn}: the entry has entries below it; remove them by hand first"),
    )
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

/// The exact stored values discovery saw naming the leaver in the group, as (attribute, value);
/// `None` when the params do not say them (a plan from an older version).
fn planned_values(action: &Action) -> Option<Vec<(&'static str, String)>> {
    let known = |a: &str| {
        MEMBER_ATTRS
            .iter()
            .find(|m| m.eq_ignore_ascii_case(a))
            .copied()
    };
    if let Some(list) = action.params.get("values") {
        let mut out = Vec::new();
        for item in parse_list(list) {
            let (a, v) = item.split_once(": ")?;
            out.push((known(a)?, v.to_string()));
        }
        return (!out.is_empty()).then_some(out);
    }
    let a = known(action.params.get("attribute")?)?;
    let v = action.params.get("value")?;
    Some(vec![(a, v.clone())])
}

/// The removal as one modify deleting the values discovery saw, sent after a shared look-up
/// (see `lookup`) showed that they still name the pinned entry alone: it is at the planned DN
/// (so a DN value names it), and no other entry answers to a listed memberUid. `None` when the
/// look-up shows anything else, or the server refuses the modify for a reason the read-first
/// path sorts out (a value already gone, 16; the last member of a groupOfNames, 65).
async fn remove_member_blind(
    ctx: &Ctx<'_>,
    action: &Action,
) -> Result<Option<Outcome>, ConnectorError> {
    let Some(stored) = planned_values(action) else {
        return Ok(None);
    };
    let pin = action.pinned()?;
    if stored
        .iter()
        .any(|(a, v)| *a != "memberUid" && !same_dn(member_dn(v), &pin.name))
    {
        return Ok(None);
    }
    let uids: Vec<String> = stored
        .iter()
        .filter(|(a, _)| *a == "memberUid")
        .map(|(_, v)| v.clone())
        .collect();
    let entries = ctx.lookups.find(&pin.id, &uids).await?;
    let (pinned, others): (Vec<&SearchEntry>, Vec<&SearchEntry>) = entries
        .iter()
        .partition(|e| pin::is_pinned(ctx.cfg, pin, e));
    let at_planned_dn = matches!(pinned.as_slice(), [e] if same_dn(&e.dn, &pin.name));
    if !at_planned_dn || !others.is_empty() {
        debug!(connector = %ctx.instance, dn = %action.target, "the pinned entry moved or a listed uid names another entry; reading first");
        return Ok(None);
    }
    let group_dn = action.target.as_str();
    let mut mods: Vec<Mod<String>> = Vec::new();
    if action.params.get("sole_member").map(String::as_str) == Some("true") {
        // Discovery saw the leaver as the last member: swap in the placeholder in the same
        // modify (one write, as the read-first path sends), or let that path refuse it.
        let Some(placeholder) = ctx.cfg.group_placeholder_dn.as_deref() else {
            return Ok(None);
        };
        for (a, _) in stored.iter().filter(|(a, _)| *a != "memberUid") {
            if !mods
                .iter()
                .any(|m| matches!(m, Mod::Add(x, _) if x.as_str() == *a))
            {
                mods.push(Mod::Add(a.to_string(), values(&[placeholder])));
            }
        }
    }
    mods.extend(delete_mods(&stored));
    let res = ctx.client.modify(group_dn, mods, None).await?;
    match res.rc {
        0 => Ok(Some(Outcome::Done)),
        32 => Ok(Some(Outcome::AlreadyDone)),
        16 | 20 | 65 => {
            debug!(connector = %ctx.instance, dn = %group_dn, rc = res.rc, "blind removal refused, reading first");
            Ok(None)
        }
        _ => Err(classify::result("modify", group_dn, &res)),
    }
}

async fn remove_member(
    ctx: &Ctx<'_>,
    action: &Action,
    first: bool,
) -> Result<Outcome, ConnectorError> {
    let group_dn = action.target.as_str();
    if first && blind(ctx) {
        if let Some(done) = remove_member_blind(ctx, action).await? {
            return Ok(done);
        }
    }
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

/// Where each pinned entry is now (as `pin::resolve` finds it), for many pins at once: one
/// search per user base per [`VERIFY_CHUNK`] pins; for pins under none of them, one root DSE
/// read and one search per naming context. A pin that more than one entry carries is left out
/// (its actions are verified one by one, which reports `ambiguous_id`).
async fn resolve_many(
    ctx: &Ctx<'_>,
    pins: &[&AccountPin],
) -> Result<HashMap<String, Found>, ConnectorError> {
    let cfg = ctx.cfg;
    let mut out: HashMap<String, Found> = HashMap::new();
    let mut missing: Vec<&AccountPin> = Vec::new();
    for chunk in pins.chunks(VERIFY_CHUNK) {
        let filter = any_of(
            chunk
                .iter()
                .map(|p| (cfg.id_attribute.as_str(), p.id.as_str())),
        );
        let entries = search_users(ctx.client, cfg, &filter).await?;
        for p in chunk {
            let mut here = entries.iter().filter(|e| pin::is_pinned(cfg, p, e));
            match (here.next(), here.next()) {
                (Some(e), None) => {
                    out.insert(p.id.clone(), Found::Here(e.clone()));
                }
                (None, _) => missing.push(p),
                (Some(_), Some(_)) => {}
            }
        }
    }
    if missing.is_empty() {
        return Ok(out);
    }
    let (roots, res) = ctx
        .client
        .search("", Scope::Base, "(objectClass=*)", &["namingContexts"])
        .await?;
    let contexts: Vec<String> = if res.rc == 0 {
        roots
            .first()
            .map(|e| attr(e, "namingContexts").to_vec())
            .unwrap_or_default()
    } else {
        vec![]
    };
    let mut elsewhere: HashMap<String, SearchEntry> = HashMap::new();
    for chunk in missing.chunks(VERIFY_CHUNK) {
        let filter = any_of(
            chunk
                .iter()
                .map(|p| (cfg.id_attribute.as_str(), p.id.as_str())),
        );
        for context in &contexts {
            let (entries, res) = ctx
                .client
                .search(context, Scope::Subtree, &filter, &user_attrs(cfg))
                .await?;
            if res.rc != 0 {
                continue;
            }
            for p in chunk {
                if elsewhere.contains_key(&p.id) {
                    continue;
                }
                if let Some(e) = entries.iter().find(|e| pin::is_pinned(cfg, p, e)) {
                    elsewhere.insert(p.id.clone(), e.clone());
                }
            }
        }
    }
    for p in missing {
        let found = match elsewhere.remove(&p.id) {
            Some(e) => Found::Elsewhere(e),
            None => Found::Gone,
        };
        out.insert(p.id.clone(), found);
    }
    Ok(out)
}

/// The target groups of the group actions, read whole (found by their RDN under
/// `group_base_dn`, kept only where the DN is the target), keyed by canonical DN.
async fn groups_of(
    ctx: &Ctx<'_>,
    actions: &[Action],
) -> Result<HashMap<Vec<Vec<(String, String)>>, SearchEntry>, ConnectorError> {
    let mut targets: Vec<&str> = actions
        .iter()
        .filter(|a| a.kind.0 == REMOVE_GROUP_MEMBER)
        .map(|a| a.target.as_str())
        .collect();
    targets.sort_unstable();
    targets.dedup();
    let terms: Vec<String> = targets.iter().filter_map(|t| rdn_filter(t)).collect();
    let wanted_dns: HashSet<Vec<Vec<(String, String)>>> =
        targets.iter().map(|t| normalize_dn(t)).collect();
    let mut out = HashMap::new();
    let mut wanted = vec!["objectClass"];
    wanted.extend(MEMBER_ATTRS);
    for chunk in terms.chunks(VERIFY_CHUNK) {
        let mut unique: Vec<&String> = chunk.iter().collect();
        unique.sort_unstable();
        unique.dedup();
        let filter = match unique.as_slice() {
            [one] => one.to_string(),
            many => format!("(|{})", many.iter().map(|s| s.as_str()).collect::<String>()),
        };
        let (entries, res) = ctx
            .client
            .search(&ctx.cfg.group_base_dn, Scope::Subtree, &filter, &wanted)
            .await?;
        if res.rc != 0 {
            return Err(classify::result("search", &ctx.cfg.group_base_dn, &res));
        }
        for e in entries {
            let key = normalize_dn(&e.dn);
            if wanted_dns.contains(&key) {
                out.insert(key, e);
            }
        }
    }
    Ok(out)
}

/// The verdict from what `verify_many` read, or `None` where only the one-by-one read-back can
/// tell (the entry moved other than by our lock, a group not found, a value still listed).
fn judge(
    ctx: &Ctx<'_>,
    action: &Action,
    pin: &AccountPin,
    found: &Found,
    groups: &HashMap<Vec<Vec<(String, String)>>, SearchEntry>,
) -> Option<Verdict> {
    let cfg = ctx.cfg;
    let now = match found {
        Found::Gone => None,
        Found::Here(e) | Found::Elsewhere(e) => Some(e),
    };
    match action.kind.0.as_str() {
        LOCK_ACCOUNT | DELETE_ACCOUNT => {
            let Some(e) = now else {
                return Some(Verdict::Confirmed);
            };
            if !same_dn(&e.dn, &pin.name) && !pin::moved_by_our_lock(cfg, &pin.name, &e.dn) {
                return None;
            }
            Some(if action.kind.0 == DELETE_ACCOUNT {
                Verdict::NotConfirmed {
                    detail: format!("{} ({} {}) still exists", e.dn, pin.id_kind, pin.id),
                }
            } else if is_locked(cfg, e) {
                Verdict::Confirmed
            } else {
                Verdict::NotConfirmed {
                    detail: format!(
                        "{} ({} {}) is not locked ({})",
                        e.dn, pin.id_kind, pin.id, cfg.lock_method
                    ),
                }
            })
        }
        REMOVE_GROUP_MEMBER => {
            let group = groups.get(&normalize_dn(&action.target))?;
            let mut dns = vec![pin.name.as_str()];
            let mut names = planned_names(action);
            if let Some(e) = now {
                if !same_dn(&e.dn, &pin.name) {
                    dns.push(e.dn.as_str());
                }
                for n in usernames(cfg, e) {
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
            }
            let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let listed = memberships(group, &dns, &name_refs);
            let Some((a, v)) = listed.first() else {
                return Some(Verdict::Confirmed);
            };
            // Values naming the DN the pinned entry has now name it and nobody else; anything
            // else (a uid, a DN it left) needs the one-by-one read of whom it names now.
            let here = now.map(|e| e.dn.as_str());
            listed
                .iter()
                .all(|(a, v)| *a != "memberUid" && here.is_some_and(|d| same_dn(member_dn(v), d)))
                .then(|| Verdict::NotConfirmed {
                    detail: format!("{} still has {a}: {v}", action.target),
                })
        }
        _ => None,
    }
}

/// Reads back many applied actions together: the pins of all of them in one search per user
/// base (per 200 pins), their target groups in one search of `group_base_dn`, every value
/// checked here as `verify` does. Whatever that cannot settle is verified one by one.
pub async fn verify_many(
    ctx: &Ctx<'_>,
    actions: &[Action],
) -> Vec<Result<Verdict, ConnectorError>> {
    let mut pins: Vec<&AccountPin> = Vec::new();
    for a in actions {
        if let Ok(p) = a.pinned() {
            if !pins.iter().any(|q| q.id == p.id) {
                pins.push(p);
            }
        }
    }
    let read = async {
        let found = resolve_many(ctx, &pins).await?;
        let groups = groups_of(ctx, actions).await?;
        Ok::<_, ConnectorError>((found, groups))
    };
    let (found, groups) = match read.await {
        Ok(r) => r,
        Err(e) => return actions.iter().map(|_| Err(e.clone())).collect(),
    };
    let mut out = Vec::with_capacity(actions.len());
    let mut one_by_one = 0usize;
    for a in actions {
        let settled = a.pinned().ok().and_then(|p| {
            let f = found.get(&p.id)?;
            judge(ctx, a, p, f, &groups)
        });
        match settled {
            Some(v) => out.push(Ok(v)),
            None => {
                one_by_one += 1;
                out.push(verify(ctx, a).await);
            }
        }
    }
    debug!(connector = %ctx.instance, actions = actions.len(), pins = pins.len(), one_by_one, "ldap actions verified together");
    out
}
