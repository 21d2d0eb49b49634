//! Domain types of revoked and the contract every connector implements.
//!
//! Architecture invariant: this crate performs no I/O and names no vendor. It is the ground floor
//! every other crate builds on.

mod connector;
pub mod dn;
mod hash;
pub mod identifier;
mod identity;
mod job;
mod journal;
pub mod keys;
mod outcome;
mod plan;
mod snapshot;
mod subject;

pub use connector::{
    ConfigIssue, Connector, ConnectorFactory, Discovery, ProposedAction, RateBudget,
    MANUAL_CONNECTOR,
};
pub use hash::Sha256Hex;
pub use identifier::{IdentifierError, Problem as IdentifierProblem};
pub use identity::{canonical_identifier, Account, AccountPin, Protected};
pub use job::{Job, JobId, Risk};
pub use journal::{Journal, JournalEntry, MemoryJournal};
pub use outcome::{ConnectorError, ErrorClass, Outcome, Verdict};
pub use plan::{
    Action, ActionId, ActionKey, ActionKind, Phase, Plan, PlanId, PlanNote, PLAN_FORMAT_VERSION,
};
pub use snapshot::{Finding, Snapshot, SnapshotChange};
pub use subject::{ClientDomain, ClientDomainError, Subject};
