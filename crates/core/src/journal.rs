use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ConnectorError;

/// One fact an action recorded about itself while it ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub name: String,
    pub value: String,
    pub at: DateTime<Utc>,
}

/// Where an action writes down what it has done so far, durably, so that a later attempt of the
/// same action (after a crash, a timeout or a retry) can tell where the earlier one stopped.
///
/// The executor hands each `apply` the journal of that action, kept in the store. A connector
/// records a fact *before* it depends on it: the id of a key it has just created, before the key's
/// secret is written anywhere. Values are evidence: they are kept, audited and shown, so they
/// must never hold a secret.
#[async_trait]
pub trait Journal: Send + Sync + fmt::Debug {
    /// Records `name = value`; returns only once the entry is stored.
    async fn record(&self, name: &str, value: &str) -> Result<(), ConnectorError>;

    /// Every entry of this action, oldest first, from this attempt and all earlier ones.
    async fn entries(&self) -> Result<Vec<JournalEntry>, ConnectorError>;

    /// This attempt's number, from 1: above 1, an earlier attempt may have been sent and its
    /// answer lost, so a connector that writes blind on a first attempt reads first.
    fn attempt(&self) -> u32 {
        1
    }

    /// The latest value recorded under `name`.
    async fn latest(&self, name: &str) -> Result<Option<String>, ConnectorError> {
        Ok(self
            .entries()
            .await?
            .into_iter()
            .rev()
            .find(|e| e.name == name)
            .map(|e| e.value))
    }
}

/// A journal held in memory: for tests and for calls made outside the executor. It is not
/// durable, so a crash loses it.
#[derive(Debug, Default)]
pub struct MemoryJournal {
    entries: Mutex<Vec<JournalEntry>>,
}

impl MemoryJournal {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Journal for MemoryJournal {
    async fn record(&self, name: &str, value: &str) -> Result<(), ConnectorError> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.push(JournalEntry {
            name: name.to_string(),
            value: value.to_string(),
            at: Utc::now(),
        });
        Ok(())
    }

    async fn entries(&self) -> Result<Vec<JournalEntry>, ConnectorError> {
        Ok(self
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn latest_is_the_last_recorded_value() {
        let j = MemoryJournal::new();
        assert_eq!(j.latest("new_key").await.unwrap_or_default(), None);
        j.record("new_key", "AKIA1").await.expect("record");
        j.record("written", "AKIA1").await.expect("record");
        j.record("new_key", "AKIA2").await.expect("record");
        assert_eq!(
            j.latest("new_key").await.ok().flatten().as_deref(),
            Some("AKIA2")
        );
        assert_eq!(j.entries().await.map(|e| e.len()).unwrap_or(0), 3);
    }
}
