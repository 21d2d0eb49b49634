-- The lease order across plans (keep in step with the other backend's 0007_lease_order.sql).
-- Due actions of every plan are leased in (phase_rank, seq, plan_id, id) order. The index of
-- 0004 held (state, phase_rank, seq) only, so for each lease the database read and checked
-- every pending action of the first (phase_rank, seq) group, one per plan, to sort them by
-- plan and id before returning the first: 1 ms a lease with 1,000 plans, growing with them.
-- With the whole order in the index the first due rows come straight off it.

DROP INDEX actions_state;
CREATE INDEX actions_due ON actions (state, phase_rank, seq, plan_id, id);
