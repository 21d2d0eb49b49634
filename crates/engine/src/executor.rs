use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use revoke_config::Config;
use revoke_core::{
    Action, ActionId, Connector, ConnectorError, JobId, Outcome, Plan, PlanId, Verdict,
};
use revoke_store::{
    ActionRecord, ActionState, AttemptEnd, AttemptResult, NewAuditEntry, ResultLine, Store,
    StoreError,
};
use serde::Serialize;
use tokio::sync::{mpsc::UnboundedSender, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::group::Group;
use crate::journal::StoreJournal;
use crate::{Connectors, EngineError, RetryPolicy};

/// Progress of a run, for people watching it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ExecEvent {
    /// An attempt was recorded and its call is being sent.
    Attempt { action_id: String, attempt: u32 },
    /// The attempt failed in a way worth retrying; the next one is due after `delay_ms`.
    Retrying {
        action_id: String,
        attempt: u32,
        delay_ms: u64,
        error: String,
    },
    /// The action reached a final state (its verdict included when it succeeded).
    Finished(Box<ResultLine>),
    /// Actions that could not run because a prerequisite failed.
    Blocked { action_ids: Vec<String> },
    /// Nothing can run until another executor's leases on these actions end (it may have died:
    /// then they run again once the leases expire, at `until`).
    Waiting {
        action_ids: Vec<String>,
        owner: String,
        until: DateTime<Utc>,
    },
}

/// Where a plan stands after a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    pub done: usize,
    pub already_done: usize,
    pub skipped: usize,
    pub failed: usize,
    pub blocked: usize,
    /// Not due yet (the delete phase during retention, a future effective date).
    pub scheduled: usize,
    pub awaiting_ack: usize,
    pub acknowledged: usize,
    pub not_confirmed: usize,
    /// The earliest time a scheduled action becomes due.
    pub next_due: Option<DateTime<Utc>>,
}

impl RunSummary {
    pub fn from_records(records: &[ActionRecord], now: DateTime<Utc>) -> Self {
        let mut s = RunSummary::default();
        for r in records {
            match r.state {
                ActionState::Done => s.done += 1,
                ActionState::AlreadyDone => s.already_done += 1,
                ActionState::Skipped => s.skipped += 1,
                ActionState::Failed => s.failed += 1,
                ActionState::Blocked | ActionState::Cancelled => s.blocked += 1,
                ActionState::AwaitingAck => s.awaiting_ack += 1,
                ActionState::Acknowledged => s.acknowledged += 1,
                ActionState::Pending | ActionState::Running => {
                    if let Some(t) = r.action.not_before.filter(|t| *t > now) {
                        s.scheduled += 1;
                        s.next_due = Some(s.next_due.map_or(t, |n| n.min(t)));
                    }
                }
            }
            if matches!(r.verdict, Some(Verdict::NotConfirmed { .. })) {
                s.not_confirmed += 1;
            }
        }
        s
    }

    /// Whether anything went wrong (a failure, a block, or a verdict that did not confirm).
    pub fn has_problems(&self) -> bool {
        self.failed > 0 || self.blocked > 0 || self.not_confirmed > 0
    }
}

/// What a `work` loop did before it stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WorkReport {
    pub actions_run: usize,
    /// Still running when the shutdown grace ran out.
    pub abandoned: usize,
}

/// Runs plans recorded in the store: the only place in revoked that retries.
#[derive(Debug, Clone)]
pub struct Executor {
    store: Arc<dyn Store>,
    connectors: Connectors,
    retry: RetryPolicy,
    lease: Duration,
    action_timeout: Duration,
    limits: BTreeMap<String, Arc<Semaphore>>,
    /// Each instance's configured number of actions at once (its semaphore's size).
    caps: BTreeMap<String, usize>,
    default_limit: usize,
    owner: String,
    events: Option<UnboundedSender<ExecEvent>>,
    /// Applied actions of connectors that verify in batches (`Connector::batch_verification`),
    /// not yet read back; shared by the clones that run each action.
    deferred: Arc<std::sync::Mutex<Vec<(PlanId, Action)>>>,
    /// Attempts that start and results that arrive at the same time are recorded in one
    /// transaction (group commit; each action still waits for its own commit).
    ledger: Arc<Group<LedgerWrite, LedgerAnswer>>,
}

/// A write to the attempt ledger, for the group commit.
#[derive(Debug)]
enum LedgerWrite {
    /// Record the next attempt of a leased action (and renew its lease) before it is sent.
    Begin(ActionId),
    /// Record how an attempt ended.
    Finish(AttemptEnd),
}

/// The answer to a [`LedgerWrite`], of the same variant.
#[derive(Debug)]
enum LedgerAnswer {
    Begun(Result<u32, StoreError>),
    Finished(Result<(), StoreError>),
}

/// The actions a loop has leased and not yet seen end, per connector instance, against
/// `factor` times each instance's cap. A lease takes of each instance at most the slots it has
/// left (`Store::lease_due_within`), so a slow or paced instance (GitHub's one mutation a second)
/// never fills every slot of the loop while other instances' contain actions wait.
#[derive(Debug)]
struct Slots {
    taken: Arc<std::sync::Mutex<HashMap<String, usize>>>,
    caps: BTreeMap<String, usize>,
}

/// One leased action's slot, given back when its task ends (also by a panic or an abort).
struct Slot {
    taken: Arc<std::sync::Mutex<HashMap<String, usize>>>,
    connector: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut taken = self
            .taken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = taken.get_mut(&self.connector) {
            *n = n.saturating_sub(1);
        }
    }
}

impl Slots {
    fn new(exec: &Executor, factor: usize) -> Self {
        Self {
            taken: Arc::default(),
            caps: exec
                .caps
                .iter()
                .map(|(c, n)| (c.clone(), (*n).max(1) * factor))
                .collect(),
        }
    }

    /// What the next lease may take of each configured instance (its slots not yet taken).
    fn room(&self) -> BTreeMap<String, usize> {
        let taken = self
            .taken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.caps
            .iter()
            .map(|(c, cap)| {
                (
                    c.clone(),
                    cap.saturating_sub(taken.get(c).copied().unwrap_or(0)),
                )
            })
            .collect()
    }

    fn take(&self, connector: &str) -> Slot {
        *self
            .taken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(connector.to_string())
            .or_default() += 1;
        Slot {
            taken: self.taken.clone(),
            connector: connector.to_string(),
        }
    }
}

/// At most this many deferred read-backs go to one `verify_many` call (never splitting the
/// actions of one account), and the work loop reads them back once this many are waiting.
const VERIFY_BATCH: usize = 256;
/// The account an action touches, as the read-back batches group them: its connector instance
/// and its pinned id.
fn account_key(a: &Action) -> (String, String) {
    (
        a.connector.clone(),
        a.account.as_ref().map(|p| p.id.clone()).unwrap_or_default(),
    )
}

/// What a task of the work loop ends with: the action's plan and the id of the action when it
/// failed for good; `None` as the plan for a read-back task.
type Task = (Option<PlanId>, Result<Option<ActionId>, EngineError>);

/// A run holds an account's read-backs until none of its actions is left, or this many wait.
const ACCOUNT_BATCH: usize = 16;
/// ... or until this many of the run's read-backs wait in all.
const HOLD_CAP: usize = 1024;
/// How often at most a run looks at its waiting read-backs.
const CHECK_EVERY: Duration = Duration::from_millis(50);
/// The work loop reads back deferred actions at the latest this long after the first of them.
const VERIFY_WAIT: Duration = Duration::from_millis(500);

/// A store that answered a ledger batch with fewer answers than writes.
fn mismatched() -> StoreError {
    StoreError::Database("the store answered fewer ledger writes than it was given".into())
}

/// The answer of a request whose batch was abandoned (its writer was cancelled): whether it was
/// committed is unknown, so the action is left to its lease (it runs again once that ends, with
/// the same key, reading first).
fn abandoned<T>() -> Result<T, StoreError> {
    Err(StoreError::Database(
        "the transaction this write went in was abandoned".into(),
    ))
}

impl Executor {
    /// `owner` names this executor in leases and the audit log (`revokectl@host:pid`).
    pub fn new(
        store: Arc<dyn Store>,
        connectors: Connectors,
        config: &Config,
        owner: impl Into<String>,
    ) -> Self {
        let limits = config
            .connectors
            .iter()
            .map(|(name, s)| {
                (
                    name.clone(),
                    Arc::new(Semaphore::new(
                        s.concurrency.unwrap_or(config.executor.concurrency),
                    )),
                )
            })
            .collect();
        let caps = config
            .connectors
            .iter()
            .map(|(name, s)| {
                (
                    name.clone(),
                    s.concurrency.unwrap_or(config.executor.concurrency),
                )
            })
            .collect();
        Self {
            store,
            connectors,
            retry: RetryPolicy::from(&config.executor.retry),
            lease: config.executor.lease(),
            action_timeout: config.executor.action_timeout(),
            limits,
            caps,
            default_limit: config.executor.concurrency,
            owner: owner.into(),
            events: None,
            deferred: Arc::default(),
            ledger: Arc::default(),
        }
    }

    pub fn with_events(mut self, tx: UnboundedSender<ExecEvent>) -> Self {
        self.events = Some(tx);
        self
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    fn emit(&self, e: ExecEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(e);
        }
    }

    /// Audits an event about `action` that changes no state in the store (state changes are
    /// audited by the store itself, in the same transaction).
    async fn audit(
        &self,
        kind: &str,
        action: &Action,
        data: serde_json::Value,
    ) -> Result<(), EngineError> {
        self.store
            .append_audit(&NewAuditEntry {
                at: Utc::now(),
                actor: self.owner.clone(),
                kind: kind.into(),
                job_id: Some(action.job_id.0.clone()),
                action_id: Some(action.id.0.clone()),
                data: data.to_string(),
            })
            .await?;
        Ok(())
    }

    /// Records a reviewed plan in the store (which audits it) so that it can be run and resumed.
    pub async fn record(&self, plan: &Plan) -> Result<(), EngineError> {
        self.store
            .insert_plan(plan, &self.owner, Utc::now())
            .await?;
        Ok(())
    }

    /// Runs every due action of a plan until nothing more can run now; resumes whatever an
    /// earlier run left unfinished and re-sends nothing recorded as done.
    pub async fn run_plan(&self, plan: &PlanId) -> Result<RunSummary, EngineError> {
        // An earlier run killed between an action's result and its read-back left it unverified.
        self.verify_unverified(Some(plan), Utc::now()).await?;
        let mut waited_for: Option<(String, DateTime<Utc>)> = None;
        // Per account (connector instance, pinned id), the actions not yet finished: a batched
        // read-back of an account waits until none is left, so one read confirms them all.
        let mut open: HashMap<(String, String), usize> = HashMap::new();
        let capacity: usize = {
            let records = self.store.actions(plan).await?;
            for r in records.iter().filter(|r| !r.action.is_manual()) {
                if matches!(r.state, ActionState::Pending | ActionState::Running) {
                    *open.entry(account_key(&r.action)).or_default() += 1;
                }
            }
            let used: BTreeSet<&str> = records
                .iter()
                .filter(|r| !r.action.is_manual())
                .map(|r| r.action.connector.as_str())
                .collect();
            used.iter()
                .map(|c| self.limit(c).available_permits().max(1))
                .sum::<usize>()
                .max(1)
        };
        // The account and id of the action a task runs (`None` for a read-back task).
        type PlanTask = (
            Option<((String, String), ActionId)>,
            Result<Option<ActionId>, EngineError>,
        );
        let mut inflight: JoinSet<PlanTask> = JoinSet::new();
        // Leased ahead: twice each instance's slots (see `Slots`).
        let slots = Slots::new(self, 2);
        let mut deferred_since: Option<tokio::time::Instant> = None;
        let mut checked_at: Option<tokio::time::Instant> = None;
        loop {
            // Read-backs left for a batch go out every VERIFY_WAIT or VERIFY_BATCH, beside the
            // actions still being sent, so results (and their lines) come as the run goes; an
            // account's go out once none of its actions is left to run, or once ACCOUNT_BATCH of
            // them wait (an account with hundreds of grants still shows progress), or once
            // HOLD_CAP wait in all (memory stays bounded in a plan of thousands of accounts).
            // Looked at every CHECK_EVERY at most: the list can be long.
            if checked_at.is_none_or(|t| t.elapsed() >= CHECK_EVERY) {
                checked_at = Some(tokio::time::Instant::now());
                let (mut held, account_full, total): (BTreeSet<(String, String)>, bool, usize) = {
                    let list = self.deferred_list();
                    let mut waiting: HashMap<(String, String), usize> = HashMap::new();
                    for (_, a) in list.iter().filter(|(p, _)| p == plan) {
                        *waiting.entry(account_key(a)).or_default() += 1;
                    }
                    let full = waiting.values().any(|n| *n >= ACCOUNT_BATCH);
                    let held = waiting
                        .into_iter()
                        .filter(|(k, n)| {
                            *n < ACCOUNT_BATCH && open.get(k).copied().unwrap_or(0) > 0
                        })
                        .map(|(k, _)| k)
                        .collect();
                    let total = list.iter().filter(|(p, _)| p == plan).count();
                    (held, full, total)
                };
                if total >= HOLD_CAP {
                    held.clear();
                }
                let ready = self
                    .deferred_list()
                    .iter()
                    .filter(|(p, a)| p == plan && !held.contains(&account_key(a)))
                    .count();
                if ready == 0 {
                    deferred_since = None;
                } else {
                    let since = *deferred_since.get_or_insert_with(tokio::time::Instant::now);
                    if ready >= VERIFY_BATCH || account_full || since.elapsed() >= VERIFY_WAIT {
                        deferred_since = None;
                        let actions: Vec<Action> = {
                            let mut list = self.deferred_list();
                            let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut *list)
                                .into_iter()
                                .partition(|(p, a)| p == plan && !held.contains(&account_key(a)));
                            *list = rest;
                            mine.into_iter().map(|(_, a)| a).collect()
                        };
                        let this = self.clone();
                        inflight.spawn(async move {
                            (
                                None,
                                this.verify_actions(actions, false).await.map(|_| None),
                            )
                        });
                    }
                }
            }
            let now = Utc::now();
            // Leased ahead, up to twice the connectors' slots, and in batches of at least a slot
            // per connector: one lease transaction starts many actions, and an action waits for
            // its slot already leased, so a finished action's slot is taken at once.
            let free = (2 * capacity).saturating_sub(inflight.len());
            if free >= capacity || inflight.is_empty() {
                let leased = self
                    .store
                    .lease_due_within(
                        Some(plan),
                        &self.owner,
                        now,
                        self.lease,
                        free as u32,
                        &slots.room(),
                    )
                    .await?;
                for rec in leased {
                    let this = self.clone();
                    let ran = (account_key(&rec.action), rec.action.id.clone());
                    let slot = slots.take(&rec.action.connector);
                    inflight.spawn(async move {
                        let _slot = slot;
                        (Some(ran), this.run_action(rec, None).await)
                    });
                }
            }
            if inflight.is_empty() {
                let records = self.store.actions(plan).await?;
                self.block_orphans(&records).await?;
                if let Some(w) = self.leased_elsewhere(&records, now) {
                    if waited_for.as_ref() != Some(&(w.1.clone(), w.2)) {
                        info!(plan_id = %plan, owner = %w.1, until = %w.2, actions = w.0.len(), "waiting for another executor's leases");
                        waited_for = Some((w.1.clone(), w.2));
                        self.emit(ExecEvent::Waiting {
                            action_ids: w.0,
                            owner: w.1,
                            until: w.2,
                        });
                    }
                }
                match next_wake(&records, now) {
                    Some(at) => {
                        let wait = (at - Utc::now())
                            .to_std()
                            .unwrap_or_default()
                            .min(Duration::from_secs(5));
                        debug!(plan_id = %plan, wait_ms = wait.as_millis() as u64, "waiting for the next due attempt");
                        tokio::time::sleep(wait + Duration::from_millis(5)).await;
                        continue;
                    }
                    None => break,
                }
            }
            tokio::select! {
                joined = inflight.join_next() => {
                    if let Some(joined) = joined {
                        let (ran, result) = joined.map_err(|e| EngineError::Store(revoke_store::StoreError::Database(format!("executor task panicked: {e}"))))?;
                        let failed = result?;
                        if let Some((key, id)) = ran {
                            // Finished: failed for good, or succeeded and waiting for its read-back.
                            // It was pushed last thing before its task ended: look near the end.
                            let finished = failed.is_some()
                                || self
                                    .deferred_list()
                                    .iter()
                                    .rev()
                                    .take(2 * capacity + ACCOUNT_BATCH)
                                    .any(|(_, a)| a.id == id);
                            if finished {
                                if let Some(n) = open.get_mut(&key) {
                                    *n = n.saturating_sub(1);
                                }
                            }
                        }
                        if failed.is_some() {
                            let records = self.store.actions(plan).await?;
                            self.block_orphans(&records).await?;
                        }
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
        self.verify_deferred(Some(plan)).await?;
        self.verify_unverified(Some(plan), Utc::now()).await?;
        let records = self.store.actions(plan).await?;
        Ok(RunSummary::from_records(&records, Utc::now()))
    }

    /// The actions of `records` that another executor holds a live lease on, its name, and when
    /// the last of those leases runs out; `None` when there are none.
    fn leased_elsewhere(
        &self,
        records: &[ActionRecord],
        now: DateTime<Utc>,
    ) -> Option<(Vec<String>, String, DateTime<Utc>)> {
        let held: Vec<&ActionRecord> = records
            .iter()
            .filter(|r| matches!(r.state, ActionState::Running | ActionState::Pending))
            .filter(|r| r.lease_owner.as_deref().is_some_and(|o| o != self.owner))
            .filter(|r| r.lease_expires_at.is_some_and(|t| t > now))
            .collect();
        let first = held.first()?;
        let owner = first.lease_owner.clone().unwrap_or_default();
        let until = held.iter().filter_map(|r| r.lease_expires_at).max()?;
        Some((
            held.iter().map(|r| r.action.id.0.clone()).collect(),
            owner,
            until,
        ))
    }

    /// Reads back (and records the verdict of) every applied action that finished by
    /// `finished_by` without one: the run that applied it died before its verification.
    async fn verify_unverified(
        &self,
        plan: Option<&PlanId>,
        finished_by: DateTime<Utc>,
    ) -> Result<usize, EngineError> {
        let records = self.store.unverified(plan, finished_by).await?;
        let actions: Vec<Action> = records.into_iter().map(|r| r.action).collect();
        self.verify_actions(actions, true).await
    }

    /// Reads back the actions this executor applied and left for a batched read-back: those of
    /// `plan`, or all. A run reads back only its own plan's, so two runs of one executor at once
    /// never read one action twice.
    async fn verify_deferred(&self, plan: Option<&PlanId>) -> Result<usize, EngineError> {
        let actions: Vec<Action> = {
            let mut list = self.deferred_list();
            let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut *list)
                .into_iter()
                .partition(|(p, _)| plan.is_none_or(|plan| p == plan));
            *list = rest;
            mine.into_iter().map(|(_, a)| a).collect()
        };
        self.verify_actions(actions, false).await
    }

    fn deferred_list(&self) -> std::sync::MutexGuard<'_, Vec<(PlanId, Action)>> {
        // A panic while holding this lock left a plain list behind: keep using it.
        self.deferred
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads back `actions` and records their verdicts: per connector instance, through
    /// `verify_many` in batches that keep each account's actions together (a connector that
    /// reads one account once confirms all of its actions with that read).
    async fn verify_actions(
        &self,
        mut actions: Vec<Action>,
        left_by_earlier_run: bool,
    ) -> Result<usize, EngineError> {
        let n = actions.len();
        let pin = |a: &Action| a.account.as_ref().map(|p| p.id.clone()).unwrap_or_default();
        actions.sort_by(|a, b| {
            (a.connector.as_str(), pin(a), a.id.0.as_str()).cmp(&(
                b.connector.as_str(),
                pin(b),
                b.id.0.as_str(),
            ))
        });
        let mut rest = actions.as_slice();
        while !rest.is_empty() {
            let mut end = 1;
            while end < rest.len()
                && rest[end].connector == rest[0].connector
                && (end < VERIFY_BATCH || pin(&rest[end]) == pin(&rest[end - 1]))
            {
                end += 1;
            }
            let (batch, tail) = rest.split_at(end);
            rest = tail;
            let verdicts = self.read_back_many(batch).await;
            let mut recorded = Vec::with_capacity(batch.len());
            for (action, verdict) in batch.iter().zip(verdicts) {
                if left_by_earlier_run {
                    info!(job_id = %action.job_id, action_id = %action.id, connector = %action.connector, verdict = %verdict, "verified an action an earlier run left unverified");
                } else {
                    debug!(job_id = %action.job_id, action_id = %action.id, connector = %action.connector, verdict = %verdict, "action verified");
                }
                recorded.push((action.id.clone(), verdict));
            }
            // One transaction for the batch's verdicts.
            self.store
                .record_verdicts(&recorded, &self.owner, Utc::now())
                .await?;
            for (id, _) in &recorded {
                self.emit_finished(id).await?;
            }
        }
        Ok(n)
    }

    /// The verdicts of applied actions of one connector instance, read back together (see
    /// [`Executor::read_back`] for what does not confirm).
    async fn read_back_many(&self, actions: &[Action]) -> Vec<Verdict> {
        let Some(first) = actions.first() else {
            return Vec::new();
        };
        let Some(c) = self.connectors.get(&first.connector) else {
            return actions
                .iter()
                .map(|a| Verdict::NotConfirmed {
                    detail: format!(
                        "the plan names connector instance {:?}, which the configuration does not have",
                        a.connector
                    ),
                })
                .collect();
        };
        if !c.batch_verification() {
            let mut out = Vec::with_capacity(actions.len());
            for a in actions {
                out.push(self.read_back(a).await);
            }
            return out;
        }
        match tokio::time::timeout(self.action_timeout, c.verify_many(actions)).await {
            Ok(results) if results.len() == actions.len() => results
                .into_iter()
                .map(|r| match r {
                    Ok(v) => v,
                    Err(e) => Verdict::NotConfirmed {
                        detail: format!("verification failed: {e}"),
                    },
                })
                .collect(),
            Ok(results) => actions
                .iter()
                .map(|_| Verdict::NotConfirmed {
                    detail: format!(
                        "verification failed: the connector answered {} verdicts for {} actions",
                        results.len(),
                        actions.len()
                    ),
                })
                .collect(),
            Err(_) => actions
                .iter()
                .map(|_| Verdict::NotConfirmed {
                    detail: "verification timed out".into(),
                })
                .collect(),
        }
    }

    /// The verdict of one applied action, read back from its connector (a connector the
    /// configuration no longer has, an error or a timeout is a verdict that does not confirm).
    async fn read_back(&self, action: &Action) -> Verdict {
        let Some(c) = self.connectors.get(&action.connector) else {
            return Verdict::NotConfirmed {
                detail: format!(
                    "the plan names connector instance {:?}, which the configuration does not have",
                    action.connector
                ),
            };
        };
        match tokio::time::timeout(self.action_timeout, c.verify(action)).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => Verdict::NotConfirmed {
                detail: format!("verification failed: {e}"),
            },
            Err(_) => Verdict::NotConfirmed {
                detail: "verification timed out".into(),
            },
        }
    }

    /// Runs due actions of every plan in the store, up to `capacity` at once, until `stop` turns
    /// true: then it leases nothing more and waits up to `grace` for the actions in flight (their
    /// results are recorded). Actions still running after the grace are abandoned: their leases
    /// run out and another executor (or this one, restarted) takes them over with the same key.
    /// `wake` lets intake and the scheduler cut the `poll` wait short.
    pub async fn work(
        &self,
        mut stop: tokio::sync::watch::Receiver<bool>,
        wake: Arc<tokio::sync::Notify>,
        poll: Duration,
        capacity: usize,
        grace: Duration,
    ) -> Result<WorkReport, EngineError> {
        // `capacity` actions run at once (each holds one of `running` while it is sent, after its
        // instance's own slot); twice as many are leased, so a finished action's place is taken
        // at once, and no instance holds more than twice its own slots (see `Slots`), so a paced
        // one never takes every place while other instances' contain actions wait.
        let running = Arc::new(Semaphore::new(capacity.max(1)));
        let capacity = 2 * capacity.max(1);
        let mut inflight: JoinSet<Task> = JoinSet::new();
        let mut report = WorkReport::default();
        let slots = Slots::new(self, 2);
        // Applied actions left without a verdict by an executor that died are read back here, once
        // a live executor would have verified them (its verification is bounded by the action
        // timeout), every `SWEEP` at most.
        const SWEEP: Duration = Duration::from_secs(10);
        let mut swept_at: Option<tokio::time::Instant> = None;
        let mut deferred_since: Option<tokio::time::Instant> = None;
        while !*stop.borrow() {
            let waiting = self.deferred_list().len();
            if waiting == 0 {
                deferred_since = None;
            } else {
                let since = *deferred_since.get_or_insert_with(tokio::time::Instant::now);
                if inflight.is_empty() || waiting >= VERIFY_BATCH || since.elapsed() >= VERIFY_WAIT
                {
                    deferred_since = None;
                    // Beside the actions being sent, not instead of leasing more.
                    let this = self.clone();
                    inflight.spawn(async move {
                        if let Err(e) = this.verify_deferred(None).await {
                            warn!(error = %e, "reading back applied actions failed; the sweep will try again");
                        }
                        (None, Ok(None))
                    });
                }
            }
            if swept_at.is_none_or(|t| t.elapsed() >= SWEEP) {
                swept_at = Some(tokio::time::Instant::now());
                let by = Utc::now()
                    - chrono::Duration::from_std(self.action_timeout + Duration::from_secs(1))
                        .unwrap_or_default();
                if let Err(e) = self.verify_unverified(None, by).await {
                    warn!(error = %e, "reading back unverified actions failed; will try again");
                }
            }
            let free = capacity.saturating_sub(inflight.len());
            if free > 0 {
                match self
                    .store
                    .lease_due_within(
                        None,
                        &self.owner,
                        Utc::now(),
                        self.lease,
                        free as u32,
                        &slots.room(),
                    )
                    .await
                {
                    Ok(leased) => {
                        for rec in leased {
                            let this = self.clone();
                            let plan = rec.plan_id.clone();
                            let slot = slots.take(&rec.action.connector);
                            let running = running.clone();
                            inflight.spawn(async move {
                                let _slot = slot;
                                (Some(plan), this.run_action(rec, Some(running)).await)
                            });
                        }
                    }
                    Err(e) => warn!(error = %e, "leasing due actions failed; will try again"),
                }
            }
            // With read-backs waiting, wake in time to send them.
            let wait = match deferred_since {
                Some(t) => poll.min(VERIFY_WAIT.saturating_sub(t.elapsed())),
                None => poll,
            };
            tokio::select! {
                joined = inflight.join_next(), if !inflight.is_empty() => {
                    if let Some(joined) = joined {
                        self.settle(joined, &mut report).await;
                        // Every other action that has finished too: their slots are leased again
                        // in one transaction.
                        while let Some(joined) = inflight.try_join_next() {
                            self.settle(joined, &mut report).await;
                        }
                    }
                }
                _ = tokio::time::sleep(wait) => {}
                _ = wake.notified() => {}
                _ = stop.changed() => {}
            }
        }
        info!(
            in_flight = inflight.len(),
            grace_secs = grace.as_secs(),
            "stopping: leasing nothing more, letting actions in flight finish"
        );
        let deadline = tokio::time::Instant::now() + grace;
        while !inflight.is_empty() {
            match tokio::time::timeout_at(deadline, inflight.join_next()).await {
                Ok(Some(joined)) => self.settle(joined, &mut report).await,
                Ok(None) => break,
                Err(_) => {
                    report.abandoned = inflight.len();
                    warn!(abandoned = inflight.len(), "shutdown grace elapsed; abandoning actions in flight (their leases will expire)");
                    inflight.abort_all();
                    break;
                }
            }
        }
        if let Err(e) = self.verify_deferred(None).await {
            warn!(error = %e, "reading back applied actions failed; the sweep of the next start will");
        }
        Ok(report)
    }

    /// Accounts for one finished action task; blocks what depended on it when it failed.
    async fn settle(&self, joined: Result<Task, tokio::task::JoinError>, report: &mut WorkReport) {
        let joined = match joined {
            // A read-back task: it logged its own trouble.
            Ok((None, _)) => return,
            Ok((Some(plan), r)) => Ok((plan, r)),
            Err(e) => Err(e),
        };
        report.actions_run += 1;
        match joined {
            Ok((_, Ok(None))) => {}
            Ok((plan, Ok(Some(_failed)))) => {
                let blocked = match self.store.actions(&plan).await {
                    Ok(records) => self.block_orphans(&records).await,
                    Err(e) => Err(e.into()),
                };
                if let Err(e) = blocked {
                    warn!(plan_id = %plan, error = %e, "could not block the dependents of a failed action");
                }
            }
            Ok((plan, Err(e))) => {
                warn!(plan_id = %plan, error = %e, "running an action failed in the store; its lease will expire and it will run again");
            }
            Err(e) => warn!(error = %e, "an action task panicked"),
        }
    }

    fn limit(&self, connector: &str) -> Arc<Semaphore> {
        self.limits
            .get(connector)
            .cloned()
            .unwrap_or_else(|| Arc::new(Semaphore::new(self.default_limit)))
    }

    /// Marks `Blocked` every pending action with a prerequisite that failed, was blocked or cancelled.
    async fn block_orphans(&self, records: &[ActionRecord]) -> Result<(), EngineError> {
        let mut dead: BTreeSet<ActionId> = records
            .iter()
            .filter(|r| {
                matches!(
                    r.state,
                    ActionState::Failed | ActionState::Blocked | ActionState::Cancelled
                )
            })
            .map(|r| r.action.id.clone())
            .collect();
        let mut newly = Vec::new();
        loop {
            let before = newly.len();
            for r in records {
                if r.state == ActionState::Pending
                    && !dead.contains(&r.action.id)
                    && r.action.depends_on.iter().any(|d| dead.contains(d))
                {
                    dead.insert(r.action.id.clone());
                    newly.push(r.action.id.clone());
                }
            }
            if newly.len() == before {
                break;
            }
        }
        if newly.is_empty() {
            return Ok(());
        }
        let reason = "a prerequisite action failed";
        self.store
            .mark_blocked(&newly, reason, &self.owner, Utc::now())
            .await?;
        for id in &newly {
            if let Some(r) = records.iter().find(|r| &r.action.id == id) {
                warn!(job_id = %r.action.job_id, action_id = %id, connector = %r.action.connector, "action blocked: a prerequisite failed");
            }
        }
        self.emit(ExecEvent::Blocked {
            action_ids: newly.iter().map(|i| i.0.clone()).collect(),
        });
        Ok(())
    }

    /// One leased action: record the attempt, send it, record the result, verify. Returns the
    /// action's id when it failed for good.
    /// `running`: a place among the actions the work loop runs at once, taken after the
    /// instance's own slot (`None` in `run_plan`, bounded by the instances' slots alone).
    async fn run_action(
        &self,
        rec: ActionRecord,
        running: Option<Arc<Semaphore>>,
    ) -> Result<Option<ActionId>, EngineError> {
        use tracing::Instrument;
        let span = tracing::info_span!(
            "action",
            job_id = %rec.action.job_id,
            action_id = %rec.action.id,
            connector = %rec.action.connector,
            kind = %rec.action.kind.0,
            phase = rec.action.phase.as_str(),
            attempt = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        self.run_action_in_span(rec, running).instrument(span).await
    }

    async fn run_action_in_span(
        &self,
        rec: ActionRecord,
        running: Option<Arc<Semaphore>>,
    ) -> Result<Option<ActionId>, EngineError> {
        let action = rec.action.clone();
        let limit = self.limit(&action.connector);
        let _permit = limit
            .acquire_owned()
            .await
            .map_err(|e| revoke_store::StoreError::Database(e.to_string()))?;
        let _running = match running {
            Some(places) => Some(
                places
                    .acquire_owned()
                    .await
                    .map_err(|e| revoke_store::StoreError::Database(e.to_string()))?,
            ),
            None => None,
        };
        let connector = self.connectors.get(&action.connector).cloned();
        // The ledger entry (key + attempt number) is written before anything is sent, renewing
        // the lease in the same write (it may have waited for a slot).
        let attempt = match self.begin(&action.id).await {
            Ok(n) => n,
            Err(StoreError::LeaseLost { .. }) => {
                debug!(action_id = %action.id, "lease lost (taken over by another executor, or expired while waiting for a slot) before the attempt");
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        tracing::Span::current().record("attempt", i64::from(attempt));
        self.emit(ExecEvent::Attempt {
            action_id: action.id.0.clone(),
            attempt,
        });
        let result = match &connector {
            None => Err(ConnectorError::permanent(
                "connector_not_configured",
                format!(
                    "the plan names connector instance {:?}, which the configuration does not have",
                    action.connector
                ),
            )),
            Some(c) => {
                self.apply_with_heartbeat(c.as_ref(), &action, attempt)
                    .await
            }
        };
        let now = Utc::now();
        match result {
            Ok(outcome) => {
                if !self
                    .finish(&action, attempt, &AttemptResult::Succeeded(outcome.clone()))
                    .await?
                {
                    return Ok(None);
                }
                tracing::Span::current().record("outcome", outcome.as_str());
                info!(job_id = %action.job_id, action_id = %action.id, connector = %action.connector, outcome = outcome.as_str(), attempt, "action applied");
                match &connector {
                    Some(c) if c.batch_verification() => {
                        // Read back later with the other actions of its account (`verify_many`);
                        // a run that dies first leaves it to the sweep of unverified actions.
                        self.deferred_list()
                            .push((rec.plan_id.clone(), action.clone()));
                    }
                    Some(_) => {
                        let verdict = self.read_back(&action).await;
                        self.store
                            .record_verdict(&action.id, &verdict, &self.owner, Utc::now())
                            .await?;
                        self.emit_finished(&action.id).await?;
                    }
                    None => self.emit_finished(&action.id).await?,
                }
                Ok(None)
            }
            Err(error) => {
                let elapsed = rec
                    .started_at
                    .map(|s| (now - s).to_std().unwrap_or_default())
                    .unwrap_or_default();
                let delay = if error.is_retryable() {
                    let mut rng = rand::rng();
                    self.retry
                        .next_delay(attempt, elapsed, error.retry_after(), &mut rng)
                } else {
                    None
                };
                let retry_at =
                    delay.map(|d| now + chrono::Duration::from_std(d).unwrap_or_default());
                if !self
                    .finish(
                        &action,
                        attempt,
                        &AttemptResult::Failed {
                            error: error.clone(),
                            retry_at,
                        },
                    )
                    .await?
                {
                    return Ok(None);
                }
                match delay {
                    Some(d) => {
                        tracing::Span::current().record("outcome", "retrying");
                        warn!(job_id = %action.job_id, action_id = %action.id, connector = %action.connector, attempt, delay_ms = d.as_millis() as u64, error = %error, "attempt failed, will retry");
                        self.emit(ExecEvent::Retrying {
                            action_id: action.id.0.clone(),
                            attempt,
                            delay_ms: d.as_millis() as u64,
                            error: error.to_string(),
                        });
                        Ok(None)
                    }
                    None => {
                        tracing::Span::current().record("outcome", "failed");
                        warn!(job_id = %action.job_id, action_id = %action.id, connector = %action.connector, attempt, class = error.class.name(), error = %error, "action failed");
                        self.emit_finished(&action.id).await?;
                        Ok(Some(action.id.clone()))
                    }
                }
            }
        }
    }

    /// Records how an attempt ended; false when another executor took the action over meanwhile
    /// (its own attempt will record the result; ours is in the audit log).
    async fn finish(
        &self,
        action: &Action,
        attempt: u32,
        result: &AttemptResult,
    ) -> Result<bool, EngineError> {
        let end = AttemptEnd {
            id: action.id.clone(),
            attempt,
            result: result.clone(),
        };
        let answer = match self.write_ledger(LedgerWrite::Finish(end)).await {
            LedgerAnswer::Finished(r) => r,
            LedgerAnswer::Begun(_) => Err(mismatched()),
        };
        match answer {
            Ok(()) => Ok(true),
            Err(StoreError::LeaseLost { .. }) => {
                warn!(job_id = %action.job_id, action_id = %action.id, connector = %action.connector, attempt, "lease lost during the attempt; another executor owns the action now");
                let data =
                    serde_json::json!({ "attempt": attempt, "result": format!("{result:?}") });
                self.audit("action.lease_lost", action, data).await?;
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Records the next attempt of a leased action and renews its lease, together with the
    /// attempts of the actions starting at the same time (one transaction).
    async fn begin(&self, id: &ActionId) -> Result<u32, StoreError> {
        match self.write_ledger(LedgerWrite::Begin(id.clone())).await {
            LedgerAnswer::Begun(r) => r,
            LedgerAnswer::Finished(_) => Err(mismatched()),
        }
    }

    /// Writes `write` to the ledger together with the other writes waiting at the same time: one
    /// transaction, results first, then attempts (`Store::record_attempts`), stamped with the
    /// time the batch is written (after every one of its requests was made).
    async fn write_ledger(&self, write: LedgerWrite) -> LedgerAnswer {
        let is_begin = matches!(write, LedgerWrite::Begin(_));
        let (store, owner, lease) = (self.store.clone(), self.owner.clone(), self.lease);
        let answer = self
            .ledger
            .submit(write, |writes| async move {
                let mut ends = Vec::new();
                let mut begins = Vec::new();
                for w in &writes {
                    match w {
                        LedgerWrite::Begin(id) => begins.push(id.clone()),
                        LedgerWrite::Finish(end) => ends.push(end.clone()),
                    }
                }
                let (mut ended, mut begun) = match store
                    .record_attempts(&ends, &begins, Some(lease), &owner, Utc::now())
                    .await
                {
                    Ok((e, b)) => (e.into_iter(), b.into_iter()),
                    Err(e) => (
                        vec![Err(e.clone()); ends.len()].into_iter(),
                        vec![Err(e); begins.len()].into_iter(),
                    ),
                };
                writes
                    .iter()
                    .map(|w| match w {
                        LedgerWrite::Begin(_) => {
                            LedgerAnswer::Begun(begun.next().unwrap_or_else(|| Err(mismatched())))
                        }
                        LedgerWrite::Finish(_) => LedgerAnswer::Finished(
                            ended.next().unwrap_or_else(|| Err(mismatched())),
                        ),
                    })
                    .collect()
            })
            .await;
        answer.unwrap_or_else(|| {
            if is_begin {
                LedgerAnswer::Begun(abandoned())
            } else {
                LedgerAnswer::Finished(abandoned())
            }
        })
    }

    /// Sends the action, renewing the lease while the call runs, with the action's journal in
    /// the store (entries recorded as `attempt`).
    async fn apply_with_heartbeat(
        &self,
        c: &dyn Connector,
        action: &Action,
        attempt: u32,
    ) -> Result<Outcome, ConnectorError> {
        let store = self.store.clone();
        let (id, owner, lease) = (action.id.clone(), self.owner.clone(), self.lease);
        let heartbeat = tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                if !matches!(
                    store.renew_lease(&id, &owner, Utc::now(), lease).await,
                    Ok(true)
                ) {
                    warn!(action_id = %id, "lease could not be renewed");
                    return;
                }
            }
        });
        // A lost lease makes `record` fail with `lease_lost`; `finish` then finds the lease
        // lost as well, so this attempt records nothing more (see `StoreJournal::record`).
        let journal = StoreJournal::new(
            self.store.clone(),
            action.id.clone(),
            self.owner.clone(),
            attempt,
        );
        let r =
            match tokio::time::timeout(self.action_timeout, c.apply(action, &action.key, &journal))
                .await
            {
                Ok(r) => r,
                Err(_) => Err(ConnectorError::retryable(
                    "timeout",
                    format!("no answer within {}s", self.action_timeout.as_secs()),
                )),
            };
        heartbeat.abort();
        r
    }

    async fn emit_finished(&self, id: &ActionId) -> Result<(), EngineError> {
        if self.events.is_some() {
            if let Some(r) = self.store.action(id).await? {
                self.emit(ExecEvent::Finished(Box::new(r.result_line())));
            }
        }
        Ok(())
    }

    /// Re-checks every applied action of a plan, or of one job of it (read-only), and records
    /// the verdicts.
    pub async fn verify_plan(
        &self,
        plan: &PlanId,
        job: Option<&JobId>,
    ) -> Result<Vec<(ActionRecord, Verdict)>, EngineError> {
        let mut out = Vec::new();
        for rec in self.store.actions(plan).await? {
            if rec.action.is_manual() || !rec.state.is_success() {
                continue;
            }
            if job.is_some_and(|j| &rec.action.job_id != j) {
                continue;
            }
            if !self.connectors.contains_key(&rec.action.connector) {
                continue;
            }
            let verdict = self.read_back(&rec.action).await;
            self.store
                .record_verdict(&rec.action.id, &verdict, &self.owner, Utc::now())
                .await?;
            out.push((rec, verdict));
        }
        Ok(out)
    }
}

/// When something that is not runnable now will be: a retry coming due, or another executor's
/// lease running out. `None` when nothing more can happen without time passing a `not_before`
/// or a person acting.
fn next_wake(records: &[ActionRecord], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    records
        .iter()
        .filter(|r| !r.action.is_manual() && r.action.is_due(now))
        .filter_map(|r| match r.state {
            // A retry coming due, or a lease taken by an executor that may have died.
            ActionState::Pending => r
                .next_attempt_at
                .max(r.lease_expires_at)
                .filter(|t| *t > now),
            ActionState::Running => r.lease_expires_at.map(|t| t.max(now)),
            _ => None,
        })
        .min()
}
