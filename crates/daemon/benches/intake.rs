//! The daemon over loopback, on its default SQLite store: signed-webhook intake throughput and
//! latency (every accepted event is durable: it is committed and the write-ahead log synced
//! before the answer), idle RSS of `revoked`, and the time from a high-risk webhook to every
//! contain action done against slapd, for a webhook sent alone and for bursts of 20 at once.
//!
//! `cargo bench -p revoked --bench intake` sends 5,000 events from 16 concurrent senders, then
//! 10 lone high-risk terminations and 3 bursts of 20; `-- --events N --senders S --bursts B`
//! changes that. Under `cargo test --benches` it sends 40 events, 2 lone terminations and one
//! burst, so CI keeps it working.
//!
//! What bounds intake is measured, not guessed: the sender runs alone first, against a server
//! that answers 202 and does nothing else (the rate the sender can reach on this machine), and
//! each intake run reports the CPU the daemon and the sender spent, and what the daemon's group
//! commit did (batches, events per batch, time in the store per event, from its log). The
//! sender writes pre-signed HTTP/1.1 requests on keep-alive connections (signing is done before
//! the clock starts); the old sender (reqwest's blocking client, signing as it goes) is measured
//! alone too, for comparison.
//!
//! `-- --baseline PATH` (or `REVOKED_BASELINE=PATH`) also runs another `revoked` binary (a build
//! of an earlier commit) on the same events, alternating with this build for `--rounds N`
//! rounds (default 1), and prints both side by side; its time to contain is measured too, on
//! leavers of its own.

#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use revoke_testkit::{Slapd, DEMO_LDIF};
use serde_json::json;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_string)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// User plus system CPU time a process has spent so far (`self` for this one), from
/// /proc/PID/stat.
fn cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the line, 11 and 12 after the command name.
    let ticks = fields.get(11).unwrap_or(&0) + fields.get(12).unwrap_or(&0);
    Duration::from_secs_f64(ticks as f64 / clock_ticks())
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let events: usize = bench_arg("--events", if benching { 5000 } else { 40 });
    let senders: usize = bench_arg("--senders", if benching { 16 } else { 8 }).max(1);
    let bursts: usize = bench_arg("--bursts", if benching { 3 } else { 1 });
    let rounds: usize = bench_arg("--rounds", 1).max(1);
    let baseline: Option<PathBuf> = bench_arg("--baseline", String::new())
        .parse::<PathBuf>()
        .ok()
        .filter(|p| !p.as_os_str().is_empty())
        .or_else(|| std::env::var_os("REVOKED_BASELINE").map(PathBuf::from));
    let alone = if benching { 10 } else { 2 };
    let this_build = PathBuf::from(env!("CARGO_BIN_EXE_revoked"));

    let slapd = Slapd::start().expect("slapd starts");
    slapd.add_ldif(DEMO_LDIF).unwrap();
    // Leavers for the time-to-contain runs: one set for this build, one for a baseline.
    slapd
        .add_ldif(&leavers_ldif(2 * (alone + 20 * bursts)))
        .unwrap();

    // The sender alone: the most this machine lets it send, with nothing behind the answers.
    let raw_alone = sender_alone(events, senders, Sender::Raw);
    let reqwest_alone = sender_alone(events, senders, Sender::Reqwest);

    let mut runs: Vec<(String, IntakeRun)> = Vec::new();
    for _ in 0..rounds {
        if let Some(old) = &baseline {
            runs.push((
                "baseline, old sender".into(),
                intake_run(&slapd, old, events, senders, Sender::Reqwest),
            ));
            runs.push((
                "baseline".into(),
                intake_run(&slapd, old, events, senders, Sender::Raw),
            ));
        }
        runs.push((
            "this build".into(),
            intake_run(&slapd, &this_build, events, senders, Sender::Raw),
        ));
    }

    // Time to contain, each build on its own leavers (a second run on the same ones would find
    // them contained already).
    let per_run = alone + 20 * bursts;
    let mut contained: Vec<(String, Contained)> = Vec::new();
    if let Some(old) = &baseline {
        contained.push((
            "baseline".into(),
            contain_run(&slapd, old, alone, bursts, per_run),
        ));
    }
    contained.push((
        "this build".into(),
        contain_run(&slapd, &this_build, alone, bursts, 0),
    ));

    println!(
        "sender alone against a server that only answers 202 ({events} requests, {senders} connections): \
         pre-signed keep-alive HTTP/1.1 {:.0}/s at {:.0}% of one core; reqwest blocking clients, signing as they go, {:.0}/s at {:.0}% of one core",
        raw_alone.rate(),
        raw_alone.sender_cores() * 100.0,
        reqwest_alone.rate(),
        reqwest_alone.sender_cores() * 100.0,
    );
    println!(
        "{:<22} {:>9} {:>8} {:>8} {:>8} {:>12} {:>12} {:>8} {:>10} {:>11} {:>13} {:>9}",
        "intake (one run)",
        "events/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "daemon core%",
        "sender core%",
        "batches",
        "ev/batch",
        "store µs/ev",
        "sync ms/batch",
        "RSS MiB",
    );
    for (label, r) in &runs {
        println!(
            "{label:<22} {:>9.0} {:>8.1} {:>8.1} {:>8.1} {:>12.0} {:>12.0} {:>8} {:>10.1} {:>11.0} {:>13} {:>9.1}",
            r.sent.rate(),
            ms(percentile(&r.sent.lat, 0.5)),
            ms(percentile(&r.sent.lat, 0.99)),
            ms(percentile(&r.sent.lat, 1.0)),
            r.daemon_cores() * 100.0,
            r.sent.sender_cores() * 100.0,
            r.batches.count,
            r.batches.per_batch(),
            r.batches.store_us_per_event(),
            if r.batches.sync_us > 0 {
                format!("{:.2}", r.batches.sync_ms_per_batch())
            } else {
                "in store".to_string()
            },
            r.busy_rss as f64 / 1024.0,
        );
    }
    if let Some((_, r)) = runs.iter().rev().find(|(l, _)| l == "this build") {
        println!(
            "intake: {} signed events from {senders} senders in {:.2}s = {:.0} events/s",
            r.sent.lat.len(),
            r.sent.elapsed.as_secs_f64(),
            r.sent.rate()
        );
        println!(
            "intake latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            ms(percentile(&r.sent.lat, 0.5)),
            ms(percentile(&r.sent.lat, 0.99)),
            ms(percentile(&r.sent.lat, 1.0))
        );
        println!(
            "revoked RSS: idle {:.1} MiB, after intake {:.1} MiB",
            r.idle_rss as f64 / 1024.0,
            r.busy_rss as f64 / 1024.0
        );
    }
    for (label, c) in &contained {
        if let Some(first) = c.first {
            println!("high-risk webhook to every contain action done (LDAP stand-in, {label}): {:.0} ms (client-observed, 5 ms polling)", ms(first));
        }
        println!(
            "time to contain ({label}; daemon's own times, received -> last contain action done): alone p50 {:.0} ms, p99 {:.0} ms over {}; bursts of 20 at once p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms over {} (goal: p99 under 100 ms)",
            ms(percentile(&c.lone, 0.5)),
            ms(percentile(&c.lone, 0.99)),
            c.lone.len(),
            ms(percentile(&c.burst, 0.5)),
            ms(percentile(&c.burst, 0.99)),
            ms(percentile(&c.burst, 1.0)),
            c.burst.len()
        );
    }
}

/// Times to contain high-risk leavers through one daemon.
struct Contained {
    /// carol's, from the client's side (this build only).
    first: Option<Duration>,
    lone: Vec<Duration>,
    burst: Vec<Duration>,
}

/// A fresh daemon (`bin`) with a guard that never holds (bursts are what this measures): first
/// (without a user offset) carol alone, client-observed; then `alone` lone high-risk
/// terminations one after another and `bursts` bursts of 20 at once, of the leavers from
/// `u{first_user}` on, each timed by the daemon (received -> last contain action finished).
fn contain_run(
    slapd: &Slapd,
    bin: &Path,
    alone: usize,
    bursts: usize,
    first_user: usize,
) -> Contained {
    let c = client();
    let setup = Setup::new(
        slapd,
        None,
        "[guard]\nmax_jobs = 100000\nwindow_secs = 60\n",
    );
    let d = start_daemon(bin, &setup.config, &setup.dir.path().join("revoked.log"));
    let mut first = None;
    if first_user == 0 {
        let t = Instant::now();
        let (s, a) = c.deliver(
            &d,
            &Delivery::termination(json!({ "username": "carol", "high_risk": true })),
            WEBHOOK_SECRET,
        );
        assert_eq!(s, 202, "{a}");
        let job = a["jobs"][0]["job_id"].as_str().unwrap().to_string();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let j = c.get_json(&d, &format!("/api/v1/jobs/{job}"));
            if phases_done(&j, &["contain"]) {
                break;
            }
            assert!(Instant::now() < deadline, "carol was never contained");
            std::thread::sleep(Duration::from_millis(5));
        }
        first = Some(t.elapsed());
    }
    let mut next_user = first_user;
    let mut lone = Vec::new();
    for _ in 0..alone {
        let user = format!("u{next_user}");
        next_user += 1;
        lone.extend(contain_times(&c, &d, &[user]));
    }
    let mut burst = Vec::new();
    for _ in 0..bursts {
        let users: Vec<String> = (next_user..next_user + 20)
            .map(|i| format!("u{i}"))
            .collect();
        next_user += 20;
        burst.extend(contain_times(&c, &d, &users));
    }
    lone.sort();
    burst.sort();
    assert!(d.terminate().success());
    Contained { first, lone, burst }
}

/// How the bench sends its webhooks.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Sender {
    /// Requests signed before the clock starts, written as bytes on one keep-alive connection
    /// per sender thread, answers read by Content-Length.
    Raw,
    /// One reqwest blocking client per sender thread (each with a runtime thread of its own),
    /// signing each request as it goes: the bench's sender until this one.
    Reqwest,
}

/// One sending of `events` signed terminations from `senders` threads.
struct Sent {
    lat: Vec<Duration>,
    elapsed: Duration,
    sender_cpu: Duration,
}

impl Sent {
    fn rate(&self) -> f64 {
        self.lat.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn sender_cores(&self) -> f64 {
        self.sender_cpu.as_secs_f64() / self.elapsed.as_secs_f64()
    }
}

/// What the daemon's group commit did, from its `intake batch committed` log lines.
#[derive(Debug, Default)]
struct Batches {
    count: u64,
    jobs: u64,
    store_us: u64,
    /// Only in builds that sync each batch apart from its commit.
    sync_us: u64,
}

impl Batches {
    fn per_batch(&self) -> f64 {
        self.jobs as f64 / self.count.max(1) as f64
    }

    fn store_us_per_event(&self) -> f64 {
        self.store_us as f64 / self.jobs.max(1) as f64
    }

    fn sync_ms_per_batch(&self) -> f64 {
        self.sync_us as f64 / 1000.0 / self.count.max(1) as f64
    }

    fn from_log(log: &str) -> Batches {
        let mut b = Batches::default();
        for line in log.lines().filter(|l| l.contains("intake batch committed")) {
            b.count += 1;
            b.jobs += field(line, "jobs=").unwrap_or(0);
            b.store_us += field(line, "store_us=").unwrap_or(0);
            b.sync_us += field(line, "sync_us=").unwrap_or(0);
        }
        b
    }
}

/// The number after `name` in a log line.
fn field(line: &str, name: &str) -> Option<u64> {
    let rest = &line[line.find(name)? + name.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

struct IntakeRun {
    sent: Sent,
    daemon_cpu: Duration,
    idle_rss: u64,
    busy_rss: u64,
    batches: Batches,
}

impl IntakeRun {
    fn daemon_cores(&self) -> f64 {
        self.daemon_cpu.as_secs_f64() / self.sent.elapsed.as_secs_f64()
    }
}

/// `events` distinct signed terminations into a fresh daemon (`bin`) with its own SQLite store;
/// every one must be answered 202 and be a job in the store afterwards.
fn intake_run(
    slapd: &Slapd,
    bin: &Path,
    events: usize,
    senders: usize,
    sender: Sender,
) -> IntakeRun {
    // Intake only: hold every job (guard at 1) so the benchmark measures intake, not offboarding.
    let setup = Setup::new(slapd, None, "[guard]\nmax_jobs = 1\nwindow_secs = 86400\n");
    let log = setup.dir.path().join("revoked.log");
    let d = start_daemon(bin, &setup.config, &log);
    std::thread::sleep(Duration::from_secs(1));
    let idle_rss = rss_kib(d.child.id());
    let pid = d.child.id().to_string();
    let daemon_before = cpu_time(&pid);
    let sent = send(&d.base, events, senders, sender);
    let daemon_cpu = cpu_time(&pid).saturating_sub(daemon_before);
    let c = client();
    // Durable: every accepted event is a job in the store.
    let listed = c
        .get_json(&d, "/api/v1/jobs?limit=1000")
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        listed,
        sent.lat.len().min(1000),
        "every accepted event is recorded"
    );
    let busy_rss = rss_kib(d.child.id());
    let status = d.terminate();
    assert!(status.success());
    IntakeRun {
        batches: Batches::from_log(&std::fs::read_to_string(&log).unwrap_or_default()),
        sent,
        daemon_cpu,
        idle_rss,
        busy_rss,
    }
}

/// `revoked` from `bin` (this build's or a baseline's), started as `Daemon::start` starts it.
fn start_daemon(bin: &Path, config: &Path, log: &Path) -> Daemon {
    let err = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err)
        // `REVOKED_BENCH_LOG` changes the daemon's log filter (the batch figures need
        // `revoked::intake_writer=debug`).
        .env(
            "RUST_LOG",
            std::env::var("REVOKED_BENCH_LOG")
                .unwrap_or_else(|_| "info,revoke_engine=debug,revoked=debug".to_string()),
        )
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("NOTIFY_SOCKET")
        .spawn()
        .unwrap_or_else(|e| panic!("{} starts: {e}", bin.display()));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    let base = first
        .strip_prefix("revoked listening on ")
        .unwrap_or_else(|| {
            panic!(
                "unexpected first line {first:?}; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            )
        })
        .to_string();
    Daemon {
        child,
        base,
        log: log.to_path_buf(),
    }
}

/// The sender against a server that answers every request 202 at once.
fn sender_alone(events: usize, senders: usize, sender: Sender) -> Sent {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || answer_202(stream));
        }
    });
    send(&format!("http://{addr}"), events, senders, sender)
}

/// Reads requests off one connection and answers each 202 with a small JSON body.
fn answer_202(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut out = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    loop {
        let mut len = 0usize;
        let mut first = true;
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" && !first {
                break;
            }
            first = false;
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let answer = b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"jobs\":[]}";
        if out.write_all(answer).is_err() {
            return;
        }
    }
}

/// Sends `events` distinct signed terminations to `base` from `senders` threads and returns
/// each one's latency (every answer must be 202), the wall time and this process's CPU time.
fn send(base: &str, events: usize, senders: usize, sender: Sender) -> Sent {
    let per = events.div_ceil(senders);
    let addr: SocketAddr = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let delivery = |n: usize| {
        Delivery::termination(json!({
            "employee_id": format!("E{n}-{}", &run[..8]),
            "email": format!("user{n}@example.org"),
        }))
    };
    // Raw: every request signed and written out before the clock starts.
    let prepared: Vec<Vec<Vec<u8>>> = match sender {
        Sender::Raw => (0..senders)
            .map(|s| {
                (0..per)
                    .map(|i| {
                        let d = delivery(s * per + i);
                        format!(
                            "POST /intake/hr HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
                             webhook-id: {}\r\nwebhook-timestamp: {}\r\nwebhook-signature: {}\r\n\
                             content-length: {}\r\n\r\n{}",
                            d.id,
                            d.timestamp,
                            d.signature(WEBHOOK_SECRET),
                            d.body.len(),
                            d.body
                        )
                        .into_bytes()
                    })
                    .collect()
            })
            .collect(),
        Sender::Reqwest => vec![Vec::new(); senders],
    };
    let cpu_before = cpu_time("self");
    let started = Instant::now();
    let lat: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = prepared
            .iter()
            .enumerate()
            .map(|(s, requests)| {
                let delivery = &delivery;
                scope.spawn(move || match sender {
                    Sender::Raw => send_raw(addr, requests),
                    Sender::Reqwest => {
                        let c = client();
                        (0..per)
                            .map(|i| {
                                let d = delivery(s * per + i);
                                let t = Instant::now();
                                let r = c
                                    .http
                                    .post(format!("http://{addr}/intake/hr"))
                                    .header("webhook-id", &d.id)
                                    .header("webhook-timestamp", d.timestamp.to_string())
                                    .header("webhook-signature", d.signature(WEBHOOK_SECRET))
                                    .body(d.body.clone())
                                    .send()
                                    .unwrap();
                                assert_eq!(r.status().as_u16(), 202);
                                let _ = r.bytes();
                                t.elapsed()
                            })
                            .collect()
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let elapsed = started.elapsed();
    let sender_cpu = cpu_time("self").saturating_sub(cpu_before);
    let mut lat = lat;
    lat.sort();
    Sent {
        lat,
        elapsed,
        sender_cpu,
    }
}

/// Writes each request on one keep-alive connection and reads its answer, which must be 202.
fn send_raw(addr: SocketAddr, requests: &[Vec<u8>]) -> Vec<Duration> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut out = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    let mut lat = Vec::with_capacity(requests.len());
    for req in requests {
        let t = Instant::now();
        out.write_all(req).unwrap();
        line.clear();
        r.read_line(&mut line).unwrap();
        let status = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut len = 0usize;
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap();
                }
                assert!(
                    !(k.eq_ignore_ascii_case("transfer-encoding")),
                    "expected a Content-Length answer, found {line:?}"
                );
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        assert_eq!(
            status,
            "202",
            "answer body: {}",
            String::from_utf8_lossy(&body)
        );
        lat.push(t.elapsed());
    }
    lat
}

/// Sends a high-risk termination for each of `users` at once (one thread each), waits until every
/// one is contained and returns each job's time from received to its last contain action done,
/// as the daemon recorded them.
fn contain_times(c: &Client, d: &Daemon, users: &[String]) -> Vec<Duration> {
    let jobs: Vec<String> = std::thread::scope(|scope| {
        let sent: Vec<_> = users
            .iter()
            .map(|u| {
                scope.spawn(move || {
                    let c = client();
                    let (s, a) = c.deliver(
                        d,
                        &Delivery::termination(json!({ "username": u, "high_risk": true })),
                        WEBHOOK_SECRET,
                    );
                    assert_eq!(s, 202, "{a}");
                    a["jobs"][0]["job_id"].as_str().unwrap().to_string()
                })
            })
            .collect();
        sent.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    jobs.iter()
        .map(|job| loop {
            let j = c.get_json(d, &format!("/api/v1/jobs/{job}"));
            if phases_done(&j, &["contain"]) {
                let received = time(&j["received_at"]);
                let contained = j["actions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|a| a["phase"] == "contain")
                    .map(|a| time(&a["finished_at"]))
                    .max()
                    .unwrap();
                break (contained - received).to_std().unwrap_or_default();
            }
            assert!(
                Instant::now() < deadline,
                "job {job} was never contained: {j}"
            );
            std::thread::sleep(Duration::from_millis(20));
        })
        .collect()
}

fn time(v: &serde_json::Value) -> chrono::DateTime<chrono::Utc> {
    v.as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(|| panic!("expected an RFC 3339 time, found {v}"))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
