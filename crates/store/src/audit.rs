use chrono::{DateTime, SecondsFormat, Utc};
use revoke_core::Sha256Hex;
use serde::{Deserialize, Serialize};

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An audit event before the store numbers and chains it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAuditEntry {
    pub at: DateTime<Utc>,
    /// Who acted: an executor's lease owner (`revokectl@HOST:PID`), the person who acknowledged
    /// a manual action, a webhook source.
    pub actor: String,
    /// What happened: `plan.recorded`, `action.attempt`, `action.finished`, `action.acknowledged`...
    pub kind: String,
    pub job_id: Option<String>,
    pub action_id: Option<String>,
    /// Canonical JSON text of the event's details, stored and hashed exactly as given.
    pub data: String,
}

/// One entry of the append-only log; `hash` covers `prev_hash` and every field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub kind: String,
    pub job_id: Option<String>,
    pub action_id: Option<String>,
    pub data: String,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEntry {
    /// The hash an entry with these fields must carry.
    pub fn compute_hash(seq: i64, prev_hash: &str, e: &NewAuditEntry) -> String {
        Sha256Hex::new()
            .field(prev_hash)
            .field(seq.to_be_bytes())
            .field(e.at.to_rfc3339_opts(SecondsFormat::Micros, true))
            .field(&e.actor)
            .field(&e.kind)
            .field(e.job_id.as_deref().unwrap_or(""))
            .field(e.action_id.as_deref().unwrap_or(""))
            .field(&e.data)
            .finish()
    }

    fn as_new(&self) -> NewAuditEntry {
        NewAuditEntry {
            at: self.at,
            actor: self.actor.clone(),
            kind: self.kind.clone(),
            job_id: self.job_id.clone(),
            action_id: self.action_id.clone(),
            data: self.data.clone(),
        }
    }
}

/// Something wrong in the chain, at one entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditProblem {
    #[error("entry {seq}: content does not match its hash (altered)")]
    Altered { seq: i64 },
    #[error("entry {seq}: previous hash does not match entry {prev_seq} (an entry was removed or reordered)")]
    BrokenLink { seq: i64, prev_seq: i64 },
    #[error("entry {seq}: expected sequence number {expected} (an entry was removed)")]
    Gap { seq: i64, expected: i64 },
}

/// Checks the whole chain; an empty result means intact. Times are compared at microsecond
/// precision, which both backends keep.
pub fn verify_chain(entries: &[AuditEntry]) -> Vec<AuditProblem> {
    let mut problems = Vec::new();
    let mut prev_hash = GENESIS_HASH.to_string();
    let mut expected = 1;
    let mut prev_seq = 0;
    for e in entries {
        if e.seq != expected {
            problems.push(AuditProblem::Gap {
                seq: e.seq,
                expected,
            });
        }
        if e.prev_hash != prev_hash {
            problems.push(AuditProblem::BrokenLink {
                seq: e.seq,
                prev_seq,
            });
        }
        if AuditEntry::compute_hash(e.seq, &e.prev_hash, &e.as_new()) != e.hash {
            problems.push(AuditProblem::Altered { seq: e.seq });
        }
        prev_hash = e.hash.clone();
        prev_seq = e.seq;
        expected = e.seq + 1;
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = Vec::new();
        for seq in 1..=n {
            let new = NewAuditEntry {
                at: DateTime::from_timestamp(1_700_000_000 + seq, 0).expect("valid time"),
                actor: "t".into(),
                kind: "k".into(),
                job_id: None,
                action_id: None,
                data: format!("{{\"n\":{seq}}}"),
            };
            let prev = out
                .last()
                .map(|e| e.hash.clone())
                .unwrap_or_else(|| GENESIS_HASH.to_string());
            let hash = AuditEntry::compute_hash(seq, &prev, &new);
            out.push(AuditEntry {
                seq,
                at: new.at,
                actor: new.actor,
                kind: new.kind,
                job_id: None,
                action_id: None,
                data: new.data,
                prev_hash: prev,
                hash,
            });
        }
        out
    }

    #[test]
    fn intact_chain_verifies() {
        assert!(verify_chain(&chain(5)).is_empty());
    }

    #[test]
    fn altered_entry_is_found() {
        let mut c = chain(5);
        c[2].data = "{\"n\":99}".into();
        assert_eq!(verify_chain(&c), vec![AuditProblem::Altered { seq: 3 }]);
    }

    #[test]
    fn removed_entry_is_found() {
        let mut c = chain(5);
        c.remove(2);
        let p = verify_chain(&c);
        assert!(
            p.contains(&AuditProblem::Gap {
                seq: 4,
                expected: 3
            }),
            "{p:?}"
        );
        assert!(
            p.contains(&AuditProblem::BrokenLink {
                seq: 4,
                prev_seq: 2
            }),
            "{p:?}"
        );
    }
}
