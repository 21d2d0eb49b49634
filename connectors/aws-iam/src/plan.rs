//! Pure: what discovery found to the actions that remove it, in IAM's order.
//!
//! Contain (at once): the quarantine policy (an inline deny-all, so keys and the sessions made
//! from them stop working now), every active access key deactivated, the console password
//! deleted. Transfer: the active keys of service users the subject owned, rotated. Delete
//! (after retention): each sub-resource its own action, then the quarantine policy, then the
//! user; a failure holds back only what depends on it.
//!
//! Every action names the UserId of the user it touches (the account discovery reported), so the
//! planner pins it there. The order between phases (no delete before every contain action of
//! the subject succeeded, no delete of a rotated-out key before its rotation) is the planner's;
//! the `after`s here are only the order IAM itself needs within the delete phase: the virtual
//! MFA device after its deactivation, the quarantine policy after every credential it covers,
//! the user last.

use std::collections::BTreeMap;

use revoke_core::{ActionKind, Discovery, Finding, Phase, ProposedAction};

use crate::config::{Destination, IamConfig};
use crate::discover::{
    ACCESS_KEY, ATTACHED_POLICY, DESTINATION_UNWRITABLE, GROUP_MEMBERSHIP, INLINE_POLICY,
    LOGIN_PROFILE, MFA_DEVICE, OWNED_ACCESS_KEY, SERVICE_CREDENTIAL, SERVICE_CREDENTIALS_UNLISTED,
    SIGNING_CERTIFICATE, SSH_PUBLIC_KEY, USER,
};
use crate::escape::secret_file_name;

pub const QUARANTINE_USER: &str = "quarantine_user";
pub const DEACTIVATE_ACCESS_KEY: &str = "deactivate_access_key";
pub const DELETE_LOGIN_PROFILE: &str = "delete_login_profile";
pub const DELETE_ACCESS_KEY: &str = "delete_access_key";
pub const DELETE_SIGNING_CERTIFICATE: &str = "delete_signing_certificate";
pub const DELETE_SSH_PUBLIC_KEY: &str = "delete_ssh_public_key";
pub const DELETE_SERVICE_CREDENTIAL: &str = "delete_service_specific_credential";
pub const DEACTIVATE_MFA_DEVICE: &str = "deactivate_mfa_device";
pub const DELETE_VIRTUAL_MFA_DEVICE: &str = "delete_virtual_mfa_device";
pub const DELETE_USER_POLICY: &str = "delete_user_policy";
pub const DETACH_USER_POLICY: &str = "detach_user_policy";
pub const REMOVE_FROM_GROUP: &str = "remove_user_from_group";
pub const DELETE_QUARANTINE_POLICY: &str = "delete_quarantine_policy";
pub const DELETE_USER: &str = "delete_user";
pub const ROTATE_ACCESS_KEY: &str = "rotate_access_key";
pub const DELETE_ROTATED_KEY: &str = "delete_rotated_key";

/// The param of `quarantine_user` that says whether discovery saw the quarantine policy.
pub const QUARANTINED_AT_PLAN: &str = "quarantined_at_plan";

/// (account, user, id) back out of a finding's target `account/user[/id]`.
pub fn split_target(t: &str) -> (&str, &str, Option<&str>) {
    let mut it = t.splitn(3, '/');
    let account = it.next().unwrap_or("");
    let user = it.next().unwrap_or("");
    (account, user, it.next())
}

struct Builder {
    out: Vec<ProposedAction>,
    /// The UserId of the user the actions touch.
    account: String,
}

impl Builder {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        kind: &str,
        target: &str,
        phase: Phase,
        params: Vec<(&str, String)>,
        after: Vec<(&str, String)>,
        summary: String,
        delay: Option<std::time::Duration>,
    ) {
        self.out.push(ProposedAction {
            kind: ActionKind::from(kind),
            target: target.to_string(),
            params: params
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            phase,
            after: after
                .into_iter()
                .map(|(k, t)| (ActionKind::from(k), t))
                .collect(),
            summary,
            account: self.account.clone(),
            delay,
        });
    }
}

fn params(account: &str, user: &str, id: Option<&str>) -> Vec<(&'static str, String)> {
    let mut p = vec![("account", account.to_string()), ("user", user.to_string())];
    if let Some(id) = id {
        p.push(("id", id.to_string()));
    }
    p
}

/// The actions for one subject's discovery.
pub fn plan(cfg: &IamConfig, d: &Discovery) -> Vec<ProposedAction> {
    let mut by_user: BTreeMap<String, Vec<&Finding>> = BTreeMap::new();
    for f in &d.findings {
        let (a, u, _) = split_target(&f.target);
        by_user.entry(format!("{a}/{u}")).or_default().push(f);
    }
    let mut out = Vec::new();
    for (user_target, fs) in &by_user {
        // The account discovery reported under this name; without one the planner refuses
        // the proposals (a broken discovery), so the name stands in.
        let account = d
            .accounts
            .iter()
            .find(|a| &a.name == user_target)
            .map_or_else(|| user_target.clone(), |a| a.id.clone());
        if fs.iter().any(|f| f.kind == USER) {
            out.extend(plan_user(cfg, user_target, &account, fs));
        }
        out.extend(plan_rotation(cfg, user_target, &account, fs));
    }
    out
}

fn of_kind<'a>(fs: &'a [&'a Finding], kind: &'static str) -> impl Iterator<Item = &'a &'a Finding> {
    fs.iter().filter(move |f| f.kind == kind)
}

fn plan_user(
    cfg: &IamConfig,
    user_target: &str,
    account: &str,
    fs: &[&Finding],
) -> Vec<ProposedAction> {
    let (acct, user, _) = split_target(user_target);
    let mut b = Builder {
        out: Vec::new(),
        account: account.to_string(),
    };
    let of = |kind: &'static str| of_kind(fs, kind);
    let id_of = |f: &Finding| split_target(&f.target).2.unwrap_or("").to_string();
    let who = format!("{user} in {acct}");

    // Contain. Whether discovery saw the quarantine policy already: apply then reads before
    // it writes (a rerun sends no write); not seen, it sends the policy without a read.
    let quarantined = of(INLINE_POLICY).any(|p| id_of(p) == cfg.quarantine_policy);
    let mut quarantine_params = params(acct, user, None);
    quarantine_params.push((QUARANTINED_AT_PLAN, quarantined.to_string()));
    b.push(
        QUARANTINE_USER,
        user_target,
        Phase::Contain,
        quarantine_params,
        vec![],
        format!(
            "attach the deny-all policy {} to {who}, so its keys and sessions stop working now",
            cfg.quarantine_policy
        ),
        None,
    );
    for k in of(ACCESS_KEY) {
        if k.attrs.get("status").map(String::as_str) == Some("Active") {
            let id = id_of(k);
            let used = k.attrs.get("last_used").cloned().unwrap_or_default();
            b.push(
                DEACTIVATE_ACCESS_KEY,
                &k.target,
                Phase::Contain,
                params(acct, user, Some(&id)),
                vec![],
                format!("deactivate access key {id} of {who} (last used {used})"),
                None,
            );
        }
    }
    let has_login = of(LOGIN_PROFILE).next().is_some();
    if has_login {
        b.push(
            DELETE_LOGIN_PROFILE,
            user_target,
            Phase::Contain,
            params(acct, user, None),
            vec![],
            format!("delete the console password of {who}"),
            None,
        );
    }
    if !cfg.delete_users {
        return b.out;
    }

    // Delete, after retention and after every contain action of the subject (the planner's
    // phase order): each removal on its own.
    let mut removals: Vec<(&str, String)> = Vec::new();
    for k in of(ACCESS_KEY) {
        let id = id_of(k);
        b.push(
            DELETE_ACCESS_KEY,
            &k.target,
            Phase::Delete,
            params(acct, user, Some(&id)),
            vec![],
            format!("delete access key {id} of {who}"),
            None,
        );
        removals.push((DELETE_ACCESS_KEY, k.target.clone()));
    }
    for (kind, action, what) in [
        (
            SIGNING_CERTIFICATE,
            DELETE_SIGNING_CERTIFICATE,
            "signing certificate",
        ),
        (SSH_PUBLIC_KEY, DELETE_SSH_PUBLIC_KEY, "SSH public key"),
        (
            SERVICE_CREDENTIAL,
            DELETE_SERVICE_CREDENTIAL,
            "service-specific credential",
        ),
    ] {
        for f in of(kind) {
            let id = id_of(f);
            b.push(
                action,
                &f.target,
                Phase::Delete,
                params(acct, user, Some(&id)),
                vec![],
                format!("delete {what} {id} of {who}"),
                None,
            );
            removals.push((action, f.target.clone()));
        }
    }
    for m in of(MFA_DEVICE) {
        let serial = id_of(m);
        b.push(
            DEACTIVATE_MFA_DEVICE,
            &m.target,
            Phase::Delete,
            params(acct, user, Some(&serial)),
            vec![],
            format!("deactivate MFA device {serial} of {who}"),
            None,
        );
        removals.push((DEACTIVATE_MFA_DEVICE, m.target.clone()));
        if m.attrs.get("virtual").map(String::as_str) == Some("true") {
            b.push(
                DELETE_VIRTUAL_MFA_DEVICE,
                &m.target,
                Phase::Delete,
                params(acct, user, Some(&serial)),
                vec![(DEACTIVATE_MFA_DEVICE, m.target.clone())],
                format!("delete virtual MFA device {serial}"),
                None,
            );
            removals.push((DELETE_VIRTUAL_MFA_DEVICE, m.target.clone()));
        }
    }
    for p in of(INLINE_POLICY) {
        let name = id_of(p);
        if name == cfg.quarantine_policy {
            continue;
        }
        b.push(
            DELETE_USER_POLICY,
            &p.target,
            Phase::Delete,
            params(acct, user, Some(&name)),
            vec![],
            format!("delete inline policy {name} of {who}"),
            None,
        );
        removals.push((DELETE_USER_POLICY, p.target.clone()));
    }
    for p in of(ATTACHED_POLICY) {
        let arn = id_of(p);
        b.push(
            DETACH_USER_POLICY,
            &p.target,
            Phase::Delete,
            params(acct, user, Some(&arn)),
            vec![],
            format!("detach {arn} from {who}"),
            None,
        );
        removals.push((DETACH_USER_POLICY, p.target.clone()));
    }
    for g in of(GROUP_MEMBERSHIP) {
        let group = id_of(g);
        b.push(
            REMOVE_FROM_GROUP,
            &g.target,
            Phase::Delete,
            params(acct, user, Some(&group)),
            vec![],
            format!("remove {who} from group {group}"),
            None,
        );
        removals.push((REMOVE_FROM_GROUP, g.target.clone()));
    }
    // The quarantine covers every credential: it goes only once they are all gone.
    b.push(
        DELETE_QUARANTINE_POLICY,
        user_target,
        Phase::Delete,
        params(acct, user, Some(&cfg.quarantine_policy)),
        removals.clone(),
        format!(
            "delete the quarantine policy {} of {who}, last before the user",
            cfg.quarantine_policy
        ),
        None,
    );
    let mut user_after = removals;
    user_after.push((DELETE_QUARANTINE_POLICY, user_target.to_string()));
    let mut summary = format!("delete IAM user {who}");
    if let Some(f) = of(SERVICE_CREDENTIALS_UNLISTED).next() {
        summary.push_str(&format!(
            "; its service-specific credentials could not be listed ({}), so IAM refuses this if any remain",
            f.attrs.get("reason").map(String::as_str).unwrap_or("unknown")
        ));
    }
    b.push(
        DELETE_USER,
        user_target,
        Phase::Delete,
        params(acct, user, None),
        user_after,
        summary,
        None,
    );
    b.out
}

/// Where the new secret of `user`'s key goes, as `secrets_manager:NAME` or `file:PATH`.
pub fn destination(cfg: &IamConfig, account: &str, user: &str) -> Option<String> {
    match cfg.rotation.as_ref()? {
        Destination::SecretsManager => Some(format!(
            "secrets_manager:{}",
            cfg.secret_name_for(account, user)
        )),
        Destination::File => {
            let dir = cfg.secrets_dir.as_ref()?;
            let name = secret_file_name(account, user)?;
            Some(format!("file:{}", dir.join(name).display()))
        }
    }
}

fn plan_rotation(
    cfg: &IamConfig,
    user_target: &str,
    account: &str,
    fs: &[&Finding],
) -> Vec<ProposedAction> {
    let (acct, user, _) = split_target(user_target);
    let mut b = Builder {
        out: Vec::new(),
        account: account.to_string(),
    };
    let unwritable = fs
        .iter()
        .find(|f| f.kind == DESTINATION_UNWRITABLE)
        .map(|f| {
            f.attrs
                .get("reason")
                .map(String::as_str)
                .unwrap_or("unknown")
        });
    let Some(dest) = destination(cfg, acct, user) else {
        return b.out;
    };
    let keys: Vec<&&Finding> = fs.iter().filter(|f| f.kind == OWNED_ACCESS_KEY).collect();
    let mut known: Vec<String> = keys
        .iter()
        .filter_map(|k| split_target(&k.target).2.map(str::to_string))
        .collect();
    known.sort();
    let full = known.len() >= 2;
    let mut previous: Option<String> = None;
    for k in keys {
        if k.attrs.get("status").map(String::as_str) != Some("Active") {
            continue;
        }
        let id = split_target(&k.target).2.unwrap_or("").to_string();
        let mut p = params(acct, user, Some(&id));
        p.push(("known_keys", known.join(",")));
        p.push(("destination", dest.clone()));
        let mut summary = format!(
            "rotate access key {id} of service user {user} in {acct}: new key to {dest}, then deactivate {id}"
        );
        if full {
            summary.push_str(
                "; the user already has two keys (IAM's limit), so one must be deleted first",
            );
        }
        if let Some(reason) = unwritable {
            summary.push_str(&format!(
                "; the destination cannot be written now ({reason}): this fails before a key is made unless it is fixed"
            ));
        }
        let after = previous
            .take()
            .map(|t| vec![(ROTATE_ACCESS_KEY, t)])
            .unwrap_or_default();
        b.push(
            ROTATE_ACCESS_KEY,
            &k.target,
            Phase::Transfer,
            p,
            after,
            summary,
            None,
        );
        b.push(
            DELETE_ROTATED_KEY,
            &k.target,
            Phase::Delete,
            params(acct, user, Some(&id)),
            vec![(ROTATE_ACCESS_KEY, k.target.clone())],
            format!(
                "delete the rotated-out key {id} of {user} {} days after its rotation, unless it was reactivated",
                cfg.rotation_grace.as_secs() / 86_400
            ),
            Some(cfg.rotation_grace),
        );
        previous = Some(k.target.clone());
    }
    b.out
}
