//! The actions that remove what discovery found; pure and deterministic. Every one is in the
//! contain phase: in Kubernetes taking the bindings away is what cuts access, there is no user
//! to disable first.
//!
//! - A binding whose every subject is the leaver: `delete_binding` (apply deletes it with
//!   `preconditions` on the uid the plan pinned and the resourceVersion discovery read, or on a
//!   later attempt the one it has just read).
//! - A binding shared with others: `remove_subject` (a first attempt sends a JSON Patch that
//!   tests the uid and the leaver at the indices discovery saw, then removes them; a later
//!   attempt reads the binding and PUTs it back without the leaver on the resourceVersion read).
//!   The plan carries `resource_version`, `subject_indices` and `subjects` (the leaver's subjects
//!   as read) for the first attempt.
//! - Each long-lived token Secret of a ServiceAccount the leaver owns: `delete_token_secret`
//!   (`service_account_policy` `tokens` and `reown`).
//! - `service_account_policy = "delete"`: each owned ServiceAccount `delete_service_account`
//!   (uid and resourceVersion preconditions; the token controller deletes its token Secrets),
//!   then, after it, `unbind_service_account` for each binding that names it (RBAC binds by
//!   name: left in place, the binding would grant its role to a ServiceAccount created later
//!   under that name).
//! - `service_account_policy = "reown"`: each owned ServiceAccount `reown_service_account` (its
//!   owner annotation set to `reown_to`, on the resourceVersion read).
//! - With `certificate_users`: a person's step (`Phase::Manual`, `rotate_cluster_ca`) after the
//!   binding removals: Kubernetes cannot revoke a client certificate, so the plan never claims
//!   one was revoked.

use std::collections::BTreeMap;

use revoke_core::{ActionKind, Discovery, Phase, ProposedAction};

use crate::config::{KubernetesConfig, ServiceAccountPolicy};
use crate::discover::{
    ACCOUNT, CLUSTER_BINDING, ROLE_BINDING, SA_BINDING, SERVICE_ACCOUNT, TOKEN_SECRET,
};

pub const DELETE_BINDING: &str = "delete_binding";
pub const REMOVE_SUBJECT: &str = "remove_subject";
pub const DELETE_TOKEN_SECRET: &str = "delete_token_secret";
pub const DELETE_SERVICE_ACCOUNT: &str = "delete_service_account";
pub const UNBIND_SERVICE_ACCOUNT: &str = "unbind_service_account";
pub const REOWN_SERVICE_ACCOUNT: &str = "reown_service_account";
/// A person's step: the cluster CA (or the certificates' lifetime), since no certificate can be
/// revoked.
pub const ROTATE_CA: &str = "rotate_cluster_ca";

pub fn plan(cfg: &KubernetesConfig, d: &Discovery) -> Vec<ProposedAction> {
    let mut out = Vec::new();
    let Some(account) = d.findings.iter().find(|f| f.kind == ACCOUNT) else {
        return out;
    };
    let username = account.attrs.get("username").cloned().unwrap_or_default();
    let attr = |f: &revoke_core::Finding, k: &str| f.attrs.get(k).cloned().unwrap_or_default();
    let mut removals = Vec::new();
    for f in d
        .findings
        .iter()
        .filter(|f| f.kind == CLUSTER_BINDING || f.kind == ROLE_BINDING)
    {
        let sole = attr(f, "other_subjects") == "0";
        let kind = if sole { DELETE_BINDING } else { REMOVE_SUBJECT };
        let scope = if f.kind == CLUSTER_BINDING {
            "cluster"
        } else {
            "namespace"
        };
        let params: BTreeMap<String, String> = [
            ("username", username.clone()),
            ("scope", scope.to_string()),
            ("namespace", attr(f, "namespace")),
            ("name", attr(f, "name")),
            ("uid", attr(f, "uid")),
            ("resource_version", attr(f, "resource_version")),
            ("subject_indices", attr(f, "subject_indices")),
            ("subjects", attr(f, "subjects")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let summary = if sole {
            format!(
                "delete {} (grants {} to {username} alone)",
                f.target,
                attr(f, "role")
            )
        } else {
            format!(
                "remove {username} from {} (grants {}; {} other subjects stay)",
                f.target,
                attr(f, "role"),
                attr(f, "other_subjects")
            )
        };
        removals.push((ActionKind::from(kind), f.target.clone()));
        out.push(ProposedAction {
            kind: ActionKind::from(kind),
            target: f.target.clone(),
            params,
            phase: Phase::Contain,
            after: vec![],
            summary,
            account: username.clone(),
            delay: None,
        });
    }
    let policy = cfg.service_account_policy;
    let params = |pairs: &[(&str, String)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    };
    for f in d.findings.iter().filter(|f| f.kind == SERVICE_ACCOUNT) {
        let mut p = params(&[
            ("namespace", attr(f, "namespace")),
            ("name", attr(f, "name")),
            ("uid", attr(f, "uid")),
            ("owner", attr(f, "owner")),
        ]);
        if policy == ServiceAccountPolicy::Reown {
            p.insert(
                "reown_to".to_string(),
                cfg.reown_to.clone().unwrap_or_default(),
            );
        }
        let (kind, summary) = match policy {
            ServiceAccountPolicy::Tokens => continue,
            ServiceAccountPolicy::Delete => (
                DELETE_SERVICE_ACCOUNT,
                format!(
                    "delete {} (owned by {username}): its tokens, bound ones too, stop working",
                    f.target
                ),
            ),
            ServiceAccountPolicy::Reown => (
                REOWN_SERVICE_ACCOUNT,
                format!(
                    "hand {} (owned by {username}) to {}",
                    f.target,
                    cfg.reown_to.as_deref().unwrap_or_default()
                ),
            ),
        };
        out.push(ProposedAction {
            kind: ActionKind::from(kind),
            target: f.target.clone(),
            params: p,
            phase: Phase::Contain,
            after: vec![],
            summary,
            account: attr(f, "uid"),
            delay: None,
        });
    }
    for f in d.findings.iter().filter(|f| f.kind == SA_BINDING) {
        if policy != ServiceAccountPolicy::Delete {
            continue;
        }
        let (sa_ns, sa) = (
            attr(f, "service_account_namespace"),
            attr(f, "service_account"),
        );
        let scope = if attr(f, "namespace").is_empty() {
            "cluster"
        } else {
            "namespace"
        };
        out.push(ProposedAction {
            kind: ActionKind::from(UNBIND_SERVICE_ACCOUNT),
            target: f.target.clone(),
            params: params(&[
                ("scope", scope.to_string()),
                ("namespace", attr(f, "namespace")),
                ("name", attr(f, "name")),
                ("uid", attr(f, "uid")),
                ("service_account_namespace", sa_ns.clone()),
                ("service_account", sa.clone()),
                ("service_account_uid", attr(f, "service_account_uid")),
            ]),
            phase: Phase::Contain,
            after: vec![(
                ActionKind::from(DELETE_SERVICE_ACCOUNT),
                format!("serviceaccount/{sa_ns}/{sa}"),
            )],
            summary: if attr(f, "other_subjects") == "0" {
                format!(
                    "delete {} (grants {} to ServiceAccount {sa_ns}/{sa} alone) once the ServiceAccount is gone",
                    f.target,
                    attr(f, "role")
                )
            } else {
                format!(
                    "remove ServiceAccount {sa_ns}/{sa} from {} (grants {}) once it is gone",
                    f.target,
                    attr(f, "role")
                )
            },
            account: attr(f, "service_account_uid"),
            delay: None,
        });
    }
    for f in d.findings.iter().filter(|f| f.kind == TOKEN_SECRET) {
        if policy == ServiceAccountPolicy::Delete {
            // The token controller deletes them with their ServiceAccount.
            continue;
        }
        let params: BTreeMap<String, String> = [
            ("namespace", attr(f, "namespace")),
            ("name", attr(f, "name")),
            ("uid", attr(f, "uid")),
            ("service_account", attr(f, "service_account")),
            ("service_account_uid", attr(f, "service_account_uid")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        out.push(ProposedAction {
            kind: ActionKind::from(DELETE_TOKEN_SECRET),
            target: f.target.clone(),
            params,
            phase: Phase::Contain,
            after: vec![],
            summary: format!(
                "delete the long-lived token Secret {} of ServiceAccount {}/{} (owned by {username})",
                f.target,
                attr(f, "namespace"),
                attr(f, "service_account")
            ),
            account: attr(f, "service_account_uid"),
            delay: None,
        });
    }
    if cfg.certificate_users {
        let instructions = format!(
            "Kubernetes cannot revoke a client certificate: the API server checks no revocation list, so a certificate issued to {username} stays valid until it expires, whatever revoked removes. Its bindings are removed by this plan, but a certificate whose O names a group (above all system:masters, which RBAC cannot restrict) keeps that group's access. Either rotate the cluster CA (issue a new CA, move every component and kubeconfig to it, then stop trusting the old one), or, if every certificate the CA issued is short-lived, wait until {username}'s has expired. Going forward, issue client certificates through the CSR API with spec.expirationSeconds (600 at least) or use OIDC."
        );
        out.push(ProposedAction {
            kind: ActionKind::from(ROTATE_CA),
            target: account.target.clone(),
            params: [
                ("username".to_string(), username.clone()),
                ("instructions".to_string(), instructions),
            ]
            .into(),
            phase: Phase::Manual,
            after: removals,
            summary: format!(
                "rotate the cluster CA or shorten certificate lifetimes: Kubernetes cannot revoke {username}'s client certificate"
            ),
            account: username.clone(),
            delay: None,
        });
    }
    out
}
