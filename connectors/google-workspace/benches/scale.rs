//! Google Workspace at scale: 200 leavers, each with 50 Drive files, 5 groups (one of them
//! inside another group), 2 OAuth grants, an app password, an admin role and a licence, against
//! the Google stand-in (its recorder counts the calls; no Prism, which would add its own time).
//!
//! `cargo bench -p revoke-connector-google-workspace --bench scale` prints, per leaver:
//! - discovery calls (API and token calls) against the floor of reads that know what to remove;
//! - apply calls: writes against the floor of writes Google needs, and the reads apply adds
//!   (the pinned-user read of every action, the read before each removal, the transfer's list
//!   and polls);
//! - wall time unpaced, and the wall time Google's quota sets for those calls (2,400 Directory
//!   queries per minute per user per project: Directory calls / 40 per second; Gmail, Drive,
//!   Licensing and token calls have quotas of their own), computed; then a paced run
//!   of `BENCH_PACED_LEAVERS` (default 10) at 2,400 per minute, measured, to show the pace holds.
//!
//! Then a departing client's job: `BENCH_CLIENT_USERS` (200) users of ours with
//! `BENCH_CLIENT_FILES` (50) files each, every 10th shared with an address of the client and every
//! 25th with its domain, 2 client users of ours with as many files, and 10 shared drives of 20
//! files (2 of them shared with the client; the client a member of every other drive): calls of
//! the scan per user of ours, writes against the floor (one per share of the client, and the
//! client users' own offboarding), and the time Google's quotas set.
//!
//! Discovery runs twice, batched (`batch_size` 50, the default) and not (0): HTTP round trips per
//! leaver side by side with the calls (the same, each part of a batch counts against the quota).
//!
//! Environment: `BENCH_LEAVERS` (200), `BENCH_PACED_LEAVERS` (10). Under `cargo test` it is a
//! smoke pass of 3 leavers and a client job over 5 users, unpaced.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use revoke_connector_google_workspace::{
    GoogleConfig, GoogleConnector, SET_AUTO_REPLY, SET_FORWARDING, SUSPEND_USER,
};
use revoke_core::{
    Action, ActionId, ClientDomain, Connector, JobId, MemoryJournal, Outcome, Phase, Subject,
};
use revoke_testkit::google::{GoogleStandin, BATCH_PATH};
use serde_json::json;

const GW: &str = "corp-google";
const GROUPS: usize = 5;
const FILES: u64 = 50;
/// The writes Google needs per leaver here: vacation PUT, forwarding address POST, forwarding
/// PUT, suspend, signOut, backup codes, 2 grants, 1 app password, the transfer insert, 5 groups,
/// 1 role, 1 licence, the delete.
const FLOOR_WRITES: usize = 18;
/// The reads that tell what to remove: the user, grants, app passwords, groups, role
/// assignments, the licence, the Drive files, the transfers.
const FLOOR_DISCOVERY: usize = 8;

fn env_or(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

struct Run {
    leavers: usize,
    /// Calls counted against the Directory quota (Admin SDK and Data Transfer), all stages.
    directory: usize,
    discover_api: usize,
    discover_tokens: usize,
    discover_time: Duration,
    discover_directory: usize,
    /// HTTP requests discovery sent to the API (a batch request is one, its parts none).
    discover_round_trips: usize,
    apply_reads: usize,
    apply_writes: usize,
    apply_tokens: usize,
    apply_time: Duration,
}

async fn run(leavers: usize, rpm: u64, batch_size: u64) -> Run {
    run_with(leavers, rpm, batch_size, Duration::ZERO, true).await
}

/// [`run`] with `latency` added to every answer of the stand-in (a batch's parts apart), and
/// without the apply when `apply` is false.
async fn run_with(
    leavers: usize,
    rpm: u64,
    batch_size: u64,
    latency: Duration,
    apply: bool,
) -> Run {
    let g = GoogleStandin::start().expect("the google stand-in should start");
    g.set_rate_limit(u64::MAX, Duration::from_secs(60));
    g.set_latency(latency);
    g.world(|w| {
        let admin = w.user("admin@example.com");
        w.edit(&admin, |u| u.is_admin = true);
        w.user("archive@example.com");
        w.user("manager@example.com");
        w.transfer_polls = 1;
        let all = w.group("all-staff@example.com", "All staff");
        let groups: Vec<String> = (0..GROUPS)
            .map(|i| w.group(&format!("team{i}@example.com"), &format!("Team {i}")))
            .collect();
        w.add_member(&all, &groups[0]);
        let role = w.role("_HELP_DESK_ADMIN_ROLE", false);
        for i in 0..leavers {
            let id = w.user(&format!("leaver{i}@example.com"));
            w.edit(&id, |u| {
                u.aliases = vec![format!("l{i}@example.com")];
                u.employee_ids = vec![format!("E{i}")];
                u.drive_files = FILES;
                u.drive_bytes = FILES * 1_048_576;
                u.licences
                    .insert(("Google-Apps".into(), "1010020027".into()));
            });
            w.grant(&id, "1-a.apps.googleusercontent.com", "Slack");
            w.grant(&id, "2-b.apps.googleusercontent.com", "Zoom");
            w.asp(&id, "Thunderbird");
            for gid in &groups {
                w.add_member(gid, &id);
            }
            w.assign(&role, &id);
        }
    });
    let cfg = GoogleConfig::from_value(&json!({
        "private_key": g.service_account_key(),
        "admin_email": "admin@example.com",
        "api_url": g.url(),
        "transfer_to": "archive@example.com",
        "auto_reply_subject": "Gone",
        "auto_reply_body": "Please write to team@example.com.",
        "forward_to": "manager@example.com",
        "licences": ["Google-Apps/1010020027"],
        "transfer_poll_ms": 1,
        "requests_per_minute": rpm,
        "drive_requests_per_minute": rpm * 5,
        "timeout_secs": 600,
        "batch_size": batch_size,
    }))
    .expect("config");
    let conn = Arc::new(GoogleConnector::new(GW, cfg).expect("connector"));
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
    let reqs = g.requests();
    let discover_tokens = reqs.iter().filter(|r| r.path == "/token").count();
    let batches = reqs.iter().filter(|r| r.path == BATCH_PATH).count();
    let discover_api = reqs.len() - discover_tokens - batches;
    let discover_round_trips = reqs
        .iter()
        .filter(|r| !r.in_batch && r.path != "/token")
        .count();
    let discover_directory = reqs
        .iter()
        .filter(|r| r.path.starts_with("/admin/"))
        .count();
    assert!(
        reqs.iter().all(|r| !r.is_mutation()),
        "discovery writes nothing"
    );
    assert!(found.iter().all(|d| d.found));
    if !apply {
        return Run {
            leavers,
            directory: discover_directory,
            discover_api,
            discover_tokens,
            discover_time,
            discover_directory,
            discover_round_trips,
            apply_reads: 0,
            apply_writes: 0,
            apply_tokens: 0,
            apply_time: Duration::ZERO,
        };
    }

    let job = JobId("bench".into());
    let mut all: Vec<Action> = Vec::new();
    for (s, d) in subjects.iter().zip(&found) {
        all.extend(Action::from_proposals(&job, GW, d, conn.plan(s, d)).expect("proposals"));
    }
    g.clear_requests();
    let rank = |a: &Action| match (a.phase, a.kind.0.as_str()) {
        (Phase::Contain, SET_AUTO_REPLY | SET_FORWARDING) => 0,
        (Phase::Contain, SUSPEND_USER) => 1,
        (Phase::Contain, _) => 2,
        (Phase::Transfer, _) => 3,
        (Phase::Revoke, _) => 4,
        _ => 5,
    };
    let journals: HashMap<ActionId, Arc<MemoryJournal>> = all
        .iter()
        .map(|a| (a.id.clone(), Arc::new(MemoryJournal::new())))
        .collect();
    let t = Instant::now();
    for step in 0..6 {
        // Every action of a step at once, as the executor's workers would (16 at a time).
        let these: Vec<&Action> = all.iter().filter(|a| rank(a) == step).collect();
        for chunk in these.chunks(16) {
            let futs = chunk.iter().map(|a| {
                let conn = conn.clone();
                let j = journals[&a.id].clone();
                async move {
                    loop {
                        match conn.apply(a, &a.key, j.as_ref()).await {
                            Err(e) if e.is_retryable() => {
                                tokio::time::sleep(
                                    e.retry_after().unwrap_or(Duration::from_millis(5)),
                                )
                                .await
                            }
                            r => return r,
                        }
                    }
                }
            });
            for r in join_all(futs).await {
                assert_eq!(r.expect("apply"), Outcome::Done);
            }
        }
    }
    let apply_time = t.elapsed();
    let reqs = g.requests();
    let apply_tokens = reqs.iter().filter(|r| r.path == "/token").count();
    let apply_writes = reqs.iter().filter(|r| r.is_mutation()).count();
    let apply_reads = reqs.len() - apply_tokens - apply_writes;
    let directory = discover_directory
        + reqs
            .iter()
            .filter(|r| r.path.starts_with("/admin/"))
            .count();
    Run {
        leavers,
        directory,
        discover_api,
        discover_tokens,
        discover_time,
        discover_directory,
        discover_round_trips,
        apply_reads,
        apply_writes,
        apply_tokens,
        apply_time,
    }
}

struct ClientRun {
    users: usize,
    shares: usize,
    discover_api: usize,
    discover_tokens: usize,
    discover_directory: usize,
    discover_time: Duration,
    actions: usize,
    apply_writes: usize,
    share_writes: usize,
    apply_reads: usize,
    apply_tokens: usize,
    apply_directory: usize,
    apply_time: Duration,
}

/// Drive shared drives in the client run, and files in each.
const DRIVES: usize = 10;
const DRIVE_FILES: usize = 20;

async fn client_run(users: usize, files: usize, rpm: u64, drive_rpm: u64) -> ClientRun {
    let g = GoogleStandin::start().expect("the google stand-in should start");
    g.set_rate_limit(u64::MAX, Duration::from_secs(60));
    let shares = g.world(|w| {
        let admin = w.user("admin@example.com");
        w.edit(&admin, |u| u.is_admin = true);
        w.user("archive@example.com");
        let mut ours = Vec::new();
        let mut shares = 0;
        for i in 0..users {
            let id = w.user(&format!("user{i}@example.com"));
            for n in 0..files {
                let f = w.file(&id, &format!("doc {n}"));
                if n % 10 == 0 {
                    w.share(&f, "user", &format!("c{}@clientco.test", n % 20), "reader");
                    shares += 1;
                }
                if n % 25 == 1 {
                    w.share(&f, "domain", "clientco.test", "reader");
                    shares += 1;
                }
            }
            ours.push(id);
        }
        for k in 0..2 {
            let pat = w.user(&format!("pat{k}@clientco.test"));
            for n in 0..files {
                let f = w.file(&pat, &format!("deliverable {n}"));
                if n % 10 == 0 {
                    w.share(&f, "user", "c0@clientco.test", "writer");
                    shares += 1;
                }
            }
        }
        for d in 0..DRIVES {
            let drive = w.shared_drive(&format!("Drive {d}"));
            w.drive_member(&drive, &ours[d % ours.len()], "organizer");
            if d % 2 == 0 {
                let lee = w.permission_id("user:lee@clientco.test");
                if let Some(x) = w.drives.get_mut(&drive) {
                    x.permissions.push(revoke_testkit::google::Permission {
                        id: lee,
                        kind: "user".into(),
                        email: Some("lee@clientco.test".into()),
                        domain: None,
                        role: "writer".into(),
                    });
                }
                shares += 1;
            }
            for n in 0..DRIVE_FILES {
                let f = w.drive_file(&drive, &format!("sheet {n}"));
                if n < 2 {
                    w.share(&f, "user", "lee@clientco.test", "commenter");
                    shares += 1;
                }
            }
        }
        shares
    });
    let cfg = GoogleConfig::from_value(&json!({
        "private_key": g.service_account_key(),
        "admin_email": "admin@example.com",
        "api_url": g.url(),
        "transfer_to": "archive@example.com",
        "delete_users": false,
        "transfer_poll_ms": 1,
        "requests_per_minute": rpm,
        "drive_requests_per_minute": drive_rpm,
        "timeout_secs": 600,
    }))
    .expect("config");
    let conn = Arc::new(GoogleConnector::new(GW, cfg).expect("connector"));
    let subject = Subject::client(ClientDomain::parse("clientco.test").expect("domain"));
    let t = Instant::now();
    let d = conn.discover(&subject).await.expect("discovery");
    let discover_time = t.elapsed();
    let reqs = g.requests();
    assert!(
        reqs.iter().all(|r| !r.is_mutation()),
        "discovery writes nothing"
    );
    let discover_tokens = reqs.iter().filter(|r| r.path == "/token").count();
    let discover_directory = reqs
        .iter()
        .filter(|r| r.path.starts_with("/admin/"))
        .count();
    // A batch request is a round trip, not a call: its parts are recorded each on its own.
    let batches = reqs.iter().filter(|r| r.path == BATCH_PATH).count();
    let discover_api = reqs.len() - discover_tokens - batches;
    let all = Action::from_proposals(&JobId("client".into()), GW, &d, conn.plan(&subject, &d))
        .expect("proposals");
    g.clear_requests();
    let journals: HashMap<ActionId, Arc<MemoryJournal>> = all
        .iter()
        .map(|a| (a.id.clone(), Arc::new(MemoryJournal::new())))
        .collect();
    let t = Instant::now();
    for phase in [Phase::Contain, Phase::Transfer, Phase::Revoke] {
        for step in 0..2 {
            // Within contain, the suspension first (step 0), then what follows it.
            let these: Vec<&Action> = all
                .iter()
                .filter(|a| a.phase == phase && (a.kind.0 == SUSPEND_USER) == (step == 0))
                .collect();
            for chunk in these.chunks(16) {
                let futs = chunk.iter().map(|a| {
                    let conn = conn.clone();
                    let j = journals[&a.id].clone();
                    async move {
                        loop {
                            match conn.apply(a, &a.key, j.as_ref()).await {
                                Err(e) if e.is_retryable() => {
                                    tokio::time::sleep(
                                        e.retry_after().unwrap_or(Duration::from_millis(5)),
                                    )
                                    .await
                                }
                                r => return r,
                            }
                        }
                    }
                });
                for r in join_all(futs).await {
                    assert_eq!(r.expect("apply"), Outcome::Done);
                }
            }
        }
    }
    let apply_time = t.elapsed();
    let reqs = g.requests();
    let apply_tokens = reqs.iter().filter(|r| r.path == "/token").count();
    let apply_writes = reqs.iter().filter(|r| r.is_mutation()).count();
    let share_writes = reqs
        .iter()
        .filter(|r| r.method == "DELETE" && r.path.contains("/permissions/"))
        .count();
    ClientRun {
        users,
        shares,
        discover_api,
        discover_tokens,
        discover_directory,
        discover_time,
        actions: all.len(),
        apply_writes,
        share_writes,
        apply_reads: reqs.len() - apply_tokens - apply_writes,
        apply_tokens,
        apply_directory: reqs
            .iter()
            .filter(|r| r.path.starts_with("/admin/"))
            .count(),
        apply_time,
    }
}

fn per(n: usize, leavers: usize) -> f64 {
    n as f64 / leavers as f64
}

/// Seconds Google's Directory quota (2,400 per minute) needs for `calls` (Gmail, Drive, Licensing
/// and token calls count against other quotas, and go beside them).
fn at_quota(calls: usize) -> f64 {
    calls as f64 / 40.0
}

/// Seconds Drive's quota needs for `calls`, at the 12,000 queries per minute per project Google
/// published until 2026 (it now counts quota units per method, whose costs are not given here).
fn at_drive_quota(calls: usize) -> f64 {
    calls as f64 / 200.0
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let leavers = if full {
        env_or("BENCH_LEAVERS", 200)
    } else {
        3
    } as usize;
    let r = run(leavers, 1_000_000, 50).await;
    let unbatched = run(leavers, 1_000_000, 0).await;
    let n = r.leavers;
    println!("google workspace, {n} leavers ({FILES} Drive files, {GROUPS} groups, 2 grants, 1 app password, 1 role, 1 licence each)");
    println!(
        "discovery: {:.1} API calls/leaver (floor {FLOOR_DISCOVERY}), {:.1} token calls/leaver, {:.2?} unpaced, {:.0} s at 2,400/min",
        per(r.discover_api, n),
        per(r.discover_tokens, n),
        r.discover_time,
        at_quota(r.discover_directory)
    );
    println!(
        "apply: {:.1} writes/leaver (floor {FLOOR_WRITES}), {:.1} reads/leaver, {:.1} token calls/leaver, {:.2?} unpaced, {:.0} s at 2,400/min",
        per(r.apply_writes, n),
        per(r.apply_reads, n),
        per(r.apply_tokens, n),
        r.apply_time,
        at_quota(r.directory - r.discover_directory)
    );
    println!(
        "directory quota: {:.1} of {:.1} calls/leaver count against it",
        per(r.directory, n),
        per(
            r.discover_api + r.discover_tokens + r.apply_reads + r.apply_writes + r.apply_tokens,
            n
        )
    );
    assert_eq!(r.apply_writes, FLOOR_WRITES * n, "writes at the floor");
    println!(
        "discovery round trips (API requests, token calls apart): {:.2}/leaver batched (batch_size 50), {:.2}/leaver unbatched, for {:.1} and {:.1} API calls/leaver; {:.2?} and {:.2?} unpaced; at 30 ms a round trip (computed, sequential): {:.1} s and {:.1} s",
        per(r.discover_round_trips, n),
        per(unbatched.discover_round_trips, n),
        per(r.discover_api, n),
        per(unbatched.discover_api, n),
        r.discover_time,
        unbatched.discover_time,
        (r.discover_round_trips + r.discover_tokens) as f64 * 0.03,
        (unbatched.discover_round_trips + unbatched.discover_tokens) as f64 * 0.03,
    );
    assert_eq!(
        r.discover_api, unbatched.discover_api,
        "batched or not, the same calls count against the quota"
    );
    assert!(r.discover_round_trips < unbatched.discover_round_trips);
    if full {
        // Measured: discovery with 30 ms added to every answer (the parts of a batch apart,
        // which Google answers inside its frontend), unpaced.
        let l = env_or("BENCH_LATENCY_LEAVERS", 20) as usize;
        let rtt = Duration::from_millis(30);
        let b = run_with(l, 1_000_000, 50, rtt, false).await;
        let u = run_with(l, 1_000_000, 0, rtt, false).await;
        println!(
            "discovery of {l} leavers with 30 ms a round trip (measured): batched {:.1} s ({} round trips, {} token calls), unbatched {:.1} s ({} round trips, {} token calls), {} API calls each",
            b.discover_time.as_secs_f64(),
            b.discover_round_trips,
            b.discover_tokens,
            u.discover_time.as_secs_f64(),
            u.discover_round_trips,
            u.discover_tokens,
            b.discover_api
        );
    }

    let (users, files) = if full {
        (
            env_or("BENCH_CLIENT_USERS", 200) as usize,
            env_or("BENCH_CLIENT_FILES", 50) as usize,
        )
    } else {
        (5, 10)
    };
    let c = client_run(users, files, 1_000_000, 1_000_000).await;
    let u = c.users;
    // The scan's floor: the users' page(s), one files.list per user of ours (2 of the client's
    // too), drives.list, and per drive its members, its files and each of its 2 files' shares.
    let scan_floor = u.div_ceil(500) + (u + 2) + 1 + DRIVES * (2 + 2);
    let drive_calls = c.discover_api - c.discover_directory;
    println!(
        "client job, {u} users of ours with {files} files each, 2 client users, {DRIVES} shared drives: {} shares of the client",
        c.shares
    );
    println!(
        "client discovery: {} API calls (floor {scan_floor} for the scan, and the 2 client users' own discovery), {:.2} per user of ours, {} token calls, {:.2?} unpaced; {} Directory calls, {drive_calls} Drive calls: {:.0} s at Drive's 12,000/min",
        c.discover_api,
        per(c.discover_api, u),
        c.discover_tokens,
        c.discover_time,
        c.discover_directory,
        at_drive_quota(drive_calls)
    );
    println!(
        "client apply: {} actions, {} writes ({} share removals, floor {}), {} reads, {} token calls, {:.2?} unpaced; {:.0} s at the Directory quota, {:.0} s at Drive's",
        c.actions,
        c.apply_writes,
        c.share_writes,
        c.shares,
        c.apply_reads,
        c.apply_tokens,
        c.apply_time,
        at_quota(c.apply_directory),
        at_drive_quota(c.apply_reads + c.apply_writes - c.apply_directory)
    );
    assert_eq!(
        c.share_writes, c.shares,
        "one write per share of the client"
    );
    if full {
        let paced = env_or("BENCH_PACED_CLIENT_USERS", 50) as usize;
        let p = client_run(paced, files, 2_400, 12_000).await;
        let drive = p.discover_api - p.discover_directory + p.apply_reads + p.apply_writes
            - p.apply_directory;
        println!(
            "client job paced at 2,400/min and Drive 12,000/min, {paced} users of ours: {} shares, {drive} Drive calls, measured {:.1} s (discovery {:.1} s, apply {:.1} s), computed {:.1} s",
            p.shares,
            (p.discover_time + p.apply_time).as_secs_f64(),
            p.discover_time.as_secs_f64(),
            p.apply_time.as_secs_f64(),
            at_drive_quota(drive)
        );
        let paced = env_or("BENCH_PACED_LEAVERS", 10) as usize;
        let p = run(paced, 2_400, 50).await;
        let calls =
            p.discover_api + p.discover_tokens + p.apply_reads + p.apply_writes + p.apply_tokens;
        println!(
            "paced at 2,400/min, {paced} leavers: {calls} calls, {} against the Directory quota, measured {:.1} s (discovery {:.1} s, apply {:.1} s), computed {:.1} s",
            p.directory,
            (p.discover_time + p.apply_time).as_secs_f64(),
            p.discover_time.as_secs_f64(),
            p.apply_time.as_secs_f64(),
            at_quota(p.directory)
        );
    }
}
