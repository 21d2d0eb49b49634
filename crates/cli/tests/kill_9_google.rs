//! A real `revokectl apply` killed with SIGKILL between the Drive transfer's insert and its
//! journal entry, against the Google stand-in behind Prism: the stand-in takes the insert (the
//! transfer exists) and holds its answer back, so the process dies before it can record the
//! transfer id; the next `revokectl apply` resumes the plan, finds the transfer by listing, polls
//! it to completion and converges with one transfer, not two. The same for the archive move (the
//! transfer's folder moved into a shared drive): killed after the stand-in took the move, the
//! next apply finds the folder it journaled already in place and moves nothing twice. And when
//! the orphaned transfer has failed meanwhile, the next run does not adopt it: it inserts one of
//! its own and converges.

mod kill;

use kill::as_str;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use revoke_testkit::google::GoogleStandin;
use revoke_testkit::Prism;
use serde_json::Value;

const TRANSFERS: &str = "/admin/datatransfer/v1/transfers";

struct Env {
    g: GoogleStandin,
    prism: Prism,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Env {
    /// `extra` is appended to the google-workspace table
    fn new(extra: &str) -> Env {
        let g = GoogleStandin::start().expect("the google stand-in should start");
        Env::with_standin(g, extra)
    }

    fn with_standin(g: GoogleStandin, extra: &str) -> Env {
        let prism = g.prism().expect("prism should start in front of it");
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("google-sa.json");
        std::fs::write(&key, g.service_account_key()).expect("the key is written");
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
[connectors.google]
kind = "google-workspace"
private_key_file = "{key}"
admin_email = "admin@example.com"
api_url = "{url}"
transfer_to = "archive@example.com"
licences = ["Google-Apps/1010020027"]
transfer_poll_ms = 10
transfer_wait_secs = 1
{extra}
"#,
                data = dir.path().join("data").display(),
                key = key.display(),
                url = prism.rest_url(),
            ),
        )
        .expect("the config is written");
        Env {
            g,
            prism,
            dir,
            config,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        kill::revokectl(&self.config, args)
    }

    fn ctl(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().expect("revokectl runs");
        assert!(
            out.status.success(),
            "revokectl {args:?} failed\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The transfer inserts the stand-in has taken (whatever became of their answers)
    fn inserts(&self) -> usize {
        self.g
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path == TRANSFERS && r.status == 200)
            .count()
    }
}

/// Starts `revokectl apply`, waits until the stand-in's recorder holds a `method` call to
/// `path_prefix` that took effect (its answer held back by [`GoogleStandin::stall`]), and kills
/// the process with SIGKILL there; then lets the held answer go (to nobody)
fn apply_and_kill_at(env: &Env, plan: &Path, method: &str, path_prefix: &str) {
    env.g.stall(method, path_prefix);
    let taken = || {
        env.g
            .requests()
            .iter()
            .any(|r| r.method == method && r.path.starts_with(path_prefix) && r.status < 300)
    };
    kill::apply_killed_when(
        env.command(&["apply", as_str(plan), "--auto-approve", "-o", "jsonl"]),
        &format!("its {method} {path_prefix}"),
        taken,
        || format!("{:?}", env.g.mutations()),
    );
    env.g.release();
}

fn json_lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn kill_9_between_the_transfer_insert_and_its_journal_entry_then_apply_again_makes_one_transfer() {
    let env = Env::new("");
    let (alice, archive) = env.g.world(|w| {
        let admin = w.user("admin@example.com");
        w.edit(&admin, |u| u.is_admin = true);
        let archive = w.user("archive@example.com");
        let alice = w.user("alice@example.com");
        w.edit(&alice, |u| {
            u.drive_files = 50;
            u.drive_bytes = 50 << 20;
            u.licences
                .insert(("Google-Apps".into(), "1010020027".into()));
        });
        w.grant(&alice, "1-a.apps.googleusercontent.com", "Slack");
        let eng = w.group("eng@example.com", "Engineering");
        w.add_member(&eng, &alice);
        w.transfer_polls = 2;
        (alice, archive)
    });
    let plan_file = env.path("plan.json");
    env.ctl(&[
        "plan",
        "--user",
        "alice@example.com",
        "-out",
        as_str(&plan_file),
    ]);
    assert!(env.g.mutations().is_empty(), "planning writes nothing");

    // The kill point is fixed by the stand-in, not by timing: it takes the insert (the transfer
    // exists from then on) and holds the answer back; once the recorder holds the insert,
    // revokectl is waiting for that answer and has journaled nothing about the transfer.
    apply_and_kill_at(&env, &plan_file, "POST", TRANSFERS);
    assert_eq!(env.inserts(), 1, "{:?}", env.g.mutations());
    let transfers_of_alice = || {
        env.g.world(|w| {
            w.transfers
                .values()
                .filter(|t| t.old_owner == alice)
                .map(|t| (t.id.clone(), t.new_owner.clone(), t.status.clone()))
                .collect::<Vec<_>>()
        })
    };
    let at_kill = transfers_of_alice();
    assert_eq!(at_kill.len(), 1, "the insert took effect: {at_kill:?}");
    assert_eq!(at_kill[0].2, "inProgress", "nobody polled it yet");
    assert!(
        env.g.user(&alice).is_some_and(|u| u.suspended),
        "contained before the transfer"
    );
    assert!(
        env.g
            .user(&alice)
            .is_some_and(|u| !u.licences.is_empty() && u.drive_files == 50),
        "the licence waits for the transfer"
    );

    // The second run resumes the recorded plan once the dead run's lease is over.
    env.g.clear_requests();
    let again = env.ctl(&["apply", as_str(&plan_file), "--auto-approve", "-o", "jsonl"]);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("already recorded"), "{stderr}");

    // One transfer, not two: the second run listed the transfers, adopted the one the dead run
    // inserted, and read it to completion.
    assert_eq!(
        env.inserts(),
        0,
        "no second insert: {:?}",
        env.g.mutations()
    );
    let after = transfers_of_alice();
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(
        (
            after[0].0.as_str(),
            after[0].1.as_str(),
            after[0].2.as_str()
        ),
        (at_kill[0].0.as_str(), archive.as_str(), "completed")
    );
    assert!(env
        .g
        .requests()
        .iter()
        .any(|r| r.method == "GET" && r.path == TRANSFERS));
    assert!(env
        .g
        .requests()
        .iter()
        .any(|r| r.method == "GET" && r.path == format!("{TRANSFERS}/{}", after[0].0)));
    let files = env.g.world(|w| w.users[&archive].drive_files);
    assert_eq!(files, 50, "the files are the archive's");

    // The plan completed: the licence after the transfer, the delete (retention 0) last.
    assert!(env.g.user(&alice).is_none(), "alice is deleted");
    let results = json_lines(&env.ctl(&["results"]).stdout);
    assert!(!results.is_empty());
    let unfinished: Vec<&Value> = results
        .iter()
        .filter(|l| !matches!(l["outcome"].as_str(), Some("done" | "already_done")))
        .collect();
    assert!(unfinished.is_empty(), "{unfinished:#?}");
    let transfer = results
        .iter()
        .filter(|l| l["kind"] == "transfer_drive")
        .collect::<Vec<_>>();
    assert_eq!(transfer.len(), 1, "{results:#?}");
    // The transfer's first attempt was recorded before its insert was sent, the second took over
    // after the lease; nothing else was attempted twice, and every effect was read back.
    assert_eq!(transfer[0]["attempts"], 2, "{:#}", transfer[0]);
    for l in &results {
        if l["kind"] != "transfer_drive" {
            assert_eq!(l["attempts"], 1, "{l:#}");
        }
        assert_eq!(l["verdict"], "confirmed", "{l:#}");
    }
    assert!(
        stderr.contains("waiting for 1 action(s) leased by"),
        "the dead run's lease held the transfer: {stderr}"
    );
    // The second run sent only what waited for the transfer: the membership and the licence,
    // then the delete; the suspension, sign-out, backup codes and grant were not sent again.
    let mut writes: Vec<String> = env
        .g
        .mutations()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path.replace(&alice, "ALICE")))
        .collect();
    assert_eq!(
        writes.pop().as_deref(),
        Some("DELETE /admin/directory/v1/users/ALICE"),
        "the delete is last"
    );
    writes.sort();
    assert_eq!(writes.len(), 2, "{writes:#?}");
    assert!(
        writes[0].starts_with("DELETE /admin/directory/v1/groups/")
            && writes[0].ends_with("/members/ALICE"),
        "{writes:#?}"
    );
    assert_eq!(
        writes[1],
        "DELETE /apps/licensing/v1/product/Google-Apps/sku/1010020027/user/alice%40example.com"
    );
    assert_eq!(
        env.prism.errors(),
        Vec::<String>::new(),
        "prism found requests or answers that break Google's descriptions"
    );
}

/// The archive move is the other step Google does not make idempotent for us: a real
/// `revokectl apply` is killed after the stand-in took the move of the transfer's folder into
/// the archive shared drive (`files.update` with `addParents`) and before its answer; the next
/// apply reads the folder it journaled before the move, finds it in the archive as planned, and
/// sends no second move.
#[test]
fn kill_9_between_the_archive_move_and_its_answer_then_apply_again_moves_nothing_twice() {
    let (env, alice, archive, drive) = {
        let g = GoogleStandin::start().expect("the google stand-in should start");
        let (alice, archive, drive) = g.world(|w| {
            let admin = w.user("admin@example.com");
            w.edit(&admin, |u| u.is_admin = true);
            let archive = w.user("archive@example.com");
            let alice = w.user("alice@example.com");
            w.edit(&alice, |u| {
                u.drive_files = 5;
                u.drive_bytes = 5 << 20;
            });
            w.file(&alice, "plan.doc");
            let drive = w.shared_drive("Leavers archive");
            w.drive_member(&drive, &archive, "organizer");
            w.transfer_polls = 1;
            (alice, archive, drive)
        });
        let env = Env::with_standin(
            g,
            &format!("archive_drive_id = \"{drive}\"\nretention_days = 365"),
        );
        (env, alice, archive, drive)
    };
    let plan_file = env.path("plan.json");
    env.ctl(&[
        "plan",
        "--user",
        "alice@example.com",
        "-out",
        as_str(&plan_file),
    ]);
    let moves = |env: &Env| {
        env.g
            .mutations()
            .into_iter()
            .filter(|r| r.method == "PATCH" && r.path.starts_with("/drive/v3/files/"))
            .count()
    };
    apply_and_kill_at(&env, &plan_file, "PATCH", "/drive/v3/files/");
    assert_eq!(moves(&env), 1);
    let archived = || {
        env.g.world(|w| {
            w.files
                .values()
                .filter(|f| f.mime_type == revoke_testkit::google::FOLDER)
                .map(|f| {
                    (
                        f.id.clone(),
                        f.drive_id.clone(),
                        f.app_properties.get("revokedLeaverId").cloned(),
                    )
                })
                .collect::<Vec<_>>()
        })
    };
    let at_kill = archived();
    assert_eq!(
        at_kill.len(),
        1,
        "the transfer made one folder: {at_kill:?}"
    );
    assert_eq!(
        (at_kill[0].1.as_deref(), at_kill[0].2.as_deref()),
        (Some(drive.as_str()), Some(alice.as_str())),
        "the move took effect before the kill"
    );

    env.g.clear_requests();
    let again = env.ctl(&["apply", as_str(&plan_file), "--auto-approve", "-o", "jsonl"]);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("already recorded"), "{stderr}");
    assert_eq!(moves(&env), 0, "no second move: {:?}", env.g.mutations());
    assert_eq!(env.inserts(), 0, "the transfer was done before the kill");
    assert_eq!(
        archived(),
        at_kill,
        "the folder stayed where the first move put it"
    );
    let files = env.g.world(|w| w.users[&archive].drive_files);
    assert_eq!(files, 5);
    assert!(env.g.user(&alice).is_none(), "alice is deleted");
    let results = json_lines(&env.ctl(&["results"]).stdout);
    for l in &results {
        assert!(
            matches!(l["outcome"].as_str(), Some("done" | "already_done")),
            "{l:#}"
        );
        assert_eq!(l["verdict"], "confirmed", "{l:#}");
        let twice = l["kind"] == "archive_drive_files";
        assert_eq!(l["attempts"], if twice { 2 } else { 1 }, "{l:#}");
    }
    assert!(results.iter().any(|l| l["kind"] == "archive_drive_files"));
    assert_eq!(
        env.prism.errors(),
        Vec::<String>::new(),
        "prism found requests or answers that break Google's descriptions"
    );
}

/// The transfer the dead run inserted may have failed by the time the next run looks: it is not
/// adopted (its files did not move), and the next run inserts one transfer of its own, follows
/// that one to completion, and converges.
#[test]
fn kill_9_after_the_transfer_insert_then_it_fails_and_apply_again_makes_one_new_transfer() {
    let env = Env::new("");
    let (alice, archive) = env.g.world(|w| {
        let admin = w.user("admin@example.com");
        w.edit(&admin, |u| u.is_admin = true);
        let archive = w.user("archive@example.com");
        let alice = w.user("alice@example.com");
        w.edit(&alice, |u| {
            u.drive_files = 50;
            u.drive_bytes = 50 << 20;
        });
        w.transfer_polls = 2;
        (alice, archive)
    });
    let plan_file = env.path("plan.json");
    env.ctl(&[
        "plan",
        "--user",
        "alice@example.com",
        "-out",
        as_str(&plan_file),
    ]);
    apply_and_kill_at(&env, &plan_file, "POST", TRANSFERS);
    let orphan = env.g.world(|w| {
        let t = w
            .transfers
            .values_mut()
            .find(|t| t.old_owner == alice)
            .expect("the orphaned transfer");
        // Google gave up on it before anyone read it.
        t.status = "failed".to_owned();
        t.id.clone()
    });

    env.g.clear_requests();
    env.ctl(&["apply", as_str(&plan_file), "--auto-approve", "-o", "jsonl"]);
    assert_eq!(
        env.inserts(),
        1,
        "one new transfer: {:?}",
        env.g.mutations()
    );
    let transfers: Vec<(String, String)> = env.g.world(|w| {
        w.transfers
            .values()
            .map(|t| (t.id.clone(), t.status.clone()))
            .collect()
    });
    assert_eq!(transfers.len(), 2, "{transfers:?}");
    assert!(transfers.contains(&(orphan.clone(), "failed".to_owned())));
    assert!(
        transfers
            .iter()
            .any(|(id, st)| *id != orphan && st == "completed"),
        "{transfers:?}"
    );
    let files = env.g.world(|w| w.users[&archive].drive_files);
    assert_eq!(files, 50, "the new transfer moved the files");
    assert!(env.g.user(&alice).is_none(), "alice is deleted after it");
    let results = json_lines(&env.ctl(&["results"]).stdout);
    for l in &results {
        assert!(
            matches!(l["outcome"].as_str(), Some("done" | "already_done")),
            "{l:#}"
        );
        assert_eq!(l["verdict"], "confirmed", "{l:#}");
    }
    assert_eq!(
        env.prism.errors(),
        Vec::<String>::new(),
        "prism found requests or answers that break Google's descriptions"
    );
}
