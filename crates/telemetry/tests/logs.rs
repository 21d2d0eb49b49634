//! The log layer `init` installs: JSON lines carry structured fields; text mode stays readable.

use std::io::Write;
use std::sync::{Arc, Mutex};

use revoke_telemetry::fmt_layer;
use tracing_subscriber::layer::SubscriberExt;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer").extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("buffer").clone()).expect("utf-8 logs")
    }
}

fn emit() {
    let job = tracing::info_span!("job", job_id = "job-42");
    let _job = job.enter();
    let action = tracing::info_span!(
        "action",
        job_id = "job-42",
        action_id = "act-9",
        connector = "ldap",
        kind = "disable_account",
        attempt = 1u32
    );
    let _action = action.enter();
    tracing::warn!(
        error_class = "retryable",
        retry_in_ms = 1500u64,
        "connector busy"
    );
}

#[test]
fn json_logs_are_structured() {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber =
        tracing_subscriber::registry().with(fmt_layer(true, false, move || writer.clone()));
    tracing::subscriber::with_default(subscriber, emit);

    let out = buf.text();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "one event, one line: {out}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).expect("a JSON object per line");

    assert_eq!(v["level"], "WARN");
    assert_eq!(v["message"], "connector busy");
    assert_eq!(v["error_class"], "retryable");
    assert_eq!(v["retry_in_ms"], 1500);
    assert!(v["timestamp"].is_string());
    assert_eq!(v["target"], "logs");
    assert_eq!(v["span"]["name"], "action");
    assert_eq!(v["span"]["job_id"], "job-42");
    assert_eq!(v["span"]["action_id"], "act-9");
    assert_eq!(v["span"]["connector"], "ldap");
    assert_eq!(v["span"]["kind"], "disable_account");
    assert_eq!(v["span"]["attempt"], 1);
}

#[test]
fn text_logs_without_ansi_are_plain() {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber =
        tracing_subscriber::registry().with(fmt_layer(false, false, move || writer.clone()));
    tracing::subscriber::with_default(subscriber, emit);

    let out = buf.text();
    assert!(out.contains("WARN"), "{out}");
    assert!(out.contains("connector busy"), "{out}");
    assert!(out.contains("job_id=\"job-42\""), "{out}");
    assert!(out.contains("error_class=\"retryable\""), "{out}");
    assert!(
        !out.contains('\u{1b}'),
        "no escape codes when ansi is off: {out:?}"
    );
    assert!(serde_json::from_str::<serde_json::Value>(out.trim()).is_err());
}
