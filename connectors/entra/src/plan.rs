//! The actions that remove what discovery found; pure and deterministic.
//!
//! For each user found, pinned to its object id: contain = disable the account, then revoke
//! its sign-in sessions (after the disable, so no new session starts between the two); revoke
//! = each group membership, app role assignment, directory role assignment, authentication
//! method (when configured) and licence; delete = the user after retention and everything
//! else, then (when configured) its purge from the deleted items. A membership of a group
//! Graph cannot change and a licence that comes from a group are planned too: their apply
//! sends nothing and says `skipped` with the reason. The group's removal is then a person's
//! step (a manual-phase proposal after the skipped one: Exchange, Active Directory or the
//! dynamic rule), and so are the disable and delete of a user synced from Active Directory.

use std::collections::BTreeMap;

use revoke_core::{ActionKind, Discovery, Phase, ProposedAction};

use crate::config::EntraConfig;
use crate::discover::{
    kind_words, manual_step, ACCOUNT, APP_ROLE_ASSIGNMENT, AUTH_METHOD, CHANGEABLE_KINDS,
    DIRECTORY_ROLE_ASSIGNMENT, GROUP_MEMBERSHIP, LICENSE,
};

pub const DISABLE_USER: &str = "disable_user";
pub const REVOKE_SESSIONS: &str = "revoke_sessions";
pub const REMOVE_GROUP: &str = "remove_group_membership";
pub const REMOVE_APP_ROLE: &str = "remove_app_role_assignment";
pub const REMOVE_DIRECTORY_ROLE: &str = "remove_directory_role_assignment";
pub const REMOVE_AUTH_METHOD: &str = "remove_auth_method";
pub const REMOVE_LICENSE: &str = "remove_license";
pub const DELETE_USER: &str = "delete_user";
pub const PURGE_USER: &str = "purge_user";

/// A person's steps (manual phase: never sent to the connector, acknowledged by a person).
pub const REMOVE_IN_EXCHANGE: &str = "remove_in_exchange";
pub const REMOVE_IN_ACTIVE_DIRECTORY: &str = "remove_in_active_directory";
pub const CHANGE_DYNAMIC_RULE: &str = "change_dynamic_rule";
pub const DISABLE_IN_ACTIVE_DIRECTORY: &str = "disable_in_active_directory";
pub const DELETE_IN_ACTIVE_DIRECTORY: &str = "delete_in_active_directory";

pub fn plan(cfg: &EntraConfig, d: &Discovery) -> Vec<ProposedAction> {
    let mut out = Vec::new();
    for account in d.findings.iter().filter(|f| f.kind == ACCOUNT) {
        plan_user(cfg, d, account, &mut out);
    }
    out
}

fn plan_user(
    cfg: &EntraConfig,
    d: &Discovery,
    account: &revoke_core::Finding,
    out: &mut Vec<ProposedAction>,
) {
    let attr = |k: &str| account.attrs.get(k).cloned().unwrap_or_default();
    let user_id = attr("user_id");
    let who = attr("upn");
    let synced = attr("on_prem_sync") == "true";
    let user_target = account.target.clone();
    let mut base: BTreeMap<String, String> = [("user_id".to_string(), user_id.clone())].into();
    if synced {
        base.insert("on_prem_sync".into(), "true".into());
    }
    let action = |kind: &str,
                  target: &str,
                  params: BTreeMap<String, String>,
                  phase: Phase,
                  after: Vec<(ActionKind, String)>,
                  summary: String| ProposedAction {
        kind: ActionKind::from(kind),
        target: target.to_string(),
        params,
        phase,
        after,
        summary,
        account: user_id.clone(),
        delay: None,
    };
    let disable = (ActionKind::from(DISABLE_USER), user_target.clone());
    out.push(action(
        DISABLE_USER,
        &user_target,
        base.clone(),
        Phase::Contain,
        vec![],
        if synced {
            format!("disable Entra user {who} (id {user_id}): synced from on-premises AD, so Graph cannot; skipped, disable it in AD")
        } else {
            format!("disable Entra user {who} (id {user_id}); reversible")
        },
    ));
    out.push(action(
        REVOKE_SESSIONS,
        &user_target,
        base.clone(),
        Phase::Contain,
        vec![disable],
        format!("revoke every sign-in session and refresh token of {who}"),
    ));
    if synced {
        out.push(action(
            DISABLE_IN_ACTIVE_DIRECTORY,
            &user_target,
            base.clone(),
            Phase::Manual,
            vec![(ActionKind::from(DISABLE_USER), user_target.clone())],
            format!("disable {who} in on-premises Active Directory: the account is synced from there, so Graph cannot disable it and the next sync would enable it again"),
        ));
    }
    let mut before_delete = vec![(ActionKind::from(REVOKE_SESSIONS), user_target.clone())];
    for f in d
        .findings
        .iter()
        .filter(|f| f.attrs.get("user_id") == Some(&user_id) && f.kind != ACCOUNT)
    {
        let a = |k: &str| f.attrs.get(k).cloned().unwrap_or_default();
        let (kind, params, summary): (&str, Vec<(&str, String)>, String) = match f.kind.as_str() {
            GROUP_MEMBERSHIP if cfg.remove_groups => {
                let kind = a("group_kind");
                let summary = if CHANGEABLE_KINDS.contains(&kind.as_str()) {
                    format!("remove {who} from Entra group {:?}", a("group_name"))
                } else {
                    format!(
                        "remove {who} from Entra group {:?}: {}, which Graph cannot change; skipped, a manual step",
                        a("group_name"),
                        kind_words(&kind)
                    )
                };
                (
                    REMOVE_GROUP,
                    vec![
                        ("group_id", a("group_id")),
                        ("group_name", a("group_name")),
                        ("group_kind", kind),
                    ],
                    summary,
                )
            }
            APP_ROLE_ASSIGNMENT if cfg.remove_app_roles => (
                REMOVE_APP_ROLE,
                vec![
                    ("assignment_id", a("assignment_id")),
                    ("resource_name", a("resource_name")),
                ],
                format!(
                    "remove the app role assignment of {who} to {:?}",
                    a("resource_name")
                ),
            ),
            DIRECTORY_ROLE_ASSIGNMENT if cfg.remove_directory_roles => (
                REMOVE_DIRECTORY_ROLE,
                vec![
                    ("assignment_id", a("assignment_id")),
                    ("role_definition_id", a("role_definition_id")),
                ],
                format!(
                    "take directory role {} (scope {}) from {who}",
                    a("role_definition_id"),
                    a("directory_scope_id")
                ),
            ),
            AUTH_METHOD if cfg.remove_auth_methods => (
                REMOVE_AUTH_METHOD,
                vec![
                    ("method_id", a("method_id")),
                    ("method_type", a("method_type")),
                ],
                format!(
                    "delete the {} authentication method {} of {who}",
                    a("method_type"),
                    a("method_id")
                ),
            ),
            LICENSE if cfg.remove_licenses => {
                let how = a("assigned");
                let summary = if how == "group" {
                    format!(
                        "remove licence {} from {who}: it comes from a group; skipped, it goes with the membership",
                        a("sku_id")
                    )
                } else {
                    format!(
                        "remove the directly assigned licence {} from {who}",
                        a("sku_id")
                    )
                };
                (
                    REMOVE_LICENSE,
                    vec![("sku_id", a("sku_id")), ("assigned", how)],
                    summary,
                )
            }
            _ => continue,
        };
        let mut p = base.clone();
        p.extend(params.into_iter().map(|(k, v)| (k.to_string(), v)));
        out.push(action(kind, &f.target, p, Phase::Revoke, vec![], summary));
        before_delete.push((ActionKind::from(kind), f.target.clone()));
        let group_kind = a("group_kind");
        if kind == REMOVE_GROUP && !CHANGEABLE_KINDS.contains(&group_kind.as_str()) {
            let step = match group_kind.as_str() {
                "on_prem_synced" => REMOVE_IN_ACTIVE_DIRECTORY,
                "dynamic" => CHANGE_DYNAMIC_RULE,
                _ => REMOVE_IN_EXCHANGE,
            };
            let text = manual_step(
                &group_kind,
                &a("group_name"),
                &a("group_id"),
                &who,
                &a("membership_rule"),
            );
            out.push(action(
                step,
                &f.target,
                [
                    ("group_id".to_string(), a("group_id")),
                    ("user_id".to_string(), user_id.clone()),
                ]
                .into(),
                Phase::Manual,
                vec![(ActionKind::from(REMOVE_GROUP), f.target.clone())],
                text,
            ));
        }
    }
    if cfg.delete_users {
        let mut del = action(
            DELETE_USER,
            &user_target,
            base.clone(),
            Phase::Delete,
            before_delete,
            if synced {
                format!("delete Entra user {who} (id {user_id}): synced from on-premises AD, so Graph cannot; skipped, delete it in AD")
            } else {
                format!("delete Entra user {who} (id {user_id}; Entra keeps it 30 days in deleted items)")
            },
        );
        del.delay = cfg.retention();
        out.push(del);
        if synced {
            out.push(action(
                DELETE_IN_ACTIVE_DIRECTORY,
                &user_target,
                base.clone(),
                Phase::Manual,
                vec![(ActionKind::from(DELETE_USER), user_target.clone())],
                format!("delete {who} in on-premises Active Directory (or take it out of the sync scope): Entra deletes the synced user at the next sync; Graph cannot"),
            ));
        }
        if cfg.purge_deleted && !synced {
            out.push(action(
                PURGE_USER,
                &format!("directory/deletedItems/{user_id}"),
                base,
                Phase::Delete,
                vec![(ActionKind::from(DELETE_USER), user_target.clone())],
                format!("delete Entra user {who} (id {user_id}) for good from the deleted items; it cannot be restored"),
            ));
        }
    }
}
