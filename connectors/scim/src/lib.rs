//! Generic SCIM 2.0 connector of revoked (RFC 7643/7644): deactivate, remove from groups, delete,
//! in any app that takes SCIM deprovisioning. One instance per app.
//!
//! One file per concern, as in every connector: `config` (typed table, pure validation),
//! `client` (HTTP, auth, ServiceProviderConfig), `discover`, `plan`, `apply` (apply and verify,
//! with If-Match where the app has ETags, each action on the user the plan pinned), `member`
//! (whether a group lists a user, judged from the app's answers, never from a filter),
//! `classify` (every status to a class and a stable code) and `escape` (filter values and URL
//! parts from untrusted values). What it does and needs is in
//! docs/connectors/scim.md.

mod apply;
mod classify;
mod client;
mod config;
mod discover;
/// Filter values and URL parts from untrusted values; public so the fuzz crate can check them.
pub mod escape;
mod member;
mod plan;

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use revoke_core::{
    Action, ActionKey, ConfigIssue, Connector, ConnectorError, ConnectorFactory, Discovery,
    Journal, Outcome, ProposedAction, Subject, Verdict,
};

pub use config::{validate, DeactivateForm, MatchBy, MemberRemoval, ScimConfig};
pub use discover::{GROUP_MEMBERSHIP, ID_KIND, SCIM_USER};
pub use plan::{DEACTIVATE_USER, DELETE_USER, REMOVE_GROUP_MEMBER};

/// The connector type name in config (`kind = "scim"`).
pub const KIND: &str = "scim";

/// One SCIM app; shared across tasks, it holds one HTTP client and the app's announced features.
#[derive(Debug)]
pub struct ScimConnector {
    instance: String,
    cfg: Arc<ScimConfig>,
    client: client::Client,
    locks: apply::GroupLocks,
}

impl ScimConnector {
    /// Builds the connector from a parsed config; makes no request.
    pub fn new(instance: &str, cfg: ScimConfig) -> Result<Self, String> {
        let client = client::Client::new(&cfg)?;
        Ok(Self {
            instance: instance.to_string(),
            cfg: Arc::new(cfg),
            client,
            locks: apply::GroupLocks::default(),
        })
    }

    pub fn config(&self) -> &ScimConfig {
        &self.cfg
    }

    fn ctx(&self) -> apply::Ctx<'_> {
        apply::Ctx {
            client: &self.client,
            cfg: &self.cfg,
            instance: &self.instance,
            locks: &self.locks,
        }
    }
}

#[async_trait]
impl Connector for ScimConnector {
    fn instance(&self) -> &str {
        &self.instance
    }

    fn kind(&self) -> &'static str {
        KIND
    }

    /// Reads ServiceProviderConfig, then one page of one user: both need the token to be valid
    /// (ServiceProviderConfig alone may be public).
    async fn check(&self) -> Result<(), ConnectorError> {
        self.client.features().await?;
        let path = format!(
            "/Users?{}",
            escape::query(&self.client.page_query("1", "1"))
        );
        let r = self
            .client
            .send(reqwest::Method::GET, &path, None, None)
            .await?;
        if r.ok() {
            Ok(())
        } else {
            Err(classify::status(&format!("GET {path}"), &r.failure()))
        }
    }

    async fn discover(&self, subject: &Subject) -> Result<Discovery, ConnectorError> {
        discover::discover(&self.client, &self.cfg, &self.instance, subject).await
    }

    /// Up to `read_concurrency` subjects at a time, results in the subjects' order.
    async fn discover_many(&self, subjects: &[Subject]) -> Result<Vec<Discovery>, ConnectorError> {
        let reads: Vec<_> = subjects
            .iter()
            .map(
                |s| -> futures_util::future::BoxFuture<'_, Result<Discovery, ConnectorError>> {
                    Box::pin(discover::discover(
                        &self.client,
                        &self.cfg,
                        &self.instance,
                        s,
                    ))
                },
            )
            .collect();
        stream::iter(reads)
            .buffered(self.cfg.read_concurrency.max(1))
            .try_collect()
            .await
    }

    fn plan(&self, subject: &Subject, discovery: &Discovery) -> Vec<ProposedAction> {
        if subject.client_domain().is_none() {
            return plan::plan(&self.cfg, &self.instance, subject, discovery);
        }
        plan::plan_client(&self.cfg, &self.instance, subject, discovery)
    }

    /// A departing client's users: every user with an address at its domain.
    fn takes_client_jobs(&self) -> bool {
        true
    }

    async fn apply(
        &self,
        action: &Action,
        key: &ActionKey,
        _journal: &dyn Journal,
    ) -> Result<Outcome, ConnectorError> {
        // Nothing is created, so every step is idempotent by reading the target alone.
        apply::apply(&self.ctx(), action, key).await
    }

    async fn verify(&self, action: &Action) -> Result<Verdict, ConnectorError> {
        apply::verify(&self.ctx(), action).await
    }
}

/// Registers the `scim` connector type.
#[derive(Debug, Default, Clone, Copy)]
pub struct ScimFactory;

impl ConnectorFactory for ScimFactory {
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
        let cfg = ScimConfig::from_value(params).map_err(|e| ConfigIssue::new(&path, e))?;
        let conn = ScimConnector::new(instance, cfg).map_err(|e| ConfigIssue::new(&path, e))?;
        Ok(Arc::new(conn))
    }
}
