//! Okta connector of revoked: suspends or deactivates the user, ends their sessions and revokes
//! their OAuth tokens, takes their groups, direct app assignments and admin roles away, and
//! deletes them after retention (Okta's two-step delete).
//!
//! One file per concern, as in every connector: `config` (typed table, pure validation),
//! `client` (reqwest on rustls, the SSWS token or the OAuth service app, a rate budget per Okta
//! bucket, no retries of its own),
//! `discover`, `plan`, `apply` (apply and verify) and `classify` (every failure to a class and a
//! stable code). What it does and needs is in docs/connectors/okta.md.

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

pub use apply::SESSIONS_CLEARED;
pub use classify::{E_NOT_FOUND, E_RATE_LIMIT};
pub use client::encode;
pub use config::{validate, Contain, OktaConfig};
pub use discover::{
    check_value, is_user_id, ACCOUNT, ADMIN_ROLE, APP_ASSIGNMENT, APP_GROUP_MEMBERSHIP, FACTORS,
    GRANTS, GROUP_ADMIN_ROLE, GROUP_APP_ASSIGNMENT, GROUP_MEMBERSHIP,
};
pub use plan::{
    APP_GROUP, CLEAR_SESSIONS, DEACTIVATE_USER, DELETE_USER, REMOVE_ADMIN_ROLE, REMOVE_APP,
    REMOVE_GROUP, REMOVE_IN_SOURCE, RESET_FACTORS, REVOKE_GRANTS, SUSPEND_USER,
};

/// The connector type name in config (`kind = "okta"`).
pub const KIND: &str = "okta";

/// One Okta org; shared by every job, so its rate budget is too.
#[derive(Debug)]
pub struct OktaConnector {
    instance: String,
    cfg: Arc<OktaConfig>,
    client: Arc<client::Client>,
}

impl OktaConnector {
    /// Builds the client; makes no network call.
    pub fn new(instance: &str, cfg: OktaConfig) -> Result<Self, String> {
        let client = Arc::new(client::Client::new(instance, &cfg)?);
        Ok(Self {
            instance: instance.to_string(),
            cfg: Arc::new(cfg),
            client,
        })
    }

    pub fn config(&self) -> &OktaConfig {
        &self.cfg
    }

    /// HTTP calls sent so far.
    pub fn calls(&self) -> u64 {
        self.client.calls()
    }

    /// OAuth access tokens fetched so far (0 with an API token).
    pub fn tokens_fetched(&self) -> u64 {
        self.client.tokens_fetched()
    }

    fn ctx(&self) -> apply::Ctx<'_> {
        apply::Ctx {
            client: &self.client,
            instance: &self.instance,
            employee_attr: &self.cfg.employee_number_attribute,
        }
    }
}

#[async_trait]
impl Connector for OktaConnector {
    fn instance(&self) -> &str {
        &self.instance
    }

    fn kind(&self) -> &'static str {
        KIND
    }

    /// Okta's own per-bucket counts, read from every answer's `X-Rate-Limit-*` headers.
    fn rate_budget(&self) -> Option<RateBudget> {
        Some(RateBudget::new(format!(
            "per endpoint bucket, as Okta's X-Rate-Limit headers say: a spent bucket holds its calls until its reset when that is within {} s (the request timeout), else they go back to the executor as rate_limited",
            self.cfg.timeout_secs
        )))
    }

    /// The token is valid and may list users.
    async fn check(&self) -> Result<(), ConnectorError> {
        let path = "/api/v1/users?limit=1";
        let r = self.client.send(reqwest::Method::GET, path, None).await?;
        if r.is_success() {
            Ok(())
        } else {
            Err(classify::status(&reqwest::Method::GET, path, &r))
        }
    }

    async fn discover(&self, subject: &Subject) -> Result<Discovery, ConnectorError> {
        discover::discover_one(&self.client, &self.cfg, &self.instance, subject).await
    }

    /// The subjects' first searches are shared (one per 20 subjects); see `discover::discover_many`.
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

/// Registers the `okta` connector type.
#[derive(Debug, Default, Clone, Copy)]
pub struct OktaFactory;

impl ConnectorFactory for OktaFactory {
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
        let cfg = OktaConfig::from_value(params).map_err(|e| ConfigIssue::new(&path, e))?;
        let conn = OktaConnector::new(instance, cfg).map_err(|e| ConfigIssue::new(&path, e))?;
        Ok(Arc::new(conn))
    }
}
