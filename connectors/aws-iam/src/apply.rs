//! Apply and verify. Every action first finds the user it was pinned to (pin.rs): a planned
//! name that now names another user fails as `identity_changed` and sends nothing; a pinned user
//! that is gone altogether takes everything of it with it (`AlreadyDone`, nothing sent).
//!
//! Then a removal is sent without reading its target first: IAM answers NoSuchEntity when the
//! key, password, policy, attachment or membership is not there, and that answer is held
//! against the pin again (`pin::resolve_fresh`): the pinned user still there under the name
//! means the target is gone (`AlreadyDone`); gone means the same; renamed meanwhile, the removal
//! is sent again under the new name. Some actions still read before they write, because no
//! answer of the write would tell that the effect already held: `quarantine_user` when discovery
//! saw the quarantine already (PutUserPolicy succeeds either way, and a rerun must send no
//! write), `delete_rotated_key` (it must refuse a key somebody reactivated) and the MFA actions
//! (a device's serial is a name); and every retried attempt.
//!
//! Verify reads back in batches (`verify_many`): one scan per account
//! (GetAccountAuthorizationDetails) says which pinned users are gone, which confirms every action
//! on them, and lists the policies and groups of those still there; their keys, password and
//! other credentials are read once per user and kind of listing, not once per action.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_iam::types::StatusType;
use revoke_core::{Action, ConnectorError, Journal, Outcome, Verdict};
use tracing::info;

use crate::classify::{CallError, UNKNOWN_ACTION_KIND};
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
                    UNKNOWN_ACTION_KIND,
                    &format!("unknown action kind {other}"),
                ),
            })
        }
    })
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
        match pin::resolve(&ctx.clients.lookups, iam, account, pin, planned).await? {
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
    // A retry reads first: the answer to the attempt before may have been lost after IAM did it.
    if reads_first(a) || journal.attempt() > 1 {
        let seen = read(&iam, kind, &user, id).await?;
        if done(kind, seen) {
            return Ok(Outcome::AlreadyDone);
        }
        if kind == DELETE_ROTATED_KEY && seen == (Seen::Present { active: true }) {
            return Err(ConnectorError::conflict(
                "key_reactivated",
                format!("access key {id} of {user} in {account} was reactivated after its rotation; it is left in place"),
            ));
        }
    }
    blind(ctx, &iam, a, kind, user, id).await
}

/// Whether an action reads its target before it writes (see the module doc): the rest send
/// their removal and classify IAM's answer. `quarantine_user` reads unless discovery saw no
/// quarantine policy on the user (a plan without that param reads).
fn reads_first(a: &Action) -> bool {
    match a.kind.0.as_str() {
        QUARANTINE_USER => a.params.get(QUARANTINED_AT_PLAN).map(String::as_str) != Some("false"),
        DELETE_ROTATED_KEY | DEACTIVATE_MFA_DEVICE => true,
        _ => false,
    }
}

/// Sends the action to the pinned user, found under `user` a moment ago. NoSuchEntity is held
/// against the pin again with a lookup of its own: the user still there under that name means
/// the target is gone, a gone user means the same, a user renamed meanwhile gets the write
/// again under its new name.
async fn blind(
    ctx: &Ctx<'_>,
    iam: &aws_sdk_iam::Client,
    a: &Action,
    kind: &str,
    mut user: String,
    id: &str,
) -> Result<Outcome, ConnectorError> {
    let account = a.param("account")?;
    let pin = a.pinned()?;
    for _ in 0..3 {
        info!(connector = %ctx.instance, action_id = %a.id.0, kind, user = %user, "sending");
        match mutate(ctx, iam, kind, &user, id).await {
            Ok(()) => {
                if kind == DELETE_USER {
                    ctx.clients.mark_gone(account, &pin.id);
                }
                return Ok(Outcome::Done);
            }
            Err(e) if e.is_gone() => {
                match pin::resolve_fresh(&ctx.clients.lookups, iam, account, pin, &user).await? {
                    Pinned::Gone => return Ok(Outcome::AlreadyDone),
                    Pinned::Here(now) if now == user => return Ok(Outcome::AlreadyDone),
                    Pinned::Here(now) => user = now,
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ConnectorError::retryable(
        "renamed_meanwhile",
        format!("{}: the pinned user was renamed while the action was sent, three times; nothing is known to be done", a.target),
    ))
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
    let seen = if kind == DELETE_USER {
        Seen::Present { active: true }
    } else {
        read(&iam, kind, &user, id).await?
    };
    Ok(if done(kind, seen) {
        Verdict::Confirmed
    } else {
        Verdict::NotConfirmed {
            detail: format!("{kind} {}: still {seen:?}", a.target),
        }
    })
}

/// The listing that shows the target of an action of `kind`, on a user that exists; `None`
/// for the user itself (it exists, so `delete_user` is not confirmed).
fn listing_of(kind: &str) -> Option<&'static str> {
    Some(match kind {
        QUARANTINE_USER | DELETE_USER_POLICY | DELETE_QUARANTINE_POLICY => "iam:ListUserPolicies",
        DEACTIVATE_ACCESS_KEY | DELETE_ACCESS_KEY | DELETE_ROTATED_KEY => "iam:ListAccessKeys",
        DELETE_LOGIN_PROFILE => "iam:GetLoginProfile",
        DELETE_SIGNING_CERTIFICATE => "iam:ListSigningCertificates",
        DELETE_SSH_PUBLIC_KEY => "iam:ListSSHPublicKeys",
        DELETE_SERVICE_CREDENTIAL => "iam:ListServiceSpecificCredentials",
        DEACTIVATE_MFA_DEVICE => "iam:ListMFADevices",
        DETACH_USER_POLICY => "iam:ListAttachedUserPolicies",
        REMOVE_FROM_GROUP => "iam:ListGroupsForUser",
        _ => return None,
    })
}

/// One listing of a user: what is there, by id, and whether it is active (keys; the rest are
/// active while they exist).
type Listing = HashMap<String, bool>;

/// Reads one listing of `user` (see `listing_of`). A user gone meanwhile lists nothing.
async fn list(iam: &aws_sdk_iam::Client, op: &str, user: &str) -> Result<Listing, CallError> {
    let r = list_inner(iam, op, user).await;
    match r {
        Err(e) if e.is_gone() => Ok(Listing::new()),
        other => other,
    }
}

async fn list_inner(iam: &aws_sdk_iam::Client, op: &str, user: &str) -> Result<Listing, CallError> {
    let present = |ids: Vec<String>| ids.into_iter().map(|i| (i, true)).collect::<Listing>();
    Ok(match op {
        "iam:ListUserPolicies" => {
            let o = iam
                .list_user_policies()
                .user_name(user)
                .max_items(1000)
                .send()
                .await
                .map_err(|e| CallError::of("iam:ListUserPolicies", &e))?;
            present(o.policy_names().to_vec())
        }
        "iam:ListAccessKeys" => {
            let o = iam
                .list_access_keys()
                .user_name(user)
                .send()
                .await
                .map_err(|e| CallError::of("iam:ListAccessKeys", &e))?;
            o.access_key_metadata()
                .iter()
                .filter_map(|k| {
                    k.access_key_id()
                        .map(|id| (id.to_string(), k.status().is_some_and(active)))
                })
                .collect()
        }
        "iam:GetLoginProfile" => {
            iam.get_login_profile()
                .user_name(user)
                .send()
                .await
                .map_err(|e| CallError::of("iam:GetLoginProfile", &e))?;
            present(vec![String::new()])
        }
        "iam:ListSigningCertificates" => {
            let o = iam
                .list_signing_certificates()
                .user_name(user)
                .send()
                .await
                .map_err(|e| CallError::of("iam:ListSigningCertificates", &e))?;
            present(
                o.certificates()
                    .iter()
                    .map(|c| c.certificate_id().to_string())
                    .collect(),
            )
        }
        "iam:ListSSHPublicKeys" => {
            let o = iam
                .list_ssh_public_keys()
                .user_name(user)
                .send()
                .await
                .map_err(|e| CallError::of("iam:ListSSHPublicKeys", &e))?;
            present(
                o.ssh_public_keys()
                    .iter()
                    .map(|k| k.ssh_public_key_id().to_string())
                    .collect(),
            )
        }
        "iam:ListServiceSpecificCredentials" => {
            let o = iam
                .list_service_specific_credentials()
                .user_name(user)
                .send()
                .await
                .map_err(|e| CallError::of("iam:ListServiceSpecificCredentials", &e))?;
            present(
                o.service_specific_credentials()
                    .iter()
                    .map(|c| c.service_specific_credential_id().to_string())
                    .collect(),
            )
        }
        "iam:ListMFADevices" => {
            let o = iam
                .list_mfa_devices()
                .user_name(user)
                .send()
                .await
                .map_err(|e| CallError::of("iam:ListMFADevices", &e))?;
            present(
                o.mfa_devices()
                    .iter()
                    .map(|d| d.serial_number().to_string())
                    .collect(),
            )
        }
        "iam:ListAttachedUserPolicies" => {
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
                    .filter_map(|p| p.policy_arn().map(str::to_string))
                    .collect(),
            )
        }
        _ => {
            let o = iam
                .list_groups_for_user()
                .user_name(user)
                .max_items(1000)
                .send()
                .await
                .map_err(|e| CallError::of("iam:ListGroupsForUser", &e))?;
            present(
                o.groups()
                    .iter()
                    .map(|g| g.group_name().to_string())
                    .collect(),
            )
        }
    })
}

/// Reads back many applied actions together: per account, one scan says where each pinned
/// user is (the same three answers as pin.rs: there, under which name; gone; or its planned
/// name now names another user, `identity_changed`); every action on a gone user is confirmed;
/// a user still there is read once per listing its actions need. Rotations and virtual MFA
/// devices are read back one by one (`verify`). One result per action, in order.
pub async fn verify_many(
    ctx: &Ctx<'_>,
    actions: &[Action],
) -> Vec<Result<Verdict, ConnectorError>> {
    let mut out: Vec<Option<Result<Verdict, ConnectorError>>> = vec![None; actions.len()];
    let mut by_account: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, a) in actions.iter().enumerate() {
        match a.kind.0.as_str() {
            ROTATE_ACCESS_KEY | DELETE_VIRTUAL_MFA_DEVICE => {
                out[i] = Some(verify(ctx, a).await);
            }
            _ => match a.param("account") {
                Ok(account) => by_account.entry(account).or_default().push(i),
                Err(e) => out[i] = Some(Err(e)),
            },
        }
    }
    for (account, idx) in by_account {
        let verdicts = verify_account(ctx, account, actions, &idx).await;
        for (i, v) in idx.into_iter().zip(verdicts) {
            out[i] = Some(v);
        }
    }
    out.into_iter()
        .map(|v| {
            v.unwrap_or_else(|| {
                Err(ConnectorError::permanent(
                    "not_verified",
                    "no verdict was made for this action",
                ))
            })
        })
        .collect()
}

/// The verdicts of `idx` (actions of one account), in that order.
async fn verify_account(
    ctx: &Ctx<'_>,
    account: &str,
    actions: &[Action],
    idx: &[usize],
) -> Vec<Result<Verdict, ConnectorError>> {
    let all_err = |e: ConnectorError| idx.iter().map(|_| Err(e.clone())).collect();
    let iam = match ctx.clients.iam(account).await {
        Ok(c) => c,
        Err(e) => return all_err(e),
    };
    // Only pins not known gone need the listing.
    let need_listing = idx.iter().any(|&i| {
        actions[i]
            .pinned()
            .is_ok_and(|p| !ctx.clients.is_gone(account, &p.id))
    });
    // One scan of the account's users (GetAccountAuthorizationDetails, as discovery makes it):
    // every UserId and name, and each user's inline and attached policies and groups.
    let scan = if need_listing {
        match crate::discover::scan_users(ctx.clients, account).await {
            Ok(u) => u,
            Err(e) => return all_err(e),
        }
    } else {
        Vec::new()
    };
    let users: HashMap<String, String> = scan
        .iter()
        .map(|u| (u.user_id.clone(), u.name.clone()))
        .collect();
    let by_name: HashMap<String, &str> = users
        .iter()
        .map(|(id, name)| (name.to_ascii_lowercase(), id.as_str()))
        .collect();
    let mut listings: HashMap<(String, &'static str), Result<Listing, ConnectorError>> =
        HashMap::new();
    for u in &scan {
        let present = |ids: &[String]| Ok(ids.iter().map(|i| (i.clone(), true)).collect());
        listings.insert((u.name.clone(), "iam:ListUserPolicies"), present(&u.inline));
        listings.insert(
            (u.name.clone(), "iam:ListAttachedUserPolicies"),
            present(&u.attached),
        );
        listings.insert(
            (u.name.clone(), "iam:ListGroupsForUser"),
            present(&u.groups),
        );
    }
    let mut out = Vec::with_capacity(idx.len());
    for &i in idx {
        let a = &actions[i];
        let r = async {
            let pin = a.pinned()?;
            let planned = a.param("user")?;
            if ctx.clients.is_gone(account, &pin.id) {
                return Ok(Verdict::Confirmed);
            }
            let Some(user) = users.get(&pin.id) else {
                // Listed now, after discovery saw it and the action was applied, and not
                // there: gone for good (IAM never reuses a UserId).
                ctx.clients.mark_gone(account, &pin.id);
                return Ok(Verdict::Confirmed);
            };
            if let Some(other) = by_name.get(&planned.to_ascii_lowercase()) {
                if *other != pin.id {
                    let name = users.get(*other).map_or("", String::as_str);
                    return Err(pin.changed(format!("UserId {other} ({account}/{name})")));
                }
            }
            let kind = a.kind.0.as_str();
            let Some(op) = listing_of(kind) else {
                return Ok(Verdict::NotConfirmed {
                    detail: format!("{kind} {}: still Present", a.target),
                });
            };
            let key = (user.clone(), op);
            if !listings.contains_key(&key) {
                let l = list(&iam, op, user).await.map_err(ConnectorError::from);
                listings.insert(key.clone(), l);
            }
            let listing = match &listings[&key] {
                Ok(l) => l,
                Err(e) => return Err(e.clone()),
            };
            let id = id_of(ctx, a)?;
            let seen = match listing.get(id) {
                Some(active) => Seen::Present { active: *active },
                None => Seen::Absent,
            };
            if kind == QUARANTINE_USER && seen == Seen::Absent {
                // Read back late, the quarantine may be gone already: the delete phase removes
                // it after every credential it covers (delete_quarantine_policy). It held if no
                // access key of the user is active; else it is not confirmed.
                let key = (user.clone(), "iam:ListAccessKeys");
                if !listings.contains_key(&key) {
                    let l = list(&iam, key.1, user).await.map_err(ConnectorError::from);
                    listings.insert(key.clone(), l);
                }
                if let Ok(keys) = &listings[&key] {
                    if !keys.values().any(|active| *active) {
                        return Ok(Verdict::Confirmed);
                    }
                }
            }
            Ok(if done(kind, seen) {
                Verdict::Confirmed
            } else {
                Verdict::NotConfirmed {
                    detail: format!("{kind} {}: still {seen:?}", a.target),
                }
            })
        }
        .await;
        out.push(r);
    }
    out
}
