//! The `[connectors.<name>]` table of one Entra ID tenant, and its pure validation.
//!
//! The app registration's credential is exactly one of:
//! - a client secret: `client_secret`, or in production `client_secret_file` (the config layer
//!   reads the file into `client_secret`);
//! - a certificate: its private key `private_key` (PKCS#8 PEM; `private_key_file` in
//!   production) and the certificate itself, `certificate` (PEM), or its SHA-1
//!   `certificate_thumbprint` as the Azure portal shows it (hex). The connector signs a client
//!   assertion (RS256, `x5t` the thumbprint) for each token; the key never leaves the process.

use std::time::Duration;

use revoke_core::keys::{check_table, url_problem, KeySpec, KeyType};
use revoke_core::ConfigIssue;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;

/// A user attribute discovery may search a subject by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum Identifier {
    #[serde(rename = "userPrincipalName")]
    UserPrincipalName,
    #[serde(rename = "mail")]
    Mail,
    #[serde(rename = "otherMails")]
    OtherMails,
    #[serde(rename = "proxyAddresses")]
    ProxyAddresses,
    #[serde(rename = "employeeId")]
    EmployeeId,
    #[serde(rename = "onPremisesImmutableId")]
    OnPremisesImmutableId,
    #[serde(rename = "onPremisesSamAccountName")]
    OnPremisesSamAccountName,
}

impl Identifier {
    pub const ALL: [Identifier; 7] = [
        Identifier::UserPrincipalName,
        Identifier::Mail,
        Identifier::OtherMails,
        Identifier::ProxyAddresses,
        Identifier::EmployeeId,
        Identifier::OnPremisesImmutableId,
        Identifier::OnPremisesSamAccountName,
    ];

    /// The Graph property name.
    pub fn name(self) -> &'static str {
        match self {
            Identifier::UserPrincipalName => "userPrincipalName",
            Identifier::Mail => "mail",
            Identifier::OtherMails => "otherMails",
            Identifier::ProxyAddresses => "proxyAddresses",
            Identifier::EmployeeId => "employeeId",
            Identifier::OnPremisesImmutableId => "onPremisesImmutableId",
            Identifier::OnPremisesSamAccountName => "onPremisesSamAccountName",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.name() == s)
    }

    /// Whether the value is an email address (searched with the subject's email-like values) or
    /// a name or number (searched with the others).
    pub fn takes_email(self) -> bool {
        matches!(
            self,
            Identifier::UserPrincipalName
                | Identifier::Mail
                | Identifier::OtherMails
                | Identifier::ProxyAddresses
        )
    }

    /// An alias: `otherMails` (addresses typed in by people, neither checked nor unique) and
    /// `proxyAddresses` (every address that reaches a mailbox, an old UPN kept after a rename
    /// among them). A match by an alias alone is weaker than any other (see discover.rs).
    pub fn is_alias(self) -> bool {
        matches!(self, Identifier::OtherMails | Identifier::ProxyAddresses)
    }
}

fn default_identifiers() -> Vec<Identifier> {
    vec![
        Identifier::UserPrincipalName,
        Identifier::Mail,
        Identifier::OtherMails,
        Identifier::EmployeeId,
    ]
}

/// The typed config of one Entra connector instance; build it only after `validate` passed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntraConfig {
    #[serde(default, rename = "kind")]
    _kind: Option<serde::de::IgnoredAny>,
    /// The directory (tenant) id, or one of its verified domains.
    pub tenant_id: String,
    /// The application (client) id of the app registration.
    pub client_id: String,
    /// The app registration's client secret.
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// The certificate's private key (PKCS#8 PEM), for a client assertion.
    #[serde(default)]
    pub private_key: Option<SecretString>,
    /// The certificate (PEM) whose thumbprint names the key to Entra.
    #[serde(default)]
    pub certificate: Option<String>,
    /// The certificate's SHA-1 thumbprint (40 hex digits, as the Azure portal shows it).
    #[serde(default)]
    pub certificate_thumbprint: Option<String>,
    /// Default `https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token`.
    #[serde(default)]
    pub token_url: Option<String>,
    /// Default `https://graph.microsoft.com/v1.0`.
    #[serde(default = "default_graph_url")]
    pub graph_url: String,
    /// The user properties discovery searches a subject by.
    #[serde(default = "default_identifiers")]
    pub identifiers: Vec<Identifier>,
    #[serde(default = "default_true")]
    pub remove_groups: bool,
    #[serde(default = "default_true")]
    pub remove_app_roles: bool,
    #[serde(default = "default_true")]
    pub remove_directory_roles: bool,
    /// Delete the user's MFA methods (phone, FIDO2, Authenticator...). Off by default: a
    /// disabled user cannot use them, and a rehire would have to enrol again.
    #[serde(default)]
    pub remove_auth_methods: bool,
    #[serde(default = "default_true")]
    pub remove_licenses: bool,
    /// Read the user's owned and registered devices into the plan's notes.
    #[serde(default = "default_true")]
    pub report_devices: bool,
    #[serde(default = "default_true")]
    pub delete_users: bool,
    /// Also delete the user for good from `directory/deletedItems` right after the delete (it
    /// cannot be restored then). Off by default: Entra keeps a deleted user 30 days.
    #[serde(default)]
    pub purge_deleted: bool,
    /// Days between the last revoke and the delete (0: at once).
    #[serde(default)]
    pub retention_days: u64,
    /// At most this many writes in any `window_secs` (Graph's identity and access limit is
    /// 3,000 writes per 2 min 30 s per app and tenant).
    #[serde(default = "default_writes")]
    pub writes_per_window: u64,
    #[serde(default = "default_window")]
    pub window_secs: u64,
    /// At most this many reads (a `$batch` counts each of its parts) in any `read_window_secs`.
    #[serde(default = "default_reads")]
    pub reads_per_window: u64,
    #[serde(default = "default_read_window")]
    pub read_window_secs: u64,
    /// Discovery's reads per `$batch` request (Graph's maximum: 20; 0 or 1: no batching).
    #[serde(default = "default_batch")]
    pub batch_size: u64,
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_true() -> bool {
    true
}
fn default_graph_url() -> String {
    "https://graph.microsoft.com/v1.0".to_string()
}
fn default_writes() -> u64 {
    3_000
}
fn default_window() -> u64 {
    150
}
fn default_reads() -> u64 {
    1_000
}
fn default_read_window() -> u64 {
    10
}
fn default_batch() -> u64 {
    20
}
fn default_timeout_secs() -> u64 {
    30
}

/// Graph's most parts in one `$batch`.
pub const MAX_BATCH: u64 = 20;

impl EntraConfig {
    pub fn from_value(params: &Value) -> Result<Self, String> {
        serde_json::from_value(params.clone()).map_err(|e| e.to_string())
    }

    /// The Graph base URL without a trailing slash.
    pub fn graph_base(&self) -> String {
        self.graph_url.trim_end_matches('/').to_string()
    }

    pub fn token_endpoint(&self) -> String {
        match &self.token_url {
            Some(u) => u.clone(),
            None => format!(
                "https://login.microsoftonline.com/{}/oauth2/v2.0/token",
                self.tenant_id
            ),
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    pub fn retention(&self) -> Option<Duration> {
        (self.retention_days > 0).then(|| Duration::from_secs(self.retention_days * 86_400))
    }

    pub fn write_window(&self) -> Duration {
        Duration::from_secs(self.window_secs)
    }

    pub fn read_window(&self) -> Duration {
        Duration::from_secs(self.read_window_secs)
    }

    /// Parts per `$batch`; 1 means none.
    pub fn batch(&self) -> usize {
        self.batch_size.clamp(1, MAX_BATCH) as usize
    }
}

/// Every key the table may hold (`kind` is always allowed).
const KEYS: &[KeySpec] = &[
    KeySpec::required("tenant_id", KeyType::Str),
    KeySpec::required("client_id", KeyType::Str),
    KeySpec::secret("client_secret"),
    KeySpec::secret("private_key"),
    KeySpec::optional("certificate", KeyType::Str),
    KeySpec::optional("certificate_thumbprint", KeyType::Str),
    KeySpec::optional("token_url", KeyType::Str),
    KeySpec::optional("graph_url", KeyType::Str),
    KeySpec::optional("identifiers", KeyType::StrList),
    KeySpec::optional("remove_groups", KeyType::Bool),
    KeySpec::optional("remove_app_roles", KeyType::Bool),
    KeySpec::optional("remove_directory_roles", KeyType::Bool),
    KeySpec::optional("remove_auth_methods", KeyType::Bool),
    KeySpec::optional("remove_licenses", KeyType::Bool),
    KeySpec::optional("report_devices", KeyType::Bool),
    KeySpec::optional("delete_users", KeyType::Bool),
    KeySpec::optional("purge_deleted", KeyType::Bool),
    KeySpec::optional("retention_days", KeyType::Int),
    KeySpec::optional("writes_per_window", KeyType::Int),
    KeySpec::optional("window_secs", KeyType::Int),
    KeySpec::optional("reads_per_window", KeyType::Int),
    KeySpec::optional("read_window_secs", KeyType::Int),
    KeySpec::optional("batch_size", KeyType::Int),
    KeySpec::optional("timeout_secs", KeyType::Int),
];

/// The 20 bytes of a SHA-1 thumbprint written in hex (colons and spaces allowed).
pub fn thumbprint_bytes(t: &str) -> Option<Vec<u8>> {
    let hex: String = t.chars().filter(|c| !matches!(c, ':' | ' ')).collect();
    if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..40)
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

/// A GUID as Entra writes them: 8-4-4-4-12 hex digits.
pub fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A tenant: its GUID, or a domain name (`contoso.onmicrosoft.com`).
fn is_tenant(s: &str) -> bool {
    is_guid(s)
        || (s.contains('.')
            && s.len() <= 253
            && s.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }))
}

/// Checks the table without any I/O; every issue names its key under `path`.
pub fn validate(path: &str, params: &Value) -> Result<(), Vec<ConfigIssue>> {
    let mut issues = Vec::new();
    let key = |k: &str| format!("{path}.{k}");
    let Some(table) = check_table(path, params, KEYS, &mut issues) else {
        return Err(issues);
    };
    let s = |k: &str| table.get(k).and_then(Value::as_str);

    if let Some(t) = s("tenant_id") {
        if !is_tenant(t) {
            issues.push(ConfigIssue::new(
                key("tenant_id"),
                format!("expected the directory (tenant) id, a guid such as 72f988bf-86f1-41af-91ab-2d7cd011db47, or a verified domain such as contoso.onmicrosoft.com, found {t:?}"),
            ));
        }
    }
    if let Some(c) = s("client_id") {
        if !is_guid(c) {
            issues.push(ConfigIssue::new(
                key("client_id"),
                format!("expected the application (client) id, a guid, found {c:?}"),
            ));
        }
    }
    let has = |k: &str| table.contains_key(k);
    match (has("client_secret"), has("private_key")) {
        (false, false) => issues.push(ConfigIssue::new(
            key("client_secret"),
            "expected a client secret (client_secret or client_secret_file), or a certificate's private_key (private_key_file) with certificate or certificate_thumbprint, found neither",
        )),
        (true, true) => issues.push(ConfigIssue::new(
            key("private_key"),
            "expected one credential, a client secret or a certificate's private key, found both",
        )),
        _ => {}
    }
    if has("private_key") {
        match (has("certificate"), has("certificate_thumbprint")) {
            (false, false) => issues.push(ConfigIssue::new(
                key("certificate"),
                "expected the certificate (certificate, PEM) or its certificate_thumbprint with private_key, found neither",
            )),
            (true, true) => issues.push(ConfigIssue::new(
                key("certificate_thumbprint"),
                "expected certificate or certificate_thumbprint, found both",
            )),
            _ => {}
        }
        if let Some(k) = s("private_key") {
            if !k.contains("-----BEGIN PRIVATE KEY-----") {
                issues.push(ConfigIssue::new(
                    key("private_key"),
                    "expected an unencrypted PKCS#8 PEM key (-----BEGIN PRIVATE KEY-----), found something else (convert with openssl pkcs8 -topk8 -nocrypt)",
                ));
            }
        }
        if let Some(c) = s("certificate") {
            if !c.contains("-----BEGIN CERTIFICATE-----") {
                issues.push(ConfigIssue::new(
                    key("certificate"),
                    "expected a PEM certificate (-----BEGIN CERTIFICATE-----), found something else",
                ));
            }
        }
        if let Some(t) = s("certificate_thumbprint") {
            if thumbprint_bytes(t).is_none() {
                issues.push(ConfigIssue::new(
                    key("certificate_thumbprint"),
                    format!(
                        "expected the certificate's SHA-1 thumbprint, 40 hex digits, found {t:?}"
                    ),
                ));
            }
        }
    } else {
        for k in ["certificate", "certificate_thumbprint"] {
            if has(k) {
                issues.push(ConfigIssue::new(
                    key(k),
                    "expected private_key with a certificate, found none",
                ));
            }
        }
    }
    if let Some(sec) = s("client_secret") {
        if sec.trim().is_empty() {
            issues.push(ConfigIssue::new(
                key("client_secret"),
                "expected the app registration's client secret, found an empty string",
            ));
        } else if sec.trim().len() != sec.len() || sec.bytes().any(|b| b.is_ascii_control()) {
            issues.push(ConfigIssue::new(
                key("client_secret"),
                "expected the app registration's client secret, found one with spaces or control characters around or in it",
            ));
        }
    }
    for (k, example) in [
        (
            "token_url",
            "https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token",
        ),
        ("graph_url", "https://graph.microsoft.com/v1.0"),
    ] {
        if let Some(url) = s(k) {
            if let Some(problem) = url_problem(url) {
                issues.push(ConfigIssue::new(
                    key(k),
                    format!("expected an http(s) url such as {example} ({problem}), found {url:?}"),
                ));
            }
        }
    }
    if let Some(list) = table.get("identifiers").and_then(Value::as_array) {
        if list.is_empty() {
            issues.push(ConfigIssue::new(
                key("identifiers"),
                "expected at least one user property to search by, found an empty list",
            ));
        }
        for v in list.iter().filter_map(Value::as_str) {
            if Identifier::parse(v).is_none() {
                let known: Vec<&str> = Identifier::ALL.iter().map(|i| i.name()).collect();
                issues.push(ConfigIssue::new(
                    key("identifiers"),
                    format!("expected one of {}, found {v:?}", known.join(", ")),
                ));
            }
        }
    }
    for (k, lo, hi, what) in [
        ("timeout_secs", 1, 600, "seconds"),
        ("retention_days", 0, 36_500, "days"),
        ("writes_per_window", 1, 1_000_000, "writes"),
        ("window_secs", 1, 3_600, "seconds"),
        ("reads_per_window", MAX_BATCH, 1_000_000, "reads"),
        ("read_window_secs", 1, 3_600, "seconds"),
        (
            "batch_size",
            0,
            MAX_BATCH,
            "reads per batch (graph takes at most 20)",
        ),
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
    if table.get("purge_deleted").and_then(Value::as_bool) == Some(true)
        && table.get("delete_users").and_then(Value::as_bool) == Some(false)
    {
        issues.push(ConfigIssue::new(
            key("purge_deleted"),
            "expected delete_users = true with purge_deleted = true (a purge follows the delete), found delete_users = false",
        ));
    }
    if issues.is_empty() {
        if let Err(e) = EntraConfig::from_value(params) {
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

    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const CLIENT: &str = "00000000-1111-2222-3333-444455556666";

    fn issues(v: Value) -> Vec<String> {
        match validate("connectors.entra", &v) {
            Ok(()) => vec![],
            Err(i) => i.into_iter().map(|i| i.to_string()).collect(),
        }
    }

    #[test]
    fn a_minimal_config_is_valid_with_safe_defaults() {
        let v = json!({"kind": "entra", "tenant_id": TENANT, "client_id": CLIENT,
            "client_secret": "s3cr3t~value"});
        assert_eq!(issues(v.clone()), Vec::<String>::new());
        let cfg = EntraConfig::from_value(&v).expect("config");
        assert_eq!(
            cfg.token_endpoint(),
            format!("https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token")
        );
        assert_eq!(cfg.graph_base(), "https://graph.microsoft.com/v1.0");
        assert_eq!(cfg.identifiers, default_identifiers());
        assert!(cfg.remove_groups && cfg.remove_app_roles && cfg.remove_directory_roles);
        assert!(cfg.remove_licenses && cfg.delete_users && cfg.report_devices);
        assert!(!cfg.remove_auth_methods && !cfg.purge_deleted);
        assert_eq!((cfg.writes_per_window, cfg.window_secs), (3_000, 150));
        assert_eq!(cfg.batch(), 20);
        assert_eq!(cfg.retention(), None);
        let cfg = EntraConfig::from_value(&json!({"tenant_id": "contoso.onmicrosoft.com",
            "client_id": CLIENT, "client_secret": "x", "graph_url": "http://127.0.0.1:9/v1.0/",
            "identifiers": ["onPremisesSamAccountName"], "batch_size": 0, "retention_days": 30}))
        .expect("config");
        assert_eq!(cfg.graph_base(), "http://127.0.0.1:9/v1.0");
        assert_eq!(cfg.identifiers, [Identifier::OnPremisesSamAccountName]);
        assert_eq!(cfg.batch(), 1);
        assert_eq!(cfg.retention(), Some(Duration::from_secs(30 * 86_400)));
    }

    #[test]
    fn every_problem_names_its_key_and_what_was_found() {
        let got = issues(json!({
            "tenant_id": "not a tenant", "client_id": "app", "client_secret": " x ",
            "token_url": "ftp://login", "graph_url": "graph.microsoft.com",
            "identifiers": ["upn"], "batch_size": 21, "writes_per_window": 0,
            "reads_per_window": 5, "retention_days": -1, "colour": 1,
            "purge_deleted": true, "delete_users": false
        }));
        let expect = [
            "connectors.entra.colour: unknown key",
            "connectors.entra.tenant_id: expected the directory (tenant) id",
            "connectors.entra.client_id: expected the application (client) id, a guid, found \"app\"",
            "connectors.entra.client_secret: expected the app registration's client secret, found one with spaces",
            "connectors.entra.token_url: expected an http(s) url",
            "connectors.entra.graph_url: expected an http(s) url",
            "connectors.entra.identifiers: expected one of userPrincipalName, mail, otherMails",
            "connectors.entra.batch_size: expected 0 to 20 reads per batch",
            "connectors.entra.writes_per_window: expected 1 to 1000000 writes, found 0",
            "connectors.entra.reads_per_window: expected 20 to 1000000 reads, found 5",
            "connectors.entra.retention_days: expected 0 to 36500 days, found -1",
            "connectors.entra.purge_deleted: expected delete_users = true",
        ];
        for e in expect {
            assert!(got.iter().any(|g| g.starts_with(e)), "{e} not in {got:#?}");
        }
        let got = issues(json!({"tenant_id": TENANT, "client_id": CLIENT}));
        assert!(
            got.iter()
                .any(|g| g.starts_with("connectors.entra.client_secret: expected a client secret")),
            "{got:?}"
        );
        let got = issues(
            json!({"tenant_id": TENANT, "client_id": CLIENT, "client_secret": "x",
            "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"}),
        );
        assert!(got.iter().any(|g| g.contains("found both")), "{got:?}");
        assert!(
            got.iter()
                .any(|g| g.starts_with("connectors.entra.certificate: expected the certificate")),
            "{got:?}"
        );
        let got = issues(json!({"tenant_id": TENANT, "client_id": CLIENT,
            "private_key": "hunter2", "certificate_thumbprint": "AB:CD"}));
        assert!(
            got.iter().any(|g| g.starts_with(
                "connectors.entra.private_key: expected an unencrypted PKCS#8 PEM key"
            )),
            "{got:?}"
        );
        assert!(got.iter().any(|g| g.starts_with("connectors.entra.certificate_thumbprint: expected the certificate's SHA-1 thumbprint")), "{got:?}");
        assert!(!got.concat().contains("hunter2"), "{got:?}");
        let ok = json!({"tenant_id": TENANT, "client_id": CLIENT,
            "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
            "certificate_thumbprint": "0123456789abcdef0123456789ABCDEF01234567"});
        assert_eq!(issues(ok), Vec::<String>::new());
        assert_eq!(
            thumbprint_bytes("01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67")
                .map(|b| b.len()),
            Some(20)
        );
        let got = issues(
            json!({"tenant_id": TENANT, "client_id": CLIENT, "client_secret": "", "identifiers": []}),
        );
        assert!(
            got.iter().any(|g| g.ends_with("found an empty string")),
            "{got:?}"
        );
        assert!(
            got.iter().any(|g| g.ends_with("found an empty list")),
            "{got:?}"
        );
        // A secret of the wrong type is described, never echoed.
        let got = issues(json!({"tenant_id": TENANT, "client_id": CLIENT,
            "client_secret": ["hunter2"]}));
        assert!(!got.concat().contains("hunter2"), "{got:?}");
        assert!(got.iter().any(|g| g.contains("client_secret")), "{got:?}");
    }

    #[test]
    fn guids_and_tenants() {
        assert!(is_guid(TENANT) && is_guid(&TENANT.to_uppercase()));
        assert!(!is_guid("72f988bf-86f1-41af-91ab-2d7cd011db4") && !is_guid("x"));
        assert!(is_tenant("contoso.onmicrosoft.com") && is_tenant(TENANT));
        assert!(!is_tenant("contoso") && !is_tenant("a/../b.com") && !is_tenant("a..b"));
    }
}
