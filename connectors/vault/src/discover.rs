//! Read-only discovery: the leaver's entity through its alias on every configured auth mount,
//! its direct groups and policies, the tokens tied to it, and whether they hold a key share.
//!
//! Calls for one subject: `GET sys/auth` (the mounts' accessors), one `identity/lookup/entity`
//! per configured mount, one group read per direct group; with `scan_tokens`, `LIST
//! auth/token/accessors` and one `lookup-accessor` per token **in the cluster** (Vault cannot
//! list the tokens of one entity), shared by all the subjects of a `discover_many`. When a
//! subject is a key holder the same scan lists the cluster's root tokens (no entity owns them,
//! so only the key holder's plan can end them), and `auth/token/lookup-self` tells whether the
//! connector's own token is one of them or could die with one.
//!
//! Everything is pinned to the entity id: a lookup's answer is checked here (the entity must
//! carry an alias of that name on that mount's accessor), never taken from the server's filter
//! on trust.

use crate::classify::VaultAnswer;
use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use revoke_core::{Account, ConnectorError, Discovery, Finding, Subject};
use serde_json::{json, Value};

use crate::client::{encode, Client};
use crate::config::{RootTokens, VaultConfig};

pub const ENTITY: &str = "entity";
pub const ALIAS: &str = "alias";
pub const GROUP_MEMBERSHIP: &str = "group_membership";
pub const POLICY: &str = "policy";
pub const TOKEN: &str = "token";
pub const KEY_HOLDER: &str = "key_holder";
pub const ROOT_TOKEN: &str = "root_token";

/// The id kind of an entity account.
pub const ENTITY_ID: &str = "entity id";
/// The id kind of a key holder's account (a config entry: Vault stores no key holders).
pub const KEY_HOLDER_ENTRY: &str = "key holder entry";

/// An auth mount as `sys/auth` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub path: String,
    pub kind: String,
    pub accessor: String,
}

/// A live token and what it is tied to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub accessor: String,
    pub entity_id: String,
    /// The path that created it (`auth/userpass/login/alice`).
    pub path: String,
    pub display_name: String,
    pub policies: Vec<String>,
    /// Unix seconds.
    pub creation_time: i64,
}

impl TokenInfo {
    /// A root token no entity owns: made by `sys/generate-root`, `sys/init`, or created by a
    /// root token with the `root` policy. Nothing ties it to a person.
    pub fn is_unowned_root(&self) -> bool {
        self.entity_id.is_empty() && self.policies.iter().any(|p| p == "root")
    }
}

/// The connector's own token, as `auth/token/lookup-self` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfInfo {
    pub accessor: String,
    /// No parent: revoking another token never revokes this one.
    pub orphan: bool,
}

/// The connector's own token; `None` when its policy may not look itself up (403).
pub async fn lookup_self(client: &Client) -> Result<Option<SelfInfo>, ConnectorError> {
    let path = "/v1/auth/token/lookup-self";
    let r = client.send(Method::GET, path, None).await?;
    if r.status == 403 {
        return Ok(None);
    }
    if r.status != 200 {
        return Err(crate::classify::status(&Method::GET, path, &r));
    }
    let v = r.json().unwrap_or(Value::Null);
    Ok(Some(SelfInfo {
        accessor: v["data"]["accessor"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        orphan: v["data"]["orphan"].as_bool().unwrap_or(false),
    }))
}

/// `/v1/` + `path` with every segment percent-encoded (`userpass` and `corp/ldap` mounts alike).
pub fn v1(segments: &[&str]) -> String {
    let mut out = String::from("/v1");
    for s in segments {
        for part in s.split('/').filter(|p| !p.is_empty()) {
            out.push('/');
            out.push_str(&encode(part));
        }
    }
    out
}

/// A path made of fixed words and one untrusted value, which stays one segment.
pub fn v1_with(prefix: &str, value: &str) -> String {
    format!("{}/{}", v1(&[prefix]), encode(value))
}

/// The auth mounts of the cluster (or namespace), by path without the trailing `/`.
pub async fn mounts(client: &Client) -> Result<BTreeMap<String, MountInfo>, ConnectorError> {
    let path = "/v1/sys/auth";
    let data = client.get_data(path).await?.unwrap_or(Value::Null);
    let Some(map) = data.as_object() else {
        return Err(revoke_http::bad_response(
            &Method::GET,
            path,
            "expected data to be a table of mounts",
        ));
    };
    Ok(map
        .iter()
        .map(|(p, m)| {
            let path = p.trim_end_matches('/').to_string();
            (
                path.clone(),
                MountInfo {
                    path,
                    kind: m["type"].as_str().unwrap_or_default().to_string(),
                    accessor: m["accessor"].as_str().unwrap_or_default().to_string(),
                },
            )
        })
        .collect())
}

/// The entity holding an alias named `name` on the mount with `accessor`, checked on our side.
pub async fn lookup_alias(
    client: &Client,
    name: &str,
    accessor: &str,
) -> Result<Option<Value>, ConnectorError> {
    let body = json!({"alias_name": name, "alias_mount_accessor": accessor});
    let Some(v) = client
        .read(Method::POST, "/v1/identity/lookup/entity", Some(&body))
        .await?
    else {
        return Ok(None);
    };
    let entity = v.get("data").cloned().unwrap_or(Value::Null);
    let holds = entity["aliases"].as_array().is_some_and(|a| {
        a.iter()
            .any(|al| al["name"] == name && al["mount_accessor"] == accessor)
    });
    Ok(holds.then_some(entity))
}

/// A live token's facts, `None` when the accessor names no token (Vault: 400 "invalid accessor").
pub async fn lookup_accessor(
    client: &Client,
    accessor: &str,
) -> Result<Option<TokenInfo>, ConnectorError> {
    let path = "/v1/auth/token/lookup-accessor";
    let body = json!({ "accessor": accessor });
    let r = client.send(Method::POST, path, Some(&body)).await?;
    if r.status == 400 && r.errors().contains("invalid accessor") {
        return Ok(None);
    }
    if r.status != 200 {
        return Err(crate::classify::status(&Method::POST, path, &r));
    }
    let v = r.json().unwrap_or(Value::Null);
    let d = &v["data"];
    Ok(Some(TokenInfo {
        accessor: accessor.to_string(),
        entity_id: d["entity_id"].as_str().unwrap_or_default().to_string(),
        path: d["path"].as_str().unwrap_or_default().to_string(),
        display_name: d["display_name"].as_str().unwrap_or_default().to_string(),
        policies: strs(&d["policies"]),
        creation_time: d["creation_time"].as_i64().unwrap_or_default(),
    }))
}

/// What one scan of the cluster's tokens found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Tokens tied to one of the entities asked about.
    pub tokens: Vec<TokenInfo>,
    /// Root tokens no entity owns (only when asked for).
    pub roots: Vec<TokenInfo>,
}

/// Every live token tied to one of `entities` (and, with `roots`, every root token no entity
/// owns): LIST the accessors, look each one up.
pub async fn scan_tokens(
    client: &Client,
    entities: &BTreeSet<String>,
    roots: bool,
) -> Result<Scan, ConnectorError> {
    let mut out = Scan::default();
    if entities.is_empty() && !roots {
        return Ok(out);
    }
    let keys: Vec<String> = client
        .read(Method::GET, "/v1/auth/token/accessors?list=true", None)
        .await?
        .and_then(|v| {
            v["data"]["keys"].as_array().map(|a| {
                a.iter()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect()
            })
        })
        .unwrap_or_default();
    for k in keys {
        if let Some(t) = lookup_accessor(client, &k).await? {
            if entities.contains(&t.entity_id) {
                out.tokens.push(t);
            } else if roots && t.is_unowned_root() {
                out.roots.push(t);
            }
        }
    }
    out.tokens.sort_by(|a, b| a.accessor.cmp(&b.accessor));
    out.roots
        .sort_by(|a, b| (a.creation_time, &a.accessor).cmp(&(b.creation_time, &b.accessor)));
    Ok(out)
}

/// What one subject's lookups found before the token scan.
struct Found {
    entities: BTreeMap<String, (Value, Vec<String>)>,
    notes: Vec<String>,
}

async fn find(
    client: &Client,
    cfg: &VaultConfig,
    instance: &str,
    subject: &Subject,
    all: &BTreeMap<String, MountInfo>,
) -> Result<Found, ConnectorError> {
    let mut found = Found {
        entities: BTreeMap::new(),
        notes: Vec::new(),
    };
    for (path, m) in &cfg.mounts {
        let key = path.trim_matches('/');
        let Some(info) = all.get(key) else {
            found.notes.push(format!(
                "auth mount {key}/ is configured but not enabled in the cluster: not searched"
            ));
            continue;
        };
        if info.kind != m.kind {
            found.notes.push(format!(
                "auth mount {key}/ is of type {} in the cluster, configured as {}: searched as it is",
                info.kind, m.kind
            ));
        }
        let Some(mut name) = m.alias_name(instance, subject) else {
            continue;
        };
        // userpass stores and logs in every username lowercased (measured on OpenBao 2.7.2:
        // user "Carol" is "carol", and so is the alias of a login as "CAROL").
        if info.kind == "userpass" {
            name = name.to_lowercase();
        }
        if let Some(entity) = lookup_alias(client, &name, &info.accessor).await? {
            let id = entity["id"].as_str().unwrap_or_default().to_string();
            if id.is_empty() {
                return Err(revoke_http::bad_response(
                    &Method::POST,
                    "/v1/identity/lookup/entity",
                    "expected the entity's id",
                ));
            }
            let e = found
                .entities
                .entry(id)
                .or_insert_with(|| (entity.clone(), Vec::new()));
            e.1.push(format!("alias {name} on {key}/"));
        }
    }
    Ok(found)
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

async fn assemble(
    client: &Client,
    cfg: &VaultConfig,
    instance: &str,
    subject: &Subject,
    found: Found,
    scan: &Scan,
    own: &Option<SelfInfo>,
) -> Result<Discovery, ConnectorError> {
    let tokens = &scan.tokens;
    let mut d = Discovery::not_found(instance, &subject.id);
    d.notes = found.notes;
    let finding = |kind: &str, target: &str, attrs: Vec<(&str, String)>| Finding {
        connector: instance.to_string(),
        subject: subject.id.clone(),
        kind: kind.to_string(),
        target: target.to_string(),
        attrs: attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    };
    for (id, (entity, matched)) in &found.entities {
        let name = entity["name"].as_str().unwrap_or_default().to_string();
        let mut acct = Account::new(id, ENTITY_ID, &name);
        acct.matched_by = matched.join(", ");
        acct.identifiers.insert(name.clone());
        let disabled = entity["disabled"].as_bool().unwrap_or(false);
        let aliases = entity["aliases"].as_array().cloned().unwrap_or_default();
        d.findings.push(finding(
            ENTITY,
            id,
            vec![
                ("name", name.clone()),
                ("disabled", disabled.to_string()),
                ("aliases", aliases.len().to_string()),
            ],
        ));
        for al in &aliases {
            let alias_name = al["name"].as_str().unwrap_or_default().to_string();
            acct.identifiers.insert(alias_name.clone());
            d.findings.push(finding(
                ALIAS,
                al["id"].as_str().unwrap_or_default(),
                vec![
                    ("entity_id", id.clone()),
                    ("name", alias_name),
                    (
                        "mount_path",
                        al["mount_path"]
                            .as_str()
                            .unwrap_or_default()
                            .trim_start_matches("auth/")
                            .trim_end_matches('/')
                            .to_string(),
                    ),
                    (
                        "mount_type",
                        al["mount_type"].as_str().unwrap_or_default().to_string(),
                    ),
                    (
                        "mount_accessor",
                        al["mount_accessor"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    ),
                ],
            ));
        }
        if let Some(meta) = entity["metadata"].as_object() {
            for (k, v) in meta {
                if k.contains("email") || k.contains("user") || k.contains("employee") {
                    if let Some(v) = v.as_str() {
                        acct.identifiers.insert(v.to_string());
                    }
                }
            }
        }
        if cfg.remove_groups {
            for gid in strs(&entity["direct_group_ids"]) {
                let Some(g) = client.get_data(&v1_with("identity/group/id", &gid)).await? else {
                    continue;
                };
                let gname = g["name"].as_str().unwrap_or_default().to_string();
                let gtype = g["type"].as_str().unwrap_or("internal").to_string();
                if gtype == "external" {
                    d.notes.push(format!(
                        "entity {id} is in the external group {gname}: its membership comes from the identity provider through a group alias, so it ends when the person is removed there (and the entity is disabled meanwhile)"
                    ));
                }
                d.findings.push(finding(
                    GROUP_MEMBERSHIP,
                    &format!("{gid}/{id}"),
                    vec![
                        ("group_id", gid.clone()),
                        ("group_name", gname),
                        ("group_type", gtype),
                        ("entity_id", id.clone()),
                    ],
                ));
            }
            let inherited = strs(&entity["inherited_group_ids"]);
            if !inherited.is_empty() {
                d.notes.push(format!(
                    "entity {id} inherits {} group(s) through its direct groups: they end with the direct memberships",
                    inherited.len()
                ));
            }
        }
        for p in strs(&entity["policies"]) {
            d.findings.push(finding(
                POLICY,
                &format!("{id}/{p}"),
                vec![("entity_id", id.clone()), ("policy", p.clone())],
            ));
        }
        for t in tokens.iter().filter(|t| &t.entity_id == id) {
            d.findings.push(finding(
                TOKEN,
                &t.accessor,
                vec![
                    ("entity_id", id.clone()),
                    ("path", t.path.clone()),
                    ("display_name", t.display_name.clone()),
                ],
            ));
        }
        d.accounts.push(acct);
    }
    if !found.entities.is_empty() && cfg.revoke_tokens && !cfg.scan_tokens {
        d.notes.push(
            "tokens not scanned (scan_tokens = false): tokens from per-user logins (userpass) are revoked by prefix; others are refused while the entity is disabled and end with it".into(),
        );
    }
    if let Some(entry) = cfg.key_holder(instance, subject) {
        let mut acct = Account::new(format!("key-holder:{entry}"), KEY_HOLDER_ENTRY, entry);
        acct.matched_by = format!("key_holders entry {entry}");
        acct.identifiers.insert(entry.to_string());
        d.findings.push(finding(
            KEY_HOLDER,
            entry,
            vec![("flavor", format!("{:?}", cfg.flavor).to_lowercase())],
        ));
        d.accounts.push(acct);
        if cfg.root_tokens != RootTokens::Ignore {
            root_tokens(&mut d, entry, scan, own, &finding);
        }
    }
    d.found = !d.accounts.is_empty();
    d.findings.sort();
    Ok(d)
}

/// The cluster's root tokens as findings of a key holder (`entry`), and what the plan must say
/// about them: who else loses one, and why a revocation waits for a person.
fn root_tokens<F>(d: &mut Discovery, entry: &str, scan: &Scan, own: &Option<SelfInfo>, finding: &F)
where
    F: Fn(&str, &str, Vec<(&str, String)>) -> Finding,
{
    // Revoking by accessor revokes the token's whole tree: every non-orphan token created under
    // it. The connector's own token must not be in such a tree, or contain ends the run.
    let blocked = match own {
        None => Some("the connector's token may not look itself up (auth/token/lookup-self), so revoked cannot tell whether revoking a root token would revoke its own token too".to_string()),
        Some(me) if !me.orphan => Some("the connector's token is not an orphan: revoking the root token it was created under would revoke it too; give revoked an orphan token (an AppRole login, or auth/token/create-orphan)".to_string()),
        Some(_) => None,
    };
    let mut listed = Vec::new();
    for t in &scan.roots {
        if own.as_ref().is_some_and(|me| me.accessor == t.accessor) {
            d.notes.push(format!("the connector's own token is a root token ({}): left alone; give revoked a token with the least-privilege policy instead", t.accessor));
            continue;
        }
        listed.push(t.accessor.clone());
        d.findings.push(finding(
            ROOT_TOKEN,
            &t.accessor,
            vec![
                ("holder", entry.to_string()),
                ("display_name", t.display_name.clone()),
                ("path", t.path.clone()),
                ("creation_time", t.creation_time.to_string()),
                ("blocked", blocked.clone().unwrap_or_default()),
            ],
        ));
    }
    if listed.is_empty() {
        d.notes.push(format!(
            "no root token lives in the cluster (looked for because {entry} held a key share)"
        ));
        return;
    }
    d.notes.push(format!(
        "{} root token(s) live in the cluster (accessors {}): {entry} held a key share and may have taken part in generating any of them (a root token carries no entity, so nothing ties it to a person). Revoking one ends it for everyone who uses it, and revokes every non-orphan token created under it; a new root token needs a quorum of the remaining key holders (sys/generate-root)",
        listed.len(),
        listed.join(", ")
    ));
    if let Some(why) = blocked {
        d.notes
            .push(format!("root tokens are left to a person: {why}"));
    }
}

pub async fn discover_one(
    client: &Client,
    cfg: &VaultConfig,
    instance: &str,
    subject: &Subject,
) -> Result<Discovery, ConnectorError> {
    let mut out = discover_many(client, cfg, instance, std::slice::from_ref(subject)).await?;
    Ok(out
        .pop()
        .unwrap_or_else(|| Discovery::not_found(instance, &subject.id)))
}

/// One `sys/auth` read and one token scan for all the subjects.
pub async fn discover_many(
    client: &Client,
    cfg: &VaultConfig,
    instance: &str,
    subjects: &[Subject],
) -> Result<Vec<Discovery>, ConnectorError> {
    let all = mounts(client).await?;
    let mut founds = Vec::with_capacity(subjects.len());
    for s in subjects {
        if s.client_domain().is_some() {
            founds.push(None);
            continue;
        }
        founds.push(Some(find(client, cfg, instance, s, &all).await?));
    }
    let entities: BTreeSet<String> = founds
        .iter()
        .flatten()
        .flat_map(|f| f.entities.keys().cloned())
        .collect();
    // Root tokens are looked for only when a key holder leaves, whatever `scan_tokens` says.
    let roots = cfg.root_tokens != RootTokens::Ignore
        && subjects
            .iter()
            .any(|s| s.client_domain().is_none() && cfg.key_holder(instance, s).is_some());
    let wanted = if cfg.revoke_tokens && cfg.scan_tokens {
        entities
    } else {
        BTreeSet::new()
    };
    let scan = scan_tokens(client, &wanted, roots).await?;
    let own = if scan.roots.is_empty() {
        None
    } else {
        lookup_self(client).await?
    };
    let mut out = Vec::with_capacity(subjects.len());
    for (s, f) in subjects.iter().zip(founds) {
        match f {
            None => out.push(Discovery::not_found(instance, &s.id)),
            Some(f) => out.push(assemble(client, cfg, instance, s, f, &scan, &own).await?),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_values_stay_one_segment() {
        assert_eq!(
            v1(&["auth", "corp/ldap", "users"]),
            "/v1/auth/corp/ldap/users"
        );
        assert_eq!(
            v1_with("auth/userpass/users", "../x"),
            "/v1/auth/userpass/users/..%2Fx"
        );
        assert_eq!(
            v1_with("identity/group/id", "a\"b*"),
            "/v1/identity/group/id/a%22b%2A"
        );
        assert_eq!(
            v1_with("auth/userpass/users", "a?b#c"),
            "/v1/auth/userpass/users/a%3Fb%23c"
        );
    }
}
