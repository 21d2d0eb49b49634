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

/// The console's sessions live in the shared store: a browser signed in at one replica is signed
/// in at every other (a load balancer without affinity), and signing out at one ends it at all.
#[test]
fn a_console_session_signed_in_at_one_replica_works_at_another() {
    let slapd = Slapd::start().expect("slapd starts");
    slapd.add_ldif(DEMO_LDIF).unwrap();
    let pg = Postgres::shared()
        .fresh_database()
        .expect("a fresh postgres database");
    let setup = Setup::new(&slapd, Some(&pg), "");
    let a = Daemon::start(&setup.config, &setup.dir.path().join("replica-a.log"));
    let b = Daemon::start(&setup.config, &setup.dir.path().join("replica-b.log"));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let set_cookie = |r: &reqwest::blocking::Response, name: &str| -> String {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next()?.split_once('='))
            .find(|(k, v)| *k == name && !v.is_empty())
            .map(|(_, v)| v.to_string())
            .unwrap_or_else(|| panic!("no {name} cookie in {:?}", r.headers()))
    };
    let csrf_of = |html: &str| -> String {
        let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field");
        let rest = &html[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_string()
    };
    // Sign in at replica a.
    let page = http.get(format!("{}/ui/login", a.base)).send().unwrap();
    assert_eq!(page.status(), 200);
    let login = set_cookie(&page, "revoked_login");
    let r = http
        .post(format!("{}/ui/login", a.base))
        .header("cookie", format!("revoked_login={login}"))
        .header("origin", a.base.clone())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={login}&token={OPERATOR_TOKEN}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    let session = format!("revoked_session={}", set_cookie(&r, "revoked_session"));
    // Replica b knows the session; its page's forms carry the session's CSRF token.
    let jobs = http
        .get(format!("{}/ui/jobs", b.base))
        .header("cookie", session.clone())
        .send()
        .unwrap();
    assert_eq!(jobs.status(), 200, "replica b sends a's session to sign in");
    let csrf = csrf_of(&jobs.text().unwrap());
    // Sign out at b: a no longer knows it either.
    let out = http
        .post(format!("{}/ui/logout", b.base))
        .header("cookie", session.clone())
        .header("origin", b.base.clone())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .unwrap();
    assert_eq!(out.status(), 303);
    let after = http
        .get(format!("{}/ui/jobs", a.base))
        .header("cookie", session)
        .send()
        .unwrap();
    assert_eq!(after.status(), 303, "signed out everywhere");
    assert_eq!(after.headers()["location"], "/ui/login");
}
