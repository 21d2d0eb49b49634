//! The daemon's job queue from the command line: `jobs`, `approve`, `reject`, `cancel`,
//! `evidence` and `import`, embedded on the local store or through `--server`; and the
//! server-only forms of `status`, `show` and `ack`.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{anyhow, bail, Context as _};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use revoke_core::JobId;
use revoke_intake::{NormalizedEvent, RiskRules};
use revoke_store::{
    BatchDecision, BatchDetail, CancelTarget, JobBatch, JobQuery, JobState, ResultLine, StoreError,
};
use revoked::types::{
    BatchDecisionRequest, CancelAnswer, CancelRequest, JobDetail, JobSummary, Status, SubmitJob,
    Submitted,
};

use crate::context::{operator, Context};
use crate::remote::Remote;
use crate::render;
use crate::{EvidenceArg, Format};

const JOBS: [&str; 3] = ["api", "v1", "jobs"];

fn job_path<'a>(job: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut v = JOBS.to_vec();
    v.push(job);
    v.extend_from_slice(rest);
    v
}

/// Prints a value as pretty JSON (`json`), one compact line (`jsonl`) or YAML (`yaml`).
fn print_json(value: &impl serde::Serialize, output: Format) -> anyhow::Result<()> {
    match output {
        Format::Jsonl => outln!("{}", serde_json::to_string(value)?),
        _ => crate::out::document(value, output)?,
    }
    Ok(())
}

/// A store error about one job, said the way a person can act on.
fn job_error(job: &str, doing: &str, e: StoreError) -> anyhow::Error {
    match e {
        StoreError::NotFound(_) => anyhow!(
            "cannot {doing} job {job:?}: expected a job of the daemon's queue, found none with this id (`revokectl jobs` lists them)"
        ),
        StoreError::Conflict(why) => anyhow!("cannot {doing} job {job}: {why}"),
        other => anyhow!("cannot {doing} job {job}: {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Server-only: status, show, ack

/// `status` with `--server`: the queue (no job), or one job as `show` has it.
pub async fn remote_status(
    remote: &Remote,
    job: Option<&str>,
    output: Format,
) -> anyhow::Result<u8> {
    if let Some(job) = job {
        return remote_show(remote, job, output).await;
    }
    let status: Status = remote.get(&["api", "v1", "status"], &[]).await?;
    match output {
        Format::Table => render::queue_status(&status),
        _ => print_json(&status, output)?,
    }
    Ok(0)
}

/// `show JOB` with `--server`: the job, its progress and each action's outcome.
pub async fn remote_show(remote: &Remote, job: &str, output: Format) -> anyhow::Result<u8> {
    let detail: JobDetail = remote.get(&job_path(job, &[]), &[]).await?;
    match output {
        Format::Table => render::job_detail(&detail),
        _ => print_json(&detail, output)?,
    }
    Ok(0)
}

/// `ack JOB ACTION` with `--server`: the server records the token's name as who did it.
pub async fn remote_ack(
    remote: &Remote,
    job: &str,
    action: &str,
    by: Option<&str>,
) -> anyhow::Result<u8> {
    if by.is_some() {
        bail!("--by: expected no value with --server (the daemon records the API token's name as who acknowledged), found one");
    }
    let (_, line): (_, ResultLine) = remote
        .post(
            &job_path(job, &["actions", action, "ack"]),
            &serde_json::json!({}),
        )
        .await?;
    outln!(
        "acknowledged {} of job {job} ({})",
        line.action_id,
        line.outcome
    );
    Ok(0)
}

// ---------------------------------------------------------------------------------------------
// jobs, approve, reject, cancel, evidence

/// What `jobs` lists (every filter given must hold; several states: any of them).
#[derive(Debug, Clone, Default)]
pub struct JobsFilter {
    pub states: Vec<JobState>,
    pub subject: Option<String>,
    pub source: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl JobsFilter {
    /// The query parameters of `GET /api/v1/jobs` for this filter.
    fn params(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if !self.states.is_empty() {
            let states: Vec<&str> = self.states.iter().map(|s| s.as_str()).collect();
            q.push(("state", states.join(",")));
        }
        if let Some(s) = &self.subject {
            q.push(("subject", s.clone()));
        }
        if let Some(s) = &self.source {
            q.push(("source", s.clone()));
        }
        let rfc = |t: &DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        if let Some(t) = &self.since {
            q.push(("since", rfc(t)));
        }
        if let Some(t) = &self.until {
            q.push(("until", rfc(t)));
        }
        q
    }
}

/// `jobs`: every matching job (or the newest `limit`), read page by page (the API's `Link`
/// header, or the store's cursor), newest first.
pub async fn jobs(
    cfg: Option<&Path>,
    remote: Option<&Remote>,
    filter: &JobsFilter,
    limit: Option<u32>,
    output: Format,
) -> anyhow::Result<u8> {
    let want = limit.map(|n| n as usize);
    let page_size = |have: usize| -> u32 {
        let left = want.map_or(usize::MAX, |w| w.saturating_sub(have));
        left.min(JobQuery::MAX_LIMIT as usize) as u32
    };
    let mut list: Vec<JobSummary> = Vec::new();
    match remote {
        Some(r) => {
            let mut cursor: Option<String> = None;
            loop {
                let mut query = filter.params();
                query.push(("limit", page_size(list.len()).to_string()));
                if let Some(c) = cursor.take() {
                    query.push(("cursor", c));
                }
                let (page, next): (Vec<JobSummary>, _) = r.get_page(&JOBS, &query).await?;
                list.extend(page);
                match next {
                    Some(c) if want.is_none_or(|w| list.len() < w) => cursor = Some(c),
                    _ => break,
                }
            }
        }
        None => {
            if filter.since.zip(filter.until).is_some_and(|(s, u)| s >= u) {
                bail!("--until: expected a time after --since, found one at or before it");
            }
            let ctx = Context::load(cfg)?;
            let store = ctx.store().await?;
            let mut query = JobQuery {
                states: filter.states.clone(),
                subject: filter.subject.clone(),
                source: filter.source.clone(),
                since: filter.since,
                until: filter.until,
                ..JobQuery::default()
            };
            loop {
                query.limit = page_size(list.len());
                let page = store.list_jobs(&query).await?;
                list.extend(page.jobs.iter().map(JobSummary::of));
                match page.next {
                    Some(c) if want.is_none_or(|w| list.len() < w) => query.after = Some(c),
                    _ => break,
                }
            }
        }
    }
    match output {
        Format::Table => render::job_summaries(&list),
        Format::Json | Format::Yaml => print_json(&list, output)?,
        Format::Jsonl => {
            for j in &list {
                print_json(j, output)?;
            }
        }
    }
    Ok(0)
}

/// `approve` / `reject` a job held by the blast-radius guard.
pub async fn decide(
    cfg: Option<&Path>,
    remote: Option<&Remote>,
    job: &str,
    approve: bool,
    reason: Option<&str>,
    output: Format,
) -> anyhow::Result<u8> {
    let verb = if approve { "approve" } else { "reject" };
    let reason = reason.unwrap_or("");
    let summary: JobSummary = match remote {
        Some(r) => {
            let body = if reason.is_empty() {
                serde_json::json!({})
            } else {
                serde_json::json!({ "reason": reason })
            };
            r.post(&job_path(job, &[verb]), &body).await?.1
        }
        None => {
            let ctx = Context::load(cfg)?;
            let store = ctx.store().await?;
            let q = store
                .decide_job_because(
                    &JobId(job.to_string()),
                    approve,
                    reason,
                    &operator(),
                    Utc::now(),
                )
                .await
                .map_err(|e| job_error(job, verb, e))?;
            JobSummary::of(&q)
        }
    };
    match output {
        Format::Table => outln!(
            "{} job {} ({}): now {}",
            if approve { "approved" } else { "rejected" },
            summary.job_id,
            summary.subject,
            summary.state
        ),
        _ => print_json(&summary, output)?,
    }
    Ok(0)
}

pub async fn cancel(
    cfg: Option<&Path>,
    remote: Option<&Remote>,
    job: &str,
    reason: &str,
    output: Format,
) -> anyhow::Result<u8> {
    if reason.trim().is_empty() {
        bail!("--reason: expected why the job is cancelled, found an empty string");
    }
    let answer: CancelAnswer = match remote {
        Some(r) => {
            let body = CancelRequest {
                reason: reason.to_string(),
            };
            r.post(&job_path(job, &["cancel"]), &body).await?.1
        }
        None => {
            let ctx = Context::load(cfg)?;
            let store = ctx.store().await?;
            let job_id = JobId(job.to_string());
            let c = store
                .cancel_jobs(
                    &CancelTarget::Job(job_id.clone()),
                    reason,
                    None,
                    &operator(),
                    Utc::now(),
                )
                .await
                .map_err(|e| job_error(job, "cancel", e))?;
            CancelAnswer {
                job_id: job_id.0,
                cancelled_actions: c.actions.into_iter().map(|a| a.0).collect(),
            }
        }
    };
    match output {
        Format::Table => {
            outln!(
                "cancelled job {}: {} action(s) that had not started never will",
                answer.job_id,
                answer.cancelled_actions.len()
            );
            for a in &answer.cancelled_actions {
                outln!("  cancelled    {a}");
            }
        }
        _ => print_json(&answer, output)?,
    }
    Ok(0)
}

pub async fn evidence(
    cfg: Option<&Path>,
    remote: Option<&Remote>,
    job: &str,
    format: EvidenceArg,
    out: Option<&Path>,
) -> anyhow::Result<u8> {
    let text = match remote {
        Some(r) => {
            r.get_text(
                &job_path(job, &["evidence"]),
                &[("format", format.source().as_str().to_string())],
            )
            .await?
        }
        None => {
            let ctx = Context::load(cfg)?;
            let store = ctx.store().await?;
            let sla =
                std::time::Duration::from_secs(ctx.config.evidence.sla_hours.saturating_mul(3600));
            let ev = revoke_engine::evidence::collect(
                store.as_ref(),
                &JobId(job.to_string()),
                sla,
                Utc::now(),
            )
            .await
            .map_err(|e| match e {
                revoke_engine::EngineError::Store(s) => job_error(job, "export the evidence of", s),
                other => anyhow!("cannot export the evidence of job {job}: {other}"),
            })?;
            ev.render(format.format())
        }
    };
    let text = match format {
        EvidenceArg::Yaml => {
            let value: serde_json::Value =
                serde_json::from_str(&text).context("cannot read the evidence export as JSON")?;
            crate::out::yaml(&value)?
        }
        _ => text,
    };
    match out {
        Some(path) => {
            std::fs::write(path, &text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "wrote the evidence of job {job} ({}) to {}",
                format.as_str(),
                path.display()
            );
        }
        None => {
            out!("{text}");
            if !text.ends_with('\n') {
                outln!();
            }
        }
    }
    Ok(0)
}

// ---------------------------------------------------------------------------------------------
// import

/// One imported event and what its submission made.
#[derive(Debug, serde::Serialize)]
struct Imported {
    event_id: String,
    subject: String,
    #[serde(flatten)]
    submitted: Submitted,
}

fn subject_of(ev: &NormalizedEvent) -> String {
    ev.username
        .clone()
        .or_else(|| ev.email.clone())
        .or_else(|| ev.employee_id.clone())
        .or_else(|| ev.client_domain.clone())
        .unwrap_or_default()
}

/// `import FILE`: every line is read (and any bad one refused) before anything is submitted.
pub async fn import(
    cfg: Option<&Path>,
    remote: Option<&Remote>,
    file: &Path,
    timezone: &str,
    policy: &str,
    output: Format,
) -> anyhow::Result<u8> {
    let tz: Tz = timezone.trim().parse().map_err(|_| {
        anyhow!("--timezone: expected an IANA time zone such as Europe/Berlin or UTC, found {timezone:?}")
    })?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let name = file.display().to_string();
    let now = Utc::now();
    let mut done: Vec<Imported> = Vec::new();
    match remote {
        Some(r) => {
            // The daemon applies its own `[risk]` rules: only an explicit high_risk is sent.
            let rules = RiskRules {
                involuntary_is_high: false,
                high_reasons: Vec::new(),
            };
            let events = revoke_intake::parse_import(&name, &bytes, tz, &rules, now)?;
            let progress =
                crate::out::Progress::start(events.len(), "importing", "imported", "events");
            for ev in &events {
                let body = SubmitJob {
                    employee_id: ev.employee_id.clone(),
                    email: ev.email.clone(),
                    username: ev.username.clone(),
                    client_domain: ev.client_domain.clone(),
                    // A line without effective_at means now: leave it to the daemon, so that
                    // importing the file again sends the same body (a different body under the
                    // same idempotency key is a 409).
                    effective_at: (ev.effective_at != now.fixed_offset())
                        .then_some(ev.effective_at),
                    reason: ev.reason.clone(),
                    involuntary: ev.involuntary,
                    high_risk: ev.high_risk.then_some(true),
                    policy: Some(policy.to_string()),
                    idempotency_key: Some(format!("import:{}", ev.source_event_id)),
                };
                let (_, submitted): (_, Submitted) =
                    r.post(&JOBS, &body).await.with_context(|| {
                        format!(
                            "{name}: event {} ({}) was not submitted ({} of {} were)",
                            ev.source_event_id,
                            subject_of(ev),
                            done.len(),
                            events.len()
                        )
                    })?;
                let row = Imported {
                    event_id: ev.source_event_id.clone(),
                    subject: subject_of(ev),
                    submitted,
                };
                print_imported(&row, output)?;
                done.push(row);
                progress.inc(1);
            }
            progress.finish();
        }
        None => {
            let ctx = Context::load(cfg)?;
            let rules = revoked::risk_rules(&ctx.config);
            let events = revoke_intake::parse_import(&name, &bytes, tz, &rules, now)?;
            if ctx.config.policy(policy).is_none() {
                bail!(
                    "--policy: expected a configured policy ({}), found {policy:?}",
                    ctx.config
                        .policies
                        .keys()
                        .cloned()
                        .chain(std::iter::once(revoke_config::DEFAULT_POLICY.to_string()))
                        .collect::<std::collections::BTreeSet<_>>()
                        .into_iter()
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            let mut jobs = Vec::with_capacity(events.len());
            for ev in &events {
                let new = revoked::state::job_from_event(ev, policy).ok_or_else(|| {
                    anyhow!(
                        "{name}: event {}: expected an employee_id, email or username, found none",
                        ev.source_event_id
                    )
                })?;
                jobs.push((ev, new));
            }
            let store = ctx.store().await?;
            let guard = revoked::guard(&ctx.config);
            let actor = operator();
            let progress =
                crate::out::Progress::start(jobs.len(), "importing", "imported", "events");
            for (ev, new) in &jobs {
                let s = store
                    .submit_job(new, guard, &actor, Utc::now())
                    .await
                    .with_context(|| {
                        format!(
                            "{name}: event {} ({}) was not submitted ({} of {} were)",
                            ev.source_event_id,
                            subject_of(ev),
                            done.len(),
                            jobs.len()
                        )
                    })?;
                let row = Imported {
                    event_id: ev.source_event_id.clone(),
                    subject: subject_of(ev),
                    submitted: Submitted {
                        job_id: s.job_id.0,
                        state: s.state.as_str().to_string(),
                        duplicate: s.duplicate,
                    },
                };
                print_imported(&row, output)?;
                done.push(row);
                progress.inc(1);
            }
            progress.finish();
        }
    }
    match output {
        Format::Table => {
            let new = done.iter().filter(|d| !d.submitted.duplicate).count();
            let held = done
                .iter()
                .filter(|d| {
                    !d.submitted.duplicate
                        && d.submitted.state == JobState::AwaitingApproval.as_str()
                })
                .count();
            outln!(
                "{} event(s): {new} new job(s), {} already imported",
                done.len(),
                done.len() - new
            );
            if remote.is_none() && new > held {
                outln!("queued: `revokectl resume` (from cron) plans and runs each job once due, or the daemon does");
            }
            if held > 0 {
                outln!("{held} job(s) held by the blast-radius guard: review the batch with `revokectl batches`, then `revokectl approve --batch ID` or `revokectl reject --batch ID` (one job: `revokectl approve JOB`)");
            }
        }
        Format::Json | Format::Yaml => print_json(&done, output)?,
        Format::Jsonl => {}
    }
    Ok(0)
}

fn print_imported(row: &Imported, output: Format) -> anyhow::Result<()> {
    match output {
        Format::Table => outln!(
            "{:<38} {:<17} {:<9} {:<24} event {}",
            row.submitted.job_id,
            row.submitted.state,
            if row.submitted.duplicate {
                "duplicate"
            } else {
                "new"
            },
            row.subject,
            row.event_id
        ),
        Format::Jsonl => outln!("{}", serde_json::to_string(row)?),
        Format::Json | Format::Yaml => {}
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// batches: the jobs the blast-radius guard held together, decided as one unit

const BATCHES: [&str; 3] = ["api", "v1", "batches"];

/// The batch with what it contains, from the daemon or the local store.
async fn read_batch(
    cfg: Option<&Path>,
    remote: Option<&Remote>,
    id: &str,
    sample: u32,
) -> anyhow::Result<BatchDetail> {
    match remote {
        Some(r) => {
            r.get(
                &[BATCHES[0], BATCHES[1], BATCHES[2], id],
                &[("sample", sample.to_string())],
            )
            .await
        }
        None => {
            let ctx = Context::load(cfg)?;
            let store = ctx.store().await?;
            store.batch(id, sample).await?.ok_or_else(|| {
                anyhow!("cannot show batch {id:?}: expected a batch of held jobs, found none with this id (`revokectl batches --all` lists them)")
            })
        }
    }
}

/// `batches`: the open batches (or every one), or what one batch contains.
pub async fn batches(
    cfg: Option<&Path>,
    remote: Option<&Remote>,
    id: Option<&str>,
    all: bool,
    sample: u32,
    output: Format,
) -> anyhow::Result<u8> {
    if let Some(id) = id {
        let detail = read_batch(cfg, remote, id, sample).await?;
        match output {
            Format::Table => render::batch_detail(&detail),
            _ => print_json(&detail, output)?,
        }
        return Ok(0);
    }
    let list: Vec<JobBatch> = match remote {
        Some(r) => {
            let mut q = vec![("limit", "1000".to_string())];
            if all {
                q.push(("all", "true".to_string()));
            }
            r.get(&BATCHES, &q).await?
        }
        None => {
            let ctx = Context::load(cfg)?;
            let store = ctx.store().await?;
            store.batches(!all, 1000).await?
        }
    };
    match output {
        Format::Table => render::batches(&list, all),
        Format::Json | Format::Yaml => print_json(&list, output)?,
        Format::Jsonl => {
            for b in &list {
                print_json(b, output)?;
            }
        }
    }
    Ok(0)
}

/// `approve --batch ID` / `reject --batch ID`: shows what the batch holds, asks on a terminal
/// (or takes `--yes`), then decides exactly the jobs shown: if the batch changed meanwhile the
/// store refuses and nothing is decided.
pub async fn decide_batch(
    cfg: Option<&Path>,
    remote: Option<&Remote>,
    id: &str,
    approve: bool,
    yes: bool,
    output: Format,
) -> anyhow::Result<u8> {
    let verb = if approve { "approve" } else { "reject" };
    if !yes && !std::io::stdin().is_terminal() {
        bail!("refusing to {verb} batch {id} without a terminal to confirm on: review it with `revokectl batches {id}`, then pass --yes");
    }
    let detail = read_batch(cfg, remote, id, 10).await?;
    let n = detail.batch.awaiting_approval;
    if output == Format::Table {
        render::batch_detail(&detail);
    }
    if n == 0 {
        bail!("cannot {verb} batch {id}: expected jobs awaiting approval, found none");
    }
    if !yes {
        use std::io::{BufRead, Write};
        eprint!("\n{verb} these {n} job(s) of batch {id}? Only 'yes' will be accepted: ");
        std::io::stderr().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        if line.trim() != "yes" {
            outln!("nothing decided");
            return Ok(1);
        }
    }
    let decision: BatchDecision = match remote {
        Some(r) => {
            let body = BatchDecisionRequest { expect: Some(n) };
            r.post(&[BATCHES[0], BATCHES[1], BATCHES[2], id, verb], &body)
                .await?
                .1
        }
        None => {
            let ctx = Context::load(cfg)?;
            let store = ctx.store().await?;
            store
                .decide_batch(id, approve, Some(n), &operator(), Utc::now())
                .await
                .map_err(|e| match e {
                    StoreError::NotFound(_) => anyhow!("cannot {verb} batch {id:?}: expected a batch of held jobs, found none with this id (`revokectl batches --all` lists them)"),
                    StoreError::Conflict(why) => anyhow!("cannot {verb} batch: {why}"),
                    other => anyhow!("cannot {verb} batch {id}: {other}"),
                })?
        }
    };
    match output {
        Format::Table => outln!(
            "{} batch {}: {} job(s) now {}{}",
            if approve { "approved" } else { "rejected" },
            decision.batch.batch_id,
            decision.job_ids.len(),
            decision.state,
            if approve && remote.is_none() {
                " (`revokectl resume` plans and runs those that are due, or the daemon does)"
            } else {
                ""
            }
        ),
        _ => print_json(&decision, output)?,
    }
    Ok(0)
}
