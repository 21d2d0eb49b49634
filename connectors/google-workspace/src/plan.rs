//! The actions that remove what discovery found; pure and deterministic, in the order Google
//! forces.
//!
//! Contain: the Gmail auto-reply and forwarding first (Gmail answers `failedPrecondition` for a
//! suspended user), then suspend; after the suspension, sign out (every web and device session),
//! invalidate the backup codes, delete each OAuth grant and app password. Transfer: the Drive
//! files to the configured owner (Data Transfer API; works for a suspended user). Revoke: group
//! memberships and admin role assignments, and the licences once the transfer completed (a
//! user without a licence loses their Drive data). Delete: the user, after everything; Google
//! can undelete it for 20 days. As configured: the mobile account wipe and 2SV off (contain,
//! after the suspension), the archive move (transfer, after the transfer), shared-drive
//! memberships (revoke). A departing client's plan is `plan_client`.

use std::collections::BTreeMap;

use revoke_core::{ActionKind, Discovery, Finding, Phase, ProposedAction};

use crate::config::{GoogleConfig, MobileDevices};
use crate::discover::{
    ACCOUNT, APP_PASSWORD, CLIENT_DRIVE_PERMISSION, CLIENT_PERMISSION, DRIVE_TRANSFER, GMAIL,
    GROUP_MEMBERSHIP, LICENCE, MOBILE_DEVICE, OAUTH_GRANT, ROLE_ASSIGNMENT, SHARED_DRIVE_MEMBER,
    WIPED_STATUSES,
};

pub const SET_AUTO_REPLY: &str = "set_auto_reply";
pub const SET_FORWARDING: &str = "set_forwarding";
pub const SUSPEND_USER: &str = "suspend_user";
pub const SIGN_OUT: &str = "sign_out";
pub const INVALIDATE_BACKUP_CODES: &str = "invalidate_backup_codes";
pub const DELETE_GRANT: &str = "delete_oauth_grant";
pub const DELETE_APP_PASSWORD: &str = "delete_app_password";
pub const TRANSFER_DRIVE: &str = "transfer_drive";
pub const REMOVE_GROUP: &str = "remove_group_membership";
pub const REMOVE_ROLE: &str = "remove_role_assignment";
pub const REMOVE_LICENCE: &str = "remove_licence";
pub const DELETE_USER: &str = "delete_user";
pub const WIPE_MOBILE_ACCOUNT: &str = "wipe_mobile_account";
pub const TURN_OFF_2SV: &str = "turn_off_2sv";
pub const ARCHIVE_DRIVE: &str = "archive_drive_files";
pub const REMOVE_SHARED_DRIVE: &str = "remove_shared_drive_member";
pub const REMOVE_CLIENT_PERMISSION: &str = "remove_client_permission";

/// A departing client's plan: each of the client's users of our Workspace planned as a leaver
/// (their files transferred first), then every permission of the client removed (revoke), a
/// permission on a file a client user owned after that user's transfer, acting as the new owner.
pub fn plan_client(cfg: &GoogleConfig, d: &Discovery) -> Vec<ProposedAction> {
    let attr = |f: &Finding, k: &str| f.attrs.get(k).cloned().unwrap_or_default();
    let mut out = Vec::new();
    let mut transfers: BTreeMap<String, (ActionKind, String)> = BTreeMap::new();
    for account in d.findings.iter().filter(|f| f.kind == ACCOUNT) {
        let uid = attr(account, "user_id");
        let mut person = Discovery::not_found(d.connector.clone(), d.subject.clone());
        person.findings = d
            .findings
            .iter()
            .filter(|f| f.attrs.get("user_id") == Some(&uid))
            .cloned()
            .collect();
        for p in plan(cfg, &person) {
            if p.kind.0 == TRANSFER_DRIVE {
                transfers.insert(uid.clone(), (p.kind.clone(), p.target.clone()));
            }
            out.push(p);
        }
    }
    let who = |f: &Finding| match attr(f, "type").as_str() {
        "domain" => format!("the domain {}", attr(f, "domain")),
        t => format!("the {t} {}", attr(f, "email")),
    };
    for f in d.findings.iter().filter(|f| f.kind == CLIENT_PERMISSION) {
        let owner_is_client = attr(f, "owner_is_client") == "true";
        let transfer = transfers.get(&attr(f, "owner_id")).cloned();
        // A client user's file changes owner in the transfer: the new owner removes the share.
        let (as_user, after) = match (&cfg.transfer_to, owner_is_client, transfer) {
            (Some(to), true, Some(t)) => (to.clone(), vec![t]),
            _ => (attr(f, "owner_email"), vec![]),
        };
        let by = if after.is_empty() {
            String::new()
        } else {
            format!(", removed as {as_user} once the transfer made it theirs")
        };
        out.push(ProposedAction {
            kind: ActionKind::from(REMOVE_CLIENT_PERMISSION),
            target: f.target.clone(),
            params: [
                ("on", "file".to_string()),
                ("file_id", attr(f, "file_id")),
                ("permission_id", attr(f, "permission_id")),
                ("type", attr(f, "type")),
                ("email", attr(f, "email")),
                ("domain", attr(f, "domain")),
                ("as_user", as_user),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            phase: Phase::Revoke,
            after,
            summary: if attr(f, "drive_id").is_empty() {
                format!(
                    "remove the {} share of {} on {:?} (owned by {}{by})",
                    attr(f, "role"),
                    who(f),
                    attr(f, "file_name"),
                    attr(f, "owner_email")
                )
            } else {
                format!(
                    "remove the {} share of {} on {:?} in the shared drive {} (as its organizer {})",
                    attr(f, "role"),
                    who(f),
                    attr(f, "file_name"),
                    attr(f, "drive_id"),
                    attr(f, "owner_email")
                )
            },
            account: attr(f, "permission_id"),
            delay: None,
        });
    }
    for f in d
        .findings
        .iter()
        .filter(|f| f.kind == CLIENT_DRIVE_PERMISSION)
    {
        // A client user of ours planned as a leaver has this membership's removal already.
        if out.iter().any(|p| p.target == f.target) {
            continue;
        }
        out.push(ProposedAction {
            kind: ActionKind::from(REMOVE_CLIENT_PERMISSION),
            target: f.target.clone(),
            params: [
                ("on", "drive".to_string()),
                ("file_id", attr(f, "drive_id")),
                ("permission_id", attr(f, "permission_id")),
                ("type", attr(f, "type")),
                ("email", attr(f, "email")),
                ("domain", attr(f, "domain")),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            phase: Phase::Revoke,
            after: vec![],
            summary: format!(
                "remove {} ({}) from the shared drive {:?}",
                who(f),
                attr(f, "role"),
                attr(f, "drive_name")
            ),
            account: attr(f, "permission_id"),
            delay: None,
        });
    }
    out
}

pub fn plan(cfg: &GoogleConfig, d: &Discovery) -> Vec<ProposedAction> {
    let mut out = Vec::new();
    let Some(account) = d.findings.iter().find(|f| f.kind == ACCOUNT) else {
        return out;
    };
    let attr = |f: &Finding, k: &str| f.attrs.get(k).cloned().unwrap_or_default();
    let user_id = attr(account, "user_id");
    let who = attr(account, "primary_email");
    let suspended = attr(account, "suspended") == "true";
    let user_target = account.target.clone();
    let base: BTreeMap<String, String> = [("user_id".to_string(), user_id.clone())].into();
    let with = |extra: &[(&str, String)]| {
        let mut p = base.clone();
        for (k, v) in extra {
            p.insert(k.to_string(), v.clone());
        }
        p
    };
    let action = |kind: &str,
                  target: &str,
                  params: BTreeMap<String, String>,
                  phase: Phase,
                  after: Vec<(ActionKind, String)>,
                  summary: String| ProposedAction {
        kind: ActionKind::from(kind),
        target: target.to_string(),
        params,
        phase,
        after,
        summary,
        account: user_id.clone(),
        delay: None,
    };
    let key = |kind: &str, target: &str| (ActionKind::from(kind), target.to_string());

    // Contain: Gmail first, while the mailbox still answers.
    let mut before_suspend = Vec::new();
    if let Some(gmail) = d.findings.iter().find(|f| f.kind == GMAIL) {
        if attr(gmail, "readable") == "true" {
            if let (Some(body), subject) = (&cfg.auto_reply_body, &cfg.auto_reply_subject) {
                let t = format!("{}/vacation", gmail.target);
                out.push(action(
                    SET_AUTO_REPLY,
                    &t,
                    with(&[
                        ("subject", subject.clone().unwrap_or_default()),
                        ("body", body.clone()),
                    ]),
                    Phase::Contain,
                    vec![],
                    format!(
                        "set the Gmail auto-reply of {who} (before the suspension stops Gmail)"
                    ),
                ));
                before_suspend.push(key(SET_AUTO_REPLY, &t));
            }
            if let Some(to) = &cfg.forward_to {
                let t = format!("{}/autoForwarding", gmail.target);
                out.push(action(
                    SET_FORWARDING,
                    &t,
                    with(&[("forward_to", to.clone())]),
                    Phase::Contain,
                    vec![],
                    format!(
                        "forward the mail of {who} to {to} (before the suspension stops Gmail)"
                    ),
                ));
                before_suspend.push(key(SET_FORWARDING, &t));
            }
        }
    }
    out.push(action(
        SUSPEND_USER,
        &user_target,
        base.clone(),
        Phase::Contain,
        before_suspend,
        if suspended {
            format!("keep Google user {who} (id {user_id}) suspended (it is already)")
        } else {
            format!("suspend Google user {who} (id {user_id})")
        },
    ));
    let suspend = key(SUSPEND_USER, &user_target);
    let sign_out_t = format!("{user_target}/signOut");
    out.push(action(
        SIGN_OUT,
        &sign_out_t,
        base.clone(),
        Phase::Contain,
        vec![suspend.clone()],
        format!("sign {who} out of every web and device session"),
    ));
    let codes_t = format!("{user_target}/verificationCodes");
    out.push(action(
        INVALIDATE_BACKUP_CODES,
        &codes_t,
        base.clone(),
        Phase::Contain,
        vec![suspend.clone()],
        format!("invalidate the 2-step backup codes of {who}"),
    ));
    let mut before_delete = vec![
        key(SIGN_OUT, &sign_out_t),
        key(INVALIDATE_BACKUP_CODES, &codes_t),
    ];
    if cfg.remove_grants {
        for f in d.findings.iter().filter(|f| f.kind == OAUTH_GRANT) {
            out.push(action(
                DELETE_GRANT,
                &f.target,
                with(&[("client_id", attr(f, "client_id"))]),
                Phase::Contain,
                vec![suspend.clone()],
                format!("revoke the OAuth grant of {who} to {:?}", attr(f, "app")),
            ));
            before_delete.push(key(DELETE_GRANT, &f.target));
        }
        for f in d.findings.iter().filter(|f| f.kind == APP_PASSWORD) {
            out.push(action(
                DELETE_APP_PASSWORD,
                &f.target,
                with(&[("code_id", attr(f, "code_id"))]),
                Phase::Contain,
                vec![suspend.clone()],
                format!("delete the app password {:?} of {who}", attr(f, "name")),
            ));
            before_delete.push(key(DELETE_APP_PASSWORD, &f.target));
        }
    }

    if cfg.mobile_devices == Some(MobileDevices::AccountWipe) {
        for f in d.findings.iter().filter(|f| f.kind == MOBILE_DEVICE) {
            if WIPED_STATUSES.contains(&attr(f, "status").as_str()) {
                continue;
            }
            out.push(action(
                WIPE_MOBILE_ACCOUNT,
                &f.target,
                with(&[
                    ("resource_id", attr(f, "resource_id")),
                    ("owner_emails", attr(f, "owner_emails")),
                ]),
                Phase::Contain,
                vec![suspend.clone()],
                format!(
                    "remove the work account of {who} from the {} device {:?} (account wipe only; the device itself is never wiped)",
                    attr(f, "type"),
                    attr(f, "model")
                ),
            ));
            before_delete.push(key(WIPE_MOBILE_ACCOUNT, &f.target));
        }
    }
    if cfg.turn_off_2sv && attr(account, "two_sv") == "true" {
        let t = format!("{user_target}/twoStepVerification");
        out.push(action(
            TURN_OFF_2SV,
            &t,
            base.clone(),
            Phase::Contain,
            vec![suspend.clone()],
            format!(
                "turn 2-step verification off for {who}{}",
                if attr(account, "two_sv_enforced") == "true" {
                    " (enforced by policy: Google may refuse)"
                } else {
                    ""
                }
            ),
        ));
        before_delete.push(key(TURN_OFF_2SV, &t));
    }

    // Transfer: Drive to the configured owner.
    let mut transfer = None;
    if let Some(f) = d.findings.iter().find(|f| f.kind == DRIVE_TRANSFER) {
        let to = attr(f, "new_owner_email");
        let owned = match (attr(f, "files_owned"), attr(f, "bytes_owned")) {
            (n, b) if !n.is_empty() => format!("{n} files, {b} bytes"),
            _ => "not counted: the user is suspended".to_string(),
        };
        out.push(action(
            TRANSFER_DRIVE,
            &f.target,
            with(&[
                ("new_owner_id", attr(f, "new_owner_id")),
                ("new_owner_email", to.clone()),
            ]),
            Phase::Transfer,
            vec![],
            format!(
                "transfer the Drive files of {who} ({owned}){} to {to} (Data Transfer API; the licence removal and the delete wait for it)",
                if cfg.transfer_calendar { " and their calendar" } else { "" }
            ),
        ));
        transfer = Some(key(TRANSFER_DRIVE, &f.target));
        before_delete.push(key(TRANSFER_DRIVE, &f.target));
        // A leaver counted with no file gets no folder from the transfer: nothing to archive.
        let nothing = attr(f, "files_owned") == "0";
        if let Some(drive) = cfg.archive_drive_id.as_ref().filter(|_| !nothing) {
            let t = format!("{}/archive", f.target);
            let parent = cfg
                .archive_folder_id
                .clone()
                .unwrap_or_else(|| drive.clone());
            let retain = attr(f, "retain_until");
            out.push(action(
                ARCHIVE_DRIVE,
                &t,
                with(&[
                    ("new_owner_id", attr(f, "new_owner_id")),
                    ("new_owner_email", to.clone()),
                    ("folder_name", who.clone()),
                    ("archive_drive_id", drive.clone()),
                    ("archive_parent", parent.clone()),
                    ("retain_until", retain.clone()),
                ]),
                Phase::Transfer,
                vec![key(TRANSFER_DRIVE, &f.target)],
                format!(
                    "move the folder {who:?} the transfer gives {to} into the archive shared drive {drive}{}{}",
                    if parent != *drive { format!(" (folder {parent})") } else { String::new() },
                    if retain.is_empty() {
                        String::new()
                    } else {
                        format!(", kept until {retain}")
                    }
                ),
            ));
            before_delete.push(key(ARCHIVE_DRIVE, &t));
        }
    }

    // Revoke.
    for f in d.findings.iter().filter(|f| f.kind == GROUP_MEMBERSHIP) {
        let nested = attr(f, "nested_in");
        out.push(action(
            REMOVE_GROUP,
            &f.target,
            with(&[("group_id", attr(f, "group_id")), ("group_email", attr(f, "group_email"))]),
            Phase::Revoke,
            vec![],
            if nested.is_empty() {
                format!("remove {who} from group {}", attr(f, "group_email"))
            } else {
                format!(
                    "remove {who} from group {} (which is inside {nested}, so that access goes too)",
                    attr(f, "group_email")
                )
            },
        ));
        before_delete.push(key(REMOVE_GROUP, &f.target));
    }
    for f in d.findings.iter().filter(|f| f.kind == ROLE_ASSIGNMENT) {
        out.push(action(
            REMOVE_ROLE,
            &f.target,
            with(&[
                ("assignment_id", attr(f, "assignment_id")),
                ("role_id", attr(f, "role_id")),
            ]),
            Phase::Revoke,
            vec![],
            format!("take the admin role {:?} from {who}", attr(f, "role_name")),
        ));
        before_delete.push(key(REMOVE_ROLE, &f.target));
    }
    for f in d.findings.iter().filter(|f| f.kind == SHARED_DRIVE_MEMBER) {
        out.push(action(
            REMOVE_SHARED_DRIVE,
            &f.target,
            with(&[
                ("drive_id", attr(f, "drive_id")),
                ("permission_id", attr(f, "permission_id")),
                ("email", attr(f, "email")),
            ]),
            Phase::Revoke,
            vec![],
            format!(
                "remove {who} ({}) from the shared drive {:?}",
                attr(f, "role"),
                attr(f, "drive_name")
            ),
        ));
        before_delete.push(key(REMOVE_SHARED_DRIVE, &f.target));
    }
    for f in d.findings.iter().filter(|f| f.kind == LICENCE) {
        out.push(action(
            REMOVE_LICENCE,
            &f.target,
            with(&[
                ("product_id", attr(f, "product_id")),
                ("sku_id", attr(f, "sku_id")),
            ]),
            Phase::Revoke,
            transfer.iter().cloned().collect(),
            format!(
                "remove the licence {}/{} of {who}{}",
                attr(f, "product_id"),
                attr(f, "sku_id"),
                if transfer.is_some() {
                    " once the Drive transfer completed"
                } else {
                    ""
                }
            ),
        ));
        before_delete.push(key(REMOVE_LICENCE, &f.target));
    }

    if cfg.delete_users {
        out.push(action(
            DELETE_USER,
            &user_target,
            base,
            Phase::Delete,
            before_delete,
            format!("delete Google user {who} (id {user_id}); Google can restore it for 20 days"),
        ));
    }
    out
}
