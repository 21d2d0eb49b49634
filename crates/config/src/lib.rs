//! Layered configuration of revoked: a TOML file, then `REVOKE__SECTION__KEY` environment
//! variables, then `*_file` secrets, validated without any I/O before a client is built.

mod load;
mod model;
mod validate;

pub use load::{load, load_str, ConfigError};
pub use model::{
    Config, ConnectorSection, ExecutorConfig, ManualStep, PolicyConfig, ProtectedConfig,
    RetryConfig, StoreConfig, DEFAULT_POLICY,
};
pub use revoke_core::ConfigIssue;
pub use secrecy::{ExposeSecret, SecretString};
