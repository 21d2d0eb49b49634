//! What the AWS connectors of revoked share, so each stays about its own service:
//!
//! - `access`: the config keys every AWS connector has (region, endpoint, credentials, timeouts,
//!   the accounts to reach and the role to assume there), with pure validation;
//! - `sdk`: one `SdkConfig` built from them, with SDK retries off (only the executor retries),
//!   rustls on ring for HTTPS, and explicit timeouts;
//! - `accounts`: the accounts a connector acts in (configured, or every active member of the
//!   organization) and an `SdkConfig` per account through sts AssumeRole;
//! - `fault`: an SDK error reduced to status, code and message, and its default class.
//!
//! It names AWS, so it lives beside the connectors, never under crates/.

pub mod access;
pub mod accounts;
pub mod fault;
pub mod sdk;

pub use access::{AccessConfig, AccountSelection, DEFAULT_ROLE_NAME};
pub use accounts::AccountSet;
pub use fault::{classify, Fault, FaultKind};
pub use sdk::sdk_config;
