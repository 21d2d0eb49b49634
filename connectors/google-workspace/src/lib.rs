//! Google Workspace connector of revoked: hands the leaver's mail over (auto-reply, forwarding)
//! while Gmail still answers, suspends them, ends their sessions, revokes their OAuth grants, app
//! passwords and backup codes (and, as configured, the work account on their mobile devices and
//! their 2SV), transfers their Drive files (and archives them into a shared drive), takes their
//! groups, shared drives, admin roles and licences away, and deletes them after retention. For a
//! departing client (a subject with a client domain) it offboards the client's users of ours and
//! removes every Drive share of the client's domain.
//!
//! One file per concern, as in every connector: `config` (typed table, pure validation), `auth`
//! (the RFC 7523 assertion of the service account), `client` (reqwest on rustls, the tokens per
//! delegated subject and the pace, no retries of its own), `discover`, `plan`, `apply` (apply and
//! verify) and `classify` (every failure to a class and a stable code). What it does and needs
//! is in docs/connectors/google-workspace.md.

mod apply;
mod auth;
mod classify;
mod client;
mod config;
mod discover;
mod plan;

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::Method;
use revoke_core::{
    Action, ActionKey, ConfigIssue, Connector, ConnectorError, ConnectorFactory, Discovery,
    Journal, Outcome, ProposedAction, RateBudget, Subject, Verdict,
};

pub use apply::{ARCHIVE_FOLDER, CONFIRMED, LEAVER_PROPERTY, RETAIN_PROPERTY, TRANSFER_ID};
pub use client::{admin_scopes, encode, GMAIL_SCOPES};
pub use config::{is_email, is_employee_id, validate, GoogleConfig, MobileDevices};
pub use discover::{
    ACCOUNT, APP_PASSWORD, CLIENT_DRIVE_PERMISSION, CLIENT_PERMISSION, DRIVE_APP_ID,
    DRIVE_NOT_SCANNED, DRIVE_TRANSFER, GMAIL, GROUP_MEMBERSHIP, LICENCE, LINK_SHARE, MOBILE_DEVICE,
    OAUTH_GRANT, ROLE_ASSIGNMENT, SHARED_DRIVE_MEMBER, SOLE_ORGANIZER,
};
pub use plan::{
    ARCHIVE_DRIVE, DELETE_APP_PASSWORD, DELETE_GRANT, DELETE_USER, INVALIDATE_BACKUP_CODES,
    REMOVE_CLIENT_PERMISSION, REMOVE_GROUP, REMOVE_LICENCE, REMOVE_ROLE, REMOVE_SHARED_DRIVE,
    SET_AUTO_REPLY, SET_FORWARDING, SIGN_OUT, SUSPEND_USER, TRANSFER_DRIVE, TURN_OFF_2SV,
    WIPE_MOBILE_ACCOUNT,
};

/// The connector type name in config (`kind = "google-workspace"`).
pub const KIND: &str = "google-workspace";

/// One Google Workspace domain; shared by every job, so its tokens and pace are too.
#[derive(Debug)]
pub struct GoogleConnector {
    instance: String,
    cfg: Arc<GoogleConfig>,
    client: Arc<client::Client>,
}

impl GoogleConnector {
    /// Builds the client and parses the key; makes no network call.
    pub fn new(instance: &str, cfg: GoogleConfig) -> Result<Self, String> {
        let client = Arc::new(client::Client::new(instance, &cfg)?);
        Ok(Self {
            instance: instance.to_string(),
            cfg: Arc::new(cfg),
            client,
        })
    }

    pub fn config(&self) -> &GoogleConfig {
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

    /// API calls sent as parts of batch requests so far (each batch request is one of
    /// [`GoogleConnector::calls`]).
    pub fn batched_calls(&self) -> u64 {
        self.client.batched_calls()
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
impl Connector for GoogleConnector {
    fn instance(&self) -> &str {
        &self.instance
    }

    fn kind(&self) -> &'static str {
        KIND
    }

    /// The configured per-minute paces.
    fn rate_budget(&self) -> Option<RateBudget> {
        Some(RateBudget::new(format!(
            "at most {}/min, Drive calls {}/min; after a rate-limit answer a wait from {} ms, doubled per consecutive one (at most 64x)",
            self.cfg.requests_per_minute, self.cfg.drive_requests_per_minute, self.cfg.backoff_ms
        )))
    }

    /// A token for the admin can be had and the admin can read itself.
    async fn check(&self) -> Result<(), ConnectorError> {
        let path = format!(
            "/admin/directory/v1/users/{}",
            encode(&self.cfg.admin_email)
        );
        let r = self.client.admin(Method::GET, &path, None).await?;
        if r.is_success() {
            Ok(())
        } else {
            Err(classify::status(
                &Method::GET,
                &path,
                &r,
                self.client.backoff(),
            ))
        }
    }

    async fn discover(&self, subject: &Subject) -> Result<Discovery, ConnectorError> {
        let mut all = self.discover_many(std::slice::from_ref(subject)).await?;
        all.pop().ok_or_else(|| {
            ConnectorError::permanent("bad_response", "discovery returned nothing for one subject")
        })
    }

    /// Role names and the transfer target are read once for all the subjects.
    /// What discovery leaves alone on purpose (a drive only the subject organizes, a drive no
    /// one of ours can list, a link share) is said in the plan's notes too.
    async fn discover_many(&self, subjects: &[Subject]) -> Result<Vec<Discovery>, ConnectorError> {
        let mut found =
            discover::discover_many(&self.client, &self.cfg, &self.instance, subjects).await?;
        for d in &mut found {
            d.notes = discover::notes_of(d);
        }
        Ok(found)
    }

    fn plan(&self, subject: &Subject, discovery: &Discovery) -> Vec<ProposedAction> {
        match subject.client_domain() {
            Some(_) => plan::plan_client(&self.cfg, discovery),
            None => plan::plan(&self.cfg, discovery),
        }
    }

    /// A departing client's users, file shares and shared-drive memberships.
    fn takes_client_jobs(&self) -> bool {
        true
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

/// Registers the `google-workspace` connector type.
#[derive(Debug, Default, Clone, Copy)]
pub struct GoogleFactory;

impl ConnectorFactory for GoogleFactory {
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
        let cfg = GoogleConfig::from_value(params).map_err(|e| ConfigIssue::new(&path, e))?;
        let conn = GoogleConnector::new(instance, cfg).map_err(|e| ConfigIssue::new(&path, e))?;
        Ok(Arc::new(conn))
    }
}
