//! The HTTP connector of revoked defined in configuration (`kind = "http"`): a REST system no
//! compiled connector covers, described as resources, read-only discovery requests, match
//! rules, actions with typed outcome rules and verification, with the guarantees of a compiled
//! connector (read-only discovery, pinning to immutable ids, idempotency, retries by the
//! executor only, protected accounts on every identifier).
//!
//! One file per concern, as in every connector: `config` (the definition and its pure
//! validation), `template` (templates escaped by position), `jsonpath` (the documented subset),
//! `client` (credential, rate budget, no retries), `discover`, `plan`, `apply` (apply and
//! verify) and `classify` (every answer through the definition's rules). The format, field by
//! field, is in docs/connectors/http.md.

mod apply;
mod classify;
mod client;
mod config;
mod discover;
mod jsonpath;
mod plan;
mod template;

/// The shipped recipes, compiled in by build.rs from `recipes/*.toml`.
mod recipes {
    include!(concat!(env!("OUT_DIR"), "/recipes.rs"));
}

use std::sync::Arc;

use async_trait::async_trait;
use revoke_core::{
    Action, ActionKey, ConfigIssue, Connector, ConnectorError, ConnectorFactory, Discovery,
    Journal, Outcome, ProposedAction, RateBudget, Subject, Verdict,
};

pub use classify::{holds, wait_of, E_RATE_LIMIT, E_UNCLASSIFIED};
pub use client::{form_encode, render_request, Body, Rendered};
pub use config::{
    check, check_file_secrets, merged, parse_definition, parse_toml, parse_yaml, recipe_names,
    recipe_text, validate, Definition, RequestDef, MAX_DEFINITION_BYTES,
};
pub use discover::subject_value;
pub use jsonpath::JsonPath;
pub use plan::{P_ACTION, P_RESOURCE};
pub use template::{Position, RenderError, Template, Var};

/// The connector type name in config (`kind = "http"`).
pub const KIND: &str = "http";

/// One instance of a definition; shared by every job, so its rate budget is too.
#[derive(Debug)]
pub struct HttpConnector {
    instance: String,
    def: Arc<Definition>,
    client: Arc<client::Client>,
}

impl HttpConnector {
    /// Builds the client; makes no network call.
    pub fn new(instance: &str, def: Definition) -> Result<Self, String> {
        let client = Arc::new(client::Client::new(instance, &def)?);
        Ok(Self {
            instance: instance.to_string(),
            def: Arc::new(def),
            client,
        })
    }

    /// Validates `params` (an instance table, a recipe's keys under it) and builds the connector.
    pub fn from_params(
        instance: &str,
        params: &serde_json::Value,
    ) -> Result<Self, Vec<ConfigIssue>> {
        let path = format!("connectors.{instance}");
        validate(&path, params)?;
        let merged = merged(&path, params).map_err(|e| vec![e])?;
        let def = Definition::from_value(&merged).map_err(|e| vec![ConfigIssue::new(&path, e)])?;
        Self::new(instance, def).map_err(|e| vec![ConfigIssue::new(&path, e)])
    }

    pub fn definition(&self) -> &Definition {
        &self.def
    }

    /// HTTP calls sent so far (token requests included).
    pub fn calls(&self) -> u64 {
        self.client.calls()
    }

    /// Mutating requests sent so far.
    pub fn mutations(&self) -> u64 {
        self.client.mutations()
    }

    fn ctx(&self) -> apply::Ctx<'_> {
        apply::Ctx {
            client: &self.client,
            def: &self.def,
            instance: &self.instance,
        }
    }
}

#[async_trait]
impl Connector for HttpConnector {
    fn instance(&self) -> &str {
        &self.instance
    }

    fn kind(&self) -> &'static str {
        KIND
    }

    /// The definition's `rate_limit`; `None` without one.
    fn rate_budget(&self) -> Option<RateBudget> {
        let r = self.def.rate_limit.as_ref()?;
        Some(RateBudget::new(match r.per_secs {
            0 | 1 => format!("at most {} requests a second", r.requests),
            s => format!("at most {} requests per {s} s", r.requests),
        }))
    }

    /// The credential works: the first top-level discovery request that renders for a subject
    /// who matches nobody is answered (any 2xx or `absent` status).
    async fn check(&self) -> Result<(), ConnectorError> {
        // Every person value is set, so any discovery request renders (client-domain ones
        // excepted); the values match nobody.
        let mut probe = Subject::new("revoked-connection-check");
        probe.email = Some("revoked-connection-check@example.invalid".into());
        probe.employee_id = Some("revoked-connection-check".into());
        let Some(rn) = self
            .def
            .resource_order()
            .into_iter()
            .find(|r| self.def.resources[*r].within.is_none())
        else {
            return Ok(());
        };
        for d in &self.def.resources[rn].discover {
            let val = |v: &Var| match v {
                Var::Subject(f) => subject_value(&self.instance, &probe, f),
                Var::Vars(n) => self.def.vars.get(n).cloned(),
                _ => None,
            };
            if discover::fetch_items(&self.client, d, &val)
                .await?
                .is_some()
            {
                return Ok(());
            }
        }
        Ok(())
    }

    async fn discover(&self, subject: &Subject) -> Result<Discovery, ConnectorError> {
        let mut cache = discover::Cache::new();
        discover::discover(&self.client, &self.def, &self.instance, subject, &mut cache).await
    }

    /// The subjects one after another, each request that renders the same for several of them
    /// (a whole listing, a parent's children) sent once for all.
    async fn discover_many(&self, subjects: &[Subject]) -> Result<Vec<Discovery>, ConnectorError> {
        let mut cache = discover::Cache::new();
        let mut out = Vec::with_capacity(subjects.len());
        for s in subjects {
            out.push(
                discover::discover(&self.client, &self.def, &self.instance, s, &mut cache).await?,
            );
        }
        Ok(out)
    }

    fn plan(&self, _subject: &Subject, discovery: &Discovery) -> Vec<ProposedAction> {
        plan::plan(&self.def, discovery)
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

    /// A verify request that renders the same for several actions is sent once.
    async fn verify_many(&self, actions: &[Action]) -> Vec<Result<Verdict, ConnectorError>> {
        apply::verify_many(&self.ctx(), actions).await
    }

    /// The definition's `batch_verify`: the executor then reads back a run's actions together.
    fn batch_verification(&self) -> bool {
        self.def.batch_verify
    }

    fn takes_client_jobs(&self) -> bool {
        self.def.client_jobs
    }
}

/// Registers the `http` connector type.
#[derive(Debug, Default, Clone, Copy)]
pub struct HttpFactory;

impl ConnectorFactory for HttpFactory {
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
        let merged = merged(&path, params)?;
        let def = Definition::from_value(&merged).map_err(|e| ConfigIssue::new(&path, e))?;
        let conn = HttpConnector::new(instance, def).map_err(|e| ConfigIssue::new(&path, e))?;
        Ok(Arc::new(conn))
    }
}
