//! The `[connectors.<name>]` table of a OneLogin account, and its pure validation.

use std::time::Duration;

use revoke_core::keys::{check_table, url_problem, KeySpec, KeyType};
use revoke_core::ConfigIssue;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;

/// How a subject is found in OneLogin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchBy {
    /// The subject's email (or its id when that is an email).
    #[default]
    Email,
    /// The subject's username for this instance (`usernames.<instance>`, else its id).
    Username,
}

/// The typed config of one OneLogin connector instance; build it only after `validate` passed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneLoginConfig {
    #[serde(default, rename = "kind")]
    _kind: Option<serde::de::IgnoredAny>,
    /// `us` or `eu`: `https://api.<region>.onelogin.com`.
    #[serde(default)]
    pub region: Option<String>,
    /// The account's subdomain: `https://<subdomain>.onelogin.com`.
    #[serde(default)]
    pub subdomain: Option<String>,
    /// Any base URL (tests, proxies).
    #[serde(default)]
    pub base_url: Option<String>,
    pub client_id: String,
    pub client_secret: SecretString,
    #[serde(default)]
    pub match_by: MatchBy,
    #[serde(default = "default_true")]
    pub delete_users: bool,
    #[serde(default = "default_true")]
    pub remove_roles: bool,
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_true() -> bool {
    true
}
fn default_timeout_secs() -> u64 {
    30
}

impl OneLoginConfig {
    pub fn from_value(params: &Value) -> Result<Self, String> {
        serde_json::from_value(params.clone()).map_err(|e| e.to_string())
    }

    /// The API's base URL, without a trailing slash.
    pub fn base_url(&self) -> String {
        if let Some(u) = &self.base_url {
            return u.trim_end_matches('/').to_string();
        }
        if let Some(s) = &self.subdomain {
            return format!("https://{s}.onelogin.com");
        }
        let region = self.region.as_deref().unwrap_or("us");
        format!("https://api.{region}.onelogin.com")
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

/// Every key the table may hold (`kind` is always allowed).
const KEYS: &[KeySpec] = &[
    KeySpec::optional("region", KeyType::Str),
    KeySpec::optional("subdomain", KeyType::Str),
    KeySpec::optional("base_url", KeyType::Str),
    KeySpec::required("client_id", KeyType::Str),
    KeySpec::required_secret("client_secret"),
    KeySpec::optional("match_by", KeyType::Str),
    KeySpec::optional("delete_users", KeyType::Bool),
    KeySpec::optional("remove_roles", KeyType::Bool),
    KeySpec::optional("timeout_secs", KeyType::Int),
];

/// A OneLogin subdomain: letters, digits and inner hyphens, at most 63.
fn is_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Checks the table without any I/O; every issue names its key under `path`.
pub fn validate(path: &str, params: &Value) -> Result<(), Vec<ConfigIssue>> {
    let mut issues = Vec::new();
    let key = |k: &str| format!("{path}.{k}");
    let Some(table) = check_table(path, params, KEYS, &mut issues) else {
        return Err(issues);
    };
    let s = |k: &str| table.get(k).and_then(Value::as_str);

    let places: Vec<&str> = ["region", "subdomain", "base_url"]
        .into_iter()
        .filter(|k| table.contains_key(*k))
        .collect();
    match places.len() {
        0 => issues.push(ConfigIssue::new(
            key("region"),
            "expected one of region (\"us\" or \"eu\"), subdomain or base_url, found none",
        )),
        1 => {}
        _ => issues.push(ConfigIssue::new(
            key(places[1]),
            format!(
                "expected only one of region, subdomain or base_url, found {}",
                places.join(" and ")
            ),
        )),
    }
    if let Some(r) = s("region") {
        if !["us", "eu"].contains(&r) {
            issues.push(ConfigIssue::new(
                key("region"),
                format!("expected \"us\" or \"eu\", found {r:?}"),
            ));
        }
    }
    if let Some(sub) = s("subdomain") {
        if !is_subdomain(sub) {
            issues.push(ConfigIssue::new(
                key("subdomain"),
                format!("expected the account's subdomain (letters, digits, hyphens; `acme` of acme.onelogin.com), found {sub:?}"),
            ));
        }
    }
    if let Some(url) = s("base_url") {
        if let Some(problem) = url_problem(url) {
            issues.push(ConfigIssue::new(
                key("base_url"),
                format!("expected an http(s) url ({problem}), found {url:?}"),
            ));
        }
    }
    if s("client_id").is_some_and(|c| c.trim().is_empty()) {
        issues.push(ConfigIssue::new(
            key("client_id"),
            "expected the API credential's client id, found an empty string",
        ));
    }
    if s("client_secret").is_some_and(|c| c.trim().is_empty()) {
        issues.push(ConfigIssue::new(
            key("client_secret"),
            "expected the API credential's client secret, found an empty string",
        ));
    }
    if let Some(m) = s("match_by") {
        if !["email", "username"].contains(&m) {
            issues.push(ConfigIssue::new(
                key("match_by"),
                format!("expected \"email\" or \"username\", found {m:?}"),
            ));
        }
    }
    if let Some(t) = table.get("timeout_secs").and_then(Value::as_u64) {
        if !(1..=600).contains(&t) {
            issues.push(ConfigIssue::new(
                key("timeout_secs"),
                format!("expected 1 to 600 seconds, found {t}"),
            ));
        }
    }
    if issues.is_empty() {
        if let Err(e) = OneLoginConfig::from_value(params) {
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
        match validate("connectors.ol", &v) {
            Ok(()) => vec![],
            Err(i) => i.into_iter().map(|i| i.to_string()).collect(),
        }
    }

    #[test]
    fn a_minimal_config_is_valid_and_picks_the_regional_api() {
        let v = json!({"kind": "onelogin", "region": "eu", "client_id": "i", "client_secret": "s"});
        assert_eq!(issues(v.clone()), Vec::<String>::new());
        let cfg = OneLoginConfig::from_value(&v).expect("config");
        assert_eq!(cfg.base_url(), "https://api.eu.onelogin.com");
        assert!(cfg.delete_users && cfg.remove_roles);
        assert_eq!(cfg.match_by, MatchBy::Email);
        let cfg = OneLoginConfig::from_value(
            &json!({"subdomain": "acme", "client_id": "i", "client_secret": "s"}),
        )
        .expect("config");
        assert_eq!(cfg.base_url(), "https://acme.onelogin.com");
    }

    #[test]
    fn every_problem_names_its_key_and_what_was_found() {
        let got = issues(json!({
            "region": "apac", "subdomain": "../x", "client_id": "",
            "client_secret": 5, "match_by": "phone", "timeout_secs": 0, "colour": 1
        }));
        let expect = [
            "connectors.ol.colour: unknown key",
            "connectors.ol.client_secret: expected a string, found a number",
            "connectors.ol.subdomain: expected only one of region, subdomain or base_url",
            "connectors.ol.region: expected \"us\" or \"eu\", found \"apac\"",
            "connectors.ol.subdomain: expected the account's subdomain",
            "connectors.ol.client_id: expected the API credential's client id",
            "connectors.ol.match_by: expected \"email\" or \"username\", found \"phone\"",
            "connectors.ol.timeout_secs: expected 1 to 600 seconds, found 0",
        ];
        for e in expect {
            assert!(got.iter().any(|g| g.starts_with(e)), "{e} not in {got:#?}");
        }
        let got = issues(json!({"client_id": "i", "client_secret": "hunter2"}));
        assert_eq!(
            got,
            vec!["connectors.ol.region: expected one of region (\"us\" or \"eu\"), subdomain or base_url, found none"]
        );
        assert!(!issues(json!({"client_secret": ["hunter2"]}))
            .concat()
            .contains("hunter2"));
    }
}
