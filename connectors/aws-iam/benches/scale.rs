//! AWS IAM at scale: 200 leavers with every sub-resource moto supports, in one account.
//!
//! `cargo bench -p revoke-connector-aws-iam --bench scale` prints, against a real moto_server
//! (its request recorder counts the calls):
//! - discovery calls per leaver: the batch (one GetAccountAuthorizationDetails scan and one
//!   credential report for all, then six calls per user), against per-user discovery, against
//!   the floor of 10 discovery calls per leaver;
//! - apply calls per leaver: mutations (the floor: one per sub-resource, plus DeleteUser) and
//!   the reads apply makes before each write (GetUser to find the pinned UserId, then the
//!   target's own read);
//! - wall time of discovery and apply with `BENCH_LATENCY_MS` (default 20) added to every request
//!   by a relay in front of moto, at `read_concurrency` 8.
//!
//! Environment: `BENCH_LEAVERS` (200), `BENCH_LATENCY_MS` (20). Under `cargo test` it is a smoke
//! pass of 5 leavers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_iam::types::Tag;
use futures_util::stream::{self, StreamExt};
use revoke_connector_aws_iam::IamFactory;
use revoke_core::{
    Action, ActionId, Connector, ConnectorFactory, JobId, MemoryJournal, Outcome, Phase, Subject,
};
use revoke_testkit::moto::count_calls;
use revoke_testkit::Moto;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn env_or(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

/// A relay that waits `latency` before passing on each chunk a client sends: one round trip of
/// added latency per request on a kept-alive connection.
async fn relay(upstream: String, latency: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let up = upstream.clone();
            tokio::spawn(async move {
                let Ok(mut server) = TcpStream::connect(up.trim_start_matches("http://")).await
                else {
                    return;
                };
                let (mut cr, mut cw) = client.split();
                let (mut sr, mut sw) = server.split();
                let up = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = cr.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        tokio::time::sleep(latency).await;
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = sw.shutdown().await;
                };
                let down = async {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                    let _ = cw.shutdown().await;
                };
                tokio::join!(up, down);
            });
        }
    });
    format!("http://{addr}")
}

fn connector(endpoint: &str, extra: serde_json::Value) -> std::sync::Arc<dyn Connector> {
    let mut p = json!({
        "kind": "aws-iam",
        "endpoint_url": endpoint,
        "access_key_id": "testing",
        "secret_access_key": "testing",
        "match_by": "tag",
        "delete_users": true,
    });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        p[k] = v;
    }
    IamFactory.validate("connectors.aws", &p).expect("valid");
    IamFactory.build("aws", &p).expect("build")
}

fn leaver(i: usize) -> Subject {
    let mut s = Subject::new(format!("E{i:04}"));
    s.email = Some(format!("u{i:04}@example.com"));
    s
}

async fn seed(iam: &aws_sdk_iam::Client, leavers: usize) {
    iam.create_group()
        .group_name("staff")
        .send()
        .await
        .expect("group");
    let cert = include_str!("../tests/fixtures/signing-cert.pem");
    let ssh = include_str!("../tests/fixtures/ssh-key.pub")
        .trim()
        .to_string();
    stream::iter(0..leavers)
        .for_each_concurrent(8, |i| {
            let ssh = ssh.clone();
            async move {
                let u = format!("u{i:04}");
                let tag = Tag::builder()
                    .key("email")
                    .value(format!("{u}@example.com"))
                    .build()
                    .expect("tag");
                iam.create_user().user_name(&u).tags(tag).send().await.expect("user");
                for _ in 0..2 {
                    iam.create_access_key().user_name(&u).send().await.expect("key");
                }
                iam.create_login_profile()
                    .user_name(&u)
                    .password("Correct-Horse-1")
                    .send()
                    .await
                    .expect("login");
                let mfa = iam
                    .create_virtual_mfa_device()
                    .virtual_mfa_device_name(&u)
                    .send()
                    .await
                    .expect("mfa");
                let serial = mfa.virtual_mfa_device.expect("d").serial_number().to_string();
                iam.enable_mfa_device()
                    .user_name(&u)
                    .serial_number(serial)
                    .authentication_code1("123456")
                    .authentication_code2("654321")
                    .send()
                    .await
                    .expect("enable");
                iam.upload_ssh_public_key()
                    .user_name(&u)
                    .ssh_public_key_body(ssh)
                    .send()
                    .await
                    .expect("ssh");
                iam.upload_signing_certificate()
                    .user_name(&u)
                    .certificate_body(cert)
                    .send()
                    .await
                    .expect("cert");
                iam.put_user_policy()
                    .user_name(&u)
                    .policy_name("own-bucket")
                    .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#)
                    .send()
                    .await
                    .expect("inline");
                iam.attach_user_policy()
                    .user_name(&u)
                    .policy_arn("arn:aws:iam::aws:policy/ReadOnlyAccess")
                    .send()
                    .await
                    .expect("attach");
                iam.add_user_to_group()
                    .group_name("staff")
                    .user_name(&u)
                    .send()
                    .await
                    .expect("group");
            }
        })
        .await;
}

fn to_actions(
    c: &dyn Connector,
    subjects: &[Subject],
    ds: &[revoke_core::Discovery],
) -> Vec<Action> {
    let mut out = Vec::new();
    for (s, d) in subjects.iter().zip(ds) {
        let job = JobId(format!("job-{}", s.id));
        out.extend(
            Action::from_proposals(&job, "aws", d, c.plan(s, d))
                .expect("every proposal names a discovered account"),
        );
    }
    out
}

/// Applies in dependency order, `width` actions at a time, as the executor's workers would.
async fn apply(c: &dyn Connector, acts: &[Action], width: usize) -> usize {
    let mut done: HashMap<ActionId, bool> = HashMap::new();
    for phase in [Phase::Contain, Phase::Transfer, Phase::Delete] {
        loop {
            let ready: Vec<&Action> = acts
                .iter()
                .filter(|a| a.phase == phase && !done.contains_key(&a.id))
                .filter(|a| a.depends_on.iter().all(|d| done.get(d) == Some(&true)))
                .collect();
            if ready.is_empty() {
                break;
            }
            let results: Vec<(ActionId, bool)> = stream::iter(ready)
                .map(|a| async move {
                    let r = c.apply(a, &a.key, &MemoryJournal::new()).await;
                    if let Err(e) = &r {
                        eprintln!("{}: {e}", a.summary);
                    }
                    (
                        a.id.clone(),
                        matches!(r, Ok(Outcome::Done | Outcome::AlreadyDone)),
                    )
                })
                .buffer_unordered(width)
                .collect()
                .await;
            done.extend(results);
        }
    }
    done.values().filter(|ok| **ok).count()
}

fn main() {
    // `cargo bench` passes --bench; under `cargo test --benches` this is a 5-leaver smoke pass
    // without added latency, so CI keeps the benchmark working.
    let full = std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(full));
}

async fn run(full: bool) {
    let (leavers, latency) = if full {
        (
            env_or("BENCH_LEAVERS", 200) as usize,
            Duration::from_millis(env_or("BENCH_LATENCY_MS", 20)),
        )
    } else {
        (5, Duration::ZERO)
    };
    let moto = Moto::start().expect("moto");
    let direct = connector(&moto.endpoint(), json!({}));
    let conf = revoke_aws::sdk_config(
        &revoke_aws::AccessConfig::from_table(&json!({
            "endpoint_url": moto.endpoint(), "access_key_id": "testing", "secret_access_key": "testing"
        }))
        .expect("access"),
    )
    .await;
    let iam = aws_sdk_iam::Client::new(&conf);
    moto.start_recording().expect("rec");
    let t = Instant::now();
    seed(&iam, leavers).await;
    println!(
        "seeded {leavers} leavers with 12 sub-resources each in {:.1?}",
        t.elapsed()
    );
    let subjects: Vec<Subject> = (0..leavers).map(leaver).collect();

    // Per-user discovery, on up to ten leavers, by name.
    let since = |mark: usize| {
        let all = moto.recorded().expect("rec");
        count_calls(&all[mark.min(all.len())..])
    };
    let mark = moto.recorded().expect("rec").len();
    let per_user = connector(
        &moto.endpoint(),
        json!({"match_by": "name", "discovery": "per_user"}),
    );
    let sample = leavers.min(10);
    let named: Vec<Subject> = (0..sample)
        .map(|i| {
            let mut s = leaver(i);
            s.usernames.insert("aws".into(), format!("u{i:04}"));
            s
        })
        .collect();
    per_user
        .discover_many(&named)
        .await
        .expect("per-user discovery");
    let pu = since(mark);
    println!(
        "discovery, per user: {:.1} calls per leaver (floor 10 + 1 per extra key)",
        pu.reads as f64 / sample as f64
    );

    // Batch discovery of all leavers, without and with latency.
    let mark = moto.recorded().expect("rec").len();
    let t = Instant::now();
    let ds = direct
        .discover_many(&subjects)
        .await
        .expect("batch discovery");
    let batch_time = t.elapsed();
    let b = since(mark);
    assert!(ds.iter().all(|d| d.found));
    let findings: usize = ds.iter().map(|d| d.findings.len()).sum();
    println!(
        "discovery, batch: {} calls for {leavers} leavers = {:.2} per leaver ({findings} findings), {:.1?} without added latency",
        b.reads,
        b.reads as f64 / leavers as f64,
        batch_time
    );
    let slow_endpoint = relay(moto.endpoint(), latency).await;
    let slow = connector(&slow_endpoint, json!({}));
    let t = Instant::now();
    slow.discover_many(&subjects).await.expect("slow discovery");
    println!(
        "discovery, batch, {} ms added per request: {:.1?}",
        latency.as_millis(),
        t.elapsed()
    );

    // Apply everything (retention not waited for: every phase now), through the slow relay.
    let acts = to_actions(slow.as_ref(), &subjects, &ds);
    let per_leaver = acts.len() as f64 / leavers as f64;
    let mark = moto.recorded().expect("rec").len();
    let t = Instant::now();
    let ok = apply(slow.as_ref(), &acts, 8).await;
    let apply_time = t.elapsed();
    let a = since(mark);
    println!(
        "apply: {} actions ({per_leaver:.0} per leaver), {ok} succeeded; {} mutations = {:.1} per leaver (floor: 1 per sub-resource + quarantine put and delete + DeleteUser), {} reads before writes = {:.1} per leaver; {:.1?} with {} ms added, 8 at a time",
        acts.len(),
        a.mutations,
        a.mutations as f64 / leavers as f64,
        a.reads,
        a.reads as f64 / leavers as f64,
        apply_time,
        latency.as_millis()
    );
    let order = revoke_testkit::iam_order_violations(&moto.recorded().expect("rec"));
    println!("IAM order violations: {}", order.len());
    assert_eq!(ok, acts.len(), "every action succeeds");
    assert!(order.is_empty(), "{order:?}");
}
