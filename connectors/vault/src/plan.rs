//! The plan, pure and deterministic, from the findings alone.
//!
//! - contain: disable the entity (Vault then refuses every token of it, and its logins), then
//!   revoke its tokens: by `sys/leases/revoke-prefix` on a per-user login path (userpass), by
//!   accessor otherwise;
//! - revoke: each direct internal group membership (external groups are the identity
//!   provider's: a note), the entity's own policies (one action, so two removals never race on
//!   the entity's policy list);
//! - delete, after retention: each userpass user, then each alias, then the entity;
//! - a key holder: the cluster's root tokens revoked by accessor in contain (a person's step
//!   with `root_tokens = "manual"`, or when revoking one could end the connector's own token),
//!   and the manual "rotate the root key / rekey" for the remaining key holders.

use std::collections::BTreeMap;

use revoke_core::{ActionKind, Discovery, Finding, Phase, ProposedAction};

use crate::config::{Flavor, RootTokens, VaultConfig};
use crate::discover::{ALIAS, ENTITY, GROUP_MEMBERSHIP, KEY_HOLDER, POLICY, ROOT_TOKEN, TOKEN};

pub const DISABLE_ENTITY: &str = "disable_entity";
pub const REVOKE_LOGIN_TOKENS: &str = "revoke_login_tokens";
pub const REVOKE_TOKEN: &str = "revoke_token";
pub const REMOVE_GROUP: &str = "remove_group_membership";
pub const REMOVE_POLICIES: &str = "remove_entity_policies";
pub const DELETE_USER: &str = "delete_userpass_user";
pub const DELETE_ALIAS: &str = "delete_alias";
pub const DELETE_ENTITY: &str = "delete_entity";
pub const ROTATE_ROOT_KEY: &str = "rotate_root_key";
pub const REVOKE_ROOT_TOKEN: &str = "revoke_root_token";
pub const REVIEW_ROOT_TOKENS: &str = "revoke_root_tokens_by_hand";

fn attr<'a>(f: &'a Finding, k: &str) -> &'a str {
    f.attrs.get(k).map(String::as_str).unwrap_or("")
}

struct P {
    out: Vec<ProposedAction>,
}

impl P {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        kind: &str,
        target: String,
        phase: Phase,
        account: &str,
        params: Vec<(&str, String)>,
        after: Vec<(ActionKind, String)>,
        summary: String,
        delay: Option<std::time::Duration>,
    ) -> (ActionKind, String) {
        let k = ActionKind(kind.to_string());
        self.out.push(ProposedAction {
            kind: k.clone(),
            target: target.clone(),
            params: params
                .into_iter()
                .map(|(a, b)| (a.to_string(), b))
                .collect::<BTreeMap<_, _>>(),
            phase,
            after,
            summary,
            account: account.to_string(),
            delay,
        });
        (k, target)
    }
}

/// The API assist of the rekey step, by flavor.
pub fn rekey_steps(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::Openbao => "OpenBao (2.4+; `bao operator rotate-keys` from the CLI): PUT /v1/sys/rotate/root/init {\"secret_shares\":N,\"secret_threshold\":T} with a token allowed sudo on sys/rotate/root/*; each remaining key holder sends PUT /v1/sys/rotate/root/update {\"key\":<their share>,\"nonce\":<from init>} until complete=true; hand the new shares to the remaining holders only (the old shares then fail to unseal). With auto-unseal: sys/rotate/recovery/* instead.",
        Flavor::Vault => "HashiCorp Vault: PUT /v1/sys/rekey/init {\"secret_shares\":N,\"secret_threshold\":T} (optionally pgp_keys), then each remaining key holder sends PUT /v1/sys/rekey/update {\"key\":<their share>,\"nonce\":<from init>} until complete=true; hand the new shares to the remaining holders only. With auto-unseal: sys/rekey-recovery-key/* instead.",
    }
}

pub fn plan(cfg: &VaultConfig, d: &Discovery) -> Vec<ProposedAction> {
    let mut p = P { out: Vec::new() };
    let of = |kind: &'static str| d.findings.iter().filter(move |f| f.kind == kind);
    for entity in of(ENTITY) {
        let id = entity.target.as_str();
        let name = attr(entity, "name");
        let mut contain = Vec::new();
        if cfg.disable_entity && attr(entity, "disabled") != "true" {
            contain.push(p.push(
                DISABLE_ENTITY,
                format!("entity/{id}"),
                Phase::Contain,
                id,
                vec![("entity_id", id.to_string())],
                vec![],
                format!("disable entity {name} ({id}): every token of it is refused at once"),
                None,
            ));
        }
        // Ordered by what people read (mount, name), not by the random ids.
        let mut aliases: Vec<&Finding> = of(ALIAS).filter(|a| attr(a, "entity_id") == id).collect();
        aliases.sort_by_key(|a| (attr(a, "mount_path"), attr(a, "name"), a.target.as_str()));
        if cfg.revoke_tokens {
            let mut tokens: Vec<&Finding> =
                of(TOKEN).filter(|t| attr(t, "entity_id") == id).collect();
            tokens.sort_by_key(|t| (attr(t, "path"), t.target.as_str()));
            let mut by_login = Vec::new();
            for al in &aliases {
                let mount = attr(al, "mount_path");
                let per_user = cfg
                    .mounts
                    .get(mount)
                    .map(|m| m.per_user_login())
                    .unwrap_or(attr(al, "mount_type") == "userpass");
                if !per_user {
                    continue;
                }
                let prefix = format!("auth/{mount}/login/{}", attr(al, "name"));
                let mine: Vec<&str> = tokens
                    .iter()
                    .filter(|t| attr(t, "path") == prefix)
                    .map(|t| t.target.as_str())
                    .collect();
                by_login.extend(mine.iter().map(|s| s.to_string()));
                if mine.is_empty() && cfg.scan_tokens {
                    continue;
                }
                p.push(
                    REVOKE_LOGIN_TOKENS,
                    prefix.clone(),
                    Phase::Contain,
                    id,
                    vec![
                        ("entity_id", id.to_string()),
                        ("mount", mount.to_string()),
                        ("mount_accessor", attr(al, "mount_accessor").to_string()),
                        ("alias_name", attr(al, "name").to_string()),
                        ("accessors", mine.join(",")),
                    ],
                    contain.clone(),
                    if cfg.scan_tokens {
                        format!("revoke the {} token(s) of logins at {prefix}", mine.len())
                    } else {
                        format!("revoke every token of logins at {prefix}")
                    },
                    None,
                );
            }
            for t in tokens.iter().filter(|t| !by_login.contains(&t.target)) {
                p.push(
                    REVOKE_TOKEN,
                    format!("token/{}", t.target),
                    Phase::Contain,
                    id,
                    vec![
                        ("entity_id", id.to_string()),
                        ("accessor", t.target.clone()),
                        ("path", attr(t, "path").to_string()),
                    ],
                    contain.clone(),
                    format!(
                        "revoke the token with accessor {} (created at {})",
                        t.target,
                        attr(t, "path")
                    ),
                    None,
                );
            }
        }
        if cfg.remove_groups {
            let mut groups: Vec<&Finding> = of(GROUP_MEMBERSHIP)
                .filter(|g| attr(g, "entity_id") == id && attr(g, "group_type") != "external")
                .collect();
            groups.sort_by_key(|g| (attr(g, "group_name"), g.target.as_str()));
            for g in groups {
                let gid = attr(g, "group_id");
                p.push(
                    REMOVE_GROUP,
                    format!("group/{gid}/{id}"),
                    Phase::Revoke,
                    id,
                    vec![
                        ("entity_id", id.to_string()),
                        ("group_id", gid.to_string()),
                        ("group_name", attr(g, "group_name").to_string()),
                    ],
                    vec![],
                    format!("remove entity {name} from group {}", attr(g, "group_name")),
                    None,
                );
            }
        }
        let mut policies: Vec<&str> = of(POLICY)
            .filter(|f| attr(f, "entity_id") == id)
            .map(|f| attr(f, "policy"))
            .collect();
        policies.sort();
        if cfg.remove_policies && !policies.is_empty() {
            p.push(
                REMOVE_POLICIES,
                format!("entity/{id}/policies"),
                Phase::Revoke,
                id,
                vec![
                    ("entity_id", id.to_string()),
                    (
                        "policies",
                        serde_json::to_string(&policies).unwrap_or_default(),
                    ),
                ],
                vec![],
                format!(
                    "take the policies {} off entity {name}",
                    policies.join(", ")
                ),
                None,
            );
        }
        if cfg.delete {
            let delay = cfg.retention();
            let mut alias_deletes = Vec::new();
            for al in &aliases {
                let mount = attr(al, "mount_path");
                let alias_name = attr(al, "name");
                let mut after = Vec::new();
                if attr(al, "mount_type") == "userpass" {
                    after.push(p.push(
                        DELETE_USER,
                        format!("auth/{mount}/users/{alias_name}"),
                        Phase::Delete,
                        id,
                        vec![
                            ("entity_id", id.to_string()),
                            ("mount", mount.to_string()),
                            ("mount_accessor", attr(al, "mount_accessor").to_string()),
                            ("alias_name", alias_name.to_string()),
                        ],
                        vec![],
                        format!("delete the userpass user {alias_name} on {mount}/"),
                        delay,
                    ));
                }
                alias_deletes.push(p.push(
                    DELETE_ALIAS,
                    format!("alias/{}", al.target),
                    Phase::Delete,
                    id,
                    vec![
                        ("entity_id", id.to_string()),
                        ("alias_id", al.target.clone()),
                        ("alias_name", alias_name.to_string()),
                        ("mount", mount.to_string()),
                    ],
                    after,
                    format!("delete the alias {alias_name} on {mount}/ of entity {name}"),
                    delay,
                ));
            }
            p.push(
                DELETE_ENTITY,
                format!("entity/{id}"),
                Phase::Delete,
                id,
                vec![("entity_id", id.to_string())],
                alias_deletes,
                format!("delete entity {name} ({id})"),
                delay,
            );
        }
    }
    for k in of(KEY_HOLDER) {
        let holder = k.target.as_str();
        let account = format!("key-holder:{holder}");
        let roots: Vec<&Finding> = of(ROOT_TOKEN)
            .filter(|t| attr(t, "holder") == holder)
            .collect();
        let by_hand = cfg.root_tokens == RootTokens::Manual
            || roots.iter().any(|t| !attr(t, "blocked").is_empty());
        if !roots.is_empty() && !by_hand {
            for t in &roots {
                p.push(
                    REVOKE_ROOT_TOKEN,
                    format!("root-token/{}", t.target),
                    Phase::Contain,
                    &account,
                    vec![
                        ("accessor", t.target.clone()),
                        ("holder", holder.to_string()),
                        ("creation_time", attr(t, "creation_time").to_string()),
                    ],
                    vec![],
                    format!(
                        "revoke the root token with accessor {} (created at {}, unix time {}): {holder} held a key share and may hold it; whoever else uses it loses it, with every non-orphan token created under it",
                        t.target,
                        attr(t, "path"),
                        attr(t, "creation_time")
                    ),
                    None,
                );
            }
        } else if !roots.is_empty() {
            let accessors: Vec<&str> = roots.iter().map(|t| t.target.as_str()).collect();
            let why = roots
                .iter()
                .map(|t| attr(t, "blocked"))
                .find(|b| !b.is_empty())
                .unwrap_or("root_tokens = \"manual\"");
            p.push(
                REVIEW_ROOT_TOKENS,
                "root_tokens".to_string(),
                Phase::Manual,
                &account,
                vec![
                    ("holder", holder.to_string()),
                    ("accessors", accessors.join(",")),
                    ("api", "POST /v1/auth/token/revoke-accessor {\"accessor\":<each>} (it revokes every non-orphan token created under it too)".to_string()),
                    (
                        "title",
                        format!("revoke the root tokens {holder} may hold: {}", accessors.join(", ")),
                    ),
                ],
                vec![],
                format!(
                    "revoke the cluster's root tokens ({}) or confirm who holds each: {holder} held a key share and may have taken part in generating them; left to a person because {why}",
                    accessors.join(", ")
                ),
                None,
            );
        }
        p.push(
            ROTATE_ROOT_KEY,
            "root_key".to_string(),
            Phase::Manual,
            &account,
            vec![
                ("holder", holder.to_string()),
                ("api", rekey_steps(cfg.flavor).to_string()),
                (
                    "title",
                    format!("rotate the root key (rekey): {holder} held an unseal or recovery key share"),
                ),
            ],
            vec![],
            format!(
                "rekey the cluster with the remaining key holders: {holder} held a key share ({})",
                rekey_steps(cfg.flavor)
            ),
            None,
        );
    }
    p.out
}
