//! The `[connectors.<name>]` table of an AWS IAM instance, and its pure validation.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use revoke_aws::access::{validate_access, AccessConfig, ACCESS_KEYS, ACCOUNT_KEYS};
use revoke_core::keys::{check_table, KeySpec, KeyType};
use revoke_core::ConfigIssue;
use serde::Deserialize;
use serde_json::Value;

use crate::escape::is_user_name;

/// How a subject is matched to IAM users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchBy {
    /// The `users` table: a subject identifier to a user name (or `account/name`).
    Mapping,
    /// A user tag (`match_tag`, default `email`) equal to the subject's email or id.
    Tag,
    /// The user name equals the subject's username for this instance.
    Name,
}

/// How users are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscoveryMode {
    /// One GetAccountAuthorizationDetails scan per account for the whole batch (users with tags,
    /// inline and attached policies, groups, boundary), then per matched user the calls it
    /// cannot answer (keys, login profile, certificates, SSH keys, service credentials, MFA).
    #[default]
    Batch,
    /// Per subject: GetUser by name (or mapping), then one call per kind of sub-resource. Tag
    /// matching needs the scan and is not available here.
    PerUser,
}

/// Where the new secret of a rotated service key is written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Destination {
    /// AWS Secrets Manager, in the service user's account; one secret per service user.
    SecretsManager,
    /// A JSON file per service user in `secrets_dir` (mode 0600), for tests and air-gapped use.
    File,
}

pub const DEFAULT_QUARANTINE_POLICY: &str = "RevokedQuarantine";
pub const DEFAULT_SECRET_NAME: &str = "revoked/{account}/{user}";

/// The typed config of one IAM connector instance; build it only after `validate` passed.
#[derive(Debug, Clone)]
pub struct IamConfig {
    pub access: AccessConfig,
    pub match_by: Vec<MatchBy>,
    pub match_tag: String,
    /// Subject identifier (id, email, employee id or username) -> user name or `account/name`.
    pub users: BTreeMap<String, String>,
    pub owner_tag: String,
    pub rotation: Option<Destination>,
    pub secret_name: String,
    pub secrets_dir: Option<PathBuf>,
    pub rotation_grace: Duration,
    pub quarantine_policy: String,
    pub delete_users: bool,
    pub discovery: DiscoveryMode,
    pub read_concurrency: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Own {
    #[serde(default, rename = "kind")]
    _kind: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    match_by: Option<MatchByList>,
    #[serde(default = "default_match_tag")]
    match_tag: String,
    #[serde(default)]
    users: BTreeMap<String, String>,
    #[serde(default = "default_owner_tag")]
    owner_tag: String,
    #[serde(default)]
    rotation_destination: Option<Destination>,
    #[serde(default = "default_secret_name")]
    secret_name: String,
    #[serde(default)]
    secrets_dir: Option<PathBuf>,
    #[serde(default = "default_grace_days")]
    rotation_grace_days: u64,
    #[serde(default = "default_quarantine")]
    quarantine_policy_name: String,
    #[serde(default = "default_true")]
    delete_users: bool,
    #[serde(default)]
    discovery: DiscoveryMode,
    #[serde(default = "default_read_concurrency")]
    read_concurrency: usize,
    // The shared keys, read by AccessConfig.
    #[serde(default)]
    region: Option<Value>,
    #[serde(default)]
    endpoint_url: Option<Value>,
    #[serde(default)]
    access_key_id: Option<Value>,
    #[serde(default)]
    secret_access_key: Option<Value>,
    #[serde(default)]
    session_token: Option<Value>,
    #[serde(default)]
    timeout_secs: Option<Value>,
    #[serde(default)]
    connect_timeout_secs: Option<Value>,
    #[serde(default)]
    accounts: Option<Value>,
    #[serde(default)]
    role_name: Option<Value>,
    #[serde(default)]
    external_id: Option<Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum MatchByList {
    One(MatchBy),
    Many(Vec<MatchBy>),
}

fn default_match_tag() -> String {
    "email".into()
}
fn default_owner_tag() -> String {
    "owner".into()
}
fn default_secret_name() -> String {
    DEFAULT_SECRET_NAME.into()
}
fn default_grace_days() -> u64 {
    7
}
fn default_quarantine() -> String {
    DEFAULT_QUARANTINE_POLICY.into()
}
fn default_true() -> bool {
    true
}
fn default_read_concurrency() -> usize {
    8
}

impl IamConfig {
    pub fn from_value(params: &Value) -> Result<Self, String> {
        let own: Own = serde_json::from_value(params.clone()).map_err(|e| e.to_string())?;
        let access = AccessConfig::from_table(params)?;
        let mut match_by = match own.match_by {
            None => vec![MatchBy::Mapping, MatchBy::Tag, MatchBy::Name],
            Some(MatchByList::One(m)) => vec![m],
            Some(MatchByList::Many(v)) => v,
        };
        match_by.sort();
        match_by.dedup();
        let _ = (
            own.region,
            own.endpoint_url,
            own.access_key_id,
            own.secret_access_key,
            own.session_token,
            own.timeout_secs,
            own.connect_timeout_secs,
            own.accounts,
            own.role_name,
            own.external_id,
        );
        Ok(Self {
            access,
            match_by,
            match_tag: own.match_tag,
            users: own.users,
            owner_tag: own.owner_tag,
            rotation: own.rotation_destination,
            secret_name: own.secret_name,
            secrets_dir: own.secrets_dir,
            rotation_grace: Duration::from_secs(own.rotation_grace_days * 86_400),
            quarantine_policy: own.quarantine_policy_name,
            delete_users: own.delete_users,
            discovery: own.discovery,
            read_concurrency: own.read_concurrency.max(1),
        })
    }

    pub fn matches_by(&self, m: MatchBy) -> bool {
        self.match_by.contains(&m)
    }

    /// The secret name for a service user, from the `secret_name` template.
    pub fn secret_name_for(&self, account: &str, user: &str) -> String {
        self.secret_name
            .replace("{account}", account)
            .replace("{user}", user)
    }
}

const OWN_KEYS: &[KeySpec] = &[
    KeySpec::optional("match_by", KeyType::StrOrList),
    KeySpec::optional("match_tag", KeyType::Str),
    KeySpec::optional("users", KeyType::StrTable),
    KeySpec::optional("owner_tag", KeyType::Str),
    KeySpec::optional("rotation_destination", KeyType::Str),
    KeySpec::optional("secret_name", KeyType::Str),
    KeySpec::optional("secrets_dir", KeyType::Str),
    KeySpec::optional("rotation_grace_days", KeyType::Int),
    KeySpec::optional("quarantine_policy_name", KeyType::Str),
    KeySpec::optional("delete_users", KeyType::Bool),
    KeySpec::optional("discovery", KeyType::Str),
    KeySpec::optional("read_concurrency", KeyType::Int),
];

/// An IAM tag key: 1 to 128 of letters, digits, spaces and `_.:/=+-@`.
fn is_tag_key(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && !s.starts_with("aws:")
        && s.chars()
            .all(|c| c.is_alphanumeric() || " _.:/=+-@".contains(c))
}

/// Checks the table without any I/O; every issue names its key under `path`.
pub fn validate(path: &str, params: &Value) -> Result<(), Vec<ConfigIssue>> {
    let mut issues = Vec::new();
    let keys: Vec<KeySpec> = ACCESS_KEYS
        .iter()
        .chain(ACCOUNT_KEYS)
        .chain(OWN_KEYS)
        .copied()
        .collect();
    let Some(table) = check_table(path, params, &keys, &mut issues) else {
        return Err(issues);
    };
    validate_access(path, table, true, &mut issues);
    let key = |k: &str| format!("{path}.{k}");
    let s = |k: &str| table.get(k).and_then(Value::as_str);

    let one_of = |k: &str, allowed: &[&str], v: &str, issues: &mut Vec<ConfigIssue>| {
        if !allowed.contains(&v) {
            issues.push(ConfigIssue::new(
                key(k),
                format!("expected one of {}, found {v:?}", allowed.join(", ")),
            ));
        }
    };
    match table.get("match_by") {
        Some(Value::String(v)) => one_of("match_by", &["mapping", "tag", "name"], v, &mut issues),
        Some(Value::Array(a)) => {
            if a.is_empty() {
                issues.push(ConfigIssue::new(
                    key("match_by"),
                    "expected at least one of mapping, tag, name, found an empty list",
                ));
            }
            for v in a.iter().filter_map(Value::as_str) {
                one_of("match_by", &["mapping", "tag", "name"], v, &mut issues);
            }
        }
        _ => {}
    }
    for k in ["match_tag", "owner_tag"] {
        if let Some(v) = s(k) {
            if !is_tag_key(v) {
                issues.push(ConfigIssue::new(
                    key(k),
                    format!("expected a tag key (1 to 128 of letters, digits, spaces and _.:/=+-@, not aws:), found {v:?}"),
                ));
            }
        }
    }
    if let Some(users) = table.get("users").and_then(Value::as_object) {
        for (who, v) in users {
            let name = v.as_str().unwrap_or("");
            let (account, user) = match name.split_once('/') {
                Some((a, u)) => (Some(a), u),
                None => (None, name),
            };
            let ok_account = account.is_none_or(revoke_aws::access::is_account_id);
            if !ok_account || !is_user_name(user) {
                issues.push(ConfigIssue::new(
                    format!("{path}.users.{who}"),
                    format!("expected an IAM user name (1 to 64 of letters, digits and +=,.@_-), optionally after an account id and /, found {name:?}"),
                ));
            }
        }
    }
    if let Some(v) = s("discovery") {
        one_of("discovery", &["batch", "per_user"], v, &mut issues);
    }
    if s("discovery") == Some("per_user") {
        let tag = match table.get("match_by") {
            None => false,
            Some(Value::String(v)) => v == "tag",
            Some(v) => v
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x.as_str() == Some("tag"))),
        };
        if tag {
            issues.push(ConfigIssue::new(
                key("match_by"),
                "tag matching needs discovery = \"batch\" (IAM lists users without their tags)",
            ));
        }
        if table.contains_key("rotation_destination") {
            issues.push(ConfigIssue::new(
                key("rotation_destination"),
                "rotation needs discovery = \"batch\" (service users are found by their owner tag, which only the scan reads)",
            ));
        }
    }
    match s("rotation_destination") {
        None => {
            for k in ["secrets_dir", "secret_name"] {
                if table.contains_key(k) {
                    issues.push(ConfigIssue::new(
                        key(k),
                        "has no effect without rotation_destination (\"secrets_manager\" or \"file\")",
                    ));
                }
            }
        }
        Some(v) => {
            one_of(
                "rotation_destination",
                &["secrets_manager", "file"],
                v,
                &mut issues,
            );
            if v == "file" && !table.contains_key("secrets_dir") {
                issues.push(ConfigIssue::new(
                    key("secrets_dir"),
                    "missing; rotation_destination = \"file\" needs a directory",
                ));
            }
        }
    }
    if let Some(dir) = s("secrets_dir") {
        if !dir.starts_with('/') {
            issues.push(ConfigIssue::new(
                key("secrets_dir"),
                format!("expected an absolute directory, found {dir:?}"),
            ));
        }
    }
    if let Some(t) = s("secret_name") {
        if !t.contains("{user}") {
            issues.push(ConfigIssue::new(
                key("secret_name"),
                format!(
                    "expected a template with {{user}} (one secret per service user), found {t:?}"
                ),
            ));
        }
        let rest = t.replace("{account}", "").replace("{user}", "");
        if rest.contains(['{', '}'])
            || !rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c))
        {
            issues.push(ConfigIssue::new(
                key("secret_name"),
                format!("expected letters, digits, /_+=.@- and the placeholders {{account}} and {{user}}, found {t:?}"),
            ));
        }
    }
    if let Some(q) = s("quarantine_policy_name") {
        let ok = (1..=128).contains(&q.len())
            && q.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
        if !ok {
            issues.push(ConfigIssue::new(
                key("quarantine_policy_name"),
                format!(
                    "expected a policy name (1 to 128 of letters, digits and +=,.@_-), found {q:?}"
                ),
            ));
        }
    }
    if table.get("read_concurrency").and_then(Value::as_u64) == Some(0) {
        issues.push(ConfigIssue::new(
            key("read_concurrency"),
            "expected at least 1, found 0",
        ));
    }
    if table
        .get("rotation_grace_days")
        .and_then(Value::as_u64)
        .is_some_and(|d| d > 3650)
    {
        issues.push(ConfigIssue::new(
            key("rotation_grace_days"),
            "expected at most 3650 days",
        ));
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(issues)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn issues(v: Value) -> Vec<String> {
        validate("connectors.aws", &v)
            .err()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn per_user_discovery_cannot_find_service_users_so_rotation_is_refused() {
        assert_eq!(
            issues(json!({"discovery": "per_user", "match_by": "name", "rotation_destination": "secrets_manager"})),
            ["connectors.aws.rotation_destination: rotation needs discovery = \"batch\" (service users are found by their owner tag, which only the scan reads)"]
        );
        assert!(issues(json!({"discovery": "per_user", "match_by": "name"})).is_empty());
        assert!(issues(json!({"rotation_destination": "secrets_manager"})).is_empty());
    }
}
