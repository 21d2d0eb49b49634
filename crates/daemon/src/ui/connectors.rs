//! The connectors page: each instance's health (its `check`, read-only), its concurrency bound,
//! its own rate budget (`Connector::rate_budget`, from its config), and the recent failed attempts
//! by error class and rate-limit waits, read from the audit log.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use revoke_core::{ActionId, ConnectorError, ErrorClass, RateBudget};

use maud::{html, Markup};

use super::pages::{layout, time};
use super::session::Session;
use super::{signed_in, Page, Shared, UiError};

/// How long one instance's `check` may take before the page says it timed out.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// The newest audit entries read for recent errors.
pub(crate) const AUDIT_WINDOW: usize = 5000;
/// Failures kept per instance for the page.
const RECENT_PER_INSTANCE: usize = 5;

/// One failed attempt.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub at: DateTime<Utc>,
    pub action_id: String,
    pub class: String,
    pub code: String,
    pub message: String,
    /// What the service asked to wait (rate limited, or retryable with a hint).
    pub wait: Option<Duration>,
}

/// What the page shows about one instance.
#[derive(Debug)]
pub(crate) struct Health {
    pub instance: String,
    pub kind: String,
    pub concurrency: usize,
    /// The instance's own client-side budget; `None`: it paces nothing itself.
    pub budget: Option<RateBudget>,
    /// `Ok`, or the check's error (class and message), or a timeout.
    pub check: Result<(), String>,
    pub check_ms: u128,
    pub by_class: BTreeMap<String, usize>,
    pub waits: usize,
    pub longest_wait: Option<Duration>,
    pub recent: Vec<Failure>,
}

pub(crate) async fn page(State(c): State<Shared>, headers: HeaderMap) -> Result<Response, UiError> {
    let s = match signed_in(&c, &headers).await {
        Ok(s) => s,
        Err(r) => return Ok(r.into_response()),
    };
    let checks = futures_util::future::join_all(c.app.connectors.iter().map(|(name, conn)| {
        let conn = conn.clone();
        let name = name.clone();
        async move {
            let started = std::time::Instant::now();
            let r = match tokio::time::timeout(CHECK_TIMEOUT, conn.check()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("{}: {} ({})", e.class.name(), e.message, e.code)),
                Err(_) => Err(format!(
                    "timeout: no answer within {} s",
                    CHECK_TIMEOUT.as_secs()
                )),
            };
            let budget = conn.rate_budget();
            (name, conn.kind(), budget, r, started.elapsed().as_millis())
        }
    }))
    .await;
    let mut out: BTreeMap<String, Health> = BTreeMap::new();
    for (name, kind, budget, check, ms) in checks {
        let concurrency = c
            .app
            .config
            .connectors
            .get(&name)
            .and_then(|s| s.concurrency)
            .unwrap_or(c.app.config.executor.concurrency);
        out.insert(
            name.clone(),
            Health {
                instance: name,
                kind: kind.to_string(),
                concurrency,
                budget,
                check,
                check_ms: ms,
                by_class: BTreeMap::new(),
                waits: 0,
                longest_wait: None,
                recent: Vec::new(),
            },
        );
    }
    // Recent failed attempts: the newest audit entries (the store has no query by kind; see
    // docs/console.md), each action's instance read from the store once.
    let log = c.app.store.audit_log().await?;
    let scanned = log.len().min(AUDIT_WINDOW);
    let mut instance_of: BTreeMap<String, Option<String>> = BTreeMap::new();
    for e in log.iter().rev().take(AUDIT_WINDOW) {
        if e.kind != "action.attempt_failed" {
            continue;
        }
        let Some(action_id) = &e.action_id else {
            continue;
        };
        let data: serde_json::Value = serde_json::from_str(&e.data).unwrap_or_default();
        let Ok(err) = serde_json::from_value::<ConnectorError>(data["error"].clone()) else {
            continue;
        };
        if !instance_of.contains_key(action_id) {
            let inst = c
                .app
                .store
                .action(&ActionId(action_id.clone()))
                .await?
                .map(|r| r.action.connector);
            instance_of.insert(action_id.clone(), inst);
        }
        let Some(Some(inst)) = instance_of.get(action_id) else {
            continue;
        };
        let Some(h) = out.get_mut(inst) else { continue };
        let wait = match err.class {
            ErrorClass::RateLimited { retry_after } => Some(retry_after),
            ErrorClass::Retryable { retry_after } => retry_after,
            _ => None,
        };
        *h.by_class.entry(err.class.name().to_string()).or_default() += 1;
        if matches!(err.class, ErrorClass::RateLimited { .. }) {
            h.waits += 1;
        }
        if let Some(w) = wait {
            h.longest_wait = Some(h.longest_wait.map_or(w, |l| l.max(w)));
        }
        if h.recent.len() < RECENT_PER_INSTANCE {
            h.recent.push(Failure {
                at: e.at,
                action_id: action_id.clone(),
                class: err.class.name().to_string(),
                code: err.code,
                message: err.message,
                wait,
            });
        }
    }
    let list: Vec<Health> = out.into_values().collect();
    Ok(Page::html(StatusCode::OK, render(&s, &list, scanned)))
}

/// The connectors page.
fn render(s: &Session, list: &[Health], scanned: usize) -> Markup {
    layout(
        "Connectors",
        Some(s),
        false,
        html! {
            h1 { "Connectors" }
            p { "Health is each instance's read-only check, run when this page loaded. Errors and waits are the failed attempts among the newest "
                (scanned) " audit entries (at most " (AUDIT_WINDOW) ")." }
            table.connectors #connectors {
                thead { tr { th { "Instance" } th { "Kind" } th { "Health" } th { "Concurrency" } th { "Rate budget" } th { "Rate-limit waits" } th { "Errors by class" } th { "Recent errors" } } }
                tbody {
                    @for h in list {
                        tr data-instance=(h.instance) {
                            td { (h.instance) }
                            td { (h.kind) }
                            td { @match &h.check { Ok(()) => { span.ok-flag { "ok" } " (" (h.check_ms) " ms)" } Err(e) => { span.breach-flag { "failing" } br; span.err { (e) } } } }
                            td { (h.concurrency) " at once" }
                            td.budget { @match &h.budget { Some(b) => { (b.summary) @if let Some(n) = b.waited { " (" (n) " held since start)" } } None => { span.muted { "none of its own" } } } }
                            td { (h.waits) @if let Some(w) = h.longest_wait { " (longest " (w.as_secs_f64()) " s)" } }
                            td { @if h.by_class.is_empty() { "none" } @else { @for (k, n) in &h.by_class { code { (k) } " " (n) " " } } }
                            td { @for f in &h.recent { div.err { (time(&f.at)) " " code { (f.class) } " " (f.code) ": " (f.message)
                                @if let Some(w) = f.wait { " (wait " (w.as_secs_f64()) " s)" } " · " code { (f.action_id) } } } }
                        }
                    }
                }
            }
            p.muted { "The rate budget is what each instance holds itself to, from its config; requests left in the vendor's current window are not shown (no connector reports them to the daemon), and the time or calls held on a budget only where the connector counts them." }
        },
    )
}
