//! Okta at scale: 200 leavers in 20 shared groups, against the Okta stand-in (its recorder
//! counts the calls), with the stand-in's rate budget and the connector's pacing.
//!
//! `cargo bench -p revoke-connector-okta --bench scale` prints:
//! - discovery calls per leaver;
//! - apply mutations per leaver against the floor (suspend, sessions, one group removal, the
//!   two-step delete: 5; Okta has no call that removes many members at once), and the reads
//!   apply makes before each write;
//! - the throttled answers (429) the run provoked: 0 expected, the client holds at 0 remaining;
//! - wall time of discovery and apply under the stand-in's budget (`BENCH_LIMIT` calls per
//!   `BENCH_WINDOW_MS`, default 600 per 6 s: Okta's users bucket of 600 per minute, 10 times
//!   faster), and the wall time the same calls take at Okta's documented 600 per minute.
//!
//! Environment: `BENCH_LEAVERS` (200), `BENCH_CONCURRENCY` (16), `BENCH_LIMIT` (600),
//! `BENCH_WINDOW_MS` (6000). Under `cargo test --benches` it is a smoke pass of 5 leavers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use revoke_connector_okta::{OktaConfig, OktaConnector, CLEAR_SESSIONS};
use revoke_core::{Action, Connector, JobId, MemoryJournal, Outcome, Phase, Subject};
use revoke_testkit::okta::{GroupType, OktaStandin};
use serde_json::json;
use tokio::sync::Semaphore;

const OKTA: &str = "corp-okta";
const GROUPS: usize = 20;

fn env_or(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

/// Runs `f` on every item, at most `n` at a time; panics on the first failure.
async fn each<T, F, Fut>(items: Vec<T>, n: usize, f: F)
where
    T: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let sem = Arc::new(Semaphore::new(n));
    let f = Arc::new(f);
    let mut tasks = Vec::new();
    for item in items {
        let permit = sem.clone().acquire_owned().await.expect("semaphore");
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            f(item).await;
            drop(permit);
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let leavers = if full {
        env_or("BENCH_LEAVERS", 200)
    } else {
        5
    } as usize;
    let concurrency = env_or("BENCH_CONCURRENCY", 16) as usize;
    let limit = env_or("BENCH_LIMIT", 600);
    let window = Duration::from_millis(env_or("BENCH_WINDOW_MS", 6_000));

    let okta = OktaStandin::start().expect("the okta stand-in should start");
    okta.world(|w| {
        let everyone = w.group("Everyone", GroupType::BuiltIn);
        let groups: Vec<String> = (0..GROUPS)
            .map(|g| w.group(&format!("Team {g}"), GroupType::OktaGroup))
            .collect();
        for i in 0..leavers {
            let id = w.user(
                &format!("leaver{i}@example.com"),
                &format!("leaver{i}@example.com"),
            );
            w.add_member(&everyone, &id);
            w.add_member(&groups[i % GROUPS], &id);
        }
        for i in 0..50 {
            let id = w.user(
                &format!("stays{i}@example.com"),
                &format!("stays{i}@example.com"),
            );
            w.add_member(&everyone, &id);
            w.add_member(&groups[i % GROUPS], &id);
        }
    });
    okta.set_rate_limit(limit, window);
    let cfg = OktaConfig::from_value(&json!({
        "org_url": okta.url(), "token": okta.token(), "timeout_secs": 30,
    }))
    .expect("config");
    let conn = Arc::new(OktaConnector::new(OKTA, cfg).expect("connector"));
    let subjects: Vec<Subject> = (0..leavers)
        .map(|i| {
            let mut s = Subject::new(format!("leaver{i}"));
            s.email = Some(format!("leaver{i}@example.com"));
            s
        })
        .collect();

    let t = Instant::now();
    let found = Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let conn = conn.clone();
        let found = found.clone();
        each(subjects.clone(), concurrency, move |s: Subject| {
            let conn = conn.clone();
            let found = found.clone();
            async move {
                let d = conn.discover(&s).await.expect("discovery");
                assert!(d.found);
                let actions =
                    Action::from_proposals(&JobId("bench".into()), OKTA, &d, conn.plan(&s, &d))
                        .expect("the proposals name discovered accounts");
                found.lock().expect("lock").extend(actions);
            }
        })
        .await;
    }
    let discover_time = t.elapsed();
    let discover_calls = okta.requests().len();
    let all: Vec<Action> = std::mem::take(&mut *found.lock().expect("lock"));

    okta.clear_requests();
    let t = Instant::now();
    // Phase by phase, every action of a step at once (as the executor's workers would).
    for step in 0..4u8 {
        let these: Vec<Action> = all
            .iter()
            .filter(|a| {
                let s = match (a.phase, a.kind.0.as_str()) {
                    (Phase::Contain, CLEAR_SESSIONS) => 1,
                    (Phase::Contain, _) => 0,
                    (Phase::Revoke, _) => 2,
                    _ => 3,
                };
                s == step
            })
            .cloned()
            .collect();
        let conn = conn.clone();
        each(these, concurrency, move |a: Action| {
            let conn = conn.clone();
            async move {
                let j = MemoryJournal::new();
                let r = conn.apply(&a, &a.key, &j).await;
                assert_eq!(
                    r.as_ref().ok(),
                    Some(&Outcome::Done),
                    "{} {}: {r:?}",
                    a.kind,
                    a.target
                );
            }
        })
        .await;
    }
    let apply_time = t.elapsed();
    let reqs = okta.requests();
    let mutations = reqs.iter().filter(|r| r.is_mutation()).count();
    let reads = reqs.len() - mutations;
    let n = leavers as f64;
    let throttled = okta.throttled();
    let total = discover_calls + reqs.len();
    let at_okta = Duration::from_secs_f64(total as f64 / 600.0 * 60.0);

    println!(
        "okta scale: {leavers} leavers in {GROUPS} shared groups, concurrency {concurrency}, budget {limit} per {window:?}"
    );
    println!(
        "  discovery: {:.2} calls/leaver ({discover_calls} calls) in {discover_time:?}",
        discover_calls as f64 / n
    );
    println!(
        "  apply: {:.2} mutations/leaver (floor 5.00: suspend + sessions + 1 group + 2 deletes), {:.2} reads/leaver, in {apply_time:?}",
        mutations as f64 / n,
        reads as f64 / n
    );
    println!(
        "  throttled answers: {throttled}; early requests: {}; {total} calls in all = {at_okta:?} at Okta's 600/min",
        okta.early_requests()
    );
    assert_eq!(mutations, 5 * leavers, "5 mutations per leaver");
    assert_eq!(throttled, 0, "no 429 provoked");
    assert_eq!(okta.early_requests(), 0);
}
