//! The `[connectors.<name>]` table of an Okta org, and its pure validation.
//!
//! Exactly one of two credentials:
//! - an API token: `token`, or in production `token_file` (the config layer reads the file into
//!   `token`), sent as `Authorization: SSWS <token>`;
//! - an OAuth 2.0 service app: `client_id`, its RSA key `private_key` (PKCS#8 PEM; in production
//!   `private_key_file`), `key_id` (the key's `kid` in Okta), `scopes` (by default the least the
//!   enabled features need), and `dpop` (default true: Okta's new service apps require DPoP).

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
    /// An SSWS API token (or the OAuth keys below, never both).
    #[serde(default)]
    pub token: Option<SecretString>,
    /// The OAuth 2.0 service app's client id (`0oa...`).
    #[serde(default)]
    pub client_id: Option<String>,
    /// The service app's RSA private key, PKCS#8 PEM.
    #[serde(default)]
    pub private_key: Option<SecretString>,
    /// The key's id (`kid`) as Okta lists it on the app.
    #[serde(default)]
    pub key_id: Option<String>,
    /// The scopes to ask for; by default [`OktaConfig::default_scopes`].
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Ask for DPoP-bound tokens (RFC 9449): the default of Okta's new service apps.
    #[serde(default = "default_true")]
    pub dpop: bool,
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

    /// The least the enabled features need: `okta.users.manage` (lifecycle, sessions, factors,
    /// grants), and `okta.groups.manage`, `okta.apps.manage`, `okta.roles.manage` for the removals
    /// that are on (discovery reads nothing of a part that is off).
    pub fn default_scopes(&self) -> Vec<String> {
        let mut s = vec!["okta.users.manage".to_string()];
        for (on, scope) in [
            (self.remove_groups, "okta.groups.manage"),
            (self.remove_apps, "okta.apps.manage"),
            (self.remove_admin_roles, "okta.roles.manage"),
        ] {
            if on {
                s.push(scope.to_string());
            }
        }
        s
    }

    /// The scopes the service app asks for.
    pub fn scopes(&self) -> Vec<String> {
        self.scopes.clone().unwrap_or_else(|| self.default_scopes())
    }

    /// The org authorization server's token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/oauth2/v1/token", self.base_url())
    }

    pub fn retention(&self) -> Option<Duration> {
        (self.retention_days > 0).then(|| Duration::from_secs(self.retention_days * 86_400))
    }
}

/// Every key the table may hold (`kind` is always allowed).
const KEYS: &[KeySpec] = &[
    KeySpec::required("org_url", KeyType::Str),
    KeySpec::secret("token"),
    KeySpec::optional("client_id", KeyType::Str),
    KeySpec::secret("private_key"),
    KeySpec::optional("key_id", KeyType::Str),
    KeySpec::optional("scopes", KeyType::StrList),
    KeySpec::optional("dpop", KeyType::Bool),
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
    match (table.get("token").is_some(), table.get("client_id").is_some()) {
        (true, true) => issues.push(ConfigIssue::new(
            key("client_id"),
            "expected either token (SSWS) or client_id with private_key (OAuth service app), found both",
        )),
        (false, false) => issues.push(ConfigIssue::new(
            key("token"),
            "expected token (or token_file), or client_id with private_key (or private_key_file), found neither",
        )),
        _ => {}
    }
    if let Some(id) = s("client_id") {
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            issues.push(ConfigIssue::new(
                key("client_id"),
                format!("expected the service app's client id (letters and digits, as 0oa...), found {id:?}"),
            ));
        }
        match s("private_key") {
            None => issues.push(ConfigIssue::new(
                key("private_key"),
                "expected the service app's RSA private key (PKCS#8 PEM; private_key_file in production) with client_id, found none",
            )),
            Some(pem) => {
                if let Err(e) = revoke_http::jwt::Rs256::from_pkcs8_pem(pem) {
                    issues.push(ConfigIssue::new(key("private_key"), e.to_string()));
                }
            }
        }
    } else {
        for k in ["private_key", "key_id", "scopes", "dpop"] {
            if table.get(k).is_some() {
                issues.push(ConfigIssue::new(
                    key(k),
                    "expected only with client_id (an OAuth service app)",
                ));
            }
        }
    }
    if let Some(kid) = s("key_id") {
        if kid.is_empty() || kid.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            issues.push(ConfigIssue::new(
                key("key_id"),
                format!("expected the key's id as Okta lists it, found {kid:?}"),
            ));
        }
    }
    if let Some(list) = table.get("scopes").and_then(Value::as_array) {
        let bad: Vec<&str> = list
            .iter()
            .filter_map(Value::as_str)
            .filter(|sc| {
                !sc.starts_with("okta.")
                    || sc
                        .bytes()
                        .any(|b| !(b.is_ascii_alphanumeric() || b == b'.'))
            })
            .collect();
        if list.is_empty() || !bad.is_empty() {
            issues.push(ConfigIssue::new(
                key("scopes"),
                format!("expected Okta API scopes such as \"okta.users.manage\", found {bad:?}"),
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

    fn rsa_pem() -> String {
        let out = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .output()
            .expect("openssl is needed to make a test key (apt-get install openssl)");
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn exactly_one_credential_and_the_oauth_keys_only_with_client_id() {
        let pem = rsa_pem();
        let ok = json!({"org_url": "https://a.okta.com", "client_id": "0oa1", "private_key": pem,
            "key_id": "k1"});
        assert_eq!(issues(ok.clone()), Vec::<String>::new());
        let cfg = OktaConfig::from_value(&ok).expect("config");
        assert!(cfg.dpop, "dpop by default");
        assert_eq!(
            cfg.scopes(),
            [
                "okta.users.manage",
                "okta.groups.manage",
                "okta.apps.manage",
                "okta.roles.manage"
            ]
        );
        assert_eq!(cfg.token_url(), "https://a.okta.com/oauth2/v1/token");
        let cfg = OktaConfig::from_value(
            &json!({"org_url": "https://a.okta.com", "client_id": "0oa1",
            "private_key": "x", "remove_apps": false, "remove_admin_roles": false}),
        )
        .expect("config");
        assert_eq!(cfg.scopes(), ["okta.users.manage", "okta.groups.manage"]);

        let cases = [
            (
                json!({"org_url": "https://a.okta.com", "token": "t", "client_id": "0oa1", "private_key": pem}),
                "connectors.okta.client_id: expected either token (SSWS) or client_id",
            ),
            (
                json!({"org_url": "https://a.okta.com"}),
                "connectors.okta.token: expected token (or token_file), or client_id",
            ),
            (
                json!({"org_url": "https://a.okta.com", "client_id": "0oa1"}),
                "connectors.okta.private_key: expected the service app's RSA private key",
            ),
            (
                json!({"org_url": "https://a.okta.com", "client_id": "0oa1", "private_key": "-----BEGIN PRIVATE KEY-----\nhunter2!\n-----END PRIVATE KEY-----"}),
                "connectors.okta.private_key: the key's pem body is not base64",
            ),
            (
                json!({"org_url": "https://a.okta.com", "token": "t", "key_id": "k"}),
                "connectors.okta.key_id: expected only with client_id",
            ),
            (
                json!({"org_url": "https://a.okta.com", "client_id": "0oa 1", "private_key": pem}),
                "connectors.okta.client_id: expected the service app's client id",
            ),
            (
                json!({"org_url": "https://a.okta.com", "client_id": "0oa1", "private_key": pem, "scopes": ["okta.users.manage", "openid"]}),
                "connectors.okta.scopes: expected Okta API scopes",
            ),
        ];
        for (v, want) in cases {
            let got = issues(v);
            assert!(
                got.iter().any(|g| g.starts_with(want)),
                "{want} not in {got:#?}"
            );
            assert!(
                !got.concat().contains("hunter2") && !got.concat().contains("PRIVATE"),
                "{got:?}"
            );
        }
    }
}
