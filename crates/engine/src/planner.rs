use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use revoke_config::{Config, PhaseOrder};
use revoke_core::{
    Account, Action, ActionId, ActionKey, ActionKind, Discovery, Finding, Job, Phase, Plan, PlanId,
    PlanNote, ProposedAction, Risk, Snapshot, MANUAL_CONNECTOR, PLAN_FORMAT_VERSION,
};
use tokio::task::JoinSet;

use crate::{Connectors, EngineError};

/// The policy a job names, or an error that lists the configured ones.
fn policy_for(config: &Config, job: &Job) -> Result<revoke_config::PolicyConfig, EngineError> {
    config
        .policy(&job.policy)
        .ok_or_else(|| EngineError::UnknownPolicy {
            job: job.id.to_string(),
            policy: job.policy.clone(),
            known: config
                .policies
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The configured instances a job's policy names (every one without a list), in name order.
fn policy_instances(
    config: &Config,
    connectors: &Connectors,
    job: &Job,
) -> Result<Vec<String>, EngineError> {
    let names: BTreeSet<String> = match policy_for(config, job)?.connectors {
        Some(list) => list.into_iter().collect(),
        None => connectors.keys().cloned().collect(),
    };
    Ok(names
        .into_iter()
        .filter(|n| connectors.contains_key(n))
        .collect())
}

/// The connector instances a job's policy applies, in name order: for a client job, those that
/// take client jobs (a client domain overlapping our own, or none to take it, is refused).
fn instances_for(
    config: &Config,
    connectors: &Connectors,
    job: &Job,
) -> Result<Vec<String>, EngineError> {
    let mut names = policy_instances(config, connectors, job)?;
    if let Some(domain) = job.subject.client_domain() {
        if let Some(ours) = config.protected.domain_for(domain) {
            return Err(EngineError::ProtectedDomain {
                domain: domain.to_string(),
                protected: ours.to_string(),
            });
        }
        let all = names.join(", ");
        names.retain(|n| connectors[n].takes_client_jobs());
        if names.is_empty() {
            return Err(EngineError::NoClientConnector {
                domain: domain.to_string(),
                policy: job.policy.clone(),
                searched: if all.is_empty() {
                    "no connector applies".into()
                } else {
                    all
                },
            });
        }
    }
    Ok(names)
}

/// The instances a client job's policy names that do not take client jobs: the plan says
/// nothing of the client was looked for there.
fn not_searched_for_client(config: &Config, connectors: &Connectors, job: &Job) -> Vec<String> {
    if job.subject.client_domain().is_none() {
        return Vec::new();
    }
    policy_instances(config, connectors, job)
        .unwrap_or_default()
        .into_iter()
        .filter(|n| !connectors[n].takes_client_jobs())
        .collect()
}

/// Read-only discovery of every job's subject in every connector its policy applies, one
/// batch call per connector instance, the instances concurrently.
pub async fn discover(
    config: &Config,
    connectors: &Connectors,
    jobs: &[Job],
) -> Result<Vec<Discovery>, EngineError> {
    let mut per_instance: BTreeMap<String, Vec<revoke_core::Subject>> = BTreeMap::new();
    for job in jobs {
        for name in instances_for(config, connectors, job)? {
            per_instance
                .entry(name)
                .or_default()
                .push(job.subject.clone());
        }
    }
    let mut set = JoinSet::new();
    for (name, subjects) in per_instance {
        let Some(c) = connectors.get(&name).cloned() else {
            continue;
        };
        set.spawn(async move {
            let r = c.discover_many(&subjects).await;
            (name, subjects, r)
        });
    }
    let mut out = Vec::new();
    while let Some(joined) = set.join_next().await {
        let (name, subjects, r) = joined.map_err(|e| EngineError::Discovery {
            connector: "?".into(),
            subject: "?".into(),
            error: revoke_core::ConnectorError::permanent("panic", e.to_string()),
        })?;
        let found = r.map_err(|error| EngineError::Discovery {
            connector: name.clone(),
            subject: subjects
                .iter()
                .map(|s| s.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            error,
        })?;
        out.extend(found);
    }
    out.sort_by(|a, b| (&a.connector, &a.subject).cmp(&(&b.connector, &b.subject)));
    Ok(out)
}

/// The finding kind under which each discovered account's identity enters the snapshot, so
/// that a plan whose accounts changed identity (renamed, reused, re-created) is stale.
pub const IDENTITY: &str = "identity";

/// The canonical snapshot of what discovery saw; an absent account is a fact too.
pub fn snapshot_of(discoveries: &[Discovery]) -> Snapshot {
    let mut findings = Vec::new();
    for d in discoveries {
        if d.found {
            findings.extend(d.findings.iter().cloned());
            findings.extend(d.accounts.iter().map(|a| {
                let mut attrs = BTreeMap::from([
                    ("id".to_string(), a.id.clone()),
                    ("id_kind".to_string(), a.id_kind.clone()),
                ]);
                // The id and the name have their own places.
                let ids: Vec<&str> = a
                    .identifiers
                    .iter()
                    .map(String::as_str)
                    .filter(|i| *i != a.id && *i != a.name)
                    .collect();
                if !ids.is_empty() {
                    attrs.insert("identifiers".into(), ids.join(", "));
                }
                if !a.matched_by.is_empty() {
                    attrs.insert("matched_by".into(), a.matched_by.clone());
                }
                Finding {
                    connector: d.connector.clone(),
                    subject: d.subject.clone(),
                    kind: IDENTITY.into(),
                    target: a.name.clone(),
                    attrs,
                }
            }));
        } else {
            findings.push(Finding {
                connector: d.connector.clone(),
                subject: d.subject.clone(),
                kind: "no_account".into(),
                target: String::new(),
                attrs: BTreeMap::new(),
            });
        }
    }
    Snapshot::new(findings)
}

/// When each phase of a job becomes due, and what its grace periods count from.
struct Timing {
    contain_at: Option<DateTime<Utc>>,
    delete_at: Option<DateTime<Utc>>,
    effective_at: DateTime<Utc>,
}

impl Timing {
    fn of(job: &Job, policy: &revoke_config::PolicyConfig) -> Self {
        Self {
            contain_at: match job.risk {
                Risk::High => None,
                Risk::Standard => Some(job.effective_at),
            },
            delete_at: Some(
                job.effective_at + ChronoDuration::days(i64::from(policy.retention_days)),
            ),
            effective_at: job.effective_at,
        }
    }

    /// The earliest time an action may run, by its phase. One with a grace period starts with
    /// the job: its grace counts from its prerequisites (see `Action::grace`, and
    /// `count_grace_from_effective_time` for one with none).
    fn not_before(&self, a: &Action) -> Option<DateTime<Utc>> {
        match (a.grace, a.phase) {
            (Some(_), _) => self.contain_at,
            (None, Phase::Delete) => self.delete_at,
            (None, Phase::Manual | Phase::Verify) => None,
            (None, Phase::Contain | Phase::Transfer | Phase::Revoke) => self.contain_at,
        }
    }

    /// An action with a grace period and no prerequisite has nothing to count it from but the
    /// effective time.
    fn count_grace_from_effective_time(&self, a: &mut Action) {
        if let (Some(grace), true) = (a.grace, a.depends_on.is_empty()) {
            let at = ChronoDuration::from_std(grace)
                .ok()
                .and_then(|g| self.effective_at.checked_add_signed(g))
                .or(self.delete_at);
            a.not_before = a.not_before.max(at);
        }
    }
}

/// The proposals of one connector for one subject that touch a protected account, and those
/// that depend on them; the rest go into the plan. Each protected account gets a note.
fn leave_out_protected(
    protected: &revoke_core::Protected,
    job: &Job,
    instance: &str,
    discovery: &Discovery,
    proposals: Vec<ProposedAction>,
    notes: &mut Vec<PlanNote>,
) -> Vec<ProposedAction> {
    // A proposal naming no discovered account stays in; `Action::from_proposals` refuses it.
    let pinned: Vec<(ProposedAction, Option<&Account>)> = proposals
        .into_iter()
        .map(|p| {
            let account = discovery.account(&p.account);
            (p, account)
        })
        .collect();
    let mut out_by_account: BTreeMap<&str, Vec<(ActionKind, String)>> = BTreeMap::new();
    let mut left_out: BTreeSet<(ActionKind, String)> = BTreeSet::new();
    for (p, account) in &pinned {
        if account.is_some_and(|a| protected.match_account(a).is_some()) {
            left_out.insert((p.kind.clone(), p.target.clone()));
            out_by_account
                .entry(account.map_or("", |a| a.id.as_str()))
                .or_default()
                .push((p.kind.clone(), p.target.clone()));
        }
    }
    if left_out.is_empty() {
        return pinned.into_iter().map(|(p, _)| p).collect();
    }
    // What depends on a left-out action cannot run either.
    let mut dependents = 0usize;
    loop {
        let before = left_out.len();
        for (p, _) in &pinned {
            let key = (p.kind.clone(), p.target.clone());
            if !left_out.contains(&key) && p.after.iter().any(|k| left_out.contains(k)) {
                left_out.insert(key);
                dependents += 1;
            }
        }
        if left_out.len() == before {
            break;
        }
    }
    for (id, kinds) in &out_by_account {
        let Some(account) = discovery.account(id) else {
            continue;
        };
        let (identifier, entry) = protected.match_account(account).unwrap_or_default();
        let mut message = format!(
            "protected account {} ({} {}): left out {} action(s); it answers to {identifier:?}, listed in protected.accounts as {entry:?}",
            account.name,
            account.id_kind,
            account.id,
            kinds.len(),
        );
        if out_by_account.len() == 1 && dependents > 0 {
            message.push_str(&format!(
                "; {dependents} more that depend on them left out too"
            ));
        }
        notes.push(PlanNote {
            subject: job.subject.id.clone(),
            connector: Some(instance.to_string()),
            message,
        });
    }
    if out_by_account.len() > 1 && dependents > 0 {
        notes.push(PlanNote {
            subject: job.subject.id.clone(),
            connector: Some(instance.to_string()),
            message: format!(
                "{dependents} more action(s) left out: they depend on actions of protected accounts"
            ),
        });
    }
    pinned
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| !left_out.contains(&(p.kind.clone(), p.target.clone())))
        .collect()
}

/// The phases whose order is enforced: a subject's actions of a later one depend on its
/// actions of the earlier ones. Manual steps and verification stand apart.
const ORDERED_PHASES: [Phase; 4] = [
    Phase::Contain,
    Phase::Transfer,
    Phase::Revoke,
    Phase::Delete,
];

/// Makes every action of a later phase depend on every action of the nearest earlier phase
/// that has any, within each group (a connector instance, or the whole job): by induction a
/// later phase waits for all earlier ones, and a failure blocks everything after it.
fn order_phases(actions: &mut [Action], across_connectors: bool) {
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, a) in actions.iter().enumerate() {
        let group = if across_connectors {
            ""
        } else {
            a.connector.as_str()
        };
        groups.entry(group).or_default().push(i);
    }
    let mut extra: Vec<(usize, Vec<ActionId>)> = Vec::new();
    for members in groups.values() {
        let mut previous: Vec<ActionId> = Vec::new();
        for phase in ORDERED_PHASES {
            let this: Vec<usize> = members
                .iter()
                .copied()
                .filter(|i| actions[*i].phase == phase)
                .collect();
            if this.is_empty() {
                continue;
            }
            if !previous.is_empty() {
                for i in &this {
                    extra.push((*i, previous.clone()));
                }
            }
            previous = this.iter().map(|i| actions[*i].id.clone()).collect();
        }
    }
    for (i, deps) in extra {
        let a = &mut actions[i];
        a.depends_on.extend(deps);
        a.depends_on.sort();
        a.depends_on.dedup();
    }
}

/// Turns jobs and what discovery found into a plan. Pure: the same inputs give the same plan
/// and the same fingerprint (`id` and `created_at` are carried, not hashed).
///
/// Every action is pinned to the immutable id of the account it touches. Actions on a protected
/// account (recognised by any identifier it answers to) are left out with a note, with whatever
/// depends on them, and nothing else is. Within a subject, each phase depends on the earlier
/// ones, so no leaver is revoked or deleted before they are contained.
pub fn plan_jobs(
    config: &Config,
    connectors: &Connectors,
    jobs: Vec<Job>,
    discoveries: &[Discovery],
    id: PlanId,
    created_at: DateTime<Utc>,
) -> Result<Plan, EngineError> {
    let protected = config.protected.set();
    let mut actions = Vec::new();
    let mut notes = Vec::new();
    for job in &jobs {
        let policy = policy_for(config, job)?;
        let instances = instances_for(config, connectors, job)?;
        let timing = Timing::of(job, &policy);
        let mut found_anywhere = false;
        let subject_protected = job
            .subject
            .identifiers()
            .find_map(|i| protected.entry_for(i).map(|e| (i, e)));
        let mut job_actions: Vec<Action> = Vec::new();
        for name in not_searched_for_client(config, connectors, job) {
            notes.push(PlanNote {
                subject: job.subject.id.clone(),
                message: format!(
                    "not searched: {} ({}) does not take client jobs; check by hand what {} can reach there",
                    name,
                    connectors[&name].kind(),
                    job.subject.id
                ),
                connector: Some(name),
            });
        }
        for name in &instances {
            let Some(d) = discoveries
                .iter()
                .find(|d| &d.connector == name && d.subject == job.subject.id)
            else {
                continue;
            };
            notes.extend(d.notes.iter().map(|message| PlanNote {
                subject: job.subject.id.clone(),
                connector: Some(name.clone()),
                message: message.clone(),
            }));
            if !d.found {
                continue;
            }
            found_anywhere = true;
            let proposals = connectors[name].plan(&job.subject, d);
            if let Some((identifier, entry)) = subject_protected {
                notes.push(PlanNote {
                    subject: job.subject.id.clone(),
                    connector: Some(name.clone()),
                    message: format!(
                        "protected account {identifier}: left out {} action(s); the subject is listed in protected.accounts as {entry:?}",
                        proposals.len()
                    ),
                });
                continue;
            }
            let proposals = leave_out_protected(&protected, job, name, d, proposals, &mut notes);
            let made = Action::from_proposals(&job.id, name, d, proposals).map_err(|message| {
                EngineError::Contract {
                    connector: name.clone(),
                    message,
                }
            })?;
            for mut a in made {
                a.not_before = timing.not_before(&a);
                job_actions.push(a);
            }
        }
        if !found_anywhere {
            return Err(EngineError::UnknownSubject {
                subject: job.subject.id.clone(),
                searched: if instances.is_empty() {
                    "no connector applies".into()
                } else {
                    instances.join(", ")
                },
            });
        }
        order_phases(
            &mut job_actions,
            policy.phase_order == PhaseOrder::AcrossConnectors,
        );
        for a in &mut job_actions {
            timing.count_grace_from_effective_time(a);
        }
        actions.extend(job_actions);
        let client = job.subject.client_domain().is_some();
        for step in policy
            .manual
            .iter()
            .filter(|s| s.applies_to.includes(client))
        {
            let kind = ActionKind::from("manual_step");
            let key = ActionKey::derive(&job.id, MANUAL_CONNECTOR, &kind, &step.id);
            let mut params = BTreeMap::from([("title".to_string(), step.title.clone())]);
            if let Some(i) = &step.instructions {
                params.insert("instructions".into(), i.clone());
            }
            actions.push(Action {
                // Readable and unique across jobs: `manual.collect-laptop.1f2e3d4c`.
                id: ActionId(format!("manual.{}.{}", step.id, &key.0[..8])),
                job_id: job.id.clone(),
                connector: MANUAL_CONNECTOR.into(),
                key,
                kind,
                target: step.id.clone(),
                params,
                depends_on: Vec::new(),
                phase: Phase::Manual,
                not_before: None,
                grace: None,
                account: None,
                summary: format!("{} (awaiting acknowledgement)", step.title),
            });
        }
    }
    actions.sort_by(|a, b| {
        (&a.job_id, a.phase, &a.connector, &a.kind, &a.target).cmp(&(
            &b.job_id,
            b.phase,
            &b.connector,
            &b.kind,
            &b.target,
        ))
    });
    let snapshot = snapshot_of(discoveries);
    let fingerprint = Plan::fingerprint_of(&snapshot, &actions);
    Ok(Plan {
        format_version: PLAN_FORMAT_VERSION,
        id,
        created_at,
        jobs,
        snapshot,
        actions,
        notes,
        fingerprint,
    })
}

/// Discovers and plans jobs in one go (read-only): what `revokectl plan` and the daemon's
/// scheduler do.
pub async fn plan(
    config: &Config,
    connectors: &Connectors,
    jobs: Vec<Job>,
    id: PlanId,
    created_at: DateTime<Utc>,
) -> Result<Plan, EngineError> {
    let discoveries = discover(config, connectors, &jobs).await?;
    plan_jobs(config, connectors, jobs, &discoveries, id, created_at)
}

/// Whether a saved plan still matches the world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Staleness {
    Fresh,
    /// What changed since the plan was made, one line each.
    Stale(Vec<String>),
}

/// Re-discovers and re-plans a saved plan's jobs; the plan is fresh when the fingerprint matches.
pub async fn check_fresh(
    config: &Config,
    connectors: &Connectors,
    plan: &Plan,
) -> Result<Staleness, EngineError> {
    if plan.format_version != PLAN_FORMAT_VERSION {
        return Err(EngineError::PlanFormat {
            found: plan.format_version,
            expected: PLAN_FORMAT_VERSION,
        });
    }
    if !plan.fingerprint_is_valid() {
        return Err(EngineError::TamperedPlan);
    }
    let discoveries = discover(config, connectors, &plan.jobs).await?;
    let snapshot = snapshot_of(&discoveries);
    let mut changes: Vec<String> = plan
        .snapshot
        .diff(&snapshot)
        .iter()
        .map(ToString::to_string)
        .collect();
    match plan_jobs(
        config,
        connectors,
        plan.jobs.clone(),
        &discoveries,
        plan.id.clone(),
        plan.created_at,
    ) {
        Ok(now) if now.fingerprint == plan.fingerprint => return Ok(Staleness::Fresh),
        Ok(now) => {
            if changes.is_empty() {
                let before: BTreeSet<&ActionId> = plan.actions.iter().map(|a| &a.id).collect();
                let after: BTreeSet<&ActionId> = now.actions.iter().map(|a| &a.id).collect();
                for a in after.difference(&before) {
                    changes.push(format!(
                        "action {a} would now be planned (configuration changed)"
                    ));
                }
                for a in before.difference(&after) {
                    changes.push(format!(
                        "action {a} would no longer be planned (configuration changed)"
                    ));
                }
                if changes.is_empty() {
                    changes.push(
                        "the configuration changed the planned actions' parameters or timing"
                            .into(),
                    );
                }
            }
        }
        Err(e) => changes.push(e.to_string()),
    }
    Ok(Staleness::Stale(changes))
}
