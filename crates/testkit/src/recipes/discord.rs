//! A stateful Discord stand-in (one guild's members) for the `discord` recipe: find the leaver
//! among the company server's members and remove them
//!
//! Shapes from Discord's developer documentation (API v10) as we read it; not yet checked against
//! Discord's published OpenAPI description (discord/discord-api-spec, in no registry):
//! Under `/api/v10/guilds/{GUILD}` (the one guild, [`GUILD`]; another is 404 `Unknown Guild`):
//! - `GET /members/search?query=Q&limit=N`: members whose username or nickname
//!   starts with Q (case-insensitive), up to `limit` (1-1000, default 1).
//! - `GET /members/{user_id}`: the guild member `{"user": {"id", "username", "global_name", ...},
//!   "nick", "roles", "joined_at", ...}`; 404 `{"message": "Unknown Member", "code": 10007}`.
//! - `DELETE /members/{user_id}`: the kick, 204; 404 (10007) when not a member.
//!
//! The token is `Authorization: Bot TOKEN` (anything else: 401 `{"message": "401: Unauthorized",
//! "code": 0}`). Ids are snowflakes (numeric strings). Simplifications: one guild, no roles or
//! permissions, no rate buckets (a 429 with `Retry-After` is injected with [`Standin::fail_next`]).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{Reply, Req, Standin, Vendor};
use crate::TestkitError;

/// The Discord stand-in
pub type DiscordStandin = Standin<World>;

/// Starts an empty Discord stand-in; it accepts `Authorization: Bot TOKEN`
pub fn start() -> Result<DiscordStandin, TestkitError> {
    Standin::start(
        Vendor {
            name: "discord stand-in",
            scheme: "Bot ",
            answer,
            unauthorized: |_| Reply::json(401, json!({"message": "401: Unauthorized", "code": 0})),
            open: &[],
            basic_user: None,
        },
        World::default(),
    )
}

/// A member of the guild
#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub username: String,
    pub nick: Option<String>,
}

/// The guild's members
#[derive(Debug, Default)]
pub struct World {
    next: u64,
    pub members: BTreeMap<String, Member>,
}

impl World {
    /// Adds a member; returns its user id (a snowflake)
    pub fn member(&mut self, username: &str, nick: Option<&str>) -> String {
        self.next += 1;
        let id = format!("{}", 80_351_110_224_678_912u64 + self.next);
        self.members.insert(
            id.clone(),
            Member {
                id: id.clone(),
                username: username.to_owned(),
                nick: nick.map(str::to_owned),
            },
        );
        id
    }

    fn json(m: &Member) -> Value {
        json!({
            "user": {"id": m.id, "username": m.username, "global_name": m.username,
                     "discriminator": "0", "avatar": null},
            "nick": m.nick, "roles": [], "joined_at": "2024-01-01T00:00:00.000000+00:00",
            "deaf": false, "mute": false, "flags": 0, "pending": false,
        })
    }
}

fn unknown_member() -> Reply {
    Reply::json(404, json!({"message": "Unknown Member", "code": 10007}))
}

/// The one guild's id
pub const GUILD: &str = "81384788765712384";

fn answer(w: &mut World, r: &Req) -> Reply {
    let p = r.path();
    let rest = match p.as_slice() {
        ["api", "v10", "guilds", g, rest @ ..] if *g == GUILD => rest,
        ["api", "v10", "guilds", ..] => {
            return Reply::json(404, json!({"message": "Unknown Guild", "code": 10004}))
        }
        _ => return Reply::json(404, json!({"message": "404: Not Found", "code": 0})),
    };
    match (r.method.as_str(), rest) {
        ("GET", ["members", "search"]) => {
            let Some(q) = r.query("query").map(str::to_lowercase) else {
                return Reply::json(400, json!({"message": "Invalid Form Body", "code": 50035}));
            };
            let limit: usize = r
                .query("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(1)
                .clamp(1, 1000);
            let list: Vec<Value> = w
                .members
                .values()
                .filter(|m| {
                    m.username.to_lowercase().starts_with(&q)
                        || m.nick
                            .as_deref()
                            .is_some_and(|n| n.to_lowercase().starts_with(&q))
                })
                .take(limit)
                .map(World::json)
                .collect();
            Reply::json(200, Value::Array(list))
        }
        ("GET", ["members", id]) => match w.members.get(*id) {
            Some(m) => Reply::json(200, World::json(m)),
            None => unknown_member(),
        },
        ("DELETE", ["members", id]) => match w.members.remove(*id) {
            Some(_) => Reply::empty(204),
            None => unknown_member(),
        },
        _ => Reply::json(404, json!({"message": "404: Not Found", "code": 0})),
    }
}
