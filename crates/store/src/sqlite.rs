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
    /// Stops the background checkpoints once the last handle of this store is dropped.
    _checkpoints: Option<std::sync::Arc<Checkpoints>>,
}

/// Moves the write-ahead log into the database beside the writer, not inside its commits.
///
/// SQLite's own auto-checkpoint runs in the commit that takes the log past 1,000 pages and syncs
/// the log and the database there, on the writer's path (intake answers and attempt records wait
/// for it). Here the writer's threshold is raised to 10,000 pages, a fallback only, and a task
/// runs a `PASSIVE` checkpoint (which never blocks the writer) on a read connection whenever the
/// log has passed 1,000 pages, checking every 250 ms.
#[derive(Debug)]
struct Checkpoints {
    stop: tokio::sync::watch::Sender<bool>,
}

impl Drop for Checkpoints {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl Checkpoints {
    /// The log size past which a checkpoint runs (1,000 pages of 4 KiB, SQLite's own default).
    const LOG_BYTES: u64 = 1000 * 4096;
    const EVERY: Duration = Duration::from_millis(250);

    fn start(pool: SqlitePool, wal: std::path::PathBuf) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            // The log's modification time at the last checkpoint: a log written since is
            // checkpointed again (its file keeps its largest size once it has grown).
            let mut checkpointed = None;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Self::EVERY) => {}
                    _ = stopped.changed() => return,
                }
                let Ok(meta) = std::fs::metadata(&wal) else {
                    continue;
                };
                let written = meta.modified().ok();
                if meta.len() <= Self::LOG_BYTES || written == checkpointed {
                    continue;
                }
                checkpointed = written;
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&pool)
                    .await
                {
                    tracing::warn!(error = %e, "sqlite: background checkpoint failed; the writer's own checkpoint is the fallback");
                }
            }
        });
        Self { stop }
    }
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
            .busy_timeout(Duration::from_secs(10))
            // Multi-row statements inside a transaction keep their statement journal in memory,
            // not in a temporary file.
            .pragma("temp_store", "memory");
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
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // A fallback: background checkpoints keep the log short (`Checkpoints`).
                            sqlx::query("PRAGMA wal_autocheckpoint = 10000")
                                .execute(conn)
                                .await
                                .map(|_| ())
                        })
                    })
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
            (
                6,
                "job_batches",
                include_str!("../migrations/sqlite/0006_job_batches.sql"),
            ),
            (
                7,
                "lease_order",
                include_str!("../migrations/sqlite/0007_lease_order.sql"),
            ),
            (
                8,
                "console_sessions",
                include_str!("../migrations/sqlite/0008_console_sessions.sql"),
            ),
        ])
        .run(&pool)
        .await
        .map_err(migrate_err)?;
        let writer = match writer {
            Some(w) => w.connect_with(options).await.map_err(map_err)?,
            // In memory: the database is the one connection, for reads and writes alike.
            None => pool.clone(),
        };
        let checkpoints = wal
            .clone()
            .map(|wal| std::sync::Arc::new(Checkpoints::start(pool.clone(), wal)));
        tracing::debug!(url, "sqlite store open");
        Ok(Self {
            pool,
            writer,
            wal,
            _checkpoints: checkpoints,
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::{begin_attempts_sql, grace_sql, lease_rows_sql};
    use sqlx::Row;

    /// The query plan of `sql` with `binds` parameters, one step a line.
    async fn plan_of(store: &SqliteStore, sql: &str, binds: usize) -> String {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(explain));
        for i in 0..binds {
            q = q.bind(i.to_string());
        }
        q.fetch_all(&store.pool)
            .await
            .expect("explains")
            .iter()
            .map(|r| r.get::<String, _>("detail"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The executor's per-batch writes find their rows by id, whatever the batch size: a plan
    /// through the state index scans every pending action of the store for each batch.
    #[tokio::test]
    async fn batch_writes_of_actions_find_their_rows_by_id() {
        let store = SqliteStore::open("sqlite::memory:").await.expect("opens");
        for n in [1, 2, 40, 960] {
            for (what, sql, binds) in [
                ("lease", lease_rows_sql(n), 2 + n),
                ("begin", begin_attempts_sql(n), 3 + n),
                ("grace", grace_sql(n), 1 + n),
            ] {
                let plan = plan_of(&store, &sql, binds).await;
                assert!(
                    plan.lines()
                        .next()
                        .is_some_and(|l| l.contains("sqlite_autoindex_actions_1 (id=?)")),
                    "{what} of {n}: expected a search of actions by id, found:\n{plan}"
                );
                assert!(
                    !plan.contains("actions_due") && !plan.contains("SCAN"),
                    "{what} of {n}: expected no state index and no scan, found:\n{plan}"
                );
            }
        }
    }

    /// A lease reads the due actions in the lease order straight off an index: a sort of the
    /// candidates first reads every pending action of the first phase and step, one per plan.
    #[tokio::test]
    async fn leases_read_due_actions_in_order_without_sorting() {
        let store = SqliteStore::open("sqlite::memory:").await.expect("opens");
        for (what, sql, except) in [
            (
                "across plans",
                crate::common::lease_candidates_sql!(all, ""),
                0,
            ),
            (
                "in one plan",
                crate::common::lease_candidates_sql!(plan, ""),
                0,
            ),
            (
                "across plans, some connectors left out",
                crate::common::lease_candidates_sql!(all, ""),
                3,
            ),
            (
                "in one plan, some connectors left out",
                crate::common::lease_candidates_sql!(plan, ""),
                3,
            ),
        ] {
            let sql = crate::common::lease_candidates(sql, except);
            let plan = plan_of(&store, &sql, 3 + except).await;
            assert!(
                !plan.contains("TEMP B-TREE") && !plan.contains("SCAN a"),
                "{what}: expected the due actions in order off an index, found:\n{plan}"
            );
        }
    }
}
