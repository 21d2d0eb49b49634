//! The config keys every AWS connector shares, and their pure validation.

use std::time::Duration;

use revoke_core::keys::{url_problem, KeySpec, KeyType};
use revoke_core::ConfigIssue;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Map, Value};

/// The role assumed in member accounts unless configured otherwise: the one AWS Organizations
/// creates in every account it creates.
pub const DEFAULT_ROLE_NAME: &str = "OrganizationAccountAccessRole";

/// The shared keys; a connector adds its own to the same table.
pub const ACCESS_KEYS: &[KeySpec] = &[
    KeySpec::optional("region", KeyType::Str),
    KeySpec::optional("endpoint_url", KeyType::Str),
    KeySpec::optional("access_key_id", KeyType::Str),
    KeySpec::secret("secret_access_key"),
    KeySpec::secret("session_token"),
    KeySpec::optional("timeout_secs", KeyType::Int),
    KeySpec::optional("connect_timeout_secs", KeyType::Int),
];

/// The keys of a connector that reaches several accounts.
pub const ACCOUNT_KEYS: &[KeySpec] = &[
    KeySpec::optional("accounts", KeyType::StrOrList),
    KeySpec::optional("role_name", KeyType::Str),
    KeySpec::optional("external_id", KeyType::Str),
];

/// Which accounts a connector acts in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AccountSelection {
    /// Only the account of the configured credentials.
    #[default]
    Own,
    /// These accounts (12 digits each), through AssumeRole unless it is the own account.
    Listed(Vec<String>),
    /// Every ACTIVE account of the organization (Organizations ListAccounts, which needs the
    /// management account or a delegated administrator).
    Organization,
}

impl<'de> Deserialize<'de> for AccountSelection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::One(s) if s == "organization" => AccountSelection::Organization,
            Raw::One(s) if s == "own" => AccountSelection::Own,
            Raw::One(s) => AccountSelection::Listed(vec![s]),
            Raw::Many(v) => AccountSelection::Listed(v),
        })
    }
}

/// Region, endpoint, credentials, timeouts and accounts; read from the connector's table.
#[derive(Debug, Clone, Deserialize)]
pub struct AccessConfig {
    #[serde(default = "default_region")]
    pub region: String,
    /// Another endpoint than AWS's own (a VPC endpoint, or a stand-in in tests).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Static credentials; without them the default chain is used (environment, web identity,
    /// ECS, instance metadata).
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<SecretString>,
    #[serde(default)]
    pub session_token: Option<SecretString>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    #[serde(default)]
    pub accounts: AccountSelection,
    #[serde(default = "default_role")]
    pub role_name: String,
    #[serde(default)]
    pub external_id: Option<String>,
}

fn default_region() -> String {
    "us-east-1".into()
}
fn default_timeout() -> u64 {
    30
}
fn default_connect_timeout() -> u64 {
    5
}
fn default_role() -> String {
    DEFAULT_ROLE_NAME.into()
}

impl AccessConfig {
    /// Reads the shared keys out of a connector's table (other keys are ignored here).
    pub fn from_table(params: &Value) -> Result<Self, String> {
        let mut only = Map::new();
        if let Some(t) = params.as_object() {
            for spec in ACCESS_KEYS.iter().chain(ACCOUNT_KEYS) {
                if let Some(v) = t.get(spec.name) {
                    only.insert(spec.name.to_string(), v.clone());
                }
            }
        }
        serde_json::from_value(Value::Object(only)).map_err(|e| e.to_string())
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }
}

/// Whether `s` is an AWS account id (12 digits).
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// An IAM role name: 1 to 64 of letters, digits and `+=,.@_-`.
fn is_role_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

/// The rules on the shared keys beyond their types. `multi_account` says whether the connector
/// takes `accounts`, `role_name` and `external_id`.
pub fn validate_access(
    path: &str,
    table: &Map<String, Value>,
    multi_account: bool,
    issues: &mut Vec<ConfigIssue>,
) {
    let key = |k: &str| format!("{path}.{k}");
    let s = |k: &str| table.get(k).and_then(Value::as_str);
    if let Some(url) = s("endpoint_url") {
        if let Some(problem) = url_problem(url) {
            issues.push(ConfigIssue::new(
                key("endpoint_url"),
                format!("expected an http(s) url ({problem}), found {url:?}"),
            ));
        }
    }
    if let Some(r) = s("region") {
        let ok = !r.is_empty()
            && r.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            issues.push(ConfigIssue::new(
                key("region"),
                format!("expected a region such as us-east-1, found {r:?}"),
            ));
        }
    }
    match (
        table.contains_key("access_key_id"),
        table.contains_key("secret_access_key"),
    ) {
        (true, false) => issues.push(ConfigIssue::new(
            key("secret_access_key"),
            "missing; access_key_id needs secret_access_key (or leave both out for the default credential chain)",
        )),
        (false, true) => issues.push(ConfigIssue::new(
            key("access_key_id"),
            "missing; secret_access_key needs access_key_id",
        )),
        _ => {}
    }
    if table.contains_key("session_token") && !table.contains_key("access_key_id") {
        issues.push(ConfigIssue::new(
            key("session_token"),
            "session_token needs access_key_id and secret_access_key",
        ));
    }
    for k in ["timeout_secs", "connect_timeout_secs"] {
        if table.get(k).and_then(Value::as_u64) == Some(0) {
            issues.push(ConfigIssue::new(
                key(k),
                "expected at least 1 second, found 0",
            ));
        }
    }
    if !multi_account {
        return;
    }
    match table.get("accounts") {
        Some(Value::String(s)) if s == "organization" || s == "own" => {}
        Some(Value::String(s)) if !is_account_id(s) => issues.push(ConfigIssue::new(
            key("accounts"),
            format!("expected \"organization\", \"own\" or account ids (12 digits), found {s:?}"),
        )),
        Some(Value::Array(a)) => {
            if a.is_empty() {
                issues.push(ConfigIssue::new(
                    key("accounts"),
                    "expected at least one account id, found an empty list",
                ));
            }
            for id in a.iter().filter_map(Value::as_str) {
                if !is_account_id(id) {
                    issues.push(ConfigIssue::new(
                        key("accounts"),
                        format!("expected account ids of 12 digits, found {id:?}"),
                    ));
                }
            }
        }
        _ => {}
    }
    if let Some(r) = s("role_name") {
        if !is_role_name(r) {
            issues.push(ConfigIssue::new(
                key("role_name"),
                format!(
                    "expected a role name (1 to 64 of letters, digits and +=,.@_-), found {r:?}"
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use revoke_core::keys::check_table;
    use serde_json::json;

    fn issues(v: Value) -> Vec<String> {
        let mut out = Vec::new();
        let keys: Vec<KeySpec> = ACCESS_KEYS.iter().chain(ACCOUNT_KEYS).copied().collect();
        if let Some(t) = check_table("connectors.aws", &v, &keys, &mut out) {
            validate_access("connectors.aws", t, true, &mut out);
        }
        out.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn accepts_a_plain_table_and_reads_defaults() {
        assert!(issues(json!({})).is_empty());
        let c = AccessConfig::from_table(&json!({"kind": "aws-iam", "other": 1})).expect("ok");
        assert_eq!(c.region, "us-east-1");
        assert_eq!(c.accounts, AccountSelection::Own);
        assert_eq!(c.role_name, DEFAULT_ROLE_NAME);
        let c = AccessConfig::from_table(&json!({"accounts": "organization"})).expect("ok");
        assert_eq!(c.accounts, AccountSelection::Organization);
        let c = AccessConfig::from_table(&json!({"accounts": ["111111111111"]})).expect("ok");
        assert_eq!(
            c.accounts,
            AccountSelection::Listed(vec!["111111111111".into()])
        );
    }

    #[test]
    fn names_each_bad_key() {
        assert_eq!(
            issues(json!({
                "endpoint_url": "localhost:5000",
                "region": "US East",
                "access_key_id": "AKIA",
                "accounts": ["1234", "../x"],
                "role_name": "*)(uid=*",
                "timeout_secs": 0,
            })),
            vec![
                "connectors.aws.endpoint_url: expected an http(s) url (it must start with https:// or http://), found \"localhost:5000\"",
                "connectors.aws.region: expected a region such as us-east-1, found \"US East\"",
                "connectors.aws.secret_access_key: missing; access_key_id needs secret_access_key (or leave both out for the default credential chain)",
                "connectors.aws.timeout_secs: expected at least 1 second, found 0",
                "connectors.aws.accounts: expected account ids of 12 digits, found \"1234\"",
                "connectors.aws.accounts: expected account ids of 12 digits, found \"../x\"",
                "connectors.aws.role_name: expected a role name (1 to 64 of letters, digits and +=,.@_-), found \"*)(uid=*\"",
            ]
        );
        assert_eq!(
            issues(json!({"secret_access_key": "s3cr3t-value", "accounts": "all"})),
            vec![
                "connectors.aws.access_key_id: missing; secret_access_key needs access_key_id",
                "connectors.aws.accounts: expected \"organization\", \"own\" or account ids (12 digits), found \"all\"",
            ]
        );
    }
}
