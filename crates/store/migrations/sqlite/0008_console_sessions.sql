-- Console sessions (keep in step with the other backend's 0008_console_sessions.sql): an API
-- token exchanged for a browser session at sign-in, shared by every replica so a load balancer
-- may send a browser's requests to any of them. Only the SHA-256 of the cookie value is kept.
-- Times are microseconds since the epoch, like every other table.

CREATE TABLE console_sessions (
    id_sha256   TEXT PRIMARY KEY NOT NULL,
    token_name  TEXT NOT NULL,
    scope       TEXT NOT NULL,
    csrf        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    idle_until  BIGINT NOT NULL
);

CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
