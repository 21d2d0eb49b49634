//! `revokectl import` then `revokectl resume`, without the daemon, against a real slapd: resume
//! plans the queued jobs that are due the way the daemon's scheduler does and runs them; a job
//! whose effective time is in the future is not touched; a high-risk line is due at once; a
//! second resume repeats nothing.

mod common;

use common::{Env, ALICE};
use serde_json::Value;

const PLACEHOLDER: &str = r#"group_placeholder_dn = "cn=nobody,ou=people,dc=example,dc=org""#;
const BOB: &str = "uid=bob,ou=people,dc=example,dc=org";
const CAROL: &str = "uid=carol,ou=people,dc=example,dc=org";

fn locked(env: &Env, dn: &str) -> bool {
    env.slapd
        .search(dn, "(objectClass=*)", &["pwdAccountLockedTime"])
        .expect("search")
        .contains("pwdAccountLockedTime: 000001010000Z")
}

/// The groups (cn) that list `uid` in any membership attribute.
fn groups_of(env: &Env, uid: &str) -> Vec<String> {
    let dn = format!("uid={uid},ou=people,dc=example,dc=org");
    env.slapd
        .search(
            "ou=groups,dc=example,dc=org",
            &format!("(|(member={dn})(uniqueMember={dn})(memberUid={uid}))"),
            &["cn"],
        )
        .expect("search")
        .lines()
        .filter_map(|l| l.strip_prefix("cn: "))
        .map(str::to_string)
        .collect()
}

/// Each queued job's state by subject, from `revokectl jobs -o json`.
fn job_states(env: &Env) -> std::collections::BTreeMap<String, String> {
    let run = env.ctl(&["jobs", "-o", "json"]).ok();
    let v: Value = serde_json::from_str(&run.stdout).expect("jobs -o json is JSON");
    v.as_array()
        .expect("an array")
        .iter()
        .map(|j| {
            (
                j["subject"].as_str().expect("subject").to_string(),
                j["state"].as_str().expect("state").to_string(),
            )
        })
        .collect()
}

#[test]
fn import_then_resume_runs_what_is_due_once_and_leaves_the_future_alone() {
    let env = Env::new(PLACEHOLDER, "[guard]\nmax_jobs = 0\n");
    let csv = env.path("leavers.csv");
    // alice left yesterday: overdue, but her delete waits for the 30 days of retention.
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).format("%Y-%m-%d");
    std::fs::write(
        &csv,
        format!(
            "employee_id,email,username,effective_at,reason,involuntary,high_risk\n\
             1001,alice@example.org,alice,{yesterday},resigned,false,false\n\
             1002,bob@example.org,bob,2099-01-01,resigned,false,false\n\
             1003,carol@example.org,carol,2099-01-01,misconduct,true,true\n"
        ),
    )
    .expect("write csv");
    let before = env.slapd.op_counts().expect("counts");
    let imported = env.ctl(&["import", csv.to_str().expect("utf-8")]).ok();
    assert!(
        imported.stdout.contains("3 new job(s)"),
        "{}",
        imported.stdout
    );
    assert_eq!(
        env.slapd
            .op_counts()
            .expect("counts")
            .since(&before)
            .mutations(),
        0,
        "import only queues"
    );
    let states = job_states(&env);
    assert!(
        states.values().all(|s| s == "scheduled"),
        "imported jobs are scheduled: {states:?}"
    );

    // The first resume plans and runs alice (overdue) and carol (high risk: due at once), and
    // leaves bob (effective in 2099) queued and untouched.
    let first = env.ctl(&["resume", "-o", "jsonl"]).ok();
    assert_eq!(
        first.stderr.matches("planned job ").count(),
        2,
        "{}",
        first.stderr
    );
    let lines = first.json_lines();
    let done: Vec<&Value> = lines.iter().filter(|l| l["outcome"] == "done").collect();
    assert_eq!(
        done.len(),
        5 + 2,
        "alice: lock and 4 groups; carol: lock and 1 group\n{}\n{}",
        first.stdout,
        first.stderr
    );
    let ids: std::collections::BTreeSet<&str> = done
        .iter()
        .filter_map(|l| l["action_id"].as_str())
        .collect();
    assert_eq!(
        ids.len(),
        done.len(),
        "each action reported once: {}",
        first.stdout
    );
    for l in &done {
        assert_eq!(l["verdict"], "confirmed", "{l}");
        assert_eq!(l["attempts"], 1, "{l}");
    }
    assert!(
        lines
            .iter()
            .filter(|l| l["kind"] == "delete_account")
            .all(|l| l["outcome"] == "pending" && l["not_before"].is_string()),
        "deletes wait for retention: {}",
        first.stdout
    );
    assert!(locked(&env, ALICE) && groups_of(&env, "alice").is_empty());
    assert!(locked(&env, CAROL) && groups_of(&env, "carol").is_empty());
    assert!(!locked(&env, BOB), "bob is not due until 2099");
    let mut bob_groups = groups_of(&env, "bob");
    bob_groups.sort();
    assert_eq!(bob_groups, vec!["developers", "engineering"]);
    assert!(
        !env.mutations_per_dn().keys().any(|k| k.contains(BOB)),
        "nothing was sent about bob: {:?}",
        env.mutations_per_dn()
    );
    let states = job_states(&env);
    assert_eq!(states["alice"], "planned", "{states:?}");
    assert_eq!(states["carol"], "planned", "{states:?}");
    assert_eq!(states["bob"], "scheduled", "{states:?}");
    assert_eq!(
        env.job_count(),
        2,
        "one plan per due job, as the daemon makes"
    );

    // A second resume repeats nothing: no job planned again, no write sent.
    let mid = env.slapd.op_counts().expect("counts");
    let second = env.ctl(&["resume"]).ok();
    assert!(
        second
            .stdout
            .contains("nothing is due; 1 queued job(s) wait for their time"),
        "{}",
        second.stdout
    );
    assert_eq!(
        env.slapd
            .op_counts()
            .expect("counts")
            .since(&mid)
            .mutations(),
        0,
        "a second resume sends no write"
    );
    assert_eq!(env.job_count(), 2);
    assert_eq!(job_states(&env)["bob"], "scheduled");

    let results = env.ctl(&["results"]).ok();
    assert_eq!(
        results.json_lines().len(),
        7 + 4,
        "alice: lock, 4 groups, delete, laptop; carol: lock, 1 group, delete, laptop\n{}",
        results.stdout
    );
}
