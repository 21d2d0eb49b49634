//! Rotation of a service key the leaver owned, against moto: crashes at each step, IAM's limit
//! of two keys, and the secret kept out of logs, journals and results.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::*;
use revoke_connector_aws_iam as iam_conn;
use revoke_core::{
    Action, ConnectorError, ErrorClass, Journal, JournalEntry, MemoryJournal, Outcome,
};
use revoke_testkit::{iam_order_violations, Moto};
use serde_json::json;

/// A journal that dies (panics, as a killed process would stop) on recording `fail_on`.
#[derive(Debug)]
struct Crashing {
    inner: Arc<MemoryJournal>,
    fail_on: &'static str,
}

#[async_trait]
impl Journal for Crashing {
    async fn record(&self, name: &str, value: &str) -> Result<(), ConnectorError> {
        if name == self.fail_on {
            panic!("crash before recording {name}");
        }
        self.inner.record(name, value).await
    }
    async fn entries(&self) -> Result<Vec<JournalEntry>, ConnectorError> {
        self.inner.entries().await
    }
}

async fn rotation(moto: &Moto, dir: &std::path::Path) -> (Arc<dyn revoke_core::Connector>, Action) {
    let c = connector(
        moto,
        json!({"rotation_destination": "file", "secrets_dir": dir.to_str(), "delete_users": false}),
    );
    let d = c.discover(&alice()).await.expect("discover");
    let a = actions(c.as_ref(), &alice(), &d)
        .into_iter()
        .find(|a| a.kind.0 == iam_conn::ROTATE_ACCESS_KEY)
        .expect("a rotation is planned");
    (c, a)
}

async fn keys(iam: &aws_sdk_iam::Client) -> Vec<(String, bool)> {
    let o = iam
        .list_access_keys()
        .user_name("svc-ci")
        .send()
        .await
        .expect("keys");
    o.access_key_metadata()
        .iter()
        .map(|k| {
            (
                k.access_key_id().unwrap_or_default().to_string(),
                k.status() == Some(&aws_sdk_iam::types::StatusType::Active),
            )
        })
        .collect()
}

/// The most keys svc-ci ever had, replayed from the recorder.
fn most_keys(moto: &Moto) -> i32 {
    let (mut n, mut most) = (0, 0);
    for c in moto.recorded().expect("recorded") {
        if c.param("UserName") != Some("svc-ci") {
            continue;
        }
        match c.action.as_str() {
            "CreateAccessKey" => n += 1,
            "DeleteAccessKey" => n -= 1,
            _ => {}
        }
        most = most.max(n);
    }
    most
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_create_and_record_leaves_a_stray_that_the_next_attempt_deletes() {
    let moto = Moto::start().expect("moto");
    moto.start_recording().expect("record");
    let iam = iam_in(&moto, None).await;
    let seeded = seed(&iam).await;
    let dir = tempfile::tempdir().expect("tmp");
    let (c, a) = rotation(&moto, dir.path()).await;

    let journal = Arc::new(MemoryJournal::new());
    let crashing = Crashing {
        inner: journal.clone(),
        fail_on: "new_key",
    };
    let (c2, a2) = (c.clone(), a.clone());
    let died = tokio::spawn(async move { c2.apply(&a2, &a2.key, &crashing).await }).await;
    assert!(died.is_err(), "the first attempt should have crashed");
    let after_crash = keys(&iam).await;
    assert_eq!(
        after_crash.len(),
        2,
        "the stray key exists: {after_crash:?}"
    );
    let stray = after_crash
        .iter()
        .find(|(id, _)| id != &seeded.service_key)
        .map(|(id, _)| id.clone())
        .expect("stray");

    let r = c
        .apply(&a, &a.key, journal.as_ref())
        .await
        .expect("second attempt");
    assert_eq!(r, Outcome::Done);
    let now = keys(&iam).await;
    assert_eq!(now.len(), 2, "{now:?}");
    assert!(
        now.iter().all(|(id, _)| id != &stray),
        "the stray is deleted"
    );
    assert!(
        now.contains(&(seeded.service_key.clone(), false)),
        "old key inactive"
    );
    let new = now
        .iter()
        .find(|(_, active)| *active)
        .expect("new key")
        .0
        .clone();
    let file = std::fs::read_to_string(dir.path().join("123456789012.svc-ci.json")).expect("file");
    assert!(file.contains(&new));
    assert_eq!(
        journal
            .latest("stray_deleted")
            .await
            .expect("journal")
            .as_deref(),
        Some(stray.as_str())
    );
    assert!(most_keys(&moto) <= 2, "never more than IAM's two keys");
    assert_eq!(
        iam_order_violations(&moto.recorded().expect("rec")),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_whose_secret_was_never_written_is_discarded_and_the_rotation_redone() {
    let moto = Moto::start().expect("moto");
    let iam = iam_in(&moto, None).await;
    let seeded = seed(&iam).await;
    let dir = tempfile::tempdir().expect("tmp");
    let (c, a) = rotation(&moto, dir.path()).await;

    // An attempt died between recording the new key and writing its secret.
    let journal = MemoryJournal::new();
    journal
        .record("started", &chrono::Utc::now().to_rfc3339())
        .await
        .expect("j");
    let first = iam
        .create_access_key()
        .user_name("svc-ci")
        .send()
        .await
        .expect("key")
        .access_key
        .expect("key")
        .access_key_id()
        .to_string();
    journal.record("new_key", &first).await.expect("j");

    let r = c.apply(&a, &a.key, &journal).await.expect("second attempt");
    assert_eq!(r, Outcome::Done);
    assert_eq!(
        journal.latest("discarded").await.expect("j").as_deref(),
        Some(first.as_str())
    );
    let now = keys(&iam).await;
    assert_eq!(now.len(), 2);
    assert!(now.iter().all(|(id, _)| id != &first));
    assert!(now.contains(&(seeded.service_key.clone(), false)));
    // A third attempt finds the rotation complete.
    assert_eq!(
        c.apply(&a, &a.key, &journal).await.expect("third"),
        Outcome::AlreadyDone
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_destination_is_said_by_check_and_plan_and_makes_no_key() {
    let moto = Moto::start().expect("moto");
    let iam = iam_in(&moto, None).await;
    let seeded = seed(&iam).await;
    let dir = tempfile::tempdir().expect("tmp");
    let missing = dir.path().join("missing");
    let c = connector(
        &moto,
        json!({"rotation_destination": "file", "secrets_dir": missing.to_str(), "delete_users": false}),
    );
    let e = c.check().await.expect_err("check finds it");
    assert_eq!(
        (e.code.as_str(), e.is_retryable()),
        ("destination_unwritable", false)
    );
    assert!(e.message.contains("missing"), "{}", e.message);

    let d = c.discover(&alice()).await.expect("discover");
    let f = d
        .findings
        .iter()
        .find(|f| f.kind == iam_conn::DESTINATION_UNWRITABLE)
        .expect("a finding");
    assert_eq!(f.target, "123456789012/svc-ci");
    let a = actions(c.as_ref(), &alice(), &d)
        .into_iter()
        .find(|a| a.kind.0 == iam_conn::ROTATE_ACCESS_KEY)
        .expect("still planned, so the plan shows it");
    assert!(a.summary.contains("cannot be written"), "{}", a.summary);

    moto.clear_recording().expect("clear");
    let e = c
        .apply(&a, &a.key, &MemoryJournal::new())
        .await
        .expect_err("apply refuses");
    assert_eq!(
        (e.code.as_str(), e.is_retryable()),
        ("destination_unwritable", false)
    );
    let calls = moto.recorded().expect("recorded");
    assert!(
        calls.iter().all(|c| c.is_read()),
        "no key is made: {:?}",
        revoke_testkit::moto::actions(&calls)
    );
    assert_eq!(keys(&iam).await, [(seeded.service_key.clone(), true)]);

    // Fixed: check passes and the finding is gone.
    std::fs::create_dir(&missing).expect("mkdir");
    assert_eq!(c.check().await, Ok(()));
    let d = c.discover(&alice()).await.expect("discover");
    assert!(d
        .findings
        .iter()
        .all(|f| f.kind != iam_conn::DESTINATION_UNWRITABLE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_fails_after_the_key_is_made_deletes_that_key() {
    let moto = Moto::start().expect("moto");
    let iam = iam_in(&moto, None).await;
    let seeded = seed(&iam).await;
    let dir = tempfile::tempdir().expect("tmp");
    // The directory takes files (the probe passes), but the secret's place is a directory.
    std::fs::create_dir(dir.path().join("123456789012.svc-ci.json")).expect("mkdir");
    let (c, a) = rotation(&moto, dir.path()).await;
    moto.clear_recording().expect("clear");
    let journal = MemoryJournal::new();
    let e = c
        .apply(&a, &a.key, &journal)
        .await
        .expect_err("the write fails");
    assert_eq!(
        (e.code.as_str(), e.is_retryable()),
        ("destination_unwritable", false)
    );
    let made = journal
        .latest("new_key")
        .await
        .expect("j")
        .expect("journaled");
    assert_eq!(
        journal.latest("discarded").await.expect("j").as_deref(),
        Some(made.as_str())
    );
    let calls = moto.recorded().expect("recorded");
    let writes: Vec<(&str, Option<&str>)> = calls
        .iter()
        .filter(|c| !c.is_read())
        .map(|c| (c.action.as_str(), c.param("AccessKeyId")))
        .collect();
    assert_eq!(
        writes,
        [
            ("CreateAccessKey", None),
            ("DeleteAccessKey", Some(made.as_str()))
        ]
    );
    assert_eq!(keys(&iam).await, [(seeded.service_key.clone(), true)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_write_is_finished_not_redone() {
    let moto = Moto::start().expect("moto");
    let iam = iam_in(&moto, None).await;
    let seeded = seed(&iam).await;
    let dir = tempfile::tempdir().expect("tmp");
    let (c, a) = rotation(&moto, dir.path()).await;
    let journal = Arc::new(MemoryJournal::new());
    let crashing = Crashing {
        inner: journal.clone(),
        fail_on: "written",
    };
    let (c2, a2) = (c.clone(), a.clone());
    assert!(
        tokio::spawn(async move { c2.apply(&a2, &a2.key, &crashing).await })
            .await
            .is_err()
    );
    let new = journal
        .latest("new_key")
        .await
        .expect("j")
        .expect("recorded");
    let r = c
        .apply(&a, &a.key, journal.as_ref())
        .await
        .expect("second attempt");
    assert_eq!(r, Outcome::Done);
    // The key the destination already held is kept: consumers may have picked it up.
    let now = keys(&iam).await;
    assert!(now.contains(&(new.clone(), true)), "{now:?}");
    assert!(now.contains(&(seeded.service_key.clone(), false)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_keys_already_is_a_conflict_and_a_key_added_after_the_plan_too() {
    let moto = Moto::start().expect("moto");
    let iam = iam_in(&moto, None).await;
    seed(&iam).await;
    let dir = tempfile::tempdir().expect("tmp");
    let (c, a) = rotation(&moto, dir.path()).await;
    iam.create_access_key()
        .user_name("svc-ci")
        .send()
        .await
        .expect("second key");
    let e = c
        .apply(&a, &a.key, &MemoryJournal::new())
        .await
        .expect_err("a key nobody planned");
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Conflict, "unexpected_key")
    );

    // Planned with both keys: IAM's limit, said before anything is created.
    let (c, a) = rotation(&moto, dir.path()).await;
    assert!(a.summary.contains("two keys"), "{}", a.summary);
    let e = c
        .apply(&a, &a.key, &MemoryJournal::new())
        .await
        .expect_err("limit");
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Conflict, "two_keys")
    );
    assert_eq!(keys(&iam).await.len(), 2);
}

/// Collects everything tracing writes, at every level.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_reaches_the_destination_and_nothing_else() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // With one dispatcher registered, tracing caches a callsite's interest from the default of
    // whichever thread reaches it first: a sibling test without a subscriber would cache
    // "never" for the connector's events. A second live dispatcher makes tracing ask every
    // dispatcher, the capture included (tokio-rs/tracing#3611).
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());

    let moto = Moto::start().expect("moto");
    let iam = iam_in(&moto, None).await;
    seed(&iam).await;
    let dir = tempfile::tempdir().expect("tmp");
    let (c, a) = rotation(&moto, dir.path()).await;
    let journal = MemoryJournal::new();
    let outcome = c.apply(&a, &a.key, &journal).await.expect("rotate");
    let verdict = c.verify(&a).await.expect("verify");
    assert_eq!(verdict, revoke_core::Verdict::Confirmed);

    let path = dir.path().join("123456789012.svc-ci.json");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("file")).expect("json");
    let secret = doc["SecretAccessKey"].as_str().expect("secret").to_string();
    assert!(secret.len() >= 20);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777,
        0o600
    );

    let logs = String::from_utf8_lossy(&captured.0.lock().expect("lock")).to_string();
    assert!(logs.contains("rotated"), "the capture works: {logs}");
    assert!(!logs.contains(&secret), "the secret is in the logs");
    let entries = format!("{:?}", journal.entries().await.expect("entries"));
    assert!(!entries.contains(&secret));
    assert!(!format!("{outcome:?} {verdict:?} {a:?}").contains(&secret));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_manager_holds_the_new_key() {
    let moto = Moto::start().expect("moto");
    let iam = iam_in(&moto, None).await;
    seed(&iam).await;
    let c = connector(
        &moto,
        json!({"rotation_destination": "secrets_manager", "delete_users": false}),
    );
    let d = c.discover(&alice()).await.expect("discover");
    let a = actions(c.as_ref(), &alice(), &d)
        .into_iter()
        .find(|a| a.kind.0 == iam_conn::ROTATE_ACCESS_KEY)
        .expect("rotation");
    assert_eq!(
        a.params["destination"],
        "secrets_manager:revoked/123456789012/svc-ci"
    );
    let journal = MemoryJournal::new();
    assert_eq!(
        c.apply(&a, &a.key, &journal).await.expect("rotate"),
        Outcome::Done
    );
    assert_eq!(
        c.verify(&a).await.expect("verify"),
        revoke_core::Verdict::Confirmed
    );
    let new = journal
        .latest("written")
        .await
        .expect("j")
        .expect("written");
    let conf = revoke_aws::sdk_config(
        &revoke_aws::AccessConfig::from_table(&params(&moto, json!({}))).expect("access"),
    )
    .await;
    let sm = aws_sdk_secretsmanager::Client::new(&conf);
    let v = sm
        .get_secret_value()
        .secret_id("revoked/123456789012/svc-ci")
        .send()
        .await
        .expect("secret");
    assert!(v.secret_string().unwrap_or_default().contains(&new));
}
