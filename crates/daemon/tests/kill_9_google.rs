//! The daemon's side of the Google transfer's crash test: a real `revoked` process runs a
//! high-risk job against the Google stand-in behind Prism and is killed with SIGKILL after the
//! stand-in took the Drive transfer's insert and before its answer reached the daemon (nothing
//! journaled the transfer id); a new `revoked` on the same store takes the job over once the dead
//! one's lease is over, finds the transfer by listing, and converges with one transfer, not two.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use revoke_testkit::google::GoogleStandin;
use revoke_testkit::Slapd;
use serde_json::json;

const TRANSFERS: &str = "/admin/datatransfer/v1/transfers";

#[test]
fn a_daemon_killed_between_the_transfer_insert_and_its_journal_entry_restarts_with_one_transfer() {
    let slapd = Slapd::start().expect("slapd starts");
    let g = GoogleStandin::start().expect("the google stand-in should start");
    let prism = g.prism().expect("prism should start in front of it");
    let (alice, archive) = g.world(|w| {
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
        w.transfer_polls = 2;
        (alice, archive)
    });
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("google-sa.json");
    std::fs::write(&key, g.service_account_key()).unwrap();
    // The LDAP instance of the common setup knows no alice: the plan is Google's alone.
    let setup = Setup::new(
        &slapd,
        None,
        &format!(
            r#"
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
"#,
            key = key.display(),
            url = prism.rest_url(),
        ),
    );
    let inserts = || {
        g.requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path == TRANSFERS && r.status == 200)
            .count()
    };

    // The kill point is the stand-in's: it takes the insert and holds the answer back.
    g.stall("POST", TRANSFERS);
    let first = Daemon::start(&setup.config, &setup.dir.path().join("first.log"));
    let c = client();
    let (s, a) = c.post(
        &first,
        "/api/v1/jobs",
        Some(OPERATOR_TOKEN),
        json!({"email": "alice@example.com", "high_risk": true, "idempotency_key": "alice-1"}),
    );
    assert_eq!(s, 202, "{a}");
    let job = a["job_id"].as_str().unwrap().to_string();
    wait_until("the transfer's insert", Duration::from_secs(120), || {
        inserts() == 1
    });
    first.kill9();
    g.release();
    assert_eq!(g.world(|w| w.transfers.len()), 1, "the insert took effect");
    assert!(
        g.user(&alice).is_some_and(|u| u.suspended),
        "contained before the transfer"
    );

    // A new daemon on the same store takes the job over once the dead one's lease runs out.
    g.clear_requests();
    let second = Daemon::start(&setup.config, &setup.dir.path().join("second.log"));
    let done = c.wait_job(&second, &job, "done in every phase", |j| {
        phases_done(j, &["contain", "transfer", "revoke", "delete"])
    });
    assert_eq!(inserts(), 0, "no second insert: {:?}", g.mutations());
    let transfers: Vec<(String, String)> = g.world(|w| {
        w.transfers
            .values()
            .map(|t| (t.old_owner.clone(), t.status.clone()))
            .collect()
    });
    assert_eq!(transfers, [(alice.clone(), "completed".to_owned())]);
    assert_eq!(g.user(&archive).map(|u| u.drive_files), Some(50));
    assert!(g.user(&alice).is_none(), "alice is deleted after it");
    let actions = done["actions"].as_array().unwrap();
    let transfer = actions
        .iter()
        .find(|a| a["kind"] == "transfer_drive")
        .expect("the transfer action");
    assert_eq!(transfer["attempts"], 2, "{transfer:#}");
    assert!(
        g.mutations()
            .iter()
            .all(|r| r.method != "PUT" && !r.path.ends_with("/signOut")),
        "the contain actions were not sent again: {:?}",
        g.mutations()
    );
    assert_eq!(
        prism.errors(),
        Vec::<String>::new(),
        "prism found requests or answers that break Google's descriptions"
    );
}
