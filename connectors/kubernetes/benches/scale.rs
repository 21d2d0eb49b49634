//! Kubernetes at scale: leavers in a cluster of many bindings, against the Kubernetes stand-in
//! (its recorder counts the calls).
//!
//! `cargo bench -p revoke-connector-kubernetes --bench scale` prints, side by side in one run:
//! - discovery calls for every leaver at once (`discover_many`: one scan) and one by one
//!   (`discover` per leaver: a scan each), without a client-side budget, and `discover_many`'s
//!   wall time at client-go's budget (5 a second, bursts of 10);
//! - apply by 8 workers at once (as the executor runs a batch) against an API server that serves
//!   `BENCH_SERVER_QPS` (20) calls a second, bursts of twice that, and answers the rest 429 with
//!   `Retry-After: 1` (a token bucket standing in for API Priority and Fairness): with no
//!   client-side budget, with one matched to the server's rate, and with client-go's defaults.
//!   For each: the 429s received, mutations against the floor (one per binding naming the
//!   leaver, one per token Secret of an owned ServiceAccount), the reads apply made, the time;
//! - verify reads per action, and a rerun of the same actions (their journals kept) sending no
//!   mutation.
//!
//! Times are in process (the stand-in answers in microseconds): without a budget they measure
//! the connector and the HTTP round trips, with one they are set by the budget.
//!
//! Environment: `BENCH_LEAVERS` (200), `BENCH_BINDINGS` (5000: bindings of people who stay),
//! `BENCH_SERVER_QPS` (20). Under `cargo test --benches` it is a smoke pass of 5 leavers and 50
//! bindings.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use revoke_connector_kubernetes::{KubernetesConfig, KubernetesConnector};
use revoke_core::{
    Action, ActionId, Connector, ErrorClass, JobId, MemoryJournal, Outcome, Subject, Verdict,
};
use revoke_testkit::kube::user;
use revoke_testkit::KubeStandin;
use serde_json::json;

const K8S: &str = "prod-k8s";

fn env_or(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn subject(i: usize) -> Subject {
    let mut s = Subject::new(format!("leaver{i}"));
    s.email = Some(format!("leaver{i}@example.org"));
    s
}

fn cluster(leavers: usize, others: usize) -> KubeStandin {
    let k = KubeStandin::start().expect("the stand-in starts");
    k.world(|w| {
        for i in 0..others {
            let ns = format!("team{}", i % 50);
            w.role_binding(
                &ns,
                &format!("stays{i}"),
                "edit",
                &[user(&format!("oidc:stays{i}@example.org"))],
            );
        }
        for i in 0..leavers {
            let me = format!("oidc:leaver{i}@example.org");
            // One binding for them alone, one shared with someone who stays.
            w.cluster_role_binding(&format!("leaver{i}-admin"), "admin", &[user(&me)]);
            w.role_binding(
                &format!("team{}", i % 50),
                &format!("shared{i}"),
                "view",
                &[user(&me), user(&format!("oidc:stays{i}@example.org"))],
            );
            // Every tenth owns a ServiceAccount with a long-lived token.
            if i % 10 == 0 {
                let ns = format!("team{}", i % 50);
                w.service_account(
                    &ns,
                    &format!("bot{i}"),
                    &[("revoked.dev/owner", &format!("leaver{i}@example.org"))],
                );
                w.token_secret(&ns, &format!("bot{i}-token"), &format!("bot{i}"));
            }
        }
    });
    k
}

fn connector(k: &KubeStandin, budget: Option<(u32, u32)>) -> Arc<KubernetesConnector> {
    let (qps, burst) = budget.unwrap_or((0, 1));
    let cfg = KubernetesConfig::from_value(&json!({
        "kind": "kubernetes", "api_url": k.url(), "token": k.token(),
        "username_template": "oidc:{email}", "owner_annotation": "revoked.dev/owner",
        "qps": qps, "burst": burst,
    }))
    .expect("config");
    Arc::new(KubernetesConnector::new(K8S, cfg).expect("connector"))
}

type Journals = HashMap<ActionId, Arc<MemoryJournal>>;

/// Applies every action as the executor would, `workers` at a time: a rate-limited answer
/// waits its Retry-After, a retryable one is tried again at once. The outcomes and the time.
async fn apply_all(
    conn: &Arc<KubernetesConnector>,
    all: &[Action],
    journals: &Journals,
    workers: usize,
) -> (Vec<Outcome>, Duration) {
    let t = Instant::now();
    let chunks: Vec<Vec<Action>> = (0..workers)
        .map(|w| all.iter().skip(w).step_by(workers).cloned().collect())
        .collect();
    let mut tasks = Vec::new();
    for chunk in chunks {
        let conn = conn.clone();
        let journals: Vec<Arc<MemoryJournal>> =
            chunk.iter().map(|a| journals[&a.id].clone()).collect();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for (a, j) in chunk.iter().zip(journals) {
                let mut attempts = 0;
                let o = loop {
                    attempts += 1;
                    match conn.apply(a, &a.key, j.as_ref()).await {
                        Ok(o) => break o,
                        Err(e) if attempts < 50 => match e.class {
                            ErrorClass::RateLimited { retry_after } => {
                                tokio::time::sleep(retry_after).await
                            }
                            ErrorClass::Retryable { .. } => {}
                            _ => panic!("{}: {e}", a.target),
                        },
                        Err(e) => panic!("{}: {e}", a.target),
                    }
                };
                out.push(o);
            }
            out
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.extend(t.await.expect("worker"));
    }
    (outcomes, t.elapsed())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (leavers, others) = if full {
        (
            env_or("BENCH_LEAVERS", 200) as usize,
            env_or("BENCH_BINDINGS", 5_000) as usize,
        )
    } else {
        (5, 50)
    };
    let server_qps = env_or("BENCH_SERVER_QPS", 20) as u32;
    let k = cluster(leavers, others);
    let conn = connector(&k, None);
    let subjects: Vec<Subject> = (0..leavers).map(subject).collect();

    k.clear_requests();
    let t = Instant::now();
    let many = conn.discover_many(&subjects).await.expect("discovery");
    let many_time = t.elapsed();
    let many_calls = k.requests().len();

    k.clear_requests();
    let t = Instant::now();
    // BENCH_ONE_BY_ONE=0 leaves the slow side of the comparison out (386 s at 200 leavers).
    let one_by_one = env_or("BENCH_ONE_BY_ONE", 1) != 0;
    for (s, d) in subjects.iter().zip(&many).filter(|_| one_by_one) {
        let one = conn.discover(s).await.expect("discovery");
        assert_eq!(&one, d, "{}", s.id);
    }
    let one_time = t.elapsed();
    let one_calls = k.requests().len();

    let paced = connector(&k, Some((5, 10)));
    let t = Instant::now();
    let again = paced.discover_many(&subjects).await.expect("discovery");
    let paced_discovery = t.elapsed();
    assert_eq!(again, many);

    let mut all: Vec<Action> = Vec::new();
    for (i, (s, d)) in subjects.iter().zip(&many).enumerate() {
        all.extend(
            Action::from_proposals(&JobId(format!("job-{i}")), K8S, d, conn.plan(s, d))
                .expect("proposals")
                .into_iter()
                .filter(|a| a.connector == K8S),
        );
    }
    let floor = 2 * leavers + leavers.div_ceil(10);
    assert_eq!(all.len(), floor, "one action per binding and token Secret");

    let per = |n: usize| n as f64 / leavers as f64;
    println!(
        "kubernetes scale: {leavers} leavers, {} bindings in all",
        others + 2 * leavers
    );
    println!(
        "  discovery (no budget): discover_many {many_calls} calls ({:.2} per leaver) in {:?} | one by one {one_calls} calls ({:.2} per leaver) in {:?}",
        per(many_calls),
        many_time,
        per(one_calls),
        one_time
    );
    println!(
        "  discovery at client-go's budget (5/s, burst 10): discover_many in {paced_discovery:?}"
    );

    // Apply, 8 workers, against an API server serving `server_qps` a second.
    let mut kept = None;
    for (label, budget) in [
        ("no client budget", None),
        ("budget = server's rate", Some((server_qps, 2 * server_qps))),
        ("client-go's budget (5/s, burst 10)", Some((5, 10))),
    ] {
        let k = cluster(leavers, others);
        let conn = connector(&k, budget);
        // The same plan against a cluster seeded the same way: the uids differ, so plan again.
        let subjects: Vec<Subject> = (0..leavers).map(subject).collect();
        let found = connector(&k, None)
            .discover_many(&subjects)
            .await
            .expect("discovery");
        let mut actions: Vec<Action> = Vec::new();
        for (i, (s, d)) in subjects.iter().zip(&found).enumerate() {
            actions.extend(
                Action::from_proposals(&JobId(format!("job-{i}")), K8S, d, conn.plan(s, d))
                    .expect("proposals")
                    .into_iter()
                    .filter(|a| a.connector == K8S),
            );
        }
        let journals: Journals = actions
            .iter()
            .map(|a| (a.id.clone(), Arc::new(MemoryJournal::new())))
            .collect();
        k.limit_rate(server_qps, 2 * server_qps);
        k.clear_requests();
        let (outcomes, time) = apply_all(&conn, &actions, &journals, 8).await;
        assert!(outcomes.iter().all(|o| *o == Outcome::Done), "{outcomes:?}");
        let refused = k.rate_limited();
        let sent = k
            .requests()
            .into_iter()
            .filter(|r| r.status != 429)
            .collect::<Vec<_>>();
        let mutations = sent.iter().filter(|r| r.is_mutation()).count();
        let reads = sent.len() - mutations;
        println!(
            "  apply, {label}: {refused} 429s, {mutations} mutations ({:.2} per leaver; floor {floor}), {reads} reads, in {time:?} (waited {:?} for the budget)",
            per(mutations),
            conn.budget_waited()
        );
        assert_eq!(mutations, floor);
        if budget == Some((server_qps, 2 * server_qps)) {
            kept = Some((k, conn, actions, journals));
        }
    }

    let Some((k, conn, all, journals)) = kept else {
        unreachable!("the matched budget ran")
    };
    // Verify, one action after another, waiting out a 429 as the executor does: a budget equal
    // to the server's rate still meets one now and then (a call reserved earlier may arrive
    // later than the next one), so the matched budget is an upper bound, not a target.
    k.clear_requests();
    let t = Instant::now();
    for a in &all {
        let v = loop {
            match conn.verify(a).await {
                Ok(v) => break v,
                Err(e) => match e.class {
                    ErrorClass::RateLimited { retry_after } => {
                        tokio::time::sleep(retry_after).await
                    }
                    _ => panic!("verify {}: {e}", a.target),
                },
            }
        };
        assert_eq!(v, Verdict::Confirmed);
    }
    let verify_time = t.elapsed();
    let verify_429 = k.rate_limited();
    let verify_reads = k.requests().iter().filter(|r| r.status != 429).count();

    // A rerun of the same actions, their journals kept (what a resumed run sees).
    k.clear_requests();
    let (outcomes, _) = apply_all(&conn, &all, &journals, 8).await;
    assert!(outcomes.iter().all(|o| *o == Outcome::AlreadyDone));
    let rerun_mutations = k.mutations().len();
    let rerun_reads = k.requests().iter().filter(|r| r.status != 429).count() - rerun_mutations;
    println!(
        "  verify (budget = server's rate): {verify_reads} reads ({:.2} per action), {verify_429} 429s, in {:?}; rerun: {rerun_mutations} mutations, {rerun_reads} reads",
        verify_reads as f64 / all.len() as f64,
        verify_time
    );
    assert_eq!(rerun_mutations, 0);
}
