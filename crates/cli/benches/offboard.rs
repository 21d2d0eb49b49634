//! Offboarding many leavers against a real slapd, side by side with the admin's fastest way.
//!
//! Two fresh slapds are seeded with the same directory: N leavers, each in one groupOfNames, one
//! groupOfUniqueNames and one posixGroup of 50 to 500 members (sizes cycling 50, 140, 230, 320,
//! 410, 500; members shuffled, so a batch of leavers touches many groups). On one, a single
//! `ldapmodify -c` applies a prepared LDIF of the same changes (per leaver: lock, 3 group value
//! deletes, delete); on the other, revoked discovers, plans, applies and verifies the same
//! offboarding on the embedded SQLite store. Reported for both and as ratios: wall time, LDAP
//! operations per leaver (slapd's stats log), writes per leaver, peak RSS. Then revoked runs
//! the plan again and discovers the same leavers again: both must send no write, and the
//! discovery must find nobody (the planner refuses to plan for nobody).
//!
//! `cargo bench -p revokectl --bench offboard` runs 1,000 leavers; `-- --leavers N` changes
//! that; `-- --connector-only` leaves revoked's engine run out. Under `cargo test --benches` it
//! runs a 20-leaver smoke pass with the same asserts.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use revoke_core::{Job, JobId, PlanId, Subject};
use revoke_engine::{discover, plan_jobs, Executor, Registry};
use revoke_store::{SqliteStore, Store};
use revoke_testkit::{OpCounts, Slapd};

#[path = "shared/mod.rs"]
mod shared;
use shared::{clean, directory, groups, job, leaver, GROUPS, PEOPLE};

/// The most LDAP operations per leaver revoked may send in all (plan, apply, verify): the
/// goal of issue 14 (5 writes, one discovery, one verification read). The smoke pass holds it.
const OPS_BOUND: f64 = 9.0;

/// The admin's prepared LDIF: per leaver the lock, the three group value deletes, the delete.
fn bulk_changes(leavers: usize, groups: &[Vec<Vec<usize>>; 3]) -> String {
    let mut of = vec![[0usize; 3]; leavers];
    for (k, kind) in groups.iter().enumerate() {
        for (g, members) in kind.iter().enumerate() {
            for &i in members {
                of[i][k] = g;
            }
        }
    }
    let mut ldif = String::new();
    for (i, [n, u, p]) in of.iter().enumerate() {
        let dn = leaver(i);
        let _ = write!(
            ldif,
            "dn: {dn}\nchangetype: modify\nreplace: pwdAccountLockedTime\npwdAccountLockedTime: 000001010000Z\n\n\
             dn: cn=names-{n},{GROUPS}\nchangetype: modify\ndelete: member\nmember: {dn}\n\n\
             dn: cn=unique-{u},{GROUPS}\nchangetype: modify\ndelete: uniqueMember\nuniqueMember: {dn}\n\n\
             dn: cn=posix-{p},{GROUPS}\nchangetype: modify\ndelete: memberUid\nmemberUid: leaver{i:05}\n\n\
             dn: {dn}\nchangetype: delete\n\n"
        );
    }
    ldif
}

/// The LDAP connector alone, without the engine or a store: discover_many, plan, every phase's
/// actions 8 at once (as `executor.concurrency = 8`), then verify_many in batches of 256. What
/// the connector's own LDAP work costs, to tell it from the executor's.
async fn connector_alone(slapd: &Slapd, leavers: usize) -> anyhow::Result<(f64, OpCounts)> {
    use revoke_core::{Action, ConnectorFactory, MemoryJournal, Phase};
    let params = serde_json::json!({
        "url": slapd.url(), "bind_dn": Slapd::ROOT_DN, "bind_password": Slapd::ROOT_PW,
        "user_base_dn": PEOPLE, "group_base_dn": GROUPS, "user_object_class": "inetOrgPerson",
        "delete_entry": true,
    });
    let c = revoke_connector_ldap::LdapFactory
        .build("dir", &params)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let c0 = slapd.op_counts()?;
    let t = Instant::now();
    let subjects: Vec<Subject> = (0..leavers)
        .map(|i| Subject::new(format!("leaver{i:05}")))
        .collect();
    let found = c.discover_many(&subjects).await?;
    let mut actions: Vec<Action> = Vec::new();
    for (i, (s, d)) in subjects.iter().zip(&found).enumerate() {
        let proposals = c.plan(s, d);
        actions.extend(
            Action::from_proposals(&JobId(format!("job-{i:05}")), "dir", d, proposals)
                .map_err(|e| anyhow::anyhow!(e))?,
        );
    }
    drop(found);
    let slots = Arc::new(tokio::sync::Semaphore::new(8));
    for phase in [Phase::Contain, Phase::Revoke, Phase::Delete] {
        let mut set = tokio::task::JoinSet::new();
        for a in actions.iter().filter(|a| a.phase == phase).cloned() {
            let (c, slots) = (c.clone(), slots.clone());
            set.spawn(async move {
                let _slot = slots.acquire_owned().await;
                c.apply(&a, &a.key, &MemoryJournal::new()).await
            });
        }
        while let Some(r) = set.join_next().await {
            r??;
        }
    }
    for batch in actions.chunks(255) {
        for v in c.verify_many(batch).await {
            anyhow::ensure!(v? == revoke_core::Verdict::Confirmed, "not confirmed");
        }
    }
    let secs = t.elapsed().as_secs_f64();
    Ok((secs, slapd.op_counts()?.since(&c0)))
}

fn vm_hwm_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Resets the peak RSS to the current RSS (Linux `clear_refs` 5), so the peak measured is the
/// offboarding's, not the seeding's.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn ops(c: &OpCounts) -> u64 {
    c.search + c.compare + c.mutations()
}

fn per_leaver(c: &OpCounts, n: usize) -> String {
    let n = n as f64;
    format!(
        "{:.2} (search {:.2}, compare {:.2}, modify {:.2}, delete {:.2}, modrdn {:.2}; binds {}, entries returned {:.1})",
        ops(c) as f64 / n,
        c.search as f64 / n,
        c.compare as f64 / n,
        c.modify as f64 / n,
        c.delete as f64 / n,
        c.modrdn as f64 / n,
        c.bind,
        c.entries as f64 / n,
    )
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let leavers = shared::leavers_arg();
    shared::sql_log_from_env()?;

    let groups = groups(leavers);
    let n_groups = groups.iter().map(Vec::len).sum::<usize>();
    let t = Instant::now();
    let ours = Slapd::start()?;
    let theirs = Slapd::start()?;
    let alone = Slapd::start()?;
    {
        let ldif = directory(leavers, &groups);
        ours.add_ldif(&ldif)?;
        theirs.add_ldif(&ldif)?;
        alone.add_ldif(&ldif)?;
    }
    eprintln!(
        "seeded two slapds with {leavers} leavers in {n_groups} groups in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    // The admin's way: one ldapmodify -c of the prepared LDIF.
    let changes = bulk_changes(leavers, &groups);
    let b0 = theirs.op_counts()?;
    let bulk = theirs.bulk_modify(&changes)?;
    let bulk_ops = theirs.op_counts()?.since(&b0);
    drop(changes);
    anyhow::ensure!(
        bulk.exit_ok && bulk.failed == 0,
        "ldapmodify -c refused {} changes",
        bulk.failed
    );
    clean(&theirs, n_groups)?;

    reset_peak();
    let (alone_secs, alone_ops) = connector_alone(&alone, leavers).await?;
    let alone_peak = vm_hwm_mib();
    clean(&alone, n_groups)?;
    drop(alone);
    if std::env::args().any(|a| a == "--connector-only") {
        // Without the engine: the admin's way and the connector alone, side by side.
        println!(
            "{leavers} leavers, {n_groups} groups: ldapmodify -c {:.2} s, {:.2} ops/leaver, {} KiB peak; \
             the LDAP connector alone {alone_secs:.2} s ({:.2}x), {} (peak RSS of the bench process {alone_peak:.1} MiB)",
            bulk.wall.as_secs_f64(),
            ops(&bulk_ops) as f64 / leavers as f64,
            bulk.max_rss_kib.unwrap_or(0),
            alone_secs / bulk.wall.as_secs_f64(),
            per_leaver(&alone_ops, leavers),
        );
        return Ok(());
    }

    // revoked: discovery, plan, apply, verify.
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("pw"), Slapd::ROOT_PW)?;
    let config = revoke_config::load_str(&format!(
        "data_dir = \"{data}\"\n[executor]\nconcurrency = 8\n{connector}",
        data = dir.path().display(),
        connector = shared::ldap_connector_toml(&ours.url(), &dir.path().join("pw"))
    ))?;
    let registry = Registry::new().with(revoke_connector_ldap::LdapFactory);
    registry.validate(&config)?;
    let connectors = registry.build(&config)?;
    // Effective long ago: retention is over, so every phase (delete included) runs in this pass.
    let effective = Utc::now() - chrono::Duration::days(60);
    let job = |i: usize| job(i, effective);
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&config.store_url()).await?);

    reset_peak();
    let rss_before = vm_hwm_mib();
    let c0 = ours.op_counts()?;
    let t = Instant::now();
    let jobs: Vec<Job> = (0..leavers).map(job).collect();
    let discoveries = discover(&config, &connectors, &jobs).await?;
    let plan = plan_jobs(
        &config,
        &connectors,
        jobs,
        &discoveries,
        PlanId("bench".into()),
        Utc::now(),
    )?;
    let rss_discovered = vm_hwm_mib();
    drop(discoveries);
    let plan_secs = t.elapsed().as_secs_f64();
    let rss_planned = vm_hwm_mib();
    let exec = Executor::new(store.clone(), connectors.clone(), &config, "bench");
    let t_apply = Instant::now();
    exec.record(&plan).await?;
    let rss_recorded = vm_hwm_mib();
    let summary = exec.run_plan(&plan.id).await?;
    let apply_secs = t_apply.elapsed().as_secs_f64();
    let wall = t.elapsed().as_secs_f64();
    let peak = vm_hwm_mib();
    let c1 = ours.op_counts()?;
    let actions = plan.actions.len();
    anyhow::ensure!(
        !summary.has_problems() && summary.done == actions,
        "not every action succeeded: {summary:?}"
    );
    anyhow::ensure!(
        actions == leavers * 5,
        "expected 5 actions per leaver, found {actions}"
    );
    clean(&ours, n_groups)?;
    let our_ops = c1.since(&c0);

    // Again: the same plan (everything recorded as done), then a new plan of the same leavers.
    let again = exec.run_plan(&plan.id).await?;
    let c2 = ours.op_counts()?;
    let jobs: Vec<Job> = (0..leavers).map(job).collect();
    let discoveries = discover(&config, &connectors, &jobs).await?;
    let rerun = ours.op_counts()?.since(&c1);
    anyhow::ensure!(
        again.done == actions && !again.has_problems(),
        "the rerun changed the summary: {again:?}"
    );
    anyhow::ensure!(
        rerun.mutations() == 0,
        "a rerun and a new discovery must send no write: {rerun:?}"
    );
    let left = discoveries.iter().filter(|d| d.found).count();
    anyhow::ensure!(
        left == 0,
        "a new discovery after the offboarding must find nobody (a new plan would be empty), found {left}"
    );
    let _ = c2;

    let bulk_secs = bulk.wall.as_secs_f64();
    let bulk_rss = bulk.max_rss_kib.map(|k| k as f64 / 1024.0);
    let ours_per = ops(&our_ops) as f64 / leavers as f64;
    let bulk_per = ops(&bulk_ops) as f64 / leavers as f64;
    println!(
        "{leavers} leavers, each in 3 groups of 50-500 members ({n_groups} groups: groupOfNames, groupOfUniqueNames, posixGroup), one fresh slapd each, measured in this run:"
    );
    println!("| | wall | LDAP ops per leaver | writes per leaver | peak RSS |");
    println!("|---|---|---|---|---|");
    println!(
        "| revoked: discover + plan + apply + verify | {wall:.2} s (plan {plan_secs:.2} s, apply and verify {apply_secs:.2} s) | {ours_per:.2} | {:.2} | {peak:.1} MiB (before: {rss_before:.1}) |",
        our_ops.mutations() as f64 / leavers as f64
    );
    println!(
        "| one `ldapmodify -c` of the prepared LDIF | {bulk_secs:.2} s | {bulk_per:.2} | {:.2} | {} |",
        bulk_ops.mutations() as f64 / leavers as f64,
        bulk_rss.map_or("n/a".into(), |m| format!("{m:.1} MiB"))
    );
    println!(
        "| the LDAP connector alone (no engine, no store; 8 actions at once) | {alone_secs:.2} s | {:.2} | {:.2} | |",
        ops(&alone_ops) as f64 / leavers as f64,
        alone_ops.mutations() as f64 / leavers as f64,
    );
    println!(
        "| ratio revoked / ldapmodify | {:.2}x | {:.2}x | {:.2}x | {} |",
        wall / bulk_secs,
        ours_per / bulk_per,
        our_ops.mutations() as f64 / bulk_ops.mutations().max(1) as f64,
        bulk_rss.map_or("n/a".into(), |m| format!("{:.1}x", peak / m))
    );
    println!("revoked LDAP per leaver: {}", per_leaver(&our_ops, leavers));
    println!(
        "revoked peak RSS by stage: {rss_before:.1} MiB before, {rss_discovered:.1} after discovery and planning, {rss_planned:.1} once the discoveries are dropped, {rss_recorded:.1} after recording the plan, {peak:.1} after apply and verify"
    );
    println!(
        "ldapmodify LDAP per leaver: {}",
        per_leaver(&bulk_ops, leavers)
    );
    println!(
        "rerun of the plan and a new discovery of the same leavers: {} writes, {} searches",
        rerun.mutations(),
        rerun.search
    );
    anyhow::ensure!(
        ours_per <= OPS_BOUND,
        "expected at most {OPS_BOUND} LDAP operations per leaver, found {ours_per:.2}"
    );
    Ok(())
}
