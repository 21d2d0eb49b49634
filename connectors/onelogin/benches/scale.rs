//! OneLogin at scale: leavers who share roles, against the OneLogin stand-in (its recorder counts
//! the calls).
//!
//! `cargo bench -p revoke-connector-onelogin --bench scale` prints, for 200 leavers (every one in
//! `Everyone`, each in one of 4 team roles):
//! - discovery calls per leaver (a search and a read each, the role list once);
//! - apply calls per leaver: mutations against the floor (suspend + logout + delete, plus one
//!   batch call per role shared by all leavers), and the reads apply makes before each write;
//! - wall time of discovery and apply with `BENCH_LATENCY_MS` (default 20) on every answer.
//!
//! Environment: `BENCH_LEAVERS` (200), `BENCH_LATENCY_MS` (20). Under `cargo test` it is a smoke
//! pass of 5 leavers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use revoke_connector_onelogin::{
    OneLoginConfig, OneLoginConnector, DELETE_USER, LOGOUT_USER, REMOVE_ROLE, SUSPEND_USER,
};
use revoke_core::{Action, Connector, JobId, MemoryJournal, Outcome, Subject};
use revoke_testkit::onelogin::OneloginStandin;
use serde_json::json;

const OL: &str = "corp-onelogin";
const TEAMS: usize = 4;

fn env_or(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let leavers = if full {
        env_or("BENCH_LEAVERS", 200)
    } else {
        5
    } as usize;
    let latency = Duration::from_millis(env_or("BENCH_LATENCY_MS", if full { 20 } else { 0 }));

    let ol = OneloginStandin::start().expect("the onelogin stand-in should start");
    ol.world(|w| {
        let everyone = w.role("Everyone");
        let teams: Vec<u64> = (0..TEAMS).map(|t| w.role(&format!("Team {t}"))).collect();
        for i in 0..leavers {
            let id = w.user(&format!("leaver{i}@example.com"), &format!("leaver{i}"));
            w.assign(everyone, id);
            w.assign(teams[i % TEAMS], id);
        }
        for i in 0..50 {
            let id = w.user(&format!("stays{i}@example.com"), &format!("stays{i}"));
            w.assign(everyone, id);
        }
    });
    ol.set_latency(latency);
    let (id, secret) = ol.credentials();
    let cfg = OneLoginConfig::from_value(&json!({
        "base_url": ol.url(), "client_id": id, "client_secret": secret,
    }))
    .expect("config");
    let conn = Arc::new(OneLoginConnector::new(OL, cfg).expect("connector"));
    let subjects: Vec<Subject> = (0..leavers)
        .map(|i| {
            let mut s = Subject::new(format!("leaver{i}"));
            s.email = Some(format!("leaver{i}@example.com"));
            s
        })
        .collect();

    let t = Instant::now();
    let found = conn.discover_many(&subjects).await.expect("discovery");
    let discover_time = t.elapsed();
    let discover_calls = ol.requests().len();
    assert!(found.iter().all(|d| d.found));

    let job = JobId("bench".into());
    let mut all: Vec<Action> = Vec::new();
    for (s, d) in subjects.iter().zip(&found) {
        all.extend(
            Action::from_proposals(&job, OL, d, conn.plan(s, d))
                .expect("the proposals name discovered accounts"),
        );
    }
    ol.clear_requests();
    let t = Instant::now();
    for group in [
        &[SUSPEND_USER][..],
        &[LOGOUT_USER],
        &[REMOVE_ROLE],
        &[DELETE_USER],
    ] {
        let futs = all
            .iter()
            .filter(|a| group.contains(&a.kind.0.as_str()))
            .map(|a| {
                let conn = conn.clone();
                async move {
                    let j = MemoryJournal::new();
                    conn.apply(a, &a.key, &j).await
                }
            });
        for r in join_all(futs).await {
            assert_eq!(r.expect("apply"), Outcome::Done);
        }
    }
    let apply_time = t.elapsed();
    let reqs = ol.requests();
    let mutations = reqs.iter().filter(|r| r.is_mutation()).count();
    let reads = reqs.len() - mutations;
    let role_calls = reqs
        .iter()
        .filter(|r| r.method == "DELETE" && r.path.starts_with("/api/2/roles/"))
        .count();
    let shared_roles = 1 + TEAMS.min(leavers);
    let floor = 3.0 + shared_roles as f64 / leavers as f64;
    let n = leavers as f64;

    println!(
        "onelogin scale: {leavers} leavers, {TEAMS} team roles + Everyone, latency {latency:?}"
    );
    println!(
        "  discovery: {:.2} calls/leaver ({discover_calls} calls) in {discover_time:?}",
        discover_calls as f64 / n
    );
    println!(
        "  apply: {:.2} mutations/leaver (floor {floor:.2}: suspend + logout + delete + {shared_roles} role calls shared), {role_calls} batch role calls, {:.2} reads/leaver, in {apply_time:?}",
        mutations as f64 / n,
        reads as f64 / n
    );
    // Removals that reach the batcher more than the window apart (reads before them take
    // longer under latency) make a second call for the role: at most a few more than the floor.
    assert!(role_calls >= shared_roles && role_calls < leavers.max(shared_roles + 1));
    if !full {
        assert_eq!(role_calls, shared_roles, "one DELETE per shared role");
    }
}
