//! Planner (job + policy + discovery -> plan DAG) and executor of revoked
