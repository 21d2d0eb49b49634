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

use aws_sdk_iam::types::User;
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

/// How `pin.changed` names the user the planned name now belongs to.
fn describe(account: &str, u: &User) -> String {
    format!("UserId {} ({account}/{})", u.user_id(), u.user_name())
}

/// Finds the pinned user of `account`, planned under the name `planned`.
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
    match iam.get_user().user_name(planned).send().await {
        Ok(o) => {
            let Some(u) = o.user() else {
                return Err(ConnectorError::retryable(
                    "no_user",
                    format!("iam:GetUser {planned}: expected a user in the answer, found none"),
                ));
            };
            if u.user_id() == pin.id {
                Ok(Pinned::Here(u.user_name().to_string()))
            } else {
                Err(pin.changed(describe(account, u)))
            }
        }
        Err(e) => {
            let e = CallError::of("iam:GetUser", &e);
            if !e.is_gone() {
                return Err(e.into());
            }
            match find_by_id(iam, &pin.id).await? {
                Some(name) => {
                    info!(account, user_id = %pin.id, planned, now = %name, "the pinned user was renamed; acting on it under its new name");
                    Ok(Pinned::Here(name))
                }
                None => {
                    clients.mark_gone(account, &pin.id);
                    Ok(Pinned::Gone)
                }
            }
        }
    }
}

/// The name of the user whose UserId is `id`, if one has it (every page of ListUsers).
async fn find_by_id(iam: &aws_sdk_iam::Client, id: &str) -> Result<Option<String>, ConnectorError> {
    let mut marker: Option<String> = None;
    loop {
        let page = iam
            .list_users()
            .max_items(1000)
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| CallError::of("iam:ListUsers", &e))?;
        if let Some(u) = page.users().iter().find(|u| u.user_id() == id) {
            return Ok(Some(u.user_name().to_string()));
        }
        match (page.is_truncated, page.marker) {
            (true, Some(m)) => marker = Some(m),
            _ => return Ok(None),
        }
    }
}
