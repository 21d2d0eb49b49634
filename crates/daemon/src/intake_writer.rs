//! Group commit for intake: every job an authentic event or an API call asks for goes through one
//! writer task, which takes whatever has queued up while the previous batch was being written and
//! submits it in one transaction (`JobQueue::submit_jobs_committed`). The batch is then synced
//! (`JobQueue::sync_intake`) by a task of its own while the writer goes on with the next batch, and
//! each caller gets its own job's result once that sync has returned, so a 2xx still means the job
//! is on disk. Under load many answers share one commit and one sync, and the syncs of several
//! batches overlap (on this kind of disk several concurrent `fdatasync` calls complete in about
//! the time of one) instead of each batch waiting for the one before to reach the disk.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use revoke_store::{BlastGuard, NewJob, Store, StoreError, Submitted};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn};

/// At most this many jobs go into one transaction.
pub const MAX_BATCH: usize = 256;

/// At most this many committed batches wait for their sync at once; the writer waits for one of
/// them before it commits another.
pub const MAX_SYNCING: usize = 8;

/// The handle the handlers submit through; cheap to clone.
#[derive(Debug, Clone)]
pub struct IntakeWriter {
    tx: mpsc::Sender<Request>,
}

#[derive(Debug)]
struct Request {
    new: NewJob,
    actor: String,
    reply: oneshot::Sender<Result<Submitted, StoreError>>,
}

impl IntakeWriter {
    /// Starts the writer task on the current runtime; it ends when every handle is dropped.
    pub fn start(store: Arc<dyn Store>, guard: BlastGuard) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(store, guard, rx));
        Self { tx }
    }

    /// Submits one job and waits until the batch that carries it is committed and synced.
    pub async fn submit(&self, new: NewJob, actor: String) -> Result<Submitted, StoreError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Database("intake writer: the writer task has stopped".into());
        self.tx
            .send(Request { new, actor, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(store: Arc<dyn Store>, guard: BlastGuard, mut rx: mpsc::Receiver<Request>) {
    let syncing = Arc::new(Semaphore::new(MAX_SYNCING));
    let mut batch: Vec<Request> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        // Waiting for a sync slot lets more requests queue up: the next batch is larger.
        let Ok(slot) = syncing.clone().acquire_owned().await else {
            break;
        };
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        write(&store, guard, std::mem::take(&mut batch), slot).await;
    }
}

/// Commits `batch` and hands it to a task that syncs it and answers each request.
async fn write(
    store: &Arc<dyn Store>,
    guard: BlastGuard,
    batch: Vec<Request>,
    slot: OwnedSemaphorePermit,
) {
    let items: Vec<(NewJob, String)> = batch
        .iter()
        .map(|r| (r.new.clone(), r.actor.clone()))
        .collect();
    let now = Utc::now();
    let started = Instant::now();
    match store.submit_jobs_committed(&items, guard, now).await {
        Ok(mut results) => {
            if results.len() != batch.len() {
                // Committed, so never submitted again (a job without an event id would be
                // recorded twice); no request learns a result that is not its own.
                warn!(
                    jobs = batch.len(),
                    results = results.len(),
                    "intake batch answered with a result count that does not match"
                );
                results = (0..batch.len())
                    .map(|_| {
                        Err(StoreError::Database(
                            "intake: the batch was committed but its results do not match its jobs"
                                .into(),
                        ))
                    })
                    .collect();
            }
            let commit_us = started.elapsed().as_micros() as u64;
            let store = store.clone();
            tokio::spawn(async move {
                let synced = Instant::now();
                let outcome = store.sync_intake().await;
                drop(slot);
                // The bench reads jobs, store_us and sync_us from this line.
                debug!(
                    jobs = batch.len(),
                    store_us = commit_us,
                    sync_us = synced.elapsed().as_micros() as u64,
                    "intake batch committed"
                );
                match outcome {
                    Ok(()) => {
                        for (r, result) in batch.into_iter().zip(results) {
                            let _ = r.reply.send(result);
                        }
                    }
                    Err(e) => {
                        // Committed, but not known to be on disk: no 2xx. A sender that retries
                        // finds its first job.
                        warn!(jobs = batch.len(), error = %e, "intake batch committed but not synced");
                        for r in batch {
                            let _ = r.reply.send(Err(StoreError::Database(format!(
                                "intake: the job was committed but syncing it failed: {e}"
                            ))));
                        }
                    }
                }
            });
        }
        Err(e) => {
            drop(slot);
            // The batch wrote nothing: each job on its own, so one bad job fails only itself.
            warn!(jobs = batch.len(), error = %e, "intake batch failed; submitting each job on its own");
            for r in batch {
                let result = store.submit_job(&r.new, guard, &r.actor, Utc::now()).await;
                let _ = r.reply.send(result);
            }
        }
    }
}
