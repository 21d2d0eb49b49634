//! Vault and OpenBao connector of revoked: disables the leaver's entity (every token of it is
//! refused at once) and revokes its tokens, takes its direct groups and policies away, deletes
//! its userpass users, aliases and the entity after retention, and asks the remaining key
//! holders to rotate the root key when the leaver held a share.
//!
//! One file per concern, as in every connector: `config` (typed table, pure validation),
//! `client` (reqwest on rustls, a token or an AppRole, a pace and a 429 hold, no retries of its
//! own), `discover`, `plan`, `apply` (apply and verify) and `classify`. What it does and needs
//! is in docs/connectors/vault.md.

mod apply;
mod classify;
mod client;
mod config;
mod discover;
mod plan;

use std::sync::Arc;

use async_trait::async_trait;
use revoke_core::{
    Action, ActionKey, ConfigIssue, Connector, ConnectorError, ConnectorFactory, Discovery,
    Journal, Outcome, ProposedAction, RateBudget, Subject, Verdict,
};

pub use config::{validate, Flavor, Mount, RootTokens, VaultConfig};
pub use discover::{
    v1, v1_with, ALIAS, ENTITY, ENTITY_ID, GROUP_MEMBERSHIP, KEY_HOLDER, KEY_HOLDER_ENTRY, POLICY,
    ROOT_TOKEN, TOKEN,
};
pub use plan::{
    rekey_steps, DELETE_ALIAS, DELETE_ENTITY, DELETE_USER, DISABLE_ENTITY, REMOVE_GROUP,
    REMOVE_POLICIES, REVIEW_ROOT_TOKENS, REVOKE_LOGIN_TOKENS, REVOKE_ROOT_TOKEN, REVOKE_TOKEN,
    ROTATE_ROOT_KEY,
};

/// The connector type name in config (`kind = "vault"`).
pub const KIND: &str = "vault";

/// One Vault or OpenBao cluster (or namespace); shared by every job, so its pace is too.
#[derive(Debug)]
pub struct VaultConnector {
    instance: String,
    cfg: Arc<VaultConfig>,
    client: Arc<client::Client>,
}

impl VaultConnector {
    /// Builds the client; makes no network call.
    pub fn new(instance: &str, cfg: VaultConfig) -> Result<Self, String> {
        let client = Arc::new(client::Client::new(instance, &cfg)?);
        Ok(Self {
            instance: instance.to_string(),
            cfg: Arc::new(cfg),
            client,
        })
    }

    pub fn config(&self) -> &VaultConfig {
        &self.cfg
    }

    /// HTTP calls sent so far.
    pub fn calls(&self) -> u64 {
        self.client.calls()
    }

    /// 429 answers received so far.
    pub fn rate_limited(&self) -> u64 {
        self.client.rate_limited()
    }

    /// Calls sent before an earlier 429's Retry-After had passed.
    pub fn early(&self) -> u64 {
        self.client.early()
    }

    /// AppRole logins so far (0 with a token).
    pub fn logins(&self) -> u64 {
        self.client.logins()
    }

    fn ctx(&self) -> apply::Ctx<'_> {
        apply::Ctx {
            client: &self.client,
            instance: &self.instance,
        }
    }
}

#[async_trait]
impl Connector for VaultConnector {
    fn instance(&self) -> &str {
        &self.instance
    }

    fn kind(&self) -> &'static str {
        KIND
    }

    /// `requests_per_second`; `None` when it is 0 (no pace).
    fn rate_budget(&self) -> Option<RateBudget> {
        (self.cfg.requests_per_second > 0).then(|| {
            RateBudget::new(format!(
                "at most {} requests a second",
                self.cfg.requests_per_second
            ))
        })
    }

    /// The token is valid and may read the auth mounts (`sys/auth`).
    async fn check(&self) -> Result<(), ConnectorError> {
        discover::mounts(&self.client).await.map(drop)
    }

    async fn discover(&self, subject: &Subject) -> Result<Discovery, ConnectorError> {
        discover::discover_one(&self.client, &self.cfg, &self.instance, subject).await
    }

    /// One `sys/auth` read and one token scan for all the subjects.
    async fn discover_many(&self, subjects: &[Subject]) -> Result<Vec<Discovery>, ConnectorError> {
        discover::discover_many(&self.client, &self.cfg, &self.instance, subjects).await
    }

    fn plan(&self, _subject: &Subject, discovery: &Discovery) -> Vec<ProposedAction> {
        plan::plan(&self.cfg, discovery)
    }

    async fn apply(
        &self,
        action: &Action,
        key: &ActionKey,
        journal: &dyn Journal,
    ) -> Result<Outcome, ConnectorError> {
        apply::apply(&self.ctx(), action, key, journal).await
    }

    async fn verify(&self, action: &Action) -> Result<Verdict, ConnectorError> {
        apply::verify(&self.ctx(), action).await
    }

    /// One read of each pinned entity confirms its disable, policies, groups and delete.
    async fn verify_many(&self, actions: &[Action]) -> Vec<Result<Verdict, ConnectorError>> {
        apply::verify_many(&self.ctx(), actions).await
    }

    fn batch_verification(&self) -> bool {
        true
    }
}

/// Registers the `vault` connector type (Vault and OpenBao).
#[derive(Debug, Default, Clone, Copy)]
pub struct VaultFactory;

impl ConnectorFactory for VaultFactory {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn validate(&self, path: &str, params: &serde_json::Value) -> Result<(), Vec<ConfigIssue>> {
        config::validate(path, params)
    }

    fn build(
        &self,
        instance: &str,
        params: &serde_json::Value,
    ) -> Result<Arc<dyn Connector>, ConfigIssue> {
        let path = format!("connectors.{instance}");
        let cfg = VaultConfig::from_value(params).map_err(|e| ConfigIssue::new(&path, e))?;
        let conn = VaultConnector::new(instance, cfg).map_err(|e| ConfigIssue::new(&path, e))?;
        Ok(Arc::new(conn))
    }
}
