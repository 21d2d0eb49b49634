//! A whole company offboarding at once through the daemon: every stand-in (slapd, moto, the
//! GitHub, OneLogin, Okta and Entra ID stand-ins, scim2-server) seeded with one generated company
//! (`revoke_testkit::company`), `revoked` on its default SQLite store in front of them, and many
//! leavers sent at once as signed high-risk terminations, the way HR sends them.
//!
//! It reports, in one run: the wall time from the first webhook to every leaver's contain,
//! transfer and revoke work done (the delete phase waits for the retention), against the floor
//! the configured pace implies (GitHub's serial mutations, `mutation_spacing_ms` apart, are the
//! binding one); the calls each stand-in received against the least the offboarding needs
//! (`Company::floor`: one lookup per leaver per system, one write per thing removed); throttled
//! answers provoked (goal 0); each leaver's time to contain (received -> last contain action
//! done, as the daemon's job API records it), p50 and p99, also per connector; and peak RSS of
//! `revoked` (VmHWM).
//!
//! `cargo bench -p revoked --bench company` offboards 200 leavers of a 1,000-person company;
//! `-- --people N --leavers L --seed S --github-spacing-ms MS` changes that. Under
//! `cargo test --benches` it runs a smoke pass (8 people, 3 leavers, GitHub spacing 100 ms) that
//! asserts every leaver contained with no failure, nothing throttled, and evidence for every job.

#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::*;
use revoke_testkit::{Company, CompanyStack};
use serde_json::Value;

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Phases that run now; the delete phase waits for the retention
const NOW: [&str; 3] = ["contain", "transfer", "revoke"];
const OK: [&str; 3] = ["done", "already_done", "skipped"];
const TERMINAL: [&str; 6] = [
    "done",
    "already_done",
    "skipped",
    "failed",
    "blocked",
    "cancelled",
];

fn config(stack: &CompanyStack, dir: &std::path::Path, spacing: u64) -> std::path::PathBuf {
    std::fs::write(dir.join("whsec"), format!("{WEBHOOK_SECRET}\n")).unwrap();
    let text = format!(
        r#"data_dir = "{data}"
[daemon]
listen = "127.0.0.1:0"
[api.tokens.viewer]
sha256 = "{viewer}"
scope = "read"
[intake.hr]
kind = "standard_webhooks"
secret_file = "{whsec}"
[protected]
accounts = ["breakglass"]
[guard]
max_jobs = 100000
window_secs = 60
[policies.default]
retention_days = 30
{ldap}{rest}"#,
        data = dir.join("data").display(),
        viewer = sha256_hex(READ_TOKEN),
        whsec = dir.join("whsec").display(),
        ldap = stack.ldap_toml("corp-ldap", dir).unwrap(),
        rest = stack.connectors_toml(dir, spacing).unwrap(),
    );
    let path = dir.join("revoke.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let people: usize = bench_arg("--people", if benching { 1000 } else { 8 });
    let leavers_n: usize = bench_arg("--leavers", if benching { 200 } else { 3 });
    let seed: u64 = bench_arg("--seed", 14);
    let spacing: u64 = bench_arg("--github-spacing-ms", if benching { 1000 } else { 100 });
    let senders = 16;

    let t = Instant::now();
    let company = Company::generate(people, seed);
    let mut stack = CompanyStack::start(company).expect("every stand-in starts and is seeded");
    let seeded = t.elapsed();
    let leavers: Vec<_> = stack
        .company
        .leavers(leavers_n)
        .into_iter()
        .cloned()
        .collect();
    let refs: Vec<_> = leavers.iter().collect();
    let floor = stack.company.floor(&refs);

    let dir = tempfile::tempdir().unwrap();
    let config = config(&stack, dir.path(), spacing);
    stack.mark().unwrap();
    let d = Daemon::start_with(
        &config,
        &dir.path().join("revoked.log"),
        &[("RUST_LOG", "info")],
    );
    let pid = d.child.id();
    let idle_rss = status_kib(pid, "VmRSS:");

    // Every leaver's termination at once, from `senders` connections.
    let started = Instant::now();
    let base = d.base.clone();
    let jobs: Vec<(String, String)> = std::thread::scope(|scope| {
        let chunks: Vec<Vec<_>> = (0..senders)
            .map(|s| leavers.iter().skip(s).step_by(senders).cloned().collect())
            .collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let base = base.clone();
                scope.spawn(move || {
                    let c = client();
                    chunk
                        .iter()
                        .map(|p| {
                            let delivery = Delivery::termination(p.termination());
                            let r = c
                                .http
                                .post(format!("{base}/intake/hr"))
                                .header("webhook-id", &delivery.id)
                                .header("webhook-timestamp", delivery.timestamp.to_string())
                                .header("webhook-signature", delivery.signature(WEBHOOK_SECRET))
                                .body(delivery.body.clone())
                                .send()
                                .unwrap();
                            assert_eq!(r.status().as_u16(), 202, "{}", p.username);
                            let a: Value = r.json().unwrap();
                            (
                                p.username.clone(),
                                a["jobs"][0]["job_id"].as_str().unwrap().to_string(),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let sent = started.elapsed();

    // Until every job's contain, transfer and revoke actions are finished (done or not).
    let c = client();
    let limit = Duration::from_secs(if benching {
        1800 + 3 * leavers_n as u64 * spacing / 1000
    } else {
        120
    });
    let mut details: BTreeMap<String, Value> = BTreeMap::new();
    let mut pending: Vec<&(String, String)> = jobs.iter().collect();
    while !pending.is_empty() {
        pending.retain(|(_, job)| {
            let j = c.get_json(&d, &format!("/api/v1/jobs/{job}"));
            let actions = j["actions"].as_array().cloned().unwrap_or_default();
            let gave_up = matches!(
                j["state"].as_str(),
                Some("failed" | "cancelled" | "rejected")
            );
            let finished = gave_up
                || !actions.is_empty()
                    && actions
                        .iter()
                        .filter(|a| NOW.contains(&a["phase"].as_str().unwrap_or("")))
                        .all(|a| TERMINAL.contains(&a["outcome"].as_str().unwrap_or("")));
            if finished {
                details.insert(job.clone(), j);
            }
            !finished
        });
        assert!(
            started.elapsed() < limit,
            "{} jobs not finished after {:?}: {:?}\nlog tail:\n{}",
            pending.len(),
            limit,
            pending.iter().take(5).collect::<Vec<_>>(),
            tail(&d.log_text(), 4000)
        );
        if !pending.is_empty() {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let observed = started.elapsed();
    let peak_rss = status_kib(pid, "VmHWM:");
    let counts = stack.counts().unwrap();

    // The daemon's own times: received -> last action of the run-now phases, and to contain.
    let mut first_received: Option<DateTime<Utc>> = None;
    let mut last_finished: Option<DateTime<Utc>> = None;
    let mut contain = Vec::new();
    let mut first_start = Vec::new();
    let mut contain_by: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut actions_now = 0;
    let mut by_connector: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut held = 0;
    for (user, job) in &jobs {
        let j = &details[job];
        if j["state"] == "held" {
            held += 1;
        }
        if matches!(
            j["state"].as_str(),
            Some("failed" | "cancelled" | "rejected")
        ) {
            failures.push(format!("{user}: job {}: {}", j["state"], j["note"]));
        }
        let received = time(&j["received_at"]).unwrap();
        first_received = Some(first_received.map_or(received, |f| f.min(received)));
        let mut last_contain: Option<DateTime<Utc>> = None;
        if let Some(first) = j["actions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| time(&a["started_at"]))
            .min()
        {
            first_start.push((first - received).to_std().unwrap_or_default());
        }
        let mut last_contain_by: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
        for a in j["actions"].as_array().unwrap() {
            let phase = a["phase"].as_str().unwrap_or("");
            let connector = a["connector"].as_str().unwrap_or("").to_string();
            let e = by_connector.entry(connector.clone()).or_default();
            e.0 += 1;
            if !NOW.contains(&phase) {
                continue;
            }
            e.1 += 1;
            actions_now += 1;
            let outcome = a["outcome"].as_str().unwrap_or("");
            if !OK.contains(&outcome) {
                failures.push(format!(
                    "{user} {} {} {}: {outcome} {} {}",
                    a["connector"], a["kind"], a["target"], a["error_code"], a["error_message"]
                ));
            }
            let Some(finished) = time(&a["finished_at"]) else {
                continue;
            };
            last_finished = Some(last_finished.map_or(finished, |l| l.max(finished)));
            if phase == "contain" {
                last_contain = Some(last_contain.map_or(finished, |l| l.max(finished)));
                let l = last_contain_by.entry(connector).or_insert(finished);
                *l = (*l).max(finished);
            }
        }
        if let Some(lc) = last_contain {
            contain.push((lc - received).to_std().unwrap_or_default());
        }
        for (conn, at) in last_contain_by {
            contain_by
                .entry(conn)
                .or_default()
                .push((at - received).to_std().unwrap_or_default());
        }
    }
    contain.sort();
    first_start.sort();
    contain_by.values_mut().for_each(|v| v.sort());
    let wall = match (first_received, last_finished) {
        (Some(f), Some(l)) => (l - f).to_std().unwrap_or_default(),
        _ => Duration::ZERO,
    };

    // Evidence for every job.
    let mut evidence_ok = 0;
    for (_, job) in &jobs {
        let (status, body) = c.get(
            &d,
            &format!("/api/v1/jobs/{job}/evidence"),
            Some(READ_TOKEN),
        );
        if status == 200 && body.contains(job.as_str()) {
            evidence_ok += 1;
        }
    }
    let ended = d.terminate();

    let gh_floor = floor.get("github").map_or(0, |f| f.writes);
    let gh_sent = counts.get("github").map_or(0, |r| r.writes);
    let pace_floor = Duration::from_millis(gh_floor * spacing);
    let pace_sent = Duration::from_millis(gh_sent.saturating_sub(1) * spacing);
    println!(
        "company: {people} people (seed {seed}), {} leavers sent at once from {senders} connections in {:.2} s; stand-ins started and seeded in {:.1} s",
        jobs.len(),
        secs(sent),
        secs(seeded)
    );
    println!(
        "wall (daemon: first received -> last contain/transfer/revoke action done): {:.1} s; client-observed {:.1} s",
        secs(wall),
        secs(observed)
    );
    println!(
        "floor from the configured pace: GitHub needs {gh_floor} mutations, {spacing} ms apart = {:.1} s (it sent {gh_sent}: {:.1} s of spacing); wall / floor = {:.2}",
        secs(pace_floor),
        secs(pace_sent),
        if pace_floor.is_zero() { 0.0 } else { secs(wall) / secs(pace_floor) }
    );
    println!("calls per connector, received by each stand-in (floor: one lookup per leaver with an account there + one write per thing removed now):");
    let mut throttled = 0;
    for (system, r) in &counts {
        let f = floor.get(system).cloned().unwrap_or_default();
        throttled += r.throttled;
        let total = r.reads + r.writes;
        let ftotal = f.reads + f.writes;
        println!(
            "  {system:<9} {total:>6} calls ({:>5} reads, {:>5} writes) against a floor of {ftotal:>5} ({:>4} reads, {:>5} writes) = {:.2}x, writes {:.2}x; {} leavers there; throttled {}; {}",
            r.reads,
            r.writes,
            f.reads,
            f.writes,
            if ftotal == 0 { 0.0 } else { total as f64 / ftotal as f64 },
            if f.writes == 0 { 0.0 } else { r.writes as f64 / f.writes as f64 },
            f.leavers,
            r.throttled,
            r.note
        );
    }
    println!("throttled answers provoked: {throttled} (goal 0)");
    println!(
        "time to contain (received -> last contain action done): p50 {:.2} s, p99 {:.2} s, max {:.2} s over {} leavers",
        secs(percentile(&contain, 0.5)),
        secs(percentile(&contain, 0.99)),
        secs(percentile(&contain, 1.0)),
        contain.len()
    );
    println!(
        "  of which planning and queueing (received -> first action started): p50 {:.2} s, p99 {:.2} s",
        secs(percentile(&first_start, 0.5)),
        secs(percentile(&first_start, 0.99))
    );
    for (conn, v) in &contain_by {
        println!(
            "  {conn:<10} contained p50 {:.2} s, p99 {:.2} s over {} leavers",
            secs(percentile(v, 0.5)),
            secs(percentile(v, 0.99)),
            v.len()
        );
    }
    println!(
        "actions: {actions_now} run now (contain, transfer, revoke) of {} planned (the rest wait for the retention); per connector (planned, now): {by_connector:?}",
        by_connector.values().map(|v| v.0).sum::<usize>()
    );
    println!(
        "revoked RSS: idle {:.1} MiB, peak (VmHWM) {:.1} MiB; evidence for {evidence_ok}/{} jobs; {} failed or blocked actions; {held} jobs held",
        idle_rss as f64 / 1024.0,
        peak_rss as f64 / 1024.0,
        jobs.len(),
        failures.len()
    );
    for f in failures.iter().take(20) {
        println!("  failed: {f}");
    }

    assert!(ended.success(), "revoked exits cleanly on SIGTERM");
    assert!(
        failures.is_empty(),
        "every action run now succeeds: {failures:#?}"
    );
    assert_eq!(contain.len(), jobs.len(), "every leaver is contained");
    assert_eq!(throttled, 0, "no throttled answer");
    assert_eq!(evidence_ok, jobs.len(), "evidence for every job");
    for (system, f) in &floor {
        let r = &counts[system];
        assert!(
            r.writes >= f.writes.min(1),
            "{system} received no write although {} leavers have an account there",
            f.leavers
        );
    }
}

fn tail(s: &str, n: usize) -> &str {
    let start = s.len().saturating_sub(n);
    let start = (start..s.len())
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(s.len());
    &s[start..]
}
