//! LDAP connector of revoked: discover, lock, remove from groups, delete.
//!
//! One file per concern, as in every connector: `config` (typed table, pure validation),
//! `client` (the shared connection), `discover`, `plan`, `apply` (apply and verify), `classify`
//! (every error to a class and a stable code), `escape` (filters from untrusted values) and `pin`
//! (the entry an action is pinned to, found again by its immutable id at apply and verify time).
//! What it does and needs is in docs/connectors/ldap.md.

mod apply;
mod classify;
mod client;
mod config;
mod discover;
/// Filters from untrusted values; public so the fuzz crate can check them against a parser.
pub mod escape;
mod lookup;
mod pin;
mod plan;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use async_trait::async_trait;
use revoke_core::{
    Action, ActionKey, ConfigIssue, Connector, ConnectorError, ConnectorFactory, Discovery,
    Journal, Outcome, ProposedAction, Subject, Verdict,
};

pub use config::{validate, LdapConfig, LockMethod, PPOLICY_LOCKED};
pub use plan::{DELETE_ACCOUNT, LOCK_ACCOUNT, REMOVE_GROUP_MEMBER};

/// The connector type name in config (`kind = "ldap"`).
pub const KIND: &str = "ldap";

/// One LDAP directory; shared across tasks, it holds one multiplexed connection.
#[derive(Debug)]
pub struct LdapConnector {
    instance: String,
    cfg: Arc<LdapConfig>,
    client: Arc<client::Client>,
    lookups: Arc<lookup::Lookups>,
    /// Writes go out before their read (guarded by a critical assertion or checked by a shared
    /// look-up) until the server refuses the assertion control.
    blind: AtomicBool,
}

impl LdapConnector {
    /// Builds the connector from a parsed config; reads `tls_ca_file` but makes no connection.
    pub fn new(instance: &str, cfg: LdapConfig) -> Result<Self, String> {
        let tls = if cfg.uses_tls() {
            Some(client::tls_config(cfg.tls_ca_file.as_deref())?)
        } else {
            None
        };
        let cfg = Arc::new(cfg);
        let client = Arc::new(client::Client::new(instance, cfg.clone(), tls));
        let lookups = Arc::new(lookup::Lookups::new(client.clone(), cfg.clone()));
        Ok(Self {
            instance: instance.to_string(),
            cfg,
            client,
            lookups,
            blind: AtomicBool::new(true),
        })
    }

    pub fn config(&self) -> &LdapConfig {
        &self.cfg
    }

    fn ctx(&self) -> apply::Ctx<'_> {
        apply::Ctx {
            client: &self.client,
            cfg: &self.cfg,
            instance: &self.instance,
            lookups: &self.lookups,
            blind: &self.blind,
        }
    }
}

#[async_trait]
impl Connector for LdapConnector {
    fn instance(&self) -> &str {
        &self.instance
    }

    fn kind(&self) -> &'static str {
        KIND
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        self.client.reconnect().await.map(|_| ())
    }

    async fn discover(&self, subject: &Subject) -> Result<Discovery, ConnectorError> {
        discover::discover(&self.client, &self.cfg, &self.instance, subject).await
    }

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
        apply::apply(&self.ctx(), action, key, journal.attempt()).await
    }

    async fn verify(&self, action: &Action) -> Result<Verdict, ConnectorError> {
        apply::verify(&self.ctx(), action).await
    }

    async fn verify_many(&self, actions: &[Action]) -> Vec<Result<Verdict, ConnectorError>> {
        apply::verify_many(&self.ctx(), actions).await
    }

    fn batch_verification(&self) -> bool {
        true
    }
}

/// Registers the `ldap` connector type.
#[derive(Debug, Default, Clone, Copy)]
pub struct LdapFactory;

impl ConnectorFactory for LdapFactory {
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
        let cfg = LdapConfig::from_value(params).map_err(|e| ConfigIssue::new(&path, e))?;
        let conn = LdapConnector::new(instance, cfg)
            .map_err(|e| ConfigIssue::new(format!("{path}.tls_ca_file"), e))?;
        Ok(Arc::new(conn))
    }
}
