//! The `Store` contract, run against both backends: every test below is written once against
//! `Arc<dyn Store>` and instantiated twice by `conformance!`, in `mod sqlite` (a temp file) and
//! `mod postgres` (a fresh database on the testkit's throwaway cluster; it fails, never skips,
//! when Postgres cannot be started).

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use revoke_core::{
    AccountPin, Action, ActionId, ActionKey, ActionKind, ConnectorError, Job, JobId, Outcome,
    Phase, Plan, PlanId, Risk, Snapshot, Subject, Verdict, PLAN_FORMAT_VERSION,
};
use revoke_store::{
    verify_chain, ActionRecord, ActionState, AttemptEnd, AttemptResult, AuditProblem, BlastGuard,
    CancelTarget, IntakeRef, JobCursor, JobQuery, JobState, NewAuditEntry, NewJob, PostgresStore,
    SqliteStore, Store, StoreError,
};

// ---------------------------------------------------------------------------------------------
// Harness

/// A store under test, plus raw SQL access for tampering behind its back.
struct Harness {
    store: Arc<dyn Store>,
    backend: Backend,
    /// Where the database is, to open a second handle on it (another process, another replica).
    url: String,
    _dir: Option<tempfile::TempDir>,
}

enum Backend {
    Sqlite(Arc<SqliteStore>),
    Postgres(Arc<PostgresStore>),
}

impl Harness {
    async fn sqlite() -> Harness {
        let dir = tempfile::tempdir().expect("a temp dir");
        // A nested path also checks that `open` creates the missing parent directories.
        let url = format!("sqlite://{}/nested/dir/store.db", dir.path().display());
        let s = Arc::new(SqliteStore::open(&url).await.expect("sqlite store opens"));
        Harness {
            store: s.clone(),
            backend: Backend::Sqlite(s),
            url,
            _dir: Some(dir),
        }
    }

    async fn postgres() -> Harness {
        let url =
            tokio::task::spawn_blocking(|| revoke_testkit::Postgres::shared().fresh_database())
                .await
                .expect("the testkit task finishes")
                .expect("a fresh postgres database (postgres tests fail, never skip, without one)");
        let s = Arc::new(
            PostgresStore::open(&url)
                .await
                .expect("postgres store opens"),
        );
        Harness {
            store: s.clone(),
            backend: Backend::Postgres(s),
            url,
            _dir: None,
        }
    }

    /// A second, independent store on the same database.
    async fn reopen(&self) -> Arc<dyn Store> {
        revoke_store::open(&self.url)
            .await
            .expect("a second handle opens")
    }

    async fn raw(&self, sql: &str) -> u64 {
        match &self.backend {
            Backend::Sqlite(s) => s.execute_raw(sql).await,
            Backend::Postgres(s) => s.execute_raw(sql).await,
        }
        .unwrap_or_else(|e| panic!("raw sql {sql:?} should run: {e}"))
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Harness::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Harness::postgres().await).await;
                }
            )*
        }
    };
}

conformance!(
    plan_round_trip,
    duplicate_plan_is_a_conflict,
    jobs_are_newest_first,
    lease_respects_not_before,
    lease_respects_dependencies,
    lease_can_leave_out_connector_instances,
    lease_can_be_limited_to_one_plan,
    lease_takes_earlier_phases_first_across_plans,
    grace_counts_from_the_last_prerequisite,
    unverified_lists_applied_actions_without_a_verdict,
    manual_actions_are_never_leased,
    concurrent_leasers_never_share_an_action,
    expired_lease_is_taken_over,
    renew_lease_extends_only_a_held_lease,
    begin_attempt_numbers_attempts_and_writes_the_ledger_first,
    attempts_begun_together_are_each_their_own,
    attempts_finished_together_are_each_their_own,
    results_and_attempts_recorded_together,
    retryable_failure_goes_back_to_pending_until_retry_at,
    permanent_failure_fails_the_action,
    skipped_outcome_keeps_its_reason,
    finish_attempt_requires_the_lease,
    journal_entries_come_back_in_order_and_are_audited,
    journal_needs_the_running_attempt_and_writes_nothing_without_it,
    journal_survives_a_new_attempt_and_is_seen_by_another_handle,
    mark_blocked_only_affects_pending,
    acknowledge_manual_action,
    record_verdict_round_trip,
    verdicts_recorded_together_all_or_none,
    audit_chain_is_linear_under_concurrent_appends,
    audit_tamper_is_detected,
    audit_deletion_is_detected,
    insert_plan_audits_each_job,
    attempts_and_verdicts_are_audited_with_the_change,
    mark_blocked_audits_only_what_it_blocked,
    acknowledge_is_audited_by_who_acknowledged,
    failed_state_changes_write_no_audit_entry,
    state_change_rolls_back_when_its_audit_entry_fails,
    redelivered_event_makes_one_job,
    blast_guard_holds_jobs_until_decided,
    claim_due_jobs_respects_due_time_and_claims,
    claimed_job_is_planned_once,
    planning_failure_retries_or_fails,
    cancellation_stops_what_has_not_run,
    queue_stats_and_readiness,
    same_event_with_another_body_is_a_conflict,
    jobs_are_listed_in_keyset_pages,
    job_listing_filters,
    a_batch_is_submitted_in_order_with_each_result_its_own,
    held_jobs_form_batches_decided_as_one_unit,
    console_sessions_are_shared_expire_and_end,
);

// ---------------------------------------------------------------------------------------------
// Plans for tests

const HOUR: Duration = Duration::from_secs(3600);

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 9, 0, 0)
        .single()
        .expect("a valid time")
}

fn at(secs: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(secs)
}

/// One action of a test plan: `deps` are indices of earlier actions.
struct Spec {
    connector: &'static str,
    kind: &'static str,
    target: String,
    deps: Vec<usize>,
    not_before: Option<DateTime<Utc>>,
    phase: Phase,
    grace: Option<Duration>,
}

fn op(kind: &'static str, target: &str) -> Spec {
    Spec {
        connector: "dir",
        kind,
        target: target.to_string(),
        deps: vec![],
        not_before: None,
        phase: Phase::Revoke,
        grace: None,
    }
}

fn manual(target: &str) -> Spec {
    Spec {
        connector: revoke_core::MANUAL_CONNECTOR,
        ..op("return_laptop", target)
    }
}

impl Spec {
    fn after(mut self, deps: &[usize]) -> Spec {
        self.deps = deps.to_vec();
        self
    }
    fn not_before(mut self, t: DateTime<Utc>) -> Spec {
        self.not_before = Some(t);
        self
    }
    fn phase(mut self, phase: Phase) -> Spec {
        self.phase = phase;
        self
    }
    fn grace(mut self, grace: Duration) -> Spec {
        self.grace = Some(grace);
        self
    }
}

fn make_plan(name: &str, specs: Vec<Spec>) -> Plan {
    let job_id = JobId(format!("job-{name}"));
    let job = Job {
        id: job_id.clone(),
        subject: Subject::new(format!("subject-{name}")),
        reason: "left the company".into(),
        effective_at: t0(),
        risk: Risk::Standard,
        source: "cli".into(),
        requested_by: "tester".into(),
        policy: "default".into(),
    };
    let mut actions: Vec<Action> = Vec::new();
    for s in specs {
        let kind = ActionKind::from(s.kind);
        let depends_on = s.deps.iter().map(|i| actions[*i].id.clone()).collect();
        actions.push(Action {
            id: ActionId::derive(&job_id, s.connector, &kind, &s.target),
            job_id: job_id.clone(),
            connector: s.connector.to_string(),
            key: ActionKey::derive(&job_id, s.connector, &kind, &s.target),
            kind,
            target: s.target.clone(),
            params: BTreeMap::from([("why".to_string(), "test".to_string())]),
            depends_on,
            phase: if s.connector == revoke_core::MANUAL_CONNECTOR {
                Phase::Manual
            } else {
                s.phase
            },
            not_before: s.not_before,
            grace: s.grace,
            account: (s.connector != revoke_core::MANUAL_CONNECTOR).then(|| AccountPin {
                id: format!("id-of-{name}"),
                id_kind: "user id".into(),
                name: format!("subject-{name}"),
            }),
            summary: format!("{} {}", s.kind, s.target),
        });
    }
    let snapshot = Snapshot::default();
    let fingerprint = Plan::fingerprint_of(&snapshot, &actions);
    Plan {
        format_version: PLAN_FORMAT_VERSION,
        id: PlanId(format!("plan-{name}")),
        created_at: t0(),
        jobs: vec![job],
        snapshot,
        actions,
        notes: vec![],
        fingerprint,
    }
}

async fn insert(h: &Harness, plan: &Plan) {
    h.store
        .insert_plan(plan, "tester", t0())
        .await
        .expect("plan is recorded");
}

async fn lease(h: &Harness, owner: &str, now: DateTime<Utc>) -> Vec<ActionId> {
    h.store
        .lease_due(None, owner, now, HOUR, 100)
        .await
        .expect("lease_due works")
        .into_iter()
        .map(|r| r.action.id)
        .collect()
}

async fn state(h: &Harness, id: &ActionId) -> ActionState {
    h.store
        .action(id)
        .await
        .expect("action reads")
        .expect("action exists")
        .state
}

/// Leases exactly `id` (it must be due at `now`), runs one attempt and finishes it with `result`.
async fn run_once(h: &Harness, id: &ActionId, now: DateTime<Utc>, result: AttemptResult) {
    let got = lease(h, "runner", now).await;
    assert!(
        got.contains(id),
        "{id} should be leasable at {now}, got {got:?}"
    );
    let n = h
        .store
        .begin_attempt(id, "runner", now)
        .await
        .expect("attempt begins");
    h.store
        .finish_attempt(id, "runner", n, &result, now)
        .await
        .expect("attempt finishes");
}

/// Runs one attempt of `id`, which "runner" has leased already, and finishes it with `result`.
async fn finish_leased(h: &Harness, id: &ActionId, now: DateTime<Utc>, result: AttemptResult) {
    let n = h
        .store
        .begin_attempt(id, "runner", now)
        .await
        .expect("attempt begins");
    h.store
        .finish_attempt(id, "runner", n, &result, now)
        .await
        .expect("attempt finishes");
}

fn done() -> AttemptResult {
    AttemptResult::Succeeded(Outcome::Done)
}

// ---------------------------------------------------------------------------------------------
// Plans, jobs, actions

async fn plan_round_trip(h: Harness) {
    let plan = make_plan(
        "p",
        vec![
            op("lock", "uid=a"),
            op("remove", "cn=g").after(&[0]),
            manual("laptop"),
        ],
    );
    assert!(plan.fingerprint_is_valid());
    insert(&h, &plan).await;

    let back = h
        .store
        .plan(&plan.id)
        .await
        .expect("plan reads")
        .expect("plan exists");
    assert_eq!(back, plan);
    assert_eq!(back.fingerprint, plan.fingerprint);
    assert!(back.fingerprint_is_valid());
    assert_eq!(
        h.store
            .plan(&PlanId("nope".into()))
            .await
            .expect("plan reads"),
        None
    );

    assert_eq!(
        h.store.plan_of_job(&plan.jobs[0].id).await.expect("reads"),
        Some(plan.id.clone())
    );
    assert_eq!(
        h.store
            .plan_of_job(&JobId("nope".into()))
            .await
            .expect("reads"),
        None
    );

    let records = h.store.actions(&plan.id).await.expect("actions read");
    let actions: Vec<Action> = records.iter().map(|r| r.action.clone()).collect();
    assert_eq!(
        actions, plan.actions,
        "actions come back whole and in plan order"
    );
    let states: Vec<ActionState> = records.iter().map(|r| r.state).collect();
    assert_eq!(
        states,
        vec![
            ActionState::Pending,
            ActionState::Pending,
            ActionState::AwaitingAck
        ]
    );
    for r in &records {
        assert_eq!(r.plan_id, plan.id);
        assert_eq!(r.attempts, 0);
        assert_eq!(
            (r.started_at, r.finished_at, r.lease_owner.as_deref()),
            (None, None, None)
        );
    }
    let one = h
        .store
        .action(&plan.actions[1].id)
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(one, records[1]);
    assert_eq!(
        h.store
            .action(&ActionId("nope".into()))
            .await
            .expect("reads"),
        None
    );
}

async fn duplicate_plan_is_a_conflict(h: Harness) {
    let plan = make_plan("p", vec![op("lock", "uid=a")]);
    insert(&h, &plan).await;
    let err = h
        .store
        .insert_plan(&plan, "tester", t0())
        .await
        .expect_err("a second insert fails");
    assert!(
        matches!(err, StoreError::Conflict(_)),
        "expected Conflict, got {err:?}"
    );
    // Nothing half-written by the failed insert.
    assert_eq!(h.store.actions(&plan.id).await.expect("reads").len(), 1);
    assert_eq!(h.store.jobs().await.expect("reads").len(), 1);
}

async fn jobs_are_newest_first(h: Harness) {
    let older = make_plan("older", vec![op("lock", "uid=a")]);
    let newer = make_plan("newer", vec![op("lock", "uid=b")]);
    h.store
        .insert_plan(&older, "tester", at(0))
        .await
        .expect("recorded");
    h.store
        .insert_plan(&newer, "tester", at(60))
        .await
        .expect("recorded");
    let jobs = h.store.jobs().await.expect("reads");
    let ids: Vec<&str> = jobs.iter().map(|j| j.job.id.0.as_str()).collect();
    assert_eq!(ids, vec!["job-newer", "job-older"]);
    assert_eq!(jobs[0].job, newer.jobs[0]);
    assert_eq!(jobs[0].plan_id, newer.id);
    assert_eq!(jobs[0].created_at, at(60));
}

// ---------------------------------------------------------------------------------------------
// Leasing

async fn lease_respects_not_before(h: Harness) {
    let plan = make_plan("p", vec![op("delete", "uid=a").not_before(at(3600))]);
    insert(&h, &plan).await;
    assert!(
        lease(&h, "x", at(3599)).await.is_empty(),
        "not due before not_before"
    );
    assert_eq!(
        lease(&h, "x", at(3600)).await,
        vec![plan.actions[0].id.clone()],
        "due at not_before"
    );
}

async fn lease_respects_dependencies(h: Harness) {
    let plan = make_plan(
        "p",
        vec![
            op("lock", "uid=a"),
            op("remove", "cn=g").after(&[0]),
            op("delete", "uid=a").after(&[0, 1]),
        ],
    );
    insert(&h, &plan).await;
    let (a, b, c) = (
        &plan.actions[0].id,
        &plan.actions[1].id,
        &plan.actions[2].id,
    );

    assert_eq!(
        lease(&h, "x", at(0)).await,
        vec![a.clone()],
        "only the action without prerequisites"
    );
    let n = h.store.begin_attempt(a, "x", at(1)).await.expect("begins");
    assert!(
        lease(&h, "y", at(2)).await.is_empty(),
        "a running prerequisite holds its dependents"
    );
    // A retryable failure leaves the prerequisite pending: dependents still wait.
    let retry = AttemptResult::Failed {
        error: ConnectorError::retryable("busy", "busy"),
        retry_at: Some(at(10)),
    };
    h.store
        .finish_attempt(a, "x", n, &retry, at(2))
        .await
        .expect("finishes");
    assert!(lease(&h, "y", at(5)).await.is_empty());
    run_once(&h, a, at(10), done()).await;

    assert_eq!(
        lease(&h, "y", at(11)).await,
        vec![b.clone()],
        "leased once its prerequisite is done"
    );
    let n = h.store.begin_attempt(b, "y", at(11)).await.expect("begins");
    let already = AttemptResult::Succeeded(Outcome::AlreadyDone);
    h.store
        .finish_attempt(b, "y", n, &already, at(12))
        .await
        .expect("finishes");
    assert_eq!(
        lease(&h, "z", at(13)).await,
        vec![c.clone()],
        "already_done counts as success"
    );
}

async fn lease_takes_earlier_phases_first_across_plans(h: Harness) {
    // Recorded first and earliest in plan order, but a delete: it waits for every due contain
    // and revoke action of every plan.
    let p1 = make_plan("one", vec![op("delete", "uid=a").phase(Phase::Delete)]);
    let p2 = make_plan(
        "two",
        vec![
            op("remove", "cn=g").phase(Phase::Revoke),
            op("lock", "uid=b").phase(Phase::Contain),
            op("rotate", "key=k").phase(Phase::Transfer),
        ],
    );
    insert(&h, &p1).await;
    insert(&h, &p2).await;
    let mut order = Vec::new();
    for i in 0..4 {
        let got = h
            .store
            .lease_due(None, &format!("w{i}"), at(0), HOUR, 1)
            .await
            .expect("lease_due works");
        assert_eq!(got.len(), 1, "one action per call");
        order.push(got[0].action.kind.0.clone());
    }
    assert_eq!(order, ["lock", "rotate", "remove", "delete"]);
    // The same within one plan.
    let p3 = make_plan(
        "three",
        vec![
            op("delete", "uid=c").phase(Phase::Delete),
            op("lock", "uid=c").phase(Phase::Contain),
        ],
    );
    insert(&h, &p3).await;
    let got = h
        .store
        .lease_due(Some(&p3.id), "w", at(0), HOUR, 1)
        .await
        .expect("lease_due works");
    assert_eq!(got[0].action.kind.0, "lock");
}

async fn grace_counts_from_the_last_prerequisite(h: Harness) {
    let plan = make_plan(
        "p",
        vec![
            op("rotate", "key=1").phase(Phase::Transfer),
            op("rotate", "key=2").phase(Phase::Transfer),
            op("delete_old", "key=1")
                .phase(Phase::Delete)
                .after(&[0, 1])
                .grace(HOUR),
        ],
    );
    insert(&h, &plan).await;
    let (a, b, c) = (
        &plan.actions[0].id,
        &plan.actions[1].id,
        &plan.actions[2].id,
    );
    assert_eq!(lease(&h, "runner", at(0)).await, vec![a.clone(), b.clone()]);
    finish_leased(&h, a, at(0), done()).await;
    let rec = h.store.action(c).await.expect("reads").expect("exists");
    assert_eq!(
        rec.action.not_before,
        Some(at(3600)),
        "one prerequisite done"
    );
    finish_leased(&h, b, at(100), done()).await;
    let rec = h.store.action(c).await.expect("reads").expect("exists");
    assert_eq!(
        rec.action.not_before,
        Some(at(100 + 3600)),
        "due a grace after the last prerequisite succeeded"
    );
    assert!(lease(&h, "x", at(100 + 3599)).await.is_empty());
    assert_eq!(lease(&h, "x", at(100 + 3600)).await, vec![c.clone()]);
    // The plan as recorded is unchanged: the store's due time moved, not the reviewed plan.
    let back = h
        .store
        .plan(&plan.id)
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(back.actions[2].not_before, None);
}

async fn unverified_lists_applied_actions_without_a_verdict(h: Harness) {
    let plan = make_plan(
        "p",
        vec![op("lock", "uid=a"), op("lock", "uid=b"), manual("laptop")],
    );
    insert(&h, &plan).await;
    let (a, b) = (&plan.actions[0].id, &plan.actions[1].id);
    assert_eq!(lease(&h, "runner", at(0)).await, vec![a.clone(), b.clone()]);
    finish_leased(&h, a, at(0), done()).await;
    finish_leased(
        &h,
        b,
        at(10),
        AttemptResult::Succeeded(Outcome::AlreadyDone),
    )
    .await;
    h.store
        .record_verdict(a, &Verdict::Confirmed, "runner", at(1))
        .await
        .expect("verdict");
    let ids = |v: Vec<ActionRecord>| v.into_iter().map(|r| r.action.id).collect::<Vec<_>>();
    assert_eq!(
        ids(h.store.unverified(None, at(20)).await.expect("reads")),
        vec![b.clone()]
    );
    assert_eq!(
        ids(h
            .store
            .unverified(Some(&plan.id), at(20))
            .await
            .expect("reads")),
        vec![b.clone()]
    );
    assert!(
        h.store
            .unverified(None, at(5))
            .await
            .expect("reads")
            .is_empty(),
        "finished after the bound"
    );
    assert!(h
        .store
        .unverified(Some(&PlanId("other".into())), at(20))
        .await
        .expect("reads")
        .is_empty());
}

async fn lease_can_be_limited_to_one_plan(h: Harness) {
    let p1 = make_plan("one", vec![op("lock", "uid=a"), op("lock", "uid=b")]);
    let p2 = make_plan("two", vec![op("lock", "uid=c")]);
    insert(&h, &p1).await;
    insert(&h, &p2).await;
    let got = h
        .store
        .lease_due(Some(&p2.id), "x", at(0), HOUR, 10)
        .await
        .expect("leases");
    assert_eq!(
        got.iter().map(|r| r.action.id.clone()).collect::<Vec<_>>(),
        vec![p2.actions[0].id.clone()]
    );
    assert_eq!(got[0].lease_owner.as_deref(), Some("x"));
    assert_eq!(got[0].lease_expires_at, Some(at(3600)));
    let got = h
        .store
        .lease_due(None, "x", at(0), HOUR, 1)
        .await
        .expect("leases");
    assert_eq!(got.len(), 1, "limit is respected");
    assert_eq!(got[0].action.id, p1.actions[0].id, "plan order first");
}

async fn manual_actions_are_never_leased(h: Harness) {
    let plan = make_plan("p", vec![manual("laptop"), op("lock", "uid=a").after(&[0])]);
    insert(&h, &plan).await;
    assert!(lease(&h, "x", at(0)).await.is_empty());
    assert!(lease(&h, "x", at(100_000)).await.is_empty());
    assert_eq!(
        state(&h, &plan.actions[0].id).await,
        ActionState::AwaitingAck
    );
    h.store
        .acknowledge(&plan.jobs[0].id, &plan.actions[0].id, "it-desk", at(5))
        .await
        .expect("acknowledged");
    assert_eq!(
        lease(&h, "x", at(6)).await,
        vec![plan.actions[1].id.clone()],
        "the dependent runs once acknowledged; the manual action itself is never leased"
    );
    assert!(
        lease(&h, "y", at(7)).await.is_empty(),
        "held by x, and the manual action is never leased"
    );
}

async fn concurrent_leasers_never_share_an_action(h: Harness) {
    let specs: Vec<Spec> = (0..40).map(|i| op("lock", &format!("uid=u{i}"))).collect();
    let plan = make_plan("p", specs);
    insert(&h, &plan).await;
    let store = h.store.clone();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let owner = format!("worker-{w}");
            let mut got = Vec::new();
            loop {
                let leased = store
                    .lease_due(None, &owner, at(0), HOUR, 3)
                    .await
                    .expect("leases");
                if leased.is_empty() {
                    break;
                }
                for r in leased {
                    assert_eq!(r.lease_owner.as_deref(), Some(owner.as_str()));
                    let n = store
                        .begin_attempt(&r.action.id, &owner, at(1))
                        .await
                        .expect("own lease");
                    store
                        .finish_attempt(
                            &r.action.id,
                            &owner,
                            n,
                            &AttemptResult::Succeeded(Outcome::Done),
                            at(2),
                        )
                        .await
                        .expect("finishes");
                    got.push(r.action.id);
                }
                tokio::task::yield_now().await;
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("worker finishes"));
    }
    let distinct: HashSet<&ActionId> = all.iter().collect();
    assert_eq!(
        distinct.len(),
        all.len(),
        "an action was leased twice: {all:?}"
    );
    assert_eq!(all.len(), 40, "every action was leased once");
    let log = h.store.audit_log().await.expect("reads");
    assert_eq!(
        verify_chain(&log),
        vec![],
        "concurrent state changes keep the chain linear"
    );
    assert_eq!(
        log.len(),
        1 + 40 * 2,
        "plan.recorded, then action.attempt and action.finished per action"
    );
    for r in h.store.actions(&plan.id).await.expect("reads") {
        assert_eq!(
            (r.state, r.attempts),
            (ActionState::Done, 1),
            "{}",
            r.action.id
        );
    }
}

async fn expired_lease_is_taken_over(h: Harness) {
    let plan = make_plan("p", vec![op("lock", "uid=a"), op("lock", "uid=b")]);
    insert(&h, &plan).await;
    let (a, b) = (&plan.actions[0].id, &plan.actions[1].id);
    let ttl = Duration::from_secs(30);

    // A lease taken but never begun (the executor died before starting).
    let got = h
        .store
        .lease_due(None, "old", at(0), ttl, 10)
        .await
        .expect("leases");
    assert_eq!(got.len(), 2);
    // One begun, so it is `running` when its lease runs out.
    h.store
        .begin_attempt(b, "old", at(1))
        .await
        .expect("begins");
    assert!(
        h.store
            .lease_due(None, "new", at(29), ttl, 10)
            .await
            .expect("leases")
            .is_empty(),
        "live leases"
    );
    let got: Vec<ActionId> = h
        .store
        .lease_due(None, "new", at(31), ttl, 10)
        .await
        .expect("leases")
        .into_iter()
        .map(|r| r.action.id)
        .collect();
    assert_eq!(
        got,
        vec![a.clone(), b.clone()],
        "both expired leases are taken over"
    );

    for id in [a, b] {
        let err = h
            .store
            .begin_attempt(id, "old", at(32))
            .await
            .expect_err("the old owner lost its lease");
        assert!(
            matches!(err, StoreError::LeaseLost { .. }),
            "expected LeaseLost, got {err:?}"
        );
        assert!(!h
            .store
            .renew_lease(id, "old", at(32), ttl)
            .await
            .expect("renews"));
    }
    let err = h
        .store
        .finish_attempt(b, "old", 1, &done(), at(32))
        .await
        .expect_err("old owner cannot finish");
    assert!(
        matches!(err, StoreError::LeaseLost { .. }),
        "expected LeaseLost, got {err:?}"
    );
    assert_eq!(
        h.store
            .begin_attempt(b, "new", at(33))
            .await
            .expect("new owner begins"),
        2
    );
    assert_eq!(
        h.store
            .begin_attempt(a, "new", at(33))
            .await
            .expect("new owner begins"),
        1
    );
}

async fn renew_lease_extends_only_a_held_lease(h: Harness) {
    let plan = make_plan("p", vec![op("lock", "uid=a")]);
    insert(&h, &plan).await;
    let a = &plan.actions[0].id;
    let ttl = Duration::from_secs(30);
    h.store
        .lease_due(None, "x", at(0), ttl, 10)
        .await
        .expect("leases");
    assert!(h
        .store
        .renew_lease(a, "x", at(20), ttl)
        .await
        .expect("renews"));
    assert!(
        !h.store
            .renew_lease(a, "y", at(20), ttl)
            .await
            .expect("renews"),
        "not the owner"
    );
    assert!(
        h.store
            .lease_due(None, "y", at(40), ttl, 10)
            .await
            .expect("leases")
            .is_empty(),
        "renewed to 50s"
    );
    let r = h.store.action(a).await.expect("reads").expect("exists");
    assert_eq!(r.lease_expires_at, Some(at(50)));
    assert!(
        !h.store
            .renew_lease(a, "x", at(51), ttl)
            .await
            .expect("renews"),
        "expired leases do not renew"
    );
}

// ---------------------------------------------------------------------------------------------
// Attempts

/// `begin_attempts`: one transaction, each action answered on its own: a lease held elsewhere,
/// an action not leased and an action named twice get `LeaseLost` and write nothing, the others
/// are recorded (ledger row, audit entry) with their leases renewed.
async fn attempts_begun_together_are_each_their_own(h: Harness) {
    let plan = make_plan(
        "p",
        vec![
            op("lock", "uid=a"),
            op("lock", "uid=b"),
            op("lock", "uid=c"),
            op("lock", "uid=d"),
        ],
    );
    insert(&h, &plan).await;
    let ids: Vec<ActionId> = plan.actions.iter().map(|a| a.id.clone()).collect();
    let audit_before = h.store.audit_log().await.expect("reads").len();
    // x holds a and b (a retried once already), y holds c; d is not leased.
    let leased = h
        .store
        .lease_due(None, "x", at(0), HOUR, 2)
        .await
        .expect("leases");
    assert_eq!(
        leased
            .iter()
            .map(|r| r.action.id.clone())
            .collect::<Vec<_>>(),
        ids[..2].to_vec()
    );
    let retry = AttemptResult::Failed {
        error: ConnectorError::retryable("busy", "try later"),
        retry_at: Some(at(1)),
    };
    h.store
        .begin_attempt(&ids[0], "x", at(0))
        .await
        .expect("begins");
    h.store
        .finish_attempt(&ids[0], "x", 1, &retry, at(0))
        .await
        .expect("finishes");
    let again = h
        .store
        .lease_due(None, "x", at(1), HOUR, 1)
        .await
        .expect("leases");
    assert_eq!(again[0].action.id, ids[0]);
    assert_eq!(
        h.store
            .lease_due(None, "y", at(1), HOUR, 1)
            .await
            .expect("leases")
            .len(),
        1
    );
    let audit_mid = h.store.audit_log().await.expect("reads").len();

    let asked = [
        ids[1].clone(),
        ids[2].clone(),
        ids[0].clone(),
        ids[3].clone(),
        ids[1].clone(),
    ];
    let got = h
        .store
        .begin_attempts(&asked, "x", at(2), Some(2 * HOUR))
        .await
        .expect("the batch is written");
    let summary: Vec<Result<u32, String>> = got
        .into_iter()
        .map(|r| {
            r.map_err(|e| match e {
                StoreError::LeaseLost { action, .. } => action,
                other => panic!("expected LeaseLost, found {other:?}"),
            })
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            Ok(1),
            Err(ids[2].0.clone()),
            Ok(2),
            Err(ids[3].0.clone()),
            Err(ids[1].0.clone()),
        ],
        "b begins its first attempt, a its second; c (y's), d (nobody's) and b named again get nothing"
    );
    for (id, n) in [(&ids[1], 1), (&ids[0], 2)] {
        let r = h.store.action(id).await.expect("reads").expect("exists");
        assert_eq!((r.state, r.attempts), (ActionState::Running, n));
        assert_eq!(
            r.lease_expires_at,
            Some(at(2) + chrono::Duration::hours(2)),
            "the lease is renewed in the same write"
        );
        let ledger = format!(
            "UPDATE attempts SET owner = owner WHERE action_id = '{id}' AND attempt = {n} \
             AND owner = 'x' AND finished_at IS NULL"
        );
        assert_eq!(
            h.raw(&ledger).await,
            1,
            "{id}: the ledger row of attempt {n}"
        );
    }
    for id in &ids[2..] {
        let r = h.store.action(id).await.expect("reads").expect("exists");
        assert_eq!(
            (r.state, r.attempts),
            (ActionState::Pending, 0),
            "{id} untouched"
        );
    }
    let log = h.store.audit_log().await.expect("reads");
    assert_eq!(
        log.len(),
        audit_mid + 2,
        "one action.attempt entry per attempt begun"
    );
    assert!(log[audit_mid..].iter().all(|e| e.kind == "action.attempt"));
    assert_eq!(
        log[audit_mid..]
            .iter()
            .map(|e| e.action_id.clone().unwrap_or_default())
            .collect::<Vec<_>>(),
        vec![ids[1].0.clone(), ids[0].0.clone()],
        "audited in the order asked"
    );
    assert!(audit_mid > audit_before);
    assert_eq!(
        verify_chain(&log),
        vec![],
        "the chain holds across the batch"
    );
    // Without renewal the lease is left as it was.
    assert_eq!(
        h.store
            .begin_attempts(&[ids[2].clone()], "y", at(3), None)
            .await
            .expect("written")
            .into_iter()
            .map(|r| r.expect("y holds c"))
            .collect::<Vec<_>>(),
        vec![1]
    );
    let c = h
        .store
        .action(&ids[2])
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(c.lease_expires_at, Some(at(1) + chrono::Duration::hours(1)));
}

/// `finish_attempts`: one transaction, each attempt answered on its own; a lost lease writes
/// nothing for that attempt; grace periods of dependents count from the batch's time.
async fn attempts_finished_together_are_each_their_own(h: Harness) {
    let plan = make_plan(
        "p",
        vec![
            op("lock", "uid=a"),
            op("lock", "uid=b"),
            op("lock", "uid=c"),
            op("delete", "uid=a")
                .after(&[0])
                .phase(Phase::Delete)
                .grace(HOUR),
        ],
    );
    insert(&h, &plan).await;
    let ids: Vec<ActionId> = plan.actions.iter().map(|a| a.id.clone()).collect();
    assert_eq!(lease(&h, "x", at(0)).await, ids[..3].to_vec());
    let begun = h
        .store
        .begin_attempts(&ids[..3], "x", at(1), None)
        .await
        .expect("written");
    assert!(begun.iter().all(|r| matches!(r, Ok(1))), "{begun:?}");
    // c's lease is taken over by y (it expired): x's result for c must not be recorded.
    h.raw(&format!(
        "UPDATE actions SET lease_owner = 'y' WHERE id = '{}'",
        ids[2]
    ))
    .await;
    let failed = AttemptResult::Failed {
        error: ConnectorError::permanent("refused", "no"),
        retry_at: None,
    };
    let audit_before = h.store.audit_log().await.expect("reads").len();
    let got = h
        .store
        .finish_attempts(
            &[
                AttemptEnd {
                    id: ids[0].clone(),
                    attempt: 1,
                    result: done(),
                },
                AttemptEnd {
                    id: ids[2].clone(),
                    attempt: 1,
                    result: done(),
                },
                AttemptEnd {
                    id: ids[1].clone(),
                    attempt: 1,
                    result: failed,
                },
            ],
            "x",
            at(7),
        )
        .await
        .expect("written");
    assert!(matches!(got[0], Ok(())), "{got:?}");
    assert!(
        matches!(&got[1], Err(StoreError::LeaseLost { action, .. }) if action == &ids[2].0),
        "{got:?}"
    );
    assert!(matches!(got[2], Ok(())), "{got:?}");
    assert_eq!(state(&h, &ids[0]).await, ActionState::Done);
    assert_eq!(state(&h, &ids[1]).await, ActionState::Failed);
    assert_eq!(
        state(&h, &ids[2]).await,
        ActionState::Running,
        "y's action untouched"
    );
    // The grace period counts from the batch's time: not due before at(7) + 1 h.
    assert!(lease(&h, "x", at(7) + chrono::Duration::minutes(59))
        .await
        .is_empty());
    assert!(lease(&h, "x", at(7) + chrono::Duration::hours(1))
        .await
        .contains(&ids[3]));
    let log = h.store.audit_log().await.expect("reads");
    let kinds: Vec<(&str, &str)> = log[audit_before..]
        .iter()
        .map(|e| (e.kind.as_str(), e.action_id.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("action.finished", ids[0].0.as_str()),
            ("action.attempt_failed", ids[1].0.as_str()),
        ],
        "one entry per recorded attempt, none for the lost one"
    );
    assert_eq!(verify_chain(&log), vec![]);
}

/// `record_attempts`: one transaction for results and new attempts; results first, in the
/// audit chain too.
async fn results_and_attempts_recorded_together(h: Harness) {
    let plan = make_plan("p", vec![op("lock", "uid=a"), op("lock", "uid=b")]);
    insert(&h, &plan).await;
    let (a, b) = (plan.actions[0].id.clone(), plan.actions[1].id.clone());
    assert_eq!(lease(&h, "x", at(0)).await, vec![a.clone(), b.clone()]);
    h.store.begin_attempt(&a, "x", at(1)).await.expect("begins");
    let before = h.store.audit_log().await.expect("reads").len();
    let (ended, begun) = h
        .store
        .record_attempts(
            &[AttemptEnd {
                id: a.clone(),
                attempt: 1,
                result: done(),
            }],
            &[b.clone(), ActionId("nope".into())],
            Some(HOUR),
            "x",
            at(2),
        )
        .await
        .expect("written");
    assert!(matches!(ended.as_slice(), [Ok(())]), "{ended:?}");
    assert!(
        matches!(begun.as_slice(), [Ok(1), Err(StoreError::LeaseLost { .. })]),
        "{begun:?}"
    );
    assert_eq!(state(&h, &a).await, ActionState::Done);
    assert_eq!(state(&h, &b).await, ActionState::Running);
    let log = h.store.audit_log().await.expect("reads");
    let kinds: Vec<(&str, &str)> = log[before..]
        .iter()
        .map(|e| (e.kind.as_str(), e.action_id.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("action.finished", a.0.as_str()),
            ("action.attempt", b.0.as_str())
        ]
    );
    assert_eq!(verify_chain(&log), vec![]);
    // Nothing to write is no transaction and no entry.
    let (ended, begun) = h
        .store
        .record_attempts(&[], &[], None, "x", at(3))
        .await
        .expect("nothing");
    assert!(ended.is_empty() && begun.is_empty());
    assert_eq!(h.store.audit_log().await.expect("reads").len(), log.len());
}

/// `lease_due_within` takes at most the room each named instance has, none of an instance
/// without room, and the others without a bound, in the lease order.
async fn lease_can_leave_out_connector_instances(h: Harness) {
    let plan = make_plan(
        "p",
        vec![
            op("lock", "uid=a"),
            Spec {
                connector: "slow",
                ..op("lock", "uid=b")
            },
            op("lock", "uid=c"),
            Spec {
                connector: "other",
                ..op("lock", "uid=d")
            },
            op("lock", "uid=e"),
        ],
    );
    insert(&h, &plan).await;
    let ids: Vec<ActionId> = plan.actions.iter().map(|a| a.id.clone()).collect();
    let leased = |v: Vec<ActionRecord>| v.into_iter().map(|r| r.action.id).collect::<Vec<_>>();
    let room = |v: &[(&str, usize)]| {
        v.iter()
            .map(|(c, n)| (c.to_string(), *n))
            .collect::<BTreeMap<String, usize>>()
    };
    // `dir` has room for one, `slow` none, `other` is not named.
    let got = h
        .store
        .lease_due_within(
            None,
            "x",
            at(0),
            HOUR,
            10,
            &room(&[("dir", 1), ("slow", 0)]),
        )
        .await
        .expect("leases");
    assert_eq!(leased(got), vec![ids[0].clone(), ids[3].clone()]);
    // The limit counts what is leased, not what is read past.
    let got = h
        .store
        .lease_due_within(Some(&plan.id), "x", at(0), HOUR, 1, &room(&[("slow", 0)]))
        .await
        .expect("leases");
    assert_eq!(
        leased(got),
        vec![ids[2].clone()],
        "b is left out, a and d are leased already"
    );
    let got = h
        .store
        .lease_due_within(None, "x", at(0), HOUR, 10, &room(&[]))
        .await
        .expect("leases");
    assert_eq!(
        leased(got),
        vec![ids[1].clone(), ids[4].clone()],
        "no bound: the rest"
    );
}

async fn begin_attempt_numbers_attempts_and_writes_the_ledger_first(h: Harness) {
    let plan = make_plan("p", vec![op("lock", "uid=a")]);
    insert(&h, &plan).await;
    let a = &plan.actions[0].id;
    assert_eq!(lease(&h, "x", at(0)).await, vec![a.clone()]);
    assert_eq!(
        h.store.begin_attempt(a, "x", at(1)).await.expect("begins"),
        1
    );

    let r = h.store.action(a).await.expect("reads").expect("exists");
    assert_eq!(
        (r.state, r.attempts, r.started_at),
        (ActionState::Running, 1, Some(at(1)))
    );
    let ledger = format!(
        "UPDATE attempts SET owner = owner WHERE action_id = '{a}' AND attempt = 1 AND key = '{}' \
         AND owner = 'x' AND finished_at IS NULL AND outcome IS NULL",
        plan.actions[0].key
    );
    assert_eq!(
        h.raw(&ledger).await,
        1,
        "the ledger row exists, unfinished, before the call is made"
    );

    let retry = AttemptResult::Failed {
        error: ConnectorError::retryable("busy", "try later"),
        retry_at: Some(at(5)),
    };
    h.store
        .finish_attempt(a, "x", 1, &retry, at(2))
        .await
        .expect("finishes");
    let finished = format!(
        "UPDATE attempts SET owner = owner WHERE action_id = '{a}' AND attempt = 1 AND finished_at IS NOT NULL \
         AND outcome IS NOT NULL AND error_json IS NOT NULL"
    );
    assert_eq!(h.raw(&finished).await, 1, "finish fills the ledger row in");

    assert_eq!(lease(&h, "y", at(5)).await, vec![a.clone()]);
    assert_eq!(
        h.store.begin_attempt(a, "y", at(6)).await.expect("begins"),
        2
    );
    let r = h.store.action(a).await.expect("reads").expect("exists");
    assert_eq!(r.attempts, 2);
    assert_eq!(
        r.started_at,
        Some(at(1)),
        "started_at is when the action first started"
    );
}

async fn retryable_failure_goes_back_to_pending_until_retry_at(h: Harness) {
    let plan = make_plan("p", vec![op("lock", "uid=a")]);
    insert(&h, &plan).await;
    let a = &plan.actions[0].id;
    let error = ConnectorError::rate_limited(Duration::from_secs(300), "429", "slow down");
    let retry_at = at(300);
    run_once(
        &h,
        a,
        at(0),
        AttemptResult::Failed {
            error: error.clone(),
            retry_at: Some(retry_at),
        },
    )
    .await;

    let r = h.store.action(a).await.expect("reads").expect("exists");
    assert_eq!(r.state, ActionState::Pending);
    assert_eq!(r.next_attempt_at, Some(retry_at));
    assert_eq!(r.error, Some(error));
    assert_eq!(r.finished_at, None);
    assert_eq!(
        (r.lease_owner, r.lease_expires_at),
        (None, None),
        "lease released"
    );

    assert!(
        lease(&h, "x", at(299)).await.is_empty(),
        "not before retry_at"
    );
    run_once(&h, a, retry_at, done()).await;
    let r = h.store.action(a).await.expect("reads").expect("exists");
    assert_eq!((r.state, r.attempts, r.error), (ActionState::Done, 2, None));
    assert_eq!(r.finished_at, Some(retry_at));
}

async fn permanent_failure_fails_the_action(h: Harness) {
    let plan = make_plan(
        "p",
        vec![op("lock", "uid=a"), op("delete", "uid=a").after(&[0])],
    );
    insert(&h, &plan).await;
    let a = &plan.actions[0].id;
    let error = ConnectorError::permanent("no_such_object", "gone wrong");
    run_once(
        &h,
        a,
        at(0),
        AttemptResult::Failed {
            error: error.clone(),
            retry_at: None,
        },
    )
    .await;
    let r = h.store.action(a).await.expect("reads").expect("exists");
    assert_eq!(
        (r.state, r.error, r.finished_at),
        (ActionState::Failed, Some(error), Some(at(0)))
    );
    assert_eq!(r.lease_owner, None);
    assert!(
        lease(&h, "x", at(100_000)).await.is_empty(),
        "neither it nor its dependent runs again"
    );
}

async fn skipped_outcome_keeps_its_reason(h: Harness) {
    let plan = make_plan(
        "p",
        vec![op("lock", "uid=a"), op("delete", "uid=a").after(&[0])],
    );
    insert(&h, &plan).await;
    let a = &plan.actions[0].id;
    let skipped = AttemptResult::Succeeded(Outcome::Skipped {
        reason: "protected account".into(),
    });
    run_once(&h, a, at(0), skipped).await;
    let r = h.store.action(a).await.expect("reads").expect("exists");
    assert_eq!(
        (r.state, r.note.as_deref()),
        (ActionState::Skipped, Some("protected account"))
    );
    assert_eq!(
        lease(&h, "x", at(1)).await,
        vec![plan.actions[1].id.clone()],
        "skipped counts as success"
    );
}

async fn finish_attempt_requires_the_lease(h: Harness) {
    let plan = make_plan("p", vec![op("lock", "uid=a")]);
    insert(&h, &plan).await;
    let a = &plan.actions[0].id;
    lease(&h, "x", at(0)).await;
    let err = h
        .store
        .begin_attempt(a, "y", at(1))
        .await
        .expect_err("y holds no lease");
    assert!(
        matches!(err, StoreError::LeaseLost { .. }),
        "expected LeaseLost, got {err:?}"
    );
    let n = h.store.begin_attempt(a, "x", at(1)).await.expect("begins");
    let err = h
        .store
        .finish_attempt(a, "y", n, &done(), at(2))
        .await
        .expect_err("y holds no lease");
    assert!(
        matches!(err, StoreError::LeaseLost { .. }),
        "expected LeaseLost, got {err:?}"
    );
    assert_eq!(state(&h, a).await, ActionState::Running);
    h.store
        .finish_attempt(a, "x", n, &done(), at(2))
        .await
        .expect("owner finishes");
    let err = h
        .store
        .finish_attempt(a, "x", n, &done(), at(3))
        .await
        .expect_err("finished twice");
    assert!(
        matches!(err, StoreError::LeaseLost { .. }),
        "expected LeaseLost, got {err:?}"
    );
}

/// The action's journal as (name, value) pairs, oldest first.
async fn journal(store: &dyn Store, id: &ActionId) -> Vec<(String, String)> {
    store
        .journal(id)
        .await
        .expect("journal reads")
        .into_iter()
        .map(|e| (e.name, e.value))
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

async fn journal_entries_come_back_in_order_and_are_audited(h: Harness) {
    let plan = make_plan("p", vec![op("rotate", "key-a"), op("rotate", "key-b")]);
    insert(&h, &plan).await;
    let (a, b) = (&plan.actions[0].id, &plan.actions[1].id);
    lease(&h, "x", at(0)).await;
    let n = h.store.begin_attempt(a, "x", at(1)).await.expect("begins");
    h.store.begin_attempt(b, "x", at(1)).await.expect("begins");
    let before = audited(&h).await.len();
    for (i, (name, value)) in [
        ("new_key", "AKIA1"),
        ("written", "AKIA1"),
        ("new_key", "AKIA2"),
    ]
    .into_iter()
    .enumerate()
    {
        h.store
            .record_journal(a, "x", n, name, value, at(2 + i as i64))
            .await
            .expect("the owner records");
    }
    h.store
        .record_journal(b, "x", 1, "new_key", "AKIB1", at(5))
        .await
        .expect("the owner records");

    let entries = h.store.journal(a).await.expect("reads");
    assert_eq!(
        entries
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_str(), e.at))
            .collect::<Vec<_>>(),
        vec![
            ("new_key", "AKIA1", at(2)),
            ("written", "AKIA1", at(3)),
            ("new_key", "AKIA2", at(4)),
        ],
        "oldest first, with names, values and times; the other action's entry is not mixed in"
    );
    assert_eq!(
        journal(h.store.as_ref(), b).await,
        pairs(&[("new_key", "AKIB1")])
    );
    assert_eq!(
        journal(h.store.as_ref(), &ActionId("nope".into())).await,
        vec![],
        "an unknown action has an empty journal"
    );

    let log = audited(&h).await;
    assert_eq!(
        log[before..].to_vec(),
        vec![
            row("action.journal", "job-p", Some(a), "x"),
            row("action.journal", "job-p", Some(a), "x"),
            row("action.journal", "job-p", Some(a), "x"),
            row("action.journal", "job-p", Some(b), "x"),
        ]
    );
    let first = h.store.audit_log().await.expect("reads")[before].seq;
    assert_eq!(
        audit_data(&h, first).await,
        serde_json::json!({ "attempt": n, "name": "new_key", "value": "AKIA1" })
    );
}

async fn journal_needs_the_running_attempt_and_writes_nothing_without_it(h: Harness) {
    let plan = make_plan("p", vec![op("rotate", "key-a")]);
    insert(&h, &plan).await;
    let a = &plan.actions[0].id;
    let ttl = Duration::from_secs(30);
    let refused = |err: StoreError| {
        assert!(
            matches!(err, StoreError::LeaseLost { .. }),
            "expected LeaseLost, got {err:?}"
        )
    };
    let baseline = audited(&h).await;

    // Not leased, then leased but no attempt begun, then an unknown action.
    refused(
        h.store
            .record_journal(a, "x", 1, "step", "created", at(0))
            .await
            .expect_err("no lease"),
    );
    h.store
        .lease_due(None, "x", at(0), ttl, 10)
        .await
        .expect("leases");
    refused(
        h.store
            .record_journal(a, "x", 1, "step", "created", at(1))
            .await
            .expect_err("no attempt running"),
    );
    refused(
        h.store
            .record_journal(&ActionId("nope".into()), "x", 1, "step", "created", at(1))
            .await
            .expect_err("no such action"),
    );
    // Someone else's running attempt, or another attempt number than the running one.
    let n = h.store.begin_attempt(a, "x", at(2)).await.expect("begins");
    let after_begin = audited(&h).await;
    refused(
        h.store
            .record_journal(a, "y", n, "step", "created", at(3))
            .await
            .expect_err("y does not own the attempt"),
    );
    refused(
        h.store
            .record_journal(a, "x", n + 1, "step", "created", at(3))
            .await
            .expect_err("not the running attempt"),
    );
    assert_eq!(
        journal(h.store.as_ref(), a).await,
        vec![],
        "nothing recorded"
    );
    assert_eq!(
        audited(&h).await,
        after_begin,
        "refused entries write no audit entry"
    );
    assert_eq!(after_begin.len(), baseline.len() + 1, "only action.attempt");

    // Ownership, not expiry, decides (as for finish_attempt): the owner of a lapsed lease still
    // records what it did, until another executor takes the action over.
    h.store
        .record_journal(a, "x", n, "step", "created", at(40))
        .await
        .expect("a lapsed lease nobody took over still records");
    let got = h
        .store
        .lease_due(None, "new", at(41), ttl, 10)
        .await
        .expect("leases");
    assert_eq!(got.len(), 1, "the expired lease is taken over");
    let before = audited(&h).await;
    refused(
        h.store
            .record_journal(a, "x", n, "step", "written", at(42))
            .await
            .expect_err("the old owner lost the action"),
    );
    assert_eq!(audited(&h).await, before, "no audit entry");
    assert_eq!(
        journal(h.store.as_ref(), a).await,
        pairs(&[("step", "created")])
    );

    // A finished action takes no more entries, even from its last owner.
    let m = h
        .store
        .begin_attempt(a, "new", at(43))
        .await
        .expect("begins");
    h.store
        .finish_attempt(a, "new", m, &done(), at(44))
        .await
        .expect("finishes");
    let before = audited(&h).await;
    refused(
        h.store
            .record_journal(a, "new", m, "step", "late", at(45))
            .await
            .expect_err("not running any more"),
    );
    assert_eq!(audited(&h).await, before, "no audit entry");
    assert_eq!(
        journal(h.store.as_ref(), a).await,
        pairs(&[("step", "created")])
    );
}

async fn journal_survives_a_new_attempt_and_is_seen_by_another_handle(h: Harness) {
    let plan = make_plan("p", vec![op("rotate", "key-a")]);
    insert(&h, &plan).await;
    let a = &plan.actions[0].id;
    assert_eq!(lease(&h, "x", at(0)).await, vec![a.clone()]);
    let n = h.store.begin_attempt(a, "x", at(1)).await.expect("begins");
    h.store
        .record_journal(a, "x", n, "new_key", "AKIA1", at(2))
        .await
        .expect("records");
    let retry_at = at(60);
    h.store
        .finish_attempt(
            a,
            "x",
            n,
            &AttemptResult::Failed {
                error: ConnectorError::retryable("unavailable", "down"),
                retry_at: Some(retry_at),
            },
            at(3),
        )
        .await
        .expect("finishes");

    // The next attempt, by another executor on its own handle (another process or replica).
    let other = h.reopen().await;
    let got = other
        .lease_due(None, "y", retry_at, HOUR, 10)
        .await
        .expect("leases");
    assert_eq!(got.len(), 1);
    let m = other.begin_attempt(a, "y", retry_at).await.expect("begins");
    assert_eq!(m, n + 1);
    assert_eq!(
        journal(other.as_ref(), a).await,
        pairs(&[("new_key", "AKIA1")]),
        "the new attempt finds what the earlier one recorded"
    );
    other
        .record_journal(a, "y", m, "written", "AKIA1", at(61))
        .await
        .expect("records");
    other
        .finish_attempt(a, "y", m, &done(), at(62))
        .await
        .expect("finishes");
    assert_eq!(
        journal(h.store.as_ref(), a).await,
        pairs(&[("new_key", "AKIA1"), ("written", "AKIA1")]),
        "both attempts' entries, in order, from either handle"
    );
    let attempts: Vec<u64> = h
        .store
        .audit_log()
        .await
        .expect("reads")
        .iter()
        .filter(|e| e.kind == "action.journal")
        .map(|e| {
            let data: serde_json::Value = serde_json::from_str(&e.data).expect("json");
            data["attempt"].as_u64().expect("attempt")
        })
        .collect();
    assert_eq!(attempts, vec![u64::from(n), u64::from(m)]);
    assert_eq!(
        verify_chain(&h.store.audit_log().await.expect("reads")),
        vec![]
    );
}

async fn mark_blocked_only_affects_pending(h: Harness) {
    let plan = make_plan(
        "p",
        vec![op("lock", "uid=a"), op("remove", "cn=g"), manual("laptop")],
    );
    insert(&h, &plan).await;
    let (a, b, m) = (
        &plan.actions[0].id,
        &plan.actions[1].id,
        &plan.actions[2].id,
    );
    run_once(&h, a, at(0), done()).await;
    h.store
        .mark_blocked(
            &[a.clone(), b.clone(), m.clone()],
            "prerequisite failed",
            "runner",
            at(1),
        )
        .await
        .expect("marks");
    assert_eq!(state(&h, a).await, ActionState::Done, "done stays done");
    assert_eq!(
        state(&h, m).await,
        ActionState::AwaitingAck,
        "manual stays awaiting"
    );
    let r = h.store.action(b).await.expect("reads").expect("exists");
    assert_eq!(
        (r.state, r.note.as_deref()),
        (ActionState::Blocked, Some("prerequisite failed"))
    );
    assert!(
        lease(&h, "x", at(2)).await.is_empty(),
        "blocked actions are not leased"
    );
}

async fn acknowledge_manual_action(h: Harness) {
    let plan = make_plan("p", vec![manual("laptop"), op("lock", "uid=a")]);
    insert(&h, &plan).await;
    let job = &plan.jobs[0].id;
    let (m, a) = (&plan.actions[0].id, &plan.actions[1].id);

    let err = h
        .store
        .acknowledge(job, &ActionId("nope".into()), "it", at(0))
        .await
        .expect_err("unknown");
    assert!(
        matches!(err, StoreError::NotFound(_)),
        "expected NotFound, got {err:?}"
    );
    let err = h
        .store
        .acknowledge(&JobId("other".into()), m, "it", at(0))
        .await
        .expect_err("wrong job");
    assert!(
        matches!(err, StoreError::NotFound(_)),
        "expected NotFound, got {err:?}"
    );
    let err = h
        .store
        .acknowledge(job, a, "it", at(0))
        .await
        .expect_err("not a manual action");
    assert!(
        matches!(err, StoreError::Conflict(_)),
        "expected Conflict, got {err:?}"
    );

    h.store
        .acknowledge(job, m, "it-desk", at(1))
        .await
        .expect("acknowledged");
    let r = h.store.action(m).await.expect("reads").expect("exists");
    assert_eq!(
        (r.state, r.note.as_deref(), r.finished_at),
        (ActionState::Acknowledged, Some("it-desk"), Some(at(1)))
    );
    let err = h
        .store
        .acknowledge(job, m, "it-desk", at(2))
        .await
        .expect_err("twice");
    assert!(
        matches!(err, StoreError::Conflict(_)),
        "expected Conflict, got {err:?}"
    );
}

async fn record_verdict_round_trip(h: Harness) {
    let plan = make_plan("p", vec![op("lock", "uid=a"), op("lock", "uid=b")]);
    insert(&h, &plan).await;
    let (a, b) = (&plan.actions[0].id, &plan.actions[1].id);
    let not = Verdict::NotConfirmed {
        detail: "still a member".into(),
    };
    h.store
        .record_verdict(a, &Verdict::Confirmed, "checker", at(10))
        .await
        .expect("records");
    h.store
        .record_verdict(b, &not, "checker", at(11))
        .await
        .expect("records");
    let ra = h.store.action(a).await.expect("reads").expect("exists");
    let rb = h.store.action(b).await.expect("reads").expect("exists");
    assert_eq!(
        (ra.verdict, ra.verified_at),
        (Some(Verdict::Confirmed), Some(at(10)))
    );
    assert_eq!((rb.verdict, rb.verified_at), (Some(not), Some(at(11))));
    let err = h
        .store
        .record_verdict(
            &ActionId("nope".into()),
            &Verdict::Confirmed,
            "checker",
            at(0),
        )
        .await
        .expect_err("unknown");
    assert!(
        matches!(err, StoreError::NotFound(_)),
        "expected NotFound, got {err:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Audit log

fn audit_entry(n: usize) -> NewAuditEntry {
    NewAuditEntry {
        // Sub-microsecond precision is dropped by the store, and the hash covers the stored time.
        at: at(n as i64) + chrono::Duration::nanoseconds(123_456_789),
        actor: format!("executor:host{}", n % 3),
        kind: "action.finished".into(),
        job_id: Some("job-p".into()),
        // Some entries name an action, some do not: both must hash and round-trip.
        action_id: (n < 10).then(|| format!("dir.lock.{n}")),
        data: format!("{{\"n\":{n},\"text\":\"caf\u{e9} \\\"quoted\\\"\"}}"),
    }
}

async fn append_many(h: &Harness, n: usize) {
    let mut tasks = Vec::new();
    for i in 0..n {
        let store = h.store.clone();
        tasks.push(tokio::spawn(async move {
            store.append_audit(&audit_entry(i)).await.expect("appends")
        }));
    }
    for t in tasks {
        t.await.expect("append task finishes");
    }
}

async fn audit_chain_is_linear_under_concurrent_appends(h: Harness) {
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = h.store.clone();
        tasks.push(tokio::spawn(async move {
            store.append_audit(&audit_entry(i)).await.expect("appends")
        }));
    }
    let mut returned = Vec::new();
    for t in tasks {
        returned.push(t.await.expect("append task finishes"));
    }
    let log = h.store.audit_log().await.expect("reads");
    assert_eq!(verify_chain(&log), vec![], "the chain is intact");
    assert_eq!(
        log.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=20).collect::<Vec<i64>>()
    );
    returned.sort_by_key(|e| e.seq);
    assert_eq!(returned, log, "append_audit returns exactly what is stored");
}

async fn audit_tamper_is_detected(h: Harness) {
    append_many(&h, 5).await;
    assert!(verify_chain(&h.store.audit_log().await.expect("reads")).is_empty());
    assert_eq!(
        h.raw("UPDATE audit_log SET data = '{\"n\":999}' WHERE seq = 3")
            .await,
        1
    );
    let problems = verify_chain(&h.store.audit_log().await.expect("reads"));
    assert_eq!(problems, vec![AuditProblem::Altered { seq: 3 }]);
}

async fn audit_deletion_is_detected(h: Harness) {
    append_many(&h, 5).await;
    assert_eq!(h.raw("DELETE FROM audit_log WHERE seq = 3").await, 1);
    let problems = verify_chain(&h.store.audit_log().await.expect("reads"));
    assert!(
        problems.contains(&AuditProblem::Gap {
            seq: 4,
            expected: 3
        }),
        "{problems:?}"
    );
    assert!(
        problems.contains(&AuditProblem::BrokenLink {
            seq: 4,
            prev_seq: 2
        }),
        "{problems:?}"
    );
    // Appending after a deletion still chains onto the last entry; the gap stays visible.
    h.store
        .append_audit(&audit_entry(9))
        .await
        .expect("appends");
    let log = h.store.audit_log().await.expect("reads");
    assert_eq!(log.last().map(|e| e.seq), Some(6));
    assert_eq!(
        verify_chain(&log).len(),
        problems.len(),
        "no new problem from the append"
    );
}

// ---------------------------------------------------------------------------------------------
// Audit entries written by the state changes themselves (same transaction as the change)

/// The audit log as (kind, job_id, action_id, actor), after checking the chain is intact.
async fn audited(h: &Harness) -> Vec<(String, Option<String>, Option<String>, String)> {
    let log = h.store.audit_log().await.expect("reads");
    assert_eq!(verify_chain(&log), vec![], "the chain is intact");
    log.into_iter()
        .map(|e| (e.kind, e.job_id, e.action_id, e.actor))
        .collect()
}

fn row(
    kind: &str,
    job: &str,
    action: Option<&ActionId>,
    actor: &str,
) -> (String, Option<String>, Option<String>, String) {
    (
        kind.to_string(),
        Some(job.to_string()),
        action.map(|a| a.0.clone()),
        actor.to_string(),
    )
}

/// The `data` of audit entry `seq`, parsed.
async fn audit_data(h: &Harness, seq: i64) -> serde_json::Value {
    let log = h.store.audit_log().await.expect("reads");
    let e = log
        .iter()
        .find(|e| e.seq == seq)
        .unwrap_or_else(|| panic!("audit entry {seq} exists"));
    serde_json::from_str(&e.data).expect("audit data is json")
}

async fn insert_plan_audits_each_job(h: Harness) {
    let one = make_plan("one", vec![op("lock", "uid=a"), op("remove", "cn=g")]);
    let two = make_plan("two", vec![op("lock", "uid=b")]);
    let mut plan = one.clone();
    plan.id = PlanId("plan-both".into());
    plan.jobs.extend(two.jobs.clone());
    plan.actions.extend(two.actions.clone());
    plan.fingerprint = Plan::fingerprint_of(&plan.snapshot, &plan.actions);
    h.store
        .insert_plan(&plan, "executor-1", at(5))
        .await
        .expect("recorded");

    assert_eq!(
        audited(&h).await,
        vec![
            row("plan.recorded", "job-one", None, "executor-1"),
            row("plan.recorded", "job-two", None, "executor-1"),
        ]
    );
    let log = h.store.audit_log().await.expect("reads");
    assert!(
        log.iter().all(|e| e.at == at(5)),
        "stamped with the given time"
    );
    let job = &plan.jobs[0];
    assert_eq!(
        audit_data(&h, 1).await,
        serde_json::json!({
            "plan_id": "plan-both",
            "fingerprint": plan.fingerprint,
            "subject": job.subject.id,
            "risk": job.risk,
            "effective_at": job.effective_at,
            "reason": job.reason,
            "requested_by": job.requested_by,
            "actions": 2,
        })
    );
    assert_eq!(audit_data(&h, 2).await["actions"], 1);
}

async fn attempts_and_verdicts_are_audited_with_the_change(h: Harness) {
    let plan = make_plan("p", vec![op("lock", "uid=a")]);
    insert(&h, &plan).await;
    let action = &plan.actions[0];
    let a = &action.id;
    let job = "job-p";

    assert_eq!(lease(&h, "x", at(0)).await, vec![a.clone()]);
    let n = h.store.begin_attempt(a, "x", at(1)).await.expect("begins");
    let error = ConnectorError::retryable("busy", "try later");
    let retry = AttemptResult::Failed {
        error: error.clone(),
        retry_at: Some(at(5)),
    };
    h.store
        .finish_attempt(a, "x", n, &retry, at(2))
        .await
        .expect("finishes");
    assert_eq!(lease(&h, "y", at(5)).await, vec![a.clone()]);
    let n = h.store.begin_attempt(a, "y", at(6)).await.expect("begins");
    h.store
        .finish_attempt(a, "y", n, &done(), at(7))
        .await
        .expect("finishes");
    h.store
        .record_verdict(a, &Verdict::Confirmed, "y", at(8))
        .await
        .expect("records");

    assert_eq!(
        audited(&h).await,
        vec![
            row("plan.recorded", job, None, "tester"),
            row("action.attempt", job, Some(a), "x"),
            row("action.attempt_failed", job, Some(a), "x"),
            row("action.attempt", job, Some(a), "y"),
            row("action.finished", job, Some(a), "y"),
            row("action.verified", job, Some(a), "y"),
        ]
    );
    let log = h.store.audit_log().await.expect("reads");
    let times: Vec<DateTime<Utc>> = log.iter().map(|e| e.at).collect();
    assert_eq!(times, vec![t0(), at(1), at(2), at(6), at(7), at(8)]);
    assert_eq!(
        audit_data(&h, 2).await,
        serde_json::json!({
            "key": action.key.0,
            "attempt": 1,
            "kind": action.kind.0,
            "target": action.target,
        })
    );
    assert_eq!(
        audit_data(&h, 3).await,
        serde_json::json!({ "attempt": 1, "error": error, "retry_at": at(5) })
    );
    assert_eq!(audit_data(&h, 4).await["attempt"], 2);
    assert_eq!(
        audit_data(&h, 5).await,
        serde_json::json!({ "attempt": 2, "outcome": Outcome::Done })
    );
    assert_eq!(
        audit_data(&h, 6).await,
        serde_json::json!({ "verdict": Verdict::Confirmed })
    );

    // A failure that ends the action is audited too, with no retry time.
    let plan = make_plan("q", vec![op("lock", "uid=b")]);
    insert(&h, &plan).await;
    let b = &plan.actions[0].id;
    let error = ConnectorError::permanent("no_such_object", "gone");
    run_once(
        &h,
        b,
        at(10),
        AttemptResult::Failed {
            error: error.clone(),
            retry_at: None,
        },
    )
    .await;
    let log = audited(&h).await;
    assert_eq!(
        log.last(),
        Some(&row("action.attempt_failed", "job-q", Some(b), "runner"))
    );
    assert_eq!(
        audit_data(&h, log.len() as i64).await,
        serde_json::json!({ "attempt": 1, "error": error, "retry_at": null })
    );
}

async fn mark_blocked_audits_only_what_it_blocked(h: Harness) {
    let plan = make_plan(
        "p",
        vec![
            op("lock", "uid=a"),
            op("remove", "cn=g").after(&[0]),
            op("delete", "uid=a").after(&[0, 1]),
            manual("laptop"),
        ],
    );
    insert(&h, &plan).await;
    let ids: Vec<ActionId> = plan.actions.iter().map(|a| a.id.clone()).collect();
    let (a, b, c, m) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    run_once(
        &h,
        a,
        at(0),
        AttemptResult::Failed {
            error: ConnectorError::permanent("denied", "no"),
            retry_at: None,
        },
    )
    .await;
    let before = audited(&h).await.len();
    h.store
        .mark_blocked(
            &[a.clone(), b.clone(), c.clone(), m.clone()],
            "a prerequisite action failed",
            "runner",
            at(1),
        )
        .await
        .expect("marks");
    let log = audited(&h).await;
    assert_eq!(
        log[before..].to_vec(),
        vec![
            row("action.blocked", "job-p", Some(b), "runner"),
            row("action.blocked", "job-p", Some(c), "runner"),
        ],
        "only the pending actions were blocked, so only they are audited"
    );
    assert_eq!(
        audit_data(&h, before as i64 + 1).await,
        serde_json::json!({ "reason": "a prerequisite action failed", "prerequisites": [a.0] })
    );
    assert_eq!(
        audit_data(&h, before as i64 + 2).await,
        serde_json::json!({ "reason": "a prerequisite action failed", "prerequisites": [a.0, b.0] })
    );

    // Nothing left to block: no entry.
    h.store
        .mark_blocked(&[b.clone(), c.clone()], "again", "runner", at(2))
        .await
        .expect("marks");
    assert_eq!(audited(&h).await.len(), log.len());
}

async fn acknowledge_is_audited_by_who_acknowledged(h: Harness) {
    let plan = make_plan("p", vec![manual("laptop")]);
    insert(&h, &plan).await;
    let m = &plan.actions[0].id;
    h.store
        .acknowledge(&plan.jobs[0].id, m, "alice", at(3))
        .await
        .expect("acknowledged");
    let log = audited(&h).await;
    assert_eq!(
        log.last(),
        Some(&row("action.acknowledged", "job-p", Some(m), "alice"))
    );
    assert_eq!(log.len(), 2);
    assert_eq!(
        audit_data(&h, 2).await,
        serde_json::json!({ "by": "alice" })
    );
    let entries = h.store.audit_log().await.expect("reads");
    assert_eq!(entries[1].at, at(3));
}

async fn failed_state_changes_write_no_audit_entry(h: Harness) {
    let plan = make_plan("p", vec![op("lock", "uid=a"), manual("laptop")]);
    insert(&h, &plan).await;
    let job = &plan.jobs[0].id;
    let (a, m) = (&plan.actions[0].id, &plan.actions[1].id);
    let baseline = audited(&h).await;
    assert_eq!(baseline.len(), 1, "plan.recorded");

    // A duplicate plan.
    h.store
        .insert_plan(&plan, "tester", at(1))
        .await
        .expect_err("a second insert fails");
    // No lease at all, then someone else's lease.
    let err = h
        .store
        .begin_attempt(a, "x", at(1))
        .await
        .expect_err("no lease");
    assert!(
        matches!(err, StoreError::LeaseLost { .. }),
        "expected LeaseLost, got {err:?}"
    );
    lease(&h, "x", at(1)).await;
    h.store
        .begin_attempt(a, "y", at(2))
        .await
        .expect_err("x holds the lease");
    // Finishing an attempt that was never begun, or one owned by someone else.
    h.store
        .finish_attempt(a, "x", 1, &done(), at(2))
        .await
        .expect_err("not running");
    // Acknowledging an unknown action, a non-manual one, then one of another job.
    h.store
        .acknowledge(job, &ActionId("nope".into()), "alice", at(3))
        .await
        .expect_err("unknown");
    let err = h
        .store
        .acknowledge(job, a, "alice", at(3))
        .await
        .expect_err("not awaiting acknowledgement");
    assert!(
        matches!(err, StoreError::Conflict(_)),
        "expected Conflict, got {err:?}"
    );
    h.store
        .acknowledge(&JobId("other".into()), m, "alice", at(3))
        .await
        .expect_err("wrong job");
    // A verdict for an unknown action.
    h.store
        .record_verdict(&ActionId("nope".into()), &Verdict::Confirmed, "x", at(4))
        .await
        .expect_err("unknown");
    assert_eq!(
        audited(&h).await,
        baseline,
        "failed calls roll back: no entry"
    );

    let n = h.store.begin_attempt(a, "x", at(5)).await.expect("begins");
    let before = audited(&h).await.len();
    h.store
        .finish_attempt(a, "y", n, &done(), at(6))
        .await
        .expect_err("y does not own the attempt");
    h.store
        .finish_attempt(a, "x", n + 1, &done(), at(6))
        .await
        .expect_err("not the running attempt");
    h.store
        .acknowledge(job, m, "alice", at(6))
        .await
        .expect("acknowledged");
    h.store
        .acknowledge(job, m, "bob", at(7))
        .await
        .expect_err("already acknowledged");
    let log = audited(&h).await;
    assert_eq!(
        log[before..].to_vec(),
        vec![row("action.acknowledged", "job-p", Some(m), "alice")]
    );
}

async fn state_change_rolls_back_when_its_audit_entry_fails(h: Harness) {
    let plan = make_plan("p", vec![op("lock", "uid=a")]);
    insert(&h, &plan).await;
    let a = &plan.actions[0].id;
    lease(&h, "x", at(0)).await;
    let (reject, allow) = match &h.backend {
        Backend::Sqlite(_) => (
            "CREATE TRIGGER reject_audit BEFORE INSERT ON audit_log \
             BEGIN SELECT RAISE(ABORT, 'audit log is read-only'); END;",
            "DROP TRIGGER reject_audit;",
        ),
        Backend::Postgres(_) => (
            "CREATE FUNCTION reject_audit() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'audit log is read-only'; END $$; \
             CREATE TRIGGER reject_audit BEFORE INSERT ON audit_log \
             FOR EACH ROW EXECUTE FUNCTION reject_audit();",
            "DROP TRIGGER reject_audit ON audit_log; DROP FUNCTION reject_audit();",
        ),
    };
    h.raw(reject).await;
    h.store
        .begin_attempt(a, "x", at(1))
        .await
        .expect_err("the audit entry cannot be written");
    let r = h.store.action(a).await.expect("reads").expect("exists");
    assert_eq!(
        (r.state, r.attempts, r.started_at),
        (ActionState::Pending, 0, None),
        "the state change rolled back with its audit entry"
    );
    let ledger = format!("UPDATE attempts SET owner = owner WHERE action_id = '{a}'");
    assert_eq!(h.raw(&ledger).await, 0, "no ledger row either");

    h.raw(allow).await;
    assert_eq!(
        h.store.begin_attempt(a, "x", at(2)).await.expect("begins"),
        1
    );
    assert_eq!(
        audited(&h).await.last(),
        Some(&row("action.attempt", "job-p", Some(a), "x"))
    );
}

// ---------------------------------------------------------------------------------------------
// The daemon's job queue

/// A job from `source` for employee `emp`, due at `due`, as intake records it.
fn new_job(name: &str, source: &str, event_id: Option<&str>, due: DateTime<Utc>) -> NewJob {
    let plan = make_plan(name, vec![]);
    let mut job = plan.jobs[0].clone();
    job.source = source.into();
    job.subject.employee_id = Some(format!("E-{name}"));
    job.subject.email = Some(format!("{name}@Example.org"));
    NewJob {
        job,
        source_event_id: event_id.map(str::to_string),
        event: Some(serde_json::json!({ "employee_id": format!("E-{name}") })),
        body_sha256: Some("ab".repeat(32)),
        received_at: t0(),
        due_at: due,
    }
}

async fn submit(h: &Harness, new: &NewJob, guard: BlastGuard) -> revoke_store::Submitted {
    h.store
        .submit_job(new, guard, "intake", t0())
        .await
        .expect("submit_job works")
}

async fn job_state(h: &Harness, name: &str) -> JobState {
    h.store
        .queued_job(&JobId(format!("job-{name}")))
        .await
        .expect("queued_job reads")
        .expect("job exists")
        .state
}

async fn redelivered_event_makes_one_job(h: Harness) {
    let first = submit(
        &h,
        &new_job("a", "bamboo", Some("evt-1"), t0()),
        BlastGuard::OFF,
    )
    .await;
    assert!(!first.duplicate);
    assert_eq!(first.state, JobState::Scheduled);
    // A redelivery carries the same event id; a different job id must not create a second job.
    let again = submit(
        &h,
        &new_job("b", "bamboo", Some("evt-1"), t0()),
        BlastGuard::OFF,
    )
    .await;
    assert!(again.duplicate);
    assert_eq!(again.job_id, JobId("job-a".into()));
    // The same event id from another source is another event.
    let other = submit(
        &h,
        &new_job("c", "hibob", Some("evt-1"), t0()),
        BlastGuard::OFF,
    )
    .await;
    assert!(!other.duplicate);
    // Eight concurrent deliveries of one new event: exactly one job.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = h.store.clone();
        let new = new_job(&format!("d{i}"), "bamboo", Some("evt-2"), t0());
        tasks.push(tokio::spawn(async move {
            store
                .submit_job(&new, BlastGuard::OFF, "intake", t0())
                .await
        }));
    }
    let mut fresh = 0;
    let mut ids = HashSet::new();
    for t in tasks {
        let s = t.await.unwrap().expect("every delivery is answered");
        ids.insert(s.job_id.clone());
        if !s.duplicate {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 1, "exactly one delivery makes the job");
    assert_eq!(ids.len(), 1, "every delivery names the same job: {ids:?}");
    let jobs = h.store.queued_jobs(None, 100).await.unwrap();
    assert_eq!(jobs.len(), 3, "{jobs:?}");
    let received: Vec<_> = h
        .store
        .audit_log()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "job.received")
        .collect();
    assert_eq!(received.len(), 3);
    let data: serde_json::Value = serde_json::from_str(&received[0].data).unwrap();
    assert_eq!(data["source_event_id"], "evt-1");
    assert_eq!(data["body_sha256"], "ab".repeat(32));
}

async fn blast_guard_holds_jobs_until_decided(h: Harness) {
    let guard = BlastGuard {
        max_jobs: 2,
        window: HOUR,
    };
    for (i, name) in ["g1", "g2", "g3", "g4"].iter().enumerate() {
        let s = submit(
            &h,
            &new_job(name, "hr", Some(&format!("e{i}")), t0()),
            guard,
        )
        .await;
        let want = if i < 2 {
            JobState::Scheduled
        } else {
            JobState::AwaitingApproval
        };
        assert_eq!(s.state, want, "job {name}");
        assert_eq!(s.recent_jobs, i as u64);
    }
    // Held jobs are never claimed.
    let claimed = h.store.claim_due_jobs("w", at(1), HOUR, 10).await.unwrap();
    let names: Vec<_> = claimed.iter().map(|j| j.job.id.0.as_str()).collect();
    assert_eq!(names, vec!["job-g1", "job-g2"]);
    let approved = h
        .store
        .decide_job(&JobId("job-g3".into()), true, "ops@corp", at(2))
        .await
        .unwrap();
    assert_eq!(approved.state, JobState::Scheduled);
    assert_eq!(approved.note.as_deref(), Some("approved by ops@corp"));
    let rejected = h
        .store
        .decide_job_because(
            &JobId("job-g4".into()),
            false,
            "  not a leaver: HR sent the wrong file  ",
            "ops@corp",
            at(2),
        )
        .await
        .unwrap();
    assert_eq!(rejected.state, JobState::Rejected);
    assert_eq!(
        rejected.note.as_deref(),
        Some("rejected by ops@corp: not a leaver: HR sent the wrong file")
    );
    // The reason is in the decision's own audit entry (one transaction), trimmed.
    let decision = h
        .store
        .job_audit(&JobId("job-g4".into()))
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.kind == "job.rejected")
        .expect("job.rejected");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&decision.data).unwrap(),
        serde_json::json!({"by": "ops@corp", "reason": "not a leaver: HR sent the wrong file"})
    );
    // Deciding twice, or an unknown job, is refused and writes nothing.
    let before = h.store.audit_log().await.unwrap().len();
    let again = h
        .store
        .decide_job(&JobId("job-g4".into()), true, "x", at(3))
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let unknown = h
        .store
        .decide_job(&JobId("job-nope".into()), true, "x", at(3))
        .await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound(_))),
        "{unknown:?}"
    );
    assert_eq!(h.store.audit_log().await.unwrap().len(), before);
    let kinds: Vec<String> = h
        .store
        .job_audit(&JobId("job-g3".into()))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, vec!["job.received", "job.held", "job.approved"]);
    let claimed = h.store.claim_due_jobs("w", at(4), HOUR, 10).await.unwrap();
    let names: Vec<_> = claimed.iter().map(|j| j.job.id.0.as_str()).collect();
    assert_eq!(
        names,
        vec!["job-g3"],
        "the approved job is due; the rejected one never"
    );
    // A window in the past counts nothing.
    let later = new_job("g5", "hr", Some("e9"), t0());
    let s = h
        .store
        .submit_job(&later, guard, "intake", t0() + chrono::Duration::hours(2))
        .await
        .unwrap();
    assert_eq!(s.state, JobState::Scheduled);
}

async fn claim_due_jobs_respects_due_time_and_claims(h: Harness) {
    submit(&h, &new_job("now", "hr", Some("1"), t0()), BlastGuard::OFF).await;
    submit(
        &h,
        &new_job("later", "hr", Some("2"), at(3600)),
        BlastGuard::OFF,
    )
    .await;
    let claimed = h
        .store
        .claim_due_jobs("a", at(1), Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].job.id.0, "job-now");
    // Claimed: not claimable by another until the claim expires.
    assert!(h
        .store
        .claim_due_jobs("b", at(2), Duration::from_secs(60), 10)
        .await
        .unwrap()
        .is_empty());
    let taken = h
        .store
        .claim_due_jobs("b", at(120), Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1, "an expired claim is taken over");
    let both = h
        .store
        .claim_due_jobs("c", at(3700), Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(
        both.iter().map(|j| j.job.id.0.as_str()).collect::<Vec<_>>(),
        vec!["job-now", "job-later"]
    );
    // Concurrent claimers split the work.
    for i in 0..20 {
        submit(
            &h,
            &new_job(&format!("p{i}"), "hr", Some(&format!("p{i}")), t0()),
            BlastGuard::OFF,
        )
        .await;
    }
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = h.store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .claim_due_jobs(&format!("w{w}"), at(10_000), HOUR, 8)
                .await
                .unwrap()
        }));
    }
    let mut seen = HashSet::new();
    for t in tasks {
        for j in t.await.unwrap() {
            assert!(
                seen.insert(j.job.id.0.clone()),
                "{} claimed twice",
                j.job.id
            );
        }
    }
    assert_eq!(seen.len(), 22);
}

async fn claimed_job_is_planned_once(h: Harness) {
    submit(&h, &new_job("pl", "hr", Some("1"), t0()), BlastGuard::OFF).await;
    let plan = make_plan(
        "pl",
        vec![
            op("lock", "u1"),
            op("delete", "u1").after(&[0]).not_before(at(86400)),
        ],
    );
    let job = JobId("job-pl".into());
    let refused = h.store.job_planned(&job, &plan, "w1", at(1)).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "unclaimed: {refused:?}"
    );
    assert!(
        h.store.plan(&plan.id).await.unwrap().is_none(),
        "nothing recorded"
    );
    h.store.claim_due_jobs("w1", at(1), HOUR, 10).await.unwrap();
    h.store.job_planned(&job, &plan, "w1", at(2)).await.unwrap();
    let q = h.store.queued_job(&job).await.unwrap().unwrap();
    assert_eq!(q.state, JobState::Planned);
    assert_eq!(q.plan_id.as_ref(), Some(&plan.id));
    assert_eq!(
        h.store.plan_of_job(&job).await.unwrap(),
        Some(plan.id.clone())
    );
    assert_eq!(
        lease(&h, "x", at(3)).await,
        vec![plan.actions[0].id.clone()]
    );
    let again = h.store.job_planned(&job, &plan, "w1", at(4)).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert!(h
        .store
        .claim_due_jobs("w2", at(99_999), HOUR, 10)
        .await
        .unwrap()
        .is_empty());
}

async fn planning_failure_retries_or_fails(h: Harness) {
    submit(&h, &new_job("f", "hr", Some("1"), t0()), BlastGuard::OFF).await;
    let job = JobId("job-f".into());
    h.store.claim_due_jobs("w", at(1), HOUR, 1).await.unwrap();
    h.store
        .job_planning_failed(&job, "w", "directory unreachable", Some(at(60)), at(2))
        .await
        .unwrap();
    assert_eq!(job_state(&h, "f").await, JobState::Scheduled);
    assert!(h
        .store
        .claim_due_jobs("w", at(59), Duration::from_secs(1), 1)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        h.store
            .claim_due_jobs("w", at(61), HOUR, 1)
            .await
            .unwrap()
            .len(),
        1
    );
    h.store
        .job_planning_failed(&job, "w", "unknown user", None, at(62))
        .await
        .unwrap();
    let q = h.store.queued_job(&job).await.unwrap().unwrap();
    assert_eq!(q.state, JobState::Failed);
    assert_eq!(q.note.as_deref(), Some("unknown user"));
    assert_eq!(q.planning_attempts, 2);
    let wrong = h
        .store
        .job_planning_failed(&job, "w", "again", None, at(63))
        .await;
    assert!(matches!(wrong, Err(StoreError::Conflict(_))), "{wrong:?}");
}

async fn cancellation_stops_what_has_not_run(h: Harness) {
    submit(
        &h,
        &new_job("cx", "gusto", Some("t1"), t0()),
        BlastGuard::OFF,
    )
    .await;
    let plan = make_plan(
        "cx",
        vec![
            op("lock", "u1"),
            op("delete", "u1").after(&[0]).not_before(at(86400)),
            manual("laptop"),
        ],
    );
    let job = JobId("job-cx".into());
    h.store.claim_due_jobs("w", at(1), HOUR, 1).await.unwrap();
    h.store.job_planned(&job, &plan, "w", at(1)).await.unwrap();
    run_once(&h, &plan.actions[0].id, at(2), done()).await;
    let cancel_ref = IntakeRef {
        source: "gusto".into(),
        event_id: "t2".into(),
        body_sha256: None,
    };
    let target = CancelTarget::Subject {
        employee_id: None,
        email: Some("cx@example.ORG".into()),
    };
    let c = h
        .store
        .cancel_jobs(
            &target,
            "termination cancelled in gusto",
            Some(&cancel_ref),
            "intake",
            at(3),
        )
        .await
        .unwrap();
    assert!(!c.duplicate);
    assert_eq!(c.job_ids, vec![job.clone()]);
    assert_eq!(
        c.actions,
        vec![plan.actions[1].id.clone(), plan.actions[2].id.clone()]
    );
    assert_eq!(
        state(&h, &plan.actions[0].id).await,
        ActionState::Done,
        "what ran stays done"
    );
    assert_eq!(state(&h, &plan.actions[1].id).await, ActionState::Cancelled);
    assert_eq!(state(&h, &plan.actions[2].id).await, ActionState::Cancelled);
    let rec = h.store.action(&plan.actions[1].id).await.unwrap().unwrap();
    assert_eq!(rec.note.as_deref(), Some("termination cancelled in gusto"));
    assert!(
        lease(&h, "x", at(100_000)).await.is_empty(),
        "the delete never comes due"
    );
    assert_eq!(job_state(&h, "cx").await, JobState::Cancelled);
    // Redelivered cancellation: nothing more.
    let before = h.store.audit_log().await.unwrap().len();
    let again = h
        .store
        .cancel_jobs(&target, "again", Some(&cancel_ref), "intake", at(4))
        .await
        .unwrap();
    assert!(again.duplicate && again.job_ids.is_empty());
    assert_eq!(h.store.audit_log().await.unwrap().len(), before);
    // By job id: a closed job is a conflict; an unknown one not found.
    let closed = h
        .store
        .cancel_jobs(&CancelTarget::Job(job.clone()), "x", None, "api", at(5))
        .await;
    assert!(matches!(closed, Err(StoreError::Conflict(_))), "{closed:?}");
    let unknown = h
        .store
        .cancel_jobs(
            &CancelTarget::Job(JobId("nope".into())),
            "x",
            None,
            "api",
            at(5),
        )
        .await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound(_))),
        "{unknown:?}"
    );
    // A scheduled job is cancelled before it is planned.
    submit(
        &h,
        &new_job("cy", "hr", Some("t9"), at(86400)),
        BlastGuard::OFF,
    )
    .await;
    let c = h
        .store
        .cancel_jobs(
            &CancelTarget::Job(JobId("job-cy".into())),
            "rehired",
            None,
            "api",
            at(6),
        )
        .await
        .unwrap();
    assert_eq!(c.job_ids.len(), 1);
    assert!(h
        .store
        .claim_due_jobs("w", at(999_999), HOUR, 10)
        .await
        .unwrap()
        .is_empty());
    let kinds: Vec<String> = h
        .store
        .job_audit(&job)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        vec![
            "job.received",
            "plan.recorded",
            "action.attempt",
            "action.finished",
            "action.cancelled",
            "action.cancelled",
            "job.cancelled"
        ]
    );
    assert!(verify_chain(&h.store.audit_log().await.unwrap()).is_empty());
}

async fn queue_stats_and_readiness(h: Harness) {
    h.store.ready().await.expect("a migrated store is ready");
    submit(&h, &new_job("s", "hr", Some("1"), t0()), BlastGuard::OFF).await;
    let plan = make_plan(
        "s",
        vec![
            op("lock", "u"),
            op("delete", "u").not_before(at(86400)),
            manual("m"),
        ],
    );
    h.store.claim_due_jobs("w", at(1), HOUR, 1).await.unwrap();
    h.store
        .job_planned(&JobId("job-s".into()), &plan, "w", at(1))
        .await
        .unwrap();
    let s = h.store.queue_stats(at(2)).await.unwrap();
    assert_eq!(
        (
            s.due_actions,
            s.running_actions,
            s.scheduled_jobs,
            s.awaiting_approval
        ),
        (1, 0, 0, 0)
    );
    let s = h.store.queue_stats(at(90_000)).await.unwrap();
    assert_eq!(s.due_actions, 2);
    h.raw("DELETE FROM _sqlx_migrations WHERE version = 2")
        .await;
    assert!(
        h.store.ready().await.is_err(),
        "a missing migration is not ready"
    );
}

// ---------------------------------------------------------------------------------------------
// Same event id, another body

fn sha(c: char) -> String {
    c.to_string().repeat(64)
}

async fn same_event_with_another_body_is_a_conflict(h: Harness) {
    let mut first = new_job("b1", "hr", Some("msg_1"), at(86400));
    first.body_sha256 = Some(sha('a'));
    assert!(!submit(&h, &first, BlastGuard::OFF).await.duplicate);
    let audit_before = h.store.audit_log().await.unwrap().len();
    // The same body again (another job id, as a redelivery makes): a duplicate naming the first job.
    let mut same = new_job("b2", "hr", Some("msg_1"), at(86400));
    same.body_sha256 = Some(sha('a'));
    let again = submit(&h, &same, BlastGuard::OFF).await;
    assert!(again.duplicate);
    assert_eq!(again.job_id, JobId("job-b1".into()));
    // Another body under the same id: refused, naming both hashes and the first job.
    let mut other = new_job("b3", "hr", Some("msg_1"), t0());
    other.body_sha256 = Some(sha('b'));
    let refused = h
        .store
        .submit_job(&other, BlastGuard::OFF, "intake", t0())
        .await;
    let Err(StoreError::BodyConflict(c)) = &refused else {
        panic!("expected a body conflict, found {refused:?}");
    };
    assert_eq!(
        (
            c.source.as_str(),
            c.event_id.as_str(),
            c.first_kind.as_str()
        ),
        ("hr", "msg_1", "termination")
    );
    assert_eq!(c.first_job_id, Some(JobId("job-b1".into())));
    assert_eq!(
        (c.first_body_sha256.clone(), c.body_sha256.clone()),
        (sha('a'), sha('b'))
    );
    let text = refused.unwrap_err().to_string();
    assert!(
        text.contains(&sha('a')) && text.contains(&sha('b')) && text.contains("job-b1"),
        "{text}"
    );
    // Nothing was written: the first job is as it was, there is no second one, no audit entry.
    let q = h
        .store
        .queued_job(&JobId("job-b1".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(q.due_at, at(86400));
    assert!(h
        .store
        .queued_job(&JobId("job-b3".into()))
        .await
        .unwrap()
        .is_none());
    assert_eq!(h.store.audit_log().await.unwrap().len(), audit_before);
    // An unknown hash on either side cannot tell: a duplicate, as before.
    let mut unknown = new_job("b4", "hr", Some("msg_1"), t0());
    unknown.body_sha256 = None;
    assert!(submit(&h, &unknown, BlastGuard::OFF).await.duplicate);

    // Cancellations: the same body is a duplicate, another body a conflict; both write nothing.
    let cancel = |c: char| IntakeRef {
        source: "hr".into(),
        event_id: "msg_2".into(),
        body_sha256: Some(sha(c)),
    };
    let target = CancelTarget::Subject {
        employee_id: Some("E-b1".into()),
        email: None,
    };
    let c = h
        .store
        .cancel_jobs(&target, "rehired", Some(&cancel('c')), "intake", at(1))
        .await
        .unwrap();
    assert_eq!(c.job_ids, vec![JobId("job-b1".into())]);
    let audit_before = h.store.audit_log().await.unwrap().len();
    let dup = h
        .store
        .cancel_jobs(&target, "rehired", Some(&cancel('c')), "intake", at(2))
        .await
        .unwrap();
    assert!(dup.duplicate);
    let refused = h
        .store
        .cancel_jobs(&target, "rehired", Some(&cancel('d')), "intake", at(3))
        .await;
    let Err(StoreError::BodyConflict(c)) = &refused else {
        panic!("expected a body conflict, found {refused:?}");
    };
    assert_eq!(c.first_kind, "cancellation");
    assert_eq!(c.first_job_id, Some(JobId("job-b1".into())));
    assert_eq!(
        (c.first_body_sha256.clone(), c.body_sha256.clone()),
        (sha('c'), sha('d'))
    );
    // A termination resent under the cancellation's id with another body: a conflict too.
    let mut late = new_job("b5", "hr", Some("msg_2"), t0());
    late.body_sha256 = Some(sha('e'));
    let refused = h
        .store
        .submit_job(&late, BlastGuard::OFF, "intake", t0())
        .await;
    assert!(
        matches!(&refused, Err(StoreError::BodyConflict(c)) if c.first_kind == "cancellation"),
        "{refused:?}"
    );
    assert_eq!(h.store.audit_log().await.unwrap().len(), audit_before);
}

// ---------------------------------------------------------------------------------------------
// Job listing

/// A job named `name` from `source`, received `secs` after t0.
fn listed_job(name: &str, source: &str, secs: i64) -> NewJob {
    let mut new = new_job(name, source, Some(&format!("ev-{name}")), at(86400 * 365));
    new.received_at = at(secs);
    new
}

/// Every job id `query` lists, page by page (`limit` per page), and how many pages it took.
async fn all_pages(h: &Harness, query: &JobQuery) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut q = query.clone();
    loop {
        let page = h.store.list_jobs(&q).await.expect("list_jobs works");
        pages += 1;
        assert!(page.jobs.len() <= q.limit as usize);
        ids.extend(page.jobs.iter().map(|j| j.job.id.0.clone()));
        match page.next {
            Some(next) => {
                assert!(!page.jobs.is_empty(), "a page with a next cursor has jobs");
                // The cursor survives the round trip through its text form.
                q.after = Some(JobCursor::parse(&next.encode()).expect("a cursor parses"));
            }
            None => return (ids, pages),
        }
        assert!(pages < 10_000, "paging never ends");
    }
}

async fn jobs_are_listed_in_keyset_pages(h: Harness) {
    // 60 jobs over 20 distinct times: three share each time, so ties need the job id to order.
    let mut want = Vec::new();
    for i in 0..60 {
        let name = format!("l{i:02}");
        submit(
            &h,
            &listed_job(&name, "hr", i64::from(i / 3)),
            BlastGuard::OFF,
        )
        .await;
        want.push((i / 3, format!("job-{name}")));
    }
    want.sort();
    want.reverse();
    let want: Vec<String> = want.into_iter().map(|(_, id)| id).collect();
    let (ids, pages) = all_pages(
        &h,
        &JobQuery {
            limit: 7,
            ..JobQuery::default()
        },
    )
    .await;
    assert_eq!(ids, want, "newest first, ties by job id, each exactly once");
    assert_eq!(pages, 9, "60 jobs in pages of 7; no empty last page");
    // A page that ends exactly at the last job has no next.
    let page = h
        .store
        .list_jobs(&JobQuery {
            limit: 60,
            ..JobQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.jobs.len(), 60);
    assert!(page.next.is_none());
    // Jobs received while a client pages do not shift or repeat the pages after its cursor.
    let first = h
        .store
        .list_jobs(&JobQuery {
            limit: 10,
            ..JobQuery::default()
        })
        .await
        .unwrap();
    for i in 0..5 {
        submit(
            &h,
            &listed_job(&format!("new{i}"), "hr", 1000 + i),
            BlastGuard::OFF,
        )
        .await;
    }
    let mut rest = all_pages(
        &h,
        &JobQuery {
            limit: 10,
            after: first.next.clone(),
            ..JobQuery::default()
        },
    )
    .await
    .0;
    let mut seen: Vec<String> = first.jobs.iter().map(|j| j.job.id.0.clone()).collect();
    seen.append(&mut rest);
    assert_eq!(
        seen, want,
        "the new jobs come before the cursor, not in the later pages"
    );
    // The default and the cap: 100 by default, never more than 1000, at least 1.
    assert_eq!(JobQuery::default().limit, 100);
    let one = h
        .store
        .list_jobs(&JobQuery {
            limit: 0,
            ..JobQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(one.jobs.len(), 1);
    // Cursors are opaque but checked.
    for bad in [
        "",
        "zz",
        "not-a-cursor",
        &hex_of("12"),
        &hex_of("x.job"),
        &hex_of("12."),
    ] {
        assert!(JobCursor::parse(bad).is_none(), "{bad:?} is not a cursor");
    }
}

fn hex_of(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

async fn job_listing_filters(h: Harness) {
    for i in 0..30 {
        let source = if i % 3 == 0 { "api" } else { "hr" };
        submit(
            &h,
            &listed_job(&format!("f{i:02}"), source, i64::from(i)),
            BlastGuard::OFF,
        )
        .await;
    }
    // Some states besides scheduled: f00..f04 cancelled, f05 held and rejected.
    for i in 0..5 {
        h.store
            .cancel_jobs(
                &CancelTarget::Job(JobId(format!("job-f{i:02}"))),
                "x",
                None,
                "api",
                at(100),
            )
            .await
            .unwrap();
    }
    h.raw("UPDATE job_queue SET state = 'rejected' WHERE job_id = 'job-f05'")
        .await;
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let list = |q: JobQuery| {
        let h = &h;
        async move { all_pages(h, &JobQuery { limit: 4, ..q }).await.0 }
    };
    // Several states: any of them.
    assert_eq!(
        list(JobQuery {
            states: vec![JobState::Rejected, JobState::Cancelled],
            ..JobQuery::default()
        })
        .await,
        ids(&["job-f05", "job-f04", "job-f03", "job-f02", "job-f01", "job-f00"])
    );
    assert_eq!(
        list(JobQuery {
            states: vec![JobState::Scheduled],
            ..JobQuery::default()
        })
        .await
        .len(),
        24
    );
    // Subject: the employee id, the email (any case) or the subject id, exactly.
    for subject in ["E-f07", "F07@example.ORG", "subject-f07"] {
        assert_eq!(
            list(JobQuery {
                subject: Some(subject.into()),
                ..JobQuery::default()
            })
            .await,
            ids(&["job-f07"]),
            "subject {subject}"
        );
    }
    for near in ["E-f0", "e-f07", "subject-f", "%", "f07@example"] {
        assert!(
            list(JobQuery {
                subject: Some(near.into()),
                ..JobQuery::default()
            })
            .await
            .is_empty(),
            "{near} matches nothing"
        );
    }
    // Source, and the time range: since inclusive, until exclusive.
    let api = list(JobQuery {
        source: Some("api".into()),
        ..JobQuery::default()
    })
    .await;
    assert_eq!(api.len(), 10);
    assert!(
        api.iter()
            .all(|id| id[5..].parse::<u32>().unwrap() % 3 == 0),
        "{api:?}"
    );
    assert_eq!(
        list(JobQuery {
            since: Some(at(10)),
            until: Some(at(14)),
            ..JobQuery::default()
        })
        .await,
        ids(&["job-f13", "job-f12", "job-f11", "job-f10"])
    );
    // Every filter at once.
    assert_eq!(
        list(JobQuery {
            states: vec![JobState::Scheduled],
            source: Some("hr".into()),
            since: Some(at(5)),
            until: Some(at(12)),
            subject: Some("E-f11".into()),
            ..JobQuery::default()
        })
        .await,
        ids(&["job-f11"])
    );
}

async fn a_batch_is_submitted_in_order_with_each_result_its_own(h: Harness) {
    let earlier = submit(
        &h,
        &new_job("z", "bamboo", Some("evt-3"), t0()),
        BlastGuard::OFF,
    )
    .await;
    assert!(!earlier.duplicate);
    let mut changed = new_job("d", "bamboo", Some("evt-3"), t0());
    changed.body_sha256 = Some("cd".repeat(32));
    let batch: Vec<(NewJob, String)> = vec![
        new_job("a", "bamboo", Some("evt-1"), t0()),
        // The same event again within the batch: a duplicate of the first.
        new_job("b", "bamboo", Some("evt-1"), t0()),
        new_job("c", "hibob", Some("evt-2"), t0()),
        // An event received before, now with another body.
        changed,
        new_job("e", "api", None, t0()),
    ]
    .into_iter()
    .map(|n| (n, "intake:test".to_string()))
    .collect();
    // The guard counts the jobs before the batch and the batch's own jobs before each one.
    let guard = BlastGuard {
        max_jobs: 3,
        window: HOUR,
    };
    let results = h
        .store
        .submit_jobs(&batch, guard, t0())
        .await
        .expect("the batch commits");
    assert_eq!(results.len(), 5);
    let ok = |i: usize| results[i].as_ref().expect("a result").clone();
    assert!(!ok(0).duplicate);
    assert_eq!(ok(0).state, JobState::Scheduled);
    assert!(ok(1).duplicate, "{:?}", results[1]);
    assert_eq!(ok(1).job_id, JobId("job-a".into()));
    assert_eq!(ok(2).state, JobState::Scheduled);
    match &results[3] {
        Err(StoreError::BodyConflict(c)) => {
            assert_eq!(c.first_job_id, Some(JobId("job-z".into())));
            assert_eq!(c.body_sha256, "cd".repeat(32));
        }
        other => panic!("expected a body conflict, found {other:?}"),
    }
    assert_eq!(
        ok(4).state,
        JobState::AwaitingApproval,
        "the fourth job in the window is held"
    );
    for (name, want) in [
        ("a", Some(JobState::Scheduled)),
        ("b", None),
        ("c", Some(JobState::Scheduled)),
        ("d", None),
        ("e", Some(JobState::AwaitingApproval)),
    ] {
        let found = h
            .store
            .queued_job(&JobId(format!("job-{name}")))
            .await
            .expect("reads")
            .map(|q| q.state);
        assert_eq!(found, want, "job-{name}");
    }
    let log = h.store.audit_log().await.expect("reads");
    let received: Vec<&str> = log
        .iter()
        .filter(|e| e.kind == "job.received")
        .filter_map(|e| e.job_id.as_deref())
        .collect();
    assert_eq!(received, vec!["job-z", "job-a", "job-c", "job-e"]);
    assert_eq!(log.iter().filter(|e| e.kind == "job.held").count(), 1);
    assert_eq!(verify_chain(&log), vec![]);
    // A batch whose transaction fails (here: a job id already recorded) writes nothing.
    let clash = vec![
        (
            new_job("f", "bamboo", Some("evt-9"), t0()),
            "intake:test".to_string(),
        ),
        (
            new_job("a", "bamboo", Some("evt-10"), t0()),
            "intake:test".to_string(),
        ),
    ];
    assert!(h
        .store
        .submit_jobs(&clash, BlastGuard::OFF, t0())
        .await
        .is_err());
    assert_eq!(
        h.store
            .queued_job(&JobId("job-f".into()))
            .await
            .expect("reads"),
        None,
        "nothing of a failed batch is kept"
    );
}

// ---------------------------------------------------------------------------------------------
// Batches of held jobs

async fn held_jobs_form_batches_decided_as_one_unit(h: Harness) {
    let guard = BlastGuard {
        max_jobs: 2,
        window: HOUR,
    };
    let job = |n: &str| JobId(format!("job-{n}"));
    // Two imported jobs pass; the next three are held, in one batch of the import.
    for (i, name) in ["i1", "i2", "i3", "i4", "i5"].iter().enumerate() {
        let mut new = new_job(name, "import", Some(&format!("i{i}")), t0());
        if *name == "i5" {
            new.event = Some(serde_json::json!({ "department": "Sales" }));
        }
        submit(&h, &new, guard).await;
    }
    // Held jobs of another source make a batch of their own.
    for (i, name) in ["h1", "h2"].iter().enumerate() {
        submit(
            &h,
            &new_job(name, "hr", Some(&format!("h{i}")), t0()),
            guard,
        )
        .await;
    }
    let q = |n: &'static str| {
        let store = h.store.clone();
        async move { store.queued_job(&job(n)).await.unwrap().unwrap() }
    };
    assert_eq!(
        q("i1").await.batch_id,
        None,
        "a job never held has no batch"
    );
    let b1 = q("i3").await.batch_id.expect("a held job has its batch");
    assert_eq!(q("i5").await.batch_id.as_deref(), Some(b1.as_str()));
    let b2 = q("h1").await.batch_id.expect("held");
    assert_ne!(b1, b2, "one batch per source");
    assert_eq!(q("h2").await.batch_id.as_deref(), Some(b2.as_str()));
    let held = h
        .store
        .audit_log()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "job.held")
        .map(|e| serde_json::from_str::<serde_json::Value>(&e.data).unwrap()["batch_id"].clone())
        .collect::<Vec<_>>();
    assert_eq!(held.len(), 5);
    assert_eq!(held[0], serde_json::json!(b1), "job.held names the batch");

    let open = h.store.batches(true, 10).await.unwrap();
    let got: Vec<(&str, &str, u64, u64)> = open
        .iter()
        .map(|b| {
            (
                b.batch_id.as_str(),
                b.source.as_str(),
                b.held,
                b.awaiting_approval,
            )
        })
        .collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.contains(&(b1.as_str(), "import", 3, 3)), "{got:?}");
    assert!(got.contains(&(b2.as_str(), "hr", 2, 2)), "{got:?}");

    let detail = h.store.batch(&b1, 2).await.unwrap().expect("the batch");
    assert_eq!(detail.batch.awaiting_approval, 3);
    assert_eq!(detail.by_state.get("awaiting_approval"), Some(&3));
    assert_eq!(detail.by_source.get("import"), Some(&3));
    assert_eq!(detail.by_department.get("Sales"), Some(&1));
    assert_eq!(detail.by_department.get("unknown"), Some(&2));
    assert_eq!(detail.sample.len(), 2, "the sample is capped");
    assert_eq!(detail.sample[0].job_id, job("i3"), "oldest first");
    assert!(h.store.batch("b-nope", 5).await.unwrap().is_none());

    // A straggler decided on its own leaves two in the batch.
    h.store
        .decide_job(&job("i4"), true, "ops@corp", at(1))
        .await
        .unwrap();
    let before = h.store.audit_log().await.unwrap().len();
    // The reviewer saw 3: the batch changed since, so nothing is decided.
    let stale = h
        .store
        .decide_batch(&b1, true, Some(3), "ops@corp", at(2))
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    assert_eq!(
        h.store.audit_log().await.unwrap().len(),
        before,
        "a refusal writes nothing"
    );
    assert_eq!(job_state(&h, "i3").await, JobState::AwaitingApproval);

    let decided = h
        .store
        .decide_batch(&b1, true, Some(2), "ops@corp", at(2))
        .await
        .unwrap();
    assert_eq!(decided.state, JobState::Scheduled);
    assert_eq!(decided.job_ids, vec![job("i3"), job("i5")]);
    assert_eq!(decided.batch.decision.as_deref(), Some("approved"));
    assert_eq!(decided.batch.decided_by.as_deref(), Some("ops@corp"));
    assert_eq!(decided.batch.awaiting_approval, 0);
    assert!(decided.batch.closed_at.is_some());
    for n in ["i3", "i5"] {
        let j = q(n).await;
        assert_eq!(j.state, JobState::Scheduled);
        assert_eq!(
            j.note.as_deref(),
            Some(format!("approved by ops@corp with batch {b1}").as_str())
        );
    }
    // Audit: one entry per job (its evidence says who approved it, in which batch of how many)
    // and one for the batch naming every job.
    let log = h.store.audit_log().await.unwrap();
    let new: Vec<_> = log[before..].iter().collect();
    assert_eq!(new.len(), 3, "{new:?}");
    assert_eq!(
        (new[0].kind.as_str(), new[0].job_id.as_deref()),
        ("job.approved", Some("job-i3"))
    );
    let data: serde_json::Value = serde_json::from_str(&new[1].data).unwrap();
    assert_eq!(data["batch_id"], serde_json::json!(b1));
    assert_eq!(data["batch_jobs"], 2);
    assert_eq!(new[2].kind, "batch.approved");
    assert_eq!(new[2].actor, "ops@corp");
    assert_eq!(new[2].job_id, None);
    let data: serde_json::Value = serde_json::from_str(&new[2].data).unwrap();
    assert_eq!(data["job_ids"], serde_json::json!(["job-i3", "job-i5"]));
    assert_eq!(data["count"], 2);
    assert!(verify_chain(&log).is_empty());
    // The approved jobs are due now; the batch is closed to a second decision.
    let claimed = h.store.claim_due_jobs("w", at(3), HOUR, 10).await.unwrap();
    let mut names: Vec<_> = claimed.iter().map(|j| j.job.id.0.clone()).collect();
    names.sort();
    assert_eq!(
        names,
        vec!["job-i1", "job-i2", "job-i3", "job-i4", "job-i5"]
    );
    let again = h.store.decide_batch(&b1, false, None, "x", at(4)).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    // A hold after the decision opens a new batch, even within the window.
    submit(&h, &new_job("i6", "import", Some("i6"), t0()), guard).await;
    let b3 = q("i6").await.batch_id.expect("held");
    assert_ne!(b3, b1);
    let open: Vec<String> = h
        .store
        .batches(true, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.batch_id)
        .collect();
    assert_eq!(open.len(), 2);
    assert!(open.contains(&b3) && open.contains(&b2) && !open.contains(&b1));
    assert_eq!(h.store.batches(false, 10).await.unwrap().len(), 3);
    // Jobs held through group commit (`submit_jobs`) join the open batch the same way.
    let grouped: Vec<(NewJob, String)> = ["i7", "i8"]
        .iter()
        .map(|n| (new_job(n, "import", Some(n), t0()), "intake".to_string()))
        .collect();
    for r in h.store.submit_jobs(&grouped, guard, t0()).await.unwrap() {
        assert_eq!(r.unwrap().state, JobState::AwaitingApproval);
    }
    assert_eq!(q("i7").await.batch_id.as_deref(), Some(b3.as_str()));
    assert_eq!(q("i8").await.batch_id.as_deref(), Some(b3.as_str()));
    let b3_now = h.store.batch(&b3, 0).await.unwrap().expect("the batch");
    assert_eq!((b3_now.batch.held, b3_now.batch.awaiting_approval), (3, 3));

    // Rejecting a batch rejects every job it holds; they are never claimed.
    let rejected = h
        .store
        .decide_batch(&b2, false, None, "ops@corp", at(5))
        .await
        .unwrap();
    assert_eq!(rejected.state, JobState::Rejected);
    assert_eq!(rejected.job_ids, vec![job("h1"), job("h2")]);
    assert_eq!(job_state(&h, "h1").await, JobState::Rejected);
    assert!(h
        .store
        .claim_due_jobs("w2", at(6), HOUR, 10)
        .await
        .unwrap()
        .is_empty());
    let unknown = h.store.decide_batch("b-nope", true, None, "x", at(6)).await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound(_))),
        "{unknown:?}"
    );
}

async fn verdicts_recorded_together_all_or_none(h: Harness) {
    let plan = make_plan(
        "p",
        vec![
            op("lock", "uid=a"),
            op("lock", "uid=b"),
            op("lock", "uid=c"),
        ],
    );
    insert(&h, &plan).await;
    let ids: Vec<ActionId> = plan.actions.iter().map(|a| a.id.clone()).collect();
    let not = Verdict::NotConfirmed {
        detail: "still a member".into(),
    };
    // An unknown action in the batch: nothing of it is written.
    let err = h
        .store
        .record_verdicts(
            &[
                (ids[0].clone(), Verdict::Confirmed),
                (ActionId("nope".into()), Verdict::Confirmed),
            ],
            "checker",
            at(5),
        )
        .await
        .expect_err("unknown action");
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    let ra = h
        .store
        .action(&ids[0])
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(ra.verdict, None, "the batch wrote nothing");
    h.store
        .record_verdicts(
            &[
                (ids[0].clone(), Verdict::Confirmed),
                (ids[1].clone(), not.clone()),
            ],
            "checker",
            at(10),
        )
        .await
        .expect("records");
    let got: Vec<_> = {
        let mut v = Vec::new();
        for id in &ids {
            let r = h.store.action(id).await.expect("reads").expect("exists");
            v.push((r.verdict, r.verified_at));
        }
        v
    };
    assert_eq!(
        got,
        vec![
            (Some(Verdict::Confirmed), Some(at(10))),
            (Some(not), Some(at(10))),
            (None, None)
        ]
    );
    let log = h.store.audit_log().await.expect("reads");
    let verified: Vec<_> = log
        .iter()
        .filter(|e| e.kind == "action.verified")
        .map(|e| (e.action_id.clone(), e.actor.clone()))
        .collect();
    assert_eq!(
        verified,
        vec![
            (Some(ids[0].0.clone()), "checker".to_string()),
            (Some(ids[1].0.clone()), "checker".to_string())
        ]
    );
    assert_eq!(verify_chain(&log), vec![]);
}

/// Console sessions: what one replica records another reads (they share the store); an idle or
/// expired session is gone; sign-out ends it; a full table refuses a new sign-in.
async fn console_sessions_are_shared_expire_and_end(h: Harness) {
    use revoke_store::NewConsoleSession;
    let new = |id: &str, created: i64| NewConsoleSession {
        id_sha256: id.into(),
        token_name: "ops".into(),
        scope: "operator".into(),
        csrf: format!("csrf-{id}"),
        created_at: at(created),
        expires_at: at(created + 8 * 3600),
        idle_until: at(created + 1800),
    };
    assert!(h
        .store
        .create_console_session(&new("a", 0), 2)
        .await
        .unwrap());
    let seen = h
        .store
        .console_session("a", at(60), at(60 + 1800))
        .await
        .unwrap()
        .expect("live");
    assert_eq!(
        (
            seen.token_name.as_str(),
            seen.scope.as_str(),
            seen.csrf.as_str()
        ),
        ("ops", "operator", "csrf-a")
    );
    assert_eq!(
        seen.idle_until,
        at(60 + 1800),
        "a request restarts the idle time"
    );
    // Still alive past its first idle deadline, since the request above moved it.
    assert!(h
        .store
        .console_session("a", at(1810), at(1810 + 1800))
        .await
        .unwrap()
        .is_some());
    // The idle time never passes the expiry, and the lifetime ends a session in use ("k" is
    // kept busy: its idle deadline is just short of its expiry).
    let busy = NewConsoleSession {
        idle_until: at(8 * 3600 - 5),
        ..new("k", 0)
    };
    assert!(h.store.create_console_session(&busy, 3).await.unwrap());
    let late = h
        .store
        .console_session("k", at(8 * 3600 - 10), at(8 * 3600 + 1790))
        .await
        .unwrap()
        .expect("alive ten seconds before its expiry");
    assert_eq!(late.idle_until, at(8 * 3600), "capped at the expiry");
    assert!(
        h.store
            .console_session("k", at(8 * 3600), at(8 * 3600 + 1800))
            .await
            .unwrap()
            .is_none(),
        "expired at its lifetime, though in use"
    );
    assert!(
        h.store
            .console_session("k", at(1), at(2))
            .await
            .unwrap()
            .is_none(),
        "and deleted"
    );
    // "a" had no request for its idle time since at(1810).
    assert!(h
        .store
        .console_session("a", at(1810 + 1800), at(1810 + 3600))
        .await
        .unwrap()
        .is_none());
    // Idle: no request for the idle time.
    assert!(h
        .store
        .create_console_session(&new("b", 100), 2)
        .await
        .unwrap());
    assert!(h
        .store
        .console_session("b", at(100 + 1800), at(100 + 3600))
        .await
        .unwrap()
        .is_none());
    // Sign-out; an unknown id is nothing.
    assert!(h
        .store
        .create_console_session(&new("c", 200), 2)
        .await
        .unwrap());
    h.store.end_console_session("c").await.unwrap();
    h.store.end_console_session("never").await.unwrap();
    assert!(h
        .store
        .console_session("c", at(201), at(300))
        .await
        .unwrap()
        .is_none());
    // At most `max_live` live sessions; expired ones do not count.
    assert!(h
        .store
        .create_console_session(&new("d", 300), 2)
        .await
        .unwrap());
    assert!(h
        .store
        .create_console_session(&new("e", 301), 2)
        .await
        .unwrap());
    assert!(
        !h.store
            .create_console_session(&new("f", 302), 2)
            .await
            .unwrap(),
        "full"
    );
    assert!(h
        .store
        .console_session("f", at(303), at(400))
        .await
        .unwrap()
        .is_none());
    assert!(
        h.store
            .create_console_session(&new("g", 300 + 1801), 2)
            .await
            .unwrap(),
        "d and e idled out, so there is room"
    );
    // A duplicate id is a conflict, never a second row.
    let dup = h
        .store
        .create_console_session(&new("g", 300 + 1802), 3)
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
}
