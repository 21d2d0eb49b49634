//! GitHub connector of revoked: org membership and invitations, teams, outside collaborators,
//! direct repository grants and invitations, SSO credential authorizations, fine-grained tokens.
//!
//! One file per concern, as in every connector: `config` (typed table, pure validation),
//! `client` (octocrab, no retries of its own), `pace` (the instance's rate governor), `scan`
//! (one pass over an org for many people), `discover`, `plan`, `apply` (apply and verify),
//! `classify` (every failure to a class and a stable code) and `escape` (names made safe for
//! paths). What it does and needs is in docs/connectors/github.md.

mod apply;
mod auth;
mod classify;
mod client;
mod config;
mod discover;
/// Logins, emails and URL parts from untrusted values; public so the fuzz crate can check them.
pub mod escape;
mod pace;
mod plan;
mod reply;
mod scan;

use std::sync::Arc;

use async_trait::async_trait;
use revoke_core::{
    Action, ActionKey, ConfigIssue, Connector, ConnectorError, ConnectorFactory, Discovery,
    Journal, Outcome, ProposedAction, RateBudget, Subject, Verdict,
};
use serde_json::json;

pub use config::{validate, DiscoveryMode, GithubConfig};
pub use discover::{
    CREDENTIAL_AUTHORIZATION, ORG_INVITATION, ORG_MEMBERSHIP, OUTSIDE_COLLABORATOR,
    PERSONAL_ACCESS_TOKEN, REPOSITORY_COLLABORATOR, REPOSITORY_INVITATION, TEAM_MEMBERSHIP,
};
pub use escape::is_login;
pub use plan::{
    CANCEL_ORG_INVITATION, CANCEL_REPOSITORY_INVITATION, REMOVE_ORG_MEMBER,
    REMOVE_OUTSIDE_COLLABORATOR, REMOVE_REPOSITORY_COLLABORATOR, REMOVE_TEAM_MEMBER,
    REVOKE_CREDENTIAL_AUTHORIZATION, REVOKE_PERSONAL_ACCESS_TOKEN,
};
pub use scan::QUERIES;

/// The connector type name in config (`kind = "github"`).
pub const KIND: &str = "github";

/// One GitHub instance (github.com or an Enterprise Server) and the orgs it manages; shared by
/// every job, so its rate governor paces all of them together.
#[derive(Debug)]
pub struct GithubConnector {
    instance: String,
    cfg: Arc<GithubConfig>,
    client: client::Client,
}

impl GithubConnector {
    /// Builds the clients; makes no network call.
    pub fn new(instance: &str, cfg: GithubConfig) -> Result<Self, String> {
        let client = client::Client::new(instance, &cfg)?;
        Ok(Self {
            instance: instance.to_string(),
            cfg: Arc::new(cfg),
            client,
        })
    }

    pub fn config(&self) -> &GithubConfig {
        &self.cfg
    }

    /// GitHub App installation tokens minted so far (0 with a personal access token).
    pub fn installation_tokens_minted(&self) -> u64 {
        self.client.tokens_minted()
    }

    fn ctx(&self) -> apply::Ctx<'_> {
        apply::Ctx {
            client: &self.client,
            instance: &self.instance,
        }
    }
}

#[async_trait]
impl Connector for GithubConnector {
    fn instance(&self) -> &str {
        &self.instance
    }

    fn kind(&self) -> &'static str {
        KIND
    }

    /// The governor's settings (pace.rs).
    fn rate_budget(&self) -> Option<RateBudget> {
        Some(RateBudget::new(format!(
            "writes one at a time, at least {} ms apart (GitHub's secondary limit); at most {} reads at once, none during a write; a secondary limit without retry-after holds everything {} s",
            self.cfg.mutation_spacing_ms, self.cfg.read_concurrency, self.cfg.secondary_limit_wait_secs
        )))
    }

    /// Every org is visible to the credentials (an App token is minted on the way).
    async fn check(&self) -> Result<(), ConnectorError> {
        for org in &self.cfg.orgs {
            let path = format!("/orgs/{}", escape::seg(org));
            if self.client.get_opt(&path).await?.is_none() {
                return Err(ConnectorError::permanent(
                    "org_not_found",
                    format!("organization {org:?} not found, or the credentials cannot see it"),
                ));
            }
        }
        // The org's member list needs read:org (or the App's members permission).
        let probe = json!({"org": self.cfg.orgs[0]});
        if self.cfg.discovery == DiscoveryMode::Graphql {
            self.client.graphql(scan::ORG_MEMBERS, probe).await?;
        }
        Ok(())
    }

    async fn discover(&self, subject: &Subject) -> Result<Discovery, ConnectorError> {
        let mut all = self.discover_many(std::slice::from_ref(subject)).await?;
        all.pop().ok_or_else(|| {
            ConnectorError::permanent("bad_response", "discovery returned nothing for one subject")
        })
    }

    /// One scan per org for all the people (see scan.rs), instead of one per person; each
    /// departing client on its own (see `discover::discover_client`).
    async fn discover_many(&self, subjects: &[Subject]) -> Result<Vec<Discovery>, ConnectorError> {
        let people: Vec<Subject> = subjects
            .iter()
            .filter(|s| s.client_domain().is_none())
            .cloned()
            .collect();
        let mut found =
            discover::discover_many(&self.client, &self.cfg, &self.instance, &people).await?;
        found.reverse();
        let mut out = Vec::with_capacity(subjects.len());
        for s in subjects {
            match s.client_domain() {
                Some(d) => out.push(
                    discover::discover_client(&self.client, &self.cfg, &self.instance, s, d)
                        .await?,
                ),
                None => out.extend(found.pop()),
            }
        }
        Ok(out)
    }

    /// A client's discovery holds several people: each is planned as a person is.
    fn plan(&self, subject: &Subject, discovery: &Discovery) -> Vec<ProposedAction> {
        if subject.client_domain().is_none() {
            return plan::plan(&self.cfg, discovery);
        }
        let mut by_login: std::collections::BTreeMap<&str, Discovery> = Default::default();
        for f in &discovery.findings {
            let login = f.attrs.get("login").map(String::as_str).unwrap_or("");
            by_login
                .entry(login)
                .or_insert_with(|| Discovery {
                    findings: Vec::new(),
                    ..discovery.clone()
                })
                .findings
                .push(f.clone());
        }
        by_login
            .values()
            .flat_map(|d| plan::plan(&self.cfg, d))
            .collect()
    }

    fn takes_client_jobs(&self) -> bool {
        true
    }

    async fn apply(
        &self,
        action: &Action,
        key: &ActionKey,
        _journal: &dyn Journal,
    ) -> Result<Outcome, ConnectorError> {
        apply::apply(&self.ctx(), action, key).await
    }

    async fn verify(&self, action: &Action) -> Result<Verdict, ConnectorError> {
        apply::verify(&self.ctx(), action).await
    }
}

/// Registers the `github` connector type.
#[derive(Debug, Default, Clone, Copy)]
pub struct GithubFactory;

impl ConnectorFactory for GithubFactory {
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
        let cfg = GithubConfig::from_value(params).map_err(|e| ConfigIssue::new(&path, e))?;
        let conn = GithubConnector::new(instance, cfg).map_err(|e| ConfigIssue::new(&path, e))?;
        Ok(Arc::new(conn))
    }
}
