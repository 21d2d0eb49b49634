//! A real `revokectl apply` killed with SIGKILL while Okta's answer to a group removal is held
//! back (the Okta stand-in behind Prism has removed the member and not answered yet): the next
//! `revokectl apply` of the same plan waits out the dead run's lease, finds the membership gone
//! by reading first, and converges; no mutation reaches Okta twice but its two-step delete.

mod kill;

use kill::as_str;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use revoke_testkit::okta::GroupType;
use revoke_testkit::{OktaStandin, Prism};

struct Env {
    okta: OktaStandin,
    _prism: Prism,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Env {
    fn new() -> Env {
        let okta = OktaStandin::start().expect("the okta stand-in should start");
        let prism = okta.prism().expect("prism should start in front of it");
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
[connectors.okta]
kind = "okta"
org_url = "{url}"
token = "{token}"
"#,
                data = dir.path().join("data").display(),
                url = prism.rest_url(),
                token = okta.token(),
            ),
        )
        .expect("the config is written");
        Env {
            okta,
            _prism: prism,
            dir,
            config,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        kill::revokectl(&self.config, args)
    }

    fn ok(&self, args: &[&str]) {
        kill::revokectl_ok(&self.config, args);
    }
}

#[test]
fn kill_9_while_okta_holds_a_group_removals_answer_then_apply_again_sends_nothing_twice() {
    let env = Env::new();
    let (alice, bob, eng) = env.okta.world(|w| {
        let alice = w.user("alice@example.com", "alice@example.com");
        let bob = w.user("bob@example.com", "bob@example.com");
        let eng = w.group("Engineering", GroupType::OktaGroup);
        let ops = w.group("Ops", GroupType::OktaGroup);
        for g in [&eng, &ops] {
            w.add_member(g, &alice);
        }
        w.add_member(&eng, &bob);
        (alice, bob, eng)
    });
    let plan = env.dir.path().join("plan.json");
    env.ok(&["plan", "--user", "alice@example.com", "-out", as_str(&plan)]);
    assert!(env.okta.mutations().is_empty(), "planning writes nothing");

    // The kill point is set by the stand-in, not by a timer: it removes alice from Engineering
    // and holds the answer; once the request is recorded, revokectl is waiting for it.
    let removal = format!("/api/v1/groups/{eng}/users/{alice}");
    env.okta.stall("DELETE", &removal);
    kill::apply_killed_when(
        env.command(&["apply", as_str(&plan), "--auto-approve", "-o", "jsonl"]),
        "the group removal",
        || env.okta.requests().iter().any(|r| r.path == removal),
        || format!("{:?}", env.okta.mutations()),
    );
    env.okta.release();
    assert!(
        !env.okta.world(|w| w.groups_of(&alice)).contains(&eng),
        "Okta took the removal before the process died"
    );

    env.ok(&["apply", as_str(&plan), "--auto-approve"]);
    assert!(env.okta.user(&alice).is_none(), "alice is deleted");
    assert_eq!(env.okta.world(|w| w.groups_of(&bob)), vec![eng.clone()]);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in env.okta.mutations() {
        *counts
            .entry(format!("{} {}", r.method, r.path))
            .or_default() += 1;
    }
    assert_eq!(
        counts.get(&format!("DELETE {removal}")),
        Some(&1),
        "{counts:#?}"
    );
    for (call, n) in &counts {
        // Okta's delete is two calls: the first deactivates, the second deletes.
        let want = if *call == format!("DELETE /api/v1/users/{alice}") {
            2
        } else {
            1
        };
        assert_eq!(*n, want, "{call}: {counts:#?}");
    }
}
