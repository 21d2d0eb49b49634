//! The same offboarding two ways, measured in one run on two fresh slapds seeded with the same
//! directory (the one of the `offboard` bench: N leavers, each in a groupOfNames, a
//! groupOfUniqueNames and a posixGroup of 50 to 500 members):
//!
//! - embedded, as `revokectl apply` does it: one discovery, one plan of every leaver, one run;
//! - through the daemon, as HR or `revokectl import --server` does it: `revoked` (in this process,
//!   on its own runtime, on its default SQLite store) receives one job per leaver through its API,
//!   its scheduler claims and plans them, its workers run every action; the clock stops when the
//!   last job has every action done and read back.
//!
//! Reported side by side with the ratio (the goal of issue 14: the daemon within 1.2x of the
//! embedded apply). `cargo bench -p revokectl --bench daemon_path` runs 1,000 leavers;
//! `-- --leavers N` changes that. Under `cargo test --benches` it runs 20 with the same asserts.

#![allow(clippy::unwrap_used, dead_code)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "shared/mod.rs"]
mod shared;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use revoke_core::{Job, PlanId};
use revoke_engine::{discover, plan_jobs, Executor, Registry};
use revoke_store::{SqliteStore, Store};
use revoke_testkit::Slapd;
use sha2::{Digest, Sha256};
use shared::{clean, directory, groups, job, ldap_connector_toml};

const TOKEN: &str = "rvk_bench-operator-token";

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let leavers = shared::leavers_arg();
    shared::sql_log_from_env()?;
    let groups = groups(leavers);
    let n_groups = groups.iter().map(Vec::len).sum::<usize>();
    let embedded_dir = Slapd::start()?;
    let daemon_dir = Slapd::start()?;
    {
        let ldif = directory(leavers, &groups);
        embedded_dir.add_ldif(&ldif)?;
        daemon_dir.add_ldif(&ldif)?;
    }
    let dir = tempfile::tempdir()?;
    let pw = dir.path().join("pw");
    std::fs::write(&pw, Slapd::ROOT_PW)?;
    // Effective long ago: retention is over, so every phase (delete included) runs now.
    let effective = Utc::now() - chrono::Duration::days(60);

    // Embedded: what `revokectl apply` does.
    let embedded_data = dir.path().join("embedded");
    let config = revoke_config::load_str(&format!(
        "data_dir = \"{}\"\n{}",
        embedded_data.display(),
        ldap_connector_toml(&embedded_dir.url(), &pw)
    ))?;
    let registry = Registry::new().with(revoke_connector_ldap::LdapFactory);
    registry.validate(&config)?;
    let connectors = registry.build(&config)?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&config.store_url()).await?);
    let t = Instant::now();
    let jobs: Vec<Job> = (0..leavers).map(|i| job(i, effective)).collect();
    let discoveries = discover(&config, &connectors, &jobs).await?;
    let plan = plan_jobs(
        &config,
        &connectors,
        jobs,
        &discoveries,
        PlanId("bench".into()),
        Utc::now(),
    )?;
    drop(discoveries);
    let exec = Executor::new(store.clone(), connectors, &config, "bench");
    exec.record(&plan).await?;
    let summary = exec.run_plan(&plan.id).await?;
    let embedded_secs = t.elapsed().as_secs_f64();
    let actions = plan.actions.len();
    anyhow::ensure!(
        !summary.has_problems() && summary.done == actions && actions == leavers * 5,
        "embedded: not every action succeeded: {summary:?} of {actions}"
    );
    clean(&embedded_dir, n_groups)?;
    drop(plan);

    // Through the daemon: one job per leaver through the API, planned and run by revoked.
    let daemon_data = dir.path().join("daemon");
    std::fs::create_dir_all(&daemon_data)?;
    let config = revoke_config::load_str(&format!(
        r#"data_dir = "{data}"
[daemon]
listen = "127.0.0.1:0"
shutdown_grace_secs = 1
[guard]
max_jobs = 0
[api.tokens.bench]
sha256 = "{token}"
scope = "operator"
{connector}"#,
        data = daemon_data.display(),
        token = hex::encode(Sha256::digest(TOKEN.as_bytes())),
        connector = ldap_connector_toml(&daemon_dir.url(), &pw)
    ))?;
    let daemon = common::InProcessDaemon::start(config);
    let base = daemon.url();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let t = Instant::now();
    // The API's submissions, 16 at a time (what an HR system's webhooks or an import send).
    let mut ids = Vec::with_capacity(leavers);
    for chunk in (0..leavers).collect::<Vec<_>>().chunks(16) {
        let mut sent = tokio::task::JoinSet::new();
        for &i in chunk {
            let (http, base) = (http.clone(), base.clone());
            sent.spawn(async move {
                let r = http
                    .post(format!("{base}/api/v1/jobs"))
                    .bearer_auth(TOKEN)
                    .json(&serde_json::json!({
                        "username": format!("leaver{i:05}"),
                        "effective_at": effective,
                        "reason": "bench",
                    }))
                    .send()
                    .await?;
                anyhow::ensure!(r.status().as_u16() == 202, "submit: {}", r.status());
                let v: serde_json::Value = r.json().await?;
                Ok::<String, anyhow::Error>(v["job_id"].as_str().unwrap_or_default().to_string())
            });
        }
        while let Some(id) = sent.join_next().await {
            ids.push(id??);
        }
    }
    let submitted_secs = t.elapsed().as_secs_f64();
    // Done when every job's actions are all done and read back. One job is asked about at a
    // time (the next unfinished one), so the polling stays light beside the daemon's work.
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut pending: Vec<String> = ids;
    while let Some(id) = pending.last() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} jobs never finished",
            pending.len()
        );
        let j: serde_json::Value = http
            .get(format!("{base}/api/v1/jobs/{id}"))
            .bearer_auth(TOKEN)
            .send()
            .await?
            .json()
            .await?;
        let acts = j["actions"].as_array().cloned().unwrap_or_default();
        let finished = acts.len() == 5
            && acts
                .iter()
                .all(|a| a["outcome"] == "done" && !a["verdict"].is_null());
        if finished {
            pending.pop();
        } else {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let daemon_secs = t.elapsed().as_secs_f64();
    drop(daemon);
    clean(&daemon_dir, n_groups)?;

    println!(
        "{leavers} leavers, each in 3 groups of 50-500 members, 5 actions each, two fresh slapds, measured in this run:"
    );
    println!("| | wall |");
    println!("|---|---|");
    println!(
        "| embedded (`revokectl apply`: discover, plan, apply, verify) | {embedded_secs:.2} s |"
    );
    println!(
        "| through revoked (API submissions {submitted_secs:.2} s, then the scheduler and workers until every action is done and read back) | {daemon_secs:.2} s |"
    );
    println!(
        "| ratio daemon / embedded (goal: at most 1.2x) | {:.2}x |",
        daemon_secs / embedded_secs
    );
    Ok(())
}
