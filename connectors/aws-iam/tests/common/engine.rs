//! The real planner, executor and store around the IAM connector: what `revokectl plan` and
//! `apply` do, against moto.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use revoke_config::Config;
use revoke_connector_aws_iam::IamFactory;
use revoke_core::{Action, Job, JobId, Plan, PlanId, Risk, Subject};
use revoke_engine::{discover, plan_jobs, Connectors, Executor, Registry, RunSummary};
use revoke_store::{ActionRecord, SqliteStore, Store};
use revoke_testkit::Moto;
use serde_json::Value;

use super::{params, INSTANCE};

/// A flat JSON table as TOML lines (strings, numbers, booleans, lists of strings).
fn toml_table(v: &Value) -> String {
    let mut out = String::new();
    for (k, v) in v.as_object().into_iter().flatten() {
        // A JSON string, number, boolean or list of strings is TOML as it is written.
        out.push_str(&format!("{k} = {v}\n"));
    }
    out
}

/// A config with the `aws` IAM instance on `moto` (its params with `extra` over them), fast
/// retries, and `top` (policies, protected accounts) before it.
pub fn config(moto: &Moto, top: &str, extra: Value) -> Config {
    let toml = format!(
        "[executor.retry]\nbase_ms = 10\ncap_ms = 40\nmax_attempts = 3\nmax_elapsed_secs = 20\n{top}\n[connectors.{INSTANCE}]\n{}",
        toml_table(&params(moto, extra))
    );
    revoke_config::load_str(&toml).unwrap_or_else(|e| panic!("config {toml}: {e}"))
}

pub fn connectors(config: &Config) -> Connectors {
    Registry::new()
        .with(IamFactory)
        .build(config)
        .expect("connectors")
}

pub fn job(n: usize, subject: Subject, effective_at: DateTime<Utc>, risk: Risk) -> Job {
    Job {
        id: JobId(format!("job-{n}")),
        subject,
        reason: "leaver".into(),
        effective_at,
        risk,
        source: "test".into(),
        requested_by: "test".into(),
        policy: "default".into(),
    }
}

/// Discovery and the planner, as `revokectl plan` runs them.
pub async fn plan(config: &Config, connectors: &Connectors, jobs: Vec<Job>) -> Plan {
    let discoveries = discover(config, connectors, &jobs).await.expect("discover");
    plan_jobs(
        config,
        connectors,
        jobs,
        &discoveries,
        PlanId("plan-1".into()),
        Utc::now(),
    )
    .expect("plan")
}

/// The executor on a SQLite store in a temp dir, as `revokectl apply` runs it.
pub struct Applied {
    pub store: Arc<dyn Store>,
    pub summary: RunSummary,
    _dir: tempfile::TempDir,
}

impl Applied {
    pub async fn records(&self) -> Vec<ActionRecord> {
        self.store
            .actions(&PlanId("plan-1".into()))
            .await
            .expect("actions")
    }

    /// The record of the action of `kind` on `target`.
    pub async fn record(&self, kind: &str, target: &str) -> ActionRecord {
        self.records()
            .await
            .into_iter()
            .find(|r| r.action.kind.0 == kind && r.action.target == target)
            .unwrap_or_else(|| panic!("no {kind} {target} in the plan"))
    }
}

pub async fn apply(config: &Config, connectors: Connectors, plan: &Plan) -> Applied {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("revoked.db").display());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.expect("store"));
    let exec = Executor::new(store.clone(), connectors, config, "test-executor");
    exec.record(plan).await.expect("record");
    let summary = exec.run_plan(&plan.id).await.expect("run");
    Applied {
        store,
        summary,
        _dir: dir,
    }
}

/// `kind target` of each action, sorted, to compare plans.
pub fn kinds(actions: &[Action]) -> Vec<String> {
    let mut v: Vec<String> = actions
        .iter()
        .map(|a| format!("{} {}", a.kind, a.target))
        .collect();
    v.sort();
    v
}
