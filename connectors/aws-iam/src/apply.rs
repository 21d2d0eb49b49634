//! Apply and verify. Every action first finds the user it was pinned to (pin.rs): a planned
//! name that now names another user fails as `identity_changed` and sends nothing. Then it reads
//! before it writes: what is already gone (or already inactive, or already quarantined) is
//! `AlreadyDone` and sends no mutation; a pinned user that is gone altogether takes everything
//! of it with it.

use aws_sdk_iam::types::StatusType;
use revoke_core::{Action, ConnectorError, Journal, Outcome, Verdict};
use tracing::info;

use crate::classify::CallError;
use crate::client::Ctx;
use crate::pin::{self, Pinned};
use crate::plan::*;
use crate::rotate;

/// The inline policy of the contain phase: deny everything to this user's credentials,
/// including the temporary ones made from them.
pub const QUARANTINE_DOCUMENT: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"RevokedQuarantine","Effect":"Deny","Action":"*","Resource":"*"}]}"#;

/// What a read saw of an action's target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Absent,
    Present { active: bool },
}

fn active(s: &StatusType) -> bool {
    *s == StatusType::Active
}

/// Reads the target of an action of `kind` on `user` (the pinned user's current name). A user
/// that is gone reads as `Absent`. The virtual MFA device has its own read (`virtual_mfa`).
pub async fn read(
    iam: &aws_sdk_iam::Client,
    kind: &str,
    user: &str,
    id: &str,
) -> Result<Seen, CallError> {
    let r = read_inner(iam, kind, user, id).await;
    match r {
        Err(e) if e.is_gone() => Ok(Seen::Absent),
        other => other,
    }
}

async fn read_inner(
    iam: &aws_sdk_iam::Client,
    kind: &str,
    user: &str,
    id: &str,
) -> Result<Seen, CallError> {
    let present = |b: bool| {
        if b {
            Seen::Present { active: true }
        } else {
            Seen::Absent
        }
    };
    Ok(match kind {
        QUARANTINE_USER | DELETE_USER_POLICY | DELETE_QUARANTINE_POLICY => {
            iam.get_user_policy()
                .user_name(user)
                .policy_name(id)
                .send()
                .await
                .map_err(|e| CallError::of("iam:GetUserPolicy", &e))?;
            Seen::Present { active: true }
        }
        DEACTIVATE_ACCESS_KEY | DELETE_ACCESS_KEY | ROTATE_ACCESS_KEY | DELETE_ROTATED_KEY => {
            let o = iam
                .list_access_keys()
                .user_name(user)
                .send()
                .await
                .map_err(|e| CallError::of("iam:ListAccessKeys", &e))?;
            match o
                .access_key_metadata()
                .iter()
                .find(|k| k.access_key_id() == Some(id))
            {
                Some(k) => Seen::Present {
                    active: k.status().is_some_and(active),
                },
                None => Seen::Absent,
            }
        }
        DELETE_LOGIN_PROFILE => {
            iam.get_login_profile()
                .user_name(user)
                .send()
                .await
                .map_err(|e| CallError::of("iam:GetLoginProfile", &e))?;
            Seen::Present { active: true }
        }
        DELETE_SIGNING_CERTIFICATE => {
            let o = iam
                .list_signing_certificates()
                .user_name(user)
                .send()
                .await
                .map_err(|e| CallError::of("iam:ListSigningCertificates", &e))?;
            present(o.certificates().iter().any(|c| c.certificate_id() == id))
        }
        DELETE_SSH_PUBLIC_KEY => {
            let o = iam
                .list_ssh_public_keys()
                .user_name(user)
                .send()
                .await
                .map_err(|e| CallError::of("iam:ListSSHPublicKeys", &e))?;
            present(
                o.ssh_public_keys()
                    .iter()
                    .any(|k| k.ssh_public_key_id() == id),
            )
        }
        DELETE_SERVICE_CREDENTIAL => {
            let o = iam
                .list_service_specific_credentials()
                .user_name(user)
                .send()
                .await
                .map_err(|e| CallError::of("iam:ListServiceSpecificCredentials", &e))?;
            present(
                o.service_specific_credentials()
                    .iter()
                    .any(|c| c.service_specific_credential_id() == id),
            )
        }
        DEACTIVATE_MFA_DEVICE => {
            let o = iam
                .list_mfa_devices()
                .user_name(user)
                .send()
                .await
                .map_err(|e| CallError::of("iam:ListMFADevices", &e))?;
            present(o.mfa_devices().iter().any(|d| d.serial_number() == id))
        }
        DETACH_USER_POLICY => {
            let o = iam
                .list_attached_user_policies()
                .user_name(user)
                .max_items(1000)
                .send()
                .await
                .map_err(|e| CallError::of("iam:ListAttachedUserPolicies", &e))?;
            present(
                o.attached_policies()
                    .iter()
                    .any(|p| p.policy_arn() == Some(id)),
            )
        }
        REMOVE_FROM_GROUP => {
            let o = iam
                .list_groups_for_user()
                .user_name(user)
                .max_items(1000)
                .send()
                .await
                .map_err(|e| CallError::of("iam:ListGroupsForUser", &e))?;
            present(o.groups().iter().any(|g| g.group_name() == id))
        }
        DELETE_USER => {
            iam.get_user()
                .user_name(user)
                .send()
                .await
                .map_err(|e| CallError::of("iam:GetUser", &e))?;
            Seen::Present { active: true }
        }
        other => {
            return Err(CallError {
                op: "apply",
                fault: revoke_aws::Fault::service(
                    400,
                    "UnknownAction",
                    &format!("unknown action kind {other}"),
                ),
            })
        }
    })
}

/// What an action's target looks like on the pinned user, who exists (as `user`): the user
/// itself needs no second read.
async fn seen(
    iam: &aws_sdk_iam::Client,
    kind: &str,
    user: &str,
    id: &str,
) -> Result<Seen, CallError> {
    if kind == DELETE_USER {
        return Ok(Seen::Present { active: true });
    }
    read(iam, kind, user, id).await
}

/// Whether what was read is the action's end state.
fn done(kind: &str, seen: Seen) -> bool {
    match kind {
        QUARANTINE_USER => seen != Seen::Absent,
        DEACTIVATE_ACCESS_KEY => seen != Seen::Present { active: true },
        _ => seen == Seen::Absent,
    }
}

/// The id an action acts on (the policy name for the quarantine actions).
fn id_of<'a>(ctx: &'a Ctx<'_>, a: &'a Action) -> Result<&'a str, ConnectorError> {
    match a.kind.0.as_str() {
        QUARANTINE_USER => Ok(&ctx.cfg.quarantine_policy),
        DELETE_LOGIN_PROFILE | DELETE_USER => Ok(""),
        _ => a.param("id"),
    }
}

/// The user an action touches, found again by its pin (see pin.rs); `None` when it is gone.
async fn pinned_user(
    ctx: &Ctx<'_>,
    iam: &aws_sdk_iam::Client,
    a: &Action,
) -> Result<Option<String>, ConnectorError> {
    let account = a.param("account")?;
    let planned = a.param("user")?;
    let pin = a.pinned()?;
    Ok(
        match pin::resolve(ctx.clients, iam, account, pin, planned).await? {
            Pinned::Here(name) => Some(name),
            Pinned::Gone => None,
        },
    )
}

pub async fn apply(
    ctx: &Ctx<'_>,
    a: &Action,
    journal: &dyn Journal,
) -> Result<Outcome, ConnectorError> {
    let kind = a.kind.0.as_str();
    let account = a.param("account")?;
    let iam = ctx.clients.iam(account).await?;
    // Before anything else: the planned user, or nothing is sent.
    let user = pinned_user(ctx, &iam, a).await?;
    if kind == ROTATE_ACCESS_KEY {
        return match user {
            Some(user) => rotate::rotate(ctx, &iam, a, &user, journal).await,
            None => Ok(Outcome::Skipped {
                reason: format!(
                    "service user {} is gone; there is no key to rotate",
                    a.pinned()?
                ),
            }),
        };
    }
    let id = id_of(ctx, a)?;
    if kind == DELETE_VIRTUAL_MFA_DEVICE {
        // The device outlives its user; it is ours unless it is enabled on somebody else.
        return match virtual_mfa(&iam, id).await? {
            None => Ok(Outcome::AlreadyDone),
            Some(owner) => {
                mfa_owner_is_pinned(a, id, owner.as_ref())?;
                send(ctx, &iam, a, kind, "", id).await
            }
        };
    }
    // The pinned user is gone, and everything of it with it: the end state of every removal,
    // and nothing left to quarantine.
    let Some(user) = user else {
        return Ok(Outcome::AlreadyDone);
    };
    let seen = seen(&iam, kind, &user, id).await?;
    if done(kind, seen) {
        return Ok(Outcome::AlreadyDone);
    }
    if kind == DELETE_ROTATED_KEY && seen == (Seen::Present { active: true }) {
        return Err(ConnectorError::conflict(
            "key_reactivated",
            format!("access key {id} of {user} in {account} was reactivated after its rotation; it is left in place"),
        ));
    }
    let outcome = send(ctx, &iam, a, kind, &user, id).await?;
    if kind == DELETE_USER {
        ctx.clients.mark_gone(account, &a.pinned()?.id);
    }
    Ok(outcome)
}

async fn send(
    ctx: &Ctx<'_>,
    iam: &aws_sdk_iam::Client,
    a: &Action,
    kind: &str,
    user: &str,
    id: &str,
) -> Result<Outcome, ConnectorError> {
    info!(connector = %ctx.instance, action_id = %a.id.0, kind, user, "sending");
    match mutate(ctx, iam, kind, user, id).await {
        Ok(()) => Ok(Outcome::Done),
        Err(e) if e.is_gone() => Ok(Outcome::AlreadyDone),
        Err(e) => Err(e.into()),
    }
}

/// A virtual MFA device by serial: `None` when there is none, else the UserId it is enabled on
/// (`None` inside when it is enabled on nobody).
async fn virtual_mfa(
    iam: &aws_sdk_iam::Client,
    serial: &str,
) -> Result<Option<Option<String>>, ConnectorError> {
    let mut marker = None;
    loop {
        let o = iam
            .list_virtual_mfa_devices()
            .max_items(1000)
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| CallError::of("iam:ListVirtualMFADevices", &e))?;
        if let Some(d) = o
            .virtual_mfa_devices()
            .iter()
            .find(|d| d.serial_number() == serial)
        {
            return Ok(Some(d.user().map(|u| u.user_id().to_string())));
        }
        match (o.is_truncated, o.marker) {
            (true, Some(m)) => marker = Some(m),
            _ => return Ok(None),
        }
    }
}

/// A device enabled on another user than the pinned one is not this action's to delete.
fn mfa_owner_is_pinned(
    a: &Action,
    serial: &str,
    owner: Option<&String>,
) -> Result<(), ConnectorError> {
    let pin = a.pinned()?;
    match owner {
        Some(id) if id != &pin.id => Err(pin.changed(format!(
            "UserId {id}, on which the virtual MFA device {serial} is enabled now"
        ))),
        _ => Ok(()),
    }
}

async fn mutate(
    ctx: &Ctx<'_>,
    iam: &aws_sdk_iam::Client,
    kind: &str,
    user: &str,
    id: &str,
) -> Result<(), CallError> {
    match kind {
        QUARANTINE_USER => {
            iam.put_user_policy()
                .user_name(user)
                .policy_name(&ctx.cfg.quarantine_policy)
                .policy_document(QUARANTINE_DOCUMENT)
                .send()
                .await
                .map_err(|e| CallError::of("iam:PutUserPolicy", &e))?;
        }
        DEACTIVATE_ACCESS_KEY => {
            iam.update_access_key()
                .user_name(user)
                .access_key_id(id)
                .status(StatusType::Inactive)
                .send()
                .await
                .map_err(|e| CallError::of("iam:UpdateAccessKey", &e))?;
        }
        DELETE_LOGIN_PROFILE => {
            iam.delete_login_profile()
                .user_name(user)
                .send()
                .await
                .map_err(|e| CallError::of("iam:DeleteLoginProfile", &e))?;
        }
        DELETE_ACCESS_KEY | DELETE_ROTATED_KEY => {
            iam.delete_access_key()
                .user_name(user)
                .access_key_id(id)
                .send()
                .await
                .map_err(|e| CallError::of("iam:DeleteAccessKey", &e))?;
        }
        DELETE_SIGNING_CERTIFICATE => {
            iam.delete_signing_certificate()
                .user_name(user)
                .certificate_id(id)
                .send()
                .await
                .map_err(|e| CallError::of("iam:DeleteSigningCertificate", &e))?;
        }
        DELETE_SSH_PUBLIC_KEY => {
            iam.delete_ssh_public_key()
                .user_name(user)
                .ssh_public_key_id(id)
                .send()
                .await
                .map_err(|e| CallError::of("iam:DeleteSSHPublicKey", &e))?;
        }
        DELETE_SERVICE_CREDENTIAL => {
            iam.delete_service_specific_credential()
                .user_name(user)
                .service_specific_credential_id(id)
                .send()
                .await
                .map_err(|e| CallError::of("iam:DeleteServiceSpecificCredential", &e))?;
        }
        DEACTIVATE_MFA_DEVICE => {
            iam.deactivate_mfa_device()
                .user_name(user)
                .serial_number(id)
                .send()
                .await
                .map_err(|e| CallError::of("iam:DeactivateMFADevice", &e))?;
        }
        DELETE_VIRTUAL_MFA_DEVICE => {
            iam.delete_virtual_mfa_device()
                .serial_number(id)
                .send()
                .await
                .map_err(|e| CallError::of("iam:DeleteVirtualMFADevice", &e))?;
        }
        DELETE_USER_POLICY | DELETE_QUARANTINE_POLICY => {
            iam.delete_user_policy()
                .user_name(user)
                .policy_name(id)
                .send()
                .await
                .map_err(|e| CallError::of("iam:DeleteUserPolicy", &e))?;
        }
        DETACH_USER_POLICY => {
            iam.detach_user_policy()
                .user_name(user)
                .policy_arn(id)
                .send()
                .await
                .map_err(|e| CallError::of("iam:DetachUserPolicy", &e))?;
        }
        REMOVE_FROM_GROUP => {
            iam.remove_user_from_group()
                .user_name(user)
                .group_name(id)
                .send()
                .await
                .map_err(|e| CallError::of("iam:RemoveUserFromGroup", &e))?;
        }
        DELETE_USER => {
            iam.delete_user()
                .user_name(user)
                .send()
                .await
                .map_err(|e| CallError::of("iam:DeleteUser", &e))?;
        }
        _ => {}
    }
    Ok(())
}

pub async fn verify(ctx: &Ctx<'_>, a: &Action) -> Result<Verdict, ConnectorError> {
    let kind = a.kind.0.as_str();
    let account = a.param("account")?;
    let iam = ctx.clients.iam(account).await?;
    let user = pinned_user(ctx, &iam, a).await?;
    let id = if kind == ROTATE_ACCESS_KEY {
        ""
    } else {
        id_of(ctx, a)?
    };
    if kind == DELETE_VIRTUAL_MFA_DEVICE {
        return Ok(match virtual_mfa(&iam, id).await? {
            None => Verdict::Confirmed,
            Some(owner) => {
                mfa_owner_is_pinned(a, id, owner.as_ref())?;
                Verdict::NotConfirmed {
                    detail: format!("virtual MFA device {id} still exists"),
                }
            }
        });
    }
    // The pinned user is gone: nothing of it is left (its keys, its rotated-out key included).
    let Some(user) = user else {
        return Ok(Verdict::Confirmed);
    };
    if kind == ROTATE_ACCESS_KEY {
        return rotate::verify(ctx, &iam, a, &user).await;
    }
    let seen = seen(&iam, kind, &user, id).await?;
    Ok(if done(kind, seen) {
        Verdict::Confirmed
    } else {
        Verdict::NotConfirmed {
            detail: format!("{kind} {}: still {seen:?}", a.target),
        }
    })
}
