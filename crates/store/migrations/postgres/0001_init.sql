-- revoked store schema, Postgres flavour. Keep in step with ../sqlite/0001_init.sql: the same
-- tables, columns and SQL; every timestamp is BIGINT microseconds since the Unix epoch.

CREATE TABLE plans (
    id          TEXT PRIMARY KEY NOT NULL,
    fingerprint TEXT NOT NULL,
    json        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE jobs (
    id          TEXT PRIMARY KEY NOT NULL,
    plan_id     TEXT NOT NULL REFERENCES plans (id),
    subject_id  TEXT NOT NULL,
    json        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE INDEX jobs_plan ON jobs (plan_id);
CREATE INDEX jobs_created ON jobs (created_at);

CREATE TABLE actions (
    id               TEXT PRIMARY KEY NOT NULL,
    plan_id          TEXT NOT NULL REFERENCES plans (id),
    job_id           TEXT NOT NULL REFERENCES jobs (id),
    seq              BIGINT NOT NULL,
    connector        TEXT NOT NULL,
    kind             TEXT NOT NULL,
    target           TEXT NOT NULL,
    phase            TEXT NOT NULL,
    not_before       BIGINT,
    key              TEXT NOT NULL UNIQUE,
    json             TEXT NOT NULL,
    manual           BOOLEAN NOT NULL,
    state            TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    started_at       BIGINT,
    finished_at      BIGINT,
    next_attempt_at  BIGINT,
    error_json       TEXT,
    note             TEXT,
    verdict_json     TEXT,
    verified_at      BIGINT,
    lease_owner      TEXT,
    lease_expires_at BIGINT
);

CREATE INDEX actions_queue ON actions (plan_id, state, seq);
CREATE INDEX actions_state ON actions (state, seq);
CREATE INDEX actions_plan ON actions (plan_id, seq);
CREATE INDEX actions_job ON actions (job_id);

CREATE TABLE action_deps (
    action_id  TEXT NOT NULL REFERENCES actions (id),
    depends_on TEXT NOT NULL REFERENCES actions (id),
    PRIMARY KEY (action_id, depends_on)
);

-- The idempotency ledger: a row is written before the mutation is sent, and completed after.
CREATE TABLE attempts (
    action_id   TEXT NOT NULL REFERENCES actions (id),
    attempt     BIGINT NOT NULL,
    key         TEXT NOT NULL,
    owner       TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    outcome     TEXT,
    error_json  TEXT,
    UNIQUE (action_id, attempt)
);

CREATE TABLE audit_log (
    seq       BIGINT PRIMARY KEY NOT NULL,
    at        BIGINT NOT NULL,
    actor     TEXT NOT NULL,
    kind      TEXT NOT NULL,
    job_id    TEXT,
    action_id TEXT,
    data      TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
