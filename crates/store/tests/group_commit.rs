//! Intake's group commit (`JobQueue::submit_jobs`) against the one-at-a-time path
//! (`JobQueue::submit_job`), on both backends: a batch large enough to cross every chunk size of
//! the multi-row statements, from several sources, with redeliveries inside the batch and of
//! earlier events, body conflicts, events without an id, and the blast-radius guard holding jobs
//! in batches of two sources, must give every job the same result, leave the same rows and write
//! the same audit entries (the same chain, hash for hash) as submitting each job on its own in
//! the same order.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use revoke_core::{Job, JobId, Risk, Subject};
use revoke_store::{BlastGuard, JobState, NewJob, PostgresStore, SqliteStore, Store, StoreError};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 9, 0, 0).single().unwrap()
}

async fn sqlite(dir: &tempfile::TempDir, name: &str) -> Arc<dyn Store> {
    let url = format!("sqlite://{}/{name}.db", dir.path().display());
    Arc::new(SqliteStore::open(&url).await.unwrap())
}

async fn postgres() -> Arc<dyn Store> {
    let url = tokio::task::spawn_blocking(|| revoke_testkit::Postgres::shared().fresh_database())
        .await
        .unwrap()
        .expect("a fresh postgres database (postgres tests fail, never skip, without one)");
    Arc::new(PostgresStore::open(&url).await.unwrap())
}

/// Job `n` of `source`, for event `event` (none: no event id) with body `body`.
fn job(n: usize, source: &str, event: Option<String>, body: &str) -> (NewJob, String) {
    let received = t0() + chrono::Duration::milliseconds(n as i64);
    let new = NewJob {
        job: Job {
            id: JobId(format!("job-{n:04}")),
            subject: Subject {
                employee_id: Some(format!("E{n}")),
                email: Some(format!("Person{n}@Example.org")),
                ..Subject::new(format!("person{n}"))
            },
            reason: "left".into(),
            effective_at: received,
            risk: if n.is_multiple_of(7) {
                Risk::High
            } else {
                Risk::Standard
            },
            source: source.into(),
            requested_by: format!("{source} event"),
            policy: "default".into(),
        },
        source_event_id: event,
        event: Some(serde_json::json!({ "n": n, "department": format!("d{}", n % 3) })),
        body_sha256: Some(body.repeat(32)),
        received_at: received,
        due_at: received,
    };
    (new, format!("intake:{source}"))
}

/// Events received before the batch: some of them come again in it.
fn earlier() -> Vec<(NewJob, String)> {
    (0..30)
        .map(|n| job(n, ["hr", "okta"][n % 2], Some(format!("ev-{n}")), "ab"))
        .collect()
}

/// 150 jobs: mostly new, some redeliveries of earlier events and of events earlier in the batch
/// (same body: duplicates; another body: conflicts), some without an event id.
fn batch() -> Vec<(NewJob, String)> {
    let sources = ["hr", "okta", "import"];
    (100..250)
        .map(|n| {
            let source = sources[n % 3];
            match n % 10 {
                // A redelivery of an earlier event of the same source.
                1 => {
                    let e = (n / 10) % 30;
                    let same = ["hr", "okta"][e % 2];
                    let body = if n % 20 == 1 { "ab" } else { "cd" };
                    job(n, same, Some(format!("ev-{e}")), body)
                }
                // An event of this batch again (sent 4 jobs earlier, same source when n % 3 agrees).
                5 => job(n, sources[(n - 4) % 3], Some(format!("ev-{}", n - 4)), "ab"),
                // Another body for an event of this batch.
                6 => job(n, sources[(n - 5) % 3], Some(format!("ev-{}", n - 5)), "ef"),
                // No event id (API jobs without an idempotency key).
                8 => job(n, source, None, "ab"),
                _ => job(n, source, Some(format!("ev-{n}")), "ab"),
            }
        })
        .collect()
}

fn describe(r: &Result<revoke_store::Submitted, StoreError>) -> String {
    match r {
        Ok(s) => format!(
            "{} {} dup={} recent={}",
            s.job_id, s.state, s.duplicate, s.recent_jobs
        ),
        Err(StoreError::BodyConflict(c)) => format!(
            "conflict {} {} first={:?} {} {}",
            c.source, c.event_id, c.first_job_id, c.first_body_sha256, c.body_sha256
        ),
        Err(e) => format!("error {e}"),
    }
}

/// Everything a store holds about intake, in a comparable form.
async fn state(store: &Arc<dyn Store>) -> (Vec<String>, Vec<String>, Vec<String>) {
    let jobs = store
        .queued_jobs(None, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|q| {
            format!(
                "{} {} {:?} {:?} {:?}",
                q.job.id, q.state, q.source_event_id, q.batch_id, q.note
            )
        })
        .collect();
    let batches = store
        .batches(false, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|b| {
            format!(
                "{} {} {} {}",
                b.batch_id, b.source, b.held, b.awaiting_approval
            )
        })
        .collect();
    let audit = store
        .audit_log()
        .await
        .unwrap()
        .into_iter()
        .map(|e| format!("{} {} {:?} {} {}", e.seq, e.kind, e.job_id, e.data, e.hash))
        .collect();
    (jobs, batches, audit)
}

async fn same_as_one_at_a_time(grouped: Arc<dyn Store>, single: Arc<dyn Store>) {
    let guard = BlastGuard {
        max_jobs: 60,
        window: Duration::from_secs(3600),
    };
    let now = t0() + chrono::Duration::seconds(1);
    for store in [&grouped, &single] {
        for (new, actor) in earlier() {
            store.submit_job(&new, guard, &actor, t0()).await.unwrap();
        }
    }
    let batch = batch();
    let results = grouped.submit_jobs(&batch, guard, now).await.unwrap();
    let mut expected = Vec::new();
    for (new, actor) in &batch {
        expected.push(single.submit_job(new, guard, actor, now).await);
    }
    let got: Vec<String> = results.iter().map(describe).collect();
    let want: Vec<String> = expected.iter().map(describe).collect();
    assert_eq!(got, want);
    // The batch has every case in it.
    assert!(got.iter().any(|r| r.contains("dup=true")), "{got:#?}");
    assert!(got.iter().any(|r| r.starts_with("conflict")), "{got:#?}");
    assert!(
        got.iter().any(|r| r.contains("awaiting_approval")),
        "{got:#?}"
    );
    assert!(got.iter().any(|r| r.contains(" scheduled ")), "{got:#?}");
    let (jobs, batches, audit) = state(&grouped).await;
    let (want_jobs, want_batches, want_audit) = state(&single).await;
    assert_eq!(jobs, want_jobs);
    assert_eq!(batches, want_batches);
    assert_eq!(audit, want_audit);
    assert!(
        batches.len() >= 2,
        "held jobs of several sources: {batches:?}"
    );
    assert_eq!(
        revoke_store::verify_chain(&grouped.audit_log().await.unwrap()),
        vec![]
    );
    // The batch again (its events with an id; a job without one would be a new job with an id
    // already recorded, which fails the whole batch): every job is a duplicate or a conflict,
    // as one at a time, and nothing is written.
    let batch: Vec<_> = batch
        .into_iter()
        .filter(|(new, _)| new.source_event_id.is_some())
        .collect();
    let again = grouped.submit_jobs(&batch, guard, now).await.unwrap();
    let mut expected = Vec::new();
    for (new, actor) in &batch {
        expected.push(single.submit_job(new, guard, actor, now).await);
    }
    assert_eq!(
        again.iter().map(describe).collect::<Vec<_>>(),
        expected.iter().map(describe).collect::<Vec<_>>()
    );
    assert!(again.iter().all(|r| !matches!(r, Ok(s) if !s.duplicate)));
    assert_eq!(
        state(&grouped).await,
        (jobs, batches, audit),
        "a redelivered batch writes nothing"
    );
    assert!(again
        .iter()
        .any(|r| matches!(r, Ok(s) if s.state == JobState::AwaitingApproval)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_group_commit_is_one_at_a_time_in_order() {
    let dir = tempfile::tempdir().unwrap();
    same_as_one_at_a_time(sqlite(&dir, "grouped").await, sqlite(&dir, "single").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_group_commit_is_one_at_a_time_in_order() {
    same_as_one_at_a_time(postgres().await, postgres().await).await;
}
