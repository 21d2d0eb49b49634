//! Group commit for the executor's ledger writes.
//!
//! Every action records its attempt before its call is sent and its result after, each a write
//! transaction. Actions running at once would queue for the store's writer one transaction each;
//! instead, the first to arrive writes for everyone waiting with it: requests that come while a
//! batch is being written wait for it to end and go together in the next one. Each caller still
//! gets its own answer only once its batch is committed (an attempt is recorded before its call
//! is sent), and a caller alone pays no wait.

use std::future::Future;
use std::sync::Mutex;

use tokio::sync::oneshot;

/// Requests of type `Req` written together, each answered with a `Resp`.
pub(crate) struct Group<Req, Resp> {
    queue: Mutex<Vec<(Req, oneshot::Sender<Resp>)>>,
    /// Held by the caller writing a batch.
    turn: tokio::sync::Mutex<()>,
}

impl<Req, Resp> Default for Group<Req, Resp> {
    fn default() -> Self {
        Self {
            queue: Mutex::new(Vec::new()),
            turn: tokio::sync::Mutex::new(()),
        }
    }
}

impl<Req, Resp> std::fmt::Debug for Group<Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("waiting", &self.lock().len())
            .finish()
    }
}

impl<Req, Resp> Group<Req, Resp> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Req, oneshot::Sender<Resp>)>> {
        // A panic while holding this lock left a plain list behind: keep using it.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `req` and returns its answer once the batch it went in is written: the caller that
    /// gets the turn first writes with `write`, which must answer every request of the batch, in
    /// order. `None` when the caller writing its batch was cancelled before answering (whether
    /// that batch was committed is then unknown).
    pub(crate) async fn submit<F, Fut>(&self, req: Req, write: F) -> Option<Resp>
    where
        F: FnOnce(Vec<Req>) -> Fut,
        Fut: Future<Output = Vec<Resp>>,
    {
        let (tx, mut rx) = oneshot::channel();
        self.lock().push((req, tx));
        let _turn = self.turn.lock().await;
        match rx.try_recv() {
            Ok(resp) => return Some(resp),
            Err(oneshot::error::TryRecvError::Closed) => return None,
            Err(oneshot::error::TryRecvError::Empty) => {}
        }
        // Not answered, and only the holder of the turn takes from the queue: ours is in it.
        let (reqs, senders): (Vec<Req>, Vec<oneshot::Sender<Resp>>) =
            std::mem::take(&mut *self.lock()).into_iter().unzip();
        let answers = write(reqs).await;
        debug_assert_eq!(answers.len(), senders.len(), "one answer per request");
        for (tx, resp) in senders.into_iter().zip(answers) {
            let _ = tx.send(resp);
        }
        rx.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn a_caller_alone_writes_its_own_request_at_once() {
        let g: Group<u32, u32> = Group::default();
        let got = g
            .submit(
                7,
                |reqs| async move { reqs.iter().map(|r| r * 2).collect() },
            )
            .await;
        assert_eq!(got, Some(14));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn callers_that_wait_together_are_written_together_and_each_gets_its_own_answer() {
        let g: Arc<Group<u32, u32>> = Arc::default();
        let writes = Arc::new(AtomicUsize::new(0));
        // Hold the turn so that every request queues behind it, then let them go.
        let held = g.turn.lock().await;
        let mut tasks = Vec::new();
        for i in 0..50u32 {
            let (g, writes) = (g.clone(), writes.clone());
            tasks.push(tokio::spawn(async move {
                g.submit(i, |reqs| async move {
                    writes.fetch_add(1, Ordering::SeqCst);
                    reqs.iter().map(|r| r + 1000).collect()
                })
                .await
            }));
        }
        // Every request is queued before the turn is released.
        while g.lock().len() < 50 {
            tokio::task::yield_now().await;
        }
        drop(held);
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.expect("task ends"), Some(i as u32 + 1000));
        }
        assert_eq!(
            writes.load(Ordering::SeqCst),
            1,
            "one write for the 50 that waited together"
        );
    }

    // One thread: a task that has queued its request has also queued for the turn (both happen
    // in one poll), so the first to queue is the one that writes.
    #[tokio::test(flavor = "current_thread")]
    async fn a_writer_cancelled_mid_batch_answers_none_to_the_others_of_its_batch() {
        let g: Arc<Group<u32, u32>> = Arc::default();
        let held = g.turn.lock().await;
        let (g1, g2) = (g.clone(), g.clone());
        let (started_tx, started_rx) = oneshot::channel::<()>();
        let writer = tokio::spawn(async move {
            g1.submit(1, |_reqs| async move {
                let _ = started_tx.send(());
                std::future::pending::<Vec<u32>>().await
            })
            .await
        });
        while g.lock().is_empty() {
            tokio::task::yield_now().await;
        }
        let other = tokio::spawn(async move { g2.submit(2, |reqs| async move { reqs }).await });
        while g.lock().len() < 2 {
            tokio::task::yield_now().await;
        }
        drop(held);
        started_rx.await.expect("the writer started");
        writer.abort();
        assert_eq!(other.await.expect("task ends"), None);
    }
}
