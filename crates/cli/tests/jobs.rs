//! `revokectl jobs`: every job page by page, `--limit`, and the filters, through `--server` (an
//! in-process daemon on a temporary SQLite store) and embedded on the same store.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::{InProcessDaemon, Run};
use serde_json::Value;
use sha2::{Digest, Sha256};

const OPERATOR: &str = "rvk_jobs-test-operator-token";
const LEAVERS: usize = 1050;

/// A daemon on its own thread and runtime; stopped (and waited for) when dropped.
struct Daemon {
    server: InProcessDaemon,
    config: PathBuf,
    dir: tempfile::TempDir,
}

impl Daemon {
    fn start() -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let toml = format!(
            r#"data_dir = "{data}"
[store]
url = "sqlite://{data}/r.db"
[daemon]
listen = "127.0.0.1:0"
poll_ms = 50
shutdown_grace_secs = 1
[guard]
max_jobs = 0
[api.tokens.ops]
sha256 = "{op}"
scope = "operator"
"#,
            data = dir.path().display(),
            op = hex::encode(Sha256::digest(OPERATOR.as_bytes())),
        );
        let config = dir.path().join("revoke.toml");
        std::fs::write(&config, &toml).expect("write config");
        let loaded = revoke_config::load(Some(&config)).expect("config loads");
        Daemon {
            server: InProcessDaemon::start(loaded),
            config,
            dir,
        }
    }

    /// revokectl through the server (`remote`) or embedded on the daemon's store.
    fn ctl(&self, remote: bool, args: &[&str]) -> Run {
        let mut c = Command::new(env!("CARGO_BIN_EXE_revokectl"));
        c.stdin(Stdio::null())
            .env_remove("RUST_LOG")
            .env_remove("REVOKE_SERVER")
            .env_remove("REVOKE_TOKEN")
            .env_remove("REVOKE_CONFIG");
        if remote {
            c.arg("--server")
                .arg(self.server.url())
                .env("REVOKE_TOKEN", OPERATOR);
        } else {
            c.arg("--config").arg(&self.config);
        }
        Run::from(c.args(args).output().expect("revokectl runs"))
    }

    /// The job ids `revokectl jobs -o json ARGS` lists, in order; fails on a repeat.
    fn jobs(&self, remote: bool, args: &[&str]) -> Vec<String> {
        let mut all = vec!["jobs", "-o", "json"];
        all.extend_from_slice(args);
        let run = self.ctl(remote, &all).ok();
        let v: Value = serde_json::from_str(&run.stdout).expect("jobs -o json is JSON");
        let ids: Vec<String> = v
            .as_array()
            .expect("an array")
            .iter()
            .map(|j| j["job_id"].as_str().expect("job_id").to_string())
            .collect();
        let unique: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "a job listed twice: {args:?}");
        ids
    }
}

#[test]
fn jobs_follows_pages_and_filters_through_the_server_and_embedded() {
    let d = Daemon::start();
    let mut csv = String::from("employee_id,email,username,effective_at,reason\n");
    for i in 0..LEAVERS {
        csv += &format!("E{i},leaver{i}@example.org,leaver{i},2099-01-01,resigned\n");
    }
    let file = d.dir.path().join("leavers.csv");
    std::fs::write(&file, csv).expect("write csv");
    let imported = d
        .ctl(false, &["import", file.to_str().expect("utf-8")])
        .ok();
    assert!(
        imported.stdout.contains(&format!("{LEAVERS} new job(s)")),
        "{}",
        imported.stdout
    );

    // Every job, more than one page's worth, exactly once; the same embedded.
    let all = d.jobs(true, &[]);
    assert_eq!(all.len(), LEAVERS);
    assert_eq!(
        d.jobs(false, &[]),
        all,
        "embedded lists the same, in the same order"
    );
    // --limit: the newest N, across a page boundary.
    assert_eq!(d.jobs(true, &["--limit", "1020"]), all[..1020].to_vec());
    assert_eq!(d.jobs(false, &["--limit", "3"]), all[..3].to_vec());

    // Filters: subject (employee id, email, username), source, state, time.
    for remote in [true, false] {
        for subject in ["E7", "Leaver7@Example.org", "leaver7"] {
            let got = d.jobs(remote, &["--subject", subject]);
            assert_eq!(got.len(), 1, "{subject}: {got:?}");
        }
        assert!(d.jobs(remote, &["--subject", "leaver"]).is_empty());
        assert_eq!(d.jobs(remote, &["--source", "import"]).len(), LEAVERS);
        assert!(d.jobs(remote, &["--source", "api"]).is_empty());
        assert!(d
            .jobs(remote, &["--since", "2099-01-01T00:00:00Z"])
            .is_empty());
        assert_eq!(
            d.jobs(remote, &["--until", "2099-01-01T00:00:00Z", "--limit", "5"])
                .len(),
            5
        );
    }
    for job in &all[..2] {
        d.ctl(true, &["cancel", job, "--reason", "rehired"]).ok();
    }
    for remote in [true, false] {
        let got = d.jobs(remote, &["--state", "cancelled,failed"]);
        assert_eq!(got, all[..2].to_vec());
        let got = d.jobs(remote, &["--state", "scheduled", "--state", "cancelled"]);
        assert_eq!(got.len(), LEAVERS);
    }
    // The table lists them all too.
    let table = d.ctl(true, &["jobs"]).ok();
    assert!(
        table.stdout.lines().count() > LEAVERS,
        "{}",
        table.stdout.lines().count()
    );
}
