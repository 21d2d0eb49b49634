//! Spans reach an OTLP/HTTP receiver through the same path `init` uses in the daemon:
//! the standard env variables, the global subscriber, the batch exporter, `shutdown` to flush.
//!
//! This file is its own test binary (own process), so setting env variables and installing the
//! global subscriber here affects nothing else. Keep it to one test.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use revoke_telemetry::{init, TelemetryConfig};

#[derive(Debug, Clone)]
struct Received {
    method: Method,
    path: String,
    content_type: Option<String>,
    body: Bytes,
}

type Log = Arc<Mutex<Vec<Received>>>;

async fn record(
    State(log): State<Log>,
    method: Method,
    uri: Uri,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> StatusCode {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    log.lock().expect("receiver log").push(Received {
        method,
        path: uri.path().to_owned(),
        content_type,
        body,
    });
    StatusCode::OK
}

fn attrs(kvs: &[KeyValue]) -> HashMap<String, Value> {
    kvs.iter()
        .filter_map(|kv| {
            let v = kv.value.as_ref()?.value.clone()?;
            Some((kv.key.clone(), v))
        })
        .collect()
}

fn string(v: Option<&Value>) -> Option<&str> {
    match v {
        Some(Value::StringValue(s)) => Some(s),
        _ => None,
    }
}

#[test]
fn job_and_action_spans_reach_the_otlp_receiver() {
    // The daemon installs ring as the process-wide rustls provider; so does this test, since
    // the exporter's HTTP client is built even for plain-http endpoints.
    let _ = rustls::crypto::ring::default_provider().install_default();

    // Receiver on its own runtime, on a free loopback port.
    let log: Log = Arc::default();
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("server runtime");
    let listener = server_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind receiver");
    let addr = listener.local_addr().expect("receiver addr");
    let app = axum::Router::new().fallback(record).with_state(log.clone());
    server_rt.spawn(async move { axum::serve(listener, app).await });

    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}"));
    std::env::remove_var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    std::env::remove_var("OTEL_SERVICE_NAME");
    std::env::remove_var("OTEL_EXPORTER_OTLP_PROTOCOL");
    std::env::remove_var("OTEL_SDK_DISABLED");
    std::env::remove_var("RUST_LOG");

    let cfg = TelemetryConfig {
        service_name: "revoked-test".to_owned(),
        json_logs: true,
        filter: "info".to_owned(),
    };

    // Emit and shut down from inside a current-thread runtime, like an async main would:
    // shutdown must not need this runtime to make progress.
    let app_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("app runtime");
    app_rt.block_on(async {
        let guard = init(&cfg).expect("init telemetry");
        assert!(guard.otlp_enabled());

        let job = tracing::info_span!("job", job_id = "job-7f3a");
        job.in_scope(|| {
            let action = tracing::info_span!(
                "action",
                job_id = "job-7f3a",
                action_id = "act-0001",
                connector = "ldap",
                kind = "lock_account",
                outcome = tracing::field::Empty,
                // Signed on purpose: tracing-opentelemetry 0.34 exports u64/u32 fields as
                // strings, i64/i32 as OTLP ints.
                attempt = 2i64,
            );
            action.in_scope(|| tracing::info!("action applied"));
            action.record("outcome", "done");
        });
        // A debug span is below the "info" filter: it must not be exported.
        tracing::debug_span!("noise").in_scope(|| {});
        drop(job);

        guard.shutdown();
    });

    let received = log.lock().expect("receiver log").clone();
    assert!(!received.is_empty(), "the receiver got no export request");

    let mut spans: Vec<Span> = Vec::new();
    let mut service_names = Vec::new();
    for r in &received {
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.path, "/v1/traces");
        assert_eq!(r.content_type.as_deref(), Some("application/x-protobuf"));
        let req = ExportTraceServiceRequest::decode(r.body.clone()).expect("protobuf body");
        for rs in req.resource_spans {
            let res = attrs(&rs.resource.map(|r| r.attributes).unwrap_or_default());
            service_names.push(string(res.get("service.name")).map(str::to_owned));
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
    }
    assert!(service_names
        .iter()
        .all(|n| n.as_deref() == Some("revoked-test")));

    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert!(
        !names.contains(&"noise"),
        "filtered span exported: {names:?}"
    );
    let job = spans
        .iter()
        .find(|s| s.name == "job")
        .unwrap_or_else(|| panic!("no job span in {names:?}"));
    let action = spans
        .iter()
        .find(|s| s.name == "action")
        .unwrap_or_else(|| panic!("no action span in {names:?}"));

    let job_attrs = attrs(&job.attributes);
    assert_eq!(string(job_attrs.get("job_id")), Some("job-7f3a"));

    let a = attrs(&action.attributes);
    assert_eq!(string(a.get("job_id")), Some("job-7f3a"));
    assert_eq!(string(a.get("action_id")), Some("act-0001"));
    assert_eq!(string(a.get("connector")), Some("ldap"));
    assert_eq!(string(a.get("kind")), Some("lock_account"));
    assert_eq!(
        string(a.get("outcome")),
        Some("done"),
        "recorded after creation"
    );
    assert_eq!(a.get("attempt"), Some(&Value::IntValue(2)));

    assert_eq!(action.trace_id, job.trace_id, "one trace per job");
    assert_eq!(
        action.parent_span_id, job.span_id,
        "action is a child of job"
    );
    assert!(
        action.events.iter().any(|e| e.name == "action applied"),
        "log event inside the action span is a span event"
    );
}
