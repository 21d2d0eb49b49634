//! `GET /api/v1/jobs` paging and filters, and a resent event id with another body, against the
//! real `revoked` binary.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeSet, HashMap};

use common::*;
use revoke_testkit::Slapd;
use serde_json::{json, Value};

/// Far enough ahead that no job of these tests is ever due (nothing is planned or applied).
const LATER: &str = "2099-01-01T00:00:00Z";

fn daemon(slapd: &Slapd) -> (Setup, Daemon) {
    // No blast-radius guard: 1,500 jobs in a minute would otherwise be held.
    let setup = Setup::new(slapd, None, "[guard]\nmax_jobs = 0\n");
    let d = Daemon::start(&setup.config, &setup.dir.path().join("revoked.log"));
    (setup, d)
}

/// A GET with the read token: status, the `Link rel="next"` target, and the JSON body.
fn get_page(c: &Client, d: &Daemon, path: &str) -> (u16, Option<String>, Value) {
    let r = c
        .http
        .get(d.url(path))
        .bearer_auth(READ_TOKEN)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let next = r
        .headers()
        .get("link")
        .map(|v| v.to_str().unwrap().to_string())
        .map(|l| {
            assert!(l.ends_with(">; rel=\"next\""), "{l}");
            l.trim_start_matches('<')
                .trim_end_matches(">; rel=\"next\"")
                .to_string()
        });
    let text = r.text().unwrap();
    (
        status,
        next,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Every job id a listing gives, following `Link` from `path`; `between` runs after the first
/// page. Fails if a page repeats a job.
fn list_all(c: &Client, d: &Daemon, path: &str, mut between: impl FnMut()) -> Vec<Value> {
    let mut all = Vec::new();
    let mut ids = BTreeSet::new();
    let mut next = Some(path.to_string());
    let mut pages = 0;
    while let Some(p) = next {
        let (status, n, body) = get_page(c, d, &p);
        assert_eq!(status, 200, "GET {p}: {body}");
        for j in body.as_array().unwrap() {
            let id = j["job_id"].as_str().unwrap().to_string();
            assert!(
                ids.insert(id.clone()),
                "job {id} listed twice (page {pages})"
            );
            all.push(j.clone());
        }
        if pages == 0 {
            between();
        }
        pages += 1;
        assert!(pages < 1000, "paging never ends");
        next = n;
    }
    all
}

fn ids(jobs: &[Value]) -> BTreeSet<String> {
    jobs.iter()
        .map(|j| j["job_id"].as_str().unwrap().to_string())
        .collect()
}

fn submit(c: &Client, d: &Daemon, i: usize) -> String {
    let (status, v) = c.post(
        d,
        "/api/v1/jobs",
        Some(OPERATOR_TOKEN),
        json!({
            "employee_id": format!("E-{i:04}"),
            "email": format!("leaver{i}@example.org"),
            "username": format!("leaver{i}"),
            "effective_at": LATER,
            "reason": "resigned",
        }),
    );
    assert_eq!(status, 202, "{v}");
    v["job_id"].as_str().unwrap().to_string()
}

#[test]
fn fifteen_hundred_jobs_are_listed_once_across_pages_with_filters() {
    let slapd = Slapd::start().unwrap();
    let (_setup, d) = daemon(&slapd);
    let c = client();
    // 1,500 jobs through the API, four clients at once.
    let submitted: HashMap<usize, String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let (c, d) = (&c, &d);
                s.spawn(move || {
                    (0..1500)
                        .filter(|i| i % 4 == w)
                        .map(|i| (i, submit(c, d, i)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let every: BTreeSet<String> = submitted.values().cloned().collect();
    assert_eq!(every.len(), 1500);
    // Three jobs come from a webhook source, for the source filter.
    let mut from_hr = BTreeSet::new();
    for i in 0..3 {
        let delivery = Delivery::termination(
            json!({ "employee_id": format!("H-{i}"), "effective_at": LATER }),
        );
        let (status, v) = c.deliver(&d, &delivery, WEBHOOK_SECRET);
        assert_eq!(status, 202, "{v}");
        from_hr.insert(v["jobs"][0]["job_id"].as_str().unwrap().to_string());
    }

    // The default page is 100 and says where the next one is.
    let (status, next, first) = get_page(&c, &d, "/api/v1/jobs");
    assert_eq!(status, 200, "{first}");
    assert_eq!(first.as_array().unwrap().len(), 100);
    assert!(next.unwrap().contains("cursor="));

    // Every job exactly once across pages of 1000 (the largest) and of 97, newest first.
    for limit in [1000, 97] {
        let all = list_all(&c, &d, &format!("/api/v1/jobs?limit={limit}"), || {});
        assert_eq!(all.len(), 1503, "limit {limit}");
        let times: Vec<&str> = all
            .iter()
            .map(|j| j["received_at"].as_str().unwrap())
            .collect();
        let parsed: Vec<chrono::DateTime<chrono::Utc>> =
            times.iter().map(|t| t.parse().unwrap()).collect();
        assert!(parsed.windows(2).all(|w| w[0] >= w[1]), "newest first");
    }

    // A job submitted between two page reads neither shifts nor repeats what comes next.
    let mut late = None;
    let all = list_all(&c, &d, "/api/v1/jobs?source=api&limit=250", || {
        late = Some(submit(&c, &d, 9999));
    });
    assert_eq!(ids(&all), every, "the api jobs, each once, none missing");
    let late = late.unwrap();
    assert!(!ids(&all).contains(&late));
    let (_, _, newest) = get_page(&c, &d, "/api/v1/jobs?limit=1");
    assert_eq!(
        newest[0]["job_id"],
        late.as_str(),
        "the late job is the newest"
    );

    // Filters: source, subject (employee id, email, username; exact), state, time.
    assert_eq!(
        ids(&list_all(&c, &d, "/api/v1/jobs?source=hr", || {})),
        from_hr
    );
    for subject in ["E-0042", "LEAVER42%40example.org", "leaver42"] {
        let got = list_all(&c, &d, &format!("/api/v1/jobs?subject={subject}"), || {});
        assert_eq!(
            ids(&got),
            BTreeSet::from([submitted[&42].clone()]),
            "{subject}"
        );
    }
    assert!(list_all(&c, &d, "/api/v1/jobs?subject=leaver042", || {}).is_empty());
    let mut cancelled = BTreeSet::new();
    for i in (0..1500).step_by(150) {
        let (status, v) = c.post(
            &d,
            &format!("/api/v1/jobs/{}/cancel", submitted[&i]),
            Some(OPERATOR_TOKEN),
            json!({ "reason": "rehired" }),
        );
        assert_eq!(status, 200, "{v}");
        cancelled.insert(submitted[&i].clone());
    }
    let got = list_all(&c, &d, "/api/v1/jobs?state=cancelled&limit=3", || {});
    assert_eq!(ids(&got), cancelled);
    let got = list_all(
        &c,
        &d,
        "/api/v1/jobs?state=cancelled,scheduled&limit=1000",
        || {},
    );
    assert_eq!(got.len(), 1504);
    let got = list_all(
        &c,
        &d,
        "/api/v1/jobs?state=scheduled&state=cancelled&source=api&subject=E-0150",
        || {},
    );
    assert_eq!(ids(&got), BTreeSet::from([submitted[&150].clone()]));
    // since (inclusive) .. until (exclusive): exactly the jobs received in between.
    let all = list_all(&c, &d, "/api/v1/jobs?limit=1000", || {});
    let since = all[1200]["received_at"].as_str().unwrap().to_string();
    let until = all[300]["received_at"].as_str().unwrap().to_string();
    let time = |t: &str| t.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    let want: BTreeSet<String> = all
        .iter()
        .filter(|j| {
            let t = time(j["received_at"].as_str().unwrap());
            t >= time(&since) && t < time(&until)
        })
        .map(|j| j["job_id"].as_str().unwrap().to_string())
        .collect();
    assert!(want.len() >= 800, "{}", want.len());
    let enc = |t: &str| t.replace('+', "%2B").replace(':', "%3A");
    let got = list_all(
        &c,
        &d,
        &format!(
            "/api/v1/jobs?since={}&until={}&limit=333",
            enc(&since),
            enc(&until)
        ),
        || {},
    );
    assert_eq!(ids(&got), want);

    // Bad parameters: a JSON 400 that names the parameter.
    for (query, name) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("state=done", "state"),
        ("cursor=not-a-cursor", "cursor"),
        ("since=yesterday", "since"),
        ("subject=", "subject"),
        ("colour=red", "colour"),
    ] {
        let (status, _, body) = get_page(&c, &d, &format!("/api/v1/jobs?{query}"));
        assert_eq!(status, 400, "{query}: {body}");
        let error = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{query}: {body}"));
        assert!(error.starts_with(&format!("{name}:")), "{query}: {error}");
    }
}

/// The store's view of a job, to check it did not change.
fn job_row(c: &Client, d: &Daemon, id: &str) -> Value {
    let mut j = c.get_json(d, &format!("/api/v1/jobs/{id}"));
    j.as_object_mut().unwrap().remove("progress");
    j
}

#[test]
fn a_resent_event_id_with_another_body_is_409_and_the_first_job_stands() {
    let slapd = Slapd::start().unwrap();
    let (_setup, d) = daemon(&slapd);
    let c = client();

    // A webhook: the same body again is a duplicate; another, validly signed body is a 409.
    let first = Delivery::termination(json!({ "employee_id": "E-1", "effective_at": LATER }));
    let (status, v) = c.deliver(&d, &first, WEBHOOK_SECRET);
    assert_eq!(status, 202, "{v}");
    let job = v["jobs"][0]["job_id"].as_str().unwrap().to_string();
    let before = job_row(&c, &d, &job);
    let (status, v) = c.deliver(&d, &first, WEBHOOK_SECRET);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["jobs"][0]["job_id"], job.as_str());
    assert_eq!(v["jobs"][0]["duplicate"], true);
    let changed = Delivery {
        id: first.id.clone(),
        timestamp: first.timestamp,
        body: json!({
            "type": "employee.terminated",
            "data": { "employee_id": "E-2", "effective_at": LATER }
        })
        .to_string(),
    };
    let (status, v) = c.deliver(&d, &changed, WEBHOOK_SECRET);
    assert_eq!(status, 409, "{v}");
    let error = v["error"].as_str().unwrap();
    for want in [
        sha256_hex(&first.body),
        sha256_hex(&changed.body),
        job.clone(),
    ] {
        assert!(error.contains(&want), "{error} names {want}");
    }
    assert_eq!(job_row(&c, &d, &job), before, "the first job is unchanged");
    let listed = c.get_json(&d, "/api/v1/jobs");
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "no second job: {listed}"
    );
    // Counted and logged with both hashes.
    let (_, metrics) = c.get(&d, "/metrics", None);
    assert!(
        metrics.contains(r#"revoke_webhooks_received_total{source="hr",result="conflict"} 1"#),
        "{metrics}"
    );
    let log = d.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("same event id with a different body refused"))
        .unwrap_or_else(|| panic!("a warning is logged:\n{log}"));
    for want in [
        &first.id,
        &sha256_hex(&first.body),
        &sha256_hex(&changed.body),
    ] {
        assert!(line.contains(want.as_str()), "{line} names {want}");
    }

    // A cancellation resent with another body: 409 as well.
    let cancel = Delivery::cancellation(json!({ "employee_id": "E-1" }));
    let (status, v) = c.deliver(&d, &cancel, WEBHOOK_SECRET);
    assert!(status == 202 || status == 200, "{status} {v}");
    let (status, v) = c.deliver(&d, &cancel, WEBHOOK_SECRET);
    assert_eq!(status, 200, "{v}");
    let recancel = Delivery {
        id: cancel.id.clone(),
        timestamp: cancel.timestamp,
        body: json!({
            "type": "employee.termination_cancelled",
            "data": { "employee_id": "E-1", "reason": "another body" }
        })
        .to_string(),
    };
    let (status, v) = c.deliver(&d, &recancel, WEBHOOK_SECRET);
    assert_eq!(status, 409, "{v}");
    let error = v["error"].as_str().unwrap();
    assert!(
        error.contains(&sha256_hex(&cancel.body)) && error.contains(&sha256_hex(&recancel.body)),
        "{error}"
    );

    // The API's idempotency key: the same body is the first job, another body a 409.
    let body = json!({ "employee_id": "E-3", "effective_at": LATER, "idempotency_key": "k-1" });
    let (status, v) = c.post(&d, "/api/v1/jobs", Some(OPERATOR_TOKEN), body.clone());
    assert_eq!(status, 202, "{v}");
    let api_job = v["job_id"].as_str().unwrap().to_string();
    let (status, v) = c.post(&d, "/api/v1/jobs", Some(OPERATOR_TOKEN), body.clone());
    assert_eq!(
        (status, v["job_id"].as_str(), v["duplicate"].as_bool()),
        (200, Some(api_job.as_str()), Some(true))
    );
    let other = json!({ "employee_id": "E-4", "effective_at": LATER, "idempotency_key": "k-1" });
    let (status, v) = c.post(&d, "/api/v1/jobs", Some(OPERATOR_TOKEN), other.clone());
    assert_eq!(status, 409, "{v}");
    let error = v["error"].as_str().unwrap();
    for want in [
        sha256_hex(&serde_json::to_string(&body).unwrap()),
        sha256_hex(&serde_json::to_string(&other).unwrap()),
        api_job.clone(),
    ] {
        assert!(error.contains(&want), "{error} names {want}");
    }
    assert_eq!(
        c.get_json(&d, &format!("/api/v1/jobs/{api_job}"))["subject"],
        "E-3",
        "the first job is unchanged"
    );
}
