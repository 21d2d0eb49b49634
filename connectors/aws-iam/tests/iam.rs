//! The IAM connector against a real moto_server. moto deletes users real IAM would refuse to
//! delete, so every test that deletes checks IAM's real order from moto's request recorder
//! (revoke_testkit::iam_order_violations).

mod common;

use std::collections::{BTreeSet, HashMap};

use common::*;
use revoke_connector_aws_iam as iam_conn;
use revoke_core::{ActionKind, ErrorClass, Outcome, Phase, Subject};
use revoke_testkit::moto::count_calls;
use revoke_testkit::{iam_order_violations, Moto};
use serde_json::json;

fn kinds(d: &revoke_core::Discovery) -> Vec<(String, String)> {
    d.findings
        .iter()
        .map(|f| (f.kind.clone(), f.target.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaver_is_contained_then_deleted_in_iams_order() {
    let moto = Moto::start().expect("moto");
    moto.start_recording().expect("record");
    let iam = iam_in(&moto, None).await;
    let seeded = seed(&iam).await;
    let dir = tempfile::tempdir().expect("tmp");
    let c = connector(&moto, file_rotation(dir.path()));

    let d = c.discover(&alice()).await.expect("discover");
    assert!(d.found);
    let found: BTreeSet<&str> = d.findings.iter().map(|f| f.kind.as_str()).collect();
    for k in [
        iam_conn::USER,
        iam_conn::LOGIN_PROFILE,
        iam_conn::ACCESS_KEY,
        iam_conn::SIGNING_CERTIFICATE,
        iam_conn::SSH_PUBLIC_KEY,
        iam_conn::MFA_DEVICE,
        iam_conn::INLINE_POLICY,
        iam_conn::ATTACHED_POLICY,
        iam_conn::GROUP_MEMBERSHIP,
        iam_conn::OWNED_SERVICE_USER,
        iam_conn::OWNED_ACCESS_KEY,
        // moto answers 500 to ListServiceSpecificCredentials: shown, not taken for "none".
        iam_conn::SERVICE_CREDENTIALS_UNLISTED,
    ] {
        assert!(found.contains(k), "no {k} in {:#?}", kinds(&d));
    }
    // moto keeps permissions boundaries of roles only, so no PERMISSIONS_BOUNDARY here.
    // bob is nobody's here.
    assert!(d.findings.iter().all(|f| !f.target.contains("/bob")));
    let user = d
        .findings
        .iter()
        .find(|f| f.kind == iam_conn::USER)
        .expect("user");
    assert_eq!(user.attrs["matched_by"], "tag");

    let acts = actions(c.as_ref(), &alice(), &d);
    let of = |k: &'static str| acts.iter().filter(move |a| a.kind.0 == k);
    // Only the active key is deactivated; both are deleted.
    assert_eq!(of(iam_conn::DEACTIVATE_ACCESS_KEY).count(), 1);
    assert!(of(iam_conn::DEACTIVATE_ACCESS_KEY).all(|a| a.target.ends_with(&seeded.keys[0])));
    assert_eq!(of(iam_conn::DELETE_ACCESS_KEY).count(), 2);
    let delete_user = of(iam_conn::DELETE_USER).next().expect("delete_user");
    assert!(delete_user.summary.contains("could not be listed"));
    // The user waits for every removal and the quarantine's end (the contain phase before
    // them is the planner's order, not the connector's).
    let removals = acts
        .iter()
        .filter(|a| a.phase == Phase::Delete && a.kind.0 != iam_conn::DELETE_USER)
        .filter(|a| a.kind.0 != iam_conn::DELETE_ROTATED_KEY)
        .count();
    assert_eq!(delete_user.depends_on.len(), removals, "{delete_user:#?}");
    assert!(
        acts.iter()
            .filter(|a| a.phase == Phase::Delete)
            .flat_map(|a| &a.depends_on)
            .all(|d| acts.iter().any(|b| &b.id == d && b.phase != Phase::Contain)),
        "no cross-phase after left in the connector's plan"
    );

    let mut journals = HashMap::new();
    let results = apply_all(c.as_ref(), &acts, &mut journals).await;
    for a in &acts {
        match &results[&a.id] {
            Ok(Outcome::Done) => {}
            other => panic!("{}: {other:?}", a.summary),
        }
    }

    let calls = moto.recorded().expect("recorded");
    assert_eq!(iam_order_violations(&calls), Vec::<String>::new());
    // alice is gone, her virtual MFA device too; bob and his key are untouched.
    let gone = iam.get_user().user_name("alice").send().await;
    assert!(gone.is_err(), "alice should be gone");
    let devices = iam.list_virtual_mfa_devices().send().await.expect("mfa");
    assert!(devices
        .virtual_mfa_devices()
        .iter()
        .all(|d| d.serial_number() != seeded.mfa_serial));
    let group = iam
        .get_group()
        .group_name("admins")
        .send()
        .await
        .expect("group");
    let members: Vec<&str> = group.users().iter().map(|u| u.user_name()).collect();
    assert_eq!(members, vec!["bob"]);
    let bob = iam
        .list_access_keys()
        .user_name("bob")
        .send()
        .await
        .expect("bob");
    assert_eq!(bob.access_key_metadata().len(), 1);

    // The service key was rotated: the file holds the new key, the old one is deleted (its
    // grace is a plan time, which this test does not wait for), the new one is active.
    let svc = iam
        .list_access_keys()
        .user_name("svc-ci")
        .send()
        .await
        .expect("svc");
    let ids: Vec<&str> = svc
        .access_key_metadata()
        .iter()
        .filter_map(|k| k.access_key_id())
        .collect();
    assert_eq!(ids.len(), 1);
    assert_ne!(ids[0], seeded.service_key);
    let file = std::fs::read_to_string(dir.path().join("123456789012.svc-ci.json")).expect("file");
    assert!(file.contains(ids[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_sends_no_mutation() {
    let moto = Moto::start().expect("moto");
    let iam = iam_in(&moto, None).await;
    seed(&iam).await;
    let dir = tempfile::tempdir().expect("tmp");
    let c = connector(&moto, file_rotation(dir.path()));
    let d = c.discover(&alice()).await.expect("discover");
    let acts = actions(c.as_ref(), &alice(), &d);
    let mut journals = HashMap::new();
    apply_all(c.as_ref(), &acts, &mut journals).await;

    moto.start_recording().expect("record");
    moto.clear_recording().expect("clear");
    let again = apply_all(c.as_ref(), &acts, &mut journals).await;
    for a in &acts {
        match &again[&a.id] {
            Ok(Outcome::AlreadyDone) => {}
            Ok(Outcome::Skipped { reason }) if a.kind.0 == iam_conn::ROTATE_ACCESS_KEY => {
                assert!(reason.contains("gone"), "{reason}")
            }
            other => panic!("{}: {other:?}", a.summary),
        }
    }
    let calls = moto.recorded().expect("recorded");
    let counts = count_calls(&calls);
    let mutations: Vec<&str> = calls
        .iter()
        .filter(|c| !c.is_read())
        .map(|c| c.action.as_str())
        .collect();
    assert_eq!(counts.mutations, 0, "{mutations:?}");
    assert!(counts.reads > 0);

    // And a new plan finds nothing left of alice, and does not rotate the new key again.
    let d = c.discover(&alice()).await.expect("discover");
    let left: Vec<_> = d
        .findings
        .iter()
        .filter(|f| f.kind != iam_conn::OWNED_SERVICE_USER)
        .collect();
    assert!(left.is_empty(), "{left:#?}");
    assert!(c.plan(&alice(), &d).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contain_only_when_users_are_kept() {
    let moto = Moto::start().expect("moto");
    let iam = iam_in(&moto, None).await;
    let seeded = seed(&iam).await;
    let c = connector(&moto, json!({"delete_users": false, "match_by": "name"}));
    let d = c.discover(&alice()).await.expect("discover");
    let acts = actions(c.as_ref(), &alice(), &d);
    assert!(acts.iter().all(|a| a.phase == Phase::Contain), "{acts:#?}");
    let mut journals = HashMap::new();
    let r = apply_all(c.as_ref(), &acts, &mut journals).await;
    assert!(r.values().all(|o| matches!(o, Ok(Outcome::Done))), "{r:?}");
    let keys = iam
        .list_access_keys()
        .user_name("alice")
        .send()
        .await
        .expect("keys");
    assert!(keys
        .access_key_metadata()
        .iter()
        .all(|k| k.status() == Some(&aws_sdk_iam::types::StatusType::Inactive)));
    let q = iam
        .get_user_policy()
        .user_name("alice")
        .policy_name(
            iam_conn::IamConfig::from_value(&json!({}))
                .expect("cfg")
                .quarantine_policy,
        )
        .send()
        .await
        .expect("quarantine attached");
    assert!(q.policy_document().contains("Deny"));
    assert!(iam
        .get_login_profile()
        .user_name("alice")
        .send()
        .await
        .is_err());
    let _ = seeded;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_discovery_finds_the_same() {
    let moto = Moto::start().expect("moto");
    let iam = iam_in(&moto, None).await;
    seed(&iam).await;
    let batch = connector(&moto, json!({"match_by": "name"}));
    let per_user = connector(&moto, json!({"match_by": "name", "discovery": "per_user"}));
    let a = batch.discover(&alice()).await.expect("batch");
    let b = per_user.discover(&alice()).await.expect("per user");
    // Last use comes from the credential report in one and GetAccessKeyLastUsed in the other;
    // both say never here.
    assert_eq!(kinds(&a), kinds(&b));
    assert_eq!(a.findings, b.findings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_or_unknown_names_find_nothing_and_send_nothing() {
    let moto = Moto::start().expect("moto");
    let iam = iam_in(&moto, None).await;
    seed(&iam).await;
    let c = connector(&moto, json!({"match_by": "name", "discovery": "per_user"}));
    moto.start_recording().expect("record");
    for name in ["*)(uid=*", "../x", "a/b", "nobody"] {
        let mut s = Subject::new(name);
        s.usernames.insert(INSTANCE.into(), name.into());
        let d = c.discover(&s).await.expect("discover");
        assert!(!d.found, "{name}");
        assert!(d.findings.is_empty(), "{name}");
    }
    let calls = moto.recorded().expect("recorded");
    let users: Vec<&str> = calls
        .iter()
        .filter(|c| c.action == "GetUser")
        .filter_map(|c| c.param("UserName"))
        .collect();
    assert_eq!(users, vec!["nobody"], "only a valid IAM name is ever sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_accounts_through_assume_role() {
    let moto = Moto::start().expect("moto");
    let accounts = ["111111111111", "222222222222"];
    for a in accounts {
        let iam = iam_in(&moto, Some(a)).await;
        iam.create_user()
            .user_name("alice")
            .send()
            .await
            .expect("user");
        iam.create_access_key()
            .user_name("alice")
            .send()
            .await
            .expect("key");
    }
    // The credentials' own account has an alice too, but it is not in the list.
    let own = iam_in(&moto, None).await;
    own.create_user()
        .user_name("alice")
        .send()
        .await
        .expect("own");

    moto.start_recording().expect("record");
    let c = connector(
        &moto,
        json!({"accounts": accounts, "match_by": "name", "delete_users": false}),
    );
    let d = c.discover(&alice()).await.expect("discover");
    let users: Vec<&str> = d
        .findings
        .iter()
        .filter(|f| f.kind == iam_conn::USER)
        .map(|f| f.target.as_str())
        .collect();
    assert_eq!(users, vec!["111111111111/alice", "222222222222/alice"]);
    let acts = actions(c.as_ref(), &alice(), &d);
    let mut journals = HashMap::new();
    let r = apply_all(c.as_ref(), &acts, &mut journals).await;
    assert!(r.values().all(|o| matches!(o, Ok(Outcome::Done))), "{r:?}");
    for a in accounts {
        let iam = iam_in(&moto, Some(a)).await;
        let keys = iam
            .list_access_keys()
            .user_name("alice")
            .send()
            .await
            .expect("keys");
        assert!(keys
            .access_key_metadata()
            .iter()
            .all(|k| k.status() == Some(&aws_sdk_iam::types::StatusType::Inactive)));
    }
    let own_policies = own
        .list_user_policies()
        .user_name("alice")
        .send()
        .await
        .expect("own");
    assert!(
        own_policies.policy_names().is_empty(),
        "the unlisted account is untouched"
    );
    let assumed: Vec<String> = moto
        .recorded()
        .expect("recorded")
        .iter()
        .filter(|c| c.action == "AssumeRole")
        .filter_map(|c| c.param("RoleArn").map(str::to_string))
        .collect();
    assert_eq!(
        assumed.iter().collect::<BTreeSet<_>>(),
        accounts
            .iter()
            .map(|a| format!("arn:aws:iam::{a}:role/OrganizationAccountAccessRole"))
            .collect::<Vec<_>>()
            .iter()
            .collect::<BTreeSet<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_with_something_added_after_the_plan_is_a_conflict_not_a_silent_removal() {
    let moto = Moto::start().expect("moto");
    let iam = iam_in(&moto, None).await;
    seed(&iam).await;
    let c = connector(&moto, json!({"match_by": "name"}));
    let d = c.discover(&alice()).await.expect("discover");
    let acts = actions(c.as_ref(), &alice(), &d);
    // After the plan, somebody adds an inline policy moto would not stop DeleteUser for... but
    // real IAM would, and so does moto for inline policies.
    iam.put_user_policy()
        .user_name("alice")
        .policy_name("added-later")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*"}]}"#)
        .send()
        .await
        .expect("late policy");
    let mut journals = HashMap::new();
    let r = apply_all(c.as_ref(), &acts, &mut journals).await;
    let du = acts
        .iter()
        .find(|a| a.kind == ActionKind::from(iam_conn::DELETE_USER))
        .expect("delete_user");
    let e = r[&du.id].clone().expect_err("IAM refuses");
    assert_eq!(e.class, ErrorClass::Conflict);
    assert_eq!(e.code, "delete_conflict");
    assert!(iam.get_user().user_name("alice").send().await.is_ok());
}

/// A removal is sent without reading its target first: a target gone after the plan costs one
/// write IAM refuses (NoSuchEntity), held against the pin again, and is already done with
/// nothing changed; a new plan for a contained user reads its quarantine and sends no write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_gone_after_the_plan_is_one_refused_write_and_already_done() {
    let moto = Moto::start().expect("moto");
    let iam = iam_in(&moto, None).await;
    let seeded = seed(&iam).await;
    let c = connector(&moto, json!({"match_by": "name"}));
    let d = c.discover(&alice()).await.expect("discover");
    let acts = actions(c.as_ref(), &alice(), &d);
    let find = |kind: &str, suffix: &str| {
        acts.iter()
            .find(|a| a.kind.0 == kind && a.target.ends_with(suffix))
            .unwrap_or_else(|| panic!("{kind} {suffix}"))
            .clone()
    };
    let q = find(iam_conn::QUARANTINE_USER, "/alice");
    assert_eq!(
        q.params
            .get(iam_conn::QUARANTINED_AT_PLAN)
            .map(String::as_str),
        Some("false")
    );

    // After the plan, somebody deletes the inactive key and the console password.
    iam.delete_access_key()
        .user_name("alice")
        .access_key_id(&seeded.keys[1])
        .send()
        .await
        .expect("key");
    iam.delete_login_profile()
        .user_name("alice")
        .send()
        .await
        .expect("password");
    moto.clear_recording().expect("clear");
    for a in [
        find(iam_conn::DELETE_ACCESS_KEY, &seeded.keys[1]),
        find(iam_conn::DELETE_LOGIN_PROFILE, "/alice"),
    ] {
        let r = c
            .apply(&a, &a.key, &revoke_core::MemoryJournal::new())
            .await
            .expect("apply");
        assert_eq!(r, Outcome::AlreadyDone, "{}", a.summary);
    }
    let calls = moto.recorded().expect("recorded");
    let writes: Vec<&str> = calls
        .iter()
        .filter(|c| !c.is_read())
        .map(|c| c.action.as_str())
        .collect();
    assert_eq!(
        writes,
        ["DeleteAccessKey", "DeleteLoginProfile"],
        "one refused write each"
    );
    let lookups = calls.iter().filter(|c| c.action == "GetUser").count();
    assert_eq!(
        lookups, 4,
        "the pin before each write and again after its NoSuchEntity"
    );
    // The other key is still there: nothing but the named target was touched.
    let keys = iam
        .list_access_keys()
        .user_name("alice")
        .send()
        .await
        .expect("keys");
    assert_eq!(keys.access_key_metadata().len(), 1);

    // Contained: a new plan proposes the quarantine again, reads it and sends nothing.
    let mut journals = HashMap::new();
    let contain: Vec<_> = acts
        .iter()
        .filter(|a| a.phase == Phase::Contain)
        .cloned()
        .collect();
    apply_all(c.as_ref(), &contain, &mut journals).await;
    let d = c.discover(&alice()).await.expect("discover");
    let again: Vec<_> = actions(c.as_ref(), &alice(), &d)
        .into_iter()
        .filter(|a| a.phase == Phase::Contain)
        .collect();
    let q = again
        .iter()
        .find(|a| a.kind.0 == iam_conn::QUARANTINE_USER)
        .expect("quarantine");
    assert_eq!(
        q.params
            .get(iam_conn::QUARANTINED_AT_PLAN)
            .map(String::as_str),
        Some("true")
    );
    moto.clear_recording().expect("clear");
    let r = apply_all(c.as_ref(), &again, &mut journals).await;
    assert!(
        r.values().all(|o| matches!(o, Ok(Outcome::AlreadyDone))),
        "{r:?}"
    );
    let calls = moto.recorded().expect("recorded");
    assert_eq!(
        count_calls(&calls).mutations,
        0,
        "{:?}",
        revoke_testkit::moto::actions(&calls)
    );
}
