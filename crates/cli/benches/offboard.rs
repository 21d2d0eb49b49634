//! Plan and apply the offboarding of many leavers (each in 3 groups) against a real slapd, on the
//! embedded SQLite store. Reports actions per second, LDAP operations per leaver against the
//! floor, and peak memory.
//!
//! `cargo bench -p revokectl --bench offboard` runs 1,000 leavers; `-- --leavers N` changes that.
//! Under `cargo test --benches` it runs a 20-leaver smoke pass, so CI keeps it working.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use revoke_core::{Job, JobId, PlanId, Risk, Subject};
use revoke_engine::{discover, plan_jobs, Executor, Registry};
use revoke_store::{SqliteStore, Store};
use revoke_testkit::{OpCounts, Slapd};

const GROUPS_PER_KIND: usize = 10;

fn directory(leavers: usize) -> String {
    let mut ldif = String::new();
    let people = "ou=people,dc=example,dc=org";
    for i in 0..leavers {
        let _ = write!(
            ldif,
            "dn: uid=leaver{i:05},{people}\nobjectClass: inetOrgPerson\nuid: leaver{i:05}\ncn: Leaver {i}\nsn: {i}\nuserPassword: pw{i}\n\n"
        );
    }
    let _ = write!(ldif, "dn: uid=stayer,{people}\nobjectClass: inetOrgPerson\nuid: stayer\ncn: Stayer\nsn: Stayer\n\n");
    let members = |g: usize| (0..leavers).filter(move |i| i % GROUPS_PER_KIND == g);
    for g in 0..GROUPS_PER_KIND {
        let _ = writeln!(ldif, "dn: cn=names-{g},ou=groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: names-{g}\nmember: uid=stayer,{people}");
        for i in members(g) {
            let _ = writeln!(ldif, "member: uid=leaver{i:05},{people}");
        }
        let _ = writeln!(ldif, "\ndn: cn=unique-{g},ou=groups,dc=example,dc=org\nobjectClass: groupOfUniqueNames\ncn: unique-{g}\nuniqueMember: uid=stayer,{people}");
        for i in members(g) {
            let _ = writeln!(ldif, "uniqueMember: uid=leaver{i:05},{people}");
        }
        let _ = writeln!(ldif, "\ndn: cn=posix-{g},ou=groups,dc=example,dc=org\nobjectClass: posixGroup\ncn: posix-{g}\ngidNumber: {}\nmemberUid: stayer", 6000 + g);
        for i in members(g) {
            let _ = writeln!(ldif, "memberUid: leaver{i:05}");
        }
        ldif.push('\n');
    }
    ldif
}

fn peak_rss_mib() -> f64 {
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

fn per_leaver(c: &OpCounts, n: usize) -> String {
    let n = n as f64;
    format!(
        "search {:.2}, compare {:.2}, modify {:.2}, delete {:.2}, bind {:.3} (mutations {:.2}, all {:.2})",
        c.search as f64 / n,
        c.compare as f64 / n,
        c.modify as f64 / n,
        c.delete as f64 / n,
        c.bind as f64 / n,
        c.mutations() as f64 / n,
        (c.search + c.compare + c.modify + c.delete + c.add + c.modrdn) as f64 / n
    )
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench");
    let leavers = args
        .iter()
        .position(|a| a == "--leavers")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(if full { 1000 } else { 20 });

    let slapd = Slapd::start()?;
    let t = Instant::now();
    slapd.add_ldif(&directory(leavers))?;
    eprintln!(
        "seeded {leavers} leavers in {} groups in {:.1}s",
        3 * GROUPS_PER_KIND,
        t.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("pw"), Slapd::ROOT_PW)?;
    let config = revoke_config::load_str(&format!(
        r#"data_dir = "{data}"
[executor]
concurrency = 8
[connectors.dir]
kind = "ldap"
url = "{url}"
bind_dn = "{root}"
bind_password_file = "{pw}"
user_base_dn = "ou=people,dc=example,dc=org"
group_base_dn = "ou=groups,dc=example,dc=org"
user_object_class = "inetOrgPerson"
delete_entry = true
"#,
        data = dir.path().display(),
        url = slapd.url(),
        root = Slapd::ROOT_DN,
        pw = dir.path().join("pw").display()
    ))?;
    let registry = Registry::new().with(revoke_connector_ldap::LdapFactory);
    registry.validate(&config)?;
    let connectors = registry.build(&config)?;
    // Effective long ago: retention is over, so every phase (delete included) runs in this pass.
    let effective = Utc::now() - chrono::Duration::days(60);
    let jobs: Vec<Job> = (0..leavers)
        .map(|i| Job {
            id: JobId(format!("job-{i:05}")),
            subject: Subject::new(format!("leaver{i:05}")),
            reason: "bench".into(),
            effective_at: effective,
            risk: Risk::Standard,
            source: "bench".into(),
            requested_by: "bench".into(),
            policy: "default".into(),
        })
        .collect();

    let c0 = slapd.op_counts()?;
    let t = Instant::now();
    let discoveries = discover(&config, &connectors, &jobs).await?;
    let plan = plan_jobs(
        &config,
        &connectors,
        jobs,
        &discoveries,
        PlanId("bench".into()),
        Utc::now(),
    )?;
    let plan_secs = t.elapsed().as_secs_f64();
    let c1 = slapd.op_counts()?;

    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&config.store_url()).await?);
    let exec = Executor::new(store.clone(), connectors, &config, "bench");
    let t = Instant::now();
    exec.record(&plan).await?;
    let summary = exec.run_plan(&plan.id).await?;
    let apply_secs = t.elapsed().as_secs_f64();
    let c2 = slapd.op_counts()?;

    let actions = plan.actions.len();
    anyhow::ensure!(
        !summary.has_problems() && summary.done == actions,
        "not every action succeeded: {summary:?}"
    );
    anyhow::ensure!(
        actions == leavers * 5,
        "expected 5 actions per leaver, found {actions}"
    );
    let plan_ops = c1.since(&c0);
    let apply_ops = c2.since(&c1);
    println!("leavers: {leavers} (3 groups each: groupOfNames, groupOfUniqueNames, posixGroup)");
    println!(
        "plan:  {plan_secs:.2}s, {:.0} leavers/s; LDAP per leaver: {}",
        leavers as f64 / plan_secs,
        per_leaver(&plan_ops, leavers)
    );
    println!(
        "apply: {apply_secs:.2}s, {actions} actions, {:.0} actions/s (apply + verify + store); LDAP per leaver: {}",
        actions as f64 / apply_secs,
        per_leaver(&apply_ops, leavers)
    );
    let total = plan_ops.search
        + plan_ops.compare
        + apply_ops.search
        + apply_ops.compare
        + apply_ops.mutations();
    println!(
        "floor per leaver: 1 search + 1 lock + 3 group modifies + 1 delete = 6 operations; ours: {:.2} operations ({:.2} mutations)",
        total as f64 / leavers as f64,
        apply_ops.mutations() as f64 / leavers as f64
    );
    println!("peak memory (VmHWM): {:.1} MiB", peak_rss_mib());
    Ok(())
}
