//! Pin look-ups of actions running at once, sent together: one search per user base for every
//! action that asked while the previous search was on the wire.
//!
//! Freshness is what the pin rule needs: a request is answered only by a search sent after it
//! was made, so an action sees the directory as it was after it started, exactly as with a search
//! of its own. Only the number of searches changes (with 8 actions in flight, one search serves
//! up to 8). The search runs in its own task, so an action cancelled by the executor's timeout
//! does not strand the others waiting on the same search.

use std::sync::{Arc, Mutex, PoisonError};

use ldap3::SearchEntry;
use revoke_core::ConnectorError;
use tokio::sync::oneshot;

use crate::client::{attr, Client};
use crate::config::LdapConfig;
use crate::discover::search_users;
use crate::escape::any_of;

/// At most this many requests share one search (keeps the filter well under slapd's request
/// size limit).
const MAX_BATCH: usize = 200;

type Answer = Result<Vec<SearchEntry>, ConnectorError>;

struct Request {
    id: String,
    names: Vec<String>,
    tx: oneshot::Sender<Answer>,
}

#[derive(Default)]
struct State {
    queue: Vec<Request>,
    running: bool,
}

/// The look-ups of one connector instance.
pub struct Lookups {
    client: Arc<Client>,
    cfg: Arc<LdapConfig>,
    state: Mutex<State>,
}

impl std::fmt::Debug for Lookups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lookups").finish_non_exhaustive()
    }
}

/// Clears `running` if the draining task ends abnormally (a panic), so that the next request
/// starts a new one instead of waiting for ever. A normal end clears it itself, under the same
/// lock in which it found the queue empty (else a request queued in between would be dropped).
struct Running<'a>(&'a Mutex<State>, bool);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if self.1 {
            return;
        }
        let mut s = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        s.running = false;
        // Whoever still waits gets an answer rather than a hang.
        for r in s.queue.drain(..) {
            let _ = r.tx.send(Err(ended()));
        }
    }
}

fn ended() -> ConnectorError {
    ConnectorError::retryable(
        "lookup_ended",
        "the search that was to answer this look-up ended without an answer",
    )
}

impl Lookups {
    pub fn new(client: Arc<Client>, cfg: Arc<LdapConfig>) -> Self {
        Self {
            client,
            cfg,
            state: Mutex::new(State::default()),
        }
    }

    /// Every entry under the user bases that carries the id `id` (as `id_attribute`) or answers
    /// to one of `names` (as `user_attribute`), checked here on the returned entries.
    pub async fn find(self: &Arc<Self>, id: &str, names: &[String]) -> Answer {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            s.queue.push(Request {
                id: id.to_string(),
                names: names.to_vec(),
                tx,
            });
            !std::mem::replace(&mut s.running, true)
        };
        if start {
            let this = self.clone();
            tokio::spawn(async move { this.drain().await });
        }
        rx.await.unwrap_or_else(|_| Err(ended()))
    }

    async fn drain(&self) {
        let mut running = Running(&self.state, false);
        loop {
            let batch: Vec<Request> = {
                let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                if s.queue.is_empty() {
                    s.running = false;
                    running.1 = true;
                    return;
                }
                let n = s.queue.len().min(MAX_BATCH);
                s.queue.drain(..n).collect()
            };
            let cfg = &self.cfg;
            let filter = any_of(batch.iter().flat_map(|r| {
                std::iter::once((cfg.id_attribute.as_str(), r.id.as_str())).chain(
                    r.names
                        .iter()
                        .map(|n| (cfg.user_attribute.as_str(), n.as_str())),
                )
            }));
            let found = search_users(&self.client, cfg, &filter).await;
            for r in batch {
                let answer = match &found {
                    Ok(entries) => Ok(entries
                        .iter()
                        .filter(|e| {
                            attr(e, &cfg.id_attribute)
                                .iter()
                                .any(|v| v.trim().eq_ignore_ascii_case(r.id.trim()))
                                || attr(e, &cfg.user_attribute)
                                    .iter()
                                    .any(|v| r.names.contains(v))
                        })
                        .cloned()
                        .collect()),
                    Err(e) => Err(e.clone()),
                };
                let _ = r.tx.send(answer);
            }
        }
    }
}
