//! Read-only: find the leaver's entry, whether it is locked, and every group that lists them.

use std::collections::BTreeMap;

use ldap3::{Scope, SearchEntry};
use revoke_core::{ConnectorError, Discovery, Finding, Subject};
use tracing::debug;

use crate::client::{attr, Client};
use crate::config::{LdapConfig, LockMethod, PPOLICY_LOCKED};
use crate::escape::{group_filter, is_under, same_dn, user_filter};

pub const ACCOUNT: &str = "account";
pub const GROUP_MEMBERSHIP: &str = "group_membership";

/// The operational attribute the ppolicy overlay locks with.
pub const PWD_LOCKED: &str = "pwdAccountLockedTime";

/// The attributes read from a user entry: enough to tell whether it is locked.
fn user_attrs(cfg: &LdapConfig) -> Vec<&str> {
    let mut attrs = vec![cfg.user_attribute.as_str(), PWD_LOCKED];
    if let Some(a) = cfg.lock_attribute.as_deref() {
        attrs.push(a);
    }
    attrs
}

/// The one entry whose user attribute equals `username`, under every base a user may live in.
pub async fn find_user(
    client: &Client,
    cfg: &LdapConfig,
    username: &str,
) -> Result<Option<SearchEntry>, ConnectorError> {
    find_by(client, cfg, &cfg.user_attribute, username).await
}

/// The subject's entry: by username, else by email, else by employee id (HR events may carry
/// only the latter two). Each lookup must match at most one entry.
async fn find_subject(
    client: &Client,
    cfg: &LdapConfig,
    instance: &str,
    subject: &Subject,
) -> Result<Option<SearchEntry>, ConnectorError> {
    if let Some(e) = find_user(client, cfg, subject.username_for(instance)).await? {
        return Ok(Some(e));
    }
    if let Some(email) = subject.email.as_deref() {
        if let Some(e) = find_by(client, cfg, &cfg.email_attribute, email).await? {
            return Ok(Some(e));
        }
    }
    if let Some(id) = subject.employee_id.as_deref() {
        if let Some(e) = find_by(client, cfg, &cfg.employee_id_attribute, id).await? {
            return Ok(Some(e));
        }
    }
    Ok(None)
}

/// The one user entry whose `attribute` equals `value`.
async fn find_by(
    client: &Client,
    cfg: &LdapConfig,
    attribute: &str,
    value: &str,
) -> Result<Option<SearchEntry>, ConnectorError> {
    let username = value;
    let filter = user_filter(cfg.user_object_class.as_deref(), attribute, value);
    let mut found: Vec<SearchEntry> = Vec::new();
    for base in cfg.user_bases() {
        let (entries, res) = client
            .search(base, Scope::Subtree, &filter, &user_attrs(cfg))
            .await?;
        if res.rc != 0 {
            return Err(crate::classify::result("search", base, &res));
        }
        for e in entries {
            if !found.iter().any(|f| same_dn(&f.dn, &e.dn)) {
                found.push(e);
            }
        }
    }
    if found.len() > 1 {
        let dns: Vec<&str> = found.iter().map(|e| e.dn.as_str()).collect();
        return Err(ConnectorError::permanent(
            "ambiguous_user",
            format!(
                "expected one entry with {}={username:?}, found {}: {}",
                attribute,
                found.len(),
                dns.join("; ")
            ),
        ));
    }
    Ok(found.pop())
}

/// Whether the entry is locked by the configured method.
pub fn is_locked(cfg: &LdapConfig, entry: &SearchEntry) -> bool {
    match cfg.lock_method {
        LockMethod::Ppolicy => attr(entry, PWD_LOCKED).iter().any(|v| v == PPOLICY_LOCKED),
        LockMethod::Attribute => {
            let want = cfg.lock_value.as_deref().unwrap_or_default();
            matches!(attr(entry, cfg.lock_attribute.as_deref().unwrap_or_default()), [v] if v.eq_ignore_ascii_case(want))
        }
        LockMethod::Move => cfg
            .disabled_base_dn
            .as_deref()
            .is_some_and(|d| is_under(&entry.dn, d)),
    }
}

/// A member value equals the DN, ignoring a uniqueMember's optional `#'...'B` uid part.
fn lists_dn(values: &[String], dn: &str) -> bool {
    values.iter().any(|v| {
        let bare = match v.rfind("#'") {
            Some(i) if v.ends_with("'B") => &v[..i],
            _ => v.as_str(),
        };
        same_dn(bare, dn)
    })
}

/// The membership attributes of one group that hold the leaver: (attribute, value, sole value).
pub fn memberships(
    group: &SearchEntry,
    user_dn: &str,
    username: &str,
) -> Vec<(&'static str, String, bool)> {
    let classes: Vec<String> = attr(group, "objectClass")
        .iter()
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let kinds: [(&str, &'static str, &str); 3] = [
        ("groupofnames", "member", user_dn),
        ("groupofuniquenames", "uniqueMember", user_dn),
        ("posixgroup", "memberUid", username),
    ];
    let mut out = Vec::new();
    let mut fallback = None;
    for (class, name, value) in kinds {
        if !classes.iter().any(|c| c == class) {
            continue;
        }
        let values = attr(group, name);
        let listed = if name == "memberUid" {
            values.iter().any(|v| v == value)
        } else {
            lists_dn(values, value)
        };
        if listed {
            out.push((name, value.to_string(), values.len() == 1));
        } else if fallback.is_none() {
            fallback = Some((name, value.to_string(), values.len() == 1));
        }
    }
    // The server matched the group with its own matching rules; trust it over our DN comparison.
    if out.is_empty() {
        out.extend(fallback);
    }
    out
}

pub async fn discover(
    client: &Client,
    cfg: &LdapConfig,
    instance: &str,
    subject: &Subject,
) -> Result<Discovery, ConnectorError> {
    let not_found = Discovery {
        connector: instance.into(),
        subject: subject.id.clone(),
        found: false,
        findings: vec![],
    };
    let Some(user) = find_subject(client, cfg, instance, subject).await? else {
        debug!(connector = %instance, subject = %subject.id, "no ldap entry for the subject");
        return Ok(not_found);
    };
    // The entry's own login name: memberUid groups list it, whatever the subject was found by.
    let username = attr(&user, &cfg.user_attribute)
        .first()
        .cloned()
        .unwrap_or_else(|| subject.username_for(instance).to_string());
    let finding = |kind: &str, target: &str, attrs: BTreeMap<String, String>| Finding {
        connector: instance.into(),
        subject: subject.id.clone(),
        kind: kind.into(),
        target: target.into(),
        attrs,
    };
    let mut findings = vec![finding(
        ACCOUNT,
        &user.dn,
        BTreeMap::from([
            ("locked".to_string(), is_locked(cfg, &user).to_string()),
            ("lock_method".to_string(), cfg.lock_method.to_string()),
            ("username".to_string(), username.clone()),
        ]),
    )];

    let filter = group_filter(&user.dn, &username);
    let wanted = ["objectClass", "member", "uniqueMember", "memberUid"];
    let (groups, res) = client
        .search(&cfg.group_base_dn, Scope::Subtree, &filter, &wanted)
        .await?;
    if res.rc != 0 {
        return Err(crate::classify::result("search", &cfg.group_base_dn, &res));
    }
    for group in &groups {
        let found = memberships(group, &user.dn, &username);
        if found.is_empty() {
            continue;
        }
        let names: Vec<&str> = found.iter().map(|(n, _, _)| *n).collect();
        findings.push(finding(
            GROUP_MEMBERSHIP,
            &group.dn,
            BTreeMap::from([
                ("attribute".to_string(), names.join(",")),
                ("value".to_string(), found[0].1.clone()),
                (
                    "sole_member".to_string(),
                    found.iter().any(|(_, _, sole)| *sole).to_string(),
                ),
            ]),
        ));
    }
    findings.sort();
    debug!(connector = %instance, subject = %subject.id, dn = %user.dn, groups = findings.len() - 1, "ldap discovery");
    Ok(Discovery {
        found: true,
        findings,
        ..not_found
    })
}
