//! The console's HTML. maud escapes every value it is given; nothing here is marked pre-escaped
//! except markup this module builds itself.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};
use revoke_store::{ActionState, JobBatch, JobState, QueuedJob};

use super::session::Session;
use super::{dag, urlencode, JobFilters, JobRow, JobView, Waiting, ACROSS_LIMIT, COUNT_CAP};

pub(crate) fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn opt_time(t: &Option<DateTime<Utc>>) -> String {
    t.as_ref().map(time).unwrap_or_default()
}

fn job_link(id: &str) -> String {
    format!("/ui/jobs/{}", urlencode(id))
}

/// The frame of every page: navigation, who is signed in, sign-out.
pub(crate) fn layout(title: &str, s: Option<&Session>, refresh: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · revoked" }
                link rel="stylesheet" href="/ui/assets/console.css";
                script src="/ui/assets/console.js" defer {}
            }
            body data-refresh=[refresh.then_some("5")] {
                header {
                    a.brand href="/ui/jobs" { "revoked" }
                    @if let Some(s) = s {
                        nav {
                            a href="/ui/jobs" { "Jobs" }
                            a href="/ui/approvals" { "Approvals" }
                            a href="/ui/manual" { "Manual steps" }
                            a href="/ui/connectors" { "Connectors" }
                        }
                        div.who {
                            span #signed-in-as { (s.name) " (" (s.scope.as_str()) ")" }
                            form method="post" action="/ui/logout" {
                                input type="hidden" name="csrf" value=(s.csrf);
                                button.link type="submit" #sign-out { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

pub(crate) fn error_page(status: StatusCode, message: &str, s: Option<&Session>) -> Markup {
    layout(
        "Error",
        s,
        false,
        html! {
            h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("error")) }
            p.error #error { (message) }
            p { a href="/ui/jobs" { "Back to the jobs" } }
        },
    )
}

pub(crate) fn login(csrf: &str, problem: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        false,
        html! {
            h1 { "Sign in" }
            p { "Sign in with an API token (" code { "revokectl token new" } "). A read token sees; an operator token also approves, rejects, cancels and acknowledges. Actions are audited under the token's name." }
            @if let Some(p) = problem { p.error #error { (p) } }
            form.signin method="post" action="/ui/login" {
                input type="hidden" name="csrf" value=(csrf);
                label for="token" { "API token" }
                input #token type="password" name="token" autocomplete="off" required;
                button type="submit" #sign-in { "Sign in" }
            }
        },
    )
}

fn state_badge(state: &str) -> Markup {
    html! { span class={ "badge s-" (state) } { (state) } }
}

pub(crate) fn jobs(
    s: &Session,
    f: &JobFilters,
    rows: &[JobRow],
    counts: &[(JobState, Option<usize>)],
    next: Option<&str>,
) -> Markup {
    let states: Vec<&str> = JobState::ALL.iter().map(|s| s.as_str()).collect();
    layout(
        "Jobs",
        Some(s),
        false,
        html! {
            h1 { "Jobs" }
            ul.counts #counts {
                @for (st, n) in counts {
                    li {
                        a href={ "/ui/jobs?state=" (st.as_str()) } {
                            (state_badge(st.as_str()))
                            " "
                            @match n { Some(n) => { (n) } None => { (COUNT_CAP) "+" } }
                        }
                    }
                }
            }
            form.filters method="get" action="/ui/jobs" {
                label { "State " select name="state" {
                    option value="" selected[f.state.is_empty()] { "any" }
                    @for st in &states { option value=(st) selected[f.state == *st] { (st) } }
                } }
                label { "Source " input name="source" value=(f.source) size="10"; }
                label { "Risk " select name="risk" {
                    option value="" selected[f.risk.is_empty()] { "any" }
                    option value="high" selected[f.risk == "high"] { "high" }
                    option value="standard" selected[f.risk == "standard"] { "standard" }
                } }
                label { "Subject " input name="subject" value=(f.subject) size="16" placeholder="employee id, email, username"; }
                label { "Received from " input type="date" name="since" value=(f.since); }
                label { "to " input type="date" name="until" value=(f.until); }
                button type="submit" { "Filter" }
                " " a href="/ui/jobs" { "clear" }
            }
            @if rows.is_empty() {
                p.muted #no-jobs { "No job matches." }
            } @else {
                table.jobs #jobs {
                    thead { tr { th { "Subject" } th { "State" } th { "Risk" } th { "Source" } th { "Reason" } th { "Effective" } th { "Received" } th { "SLA" } } }
                    tbody {
                        @for r in rows {
                            tr class=[r.sla_breach.then_some("breach")] data-job=(r.q.job.id.0) {
                                td { a href=(job_link(&r.q.job.id.0)) { (r.q.job.subject.id) } }
                                td { (state_badge(r.q.state.as_str())) }
                                td { (r.q.job.risk.to_string()) }
                                td { (r.q.job.source) }
                                td { (r.q.job.reason) }
                                td { (time(&r.q.job.effective_at)) }
                                td { (time(&r.q.received_at)) }
                                td { @if r.sla_breach { span.breach-flag { "breached" } } }
                            }
                        }
                    }
                }
            }
            @if !f.risk.is_empty() {
                p.muted { "The risk filter applies to each page of " (super::PAGE_SIZE) " jobs read, so a page may show fewer." }
            }
            @if let Some(n) = next { p { a #next href={ "/ui/jobs?" (n) } { "Next page →" } } }
        },
    )
}

fn reason_form(s: &Session, job: &str, what: &str, label: &str, back: &str) -> Markup {
    html! {
        form.act method="post" action={ (job_link(job)) "/" (what) } {
            input type="hidden" name="csrf" value=(s.csrf);
            input type="hidden" name="back" value=(back);
            input type="text" name="reason" required maxlength="2000" placeholder="reason (required)" aria-label={ "reason to " (what) };
            button type="submit" class={ "btn-" (what) } { (label) }
        }
    }
}

pub(crate) fn job(s: &Session, v: &JobView) -> Markup {
    let q = &v.q;
    let ev = &v.evidence;
    let id = &q.job.id.0;
    let states: BTreeMap<String, ActionState> = v
        .records
        .iter()
        .map(|r| (r.action.id.0.clone(), r.state))
        .collect();
    let plan_actions: Vec<&revoke_core::Action> = v
        .plan
        .iter()
        .flat_map(|p| p.actions.iter())
        .filter(|a| a.job_id == q.job.id)
        .collect();
    let open = matches!(q.state, JobState::Scheduled | JobState::AwaitingApproval)
        || (q.state == JobState::Planned
            && v.records.iter().any(|r| {
                matches!(
                    r.state,
                    ActionState::Pending | ActionState::Running | ActionState::AwaitingAck
                )
            }));
    // Reload while something is about to change by itself: an action running or due, or the
    // job due and waiting to be planned (a delete phase due in 30 days does not count).
    let now = Utc::now();
    let running = v.records.iter().any(|r| match r.state {
        ActionState::Running => true,
        ActionState::Pending => r.action.not_before.is_none_or(|t| t <= now),
        _ => false,
    }) || (q.state == JobState::Scheduled && q.due_at <= now);
    let here = job_link(id);
    let event = q
        .event
        .as_ref()
        .and_then(|e| serde_json::to_string_pretty(e).ok())
        .unwrap_or_default();
    layout(
        &q.job.subject.id,
        Some(s),
        running,
        html! {
            h1 { "Job " span.subject #subject { (q.job.subject.id) } " " (state_badge(q.state.as_str())) }
            dl.facts {
                dt { "Job id" } dd { code #job-id { (id) } }
                dt { "Subject" } dd { (q.job.subject.id)
                    @if let Some(e) = &q.job.subject.employee_id { " · employee " (e) }
                    @if let Some(e) = &q.job.subject.email { " · " (e) } }
                dt { "Reason" } dd #reason { (q.job.reason) }
                dt { "Risk" } dd { (q.job.risk.to_string()) }
                dt { "Effective" } dd { (time(&q.job.effective_at)) }
                dt { "Requested by" } dd { (q.job.requested_by) }
                dt { "Source event" } dd { (q.job.source) @if let Some(e) = &q.source_event_id { " · event " code { (e) } } " · received " (time(&q.received_at))
                    @if let Some(h) = &ev.event_body_sha256 { " · body sha256 " code { (h) } } }
                dt { "Plan fingerprint" } dd { code #fingerprint { (ev.plan_fingerprint.clone().unwrap_or_else(|| "not planned yet".into())) } }
                @if let Some(n) = &q.note { dt { "Note" } dd #note { (n) } }
                dt { "SLA" } dd { (ev.sla_hours) " h; "
                    @if ev.sla_breaches > 0 { span.breach-flag #sla { (ev.sla_breaches) " access removal(s) past it" } }
                    @else if v.sla_breach { span.breach-flag #sla { "past it: access not removed yet" } }
                    @else { span #sla { "none past it" } } }
            }
            p.downloads {
                "Evidence: "
                a #evidence-md href={ (here) "/evidence?format=md" } download { "Markdown" } " · "
                a #evidence-csv href={ (here) "/evidence?format=csv" } download { "CSV" } " · "
                a #evidence-json href={ (here) "/evidence?format=json" } download { "JSON" }
            }
            @if s.may_act() {
                @if q.state == JobState::AwaitingApproval {
                    section.decide { h2 { "Held by the blast-radius guard" }
                        (reason_form(s, id, "approve", "Approve", &here))
                        (reason_form(s, id, "reject", "Reject", &here)) }
                }
                @if open {
                    details.cancel { summary { "Cancel this job" } (reason_form(s, id, "cancel", "Cancel job", &here)) }
                }
            }
            h2 { "Plan" }
            div.dag-wrap { (dag::render(&plan_actions, &states)) }
            h2 { "Actions" }
            @if v.records.is_empty() { p.muted { "No actions yet." } } @else {
                table.actions #actions {
                    thead { tr { th { "Phase" } th { "Action" } th { "Outcome" } th { "Attempts" } th { "Verdict" } th { "Error" } th { "Finished" } th {} } }
                    tbody {
                        @for a in &ev.actions {
                            tr data-action=(a.action_id) class=[a.late.then_some("breach")] {
                                td { (a.phase) }
                                td { span.conn { (a.connector) } " " (a.kind) " " span.target { (a.target) }
                                    @if let Some(t) = v.records.iter().find(|r| r.action.id.0 == a.action_id).and_then(|r| r.action.params.get("title")) { br; span.title { (t) } } }
                                td { (state_badge(&a.outcome)) }
                                td { (a.attempts) }
                                td { (a.verdict.clone().unwrap_or_default()) }
                                td.err { (a.error.clone().unwrap_or_default()) @if let Some(n) = &a.note { br; span.muted { (n) } } }
                                td { (opt_time(&a.finished_at)) }
                                td {
                                    @if a.outcome == ActionState::AwaitingAck.as_str() && s.may_act() {
                                        form.act method="post" action={ (here) "/ack" } {
                                            input type="hidden" name="csrf" value=(s.csrf);
                                            input type="hidden" name="action" value=(a.action_id);
                                            input type="hidden" name="back" value=(here);
                                            button.btn-ack type="submit" { "Acknowledge" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @let journal: Vec<_> = ev.actions.iter().flat_map(|a| a.journal.iter().map(move |j| (a, j))).collect();
            h2 { "Journal" }
            @if journal.is_empty() { p.muted { "Nothing recorded." } } @else {
                table.journal { thead { tr { th { "Action" } th { "Entry" } } }
                    tbody { @for (a, j) in &journal { tr { td { code { (a.action_id) } } td { code { (serde_json::to_string(j).unwrap_or_default()) } } } } } }
            }
            h2 { "Audit trail" }
            p #chain { "Audit chain: "
                @if ev.audit_chain_intact { span.ok-flag { "intact" } } @else { span.breach-flag { "BROKEN (an entry was altered, removed or reordered)" } }
                @if let Some(h) = &ev.audit_head_hash { " · head " code { (h) } } }
            table.audit #audit {
                thead { tr { th { "#" } th { "At" } th { "Actor" } th { "Event" } th { "Action" } th { "Data" } } }
                tbody {
                    @for e in &ev.audit {
                        tr { td { (e.seq) } td { (time(&e.at)) } td { (e.actor) } td { (e.kind) } td { (e.action_id.clone().unwrap_or_default()) }
                             td { code.data { (e.data.to_string()) } } }
                    }
                }
            }
            @if !event.is_empty() {
                details { summary { "The event as received (normalized)" } pre { (event) } }
            }
        },
    )
}

pub(crate) fn approvals(
    s: &Session,
    jobs: &[QueuedJob],
    more: bool,
    batches: &[JobBatch],
) -> Markup {
    layout(
        "Approvals",
        Some(s),
        false,
        html! {
            h1 { "Approvals" }
            p { "Jobs the blast-radius guard held. Each decision needs a reason and is audited under your token's name." }
            @if !batches.is_empty() {
                p.muted { (batches.len()) " open batch(es): " @for b in batches { code { (b.batch_id) } " (" (b.source) ", " (b.awaiting_approval) " waiting) " }
                    "; decide a whole batch with " code { "revokectl approve --batch" } " or the API." }
            }
            @if jobs.is_empty() { p.muted #no-held { "No job is awaiting approval." } } @else {
                table.held #held {
                    thead { tr { th { "Subject" } th { "Reason" } th { "Risk" } th { "Source" } th { "Effective" } th { "Received" } th { "Decision" } } }
                    tbody {
                        @for q in jobs {
                            tr data-job=(q.job.id.0) {
                                td { a href=(job_link(&q.job.id.0)) { (q.job.subject.id) } }
                                td { (q.job.reason) }
                                td { (q.job.risk.to_string()) }
                                td { (q.job.source) }
                                td { (time(&q.job.effective_at)) }
                                td { (time(&q.received_at)) }
                                td { @if s.may_act() {
                                        (reason_form(s, &q.job.id.0, "approve", "Approve", "/ui/approvals"))
                                        (reason_form(s, &q.job.id.0, "reject", "Reject", "/ui/approvals"))
                                    } @else { span.muted { "read token: no decisions" } } }
                            }
                        }
                    }
                }
                @if more { p.muted { "Showing the newest " (ACROSS_LIMIT) "." } }
            }
        },
    )
}

pub(crate) fn manual(s: &Session, waiting: &[Waiting], more: bool) -> Markup {
    layout(
        "Manual steps",
        Some(s),
        false,
        html! {
            h1 { "Manual steps" }
            p { "Steps a person performs, waiting for acknowledgement, across the newest " (ACROSS_LIMIT) " planned jobs." }
            @if waiting.is_empty() { p.muted #no-steps { "No step is waiting." } } @else {
                table.steps #steps {
                    thead { tr { th { "Subject" } th { "Step" } th { "Instructions" } th { "Job updated" } th {} } }
                    tbody {
                        @for w in waiting {
                            @let here = job_link(&w.q.job.id.0);
                            tr data-action=(w.rec.action.id.0) data-job=(w.q.job.id.0) {
                                td { a href=(here) { (w.q.job.subject.id) } }
                                td { (w.rec.action.params.get("title").cloned().unwrap_or_else(|| w.rec.action.summary.clone())) }
                                td { (w.rec.action.params.get("instructions").cloned().unwrap_or_default()) }
                                td { (time(&w.q.updated_at)) }
                                td { @if s.may_act() {
                                    form.act method="post" action={ (here) "/ack" } {
                                        input type="hidden" name="csrf" value=(s.csrf);
                                        input type="hidden" name="action" value=(w.rec.action.id.0);
                                        input type="hidden" name="back" value="/ui/manual";
                                        button.btn-ack type="submit" { "Acknowledge" }
                                    } } }
                            }
                        }
                    }
                }
                @if more { p.muted { "More planned jobs exist than were read." } }
            }
        },
    )
}
