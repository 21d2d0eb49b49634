//! The `[connectors.<name>]` table of an Okta org, and its pure validation.
//!
//! The API token is a secret: `token`, or in production `token_file` (the config layer reads the
//! file into `token`). It is sent as `Authorization: SSWS <token>`. OAuth 2.0 service apps
//! (private_key_jwt) are not supported yet.

use std::time::Duration;

use revoke_core::keys::{check_table, url_problem, KeySpec, KeyType};
use revoke_core::ConfigIssue;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;

/// What contain does to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Contain {
    /// `lifecycle/suspend`: reversible (`unsuspend`); apps stay assigned.
    #[default]
    Suspend,
    /// `lifecycle/deactivate`: deprovisions the user from every app; cannot be undone.
    Deactivate,
}

/// The typed config of one Okta connector instance; build it only after `validate` passed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OktaConfig {
    #[serde(default, rename = "kind")]
    _kind: Option<serde::de::IgnoredAny>,
    /// `https://acme.okta.com` (or any base URL: tests, proxies).
    pub org_url: String,
    /// An SSWS API token.
    pub token: SecretString,
    #[serde(default)]
    pub contain: Contain,
    /// The profile attribute holding the employee id (Okta's default: `employeeNumber`).
    #[serde(default = "default_employee_attr")]
    pub employee_number_attribute: String,
    #[serde(default = "default_true")]
    pub remove_groups: bool,
    #[serde(default = "default_true")]
    pub remove_apps: bool,
    #[serde(default = "default_true")]
    pub remove_admin_roles: bool,
    /// Reset every enrolled factor (`lifecycle/reset_factors`).
    #[serde(default = "default_true")]
    pub reset_factors: bool,
    /// Revoke every OAuth consent grant the user gave (`DELETE .../grants`).
    #[serde(default = "default_true")]
    pub revoke_grants: bool,
    #[serde(default = "default_true")]
    pub delete_users: bool,
    /// Days between the last revoke and the delete (0: at once).
    #[serde(default)]
    pub retention_days: u64,
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_true() -> bool {
    true
}
fn default_timeout_secs() -> u64 {
    30
}
fn default_employee_attr() -> String {
    "employeeNumber".to_string()
}

impl OktaConfig {
    pub fn from_value(params: &Value) -> Result<Self, String> {
        serde_json::from_value(params.clone()).map_err(|e| e.to_string())
    }

    /// The org URL without a trailing slash.
    pub fn base_url(&self) -> String {
        self.org_url.trim_end_matches('/').to_string()
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    pub fn retention(&self) -> Option<Duration> {
        (self.retention_days > 0).then(|| Duration::from_secs(self.retention_days * 86_400))
    }
}

/// Every key the table may hold (`kind` is always allowed).
const KEYS: &[KeySpec] = &[
    KeySpec::required("org_url", KeyType::Str),
    KeySpec::required_secret("token"),
    KeySpec::optional("contain", KeyType::Str),
    KeySpec::optional("employee_number_attribute", KeyType::Str),
    KeySpec::optional("remove_groups", KeyType::Bool),
    KeySpec::optional("remove_apps", KeyType::Bool),
    KeySpec::optional("remove_admin_roles", KeyType::Bool),
    KeySpec::optional("reset_factors", KeyType::Bool),
    KeySpec::optional("revoke_grants", KeyType::Bool),
    KeySpec::optional("delete_users", KeyType::Bool),
    KeySpec::optional("retention_days", KeyType::Int),
    KeySpec::optional("timeout_secs", KeyType::Int),
];

/// An Okta profile attribute name: a letter, then letters, digits or `_`.
fn is_attribute(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
        && s.len() <= 64
}

/// Checks the table without any I/O; every issue names its key under `path`.
pub fn validate(path: &str, params: &Value) -> Result<(), Vec<ConfigIssue>> {
    let mut issues = Vec::new();
    let key = |k: &str| format!("{path}.{k}");
    let Some(table) = check_table(path, params, KEYS, &mut issues) else {
        return Err(issues);
    };
    let s = |k: &str| table.get(k).and_then(Value::as_str);

    if let Some(url) = s("org_url") {
        if let Some(problem) = url_problem(url) {
            issues.push(ConfigIssue::new(
                key("org_url"),
                format!("expected the org's http(s) url such as https://acme.okta.com ({problem}), found {url:?}"),
            ));
        } else if url.trim_end_matches('/').contains("/api/") || url.contains('?') {
            issues.push(ConfigIssue::new(
                key("org_url"),
                format!(
                    "expected the org's url without a path (https://acme.okta.com), found {url:?}"
                ),
            ));
        }
    }
    if let Some(t) = s("token") {
        if t.trim().is_empty() {
            issues.push(ConfigIssue::new(
                key("token"),
                "expected an Okta API token (SSWS), found an empty string",
            ));
        } else if t.trim().len() != t.len() || t.bytes().any(|b| b.is_ascii_control()) {
            issues.push(ConfigIssue::new(
                key("token"),
                "expected an Okta API token (SSWS), found one with spaces or control characters around or in it",
            ));
        }
    }
    if let Some(c) = s("contain") {
        if !["suspend", "deactivate"].contains(&c) {
            issues.push(ConfigIssue::new(
                key("contain"),
                format!("expected \"suspend\" or \"deactivate\", found {c:?}"),
            ));
        }
    }
    if let Some(a) = s("employee_number_attribute") {
        if !is_attribute(a) {
            issues.push(ConfigIssue::new(
                key("employee_number_attribute"),
                format!(
                    "expected an Okta profile attribute name (letters, digits, _), found {a:?}"
                ),
            ));
        }
    }
    for (k, lo, hi, what) in [
        ("timeout_secs", 1, 600, "seconds"),
        ("retention_days", 0, 36_500, "days"),
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
        if let Err(e) = OktaConfig::from_value(params) {
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
    use serde_json::json;

    use super::*;

    fn issues(v: Value) -> Vec<String> {
        match validate("connectors.okta", &v) {
            Ok(()) => vec![],
            Err(i) => i.into_iter().map(|i| i.to_string()).collect(),
        }
    }

    #[test]
    fn a_minimal_config_is_valid_with_safe_defaults() {
        let v = json!({"kind": "okta", "org_url": "https://acme.okta.com/", "token": "00abc"});
        assert_eq!(issues(v.clone()), Vec::<String>::new());
        let cfg = OktaConfig::from_value(&v).expect("config");
        assert_eq!(cfg.base_url(), "https://acme.okta.com");
        assert_eq!(cfg.contain, Contain::Suspend);
        assert_eq!(cfg.employee_number_attribute, "employeeNumber");
        assert!(cfg.remove_groups && cfg.remove_apps && cfg.remove_admin_roles && cfg.delete_users);
        assert_eq!(cfg.retention(), None);
        let cfg = OktaConfig::from_value(&json!({"org_url": "https://a.okta.com", "token": "t",
            "contain": "deactivate", "retention_days": 30}))
        .expect("config");
        assert_eq!(cfg.contain, Contain::Deactivate);
        assert_eq!(cfg.retention(), Some(Duration::from_secs(30 * 86_400)));
    }

    #[test]
    fn every_problem_names_its_key_and_what_was_found() {
        let got = issues(json!({
            "org_url": "ftp://acme.okta.com", "token": " 00abc ", "contain": "lock",
            "employee_number_attribute": "profile.x", "timeout_secs": 0,
            "retention_days": -1, "colour": 1
        }));
        let expect = [
            "connectors.okta.colour: unknown key",
            "connectors.okta.org_url: expected the org's http(s) url",
            "connectors.okta.token: expected an Okta API token (SSWS), found one with spaces",
            "connectors.okta.contain: expected \"suspend\" or \"deactivate\", found \"lock\"",
            "connectors.okta.employee_number_attribute: expected an Okta profile attribute name",
            "connectors.okta.timeout_secs: expected 1 to 600 seconds, found 0",
            "connectors.okta.retention_days: expected 0 to 36500 days, found -1",
        ];
        for e in expect {
            assert!(got.iter().any(|g| g.starts_with(e)), "{e} not in {got:#?}");
        }
        let got = issues(json!({"org_url": "https://acme.okta.com/api/v1", "token": ""}));
        assert!(
            got.iter()
                .any(|g| g
                    .starts_with("connectors.okta.org_url: expected the org's url without a path")),
            "{got:?}"
        );
        assert!(
            got.iter().any(|g| g.starts_with(
                "connectors.okta.token: expected an Okta API token (SSWS), found an empty string"
            )),
            "{got:?}"
        );
        let got = issues(json!({"org_url": "https://acme.okta.com"}));
        assert!(
            got.iter().any(|g| g.starts_with("connectors.okta.token")),
            "{got:?}"
        );
        assert!(
            !issues(json!({"org_url": "https://a.okta.com", "token": ["hunter2"]}))
                .concat()
                .contains("hunter2")
        );
    }
}
