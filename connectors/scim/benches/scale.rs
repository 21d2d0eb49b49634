//! SCIM at scale: 200 leavers in one app (scim2-server), each in one shared group.
//!
//! `cargo bench -p revoke-connector-scim --bench scale` prints the HTTP calls per leaver of
//! discovery and of apply, by method, against the floor (1 lookup + 1 PATCH + 1 DELETE per
//! leaver), and wall time with `BENCH_LATENCY_MS` (default 20) added to each request by a relay
//! that also counts them. Under `cargo test` it is a 5-leaver smoke pass without latency.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use revoke_connector_scim::{ScimFactory, KIND};
use revoke_core::{Action, ConnectorFactory, JobId, MemoryJournal, Outcome, Phase, Subject};
use revoke_testkit::Scim2Server;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Counts = Arc<Mutex<BTreeMap<String, usize>>>;

static RETRIES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Passes requests on after `latency`, counting them by method.
async fn relay(upstream: String, latency: Duration, counts: Counts) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let (up, counts) = (upstream.clone(), counts.clone());
            tokio::spawn(async move {
                let Ok(mut server) = TcpStream::connect(&up).await else {
                    return;
                };
                let (mut cr, mut cw) = client.split();
                let (mut sr, mut sw) = server.split();
                let forward = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = cr.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        let head = String::from_utf8_lossy(&buf[..n.min(8)]).to_string();
                        for m in ["GET ", "POST ", "PATCH ", "PUT ", "DELETE "] {
                            if head.starts_with(m) {
                                *counts
                                    .lock()
                                    .expect("lock")
                                    .entry(m.trim().into())
                                    .or_default() += 1;
                            }
                        }
                        tokio::time::sleep(latency).await;
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = sw.shutdown().await;
                };
                let back = async {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                    let _ = cw.shutdown().await;
                };
                tokio::join!(forward, back);
            });
        }
    });
    format!("http://{addr}")
}

fn take(counts: &Counts) -> BTreeMap<String, usize> {
    std::mem::take(&mut *counts.lock().expect("lock"))
}

async fn seed(url: &str, leavers: usize) {
    let http = revoke_http::client(std::time::Duration::from_secs(60)).expect("http");
    let post = |path: &'static str, body: Value| {
        let http = http.clone();
        let url = format!("{url}{path}");
        async move {
            let r = http
                .post(url)
                .bearer_auth(Scim2Server::TOKEN)
                .header("Content-Type", "application/scim+json")
                .body(body.to_string())
                .send()
                .await
                .expect("post");
            assert_eq!(r.status().as_u16(), 201);
            r.json::<Value>().await.expect("json")["id"]
                .as_str()
                .expect("id")
                .to_string()
        }
    };
    let ids: Vec<String> = stream::iter(0..leavers)
        .map(|i| {
            post(
                "/Users",
                json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": format!("u{i:04}"), "active": true,
                    "emails": [{"value": format!("u{i:04}@example.com"), "primary": true}],
                }),
            )
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let members: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
    post(
        "/Groups",
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "staff", "members": members,
        }),
    )
    .await;
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(full));
}

async fn run(full: bool) {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (leavers, latency) = if full {
        (
            env("BENCH_LEAVERS", 200) as usize,
            Duration::from_millis(env("BENCH_LATENCY_MS", 20)),
        )
    } else {
        (5, Duration::ZERO)
    };
    let server = Scim2Server::start().expect("scim2-server");
    let direct = server.tenant_url("bench");
    let t = Instant::now();
    seed(&direct, leavers).await;
    println!("seeded {leavers} users in one group in {:.1?}", t.elapsed());

    let counts: Counts = Arc::default();
    let upstream = direct
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("host")
        .to_string();
    let base = relay(upstream, latency, counts.clone()).await;
    let path = direct.split_once("127.0.0.1").map(|(_, p)| p).unwrap_or("");
    let path = &path[path.find('/').unwrap_or(0)..];
    let url = format!("{base}{path}");
    let p =
        json!({"kind": KIND, "base_url": url, "token": Scim2Server::TOKEN, "read_concurrency": 8});
    ScimFactory.validate("connectors.app", &p).expect("valid");
    let c = ScimFactory.build("app", &p).expect("build");

    let subjects: Vec<Subject> = (0..leavers)
        .map(|i| {
            let mut s = Subject::new(format!("E{i:04}"));
            s.email = Some(format!("u{i:04}@example.com"));
            s.usernames.insert("app".into(), format!("u{i:04}"));
            s
        })
        .collect();
    let t = Instant::now();
    let ds = c.discover_many(&subjects).await.expect("discover");
    let took = t.elapsed();
    let d = take(&counts);
    let total: usize = d.values().sum();
    assert!(ds.iter().all(|d| d.found));
    println!(
        "discovery: {total} calls for {leavers} = {:.2} per leaver {d:?} (floor 1 lookup); {took:.1?} with {} ms added",
        total as f64 / leavers as f64,
        latency.as_millis()
    );

    let mut acts = Vec::new();
    for (s, d) in subjects.iter().zip(&ds) {
        let job = JobId(format!("job-{}", s.id));
        acts.extend(
            Action::from_proposals(&job, "app", d, c.plan(s, d))
                .expect("the proposals name discovered accounts"),
        );
    }
    let t = Instant::now();
    let mut ok = 0;
    for phase in [Phase::Contain, Phase::Revoke, Phase::Delete] {
        let batch: Vec<&Action> = acts.iter().filter(|a| a.phase == phase).collect();
        let results: Vec<bool> = stream::iter(batch)
            .map(|a| {
                let c = c.clone();
                async move {
                    // As the executor would: a retryable failure (a 412 race on the shared
                    // group) is tried again.
                    for _ in 0..5 {
                        match c.apply(a, &a.key, &MemoryJournal::new()).await {
                            Ok(Outcome::Done | Outcome::AlreadyDone) => return true,
                            Err(e) if e.is_retryable() => {
                                RETRIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                            other => {
                                eprintln!("{}: {other:?}", a.summary);
                                return false;
                            }
                        }
                    }
                    false
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        ok += results.iter().filter(|r| **r).count();
    }
    let took = t.elapsed();
    let a = take(&counts);
    let writes = a.get("PATCH").copied().unwrap_or(0) + a.get("DELETE").copied().unwrap_or(0);
    println!(
        "apply: {} actions ({:.0} per leaver), {ok} succeeded; {a:?} = {:.2} writes and {:.2} reads per leaver (floor: 1 PATCH + 1 DELETE, +1 PATCH per group kept); {took:.1?} with {} ms added, 8 at a time",
        acts.len(),
        acts.len() as f64 / leavers as f64,
        writes as f64 / leavers as f64,
        a.get("GET").copied().unwrap_or(0) as f64 / leavers as f64,
        latency.as_millis()
    );
    println!(
        "retries after a 412 race on the shared group: {}",
        RETRIES.load(std::sync::atomic::Ordering::Relaxed)
    );
    assert_eq!(ok, acts.len(), "every action succeeds");
}
