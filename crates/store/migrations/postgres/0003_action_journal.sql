-- Each action's journal: the facts an action recorded about itself while it ran (the id of a key it
-- created, a step it finished), kept across attempts so that a later attempt, in this process or
-- another replica, resumes where an earlier one stopped. Values are evidence: no credentials.
-- Keep in step with the other backend's 0003_action_journal.sql.

CREATE TABLE action_journal (
    seq       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    action_id TEXT NOT NULL REFERENCES actions (id),
    attempt   BIGINT NOT NULL,
    name      TEXT NOT NULL,
    value     TEXT NOT NULL,
    at        BIGINT NOT NULL
);

CREATE INDEX action_journal_action ON action_journal (action_id, seq);
