//! OneLogin connector of revoked: suspends the user, ends their OneLogin sessions, takes their
//! roles away and deletes them.
//!
//! One file per concern, as in every connector: `config` (typed table, pure validation),
//! `client` (reqwest on rustls, the token and the rate budget, no retries of its own),
//! `discover`, `plan`, `apply` (apply and verify), `batch` (one role call for many leavers) and
//! `classify` (every failure to a class and a stable code). What it does and needs is in
//! docs/connectors/onelogin.md.

mod apply;
mod batch;
mod classify;
mod client;
mod config;
mod discover;
mod plan;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use revoke_core::{
    Action, ActionKey, ConfigIssue, Connector, ConnectorError, ConnectorFactory, Discovery,
    Journal, Outcome, ProposedAction, RateBudget, Subject, Verdict,
};

pub use apply::LOGGED_OUT;
/// Public so the fuzz crate can check that an encoded value decodes to itself.
pub use client::encode;
pub use config::{validate, MatchBy, OneLoginConfig};
pub use discover::{ACCOUNT, ROLE_MEMBERSHIP, STATUS_SUSPENDED};
pub use plan::{DELETE_USER, LOGOUT_USER, REMOVE_ROLE, SUSPEND_USER};

/// The connector type name in config (`kind = "onelogin"`).
pub const KIND: &str = "onelogin";

/// How long the first removal from a role waits for others to join its call.
pub const DEFAULT_BATCH_WINDOW: Duration = Duration::from_millis(50);

/// One OneLogin account; shared by every job, so its token and rate budget are too.
#[derive(Debug)]
pub struct OneLoginConnector {
    instance: String,
    cfg: Arc<OneLoginConfig>,
    client: Arc<client::Client>,
    batcher: batch::Batcher,
}

impl OneLoginConnector {
    /// Builds the client; makes no network call.
    pub fn new(instance: &str, cfg: OneLoginConfig) -> Result<Self, String> {
        let client = Arc::new(client::Client::new(instance, &cfg)?);
        let batcher = batch::Batcher::new(client.clone(), DEFAULT_BATCH_WINDOW);
        Ok(Self {
            instance: instance.to_string(),
            cfg: Arc::new(cfg),
            client,
            batcher,
        })
    }

    /// The same, with another batching window for role removals (zero: no waiting).
    pub fn with_batch_window(mut self, window: Duration) -> Self {
        self.batcher = batch::Batcher::new(self.client.clone(), window);
        self
    }

    pub fn config(&self) -> &OneLoginConfig {
        &self.cfg
    }

    /// Access tokens fetched so far.
    pub fn tokens_fetched(&self) -> u64 {
        self.client.tokens_fetched()
    }

    /// HTTP calls sent so far, token calls included.
    pub fn calls(&self) -> u64 {
        self.client.calls()
    }

    fn ctx(&self) -> apply::Ctx<'_> {
        apply::Ctx {
            client: &self.client,
            batcher: &self.batcher,
            instance: &self.instance,
        }
    }
}

#[async_trait]
impl Connector for OneLoginConnector {
    fn instance(&self) -> &str {
        &self.instance
    }

    fn kind(&self) -> &'static str {
        KIND
    }

    /// OneLogin's own count, read from every answer's `X-RateLimit-*` headers.
    fn rate_budget(&self) -> Option<RateBudget> {
        Some(RateBudget::new(format!(
            "as OneLogin's X-RateLimit headers say: once spent, calls wait for the reset when it is within {} s (the request timeout), else they go back to the executor as rate_limited",
            self.cfg.timeout_secs
        )))
    }

    /// A token can be had and users can be listed with it.
    async fn check(&self) -> Result<(), ConnectorError> {
        let path = "/api/2/users?limit=1";
        let r = self.client.send(Method::GET, path, None).await?;
        if r.is_success() {
            Ok(())
        } else {
            Err(classify::status(&Method::GET, path, &r))
        }
    }

    async fn discover(&self, subject: &Subject) -> Result<Discovery, ConnectorError> {
        let mut all = self.discover_many(std::slice::from_ref(subject)).await?;
        all.pop().ok_or_else(|| {
            ConnectorError::permanent("bad_response", "discovery returned nothing for one subject")
        })
    }

    /// The role names are read once for all the subjects.
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
}

/// Registers the `onelogin` connector type.
#[derive(Debug, Default, Clone, Copy)]
pub struct OneLoginFactory;

impl ConnectorFactory for OneLoginFactory {
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
        let cfg = OneLoginConfig::from_value(params).map_err(|e| ConfigIssue::new(&path, e))?;
        let conn = OneLoginConnector::new(instance, cfg).map_err(|e| ConfigIssue::new(&path, e))?;
        Ok(Arc::new(conn))
    }
}
