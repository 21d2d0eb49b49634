//! Console sessions: an API token exchanged for a browser session at sign-in. They live in the
//! store so every replica behind a load balancer knows them (and a restart keeps them); only the
//! SHA-256 of the cookie value is kept. Whether the token still exists, and with which scope, is
//! the daemon's to re-check on every request: the store keeps what sign-in saw.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::StoreError;

/// A session to record at sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConsoleSession {
    /// Hex SHA-256 of the cookie value (never the value itself).
    pub id_sha256: String,
    /// The API token's configured name.
    pub token_name: String,
    /// The token's scope at sign-in (`read` or `operator`).
    pub scope: String,
    /// The session's CSRF token (sent in every form).
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    /// The session ends then, whatever happens.
    pub expires_at: DateTime<Utc>,
    /// ... or then, unless a request comes first (see [`ConsoleSessions::console_session`]).
    pub idle_until: DateTime<Utc>,
}

/// A live session, as [`ConsoleSessions::console_session`] found it.
pub type ConsoleSession = NewConsoleSession;

#[async_trait]
pub trait ConsoleSessions {
    /// Records a new session; with `max_live` sessions alive already (after dropping expired
    /// ones) it records nothing and answers `false`.
    async fn create_console_session(
        &self,
        session: &NewConsoleSession,
        max_live: u64,
    ) -> Result<bool, StoreError>;

    /// The live session with this id hash at `now`, its idle time moved to `idle_until` (capped
    /// at its expiry); `None` when unknown or expired (an expired one is deleted).
    async fn console_session(
        &self,
        id_sha256: &str,
        now: DateTime<Utc>,
        idle_until: DateTime<Utc>,
    ) -> Result<Option<ConsoleSession>, StoreError>;

    /// Ends a session (sign-out); unknown ids are no error.
    async fn end_console_session(&self, id_sha256: &str) -> Result<(), StoreError>;
}

/// The `ConsoleSessions` implementation, expanded inside `impl_store!`; the same SQL on both
/// backends.
macro_rules! console_session_methods {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::ConsoleSessions for $store {
            async fn create_console_session(
                &self,
                s: &$crate::NewConsoleSession,
                max_live: u64,
            ) -> Result<bool, $crate::StoreError> {
                use $crate::common::micros;
                let mut tx = self.begin_write().await?;
                sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1 OR idle_until <= $1")
                    .bind(micros(s.created_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let live: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM console_sessions")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if u64::try_from(live).unwrap_or(u64::MAX) >= max_live {
                    tx.commit().await.map_err(map_err)?;
                    return Ok(false);
                }
                sqlx::query(
                    "INSERT INTO console_sessions (id_sha256, token_name, scope, csrf, created_at, expires_at, idle_until) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&s.id_sha256)
                .bind(&s.token_name)
                .bind(&s.scope)
                .bind(&s.csrf)
                .bind(micros(s.created_at))
                .bind(micros(s.expires_at))
                .bind(micros(s.idle_until))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(true)
            }

            async fn console_session(
                &self,
                id: &str,
                now: ::chrono::DateTime<::chrono::Utc>,
                idle_until: ::chrono::DateTime<::chrono::Utc>,
            ) -> Result<Option<$crate::ConsoleSession>, $crate::StoreError> {
                use sqlx::Row as _;
                use $crate::common::{decode_string, micros};
                let row = sqlx::query(
                    "SELECT token_name, scope, csrf, created_at, expires_at, idle_until FROM console_sessions WHERE id_sha256 = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let at = |col: &str| -> Result<::chrono::DateTime<::chrono::Utc>, $crate::StoreError> {
                    let v: i64 = row.try_get(col).map_err(map_err)?;
                    ::chrono::DateTime::from_timestamp_micros(v).ok_or_else(|| {
                        $crate::StoreError::Corrupt(format!("console_sessions.{col}: {v} is no time"))
                    })
                };
                let (expires_at, idle) = (at("expires_at")?, at("idle_until")?);
                if expires_at <= now || idle <= now {
                    sqlx::query("DELETE FROM console_sessions WHERE id_sha256 = $1")
                        .bind(id)
                        .execute(self.write_pool())
                        .await
                        .map_err(map_err)?;
                    return Ok(None);
                }
                let idle_until = idle_until.min(expires_at);
                sqlx::query("UPDATE console_sessions SET idle_until = $1 WHERE id_sha256 = $2 AND idle_until < $1")
                    .bind(micros(idle_until))
                    .bind(id)
                    .execute(self.write_pool())
                    .await
                    .map_err(map_err)?;
                Ok(Some($crate::ConsoleSession {
                    id_sha256: id.to_string(),
                    token_name: decode_string(&row, "token_name")?,
                    scope: decode_string(&row, "scope")?,
                    csrf: decode_string(&row, "csrf")?,
                    created_at: at("created_at")?,
                    expires_at,
                    idle_until: idle_until.max(idle),
                }))
            }

            async fn end_console_session(&self, id: &str) -> Result<(), $crate::StoreError> {
                sqlx::query("DELETE FROM console_sessions WHERE id_sha256 = $1")
                    .bind(id)
                    .execute(self.write_pool())
                    .await
                    .map_err(map_err)?;
                Ok(())
            }
        }
    };
}
pub(crate) use console_session_methods;
