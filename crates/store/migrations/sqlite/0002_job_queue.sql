-- The daemon's jobs, from intake to plan: scheduling, the blast-radius hold, approval and
-- cancellation. Keep in step with the other backend's 0002_job_queue.sql.

CREATE TABLE job_queue (
    job_id            TEXT PRIMARY KEY NOT NULL,
    state             TEXT NOT NULL,
    job_json          TEXT NOT NULL,
    employee_id       TEXT,
    email             TEXT,
    source            TEXT NOT NULL,
    source_event_id   TEXT,
    event_json        TEXT,
    received_at       BIGINT NOT NULL,
    due_at            BIGINT NOT NULL,
    plan_id           TEXT,
    planning_attempts BIGINT NOT NULL DEFAULT 0,
    lease_owner       TEXT,
    lease_expires_at  BIGINT,
    note              TEXT,
    updated_at        BIGINT NOT NULL
);

CREATE INDEX job_queue_due ON job_queue (state, due_at);
CREATE INDEX job_queue_received ON job_queue (received_at);
CREATE INDEX job_queue_employee ON job_queue (employee_id);
CREATE INDEX job_queue_email ON job_queue (email);

-- Every authentic event that made or cancelled a job, once: (source, event_id) is the dedup key,
-- so a redelivery finds the job the first delivery made.
CREATE TABLE intake_events (
    source      TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    job_id      TEXT,
    body_sha256 TEXT,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (source, event_id)
);
