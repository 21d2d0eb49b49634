//! revokectl against a real slapd: protected accounts are recognised by every identifier an
//! entry answers to, whatever identifier the operator typed; `verify JOB` checks that job only;
//! a closed pipe ends a command quietly.

mod common;

use std::io::Read;
use std::process::Stdio;

use common::Env;

const PLACEHOLDER: &str = r#"group_placeholder_dn = "cn=nobody,ou=people,dc=example,dc=org""#;

/// An administrator in a nested OU, known by a username, an email and an employee number, in
/// two groups; and a leaver whose DN has an escaped comma.
const ADMINS: &str = "\
dn: ou=admins,ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: admins

dn: uid=admin,ou=admins,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: admin
cn: Admin
sn: Admin
mail: root@example.org
employeeNumber: 1
userPassword: admin-password

dn: cn=ops,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: ops
member: uid=admin,ou=admins,ou=people,dc=example,dc=org
member: uid=bob,ou=people,dc=example,dc=org

dn: cn=wheel,ou=groups,dc=example,dc=org
objectClass: posixGroup
cn: wheel
gidNumber: 5001
memberUid: admin
memberUid: bob
";

const ADMIN: &str = "uid=admin,ou=admins,ou=people,dc=example,dc=org";

fn admin_untouched(env: &Env) {
    let entry = env
        .slapd
        .search(ADMIN, "(objectClass=*)", &["pwdAccountLockedTime", "uid"])
        .expect("search");
    assert!(entry.contains("uid: admin"), "admin still exists: {entry}");
    assert!(
        !entry.contains("pwdAccountLockedTime"),
        "admin not locked: {entry}"
    );
    let mutated: Vec<String> = env
        .mutations_per_dn()
        .into_keys()
        .filter(|k| k.contains("admin") || k.contains("cn=ops") || k.contains("cn=wheel"))
        .collect();
    assert!(
        mutated.is_empty(),
        "nothing of admin's was modified: {mutated:?}"
    );
}

#[test]
fn a_protected_entry_is_left_out_whichever_identifier_names_it() {
    let env = Env::protecting(&["admin"], PLACEHOLDER, "");
    env.slapd.add_ldif(ADMINS).expect("admins load");
    for typed in ["root@example.org", "1", "ADMIN"] {
        let run = env.ctl(&["plan", "--user", typed, "--detailed-exitcode"]);
        assert_eq!(
            run.code, 0,
            "{typed}: no changes\n{}{}",
            run.stdout, run.stderr
        );
        assert!(
            run.stdout.contains(&format!("protected account {ADMIN}"))
                || run.stdout.contains("protected account ADMIN"),
            "{typed}: {}",
            run.stdout
        );
        assert!(
            !run.stdout.contains("lock_account"),
            "{typed}: {}",
            run.stdout
        );
        let applied = env.ctl(&["apply", "--user", typed, "--auto-approve", "-o", "jsonl"]);
        assert!(
            applied
                .json_lines()
                .iter()
                .all(|l| l["kind"] == "manual_step"),
            "{typed}: only the manual step is left: {}",
            applied.stdout
        );
    }
    admin_untouched(&env);
}

#[test]
fn a_protected_dn_matches_in_any_rfc_4514_spelling() {
    let env = Env::protecting(
        &["UID=breakglass, OU=People, DC=example, DC=org"],
        PLACEHOLDER,
        "",
    );
    for typed in ["breakglass", "breakglass@example.org", "9999"] {
        let run = env.ctl(&["plan", "--user", typed, "--detailed-exitcode"]);
        assert_eq!(run.code, 0, "{typed}\n{}{}", run.stdout, run.stderr);
        assert!(
            run.stdout.contains("protected account"),
            "{typed}: {}",
            run.stdout
        );
        assert!(
            !run.stdout.contains("lock_account"),
            "{typed}: {}",
            run.stdout
        );
    }
    // A DN that differs in one RDN protects nothing.
    let env = Env::protecting(
        &["uid=breakglass,ou=admins,dc=example,dc=org"],
        PLACEHOLDER,
        "",
    );
    let run = env.ctl(&["plan", "--user", "breakglass", "--detailed-exitcode"]);
    assert_eq!(run.code, 2, "changes planned\n{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("lock_account"), "{}", run.stdout);
}

#[test]
fn a_protected_account_costs_only_its_own_actions() {
    // Protecting bob leaves alice's plan whole, although both are in one plan and share groups.
    let env = Env::protecting(&["bob@example.org"], PLACEHOLDER, "");
    let run = env
        .ctl(&["plan", "--user", "alice", "--user", "bob", "-o", "json"])
        .ok();
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).expect("plan json");
    let actions = plan["actions"].as_array().expect("actions");
    let on = |who: &str| {
        actions
            .iter()
            .filter(|a| {
                a["account"]["name"]
                    .as_str()
                    .is_some_and(|n| n.contains(who))
            })
            .count()
    };
    assert_eq!(on("uid=bob"), 0, "{}", run.stdout);
    assert_eq!(
        on("uid=alice"),
        6,
        "lock, four groups, delete: {}",
        run.stdout
    );
    let notes = plan["notes"].as_array().expect("notes");
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("bob@example.org")));
}

#[test]
fn verify_of_a_job_checks_that_job_only() {
    let env = Env::new(PLACEHOLDER, "");
    let run = env
        .ctl(&[
            "apply",
            "--user",
            "alice",
            "--user",
            "carol",
            "--risk",
            "high",
            "--auto-approve",
            "-o",
            "jsonl",
        ])
        .ok();
    let lines = run.json_lines();
    let job_of = |dn: &str| {
        lines
            .iter()
            .find(|l| l["target"].as_str() == Some(dn))
            .and_then(|l| l["job_id"].as_str())
            .expect("a job")
            .to_string()
    };
    let alice = job_of(common::ALICE);
    let carol = job_of("uid=carol,ou=people,dc=example,dc=org");
    assert_ne!(alice, carol);
    let applied = |job: &str| {
        lines
            .iter()
            .filter(|l| l["job_id"] == job && l["kind"] != "manual_step")
            .filter(|l| matches!(l["outcome"].as_str(), Some("done" | "already_done")))
            .count()
    };
    let v = env.ctl(&["verify", &alice]).ok();
    assert!(
        v.stdout.contains(&format!(
            "{} action(s) verified, 0 not confirmed",
            applied(&alice)
        )),
        "{}",
        v.stdout
    );
    assert!(!v.stdout.contains("carol"), "{}", v.stdout);
}

#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    let env = Env::new(PLACEHOLDER, "");
    for args in [
        &["plan", "--user", "alice", "-o", "json"][..],
        &["plan", "--user", "alice"][..],
    ] {
        let mut child = env
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starts");
        // The reader goes away before revokectl has discovered anything, so its first write
        // meets a closed pipe.
        drop(child.stdout.take());
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut stderr)
            .expect("read");
        let status = child.wait().expect("exits");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
        assert_eq!(status.code(), Some(0), "{args:?}: {stderr}");
    }
}
