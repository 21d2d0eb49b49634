//! Pure: the actions that remove what discovery found, in order.

use std::collections::BTreeMap;

use revoke_core::{ActionKind, Discovery, Phase, ProposedAction};

use crate::config::LdapConfig;
use crate::discover::{ACCOUNT, GROUP_MEMBERSHIP};

pub const LOCK_ACCOUNT: &str = "lock_account";
pub const REMOVE_GROUP_MEMBER: &str = "remove_group_member";
pub const DELETE_ACCOUNT: &str = "delete_account";

/// The actions for what `discovery` found, each pinned to the discovered entry's id.
pub fn plan(cfg: &LdapConfig, discovery: &Discovery) -> Vec<ProposedAction> {
    let Some(account) = discovery
        .found
        .then(|| discovery.findings.iter().find(|f| f.kind == ACCOUNT))
        .flatten()
    else {
        return vec![];
    };
    let user_dn = account.target.as_str();
    // The id every action is pinned to: the discovered account of this entry.
    let Some(pinned) = discovery
        .accounts
        .iter()
        .find(|a| a.name == user_dn)
        .or(discovery.accounts.first())
    else {
        return vec![];
    };
    let username = account.attrs.get("username").map(String::as_str);
    let who = username.unwrap_or(user_dn);
    let mut base_params = BTreeMap::from([("user_dn".to_string(), user_dn.to_string())]);
    if let Some(u) = username {
        base_params.insert("username".into(), u.to_string());
    }
    if let Some(all) = account.attrs.get("usernames") {
        base_params.insert("usernames".into(), all.clone());
    }
    let mut out = Vec::new();

    let locked = account.attrs.get("locked").is_some_and(|v| v == "true");
    if !locked {
        let mut params = base_params.clone();
        params.insert("lock_method".into(), cfg.lock_method.to_string());
        out.push(ProposedAction {
            kind: ActionKind::from(LOCK_ACCOUNT),
            target: user_dn.to_string(),
            params,
            phase: Phase::Contain,
            after: vec![],
            summary: format!("lock {user_dn} ({})", cfg.lock_method),
            account: pinned.id.clone(),
            delay: None,
        });
    }
    let after_lock: Vec<(ActionKind, String)> = out
        .iter()
        .map(|a: &ProposedAction| (a.kind.clone(), a.target.clone()))
        .collect();

    if cfg.remove_groups {
        for group in discovery
            .findings
            .iter()
            .filter(|f| f.kind == GROUP_MEMBERSHIP)
        {
            let attribute = group.attrs.get("attribute").cloned().unwrap_or_default();
            let mut params = base_params.clone();
            params.insert("attribute".into(), attribute.clone());
            params.insert(
                "value".into(),
                group.attrs.get("value").cloned().unwrap_or_default(),
            );
            if group.attrs.get("sole_member").map(String::as_str) == Some("true") {
                params.insert("sole_member".into(), "true".into());
            }
            out.push(ProposedAction {
                kind: ActionKind::from(REMOVE_GROUP_MEMBER),
                target: group.target.clone(),
                params,
                phase: Phase::Revoke,
                after: after_lock.clone(),
                summary: format!("remove {who} from {} ({attribute})", group.target),
                account: pinned.id.clone(),
                delay: None,
            });
        }
    }

    if cfg.delete_entry {
        let after = out
            .iter()
            .map(|a| (a.kind.clone(), a.target.clone()))
            .collect();
        out.push(ProposedAction {
            kind: ActionKind::from(DELETE_ACCOUNT),
            target: user_dn.to_string(),
            params: base_params,
            phase: Phase::Delete,
            after,
            summary: format!("delete {user_dn}"),
            account: pinned.id.clone(),
            delay: None,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use revoke_core::{Account, Finding};
    use serde_json::json;

    use super::*;

    fn cfg(delete: bool) -> LdapConfig {
        LdapConfig::from_value(&json!({
            "url": "ldap://h", "bind_dn": "cn=a,dc=org", "bind_password": "x",
            "user_base_dn": "ou=people,dc=org", "group_base_dn": "ou=groups,dc=org",
            "delete_entry": delete,
        }))
        .expect("config")
    }

    fn account() -> Account {
        Account::new("u-1", "entryUUID", "uid=alice,ou=people,dc=org").answers_to(["alice"])
    }

    fn finding(kind: &str, target: &str, attrs: &[(&str, &str)]) -> Finding {
        Finding {
            connector: "dir".into(),
            subject: "alice".into(),
            kind: kind.into(),
            target: target.into(),
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn locked_account_gets_no_lock_and_groups_have_no_dependency() {
        let d = Discovery {
            connector: "dir".into(),
            subject: "alice".into(),
            found: true,
            findings: vec![
                finding(
                    "account",
                    "uid=alice,ou=people,dc=org",
                    &[("locked", "true"), ("username", "alice")],
                ),
                finding(
                    "group_membership",
                    "cn=g,ou=groups,dc=org",
                    &[("attribute", "memberUid"), ("value", "alice")],
                ),
            ],
            accounts: vec![account()],
            notes: Vec::new(),
        };
        let p = plan(&cfg(true), &d);
        let kinds: Vec<&str> = p.iter().map(|a| a.kind.0.as_str()).collect();
        assert_eq!(kinds, ["remove_group_member", "delete_account"]);
        assert!(p[0].after.is_empty());
        assert!(p.iter().all(|a| a.account == "u-1"), "pinned to the id");
        assert_eq!(
            p[0].summary,
            "remove alice from cn=g,ou=groups,dc=org (memberUid)"
        );
        assert_eq!(
            p[1].after,
            vec![(
                ActionKind::from("remove_group_member"),
                "cn=g,ou=groups,dc=org".to_string()
            )]
        );
        assert!(plan(
            &cfg(false),
            &Discovery {
                found: false,
                findings: vec![],
                ..d
            }
        )
        .is_empty());
    }
}
