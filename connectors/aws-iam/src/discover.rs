//! Read-only discovery: the IAM users of each subject in each account, everything attached to
//! them, and the service users whose owner tag names the subject (their keys are rotated).
//!
//! Batch mode makes one GetAccountAuthorizationDetails scan per account for the whole batch
//! (it carries each user's tags, inline and attached policies, groups and boundary), one
//! credential report per account for the keys' last use, and per matched user only the six
//! calls nothing else answers. Nothing that decides an action comes from the credential
//! report: AWS regenerates it at most every four hours, so a key made this morning may be
//! missing from it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use aws_sdk_iam::types::{EntityType, ReportStateType, StatusType};
use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use revoke_core::{Account, ConnectorError, Discovery, Finding, Subject};
use tracing::{debug, warn};

use crate::classify::CallError;
use crate::client::Clients;
use crate::config::{DiscoveryMode, IamConfig, MatchBy};
use crate::escape::is_user_name;

/// Finding kinds.
pub const USER: &str = "iam_user";
pub const LOGIN_PROFILE: &str = "login_profile";
pub const ACCESS_KEY: &str = "access_key";
pub const SIGNING_CERTIFICATE: &str = "signing_certificate";
pub const SSH_PUBLIC_KEY: &str = "ssh_public_key";
pub const SERVICE_CREDENTIAL: &str = "service_specific_credential";
pub const SERVICE_CREDENTIALS_UNLISTED: &str = "service_specific_credentials_unlisted";
pub const MFA_DEVICE: &str = "mfa_device";
pub const INLINE_POLICY: &str = "inline_policy";
pub const ATTACHED_POLICY: &str = "attached_policy";
pub const GROUP_MEMBERSHIP: &str = "group_membership";
pub const PERMISSIONS_BOUNDARY: &str = "permissions_boundary";
pub const OWNED_SERVICE_USER: &str = "owned_service_user";
pub const OWNED_ACCESS_KEY: &str = "owned_access_key";
/// The rotation destination cannot be written (`secrets_dir` missing or read-only): the
/// rotation of this service user will fail, and the plan says so.
pub const DESTINATION_UNWRITABLE: &str = "rotation_destination_unwritable";

/// The user tag that names the key a rotation made, so the next plan does not rotate it again.
pub const ROTATED_TAG: &str = "revoked:rotated-key";

/// One IAM user as the scan (or GetUser and its lists) saw it.
#[derive(Debug, Clone, Default)]
pub(crate) struct UserFacts {
    account: String,
    pub(crate) name: String,
    arn: String,
    pub(crate) user_id: String,
    created: String,
    tags: Vec<(String, String)>,
    pub(crate) inline: Vec<String>,
    pub(crate) attached: Vec<String>,
    pub(crate) groups: Vec<String>,
    boundary: Option<String>,
}

fn date(d: &DateTime) -> String {
    d.fmt(Format::DateTime).unwrap_or_default()
}

fn day(d: &DateTime) -> String {
    date(d).chars().take(10).collect()
}

fn status(s: &StatusType) -> &str {
    s.as_str()
}

/// `account/user` and `account/user/id`: targets, unique across accounts.
pub fn target(account: &str, user: &str, id: Option<&str>) -> String {
    match id {
        Some(id) => format!("{account}/{user}/{id}"),
        None => format!("{account}/{user}"),
    }
}

/// ASCII case only: a non-ASCII letter must be the same letter (`\u{212A}im`, with a Kelvin
/// sign, is not `kim`; a fullwidth `ｄａｖｅ` is not `dave`).
fn lower(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// What an IAM user's actions are pinned to: its UserId (`AIDA...`), which IAM never gives to
/// another user, even one created later under the same name.
pub const ID_KIND: &str = "UserId";

/// The identifiers a tag value is compared with (case-insensitively).
fn identifiers(s: &Subject) -> BTreeSet<String> {
    s.identifiers().map(lower).collect()
}

/// Every identifier an IAM user answers to: its name, ARN and UserId, and the values of the
/// match tag and of an `email` tag (a user tagged `email=dana@example.org` answers to it).
fn user_identifiers<'a>(cfg: &IamConfig, u: &'a UserFacts) -> Vec<&'a str> {
    let mut out = vec![u.name.as_str(), u.arn.as_str(), u.user_id.as_str()];
    out.extend(
        u.tags
            .iter()
            .filter(|(k, _)| k == &cfg.match_tag || k == "email")
            .map(|(_, v)| v.trim()),
    );
    out
}

/// The account discovery reports for `u`: pinned to its UserId, named `account/user`.
fn account_of(cfg: &IamConfig, u: &UserFacts, why: &str) -> Result<Account, ConnectorError> {
    if u.user_id.is_empty() {
        return Err(ConnectorError::permanent(
            "no_user_id",
            format!(
                "expected a UserId for IAM user {} in {}, found none",
                u.name, u.account
            ),
        ));
    }
    Ok(
        Account::new(&u.user_id, ID_KIND, target(&u.account, &u.name, None))
            .answers_to(user_identifiers(cfg, u))
            .matched_by(why),
    )
}

/// How `user` belongs to `subject`, if it does, and one line saying so. IAM user names are
/// case-insensitive (`DANA` is `dana`), and so are mapping keys and tag values here.
fn matched_by(
    cfg: &IamConfig,
    instance: &str,
    s: &Subject,
    u: &UserFacts,
) -> Option<(MatchBy, String)> {
    if cfg.matches_by(MatchBy::Mapping) {
        for id in s.identifiers() {
            for (key, v) in cfg.users.iter().filter(|(k, _)| k.eq_ignore_ascii_case(id)) {
                let hit = match v.split_once('/') {
                    Some((acct, name)) => acct == u.account && name.eq_ignore_ascii_case(&u.name),
                    None => v.eq_ignore_ascii_case(&u.name),
                };
                if hit {
                    return Some((MatchBy::Mapping, format!("users.{key} = {v}")));
                }
            }
        }
    }
    if cfg.matches_by(MatchBy::Tag) {
        let ids = identifiers(s);
        if let Some((k, v)) = u
            .tags
            .iter()
            .find(|(k, v)| k == &cfg.match_tag && !v.is_empty() && ids.contains(&lower(v.trim())))
        {
            return Some((MatchBy::Tag, format!("tag {k} = {v}")));
        }
    }
    if cfg.matches_by(MatchBy::Name) {
        let name = s.username_for(instance);
        if is_user_name(name) && name.eq_ignore_ascii_case(&u.name) {
            return Some((MatchBy::Name, format!("user name = {}", u.name)));
        }
    }
    None
}

/// Whether the user's owner tag names the subject: `ids` holds every identifier of the subject
/// and of the accounts found as theirs, lowercased, so `--user dana` finds the service users
/// tagged with the email her IAM user carries. One line saying so.
fn owned_by(cfg: &IamConfig, ids: &BTreeSet<String>, u: &UserFacts) -> Option<String> {
    u.tags
        .iter()
        .find(|(k, v)| k == &cfg.owner_tag && !v.is_empty() && ids.contains(&lower(v.trim())))
        .map(|(k, v)| format!("tag {k} = {v}"))
}

pub(crate) async fn scan_users(
    c: &Clients,
    account: &str,
) -> Result<Vec<UserFacts>, ConnectorError> {
    let iam = c.iam(account).await?;
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = {
            let _permit = c.reads.acquire().await;
            iam.get_account_authorization_details()
                .filter(EntityType::User)
                .max_items(1000)
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| CallError::of("iam:GetAccountAuthorizationDetails", &e))?
        };
        for u in page.user_detail_list() {
            let Some(name) = u.user_name() else { continue };
            out.push(UserFacts {
                account: account.to_string(),
                name: name.to_string(),
                arn: u.arn().unwrap_or_default().to_string(),
                user_id: u.user_id().unwrap_or_default().to_string(),
                created: u.create_date().map(day).unwrap_or_default(),
                tags: u
                    .tags()
                    .iter()
                    .map(|t| (t.key().to_string(), t.value().to_string()))
                    .collect(),
                inline: u
                    .user_policy_list()
                    .iter()
                    .filter_map(|p| p.policy_name().map(str::to_string))
                    .collect(),
                attached: u
                    .attached_managed_policies()
                    .iter()
                    .filter_map(|p| p.policy_arn().map(str::to_string))
                    .collect(),
                groups: u.group_list().to_vec(),
                boundary: u
                    .permissions_boundary()
                    .and_then(|b| b.permissions_boundary_arn())
                    .map(str::to_string),
            });
        }
        match (page.is_truncated, page.marker) {
            (true, Some(m)) => marker = Some(m),
            _ => break,
        }
    }
    Ok(out)
}

/// Per user, from the credential report: (key creation time, last used day) of its keys.
type LastUse = HashMap<String, Vec<(String, String)>>;

/// The credential report's last-use dates, or nothing when it is not ready in a few seconds
/// (then each key is asked with GetAccessKeyLastUsed).
async fn credential_report(c: &Clients, account: &str) -> LastUse {
    let Ok(iam) = c.iam(account).await else {
        return LastUse::new();
    };
    for _ in 0..10 {
        match iam.generate_credential_report().send().await {
            Ok(out) if out.state() == Some(&ReportStateType::Complete) => break,
            Ok(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            Err(e) => {
                debug!(account, error = %CallError::of("iam:GenerateCredentialReport", &e).fault.describe(), "no credential report; asking each key");
                return LastUse::new();
            }
        }
    }
    let content = match iam.get_credential_report().send().await {
        Ok(out) => out.content.map(|b| b.into_inner()).unwrap_or_default(),
        Err(e) => {
            debug!(account, error = %CallError::of("iam:GetCredentialReport", &e).fault.describe(), "no credential report; asking each key");
            return LastUse::new();
        }
    };
    parse_report(&String::from_utf8_lossy(&content))
}

/// Reads the CSV: `user`, then per key slot `access_key_N_last_rotated` (the key's creation
/// time, which is how a slot is tied to a key id) and `access_key_N_last_used_date`.
fn parse_report(csv: &str) -> LastUse {
    let mut lines = csv.lines();
    let Some(header) = lines.next() else {
        return LastUse::new();
    };
    let cols: Vec<&str> = header.split(',').collect();
    let col = |name: &str| cols.iter().position(|c| *c == name);
    let Some(user_col) = col("user") else {
        return LastUse::new();
    };
    let slots: Vec<(usize, usize)> = (1..=2)
        .filter_map(|n| {
            Some((
                col(&format!("access_key_{n}_last_rotated"))?,
                col(&format!("access_key_{n}_last_used_date"))?,
            ))
        })
        .collect();
    let mut out = LastUse::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let Some(user) = f.get(user_col) else {
            continue;
        };
        for (rot, used) in &slots {
            let (Some(rot), Some(used)) = (f.get(*rot), f.get(*used)) else {
                continue;
            };
            if *rot == "N/A" {
                continue;
            }
            let used = if *used == "N/A" {
                "never".to_string()
            } else {
                used.chars().take(10).collect()
            };
            out.entry(user.to_string())
                .or_default()
                .push((rot.chars().take(19).collect(), used));
        }
    }
    out
}

/// The six calls per user nothing batched answers, plus last use per key.
async fn details(
    c: &Clients,
    subject: &str,
    instance: &str,
    u: &UserFacts,
    report: Option<&LastUse>,
) -> Result<Vec<Finding>, ConnectorError> {
    let iam = c.iam(&u.account).await?;
    let (acct, name) = (u.account.as_str(), u.name.as_str());
    let f = |kind: &str, target: String, attrs: Vec<(&str, String)>| Finding {
        connector: instance.to_string(),
        subject: subject.to_string(),
        kind: kind.to_string(),
        target,
        attrs: attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    };
    let mut out = Vec::new();

    let permit = c.reads.acquire().await;
    let login = iam.get_login_profile().user_name(name).send().await;
    drop(permit);
    match login {
        Ok(p) => {
            if let Some(p) = p.login_profile() {
                out.push(f(
                    LOGIN_PROFILE,
                    target(acct, name, None),
                    vec![("created", day(p.create_date()))],
                ));
            }
        }
        Err(e) => {
            let e = CallError::of("iam:GetLoginProfile", &e);
            if !e.is_gone() {
                return Err(e.into());
            }
        }
    }

    let permit = c.reads.acquire().await;
    let keys = iam
        .list_access_keys()
        .user_name(name)
        .send()
        .await
        .map_err(|e| CallError::of("iam:ListAccessKeys", &e))?;
    drop(permit);
    for k in keys.access_key_metadata() {
        let Some(id) = k.access_key_id() else {
            continue;
        };
        let created = k.create_date().map(date).unwrap_or_default();
        let from_report = report.and_then(|r| r.get(name)).and_then(|slots| {
            slots
                .iter()
                .find(|(rot, _)| created.starts_with(rot.as_str()))
                .map(|(_, used)| used.clone())
        });
        let last_used = match from_report {
            Some(u) => u,
            None => {
                let _permit = c.reads.acquire().await;
                match iam
                    .get_access_key_last_used()
                    .access_key_id(id)
                    .send()
                    .await
                {
                    Ok(o) => o
                        .access_key_last_used()
                        .and_then(|l| l.last_used_date())
                        .map(day)
                        .unwrap_or_else(|| "never".into()),
                    Err(e) => {
                        let e = CallError::of("iam:GetAccessKeyLastUsed", &e);
                        warn!(account = acct, user = name, error = %e.fault.describe(), "last use of a key unknown");
                        "unknown".into()
                    }
                }
            }
        };
        out.push(f(
            ACCESS_KEY,
            target(acct, name, Some(id)),
            vec![
                ("status", k.status().map(status).unwrap_or("").to_string()),
                ("created", created.chars().take(10).collect()),
                ("last_used", last_used),
            ],
        ));
    }

    let permit = c.reads.acquire().await;
    let certs = iam
        .list_signing_certificates()
        .user_name(name)
        .send()
        .await
        .map_err(|e| CallError::of("iam:ListSigningCertificates", &e))?;
    drop(permit);
    for cert in certs.certificates() {
        out.push(f(
            SIGNING_CERTIFICATE,
            target(acct, name, Some(cert.certificate_id())),
            vec![("status", status(cert.status()).to_string())],
        ));
    }

    let permit = c.reads.acquire().await;
    let ssh = iam
        .list_ssh_public_keys()
        .user_name(name)
        .send()
        .await
        .map_err(|e| CallError::of("iam:ListSSHPublicKeys", &e))?;
    drop(permit);
    for k in ssh.ssh_public_keys() {
        out.push(f(
            SSH_PUBLIC_KEY,
            target(acct, name, Some(k.ssh_public_key_id())),
            vec![("status", status(k.status()).to_string())],
        ));
    }

    // moto answers 500 here (not implemented), and a real IAM may fail the same way. A 5xx is
    // not "none": it becomes a finding the plan shows, delete_user stays in the plan, and IAM
    // itself refuses DeleteUser (DeleteConflict) if credentials remain. Anything else fails.
    let permit = c.reads.acquire().await;
    let ssc = iam
        .list_service_specific_credentials()
        .user_name(name)
        .send()
        .await;
    drop(permit);
    match ssc {
        Ok(o) => {
            for s in o.service_specific_credentials() {
                out.push(f(
                    SERVICE_CREDENTIAL,
                    target(acct, name, Some(s.service_specific_credential_id())),
                    vec![
                        ("service", s.service_name().to_string()),
                        ("status", status(s.status()).to_string()),
                    ],
                ));
            }
        }
        Err(e) => {
            let e = CallError::of("iam:ListServiceSpecificCredentials", &e);
            if e.fault.status.is_some_and(|s| s >= 500) {
                warn!(account = acct, user = name, error = %e.fault.describe(), "service-specific credentials could not be listed");
                out.push(f(
                    SERVICE_CREDENTIALS_UNLISTED,
                    target(acct, name, None),
                    vec![("reason", e.fault.describe())],
                ));
            } else {
                return Err(e.into());
            }
        }
    }

    let permit = c.reads.acquire().await;
    let mfa = iam
        .list_mfa_devices()
        .user_name(name)
        .send()
        .await
        .map_err(|e| CallError::of("iam:ListMFADevices", &e))?;
    drop(permit);
    for d in mfa.mfa_devices() {
        let serial = d.serial_number();
        out.push(f(
            MFA_DEVICE,
            target(acct, name, Some(serial)),
            vec![("virtual", is_virtual_mfa(serial).to_string())],
        ));
    }
    Ok(out)
}

/// A virtual MFA device's serial is its ARN (`arn:aws:iam::ACCOUNT:mfa/NAME`); hardware and
/// FIDO devices are only deactivated.
pub fn is_virtual_mfa(serial: &str) -> bool {
    serial.starts_with("arn:") && serial.contains(":mfa/")
}

/// The findings of what the scan already says about a matched user.
fn user_findings(
    cfg: &IamConfig,
    subject: &str,
    instance: &str,
    u: &UserFacts,
    how: MatchBy,
) -> Vec<Finding> {
    let f = |kind: &str, target: String, attrs: Vec<(&str, String)>| Finding {
        connector: instance.to_string(),
        subject: subject.to_string(),
        kind: kind.to_string(),
        target,
        attrs: attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    };
    let (acct, name) = (u.account.as_str(), u.name.as_str());
    let how = match how {
        MatchBy::Mapping => "mapping",
        MatchBy::Tag => "tag",
        MatchBy::Name => "name",
    };
    let mut out = vec![f(
        USER,
        target(acct, name, None),
        vec![
            ("account", acct.to_string()),
            ("user", name.to_string()),
            ("arn", u.arn.clone()),
            ("user_id", u.user_id.clone()),
            ("created", u.created.clone()),
            ("matched_by", how.to_string()),
        ],
    )];
    for p in &u.inline {
        let mut attrs = vec![];
        if p == &cfg.quarantine_policy {
            attrs.push(("quarantine", "true".to_string()));
        }
        out.push(f(INLINE_POLICY, target(acct, name, Some(p)), attrs));
    }
    for p in &u.attached {
        out.push(f(ATTACHED_POLICY, target(acct, name, Some(p)), vec![]));
    }
    for g in &u.groups {
        out.push(f(GROUP_MEMBERSHIP, target(acct, name, Some(g)), vec![]));
    }
    if let Some(b) = &u.boundary {
        out.push(f(
            PERMISSIONS_BOUNDARY,
            target(acct, name, None),
            vec![("arn", b.clone())],
        ));
    }
    out
}

/// The keys of a service user the subject owns.
async fn owned_findings(
    c: &Clients,
    cfg: &IamConfig,
    subject: &str,
    instance: &str,
    u: &UserFacts,
) -> Result<Vec<Finding>, ConnectorError> {
    let iam = c.iam(&u.account).await?;
    let (acct, name) = (u.account.as_str(), u.name.as_str());
    let mut out = vec![Finding {
        connector: instance.to_string(),
        subject: subject.to_string(),
        kind: OWNED_SERVICE_USER.into(),
        target: target(acct, name, None),
        attrs: BTreeMap::from([
            ("account".to_string(), acct.to_string()),
            ("user".to_string(), name.to_string()),
            ("owner_tag".to_string(), cfg.owner_tag.clone()),
        ]),
    }];
    let _permit = c.reads.acquire().await;
    let keys = iam
        .list_access_keys()
        .user_name(name)
        .send()
        .await
        .map_err(|e| CallError::of("iam:ListAccessKeys", &e))?;
    // The key an earlier rotation made is the new owner's to keep, not rotated again.
    let rotated = u
        .tags
        .iter()
        .find(|(k, _)| k == ROTATED_TAG)
        .map(|(_, v)| v.as_str());
    for k in keys.access_key_metadata() {
        let Some(id) = k.access_key_id() else {
            continue;
        };
        if Some(id) == rotated {
            continue;
        }
        out.push(Finding {
            connector: instance.to_string(),
            subject: subject.to_string(),
            kind: OWNED_ACCESS_KEY.into(),
            target: target(acct, name, Some(id)),
            attrs: BTreeMap::from([
                (
                    "status".to_string(),
                    k.status().map(status).unwrap_or("").to_string(),
                ),
                (
                    "created".to_string(),
                    k.create_date().map(day).unwrap_or_default(),
                ),
            ]),
        });
    }
    Ok(out)
}

/// What to look at for one subject.
enum Work {
    /// The subject's own user: how it matched, and the line saying so.
    User(String, UserFacts, MatchBy, String),
    /// A service user the subject owns, and the line saying so.
    Owned(String, UserFacts, String),
}

impl Work {
    fn subject(&self) -> &str {
        match self {
            Work::User(s, ..) | Work::Owned(s, ..) => s,
        }
    }
}

/// Discovery of a batch of subjects across every account.
pub async fn discover_many(
    c: &Clients,
    cfg: &IamConfig,
    instance: &str,
    subjects: &[Subject],
) -> Result<Vec<Discovery>, ConnectorError> {
    let accounts = c.accounts.accounts().await?;
    let mut work: Vec<Work> = Vec::new();
    match cfg.discovery {
        DiscoveryMode::Batch => {
            // Every account first: a service user in one account may be owned through the
            // email tag of the subject's user in another.
            let mut users = Vec::new();
            for account in &accounts {
                users.extend(scan_users(c, account).await?);
            }
            for s in subjects {
                let own: Vec<(usize, MatchBy, String)> = users
                    .iter()
                    .enumerate()
                    .filter_map(|(i, u)| {
                        matched_by(cfg, instance, s, u).map(|(how, why)| (i, how, why))
                    })
                    .collect();
                let mut ids = identifiers(s);
                for (i, ..) in &own {
                    ids.extend(user_identifiers(cfg, &users[*i]).into_iter().map(lower));
                }
                ids.remove("");
                for (i, u) in users.iter().enumerate() {
                    if let Some((_, how, why)) = own.iter().find(|(j, ..)| *j == i) {
                        work.push(Work::User(s.id.clone(), u.clone(), *how, why.clone()));
                    } else if cfg.rotation.is_some() {
                        if let Some(why) = owned_by(cfg, &ids, u) {
                            work.push(Work::Owned(s.id.clone(), u.clone(), why));
                        }
                    }
                }
            }
        }
        DiscoveryMode::PerUser => {
            for account in &accounts {
                for s in subjects {
                    for (u, how, why) in get_users(c, cfg, instance, account, s).await? {
                        work.push(Work::User(s.id.clone(), u, how, why));
                    }
                }
            }
        }
    }

    let mut reports: HashMap<String, LastUse> = HashMap::new();
    if cfg.discovery == DiscoveryMode::Batch {
        for w in &work {
            if let Work::User(_, u, ..) = w {
                if !reports.contains_key(&u.account) {
                    let r = credential_report(c, &u.account).await;
                    reports.insert(u.account.clone(), r);
                }
            }
        }
    }
    // An unwritable destination is said in the plan, before any key is made.
    let unwritable = if work.iter().any(|w| matches!(w, Work::Owned(..))) {
        crate::destination::problem(cfg)
    } else {
        None
    };

    let mut accounts_of: BTreeMap<String, BTreeSet<Account>> = BTreeMap::new();
    for w in &work {
        let (u, why) = match w {
            Work::User(_, u, _, why) | Work::Owned(_, u, why) => (u, why),
        };
        accounts_of
            .entry(w.subject().to_string())
            .or_default()
            .insert(account_of(cfg, u, why)?);
    }

    let reports = &reports;
    let unwritable = unwritable.as_deref();
    let results: Vec<(String, Vec<Finding>)> = stream::iter(work)
        .map(|w| async move {
            match w {
                Work::User(s, u, how, _) => {
                    let mut v = user_findings(cfg, &s, instance, &u, how);
                    v.extend(details(c, &s, instance, &u, reports.get(&u.account)).await?);
                    Ok::<_, ConnectorError>((s, v))
                }
                Work::Owned(s, u, _) => {
                    let mut v = owned_findings(c, cfg, &s, instance, &u).await?;
                    if let Some(reason) = unwritable {
                        v.push(Finding {
                            connector: instance.to_string(),
                            subject: s.clone(),
                            kind: DESTINATION_UNWRITABLE.into(),
                            target: target(&u.account, &u.name, None),
                            attrs: BTreeMap::from([("reason".to_string(), reason.to_string())]),
                        });
                    }
                    Ok((s, v))
                }
            }
        })
        .buffer_unordered(cfg.read_concurrency)
        .try_collect()
        .await?;
    let mut findings: BTreeMap<String, Vec<Finding>> = BTreeMap::new();
    for (subject, v) in results {
        findings.entry(subject).or_default().extend(v);
    }
    Ok(subjects
        .iter()
        .map(|s| {
            let mut f = findings.remove(&s.id).unwrap_or_default();
            f.sort();
            Discovery {
                connector: instance.to_string(),
                subject: s.id.clone(),
                found: f
                    .iter()
                    .any(|x| x.kind == USER || x.kind == OWNED_SERVICE_USER),
                findings: f,
                accounts: accounts_of
                    .remove(&s.id)
                    .map(|a| a.into_iter().collect())
                    .unwrap_or_default(),
                notes: Vec::new(),
            }
        })
        .collect())
}

/// Per-user mode: GetUser for the mapped and same-named users, then their lists.
async fn get_users(
    c: &Clients,
    cfg: &IamConfig,
    instance: &str,
    account: &str,
    s: &Subject,
) -> Result<Vec<(UserFacts, MatchBy, String)>, ConnectorError> {
    let mut names: Vec<(String, MatchBy, String)> = Vec::new();
    if cfg.matches_by(MatchBy::Mapping) {
        for id in s.identifiers() {
            for (key, v) in cfg.users.iter().filter(|(k, _)| k.eq_ignore_ascii_case(id)) {
                let why = format!("users.{key} = {v}");
                match v.split_once('/') {
                    Some((a, n)) if a == account => {
                        names.push((n.to_string(), MatchBy::Mapping, why))
                    }
                    Some(_) => {}
                    None => names.push((v.clone(), MatchBy::Mapping, why)),
                }
            }
        }
    }
    if cfg.matches_by(MatchBy::Name) {
        let name = s.username_for(instance).to_string();
        names.push((name, MatchBy::Name, String::new()));
    }
    let iam = c.iam(account).await?;
    let mut out: Vec<(UserFacts, MatchBy, String)> = Vec::new();
    for (name, how, why) in names {
        // A name IAM cannot hold (`../x`, `*)(uid=*`) is never sent; IAM user names are
        // case-insensitive, so `DANA` is the `dana` already found.
        if !is_user_name(&name) || out.iter().any(|(u, ..)| u.name.eq_ignore_ascii_case(&name)) {
            continue;
        }
        let _permit = c.reads.acquire().await;
        let u = match iam.get_user().user_name(&name).send().await {
            Ok(o) => match o.user {
                Some(u) => u,
                None => continue,
            },
            Err(e) => {
                let e = CallError::of("iam:GetUser", &e);
                if e.is_gone() {
                    continue;
                }
                return Err(e.into());
            }
        };
        let tags = iam
            .list_user_tags()
            .user_name(&name)
            .send()
            .await
            .map_err(|e| CallError::of("iam:ListUserTags", &e))?;
        let inline = iam
            .list_user_policies()
            .user_name(&name)
            .send()
            .await
            .map_err(|e| CallError::of("iam:ListUserPolicies", &e))?;
        let attached = iam
            .list_attached_user_policies()
            .user_name(&name)
            .send()
            .await
            .map_err(|e| CallError::of("iam:ListAttachedUserPolicies", &e))?;
        let groups = iam
            .list_groups_for_user()
            .user_name(&name)
            .send()
            .await
            .map_err(|e| CallError::of("iam:ListGroupsForUser", &e))?;
        out.push((
            UserFacts {
                account: account.to_string(),
                name: u.user_name().to_string(),
                arn: u.arn().to_string(),
                user_id: u.user_id().to_string(),
                created: day(u.create_date()),
                tags: tags
                    .tags()
                    .iter()
                    .map(|t| (t.key().to_string(), t.value().to_string()))
                    .collect(),
                inline: inline.policy_names().to_vec(),
                attached: attached
                    .attached_policies()
                    .iter()
                    .filter_map(|p| p.policy_arn().map(str::to_string))
                    .collect(),
                groups: groups
                    .groups()
                    .iter()
                    .map(|g| g.group_name().to_string())
                    .collect(),
                boundary: u
                    .permissions_boundary()
                    .and_then(|b| b.permissions_boundary_arn())
                    .map(str::to_string),
            },
            how,
            why,
        ));
    }
    // The name IAM answered with, as it holds it (`dana` for `DANA`).
    for (u, how, why) in &mut out {
        if *how == MatchBy::Name {
            *why = format!("user name = {}", u.name);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_look_alike_tag_value_is_not_the_subject() {
        let cfg = IamConfig::from_value(&serde_json::json!({"match_by": ["tag"]})).expect("config");
        let user = |tag: &str| UserFacts {
            account: "111111111111".into(),
            name: "svc".into(),
            user_id: "AIDAEXAMPLE".into(),
            tags: vec![(cfg.match_tag.clone(), tag.to_string())],
            ..UserFacts::default()
        };
        let kim = Subject::new("kim");
        assert!(matched_by(&cfg, "iam", &kim, &user("KIM")).is_some());
        for look_alike in ["\u{212A}im", "ｋｉｍ"] {
            assert!(
                matched_by(&cfg, "iam", &kim, &user(look_alike)).is_none(),
                "{look_alike}"
            );
        }
    }

    #[test]
    fn report_slots_are_tied_to_keys_by_creation_time() {
        let csv = "user,arn,user_creation_time,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date\n\
alice,arn,2026-01-01T00:00:00+00:00,true,2026-01-02T10:00:00+00:00,2026-11-20T08:00:00+00:00,false,2026-03-01T00:00:00+00:00,N/A\n\
bob,arn,2026-01-01T00:00:00+00:00,false,N/A,N/A,false,N/A,N/A\n";
        let r = parse_report(csv);
        assert_eq!(
            r.get("alice"),
            Some(&vec![
                ("2026-01-02T10:00:00".to_string(), "2026-11-20".to_string()),
                ("2026-03-01T00:00:00".to_string(), "never".to_string()),
            ])
        );
        assert_eq!(r.get("bob"), None);
        assert!(parse_report("").is_empty());
    }

    #[test]
    fn virtual_mfa_by_serial() {
        assert!(is_virtual_mfa("arn:aws:iam::123456789012:mfa/alice"));
        assert!(!is_virtual_mfa("GAHT12345678"));
        assert!(!is_virtual_mfa(
            "arn:aws:iam::123456789012:u2f/user/alice/key"
        ));
    }
}
