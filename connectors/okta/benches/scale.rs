//! Okta at scale: 200 leavers in 20 shared groups, against the Okta stand-in (its recorder
//! counts the calls), with the stand-in's rate budgets (one per Okta bucket) and the connector's
//! pacing.
//!
//! `cargo bench -p revoke-connector-okta --bench scale` prints:
//! - discovery calls per leaver (`discover_many` over every leaver at once: the first searches
//!   shared, 20 subjects a search);
//! - apply mutations per leaver against the floor (suspend, sessions, one group removal, the
//!   two-step delete: 5; Okta has no call that removes many members at once), and the reads
//!   apply makes before each write;
//! - the throttled answers (429) the run provoked: 0 expected, the client holds at 0 remaining;
//! - the calls per bucket, and the wall time of discovery and apply under Okta's documented
//!   Workforce limits per bucket (users 600, a user's read 2,000, a user's write 600, groups 500,
//!   apps 100, the rest of /api/v1 1,200 per minute) with the minute shortened to
//!   `BENCH_WINDOW_MS` (default 6 s: 10 times faster), and what the busiest bucket sets at the
//!   real minute.
//!
//! Environment: `BENCH_LEAVERS` (200), `BENCH_CONCURRENCY` (16), `BENCH_WINDOW_MS` (6000).
//! Under `cargo test --benches` it is a smoke pass of 5 leavers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use revoke_connector_okta::{OktaConfig, OktaConnector, CLEAR_SESSIONS};
use revoke_core::{Action, Connector, JobId, MemoryJournal, Outcome, Phase, Subject};
use revoke_testkit::okta::{GroupType, OktaStandin, BUCKETS};
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
    okta.set_documented_limits(window);
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

    // The same discovery one subject at a time (`discover`, 16 at once), by its own client, for
    // the side-by-side; then fresh windows for the rest.
    let solo = {
        let cfg = OktaConfig::from_value(&json!({
            "org_url": okta.url(), "token": okta.token(), "timeout_secs": 30,
        }))
        .expect("config");
        Arc::new(OktaConnector::new(OKTA, cfg).expect("connector"))
    };
    let t = Instant::now();
    each(subjects.clone(), concurrency, move |s: Subject| {
        let solo = solo.clone();
        async move {
            assert!(solo.discover(&s).await.expect("discovery").found);
        }
    })
    .await;
    let solo_time = t.elapsed();
    let solo_reqs = okta.requests();
    let solo_throttled = okta.throttled();
    let solo_early = okta.early_requests();
    let solo_apps = solo_reqs.iter().filter(|r| r.bucket == "apps").count();
    okta.set_documented_limits(window);
    okta.clear_requests();

    let t = Instant::now();
    let found = Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let ds = conn.discover_many(&subjects).await.expect("discovery");
        for (s, d) in subjects.iter().zip(&ds) {
            assert!(d.found);
            let actions = Action::from_proposals(&JobId("bench".into()), OKTA, d, conn.plan(s, d))
                .expect("the proposals name discovered accounts");
            found.lock().expect("lock").extend(actions);
        }
    }
    let discover_time = t.elapsed();
    let discover_reqs = okta.requests();
    let discover_calls = discover_reqs.len();
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
    // Per bucket: calls, and the minutes they take at Okta's limit (buckets run side by side).
    let mut per_bucket: Vec<(String, usize, usize, f64)> = Vec::new();
    for (b, limit) in BUCKETS {
        let d = discover_reqs.iter().filter(|r| r.bucket == *b).count();
        let a = reqs.iter().filter(|r| r.bucket == *b).count();
        if d + a > 0 {
            per_bucket.push((b.to_string(), d, a, (d + a) as f64 / *limit as f64));
        }
    }
    let busiest = per_bucket.iter().map(|x| x.3).fold(0.0, f64::max);
    let single_budget = total as f64 / 600.0;

    println!(
        "okta scale: {leavers} leavers in {GROUPS} shared groups, concurrency {concurrency}, Okta's Workforce limits per {window:?}"
    );
    println!(
        "  discovery one by one (discover): {:.2} calls/leaver ({} calls, {solo_apps} in the apps bucket) in {solo_time:?}; throttled {solo_throttled}, early {solo_early}",
        solo_reqs.len() as f64 / n,
        solo_reqs.len()
    );
    println!(
        "  discovery shared (discover_many): {:.2} calls/leaver ({discover_calls} calls) in {discover_time:?}",
        discover_calls as f64 / n
    );
    println!(
        "  apply: {:.2} mutations/leaver (floor 5.00: suspend + sessions + 1 group + 2 deletes), {:.2} reads/leaver, in {apply_time:?}",
        mutations as f64 / n,
        reads as f64 / n
    );
    for (b, d, a, minutes) in &per_bucket {
        println!(
            "  bucket {b:>15}: {d:>5} discovery + {a:>5} apply calls = {:.2} min at its limit",
            minutes
        );
    }
    println!(
        "  throttled answers: {throttled}; early requests: {}; {total} calls in all: {:.2} min at the busiest bucket's limit (one 600/min budget for all: {:.2} min)",
        okta.early_requests(),
        busiest,
        single_budget
    );
    assert_eq!(mutations, 5 * leavers, "5 mutations per leaver");
    assert_eq!(throttled + solo_throttled, 0, "no 429 provoked");
    assert_eq!(solo_early, 0);
    assert_eq!(okta.early_requests(), 0);
}
