//! Layered configuration of revoked: a TOML file, then `REVOKE__SECTION__KEY` environment
//! variables, then `*_file` secrets, validated without any I/O before a client is built.

mod load;
mod model;
mod validate;

pub use load::is_secret_key;
pub use load::{load, load_str, ConfigError};
pub use model::{
    ApiConfig, ApiToken, Config, ConnectorSection, DaemonConfig, EvidenceConfig, ExecutorConfig,
    GuardConfig, IntakeSection, ManualStep, PhaseOrder, PolicyConfig, ProtectedConfig, RetryConfig,
    RiskConfig, StepFor, StoreConfig, TokenScope, DEFAULT_POLICY,
};
pub use revoke_core::ConfigIssue;
pub use secrecy::{ExposeSecret, SecretString};
