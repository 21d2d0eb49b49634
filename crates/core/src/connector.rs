use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{
    Account, Action, ActionKey, ActionKind, ConnectorError, Finding, Journal, Outcome, Phase,
    Subject, Verdict,
};

/// The pseudo connector instance of steps a person performs and acknowledges.
pub const MANUAL_CONNECTOR: &str = "manual";

/// What one connector instance found for one subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discovery {
    pub connector: String,
    pub subject: String,
    /// Whether the subject has an account in this system at all.
    pub found: bool,
    pub findings: Vec<Finding>,
    /// Every account found for the subject (their own, and others the plan touches: a service
    /// user they own, an invitation to their email), each with its immutable id and every
    /// identifier it answers to. Each proposal's `account` names one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<Account>,
    /// What a person reviewing the plan must know and no action expresses: something found and
    /// deliberately left alone (a shared drive the subject alone organizes, a link share, a
    /// member whose tie to a client cannot be shown). The planner copies each into the plan's
    /// notes under the connector's name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Discovery {
    /// Nothing found for `subject` in `connector`.
    pub fn not_found(connector: impl Into<String>, subject: impl Into<String>) -> Self {
        Self {
            connector: connector.into(),
            subject: subject.into(),
            found: false,
            findings: Vec::new(),
            accounts: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// The account whose immutable id is `id`.
    pub fn account(&self, id: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.id == id)
    }
}

/// An action as a connector proposes it; the planner gives it an id, a key, a time and its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposedAction {
    pub kind: ActionKind,
    pub target: String,
    pub params: BTreeMap<String, String>,
    pub phase: Phase,
    /// Other proposals of the same connector and subject that must succeed first, as (kind, target).
    pub after: Vec<(ActionKind, String)>,
    pub summary: String,
    /// The `id` of the discovered [`Account`] this action touches: the planner pins the action
    /// to it and leaves the action out when that account is protected.
    pub account: String,
    /// A grace period: the action is not due before this long after its prerequisites (`after`,
    /// and the earlier phases of its subject) succeeded, and not before its phase's time (the
    /// delete of a rotated-out key a week after the rotation).
    pub delay: Option<std::time::Duration>,
}

/// One system that holds access. Every method but `apply` is read-only.
///
/// The contract in full is in docs/connectors.md.
#[async_trait]
pub trait Connector: Send + Sync + fmt::Debug {
    /// The instance name from config (`corp-ldap`).
    fn instance(&self) -> &str;

    /// The connector type (`ldap`).
    fn kind(&self) -> &'static str;

    /// Credentials preflight: can we reach the system and act with these credentials.
    async fn check(&self) -> Result<(), ConnectorError>;

    /// Read-only: every access the subject holds in this system.
    async fn discover(&self, subject: &Subject) -> Result<Discovery, ConnectorError>;

    /// Read-only discovery of several subjects; override where one scan beats one call each.
    async fn discover_many(&self, subjects: &[Subject]) -> Result<Vec<Discovery>, ConnectorError> {
        let mut out = Vec::with_capacity(subjects.len());
        for s in subjects {
            out.push(self.discover(s).await?);
        }
        Ok(out)
    }

    /// The actions that remove what discovery found; pure.
    fn plan(&self, subject: &Subject, discovery: &Discovery) -> Vec<ProposedAction>;

    /// Performs one action. MUST be idempotent: an action whose effect is already there is
    /// `Outcome::AlreadyDone`, and a connector that can tell so without a mutation sends none.
    ///
    /// `journal` is this action's durable record across attempts: an action of several steps
    /// records each step's fact before depending on it, and reads it back on the next attempt.
    async fn apply(
        &self,
        action: &Action,
        key: &ActionKey,
        journal: &dyn Journal,
    ) -> Result<Outcome, ConnectorError>;

    /// Read-only re-check that the action's effect holds.
    async fn verify(&self, action: &Action) -> Result<Verdict, ConnectorError>;

    /// Read-only re-check of several applied actions, one result per action in the same order;
    /// override where one read confirms many (one search per account instead of one per
    /// action). The default reads each back with [`Connector::verify`].
    async fn verify_many(&self, actions: &[Action]) -> Vec<Result<Verdict, ConnectorError>> {
        let mut out = Vec::with_capacity(actions.len());
        for a in actions {
            out.push(self.verify(a).await);
        }
        out
    }

    /// True when this connector's read-backs are cheaper together: the executor then does not
    /// verify each action right after it succeeds, but reads back the actions it applied together
    /// through [`Connector::verify_many`] once the run has nothing more to send (or goes idle).
    /// Dependents do not wait for verdicts either way.
    fn batch_verification(&self) -> bool {
        false
    }

    /// True when this connector can find and remove what a departing client reaches (a subject
    /// with a [client domain](Subject::client_domain): shares with the domain's addresses,
    /// outside collaborators at it). The planner sends client subjects only to connectors that
    /// answer true, and says in the plan which instances of the policy were not searched.
    fn takes_client_jobs(&self) -> bool {
        false
    }

    /// The instance's own client-side rate budget, in words a person reads, built from its
    /// validated config (no I/O); `None` when the connector paces nothing itself. The console's
    /// connectors page shows it.
    fn rate_budget(&self) -> Option<RateBudget> {
        None
    }
}

/// What one connector instance holds itself to before the vendor's limits do: "at most 8
/// requests a second", "writes at least 1 s apart (GitHub's secondary limit)".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateBudget {
    /// The budget as a person reads it.
    pub summary: String,
    /// Requests held on this budget since the process started, when the connector counts them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waited: Option<u64>,
}

impl RateBudget {
    /// A budget described by `summary`, with no live count.
    pub fn new(summary: impl Into<String>) -> Self {
        Self {
            summary: summary.into(),
            waited: None,
        }
    }
}

/// One problem in a connector's configuration: the key's path, what was expected, what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigIssue {
    pub path: String,
    pub message: String,
}

impl ConfigIssue {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Builds connectors of one type from their config table. Validation is pure and comes first.
pub trait ConnectorFactory: Send + Sync {
    fn kind(&self) -> &'static str;

    /// Checks the table without any I/O; every issue names its key under `path`.
    fn validate(&self, path: &str, params: &serde_json::Value) -> Result<(), Vec<ConfigIssue>>;

    /// Builds the connector; called only after `validate` passed. No network call is made here.
    fn build(
        &self,
        instance: &str,
        params: &serde_json::Value,
    ) -> Result<Arc<dyn Connector>, ConfigIssue>;
}
