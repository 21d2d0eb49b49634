//! Read-only: find the leaver's SCIM user by every identifier the subject has, whether it is
//! active, and the groups that list it.
//!
//! The subject's identifiers are tried in order (see [`lookups`]): its username for this
//! instance as userName, its email as an email, its employee id as employeeNumber and externalId,
//! then the identifier the job was raised with as each of those (`revokectl plan --user X` sets
//! only that one). Each is one `GET /Users?filter=` whose every returned user is checked here:
//! an app may ignore the filter (Canaille lists every user) and must not make us act on someone
//! else.
//!
//! Requests per subject: 1 GET /ServiceProviderConfig per connector; 1 GET /Users?filter per
//! lookup tried until one matches; with `groups`, none more when the user has a `groups`
//! attribute, else 1 GET /Groups?filter=members.value (paged) whose groups are each checked to
//! list the user.

use std::collections::BTreeMap;

use revoke_core::{Account, ClientDomain, ConnectorError, Discovery, Finding, Subject};
use serde_json::Value;
use tracing::{debug, warn};

use crate::client::Client;
use crate::config::{MatchBy, ScimConfig};
use crate::escape::{eq_filter, filter_value};
use crate::member::{entries_naming, groups_listed_by, Who};

pub const SCIM_USER: &str = "scim_user";
pub const GROUP_MEMBERSHIP: &str = "group_membership";

/// The enterprise extension (RFC 7643 §4.3), where `employeeNumber` lives.
pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// What the pinned id is called in plans and errors.
pub const ID_KIND: &str = "SCIM id";

pub fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
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

/// Every value of `by` the user holds.
fn values_of(user: &Value, by: MatchBy) -> Vec<&str> {
    match by {
        MatchBy::UserName => str_at(user, "userName").into_iter().collect(),
        MatchBy::Emails => user
            .get("emails")
            .and_then(Value::as_array)
            .map(|es| es.iter().filter_map(|e| str_at(e, "value")).collect())
            .unwrap_or_default(),
        MatchBy::EmployeeNumber => user
            .get(ENTERPRISE_USER)
            .and_then(|e| str_at(e, "employeeNumber"))
            .into_iter()
            .collect(),
        MatchBy::ExternalId => str_at(user, "externalId").into_iter().collect(),
    }
}

/// The user as an [`Account`]: pinned to its SCIM `id`, answering to its userName, every email
/// value, its externalId and its employeeNumber.
pub fn user_account(user: &Value, id: &str) -> Account {
    let mut account = Account::new(id, ID_KIND, str_at(user, "userName").unwrap_or_default());
    for by in MatchBy::ALL {
        account = account.answers_to(values_of(user, by));
    }
    account
}

/// Whether the user is active: `active` missing counts as active (RFC 7643 gives no default, and
/// an app that omits it still lets the user in).
pub fn is_active(user: &Value) -> bool {
    user.get("active").and_then(Value::as_bool) != Some(false)
}

/// Whether `user` really holds `value` as `by`: the app is the judge of its filter, but a
/// lenient or broken filter (one that ignores it) must not make us act on someone else.
/// externalId is case-exact (RFC 7643 §3.1); userName, emails and employeeNumber ignore case,
/// and nothing more: an app that folds width or compatibility forms in its filter (`ｄａｖｅ`
/// for `dave`) finds a user that does not hold the value
/// ([`revoke_core::identifier::same_ignoring_case`]).
fn holds(user: &Value, by: MatchBy, value: &str) -> bool {
    values_of(user, by).into_iter().any(|v| match by {
        MatchBy::ExternalId => v == value,
        _ => revoke_core::identifier::same_ignoring_case(value, v),
    })
}

/// The (lookup, value) pairs tried for `subject`, in order, limited to `match_by`: the
/// subject's fields at their own kind first, then the identifier the job was raised with as
/// every kind (an HR event may carry only an employee id, `plan --user` only one string).
pub fn lookups(cfg: &ScimConfig, instance: &str, subject: &Subject) -> Vec<(MatchBy, String)> {
    let mut out: Vec<(MatchBy, String)> = Vec::new();
    let mut push = |by: MatchBy, v: &str| {
        let v = v.trim();
        if !v.is_empty()
            && cfg.match_by.contains(&by)
            && !out.iter().any(|(b, x)| *b == by && x == v)
        {
            out.push((by, v.to_string()));
        }
    };
    push(MatchBy::UserName, subject.username_for(instance));
    if let Some(e) = &subject.email {
        push(MatchBy::Emails, e);
    }
    if let Some(e) = &subject.employee_id {
        push(MatchBy::EmployeeNumber, e);
        push(MatchBy::ExternalId, e);
    }
    let id = subject.id.as_str();
    if id.contains('@') {
        push(MatchBy::Emails, id);
    }
    push(MatchBy::EmployeeNumber, id);
    push(MatchBy::ExternalId, id);
    push(MatchBy::UserName, id);
    // Apps whose userName is the email.
    if let Some(e) = &subject.email {
        push(MatchBy::UserName, e);
    }
    out
}

/// The one user that holds `value` as `by`, checked here whatever the filter returned; an
/// error when more than one does. An app that cannot search the enterprise extension or
/// externalId (400) is taken as having no user by it.
pub async fn find_by(
    client: &Client,
    by: MatchBy,
    value: &str,
) -> Result<Option<Value>, ConnectorError> {
    let filter = eq_filter(by.filter_attribute(), value);
    let listed = match client.list("/Users", &filter, None).await {
        Ok(l) => l,
        Err(e)
            if e.code == "bad_request"
                && matches!(by, MatchBy::EmployeeNumber | MatchBy::ExternalId) =>
        {
            debug!(lookup = by.as_str(), error = %e, "the app cannot search users by this attribute");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let (mut found, others): (Vec<Value>, Vec<Value>) =
        listed.into_iter().partition(|u| holds(u, by, value));
    // An app that ignores the filter returns everyone (debug); one that folds it returns a
    // look-alike, which is worth a warning.
    for u in &others {
        let id = str_at(u, "id").unwrap_or_default();
        if values_of(u, by)
            .into_iter()
            .any(|v| revoke_core::identifier::looks_alike(v, value))
        {
            warn!(lookup = by.as_str(), value = %value, user_id = %id, "the app matched a user whose value only looks like the one asked for; left out");
        } else {
            debug!(lookup = by.as_str(), value = %value, user_id = %id, "the app returned a user that does not hold the value asked for; left out");
        }
    }
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

/// The subject's user, by each lookup in order: the user, and which lookup found it.
pub async fn find_subject(
    client: &Client,
    cfg: &ScimConfig,
    instance: &str,
    subject: &Subject,
) -> Result<Option<(Value, MatchBy, String)>, ConnectorError> {
    for (by, value) in lookups(cfg, instance, subject) {
        if let Some(u) = find_by(client, by, &value).await? {
            return Ok(Some((u, by, value)));
        }
    }
    Ok(None)
}

/// The groups listing the user, as (id, display name): the user's own `groups` attribute when
/// the app sends one, else a search of /Groups by member in which every returned group is
/// checked to list the user (an app may ignore the filter and return every group).
async fn groups_of(
    client: &Client,
    user: &Value,
    user_id: &str,
) -> Result<Vec<(String, String)>, ConnectorError> {
    let mut out = match groups_listed_by(user) {
        Some(gs) => gs,
        None => {
            let who = Who::of(user, user_id);
            let mut out = Vec::new();
            let listed = client
                .list(
                    "/Groups",
                    &eq_filter("members.value", user_id),
                    Some("displayName,members"),
                )
                .await?;
            for g in &listed {
                let Some(gid) = str_at(g, "id") else { continue };
                if entries_naming(client, g, &who)
                    .await?
                    .is_some_and(|e| !e.is_empty())
                {
                    let name = str_at(g, "displayName").unwrap_or_default();
                    out.push((gid.to_string(), name.to_string()));
                }
            }
            out
        }
    };
    out.sort();
    out.dedup_by(|a, b| a.0 == b.0);
    Ok(out)
}

/// Whether the user has an address at the client's domain: an email value, or a userName that
/// is an address.
fn at_client(user: &Value, domain: &ClientDomain) -> Option<String> {
    values_of(user, MatchBy::Emails)
        .into_iter()
        .chain(values_of(user, MatchBy::UserName))
        .find(|v| domain.matches_email(v))
        .map(str::to_string)
}

/// A departing client's users: every user with an address at the domain (or a subdomain),
/// each as a leaver would be found. One `GET /Users?filter=emails.value ew "<domain>"`, every
/// returned user checked here (an app may ignore the filter, and `ew` also matches
/// `notclientco.com`); an app that refuses `ew` (400) is listed whole and checked the same way.
pub async fn discover_client(
    client: &Client,
    cfg: &ScimConfig,
    instance: &str,
    subject: &Subject,
    domain: &ClientDomain,
) -> Result<Discovery, ConnectorError> {
    let mut out = Discovery::not_found(instance, subject.id.clone());
    client.features().await?;
    let filter = format!("emails.value ew {}", filter_value(domain.as_str()));
    let listed = match client.list("/Users", &filter, None).await {
        Ok(l) => l,
        Err(e) if e.code == "bad_request" => {
            debug!(connector = %instance, error = %e, "the app cannot filter users with ew; listing every user");
            client.list("/Users", "", None).await?
        }
        Err(e) => return Err(e),
    };
    for user in listed {
        let Some(address) = at_client(&user, domain) else {
            continue;
        };
        let Some(id) = str_at(&user, "id").filter(|i| !i.is_empty()) else {
            return Err(crate::classify::bad_response(
                "GET /Users",
                "expected the user to have an id, found none",
            ));
        };
        if out.accounts.iter().any(|a| a.id == id) {
            continue;
        }
        let (findings, account) =
            user_findings(client, cfg, instance, subject, &user, id, "email", &address).await?;
        out.findings.extend(findings);
        out.accounts.push(account);
    }
    out.findings.sort();
    out.found = !out.accounts.is_empty();
    debug!(connector = %instance, subject = %subject.id, users = out.accounts.len(), "scim client discovery");
    Ok(out)
}

pub async fn discover(
    client: &Client,
    cfg: &ScimConfig,
    instance: &str,
    subject: &Subject,
) -> Result<Discovery, ConnectorError> {
    if let Some(domain) = subject.client_domain() {
        return discover_client(client, cfg, instance, subject, domain).await;
    }
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
    let (findings, account) = user_findings(
        client,
        cfg,
        instance,
        subject,
        &user,
        id,
        by.as_str(),
        &value,
    )
    .await?;
    debug!(connector = %instance, subject = %subject.id, user_id = %id, groups = findings.len() - 1, "scim discovery");
    Ok(Discovery {
        found: true,
        findings,
        accounts: vec![account],
        ..not_found
    })
}

/// One user's findings (the user, then each group listing it) and its account, matched by
/// `by = value`.
#[allow(clippy::too_many_arguments)]
async fn user_findings(
    client: &Client,
    cfg: &ScimConfig,
    instance: &str,
    subject: &Subject,
    user: &Value,
    id: &str,
    by: &str,
    value: &str,
) -> Result<(Vec<Finding>, Account), ConnectorError> {
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
            str_at(user, "userName").unwrap_or_default().to_string(),
        ),
        ("active".to_string(), is_active(user).to_string()),
        ("matched_by".to_string(), by.to_string()),
    ]);
    if let Some(e) = primary_email(user) {
        attrs.insert("email".into(), e.to_string());
    }
    let mut findings = vec![finding(SCIM_USER, id, attrs)];
    if cfg.groups {
        for (gid, name) in groups_of(client, user, id).await? {
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
    let account = user_account(user, id).matched_by(format!("{by} = {value}"));
    Ok((findings, account))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cfg(extra: Value) -> ScimConfig {
        let mut v = json!({"base_url": "https://x/scim/v2", "token": "t"});
        if let (Some(v), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            v.extend(e.clone());
        }
        ScimConfig::from_value(&v).expect("config")
    }

    #[test]
    fn one_identifier_is_tried_as_every_kind_and_fields_at_their_own_kind_first() {
        let mut s = Subject::new("1004");
        s.email = Some("dave@example.org".into());
        let got: Vec<(&str, String)> = lookups(&cfg(json!({})), "app", &s)
            .into_iter()
            .map(|(b, v)| (b.as_str(), v))
            .collect();
        let want: Vec<(&str, String)> = [
            ("userName", "1004"),
            ("emails", "dave@example.org"),
            ("employeeNumber", "1004"),
            ("externalId", "1004"),
            ("userName", "dave@example.org"),
        ]
        .iter()
        .map(|(b, v)| (*b, v.to_string()))
        .collect();
        assert_eq!(got, want);
        let only_mail = lookups(
            &cfg(json!({"match_by": "emails"})),
            "app",
            &Subject::new("zoe@vendorx.test"),
        );
        assert_eq!(
            only_mail,
            vec![(MatchBy::Emails, "zoe@vendorx.test".into())]
        );
    }

    #[test]
    fn the_account_answers_to_every_identifier() {
        let u = json!({"id": "u1", "userName": "dave", "externalId": "X-9",
            "emails": [{"value": "dave@example.org"}, {"value": "d@alias.test"}],
            ENTERPRISE_USER: {"employeeNumber": "1004"}});
        let a = user_account(&u, "u1");
        assert_eq!(
            (a.id.as_str(), a.id_kind.as_str(), a.name.as_str()),
            ("u1", ID_KIND, "dave")
        );
        let ids: Vec<&str> = a.identifiers.iter().map(String::as_str).collect();
        assert_eq!(
            ids,
            ["1004", "X-9", "d@alias.test", "dave", "dave@example.org"]
        );
        assert!(holds(&u, MatchBy::ExternalId, "X-9") && !holds(&u, MatchBy::ExternalId, "x-9"));
        assert!(holds(&u, MatchBy::Emails, "D@ALIAS.test"));
    }
}
