-- Batches of held jobs (keep in step with the other backend's 0006_job_batches.sql). A job the
-- blast-radius guard holds joins the open batch of its source (an import, a burst of one HR
-- source's events): the batch whose last hold is less than a guard window ago and that was not
-- decided as a whole; otherwise it opens a new one. A batch is approved or rejected as one unit
-- (every job of it still awaiting approval); deciding it closes it, so a later hold opens another.

CREATE TABLE job_batches (
    batch_id     TEXT PRIMARY KEY NOT NULL,
    source       TEXT NOT NULL,
    opened_at    BIGINT NOT NULL,
    last_held_at BIGINT NOT NULL,
    held         BIGINT NOT NULL DEFAULT 0,
    closed_at    BIGINT,
    decision     TEXT,
    decided_by   TEXT
);

CREATE INDEX job_batches_open ON job_batches (source, closed_at, last_held_at);
CREATE INDEX job_batches_opened ON job_batches (opened_at, batch_id);

ALTER TABLE job_queue ADD COLUMN batch_id TEXT;
CREATE INDEX job_queue_batch ON job_queue (batch_id, state);
