//! Pure: the actions that remove what discovery found, in order.

use std::collections::BTreeMap;

use revoke_core::{ActionKind, Discovery, Phase, ProposedAction, Subject};

use crate::config::ScimConfig;
use crate::discover::{GROUP_MEMBERSHIP, SCIM_USER};

/// PATCH `active` to false (Contain).
pub const DEACTIVATE_USER: &str = "deactivate_user";
/// PATCH the group with `remove members[value eq "id"]` (Revoke).
pub const REMOVE_GROUP_MEMBER: &str = "remove_group_member";
/// DELETE the user (Delete, after retention and after the others).
pub const DELETE_USER: &str = "delete_user";

pub fn plan(
    cfg: &ScimConfig,
    instance: &str,
    subject: &Subject,
    discovery: &Discovery,
) -> Vec<ProposedAction> {
    let Some(user) = discovery
        .found
        .then(|| discovery.findings.iter().find(|f| f.kind == SCIM_USER))
        .flatten()
    else {
        return vec![];
    };
    let id = user.target.as_str();
    let user_name = user
        .attrs
        .get("userName")
        .filter(|u| !u.is_empty())
        .map(String::as_str)
        .unwrap_or_else(|| subject.username_for(instance));
    let base = BTreeMap::from([
        ("user_id".to_string(), id.to_string()),
        ("userName".to_string(), user_name.to_string()),
    ]);
    let mut out = Vec::new();

    if user.attrs.get("active").map(String::as_str) != Some("false") {
        let mut params = base.clone();
        params.insert("form".into(), cfg.deactivate_form.to_string());
        out.push(ProposedAction {
            kind: ActionKind::from(DEACTIVATE_USER),
            target: id.to_string(),
            params,
            phase: Phase::Contain,
            after: vec![],
            summary: format!("deactivate {user_name} (scim id {id})"),
            account: id.to_string(),
            delay: None,
        });
    }
    let after_deactivate: Vec<(ActionKind, String)> = out
        .iter()
        .map(|a: &ProposedAction| (a.kind.clone(), a.target.clone()))
        .collect();

    if cfg.groups {
        for g in discovery
            .findings
            .iter()
            .filter(|f| f.kind == GROUP_MEMBERSHIP)
        {
            let display = g.attrs.get("display").cloned().unwrap_or_default();
            let mut params = base.clone();
            params.insert("group".into(), display.clone());
            let shown = if display.is_empty() {
                g.target.clone()
            } else {
                format!("{display} ({})", g.target)
            };
            out.push(ProposedAction {
                kind: ActionKind::from(REMOVE_GROUP_MEMBER),
                target: g.target.clone(),
                params,
                phase: Phase::Revoke,
                after: after_deactivate.clone(),
                summary: format!("remove {user_name} from group {shown}"),
                account: id.to_string(),
                delay: None,
            });
        }
    }

    if cfg.delete_users {
        let after = out
            .iter()
            .map(|a| (a.kind.clone(), a.target.clone()))
            .collect();
        out.push(ProposedAction {
            kind: ActionKind::from(DELETE_USER),
            target: id.to_string(),
            params: base,
            phase: Phase::Delete,
            after,
            summary: format!("delete {user_name} (scim id {id})"),
            account: id.to_string(),
            delay: None,
        });
    }
    out
}

/// A departing client's discovery holds several users: each is planned as a leaver is, and
/// each group removal names its member in its target (`<group id>/members/<user id>`, the group
/// in `group_id`), so two of the client's users in one group are two actions.
pub fn plan_client(
    cfg: &ScimConfig,
    instance: &str,
    subject: &Subject,
    discovery: &Discovery,
) -> Vec<ProposedAction> {
    let mut out = Vec::new();
    for user in discovery.findings.iter().filter(|f| f.kind == SCIM_USER) {
        let uid = user.target.as_str();
        let mine = Discovery {
            findings: discovery
                .findings
                .iter()
                .filter(|f| {
                    (f.kind == SCIM_USER && f.target == uid)
                        || (f.kind == GROUP_MEMBERSHIP
                            && f.attrs.get("user_id").map(String::as_str) == Some(uid))
                })
                .cloned()
                .collect(),
            ..discovery.clone()
        };
        let member_target = |gid: &str| format!("{gid}/members/{uid}");
        for mut p in plan(cfg, instance, subject, &mine) {
            if p.kind.0 == REMOVE_GROUP_MEMBER {
                p.params.insert("group_id".into(), p.target.clone());
                p.target = member_target(&p.target);
            }
            for (kind, target) in &mut p.after {
                if kind.0 == REMOVE_GROUP_MEMBER {
                    *target = member_target(target);
                }
            }
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use revoke_core::Finding;
    use serde_json::json;

    use super::*;

    fn cfg(extra: serde_json::Value) -> ScimConfig {
        let mut v = json!({"base_url": "https://x/scim/v2", "token": "t"});
        if let (Some(v), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            v.extend(e.clone());
        }
        ScimConfig::from_value(&v).expect("config")
    }

    fn finding(kind: &str, target: &str, attrs: &[(&str, &str)]) -> Finding {
        Finding {
            connector: "app".into(),
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
    fn inactive_user_gets_no_deactivate_and_delete_comes_last() {
        let d = Discovery {
            connector: "app".into(),
            subject: "alice".into(),
            found: true,
            findings: vec![
                finding(
                    SCIM_USER,
                    "u1",
                    &[("userName", "alice"), ("active", "false")],
                ),
                finding(GROUP_MEMBERSHIP, "g1", &[("display", "eng")]),
            ],
            accounts: vec![revoke_core::Account::new("u1", "SCIM id", "alice")],
            notes: Vec::new(),
        };
        let p = plan(&cfg(json!({})), "app", &Subject::new("alice"), &d);
        let kinds: Vec<&str> = p.iter().map(|a| a.kind.0.as_str()).collect();
        assert_eq!(kinds, [REMOVE_GROUP_MEMBER, DELETE_USER]);
        assert!(p[0].after.is_empty());
        assert_eq!(p[0].summary, "remove alice from group eng (g1)");
        assert_eq!(
            p[1].after,
            vec![(ActionKind::from(REMOVE_GROUP_MEMBER), "g1".to_string())]
        );
        assert!(p.iter().all(|a| a.account == "u1"));

        let p = plan(
            &cfg(json!({"groups": false, "delete_users": false})),
            "app",
            &Subject::new("alice"),
            &d,
        );
        assert!(p.is_empty());
        assert!(plan(
            &cfg(json!({})),
            "app",
            &Subject::new("alice"),
            &Discovery {
                found: false,
                findings: vec![],
                ..d
            }
        )
        .is_empty());
    }
}
