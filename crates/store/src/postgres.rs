//! The shared backend: several daemon replicas work one queue. Leasing locks candidate rows
//! with `FOR UPDATE SKIP LOCKED`, so concurrent leasers split the work instead of waiting, and
//! audit appends take a transaction-scoped advisory lock so the hash chain stays linear.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres, Transaction};

use crate::common::{impl_store, lease_candidates_sql, map_sqlx_error, migrate_err, migrator};
use crate::StoreError;

/// The advisory lock key serializing audit appends ("revoked" + "audit", as an arbitrary constant).
const AUDIT_LOCK_KEY: i64 = 0x7265_766f_6b65_6401;

/// The advisory lock key serializing intake: deduplication and the blast-radius count. Always
/// taken before any row lock and before the audit lock, so the lock order is the same everywhere.
const INTAKE_LOCK_KEY: i64 = 0x7265_766f_6b65_6402;

/// The Postgres store; cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `postgres://...` and migrates the database.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await
            .map_err(map_err)?;
        migrator(&[
            (
                1,
                "init",
                include_str!("../migrations/postgres/0001_init.sql"),
            ),
            (
                2,
                "job_queue",
                include_str!("../migrations/postgres/0002_job_queue.sql"),
            ),
            (
                3,
                "action_journal",
                include_str!("../migrations/postgres/0003_action_journal.sql"),
            ),
            (
                4,
                "phase_order",
                include_str!("../migrations/postgres/0004_phase_order.sql"),
            ),
            (
                5,
                "job_listing",
                include_str!("../migrations/postgres/0005_job_listing.sql"),
            ),
            (
                6,
                "job_batches",
                include_str!("../migrations/postgres/0006_job_batches.sql"),
            ),
            (
                7,
                "lease_order",
                include_str!("../migrations/postgres/0007_lease_order.sql"),
            ),
            (
                8,
                "console_sessions",
                include_str!("../migrations/postgres/0008_console_sessions.sql"),
            ),
        ])
        .run(&pool)
        .await
        .map_err(migrate_err)?;
        tracing::debug!("postgres store open");
        Ok(Self { pool })
    }

    /// Row locks and conditional updates make a plain transaction enough.
    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.pool.begin().await.map_err(map_err)
    }

    /// A commit is durable when it returns (`synchronous_commit`, on by default): nothing to do.
    async fn sync_commits(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// The pool single statements that write go through (the same as reads: rows lock).
    fn write_pool(&self) -> &sqlx::PgPool {
        &self.pool
    }

    /// Held until the transaction ends, so appends (read last hash, insert next) never interleave.
    async fn lock_audit(&self, tx: &mut Transaction<'static, Postgres>) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(AUDIT_LOCK_KEY)
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
        Ok(())
    }
}

impl PostgresStore {
    /// Held until the transaction ends: one intake decision at a time across replicas.
    async fn lock_intake(&self, tx: &mut Transaction<'static, Postgres>) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(INTAKE_LOCK_KEY)
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
        Ok(())
    }
}

/// Maps postgres errors to `StoreError`, in one place (the mapping itself is shared).
fn map_err(e: sqlx::Error) -> StoreError {
    map_sqlx_error("postgres", e)
}

impl_store!(
    PostgresStore,
    db = Postgres,
    lease_plan = lease_candidates_sql!(plan, " FOR UPDATE OF a SKIP LOCKED"),
    lease_all = lease_candidates_sql!(all, " FOR UPDATE OF a SKIP LOCKED"),
    skip_locked = " FOR UPDATE SKIP LOCKED"
);
