//! What the two backends share, so they cannot drift apart: conversions, row decoding, the SQL
//! (SQLite accepts Postgres-style `$1` placeholders, so every statement is written once) and the
//! `Store` implementation itself (`impl_store!`). Each backend supplies only what truly differs:
//! how it opens, how a write transaction starts, how the audit chain is serialized, the lease
//! query's locking clause, and its error mapping.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::{ColumnIndex, Decode, Row, Type};

use revoke_core::{Action, ConnectorError, Job, JournalEntry, PlanId, Verdict};

use crate::{ActionRecord, ActionState, AuditEntry, JobRecord, NewAuditEntry, StoreError};

/// Microseconds since the Unix epoch: how both backends store every timestamp.
pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn opt_micros(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(micros)
}

/// The stored form of a time read back: what callers see after a round trip.
pub(crate) fn truncate_to_micros(t: DateTime<Utc>) -> Result<DateTime<Utc>, StoreError> {
    from_micros(micros(t), "time")
}

pub(crate) fn from_micros(v: i64, what: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(v).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "{what}: expected microseconds since the epoch in range, found {v}"
        ))
    })
}

fn opt_from_micros(v: Option<i64>, what: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    v.map(|v| from_micros(v, what)).transpose()
}

/// When a lease taken at `now` for `ttl` runs out, in stored form.
pub(crate) fn lease_expiry(
    now: DateTime<Utc>,
    ttl: std::time::Duration,
) -> Result<i64, StoreError> {
    let ttl = chrono::Duration::from_std(ttl).map_err(|e| {
        StoreError::Config(format!(
            "lease ttl: expected a duration chrono can add, found {ttl:?}: {e}"
        ))
    })?;
    now.checked_add_signed(ttl).map(micros).ok_or_else(|| {
        StoreError::Config(format!(
            "lease ttl: expected now + ttl to be a valid time, found {now} + {ttl}"
        ))
    })
}

pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(format!("encoding json: {e}")))
}

fn from_json<T: DeserializeOwned>(s: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(s)
        .map_err(|e| StoreError::Corrupt(format!("{what}: expected valid json, found {e}")))
}

pub(crate) fn col<'r, R, T>(row: &'r R, name: &'static str) -> Result<T, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get::<T, _>(name)
        .map_err(|e| StoreError::Corrupt(format!("column {name}: {e}")))
}

/// The columns `decode_action` reads, in the order the SQL selects them.
macro_rules! action_columns {
    () => {
        "plan_id, json, state, attempts, not_before, started_at, finished_at, next_attempt_at, error_json, \
         note, verdict_json, verified_at, lease_owner, lease_expires_at"
    };
}
pub(crate) use action_columns;

/// The order phases are leased in (`actions.phase_rank`).
pub(crate) fn phase_rank(phase: revoke_core::Phase) -> i64 {
    use revoke_core::Phase;
    match phase {
        Phase::Contain => 0,
        Phase::Transfer => 1,
        Phase::Revoke => 2,
        Phase::Delete => 3,
        Phase::Manual => 4,
        Phase::Verify => 5,
    }
}

/// Decodes a row selected with `action_columns!()` back into an `ActionRecord`.
pub(crate) fn decode_action<'r, R>(row: &'r R) -> Result<ActionRecord, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let json: String = col(row, "json")?;
    let mut action: Action = from_json(&json, "actions.json")?;
    // The store's due time: the plan's, moved later by a grace period once prerequisites finish.
    action.not_before = opt_from_micros(col(row, "not_before")?, "actions.not_before")?;
    let state: String = col(row, "state")?;
    let state = ActionState::parse(&state).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "action {}: expected a known state, found {state:?}",
            action.id
        ))
    })?;
    let attempts: i64 = col(row, "attempts")?;
    let attempts = u32::try_from(attempts).map_err(|_| {
        StoreError::Corrupt(format!(
            "action {}: expected a small attempt count, found {attempts}",
            action.id
        ))
    })?;
    let error: Option<String> = col(row, "error_json")?;
    let verdict: Option<String> = col(row, "verdict_json")?;
    Ok(ActionRecord {
        plan_id: PlanId(col(row, "plan_id")?),
        state,
        attempts,
        started_at: opt_from_micros(col(row, "started_at")?, "actions.started_at")?,
        finished_at: opt_from_micros(col(row, "finished_at")?, "actions.finished_at")?,
        next_attempt_at: opt_from_micros(col(row, "next_attempt_at")?, "actions.next_attempt_at")?,
        error: error
            .map(|e| from_json::<ConnectorError>(&e, "actions.error_json"))
            .transpose()?,
        note: col(row, "note")?,
        verdict: verdict
            .map(|v| from_json::<Verdict>(&v, "actions.verdict_json"))
            .transpose()?,
        verified_at: opt_from_micros(col(row, "verified_at")?, "actions.verified_at")?,
        lease_owner: col(row, "lease_owner")?,
        lease_expires_at: opt_from_micros(
            col(row, "lease_expires_at")?,
            "actions.lease_expires_at",
        )?,
        action,
    })
}

/// Decodes `SELECT json, plan_id, created_at FROM jobs`.
pub(crate) fn decode_job<'r, R>(row: &'r R) -> Result<JobRecord, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let json: String = col(row, "json")?;
    let job: Job = from_json(&json, "jobs.json")?;
    Ok(JobRecord {
        job,
        plan_id: PlanId(col(row, "plan_id")?),
        created_at: from_micros(col(row, "created_at")?, "jobs.created_at")?,
    })
}

/// Decodes `SELECT json FROM plans`.
pub(crate) fn decode_plan<'r, R>(row: &'r R) -> Result<revoke_core::Plan, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    let json: String = col(row, "json")?;
    from_json(&json, "plans.json")
}

/// Decodes a row of `audit_log` (every column).
pub(crate) fn decode_audit<'r, R>(row: &'r R) -> Result<AuditEntry, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(AuditEntry {
        seq: col(row, "seq")?,
        at: from_micros(col(row, "at")?, "audit_log.at")?,
        actor: col(row, "actor")?,
        kind: col(row, "kind")?,
        job_id: col(row, "job_id")?,
        action_id: col(row, "action_id")?,
        data: col(row, "data")?,
        prev_hash: col(row, "prev_hash")?,
        hash: col(row, "hash")?,
    })
}

/// Decodes `SELECT name, value, at FROM action_journal`.
pub(crate) fn decode_journal<'r, R>(row: &'r R) -> Result<JournalEntry, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(JournalEntry {
        name: col(row, "name")?,
        value: col(row, "value")?,
        at: from_micros(col(row, "at")?, "action_journal.at")?,
    })
}

/// Decodes a single `i64` column by name.
pub(crate) fn decode_i64<'r, R>(row: &'r R, name: &'static str) -> Result<i64, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    col(row, name)
}

/// Decodes a single text column by name.
pub(crate) fn decode_string<'r, R>(row: &'r R, name: &'static str) -> Result<String, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    col(row, name)
}

/// The runnable actions (see `Store::lease_due`), earlier phases first (every due contain action
/// of every plan before any revoke or delete), then in plan order. `$1` now, `$2` the plan (or NULL
/// for every plan, with `all`), `$3` the limit; `$suffix` is the backend's locking clause.
/// Expired `running` leases were turned back to `pending` just before (see `lease_due`), so the
/// query reads only `pending` rows, and with a plan it walks the `(plan_id, state, phase_rank, seq)` index in
/// order and stops at the limit instead of visiting every action of the plan.
macro_rules! lease_candidates_sql {
    (plan, $suffix:literal) => {
        $crate::common::lease_candidates_sql!(@ "AND a.plan_id = $2 ", "ORDER BY a.phase_rank, a.seq ", $suffix)
    };
    (all, $suffix:literal) => {
        $crate::common::lease_candidates_sql!(@ "AND CAST($2 AS TEXT) IS NULL ", "ORDER BY a.phase_rank, a.seq, a.plan_id, a.id ", $suffix)
    };
    (@ $plan:literal, $order:literal, $suffix:literal) => {
        concat!(
            "SELECT a.id, a.connector FROM actions a \
             WHERE a.state = 'pending' ",
            $plan,
            "AND a.manual = FALSE {except}\
               AND (a.not_before IS NULL OR a.not_before <= $1) \
               AND (a.next_attempt_at IS NULL OR a.next_attempt_at <= $1) \
               AND (a.lease_owner IS NULL OR a.lease_expires_at IS NULL OR a.lease_expires_at < $1) \
               AND NOT EXISTS ( \
                   SELECT 1 FROM action_deps d JOIN actions p ON p.id = d.depends_on \
                   WHERE d.action_id = a.id \
                     AND p.state NOT IN ('done', 'already_done', 'skipped', 'acknowledged')) ",
            $order,
            "LIMIT $3",
            $suffix
        )
    };
}
pub(crate) use lease_candidates_sql;

/// Binds at most per multi-row statement: far below both backends' limits (SQLite 32,766,
/// Postgres 65,535), and small enough that binding stays cheap (sqlx's SQLite binding grows
/// with the square of a statement's binds: 500 rows of 16 values took 170 ms, 60 rows 2 ms).
const BINDS_PER_STATEMENT: usize = 960;

/// Rows per multi-row statement for rows of `cols` values.
pub(crate) const fn rows_per_statement(cols: usize) -> usize {
    let rows = BINDS_PER_STATEMENT / cols;
    if rows == 0 {
        1
    } else {
        rows
    }
}

/// `($first, $first+1, ...), (...)`: the placeholders of `rows` rows of `cols` values each.
pub(crate) fn values_list(first: usize, rows: usize, cols: usize) -> String {
    let mut out = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..cols {
            if c > 0 {
                out.push_str(", ");
            }
            out.push('$');
            out.push_str(&(first + r * cols + c).to_string());
        }
        out.push(')');
    }
    out
}

/// `$first, $first+1, ...`: `n` placeholders for an `IN (...)` list.
pub(crate) fn in_list(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// The executor's per-batch writes of action rows, named so that a test can check their query
// plans (`sqlite::tests`): each must find its rows by id. Without statistics SQLite's planner
// takes an equality on `state` (the `actions_state` index, a handful of values) for selective,
// and then scans every pending or running action of the store for each batch: that cost grew
// with the queue (0.7 ms per finished action at 5,000 actions, 1.1 ms per batch of attempts at
// 50,000). `state || ''` keeps the planner off that index (and changes nothing on Postgres).

/// Leases the listed actions (`$1` owner, `$2` expiry, `$3...` ids), returning their columns.
pub(crate) fn lease_rows_sql(ids: usize) -> String {
    format!(
        concat!(
            "UPDATE actions SET lease_owner = $1, lease_expires_at = $2 WHERE id IN ({}) RETURNING ",
            action_columns!()
        ),
        in_list(3, ids)
    )
}

/// Starts the next attempt of each listed action `$3` holds a live lease on (`$1` now, `$2` the
/// renewed expiry or NULL, `$4...` ids).
pub(crate) fn begin_attempts_sql(ids: usize) -> String {
    format!(
        "UPDATE actions SET state = 'running', attempts = attempts + 1, \
           started_at = COALESCE(started_at, $1), lease_expires_at = COALESCE($2, lease_expires_at) \
         WHERE id IN ({}) AND lease_owner = $3 AND lease_expires_at >= $1 \
           AND state || '' IN ('pending', 'running') \
         RETURNING id, attempts, key, job_id, kind, target",
        in_list(4, ids)
    )
}

/// Moves the due time of the pending dependents with a grace period of the listed actions to
/// `$1` + grace (`$2...` the prerequisites that succeeded).
pub(crate) fn grace_sql(prerequisites: usize) -> String {
    format!(
        "UPDATE actions SET not_before = $1 + grace_us \
         WHERE id IN (SELECT action_id FROM action_deps WHERE depends_on IN ({})) \
           AND grace_us IS NOT NULL AND state || '' = 'pending' \
           AND (not_before IS NULL OR not_before < $1 + grace_us)",
        in_list(2, prerequisites)
    )
}

/// The lease query of `template` (`lease_candidates_sql!`, whose `{except}` marks the place)
/// leaving out the actions of `except` connector instances (`$4...`).
pub(crate) fn lease_candidates(template: &str, except: usize) -> String {
    let clause = if except == 0 {
        String::new()
    } else {
        format!("AND a.connector NOT IN ({}) ", in_list(4, except))
    };
    template.replace("{except}", &clause)
}

/// An audit entry of a state change, stamped `now`, with `data` as its canonical JSON text.
pub(crate) fn audit_entry(
    now: DateTime<Utc>,
    actor: &str,
    kind: &str,
    job_id: &str,
    action_id: Option<&str>,
    data: &serde_json::Value,
) -> NewAuditEntry {
    NewAuditEntry {
        at: now,
        actor: actor.to_string(),
        kind: kind.to_string(),
        job_id: Some(job_id.to_string()),
        action_id: action_id.map(str::to_string),
        data: data.to_string(),
    }
}

/// Implements `Store` for a backend with the shared SQL. The backend type must have a `pool`
/// field (reads), `write_pool` (single statements that write), `begin_write` (a transaction of database `$db` that may write), `lock_audit`
/// (serializes audit appends within that transaction), and a module-level
/// `map_err(sqlx::Error) -> StoreError`.
///
/// Every state-changing method appends its audit entries with `append_audit_in`, inside its own
/// transaction and after its last write to other tables: on Postgres the audit lock is then held
/// only from the append to the commit, and a transaction holding it never waits for a row lock
/// (no deadlock with another writer that holds the row and waits for the audit lock).
macro_rules! impl_store {
    ($store:ty, db = $db:ty, lease_plan = $lease_plan:expr, lease_all = $lease_all:expr, skip_locked = $skip_locked:literal) => {
        impl $store {
            /// Runs arbitrary SQL; only for tests that tamper with the database behind the store's back.
            #[doc(hidden)]
            pub async fn execute_raw(&self, sql: &str) -> Result<u64, $crate::StoreError> {
                let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
                    .execute(self.write_pool())
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected())
            }

            /// Appends `entry` to the audit chain inside `tx`, which the caller commits (see
            /// `append_audits_in`).
            async fn append_audit_in(
                &self,
                tx: &mut ::sqlx::Transaction<'static, $db>,
                entry: &$crate::NewAuditEntry,
            ) -> Result<$crate::AuditEntry, $crate::StoreError> {
                let mut appended = self.append_audits_in(tx, std::slice::from_ref(entry)).await?;
                appended.pop().ok_or_else(|| $crate::StoreError::Database("audit: nothing appended".into()))
            }

            /// Appends `entries`, in order, to the audit chain inside `tx`, which the caller
            /// commits: takes the audit lock, reads the last entry's hash once and inserts the
            /// entries, each chained to the one before. The one place that extends the chain.
            async fn append_audits_in(
                &self,
                tx: &mut ::sqlx::Transaction<'static, $db>,
                entries: &[$crate::NewAuditEntry],
            ) -> Result<Vec<$crate::AuditEntry>, $crate::StoreError> {
                use $crate::common::{decode_i64, decode_string, micros, truncate_to_micros};
                use $crate::{AuditEntry, NewAuditEntry, GENESIS_HASH};

                if entries.is_empty() {
                    return Ok(Vec::new());
                }
                self.lock_audit(tx).await?;
                let last = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(map_err)?;
                let (mut seq, mut prev_hash) = match last {
                    Some(row) => (decode_i64(&row, "seq")?, decode_string(&row, "hash")?),
                    None => (0, GENESIS_HASH.to_string()),
                };
                let mut out = Vec::with_capacity(entries.len());
                for entry in entries {
                    // Hash exactly what is stored, so the entry verifies after a round trip.
                    let entry = NewAuditEntry { at: truncate_to_micros(entry.at)?, ..entry.clone() };
                    seq += 1;
                    let hash = AuditEntry::compute_hash(seq, &prev_hash, &entry);
                    out.push(AuditEntry {
                        seq,
                        at: entry.at,
                        actor: entry.actor,
                        kind: entry.kind,
                        job_id: entry.job_id,
                        action_id: entry.action_id,
                        data: entry.data,
                        prev_hash: std::mem::replace(&mut prev_hash, hash.clone()),
                        hash,
                    });
                }
                for chunk in out.chunks($crate::common::rows_per_statement(9)) {
                    let sql = format!(
                        "INSERT INTO audit_log (seq, at, actor, kind, job_id, action_id, data, prev_hash, hash) VALUES {}",
                        $crate::common::values_list(1, chunk.len(), 9)
                    );
                    let mut q = sqlx::query(::sqlx::AssertSqlSafe(sql));
                    for e in chunk {
                        q = q
                            .bind(e.seq)
                            .bind(micros(e.at))
                            .bind(&e.actor)
                            .bind(&e.kind)
                            .bind(e.job_id.as_deref())
                            .bind(e.action_id.as_deref())
                            .bind(&e.data)
                            .bind(&e.prev_hash)
                            .bind(&e.hash);
                    }
                    q.execute(&mut **tx).await.map_err(map_err)?;
                }
                Ok(out)
            }

            /// The body of `record_attempts` for the attempts that begin, inside `tx`: the answers
            /// and the audit entries to append.
            #[allow(clippy::type_complexity)]
            async fn begin_attempts_in(
                &self,
                tx: &mut ::sqlx::Transaction<'static, $db>,
                ids: &[::revoke_core::ActionId],
                owner: &str,
                now: ::chrono::DateTime<::chrono::Utc>,
                renew: Option<std::time::Duration>,
            ) -> Result<(Vec<Result<u32, $crate::StoreError>>, Vec<$crate::NewAuditEntry>), $crate::StoreError> {
                use $crate::common::{audit_entry, decode_i64, decode_string, lease_expiry, micros};
                use $crate::StoreError;

                if ids.is_empty() {
                    return Ok((Vec::new(), Vec::new()));
                }
                let at = now;
                let expiry = renew.map(|ttl| lease_expiry(now, ttl)).transpose()?;
                let now = micros(now);
                // Each action once: a second request for one action in the same batch gets nothing.
                let mut unique: Vec<&str> = Vec::with_capacity(ids.len());
                let mut seen = std::collections::HashSet::with_capacity(ids.len());
                for id in ids {
                    if seen.insert(id.0.as_str()) {
                        unique.push(id.0.as_str());
                    }
                }
                // (attempt, key, job id, kind, target) of every action whose lease `owner` holds.
                let mut begun: std::collections::HashMap<String, (i64, String, String, String, String)> =
                    std::collections::HashMap::with_capacity(unique.len());
                for chunk in unique.chunks($crate::common::rows_per_statement(1)) {
                    let sql = $crate::common::begin_attempts_sql(chunk.len());
                    let mut q = sqlx::query(::sqlx::AssertSqlSafe(sql)).bind(now).bind(expiry).bind(owner);
                    for id in chunk {
                        q = q.bind(*id);
                    }
                    for row in q.fetch_all(&mut **tx).await.map_err(map_err)? {
                        begun.insert(
                            decode_string(&row, "id")?,
                            (
                                decode_i64(&row, "attempts")?,
                                decode_string(&row, "key")?,
                                decode_string(&row, "job_id")?,
                                decode_string(&row, "kind")?,
                                decode_string(&row, "target")?,
                            ),
                        );
                    }
                }
                let mut out = Vec::with_capacity(ids.len());
                let mut recorded = Vec::with_capacity(begun.len());
                let mut entries = Vec::with_capacity(begun.len());
                let mut answered = std::collections::HashSet::with_capacity(ids.len());
                for id in ids {
                    let found = begun.get(id.0.as_str()).filter(|_| answered.insert(id.0.as_str()));
                    let Some((attempt, key, job_id, kind, target)) = found else {
                        out.push(Err(StoreError::LeaseLost { action: id.0.clone(), owner: owner.to_string() }));
                        continue;
                    };
                    let attempt_u32 = u32::try_from(*attempt).map_err(|_| {
                        StoreError::Corrupt(format!("action {id}: expected a small attempt count, found {attempt}"))
                    })?;
                    let data = ::serde_json::json!({
                        "key": key,
                        "attempt": attempt_u32,
                        "kind": kind,
                        "target": target,
                    });
                    entries.push(audit_entry(at, owner, "action.attempt", job_id, Some(&id.0), &data));
                    recorded.push((id.0.as_str(), *attempt, key.as_str()));
                    tracing::debug!(action = %id, owner, attempt, "attempt recorded");
                    out.push(Ok(attempt_u32));
                }
                for chunk in recorded.chunks($crate::common::rows_per_statement(5)) {
                    let sql = format!(
                        "INSERT INTO attempts (action_id, attempt, key, owner, started_at) VALUES {}",
                        $crate::common::values_list(1, chunk.len(), 5)
                    );
                    let mut q = sqlx::query(::sqlx::AssertSqlSafe(sql));
                    for (id, attempt, key) in chunk {
                        q = q.bind(*id).bind(*attempt).bind(*key).bind(owner).bind(now);
                    }
                    q.execute(&mut **tx).await.map_err(map_err)?;
                }
                Ok((out, entries))
            }

            /// The body of `record_attempts` for the attempts that end, inside `tx`: the answers
            /// and the audit entries to append.
            #[allow(clippy::type_complexity)]
            async fn finish_attempts_in(
                &self,
                tx: &mut ::sqlx::Transaction<'static, $db>,
                ends: &[$crate::AttemptEnd],
                owner: &str,
                now: ::chrono::DateTime<::chrono::Utc>,
            ) -> Result<(Vec<Result<(), $crate::StoreError>>, Vec<$crate::NewAuditEntry>), $crate::StoreError> {
                use $crate::common::{audit_entry, decode_string, micros, to_json};
                use $crate::{ActionState, AttemptResult, StoreError};

                if ends.is_empty() {
                    return Ok((Vec::new(), Vec::new()));
                }
                let at = now;
                let now = micros(now);
                let mut out = Vec::with_capacity(ends.len());
                let mut entries = Vec::with_capacity(ends.len());
                let mut succeeded: Vec<&str> = Vec::with_capacity(ends.len());
                for $crate::AttemptEnd { id, attempt, result } in ends {
                    let attempt = *attempt;
                    // (state, finished_at, next_attempt_at, error, note, attempt outcome)
                    let (state, finished_at, next_attempt_at, error, note, outcome) = match result {
                        AttemptResult::Succeeded(o) => {
                            let note = match o {
                                ::revoke_core::Outcome::Skipped { reason } => Some(reason.clone()),
                                _ => None,
                            };
                            (ActionState::from_outcome(o), Some(now), None, None, note, o.as_str())
                        }
                        AttemptResult::Failed { error, retry_at: Some(t) } => {
                            (ActionState::Pending, None, Some(micros(*t)), Some(to_json(error)?), None, "retry")
                        }
                        AttemptResult::Failed { error, retry_at: None } => {
                            (ActionState::Failed, Some(now), None, Some(to_json(error)?), None, "failed")
                        }
                    };
                    // Ownership, not expiry, decides here: an attempt that ran past its lease still
                    // happened and must be recorded, unless another executor has taken the action over.
                    let row = sqlx::query(
                        "UPDATE actions SET state = $1, finished_at = $2, next_attempt_at = $3, error_json = $4, \
                           note = $5, lease_owner = NULL, lease_expires_at = NULL \
                         WHERE id = $6 AND lease_owner = $7 AND state = 'running' AND attempts = $8 \
                         RETURNING job_id",
                    )
                    .bind(state.as_str())
                    .bind(finished_at)
                    .bind(next_attempt_at)
                    .bind(error.as_deref())
                    .bind(note.as_deref())
                    .bind(&id.0)
                    .bind(owner)
                    .bind(i64::from(attempt))
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(map_err)?;
                    let Some(row) = row else {
                        out.push(Err(StoreError::LeaseLost { action: id.0.clone(), owner: owner.to_string() }));
                        continue;
                    };
                    let job_id = decode_string(&row, "job_id")?;
                    let done = sqlx::query(
                        "UPDATE attempts SET finished_at = $1, outcome = $2, error_json = $3 \
                         WHERE action_id = $4 AND attempt = $5",
                    )
                    .bind(now)
                    .bind(outcome)
                    .bind(error.as_deref())
                    .bind(&id.0)
                    .bind(i64::from(attempt))
                    .execute(&mut **tx)
                    .await
                    .map_err(map_err)?;
                    if done.rows_affected() != 1 {
                        // A running action without its attempt row: the store is damaged, and
                        // nothing of this call is written.
                        return Err(StoreError::NotFound(format!("attempt {attempt} of action {id}")));
                    }
                    if matches!(result, AttemptResult::Succeeded(_)) {
                        succeeded.push(id.0.as_str());
                    }
                    let (kind, data) = match result {
                        AttemptResult::Succeeded(o) => {
                            ("action.finished", ::serde_json::json!({ "attempt": attempt, "outcome": o }))
                        }
                        AttemptResult::Failed { error, retry_at } => (
                            "action.attempt_failed",
                            ::serde_json::json!({ "attempt": attempt, "error": error, "retry_at": retry_at }),
                        ),
                    };
                    entries.push(audit_entry(at, owner, kind, &job_id, Some(&id.0), &data));
                    tracing::debug!(action = %id, owner, attempt, state = %state, "attempt finished");
                    out.push(Ok(()));
                }
                // Dependents with a grace period count it from now: the last prerequisite to
                // finish sets their due time.
                for chunk in succeeded.chunks($crate::common::rows_per_statement(1)) {
                    let sql = $crate::common::grace_sql(chunk.len());
                    let mut q = sqlx::query(::sqlx::AssertSqlSafe(sql)).bind(now);
                    for id in chunk {
                        q = q.bind(*id);
                    }
                    q.execute(&mut **tx).await.map_err(map_err)?;
                }
                Ok((out, entries))
            }

            /// Inserts a plan, its jobs, actions and dependencies, and audits `plan.recorded` per
            /// job, inside `tx`, which the caller commits.
            async fn insert_plan_in(
                &self,
                tx: &mut ::sqlx::Transaction<'static, $db>,
                plan: &::revoke_core::Plan,
                actor: &str,
                now: ::chrono::DateTime<::chrono::Utc>,
            ) -> Result<(), $crate::StoreError> {
                use $crate::common::{audit_entry, micros, opt_micros, to_json};
                use $crate::{ActionState, StoreError};

                let ids: std::collections::HashSet<&str> = plan.actions.iter().map(|a| a.id.0.as_str()).collect();
                for a in &plan.actions {
                    if let Some(d) = a.depends_on.iter().find(|d| !ids.contains(d.0.as_str())) {
                        return Err(StoreError::Corrupt(format!(
                            "plan {}: expected action {} to depend on actions of the plan, found {}",
                            plan.id, a.id, d
                        )));
                    }
                }
                let at = now;
                let now = micros(now);
                sqlx::query("INSERT INTO plans (id, fingerprint, json, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(&plan.id.0)
                    .bind(&plan.fingerprint)
                    .bind(to_json(plan)?)
                    .bind(now)
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| match map_err(e) {
                        StoreError::Conflict(_) => {
                            StoreError::Conflict(format!("plan {}: expected a new plan id, found it already recorded", plan.id))
                        }
                        other => other,
                    })?;
                // Many rows per statement (a plan of thousands of leavers is one transaction).
                for chunk in plan.jobs.chunks($crate::common::rows_per_statement(5)) {
                    let sql = format!(
                        "INSERT INTO jobs (id, plan_id, subject_id, json, created_at) VALUES {}",
                        $crate::common::values_list(1, chunk.len(), 5)
                    );
                    let mut q = sqlx::query(::sqlx::AssertSqlSafe(sql));
                    for job in chunk {
                        q = q.bind(&job.id.0).bind(&plan.id.0).bind(&job.subject.id).bind(to_json(job)?).bind(now);
                    }
                    q.execute(&mut **tx).await.map_err(map_err)?;
                }
                let numbered: Vec<(usize, &::revoke_core::Action)> = plan.actions.iter().enumerate().collect();
                for chunk in numbered.chunks($crate::common::rows_per_statement(16)) {
                    let sql = format!(
                        "INSERT INTO actions (id, plan_id, job_id, seq, connector, kind, target, phase, not_before, \
                         key, json, manual, state, attempts, phase_rank, grace_us) VALUES {}",
                        $crate::common::values_list(1, chunk.len(), 16)
                    );
                    let mut q = sqlx::query(::sqlx::AssertSqlSafe(sql));
                    for (seq, a) in chunk {
                        let state = if a.is_manual() { ActionState::AwaitingAck } else { ActionState::Pending };
                        q = q
                            .bind(&a.id.0)
                            .bind(&plan.id.0)
                            .bind(&a.job_id.0)
                            .bind(*seq as i64)
                            .bind(&a.connector)
                            .bind(&a.kind.0)
                            .bind(&a.target)
                            .bind(a.phase.as_str())
                            .bind(opt_micros(a.not_before))
                            .bind(&a.key.0)
                            .bind(to_json(a)?)
                            .bind(a.is_manual())
                            .bind(state.as_str())
                            .bind(0_i64)
                            .bind($crate::common::phase_rank(a.phase))
                            .bind(a.grace.map(|g| i64::try_from(g.as_micros()).unwrap_or(i64::MAX)));
                    }
                    q.execute(&mut **tx).await.map_err(map_err)?;
                }
                let deps: Vec<(&str, &str)> = plan
                    .actions
                    .iter()
                    .flat_map(|a| a.depends_on.iter().map(move |d| (a.id.0.as_str(), d.0.as_str())))
                    .collect();
                for chunk in deps.chunks($crate::common::rows_per_statement(2)) {
                    let sql = format!(
                        "INSERT INTO action_deps (action_id, depends_on) VALUES {}",
                        $crate::common::values_list(1, chunk.len(), 2)
                    );
                    let mut q = sqlx::query(::sqlx::AssertSqlSafe(sql));
                    for (a, d) in chunk {
                        q = q.bind(*a).bind(*d);
                    }
                    q.execute(&mut **tx).await.map_err(map_err)?;
                }
                let mut per_job: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
                for a in &plan.actions {
                    *per_job.entry(a.job_id.0.as_str()).or_default() += 1;
                }
                let entries: Vec<_> = plan
                    .jobs
                    .iter()
                    .map(|job| {
                        let data = ::serde_json::json!({
                            "plan_id": plan.id.0,
                            "fingerprint": plan.fingerprint,
                            "subject": job.subject.id,
                            "risk": job.risk,
                            "effective_at": job.effective_at,
                            "reason": job.reason,
                            "requested_by": job.requested_by,
                            "actions": per_job.get(job.id.0.as_str()).copied().unwrap_or(0),
                        });
                        audit_entry(at, actor, "plan.recorded", &job.id.0, None, &data)
                    })
                    .collect();
                self.append_audits_in(tx, &entries).await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::Store for $store {
            async fn insert_plan(
                &self,
                plan: &::revoke_core::Plan,
                actor: &str,
                now: ::chrono::DateTime<::chrono::Utc>,
            ) -> Result<(), $crate::StoreError> {
                let mut tx = self.begin_write().await?;
                self.insert_plan_in(&mut tx, plan, actor, now).await?;
                tx.commit().await.map_err(map_err)?;
                tracing::debug!(plan = %plan.id, actions = plan.actions.len(), jobs = plan.jobs.len(), "plan recorded");
                Ok(())
            }

            async fn plan(&self, id: &::revoke_core::PlanId) -> Result<Option<::revoke_core::Plan>, $crate::StoreError> {
                let row = sqlx::query("SELECT json FROM plans WHERE id = $1")
                    .bind(&id.0)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                row.as_ref().map($crate::common::decode_plan).transpose()
            }

            async fn plan_of_job(
                &self,
                job: &::revoke_core::JobId,
            ) -> Result<Option<::revoke_core::PlanId>, $crate::StoreError> {
                let row = sqlx::query("SELECT plan_id FROM jobs WHERE id = $1")
                    .bind(&job.0)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                row.as_ref()
                    .map(|r| $crate::common::decode_string(r, "plan_id").map(::revoke_core::PlanId))
                    .transpose()
            }

            async fn jobs(&self) -> Result<Vec<$crate::JobRecord>, $crate::StoreError> {
                let rows = sqlx::query("SELECT json, plan_id, created_at FROM jobs ORDER BY created_at DESC, id DESC")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)?;
                rows.iter().map($crate::common::decode_job).collect()
            }

            async fn actions(
                &self,
                plan: &::revoke_core::PlanId,
            ) -> Result<Vec<$crate::ActionRecord>, $crate::StoreError> {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    $crate::common::action_columns!(),
                    " FROM actions WHERE plan_id = $1 ORDER BY seq"
                ))
                .bind(&plan.0)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                rows.iter().map($crate::common::decode_action).collect()
            }

            async fn action(
                &self,
                id: &::revoke_core::ActionId,
            ) -> Result<Option<$crate::ActionRecord>, $crate::StoreError> {
                let row = sqlx::query(concat!("SELECT ", $crate::common::action_columns!(), " FROM actions WHERE id = $1"))
                    .bind(&id.0)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                row.as_ref().map($crate::common::decode_action).transpose()
            }

            async fn unverified(
                &self,
                plan: Option<&::revoke_core::PlanId>,
                finished_by: ::chrono::DateTime<::chrono::Utc>,
            ) -> Result<Vec<$crate::ActionRecord>, $crate::StoreError> {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    $crate::common::action_columns!(),
                    " FROM actions WHERE state IN ('done', 'already_done', 'skipped') AND manual = FALSE \
                       AND verdict_json IS NULL AND finished_at <= $1 \
                       AND (CAST($2 AS TEXT) IS NULL OR plan_id = $2) \
                     ORDER BY plan_id, seq"
                ))
                .bind($crate::common::micros(finished_by))
                .bind(plan.map(|p| p.0.as_str()))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                rows.iter().map($crate::common::decode_action).collect()
            }

            async fn lease_due_within(
                &self,
                plan: Option<&::revoke_core::PlanId>,
                owner: &str,
                now: ::chrono::DateTime<::chrono::Utc>,
                ttl: std::time::Duration,
                limit: u32,
                room: &std::collections::BTreeMap<String, usize>,
            ) -> Result<Vec<$crate::ActionRecord>, $crate::StoreError> {
                use $crate::common::{decode_action, decode_string, lease_expiry, micros};

                let expires = lease_expiry(now, ttl)?;
                let now = micros(now);
                let mut tx = self.begin_write().await?;
                // An executor that died mid-action left it `running`; once its lease has run out
                // the action is runnable again (the next attempt is numbered after its last one).
                sqlx::query("UPDATE actions SET state = 'pending' WHERE state = 'running' AND lease_expires_at < $1")
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                // Instances without room are left out of the query; for those with some, twice
                // the limit is read so that actions of other instances behind theirs are found.
                let except: Vec<&String> = room.iter().filter(|(_, n)| **n == 0).map(|(c, _)| c).collect();
                let bounded = room.values().any(|n| *n > 0);
                let read = if bounded { limit.saturating_mul(2) } else { limit };
                let sql = $crate::common::lease_candidates(
                    if plan.is_some() { $lease_plan } else { $lease_all },
                    except.len(),
                );
                let mut q = sqlx::query(::sqlx::AssertSqlSafe(sql))
                    .bind(now)
                    .bind(plan.map(|p| p.0.as_str()))
                    .bind(i64::from(read));
                for c in &except {
                    q = q.bind(c.as_str());
                }
                let rows = q.fetch_all(&mut *tx).await.map_err(map_err)?;
                let mut left = room.clone();
                let mut ids = Vec::with_capacity(rows.len());
                for row in &rows {
                    if ids.len() >= limit as usize {
                        break;
                    }
                    let connector = decode_string(row, "connector")?;
                    match left.get_mut(&connector) {
                        Some(0) => continue,
                        Some(n) => *n -= 1,
                        None => {}
                    }
                    ids.push(decode_string(row, "id")?);
                }
                // One write for the batch, answered in the candidates' order.
                let mut by_id = std::collections::HashMap::with_capacity(ids.len());
                for chunk in ids.chunks($crate::common::rows_per_statement(1)) {
                    let sql = $crate::common::lease_rows_sql(chunk.len());
                    let mut q = sqlx::query(::sqlx::AssertSqlSafe(sql)).bind(owner).bind(expires);
                    for id in chunk {
                        q = q.bind(id);
                    }
                    for row in q.fetch_all(&mut *tx).await.map_err(map_err)? {
                        let rec = decode_action(&row)?;
                        by_id.insert(rec.action.id.0.clone(), rec);
                    }
                }
                let leased: Vec<$crate::ActionRecord> = ids.iter().filter_map(|id| by_id.remove(id)).collect();
                tx.commit().await.map_err(map_err)?;
                if !leased.is_empty() {
                    tracing::debug!(owner, count = leased.len(), "leased due actions");
                }
                Ok(leased)
            }

            async fn renew_lease(
                &self,
                id: &::revoke_core::ActionId,
                owner: &str,
                now: ::chrono::DateTime<::chrono::Utc>,
                ttl: std::time::Duration,
            ) -> Result<bool, $crate::StoreError> {
                use $crate::common::{lease_expiry, micros};

                let done = sqlx::query(
                    "UPDATE actions SET lease_expires_at = $1 \
                     WHERE id = $2 AND lease_owner = $3 AND lease_expires_at >= $4 \
                       AND state IN ('pending', 'running')",
                )
                .bind(lease_expiry(now, ttl)?)
                .bind(&id.0)
                .bind(owner)
                .bind(micros(now))
                .execute(self.write_pool())
                .await
                .map_err(map_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn begin_attempt(
                &self,
                id: &::revoke_core::ActionId,
                owner: &str,
                now: ::chrono::DateTime<::chrono::Utc>,
            ) -> Result<u32, $crate::StoreError> {
                let mut out = self.begin_attempts(std::slice::from_ref(id), owner, now, None).await?;
                out.pop().unwrap_or_else(|| Err($crate::StoreError::NotFound(format!("action {id}"))))
            }

            async fn begin_attempts(
                &self,
                ids: &[::revoke_core::ActionId],
                owner: &str,
                now: ::chrono::DateTime<::chrono::Utc>,
                renew: Option<std::time::Duration>,
            ) -> Result<Vec<Result<u32, $crate::StoreError>>, $crate::StoreError> {
                Ok(self.record_attempts(&[], ids, renew, owner, now).await?.1)
            }

            async fn finish_attempts(
                &self,
                ends: &[$crate::AttemptEnd],
                owner: &str,
                now: ::chrono::DateTime<::chrono::Utc>,
            ) -> Result<Vec<Result<(), $crate::StoreError>>, $crate::StoreError> {
                Ok(self.record_attempts(ends, &[], None, owner, now).await?.0)
            }

            async fn record_attempts(
                &self,
                ends: &[$crate::AttemptEnd],
                begins: &[::revoke_core::ActionId],
                renew: Option<std::time::Duration>,
                owner: &str,
                now: ::chrono::DateTime<::chrono::Utc>,
            ) -> Result<$crate::RecordedAttempts, $crate::StoreError> {
                if ends.is_empty() && begins.is_empty() {
                    return Ok((Vec::new(), Vec::new()));
                }
                let mut tx = self.begin_write().await?;
                let (ended, mut entries) = self.finish_attempts_in(&mut tx, ends, owner, now).await?;
                let (begun, more) = self.begin_attempts_in(&mut tx, begins, owner, now, renew).await?;
                entries.extend(more);
                self.append_audits_in(&mut tx, &entries).await?;
                tx.commit().await.map_err(map_err)?;
                Ok((ended, begun))
            }

            async fn finish_attempt(
                &self,
                id: &::revoke_core::ActionId,
                owner: &str,
                attempt: u32,
                result: &$crate::AttemptResult,
                now: ::chrono::DateTime<::chrono::Utc>,
            ) -> Result<(), $crate::StoreError> {
                let end = $crate::AttemptEnd { id: id.clone(), attempt, result: result.clone() };
                let mut out = self.finish_attempts(std::slice::from_ref(&end), owner, now).await?;
                out.pop().unwrap_or_else(|| Err($crate::StoreError::NotFound(format!("action {id}"))))
            }

            async fn record_journal(
                &self,
                id: &::revoke_core::ActionId,
                owner: &str,
                attempt: u32,
                name: &str,
                value: &str,
                now: ::chrono::DateTime<::chrono::Utc>,
            ) -> Result<(), $crate::StoreError> {
                use $crate::common::{audit_entry, decode_string, micros};
                use $crate::StoreError;

                let mut tx = self.begin_write().await?;
                // The ownership check of `finish_attempt`, as an update that changes nothing: it
                // takes the action's row lock (Postgres), so no other executor can take the action
                // over or finish it between this check and the commit.
                let row = sqlx::query(
                    "UPDATE actions SET lease_owner = lease_owner \
                     WHERE id = $1 AND lease_owner = $2 AND state = 'running' AND attempts = $3 \
                     RETURNING job_id",
                )
                .bind(&id.0)
                .bind(owner)
                .bind(i64::from(attempt))
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
                let Some(row) = row else {
                    return Err(StoreError::LeaseLost { action: id.0.clone(), owner: owner.to_string() });
                };
                let job_id = decode_string(&row, "job_id")?;
                sqlx::query(
                    "INSERT INTO action_journal (action_id, attempt, name, value, at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&id.0)
                .bind(i64::from(attempt))
                .bind(name)
                .bind(value)
                .bind(micros(now))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                let data = ::serde_json::json!({ "attempt": attempt, "name": name, "value": value });
                self.append_audit_in(&mut tx, &audit_entry(now, owner, "action.journal", &job_id, Some(&id.0), &data))
                    .await?;
                tx.commit().await.map_err(map_err)?;
                tracing::debug!(action = %id, owner, attempt, name, "journal entry recorded");
                Ok(())
            }

            async fn journal(
                &self,
                id: &::revoke_core::ActionId,
            ) -> Result<Vec<::revoke_core::JournalEntry>, $crate::StoreError> {
                let rows = sqlx::query("SELECT name, value, at FROM action_journal WHERE action_id = $1 ORDER BY seq")
                    .bind(&id.0)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)?;
                rows.iter().map($crate::common::decode_journal).collect()
            }

            async fn mark_blocked(
                &self,
                ids: &[::revoke_core::ActionId],
                reason: &str,
                actor: &str,
                now: ::chrono::DateTime<::chrono::Utc>,
            ) -> Result<(), $crate::StoreError> {
                use $crate::common::{audit_entry, decode_string, micros};

                let at = now;
                let now = micros(now);
                let mut tx = self.begin_write().await?;
                let mut blocked = Vec::new();
                for id in ids {
                    let row = sqlx::query(
                        "UPDATE actions SET state = 'blocked', note = $1, finished_at = $2, \
                           lease_owner = NULL, lease_expires_at = NULL \
                         WHERE id = $3 AND state = 'pending' \
                         RETURNING job_id",
                    )
                    .bind(reason)
                    .bind(now)
                    .bind(&id.0)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    if let Some(row) = row {
                        blocked.push((id, decode_string(&row, "job_id")?));
                    }
                }
                // Audited once every row is written (see `impl_store!`).
                for (id, job_id) in blocked {
                    let rows = sqlx::query(
                        "SELECT p.id FROM action_deps d JOIN actions p ON p.id = d.depends_on \
                         WHERE d.action_id = $1 \
                           AND p.state NOT IN ('done', 'already_done', 'skipped', 'acknowledged') \
                         ORDER BY p.seq",
                    )
                    .bind(&id.0)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    let prerequisites = rows
                        .iter()
                        .map(|r| decode_string(r, "id"))
                        .collect::<Result<Vec<String>, _>>()?;
                    let data = ::serde_json::json!({ "reason": reason, "prerequisites": prerequisites });
                    self.append_audit_in(&mut tx, &audit_entry(at, actor, "action.blocked", &job_id, Some(&id.0), &data))
                        .await?;
                }
                tx.commit().await.map_err(map_err)?;
                Ok(())
            }

            async fn record_verdict(
                &self,
                id: &::revoke_core::ActionId,
                verdict: &::revoke_core::Verdict,
                actor: &str,
                now: ::chrono::DateTime<::chrono::Utc>,
            ) -> Result<(), $crate::StoreError> {
                self.record_verdicts(&[(id.clone(), verdict.clone())], actor, now).await
            }

            async fn record_verdicts(
                &self,
                verdicts: &[(::revoke_core::ActionId, ::revoke_core::Verdict)],
                actor: &str,
                now: ::chrono::DateTime<::chrono::Utc>,
            ) -> Result<(), $crate::StoreError> {
                use $crate::common::{audit_entry, decode_string, micros, to_json};

                if verdicts.is_empty() {
                    return Ok(());
                }
                let mut tx = self.begin_write().await?;
                // Every row first, then every audit entry: on Postgres the audit lock is then
                // held only from the first append to the commit (see the macro's docs).
                let mut entries = Vec::with_capacity(verdicts.len());
                for (id, verdict) in verdicts {
                    let row = sqlx::query("UPDATE actions SET verdict_json = $1, verified_at = $2 WHERE id = $3 RETURNING job_id")
                        .bind(to_json(verdict)?)
                        .bind(micros(now))
                        .bind(&id.0)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    let Some(row) = row else {
                        return Err($crate::StoreError::NotFound(format!("action {id}")));
                    };
                    let job_id = decode_string(&row, "job_id")?;
                    let data = ::serde_json::json!({ "verdict": verdict });
                    entries.push(audit_entry(now, actor, "action.verified", &job_id, Some(&id.0), &data));
                }
                self.append_audits_in(&mut tx, &entries).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(())
            }

            async fn acknowledge(
                &self,
                job: &::revoke_core::JobId,
                id: &::revoke_core::ActionId,
                by: &str,
                now: ::chrono::DateTime<::chrono::Utc>,
            ) -> Result<(), $crate::StoreError> {
                use $crate::StoreError;

                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE actions SET state = 'acknowledged', note = $1, finished_at = $2 \
                     WHERE id = $3 AND job_id = $4 AND state = 'awaiting_ack'",
                )
                .bind(by)
                .bind($crate::common::micros(now))
                .bind(&id.0)
                .bind(&job.0)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                if done.rows_affected() != 1 {
                    let row = sqlx::query("SELECT state FROM actions WHERE id = $1 AND job_id = $2")
                        .bind(&id.0)
                        .bind(&job.0)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    return Err(match row {
                        None => StoreError::NotFound(format!("action {id} of job {job}")),
                        Some(row) => StoreError::Conflict(format!(
                            "action {id}: expected state awaiting_ack to acknowledge, found {}",
                            $crate::common::decode_string(&row, "state")?
                        )),
                    });
                }
                let data = ::serde_json::json!({ "by": by });
                let entry = $crate::common::audit_entry(now, by, "action.acknowledged", &job.0, Some(&id.0), &data);
                self.append_audit_in(&mut tx, &entry).await?;
                tx.commit().await.map_err(map_err)?;
                tracing::info!(action = %id, job = %job, by, "manual action acknowledged");
                Ok(())
            }

            async fn append_audit(&self, entry: &$crate::NewAuditEntry) -> Result<$crate::AuditEntry, $crate::StoreError> {
                let mut tx = self.begin_write().await?;
                let appended = self.append_audit_in(&mut tx, entry).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(appended)
            }

            async fn audit_log(&self) -> Result<Vec<$crate::AuditEntry>, $crate::StoreError> {
                let rows = sqlx::query(
                    "SELECT seq, at, actor, kind, job_id, action_id, data, prev_hash, hash FROM audit_log ORDER BY seq",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                rows.iter().map($crate::common::decode_audit).collect()
            }
        }

        $crate::jobs::job_queue_methods!($store, $db, $skip_locked);
        $crate::sessions::console_session_methods!($store);
    };
}
pub(crate) use impl_store;

/// The migration set of one backend, built at run time from the embedded SQL (the `migrate!`
/// macro would need sqlx's `macros` feature, which the workspace leaves off for compile time).
pub(crate) fn migrator(steps: &[(i64, &'static str, &'static str)]) -> sqlx::migrate::Migrator {
    assert_eq!(
        steps.len() as i64,
        MIGRATIONS,
        "every backend has MIGRATIONS migrations (Store::ready counts them)"
    );
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    use sqlx::SqlSafeStr;

    Migrator::with_migrations(
        steps
            .iter()
            .map(|(version, name, sql)| {
                Migration::new(
                    *version,
                    (*name).into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// How many migrations a backend has: `Store::ready` checks that all of them ran, and
/// `migrator` refuses a backend's list of another length (a new migration changes this too).
pub(crate) const MIGRATIONS: i64 = 8;

/// Where a migration failure goes.
pub(crate) fn migrate_err(e: sqlx::migrate::MigrateError) -> StoreError {
    StoreError::Migration(e.to_string())
}

/// sqlx errors as `StoreError`: a unique violation is a `Conflict`, whichever backend said so.
pub(crate) fn map_sqlx_error(backend: &str, e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(format!(
            "{backend}: expected a new row, found a duplicate: {}",
            db.message()
        )),
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::Conflict(format!(
                "{backend}: expected referenced rows to exist, found none: {}",
                db.message()
            ))
        }
        sqlx::Error::Configuration(_) => StoreError::Config(format!("{backend}: {e}")),
        _ => StoreError::Database(format!("{backend}: {e}")),
    }
}
