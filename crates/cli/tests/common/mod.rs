//! One real slapd with the sample directory, a config pointing at it, and the revokectl binary.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use revoke_testkit::{Slapd, DEMO_LDIF};

pub const ALICE: &str = "uid=alice,ou=people,dc=example,dc=org";

pub struct Env {
    pub slapd: Slapd,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Env {
    /// `ldap_extra` is appended to the connector table, `extra` to the file.
    pub fn new(ldap_extra: &str, extra: &str) -> Env {
        Env::protecting(&["breakglass"], ldap_extra, extra)
    }

    /// As `new`, with `protected` as `[protected] accounts`.
    pub fn protecting(protected: &[&str], ldap_extra: &str, extra: &str) -> Env {
        let protected: Vec<String> = protected.iter().map(|p| format!("{p:?}")).collect();
        let slapd = Slapd::start().expect("slapd starts");
        slapd.add_ldif(DEMO_LDIF).expect("demo directory loads");
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("revoke.toml");
        std::fs::write(dir.path().join("pw"), "secret\n").expect("write secret");
        std::fs::write(
            &config,
            format!(
                r#"data_dir = "{data}"
[executor]
lease_secs = 1
[executor.retry]
base_ms = 20
cap_ms = 200
max_attempts = 3
[protected]
accounts = [{protected}]
[policies.default]
manual = [{{ id = "collect-laptop", title = "Collect laptop" }}]
{extra}
[connectors.corp-ldap]
kind = "ldap"
url = "{url}"
bind_dn = "{root}"
bind_password_file = "{pw}"
user_base_dn = "ou=people,dc=example,dc=org"
group_base_dn = "ou=groups,dc=example,dc=org"
delete_entry = true
{ldap_extra}
"#,
                data = dir.path().join("data").display(),
                protected = protected.join(", "),
                url = slapd.url(),
                root = Slapd::ROOT_DN,
                pw = dir.path().join("pw").display(),
            ),
        )
        .expect("write config");
        Env { slapd, dir, config }
    }

    /// How many jobs the local store holds.
    pub fn job_count(&self) -> usize {
        self.ctl(&["status", "-o", "json"])
            .ok()
            .stdout
            .matches("\"plan_id\"")
            .count()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("data").join("revoked.db")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_revokectl"));
        c.arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .env_remove("RUST_LOG");
        c
    }

    pub fn ctl(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().expect("revokectl runs");
        Run::from(out)
    }

    /// Whether alice's entry carries the ppolicy lock.
    pub fn alice_locked(&self) -> bool {
        self.slapd
            .search(ALICE, "(objectClass=*)", &["pwdAccountLockedTime"])
            .expect("search")
            .contains("pwdAccountLockedTime: 000001010000Z")
    }

    /// How many modifications slapd received per operation and DN (`mod cn=x,...`), lowercased.
    pub fn mutations_per_dn(&self) -> std::collections::BTreeMap<String, usize> {
        let mut per_dn = std::collections::BTreeMap::new();
        for m in self.slapd.mutations().expect("mutations") {
            *per_dn.entry(m.to_lowercase()).or_default() += 1;
        }
        per_dn
    }

    /// The groups (cn) that list alice in any membership attribute.
    pub fn alice_groups(&self) -> Vec<String> {
        let out = self
            .slapd
            .search(
                "ou=groups,dc=example,dc=org",
                &format!("(|(member={ALICE})(uniqueMember={ALICE})(memberUid=alice))"),
                &["cn"],
            )
            .expect("search");
        out.lines()
            .filter_map(|l| l.strip_prefix("cn: "))
            .map(str::to_string)
            .collect()
    }
}

#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// The job of the first JSON line (an `apply -o jsonl`).
    pub fn job_id(&self) -> String {
        self.json_lines()[0]["job_id"]
            .as_str()
            .expect("a job id")
            .to_string()
    }

    /// The JSON lines of stdout.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }
}

/// `revoked` in this process, on its own thread and runtime, on the given configuration; stopped
/// (and waited for) when dropped.
pub struct InProcessDaemon {
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcessDaemon {
    pub fn start(config: revoke_config::Config) -> InProcessDaemon {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                revoked::run(
                    config,
                    None,
                    move |addr| {
                        let _ = addr_tx.send(addr);
                    },
                    async move {
                        let _ = stop_rx.await;
                    },
                )
                .await
                .expect("the daemon runs and stops cleanly");
            });
        });
        let addr = addr_rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the daemon is ready");
        InProcessDaemon {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for InProcessDaemon {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
