//! Read-only discovery: the user (by primary email or alias, by `externalIds` employee id, or by
//! its id), its state, OAuth grants, app passwords, direct groups (and which of them sit in
//! other groups), admin role assignments, configured licences, Gmail auto-reply and forwarding,
//! the Drive files the user owns (count and bytes) and the Drive transfer to the configured
//! owner if one exists already; as configured, their mobile devices and shared-drive
//! memberships. A departing client's subject (a domain) is discovered by `discover_client`.
//!
//! Every identifier is checked before it is sent: an email must be one Google accepts (letters,
//! digits, `.`, `_`, `'`, `-` before the `@`), an employee id letters, digits, `.`, `_`, `-`;
//! anything else (`*`, `../x`, quotes) is a `bad_identifier` error and no request is sent for
//! the subject. Values are percent-encoded into one path segment or query value all the same.
//! Google resolves a userKey exactly (primary email or alias, any case, or the id), and the
//! answer is checked here again: only a user that holds the value asked for is the subject's.

use std::collections::{BTreeMap, HashMap};

use reqwest::Method;
use revoke_core::{Account, ClientDomain, ConnectorError, Discovery, Finding, Subject};
use serde_json::Value;

use crate::classify;
use crate::classify::Reply;
use crate::client::{encode, Client, Who};
use crate::config::{is_email, is_employee_id, GoogleConfig};

/// The user itself (target `users/<id>`).
pub const ACCOUNT: &str = "account";
/// One OAuth grant (target `users/<id>/tokens/<clientId>`).
pub const OAUTH_GRANT: &str = "oauth_grant";
/// One app password (target `users/<id>/asps/<codeId>`).
pub const APP_PASSWORD: &str = "app_password";
/// One direct group membership (target `groups/<group id>/members/<user id>`).
pub const GROUP_MEMBERSHIP: &str = "group_membership";
/// One admin role assignment (target `roleassignments/<id>`).
pub const ROLE_ASSIGNMENT: &str = "role_assignment";
/// One licence (target `licences/<product>/<sku>/users/<id>`).
pub const LICENCE: &str = "licence";
/// The Gmail settings (target `users/<id>/gmail`).
pub const GMAIL: &str = "gmail_settings";
/// The Drive transfer to the configured owner (target `transfers/<old id>/to/<new id>`).
pub const DRIVE_TRANSFER: &str = "drive_transfer";

/// One mobile device of the user (target `devices/mobile/<resourceId>`).
pub const MOBILE_DEVICE: &str = "mobile_device";
/// The user's membership of a shared drive (target `drives/<drive id>/permissions/<permission id>`).
pub const SHARED_DRIVE_MEMBER: &str = "shared_drive_member";
/// A shared drive whose only organizer is the user: removing them would orphan it, so nothing
/// is planned for it (target `drives/<drive id>`).
pub const SOLE_ORGANIZER: &str = "shared_drive_sole_organizer";

/// A permission of a departing client on a file (target `files/<file id>/permissions/<permission id>`).
pub const CLIENT_PERMISSION: &str = "client_permission";
/// A departing client's membership of a shared drive (target `drives/<drive id>/permissions/<permission id>`).
pub const CLIENT_DRIVE_PERMISSION: &str = "client_drive_permission";
/// A share that names nobody (anyone with the link, or a user or group permission without an
/// address) on a file shared with the client: never touched by a client job, reported for a
/// person to judge (target `files/<file id>/permissions/<id>`).
pub const LINK_SHARE: &str = "anyone_with_link";

/// What a Drive permission id is called in plans and errors: the grantee's id in Drive, the same
/// on every file, so it never comes to name another grantee.
pub const PERMISSION_ID_KIND: &str = "Drive permission id";

/// A shared drive whose files could not be searched for the client's shares: no active user of
/// ours organizes it, and Drive lists a shared drive's files only to its members (target
/// `drives/<drive id>`).
pub const DRIVE_NOT_SCANNED: &str = "shared_drive_not_scanned";

/// Device statuses after a wipe was asked for (Google documents no list; these are the values
/// its API answers: `ACCOUNT_WIPING`, `ACCOUNT_WIPED` after an account wipe, `WIPING`, `WIPED`
/// after a full one).
pub const WIPED_STATUSES: &[&str] = &["ACCOUNT_WIPING", "ACCOUNT_WIPED", "WIPING", "WIPED"];

/// What the pinned id is called in plans and errors.
pub const ID_KIND: &str = "Google user id";

/// Google Drive's application id in the Data Transfer API.
pub const DRIVE_APP_ID: &str = "55656082996";
/// Google Calendar's application id in the Data Transfer API.
pub const CALENDAR_APP_ID: &str = "435070579839";

/// Google's user ids: 21 digits.
pub fn is_user_id(s: &str) -> bool {
    s.len() == 21 && s.bytes().all(|b| b.is_ascii_digit())
}

/// One way to look a subject up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// `GET users/{key}`: a primary email, an alias or a user id.
    Key(String),
    /// `GET users?query=externalId=...`.
    EmployeeId(String),
}

fn bad_identifier(what: &str, value: &str, expected: &str) -> ConnectorError {
    ConnectorError::permanent(
        "bad_identifier",
        format!("the subject's {what} {value:?} is not {expected}; nothing was sent for it"),
    )
}

/// The look-ups for a subject, in order: its email, its id as an email or a user id (or, bare,
/// as `id@domain` when `domain` is set), its username for this instance, then its employee id
/// and its id as one. A value given as an email or employee id that Google could not hold is
/// an error before anything is sent.
pub fn lookups(
    cfg: &GoogleConfig,
    instance: &str,
    s: &Subject,
) -> Result<Vec<Lookup>, ConnectorError> {
    let mut out: Vec<Lookup> = Vec::new();
    let mut push = |l: Lookup| {
        if !out.contains(&l) {
            out.push(l);
        }
    };
    if let Some(e) = s.email.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
        if !is_email(e) {
            return Err(bad_identifier(
                "email",
                e,
                "an email address Google accepts",
            ));
        }
        push(Lookup::Key(e.to_ascii_lowercase()));
    }
    let mut as_name = |v: &str, what: &str| -> Result<bool, ConnectorError> {
        let v = v.trim();
        if v.contains('@') {
            if !is_email(v) {
                return Err(bad_identifier(what, v, "an email address Google accepts"));
            }
            push(Lookup::Key(v.to_ascii_lowercase()));
            return Ok(true);
        }
        if is_user_id(v) {
            push(Lookup::Key(v.to_string()));
        }
        if let Some(d) = &cfg.domain {
            let e = format!("{v}@{d}");
            if is_email(&e) {
                push(Lookup::Key(e.to_ascii_lowercase()));
            }
        }
        Ok(false)
    };
    let id_is_email = as_name(&s.id, "id")?;
    let username = s.username_for(instance);
    if username != s.id {
        as_name(username, "username")?;
    }
    if let Some(e) = s
        .employee_id
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        if !is_employee_id(e) {
            return Err(bad_identifier(
                "employee id",
                e,
                "letters, digits, '.', '_' or '-'",
            ));
        }
        push(Lookup::EmployeeId(e.to_string()));
    }
    if !id_is_email {
        let id = s.id.trim();
        if is_employee_id(id) {
            push(Lookup::EmployeeId(id.to_string()));
        } else if !is_user_id(id) && out.is_empty() {
            // With no other identifier to go by, an id that fits no kind is an error; with an
            // email (a username such as o'brien), it is simply not sent.
            return Err(bad_identifier(
                "id",
                id,
                "an email address, a Google user id or an employee id (letters, digits, '.', '_', '-')",
            ));
        }
    }
    Ok(out)
}

/// A user as the Directory API answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub primary_email: String,
    /// Every other address: `aliases`, `nonEditableAliases`, `emails[].address`.
    pub aliases: Vec<String>,
    /// Every `externalIds[].value` (an HR employee id, mostly).
    pub external_ids: Vec<String>,
    pub suspended: bool,
    pub is_admin: bool,
    pub two_sv: bool,
    pub two_sv_enforced: bool,
}

impl User {
    /// The user as an [`Account`]: pinned to its id, answering to every address and external id.
    pub fn account(&self) -> Account {
        Account::new(self.id.clone(), ID_KIND, self.primary_email.as_str()).answers_to(
            std::iter::once(self.primary_email.as_str())
                .chain(self.aliases.iter().map(String::as_str))
                .chain(self.external_ids.iter().map(String::as_str)),
        )
    }

    /// Every address, lowercase.
    pub fn addresses(&self) -> Vec<String> {
        std::iter::once(&self.primary_email)
            .chain(self.aliases.iter())
            .map(|a| a.to_ascii_lowercase())
            .collect()
    }

    /// Whether it holds this email (any case) or id.
    pub fn answers_to(&self, key: &str) -> bool {
        self.id == key
            || self.primary_email.eq_ignore_ascii_case(key)
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(key))
    }
}

pub fn parse_user(v: &Value) -> Option<User> {
    let strings = |k: &str| -> Vec<String> {
        v.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let primary_email = v.get("primaryEmail")?.as_str()?.to_string();
    let mut aliases = strings("aliases");
    aliases.extend(strings("nonEditableAliases"));
    if let Some(emails) = v.get("emails").and_then(Value::as_array) {
        for e in emails {
            if let Some(a) = e.get("address").and_then(Value::as_str) {
                if !a.eq_ignore_ascii_case(&primary_email)
                    && !aliases.iter().any(|x| x.eq_ignore_ascii_case(a))
                {
                    aliases.push(a.to_string());
                }
            }
        }
    }
    let external_ids = v
        .get("externalIds")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.get("value").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Some(User {
        id: v.get("id")?.as_str()?.to_string(),
        primary_email,
        aliases,
        external_ids,
        suspended: v.get("suspended").and_then(Value::as_bool).unwrap_or(false),
        is_admin: v.get("isAdmin").and_then(Value::as_bool).unwrap_or(false),
        two_sv: v
            .get("isEnrolledIn2Sv")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        two_sv_enforced: v
            .get("isEnforcedIn2Sv")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

/// `GET users/{key}`; `None` when nothing has that key.
pub async fn get_user(client: &Client, key: &str) -> Result<Option<User>, ConnectorError> {
    let path = format!("/admin/directory/v1/users/{}", encode(key));
    let r = client.admin(Method::GET, &path, None).await?;
    if r.status == 404 {
        return Ok(None);
    }
    if !r.is_success() {
        return Err(classify::status(&Method::GET, &path, &r, client.backoff()));
    }
    r.json()
        .as_ref()
        .and_then(parse_user)
        .map(Some)
        .ok_or_else(|| classify::bad_response(&Method::GET, &path, "expected a user object"))
}

/// The one user whose `externalIds` hold `value` exactly; two are an error, never a guess.
pub async fn find_by_employee_id(
    client: &Client,
    cfg: &GoogleConfig,
    value: &str,
) -> Result<Option<User>, ConnectorError> {
    let path = format!(
        "/admin/directory/v1/users?customer={}&query={}&maxResults=10",
        encode(&cfg.customer),
        encode(&format!("externalId={value}"))
    );
    let r = client.admin(Method::GET, &path, None).await?;
    if !r.is_success() {
        return Err(classify::status(&Method::GET, &path, &r, client.backoff()));
    }
    let v = r
        .json()
        .ok_or_else(|| classify::bad_response(&Method::GET, &path, "expected a user list"))?;
    let hits: Vec<User> = v
        .get("users")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(parse_user).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|u| u.external_ids.iter().any(|x| x == value))
        .collect();
    match hits.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.clone())),
        many => Err(ConnectorError::permanent(
            "ambiguous_user",
            format!(
                "{} Google users have the employee id {value:?} (ids {:?}); expected one",
                many.len(),
                many.iter().map(|u| u.id.as_str()).collect::<Vec<_>>()
            ),
        )),
    }
}

/// Every item of a paged list (`items` or another field), following `nextPageToken`.
pub async fn list_all(
    client: &Client,
    who: &Who,
    path: &str,
    field: &str,
) -> Result<Vec<Value>, ConnectorError> {
    list_from(client, who, path, field, None).await
}

/// [`list_all`], its first page already read (a part of a batch) when `first` is given.
pub async fn list_from(
    client: &Client,
    who: &Who,
    path: &str,
    field: &str,
    mut first: Option<Result<Reply, ConnectorError>>,
) -> Result<Vec<Value>, ConnectorError> {
    let mut out = Vec::new();
    let mut page: Option<String> = None;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let p = match &page {
            Some(t) => format!("{path}{sep}pageToken={}", encode(t)),
            None => path.to_string(),
        };
        let r = match first.take() {
            Some(r) => r?,
            None => client.send(who, Method::GET, &p, None).await?,
        };
        if !r.is_success() {
            return Err(classify::status(&Method::GET, &p, &r, client.backoff()));
        }
        let v = r
            .json()
            .ok_or_else(|| classify::bad_response(&Method::GET, &p, "expected a JSON object"))?;
        if let Some(items) = v.get(field).and_then(Value::as_array) {
            out.extend(items.iter().cloned());
        }
        match v.get("nextPageToken").and_then(Value::as_str) {
            Some(t) if !t.is_empty() => page = Some(t.to_string()),
            _ => break,
        }
    }
    Ok(out)
}

fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(x)) => x.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// The group ids a user holds directly (`GET groups?userKey=`).
pub async fn groups_of(client: &Client, key: &str) -> Result<Vec<Value>, ConnectorError> {
    list_all(client, &Who::Admin, &groups_path(key), "groups").await
}

fn groups_path(key: &str) -> String {
    format!(
        "/admin/directory/v1/groups?userKey={}&maxResults=200",
        encode(key)
    )
}

fn assignments_path(cfg: &GoogleConfig, user_id: &str) -> String {
    format!(
        "/admin/directory/v1/customer/{}/roleassignments?userKey={}&maxResults=100",
        encode(&cfg.customer),
        encode(user_id)
    )
}

fn tokens_path(user_id: &str) -> String {
    format!("/admin/directory/v1/users/{}/tokens", encode(user_id))
}

fn asps_path(user_id: &str) -> String {
    format!("/admin/directory/v1/users/{}/asps", encode(user_id))
}

/// The per-user Directory reads discovery makes of a user, in the order it makes them.
fn user_reads(cfg: &GoogleConfig, user_id: &str) -> Vec<String> {
    let mut out = Vec::new();
    if cfg.remove_grants {
        out.push(tokens_path(user_id));
        out.push(asps_path(user_id));
    }
    if cfg.remove_groups {
        out.push(groups_path(user_id));
    }
    if cfg.remove_roles {
        out.push(assignments_path(cfg, user_id));
    }
    out
}

/// The first pages of the per-user Directory reads of `users`, `batch_size` users to a batch
/// request (read one by one later when batching is off or a batch would hold one read). A
/// refusal of any read (a rate limit in one part) is the error of the whole discovery, as it
/// is unbatched.
async fn prefetch(
    client: &Client,
    cfg: &GoogleConfig,
    users: &[&User],
) -> Result<HashMap<String, Reply>, ConnectorError> {
    let mut out = HashMap::new();
    if cfg.batch_size <= 1 {
        return Ok(out);
    }
    // Google takes 1,000 parts to a batch: 250 users of 4 reads.
    for chunk in users.chunks(cfg.batch_size.min(250) as usize) {
        let mut seen = std::collections::HashSet::new();
        let paths: Vec<String> = chunk
            .iter()
            .flat_map(|u| user_reads(cfg, &u.id))
            .filter(|p| seen.insert(p.clone()))
            .collect();
        if paths.len() <= 1 {
            continue;
        }
        let replies = client.batch_get(&paths).await?;
        for (p, r) in paths.into_iter().zip(replies) {
            out.insert(p, r?);
        }
    }
    Ok(out)
}

/// Whether the user holds a licence (`GET .../product/{p}/sku/{s}/user/{email}`; 404: no).
pub async fn holds_licence(
    client: &Client,
    product: &str,
    sku: &str,
    email: &str,
) -> Result<bool, ConnectorError> {
    let path = format!(
        "/apps/licensing/v1/product/{}/sku/{}/user/{}",
        encode(product),
        encode(sku),
        encode(email)
    );
    let r = client.admin(Method::GET, &path, None).await?;
    match r.status {
        404 => Ok(false),
        s if (200..300).contains(&s) => Ok(true),
        _ => Err(classify::status(&Method::GET, &path, &r, client.backoff())),
    }
}

/// The transfers of `old` to `new` (`GET transfers?oldOwnerUserId=&newOwnerUserId=`).
pub async fn transfers(
    client: &Client,
    old: &str,
    new: &str,
) -> Result<Vec<Value>, ConnectorError> {
    let path = format!(
        "/admin/datatransfer/v1/transfers?oldOwnerUserId={}&newOwnerUserId={}",
        encode(old),
        encode(new)
    );
    list_all(client, &Who::Admin, &path, "dataTransfers").await
}

/// Whether a transfer moves Drive files.
pub fn is_drive_transfer(t: &Value) -> bool {
    t.get("applicationDataTransfers")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|x| s(x, "applicationId") == DRIVE_APP_ID))
}

/// The files the user owns and their bytes (Drive `files.list`, `'me' in owners`, as the user).
pub async fn drive_owned(client: &Client, email: &str) -> Result<(u64, u64), ConnectorError> {
    let who = Who::Drive(email.to_string());
    let path = format!(
        "/drive/v3/files?q={}&fields={}&pageSize=1000",
        encode("'me' in owners and trashed = false"),
        encode("nextPageToken,files(id,size)")
    );
    let files = list_all(client, &who, &path, "files").await?;
    let bytes = files
        .iter()
        .filter_map(|f| s(f, "size").parse::<u64>().ok())
        .sum();
    Ok((files.len() as u64, bytes))
}

/// A Gmail setting of the user (`GET gmail/v1/users/{email}/settings/{name}`), as the user.
pub async fn gmail_setting(
    client: &Client,
    email: &str,
    name: &str,
) -> Result<Value, ConnectorError> {
    let path = format!("/gmail/v1/users/{}/settings/{name}", encode(email));
    let r = client
        .send(&Who::Mailbox(email.to_string()), Method::GET, &path, None)
        .await?;
    if !r.is_success() {
        return Err(classify::status(&Method::GET, &path, &r, client.backoff()));
    }
    r.json()
        .ok_or_else(|| classify::bad_response(&Method::GET, &path, "expected a JSON object"))
}

/// The mobile devices whose owner addresses include one of the user's (Google's search by
/// `email:` is checked here again: only a device that names the user is theirs).
pub async fn mobile_devices_of(
    client: &Client,
    cfg: &GoogleConfig,
    user: &User,
) -> Result<Vec<Value>, ConnectorError> {
    let path = format!(
        "/admin/directory/v1/customer/{}/devices/mobile?query={}&projection=BASIC&maxResults=100",
        encode(&cfg.customer),
        encode(&format!("email:{}", user.primary_email))
    );
    let mine = user.addresses();
    Ok(list_all(client, &Who::Admin, &path, "mobiledevices")
        .await?
        .into_iter()
        .filter(|d| device_owned_by(d, &mine))
        .collect())
}

/// Whether a device's `email` list names one of these (lowercase) addresses.
pub fn device_owned_by(device: &Value, addresses: &[String]) -> bool {
    device
        .get("email")
        .and_then(Value::as_array)
        .is_some_and(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .any(|e| addresses.contains(&e.to_ascii_lowercase()))
        })
}

/// Every shared drive of the domain and its members (`drives.list` and `permissions.list` with
/// `useDomainAdminAccess`, as the admin), read once for all the subjects.
pub async fn shared_drives(client: &Client) -> Result<Vec<(Value, Vec<Value>)>, ConnectorError> {
    let drives = list_all(
        client,
        &Who::AdminDrive,
        "/drive/v3/drives?useDomainAdminAccess=true&pageSize=100",
        "drives",
    )
    .await?;
    let mut out = Vec::with_capacity(drives.len());
    for d in drives {
        let perms = drive_permissions(client, &s(&d, "id")).await?;
        out.push((d, perms));
    }
    Ok(out)
}

/// The members of one shared drive, as the admin.
pub async fn drive_permissions(
    client: &Client,
    drive_id: &str,
) -> Result<Vec<Value>, ConnectorError> {
    let path = format!(
        "/drive/v3/files/{}/permissions?supportsAllDrives=true&useDomainAdminAccess=true&pageSize=100&fields={}",
        encode(drive_id),
        encode("nextPageToken,permissions(id,type,emailAddress,domain,role)")
    );
    list_all(client, &Who::AdminDrive, &path, "permissions").await
}

/// Today's date (UTC) as `YYYY-MM-DD`, `days` ahead.
pub fn date_after(days: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0);
    civil_date(now + days)
}

/// A day count since 1970-01-01 as `YYYY-MM-DD` (H. Hinnant's civil-from-days).
pub fn civil_date(days: u64) -> String {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn finding(
    instance: &str,
    subject: &Subject,
    kind: &str,
    target: String,
    attrs: &[(&str, String)],
) -> Finding {
    Finding {
        connector: instance.to_string(),
        subject: subject.id.clone(),
        kind: kind.into(),
        target,
        attrs: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// Whether a Drive permission is the client's: a `user` or `group` whose address is at the
/// client's domain or a subdomain, or a `domain` permission for it or a subdomain.
pub fn is_client_permission(p: &Value, domain: &ClientDomain) -> bool {
    match s(p, "type").as_str() {
        "user" | "group" => domain.matches_email(&s(p, "emailAddress")),
        "domain" => domain.matches_domain(&s(p, "domain")),
        _ => false,
    }
}

/// Whether a shared-drive file's permission is only the drive's membership showing on the file
/// (`permissionDetails` all `inherited`): not a share of the file's own.
pub fn inherited_only(p: &Value) -> bool {
    p.get("permissionDetails")
        .and_then(Value::as_array)
        .is_some_and(|d| {
            !d.is_empty()
                && d.iter()
                    .all(|x| x.get("inherited").and_then(Value::as_bool) == Some(true))
        })
}

/// The account a client's permission is pinned to: its permission id, named and answering by
/// its address or domain (the protected-accounts check runs on it).
fn permission_account(p: &Value, why: String) -> Account {
    let name = match s(p, "type").as_str() {
        "domain" => s(p, "domain"),
        _ => s(p, "emailAddress"),
    }
    .to_ascii_lowercase();
    Account::new(s(p, "id"), PERMISSION_ID_KIND, name.as_str())
        .answers_to([name.as_str()])
        .matched_by(why)
}

/// A departing client, as one discovery: the users of our Workspace whose primary email or an
/// alias is at the client's domain (every user read, the addresses matched here), each then
/// discovered as a person (their files are transferred like a leaver's); the client's
/// permissions on the files every active user owns (files.list as each owner: only an owner
/// sees every permission of a My Drive file); and the client's memberships of shared drives
/// (drives.list and permissions.list with useDomainAdminAccess).
pub async fn discover_client(
    client: &Client,
    cfg: &GoogleConfig,
    instance: &str,
    subject: &Subject,
    domain: &ClientDomain,
) -> Result<Discovery, ConnectorError> {
    let mut out = Discovery::not_found(instance, subject.id.clone());
    let path = format!(
        "/admin/directory/v1/users?customer={}&maxResults=500",
        encode(&cfg.customer)
    );
    let users: Vec<User> = list_all(client, &Who::Admin, &path, "users")
        .await?
        .iter()
        .filter_map(parse_user)
        .collect();
    let theirs: Vec<&User> = users
        .iter()
        .filter(|u| u.addresses().iter().any(|a| domain.matches_email(a)))
        .collect();
    let persons: Vec<Subject> = theirs
        .iter()
        .map(|u| {
            let mut p = Subject::new(u.primary_email.clone());
            p.email = Some(u.primary_email.clone());
            p
        })
        .collect();
    for d in discover_persons(client, cfg, instance, &persons).await? {
        for mut f in d.findings {
            f.subject = subject.id.clone();
            out.findings.push(f);
        }
        for a in d.accounts {
            let why = format!("a user of ours at {domain}: {}", a.name);
            out.accounts.push(a.matched_by(why));
        }
    }
    let client_user_ids: Vec<&str> = theirs.iter().map(|u| u.id.as_str()).collect();
    for owner in users.iter().filter(|u| !u.suspended) {
        let path = format!(
            "/drive/v3/files?q={}&fields={}&pageSize=1000",
            encode("'me' in owners and trashed = false"),
            encode("nextPageToken,files(id,name,permissions(id,type,emailAddress,domain,role))")
        );
        let files = list_all(
            client,
            &Who::Drive(owner.primary_email.clone()),
            &path,
            "files",
        )
        .await?;
        let owner_is_client = client_user_ids.contains(&owner.id.as_str());
        for f in files {
            let perms: Vec<&Value> = f
                .get("permissions")
                .and_then(Value::as_array)
                .map(|a| a.iter().collect())
                .unwrap_or_default();
            let theirs: Vec<&&Value> = perms
                .iter()
                .filter(|p| is_client_permission(p, domain) && s(p, "role") != "owner")
                .collect();
            if theirs.is_empty() {
                continue;
            }
            let fid = s(&f, "id");
            for p in &theirs {
                let owner = ShareOwner {
                    id: owner.id.clone(),
                    email: owner.primary_email.clone(),
                    is_client: owner_is_client,
                    drive_id: None,
                };
                let why = format!(
                    "{} permission at {domain} on files shared by {}",
                    s(p, "type"),
                    owner.email
                );
                push_client_share(&mut out, instance, subject, &f, p, &owner, why);
            }
            // Shares that name nobody: anyone with the link, or a user or group whose address
            // Google no longer shows (a deleted account). Reported, never touched.
            let nameless = |p: &&&Value| {
                s(p, "type") == "anyone"
                    || (matches!(s(p, "type").as_str(), "user" | "group")
                        && s(p, "emailAddress").is_empty())
            };
            for p in perms.iter().filter(nameless) {
                d_push(
                    &mut out,
                    instance,
                    subject,
                    LINK_SHARE,
                    format!("files/{fid}/permissions/{}", s(p, "id")),
                    &[
                        ("file_id", fid.clone()),
                        ("file_name", s(&f, "name")),
                        ("type", s(p, "type")),
                        ("role", s(p, "role")),
                        ("owner_email", owner.primary_email.clone()),
                    ],
                );
            }
        }
    }
    let ours: Vec<&User> = users
        .iter()
        .filter(|u| !u.suspended && !client_user_ids.contains(&u.id.as_str()))
        .collect();
    for (drive, perms) in shared_drives(client).await? {
        let did = s(&drive, "id");
        let name = s(&drive, "name");
        // Organizers who stay: not the client's. With none, every organizer of the client's is
        // left in place (removing them all would orphan the drive) and reported.
        let staying = perms
            .iter()
            .filter(|p| s(p, "role") == "organizer" && !is_client_permission(p, domain))
            .count();
        for p in perms.iter().filter(|p| is_client_permission(p, domain)) {
            let pid = s(p, "id");
            let role = s(p, "role");
            let sole = role == "organizer" && staying == 0;
            let (kind, target) = if sole {
                (SOLE_ORGANIZER, format!("drives/{did}"))
            } else {
                (
                    CLIENT_DRIVE_PERMISSION,
                    format!("drives/{did}/permissions/{pid}"),
                )
            };
            d_push(
                &mut out,
                instance,
                subject,
                kind,
                target,
                &[
                    ("drive_id", did.clone()),
                    ("drive_name", name.clone()),
                    ("permission_id", pid.clone()),
                    ("type", s(p, "type")),
                    ("email", s(p, "emailAddress").to_ascii_lowercase()),
                    ("domain", s(p, "domain").to_ascii_lowercase()),
                    ("role", role),
                ],
            );
            if !sole {
                push_account(
                    &mut out,
                    permission_account(p, format!("member of the shared drive {name:?}")),
                );
            }
        }
        // The drive's files with permissions of their own, listed as one of its organizers
        // (Drive lists a shared drive's files only to members; files.list has no admin access).
        let organizer = perms.iter().find_map(|p| {
            let e = s(p, "emailAddress").to_ascii_lowercase();
            (s(p, "role") == "organizer" && s(p, "type") == "user")
                .then(|| ours.iter().find(|u| u.addresses().contains(&e)))
                .flatten()
        });
        let Some(organizer) = organizer else {
            d_push(
                &mut out,
                instance,
                subject,
                DRIVE_NOT_SCANNED,
                format!("drives/{did}"),
                &[("drive_id", did.clone()), ("drive_name", name.clone())],
            );
            continue;
        };
        let who = Who::Drive(organizer.primary_email.clone());
        let path = format!(
            "/drive/v3/files?corpora=drive&driveId={}&includeItemsFromAllDrives=true&supportsAllDrives=true&q={}&fields={}&pageSize=1000",
            encode(&did),
            encode("trashed = false"),
            encode("nextPageToken,files(id,name,hasAugmentedPermissions)")
        );
        for f in list_all(client, &who, &path, "files").await? {
            if f.get("hasAugmentedPermissions").and_then(Value::as_bool) != Some(true) {
                continue;
            }
            let fid = s(&f, "id");
            let path = format!(
                "/drive/v3/files/{}/permissions?supportsAllDrives=true&pageSize=100&fields={}",
                encode(&fid),
                encode("nextPageToken,permissions(id,type,emailAddress,domain,role,permissionDetails(inherited))")
            );
            for p in list_all(client, &who, &path, "permissions").await? {
                // The drive's own members show on every file as inherited: removed above.
                if inherited_only(&p) || !is_client_permission(&p, domain) {
                    continue;
                }
                let owner = ShareOwner {
                    id: String::new(),
                    email: organizer.primary_email.clone(),
                    is_client: false,
                    drive_id: Some(did.clone()),
                };
                let why = format!(
                    "{} permission at {domain} on a file of the shared drive {name:?}",
                    s(&p, "type")
                );
                push_client_share(&mut out, instance, subject, &f, &p, &owner, why);
            }
        }
    }
    out.found = !out.accounts.is_empty();
    Ok(out)
}

/// Whose file a client's share is on, for its removal: the owner of ours (none in a shared
/// drive, whose files the drive owns) and the user the removal acts as.
struct ShareOwner {
    id: String,
    email: String,
    is_client: bool,
    drive_id: Option<String>,
}

/// One share of the client on file `f`: its finding (what the removal needs) and its account.
fn push_client_share(
    out: &mut Discovery,
    instance: &str,
    subject: &Subject,
    f: &Value,
    p: &Value,
    owner: &ShareOwner,
    why: String,
) {
    let (fid, pid) = (s(f, "id"), s(p, "id"));
    let mut attrs = vec![
        ("file_id", fid.clone()),
        ("file_name", s(f, "name")),
        ("permission_id", pid.clone()),
        ("type", s(p, "type")),
        ("email", s(p, "emailAddress").to_ascii_lowercase()),
        ("domain", s(p, "domain").to_ascii_lowercase()),
        ("role", s(p, "role")),
        ("owner_id", owner.id.clone()),
        ("owner_email", owner.email.clone()),
        ("owner_is_client", owner.is_client.to_string()),
    ];
    if let Some(d) = &owner.drive_id {
        attrs.push(("drive_id", d.clone()));
    }
    d_push(
        out,
        instance,
        subject,
        CLIENT_PERMISSION,
        format!("files/{fid}/permissions/{pid}"),
        &attrs,
    );
    push_account(out, permission_account(p, why));
}

/// Adds `a` unless an account of the same id is there already.
fn push_account(out: &mut Discovery, a: Account) {
    if !out.accounts.iter().any(|b| b.id == a.id) {
        out.accounts.push(a);
    }
}

fn d_push(
    out: &mut Discovery,
    instance: &str,
    subject: &Subject,
    kind: &str,
    target: String,
    attrs: &[(&str, String)],
) {
    out.findings
        .push(finding(instance, subject, kind, target, attrs));
}

/// Discovery of many subjects; role names and the transfer target are read once for all. A
/// departing client's subject is discovered by [`discover_client`].
/// The plan notes of what a discovery found and leaves alone, one sentence each.
pub fn notes_of(d: &Discovery) -> Vec<String> {
    let attr = |f: &Finding, k: &str| f.attrs.get(k).cloned().unwrap_or_default();
    d.findings
        .iter()
        .filter_map(|f| match f.kind.as_str() {
            SOLE_ORGANIZER => Some(format!(
                "shared drive {:?} ({}): {} organizes it and no other organizer stays; left in place so the drive is not orphaned: add an organizer of ours, then remove them by hand",
                attr(f, "drive_name"),
                attr(f, "drive_id"),
                match attr(f, "email") {
                    e if e.is_empty() => d.subject.clone(),
                    e => e,
                }
            )),
            DRIVE_NOT_SCANNED => Some(format!(
                "shared drive {:?} ({}) has no active organizer of ours: its files were not searched for shares with {}",
                attr(f, "drive_name"),
                attr(f, "drive_id"),
                d.subject
            )),
            LINK_SHARE => Some(format!(
                "file {:?} ({}) of {} has a {} share that names nobody ({}): not removed; check whether the client holds the link",
                attr(f, "file_name"),
                attr(f, "file_id"),
                attr(f, "owner_email"),
                attr(f, "role"),
                attr(f, "type")
            )),
            _ => None,
        })
        .collect()
}

pub async fn discover_many(
    client: &Client,
    cfg: &GoogleConfig,
    instance: &str,
    subjects: &[Subject],
) -> Result<Vec<Discovery>, ConnectorError> {
    let mut out = Vec::with_capacity(subjects.len());
    let persons: Vec<Subject> = subjects
        .iter()
        .filter(|s| s.client_domain().is_none())
        .cloned()
        .collect();
    let mut found = discover_persons(client, cfg, instance, &persons)
        .await?
        .into_iter();
    for subject in subjects {
        match subject.client_domain() {
            Some(domain) => {
                out.push(discover_client(client, cfg, instance, subject, domain).await?)
            }
            None => out.push(found.next().ok_or_else(|| {
                ConnectorError::permanent("bad_response", "discovery returned too few subjects")
            })?),
        }
    }
    Ok(out)
}

/// Discovery of people.
async fn discover_persons(
    client: &Client,
    cfg: &GoogleConfig,
    instance: &str,
    subjects: &[Subject],
) -> Result<Vec<Discovery>, ConnectorError> {
    let mut role_names: Option<HashMap<String, String>> = None;
    let mut target: Option<User> = None;
    // The groups each group sits in, read once per group for all the subjects.
    let mut parents_of: HashMap<String, String> = HashMap::new();
    // The shared drives and their members, read once for all the subjects.
    let mut drives: Option<Vec<(Value, Vec<Value>)>> = None;
    let mut out = Vec::with_capacity(subjects.len());
    // Each subject's user first, so the per-user reads of many can go in one batch request.
    let mut hits = Vec::with_capacity(subjects.len());
    for subject in subjects {
        let mut hit = None;
        for l in lookups(cfg, instance, subject)? {
            let (why, user) = match &l {
                Lookup::Key(k) => (
                    k.clone(),
                    get_user(client, k).await?.filter(|u| u.answers_to(k)),
                ),
                Lookup::EmployeeId(e) => (
                    format!("employee id {e}"),
                    find_by_employee_id(client, cfg, e).await?,
                ),
            };
            if let Some(u) = user {
                hit = Some((why, u));
                break;
            }
        }
        hits.push(hit);
    }
    let users: Vec<&User> = hits.iter().flatten().map(|(_, u)| u).collect();
    let mut pre = prefetch(client, cfg, &users).await?;
    for (subject, hit) in subjects.iter().zip(hits) {
        let mut d = Discovery::not_found(instance, subject.id.clone());
        let Some((why, user)) = hit else {
            out.push(d);
            continue;
        };
        d.found = true;
        d.accounts.push(user.account().matched_by(why));
        let uid = user.id.clone();
        d.findings.push(finding(
            instance,
            subject,
            ACCOUNT,
            format!("users/{uid}"),
            &[
                ("user_id", uid.clone()),
                ("primary_email", user.primary_email.clone()),
                ("aliases", user.aliases.join(",")),
                ("external_ids", user.external_ids.join(",")),
                ("suspended", user.suspended.to_string()),
                ("is_admin", user.is_admin.to_string()),
                ("two_sv", user.two_sv.to_string()),
                ("two_sv_enforced", user.two_sv_enforced.to_string()),
            ],
        ));
        if cfg.remove_grants {
            let path = tokens_path(&uid);
            let first = pre.remove(&path).map(Ok);
            let tokens = list_from(client, &Who::Admin, &path, "items", first).await?;
            for t in tokens {
                let cid = s(&t, "clientId");
                d.findings.push(finding(
                    instance,
                    subject,
                    OAUTH_GRANT,
                    format!("users/{uid}/tokens/{cid}"),
                    &[
                        ("user_id", uid.clone()),
                        ("client_id", cid.clone()),
                        ("app", s(&t, "displayText")),
                    ],
                ));
            }
            let path = asps_path(&uid);
            let first = pre.remove(&path).map(Ok);
            let asps = list_from(client, &Who::Admin, &path, "items", first).await?;
            for a in asps {
                let code = s(&a, "codeId");
                d.findings.push(finding(
                    instance,
                    subject,
                    APP_PASSWORD,
                    format!("users/{uid}/asps/{code}"),
                    &[
                        ("user_id", uid.clone()),
                        ("code_id", code.clone()),
                        ("name", s(&a, "name")),
                    ],
                ));
            }
        }
        if cfg.remove_groups {
            let path = groups_path(&uid);
            let first = pre.remove(&path).map(Ok);
            for g in list_from(client, &Who::Admin, &path, "groups", first).await? {
                let gid = s(&g, "id");
                // A group inside other groups hands on their access: say which.
                if !parents_of.contains_key(&gid) {
                    let parents: Vec<String> = groups_of(client, &gid)
                        .await?
                        .iter()
                        .map(|p| s(p, "email"))
                        .collect();
                    parents_of.insert(gid.clone(), parents.join(","));
                }
                let parents = parents_of.get(&gid).cloned().unwrap_or_default();
                d.findings.push(finding(
                    instance,
                    subject,
                    GROUP_MEMBERSHIP,
                    format!("groups/{gid}/members/{uid}"),
                    &[
                        ("user_id", uid.clone()),
                        ("group_id", gid.clone()),
                        ("group_email", s(&g, "email")),
                        ("nested_in", parents),
                    ],
                ));
            }
        }
        if cfg.remove_roles {
            let path = assignments_path(cfg, &uid);
            let first = pre.remove(&path).map(Ok);
            let items = list_from(client, &Who::Admin, &path, "items", first).await?;
            if !items.is_empty() && role_names.is_none() {
                let path = format!(
                    "/admin/directory/v1/customer/{}/roles?maxResults=100",
                    encode(&cfg.customer)
                );
                let roles = list_all(client, &Who::Admin, &path, "items").await?;
                role_names = Some(
                    roles
                        .iter()
                        .map(|r| (s(r, "roleId"), s(r, "roleName")))
                        .collect(),
                );
            }
            for a in items.iter().filter(|a| s(a, "assignedTo") == uid) {
                let aid = s(a, "roleAssignmentId");
                let rid = s(a, "roleId");
                let name = role_names
                    .as_ref()
                    .and_then(|n| n.get(&rid).cloned())
                    .unwrap_or_else(|| format!("role {rid}"));
                d.findings.push(finding(
                    instance,
                    subject,
                    ROLE_ASSIGNMENT,
                    format!("roleassignments/{aid}"),
                    &[
                        ("user_id", uid.clone()),
                        ("assignment_id", aid.clone()),
                        ("role_id", rid),
                        ("role_name", name),
                    ],
                ));
            }
        }
        if cfg.mobile() {
            for m in mobile_devices_of(client, cfg, &user).await? {
                let rid = s(&m, "resourceId");
                let owners: Vec<String> = m
                    .get("email")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                d.findings.push(finding(
                    instance,
                    subject,
                    MOBILE_DEVICE,
                    format!("devices/mobile/{rid}"),
                    &[
                        ("user_id", uid.clone()),
                        ("resource_id", rid.clone()),
                        ("type", s(&m, "type")),
                        ("model", s(&m, "model")),
                        ("status", s(&m, "status")),
                        ("owner_emails", owners.join(",")),
                    ],
                ));
            }
        }
        if cfg.remove_shared_drives {
            if drives.is_none() {
                drives = Some(shared_drives(client).await?);
            }
            let mine = user.addresses();
            for (drive, perms) in drives.iter().flatten() {
                let did = s(drive, "id");
                let organizers = perms.iter().filter(|p| s(p, "role") == "organizer").count();
                for p in perms.iter().filter(|p| {
                    s(p, "type") == "user"
                        && mine.contains(&s(p, "emailAddress").to_ascii_lowercase())
                }) {
                    let role = s(p, "role");
                    let sole = role == "organizer" && organizers == 1;
                    let pid = s(p, "id");
                    let (kind, target) = if sole {
                        (SOLE_ORGANIZER, format!("drives/{did}"))
                    } else {
                        (
                            SHARED_DRIVE_MEMBER,
                            format!("drives/{did}/permissions/{pid}"),
                        )
                    };
                    d.findings.push(finding(
                        instance,
                        subject,
                        kind,
                        target,
                        &[
                            ("user_id", uid.clone()),
                            ("drive_id", did.clone()),
                            ("drive_name", s(drive, "name")),
                            ("permission_id", pid),
                            ("email", s(p, "emailAddress")),
                            ("role", role),
                        ],
                    ));
                }
            }
        }
        for (product, sku) in cfg.licence_pairs() {
            if holds_licence(client, &product, &sku, &user.primary_email).await? {
                d.findings.push(finding(
                    instance,
                    subject,
                    LICENCE,
                    format!("licences/{product}/{sku}/users/{uid}"),
                    &[
                        ("user_id", uid.clone()),
                        ("product_id", product),
                        ("sku_id", sku),
                    ],
                ));
            }
        }
        if cfg.gmail() {
            // Gmail answers failedPrecondition for a suspended user: nothing to read or set.
            let mut attrs = vec![("user_id", uid.clone())];
            if user.suspended {
                attrs.push(("readable", "false".into()));
            } else {
                let v = gmail_setting(client, &user.primary_email, "vacation").await?;
                let f = gmail_setting(client, &user.primary_email, "autoForwarding").await?;
                attrs.push(("readable", "true".into()));
                attrs.push((
                    "auto_reply",
                    v.get("enableAutoReply")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                        .to_string(),
                ));
                attrs.push((
                    "forwarding",
                    f.get("enabled")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                        .to_string(),
                ));
                attrs.push(("forwarding_to", s(&f, "emailAddress")));
            }
            d.findings.push(finding(
                instance,
                subject,
                GMAIL,
                format!("users/{uid}/gmail"),
                &attrs,
            ));
        }
        if let Some(to) = &cfg.transfer_to {
            if target.is_none() {
                target = Some(get_user(client, to).await?.ok_or_else(|| {
                    ConnectorError::permanent(
                        "transfer_target_not_found",
                        format!("transfer_to {to:?} names no user of the domain"),
                    )
                })?);
            }
            if let Some(t) = target.as_ref().filter(|t| t.id != uid) {
                // Drive answers only an active user; a suspended one's files are not counted.
                let (files, bytes) = if user.suspended {
                    (String::new(), String::new())
                } else {
                    let (f, b) = drive_owned(client, &user.primary_email).await?;
                    (f.to_string(), b.to_string())
                };
                let existing = transfers(client, &uid, &t.id).await?;
                let drive: Vec<&Value> = existing.iter().filter(|x| is_drive_transfer(x)).collect();
                let last = drive.last();
                d.findings.push(finding(
                    instance,
                    subject,
                    DRIVE_TRANSFER,
                    format!("transfers/{uid}/to/{}", t.id),
                    &[
                        ("user_id", uid.clone()),
                        ("new_owner_id", t.id.clone()),
                        ("new_owner_email", t.primary_email.clone()),
                        ("files_owned", files),
                        ("bytes_owned", bytes),
                        (
                            "existing_transfer",
                            last.map(|x| s(x, "id")).unwrap_or_default(),
                        ),
                        (
                            "existing_status",
                            last.map(|x| s(x, "overallTransferStatusCode"))
                                .unwrap_or_default(),
                        ),
                        // The date the retention is counted from: the day of discovery, so
                        // the plan (pure) states the date it keeps the archive until.
                        (
                            "retain_until",
                            cfg.retention_days
                                .filter(|_| cfg.archive_drive_id.is_some())
                                .map(date_after)
                                .unwrap_or_default(),
                        ),
                    ],
                ));
            }
        }
        out.push(d);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_and_employee_ids_are_what_google_holds_and_nothing_else() {
        for ok in [
            "alice@example.com",
            "o'brien@example.com",
            "a.b-c_d@sub.example.co.uk",
        ] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in [
            "*@example.com",
            "a*@example.com",
            "../x",
            "\"a\"@example.com",
            "a@b",
            "a@@b.c",
            "a b@example.com",
            "a@example..com",
            ".a@example.com",
            "a%2F@example.com",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
        for ok in ["E1234", "emp-7.2_x"] {
            assert!(is_employee_id(ok), "{ok}");
        }
        for bad in ["", "..", "../x", "a'b", "*", "a b", "E1\u{0660}"] {
            assert!(!is_employee_id(bad), "{bad}");
        }
        assert!(is_user_id("104567890123456789012"));
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(20_792), "2026-12-05");
        assert_eq!(civil_date(20_792 + 365), "2027-12-05");
        assert_eq!(civil_date(11_016), "2000-02-29");
        assert!(!is_user_id("1045678901234567890"));
    }
}
