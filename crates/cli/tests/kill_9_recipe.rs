//! A real `revokectl apply` running a shipped recipe (`recipe = "mattermost"` in revoke.toml)
//! killed with SIGKILL while the Mattermost stand-in holds its answer to the deactivation it has
//! already made: the next `revokectl apply` of the same plan waits out the dead run's lease,
//! reads the user by id before writing again (already deactivated), and converges; every
//! mutation reaches the stand-in exactly once (counted by the stand-in, in this test's process,
//! which revokectl reaches over TCP); a third apply sends no mutation.

mod kill;

use kill::as_str;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use revoke_testkit::recipes::mattermost::{self, MattermostStandin};

struct Env {
    mm: MattermostStandin,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Env {
    fn new() -> Env {
        let mm = mattermost::start().expect("the mattermost stand-in should start");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("mm-token"), format!("{}\n", mm.token()))
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
max_attempts = 20
[policies.default]
retention_days = 0
[connectors.chat]
kind = "http"
recipe = "mattermost"
base_url = "{url}"
auth = {{ type = "bearer", token_file = "{token}" }}
"#,
                data = dir.path().join("data").display(),
                url = mm.url(),
                token = dir.path().join("mm-token").display(),
            ),
        )
        .expect("the config is written");
        Env { mm, dir, config }
    }

    fn command(&self, args: &[&str]) -> Command {
        kill::revokectl(&self.config, args)
    }

    fn run(&self, args: &[&str]) -> (bool, String) {
        let out = self.command(args).output().expect("revokectl runs");
        (
            out.status.success(),
            format!(
                "stdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// Every mutation the stand-in received, counted by method, path and body
    fn writes(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for r in self.mm.mutations() {
            *counts
                .entry(format!("{} {} {}", r.method, r.path, r.body))
                .or_default() += 1;
        }
        counts
    }
}

#[test]
fn kill_9_while_mattermost_holds_the_deactivations_answer_then_apply_again_sends_nothing_twice() {
    let env = Env::new();
    let (alice, bob, team, private, town) = env.mm.world(|w| {
        let alice = w.user("alice", "alice@example.com");
        let bob = w.user("bob", "bob@example.com");
        w.session(&alice);
        w.session(&bob);
        w.token(&alice, "ci deploy");
        let team = w.team("secret", true);
        w.join_team(&team, &alice);
        w.join_team(&team, &bob);
        let private = w.channel(&team, "ops-private", true);
        let town = w.channel(&team, "town", false);
        for c in [&private, &town] {
            w.join_channel(c, &alice);
            w.join_channel(c, &bob);
        }
        (alice, bob, team, private, town)
    });
    let plan = env.dir.path().join("plan.json");
    let (ok, out) = env.run(&["plan", "--user", "alice", "--out", as_str(&plan)]);
    assert!(ok, "plan failed\n{out}");
    assert!(env.mm.mutations().is_empty(), "planning writes nothing");

    // The kill point is set by the stand-in, not by a timer: it deactivates alice and holds the
    // answer; once it holds it, revokectl is waiting for it.
    let active = format!("/api/v4/users/{alice}/active");
    env.mm.hold(&active);
    kill::apply_killed_when(
        env.command(&["apply", as_str(&plan), "--auto-approve", "-o", "jsonl"]),
        "the deactivation",
        || env.mm.held() > 0,
        || format!("{:?}", env.mm.mutations()),
    );
    env.mm.release();
    assert!(
        !env.mm.world(|w| w.is_active(&alice)),
        "Mattermost made the change before the process died"
    );

    let (ok, out) = env.run(&["apply", as_str(&plan), "--auto-approve"]);
    assert!(ok, "the second apply should converge\n{out}");
    let deactivation = format!("PUT {active} {{\"active\":false}}");
    let writes = env.writes();
    assert_eq!(writes.get(&deactivation), Some(&1), "{writes:#?}");
    for (call, n) in &writes {
        assert_eq!(*n, 1, "sent twice: {call}\n{writes:#?}");
    }
    env.mm.world(|w| {
        assert!(!w.is_active(&alice));
        assert_eq!(w.sessions_of(&alice), 0);
        assert!(w.tokens_of(&alice).is_empty());
        assert!(!w.channels_of(&alice).contains(&private));
        assert!(!w.teams_of(&alice).contains(&team), "the invite-only team");
        assert!(w.is_active(&bob));
        assert_eq!(w.teams_of(&bob), vec![team.clone()]);
        assert!(w.channels_of(&bob).contains(&private) && w.channels_of(&bob).contains(&town));
    });

    // A third apply of the same plan: every action is recorded as done; nothing is sent.
    env.mm.clear_requests();
    let (ok, out) = env.run(&["apply", as_str(&plan), "--auto-approve"]);
    assert!(ok, "{out}");
    assert!(env.mm.mutations().is_empty(), "{:?}", env.mm.mutations());
}
