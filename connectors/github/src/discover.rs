//! Read-only: who the subject is on GitHub, and every access each configured org grants them.

use std::collections::BTreeSet;

use revoke_core::{ConnectorError, Discovery, ErrorClass, Finding, Subject};
use tracing::{debug, warn};

use crate::client::Client;
use crate::config::{DiscoveryMode, GithubConfig};
use crate::escape::is_login;
use crate::scan::{saml_logins, scan, OrgIndex, Wanted};

pub const ORG_MEMBERSHIP: &str = "org_membership";
pub const ORG_INVITATION: &str = "org_invitation";
pub const TEAM_MEMBERSHIP: &str = "team_membership";
pub const OUTSIDE_COLLABORATOR: &str = "outside_collaborator";
pub const REPOSITORY_COLLABORATOR: &str = "repository_collaborator";
pub const REPOSITORY_INVITATION: &str = "repository_invitation";
pub const CREDENTIAL_AUTHORIZATION: &str = "credential_authorization";
pub const PERSONAL_ACCESS_TOKEN: &str = "personal_access_token";

/// The subject's login from what we know without asking GitHub: the job's username for this
/// instance, the `logins` table (by email, id or employee id), or the subject id itself when
/// `match_subject_id` is on. A login that breaks GitHub's rules is an error, never sent.
pub fn known_login(
    cfg: &GithubConfig,
    instance: &str,
    subject: &Subject,
) -> Result<Option<String>, ConnectorError> {
    let explicit = subject
        .usernames
        .get(instance)
        .map(|l| (l, "the job's username"));
    let mapped = || {
        let keys = [
            subject.email.as_deref(),
            Some(subject.id.as_str()),
            subject.employee_id.as_deref(),
        ];
        keys.into_iter().flatten().find_map(|k| {
            cfg.logins
                .iter()
                .find(|(who, _)| who.eq_ignore_ascii_case(k))
                .map(|(_, l)| (l, "the logins table"))
        })
    };
    if let Some((login, from)) = explicit.or_else(mapped) {
        if !is_login(login) {
            return Err(ConnectorError::permanent(
                "invalid_login",
                format!("{from} gives {login:?} for {}, expected a GitHub login (letters, digits, hyphens)", subject.id),
            ));
        }
        return Ok(Some(login.to_ascii_lowercase()));
    }
    if cfg.match_subject_id && is_login(&subject.id) {
        return Ok(Some(subject.id.to_ascii_lowercase()));
    }
    Ok(None)
}

fn email_of(s: &Subject) -> Option<String> {
    s.email
        .as_deref()
        .or_else(|| s.id.contains('@').then_some(s.id.as_str()))
        .map(str::to_ascii_lowercase)
}

/// Whether a failed GraphQL scan should be tried again by REST (not when GitHub said stop or
/// refused our credentials: REST would meet the same answer).
fn worth_rest(e: &ConnectorError) -> bool {
    !matches!(e.class, ErrorClass::RateLimited { .. } | ErrorClass::Auth)
}

/// Every subject's accesses, one scan per org for all of them.
pub async fn discover_many(
    client: &Client,
    cfg: &GithubConfig,
    instance: &str,
    subjects: &[Subject],
) -> Result<Vec<Discovery>, ConnectorError> {
    let mut logins: Vec<Option<String>> = subjects
        .iter()
        .map(|s| known_login(cfg, instance, s))
        .collect::<Result<_, _>>()?;
    let emails: Vec<Option<String>> = subjects.iter().map(email_of).collect();

    if cfg.saml_sso {
        let unresolved: BTreeSet<String> = logins
            .iter()
            .zip(&emails)
            .filter(|(l, _)| l.is_none())
            .filter_map(|(_, e)| e.clone())
            .collect();
        if !unresolved.is_empty() {
            for org in &cfg.orgs {
                let map = saml_logins(client, org, &unresolved).await?;
                for (login, email) in logins.iter_mut().zip(&emails) {
                    if login.is_none() {
                        if let Some(l) = email.as_ref().and_then(|e| map.get(e)) {
                            *login = Some(l.to_ascii_lowercase());
                        }
                    }
                }
            }
        }
    }

    let wanted = Wanted {
        logins: logins.iter().flatten().cloned().collect(),
        emails: emails.iter().flatten().cloned().collect(),
    };
    let mut orgs = Vec::with_capacity(cfg.orgs.len());
    if !wanted.logins.is_empty() || !wanted.emails.is_empty() {
        for org in &cfg.orgs {
            let idx = match scan(client, cfg, org, &wanted, cfg.discovery).await {
                Err(e) if cfg.discovery == DiscoveryMode::Graphql && worth_rest(&e) => {
                    warn!(connector = %instance, org = %org, error = %e, "graphql scan failed; scanning by REST");
                    scan(client, cfg, org, &wanted, DiscoveryMode::Rest).await?
                }
                other => other?,
            };
            if !idx.exists {
                return Err(ConnectorError::permanent(
                    "org_not_found",
                    format!("organization {org:?} not found, or the credentials cannot see it"),
                ));
            }
            orgs.push(idx);
        }
    }

    Ok(subjects
        .iter()
        .zip(logins.iter().zip(&emails))
        .map(|(subject, (login, email))| {
            if login.is_none() {
                debug!(connector = %instance, subject = %subject.id, "no github login known for the subject");
            }
            let findings: Vec<Finding> = orgs
                .iter()
                .flat_map(|idx| findings(instance, subject, login.as_deref(), email.as_deref(), idx))
                .collect();
            Discovery {
                connector: instance.to_string(),
                subject: subject.id.clone(),
                found: !findings.is_empty(),
                findings,
            }
        })
        .collect())
}

fn finding(
    instance: &str,
    subject: &Subject,
    kind: &str,
    target: String,
    attrs: &[(&str, &str)],
) -> Finding {
    Finding {
        connector: instance.to_string(),
        subject: subject.id.clone(),
        kind: kind.to_string(),
        target,
        attrs: attrs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// One subject's accesses in one org.
fn findings(
    instance: &str,
    subject: &Subject,
    login: Option<&str>,
    email: Option<&str>,
    idx: &OrgIndex,
) -> Vec<Finding> {
    let org = idx.org.as_str();
    let mut out = Vec::new();
    let f = |kind: &str, target: String, attrs: &[(&str, &str)]| {
        finding(instance, subject, kind, target, attrs)
    };
    for inv in &idx.invitations {
        let by_login = login.is_some_and(|l| {
            inv.login
                .as_deref()
                .is_some_and(|il| il.eq_ignore_ascii_case(l))
        });
        let by_email = email.is_some_and(|e| {
            inv.email
                .as_deref()
                .is_some_and(|ie| ie.eq_ignore_ascii_case(e))
        });
        if by_login || by_email {
            let id = inv.id.to_string();
            out.push(f(
                ORG_INVITATION,
                format!("{org}/invitations/{id}"),
                &[
                    ("org", org),
                    ("invitation_id", &id),
                    ("login", inv.login.as_deref().unwrap_or("")),
                    ("email", inv.email.as_deref().unwrap_or("")),
                    ("role", &inv.role),
                ],
            ));
        }
    }
    let Some(login) = login else {
        return out;
    };
    let member = idx.members.get(login);
    if let Some(role) = member {
        out.push(f(
            ORG_MEMBERSHIP,
            org.to_string(),
            &[("org", org), ("login", login), ("role", role)],
        ));
    }
    for ((slug, l), role) in &idx.teams {
        if l == login {
            out.push(f(
                TEAM_MEMBERSHIP,
                format!("{org}/{slug}"),
                &[
                    ("org", org),
                    ("team", slug),
                    ("login", login),
                    ("role", role),
                ],
            ));
        }
    }
    let grants: Vec<(&String, &String)> = idx
        .collaborators
        .iter()
        .filter(|((_, l), _)| l == login)
        .map(|((repo, _), perm)| (repo, perm))
        .collect();
    if member.is_none() && !grants.is_empty() {
        let repos: Vec<&str> = grants.iter().map(|(r, _)| r.as_str()).collect();
        out.push(f(
            OUTSIDE_COLLABORATOR,
            org.to_string(),
            &[
                ("org", org),
                ("login", login),
                ("repositories", &repos.len().to_string()),
            ],
        ));
    }
    for (repo, perm) in &grants {
        out.push(f(
            REPOSITORY_COLLABORATOR,
            format!("{org}/{repo}"),
            &[
                ("org", org),
                ("repo", repo),
                ("login", login),
                ("permission", perm),
            ],
        ));
    }
    for inv in idx.repo_invitations.iter().filter(|i| i.login == login) {
        let id = inv.id.to_string();
        out.push(f(
            REPOSITORY_INVITATION,
            format!("{org}/{}/invitations/{id}", inv.repo),
            &[
                ("org", org),
                ("repo", &inv.repo),
                ("invitation_id", &id),
                ("login", login),
                ("permission", &inv.permission),
            ],
        ));
    }
    for c in idx.credentials.iter().filter(|c| c.login == login) {
        let id = c.id.to_string();
        out.push(f(
            CREDENTIAL_AUTHORIZATION,
            format!("{org}/credential-authorizations/{id}"),
            &[
                ("org", org),
                ("credential_id", &id),
                ("login", login),
                ("credential_type", &c.credential_type),
                ("hint", &c.hint),
            ],
        ));
    }
    for t in idx.tokens.iter().filter(|t| t.login == login) {
        let id = t.id.to_string();
        out.push(f(
            PERSONAL_ACCESS_TOKEN,
            format!("{org}/personal-access-tokens/{id}"),
            &[
                ("org", org),
                ("token_id", &id),
                ("login", login),
                ("token_name", &t.name),
            ],
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cfg(extra: serde_json::Value) -> GithubConfig {
        let mut v = json!({"orgs": ["acme"], "token": "t"});
        if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            m.extend(e.clone());
        }
        GithubConfig::from_value(&v).expect("config")
    }

    #[test]
    fn logins_come_from_the_job_the_table_or_the_id_when_allowed() {
        let mut s = Subject::new("E123");
        s.email = Some("Alice@Corp.example".into());
        assert_eq!(known_login(&cfg(json!({})), "gh", &s).expect("ok"), None);
        let c = cfg(json!({"logins": {"alice@corp.example": "Alice-GH"}}));
        assert_eq!(
            known_login(&c, "gh", &s).expect("ok").as_deref(),
            Some("alice-gh")
        );
        s.usernames.insert("gh".into(), "al1ce".into());
        assert_eq!(
            known_login(&c, "gh", &s).expect("ok").as_deref(),
            Some("al1ce")
        );
        let plain = Subject::new("bob");
        let c = cfg(json!({"match_subject_id": true}));
        assert_eq!(
            known_login(&c, "gh", &plain).expect("ok").as_deref(),
            Some("bob")
        );
        // An id that cannot be a login is never guessed from.
        assert_eq!(
            known_login(&c, "gh", &Subject::new("../x")).expect("ok"),
            None
        );
    }

    #[test]
    fn a_bad_explicit_login_is_refused_before_any_request() {
        let mut s = Subject::new("x");
        s.usernames.insert("gh".into(), "../x".into());
        let e = known_login(&cfg(json!({})), "gh", &s).expect_err("refused");
        assert_eq!(e.code, "invalid_login");
        assert!(e.message.contains("\"../x\""), "{}", e.message);
    }
}
