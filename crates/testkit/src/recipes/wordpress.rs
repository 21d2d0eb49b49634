//! A stateful WordPress stand-in (REST API `wp/v2`: users, their application passwords, and the
//! authors of posts) for the `wordpress` recipe
//!
//! Behaviour from WordPress core's REST controllers as we read them
//! (`WP_REST_Users_Controller`, `WP_REST_Application_Passwords_Controller`); answer shapes
//! checked against the JSON schemas npm `wp-types` 4.71.0 was generated from (WordPress 7.1's
//! REST schema, as `tests/recipes/wp-rest.schema.json`, by `tests/recipes/wp_check.py`).
//!
//! Under `/wp-json/wp/v2`, `Authorization: Basic base64(admin:APPLICATION_PASSWORD)` (the
//! password is [`Standin::token`]; anything else: 401 `rest_not_logged_in`):
//! - `GET /users?search=&context=edit&page=&per_page=`: users whose username, email, display
//!   name or slug holds the search text (case ignored: core searches `*text*`), by id; pages of
//!   `per_page` (default 10, at most 100) with `X-WP-Total` and `X-WP-TotalPages`; a page past
//!   the last is 400 `rest_user_invalid_page_number`.
//! - `GET /users/{id}?context=edit`: the user; 404 `rest_user_invalid_id` when there is none.
//! - `POST /users/{id}` `{"roles": [...]}`: sets the roles, answers the user.
//! - `DELETE /users/{id}?reassign=ID&force=true`: 501 `rest_trash_not_supported` without
//!   `force`; 404 `rest_user_invalid_id`; 400 `rest_user_invalid_reassign` when `reassign` is
//!   the user or nobody; else the user's posts go to `reassign`, the user and their application
//!   passwords are deleted: 200 `{"deleted": true, "previous": user}`. A missing `reassign` is
//!   400 `rest_missing_callback_param`.
//! - `GET /users/{id}/application-passwords` (a list), `GET` and `DELETE
//!   /users/{id}/application-passwords/{uuid}` (the delete: 200 `{"deleted": true, "previous"}`;
//!   404 `rest_application_password_not_found`).
//!
//! Errors are core's `{"code", "message", "data": {"status"}}`. Not modelled: multisite,
//! capabilities per role, the request schema's full validation, rate limits (WordPress has none;
//! a 429 from a proxy in front is injected with [`Standin::fail_next`]).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{Reply, Req, Standin, Vendor};
use crate::TestkitError;

/// The WordPress stand-in
pub type WordPressStandin = Standin<World>;

/// The user the application password belongs to
pub const ADMIN: &str = "admin";

/// Starts a WordPress stand-in holding one administrator, `admin` (user 1)
pub fn start() -> Result<WordPressStandin, TestkitError> {
    let mut world = World::default();
    world.user(ADMIN, "admin@example.com", &["administrator"]);
    Standin::start(
        Vendor {
            name: "wordpress stand-in",
            scheme: "Basic ",
            answer,
            unauthorized: |_| {
                error(
                    401,
                    "rest_not_logged_in",
                    "You are not currently logged in.",
                )
            },
            open: &[],
            basic_user: Some(ADMIN),
        },
        world,
    )
}

/// A user of the site
#[derive(Debug, Clone)]
pub struct User {
    pub id: u64,
    pub username: String,
    pub email: String,
    pub roles: Vec<String>,
    /// uuid -> name
    pub app_passwords: BTreeMap<String, String>,
}

/// The site
#[derive(Debug, Default)]
pub struct World {
    next: u64,
    /// By id
    pub users: BTreeMap<u64, User>,
    /// Post id -> author id
    pub posts: BTreeMap<u64, u64>,
}

impl World {
    /// Adds a user; returns the id
    pub fn user(&mut self, username: &str, email: &str, roles: &[&str]) -> u64 {
        let id = self.users.len() as u64 + 1;
        self.users.insert(
            id,
            User {
                id,
                username: username.to_owned(),
                email: email.to_owned(),
                roles: roles.iter().map(|r| (*r).to_owned()).collect(),
                app_passwords: BTreeMap::new(),
            },
        );
        id
    }

    /// Gives a user an application password; returns its uuid
    pub fn app_password(&mut self, user: u64, name: &str) -> String {
        self.next += 1;
        let uuid = format!("6f1c2a5e-0000-4000-8000-{:012x}", self.next);
        if let Some(u) = self.users.get_mut(&user) {
            u.app_passwords.insert(uuid.clone(), name.to_owned());
        }
        uuid
    }

    /// Adds a post by `author`; returns its id
    pub fn post(&mut self, author: u64) -> u64 {
        let id = 100 + self.posts.len() as u64;
        self.posts.insert(id, author);
        id
    }

    /// The posts of an author
    pub fn posts_of(&self, author: u64) -> usize {
        self.posts.values().filter(|a| **a == author).count()
    }

    fn json(u: &User) -> Value {
        let link = format!("https://blog.example.com/author/{}/", u.username);
        let avatar = "https://secure.gravatar.com/avatar/0?s=96&d=mm&r=g";
        let caps: serde_json::Map<String, Value> =
            u.roles.iter().map(|r| (r.clone(), json!(true))).collect();
        json!({
            "id": u.id,
            "username": u.username,
            "name": u.username,
            "first_name": "",
            "last_name": "",
            "email": u.email,
            "url": "",
            "description": "",
            "link": link,
            "locale": "en_US",
            "nickname": u.username,
            "slug": u.username,
            "roles": u.roles,
            "registered_date": "2024-01-01T00:00:00+00:00",
            "capabilities": caps,
            "extra_capabilities": caps,
            "avatar_urls": {"24": avatar, "48": avatar, "96": avatar},
            "meta": {"persisted_preferences": []},
            "_links": {
                "self": [{"href": format!("https://blog.example.com/wp-json/wp/v2/users/{}", u.id), "targetHints": {"allow": ["GET", "POST", "PUT", "PATCH", "DELETE"]}}],
                "collection": [{"href": "https://blog.example.com/wp-json/wp/v2/users"}],
            },
        })
    }

    fn app_json(user: u64, uuid: &str, name: &str) -> Value {
        json!({
            "uuid": uuid,
            "app_id": "",
            "name": name,
            "created": "2024-01-01T00:00:00",
            "last_used": null,
            "last_ip": null,
            "_links": {"self": [{"href": format!("https://blog.example.com/wp-json/wp/v2/users/{user}/application-passwords/{uuid}")}]},
        })
    }
}

fn error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        json!({"code": code, "message": message, "data": {"status": status}}),
    )
}

fn no_user() -> Reply {
    error(404, "rest_user_invalid_id", "Invalid user ID.")
}

fn answer(w: &mut World, r: &Req) -> Reply {
    let p = r.path();
    let rest = match p.as_slice() {
        ["wp-json", "wp", "v2", rest @ ..] => rest,
        _ => {
            return error(
                404,
                "rest_no_route",
                "No route was found matching the URL and request method.",
            )
        }
    };
    let id = |s: &str| s.parse::<u64>().ok();
    match (r.method.as_str(), rest) {
        ("GET", ["users"]) => {
            let q = r.query("search").map(str::to_lowercase).unwrap_or_default();
            let num = |k: &str, d: usize| {
                r.query(k)
                    .and_then(|v| v.parse::<usize>().ok())
                    .filter(|n| *n > 0)
                    .unwrap_or(d)
            };
            let (page, per) = (num("page", 1), num("per_page", 10));
            if per > 100 {
                return error(400, "rest_invalid_param", "Invalid parameter(s): per_page");
            }
            let all: Vec<&User> = w
                .users
                .values()
                .filter(|u| {
                    [&u.username, &u.email]
                        .iter()
                        .any(|f| f.to_lowercase().contains(&q))
                })
                .collect();
            let pages = all.len().div_ceil(per);
            if page > pages && !all.is_empty() {
                return error(
                    400,
                    "rest_user_invalid_page_number",
                    "The page number requested is larger than the number of pages available.",
                );
            }
            let list: Vec<Value> = all
                .iter()
                .skip((page - 1) * per)
                .take(per)
                .map(|u| World::json(u))
                .collect();
            Reply::json(200, Value::Array(list))
                .header("X-WP-Total", &all.len().to_string())
                .header("X-WP-TotalPages", &pages.to_string())
        }
        ("GET", ["users", uid]) => match id(uid).and_then(|i| w.users.get(&i)) {
            Some(u) => Reply::json(200, World::json(u)),
            None => no_user(),
        },
        ("POST" | "PUT" | "PATCH", ["users", uid]) => {
            let Some(u) = id(uid).and_then(|i| w.users.get_mut(&i)) else {
                return no_user();
            };
            if let Some(roles) = r
                .json
                .as_ref()
                .and_then(|j| j.get("roles"))
                .and_then(Value::as_array)
            {
                if !roles.is_empty() {
                    u.roles = roles
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect();
                }
            }
            Reply::json(200, World::json(u))
        }
        ("DELETE", ["users", uid]) => {
            let Some(uid) = id(uid).filter(|i| w.users.contains_key(i)) else {
                return no_user();
            };
            let Some(reassign) = r.query("reassign") else {
                return error(
                    400,
                    "rest_missing_callback_param",
                    "Missing parameter(s): reassign",
                );
            };
            if !matches!(r.query("force"), Some("true" | "1")) {
                return error(
                    501,
                    "rest_trash_not_supported",
                    "Users do not support trashing. Set 'force=true' to delete.",
                );
            }
            let to = id(reassign);
            if to == Some(uid) || !to.is_some_and(|t| w.users.contains_key(&t)) {
                return error(
                    400,
                    "rest_user_invalid_reassign",
                    "Invalid user ID for reassignment.",
                );
            }
            let Some(user) = w.users.remove(&uid) else {
                return no_user();
            };
            if let Some(to) = to {
                for a in w.posts.values_mut() {
                    if *a == uid {
                        *a = to;
                    }
                }
            }
            Reply::json(
                200,
                json!({"deleted": true, "previous": World::json(&user)}),
            )
        }
        ("GET", ["users", uid, "application-passwords"]) => {
            match id(uid).and_then(|i| w.users.get(&i)) {
                Some(u) => Reply::json(
                    200,
                    Value::Array(
                        u.app_passwords
                            .iter()
                            .map(|(k, n)| World::app_json(u.id, k, n))
                            .collect(),
                    ),
                ),
                None => no_user(),
            }
        }
        (m @ ("GET" | "DELETE"), ["users", uid, "application-passwords", uuid]) => {
            let Some(u) = id(uid).and_then(|i| w.users.get_mut(&i)) else {
                return no_user();
            };
            let gone = || {
                error(
                    404,
                    "rest_application_password_not_found",
                    "Application password not found.",
                )
            };
            if m == "GET" {
                return match u.app_passwords.get(*uuid) {
                    Some(n) => Reply::json(200, World::app_json(u.id, uuid, n)),
                    None => gone(),
                };
            }
            match u.app_passwords.remove(*uuid) {
                Some(n) => Reply::json(
                    200,
                    json!({"deleted": true, "previous": World::app_json(u.id, uuid, &n)}),
                ),
                None => gone(),
            }
        }
        _ => error(
            404,
            "rest_no_route",
            "No route was found matching the URL and request method.",
        ),
    }
}
