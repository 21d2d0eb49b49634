//! AWS IAM calls against their floor, side by side in one run: revoked's plan + apply + verify
//! (the real planner, executor and SQLite store, as `revokectl apply` runs them) against the
//! sequential script an admin writes first (tests/python/iam_offboard_sequential.py, boto3 with
//! retries off: the requests the aws CLI sends), each on its own fresh moto seeded identically.
//!
//! Every leaver has two access keys, a console password, an inline policy, an attached managed
//! policy and a group. moto's request recorder counts every call of both; each read revoked still
//! makes is listed with what it buys. Both runs are checked against IAM's DeleteUser rules
//! (`iam_order_violations`), and two reruns (a new plan for the same leavers, and the same plan
//! applied again on a new store) must send no write.
//!
//! `cargo bench -p revoke-connector-aws-iam --bench floor` runs 20 leavers (`BENCH_LEAVERS`);
//! under `cargo test --benches` it is a 3-leaver smoke pass.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use revoke_config::Config;
use revoke_connector_aws_iam::IamFactory;
use revoke_core::{Job, JobId, Plan, PlanId, Risk, Subject};
use revoke_engine::{check_fresh, discover, plan_jobs, Connectors, Executor, Registry, Staleness};
use revoke_store::{SqliteStore, Store};
use revoke_testkit::moto::{count_calls, AwsCall};
use revoke_testkit::{iam_order_violations, Moto};

const INLINE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*"}]}"#;
const MANAGED: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";

fn env_or(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn name(i: usize) -> String {
    format!("leaver-{i:02}")
}

/// The same world on each moto: `n` leavers with two keys, a console password, an inline and a
/// managed policy and the group `staff`. Sent with the testkit's own client, then the recording
/// is cleared.
fn seed(moto: &Moto, n: usize) {
    moto.iam("CreateGroup", &[("GroupName", "staff")])
        .expect("group");
    for i in 0..n {
        let u = name(i);
        let u = u.as_str();
        moto.iam("CreateUser", &[("UserName", u)]).expect("user");
        for _ in 0..2 {
            moto.iam("CreateAccessKey", &[("UserName", u)])
                .expect("key");
        }
        moto.iam(
            "CreateLoginProfile",
            &[("UserName", u), ("Password", "Correct-Horse-1")],
        )
        .expect("password");
        moto.iam(
            "PutUserPolicy",
            &[
                ("UserName", u),
                ("PolicyName", "own"),
                ("PolicyDocument", INLINE),
            ],
        )
        .expect("inline");
        moto.iam(
            "AttachUserPolicy",
            &[("UserName", u), ("PolicyArn", MANAGED)],
        )
        .expect("managed");
        moto.iam("AddUserToGroup", &[("UserName", u), ("GroupName", "staff")])
            .expect("group");
    }
    moto.clear_recording().expect("clear");
}

fn config(moto: &Moto) -> Config {
    let toml = format!(
        "[policies.default]\nretention_days = 0\n\n[connectors.aws]\nkind = \"aws-iam\"\nendpoint_url = \"{}\"\nregion = \"us-east-1\"\naccess_key_id = \"testing\"\nsecret_access_key = \"testing\"\nmatch_by = [\"name\"]\n",
        moto.endpoint()
    );
    revoke_config::load_str(&toml).expect("config")
}

fn jobs(n: usize) -> Vec<Job> {
    let now = Utc::now();
    (0..n)
        .map(|i| Job {
            id: JobId(format!("job-{i}")),
            subject: Subject::new(name(i)),
            reason: "leaver".into(),
            effective_at: now,
            risk: Risk::High,
            source: "bench".into(),
            requested_by: "bench".into(),
            policy: "default".into(),
        })
        .collect()
}

async fn make_plan(cfg: &Config, cs: &Connectors, jobs: Vec<Job>, id: &str) -> Plan {
    let ds = discover(cfg, cs, &jobs).await.expect("discover");
    plan_jobs(cfg, cs, jobs, &ds, PlanId(id.into()), Utc::now()).expect("plan")
}

async fn execute(
    cfg: &Config,
    cs: Connectors,
    plan: &Plan,
    dir: &Path,
) -> revoke_engine::RunSummary {
    let url = format!("sqlite://{}", dir.join("revoked.db").display());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.expect("store"));
    let exec = Executor::new(store, cs, cfg, "bench");
    exec.record(plan).await.expect("record");
    exec.run_plan(&plan.id).await.expect("run")
}

/// Calls recorded since `mark`, and the new mark.
fn since(moto: &Moto, mark: &mut usize) -> Vec<AwsCall> {
    let all = moto.recorded().expect("recorded");
    let new = all[(*mark).min(all.len())..].to_vec();
    *mark = all.len();
    new
}

/// What a read revoked makes buys, by stage and action.
fn purpose(stage: &str, action: &str) -> &'static str {
    match (stage, action) {
        ("execute", "GetAccountAuthorizationDetails") => {
            "each read-back batch's one scan: which pinned users are gone (confirming all their actions), and the policies and groups of those still there"
        }
        (_, "GetAccountAuthorizationDetails") => {
            "one scan per account: every user's tags, inline and attached policies, groups"
        }
        (_, "GenerateCredentialReport" | "GetCredentialReport") => {
            "one report per account: the keys' last use, for the plan's reader"
        }
        ("execute", "GetUser") => {
            "the pin, before writes: the planned name still names the pinned UserId (one lookup for a user's actions that start within 20 ms), and again after a write's NoSuchEntity"
        }
        ("execute", "ListUsers") => {
            "the pin of several users' actions starting within 20 ms at once (and after a write's NoSuchEntity, a user not found by name)"
        }
        ("execute", "GetUserPolicy") => {
            "quarantine_user where discovery saw the quarantine already (a rerun sends no write)"
        }
        ("execute", _) => {
            "read-back (verify_many) of applied actions on users still there when their batch is read, one listing per user and kind; or a retry reading first"
        }
        (_, "GetLoginProfile" | "ListAccessKeys" | "ListSigningCertificates" | "ListSSHPublicKeys"
            | "ListServiceSpecificCredentials" | "ListMFADevices") => {
            "per user: what the scan does not list (password, keys, certificates, SSH keys, service credentials, MFA)"
        }
        (_, "GetAccessKeyLastUsed") => "a key the credential report does not show yet",
        _ => "other",
    }
}

fn by_action(calls: &[AwsCall]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for c in calls.iter().filter(|c| c.is_read()) {
        *m.entry(c.action.clone()).or_default() += 1;
    }
    m
}

fn main() {
    // `cargo bench` passes --bench; under `cargo test --benches` this is a smoke pass.
    let full = std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(if full { env_or("BENCH_LEAVERS", 20) } else { 3 }));
}

struct Side {
    reads: usize,
    writes: usize,
    wall: Duration,
}

impl Side {
    fn calls(&self) -> usize {
        self.reads + self.writes
    }
}

async fn run(n: usize) {
    // revoked, on its own moto.
    let moto = Moto::start().expect("moto");
    seed(&moto, n);
    let cfg = config(&moto);
    let cs = Registry::new()
        .with(IamFactory)
        .build(&cfg)
        .expect("connectors");
    let mut mark = 0;
    let mut stages: Vec<(&str, Vec<AwsCall>)> = Vec::new();

    let t = Instant::now();
    let plan = make_plan(&cfg, &cs, jobs(n), "plan-1").await;
    let plan_time = t.elapsed();
    stages.push(("plan", since(&moto, &mut mark)));
    let t = Instant::now();
    // `revokectl apply plan.json` discovers again and refuses a stale plan.
    let fresh = check_fresh(&cfg, &cs, &plan).await.expect("fresh");
    assert!(matches!(fresh, Staleness::Fresh), "{fresh:?}");
    let fresh_time = t.elapsed();
    stages.push(("re-discovery", since(&moto, &mut mark)));
    let dir = tempfile::tempdir().expect("tmp");
    let t = Instant::now();
    let summary = execute(&cfg, cs.clone(), &plan, dir.path()).await;
    let exec_time = t.elapsed();
    stages.push(("execute", since(&moto, &mut mark)));
    assert_eq!(
        (summary.failed, summary.blocked, summary.not_confirmed),
        (0, 0, 0),
        "{summary:?}"
    );
    let ours_calls = moto.recorded().expect("recorded");
    let ours_order = iam_order_violations(&ours_calls);

    // Reruns: a new plan for the same leavers, and the same plan on a new store.
    // Every leaver is gone now: the planner finds nobody (UnknownSubject) and plans nothing.
    let again = {
        let js = jobs(n);
        let ds = discover(&cfg, &cs, &js).await.expect("discover");
        match plan_jobs(&cfg, &cs, js, &ds, PlanId("plan-2".into()), Utc::now()) {
            Ok(p) => p.actions.len(),
            Err(revoke_engine::EngineError::UnknownSubject { .. }) => 0,
            Err(e) => panic!("replan: {e}"),
        }
    };
    let replan = since(&moto, &mut mark);
    let dir2 = tempfile::tempdir().expect("tmp");
    let cs2 = Registry::new()
        .with(IamFactory)
        .build(&cfg)
        .expect("connectors");
    let rerun_summary = execute(&cfg, cs2, &plan, dir2.path()).await;
    let rerun = since(&moto, &mut mark);
    assert_eq!(rerun_summary.failed, 0, "{rerun_summary:?}");

    // The sequential script, on an identical fresh moto.
    let script_moto = Moto::start().expect("moto");
    seed(&script_moto, n);
    let python = revoke_testkit::moto::python_dir().join(".venv/bin/python");
    let script = revoke_testkit::moto::python_dir().join("iam_offboard_sequential.py");
    let users: Vec<String> = (0..n).map(name).collect();
    let t = Instant::now();
    let out = Command::new(&python)
        .arg(&script)
        .arg("--endpoint")
        .arg(script_moto.endpoint())
        .args(&users)
        .output()
        .expect("run the script");
    let script_process = t.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("the script's json line");
    let script_calls = script_moto.recorded().expect("recorded");
    let script_order = iam_order_violations(&script_calls);
    let left: Vec<String> = users
        .iter()
        .filter(|u| script_moto.iam("GetUser", &[("UserName", u)]).is_ok())
        .cloned()
        .collect();
    assert!(left.is_empty(), "the script left {left:?}");

    // Report.
    println!("AWS IAM, {n} leavers (2 keys, console password, inline + managed policy, group each), moto");
    println!();
    let mut total = Side {
        reads: 0,
        writes: 0,
        wall: plan_time + fresh_time + exec_time,
    };
    for (stage, calls) in &stages {
        let c = count_calls(calls);
        total.reads += c.reads;
        total.writes += c.mutations;
        println!(
            "revoked {stage:<13} {:>4} calls: {:>4} reads, {:>4} writes",
            calls.len(),
            c.reads,
            c.mutations
        );
    }
    let without_rediscovery = {
        let c = count_calls(&stages[1].1);
        Side {
            reads: total.reads - c.reads,
            writes: total.writes - c.mutations,
            wall: plan_time + exec_time,
        }
    };
    let script = {
        let c = count_calls(&script_calls);
        Side {
            reads: c.reads,
            writes: c.mutations,
            wall: Duration::from_secs_f64(report["seconds"].as_f64().unwrap_or(0.0)),
        }
    };
    println!();
    println!(
        "{:<46} {:>6} {:>6} {:>6} {:>9}",
        "", "calls", "reads", "writes", "wall"
    );
    let row = |label: &str, s: &Side| {
        println!(
            "{label:<46} {:>6} {:>6} {:>6} {:>8.2}s",
            s.calls(),
            s.reads,
            s.writes,
            s.wall.as_secs_f64()
        )
    };
    row("revoked: plan + apply plan.json (+ verify)", &total);
    row(
        "revoked: apply --user (one discovery, + verify)",
        &without_rediscovery,
    );
    row("sequential boto3 script (= aws CLI calls)", &script);
    let ratio = |a: usize, b: usize| a as f64 / b.max(1) as f64;
    for (label, s) in [
        ("plan + apply plan.json", &total),
        ("apply --user", &without_rediscovery),
    ] {
        println!(
            "ratio {label:<40} calls {:.2}x, reads {:.2}x, writes {:.2}x, wall {:.2}x",
            ratio(s.calls(), script.calls()),
            ratio(s.reads, script.reads),
            ratio(s.writes, script.writes),
            s.wall.as_secs_f64() / script.wall.as_secs_f64().max(1e-9)
        );
    }
    println!(
        "(the script's wall is its own loop; with interpreter start and imports it took {:.2}s)",
        script_process.as_secs_f64()
    );
    // The reads revoked's guarantees need at the least: its discovery once, one pin lookup per
    // leaver, one ListUsers that confirms every action on the users gone.
    let needed = count_calls(&stages[0].1).reads + n + 1;
    println!(
        "reads needed at the least (discovery {} + one pin per leaver {n} + one read-back 1) = {needed}; apply --user reads {:.2}x that, {:.2}x the script's {}",
        count_calls(&stages[0].1).reads,
        ratio(without_rediscovery.reads, needed),
        ratio(without_rediscovery.reads, script.reads),
        script.reads
    );
    println!();
    println!("what each read of revoked buys:");
    for (stage, calls) in &stages {
        for (action, count) in by_action(calls) {
            println!(
                "  {stage:<13} {action:<32} {count:>4} ({:.2} per leaver): {}",
                count as f64 / n as f64,
                purpose(stage, &action)
            );
        }
    }
    println!();
    println!(
        "writes: revoked {} ({:.1} per leaver: contain is a deny-all policy, keys deactivated, password deleted, then every removal, the policy and the user), script {} ({:.1} per leaver: removals and the user only, nothing contained first)",
        total.writes,
        total.writes as f64 / n as f64,
        script.writes,
        script.writes as f64 / n as f64
    );
    let rp = count_calls(&replan);
    let rr = count_calls(&rerun);
    println!(
        "rerun, a new plan for the same leavers: {} actions planned, {} reads, {} writes",
        again, rp.reads, rp.mutations
    );
    println!(
        "rerun, the same plan on a new store: {} already done, {} reads, {} writes",
        rerun_summary.already_done, rr.reads, rr.mutations
    );
    println!(
        "IAM order violations: revoked {}, script {}",
        ours_order.len(),
        script_order.len()
    );
    if let Some(errors) = report["errors"].as_array().filter(|e| !e.is_empty()) {
        println!(
            "the script noted {} errors, e.g. {}",
            errors.len(),
            errors[0]
        );
    }
    assert!(ours_order.is_empty(), "{ours_order:?}");
    assert!(script_order.is_empty(), "{script_order:?}");
    assert_eq!(again, 0, "a rerun plans nothing");
    assert_eq!(
        (rp.mutations, rr.mutations),
        (0, 0),
        "a rerun sends no write"
    );
}
