//! The OpenBao world the vault tests share: two auth mounts, three people, two groups, tokens of
//! both kinds, and the connector's own least-privilege token (its accessor counts its requests
//! in the server's audit log).
#![allow(dead_code)]

use std::collections::BTreeMap;

use revoke_connector_vault::{VaultConfig, VaultConnector};
use revoke_core::{Action, Discovery, JobId, Subject};
use revoke_testkit::openbao::Login;
use revoke_testkit::OpenBao;
use serde_json::{json, Value};

/// The policy docs/connectors/vault.md gives the connector's token (userpass mounted at
/// `userpass`): the least it needs.
pub const POLICY: &str = r#"
path "sys/auth" { capabilities = ["read"] }
path "identity/lookup/entity" { capabilities = ["update"] }
path "identity/entity/id/*" { capabilities = ["read", "update", "delete"] }
path "identity/entity-alias/id/*" { capabilities = ["read", "delete"] }
path "identity/group/id/*" { capabilities = ["read", "update"] }
path "auth/token/accessors" { capabilities = ["list", "sudo"] }
path "auth/token/lookup-accessor" { capabilities = ["update"] }
path "auth/token/revoke-accessor" { capabilities = ["update"] }
path "auth/token/lookup-self" { capabilities = ["read"] }
path "sys/leases/revoke-prefix/auth/userpass/login/*" { capabilities = ["update", "sudo"] }
path "auth/userpass/users/*" { capabilities = ["read", "delete"] }
"#;

pub struct World {
    pub bao: OpenBao,
    /// The connector's token (policy [`POLICY`]).
    pub me: Login,
    pub userpass: String,
    pub oidc: String,
    pub alice: String,
    pub alice_logins: Vec<Login>,
    pub alice_ci: Login,
    pub bob: String,
    pub bob_login: Login,
    pub boss: String,
    pub ops: String,
    pub readers: String,
}

pub fn world() -> World {
    let bao = OpenBao::start().expect("openbao should start");
    let userpass = bao.enable_auth("userpass", "userpass").expect("userpass");
    let oidc = bao.enable_auth("oidc", "oidc").expect("oidc");
    let token_mount = bao.mount_accessor("token").expect("token mount");
    bao.put_policy("revoked", POLICY).expect("policy");
    let me = bao.token(&["revoked"]).expect("the connector's token");

    // alice: two userpass logins, an OIDC alias, a CI token tied to her entity, two groups,
    // two policies of her own.
    bao.userpass_user("userpass", "alice", "pw-a")
        .expect("alice");
    let alice_logins: Vec<Login> = (0..2)
        .map(|_| {
            bao.login_userpass("userpass", "alice", "pw-a")
                .expect("login")
        })
        .collect();
    let alice = alice_logins[0].entity_id.clone();
    bao.create_alias(&alice, &oidc, "alice@example.org")
        .expect("oidc alias");
    bao.create_alias(&alice, &token_mount, "alice-ci")
        .expect("token alias");
    let alice_ci = bao.entity_token("ci", "alice-ci").expect("ci token");
    assert_eq!(alice_ci.entity_id, alice);
    bao.update_entity(
        &alice,
        json!({"policies": ["alice-extra", "shared"], "metadata": {"email": "alice@example.org"}}),
    )
    .expect("alice's policies");

    // bob: a colleague in the same group.
    bao.userpass_user("userpass", "bob", "pw-b").expect("bob");
    let bob_login = bao
        .login_userpass("userpass", "bob", "pw-b")
        .expect("bob logs in");
    let bob = bob_login.entity_id.clone();

    // boss: found by a userpass login, protected by the OIDC alias naming the CEO's office.
    bao.userpass_user("userpass", "boss", "pw-c").expect("boss");
    let boss = bao
        .login_userpass("userpass", "boss", "pw-c")
        .expect("boss logs in")
        .entity_id;
    bao.create_alias(&boss, &oidc, "ceo-office@example.org")
        .expect("boss's oidc alias");

    let ops = bao
        .create_group("ops", &[&alice, &bob, &boss], &["ops"])
        .expect("ops");
    let readers = bao
        .create_group("readers", &[&alice], &[])
        .expect("readers");
    World {
        bao,
        me,
        userpass,
        oidc,
        alice,
        alice_logins,
        alice_ci,
        bob,
        bob_login,
        boss,
        ops,
        readers,
    }
}

impl World {
    /// The connector's config table, with more keys from `extra`.
    pub fn params(&self, extra: Value) -> Value {
        let mut v = json!({
            "kind": "vault",
            "address": self.bao.address(),
            "token": self.me.token,
            "mounts": {
                "userpass": {"type": "userpass"},
                "oidc": {"type": "oidc", "alias": "email"},
            },
            "key_holders": ["alice@example.org"],
            // The dev server's root token is the testkit's own: root tokens are tested on a
            // raft server of their own (tests/root_tokens.rs).
            "root_tokens": "ignore",
        });
        if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            for (k, x) in e {
                m.insert(k.clone(), x.clone());
            }
        }
        v
    }

    pub fn connector(&self, extra: Value) -> VaultConnector {
        let params = self.params(extra);
        revoke_connector_vault::validate("connectors.vault", &params).expect("valid config");
        VaultConnector::new(
            "vault",
            VaultConfig::from_value(&params).expect("typed config"),
        )
        .expect("connector")
    }

    /// Mutations the connector's token sent, as the server's audit log has them.
    pub fn mutations(&self) -> Vec<String> {
        self.bao
            .mutations_of(&self.me.accessor)
            .expect("audit")
            .into_iter()
            .map(|r| format!("{} {}", r.operation, r.path))
            .collect()
    }

    /// The mutations the server made: sent by the connector's token and answered with success
    /// in the audit log (a request whose client died before the answer may have been dropped).
    pub fn made(&self) -> Vec<String> {
        self.bao
            .mutations_of(&self.me.accessor)
            .expect("audit")
            .into_iter()
            .filter(|r| r.succeeded())
            .map(|r| format!("{} {}", r.operation, r.path))
            .collect()
    }

    /// Every mutation sent, with how the server answered it, for failure messages.
    pub fn audit_detail(&self) -> Vec<String> {
        self.bao
            .mutations_of(&self.me.accessor)
            .expect("audit")
            .into_iter()
            .map(|r| format!("{} {} -> {:?}", r.operation, r.path, r.answered))
            .collect()
    }

    /// Every id the world made, by a stable name, for snapshots.
    pub fn names(&self, d: &Discovery) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert(self.alice.clone(), "<alice>".into());
        m.insert(self.bob.clone(), "<bob>".into());
        m.insert(self.boss.clone(), "<boss>".into());
        m.insert(self.ops.clone(), "<ops>".into());
        m.insert(self.readers.clone(), "<readers>".into());
        m.insert(self.userpass.clone(), "<userpass-acc>".into());
        m.insert(self.oidc.clone(), "<oidc-acc>".into());
        for (i, l) in self.alice_logins.iter().enumerate() {
            m.insert(l.accessor.clone(), format!("<alice-login-{i}>"));
        }
        m.insert(self.alice_ci.accessor.clone(), "<alice-ci>".into());
        for f in &d.findings {
            if f.kind == "alias" {
                let n = format!(
                    "<alias {} on {}>",
                    f.attrs.get("name").cloned().unwrap_or_default(),
                    f.attrs.get("mount_path").cloned().unwrap_or_default()
                );
                m.insert(f.target.clone(), n);
            }
            if f.kind == "entity" {
                if let Some(n) = f.attrs.get("name") {
                    m.insert(n.clone(), "<entity-name>".into());
                }
            }
        }
        if let Ok(acc) = self.bao.mount_accessor("token") {
            m.insert(acc, "<token-acc>".into());
        }
        m
    }
}

pub fn redact(mut s: String, names: &BTreeMap<String, String>) -> String {
    // Longest first, so an id is never cut by a shorter one inside it.
    let mut keys: Vec<&String> = names.keys().filter(|k| !k.is_empty()).collect();
    keys.sort_by_key(|k| std::cmp::Reverse(k.len()));
    for k in keys {
        s = s.replace(k.as_str(), &names[k]);
    }
    s
}

pub fn subject(id: &str, email: Option<&str>) -> Subject {
    let mut s = Subject::new(id);
    s.email = email.map(str::to_string);
    s
}

/// The plan's actions for one discovery, as the planner makes them (manual steps included).
pub fn actions(conn: &VaultConnector, subject: &Subject, d: &Discovery) -> Vec<Action> {
    use revoke_core::Connector;
    Action::from_proposals(&JobId("job-1".into()), "vault", d, conn.plan(subject, d))
        .expect("a plan the planner accepts")
}
