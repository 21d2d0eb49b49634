//! Read-only discovery: the user (by email, username or external id, exact match only), its
//! status and roles, and the account every action is pinned to (the numeric user id).
//!
//! OneLogin's search treats `*` as a wildcard and is case-insensitive, so every answer is
//! filtered again here: only a user whose field equals the subject's value is theirs, and two
//! such users are an error, never a guess.

use std::collections::{BTreeMap, HashMap};

use reqwest::Method;
use revoke_core::{Account, ConnectorError, Discovery, Finding, Subject};
use serde_json::Value;
use tracing::warn;

use crate::classify;
use crate::client::{encode, Client};
use crate::config::{MatchBy, OneLoginConfig};

/// The OneLogin user itself (target `users/<id>`).
pub const ACCOUNT: &str = "account";
/// One role the user holds (target `roles/<role id>/users/<user id>`).
pub const ROLE_MEMBERSHIP: &str = "role_membership";

/// What the pinned id is called in plans and errors.
pub const ID_KIND: &str = "OneLogin user id";

/// OneLogin's status code of a suspended user (2; 3 is locked).
pub const STATUS_SUSPENDED: u64 = 2;

/// OneLogin's name of a status code.
pub fn status_name(code: u64) -> &'static str {
    match code {
        0 => "unactivated",
        1 => "active",
        2 => "suspended",
        3 => "locked",
        4 => "password_expired",
        5 => "awaiting_password_reset",
        7 => "password_pending",
        8 => "security_questions_required",
        _ => "unknown",
    }
}

/// The (field, value) searches tried for a subject, in order: the configured `match_by` first,
/// then every other identifier the subject has at its own kind (email, username, employee id as
/// `external_id`), then the identifier the job was raised with as each kind (`plan --user X`
/// and HR events may carry only one). Duplicates and empty values are left out.
pub fn lookups(cfg: &OneLoginConfig, instance: &str, s: &Subject) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    let mut push = |field: &'static str, v: &str| {
        let v = v.trim();
        if !v.is_empty() && !out.iter().any(|(f, x)| *f == field && x == v) {
            out.push((field, v.to_string()));
        }
    };
    let username = s.username_for(instance);
    match cfg.match_by {
        MatchBy::Email => {
            if let Some(e) = &s.email {
                push("email", e);
            }
            push("username", username);
        }
        MatchBy::Username => {
            push("username", username);
            if let Some(e) = &s.email {
                push("email", e);
            }
        }
    }
    if let Some(e) = &s.employee_id {
        push("external_id", e);
    }
    if s.id.contains('@') {
        push("email", &s.id);
    }
    push("username", &s.id);
    push("external_id", &s.id);
    out
}

/// A user as the API answers it.
#[derive(Debug, Clone)]
pub struct User {
    pub id: u64,
    pub email: String,
    pub username: String,
    /// Identifiers a directory sync or HR integration may have set.
    pub external_id: String,
    pub samaccountname: String,
    pub userprincipalname: String,
    pub status: u64,
    pub role_ids: Vec<u64>,
}

impl User {
    /// The user as an [`Account`]: pinned to its numeric id, answering to username and email.
    pub fn account(&self) -> Account {
        let name = if self.username.is_empty() {
            &self.email
        } else {
            &self.username
        };
        Account::new(self.id.to_string(), ID_KIND, name.as_str()).answers_to([
            self.username.as_str(),
            self.email.as_str(),
            self.external_id.as_str(),
            self.samaccountname.as_str(),
            self.userprincipalname.as_str(),
        ])
    }
}

/// A string field of a user; absent and null are empty, a number is its digits.
fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

pub fn parse_user(v: &Value) -> Option<User> {
    Some(User {
        id: v.get("id")?.as_u64()?,
        external_id: text(v, "external_id"),
        samaccountname: text(v, "samaccountname"),
        userprincipalname: text(v, "userprincipalname"),
        email: v
            .get("email")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        username: v
            .get("username")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        status: v.get("status").and_then(Value::as_u64).unwrap_or(1),
        role_ids: v
            .get("role_ids")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default(),
    })
}

/// `GET /api/2/users/:id`; `None` when the user is gone.
pub async fn get_user(client: &Client, id: u64) -> Result<Option<User>, ConnectorError> {
    let path = format!("/api/2/users/{id}");
    let r = client.send(Method::GET, &path, None).await?;
    if r.status == 404 {
        return Ok(None);
    }
    if !r.is_success() {
        return Err(classify::status(&Method::GET, &path, &r));
    }
    r.json()
        .as_ref()
        .and_then(parse_user)
        .map(Some)
        .ok_or_else(|| classify::bad_response(&Method::GET, &path, "expected a user object"))
}

/// Every role's name, by id (`GET /api/2/roles`, every page).
async fn role_names(client: &Client) -> Result<HashMap<u64, String>, ConnectorError> {
    const LIMIT: usize = 100;
    let mut out = HashMap::new();
    for page in 1.. {
        let path = format!("/api/2/roles?limit={LIMIT}&page={page}");
        let r = client.send(Method::GET, &path, None).await?;
        if !r.is_success() {
            return Err(classify::status(&Method::GET, &path, &r));
        }
        let items = r
            .json()
            .and_then(|v| v.as_array().cloned())
            .ok_or_else(|| {
                classify::bad_response(&Method::GET, &path, "expected a list of roles")
            })?;
        for role in &items {
            if let Some(id) = role.get("id").and_then(Value::as_u64) {
                let name = role.get("name").and_then(Value::as_str).unwrap_or("");
                out.insert(id, name.to_string());
            }
        }
        let total_pages = r
            .headers
            .get("total-pages")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let last = match total_pages {
            Some(t) => page >= t,
            None => items.len() < LIMIT,
        };
        if last || items.is_empty() {
            break;
        }
    }
    Ok(out)
}

/// The one user whose `field` equals `value`, if any: OneLogin's search is case-insensitive and
/// takes `*` as a wildcard, so every answer is checked here (external_id exactly).
pub async fn find(
    client: &Client,
    field: &str,
    value: &str,
) -> Result<Option<u64>, ConnectorError> {
    let path = format!("/api/2/users?{field}={}&limit=100", encode(value));
    let r = client.send(Method::GET, &path, None).await?;
    if !r.is_success() {
        return Err(classify::status(&Method::GET, &path, &r));
    }
    let items = r
        .json()
        .and_then(|v| v.as_array().cloned())
        .ok_or_else(|| classify::bad_response(&Method::GET, &path, "expected a list of users"))?;
    // Exact (external_id) or ASCII case-insensitive: a look-alike OneLogin's search folded
    // (`ｄａｖｅ` for `dave`) is left out with a warning.
    let mut exact: Vec<u64> = Vec::new();
    for u in &items {
        let v = text(u, field);
        let id = u.get("id").and_then(Value::as_u64);
        let holds = !v.is_empty()
            && if field == "external_id" {
                v == value
            } else {
                v.eq_ignore_ascii_case(value)
            };
        if holds {
            exact.extend(id);
        } else if !v.is_empty() && revoke_core::identifier::looks_alike(&v, value) {
            warn!(field = %field, value = %value, user_id = ?id, found = %v, "onelogin matched a user whose value only looks like the one asked for; left out");
        }
    }
    match exact.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        many => Err(ConnectorError::permanent(
            "ambiguous_user",
            format!(
                "{} OneLogin users have {field} {value:?} (ids {many:?}); expected one",
                many.len()
            ),
        )),
    }
}

/// Discovery of many subjects; the role names are read once for all of them.
pub async fn discover_many(
    client: &Client,
    cfg: &OneLoginConfig,
    instance: &str,
    subjects: &[Subject],
) -> Result<Vec<Discovery>, ConnectorError> {
    let mut names: Option<HashMap<u64, String>> = None;
    let mut out = Vec::with_capacity(subjects.len());
    for s in subjects {
        let mut d = Discovery::not_found(instance, s.id.clone());
        let mut hit = None;
        for (field, value) in lookups(cfg, instance, s) {
            if let Some(id) = find(client, field, &value).await? {
                hit = Some((field, value, id));
                break;
            }
        }
        let Some((field, value, id)) = hit else {
            out.push(d);
            continue;
        };
        let Some(user) = get_user(client, id).await? else {
            out.push(d);
            continue;
        };
        d.found = true;
        d.accounts
            .push(user.account().matched_by(format!("{field} = {value}")));
        let attrs: BTreeMap<String, String> = [
            ("user_id", user.id.to_string()),
            ("email", user.email.clone()),
            ("username", user.username.clone()),
            ("status", user.status.to_string()),
            ("status_name", status_name(user.status).to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        d.findings.push(Finding {
            connector: instance.to_string(),
            subject: s.id.clone(),
            kind: ACCOUNT.into(),
            target: format!("users/{}", user.id),
            attrs,
        });
        if cfg.remove_roles && !user.role_ids.is_empty() {
            if names.is_none() {
                names = Some(role_names(client).await?);
            }
            let names = names.as_ref();
            for rid in &user.role_ids {
                let name = names
                    .and_then(|n| n.get(rid))
                    .cloned()
                    .unwrap_or_else(|| format!("role {rid}"));
                d.findings.push(Finding {
                    connector: instance.to_string(),
                    subject: s.id.clone(),
                    kind: ROLE_MEMBERSHIP.into(),
                    target: format!("roles/{rid}/users/{}", user.id),
                    attrs: [
                        ("role_id".to_string(), rid.to_string()),
                        ("role_name".to_string(), name),
                        ("user_id".to_string(), user.id.to_string()),
                    ]
                    .into(),
                });
            }
        }
        out.push(d);
    }
    Ok(out)
}
