//! revokectl end to end against a real slapd: plan, apply, rerun, crash and resume, stale plans,
//! bad input. Each test starts its own directory server.

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;

use common::{Env, ALICE};

const PLACEHOLDER: &str = r#"group_placeholder_dn = "cn=nobody,ou=people,dc=example,dc=org""#;

fn outcomes(run: &common::Run) -> BTreeMap<String, String> {
    run.json_lines()
        .into_iter()
        .map(|v| {
            (
                v["action_id"].as_str().unwrap_or("").to_string(),
                v["outcome"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn plan_then_apply_contains_now_and_schedules_the_delete() {
    let env = Env::new(PLACEHOLDER, "");
    let plan_file = env.path("plan.json");
    let before = env.slapd.op_counts().expect("counts");
    let plan = env.ctl(&[
        "plan",
        "--user",
        "alice",
        "-out",
        plan_file.to_str().expect("utf-8"),
        "--detailed-exitcode",
    ]);
    assert_eq!(
        plan.code, 2,
        "changes give exit 2 with --detailed-exitcode\n{}{}",
        plan.stdout, plan.stderr
    );
    assert!(
        plan.stdout.contains("corp-ldap (6 actions)"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("contain (1)")
            && plan.stdout.contains("revoke (4)")
            && plan.stdout.contains("delete (1)"),
        "{}",
        plan.stdout
    );
    assert_eq!(
        env.slapd
            .op_counts()
            .expect("counts")
            .since(&before)
            .mutations(),
        0,
        "plan is read-only"
    );
    assert!(!env.db().exists(), "plan writes no store");
    assert!(!env.alice_locked() && env.alice_groups().len() == 4);

    let apply = env
        .ctl(&[
            "apply",
            plan_file.to_str().expect("utf-8"),
            "--auto-approve",
            "-o",
            "jsonl",
        ])
        .ok();
    let got = outcomes(&apply);
    assert_eq!(got.values().filter(|o| *o == "done").count(), 5, "{got:?}");
    assert_eq!(
        got.values().filter(|o| *o == "pending").count(),
        1,
        "the delete waits for retention: {got:?}"
    );
    assert_eq!(
        got.values().filter(|o| *o == "awaiting_ack").count(),
        1,
        "{got:?}"
    );
    for line in apply.json_lines() {
        if line["outcome"] == "done" {
            assert_eq!(line["verdict"], "confirmed", "{line}");
            assert_eq!(line["attempts"], 1, "{line}");
            assert!(
                line["started_at"].is_string() && line["finished_at"].is_string(),
                "{line}"
            );
        }
        if line["kind"] == "delete_account" {
            assert!(
                line["not_before"].is_string(),
                "scheduled with its time: {line}"
            );
        }
    }
    assert!(env.alice_locked());
    assert!(env.alice_groups().is_empty(), "{:?}", env.alice_groups());

    // Applying the same plan again resumes it: nothing recorded as done is sent again.
    let mid = env.slapd.op_counts().expect("counts");
    let again = env
        .ctl(&[
            "apply",
            plan_file.to_str().expect("utf-8"),
            "--auto-approve",
        ])
        .ok();
    assert!(
        again.stderr.contains("already recorded"),
        "{}",
        again.stderr
    );
    assert_eq!(
        env.slapd
            .op_counts()
            .expect("counts")
            .since(&mid)
            .mutations(),
        0
    );

    let status = env.ctl(&["status"]).ok();
    assert!(status.stdout.contains("alice"), "{}", status.stdout);
    let results = env.ctl(&["results"]).ok();
    assert_eq!(results.json_lines().len(), 7);
    let audit = env.ctl(&["audit", "verify"]).ok();
    assert!(
        audit.stdout.starts_with("audit log intact"),
        "{}",
        audit.stdout
    );
}

#[test]
fn resume_runs_the_delete_phase_once_due_and_a_new_job_finds_everything_already_done() {
    let env = Env::new(PLACEHOLDER, "");
    // Effective 31 days ago: retention (30 days) is over, so every phase is due at once.
    let first = env
        .ctl(&[
            "apply",
            "--user",
            "alice",
            "--effective",
            &(chrono::Utc::now() - chrono::Duration::days(31)).to_rfc3339(),
            "--auto-approve",
            "-o",
            "jsonl",
        ])
        .ok();
    let got = outcomes(&first);
    assert_eq!(got.values().filter(|o| *o == "done").count(), 6, "{got:?}");
    let gone = env
        .slapd
        .search("ou=people,dc=example,dc=org", "(uid=alice)", &["uid"])
        .expect("search");
    assert!(gone.trim().is_empty(), "alice is deleted: {gone}");
    // A leaver an earlier job already removed everywhere: said so, exit 0, nothing sent, no
    // new job.
    let job = first.job_id();
    let before = env.slapd.op_counts().expect("counts");
    for args in [
        &["apply", "--user", "alice", "--auto-approve"][..],
        &["plan", "--user", "alice", "--detailed-exitcode"][..],
    ] {
        let again = env.ctl(args).ok();
        assert!(
            again
                .stderr
                .contains(&format!("alice: already offboarded (job {job}")),
            "{args:?}: {}",
            again.stderr
        );
    }
    assert_eq!(env.job_count(), 1, "no second job");
    // Someone nobody ever offboarded is still an unknown user.
    let unknown = env.ctl(&["apply", "--user", "zed", "--auto-approve"]);
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.stderr.contains("unknown user \"zed\""),
        "{}",
        unknown.stderr
    );
    assert_eq!(
        env.slapd
            .op_counts()
            .expect("counts")
            .since(&before)
            .mutations(),
        0
    );
}

/// Group modifications slapd has answered with success so far (the lock of alice's entry is not
/// one).
fn group_changes(env: &Env) -> usize {
    env.slapd
        .changes()
        .expect("changes")
        .iter()
        .filter(|m| {
            let m = m.to_lowercase();
            m.starts_with("mod cn=") && m.ends_with(",ou=groups,dc=example,dc=org")
        })
        .count()
}

/// A TCP proxy in front of slapd that passes LDAP messages through one by one and lets at most
/// `budget` modify requests reach slapd: a later one is held (never sent), so the client stops
/// there, after exactly that many modifications, however fast or slow it runs.
struct LdapGate {
    url: String,
    /// Modify requests passed to slapd.
    passed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// A modify request is being held.
    held: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl LdapGate {
    fn start(upstream: u16, budget: usize) -> LdapGate {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::Arc;

        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("ldap://{}", listener.local_addr().expect("addr"));
        let passed = Arc::new(AtomicUsize::new(0));
        let held = Arc::new(AtomicBool::new(false));
        let (p, h) = (passed.clone(), held.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let server = std::net::TcpStream::connect(("127.0.0.1", upstream)).expect("slapd");
                let (mut from_server, mut to_client) = (
                    server.try_clone().expect("clone"),
                    client.try_clone().expect("clone"),
                );
                std::thread::spawn(move || std::io::copy(&mut from_server, &mut to_client));
                let (passed, held) = (p.clone(), h.clone());
                let (mut from_client, mut to_server) = (client, server);
                std::thread::spawn(move || {
                    while let Ok(message) = ldap_message(&mut from_client) {
                        // [APPLICATION 6], a ModifyRequest.
                        if ldap_operation(&message) == Some(0x66)
                            && passed.fetch_add(1, Ordering::SeqCst) >= budget
                        {
                            passed.fetch_sub(1, Ordering::SeqCst);
                            held.store(true, Ordering::SeqCst);
                            loop {
                                std::thread::park();
                            }
                        }
                        if std::io::Write::write_all(&mut to_server, &message).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        LdapGate { url, passed, held }
    }
}

/// One BER-encoded LDAP message (tag, length, contents) read whole.
fn ldap_message(r: &mut impl std::io::Read) -> std::io::Result<Vec<u8>> {
    let mut message = vec![0u8; 2];
    r.read_exact(&mut message)?;
    let len = if message[1] < 0x80 {
        usize::from(message[1])
    } else {
        let mut n = vec![0u8; usize::from(message[1] & 0x7f)];
        r.read_exact(&mut n)?;
        message.extend_from_slice(&n);
        n.iter().fold(0usize, |a, b| (a << 8) | usize::from(*b))
    };
    let start = message.len();
    message.resize(start + len, 0);
    r.read_exact(&mut message[start..])?;
    Ok(message)
}

/// The protocolOp tag of an LDAPMessage: after the SEQUENCE header and the messageID.
fn ldap_operation(message: &[u8]) -> Option<u8> {
    let len = *message.get(1)?;
    let mut i = 2 + if len < 0x80 {
        0
    } else {
        usize::from(len & 0x7f)
    };
    if *message.get(i)? != 0x02 {
        return None;
    }
    i += 2 + usize::from(*message.get(i + 1)?);
    message.get(i).copied()
}

#[test]
fn kill_9_mid_apply_then_apply_again_converges_without_sending_anything_twice() {
    let mut ldif = String::new();
    for i in 0..150 {
        ldif.push_str(&format!(
            "dn: cn=team-{i:03},ou=groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: team-{i:03}\nmember: {ALICE}\nmember: uid=bob,ou=people,dc=example,dc=org\n\n"
        ));
    }
    let env = Env::new(&format!("{PLACEHOLDER}\nconcurrency = 1"), "");
    env.slapd.add_ldif(&ldif).expect("teams load");
    let plan_file = env.path("plan.json");
    let plan_path = plan_file.to_str().expect("utf-8");
    env.ctl(&["plan", "--user", "alice", "-out", plan_path])
        .ok();

    // The kill point is fixed by count, not by timing or output: revokectl talks to slapd through
    // a gate that passes the lock and the first 20 group removals and holds the next
    // modification; once slapd has answered those 21, revokectl is killed.
    const BUDGET: usize = 21;
    let gate = LdapGate::start(env.slapd.port(), BUDGET);
    let gated = env.path("gated.toml");
    let config = std::fs::read_to_string(&env.config).expect("config");
    assert!(config.contains(&env.slapd.url()));
    std::fs::write(&gated, config.replace(&env.slapd.url(), &gate.url)).expect("gated config");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_revokectl"))
        .arg("--config")
        .arg(&gated)
        .args(["apply", plan_path, "--auto-approve", "-o", "jsonl"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("apply starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !(gate.held.load(std::sync::atomic::Ordering::SeqCst)
        && env.slapd.changes().expect("changes").len() == BUDGET)
    {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "apply ended after {} modifications, before the gate held one",
            gate.passed.load(std::sync::atomic::Ordering::SeqCst)
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the gate never held a modification ({} passed)",
            gate.passed.load(std::sync::atomic::Ordering::SeqCst)
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    assert!(env.alice_locked(), "the lock was the first modification");
    assert_eq!(
        group_changes(&env),
        BUDGET - 1,
        "killed after 20 group removals"
    );
    let partial = env.alice_groups().len();
    assert!(
        partial > 0 && partial < 154,
        "the kill landed mid-apply ({partial} groups left)"
    );

    let again = env
        .ctl(&["apply", plan_path, "--auto-approve", "-o", "jsonl"])
        .ok();
    assert!(
        again.stderr.contains("already recorded"),
        "{}",
        again.stderr
    );
    assert!(
        env.alice_groups().is_empty(),
        "converged: {:?}",
        env.alice_groups()
    );
    assert!(env.alice_locked());

    // Every target received at most one modification across both runs.
    let per_dn = env.mutations_per_dn();
    let twice: Vec<_> = per_dn.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "modified more than once: {twice:?}");
    let group_mods = per_dn.keys().filter(|k| k.starts_with("mod cn=")).count();
    assert_eq!(group_mods, 154, "one modification per group: {per_dn:?}");
    let results = env.ctl(&["results"]).ok();
    assert!(
        results
            .json_lines()
            .iter()
            .all(|l| l["outcome"] != "failed"),
        "{}",
        results.stdout
    );
    // Whatever the kill interrupted between a result and its read-back was read back.
    let unverified: Vec<_> = results
        .json_lines()
        .into_iter()
        .filter(|l| matches!(l["outcome"].as_str(), Some("done" | "already_done")))
        .filter(|l| l["verdict"] != "confirmed")
        .collect();
    assert!(unverified.is_empty(), "{unverified:?}");
}

#[test]
fn a_stale_plan_is_refused_and_names_what_changed() {
    let env = Env::new(PLACEHOLDER, "");
    let plan_file = env.path("plan.json");
    let plan_path = plan_file.to_str().expect("utf-8");
    env.ctl(&["plan", "--user", "alice", "-out", plan_path])
        .ok();
    env.slapd
        .add_ldif(&format!("dn: cn=finance,ou=groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: finance\nmember: {ALICE}\n"))
        .expect("new group");
    let before = env.slapd.op_counts().expect("counts");
    let run = env.ctl(&["apply", plan_path, "--auto-approve"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("the plan is stale"), "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "corp-ldap: alice: group_membership cn=finance,ou=groups,dc=example,dc=org appeared"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(
        env.slapd
            .op_counts()
            .expect("counts")
            .since(&before)
            .mutations(),
        0
    );
    assert!(!env.alice_locked());
}

#[test]
fn a_hand_edited_plan_is_refused() {
    let env = Env::new(PLACEHOLDER, "");
    let plan_file = env.path("plan.json");
    let plan_path = plan_file.to_str().expect("utf-8");
    env.ctl(&["plan", "--user", "alice", "-out", plan_path])
        .ok();
    let text = std::fs::read_to_string(&plan_file)
        .expect("read")
        .replace("cn=engineering", "cn=executives");
    std::fs::write(&plan_file, text).expect("write");
    let run = env.ctl(&["apply", plan_path, "--auto-approve"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("edited after it was made"),
        "{}",
        run.stderr
    );
}

#[test]
fn injection_shaped_and_unknown_names_match_nothing_and_write_nothing() {
    let env = Env::new(PLACEHOLDER, "");
    for name in ["*)(uid=*", "alice,ou=admins", "*", "../x", "nobody-here"] {
        let run = env.ctl(&["plan", "--user", name]);
        assert_eq!(run.code, 1, "{name}: {}{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains(&format!(
                "unknown user {:?}: not found in any connector searched (corp-ldap)",
                name
            )),
            "{name}: {}",
            run.stderr
        );
        let apply = env.ctl(&["apply", "--user", name, "--auto-approve"]);
        assert_eq!(apply.code, 1, "{name}");
    }
    assert!(!env.db().exists(), "nothing written");
    assert!(!env.alice_locked());
}

#[test]
fn a_client_domain_is_checked_and_a_connector_that_cannot_take_it_is_named() {
    let env = Env::new(PLACEHOLDER, "");
    for bad in [
        "*)(uid=*",
        "../x",
        "*",
        "clientco",
        "client co.test",
        "\"x.test",
    ] {
        for cmd in ["plan", "apply"] {
            let run = env.ctl(
                &[cmd, "--client-domain", bad, "--auto-approve"]
                    [..if cmd == "plan" { 3 } else { 4 }],
            );
            assert_eq!(run.code, 1, "{cmd} {bad}: {}{}", run.stdout, run.stderr);
            assert!(
                run.stderr.contains("--client-domain: expected "),
                "{cmd} {bad}: {}",
                run.stderr
            );
        }
    }
    // LDAP takes no client jobs: the plan refuses, naming what was searched; nothing is written.
    let run = env.ctl(&["plan", "--client-domain", "ClientCo.test"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(
            "client domain \"clientco.test\": no connector of policy \"default\" takes client jobs (corp-ldap)"
        ),
        "{}",
        run.stderr
    );
    assert!(!env.db().exists(), "nothing written");
}

#[test]
fn the_last_member_of_a_group_fails_clearly_and_blocks_the_delete() {
    let env = Env::new("", "");
    let run = env.ctl(&["apply", "--user", "alice", "--auto-approve", "-o", "jsonl"]);
    assert_eq!(
        run.code, 1,
        "a failure is exit 1\n{}{}",
        run.stdout, run.stderr
    );
    let lines = run.json_lines();
    let failed: Vec<_> = lines.iter().filter(|l| l["outcome"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{}", run.stdout);
    assert_eq!(
        failed[0]["target"],
        "cn=alice-only,ou=groups,dc=example,dc=org"
    );
    assert_eq!(failed[0]["error_class"], "permanent");
    assert_eq!(failed[0]["error_code"], "last_member");
    assert_eq!(failed[0]["attempts"], 1, "permanent errors are not retried");
    let results = env.ctl(&["results"]).ok();
    let delete = results
        .json_lines()
        .into_iter()
        .find(|l| l["kind"] == "delete_account")
        .expect("delete action");
    assert_eq!(delete["outcome"], "blocked", "{delete}");
    assert_eq!(env.alice_groups(), vec!["alice-only".to_string()]);
}

#[test]
fn a_protected_account_is_left_out_and_said_so() {
    let env = Env::new(PLACEHOLDER, "");
    let run = env.ctl(&["plan", "--user", "breakglass", "--detailed-exitcode"]);
    assert_eq!(run.code, 0, "no changes\n{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("protected account breakglass: left out 2 action(s)"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("lock_account"), "{}", run.stdout);
}

#[test]
fn apply_without_a_terminal_needs_auto_approve_and_writes_nothing() {
    let env = Env::new(PLACEHOLDER, "");
    let run = env.ctl(&["apply", "--user", "alice"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("refusing to apply without a terminal"),
        "{}",
        run.stderr
    );
    assert!(!env.db().exists());
    assert!(!env.alice_locked());
}

#[test]
fn manual_steps_wait_for_acknowledgement() {
    let env = Env::new(PLACEHOLDER, "");
    let run = env
        .ctl(&["apply", "--user", "alice", "--auto-approve", "-o", "jsonl"])
        .ok();
    let job = run.job_id();
    let status = env.ctl(&["status", &job]).ok();
    assert!(status.stdout.contains("awaiting"), "{}", status.stdout);
    let step = run
        .json_lines()
        .into_iter()
        .find(|l| l["kind"] == "manual_step")
        .expect("manual step");
    let step_id = step["action_id"].as_str().expect("id").to_string();
    assert!(step_id.starts_with("manual.collect-laptop."), "{step_id}");
    // By the step's name from config, or by its action id.
    let acked = env
        .ctl(&["ack", &job, "collect-laptop", "--by", "it-desk"])
        .ok();
    assert!(acked.stdout.contains(&step_id), "{}", acked.stdout);
    let again = env.ctl(&["ack", &job, &step_id]);
    assert_eq!(again.code, 1);
    assert!(
        again
            .stderr
            .contains(&format!("cannot acknowledge {step_id}")),
        "{}",
        again.stderr
    );
    let unknown = env.ctl(&["ack", &job, "manual.nope"]);
    assert_eq!(unknown.code, 1);
    assert!(unknown.stderr.contains("not found"), "{}", unknown.stderr);
    let results = env.ctl(&["results", &job]).ok();
    let manual = results
        .json_lines()
        .into_iter()
        .find(|l| l["action_id"] == step_id.as_str())
        .expect("manual");
    assert_eq!(manual["outcome"], "acknowledged");
    assert!(
        manual["note"]
            .as_str()
            .is_some_and(|n| n.contains("it-desk")),
        "{manual}"
    );
    env.ctl(&["verify", &job]).ok();
}

#[test]
fn audit_verify_detects_an_altered_and_a_removed_entry() {
    let env = Env::new(PLACEHOLDER, "");
    env.ctl(&["apply", "--user", "alice", "--auto-approve"])
        .ok();
    env.ctl(&["audit", "verify"]).ok();
    let url = format!("sqlite://{}", env.db().display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("open db");
        sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3")
            .execute(&mut c)
            .await
            .expect("tamper");
    });
    let altered = env.ctl(&["audit", "verify"]);
    assert_eq!(altered.code, 1);
    assert!(
        altered
            .stdout
            .contains("entry 3: content does not match its hash"),
        "{}",
        altered.stdout
    );
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&url).await.expect("open db");
        sqlx::query("UPDATE audit_log SET actor = (SELECT actor FROM audit_log WHERE seq = 2) WHERE seq = 3").execute(&mut c).await.expect("restore");
        sqlx::query("DELETE FROM audit_log WHERE seq = 5").execute(&mut c).await.expect("remove");
    });
    let removed = env.ctl(&["audit", "verify"]);
    assert_eq!(removed.code, 1);
    assert!(
        removed
            .stdout
            .contains("entry 6: expected sequence number 5"),
        "{}",
        removed.stdout
    );
}

#[test]
fn bad_configuration_names_the_key_before_contacting_anything() {
    let env = Env::new("lock_method = \"move\"", "");
    let run = env.ctl(&["config", "check"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("connectors.corp-ldap.disabled_base_dn"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("secret"),
        "no secret in errors: {}",
        run.stderr
    );
}

#[test]
fn two_executors_on_one_postgres_store_never_run_an_action_twice() {
    let mut ldif = String::new();
    for i in 0..60 {
        ldif.push_str(&format!(
            "dn: cn=squad-{i:02},ou=groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: squad-{i:02}\nmember: {ALICE}\nmember: uid=bob,ou=people,dc=example,dc=org\n\n"
        ));
    }
    let db = revoke_testkit::Postgres::shared()
        .fresh_database()
        .expect("database");
    let env = Env::new(
        &format!("{PLACEHOLDER}\nconcurrency = 2"),
        &format!("[store]\nurl = \"{db}\""),
    );
    env.slapd.add_ldif(&ldif).expect("squads load");
    let plan_file = env.path("plan.json");
    let plan_path = plan_file.to_str().expect("utf-8");
    env.ctl(&["plan", "--user", "alice", "-out", plan_path])
        .ok();
    let children: Vec<_> = (0..2)
        .map(|_| {
            env.command(&["apply", plan_path, "--auto-approve", "-o", "jsonl"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("apply starts")
        })
        .collect();
    let runs: Vec<common::Run> = children
        .into_iter()
        .map(|c| c.wait_with_output().expect("finishes").into())
        .collect();
    for r in &runs {
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    }
    assert!(env.alice_groups().is_empty(), "{:?}", env.alice_groups());
    assert!(
        !env.db().exists(),
        "the Postgres store was used, not SQLite"
    );
    let results = env.ctl(&["results"]).ok();
    let lines = results.json_lines();
    assert_eq!(
        lines.iter().filter(|l| l["outcome"] == "done").count(),
        65,
        "{}",
        results.stdout
    );
    assert!(
        lines
            .iter()
            .all(|l| l["attempts"].as_u64().unwrap_or(0) <= 1),
        "{}",
        results.stdout
    );
    let per_dn = env.mutations_per_dn();
    assert!(per_dn.values().all(|n| *n == 1), "{per_dn:?}");
    env.ctl(&["audit", "verify"]).ok();
}

#[test]
fn a_future_effective_date_waits_unless_the_risk_is_high_and_resume_runs_what_became_due() {
    let env = Env::new(PLACEHOLDER, "");
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(3)).to_rfc3339();
    let standard = env
        .ctl(&[
            "apply",
            "--user",
            "bob",
            "--effective",
            &soon,
            "--auto-approve",
            "-o",
            "jsonl",
        ])
        .ok();
    let lines = standard.json_lines();
    assert!(
        lines
            .iter()
            .filter(|l| l["connector"] == "corp-ldap")
            .all(|l| l["outcome"] == "pending" && l["not_before"].is_string()),
        "a standard job waits for its effective time: {}",
        standard.stdout
    );
    let nothing_yet = env.ctl(&["resume"]).ok();
    assert!(
        nothing_yet.stdout.contains("nothing is due"),
        "{}",
        nothing_yet.stdout
    );

    let high = env
        .ctl(&[
            "apply",
            "--user",
            "alice",
            "--effective",
            "2030-01-01",
            "--risk",
            "high",
            "--auto-approve",
            "-o",
            "jsonl",
        ])
        .ok();
    let got = outcomes(&high);
    assert_eq!(
        got.values().filter(|o| *o == "done").count(),
        5,
        "high risk contains and revokes at once: {got:?}\n{}\n{}",
        high.stdout,
        high.stderr
    );
    assert!(env.alice_locked());

    std::thread::sleep(std::time::Duration::from_millis(3500));
    let resumed = env.ctl(&["resume", "-o", "jsonl"]).ok();
    let got = outcomes(&resumed);
    assert_eq!(
        got.values().filter(|o| *o == "done").count(),
        3,
        "bob's lock and 2 groups ran once due: {got:?}"
    );
    let bob = env
        .slapd
        .search(
            "uid=bob,ou=people,dc=example,dc=org",
            "(objectClass=*)",
            &["pwdAccountLockedTime"],
        )
        .expect("search");
    assert!(bob.contains("000001010000Z"), "{bob}");
}

#[test]
fn the_bind_password_appears_in_no_log_result_plan_or_store() {
    let env = Env::new(PLACEHOLDER, "");
    let password = revoke_testkit::Slapd::ROOT_PW;
    let plan_file = env.path("plan.json");
    let plan_path = plan_file.to_str().expect("utf-8");
    let mut seen = String::new();
    for args in [
        vec![
            "-vv", "plan", "--user", "alice", "-out", plan_path, "-o", "json",
        ],
        vec!["-vv", "apply", plan_path, "--auto-approve", "-o", "jsonl"],
        vec!["-vv", "status", "-o", "json"],
        vec!["-vv", "results"],
        vec!["-vv", "config", "check"],
    ] {
        let run = env.ctl(&args).ok();
        seen.push_str(&run.stdout);
        seen.push_str(&run.stderr);
    }
    assert!(seen.contains("DEBUG"), "debug logs were on");
    seen.push_str(&std::fs::read_to_string(&plan_file).expect("plan"));
    for entry in std::fs::read_dir(env.dir.path().join("data")).expect("data dir") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("store file");
        seen.push_str(&String::from_utf8_lossy(&bytes));
    }
    assert!(!seen.contains(password), "the bind password leaked");
}

/// alice, contained and revoked now, deleted after retention.
const ALICE_HIGH_RISK: &[&str] = &[
    "apply",
    "--user",
    "alice",
    "--risk",
    "high",
    "--auto-approve",
    "-o",
    "jsonl",
];

#[test]
fn a_second_apply_during_retention_repeats_nothing_and_says_which_job_covers_it() {
    let env = Env::new(PLACEHOLDER, "");
    let first = env.ctl(ALICE_HIGH_RISK).ok();
    let job = first.job_id();
    assert!(env.alice_locked());
    let before = env.slapd.op_counts().expect("counts");
    // By email this time: the same leaver.
    let again = env
        .ctl(&["apply", "--user", "alice@example.org", "--auto-approve"])
        .ok();
    assert!(
        again
            .stderr
            .contains(&format!("alice@example.org: already offboarded (job {job}"))
            && again.stderr.contains("1 action(s) of it still scheduled"),
        "{}",
        again.stderr
    );
    assert_eq!(env.job_count(), 1, "no second job");
    assert_eq!(
        env.slapd
            .op_counts()
            .expect("counts")
            .since(&before)
            .mutations(),
        0
    );
    // New access since the first job is planned (and only then a new job is made).
    env.slapd
        .add_ldif(&format!(
            "dn: cn=new-team,ou=groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: new-team\nmember: {ALICE}\nmember: uid=bob,ou=people,dc=example,dc=org\n"
        ))
        .expect("group added");
    let third = env.ctl(ALICE_HIGH_RISK).ok();
    assert!(
        third.stderr.contains("planning what it does not cover"),
        "{}",
        third.stderr
    );
    assert!(env.alice_groups().is_empty(), "{:?}", env.alice_groups());
}

#[test]
fn config_check_connect_runs_each_connectors_preflight() {
    let env = Env::new(PLACEHOLDER, "");
    let run = env.ctl(&["config", "check", "--connect"]).ok();
    assert!(run.stdout.contains("corp-ldap: ok"), "{}", run.stdout);
    // A wrong password is found by the preflight, not by plain validation.
    std::fs::write(env.path("pw"), "wrong\n").expect("write");
    env.ctl(&["config", "check"]).ok();
    let run = env.ctl(&["config", "check", "--connect"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("corp-ldap: auth"), "{}", run.stdout);
}
