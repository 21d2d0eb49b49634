use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Sha256Hex;

/// One fact a connector found about a subject (an account, a membership, a key...).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Finding {
    pub connector: String,
    pub subject: String,
    /// What sort of access this is, in the connector's words (`account`, `group_membership`).
    pub kind: String,
    /// The object in the target system (a DN, an ARN, an org/repo).
    pub target: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attrs: BTreeMap<String, String>,
}

impl Finding {
    fn identity(&self) -> (&str, &str, &str, &str) {
        (&self.connector, &self.subject, &self.kind, &self.target)
    }
}

/// Everything discovery saw when a plan was made, in a canonical order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub findings: Vec<Finding>,
}

/// One difference between two snapshots, for telling a user why a plan is stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotChange {
    Added(Finding),
    Removed(Finding),
    Changed { before: Finding, after: Finding },
}

impl fmt::Display for SnapshotChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotChange::Added(x) => {
                write!(
                    f,
                    "{}: {}: {} {} appeared",
                    x.connector, x.subject, x.kind, x.target
                )
            }
            SnapshotChange::Removed(x) => {
                write!(
                    f,
                    "{}: {}: {} {} is gone",
                    x.connector, x.subject, x.kind, x.target
                )
            }
            SnapshotChange::Changed { before, after } => {
                write!(
                    f,
                    "{}: {}: {} {} changed",
                    after.connector, after.subject, after.kind, after.target
                )?;
                let keys: std::collections::BTreeSet<&String> =
                    before.attrs.keys().chain(after.attrs.keys()).collect();
                for k in keys {
                    let (b, a) = (before.attrs.get(k), after.attrs.get(k));
                    if b != a {
                        write!(
                            f,
                            " ({k}: {} -> {})",
                            b.map(String::as_str).unwrap_or("none"),
                            a.map(String::as_str).unwrap_or("none")
                        )?;
                    }
                }
                Ok(())
            }
        }
    }
}

impl Snapshot {
    /// Builds a snapshot in canonical order, whatever order discovery returned.
    pub fn new(mut findings: Vec<Finding>) -> Self {
        findings.sort();
        findings.dedup();
        Self { findings }
    }

    pub fn digest(&self) -> String {
        let mut h = Sha256Hex::new();
        for x in &self.findings {
            h = h
                .field(&x.connector)
                .field(&x.subject)
                .field(&x.kind)
                .field(&x.target);
            h = h.field((x.attrs.len() as u64).to_be_bytes());
            for (k, v) in &x.attrs {
                h = h.field(k).field(v);
            }
        }
        h.finish()
    }

    /// What changed from `self` (the older) to `newer`.
    pub fn diff(&self, newer: &Snapshot) -> Vec<SnapshotChange> {
        let old: BTreeMap<_, _> = self.findings.iter().map(|x| (x.identity(), x)).collect();
        let new: BTreeMap<_, _> = newer.findings.iter().map(|x| (x.identity(), x)).collect();
        let mut out = Vec::new();
        for (id, b) in &old {
            match new.get(id) {
                None => out.push(SnapshotChange::Removed((*b).clone())),
                Some(a) if a.attrs != b.attrs => out.push(SnapshotChange::Changed {
                    before: (*b).clone(),
                    after: (*a).clone(),
                }),
                Some(_) => {}
            }
        }
        for (id, a) in &new {
            if !old.contains_key(id) {
                out.push(SnapshotChange::Added((*a).clone()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(target: &str, locked: &str) -> Finding {
        Finding {
            connector: "dir".into(),
            subject: "alice".into(),
            kind: "account".into(),
            target: target.into(),
            attrs: [("locked".to_string(), locked.to_string())].into(),
        }
    }

    #[test]
    fn order_does_not_change_the_digest() {
        let a = Snapshot::new(vec![f("a", "no"), f("b", "no")]);
        let b = Snapshot::new(vec![f("b", "no"), f("a", "no")]);
        assert_eq!(a.digest(), b.digest());
        assert_ne!(
            a.digest(),
            Snapshot::new(vec![f("a", "yes"), f("b", "no")]).digest()
        );
    }

    #[test]
    fn diff_names_added_removed_and_changed() {
        let old = Snapshot::new(vec![f("a", "no"), f("b", "no")]);
        let new = Snapshot::new(vec![f("a", "yes"), f("c", "no")]);
        let text: Vec<String> = old.diff(&new).iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            vec![
                "dir: alice: account a changed (locked: no -> yes)",
                "dir: alice: account b is gone",
                "dir: alice: account c appeared",
            ]
        );
    }
}
