//! Group commit for intake: every job an authentic event or an API call asks for goes through one
//! writer task, which takes whatever has queued up while the previous batch was being written and
//! submits it in one transaction with one sync (`JobQueue::submit_jobs`). Each caller gets its own
//! job's result once the batch is durable, so a 2xx still means the job is on disk; under load,
//! many answers share one commit instead of queueing for one each.

use std::sync::Arc;

use chrono::Utc;
use revoke_store::{BlastGuard, NewJob, Store, StoreError, Submitted};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

/// At most this many jobs go into one transaction.
pub const MAX_BATCH: usize = 256;

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
    let mut batch: Vec<Request> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        write(store.as_ref(), guard, &mut batch).await;
    }
}

/// Writes `batch` (emptying it) and answers each request.
async fn write(store: &dyn Store, guard: BlastGuard, batch: &mut Vec<Request>) {
    let items: Vec<(NewJob, String)> = batch
        .iter()
        .map(|r| (r.new.clone(), r.actor.clone()))
        .collect();
    let now = Utc::now();
    match store.submit_jobs(&items, guard, now).await {
        Ok(results) if results.len() == batch.len() => {
            debug!(jobs = batch.len(), "intake batch committed");
            for (r, result) in batch.drain(..).zip(results) {
                let _ = r.reply.send(result);
            }
        }
        outcome => {
            // The batch wrote nothing: each job on its own, so one bad job fails only itself.
            if let Err(e) = &outcome {
                warn!(jobs = batch.len(), error = %e, "intake batch failed; submitting each job on its own");
            }
            for r in batch.drain(..) {
                let result = store.submit_job(&r.new, guard, &r.actor, Utc::now()).await;
                let _ = r.reply.send(result);
            }
        }
    }
}
