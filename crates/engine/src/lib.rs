//! The planner (job + policy + discovery -> plan DAG) and the executor (plan -> applied, verified
//! actions, with leases, retries and an idempotency ledger in the store).
//!
//! Architecture invariant: the engine names no vendor. It knows connectors only through
//! `revoke_core::Connector`, and it is the only place that retries.

mod error;
pub mod evidence;
mod executor;
mod group;
mod journal;
mod planner;
pub mod queue;
mod registry;
mod retry;

pub use error::EngineError;
pub use evidence::{Evidence, EvidenceAction, EvidenceAudit, EvidenceFormat};
pub use executor::{ExecEvent, Executor, RunSummary, WorkReport};
pub use planner::{check_fresh, discover, plan, plan_jobs, Staleness, IDENTITY};
pub use registry::{Connectors, Registry};
pub use retry::RetryPolicy;
