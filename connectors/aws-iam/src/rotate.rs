//! Rotation of a service key the leaver owned: create a new key, write it to its destination,
//! deactivate the old one (its delete comes after a grace period, as its own action).
//!
//! Crash-safe through the action's journal, whose entries are key ids and times, never secrets:
//!
//! 1. `started` (a time) is recorded before the first CreateAccessKey;
//! 2. `new_key` (the id) is recorded right after CreateAccessKey, before the secret goes
//!    anywhere;
//! 3. `written` (the id) is recorded once the destination holds the secret.
//!
//! A destination that cannot take a secret is found before a key is made (`Destination::probe`);
//! one that fails the write anyway gets the new key deleted at once (`discarded`), and the
//! action fails as the permanent `destination_unwritable`: the user never keeps a key whose
//! secret went nowhere, and no attempt makes another.
//!
//! A later attempt finishes a written rotation (deactivates the old key), discards a recorded
//! key whose secret was never written (its secret is lost: IAM shows it only once), and deletes
//! a key created after `started` that no entry names (a crash between create and record).
//! A key that is in neither the plan nor the journal and is older than `started` is somebody
//! else's: the action stops as a conflict. IAM allows two keys per user, so a rotation never
//! creates a third.

use std::time::Duration;

use aws_sdk_iam::types::StatusType;
use aws_smithy_types::date_time::Format;
use chrono::{DateTime, Utc};
use revoke_core::{Action, ConnectorError, Journal, Outcome, Verdict};
use secrecy::SecretString;
use tracing::{info, warn};

use crate::classify::CallError;
use crate::client::Ctx;
use crate::destination::Destination;
use crate::discover::ROTATED_TAG;

/// How far a key's creation time (IAM's clock) may be before `started` (ours) and still count
/// as made by this action.
const CLOCK_SKEW: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
struct Key {
    id: String,
    active: bool,
    created: Option<DateTime<Utc>>,
}

async fn keys(iam: &aws_sdk_iam::Client, user: &str) -> Result<Vec<Key>, ConnectorError> {
    let o = iam
        .list_access_keys()
        .user_name(user)
        .send()
        .await
        .map_err(|e| {
            let e = CallError::of("iam:ListAccessKeys", &e);
            if e.is_gone() {
                ConnectorError::permanent(
                    "service_user_gone",
                    format!("service user {user} is gone; there is no key to rotate"),
                )
            } else {
                e.classify()
            }
        })?;
    Ok(o.access_key_metadata()
        .iter()
        .filter_map(|k| {
            Some(Key {
                id: k.access_key_id()?.to_string(),
                active: k.status() == Some(&StatusType::Active),
                created: k
                    .create_date()
                    .and_then(|d| d.fmt(Format::DateTime).ok())
                    .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
                    .map(|d| d.with_timezone(&Utc)),
            })
        })
        .collect())
}

async fn delete_key(iam: &aws_sdk_iam::Client, user: &str, id: &str) -> Result<(), ConnectorError> {
    match iam
        .delete_access_key()
        .user_name(user)
        .access_key_id(id)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => {
            let e = CallError::of("iam:DeleteAccessKey", &e);
            if e.is_gone() {
                Ok(())
            } else {
                Err(e.into())
            }
        }
    }
}

async fn deactivate(iam: &aws_sdk_iam::Client, user: &str, id: &str) -> Result<(), ConnectorError> {
    iam.update_access_key()
        .user_name(user)
        .access_key_id(id)
        .status(StatusType::Inactive)
        .send()
        .await
        .map_err(|e| CallError::of("iam:UpdateAccessKey", &e))?;
    Ok(())
}

async fn rotated_key(
    iam: &aws_sdk_iam::Client,
    user: &str,
) -> Result<Option<String>, ConnectorError> {
    let o = iam
        .list_user_tags()
        .user_name(user)
        .send()
        .await
        .map_err(|e| CallError::of("iam:ListUserTags", &e))?;
    Ok(o.tags()
        .iter()
        .find(|t| t.key() == ROTATED_TAG)
        .map(|t| t.value().to_string()))
}

async fn tag_rotated(
    iam: &aws_sdk_iam::Client,
    user: &str,
    key: &str,
) -> Result<(), ConnectorError> {
    let tag = aws_sdk_iam::types::Tag::builder()
        .key(ROTATED_TAG)
        .value(key)
        .build()
        .map_err(|e| ConnectorError::permanent("bad_tag", e.to_string()))?;
    iam.tag_user()
        .user_name(user)
        .tags(tag)
        .send()
        .await
        .map_err(|e| CallError::of("iam:TagUser", &e))?;
    Ok(())
}

/// Rotates the key of the service user the action is pinned to, `user` being its name now.
pub async fn rotate(
    ctx: &Ctx<'_>,
    iam: &aws_sdk_iam::Client,
    a: &Action,
    user: &str,
    journal: &dyn Journal,
) -> Result<Outcome, ConnectorError> {
    let account = a.param("account")?;
    let old = a.param("id")?;
    let known: Vec<&str> = a
        .param("known_keys")?
        .split(',')
        .filter(|s| !s.is_empty())
        .collect();
    let dest = Destination::parse(a.param("destination")?)?;

    let started = journal
        .latest("started")
        .await?
        .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|d| d.with_timezone(&Utc));
    let recorded = journal.latest("new_key").await?;
    let mut written = journal.latest("written").await?;
    let mut current = keys(iam, user).await?;
    let has = |ks: &[Key], id: &str| ks.iter().any(|k| k.id == id);

    // A recorded key that never reached the journal as written may still have reached the
    // destination (a crash between the write and the record): the destination says.
    if let Some(n) = &recorded {
        if written.as_deref() != Some(n) && has(&current, n) {
            if dest.holds(ctx, account, n).await? {
                journal.record("written", n).await?;
                written = Some(n.clone());
            } else {
                warn!(connector = %ctx.instance, action_id = %a.id.0, key = %n, "discarding a new key whose secret was never written");
                delete_key(iam, user, n).await?;
                journal.record("discarded", n).await?;
                current = keys(iam, user).await?;
            }
        }
    }

    // The rotation already happened: only the old key's deactivation may be left.
    if let Some(n) = written.as_ref().filter(|n| has(&current, n)) {
        let old_active = current.iter().any(|k| k.id == old && k.active);
        let tagged = rotated_key(iam, user).await? == Some(n.clone());
        if old_active {
            deactivate(iam, user, old).await?;
            info!(connector = %ctx.instance, action_id = %a.id.0, new_key = %n, "old key deactivated");
        }
        if !tagged {
            tag_rotated(iam, user, n).await?;
        }
        return Ok(if old_active || !tagged {
            Outcome::Done
        } else {
            Outcome::AlreadyDone
        });
    }

    // Keys neither planned nor journaled: strays of an interrupted attempt, or somebody else's.
    let ours = |k: &Key| known.contains(&k.id.as_str()) || Some(&k.id) == recorded.as_ref();
    let mut strays = Vec::new();
    for k in current.iter().filter(|k| !ours(k)) {
        let after_start = match (started, k.created) {
            (Some(s), Some(c)) => {
                c + chrono::Duration::from_std(CLOCK_SKEW).unwrap_or_default() >= s
            }
            _ => false,
        };
        if !after_start {
            return Err(ConnectorError::conflict(
                "unexpected_key",
                format!(
                    "service user {user} in {account} has access key {} that was not there when the plan was made; plan again",
                    k.id
                ),
            ));
        }
        strays.push(k.id.clone());
    }
    for id in &strays {
        warn!(connector = %ctx.instance, action_id = %a.id.0, key = %id, "deleting a key left by an interrupted rotation");
        delete_key(iam, user, id).await?;
        journal.record("stray_deleted", id).await?;
    }
    if !strays.is_empty() {
        current = keys(iam, user).await?;
    }

    match current.iter().find(|k| k.id == old) {
        None => {
            return Ok(Outcome::Skipped {
                reason: format!("access key {old} is gone; nothing to rotate"),
            })
        }
        Some(k) if !k.active => {
            return Ok(Outcome::Skipped {
                reason: format!("access key {old} is inactive; it is not rotated"),
            })
        }
        Some(_) => {}
    }
    if current.len() >= 2 {
        return Err(ConnectorError::conflict(
            "two_keys",
            format!("service user {user} in {account} already has two access keys (IAM's limit); delete the unused one, then apply again"),
        ));
    }

    // A destination that cannot take the secret is said before a key is made.
    dest.probe()?;
    if started.is_none() {
        journal.record("started", &Utc::now().to_rfc3339()).await?;
    }
    let created = iam
        .create_access_key()
        .user_name(user)
        .send()
        .await
        .map_err(|e| CallError::of("iam:CreateAccessKey", &e))?;
    let Some(k) = created.access_key else {
        return Err(ConnectorError::retryable(
            "no_key",
            "iam:CreateAccessKey answered without a key",
        ));
    };
    let new_id = k.access_key_id().to_string();
    let secret = SecretString::from(k.secret_access_key().to_string());
    drop(k);
    journal.record("new_key", &new_id).await?;
    info!(connector = %ctx.instance, action_id = %a.id.0, new_key = %new_id, "new key created");

    let written = dest
        .write(ctx, account, user, &new_id, &secret, &a.key.0)
        .await;
    drop(secret);
    if let Err(e) = written {
        // The secret went nowhere (IAM shows it only once): the new key is of no use to
        // anybody and must not stay beside the old one. Deleted now; should the delete fail,
        // the journal's `new_key` without `written` makes the next attempt discard it.
        warn!(connector = %ctx.instance, action_id = %a.id.0, key = %new_id, error = %e.message, "the new key's secret could not be written; deleting the new key");
        delete_key(iam, user, &new_id).await?;
        journal.record("discarded", &new_id).await?;
        return Err(e);
    }
    journal.record("written", &new_id).await?;
    deactivate(iam, user, old).await?;
    tag_rotated(iam, user, &new_id).await?;
    info!(connector = %ctx.instance, action_id = %a.id.0, new_key = %new_id, destination = %dest, "rotated");
    Ok(Outcome::Done)
}

/// The old key is inactive or gone, another key is active, and the destination holds it.
pub async fn verify(
    ctx: &Ctx<'_>,
    iam: &aws_sdk_iam::Client,
    a: &Action,
    user: &str,
) -> Result<Verdict, ConnectorError> {
    let account = a.param("account")?;
    let old = a.param("id")?;
    let dest = Destination::parse(a.param("destination")?)?;
    let ks = keys(iam, user).await?;
    if ks.iter().any(|k| k.id == old && k.active) {
        return Ok(Verdict::NotConfirmed {
            detail: format!("access key {old} of {user} is still active"),
        });
    }
    for k in ks.iter().filter(|k| k.active && k.id != old) {
        if dest.holds(ctx, account, &k.id).await? {
            return Ok(Verdict::Confirmed);
        }
    }
    Ok(Verdict::NotConfirmed {
        detail: format!("{dest} does not hold an active key of {user}"),
    })
}
