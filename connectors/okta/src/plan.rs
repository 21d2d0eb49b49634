//! The actions that remove what discovery found; pure and deterministic.
//!
//! Contain: suspend or deactivate the user (per `contain`), then end their sessions and revoke
//! their OAuth tokens. Revoke: each OKTA_GROUP membership, each direct app assignment, each admin
//! role assigned to the user. Delete: the user, after retention and everything else.
//!
//! An APP_GROUP membership (a group imported from a directory or an app: Okta cannot change its
//! members) is proposed as a removal that apply answers `Skipped` without a call, so the audit
//! trail shows it and why, followed by a manual step for a person (`Phase::Manual`, kind
//! `remove_in_source`): remove the leaver from the group where it comes from. Group-derived app
//! assignments and roles are plan notes (see discover.rs): they go with the group.

use std::collections::BTreeMap;

use revoke_core::{ActionKind, Discovery, Phase, ProposedAction};

use crate::config::{Contain, OktaConfig};
use crate::discover::{
    ACCOUNT, ADMIN_ROLE, APP_ASSIGNMENT, APP_GROUP_MEMBERSHIP, FACTORS, GRANTS, GROUP_MEMBERSHIP,
};

pub const SUSPEND_USER: &str = "suspend_user";
pub const DEACTIVATE_USER: &str = "deactivate_user";
pub const CLEAR_SESSIONS: &str = "clear_sessions";
pub const RESET_FACTORS: &str = "reset_factors";
pub const REVOKE_GRANTS: &str = "revoke_grants";
pub const REMOVE_GROUP: &str = "remove_group_membership";
pub const REMOVE_APP: &str = "remove_app_assignment";
pub const REMOVE_ADMIN_ROLE: &str = "remove_admin_role";
pub const DELETE_USER: &str = "delete_user";
/// A person's step: remove the membership of an APP_GROUP where the group comes from.
pub const REMOVE_IN_SOURCE: &str = "remove_in_source";
/// `group_type` of a planned removal that apply skips (Okta cannot change the group).
pub const APP_GROUP: &str = "APP_GROUP";

pub fn plan(cfg: &OktaConfig, d: &Discovery) -> Vec<ProposedAction> {
    let mut out = Vec::new();
    let Some(account) = d.findings.iter().find(|f| f.kind == ACCOUNT) else {
        return out;
    };
    let attr = |k: &str| account.attrs.get(k).cloned().unwrap_or_default();
    let user_id = attr("user_id");
    let who = attr("login");
    let user_target = account.target.clone();
    let base: BTreeMap<String, String> = [("user_id".to_string(), user_id.clone())].into();
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
    let (contain_kind, contain_summary) = match cfg.contain {
        Contain::Suspend => (
            SUSPEND_USER,
            format!("suspend Okta user {who} (id {user_id}); reversible"),
        ),
        Contain::Deactivate => (
            DEACTIVATE_USER,
            format!(
                "deactivate Okta user {who} (id {user_id}): deprovisions every app assigned to them and cannot be undone"
            ),
        ),
    };
    let contain = (ActionKind::from(contain_kind), user_target.clone());
    out.push(action(
        contain_kind,
        &user_target,
        base.clone(),
        Phase::Contain,
        vec![],
        contain_summary,
    ));
    out.push(action(
        CLEAR_SESSIONS,
        &user_target,
        base.clone(),
        Phase::Contain,
        vec![contain.clone()],
        format!("end the Okta sessions of {who} and revoke their OAuth tokens"),
    ));
    let mut before_delete = vec![(ActionKind::from(CLEAR_SESSIONS), user_target.clone())];
    for f in &d.findings {
        let a = |k: &str| f.attrs.get(k).cloned().unwrap_or_default();
        let (kind, summary) = match f.kind.as_str() {
            FACTORS if cfg.reset_factors => (
                RESET_FACTORS,
                format!(
                    "reset the {} Okta factors of {who} ({})",
                    a("count"),
                    a("factor_types")
                ),
            ),
            GRANTS if cfg.revoke_grants => (
                REVOKE_GRANTS,
                format!("revoke the {} OAuth grants {who} gave in Okta", a("count")),
            ),
            _ => continue,
        };
        out.push(action(
            kind,
            &f.target,
            base.clone(),
            Phase::Contain,
            vec![contain.clone()],
            summary,
        ));
        before_delete.push((ActionKind::from(kind), f.target.clone()));
    }
    for f in &d.findings {
        let a = |k: &str| f.attrs.get(k).cloned().unwrap_or_default();
        let (kind, params, summary) = match f.kind.as_str() {
            GROUP_MEMBERSHIP if cfg.remove_groups => (
                REMOVE_GROUP,
                [("group_id", a("group_id")), ("group_name", a("group_name"))],
                format!("remove {who} from Okta group {:?}", a("group_name")),
            ),
            APP_ASSIGNMENT if cfg.remove_apps => (
                REMOVE_APP,
                [("app_id", a("app_id")), ("app_label", a("app_label"))],
                format!("unassign {who} from Okta app {:?}", a("app_label")),
            ),
            ADMIN_ROLE if cfg.remove_admin_roles => (
                REMOVE_ADMIN_ROLE,
                [("role_id", a("role_id")), ("role_type", a("role_type"))],
                format!("take Okta admin role {} from {who}", a("role_type")),
            ),
            _ => continue,
        };
        let mut p = base.clone();
        p.extend(params.into_iter().map(|(k, v)| (k.to_string(), v)));
        out.push(action(kind, &f.target, p, Phase::Revoke, vec![], summary));
        before_delete.push((ActionKind::from(kind), f.target.clone()));
    }
    for f in d.findings.iter().filter(|f| f.kind == APP_GROUP_MEMBERSHIP) {
        if !cfg.remove_groups {
            continue;
        }
        let a = |k: &str| f.attrs.get(k).cloned().unwrap_or_default();
        let (gid, name, source) = (a("group_id"), a("group_name"), a("source"));
        let mut p = base.clone();
        p.insert("group_id".into(), gid.clone());
        p.insert("group_name".into(), name.clone());
        p.insert("group_type".into(), APP_GROUP.into());
        out.push(action(
            REMOVE_GROUP,
            &f.target,
            p.clone(),
            Phase::Revoke,
            vec![],
            format!(
                "remove {who} from Okta group {name:?}: skipped, an APP_GROUP from {source} that Okta cannot change"
            ),
        ));
        before_delete.push((ActionKind::from(REMOVE_GROUP), f.target.clone()));
        p.insert("source".into(), source.clone());
        p.insert(
            "instructions".into(),
            format!(
                "In {source}, remove {who} from the group {name:?} (Okta group {gid}, type APP_GROUP, imported from there). Okta's API cannot change this group's members, and Okta shows the membership until the next import from {source} after the removal."
            ),
        );
        out.push(action(
            REMOVE_IN_SOURCE,
            &f.target,
            p,
            Phase::Manual,
            vec![(ActionKind::from(REMOVE_GROUP), f.target.clone())],
            format!(
                "remove {who} from group {name:?} in {source} (Okta cannot change this APP_GROUP)"
            ),
        ));
    }
    if cfg.delete_users {
        let mut del = action(
            DELETE_USER,
            &user_target,
            base,
            Phase::Delete,
            before_delete,
            format!("delete Okta user {who} (id {user_id}; deactivated first when it is not)"),
        );
        del.delay = cfg.retention();
        out.push(del);
    }
    out
}
