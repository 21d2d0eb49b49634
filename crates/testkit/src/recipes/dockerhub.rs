//! A stateful Docker Hub stand-in (one organization's members and teams) for the `dockerhub`
//! recipe
//!
//! Shapes and statuses from Docker's own Hub API description (docker/docs
//! `content/reference/api/hub/latest.yaml`, trimmed in `tests/recipes/docker-hub.trimmed.yaml`);
//! every exchange of the recipe's tests is checked against it afterwards by
//! `tests/recipes/hub_check.py` (openapi-core), with the allowances that file names.
//!
//! - `POST /v2/auth/token {"identifier": ORG, "secret": OAT}`: 200 `{"access_token": JWT}` (here
//!   the stand-in's token) for the organization and its access token, else 401 `{"detail"}`.
//!   No Authorization header needed (the description's `security: []`).
//! - `GET /v2/orgs/{org}/members?search=&page=&page_size=&type=`: one page
//!   `{"count", "next", "previous", "results": [org_member]}`; `search` matches a part of the
//!   username, full name or email, case ignored (so `malice` answers a search for `alice`: the
//!   recipe's match rule decides); `type=member` leaves invitees out (this stand-in has none);
//!   `next`/`previous` are absolute URLs or null.
//! - `DELETE /v2/orgs/{org}/members/{username}`: 204 and the member leaves every group of the
//!   organization ("Removes the member from the org, ie. all groups in the org, unless they're the
//!   last owner"); 404 `{"detail"}` when not a member; the last owner: 400 `{"detail"}` (the
//!   description names 400 and 403 but not which; the status is our guess).
//! - `GET /v2/orgs/{org}/groups?username=`: the groups (teams), or those of one member.
//! - `GET /v2/orgs/{org}/invites`: `{"data": [invite]}`, the pending invitations (`invitee` a
//!   Docker ID or an email); `DELETE /v2/invites/{id}`: 204, the invitation cancelled; 404 when
//!   there is none.
//!
//! Another organization is 404. Every other request needs `Authorization: Bearer` with the
//! exchanged token (else 401 `{"detail"}`). Not modelled: accepting an invitation, roles other than Owner and
//! Member, SSO, rate buckets (a 429 is injected with [`Standin::fail_next`]; Docker's carries
//! `X-Retry-After`, a unix time).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{Reply, Req, Standin, Vendor};
use crate::TestkitError;

/// The Docker Hub stand-in
pub type DockerHubStandin = Standin<World>;

/// The organization every stand-in holds
pub const ORG: &str = "acme";

/// Starts a Docker Hub stand-in holding the empty organization [`ORG`]; its organization access
/// token is [`World::oat`], exchanged at `POST /v2/auth/token` for [`Standin::token`]
pub fn start() -> Result<DockerHubStandin, TestkitError> {
    let world = World {
        oat: format!("dckr_oat_{:016x}", rand::random::<u64>()),
        ..World::default()
    };
    let s = Standin::start(
        Vendor {
            name: "docker hub stand-in",
            scheme: "Bearer ",
            answer,
            unauthorized: |_| {
                Reply::json(
                    401,
                    json!({"detail": "Authentication credentials were not provided."}),
                )
            },
            open: &["/v2/auth/token"],
            basic_user: None,
        },
        world,
    )?;
    let token = s.token().to_owned();
    s.world(|w| w.access_token = token);
    Ok(s)
}

/// A member of the organization
#[derive(Debug, Clone)]
pub struct Member {
    /// The trimmed UUID Docker gives a user
    pub id: String,
    /// The Docker ID
    pub username: String,
    pub full_name: String,
    pub email: String,
    /// `Owner` or `Member`
    pub role: String,
}

/// The organization
#[derive(Debug, Default)]
pub struct World {
    next: u64,
    /// The organization access token (`dckr_oat_...`) the token exchange takes
    pub oat: String,
    access_token: String,
    /// Token exchanges answered 200
    pub exchanged: u32,
    /// By username
    pub members: BTreeMap<String, Member>,
    /// Group (team) name -> (id, member usernames)
    pub groups: BTreeMap<String, (u64, Vec<String>)>,
    /// Pending invitations: id -> (invitee, team)
    pub invites: BTreeMap<String, (String, String)>,
}

impl World {
    /// Adds a member (`owner`: the Owner role, and a member of the `owners` team); returns the
    /// username
    pub fn member(&mut self, username: &str, full_name: &str, email: &str, owner: bool) -> String {
        self.next += 1;
        let id = format!(
            "{:032x}",
            0x0ab7_0deb_065a_43fc_u128 << 64 | u128::from(self.next)
        );
        self.members.insert(
            username.to_owned(),
            Member {
                id,
                username: username.to_owned(),
                full_name: full_name.to_owned(),
                email: email.to_owned(),
                role: if owner { "Owner" } else { "Member" }.to_owned(),
            },
        );
        if owner {
            self.join("owners", username);
        }
        username.to_owned()
    }

    /// Puts a member in a group (team), creating the group
    pub fn join(&mut self, group: &str, username: &str) {
        let n = self.groups.len() as u64 + 10;
        let g = self
            .groups
            .entry(group.to_owned())
            .or_insert_with(|| (n, Vec::new()));
        if !g.1.iter().any(|u| u == username) {
            g.1.push(username.to_owned());
        }
    }

    /// The groups a username is in
    pub fn groups_of(&self, username: &str) -> Vec<String> {
        self.groups
            .iter()
            .filter(|(_, (_, m))| m.iter().any(|u| u == username))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Invites a Docker ID or an email to a team of the organization; returns the invite's id
    pub fn invite(&mut self, invitee: &str, team: &str) -> String {
        self.next += 1;
        let id = format!("e36eca69-4cc8-4f17-9845-{:012x}", self.next);
        self.invites
            .insert(id.clone(), (invitee.to_owned(), team.to_owned()));
        id
    }

    /// The trimmed UUID of a member
    pub fn id_of(&self, username: &str) -> Option<String> {
        self.members.get(username).map(|m| m.id.clone())
    }

    fn json(&self, m: &Member) -> Value {
        json!({
            "id": m.id,
            "username": m.username,
            "full_name": m.full_name,
            "company": "",
            "location": "",
            "profile_url": "",
            "gravatar_email": "",
            "gravatar_url": "",
            "date_joined": "2021-01-05T21:06:53.506400Z",
            "type": "User",
            "email": m.email,
            "role": m.role,
            "groups": self.groups_of(&m.username),
            "is_guest": false,
        })
    }

    fn group_json(name: &str, id: u64, count: usize) -> Value {
        json!({
            "id": id,
            "uuid": format!("{id:08x}-0000-4000-8000-000000000000"),
            "name": name,
            "description": "",
            "member_count": count,
        })
    }
}

fn detail(status: u16, text: &str) -> Reply {
    Reply::json(status, json!({ "detail": text }))
}

/// One page of `all`, as Docker's Django REST pages answer
fn page(r: &Req, path: &str, all: Vec<Value>) -> Reply {
    let num = |k: &str, d: usize| {
        r.query(k)
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(d)
    };
    let (page, size) = (num("page", 1), num("page_size", 25).min(100));
    let count = all.len();
    let results: Vec<Value> = all.into_iter().skip((page - 1) * size).take(size).collect();
    let link = |p: usize| {
        let mut q: Vec<(String, String)> = r
            .query
            .iter()
            .filter(|(k, _)| k != "page")
            .cloned()
            .collect();
        q.push(("page".into(), p.to_string()));
        let q = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(q)
            .finish();
        Value::String(format!("https://hub.docker.com{path}?{q}"))
    };
    Reply::json(
        200,
        json!({
            "count": count,
            "next": if page * size < count { link(page + 1) } else { Value::Null },
            "previous": if page > 1 { link(page - 1) } else { Value::Null },
            "results": results,
        }),
    )
}

fn answer(w: &mut World, r: &Req) -> Reply {
    let p = r.path();
    if p.as_slice() == ["v2", "auth", "token"] && r.method == "POST" {
        let field = |k: &str| {
            r.json
                .as_ref()
                .and_then(|j| j.get(k))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        return match (field("identifier"), field("secret")) {
            (Some(i), Some(s)) if i == ORG && s == w.oat => {
                w.exchanged += 1;
                Reply::json(200, json!({ "access_token": w.access_token }))
            }
            _ => detail(401, "Incorrect authentication credentials"),
        };
    }
    if let ["v2", "invites", id] = p.as_slice() {
        if r.method != "DELETE" {
            return detail(404, "Not found.");
        }
        return match w.invites.remove(*id) {
            Some(_) => Reply::empty(204),
            None => detail(404, "Invite not found."),
        };
    }
    let rest = match p.as_slice() {
        ["v2", "orgs", org, rest @ ..] if *org == ORG => rest,
        ["v2", "orgs", ..] => return detail(404, "Not found."),
        _ => return detail(404, "Not found."),
    };
    match (r.method.as_str(), rest) {
        ("GET", ["members"]) => {
            let q = r.query("search").map(str::to_lowercase).unwrap_or_default();
            if r.query("type").is_some_and(|t| t == "invitee") {
                return page(r, &format!("/v2/orgs/{ORG}/members"), Vec::new());
            }
            let all: Vec<Value> = w
                .members
                .values()
                .filter(|m| {
                    [&m.username, &m.full_name, &m.email]
                        .iter()
                        .any(|f| f.to_lowercase().contains(&q))
                })
                .map(|m| w.json(m))
                .collect();
            page(r, &format!("/v2/orgs/{ORG}/members"), all)
        }
        ("DELETE", ["members", username]) => {
            let Some(m) = w.members.get(*username) else {
                return detail(404, "Member not found.");
            };
            let owners = w.members.values().filter(|m| m.role == "Owner").count();
            if m.role == "Owner" && owners == 1 {
                return detail(400, "Cannot remove the last owner of the organization.");
            }
            w.members.remove(*username);
            for (_, members) in w.groups.values_mut() {
                members.retain(|u| u != username);
            }
            Reply::empty(204)
        }
        ("GET", ["invites"]) => {
            let data: Vec<Value> = w
                .invites
                .iter()
                .map(|(id, (invitee, team))| {
                    json!({
                        "id": id, "inviter_username": "root", "invitee": invitee, "org": ORG,
                        "team": team, "created_at": "2021-10-28T18:30:19.520861Z",
                    })
                })
                .collect();
            Reply::json(200, json!({ "data": data }))
        }
        ("GET", ["groups"]) => {
            let all: Vec<Value> = w
                .groups
                .iter()
                .filter(|(_, (_, m))| r.query("username").is_none_or(|u| m.iter().any(|x| x == u)))
                .map(|(n, (id, m))| World::group_json(n, *id, m.len()))
                .collect();
            page(r, &format!("/v2/orgs/{ORG}/groups"), all)
        }
        _ => detail(404, "Not found."),
    }
}
