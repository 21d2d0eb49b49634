//! The journal the executor hands each `apply`: the action's entries in the store, so that the
//! next attempt, in this process or another replica, finds what an earlier one recorded.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use revoke_core::{ActionId, ConnectorError, Journal, JournalEntry};
use revoke_store::{Store, StoreError};

/// One attempt's handle on its action's journal: it reads the entries of every attempt, and
/// records as this attempt's owner, so an executor that lost the action records nothing more.
#[derive(Debug)]
pub(crate) struct StoreJournal {
    store: Arc<dyn Store>,
    action: ActionId,
    owner: String,
    attempt: u32,
}

impl StoreJournal {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        action: ActionId,
        owner: impl Into<String>,
        attempt: u32,
    ) -> Self {
        Self {
            store,
            action,
            owner: owner.into(),
            attempt,
        }
    }
}

#[async_trait]
impl Journal for StoreJournal {
    fn attempt(&self) -> u32 {
        self.attempt
    }

    async fn record(&self, name: &str, value: &str) -> Result<(), ConnectorError> {
        self.store
            .record_journal(
                &self.action,
                &self.owner,
                self.attempt,
                name,
                value,
                Utc::now(),
            )
            .await
            .map_err(|e| match e {
                // Retryable, yet never retried by this attempt: the executor's `finish_attempt`
                // is refused by the same ownership rule, so it records nothing for this attempt
                // (it audits `action.lease_lost`) and the action's owner resumes it from the
                // journal. Were the rule ever to let the result through, a retry is the safe end.
                StoreError::LeaseLost { .. } => ConnectorError::retryable(
                    "lease_lost",
                    format!(
                        "journal entry {name:?} not recorded: executor {} no longer owns attempt {} of the action",
                        self.owner, self.attempt
                    ),
                ),
                e => ConnectorError::retryable(
                    "journal_unavailable",
                    format!("journal entry {name:?} not recorded: {e}"),
                ),
            })
    }

    async fn entries(&self) -> Result<Vec<JournalEntry>, ConnectorError> {
        self.store.journal(&self.action).await.map_err(|e| {
            ConnectorError::retryable(
                "journal_unavailable",
                format!("journal of the action not read: {e}"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use revoke_core::ErrorClass;
    use revoke_store::SqliteStore;

    #[tokio::test]
    async fn store_errors_become_retryable_connector_errors() {
        let sqlite = Arc::new(
            SqliteStore::open("sqlite::memory:")
                .await
                .expect("store opens"),
        );
        let j = StoreJournal::new(sqlite.clone(), ActionId("nope".into()), "exec", 1);
        let err = j
            .record("step", "created")
            .await
            .expect_err("no running attempt");
        assert_eq!(
            (err.code.as_str(), err.class.clone()),
            ("lease_lost", ErrorClass::Retryable { retry_after: None })
        );
        assert_eq!(j.latest("step").await.ok().flatten(), None);

        sqlite
            .execute_raw("DROP TABLE action_journal")
            .await
            .expect("drops");
        let err = j.entries().await.expect_err("no journal table");
        assert_eq!(
            (err.code.as_str(), err.is_retryable()),
            ("journal_unavailable", true)
        );
        assert!(err.message.starts_with("journal of the action not read: "));
    }
}
