//! Read-only: everything an org grants to a set of people, in one pass over the org.
//!
//! GraphQL mode pages the org once for all of them: members with role, teams with members,
//! repositories with their direct collaborators (100 per page, nested connections followed up
//! only when a team or repository has more than 100). GitHub's GraphQL has no field for
//! pending invitations with ids, repository invitations, SSO credential authorizations or
//! fine-grained tokens, so those are REST lists, still one pass for all subjects.
//! REST mode (the fallback) asks per person where GitHub has no org-wide list.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::stream::{self, StreamExt, TryStreamExt};
use revoke_core::ConnectorError;
use serde_json::{json, Value};

use crate::client::Client;
use crate::config::{DiscoveryMode, GithubConfig};
use crate::escape::{query, seg};

pub const ORG_MEMBERS: &str = "query OrgMembers($org: String!, $after: String) {
  organization(login: $org) {
    membersWithRole(first: 100, after: $after) {
      pageInfo { hasNextPage endCursor }
      edges { role node { login databaseId id } }
    }
  }
}";

pub const ORG_TEAMS: &str = "query OrgTeams($org: String!, $after: String) {
  organization(login: $org) {
    teams(first: 100, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes {
        slug
        members(first: 100, membership: IMMEDIATE) {
          pageInfo { hasNextPage endCursor }
          edges { role node { login databaseId id } }
        }
      }
    }
  }
}";

pub const TEAM_MEMBERS: &str = "query TeamMembers($org: String!, $slug: String!, $after: String) {
  organization(login: $org) {
    team(slug: $slug) {
      members(first: 100, after: $after, membership: IMMEDIATE) {
        pageInfo { hasNextPage endCursor }
        edges { role node { login databaseId id } }
      }
    }
  }
}";

pub const ORG_REPOSITORIES: &str = "query OrgRepositories($org: String!, $after: String) {
  organization(login: $org) {
    repositories(first: 100, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes {
        name
        collaborators(first: 100, affiliation: DIRECT) {
          pageInfo { hasNextPage endCursor }
          edges { permission node { login databaseId id } }
        }
      }
    }
  }
}";

pub const REPOSITORY_COLLABORATORS: &str =
    "query RepositoryCollaborators($org: String!, $name: String!, $after: String) {
  repository(owner: $org, name: $name) {
    collaborators(first: 100, after: $after, affiliation: DIRECT) {
      pageInfo { hasNextPage endCursor }
      edges { permission node { login databaseId id } }
    }
  }
}";

pub const SAML_IDENTITIES: &str =
    "query SamlIdentities($org: String!, $userName: String, $login: String, $after: String) {
  organization(login: $org) {
    samlIdentityProvider {
      externalIdentities(first: 100, after: $after, userName: $userName, login: $login) {
        pageInfo { hasNextPage endCursor }
        edges {
          node {
            samlIdentity { nameId emails { value } }
            scimIdentity { username emails { value } }
            user { login databaseId }
          }
        }
      }
    }
  }
}";

/// Every GraphQL document this connector sends, for validation against GitHub's schema.
pub const QUERIES: &[&str] = &[
    ORG_MEMBERS,
    ORG_TEAMS,
    TEAM_MEMBERS,
    ORG_REPOSITORIES,
    REPOSITORY_COLLABORATORS,
    SAML_IDENTITIES,
];

/// Whom a scan looks for: lowercased logins and emails.
#[derive(Debug, Default, Clone)]
pub struct Wanted {
    pub logins: BTreeSet<String>,
    pub emails: BTreeSet<String>,
}

impl Wanted {
    fn login(&self, login: &str) -> bool {
        self.logins.contains(&login.to_ascii_lowercase())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub id: u64,
    pub login: Option<String>,
    pub email: Option<String>,
    pub role: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoInvitation {
    pub repo: String,
    pub id: u64,
    pub login: String,
    pub permission: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub id: u64,
    pub login: String,
    pub credential_type: String,
    /// The token's last eight characters or the SSH key's fingerprint, to name it to a person.
    pub hint: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub id: u64,
    pub login: String,
    pub name: String,
}

/// A GitHub user as GitHub itself names it: the durable numeric id (REST `id`, GraphQL
/// `databaseId`), which never comes to name anyone else, and the global node id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRef {
    pub id: u64,
    pub node_id: String,
}

impl UserRef {
    /// From a REST user object (`id`, `node_id`) or a GraphQL `User` (`databaseId`, `id`).
    pub fn of(user: &Value) -> Option<Self> {
        let rest = user.get("id").and_then(Value::as_u64);
        let gql = user.get("databaseId").and_then(Value::as_u64);
        let id = gql.or(rest)?;
        let node_id = match (gql, user.get("id"), user.get("node_id")) {
            (Some(_), Some(Value::String(n)), _) => n.clone(),
            (_, _, Some(Value::String(n))) => n.clone(),
            _ => String::new(),
        };
        Some(Self { id, node_id })
    }
}

/// The login named two users in one discovery: renamed and taken by someone else meanwhile.
pub fn login_moved(login: &str, a: u64, b: u64) -> ConnectorError {
    ConnectorError::retryable(
        "login_moved",
        format!("login {login:?} named user id {a} and then user id {b} during one discovery (renamed and reused meanwhile); discover again"),
    )
}

/// Remembers that `login` is `user`; the same login seen as two ids is an error.
pub fn note_user(
    users: &mut BTreeMap<String, UserRef>,
    login: &str,
    user: Option<UserRef>,
) -> Result<(), ConnectorError> {
    let Some(user) = user else { return Ok(()) };
    let login = login.to_ascii_lowercase();
    match users.get(&login) {
        Some(known) if known.id != user.id => Err(login_moved(&login, known.id, user.id)),
        Some(known) if !known.node_id.is_empty() || user.node_id.is_empty() => Ok(()),
        _ => {
            users.insert(login, user);
            Ok(())
        }
    }
}

/// One SAML external identity of an org linked to a GitHub user, with what it answers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamlEntry {
    /// The linked user's login, lowercased.
    pub login: String,
    pub user: Option<UserRef>,
    pub name_id: String,
    /// The SAML identity's emails, then the SCIM identity's userName and emails.
    pub identifiers: Vec<String>,
}

/// What one org grants to the wanted people (logins lowercased as keys).
#[derive(Debug, Default, Clone)]
pub struct OrgIndex {
    pub org: String,
    pub exists: bool,
    /// login -> the user, for every wanted login the scan saw with its id
    pub users: BTreeMap<String, UserRef>,
    /// login -> role (admin, member)
    pub members: BTreeMap<String, String>,
    pub invitations: Vec<Invitation>,
    /// (team slug, login) -> role (maintainer, member)
    pub teams: BTreeMap<(String, String), String>,
    /// (repository, login) -> permission (pull, triage, push, maintain, admin)
    pub collaborators: BTreeMap<(String, String), String>,
    pub repo_invitations: Vec<RepoInvitation>,
    pub credentials: Vec<Credential>,
    pub tokens: Vec<Token>,
}

fn s(v: &Value, ptr: &str) -> String {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn lower(v: &Value, ptr: &str) -> String {
    s(v, ptr).to_ascii_lowercase()
}

/// GraphQL's repository permission in REST's words, so both modes give the same findings.
fn permission(gql: &str) -> String {
    match gql {
        "READ" => "pull",
        "WRITE" => "push",
        other => return other.to_ascii_lowercase(),
    }
    .to_string()
}

/// The highest permission of a REST collaborator (its `permissions` flags).
fn rest_permission(c: &Value) -> String {
    ["admin", "maintain", "push", "triage", "pull"]
        .into_iter()
        .find(|p| c.pointer(&format!("/permissions/{p}")) == Some(&Value::Bool(true)))
        .unwrap_or("pull")
        .to_string()
}

struct Page {
    items: Vec<Value>,
    next: Option<String>,
}

fn page(conn: &Value) -> Page {
    let items = conn
        .get("edges")
        .or_else(|| conn.get("nodes"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let next = (conn.pointer("/pageInfo/hasNextPage") == Some(&Value::Bool(true)))
        .then(|| s(conn, "/pageInfo/endCursor"));
    Page { items, next }
}

/// Pages one connection: `at` points at it in `data`; a null org is reported as missing.
async fn paged(
    client: &Client,
    query: &str,
    vars: Value,
    at: &str,
    start: Option<String>,
) -> Result<Option<Vec<Value>>, ConnectorError> {
    let mut after = start;
    let mut out = Vec::new();
    loop {
        let mut v = vars.clone();
        v["after"] = after.clone().map(Value::String).unwrap_or(Value::Null);
        let data = match client.graphql(query, v).await {
            Ok(d) => d,
            Err(e) if e.code == "org_not_found" => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(conn) = data.pointer(at).filter(|c| !c.is_null()) else {
            return Ok(None);
        };
        let p = page(conn);
        out.extend(p.items);
        match p.next {
            Some(c) if !c.is_empty() => after = Some(c),
            _ => return Ok(Some(out)),
        }
    }
}

/// The org's SAML identities that are linked to a user, filtered on GitHub's side by NameID
/// (`user_name`) or by the user's `login` when given; each result is still checked by the
/// caller, since a filter we did not apply ourselves proves nothing.
pub async fn saml_identities(
    client: &Client,
    org: &str,
    user_name: Option<&str>,
    login: Option<&str>,
) -> Result<Vec<SamlEntry>, ConnectorError> {
    let edges = paged(
        client,
        SAML_IDENTITIES,
        json!({"org": org, "userName": user_name, "login": login}),
        "/organization/samlIdentityProvider/externalIdentities",
        None,
    )
    .await?
    .unwrap_or_default();
    let mut out = Vec::new();
    for e in edges {
        let login = lower(&e, "/node/user/login");
        if login.is_empty() {
            continue;
        }
        let mut identifiers = Vec::new();
        let values = |ptr: &str| -> Vec<String> {
            e.pointer(ptr)
                .and_then(Value::as_array)
                .map(|list| list.iter().map(|m| lower(m, "/value")).collect())
                .unwrap_or_default()
        };
        identifiers.extend(values("/node/samlIdentity/emails"));
        identifiers.push(lower(&e, "/node/scimIdentity/username"));
        identifiers.extend(values("/node/scimIdentity/emails"));
        identifiers.retain(|i| !i.is_empty());
        out.push(SamlEntry {
            user: e.pointer("/node/user").and_then(UserRef::of),
            name_id: lower(&e, "/node/samlIdentity/nameId"),
            login,
            identifiers,
        });
    }
    Ok(out)
}

/// Everything `org` grants to `wanted`.
pub async fn scan(
    client: &Client,
    cfg: &GithubConfig,
    org: &str,
    wanted: &Wanted,
    mode: DiscoveryMode,
) -> Result<OrgIndex, ConnectorError> {
    let mut idx = OrgIndex {
        org: org.to_string(),
        ..OrgIndex::default()
    };
    let org_path = format!("/orgs/{}", seg(org));
    let found = match mode {
        DiscoveryMode::Graphql => graphql_scan(client, org, wanted, &mut idx).await?,
        DiscoveryMode::Rest => {
            rest_scan(client, cfg.read_concurrency as usize, org, wanted, &mut idx).await?
        }
    };
    if !found {
        return Ok(idx);
    }
    idx.exists = true;

    // Pending org invitations (by login or by email), with the ids to cancel them by.
    for inv in client
        .list(&format!("{org_path}/invitations"))
        .await?
        .unwrap_or_default()
    {
        let login = inv
            .get("login")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase);
        let email = inv.get("email").and_then(Value::as_str).map(str::to_string);
        let hit = login.as_deref().is_some_and(|l| wanted.login(l))
            || email
                .as_deref()
                .is_some_and(|e| wanted.emails.contains(&e.to_ascii_lowercase()));
        if hit {
            idx.invitations.push(Invitation {
                id: inv.get("id").and_then(Value::as_u64).unwrap_or_default(),
                login,
                email,
                role: s(&inv, "/role"),
            });
        }
    }

    if cfg.repository_invitations && !wanted.logins.is_empty() {
        let repos = repo_names(client, org).await?;
        let found: Vec<Vec<(RepoInvitation, Option<UserRef>)>> = stream::iter(repos)
            .map(|repo| async move {
                let path = format!("/repos/{}/{}/invitations", seg(org), seg(&repo));
                let list = client.list(&path).await?.unwrap_or_default();
                Ok::<_, ConnectorError>(
                    list.iter()
                        .filter(|i| wanted.login(&s(i, "/invitee/login")))
                        .map(|i| {
                            let inv = RepoInvitation {
                                repo: repo.clone(),
                                id: i.get("id").and_then(Value::as_u64).unwrap_or_default(),
                                login: lower(i, "/invitee/login"),
                                permission: s(i, "/permissions"),
                            };
                            (inv, i.get("invitee").and_then(UserRef::of))
                        })
                        .collect(),
                )
            })
            .buffer_unordered(cfg.read_concurrency as usize)
            .try_collect()
            .await?;
        for (inv, user) in found.into_iter().flatten() {
            note_user(&mut idx.users, &inv.login, user)?;
            idx.repo_invitations.push(inv);
        }
        idx.repo_invitations
            .sort_by(|a, b| (&a.repo, a.id).cmp(&(&b.repo, b.id)));
    }

    if cfg.saml_sso && !wanted.logins.is_empty() {
        let path = match single(&wanted.logins) {
            Some(l) => format!("{org_path}/credential-authorizations?login={}", query(l)),
            None => format!("{org_path}/credential-authorizations"),
        };
        for c in client.list(&path).await?.unwrap_or_default() {
            if wanted.login(&s(&c, "/login")) {
                let hint = c
                    .get("token_last_eight")
                    .and_then(Value::as_str)
                    .or_else(|| c.get("fingerprint").and_then(Value::as_str))
                    .unwrap_or_default()
                    .to_string();
                idx.credentials.push(Credential {
                    id: c
                        .get("credential_id")
                        .and_then(Value::as_u64)
                        .unwrap_or_default(),
                    login: lower(&c, "/login"),
                    credential_type: s(&c, "/credential_type"),
                    hint,
                });
            }
        }
    }

    if cfg.fine_grained_tokens() && !wanted.logins.is_empty() {
        let path = match single(&wanted.logins) {
            Some(l) => format!("{org_path}/personal-access-tokens?owner%5B%5D={}", query(l)),
            None => format!("{org_path}/personal-access-tokens"),
        };
        for t in client.list(&path).await?.unwrap_or_default() {
            if wanted.login(&s(&t, "/owner/login")) {
                note_user(
                    &mut idx.users,
                    &s(&t, "/owner/login"),
                    t.get("owner").and_then(UserRef::of),
                )?;
                idx.tokens.push(Token {
                    id: t.get("id").and_then(Value::as_u64).unwrap_or_default(),
                    login: lower(&t, "/owner/login"),
                    name: s(&t, "/token_name"),
                });
            }
        }
    }
    Ok(idx)
}

fn single(set: &BTreeSet<String>) -> Option<&String> {
    (set.len() == 1).then(|| set.iter().next()).flatten()
}

async fn repo_names(client: &Client, org: &str) -> Result<Vec<String>, ConnectorError> {
    Ok(client
        .list(&format!("/orgs/{}/repos?type=all", seg(org)))
        .await?
        .unwrap_or_default()
        .iter()
        .map(|r| s(r, "/name"))
        .collect())
}

/// Members, teams and direct collaborators by GraphQL; false when the org does not exist.
async fn graphql_scan(
    client: &Client,
    org: &str,
    wanted: &Wanted,
    idx: &mut OrgIndex,
) -> Result<bool, ConnectorError> {
    let Some(members) = paged(
        client,
        ORG_MEMBERS,
        json!({"org": org}),
        "/organization/membersWithRole",
        None,
    )
    .await?
    else {
        return Ok(false);
    };
    for e in members {
        let login = lower(&e, "/node/login");
        if wanted.logins.contains(&login) {
            note_user(&mut idx.users, &login, e.get("node").and_then(UserRef::of))?;
            idx.members
                .insert(login, s(&e, "/role").to_ascii_lowercase());
        }
    }

    let teams = paged(
        client,
        ORG_TEAMS,
        json!({"org": org}),
        "/organization/teams",
        None,
    )
    .await?
    .unwrap_or_default();
    for t in teams {
        let slug = s(&t, "/slug");
        let first = page(t.get("members").unwrap_or(&Value::Null));
        let mut edges = first.items;
        if let Some(cursor) = first.next {
            edges.extend(
                paged(
                    client,
                    TEAM_MEMBERS,
                    json!({"org": org, "slug": slug}),
                    "/organization/team/members",
                    Some(cursor),
                )
                .await?
                .unwrap_or_default(),
            );
        }
        for e in edges {
            let login = lower(&e, "/node/login");
            if wanted.logins.contains(&login) {
                note_user(&mut idx.users, &login, e.get("node").and_then(UserRef::of))?;
                idx.teams
                    .insert((slug.clone(), login), s(&e, "/role").to_ascii_lowercase());
            }
        }
    }

    let repos = paged(
        client,
        ORG_REPOSITORIES,
        json!({"org": org}),
        "/organization/repositories",
        None,
    )
    .await?
    .unwrap_or_default();
    for r in repos {
        let name = s(&r, "/name");
        let first = page(r.get("collaborators").unwrap_or(&Value::Null));
        let mut edges = first.items;
        if let Some(cursor) = first.next {
            edges.extend(
                paged(
                    client,
                    REPOSITORY_COLLABORATORS,
                    json!({"org": org, "name": name}),
                    "/repository/collaborators",
                    Some(cursor),
                )
                .await?
                .unwrap_or_default(),
            );
        }
        for e in edges {
            let login = lower(&e, "/node/login");
            if wanted.logins.contains(&login) {
                note_user(&mut idx.users, &login, e.get("node").and_then(UserRef::of))?;
                idx.collaborators
                    .insert((name.clone(), login), permission(&s(&e, "/permission")));
            }
        }
    }
    Ok(true)
}

/// The same by REST: per person where GitHub has no org-wide list with roles.
async fn rest_scan(
    client: &Client,
    read_concurrency: usize,
    org: &str,
    wanted: &Wanted,
    idx: &mut OrgIndex,
) -> Result<bool, ConnectorError> {
    let org_path = format!("/orgs/{}", seg(org));
    if client.get_opt(&org_path).await?.is_none() {
        return Ok(false);
    }
    for login in &wanted.logins {
        let path = format!("{org_path}/memberships/{}", seg(login));
        if let Some(m) = client.get_opt(&path).await? {
            // A pending membership names the invited user too: its id is the pin.
            if lower(&m, "/user/login") == *login {
                note_user(&mut idx.users, login, m.get("user").and_then(UserRef::of))?;
            }
            if s(&m, "/state") == "active" {
                idx.members.insert(login.clone(), s(&m, "/role"));
            }
        }
    }
    if !idx.members.is_empty() {
        let teams = client
            .list(&format!("{org_path}/teams"))
            .await?
            .unwrap_or_default();
        for t in teams {
            let slug = s(&t, "/slug");
            for login in idx.members.keys().cloned().collect::<Vec<_>>() {
                let path = format!(
                    "{org_path}/teams/{}/memberships/{}",
                    seg(&slug),
                    seg(&login)
                );
                if let Some(m) = client.get_opt(&path).await? {
                    if s(&m, "/state") == "active" {
                        idx.teams.insert((slug.clone(), login), s(&m, "/role"));
                    }
                }
            }
        }
    }
    let repos = repo_names(client, org).await?;
    type Grant = ((String, String), String, Option<UserRef>);
    let found: Vec<Vec<Grant>> = stream::iter(repos)
        .map(|repo| async move {
            let path = format!(
                "/repos/{}/{}/collaborators?affiliation=direct",
                seg(org),
                seg(&repo)
            );
            let list = client.list(&path).await?.unwrap_or_default();
            Ok::<_, ConnectorError>(
                list.iter()
                    .filter(|c| wanted.login(&s(c, "/login")))
                    .map(|c| {
                        let who = (repo.clone(), lower(c, "/login"));
                        (who, rest_permission(c), UserRef::of(c))
                    })
                    .collect(),
            )
        })
        .buffer_unordered(read_concurrency)
        .try_collect()
        .await?;
    for ((repo, login), permission, user) in found.into_iter().flatten() {
        note_user(&mut idx.users, &login, user)?;
        idx.collaborators.insert((repo, login), permission);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphql_permissions_read_as_rest_role_names() {
        assert_eq!(permission("READ"), "pull");
        assert_eq!(permission("WRITE"), "push");
        assert_eq!(permission("ADMIN"), "admin");
        assert_eq!(permission("TRIAGE"), "triage");
        assert_eq!(permission("MAINTAIN"), "maintain");
    }

    #[test]
    fn a_page_reads_edges_or_nodes_and_the_next_cursor() {
        let p =
            page(&json!({"pageInfo": {"hasNextPage": true, "endCursor": "Y3Vy"}, "edges": [1, 2]}));
        assert_eq!((p.items.len(), p.next.as_deref()), (2, Some("Y3Vy")));
        let p = page(&json!({"pageInfo": {"hasNextPage": false, "endCursor": null}, "nodes": [1]}));
        assert_eq!((p.items.len(), p.next), (1, None));
    }
}
