//! A small generic RMM (remote monitoring and management) stand-in of our own, for the
//! `rmm_client` recipe: an MSP's client (a company) with its sites, the agents (devices) on them,
//! the packages deployed to each agent, the policies assigned to the company, and the client's
//! portal users
//!
//! **No vendor's description**: ConnectWise RMM (and its peers) publish no OpenAPI description
//! we could check this against, so the API is ours, in the common shape of these products, and
//! what it enforces is the order ConnectWise documents for offboarding a client: packages and
//! policies first, then agents, then users, then sites, then the company. Each `DELETE` whose
//! prerequisites are still there is refused with 409 `{"error": "conflict", "message": ...}`,
//! so a recipe that gets the order wrong fails its test.
//!
//! Under `/api/v1`, a bearer token, JSON, lists as `{"data": [...], "page", "pageSize",
//! "total"}` with `page` (from 1) and `pageSize` (default and max 100):
//! - `GET /companies` (every client: `id`, `name`, `domain`), `GET`/`DELETE /companies/{id}`
//! - `GET /companies/{id}/sites`, `GET`/`DELETE /sites/{id}`
//! - `GET /sites/{id}/agents`, `GET`/`DELETE /agents/{id}` (the agent is retired)
//! - `GET /agents/{id}/packages`, `GET`/`DELETE /agents/{id}/packages/{package_id}`
//! - `GET /companies/{id}/policies`, `GET`/`DELETE /companies/{id}/policies/{policy_id}`
//! - `GET /companies/{id}/users`, `GET`/`DELETE /users/{id}`
//!
//! A missing thing is a 404 `{"error": "not_found"}`; a wrong token a 401.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{Reply, Req, Standin, Vendor};
use crate::TestkitError;

/// The RMM stand-in
pub type RmmStandin = Standin<World>;

/// Starts an empty RMM stand-in
pub fn start() -> Result<RmmStandin, TestkitError> {
    Standin::start(
        Vendor {
            name: "rmm stand-in",
            scheme: "Bearer ",
            answer,
            unauthorized: |_| {
                Reply::json(
                    401,
                    json!({"error": "unauthorized", "message": "invalid or missing token"}),
                )
            },
            open: &[],
            basic_user: None,
        },
        World::default(),
    )
}

/// Everything the stand-in knows: id -> (owner id, name); a company's owner is its domain
#[derive(Debug, Default)]
pub struct World {
    next: u64,
    /// id -> (domain, name)
    pub companies: BTreeMap<String, (String, String)>,
    /// id -> (company id, name)
    pub sites: BTreeMap<String, (String, String)>,
    /// id -> (site id, hostname)
    pub agents: BTreeMap<String, (String, String)>,
    /// id -> (agent id, package name)
    pub packages: BTreeMap<String, (String, String)>,
    /// id -> (company id, policy name)
    pub policies: BTreeMap<String, (String, String)>,
    /// id -> (company id, email)
    pub users: BTreeMap<String, (String, String)>,
}

impl World {
    fn id(&mut self) -> String {
        self.next += 1;
        format!("{}", 1000 + self.next)
    }

    /// A client company with its domain; returns its id
    pub fn company(&mut self, name: &str, domain: &str) -> String {
        let id = self.id();
        self.companies
            .insert(id.clone(), (domain.to_owned(), name.to_owned()));
        id
    }

    /// A site of the company
    pub fn site(&mut self, company: &str, name: &str) -> String {
        let id = self.id();
        self.sites
            .insert(id.clone(), (company.to_owned(), name.to_owned()));
        id
    }

    /// An agent (a managed device) on the site
    pub fn agent(&mut self, site: &str, hostname: &str) -> String {
        let id = self.id();
        self.agents
            .insert(id.clone(), (site.to_owned(), hostname.to_owned()));
        id
    }

    /// A package deployed to the agent
    pub fn package(&mut self, agent: &str, name: &str) -> String {
        let id = self.id();
        self.packages
            .insert(id.clone(), (agent.to_owned(), name.to_owned()));
        id
    }

    /// A policy assigned to the company
    pub fn policy(&mut self, company: &str, name: &str) -> String {
        let id = self.id();
        self.policies
            .insert(id.clone(), (company.to_owned(), name.to_owned()));
        id
    }

    /// A portal user of the company
    pub fn user(&mut self, company: &str, email: &str) -> String {
        let id = self.id();
        self.users
            .insert(id.clone(), (company.to_owned(), email.to_owned()));
        id
    }

    /// How many things are left that belong to the company (itself included)
    pub fn left_of(&self, company: &str) -> usize {
        let sites: Vec<&String> = self.of(&self.sites, company);
        let agents: Vec<&String> = self
            .agents
            .iter()
            .filter(|(_, (s, _))| sites.contains(&s))
            .map(|(id, _)| id)
            .collect();
        usize::from(self.companies.contains_key(company))
            + sites.len()
            + agents.len()
            + self
                .packages
                .values()
                .filter(|(a, _)| agents.contains(&a))
                .count()
            + self.of(&self.policies, company).len()
            + self.of(&self.users, company).len()
    }

    fn of<'a>(&self, m: &'a BTreeMap<String, (String, String)>, owner: &str) -> Vec<&'a String> {
        m.iter()
            .filter(|(_, (o, _))| o == owner)
            .map(|(id, _)| id)
            .collect()
    }
}

fn not_found() -> Reply {
    Reply::json(
        404,
        json!({"error": "not_found", "message": "no such object"}),
    )
}

fn conflict(message: &str) -> Reply {
    Reply::json(409, json!({"error": "conflict", "message": message}))
}

fn list(r: &Req, all: Vec<Value>) -> Reply {
    let page: usize = r
        .query("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let size: usize = r
        .query("pageSize")
        .and_then(|p| p.parse().ok())
        .unwrap_or(100)
        .clamp(1, 100);
    let data: Vec<Value> = all
        .iter()
        .skip((page - 1) * size)
        .take(size)
        .cloned()
        .collect();
    Reply::json(
        200,
        json!({"data": data, "page": page, "pageSize": size, "total": all.len()}),
    )
}

fn answer(w: &mut World, r: &Req) -> Reply {
    let p = r.path();
    let Some(rest) = p.strip_prefix(&["api", "v1"][..]) else {
        return not_found();
    };
    let m = r.method.as_str();
    let obj = |id: &str, kind: &str, owner_key: &str, owner: &str, name: &str| json!({"id": id, "type": kind, owner_key: owner, "name": name});
    match (m, rest) {
        ("GET", ["companies"]) => {
            let all = w
                .companies
                .iter()
                .map(|(id, (d, n))| json!({"id": id, "name": n, "domain": d}))
                .collect();
            list(r, all)
        }
        ("GET", ["companies", id]) => match w.companies.get(*id) {
            Some((d, n)) => Reply::json(200, json!({"id": id, "name": n, "domain": d})),
            None => not_found(),
        },
        ("DELETE", ["companies", id]) => {
            if !w.companies.contains_key(*id) {
                return not_found();
            }
            if !w.of(&w.sites, id).is_empty() || !w.of(&w.users, id).is_empty() {
                return conflict("the company still has sites or users");
            }
            if !w.of(&w.policies, id).is_empty() {
                return conflict("the company still has policies assigned");
            }
            w.companies.remove(*id);
            Reply::empty(204)
        }
        ("GET", ["companies", id, kind @ ("sites" | "policies" | "users")]) => {
            if !w.companies.contains_key(*id) {
                return not_found();
            }
            let (m, k) = match *kind {
                "sites" => (&w.sites, "site"),
                "policies" => (&w.policies, "policy"),
                _ => (&w.users, "user"),
            };
            let all = m
                .iter()
                .filter(|(_, (o, _))| o == id)
                .map(|(i, (o, n))| {
                    let mut v = obj(i, k, "companyId", o, n);
                    if k == "user" {
                        v["email"] = json!(n);
                    }
                    v
                })
                .collect();
            list(r, all)
        }
        ("GET", ["companies", cid, "policies", pid]) => match w.policies.get(*pid) {
            Some((c, n)) if c == cid => Reply::json(200, obj(pid, "policy", "companyId", c, n)),
            _ => not_found(),
        },
        ("DELETE", ["companies", cid, "policies", pid]) => {
            match w.policies.get(*pid) {
                Some((c, _)) if c == cid => {}
                _ => return not_found(),
            }
            w.policies.remove(*pid);
            Reply::empty(204)
        }
        ("GET", ["sites", id]) => match w.sites.get(*id) {
            Some((c, n)) => Reply::json(200, obj(id, "site", "companyId", c, n)),
            None => not_found(),
        },
        ("DELETE", ["sites", id]) => {
            let Some((company, _)) = w.sites.get(*id).cloned() else {
                return not_found();
            };
            if !w.of(&w.agents, id).is_empty() {
                return conflict("the site still has agents");
            }
            if !w.of(&w.users, &company).is_empty() {
                return conflict("the company still has users: remove them before its sites");
            }
            w.sites.remove(*id);
            Reply::empty(204)
        }
        ("GET", ["sites", id, "agents"]) => {
            if !w.sites.contains_key(*id) {
                return not_found();
            }
            let all = w
                .agents
                .iter()
                .filter(|(_, (s, _))| s == id)
                .map(|(i, (s, n))| {
                    let mut v = obj(i, "agent", "siteId", s, n);
                    v["hostname"] = json!(n);
                    v
                })
                .collect();
            list(r, all)
        }
        ("GET", ["agents", id]) => match w.agents.get(*id) {
            Some((s, n)) => Reply::json(200, obj(id, "agent", "siteId", s, n)),
            None => not_found(),
        },
        ("DELETE", ["agents", id]) => {
            let Some((site, _)) = w.agents.get(*id).cloned() else {
                return not_found();
            };
            if !w.of(&w.packages, id).is_empty() {
                return conflict("the agent still has packages deployed");
            }
            let company = w
                .sites
                .get(&site)
                .map(|(c, _)| c.clone())
                .unwrap_or_default();
            if !w.of(&w.policies, &company).is_empty() {
                return conflict("the company still has policies assigned to its agents");
            }
            w.agents.remove(*id);
            Reply::empty(204)
        }
        ("GET", ["agents", id, "packages"]) => {
            if !w.agents.contains_key(*id) {
                return not_found();
            }
            let all = w
                .packages
                .iter()
                .filter(|(_, (a, _))| a == id)
                .map(|(i, (a, n))| obj(i, "package", "agentId", a, n))
                .collect();
            list(r, all)
        }
        ("GET", ["agents", aid, "packages", pid]) => match w.packages.get(*pid) {
            Some((a, n)) if a == aid => Reply::json(200, obj(pid, "package", "agentId", a, n)),
            _ => not_found(),
        },
        ("DELETE", ["agents", aid, "packages", pid]) => {
            match w.packages.get(*pid) {
                Some((a, _)) if a == aid => {}
                _ => return not_found(),
            }
            w.packages.remove(*pid);
            Reply::empty(204)
        }
        ("GET", ["users", id]) => match w.users.get(*id) {
            Some((c, e)) => {
                let mut v = obj(id, "user", "companyId", c, e);
                v["email"] = json!(e);
                Reply::json(200, v)
            }
            None => not_found(),
        },
        ("DELETE", ["users", id]) => {
            let Some((company, _)) = w.users.get(*id).cloned() else {
                return not_found();
            };
            let sites = w.of(&w.sites, &company);
            if w.agents.values().any(|(s, _)| sites.contains(&s)) {
                return conflict("the company still has agents: retire them before its users");
            }
            w.users.remove(*id);
            Reply::empty(204)
        }
        _ => not_found(),
    }
}
