//! The `[connectors.<name>]` table of an LDAP instance, and its pure validation.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use revoke_core::keys::{check_table, KeySpec, KeyType};
use revoke_core::ConfigIssue;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;

use revoke_core::dn::{dn_problem, is_attribute_name, is_under, same_dn};

/// How a leaver's entry is made unusable before anything is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockMethod {
    /// `pwdAccountLockedTime: 000001010000Z` (OpenLDAP ppolicy overlay): binds fail with 49.
    #[default]
    Ppolicy,
    /// Replace `lock_attribute` with `lock_value` (389 DS `nsAccountLock`, a custom attribute).
    Attribute,
    /// Move the entry under `disabled_base_dn`, keeping its RDN; the directory's ACLs must deny
    /// authentication there.
    Move,
}

impl LockMethod {
    pub fn as_str(&self) -> &'static str {
        match self {
            LockMethod::Ppolicy => "ppolicy",
            LockMethod::Attribute => "attribute",
            LockMethod::Move => "move",
        }
    }
}

impl fmt::Display for LockMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The typed config of one LDAP connector instance; build it only after `validate` passed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// The connector type; the registry has chosen us by it already.
    #[serde(default, rename = "kind")]
    _kind: Option<serde::de::IgnoredAny>,
    pub url: String,
    #[serde(default)]
    pub starttls: bool,
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    pub bind_dn: String,
    pub bind_password: SecretString,
    pub user_base_dn: String,
    pub group_base_dn: String,
    #[serde(default = "default_user_attribute")]
    pub user_attribute: String,
    #[serde(default)]
    pub user_object_class: Option<String>,
    /// Where a leaver known only by email is looked up (HR events often carry no username).
    #[serde(default = "default_email_attribute")]
    pub email_attribute: String,
    /// Where a leaver known only by employee id is looked up.
    #[serde(default = "default_employee_id_attribute")]
    pub employee_id_attribute: String,
    /// The immutable attribute every action is pinned to (OpenLDAP `entryUUID`, 389 DS
    /// `nsUniqueId`): it names one entry for life, whatever is renamed, moved or reused.
    #[serde(default = "default_id_attribute")]
    pub id_attribute: String,
    #[serde(default)]
    pub lock_method: LockMethod,
    #[serde(default)]
    pub lock_attribute: Option<String>,
    #[serde(default)]
    pub lock_value: Option<String>,
    #[serde(default)]
    pub disabled_base_dn: Option<String>,
    #[serde(default)]
    pub group_placeholder_dn: Option<String>,
    #[serde(default = "default_true")]
    pub remove_groups: bool,
    #[serde(default)]
    pub delete_entry: bool,
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_user_attribute() -> String {
    default_of("user_attribute").into()
}
fn default_email_attribute() -> String {
    default_of("email_attribute").into()
}
fn default_employee_id_attribute() -> String {
    default_of("employee_id_attribute").into()
}
fn default_id_attribute() -> String {
    "entryUUID".into()
}
fn default_true() -> bool {
    true
}
fn default_timeout_secs() -> u64 {
    10
}

/// The ppolicy value that means "locked by an administrator, forever".
pub const PPOLICY_LOCKED: &str = "000001010000Z";

impl LdapConfig {
    /// Parses a table that `validate` accepted.
    pub fn from_value(params: &Value) -> Result<Self, String> {
        serde_json::from_value(params.clone()).map_err(|e| e.to_string())
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// Whether the connection is encrypted (LDAPS or StartTLS).
    pub fn uses_tls(&self) -> bool {
        self.url.starts_with("ldaps://") || self.starttls
    }

    /// The bases a user entry may live under: people, and with `move` the disabled OU.
    pub fn user_bases(&self) -> Vec<&str> {
        let mut bases = vec![self.user_base_dn.as_str()];
        if self.lock_method == LockMethod::Move {
            if let Some(d) = self.disabled_base_dn.as_deref() {
                if !is_under(d, &self.user_base_dn) {
                    bases.push(d);
                }
            }
        }
        bases
    }
}

/// Naming and contact attributes people change and reuse: never an identity to pin actions to.
const MUTABLE_ATTRIBUTES: &[&str] = &[
    "uid",
    "userid",
    "cn",
    "commonName",
    "sn",
    "givenName",
    "displayName",
    "mail",
    "employeeNumber",
    "entryDN",
    "distinguishedName",
    "sAMAccountName",
    "userPrincipalName",
];

/// The default of a key whose default is an attribute name.
fn default_of(key: &str) -> &'static str {
    match key {
        "user_attribute" => "uid",
        "email_attribute" => "mail",
        "employee_id_attribute" => "employeeNumber",
        _ => "",
    }
}

/// Every key the table may hold (`kind` is always allowed).
const KEYS: &[KeySpec] = &[
    KeySpec::required("url", KeyType::Str),
    KeySpec::optional("starttls", KeyType::Bool),
    KeySpec::optional("tls_ca_file", KeyType::Str),
    KeySpec::required("bind_dn", KeyType::Str),
    KeySpec::required_secret("bind_password"),
    KeySpec::required("user_base_dn", KeyType::Str),
    KeySpec::required("group_base_dn", KeyType::Str),
    KeySpec::optional("user_attribute", KeyType::Str),
    KeySpec::optional("user_object_class", KeyType::Str),
    KeySpec::optional("email_attribute", KeyType::Str),
    KeySpec::optional("employee_id_attribute", KeyType::Str),
    KeySpec::optional("id_attribute", KeyType::Str),
    KeySpec::optional("lock_method", KeyType::Str),
    KeySpec::optional("lock_attribute", KeyType::Str),
    KeySpec::optional("lock_value", KeyType::Str),
    KeySpec::optional("disabled_base_dn", KeyType::Str),
    KeySpec::optional("group_placeholder_dn", KeyType::Str),
    KeySpec::optional("remove_groups", KeyType::Bool),
    KeySpec::optional("delete_entry", KeyType::Bool),
    KeySpec::optional("timeout_secs", KeyType::Int),
];

/// Checks the table without any I/O and returns every issue, each naming its key under `path`.
pub fn validate(path: &str, params: &Value) -> Result<(), Vec<ConfigIssue>> {
    let mut issues = Vec::new();
    let key = |k: &str| format!("{path}.{k}");
    let Some(table) = check_table(path, params, KEYS, &mut issues) else {
        return Err(issues);
    };

    let s = |k: &str| table.get(k).and_then(Value::as_str);
    let b = |k: &str| table.get(k).and_then(Value::as_bool);
    let n = |k: &str| table.get(k).and_then(Value::as_u64);

    if let Some(url) = s("url") {
        if let Some(problem) = url_problem(url) {
            issues.push(ConfigIssue::new(
                key("url"),
                format!("expected an ldap:// or ldaps:// url{problem}, found {url:?}"),
            ));
        } else if url.starts_with("ldaps://") && b("starttls") == Some(true) {
            issues.push(ConfigIssue::new(
                key("starttls"),
                format!("expected starttls = false with an ldaps:// url (it is TLS already), found true with {url:?}"),
            ));
        }
        let tls = url.starts_with("ldaps://") || b("starttls") == Some(true);
        if s("tls_ca_file").is_some() && !tls {
            issues.push(ConfigIssue::new(
                key("tls_ca_file"),
                format!("only used with an ldaps:// url or starttls = true, found {url:?} without starttls"),
            ));
        }
    }
    if s("tls_ca_file") == Some("") {
        issues.push(ConfigIssue::new(
            key("tls_ca_file"),
            "expected a path to a PEM file, found \"\"",
        ));
    }
    if s("bind_password") == Some("") {
        issues.push(ConfigIssue::new(
            key("bind_password"),
            "expected a password, found an empty string",
        ));
    }

    for k in [
        "bind_dn",
        "user_base_dn",
        "group_base_dn",
        "disabled_base_dn",
        "group_placeholder_dn",
    ] {
        if let Some(dn) = s(k) {
            if let Some(problem) = dn_problem(dn) {
                issues.push(ConfigIssue::new(
                    key(k),
                    format!("expected a DN of attr=value parts separated by commas ({problem}), found {dn:?}"),
                ));
            }
        }
    }
    for k in [
        "user_attribute",
        "user_object_class",
        "email_attribute",
        "employee_id_attribute",
        "id_attribute",
        "lock_attribute",
    ] {
        if let Some(name) = s(k) {
            if !is_attribute_name(name) {
                issues.push(ConfigIssue::new(
                    key(k),
                    format!("expected an attribute name (letters, digits and hyphens, or an OID), found {name:?}"),
                ));
            }
        }
    }

    if let Some(id) = s("id_attribute").filter(|a| is_attribute_name(a)) {
        let configured = ["user_attribute", "email_attribute", "employee_id_attribute"]
            .into_iter()
            .find(|k| {
                s(k).unwrap_or_else(|| default_of(k))
                    .eq_ignore_ascii_case(id)
            });
        let mutable = MUTABLE_ATTRIBUTES
            .iter()
            .any(|m| m.eq_ignore_ascii_case(id));
        if let Some(k) = configured {
            issues.push(ConfigIssue::new(
                key("id_attribute"),
                format!("expected an immutable attribute the directory assigns (entryUUID on OpenLDAP, nsUniqueId on 389 DS), found {id:?}, which is also {k} and can be renamed or reused"),
            ));
        } else if mutable {
            issues.push(ConfigIssue::new(
                key("id_attribute"),
                format!("expected an immutable attribute the directory assigns (entryUUID on OpenLDAP, nsUniqueId on 389 DS), found {id:?}, which can be renamed or reused"),
            ));
        }
    }

    let method = match s("lock_method") {
        None => Some(LockMethod::Ppolicy),
        Some("ppolicy") => Some(LockMethod::Ppolicy),
        Some("attribute") => Some(LockMethod::Attribute),
        Some("move") => Some(LockMethod::Move),
        Some(other) => {
            issues.push(ConfigIssue::new(
                key("lock_method"),
                format!("expected one of ppolicy, attribute, move, found {other:?}"),
            ));
            None
        }
    };
    let present = |k: &str| table.contains_key(k);
    match method {
        Some(LockMethod::Attribute) => {
            for k in ["lock_attribute", "lock_value"] {
                if !present(k) {
                    issues.push(ConfigIssue::new(
                        key(k),
                        "missing; required with lock_method = \"attribute\"",
                    ));
                }
            }
            if s("lock_value") == Some("") {
                issues.push(ConfigIssue::new(
                    key("lock_value"),
                    "expected a value to set, found \"\"",
                ));
            }
        }
        Some(m) => {
            for k in ["lock_attribute", "lock_value"] {
                if present(k) {
                    issues.push(ConfigIssue::new(
                        key(k),
                        format!("only used with lock_method = \"attribute\", found lock_method = \"{m}\""),
                    ));
                }
            }
        }
        None => {}
    }
    match method {
        Some(LockMethod::Move) => {
            if !present("disabled_base_dn") {
                issues.push(ConfigIssue::new(
                    key("disabled_base_dn"),
                    "missing; required with lock_method = \"move\"",
                ));
            } else if let (Some(d), Some(u)) = (s("disabled_base_dn"), s("user_base_dn")) {
                if same_dn(d, u) {
                    issues.push(ConfigIssue::new(
                        key("disabled_base_dn"),
                        format!("expected a DN other than user_base_dn, found {d:?}"),
                    ));
                }
            }
        }
        Some(m) if present("disabled_base_dn") => {
            issues.push(ConfigIssue::new(
                key("disabled_base_dn"),
                format!("only used with lock_method = \"move\", found lock_method = \"{m}\""),
            ));
        }
        _ => {}
    }

    if let Some(t) = n("timeout_secs") {
        if !(1..=300).contains(&t) {
            issues.push(ConfigIssue::new(
                key("timeout_secs"),
                format!("expected 1 to 300 seconds, found {t}"),
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

/// What is wrong with an LDAP url, as a clause after "expected an ldap:// or ldaps:// url".
fn url_problem(url: &str) -> Option<&'static str> {
    let rest = url
        .strip_prefix("ldap://")
        .or_else(|| url.strip_prefix("ldaps://"));
    let Some(rest) = rest else { return Some("") };
    let hostport = rest.strip_suffix('/').unwrap_or(rest);
    if hostport.contains(['/', '?', '#', '@']) {
        return Some(" with only a host and port");
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, "")) => (h, None),
            Some((h, p)) => match p.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None => return Some(" with a port from 1 to 65535"),
            },
            None => return Some(" with a closing ] after an IPv6 host"),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Some(" with a host");
    }
    if let Some(p) = port {
        if p.parse::<u16>().map_or(true, |p| p == 0) {
            return Some(" with a port from 1 to 65535");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({
            "kind": "ldap",
            "url": "ldap://127.0.0.1:3890",
            "bind_dn": "cn=revoked,ou=services,dc=example,dc=org",
            "bind_password": "hunter2-secret",
            "user_base_dn": "ou=people,dc=example,dc=org",
            "group_base_dn": "ou=groups,dc=example,dc=org",
        })
    }

    #[test]
    fn minimal_config_is_valid_and_parses_with_defaults() {
        validate("connectors.d", &base()).expect("valid");
        let c = LdapConfig::from_value(&base()).expect("parses");
        assert_eq!(c.user_attribute, "uid");
        assert_eq!(c.lock_method, LockMethod::Ppolicy);
        assert!(c.remove_groups && !c.delete_entry);
        assert_eq!(c.timeout_secs, 10);
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn urls() {
        for ok in [
            "ldap://h",
            "ldaps://h:636",
            "ldap://h:389/",
            "ldap://[::1]:389",
            "ldap://[::1]",
        ] {
            assert_eq!(url_problem(ok), None, "{ok}");
        }
        for bad in [
            "http://x",
            "ldap://",
            "ldap://:389",
            "ldap://h:0",
            "ldap://h:x",
            "ldap://h/dc=x",
            "ldapi://x",
        ] {
            assert!(url_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn secret_never_in_issues() {
        let mut v = base();
        v["bind_password"] = json!(12345);
        let issues = validate("c", &v).expect_err("invalid");
        assert_eq!(
            issues,
            vec![ConfigIssue::new(
                "c.bind_password",
                "expected a string, found a number"
            )]
        );
    }
}
