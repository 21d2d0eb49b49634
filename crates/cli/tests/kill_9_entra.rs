//! A real `revokectl apply` killed with SIGKILL while Graph's answer to a group removal is held
//! back (the Entra stand-in, behind the validating proxy, has removed the member and not
//! answered yet): the next `revokectl apply` of the same plan waits out the dead run's lease,
//! reads the membership before it writes again (a second attempt), and converges; no mutation
//! reaches Graph twice, and nothing is sent for the distribution list Graph cannot change.

mod kill;

use kill::as_str;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use revoke_testkit::entra::{EntraStandin, GroupKind};

struct Env {
    entra: EntraStandin,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Env {
    fn new() -> Env {
        let entra = EntraStandin::start_validated().expect("the entra stand-in should start");
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
[connectors.entra]
kind = "entra"
tenant_id = "{tenant}"
client_id = "{client}"
client_secret = "{secret}"
token_url = "{token_url}"
graph_url = "{graph_url}"
"#,
                data = dir.path().join("data").display(),
                tenant = entra.tenant_id(),
                client = entra.client_id(),
                secret = entra.client_secret(),
                token_url = entra.token_url(),
                graph_url = entra.graph_url(),
            ),
        )
        .expect("the config is written");
        Env { entra, dir, config }
    }

    fn command(&self, args: &[&str]) -> Command {
        kill::revokectl(&self.config, args)
    }

    fn ok(&self, args: &[&str]) {
        kill::revokectl_ok(&self.config, args);
    }
}

#[test]
fn kill_9_while_graph_holds_a_group_removals_answer_then_apply_again_sends_nothing_twice() {
    let env = Env::new();
    let (alice, bob, eng, ops, dl) = env.entra.world(|w| {
        let alice = w.user("alice@contoso.com");
        let bob = w.user("bob@contoso.com");
        let eng = w.group("Engineering", GroupKind::Security);
        let ops = w.group("Ops", GroupKind::Unified);
        let dl = w.group("All Staff", GroupKind::Distribution);
        for g in [&eng, &ops, &dl] {
            w.add_member(g, &alice);
        }
        w.add_member(&eng, &bob);
        (alice, bob, eng, ops, dl)
    });
    let plan = env.dir.path().join("plan.json");
    env.ok(&[
        "plan",
        "--user",
        "alice@contoso.com",
        "--out",
        as_str(&plan),
    ]);
    assert!(env.entra.mutations().is_empty(), "planning writes nothing");

    // The kill point is set by the stand-in, not by a timer: it removes alice from a group and
    // holds the answer; once it holds one, revokectl is waiting for it.
    env.entra.hold("DELETE", "/$ref");
    kill::apply_killed_when(
        env.command(&["apply", as_str(&plan), "--auto-approve", "-o", "jsonl"]),
        "a group removal",
        || env.entra.held() > 0,
        || format!("{:?}", env.entra.mutations()),
    );
    env.entra.release();
    let groups = env.entra.world(|w| w.groups_of(&alice));
    assert!(
        !groups.contains(&eng) || !groups.contains(&ops),
        "Graph took a removal before the process died: {groups:?}"
    );

    // The run ends with the distribution list's removal skipped and a person's step awaiting
    // acknowledgement, nothing failed or blocked. Whether the skip is confirmed is set by the
    // order of the reads back, not by chance: Entra's actions are read back together once a run
    // has nothing more to send. A skip the killed process made (attempt 1) is read back first
    // thing by this run, before the delete: alice is still in the list, not confirmed. A skip it
    // did not finish is made again here (attempt 2) and read back after the delete: confirmed.
    let out = env
        .command(&["apply", as_str(&plan), "--auto-approve"])
        .output()
        .expect("revokectl runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let skip = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("skipped "))
        .unwrap_or_else(|| panic!("no skipped line:\n{stdout}"));
    let not_confirmed = if skip.contains("(attempt 1)") { 1 } else { 0 };
    assert!(
        stdout.contains("1 skipped, 0 failed, 0 blocked")
            && stdout.contains("1 awaiting acknowledgement")
            && stdout.contains(&format!("{not_confirmed} not confirmed")),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(env.entra.user(&alice).is_none(), "alice is deleted");
    assert_eq!(
        env.entra.world(|w| w.groups_of(&bob)),
        vec![eng.clone()],
        "bob stays"
    );
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in env.entra.mutations() {
        *counts
            .entry(format!("{} {}", r.method, r.path))
            .or_default() += 1;
    }
    for g in [&eng, &ops] {
        assert_eq!(
            counts.get(&format!("DELETE /v1.0/groups/{g}/members/{alice}/$ref")),
            Some(&1),
            "{counts:#?}"
        );
    }
    for (call, n) in &counts {
        assert_eq!(*n, 1, "{call}: {counts:#?}");
    }
    assert!(
        counts.keys().all(|c| !c.contains(&dl)),
        "nothing sent for the distribution list: {counts:#?}"
    );
    env.entra.assert_valid();
}
