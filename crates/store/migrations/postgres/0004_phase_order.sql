-- Phase order and grace periods (keep in step with the other backend's 0004_phase_order.sql).
-- phase_rank: due actions are leased contain first, then transfer, revoke, delete, across every
-- plan, so a batch's time to contain does not grow with its delete work.
-- grace_us: an action is not due before this long after its last prerequisite succeeded; the
-- store moves not_before forward when a prerequisite finishes (a rotated-out key is deleted a
-- grace period after the rotation, not after the job's effective date).

ALTER TABLE actions ADD COLUMN phase_rank BIGINT NOT NULL DEFAULT 9;
ALTER TABLE actions ADD COLUMN grace_us BIGINT;

UPDATE actions SET phase_rank = CASE phase
    WHEN 'contain' THEN 0
    WHEN 'transfer' THEN 1
    WHEN 'revoke' THEN 2
    WHEN 'delete' THEN 3
    WHEN 'manual' THEN 4
    ELSE 5 END;

DROP INDEX actions_queue;
DROP INDEX actions_state;
CREATE INDEX actions_queue ON actions (plan_id, state, phase_rank, seq);
CREATE INDEX actions_state ON actions (state, phase_rank, seq);
CREATE INDEX action_deps_prerequisite ON action_deps (depends_on);

-- Applied actions still without a verdict (a run died before reading them back): the executor's
-- sweep looks for these every few seconds, so it must not scan every finished action.
CREATE INDEX actions_unverified ON actions (finished_at)
    WHERE verdict_json IS NULL AND manual = FALSE AND state IN ('done', 'already_done', 'skipped');
