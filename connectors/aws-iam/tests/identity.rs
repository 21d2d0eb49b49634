//! Who an IAM action touches: the accounts discovery reports (UserId, every identifier, why they
//! are the subject's), ownership found through any identifier, case-insensitive names, and the
//! pin to the UserId when the world changes between plan and apply.

mod common;

use std::collections::HashMap;

use chrono::Utc;
use common::engine::{config, connectors, job, plan};
use common::*;
use revoke_connector_aws_iam as iam_conn;
use revoke_core::{Action, ErrorClass, Outcome, Phase, Risk, Verdict};
use revoke_testkit::{iam_order_violations, Moto};
use serde_json::json;

const ACCT: &str = Moto::ACCOUNT_ID;

async fn user_id(iam: &aws_sdk_iam::Client, user: &str) -> String {
    iam.get_user()
        .user_name(user)
        .send()
        .await
        .expect("user")
        .user
        .expect("user")
        .user_id()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_account_is_reported_with_its_user_id_and_every_identifier() {
    let moto = Moto::start().expect("moto");
    let iam = iam_in(&moto, None).await;
    let w = seed_dana(&iam).await;
    let dir = tempfile::tempdir().expect("tmp");
    let c = connector(&moto, file_rotation(dir.path()));
    let d = c
        .discover(&typed("dana@example.org"))
        .await
        .expect("discover");

    let names: Vec<(&str, &str)> = d
        .accounts
        .iter()
        .map(|a| (a.name.as_str(), a.matched_by.as_str()))
        .collect();
    let mut want = vec![
        ("123456789012/admin", "tag owner = dana@example.org"),
        ("123456789012/dana", "tag email = dana@example.org"),
        ("123456789012/svc-build", "tag owner = Dana@Example.org"),
    ];
    want.sort();
    let mut got = names.clone();
    got.sort();
    assert_eq!(got, want);
    let dana = d.account(&w.dana_id).expect("dana by her UserId");
    assert_eq!(dana.id_kind, "UserId");
    assert_ne!(
        w.dana_id, "dana",
        "moto's UserIds are random, AWS's AIDA..."
    );
    for i in [
        "dana",
        "dana@example.org",
        "arn:aws:iam::123456789012:user/dana",
        w.dana_id.as_str(),
    ] {
        assert!(dana.identifiers.contains(i), "{i} in {dana:?}");
    }
    let admin = d.account(&w.admin_id).expect("admin by its UserId");
    assert!(admin.identifiers.contains("admin"));
    assert!(
        !admin.identifiers.contains("dana@example.org"),
        "the owner tag names dana, not admin: {admin:?}"
    );

    // Every action names the account it touches.
    let acts = actions(c.as_ref(), &typed("dana@example.org"), &d);
    for a in &acts {
        let pin = a.account.as_ref().expect("pinned");
        let (_, user, _) = iam_conn::split_target(&a.target);
        assert_eq!(pin.name, format!("{ACCT}/{user}"), "{}", a.summary);
    }
    assert!(acts.iter().filter(|a| a.target.contains("/dana")).all(|a| a
        .account
        .as_ref()
        .map(|p| p.id.as_str())
        == Some(w.dana_id.as_str())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_username_finds_the_service_users_her_email_tag_owns_and_case_does_not_matter() {
    let moto = Moto::start().expect("moto");
    let iam = iam_in(&moto, None).await;
    let w = seed_dana(&iam).await;
    let dir = tempfile::tempdir().expect("tmp");
    let c = connector(&moto, file_rotation(dir.path()));
    for typed_as in ["dana", "DANA", "Dana@Example.ORG"] {
        let d = c.discover(&typed(typed_as)).await.expect("discover");
        assert!(d.found, "{typed_as}");
        let mut names: Vec<&str> = d.accounts.iter().map(|a| a.name.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "123456789012/admin",
                "123456789012/dana",
                "123456789012/svc-build"
            ],
            "{typed_as}"
        );
        let rotations: Vec<String> = c
            .plan(&typed(typed_as), &d)
            .iter()
            .filter(|p| p.kind.0 == iam_conn::ROTATE_ACCESS_KEY)
            .map(|p| p.target.clone())
            .collect();
        assert!(
            rotations.contains(&format!("{ACCT}/svc-build/{}", w.svc_key)),
            "{typed_as}: {rotations:?}"
        );
    }
    let d = c.discover(&typed("DANA")).await.expect("discover");
    assert_eq!(
        d.account(&w.dana_id).map(|a| a.matched_by.as_str()),
        Some("user name = dana")
    );
    // bob is nobody's, and a name that only looks like dana's is not hers.
    for other in ["dan", "dana*", "bob@example.org.evil"] {
        let d = c.discover(&typed(other)).await.expect("discover");
        assert!(!d.found, "{other}: {:?}", d.accounts);
    }
}

/// The actions of the given phases.
fn of_phases(acts: &[Action], phases: &[Phase]) -> Vec<Action> {
    acts.iter()
        .filter(|a| phases.contains(&a.phase))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaver_deleted_and_recreated_before_the_delayed_actions_is_never_touched() {
    let moto = Moto::start().expect("moto");
    let iam = iam_in(&moto, None).await;
    let w = seed_dana(&iam).await;
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(
        &moto,
        "[policies.default]\nretention_days = 30\n[protected]\naccounts = [\"admin\"]\n",
        file_rotation(dir.path()),
    );
    let cs = connectors(&cfg);
    let p = plan(
        &cfg,
        &cs,
        vec![job(1, typed("dana@example.org"), Utc::now(), Risk::High)],
    )
    .await;
    let c = cs[INSTANCE].clone();
    // Contain and rotate now; the deletes wait for retention and grace.
    let now = of_phases(&p.actions, &[Phase::Contain, Phase::Transfer]);
    let r = apply_all(c.as_ref(), &now, &mut HashMap::new()).await;
    assert_eq!(r.len(), now.len(), "{r:?}");
    assert!(r.values().all(|o| matches!(o, Ok(Outcome::Done))), "{r:?}");

    // Meanwhile an administrator deletes dana and svc-build, and a new dana joins with the same
    // name, the same inline policy name and group, a key and a password; svc-build is made anew.
    for user in ["dana", "svc-build"] {
        for k in key_ids(&iam, user).await {
            iam.delete_access_key()
                .user_name(user)
                .access_key_id(&k)
                .send()
                .await
                .expect("delete key");
        }
    }
    for p in ["dana-s3", "RevokedQuarantine"] {
        iam.delete_user_policy()
            .user_name("dana")
            .policy_name(p)
            .send()
            .await
            .expect("delete policy");
    }
    iam.detach_user_policy()
        .user_name("dana")
        .policy_arn("arn:aws:iam::aws:policy/ReadOnlyAccess")
        .send()
        .await
        .expect("detach");
    iam.remove_user_from_group()
        .group_name("engineers")
        .user_name("dana")
        .send()
        .await
        .expect("leave group");
    for user in ["dana", "svc-build"] {
        iam.delete_user()
            .user_name(user)
            .send()
            .await
            .expect("delete user");
        iam.create_user()
            .user_name(user)
            .send()
            .await
            .expect("new user");
        iam.create_access_key()
            .user_name(user)
            .send()
            .await
            .expect("new key");
    }
    iam.create_login_profile()
        .user_name("dana")
        .password("New-Hire-Password-1")
        .send()
        .await
        .expect("password");
    iam.put_user_policy()
        .user_name("dana")
        .policy_name("dana-s3")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#)
        .send()
        .await
        .expect("policy");
    iam.add_user_to_group()
        .group_name("engineers")
        .user_name("dana")
        .send()
        .await
        .expect("group");
    let new_dana = user_id(&iam, "dana").await;
    let new_svc = user_id(&iam, "svc-build").await;
    assert_ne!(new_dana, w.dana_id);
    let dana_keys = key_ids(&iam, "dana").await;
    let svc_keys = key_ids(&iam, "svc-build").await;

    // Retention and grace are over: every delayed action finds another user under its name.
    let before = moto.recorded().expect("recorded").len();
    let delayed = of_phases(&p.actions, &[Phase::Delete]);
    assert!(delayed.len() >= 6, "{delayed:#?}");
    assert!(delayed
        .iter()
        .any(|a| a.kind.0 == iam_conn::DELETE_ROTATED_KEY));
    for a in &delayed {
        let e = c
            .apply(a, &a.key, &revoke_core::MemoryJournal::new())
            .await
            .expect_err("identity changed");
        assert_eq!(
            (e.class.clone(), e.code.as_str()),
            (ErrorClass::Permanent, "identity_changed"),
            "{}: {e:?}",
            a.summary
        );
        let (old, new) = if a.target.contains("/svc-build") {
            (
                a.account.as_ref().map(|p| p.id.clone()).unwrap_or_default(),
                new_svc.clone(),
            )
        } else {
            (w.dana_id.clone(), new_dana.clone())
        };
        assert!(
            e.message.contains(&old) && e.message.contains(&new),
            "both named: {}",
            e.message
        );
    }
    // Verify says the same, for a contain action as much as a delete.
    for a in p
        .actions
        .iter()
        .filter(|a| a.target.ends_with("/dana"))
        .take(2)
    {
        let e = c.verify(a).await.expect_err("identity changed");
        assert_eq!(e.code, "identity_changed");
    }
    let calls = moto.recorded().expect("recorded");
    assert_eq!(mutations_on(&calls[before..], "dana"), Vec::<String>::new());
    assert_eq!(
        mutations_on(&calls[before..], "svc-build"),
        Vec::<String>::new()
    );
    // The new dana and the new svc-build keep everything.
    assert_eq!(key_ids(&iam, "dana").await, dana_keys);
    assert_eq!(key_ids(&iam, "svc-build").await, svc_keys);
    assert!(iam
        .get_login_profile()
        .user_name("dana")
        .send()
        .await
        .is_ok());
    assert_eq!(
        iam.list_user_policies()
            .user_name("dana")
            .send()
            .await
            .expect("policies")
            .policy_names(),
        ["dana-s3"]
    );
}

async fn key_ids(iam: &aws_sdk_iam::Client, user: &str) -> Vec<String> {
    iam.list_access_keys()
        .user_name(user)
        .send()
        .await
        .expect("keys")
        .access_key_metadata()
        .iter()
        .filter_map(|k| k.access_key_id().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_user_is_acted_on_under_its_new_name_and_a_gone_one_is_already_done() {
    let moto = Moto::start().expect("moto");
    let iam = iam_in(&moto, None).await;
    let w = seed_dana(&iam).await;
    let c = connector(&moto, json!({"match_by": "tag"}));
    let d = c
        .discover(&typed("dana@example.org"))
        .await
        .expect("discover");
    let acts = actions(c.as_ref(), &typed("dana@example.org"), &d);
    let find = |kind: &str| {
        acts.iter()
            .find(|a| a.kind.0 == kind)
            .unwrap_or_else(|| panic!("{kind}"))
            .clone()
    };

    // Renamed after the plan: the quarantine lands on dana-old, where dana is now.
    iam.update_user()
        .user_name("dana")
        .new_user_name("dana-old")
        .send()
        .await
        .expect("rename");
    let q = find(iam_conn::QUARANTINE_USER);
    assert_eq!(
        c.apply(&q, &q.key, &revoke_core::MemoryJournal::new())
            .await
            .expect("quarantine"),
        Outcome::Done
    );
    assert_eq!(c.verify(&q).await.expect("verify"), Verdict::Confirmed);
    iam.get_user_policy()
        .user_name("dana-old")
        .policy_name("RevokedQuarantine")
        .send()
        .await
        .expect("quarantined under the new name");

    // Deleted altogether: already done, confirmed, and nothing sent.
    for k in key_ids(&iam, "dana-old").await {
        iam.delete_access_key()
            .user_name("dana-old")
            .access_key_id(&k)
            .send()
            .await
            .expect("key");
    }
    for p in ["dana-s3", "RevokedQuarantine"] {
        iam.delete_user_policy()
            .user_name("dana-old")
            .policy_name(p)
            .send()
            .await
            .expect("policy");
    }
    iam.detach_user_policy()
        .user_name("dana-old")
        .policy_arn("arn:aws:iam::aws:policy/ReadOnlyAccess")
        .send()
        .await
        .expect("detach");
    iam.delete_login_profile()
        .user_name("dana-old")
        .send()
        .await
        .expect("password");
    iam.remove_user_from_group()
        .group_name("engineers")
        .user_name("dana-old")
        .send()
        .await
        .expect("group");
    iam.delete_user()
        .user_name("dana-old")
        .send()
        .await
        .expect("delete");
    let before = moto.recorded().expect("recorded").len();
    let k = find(iam_conn::DEACTIVATE_ACCESS_KEY);
    assert!(k.target.ends_with(&w.dana_key));
    for a in [&k, &find(iam_conn::DELETE_USER)] {
        assert_eq!(
            c.apply(a, &a.key, &revoke_core::MemoryJournal::new())
                .await
                .expect("apply"),
            Outcome::AlreadyDone
        );
        assert_eq!(c.verify(a).await.expect("verify"), Verdict::Confirmed);
    }
    let calls = moto.recorded().expect("recorded");
    assert!(
        calls[before..].iter().all(|c| c.is_read()),
        "{:?}",
        revoke_testkit::moto::actions(&calls[before..])
    );
    // The search for the UserId happened once: a UserId gone stays gone.
    let searches = calls[before..]
        .iter()
        .filter(|c| c.action == "ListUsers")
        .count();
    assert_eq!(searches, 1);
    assert_eq!(iam_order_violations(&calls), Vec::<String>::new());
}
