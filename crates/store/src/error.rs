/// Everything a store can fail with; backend errors are mapped here, in one place per backend.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("store configuration: {0}")]
    Config(String),
    #[error("database error: {0}")]
    Database(String),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// An event id (or API idempotency key) seen before arrives with a different body: the first
    /// delivery's job stands and the new content is refused, never dropped silently.
    #[error("conflict: {0}")]
    BodyConflict(Box<crate::BodyConflict>),
    #[error("lease on action {action} is not held by {owner}")]
    LeaseLost { action: String, owner: String },
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}
