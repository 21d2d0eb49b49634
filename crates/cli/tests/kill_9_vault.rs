//! A real `revokectl apply` killed with SIGKILL right after its group removal reached a real
//! OpenBao (the server's audit log has the request; the answer may or may not have come back):
//! the next `revokectl apply` of the same plan waits out the dead run's lease, reads first, and
//! converges; each action's change is made exactly once, counted in OpenBao's audit log (the
//! request in flight at the kill may be sent again when OpenBao dropped it with its client).

mod kill;

use kill::as_str;

use std::path::PathBuf;
use std::process::Command;

use revoke_testkit::OpenBao;

struct Env {
    bao: OpenBao,
    dir: tempfile::TempDir,
    config: PathBuf,
    accessor: String,
}

const POLICY: &str = r#"
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

impl Env {
    fn new() -> Env {
        let bao = OpenBao::start().expect("openbao should start");
        bao.enable_auth("userpass", "userpass").expect("userpass");
        bao.put_policy("revoked", POLICY).expect("policy");
        let me = bao.token(&["revoked"]).expect("the connector's token");
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("revoke.toml");
        std::fs::write(
            &config,
            format!(
                r#"data_dir = "{data}"
[executor]
lease_secs = 1
[executor.retry]
base_ms = 20
cap_ms = 200
max_attempts = 20
[policies.default]
retention_days = 0
[connectors.vault]
kind = "vault"
address = "{address}"
token = "{token}"
# Paced, so the run is still sending when it is killed.
requests_per_second = 10
[connectors.vault.mounts.userpass]
type = "userpass"
"#,
                data = dir.path().join("data").display(),
                address = bao.address(),
                token = me.token,
            ),
        )
        .expect("the config is written");
        Env {
            bao,
            dir,
            config,
            accessor: me.accessor,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        kill::revokectl(&self.config, args)
    }

    fn ok(&self, args: &[&str]) {
        kill::revokectl_ok(&self.config, args);
    }

    fn mutations(&self) -> Vec<String> {
        self.bao
            .mutations_of(&self.accessor)
            .expect("audit log")
            .into_iter()
            .map(|r| format!("{} {}", r.operation, r.path))
            .collect()
    }

    /// The mutations the server answered with success (the changes made).
    fn made(&self) -> Vec<String> {
        self.bao
            .mutations_of(&self.accessor)
            .expect("audit log")
            .into_iter()
            .filter(|r| r.succeeded())
            .map(|r| format!("{} {}", r.operation, r.path))
            .collect()
    }

    fn detail(&self) -> Vec<String> {
        self.bao
            .mutations_of(&self.accessor)
            .expect("audit log")
            .into_iter()
            .map(|r| format!("{} {} -> {:?}", r.operation, r.path, r.answered))
            .collect()
    }
}

#[test]
fn kill_9_right_after_a_group_removal_reached_openbao_then_apply_again_sends_nothing_twice() {
    let env = Env::new();
    let bao = &env.bao;
    for (name, pw) in [("alice", "pw-a"), ("bob", "pw-b")] {
        bao.userpass_user("userpass", name, pw).expect("user");
    }
    let alice = bao
        .login_userpass("userpass", "alice", "pw-a")
        .expect("login");
    let bob = bao
        .login_userpass("userpass", "bob", "pw-b")
        .expect("login");
    let ops = bao
        .create_group("ops", &[&alice.entity_id, &bob.entity_id], &["ops"])
        .expect("ops");
    bao.update_entity(
        &alice.entity_id,
        serde_json::json!({"policies": ["alice-extra"]}),
    )
    .expect("policies");

    let plan = env.dir.path().join("plan.json");
    env.ok(&["plan", "--user", "alice", "-out", as_str(&plan)]);
    assert!(env.mutations().is_empty(), "planning writes nothing");
    let planned: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&plan).expect("plan file")).expect("plan json");
    let actions = planned["actions"].as_array().expect("actions").len();

    let removal = format!("update identity/group/id/{ops}");
    kill::apply_killed_when(
        env.command(&["apply", as_str(&plan), "--auto-approve", "-o", "jsonl"]),
        "the group removal",
        || env.mutations().contains(&removal),
        || format!("{:?}", env.mutations()),
    );
    let at_kill = env.mutations().len();
    assert!(
        at_kill < actions,
        "killed mid-apply: {at_kill} of {actions}"
    );

    env.ok(&["apply", as_str(&plan), "--auto-approve"]);
    assert!(
        bao.entity(&alice.entity_id).expect("read").is_none(),
        "alice is deleted"
    );
    let g = bao.group(&ops).expect("read").expect("ops stays");
    assert_eq!(g["member_entity_ids"], serde_json::json!([bob.entity_id]));
    assert_eq!(g["policies"], serde_json::json!(["ops"]));
    assert!(
        bao.accessor_alive(&bob.accessor).expect("lookup"),
        "bob untouched"
    );
    // Each change made exactly once. The request in flight at the kill may be sent again:
    // OpenBao drops a write whose client went away ("context canceled" in its audit log), and
    // the next run, reading first, finds it not made.
    let made = env.made();
    let muts = env.mutations();
    assert_eq!(
        made.iter().filter(|m| **m == removal).count(),
        1,
        "{:#?}",
        env.detail()
    );
    assert_eq!(
        made.len(),
        actions,
        "each action's change made exactly once ({at_kill} sent before the kill): {:#?}",
        env.detail()
    );
    assert!(
        muts.len() <= made.len() + 1,
        "at most the request in flight at the kill is sent again: {:#?}",
        env.detail()
    );
}
