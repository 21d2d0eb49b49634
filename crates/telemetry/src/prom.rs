//! Prometheus metrics: names, label sets, buckets, the global recorder and typed helpers.
//!
//! Label values are low-cardinality identifiers only (source names, connector names, action
//! kinds, outcomes, risk levels). Never pass an email, a user name, a job id or any other
//! per-person or per-job value: each distinct value makes a new time series, and metrics are
//! not the place for personal data. As a last line of defence every label value is checked
//! (ASCII letters, digits and `_ - . : /`, at most 64 bytes, no `@`); anything else is recorded
//! as `invalid`.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::TelemetryError;

/// Metric names. Dashboards and alert rules in `deploy/` may only use these (a test checks).
pub mod names {
    /// Counter `{source, outcome}`: offboarding jobs that reached a final state.
    pub const JOBS_TOTAL: &str = "revoke_jobs_total";
    /// Counter `{connector, kind, outcome}`: connector action attempts that finished.
    pub const ACTIONS_TOTAL: &str = "revoke_actions_total";
    /// Histogram `{connector, kind}`: duration of one action attempt, in seconds.
    pub const ACTION_DURATION_SECONDS: &str = "revoke_action_duration_seconds";
    /// Histogram `{risk}` (label optional): termination to last contain action done, in seconds.
    pub const TIME_TO_CONTAIN_SECONDS: &str = "revoke_time_to_contain_seconds";
    /// Counter `{source, result}`: webhook deliveries received by intake.
    pub const WEBHOOKS_RECEIVED_TOTAL: &str = "revoke_webhooks_received_total";
    /// Gauge: due actions not yet done.
    pub const QUEUE_DEPTH: &str = "revoke_queue_depth";
    /// Gauge: jobs held for a person's approval.
    pub const JOBS_AWAITING_APPROVAL: &str = "revoke_jobs_awaiting_approval";
    /// Counter `{source}`: times the blast-radius guard held back a batch of terminations.
    pub const BLAST_RADIUS_TRIPPED_TOTAL: &str = "revoke_blast_radius_tripped_total";

    /// The `result` label values of [`WEBHOOKS_RECEIVED_TOTAL`]: the request outcomes, plus
    /// `challenge` (a source's URL verification handshake), `probe` (a vendor's set-up probe
    /// answered without authentication, which writes nothing), `timeout` (the body did not
    /// arrive within `daemon.body_read_timeout_secs`), `config` (the source is misconfigured)
    /// and `error` (revoked failed to record the event).
    pub const WEBHOOK_RESULTS: &[&str] = &[
        "accepted",
        "duplicate",
        "ignored",
        "unauthenticated",
        "malformed",
        "too_large",
        "unprocessable",
        "challenge",
        "probe",
        "timeout",
        "config",
        "error",
    ];

    /// Every metric name above.
    pub const ALL: &[&str] = &[
        JOBS_TOTAL,
        ACTIONS_TOTAL,
        ACTION_DURATION_SECONDS,
        TIME_TO_CONTAIN_SECONDS,
        WEBHOOKS_RECEIVED_TOTAL,
        QUEUE_DEPTH,
        JOBS_AWAITING_APPROVAL,
        BLAST_RADIUS_TRIPPED_TOTAL,
    ];
}

/// Prometheus metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric: name, type, the labels it may carry, and its HELP text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricSpec {
    pub name: &'static str,
    pub kind: MetricKind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

/// Every metric revoked exports (one entry per name in [`names::ALL`]).
pub const SPECS: &[MetricSpec] = &[
    MetricSpec {
        name: names::JOBS_TOTAL,
        kind: MetricKind::Counter,
        labels: &["source", "outcome"],
        help: "Offboarding jobs that reached a final state, by intake source and outcome",
    },
    MetricSpec {
        name: names::ACTIONS_TOTAL,
        kind: MetricKind::Counter,
        labels: &["connector", "kind", "outcome"],
        help: "Connector action attempts that finished, by connector, action kind and outcome",
    },
    MetricSpec {
        name: names::ACTION_DURATION_SECONDS,
        kind: MetricKind::Histogram,
        labels: &["connector", "kind"],
        help: "Duration of one connector action attempt in seconds",
    },
    MetricSpec {
        name: names::TIME_TO_CONTAIN_SECONDS,
        kind: MetricKind::Histogram,
        labels: &["risk"],
        help: "Seconds from termination received (or effective) to the last contain action done",
    },
    MetricSpec {
        name: names::WEBHOOKS_RECEIVED_TOTAL,
        kind: MetricKind::Counter,
        labels: &["source", "result"],
        help: "Webhook deliveries received, by source and result",
    },
    MetricSpec {
        name: names::QUEUE_DEPTH,
        kind: MetricKind::Gauge,
        labels: &[],
        help: "Due actions not yet done",
    },
    MetricSpec {
        name: names::JOBS_AWAITING_APPROVAL,
        kind: MetricKind::Gauge,
        labels: &[],
        help: "Jobs held until a person approves them (blast-radius guard)",
    },
    MetricSpec {
        name: names::BLAST_RADIUS_TRIPPED_TOTAL,
        kind: MetricKind::Counter,
        labels: &["source"],
        help: "Times the blast-radius guard held back terminations, by source",
    },
];

/// Upper bounds (seconds) of the action duration buckets: 5 ms to 60 s.
pub const ACTION_DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
];

/// Upper bounds (seconds) of the time-to-contain buckets: 1 s to 48 h
/// (15 min is a bound so that the "p95 over 900 s" alert is exact).
pub const TIME_TO_CONTAIN_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0,
    28800.0, 86400.0, 172800.0,
];

/// How often histogram samples are folded into buckets when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Value recorded instead of a label value that fails [`label`]'s check.
const INVALID_LABEL: &str = "invalid";

/// Handle on the global Prometheus recorder.
#[derive(Debug, Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
}

impl Metrics {
    /// Current values in the Prometheus text exposition format (for `GET /metrics`, served as
    /// `text/plain; version=0.0.4`).
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

static INSTALLED: Mutex<Option<Metrics>> = Mutex::new(None);

/// Installs the global Prometheus recorder (once: later calls return the same handle),
/// describes every metric in [`SPECS`] and sets the gauges to 0.
///
/// Also starts a small background thread that folds histogram samples into buckets every few
/// seconds, so memory stays bounded even if `/metrics` is never scraped.
pub fn metrics() -> Result<Metrics, TelemetryError> {
    let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(m) = installed.as_ref() {
        return Ok(m.clone());
    }

    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(names::ACTION_DURATION_SECONDS.to_owned()),
            ACTION_DURATION_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(names::TIME_TO_CONTAIN_SECONDS.to_owned()),
            TIME_TO_CONTAIN_BUCKETS,
        )?
        .build_recorder();
    let handle = recorder.handle();
    ::metrics::set_global_recorder(recorder).map_err(|_| TelemetryError::RecorderAlreadySet)?;

    describe_all();
    queue_depth(0);
    jobs_awaiting_approval(0);

    let upkeep = handle.clone();
    // If the thread cannot be spawned, rendering still drains histograms; only idle memory
    // growth is at stake, so this is not an error.
    let _ = std::thread::Builder::new()
        .name("metrics-upkeep".to_owned())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_INTERVAL);
            upkeep.run_upkeep();
        });

    let m = Metrics { handle };
    *installed = Some(m.clone());
    Ok(m)
}

fn describe_all() {
    for spec in SPECS {
        let unit = if spec.name.ends_with("_seconds") {
            Unit::Seconds
        } else {
            Unit::Count
        };
        match spec.kind {
            MetricKind::Counter => ::metrics::describe_counter!(spec.name, unit, spec.help),
            MetricKind::Gauge => ::metrics::describe_gauge!(spec.name, unit, spec.help),
            MetricKind::Histogram => ::metrics::describe_histogram!(spec.name, unit, spec.help),
        }
    }
}

/// Checks a label value: short identifiers pass, anything that could be personal data or
/// unbounded (emails, spaces, long strings) becomes `invalid`.
fn label(value: &str) -> String {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'/'));
    if ok {
        value.to_owned()
    } else {
        INVALID_LABEL.to_owned()
    }
}

/// A job reached a final state. `source`: intake source name (e.g. `hris`, `api`);
/// `outcome`: how it ended (e.g. `planned`, `failed`, `cancelled`, `rejected`).
/// Low-cardinality values only: never an email, user name or id.
pub fn job_finished(source: &str, outcome: &str) {
    ::metrics::counter!(names::JOBS_TOTAL, "source" => label(source), "outcome" => label(outcome))
        .increment(1);
}

/// One action attempt finished. `connector`: connector instance name (e.g. `ldap`);
/// `kind`: action kind (e.g. `lock_account`); `outcome`: `done`, `already_done`, `skipped`,
/// `failed`, `retry`, ... Records `revoke_actions_total` and `revoke_action_duration_seconds`.
/// Low-cardinality values only: never an email, user name, account DN or id.
pub fn action_finished(connector: &str, kind: &str, outcome: &str, duration: Duration) {
    let connector = label(connector);
    let kind = label(kind);
    ::metrics::histogram!(
        names::ACTION_DURATION_SECONDS,
        "connector" => connector.clone(),
        "kind" => kind.clone()
    )
    .record(duration.as_secs_f64());
    ::metrics::counter!(
        names::ACTIONS_TOTAL,
        "connector" => connector,
        "kind" => kind,
        "outcome" => label(outcome)
    )
    .increment(1);
}

/// Seconds from the termination being received (or taking effect, if later) to the last
/// contain action done. Prefer [`time_to_contain_for_risk`] when the risk is known: the
/// high-risk alert in `deploy/` only sees observations with `risk="high"`.
pub fn time_to_contain(seconds: f64) {
    ::metrics::histogram!(names::TIME_TO_CONTAIN_SECONDS).record(seconds.max(0.0));
}

/// Like [`time_to_contain`], with the job's risk level as the `risk` label
/// (`standard` or `high`).
pub fn time_to_contain_for_risk(risk: &str, seconds: f64) {
    ::metrics::histogram!(names::TIME_TO_CONTAIN_SECONDS, "risk" => label(risk))
        .record(seconds.max(0.0));
}

/// A webhook delivery was handled. `source`: configured intake source name; `result`: one of
/// [`names::WEBHOOK_RESULTS`] (`accepted`, `duplicate`, `ignored`, `unauthenticated`,
/// `malformed`, `too_large`, `unprocessable`, `challenge`, `probe`, `timeout`, `config`,
/// `error`).
/// Low-cardinality values only: never anything taken from the payload.
pub fn webhook_received(source: &str, result: &str) {
    ::metrics::counter!(
        names::WEBHOOKS_RECEIVED_TOTAL,
        "source" => label(source),
        "result" => label(result)
    )
    .increment(1);
}

/// Due actions not yet done.
pub fn queue_depth(n: u64) {
    ::metrics::gauge!(names::QUEUE_DEPTH).set(n as f64);
}

/// Jobs held until a person approves them.
pub fn jobs_awaiting_approval(n: u64) {
    ::metrics::gauge!(names::JOBS_AWAITING_APPROVAL).set(n as f64);
}

/// The blast-radius guard held back terminations from `source` (intake source name).
pub fn blast_radius_tripped(source: &str) {
    ::metrics::counter!(names::BLAST_RADIUS_TRIPPED_TOTAL, "source" => label(source)).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_reject_personal_or_unbounded_data() {
        assert_eq!(label("ldap"), "ldap");
        assert_eq!(label("google-workspace"), "google-workspace");
        assert_eq!(label("lock_account"), "lock_account");
        assert_eq!(label("jane.doe@example.com"), INVALID_LABEL);
        assert_eq!(label("Jane Doe"), INVALID_LABEL);
        assert_eq!(label(""), INVALID_LABEL);
        assert_eq!(label(&"a".repeat(65)), INVALID_LABEL);
        assert_eq!(label("cn=jdoe,ou=people"), INVALID_LABEL);
    }

    #[test]
    fn specs_cover_every_name_once() {
        assert_eq!(SPECS.len(), names::ALL.len());
        for name in names::ALL {
            assert_eq!(
                SPECS.iter().filter(|s| s.name == *name).count(),
                1,
                "{name}"
            );
        }
        for spec in SPECS {
            let is_counter = spec.name.ends_with("_total");
            assert_eq!(
                is_counter,
                spec.kind == MetricKind::Counter,
                "{}",
                spec.name
            );
        }
    }

    #[test]
    fn buckets_are_sorted_and_span_the_documented_range() {
        for b in [ACTION_DURATION_BUCKETS, TIME_TO_CONTAIN_BUCKETS] {
            assert!(b.windows(2).all(|w| w[0] < w[1]));
        }
        assert_eq!(ACTION_DURATION_BUCKETS.first(), Some(&0.005));
        assert_eq!(ACTION_DURATION_BUCKETS.last(), Some(&60.0));
        assert_eq!(TIME_TO_CONTAIN_BUCKETS.first(), Some(&1.0));
        assert_eq!(TIME_TO_CONTAIN_BUCKETS.last(), Some(&(48.0 * 3600.0)));
        assert!(TIME_TO_CONTAIN_BUCKETS.contains(&900.0));
    }
}
