//! The Grafana dashboard and Prometheus alert rules in `deploy/` only use metrics and labels
//! that revoked exports (`names::*`, `SPECS`), and are well-formed.
//!
//! PromQL is checked with a small tokenizer: every identifier must be a known PromQL function
//! or keyword, a metric from `SPECS` (histograms also with `_bucket`, `_sum`, `_count`), or
//! Prometheus' own `up`; label matchers and `by (...)` clauses may only name labels the
//! metrics carry (plus the scrape labels `job` and `instance`, and `le` for buckets).
//! When `promtool` is on PATH, the rules are also checked and unit-tested with it.

use std::collections::BTreeSet;
use std::path::PathBuf;

use revoke_telemetry::{names, MetricKind, MetricSpec, SPECS};
use serde_json::Value;

const SCRAPE_LABELS: &[&str] = &["job", "instance"];
const PROMETHEUS_METRICS: &[&str] = &["up"];
const PROMQL_WORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "topk",
    "bottomk",
    "group",
    "rate",
    "irate",
    "increase",
    "delta",
    "deriv",
    "histogram_quantile",
    "absent",
    "min_over_time",
    "max_over_time",
    "avg_over_time",
    "clamp_min",
    "clamp_max",
    "vector",
    "scalar",
    "time",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
];
const GROUPING_WORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn read(rel: &str) -> String {
    let path = deploy_dir().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The spec for a series name (`revoke_x_bucket` resolves to histogram `revoke_x`).
fn spec_for(series: &str) -> Option<(&'static MetricSpec, bool)> {
    if let Some(spec) = SPECS.iter().find(|s| s.name == series) {
        return Some((spec, false));
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = series.strip_suffix(suffix) {
            if let Some(spec) = SPECS
                .iter()
                .find(|s| s.name == base && s.kind == MetricKind::Histogram)
            {
                return Some((spec, suffix == "_bucket"));
            }
        }
    }
    None
}

#[derive(Debug, Default)]
struct Query {
    /// Metric names (base names, from `SPECS`) the expression reads.
    metrics: BTreeSet<&'static str>,
    /// Series names as written, `revoke_x_bucket` included.
    series: BTreeSet<String>,
}

/// Checks one PromQL expression; returns what it reads, or the problems found.
fn check_promql(expr: &str) -> Result<Query, Vec<String>> {
    let chars: Vec<char> = expr.chars().collect();
    let mut errors = Vec::new();
    let mut query = Query::default();
    let mut groupings: Vec<String> = Vec::new();
    let mut stack: Vec<char> = Vec::new();
    let mut last_series: Option<String> = None;
    let mut bucket_read = false;
    let mut i = 0;

    let read_string = |i: &mut usize, errors: &mut Vec<String>| {
        let quote = chars[*i];
        *i += 1;
        let start = *i;
        while *i < chars.len() && chars[*i] != quote {
            if chars[*i] == '\\' {
                *i += 1;
            }
            *i += 1;
        }
        if *i >= chars.len() {
            errors.push(format!("unterminated string in {expr:?}"));
        }
        let s: String = chars[start..(*i).min(chars.len())].iter().collect();
        *i += 1;
        s
    };
    let is_ident_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';

    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            read_string(&mut i, &mut errors);
            last_series = None;
        } else if c == '$' {
            // Grafana variable: $x, $__rate_interval, ${x}
            i += 1;
            if i < chars.len() && chars[i] == '{' {
                while i < chars.len() && chars[i] != '}' {
                    i += 1;
                }
                i += 1;
            } else {
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
            }
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            if i >= chars.len() {
                errors.push(format!("unterminated range in {expr:?}"));
            }
            i += 1;
        } else if c == '{' {
            // Label matchers of the series just named (or of a bare selector).
            i += 1;
            let series = last_series.take();
            let allowed: Option<BTreeSet<&str>> = series.as_deref().map(|s| {
                let mut set: BTreeSet<&str> = SCRAPE_LABELS.iter().copied().collect();
                if let Some((spec, is_bucket)) = spec_for(s) {
                    set.extend(spec.labels.iter().copied());
                    if is_bucket {
                        set.insert("le");
                    }
                }
                set
            });
            loop {
                while i < chars.len() && (chars[i].is_whitespace() || chars[i] == ',') {
                    i += 1;
                }
                if i >= chars.len() {
                    errors.push(format!("unterminated matcher in {expr:?}"));
                    break;
                }
                if chars[i] == '}' {
                    i += 1;
                    break;
                }
                let start = i;
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
                let key: String = chars[start..i].iter().collect();
                while i < chars.len() && chars[i].is_whitespace() {
                    i += 1;
                }
                let op_start = i;
                while i < chars.len() && matches!(chars[i], '=' | '!' | '~') {
                    i += 1;
                }
                let op: String = chars[op_start..i].iter().collect();
                while i < chars.len() && chars[i].is_whitespace() {
                    i += 1;
                }
                if key.is_empty()
                    || !matches!(op.as_str(), "=" | "!=" | "=~" | "!~")
                    || i >= chars.len()
                    || !matches!(chars[i], '"' | '\'' | '`')
                {
                    errors.push(format!("malformed label matcher near {key:?} in {expr:?}"));
                    break;
                }
                let value = read_string(&mut i, &mut errors);
                if let (Some(allowed), Some(series)) = (&allowed, &series) {
                    if !allowed.contains(key.as_str()) {
                        errors.push(format!(
                            "{series} has no label {key:?} (has {allowed:?}) in {expr:?}"
                        ));
                    }
                    if series == names::WEBHOOKS_RECEIVED_TOTAL
                        && key == "result"
                        && op == "="
                        && !names::WEBHOOK_RESULTS.contains(&value.as_str())
                    {
                        errors.push(format!("unknown webhook result {value:?} in {expr:?}"));
                    }
                }
            }
        } else if is_ident_start(c) {
            let start = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            last_series = None;
            if GROUPING_WORDS.contains(&word.as_str()) {
                let mut j = i;
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                if j < chars.len() && chars[j] == '(' {
                    let close = chars[j..]
                        .iter()
                        .position(|&c| c == ')')
                        .map(|p| p + j)
                        .unwrap_or(chars.len());
                    let list: String = chars[j + 1..close.min(chars.len())].iter().collect();
                    groupings.extend(
                        list.split(',')
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(str::to_owned),
                    );
                    i = close + 1;
                }
            } else if PROMQL_WORDS.contains(&word.as_str()) {
                // function or keyword
            } else if PROMETHEUS_METRICS.contains(&word.as_str()) {
                query.series.insert(word.clone());
                last_series = Some(word);
            } else if let Some((spec, is_bucket)) = spec_for(&word) {
                bucket_read |= is_bucket;
                query.metrics.insert(spec.name);
                query.series.insert(word.clone());
                last_series = Some(word);
            } else {
                errors.push(format!(
                    "{word:?} is neither a revoked metric (names::*) nor a known PromQL word in {expr:?}"
                ));
            }
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else {
            match c {
                '(' => stack.push(')'),
                ')' if stack.pop() != Some(')') => {
                    errors.push(format!("unbalanced ')' in {expr:?}"));
                }
                '}' | ']' => errors.push(format!("stray {c:?} in {expr:?}")),
                _ => {}
            }
            if !c.is_whitespace() {
                last_series = None;
            }
            i += 1;
        }
    }
    if !stack.is_empty() {
        errors.push(format!("unclosed '(' in {expr:?}"));
    }

    let mut grouping_allowed: BTreeSet<&str> = SCRAPE_LABELS.iter().copied().collect();
    for m in &query.metrics {
        if let Some((spec, _)) = spec_for(m) {
            grouping_allowed.extend(spec.labels.iter().copied());
        }
    }
    if bucket_read {
        grouping_allowed.insert("le");
    }
    for label in &groupings {
        if !grouping_allowed.contains(label.as_str()) {
            errors.push(format!(
                "grouping by {label:?}, which no metric in the query carries, in {expr:?}"
            ));
        }
    }
    if query.series.is_empty() {
        errors.push(format!("no metric in {expr:?}"));
    }
    if errors.is_empty() {
        Ok(query)
    } else {
        Err(errors)
    }
}

#[test]
fn promql_checker_catches_mistakes() {
    // The checker itself must be able to fail, or the tests below prove nothing.
    let ok = [
        r#"sum by (connector, le) (rate(revoke_action_duration_seconds_bucket{instance=~"$instance"}[$__rate_interval]))"#,
        r#"up{job="revoked"} == 0 or absent(up{job="revoked"})"#,
        r#"(sum by (instance) (revoke_queue_depth) > 0) unless (sum by (instance) (increase(revoke_actions_total[30m])) > 0)"#,
    ];
    for q in ok {
        assert!(check_promql(q).is_ok(), "{q}: {:?}", check_promql(q).err());
    }
    let bad = [
        "rate(revoke_job_total[5m])",                         // misspelt metric
        "sum by (connector) (rate(revoke_jobs_total[5m]))",   // label of another metric
        r#"rate(revoke_actions_total{outcom="failed"}[5m])"#, // misspelt label
        "histogram_quantile(0.9, rate(revoke_queue_depth_bucket[5m]))", // gauge has no buckets
        r#"revoke_webhooks_received_total{result="unauthorized"}"#, // unknown result
        "sum(rate(revoke_jobs_total[5m])",                    // unbalanced
        "sum by (le) (rate(revoke_jobs_total[5m]))",          // le without buckets
    ];
    for q in bad {
        assert!(check_promql(q).is_err(), "accepted: {q}");
    }
}

/// Every PromQL expression in the dashboard (panel targets and variable queries).
fn dashboard_exprs(dash: &Value) -> Vec<(String, String)> {
    fn walk(panels: &[Value], out: &mut Vec<(String, String)>) {
        for p in panels {
            let title = p["title"].as_str().unwrap_or("?").to_owned();
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((title.clone(), e.to_owned()));
                }
            }
            if let Some(inner) = p["panels"].as_array() {
                walk(inner, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dash["panels"].as_array().expect("panels"), &mut out);
    out
}

#[test]
fn dashboard_is_valid_and_uses_only_known_metrics() {
    let text = read("grafana/revoked-dashboard.json");
    let dash: Value = serde_json::from_str(&text).expect("dashboard is JSON");

    let schema = dash["schemaVersion"].as_u64().expect("schemaVersion");
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");
    assert_eq!(dash["uid"], "revoked-overview");
    assert!(dash["title"].as_str().is_some_and(|t| !t.is_empty()));
    let inputs = dash["__inputs"].as_array().expect("__inputs");
    assert!(inputs
        .iter()
        .any(|i| i["name"] == "DS_PROMETHEUS" && i["pluginId"] == "prometheus"));

    // Panels: unique ids, the shared datasource input, a grid position.
    let panels = dash["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    for p in panels {
        let id = p["id"].as_u64().expect("panel id");
        assert!(ids.insert(id), "duplicate panel id {id}");
        assert!(
            p["gridPos"]["w"].as_u64().is_some(),
            "gridPos of {}",
            p["title"]
        );
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${DS_PROMETHEUS}", "{}", p["title"]);
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{} has no query", p["title"]);
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${DS_PROMETHEUS}", "{}", p["title"]);
        }
    }

    let mut used = BTreeSet::new();
    let mut problems = Vec::new();
    for (title, expr) in dashboard_exprs(&dash) {
        match check_promql(&expr) {
            Ok(q) => used.extend(q.metrics),
            Err(e) => problems.extend(e.into_iter().map(|e| format!("{title}: {e}"))),
        }
        if expr.contains("histogram_quantile") {
            assert!(
                expr.contains("_bucket"),
                "{title}: quantile without buckets"
            );
        }
    }
    // Variable queries: label_values(metric, label).
    for v in dash["templating"]["list"].as_array().expect("templating") {
        if v["type"] == "query" {
            let def = v["definition"].as_str().expect("variable definition");
            let inner = def
                .strip_prefix("label_values(")
                .and_then(|d| d.strip_suffix(')'))
                .expect("label_values(metric, label)");
            let (metric, label) = inner.split_once(',').expect("metric, label");
            let (metric, label) = (metric.trim(), label.trim());
            assert!(
                names::ALL.contains(&metric),
                "variable reads unknown {metric}"
            );
            assert!(SCRAPE_LABELS.contains(&label), "variable label {label}");
        }
    }
    assert!(
        problems.is_empty(),
        "dashboard problems:\n{}",
        problems.join("\n")
    );

    let missing: Vec<_> = names::ALL.iter().filter(|n| !used.contains(*n)).collect();
    assert!(missing.is_empty(), "metrics without a panel: {missing:?}");
}

#[derive(Debug, Default)]
struct Rule {
    alert: String,
    expr: String,
    r#for: Option<String>,
    severity: Option<String>,
    summary: bool,
    description: bool,
}

/// Reads the rules out of the file with line checks (no YAML parser in the tree). It requires
/// the layout the file uses: `- alert:` starts a rule; `expr:` is one line or a `|`/`>` block.
fn parse_rules(text: &str) -> Vec<Rule> {
    assert!(!text.contains('\t'), "tabs in YAML");
    assert!(text.ends_with('\n'), "no final newline");
    let lines: Vec<&str> = text.lines().collect();
    let content: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect();
    assert_eq!(content.first(), Some(&"groups:"));
    assert!(content.iter().any(|l| l.trim() == "- name: revoked"));
    assert!(content.iter().any(|l| l.trim() == "rules:"));

    let mut rules: Vec<Rule> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim();
        let indent = line.len() - line.trim_start().len();
        // Any value holding a Go template must be quoted, or YAML reads `{` as a mapping.
        if trimmed.contains("{{") {
            let value = trimmed.split_once(": ").map(|(_, v)| v).unwrap_or("");
            assert!(
                value.starts_with('"') && value.ends_with('"'),
                "unquoted template: {line}"
            );
        }
        if let Some(name) = trimmed.strip_prefix("- alert: ") {
            rules.push(Rule {
                alert: name.to_owned(),
                ..Rule::default()
            });
        } else if let Some(rule) = rules.last_mut() {
            if let Some(v) = trimmed.strip_prefix("expr: ") {
                if v == "|" || v.starts_with('>') {
                    let mut block = Vec::new();
                    while i + 1 < lines.len() {
                        let next = lines[i + 1];
                        let next_indent = next.len() - next.trim_start().len();
                        if !next.trim().is_empty() && next_indent <= indent {
                            break;
                        }
                        block.push(next.trim());
                        i += 1;
                    }
                    rule.expr = block.join(" ");
                } else {
                    rule.expr = v.to_owned();
                }
            } else if let Some(v) = trimmed.strip_prefix("for: ") {
                rule.r#for = Some(v.to_owned());
            } else if let Some(v) = trimmed.strip_prefix("severity: ") {
                rule.severity = Some(v.to_owned());
            } else if trimmed.starts_with("summary: ") {
                rule.summary = true;
            } else if trimmed.starts_with("description: ") {
                rule.description = true;
            }
        }
        i += 1;
    }
    rules
}

#[test]
fn alert_rules_are_valid_and_use_only_known_metrics() {
    let text = read("prometheus/revoked-alerts.yml");
    let rules = parse_rules(&text);

    let expected = [
        "RevokedDown",
        "RevokedActionsFailing",
        "RevokedHighRiskContainmentSlow",
        "RevokedWebhooksUnauthenticated",
        "RevokedQueueStuck",
        "RevokedQueueGrowing",
        "RevokedJobsAwaitingApproval",
        "RevokedBlastRadiusTripped",
    ];
    let got: Vec<&str> = rules.iter().map(|r| r.alert.as_str()).collect();
    assert_eq!(got, expected);

    let mut problems = Vec::new();
    for r in &rules {
        assert!(!r.expr.is_empty(), "{}: no expr", r.alert);
        assert!(
            matches!(r.severity.as_deref(), Some("critical" | "warning")),
            "{}: severity {:?}",
            r.alert,
            r.severity
        );
        assert!(
            r.summary && r.description,
            "{}: summary and description",
            r.alert
        );
        if let Some(f) = &r.r#for {
            let (num, unit) = f.split_at(f.len() - 1);
            assert!(
                num.parse::<u32>().is_ok() && matches!(unit, "s" | "m" | "h"),
                "{}: for {f:?}",
                r.alert
            );
        }
        if let Err(e) = check_promql(&r.expr) {
            problems.extend(e.into_iter().map(|e| format!("{}: {e}", r.alert)));
        }
    }
    assert!(
        problems.is_empty(),
        "rule problems:\n{}",
        problems.join("\n")
    );

    // The specific conditions the runbook relies on.
    let expr = |name: &str| {
        rules
            .iter()
            .find(|r| r.alert == name)
            .map(|r| r.expr.as_str())
            .unwrap_or_default()
    };
    assert!(expr("RevokedActionsFailing").contains(r#"outcome="failed""#));
    assert_eq!(
        rules
            .iter()
            .find(|r| r.alert == "RevokedActionsFailing")
            .and_then(|r| r.r#for.as_deref()),
        Some("10m")
    );
    let ttc = expr("RevokedHighRiskContainmentSlow");
    assert!(ttc.contains("histogram_quantile(0.95") && ttc.contains(r#"risk="high""#));
    assert!(ttc.contains("[1h]") && ttc.ends_with("> 900"));
    assert!(expr("RevokedWebhooksUnauthenticated").contains(r#"result="unauthenticated""#));
    assert!(expr("RevokedQueueStuck").contains(names::QUEUE_DEPTH));
    assert!(expr("RevokedQueueStuck").contains(names::ACTIONS_TOTAL));
    assert!(expr("RevokedJobsAwaitingApproval").contains(names::JOBS_AWAITING_APPROVAL));
    assert!(expr("RevokedDown").contains("up{"));

    // Every alert has a promtool unit test.
    let tests = read("prometheus/revoked-alerts.test.yml");
    for name in expected {
        assert!(
            tests.contains(&format!("alertname: {name}\n")),
            "{name} has no case in revoked-alerts.test.yml"
        );
    }
}

/// Runs promtool on the rules and their unit tests when it is installed (Debian: `prometheus`).
#[test]
fn promtool_accepts_rules_when_available() {
    let dir = deploy_dir().join("prometheus");
    for args in [
        ["check", "rules", "revoked-alerts.yml"],
        ["test", "rules", "revoked-alerts.test.yml"],
    ] {
        let out = match std::process::Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
        {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!(
                    "promtool not installed: skipping `promtool {}`",
                    args.join(" ")
                );
                return;
            }
            Err(e) => panic!("run promtool: {e}"),
        };
        assert!(
            out.status.success(),
            "promtool {} failed:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
