//! Kubernetes RBAC connector of revoked: takes the leaver out of every ClusterRoleBinding and
//! RoleBinding that names them (deleting the bindings that exist for them alone), deletes the
//! long-lived token Secrets of the ServiceAccounts they own, reports the group bindings nothing
//! can change per user, and, when the cluster's usernames come from client certificates, adds a
//! person's step: Kubernetes cannot revoke a certificate.
//!
//! One file per concern, as in every connector: `config` (typed table, pure validation),
//! `client` (revoke_http's reqwest, bearer token, the cluster CA, paged lists, no retries),
//! `discover`, `plan`, `apply` (apply and verify) and `classify` (every failure to a class and a
//! stable code). The API's objects are read with k8s-openapi's types. What it does and needs is
//! in docs/connectors/kubernetes.md.

mod apply;
mod auth;
mod budget;
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

pub use apply::BLIND_WRITE;
pub use auth::EXEC_API_VERSION;
pub use client::{METADATA, METADATA_LIST};
pub use config::{validate, KubernetesConfig, ServiceAccountPolicy, DEFAULT_BURST, DEFAULT_QPS};
pub use discover::{
    binding_path, secret_path, service_account_path, ACCOUNT, CLUSTER_BINDING, CLUSTER_BINDINGS,
    GROUP_BINDING, ROLE_BINDING, ROLE_BINDINGS, SA_BINDING, SERVICE_ACCOUNT, SERVICE_ACCOUNTS,
    TOKEN_SECRET,
};
pub use plan::{
    DELETE_BINDING, DELETE_SERVICE_ACCOUNT, DELETE_TOKEN_SECRET, REMOVE_SUBJECT,
    REOWN_SERVICE_ACCOUNT, ROTATE_CA, UNBIND_SERVICE_ACCOUNT,
};

/// The connector type name in config (`kind = "kubernetes"`).
pub const KIND: &str = "kubernetes";

/// One cluster.
#[derive(Debug)]
pub struct KubernetesConnector {
    instance: String,
    cfg: Arc<KubernetesConfig>,
    client: Arc<client::Client>,
}

impl KubernetesConnector {
    /// Builds the client (reads `ca_file`); makes no network call.
    pub fn new(instance: &str, cfg: KubernetesConfig) -> Result<Self, String> {
        let client = Arc::new(client::Client::new(&cfg)?);
        Ok(Self {
            instance: instance.to_string(),
            cfg: Arc::new(cfg),
            client,
        })
    }

    pub fn config(&self) -> &KubernetesConfig {
        &self.cfg
    }

    /// HTTP calls sent so far.
    pub fn calls(&self) -> u64 {
        self.client.calls()
    }

    /// Token file reads and credential plugin runs so far.
    pub fn credential_fetches(&self) -> u64 {
        self.client.credential_fetches()
    }

    /// Time calls have waited for the client-side rate budget so far.
    pub fn budget_waited(&self) -> std::time::Duration {
        self.client.budget_waited()
    }

    fn ctx(&self) -> apply::Ctx<'_> {
        apply::Ctx {
            client: &self.client,
            instance: &self.instance,
            cfg: &self.cfg,
        }
    }
}

#[async_trait]
impl Connector for KubernetesConnector {
    fn instance(&self) -> &str {
        &self.instance
    }

    fn kind(&self) -> &'static str {
        KIND
    }

    /// The client-side budget (`qps`, `burst`) every job of this cluster shares, with the time
    /// calls have waited on it since the process started.
    fn rate_budget(&self) -> Option<RateBudget> {
        (self.cfg.qps > 0).then(|| {
            RateBudget::new(format!(
                "at most {} requests a second, bursts of {}; calls waited {:.1} s on it so far",
                self.cfg.qps,
                self.cfg.burst,
                self.budget_waited().as_secs_f64()
            ))
        })
    }

    /// The token is valid and may list ClusterRoleBindings.
    async fn check(&self) -> Result<(), ConnectorError> {
        let path = format!("{CLUSTER_BINDINGS}?limit=1");
        let r = self
            .client
            .send(reqwest::Method::GET, &path, None, "application/json")
            .await?;
        if r.is_success() {
            Ok(())
        } else {
            Err(classify::status(&reqwest::Method::GET, &path, &r))
        }
    }

    async fn discover(&self, subject: &Subject) -> Result<Discovery, ConnectorError> {
        let mut d = self.discover_many(std::slice::from_ref(subject)).await?;
        d.pop().ok_or_else(|| {
            ConnectorError::permanent("bad_response", "discovery answered for no subject")
        })
    }

    /// One scan of the cluster for every subject.
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

/// Registers the `kubernetes` connector type.
#[derive(Debug, Default, Clone, Copy)]
pub struct KubernetesFactory;

impl ConnectorFactory for KubernetesFactory {
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
        let cfg = KubernetesConfig::from_value(params).map_err(|e| ConfigIssue::new(&path, e))?;
        let conn =
            KubernetesConnector::new(instance, cfg).map_err(|e| ConfigIssue::new(&path, e))?;
        Ok(Arc::new(conn))
    }
}
