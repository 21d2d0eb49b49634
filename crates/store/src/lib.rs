//! Durable state of revoked: jobs, plans, actions, attempts, action journals, verdicts and the
//! hash-chained audit log.
//!
//! One [`Store`] trait, two backends: SQLite (the embedded default) and Postgres (several replicas
//! sharing one queue). Both pass the same conformance suite (`tests/conformance.rs`).
//!
//! Every state change a `Store` method makes is audited by the method itself: the audit entry is
//! appended in the same transaction as the change, so the change and its evidence are committed
//! together or not at all, stamped with the `now` the method was given (to the microsecond).
//! [`Store::append_audit`] is for events that change no state.

mod audit;
mod common;
mod error;
mod jobs;
mod model;
mod postgres;
mod sessions;
mod sqlite;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use revoke_core::{ActionId, JobId, JournalEntry, Plan, PlanId, Verdict};

pub use audit::{verify_chain, AuditEntry, AuditProblem, NewAuditEntry, GENESIS_HASH};
pub use error::StoreError;
pub use jobs::{
    BatchDecision, BatchDetail, BatchJob, BlastGuard, BodyConflict, CancelTarget, Cancellation,
    IntakeRef, JobBatch, JobCursor, JobPage, JobQuery, JobQueue, JobState, NewJob, QueueStats,
    QueuedJob, Submitted,
};
pub use model::{ActionRecord, ActionState, AttemptEnd, AttemptResult, JobRecord, ResultLine};
pub use postgres::PostgresStore;
pub use sessions::{ConsoleSession, ConsoleSessions, NewConsoleSession};
pub use sqlite::SqliteStore;

/// What [`Store::record_attempts`] answers: per attempt that ended, then per attempt begun (its
/// number), `Ok` or `StoreError::LeaseLost`.
pub type RecordedAttempts = (Vec<Result<(), StoreError>>, Vec<Result<u32, StoreError>>);

/// The durable state every executor, CLI and daemon replica shares.
#[async_trait]
pub trait Store: JobQueue + ConsoleSessions + Send + Sync + std::fmt::Debug {
    /// Records a plan with its jobs and actions: manual actions as `AwaitingAck`, the others
    /// `Pending`. Fails with `StoreError::Conflict` if the plan id is already recorded.
    ///
    /// Audit, in the same transaction: one `plan.recorded` entry per job (by `actor`, with the
    /// job's id and no action id), data `{"plan_id", "fingerprint", "subject", "risk",
    /// "effective_at", "reason", "requested_by", "actions"}` (`actions`: how many the job has).
    async fn insert_plan(
        &self,
        plan: &Plan,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    async fn plan(&self, id: &PlanId) -> Result<Option<Plan>, StoreError>;

    /// The plan a job belongs to.
    async fn plan_of_job(&self, job: &JobId) -> Result<Option<PlanId>, StoreError>;

    /// Every job, newest first.
    async fn jobs(&self) -> Result<Vec<JobRecord>, StoreError>;

    /// The actions of a plan with their state, in plan order.
    async fn actions(&self, plan: &PlanId) -> Result<Vec<ActionRecord>, StoreError>;

    async fn action(&self, id: &ActionId) -> Result<Option<ActionRecord>, StoreError>;

    /// Applied actions (done, already done, skipped; never manual) that have no verdict and
    /// finished at or before `finished_by`, of one plan or of all: an executor that died between
    /// recording the result and reading it back left them so.
    async fn unverified(
        &self,
        plan: Option<&PlanId>,
        finished_by: DateTime<Utc>,
    ) -> Result<Vec<ActionRecord>, StoreError>;

    /// Leases up to `limit` runnable actions for `owner` until `now + ttl`, so no other executor
    /// runs them at once. Runnable: state `Pending` (or `Running` with an expired lease, i.e. an
    /// executor died), `not_before` and `next_attempt_at` not after `now`, not a manual action,
    /// and every dependency in a successful state. `plan` limits the search to one plan.
    /// Postgres: `FOR UPDATE SKIP LOCKED`; SQLite: inside `BEGIN IMMEDIATE`.
    async fn lease_due(
        &self,
        plan: Option<&PlanId>,
        owner: &str,
        now: DateTime<Utc>,
        ttl: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<ActionRecord>, StoreError> {
        self.lease_due_within(plan, owner, now, ttl, limit, &BTreeMap::new())
            .await
    }

    /// [`Store::lease_due`], taking at most `room[c]` actions of each connector instance `c`
    /// named in `room` (none of an instance with no room; the others without a bound): an
    /// executor whose slots for an instance are taken leases what it can run, in the lease order.
    async fn lease_due_within(
        &self,
        plan: Option<&PlanId>,
        owner: &str,
        now: DateTime<Utc>,
        ttl: std::time::Duration,
        limit: u32,
        room: &BTreeMap<String, usize>,
    ) -> Result<Vec<ActionRecord>, StoreError>;

    /// Extends a lease `owner` holds; false when it was lost.
    async fn renew_lease(
        &self,
        id: &ActionId,
        owner: &str,
        now: DateTime<Utc>,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError>;

    /// Records the next attempt (action key and attempt number) BEFORE the mutating call is sent;
    /// sets the state to `Running`. Fails with `StoreError::LeaseLost` unless `owner` holds a live
    /// lease. Returns the attempt number (1 for the first).
    ///
    /// Audit, in the same transaction: `action.attempt` by `owner`, data `{"attempt", "key",
    /// "kind", "target"}`. Nothing is written when it fails.
    async fn begin_attempt(
        &self,
        id: &ActionId,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<u32, StoreError>;

    /// Records the next attempts of several leased actions in one transaction, each as
    /// [`Store::begin_attempt`] would; with `renew`, also extends each lease to `now + renew` in
    /// the same write (a lease renewal and the attempt at once). Per action, in order: its attempt
    /// number, or `StoreError::LeaseLost` (that action writes nothing, the others are recorded).
    /// An error of the whole call writes nothing.
    async fn begin_attempts(
        &self,
        ids: &[ActionId],
        owner: &str,
        now: DateTime<Utc>,
        renew: Option<std::time::Duration>,
    ) -> Result<Vec<Result<u32, StoreError>>, StoreError>;

    /// Records how several attempts ended in one transaction, each as [`Store::finish_attempt`]
    /// would. Per attempt, in order: `Ok`, or `StoreError::LeaseLost` (that attempt writes
    /// nothing, the others are recorded). An error of the whole call (an attempt row missing
    /// under a running action is `NotFound`) writes nothing.
    async fn finish_attempts(
        &self,
        ends: &[AttemptEnd],
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError>;

    /// Records how several attempts ended and begins several others, in one transaction: as
    /// [`Store::finish_attempts`] for `ends`, then as [`Store::begin_attempts`] for `begins`
    /// (an executor writes the results and the attempts that arrive at the same time together).
    /// Answers for `ends`, then for `begins`, each in order.
    async fn record_attempts(
        &self,
        ends: &[AttemptEnd],
        begins: &[ActionId],
        renew: Option<std::time::Duration>,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<RecordedAttempts, StoreError>;

    /// Records how an attempt ended and releases the lease. A retryable error with `retry_at`
    /// puts the action back to `Pending` (due again at `retry_at`); otherwise it ends the action.
    /// Fails with `StoreError::LeaseLost` unless `owner` still owns the running attempt.
    ///
    /// Audit, in the same transaction, by `owner`: `action.finished` with data `{"attempt",
    /// "outcome"}` for a success, `action.attempt_failed` with `{"attempt", "error", "retry_at"}`
    /// for a failure (`retry_at` null when it ends the action). Nothing is written when it fails.
    async fn finish_attempt(
        &self,
        id: &ActionId,
        owner: &str,
        attempt: u32,
        result: &AttemptResult,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Appends `name = value` to the action's journal (see `revoke_core::Journal`), so that a
    /// later attempt, in any process, finds what this one did before it stopped. Fails with
    /// `StoreError::LeaseLost` unless `owner` still owns running attempt number `attempt` (the
    /// rule of `finish_attempt`: ownership, not lease expiry, decides).
    ///
    /// Audit, in the same transaction: `action.journal` by `owner`, data `{"attempt", "name",
    /// "value"}`. Nothing is written when it fails.
    async fn record_journal(
        &self,
        id: &ActionId,
        owner: &str,
        attempt: u32,
        name: &str,
        value: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The action's journal, oldest first, across all its attempts (empty for an unknown action).
    async fn journal(&self, id: &ActionId) -> Result<Vec<JournalEntry>, StoreError>;

    /// Marks actions `Blocked` (a prerequisite failed); only those still `Pending`, the others
    /// (and unknown ids) are left alone.
    ///
    /// Audit, in the same transaction: one `action.blocked` by `actor` per action it blocked, data
    /// `{"reason", "prerequisites"}` (the ids of the action's prerequisites not in a successful
    /// state once the blocking is done, in plan order).
    async fn mark_blocked(
        &self,
        ids: &[ActionId],
        reason: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Records the read-only re-check of a finished action. `StoreError::NotFound` if there is
    /// no such action.
    ///
    /// Audit, in the same transaction: `action.verified` by `actor`, data `{"verdict"}`.
    async fn record_verdict(
        &self,
        id: &ActionId,
        verdict: &Verdict,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Records several verdicts as [`Store::record_verdict`] would, in one transaction: all or
    /// none (`NotFound` for an unknown action writes nothing).
    async fn record_verdicts(
        &self,
        verdicts: &[(ActionId, Verdict)],
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Acknowledges a manual action on behalf of `by`. `StoreError::NotFound` if there is no such
    /// action of that job, `StoreError::Conflict` if it is not awaiting acknowledgement.
    ///
    /// Audit, in the same transaction: `action.acknowledged` by `by`, data `{"by"}`. Nothing is
    /// written when it fails.
    async fn acknowledge(
        &self,
        job: &JobId,
        id: &ActionId,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Appends to the audit log, chaining the entry to the previous one's hash. Serialized across
    /// writers (SQLite: `BEGIN IMMEDIATE`; Postgres: an advisory transaction lock). Only for
    /// events that change no state (e.g. a lost lease, a received request): the state-changing
    /// methods above write their own entries.
    async fn append_audit(&self, entry: &NewAuditEntry) -> Result<AuditEntry, StoreError>;

    /// The whole audit log in order.
    async fn audit_log(&self) -> Result<Vec<AuditEntry>, StoreError>;
}

/// Opens (and migrates) the store named by a URL: `sqlite://PATH` or `postgres://...`.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(PostgresStore::open(url).await?))
    } else {
        Err(StoreError::Config(format!(
            "unsupported store url: expected sqlite://PATH or postgres://..., found {:?}",
            url.split(':').next().unwrap_or(url)
        )))
    }
}
