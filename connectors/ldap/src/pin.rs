//! The entry an action is pinned to, found again at apply and verify time by its immutable id,
//! and the checks that the names the plan used still belong to it.
//!
//! A DN or a username can come to name someone else (an entry moved away and a new hire created
//! at the old DN, a uid given to a new person); an id attribute such as entryUUID never does.

use ldap3::{Scope, SearchEntry};
use revoke_core::dn::{first_rdn, is_under, normalize_dn, same_dn};
use revoke_core::{AccountPin, ConnectorError};
use tracing::debug;

use crate::client::{attr, Assertion, Client};
use crate::config::{LdapConfig, LockMethod};
use crate::discover::{entry_id, search_users, user_attrs};
use crate::escape::{any_of, eq};

/// Where the pinned entry is now.
#[derive(Debug)]
pub enum Found {
    /// Under the configured user bases (possibly at another DN than planned).
    Here(SearchEntry),
    /// In the directory, but outside the bases the connector manages.
    Elsewhere(SearchEntry),
    /// No entry carries the pinned id: the account is gone.
    Gone,
}

/// Another entry that now answers to a name the plan used: (DN, its id or a note that it has
/// none), described for `AccountPin::changed`.
pub fn describe(cfg: &LdapConfig, entry: &SearchEntry) -> String {
    match entry_id(cfg, entry) {
        Ok(id) => format!("{} ({} {id})", entry.dn, cfg.id_attribute),
        Err(_) => format!("{} (no {})", entry.dn, cfg.id_attribute),
    }
}

/// The filter that selects the pinned entry.
fn id_filter(cfg: &LdapConfig, pin: &AccountPin) -> String {
    eq(&cfg.id_attribute, &pin.id)
}

/// The assertion a write on the pinned entry carries: the entry at that DN must still be it.
pub fn assertion(cfg: &LdapConfig, pin: &AccountPin) -> Result<Assertion, ConnectorError> {
    Assertion::new(id_filter(cfg, pin))
}

/// Whether `entry` carries the pinned id (checked here, not left to the server's filter).
pub fn is_pinned(cfg: &LdapConfig, pin: &AccountPin, entry: &SearchEntry) -> bool {
    attr(entry, &cfg.id_attribute)
        .iter()
        .any(|v| v.trim().eq_ignore_ascii_case(pin.id.trim()))
}

/// Finds the pinned entry: one search per user base; where that finds nothing, the root DSE's
/// naming contexts are searched too, so an entry moved out of scope is not taken for gone.
pub async fn resolve(
    client: &Client,
    cfg: &LdapConfig,
    pin: &AccountPin,
) -> Result<Found, ConnectorError> {
    if !pin.id_kind.eq_ignore_ascii_case(&cfg.id_attribute) {
        return Err(ConnectorError::permanent(
            "bad_action",
            format!(
                "{}: expected an action pinned to {} (id_attribute), found one pinned to {} {}; plan again",
                pin.name, cfg.id_attribute, pin.id_kind, pin.id
            ),
        ));
    }
    let filter = id_filter(cfg, pin);
    let mut here: Vec<SearchEntry> = search_users(client, cfg, &filter)
        .await?
        .into_iter()
        .filter(|e| is_pinned(cfg, pin, e))
        .collect();
    if here.len() > 1 {
        let dns: Vec<&str> = here.iter().map(|e| e.dn.as_str()).collect();
        return Err(ConnectorError::permanent(
            "ambiguous_id",
            format!(
                "expected one entry with {} {}, found {}: {}; id_attribute must name one entry",
                cfg.id_attribute,
                pin.id,
                here.len(),
                dns.join("; ")
            ),
        ));
    }
    if let Some(e) = here.pop() {
        return Ok(Found::Here(e));
    }
    for context in naming_contexts(client).await? {
        let (entries, res) = client
            .search(&context, Scope::Subtree, &filter, &user_attrs(cfg))
            .await?;
        if res.rc != 0 {
            debug!(context = %context, rc = res.rc, "naming context not searchable for the pinned entry");
            continue;
        }
        if let Some(e) = entries.into_iter().find(|e| is_pinned(cfg, pin, e)) {
            return Ok(Found::Elsewhere(e));
        }
    }
    Ok(Found::Gone)
}

/// The root DSE's naming contexts; none when the server does not publish them.
async fn naming_contexts(client: &Client) -> Result<Vec<String>, ConnectorError> {
    let (entries, res) = client
        .search("", Scope::Base, "(objectClass=*)", &["namingContexts"])
        .await?;
    if res.rc != 0 {
        return Ok(vec![]);
    }
    Ok(entries
        .first()
        .map(|e| attr(e, "namingContexts").to_vec())
        .unwrap_or_default())
}

/// The entry at `dn` now, if it is not the pinned one (one base read; none there is `None`).
pub async fn other_at(
    client: &Client,
    cfg: &LdapConfig,
    pin: &AccountPin,
    dn: &str,
) -> Result<Option<SearchEntry>, ConnectorError> {
    let (entries, res) = client
        .search(dn, Scope::Base, "(objectClass=*)", &user_attrs(cfg))
        .await?;
    match res.rc {
        0 => Ok(entries.into_iter().find(|e| !is_pinned(cfg, pin, e))),
        32 => Ok(None),
        _ => Err(crate::classify::result("search", dn, &res)),
    }
}

/// Entries other than the pinned one that answer to one of `names` by the user attribute.
pub async fn others_named(
    client: &Client,
    cfg: &LdapConfig,
    pin: &AccountPin,
    names: &[&str],
) -> Result<Vec<SearchEntry>, ConnectorError> {
    if names.is_empty() {
        return Ok(vec![]);
    }
    let filter = any_of(names.iter().map(|n| (cfg.user_attribute.as_str(), *n)));
    Ok(search_users(client, cfg, &filter)
        .await?
        .into_iter()
        .filter(|e| !is_pinned(cfg, pin, e))
        .filter(|e| {
            attr(e, &cfg.user_attribute)
                .iter()
                .any(|v| names.contains(&v.as_str()))
        })
        .collect())
}

/// Whether the pinned entry sits where our own lock-by-move put it: under `disabled_base_dn`
/// with the RDN it was planned with.
pub fn moved_by_our_lock(cfg: &LdapConfig, planned: &str, now: &str) -> bool {
    let Some(disabled) = cfg.disabled_base_dn.as_deref() else {
        return false;
    };
    let rdn = |dn: &str| first_rdn(dn).map(normalize_dn);
    cfg.lock_method == LockMethod::Move
        && is_under(now, disabled)
        && !is_under(planned, disabled)
        && rdn(planned) == rdn(now)
}

/// The pinned entry for an action on the entry itself (lock, delete), as `resolve` finds it.
/// When it has moved (other than by our own lock-by-move) and its planned DN now names another
/// entry, the action is `identity_changed`: the plan's DN is someone else's now.
pub async fn current(
    client: &Client,
    cfg: &LdapConfig,
    pin: &AccountPin,
) -> Result<Found, ConnectorError> {
    let found = resolve(client, cfg, pin).await?;
    let now = match &found {
        Found::Gone => return Ok(found),
        Found::Here(e) | Found::Elsewhere(e) => e,
    };
    if !same_dn(&now.dn, &pin.name) && !moved_by_our_lock(cfg, &pin.name, &now.dn) {
        if let Some(other) = other_at(client, cfg, pin, &pin.name).await? {
            return Err(pin.changed(format!(
                "{}, while the planned entry is now {}",
                describe(cfg, &other),
                now.dn
            )));
        }
    }
    Ok(found)
}

/// The pinned entry to write to, where it is now; `None` when it is gone. One found outside the
/// managed bases is `out_of_scope`.
pub async fn entry_for_write(
    client: &Client,
    cfg: &LdapConfig,
    pin: &AccountPin,
) -> Result<Option<SearchEntry>, ConnectorError> {
    match current(client, cfg, pin).await? {
        Found::Gone => Ok(None),
        Found::Elsewhere(e) => Err(out_of_scope(cfg, pin, &e)),
        Found::Here(e) => Ok(Some(e)),
    }
}

/// The pinned entry now lives outside the bases this connector manages.
pub fn out_of_scope(cfg: &LdapConfig, pin: &AccountPin, entry: &SearchEntry) -> ConnectorError {
    ConnectorError::permanent(
        "out_of_scope",
        format!(
            "{} ({} {}) is now {}, outside user_base_dn{}; nothing was sent (move it back or act on it by hand)",
            pin.name,
            pin.id_kind,
            pin.id,
            entry.dn,
            if cfg.lock_method == LockMethod::Move {
                " and disabled_base_dn"
            } else {
                ""
            }
        ),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn our_own_move_is_recognised_by_base_and_rdn() {
        let cfg = LdapConfig::from_value(&json!({
            "url": "ldap://h", "bind_dn": "cn=a,dc=org", "bind_password": "x",
            "user_base_dn": "ou=people,dc=org", "group_base_dn": "ou=groups,dc=org",
            "lock_method": "move", "disabled_base_dn": "ou=disabled,dc=org",
        }))
        .expect("config");
        let planned = "uid=ivan,ou=sales,ou=people,dc=org";
        assert!(moved_by_our_lock(
            &cfg,
            planned,
            "UID=Ivan,ou=disabled,dc=org"
        ));
        assert!(!moved_by_our_lock(
            &cfg,
            planned,
            "uid=ivan,ou=alumni,ou=people,dc=org"
        ));
        assert!(!moved_by_our_lock(
            &cfg,
            planned,
            "uid=ivan2,ou=disabled,dc=org"
        ));
        let mut ppolicy = cfg.clone();
        ppolicy.lock_method = LockMethod::Ppolicy;
        assert!(!moved_by_our_lock(
            &ppolicy,
            planned,
            "uid=ivan,ou=disabled,dc=org"
        ));
    }
}
