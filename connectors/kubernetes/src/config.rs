//! The `[connectors.<name>]` table of a Kubernetes cluster, and its pure validation.
//!
//! - `api_url`: the API server (`https://k8s.example.org:6443`).
//! - The connector's own credential, one of: `token` (in production `token_file`; the config
//!   layer reads the file once into `token`), `token_path` (a file the connector re-reads every
//!   minute and after a 401, as client-go does: a projected ServiceAccount token rotates hourly),
//!   or `exec_command` (an ExecCredential plugin, `client.authentication.k8s.io/v1`, such as `aws
//!   eks get-token`; its token cached until its `expirationTimestamp`); and/or a client
//!   certificate: `client_certificate` (PEM, usually `client_certificate_file`) with
//!   `client_key_file` (the PEM private key, read when the connector is built).
//! - `qps`, `burst`: the client-side rate budget of the instance, shared by every job (client-go's
//!   defaults: 5 requests a second, bursts of 10); `qps = 0` turns it off.
//! - `ca_file`: the cluster's CA (PEM). When given it is the only root trusted, as kubectl does
//!   with a kubeconfig's `certificate-authority`; otherwise the system's roots.
//! - `username_template`: how a person's cluster username is made from the subject, e.g.
//!   `oidc:{email}` for an API server started with `--oidc-username-prefix=oidc:` and
//!   `--oidc-username-claim=email`. Placeholders: `{username}` (the subject's username for this
//!   instance), `{email}`, `{id}`, `{employee_id}`.
//! - `group_subjects`: the groups whose bindings discovery reports (membership is decided by the
//!   identity provider or the certificate's `O`, never by the cluster: nothing to remove per user).
//! - `owner_annotation`: the annotation naming a ServiceAccount's owner (`revoked.dev/owner`);
//!   the long-lived token Secrets of the leaver's ServiceAccounts are deleted.
//! - `service_account_policy`: what happens to the ServiceAccounts the leaver owns: `tokens`
//!   (the default: their long-lived token Secrets are deleted, the ServiceAccount stays),
//!   `delete` (the ServiceAccount is deleted, which ends every token of it, bound ones too, and
//!   then its subjects are taken out of the bindings that name it, so a ServiceAccount created
//!   later under that name inherits nothing), or `reown` (the owner annotation is set to
//!   `reown_to` and the long-lived token Secrets are deleted).
//! - `certificate_users`: the cluster's usernames come from client certificates (the `CN`);
//!   Kubernetes cannot revoke a certificate, so the plan gets a person's step.

use std::path::PathBuf;
use std::time::Duration;

use revoke_core::keys::{check_table, url_problem, KeySpec, KeyType};
use revoke_core::{ConfigIssue, Subject};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;

/// The placeholders `username_template` may use.
pub const PLACEHOLDERS: &[&str] = &["username", "email", "id", "employee_id"];

/// The typed config of one cluster; build it only after `validate` passed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    #[serde(default, rename = "kind")]
    _kind: Option<serde::de::IgnoredAny>,
    pub api_url: String,
    /// The connector's bearer token, read once.
    #[serde(default)]
    pub token: Option<SecretString>,
    /// A bearer token file re-read every minute and after a 401 (a projected token rotates).
    #[serde(default)]
    pub token_path: Option<PathBuf>,
    /// An ExecCredential plugin: the program and its arguments.
    #[serde(default)]
    pub exec_command: Vec<String>,
    /// Variables set for the plugin (beside the daemon's own environment).
    #[serde(default)]
    pub exec_env: std::collections::BTreeMap<String, String>,
    /// The connector's client certificate (PEM), with `client_key_file`.
    #[serde(default)]
    pub client_certificate: Option<String>,
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Requests a second of the client-side budget (0: none).
    #[serde(default = "default_qps")]
    pub qps: u32,
    #[serde(default = "default_burst")]
    pub burst: u32,
    #[serde(default = "default_template")]
    pub username_template: String,
    #[serde(default)]
    pub group_subjects: Vec<String>,
    #[serde(default)]
    pub owner_annotation: Option<String>,
    #[serde(default)]
    pub service_account_policy: ServiceAccountPolicy,
    /// The new owner (`service_account_policy = "reown"`).
    #[serde(default)]
    pub reown_to: Option<String>,
    #[serde(default)]
    pub certificate_users: bool,
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

/// What happens to the ServiceAccounts the leaver owns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceAccountPolicy {
    /// Delete their long-lived token Secrets; the ServiceAccount stays.
    #[default]
    Tokens,
    /// Delete the ServiceAccount, then its subjects in bindings.
    Delete,
    /// Set the owner annotation to `reown_to`, and delete the long-lived token Secrets.
    Reown,
}

/// The policies `service_account_policy` may name.
pub const SA_POLICIES: &[&str] = &["tokens", "delete", "reown"];

fn default_template() -> String {
    "{username}".to_string()
}
fn default_timeout_secs() -> u64 {
    30
}
/// client-go's `rest.Config` default QPS.
pub const DEFAULT_QPS: u32 = 5;
/// client-go's `rest.Config` default burst.
pub const DEFAULT_BURST: u32 = 10;
fn default_qps() -> u32 {
    DEFAULT_QPS
}
fn default_burst() -> u32 {
    DEFAULT_BURST
}

impl KubernetesConfig {
    pub fn from_value(params: &Value) -> Result<Self, String> {
        serde_json::from_value(params.clone()).map_err(|e| e.to_string())
    }

    /// The API server's URL without a trailing slash.
    pub fn base_url(&self) -> String {
        self.api_url.trim_end_matches('/').to_string()
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// The subject's username in the cluster, or why there is none (the template needs a value
    /// the subject does not have).
    pub fn username(&self, instance: &str, subject: &Subject) -> Result<String, String> {
        render(&self.username_template, |name| match name {
            "username" => Some(subject.username_for(instance).to_string()),
            "email" => subject
                .email
                .clone()
                .or_else(|| subject.id.contains('@').then(|| subject.id.clone())),
            "id" => Some(subject.id.clone()),
            "employee_id" => subject.employee_id.clone(),
            _ => None,
        })
    }
}

/// Fills `{name}` placeholders; `{{` and `}}` are literal braces.
fn render(template: &str, value: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("{{") {
            out.push('{');
            rest = t;
        } else if let Some(t) = tail.strip_prefix("}}") {
            out.push('}');
            rest = t;
        } else if let Some(t) = tail.strip_prefix('{') {
            let end = t
                .find('}')
                .ok_or_else(|| format!("an unclosed placeholder in {template:?}"))?;
            let name = &t[..end];
            if !PLACEHOLDERS.contains(&name) {
                return Err(format!(
                    "expected placeholders among {PLACEHOLDERS:?}, found {{{name}}}"
                ));
            }
            let v = value(name).filter(|v| !v.is_empty()).ok_or_else(|| {
                format!("the username template {template:?} needs the subject's {name}, which it does not have")
            })?;
            out.push_str(&v);
            rest = &t[end + 1..];
        } else {
            return Err(format!("a lone '}}' in {template:?}"));
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Every key the table may hold (`kind` is always allowed).
const KEYS: &[KeySpec] = &[
    KeySpec::required("api_url", KeyType::Str),
    KeySpec::secret("token"),
    KeySpec::optional("token_path", KeyType::Str),
    KeySpec::optional("exec_command", KeyType::StrList),
    KeySpec::optional("exec_env", KeyType::StrTable),
    KeySpec::optional("client_certificate", KeyType::Str),
    KeySpec::optional("client_key_file", KeyType::Str),
    KeySpec::optional("ca_file", KeyType::Str),
    KeySpec::optional("qps", KeyType::Int),
    KeySpec::optional("burst", KeyType::Int),
    KeySpec::optional("username_template", KeyType::Str),
    KeySpec::optional("group_subjects", KeyType::StrList),
    KeySpec::optional("owner_annotation", KeyType::Str),
    KeySpec::optional("service_account_policy", KeyType::Str),
    KeySpec::optional("reown_to", KeyType::Str),
    KeySpec::optional("certificate_users", KeyType::Bool),
    KeySpec::optional("timeout_secs", KeyType::Int),
];

/// A qualified annotation key as Kubernetes accepts one: an optional DNS-subdomain prefix and
/// `/`, then a name of at most 63 characters (alphanumerics, `-`, `_`, `.`, alphanumeric ends).
pub fn is_annotation_key(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
    });
    name_ok && prefix_ok
}

/// Checks the table without any I/O; every issue names its key under `path`.
pub fn validate(path: &str, params: &Value) -> Result<(), Vec<ConfigIssue>> {
    let mut issues = Vec::new();
    let key = |k: &str| format!("{path}.{k}");
    let Some(table) = check_table(path, params, KEYS, &mut issues) else {
        return Err(issues);
    };
    let s = |k: &str| table.get(k).and_then(Value::as_str);

    if let Some(url) = s("api_url") {
        if let Some(problem) = url_problem(url) {
            issues.push(ConfigIssue::new(
                key("api_url"),
                format!("expected the API server's http(s) url such as https://k8s.example.org:6443 ({problem}), found {url:?}"),
            ));
        } else if url.contains('?') || url.trim_end_matches('/').ends_with("/api") {
            issues.push(ConfigIssue::new(
                key("api_url"),
                format!(
                    "expected the API server's base url without /api or a query, found {url:?}"
                ),
            ));
        }
    }
    if let Some(t) = s("token") {
        if t.trim().is_empty() {
            issues.push(ConfigIssue::new(
                key("token"),
                "expected a bearer token (token_file: the ServiceAccount token's path), found an empty string",
            ));
        } else if t
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            issues.push(ConfigIssue::new(
                key("token"),
                "expected a bearer token, found one with spaces or control characters in or around it",
            ));
        }
    }
    let bearer: Vec<&str> = ["token", "token_path", "exec_command"]
        .into_iter()
        .filter(|k| table.contains_key(*k))
        .collect();
    let has_cert = table.contains_key("client_certificate");
    if bearer.len() > 1 {
        issues.push(ConfigIssue::new(
            key(bearer[1]),
            format!(
                "expected one bearer credential, found {}",
                bearer.join(" and ")
            ),
        ));
    } else if bearer.is_empty() && !has_cert {
        issues.push(ConfigIssue::new(
            key("token"),
            "expected a credential: token (token_file), token_path, exec_command or client_certificate with client_key_file, found none",
        ));
    }
    if has_cert != table.contains_key("client_key_file") {
        let (missing, given) = if has_cert {
            ("client_key_file", "client_certificate")
        } else {
            ("client_certificate", "client_key_file")
        };
        issues.push(ConfigIssue::new(
            key(missing),
            format!("expected {missing} beside {given} (a client certificate needs its key), found none"),
        ));
    }
    for k in ["token_path", "client_key_file", "client_certificate"] {
        if s(k).is_some_and(|v| v.trim().is_empty()) {
            issues.push(ConfigIssue::new(
                key(k),
                "expected a path (or a PEM block), found an empty string",
            ));
        }
    }
    if let Some(cmd) = table.get("exec_command").and_then(Value::as_array) {
        if cmd
            .first()
            .and_then(Value::as_str)
            .is_none_or(|p| p.trim().is_empty())
        {
            issues.push(ConfigIssue::new(
                key("exec_command"),
                "expected the plugin's program and its arguments such as [\"aws\", \"eks\", \"get-token\", \"--cluster-name\", \"prod\"], found no program",
            ));
        }
    } else if table.contains_key("exec_env") {
        issues.push(ConfigIssue::new(
            key("exec_env"),
            "expected exec_env only beside exec_command, found no exec_command",
        ));
    }
    for k in ["qps", "burst"] {
        if let Some(n) = table.get(k).and_then(Value::as_u64) {
            if n > 10_000 {
                issues.push(ConfigIssue::new(
                    key(k),
                    format!("expected at most 10000 (0 turns the budget off), found {n}"),
                ));
            }
        }
    }
    if table
        .get("qps")
        .and_then(Value::as_u64)
        .is_some_and(|q| q > 0)
        && table.get("burst").and_then(Value::as_u64) == Some(0)
    {
        issues.push(ConfigIssue::new(
            key("burst"),
            "expected a burst of at least 1 with a qps, found 0",
        ));
    }
    if let Some(ca) = s("ca_file") {
        if ca.trim().is_empty() {
            issues.push(ConfigIssue::new(
                key("ca_file"),
                "expected the path of the cluster's CA certificate (PEM), found an empty string",
            ));
        }
    }
    if let Some(t) = s("username_template") {
        let probe = render(t, |_| Some("x".to_string()));
        if let Err(e) = probe {
            issues.push(ConfigIssue::new(key("username_template"), e));
        } else if !PLACEHOLDERS.iter().any(|p| t.contains(&format!("{{{p}}}"))) {
            issues.push(ConfigIssue::new(
                key("username_template"),
                format!("expected a template naming the subject such as \"oidc:{{email}}\", found {t:?} (the same username for everyone)"),
            ));
        }
    }
    if let Some(groups) = table.get("group_subjects").and_then(Value::as_array) {
        for (i, g) in groups.iter().enumerate() {
            if g.as_str().is_some_and(|g| g.trim().is_empty()) {
                issues.push(ConfigIssue::new(
                    format!("{path}.group_subjects[{i}]"),
                    "expected a group name as the cluster sees it (oidc:engineering), found an empty string",
                ));
            }
        }
    }
    if let Some(a) = s("owner_annotation") {
        if !is_annotation_key(a) {
            issues.push(ConfigIssue::new(
                key("owner_annotation"),
                format!("expected an annotation key such as revoked.dev/owner, found {a:?}"),
            ));
        }
    }
    let policy = s("service_account_policy");
    if let Some(p) = policy {
        if !SA_POLICIES.contains(&p) {
            issues.push(ConfigIssue::new(
                key("service_account_policy"),
                format!("expected one of {SA_POLICIES:?}, found {p:?}"),
            ));
        } else if p != "tokens" && s("owner_annotation").is_none() {
            issues.push(ConfigIssue::new(
                key("service_account_policy"),
                format!("expected owner_annotation beside service_account_policy = {p:?} (it says which ServiceAccounts are the leaver's), found none"),
            ));
        }
    }
    match (policy == Some("reown"), s("reown_to")) {
        (true, None) => issues.push(ConfigIssue::new(
            key("reown_to"),
            "expected the new owner (a team, as the owner annotation names one) with service_account_policy = \"reown\", found none",
        )),
        (true, Some(r)) if r.trim().is_empty() => issues.push(ConfigIssue::new(
            key("reown_to"),
            "expected the new owner, found an empty string",
        )),
        (false, Some(_)) => issues.push(ConfigIssue::new(
            key("reown_to"),
            "expected reown_to only with service_account_policy = \"reown\"",
        )),
        _ => {}
    }
    if let Some(t) = table.get("timeout_secs").and_then(Value::as_u64) {
        if t == 0 || t > 600 {
            issues.push(ConfigIssue::new(
                key("timeout_secs"),
                format!("expected 1 to 600 seconds, found {t}"),
            ));
        }
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(issues)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn issues(v: Value) -> Vec<String> {
        match validate("connectors.k8s", &v) {
            Ok(()) => vec![],
            Err(e) => e
                .iter()
                .map(|i| format!("{}: {}", i.path, i.message))
                .collect(),
        }
    }

    #[test]
    fn a_minimal_config_is_valid_with_safe_defaults() {
        let v = json!({"kind": "kubernetes", "api_url": "https://k8s.example.org:6443", "token": "t0k"});
        assert_eq!(issues(v.clone()), Vec::<String>::new());
        let cfg = KubernetesConfig::from_value(&v).expect("parses");
        assert_eq!(cfg.username_template, "{username}");
        assert!(!cfg.certificate_users);
        assert!(cfg.owner_annotation.is_none());
        assert_eq!(cfg.base_url(), "https://k8s.example.org:6443");
    }

    #[test]
    fn every_problem_names_its_key_and_what_was_found() {
        let got = issues(json!({
            "api_url": "ftp://x", "token": "sekr3t tok", "username_template": "oidc:{mail}",
            "owner_annotation": "Bad Key/", "group_subjects": [""], "timeout_secs": 0, "ca_file": "",
            "extra": 1
        }));
        let joined = got.join("\n");
        for k in [
            "connectors.k8s.api_url",
            "connectors.k8s.token",
            "connectors.k8s.username_template",
            "connectors.k8s.owner_annotation",
            "connectors.k8s.group_subjects[0]",
            "connectors.k8s.timeout_secs",
            "connectors.k8s.ca_file",
            "connectors.k8s.extra",
        ] {
            assert!(joined.contains(k), "{k} missing in:\n{joined}");
        }
        assert!(
            !joined.contains("sekr3t"),
            "the token is never echoed: {joined}"
        );
        assert!(issues(json!({"api_url": "https://k"}))
            .join("")
            .contains("connectors.k8s.token"));
        assert!(issues(
            json!({"api_url": "https://k", "token": "t", "username_template": "alice"})
        )
        .join("")
        .contains("the same username for everyone"));
    }

    #[test]
    fn the_username_comes_from_the_template() {
        let cfg = KubernetesConfig::from_value(&json!({
            "api_url": "https://k", "token": "t", "username_template": "oidc:{email}"
        }))
        .expect("parses");
        let mut s = Subject::new("E42");
        assert!(cfg.username("k8s", &s).is_err(), "no email, no username");
        s.email = Some("ivan@example.org".into());
        assert_eq!(
            cfg.username("k8s", &s).as_deref(),
            Ok("oidc:ivan@example.org")
        );
        assert_eq!(
            render("{{{id}}}", |_| Some("a".into())).as_deref(),
            Ok("{a}")
        );
        assert!(render("{id", |_| Some("a".into())).is_err());
    }

    #[test]
    fn a_service_account_policy_needs_the_owner_annotation_and_reown_its_new_owner() {
        let base = || json!({"api_url": "https://k", "token": "t", "owner_annotation": "revoked.dev/owner"});
        let with = |extra: Value| {
            let mut v = base();
            for (k, x) in extra.as_object().expect("object") {
                v[k] = x.clone();
            }
            issues(v).join("\n")
        };
        assert_eq!(with(json!({"service_account_policy": "delete"})), "");
        assert_eq!(
            with(json!({"service_account_policy": "reown", "reown_to": "team-platform"})),
            ""
        );
        assert!(with(json!({"service_account_policy": "burn"})).contains("expected one of"));
        assert!(with(json!({"service_account_policy": "reown"}))
            .contains("connectors.k8s.reown_to: expected the new owner"));
        assert!(with(json!({"reown_to": "x"})).contains("only with service_account_policy"));
        let mut v = base();
        v.as_object_mut()
            .expect("object")
            .remove("owner_annotation");
        v["service_account_policy"] = json!("delete");
        assert!(issues(v).join("").contains("expected owner_annotation"));
        let cfg = KubernetesConfig::from_value(&json!({"api_url": "https://k", "token": "t", "service_account_policy": "reown", "reown_to": "x"})).expect("parses");
        assert_eq!(cfg.service_account_policy, ServiceAccountPolicy::Reown);
    }

    #[test]
    fn annotation_keys_follow_kubernetes() {
        for ok in ["owner", "revoked.dev/owner", "a.b-c/x_y.z"] {
            assert!(is_annotation_key(ok), "{ok}");
        }
        for bad in ["", "/owner", "Revoked.dev/owner", "x/-a", "a b", "x/"] {
            assert!(!is_annotation_key(bad), "{bad}");
        }
    }
}
