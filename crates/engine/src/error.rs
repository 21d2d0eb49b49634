use revoke_core::ConnectorError;
use revoke_store::StoreError;

/// What can stop planning or execution as a whole (one action's failure is a result, not this).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("unknown policy {policy:?} for job {job}: expected one of {known}")]
    UnknownPolicy {
        job: String,
        policy: String,
        known: String,
    },
    #[error("unknown user {subject:?}: not found in any connector searched ({searched})")]
    UnknownSubject { subject: String, searched: String },
    #[error("client domain {domain:?} overlaps the protected domain {protected:?}: a client job never strips our own shares")]
    ProtectedDomain { domain: String, protected: String },
    #[error("client domain {domain:?}: no connector of policy {policy:?} takes client jobs ({searched})")]
    NoClientConnector {
        domain: String,
        policy: String,
        searched: String,
    },
    #[error("discovery of {subject:?} in {connector} failed: {error}")]
    Discovery {
        connector: String,
        subject: String,
        error: ConnectorError,
    },
    #[error("connector {connector} broke its contract: {message}")]
    Contract { connector: String, message: String },
    #[error("connector {connector} is not configured")]
    UnknownConnector { connector: String },
    #[error("connector {connector}: {issue}")]
    Build {
        connector: String,
        issue: revoke_core::ConfigIssue,
    },
    #[error("the plan was hand-edited: its fingerprint does not match its content")]
    TamperedPlan,
    #[error("plan format {found} is not supported: expected {expected}")]
    PlanFormat { found: u32, expected: u32 },
}
