//! A real `revoked` process (the built binary) with a real slapd behind it, and a client that
//! signs webhooks the way a Standard Webhooks sender does.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use revoke_testkit::Slapd;
use sha2::{Digest, Sha256};

pub const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const OPERATOR_TOKEN: &str = "rvk_operator-token-for-tests-0123456789";
pub const READ_TOKEN: &str = "rvk_read-token-for-tests-9876543210";
pub const BIND_PASSWORD: &str = "secret";

pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Everything a daemon under test needs: a directory, a config file, a store URL.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Setup {
    /// A config for one slapd; `store_url` None = the default SQLite file in the data dir;
    /// `extra` is appended (more sections, or keys of the last one).
    pub fn new(slapd: &Slapd, store_url: Option<&str>, extra: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), format!("{BIND_PASSWORD}\n")).unwrap();
        std::fs::write(dir.path().join("whsec"), format!("{WEBHOOK_SECRET}\n")).unwrap();
        let store = store_url
            .map(|u| format!("[store]\nurl = \"{u}\"\n"))
            .unwrap_or_default();
        let config = dir.path().join("revoke.toml");
        std::fs::write(
            &config,
            format!(
                r#"data_dir = "{data}"
{store}
[daemon]
listen = "127.0.0.1:0"
poll_ms = 50
shutdown_grace_secs = 10
[executor]
lease_secs = 2
[executor.retry]
base_ms = 20
cap_ms = 200
max_attempts = 3
[api.tokens.ops]
sha256 = "{ops}"
scope = "operator"
[api.tokens.viewer]
sha256 = "{viewer}"
scope = "read"
[intake.hr]
kind = "standard_webhooks"
secret_file = "{whsec}"
max_body_bytes = 4096
[protected]
accounts = ["breakglass"]
domains = ["example.org"]
[connectors.corp-ldap]
kind = "ldap"
url = "{url}"
bind_dn = "{root}"
bind_password_file = "{pw}"
user_base_dn = "ou=people,dc=example,dc=org"
group_base_dn = "ou=groups,dc=example,dc=org"
group_placeholder_dn = "{placeholder}"
delete_entry = true
{extra}
"#,
                data = dir.path().join("data").display(),
                ops = sha256_hex(OPERATOR_TOKEN),
                viewer = sha256_hex(READ_TOKEN),
                whsec = dir.path().join("whsec").display(),
                url = slapd.url(),
                root = Slapd::ROOT_DN,
                pw = dir.path().join("pw").display(),
                placeholder = Slapd::PLACEHOLDER,
            ),
        )
        .unwrap();
        Setup { dir, config }
    }

    pub fn db_url(&self) -> String {
        format!(
            "sqlite://{}",
            self.dir.path().join("data").join("revoked.db").display()
        )
    }
}

/// One running `revoked` process; killed on drop.
pub struct Daemon {
    pub child: Child,
    pub base: String,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(config: &Path, log: &Path) -> Daemon {
        Self::start_with(config, log, &[])
    }

    pub fn start_with(config: &Path, log: &Path, env: &[(&str, &str)]) -> Daemon {
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_revoked"));
        cmd.arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .env("RUST_LOG", "info,revoke_engine=debug,revoked=debug")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("NOTIFY_SOCKET");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("revoked starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log_copy = log.to_path_buf();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            // Keep draining so the daemon never blocks on a full pipe; keep it for secret checks.
            for line in lines.map_while(Result::ok) {
                let _ = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&log_copy)
                    .and_then(|mut f| {
                        std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes())
                    });
            }
        });
        let first = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "revoked did not report its address; log:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
        };
        let base = first
            .strip_prefix("revoked listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_string();
        Daemon {
            child,
            base,
            log: log.to_path_buf(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "revoked did not exit within 30s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking HTTP client for the API and intake.
pub struct Client {
    pub http: reqwest::blocking::Client,
}

pub fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client {
        http: reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
    }
}

/// A Standard Webhooks delivery of our event schema.
pub struct Delivery {
    pub id: String,
    pub timestamp: i64,
    pub body: String,
}

impl Delivery {
    pub fn termination(data: serde_json::Value) -> Delivery {
        Self::of("employee.terminated", data)
    }

    pub fn cancellation(data: serde_json::Value) -> Delivery {
        Self::of("employee.termination_cancelled", data)
    }

    pub fn of(kind: &str, data: serde_json::Value) -> Delivery {
        Delivery {
            id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
            timestamp: chrono::Utc::now().timestamp(),
            body: serde_json::json!({ "type": kind, "data": data }).to_string(),
        }
    }

    pub fn signature(&self, secret: &str) -> String {
        revoke_intake::standard_webhooks_sign(
            secret,
            &self.id,
            self.timestamp,
            self.body.as_bytes(),
        )
        .unwrap()
    }
}

impl Client {
    /// Posts a delivery to `/intake/hr` signed with `secret`.
    pub fn deliver(
        &self,
        d: &Daemon,
        delivery: &Delivery,
        secret: &str,
    ) -> (u16, serde_json::Value) {
        let r = self
            .http
            .post(d.url("/intake/hr"))
            .header("content-type", "application/json")
            .header("webhook-id", &delivery.id)
            .header("webhook-timestamp", delivery.timestamp.to_string())
            .header("webhook-signature", delivery.signature(secret))
            .body(delivery.body.clone())
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    pub fn get(&self, d: &Daemon, path: &str, token: Option<&str>) -> (u16, String) {
        let mut rb = self.http.get(d.url(path));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        let r = rb.send().unwrap();
        (r.status().as_u16(), r.text().unwrap())
    }

    pub fn get_json(&self, d: &Daemon, path: &str) -> serde_json::Value {
        let (status, text) = self.get(d, path, Some(READ_TOKEN));
        assert_eq!(status, 200, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    pub fn post(
        &self,
        d: &Daemon,
        path: &str,
        token: Option<&str>,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let mut rb = self.http.post(d.url(path)).json(&body);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        let r = rb.send().unwrap();
        let status = r.status().as_u16();
        let text = r.text().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// Waits until the job satisfies `pred`, returning its detail.
    pub fn wait_job(
        &self,
        d: &Daemon,
        job: &str,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let j = self.get_json(d, &format!("/api/v1/jobs/{job}"));
            if pred(&j) {
                return j;
            }
            if Instant::now() > deadline {
                panic!(
                    "job {job} never became {what}: {j:#}\nlog:\n{}",
                    d.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Whether every action of a job detail in `phases` reached a successful state.
pub fn phases_done(j: &serde_json::Value, phases: &[&str]) -> bool {
    let actions = j["actions"].as_array().cloned().unwrap_or_default();
    let wanted: Vec<_> = actions
        .iter()
        .filter(|a| phases.contains(&a["phase"].as_str().unwrap_or("")))
        .collect();
    !wanted.is_empty()
        && wanted.iter().all(|a| {
            matches!(
                a["outcome"].as_str(),
                Some("done" | "already_done" | "skipped")
            )
        })
}

/// `n` leavers u0..u{n-1}, each the member of its own group (with the placeholder as a second
/// member), so every DN is modified exactly once by a complete offboarding.
pub fn leavers_ldif(n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        s += &format!(
            "dn: uid=u{i},ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: u{i}\ncn: User {i}\nsn: {i}\nmail: u{i}@example.org\nemployeeNumber: {}\nuserPassword: pw{i}\n\n\
             dn: cn=g{i},ou=groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: g{i}\nmember: uid=u{i},ou=people,dc=example,dc=org\nmember: {}\n\n",
            5000 + i,
            Slapd::PLACEHOLDER
        );
    }
    s
}

/// Modifications slapd received per DN (`mod dn`), lowercased.
pub fn mutations_per_dn(slapd: &Slapd) -> std::collections::BTreeMap<String, usize> {
    let mut per = std::collections::BTreeMap::new();
    for m in slapd.mutations().unwrap() {
        *per.entry(m.to_lowercase()).or_default() += 1;
    }
    per
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The value after `name` on a bench's command line (`-- --events 5000`), else `default`.
pub fn bench_arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `p` quantile (0..=1) of durations sorted ascending; zero for none.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}
