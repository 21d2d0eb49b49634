//! Every metric renders in the Prometheus text format with its labels, HELP/TYPE lines and,
//! for histograms, `_bucket` series. Own test binary: the recorder is process-global.

use std::time::Duration;

use revoke_telemetry::{names, MetricKind, SPECS};

#[test]
fn every_metric_renders_with_labels_buckets_and_help() {
    let first = revoke_telemetry::metrics().expect("install recorder");
    let second = revoke_telemetry::metrics().expect("second call returns the same handle");

    revoke_telemetry::job_finished("hris", "completed");
    revoke_telemetry::job_finished("hris", "completed");
    revoke_telemetry::action_finished("ldap", "lock_account", "done", Duration::from_millis(120));
    revoke_telemetry::action_finished("ldap", "lock_account", "failed", Duration::from_secs(2));
    revoke_telemetry::time_to_contain(42.0);
    revoke_telemetry::time_to_contain_for_risk("high", 1000.0);
    revoke_telemetry::webhook_received("hris", "accepted");
    revoke_telemetry::webhook_received("hris", "unauthenticated");
    revoke_telemetry::queue_depth(7);
    revoke_telemetry::jobs_awaiting_approval(3);
    revoke_telemetry::blast_radius_tripped("hris");
    // A person's address passed by mistake never becomes a label value.
    revoke_telemetry::job_finished("jane.doe@example.com", "completed");

    // Recorded through `first`'s recorder, rendered through `second`: same recorder.
    // (Series order in the exposition is not stable, so compare sorted lines.)
    let text = second.render();
    let sorted = |t: &str| {
        let mut lines: Vec<String> = t.lines().map(str::to_owned).collect();
        lines.sort();
        lines
    };
    assert_eq!(sorted(&text), sorted(&first.render()));
    println!("{text}");

    for spec in SPECS {
        let kind = match spec.kind {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        };
        assert!(
            text.contains(&format!("# HELP {} {}", spec.name, spec.help)),
            "no HELP for {}",
            spec.name
        );
        assert!(
            text.contains(&format!("# TYPE {} {kind}", spec.name)),
            "no TYPE {kind} for {}",
            spec.name
        );
    }

    let has = |needle: &str| {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    };
    has(r#"revoke_jobs_total{source="hris",outcome="completed"} 2"#);
    has(r#"revoke_jobs_total{source="invalid",outcome="completed"} 1"#);
    assert!(!text.contains("example.com"));
    has(r#"revoke_actions_total{connector="ldap",kind="lock_account",outcome="done"} 1"#);
    has(r#"revoke_actions_total{connector="ldap",kind="lock_account",outcome="failed"} 1"#);
    has(
        r#"revoke_action_duration_seconds_bucket{connector="ldap",kind="lock_account",le="0.005"} 0"#,
    );
    has(
        r#"revoke_action_duration_seconds_bucket{connector="ldap",kind="lock_account",le="0.25"} 1"#,
    );
    has(
        r#"revoke_action_duration_seconds_bucket{connector="ldap",kind="lock_account",le="2.5"} 2"#,
    );
    has(r#"revoke_action_duration_seconds_bucket{connector="ldap",kind="lock_account",le="60"} 2"#);
    has(
        r#"revoke_action_duration_seconds_bucket{connector="ldap",kind="lock_account",le="+Inf"} 2"#,
    );
    has(r#"revoke_action_duration_seconds_count{connector="ldap",kind="lock_account"} 2"#);
    has(r#"revoke_action_duration_seconds_sum{connector="ldap",kind="lock_account"} 2.12"#);
    has(r#"revoke_time_to_contain_seconds_bucket{le="60"} 1"#);
    has(r#"revoke_time_to_contain_seconds_bucket{risk="high",le="900"} 0"#);
    has(r#"revoke_time_to_contain_seconds_bucket{risk="high",le="1800"} 1"#);
    has(r#"revoke_time_to_contain_seconds_bucket{risk="high",le="172800"} 1"#);
    has(r#"revoke_webhooks_received_total{source="hris",result="accepted"} 1"#);
    has(r#"revoke_webhooks_received_total{source="hris",result="unauthenticated"} 1"#);
    has(&format!("{} 7\n", names::QUEUE_DEPTH));
    has(&format!("{} 3\n", names::JOBS_AWAITING_APPROVAL));
    has(r#"revoke_blast_radius_tripped_total{source="hris"} 1"#);
    assert!(
        !text.contains("quantile="),
        "histograms must not render as summaries"
    );
}
