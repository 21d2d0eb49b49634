//! One `DELETE /api/2/roles/:id/users` for every leaver of a role whose removal comes within a
//! short window, instead of one call each.
//!
//! The first `remove_role` of a role opens a batch and a flush task that sleeps `window`; every
//! removal from the same role that arrives meanwhile joins it. The flush sends the user ids (at
//! most [`MAX_IDS`] a call) and hands each waiting action the outcome of the call that carried
//! its user. The flush runs as its own task, so an action that gives up waiting (a timeout)
//! does not strand the others.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use revoke_core::ConnectorError;
use serde_json::json;
use tokio::sync::oneshot;

use crate::classify;
use crate::client::Client;

/// User ids per call (OneLogin documents no limit; this keeps bodies small).
pub const MAX_IDS: usize = 100;

type Waiter = (u64, oneshot::Sender<Result<(), ConnectorError>>);
type Pending = Arc<Mutex<HashMap<u64, Vec<Waiter>>>>;

/// The per-instance batcher of role removals, keyed by role id.
pub struct Batcher {
    client: Arc<Client>,
    window: Duration,
    pending: Pending,
}

impl fmt::Debug for Batcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batcher")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl Batcher {
    pub fn new(client: Arc<Client>, window: Duration) -> Self {
        Self {
            client,
            window,
            pending: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Removes `user` from `role`, in one call with whoever else leaves the role meanwhile.
    pub async fn remove(&self, role: u64, user: u64) -> Result<(), ConnectorError> {
        let (tx, rx) = oneshot::channel();
        let first = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let waiters = p.entry(role).or_default();
            waiters.push((user, tx));
            waiters.len() == 1
        };
        if first {
            let (client, pending, window) =
                (self.client.clone(), self.pending.clone(), self.window);
            tokio::spawn(flush(client, pending, role, window));
        }
        rx.await.unwrap_or_else(|_| {
            Err(ConnectorError::retryable(
                "batch_lost",
                format!("the batched removal from role {role} ended without an answer"),
            ))
        })
    }
}

async fn flush(client: Arc<Client>, pending: Pending, role: u64, window: Duration) {
    tokio::time::sleep(window).await;
    let mut batch = pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&role)
        .unwrap_or_default();
    while !batch.is_empty() {
        let rest = batch.split_off(batch.len().min(MAX_IDS));
        let chunk = std::mem::replace(&mut batch, rest);
        let mut ids: Vec<u64> = chunk.iter().map(|(u, _)| *u).collect();
        ids.sort_unstable();
        ids.dedup();
        let result = send(&client, role, &ids).await;
        for (_, tx) in chunk {
            let _ = tx.send(result.clone());
        }
    }
}

async fn send(client: &Client, role: u64, ids: &[u64]) -> Result<(), ConnectorError> {
    let path = format!("/api/2/roles/{role}/users");
    let r = client
        .send(Method::DELETE, &path, Some(&json!(ids)))
        .await?;
    match r.status {
        s if (200..300).contains(&s) => Ok(()),
        404 => Err(ConnectorError::permanent(
            "role_not_found",
            format!(
                "DELETE {path}: 404 {} (the role is gone)",
                classify::message(&r.body)
            ),
        )),
        _ => Err(classify::status(&Method::DELETE, &path, &r)),
    }
}
