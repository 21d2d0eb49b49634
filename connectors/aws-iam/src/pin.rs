//! The user an action was planned for, found again before anything is sent.
//!
//! Every action is pinned to the UserId discovery saw (`AIDA...`). IAM never gives a UserId to
//! another user, but a user name is reused as soon as the user is deleted (or renamed) and a new
//! one created under it. So before every write, and before every verdict, the planned name is
//! asked with GetUser (IAM user names are case-insensitive) and the answer's UserId compared
//! with the pin:
//!
//! - the same UserId: act on it (under the name IAM holds it by now);
//! - another UserId: the name now names someone else; the action fails as the permanent
//!   `identity_changed`, naming both, and nothing is sent;
//! - NoSuchEntity: the name names nobody, which does not yet say the pinned user is gone (it may
//!   have been renamed). ListUsers is searched for the UserId: found, act on it under its new
//!   name; not found, the pinned user is gone, and removals are already done. A UserId found gone
//!   stays gone (IAM never reuses one), so it is remembered and not searched for again.
//!
//! Several actions run side by side (the executor leases a user's contain actions, and its
//! removals, together). A lookup waits `GATHER` (20 ms) before it is sent, and every action of
//! the same account that starts meanwhile adds its pin to it instead of sending its own: one
//! GetUser when they are all one user's, one ListUsers (UserId and name of every user, the same
//! three answers) when they are more users than the account's listing has pages. A lookup is
//! joined only before it is sent: whichever pin it answers, it was asked after that action
//! started and before its write, as the action's own GetUser would have been. A lookup after a
//! write's NoSuchEntity joins nothing (`resolve_fresh`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_sdk_iam::types::User;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use revoke_core::{AccountPin, ConnectorError};
use tracing::info;

use crate::classify::CallError;

/// Where the pinned user is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pinned {
    /// It exists, under this name (the planned one, or a new one after a rename).
    Here(String),
    /// No user of the account has the pinned UserId any more.
    Gone,
}

/// What one lookup of a planned name found, before it is held against the pin.
#[derive(Debug, Clone)]
enum Found {
    /// The pinned UserId, under this name.
    Pinned(String),
    /// The planned name names another user, described for `identity_changed`.
    Other(String),
    /// Neither the planned name nor any name holds the pinned UserId.
    Gone,
}

/// How long a pin lookup waits for the other actions of its account before it is sent.
pub const GATHER: Duration = Duration::from_millis(20);

/// (UserId, planned name) of one pin asked.
type Asked = (String, String);

/// What a gathered lookup found for each pin asked.
type Answers = Arc<HashMap<Asked, Result<Found, ConnectorError>>>;

type Lookup = Shared<BoxFuture<'static, Answers>>;

/// A lookup gathering the pins of one account: the pins asked so far and the answer to come.
#[derive(Debug)]
struct Gathering {
    asked: Vec<Asked>,
    answer: Lookup,
}

/// The pin lookups gathering actions, by account (a lookup leaves the map as it is sent), how
/// many ListUsers pages each account took last, and the (account, UserId) of pinned users found
/// gone: IAM never reuses a UserId, so they stay gone, and the next action on them needs no
/// search.
#[derive(Debug, Default, Clone)]
pub struct InFlight {
    gathering: Arc<Mutex<HashMap<String, Gathering>>>,
    pages: Arc<Mutex<HashMap<String, usize>>>,
    gone: Arc<Mutex<HashSet<(String, String)>>>,
}

impl InFlight {
    /// Whether the user with this UserId was found gone from `account` already.
    pub fn is_gone(&self, account: &str, user_id: &str) -> bool {
        self.gone
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&(account.to_string(), user_id.to_string()))
    }

    /// Remembers that the user with this UserId is gone from `account` for good.
    pub fn mark_gone(&self, account: &str, user_id: &str) {
        self.gone
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((account.to_string(), user_id.to_string()));
    }

    /// The answer for `asked` of the lookup of `account` not sent yet, or of a new one.
    async fn join(
        &self,
        iam: &aws_sdk_iam::Client,
        account: &str,
        asked: Asked,
    ) -> Result<Found, ConnectorError> {
        let answer = {
            let mut map = self
                .gathering
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match map.get_mut(account) {
                Some(g) => {
                    g.asked.push(asked.clone());
                    g.answer.clone()
                }
                None => {
                    let answer = self.send_later(iam.clone(), account.to_string());
                    map.insert(
                        account.to_string(),
                        Gathering {
                            asked: vec![asked.clone()],
                            answer: answer.clone(),
                        },
                    );
                    answer
                }
            }
        };
        answer.await.get(&asked).cloned().unwrap_or_else(|| {
            Err(ConnectorError::retryable(
                "pin_not_looked_up",
                "the pin lookup answered without this pin",
            ))
        })
    }

    /// After `GATHER`, takes the pins asked and looks them up: one ListUsers for all when they
    /// are more users than the account's listing has pages, else one lookup per pin.
    fn send_later(&self, iam: aws_sdk_iam::Client, account: String) -> Lookup {
        let this = self.clone();
        async move {
            tokio::time::sleep(GATHER).await;
            // Sent from here on: an action starting now asks again.
            let mut asked = this
                .gathering
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&account)
                .map(|g| g.asked)
                .unwrap_or_default();
            asked.sort();
            asked.dedup();
            let users: std::collections::HashSet<&str> =
                asked.iter().map(|(id, _)| id.as_str()).collect();
            let pages = this.pages(&account).unwrap_or(1);
            let mut out = HashMap::new();
            if users.len() >= 2 && users.len() > pages {
                match this.list_users(&iam, &account).await {
                    Ok(listing) => {
                        for a in asked {
                            let found = found_in(&listing, &account, &a.0, &a.1);
                            out.insert(a, Ok(found));
                        }
                    }
                    Err(e) => {
                        for a in asked {
                            out.insert(a, Err(e.clone()));
                        }
                    }
                }
            } else {
                for a in asked {
                    let found = lookup(&iam, &account, &a.0, &a.1).await;
                    out.insert(a, found);
                }
            }
            Arc::new(out)
        }
        .boxed()
        .shared()
    }

    fn pages(&self, account: &str) -> Option<usize> {
        self.pages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(account)
            .copied()
    }

    /// [`list_users`], remembering how many pages it took.
    pub async fn list_users(
        &self,
        iam: &aws_sdk_iam::Client,
        account: &str,
    ) -> Result<HashMap<String, String>, ConnectorError> {
        let (users, pages) = list_users(iam).await?;
        self.pages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(account.to_string(), pages);
        Ok(users)
    }
}

/// What a listing of every user (UserId to name) says about a pin, as `lookup` would: the
/// planned name held by another UserId, the pinned UserId under some name, or neither.
fn found_in(users: &HashMap<String, String>, account: &str, id: &str, planned: &str) -> Found {
    if let Some((other, name)) = users
        .iter()
        .find(|(uid, name)| uid.as_str() != id && name.eq_ignore_ascii_case(planned))
    {
        return Found::Other(format!("UserId {other} ({account}/{name})"));
    }
    match users.get(id) {
        Some(name) => Found::Pinned(name.clone()),
        None => Found::Gone,
    }
}

/// How `pin.changed` names the user the planned name now belongs to.
fn describe(account: &str, u: &User) -> String {
    format!("UserId {} ({account}/{})", u.user_id(), u.user_name())
}

/// Finds the pinned user of `account`, planned under the name `planned`, joining a lookup of
/// the same pin that is in flight.
pub async fn resolve(
    lookups: &InFlight,
    iam: &aws_sdk_iam::Client,
    account: &str,
    pin: &AccountPin,
    planned: &str,
) -> Result<Pinned, ConnectorError> {
    if lookups.is_gone(account, &pin.id) {
        return Ok(Pinned::Gone);
    }
    let found = lookups
        .join(iam, account, (pin.id.clone(), planned.to_string()))
        .await?;
    held_against(lookups, account, pin, planned, found)
}

/// [`resolve`] with a lookup of its own, sent now: after a write answered NoSuchEntity, to tell
/// "the target is gone" from "the user is gone or was renamed meanwhile".
pub async fn resolve_fresh(
    lookups: &InFlight,
    iam: &aws_sdk_iam::Client,
    account: &str,
    pin: &AccountPin,
    planned: &str,
) -> Result<Pinned, ConnectorError> {
    if lookups.is_gone(account, &pin.id) {
        return Ok(Pinned::Gone);
    }
    let found = lookup(iam, account, &pin.id, planned).await?;
    held_against(lookups, account, pin, planned, found)
}

fn held_against(
    lookups: &InFlight,
    account: &str,
    pin: &AccountPin,
    planned: &str,
    found: Found,
) -> Result<Pinned, ConnectorError> {
    match found {
        Found::Pinned(name) => {
            if name != planned {
                info!(account, user_id = %pin.id, planned, now = %name, "the pinned user was renamed; acting on it under its new name");
            }
            Ok(Pinned::Here(name))
        }
        Found::Other(who) => Err(pin.changed(who)),
        Found::Gone => {
            lookups.mark_gone(account, &pin.id);
            Ok(Pinned::Gone)
        }
    }
}

/// GetUser of the planned name; on NoSuchEntity, the UserId searched in ListUsers.
async fn lookup(
    iam: &aws_sdk_iam::Client,
    account: &str,
    id: &str,
    planned: &str,
) -> Result<Found, ConnectorError> {
    match iam.get_user().user_name(planned).send().await {
        Ok(o) => {
            let Some(u) = o.user() else {
                return Err(ConnectorError::retryable(
                    "no_user",
                    format!("iam:GetUser {planned}: expected a user in the answer, found none"),
                ));
            };
            Ok(if u.user_id() == id {
                Found::Pinned(u.user_name().to_string())
            } else {
                Found::Other(describe(account, u))
            })
        }
        Err(e) => {
            let e = CallError::of("iam:GetUser", &e);
            if !e.is_gone() {
                return Err(e.into());
            }
            Ok(match find_by_id(iam, id).await? {
                Some(name) => Found::Pinned(name),
                None => Found::Gone,
            })
        }
    }
}

/// The name of the user whose UserId is `id`, if one has it (every page of ListUsers).
async fn find_by_id(iam: &aws_sdk_iam::Client, id: &str) -> Result<Option<String>, ConnectorError> {
    Ok(list_users(iam).await?.0.remove(id))
}

/// Every user of the account, UserId to name, and how many pages of ListUsers that took (at
/// most five: IAM holds at most 5,000 users per account).
async fn list_users(
    iam: &aws_sdk_iam::Client,
) -> Result<(HashMap<String, String>, usize), ConnectorError> {
    let mut out = HashMap::new();
    let mut marker: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = iam
            .list_users()
            .max_items(1000)
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| CallError::of("iam:ListUsers", &e))?;
        pages += 1;
        for u in page.users() {
            out.insert(u.user_id().to_string(), u.user_name().to_string());
        }
        match (page.is_truncated, page.marker) {
            (true, Some(m)) => marker = Some(m),
            _ => return Ok((out, pages)),
        }
    }
}
