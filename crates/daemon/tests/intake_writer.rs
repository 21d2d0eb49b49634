//! Intake's group commit under concurrency, against the real `revoked` binary: deliveries of the
//! same event racing each other from many connections (so they land in one batch, or in batches
//! committed while an earlier one is still syncing) make one job per event, every copy is
//! answered with that job, another body under the same id is 409, and every answered job is in
//! the store after a kill -9 right after the last answer.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use revoke_testkit::Slapd;
use serde_json::json;

#[test]
fn racing_redeliveries_make_one_job_each_and_every_answered_job_survives_a_kill() {
    let slapd = Slapd::start().unwrap();
    // Nothing is due (effective far ahead) and nothing is held: intake alone.
    let setup = Setup::new(&slapd, None, "[guard]\nmax_jobs = 0\n");
    let d = Daemon::start(&setup.config, &setup.dir.path().join("revoked.log"));
    let events: Vec<Delivery> = (0..60)
        .map(|n| {
            Delivery::termination(json!({
                "employee_id": format!("E{n}"),
                "effective_at": "2099-01-01T00:00:00Z",
            }))
        })
        .collect();
    // Each event three times, from 12 connections at once, in an order that puts copies of one
    // event apart and together; every fifth event also once with another body.
    let mut sends: Vec<(usize, bool)> = Vec::new();
    for round in 0..3 {
        for n in 0..events.len() {
            sends.push(((n * 7 + round * 13) % events.len(), false));
        }
    }
    for n in (0..events.len()).step_by(5) {
        sends.push((n, true));
    }
    let answers: Vec<(usize, bool, u16, serde_json::Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..12)
            .map(|t| {
                let (events, sends) = (&events, &sends);
                let d = &d;
                scope.spawn(move || {
                    let c = client();
                    sends
                        .iter()
                        .skip(t)
                        .step_by(12)
                        .map(|(n, other)| {
                            let e = &events[*n];
                            let delivery = Delivery {
                                id: e.id.clone(),
                                timestamp: e.timestamp,
                                body: if *other {
                                    e.body.replace('E', "X")
                                } else {
                                    e.body.clone()
                                },
                            };
                            let (s, a) = c.deliver(d, &delivery, WEBHOOK_SECRET);
                            (*n, *other, s, a)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut job_of: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    let mut new_jobs = 0;
    for (n, other, status, answer) in &answers {
        if *other {
            // Another body under an id already received (the first copy may still be in flight:
            // then this one is first, and the same-body copies are the conflicts).
            assert!(matches!(status, 202 | 409), "{status} {answer}");
            if *status == 409 {
                continue;
            }
        }
        match status {
            202 => new_jobs += 1,
            200 => {}
            409 => continue,
            other => panic!("event {n}: expected 200, 202 or 409, found {other}: {answer}"),
        }
        assert_eq!(answer["jobs"].as_array().unwrap().len(), 1, "{answer}");
        job_of
            .entry(*n)
            .or_default()
            .insert(answer["jobs"][0]["job_id"].as_str().unwrap().to_string());
    }
    assert_eq!(new_jobs, events.len(), "one new job per event");
    assert_eq!(job_of.len(), events.len());
    for (n, jobs) in &job_of {
        assert_eq!(
            jobs.len(),
            1,
            "event {n}: every copy answered with one job: {jobs:?}"
        );
    }
    // Every answer was given after its batch's commit (and sync): a kill -9 now loses none.
    d.kill9();
    let d = Daemon::start(&setup.config, &setup.dir.path().join("revoked.log"));
    let c = client();
    let listed: BTreeSet<String> = c
        .get_json(&d, "/api/v1/jobs?limit=1000")
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_str().unwrap().to_string())
        .collect();
    let answered: BTreeSet<String> = job_of.values().flatten().cloned().collect();
    assert_eq!(listed, answered);
    assert!(d.terminate().success());
}
