//! Read-only discovery: the users a subject answers to (by the configured identifiers), and
//! for each its groups (with their kind), app role assignments, directory role assignments,
//! authentication methods, licences (direct or from a group) and devices; every action is
//! pinned to the user's object id (a GUID Entra never gives another object).
//!
//! Each identifier value goes into an OData string literal (a `'` doubled) and the whole filter
//! is percent-encoded, so a value such as `x' or true or mail eq 'y` is one literal that matches
//! nothing but itself; a value with control characters is refused before any request. Every
//! answer is filtered again here: only a user whose property equals the value is the subject's
//! (servers that ignore filters exist).
//!
//! Several users may answer to one person. A match by `userPrincipalName`, `mail`,
//! `employeeId` or an on-premises identifier is direct (Entra keeps the first two unique, HR
//! or AD gave the others); every user matched directly is planned, and a note says so when
//! there are two (one person's two accounts, say a normal and an admin one). An alias
//! (`otherMails`, typed by people and checked by nobody; `proxyAddresses`, where an old UPN
//! lives on after a rename) is alias_onlyer: a user matched by aliases alone is planned only when
//! no user matched directly, and otherwise named in a note, never planned.
//!
//! With `batch_size` above 1, `discover_many` sends the searches of many subjects, then the
//! per-user reads of every user found, through `POST /$batch` (20 reads a request), following
//! each list's `@odata.nextLink` in the next round.

use std::collections::BTreeMap;

use reqwest::Method;
use revoke_core::{Account, ConnectorError, Discovery, Finding, Subject};
use serde_json::Value;

use crate::classify;
use crate::client::{encode, page, Client};
use crate::config::{is_guid, EntraConfig, Identifier};

/// The user itself (target `users/<id>`).
pub const ACCOUNT: &str = "account";
/// A direct membership of a group (target `groups/<gid>/members/<uid>`).
pub const GROUP_MEMBERSHIP: &str = "group_membership";
/// A direct app role assignment (target `users/<uid>/appRoleAssignments/<aid>`).
pub const APP_ROLE_ASSIGNMENT: &str = "app_role_assignment";
/// A directory role assignment (target `roleManagement/directory/roleAssignments/<rid>`).
pub const DIRECTORY_ROLE_ASSIGNMENT: &str = "directory_role_assignment";
/// An authentication method (target `users/<uid>/authentication/<type>Methods/<mid>`).
pub const AUTH_METHOD: &str = "auth_method";
/// A licence (target `users/<uid>/licenses/<skuId>`; attrs say direct and/or from groups).
pub const LICENSE: &str = "license";
/// A device the user owns or registered (target `devices/<id>`): reported, never changed.
pub const DEVICE: &str = "device";

/// What the pinned id is called in plans and errors.
pub const ID_KIND: &str = "Entra object id";

/// The user properties every read asks for.
pub const USER_SELECT: &str = "id,userPrincipalName,mail,otherMails,proxyAddresses,employeeId,accountEnabled,displayName,onPremisesSyncEnabled,onPremisesImmutableId,onPremisesSamAccountName,assignedLicenses,licenseAssignmentStates";

/// The group properties `memberOf` is asked for.
pub const GROUP_SELECT: &str =
    "id,displayName,groupTypes,mailEnabled,securityEnabled,onPremisesSyncEnabled,membershipRule";

/// The kinds of group whose members Graph changes.
pub const CHANGEABLE_KINDS: [&str; 2] = ["security", "microsoft_365"];

/// Refuses a value no identifier holds before it reaches a filter.
pub fn check_value(attr: &str, v: &str) -> Result<(), ConnectorError> {
    if v.trim().is_empty() || v.len() > 1_024 || v.chars().any(char::is_control) {
        return Err(ConnectorError::permanent(
            "bad_identifier",
            format!(
                "entra {attr} {v:?} is empty, longer than 1024 characters or holds control characters; nothing was sent"
            ),
        ));
    }
    Ok(())
}

/// An OData string literal: quoted, each `'` doubled.
pub fn literal(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

/// The `$filter` finding users whose `id` property holds `v`.
pub fn filter(id: Identifier, v: &str) -> String {
    let l = literal(v);
    match id {
        Identifier::OtherMails => format!("otherMails/any(m:m eq {l})"),
        Identifier::ProxyAddresses => {
            format!(
                "proxyAddresses/any(p:p eq {})",
                literal(&format!("smtp:{v}"))
            )
        }
        other => format!("{} eq {l}", other.name()),
    }
}

/// One list read: its path (relative to the version root) and whether it is an advanced query
/// (`ConsistencyLevel: eventual` and `$count=true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Get {
    pub path: String,
    pub advanced: bool,
}

/// The search of the users whose `id` holds `v`.
pub fn search(id: Identifier, v: &str) -> Get {
    let advanced = id == Identifier::OnPremisesSamAccountName;
    let path = format!(
        "/users?$filter={}&$select={USER_SELECT}{}",
        encode(&filter(id, v)),
        if advanced { "&$count=true" } else { "" }
    );
    Get { path, advanced }
}

fn lower(s: &str) -> String {
    s.to_lowercase()
}

/// A licence on the user, as `assignedLicenses` and `licenseAssignmentStates` say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct License {
    pub sku_id: String,
    /// Assigned to the user directly.
    pub direct: bool,
    /// The groups it comes from.
    pub groups: Vec<String>,
}

/// A user as Graph answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub upn: String,
    pub mail: String,
    pub other_mails: Vec<String>,
    pub proxy_addresses: Vec<String>,
    pub employee_id: String,
    pub enabled: Option<bool>,
    pub display_name: String,
    pub on_prem_sync: bool,
    pub immutable_id: String,
    pub sam: String,
    pub licenses: Vec<License>,
}

fn text(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn texts(v: &Value, k: &str) -> Vec<String> {
    v.get(k)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The address of a `proxyAddresses` value (`smtp:a@x` -> `a@x`).
fn proxy_address(p: &str) -> &str {
    p.split_once(':').map_or(p, |(_, a)| a)
}

pub fn parse_user(v: &Value) -> Option<User> {
    let id = v.get("id")?.as_str()?.to_string();
    let mut licenses: Vec<License> = Vec::new();
    let states = v.get("licenseAssignmentStates").and_then(Value::as_array);
    for s in states.into_iter().flatten() {
        let sku = text(s, "skuId");
        if sku.is_empty() {
            continue;
        }
        let group = s
            .get("assignedByGroup")
            .and_then(Value::as_str)
            .map(str::to_string);
        let l = match licenses.iter_mut().find(|l| l.sku_id == sku) {
            Some(l) => l,
            None => {
                licenses.push(License {
                    sku_id: sku,
                    direct: false,
                    groups: Vec::new(),
                });
                licenses.last_mut()?
            }
        };
        match group {
            Some(g) => l.groups.push(g),
            None => l.direct = true,
        }
    }
    // Without assignment states, every assigned licence is taken as direct.
    for a in v
        .get("assignedLicenses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let sku = text(a, "skuId");
        if !sku.is_empty() && !licenses.iter().any(|l| l.sku_id == sku) {
            licenses.push(License {
                sku_id: sku,
                direct: states.is_none(),
                groups: Vec::new(),
            });
        }
    }
    Some(User {
        id,
        upn: text(v, "userPrincipalName"),
        mail: text(v, "mail"),
        other_mails: texts(v, "otherMails"),
        proxy_addresses: texts(v, "proxyAddresses"),
        employee_id: text(v, "employeeId"),
        enabled: v.get("accountEnabled").and_then(Value::as_bool),
        display_name: text(v, "displayName"),
        on_prem_sync: v.get("onPremisesSyncEnabled").and_then(Value::as_bool) == Some(true),
        immutable_id: text(v, "onPremisesImmutableId"),
        sam: text(v, "onPremisesSamAccountName"),
        licenses,
    })
}

impl User {
    /// Whether the user's `id` property holds `v` (Graph compares these ignoring case).
    pub fn holds(&self, id: Identifier, v: &str) -> bool {
        let v = lower(v);
        let eq = |s: &str| !s.is_empty() && lower(s) == v;
        match id {
            Identifier::UserPrincipalName => eq(&self.upn),
            Identifier::Mail => eq(&self.mail),
            Identifier::OtherMails => self.other_mails.iter().any(|m| eq(m)),
            Identifier::ProxyAddresses => self.proxy_addresses.iter().any(|p| {
                p.split_once(':')
                    .is_some_and(|(t, a)| t.eq_ignore_ascii_case("smtp") && eq(a))
            }),
            Identifier::EmployeeId => eq(&self.employee_id),
            Identifier::OnPremisesImmutableId => eq(&self.immutable_id),
            Identifier::OnPremisesSamAccountName => eq(&self.sam),
        }
    }

    /// The user as an [`Account`]: pinned to its object id, answering to every name, address
    /// and number it has.
    pub fn account(&self) -> Account {
        let mut ids: Vec<&str> = vec![
            &self.upn,
            &self.mail,
            &self.employee_id,
            &self.immutable_id,
            &self.sam,
        ];
        ids.extend(self.other_mails.iter().map(String::as_str));
        for p in &self.proxy_addresses {
            ids.push(p);
            ids.push(proxy_address(p));
        }
        Account::new(self.id.clone(), ID_KIND, self.upn.as_str()).answers_to(ids)
    }
}

/// The (identifier, value) searches tried for a subject: each configured identifier with each
/// of the subject's values of its sort (addresses for UPN, mail, otherMails and
/// proxyAddresses; the employee id, or a name that is no address, for the others).
pub fn lookups(cfg: &EntraConfig, instance: &str, s: &Subject) -> Vec<(Identifier, String)> {
    let mut emails: Vec<&str> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    let username = s.username_for(instance);
    for v in [Some(username), s.email.as_deref(), Some(s.id.as_str())]
        .into_iter()
        .flatten()
    {
        if v.contains('@') {
            emails.push(v);
        } else {
            names.push(v);
        }
    }
    let mut out: Vec<(Identifier, String)> = Vec::new();
    let mut push = |id: Identifier, v: &str| {
        let v = v.trim();
        if !v.is_empty()
            && !out
                .iter()
                .any(|(i, x)| *i == id && x.eq_ignore_ascii_case(v))
        {
            out.push((id, v.to_string()));
        }
    };
    for id in &cfg.identifiers {
        match id {
            i if i.takes_email() => emails.iter().for_each(|v| push(*i, v)),
            Identifier::EmployeeId => {
                if let Some(e) = &s.employee_id {
                    push(*id, e);
                }
                names.iter().for_each(|v| push(*id, v));
            }
            i => names.iter().for_each(|v| push(*i, v)),
        }
    }
    out
}

/// Reads every list in `gets`, following `@odata.nextLink`: one call each when `batch` is 1,
/// else in `$batch` requests of `batch` reads, each round carrying the next pages of the last.
/// `None` for a list whose first page is a 404.
pub async fn fetch_lists(
    client: &Client,
    gets: &[Get],
    batch: usize,
) -> Result<Vec<Option<Vec<Value>>>, ConnectorError> {
    if batch <= 1 || gets.len() <= 1 {
        let mut out = Vec::with_capacity(gets.len());
        for g in gets {
            out.push(client.list(&g.path, g.advanced).await?);
        }
        return Ok(out);
    }
    let mut out: Vec<Option<Vec<Value>>> = vec![Some(Vec::new()); gets.len()];
    let mut pages = vec![0usize; gets.len()];
    let mut pending: Vec<(usize, String)> = gets
        .iter()
        .enumerate()
        .map(|(i, g)| (i, g.path.clone()))
        .collect();
    while !pending.is_empty() {
        let mut next = Vec::new();
        for chunk in pending.chunks(batch) {
            let reqs: Vec<(String, bool)> = chunk
                .iter()
                .map(|(i, p)| (p.clone(), gets[*i].advanced))
                .collect();
            let replies = client.batch_get(&reqs).await?;
            for ((i, p), reply) in chunk.iter().zip(replies) {
                let reply = reply?;
                pages[*i] += 1;
                if reply.status == 404 && pages[*i] == 1 {
                    out[*i] = None;
                    continue;
                }
                let (items, link) = page(&Method::GET, p, &reply)?;
                if let Some(list) = out[*i].as_mut() {
                    list.extend(items);
                }
                if let Some(link) = link {
                    let rel = client.relative(&link).ok_or_else(|| {
                        classify::bad_response(
                            &Method::GET,
                            p,
                            "expected a nextLink on the configured graph_url",
                        )
                    })?;
                    if pages[*i] >= 200 {
                        return Err(classify::bad_response(
                            &Method::GET,
                            p,
                            "more than 200 pages; stopped",
                        ));
                    }
                    next.push((*i, rel.to_string()));
                }
            }
        }
        pending = next;
    }
    Ok(out)
}

/// Reads every object in `paths` (`None` on a 404): one call each when `batch` is 1, else in
/// `$batch` requests of `batch` reads.
pub async fn fetch_objects(
    client: &Client,
    paths: &[String],
    batch: usize,
) -> Result<Vec<Option<Value>>, ConnectorError> {
    if batch <= 1 || paths.len() <= 1 {
        let mut out = Vec::with_capacity(paths.len());
        for p in paths {
            out.push(client.get(p).await?);
        }
        return Ok(out);
    }
    let mut out = Vec::with_capacity(paths.len());
    for chunk in paths.chunks(batch) {
        let reqs: Vec<(String, bool)> = chunk.iter().map(|p| (p.clone(), false)).collect();
        for (p, reply) in chunk.iter().zip(client.batch_get(&reqs).await?) {
            let reply = reply?;
            if reply.status == 404 {
                out.push(None);
            } else if !reply.is_success() {
                return Err(classify::status(&Method::GET, p, &reply));
            } else {
                out.push(Some(reply.json().ok_or_else(|| {
                    classify::bad_response(&Method::GET, p, "expected a json body")
                })?));
            }
        }
    }
    Ok(out)
}

fn finding(
    instance: &str,
    subject: &str,
    kind: &str,
    target: String,
    attrs: &[(&str, &str)],
) -> Finding {
    Finding {
        connector: instance.to_string(),
        subject: subject.to_string(),
        kind: kind.into(),
        target,
        attrs: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// A group's kind: `on_prem_synced`, `dynamic`, `microsoft_365`, `mail_enabled_security`,
/// `distribution` or `security`; Graph changes the members of the [`CHANGEABLE_KINDS`] only.
pub fn group_kind(g: &Value) -> &'static str {
    let types: Vec<&str> = g
        .get("groupTypes")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let flag = |k: &str| g.get(k).and_then(Value::as_bool) == Some(true);
    if flag("onPremisesSyncEnabled") {
        "on_prem_synced"
    } else if types.contains(&"DynamicMembership") {
        "dynamic"
    } else if types.contains(&"Unified") {
        "microsoft_365"
    } else if flag("mailEnabled") {
        if flag("securityEnabled") {
            "mail_enabled_security"
        } else {
            "distribution"
        }
    } else {
        "security"
    }
}

/// Why Graph cannot remove a member of a group of `kind`, and what a person does instead.
pub fn manual_step(kind: &str, group: &str, gid: &str, upn: &str, rule: &str) -> String {
    match kind {
        "on_prem_synced" => format!(
            "Entra group {group:?} ({gid}) is synced from on-premises Active Directory, so Graph cannot change its members: remove {upn} from it in Active Directory (the change reaches Entra at the next sync)"
        ),
        "dynamic" => format!(
            "Entra group {group:?} ({gid}) has dynamic membership (rule {rule:?}), so Graph cannot remove {upn}: the rule keeps them in it until their attributes change or the user is deleted; change the attributes or the rule if they must leave it sooner"
        ),
        _ => format!(
            "Entra group {group:?} ({gid}) is a mail-enabled security group or distribution list, mastered in Exchange Online, so Graph cannot change its members: remove {upn} in Exchange (Remove-DistributionGroupMember -Identity {gid} -Member {upn})"
        ),
    }
}

/// The path segment of an authentication method's `@odata.type`, for the removable ones.
pub fn method_segment(odata_type: &str) -> Option<&'static str> {
    Some(match odata_type.trim_start_matches("#microsoft.graph.") {
        "phoneAuthenticationMethod" => "phoneMethods",
        "fido2AuthenticationMethod" => "fido2Methods",
        "microsoftAuthenticatorAuthenticationMethod" => "microsoftAuthenticatorMethods",
        "softwareOathAuthenticationMethod" => "softwareOathMethods",
        "temporaryAccessPassAuthenticationMethod" => "temporaryAccessPassMethods",
        "windowsHelloForBusinessAuthenticationMethod" => "windowsHelloForBusinessMethods",
        "emailAuthenticationMethod" => "emailMethods",
        _ => return None,
    })
}

/// A safe id for a path segment: a GUID, or Graph's opaque ids (letters, digits, `-`, `_`).
pub fn is_object_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// The reads made for each user found.
fn user_reads(cfg: &EntraConfig, uid: &str) -> Vec<(&'static str, Get)> {
    let plain = |path: String| Get {
        path,
        advanced: false,
    };
    let mut out = Vec::new();
    if cfg.remove_groups {
        out.push((
            GROUP_MEMBERSHIP,
            plain(format!("/users/{uid}/memberOf?$select={GROUP_SELECT}")),
        ));
    }
    if cfg.remove_app_roles {
        out.push((
            APP_ROLE_ASSIGNMENT,
            plain(format!("/users/{uid}/appRoleAssignments")),
        ));
    }
    if cfg.remove_directory_roles {
        out.push((DIRECTORY_ROLE_ASSIGNMENT, plain(role_assignments_path(uid))));
    }
    if cfg.remove_auth_methods {
        out.push((
            AUTH_METHOD,
            plain(format!("/users/{uid}/authentication/methods")),
        ));
    }
    if cfg.report_devices {
        out.push(("owned", plain(format!("/users/{uid}/ownedDevices"))));
        out.push((
            "registered",
            plain(format!("/users/{uid}/registeredDevices")),
        ));
    }
    out
}

/// `GET /roleManagement/directory/roleAssignments` of one principal.
pub fn role_assignments_path(uid: &str) -> String {
    format!(
        "/roleManagement/directory/roleAssignments?$filter={}",
        encode(&format!("principalId eq {}", literal(uid)))
    )
}

/// Discovery of several subjects; the same reads for one.
pub async fn discover_all(
    client: &Client,
    cfg: &EntraConfig,
    instance: &str,
    subjects: &[Subject],
) -> Result<Vec<Discovery>, ConnectorError> {
    let batch = cfg.batch();
    // Every value is checked before the first request, so a hostile one sends nothing.
    let plans: Vec<Vec<(Identifier, String)>> =
        subjects.iter().map(|s| lookups(cfg, instance, s)).collect();
    for (id, v) in plans.iter().flatten() {
        check_value(id.name(), v)?;
    }
    let gets: Vec<Get> = plans
        .iter()
        .flatten()
        .map(|(id, v)| search(*id, v))
        .collect();
    let mut answers = fetch_lists(client, &gets, batch).await?.into_iter();

    // Per subject: the users that hold one of its values, each with every reason.
    struct Hit {
        user: User,
        direct: Vec<String>,
        alias_only: Vec<String>,
    }
    let mut hits_of: Vec<Vec<Hit>> = Vec::with_capacity(subjects.len());
    for plan in &plans {
        let mut hits: Vec<Hit> = Vec::new();
        for (id, v) in plan {
            let items = answers.next().flatten().unwrap_or_default();
            for u in items.iter().filter_map(parse_user) {
                if !u.holds(*id, v) {
                    continue;
                }
                if !is_guid(&u.id) {
                    return Err(classify::bad_response(
                        &Method::GET,
                        "/users",
                        &format!("expected a guid object id, found {:?}", u.id),
                    ));
                }
                let why = format!("{} = {v}", id.name());
                let h = match hits.iter_mut().position(|h| h.user.id == u.id) {
                    Some(i) => &mut hits[i],
                    None => {
                        hits.push(Hit {
                            user: u,
                            direct: Vec::new(),
                            alias_only: Vec::new(),
                        });
                        let last = hits.len() - 1;
                        &mut hits[last]
                    }
                };
                let list = if id.is_alias() {
                    &mut h.alias_only
                } else {
                    &mut h.direct
                };
                if !list.contains(&why) {
                    list.push(why);
                }
            }
        }
        hits_of.push(hits);
    }

    // The users planned for each subject, and the notes about those left out.
    let mut chosen: Vec<Vec<(User, String)>> = Vec::new();
    let mut notes: Vec<Vec<String>> = Vec::new();
    for (s, hits) in subjects.iter().zip(hits_of) {
        let any_direct = hits.iter().any(|h| !h.direct.is_empty());
        let mut mine = Vec::new();
        let mut n = Vec::new();
        for h in hits {
            let mut why = h.direct.clone();
            why.extend(h.alias_only.iter().cloned());
            let why = why.join(", ");
            if any_direct && h.direct.is_empty() {
                n.push(format!(
                    "Entra user {} ({}) has {} only as an alias ({why}), while another user answers to it directly: not planned; if it is the leaver's too, plan it by its userPrincipalName",
                    h.user.upn, h.user.id, s.id
                ));
                continue;
            }
            mine.push((h.user, why));
        }
        if mine.len() > 1 {
            let list: Vec<String> = mine
                .iter()
                .map(|(u, why)| format!("{} ({}) by {why}", u.upn, u.id))
                .collect();
            n.push(format!(
                "{} Entra users answer to {}: {}; each is planned",
                mine.len(),
                s.id,
                list.join("; ")
            ));
        }
        chosen.push(mine);
        notes.push(n);
    }

    // The per-user reads of every user found, once each.
    let mut uids: Vec<String> = Vec::new();
    for (u, _) in chosen.iter().flatten() {
        if !uids.contains(&u.id) {
            uids.push(u.id.clone());
        }
    }
    let mut read_plan: Vec<(usize, &'static str)> = Vec::new();
    let mut gets: Vec<Get> = Vec::new();
    for (i, uid) in uids.iter().enumerate() {
        for (what, g) in user_reads(cfg, uid) {
            read_plan.push((i, what));
            gets.push(g);
        }
    }
    let lists = fetch_lists(client, &gets, batch).await?;
    let mut per_user: Vec<BTreeMap<&'static str, Option<Vec<Value>>>> =
        vec![BTreeMap::new(); uids.len()];
    for ((i, what), list) in read_plan.into_iter().zip(lists) {
        per_user[i].insert(what, list);
    }

    let mut out = Vec::with_capacity(subjects.len());
    for ((s, mine), n) in subjects.iter().zip(chosen).zip(notes) {
        let mut d = Discovery::not_found(instance, s.id.clone());
        d.notes = n;
        for (user, why) in mine {
            let i = uids.iter().position(|u| *u == user.id).unwrap_or_default();
            describe(cfg, instance, s, &user, &why, &per_user[i], &mut d);
        }
        out.push(d);
    }
    Ok(out)
}

/// The findings, account and notes of one user.
fn describe(
    cfg: &EntraConfig,
    instance: &str,
    s: &Subject,
    user: &User,
    why: &str,
    reads: &BTreeMap<&'static str, Option<Vec<Value>>>,
    d: &mut Discovery,
) {
    let uid = user.id.as_str();
    let upn = user.upn.as_str();
    d.found = true;
    d.accounts.push(user.account().matched_by(why));
    let enabled = match user.enabled {
        Some(true) => "true",
        Some(false) => "false",
        None => "",
    };
    d.findings.push(finding(
        instance,
        &s.id,
        ACCOUNT,
        format!("users/{uid}"),
        &[
            ("user_id", uid),
            ("upn", upn),
            ("mail", &user.mail),
            ("account_enabled", enabled),
            (
                "on_prem_sync",
                if user.on_prem_sync { "true" } else { "false" },
            ),
        ],
    ));
    let list = |k: &str| reads.get(k).cloned().flatten().unwrap_or_default();
    for g in list(GROUP_MEMBERSHIP) {
        let odata = str_of(&g, "@odata.type");
        if !odata.is_empty() && odata != "#microsoft.graph.group" {
            // Directory roles come with roleAssignments; administrative units are not access.
            continue;
        }
        let gid = str_of(&g, "id");
        if !is_guid(gid) {
            continue;
        }
        let name = str_of(&g, "displayName");
        let kind = group_kind(&g);
        let mut attrs = vec![
            ("group_id", gid),
            ("group_name", name),
            ("group_kind", kind),
            ("user_id", uid),
        ];
        if kind == "dynamic" {
            attrs.push(("membership_rule", str_of(&g, "membershipRule")));
        }
        // A kind Graph cannot change becomes a manual step in the plan (plan.rs).
        d.findings.push(finding(
            instance,
            &s.id,
            GROUP_MEMBERSHIP,
            format!("groups/{gid}/members/{uid}"),
            &attrs,
        ));
    }
    for a in list(APP_ROLE_ASSIGNMENT) {
        let aid = str_of(&a, "id");
        if !is_object_id(aid) || str_of(&a, "principalId") != uid {
            continue;
        }
        d.findings.push(finding(
            instance,
            &s.id,
            APP_ROLE_ASSIGNMENT,
            format!("users/{uid}/appRoleAssignments/{aid}"),
            &[
                ("assignment_id", aid),
                ("app_role_id", str_of(&a, "appRoleId")),
                ("resource_id", str_of(&a, "resourceId")),
                ("resource_name", str_of(&a, "resourceDisplayName")),
                ("user_id", uid),
            ],
        ));
    }
    for r in list(DIRECTORY_ROLE_ASSIGNMENT) {
        let rid = str_of(&r, "id");
        // Checked here too: a server may ignore the principalId filter.
        if !is_object_id(rid) || str_of(&r, "principalId") != uid {
            continue;
        }
        d.findings.push(finding(
            instance,
            &s.id,
            DIRECTORY_ROLE_ASSIGNMENT,
            format!("roleManagement/directory/roleAssignments/{rid}"),
            &[
                ("assignment_id", rid),
                ("role_definition_id", str_of(&r, "roleDefinitionId")),
                ("directory_scope_id", str_of(&r, "directoryScopeId")),
                ("user_id", uid),
            ],
        ));
    }
    if cfg.remove_auth_methods {
        for m in list(AUTH_METHOD) {
            let mid = str_of(&m, "id");
            let odata = str_of(&m, "@odata.type");
            if !is_object_id(mid) {
                continue;
            }
            match method_segment(odata) {
                Some(seg) => d.findings.push(finding(
                    instance,
                    &s.id,
                    AUTH_METHOD,
                    format!("users/{uid}/authentication/{seg}/{mid}"),
                    &[
                        ("method_id", mid),
                        ("method_type", seg),
                        ("user_id", uid),
                    ],
                )),
                None if odata.ends_with("passwordAuthenticationMethod") => {}
                None => d.notes.push(format!(
                    "Entra user {upn} has an authentication method of type {odata} ({mid}) that revoked does not remove: remove it in the Entra admin center"
                )),
            }
        }
    }
    if cfg.remove_licenses {
        for l in &user.licenses {
            let how = match (l.direct, l.groups.is_empty()) {
                (true, true) => "direct",
                (true, false) => "direct_and_group",
                (false, _) => "group",
            };
            let groups = l.groups.join(",");
            d.findings.push(finding(
                instance,
                &s.id,
                LICENSE,
                format!("users/{uid}/licenses/{}", l.sku_id),
                &[
                    ("sku_id", &l.sku_id),
                    ("assigned", how),
                    ("groups", &groups),
                    ("user_id", uid),
                ],
            ));
            if !l.groups.is_empty() {
                d.notes.push(format!(
                    "licence {} of Entra user {upn} comes from group(s) {groups}: Graph cannot remove it from the user; it goes when they leave the group (or when the user is deleted)",
                    l.sku_id
                ));
            }
        }
    }
    // One note per device, however it is tied to the user.
    let mut devices: Vec<(String, String, Vec<&str>)> = Vec::new();
    for (how, items) in [("owned", list("owned")), ("registered", list("registered"))] {
        for dev in items {
            let did = str_of(&dev, "id");
            if !is_guid(did) {
                continue;
            }
            match devices.iter_mut().find(|(id, _, _)| id == did) {
                Some((_, _, hows)) if !hows.contains(&how) => hows.push(how),
                Some(_) => {}
                None => devices.push((
                    did.to_string(),
                    str_of(&dev, "displayName").to_string(),
                    vec![how],
                )),
            }
        }
    }
    for (did, name, hows) in devices {
        let how = hows.join(" and ");
        d.findings.push(finding(
            instance,
            &s.id,
            DEVICE,
            format!("devices/{did}"),
            &[
                ("device_id", &did),
                ("device_name", &name),
                ("relation", &how),
                ("user_id", uid),
            ],
        ));
        d.notes.push(format!(
            "Entra user {upn} has {how} device {name:?} ({did}): revoked does not change devices; retire or wipe it in Intune, and disable it in Entra if it must not sign in"
        ));
    }
}

/// A group kind in words, for plans.
pub fn kind_words(kind: &str) -> &'static str {
    match kind {
        "on_prem_synced" => "an on-premises synced group",
        "dynamic" => "a dynamic group",
        "mail_enabled_security" => "a mail-enabled security group",
        "distribution" => "a distribution list",
        "microsoft_365" => "a Microsoft 365 group",
        _ => "a security group",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cfg(extra: Value) -> EntraConfig {
        let mut v = json!({"tenant_id": "contoso.onmicrosoft.com",
            "client_id": "00000000-1111-2222-3333-444455556666", "client_secret": "s"});
        if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            m.extend(e.clone());
        }
        EntraConfig::from_value(&v).expect("config")
    }

    #[test]
    fn a_quote_is_doubled_and_the_whole_filter_is_percent_encoded() {
        assert_eq!(
            filter(Identifier::UserPrincipalName, "o'brien@x.com"),
            "userPrincipalName eq 'o''brien@x.com'"
        );
        assert_eq!(
            filter(Identifier::ProxyAddresses, "a@x.com"),
            "proxyAddresses/any(p:p eq 'smtp:a@x.com')"
        );
        assert_eq!(
            filter(Identifier::OtherMails, "a@x.com"),
            "otherMails/any(m:m eq 'a@x.com')"
        );
        let hostile = "x' or accountEnabled eq true or mail eq 'y";
        let g = search(Identifier::Mail, hostile);
        assert_eq!(
            g.path.split("&$select").next(),
            Some("/users?$filter=mail%20eq%20%27x%27%27%20or%20accountEnabled%20eq%20true%20or%20mail%20eq%20%27%27y%27")
        );
        assert!(!g.advanced);
        let g = search(
            Identifier::UserPrincipalName,
            "guest_gmail.com#EXT#@contoso.onmicrosoft.com",
        );
        assert!(
            g.path.contains("guest_gmail.com%23EXT%23%40contoso"),
            "{}",
            g.path
        );
        let g = search(Identifier::OnPremisesSamAccountName, "alice");
        assert!(g.advanced && g.path.ends_with("&$count=true"));
        for bad in ["", " ", "a\nb", "a\u{0}b"] {
            assert_eq!(
                check_value("mail", bad).expect_err(bad).code,
                "bad_identifier"
            );
        }
        assert!(check_value("mail", "o'brien@x.com").is_ok());
    }

    #[test]
    fn lookups_put_addresses_to_address_properties_and_names_to_the_others() {
        let mut s = Subject::new("E1001");
        s.email = Some("alice@example.com".into());
        s.employee_id = Some("E1001".into());
        s.usernames
            .insert("entra".into(), "alice.smith@example.com".into());
        let got: Vec<String> = lookups(&cfg(json!({"identifiers": ["userPrincipalName", "mail", "employeeId", "onPremisesSamAccountName"]})), "entra", &s)
            .into_iter()
            .map(|(i, v)| format!("{}={v}", i.name()))
            .collect();
        assert_eq!(
            got,
            [
                "userPrincipalName=alice.smith@example.com",
                "userPrincipalName=alice@example.com",
                "mail=alice.smith@example.com",
                "mail=alice@example.com",
                "employeeId=E1001",
                "onPremisesSamAccountName=E1001",
            ]
        );
        let got: Vec<String> = lookups(&cfg(json!({})), "entra", &Subject::new("bob@example.com"))
            .into_iter()
            .map(|(i, v)| format!("{}={v}", i.name()))
            .collect();
        assert_eq!(
            got,
            [
                "userPrincipalName=bob@example.com",
                "mail=bob@example.com",
                "otherMails=bob@example.com"
            ]
        );
    }

    #[test]
    fn a_user_answers_to_every_identifier_and_licences_tell_direct_from_group() {
        let u = parse_user(&json!({
            "id": "11111111-2222-3333-4444-555555555555",
            "userPrincipalName": "Alice@contoso.com", "mail": "alice@contoso.com",
            "otherMails": ["alice.private@gmail.com"],
            "proxyAddresses": ["SMTP:alice@contoso.com", "smtp:a.old@contoso.com"],
            "employeeId": "E1", "accountEnabled": true,
            "assignedLicenses": [{"skuId": "sku-a", "disabledPlans": []}, {"skuId": "sku-b", "disabledPlans": []}],
            "licenseAssignmentStates": [
                {"skuId": "sku-a", "assignedByGroup": null, "state": "Active"},
                {"skuId": "sku-b", "assignedByGroup": "g1", "state": "Active"},
                {"skuId": "sku-a", "assignedByGroup": "g2", "state": "Active"}
            ]
        }))
        .expect("user");
        assert!(u.holds(Identifier::UserPrincipalName, "alice@CONTOSO.com"));
        assert!(u.holds(Identifier::ProxyAddresses, "A.Old@contoso.com"));
        assert!(u.holds(Identifier::OtherMails, "alice.private@gmail.com"));
        assert!(!u.holds(Identifier::Mail, "a.old@contoso.com"));
        let a = u.account();
        for i in [
            "alice.private@gmail.com",
            "a.old@contoso.com",
            "smtp:a.old@contoso.com",
            "E1",
        ] {
            assert!(a.identifiers.contains(i), "{i} in {:?}", a.identifiers);
        }
        assert_eq!(
            u.licenses,
            [
                License {
                    sku_id: "sku-a".into(),
                    direct: true,
                    groups: vec!["g2".into()]
                },
                License {
                    sku_id: "sku-b".into(),
                    direct: false,
                    groups: vec!["g1".into()]
                },
            ]
        );
    }

    #[test]
    fn group_kinds() {
        let k = |v: Value| group_kind(&v);
        assert_eq!(
            k(json!({"securityEnabled": true, "mailEnabled": false, "groupTypes": []})),
            "security"
        );
        assert_eq!(
            k(json!({"mailEnabled": true, "groupTypes": ["Unified"]})),
            "microsoft_365"
        );
        assert_eq!(
            k(json!({"mailEnabled": true, "securityEnabled": true, "groupTypes": []})),
            "mail_enabled_security"
        );
        assert_eq!(
            k(json!({"mailEnabled": true, "securityEnabled": false, "groupTypes": []})),
            "distribution"
        );
        assert_eq!(
            k(json!({"groupTypes": ["Unified", "DynamicMembership"]})),
            "dynamic"
        );
        assert_eq!(
            k(json!({"securityEnabled": true, "onPremisesSyncEnabled": true})),
            "on_prem_synced"
        );
        assert_eq!(
            method_segment("#microsoft.graph.fido2AuthenticationMethod"),
            Some("fido2Methods")
        );
        assert_eq!(
            method_segment("#microsoft.graph.passwordAuthenticationMethod"),
            None
        );
    }
}
