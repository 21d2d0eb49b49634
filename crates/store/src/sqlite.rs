//! The embedded backend: one SQLite file in WAL mode. Inside one process every write goes through
//! one connection (a pool of one): writers queue for it in order, with no lock contention and
//! none of the busy handler's sleeps, while reads use a pool of their own (WAL lets them run
//! beside the writer). Every write transaction still starts with `BEGIN IMMEDIATE`, and
//! `busy_timeout` makes a writer of another process (revokectl beside the daemon) wait instead of
//! failing.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::common::{impl_store, lease_candidates_sql, map_sqlx_error, migrate_err, migrator};
use crate::StoreError;

/// The SQLite store; cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Reads.
    pool: SqlitePool,
    /// Writes: one connection, so this process never contends with itself for the write lock.
    writer: SqlitePool,
    /// The write-ahead log of a file database (`None` in memory), synced by `sync_commits`.
    wal: Option<std::path::PathBuf>,
}

impl SqliteStore {
    /// Opens (creating the file and its directory if missing) and migrates `sqlite://PATH`;
    /// `sqlite::memory:` gives a private in-memory database, for tests.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| {
                StoreError::Config(format!(
                    "sqlite url: expected sqlite://PATH, found {url:?}: {e}"
                ))
            })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut pool = SqlitePoolOptions::new();
        let mut writer = None;
        let mut wal = None;
        if in_memory {
            // One connection that never closes: the database lives exactly as long as the pool.
            pool = pool
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        } else {
            let path = options.get_filename();
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Config(format!(
                        "sqlite: expected to create directory {}, found {e}",
                        dir.display()
                    ))
                })?;
            }
            let mut name = path.as_os_str().to_owned();
            name.push("-wal");
            wal = Some(std::path::PathBuf::from(name));
            pool = pool.max_connections(8);
            writer = Some(
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .acquire_timeout(Duration::from_secs(60)),
            );
        }
        let pool = pool.connect_with(options.clone()).await.map_err(map_err)?;
        migrator(&[
            (
                1,
                "init",
                include_str!("../migrations/sqlite/0001_init.sql"),
            ),
            (
                2,
                "job_queue",
                include_str!("../migrations/sqlite/0002_job_queue.sql"),
            ),
            (
                3,
                "action_journal",
                include_str!("../migrations/sqlite/0003_action_journal.sql"),
            ),
            (
                4,
                "phase_order",
                include_str!("../migrations/sqlite/0004_phase_order.sql"),
            ),
            (
                5,
                "job_listing",
                include_str!("../migrations/sqlite/0005_job_listing.sql"),
            ),
            (6, "job_batches", include_str!("../migrations/sqlite/0006_job_batches.sql")),
        ])
        .run(&pool)
        .await
        .map_err(migrate_err)?;
        let writer = match writer {
            Some(w) => w.connect_with(options).await.map_err(map_err)?,
            // In memory: the database is the one connection, for reads and writes alike.
            None => pool.clone(),
        };
        tracing::debug!(url, "sqlite store open");
        Ok(Self { pool, writer, wal })
    }

    /// Every write takes the database write lock up front (see the module docs).
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)
    }

    /// The pool single statements that write go through.
    fn write_pool(&self) -> &SqlitePool {
        &self.writer
    }

    /// Makes every transaction committed so far durable: syncs the write-ahead log. Commits run with
    /// `synchronous = NORMAL`, which writes the log at each commit but syncs it only before a
    /// checkpoint (and the database after one), so one sync here covers every commit before it,
    /// however many (group commit): the intake answers only after it. Commits a checkpoint
    /// already moved into the database were synced by that checkpoint.
    async fn sync_commits(&self) -> Result<(), StoreError> {
        let Some(wal) = self.wal.clone() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || match std::fs::File::open(&wal) {
            Ok(f) => f.sync_data(),
            // No log: nothing was committed since the last connection closed (and checkpointed).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        })
        .await
        .map_err(|e| StoreError::Database(format!("sqlite: syncing the write-ahead log: {e}")))?
        .map_err(|e| StoreError::Database(format!("sqlite: syncing the write-ahead log: {e}")))
    }

    /// `BEGIN IMMEDIATE` already serializes audit appends.
    async fn lock_audit(&self, _tx: &mut Transaction<'static, Sqlite>) -> Result<(), StoreError> {
        Ok(())
    }

    /// `BEGIN IMMEDIATE` already serializes intake (deduplication and the blast-radius count).
    async fn lock_intake(&self, _tx: &mut Transaction<'static, Sqlite>) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Maps sqlite errors to `StoreError`, in one place (the mapping itself is shared).
fn map_err(e: sqlx::Error) -> StoreError {
    map_sqlx_error("sqlite", e)
}

// SQLite has no row locks: `BEGIN IMMEDIATE` makes the whole lease transaction exclusive.
impl_store!(
    SqliteStore,
    db = Sqlite,
    lease_plan = lease_candidates_sql!(plan, ""),
    lease_all = lease_candidates_sql!(all, ""),
    skip_locked = ""
);
