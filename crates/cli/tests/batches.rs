//! Batches of held jobs: an import the blast-radius guard holds is reviewed and decided as one
//! unit, embedded and through the daemon's API (`--server`), with per-job approval kept for
//! stragglers and a stale review refused.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::{InProcessDaemon, Run};
use serde_json::Value;
use sha2::{Digest, Sha256};

const OPERATOR: &str = "rvk_batches-test-operator-token";

struct Daemon {
    server: InProcessDaemon,
    config: PathBuf,
    dir: tempfile::TempDir,
}

impl Daemon {
    /// A daemon whose guard holds every job past the second within an hour.
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
max_jobs = 2
window_secs = 3600
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

    fn ctl(&self, remote: bool, args: &[&str]) -> Run {
        let mut c = Command::new(env!("CARGO_BIN_EXE_revokectl"));
        c.stdin(Stdio::null())
            .env_remove("RUST_LOG")
            .env_remove("REVOKE_SERVER")
            .env_remove("REVOKE_TOKEN")
            .env_remove("REVOKE_CONFIG")
            .env("USER", "ops-person");
        if remote {
            c.arg("--server")
                .arg(self.server.url())
                .env("REVOKE_TOKEN", OPERATOR);
        } else {
            c.arg("--config").arg(&self.config);
        }
        Run::from(c.args(args).output().expect("revokectl runs"))
    }

    fn json(&self, remote: bool, args: &[&str]) -> Value {
        let run = self.ctl(remote, args).ok();
        serde_json::from_str(&run.stdout).expect("JSON output")
    }

    fn import(&self, from: usize, to: usize) -> Run {
        let mut csv = String::from("employee_id,email,username,effective_at,reason\n");
        for i in from..to {
            csv += &format!("E{i},leaver{i}@example.org,leaver{i},2099-01-01,resigned\n");
        }
        let file = self.dir.path().join(format!("leavers-{from}.csv"));
        std::fs::write(&file, csv).expect("write csv");
        self.ctl(false, &["import", file.to_str().expect("utf-8")])
            .ok()
    }

    fn awaiting(&self) -> usize {
        self.json(
            true,
            &["jobs", "--state", "awaiting_approval", "-o", "json"],
        )
        .as_array()
        .expect("an array")
        .len()
    }
}

/// One HTTP/1.1 POST of a JSON body: the status and the body.
fn post(addr: std::net::SocketAddr, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read");
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[test]
fn an_import_held_by_the_guard_is_decided_as_one_batch() {
    let d = Daemon::start();
    let imported = d.import(0, 7);
    assert!(
        imported.stdout.contains("5 job(s) held") && imported.stdout.contains("revokectl batches"),
        "{}",
        imported.stdout
    );

    // One open batch, the same embedded and through the API.
    let list = d.json(true, &["batches", "-o", "json"]);
    assert_eq!(d.json(false, &["batches", "-o", "json"]), list);
    let list = list.as_array().expect("an array");
    assert_eq!(list.len(), 1, "{list:?}");
    let batch = list[0]["batch_id"].as_str().expect("batch_id").to_string();
    assert_eq!(list[0]["source"], "import");
    assert_eq!(list[0]["held"], 5);
    assert_eq!(list[0]["awaiting_approval"], 5);

    // What it contains: counts and a sample.
    for remote in [true, false] {
        let detail = d.json(remote, &["batches", &batch, "--sample", "2", "-o", "json"]);
        assert_eq!(detail["by_source"]["import"], 5, "{detail}");
        assert_eq!(detail["by_reason"]["resigned"], 5, "{detail}");
        assert_eq!(detail["by_department"]["unknown"], 5, "{detail}");
        assert_eq!(detail["sample"].as_array().expect("sample").len(), 2);
        // One import is received at one time: the sample is of the held ones (the first two pass).
        for j in detail["sample"].as_array().expect("sample") {
            let subject = j["subject"].as_str().expect("subject");
            assert!(
                ["leaver2", "leaver3", "leaver4", "leaver5", "leaver6"].contains(&subject),
                "{j}"
            );
        }
    }
    let table = d.ctl(true, &["batches", &batch]).ok();
    assert!(
        table.stdout.contains("5 job(s) awaiting approval")
            && table.stdout.contains("by source:     import 5"),
        "{}",
        table.stdout
    );

    // Without a terminal and without --yes nothing is decided.
    let refused = d.ctl(true, &["approve", "--batch", &batch]);
    assert_eq!(refused.code, 1, "{}", refused.stdout);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    assert_eq!(d.awaiting(), 5);

    // A straggler approved on its own; a stale review (5 seen, 4 left) is refused by the API.
    let first = d.json(true, &["batches", &batch, "-o", "json"])["sample"][0]["job_id"]
        .as_str()
        .expect("job id")
        .to_string();
    d.ctl(true, &["approve", &first]).ok();
    let (status, body) = post(
        d.server.addr,
        &format!("/api/v1/batches/{batch}/approve"),
        Some(OPERATOR),
        r#"{"expect": 5}"#,
    );
    assert_eq!(status, 409, "{body}");
    let body: Value = serde_json::from_str(&body).expect("a JSON error");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("expected 5") && e.contains("found 4")),
        "{body}"
    );
    let (status, _) = post(
        d.server.addr,
        &format!("/api/v1/batches/{batch}/approve"),
        None,
        "{}",
    );
    assert_eq!(status, 401);
    assert_eq!(d.awaiting(), 4);

    // The batch, approved as one unit through the API: exactly the 4 jobs left.
    let decided = d.json(true, &["approve", "--batch", &batch, "--yes", "-o", "json"]);
    assert_eq!(decided["state"], "scheduled");
    assert_eq!(decided["job_ids"].as_array().expect("ids").len(), 4);
    assert_eq!(decided["batch"]["decision"], "approved");
    assert_eq!(decided["batch"]["decided_by"], "token:ops");
    assert_eq!(d.awaiting(), 0);
    assert!(d
        .json(true, &["batches", "-o", "json"])
        .as_array()
        .expect("an array")
        .is_empty());
    // Each job's evidence says who approved it and in which batch.
    let job = decided["job_ids"][0].as_str().expect("job id");
    let evidence = d.ctl(true, &["evidence", job, "-o", "json"]).ok();
    assert!(
        evidence.stdout.contains("job.approved") && evidence.stdout.contains(&batch),
        "{}",
        evidence.stdout
    );
    let again = d.ctl(true, &["approve", "--batch", &batch, "--yes"]);
    assert_eq!(again.code, 1, "a decided batch is not decided again");

    // A later import is held in a new batch; rejected embedded, it never runs.
    d.import(7, 10);
    let open = d.json(false, &["batches", "-o", "json"]);
    let open = open.as_array().expect("an array");
    assert_eq!(open.len(), 1);
    let second = open[0]["batch_id"].as_str().expect("batch_id").to_string();
    assert_ne!(second, batch);
    let rejected = d.ctl(false, &["reject", "--batch", &second, "--yes"]).ok();
    assert!(
        rejected.stdout.contains("3 job(s) now rejected"),
        "{}",
        rejected.stdout
    );
    let all = d.json(true, &["batches", "--all", "-o", "json"]);
    assert_eq!(all.as_array().expect("an array").len(), 2);
    assert_eq!(all[0]["decision"], "rejected");
    assert_eq!(all[0]["decided_by"], "ops-person");
    let rejected_jobs = d.json(true, &["jobs", "--state", "rejected", "-o", "json"]);
    assert_eq!(rejected_jobs.as_array().expect("an array").len(), 3);
}
