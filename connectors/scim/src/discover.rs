//! Read-only: find the leaver's SCIM user (by userName, then by email), whether it is active, and
//! the groups the app keeps for it.
//!
//! Requests per subject: 1 GET /ServiceProviderConfig per connector; 1 GET /Users?filter per
//! `match_by` tried until one matches; with `groups`, 1 GET /Groups?filter=members.value (paged)
//! when the user has no `groups` attribute.

use std::collections::BTreeMap;

use revoke_core::{Account, ConnectorError, Discovery, Finding, Subject};
use serde_json::Value;
use tracing::debug;

use crate::client::Client;
use crate::config::{MatchBy, ScimConfig};
use crate::escape::eq_filter;

pub const SCIM_USER: &str = "scim_user";
pub const GROUP_MEMBERSHIP: &str = "group_membership";

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// The user's primary email, else its first.
pub fn primary_email(user: &Value) -> Option<&str> {
    let emails = user.get("emails")?.as_array()?;
    emails
        .iter()
        .find(|e| e.get("primary").and_then(Value::as_bool) == Some(true))
        .or_else(|| emails.first())
        .and_then(|e| str_at(e, "value"))
}

/// The enterprise extension (RFC 7643 §4.3), where `employeeNumber` lives.
pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// The user as an [`Account`]: pinned to its SCIM `id`, answering to its userName, every email
/// value, its externalId and its employeeNumber.
pub fn user_account(user: &Value, id: &str) -> Account {
    let user_name = str_at(user, "userName").unwrap_or_default();
    let emails = user
        .get("emails")
        .and_then(Value::as_array)
        .map(|es| {
            es.iter()
                .filter_map(|e| str_at(e, "value"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let external = str_at(user, "externalId");
    let employee = user
        .get(ENTERPRISE_USER)
        .and_then(|e| str_at(e, "employeeNumber"));
    Account::new(id, "SCIM id", user_name)
        .answers_to([user_name])
        .answers_to(emails)
        .answers_to(external)
        .answers_to(employee)
}

/// Whether the user is active: `active` missing counts as active (RFC 7643 gives no default, and
/// an app that omits it still lets the user in).
pub fn is_active(user: &Value) -> bool {
    user.get("active").and_then(Value::as_bool) != Some(false)
}

/// Whether `user` really has the value we filtered on: the app is the judge of its filter, but a
/// lenient or broken filter (one that ignores it) must not make us act on someone else.
fn matches(user: &Value, by: MatchBy, value: &str) -> bool {
    match by {
        // userName is case-insensitive (RFC 7643 §4.1.1, caseExact false).
        MatchBy::UserName => {
            str_at(user, "userName").is_some_and(|u| u.to_lowercase() == value.to_lowercase())
        }
        MatchBy::Emails => user
            .get("emails")
            .and_then(Value::as_array)
            .is_some_and(|es| {
                es.iter()
                    .filter_map(|e| str_at(e, "value"))
                    .any(|e| e.eq_ignore_ascii_case(value))
            }),
    }
}

/// The one user whose `by` equals `value`; an error when the app lists more than one.
async fn find_by(
    client: &Client,
    by: MatchBy,
    value: &str,
) -> Result<Option<Value>, ConnectorError> {
    let attr = match by {
        MatchBy::UserName => "userName",
        MatchBy::Emails => "emails.value",
    };
    let filter = eq_filter(attr, value);
    let mut found: Vec<Value> = client
        .list("/Users", &filter, None)
        .await?
        .into_iter()
        .filter(|u| matches(u, by, value))
        .collect();
    if found.len() > 1 {
        let ids: Vec<&str> = found.iter().filter_map(|u| str_at(u, "id")).collect();
        return Err(ConnectorError::permanent(
            "ambiguous_user",
            format!(
                "expected one user with {filter}, found {}: {}",
                found.len(),
                ids.join(", ")
            ),
        ));
    }
    Ok(found.pop())
}

/// The subject's user, by each configured `match_by` in order.
pub async fn find_subject(
    client: &Client,
    cfg: &ScimConfig,
    instance: &str,
    subject: &Subject,
) -> Result<Option<(Value, MatchBy, String)>, ConnectorError> {
    for by in &cfg.match_by {
        let value = match by {
            MatchBy::UserName => Some(subject.username_for(instance)),
            MatchBy::Emails => subject.email.as_deref(),
        };
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            continue;
        };
        if let Some(u) = find_by(client, *by, value).await? {
            return Ok(Some((u, *by, value.to_string())));
        }
    }
    Ok(None)
}

/// The groups listing `user_id`, as (id, display name): the user's own `groups` attribute when
/// the app sends one, else a search of /Groups by member.
async fn groups_of(
    client: &Client,
    user: &Value,
    user_id: &str,
) -> Result<Vec<(String, String)>, ConnectorError> {
    let from = |g: &Value, id_key: &str| {
        let id = str_at(g, id_key)?.to_string();
        let name = str_at(g, "display")
            .or_else(|| str_at(g, "displayName"))
            .unwrap_or_default()
            .to_string();
        Some((id, name))
    };
    let mut out: Vec<(String, String)> = match user.get("groups") {
        Some(Value::Array(gs)) => gs.iter().filter_map(|g| from(g, "value")).collect(),
        _ => client
            .list(
                "/Groups",
                &eq_filter("members.value", user_id),
                Some("displayName"),
            )
            .await?
            .iter()
            .filter_map(|g| from(g, "id"))
            .collect(),
    };
    out.sort();
    out.dedup_by(|a, b| a.0 == b.0);
    Ok(out)
}

pub async fn discover(
    client: &Client,
    cfg: &ScimConfig,
    instance: &str,
    subject: &Subject,
) -> Result<Discovery, ConnectorError> {
    let not_found = Discovery::not_found(instance, subject.id.clone());
    // Learn the app's features now, so a wrong token fails discovery rather than the first apply.
    client.features().await?;
    let Some((user, by, value)) = find_subject(client, cfg, instance, subject).await? else {
        debug!(connector = %instance, subject = %subject.id, "no scim user for the subject");
        return Ok(not_found);
    };
    let Some(id) = str_at(&user, "id").filter(|i| !i.is_empty()) else {
        return Err(crate::classify::bad_response(
            "GET /Users",
            "expected the user to have an id, found none",
        ));
    };
    let finding = |kind: &str, target: &str, attrs: BTreeMap<String, String>| Finding {
        connector: instance.into(),
        subject: subject.id.clone(),
        kind: kind.into(),
        target: target.into(),
        attrs,
    };
    let mut attrs = BTreeMap::from([
        (
            "userName".to_string(),
            str_at(&user, "userName").unwrap_or_default().to_string(),
        ),
        ("active".to_string(), is_active(&user).to_string()),
        ("matched_by".to_string(), by.as_str().to_string()),
    ]);
    if let Some(e) = primary_email(&user) {
        attrs.insert("email".into(), e.to_string());
    }
    let mut findings = vec![finding(SCIM_USER, id, attrs)];
    if cfg.groups {
        for (gid, name) in groups_of(client, &user, id).await? {
            findings.push(finding(
                GROUP_MEMBERSHIP,
                &gid,
                BTreeMap::from([
                    ("display".to_string(), name),
                    ("user_id".to_string(), id.to_string()),
                ]),
            ));
        }
    }
    findings.sort();
    debug!(connector = %instance, subject = %subject.id, user_id = %id, groups = findings.len() - 1, "scim discovery");
    let account = user_account(&user, id).matched_by(format!("{} = {}", by.as_str(), value));
    Ok(Discovery {
        found: true,
        findings,
        accounts: vec![account],
        ..not_found
    })
}
