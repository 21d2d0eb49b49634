//! `revoked`, the daemon: signed HR and IdP intake, a scheduler that plans due jobs, workers that
//! run their actions (several processes may share one Postgres queue), the JSON API, evidence,
//! health and metrics. `types` is shared with `revokectl --server`.

mod auth;
mod error;
mod extract;
pub mod http;
pub mod intake_writer;
pub mod jobs_api;
pub mod scheduler;
pub mod serve;
pub mod state;
pub mod types;
mod ui;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use revoke_config::{Config, ConfigError, ConfigIssue};
use revoke_engine::{Executor, Registry};
use revoke_intake::RiskRules;
use revoke_store::BlastGuard;
use tokio::sync::{watch, Notify};
use tracing::{info, warn};

use crate::state::{AppState, IntakeSource, Token};

/// Every connector kind this build knows.
pub fn registry() -> Registry {
    Registry::new()
        .with(revoke_connector_ldap::LdapFactory)
        .with(revoke_connector_github::GithubFactory)
        .with(revoke_connector_aws_iam::IamFactory)
        .with(revoke_connector_aws_organizations::OrganizationsFactory)
        .with(revoke_connector_scim::ScimFactory)
        .with(revoke_connector_onelogin::OneLoginFactory)
        .with(revoke_connector_google_workspace::GoogleFactory)
        .with(revoke_connector_okta::OktaFactory)
        .with(revoke_connector_entra::EntraFactory)
        .with(revoke_connector_http::HttpFactory)
        .with(revoke_connector_vault::VaultFactory)
        .with(revoke_connector_kubernetes::KubernetesFactory)
}

/// Validates the whole configuration without I/O: core sections, connectors and intake sources.
pub fn validate(config: &Config) -> Result<(), ConfigError> {
    let mut issues: Vec<ConfigIssue> = match registry().validate(config) {
        Ok(()) => Vec::new(),
        Err(ConfigError::Invalid(i)) => i,
        Err(other) => return Err(other),
    };
    for (name, s) in &config.intake {
        let path = format!("intake.{name}");
        issues.extend(revoke_intake::validate(
            &path,
            &s.kind,
            &serde_json::Value::Object(s.params.clone()),
        ));
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid(issues))
    }
}

/// The blast-radius guard configured in `[guard]` (off when `max_jobs` is 0).
pub fn guard(config: &Config) -> BlastGuard {
    if config.guard.max_jobs == 0 {
        BlastGuard::OFF
    } else {
        BlastGuard {
            max_jobs: config.guard.max_jobs,
            window: std::time::Duration::from_secs(config.guard.window_secs),
        }
    }
}

/// The risk rules configured in `[risk]`.
pub fn risk_rules(config: &Config) -> RiskRules {
    RiskRules {
        involuntary_is_high: config.risk.involuntary_is_high,
        high_reasons: config.risk.high_reasons.clone(),
    }
}

/// `revoked@host:pid`: this process in leases and the audit log.
pub fn owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("revoked@{host}:{}", std::process::id())
}

/// What `run` reports once it has stopped.
#[derive(Debug, Clone, Default)]
pub struct Stopped {
    pub actions_run: usize,
    pub abandoned: usize,
}

/// Runs the daemon until `shutdown` resolves: opens (and migrates) the store, binds the listener,
/// tells systemd it is ready, then serves, schedules and works. On shutdown it stops accepting
/// and leasing, and lets actions in flight finish within `daemon.shutdown_grace_secs`.
/// `on_ready` receives the bound address (the port is chosen by the OS when configured as 0).
pub async fn run(
    config: Config,
    metrics: Option<revoke_telemetry::Metrics>,
    on_ready: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Stopped> {
    let config = Arc::new(config);
    let store = revoke_store::open(&config.store_url())
        .await
        .context("opening the store")?;
    let connectors = registry().build(&config).context("building connectors")?;
    let risk = risk_rules(&config);
    let mut sources = BTreeMap::new();
    for (name, s) in &config.intake {
        let source = revoke_intake::Source::build(
            name,
            &s.kind,
            &serde_json::Value::Object(s.params.clone()),
            &risk,
        )
        .with_context(|| format!("intake source {name}"))?;
        let policy = s
            .policy
            .clone()
            .unwrap_or_else(|| revoke_config::DEFAULT_POLICY.to_string());
        sources.insert(name.clone(), IntakeSource { source, policy });
    }
    let mut tokens = Vec::new();
    for (name, t) in &config.api.tokens {
        let mut sha256 = [0u8; 32];
        hex::decode_to_slice(t.sha256.trim(), &mut sha256)
            .with_context(|| format!("api.tokens.{name}.sha256"))?;
        tokens.push(Token {
            name: name.clone(),
            sha256,
            scope: t.scope,
        });
    }
    if tokens.is_empty() {
        warn!("no API tokens configured: the API answers 401 to everything but health, metrics and intake");
    }
    let guard = guard(&config);
    let (stop_tx, stop_rx) = watch::channel(false);
    let owner = owner();
    let state = Arc::new(AppState {
        config: config.clone(),
        store: store.clone(),
        connectors: connectors.clone(),
        sources,
        tokens,
        risk,
        guard,
        intake: intake_writer::IntakeWriter::start(store.clone(), guard),
        metrics,
        owner: owner.clone(),
        wake_scheduler: Arc::new(Notify::new()),
        wake_workers: Arc::new(Notify::new()),
        stop: stop_rx.clone(),
        refusals: revoke_telemetry::LogLimiter::new(http::INTAKE_LOG_WINDOW),
    });

    let listener = tokio::net::TcpListener::bind(&config.daemon.listen)
        .await
        .with_context(|| format!("binding {}", config.daemon.listen))?;
    let addr = listener.local_addr()?;
    info!(%addr, owner = %owner, store = %redact_url(&config.store_url()), sources = config.intake.len(), connectors = connectors.len(), "revoked ready");
    // systemd: ready once migrations ran and the listener is bound (a no-op without NOTIFY_SOCKET).
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        warn!(error = %e, "sd_notify failed");
    }
    on_ready(addr);

    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let executor = Executor::new(store.clone(), connectors, &config, owner).with_events(tx);
    let observer = tokio::spawn(scheduler::observe(state.clone(), rx));
    let scheduler = tokio::spawn(scheduler::run(state.clone()));
    let workers = {
        let (stop, wake) = (stop_rx.clone(), state.wake_workers.clone());
        let (poll, n, grace) = (
            config.daemon.poll(),
            config.daemon.workers,
            config.daemon.shutdown_grace(),
        );
        tokio::spawn(async move { executor.work(stop, wake, poll, n, grace).await })
    };
    let router = http::router(state.clone());
    let server = tokio::spawn(serve::serve(
        listener,
        router,
        serve::Limits::of(&config.daemon),
        stop_rx.clone(),
    ));

    shutdown.await;
    info!("shutting down: no new requests, jobs or actions; letting actions in flight finish");
    let _ = stop_tx.send(true);
    let report = workers.await.context("the workers task")??;
    let _ = scheduler.await;
    let _ = server.await;
    drop(state);
    observer.abort();
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    info!(
        actions_run = report.actions_run,
        abandoned = report.abandoned,
        "revoked stopped"
    );
    Ok(Stopped {
        actions_run: report.actions_run,
        abandoned: report.abandoned,
    })
}

/// A store URL without its password, for logs.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}://{user}:***@{}", &url[..s], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}
