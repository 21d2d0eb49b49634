//! AWS IAM connector of revoked: IAM users contained at once (deny-all quarantine, keys
//! deactivated, console password deleted) and deleted after retention in the order IAM
//! requires; the service keys a leaver owned rotated, crash-safe; across accounts through sts
//! AssumeRole.
//!
//! One file per concern, as in every connector: `config`, `client`, `discover`, `plan`, `apply`
//! (apply and verify), `pin` (the pinned UserId found again before anything is sent), `rotate`
//! and `destination` (service key rotation), `classify` and `escape`. What it does and needs is
//! in docs/connectors/aws-iam.md.

mod apply;
mod classify;
mod client;
mod config;
mod destination;
mod discover;
mod escape;
mod pin;
mod plan;
mod rotate;

use std::sync::Arc;

use async_trait::async_trait;
use revoke_core::{
    Action, ActionKey, ConfigIssue, Connector, ConnectorError, ConnectorFactory, Discovery,
    Journal, Outcome, ProposedAction, RateBudget, Subject, Verdict,
};
use tokio::sync::OnceCell;

pub use apply::QUARANTINE_DOCUMENT;
pub use config::{validate, Destination, DiscoveryMode, IamConfig, MatchBy};
pub use discover::*;
pub use plan::*;

/// The connector type name in config (`kind = "aws-iam"`).
pub const KIND: &str = "aws-iam";

/// One IAM instance: its accounts and their clients, built on first use.
#[derive(Debug)]
pub struct IamConnector {
    instance: String,
    cfg: Arc<IamConfig>,
    clients: OnceCell<client::Clients>,
}

impl IamConnector {
    /// Builds the connector; no request is sent and no credential is resolved here.
    pub fn new(instance: &str, cfg: IamConfig) -> Self {
        Self {
            instance: instance.to_string(),
            cfg: Arc::new(cfg),
            clients: OnceCell::new(),
        }
    }

    pub fn config(&self) -> &IamConfig {
        &self.cfg
    }

    async fn clients(&self) -> &client::Clients {
        self.clients
            .get_or_init(|| client::Clients::new(&self.instance, &self.cfg))
            .await
    }

    async fn ctx(&self) -> client::Ctx<'_> {
        client::Ctx {
            clients: self.clients().await,
            cfg: &self.cfg,
            instance: &self.instance,
        }
    }
}

#[async_trait]
impl Connector for IamConnector {
    fn instance(&self) -> &str {
        &self.instance
    }

    fn kind(&self) -> &'static str {
        KIND
    }

    /// No pace of its own: the SDK's retries are off and the executor paces.
    fn rate_budget(&self) -> Option<RateBudget> {
        Some(RateBudget::new(format!(
            "AWS SDK retries off; the executor paces; at most {} reads at once",
            self.cfg.read_concurrency
        )))
    }

    /// The rotation destination can take a secret, the credentials work and every account is
    /// reachable (AssumeRole included).
    async fn check(&self) -> Result<(), ConnectorError> {
        if let Some(reason) = destination::problem(&self.cfg) {
            return Err(ConnectorError::permanent(
                "destination_unwritable",
                format!("expected the rotation destination to take secrets, found: {reason}"),
            ));
        }
        let c = self.clients().await;
        for account in c.accounts.accounts().await? {
            let iam = c.iam(&account).await?;
            iam.get_account_summary()
                .send()
                .await
                .map_err(|e| classify::CallError::of("iam:GetAccountSummary", &e))?;
        }
        Ok(())
    }

    async fn discover(&self, subject: &Subject) -> Result<Discovery, ConnectorError> {
        let mut v = self.discover_many(std::slice::from_ref(subject)).await?;
        v.pop()
            .ok_or_else(|| ConnectorError::permanent("no_discovery", "discovery returned nothing"))
    }

    /// One scan per account for the whole batch (see discover.rs).
    async fn discover_many(&self, subjects: &[Subject]) -> Result<Vec<Discovery>, ConnectorError> {
        discover::discover_many(self.clients().await, &self.cfg, &self.instance, subjects).await
    }

    fn plan(&self, _subject: &Subject, discovery: &Discovery) -> Vec<ProposedAction> {
        plan::plan(&self.cfg, discovery)
    }

    async fn apply(
        &self,
        action: &Action,
        _key: &ActionKey,
        journal: &dyn Journal,
    ) -> Result<Outcome, ConnectorError> {
        apply::apply(&self.ctx().await, action, journal).await
    }

    async fn verify(&self, action: &Action) -> Result<Verdict, ConnectorError> {
        apply::verify(&self.ctx().await, action).await
    }

    /// One scan per account confirms every action on the users gone; a user still there
    /// is read once per listing, not once per action (apply.rs).
    async fn verify_many(&self, actions: &[Action]) -> Vec<Result<Verdict, ConnectorError>> {
        apply::verify_many(&self.ctx().await, actions).await
    }

    fn batch_verification(&self) -> bool {
        true
    }
}

/// Registers the `aws-iam` connector type.
#[derive(Debug, Default, Clone, Copy)]
pub struct IamFactory;

impl ConnectorFactory for IamFactory {
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
        let cfg = IamConfig::from_value(params).map_err(|e| ConfigIssue::new(&path, e))?;
        Ok(Arc::new(IamConnector::new(instance, cfg)))
    }
}
