//! Pure: the actions that remove what discovery found, in order.
//!
//! Per org, everything that works without the org membership is cut first (SSO credential
//! authorizations, fine-grained tokens, invitations), then the membership or the outside
//! collaborator status, all in the contain phase; direct repository grants of a member come in
//! the revoke phase, after the membership is gone. An outside collaborator is removed org-wide in
//! one call, which ends every repository grant at once.

use std::collections::BTreeMap;

use revoke_core::{ActionKind, Discovery, Finding, Phase, ProposedAction};

use crate::config::GithubConfig;
use crate::discover::{
    invitation_account, CREDENTIAL_AUTHORIZATION, ORG_INVITATION, ORG_MEMBERSHIP,
    OUTSIDE_COLLABORATOR, PERSONAL_ACCESS_TOKEN, REPOSITORY_COLLABORATOR, REPOSITORY_INVITATION,
    TEAM_MEMBERSHIP,
};

pub const REVOKE_CREDENTIAL_AUTHORIZATION: &str = "revoke_credential_authorization";
pub const REVOKE_PERSONAL_ACCESS_TOKEN: &str = "revoke_personal_access_token";
pub const CANCEL_ORG_INVITATION: &str = "cancel_org_invitation";
pub const CANCEL_REPOSITORY_INVITATION: &str = "cancel_repository_invitation";
pub const REMOVE_TEAM_MEMBER: &str = "remove_team_member";
pub const REMOVE_ORG_MEMBER: &str = "remove_org_member";
pub const REMOVE_OUTSIDE_COLLABORATOR: &str = "remove_outside_collaborator";
pub const REMOVE_REPOSITORY_COLLABORATOR: &str = "remove_repository_collaborator";

fn attr<'a>(f: &'a Finding, k: &str) -> &'a str {
    f.attrs.get(k).map(String::as_str).unwrap_or("")
}

fn params(f: &Finding, keys: &[&str]) -> BTreeMap<String, String> {
    keys.iter()
        .filter_map(|k| f.attrs.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect()
}

/// Whose access a finding is: the user's numeric id (discovery pins every finding of a user
/// with it); empty for an invitation that names no user of ours.
fn user_id(f: &Finding) -> &str {
    attr(f, "user_id")
}

pub fn plan(cfg: &GithubConfig, discovery: &Discovery) -> Vec<ProposedAction> {
    if !discovery.found {
        return vec![];
    }
    let mut out = Vec::new();
    for org in &cfg.orgs {
        // Every finding of a user carries the user's id; one without could not be pinned.
        let of = |kind: &'static str| {
            discovery.findings.iter().filter(move |f| {
                f.kind == kind
                    && attr(f, "org") == org
                    && (kind == ORG_INVITATION || !user_id(f).is_empty())
            })
        };
        let mut first = Vec::new();
        let mut push = |out: &mut Vec<ProposedAction>, a: ProposedAction, early: bool| {
            if early {
                first.push((a.kind.clone(), a.target.clone()));
            }
            out.push(a);
        };

        for f in of(CREDENTIAL_AUTHORIZATION) {
            let login = attr(f, "login");
            let kind = attr(f, "credential_type");
            let what = match attr(f, "hint") {
                "" => kind.to_string(),
                h if h.starts_with("SHA256:") => format!("{kind} {h}"),
                h => format!("{kind} ending {h}"),
            };
            push(
                &mut out,
                ProposedAction {
                    kind: ActionKind::from(REVOKE_CREDENTIAL_AUTHORIZATION),
                    target: f.target.clone(),
                    params: params(f, &["org", "login", "credential_id", "credential_type"]),
                    phase: Phase::Contain,
                    after: vec![],
                    summary: format!("revoke {login}'s SSO authorization of {what} for {org}"),
                    account: user_id(f).to_string(),
                    delay: None,
                },
                true,
            );
        }
        for f in of(PERSONAL_ACCESS_TOKEN) {
            let login = attr(f, "login");
            push(
                &mut out,
                ProposedAction {
                    kind: ActionKind::from(REVOKE_PERSONAL_ACCESS_TOKEN),
                    target: f.target.clone(),
                    params: params(f, &["org", "login", "token_id"]),
                    phase: Phase::Contain,
                    after: vec![],
                    summary: format!(
                        "revoke {login}'s fine-grained token {:?} for {org}",
                        attr(f, "token_name")
                    ),
                    account: user_id(f).to_string(),
                    delay: None,
                },
                true,
            );
        }
        for f in of(REPOSITORY_INVITATION) {
            let login = attr(f, "login");
            push(
                &mut out,
                ProposedAction {
                    kind: ActionKind::from(CANCEL_REPOSITORY_INVITATION),
                    target: f.target.clone(),
                    params: params(f, &["org", "repo", "login", "invitation_id"]),
                    phase: Phase::Contain,
                    after: vec![],
                    summary: format!("cancel {login}'s invitation to {org}/{}", attr(f, "repo")),
                    account: user_id(f).to_string(),
                    delay: None,
                },
                true,
            );
        }
        // An invitation of the user goes with the membership (one DELETE cancels both); one
        // that names no user of ours (sent to an email) has its own call, by its id.
        for f in of(ORG_INVITATION).filter(|f| user_id(f).is_empty()) {
            let email = match attr(f, "email") {
                "" => attr(f, "login"),
                e => e,
            };
            push(
                &mut out,
                ProposedAction {
                    kind: ActionKind::from(CANCEL_ORG_INVITATION),
                    target: f.target.clone(),
                    params: params(f, &["org", "email", "invitation_id"]),
                    phase: Phase::Contain,
                    after: vec![],
                    summary: format!("cancel the invitation of {email} to {org}"),
                    account: invitation_account(attr(f, "invitation_id")),
                    delay: None,
                },
                true,
            );
        }
        if cfg.remove_team_memberships {
            for f in of(TEAM_MEMBERSHIP) {
                let login = attr(f, "login");
                push(
                    &mut out,
                    ProposedAction {
                        kind: ActionKind::from(REMOVE_TEAM_MEMBER),
                        target: f.target.clone(),
                        params: params(f, &["org", "team", "login"]),
                        phase: Phase::Contain,
                        after: vec![],
                        summary: format!("remove {login} from team {}", f.target),
                        account: user_id(f).to_string(),
                        delay: None,
                    },
                    true,
                );
            }
        }

        let member = of(ORG_MEMBERSHIP).next();
        let invited = of(ORG_INVITATION).find(|f| !user_id(f).is_empty());
        let mut membership = None;
        if let Some(f) = member.or(invited) {
            let login = attr(f, "login");
            let what = if member.is_some() {
                format!("{} of", attr(f, "role"))
            } else {
                "pending invitation to".to_string()
            };
            let mut p = BTreeMap::from([
                ("org".to_string(), org.clone()),
                ("login".to_string(), login.to_string()),
            ]);
            if member.is_some() && invited.is_some() {
                p.insert("pending_invitation".into(), "true".into());
            }
            let a = ProposedAction {
                kind: ActionKind::from(REMOVE_ORG_MEMBER),
                target: format!("{org}/members/{login}"),
                params: p,
                phase: Phase::Contain,
                after: first.clone(),
                summary: format!("remove {login} from {org} ({what} the org)"),
                account: user_id(f).to_string(),
                delay: None,
            };
            membership = Some((a.kind.clone(), a.target.clone()));
            out.push(a);
        }
        if let Some(f) = of(OUTSIDE_COLLABORATOR).next() {
            let login = attr(f, "login");
            let repos: Vec<&str> = of(REPOSITORY_COLLABORATOR)
                .map(|g| attr(g, "repo"))
                .collect();
            out.push(ProposedAction {
                kind: ActionKind::from(REMOVE_OUTSIDE_COLLABORATOR),
                target: format!("{org}/outside_collaborators/{login}"),
                params: BTreeMap::from([
                    ("org".to_string(), org.clone()),
                    ("login".to_string(), login.to_string()),
                    ("repositories".to_string(), repos.join(",")),
                ]),
                phase: Phase::Contain,
                after: first.clone(),
                summary: format!(
                    "remove outside collaborator {login} from every repository of {org} ({})",
                    repos.len()
                ),
                account: user_id(f).to_string(),
                delay: None,
            });
        } else {
            for f in of(REPOSITORY_COLLABORATOR) {
                let login = attr(f, "login");
                out.push(ProposedAction {
                    kind: ActionKind::from(REMOVE_REPOSITORY_COLLABORATOR),
                    target: f.target.clone(),
                    params: params(f, &["org", "repo", "login", "permission"]),
                    phase: Phase::Revoke,
                    after: membership.iter().cloned().collect(),
                    summary: format!(
                        "remove {login}'s direct {} access to {}",
                        attr(f, "permission"),
                        f.target
                    ),
                    account: user_id(f).to_string(),
                    delay: None,
                });
            }
        }
    }
    out
}
