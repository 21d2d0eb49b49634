//! Apply and verify, each on the user the plan pinned (Google's immutable user id). Every action
//! first reads `GET users/{pinned id}`: a user that is gone has nothing left to suspend, sign
//! out, strip or delete, unless its planned primary email now names another user (the leaver
//! deleted and the address reused between plan and apply): then the action fails as
//! `identity_changed` and sends nothing. Every path names the pinned id, never an email, except
//! Gmail and Licensing, which take only an address: there the address is the one the pinned id
//! has now, read just before.
//!
//! Each removal reads its target first (the grant, the app password, the membership, the role
//! assignment, the licence), so an effect that already holds is `AlreadyDone` without a write;
//! a 404 on the write itself (a race) is `AlreadyDone` too. Google cannot show sessions or
//! backup codes, and Gmail cannot be read once the user is suspended, so `sign_out`,
//! `invalidate_backup_codes`, the Gmail settings and the transfer record `done` in their journal
//! once Google confirmed them, and a later attempt that finds it sends nothing.
//!
//! The Drive transfer is neither idempotent nor synchronous: an attempt takes the transfer id
//! from its journal, else adopts a Drive transfer of the same owners that exists already (one
//! made by an attempt that died before its journal entry), else inserts one and records its id
//! before anything depends on it; then it polls until Google says `completed`, at most
//! `transfer_wait_secs`, and otherwise asks the executor to come back (`transfer_in_progress`).
//!
//! A mobile device's account wipe is pinned to the device and the user (a device whose owner
//! addresses no longer include the user's is left alone); the archive move journals the folder
//! the transfer made before it moves it, and stamps it with the leaver's id and retention date;
//! a shared drive's membership is never removed from its last organizer. A departing client's
//! share (`remove_client_permission`) is pinned to its permission id, the file and the grantee
//! the plan saw, and removed as the file's owner (or a drive's organizer, or the admin).

use std::time::Duration;

use reqwest::Method;
use revoke_core::{AccountPin, Action, ActionKey, ConnectorError, Journal, Outcome, Verdict};
use serde_json::{json, Value};
use tokio::time::Instant;
use tracing::{debug, info};

use crate::classify;
use crate::client::{encode, Client, Who};
use crate::config::GoogleConfig;
use crate::discover::{
    device_owned_by, drive_permissions, get_user, gmail_setting, inherited_only, is_drive_transfer,
    list_all, transfers, User, CALENDAR_APP_ID, DRIVE_APP_ID, WIPED_STATUSES,
};
use crate::plan::{
    ARCHIVE_DRIVE, DELETE_APP_PASSWORD, DELETE_GRANT, DELETE_USER, INVALIDATE_BACKUP_CODES,
    REMOVE_CLIENT_PERMISSION, REMOVE_GROUP, REMOVE_LICENCE, REMOVE_ROLE, REMOVE_SHARED_DRIVE,
    SET_AUTO_REPLY, SET_FORWARDING, SIGN_OUT, SUSPEND_USER, TRANSFER_DRIVE, TURN_OFF_2SV,
    WIPE_MOBILE_ACCOUNT,
};

/// The journal entry of the Drive transfer (its value: Google's transfer id).
pub const TRANSFER_ID: &str = "transfer_id";
/// The journal entry of the archive move (its value: the id of the folder the transfer made).
pub const ARCHIVE_FOLDER: &str = "archive_folder";
/// The `appProperties` key that ties an archived folder to the leaver's pinned user id.
pub const LEAVER_PROPERTY: &str = "revokedLeaverId";
/// The `appProperties` key that holds the retention date on an archived folder.
pub const RETAIN_PROPERTY: &str = "retainUntil";
/// A Drive folder's mime type.
pub const FOLDER_MIME: &str = "application/vnd.google-apps.folder";

/// The journal entry of a confirmed sign-out or backup-code invalidation (value: the user id).
pub const CONFIRMED: &str = "done";

const D: &str = "/admin/directory/v1";

pub struct Ctx<'a> {
    pub client: &'a Client,
    pub cfg: &'a GoogleConfig,
    pub instance: &'a str,
}

fn param<'a>(action: &'a Action, name: &str) -> Result<&'a str, ConnectorError> {
    action
        .params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ConnectorError::permanent(
                "bad_action",
                format!(
                    "{} {}: expected a {name} parameter, found none",
                    action.kind, action.target
                ),
            )
        })
}

/// The pinned account and its id, which the plan's `user_id` must agree with.
fn pinned(action: &Action) -> Result<(&AccountPin, &str), ConnectorError> {
    let pin = action.pinned()?;
    let user_id = param(action, "user_id")?;
    if pin.id != user_id {
        return Err(ConnectorError::permanent(
            "bad_action",
            format!(
                "{} {}: expected user_id to be the pinned {} {}, found {user_id}",
                action.kind, action.target, pin.id_kind, pin.id
            ),
        ));
    }
    Ok((pin, user_id))
}

fn unknown(kind: &str) -> ConnectorError {
    ConnectorError::unknown_action(format!(
        "the google-workspace connector has no action {kind:?}"
    ))
}

/// The pinned user is gone, so the effect holds on it; unless its planned primary email now
/// names another user, which apply must not call done.
async fn gone(client: &Client, pin: &AccountPin) -> Result<Outcome, ConnectorError> {
    if pin.name.contains('@') {
        if let Some(other) = get_user(client, &pin.name).await? {
            if other.id != pin.id {
                return Err(pin.changed(format!("{} {} ({})", pin.id_kind, other.id, pin.name)));
            }
        }
    }
    Ok(Outcome::AlreadyDone)
}

pub async fn apply(
    ctx: &Ctx<'_>,
    action: &Action,
    key: &ActionKey,
    journal: &dyn Journal,
) -> Result<Outcome, ConnectorError> {
    debug!(connector = %ctx.instance, action_id = %action.id, key = %key, kind = %action.kind, "google workspace apply");
    if action.kind.0 == REMOVE_CLIENT_PERMISSION {
        return remove_client_permission(ctx, action).await;
    }
    let (pin, user_id) = pinned(action)?;
    let kind = action.kind.0.as_str();
    if matches!(
        kind,
        SIGN_OUT
            | INVALIDATE_BACKUP_CODES
            | SET_AUTO_REPLY
            | SET_FORWARDING
            | TRANSFER_DRIVE
            | WIPE_MOBILE_ACCOUNT
            | ARCHIVE_DRIVE
    ) && journal.latest(CONFIRMED).await?.is_some()
    {
        return Ok(Outcome::AlreadyDone);
    }
    let client = ctx.client;
    if matches!(
        kind,
        DELETE_GRANT | DELETE_APP_PASSWORD | REMOVE_GROUP | REMOVE_ROLE
    ) {
        return remove_pinned(ctx, action, pin, user_id).await;
    }
    // Sign-out and backup codes are calls on the pinned id whose effect Google cannot show: sent
    // at once (the journal said not yet); a 404 is the pinned user gone.
    match kind {
        SIGN_OUT => {
            return confirmed_post(
                client,
                pin,
                &format!("{D}/users/{}/signOut", encode(user_id)),
                journal,
                user_id,
            )
            .await;
        }
        INVALIDATE_BACKUP_CODES => {
            return confirmed_post(
                client,
                pin,
                &format!("{D}/users/{}/verificationCodes/invalidate", encode(user_id)),
                journal,
                user_id,
            )
            .await;
        }
        _ => {}
    }
    let Some(user) = get_user(client, user_id).await?.filter(|u| u.id == user_id) else {
        return match kind {
            TRANSFER_DRIVE => {
                // Whether the files went with it is not ours to say done.
                gone(client, pin).await?;
                Err(ConnectorError::permanent(
                    "user_gone",
                    format!(
                        "{} {user_id} is gone; its Drive files were not transferred by this plan",
                        pin.id_kind
                    ),
                ))
            }
            SET_AUTO_REPLY | SET_FORWARDING => {
                gone(client, pin).await?;
                Ok(Outcome::Skipped {
                    reason: format!("{} {user_id} is gone; no mailbox to set", pin.id_kind),
                })
            }
            ARCHIVE_DRIVE => {
                gone(client, pin).await?;
                Err(ConnectorError::permanent(
                    "user_gone",
                    format!(
                        "{} {user_id} is gone; what the transfer moved cannot be tied to it any more",
                        pin.id_kind
                    ),
                ))
            }
            _ => gone(client, pin).await,
        };
    };
    match kind {
        SET_AUTO_REPLY | SET_FORWARDING => {
            let r = if kind == SET_AUTO_REPLY {
                auto_reply(ctx, action, &user).await?
            } else {
                forwarding(ctx, action, &user).await?
            };
            if r == Outcome::Done {
                journal.record(CONFIRMED, user_id).await?;
            }
            Ok(r)
        }
        SUSPEND_USER => suspend(client, &user).await,
        REMOVE_LICENCE => {
            let path = licence_path(action, &user)?;
            Ok(read_then_delete(client, &path, |_| true)
                .await?
                .unwrap_or(Outcome::AlreadyDone))
        }
        TRANSFER_DRIVE => transfer(ctx, action, user_id, journal).await,
        WIPE_MOBILE_ACCOUNT => wipe_account(ctx, action, &user, journal).await,
        TURN_OFF_2SV => turn_off_2sv(client, pin, &user).await,
        ARCHIVE_DRIVE => archive(ctx, action, &user, journal).await,
        REMOVE_SHARED_DRIVE => remove_drive_member(client, action, pin, &user).await,
        DELETE_USER => {
            let path = format!("{D}/users/{}", encode(user_id));
            let r = client.admin(Method::DELETE, &path, None).await?;
            match r.status {
                s if (200..300).contains(&s) => Ok(Outcome::Done),
                404 => gone(client, pin).await,
                _ => Err(classify::status(
                    &Method::DELETE,
                    &path,
                    &r,
                    client.backoff(),
                )),
            }
        }
        other => Err(unknown(other)),
    }
}

/// The removals whose own paths name the pinned id (a grant, an app password, a membership, a
/// role assignment): no separate read of the user first. The target's read answers for the
/// pinned id; only when it finds nothing is the user read, to tell "not there any more" (the
/// effect holds on the pinned user) from "the user is gone" (which checks the planned address).
async fn remove_pinned(
    ctx: &Ctx<'_>,
    action: &Action,
    pin: &AccountPin,
    user_id: &str,
) -> Result<Outcome, ConnectorError> {
    let client = ctx.client;
    let done = match action.kind.0.as_str() {
        DELETE_GRANT => {
            let path = format!(
                "{D}/users/{}/tokens/{}",
                encode(user_id),
                encode(param(action, "client_id")?)
            );
            read_then_delete(client, &path, |_| true).await?
        }
        DELETE_APP_PASSWORD => {
            let code = param(action, "code_id")?;
            if code.parse::<i64>().is_err() {
                return Err(ConnectorError::permanent(
                    "bad_action",
                    format!(
                        "{} {}: expected a numeric code_id, found {code:?}",
                        action.kind, action.target
                    ),
                ));
            }
            let path = format!("{D}/users/{}/asps/{code}", encode(user_id));
            read_then_delete(client, &path, |_| true).await?
        }
        REMOVE_GROUP => {
            let gid = param(action, "group_id")?;
            let path = format!("{D}/groups/{}/members/{}", encode(gid), encode(user_id));
            remove_member(client, &path).await?
        }
        REMOVE_ROLE => {
            let aid = param(action, "assignment_id")?;
            let path = format!(
                "{D}/customer/{}/roleassignments/{}",
                encode(&ctx.cfg.customer),
                encode(aid)
            );
            let uid = user_id.to_string();
            read_then_delete(client, &path, move |v| {
                v.get("assignedTo").and_then(Value::as_str) == Some(uid.as_str())
            })
            .await?
        }
        other => return Err(unknown(other)),
    };
    match done {
        Some(o) => Ok(o),
        None => match get_user(client, user_id).await?.filter(|u| u.id == user_id) {
            Some(_) => Ok(Outcome::AlreadyDone),
            None => gone(client, pin).await,
        },
    }
}

fn licence_path(action: &Action, user: &User) -> Result<String, ConnectorError> {
    Ok(format!(
        "/apps/licensing/v1/product/{}/sku/{}/user/{}",
        encode(param(action, "product_id")?),
        encode(param(action, "sku_id")?),
        encode(&user.primary_email)
    ))
}

async fn suspend(client: &Client, user: &User) -> Result<Outcome, ConnectorError> {
    if user.suspended {
        return Ok(Outcome::AlreadyDone);
    }
    let path = format!("{D}/users/{}", encode(&user.id));
    let r = client
        .admin(Method::PUT, &path, Some(&json!({ "suspended": true })))
        .await?;
    match r.status {
        s if (200..300).contains(&s) => Ok(Outcome::Done),
        _ => Err(classify::status(&Method::PUT, &path, &r, client.backoff())),
    }
}

/// A call Google cannot show the effect of: sent once, then `done` in the journal.
async fn confirmed_post(
    client: &Client,
    pin: &AccountPin,
    path: &str,
    journal: &dyn Journal,
    user_id: &str,
) -> Result<Outcome, ConnectorError> {
    let r = client.admin(Method::POST, path, None).await?;
    match r.status {
        s if (200..300).contains(&s) => {
            journal.record(CONFIRMED, user_id).await?;
            Ok(Outcome::Done)
        }
        404 => gone(client, pin).await,
        _ => Err(classify::status(&Method::POST, path, &r, client.backoff())),
    }
}

/// Reads the target; absent is `None` (no write), present (and `ours`) is deleted (`Some(Done)`;
/// `None` when the delete found it gone, a race).
async fn read_then_delete(
    client: &Client,
    path: &str,
    ours: impl Fn(&Value) -> bool,
) -> Result<Option<Outcome>, ConnectorError> {
    let r = client.admin(Method::GET, path, None).await?;
    match r.status {
        404 => return Ok(None),
        s if (200..300).contains(&s) => {
            if !r.json().is_some_and(|v| ours(&v)) {
                return Err(ConnectorError::permanent(
                    "target_changed",
                    format!("GET {path}: the target no longer belongs to the pinned user; nothing was sent"),
                ));
            }
        }
        _ => return Err(classify::status(&Method::GET, path, &r, client.backoff())),
    }
    let r = client.admin(Method::DELETE, path, None).await?;
    match r.status {
        s if (200..300).contains(&s) => Ok(Some(Outcome::Done)),
        404 => Ok(None),
        _ => Err(classify::status(
            &Method::DELETE,
            path,
            &r,
            client.backoff(),
        )),
    }
}

/// A 404 naming the group is a container gone (permanent); naming the member, not a member.
fn group_gone(r: &classify::Reply) -> bool {
    classify::message(&r.body).contains("groupKey")
}

async fn remove_member(client: &Client, path: &str) -> Result<Option<Outcome>, ConnectorError> {
    let r = client.admin(Method::GET, path, None).await?;
    match r.status {
        404 if group_gone(&r) => {
            return Err(ConnectorError::permanent(
                "group_not_found",
                format!("GET {path}: 404 {}", classify::message(&r.body)),
            ))
        }
        404 => return Ok(None),
        s if (200..300).contains(&s) => {}
        _ => return Err(classify::status(&Method::GET, path, &r, client.backoff())),
    }
    let r = client.admin(Method::DELETE, path, None).await?;
    match r.status {
        s if (200..300).contains(&s) => Ok(Some(Outcome::Done)),
        404 if !group_gone(&r) => Ok(None),
        _ => Err(classify::status(
            &Method::DELETE,
            path,
            &r,
            client.backoff(),
        )),
    }
}

fn mailbox_suspended(user: &User) -> Outcome {
    Outcome::Skipped {
        reason: format!(
            "{} is suspended already and Gmail answers failedPrecondition for a suspended user; the setting was not made",
            user.primary_email
        ),
    }
}

async fn auto_reply(
    ctx: &Ctx<'_>,
    action: &Action,
    user: &User,
) -> Result<Outcome, ConnectorError> {
    if user.suspended {
        return Ok(mailbox_suspended(user));
    }
    let subject = action.params.get("subject").cloned().unwrap_or_default();
    let body = param(action, "body")?;
    let client = ctx.client;
    let now = gmail_setting(client, &user.primary_email, "vacation").await?;
    let holds = now.get("enableAutoReply").and_then(Value::as_bool) == Some(true)
        && now
            .get("responseSubject")
            .and_then(Value::as_str)
            .unwrap_or("")
            == subject
        && now.get("responseBodyPlainText").and_then(Value::as_str) == Some(body);
    if holds {
        return Ok(Outcome::AlreadyDone);
    }
    let path = format!(
        "/gmail/v1/users/{}/settings/vacation",
        encode(&user.primary_email)
    );
    let settings = json!({
        "enableAutoReply": true,
        "responseSubject": subject,
        "responseBodyPlainText": body,
        "restrictToContacts": false,
        "restrictToDomain": false,
    });
    let r = client
        .send(
            &Who::Mailbox(user.primary_email.clone()),
            Method::PUT,
            &path,
            Some(&settings),
        )
        .await?;
    if r.is_success() {
        Ok(Outcome::Done)
    } else {
        Err(classify::status(&Method::PUT, &path, &r, client.backoff()))
    }
}

async fn forwarding(
    ctx: &Ctx<'_>,
    action: &Action,
    user: &User,
) -> Result<Outcome, ConnectorError> {
    if user.suspended {
        return Ok(mailbox_suspended(user));
    }
    let to = param(action, "forward_to")?.to_ascii_lowercase();
    let client = ctx.client;
    let who = Who::Mailbox(user.primary_email.clone());
    let now = gmail_setting(client, &user.primary_email, "autoForwarding").await?;
    if now.get("enabled").and_then(Value::as_bool) == Some(true)
        && now
            .get("emailAddress")
            .and_then(Value::as_str)
            .is_some_and(|a| a.eq_ignore_ascii_case(&to))
    {
        return Ok(Outcome::AlreadyDone);
    }
    let base = format!("/gmail/v1/users/{}/settings", encode(&user.primary_email));
    let list_path = format!("{base}/forwardingAddresses");
    let r = client.send(&who, Method::GET, &list_path, None).await?;
    if !r.is_success() {
        return Err(classify::status(
            &Method::GET,
            &list_path,
            &r,
            client.backoff(),
        ));
    }
    let status_of = |v: &Value| -> Option<String> {
        v.get("forwardingAddresses")?
            .as_array()?
            .iter()
            .find(|a| {
                a.get("forwardingEmail")
                    .and_then(Value::as_str)
                    .is_some_and(|e| e.eq_ignore_ascii_case(&to))
            })
            .and_then(|a| a.get("verificationStatus").and_then(Value::as_str))
            .map(str::to_string)
    };
    let mut status = r.json().as_ref().and_then(status_of);
    if status.is_none() {
        let r = client
            .send(
                &who,
                Method::POST,
                &list_path,
                Some(&json!({ "forwardingEmail": to })),
            )
            .await?;
        if !r.is_success() {
            return Err(classify::status(
                &Method::POST,
                &list_path,
                &r,
                client.backoff(),
            ));
        }
        status = r.json().and_then(|v| {
            v.get("verificationStatus")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    }
    if status.as_deref() != Some("accepted") {
        return Err(ConnectorError::conflict(
            "forwarding_address_pending",
            format!("the forwarding address {to} of {} waits for its owner to confirm Google's message (status {status:?})", user.primary_email),
        ));
    }
    let path = format!("{base}/autoForwarding");
    let body = json!({ "enabled": true, "emailAddress": to, "disposition": "leaveInInbox" });
    let r = client.send(&who, Method::PUT, &path, Some(&body)).await?;
    if r.is_success() {
        Ok(Outcome::Done)
    } else {
        Err(classify::status(&Method::PUT, &path, &r, client.backoff()))
    }
}

fn device_path(ctx: &Ctx<'_>, action: &Action) -> Result<String, ConnectorError> {
    Ok(format!(
        "{D}/customer/{}/devices/mobile/{}",
        encode(&ctx.cfg.customer),
        encode(param(action, "resource_id")?)
    ))
}

/// The device as it is now, if it still names the pinned user (`Ok(None)`: gone); one that now
/// names someone else is `target_changed`, and nothing is sent.
async fn device_of(
    ctx: &Ctx<'_>,
    action: &Action,
    user: &User,
) -> Result<Option<Value>, ConnectorError> {
    let client = ctx.client;
    let path = device_path(ctx, action)?;
    let r = client.admin(Method::GET, &path, None).await?;
    match r.status {
        404 => return Ok(None),
        s if (200..300).contains(&s) => {}
        _ => return Err(classify::status(&Method::GET, &path, &r, client.backoff())),
    }
    let v = r
        .json()
        .ok_or_else(|| classify::bad_response(&Method::GET, &path, "expected a mobile device"))?;
    if !device_owned_by(&v, &user.addresses()) {
        return Err(ConnectorError::permanent(
            "target_changed",
            format!(
                "GET {path}: the device now belongs to {:?}, not to {} ({}); nothing was sent",
                v.get("email").cloned().unwrap_or(Value::Null),
                user.primary_email,
                user.id
            ),
        ));
    }
    Ok(Some(v))
}

/// `admin_account_wipe` on one device of the pinned user: the work account goes, the device
/// stays. A device gone, or already wiping or wiped, is done.
async fn wipe_account(
    ctx: &Ctx<'_>,
    action: &Action,
    user: &User,
    journal: &dyn Journal,
) -> Result<Outcome, ConnectorError> {
    let client = ctx.client;
    let Some(device) = device_of(ctx, action, user).await? else {
        return Ok(Outcome::AlreadyDone);
    };
    if WIPED_STATUSES.contains(&text(&device, "status").as_str()) {
        journal.record(CONFIRMED, &user.id).await?;
        return Ok(Outcome::AlreadyDone);
    }
    let path = format!("{}/action", device_path(ctx, action)?);
    let r = client
        .admin(
            Method::POST,
            &path,
            Some(&json!({ "action": "admin_account_wipe" })),
        )
        .await?;
    match r.status {
        s if (200..300).contains(&s) => {
            journal.record(CONFIRMED, &user.id).await?;
            Ok(Outcome::Done)
        }
        404 => Ok(Outcome::AlreadyDone),
        _ => Err(classify::status(&Method::POST, &path, &r, client.backoff())),
    }
}

async fn turn_off_2sv(
    client: &Client,
    pin: &AccountPin,
    user: &User,
) -> Result<Outcome, ConnectorError> {
    if !user.two_sv {
        return Ok(Outcome::AlreadyDone);
    }
    let path = format!("{D}/users/{}/twoStepVerification/turnOff", encode(&user.id));
    let r = client.admin(Method::POST, &path, None).await?;
    match r.status {
        s if (200..300).contains(&s) => Ok(Outcome::Done),
        404 => gone(client, pin).await,
        _ => Err(classify::status(&Method::POST, &path, &r, client.backoff())),
    }
}

/// Escapes a value for a Drive search (`\` and `'`).
fn drive_quote(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\'', "\\'")
}

/// The folders of the archive drive tied to this leaver by [`LEAVER_PROPERTY`], as `who`.
async fn archived_folders(
    client: &Client,
    who: &Who,
    drive: &str,
    user_id: &str,
) -> Result<Vec<Value>, ConnectorError> {
    let q = format!(
        "appProperties has {{ key='{LEAVER_PROPERTY}' and value='{}' }} and trashed = false",
        drive_quote(user_id)
    );
    let path = format!(
        "/drive/v3/files?corpora=drive&driveId={}&includeItemsFromAllDrives=true&supportsAllDrives=true&q={}&fields={}",
        encode(drive),
        encode(&q),
        encode("nextPageToken,files(id,name,parents,driveId,appProperties)")
    );
    list_all(client, who, &path, "files").await
}

/// Whether a folder sits in the archive where planned, with the planned retention date.
fn archived_as_planned(f: &Value, action: &Action) -> bool {
    let p = |k: &str| action.params.get(k).map(String::as_str).unwrap_or("");
    let in_parent = f
        .get("parents")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(p("archive_parent"))));
    let props = f.get("appProperties");
    let prop = |k: &str| {
        props
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    text(f, "driveId") == p("archive_drive_id")
        && in_parent
        && prop(LEAVER_PROPERTY) == p("user_id")
        && prop(RETAIN_PROPERTY) == p("retain_until")
}

/// Moves the folder the transfer gave the new owner (named by Google after the leaver's
/// address) into the archive shared drive, as the new owner, and stamps it with the leaver's id
/// and the retention date. The folder id is journaled before the move; with none, a folder of
/// the archive already stamped with the leaver's id is the move done by an attempt that died
/// before its journal entry.
async fn archive(
    ctx: &Ctx<'_>,
    action: &Action,
    user: &User,
    journal: &dyn Journal,
) -> Result<Outcome, ConnectorError> {
    let client = ctx.client;
    let new_owner_id = param(action, "new_owner_id")?;
    let drive = param(action, "archive_drive_id")?;
    let parent = param(action, "archive_parent")?;
    let folder_name = param(action, "folder_name")?;
    let Some(owner) = get_user(client, new_owner_id)
        .await?
        .filter(|u| u.id == new_owner_id)
    else {
        return Err(ConnectorError::permanent(
            "transfer_target_gone",
            format!("the new owner {new_owner_id} is gone; nothing was sent"),
        ));
    };
    let who = Who::DriveOwner(owner.primary_email.clone());
    let fields = encode("id,name,parents,driveId,appProperties,mimeType");
    let folder = match journal.latest(ARCHIVE_FOLDER).await? {
        Some(id) => {
            let path = format!(
                "/drive/v3/files/{}?supportsAllDrives=true&fields={fields}",
                encode(&id)
            );
            let r = client.send(&who, Method::GET, &path, None).await?;
            match r.status {
                404 => {
                    return Err(ConnectorError::permanent(
                        "archive_folder_gone",
                        format!("the folder {id} the transfer made is gone; nothing was sent"),
                    ))
                }
                s if (200..300).contains(&s) => r.json().ok_or_else(|| {
                    classify::bad_response(&Method::GET, &path, "expected a file")
                })?,
                _ => return Err(classify::status(&Method::GET, &path, &r, client.backoff())),
            }
        }
        None => {
            let done = archived_folders(client, &who, drive, &user.id).await?;
            if let Some(f) = done.iter().find(|f| archived_as_planned(f, action)) {
                journal.record(ARCHIVE_FOLDER, &text(f, "id")).await?;
                journal.record(CONFIRMED, &text(f, "id")).await?;
                return Ok(Outcome::AlreadyDone);
            }
            let q = format!(
                "name = '{}' and mimeType = '{FOLDER_MIME}' and 'me' in owners and trashed = false",
                drive_quote(folder_name)
            );
            let path = format!(
                "/drive/v3/files?q={}&fields={}",
                encode(&q),
                encode("nextPageToken,files(id,name,parents,driveId,appProperties,mimeType)")
            );
            let found = list_all(client, &who, &path, "files").await?;
            let f = match found.as_slice() {
                [one] => one.clone(),
                [] => match done.as_slice() {
                    // In the archive already, stamped for this leaver: only the date differs.
                    [one] => one.clone(),
                    _ => {
                        return Err(ConnectorError::permanent(
                            "archive_folder_not_found",
                            format!(
                                "{} owns no folder {folder_name:?} (the one the Drive transfer makes) and the archive holds none for {}; nothing was sent",
                                owner.primary_email, user.id
                            ),
                        ))
                    }
                },
                many => {
                    return Err(ConnectorError::permanent(
                        "ambiguous_archive_folder",
                        format!(
                            "{} owns {} folders named {folder_name:?}; expected one, nothing was sent",
                            owner.primary_email,
                            many.len()
                        ),
                    ))
                }
            };
            journal.record(ARCHIVE_FOLDER, &text(&f, "id")).await?;
            f
        }
    };
    if archived_as_planned(&folder, action) {
        journal.record(CONFIRMED, &text(&folder, "id")).await?;
        return Ok(Outcome::AlreadyDone);
    }
    let id = text(&folder, "id");
    let current: Vec<String> = folder
        .get("parents")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let mut path = format!("/drive/v3/files/{}?supportsAllDrives=true", encode(&id));
    if !current.iter().any(|p| p == parent) {
        path.push_str(&format!(
            "&addParents={}&removeParents={}",
            encode(parent),
            encode(&current.join(","))
        ));
    }
    let mut props = serde_json::Map::new();
    props.insert(LEAVER_PROPERTY.into(), json!(user.id));
    let retain = action
        .params
        .get("retain_until")
        .map(String::as_str)
        .unwrap_or("");
    props.insert(
        RETAIN_PROPERTY.into(),
        if retain.is_empty() {
            Value::Null
        } else {
            json!(retain)
        },
    );
    let r = client
        .send(
            &who,
            Method::PATCH,
            &path,
            Some(&json!({ "appProperties": props })),
        )
        .await?;
    if !r.is_success() {
        return Err(classify::status(
            &Method::PATCH,
            &path,
            &r,
            client.backoff(),
        ));
    }
    journal.record(CONFIRMED, &id).await?;
    info!(action_id = %action.id, folder = %id, archive = %drive, "drive transfer archived");
    Ok(Outcome::Done)
}

fn drive_permission_path(action: &Action) -> Result<String, ConnectorError> {
    Ok(format!(
        "/drive/v3/files/{}/permissions/{}?supportsAllDrives=true&useDomainAdminAccess=true",
        encode(param(action, "drive_id")?),
        encode(param(action, "permission_id")?)
    ))
}

/// A 404 on a shared drive's permission: the permission gone (done) or the drive gone
/// (a container: permanent).
fn drive_404(r: &classify::Reply, drive: &str) -> Result<Outcome, ConnectorError> {
    if classify::message(&r.body).starts_with("File not found") {
        return Err(ConnectorError::permanent(
            "shared_drive_not_found",
            format!(
                "the shared drive {drive} is gone: 404 {}",
                classify::message(&r.body)
            ),
        ));
    }
    Ok(Outcome::AlreadyDone)
}

/// Removes the pinned user's membership of a shared drive, as the admin with
/// `useDomainAdminAccess`: only while the permission id still names one of the user's addresses
/// and the address planned, and never the drive's last organizer.
async fn remove_drive_member(
    client: &Client,
    action: &Action,
    pin: &AccountPin,
    user: &User,
) -> Result<Outcome, ConnectorError> {
    let drive = param(action, "drive_id")?;
    let planned = param(action, "email")?;
    let path = drive_permission_path(action)?;
    let r = client
        .send(&Who::AdminDrive, Method::GET, &path, None)
        .await?;
    match r.status {
        404 => return drive_404(&r, drive),
        s if (200..300).contains(&s) => {}
        _ => return Err(classify::status(&Method::GET, &path, &r, client.backoff())),
    }
    let p = r
        .json()
        .ok_or_else(|| classify::bad_response(&Method::GET, &path, "expected a permission"))?;
    let email = text(&p, "emailAddress");
    if !email.eq_ignore_ascii_case(planned)
        || !user.addresses().contains(&email.to_ascii_lowercase())
    {
        return Err(ConnectorError::permanent(
            "target_changed",
            format!(
                "GET {path}: the permission now names {email:?}, not {planned:?} of {} {}; nothing was sent",
                pin.id_kind, pin.id
            ),
        ));
    }
    if text(&p, "role") == "organizer" {
        let organizers = drive_permissions(client, drive)
            .await?
            .iter()
            .filter(|x| text(x, "role") == "organizer")
            .count();
        if organizers <= 1 {
            return Err(ConnectorError::permanent(
                "sole_organizer",
                format!(
                    "{email} is the only organizer of the shared drive {drive}: removing them would orphan it; add another organizer first (nothing was sent)"
                ),
            ));
        }
    }
    let r = client
        .send(&Who::AdminDrive, Method::DELETE, &path, None)
        .await?;
    match r.status {
        s if (200..300).contains(&s) => Ok(Outcome::Done),
        404 => drive_404(&r, drive),
        _ => Err(classify::status(
            &Method::DELETE,
            &path,
            &r,
            client.backoff(),
        )),
    }
}

/// A client permission action: pinned to the permission id, which the plan's `permission_id`
/// must agree with; who acts (the file's owner, or the admin on a shared drive) and where.
struct ClientPermission<'a> {
    pin: &'a AccountPin,
    file: &'a str,
    permission: &'a str,
    who: Who,
    query: &'static str,
}

fn client_permission(action: &Action) -> Result<ClientPermission<'_>, ConnectorError> {
    let pin = action.pinned()?;
    let permission = param(action, "permission_id")?;
    if pin.id != permission {
        return Err(ConnectorError::permanent(
            "bad_action",
            format!(
                "{} {}: expected permission_id to be the pinned {} {}, found {permission}",
                action.kind, action.target, pin.id_kind, pin.id
            ),
        ));
    }
    let on_drive = param(action, "on")? == "drive";
    Ok(ClientPermission {
        pin,
        file: param(action, "file_id")?,
        permission,
        who: if on_drive {
            Who::AdminDrive
        } else {
            Who::DriveOwner(param(action, "as_user")?.to_string())
        },
        query: if on_drive {
            "supportsAllDrives=true&useDomainAdminAccess=true"
        } else {
            "supportsAllDrives=true"
        },
    })
}

/// Whether a permission as Google answers it still names what the plan saw: the same type and
/// the same address or domain (any case).
fn same_grantee(p: &Value, action: &Action) -> bool {
    let want = |k: &str| action.params.get(k).map(String::as_str).unwrap_or("");
    text(p, "type") == want("type")
        && match want("type") {
            "domain" => text(p, "domain").eq_ignore_ascii_case(want("domain")),
            _ => text(p, "emailAddress").eq_ignore_ascii_case(want("email")),
        }
}

/// Removes one permission of a departing client: only while its id still names the grantee
/// the plan saw (a permission id that now names another address is left alone); 404 on the
/// permission is done, on the file or drive a permanent `file_not_found`.
async fn remove_client_permission(
    ctx: &Ctx<'_>,
    action: &Action,
) -> Result<Outcome, ConnectorError> {
    let client = ctx.client;
    let c = client_permission(action)?;
    let path = format!(
        "/drive/v3/files/{}/permissions/{}?{}",
        encode(c.file),
        encode(c.permission),
        c.query
    );
    let gone = |r: &classify::Reply| -> Result<Outcome, ConnectorError> {
        if classify::message(&r.body).starts_with("File not found") {
            return Err(ConnectorError::permanent(
                "file_not_found",
                format!(
                    "{}: the file or drive is gone or not visible to the acting user: 404 {}",
                    action.target,
                    classify::message(&r.body)
                ),
            ));
        }
        Ok(Outcome::AlreadyDone)
    };
    let read = format!(
        "{path}&fields={}",
        encode("id,type,emailAddress,domain,role,permissionDetails")
    );
    let r = client.send(&c.who, Method::GET, &read, None).await?;
    match r.status {
        404 => return gone(&r),
        s if (200..300).contains(&s) => {}
        _ => return Err(classify::status(&Method::GET, &path, &r, client.backoff())),
    }
    let p = r
        .json()
        .ok_or_else(|| classify::bad_response(&Method::GET, &path, "expected a permission"))?;
    // Only the drive's membership left on the file: the file's own share is gone (the
    // membership has an action of its own).
    if inherited_only(&p) {
        return Ok(Outcome::AlreadyDone);
    }
    if !same_grantee(&p, action) {
        let now = format!(
            "{} {}{}",
            text(&p, "type"),
            text(&p, "emailAddress"),
            text(&p, "domain")
        );
        return Err(c.pin.changed(now));
    }
    // A shared drive keeps an organizer: the last one is never removed.
    if param(action, "on")? == "drive" && text(&p, "role") == "organizer" {
        let others = drive_permissions(client, c.file)
            .await?
            .iter()
            .filter(|x| text(x, "role") == "organizer" && text(x, "id") != c.permission)
            .count();
        if others == 0 {
            return Err(ConnectorError::permanent(
                "sole_organizer",
                format!(
                    "{} is the last organizer of the shared drive {}: removing it would orphan the drive; add another organizer first (nothing was sent)",
                    c.pin.name, c.file
                ),
            ));
        }
    }
    let r = client.send(&c.who, Method::DELETE, &path, None).await?;
    match r.status {
        s if (200..300).contains(&s) => Ok(Outcome::Done),
        404 => gone(&r),
        _ => Err(classify::status(
            &Method::DELETE,
            &path,
            &r,
            client.backoff(),
        )),
    }
}

/// Re-lists the file's (or drive's) permissions: none of the client's remains (any address or
/// domain at the client's domain, not only the one pinned, is named in the detail).
async fn verify_client_permission(
    ctx: &Ctx<'_>,
    action: &Action,
) -> Result<Verdict, ConnectorError> {
    let client = ctx.client;
    let c = client_permission(action)?;
    let path = format!(
        "/drive/v3/files/{}/permissions?{}&pageSize=100&fields={}",
        encode(c.file),
        c.query,
        encode("nextPageToken,permissions(id,type,emailAddress,domain,role,permissionDetails)")
    );
    let perms = match list_all(client, &c.who, &path, "permissions").await {
        Err(e) if e.code == "not_found" => {
            return Ok(Verdict::NotConfirmed {
                detail: format!(
                    "{}: the file is not visible to the acting user",
                    action.target
                ),
            })
        }
        r => r?,
    };
    let left: Vec<String> = perms
        .iter()
        // A drive member shows on each of the drive's files as inherited: not the file's share.
        .filter(|p| !inherited_only(p))
        .filter(|p| text(p, "id") == c.permission || same_grantee(p, action))
        .map(|p| {
            format!(
                "{} {}{}",
                text(p, "id"),
                text(p, "emailAddress"),
                text(p, "domain")
            )
        })
        .collect();
    Ok(if left.is_empty() {
        Verdict::Confirmed
    } else {
        Verdict::NotConfirmed {
            detail: format!("{} still has {}", c.file, left.join(", ")),
        }
    })
}

fn text(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

async fn transfer(
    ctx: &Ctx<'_>,
    action: &Action,
    user_id: &str,
    journal: &dyn Journal,
) -> Result<Outcome, ConnectorError> {
    let client = ctx.client;
    let new_owner = param(action, "new_owner_id")?;
    if get_user(client, new_owner)
        .await?
        .filter(|u| u.id == new_owner)
        .is_none()
    {
        return Err(ConnectorError::permanent(
            "transfer_target_gone",
            format!(
                "the new owner {new_owner} ({}) is gone; nothing was sent",
                action
                    .params
                    .get("new_owner_email")
                    .map(String::as_str)
                    .unwrap_or("")
            ),
        ));
    }
    let id = match journal.latest(TRANSFER_ID).await? {
        Some(id) => id,
        None => {
            let existing = transfers(client, user_id, new_owner).await?;
            let adopt = existing.iter().rfind(|t| {
                is_drive_transfer(t) && text(t, "overallTransferStatusCode") != "failed"
            });
            match adopt {
                Some(t) => {
                    let id = text(t, "id");
                    journal.record(TRANSFER_ID, &id).await?;
                    if text(t, "overallTransferStatusCode") == "completed" {
                        journal.record(CONFIRMED, &id).await?;
                        return Ok(Outcome::AlreadyDone);
                    }
                    id
                }
                None => {
                    let path = "/admin/datatransfer/v1/transfers";
                    let mut apps = vec![json!({
                        "applicationId": DRIVE_APP_ID,
                        "applicationTransferParams": [
                            {"key": "PRIVACY_LEVEL", "value": ["PRIVATE", "SHARED"]}
                        ],
                    })];
                    if ctx.cfg.transfer_calendar {
                        apps.push(json!({
                            "applicationId": CALENDAR_APP_ID,
                            "applicationTransferParams": [
                                {"key": "RELEASE_RESOURCES", "value": ["TRUE"]}
                            ],
                        }));
                    }
                    let body = json!({
                        "oldOwnerUserId": user_id,
                        "newOwnerUserId": new_owner,
                        "applicationDataTransfers": apps,
                    });
                    let r = client.admin(Method::POST, path, Some(&body)).await?;
                    if !r.is_success() {
                        return Err(classify::status(&Method::POST, path, &r, client.backoff()));
                    }
                    let id = r.json().map(|v| text(&v, "id")).unwrap_or_default();
                    if id.is_empty() {
                        return Err(classify::bad_response(
                            &Method::POST,
                            path,
                            "no transfer id in the answer",
                        ));
                    }
                    journal.record(TRANSFER_ID, &id).await?;
                    info!(connector = %ctx.instance, action_id = %action.id, transfer_id = %id, "drive transfer started");
                    id
                }
            }
        }
    };
    let poll = Duration::from_millis(ctx.cfg.transfer_poll_ms);
    let deadline = Instant::now() + Duration::from_secs(ctx.cfg.transfer_wait_secs);
    let path = format!("/admin/datatransfer/v1/transfers/{}", encode(&id));
    loop {
        let r = client.admin(Method::GET, &path, None).await?;
        if !r.is_success() {
            return Err(classify::status(&Method::GET, &path, &r, client.backoff()));
        }
        let status = r
            .json()
            .map(|v| text(&v, "overallTransferStatusCode"))
            .unwrap_or_default();
        match status.as_str() {
            "completed" => {
                journal.record(CONFIRMED, &id).await?;
                return Ok(Outcome::Done);
            }
            "failed" => {
                return Err(ConnectorError::permanent(
                    "transfer_failed",
                    format!("Google reports the Drive transfer {id} as failed"),
                ))
            }
            _ => {}
        }
        if Instant::now() + poll > deadline {
            return Err(ConnectorError::new(
                revoke_core::ErrorClass::Retryable {
                    retry_after: Some(poll),
                },
                "transfer_in_progress",
                format!("the Drive transfer {id} is {status}; the next attempt polls it again"),
            ));
        }
        tokio::time::sleep(poll).await;
    }
}

/// Read-only. The verdict is about the pinned user: gone is confirmed for removals (a later user
/// with the same address is another account, which verify does not judge).
pub async fn verify(ctx: &Ctx<'_>, action: &Action) -> Result<Verdict, ConnectorError> {
    if action.kind.0 == REMOVE_CLIENT_PERMISSION {
        return verify_client_permission(ctx, action).await;
    }
    let (_, user_id) = pinned(action)?;
    let client = ctx.client;
    let user = get_user(client, user_id).await?.filter(|u| u.id == user_id);
    let not = |detail: String| Verdict::NotConfirmed { detail };
    let absent = |path: String| async move {
        let r = client.admin(Method::GET, &path, None).await?;
        match r.status {
            404 => Ok(Verdict::Confirmed),
            s if (200..300).contains(&s) => Ok(Verdict::NotConfirmed {
                detail: format!("{path} still exists"),
            }),
            _ => Err(classify::status(&Method::GET, &path, &r, client.backoff())),
        }
    };
    let kind = action.kind.0.as_str();
    if kind == TRANSFER_DRIVE {
        let new_owner = param(action, "new_owner_id")?;
        let done = transfers(client, user_id, new_owner)
            .await?
            .iter()
            .any(|t| is_drive_transfer(t) && text(t, "overallTransferStatusCode") == "completed");
        return Ok(if done {
            Verdict::Confirmed
        } else {
            not(format!(
                "no completed Drive transfer from {user_id} to {new_owner}"
            ))
        });
    }
    // The archive holds the folder whether or not the leaver is still there.
    if kind == ARCHIVE_DRIVE {
        let owner = param(action, "new_owner_id")?;
        let Some(owner) = get_user(client, owner).await?.filter(|u| u.id == owner) else {
            return Ok(not(format!("the new owner {owner} is gone")));
        };
        let found = archived_folders(
            client,
            &Who::DriveOwner(owner.primary_email),
            param(action, "archive_drive_id")?,
            user_id,
        )
        .await?;
        return Ok(if found.iter().any(|f| archived_as_planned(f, action)) {
            Verdict::Confirmed
        } else {
            not(format!(
                "no folder of {user_id} in the archive {} with the retention date {:?}",
                param(action, "archive_drive_id")?,
                action
                    .params
                    .get("retain_until")
                    .map(String::as_str)
                    .unwrap_or("")
            ))
        });
    }
    let Some(user) = user else {
        return Ok(match kind {
            SET_AUTO_REPLY | SET_FORWARDING => not(format!(
                "user {user_id} is gone; its mailbox settings cannot be read"
            )),
            _ => Verdict::Confirmed,
        });
    };
    match kind {
        DELETE_USER => Ok(not(format!("user {user_id} still exists"))),
        // Sessions and backup codes cannot be read; a suspended user can use neither.
        SUSPEND_USER | SIGN_OUT | INVALIDATE_BACKUP_CODES => Ok(if user.suspended {
            Verdict::Confirmed
        } else {
            not(format!("user {user_id} is not suspended"))
        }),
        SET_AUTO_REPLY | SET_FORWARDING => {
            if user.suspended {
                return Ok(not(format!(
                    "{} is suspended, so Gmail cannot be read back; the apply's answer was a success",
                    user.primary_email
                )));
            }
            let name = if kind == SET_AUTO_REPLY {
                "vacation"
            } else {
                "autoForwarding"
            };
            let v = gmail_setting(client, &user.primary_email, name).await?;
            let holds = if kind == SET_AUTO_REPLY {
                v.get("enableAutoReply").and_then(Value::as_bool) == Some(true)
            } else {
                v.get("enabled").and_then(Value::as_bool) == Some(true)
                    && v.get("emailAddress")
                        .and_then(Value::as_str)
                        .is_some_and(|a| {
                            a.eq_ignore_ascii_case(
                                action
                                    .params
                                    .get("forward_to")
                                    .map(String::as_str)
                                    .unwrap_or(""),
                            )
                        })
            };
            Ok(if holds {
                Verdict::Confirmed
            } else {
                not(format!("{name} of {} is not set", user.primary_email))
            })
        }
        DELETE_GRANT => {
            absent(format!(
                "{D}/users/{}/tokens/{}",
                encode(user_id),
                encode(param(action, "client_id")?)
            ))
            .await
        }
        DELETE_APP_PASSWORD => {
            absent(format!(
                "{D}/users/{}/asps/{}",
                encode(user_id),
                encode(param(action, "code_id")?)
            ))
            .await
        }
        REMOVE_GROUP => {
            absent(format!(
                "{D}/groups/{}/members/{}",
                encode(param(action, "group_id")?),
                encode(user_id)
            ))
            .await
        }
        REMOVE_ROLE => {
            absent(format!(
                "{D}/customer/{}/roleassignments/{}",
                encode(&ctx.cfg.customer),
                encode(param(action, "assignment_id")?)
            ))
            .await
        }
        REMOVE_LICENCE => absent(licence_path(action, &user)?).await,
        TURN_OFF_2SV => Ok(if user.two_sv {
            not(format!(
                "{} is still enrolled in 2-step verification",
                user.primary_email
            ))
        } else {
            Verdict::Confirmed
        }),
        WIPE_MOBILE_ACCOUNT => {
            let path = device_path(ctx, action)?;
            let r = client.admin(Method::GET, &path, None).await?;
            match r.status {
                404 => Ok(Verdict::Confirmed),
                s if (200..300).contains(&s) => {
                    let status = r.json().map(|v| text(&v, "status")).unwrap_or_default();
                    Ok(if WIPED_STATUSES.contains(&status.as_str()) {
                        Verdict::Confirmed
                    } else {
                        not(format!("the device {path} is {status}"))
                    })
                }
                _ => Err(classify::status(&Method::GET, &path, &r, client.backoff())),
            }
        }
        REMOVE_SHARED_DRIVE => {
            let path = drive_permission_path(action)?;
            let r = client
                .send(&Who::AdminDrive, Method::GET, &path, None)
                .await?;
            match r.status {
                404 => Ok(Verdict::Confirmed),
                s if (200..300).contains(&s) => Ok(not(format!("{path} still exists"))),
                _ => Err(classify::status(&Method::GET, &path, &r, client.backoff())),
            }
        }
        other => Err(unknown(other)),
    }
}
