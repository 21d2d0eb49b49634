//! The `[connectors.<name>]` table of a GitHub instance, and its pure validation.

use std::collections::BTreeMap;
use std::time::Duration;

use revoke_core::keys::{check_table, url_problem, KeySpec, KeyType};
use revoke_core::ConfigIssue;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;

use crate::escape::is_login;

pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// How an org is scanned for the subjects of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscoveryMode {
    /// One paged GraphQL scan per org (members, teams, repositories with collaborators); REST
    /// where GraphQL has no field (invitations, credential authorizations, tokens), and REST
    /// for everything when GraphQL fails.
    #[default]
    Graphql,
    /// REST only (GitHub Enterprise Server without GraphQL, or to compare).
    Rest,
}

/// The typed config of one GitHub connector instance; build it only after `validate` passed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubConfig {
    #[serde(default, rename = "kind")]
    _kind: Option<serde::de::IgnoredAny>,
    #[serde(default = "default_api_url")]
    pub api_url: String,
    #[serde(default)]
    pub graphql_url: Option<String>,
    pub orgs: Vec<String>,
    #[serde(default)]
    pub token: Option<SecretString>,
    #[serde(default)]
    pub app_id: Option<u64>,
    #[serde(default)]
    pub private_key: Option<SecretString>,
    #[serde(default)]
    pub installation_id: Option<u64>,
    /// Email or subject id -> GitHub login, for people the org's SSO does not map.
    #[serde(default)]
    pub logins: BTreeMap<String, String>,
    #[serde(default)]
    pub match_subject_id: bool,
    #[serde(default)]
    pub saml_sso: bool,
    #[serde(default)]
    pub fine_grained_tokens: Option<bool>,
    #[serde(default)]
    pub remove_team_memberships: bool,
    #[serde(default = "default_true")]
    pub repository_invitations: bool,
    #[serde(default)]
    pub discovery: DiscoveryMode,
    #[serde(default = "default_spacing_ms")]
    pub mutation_spacing_ms: u64,
    #[serde(default = "default_read_concurrency")]
    pub read_concurrency: u64,
    #[serde(default = "default_secondary_wait")]
    pub secondary_limit_wait_secs: u64,
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_api_url() -> String {
    DEFAULT_API_URL.into()
}
fn default_true() -> bool {
    true
}
fn default_spacing_ms() -> u64 {
    1000
}
fn default_read_concurrency() -> u64 {
    8
}
fn default_secondary_wait() -> u64 {
    60
}
fn default_timeout_secs() -> u64 {
    30
}

impl GithubConfig {
    pub fn from_value(params: &Value) -> Result<Self, String> {
        serde_json::from_value(params.clone()).map_err(|e| e.to_string())
    }

    pub fn api_url(&self) -> &str {
        self.api_url.trim_end_matches('/')
    }

    /// GitHub's GraphQL endpoint: `/graphql` on github.com, `/api/graphql` on Enterprise Server.
    pub fn graphql_url(&self) -> String {
        if let Some(u) = &self.graphql_url {
            return u.trim_end_matches('/').to_string();
        }
        let api = self.api_url();
        match api.strip_suffix("/api/v3") {
            Some(host) => format!("{host}/api/graphql"),
            None => format!("{api}/graphql"),
        }
    }

    pub fn is_app(&self) -> bool {
        self.app_id.is_some()
    }

    /// Fine-grained tokens can only be listed and revoked by a GitHub App.
    pub fn fine_grained_tokens(&self) -> bool {
        self.fine_grained_tokens.unwrap_or(self.is_app())
    }

    pub fn mutation_spacing(&self) -> Duration {
        Duration::from_millis(self.mutation_spacing_ms)
    }

    pub fn secondary_limit_wait(&self) -> Duration {
        Duration::from_secs(self.secondary_limit_wait_secs)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

/// Every key the table may hold (`kind` is always allowed).
const KEYS: &[KeySpec] = &[
    KeySpec::optional("api_url", KeyType::Str),
    KeySpec::optional("graphql_url", KeyType::Str),
    KeySpec::required("orgs", KeyType::StrList),
    KeySpec::secret("token"),
    KeySpec::optional("app_id", KeyType::Int),
    KeySpec::secret("private_key"),
    KeySpec::optional("installation_id", KeyType::Int),
    KeySpec::optional("logins", KeyType::StrTable),
    KeySpec::optional("match_subject_id", KeyType::Bool),
    KeySpec::optional("saml_sso", KeyType::Bool),
    KeySpec::optional("fine_grained_tokens", KeyType::Bool),
    KeySpec::optional("remove_team_memberships", KeyType::Bool),
    KeySpec::optional("repository_invitations", KeyType::Bool),
    KeySpec::optional("discovery", KeyType::Str),
    KeySpec::optional("mutation_spacing_ms", KeyType::Int),
    KeySpec::optional("read_concurrency", KeyType::Int),
    KeySpec::optional("secondary_limit_wait_secs", KeyType::Int),
    KeySpec::optional("timeout_secs", KeyType::Int),
];

/// Checks the table without any I/O; every issue names its key under `path`.
pub fn validate(path: &str, params: &Value) -> Result<(), Vec<ConfigIssue>> {
    let mut issues = Vec::new();
    let key = |k: &str| format!("{path}.{k}");
    let Some(table) = check_table(path, params, KEYS, &mut issues) else {
        return Err(issues);
    };

    let s = |k: &str| table.get(k).and_then(Value::as_str);
    let n = |k: &str| table.get(k).and_then(Value::as_u64);
    let has = |k: &str| table.contains_key(k);

    for k in ["api_url", "graphql_url"] {
        if let Some(url) = s(k) {
            if let Some(problem) = url_problem(url) {
                issues.push(ConfigIssue::new(
                    key(k),
                    format!("expected an http(s) url ({problem}), found {url:?}"),
                ));
            }
        }
    }
    if let Some(orgs) = table.get("orgs").and_then(Value::as_array) {
        if orgs.is_empty() {
            issues.push(ConfigIssue::new(
                key("orgs"),
                "expected at least one organization, found an empty list",
            ));
        }
        for org in orgs.iter().filter_map(Value::as_str) {
            if !is_login(org) {
                issues.push(ConfigIssue::new(
                    key("orgs"),
                    format!("expected organization logins (letters, digits, single hyphens, at most 39), found {org:?}"),
                ));
            }
        }
    }

    // Exactly one way to authenticate.
    let app = has("app_id") || has("private_key") || has("installation_id");
    match (has("token"), app) {
        (true, true) => issues.push(ConfigIssue::new(
            key("token"),
            "expected either token or app_id + private_key + installation_id, found both",
        )),
        (false, false) => issues.push(ConfigIssue::new(
            key("token"),
            "expected a token (or app_id + private_key + installation_id for a GitHub App), found neither",
        )),
        (false, true) => {
            for k in ["app_id", "private_key", "installation_id"] {
                if !has(k) {
                    issues.push(ConfigIssue::new(
                        key(k),
                        "missing; a GitHub App needs app_id, private_key and installation_id",
                    ));
                }
            }
        }
        (true, false) => {}
    }
    if s("token") == Some("") {
        issues.push(ConfigIssue::new(
            key("token"),
            "expected a token, found an empty string",
        ));
    }
    if let Some(pem) = s("private_key") {
        if !pem.contains("-----BEGIN") || !pem.contains("PRIVATE KEY-----") {
            issues.push(ConfigIssue::new(
                key("private_key"),
                "expected the App's private key in PEM (-----BEGIN RSA PRIVATE KEY-----), found something else",
            ));
        }
    }
    if table.get("fine_grained_tokens").and_then(Value::as_bool) == Some(true) && !app {
        issues.push(ConfigIssue::new(
            key("fine_grained_tokens"),
            "only a GitHub App can list and revoke fine-grained tokens; expected app_id, found token auth",
        ));
    }
    if let Some(mode) = s("discovery") {
        if !["graphql", "rest"].contains(&mode) {
            issues.push(ConfigIssue::new(
                key("discovery"),
                format!("expected \"graphql\" or \"rest\", found {mode:?}"),
            ));
        }
    }
    if let Some(m) = table.get("logins").and_then(Value::as_object) {
        for (who, login) in m {
            if let Some(login) = login.as_str() {
                if !is_login(login) {
                    issues.push(ConfigIssue::new(
                        format!("{path}.logins.{who}"),
                        format!("expected a GitHub login (letters, digits, single hyphens, at most 39), found {login:?}"),
                    ));
                }
            }
        }
    }
    if let Some(c) = n("read_concurrency") {
        if !(1..=100).contains(&c) {
            issues.push(ConfigIssue::new(
                key("read_concurrency"),
                format!("expected 1 to 100 (GitHub allows 100 concurrent requests), found {c}"),
            ));
        }
    }
    if n("timeout_secs") == Some(0) {
        issues.push(ConfigIssue::new(
            key("timeout_secs"),
            "expected a positive number of seconds, found 0",
        ));
    }
    if issues.is_empty() {
        if let Err(e) = GithubConfig::from_value(params) {
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
        match validate("connectors.gh", &v) {
            Ok(()) => vec![],
            Err(i) => i.into_iter().map(|i| i.to_string()).collect(),
        }
    }

    #[test]
    fn a_minimal_token_config_is_valid_and_defaults_are_github_com() {
        let v = json!({"kind": "github", "orgs": ["acme"], "token": "ghp_x"});
        assert_eq!(issues(v.clone()), Vec::<String>::new());
        let cfg = GithubConfig::from_value(&v).expect("config");
        assert_eq!(cfg.graphql_url(), "https://api.github.com/graphql");
        assert_eq!(cfg.mutation_spacing(), Duration::from_secs(1));
        assert!(!cfg.fine_grained_tokens());
    }

    #[test]
    fn enterprise_server_graphql_lives_beside_the_rest_api() {
        let cfg = GithubConfig::from_value(&json!({
            "orgs": ["acme"], "token": "t", "api_url": "https://ghe.corp/api/v3/"
        }))
        .expect("config");
        assert_eq!(cfg.api_url(), "https://ghe.corp/api/v3");
        assert_eq!(cfg.graphql_url(), "https://ghe.corp/api/graphql");
    }

    #[test]
    fn every_problem_names_its_key_and_what_was_found() {
        let got = issues(json!({
            "orgs": ["acme", "../x"], "token": "t", "app_id": 1, "api_url": "ftp://x",
            "read_concurrency": 500, "discovery": "soap", "logins": {"a@b": "*)(uid=*"},
            "colour": "blue"
        }));
        let expect = [
            "connectors.gh.colour: unknown key",
            "connectors.gh.api_url: expected an http(s) url",
            "connectors.gh.orgs: expected organization logins",
            "connectors.gh.token: expected either token or app_id",
            "connectors.gh.read_concurrency: expected 1 to 100",
            "connectors.gh.discovery: expected \"graphql\" or \"rest\", found \"soap\"",
            "connectors.gh.logins.a@b: expected a GitHub login",
        ];
        for e in expect {
            assert!(got.iter().any(|g| g.starts_with(e)), "{e} not in {got:#?}");
        }
    }

    #[test]
    fn a_secret_of_the_wrong_type_is_not_echoed() {
        let got = issues(json!({"orgs": ["a"], "token": 12345}));
        assert_eq!(
            got,
            vec!["connectors.gh.token: expected a string, found a number"]
        );
    }

    #[test]
    fn an_app_needs_all_three_keys_and_a_pem() {
        let got = issues(json!({"orgs": ["a"], "app_id": 7, "private_key": "nope"}));
        assert!(got
            .iter()
            .any(|g| g.starts_with("connectors.gh.installation_id: missing")));
        assert!(got
            .iter()
            .any(|g| g.starts_with("connectors.gh.private_key: expected the App's private key")));
        let got = issues(json!({"orgs": ["a"], "token": "t", "fine_grained_tokens": true}));
        assert!(got[0].starts_with("connectors.gh.fine_grained_tokens: only a GitHub App"));
    }
}
