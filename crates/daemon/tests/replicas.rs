//! Several `revoked` processes on one Postgres queue: no action runs twice, no job is planned
//! twice, and a replica killed mid-run loses nothing (another takes its leases over).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use revoke_testkit::{Postgres, Slapd, DEMO_LDIF};
use serde_json::json;

fn replicas_share_the_queue(n_replicas: usize, leavers: usize) {
    let slapd = Slapd::start().expect("slapd starts");
    slapd.add_ldif(DEMO_LDIF).unwrap();
    slapd.add_ldif(&leavers_ldif(leavers)).unwrap();
    let pg = Postgres::shared()
        .fresh_database()
        .expect("a fresh postgres database");
    // Slow the run down a little (one action at a time per replica and connector) so the kill
    // lands while actions are in flight.
    let setup = Setup::new(
        &slapd,
        Some(&pg),
        "concurrency = 1\n[guard]\nmax_jobs = 0\n",
    );
    let mut daemons: Vec<Daemon> = (0..n_replicas)
        .map(|i| {
            Daemon::start(
                &setup.config,
                &setup.dir.path().join(format!("replica-{i}.log")),
            )
        })
        .collect();
    let c = client();
    let before = slapd.op_counts().unwrap();
    let mut jobs = Vec::new();
    for i in 0..leavers {
        // Spread submissions over every replica.
        let d = &daemons[i % n_replicas];
        let (s, a) = c.post(d, "/api/v1/jobs", Some(OPERATOR_TOKEN), json!({ "username": format!("u{i}"), "high_risk": true, "idempotency_key": format!("k{i}") }));
        assert_eq!(s, 202, "{a}");
        jobs.push(a["job_id"].as_str().unwrap().to_string());
    }
    // The same key at another replica: the same job.
    let (s, a) = c.post(
        &daemons[n_replicas - 1],
        "/api/v1/jobs",
        Some(OPERATOR_TOKEN),
        json!({ "username": "u0", "high_risk": true, "idempotency_key": "k0" }),
    );
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["job_id"], jobs[0].as_str());

    wait_until("the first mutations", Duration::from_secs(60), || {
        slapd.op_counts().unwrap().since(&before).mutations() >= 4
    });
    // Kill one replica without warning, in the middle of the run.
    let victim = daemons.remove(0);
    victim.kill9();
    let survivor = &daemons[0];
    for job in &jobs {
        c.wait_job(survivor, job, "contained and revoked", |j| {
            phases_done(j, &["contain", "revoke"])
        });
    }
    // Every DN was modified exactly once: no action ran twice, none was lost.
    let per_dn = mutations_per_dn(&slapd);
    for i in 0..leavers {
        for dn in [
            format!("mod uid=u{i},ou=people,dc=example,dc=org"),
            format!("mod cn=g{i},ou=groups,dc=example,dc=org"),
        ] {
            assert_eq!(
                per_dn.get(&dn).copied(),
                Some(1),
                "{dn} modified exactly once: {per_dn:#?}"
            );
        }
    }
    // Each job was planned exactly once, and the audit chain is one intact line.
    for job in &jobs {
        let ev = c.get_json(survivor, &format!("/api/v1/jobs/{job}/evidence"));
        let planned = ev["audit"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "plan.recorded")
            .count();
        assert_eq!(planned, 1, "job {job} planned once");
        assert_eq!(ev["audit_chain_intact"], true);
    }
    // More than one replica did the work.
    let actors: std::collections::BTreeSet<String> = jobs
        .iter()
        .flat_map(|job| {
            let ev = c.get_json(survivor, &format!("/api/v1/jobs/{job}/evidence"));
            ev["actions"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|a| a["acted_by"].as_str().map(str::to_string))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        actors.len() >= 2,
        "work was shared between replicas: {actors:?}"
    );
    for d in daemons {
        assert!(d.terminate().success());
    }
}

#[test]
fn two_replicas_share_one_queue_and_survive_a_kill() {
    replicas_share_the_queue(2, 30);
}

#[test]
fn three_replicas_share_one_queue_and_survive_a_kill() {
    replicas_share_the_queue(3, 45);
}
