//! Read-only: who the subject is on GitHub, and every access each configured org grants them.
//!
//! Every access found belongs to an account: the subject's GitHub user, pinned by its numeric
//! user id (REST `id`, GraphQL `databaseId`), which GitHub never gives to anyone else even when
//! the login is renamed and taken by a new user; or a pending org invitation that names no user
//! of ours (sent to an email), pinned by the invitation's own id.

use std::collections::{BTreeMap, BTreeSet};

use revoke_core::{Account, ClientDomain, ConnectorError, Discovery, ErrorClass, Finding, Subject};
use tracing::{debug, warn};

use crate::client::Client;
use crate::config::{DiscoveryMode, GithubConfig};
use crate::escape::{is_email, is_login, seg};
use crate::scan::{note_user, saml_identities, scan, OrgIndex, SamlEntry, UserRef, Wanted};

pub const ORG_MEMBERSHIP: &str = "org_membership";
pub const ORG_INVITATION: &str = "org_invitation";
pub const TEAM_MEMBERSHIP: &str = "team_membership";
pub const OUTSIDE_COLLABORATOR: &str = "outside_collaborator";
pub const REPOSITORY_COLLABORATOR: &str = "repository_collaborator";
pub const REPOSITORY_INVITATION: &str = "repository_invitation";
pub const CREDENTIAL_AUTHORIZATION: &str = "credential_authorization";
pub const PERSONAL_ACCESS_TOKEN: &str = "personal_access_token";

/// The `id_kind` of a GitHub user's account: its numeric id.
pub const USER_ID: &str = "user id";
/// The `id_kind` of a pending org invitation that names no user of ours.
pub const INVITATION_ID: &str = "org invitation id";

/// The account id of an org invitation. Prefixed: invitation ids and user ids are separate
/// number ranges at GitHub, and one discovery may hold both.
pub fn invitation_account(invitation_id: &str) -> String {
    format!("invitation:{invitation_id}")
}

/// The subject's login from what we know without asking GitHub, with where it came from: the
/// job's username for this instance, the `logins` table (by email, id or employee id), or the
/// subject id itself when `match_subject_id` is on. A login that breaks GitHub's rules is an
/// error, never sent; so is, with `match_subject_id`, a subject id that is neither a login nor
/// an email.
pub fn known_login(
    cfg: &GithubConfig,
    instance: &str,
    subject: &Subject,
) -> Result<Option<(String, String)>, ConnectorError> {
    let explicit = subject
        .usernames
        .get(instance)
        .map(|l| (l, "the job's username".to_string()));
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
                .map(|(who, l)| (l, format!("the logins table: {who}")))
        })
    };
    if let Some((login, from)) = explicit.or_else(mapped) {
        if !is_login(login) {
            return Err(ConnectorError::permanent(
                "invalid_login",
                format!("{from} gives {login:?} for {}, expected a GitHub login (letters, digits, hyphens)", subject.id),
            ));
        }
        return Ok(Some((login.to_ascii_lowercase(), from)));
    }
    if cfg.match_subject_id {
        if is_login(&subject.id) {
            return Ok(Some((
                subject.id.to_ascii_lowercase(),
                "the subject id (match_subject_id)".to_string(),
            )));
        }
        if !is_email(&subject.id) {
            return Err(ConnectorError::permanent(
                "invalid_login",
                format!(
                    "match_subject_id takes the subject id {:?} as the GitHub login, expected a login (letters, digits, hyphens) or an email",
                    subject.id
                ),
            ));
        }
    }
    Ok(None)
}

fn email_of(s: &Subject) -> Option<String> {
    s.email
        .as_deref()
        .or_else(|| is_email(&s.id).then_some(s.id.as_str()))
        .map(str::to_ascii_lowercase)
}

/// Whether a failed GraphQL scan should be tried again by REST (not when GitHub said stop or
/// refused our credentials: REST would meet the same answer).
fn worth_rest(e: &ConnectorError) -> bool {
    !matches!(e.class, ErrorClass::RateLimited { .. } | ErrorClass::Auth)
}

/// What the orgs' SAML (and SCIM) identities say: logins by email, and what each login answers to.
#[derive(Debug, Default)]
struct Saml {
    /// email or NameID -> login
    logins: BTreeMap<String, String>,
    /// login -> the identities' NameIDs, emails and SCIM userNames
    identifiers: BTreeMap<String, BTreeSet<String>>,
    users: BTreeMap<String, UserRef>,
}

impl Saml {
    fn add(&mut self, e: SamlEntry) -> Result<(), ConnectorError> {
        note_user(&mut self.users, &e.login, e.user)?;
        let ids = self.identifiers.entry(e.login.clone()).or_default();
        for n in std::iter::once(&e.name_id).chain(&e.identifiers) {
            if !n.is_empty() {
                ids.insert(n.clone());
                self.logins
                    .entry(n.clone())
                    .or_insert_with(|| e.login.clone());
            }
        }
        Ok(())
    }
}

/// The SAML identities of every org that can name one of the subjects: filtered on GitHub's
/// side by login or NameID for a single subject, the whole list for a batch.
async fn saml_pass(
    client: &Client,
    cfg: &GithubConfig,
    logins: &[Option<(String, String)>],
    emails: &[Option<String>],
) -> Result<Saml, ConnectorError> {
    let mut out = Saml::default();
    if logins.iter().all(Option::is_none) && emails.iter().all(Option::is_none) {
        return Ok(out);
    }
    // (NameID filter, login filter): one subject is looked up, a batch reads the whole list.
    let (by_name, by_login) = match (logins, emails) {
        ([Some((l, _))], _) => (None, Some(l.as_str())),
        ([None], [Some(e)]) => (Some(e.as_str()), None),
        _ => (None, None),
    };
    let wanted_logins: BTreeSet<&str> = logins.iter().flatten().map(|(l, _)| l.as_str()).collect();
    let wanted_emails: BTreeSet<&str> = emails.iter().flatten().map(String::as_str).collect();
    for org in &cfg.orgs {
        for e in saml_identities(client, org, by_name, by_login).await? {
            let ours = wanted_logins.contains(e.login.as_str())
                || std::iter::once(&e.name_id)
                    .chain(&e.identifiers)
                    .any(|i| wanted_emails.contains(i.as_str()));
            if ours {
                out.add(e)?;
            }
        }
    }
    Ok(out)
}

/// Every subject's accesses, one scan per org for all of them.
pub async fn discover_many(
    client: &Client,
    cfg: &GithubConfig,
    instance: &str,
    subjects: &[Subject],
) -> Result<Vec<Discovery>, ConnectorError> {
    let mut logins: Vec<Option<(String, String)>> = subjects
        .iter()
        .map(|s| known_login(cfg, instance, s))
        .collect::<Result<_, _>>()?;
    let emails: Vec<Option<String>> = subjects.iter().map(email_of).collect();

    let saml = if cfg.saml_sso {
        saml_pass(client, cfg, &logins, &emails).await?
    } else {
        Saml::default()
    };
    for (login, email) in logins.iter_mut().zip(&emails) {
        if login.is_none() {
            if let Some(l) = email.as_ref().and_then(|e| saml.logins.get(e)) {
                let how = format!("the SAML identity {}", email.as_deref().unwrap_or_default());
                *login = Some((l.clone(), how));
            }
        }
    }

    let wanted = Wanted {
        logins: logins.iter().flatten().map(|(l, _)| l.clone()).collect(),
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

    // Every login's user as the scans saw it; the same login as two ids is a rename meanwhile.
    let mut users = saml.users.clone();
    for idx in &orgs {
        for (login, u) in &idx.users {
            note_user(&mut users, login, Some(u.clone()))?;
        }
    }

    let mut out = Vec::with_capacity(subjects.len());
    for (subject, (login, email)) in subjects.iter().zip(logins.iter().zip(&emails)) {
        let login = login.as_ref();
        if login.is_none() {
            debug!(connector = %instance, subject = %subject.id, "no github login known for the subject");
        }
        let mut findings: Vec<Finding> = orgs
            .iter()
            .flat_map(|idx| {
                findings(
                    instance,
                    subject,
                    login.map(|(l, _)| l.as_str()),
                    email.as_deref(),
                    idx,
                )
            })
            .collect();
        let mut accounts = Vec::new();
        if let Some((login, how)) = login {
            let theirs = |f: &Finding| f.attrs.get("login") == Some(login);
            let user = match users.get(login) {
                Some(u) => Some(u.clone()),
                None if findings.iter().any(theirs) => user_by_login(client, login).await?,
                None => None,
            };
            match user {
                Some(u) => {
                    let id = u.id.to_string();
                    for f in findings.iter_mut().filter(|f| theirs(f)) {
                        f.attrs.insert("user_id".into(), id.clone());
                    }
                    if findings.iter().any(theirs) {
                        let mut also: Vec<String> = vec![login.clone(), id.clone(), u.node_id];
                        also.extend(saml.identifiers.get(login).into_iter().flatten().cloned());
                        accounts.push(
                            Account::new(id, USER_ID, login.clone())
                                .answers_to(also)
                                .matched_by(format!("login {login} ({how})")),
                        );
                    }
                }
                None => {
                    // No such user any more: an invitation by that login is cancelled by its
                    // own id below; nothing else can be held by a user who does not exist.
                    let gone: Vec<String> = findings
                        .iter()
                        .filter(|f| theirs(f) && f.kind != ORG_INVITATION)
                        .map(|f| format!("{} {}", f.kind, f.target))
                        .collect();
                    if !gone.is_empty() {
                        warn!(connector = %instance, subject = %subject.id, login = %login, left_out = ?gone, "github has no user with this login: its accesses are left out");
                    }
                    findings.retain(|f| !theirs(f) || f.kind == ORG_INVITATION);
                }
            }
        }
        // Invitations that name no user of ours: each is its own account, by its own id.
        for f in findings
            .iter()
            .filter(|f| f.kind == ORG_INVITATION && !f.attrs.contains_key("user_id"))
        {
            let attr = |k: &str| f.attrs.get(k).cloned().unwrap_or_default();
            let (email, inv_login) = (attr("email"), attr("login"));
            let name = if email.is_empty() {
                inv_login.clone()
            } else {
                email.clone()
            };
            let why = if email.is_empty() {
                format!("invitation to login {inv_login}")
            } else {
                format!("invitation email = {email}")
            };
            accounts.push(
                Account::new(
                    invitation_account(&attr("invitation_id")),
                    INVITATION_ID,
                    name,
                )
                .answers_to([email, inv_login, attr("invitation_id")])
                .matched_by(why),
            );
        }
        out.push(Discovery {
            connector: instance.to_string(),
            subject: subject.id.clone(),
            found: !findings.is_empty(),
            findings,
            accounts,
            notes: Vec::new(),
        });
    }
    Ok(out)
}

/// A departing client's people on GitHub, as one discovery of the client: the outside
/// collaborators whose public email (GitHub shows only a verified one) is at the client's
/// domain, the people whose SAML identity is (with `saml_sso`), the `logins` table's entries
/// for addresses at it, and pending org invitations sent to addresses at it. Each of them is then
/// discovered as a person would be, in one scan per org, and every account says why it is the
/// client's. Org members are taken only on a SAML identity or the logins table, never on a
/// public email alone.
pub async fn discover_client(
    client: &Client,
    cfg: &GithubConfig,
    instance: &str,
    subject: &Subject,
    domain: &ClientDomain,
) -> Result<Discovery, ConnectorError> {
    // login -> why it is the client's
    let mut people: BTreeMap<String, String> = BTreeMap::new();
    let mut emails: BTreeSet<String> = BTreeSet::new();
    let mut notes: Vec<String> = Vec::new();
    for (who, login) in &cfg.logins {
        if domain.matches_email(who) {
            if !is_login(login) {
                return Err(ConnectorError::permanent(
                    "invalid_login",
                    format!("the logins table gives {login:?} for {who}, expected a GitHub login (letters, digits, hyphens)"),
                ));
            }
            people
                .entry(login.to_ascii_lowercase())
                .or_insert_with(|| format!("the logins table: {who}"));
        }
    }
    for org in &cfg.orgs {
        let org_path = format!("/orgs/{}", seg(org));
        let Some(outside) = client
            .list(&format!("{org_path}/outside_collaborators"))
            .await?
        else {
            return Err(ConnectorError::permanent(
                "org_not_found",
                format!("organization {org:?} not found, or the credentials cannot see it"),
            ));
        };
        for u in outside {
            let login = u
                .get("login")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_ascii_lowercase();
            if !is_login(&login) || people.contains_key(&login) {
                continue;
            }
            let Some(full) = client.get_opt(&format!("/users/{}", seg(&login))).await? else {
                continue;
            };
            // Renamed between the two reads: the login now names someone else.
            if UserRef::of(&full).map(|r| r.id) != UserRef::of(&u).map(|r| r.id) {
                warn!(connector = %instance, login = %login, "outside collaborator renamed during discovery; left for the next plan");
                notes.push(format!(
                    "outside collaborator {login} of {org} was renamed while discovery read it: not checked against {domain}; plan again"
                ));
                continue;
            }
            if let Some(e) = full.get("email").and_then(serde_json::Value::as_str) {
                if domain.matches_email(e) {
                    people.insert(
                        login,
                        format!("outside collaborator of {org} with public email {e}"),
                    );
                }
            }
        }
        if cfg.saml_sso {
            for e in saml_identities(client, org, None, None).await? {
                let at = std::iter::once(&e.name_id)
                    .chain(&e.identifiers)
                    .find(|i| domain.matches_email(i));
                if let Some(i) = at {
                    people
                        .entry(e.login.clone())
                        .or_insert_with(|| format!("SAML identity {i} in {org}"));
                }
            }
        }
        for inv in client
            .list(&format!("{org_path}/invitations"))
            .await?
            .unwrap_or_default()
        {
            if let Some(e) = inv.get("email").and_then(serde_json::Value::as_str) {
                if domain.matches_email(e) {
                    emails.insert(e.to_ascii_lowercase());
                }
            }
        }
    }
    // Each person of the client, as a subject of their own: by login, or by the invited email.
    let persons: Vec<Subject> = people
        .keys()
        .map(|login| {
            let mut s = Subject::new(format!("{}#{login}", subject.id));
            s.usernames.insert(instance.to_string(), login.clone());
            s
        })
        .chain(emails.iter().map(|e| {
            let mut s = Subject::new(e.clone());
            s.email = Some(e.clone());
            s
        }))
        .collect();
    let mut out = Discovery::not_found(instance, &subject.id);
    out.notes = notes;
    if persons.is_empty() {
        return Ok(out);
    }
    for d in discover_many(client, cfg, instance, &persons).await? {
        for mut f in d.findings {
            f.subject = subject.id.clone();
            out.findings.push(f);
        }
        for mut a in d.accounts {
            if let Some(why) = people.get(&a.name.to_ascii_lowercase()) {
                a.matched_by = why.clone();
            }
            if !out.accounts.iter().any(|b| b.id == a.id) {
                out.accounts.push(a);
            }
        }
    }
    out.findings
        .sort_by(|a, b| (&a.kind, &a.target).cmp(&(&b.kind, &b.target)));
    out.findings.dedup();
    out.accounts.sort_by(|a, b| a.id.cmp(&b.id));
    out.found = !out.findings.is_empty();
    Ok(out)
}

/// `GET /users/{login}`: the user a login names now, for a login the scans saw without its id
/// (an invitation by login, a credential authorization); `None` when no user has it.
async fn user_by_login(client: &Client, login: &str) -> Result<Option<UserRef>, ConnectorError> {
    let Some(u) = client.get_opt(&format!("/users/{}", seg(login))).await? else {
        return Ok(None);
    };
    let named = u
        .get("login")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    match UserRef::of(&u) {
        Some(user) if named.eq_ignore_ascii_case(login) => Ok(Some(user)),
        _ => Err(ConnectorError::permanent(
            "bad_response",
            format!("GET /users/{login}: expected the user {login} with an id, found {named:?}"),
        )),
    }
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

    fn login_of(c: &GithubConfig, s: &Subject) -> Option<String> {
        known_login(c, "gh", s).expect("ok").map(|(l, _)| l)
    }

    #[test]
    fn logins_come_from_the_job_the_table_or_the_id_when_allowed() {
        let mut s = Subject::new("E123");
        s.email = Some("Alice@Corp.example".into());
        assert_eq!(login_of(&cfg(json!({})), &s), None);
        let c = cfg(json!({"logins": {"alice@corp.example": "Alice-GH"}}));
        assert_eq!(login_of(&c, &s).as_deref(), Some("alice-gh"));
        s.usernames.insert("gh".into(), "al1ce".into());
        assert_eq!(login_of(&c, &s).as_deref(), Some("al1ce"));
        let plain = Subject::new("bob");
        let c = cfg(json!({"match_subject_id": true}));
        assert_eq!(login_of(&c, &plain).as_deref(), Some("bob"));
        // An email as the subject id is looked for as an email, not refused.
        assert_eq!(login_of(&c, &Subject::new("bob@corp.example")), None);
        // Without match_subject_id, an id that cannot be a login is never guessed from.
        assert_eq!(login_of(&cfg(json!({})), &Subject::new("../x")), None);
    }

    #[test]
    fn with_match_subject_id_an_id_that_is_no_login_is_refused() {
        let c = cfg(json!({"match_subject_id": true}));
        for bad in [
            "../x", "a/b", "?", "#", "%2F", "\"q\"", "'q'", "*)(uid=*", "a b", "",
        ] {
            let e = known_login(&c, "gh", &Subject::new(bad)).expect_err(bad);
            assert_eq!(e.code, "invalid_login", "{bad}");
            assert!(!e.is_retryable(), "{bad}");
        }
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
