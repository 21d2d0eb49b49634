//! GitHub at scale: an org of 2,000 repositories and 1,000 people, 200 of them leaving.
//!
//! `cargo bench -p revoke-connector-github --bench scale` prints, against the stateful stand-in
//! (in process, no Prism: this measures the connector, not the spec check):
//! - API calls of discovery: one batch for the 200 (GraphQL scan), against one discovery per
//!   person (GraphQL, and REST measured on a few people and multiplied);
//! - the floor: ceil(repos/100) GraphQL pages for the repositories + one mutation per grant;
//! - wall time with 20 ms injected latency, against what GitHub's pace allows (mutations 1 s
//!   apart, serial): apply runs at the real 1 s spacing for `BENCH_PACED` actions (default 10)
//!   and unpaced for the rest, so the run stays short while the paced rate is still measured.
//!
//! Environment: `BENCH_LATENCY_MS` (20), `BENCH_PACED` (10).

use std::time::{Duration, Instant};

use revoke_connector_github::{GithubConfig, GithubConnector};
use revoke_core::{Action, Connector, JobId, MemoryJournal, Outcome, Subject};
use revoke_testkit::github::{Permission, Role};
use revoke_testkit::GithubStandin;
use serde_json::json;

const REPOS: usize = 2_000;
const PEOPLE: usize = 1_000;
const LEAVERS: usize = 200;
const TEAMS: usize = 50;

fn env_or(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn seed(gh: &GithubStandin) {
    gh.world(|w| {
        let o = w.org("acme");
        // Person i: u0000..u0999. Leavers are u0000..u0199; every fifth leaver is an outside
        // collaborator, the others are members. Everyone has two direct grants, and members sit
        // in one team each.
        for i in 0..PEOPLE {
            let login = format!("u{i:04}");
            let outside = i < LEAVERS && i % 5 == 0;
            if !outside {
                o.member(
                    &login,
                    if i % 50 == 1 {
                        Role::Admin
                    } else {
                        Role::Member
                    },
                );
                o.team(&format!("team-{:02}", i % TEAMS)).member(&login);
            }
        }
        for r in 0..REPOS {
            let repo = o.repo(&format!("repo-{r:04}"));
            // Two grants per person spread over the repositories: ~1 collaborator per repo.
            for p in [r % PEOPLE, (r * 7 + 3) % PEOPLE] {
                let _ = repo.collaborator(&format!("u{p:04}"), Permission::Push);
            }
        }
    });
}

fn leavers() -> Vec<Subject> {
    (0..LEAVERS)
        .map(|i| {
            let mut s = Subject::new(format!("E{i:04}"));
            s.usernames.insert("github".into(), format!("u{i:04}"));
            s
        })
        .collect()
}

fn connector(gh: &GithubStandin, extra: serde_json::Value) -> GithubConnector {
    let mut v = json!({
        "orgs": ["acme"], "api_url": gh.url(), "graphql_url": gh.graphql_url(),
        "token": gh.token(), "mutation_spacing_ms": 0, "read_concurrency": 8,
    });
    if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        m.extend(e.clone());
    }
    GithubConnector::new("github", GithubConfig::from_value(&v).expect("config"))
        .expect("connector")
}

struct Calls {
    graphql: usize,
    rest: usize,
}

fn calls_since(gh: &GithubStandin, from: usize) -> Calls {
    let reqs = gh.requests();
    let new = &reqs[from..];
    let graphql = new.iter().filter(|r| r.path.ends_with("graphql")).count();
    Calls {
        graphql,
        rest: new.len() - graphql,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let latency = Duration::from_millis(env_or("BENCH_LATENCY_MS", 20));
    let paced = env_or("BENCH_PACED", 10) as usize;
    let gh = GithubStandin::start().expect("stand-in");
    // GitHub Enterprise Cloud's 15,000 per hour for an App; the per-user comparison needs more.
    gh.set_rate_limit(1_000_000, Duration::from_secs(3600));
    let t = Instant::now();
    seed(&gh);
    eprintln!("seeded in {:.2?}", t.elapsed());
    let subjects = leavers();
    println!("org: {REPOS} repositories, {PEOPLE} people, {TEAMS} teams; {LEAVERS} leavers");
    println!("latency injected: {latency:?} per request\n");

    // 1. Discovery call counts, no latency.
    let with_inv = connector(&gh, json!({}));
    let no_inv = connector(&gh, json!({"repository_invitations": false}));
    let t = Instant::now();
    let n = gh.requests().len();
    let found = no_inv.discover_many(&subjects).await.expect("batch");
    let batch = calls_since(&gh, n);
    eprintln!("batch discovery (no latency): {:.2?}", t.elapsed());
    let n = gh.requests().len();
    let r = tokio::time::timeout(Duration::from_secs(60), with_inv.discover_many(&subjects)).await;
    if r.is_err() {
        let reqs = gh.requests();
        eprintln!(
            "timed out after {} requests: {:?}",
            reqs.len() - n,
            reqs.iter()
                .rev()
                .take(4)
                .map(|r| (r.path.clone(), r.query.clone(), r.status))
                .collect::<Vec<_>>()
        );
        std::process::exit(1);
    }
    r.expect("in time").expect("batch with invitations");
    let batch_inv = calls_since(&gh, n);
    let t = Instant::now();
    let n = gh.requests().len();
    for s in &subjects {
        no_inv.discover(s).await.expect("one");
    }
    eprintln!(
        "per-user graphql discovery (no latency): {:.2?}",
        t.elapsed()
    );
    let per_user_gql = calls_since(&gh, n);
    let rest = connector(
        &gh,
        json!({"repository_invitations": false, "discovery": "rest"}),
    );
    let sample = 3;
    let n = gh.requests().len();
    for s in &subjects[..sample] {
        rest.discover(s).await.expect("rest");
    }
    let per_user_rest = calls_since(&gh, n);
    let grants: usize = found.iter().map(|d| d.findings.len()).sum();
    let proposed: Vec<_> = subjects
        .iter()
        .zip(&found)
        .flat_map(|(s, d)| with_inv.plan(s, d))
        .collect();
    let floor_pages = REPOS.div_ceil(100);
    println!("discovery of {LEAVERS} leavers                     graphql   rest   total");
    println!(
        "  batch (one scan per org)                     {:>7} {:>6} {:>7}",
        batch.graphql,
        batch.rest,
        batch.graphql + batch.rest
    );
    println!(
        "  batch + repository invitations               {:>7} {:>6} {:>7}",
        batch_inv.graphql,
        batch_inv.rest,
        batch_inv.graphql + batch_inv.rest
    );
    println!(
        "  one discovery per leaver (graphql)           {:>7} {:>6} {:>7}",
        per_user_gql.graphql,
        per_user_gql.rest,
        per_user_gql.graphql + per_user_gql.rest
    );
    let rest_each = (per_user_rest.graphql + per_user_rest.rest) as f64 / sample as f64;
    println!(
        "  one discovery per leaver (rest, {sample} measured)                {:>8.0}  (x{LEAVERS} = {:.0})",
        rest_each,
        rest_each * LEAVERS as f64
    );
    println!("  floor: ceil({REPOS}/100) repository pages       {floor_pages:>7}");
    println!("findings: {grants}; actions planned: {}\n", proposed.len());

    // 2. Wall time with latency: discovery, then apply.
    gh.set_latency(latency);
    let t = Instant::now();
    let found = no_inv.discover_many(&subjects).await.expect("batch");
    let disc = t.elapsed();
    let t = Instant::now();
    with_inv.discover_many(&subjects).await.expect("batch");
    let disc_inv = t.elapsed();
    println!("discovery wall time: {disc:.2?} (with repository invitations: {disc_inv:.2?})");
    println!(
        "  floor: {floor_pages}+{} sequential GraphQL pages x {latency:?} = {:.2?}",
        PEOPLE.div_ceil(100) + 1,
        latency * (floor_pages + PEOPLE.div_ceil(100) + 1) as u32
    );

    let job = JobId("bench".into());
    let actions: Vec<Action> = subjects
        .iter()
        .zip(&found)
        .flat_map(|(s, d)| {
            Action::from_proposals(&job, "github", d, no_inv.plan(s, d))
                .expect("proposals name discovered accounts")
        })
        .collect();
    let paced_conn = connector(
        &gh,
        json!({"repository_invitations": false, "mutation_spacing_ms": 1000}),
    );
    let n = gh.requests().len();
    let m = gh.mutations().len();
    let t = Instant::now();
    let (slow, fast) = actions.split_at(paced.min(actions.len()));
    for a in slow {
        let o = paced_conn
            .apply(a, &a.key, &MemoryJournal::new())
            .await
            .expect("apply");
        assert_eq!(o, Outcome::Done);
    }
    let paced_time = t.elapsed();
    let t = Instant::now();
    for a in fast {
        let o = no_inv
            .apply(a, &a.key, &MemoryJournal::new())
            .await
            .expect("apply");
        assert_eq!(o, Outcome::Done);
    }
    let unpaced_time = t.elapsed();
    let calls = calls_since(&gh, n);
    let mutations = gh.mutations().len() - m;
    println!(
        "\napply: {} actions, {mutations} mutations (floor: one per action = {}), {} calls in all",
        actions.len(),
        actions.len(),
        calls.rest + calls.graphql
    );
    println!(
        "  paced at 1 s: {} actions in {paced_time:.2?} ({:.2} s per mutation; floor 1 s)",
        slow.len(),
        paced_time.as_secs_f64() / slow.len().max(1) as f64
    );
    println!(
        "  unpaced: {} actions in {unpaced_time:.2?} ({:.0} ms each: the pin's read, one read and one write at {latency:?})",
        fast.len(),
        unpaced_time.as_millis() as f64 / fast.len().max(1) as f64
    );
    println!(
        "  whole apply at GitHub's pace: ~{:.0} s (floor {} s: one mutation per second)",
        actions.len() as f64 * (paced_time.as_secs_f64() / slow.len().max(1) as f64),
        actions.len()
    );
}
