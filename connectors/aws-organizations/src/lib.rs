//! AWS Organizations connector of revoked: the member accounts a leaver owned (by tag or by
//! configuration) are closed, within AWS's closure quota, or moved into a suspended OU; the
//! management account never is.
//!
//! One file per concern, as in every connector: `config` (typed table, pure validation),
//! `client` (the SDK client, built on first use, no retries of its own), `discover` (one scan of
//! the organization for a batch of people), `quota` (AWS's closure quota, counted), `plan`,
//! `apply` (apply and verify, with the closure's wait), `classify` (every failure to a class
//! and a stable code). What it does and needs is in docs/connectors/aws-organizations.md.

mod apply;
mod classify;
mod client;
mod config;
mod discover;
mod plan;
mod quota;

use std::sync::Arc;

use async_trait::async_trait;
use revoke_core::{
    Action, ActionKey, ConfigIssue, Connector, ConnectorError, ConnectorFactory, Discovery,
    Journal, Outcome, ProposedAction, RateBudget, Subject, Verdict,
};
use tracing::debug;

pub use apply::{wait_for_closure, Closure, CLOSE_ACCEPTED, CLOSE_REQUESTED};
pub use classify::classify;
pub use config::{
    is_ou_id, validate, AccountAction, OrganizationsConfig, AWS_CLOSURE_PERCENT,
    DEFAULT_CLOSE_POLL_SECS, DEFAULT_CLOSE_WAIT_SECS, DEFAULT_OWNER_TAG,
};
pub use discover::{CLOSURE_QUOTA, MANAGEMENT_ACCOUNT, MANAGEMENT_REFUSED, MEMBER_ACCOUNT};
pub use plan::{CLOSE_ACCOUNT, MOVE_ACCOUNT};
pub use quota::{
    closure_limit, closure_quota, counts_against, ClosureQuota, QuotaInput, AWS_MAX_CLOSURES,
    AWS_MIN_CLOSURES, CLOSED_AT_TAG, WINDOW_DAYS,
};

/// The connector type name in config (`kind = "aws-organizations"`).
pub const KIND: &str = "aws-organizations";

/// One organization, reached with management-account (or delegated administrator) credentials.
#[derive(Debug)]
pub struct OrganizationsConnector {
    instance: String,
    cfg: Arc<OrganizationsConfig>,
    client: client::Client,
}

impl OrganizationsConnector {
    /// Makes no network call; the SDK client is built on first use.
    pub fn new(instance: &str, cfg: OrganizationsConfig) -> Self {
        Self {
            instance: instance.to_string(),
            client: client::Client::new(cfg.access.clone()),
            cfg: Arc::new(cfg),
        }
    }

    pub fn config(&self) -> &OrganizationsConfig {
        &self.cfg
    }

    fn ctx(&self) -> apply::Ctx<'_> {
        apply::Ctx {
            client: &self.client,
            cfg: &self.cfg,
            instance: &self.instance,
        }
    }
}

#[async_trait]
impl Connector for OrganizationsConnector {
    fn instance(&self) -> &str {
        &self.instance
    }

    fn kind(&self) -> &'static str {
        KIND
    }

    /// No pace of its own: the SDK's retries are off and the executor paces.
    fn rate_budget(&self) -> Option<RateBudget> {
        Some(RateBudget::new("AWS SDK retries off; the executor paces"))
    }

    /// The credentials see the organization and may list its accounts; closing needs all
    /// features; the suspended OU exists.
    async fn check(&self) -> Result<(), ConnectorError> {
        let org = self.client.organization().await?;
        if self.cfg.action == AccountAction::Close && !org.all_features {
            return Err(ConnectorError::conflict(
                "not_all_features",
                format!(
                    "organization {} has only consolidated billing; CloseAccount needs all features enabled",
                    org.id
                ),
            ));
        }
        self.client.list_accounts().await?;
        if let Some(ou) = &self.cfg.suspended_ou {
            if !self.client.ou_exists(ou).await? {
                return Err(ConnectorError::permanent(
                    "ou_not_found",
                    format!("suspended_ou {ou} is not an OU of organization {}", org.id),
                ));
            }
        }
        Ok(())
    }

    async fn discover(&self, subject: &Subject) -> Result<Discovery, ConnectorError> {
        let mut all = self.discover_many(std::slice::from_ref(subject)).await?;
        all.pop().ok_or_else(|| {
            ConnectorError::permanent("bad_response", "discovery returned nothing for one subject")
        })
    }

    /// One scan of the organization for all the subjects.
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
        // Organizations takes no idempotency key; reads before writes stand in for one.
        debug!(connector = %self.instance, action_id = %action.id, key = %key, "applying");
        apply::apply(&self.ctx(), action, journal).await
    }

    async fn verify(&self, action: &Action) -> Result<Verdict, ConnectorError> {
        apply::verify(&self.ctx(), action).await
    }
}

/// Registers the `aws-organizations` connector type.
#[derive(Debug, Default, Clone, Copy)]
pub struct OrganizationsFactory;

impl ConnectorFactory for OrganizationsFactory {
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
        let cfg =
            OrganizationsConfig::from_value(params).map_err(|e| ConfigIssue::new(&path, e))?;
        Ok(Arc::new(OrganizationsConnector::new(instance, cfg)))
    }
}
