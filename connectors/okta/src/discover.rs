//! Read-only discovery: the user (by login, email or employee number, exact match only), its
//! status, groups (with their type), app assignments (direct or from a group) and admin roles,
//! and the account every action is pinned to (Okta's user id, `00u...`).
//!
//! Okta's `search` compares case-insensitively and its expression language is injectable through
//! quotes, so a value that could change the expression or the path (`"`, `\`, `*`, `/`, control
//! characters, blanks) is refused before any request, and every answer is filtered again here:
//! only a user whose attribute equals the subject's value is theirs, and two are an error.

use std::collections::BTreeMap;

use revoke_core::{Account, ConnectorError, Discovery, Finding, Subject};
use serde_json::Value;

use crate::client::{encode, Client};
use crate::config::{Contain, OktaConfig};

/// The Okta user itself (target `users/<id>`).
pub const ACCOUNT: &str = "account";
/// A membership of an OKTA_GROUP (target `groups/<gid>/users/<uid>`).
pub const GROUP_MEMBERSHIP: &str = "group_membership";
/// A membership of an APP_GROUP, managed by a directory: reported, never removed here.
pub const APP_GROUP_MEMBERSHIP: &str = "app_group_membership";
/// A direct app assignment (scope USER; target `apps/<aid>/users/<uid>`).
pub const APP_ASSIGNMENT: &str = "app_assignment";
/// An app assignment that comes from a group (scope GROUP): reported, never removed here.
pub const GROUP_APP_ASSIGNMENT: &str = "group_app_assignment";
/// An admin role assigned to the user (target `users/<uid>/roles/<rid>`).
pub const ADMIN_ROLE: &str = "admin_role";
/// An admin role that comes from a group: reported, never removed here.
pub const GROUP_ADMIN_ROLE: &str = "group_admin_role";

/// The user's enrolled factors (target `users/<id>/factors`; attrs: their count and types).
pub const FACTORS: &str = "factors";
/// The user's OAuth consent grants (target `users/<id>/grants`; attrs: their count).
pub const GRANTS: &str = "grants";

/// What the pinned id is called in plans and errors.
pub const ID_KIND: &str = "Okta user id";

/// Okta's user id: 20 letters and digits (`00u1abcdEFGH2345ijk7`). A pinned id must have this
/// shape, because `GET /api/v1/users/{x}` also accepts a login or its short name as `x`.
pub fn is_user_id(s: &str) -> bool {
    s.len() == 20 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// An Okta object id (groups, apps, role assignments): letters and digits only.
pub fn is_object_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Refuses a value that is no plain login, email or employee number before it reaches a search
/// expression or a path.
pub fn check_value(attr: &str, v: &str) -> Result<(), ConnectorError> {
    let bad = v.is_empty()
        || v.len() > 256
        || v.chars().any(|c| {
            c.is_control() || c.is_whitespace() || matches!(c, '"' | '\\' | '*' | '/' | '?' | '#')
        })
        || v == "."
        || v == "..";
    if bad {
        return Err(ConnectorError::permanent(
            "bad_identifier",
            format!(
                "okta {attr} {v:?} holds a character no login, email or employee number has (quotes, backslash, *, /, ?, #, blanks or control characters); nothing was sent"
            ),
        ));
    }
    Ok(())
}

/// A user as the API answers it.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub status: String,
    pub login: String,
    pub email: String,
    pub second_email: String,
    pub employee_number: String,
}

impl User {
    /// The user as an [`Account`]: pinned to its id, answering to every login and email.
    pub fn account(&self) -> Account {
        Account::new(self.id.clone(), ID_KIND, self.login.as_str()).answers_to([
            self.login.as_str(),
            self.email.as_str(),
            self.second_email.as_str(),
            self.employee_number.as_str(),
        ])
    }
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

pub fn parse_user(v: &Value, employee_attr: &str) -> Option<User> {
    let p = v.get("profile")?;
    Some(User {
        id: v.get("id")?.as_str()?.to_string(),
        status: text(v.get("status")),
        login: text(p.get("login")),
        email: text(p.get("email")),
        second_email: text(p.get("secondEmail")),
        employee_number: text(p.get(employee_attr)),
    })
}

/// `GET /api/v1/users/{id}`; `None` when the user is gone. `id` must be an Okta id.
pub async fn get_user(
    client: &Client,
    id: &str,
    employee_attr: &str,
) -> Result<Option<User>, ConnectorError> {
    let path = format!("/api/v1/users/{}", encode(id));
    let Some(v) = client.get_json(&path).await? else {
        return Ok(None);
    };
    parse_user(&v, employee_attr).map(Some).ok_or_else(|| {
        crate::classify::bad_response(&reqwest::Method::GET, &path, "expected a user object")
    })
}

/// The one user whose profile `attr` equals `value` (login and email ignoring ASCII case, as
/// Okta does; the employee number exactly), if any.
pub async fn find(
    client: &Client,
    attr: &str,
    value: &str,
    employee_attr: &str,
) -> Result<Option<User>, ConnectorError> {
    check_value(attr, value)?;
    let expr = format!("profile.{attr} eq \"{value}\"");
    let path = format!("/api/v1/users?search={}&limit=200", encode(&expr));
    let items = client.list(&path).await?.unwrap_or_default();
    let mut exact: Vec<User> = Vec::new();
    for u in items.iter().filter_map(|u| parse_user(u, employee_attr)) {
        let got = u
            .clone()
            .profile_value(attr, employee_attr)
            .unwrap_or_default();
        let holds = if attr == employee_attr {
            got == value
        } else {
            got.eq_ignore_ascii_case(value)
        };
        if holds && !exact.iter().any(|x| x.id == u.id) {
            exact.push(u);
        }
    }
    match exact.len() {
        0 => Ok(None),
        1 => Ok(exact.pop()),
        _ => Err(ambiguous(attr, value, &exact)),
    }
}

impl User {
    fn profile_value(self, attr: &str, employee_attr: &str) -> Option<String> {
        match attr {
            "login" => Some(self.login),
            "email" => Some(self.email),
            a if a == employee_attr => Some(self.employee_number),
            _ => None,
        }
    }
}

/// The (attribute, value) searches tried for a subject, in order: the subject's login for this
/// instance, its email, its employee number, then the identifier the job was raised with as
/// each. Duplicates and empty values are left out.
pub fn lookups(cfg: &OktaConfig, instance: &str, s: &Subject) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let emp = cfg.employee_number_attribute.as_str();
    let mut push = |attr: &str, v: &str| {
        let v = v.trim();
        if !v.is_empty() && !out.iter().any(|(a, x)| a == attr && x == v) {
            out.push((attr.to_string(), v.to_string()));
        }
    };
    let username = s.username_for(instance);
    if username != s.id {
        push("login", username);
    }
    if let Some(e) = &s.email {
        push("login", e);
        push("email", e);
    }
    if let Some(e) = &s.employee_id {
        push(emp, e);
    }
    push("login", &s.id);
    if s.id.contains('@') {
        push("email", &s.id);
    } else {
        push(emp, &s.id);
    }
    out
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

/// Where an APP_GROUP comes from, in words, by its `objectClass` (Okta: `okta:windows_security_principal`
/// for Active Directory, `okta:ldap_group`-like classes for LDAP, an app's own class otherwise).
fn group_source(g: &Value) -> &'static str {
    let classes: Vec<&str> = g
        .get("objectClass")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if classes
        .iter()
        .any(|c| c.contains("windows_security_principal"))
    {
        "Active Directory"
    } else if classes.iter().any(|c| c.contains("ldap")) {
        "the LDAP directory"
    } else {
        "the app it is imported from"
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(x) => cur = x,
            None => return "",
        }
    }
    cur.as_str().unwrap_or("")
}

/// How many values one batched search names (`... eq "a" or ... eq "b"`), keeping the URL short.
pub const SEARCH_BATCH: usize = 20;
/// How many subjects of a batch are read at once after the searches.
pub const DISCOVER_CONCURRENCY: usize = 8;

/// The users whose `attr` equals one of `values`, by one search per [`SEARCH_BATCH`] values,
/// each answer filtered again exactly as [`find`] does: value -> the users that hold it.
async fn find_many(
    client: &Client,
    attr: &str,
    values: &[String],
    employee_attr: &str,
) -> Result<BTreeMap<String, Vec<User>>, ConnectorError> {
    let mut out: BTreeMap<String, Vec<User>> = BTreeMap::new();
    for chunk in values.chunks(SEARCH_BATCH) {
        let expr = chunk
            .iter()
            .map(|v| format!("profile.{attr} eq \"{v}\""))
            .collect::<Vec<_>>()
            .join(" or ");
        let path = format!("/api/v1/users?search={}&limit=200", encode(&expr));
        let items = client.list(&path).await?.unwrap_or_default();
        for u in items.iter().filter_map(|u| parse_user(u, employee_attr)) {
            let got = u
                .clone()
                .profile_value(attr, employee_attr)
                .unwrap_or_default();
            for v in chunk {
                let holds = if attr == employee_attr {
                    got == *v
                } else {
                    got.eq_ignore_ascii_case(v)
                };
                if holds {
                    let e = out.entry(v.clone()).or_default();
                    if !e.iter().any(|x| x.id == u.id) {
                        e.push(u.clone());
                    }
                }
            }
        }
    }
    Ok(out)
}

fn ambiguous(attr: &str, value: &str, users: &[User]) -> ConnectorError {
    ConnectorError::permanent(
        "ambiguous_user",
        format!(
            "{} Okta users have {attr} {value:?} (ids {:?}); expected one",
            users.len(),
            users.iter().map(|u| u.id.as_str()).collect::<Vec<_>>()
        ),
    )
}

/// A user found by one of the subject's lookups: the attribute, the value, the user.
type Hit = (String, String, User);

/// Tries the subject's lookups from the `from`-th on, in order, stopping at the first hit.
async fn find_user(
    client: &Client,
    cfg: &OktaConfig,
    plan: &[(String, String)],
    from: usize,
) -> Result<Option<Hit>, ConnectorError> {
    let emp = cfg.employee_number_attribute.as_str();
    for (attr, value) in plan.iter().skip(from) {
        if let Some(u) = find(client, attr, value, emp).await? {
            return Ok(Some((attr.clone(), value.clone(), u)));
        }
    }
    Ok(None)
}

/// Discovery of one subject.
pub async fn discover_one(
    client: &Client,
    cfg: &OktaConfig,
    instance: &str,
    s: &Subject,
) -> Result<Discovery, ConnectorError> {
    let plan = lookups(cfg, instance, s);
    // Every value is checked before the first request, so a hostile one sends nothing.
    for (attr, value) in &plan {
        check_value(attr, value)?;
    }
    let hit = find_user(client, cfg, &plan, 0).await?;
    details(client, cfg, instance, s, hit).await
}

/// Discovery of many subjects, sharing what Okta lets them share: the first lookup of every
/// subject (its login, or its email as a login) is one search per [`SEARCH_BATCH`] subjects
/// (`profile.login eq "a" or ...`), filtered again per subject exactly as a single search is; a
/// subject it does not find goes on with its other lookups alone. The reads of each user
/// (factors, grants, groups with their types, apps with their app user embedded, roles) have no
/// shared form in Okta's API: they are made per user, [`DISCOVER_CONCURRENCY`] users at a time.
/// Every value of every subject is checked before the first request.
pub async fn discover_many(
    client: &Client,
    cfg: &OktaConfig,
    instance: &str,
    subjects: &[Subject],
) -> Result<Vec<Discovery>, ConnectorError> {
    use futures_util::stream::{self, StreamExt, TryStreamExt};

    let plans: Vec<Vec<(String, String)>> =
        subjects.iter().map(|s| lookups(cfg, instance, s)).collect();
    for (attr, value) in plans.iter().flatten() {
        check_value(attr, value)?;
    }
    let emp = cfg.employee_number_attribute.as_str();
    // The first lookups, batched by attribute.
    let mut by_attr: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in &plans {
        if let Some((attr, value)) = p.first() {
            let v = by_attr.entry(attr.clone()).or_default();
            if !v.contains(value) {
                v.push(value.clone());
            }
        }
    }
    let mut first: BTreeMap<(String, String), Vec<User>> = BTreeMap::new();
    for (attr, values) in &by_attr {
        for (v, users) in find_many(client, attr, values, emp).await? {
            first.insert((attr.clone(), v), users);
        }
    }
    let work: Vec<_> = subjects
        .iter()
        .zip(&plans)
        .map(|(s, plan)| batch_member(client, cfg, instance, s, plan, &first))
        .collect();
    stream::iter(work)
        .buffered(DISCOVER_CONCURRENCY)
        .try_collect()
        .await
}

/// One subject of [`discover_many`], given the answers of the shared first searches.
async fn batch_member(
    client: &Client,
    cfg: &OktaConfig,
    instance: &str,
    s: &Subject,
    plan: &[(String, String)],
    first: &BTreeMap<(String, String), Vec<User>>,
) -> Result<Discovery, ConnectorError> {
    let hit = match plan.first() {
        None => None,
        Some((attr, value)) => match first.get(&(attr.clone(), value.clone())).map(Vec::as_slice) {
            Some([u]) => Some((attr.clone(), value.clone(), u.clone())),
            Some(many) if many.len() > 1 => return Err(ambiguous(attr, value, many)),
            _ => find_user(client, cfg, plan, 1).await?,
        },
    };
    details(client, cfg, instance, s, hit).await
}

/// The found user's status, factors, grants, groups, apps and roles.
async fn details(
    client: &Client,
    cfg: &OktaConfig,
    instance: &str,
    s: &Subject,
    hit: Option<Hit>,
) -> Result<Discovery, ConnectorError> {
    let mut d = Discovery::not_found(instance, s.id.clone());
    let Some((attr, value, user)) = hit else {
        return Ok(d);
    };
    if !is_user_id(&user.id) {
        return Err(crate::classify::bad_response(
            &reqwest::Method::GET,
            "/api/v1/users",
            &format!("expected a 20-character Okta user id, found {:?}", user.id),
        ));
    }
    let uid = user.id.clone();
    d.found = true;
    d.accounts.push(
        user.account()
            .matched_by(format!("profile.{attr} = {value}")),
    );
    d.findings.push(finding(
        instance,
        &s.id,
        ACCOUNT,
        format!("users/{uid}"),
        &[
            ("user_id", &uid),
            ("login", &user.login),
            ("email", &user.email),
            ("status", &user.status),
        ],
    ));
    if cfg.contain == Contain::Deactivate && user.status != "DEPROVISIONED" {
        d.notes.push(format!(
            "Okta user {} ({uid}) will be deactivated: Okta deprovisions them from every app assigned to them, and a deactivation cannot be undone (set contain = \"suspend\" to keep it reversible)",
            user.login
        ));
    }
    if cfg.contain == Contain::Suspend
        && !["ACTIVE", "SUSPENDED", "DEPROVISIONED"].contains(&user.status.as_str())
    {
        d.notes.push(format!(
            "Okta user {} ({uid}) has status {}: Okta suspends only ACTIVE users, so contain will be skipped; deactivate them by hand or set contain = \"deactivate\"",
            user.login, user.status
        ));
    }

    if cfg.reset_factors {
        let path = format!("/api/v1/users/{uid}/factors");
        let factors = client.list(&path).await?.unwrap_or_default();
        if !factors.is_empty() {
            let mut types: Vec<&str> = factors.iter().map(|f| str_at(f, &["factorType"])).collect();
            types.sort_unstable();
            let count = factors.len().to_string();
            let types = types.join(",");
            d.findings.push(finding(
                instance,
                &s.id,
                FACTORS,
                format!("users/{uid}/factors"),
                &[
                    ("count", &count),
                    ("factor_types", &types),
                    ("user_id", &uid),
                ],
            ));
        }
    }
    if cfg.revoke_grants {
        let path = format!("/api/v1/users/{uid}/grants");
        let grants = client.list(&path).await?.unwrap_or_default();
        if !grants.is_empty() {
            let count = grants.len().to_string();
            d.findings.push(finding(
                instance,
                &s.id,
                GRANTS,
                format!("users/{uid}/grants"),
                &[("count", &count), ("user_id", &uid)],
            ));
        }
    }
    if cfg.remove_groups {
        let path = format!("/api/v1/users/{uid}/groups");
        for g in client.list(&path).await?.unwrap_or_default() {
            let gid = str_at(&g, &["id"]);
            let gtype = str_at(&g, &["type"]);
            let name = str_at(&g, &["profile", "name"]);
            if !is_object_id(gid) {
                continue;
            }
            let target = format!("groups/{gid}/users/{uid}");
            let attrs = [
                ("group_id", gid),
                ("group_name", name),
                ("group_type", gtype),
                ("user_id", uid.as_str()),
            ];
            match gtype {
                "OKTA_GROUP" => {
                    d.findings
                        .push(finding(instance, &s.id, GROUP_MEMBERSHIP, target, &attrs))
                }
                "APP_GROUP" => {
                    // The plan skips its removal and makes it a manual step (plan.rs).
                    let source = group_source(&g);
                    let mut attrs = attrs.to_vec();
                    attrs.push(("source", source));
                    d.findings.push(finding(
                        instance,
                        &s.id,
                        APP_GROUP_MEMBERSHIP,
                        target,
                        &attrs,
                    ));
                }
                // BUILT_IN (Everyone): every user is a member; nothing to remove.
                _ => {}
            }
        }
    }
    if cfg.remove_apps {
        // `expand=user/{uid}` embeds the user's app user (with its scope) in each app, so no
        // app needs a read of its own; an app without it is read alone.
        let expr = format!("user.id eq \"{uid}\"");
        let path = format!(
            "/api/v1/apps?filter={}&expand={}&limit=200",
            encode(&expr),
            encode(&format!("user/{uid}"))
        );
        for app in client.list(&path).await?.unwrap_or_default() {
            let aid = str_at(&app, &["id"]);
            let label = str_at(&app, &["label"]);
            if !is_object_id(aid) {
                continue;
            }
            let embedded = app
                .get("_embedded")
                .and_then(|e| e.get("user"))
                .filter(|u| str_at(u, &["id"]) == uid)
                .cloned();
            let au = match embedded {
                Some(au) => au,
                None => {
                    let au_path = format!("/api/v1/apps/{aid}/users/{uid}");
                    let Some(au) = client.get_json(&au_path).await? else {
                        continue;
                    };
                    au
                }
            };
            let scope = str_at(&au, &["scope"]);
            let target = format!("apps/{aid}/users/{uid}");
            let attrs = [
                ("app_id", aid),
                ("app_label", label),
                ("scope", scope),
                ("user_id", uid.as_str()),
            ];
            if scope == "USER" {
                d.findings
                    .push(finding(instance, &s.id, APP_ASSIGNMENT, target, &attrs));
            } else {
                d.findings.push(finding(
                    instance,
                    &s.id,
                    GROUP_APP_ASSIGNMENT,
                    target,
                    &attrs,
                ));
                d.notes.push(format!(
                    "Okta app {label:?} ({aid}) is assigned to {} through a group: it goes with the group membership, not per user",
                    user.login
                ));
            }
        }
    }
    if cfg.remove_admin_roles {
        let path = format!("/api/v1/users/{uid}/roles");
        for r in client.list(&path).await?.unwrap_or_default() {
            let rid = str_at(&r, &["id"]);
            let rtype = str_at(&r, &["type"]);
            let label = str_at(&r, &["label"]);
            let how = str_at(&r, &["assignmentType"]);
            if !is_object_id(rid) {
                continue;
            }
            let target = format!("users/{uid}/roles/{rid}");
            let attrs = [
                ("role_id", rid),
                ("role_type", rtype),
                ("role_label", label),
                ("assignment_type", how),
                ("user_id", uid.as_str()),
            ];
            if how == "GROUP" {
                d.findings
                    .push(finding(instance, &s.id, GROUP_ADMIN_ROLE, target, &attrs));
                d.notes.push(format!(
                    "Okta admin role {rtype} of {} comes from a group: it goes with the group membership (or remove it from the group)",
                    user.login
                ));
            } else {
                d.findings
                    .push(finding(instance, &s.id, ADMIN_ROLE, target, &attrs));
            }
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cfg() -> OktaConfig {
        OktaConfig::from_value(&json!({"org_url": "https://a.okta.com", "token": "t"}))
            .expect("config")
    }

    #[test]
    fn lookups_try_the_login_then_the_email_then_the_employee_number_then_the_job_id() {
        let mut s = Subject::new("E1001");
        s.email = Some("alice@example.com".into());
        s.employee_id = Some("E1001".into());
        s.usernames.insert("okta".into(), "alice.smith".into());
        let got: Vec<String> = lookups(&cfg(), "okta", &s)
            .into_iter()
            .map(|(a, v)| format!("{a}={v}"))
            .collect();
        assert_eq!(
            got,
            [
                "login=alice.smith",
                "login=alice@example.com",
                "email=alice@example.com",
                "employeeNumber=E1001",
                "login=E1001",
            ]
        );
        let got: Vec<String> = lookups(&cfg(), "okta", &Subject::new("bob@example.com"))
            .into_iter()
            .map(|(a, v)| format!("{a}={v}"))
            .collect();
        assert_eq!(got, ["login=bob@example.com", "email=bob@example.com"]);
    }

    #[test]
    fn only_plain_values_reach_a_search_expression() {
        for ok in [
            "alice@example.com",
            "o'brien@example.com",
            "E-1001",
            "a.b+c@x.io",
        ] {
            assert!(check_value("login", ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "*", "a\"b", "a\\b", "../x", "a b", "a\tb", "x?y", "x#y", ".", "..",
        ] {
            let e = check_value("login", bad).expect_err(bad);
            assert_eq!(e.code, "bad_identifier", "{bad}");
        }
        assert!(is_user_id("00u1abcdEFGH2345ijk7"));
        assert!(!is_user_id("alice@example.com") && !is_user_id("00u1abcdEFGH2345ijk"));
    }
}
