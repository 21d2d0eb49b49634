use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The policy a job uses when it names none.
pub const DEFAULT_POLICY: &str = "default";

/// The whole configuration of revokectl and revoked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the embedded store and other state live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub executor: ExecutorConfig,
    /// Named policies; `default` is used when a job names none.
    #[serde(default)]
    pub policies: BTreeMap<String, PolicyConfig>,
    #[serde(default)]
    pub protected: ProtectedConfig,
    /// Connector instances by name: `[connectors.corp-ldap] kind = "ldap"`.
    #[serde(default)]
    pub connectors: BTreeMap<String, ConnectorSection>,
    /// The daemon: where it listens, how it shuts down, how often it polls.
    #[serde(default)]
    pub daemon: DaemonConfig,
    /// Who may call the daemon's API.
    #[serde(default)]
    pub api: ApiConfig,
    /// HR and IdP event sources by name: `[intake.bamboo] kind = "bamboohr"`, served at
    /// `/intake/bamboo`. The source kind validates the rest of the table.
    #[serde(default)]
    pub intake: BTreeMap<String, IntakeSection>,
    /// How high risk is derived from a termination event.
    #[serde(default)]
    pub risk: RiskConfig,
    /// The blast-radius guard: holds jobs for approval when too many arrive at once.
    #[serde(default)]
    pub guard: GuardConfig,
    #[serde(default)]
    pub evidence: EvidenceConfig,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from(".revoked")
}

impl Config {
    /// The store URL: the configured one, else a SQLite file in the data directory.
    pub fn store_url(&self) -> String {
        match &self.store.url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}", self.data_dir.join("revoked.db").display()),
        }
    }

    /// The named policy, or the built-in default when `default` is not configured.
    pub fn policy(&self, name: &str) -> Option<PolicyConfig> {
        match self.policies.get(name) {
            Some(p) => Some(p.clone()),
            None if name == DEFAULT_POLICY => Some(PolicyConfig::default()),
            None => None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH` or `postgres://...`; default: `sqlite://DATA_DIR/revoked.db`.
    pub url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutorConfig {
    pub retry: RetryConfig,
    /// How long a lease on an action lasts before another executor may take it over.
    pub lease_secs: u64,
    /// Actions run at once per connector instance, unless the instance sets `concurrency`.
    pub concurrency: usize,
    /// Upper bound on one call to a connector.
    pub action_timeout_secs: u64,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            retry: RetryConfig::default(),
            lease_secs: 30,
            concurrency: 4,
            action_timeout_secs: 60,
        }
    }
}

impl ExecutorConfig {
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }
    pub fn action_timeout(&self) -> Duration {
        Duration::from_secs(self.action_timeout_secs)
    }
}

/// Capped exponential backoff with full jitter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    pub base_ms: u64,
    pub cap_ms: u64,
    pub max_attempts: u32,
    pub max_elapsed_secs: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            base_ms: 500,
            cap_ms: 60_000,
            max_attempts: 8,
            max_elapsed_secs: 900,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// The connector instances this policy applies; all of them when absent.
    pub connectors: Option<Vec<String>>,
    /// Days between the effective time and the delete phase.
    pub retention_days: u32,
    /// Steps a person performs and acknowledges (`revokectl ack`).
    pub manual: Vec<ManualStep>,
    /// How far the phase order reaches: within each connector instance (a subject's revoke in
    /// LDAP waits for its lock in LDAP), or across every instance of the job (nothing of a
    /// subject is revoked anywhere before it is contained everywhere).
    pub phase_order: PhaseOrder,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            connectors: None,
            retention_days: 30,
            manual: Vec::new(),
            phase_order: PhaseOrder::default(),
        }
    }
}

/// The scope of the rule "a later phase of a subject runs only after its earlier phases succeeded".
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PhaseOrder {
    #[default]
    PerConnector,
    AcrossConnectors,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ManualStep {
    /// A short stable id (`collect-laptop`).
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub instructions: Option<String>,
    /// Which jobs get the step: a person's (the default: collect a laptop), a departing
    /// client's (tell the client its shares ended), or both.
    #[serde(default, rename = "for")]
    pub applies_to: StepFor,
}

/// Which jobs a manual step is part of.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StepFor {
    #[default]
    People,
    Clients,
    All,
}

impl StepFor {
    /// Whether a job about a client (`true`) or a person (`false`) gets the step.
    pub fn includes(self, client: bool) -> bool {
        match self {
            StepFor::People => !client,
            StepFor::Clients => client,
            StepFor::All => true,
        }
    }
}

/// Accounts that are never touched, whatever a plan finds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtectedConfig {
    /// Any identifier an account answers to: a username or alias, an email, an employee id, a
    /// DN (any RFC 4514 spelling), an ARN, an immutable id (entryUUID, IAM UserId, GitHub user
    /// id, SCIM id); compared case-insensitively, DNs in canonical form.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Our own email domains: a client job naming one of them, a subdomain of one or a parent
    /// of one is refused, so no client job can strip our own people's shares.
    #[serde(default)]
    pub domains: Vec<String>,
}

impl ProtectedConfig {
    /// The list in the form the planner matches accounts with.
    pub fn set(&self) -> revoke_core::Protected {
        revoke_core::Protected::new(&self.accounts)
    }

    /// The protected domain a client domain overlaps (the same, a subdomain or a parent), as
    /// written in the configuration.
    pub fn domain_for(&self, client: &revoke_core::ClientDomain) -> Option<&str> {
        self.domains.iter().map(String::as_str).find(|d| {
            let ours = d.trim().trim_end_matches('.');
            client.matches_domain(ours)
                || revoke_core::ClientDomain::parse(ours)
                    .is_ok_and(|o| o.matches_domain(client.as_str()))
        })
    }
}

/// One connector instance: its type, and the rest of its table for the connector to read.
#[derive(Clone, Deserialize)]
pub struct ConnectorSection {
    pub kind: String,
    /// Actions run at once against this instance (overrides `executor.concurrency`).
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Every other key of the table, as the connector's own config.
    #[serde(flatten)]
    pub params: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// `HOST:PORT` the API and intake listen on.
    pub listen: String,
    /// After SIGTERM/SIGINT: how long in-flight actions may take to finish before the process exits.
    pub shutdown_grace_secs: u64,
    /// How often workers look for due jobs and actions when nothing woke them.
    pub poll_ms: u64,
    /// Actions run at once by this process (across connectors; each connector keeps its own cap).
    pub workers: usize,
    /// Log JSON lines instead of text.
    pub json_logs: bool,
    /// The default log filter (`RUST_LOG` overrides it).
    pub log_filter: String,
    /// A connection must send a request's whole head (request line and headers) within this
    /// many seconds of the connection opening, or of the end of its previous request (so this is also
    /// how long a keep-alive connection may sit idle); otherwise it is closed.
    pub header_read_timeout_secs: u64,
    /// A request's whole body must arrive within this many seconds of its head, or the request is
    /// answered 408 and the connection closed.
    pub body_read_timeout_secs: u64,
    /// Connections served at once; at the bound no further connection is accepted until one
    /// closes (the kernel's listen backlog holds the rest).
    pub max_connections: usize,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8470".into(),
            shutdown_grace_secs: 30,
            poll_ms: 500,
            workers: 8,
            json_logs: false,
            log_filter: "info".into(),
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 30,
            max_connections: 1024,
        }
    }
}

impl DaemonConfig {
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
    pub fn poll(&self) -> Duration {
        Duration::from_millis(self.poll_ms)
    }
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs)
    }
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_secs(self.body_read_timeout_secs)
    }
}

/// Upper bounds of the daemon's HTTP settings: a value past them is a typo or a unit mistake,
/// and would leave the daemon open to the slow clients these settings exist to drop.
pub const MAX_HEADER_READ_TIMEOUT_SECS: u64 = 300;
pub const MAX_BODY_READ_TIMEOUT_SECS: u64 = 3600;
pub const MAX_CONNECTIONS: usize = 65_536;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Bearer tokens by name. Only their SHA-256 is stored (`revokectl token new` makes one).
    #[serde(default)]
    pub tokens: BTreeMap<String, ApiToken>,
}

/// One API token: its SHA-256 (hex) and what it may do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    pub sha256: String,
    pub scope: TokenScope,
}

/// `read` sees jobs and evidence; `operator` may also submit, approve, reject, cancel and acknowledge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenScope {
    Read,
    Operator,
}

impl TokenScope {
    pub fn as_str(&self) -> &'static str {
        match self {
            TokenScope::Read => "read",
            TokenScope::Operator => "operator",
        }
    }
}

/// One event source: its kind, and the rest of its table for the intake to read.
#[derive(Clone, Deserialize)]
pub struct IntakeSection {
    pub kind: String,
    /// The policy its jobs are planned under (default: `default`).
    #[serde(default)]
    pub policy: Option<String>,
    /// Every other key of the table, as the source's own config.
    #[serde(flatten)]
    pub params: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskConfig {
    /// An involuntary termination is high risk (contained at once).
    pub involuntary_is_high: bool,
    /// A termination whose reason contains one of these (case-insensitive) is high risk.
    pub high_reasons: Vec<String>,
}

impl Default for RiskConfig {
    fn default() -> Self {
        Self {
            involuntary_is_high: true,
            high_reasons: vec!["misconduct".into(), "cause".into(), "security".into()],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardConfig {
    /// More than this many new jobs within the window holds further ones for approval; 0 = off.
    pub max_jobs: u32,
    pub window_secs: u64,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            max_jobs: 10,
            window_secs: 3600,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvidenceConfig {
    /// Access removed later than this after the termination time is flagged in evidence.
    pub sla_hours: u64,
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        Self { sla_hours: 24 }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_manual_step_is_for_people_unless_it_says_otherwise() {
        let cfg = crate::load_str(
            r#"[policies.default]
manual = [
  { id = "laptop", title = "Collect laptop" },
  { id = "tell", title = "Tell the client", for = "clients" },
  { id = "log", title = "Log it", for = "all" },
]"#,
        )
        .expect("config");
        let steps = &cfg.policies["default"].manual;
        let for_ = |client: bool| -> Vec<&str> {
            steps
                .iter()
                .filter(|s| s.applies_to.includes(client))
                .map(|s| s.id.as_str())
                .collect()
        };
        assert_eq!(for_(false), ["laptop", "log"]);
        assert_eq!(for_(true), ["tell", "log"]);
        let bad = crate::load_str(
            "[policies.default]\nmanual = [{ id = \"x\", title = \"x\", for = \"robots\" }]\n",
        );
        assert!(bad.is_err(), "an unknown audience is refused");
    }
}
