//! What every handler and loop of one `revoked` process shares.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use revoke_config::{Config, TokenScope, DEFAULT_POLICY};
use revoke_core::{Job, JobId, Risk, Subject};
use revoke_engine::Connectors;
use revoke_intake::{NormalizedEvent, RiskRules, Source};
use revoke_store::{BlastGuard, NewJob, Store};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::{watch, Notify};

/// One configured intake source and the policy its jobs use.
#[derive(Debug)]
pub struct IntakeSource {
    pub source: Source,
    pub policy: String,
}

/// One API token: its name (the acting identity in the audit log), hash and scope.
#[derive(Debug)]
pub struct Token {
    pub name: String,
    pub sha256: [u8; 32],
    pub scope: TokenScope,
}

#[derive(Debug)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub connectors: Connectors,
    pub sources: BTreeMap<String, IntakeSource>,
    pub tokens: Vec<Token>,
    pub risk: RiskRules,
    pub guard: BlastGuard,
    /// Group commit of the jobs intake and the API ask for (see `intake_writer`).
    pub intake: crate::intake_writer::IntakeWriter,
    pub metrics: Option<revoke_telemetry::Metrics>,
    /// This process in leases and the audit log: `revoked@host:pid`.
    pub owner: String,
    pub wake_scheduler: Arc<Notify>,
    pub wake_workers: Arc<Notify>,
    pub stop: watch::Receiver<bool>,
    /// One log line per intake source and reason per window for refused requests and probes.
    pub refusals: revoke_telemetry::LogLimiter,
}

impl AppState {
    /// The token a bearer value matches, compared in constant time against every configured hash.
    pub fn token(&self, bearer: &str) -> Option<&Token> {
        let h: [u8; 32] = Sha256::digest(bearer.as_bytes()).into();
        let mut found = None;
        for t in &self.tokens {
            if bool::from(t.sha256.ct_eq(&h)) {
                found = Some(t);
            }
        }
        found
    }

    pub fn default_policy() -> &'static str {
        DEFAULT_POLICY
    }
}

/// The job a termination event asks for, and when it is due (`None` without any identifier).
/// Used by intake, the API and `revokectl import`.
pub fn job_from_event(ev: &NormalizedEvent, policy: &str) -> Option<NewJob> {
    if let Some(d) = &ev.client_domain {
        let domain = revoke_core::ClientDomain::parse(d).ok()?;
        return Some(job_for(ev, policy, Subject::client(domain)));
    }
    let id = ev
        .username
        .clone()
        .or_else(|| ev.email.clone())
        .or_else(|| ev.employee_id.clone())?;
    Some(job_for(
        ev,
        policy,
        Subject {
            id,
            employee_id: ev.employee_id.clone(),
            email: ev.email.clone(),
            usernames: BTreeMap::new(),
            client_domain: None,
        },
    ))
}

/// The job an event asks for about `subject` (a person named by the event, or a client).
fn job_for(ev: &NormalizedEvent, policy: &str, subject: Subject) -> NewJob {
    let effective_at = ev.effective_at.with_timezone(&Utc);
    let risk = if ev.high_risk {
        Risk::High
    } else {
        Risk::Standard
    };
    let job = Job {
        id: JobId(uuid::Uuid::new_v4().to_string()),
        subject,
        reason: ev
            .reason
            .clone()
            .unwrap_or_else(|| format!("terminated ({})", ev.source_kind)),
        effective_at,
        risk,
        source: ev.source.clone(),
        requested_by: format!("{} event {}", ev.source, ev.source_event_id),
        policy: policy.to_string(),
    };
    NewJob {
        due_at: due_at(risk, effective_at, ev.received_at),
        job,
        source_event_id: Some(ev.source_event_id.clone()),
        event: serde_json::to_value(ev).ok(),
        body_sha256: Some(ev.body_sha256.clone()),
        received_at: ev.received_at,
    }
}

/// A high-risk job is due when received; any other at its effective time.
pub fn due_at(
    risk: Risk,
    effective_at: DateTime<Utc>,
    received_at: DateTime<Utc>,
) -> DateTime<Utc> {
    match risk {
        Risk::High => received_at,
        _ => effective_at,
    }
}
