//! Entra ID at scale: 200 leavers in 20 shared groups (each leaver a member of all 20, with a
//! direct licence), against the Graph stand-in (its recorder counts the calls) with Graph's
//! documented identity-and-access budgets and the connector's pacing at the same numbers.
//!
//! `cargo bench -p revoke-connector-entra --bench scale` prints:
//! - discovery: Graph calls per leaver (every `$batch` part counted) and HTTP round trips with
//!   `$batch` (20 reads a request) beside the same discovery without it;
//! - apply: mutations per leaver against the floor (disable, sessions, one removal per group,
//!   the licence, the delete: 24; Graph has no call that removes one member from many groups),
//!   and the reads apply makes (the user read before the disable and the licence removal);
//! - verify of the contain and revoke actions: reads per leaver with `verify_many` (what the
//!   executor calls, `batch_verification`) beside one by one;
//! - the throttled answers (429) the run provoked and the early requests: 0 expected;
//! - the wall time with Graph's budgets (writes 3,000 per 150 s, reads 3,500 per 10 s; the
//!   connector's defaults: writes 3,000 per 150 s, reads 1,000 per 10 s) with time shortened
//!   `BENCH_SCALE` times (default 10: a 15 s write window), and the same at the real limits.
//!
//! Environment: `BENCH_LEAVERS` (200), `BENCH_CONCURRENCY` (16), `BENCH_SCALE` (10).
//! Under `cargo test --benches` it is a smoke pass of 5 leavers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use revoke_connector_entra::{Counts, EntraConfig, EntraConnector, REVOKE_SESSIONS};
use revoke_core::{Action, Connector, JobId, MemoryJournal, Outcome, Phase, Subject, Verdict};
use revoke_testkit::entra::EntraStandin;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

const ENTRA: &str = "corp-entra";
const GROUPS: usize = 20;

fn env_or(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

/// Runs `f` on every item, at most `n` at a time.
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

fn connector(e: &EntraStandin, scale: u64, extra: Value) -> Arc<EntraConnector> {
    let mut v = json!({
        "tenant_id": e.tenant_id(), "client_id": e.client_id(),
        "client_secret": e.client_secret(), "token_url": e.token_url(),
        "graph_url": e.graph_url(),
        // Graph's documented write limit, and the connector's read default, time scaled.
        "writes_per_window": 3_000, "window_secs": 150 / scale,
        "reads_per_window": 1_000, "read_window_secs": (10 / scale).max(1),
    });
    if let (Some(m), Some(x)) = (v.as_object_mut(), extra.as_object()) {
        m.extend(x.clone());
    }
    Arc::new(
        EntraConnector::new(ENTRA, EntraConfig::from_value(&v).expect("config"))
            .expect("connector"),
    )
}

/// Reads back every contain and revoke action, as the executor does with
/// `batch_verification` (`verify_many` over batches of up to 256 actions, one account's actions
/// never split), then one by one: (batched, one by one, batched wall time).
async fn verify(conn: &Arc<EntraConnector>, all: &[Action]) -> (Counts, Counts, Duration) {
    let mut these: Vec<Action> = all
        .iter()
        .filter(|a| a.connector == ENTRA && matches!(a.phase, Phase::Contain | Phase::Revoke))
        .cloned()
        .collect();
    these.sort_by(|a, b| a.account.cmp(&b.account));
    let mut batches: Vec<Vec<Action>> = Vec::new();
    for a in these.iter().cloned() {
        let same = |b: &Vec<Action>| b.last().is_some_and(|l| l.account == a.account);
        match batches.last_mut() {
            Some(b) if b.len() < 256 || same(b) => b.push(a),
            _ => batches.push(vec![a]),
        }
    }
    let c0 = conn.counts();
    let t = Instant::now();
    for b in &batches {
        for v in conn.verify_many(b).await {
            assert_eq!(v.expect("verify"), Verdict::Confirmed);
        }
    }
    let time = t.elapsed();
    let c1 = conn.counts();
    for a in &these {
        assert_eq!(conn.verify(a).await.expect("verify"), Verdict::Confirmed);
    }
    let c2 = conn.counts();
    let delta = |x: Counts, y: Counts| Counts {
        round_trips: y.round_trips - x.round_trips,
        calls: y.calls - x.calls,
        throttled: y.throttled - x.throttled,
    };
    (delta(c0, c1), delta(c1, c2), time)
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
    let scale = env_or("BENCH_SCALE", 10).clamp(1, 150);

    let e = EntraStandin::start().expect("the entra stand-in should start");
    e.world(|w| {
        w.crowd(leavers, GROUPS);
        for i in 0..50 {
            w.user(&format!("stays{i}@contoso.com"));
        }
    });
    let read_window = Duration::from_millis((10_000 / scale).max(1_000));
    e.set_write_budget(3_000, Duration::from_secs(150 / scale));
    e.set_read_budget(3_500, read_window);
    let subjects: Vec<Subject> = (1..=leavers)
        .map(|i| {
            let mut s = Subject::new(format!("leaver{i:04}"));
            s.email = Some(format!("leaver{i:04}@contoso.com"));
            s
        })
        .collect();

    // Discovery without $batch first (the same reads), then with it.
    let single = connector(&e, scale, json!({"batch_size": 1}));
    let t = Instant::now();
    let ds_single = single.discover_many(&subjects).await.expect("discovery");
    let single_time = t.elapsed();
    let single_counts = single.counts();
    e.clear_requests();

    let conn = connector(&e, scale, json!({}));
    let t = Instant::now();
    let ds = conn.discover_many(&subjects).await.expect("discovery");
    let discover_time = t.elapsed();
    let discover_counts = conn.counts();
    assert_eq!(ds, ds_single, "batched and single discovery agree");
    let mut all: Vec<Action> = Vec::new();
    for (s, d) in subjects.iter().zip(&ds) {
        assert!(d.found, "{}", s.id);
        all.extend(
            Action::from_proposals(&JobId("bench".into()), ENTRA, d, conn.plan(s, d))
                .expect("the proposals name discovered accounts"),
        );
    }

    e.clear_requests();
    let t = Instant::now();
    // Phase by phase, every action of a step at once (as the executor's workers would); a
    // rate_limited answer (the pace held longer than the request timeout) is tried again
    // after its wait, as the executor does.
    let mut verify_stats = None;
    let mut before_verify = Vec::new();
    let mut paused = Duration::ZERO;
    for step in 0..4u8 {
        if step == 3 {
            before_verify = e.requests();
            let v0 = Instant::now();
            verify_stats = Some(verify(&conn, &all).await);
            paused = v0.elapsed();
            e.clear_requests();
        }
        let these: Vec<Action> = all
            .iter()
            .filter(|a| {
                let s = match (a.phase, a.kind.0.as_str()) {
                    (Phase::Contain, REVOKE_SESSIONS) => 1,
                    (Phase::Contain, _) => 0,
                    (Phase::Revoke, _) => 2,
                    (Phase::Delete, _) => 3,
                    _ => 9,
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
                loop {
                    match conn.apply(&a, &a.key, &j).await {
                        Ok(o) => {
                            assert_eq!(o, Outcome::Done, "{} {}", a.kind, a.target);
                            break;
                        }
                        Err(err) if err.class.name() == "rate_limited" => {
                            tokio::time::sleep(err.retry_after().unwrap_or_default()).await;
                        }
                        Err(err) => panic!("{} {}: {err}", a.kind, a.target),
                    }
                }
            }
        })
        .await;
    }
    let apply_time = t.elapsed() - paused;
    let (verify_batched, verify_single, verify_time) = verify_stats.expect("verified");
    let mut reqs = before_verify;
    reqs.extend(e.requests());
    let mutations = reqs.iter().filter(|r| r.is_mutation()).count();
    let reads = reqs
        .iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/v1.0/"))
        .count();
    let n = leavers as f64;
    let floor = 4 + GROUPS;
    let throttled = e.throttled() as u64 + conn.counts().throttled;

    println!(
        "entra scale: {leavers} leavers in {GROUPS} shared groups, concurrency {concurrency}, Graph's budgets {scale}x faster"
    );
    println!(
        "  discovery with $batch: {:.2} calls/leaver in {:.2} round trips/leaver, {discover_time:?}",
        discover_counts.calls as f64 / n,
        discover_counts.round_trips as f64 / n,
    );
    println!(
        "  discovery without:     {:.2} calls/leaver in {:.2} round trips/leaver, {single_time:?}",
        single_counts.calls as f64 / n,
        single_counts.round_trips as f64 / n,
    );
    println!(
        "  apply: {:.2} mutations/leaver (floor {floor}.00: disable + sessions + {GROUPS} groups + licence + delete), {:.2} reads/leaver, in {apply_time:?} ({:.0} s at the real limits)",
        mutations as f64 / n,
        reads as f64 / n,
        apply_time.as_secs_f64() * scale as f64,
    );
    println!(
        "  verify (contain and revoke) with verify_many: {:.2} reads/leaver in {:.2} round trips/leaver, {verify_time:?}; one by one: {:.2} reads/leaver",
        verify_batched.calls as f64 / n,
        verify_batched.round_trips as f64 / n,
        verify_single.calls as f64 / n,
    );
    println!(
        "  throttled answers: {throttled}; early requests: {}",
        e.early_requests()
    );
    assert_eq!(mutations, floor * leavers, "the floor of mutations");
    assert_eq!(throttled, 0, "no 429 provoked");
    assert_eq!(e.early_requests(), 0);
}
