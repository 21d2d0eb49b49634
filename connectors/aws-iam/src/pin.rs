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
//! Actions of one user run side by side (the executor leases a user's contain actions, and its
//! removals, together). A lookup waits `GATHER` before it sends its GetUser, and every action
//! of the same pin that starts meanwhile waits for that lookup's answer instead of sending its
//! own. A lookup is joined only before it is sent: whichever action's pin it answers, it was
//! asked after that action started and before its write, as the action's own GetUser would have
//! been. A lookup after a write's NoSuchEntity joins nothing (`resolve_fresh`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_sdk_iam::types::User;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use revoke_core::{AccountPin, ConnectorError};
use tracing::info;

use crate::classify::CallError;
use crate::client::Clients;

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

/// How long a pin lookup waits for the other actions of its user before it is sent.
pub const GATHER: Duration = Duration::from_millis(10);

type Lookup = Shared<BoxFuture<'static, Result<Found, ConnectorError>>>;

/// (account, UserId, planned name).
type PinKey = (String, String, String);

/// The pin lookups gathering actions, by (account, UserId, planned name); a lookup leaves the
/// map as it is sent.
#[derive(Debug, Default, Clone)]
pub struct InFlight(Arc<Mutex<HashMap<PinKey, Lookup>>>);

impl InFlight {
    /// The lookup under `key` not sent yet, or a new one made by `make`.
    fn join<F>(&self, key: PinKey, make: impl FnOnce() -> F) -> Lookup
    where
        F: Future<Output = Result<Found, ConnectorError>> + Send + 'static,
    {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = map.get(&key) {
            return f.clone();
        }
        let fut = make();
        let this = self.clone();
        let k = key.clone();
        let lookup = async move {
            tokio::time::sleep(GATHER).await;
            // Sent from here on: an action starting now asks again.
            this.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&k);
            fut.await
        }
        .boxed()
        .shared();
        map.insert(key, lookup.clone());
        lookup
    }
}

/// How `pin.changed` names the user the planned name now belongs to.
fn describe(account: &str, u: &User) -> String {
    format!("UserId {} ({account}/{})", u.user_id(), u.user_name())
}

/// Finds the pinned user of `account`, planned under the name `planned`, joining a lookup of
/// the same pin that is in flight.
pub async fn resolve(
    clients: &Clients,
    iam: &aws_sdk_iam::Client,
    account: &str,
    pin: &AccountPin,
    planned: &str,
) -> Result<Pinned, ConnectorError> {
    if clients.is_gone(account, &pin.id) {
        return Ok(Pinned::Gone);
    }
    let key = (account.to_string(), pin.id.clone(), planned.to_string());
    let (iam2, account2, id, name) = (
        iam.clone(),
        account.to_string(),
        pin.id.clone(),
        planned.to_string(),
    );
    let found = clients
        .lookups
        .join(key, move || async move {
            lookup(&iam2, &account2, &id, &name).await
        })
        .await?;
    held_against(clients, account, pin, planned, found)
}

/// [`resolve`] with a lookup of its own, sent now: after a write answered NoSuchEntity, to tell
/// "the target is gone" from "the user is gone or was renamed meanwhile".
pub async fn resolve_fresh(
    clients: &Clients,
    iam: &aws_sdk_iam::Client,
    account: &str,
    pin: &AccountPin,
    planned: &str,
) -> Result<Pinned, ConnectorError> {
    if clients.is_gone(account, &pin.id) {
        return Ok(Pinned::Gone);
    }
    let found = lookup(iam, account, &pin.id, planned).await?;
    held_against(clients, account, pin, planned, found)
}

fn held_against(
    clients: &Clients,
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
            clients.mark_gone(account, &pin.id);
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
    Ok(list_users(iam).await?.remove(id))
}

/// Every user of the account, UserId to name (every page of ListUsers: at most five, IAM
/// holds at most 5,000 users per account).
pub async fn list_users(
    iam: &aws_sdk_iam::Client,
) -> Result<HashMap<String, String>, ConnectorError> {
    let mut out = HashMap::new();
    let mut marker: Option<String> = None;
    loop {
        let page = iam
            .list_users()
            .max_items(1000)
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| CallError::of("iam:ListUsers", &e))?;
        for u in page.users() {
            out.insert(u.user_id().to_string(), u.user_name().to_string());
        }
        match (page.is_truncated, page.marker) {
            (true, Some(m)) => marker = Some(m),
            _ => return Ok(out),
        }
    }
}
