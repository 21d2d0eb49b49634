//! A stateful Mattermost stand-in (API v4: users, sessions, personal access tokens, teams,
//! channels) for the `mattermost` recipe of the `http` connector
//!
//! There is no Mattermost server in apt, PyPI or npm; its OpenAPI source
//! (`api/v4/source/*.yaml` in mattermost/mattermost) is in no registry either. The shapes here are
//! those of PyPI `mattermost-api-reference-client` 4.2.7 (generated from that source), which
//! `tests/python/recipes_check.py` drives this stand-in with, parsing every answer into its
//! models with `raise_on_unexpected_status` (an undeclared status fails the check).
//!
//! Calls answered (an admin's bearer token; anything else is the 401 `AppError`):
//! - `GET /api/v4/users/username/{username}`, `GET /api/v4/users/email/{email}`,
//!   `GET /api/v4/users/{user_id}`: the `User` (a deactivated one too: `delete_at` > 0); 404
//!   when there is none; 400 `api.context.invalid_url_param.app_error` for a username or email
//!   Mattermost could not hold (a username is 1-64 of `a-z 0-9 . - _` starting with a letter; an
//!   email is lower case with one `@`) and for an id that is not 26 of `a-z 0-9`.
//! - `PUT /api/v4/users/{user_id}/active` `{"active": false}`: deactivates (sets `delete_at`)
//!   and revokes every session of the user, as Mattermost does; `{"status": "OK"}`.
//! - `GET /api/v4/users/{user_id}/sessions`, `POST /api/v4/users/{user_id}/sessions/revoke/all`.
//! - `GET /api/v4/users/{user_id}/tokens?page=&per_page=` (default 60), `GET
//!   /api/v4/users/tokens/{token_id}` (404 when gone), `POST /api/v4/users/tokens/revoke`
//!   `{"token_id"}` (deletes it; 404 when there is no such token).
//! - `GET /api/v4/users/{user_id}/teams` (the teams the user is an active member of), `GET
//!   /api/v4/teams/{team_id}`, `GET` and `DELETE /api/v4/teams/{team_id}/members/{user_id}` (the
//!   removal keeps the member row with `delete_at` set and removes the user from the team's
//!   channels, as Mattermost does; 404 when the user never was a member), `POST
//!   /api/v4/teams/{team_id}/regenerate_invite_id` (a new `invite_id`; the `Team`).
//! - `GET /api/v4/users/{user_id}/channels` (every channel of the user: `O` open, `P` private,
//!   `D` direct), `GET /api/v4/channels/{channel_id}`, `GET` and `DELETE
//!   /api/v4/channels/{channel_id}/members/{user_id}` (404 `app.channel.get_member.missing.app_error`
//!   when the user is not a member).
//!
//! Where the description and the server differ: the description declares no 404 for `GET`/`DELETE`
//! channel members and for the token revoke, nor for `PUT .../active`; Mattermost's server answers
//! a missing member or token with a 404 `AppError` (its store's not-found), which this stand-in
//! does and the recipe classifies as already done. Not checked against a running Mattermost (there
//! is none here): the 404s, the username/email validation, and that a removed team member's row is
//! still read with `delete_at` set are taken from the server's source as we read it.
//!
//! Simplifications, on purpose: one admin token; no permissions, schemes, groups or guests;
//! `RateLimitSettings.Enable` is false by default in Mattermost, so there is no budget: a 429 is
//! injected with [`Standin::fail_next`].

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::{id26, Reply, Req, Standin, Vendor};
use crate::TestkitError;

/// The Mattermost stand-in
pub type MattermostStandin = Standin<World>;

/// Starts an empty Mattermost stand-in
pub fn start() -> Result<MattermostStandin, TestkitError> {
    Standin::start(
        Vendor {
            name: "mattermost stand-in",
            scheme: "Bearer ",
            answer,
            unauthorized: |_| {
                app_error(
                    401,
                    "api.context.session_expired.app_error",
                    "Invalid or expired session, please login again.",
                )
            },
            open: &[],
            basic_user: None,
        },
        World::default(),
    )
}

/// A user
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub username: String,
    pub email: String,
    /// 0 while active; the deactivation time (ms) after
    pub delete_at: i64,
    pub roles: String,
}

/// A team: `O` open or `I` invite only (what Mattermost's UI calls private)
#[derive(Debug, Clone)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub kind: char,
    pub invite_id: String,
}

/// A channel: `O` open, `P` private, `D` direct, `G` group
#[derive(Debug, Clone)]
pub struct Channel {
    pub id: String,
    pub team_id: String,
    pub name: String,
    pub kind: char,
}

/// Everything the stand-in knows
#[derive(Debug, Default)]
pub struct World {
    next: u64,
    clock: i64,
    pub users: BTreeMap<String, User>,
    /// session id -> user id
    pub sessions: BTreeMap<String, String>,
    /// token id -> (user id, description, is_active)
    pub tokens: BTreeMap<String, (String, String, bool)>,
    pub teams: BTreeMap<String, Team>,
    /// (team id, user id) -> delete_at (0: a member)
    pub team_members: BTreeMap<(String, String), i64>,
    pub channels: BTreeMap<String, Channel>,
    /// (channel id, user id)
    pub channel_members: BTreeSet<(String, String)>,
}

impl World {
    fn id(&mut self, prefix: &str) -> String {
        self.next += 1;
        id26(prefix, self.next)
    }

    fn now(&mut self) -> i64 {
        self.clock += 1;
        1_764_000_000_000 + self.clock
    }

    /// Adds an active user; returns its id
    pub fn user(&mut self, username: &str, email: &str) -> String {
        let id = self.id("u");
        self.users.insert(
            id.clone(),
            User {
                id: id.clone(),
                username: username.to_owned(),
                email: email.to_owned(),
                delete_at: 0,
                roles: "system_user".into(),
            },
        );
        id
    }

    /// Deactivates a user (as an admin in the System Console would)
    pub fn deactivate(&mut self, user: &str) {
        let t = self.now();
        if let Some(u) = self.users.get_mut(user) {
            u.delete_at = t;
        }
        self.sessions.retain(|_, u| u != user);
    }

    /// A session of the user (a login); returns its id
    pub fn session(&mut self, user: &str) -> String {
        let id = self.id("s");
        self.sessions.insert(id.clone(), user.to_owned());
        id
    }

    /// A personal access token of the user; returns its id
    pub fn token(&mut self, user: &str, description: &str) -> String {
        let id = self.id("k");
        self.tokens
            .insert(id.clone(), (user.to_owned(), description.to_owned(), true));
        id
    }

    /// A team; `private` makes it invite only (`I`)
    pub fn team(&mut self, name: &str, private: bool) -> String {
        let id = self.id("t");
        let invite_id = self.id("i");
        self.teams.insert(
            id.clone(),
            Team {
                id: id.clone(),
                name: name.to_owned(),
                kind: if private { 'I' } else { 'O' },
                invite_id,
            },
        );
        id
    }

    /// Makes the user a member of the team
    pub fn join_team(&mut self, team: &str, user: &str) {
        self.team_members
            .insert((team.to_owned(), user.to_owned()), 0);
    }

    /// A channel of the team; `private` makes it `P`
    pub fn channel(&mut self, team: &str, name: &str, private: bool) -> String {
        let id = self.id("c");
        self.channels.insert(
            id.clone(),
            Channel {
                id: id.clone(),
                team_id: team.to_owned(),
                name: name.to_owned(),
                kind: if private { 'P' } else { 'O' },
            },
        );
        id
    }

    /// A direct message channel between two users (no team)
    pub fn direct(&mut self, a: &str, b: &str) -> String {
        let id = self.id("d");
        self.channels.insert(
            id.clone(),
            Channel {
                id: id.clone(),
                team_id: String::new(),
                name: format!("{a}__{b}"),
                kind: 'D',
            },
        );
        self.join_channel(&id, a);
        self.join_channel(&id, b);
        id
    }

    /// Makes the user a member of the channel
    pub fn join_channel(&mut self, channel: &str, user: &str) {
        self.channel_members
            .insert((channel.to_owned(), user.to_owned()));
    }

    /// Whether the user is active (not deactivated)
    pub fn is_active(&self, user: &str) -> bool {
        self.users.get(user).is_some_and(|u| u.delete_at == 0)
    }

    /// The user's sessions
    pub fn sessions_of(&self, user: &str) -> usize {
        self.sessions.values().filter(|u| *u == user).count()
    }

    /// The user's personal access tokens
    pub fn tokens_of(&self, user: &str) -> Vec<String> {
        self.tokens
            .iter()
            .filter(|(_, (u, _, _))| u == user)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The teams the user is an active member of
    pub fn teams_of(&self, user: &str) -> Vec<String> {
        self.team_members
            .iter()
            .filter(|((_, u), d)| u == user && **d == 0)
            .map(|((t, _), _)| t.clone())
            .collect()
    }

    /// The channels the user is a member of
    pub fn channels_of(&self, user: &str) -> Vec<String> {
        self.channel_members
            .iter()
            .filter(|(_, u)| u == user)
            .map(|(c, _)| c.clone())
            .collect()
    }

    /// The team's invite id now
    pub fn invite_id(&self, team: &str) -> String {
        self.teams
            .get(team)
            .map(|t| t.invite_id.clone())
            .unwrap_or_default()
    }

    fn user_json(&self, u: &User) -> Value {
        json!({
            "id": u.id, "create_at": 1_700_000_000_000i64, "update_at": 1_700_000_000_000i64,
            "delete_at": u.delete_at, "username": u.username, "auth_data": "", "auth_service": "",
            "email": u.email, "email_verified": true, "nickname": "", "first_name": "",
            "last_name": "", "position": "", "roles": u.roles, "notify_props": {},
            "last_password_update": 1_700_000_000_000i64, "locale": "en", "timezone": {},
            "disable_welcome_email": false,
        })
    }

    fn team_json(&self, t: &Team) -> Value {
        json!({
            "id": t.id, "create_at": 1_700_000_000_000i64, "update_at": 1_700_000_000_000i64,
            "delete_at": 0, "display_name": t.name, "name": t.name, "description": "",
            "email": "", "type": t.kind.to_string(), "company_name": "", "allowed_domains": "",
            "invite_id": t.invite_id, "allow_open_invite": t.kind == 'O', "scheme_id": "",
            "group_constrained": false, "policy_id": null,
        })
    }

    fn channel_json(&self, c: &Channel) -> Value {
        json!({
            "id": c.id, "create_at": 1_700_000_000_000i64, "update_at": 1_700_000_000_000i64,
            "delete_at": 0, "team_id": c.team_id, "type": c.kind.to_string(),
            "display_name": c.name, "name": c.name, "header": "", "purpose": "",
            "last_post_at": 0, "total_msg_count": 0, "extra_update_at": 0, "creator_id": "",
        })
    }
}

fn app_error(status: u16, id: &str, message: &str) -> Reply {
    Reply::json(
        status,
        json!({
            "id": id, "message": message, "detailed_error": "", "request_id": "standinrequest0000000000000",
            "status_code": status,
        }),
    )
}

fn ok() -> Reply {
    Reply::json(200, json!({"status": "OK"}))
}

fn bad_param(name: &str) -> Reply {
    app_error(
        400,
        "api.context.invalid_url_param.app_error",
        &format!("Invalid or missing {name} parameter in request URL."),
    )
}

fn valid_id(s: &str) -> bool {
    s.len() == 26
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn valid_username(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.as_bytes()[0].is_ascii_lowercase()
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
}

fn valid_email(s: &str) -> bool {
    s.matches('@').count() == 1
        && !s.starts_with('@')
        && !s.ends_with('@')
        && s == s.to_lowercase()
        && !s
            .chars()
            .any(|c| c.is_whitespace() || "/?#%\"'<>\\".contains(c))
}

fn user_404() -> Reply {
    app_error(
        404,
        "app.user.missing_account.const",
        "Unable to find the user.",
    )
}

fn team_404() -> Reply {
    app_error(
        404,
        "app.team.get.find.app_error",
        "Unable to find the existing team.",
    )
}

fn channel_404() -> Reply {
    app_error(
        404,
        "app.channel.get.existing.app_error",
        "Unable to find the existing channel.",
    )
}

fn answer(w: &mut World, r: &Req) -> Reply {
    let p = r.path();
    let m = r.method.as_str();
    let Some(rest) = p.strip_prefix(&["api", "v4"][..]) else {
        return app_error(
            404,
            "api.context.404.app_error",
            "Sorry, we could not find the page.",
        );
    };
    // Ids in the path are checked first, as Mattermost's handlers do (c.RequireUserId, ...).
    let ids_ok = match rest {
        ["users", "username", _] | ["users", "email", _] | ["users", "tokens", "revoke"] => true,
        ["users", "tokens", id] => valid_id(id),
        ["users", id, ..] | ["teams", id, ..] | ["channels", id, ..] => {
            valid_id(id) && (rest.len() < 4 || !matches!(rest[2], "members") || valid_id(rest[3]))
        }
        _ => true,
    };
    if !ids_ok {
        return bad_param("id");
    }
    match (m, rest) {
        ("GET", ["users", "username", name]) => {
            if !valid_username(name) {
                return bad_param("username");
            }
            match w.users.values().find(|u| u.username == *name) {
                Some(u) => Reply::json(200, w.user_json(u)),
                None => user_404(),
            }
        }
        ("GET", ["users", "email", email]) => {
            if !valid_email(email) {
                return bad_param("email");
            }
            match w.users.values().find(|u| u.email == *email) {
                Some(u) => Reply::json(200, w.user_json(u)),
                None => user_404(),
            }
        }
        ("GET", ["users", "tokens", id]) => match w.tokens.get(*id) {
            Some((u, d, a)) => Reply::json(
                200,
                json!({"id": id, "user_id": u, "description": d, "is_active": a}),
            ),
            None => app_error(
                404,
                "app.user_access_token.get_by_user.app_error",
                "Unable to get user access token.",
            ),
        },
        ("POST", ["users", "tokens", "revoke"]) => {
            let Some(id) = r.arg("token_id") else {
                return app_error(
                    400,
                    "api.context.invalid_body_param.app_error",
                    "Invalid or missing token_id in request body.",
                );
            };
            match w.tokens.remove(&id) {
                Some(_) => ok(),
                None => app_error(
                    404,
                    "app.user_access_token.get_by_user.app_error",
                    "Unable to get user access token.",
                ),
            }
        }
        ("GET", ["users", id]) => match w.users.get(*id) {
            Some(u) => Reply::json(200, w.user_json(u)),
            None => user_404(),
        },
        ("PUT", ["users", id, "active"]) => {
            if !w.users.contains_key(*id) {
                return user_404();
            }
            let Some(active) = r
                .json
                .as_ref()
                .and_then(|j| j.get("active"))
                .and_then(Value::as_bool)
            else {
                return app_error(
                    400,
                    "api.context.invalid_body_param.app_error",
                    "Invalid or missing active in request body.",
                );
            };
            if active {
                if let Some(u) = w.users.get_mut(*id) {
                    u.delete_at = 0;
                }
            } else {
                w.deactivate(id);
            }
            ok()
        }
        ("GET", ["users", id, "sessions"]) => {
            if !w.users.contains_key(*id) {
                return user_404();
            }
            let list: Vec<Value> = w
                .sessions
                .iter()
                .filter(|(_, u)| u.as_str() == *id)
                .map(|(s, u)| {
                    json!({
                        "id": s, "token": "", "create_at": 1_700_000_000_000i64,
                        "expires_at": 1_900_000_000_000i64, "last_activity_at": 1_700_000_000_000i64,
                        "user_id": u, "device_id": "", "roles": "system_user", "is_oauth": false,
                        "props": {}, "team_members": [],
                    })
                })
                .collect();
            Reply::json(200, Value::Array(list))
        }
        ("POST", ["users", id, "sessions", "revoke", "all"]) => {
            let id = id.to_string();
            w.sessions.retain(|_, u| *u != id);
            ok()
        }
        ("GET", ["users", id, "tokens"]) => {
            let page: usize = r.query("page").and_then(|v| v.parse().ok()).unwrap_or(0);
            let per: usize = r
                .query("per_page")
                .and_then(|v| v.parse().ok())
                .unwrap_or(60)
                .clamp(1, 200);
            let list: Vec<Value> = w
                .tokens
                .iter()
                .filter(|(_, (u, _, _))| u.as_str() == *id)
                .skip(page * per)
                .take(per)
                .map(|(t, (u, d, a))| json!({"id": t, "user_id": u, "description": d, "is_active": a}))
                .collect();
            Reply::json(200, Value::Array(list))
        }
        ("GET", ["users", id, "teams"]) => {
            if !w.users.contains_key(*id) {
                return user_404();
            }
            let list: Vec<Value> = w
                .teams_of(id)
                .iter()
                .filter_map(|t| w.teams.get(t))
                .map(|t| w.team_json(t))
                .collect();
            Reply::json(200, Value::Array(list))
        }
        ("GET", ["users", id, "channels"]) => {
            if !w.users.contains_key(*id) {
                return user_404();
            }
            let list: Vec<Value> = w
                .channels_of(id)
                .iter()
                .filter_map(|c| w.channels.get(c))
                .map(|c| w.channel_json(c))
                .collect();
            Reply::json(200, Value::Array(list))
        }
        ("GET", ["teams", id]) => match w.teams.get(*id) {
            Some(t) => Reply::json(200, w.team_json(t)),
            None => team_404(),
        },
        ("POST", ["teams", id, "regenerate_invite_id"]) => {
            if !w.teams.contains_key(*id) {
                return team_404();
            }
            let new = w.id("i");
            let Some(t) = w.teams.get_mut(*id) else {
                return team_404();
            };
            t.invite_id = new;
            let t = t.clone();
            Reply::json(200, w.team_json(&t))
        }
        ("GET", ["teams", tid, "members", uid]) => {
            match w.team_members.get(&(tid.to_string(), uid.to_string())) {
                Some(d) => Reply::json(
                    200,
                    json!({
                        "team_id": tid, "user_id": uid, "roles": "team_user", "delete_at": d,
                        "scheme_user": true, "scheme_admin": false, "scheme_guest": false,
                        "explicit_roles": "",
                    }),
                ),
                None => app_error(
                    404,
                    "app.team.get_member.missing.app_error",
                    "No team member found for that user ID and team ID.",
                ),
            }
        }
        ("DELETE", ["teams", tid, "members", uid]) => {
            if !w.teams.contains_key(*tid) {
                return team_404();
            }
            let key = (tid.to_string(), uid.to_string());
            if !w.team_members.contains_key(&key) {
                return app_error(
                    404,
                    "app.team.get_member.missing.app_error",
                    "No team member found for that user ID and team ID.",
                );
            }
            let t = w.now();
            w.team_members.insert(key, t);
            let in_team: BTreeSet<String> = w
                .channels
                .values()
                .filter(|c| c.team_id == *tid)
                .map(|c| c.id.clone())
                .collect();
            w.channel_members
                .retain(|(c, u)| !(u == uid && in_team.contains(c)));
            ok()
        }
        ("GET", ["channels", id]) => match w.channels.get(*id) {
            Some(c) => Reply::json(200, w.channel_json(c)),
            None => channel_404(),
        },
        ("GET", ["channels", cid, "members", uid]) => {
            if w.channel_members
                .contains(&(cid.to_string(), uid.to_string()))
            {
                Reply::json(
                    200,
                    json!({
                        "channel_id": cid, "user_id": uid, "roles": "channel_user",
                        "last_viewed_at": 0, "msg_count": 0, "mention_count": 0,
                        "notify_props": {}, "last_update_at": 0,
                    }),
                )
            } else {
                app_error(
                    404,
                    "app.channel.get_member.missing.app_error",
                    "No channel member found for that user ID and channel ID.",
                )
            }
        }
        ("DELETE", ["channels", cid, "members", uid]) => {
            if !w.channels.contains_key(*cid) {
                return channel_404();
            }
            if w.channel_members
                .remove(&(cid.to_string(), uid.to_string()))
            {
                ok()
            } else {
                app_error(
                    404,
                    "app.channel.get_member.missing.app_error",
                    "No channel member found for that user ID and channel ID.",
                )
            }
        }
        _ => app_error(
            404,
            "api.context.404.app_error",
            "Sorry, we could not find the page.",
        ),
    }
}
