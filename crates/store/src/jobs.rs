//! The daemon's job queue: a job from the moment a termination is received until it has a plan
//! (scheduled, held by the blast-radius guard, approved or rejected, cancelled, planned), and the
//! intake ledger that makes a redelivered event find the job its first delivery made.

use std::time::Duration;

use chrono::{DateTime, Utc};
use revoke_core::{ActionId, Job, JobId, Plan, PlanId};

use crate::{AuditEntry, StoreError};
use serde::{Deserialize, Serialize};

/// Where a daemon job stands. Once `Planned`, its actions say the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for its due time (the effective time; at once when high risk).
    Scheduled,
    /// Held by the blast-radius guard until a person approves or rejects it.
    AwaitingApproval,
    Planned,
    /// Planning failed for good (an unknown user, a permanent error).
    Failed,
    Cancelled,
    Rejected,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Scheduled,
        JobState::AwaitingApproval,
        JobState::Planned,
        JobState::Failed,
        JobState::Cancelled,
        JobState::Rejected,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            JobState::Scheduled => "scheduled",
            JobState::AwaitingApproval => "awaiting_approval",
            JobState::Planned => "planned",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job the daemon was asked to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewJob {
    pub job: Job,
    /// The source's own id of the event, the deduplication key within `job.source`.
    pub source_event_id: Option<String>,
    /// The normalized event as received, kept as evidence.
    pub event: Option<serde_json::Value>,
    pub body_sha256: Option<String>,
    pub received_at: DateTime<Utc>,
    /// When planning may start: the effective time, or the time received when high risk.
    pub due_at: DateTime<Utc>,
}

/// More than `max_jobs` new jobs within `window` holds further ones for approval; 0 turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlastGuard {
    pub max_jobs: u32,
    pub window: Duration,
}

impl BlastGuard {
    pub const OFF: BlastGuard = BlastGuard {
        max_jobs: 0,
        window: Duration::ZERO,
    };
}

/// What `submit_job` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    pub job_id: JobId,
    pub state: JobState,
    /// The event was received before: nothing new was recorded and `job_id` is the first job.
    pub duplicate: bool,
    /// How many jobs the guard counted in its window before this one (when it was on).
    pub recent_jobs: u64,
}

/// A job in the queue with everything recorded about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedJob {
    pub job: Job,
    pub state: JobState,
    pub source_event_id: Option<String>,
    pub event: Option<serde_json::Value>,
    pub received_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub plan_id: Option<PlanId>,
    pub planning_attempts: u32,
    /// Why it failed, was cancelled or rejected, or who approved it.
    pub note: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// The batch the blast-radius guard held it in (see [`JobBatch`]); `None` when never held.
    #[serde(default)]
    pub batch_id: Option<String>,
}

/// Which jobs a cancellation is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelTarget {
    Job(JobId),
    /// Every open job of a person (an HR source cancels by employee, not by our job id).
    Subject {
        employee_id: Option<String>,
        email: Option<String>,
    },
}

/// An event a cancellation came from, deduplicated like a termination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntakeRef {
    pub source: String,
    pub event_id: String,
    pub body_sha256: Option<String>,
}

/// An event id seen before, arriving with a different body: what `submit_job` and `cancel_jobs`
/// refuse with [`StoreError::BodyConflict`]. Both hashes are hex SHA-256 of the raw bodies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyConflict {
    pub source: String,
    pub event_id: String,
    /// What the first delivery was: `termination` or `cancellation`.
    pub first_kind: String,
    /// The job the first delivery made (a termination) or cancelled first (a cancellation).
    pub first_job_id: Option<JobId>,
    pub first_body_sha256: String,
    pub body_sha256: String,
}

impl std::fmt::Display for BodyConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "event {:?} of source {}: expected the body first received (sha256 {}), found a different body (sha256 {}); the first {}",
            self.event_id, self.source, self.first_body_sha256, self.body_sha256, self.first_kind
        )?;
        match &self.first_job_id {
            Some(j) => write!(f, " (job {j}) stands"),
            None => write!(f, " stands"),
        }
    }
}

/// Which daemon jobs `list_jobs` returns: every filter given must hold (several states: any of
/// them). Newest first by `received_at`, ties broken by job id (descending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobQuery {
    /// Any of these states; empty: every state.
    pub states: Vec<JobState>,
    /// The person, exactly: employee id, username (the subject id) or email (case-insensitive).
    pub subject: Option<String>,
    /// The intake source name (`api`, `import`, `[intake.<name>]`).
    pub source: Option<String>,
    /// Received at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Received before this time.
    pub until: Option<DateTime<Utc>>,
    /// At most this many jobs (1 to [`JobQuery::MAX_LIMIT`]; larger values are capped).
    pub limit: u32,
    /// Continue after the last job of an earlier page (its `next`).
    pub after: Option<JobCursor>,
}

impl JobQuery {
    pub const DEFAULT_LIMIT: u32 = 100;
    pub const MAX_LIMIT: u32 = 1000;
}

impl Default for JobQuery {
    fn default() -> Self {
        JobQuery {
            states: Vec::new(),
            subject: None,
            source: None,
            since: None,
            until: None,
            limit: Self::DEFAULT_LIMIT,
            after: None,
        }
    }
}

/// Where a page of jobs ended: the last job's (received_at, job_id) key. Keyset paging, so a job
/// received while a client pages neither shifts nor repeats what it reads next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobCursor {
    received_at_us: i64,
    job_id: String,
}

impl JobCursor {
    pub(crate) fn new(received_at_us: i64, job_id: String) -> Self {
        JobCursor {
            received_at_us,
            job_id,
        }
    }

    pub(crate) fn received_at_us(&self) -> i64 {
        self.received_at_us
    }

    pub(crate) fn job_id(&self) -> &str {
        &self.job_id
    }

    /// The cursor as an opaque, URL-safe token.
    pub fn encode(&self) -> String {
        hex::encode(format!("{}.{}", self.received_at_us, self.job_id))
    }

    /// A token made by [`JobCursor::encode`]; `None` when it is not one.
    pub fn parse(token: &str) -> Option<Self> {
        let raw = String::from_utf8(hex::decode(token).ok()?).ok()?;
        let (at, id) = raw.split_once('.')?;
        if id.is_empty() {
            return None;
        }
        Some(JobCursor {
            received_at_us: at.parse().ok()?,
            job_id: id.to_string(),
        })
    }
}

/// One page of `list_jobs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobPage {
    pub jobs: Vec<QueuedJob>,
    /// Set when more jobs match: pass it as `after` for the next page.
    pub next: Option<JobCursor>,
}

/// What `cancel_jobs` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancellation {
    pub job_ids: Vec<JobId>,
    /// Actions that had not run and now never will.
    pub actions: Vec<ActionId>,
    pub duplicate: bool,
}

/// Numbers for the queue gauges and readiness.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Actions due now and not finished (pending or running, not manual).
    pub due_actions: u64,
    pub running_actions: u64,
    pub scheduled_jobs: u64,
    pub awaiting_approval: u64,
}

/// Jobs the blast-radius guard held together, approved or rejected as one unit: a held job joins
/// the open batch of its source (an import is one, a burst of one HR source's events is one),
/// the one whose last hold is less than a guard window ago and that was not decided as a whole;
/// else it opens a new batch. Deciding a batch closes it: a later hold opens another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobBatch {
    pub batch_id: String,
    /// The intake source of its jobs (`import`, `api`, `[intake.<name>]`).
    pub source: String,
    pub opened_at: DateTime<Utc>,
    pub last_held_at: DateTime<Utc>,
    /// Jobs held into it.
    pub held: u64,
    /// Of those, the ones still awaiting approval (what deciding the batch would decide).
    pub awaiting_approval: u64,
    /// When it was decided as a whole (`None`: still open to holds within the window).
    pub closed_at: Option<DateTime<Utc>>,
    /// `approved` or `rejected`, once decided as a whole.
    pub decision: Option<String>,
    pub decided_by: Option<String>,
}

/// One job of a batch, as a person reviewing the batch sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchJob {
    pub job_id: JobId,
    pub subject: String,
    pub employee_id: Option<String>,
    pub email: Option<String>,
    pub reason: String,
    pub risk: String,
    pub effective_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub state: JobState,
}

/// What a batch contains: counts of its jobs awaiting approval by source, reason, risk and
/// department (from the event's `department` when the source gives one, else `unknown`), every
/// job by state, the range of effective times and a sample of the jobs awaiting approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchDetail {
    #[serde(flatten)]
    pub batch: JobBatch,
    pub by_state: std::collections::BTreeMap<String, u64>,
    pub by_source: std::collections::BTreeMap<String, u64>,
    pub by_reason: std::collections::BTreeMap<String, u64>,
    pub by_risk: std::collections::BTreeMap<String, u64>,
    pub by_department: std::collections::BTreeMap<String, u64>,
    pub effective_from: Option<DateTime<Utc>>,
    pub effective_to: Option<DateTime<Utc>>,
    /// The first jobs awaiting approval, oldest first.
    pub sample: Vec<BatchJob>,
}

/// What deciding a batch did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchDecision {
    pub batch: JobBatch,
    /// `scheduled` (approved) or `rejected`: where every decided job now stands.
    pub state: JobState,
    /// Every job decided, oldest first.
    pub job_ids: Vec<JobId>,
}

/// The daemon's job queue; part of every `Store`. Like the rest of the store, every state change
/// writes its audit entry in the same transaction.
#[async_trait::async_trait]
pub trait JobQueue: Send + Sync {
    /// Records a job the daemon was asked to run, unless its event was received before: then
    /// nothing is written and the first job is returned with `duplicate: true`, or, when the
    /// event came with a different body (both hashes known), `StoreError::BodyConflict`. The job is
    /// `Scheduled`, or `AwaitingApproval` when the guard counts `max_jobs` or more jobs received
    /// within its window. Serialized across writers (SQLite: `BEGIN IMMEDIATE`; Postgres: an
    /// advisory lock), so two deliveries of one event never make two jobs.
    ///
    /// Audit, in the same transaction: `job.received` by `actor` (data: source, source_event_id,
    /// body_sha256, received_at, subject, risk, effective_at, due_at, reason, requested_by, state)
    /// and, when held, `job.held` (reason, recent_jobs, limit).
    ///
    /// Durable when it returns: on SQLite the write-ahead log is synced after the commit.
    async fn submit_job(
        &self,
        new: &NewJob,
        guard: BlastGuard,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Submitted, StoreError>;

    /// Group commit: submits every `(job, actor)` of `batch` as [`JobQueue::submit_job`] would, in
    /// order, in one transaction with one sync, and returns each one's result (a duplicate or a
    /// `BodyConflict` is that job's result and writes nothing of it). A later job of the batch
    /// sees the earlier ones: the same event twice is one job and a duplicate, and the guard
    /// counts them. When the transaction itself fails, nothing of the batch is written and the
    /// error is returned: submit each on its own then.
    async fn submit_jobs(
        &self,
        batch: &[(NewJob, String)],
        guard: BlastGuard,
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<Submitted, StoreError>>, StoreError>;

    /// [`JobQueue::submit_jobs`] without the sync: returns once the batch is committed, before it
    /// is durable. Nothing of it may be reported to anyone before a [`JobQueue::sync_intake`]
    /// that started after this returned has returned; meanwhile the next batch can be written
    /// (the group commit overlaps one batch's sync with the next one's writes).
    async fn submit_jobs_committed(
        &self,
        batch: &[(NewJob, String)],
        guard: BlastGuard,
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<Submitted, StoreError>>, StoreError>;

    /// Makes every intake commit made before it started durable (SQLite: syncs the write-ahead
    /// log; Postgres: a commit already is). Several may run at once.
    async fn sync_intake(&self) -> Result<(), StoreError>;

    /// Cancels open jobs (scheduled, awaiting approval or planned): a planned job's actions that
    /// have not started (pending, awaiting acknowledgement) become `Cancelled` with `reason`;
    /// running and finished ones are left alone. With `intake`, the event is deduplicated like a
    /// termination (`duplicate: true`, nothing written; a different body than the first
    /// delivery's is `StoreError::BodyConflict`). `Job` target: `NotFound` if unknown,
    /// `Conflict` if not open.
    ///
    /// Audit, in the same transaction: `action.cancelled` per action and `job.cancelled` per job.
    async fn cancel_jobs(
        &self,
        target: &CancelTarget,
        reason: &str,
        intake: Option<&IntakeRef>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Cancellation, StoreError>;

    /// Leases up to `limit` scheduled jobs that are due, for `owner` to plan, until `now + ttl`.
    async fn claim_due_jobs(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        ttl: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<QueuedJob>, StoreError>;

    /// Records the plan of a claimed job and marks it `Planned`, in one transaction (audited as
    /// `insert_plan` is). `Conflict` unless `owner` holds the claim and the job is still scheduled.
    async fn job_planned(
        &self,
        job: &JobId,
        plan: &Plan,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Records that planning a claimed job failed: due again at `retry_at`, or `Failed` for good.
    /// Audit: `job.planning_failed` (error, retry_at).
    async fn job_planning_failed(
        &self,
        job: &JobId,
        owner: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Approves (back to `Scheduled`) or rejects a job held by the blast-radius guard, saying
    /// why (`reason`, empty for none). `NotFound`, or `Conflict` unless it is awaiting approval.
    /// Audit, in the same transaction: `job.approved` or `job.rejected` by `by`, with the reason;
    /// the job's note names both.
    async fn decide_job_because(
        &self,
        job: &JobId,
        approve: bool,
        reason: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<QueuedJob, StoreError>;

    /// [`JobQueue::decide_job_because`] without a reason.
    async fn decide_job(
        &self,
        job: &JobId,
        approve: bool,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<QueuedJob, StoreError> {
        self.decide_job_because(job, approve, "", by, now).await
    }

    /// Batches of held jobs (see [`JobBatch`]), newest first, at most `limit`; with `open_only`,
    /// only those with a job still awaiting approval.
    async fn batches(&self, open_only: bool, limit: u32) -> Result<Vec<JobBatch>, StoreError>;

    /// One batch and what it contains, with up to `sample` of its jobs awaiting approval.
    async fn batch(&self, id: &str, sample: u32) -> Result<Option<BatchDetail>, StoreError>;

    /// Approves (back to `Scheduled`) or rejects, as one unit, every job of a batch still
    /// awaiting approval, and closes the batch. With `expect`, refused (`Conflict`, nothing
    /// written) unless exactly that many jobs await approval in it: the count the person
    /// reviewed, so a job that joined since is never decided unseen. `NotFound`; `Conflict` when
    /// the batch was decided already or has no job awaiting approval (each decided on its own).
    /// Serialized with intake, so no job joins the batch while it is decided.
    ///
    /// Audit, in the same transaction: `job.approved` or `job.rejected` per job by `by` (data:
    /// by, batch_id, batch_jobs), then one `batch.approved` or `batch.rejected` (data: by,
    /// batch_id, source, count, job_ids: every job decided).
    async fn decide_batch(
        &self,
        id: &str,
        approve: bool,
        expect: Option<u64>,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<BatchDecision, StoreError>;

    async fn queued_job(&self, job: &JobId) -> Result<Option<QueuedJob>, StoreError>;

    /// Daemon jobs, newest first, optionally in one state.
    async fn queued_jobs(
        &self,
        state: Option<JobState>,
        limit: u32,
    ) -> Result<Vec<QueuedJob>, StoreError>;

    /// One page of daemon jobs matching `query`, newest first (see [`JobQuery`]), read by keyset
    /// (never OFFSET): `next` continues after the last job of this page.
    async fn list_jobs(&self, query: &JobQuery) -> Result<JobPage, StoreError>;

    /// The audit entries about one job, in order.
    async fn job_audit(&self, job: &JobId) -> Result<Vec<AuditEntry>, StoreError>;

    async fn queue_stats(&self, now: DateTime<Utc>) -> Result<QueueStats, StoreError>;

    /// Ok when the database answers and every migration has been applied (for `/readyz`).
    async fn ready(&self) -> Result<(), StoreError>;
}

/// The `JobQueue` implementation, expanded inside `impl Store for $store` by
/// `impl_store!`; the same SQL on both backends, with the backend's row-locking suffix.
macro_rules! job_queue_methods {
    ($store:ty, $db:ty, $skip_locked:literal) => {
        impl $store {
            /// The body of `submit_job` and `submit_jobs` inside `tx` (which holds the intake
            /// lock): decides every job of `batch` in order, as if each were submitted on its own
            /// after the ones before it, then writes them all. One ledger read per source (and
            /// chunk) finds the events received before, one count serves the guard (each job
            /// then adds itself), the open batch of a source is looked up once, and the rows go
            /// in with multi-row INSERTs of a few fixed sizes; the audit entries follow, in the
            /// batch's order, after the last write to another table. A duplicate or a
            /// `BodyConflict` writes nothing of that job; any other error is returned and the
            /// caller drops the transaction.
            async fn submit_batch_in(
                &self,
                tx: &mut ::sqlx::Transaction<'static, $db>,
                batch: &[(&$crate::NewJob, &str)],
                guard: $crate::BlastGuard,
                now: ::chrono::DateTime<::chrono::Utc>,
            ) -> Result<Vec<Result<$crate::Submitted, $crate::StoreError>>, $crate::StoreError> {
            use $crate::common::{audit_entry, decode_i64, decode_string, micros, to_json};
            use $crate::common::{in_list, values_list};
            use $crate::jobs::{chunk_lens, in_list_lens, Hold, SeenEvent};
            use $crate::{JobState, StoreError, Submitted};
            use ::sqlx::Row;
            use std::collections::{BTreeMap, HashMap, HashSet};

            // The events of the batch the ledger already holds.
            let mut seen: HashMap<(String, String), SeenEvent> = HashMap::new();
            let mut wanted: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            let mut asked: HashSet<(&str, &str)> = HashSet::new();
            for (new, _) in batch {
                if let Some(id) = &new.source_event_id {
                    if asked.insert((new.job.source.as_str(), id.as_str())) {
                        wanted.entry(new.job.source.as_str()).or_default().push(id.as_str());
                    }
                }
            }
            for (source, ids) in &wanted {
                let mut rest = ids.as_slice();
                for (len, shape) in in_list_lens(ids.len()) {
                    let (chunk, tail) = rest.split_at(len);
                    rest = tail;
                    let sql = format!(
                        "SELECT e.event_id, e.job_id, e.kind, e.body_sha256, q.state FROM intake_events e \
                         LEFT JOIN job_queue q ON q.job_id = e.job_id WHERE e.source = $1 AND e.event_id IN ({})",
                        in_list(2, shape)
                    );
                    let mut q = sqlx::query(::sqlx::AssertSqlSafe(sql)).bind(*source);
                    for i in 0..shape {
                        q = q.bind(chunk[i.min(len - 1)]);
                    }
                    for row in q.fetch_all(&mut **tx).await.map_err(map_err)? {
                        let event_id: String = row.try_get("event_id").map_err(map_err)?;
                        seen.insert(
                            ((*source).to_string(), event_id),
                            SeenEvent {
                                job_id: row.try_get("job_id").map_err(map_err)?,
                                kind: row.try_get("kind").map_err(map_err)?,
                                body_sha256: row.try_get("body_sha256").map_err(map_err)?,
                                state: row.try_get("state").map_err(map_err)?,
                            },
                        );
                    }
                }
            }

            let since = now - ::chrono::Duration::from_std(guard.window).unwrap_or_default();
            let since_us = micros(since);
            let window_us = i64::try_from(guard.window.as_micros()).unwrap_or(i64::MAX);
            // Jobs received within the guard's window before this batch (read when first
            // needed), and those of the batch so far.
            let mut before: Option<u64> = None;
            let mut in_batch = 0u64;
            let mut out = Vec::with_capacity(batch.len());
            let mut rows: Vec<(&$crate::NewJob, JobState, Option<String>, Option<String>)> = Vec::new();
            let mut holds: Vec<Hold> = Vec::new();
            let mut audit = Vec::new();
            for (new, actor) in batch {
                let job = &new.job;
                if let Some(event_id) = &new.source_event_id {
                    if let Some(first) = seen.get(&(job.source.clone(), event_id.clone())) {
                        match first.again(&job.source, event_id, new.body_sha256.as_deref()) {
                            Ok(s) => out.push(Ok(s)),
                            // Decided from what was read, before any write of this job.
                            Err(e @ StoreError::BodyConflict(_)) => out.push(Err(e)),
                            Err(e) => return Err(e),
                        }
                        continue;
                    }
                }
                let mut recent_jobs = 0u64;
                let mut state = JobState::Scheduled;
                if guard.max_jobs > 0 {
                    let counted = match before {
                        Some(n) => n,
                        None => {
                            let row = sqlx::query("SELECT COUNT(*) AS n FROM job_queue WHERE received_at > $1")
                                .bind(since_us)
                                .fetch_one(&mut **tx)
                                .await
                                .map_err(map_err)?;
                            let n = decode_i64(&row, "n")?.max(0) as u64;
                            before = Some(n);
                            n
                        }
                    };
                    recent_jobs = counted + in_batch;
                    if recent_jobs >= u64::from(guard.max_jobs) {
                        state = JobState::AwaitingApproval;
                    }
                }
                if micros(new.received_at) > since_us {
                    in_batch += 1;
                }
                let note = (state == JobState::AwaitingApproval).then(|| {
                    format!(
                        "held by the blast-radius guard: {recent_jobs} jobs received in the last {}s (limit {})",
                        guard.window.as_secs(),
                        guard.max_jobs
                    )
                });
                // A held job joins its source's open batch, or opens one (see `JobBatch`). A batch
                // this one touched stays the open one for the rest of it (its last hold is now,
                // within any window longer than zero).
                let batch_id = match &note {
                    None => None,
                    Some(_) => Some(match holds.iter_mut().find(|h| window_us > 0 && h.source == job.source) {
                        Some(h) => {
                            h.held += 1;
                            h.id.clone()
                        }
                        None => {
                            let open = sqlx::query(
                                "SELECT batch_id FROM job_batches WHERE source = $1 AND closed_at IS NULL AND last_held_at > $2 \
                                 ORDER BY last_held_at DESC, batch_id DESC LIMIT 1",
                            )
                            .bind(&job.source)
                            .bind(micros(now).saturating_sub(window_us))
                            .fetch_optional(&mut **tx)
                            .await
                            .map_err(map_err)?;
                            let (id, existing) = match open {
                                Some(row) => (decode_string(&row, "batch_id")?, true),
                                None => ($crate::jobs::batch_id_for(&job.source, micros(now), &job.id.0), false),
                            };
                            holds.push(Hold { id: id.clone(), source: job.source.clone(), existing, held: 1 });
                            id
                        }
                    }),
                };
                if let Some(event_id) = &new.source_event_id {
                    seen.insert(
                        (job.source.clone(), event_id.clone()),
                        SeenEvent {
                            job_id: Some(job.id.0.clone()),
                            kind: "termination".to_string(),
                            body_sha256: new.body_sha256.clone(),
                            state: Some(state.as_str().to_string()),
                        },
                    );
                }
                let data = ::serde_json::json!({
                    "source": job.source,
                    "source_event_id": new.source_event_id,
                    "body_sha256": new.body_sha256,
                    "received_at": new.received_at,
                    "subject": job.subject.id,
                    "risk": job.risk,
                    "effective_at": job.effective_at,
                    "due_at": new.due_at,
                    "reason": job.reason,
                    "requested_by": job.requested_by,
                    "state": state,
                });
                audit.push(audit_entry(now, actor, "job.received", &job.id.0, None, &data));
                if let Some(note) = &note {
                    let data = ::serde_json::json!({ "reason": note, "recent_jobs": recent_jobs, "limit": guard.max_jobs, "batch_id": batch_id });
                    audit.push(audit_entry(now, actor, "job.held", &job.id.0, None, &data));
                }
                out.push(Ok(Submitted { job_id: job.id.clone(), state, duplicate: false, recent_jobs }));
                rows.push((new, state, note, batch_id));
            }
            if rows.is_empty() {
                return Ok(out);
            }

            for h in &holds {
                if h.existing {
                    sqlx::query("UPDATE job_batches SET last_held_at = $1, held = held + $2 WHERE batch_id = $3")
                        .bind(micros(now))
                        .bind(h.held)
                        .bind(&h.id)
                        .execute(&mut **tx)
                        .await
                        .map_err(map_err)?;
                } else {
                    sqlx::query(
                        "INSERT INTO job_batches (batch_id, source, opened_at, last_held_at, held) VALUES ($1, $2, $3, $3, $4)",
                    )
                    .bind(&h.id)
                    .bind(&h.source)
                    .bind(micros(now))
                    .bind(h.held)
                    .execute(&mut **tx)
                    .await
                    .map_err(map_err)?;
                }
            }
            let mut rest = rows.as_slice();
            for len in chunk_lens(rows.len()) {
                let (chunk, tail) = rest.split_at(len);
                rest = tail;
                let sql = format!(
                    "INSERT INTO job_queue (job_id, state, job_json, employee_id, email, source, source_event_id, \
                       event_json, received_at, due_at, note, updated_at, subject_id, batch_id) VALUES {}",
                    values_list(1, len, 14)
                );
                let mut q = sqlx::query(::sqlx::AssertSqlSafe(sql));
                for (new, state, note, batch_id) in chunk {
                    let job = &new.job;
                    q = q
                        .bind(job.id.0.clone())
                        .bind(state.as_str())
                        .bind(to_json(job)?)
                        .bind(job.subject.employee_id.clone())
                        .bind(job.subject.email.as_deref().map(str::to_lowercase))
                        .bind(job.source.clone())
                        .bind(new.source_event_id.clone())
                        .bind(new.event.as_ref().map(|e| e.to_string()))
                        .bind(micros(new.received_at))
                        .bind(micros(new.due_at))
                        .bind(note.clone())
                        .bind(micros(now))
                        .bind(job.subject.id.clone())
                        .bind(batch_id.clone());
                }
                q.execute(&mut **tx).await.map_err(|e| match map_err(e) {
                    StoreError::Conflict(_) if len == 1 => StoreError::Conflict(format!(
                        "job {}: expected a new job id, found it already recorded",
                        chunk[0].0.job.id
                    )),
                    StoreError::Conflict(_) => StoreError::Conflict(format!(
                        "jobs {}: expected new job ids, found one already recorded",
                        chunk.iter().map(|r| r.0.job.id.0.as_str()).collect::<Vec<_>>().join(", ")
                    )),
                    other => other,
                })?;
            }
            let events: Vec<_> = rows.iter().filter(|r| r.0.source_event_id.is_some()).collect();
            let mut rest = events.as_slice();
            for len in chunk_lens(events.len()) {
                let (chunk, tail) = rest.split_at(len);
                rest = tail;
                let sql = format!(
                    "INSERT INTO intake_events (source, event_id, kind, job_id, body_sha256, received_at) VALUES {}",
                    values_list(1, len, 6)
                );
                let mut q = sqlx::query(::sqlx::AssertSqlSafe(sql));
                for (new, ..) in chunk {
                    q = q
                        .bind(new.job.source.clone())
                        .bind(new.source_event_id.clone())
                        .bind("termination")
                        .bind(new.job.id.0.clone())
                        .bind(new.body_sha256.clone())
                        .bind(micros(new.received_at));
                }
                q.execute(&mut **tx).await.map_err(map_err)?;
            }
            self.append_audits_in(tx, &audit).await?;
            Ok(out)
            }
        }
        impl $store {
            /// A batch's summary row, on the pool (`None` when unknown).
            async fn batch_row(&self, id: &str) -> Result<Option<$crate::JobBatch>, $crate::StoreError> {
                let row = sqlx::query(concat!($crate::jobs::batch_select!(), " WHERE b.batch_id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                row.as_ref().map($crate::jobs::decode_batch).transpose()
            }
        }
        #[async_trait::async_trait]
        impl $crate::JobQueue for $store {
        async fn submit_job(
            &self,
            new: &$crate::NewJob,
            guard: $crate::BlastGuard,
            actor: &str,
            now: ::chrono::DateTime<::chrono::Utc>,
        ) -> Result<$crate::Submitted, $crate::StoreError> {
            let mut tx = self.begin_write().await?;
            self.lock_intake(&mut tx).await?;
            let submitted = self
                .submit_batch_in(&mut tx, &[(new, actor)], guard, now)
                .await?
                .pop()
                .ok_or_else(|| $crate::StoreError::Database("submit_job: no result".into()))??;
            if submitted.duplicate {
                tx.rollback().await.map_err(map_err)?;
            } else {
                tx.commit().await.map_err(map_err)?;
                self.sync_commits().await?;
            }
            Ok(submitted)
        }

        async fn submit_jobs(
            &self,
            batch: &[($crate::NewJob, String)],
            guard: $crate::BlastGuard,
            now: ::chrono::DateTime<::chrono::Utc>,
        ) -> Result<Vec<Result<$crate::Submitted, $crate::StoreError>>, $crate::StoreError> {
            let out = self.submit_jobs_committed(batch, guard, now).await?;
            // Also after a batch of redeliveries only: their first jobs may be in a commit
            // another batch is still syncing.
            self.sync_commits().await?;
            Ok(out)
        }

        async fn submit_jobs_committed(
            &self,
            batch: &[($crate::NewJob, String)],
            guard: $crate::BlastGuard,
            now: ::chrono::DateTime<::chrono::Utc>,
        ) -> Result<Vec<Result<$crate::Submitted, $crate::StoreError>>, $crate::StoreError> {
            let items: Vec<(&$crate::NewJob, &str)> =
                batch.iter().map(|(new, actor)| (new, actor.as_str())).collect();
            let mut tx = self.begin_write().await?;
            self.lock_intake(&mut tx).await?;
            // Anything but a duplicate or a body conflict may have left a job half written (and
            // on Postgres an error aborts the transaction): nothing of the batch is kept.
            let out = self.submit_batch_in(&mut tx, &items, guard, now).await?;
            if out.iter().any(|r| matches!(r, Ok(s) if !s.duplicate)) {
                tx.commit().await.map_err(map_err)?;
            } else {
                // Only redeliveries and conflicts: nothing was written.
                tx.rollback().await.map_err(map_err)?;
            }
            Ok(out)
        }

        async fn sync_intake(&self) -> Result<(), $crate::StoreError> {
            self.sync_commits().await
        }


        async fn cancel_jobs(
            &self,
            target: &$crate::CancelTarget,
            reason: &str,
            intake: Option<&$crate::IntakeRef>,
            actor: &str,
            now: ::chrono::DateTime<::chrono::Utc>,
        ) -> Result<$crate::Cancellation, $crate::StoreError> {
            use $crate::common::{audit_entry, decode_string, micros};
            use $crate::{Cancellation, CancelTarget, JobState, StoreError};

            let mut tx = self.begin_write().await?;
            self.lock_intake(&mut tx).await?;
            if let Some(i) = intake {
                let seen = sqlx::query("SELECT job_id, kind, body_sha256 FROM intake_events WHERE source = $1 AND event_id = $2")
                    .bind(&i.source)
                    .bind(&i.event_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if let Some(row) = seen {
                    use ::sqlx::Row;
                    let first_sha: Option<String> = row.try_get("body_sha256").map_err(map_err)?;
                    if let (Some(first), Some(sha)) = (first_sha, i.body_sha256.as_ref()) {
                        if !first.eq_ignore_ascii_case(sha) {
                            let first_job: Option<String> = row.try_get("job_id").map_err(map_err)?;
                            return Err(StoreError::BodyConflict(Box::new($crate::BodyConflict {
                                source: i.source.clone(),
                                event_id: i.event_id.clone(),
                                first_kind: decode_string(&row, "kind")?,
                                first_job_id: first_job.map(::revoke_core::JobId),
                                first_body_sha256: first,
                                body_sha256: sha.clone(),
                            })));
                        }
                    }
                    tx.rollback().await.map_err(map_err)?;
                    return Ok(Cancellation { duplicate: true, ..Cancellation::default() });
                }
            }
            let open = "('scheduled', 'awaiting_approval', 'planned')";
            let rows = match target {
                CancelTarget::Job(id) => {
                    let row = sqlx::query("SELECT job_id, state FROM job_queue WHERE job_id = $1")
                        .bind(&id.0)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    let Some(row) = row else {
                        return Err(StoreError::NotFound(format!("job {id}")));
                    };
                    let state = decode_string(&row, "state")?;
                    if !matches!(state.as_str(), "scheduled" | "awaiting_approval" | "planned") {
                        return Err(StoreError::Conflict(format!(
                            "job {id}: expected an open job to cancel, found it {state}"
                        )));
                    }
                    vec![row]
                }
                CancelTarget::Subject { employee_id, email } => {
                    if employee_id.is_none() && email.is_none() {
                        return Err(StoreError::Config("cancel: expected an employee id or an email, found neither".into()));
                    }
                    let sql = format!(
                        "SELECT job_id, state FROM job_queue WHERE state IN {open} \
                         AND ((CAST($1 AS TEXT) IS NOT NULL AND employee_id = $1) OR (CAST($2 AS TEXT) IS NOT NULL AND email = $2)) \
                         ORDER BY received_at"
                    );
                    sqlx::query(::sqlx::AssertSqlSafe(sql))
                        .bind(employee_id.as_deref())
                        .bind(email.as_deref().map(str::to_lowercase))
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(map_err)?
                }
            };
            let mut out = Cancellation::default();
            let mut audits = Vec::new();
            for row in &rows {
                let job_id = decode_string(row, "job_id")?;
                let state = decode_string(row, "state")?;
                let mut cancelled_actions = Vec::new();
                if state == "planned" {
                    let ids = sqlx::query(
                        "UPDATE actions SET state = 'cancelled', note = $1, lease_owner = NULL, lease_expires_at = NULL, \
                           finished_at = $2 \
                         WHERE job_id = $3 AND state IN ('pending', 'awaiting_ack') RETURNING id, seq",
                    )
                    .bind(reason)
                    .bind(micros(now))
                    .bind(&job_id)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    let mut ids = ids
                        .iter()
                        .map(|r| Ok(($crate::jobs::decode_i64_of(r)?, decode_string(r, "id")?)))
                        .collect::<Result<Vec<(i64, String)>, StoreError>>()?;
                    ids.sort();
                    cancelled_actions = ids.into_iter().map(|(_, id)| id).collect();
                }
                sqlx::query("UPDATE job_queue SET state = $1, note = $2, updated_at = $3, lease_owner = NULL, lease_expires_at = NULL WHERE job_id = $4")
                    .bind(JobState::Cancelled.as_str())
                    .bind(reason)
                    .bind(micros(now))
                    .bind(&job_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                audits.push((job_id.clone(), state, cancelled_actions.clone()));
                out.job_ids.push(::revoke_core::JobId(job_id));
                out.actions.extend(cancelled_actions.into_iter().map(::revoke_core::ActionId));
            }
            if let Some(i) = intake {
                sqlx::query(
                    "INSERT INTO intake_events (source, event_id, kind, job_id, body_sha256, received_at) \
                     VALUES ($1, $2, 'cancellation', $3, $4, $5)",
                )
                .bind(&i.source)
                .bind(&i.event_id)
                .bind(out.job_ids.first().map(|j| j.0.as_str()))
                .bind(i.body_sha256.as_deref())
                .bind(micros(now))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            }
            for (job_id, was, actions) in &audits {
                for a in actions {
                    let data = ::serde_json::json!({ "reason": reason });
                    self.append_audit_in(&mut tx, &audit_entry(now, actor, "action.cancelled", job_id, Some(a), &data)).await?;
                }
                let data = ::serde_json::json!({
                    "reason": reason,
                    "was": was,
                    "actions_cancelled": actions.len(),
                    "source": intake.map(|i| i.source.clone()),
                    "source_event_id": intake.map(|i| i.event_id.clone()),
                });
                self.append_audit_in(&mut tx, &audit_entry(now, actor, "job.cancelled", job_id, None, &data)).await?;
            }
            tx.commit().await.map_err(map_err)?;
            if intake.is_some() {
                self.sync_commits().await?;
            }
            Ok(out)
        }

        async fn claim_due_jobs(
            &self,
            owner: &str,
            now: ::chrono::DateTime<::chrono::Utc>,
            ttl: std::time::Duration,
            limit: u32,
        ) -> Result<Vec<$crate::QueuedJob>, $crate::StoreError> {
            use $crate::common::{decode_string, lease_expiry, micros};

            let expires = lease_expiry(now, ttl)?;
            // Nothing due, the common case of a poll: answered by a read, without taking the
            // write lock (which intake's group commit is waiting for during a flood).
            let due = sqlx::query(
                "SELECT job_id FROM job_queue WHERE state = 'scheduled' AND due_at <= $1 \
                 AND (lease_expires_at IS NULL OR lease_expires_at < $1) LIMIT 1",
            )
            .bind(micros(now))
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
            if due.is_none() {
                return Ok(Vec::new());
            }
            let mut tx = self.begin_write().await?;
            let ids = sqlx::query(concat!(
                "SELECT job_id FROM job_queue WHERE state = 'scheduled' AND due_at <= $1 \
                 AND (lease_expires_at IS NULL OR lease_expires_at < $1) ORDER BY due_at, job_id LIMIT $2",
                $skip_locked
            ))
            .bind(micros(now))
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
            let mut out = Vec::with_capacity(ids.len());
            for row in &ids {
                let id = decode_string(row, "job_id")?;
                let row = sqlx::query(concat!(
                    "UPDATE job_queue SET lease_owner = $1, lease_expires_at = $2 WHERE job_id = $3 RETURNING ",
                    $crate::jobs::queued_job_columns!()
                ))
                .bind(owner)
                .bind(expires)
                .bind(&id)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                out.push($crate::jobs::decode_queued_job(&row)?);
            }
            tx.commit().await.map_err(map_err)?;
            Ok(out)
        }

        async fn job_planned(
            &self,
            job: &::revoke_core::JobId,
            plan: &::revoke_core::Plan,
            owner: &str,
            now: ::chrono::DateTime<::chrono::Utc>,
        ) -> Result<(), $crate::StoreError> {
            use $crate::common::micros;
            use $crate::StoreError;

            let mut tx = self.begin_write().await?;
            let done = sqlx::query(
                "UPDATE job_queue SET state = 'planned', plan_id = $1, lease_owner = NULL, lease_expires_at = NULL, \
                   planning_attempts = planning_attempts + 1, updated_at = $2 \
                 WHERE job_id = $3 AND state = 'scheduled' AND lease_owner = $4",
            )
            .bind(&plan.id.0)
            .bind(micros(now))
            .bind(&job.0)
            .bind(owner)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            if done.rows_affected() != 1 {
                return Err(StoreError::Conflict(format!(
                    "job {job}: expected it scheduled and claimed by {owner}, found it taken, cancelled or planned"
                )));
            }
            self.insert_plan_in(&mut tx, plan, owner, now).await?;
            tx.commit().await.map_err(map_err)?;
            Ok(())
        }

        async fn job_planning_failed(
            &self,
            job: &::revoke_core::JobId,
            owner: &str,
            error: &str,
            retry_at: Option<::chrono::DateTime<::chrono::Utc>>,
            now: ::chrono::DateTime<::chrono::Utc>,
        ) -> Result<(), $crate::StoreError> {
            use $crate::common::{audit_entry, micros};
            use $crate::StoreError;

            let mut tx = self.begin_write().await?;
            let (state, sql) = match retry_at {
                Some(_) => ("scheduled", "UPDATE job_queue SET state = $1, note = $2, due_at = $3, updated_at = $4, \
                    planning_attempts = planning_attempts + 1, lease_owner = NULL, lease_expires_at = NULL \
                    WHERE job_id = $5 AND state = 'scheduled' AND lease_owner = $6"),
                None => ("failed", "UPDATE job_queue SET state = $1, note = $2, due_at = COALESCE($3, due_at), updated_at = $4, \
                    planning_attempts = planning_attempts + 1, lease_owner = NULL, lease_expires_at = NULL \
                    WHERE job_id = $5 AND state = 'scheduled' AND lease_owner = $6"),
            };
            let done = sqlx::query(sql)
                .bind(state)
                .bind(error)
                .bind(retry_at.map(micros))
                .bind(micros(now))
                .bind(&job.0)
                .bind(owner)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            if done.rows_affected() != 1 {
                return Err(StoreError::Conflict(format!(
                    "job {job}: expected it scheduled and claimed by {owner}, found it taken, cancelled or planned"
                )));
            }
            let data = ::serde_json::json!({ "error": error, "retry_at": retry_at });
            self.append_audit_in(&mut tx, &audit_entry(now, owner, "job.planning_failed", &job.0, None, &data)).await?;
            tx.commit().await.map_err(map_err)?;
            Ok(())
        }

        async fn decide_job_because(
            &self,
            job: &::revoke_core::JobId,
            approve: bool,
            reason: &str,
            by: &str,
            now: ::chrono::DateTime<::chrono::Utc>,
        ) -> Result<$crate::QueuedJob, $crate::StoreError> {
            use $crate::common::{audit_entry, decode_string, micros};
            use $crate::{JobState, StoreError};

            let mut tx = self.begin_write().await?;
            let row = sqlx::query(concat!("SELECT state FROM job_queue WHERE job_id = $1", $skip_locked))
                .bind(&job.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
            let Some(row) = row else {
                return Err(StoreError::NotFound(format!("job {job}")));
            };
            let state = decode_string(&row, "state")?;
            if state != JobState::AwaitingApproval.as_str() {
                return Err(StoreError::Conflict(format!(
                    "job {job}: expected it awaiting approval, found it {state}"
                )));
            }
            let reason = reason.trim();
            let (next, kind, mut note) = if approve {
                (JobState::Scheduled, "job.approved", format!("approved by {by}"))
            } else {
                (JobState::Rejected, "job.rejected", format!("rejected by {by}"))
            };
            if !reason.is_empty() {
                note.push_str(": ");
                note.push_str(reason);
            }
            let row = sqlx::query(concat!(
                "UPDATE job_queue SET state = $1, note = $2, updated_at = $3 WHERE job_id = $4 RETURNING ",
                $crate::jobs::queued_job_columns!()
            ))
            .bind(next.as_str())
            .bind(&note)
            .bind(micros(now))
            .bind(&job.0)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
            let decided = $crate::jobs::decode_queued_job(&row)?;
            let data = if reason.is_empty() {
                ::serde_json::json!({ "by": by })
            } else {
                ::serde_json::json!({ "by": by, "reason": reason })
            };
            self.append_audit_in(&mut tx, &audit_entry(now, by, kind, &job.0, None, &data)).await?;
            tx.commit().await.map_err(map_err)?;
            Ok(decided)
        }

        async fn batches(
            &self,
            open_only: bool,
            limit: u32,
        ) -> Result<Vec<$crate::JobBatch>, $crate::StoreError> {
            let sql = if open_only {
                concat!(
                    $crate::jobs::batch_select!(),
                    " WHERE EXISTS (SELECT 1 FROM job_queue q WHERE q.batch_id = b.batch_id AND q.state = 'awaiting_approval')",
                    " ORDER BY b.opened_at DESC, b.batch_id DESC LIMIT $1"
                )
            } else {
                concat!($crate::jobs::batch_select!(), " ORDER BY b.opened_at DESC, b.batch_id DESC LIMIT $1")
            };
            let rows = sqlx::query(sql)
                .bind(i64::from(limit.max(1)))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
            rows.iter().map($crate::jobs::decode_batch).collect()
        }

        async fn batch(
            &self,
            id: &str,
            sample: u32,
        ) -> Result<Option<$crate::BatchDetail>, $crate::StoreError> {
            let Some(batch) = self.batch_row(id).await? else {
                return Ok(None);
            };
            let rows = sqlx::query(concat!(
                "SELECT ",
                $crate::jobs::queued_job_columns!(),
                " FROM job_queue WHERE batch_id = $1 ORDER BY received_at, job_id"
            ))
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
            let jobs = rows
                .iter()
                .map($crate::jobs::decode_queued_job)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some($crate::jobs::batch_detail(batch, &jobs, sample)))
        }

        async fn decide_batch(
            &self,
            id: &str,
            approve: bool,
            expect: Option<u64>,
            by: &str,
            now: ::chrono::DateTime<::chrono::Utc>,
        ) -> Result<$crate::BatchDecision, $crate::StoreError> {
            use $crate::common::{audit_entry, decode_string, micros};
            use $crate::{JobState, NewAuditEntry, StoreError};
            use ::sqlx::Row;

            let mut tx = self.begin_write().await?;
            // Holds take the intake lock too: no job joins the batch while it is decided.
            self.lock_intake(&mut tx).await?;
            let row = sqlx::query("SELECT source, decision, decided_by FROM job_batches WHERE batch_id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
            let Some(row) = row else {
                return Err(StoreError::NotFound(format!("batch {id}")));
            };
            let source = decode_string(&row, "source")?;
            let decision: Option<String> = row.try_get("decision").map_err(map_err)?;
            if let Some(decision) = decision {
                let who: Option<String> = row.try_get("decided_by").map_err(map_err)?;
                return Err(StoreError::Conflict(format!(
                    "batch {id}: expected it undecided, found it {decision} by {}",
                    who.unwrap_or_default()
                )));
            }
            let ids = sqlx::query(
                "SELECT job_id FROM job_queue WHERE batch_id = $1 AND state = 'awaiting_approval' ORDER BY received_at, job_id",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?
            .iter()
            .map(|r| decode_string(r, "job_id"))
            .collect::<Result<Vec<String>, StoreError>>()?;
            if ids.is_empty() {
                return Err(StoreError::Conflict(format!(
                    "batch {id}: expected jobs awaiting approval, found none (each was decided on its own)"
                )));
            }
            if let Some(n) = expect {
                if n != ids.len() as u64 {
                    return Err(StoreError::Conflict(format!(
                        "batch {id}: expected {n} jobs awaiting approval (the count reviewed), found {}: review the batch again",
                        ids.len()
                    )));
                }
            }
            let (next, verb) = if approve {
                (JobState::Scheduled, "approved")
            } else {
                (JobState::Rejected, "rejected")
            };
            let note = format!("{verb} by {by} with batch {id}");
            sqlx::query(
                "UPDATE job_queue SET state = $1, note = $2, updated_at = $3 WHERE batch_id = $4 AND state = 'awaiting_approval'",
            )
            .bind(next.as_str())
            .bind(&note)
            .bind(micros(now))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            sqlx::query("UPDATE job_batches SET closed_at = $1, decision = $2, decided_by = $3 WHERE batch_id = $4")
                .bind(micros(now))
                .bind(verb)
                .bind(by)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            let kind = format!("job.{verb}");
            for job in &ids {
                let data = ::serde_json::json!({ "by": by, "batch_id": id, "batch_jobs": ids.len() });
                self.append_audit_in(&mut tx, &audit_entry(now, by, &kind, job, None, &data)).await?;
            }
            let data = ::serde_json::json!({
                "by": by,
                "batch_id": id,
                "source": source,
                "count": ids.len(),
                "job_ids": ids,
            });
            let entry = NewAuditEntry {
                at: now,
                actor: by.to_string(),
                kind: format!("batch.{verb}"),
                job_id: None,
                action_id: None,
                data: data.to_string(),
            };
            self.append_audit_in(&mut tx, &entry).await?;
            tx.commit().await.map_err(map_err)?;
            let batch = self
                .batch_row(id)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("batch {id}")))?;
            Ok($crate::BatchDecision {
                batch,
                state: next,
                job_ids: ids.into_iter().map(::revoke_core::JobId).collect(),
            })
        }

        async fn queued_job(
            &self,
            job: &::revoke_core::JobId,
        ) -> Result<Option<$crate::QueuedJob>, $crate::StoreError> {
            let row = sqlx::query(concat!(
                "SELECT ",
                $crate::jobs::queued_job_columns!(),
                " FROM job_queue WHERE job_id = $1"
            ))
            .bind(&job.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
            row.as_ref().map($crate::jobs::decode_queued_job).transpose()
        }

        async fn queued_jobs(
            &self,
            state: Option<$crate::JobState>,
            limit: u32,
        ) -> Result<Vec<$crate::QueuedJob>, $crate::StoreError> {
            let rows = sqlx::query(concat!(
                "SELECT ",
                $crate::jobs::queued_job_columns!(),
                " FROM job_queue WHERE (CAST($1 AS TEXT) IS NULL OR state = $1) \
                 ORDER BY received_at DESC, job_id DESC LIMIT $2"
            ))
            .bind(state.map(|s| s.as_str()))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
            rows.iter().map($crate::jobs::decode_queued_job).collect()
        }

        async fn list_jobs(
            &self,
            query: &$crate::JobQuery,
        ) -> Result<$crate::JobPage, $crate::StoreError> {
            use $crate::common::{decode_i64, decode_string, micros};
            use $crate::{JobCursor, JobPage, JobQuery};

            /// A value bound to the next `$n` placeholder.
            enum Arg {
                Text(String),
                Int(i64),
            }
            let mut args: Vec<Arg> = Vec::new();
            let mut arg = |a: Arg| {
                args.push(a);
                format!("${}", args.len())
            };
            let mut sql = String::from(concat!(
                "SELECT ",
                $crate::jobs::queued_job_columns!(),
                ", job_id FROM job_queue WHERE TRUE"
            ));
            if !query.states.is_empty() {
                // The states are the enum's own fixed names, never caller text.
                let states: Vec<String> = query.states.iter().map(|s| format!("'{}'", s.as_str())).collect();
                sql += &format!(" AND state IN ({})", states.join(", "));
            }
            if let Some(source) = &query.source {
                sql += &format!(" AND source = {}", arg(Arg::Text(source.clone())));
            }
            if let Some(subject) = &query.subject {
                let exact = arg(Arg::Text(subject.clone()));
                let email = arg(Arg::Text(subject.to_lowercase()));
                sql += &format!(" AND (employee_id = {exact} OR subject_id = {exact} OR email = {email})");
            }
            if let Some(since) = query.since {
                sql += &format!(" AND received_at >= {}", arg(Arg::Int(micros(since))));
            }
            if let Some(until) = query.until {
                sql += &format!(" AND received_at < {}", arg(Arg::Int(micros(until))));
            }
            if let Some(after) = &query.after {
                let at = arg(Arg::Int(after.received_at_us()));
                let id = arg(Arg::Text(after.job_id().to_string()));
                sql += &format!(" AND (received_at, job_id) < ({at}, {id})");
            }
            let limit = query.limit.clamp(1, JobQuery::MAX_LIMIT);
            // One more than asked: whether there is a next page, without an empty last one.
            sql += &format!(
                " ORDER BY received_at DESC, job_id DESC LIMIT {}",
                arg(Arg::Int(i64::from(limit) + 1))
            );
            let mut q = sqlx::query(::sqlx::AssertSqlSafe(sql));
            for a in args {
                q = match a {
                    Arg::Text(t) => q.bind(t),
                    Arg::Int(i) => q.bind(i),
                };
            }
            let mut rows = q.fetch_all(&self.pool).await.map_err(map_err)?;
            let more = rows.len() > limit as usize;
            rows.truncate(limit as usize);
            let next = match rows.last() {
                Some(last) if more => Some(JobCursor::new(
                    decode_i64(last, "received_at")?,
                    decode_string(last, "job_id")?,
                )),
                _ => None,
            };
            let jobs = rows
                .iter()
                .map($crate::jobs::decode_queued_job)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(JobPage { jobs, next })
        }

        async fn job_audit(
            &self,
            job: &::revoke_core::JobId,
        ) -> Result<Vec<$crate::AuditEntry>, $crate::StoreError> {
            let rows = sqlx::query(
                "SELECT seq, at, actor, kind, job_id, action_id, data, prev_hash, hash FROM audit_log \
                 WHERE job_id = $1 ORDER BY seq",
            )
            .bind(&job.0)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
            rows.iter().map($crate::common::decode_audit).collect()
        }

        async fn queue_stats(
            &self,
            now: ::chrono::DateTime<::chrono::Utc>,
        ) -> Result<$crate::QueueStats, $crate::StoreError> {
            use $crate::common::{decode_i64, micros};

            let row = sqlx::query(
                "SELECT \
                   (SELECT COUNT(*) FROM actions WHERE manual = FALSE AND state IN ('pending', 'running') \
                      AND (not_before IS NULL OR not_before <= $1)) AS due, \
                   (SELECT COUNT(*) FROM actions WHERE state = 'running') AS running, \
                   (SELECT COUNT(*) FROM job_queue WHERE state = 'scheduled') AS scheduled, \
                   (SELECT COUNT(*) FROM job_queue WHERE state = 'awaiting_approval') AS held",
            )
            .bind(micros(now))
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
            let n = |c| decode_i64(&row, c).map(|v| v.max(0) as u64);
            Ok($crate::QueueStats {
                due_actions: n("due")?,
                running_actions: n("running")?,
                scheduled_jobs: n("scheduled")?,
                awaiting_approval: n("held")?,
            })
        }

        async fn ready(&self) -> Result<(), $crate::StoreError> {
            use $crate::common::{decode_i64, MIGRATIONS};
            use $crate::StoreError;

            let row = sqlx::query("SELECT COUNT(*) AS n FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)?;
            let applied = decode_i64(&row, "n")?;
            if applied < MIGRATIONS {
                return Err(StoreError::Migration(format!(
                    "expected {MIGRATIONS} migrations applied, found {applied}"
                )));
            }
            Ok(())
        }
        }
    };
}
pub(crate) use job_queue_methods;

/// The columns `decode_queued_job` reads.
macro_rules! queued_job_columns {
    () => {
        "job_json, state, source_event_id, event_json, received_at, due_at, plan_id, planning_attempts, note, updated_at, batch_id"
    };
}
pub(crate) use queued_job_columns;

/// Decodes a `job_queue` row selected with `queued_job_columns!()`.
pub(crate) fn decode_queued_job<'r, R>(row: &'r R) -> Result<QueuedJob, crate::StoreError>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    use crate::common::{col, from_micros};
    use crate::StoreError;

    let get_s = |name: &'static str| col::<R, Option<String>>(row, name);
    let get_i = |name: &'static str| col::<R, i64>(row, name);
    let job_json = get_s("job_json")?.unwrap_or_default();
    let job: Job = serde_json::from_str(&job_json).map_err(|e| {
        StoreError::Corrupt(format!(
            "job_queue.job_json: expected valid json, found {e}"
        ))
    })?;
    let state = get_s("state")?.unwrap_or_default();
    let state = JobState::parse(&state)
        .ok_or_else(|| StoreError::Corrupt(format!("job_queue.state: unknown state {state:?}")))?;
    let event = get_s("event_json")?
        .map(|s| serde_json::from_str(&s))
        .transpose()
        .map_err(|e| {
            StoreError::Corrupt(format!(
                "job_queue.event_json: expected valid json, found {e}"
            ))
        })?;
    Ok(QueuedJob {
        job,
        state,
        source_event_id: get_s("source_event_id")?,
        event,
        received_at: from_micros(get_i("received_at")?, "job_queue.received_at")?,
        due_at: from_micros(get_i("due_at")?, "job_queue.due_at")?,
        plan_id: get_s("plan_id")?.map(PlanId),
        planning_attempts: u32::try_from(get_i("planning_attempts")?).unwrap_or(u32::MAX),
        note: get_s("note")?,
        updated_at: from_micros(get_i("updated_at")?, "job_queue.updated_at")?,
        batch_id: get_s("batch_id")?,
    })
}

/// The columns `decode_batch` reads, from `job_batches b`.
macro_rules! batch_select {
    () => {
        "SELECT b.batch_id, b.source, b.opened_at, b.last_held_at, b.held, b.closed_at, b.decision, b.decided_by, \
           (SELECT COUNT(*) FROM job_queue q WHERE q.batch_id = b.batch_id AND q.state = 'awaiting_approval') AS awaiting \
         FROM job_batches b"
    };
}
pub(crate) use batch_select;

/// Rows of the group commit's multi-row INSERTs: up to [`EXACT_ROWS`] rows go out in one
/// statement of exactly that many; more in chunks of 64, 32 and 16 and the rest in one. Each
/// statement is one round trip to SQLite's worker thread (the largest cost of a batch), and a
/// table's INSERT has at most 18 shapes, which sqlx's per-connection statement cache keeps
/// prepared (at most 64 x 14 = 896 parameters, within `common`'s bound on binds per statement).
pub(crate) const EXACT_ROWS: usize = 16;

/// `n` split into chunk lengths, largest first (see [`EXACT_ROWS`]).
pub(crate) fn chunk_lens(mut n: usize) -> Vec<usize> {
    let mut out = Vec::new();
    for size in [64, 32, 16] {
        while n > EXACT_ROWS && n >= size {
            out.push(size);
            n -= size;
        }
    }
    if n > 0 {
        out.push(n);
    }
    out
}

/// Sizes of the `IN (...)` lists of a look-up: `n` keys go out in lists of 64, the rest in
/// one list of 4, 16 or 64, padded with its last key (a key twice changes nothing), so a
/// look-up is one round trip per 64 keys and has three shapes.
pub(crate) fn in_list_lens(mut n: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    while n > 0 {
        let keys = n.min(64);
        let shape = [4, 16, 64].into_iter().find(|s| *s >= keys).unwrap_or(64);
        out.push((keys, shape));
        n -= keys;
    }
    out
}

/// An open batch a group commit holds jobs in: found open (`existing`), or opened by it.
#[derive(Debug)]
pub(crate) struct Hold {
    pub id: String,
    pub source: String,
    pub existing: bool,
    /// Jobs of this commit held in it.
    pub held: i64,
}

/// What the intake ledger holds about an event received before (or earlier in the same batch).
#[derive(Debug, Clone)]
pub(crate) struct SeenEvent {
    pub job_id: Option<String>,
    pub kind: String,
    pub body_sha256: Option<String>,
    /// Its job's state; `None` for a cancellation, which made no job.
    pub state: Option<String>,
}

impl SeenEvent {
    /// The answer to this event received again as a termination (`body_sha256` of the new
    /// delivery): its first job as a duplicate; `BodyConflict` when both bodies are known and
    /// differ; `Conflict` when it was received as a cancellation.
    pub(crate) fn again(
        &self,
        source: &str,
        event_id: &str,
        body_sha256: Option<&str>,
    ) -> Result<Submitted, StoreError> {
        if let (Some(first), Some(sha)) = (&self.body_sha256, body_sha256) {
            if !first.eq_ignore_ascii_case(sha) {
                return Err(StoreError::BodyConflict(Box::new(crate::BodyConflict {
                    source: source.to_string(),
                    event_id: event_id.to_string(),
                    first_kind: self.kind.clone(),
                    first_job_id: self.job_id.clone().map(JobId),
                    first_body_sha256: first.clone(),
                    body_sha256: sha.to_string(),
                })));
            }
        }
        let (Some(job_id), Some(state)) = (&self.job_id, &self.state) else {
            return Err(StoreError::Conflict(format!(
                "event {event_id} of source {source}: expected a termination, found it already received as a cancellation"
            )));
        };
        let state = JobState::parse(state).ok_or_else(|| {
            StoreError::Corrupt(format!("job_queue.state: unknown state {state:?}"))
        })?;
        Ok(Submitted {
            job_id: JobId(job_id.clone()),
            state,
            duplicate: true,
            recent_jobs: 0,
        })
    }
}

/// A new batch's id: stable for (source, opening time, first job), short enough to type.
pub(crate) fn batch_id_for(source: &str, opened_at_us: i64, first_job: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(format!("{source}\n{opened_at_us}\n{first_job}").as_bytes());
    format!("b-{}", &hex::encode(h)[..16])
}

/// Decodes a row selected with `batch_select!()`.
pub(crate) fn decode_batch<'r, R>(row: &'r R) -> Result<JobBatch, crate::StoreError>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    use crate::common::{col, from_micros};

    let get_s = |name: &'static str| col::<R, Option<String>>(row, name);
    let get_i = |name: &'static str| col::<R, i64>(row, name);
    let closed_at = col::<R, Option<i64>>(row, "closed_at")?
        .map(|t| from_micros(t, "job_batches.closed_at"))
        .transpose()?;
    Ok(JobBatch {
        batch_id: get_s("batch_id")?.unwrap_or_default(),
        source: get_s("source")?.unwrap_or_default(),
        opened_at: from_micros(get_i("opened_at")?, "job_batches.opened_at")?,
        last_held_at: from_micros(get_i("last_held_at")?, "job_batches.last_held_at")?,
        held: get_i("held")?.max(0) as u64,
        awaiting_approval: get_i("awaiting")?.max(0) as u64,
        closed_at,
        decision: get_s("decision")?,
        decided_by: get_s("decided_by")?,
    })
}

/// What a batch contains, from its jobs (oldest first).
pub(crate) fn batch_detail(batch: JobBatch, jobs: &[QueuedJob], sample: u32) -> BatchDetail {
    use std::collections::BTreeMap;

    let mut by_state: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_source: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_risk: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_department: BTreeMap<String, u64> = BTreeMap::new();
    let (mut from, mut to): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = (None, None);
    let mut picked = Vec::new();
    for q in jobs {
        *by_state.entry(q.state.as_str().to_string()).or_default() += 1;
        if q.state != JobState::AwaitingApproval {
            continue;
        }
        *by_source.entry(q.job.source.clone()).or_default() += 1;
        *by_reason.entry(q.job.reason.clone()).or_default() += 1;
        *by_risk.entry(q.job.risk.to_string()).or_default() += 1;
        let department = q
            .event
            .as_ref()
            .and_then(|e| e.get("department"))
            .and_then(|d| d.as_str())
            .filter(|d| !d.trim().is_empty())
            .unwrap_or("unknown");
        *by_department.entry(department.to_string()).or_default() += 1;
        let at = q.job.effective_at;
        from = Some(from.map_or(at, |f| f.min(at)));
        to = Some(to.map_or(at, |t| t.max(at)));
        if picked.len() < sample as usize {
            picked.push(BatchJob {
                job_id: q.job.id.clone(),
                subject: q.job.subject.id.clone(),
                employee_id: q.job.subject.employee_id.clone(),
                email: q.job.subject.email.clone(),
                reason: q.job.reason.clone(),
                risk: q.job.risk.to_string(),
                effective_at: at,
                received_at: q.received_at,
                state: q.state,
            });
        }
    }
    BatchDetail {
        batch,
        by_state,
        by_source,
        by_reason,
        by_risk,
        by_department,
        effective_from: from,
        effective_to: to,
        sample: picked,
    }
}

/// `seq` of a `RETURNING id, seq` row, to put cancelled actions in plan order.
pub(crate) fn decode_i64_of<'r, R>(row: &'r R) -> Result<i64, crate::StoreError>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    crate::common::decode_i64(row, "seq")
}

#[cfg(test)]
mod tests {
    use super::{chunk_lens, in_list_lens};

    #[test]
    fn chunks_add_up_and_take_few_shapes() {
        for n in 0..600 {
            let lens = chunk_lens(n);
            assert_eq!(lens.iter().sum::<usize>(), n);
            assert!(lens.windows(2).all(|w| w[0] >= w[1]), "{lens:?}");
            if n <= 16 {
                assert_eq!(lens.len(), usize::from(n > 0), "{n}: {lens:?}");
            }
            assert!(
                lens.iter().all(|l| *l <= 16 || [32, 64].contains(l)),
                "{n}: {lens:?}"
            );
            let lists = in_list_lens(n);
            assert_eq!(lists.iter().map(|l| l.0).sum::<usize>(), n);
            assert_eq!(lists.len(), n.div_ceil(64));
            assert!(lists
                .iter()
                .all(|(keys, shape)| keys <= shape && [4, 16, 64].contains(shape)));
        }
    }
}
