-- Job listing with filters and keyset paging (keep in step with the other backend's
-- 0005_job_listing.sql). Jobs are listed newest first by (received_at, job_id); each filter has an
-- index that keeps that order, so a page reads only its own rows, never an OFFSET's worth.
-- subject_id: the job's subject id (the username when there is one), so a listing can filter by
-- username as well as by employee id and email.

ALTER TABLE job_queue ADD COLUMN subject_id TEXT;
UPDATE job_queue SET subject_id = CAST(job_json AS JSONB) -> 'subject' ->> 'id';

DROP INDEX job_queue_received;
CREATE INDEX job_queue_received ON job_queue (received_at, job_id);
CREATE INDEX job_queue_state_received ON job_queue (state, received_at, job_id);
CREATE INDEX job_queue_source_received ON job_queue (source, received_at, job_id);
CREATE INDEX job_queue_subject ON job_queue (subject_id);
