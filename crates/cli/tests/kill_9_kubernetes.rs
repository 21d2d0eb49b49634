//! A real `revokectl apply` killed with SIGKILL while the Kubernetes API server's answer to a
//! subject removal is held back (the stand-in has taken the leaver out of the shared binding and
//! not answered yet): the next `revokectl apply` of the same plan waits out the dead run's lease,
//! reads the binding, finds the leaver gone and converges; no mutation reaches the cluster twice.
//! The connector's token comes from `token_file`, read by the config layer.

mod kill;

use kill::as_str;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use revoke_testkit::kube::{user, Res};
use revoke_testkit::KubeStandin;

struct Env {
    k: KubeStandin,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Env {
    fn new() -> Env {
        let k = KubeStandin::start().expect("the kubernetes stand-in should start");
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("revoke.toml");
        // The token comes from a file, as a ServiceAccount token does in production.
        let token_file = dir.path().join("k8s-token");
        std::fs::write(&token_file, format!("{}\n", k.token())).expect("the token is written");
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
[connectors.k8s]
kind = "kubernetes"
api_url = "{url}"
token_file = "{token}"
username_template = "oidc:{{email}}"
owner_annotation = "revoked.dev/owner"
"#,
                data = dir.path().join("data").display(),
                url = k.url(),
                token = token_file.display(),
            ),
        )
        .expect("the config is written");
        Env { k, dir, config }
    }

    fn command(&self, args: &[&str]) -> Command {
        kill::revokectl(&self.config, args)
    }

    fn ok(&self, args: &[&str]) {
        kill::revokectl_ok(&self.config, args);
    }
}

#[test]
fn kill_9_while_the_api_server_holds_a_subject_removals_answer_then_apply_again_sends_nothing_twice(
) {
    let env = Env::new();
    env.k.world(|w| {
        w.cluster_role_binding(
            "ivan-admin",
            "cluster-admin",
            &[user("oidc:ivan@example.org")],
        );
        w.cluster_role_binding(
            "readers",
            "view",
            &[user("oidc:ivan@example.org"), user("oidc:dana@example.org")],
        );
        w.role_binding(
            "shop",
            "ivan-edit",
            "edit",
            &[user("oidc:ivan@example.org")],
        );
        w.service_account(
            "ci",
            "deployer",
            &[("revoked.dev/owner", "ivan@example.org")],
        );
        w.token_secret("ci", "deployer-token", "deployer");
    });
    let plan = env.dir.path().join("plan.json");
    env.ok(&["plan", "--user", "ivan@example.org", "-out", as_str(&plan)]);
    assert!(env.k.mutations().is_empty(), "planning writes nothing");

    // The kill point is set by the stand-in, not by a timer: it takes ivan out of `readers` and
    // holds the answer; once the request is recorded, revokectl is waiting for it.
    let readers = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/readers";
    env.k.stall("PATCH", readers);
    kill::apply_killed_when(
        env.command(&["apply", as_str(&plan), "--auto-approve", "-o", "jsonl"]),
        "the subject removal",
        || {
            env.k
                .requests()
                .iter()
                .any(|r| r.method == "PATCH" && r.path == readers)
        },
        || format!("{:?}", env.k.mutations()),
    );
    env.k.release();
    let names = |res: Res, ns: &str, name: &str| -> Vec<String> {
        env.k
            .world(|w| w.subjects(res, ns, name))
            .iter()
            .map(|s| s["name"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(
        names(Res::ClusterRoleBinding, "", "readers"),
        ["oidc:dana@example.org"],
        "the API server took the removal before the process died"
    );

    env.ok(&["apply", as_str(&plan), "--auto-approve"]);
    env.k.world(|w| {
        assert!(w.get(Res::ClusterRoleBinding, "", "ivan-admin").is_none());
        assert!(w.get(Res::RoleBinding, "shop", "ivan-edit").is_none());
        assert!(w.get(Res::Secret, "ci", "deployer-token").is_none());
    });
    assert_eq!(
        names(Res::ClusterRoleBinding, "", "readers"),
        ["oidc:dana@example.org"]
    );
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in env.k.mutations() {
        *counts
            .entry(format!("{} {}", r.method, r.path))
            .or_default() += 1;
    }
    assert_eq!(
        counts.get(&format!("PATCH {readers}")),
        Some(&1),
        "{counts:#?}"
    );
    assert_eq!(counts.len(), 4, "{counts:#?}");
    for (call, n) in &counts {
        assert_eq!(*n, 1, "{call}: {counts:#?}");
    }
}
