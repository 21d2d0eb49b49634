//! The REST operations, answering with the bodies GitHub's OpenAPI description declares
//! (`ghec.json`): every required field filled, URLs built from the request's own base

use std::sync::Arc;

use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::world::{key, seed_time, Org, Permission, Repo, Role, Team, World};
use super::{error, lock, Here, Shared, DOCS_REST};

type S = State<Arc<Shared>>;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/orgs/{org}", get(get_org))
        .route("/user/{account_id}", get(get_user_by_id))
        .route("/users/{username}", get(get_user))
        .route(
            "/orgs/{org}/memberships/{username}",
            get(get_membership).delete(delete_membership),
        )
        .route("/orgs/{org}/invitations", get(list_org_invitations))
        .route(
            "/orgs/{org}/invitations/{invitation_id}",
            axum::routing::delete(cancel_org_invitation),
        )
        .route(
            "/orgs/{org}/outside_collaborators",
            get(list_outside_collaborators),
        )
        .route(
            "/orgs/{org}/outside_collaborators/{username}",
            axum::routing::delete(remove_outside_collaborator),
        )
        .route("/orgs/{org}/teams", get(list_teams))
        .route("/orgs/{org}/teams/{team_slug}", get(get_team))
        .route(
            "/orgs/{org}/teams/{team_slug}/memberships/{username}",
            get(get_team_membership).delete(delete_team_membership),
        )
        .route("/orgs/{org}/repos", get(list_repos))
        .route(
            "/repos/{owner}/{repo}/collaborators",
            get(list_collaborators),
        )
        .route(
            "/repos/{owner}/{repo}/collaborators/{username}",
            get(check_collaborator).delete(remove_collaborator),
        )
        .route(
            "/repos/{owner}/{repo}/invitations",
            get(list_repo_invitations),
        )
        .route(
            "/repos/{owner}/{repo}/invitations/{invitation_id}",
            axum::routing::delete(delete_repo_invitation),
        )
        .route(
            "/orgs/{org}/credential-authorizations",
            get(list_credential_authorizations),
        )
        .route(
            "/orgs/{org}/credential-authorizations/{credential_id}",
            axum::routing::delete(delete_credential_authorization),
        )
        .route("/orgs/{org}/personal-access-tokens", get(list_pat_grants))
        .route(
            "/orgs/{org}/personal-access-tokens/{pat_id}",
            post(update_pat_grant),
        )
        .route(
            "/app/installations/{installation_id}/access_tokens",
            post(installation_token),
        )
}

/// GitHub's 404 for an unknown route
pub(crate) async fn no_route() -> Response {
    not_found()
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "Not Found", DOCS_REST)
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// GitHub's legacy global node id: base64 of `0<len>:<Type><id>`
pub(crate) fn node_id(kind: &str, id: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("0{}:{kind}{id}", kind.len()))
}

/// Percent-encodes a path segment so URLs stay valid `uri`s whatever the login
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `simple-user` (also the base of `collaborator`)
fn user(base: &str, world: &mut World, login: &str) -> Value {
    user_of_type(base, world.user_id(login), login, "User")
}

fn user_of_type(base: &str, id: u64, login: &str, kind: &str) -> Value {
    let u = format!("{base}/users/{}", seg(login));
    json!({
        "login": login,
        "id": id,
        "node_id": node_id(kind, id),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        "gravatar_id": "",
        "url": u,
        "html_url": format!("https://github.com/{}", seg(login)),
        "followers_url": format!("{u}/followers"),
        "following_url": format!("{u}/following{{/other_user}}"),
        "gists_url": format!("{u}/gists{{/gist_id}}"),
        "starred_url": format!("{u}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{u}/subscriptions"),
        "organizations_url": format!("{u}/orgs"),
        "repos_url": format!("{u}/repos"),
        "events_url": format!("{u}/events{{/privacy}}"),
        "received_events_url": format!("{u}/received_events"),
        "type": kind,
        "site_admin": false,
        "user_view_type": "public",
    })
}

/// `organization-simple`
fn org_simple(base: &str, o: &Org) -> Value {
    let u = format!("{base}/orgs/{}", seg(&o.login));
    json!({
        "login": o.login,
        "id": o.id,
        "node_id": node_id("Organization", o.id),
        "url": u,
        "repos_url": format!("{u}/repos"),
        "events_url": format!("{u}/events"),
        "hooks_url": format!("{u}/hooks"),
        "issues_url": format!("{u}/issues"),
        "members_url": format!("{u}/members{{/member}}"),
        "public_members_url": format!("{u}/public_members{{/member}}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{}?v=4", o.id),
        "description": null,
    })
}

/// `organization-full` (and `team-organization`, which has the same required fields)
fn org_full(base: &str, o: &Org) -> Value {
    let mut v = org_simple(base, o);
    let created = time(seed_time(o.id));
    let private = o.repos.values().filter(|r| r.private).count();
    let extra = json!({
        "name": o.login,
        "html_url": format!("https://github.com/{}", seg(&o.login)),
        "has_organization_projects": true,
        "has_repository_projects": true,
        "public_repos": o.repos.len() - private,
        "public_gists": 0,
        "followers": 0,
        "following": 0,
        "type": "Organization",
        "total_private_repos": private,
        "owned_private_repos": private,
        "collaborators": o.outside_collaborators().len(),
        "two_factor_requirement_enabled": true,
        "default_repository_permission": "read",
        "members_can_create_repositories": false,
        "plan": { "name": "enterprise", "space": 976_562_499, "private_repos": 999_999, "filled_seats": o.members.len(), "seats": 10_000 },
        "created_at": created,
        "updated_at": created,
        "archived_at": null,
    });
    merge(&mut v, extra);
    v
}

fn merge(v: &mut Value, extra: Value) {
    if let (Value::Object(a), Value::Object(b)) = (v, extra) {
        a.extend(b);
    }
}

/// `minimal-repository`
fn repo_json(base: &str, o: &Org, r: &Repo) -> Value {
    let full = format!("{}/{}", o.login, r.name);
    let u = format!("{base}/repos/{}/{}", seg(&o.login), seg(&r.name));
    json!({
        "id": r.id,
        "node_id": node_id("Repository", r.id),
        "name": r.name,
        "full_name": full,
        "owner": user_of_type(base, o.id, &o.login, "Organization"),
        "private": r.private,
        "visibility": if r.private { "private" } else { "public" },
        "html_url": format!("https://github.com/{}/{}", seg(&o.login), seg(&r.name)),
        "description": null,
        "fork": false,
        "url": u,
        "archive_url": format!("{u}/{{archive_format}}{{/ref}}"),
        "assignees_url": format!("{u}/assignees{{/user}}"),
        "blobs_url": format!("{u}/git/blobs{{/sha}}"),
        "branches_url": format!("{u}/branches{{/branch}}"),
        "collaborators_url": format!("{u}/collaborators{{/collaborator}}"),
        "comments_url": format!("{u}/comments{{/number}}"),
        "commits_url": format!("{u}/commits{{/sha}}"),
        "compare_url": format!("{u}/compare/{{base}}...{{head}}"),
        "contents_url": format!("{u}/contents/{{+path}}"),
        "contributors_url": format!("{u}/contributors"),
        "deployments_url": format!("{u}/deployments"),
        "downloads_url": format!("{u}/downloads"),
        "events_url": format!("{u}/events"),
        "forks_url": format!("{u}/forks"),
        "git_commits_url": format!("{u}/git/commits{{/sha}}"),
        "git_refs_url": format!("{u}/git/refs{{/sha}}"),
        "git_tags_url": format!("{u}/git/tags{{/sha}}"),
        "hooks_url": format!("{u}/hooks"),
        "issue_comment_url": format!("{u}/issues/comments{{/number}}"),
        "issue_events_url": format!("{u}/issues/events{{/number}}"),
        "issues_url": format!("{u}/issues{{/number}}"),
        "keys_url": format!("{u}/keys{{/key_id}}"),
        "labels_url": format!("{u}/labels{{/name}}"),
        "languages_url": format!("{u}/languages"),
        "merges_url": format!("{u}/merges"),
        "milestones_url": format!("{u}/milestones{{/number}}"),
        "notifications_url": format!("{u}/notifications{{?since,all,participating}}"),
        "pulls_url": format!("{u}/pulls{{/number}}"),
        "releases_url": format!("{u}/releases{{/id}}"),
        "stargazers_url": format!("{u}/stargazers"),
        "statuses_url": format!("{u}/statuses/{{sha}}"),
        "subscribers_url": format!("{u}/subscribers"),
        "subscription_url": format!("{u}/subscription"),
        "tags_url": format!("{u}/tags"),
        "teams_url": format!("{u}/teams"),
        "trees_url": format!("{u}/git/trees{{/sha}}"),
        "created_at": time(seed_time(r.id)),
        "updated_at": time(seed_time(r.id)),
        "archived": false,
        "disabled": false,
    })
}

fn team_urls(base: &str, o: &Org, t: &Team) -> (String, String) {
    (
        format!("{base}/organizations/{}/team/{}", o.id, t.id),
        format!(
            "https://github.com/orgs/{}/teams/{}",
            seg(&o.login),
            seg(&t.slug)
        ),
    )
}

/// `team`
fn team_json(base: &str, o: &Org, t: &Team) -> Value {
    let (u, html) = team_urls(base, o, t);
    json!({
        "id": t.id,
        "node_id": node_id("Team", t.id),
        "url": u,
        "html_url": html,
        "name": t.name,
        "slug": t.slug,
        "description": null,
        "privacy": "closed",
        "notification_setting": "notifications_enabled",
        "permission": "pull",
        "members_url": format!("{u}/members{{/member}}"),
        "repositories_url": format!("{u}/repos"),
        "parent": null,
        "type": "organization",
        "organization_id": o.id,
    })
}

/// `team-full`
fn team_full(base: &str, o: &Org, t: &Team) -> Value {
    let (u, html) = team_urls(base, o, t);
    json!({
        "id": t.id,
        "node_id": node_id("Team", t.id),
        "url": u,
        "html_url": html,
        "name": t.name,
        "slug": t.slug,
        "description": null,
        "privacy": "closed",
        "notification_setting": "notifications_enabled",
        "permission": "pull",
        "members_url": format!("{u}/members{{/member}}"),
        "repositories_url": format!("{u}/repos"),
        "parent": null,
        "members_count": t.members.len(),
        "repos_count": 0,
        "created_at": time(seed_time(t.id)),
        "updated_at": time(seed_time(t.id)),
        "organization": org_full(base, o),
        "type": "organization",
        "organization_id": o.id,
    })
}

fn permissions(p: Permission) -> Value {
    json!({
        "pull": p >= Permission::Pull,
        "triage": p >= Permission::Triage,
        "push": p >= Permission::Push,
        "maintain": p >= Permission::Maintain,
        "admin": p >= Permission::Admin,
    })
}

/// `collaborator`
fn collaborator(base: &str, world: &mut World, login: &str, p: Permission) -> Value {
    let mut v = user(base, world, login);
    merge(
        &mut v,
        json!({ "permissions": permissions(p), "role_name": p.role_name() }),
    );
    v
}

/// Query parameters, percent-decoded, in order (repeated keys kept)
fn params(here: &Here) -> Vec<(String, String)> {
    here.query
        .as_deref()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// One page of `items` as GitHub pages lists: `per_page` (default 30, at most 100), `page`
/// (from 1), and a `Link` header with prev/next/last/first pointing back the way the client came
fn paged(here: &Here, items: Vec<Value>) -> Response {
    let ps = params(here);
    let per_page = param(&ps, "per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(30)
        .min(100);
    let page = param(&ps, "page")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1);
    let last = items.len().div_ceil(per_page).max(1);
    let body: Vec<Value> = items
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .collect();

    let host = here.base.trim_end_matches("/api/v3");
    let kept: Vec<String> = here
        .query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty() && kv.split('=').next() != Some("page"))
        .map(str::to_owned)
        .collect();
    let link_to = |n: usize| {
        let mut q = kept.clone();
        q.push(format!("page={n}"));
        format!("<{host}{}?{}>", here.path, q.join("&"))
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(format!("{}; rel=\"prev\"", link_to((page - 1).min(last))));
    }
    if page < last {
        links.push(format!("{}; rel=\"next\"", link_to(page + 1)));
        links.push(format!("{}; rel=\"last\"", link_to(last)));
    }
    if page > 1 {
        links.push(format!("{}; rel=\"first\"", link_to(1)));
    }
    let mut r = Json(body).into_response();
    if !links.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&links.join(", ")) {
            r.headers_mut().insert(http::header::LINK, v);
        }
    }
    r
}

async fn get_org(
    State(s): S,
    Extension(here): Extension<Here>,
    Path(org): Path<String>,
) -> Response {
    let world = s.world();
    match world.org_ref(&org) {
        Some(o) => Json(org_full(&here.base, o)).into_response(),
        None => not_found(),
    }
}

/// `public-user`: what anyone may read of an account (an email only where the profile shows one)
fn public_user(base: &str, id: u64, login: &str, email: Option<&str>) -> Value {
    let mut v = user_of_type(base, id, login, "User");
    let created = time(seed_time(id % 100_000));
    merge(
        &mut v,
        json!({
            "name": null, "company": null, "blog": "", "location": null, "email": email,
            "hireable": null, "bio": null, "public_repos": 0, "public_gists": 0,
            "followers": 0, "following": 0, "created_at": created, "updated_at": created,
        }),
    );
    v
}

/// `GET /user/{account_id}`: the account with this durable id, under its current login
async fn get_user_by_id(
    State(s): S,
    Extension(here): Extension<Here>,
    Path(account_id): Path<String>,
) -> Response {
    let world = s.world();
    let Ok(id) = account_id.parse::<u64>() else {
        return not_found();
    };
    match world.login_of(id) {
        Some(login) => {
            Json(public_user(&here.base, id, &login, world.public_email(id))).into_response()
        }
        None => not_found(),
    }
}

/// `GET /users/{username}`: whoever holds this login now
async fn get_user(
    State(s): S,
    Extension(here): Extension<Here>,
    Path(username): Path<String>,
) -> Response {
    let mut world = s.world();
    if !world.user_exists(&username) {
        return not_found();
    }
    let id = world.user_id(&username);
    let login = world.login_of(id).unwrap_or(username);
    Json(public_user(&here.base, id, &login, world.public_email(id))).into_response()
}

async fn get_membership(
    State(s): S,
    Extension(here): Extension<Here>,
    Path((org, username)): Path<(String, String)>,
) -> Response {
    let mut world = s.world();
    let Some(o) = world.org_ref(&org) else {
        return not_found();
    };
    let (login, state, role) = if let Some((login, role)) = o.members.get(&key(&username)) {
        (login.clone(), "active", *role)
    } else if let Some(inv) = o.pending_invitation(&username) {
        (inv.login.clone().unwrap_or_default(), "pending", inv.role)
    } else {
        return not_found();
    };
    let org_json = org_simple(&here.base, o);
    let org_url = org_json["url"].clone();
    let body = json!({
        "url": format!("{}/orgs/{}/memberships/{}", here.base, seg(&org), seg(&login)),
        "state": state,
        "role": role.as_str(),
        "direct_membership": true,
        "organization_url": org_url,
        "organization": org_json,
        "user": user(&here.base, &mut world, &login),
        "permissions": { "can_create_repository": role == Role::Admin },
    });
    Json(body).into_response()
}

async fn delete_membership(State(s): S, Path((org, username)): Path<(String, String)>) -> Response {
    let mut world = s.world();
    let Some(o) = world.org_mut(&org) else {
        return not_found();
    };
    if o.remove_member(&username) {
        return no_content();
    }
    let k = key(&username);
    let before = o.invitations.len();
    o.invitations
        .retain(|i| i.login.as_deref().map(key).as_deref() != Some(k.as_str()));
    if o.invitations.len() < before {
        no_content()
    } else {
        not_found()
    }
}

async fn list_org_invitations(
    State(s): S,
    Extension(here): Extension<Here>,
    Path(org): Path<String>,
) -> Response {
    let mut world = s.world();
    let Some(o) = world.org_ref(&org) else {
        return not_found();
    };
    let (org_id, invitations) = (o.id, o.invitations.clone());
    let items = invitations
        .iter()
        .map(|i| {
            json!({
                "id": i.id,
                "node_id": node_id("OrganizationInvitation", i.id),
                "login": i.login,
                "email": i.email,
                "role": match i.role { Role::Admin => "admin", Role::Member => "direct_member" },
                "created_at": time(i.created_at),
                "failed_at": null,
                "failed_reason": null,
                "inviter": user(&here.base, &mut world, &i.inviter),
                "team_count": 0,
                "invitation_teams_url": format!("{}/organizations/{org_id}/invitations/{}/teams", here.base, i.id),
                "invitation_source": "member",
            })
        })
        .collect();
    paged(&here, items)
}

async fn cancel_org_invitation(
    State(s): S,
    Path((org, invitation_id)): Path<(String, String)>,
) -> Response {
    let mut world = s.world();
    let (Some(o), Ok(id)) = (world.org_mut(&org), invitation_id.parse::<u64>()) else {
        return not_found();
    };
    let before = o.invitations.len();
    o.invitations.retain(|i| i.id != id);
    if o.invitations.len() < before {
        no_content()
    } else {
        not_found()
    }
}

async fn list_outside_collaborators(
    State(s): S,
    Extension(here): Extension<Here>,
    Path(org): Path<String>,
) -> Response {
    let mut world = s.world();
    let Some(o) = world.org_ref(&org) else {
        return not_found();
    };
    let logins = o.outside_collaborators();
    let items = logins
        .iter()
        .map(|l| user(&here.base, &mut world, l))
        .collect();
    paged(&here, items)
}

/// GitHub's spec declares only 204 and 422: removing someone who collaborates on nothing is a 204
async fn remove_outside_collaborator(
    State(s): S,
    Path((org, username)): Path<(String, String)>,
) -> Response {
    let mut world = s.world();
    let Some(o) = world.org_mut(&org) else {
        return not_found();
    };
    let k = key(&username);
    if o.members.contains_key(&k) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "You cannot specify an organization member to remove as an outside collaborator.",
            "https://docs.github.com/enterprise-cloud@latest/rest/orgs/outside-collaborators#remove-outside-collaborator-from-an-organization",
        );
    }
    for repo in o.repos.values_mut() {
        repo.collaborators.remove(&k);
        repo.invitations.retain(|i| key(&i.invitee) != k);
    }
    no_content()
}

async fn list_teams(
    State(s): S,
    Extension(here): Extension<Here>,
    Path(org): Path<String>,
) -> Response {
    let world = s.world();
    let Some(o) = world.org_ref(&org) else {
        return not_found();
    };
    let items = o
        .teams
        .values()
        .map(|t| team_json(&here.base, o, t))
        .collect();
    paged(&here, items)
}

async fn get_team(
    State(s): S,
    Extension(here): Extension<Here>,
    Path((org, slug)): Path<(String, String)>,
) -> Response {
    let world = s.world();
    match world
        .org_ref(&org)
        .and_then(|o| Some((o, o.team_ref(&slug)?)))
    {
        Some((o, t)) => Json(team_full(&here.base, o, t)).into_response(),
        None => not_found(),
    }
}

async fn get_team_membership(
    State(s): S,
    Extension(here): Extension<Here>,
    Path((org, slug, username)): Path<(String, String, String)>,
) -> Response {
    let world = s.world();
    let Some(o) = world.org_ref(&org) else {
        return not_found();
    };
    let Some(t) = o.team_ref(&slug) else {
        return not_found();
    };
    let Some((login, role)) = t.members.get(&key(&username)) else {
        return not_found();
    };
    let (u, _) = team_urls(&here.base, o, t);
    Json(json!({
        "url": format!("{u}/memberships/{}", seg(login)),
        "role": role.as_str(),
        "state": "active",
    }))
    .into_response()
}

async fn delete_team_membership(
    State(s): S,
    Path((org, slug, username)): Path<(String, String, String)>,
) -> Response {
    let mut world = s.world();
    let removed = world
        .org_mut(&org)
        .and_then(|o| o.teams.get_mut(&key(&slug)))
        .and_then(|t| t.members.remove(&key(&username)));
    if removed.is_some() {
        no_content()
    } else {
        not_found()
    }
}

async fn list_repos(
    State(s): S,
    Extension(here): Extension<Here>,
    Path(org): Path<String>,
) -> Response {
    let world = s.world();
    let Some(o) = world.org_ref(&org) else {
        return not_found();
    };
    // Only the requested page is rendered: big orgs have thousands of repositories.
    let ps = params(&here);
    let per_page = param(&ps, "per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(30)
        .min(100);
    let page = param(&ps, "page")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1);
    let start = (page - 1).saturating_mul(per_page);
    let items = o
        .repos
        .values()
        .enumerate()
        .map(|(i, r)| {
            if i >= start && i < start + per_page {
                repo_json(&here.base, o, r)
            } else {
                Value::Null
            }
        })
        .collect();
    paged(&here, items)
}

/// The repository of an org-owned `owner/repo`
fn find_repo<'a>(world: &'a World, owner: &str, repo: &str) -> Option<(&'a Org, &'a Repo)> {
    let o = world.org_ref(owner)?;
    Some((o, o.repo_ref(repo)?))
}

async fn list_collaborators(
    State(s): S,
    Extension(here): Extension<Here>,
    Path((owner, repo)): Path<(String, String)>,
) -> Response {
    let mut world = s.world();
    let Some((o, r)) = find_repo(&world, &owner, &repo) else {
        return not_found();
    };
    let ps = params(&here);
    let affiliation = param(&ps, "affiliation").unwrap_or("all");
    let wanted = param(&ps, "permission");
    let mut grants: std::collections::BTreeMap<String, (String, Permission)> = match affiliation {
        "outside" => r
            .collaborators
            .iter()
            .filter(|(k, _)| !o.members.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        _ => r.collaborators.clone(),
    };
    if affiliation == "all" {
        for (k, (login, role)) in &o.members {
            let base = if *role == Role::Admin {
                Permission::Admin
            } else {
                Permission::Pull
            };
            let entry = grants.entry(k.clone()).or_insert((login.clone(), base));
            entry.1 = entry.1.max(base);
        }
    }
    let items = grants
        .into_values()
        .filter(|(_, p)| wanted.is_none_or(|w| p.as_str() == w))
        .map(|(login, p)| collaborator(&here.base, &mut world, &login, p))
        .collect();
    paged(&here, items)
}

async fn check_collaborator(
    State(s): S,
    Path((owner, repo, username)): Path<(String, String, String)>,
) -> Response {
    let world = s.world();
    let Some((o, r)) = find_repo(&world, &owner, &repo) else {
        return not_found();
    };
    let k = key(&username);
    if r.collaborators.contains_key(&k) || o.members.contains_key(&k) {
        no_content()
    } else {
        not_found()
    }
}

async fn remove_collaborator(
    State(s): S,
    Path((owner, repo, username)): Path<(String, String, String)>,
) -> Response {
    let mut world = s.world();
    let Some(r) = world
        .org_mut(&owner)
        .and_then(|o| o.repos.get_mut(&key(&repo)))
    else {
        return not_found();
    };
    r.collaborators.remove(&key(&username));
    no_content()
}

async fn list_repo_invitations(
    State(s): S,
    Extension(here): Extension<Here>,
    Path((owner, repo)): Path<(String, String)>,
) -> Response {
    let mut world = s.world();
    let Some((o, r)) = find_repo(&world, &owner, &repo) else {
        return not_found();
    };
    let repo_json = repo_json(&here.base, o, r);
    let invitations = r.invitations.clone();
    let html = format!(
        "https://github.com/{}/{}/invitations",
        seg(&o.login),
        seg(&r.name)
    );
    let items = invitations
        .iter()
        .map(|i| {
            json!({
                "id": i.id,
                "node_id": node_id("RepositoryInvitation", i.id),
                "repository": repo_json,
                "invitee": user(&here.base, &mut world, &i.invitee),
                "inviter": user(&here.base, &mut world, &i.inviter),
                "permissions": i.permission.role_name(),
                "created_at": time(i.created_at),
                "expired": false,
                "url": format!("{}/user/repository_invitations/{}", here.base, i.id),
                "html_url": html,
            })
        })
        .collect();
    paged(&here, items)
}

/// Real GitHub answers 404 for an invitation that does not exist (the spec declares only 204)
async fn delete_repo_invitation(
    State(s): S,
    Path((owner, repo, invitation_id)): Path<(String, String, String)>,
) -> Response {
    let mut world = s.world();
    let (Some(r), Ok(id)) = (
        world
            .org_mut(&owner)
            .and_then(|o| o.repos.get_mut(&key(&repo))),
        invitation_id.parse::<u64>(),
    ) else {
        return not_found();
    };
    let before = r.invitations.len();
    r.invitations.retain(|i| i.id != id);
    if r.invitations.len() < before {
        no_content()
    } else {
        not_found()
    }
}

async fn list_credential_authorizations(
    State(s): S,
    Extension(here): Extension<Here>,
    Path(org): Path<String>,
) -> Response {
    let world = s.world();
    let Some(o) = world.org_ref(&org) else {
        return not_found();
    };
    let ps = params(&here);
    let login = param(&ps, "login").map(key);
    let items = o
        .credential_authorizations
        .iter()
        .filter(|c| login.as_deref().is_none_or(|l| key(&c.login) == l))
        .map(|c| {
            let mut v = json!({
                "login": c.login,
                "credential_id": c.credential_id,
                "credential_type": c.credential_type.as_str(),
                "credential_authorized_at": time(c.credential_authorized_at),
                "credential_accessed_at": c.credential_accessed_at.map(time),
                "authorized_credential_id": c.authorized_credential_id,
                "authorized_credential_title": c.authorized_credential_title,
                "authorized_credential_expires_at": c.authorized_credential_expires_at.map(time),
                "scopes": c.scopes,
            });
            if let Some(last) = &c.token_last_eight {
                merge(&mut v, json!({ "token_last_eight": last }));
            }
            if let Some(fp) = &c.fingerprint {
                merge(&mut v, json!({ "fingerprint": fp }));
            }
            v
        })
        .collect();
    paged(&here, items)
}

async fn delete_credential_authorization(
    State(s): S,
    Path((org, credential_id)): Path<(String, String)>,
) -> Response {
    let mut world = s.world();
    let (Some(o), Ok(id)) = (world.org_mut(&org), credential_id.parse::<u64>()) else {
        return not_found();
    };
    let before = o.credential_authorizations.len();
    o.credential_authorizations
        .retain(|c| c.credential_id != id);
    if o.credential_authorizations.len() < before {
        no_content()
    } else {
        not_found()
    }
}

async fn list_pat_grants(
    State(s): S,
    Extension(here): Extension<Here>,
    Path(org): Path<String>,
) -> Response {
    let mut world = s.world();
    let Some(o) = world.org_ref(&org) else {
        return not_found();
    };
    let ps = params(&here);
    let owners: Vec<String> = ps
        .iter()
        .filter(|(k, _)| k == "owner" || k == "owner[]")
        .flat_map(|(_, v)| v.split(',').map(key).collect::<Vec<_>>())
        .collect();
    let org_login = o.login.clone();
    let grants: Vec<_> = o
        .pat_grants
        .iter()
        .filter(|g| owners.is_empty() || owners.contains(&key(&g.owner)))
        .cloned()
        .collect();
    let items = grants
        .iter()
        .map(|g| {
            json!({
                "id": g.id,
                "owner": user(&here.base, &mut world, &g.owner),
                "repository_selection": g.repository_selection,
                "repositories_url": format!("{}/orgs/{}/personal-access-tokens/{}/repositories", here.base, seg(&org_login), g.id),
                "permissions": {
                    "organization": { "members": "read" },
                    "repository": { "metadata": "read" },
                    "other": {},
                },
                "access_granted_at": time(g.access_granted_at),
                "token_id": g.token_id,
                "token_name": g.token_name,
                "token_expired": g.token_expired,
                "token_expires_at": g.token_expires_at.map(time),
                "token_last_used_at": g.token_last_used_at.map(time),
            })
        })
        .collect();
    paged(&here, items)
}

async fn update_pat_grant(
    State(s): S,
    Path((org, pat_id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let action = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("action").and_then(Value::as_str).map(str::to_owned));
    if action.as_deref() != Some("revoke") {
        return validation_failed("action", "must be \"revoke\"");
    }
    let mut world = s.world();
    let (Some(o), Ok(id)) = (world.org_mut(&org), pat_id.parse::<u64>()) else {
        return not_found();
    };
    let before = o.pat_grants.len();
    o.pat_grants.retain(|g| g.id != id);
    if o.pat_grants.len() < before {
        no_content()
    } else {
        not_found()
    }
}

/// GitHub's `validation-error` body
fn validation_failed(field: &str, message: &str) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({
            "message": "Validation Failed",
            "documentation_url": DOCS_REST,
            "errors": [{ "resource": "Request", "field": field, "code": "invalid", "message": message }],
        })),
    )
        .into_response()
}

/// `POST /app/installations/{id}/access_tokens`: checks the app JWT's shape, `iss` and `exp`
/// (not its signature) and issues a `ghs_` token that expires after the configured TTL
async fn installation_token(
    State(s): S,
    headers: HeaderMap,
    Path(installation_id): Path<String>,
) -> Response {
    let unauthorized = |m: &str| error(StatusCode::UNAUTHORIZED, m, DOCS_REST);
    let Some(jwt) = super::bearer(&headers) else {
        return unauthorized("A JSON web token could not be decoded");
    };
    let parts: Vec<&str> = jwt.split('.').collect();
    let claims = (parts.len() == 3)
        .then(|| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(parts[1].trim_end_matches('='))
                .ok()
        })
        .flatten()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    let Some(claims) = claims else {
        return unauthorized("A JSON web token could not be decoded");
    };
    let mut auth = lock(&s.auth);
    let Some((app_id, inst_id)) = auth.app else {
        return unauthorized("Integration not found");
    };
    let iss_ok = match &claims["iss"] {
        Value::Number(n) => n.as_u64() == Some(app_id),
        Value::String(t) => t == &app_id.to_string(),
        _ => false,
    };
    if !iss_ok {
        return unauthorized("Integration not found");
    }
    let now = Utc::now().timestamp();
    let Some(exp) = claims["exp"].as_i64() else {
        return unauthorized("'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires.");
    };
    if exp <= now {
        return unauthorized("'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires.");
    }
    if exp > now + 600 + 60 {
        return unauthorized("'Expiration time' claim ('exp') is too far in the future");
    }
    if installation_id.parse::<u64>().ok() != Some(inst_id) {
        return not_found();
    }
    let token = format!("ghs_{}", super::random_alnum(36));
    let ttl = auth.ttl;
    auth.installation_tokens
        .insert(token.clone(), std::time::Instant::now() + ttl);
    auth.issued += 1;
    let expires_at = Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default();
    (
        StatusCode::CREATED,
        Json(json!({
            "token": token,
            "expires_at": time(expires_at),
            "permissions": { "members": "write", "organization_administration": "read", "metadata": "read", "administration": "write" },
            "repository_selection": "all",
        })),
    )
        .into_response()
}
