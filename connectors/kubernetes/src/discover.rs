//! Read-only discovery: one scan of the cluster's bindings (and, with `owner_annotation`, its
//! ServiceAccounts), matched for every subject on our side.
//!
//! - `GET /apis/rbac.authorization.k8s.io/v1/clusterrolebindings` and `.../v1/rolebindings` (every
//!   namespace), paged. A binding names the person when one of its subjects is `kind: User`
//!   (API group `rbac.authorization.k8s.io`) whose name is exactly the person's cluster username
//!   (`username_template`; Kubernetes usernames are case-sensitive, so is the match).
//! - A `kind: Group` subject listed in `group_subjects` is reported (a finding and a note): the
//!   cluster does not know who is in a group, so nothing can be removed per user.
//! - `GET /api/v1/serviceaccounts`: a ServiceAccount whose `owner_annotation` equals the person's
//!   username, email or id (case ignored, never a substring) is theirs; its long-lived token
//!   Secrets are listed as metadata only (`GET /api/v1/namespaces/{ns}/secrets` with
//!   `fieldSelector=type=kubernetes.io/service-account-token`), and kept when their
//!   `kubernetes.io/service-account.uid` annotation is the ServiceAccount's uid.
//!
//! The person's account is their username (`id_kind` `username`): Kubernetes has no user
//! objects, so the username is the identity; each binding is pinned by its `uid`.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding, Subject as RbacSubject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use reqwest::Method;
use revoke_core::{Account, ConnectorError, Discovery, Finding, Subject};
use serde_json::Value;

use crate::classify;
use crate::client::{encode, Client, METADATA_LIST};
use crate::config::{KubernetesConfig, ServiceAccountPolicy};

/// The person: their cluster username.
pub const ACCOUNT: &str = "user";
/// A ClusterRoleBinding naming the person.
pub const CLUSTER_BINDING: &str = "cluster_role_binding";
/// A RoleBinding naming the person.
pub const ROLE_BINDING: &str = "role_binding";
/// A binding naming one of `group_subjects` (reported only).
pub const GROUP_BINDING: &str = "group_binding";
/// A ServiceAccount the person owns (`owner_annotation`).
pub const SERVICE_ACCOUNT: &str = "service_account";
/// A long-lived token Secret of an owned ServiceAccount.
pub const TOKEN_SECRET: &str = "token_secret";
/// A binding naming an owned ServiceAccount (`service_account_policy = "delete"`).
pub const SA_BINDING: &str = "service_account_binding";

/// The RBAC API group of `User` and `Group` subjects.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// The type of a long-lived ServiceAccount token Secret.
pub const TOKEN_SECRET_TYPE: &str = "kubernetes.io/service-account-token";
/// The annotation tying a token Secret to its ServiceAccount's uid.
pub const SA_UID_ANNOTATION: &str = "kubernetes.io/service-account.uid";

pub const CLUSTER_BINDINGS: &str = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings";
pub const ROLE_BINDINGS: &str = "/apis/rbac.authorization.k8s.io/v1/rolebindings";
pub const SERVICE_ACCOUNTS: &str = "/api/v1/serviceaccounts";

/// A binding as read, scope and all.
#[derive(Debug, Clone)]
pub struct Binding {
    /// `None` for a ClusterRoleBinding.
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
    pub resource_version: String,
    pub role: String,
    pub subjects: Vec<RbacSubject>,
}

impl Binding {
    /// `clusterrolebinding/<name>` or `rolebinding/<ns>/<name>`.
    pub fn target(&self) -> String {
        match &self.namespace {
            None => format!("clusterrolebinding/{}", self.name),
            Some(ns) => format!("rolebinding/{ns}/{}", self.name),
        }
    }

    /// Whether `s` is the user `username`.
    pub fn is_user(s: &RbacSubject, username: &str) -> bool {
        s.kind == "User"
            && s.name == username
            && s.api_group
                .as_deref()
                .is_none_or(|g| g == RBAC_GROUP || g.is_empty())
    }

    pub fn names_user(&self, username: &str) -> bool {
        self.subjects.iter().any(|s| Self::is_user(s, username))
    }

    /// Every subject is the user (the binding exists for them alone).
    pub fn only_user(&self, username: &str) -> bool {
        !self.subjects.is_empty() && self.subjects.iter().all(|s| Self::is_user(s, username))
    }

    /// Whether `s` is the ServiceAccount `ns`/`name`.
    pub fn is_service_account(s: &RbacSubject, ns: &str, name: &str) -> bool {
        s.kind == "ServiceAccount"
            && s.name == name
            && s.namespace.as_deref() == Some(ns)
            && s.api_group.as_deref().is_none_or(str::is_empty)
    }

    pub fn names_service_account(&self, ns: &str, name: &str) -> bool {
        self.subjects
            .iter()
            .any(|s| Self::is_service_account(s, ns, name))
    }
}

/// The API path of a ServiceAccount.
pub fn service_account_path(namespace: &str, name: &str) -> String {
    format!(
        "/api/v1/namespaces/{}/serviceaccounts/{}",
        encode(namespace),
        encode(name)
    )
}

/// The API path of a binding.
pub fn binding_path(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        None => format!("{CLUSTER_BINDINGS}/{}", encode(name)),
        Some(ns) => format!(
            "/apis/rbac.authorization.k8s.io/v1/namespaces/{}/rolebindings/{}",
            encode(ns),
            encode(name)
        ),
    }
}

/// The API path of a Secret.
pub fn secret_path(namespace: &str, name: &str) -> String {
    format!(
        "/api/v1/namespaces/{}/secrets/{}",
        encode(namespace),
        encode(name)
    )
}

fn meta_of(v: &Value, path: &str) -> Result<ObjectMeta, ConnectorError> {
    let m = v.get("metadata").cloned().unwrap_or(Value::Null);
    serde_json::from_value::<ObjectMeta>(m).map_err(|e| {
        classify::bad_response(
            &Method::GET,
            path,
            &format!("expected object metadata: {e}"),
        )
    })
}

fn required(m: &ObjectMeta, path: &str) -> Result<(String, String, String), ConnectorError> {
    match (&m.name, &m.uid, &m.resource_version) {
        (Some(n), Some(u), Some(rv)) if !n.is_empty() && !u.is_empty() => {
            Ok((n.clone(), u.clone(), rv.clone()))
        }
        _ => Err(classify::bad_response(
            &Method::GET,
            path,
            "expected metadata with name, uid and resourceVersion",
        )),
    }
}

/// A binding out of its JSON (an item of a list, or one GET).
pub fn parse_binding(v: &Value, cluster: bool, path: &str) -> Result<Binding, ConnectorError> {
    let bad = |e: serde_json::Error| {
        classify::bad_response(&Method::GET, path, &format!("expected a binding: {e}"))
    };
    let (meta, role_ref, subjects) = if cluster {
        let b: ClusterRoleBinding = serde_json::from_value(v.clone()).map_err(bad)?;
        (b.metadata, b.role_ref, b.subjects)
    } else {
        let b: RoleBinding = serde_json::from_value(v.clone()).map_err(bad)?;
        (b.metadata, b.role_ref, b.subjects)
    };
    let (name, uid, resource_version) = required(&meta, path)?;
    let namespace = if cluster {
        None
    } else {
        Some(
            meta.namespace
                .clone()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| {
                    classify::bad_response(&Method::GET, path, "expected a RoleBinding's namespace")
                })?,
        )
    };
    Ok(Binding {
        namespace,
        name,
        uid,
        resource_version,
        role: format!("{}/{}", role_ref.kind, role_ref.name),
        subjects: subjects.unwrap_or_default(),
    })
}

/// An owned ServiceAccount and its token Secrets (namespace, name, uid).
#[derive(Debug, Clone)]
pub struct OwnedSa {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub owner: String,
    pub secrets: Vec<(String, String)>,
}

/// What one scan read.
#[derive(Debug, Default)]
pub struct Scan {
    pub bindings: Vec<Binding>,
    /// (namespace, name, uid, owner annotation value)
    pub service_accounts: Vec<(String, String, String, String)>,
}

/// Reads every binding and (with `owner_annotation`) every annotated ServiceAccount.
pub async fn scan(client: &Client, cfg: &KubernetesConfig) -> Result<Scan, ConnectorError> {
    let mut out = Scan::default();
    for (path, cluster) in [(CLUSTER_BINDINGS, true), (ROLE_BINDINGS, false)] {
        for item in client.list(path, "application/json").await? {
            out.bindings.push(parse_binding(&item, cluster, path)?);
        }
    }
    if let Some(ann) = &cfg.owner_annotation {
        for item in client.list(SERVICE_ACCOUNTS, "application/json").await? {
            let sa: ServiceAccount = serde_json::from_value(item).map_err(|e| {
                classify::bad_response(
                    &Method::GET,
                    SERVICE_ACCOUNTS,
                    &format!("expected a ServiceAccount: {e}"),
                )
            })?;
            let Some(owner) = sa
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ann))
                .cloned()
            else {
                continue;
            };
            let (name, uid, _) = required(&sa.metadata, SERVICE_ACCOUNTS)?;
            let ns = sa.metadata.namespace.clone().unwrap_or_default();
            out.service_accounts.push((ns, name, uid, owner));
        }
    }
    out.bindings
        .sort_by_key(|b| (b.namespace.clone(), b.name.clone()));
    out.service_accounts.sort();
    Ok(out)
}

/// The long-lived token Secrets of ServiceAccount `sa_uid` in `ns` (metadata only).
pub async fn token_secrets(
    client: &Client,
    ns: &str,
    sa_uid: &str,
) -> Result<Vec<(String, String)>, ConnectorError> {
    let path = format!(
        "/api/v1/namespaces/{}/secrets?fieldSelector={}",
        encode(ns),
        encode(&format!("type={TOKEN_SECRET_TYPE}"))
    );
    let mut out = Vec::new();
    for item in client.list(&path, METADATA_LIST).await? {
        let m = meta_of(&item, &path)?;
        let (name, uid, _) = required(&m, &path)?;
        let tied = m
            .annotations
            .as_ref()
            .and_then(|a| a.get(SA_UID_ANNOTATION))
            .is_some_and(|u| u == sa_uid);
        if tied {
            out.push((name, uid));
        }
    }
    out.sort();
    Ok(out)
}

/// Whether an owner annotation's value names the subject: equal (case ignored) to one of the
/// subject's identifiers, never a part of one.
fn owned_by(value: &str, who: &BTreeSet<String>) -> bool {
    let v = value.trim().to_lowercase();
    !v.is_empty() && who.contains(&v)
}

/// Discovery for every subject out of one scan; the token Secrets of each owned ServiceAccount
/// are listed once.
pub async fn discover_many(
    client: &Client,
    cfg: &KubernetesConfig,
    instance: &str,
    subjects: &[Subject],
) -> Result<Vec<Discovery>, ConnectorError> {
    let scan = scan(client, cfg).await?;
    let mut secrets: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut out = Vec::with_capacity(subjects.len());
    for subject in subjects {
        let username = cfg.username(instance, subject).map_err(|e| {
            ConnectorError::permanent("no_username", format!("{}: {e}", subject.id))
        })?;
        let who = identifiers(instance, subject, &username);
        let mut owned = Vec::new();
        for (ns, name, uid, owner) in &scan.service_accounts {
            if owned_by(owner, &who) {
                let s = match secrets.get(uid) {
                    Some(s) => s.clone(),
                    None => {
                        let s = token_secrets(client, ns, uid).await?;
                        secrets.insert(uid.clone(), s.clone());
                        s
                    }
                };
                owned.push(OwnedSa {
                    namespace: ns.clone(),
                    name: name.clone(),
                    uid: uid.clone(),
                    owner: owner.clone(),
                    secrets: s,
                });
            }
        }
        out.push(assemble(
            cfg, instance, subject, &username, who, &scan, &owned,
        ));
    }
    Ok(out)
}

/// Every identifier the person answers to here: the username, and the subject's own.
fn identifiers(instance: &str, subject: &Subject, username: &str) -> BTreeSet<String> {
    let mut who = BTreeSet::new();
    for v in [
        Some(username),
        Some(subject.id.as_str()),
        Some(subject.username_for(instance)),
        subject.email.as_deref(),
    ]
    .into_iter()
    .flatten()
    {
        if !v.trim().is_empty() {
            who.insert(v.trim().to_lowercase());
        }
    }
    who
}

fn assemble(
    cfg: &KubernetesConfig,
    instance: &str,
    subject: &Subject,
    username: &str,
    who: BTreeSet<String>,
    scan: &Scan,
    owned: &[OwnedSa],
) -> Discovery {
    let mut d = Discovery::not_found(instance, &subject.id);
    let finding = |kind: &str, target: String, attrs: &[(&str, String)]| Finding {
        connector: instance.to_string(),
        subject: subject.id.clone(),
        kind: kind.to_string(),
        target,
        attrs: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    };
    for b in scan.bindings.iter().filter(|b| b.names_user(username)) {
        let kind = if b.namespace.is_some() {
            ROLE_BINDING
        } else {
            CLUSTER_BINDING
        };
        let others = b
            .subjects
            .iter()
            .filter(|s| !Binding::is_user(s, username))
            .count();
        // Where the leaver stands in `subjects`, and as what JSON: a first attempt removes
        // them with a JSON Patch that tests exactly that, without reading the binding again.
        let at: Vec<(usize, Value)> = b
            .subjects
            .iter()
            .enumerate()
            .filter(|(_, s)| Binding::is_user(s, username))
            .filter_map(|(i, s)| serde_json::to_value(s).ok().map(|v| (i, v)))
            .collect();
        let indices: Vec<String> = at.iter().map(|(i, _)| i.to_string()).collect();
        let subjects = Value::Array(at.into_iter().map(|(_, v)| v).collect());
        d.findings.push(finding(
            kind,
            b.target(),
            &[
                ("namespace", b.namespace.clone().unwrap_or_default()),
                ("name", b.name.clone()),
                ("uid", b.uid.clone()),
                ("role", b.role.clone()),
                ("other_subjects", others.to_string()),
                ("resource_version", b.resource_version.clone()),
                ("subject_indices", indices.join(",")),
                ("subjects", subjects.to_string()),
            ],
        ));
    }
    for sa in owned {
        let target = format!("serviceaccount/{}/{}", sa.namespace, sa.name);
        d.findings.push(finding(
            SERVICE_ACCOUNT,
            target.clone(),
            &[
                ("namespace", sa.namespace.clone()),
                ("name", sa.name.clone()),
                ("uid", sa.uid.clone()),
                ("owner", sa.owner.clone()),
            ],
        ));
        let mut acct = Account::new(&sa.uid, "uid", &target);
        acct.identifiers = [
            format!("{}/{}", sa.namespace, sa.name),
            format!("system:serviceaccount:{}:{}", sa.namespace, sa.name),
        ]
        .into();
        acct.matched_by = format!(
            "annotation {} = {}",
            cfg.owner_annotation.as_deref().unwrap_or_default(),
            sa.owner
        );
        d.accounts.push(acct);
        for (name, uid) in &sa.secrets {
            d.findings.push(finding(
                TOKEN_SECRET,
                format!("secret/{}/{name}", sa.namespace),
                &[
                    ("namespace", sa.namespace.clone()),
                    ("name", name.clone()),
                    ("uid", uid.clone()),
                    ("service_account", sa.name.clone()),
                    ("service_account_uid", sa.uid.clone()),
                ],
            ));
        }
        match cfg.service_account_policy {
            ServiceAccountPolicy::Tokens => d.notes.push(format!(
                "{target} (owned by {username}) keeps working: its bound tokens (TokenRequest, projected volumes) stay valid until they expire, and only its long-lived token Secrets are deleted here; delete or rebind the ServiceAccount to end its access"
            )),
            ServiceAccountPolicy::Reown => d.notes.push(format!(
                "{target} (owned by {username}) is handed to {}: it keeps working, so do its bound tokens (TokenRequest, projected volumes) until they expire; its long-lived token Secrets are deleted",
                cfg.reown_to.as_deref().unwrap_or_default()
            )),
            ServiceAccountPolicy::Delete => {
                d.notes.push(format!(
                    "{target} (owned by {username}) is deleted: every token of it stops working, bound ones too, and so does every workload running as it"
                ));
                for b in scan
                    .bindings
                    .iter()
                    .filter(|b| b.names_service_account(&sa.namespace, &sa.name))
                {
                    let others = b
                        .subjects
                        .iter()
                        .filter(|s| !Binding::is_service_account(s, &sa.namespace, &sa.name))
                        .count();
                    d.findings.push(finding(
                        SA_BINDING,
                        b.target(),
                        &[
                            ("namespace", b.namespace.clone().unwrap_or_default()),
                            ("name", b.name.clone()),
                            ("uid", b.uid.clone()),
                            ("role", b.role.clone()),
                            ("other_subjects", others.to_string()),
                            ("service_account_namespace", sa.namespace.clone()),
                            ("service_account", sa.name.clone()),
                            ("service_account_uid", sa.uid.clone()),
                        ],
                    ));
                }
            }
        }
    }
    // Group bindings are reported to everyone (the cluster cannot tell who is in a group), but
    // make no one found.
    let found = !d.findings.is_empty() || cfg.certificate_users;
    for b in &scan.bindings {
        for s in b
            .subjects
            .iter()
            .filter(|s| s.kind == "Group" && cfg.group_subjects.contains(&s.name))
        {
            d.findings.push(finding(
                GROUP_BINDING,
                b.target(),
                &[
                    ("group", s.name.clone()),
                    ("uid", b.uid.clone()),
                    ("role", b.role.clone()),
                ],
            ));
            d.notes.push(format!(
                "{} grants {} to the group {:?}: the cluster does not know who is in a group, so remove {username} from {:?} where it is decided (the identity provider, or the O of their client certificate)",
                b.target(),
                b.role,
                s.name,
                s.name
            ));
        }
    }
    if found {
        let mut acct = Account::new(username, "username", username);
        acct.identifiers = who;
        acct.matched_by = format!("username_template {} = {username}", cfg.username_template);
        d.accounts.insert(0, acct);
        d.findings.insert(
            0,
            finding(
                ACCOUNT,
                format!("user/{username}"),
                &[
                    ("username", username.to_string()),
                    ("certificate_users", cfg.certificate_users.to_string()),
                ],
            ),
        );
        d.found = true;
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_user_subject_matches_exactly_and_only_as_a_user() {
        let b = parse_binding(
            &json!({"metadata": {"name": "b", "uid": "u1", "resourceVersion": "7"},
                    "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "view"},
                    "subjects": [
                        {"kind": "User", "apiGroup": RBAC_GROUP, "name": "oidc:ivan@example.org"},
                        {"kind": "Group", "apiGroup": RBAC_GROUP, "name": "oidc:ivan@example.org"},
                        {"kind": "ServiceAccount", "name": "ivan", "namespace": "x"}]}),
            true,
            "/p",
        )
        .expect("parses");
        assert!(b.names_user("oidc:ivan@example.org"));
        assert!(
            !b.names_user("oidc:IVAN@example.org"),
            "usernames are case-sensitive"
        );
        assert!(
            !b.names_user("ivan"),
            "a ServiceAccount subject is not the user"
        );
        assert!(!b.names_user("oidc:ivan"), "never a prefix");
        assert!(!b.only_user("oidc:ivan@example.org"));
        assert_eq!(b.target(), "clusterrolebinding/b");
        assert_eq!(b.role, "ClusterRole/view");
    }

    #[test]
    fn a_binding_without_uid_is_a_bad_response() {
        let e = parse_binding(
            &json!({"metadata": {"name": "b"}, "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": "r"}}),
            false,
            "/p",
        )
        .expect_err("no uid");
        assert_eq!(e.code, "bad_response");
    }

    #[test]
    fn paths_encode_every_name() {
        assert_eq!(
            binding_path(Some("a b"), "../x"),
            "/apis/rbac.authorization.k8s.io/v1/namespaces/a%20b/rolebindings/..%2Fx"
        );
        assert_eq!(
            secret_path("ns", "t?x"),
            "/api/v1/namespaces/ns/secrets/t%3Fx"
        );
    }
}
