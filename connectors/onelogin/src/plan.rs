//! The actions that remove what discovery found; pure and deterministic.
//!
//! Contain: suspend the user (status 2), then end their OneLogin sessions. Revoke: take each role
//! away (OneLogin's batch role call serves every leaver of a role at once, see batch.rs). Delete:
//! delete the user, after everything else.

use std::collections::BTreeMap;

use revoke_core::{ActionKind, Discovery, Phase, ProposedAction};

use crate::config::OneLoginConfig;
use crate::discover::{ACCOUNT, ROLE_MEMBERSHIP};

pub const SUSPEND_USER: &str = "suspend_user";
pub const LOGOUT_USER: &str = "logout_user";
pub const REMOVE_ROLE: &str = "remove_role";
pub const DELETE_USER: &str = "delete_user";

pub fn plan(cfg: &OneLoginConfig, d: &Discovery) -> Vec<ProposedAction> {
    let mut out = Vec::new();
    let Some(account) = d.findings.iter().find(|f| f.kind == ACCOUNT) else {
        return out;
    };
    let attr = |k: &str| account.attrs.get(k).cloned().unwrap_or_default();
    let user_id = attr("user_id");
    let who = {
        let e = attr("email");
        if e.is_empty() {
            attr("username")
        } else {
            e
        }
    };
    let user_target = account.target.clone();
    let params: BTreeMap<String, String> = [("user_id".to_string(), user_id.clone())].into();
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
    let suspend = (ActionKind::from(SUSPEND_USER), user_target.clone());
    out.push(action(
        SUSPEND_USER,
        &user_target,
        params.clone(),
        Phase::Contain,
        vec![],
        format!("suspend OneLogin user {who} (id {user_id})"),
    ));
    out.push(action(
        LOGOUT_USER,
        &user_target,
        params.clone(),
        Phase::Contain,
        vec![suspend.clone()],
        format!("end the OneLogin sessions of {who}"),
    ));
    let mut before_delete = vec![(ActionKind::from(LOGOUT_USER), user_target.clone())];
    if cfg.remove_roles {
        for f in d.findings.iter().filter(|f| f.kind == ROLE_MEMBERSHIP) {
            let role_id = f.attrs.get("role_id").cloned().unwrap_or_default();
            let role_name = f.attrs.get("role_name").cloned().unwrap_or_default();
            let p: BTreeMap<String, String> = [
                ("user_id".to_string(), user_id.clone()),
                ("role_id".to_string(), role_id),
                ("role_name".to_string(), role_name.clone()),
            ]
            .into();
            out.push(action(
                REMOVE_ROLE,
                &f.target,
                p,
                Phase::Revoke,
                vec![suspend.clone()],
                format!("remove {who} from OneLogin role {role_name:?}"),
            ));
            before_delete.push((ActionKind::from(REMOVE_ROLE), f.target.clone()));
        }
    }
    if cfg.delete_users {
        out.push(action(
            DELETE_USER,
            &user_target,
            params,
            Phase::Delete,
            before_delete,
            format!("delete OneLogin user {who} (id {user_id})"),
        ));
    }
    out
}
