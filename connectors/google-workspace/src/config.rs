//! The `[connectors.<name>]` table of a Google Workspace domain, and its pure validation.
//!
//! The service-account key is the JSON document Google's console hands out ("Create private
//! key", type JSON); it is a secret, so it comes as `private_key` or, as it should in production,
//! `private_key_file` (the config layer reads the file into `private_key`). Validation parses it
//! (no I/O) and names what is missing without ever quoting it.

use std::time::Duration;

use revoke_core::keys::{check_table, url_problem, KeySpec, KeyType};
use revoke_core::ConfigIssue;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

/// Google's Directory API quota: 2,400 queries per minute per user per project.
pub const DEFAULT_REQUESTS_PER_MINUTE: u64 = 2_400;

/// The typed config of one Google Workspace instance; build it only after `validate` passed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoogleConfig {
    #[serde(default, rename = "kind")]
    _kind: Option<serde::de::IgnoredAny>,
    /// The service-account key JSON (with `client_email`, `private_key`, `token_uri`).
    pub private_key: SecretString,
    /// The super admin the service account impersonates for Admin SDK and Licensing calls.
    pub admin_email: String,
    /// The customer id (`my_customer`: the admin's own).
    #[serde(default = "default_customer")]
    pub customer: String,
    /// The primary domain: a subject given by a bare username is tried as `username@domain`.
    #[serde(default)]
    pub domain: Option<String>,
    /// One base URL for every API (tests, proxies); by default each API's own host.
    #[serde(default)]
    pub api_url: Option<String>,
    /// Whom the leaver's Drive files are transferred to (a user's email); no transfer without it.
    #[serde(default)]
    pub transfer_to: Option<String>,
    /// Also transfer the leaver's Calendar (future events with guests or resources in the primary
    /// calendar; Google's rule) in the same transfer.
    #[serde(default)]
    pub transfer_calendar: bool,
    /// The auto-reply set on the leaver's mailbox before suspension (subject and plain body).
    #[serde(default)]
    pub auto_reply_subject: Option<String>,
    #[serde(default)]
    pub auto_reply_body: Option<String>,
    /// Where the leaver's mail is forwarded (an address in the domain is accepted at once; one
    /// outside waits for its owner to confirm, which Google requires).
    #[serde(default)]
    pub forward_to: Option<String>,
    /// Licences to remove after the transfer, as `productId/skuId`
    /// (`Google-Apps/1010020027` is Workspace Business Starter).
    #[serde(default)]
    pub licences: Vec<String>,
    #[serde(default = "default_true")]
    pub remove_groups: bool,
    #[serde(default = "default_true")]
    pub remove_roles: bool,
    #[serde(default = "default_true")]
    pub remove_grants: bool,
    #[serde(default = "default_true")]
    pub delete_users: bool,
    /// The leaver's mobile devices: `list` (discovery only) or `account_wipe` (also remove the
    /// work account from each; a full device wipe is never sent). Not read without it.
    #[serde(default)]
    pub mobile_devices: Option<MobileDevices>,
    /// Turn 2-step verification off for the leaver when enrolled (contain).
    #[serde(default)]
    pub turn_off_2sv: bool,
    /// Move the folder the Drive transfer makes into this shared drive (the archive).
    #[serde(default)]
    pub archive_drive_id: Option<String>,
    /// A folder inside the archive drive to move it into (default: the drive's root).
    #[serde(default)]
    pub archive_folder_id: Option<String>,
    /// Days the archived files are kept: the date is in the plan and on the archived folder.
    #[serde(default)]
    pub retention_days: Option<u64>,
    /// Remove the leaver from the shared drives they are a member of (revoke).
    #[serde(default)]
    pub remove_shared_drives: bool,
    /// The pace of this instance, shared by every job (Google: 2,400 per minute).
    #[serde(default = "default_rpm")]
    pub requests_per_minute: u64,
    /// The pace of this instance's Drive calls (a client job lists every user's files), shared
    /// by every job: Google published 12,000 queries per minute per project.
    #[serde(default = "default_drive_rpm")]
    pub drive_requests_per_minute: u64,
    /// The first wait after a rate-limit answer, doubled per consecutive one (at most 64x).
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
    /// How often a running transfer is read.
    #[serde(default = "default_poll_ms")]
    pub transfer_poll_ms: u64,
    /// How long one attempt waits for a transfer before the executor is asked to come back.
    #[serde(default = "default_wait_secs")]
    pub transfer_wait_secs: u64,
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Discovery's per-user Directory reads of this many leavers go in one HTTP request to
    /// Google's batch endpoint (each read still counts against the quota); 0 or 1: no batching.
    #[serde(default = "default_batch_size")]
    pub batch_size: u64,
}

/// What is done with the leaver's mobile devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MobileDevices {
    /// Listed in discovery, nothing sent.
    List,
    /// The work account removed from each device (`admin_account_wipe`).
    AccountWipe,
}

fn default_true() -> bool {
    true
}
fn default_customer() -> String {
    "my_customer".into()
}
fn default_rpm() -> u64 {
    DEFAULT_REQUESTS_PER_MINUTE
}
fn default_drive_rpm() -> u64 {
    12_000
}
fn default_backoff_ms() -> u64 {
    1_000
}
fn default_poll_ms() -> u64 {
    5_000
}
fn default_wait_secs() -> u64 {
    60
}
fn default_timeout_secs() -> u64 {
    30
}
fn default_batch_size() -> u64 {
    50
}

impl GoogleConfig {
    pub fn from_value(params: &Value) -> Result<Self, String> {
        serde_json::from_value(params.clone()).map_err(|e| {
            // serde's message may quote a value; never the key's.
            if e.to_string().contains("private_key") {
                "private_key: expected the service-account key JSON as a string".to_string()
            } else {
                e.to_string()
            }
        })
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// The (product, sku) pairs of `licences`.
    pub fn licence_pairs(&self) -> Vec<(String, String)> {
        self.licences
            .iter()
            .filter_map(|l| l.split_once('/'))
            .map(|(p, s)| (p.to_string(), s.to_string()))
            .collect()
    }

    /// Whether the leaver's mobile devices are read.
    pub fn mobile(&self) -> bool {
        self.mobile_devices.is_some()
    }

    /// Whether the plan touches the leaver's Gmail settings.
    pub fn gmail(&self) -> bool {
        self.auto_reply_body.is_some() || self.forward_to.is_some()
    }
}

/// The fields of the key JSON revoked uses.
#[derive(Debug, Clone)]
pub struct KeyFile {
    pub client_email: String,
    pub private_key_pem: SecretString,
    pub token_uri: String,
}

/// Reads the key JSON; the message never quotes the key.
pub fn key_file(key: &SecretString) -> Result<KeyFile, String> {
    let v: Value = serde_json::from_str(key.expose_secret()).map_err(|_| {
        "expected the service-account key JSON Google's console hands out, found text that is not JSON".to_string()
    })?;
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    if field("type") != "service_account" {
        return Err(format!(
            "expected a key of \"type\": \"service_account\", found {:?}",
            field("type")
        ));
    }
    let client_email = field("client_email");
    if !client_email.contains('@') {
        return Err("expected client_email in the key, found none".into());
    }
    let pem = field("private_key");
    if !pem.contains("-----BEGIN PRIVATE KEY-----") {
        return Err(
            "expected a PKCS#8 private_key (BEGIN PRIVATE KEY) in the key, found none".into(),
        );
    }
    let token_uri = field("token_uri");
    if let Some(problem) = url_problem(&token_uri) {
        return Err(format!(
            "expected token_uri in the key to be an http(s) url ({problem})"
        ));
    }
    Ok(KeyFile {
        client_email,
        private_key_pem: SecretString::from(pem),
        token_uri,
    })
}

/// Every key the table may hold (`kind` is always allowed).
const KEYS: &[KeySpec] = &[
    KeySpec::required_secret("private_key"),
    KeySpec::required("admin_email", KeyType::Str),
    KeySpec::optional("customer", KeyType::Str),
    KeySpec::optional("domain", KeyType::Str),
    KeySpec::optional("api_url", KeyType::Str),
    KeySpec::optional("transfer_to", KeyType::Str),
    KeySpec::optional("transfer_calendar", KeyType::Bool),
    KeySpec::optional("auto_reply_subject", KeyType::Str),
    KeySpec::optional("auto_reply_body", KeyType::Str),
    KeySpec::optional("forward_to", KeyType::Str),
    KeySpec::optional("licences", KeyType::StrList),
    KeySpec::optional("remove_groups", KeyType::Bool),
    KeySpec::optional("remove_roles", KeyType::Bool),
    KeySpec::optional("remove_grants", KeyType::Bool),
    KeySpec::optional("delete_users", KeyType::Bool),
    KeySpec::optional("mobile_devices", KeyType::Str),
    KeySpec::optional("turn_off_2sv", KeyType::Bool),
    KeySpec::optional("archive_drive_id", KeyType::Str),
    KeySpec::optional("archive_folder_id", KeyType::Str),
    KeySpec::optional("retention_days", KeyType::Int),
    KeySpec::optional("remove_shared_drives", KeyType::Bool),
    KeySpec::optional("requests_per_minute", KeyType::Int),
    KeySpec::optional("drive_requests_per_minute", KeyType::Int),
    KeySpec::optional("backoff_ms", KeyType::Int),
    KeySpec::optional("transfer_poll_ms", KeyType::Int),
    KeySpec::optional("transfer_wait_secs", KeyType::Int),
    KeySpec::optional("timeout_secs", KeyType::Int),
    KeySpec::optional("batch_size", KeyType::Int),
];

/// A Google product or SKU id: letters, digits, `-`, `_`, `.`.
fn is_licence_part(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Checks the table without any I/O; every issue names its key under `path`.
pub fn validate(path: &str, params: &Value) -> Result<(), Vec<ConfigIssue>> {
    let mut issues = Vec::new();
    let key = |k: &str| format!("{path}.{k}");
    let Some(table) = check_table(path, params, KEYS, &mut issues) else {
        return Err(issues);
    };
    let s = |k: &str| table.get(k).and_then(Value::as_str);

    if let Some(k) = s("private_key") {
        if let Err(problem) = key_file(&SecretString::from(k.to_string())) {
            issues.push(ConfigIssue::new(key("private_key"), problem));
        }
    }
    for k in ["admin_email", "transfer_to", "forward_to"] {
        if let Some(e) = s(k) {
            if !is_email(e) {
                issues.push(ConfigIssue::new(
                    key(k),
                    format!("expected a user's email address (letters, digits, . _ ' - before the @), found {e:?}"),
                ));
            }
        }
    }
    if let Some(c) = s("customer") {
        if !is_employee_id(c) {
            issues.push(ConfigIssue::new(
                key("customer"),
                format!("expected my_customer or a customer id such as C03az79cb, found {c:?}"),
            ));
        }
    }
    if let Some(d) = s("domain") {
        if !is_email(&format!("x@{d}")) {
            issues.push(ConfigIssue::new(
                key("domain"),
                format!("expected a domain name such as example.com, found {d:?}"),
            ));
        }
    }
    if let Some(url) = s("api_url") {
        if let Some(problem) = url_problem(url) {
            issues.push(ConfigIssue::new(
                key("api_url"),
                format!("expected an http(s) url ({problem}), found {url:?}"),
            ));
        }
    }
    if table.get("transfer_calendar").and_then(Value::as_bool) == Some(true)
        && s("transfer_to").is_none()
    {
        issues.push(ConfigIssue::new(
            key("transfer_calendar"),
            "expected transfer_to (whom the calendar goes to) with transfer_calendar, found none",
        ));
    }
    if s("auto_reply_subject").is_some() && s("auto_reply_body").is_none() {
        issues.push(ConfigIssue::new(
            key("auto_reply_body"),
            "expected the auto-reply's body with its subject, found only the subject",
        ));
    }
    if s("auto_reply_body").is_some_and(|b| b.trim().is_empty()) {
        issues.push(ConfigIssue::new(
            key("auto_reply_body"),
            "expected the auto-reply's text, found an empty string",
        ));
    }
    if let Some(list) = table.get("licences").and_then(Value::as_array) {
        for l in list.iter().filter_map(Value::as_str) {
            let ok = l
                .split_once('/')
                .is_some_and(|(p, s)| is_licence_part(p) && is_licence_part(s));
            if !ok {
                issues.push(ConfigIssue::new(
                    key("licences"),
                    format!("expected productId/skuId such as Google-Apps/1010020027, found {l:?}"),
                ));
            }
        }
    }
    if let Some(m) = s("mobile_devices") {
        if !matches!(m, "list" | "account_wipe") {
            issues.push(ConfigIssue::new(
                key("mobile_devices"),
                format!("expected \"list\" or \"account_wipe\" (a full device wipe is never sent), found {m:?}"),
            ));
        }
    }
    for k in ["archive_drive_id", "archive_folder_id"] {
        if let Some(id) = s(k) {
            if !is_drive_id(id) {
                issues.push(ConfigIssue::new(
                    key(k),
                    format!("expected a Drive id (letters, digits, - and _), found {id:?}"),
                ));
            }
        }
    }
    if s("archive_drive_id").is_some() && s("transfer_to").is_none() {
        issues.push(ConfigIssue::new(
            key("archive_drive_id"),
            "expected transfer_to with archive_drive_id (the archive holds what the transfer moved), found none",
        ));
    }
    if s("archive_folder_id").is_some() && s("archive_drive_id").is_none() {
        issues.push(ConfigIssue::new(
            key("archive_folder_id"),
            "expected archive_drive_id (the shared drive the folder is in) with archive_folder_id, found none",
        ));
    }
    if table.get("retention_days").is_some() && s("archive_drive_id").is_none() {
        issues.push(ConfigIssue::new(
            key("retention_days"),
            "expected archive_drive_id with retention_days (the date is kept on the archived folder), found none",
        ));
    }
    let ranges = [
        ("retention_days", 1, 36_500),
        ("requests_per_minute", 1, 1_000_000),
        ("drive_requests_per_minute", 1, 1_000_000),
        ("backoff_ms", 1, 600_000),
        ("transfer_poll_ms", 1, 600_000),
        ("transfer_wait_secs", 0, 3_600),
        ("timeout_secs", 1, 600),
        ("batch_size", 0, 250),
    ];
    for (k, lo, hi) in ranges {
        if let Some(n) = table.get(k).and_then(Value::as_u64) {
            if !(lo..=hi).contains(&n) {
                issues.push(ConfigIssue::new(
                    key(k),
                    format!("expected {lo} to {hi}, found {n}"),
                ));
            }
        }
    }
    if issues.is_empty() {
        if let Err(e) = GoogleConfig::from_value(params) {
            issues.push(ConfigIssue::new(path, e));
        }
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(issues)
    }
}

/// An email Google accepts as a user's or alias's: letters, digits, `.`, `_`, `'`, `-` before
/// the `@` (Google's rule for usernames), a domain of letters, digits, `-` and dots.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'\'' | b'-'));
    let domain_ok = domain.len() <= 253
        && domain.contains('.')
        && domain.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    local_ok && domain_ok
}

/// A Drive file, folder or shared drive id: letters, digits, `-`, `_`.
pub fn is_drive_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// An employee id (or customer id) revoked sends in a search: letters, digits, `.`, `_`, `-`.
pub fn is_employee_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes().any(|b| b.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";

    fn key_json() -> String {
        json!({
            "type": "service_account",
            "client_email": "revoked@p.iam.gserviceaccount.com",
            "private_key": PEM,
            "token_uri": "https://oauth2.googleapis.com/token",
        })
        .to_string()
    }

    fn issues(v: Value) -> Vec<String> {
        match validate("connectors.gw", &v) {
            Ok(()) => vec![],
            Err(i) => i.into_iter().map(|i| i.to_string()).collect(),
        }
    }

    #[test]
    fn a_minimal_config_is_valid_with_google_defaults() {
        let v = json!({"kind": "google-workspace", "private_key": key_json(), "admin_email": "admin@example.com"});
        assert_eq!(issues(v.clone()), Vec::<String>::new());
        let cfg = GoogleConfig::from_value(&v).expect("config");
        assert_eq!(cfg.customer, "my_customer");
        assert_eq!(cfg.requests_per_minute, 2_400);
        assert!(cfg.remove_groups && cfg.remove_roles && cfg.remove_grants && cfg.delete_users);
        assert!(!cfg.gmail());
        let k = key_file(&cfg.private_key).expect("key");
        assert_eq!(k.token_uri, "https://oauth2.googleapis.com/token");
    }

    #[test]
    fn every_problem_names_its_key_and_what_was_found() {
        let got = issues(json!({
            "private_key": "{\"type\": \"authorized_user\"}", "admin_email": "admin",
            "transfer_to": "a*@example.com", "forward_to": "\"x\"@example.com",
            "domain": "../x", "customer": "my customer", "api_url": "ftp://x",
            "auto_reply_subject": "gone", "licences": ["Google-Apps"],
            "requests_per_minute": 0, "timeout_secs": 0, "colour": 1
        }));
        let expect = [
            "connectors.gw.colour: unknown key",
            "connectors.gw.private_key: expected a key of \"type\": \"service_account\", found \"authorized_user\"",
            "connectors.gw.admin_email: expected a user's email address",
            "connectors.gw.transfer_to: expected a user's email address",
            "connectors.gw.forward_to: expected a user's email address",
            "connectors.gw.customer: expected my_customer or a customer id",
            "connectors.gw.domain: expected a domain name",
            "connectors.gw.api_url: expected an http(s) url",
            "connectors.gw.auto_reply_body: expected the auto-reply's body with its subject",
            "connectors.gw.licences: expected productId/skuId",
            "connectors.gw.requests_per_minute: expected 1 to 1000000, found 0",
            "connectors.gw.timeout_secs: expected 1 to 600, found 0",
        ];
        for e in expect {
            assert!(got.iter().any(|g| g.starts_with(e)), "{e} not in {got:#?}");
        }
        let got = issues(
            json!({"private_key": key_json(), "admin_email": "a@example.com", "transfer_calendar": true}),
        );
        assert_eq!(
            got,
            ["connectors.gw.transfer_calendar: expected transfer_to (whom the calendar goes to) with transfer_calendar, found none"]
        );
        let got = issues(json!({"admin_email": "admin@example.com"}));
        assert!(
            got.iter()
                .any(|g| g.starts_with("connectors.gw.private_key")),
            "{got:?}"
        );
    }

    #[test]
    fn no_message_quotes_the_key() {
        let secret = "-----BEGIN PRIVATE KEY-----\nhunter2hunter2\n-----END PRIVATE KEY-----";
        let bad = [
            json!({"private_key": "hunter2hunter2", "admin_email": "a@example.com"}),
            json!({"private_key": {"type": "service_account", "private_key": secret}, "admin_email": "a@example.com"}),
            json!({"private_key": json!({"type": "service_account", "private_key": secret, "client_email": "x@y.z", "token_uri": "nope hunter2hunter2"}).to_string(), "admin_email": "a@example.com"}),
            json!({"private_key": json!({"type": "service_account", "private_key": "hunter2hunter2"}).to_string(), "admin_email": "a@example.com"}),
        ];
        for v in bad {
            let got = issues(v.clone()).concat();
            assert!(!got.is_empty(), "{v} should be refused");
            assert!(!got.contains("hunter2"), "{got}");
        }
    }
}
