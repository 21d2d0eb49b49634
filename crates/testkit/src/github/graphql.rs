//! GraphQL at `/graphql` (and `/api/graphql` for GHES), for the connector's six queries
//!
//! This is no GraphQL engine: the operation is recognized by its name in the document
//! (`query OrgMembers(`) and answered from its variables. Page sizes are GitHub's maximum (100)
//! at every level, so nested connections past 100 report `hasNextPage` and need the follow-up
//! queries (`TeamMembers`, `RepositoryCollaborators`). Cursors are opaque (base64 of a position).
//! Check the documents themselves against GitHub's schema with [`crate::validate_graphql`].

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::{json, Value};

use super::rest::node_id;
use super::world::{key, Org, Role, TeamRole, Users};
use super::{lock, Shared};

const PAGE: usize = 100;

/// The connector's operations, by name
const OPERATIONS: &[&str] = &[
    "OrgMembers",
    "OrgTeams",
    "TeamMembers",
    "OrgRepositories",
    "RepositoryCollaborators",
    "SamlIdentities",
];

pub(crate) fn is_mutation(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("query").and_then(Value::as_str).map(str::to_owned))
        .is_some_and(|q| q.trim_start().starts_with("mutation"))
}

fn cursor(position: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("cursor:v2:{position}"))
}

/// The position after the cursor (where the next page starts); `Err` for a cursor we did not issue
fn start_after(after: Option<&str>) -> Result<usize, String> {
    let Some(after) = after else { return Ok(0) };
    base64::engine::general_purpose::STANDARD
        .decode(after)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("cursor:v2:")?.parse::<usize>().ok())
        .map(|p| p + 1)
        .ok_or_else(|| format!("`{after}` does not appear to be a valid cursor."))
}

/// A connection page over `items`, from `start`, built with `edge`, as `edges` or `nodes`
fn connection<T>(
    items: &[T],
    start: usize,
    field: &str,
    mut edge: impl FnMut(&T) -> Value,
) -> Value {
    let page: Vec<Value> = items.iter().skip(start).take(PAGE).map(&mut edge).collect();
    let end = (!page.is_empty()).then(|| cursor(start + page.len() - 1));
    json!({
        "pageInfo": { "hasNextPage": start + page.len() < items.len(), "endCursor": end },
        field: page,
    })
}

fn role(r: Role) -> &'static str {
    match r {
        Role::Admin => "ADMIN",
        Role::Member => "MEMBER",
    }
}

fn team_role(r: TeamRole) -> &'static str {
    match r {
        TeamRole::Maintainer => "MAINTAINER",
        TeamRole::Member => "MEMBER",
    }
}

/// A `User` node: its login, `databaseId` (the REST `id`) and global node `id`
fn user_node(users: &mut Users, login: &str) -> Value {
    let id = users.id(login);
    json!({ "login": login, "databaseId": id, "id": node_id("User", id) })
}

fn errors(message: String) -> Response {
    Json(json!({ "errors": [{ "message": message }] })).into_response()
}

fn not_found(field: &str, message: String) -> Response {
    Json(json!({
        "data": { field: null },
        "errors": [{ "type": "NOT_FOUND", "path": [field], "locations": [{ "line": 2, "column": 3 }], "message": message }],
    }))
    .into_response()
}

/// The operation name: `operationName`, else the first `query Name` / `mutation Name` in the document
fn operation_name(body: &Value, document: &str) -> Option<String> {
    if let Some(name) = body.get("operationName").and_then(Value::as_str) {
        return Some(name.to_owned());
    }
    let mut words = document.split(|c: char| !(c.is_alphanumeric() || c == '_'));
    let mut words = words.by_ref().filter(|w| !w.is_empty());
    while let Some(w) = words.next() {
        if w == "query" || w == "mutation" {
            return words.next().map(str::to_owned);
        }
    }
    None
}

pub(crate) async fn handle(State(s): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return errors("Problems parsing JSON".to_owned());
    };
    let Some(document) = body.get("query").and_then(Value::as_str) else {
        return errors("A query attribute must be specified and must be a string.".to_owned());
    };
    {
        let mut docs = lock(&s.graphql_documents);
        if !docs.iter().any(|d| d == document) {
            docs.push(document.to_owned());
        }
    }
    let vars = body.get("variables").cloned().unwrap_or(Value::Null);
    let var = |name: &str| vars.get(name).and_then(Value::as_str).map(str::to_owned);
    let op = operation_name(&body, document).unwrap_or_default();
    if !OPERATIONS.contains(&op.as_str()) {
        return errors(format!(
            "the GitHub stand-in does not know the operation `{op}`, expected one of {OPERATIONS:?}"
        ));
    }
    let org_login = var("org").unwrap_or_default();
    let start = match start_after(var("after").as_deref()) {
        Ok(s) => s,
        Err(message) => return errors(message),
    };

    let mut guard = s.world();
    // The orgs read, the users given ids as they are shown: two parts of the world at once.
    let world = &mut *guard;
    let (orgs, users) = (&world.orgs, &mut world.users);
    if op == "RepositoryCollaborators" {
        let name = var("name").unwrap_or_default();
        let Some(repo) = orgs.get(&key(&org_login)).and_then(|o| o.repo_ref(&name)) else {
            return not_found(
                "repository",
                format!("Could not resolve to a Repository with the name '{org_login}/{name}'."),
            );
        };
        let collaborators = repo.collaborators();
        let data = json!({ "repository": {
            "collaborators": connection(&collaborators, start, "edges", |(login, p)| {
                json!({ "permission": p.graphql(), "node": user_node(users, login) })
            }),
        }});
        return Json(json!({ "data": data })).into_response();
    }
    let Some(o) = orgs.get(&key(&org_login)) else {
        return not_found(
            "organization",
            format!("Could not resolve to an Organization with the login of '{org_login}'."),
        );
    };
    let member_edge = |users: &mut Users, (login, r): &(String, TeamRole)| json!({ "role": team_role(*r), "node": user_node(users, login) });
    let organization = match op.as_str() {
        "OrgMembers" => {
            let members = o.member_list();
            json!({ "membersWithRole": connection(&members, start, "edges", |(login, r)| {
                json!({ "role": role(*r), "node": user_node(users, login) })
            })})
        }
        "OrgTeams" => {
            let teams: Vec<_> = o.teams.values().collect();
            json!({ "teams": connection(&teams, start, "nodes", |t| {
                json!({ "slug": t.slug, "members": connection(&t.members(), 0, "edges", |m| member_edge(users, m)) })
            })})
        }
        "TeamMembers" => {
            let slug = var("slug").unwrap_or_default();
            let team = o.team_ref(&slug).map(
                |t| json!({ "members": connection(&t.members(), start, "edges", |m| member_edge(users, m)) }),
            );
            json!({ "team": team })
        }
        "OrgRepositories" => {
            let repos: Vec<_> = o.repos.values().collect();
            json!({ "repositories": connection(&repos, start, "nodes", |r| {
                json!({ "name": r.name, "collaborators": connection(&r.collaborators(), 0, "edges", |(login, p)| {
                    json!({ "permission": p.graphql(), "node": user_node(users, login) })
                }) })
            })})
        }
        _ => saml(
            users,
            o,
            var("userName").as_deref(),
            var("login").as_deref(),
            start,
        ),
    };
    Json(json!({ "data": { "organization": organization } })).into_response()
}

/// The org's SAML external identities, filtered by NameID (`userName`) and by linked `login`
fn saml(
    users: &mut Users,
    o: &Org,
    user_name: Option<&str>,
    login: Option<&str>,
    start: usize,
) -> Value {
    if o.saml_identities.is_empty() {
        return json!({ "samlIdentityProvider": null });
    }
    let identities: Vec<_> = o
        .saml_identities
        .iter()
        .filter(|i| user_name.is_none_or(|u| i.name_id.eq_ignore_ascii_case(u)))
        .filter(|i| {
            login.is_none_or(|l| {
                i.login
                    .as_deref()
                    .is_some_and(|il| il.eq_ignore_ascii_case(l))
            })
        })
        .collect();
    json!({ "samlIdentityProvider": {
        "externalIdentities": connection(&identities, start, "edges", |i| json!({ "node": {
            "samlIdentity": {
                "nameId": i.name_id,
                "emails": i.emails.iter().map(|e| json!({ "value": e })).collect::<Vec<_>>(),
            },
            "scimIdentity": i.scim_username.as_ref().map(|u| json!({
                "username": u,
                "emails": i.emails.iter().map(|e| json!({ "value": e })).collect::<Vec<_>>(),
            })),
            "user": i.login.as_ref().map(|l| {
                let id = users.id(l);
                json!({ "login": l, "databaseId": id })
            }),
        }})),
    }})
}
