use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _};
use chrono::{DateTime, NaiveDate, Utc};
use revoke_core::{ActionId, Job, JobId, Plan, PlanId, Risk, Subject};
use revoke_engine::{
    check_fresh, discover, plan_jobs, EngineError, Executor, RunSummary, Staleness,
};
use revoke_store::{verify_chain, ActionState, Store, StoreError};

use crate::context::{operator, Context};
use crate::remote::{resolve_token, Remote};
use crate::{queue, render, tools};
use crate::{AuditCommand, Cli, Command, ConfigCommand, Format, JobArgs, RiskArg, TokenCommand};

/// Commands that work on the local store only, refused with `--server` rather than quietly
/// answering from a different place than the one asked.
fn local_only(server: bool, what: &str) -> anyhow::Result<()> {
    if server {
        bail!("`revokectl {what}` works on the local store: expected no --server (or REVOKE_SERVER), found one; run it where the store is, or use `revokectl --server URL jobs|show|status|evidence`");
    }
    Ok(())
}

/// The server of an arm guarded by `remote.is_some()`.
fn required(remote: Option<&Remote>) -> anyhow::Result<&Remote> {
    remote.ok_or_else(|| anyhow!("internal error: expected a server, found none"))
}

pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    let cfg = cli.config.as_deref();
    // Generated from the clap definitions: no configuration, no server.
    match &cli.command {
        Command::Completions { shell } => return crate::generate::completions(*shell),
        Command::Man { dir } => return crate::generate::man(dir.as_deref()),
        _ => {}
    }
    // Only the commands that can use the API read --server and the token (a stray
    // REVOKE_SERVER or token file does not break `plan`, `token` or `send`).
    let uses_api = matches!(
        cli.command,
        Command::Jobs { .. }
            | Command::Batches { .. }
            | Command::Approve { .. }
            | Command::Reject { .. }
            | Command::Cancel { .. }
            | Command::Evidence { .. }
            | Command::Import { .. }
            | Command::Status { .. }
            | Command::Show { .. }
            | Command::Ack { .. }
    );
    let server = cli.server.is_some();
    let remote = match &cli.server {
        Some(server) if uses_api => Some(Remote::new(
            server,
            resolve_token(cli.token.clone(), cli.token_file.as_deref())?,
        )?),
        _ => None,
    };
    let remote = remote.as_ref();
    match cli.command {
        Command::Jobs {
            state,
            subject,
            source,
            since,
            until,
            limit,
            output,
        } => {
            let filter = queue::JobsFilter {
                states: state.into_iter().map(crate::JobStateArg::state).collect(),
                subject,
                source,
                since,
                until,
            };
            queue::jobs(cfg, remote, &filter, limit, output).await
        }
        Command::Batches {
            id,
            all,
            sample,
            output,
        } => queue::batches(cfg, remote, id.as_deref(), all, sample, output).await,
        Command::Approve {
            job,
            batch,
            reason,
            yes,
            output,
        } => {
            let held = Held {
                job,
                batch,
                reason,
                yes,
            };
            decide(cfg, remote, held, true, output).await
        }
        Command::Reject {
            job,
            batch,
            reason,
            yes,
            output,
        } => {
            let held = Held {
                job,
                batch,
                reason,
                yes,
            };
            decide(cfg, remote, held, false, output).await
        }
        Command::Cancel {
            job,
            reason,
            output,
        } => queue::cancel(cfg, remote, &job, &reason, output).await,
        Command::Evidence { job, output, out } => {
            queue::evidence(cfg, remote, &job, output, out.as_deref()).await
        }
        Command::Import {
            file,
            timezone,
            policy,
            output,
        } => queue::import(cfg, remote, &file, &timezone, &policy, output).await,
        Command::Token {
            command:
                TokenCommand::New {
                    name,
                    scope,
                    output,
                },
        } => tools::token_new(&name, scope, output),
        Command::Token {
            command: TokenCommand::Hash,
        } => tools::token_hash(),
        Command::Send(args) => tools::send(args).await,
        Command::Status { job, output } if remote.is_some() => {
            queue::remote_status(required(remote)?, job.as_deref(), output).await
        }
        Command::Show { target, output } if remote.is_some() && !Path::new(&target).exists() => {
            queue::remote_show(required(remote)?, &target, output).await
        }
        Command::Ack { job, action, by } if remote.is_some() => {
            queue::remote_ack(required(remote)?, &job, &action, by.as_deref()).await
        }
        cmd @ Command::Apply { .. } => {
            local_only(server, "apply")?;
            local(cfg, cmd).await
        }
        cmd @ Command::Results { .. } => {
            local_only(server, "results")?;
            local(cfg, cmd).await
        }
        cmd @ Command::Verify { .. } => {
            local_only(server, "verify")?;
            local(cfg, cmd).await
        }
        cmd @ Command::Resume { .. } => {
            local_only(server, "resume")?;
            local(cfg, cmd).await
        }
        cmd @ Command::Audit { .. } => {
            local_only(server, "audit verify")?;
            local(cfg, cmd).await
        }
        other => local(cfg, other).await,
    }
}

/// What `approve` / `reject` decides: one job (with why), or a batch (`yes`: without asking).
struct Held {
    job: Option<String>,
    batch: Option<String>,
    reason: Option<String>,
    yes: bool,
}

/// `approve` / `reject`: one job, or every held job of a batch.
async fn decide(
    cfg: Option<&Path>,
    remote: Option<&Remote>,
    held: Held,
    approve: bool,
    output: Format,
) -> anyhow::Result<u8> {
    let Held {
        job,
        batch,
        reason,
        yes,
    } = held;
    match (job, batch) {
        (_, Some(b)) => queue::decide_batch(cfg, remote, &b, approve, yes, output).await,
        (Some(j), None) => queue::decide(cfg, remote, &j, approve, reason.as_deref(), output).await,
        (None, None) => bail!("expected a job id or --batch ID, found neither"),
    }
}

/// The embedded commands, as they were before `--server`.
async fn local(cfg: Option<&Path>, command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Plan {
            job,
            out,
            detailed_exitcode,
            output,
        } => plan(cfg, &job, out.as_deref(), detailed_exitcode, output).await,
        Command::Apply {
            plan: Some(file),
            auto_approve,
            output,
            ..
        } => apply_file(cfg, &file, auto_approve, output).await,
        Command::Apply {
            plan: None,
            users,
            client_domains,
            policy,
            reason,
            effective,
            risk,
            auto_approve,
            output,
        } => {
            let job = JobArgs {
                users,
                client_domains,
                policy,
                reason,
                effective,
                risk,
            };
            apply_users(cfg, &job, auto_approve, output).await
        }
        Command::Show { target, output } => show(cfg, &target, output).await,
        Command::Status { job, output } => status(cfg, job.as_deref(), output).await,
        Command::Results { job } => results(cfg, job.as_deref()).await,
        Command::Verify { job } => verify(cfg, &job).await,
        Command::Ack { job, action, by } => ack(cfg, &job, &action, by).await,
        Command::Resume { output } => resume(cfg, output).await,
        Command::Audit {
            command: AuditCommand::Verify,
        } => audit_verify(cfg).await,
        Command::Connector {
            command: crate::ConnectorCommand::Check(args),
        } => crate::connector_check::run(args).await,
        Command::Config {
            command: ConfigCommand::Check { connect },
        } => {
            let ctx = Context::load(cfg)?;
            outln!(
                "configuration is valid: {} connector(s): {}",
                ctx.connectors.len(),
                ctx.connectors
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if !connect {
                return Ok(0);
            }
            let mut failed = 0;
            for (name, c) in &ctx.connectors {
                match c.check().await {
                    Ok(()) => outln!("  {name}: ok"),
                    Err(e) => {
                        failed += 1;
                        outln!("  {name}: {} {e}", e.class.name());
                    }
                }
            }
            Ok(if failed > 0 { 1 } else { 0 })
        }
        Command::Jobs { .. }
        | Command::Batches { .. }
        | Command::Approve { .. }
        | Command::Reject { .. }
        | Command::Cancel { .. }
        | Command::Evidence { .. }
        | Command::Import { .. }
        | Command::Token { .. }
        | Command::Send { .. }
        | Command::Completions { .. }
        | Command::Man { .. } => {
            bail!("internal error: expected this command dispatched before the embedded ones")
        }
    }
}

fn parse_time(s: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        if let Some(t) = d.and_hms_opt(0, 0, 0) {
            return Ok(t.and_utc());
        }
    }
    bail!("--effective: expected an RFC 3339 time (2026-12-01T17:00:00Z) or a date (2026-12-01), found {s:?}")
}

fn jobs_from(args: &JobArgs) -> anyhow::Result<Vec<Job>> {
    let effective_at = match &args.effective {
        Some(s) => parse_time(s)?,
        None => Utc::now(),
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut subjects = Vec::new();
    for u in &args.users {
        let u = u.trim();
        if u.is_empty() {
            bail!("--user: expected an identifier, found an empty string");
        }
        revoke_core::identifier::check("--user", u)?;
        if !seen.insert(u.to_string()) {
            continue;
        }
        let mut subject = Subject::new(u);
        if u.contains('@') {
            subject.email = Some(u.to_string());
        }
        subjects.push(subject);
    }
    for d in &args.client_domains {
        let domain = revoke_core::ClientDomain::parse(d.trim()).map_err(|e| {
            anyhow::anyhow!(
                "--client-domain: expected {}, found {:?}",
                e.expected,
                e.found
            )
        })?;
        if seen.insert(format!("client:{domain}")) {
            subjects.push(Subject::client(domain));
        }
    }
    let mut jobs = Vec::new();
    for subject in subjects {
        jobs.push(Job {
            id: JobId(uuid::Uuid::new_v4().to_string()),
            subject,
            reason: args.reason.clone(),
            effective_at,
            risk: match args.risk {
                RiskArg::Standard => Risk::Standard,
                RiskArg::High => Risk::High,
            },
            source: "cli".into(),
            requested_by: operator(),
            policy: args.policy.clone(),
        });
    }
    Ok(jobs)
}

/// A plan for the leavers named on the command line, and a line for each one an earlier job
/// already offboarded and for whom nothing is left to remove (they get no new job).
struct Planned {
    plan: Option<Plan>,
    already: Vec<String>,
}

/// The earlier job of `subject`, newest first, matched on any identifier either job carried.
fn earlier_job<'a>(
    subject: &Subject,
    earlier: &'a [revoke_store::JobRecord],
) -> Option<&'a revoke_store::JobRecord> {
    let mine: std::collections::BTreeSet<String> = subject
        .identifiers()
        .map(revoke_core::canonical_identifier)
        .collect();
    earlier.iter().find(|j| {
        j.job
            .subject
            .identifiers()
            .any(|i| mine.contains(&revoke_core::canonical_identifier(i)))
    })
}

async fn make_plan(ctx: &Context, args: &JobArgs) -> anyhow::Result<Planned> {
    let jobs = jobs_from(args)?;
    let discoveries = discover(&ctx.config, &ctx.connectors, &jobs).await?;
    let store = ctx.existing_store().await?;
    let earlier = match &store {
        Some(store) => store.jobs().await?,
        None => Vec::new(),
    };
    // The accounts earlier jobs' actions are pinned to: the same account is the same leaver,
    // whichever identifier either job was raised with. Only the newest plans are read (a leaver
    // offboarded long ago and missed here gets a new job, which finds its work already done).
    const RECENT_PLANS: usize = 500;
    let mut pinned_by: std::collections::BTreeMap<(String, String), usize> = Default::default();
    if let Some(store) = &store {
        let mut plans_seen = std::collections::BTreeSet::new();
        for j in &earlier {
            if !plans_seen.insert(j.plan_id.clone()) {
                continue;
            }
            if plans_seen.len() > RECENT_PLANS {
                break;
            }
            for r in store.actions(&j.plan_id).await? {
                if let (Some(pin), Some(i)) = (
                    &r.action.account,
                    earlier.iter().position(|e| e.job.id == r.action.job_id),
                ) {
                    let slot = pinned_by
                        .entry((r.action.connector.clone(), pin.id.clone()))
                        .or_insert(i);
                    *slot = (*slot).min(i);
                }
            }
        }
    }
    let mut already = Vec::new();
    let mut keep = Vec::new();
    for job in jobs {
        let by_account = discoveries
            .iter()
            .filter(|d| d.subject == job.subject.id)
            .flat_map(|d| {
                d.accounts
                    .iter()
                    .map(move |a| (d.connector.clone(), a.id.clone()))
            })
            .filter_map(|k| pinned_by.get(&k).copied())
            .min()
            .map(|i| &earlier[i]);
        let before = by_account.or_else(|| earlier_job(&job.subject, &earlier));
        let (Some(before), Some(store)) = (before, &store) else {
            keep.push(job);
            continue;
        };
        // What the earlier job removed or still will: (connector, kind, target).
        let mut scheduled = 0usize;
        let mut covered = std::collections::BTreeSet::new();
        for r in store.actions(&before.plan_id).await? {
            if r.action.job_id != before.job.id || r.action.is_manual() {
                continue;
            }
            if !r.state.is_final() {
                scheduled += 1;
            }
            if r.state.is_success() || !r.state.is_final() {
                covered.insert((r.action.connector, r.action.kind, r.action.target));
            }
        }
        // Nothing found anywhere, or nothing found that the earlier job does not already
        // remove: that job is the leaver's offboarding, and a second would repeat it.
        let found = discoveries
            .iter()
            .any(|d| d.subject == job.subject.id && d.found);
        let nothing_new = !found
            || plan_jobs(
                &ctx.config,
                &ctx.connectors,
                vec![job.clone()],
                &discoveries,
                PlanId("probe".into()),
                Utc::now(),
            )
            .map(|p| {
                p.notes.is_empty()
                    && p.actions.iter().filter(|a| !a.is_manual()).all(|a| {
                        covered.contains(&(a.connector.clone(), a.kind.clone(), a.target.clone()))
                    })
            })
            .unwrap_or(false);
        let when = before
            .created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        if nothing_new {
            let rest = match scheduled {
                0 => "nothing left to remove".to_string(),
                n => format!(
                    "{n} action(s) of it still scheduled (`revokectl status {}`)",
                    before.job.id
                ),
            };
            already.push(format!(
                "{}: already offboarded (job {}, recorded {when}); {rest}",
                job.subject.id, before.job.id
            ));
        } else {
            eprintln!(
                "note: {} also has an earlier job {} (recorded {when}); planning what it does not cover",
                job.subject.id, before.job.id
            );
            keep.push(job);
        }
    }
    let plan = if keep.is_empty() {
        None
    } else {
        Some(plan_jobs(
            &ctx.config,
            &ctx.connectors,
            keep,
            &discoveries,
            PlanId(uuid::Uuid::new_v4().to_string()),
            Utc::now(),
        )?)
    };
    Ok(Planned { plan, already })
}

async fn plan(
    cfg: Option<&Path>,
    args: &JobArgs,
    out: Option<&Path>,
    detailed: bool,
    output: Format,
) -> anyhow::Result<u8> {
    let ctx = Context::load(cfg)?;
    let planned = make_plan(&ctx, args).await?;
    for line in &planned.already {
        eprintln!("{line}");
    }
    let Some(plan) = planned.plan else {
        return Ok(0);
    };
    match output {
        Format::Table => render::plan(&plan, Utc::now()),
        _ => crate::out::document(&plan, output)?,
    }
    if let Some(path) = out {
        write_plan(&plan, path)?;
        if output == Format::Table {
            outln!(
                "\nSaved the plan to {}. Apply exactly this plan with: revokectl apply {}",
                path.display(),
                path.display()
            );
        }
    }
    let changes = plan.actions.iter().any(|a| !a.is_manual());
    Ok(if detailed && changes { 2 } else { 0 })
}

fn write_plan(plan: &Plan, path: &Path) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(plan)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text + "\n").with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn read_plan(path: &Path) -> anyhow::Result<Plan> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read plan file {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let version = v
        .get("format_version")
        .and_then(|x| x.as_u64())
        .unwrap_or(0);
    if version != u64::from(revoke_core::PLAN_FORMAT_VERSION) {
        bail!(
            "{}: plan format {version} is not supported: expected {}",
            path.display(),
            revoke_core::PLAN_FORMAT_VERSION
        );
    }
    let plan: Plan = serde_json::from_value(v)
        .with_context(|| format!("{} is not a revoked plan", path.display()))?;
    if !plan.fingerprint_is_valid() {
        bail!("{}: the plan's fingerprint does not match its content: it was edited after it was made; make a new plan", path.display());
    }
    Ok(plan)
}

/// Fails before any work is done when confirmation will be impossible.
fn refuse_without_terminal(auto_approve: bool) -> anyhow::Result<()> {
    if !auto_approve && !std::io::stdin().is_terminal() {
        bail!("refusing to apply without a terminal to confirm on: pass --auto-approve to apply non-interactively");
    }
    Ok(())
}

/// Asks on the terminal; refuses without one unless auto-approved.
fn confirm(auto_approve: bool, what: &str) -> anyhow::Result<bool> {
    if auto_approve {
        return Ok(true);
    }
    refuse_without_terminal(false)?;
    out!("\n{what}\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim() == "yes")
}

async fn apply_file(
    cfg: Option<&Path>,
    file: &Path,
    auto_approve: bool,
    output: Format,
) -> anyhow::Result<u8> {
    refuse_without_terminal(auto_approve)?;
    let plan = read_plan(file)?;
    let ctx = Context::load(cfg)?;
    let exec = ctx.executor().await?;
    let store = ctx.store().await?;
    if store.plan(&plan.id).await?.is_some() {
        eprintln!("plan {} is already recorded: resuming what is unfinished (nothing recorded as done is sent again)", plan.id);
        return execute(&exec, &store, &plan.id, output).await;
    }
    match check_fresh(&ctx.config, &ctx.connectors, &plan).await? {
        Staleness::Fresh => {}
        Staleness::Stale(changes) => {
            let list: Vec<String> = changes.iter().map(|c| format!("  - {c}")).collect();
            bail!(
                "the plan is stale: the world changed since it was made at {}:\n{}\nmake a new plan with `revokectl plan` and review it",
                plan.created_at.to_rfc3339(),
                list.join("\n")
            );
        }
    }
    review_and_apply(&exec, &store, &plan, auto_approve, output).await
}

async fn apply_users(
    cfg: Option<&Path>,
    args: &JobArgs,
    auto_approve: bool,
    output: Format,
) -> anyhow::Result<u8> {
    refuse_without_terminal(auto_approve)?;
    let ctx = Context::load(cfg)?;
    let planned = make_plan(&ctx, args).await?;
    for line in &planned.already {
        eprintln!("{line}");
    }
    let Some(plan) = planned.plan else {
        return Ok(0);
    };
    let exec = ctx.executor().await?;
    let store = ctx.store().await?;
    review_and_apply(&exec, &store, &plan, auto_approve, output).await
}

/// Shows the plan, asks for confirmation (unless auto-approved), then records and runs it.
async fn review_and_apply(
    exec: &Executor,
    store: &Arc<dyn Store>,
    plan: &Plan,
    auto_approve: bool,
    output: Format,
) -> anyhow::Result<u8> {
    if output == Format::Table {
        render::plan(plan, Utc::now());
    }
    if !confirm(
        auto_approve,
        &format!("Apply this plan ({} actions)?", plan.actions.len()),
    )? {
        outln!("Apply cancelled.");
        return Ok(1);
    }
    record_and_execute(exec, store, plan, output).await
}

async fn record_and_execute(
    exec: &Executor,
    store: &Arc<dyn Store>,
    plan: &Plan,
    output: Format,
) -> anyhow::Result<u8> {
    match exec.record(plan).await {
        Ok(()) => {}
        Err(EngineError::Store(StoreError::Conflict(why))) => {
            if store.plan(&plan.id).await?.is_none() {
                bail!("cannot record plan {}: {why}", plan.id);
            }
            eprintln!("plan {} was recorded by another run meanwhile: running it alongside (leases keep each action to one executor)", plan.id);
        }
        Err(e) => return Err(e.into()),
    }
    execute(exec, store, &plan.id, output).await
}

/// Runs a recorded plan, printing results as they happen, then the summary.
async fn execute(
    exec: &Executor,
    store: &Arc<dyn Store>,
    plan: &PlanId,
    output: Format,
) -> anyhow::Result<u8> {
    let progress = run_progress(store, std::slice::from_ref(plan)).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let exec = exec.clone().with_events(tx);
    let plan_id = plan.clone();
    let runner = tokio::spawn(async move { exec.run_plan(&plan_id).await });
    while let Some(ev) = rx.recv().await {
        progress.inc(render::event(&ev, output));
    }
    progress.finish();
    let summary = runner
        .await
        .map_err(|e| anyhow!("executor stopped: {e}"))??;
    let records = store.actions(plan).await?;
    if matches!(output, Format::Jsonl | Format::Yaml) {
        // Results that did not finish in this run (scheduled, awaiting acknowledgement).
        for r in records
            .iter()
            .filter(|r| !r.state.is_final() || r.state == ActionState::AwaitingAck)
        {
            crate::out::item(&r.result_line(), output)?;
        }
    } else {
        render::summary(&summary, &records, Utc::now());
    }
    Ok(if summary.has_problems() { 1 } else { 0 })
}

async fn job_plan(store: &Arc<dyn Store>, job: &str) -> anyhow::Result<PlanId> {
    store
        .plan_of_job(&JobId(job.to_string()))
        .await?
        .ok_or_else(|| anyhow!("unknown job {job:?}: `revokectl status` lists the recorded jobs"))
}

async fn show(cfg: Option<&Path>, target: &str, output: Format) -> anyhow::Result<u8> {
    let path = Path::new(target);
    if path.exists() {
        let plan = read_plan(path)?;
        match output {
            Format::Table => render::plan(&plan, Utc::now()),
            _ => crate::out::document(&plan, output)?,
        }
        return Ok(0);
    }
    let ctx = Context::load(cfg)?;
    let store = ctx.store().await?;
    let plan_id = job_plan(&store, target).await?;
    let plan = store
        .plan(&plan_id)
        .await?
        .ok_or_else(|| anyhow!("plan {plan_id} of job {target} is missing from the store"))?;
    match output {
        Format::Table => {
            render::plan(&plan, Utc::now());
            render::records(&store.actions(&plan_id).await?);
        }
        _ => crate::out::document(&plan, output)?,
    }
    Ok(0)
}

async fn status(cfg: Option<&Path>, job: Option<&str>, output: Format) -> anyhow::Result<u8> {
    let ctx = Context::load(cfg)?;
    let store = ctx.store().await?;
    let now = Utc::now();
    match job {
        Some(job) => {
            let plan = job_plan(&store, job).await?;
            let records: Vec<_> = store
                .actions(&plan)
                .await?
                .into_iter()
                .filter(|r| r.action.job_id.0 == job)
                .collect();
            match output {
                Format::Table => {
                    render::records(&records);
                    render::summary(&RunSummary::from_records(&records, now), &records, now);
                }
                _ => crate::out::document(
                    &records.iter().map(|r| r.result_line()).collect::<Vec<_>>(),
                    output,
                )?,
            }
        }
        None => {
            let mut rows = Vec::new();
            for j in store.jobs().await? {
                let records: Vec<_> = store
                    .actions(&j.plan_id)
                    .await?
                    .into_iter()
                    .filter(|r| r.action.job_id == j.job.id)
                    .collect();
                rows.push((j, RunSummary::from_records(&records, now)));
            }
            match output {
                Format::Table => render::jobs(&rows),
                _ => {
                    let v: Vec<_> = rows
                        .iter()
                        .map(|(j, s)| serde_json::json!({ "job": j.job, "plan_id": j.plan_id, "created_at": j.created_at, "summary": s }))
                        .collect();
                    crate::out::document(&v, output)?;
                }
            }
        }
    }
    Ok(0)
}

async fn results(cfg: Option<&Path>, job: Option<&str>) -> anyhow::Result<u8> {
    let ctx = Context::load(cfg)?;
    let store = ctx.store().await?;
    let plans: Vec<PlanId> = match job {
        Some(j) => vec![job_plan(&store, j).await?],
        None => {
            let mut p: Vec<PlanId> = store.jobs().await?.into_iter().map(|j| j.plan_id).collect();
            p.dedup();
            p
        }
    };
    let mut out = std::io::stdout().lock();
    for p in plans {
        for r in store.actions(&p).await? {
            if job.is_none_or(|j| r.action.job_id.0 == j) {
                writeln!(out, "{}", serde_json::to_string(&r.result_line())?)?;
            }
        }
    }
    Ok(0)
}

async fn verify(cfg: Option<&Path>, job: &str) -> anyhow::Result<u8> {
    let ctx = Context::load(cfg)?;
    let store = ctx.store().await?;
    let plan = job_plan(&store, job).await?;
    let exec = ctx.executor().await?;
    let verdicts = exec
        .verify_plan(&plan, Some(&JobId(job.to_string())))
        .await?;
    let mut bad = 0;
    for (r, v) in &verdicts {
        if !matches!(v, revoke_core::Verdict::Confirmed) {
            bad += 1;
        }
        outln!(
            "{:<12} {:<40} {}",
            v.to_string().split(':').next().unwrap_or(""),
            r.action.id,
            v
        );
    }
    outln!("{} action(s) verified, {bad} not confirmed", verdicts.len());
    Ok(if bad > 0 { 1 } else { 0 })
}

async fn ack(
    cfg: Option<&Path>,
    job: &str,
    action: &str,
    by: Option<String>,
) -> anyhow::Result<u8> {
    let ctx = Context::load(cfg)?;
    let store = ctx.store().await?;
    let by = by.unwrap_or_else(operator);
    let job_id = JobId(job.to_string());
    let plan = job_plan(&store, job).await?;
    // A manual step may be named by its action id or by its step id from config.
    let action_id = store
        .actions(&plan)
        .await?
        .into_iter()
        .map(|r| r.action)
        .find(|a| a.job_id == job_id && (a.id.0 == action || (a.is_manual() && a.target == action)))
        .map(|a| a.id)
        .unwrap_or_else(|| ActionId(action.to_string()));
    // The store audits the acknowledgement (actor `by`) in the same transaction.
    match store
        .acknowledge(&job_id, &action_id, &by, Utc::now())
        .await
    {
        Ok(()) => {}
        Err(StoreError::NotFound(what)) => {
            bail!("cannot acknowledge: {what} not found (see `revokectl status {job}`)")
        }
        Err(StoreError::Conflict(why)) => bail!("cannot acknowledge {action}: {why}"),
        Err(e) => return Err(e.into()),
    }
    outln!("acknowledged {action_id} of job {job} (by {by})");
    Ok(0)
}

async fn resume(cfg: Option<&Path>, output: Format) -> anyhow::Result<u8> {
    let ctx = Context::load(cfg)?;
    let store = ctx.store().await?;
    let exec = ctx.executor().await?;
    // The daemon's queue first: jobs that came due (imported, or received while no daemon ran)
    // are planned as the scheduler plans them, and run below with everything else that is due.
    let due = crate::due::plan_due(&ctx, &store, exec.owner()).await?;
    let mut code = report_due(&due, output);
    let now = Utc::now();
    // Plans with applied actions an earlier run left unverified (killed before reading them back).
    let mut plans: Vec<PlanId> = Vec::new();
    for r in store.unverified(None, now).await? {
        if !plans.contains(&r.plan_id) {
            plans.push(r.plan_id);
        }
    }
    for j in store.jobs().await? {
        if plans.contains(&j.plan_id) {
            continue;
        }
        let records = store.actions(&j.plan_id).await?;
        if records.iter().any(|r| {
            matches!(r.state, ActionState::Pending | ActionState::Running) && r.action.is_due(now)
        }) {
            plans.push(j.plan_id);
        }
    }
    if plans.is_empty() {
        let stats = store.queue_stats(now).await?;
        let mut waiting = Vec::new();
        if stats.scheduled_jobs > 0 {
            waiting.push(format!(
                "{} queued job(s) wait for their time",
                stats.scheduled_jobs
            ));
        }
        if stats.awaiting_approval > 0 {
            waiting.push(format!(
                "{} wait for approval (`revokectl batches`)",
                stats.awaiting_approval
            ));
        }
        if waiting.is_empty() {
            outln!("nothing is due");
        } else {
            outln!("nothing is due; {}", waiting.join(", "));
        }
        return Ok(code);
    }
    if output == Format::Table {
        outln!("resuming {} plan(s)", plans.len());
    }
    code = code.max(execute_plans(&exec, &store, &plans, output).await?);
    Ok(code)
}

/// Says which queued jobs `resume` planned, and which it could not (exit code 1 then).
fn report_due(due: &crate::due::DuePlanned, output: Format) -> u8 {
    let line = |s: String| match output {
        Format::Table => outln!("{s}"),
        // Standard output stays one JSON object per action.
        _ => eprintln!("{s}"),
    };
    for (q, plan, n) in &due.planned {
        line(format!(
            "planned job {} ({}, due {}): {n} action(s), plan {plan}",
            q.job.id,
            q.job.subject.id,
            q.due_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }
    for (q, error, at) in &due.retry {
        line(format!(
            "job {} ({}): planning failed, will be tried again after {}: {error}",
            q.job.id,
            q.job.subject.id,
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }
    for (q, error) in &due.failed {
        line(format!(
            "job {} ({}): planning failed for good: {error}",
            q.job.id, q.job.subject.id
        ));
    }
    for (q, error) in &due.not_recorded {
        line(format!(
            "job {} ({}): not recorded, planned again once its claim runs out: {error}",
            q.job.id, q.job.subject.id
        ));
    }
    u8::from(!due.retry.is_empty() || !due.failed.is_empty() || !due.not_recorded.is_empty())
}

/// Plans `execute_plans` runs at once (their actions share the executor's per-connector limits).
const PLANS_AT_ONCE: usize = 16;

/// Runs several recorded plans side by side with one executor (each run reads back only its own
/// plan's actions), printing results as they happen, then one summary.
async fn execute_plans(
    exec: &Executor,
    store: &Arc<dyn Store>,
    plans: &[PlanId],
    output: Format,
) -> anyhow::Result<u8> {
    let progress = run_progress(store, plans).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let gate = Arc::new(tokio::sync::Semaphore::new(PLANS_AT_ONCE));
    let mut runs = tokio::task::JoinSet::new();
    {
        let exec = exec.clone().with_events(tx);
        for p in plans {
            let (exec, gate, p) = (exec.clone(), gate.clone(), p.clone());
            runs.spawn(async move {
                let _turn = gate.acquire_owned().await;
                exec.run_plan(&p).await
            });
        }
    }
    // The channel closes once every run has finished and dropped its executor.
    while let Some(ev) = rx.recv().await {
        progress.inc(render::event(&ev, output));
    }
    progress.finish();
    let mut total = RunSummary::default();
    let mut first_error: Option<anyhow::Error> = None;
    while let Some(joined) = runs.join_next().await {
        match joined {
            Ok(Ok(s)) => add_summary(&mut total, &s),
            Ok(Err(e)) => {
                first_error.get_or_insert_with(|| e.into());
            }
            Err(e) => {
                first_error.get_or_insert_with(|| anyhow!("executor stopped: {e}"));
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let mut records = Vec::new();
    for p in plans {
        records.extend(store.actions(p).await?);
    }
    if matches!(output, Format::Jsonl | Format::Yaml) {
        for r in records
            .iter()
            .filter(|r| !r.state.is_final() || r.state == ActionState::AwaitingAck)
        {
            crate::out::item(&r.result_line(), output)?;
        }
    } else {
        render::summary(&total, &records, Utc::now());
    }
    Ok(if total.has_problems() { 1 } else { 0 })
}

/// The progress bar of a run (only on a terminal): as many steps as the plans have actions that
/// can finish in this run (due now, not manual, not yet final).
async fn run_progress(
    store: &Arc<dyn Store>,
    plans: &[PlanId],
) -> anyhow::Result<crate::out::Progress> {
    if !crate::out::Progress::wanted() {
        return Ok(crate::out::Progress::none());
    }
    let now = Utc::now();
    let mut steps = 0;
    for p in plans {
        steps += store
            .actions(p)
            .await?
            .iter()
            .filter(|r| !r.state.is_final() && !r.action.is_manual() && r.action.is_due(now))
            .count();
    }
    Ok(crate::out::Progress::start(
        steps, "applying", "applied", "actions",
    ))
}

fn add_summary(total: &mut RunSummary, s: &RunSummary) {
    total.done += s.done;
    total.already_done += s.already_done;
    total.skipped += s.skipped;
    total.failed += s.failed;
    total.blocked += s.blocked;
    total.scheduled += s.scheduled;
    total.awaiting_ack += s.awaiting_ack;
    total.acknowledged += s.acknowledged;
    total.not_confirmed += s.not_confirmed;
    total.next_due = match (total.next_due, s.next_due) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
}

async fn audit_verify(cfg: Option<&Path>) -> anyhow::Result<u8> {
    let ctx = Context::load(cfg)?;
    let store = ctx.store().await?;
    let entries = store.audit_log().await?;
    let problems = verify_chain(&entries);
    if problems.is_empty() {
        let head = entries
            .last()
            .map(|e| e.hash.as_str())
            .unwrap_or(revoke_store::GENESIS_HASH);
        outln!("audit log intact: {} entries, head {head}", entries.len());
        Ok(0)
    } else {
        for p in &problems {
            outln!("{p}");
        }
        outln!(
            "audit log damaged: {} problem(s) in {} entries",
            problems.len(),
            entries.len()
        );
        Ok(1)
    }
}
