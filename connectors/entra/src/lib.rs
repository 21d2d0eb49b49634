//! Microsoft Entra ID connector of revoked (Microsoft Graph v1.0): disables the user and
//! revokes their sign-in sessions, takes their groups, app role and directory role
//! assignments, authentication methods (when configured) and licences away, and deletes them
//! after retention (optionally for good).
//!
//! One file per concern, as in every connector: `config` (typed table, pure validation),
//! `client` (reqwest on rustls, the app token, the write and read budgets, no retries of its
//! own), `discover`, `plan`, `apply` (apply and verify) and `classify` (every failure to a class
//! and a stable code). What it does and needs is in docs/connectors/entra.md.

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

pub use apply::SESSIONS_REVOKED;
pub use classify::NOT_FOUND;
pub use client::{encode, Counts, GRAPH_SCOPE};
pub use config::{is_guid, validate, EntraConfig, Identifier, MAX_BATCH};
pub use discover::{
    check_value, filter, group_kind, literal, ACCOUNT, APP_ROLE_ASSIGNMENT, AUTH_METHOD,
    CHANGEABLE_KINDS, DEVICE, DIRECTORY_ROLE_ASSIGNMENT, GROUP_MEMBERSHIP, ID_KIND, LICENSE,
    USER_SELECT,
};
pub use plan::{
    DELETE_USER, DISABLE_USER, PURGE_USER, REMOVE_APP_ROLE, REMOVE_AUTH_METHOD,
    REMOVE_DIRECTORY_ROLE, REMOVE_GROUP, REMOVE_LICENSE, REVOKE_SESSIONS,
};

/// The connector type name in config (`kind = "entra"`).
pub const KIND: &str = "entra";

/// One Entra tenant; shared by every job, so its budgets are too.
#[derive(Debug)]
pub struct EntraConnector {
    instance: String,
    cfg: Arc<EntraConfig>,
    client: Arc<client::Client>,
}

impl EntraConnector {
    /// Builds the client; makes no network call.
    pub fn new(instance: &str, cfg: EntraConfig) -> Result<Self, String> {
        let client = Arc::new(client::Client::new(instance, &cfg)?);
        Ok(Self {
            instance: instance.to_string(),
            cfg: Arc::new(cfg),
            client,
        })
    }

    pub fn config(&self) -> &EntraConfig {
        &self.cfg
    }

    /// What was sent so far: HTTP round trips, Graph calls (a batch's parts each) and 429s.
    pub fn counts(&self) -> Counts {
        self.client.counts()
    }

    fn ctx(&self) -> apply::Ctx<'_> {
        apply::Ctx {
            client: &self.client,
            instance: &self.instance,
        }
    }
}

#[async_trait]
impl Connector for EntraConnector {
    fn instance(&self) -> &str {
        &self.instance
    }

    fn kind(&self) -> &'static str {
        KIND
    }

    /// The configured write and read windows.
    fn rate_budget(&self) -> Option<RateBudget> {
        Some(RateBudget::new(format!(
            "at most {} writes per {} s and {} reads per {} s (each $batch part counts); a Retry-After holds every call; waits beyond {} s go back to the executor",
            self.cfg.writes_per_window,
            self.cfg.window_secs,
            self.cfg.reads_per_window,
            self.cfg.read_window_secs,
            self.cfg.timeout_secs
        )))
    }

    /// The app gets a token and may read users.
    async fn check(&self) -> Result<(), ConnectorError> {
        let path = "/users?$top=1&$select=id";
        let r = self
            .client
            .send(reqwest::Method::GET, path, None, &[])
            .await?;
        if r.is_success() {
            Ok(())
        } else {
            Err(classify::status(&reqwest::Method::GET, path, &r))
        }
    }

    async fn discover(&self, subject: &Subject) -> Result<Discovery, ConnectorError> {
        let mut all = discover::discover_all(
            &self.client,
            &self.cfg,
            &self.instance,
            std::slice::from_ref(subject),
        )
        .await?;
        all.pop().ok_or_else(|| {
            ConnectorError::permanent("bad_response", "discovery returned no result")
        })
    }

    /// The searches of every subject, then the per-user reads of every user found, each in
    /// `$batch` requests of up to 20 reads.
    async fn discover_many(&self, subjects: &[Subject]) -> Result<Vec<Discovery>, ConnectorError> {
        discover::discover_all(&self.client, &self.cfg, &self.instance, subjects).await
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

    /// Each read once for all the actions (one `memberOf` of a user confirms every group
    /// removal of theirs), in `$batch` requests.
    async fn verify_many(&self, actions: &[Action]) -> Vec<Result<Verdict, ConnectorError>> {
        apply::verify_many(&self.ctx(), actions, self.cfg.batch()).await
    }

    fn batch_verification(&self) -> bool {
        true
    }
}

/// Registers the `entra` connector type.
#[derive(Debug, Default, Clone, Copy)]
pub struct EntraFactory;

impl ConnectorFactory for EntraFactory {
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
        let cfg = EntraConfig::from_value(params).map_err(|e| ConfigIssue::new(&path, e))?;
        let conn = EntraConnector::new(instance, cfg).map_err(|e| ConfigIssue::new(&path, e))?;
        Ok(Arc::new(conn))
    }
}
