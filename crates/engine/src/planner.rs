use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use revoke_config::Config;
use revoke_core::{
    Action, ActionId, ActionKey, ActionKind, Discovery, Finding, Job, Phase, Plan, PlanId,
    PlanNote, Risk, Snapshot, MANUAL_CONNECTOR, PLAN_FORMAT_VERSION,
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

/// The connector instances a job's policy applies, in name order.
fn instances_for(
    config: &Config,
    connectors: &Connectors,
    job: &Job,
) -> Result<Vec<String>, EngineError> {
    let policy = policy_for(config, job)?;
    let names: Vec<String> = match policy.connectors {
        Some(list) => list,
        None => connectors.keys().cloned().collect(),
    };
    let mut names: Vec<String> = names
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    names.retain(|n| connectors.contains_key(n));
    Ok(names)
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

/// The canonical snapshot of what discovery saw; an absent account is a fact too.
pub fn snapshot_of(discoveries: &[Discovery]) -> Snapshot {
    let mut findings = Vec::new();
    for d in discoveries {
        if d.found {
            findings.extend(d.findings.iter().cloned());
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

/// Turns jobs and what discovery found into a plan. Pure: the same inputs give the same plan
/// and the same fingerprint (`id` and `created_at` are carried, not hashed).
pub fn plan_jobs(
    config: &Config,
    connectors: &Connectors,
    jobs: Vec<Job>,
    discoveries: &[Discovery],
    id: PlanId,
    created_at: DateTime<Utc>,
) -> Result<Plan, EngineError> {
    let mut actions = Vec::new();
    let mut notes = Vec::new();
    for job in &jobs {
        let policy = policy_for(config, job)?;
        let instances = instances_for(config, connectors, job)?;
        let contain_at = match job.risk {
            Risk::High => None,
            Risk::Standard => Some(job.effective_at),
        };
        let delete_at =
            Some(job.effective_at + ChronoDuration::days(i64::from(policy.retention_days)));
        let mut found_anywhere = false;
        let subject_protected = job
            .subject
            .identifiers()
            .find(|i| config.protected.is_protected(i));
        for name in &instances {
            let Some(d) = discoveries
                .iter()
                .find(|d| &d.connector == name && d.subject == job.subject.id)
            else {
                continue;
            };
            if !d.found {
                continue;
            }
            found_anywhere = true;
            let proposals = connectors[name].plan(&job.subject, d);
            let protected = subject_protected.or_else(|| {
                proposals
                    .iter()
                    .map(|p| p.account.as_str())
                    .find(|a| config.protected.is_protected(a))
            });
            if let Some(account) = protected {
                notes.push(PlanNote {
                    subject: job.subject.id.clone(),
                    connector: Some(name.clone()),
                    message: format!(
                        "protected account {account}: left out {} action(s); it is listed in protected.accounts",
                        proposals.len()
                    ),
                });
                continue;
            }
            let ids: BTreeMap<(ActionKind, String), ActionId> = proposals
                .iter()
                .map(|p| {
                    (
                        (p.kind.clone(), p.target.clone()),
                        ActionId::derive(&job.id, name, &p.kind, &p.target),
                    )
                })
                .collect();
            for p in proposals {
                let not_before = match (p.delay, p.phase) {
                    (Some(grace), _) => ChronoDuration::from_std(grace)
                        .ok()
                        .and_then(|g| job.effective_at.checked_add_signed(g))
                        .or(delete_at),
                    (None, Phase::Delete) => delete_at,
                    (None, Phase::Manual | Phase::Verify) => None,
                    (None, Phase::Contain | Phase::Transfer | Phase::Revoke) => contain_at,
                };
                let mut depends_on: Vec<ActionId> =
                    p.after.iter().filter_map(|k| ids.get(k).cloned()).collect();
                depends_on.sort();
                depends_on.dedup();
                actions.push(Action {
                    id: ids[&(p.kind.clone(), p.target.clone())].clone(),
                    job_id: job.id.clone(),
                    connector: name.clone(),
                    key: ActionKey::derive(&job.id, name, &p.kind, &p.target),
                    kind: p.kind,
                    target: p.target,
                    params: p.params,
                    depends_on,
                    phase: p.phase,
                    not_before,
                    summary: p.summary,
                });
            }
        }
        if !found_anywhere && !notes.iter().any(|n| n.subject == job.subject.id) {
            return Err(EngineError::UnknownSubject {
                subject: job.subject.id.clone(),
                searched: if instances.is_empty() {
                    "no connector applies".into()
                } else {
                    instances.join(", ")
                },
            });
        }
        for step in &policy.manual {
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
