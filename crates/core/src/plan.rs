use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    AccountPin, ConnectorError, Discovery, Job, JobId, ProposedAction, Sha256Hex, Snapshot,
};

/// Bumped whenever the saved plan format changes incompatibly.
/// Version 2: actions carry the account they are pinned to and their grace after prerequisites.
pub const PLAN_FORMAT_VERSION: u32 = 2;

macro_rules! string_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_string())
            }
        }
    };
}

string_id!(
    /// A plan's identifier.
    PlanId
);
string_id!(
    /// An action's identifier, stable for the same connector, kind and target within a job.
    ActionId
);
string_id!(
    /// What an action does, in the connector's vocabulary (`lock_account`, `remove_group_member`).
    ActionKind
);
string_id!(
    /// The idempotency key of one mutating action: the same job, connector, kind and target always
    /// give the same key, and the store records it before the action is sent.
    ActionKey
);

impl ActionKey {
    pub fn derive(job: &JobId, connector: &str, kind: &ActionKind, target: &str) -> Self {
        Self(
            Sha256Hex::new()
                .field(&job.0)
                .field(connector)
                .field(&kind.0)
                .field(target)
                .finish(),
        )
    }
}

impl ActionId {
    /// A short, readable id: the connector and kind, and a digest of the job and target.
    pub fn derive(job: &JobId, connector: &str, kind: &ActionKind, target: &str) -> Self {
        let digest = Sha256Hex::new()
            .field(&job.0)
            .field(connector)
            .field(&kind.0)
            .field(target)
            .finish();
        Self(format!("{connector}.{}.{}", kind.0, &digest[..8]))
    }
}

/// The order of offboarding: stop use first, hand over what must survive, then take away, then delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Contain,
    Transfer,
    Revoke,
    Delete,
    Manual,
    Verify,
}

impl Phase {
    pub const ALL: [Phase; 6] = [
        Phase::Contain,
        Phase::Transfer,
        Phase::Revoke,
        Phase::Delete,
        Phase::Manual,
        Phase::Verify,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Contain => "contain",
            Phase::Transfer => "transfer",
            Phase::Revoke => "revoke",
            Phase::Delete => "delete",
            Phase::Manual => "manual",
            Phase::Verify => "verify",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step of a plan: a single mutation on one target in one connector instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub id: ActionId,
    pub job_id: JobId,
    /// The connector instance (a name from config), or `manual` for a person's step.
    pub connector: String,
    pub kind: ActionKind,
    pub target: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<ActionId>,
    pub phase: Phase,
    /// The action is not due before this time (the effective date, or the end of retention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<DateTime<Utc>>,
    /// Nor before this long after the last of its prerequisites succeeded (a rotated-out key is
    /// deleted a grace period after the rotation, not after the job's effective date).
    #[serde(
        default,
        rename = "grace_ms",
        with = "crate::outcome::opt_millis",
        skip_serializing_if = "Option::is_none"
    )]
    pub grace: Option<std::time::Duration>,
    /// The account the action touches, as discovery saw it: the connector resolves `id` at apply
    /// and verify time and sends nothing if the planned name now names another account. `None`
    /// only for a policy's manual step (one a connector found names the account it concerns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountPin>,
    pub key: ActionKey,
    /// One line for people.
    pub summary: String,
}

impl Action {
    /// A parameter the plan put on the action, non-empty; a missing one is the permanent
    /// `bad_action` (a plan file is input too, and may have been edited).
    pub fn param(&self, name: &str) -> Result<&str, ConnectorError> {
        self.params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                ConnectorError::permanent(
                    "bad_action",
                    format!(
                        "{} {}: expected param {name:?}, found none",
                        self.kind, self.target
                    ),
                )
            })
    }

    /// One connector's proposals for one job as actions: ids, keys, dependencies among them,
    /// each pinned to the discovered account it names; no time yet (`not_before` is the
    /// planner's, from policy). What the planner does, and what connector tests and benchmarks
    /// use to get actions as the planner would make them. A proposal naming an account the
    /// discovery did not report is an error (a broken connector), as is an `after` that names
    /// no proposal.
    ///
    /// A proposal in [`Phase::Manual`] is a step for a person the connector found and cannot
    /// take itself (a distribution list only Exchange can change): it becomes a manual action
    /// (`connector = "manual"`, target `<instance>.<target>`, acknowledged like a policy's
    /// manual step), still pinned to the account it concerns. It may come after the
    /// connector's own proposals; none of those may wait for it (only a person can end it).
    pub fn from_proposals(
        job: &JobId,
        instance: &str,
        discovery: &Discovery,
        proposals: Vec<ProposedAction>,
    ) -> Result<Vec<Action>, String> {
        let id_of = |p: &ProposedAction| -> (ActionId, ActionKey, String) {
            if p.phase == Phase::Manual {
                let target = format!("{instance}.{}", p.target);
                let key = ActionKey::derive(job, crate::MANUAL_CONNECTOR, &p.kind, &target);
                (
                    ActionId(format!("manual.{target}.{}", &key.0[..8])),
                    key,
                    target,
                )
            } else {
                (
                    ActionId::derive(job, instance, &p.kind, &p.target),
                    ActionKey::derive(job, instance, &p.kind, &p.target),
                    p.target.clone(),
                )
            }
        };
        let known: BTreeMap<(&ActionKind, &str), &ProposedAction> = proposals
            .iter()
            .map(|p| ((&p.kind, p.target.as_str()), p))
            .collect();
        let mut out = Vec::with_capacity(proposals.len());
        for p in &proposals {
            let account = discovery.account(&p.account).ok_or_else(|| {
                format!(
                    "expected the account of {} {} to be one discovery reported for {:?}, found {:?}",
                    p.kind, p.target, discovery.subject, p.account
                )
            })?;
            let manual = p.phase == Phase::Manual;
            let mut depends_on = Vec::with_capacity(p.after.len());
            for (k, t) in &p.after {
                let Some(before) = known.get(&(k, t.as_str())) else {
                    return Err(format!(
                        "expected {} {} to come after a proposal of the same plan, found {k} {t}",
                        p.kind, p.target
                    ));
                };
                if before.phase == Phase::Manual && !manual {
                    return Err(format!(
                        "expected {} {} to come after the connector's own actions, found it waiting for the manual step {k} {t}",
                        p.kind, p.target
                    ));
                }
                depends_on.push(id_of(before).0);
            }
            depends_on.sort();
            depends_on.dedup();
            let (id, key, target) = id_of(p);
            let (connector, summary) = if manual {
                (
                    crate::MANUAL_CONNECTOR.to_string(),
                    format!("{} (awaiting acknowledgement)", p.summary),
                )
            } else {
                (instance.to_string(), p.summary.clone())
            };
            let mut params = p.params.clone();
            if manual {
                params
                    .entry("title".into())
                    .or_insert_with(|| p.summary.clone());
                params.insert("found_by".into(), instance.to_string());
            }
            out.push(Action {
                id,
                job_id: job.clone(),
                connector,
                kind: p.kind.clone(),
                target,
                params,
                depends_on,
                phase: p.phase,
                not_before: None,
                grace: if manual { None } else { p.delay },
                account: Some(account.pin()),
                key,
                summary,
            });
        }
        Ok(out)
    }

    /// The account the plan pinned this action to; a plan without one is the permanent
    /// `bad_action` (an edited or older plan file).
    pub fn pinned(&self) -> Result<&AccountPin, ConnectorError> {
        self.account.as_ref().ok_or_else(|| {
            ConnectorError::permanent(
                "bad_action",
                format!(
                    "{} {}: expected the account the plan pinned it to, found none (a plan made before actions were pinned, or an edited one); nothing was sent: plan again",
                    self.kind, self.target
                ),
            )
        })
    }

    pub fn is_manual(&self) -> bool {
        self.connector == crate::MANUAL_CONNECTOR
    }

    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.not_before.is_none_or(|t| t <= now)
    }
}

/// Something a plan's reader must know that is not an action (a protected account left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanNote {
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
    pub message: String,
}

/// The reviewed unit of work: what discovery saw, and the actions that follow from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    pub id: PlanId,
    pub created_at: DateTime<Utc>,
    pub jobs: Vec<Job>,
    pub snapshot: Snapshot,
    pub actions: Vec<Action>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<PlanNote>,
    /// SHA-256 over the snapshot and the actions: the same inputs give the same fingerprint.
    pub fingerprint: String,
}

impl Plan {
    pub fn fingerprint_of(snapshot: &Snapshot, actions: &[Action]) -> String {
        let mut h = Sha256Hex::new().field(snapshot.digest());
        for a in actions {
            h = h
                .field(&a.id.0)
                .field(&a.job_id.0)
                .field(&a.connector)
                .field(&a.kind.0)
                .field(&a.target)
                .field(a.phase.as_str())
                .field(a.not_before.map(|t| t.to_rfc3339()).unwrap_or_default())
                .field(
                    a.grace
                        .map(|g| g.as_millis().to_string())
                        .unwrap_or_default(),
                )
                .field(&a.key.0);
            h = match &a.account {
                Some(p) => h.field("pin").field(&p.id).field(&p.id_kind).field(&p.name),
                None => h.field("manual"),
            };
            h = h.field((a.params.len() as u64).to_be_bytes());
            for (k, v) in &a.params {
                h = h.field(k).field(v);
            }
            h = h.field((a.depends_on.len() as u64).to_be_bytes());
            for d in &a.depends_on {
                h = h.field(&d.0);
            }
        }
        h.finish()
    }

    /// Whether the recorded fingerprint matches the content (a hand-edited plan does not).
    pub fn fingerprint_is_valid(&self) -> bool {
        self.fingerprint == Self::fingerprint_of(&self.snapshot, &self.actions)
    }

    pub fn action(&self, id: &ActionId) -> Option<&Action> {
        self.actions.iter().find(|a| &a.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_separate_their_fields() {
        let job = JobId("j1".into());
        let kind = ActionKind::from("lock");
        let a = ActionKey::derive(&job, "dir", &kind, "uid=a");
        assert_eq!(a, ActionKey::derive(&job, "dir", &kind, "uid=a"));
        assert_ne!(a, ActionKey::derive(&job, "dir", &kind, "uid=b"));
        assert_ne!(
            a,
            ActionKey::derive(&JobId("j2".into()), "dir", &kind, "uid=a")
        );
        assert_ne!(
            ActionKey::derive(&job, "ab", &ActionKind::from("c"), "t"),
            ActionKey::derive(&job, "a", &ActionKind::from("bc"), "t")
        );
        assert_eq!(a.0.len(), 64);
    }

    #[test]
    fn a_missing_or_empty_param_is_a_permanent_bad_action() {
        let job = JobId("j1".into());
        let kind = ActionKind::from("delete_user");
        let a = Action {
            id: ActionId::derive(&job, "aws", &kind, "1/alice"),
            job_id: job.clone(),
            connector: "aws".into(),
            key: ActionKey::derive(&job, "aws", &kind, "1/alice"),
            kind,
            target: "1/alice".into(),
            params: BTreeMap::from([
                ("user".to_string(), "alice".to_string()),
                ("id".to_string(), String::new()),
            ]),
            depends_on: Vec::new(),
            phase: Phase::Delete,
            not_before: None,
            grace: None,
            account: None,
            summary: String::new(),
        };
        assert_eq!(a.param("user").ok(), Some("alice"));
        for missing in ["id", "account"] {
            let e = a.param(missing).expect_err(missing);
            assert_eq!(
                (e.class.name(), e.code.as_str()),
                ("permanent", "bad_action")
            );
            assert_eq!(
                e.message,
                format!("delete_user 1/alice: expected param {missing:?}, found none")
            );
        }
    }

    fn proposal(kind: &str, target: &str, phase: Phase, after: &[(&str, &str)]) -> ProposedAction {
        ProposedAction {
            kind: ActionKind::from(kind),
            target: target.into(),
            params: BTreeMap::new(),
            phase,
            after: after
                .iter()
                .map(|(k, t)| (ActionKind::from(*k), t.to_string()))
                .collect(),
            summary: format!("{kind} {target}"),
            account: "u-1".into(),
            delay: None,
        }
    }

    #[test]
    fn a_connector_s_manual_proposal_is_a_person_s_step_pinned_to_its_account() {
        let job = JobId("j1".into());
        let mut d = Discovery::not_found("corp-entra", "alice");
        d.found = true;
        d.accounts
            .push(crate::Account::new("u-1", "object id", "alice@example.org"));
        let made = Action::from_proposals(
            &job,
            "corp-entra",
            &d,
            vec![
                proposal("remove_member", "g-sales", Phase::Revoke, &[]),
                proposal(
                    "remove_in_exchange",
                    "g-sales",
                    Phase::Manual,
                    &[("remove_member", "g-sales")],
                ),
            ],
        )
        .expect("plan");
        let (auto, manual) = (&made[0], &made[1]);
        assert_eq!(auto.connector, "corp-entra");
        assert!(!auto.is_manual());
        assert!(manual.is_manual(), "{manual:?}");
        assert_eq!(manual.target, "corp-entra.g-sales");
        assert!(
            manual.id.0.starts_with("manual.corp-entra.g-sales."),
            "{}",
            manual.id
        );
        assert_eq!(
            manual.key,
            ActionKey::derive(
                &job,
                crate::MANUAL_CONNECTOR,
                &ActionKind::from("remove_in_exchange"),
                "corp-entra.g-sales"
            )
        );
        assert_ne!(manual.key, auto.key);
        assert_eq!(manual.depends_on, vec![auto.id.clone()]);
        assert_eq!(manual.params["title"], "remove_in_exchange g-sales");
        assert_eq!(manual.params["found_by"], "corp-entra");
        assert_eq!(
            manual.summary,
            "remove_in_exchange g-sales (awaiting acknowledgement)"
        );
        assert_eq!(manual.account.as_ref().map(|p| p.id.as_str()), Some("u-1"));
    }

    #[test]
    fn no_connector_action_may_wait_for_a_person() {
        let mut d = Discovery::not_found("corp-entra", "alice");
        d.accounts
            .push(crate::Account::new("u-1", "object id", "alice@example.org"));
        let e = Action::from_proposals(
            &JobId("j1".into()),
            "corp-entra",
            &d,
            vec![
                proposal("confirm", "x", Phase::Manual, &[]),
                proposal("delete_user", "u-1", Phase::Delete, &[("confirm", "x")]),
            ],
        )
        .expect_err("a connector action after a manual step");
        assert!(e.contains("waiting for the manual step confirm x"), "{e}");
    }
}
