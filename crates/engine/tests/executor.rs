//! The executor against a scripted connector: retries, retry-after, permanent failures, blocking,
//! concurrency limits, the ledger written before each call, and the journal kept across attempts.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use revoke_core::{
    Action, ActionKey, ActionKind, Connector, ConnectorError, Discovery, Finding, Job, JobId,
    Journal, Outcome, Phase, PlanId, ProposedAction, Risk, Subject, Verdict,
};
use revoke_engine::{discover, plan_jobs, Connectors, Executor};
use revoke_store::{ActionState, SqliteStore, Store};

/// What the test connectors discover: one account holding a grant per target.
fn grants(instance: &str, subject: &Subject, targets: &[String]) -> Discovery {
    Discovery {
        connector: instance.into(),
        subject: subject.id.clone(),
        found: true,
        findings: targets
            .iter()
            .map(|t| Finding {
                connector: instance.into(),
                subject: subject.id.clone(),
                kind: "grant".into(),
                target: t.clone(),
                attrs: BTreeMap::new(),
            })
            .collect(),
        accounts: vec![revoke_core::Account::new(
            "acct",
            "user id",
            subject.id.clone(),
        )],
        notes: Vec::new(),
    }
}

/// A connector whose apply answers come from a script per target; it also checks that the store
/// holds the attempt before the call arrives.
#[derive(Debug, Default)]
struct Scripted {
    targets: Vec<String>,
    script: Mutex<BTreeMap<String, VecDeque<Result<Outcome, ConnectorError>>>>,
    calls: Mutex<Vec<(String, Instant)>>,
    running: AtomicUsize,
    max_running: AtomicUsize,
    store: Mutex<Option<Arc<dyn Store>>>,
    unrecorded_calls: AtomicUsize,
    /// Journaled: apply reads `latest("step")` (kept in `steps_seen`) and, when there is none,
    /// records `step = created` before the scripted answer, like a rotation that made a new key.
    journaled: AtomicBool,
    steps_seen: Mutex<Vec<Option<String>>>,
    /// Milliseconds each apply takes (20 when 0).
    slow_ms: AtomicUsize,
    /// `Journal::attempt` as each call saw it.
    attempts_seen: Mutex<Vec<u32>>,
    /// Once: another executor takes the action over just before the journal entry is recorded.
    steal_lease_once: AtomicBool,
    raw: Mutex<Option<Arc<SqliteStore>>>,
    verified: AtomicUsize,
    /// Reads back in batches (`batch_verification`); each `verify_many` call's size is kept.
    batch: AtomicBool,
    batches: Mutex<Vec<usize>>,
    /// Targets whose read-back does not confirm.
    unconfirmed: Mutex<Vec<String>>,
}

#[async_trait]
impl Connector for Scripted {
    fn instance(&self) -> &str {
        "sys"
    }
    fn kind(&self) -> &'static str {
        "scripted"
    }
    async fn check(&self) -> Result<(), ConnectorError> {
        Ok(())
    }
    async fn discover(&self, subject: &Subject) -> Result<Discovery, ConnectorError> {
        Ok(grants("sys", subject, &self.targets))
    }
    fn plan(&self, _: &Subject, d: &Discovery) -> Vec<ProposedAction> {
        let mut out: Vec<ProposedAction> = d
            .findings
            .iter()
            .filter(|f| f.target != "account")
            .map(|f| ProposedAction {
                kind: ActionKind::from("revoke_grant"),
                target: f.target.clone(),
                params: BTreeMap::new(),
                // `contain:` targets are contained first.
                phase: if f.target.starts_with("contain:") {
                    Phase::Contain
                } else {
                    Phase::Revoke
                },
                after: vec![],
                summary: format!("revoke {}", f.target),
                account: "acct".into(),
                // `delayed:` targets carry a grace period of a week.
                delay: f
                    .target
                    .starts_with("delayed:")
                    .then(|| Duration::from_secs(7 * 86_400)),
            })
            .collect();
        if self.targets.iter().any(|t| t == "account") {
            let after = out
                .iter()
                .map(|p| (p.kind.clone(), p.target.clone()))
                .collect();
            out.push(ProposedAction {
                kind: ActionKind::from("delete_account"),
                target: "account".into(),
                params: BTreeMap::new(),
                phase: Phase::Delete,
                after,
                summary: "delete".into(),
                account: "acct".into(),
                delay: None,
            });
        }
        out
    }
    async fn apply(
        &self,
        action: &Action,
        key: &ActionKey,
        journal: &dyn Journal,
    ) -> Result<Outcome, ConnectorError> {
        let store = self.store.lock().expect("lock").clone().expect("store set");
        let rec = store
            .action(&action.id)
            .await
            .expect("read")
            .expect("recorded");
        if rec.state != ActionState::Running || rec.attempts == 0 || &rec.action.key != key {
            self.unrecorded_calls.fetch_add(1, Ordering::SeqCst);
        }
        self.attempts_seen
            .lock()
            .expect("lock")
            .push(journal.attempt());
        if self.journaled.load(Ordering::SeqCst) {
            let step = journal.latest("step").await?;
            self.steps_seen.lock().expect("lock").push(step.clone());
            if step.is_none() {
                if self.steal_lease_once.swap(false, Ordering::SeqCst) {
                    let raw = self.raw.lock().expect("lock").clone().expect("raw set");
                    raw.execute_raw(&format!(
                        "UPDATE actions SET lease_owner = 'thief', lease_expires_at = 0 WHERE id = '{}'",
                        action.id
                    ))
                    .await
                    .expect("lease stolen");
                }
                journal.record("step", "created").await?;
            }
        }
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        self.calls
            .lock()
            .expect("lock")
            .push((action.target.clone(), Instant::now()));
        let ms = match self.slow_ms.load(Ordering::SeqCst) {
            0 => 20,
            n => n as u64,
        };
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        let next = self
            .script
            .lock()
            .expect("lock")
            .get_mut(&action.target)
            .and_then(VecDeque::pop_front);
        next.unwrap_or(Ok(Outcome::Done))
    }
    async fn verify(&self, _: &Action) -> Result<Verdict, ConnectorError> {
        self.verified.fetch_add(1, Ordering::SeqCst);
        Ok(Verdict::Confirmed)
    }
    async fn verify_many(&self, actions: &[Action]) -> Vec<Result<Verdict, ConnectorError>> {
        self.batches.lock().expect("lock").push(actions.len());
        let unconfirmed = self.unconfirmed.lock().expect("lock").clone();
        actions
            .iter()
            .map(|a| {
                Ok(if unconfirmed.contains(&a.target) {
                    Verdict::NotConfirmed {
                        detail: format!("{} still there", a.target),
                    }
                } else {
                    Verdict::Confirmed
                })
            })
            .collect()
    }
    fn batch_verification(&self) -> bool {
        self.batch.load(Ordering::SeqCst)
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    conn: Arc<Scripted>,
    exec: Executor,
    plan: PlanId,
}

async fn harness(
    targets: &[&str],
    script: Vec<(&str, Vec<Result<Outcome, ConnectorError>>)>,
    extra_config: &str,
) -> Harness {
    harness_with(
        targets,
        script,
        "base_ms = 10\ncap_ms = 40\nmax_attempts = 4\nmax_elapsed_secs = 30",
        extra_config,
    )
    .await
}

/// [`harness`] with its own `[executor.retry]` keys.
async fn harness_with(
    targets: &[&str],
    script: Vec<(&str, Vec<Result<Outcome, ConnectorError>>)>,
    retry: &str,
    extra_config: &str,
) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("db").display());
    let sqlite = Arc::new(SqliteStore::open(&url).await.expect("store"));
    let store: Arc<dyn Store> = sqlite.clone();
    let conn = Arc::new(Scripted {
        targets: targets.iter().map(|s| s.to_string()).collect(),
        script: Mutex::new(
            script
                .into_iter()
                .map(|(t, v)| (t.to_string(), v.into_iter().collect()))
                .collect(),
        ),
        ..Default::default()
    });
    *conn.store.lock().expect("lock") = Some(store.clone());
    *conn.raw.lock().expect("lock") = Some(sqlite);
    let config = revoke_config::load_str(&format!(
        "[executor.retry]\n{retry}\n{extra_config}\n[connectors.sys]\nkind = \"scripted\"\nconcurrency = 2\n"
    ))
    .expect("config");
    let connectors: Connectors = [("sys".to_string(), conn.clone() as Arc<dyn Connector>)].into();
    let plan = plan_for_alice(&config, &connectors, Risk::Standard).await;
    let exec = Executor::new(store.clone(), connectors, &config, "test-executor");
    exec.record(&plan).await.expect("record");
    Harness {
        _dir: dir,
        store,
        conn,
        exec,
        plan: plan.id,
    }
}

/// The plan `p1` of one job (`job-1`, alice, effective 60 days ago) on `connectors`.
async fn plan_for_alice(
    config: &revoke_config::Config,
    connectors: &Connectors,
    risk: Risk,
) -> revoke_core::Plan {
    let jobs = vec![Job {
        id: JobId("job-1".into()),
        subject: Subject::new("alice"),
        reason: "test".into(),
        effective_at: Utc::now() - chrono::Duration::days(60),
        risk,
        source: "test".into(),
        requested_by: "test".into(),
        policy: "default".into(),
    }];
    let discoveries = discover(config, connectors, &jobs).await.expect("discover");
    plan_jobs(
        config,
        connectors,
        jobs,
        &discoveries,
        PlanId("p1".into()),
        Utc::now(),
    )
    .expect("plan")
}

async fn states(h: &Harness) -> BTreeMap<String, (ActionState, u32)> {
    h.store
        .actions(&h.plan)
        .await
        .expect("actions")
        .into_iter()
        .map(|r| (r.action.target.clone(), (r.state, r.attempts)))
        .collect()
}

#[tokio::test]
async fn retryable_errors_are_retried_until_success_and_the_ledger_comes_first() {
    let h = harness(
        &["a", "b"],
        vec![(
            "a",
            vec![
                Err(ConnectorError::retryable("busy", "server busy")),
                Err(ConnectorError::retryable("busy", "server busy")),
            ],
        )],
        "",
    )
    .await;
    let summary = h.exec.run_plan(&h.plan).await.expect("run");
    assert_eq!(summary.done, 2, "{summary:?}");
    let s = states(&h).await;
    assert_eq!(s["a"], (ActionState::Done, 3));
    assert_eq!(s["b"], (ActionState::Done, 1));
    assert_eq!(
        h.conn.unrecorded_calls.load(Ordering::SeqCst),
        0,
        "every call was recorded before it was sent"
    );
    let audit = h.store.audit_log().await.expect("audit");
    assert!(revoke_store::verify_chain(&audit).is_empty());
    assert_eq!(
        audit.iter().filter(|e| e.kind == "action.attempt").count(),
        4
    );
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let h = harness(
        &["a"],
        vec![(
            "a",
            vec![Err(ConnectorError::rate_limited(
                Duration::from_millis(600),
                "rate_limited",
                "slow down",
            ))],
        )],
        "",
    )
    .await;
    h.exec.run_plan(&h.plan).await.expect("run");
    let calls = h.conn.calls.lock().expect("lock").clone();
    assert_eq!(calls.len(), 2);
    let gap = calls[1].1 - calls[0].1;
    assert!(
        gap >= Duration::from_millis(600),
        "second call came {gap:?} after the first"
    );
}

/// A rolling update: a newer replica planned an action kind this build does not know. It is not
/// failed (which would block the subject's later phases for good): it goes back to the queue
/// with a wait, for a replica that knows it, within the retry budget.
#[tokio::test]
async fn an_action_of_a_kind_this_build_does_not_know_waits_for_another_replica() {
    let h = harness_with(
        &["a"],
        vec![(
            "a",
            vec![Err(ConnectorError::unknown_action(
                "the scripted connector has no action \"newer_kind\"",
            ))],
        )],
        "base_ms = 10\ncap_ms = 40\nmax_attempts = 8\nmax_elapsed_secs = 900",
        "",
    )
    .await;
    let exec = h.exec.clone();
    let plan = h.plan.clone();
    let run = tokio::spawn(async move { exec.run_plan(&plan).await });
    // The first attempt's result is in the store once the action is no longer running.
    let rec = loop {
        let rec = h.store.actions(&h.plan).await.expect("actions").remove(0);
        if rec.attempts == 1 && rec.state != ActionState::Running {
            break rec;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    run.abort();
    assert_eq!(rec.state, ActionState::Pending, "{rec:?}");
    assert_eq!(rec.error.as_ref().expect("error").code, "unknown_action");
    let wait = rec.next_attempt_at.expect("a next attempt") - Utc::now();
    assert!(
        wait >= chrono::Duration::seconds(25),
        "it waits for another replica, not a quick retry: {wait:?}"
    );
    assert_eq!(h.conn.calls.lock().expect("lock").len(), 1);
}

#[tokio::test]
async fn a_permanent_error_fails_once_and_blocks_what_depends_on_it() {
    let h = harness(
        &["a", "b", "account"],
        vec![(
            "a",
            vec![Err(ConnectorError::permanent("denied", "no such thing"))],
        )],
        "",
    )
    .await;
    let summary = h.exec.run_plan(&h.plan).await.expect("run");
    let s = states(&h).await;
    assert_eq!(
        s["a"],
        (ActionState::Failed, 1),
        "permanent errors are not retried"
    );
    assert_eq!(s["b"], (ActionState::Done, 1));
    assert_eq!(s["account"], (ActionState::Blocked, 0), "never attempted");
    assert!(summary.has_problems());
    assert!(!h
        .conn
        .calls
        .lock()
        .expect("lock")
        .iter()
        .any(|(t, _)| t == "account"));
}

#[tokio::test]
async fn retries_stop_at_max_attempts() {
    let errs = (0..10)
        .map(|_| Err(ConnectorError::retryable("unavailable", "down")))
        .collect();
    let h = harness(&["a"], vec![("a", errs)], "").await;
    h.exec.run_plan(&h.plan).await.expect("run");
    let rec = h.store.actions(&h.plan).await.expect("actions").remove(0);
    assert_eq!((rec.state, rec.attempts), (ActionState::Failed, 4));
    assert_eq!(rec.error.expect("error").code, "unavailable");
}

#[tokio::test]
async fn the_concurrency_limit_per_connector_holds() {
    let targets: Vec<String> = (0..12).map(|i| format!("t{i}")).collect();
    let refs: Vec<&str> = targets.iter().map(String::as_str).collect();
    let h = harness(&refs, vec![], "").await;
    h.exec.run_plan(&h.plan).await.expect("run");
    assert_eq!(
        h.conn.max_running.load(Ordering::SeqCst),
        2,
        "concurrency = 2 for this instance"
    );
    assert!(states(&h)
        .await
        .values()
        .all(|(s, n)| *s == ActionState::Done && *n == 1));
}

#[tokio::test]
async fn a_second_run_sends_nothing_recorded_as_done() {
    let h = harness(&["a", "b"], vec![], "").await;
    h.exec.run_plan(&h.plan).await.expect("run");
    let before = h.conn.calls.lock().expect("lock").len();
    h.exec.run_plan(&h.plan).await.expect("second run");
    assert_eq!(h.conn.calls.lock().expect("lock").len(), before);
}

#[tokio::test]
async fn a_retry_finds_what_the_earlier_attempt_journaled() {
    let h = harness(
        &["a"],
        vec![(
            "a",
            vec![Err(ConnectorError::retryable(
                "unavailable",
                "died after creating the key",
            ))],
        )],
        "",
    )
    .await;
    h.conn.journaled.store(true, Ordering::SeqCst);
    let summary = h.exec.run_plan(&h.plan).await.expect("run");
    assert_eq!(summary.done, 1, "{summary:?}");
    assert_eq!(states(&h).await["a"], (ActionState::Done, 2));
    assert_eq!(
        *h.conn.steps_seen.lock().expect("lock"),
        vec![None, Some("created".to_string())],
        "the second attempt saw the first one's entry"
    );
    assert_eq!(
        *h.conn.attempts_seen.lock().expect("lock"),
        vec![1, 2],
        "each call knows its attempt"
    );
    let a = h.store.actions(&h.plan).await.expect("actions").remove(0);
    let journal = h.store.journal(&a.action.id).await.expect("journal");
    assert_eq!(
        journal
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_str()))
            .collect::<Vec<_>>(),
        vec![("step", "created")],
        "recorded once, by the first attempt"
    );
    let audit = h.store.audit_log().await.expect("audit");
    assert!(revoke_store::verify_chain(&audit).is_empty());
    let journaled: Vec<serde_json::Value> = audit
        .iter()
        .filter(|e| e.kind == "action.journal")
        .map(|e| {
            assert_eq!(e.actor, "test-executor");
            assert_eq!(e.action_id.as_deref(), Some(a.action.id.0.as_str()));
            serde_json::from_str(&e.data).expect("json")
        })
        .collect();
    assert_eq!(
        journaled,
        vec![serde_json::json!({ "attempt": 1, "name": "step", "value": "created" })]
    );

    // The evidence of the case shows the entry with the action.
    let ev = revoke_engine::evidence::collect(
        h.store.as_ref(),
        &JobId("job-1".into()),
        Duration::from_secs(24 * 3600),
        Utc::now(),
    )
    .await
    .expect("evidence");
    assert_eq!(ev.actions[0].journal, journal);
    let json = ev.render(revoke_engine::EvidenceFormat::Json);
    assert!(json.contains("\"journal\""), "{json}");
    let md = ev.render(revoke_engine::EvidenceFormat::Md);
    assert!(md.contains("## Journal"), "{md}");
    assert!(md.contains("| step | created |"), "{md}");
}

#[tokio::test]
async fn a_lost_lease_stops_the_journal_and_the_attempt_records_nothing_more() {
    let h = harness(&["a"], vec![], "").await;
    h.conn.journaled.store(true, Ordering::SeqCst);
    h.conn.steal_lease_once.store(true, Ordering::SeqCst);
    let summary = h.exec.run_plan(&h.plan).await.expect("run");
    assert_eq!(summary.done, 1, "{summary:?}");
    // Attempt 1 lost the action before its entry was written: nothing of it is recorded but the
    // lost lease; the takeover (attempt 2) found an empty journal and wrote the entry itself.
    assert_eq!(states(&h).await["a"], (ActionState::Done, 2));
    assert_eq!(*h.conn.steps_seen.lock().expect("lock"), vec![None, None]);
    let audit = h.store.audit_log().await.expect("audit");
    assert!(revoke_store::verify_chain(&audit).is_empty());
    let kinds: Vec<&str> = audit
        .iter()
        .filter(|e| e.action_id.is_some())
        .map(|e| e.kind.as_str())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "action.attempt",
            "action.lease_lost",
            "action.attempt",
            "action.journal",
            "action.finished",
            "action.verified",
        ]
    );
    let lost = audit
        .iter()
        .find(|e| e.kind == "action.lease_lost")
        .expect("lease_lost audited");
    assert!(lost.data.contains("lease_lost"), "{}", lost.data);
}

#[tokio::test]
async fn evidence_leaves_out_an_empty_journal() {
    let h = harness(&["a"], vec![], "").await;
    h.exec.run_plan(&h.plan).await.expect("run");
    let ev = revoke_engine::evidence::collect(
        h.store.as_ref(),
        &JobId("job-1".into()),
        Duration::from_secs(24 * 3600),
        Utc::now(),
    )
    .await
    .expect("evidence");
    assert!(ev.actions[0].journal.is_empty());
    let json = ev.render(revoke_engine::EvidenceFormat::Json);
    assert!(!json.contains("\"journal\""), "{json}");
    assert!(!ev
        .render(revoke_engine::EvidenceFormat::Md)
        .contains("## Journal"));
}

#[tokio::test]
async fn a_grace_period_without_prerequisites_is_counted_from_the_effective_date() {
    let conn = Arc::new(Scripted {
        targets: vec!["g1".into(), "delayed:g2".into(), "account".into()],
        ..Default::default()
    });
    let config = revoke_config::load_str(
        "[policies.default]\nretention_days = 30\n[connectors.sys]\nkind = \"scripted\"\n",
    )
    .expect("config");
    let connectors: Connectors = [("sys".to_string(), conn as Arc<dyn Connector>)].into();
    let effective = Utc::now() + chrono::Duration::days(2);
    let jobs = vec![Job {
        id: JobId("job-1".into()),
        subject: Subject::new("alice"),
        reason: "test".into(),
        effective_at: effective,
        risk: Risk::Standard,
        source: "test".into(),
        requested_by: "test".into(),
        policy: "default".into(),
    }];
    let discoveries = discover(&config, &connectors, &jobs)
        .await
        .expect("discover");
    let plan = plan_jobs(
        &config,
        &connectors,
        jobs,
        &discoveries,
        PlanId("p".into()),
        Utc::now(),
    )
    .expect("plan");
    let at = |t: &str| {
        plan.actions
            .iter()
            .find(|a| a.target == t)
            .and_then(|a| a.not_before)
            .expect("a time")
    };
    assert_eq!(at("g1"), effective);
    assert_eq!(at("delayed:g2"), effective + chrono::Duration::days(7));
    assert_eq!(at("account"), effective + chrono::Duration::days(30));
}

#[tokio::test]
async fn an_action_left_without_a_verdict_is_read_back_by_the_next_run() {
    let h = harness(&["a", "b"], vec![], "").await;
    h.exec.run_plan(&h.plan).await.expect("run");
    assert_eq!(h.conn.verified.load(Ordering::SeqCst), 2);
    // As if the run had been killed between recording a's result and reading it back.
    let raw = h.conn.raw.lock().expect("lock").clone().expect("raw");
    raw.execute_raw(
        "UPDATE actions SET verdict_json = NULL, verified_at = NULL WHERE target = 'a'",
    )
    .await
    .expect("verdict removed");
    let summary = h.exec.run_plan(&h.plan).await.expect("run again");
    assert_eq!(
        h.conn.verified.load(Ordering::SeqCst),
        3,
        "only a is read back"
    );
    assert_eq!(
        h.conn.calls.lock().expect("lock").len(),
        2,
        "nothing is sent again"
    );
    let a = h
        .store
        .actions(&h.plan)
        .await
        .expect("actions")
        .into_iter()
        .find(|r| r.action.target == "a")
        .expect("a");
    assert_eq!(a.verdict, Some(Verdict::Confirmed));
    assert_eq!(summary.done, 2);
}

#[tokio::test]
async fn a_run_says_whose_lease_it_waits_for_and_until_when() {
    let h = harness(&["a"], vec![], "").await;
    // A run that died mid-action left it running under its lease.
    let until = Utc::now() + chrono::Duration::milliseconds(1500);
    let raw = h.conn.raw.lock().expect("lock").clone().expect("raw");
    raw.execute_raw(&format!(
        "UPDATE actions SET state = 'running', attempts = 1, lease_owner = 'revokectl@dead:1', lease_expires_at = {}",
        until.timestamp_micros()
    ))
    .await
    .expect("lease planted");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let summary = h
        .exec
        .clone()
        .with_events(tx)
        .run_plan(&h.plan)
        .await
        .expect("run");
    assert_eq!(summary.done, 1, "it runs once the dead run's lease is over");
    let mut waits = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        if let revoke_engine::ExecEvent::Waiting {
            owner,
            until: u,
            action_ids,
        } = ev
        {
            waits.push((owner, u, action_ids.len()));
        }
    }
    assert_eq!(waits.len(), 1, "said once, not once per poll: {waits:?}");
    assert_eq!(waits[0].0, "revokectl@dead:1");
    assert_eq!(waits[0].1.timestamp_micros(), until.timestamp_micros());
    assert_eq!(waits[0].2, 1);
}

#[tokio::test]
async fn a_grace_period_counts_from_its_prerequisites_not_the_effective_date() {
    // `contain:x` is contained first; `delayed:g2` (revoke, a week's grace) depends on it
    // through the phase order, so its week starts when the contain succeeds, now, although
    // the job became effective 60 days ago.
    let h = harness(&["contain:x", "delayed:g2"], vec![], "").await;
    let before = Utc::now();
    let summary = h.exec.run_plan(&h.plan).await.expect("run");
    assert_eq!((summary.done, summary.scheduled), (1, 1), "{summary:?}");
    let due = summary.next_due.expect("a due time");
    let week = chrono::Duration::days(7);
    assert!(
        due >= before + week && due <= Utc::now() + week,
        "due {due}, a week after the contain"
    );
    assert_eq!(
        h.conn.calls.lock().expect("lock").len(),
        1,
        "the delayed action did not run"
    );
}

#[tokio::test]
async fn the_work_loop_reads_back_what_a_dead_executor_left_unverified() {
    let h = harness(&["a"], vec![], "").await;
    h.exec.run_plan(&h.plan).await.expect("run");
    assert_eq!(h.conn.verified.load(Ordering::SeqCst), 1);
    // Applied two minutes ago by an executor that died before reading it back.
    let raw = h.conn.raw.lock().expect("lock").clone().expect("raw");
    raw.execute_raw(&format!(
        "UPDATE actions SET verdict_json = NULL, verified_at = NULL, finished_at = {}",
        (Utc::now() - chrono::Duration::minutes(2)).timestamp_micros()
    ))
    .await
    .expect("verdict removed");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let exec = h.exec.clone();
    let worker = tokio::spawn(async move {
        exec.work(
            stop_rx,
            Arc::new(tokio::sync::Notify::new()),
            Duration::from_millis(20),
            2,
            Duration::from_secs(1),
        )
        .await
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while h.conn.verified.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_tx.send(true).expect("stop");
    worker.await.expect("joined").expect("work");
    assert_eq!(h.conn.verified.load(Ordering::SeqCst), 2, "read back once");
    assert_eq!(
        h.conn.calls.lock().expect("lock").len(),
        1,
        "not sent again"
    );
    let rec = h.store.actions(&h.plan).await.expect("actions").remove(0);
    assert_eq!(rec.verdict, Some(Verdict::Confirmed));
}

#[tokio::test]
async fn a_batch_verifying_connector_reads_back_a_run_together_with_each_verdict_its_own() {
    let h = harness(&["contain:a", "b", "c", "d", "account"], vec![], "").await;
    h.conn.batch.store(true, Ordering::SeqCst);
    h.conn.unconfirmed.lock().expect("lock").push("c".into());
    let summary = h.exec.run_plan(&h.plan).await.expect("run");
    assert_eq!(summary.done, 5, "{summary:?}");
    assert_eq!(
        h.conn.verified.load(Ordering::SeqCst),
        0,
        "no read-back one by one"
    );
    assert_eq!(
        *h.conn.batches.lock().expect("lock"),
        vec![5],
        "one read-back of all five"
    );
    assert_eq!(summary.not_confirmed, 1, "{summary:?}");
    for r in h.store.actions(&h.plan).await.expect("actions") {
        let want = if r.action.target == "c" {
            Verdict::NotConfirmed {
                detail: "c still there".into(),
            }
        } else {
            Verdict::Confirmed
        };
        assert_eq!(r.verdict, Some(want), "{}", r.action.target);
    }
    // A second run sends nothing and reads nothing back again.
    h.exec.run_plan(&h.plan).await.expect("rerun");
    assert_eq!(h.conn.calls.lock().expect("lock").len(), 5);
    assert_eq!(h.conn.batches.lock().expect("lock").len(), 1);
}

#[tokio::test]
async fn the_work_loop_reads_back_a_batch_verifying_connector_when_it_goes_idle() {
    let h = harness(&["contain:a", "b", "c"], vec![], "").await;
    h.conn.batch.store(true, Ordering::SeqCst);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let exec = h.exec.clone();
    let worker = tokio::spawn(async move {
        exec.work(
            stop_rx,
            Arc::new(tokio::sync::Notify::new()),
            Duration::from_secs(3600),
            4,
            Duration::from_secs(1),
        )
        .await
    });
    // The poll is an hour: the verdicts come from the idle read-back, not a poll or the sweep.
    let deadline = Instant::now() + Duration::from_secs(20);
    let verified = || async {
        h.store
            .actions(&h.plan)
            .await
            .expect("actions")
            .iter()
            .filter(|r| r.verdict == Some(Verdict::Confirmed))
            .count()
    };
    while verified().await < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_tx.send(true).expect("stop");
    worker.await.expect("joined").expect("work");
    assert_eq!(verified().await, 3, "every action read back");
    assert_eq!(
        h.conn.verified.load(Ordering::SeqCst),
        0,
        "no read-back one by one"
    );
    let batches = h.conn.batches.lock().expect("lock").clone();
    assert_eq!(
        batches.iter().sum::<usize>(),
        3,
        "each read back once: {batches:?}"
    );
}

#[tokio::test]
async fn an_accounts_read_back_waits_until_none_of_its_actions_is_left_to_run() {
    // Two accounts' worth of actions would need two plans; one account here: 13 actions, two
    // at a time, 120 ms each: the run outlasts the 500 ms after which waiting read-backs go out,
    // but the account always has actions left until the end (and fewer than the 16 after which
    // an account's read-backs go out anyway).
    let mut targets = vec!["contain:a".to_string()];
    targets.extend((0..12).map(|i| format!("t{i:02}")));
    let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
    let h = harness(&targets, vec![], "").await;
    h.conn.batch.store(true, Ordering::SeqCst);
    h.conn.slow_ms.store(120, Ordering::SeqCst);
    let summary = h.exec.run_plan(&h.plan).await.expect("run");
    assert_eq!(summary.done, 13, "{summary:?}");
    assert_eq!(
        *h.conn.batches.lock().expect("lock"),
        vec![13],
        "the account's actions read back together, once"
    );
    assert_eq!(h.conn.verified.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_account_with_many_actions_is_read_back_as_it_goes() {
    // 40 actions of one account: read-backs go out by 16 while the rest still runs.
    let targets: Vec<String> = (0..40).map(|i| format!("t{i:02}")).collect();
    let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
    let h = harness(&targets, vec![], "").await;
    h.conn.batch.store(true, Ordering::SeqCst);
    let summary = h.exec.run_plan(&h.plan).await.expect("run");
    assert_eq!(summary.done, 40, "{summary:?}");
    let batches = h.conn.batches.lock().expect("lock").clone();
    assert_eq!(
        batches.iter().sum::<usize>(),
        40,
        "each read back once: {batches:?}"
    );
    assert!(batches.len() > 1, "read back as it goes: {batches:?}");
}

/// An instance whose applies wait at a gate the test opens (a paced or slow system), or pass
/// at once when it has no gate.
#[derive(Debug)]
struct Gated {
    name: &'static str,
    targets: Vec<String>,
    gate: Option<Arc<tokio::sync::Semaphore>>,
}

#[async_trait]
impl Connector for Gated {
    fn instance(&self) -> &str {
        self.name
    }
    fn kind(&self) -> &'static str {
        "gated"
    }
    async fn check(&self) -> Result<(), ConnectorError> {
        Ok(())
    }
    async fn discover(&self, subject: &Subject) -> Result<Discovery, ConnectorError> {
        Ok(grants(self.name, subject, &self.targets))
    }
    fn plan(&self, _: &Subject, d: &Discovery) -> Vec<ProposedAction> {
        d.findings
            .iter()
            .map(|f| ProposedAction {
                kind: ActionKind::from("revoke_grant"),
                target: f.target.clone(),
                params: BTreeMap::new(),
                phase: Phase::Contain,
                after: vec![],
                summary: format!("revoke {}", f.target),
                account: "acct".into(),
                delay: None,
            })
            .collect()
    }
    async fn apply(
        &self,
        _action: &Action,
        _key: &ActionKey,
        _journal: &dyn Journal,
    ) -> Result<Outcome, ConnectorError> {
        if let Some(gate) = &self.gate {
            gate.acquire().await.expect("gate open").forget();
        }
        Ok(Outcome::Done)
    }
    async fn verify(&self, _: &Action) -> Result<Verdict, ConnectorError> {
        Ok(Verdict::Confirmed)
    }
}

/// A slow instance (one action at a time, each held at a gate) does not take the work loop's
/// every slot: with two actions at once (four leased) and six slow actions first in the lease
/// order, the fast instance's contain actions all run while the slow ones wait, and the slow
/// ones finish once the gate opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_instance_does_not_take_every_slot_of_the_work_loop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("db").display());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.expect("store"));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let slow = Arc::new(Gated {
        name: "a-slow",
        targets: (0..6).map(|i| format!("s{i}")).collect(),
        gate: Some(gate.clone()),
    });
    let fast = Arc::new(Gated {
        name: "b-fast",
        targets: (0..4).map(|i| format!("f{i}")).collect(),
        gate: None,
    });
    let config = revoke_config::load_str(
        "[connectors.a-slow]\nkind = \"gated\"\nconcurrency = 1\n[connectors.b-fast]\nkind = \"gated\"\nconcurrency = 4\n",
    )
    .expect("config");
    let connectors: Connectors = [
        ("a-slow".to_string(), slow.clone() as Arc<dyn Connector>),
        ("b-fast".to_string(), fast.clone() as Arc<dyn Connector>),
    ]
    .into();
    let plan = plan_for_alice(&config, &connectors, Risk::High).await;
    assert_eq!(plan.actions.len(), 10);
    assert!(
        plan.actions[..6].iter().all(|a| a.connector == "a-slow"),
        "the slow instance's actions come first in the lease order"
    );
    let exec = Executor::new(store.clone(), connectors, &config, "test-executor");
    exec.record(&plan).await.expect("record");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker = {
        let exec = exec.clone();
        tokio::spawn(async move {
            exec.work(
                stop_rx,
                Arc::new(tokio::sync::Notify::new()),
                Duration::from_millis(20),
                2,
                Duration::from_secs(5),
            )
            .await
        })
    };
    let done = |connector: &'static str| {
        let store = store.clone();
        async move {
            store
                .actions(&PlanId("p1".into()))
                .await
                .expect("actions")
                .iter()
                .filter(|r| r.action.connector == connector && r.state == ActionState::Done)
                .count()
        }
    };
    // The gate is shut: only the fast instance can finish anything. A loop whose two slots both
    // went to the slow instance (one at the gate, one waiting for its one slot) never gets here.
    let deadline = Instant::now() + Duration::from_secs(30);
    while done("b-fast").await < 4 {
        assert!(
            Instant::now() < deadline,
            "the fast instance's actions never ran: the slow instance holds every slot"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(done("a-slow").await, 0, "the gate is still shut");
    gate.add_permits(6);
    while done("a-slow").await < 6 {
        assert!(
            Instant::now() < deadline,
            "the slow actions finish once the gate opens"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_tx.send(true).expect("stop");
    worker.await.expect("joined").expect("work");
}
