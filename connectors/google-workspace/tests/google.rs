//! The Google Workspace connector against the Google stand-in of crates/testkit, behind Prism
//! with Google's own discovery documents (`prism proxy --errors`): discovery and the plan
//! (snapshot), apply end to end then a rerun that writes nothing, Gmail before the suspension,
//! the Drive transfer resumed after a death between its insert and its journal entry, a reused
//! address after planning, a protected account reached by an alias, hostile identifiers, a
//! storm of 403 rate limits, and discovery through Google's batch endpoint (the same Discovery
//! and calls as unbatched; one part rate limited).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use revoke_connector_google_workspace::{
    validate, GoogleConfig, GoogleConnector, ACCOUNT, APP_PASSWORD, ARCHIVE_DRIVE,
    CLIENT_DRIVE_PERMISSION, CLIENT_PERMISSION, DELETE_USER, DRIVE_NOT_SCANNED, DRIVE_TRANSFER,
    GMAIL, GROUP_MEMBERSHIP, LICENCE, LINK_SHARE, MOBILE_DEVICE, OAUTH_GRANT,
    REMOVE_CLIENT_PERMISSION, REMOVE_SHARED_DRIVE, ROLE_ASSIGNMENT, SET_AUTO_REPLY, SET_FORWARDING,
    SHARED_DRIVE_MEMBER, SOLE_ORGANIZER, SUSPEND_USER, TRANSFER_DRIVE, TRANSFER_ID, TURN_OFF_2SV,
    WIPE_MOBILE_ACCOUNT,
};
use revoke_core::{
    Action, ActionId, ClientDomain, Connector, ConnectorError, Discovery, JobId, Journal,
    JournalEntry, MemoryJournal, Outcome, Phase, Protected, Subject, Verdict,
};
use revoke_testkit::google::GoogleStandin;
use revoke_testkit::Prism;
use serde_json::{json, Value};

const GW: &str = "corp-google";
const LICENCE_SKU: &str = "Google-Apps/1010020027";

struct Stack {
    g: GoogleStandin,
    prism: Prism,
}

fn stack() -> Stack {
    let g = GoogleStandin::start().expect("the google stand-in should start");
    let prism = g
        .prism()
        .expect("prism should start in front of the google stand-in");
    Stack { g, prism }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert_eq!(
                self.prism.errors(),
                Vec::<String>::new(),
                "prism found requests or answers that break Google's descriptions"
            );
        }
    }
}

fn connector(s: &Stack, extra: Value) -> Arc<GoogleConnector> {
    let mut v = json!({
        "kind": "google-workspace",
        "private_key": s.g.service_account_key(),
        "admin_email": "admin@example.com",
        "api_url": s.prism.rest_url(),
        "transfer_to": "archive@example.com",
        "auto_reply_subject": "Alice has left",
        "auto_reply_body": "Please write to sales@example.com.",
        "forward_to": "manager@example.com",
        "licences": [LICENCE_SKU],
        "transfer_poll_ms": 10,
        "backoff_ms": 50,
        "requests_per_minute": 600_000,
    });
    if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in e {
            if x.is_null() {
                m.remove(k);
            } else {
                m.insert(k.clone(), x.clone());
            }
        }
    }
    if let Err(issues) = validate("connectors.gw", &v) {
        panic!("config should be valid: {issues:?}");
    }
    Arc::new(
        GoogleConnector::new(GW, GoogleConfig::from_value(&v).expect("config")).expect("connector"),
    )
}

fn subject(email: &str) -> Subject {
    let mut s = Subject::new(email.split('@').next().unwrap_or(email));
    s.email = Some(email.to_string());
    s
}

struct Ids {
    alice: String,
    archive: String,
    eng: String,
    staff: String,
    sales: String,
}

/// The domain: an admin, the archive owner, the manager; alice with two aliases, an employee
/// id, two grants, an app password, two groups (one inside another), an admin role, a licence
/// and 50 Drive files; carol suspended; dave whose alias is boss@; bob deleted and his address
/// given to a new bob.
fn seed(g: &GoogleStandin) -> Ids {
    g.world(|w| {
        let admin = w.user("admin@example.com");
        w.edit(&admin, |u| u.is_admin = true);
        let archive = w.user("archive@example.com");
        w.user("manager@example.com");
        let alice = w.user("alice.smith@example.com");
        w.edit(&alice, |u| {
            u.aliases = vec!["alice@example.com".into(), "a.smith@example.com".into()];
            u.employee_ids = vec!["E1001".into()];
            u.two_sv = true;
            u.backup_codes = 10;
            u.licences
                .insert(("Google-Apps".into(), "1010020027".into()));
            u.drive_files = 50;
            u.drive_bytes = 52_428_800;
        });
        w.grant(&alice, "1234567890-abc.apps.googleusercontent.com", "Slack");
        w.grant(&alice, "9876543210-xyz.apps.googleusercontent.com", "Zoom");
        w.asp(&alice, "Thunderbird");
        let staff = w.group("all-staff@example.com", "All staff");
        let eng = w.group("eng@example.com", "Engineering");
        let sales = w.group("sales@example.com", "Sales");
        w.add_member(&staff, &eng);
        w.add_member(&eng, &alice);
        w.add_member(&sales, &alice);
        let helpdesk = w.role("_HELP_DESK_ADMIN_ROLE", false);
        w.assign(&helpdesk, &alice);
        let carol = w.user("carol@example.com");
        w.edit(&carol, |u| u.suspended = true);
        w.add_member(&sales, &carol);
        let dave = w.user("dave@example.com");
        w.edit(&dave, |u| u.aliases = vec!["boss@example.com".into()]);
        let old_bob = w.user("bob@example.com");
        w.delete_user(&old_bob);
        w.user("bob@example.com");
        Ids {
            alice,
            archive,
            eng,
            staff,
            sales,
        }
    })
}

fn actions(d: &Discovery, conn: &GoogleConnector, s: &Subject) -> Vec<Action> {
    Action::from_proposals(&JobId("job-1".into()), GW, d, conn.plan(s, d))
        .expect("the proposals name discovered accounts")
}

type Journals = HashMap<ActionId, Arc<MemoryJournal>>;

/// The executor's order: phase by phase; in contain, Gmail, then the suspension, then the rest.
/// A retryable error is tried again after its wait, as the executor would (at most 50 times).
async fn run(
    conn: &GoogleConnector,
    all: &[Action],
    journals: &mut Journals,
) -> Vec<(Action, Result<Outcome, ConnectorError>)> {
    let rank = |a: &Action| match (a.phase, a.kind.0.as_str()) {
        (Phase::Contain, SET_AUTO_REPLY | SET_FORWARDING) => 0,
        (Phase::Contain, SUSPEND_USER) => 1,
        (Phase::Contain, _) => 2,
        (Phase::Transfer, _) => 3,
        (Phase::Revoke, _) => 4,
        _ => 5,
    };
    let mut ordered: Vec<&Action> = all.iter().collect();
    ordered.sort_by_key(|a| rank(a));
    let mut out = Vec::new();
    for a in ordered {
        let j = journals
            .entry(a.id.clone())
            .or_insert_with(|| Arc::new(MemoryJournal::new()))
            .clone();
        let mut tries = 0;
        let r = loop {
            tries += 1;
            match conn.apply(a, &a.key, j.as_ref()).await {
                Err(e) if e.is_retryable() && tries < 50 => {
                    tokio::time::sleep(e.retry_after().unwrap_or(Duration::from_millis(10))).await
                }
                r => break r,
            }
        };
        out.push((a.clone(), r));
    }
    out
}

fn outcomes(results: &[(Action, Result<Outcome, ConnectorError>)]) -> Vec<String> {
    results
        .iter()
        .map(|(a, r)| match r {
            Ok(o) => format!("{} {}", a.kind, o.as_str()),
            Err(e) => format!("{} error {e}", a.kind),
        })
        .collect()
}

#[tokio::test]
async fn discovery_finds_every_grant_group_role_licence_and_the_plan_orders_them() {
    let s = stack();
    let ids = seed(&s.g);
    let conn = connector(&s, json!({}));
    let subjects = [
        subject("alice.smith@example.com"),
        subject("carol@example.com"),
        subject("nobody@example.com"),
    ];
    let found = conn.discover_many(&subjects).await.expect("discovery");
    assert_eq!(
        found.iter().map(|d| d.found).collect::<Vec<_>>(),
        [true, true, false]
    );
    assert!(s.g.mutations().is_empty(), "discovery writes nothing");
    let a = &found[0];
    let kinds: Vec<&str> = a.findings.iter().map(|f| f.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            ACCOUNT,
            OAUTH_GRANT,
            OAUTH_GRANT,
            APP_PASSWORD,
            GROUP_MEMBERSHIP,
            GROUP_MEMBERSHIP,
            ROLE_ASSIGNMENT,
            LICENCE,
            GMAIL,
            DRIVE_TRANSFER
        ]
    );
    let account = &a.accounts[0];
    assert_eq!(account.id, ids.alice);
    for alias in ["alice@example.com", "a.smith@example.com", "E1001"] {
        assert!(
            account.identifiers.iter().any(|i| i == alias),
            "{alias} in {:?}",
            account.identifiers
        );
    }
    let eng = a
        .findings
        .iter()
        .find(|f| f.attrs.get("group_id") == Some(&ids.eng))
        .expect("eng");
    assert_eq!(eng.attrs["nested_in"], "all-staff@example.com");
    let drive = a
        .findings
        .iter()
        .find(|f| f.kind == DRIVE_TRANSFER)
        .expect("drive");
    assert_eq!(drive.attrs["new_owner_id"], ids.archive);
    assert_eq!(
        (
            drive.attrs["files_owned"].as_str(),
            drive.attrs["bytes_owned"].as_str()
        ),
        ("50", "52428800")
    );
    // carol is suspended: her Gmail is not read (Google would refuse), and nothing is planned there.
    let carol_gmail = found[1]
        .findings
        .iter()
        .find(|f| f.kind == GMAIL)
        .expect("gmail finding");
    assert_eq!(carol_gmail.attrs["readable"], "false");
    let carol_plan = conn.plan(&subjects[1], &found[1]);
    assert!(carol_plan
        .iter()
        .all(|p| p.kind.0 != SET_AUTO_REPLY && p.kind.0 != SET_FORWARDING));
    assert!(
        carol_plan[0].summary.contains("already"),
        "{}",
        carol_plan[0].summary
    );
    assert!(s
        .g
        .requests()
        .iter()
        .all(|r| !r.path.starts_with("/gmail/v1/users/carol")));

    let plan = conn.plan(&subjects[0], a);
    let lines: Vec<String> = plan
        .iter()
        .map(|p| {
            let after: Vec<&str> = p.after.iter().map(|(k, _)| k.0.as_str()).collect();
            format!(
                "{:?} {} {} after [{}]: {}",
                p.phase,
                p.kind.0,
                p.target,
                after.join(", "),
                p.summary
            )
        })
        .collect();
    insta::assert_snapshot!("plan_alice", lines.join("\n"));
    assert!(plan.iter().all(|p| p.account == ids.alice));

    // The same user by an alias, by the employee id, and by a bare username with `domain`.
    let conn = connector(&s, json!({"domain": "example.com"}));
    for subj in [
        subject("a.smith@example.com"),
        Subject::new("E1001"),
        Subject::new("alice.smith"),
    ] {
        let d = conn.discover(&subj).await.expect("discovery");
        assert_eq!(
            d.accounts.first().map(|a| a.id.as_str()),
            Some(ids.alice.as_str()),
            "{subj:?}"
        );
    }
}

#[tokio::test]
async fn apply_end_to_end_gmail_before_suspension_then_a_rerun_sends_no_write() {
    let s = stack();
    let ids = seed(&s.g);
    s.g.world(|w| w.transfer_polls = 3);
    let conn = connector(&s, json!({"delete_users": false}));
    let subj = subject("alice.smith@example.com");
    let d = conn.discover(&subj).await.expect("discovery");
    let all = actions(&d, &conn, &subj);
    let mut journals = Journals::new();
    let results = run(&conn, &all, &mut journals).await;
    for (a, r) in &results {
        assert_eq!(
            r.as_ref().ok(),
            Some(&Outcome::Done),
            "{} {}: {r:?}",
            a.kind,
            a.target
        );
    }
    let u = s.g.user(&ids.alice).expect("alice stays (no delete)");
    assert!(u.suspended);
    assert_eq!(
        (u.sessions, u.backup_codes, u.grants.len(), u.asps.len()),
        (0, 0, 0, 0)
    );
    assert!(u.licences.is_empty());
    assert_eq!(u.vacation["enableAutoReply"], true);
    assert_eq!(u.auto_forwarding["emailAddress"], "manager@example.com");
    assert_eq!(
        (u.drive_files, s.g.user(&ids.archive).map(|a| a.drive_files)),
        (0, Some(50))
    );
    s.g.world(|w| {
        assert!(w.groups_of(&ids.alice).is_empty());
        assert_eq!(
            w.groups_of(&ids.eng),
            vec![ids.staff.clone()],
            "the nested group itself is untouched"
        );
        assert!(w.groups[&ids.sales]
            .members
            .iter()
            .any(|m| m.email == "carol@example.com"));
        assert!(w
            .role_assignments
            .values()
            .all(|r| r.assigned_to != ids.alice));
        assert_eq!(w.transfers.len(), 1);
    });
    // Gmail answered before the suspension; the licence went after the transfer completed.
    let muts: Vec<String> =
        s.g.mutations()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
    let at = |needle: &str| {
        muts.iter()
            .position(|m| m.contains(needle))
            .unwrap_or_else(|| panic!("{needle} in {muts:#?}"))
    };
    let suspend = at(&format!("PUT /admin/directory/v1/users/{}", ids.alice));
    assert!(at("/settings/vacation") < suspend);
    assert!(at("/settings/autoForwarding") < suspend);
    assert!(at("/settings/forwardingAddresses") < suspend);
    let transfer_done =
        s.g.requests()
            .iter()
            .position(|r| {
                r.path.starts_with("/admin/datatransfer/v1/transfers/")
                    && r.status == 200
                    && r.method == "GET"
            })
            .expect("polled");
    let licence =
        s.g.requests()
            .iter()
            .position(|r| r.method == "DELETE" && r.path.starts_with("/apps/licensing/"))
            .expect("licence removed");
    assert!(transfer_done < licence);
    for a in &all {
        let v = conn.verify(a).await.expect("verify");
        match a.kind.0.as_str() {
            // Gmail cannot be read for a suspended user: said so, not claimed.
            SET_AUTO_REPLY | SET_FORWARDING => {
                assert!(matches!(v, Verdict::NotConfirmed { .. }), "{v:?}")
            }
            _ => assert_eq!(v, Verdict::Confirmed, "{} {}", a.kind, a.target),
        }
    }

    s.g.clear_requests();
    let again = run(&conn, &all, &mut journals).await;
    let want: Vec<String> = all
        .iter()
        .map(|a| format!("{} already_done", a.kind))
        .collect();
    let mut got = outcomes(&again);
    got.sort();
    let mut want = want;
    want.sort();
    assert_eq!(got, want);
    assert_eq!(s.g.mutations(), vec![], "a rerun writes nothing");

    // Then the delete, alone, and once more.
    let conn = connector(&s, json!({}));
    let d = conn.discover(&subj).await.expect("discovery");
    let del: Vec<Action> = actions(&d, &conn, &subj)
        .into_iter()
        .filter(|a| a.kind.0 == DELETE_USER)
        .collect();
    assert_eq!(
        outcomes(&run(&conn, &del, &mut journals).await),
        [format!("{DELETE_USER} done")]
    );
    assert!(s.g.user(&ids.alice).is_none());
    assert_eq!(
        conn.verify(&del[0]).await.expect("verify"),
        Verdict::Confirmed
    );
    s.g.clear_requests();
    assert_eq!(
        outcomes(&run(&conn, &del, &mut journals).await),
        [format!("{DELETE_USER} already_done")]
    );
    assert_eq!(s.g.mutations(), vec![]);
}

/// A journal whose first `record` fails, as if the process died after Google took the insert
/// and before the journal entry was written.
#[derive(Debug, Default)]
struct DiesOnFirstRecord {
    died: AtomicBool,
}

#[async_trait]
impl Journal for DiesOnFirstRecord {
    async fn record(&self, _name: &str, _value: &str) -> Result<(), ConnectorError> {
        if !self.died.swap(true, Ordering::SeqCst) {
            return Err(ConnectorError::retryable(
                "journal_unavailable",
                "killed before the journal entry",
            ));
        }
        Ok(())
    }
    async fn entries(&self) -> Result<Vec<JournalEntry>, ConnectorError> {
        Ok(vec![])
    }
}

#[tokio::test]
async fn a_transfer_inserted_before_a_death_is_adopted_not_made_twice() {
    let s = stack();
    let ids = seed(&s.g);
    let conn = connector(&s, json!({"transfer_calendar": true}));
    let subj = subject("alice.smith@example.com");
    let d = conn.discover(&subj).await.expect("discovery");
    let transfer = actions(&d, &conn, &subj)
        .into_iter()
        .find(|a| a.kind.0 == TRANSFER_DRIVE)
        .expect("planned");
    let dying = DiesOnFirstRecord::default();
    let e = conn
        .apply(&transfer, &transfer.key, &dying)
        .await
        .expect_err("the journal entry failed");
    assert_eq!(e.code, "journal_unavailable");
    assert_eq!(
        s.g.world(|w| w.transfers.len()),
        1,
        "google took the insert"
    );
    // Drive (every file, private and shared) and Calendar, in one transfer.
    let apps =
        s.g.world(|w| w.transfers.values().next().map(|t| t.applications.clone()));
    assert_eq!(
        apps,
        Some(json!([
            {"applicationId": "55656082996", "applicationTransferParams": [{"key": "PRIVACY_LEVEL", "value": ["PRIVATE", "SHARED"]}]},
            {"applicationId": "435070579839", "applicationTransferParams": [{"key": "RELEASE_RESOURCES", "value": ["TRUE"]}]},
        ]))
    );
    // The next attempt, in another process: no journal entry, so it looks for the transfer first.
    let journal = MemoryJournal::new();
    let mut r = conn.apply(&transfer, &transfer.key, &journal).await;
    for _ in 0..20 {
        match &r {
            Err(e) if e.code == "transfer_in_progress" => {
                r = conn.apply(&transfer, &transfer.key, &journal).await
            }
            _ => break,
        }
    }
    assert_eq!(r.expect("the transfer completes"), Outcome::Done);
    let inserts =
        s.g.requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path == "/admin/datatransfer/v1/transfers")
            .count();
    assert_eq!(inserts, 1, "one transfer, not two");
    let id =
        s.g.world(|w| w.transfers.keys().next().cloned())
            .expect("one");
    assert_eq!(
        journal.latest(TRANSFER_ID).await.expect("journal"),
        Some(id)
    );
    assert_eq!(s.g.user(&ids.archive).map(|u| u.drive_files), Some(50));
    assert_eq!(
        conn.verify(&transfer).await.expect("verify"),
        Verdict::Confirmed
    );
}

#[tokio::test]
async fn an_address_given_to_another_user_after_planning_is_left_alone() {
    let s = stack();
    seed(&s.g);
    let conn = connector(
        &s,
        json!({"forward_to": null, "auto_reply_subject": null, "auto_reply_body": null, "transfer_to": null, "licences": []}),
    );
    let subj = subject("bob@example.com");
    let d = conn.discover(&subj).await.expect("discovery");
    let planned_id = d.accounts[0].id.clone();
    let all = actions(&d, &conn, &subj);
    // bob leaves and is deleted by hand; a new hire gets bob@example.com.
    let new_bob = s.g.world(|w| {
        w.delete_user(&planned_id);
        w.user("bob@example.com")
    });
    s.g.clear_requests();
    let mut journals = Journals::new();
    for (a, r) in run(&conn, &all, &mut journals).await {
        let e = r.expect_err("identity changed");
        assert_eq!(e.code, "identity_changed", "{}: {e}", a.kind);
        assert!(e.message.contains(&new_bob), "{e}");
    }
    // Only calls on the pinned id went out (sign-out and backup codes are sent on the id without
    // a read first); Google refused each (404), and none named the new bob.
    for m in s.g.mutations() {
        assert!(m.path.contains(&planned_id) && m.status == 404, "{m:?}");
        assert!(!m.path.contains(&new_bob), "{m:?}");
    }
    assert!(!s.g.user(&new_bob).expect("new bob").suspended);
}

#[tokio::test]
async fn a_protected_account_reached_by_its_alias_is_protected() {
    let s = stack();
    seed(&s.g);
    let conn = connector(&s, json!({}));
    let d = conn
        .discover(&subject("dave@example.com"))
        .await
        .expect("discovery");
    let protected = Protected::new(["BOSS@example.com"]);
    let (identifier, entry) = protected
        .match_account(&d.accounts[0])
        .expect("dave answers to boss@");
    assert_eq!(
        (identifier, entry),
        ("boss@example.com", "BOSS@example.com")
    );
    // Found by the alias, it is the same account, with the same identifiers.
    let by_alias = conn
        .discover(&subject("boss@example.com"))
        .await
        .expect("discovery");
    assert_eq!(by_alias.accounts[0].id, d.accounts[0].id);
    assert!(protected.match_account(&by_alias.accounts[0]).is_some());
}

#[tokio::test]
async fn hostile_identifiers_are_refused_before_any_request() {
    let s = stack();
    seed(&s.g);
    let conn = connector(&s, json!({}));
    let hostile = [
        subject("*@example.com"),
        subject("\"alice\"@example.com"),
        subject("alice@example.com/../admin@example.com"),
        Subject::new("../x"),
        Subject::new("*"),
        Subject::new("a' or '1"),
        {
            let mut x = subject("alice.smith@example.com");
            x.employee_id = Some("E1001' or externalId:'*".into());
            x
        },
    ];
    for h in &hostile {
        s.g.clear_requests();
        let e = conn.discover(h).await.expect_err("refused");
        assert_eq!(e.code, "bad_identifier", "{h:?}: {e}");
        assert!(e.message.contains("nothing was sent"), "{e}");
        assert!(
            s.g.requests().iter().all(|r| r.path == "/token"),
            "{h:?}: {:?}",
            s.g.requests()
        );
    }
    // A real apostrophe is an address Google allows; it travels as one path segment.
    s.g.world(|w| w.user("o'brien@example.com"));
    s.g.clear_requests();
    let d = conn
        .discover(&subject("o'brien@example.com"))
        .await
        .expect("discovery");
    assert!(d.found);
    assert!(s
        .g
        .requests()
        .iter()
        .any(|r| r.path == "/admin/directory/v1/users/o%27brien%40example.com"));
}

#[tokio::test]
async fn a_storm_of_403_rate_limits_converges_and_no_request_leaves_early() {
    let s = stack();
    let ids = seed(&s.g);
    let conn = connector(&s, json!({"backoff_ms": 40}));
    s.g.rate_storm(4, "userRateLimitExceeded");
    s.g.rate_storm(1, "quotaExceeded");
    let subj = subject("alice.smith@example.com");
    let mut refusals = 0;
    let d = loop {
        match conn.discover(&subj).await {
            Ok(d) => break d,
            Err(e) => {
                assert_eq!(
                    (e.class.name(), e.code.as_str()),
                    ("rate_limited", "rate_limit"),
                    "{e}"
                );
                refusals += 1;
                assert!(refusals <= 5, "{e}");
                tokio::time::sleep(e.retry_after().expect("a wait")).await;
            }
        }
    };
    assert_eq!(refusals, 5);
    assert_eq!(d.accounts[0].id, ids.alice);
    // After each refusal the next request left no earlier than the backoff: 40, 80, 160, 320, 640 ms.
    let reqs: Vec<_> =
        s.g.requests()
            .into_iter()
            .filter(|r| r.path != "/token")
            .collect();
    let mut n = 0;
    for pair in reqs.windows(2) {
        if pair[0].status == 403 {
            n += 1;
            let wait = Duration::from_millis(40 * (1 << (n - 1)));
            assert!(
                pair[1].at.duration_since(pair[0].at) >= wait,
                "request {n} after a 403 left before {wait:?}"
            );
        }
    }
    assert_eq!(n, 5);
}

/// Prism checks for real: a body Google's description refuses is caught and never reaches the
/// stand-in, and an unknown path is an error.
#[tokio::test]
async fn prism_refuses_what_googles_description_forbids() {
    let g = GoogleStandin::start().expect("the google stand-in should start");
    let prism = g.prism().expect("prism should start");
    let http = revoke_http::client(std::time::Duration::from_secs(60)).expect("http client");
    let r = http
        .put(format!("{}/admin/directory/v1/users/1", prism.rest_url()))
        .bearer_auth("x")
        .json(&json!({"suspended": "yes"}))
        .send()
        .await
        .expect("prism answers");
    assert!(r.status().is_client_error(), "{}", r.status());
    let r = http
        .get(format!(
            "{}/admin/directory/v1/nothing/here",
            prism.rest_url()
        ))
        .bearer_auth("x")
        .send()
        .await
        .expect("prism answers");
    assert_eq!(r.status().as_u16(), 404);
    let errors = prism.errors();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors[0].contains("suspended"), "{errors:#?}");
    assert!(g.requests().is_empty(), "neither reached the stand-in");
}

/// Google's refusals, over HTTP through Prism, each classified by the connector: a non-admin
/// subject, an assertion signed with another key, an unknown subject, an outage, a quota answer.
#[tokio::test]
async fn googles_refusals_over_http_are_classified() {
    let s = stack();
    seed(&s.g);
    let class = |e: ConnectorError| (e.class.name().to_string(), e.code);

    let not_admin = connector(&s, json!({"admin_email": "manager@example.com"}));
    let e = not_admin.check().await.expect_err("not an admin");
    assert_eq!(class(e), ("auth".into(), "forbidden".into()));

    let unknown = connector(&s, json!({"admin_email": "nobody@example.com"}));
    let e = unknown.check().await.expect_err("no such subject");
    assert_eq!(
        class(e.clone()),
        ("auth".into(), "bad_service_account_key".into())
    );
    assert!(e.message.contains("Invalid email or User ID"), "{e}");

    // Another service account's key, with this token URI: the signature does not verify.
    let other = GoogleStandin::start().expect("a second stand-in");
    let mut key: Value = serde_json::from_str(&other.service_account_key()).expect("json");
    let mine: Value = serde_json::from_str(&s.g.service_account_key()).expect("json");
    key["token_uri"] = mine["token_uri"].clone();
    let forged = connector(&s, json!({"private_key": key.to_string()}));
    let e = forged.check().await.expect_err("bad signature");
    assert_eq!(
        class(e.clone()),
        ("auth".into(), "bad_service_account_key".into())
    );
    assert!(e.message.contains("Invalid JWT Signature."), "{e}");
    assert!(!e.message.contains("PRIVATE KEY"), "{e}");

    let conn = connector(&s, json!({}));
    conn.check().await.expect("the admin checks out");
    s.g.fail_next(1, 503, None);
    let e = conn.check().await.expect_err("outage");
    assert_eq!(class(e), ("retryable".into(), "server_error".into()));
    s.g.rate_storm(1, "quotaExceeded");
    let e = conn.check().await.expect_err("quota");
    assert_eq!(
        class(e.clone()),
        ("rate_limited".into(), "rate_limit".into())
    );
    assert!(e.message.contains("quotaExceeded"), "{e}");
    tokio::time::sleep(e.retry_after().expect("a wait")).await;
    conn.check().await.expect("after the wait it answers");
    // One token for the admin served every call of this connector.
    assert_eq!(conn.tokens_fetched(), 1);
}

/// Mobile devices (account wipe only), 2-step verification off, the transfer's folder archived
/// with its retention date, and shared-drive memberships removed (never a drive's last
/// organizer): applied end to end through Prism, read back, and a rerun writes nothing.
#[tokio::test]
async fn mobile_wipe_2sv_archive_and_shared_drives_end_to_end_then_a_rerun_writes_nothing() {
    let s = stack();
    let ids = seed(&s.g);
    let (phone, wiped, carols, archive_drive, projects, solo, real_file) = s.g.world(|w| {
        let phone = w.mobile_device(&ids.alice, "Pixel 8", "ANDROID");
        let wiped = w.mobile_device(&ids.alice, "iPhone 12", "IOS_SYNC");
        if let Some(d) = w.mobile_devices.get_mut(&wiped) {
            d.status = "ACCOUNT_WIPED".into();
        }
        let carol = w
            .find("carol@example.com")
            .map(|u| u.id.clone())
            .unwrap_or_default();
        let carols = w.mobile_device(&carol, "Pixel 7", "ANDROID");
        let manager = w
            .find("manager@example.com")
            .map(|u| u.id.clone())
            .unwrap_or_default();
        let archive_drive = w.shared_drive("Leavers archive");
        w.drive_member(&archive_drive, &ids.archive, "organizer");
        let projects = w.shared_drive("Projects");
        w.drive_member(&projects, &manager, "organizer");
        w.drive_member(&projects, &ids.alice, "writer");
        let solo = w.shared_drive("Alice's team");
        w.drive_member(&solo, &ids.alice, "organizer");
        w.drive_member(&solo, &manager, "reader");
        let real_file = w.file(&ids.alice, "Q3 plan");
        (
            phone,
            wiped,
            carols,
            archive_drive,
            projects,
            solo,
            real_file,
        )
    });
    let conn = connector(
        &s,
        json!({
            "delete_users": false, "mobile_devices": "account_wipe", "turn_off_2sv": true,
            "archive_drive_id": archive_drive, "retention_days": 90, "remove_shared_drives": true,
        }),
    );
    let subj = subject("alice.smith@example.com");
    let d = conn.discover(&subj).await.expect("discovery");
    assert!(s.g.mutations().is_empty(), "discovery writes nothing");
    let kinds = |k: &str| d.findings.iter().filter(|f| f.kind == k).count();
    assert_eq!(
        (
            kinds(MOBILE_DEVICE),
            kinds(SHARED_DRIVE_MEMBER),
            kinds(SOLE_ORGANIZER)
        ),
        (2, 1, 1)
    );
    let all = actions(&d, &conn, &subj);
    let planned = |k: &str| all.iter().filter(|a| a.kind.0 == k).collect::<Vec<_>>();
    // The device wiped already gets no action; the sole organizer's drive gets none either.
    assert_eq!(planned(WIPE_MOBILE_ACCOUNT).len(), 1);
    assert_eq!(
        planned(WIPE_MOBILE_ACCOUNT)[0].target,
        format!("devices/mobile/{phone}")
    );
    assert_eq!(planned(TURN_OFF_2SV).len(), 1);
    let remove = planned(REMOVE_SHARED_DRIVE);
    assert_eq!(remove.len(), 1);
    assert_eq!(remove[0].params["drive_id"], projects);
    let archive = planned(ARCHIVE_DRIVE);
    assert_eq!(archive.len(), 1);
    let retain = archive[0].params["retain_until"].clone();
    assert_eq!(retain.len(), 10, "a date: {retain}");
    assert!(
        archive[0].summary.contains(&format!("kept until {retain}")),
        "{}",
        archive[0].summary
    );
    assert_eq!(archive[0].phase, Phase::Transfer);
    // dave owns no file: the transfer makes no folder, so nothing is archived (an archive action
    // would fail on the missing folder and block the delete).
    let dave = subject("dave@example.com");
    let dd = conn.discover(&dave).await.expect("discovery");
    let dave_plan = conn.plan(&dave, &dd);
    assert!(dave_plan.iter().any(|p| p.kind.0 == TRANSFER_DRIVE));
    assert!(dave_plan.iter().all(|p| p.kind.0 != ARCHIVE_DRIVE));

    let mut journals = Journals::new();
    for (a, r) in run(&conn, &all, &mut journals).await {
        assert_eq!(
            r.as_ref().ok(),
            Some(&Outcome::Done),
            "{} {}: {r:?}",
            a.kind,
            a.target
        );
    }
    s.g.world(|w| {
        assert_eq!(w.mobile_devices[&phone].status, "ACCOUNT_WIPING");
        assert_eq!(w.mobile_devices[&phone].actions, ["admin_account_wipe"]);
        assert!(w.mobile_devices[&wiped].actions.is_empty());
        assert!(w.mobile_devices[&carols].actions.is_empty());
        assert!(!w.users[&ids.alice].two_sv);
        let member = |drive: &str| {
            w.drives[drive]
                .permissions
                .iter()
                .any(|p| p.email.as_deref() == Some("alice.smith@example.com"))
        };
        assert!(
            !member(&projects) && member(&solo),
            "only the drive with another organizer"
        );
        // The folder the transfer made, with its contents, is in the archive, stamped.
        let folder = w
            .files
            .values()
            .find(|f| f.name == "alice.smith@example.com")
            .expect("the transfer's folder");
        assert_eq!(folder.drive_id.as_deref(), Some(archive_drive.as_str()));
        assert_eq!(folder.parents, std::slice::from_ref(&archive_drive));
        assert_eq!(folder.app_properties["retainUntil"], retain);
        assert_eq!(folder.app_properties["revokedLeaverId"], ids.alice);
        assert_eq!(
            w.files[&real_file].drive_id.as_deref(),
            Some(archive_drive.as_str())
        );
    });
    assert!(
        s.g.requests()
            .iter()
            .all(|r| !r.body.contains("admin_remote_wipe")),
        "a full device wipe is never sent"
    );
    for a in &all {
        let v = conn.verify(a).await.expect("verify");
        if ![SET_AUTO_REPLY, SET_FORWARDING].contains(&a.kind.0.as_str()) {
            assert_eq!(v, Verdict::Confirmed, "{} {}", a.kind, a.target);
        }
    }

    s.g.clear_requests();
    for (a, r) in run(&conn, &all, &mut journals).await {
        assert_eq!(
            r.as_ref().ok(),
            Some(&Outcome::AlreadyDone),
            "{} {}: {r:?}",
            a.kind,
            a.target
        );
    }
    // Without its journal, the archive finds its stamped folder: done, nothing sent.
    let fresh = MemoryJournal::new();
    assert_eq!(
        conn.apply(archive[0], &archive[0].key, &fresh)
            .await
            .expect("archive"),
        Outcome::AlreadyDone
    );
    let wipe = planned(WIPE_MOBILE_ACCOUNT)[0];
    assert_eq!(
        conn.apply(wipe, &wipe.key, &MemoryJournal::new())
            .await
            .expect("wipe"),
        Outcome::AlreadyDone,
        "a device wiping already is done"
    );
    assert_eq!(s.g.mutations(), vec![], "a rerun writes nothing");
    // The archive's read-back looks at the folder, not the leaver: once alice is deleted it
    // still confirms it, and a folder without its retention date is not confirmed.
    s.g.world(|w| w.delete_user(&ids.alice));
    assert_eq!(
        conn.verify(archive[0]).await.expect("verify"),
        Verdict::Confirmed
    );
    s.g.world(|w| {
        for f in w.files.values_mut() {
            f.app_properties.remove("retainUntil");
        }
    });
    assert!(matches!(
        conn.verify(archive[0]).await.expect("verify"),
        Verdict::NotConfirmed { .. }
    ));
}

/// A device or a shared-drive permission that names someone else at apply is left alone.
#[tokio::test]
async fn a_device_or_drive_permission_now_naming_someone_else_is_left_alone() {
    let s = stack();
    let ids = seed(&s.g);
    let (phone, projects) = s.g.world(|w| {
        let phone = w.mobile_device(&ids.alice, "Pixel 8", "ANDROID");
        let manager = w
            .find("manager@example.com")
            .map(|u| u.id.clone())
            .unwrap_or_default();
        let projects = w.shared_drive("Projects");
        w.drive_member(&projects, &manager, "organizer");
        w.drive_member(&projects, &ids.alice, "organizer");
        (phone, projects)
    });
    let conn = connector(
        &s,
        json!({"mobile_devices": "account_wipe", "remove_shared_drives": true}),
    );
    let subj = subject("alice.smith@example.com");
    let d = conn.discover(&subj).await.expect("discovery");
    let all = actions(&d, &conn, &subj);
    let wipe = all
        .iter()
        .find(|a| a.kind.0 == WIPE_MOBILE_ACCOUNT)
        .expect("wipe");
    let remove = all
        .iter()
        .find(|a| a.kind.0 == REMOVE_SHARED_DRIVE)
        .expect("remove");
    // The phone is re-enrolled to dave; the manager leaves the drive, alice is its last organizer.
    s.g.world(|w| {
        if let Some(d) = w.mobile_devices.get_mut(&phone) {
            d.owner_emails = vec!["dave@example.com".into()];
        }
        if let Some(d) = w.drives.get_mut(&projects) {
            d.permissions
                .retain(|p| p.email.as_deref() != Some("manager@example.com"));
        }
    });
    s.g.clear_requests();
    let e = conn
        .apply(wipe, &wipe.key, &MemoryJournal::new())
        .await
        .expect_err("not hers");
    assert_eq!(e.code, "target_changed", "{e}");
    let e = conn
        .apply(remove, &remove.key, &MemoryJournal::new())
        .await
        .expect_err("last");
    assert_eq!(e.code, "sole_organizer", "{e}");
    assert_eq!(s.g.mutations(), vec![], "nothing was sent");
    s.g.world(|w| assert_eq!(w.mobile_devices[&phone].status, "APPROVED"));
}

/// A departing client (`clientco.test`): its user inside our Workspace is offboarded with its
/// files transferred, then every share of the client goes (user, group and domain permissions,
/// a subdomain's, an uppercase address, a shared-drive membership) and only those:
/// `notclientco.test`, `clientco.test.evil.test`, an anyone-with-the-link share and a share
/// without an address stay, and a
/// drive the client alone organizes is reported, not orphaned. A file of a shared drive shared
/// with the client on its own loses that share too. A rerun writes nothing.
#[tokio::test]
async fn a_client_domain_job_removes_every_share_of_the_client_and_only_those() {
    let s = stack();
    let ids = seed(&s.g);
    let (pat, kept, files, project, client_only) = s.g.world(|w| {
        let pat = w.user("pat@clientco.test");
        let manager = w
            .find("manager@example.com")
            .map(|u| u.id.clone())
            .unwrap_or_default();
        let deliverable = w.file(&pat, "Client deliverable");
        w.share(&deliverable, "user", "lee@clientco.test", "writer");
        w.share(&deliverable, "user", "manager@example.com", "reader");
        let f1 = w.file(&ids.alice, "Roadmap");
        w.share(&f1, "user", "Lee@ClientCo.TEST", "reader");
        let link = w.share(&f1, "anyone", "", "reader");
        // A user permission whose address Google no longer shows (a deleted account).
        w.edit_file(&f1, |f| {
            f.permissions.push(revoke_testkit::google::Permission {
                id: "08471165380239447001".into(),
                kind: "user".into(),
                email: None,
                domain: None,
                role: "reader".into(),
            })
        });
        let f2 = w.file(&ids.alice, "Budget");
        w.share(&f2, "group", "partners@clientco.test", "writer");
        let f3 = w.file(&ids.alice, "Handbook");
        w.share(&f3, "domain", "clientco.test", "reader");
        w.share(&f3, "domain", "eu.clientco.test", "reader");
        let f4 = w.file(&ids.alice, "Other client");
        let not1 = w.share(&f4, "user", "x@notclientco.test", "writer");
        let not2 = w.share(&f4, "user", "y@clientco.test.evil.test", "reader");
        let not3 = w.share(&f4, "domain", "notclientco.test", "reader");
        let lee = w.permission_id("user:lee@clientco.test");
        let client_member = |role: &str| revoke_testkit::google::Permission {
            id: lee.clone(),
            kind: "user".into(),
            email: Some("lee@clientco.test".into()),
            domain: None,
            role: role.into(),
        };
        let project = w.shared_drive("Client project");
        w.drive_member(&project, &manager, "organizer");
        // pat, the client's user of ours, is a member too: its leaver plan removes that once.
        w.drive_member(&project, &pat, "writer");
        let client_only = w.shared_drive("Client only");
        for (d, role) in [(&project, "writer"), (&client_only, "organizer")] {
            if let Some(d) = w.drives.get_mut(d) {
                d.permissions.push(client_member(role));
            }
        }
        // A second organizer of the client's: the drive has no organizer of ours, so neither
        // is removed (the drive would be orphaned) and both are reported.
        let kim = w.permission_id("user:kim@clientco.test");
        if let Some(d) = w.drives.get_mut(&client_only) {
            d.permissions.push(revoke_testkit::google::Permission {
                id: kim,
                kind: "user".into(),
                email: Some("kim@clientco.test".into()),
                domain: None,
                role: "organizer".into(),
            });
        }
        // A file of the project drive shared with lee on its own, and with someone else.
        let sheet = w.drive_file(&project, "Client sheet");
        w.share(&sheet, "user", "lee@clientco.test", "commenter");
        let not4 = w.share(&sheet, "user", "x@notclientco.test", "reader");
        let kept = [
            (f1.clone(), link),
            (f1.clone(), "08471165380239447001".to_string()),
            (f4.clone(), not1),
            (f4.clone(), not2),
            (f4, not3),
            (sheet.clone(), not4),
        ];
        (
            pat,
            kept,
            [deliverable, f1, f2, f3, sheet],
            project,
            client_only,
        )
    });
    let conn = connector(
        &s,
        json!({"delete_users": false, "remove_shared_drives": true}),
    );
    assert!(conn.takes_client_jobs());
    let subj = Subject::client(ClientDomain::parse("clientco.test").expect("domain"));
    let d = conn.discover(&subj).await.expect("discovery");
    assert!(s.g.mutations().is_empty(), "discovery writes nothing");
    let count = |k: &str| d.findings.iter().filter(|f| f.kind == k).count();
    // lee on the deliverable, the roadmap and the sheet, the group, two domain permissions; lee
    // and pat in a drive (pat's is also in pat's leaver plan, and planned once).
    assert_eq!(
        (
            count(CLIENT_PERMISSION),
            count(CLIENT_DRIVE_PERMISSION),
            count(LINK_SHARE),
            count(SOLE_ORGANIZER),
            count(DRIVE_NOT_SCANNED),
        ),
        (6, 2, 2, 2, 1),
        "the drive the client alone organizes cannot be listed by anyone of ours"
    );
    assert!(
        d.accounts.iter().any(|a| a.id == pat),
        "the client's user of ours"
    );
    // What is left alone on purpose is said in the plan's notes, one each: the client-only
    // drive's two organizers and that it was not scanned, the two shares that name nobody.
    let said = |start: &str| d.notes.iter().filter(|n| n.starts_with(start)).count();
    assert_eq!(
        (
            said("shared drive \"Client only\""),
            said("file \"Roadmap\""),
            d.notes.len()
        ),
        (3, 2, 5),
        "{:#?}",
        d.notes
    );
    let all = actions(&d, &conn, &subj);
    let lines: Vec<String> = all
        .iter()
        .map(|a| {
            let pin = a.account.as_ref().map(|p| p.name.as_str()).unwrap_or("");
            format!(
                "{:?} {} {} [{pin}]: {}",
                a.phase, a.kind.0, a.target, a.summary
            )
        })
        .collect();
    insta::assert_snapshot!("plan_clientco", lines.join("\n"));
    let removals: Vec<&Action> = all
        .iter()
        .filter(|a| a.kind.0 == REMOVE_CLIENT_PERMISSION)
        .collect();
    assert_eq!(removals.len(), 7);
    // pat's membership of the project drive is removed once, by pat's leaver plan.
    assert_eq!(
        all.iter()
            .filter(|a| a.target.starts_with("drives/")
                && a.account.as_ref().is_some_and(|p| p.id == pat))
            .map(|a| a.kind.0.as_str())
            .collect::<Vec<_>>(),
        [REMOVE_SHARED_DRIVE]
    );
    // The deliverable's share goes after pat's files went to the archive owner, acting as it.
    let on_deliverable = removals
        .iter()
        .find(|a| a.params["file_id"] == files[0])
        .expect("the deliverable's share");
    assert_eq!(on_deliverable.params["as_user"], "archive@example.com");
    assert!(all.iter().any(|a| a.kind.0 == TRANSFER_DRIVE
        && a.account.as_ref().map(|p| p.id.as_str()) == Some(pat.as_str())));

    // The sheet's own share first, read back at once: lee is still a member of its drive, which
    // Drive shows on the sheet as an inherited permission of lee's; that is not the sheet's share.
    let sheet_share = all
        .iter()
        .find(|a| a.params.get("file_id") == Some(&files[4]))
        .expect("the sheet's share");
    assert_eq!(
        conn.apply(sheet_share, &sheet_share.key, &MemoryJournal::new())
            .await
            .expect("the sheet's share"),
        Outcome::Done
    );
    assert_eq!(
        conn.verify(sheet_share).await.expect("verify"),
        Verdict::Confirmed
    );
    let rest: Vec<Action> = all
        .iter()
        .filter(|a| a.id != sheet_share.id)
        .cloned()
        .collect();
    let mut journals = Journals::new();
    for (a, r) in run(&conn, &rest, &mut journals).await {
        assert_eq!(
            r.as_ref().ok(),
            Some(&Outcome::Done),
            "{} {}: {r:?}",
            a.kind,
            a.target
        );
    }
    let client = ClientDomain::parse("clientco.test").expect("domain");
    s.g.world(|w| {
        for f in &files {
            let left: Vec<_> = w.files[f]
                .permissions
                .iter()
                .filter(|p| {
                    p.email.as_deref().is_some_and(|e| client.matches_email(e))
                        || p.domain
                            .as_deref()
                            .is_some_and(|d| client.matches_domain(d))
                })
                .collect();
            assert!(left.is_empty(), "{f}: {left:?}");
        }
        for (f, p) in &kept {
            assert!(
                w.files[f].permissions.iter().any(|x| &x.id == p),
                "{f} keeps {p}"
            );
        }
        assert_eq!(
            w.files[&files[0]].owner.as_deref(),
            Some(ids.archive.as_str())
        );
        assert!(w.files[&files[0]]
            .permissions
            .iter()
            .any(|p| p.email.as_deref() == Some("manager@example.com")));
        let has_lee = |d: &str| {
            w.drives[d]
                .permissions
                .iter()
                .any(|p| p.email.as_deref() == Some("lee@clientco.test"))
        };
        assert!(!has_lee(&project) && has_lee(&client_only));
        assert!(w.drives[&project]
            .permissions
            .iter()
            .all(|p| p.email.as_deref() != Some("pat@clientco.test")));
        assert!(w.users[&pat].suspended);
    });
    for a in &all {
        let v = conn.verify(a).await.expect("verify");
        if ![SET_AUTO_REPLY, SET_FORWARDING].contains(&a.kind.0.as_str()) {
            assert_eq!(v, Verdict::Confirmed, "{} {}", a.kind, a.target);
        }
    }
    s.g.clear_requests();
    for (a, r) in run(&conn, &all, &mut journals).await {
        assert_eq!(
            r.as_ref().ok(),
            Some(&Outcome::AlreadyDone),
            "{} {}: {r:?}",
            a.kind,
            a.target
        );
    }
    assert_eq!(s.g.mutations(), vec![], "a rerun writes nothing");

    // A permission id that names another address at apply is left alone.
    let f = s.g.world(|w| {
        let f = w.file(&ids.alice, "Late share");
        w.share(&f, "user", "kim@clientco.test", "reader");
        f
    });
    let d = conn.discover(&subj).await.expect("discovery");
    let late = actions(&d, &conn, &subj)
        .into_iter()
        .find(|a| a.kind.0 == REMOVE_CLIENT_PERMISSION && a.params["file_id"] == f)
        .expect("the late share");
    s.g.world(|w| {
        w.edit_file(&f, |x| {
            for p in &mut x.permissions {
                if p.email.as_deref() == Some("kim@clientco.test") {
                    p.email = Some("kim@example.com".into());
                }
            }
        })
    });
    s.g.clear_requests();
    let e = conn
        .apply(&late, &late.key, &MemoryJournal::new())
        .await
        .expect_err("another grantee");
    assert_eq!(e.code, "identity_changed", "{e}");
    assert_eq!(s.g.mutations(), vec![]);
}

/// Five more leavers, each with a grant, an app password, a group and a role; their subjects.
fn seed_leavers(g: &GoogleStandin, n: usize) -> Vec<Subject> {
    g.world(|w| {
        let team = w.group("team@example.com", "Team");
        let role = w.role("_GROUPS_ADMIN_ROLE", false);
        (1..=n)
            .map(|i| {
                let email = format!("leaver{i}@example.com");
                let id = w.user(&email);
                w.grant(&id, &format!("{i}-app.apps.googleusercontent.com"), "App");
                w.asp(&id, "Mail client");
                w.add_member(&team, &id);
                w.assign(&role, &id);
                subject(&email)
            })
            .collect()
    })
}

/// The requests of a run but the token calls and the batch requests themselves, as
/// (method, path, query, status): what Google counts against the quota.
fn api_calls(g: &GoogleStandin) -> Vec<(String, String, Option<String>, u16)> {
    let mut v: Vec<_> = g
        .requests()
        .into_iter()
        .filter(|r| r.path != "/token" && r.path != revoke_testkit::google::BATCH_PATH)
        .map(|r| (r.method, r.path, r.query, r.status))
        .collect();
    v.sort();
    v
}

/// Discovery of several leavers through Google's batch endpoint (through Prism, each part
/// replayed through Prism too): one batch request per `batch_size` users found, the same calls
/// counted against the quota, and exactly the Discovery the unbatched connector finds.
#[tokio::test]
async fn batched_discovery_sends_one_request_per_batch_and_finds_what_unbatched_finds() {
    let s = stack();
    seed(&s.g);
    let mut subjects = vec![
        subject("alice.smith@example.com"),
        subject("carol@example.com"),
        subject("nobody@example.com"),
        subject("dave@example.com"),
    ];
    subjects.extend(seed_leavers(&s.g, 5));
    // 8 users found (nobody is not), 3 to a batch: 3 batches of 4 reads per user.
    let plain = connector(&s, json!({"batch_size": 0}));
    let unbatched = plain.discover_many(&subjects).await.expect("discovery");
    assert_eq!(plain.batched_calls(), 0);
    let plain_calls = api_calls(&s.g);
    assert!(s
        .g
        .requests()
        .iter()
        .all(|r| r.path != revoke_testkit::google::BATCH_PATH && !r.in_batch));
    s.g.clear_requests();

    let batching = connector(&s, json!({"batch_size": 3}));
    let batched = batching.discover_many(&subjects).await.expect("discovery");
    assert_eq!(batched, unbatched, "the batch finds what single calls find");
    assert_eq!(
        unbatched.iter().filter(|d| d.found).count(),
        8,
        "the leavers are found"
    );
    assert!(unbatched[4].findings.iter().any(|f| f.kind == APP_PASSWORD));
    let reqs = s.g.requests();
    let batches: Vec<_> = reqs
        .iter()
        .filter(|r| r.path == revoke_testkit::google::BATCH_PATH)
        .collect();
    assert_eq!(batches.len(), 3, "8 users, 3 to a batch");
    assert!(batches.iter().all(|b| b.status == 200 && !b.is_mutation()));
    let parts: Vec<_> = reqs.iter().filter(|r| r.in_batch).collect();
    assert_eq!(parts.len(), 8 * 4, "tokens, asps, groups, role assignments");
    assert!(parts.iter().all(|p| p.method == "GET" && p.status == 200));
    assert_eq!(batching.batched_calls(), 32);
    assert_eq!(
        api_calls(&s.g),
        plain_calls,
        "the same calls reach Google, batched or not"
    );
    assert!(s.g.mutations().is_empty(), "discovery writes nothing");
    // Round trips: the batch saves 32 requests and costs 3.
    let round_trips = |reqs: &[revoke_testkit::google::RecordedRequest]| {
        reqs.iter().filter(|r| !r.in_batch).count()
    };
    assert_eq!(
        round_trips(&reqs) + 32 - 3,
        plain_calls.len() + reqs.iter().filter(|r| r.path == "/token").count()
    );
}

/// One part of a batch answered 403 rateLimitExceeded: that read is rate limited, so the whole
/// discovery is (retryable, with the backoff), the pace holds every Directory call, and the next
/// discovery finds everything.
#[tokio::test]
async fn a_rate_limit_in_one_part_of_a_batch_makes_the_discovery_rate_limited() {
    let s = stack();
    seed(&s.g);
    let subjects = seed_leavers(&s.g, 3);
    let conn = connector(&s, json!({"backoff_ms": 200}));
    let expected = connector(&s, json!({"batch_size": 0}))
        .discover_many(&subjects)
        .await
        .expect("discovery");
    s.g.clear_requests();
    s.g.rate_storm_at(1, "rateLimitExceeded", "/asps");
    let e = conn
        .discover_many(&subjects)
        .await
        .expect_err("a part was rate limited");
    assert_eq!(
        (e.class.name(), e.code.as_str()),
        ("rate_limited", "rate_limit"),
        "{e}"
    );
    assert_eq!(e.retry_after(), Some(Duration::from_millis(200)));
    let reqs = s.g.requests();
    let refused: Vec<_> = reqs.iter().filter(|r| r.status == 403).collect();
    assert_eq!(refused.len(), 1, "one part refused");
    assert!(refused[0].in_batch && refused[0].path.ends_with("/asps"));
    let batch = reqs
        .iter()
        .find(|r| r.path == revoke_testkit::google::BATCH_PATH)
        .expect("a batch request");
    assert_eq!(batch.status, 200, "the batch itself succeeded");
    assert_eq!(reqs.iter().filter(|r| r.in_batch).count(), 3 * 4);
    let last = reqs.iter().map(|r| r.at).max().expect("requests");
    s.g.clear_requests();
    let again = conn.discover_many(&subjects).await.expect("discovery");
    assert_eq!(again, expected);
    let first =
        s.g.requests()
            .iter()
            .filter(|r| r.path != "/token")
            .map(|r| r.at)
            .min()
            .expect("requests");
    assert!(
        first.duration_since(last) >= Duration::from_millis(200),
        "a directory call left before the hold ended"
    );
}
