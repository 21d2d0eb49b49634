//! Apply and verify: read before every write, so a rerun sends no mutation.
//!
//! `close_account`: DescribeAccount; SUSPENDED (or CLOSED) is done. Otherwise tag the account
//! `revoked:closed-at` (the quota count reads it), record `close_requested` in the journal,
//! CloseAccount, record `close_accepted`, then poll DescribeAccount every `close_poll_secs` for
//! up to `close_wait_secs`. Still pending then: a Retryable `closure_pending` error with
//! `retry_after = close_poll_secs`, and the next attempt, seeing `close_accepted` (or
//! PENDING_CLOSURE), only polls: CloseAccount is sent once.
//!
//! `move_account`: ListParents; already in the destination is done; else MoveAccount from the
//! parent just read.
//!
//! Both refuse the management account (a Permanent error), whatever the action says.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use revoke_aws::access::is_account_id;
use revoke_core::{Action, ConnectorError, ErrorClass, Journal, Outcome, Verdict};
use tracing::{debug, info};

use crate::client::{is_closed, Client};
use crate::config::{is_ou_id, OrganizationsConfig};
use crate::discover::MANAGEMENT_REFUSED;
use crate::plan::{CLOSE_ACCOUNT, MOVE_ACCOUNT};
use crate::quota::CLOSED_AT_TAG;

/// Journal entry written just before CloseAccount is sent.
pub const CLOSE_REQUESTED: &str = "close_requested";
/// Journal entry written once AWS accepted CloseAccount.
pub const CLOSE_ACCEPTED: &str = "close_accepted";

pub struct Ctx<'a> {
    pub client: &'a Client,
    pub cfg: &'a OrganizationsConfig,
    pub instance: &'a str,
}

fn bad(action: &Action, key: &str, found: &str) -> ConnectorError {
    ConnectorError::permanent(
        "bad_action",
        format!(
            "action {} ({}): expected a valid {key}, found {found:?}",
            action.id.0, action.kind.0
        ),
    )
}

/// The account id the action names, checked again: a plan file is input too.
fn account_of(action: &Action) -> Result<&str, ConnectorError> {
    let id = action
        .params
        .get("account_id")
        .map(String::as_str)
        .unwrap_or(action.target.as_str());
    if !is_account_id(id) || id != action.target {
        return Err(bad(action, "account_id", id));
    }
    // The plan pinned the action to the account id discovery saw; AWS never reuses one, so an
    // action naming another account than its pin is an edited plan.
    let pin = action.pinned()?;
    if pin.id != id {
        return Err(ConnectorError::permanent(
            "bad_action",
            format!(
                "action {} ({}): expected account {id} to be the one the plan pinned, found {pin}",
                action.id.0, action.kind.0
            ),
        ));
    }
    Ok(id)
}

fn destination_of(action: &Action) -> Result<&str, ConnectorError> {
    let ou = action
        .params
        .get("destination")
        .map(String::as_str)
        .unwrap_or("");
    if !is_ou_id(ou) {
        return Err(bad(action, "destination", ou));
    }
    Ok(ou)
}

async fn refuse_management(ctx: &Ctx<'_>, account: &str) -> Result<(), ConnectorError> {
    let org = ctx.client.organization().await?;
    if org.management_account_id == account {
        return Err(ConnectorError::permanent(
            "management_account",
            format!("account {account}: {MANAGEMENT_REFUSED}"),
        ));
    }
    Ok(())
}

/// What closing needs from Organizations; the client in production, a script in tests.
#[async_trait]
pub trait CloseOps: Send + Sync {
    /// DescribeAccount: the account's state.
    async fn state(&self, account: &str) -> Result<String, ConnectorError>;
    /// TagResource.
    async fn tag(&self, account: &str, key: &str, value: &str) -> Result<(), ConnectorError>;
    /// CloseAccount; `false` when AWS says it is closed already.
    async fn close(&self, account: &str) -> Result<bool, ConnectorError>;
    async fn sleep(&self, d: Duration);
}

#[async_trait]
impl CloseOps for Client {
    async fn state(&self, account: &str) -> Result<String, ConnectorError> {
        Ok(self.describe_account(account).await?.state)
    }
    async fn tag(&self, account: &str, key: &str, value: &str) -> Result<(), ConnectorError> {
        Client::tag(self, account, key, value).await
    }
    async fn close(&self, account: &str) -> Result<bool, ConnectorError> {
        self.close_account(account).await
    }
    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}

/// How a wait for a closure ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closure {
    Closed,
    /// Still not closed after every poll; the last state seen.
    Pending(String),
}

/// Reads the state, then up to `polls` times sleeps and reads again, until it is closed.
pub async fn wait_for_closure<D, DF, S, SF>(
    mut describe: D,
    mut sleep: S,
    polls: u32,
) -> Result<Closure, ConnectorError>
where
    D: FnMut() -> DF,
    DF: Future<Output = Result<String, ConnectorError>>,
    S: FnMut() -> SF,
    SF: Future<Output = ()>,
{
    let mut state = describe().await?;
    for _ in 0..polls {
        if is_closed(&state) {
            break;
        }
        sleep().await;
        state = describe().await?;
    }
    Ok(if is_closed(&state) {
        Closure::Closed
    } else {
        Closure::Pending(state)
    })
}

/// Closes `account`, or goes on waiting for a closure an earlier attempt asked for.
pub async fn close<O: CloseOps + ?Sized>(
    ops: &O,
    account: &str,
    journal: &dyn Journal,
    poll: Duration,
    polls: u32,
    now: DateTime<Utc>,
) -> Result<Outcome, ConnectorError> {
    let mut ours = journal.latest(CLOSE_REQUESTED).await?.is_some();
    let accepted = journal.latest(CLOSE_ACCEPTED).await?.is_some();
    let state = ops.state(account).await?;
    let done = |ours: bool| {
        if ours {
            Outcome::Done
        } else {
            Outcome::AlreadyDone
        }
    };
    if is_closed(&state) {
        return Ok(done(ours));
    }
    if state != "PENDING_CLOSURE" && !accepted {
        ops.tag(
            account,
            CLOSED_AT_TAG,
            &now.to_rfc3339_opts(SecondsFormat::Secs, true),
        )
        .await?;
        journal.record(CLOSE_REQUESTED, account).await?;
        let sent = ops.close(account).await?;
        journal.record(CLOSE_ACCEPTED, account).await?;
        ours = ours || sent;
        info!(account, "CloseAccount accepted");
    } else {
        debug!(account, state = %state, "closure asked for already; only waiting");
    }
    match wait_for_closure(|| ops.state(account), || ops.sleep(poll), polls).await? {
        Closure::Closed => Ok(done(ours)),
        Closure::Pending(state) => Err(ConnectorError::new(
            ErrorClass::Retryable {
                retry_after: Some(poll),
            },
            "closure_pending",
            format!(
                "account {account} is {state} after CloseAccount; AWS closes accounts in the background, the next attempt only waits for SUSPENDED"
            ),
        )),
    }
}

pub async fn apply(
    ctx: &Ctx<'_>,
    action: &Action,
    journal: &dyn Journal,
) -> Result<Outcome, ConnectorError> {
    let account = account_of(action)?;
    match action.kind.0.as_str() {
        CLOSE_ACCOUNT => {
            refuse_management(ctx, account).await?;
            close(
                ctx.client,
                account,
                journal,
                ctx.cfg.close_poll(),
                ctx.cfg.close_polls(),
                Utc::now(),
            )
            .await
        }
        MOVE_ACCOUNT => {
            let to = destination_of(action)?;
            refuse_management(ctx, account).await?;
            let from = ctx.client.parent(account).await?;
            if from == to {
                return Ok(Outcome::AlreadyDone);
            }
            Ok(if ctx.client.move_account(account, &from, to).await? {
                info!(connector = %ctx.instance, account, from = %from, to, "account moved");
                Outcome::Done
            } else {
                Outcome::AlreadyDone
            })
        }
        other => Err(ConnectorError::unknown_action(format!(
            "the aws-organizations connector has no action {other:?}"
        ))),
    }
}

pub async fn verify(ctx: &Ctx<'_>, action: &Action) -> Result<Verdict, ConnectorError> {
    let account = account_of(action)?;
    match action.kind.0.as_str() {
        CLOSE_ACCOUNT => {
            let state = ctx.client.describe_account(account).await?.state;
            Ok(if is_closed(&state) {
                Verdict::Confirmed
            } else {
                Verdict::NotConfirmed {
                    detail: format!("account {account} is {state}, not SUSPENDED"),
                }
            })
        }
        MOVE_ACCOUNT => {
            let to = destination_of(action)?;
            let parent = ctx.client.parent(account).await?;
            Ok(if parent == to {
                Verdict::Confirmed
            } else {
                Verdict::NotConfirmed {
                    detail: format!("account {account} is in {parent}, not in {to}"),
                }
            })
        }
        other => Err(ConnectorError::unknown_action(format!(
            "the aws-organizations connector has no action {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use revoke_core::MemoryJournal;

    use super::*;

    /// Organizations as a script: each DescribeAccount answers the next state (the last one
    /// repeats), and every call is written down.
    #[derive(Default)]
    struct Script {
        states: Mutex<VecDeque<String>>,
        calls: Mutex<Vec<String>>,
        close_error: Option<ConnectorError>,
    }

    impl Script {
        fn new(states: &[&str]) -> Self {
            Self {
                states: Mutex::new(states.iter().map(|s| s.to_string()).collect()),
                ..Self::default()
            }
        }
        fn then(&self, states: &[&str]) {
            let mut q = self.states.lock().expect("lock");
            q.clear();
            q.extend(states.iter().map(|s| s.to_string()));
        }
        fn calls(&self) -> Vec<String> {
            std::mem::take(&mut *self.calls.lock().expect("lock"))
        }
        fn log(&self, c: String) {
            self.calls.lock().expect("lock").push(c);
        }
    }

    #[async_trait]
    impl CloseOps for Script {
        async fn state(&self, _account: &str) -> Result<String, ConnectorError> {
            self.log("DescribeAccount".into());
            let mut q = self.states.lock().expect("lock");
            let s = if q.len() > 1 {
                q.pop_front()
            } else {
                q.front().cloned()
            };
            Ok(s.unwrap_or_default())
        }
        async fn tag(&self, _account: &str, key: &str, value: &str) -> Result<(), ConnectorError> {
            self.log(format!("TagResource {key}={value}"));
            Ok(())
        }
        async fn close(&self, _account: &str) -> Result<bool, ConnectorError> {
            self.log("CloseAccount".into());
            match &self.close_error {
                Some(e) => Err(e.clone()),
                None => Ok(true),
            }
        }
        async fn sleep(&self, d: Duration) {
            self.log(format!("sleep {}", d.as_secs()));
        }
    }

    const ID: &str = "111111111111";
    const POLL: Duration = Duration::from_secs(5);

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-31T12:00:00Z")
            .expect("time")
            .with_timezone(&Utc)
    }

    #[tokio::test]
    async fn a_slow_closure_is_handed_back_and_the_retry_only_polls() {
        let aws = Script::new(&["ACTIVE", "PENDING_CLOSURE"]);
        let journal = MemoryJournal::new();
        let err = close(&aws, ID, &journal, POLL, 2, now())
            .await
            .expect_err("still pending after two polls");
        assert_eq!(err.code, "closure_pending");
        assert_eq!(
            err.class,
            ErrorClass::Retryable {
                retry_after: Some(POLL)
            }
        );
        assert_eq!(
            aws.calls(),
            [
                "DescribeAccount",
                "TagResource revoked:closed-at=2026-03-31T12:00:00Z",
                "CloseAccount",
                "DescribeAccount",
                "sleep 5",
                "DescribeAccount",
                "sleep 5",
                "DescribeAccount",
            ]
        );
        let names: Vec<String> = journal
            .entries()
            .await
            .expect("entries")
            .into_iter()
            .map(|e| format!("{}={}", e.name, e.value))
            .collect();
        assert_eq!(
            names,
            [
                format!("{CLOSE_REQUESTED}={ID}"),
                format!("{CLOSE_ACCEPTED}={ID}")
            ]
        );

        // The executor comes back: AWS is still working, then done. No second CloseAccount.
        aws.then(&["PENDING_CLOSURE", "PENDING_CLOSURE", "SUSPENDED"]);
        let out = close(&aws, ID, &journal, POLL, 8, now())
            .await
            .expect("closed");
        assert_eq!(out, Outcome::Done);
        assert_eq!(
            aws.calls(),
            [
                "DescribeAccount",
                "DescribeAccount",
                "sleep 5",
                "DescribeAccount"
            ]
        );

        // And once more: nothing left to do, and it was this action that did it.
        assert_eq!(
            close(&aws, ID, &journal, POLL, 8, now()).await,
            Ok(Outcome::Done)
        );
        assert_eq!(aws.calls(), ["DescribeAccount"]);
        // Another action (a fresh journal) finds it done by someone else.
        let fresh = MemoryJournal::new();
        assert_eq!(
            close(&aws, ID, &fresh, POLL, 8, now()).await,
            Ok(Outcome::AlreadyDone)
        );
    }

    #[tokio::test]
    async fn a_closure_someone_else_started_is_only_waited_for() {
        let aws = Script::new(&["PENDING_CLOSURE", "PENDING_CLOSURE", "SUSPENDED"]);
        let journal = MemoryJournal::new();
        let out = close(&aws, ID, &journal, POLL, 8, now()).await;
        assert_eq!(out, Ok(Outcome::AlreadyDone));
        assert!(!aws
            .calls()
            .iter()
            .any(|c| c != "DescribeAccount" && c != "sleep 5"));
        assert!(journal.entries().await.expect("entries").is_empty());
    }

    #[tokio::test]
    async fn a_crash_between_request_and_answer_sends_close_again() {
        // close_requested but no close_accepted: the earlier attempt may never have reached AWS.
        let aws = Script::new(&["ACTIVE", "SUSPENDED"]);
        let journal = MemoryJournal::new();
        journal.record(CLOSE_REQUESTED, ID).await.expect("record");
        assert_eq!(
            close(&aws, ID, &journal, POLL, 8, now()).await,
            Ok(Outcome::Done)
        );
        assert!(aws.calls().contains(&"CloseAccount".to_string()));
    }

    #[tokio::test]
    async fn a_refused_close_is_not_marked_accepted() {
        let aws = Script {
            close_error: Some(ConnectorError::conflict("closure_quota_exceeded", "quota")),
            ..Script::new(&["ACTIVE"])
        };
        let journal = MemoryJournal::new();
        let err = close(&aws, ID, &journal, POLL, 8, now())
            .await
            .expect_err("refused");
        assert_eq!(err.code, "closure_quota_exceeded");
        assert_eq!(journal.latest(CLOSE_ACCEPTED).await, Ok(None));
    }

    #[tokio::test]
    async fn the_poll_state_machine() {
        let run = |states: Vec<&'static str>, polls: u32| async move {
            let q = Mutex::new(VecDeque::from(states));
            let sleeps = Mutex::new(0u32);
            let end = wait_for_closure(
                || {
                    let s = q
                        .lock()
                        .expect("lock")
                        .pop_front()
                        .unwrap_or("PENDING_CLOSURE");
                    async move { Ok(s.to_string()) }
                },
                || {
                    *sleeps.lock().expect("lock") += 1;
                    async {}
                },
                polls,
            )
            .await;
            let n = *sleeps.lock().expect("lock");
            (end, n)
        };
        assert_eq!(run(vec!["SUSPENDED"], 8).await, (Ok(Closure::Closed), 0));
        assert_eq!(run(vec!["CLOSED"], 0).await, (Ok(Closure::Closed), 0));
        assert_eq!(
            run(vec!["PENDING_CLOSURE", "PENDING_CLOSURE", "SUSPENDED"], 8).await,
            (Ok(Closure::Closed), 2)
        );
        assert_eq!(
            run(vec!["PENDING_CLOSURE", "PENDING_CLOSURE", "SUSPENDED"], 1).await,
            (Ok(Closure::Pending("PENDING_CLOSURE".into())), 1)
        );
        assert_eq!(
            run(vec!["ACTIVE"], 0).await,
            (Ok(Closure::Pending("ACTIVE".into())), 0)
        );
        let failing = wait_for_closure(
            || async { Err(ConnectorError::retryable("timeout", "no answer")) },
            || async {},
            3,
        )
        .await;
        assert_eq!(failing.map_err(|e| e.code), Err("timeout".to_string()));
    }
}
