//! Logs, traces and metrics for `revoked`.
//!
//! * [`init`] installs the global `tracing` subscriber: human text or JSON lines on stderr,
//!   an [`EnvFilter`] (`RUST_LOG` overrides the configured filter), and, when the standard
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` variables are set,
//!   a layer that exports spans over OTLP/HTTP (protobuf).
//! * [`metrics()`] installs the global Prometheus recorder; [`Metrics::render`] gives the text
//!   exposition for `GET /metrics`. The typed helpers ([`job_finished`], [`action_finished`], ...)
//!   are the only way the daemon records metrics, so names and label sets stay consistent with
//!   [`names`] and with the dashboards in `deploy/`.
//!
//! Spans the daemon emits (`job`, `action`) carry ids, connector names and outcomes as
//! attributes; they never carry emails or user names (those stay in the audit log).
//! Give integer span fields a signed type (`attempt = attempt as i64`): tracing-opentelemetry
//! exports `i64`/`i32` fields as OTLP integers but unsigned ones as strings.

mod limit;
mod prom;

pub use limit::LogLimiter;
pub use prom::{
    action_finished, blast_radius_tripped, job_finished, jobs_awaiting_approval, metrics, names,
    queue_depth, time_to_contain, time_to_contain_for_risk, webhook_received, MetricKind,
    MetricSpec, Metrics, ACTION_DURATION_BUCKETS, SPECS, TIME_TO_CONTAIN_BUCKETS,
};

use std::io::IsTerminal;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::Subscriber;
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

/// Standard OpenTelemetry variables this crate reads (the OTLP exporter reads the rest itself:
/// `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_BSP_*`, ...).
const ENV_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const ENV_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
const ENV_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
const ENV_TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
const ENV_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
const ENV_SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
const ENV_TRACES_EXPORTER: &str = "OTEL_TRACES_EXPORTER";

/// How long [`TelemetryGuard::shutdown`] waits for pending spans to be exported.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Targets whose events and spans never go to the OTLP layer: the exporter's own HTTP stack,
/// which would otherwise trace its own exports.
const OTLP_EXCLUDED_TARGETS: &[&str] = &[
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry_otlp",
    "opentelemetry_http",
    "reqwest",
    "hyper",
    "hyper_util",
    "h2",
    "tower",
    "rustls",
];

/// What [`init`] sets up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// `service.name` of exported spans, unless `OTEL_SERVICE_NAME` is set.
    pub service_name: String,
    /// JSON lines on stderr instead of human text.
    pub json_logs: bool,
    /// An [`EnvFilter`] directive such as `info` or `info,revoke_engine=debug`;
    /// a non-empty `RUST_LOG` replaces it.
    pub filter: String,
}

impl TelemetryConfig {
    /// Text logs at `info` for the given service name.
    pub fn new(service_name: impl Into<String>) -> Self {
        Self {
            service_name: service_name.into(),
            json_logs: false,
            filter: "info".to_owned(),
        }
    }
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self::new("revoked")
    }
}

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log filter {directive:?} (from {origin}): {source}")]
    Filter {
        directive: String,
        origin: &'static str,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("unsupported otlp protocol {0:?}: only http/protobuf is built in (use the collector's http port, usually 4318)")]
    UnsupportedProtocol(String),
    #[error("cannot build the otlp span exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("a global tracing subscriber is already installed")]
    SubscriberAlreadySet,
    #[error("a global metrics recorder is already installed by someone else")]
    RecorderAlreadySet,
    #[error("invalid histogram buckets: {0}")]
    Buckets(#[from] metrics_exporter_prometheus::BuildError),
}

/// Keeps the trace pipeline alive; call [`TelemetryGuard::shutdown`] on exit to flush spans.
///
/// Dropping the guard without calling `shutdown` also flushes (best effort).
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Whether spans are exported over OTLP.
    pub fn otlp_enabled(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the spans still queued and stops the exporter.
    ///
    /// Blocks the calling thread for at most a few seconds (the export runs on the batch
    /// processor's own thread with its own HTTP client, so calling this from inside a tokio
    /// runtime, even a current-thread one, cannot deadlock).
    pub fn shutdown(mut self) {
        self.shutdown_inner();
    }

    fn shutdown_inner(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(err) = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
                tracing::warn!(error = %err, "otlp trace exporter did not shut down cleanly");
            }
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        self.shutdown_inner();
    }
}

/// Installs the global tracing subscriber: the log layer (see [`fmt_layer`]) on stderr, an
/// [`EnvFilter`], and the OTLP trace layer when `OTEL_EXPORTER_OTLP_ENDPOINT` or
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (and neither `OTEL_SDK_DISABLED=true` nor
/// `OTEL_TRACES_EXPORTER=none`). `OTEL_SERVICE_NAME` overrides `cfg.service_name`.
///
/// Spans go out over OTLP/HTTP with protobuf bodies; `OTEL_EXPORTER_OTLP_PROTOCOL=grpc` is
/// refused with an error rather than silently sending HTTP to a gRPC port.
/// The exporter's HTTP client (built here) uses the process-wide rustls provider; with only
/// rustls's `ring` feature in the build, rustls installs ring itself if nobody did.
pub fn init(cfg: &TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    let filter = build_filter(&cfg.filter, env_nonempty("RUST_LOG"))?;
    let provider = if otlp_requested() {
        Some(build_tracer_provider(cfg)?)
    } else {
        None
    };

    let ansi = !cfg.json_logs && std::io::stderr().is_terminal();
    let mut layers: Vec<Box<dyn Layer<Layered<EnvFilter, Registry>> + Send + Sync>> =
        vec![fmt_layer(cfg.json_logs, ansi, std::io::stderr)];
    if let Some(provider) = &provider {
        let tracer = provider.tracer("revoked");
        let otel = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(filter_fn(|meta| !excluded_from_otlp(meta.target())));
        layers.push(Box::new(otel));
    }

    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(layers)
        .try_init();
    let guard = TelemetryGuard { provider };
    match installed {
        Ok(()) => Ok(guard),
        Err(_) => Err(TelemetryError::SubscriberAlreadySet),
    }
}

/// Builds the log formatting layer that [`init`] installs, writing to `writer`: JSON lines when
/// `json` (event fields flattened at the top level, plus `timestamp`, `level`, `target` and the
/// current `span` with its fields), human text otherwise.
///
/// Public so that tests (and embedders) can point it at a buffer.
pub fn fmt_layer<S, W>(json: bool, ansi: bool, writer: W) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let base = tracing_subscriber::fmt::layer().with_writer(writer);
    if json {
        Box::new(
            base.json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false),
        )
    } else {
        Box::new(base.with_ansi(ansi))
    }
}

fn build_filter(configured: &str, rust_log: Option<String>) -> Result<EnvFilter, TelemetryError> {
    let (directive, origin) = match rust_log {
        Some(value) => (value, "RUST_LOG"),
        None if configured.trim().is_empty() => ("info".to_owned(), "default"),
        None => (configured.to_owned(), "configuration"),
    };
    EnvFilter::builder()
        .parse(&directive)
        .map_err(|source| TelemetryError::Filter {
            directive,
            origin,
            source,
        })
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn otlp_requested() -> bool {
    let disabled = env_nonempty(ENV_SDK_DISABLED).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let no_exporter =
        env_nonempty(ENV_TRACES_EXPORTER).is_some_and(|v| v.eq_ignore_ascii_case("none"));
    let endpoint =
        env_nonempty(ENV_TRACES_ENDPOINT).is_some() || env_nonempty(ENV_ENDPOINT).is_some();
    endpoint && !disabled && !no_exporter
}

fn excluded_from_otlp(target: &str) -> bool {
    OTLP_EXCLUDED_TARGETS.iter().any(|prefix| {
        target == *prefix
            || target
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with("::"))
    })
}

fn build_tracer_provider(cfg: &TelemetryConfig) -> Result<SdkTracerProvider, TelemetryError> {
    let protocol = env_nonempty(ENV_TRACES_PROTOCOL).or_else(|| env_nonempty(ENV_PROTOCOL));
    if let Some(p) = protocol {
        if p != "http/protobuf" {
            return Err(TelemetryError::UnsupportedProtocol(p));
        }
    }
    // Endpoint, headers, timeout and compression come from the standard OTEL_* variables.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .build()?;

    // Resource::builder() already applies OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES;
    // the configured name only fills in when OTEL_SERVICE_NAME is absent.
    let mut resource = Resource::builder().with_attribute(opentelemetry::KeyValue::new(
        "service.version",
        env!("CARGO_PKG_VERSION"),
    ));
    if env_nonempty(ENV_SERVICE_NAME).is_none() {
        resource = resource.with_service_name(cfg.service_name.clone());
    }

    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_overrides_configured_filter() {
        let f = build_filter("info", Some("debug,hyper=warn".to_owned()));
        assert!(f.is_ok());
        let err = build_filter("info", Some("=[bad".to_owned()));
        match err {
            Err(TelemetryError::Filter { origin, .. }) => assert_eq!(origin, "RUST_LOG"),
            other => panic!("expected a filter error, got {other:?}"),
        }
        let err = build_filter("info,[bad", None);
        match err {
            Err(TelemetryError::Filter { origin, .. }) => assert_eq!(origin, "configuration"),
            other => panic!("expected a filter error, got {other:?}"),
        }
        assert!(build_filter("  ", None).is_ok());
    }

    #[test]
    fn exporter_internals_are_excluded_from_otlp() {
        assert!(excluded_from_otlp("hyper"));
        assert!(excluded_from_otlp("hyper_util::client::legacy"));
        assert!(excluded_from_otlp("reqwest::connect"));
        assert!(excluded_from_otlp("opentelemetry_sdk"));
        assert!(!excluded_from_otlp("revoked"));
        assert!(!excluded_from_otlp("revoke_engine::executor"));
        assert!(!excluded_from_otlp("hyperion"));
    }

    #[test]
    fn error_messages_are_lowercase_without_trailing_period() {
        let errs = [
            TelemetryError::SubscriberAlreadySet.to_string(),
            TelemetryError::RecorderAlreadySet.to_string(),
            TelemetryError::UnsupportedProtocol("grpc".into()).to_string(),
        ];
        for e in errs {
            assert!(e.starts_with(|c: char| c.is_lowercase()), "{e}");
            assert!(!e.ends_with('.'), "{e}");
        }
    }
}
