//! A real `revokectl apply` of a `kind = "http"` definition (OpenBao's identity entities, written
//! in revoke.toml) killed with SIGKILL right after its disable reached a real OpenBao (the
//! server's audit log has the request; the answer may or may not have come back): the next
//! `revokectl apply` of the same plan waits out the dead run's lease, reads the entity by id
//! first, and converges; each action's mutation reaches OpenBao exactly once, counted in its
//! audit log. (OpenBao answers a repeated DELETE with 204 again, so only the read by id keeps a
//! retried delete from being sent twice.)

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
path "identity/entity/name/*" { capabilities = ["read"] }
path "identity/entity/id/*" { capabilities = ["read", "update", "delete"] }
"#;

impl Env {
    fn new() -> Env {
        let bao = OpenBao::start().expect("openbao should start");
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
[connectors.bao]
kind = "http"
system = "OpenBao"
base_url = "{address}"
# Paced, so the run is still sending when it is killed.
rate_limit = {{ requests = 5, per_secs = 1 }}
auth = {{ type = "api_key", header = "X-Vault-Token", token = "{token}" }}
[connectors.bao.resources.entity]
id = "$.id"
id_kind = "entity id"
name = "$.name"
identifiers = ["$.name"]
state = {{ disabled = {{ path = "$.disabled", equals = true }} }}
read = {{ path = "/v1/identity/entity/id/{{{{item.id}}}}", item = "$.data", gone = [404] }}
[[connectors.bao.resources.entity.discover]]
path = "/v1/identity/entity/name/{{{{subject.username}}}}"
items = "$.data"
absent = [404, 204]
[[connectors.bao.resources.entity.match]]
path = "$.name"
equals = "{{{{subject.username}}}}"
[[connectors.bao.resources.entity.actions]]
name = "disable"
phase = "contain"
unless = "disabled"
request = {{ method = "POST", path = "/v1/identity/entity/id/{{{{item.id}}}}", json = {{ disabled = true }} }}
outcomes = [{{ status = [200, 204], result = "done" }}, {{ status = [429], result = "rate_limited" }}]
verify = {{ confirmed = [{{ status = [200], body = [{{ path = "$.disabled", equals = true }}] }}, {{ status = [404] }}] }}
[[connectors.bao.resources.entity.actions]]
name = "delete"
phase = "delete"
after = ["disable"]
request = {{ method = "DELETE", path = "/v1/identity/entity/id/{{{{item.id}}}}" }}
outcomes = [{{ status = [204, 200], result = "done" }}, {{ status = [429], result = "rate_limited" }}]
verify = {{ confirmed = [{{ status = [404] }}] }}
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

    fn ok(&self, args: &[&str]) -> String {
        kill::revokectl_ok(&self.config, args)
    }

    fn mutations(&self) -> Vec<String> {
        self.bao
            .mutations_of(&self.accessor)
            .expect("audit log")
            .into_iter()
            .map(|r| format!("{} {}", r.operation, r.path))
            .collect()
    }
}

#[test]
fn kill_9_right_after_a_disable_reached_openbao_then_apply_again_sends_nothing_twice() {
    let env = Env::new();
    let alice = env
        .bao
        .create_entity("alice", &["default"])
        .expect("entity");
    let bob = env.bao.create_entity("bob", &["default"]).expect("entity");
    env.ok(&["config", "check"]);

    let plan = env.dir.path().join("plan.json");
    env.ok(&["plan", "--user", "alice", "-out", as_str(&plan)]);
    assert!(env.mutations().is_empty(), "planning writes nothing");
    let planned: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&plan).expect("plan file")).expect("plan json");
    let actions = planned["actions"].as_array().expect("actions").len();
    assert_eq!(actions, 2, "{planned:#}");

    let disable = format!("update identity/entity/id/{alice}");
    kill::apply_killed_when(
        env.command(&["apply", as_str(&plan), "--auto-approve", "-o", "jsonl"]),
        "the disable",
        || env.mutations().contains(&disable),
        || format!("{:?}", env.mutations()),
    );
    let at_kill = env.mutations().len();
    assert!(
        at_kill < actions,
        "killed mid-apply: {at_kill} of {actions}"
    );

    env.ok(&["apply", as_str(&plan), "--auto-approve"]);
    assert!(
        env.bao.entity(&alice).expect("read").is_none(),
        "alice is deleted"
    );
    let b = env.bao.entity(&bob).expect("read").expect("bob stays");
    assert_eq!(b["disabled"], serde_json::json!(false));
    let muts = env.mutations();
    assert_eq!(
        muts,
        vec![disable, format!("delete identity/entity/id/{alice}")],
        "each action's mutation exactly once ({at_kill} before the kill)"
    );
}
