//! The IAM connector under the real planner, executor and store, against moto with its
//! recorder (and IAM's authorization where a test says so): what a plan leaves out, in what
//! order it runs, when a rotated-out key goes, and what an unwritable destination costs.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use common::engine::{apply, config, connectors, job, kinds, plan};
use common::*;
use revoke_connector_aws_iam as iam_conn;
use revoke_core::{Phase, Risk};
use revoke_store::ActionState;
use revoke_testkit::{iam_order_violations, Moto};
use serde_json::{json, Value};

const ACCT: &str = Moto::ACCOUNT_ID;

async fn key_status(iam: &aws_sdk_iam::Client, user: &str) -> Vec<(String, bool)> {
    iam.list_access_keys()
        .user_name(user)
        .send()
        .await
        .expect("keys")
        .access_key_metadata()
        .iter()
        .map(|k| {
            (
                k.access_key_id().unwrap_or_default().to_string(),
                k.status() == Some(&aws_sdk_iam::types::StatusType::Active),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_admin_owned_by_the_leaver_costs_only_its_own_rotation() {
    let moto = Moto::start().expect("moto");
    let iam = iam_in(&moto, None).await;
    let w = seed_dana(&iam).await;
    let dir = tempfile::tempdir().expect("tmp");
    let top = "[policies.default]\nretention_days = 0\n";
    let open = config(&moto, top, file_rotation(dir.path()));
    let guarded = config(
        &moto,
        &format!("{top}[protected]\naccounts = [\"admin\"]\n"),
        file_rotation(dir.path()),
    );
    let now = Utc::now();
    let subject = typed("dana@example.org");
    let all = plan(
        &open,
        &connectors(&open),
        vec![job(1, subject.clone(), now, Risk::High)],
    )
    .await;
    let kept = plan(
        &guarded,
        &connectors(&guarded),
        vec![job(1, subject, now, Risk::High)],
    )
    .await;

    // Exactly admin's own actions are missing: its rotation and the later delete of its key.
    let kept_kinds: BTreeSet<String> = kinds(&kept.actions).into_iter().collect();
    let missing: Vec<String> = kinds(&all.actions)
        .into_iter()
        .filter(|k| !kept_kinds.contains(k))
        .collect();
    let admin_key = format!("{ACCT}/admin/{}", w.admin_key);
    assert_eq!(
        missing,
        [
            format!("{} {admin_key}", iam_conn::DELETE_ROTATED_KEY),
            format!("{} {admin_key}", iam_conn::ROTATE_ACCESS_KEY),
        ]
    );
    for want in [
        format!("{} {ACCT}/dana", iam_conn::QUARANTINE_USER),
        format!(
            "{} {ACCT}/dana/{}",
            iam_conn::DEACTIVATE_ACCESS_KEY,
            w.dana_key
        ),
        format!("{} {ACCT}/dana", iam_conn::DELETE_LOGIN_PROFILE),
        format!("{} {ACCT}/dana/dana-s3", iam_conn::DELETE_USER_POLICY),
        format!("{} {ACCT}/dana/engineers", iam_conn::REMOVE_FROM_GROUP),
        format!("{} {ACCT}/dana", iam_conn::DELETE_USER),
        format!(
            "{} {ACCT}/svc-build/{}",
            iam_conn::ROTATE_ACCESS_KEY,
            w.svc_key
        ),
    ] {
        assert!(kept_kinds.contains(&want), "{want} in {kept_kinds:#?}");
    }
    let note = kept
        .notes
        .iter()
        .map(|n| n.message.as_str())
        .find(|m| m.contains("protected account"))
        .expect("a note");
    assert!(
        note.contains(&format!("{ACCT}/admin (UserId {})", w.admin_id)),
        "{note}"
    );
    assert!(note.contains("left out 2 action(s)"), "{note}");
    // dana's actions are pinned to her UserId.
    for a in kept.actions.iter().filter(|a| a.target.contains("/dana")) {
        assert_eq!(
            a.account.as_ref().map(|p| p.id.as_str()),
            Some(w.dana_id.as_str())
        );
    }

    let before = moto.recorded().expect("recorded").len();
    let applied = apply(&guarded, connectors(&guarded), &kept).await;
    let s = &applied.summary;
    assert_eq!((s.failed, s.blocked), (0, 0), "{s:?}");
    let calls = moto.recorded().expect("recorded");
    assert_eq!(
        mutations_on(&calls[before..], "admin"),
        Vec::<String>::new()
    );
    assert_eq!(
        key_status(&iam, "admin").await,
        [(w.admin_key.clone(), true)]
    );
    assert!(
        iam.get_user().user_name("dana").send().await.is_err(),
        "dana is deleted"
    );
    let svc = key_status(&iam, "svc-build").await;
    assert!(
        svc.contains(&(w.svc_key.clone(), false)),
        "rotated: {svc:?}"
    );
    assert_eq!(iam_order_violations(&calls), Vec::<String>::new());
}

/// The least-privilege policy docs/connectors/aws-iam.md documents, minus `drop`. moto sees IAM
/// calls with the resource `*`, so every statement's resource becomes `*`.
fn documented_policy(drop: &str) -> String {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/connectors/aws-iam.md"
    ))
    .expect("the doc");
    let from = doc
        .find("## Least privilege")
        .expect("a least privilege section");
    let start = from + doc[from..].find("```json").expect("a json block") + "```json".len();
    let end = start + doc[start..].find("```").expect("its end");
    let mut policy: Value = serde_json::from_str(&doc[start..end]).expect("the policy is json");
    let mut dropped = false;
    for st in policy["Statement"].as_array_mut().expect("statements") {
        st["Resource"] = json!("*");
        if let Some(actions) = st["Action"].as_array_mut() {
            let n = actions.len();
            actions.retain(|a| a != drop);
            dropped |= actions.len() < n;
        }
    }
    assert!(dropped, "the documented policy names {drop}");
    policy.to_string()
}

const ALLOW_ALL: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_contain_blocks_the_delete_phase_and_the_leaver_keeps_her_quarantine() {
    let moto = Moto::start().expect("moto");
    let iam = iam_in(&moto, None).await;
    let w = seed_dana(&iam).await;
    let (key, secret) = moto
        .user_with_policy("revoked", &documented_policy("iam:DeleteLoginProfile"))
        .expect("connector user");
    let (admin_key, admin_secret) = moto
        .user_with_policy("root-admin", ALLOW_ALL)
        .expect("admin user");
    moto.enable_auth().expect("auth on");
    let cfg = config(
        &moto,
        "[policies.default]\nretention_days = 7\n",
        json!({"access_key_id": key, "secret_access_key": secret, "match_by": "tag"}),
    );
    let cs = connectors(&cfg);
    let before = moto.recorded().expect("recorded").len();
    let p = plan(
        &cfg,
        &cs,
        vec![job(
            1,
            typed("dana@example.org"),
            Utc::now() - chrono::Duration::days(8),
            Risk::Standard,
        )],
    )
    .await;
    let deletes: Vec<String> = p
        .actions
        .iter()
        .filter(|a| a.phase == Phase::Delete)
        .map(|a| a.id.0.clone())
        .collect();
    assert!(deletes.len() >= 5, "{:#?}", p.actions);
    let applied = apply(&cfg, cs, &p).await;

    let login = applied
        .record(iam_conn::DELETE_LOGIN_PROFILE, &format!("{ACCT}/dana"))
        .await;
    assert_eq!(login.state, ActionState::Failed);
    let e = login.error.expect("an error");
    assert_eq!(e.code, "access_denied", "{e:?}");
    for r in applied.records().await {
        match r.action.phase {
            Phase::Delete => assert_eq!(r.state, ActionState::Blocked, "{}", r.action.summary),
            Phase::Contain if r.action.kind.0 != iam_conn::DELETE_LOGIN_PROFILE => {
                assert_eq!(
                    r.state,
                    ActionState::Done,
                    "{}: {:?}",
                    r.action.summary,
                    r.error
                )
            }
            _ => {}
        }
    }
    let calls = moto.recorded().expect("recorded");
    let mut on_dana = mutations_on(&calls[before..], "dana");
    on_dana.sort();
    let mut want = vec![
        "DeleteLoginProfile".to_string(),
        "PutUserPolicy RevokedQuarantine".to_string(),
        format!("UpdateAccessKey {}", w.dana_key),
    ];
    want.sort();
    assert_eq!(on_dana, want, "no delete-phase call for dana");

    // Checked as an administrator: dana keeps her deny-all policy (and her password).
    let admin = aws_sdk_iam::Client::new(
        &revoke_aws::sdk_config(
            &revoke_aws::AccessConfig::from_table(&params(
                &moto,
                json!({"access_key_id": admin_key, "secret_access_key": admin_secret}),
            ))
            .expect("access"),
        )
        .await,
    );
    let q = admin
        .get_user_policy()
        .user_name("dana")
        .policy_name("RevokedQuarantine")
        .send()
        .await
        .expect("the quarantine is still there");
    assert!(q.policy_document().contains("Deny"));
    assert_eq!(
        key_status(&admin, "dana").await,
        [(w.dana_key.clone(), false)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_high_risk_leavers_are_all_contained_before_anything_is_deleted() {
    let moto = Moto::start().expect("moto");
    let iam = iam_in(&moto, None).await;
    iam.create_group()
        .group_name("staff")
        .send()
        .await
        .expect("group");
    let n = 20;
    for i in 0..n {
        let u = format!("leaver-{i:02}");
        iam.create_user().user_name(&u).send().await.expect("user");
        iam.create_access_key()
            .user_name(&u)
            .send()
            .await
            .expect("key");
        iam.create_login_profile()
            .user_name(&u)
            .password("Correct-Horse-1")
            .send()
            .await
            .expect("password");
        iam.put_user_policy()
            .user_name(&u)
            .policy_name("own")
            .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*"}]}"#)
            .send()
            .await
            .expect("policy");
        iam.add_user_to_group()
            .group_name("staff")
            .user_name(&u)
            .send()
            .await
            .expect("group");
    }
    // One action at a time, so the order the store leases in is the order moto sees.
    let mut cfg = config(
        &moto,
        "[policies.default]\nretention_days = 0\n",
        json!({"match_by": "name"}),
    );
    if let Some(s) = cfg.connectors.get_mut(INSTANCE) {
        s.concurrency = Some(1);
    }
    let cs = connectors(&cfg);
    let now = Utc::now();
    let jobs = (0..n)
        .map(|i| job(i, typed(&format!("leaver-{i:02}")), now, Risk::High))
        .collect();
    let p = plan(&cfg, &cs, jobs).await;
    let before = moto.recorded().expect("recorded").len();
    let applied = apply(&cfg, cs, &p).await;
    assert_eq!(
        (applied.summary.failed, applied.summary.blocked),
        (0, 0),
        "{:?}",
        applied.summary
    );

    let calls = moto.recorded().expect("recorded");
    let contain = |c: &revoke_testkit::AwsCall| match c.action.as_str() {
        "PutUserPolicy" => c.param("PolicyName") == Some("RevokedQuarantine"),
        "UpdateAccessKey" => c.param("Status") == Some("Inactive"),
        "DeleteLoginProfile" => true,
        _ => false,
    };
    let delete = |c: &revoke_testkit::AwsCall| {
        matches!(
            c.action.as_str(),
            "DeleteAccessKey"
                | "DeleteUserPolicy"
                | "DetachUserPolicy"
                | "RemoveUserFromGroup"
                | "DeleteUser"
                | "DeactivateMFADevice"
                | "DeleteSigningCertificate"
                | "DeleteSSHPublicKey"
        )
    };
    let order: Vec<(usize, &str, &str)> = calls
        .iter()
        .enumerate()
        .skip(before)
        .filter(|(_, c)| contain(c) || delete(c))
        .map(|(i, c)| (i, c.action.as_str(), c.param("UserName").unwrap_or("")))
        .collect();
    let contains: Vec<usize> = order
        .iter()
        .filter(|(i, ..)| contain(&calls[*i]))
        .map(|(i, ..)| *i)
        .collect();
    assert_eq!(contains.len(), 3 * n, "{order:?}");
    let first_delete = order
        .iter()
        .find(|(i, ..)| delete(&calls[*i]))
        .map(|(i, ..)| *i)
        .expect("deletes");
    assert!(
        contains.iter().all(|i| *i < first_delete),
        "every contain mutation before the first delete: {order:?}"
    );
    assert_eq!(iam_order_violations(&calls), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_out_key_is_deleted_a_grace_period_after_its_rotation_not_after_the_job_date() {
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
        vec![job(
            1,
            typed("dana@example.org"),
            Utc::now() - chrono::Duration::days(8),
            Risk::Standard,
        )],
    )
    .await;
    let target = format!("{ACCT}/svc-build/{}", w.svc_key);
    let delete = p
        .actions
        .iter()
        .find(|a| a.kind.0 == iam_conn::DELETE_ROTATED_KEY && a.target == target)
        .expect("planned");
    assert_eq!(delete.grace, Some(Duration::from_secs(7 * 86_400)));
    let before = moto.recorded().expect("recorded").len();
    let applied = apply(&cfg, cs, &p).await;

    let rotated = applied.record(iam_conn::ROTATE_ACCESS_KEY, &target).await;
    assert_eq!(rotated.state, ActionState::Done, "{:?}", rotated.error);
    let at = rotated.finished_at.expect("finished");
    let later = applied.record(iam_conn::DELETE_ROTATED_KEY, &target).await;
    assert_eq!(later.state, ActionState::Pending);
    let due = later.action.not_before.expect("a due time");
    let grace = chrono::Duration::days(7);
    assert!(
        (due - (at + grace)).num_seconds().abs() <= 5,
        "due {due}, rotated {at}"
    );
    assert!(applied.summary.scheduled >= 1, "{:?}", applied.summary);
    let calls = moto.recorded().expect("recorded");
    let deletes: Vec<&str> = calls[before..]
        .iter()
        .filter(|c| c.action == "DeleteAccessKey")
        .filter_map(|c| c.param("AccessKeyId"))
        .collect();
    assert_eq!(
        deletes,
        Vec::<&str>::new(),
        "the old key stays for its grace"
    );
    assert!(key_status(&iam, "svc-build")
        .await
        .contains(&(w.svc_key.clone(), false)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_that_cannot_be_written_costs_one_key_made_and_deleted_and_no_retry() {
    let moto = Moto::start().expect("moto");
    let iam = iam_in(&moto, None).await;
    let w = seed_dana(&iam).await;
    let dir = tempfile::tempdir().expect("tmp");
    // The directory takes files, but where svc-build's secret goes there is a directory.
    std::fs::create_dir(dir.path().join(format!("{ACCT}.svc-build.json"))).expect("mkdir");
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
    let before = moto.recorded().expect("recorded").len();
    let applied = apply(&cfg, cs, &p).await;

    let r = applied
        .record(
            iam_conn::ROTATE_ACCESS_KEY,
            &format!("{ACCT}/svc-build/{}", w.svc_key),
        )
        .await;
    assert_eq!((r.state, r.attempts), (ActionState::Failed, 1));
    let e = r.error.expect("error");
    assert_eq!(e.code, "destination_unwritable");
    assert!(!e.is_retryable());
    let calls = moto.recorded().expect("recorded");
    let on_svc = mutations_on(&calls[before..], "svc-build");
    let created: Vec<&str> = calls[before..]
        .iter()
        .filter(|c| c.action == "CreateAccessKey")
        .map(|c| c.param("UserName").unwrap_or(""))
        .collect();
    assert_eq!(created, ["svc-build"], "{on_svc:?}");
    assert_eq!(on_svc.len(), 2, "{on_svc:?}");
    assert!(on_svc[1].starts_with("DeleteAccessKey AKIA"), "{on_svc:?}");
    assert_ne!(on_svc[1], format!("DeleteAccessKey {}", w.svc_key));
    // svc-build ends as it began: its one key, active.
    assert_eq!(
        key_status(&iam, "svc-build").await,
        [(w.svc_key.clone(), true)]
    );
    // Nothing but the directory is left in secrets_dir.
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, [format!("{ACCT}.svc-build.json")]);
}
