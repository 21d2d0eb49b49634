//! `revokectl --server` against a whole in-process daemon (`revoked::run` on 127.0.0.1:0 with a
//! temporary SQLite store): listing, approving, rejecting, cancelling, evidence, import, the
//! signed sample webhook, and API tokens. One test adds a real slapd to get a planned job.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{InProcessDaemon, Run};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const OPERATOR: &str = "rvk_test-operator-token";
const READER: &str = "rvk_test-read-token";
const LATER: &str = "2099-01-01T00:00:00Z";
/// `whsec_` + base64("revoked sample webhook secret!!").
const HR_SECRET: &str = "whsec_cmV2b2tlZCBzYW1wbGUgd2ViaG9vayBzZWNyZXQhIQ==";
const FORGED: &str = "whsec_Zm9yZ2VkIGJ5IHNvbWVib2R5IGVsc2UgZW50aXJlbHk=";

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// One daemon on its own thread and runtime; stopped (and waited for) when dropped.
struct Daemon {
    server: InProcessDaemon,
    config: PathBuf,
    dir: tempfile::TempDir,
}

impl Daemon {
    /// A daemon with an operator token (`ops`) and a read token (`viewer`); `extra` is appended.
    fn start(extra: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let toml = format!(
            r#"data_dir = "{data}"
[store]
url = "sqlite://{data}/r.db"
[daemon]
listen = "127.0.0.1:0"
poll_ms = 50
shutdown_grace_secs = 1
[api.tokens.ops]
sha256 = "{op}"
scope = "operator"
[api.tokens.viewer]
sha256 = "{rd}"
scope = "read"
{extra}
"#,
            data = dir.path().display(),
            op = sha256_hex(OPERATOR),
            rd = sha256_hex(READER),
        );
        let path = dir.path().join("revoke.toml");
        std::fs::write(&path, &toml).expect("write config");
        let config = revoke_config::load(Some(&path)).expect("config loads");
        Daemon::run(config, path, dir)
    }

    fn run(config: revoke_config::Config, path: PathBuf, dir: tempfile::TempDir) -> Daemon {
        Daemon {
            server: InProcessDaemon::start(config),
            config: path,
            dir,
        }
    }

    fn url(&self) -> String {
        self.server.url()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// revokectl with `--server` and the given token (none: no token at all).
    fn ctl(&self, token: Option<&str>, args: &[&str]) -> Run {
        let mut c = ctl_command();
        c.arg("--server").arg(self.url());
        if let Some(t) = token {
            c.env("REVOKE_TOKEN", t);
        }
        Run::from(c.args(args).output().expect("revokectl runs"))
    }

    /// revokectl embedded on the daemon's store (same config file, no server).
    fn local(&self, args: &[&str]) -> Run {
        let mut c = ctl_command();
        c.arg("--config").arg(&self.config);
        Run::from(c.args(args).output().expect("revokectl runs"))
    }

    /// One API request; the status and the JSON answer (Null when not JSON).
    fn api(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url = format!("{}{path}", self.url());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let client = reqwest::Client::new();
            let mut req = client.request(method.parse().expect("method"), url);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if let Some(b) = body {
                req = req.json(&b);
            }
            let resp = req.send().await.expect("request sent");
            let status = resp.status().as_u16();
            let text = resp.text().await.expect("body");
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        })
    }

    /// Submits a job through the API with the operator token; returns its id.
    fn submit(&self, username: &str, effective_at: &str) -> String {
        let (status, v) = self.api(
            "POST",
            "/api/v1/jobs",
            Some(OPERATOR),
            Some(
                json!({ "username": username, "effective_at": effective_at, "reason": "resigned" }),
            ),
        );
        assert_eq!(status, 202, "{v}");
        v["job_id"].as_str().expect("job_id").to_string()
    }

    /// `GET /api/v1/jobs/{id}`.
    fn job(&self, id: &str) -> Value {
        let (status, v) = self.api("GET", &format!("/api/v1/jobs/{id}"), Some(READER), None);
        assert_eq!(status, 200, "{v}");
        v
    }

    /// Every job id the daemon lists, via revokectl.
    fn job_ids(&self, state: Option<&str>) -> Vec<String> {
        let mut args = vec!["jobs", "-o", "json"];
        if let Some(s) = state {
            args.extend(["--state", s]);
        }
        let run = self.ctl(Some(READER), &args).ok();
        let v: Value = serde_json::from_str(&run.stdout).expect("jobs -o json is JSON");
        v.as_array()
            .expect("an array")
            .iter()
            .map(|j| j["job_id"].as_str().expect("job_id").to_string())
            .collect()
    }
}

fn ctl_command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_revokectl"));
    c.stdin(Stdio::null())
        .env_remove("RUST_LOG")
        .env_remove("REVOKE_SERVER")
        .env_remove("REVOKE_TOKEN")
        .env_remove("REVOKE_CONFIG");
    c
}

fn failed(run: &Run) -> String {
    assert_eq!(
        run.code, 1,
        "expected exit 1\nstdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    run.stderr.clone()
}

/// Polls until `check` holds (the scheduler and workers run on their own).
fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_job_submitted_through_the_api_is_listed_shown_and_counted() {
    let d = Daemon::start("");
    let body = json!({ "username": "bob", "effective_at": LATER, "idempotency_key": "hr-123" });
    let (status, first) = d.api("POST", "/api/v1/jobs", Some(OPERATOR), Some(body.clone()));
    assert_eq!(status, 202, "{first}");
    assert_eq!(first["state"], "scheduled");
    assert_eq!(first["duplicate"], false);
    let job = first["job_id"].as_str().expect("job id").to_string();
    let (status, again) = d.api("POST", "/api/v1/jobs", Some(OPERATOR), Some(body));
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["job_id"], job.as_str());
    assert_eq!(again["duplicate"], true);

    let table = d.ctl(Some(READER), &["jobs"]).ok();
    assert!(
        table.stdout.contains(&job)
            && table.stdout.contains("scheduled")
            && table.stdout.contains("bob"),
        "{}",
        table.stdout
    );
    assert_eq!(d.job_ids(None), vec![job.clone()]);
    assert_eq!(d.job_ids(Some("scheduled")), vec![job.clone()]);
    assert!(d.job_ids(Some("awaiting_approval")).is_empty());

    let shown = d.ctl(Some(READER), &["show", &job]).ok();
    assert!(
        shown.stdout.contains(&format!("Job {job}  scheduled")),
        "{}",
        shown.stdout
    );
    assert!(
        shown.stdout.contains("api (event hr-123)"),
        "{}",
        shown.stdout
    );
    let json = d.ctl(Some(READER), &["status", &job, "-o", "json"]).ok();
    let v: Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(v["job_id"], job.as_str());
    assert_eq!(v["progress"]["total"], 0);

    let status = d.ctl(Some(READER), &["status"]).ok();
    assert!(
        status.stdout.contains("scheduled jobs     1"),
        "{}",
        status.stdout
    );
    let v: Value =
        serde_json::from_str(&d.ctl(Some(READER), &["status", "-o", "json"]).ok().stdout)
            .expect("JSON");
    assert_eq!(v["queue"]["scheduled_jobs"], 1);

    // The same queue, embedded on the daemon's store.
    let local = d.local(&["jobs", "-o", "json"]).ok();
    assert!(local.stdout.contains(&job), "{}", local.stdout);

    // Commands of the local store refuse a server rather than answer from elsewhere.
    let err = failed(&d.ctl(Some(READER), &["results"]));
    assert!(err.contains("local store"), "{err}");
    let err = failed(&d.ctl(Some(READER), &["show", "no-such-job"]));
    assert!(err.contains("404"), "{err}");
}

#[test]
fn tokens_are_required_and_scoped() {
    let d = Daemon::start("");
    let job = d.submit("carol", LATER);

    let err = failed(&d.ctl(None, &["jobs"]));
    assert!(
        err.contains("401") && err.contains("expected an Authorization: Bearer token"),
        "{err}"
    );
    let err = failed(&d.ctl(Some("rvk_not-a-configured-token"), &["status"]));
    assert!(err.contains("401") && err.contains("unknown one"), "{err}");

    // The read token reads, and may do nothing else.
    d.ctl(Some(READER), &["jobs"]).ok();
    for args in [
        vec!["approve", job.as_str()],
        vec!["reject", job.as_str()],
        vec!["cancel", job.as_str(), "--reason", "test"],
        vec!["ack", job.as_str(), "collect-laptop"],
    ] {
        let err = failed(&d.ctl(Some(READER), &args));
        assert!(
            err.contains("403") && err.contains("operator"),
            "{args:?}: {err}"
        );
    }
    let (status, v) = d.api(
        "POST",
        "/api/v1/jobs",
        Some(READER),
        Some(json!({ "username": "x" })),
    );
    assert_eq!(status, 403, "{v}");
    let (status, _) = d.api("GET", "/api/v1/jobs", None, None);
    assert_eq!(status, 401);
    assert_eq!(d.job(&job)["state"], "scheduled", "nothing changed");

    // --token-file, and it wins over REVOKE_TOKEN.
    let file = d.path("token");
    std::fs::write(&file, format!("{OPERATOR}\n")).expect("write token");
    let mut c = ctl_command();
    c.args(["--server", &d.url(), "--token-file"])
        .arg(&file)
        .env("REVOKE_TOKEN", READER)
        .args(["cancel", &job, "--reason", "test"]);
    Run::from(c.output().expect("runs")).ok();
    assert_eq!(d.job(&job)["state"], "cancelled");
}

#[test]
fn the_blast_radius_guard_holds_the_third_job_until_approved() {
    let d = Daemon::start("[guard]\nmax_jobs = 2\nwindow_secs = 3600\n");
    let first = d.submit("u1", LATER);
    let second = d.submit("u2", LATER);
    let third = d.submit("u3", LATER);
    let fourth = d.submit("u4", LATER);
    assert_eq!(d.job(&first)["state"], "scheduled");
    assert_eq!(d.job(&second)["state"], "scheduled");
    assert_eq!(d.job(&third)["state"], "awaiting_approval");
    assert_eq!(d.job(&fourth)["state"], "awaiting_approval");
    let mut held = d.job_ids(Some("awaiting_approval"));
    held.sort();
    let mut want = vec![third.clone(), fourth.clone()];
    want.sort();
    assert_eq!(held, want);
    let status = d.ctl(Some(READER), &["status"]).ok();
    assert!(
        status.stdout.contains("awaiting approval  2"),
        "{}",
        status.stdout
    );

    let approved = d.ctl(Some(OPERATOR), &["approve", &third]).ok();
    assert!(
        approved.stdout.contains(&format!("approved job {third}"))
            && approved.stdout.contains("now scheduled"),
        "{}",
        approved.stdout
    );
    assert_eq!(d.job(&third)["state"], "scheduled");
    assert!(d.job(&third)["note"]
        .as_str()
        .unwrap_or("")
        .contains("approved by token:ops"));

    let rejected = d
        .ctl(
            Some(OPERATOR),
            &[
                "reject",
                &fourth,
                "--reason",
                "a rehire, not a leaver",
                "-o",
                "json",
            ],
        )
        .ok();
    let v: Value = serde_json::from_str(&rejected.stdout).expect("JSON");
    assert_eq!(v["state"], "rejected");
    assert_eq!(d.job(&fourth)["state"], "rejected");
    assert_eq!(
        d.job(&fourth)["note"],
        "rejected by token:ops: a rehire, not a leaver",
        "the reason travels in the request and lands with the decision"
    );

    let err = failed(&d.ctl(Some(OPERATOR), &["approve", &third]));
    assert!(
        err.contains("409") && err.contains("expected it awaiting approval, found it scheduled"),
        "{err}"
    );
    let err = failed(&d.ctl(Some(OPERATOR), &["approve", &fourth]));
    assert!(err.contains("409") && err.contains("rejected"), "{err}");
    let err = failed(&d.ctl(Some(OPERATOR), &["approve", "no-such-job"]));
    assert!(err.contains("404"), "{err}");
}

#[test]
fn embedded_approve_reject_and_jobs_use_the_local_store() {
    let d = Daemon::start("[guard]\nmax_jobs = 1\nwindow_secs = 3600\n");
    d.submit("v1", LATER);
    let held = d.submit("v2", LATER);
    let other = d.submit("v3", LATER);
    let listed = d.local(&["jobs", "--state", "awaiting_approval"]).ok();
    assert!(
        listed.stdout.contains(&held) && listed.stdout.contains(&other),
        "{}",
        listed.stdout
    );
    d.local(&["approve", &held]).ok();
    assert_eq!(d.job(&held)["state"], "scheduled");
    d.local(&["reject", &other, "--reason", "HR sent it twice"])
        .ok();
    assert_eq!(d.job(&other)["state"], "rejected");
    assert!(
        d.job(&other)["note"]
            .as_str()
            .unwrap_or("")
            .ends_with(": HR sent it twice"),
        "{}",
        d.job(&other)
    );
    let err = failed(&d.local(&["approve", &held]));
    assert!(err.contains("expected it awaiting approval"), "{err}");
    let err = failed(&d.local(&["reject", "no-such-job"]));
    assert!(err.contains("no-such-job"), "{err}");
}

#[test]
fn cancel_through_the_server_and_embedded() {
    let d = Daemon::start("");
    let job = d.submit("dave", LATER);
    let err = failed(&d.ctl(Some(OPERATOR), &["cancel", &job, "--reason", "  "]));
    assert!(err.contains("--reason"), "{err}");
    let out = d
        .ctl(Some(OPERATOR), &["cancel", &job, "--reason", "rehired"])
        .ok();
    assert!(
        out.stdout.contains(&format!("cancelled job {job}")),
        "{}",
        out.stdout
    );
    let v = d.job(&job);
    assert_eq!(v["state"], "cancelled");
    assert!(v["note"].as_str().unwrap_or("").contains("rehired"), "{v}");
    assert_eq!(d.job_ids(Some("cancelled")), vec![job.clone()]);
    let err = failed(&d.ctl(Some(OPERATOR), &["cancel", &job, "--reason", "again"]));
    assert!(err.contains("409"), "{err}");

    let local = d.submit("erin", LATER);
    let out = d
        .local(&[
            "cancel",
            &local,
            "--reason",
            "changed their mind",
            "-o",
            "json",
        ])
        .ok();
    let v: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(v["job_id"], local.as_str());
    assert_eq!(d.job(&local)["state"], "cancelled");
    let err = failed(&d.local(&["cancel", &local, "--reason", "again"]));
    assert!(err.contains(&local), "{err}");
}

#[test]
fn evidence_of_an_unplanned_job_names_it_in_every_format() {
    let d = Daemon::start("");
    let job = d.submit("frank", LATER);
    d.ctl(
        Some(OPERATOR),
        &["cancel", &job, "--reason", "duplicate ticket"],
    )
    .ok();

    let md = d.ctl(Some(READER), &["evidence", &job, "-o", "md"]).ok();
    assert!(
        md.stdout
            .contains(&format!("# Offboarding evidence: job {job}")),
        "{}",
        md.stdout
    );
    assert!(
        md.stdout.contains("## Audit trail") && md.stdout.contains("job.cancelled"),
        "{}",
        md.stdout
    );
    let jsonl = d.ctl(Some(READER), &["evidence", &job, "-o", "jsonl"]).ok();
    let lines = jsonl.json_lines();
    assert!(
        lines
            .iter()
            .any(|l| l["record"] == "case" && l["job_id"] == job.as_str()),
        "{}",
        jsonl.stdout
    );
    assert!(
        lines
            .iter()
            .any(|l| l["record"] == "audit" && l["kind"] == "job.received"),
        "{}",
        jsonl.stdout
    );
    let json = d.ctl(Some(READER), &["evidence", &job]).ok();
    let v: Value = serde_json::from_str(&json.stdout).expect("JSON by default");
    assert_eq!(v["job_id"], job.as_str());
    assert_eq!(v["state"], "cancelled");

    // --out, and the same evidence embedded.
    let file = d.path("evidence.md");
    d.ctl(
        Some(READER),
        &[
            "evidence",
            &job,
            "-o",
            "md",
            "--out",
            file.to_str().expect("utf-8"),
        ],
    )
    .ok();
    let written = std::fs::read_to_string(&file).expect("written");
    assert!(written.contains(&format!("job {job}")), "{written}");
    let local = d.local(&["evidence", &job, "-o", "md"]).ok();
    assert!(
        local
            .stdout
            .contains(&format!("# Offboarding evidence: job {job}")),
        "{}",
        local.stdout
    );

    let err = failed(&d.ctl(Some(READER), &["evidence", "no-such-job", "-o", "csv"]));
    assert!(err.contains("404"), "{err}");
    let err = failed(&d.local(&["evidence", "no-such-job"]));
    assert!(err.contains("no-such-job"), "{err}");
}

fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).expect("write");
    path.to_str().expect("utf-8").to_string()
}

#[test]
fn import_submits_each_line_once_and_a_bad_line_submits_nothing() {
    let d = Daemon::start("");
    let csv = write(
        &d.path("leavers.csv"),
        "employee_id,email,username,effective_at,reason\n\
         E1,gina@example.org,gina,2099-03-01,resigned\n\
         E2,hank@example.org,,2099-03-02T17:00:00+01:00,retired\n",
    );
    let first = d
        .ctl(
            Some(OPERATOR),
            &["import", &csv, "--timezone", "Europe/Berlin"],
        )
        .ok();
    assert!(
        first
            .stdout
            .contains("2 event(s): 2 new job(s), 0 already imported"),
        "{}",
        first.stdout
    );
    let ids = d.job_ids(None);
    assert_eq!(ids.len(), 2, "{ids:?}");
    let again = d
        .ctl(
            Some(OPERATOR),
            &["import", &csv, "--timezone", "Europe/Berlin", "-o", "jsonl"],
        )
        .ok();
    let lines = again.json_lines();
    assert_eq!(lines.len(), 2, "{}", again.stdout);
    for l in &lines {
        assert_eq!(l["duplicate"], true, "{l}");
        assert!(
            ids.contains(&l["job_id"].as_str().unwrap_or("").to_string()),
            "{l}"
        );
    }
    assert_eq!(d.job_ids(None).len(), 2, "re-importing makes no new job");
    // The same lines read in another zone are other terminations under the same keys: refused
    // (409 naming both body hashes), not dropped as duplicates.
    let moved = failed(&d.ctl(Some(OPERATOR), &["import", &csv, "--timezone", "UTC"]));
    assert!(
        moved.contains("409") && moved.contains("expected the body first received"),
        "{moved}"
    );
    assert_eq!(d.job_ids(None).len(), 2);
    // The date is read in the given zone and ends at the next day's midnight there.
    let gina = ids
        .iter()
        .map(|id| d.job(id))
        .find(|j| j["subject"] == "gina")
        .expect("gina's job");
    assert_eq!(gina["effective_at"], "2099-03-01T23:00:00Z", "{gina}");
    assert_eq!(gina["state"], "scheduled");

    let bad = write(
        &d.path("bad.csv"),
        "employee_id,username,effective_at\nE3,ivan,2099-01-01\nE4,judy,next tuesday\n",
    );
    let err = failed(&d.ctl(Some(OPERATOR), &["import", &bad]));
    assert!(
        err.contains("line 3") && err.contains("effective_at"),
        "{err}"
    );
    assert_eq!(
        d.job_ids(None).len(),
        2,
        "nothing of the bad file was submitted"
    );
    let err = failed(&d.local(&["import", &bad]));
    assert!(err.contains("line 3"), "{err}");

    // Embedded: the same file twice through the local store.
    let jsonl = write(
        &d.path("more.jsonl"),
        "{\"username\": \"kim\", \"effective_at\": \"2099-05-01T09:00:00Z\"}\n{\"email\": \"lee@example.org\", \"event_id\": \"T-9\", \"effective_at\": \"2099-05-02\"}\n",
    );
    let first = d.local(&["import", &jsonl]).ok();
    assert!(first.stdout.contains("2 new job(s)"), "{}", first.stdout);
    let again = d.local(&["import", &jsonl]).ok();
    assert!(
        again.stdout.contains("0 new job(s), 2 already imported"),
        "{}",
        again.stdout
    );
    assert_eq!(d.job_ids(None).len(), 4);
    let err = failed(&d.local(&["import", &jsonl, "--policy", "nope"]));
    assert!(err.contains("--policy") && err.contains("nope"), "{err}");
    let err = failed(&d.ctl(
        Some(OPERATOR),
        &["import", &csv, "--timezone", "Mars/Olympus"],
    ));
    assert!(err.contains("--timezone"), "{err}");
    // A line without effective_at (now) imports again as a duplicate.
    let undated = write(&d.path("undated.csv"), "employee_id,username\nE9,olga\n");
    d.ctl(Some(OPERATOR), &["import", &undated]).ok();
    let again = d
        .ctl(Some(OPERATOR), &["import", &undated, "-o", "jsonl"])
        .ok();
    assert_eq!(again.json_lines()[0]["duplicate"], true, "{}", again.stdout);
}

#[test]
fn send_delivers_a_signed_termination_and_a_forged_one_is_refused() {
    let d = Daemon::start(&format!(
        "[intake.hr]\nkind = \"standard_webhooks\"\nsecret = \"{HR_SECRET}\"\n"
    ));
    let url = format!("{}/intake/hr", d.url());
    let send = |secret: &str, args: &[&str]| {
        let mut c = ctl_command();
        c.env("HR_SECRET", secret)
            .args(["send", &url, "--secret-env", "HR_SECRET"])
            .args(args);
        Run::from(c.output().expect("runs"))
    };
    let args = [
        "--employee-id",
        "E42",
        "--email",
        "mallory@example.org",
        "--reason",
        "resigned",
        "--effective-at",
        LATER,
        "--event-id",
        "msg_demo_1",
        // A redelivery is the same body: without a fixed event time, two sends a second apart
        // differ in `timestamp` and the second is a 409 (seen once in 17 runs).
        "--occurred-at",
        "2026-12-01T09:00:00Z",
    ];
    let out = send(HR_SECRET, &args).ok();
    assert!(
        out.stdout.contains("sent employee.terminated msg_demo_1")
            && out.stdout.contains("202 Accepted"),
        "{}",
        out.stdout
    );
    let ids = d.job_ids(None);
    assert_eq!(ids.len(), 1);
    // scripts/demo reads the job id from the answer's JSON.
    assert!(
        out.stdout.contains(&format!("\"job_id\": \"{}\"", ids[0]))
            && out.stdout.contains("\"duplicate\": false")
            && out
                .stdout
                .contains(&format!("new job {} (scheduled)", ids[0])),
        "{}",
        out.stdout
    );
    let job = d.job(&ids[0]);
    assert_eq!(job["source"], "hr");
    assert_eq!(job["source_event_id"], "msg_demo_1");
    assert_eq!(job["subject"], "mallory@example.org");

    // Redelivery: the same job.
    let again = send(HR_SECRET, &args).ok();
    assert!(
        again.stdout.contains("200 OK")
            && again.stdout.contains("\"duplicate\": true")
            && again
                .stdout
                .contains(&format!("job {} was made by the first delivery", ids[0])),
        "{}",
        again.stdout
    );

    let err = failed(&send(FORGED, &["--employee-id", "E43"]));
    assert!(err.contains("401"), "{err}");
    assert_eq!(d.job_ids(None).len(), 1, "a forged event makes no job");
    let err = failed(&send("not-a-whsec-secret", &["--employee-id", "E43"]));
    assert!(
        err.contains("whsec_") && !err.contains("not-a-whsec-secret"),
        "{err}"
    );

    // From a file, as a cancellation of E42.
    let file = d.path("hr.secret");
    std::fs::write(&file, format!("{HR_SECRET}\n")).expect("write");
    let mut c = ctl_command();
    c.args(["send", &url, "--secret-file"]).arg(&file).args([
        "--employee-id",
        "E42",
        "--cancel",
        "-o",
        "json",
    ]);
    let out = Run::from(c.output().expect("runs")).ok();
    let v: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(v["answer"]["cancelled"][0], ids[0].as_str(), "{v}");
    assert_eq!(d.job(&ids[0])["state"], "cancelled");

    // The secret is never a plain argument.
    let mut c = ctl_command();
    c.args(["send", &url, "--secret", HR_SECRET, "--employee-id", "E1"]);
    assert_ne!(Run::from(c.output().expect("runs")).code, 0);
}

#[test]
fn a_new_token_works_once_its_hash_is_configured() {
    let made = Run::from(
        ctl_command()
            .args(["token", "new", "--name", "ci-reader", "--scope", "read"])
            .output()
            .expect("runs"),
    )
    .ok();
    let token = made
        .stdout
        .lines()
        .find(|l| l.starts_with("rvk_"))
        .expect("the token line")
        .to_string();
    assert!(token.len() >= 4 + 43, "32 random bytes: {token}");
    let block: String = made
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("[api.tokens.ci-reader]"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        block.contains(&format!("sha256 = \"{}\"", sha256_hex(&token))),
        "{block}"
    );
    assert!(block.contains("scope = \"read\""), "{block}");

    let mut hash = ctl_command()
        .args(["token", "hash"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawns");
    {
        use std::io::Write as _;
        let mut stdin = hash.stdin.take().expect("stdin");
        writeln!(stdin, "{token}").expect("write");
    }
    let out = Run::from(hash.wait_with_output().expect("runs")).ok();
    assert_eq!(out.stdout.trim(), sha256_hex(&token));

    let other = Run::from(
        ctl_command()
            .args([
                "token", "new", "--name", "x", "--scope", "operator", "-o", "json",
            ])
            .output()
            .expect("runs"),
    )
    .ok();
    let v: Value = serde_json::from_str(&other.stdout).expect("JSON");
    assert_ne!(v["token"], token.as_str(), "fresh every time");
    assert_eq!(v["scope"], "operator");
    let err = failed(&Run::from(
        ctl_command()
            .args(["token", "new", "--name", "bad name", "--scope", "read"])
            .output()
            .expect("runs"),
    ));
    assert!(err.contains("--name"), "{err}");

    let d = Daemon::start(&block);
    d.ctl(Some(&token), &["jobs"]).ok();
    let err = failed(&d.ctl(Some(&token), &["cancel", "x", "--reason", "y"]));
    assert!(err.contains("403") && err.contains("ci-reader"), "{err}");
}

/// A real directory: the daemon plans and runs a high-risk job, then the evidence lists each
/// action and a manual step is acknowledged through the API.
#[test]
fn a_planned_job_shows_its_actions_evidence_and_takes_an_ack() {
    let env = common::Env::new(
        r#"group_placeholder_dn = "cn=nobody,ou=people,dc=example,dc=org""#,
        &format!(
            "[daemon]\nlisten = \"127.0.0.1:0\"\npoll_ms = 50\nshutdown_grace_secs = 2\n\
             [api.tokens.ops]\nsha256 = \"{}\"\nscope = \"operator\"\n\
             [api.tokens.viewer]\nsha256 = \"{}\"\nscope = \"read\"\n",
            sha256_hex(OPERATOR),
            sha256_hex(READER)
        ),
    );
    let config = revoke_config::load(Some(&env.config)).expect("config loads");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Daemon::run(config, env.config.clone(), dir);
    let (status, v) = d.api(
        "POST",
        "/api/v1/jobs",
        Some(OPERATOR),
        Some(json!({ "username": "alice", "high_risk": true, "reason": "misconduct" })),
    );
    assert_eq!(status, 202, "{v}");
    let job = v["job_id"].as_str().expect("job id").to_string();
    wait_for("alice contained", || {
        let j = d.job(&job);
        j["state"] == "planned" && j["progress"]["done"].as_u64().unwrap_or(0) >= 5
    });
    assert!(env.alice_locked());

    let shown = d.ctl(Some(READER), &["show", &job]).ok();
    assert!(
        shown.stdout.contains(&format!("Job {job}  planned")) && shown.stdout.contains("contain"),
        "{}",
        shown.stdout
    );

    let csv = d.ctl(Some(READER), &["evidence", &job, "-o", "csv"]).ok();
    let rows: Vec<&str> = csv.stdout.lines().collect();
    assert!(rows[0].starts_with("job_id,subject,"), "{}", csv.stdout);
    assert!(rows.len() >= 7, "one row per action: {}", csv.stdout);
    assert!(
        rows[1..]
            .iter()
            .all(|r| r.starts_with(&format!("{job},alice,"))),
        "{}",
        csv.stdout
    );
    assert!(csv.stdout.contains("lock_account"), "{}", csv.stdout);
    let md = d.ctl(Some(READER), &["evidence", &job, "-o", "md"]).ok();
    assert!(
        md.stdout.contains("## Actions")
            && md.stdout.contains("## Audit trail")
            && md.stdout.contains("job.received"),
        "{}",
        md.stdout
    );
    let jsonl = d.ctl(Some(READER), &["evidence", &job, "-o", "jsonl"]).ok();
    assert!(jsonl
        .json_lines()
        .iter()
        .filter(|l| l["record"] == "action")
        .all(|l| l["job_id"] == job.as_str()));

    let acked = d.ctl(Some(OPERATOR), &["ack", &job, "collect-laptop"]).ok();
    assert!(
        acked.stdout.contains("acknowledged manual.collect-laptop")
            && acked.stdout.contains("acknowledged)"),
        "{}",
        acked.stdout
    );
    let err = failed(&d.ctl(
        Some(OPERATOR),
        &["ack", &job, "collect-laptop", "--by", "someone"],
    ));
    assert!(err.contains("--by"), "{err}");
    let err = failed(&d.ctl(Some(OPERATOR), &["ack", &job, "no-such-step"]));
    assert!(err.contains("404"), "{err}");
}
