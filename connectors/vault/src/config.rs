//! The `[connectors.<name>]` table of a Vault or OpenBao cluster, and its pure validation.
//!
//! Exactly one of two credentials: a token (`token`, in production `token_file`: the config layer
//! reads the file into `token`), or an AppRole (`role_id` with `secret_id`, in production
//! `secret_id_file`, logged in at `approle_mount`). `mounts` is a table keyed by each auth
//! mount's path, saying how a leaver's alias is named there:
//!
//! ```toml
//! [connectors.vault.mounts.userpass]
//! type = "userpass"
//! alias = "username"          # or "email", "employee_id", or a template "{username}@corp"
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use revoke_core::keys::{check_table, describe, url_problem, KeySpec, KeyType};
use revoke_core::{ConfigIssue, Subject};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;

/// Which server: decides the rekey assist (OpenBao's `sys/rotate/root/*` or Vault's `sys/rekey/*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flavor {
    #[default]
    Openbao,
    Vault,
}

/// What to do with the cluster's root tokens when the leaver held a key share: a key holder can
/// take part in generating one (`sys/generate-root`), and a root token carries no entity, so
/// nothing else in the plan ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RootTokens {
    /// Revoke each one by accessor in contain (a manual step instead when revoking one could
    /// take the connector's own token with it).
    #[default]
    Revoke,
    /// A person's step naming the accessors.
    Manual,
    /// Not looked for.
    Ignore,
}

/// One auth mount to search.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    /// The auth method's type (`userpass`, `oidc`, `jwt`, `approle`, `ldap`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// How the subject maps to the alias name: `username`, `email`, `employee_id`, or a
    /// template with `{username}`, `{email}`, `{employee_id}`, `{id}`.
    #[serde(default = "default_alias")]
    pub alias: String,
}

fn default_alias() -> String {
    "username".to_string()
}

impl Mount {
    /// The alias name of `subject` on this mount (`None` when the subject lacks the value).
    pub fn alias_name(&self, instance: &str, subject: &Subject) -> Option<String> {
        let username = subject.username_for(instance);
        match self.alias.as_str() {
            "username" => Some(username.to_string()),
            "email" => subject.email.clone(),
            "employee_id" => subject.employee_id.clone(),
            template => {
                let mut out = template.to_string();
                for (k, v) in [
                    ("{username}", Some(username)),
                    ("{email}", subject.email.as_deref()),
                    ("{employee_id}", subject.employee_id.as_deref()),
                    ("{id}", Some(subject.id.as_str())),
                ] {
                    if out.contains(k) {
                        out = out.replace(k, v?);
                    }
                }
                Some(out)
            }
        }
    }

    /// Logins on this mount have a per-user path (`auth/<mount>/login/<name>`), so
    /// `sys/leases/revoke-prefix` revokes exactly one person's tokens.
    pub fn per_user_login(&self) -> bool {
        matches!(self.kind.as_str(), "userpass" | "ldap" | "radius" | "okta")
    }
}

/// The typed config of one Vault connector instance; build it only after `validate` passed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    #[serde(default, rename = "kind")]
    _kind: Option<serde::de::IgnoredAny>,
    /// `https://vault.example.org:8200`
    pub address: String,
    #[serde(default)]
    pub token: Option<SecretString>,
    #[serde(default)]
    pub role_id: Option<String>,
    #[serde(default)]
    pub secret_id: Option<SecretString>,
    #[serde(default = "default_approle_mount")]
    pub approle_mount: String,
    /// Vault Enterprise / OpenBao namespace (`X-Vault-Namespace`).
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub flavor: Flavor,
    /// Auth mounts to search, by path (`userpass`, `oidc`).
    pub mounts: BTreeMap<String, Mount>,
    /// People who hold an unseal or recovery key share, by any identifier a subject has.
    #[serde(default)]
    pub key_holders: Vec<String>,
    /// The cluster's root tokens when a key holder leaves.
    #[serde(default)]
    pub root_tokens: RootTokens,
    #[serde(default = "default_true")]
    pub disable_entity: bool,
    #[serde(default = "default_true")]
    pub revoke_tokens: bool,
    /// Scan every token accessor for the leaver's (LIST + one lookup per token in the cluster).
    #[serde(default = "default_true")]
    pub scan_tokens: bool,
    #[serde(default = "default_true")]
    pub remove_groups: bool,
    #[serde(default = "default_true")]
    pub remove_policies: bool,
    /// Delete userpass users, the aliases and the entity after retention.
    #[serde(default = "default_true")]
    pub delete: bool,
    #[serde(default)]
    pub retention_days: u64,
    /// Requests per second this instance sends at most (0: no pace).
    #[serde(default)]
    pub requests_per_second: u64,
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_true() -> bool {
    true
}
fn default_timeout_secs() -> u64 {
    30
}
fn default_approle_mount() -> String {
    "approle".to_string()
}

impl VaultConfig {
    pub fn from_value(params: &Value) -> Result<Self, String> {
        serde_json::from_value(params.clone()).map_err(|e| e.to_string())
    }

    pub fn base_url(&self) -> String {
        self.address.trim_end_matches('/').to_string()
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    pub fn retention(&self) -> Option<Duration> {
        (self.retention_days > 0).then(|| Duration::from_secs(self.retention_days * 86_400))
    }

    /// The key-holder entry naming `subject`, compared without case on every identifier.
    pub fn key_holder(&self, instance: &str, subject: &Subject) -> Option<&str> {
        let ids: Vec<String> = subject
            .identifiers()
            .chain(std::iter::once(subject.username_for(instance)))
            .map(str::to_lowercase)
            .collect();
        self.key_holders
            .iter()
            .find(|k| ids.contains(&k.to_lowercase()))
            .map(String::as_str)
    }
}

const KEYS: &[KeySpec] = &[
    KeySpec::required("address", KeyType::Str),
    KeySpec::secret("token"),
    KeySpec::optional("role_id", KeyType::Str),
    KeySpec::secret("secret_id"),
    KeySpec::optional("approle_mount", KeyType::Str),
    KeySpec::optional("namespace", KeyType::Str),
    KeySpec::optional("flavor", KeyType::Str),
    KeySpec::required("mounts", KeyType::Table),
    KeySpec::optional("key_holders", KeyType::StrList),
    KeySpec::optional("root_tokens", KeyType::Str),
    KeySpec::optional("disable_entity", KeyType::Bool),
    KeySpec::optional("revoke_tokens", KeyType::Bool),
    KeySpec::optional("scan_tokens", KeyType::Bool),
    KeySpec::optional("remove_groups", KeyType::Bool),
    KeySpec::optional("remove_policies", KeyType::Bool),
    KeySpec::optional("delete", KeyType::Bool),
    KeySpec::optional("retention_days", KeyType::Int),
    KeySpec::optional("requests_per_second", KeyType::Int),
    KeySpec::optional("timeout_secs", KeyType::Int),
];

const MOUNT_KEYS: &[KeySpec] = &[
    KeySpec::required("type", KeyType::Str),
    KeySpec::optional("alias", KeyType::Str),
];

/// Auth method types whose alias names are people's names; `token` and `cert` name tokens and
/// certificates, not people.
const MOUNT_TYPES: &[&str] = &[
    "userpass",
    "oidc",
    "jwt",
    "ldap",
    "approle",
    "kubernetes",
    "radius",
    "okta",
    "github",
    "saml",
];

/// A mount path (or namespace): segments of letters, digits, `-`, `_`, `.`, joined by `/`; no
/// empty, `.` or `..` segment.
pub fn is_path(s: &str) -> bool {
    let s = s.trim_end_matches('/');
    !s.is_empty()
        && s.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
}

/// Why an alias template is not one, if it is not.
fn template_problem(t: &str) -> Option<String> {
    if matches!(t, "username" | "email" | "employee_id") {
        return None;
    }
    let mut rest = t;
    let mut placeholders = 0;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return Some("an unclosed {".into());
        };
        let name = &rest[open + 1..open + close];
        if !["username", "email", "employee_id", "id"].contains(&name) {
            return Some(format!("an unknown placeholder {{{name}}}"));
        }
        placeholders += 1;
        rest = &rest[open + close + 1..];
    }
    if rest.contains('}') {
        return Some("a } without {".into());
    }
    (placeholders == 0).then(|| "no placeholder".into())
}

/// Checks the table without any I/O; every issue names its key under `path`.
pub fn validate(path: &str, params: &Value) -> Result<(), Vec<ConfigIssue>> {
    let mut issues = Vec::new();
    let key = |k: &str| format!("{path}.{k}");
    let Some(table) = check_table(path, params, KEYS, &mut issues) else {
        return Err(issues);
    };
    let s = |k: &str| table.get(k).and_then(Value::as_str);

    if let Some(url) = s("address") {
        if let Some(problem) = url_problem(url) {
            issues.push(ConfigIssue::new(
                key("address"),
                format!("expected the cluster's http(s) address such as https://vault.example.org:8200 ({problem}), found {url:?}"),
            ));
        } else if url.trim_end_matches('/').contains("/v1") {
            issues.push(ConfigIssue::new(
                key("address"),
                format!("expected the address without /v1 (https://vault.example.org:8200), found {url:?}"),
            ));
        }
    }
    if let Some(t) = s("token") {
        if t.trim().is_empty()
            || t.trim().len() != t.len()
            || t.bytes().any(|b| b.is_ascii_control())
        {
            issues.push(ConfigIssue::new(
                key("token"),
                "expected a Vault token, found an empty one or one with spaces or control characters",
            ));
        }
    }
    match (table.contains_key("token"), table.contains_key("role_id")) {
        (true, true) => issues.push(ConfigIssue::new(
            key("role_id"),
            "expected either token (or token_file) or role_id with secret_id (AppRole), found both",
        )),
        (false, false) => issues.push(ConfigIssue::new(
            key("token"),
            "expected token (or token_file), or role_id with secret_id (or secret_id_file), found neither",
        )),
        _ => {}
    }
    if table.contains_key("role_id") {
        if !table.contains_key("secret_id") {
            issues.push(ConfigIssue::new(
                key("secret_id"),
                "expected the AppRole's secret_id (secret_id_file in production) with role_id, found none",
            ));
        }
    } else {
        for k in ["secret_id", "approle_mount"] {
            if table.contains_key(k) {
                issues.push(ConfigIssue::new(
                    key(k),
                    "expected only with role_id (AppRole)",
                ));
            }
        }
    }
    for k in ["approle_mount", "namespace"] {
        if let Some(v) = s(k) {
            if !is_path(v) {
                issues.push(ConfigIssue::new(
                    key(k),
                    format!("expected a path of letters, digits, -, _ and . segments, found {v:?}"),
                ));
            }
        }
    }
    if let Some(f) = s("flavor") {
        if !["openbao", "vault"].contains(&f) {
            issues.push(ConfigIssue::new(
                key("flavor"),
                format!("expected \"openbao\" or \"vault\", found {f:?}"),
            ));
        }
    }
    if let Some(f) = s("root_tokens") {
        if !["revoke", "manual", "ignore"].contains(&f) {
            issues.push(ConfigIssue::new(
                key("root_tokens"),
                format!("expected \"revoke\", \"manual\" or \"ignore\", found {f:?}"),
            ));
        }
    }
    if let Some(mounts) = table.get("mounts").and_then(Value::as_object) {
        if mounts.is_empty() {
            issues.push(ConfigIssue::new(
                key("mounts"),
                "expected at least one auth mount to search, found none",
            ));
        }
        for (name, m) in mounts {
            let mpath = format!("{path}.mounts.{name}");
            if !is_path(name) {
                issues.push(ConfigIssue::new(
                    &mpath,
                    format!("expected an auth mount path (letters, digits, -, _, . and /), found {name:?}"),
                ));
            }
            let Some(mt) = check_table(&mpath, m, MOUNT_KEYS, &mut issues) else {
                continue;
            };
            if let Some(t) = mt.get("type").and_then(Value::as_str) {
                if !MOUNT_TYPES.contains(&t) {
                    issues.push(ConfigIssue::new(
                        format!("{mpath}.type"),
                        format!(
                            "expected an auth method that names people ({}), found {t:?}",
                            MOUNT_TYPES.join(", ")
                        ),
                    ));
                }
            }
            if let Some(a) = mt.get("alias").and_then(Value::as_str) {
                if let Some(problem) = template_problem(a) {
                    issues.push(ConfigIssue::new(
                        format!("{mpath}.alias"),
                        format!("expected username, email, employee_id or a template with {{username}}, {{email}}, {{employee_id}} or {{id}} ({problem}), found {a:?}"),
                    ));
                }
            }
        }
    }
    if let Some(list) = table.get("key_holders").and_then(Value::as_array) {
        for v in list {
            if v.as_str().is_some_and(|h| h.trim().is_empty()) {
                issues.push(ConfigIssue::new(
                    key("key_holders"),
                    format!("expected people's identifiers, found {}", describe(v)),
                ));
            }
        }
    }
    for (k, lo, hi, what) in [
        ("timeout_secs", 1, 600, "seconds"),
        ("retention_days", 0, 36_500, "days"),
        ("requests_per_second", 0, 100_000, "requests per second"),
    ] {
        if let Some(v) = table.get(k) {
            match v.as_u64() {
                Some(n) if (lo..=hi).contains(&n) => {}
                _ => issues.push(ConfigIssue::new(
                    key(k),
                    format!("expected {lo} to {hi} {what}, found {v}"),
                )),
            }
        }
    }
    if issues.is_empty() {
        if let Err(e) = VaultConfig::from_value(params) {
            issues.push(ConfigIssue::new(path, e));
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

    fn ok() -> Value {
        json!({
            "kind": "vault",
            "address": "https://vault.example.org:8200",
            "token": "s.abc",
            "mounts": {"userpass": {"type": "userpass"}, "oidc": {"type": "oidc", "alias": "email"}},
            "key_holders": ["alice@example.org"],
        })
    }

    #[test]
    fn a_good_table_passes_and_builds() {
        validate("connectors.vault", &ok()).expect("valid");
        let cfg = VaultConfig::from_value(&ok()).expect("typed");
        assert_eq!(cfg.mounts.len(), 2);
        assert_eq!(cfg.flavor, Flavor::Openbao);
        assert_eq!(cfg.root_tokens, RootTokens::Revoke);
        assert!(!format!("{cfg:?}").contains("s.abc"), "the token is secret");
    }

    #[test]
    fn every_problem_is_named_by_its_key() {
        let bad = json!({
            "address": "vault.example.org",
            "token": " s.abc",
            "role_id": "r",
            "flavor": "consul",
            "root_tokens": "keep",
            "namespace": "../x",
            "mounts": {
                "../up": {"type": "userpass"},
                "tok": {"type": "token"},
                "o": {"type": "oidc", "alias": "{name}@x"},
                "p": {"type": "userpass", "alias": "plain"},
                "q": {"type": "userpass", "extra": 1},
            },
            "key_holders": [""],
            "timeout_secs": 0,
        });
        let issues = validate("connectors.v", &bad).expect_err("invalid");
        let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
        for p in [
            "connectors.v.address",
            "connectors.v.token",
            "connectors.v.role_id",
            "connectors.v.secret_id",
            "connectors.v.flavor",
            "connectors.v.root_tokens",
            "connectors.v.namespace",
            "connectors.v.mounts.../up",
            "connectors.v.mounts.tok.type",
            "connectors.v.mounts.o.alias",
            "connectors.v.mounts.p.alias",
            "connectors.v.mounts.q.extra",
            "connectors.v.key_holders",
            "connectors.v.timeout_secs",
        ] {
            assert!(paths.contains(&p), "{p} missing from {issues:#?}");
        }
        let text = format!("{issues:?}");
        assert!(
            !text.contains(" s.abc"),
            "the token is never echoed: {text}"
        );
    }

    #[test]
    fn neither_credential_and_an_empty_mount_table_are_refused() {
        let issues = validate(
            "c.v",
            &json!({"address": "http://127.0.0.1:8200", "mounts": {}}),
        )
        .expect_err("invalid");
        let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
        assert!(
            paths.contains(&"c.v.token") && paths.contains(&"c.v.mounts"),
            "{issues:?}"
        );
    }

    #[test]
    fn alias_names_follow_the_mapping() {
        let mut s = Subject::new("alice");
        s.email = Some("alice@example.org".into());
        let m = |a: &str| Mount {
            kind: "oidc".into(),
            alias: a.into(),
        };
        assert_eq!(m("username").alias_name("v", &s).as_deref(), Some("alice"));
        assert_eq!(
            m("email").alias_name("v", &s).as_deref(),
            Some("alice@example.org")
        );
        assert_eq!(m("employee_id").alias_name("v", &s), None);
        assert_eq!(
            m("{username}@corp").alias_name("v", &s).as_deref(),
            Some("alice@corp")
        );
        assert_eq!(m("{employee_id}-x").alias_name("v", &s), None);
        s.usernames.insert("v".into(), "a.smith".into());
        assert_eq!(
            m("username").alias_name("v", &s).as_deref(),
            Some("a.smith")
        );
    }

    #[test]
    fn key_holders_match_any_identifier_without_case() {
        let cfg = VaultConfig::from_value(&ok()).expect("typed");
        let mut s = Subject::new("alice");
        assert_eq!(cfg.key_holder("vault", &s), None);
        s.email = Some("Alice@Example.org".into());
        assert_eq!(cfg.key_holder("vault", &s), Some("alice@example.org"));
    }
}
