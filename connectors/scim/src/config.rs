//! The `[connectors.<name>]` table of a SCIM app, and its pure validation.

use std::fmt;
use std::time::Duration;

use revoke_core::keys::{check_table, describe, url_problem, KeySpec, KeyType};
use revoke_core::ConfigIssue;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;

/// One way a leaver's SCIM user is looked up, tried in the configured order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum MatchBy {
    /// `userName eq "<the subject's username for this instance>"`.
    #[serde(rename = "userName")]
    UserName,
    /// `emails.value eq "<the subject's email>"`.
    #[serde(rename = "emails")]
    Emails,
    /// The enterprise extension's `employeeNumber` (RFC 7643 §4.3), by the subject's employee id.
    #[serde(rename = "employeeNumber")]
    EmployeeNumber,
    /// `externalId eq "<the subject's employee id>"` (the id the provisioning client gave it).
    #[serde(rename = "externalId")]
    ExternalId,
}

impl MatchBy {
    pub const ALL: [MatchBy; 4] = [
        MatchBy::UserName,
        MatchBy::Emails,
        MatchBy::EmployeeNumber,
        MatchBy::ExternalId,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            MatchBy::UserName => "userName",
            MatchBy::Emails => "emails",
            MatchBy::EmployeeNumber => "employeeNumber",
            MatchBy::ExternalId => "externalId",
        }
    }

    /// The attribute path a filter compares.
    pub fn filter_attribute(&self) -> &'static str {
        match self {
            MatchBy::UserName => "userName",
            MatchBy::Emails => "emails.value",
            MatchBy::EmployeeNumber => {
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"
            }
            MatchBy::ExternalId => "externalId",
        }
    }
}

/// How a member is taken out of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberRemoval {
    /// `{"op":"remove","path":"members[value eq \"<value>\"]"}` (RFC 7644 §3.5.2.2): the server
    /// removes the one member from the group as it is then, losing no other change.
    #[default]
    Filter,
    /// `{"op":"replace","path":"members","value":[the others]}` with If-Match: for servers that
    /// support no value filter in a PATCH path (Canaille). A read-modify-write of the whole list,
    /// serialized per group within one connector instance.
    Replace,
}

impl MemberRemoval {
    pub fn as_str(&self) -> &'static str {
        match self {
            MemberRemoval::Filter => "filter",
            MemberRemoval::Replace => "replace",
        }
    }
}

/// The PATCH operation that sets `active` to false; some apps accept only one of the two forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeactivateForm {
    /// `{"op":"replace","path":"active","value":false}` (RFC 7644 §3.5.2.3).
    #[default]
    Path,
    /// `{"op":"replace","value":{"active":false}}`, for apps that refuse a path.
    Value,
}

impl DeactivateForm {
    pub fn as_str(&self) -> &'static str {
        match self {
            DeactivateForm::Path => "path",
            DeactivateForm::Value => "value",
        }
    }
}

impl fmt::Display for DeactivateForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The typed config of one SCIM app; build it only after `validate` passed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScimConfig {
    /// The connector type; the registry has chosen us by it already.
    #[serde(default, rename = "kind")]
    _kind: Option<serde::de::IgnoredAny>,
    /// The SCIM root, e.g. `https://api.example.com/scim/v2` (no trailing `/Users`).
    pub base_url: String,
    /// Bearer token; exclusive with `username` + `password`.
    #[serde(default)]
    pub token: Option<SecretString>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<SecretString>,
    #[serde(default = "default_match_by", deserialize_with = "one_or_many")]
    pub match_by: Vec<MatchBy>,
    #[serde(default)]
    pub deactivate_form: DeactivateForm,
    #[serde(default)]
    pub member_removal: MemberRemoval,
    /// The `count` sent with list requests; 0 sends none and takes the server's pages (Canaille
    /// answers 500 to any `count`).
    #[serde(default = "default_page_size")]
    pub page_size: usize,
    #[serde(default = "default_true")]
    pub delete_users: bool,
    #[serde(default = "default_true")]
    pub groups: bool,
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    #[serde(default = "default_read_concurrency")]
    pub read_concurrency: usize,
}

fn default_match_by() -> Vec<MatchBy> {
    MatchBy::ALL.to_vec()
}
fn default_page_size() -> usize {
    100
}
fn default_true() -> bool {
    true
}
fn default_timeout_secs() -> u64 {
    10
}
fn default_read_concurrency() -> usize {
    4
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<MatchBy>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(MatchBy),
        Many(Vec<MatchBy>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(m) => vec![m],
        OneOrMany::Many(v) => v,
    })
}

impl ScimConfig {
    /// Parses a table that `validate` accepted.
    pub fn from_value(params: &Value) -> Result<Self, String> {
        serde_json::from_value(params.clone()).map_err(|e| e.to_string())
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// `base_url` without its trailing slashes, so paths join with one `/`.
    pub fn root(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }
}

const MAX_TIMEOUT_SECS: u64 = 300;
const MAX_READ_CONCURRENCY: u64 = 64;
const MAX_PAGE_SIZE: u64 = 1000;

/// Every key the table may hold (`kind` is always allowed).
const KEYS: &[KeySpec] = &[
    KeySpec::required("base_url", KeyType::Str),
    KeySpec::secret("token"),
    KeySpec::optional("username", KeyType::Str),
    KeySpec::secret("password"),
    KeySpec::optional("match_by", KeyType::StrOrList),
    KeySpec::optional("deactivate_form", KeyType::Str),
    KeySpec::optional("member_removal", KeyType::Str),
    KeySpec::optional("page_size", KeyType::Int),
    KeySpec::optional("delete_users", KeyType::Bool),
    KeySpec::optional("groups", KeyType::Bool),
    KeySpec::optional("timeout_secs", KeyType::Int),
    KeySpec::optional("read_concurrency", KeyType::Int),
];

/// Checks the table without any I/O and returns every issue, each naming its key under `path`.
pub fn validate(path: &str, params: &Value) -> Result<(), Vec<ConfigIssue>> {
    let mut issues = Vec::new();
    let key = |k: &str| format!("{path}.{k}");
    let Some(table) = check_table(path, params, KEYS, &mut issues) else {
        return Err(issues);
    };
    let s = |k: &str| table.get(k).and_then(Value::as_str);
    let n = |k: &str| table.get(k).and_then(Value::as_u64);

    if let Some(url) = s("base_url") {
        if let Some(problem) = url_problem(url) {
            issues.push(ConfigIssue::new(
                key("base_url"),
                format!("expected the SCIM root as an http(s) url ({problem}), found {url:?}"),
            ));
        } else {
            let trimmed = url.trim_end_matches('/');
            for tail in ["/Users", "/Groups", "/ServiceProviderConfig"] {
                if trimmed.ends_with(tail) {
                    issues.push(ConfigIssue::new(
                        key("base_url"),
                        format!("expected the SCIM root without {tail} (it is added per request), found {url:?}"),
                    ));
                }
            }
        }
    }

    // Exactly one way to authenticate: a bearer token, or username + password (basic).
    let (token, user, pass) = (s("token"), s("username"), s("password"));
    if token == Some("") {
        issues.push(ConfigIssue::new(
            key("token"),
            "expected a bearer token, found an empty string",
        ));
    }
    if pass == Some("") {
        issues.push(ConfigIssue::new(
            key("password"),
            "expected a password, found an empty string",
        ));
    }
    if user == Some("") {
        issues.push(ConfigIssue::new(
            key("username"),
            "expected a user name for basic auth, found \"\"",
        ));
    }
    let has = |k: &str| table.contains_key(k);
    match (has("token"), has("username"), has("password")) {
        (true, true, _) | (true, _, true) => issues.push(ConfigIssue::new(
            key("token"),
            "expected either token (bearer) or username + password (basic), found both",
        )),
        (false, false, false) => issues.push(ConfigIssue::new(
            key("token"),
            "missing; expected token (bearer) or username + password (basic), found neither",
        )),
        (false, true, false) => issues.push(ConfigIssue::new(
            key("password"),
            "missing; required with username (basic auth)",
        )),
        (false, false, true) => issues.push(ConfigIssue::new(
            key("username"),
            "missing; required with password (basic auth)",
        )),
        _ => {}
    }

    if let Some(v) = table.get("match_by") {
        let values: Vec<&Value> = match v {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        if values.is_empty() {
            issues.push(ConfigIssue::new(
                key("match_by"),
                "expected some of userName, emails, employeeNumber, externalId, found an empty list",
            ));
        }
        let mut seen = Vec::new();
        for v in values {
            match v.as_str() {
                Some(m @ ("userName" | "emails" | "employeeNumber" | "externalId")) => {
                    if seen.contains(&m) {
                        issues.push(ConfigIssue::new(
                            key("match_by"),
                            format!("expected each lookup at most once, found {m:?} twice"),
                        ));
                    }
                    seen.push(m);
                }
                Some(_) => issues.push(ConfigIssue::new(
                    key("match_by"),
                    format!(
                        "expected userName, emails, employeeNumber or externalId, found {}",
                        describe(v)
                    ),
                )),
                // check_table has reported the type already.
                None => {}
            }
        }
    }

    if let Some(form) = s("deactivate_form") {
        if !matches!(form, "path" | "value") {
            issues.push(ConfigIssue::new(
                key("deactivate_form"),
                format!("expected path or value, found {form:?}"),
            ));
        }
    }
    if let Some(form) = s("member_removal") {
        if !matches!(form, "filter" | "replace") {
            issues.push(ConfigIssue::new(
                key("member_removal"),
                format!("expected filter or replace, found {form:?}"),
            ));
        }
    }
    if let Some(p) = n("page_size") {
        if p > MAX_PAGE_SIZE {
            issues.push(ConfigIssue::new(
                key("page_size"),
                format!("expected 0 (send no count) to {MAX_PAGE_SIZE}, found {p}"),
            ));
        }
    }
    if let Some(t) = n("timeout_secs") {
        if !(1..=MAX_TIMEOUT_SECS).contains(&t) {
            issues.push(ConfigIssue::new(
                key("timeout_secs"),
                format!("expected 1 to {MAX_TIMEOUT_SECS} seconds, found {t}"),
            ));
        }
    }
    if let Some(c) = n("read_concurrency") {
        if !(1..=MAX_READ_CONCURRENCY).contains(&c) {
            issues.push(ConfigIssue::new(
                key("read_concurrency"),
                format!("expected 1 to {MAX_READ_CONCURRENCY} concurrent reads, found {c}"),
            ));
        }
    }

    issues.sort_by(|a, b| a.path.cmp(&b.path));
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

    fn messages(v: Value) -> Vec<String> {
        match validate("connectors.app", &v) {
            Ok(()) => vec![],
            Err(issues) => issues.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn minimal_config_is_valid_and_parses_with_defaults() {
        let v = json!({"kind": "scim", "base_url": "https://x.example/scim/v2/", "token": "s3cret-token"});
        assert_eq!(messages(v.clone()), Vec::<String>::new());
        let c = ScimConfig::from_value(&v).expect("parses");
        assert_eq!(c.match_by, MatchBy::ALL);
        assert_eq!(
            (c.member_removal, c.page_size),
            (MemberRemoval::Filter, 100)
        );
        assert_eq!(c.deactivate_form, DeactivateForm::Path);
        assert!(c.delete_users && c.groups);
        assert_eq!((c.timeout_secs, c.read_concurrency), (10, 4));
        assert_eq!(c.root(), "https://x.example/scim/v2");
        assert!(!format!("{c:?}").contains("s3cret"));
        let c = ScimConfig::from_value(&json!({
            "base_url": "http://h/v2", "username": "u", "password": "p", "match_by": "emails",
            "deactivate_form": "value",
        }))
        .expect("parses");
        assert_eq!(c.match_by, [MatchBy::Emails]);
        assert_eq!(c.deactivate_form, DeactivateForm::Value);
    }

    #[test]
    fn every_problem_names_key_expected_and_found() {
        assert_eq!(
            messages(json!({
                "base_url": "ftp://x", "token": "t", "password": "p", "match_by": ["userName", "mail", "userName"],
                "deactivate_form": "soft", "timeout_secs": 0, "read_concurrency": 500,
                "member_removal": "put", "page_size": 5000,
            })),
            vec![
                "connectors.app.base_url: expected the SCIM root as an http(s) url (it must start with https:// or http://), found \"ftp://x\"",
                "connectors.app.deactivate_form: expected path or value, found \"soft\"",
                "connectors.app.match_by: expected userName, emails, employeeNumber or externalId, found \"mail\"",
                "connectors.app.match_by: expected each lookup at most once, found \"userName\" twice",
                "connectors.app.member_removal: expected filter or replace, found \"put\"",
                "connectors.app.page_size: expected 0 (send no count) to 1000, found 5000",
                "connectors.app.read_concurrency: expected 1 to 64 concurrent reads, found 500",
                "connectors.app.timeout_secs: expected 1 to 300 seconds, found 0",
                "connectors.app.token: expected either token (bearer) or username + password (basic), found both",
            ]
        );
        assert_eq!(
            messages(json!({"base_url": "https://x/scim/v2/Users"})),
            vec![
                "connectors.app.base_url: expected the SCIM root without /Users (it is added per request), found \"https://x/scim/v2/Users\"",
                "connectors.app.token: missing; expected token (bearer) or username + password (basic), found neither",
            ]
        );
        assert_eq!(
            messages(json!({"base_url": "https://x", "username": "u", "match_by": []})),
            vec![
                "connectors.app.match_by: expected some of userName, emails, employeeNumber, externalId, found an empty list",
                "connectors.app.password: missing; required with username (basic auth)",
            ]
        );
    }

    #[test]
    fn never_echoes_a_secret() {
        let m = messages(json!({"base_url": "https://x", "token": ["hunter2"]}));
        assert_eq!(
            m,
            vec!["connectors.app.token: expected a string, found a list"]
        );
        let m = messages(json!({"base_url": "https://x", "token": ""}));
        assert_eq!(
            m,
            vec!["connectors.app.token: expected a bearer token, found an empty string"]
        );
    }
}
