//! A departing client from the command line: `revokectl plan --client-domain acme.example`
//! against the RMM stand-in through the shipped `rmm_client` recipe (revoke.toml names it), then
//! `revokectl apply` of the saved plan: the 12 removals in ConnectWise RMM's order (the stand-in
//! refuses with 409 any removal whose prerequisites are still there, so none refused proves the
//! order), each sent once; the look-alike companies (notacme.example, acme.example.net) and
//! another client stay whole; planning again finds nothing of the client and a rerun sends
//! nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use revoke_testkit::recipes::rmm::{self, RmmStandin};
use serde_json::Value;

struct Env {
    rmm: RmmStandin,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Env {
    fn new() -> Env {
        let rmm = rmm::start().expect("the rmm stand-in should start");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("rmm-token"), format!("{}\n", rmm.token()))
            .expect("the token file is written");
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
max_attempts = 3
[policies.default]
retention_days = 0
[connectors.msp-rmm]
kind = "http"
recipe = "rmm_client"
base_url = "{url}"
auth = {{ type = "bearer", token_file = "{token}" }}
rate_limit = {{ requests = 50, per_secs = 1 }}
"#,
                data = dir.path().join("data").display(),
                url = rmm.url(),
                token = dir.path().join("rmm-token").display(),
            ),
        )
        .expect("the config is written");
        Env { rmm, dir, config }
    }

    fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_revokectl"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .env_remove("RUST_LOG")
            .output()
            .expect("revokectl runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn as_str(p: &Path) -> &str {
    p.to_str().expect("utf-8")
}

/// Where a removal stands in ConnectWise RMM's order, from its path
fn rank(path: &str) -> u8 {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        [_, _, "agents", _, "packages", _] | [_, _, "companies", _, "policies", _] => 0,
        [_, _, "agents", _] => 1,
        [_, _, "users", _] => 2,
        [_, _, "sites", _] => 3,
        [_, _, "companies", _] => 4,
        _ => panic!("not a removal of the recipe: {path}"),
    }
}

#[test]
fn plan_client_domain_from_the_command_line_then_apply_removes_the_client_in_order() {
    let env = Env::new();
    let (acme, others) = env.rmm.world(|w| {
        let acme = w.company("Acme", "acme.example");
        let hq = w.site(&acme, "HQ");
        let branch = w.site(&acme, "Branch");
        let a1 = w.agent(&hq, "acme-dc01");
        let a2 = w.agent(&branch, "acme-pos07");
        w.package(&a1, "backup-agent");
        w.package(&a1, "av-suite");
        w.package(&a2, "av-suite");
        w.policy(&acme, "patch-tuesday");
        w.policy(&acme, "server-monitoring");
        w.user(&acme, "it@acme.example");
        w.user(&acme, "owner@acme.example");
        let mut others = Vec::new();
        for (name, domain) in [
            ("Other", "other.example"),
            ("NotAcme", "notacme.example"),
            ("Acme Net", "acme.example.net"),
        ] {
            let c = w.company(name, domain);
            let s = w.site(&c, "Main");
            let a = w.agent(&s, &format!("{name}-pc1"));
            w.package(&a, "av-suite");
            w.policy(&c, "patch-tuesday");
            w.user(&c, &format!("it@{domain}"));
            others.push(c);
        }
        (acme, others)
    });

    let (code, out, err) = env.run(&["config", "check"]);
    assert_eq!(code, Some(0), "config check\n{out}\n{err}");

    let plan_file = env.dir.path().join("acme.json");
    let (code, out, err) = env.run(&[
        "plan",
        "--client-domain",
        "Acme.Example",
        "--out",
        as_str(&plan_file),
        "-o",
        "json",
    ]);
    assert_eq!(code, Some(0), "plan\n{out}\n{err}");
    assert!(env.rmm.mutations().is_empty(), "planning writes nothing");
    let plan: Value = serde_json::from_str(&std::fs::read_to_string(&plan_file).expect("plan"))
        .expect("plan json");
    assert_eq!(plan["jobs"][0]["subject"]["client_domain"], "acme.example");
    let ours: Vec<&Value> = plan["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter(|a| a["connector"] == "msp-rmm")
        .collect();
    assert_eq!(
        ours.len(),
        12,
        "{}",
        serde_json::to_string_pretty(&ours).unwrap_or_default()
    );

    let (code, out, err) = env.run(&["apply", as_str(&plan_file), "--auto-approve"]);
    assert_eq!(code, Some(0), "apply\n{out}\n{err}");
    let reqs = env.rmm.requests();
    assert!(
        reqs.iter().all(|r| r.status != 409),
        "a removal came before its prerequisites: {reqs:?}"
    );
    let removals: Vec<String> = env.rmm.mutations().into_iter().map(|r| r.path).collect();
    assert_eq!(removals.len(), 12, "{removals:#?}");
    let mut unique = removals.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 12, "each sent once: {removals:#?}");
    let ranks: Vec<u8> = removals.iter().map(|p| rank(p)).collect();
    assert!(
        ranks.windows(2).all(|w| w[0] <= w[1]),
        "packages and policies, agents, users, sites, the company: {removals:#?}"
    );
    env.rmm.world(|w| {
        assert_eq!(w.left_of(&acme), 0, "nothing of Acme is left");
        for c in &others {
            assert_eq!(w.left_of(c), 6, "company {c} is untouched");
        }
    });

    // Nothing of the client is left: planning again finds nothing, a rerun sends nothing.
    let (code, out, err) = env.run(&[
        "plan",
        "--client-domain",
        "acme.example",
        "--detailed-exitcode",
    ]);
    assert_eq!(code, Some(0), "nothing to do\n{out}\n{err}");
    let before = env.rmm.mutations().len();
    let (_, out, err) = env.run(&["apply", "--client-domain", "acme.example", "--auto-approve"]);
    assert_eq!(env.rmm.mutations().len(), before, "{out}\n{err}");
}

/// Every shipped recipe passes the real `revokectl config check`, all in one revoke.toml (each
/// with what its instance must give: WordPress whom content goes to, Docker Hub its
/// organization); WordPress without `vars.reassign_to` is refused, naming the variable.
#[test]
fn every_shipped_recipe_passes_revokectl_config_check_in_one_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("token"), "t\n").expect("token file");
    let mut toml = format!("data_dir = \"{}\"\n", dir.path().join("data").display());
    let names = revoke_connector_http::recipe_names();
    assert!(names.len() >= 8, "{names:?}");
    for name in &names {
        let vars = match *name {
            "wordpress" => "vars = { reassign_to = \"1\" }\n",
            "dockerhub" => "vars = { org = \"acme\" }\n",
            _ => "",
        };
        toml.push_str(&format!(
            "[connectors.{inst}]\nkind = \"http\"\nrecipe = \"{name}\"\nbase_url = \"https://{inst}.example.com\"\nauth = {{ type = \"bearer\", token_file = \"{token}\" }}\n{vars}\n",
            inst = name.replace('_', "-"),
            token = dir.path().join("token").display(),
        ));
    }
    let config = dir.path().join("revoke.toml");
    std::fs::write(&config, &toml).expect("config");
    let check = |config: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_revokectl"))
            .arg("--config")
            .arg(config)
            .args(["config", "check"])
            .stdin(Stdio::null())
            .env_remove("RUST_LOG")
            .output()
            .expect("revokectl runs");
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (code, out) = check(&config);
    assert_eq!(code, Some(0), "{out}\n{toml}");

    let without = toml.replace("vars = { reassign_to = \"1\" }\n", "");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, &without).expect("config");
    let (code, out) = check(&bad);
    assert_ne!(code, Some(0), "{out}");
    assert!(
        out.contains("connectors.wordpress") && out.contains("vars.reassign_to"),
        "{out}"
    );
}
