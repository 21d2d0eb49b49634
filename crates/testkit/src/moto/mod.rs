//! moto_server, a throwaway AWS for tests, with its request recorder and the IAM order rules it lacks
//!
//! [`Moto`] runs moto 5.2.5 (`moto_server` from the venv `scripts/test` creates in
//! `tests/python/.venv`) on a free 127.0.0.1 port. Point an SDK client at [`Moto::endpoint`] with
//! dummy credentials and region us-east-1; moto does not check signatures, and its account is
//! [`Moto::ACCOUNT_ID`]. AWS managed policies (`arn:aws:iam::aws:policy/...`) exist because it
//! starts with `MOTO_IAM_LOAD_MANAGED_POLICIES=true`.
//!
//! Recording is on from the start (`MOTO_ENABLE_RECORDING`): moto appends every request it
//! receives, before handling it, to a file in the temp dir; [`Moto::recorded`] decodes it into
//! [`AwsCall`]s (requests to `/moto-api/...` left out). The recording has requests, not
//! responses: a call moto refused is listed too.
//!
//! What moto is lenient about, so connector tests must not take its word for it:
//! - DeleteUser raises DeleteConflict only for inline or attached policies; it deletes a user that
//!   still has access keys, a login profile, group memberships, MFA devices, signing certificates
//!   or SSH keys, and the group keeps listing the deleted user. [`iam_order_violations`] replays a
//!   recording and reports every call real IAM would refuse for that reason (see its doc)
//! - ListServiceSpecificCredentials is not implemented (HTTP 500)
//! - moto checks no credentials until [`Moto::enable_auth`] (`POST /moto-api/reset-auth`);
//!   then it checks signatures and the caller's IAM policies (actions and Deny; IAM calls reach
//!   it with the resource `*`, so a statement naming ARNs matches nothing). An Inactive access
//!   key still authenticates (real AWS rejects it)
//! - Organizations CreateAccount and CloseAccount complete at once (real AWS: asynchronous,
//!   PENDING_CLOSURE, and at most 10% of the accounts closed per 30 days)
//! - GET /moto-api/data.json ([`Moto::data`]) lists every object created since the last reset,
//!   deleted ones included, and answers 500 once any IAM user was deleted (until [`Moto::reset`]):
//!   assert that something is gone through the AWS API (GetUser, ListAccessKeys), not data.json

mod call;
pub(crate) mod http;
mod iam_rules;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

pub use call::{actions, calls_named, count_calls, AwsCall, CallCounts};
pub use iam_rules::iam_order_violations;

use crate::process::{
    find_program, read_log, spawn_logged, stop_script, tail, terminate, wait_until_ready, Attempt,
    Watchdog,
};
use crate::{free_port, TestkitError};

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const PORT_ATTEMPTS: u32 = 5;
const LOG_TAIL: usize = 40;
/// How much of an unexpected response body goes into an error
const BODY_TAIL: usize = 2000;

/// `tests/python`, where requirements.txt and the venv with moto_server are
pub fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python")
}

/// A throwaway moto_server on a free 127.0.0.1 port, so AWS connectors are tested against a stateful fake
///
/// All methods block on a local HTTP request (or a file read); that is fine from async tests too,
/// because moto is another process, so nothing the test's runtime must drive is waited for.
#[derive(Debug)]
pub struct Moto {
    port: u16,
    child: Child,
    watchdog: Watchdog,
    log_path: PathBuf,
    recording_path: PathBuf,
    dir: tempfile::TempDir,
}

impl Moto {
    /// The account id moto uses for every request
    pub const ACCOUNT_ID: &'static str = "123456789012";
    /// The region to configure clients with
    pub const REGION: &'static str = "us-east-1";
    /// The access key id [`Moto::query`] signs with (moto accepts any)
    pub const ACCESS_KEY_ID: &'static str = "AKIAIOSFODNN7EXAMPLE";

    /// Starts moto_server on a free port, recording on, retrying on a port race
    ///
    /// moto_server is `$REVOKE_MOTO_SERVER` when set, else `tests/python/.venv/bin/moto_server`,
    /// else the first on PATH. It answers about 1.2 s after start; the first IAM call then takes
    /// another 1.2 s (moto loads the AWS managed policies).
    pub fn start() -> Result<Moto, TestkitError> {
        let program = moto_server()?;
        let dir = tempfile::Builder::new()
            .prefix("revoke-moto-")
            .tempdir()
            .map_err(|e| TestkitError::io("create a temp dir for moto", e))?;
        let log_path = dir.path().join("moto.log");
        let recording_path = dir.path().join("recording.jsonl");
        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let mut child = spawn(&program, dir.path(), &log_path, &recording_path, port)?;
            let mut watchdog = match Watchdog::spawn(&stop_script(child.id(), dir.path())) {
                Ok(w) => w,
                Err(e) => {
                    terminate(&mut child, Duration::from_secs(5));
                    return Err(e);
                }
            };
            match wait_ready(&mut child, &log_path, port) {
                Ok(()) => {
                    return Ok(Moto {
                        port,
                        child,
                        watchdog,
                        log_path,
                        recording_path,
                        dir,
                    })
                }
                Err(Attempt::PortTaken(log)) => {
                    last_log = log;
                    watchdog.disarm();
                    terminate(&mut child, Duration::from_secs(5));
                }
                Err(Attempt::Failed(e)) => {
                    watchdog.disarm();
                    terminate(&mut child, Duration::from_secs(5));
                    return Err(e);
                }
            }
        }
        Err(TestkitError::PortRace {
            what: "moto_server".into(),
            attempts: PORT_ATTEMPTS,
            log: last_log,
        })
    }

    /// The URL to give an SDK client (`endpoint_url`), e.g. `http://127.0.0.1:41234`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port moto listens on (on 127.0.0.1)
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Forgets all AWS state (`POST /moto-api/reset`) and clears the recording, so one moto can serve several cases
    ///
    /// Recording stays on or off as it was. It takes about 1.3 s when IAM was used (moto rebuilds the
    /// managed policies), about as long as a new [`Moto::start`]; the next IAM call is then quick.
    pub fn reset(&self) -> Result<(), TestkitError> {
        self.control("POST", "/moto-api/reset").map(drop)?;
        self.clear_recording()
    }

    /// Records every request from now on (recording is on after [`Moto::start`])
    pub fn start_recording(&self) -> Result<(), TestkitError> {
        self.control("POST", "/moto-api/recorder/start-recording")
            .map(drop)
    }

    /// Stops recording, e.g. while seeding state the assertions should not see
    pub fn stop_recording(&self) -> Result<(), TestkitError> {
        self.control("POST", "/moto-api/recorder/stop-recording")
            .map(drop)
    }

    /// Empties the recording, so [`Moto::recorded`] starts over
    pub fn clear_recording(&self) -> Result<(), TestkitError> {
        self.control("POST", "/moto-api/recorder/reset-recording")
            .map(drop)
    }

    /// The AWS requests recorded so far, in the order moto received them (control requests left out)
    ///
    /// moto writes a request to the recording before it answers, so every answered request is there.
    pub fn recorded(&self) -> Result<Vec<AwsCall>, TestkitError> {
        let text = match std::fs::read(&self.recording_path) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(TestkitError::io(
                    format!("read {}", self.recording_path.display()),
                    e,
                ))
            }
        };
        let mut calls = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let call = call::parse_line(line).map_err(|reason| TestkitError::Parse {
                what: format!("line {} of moto's recording", n + 1),
                reason,
            })?;
            if !call.path.starts_with("/moto-api/") {
                calls.push(call);
            }
        }
        Ok(calls)
    }

    /// moto's objects (`GET /moto-api/data.json`): service -> model -> instances, to look at what was created
    ///
    /// It lists every instance created since the last reset, deleted ones included, and moto
    /// answers 500 (an error here) once any IAM user was deleted; use the AWS API to check that
    /// something is gone. Once IAM was used, IAM's part is about 730 kB (1,582 AWSManagedPolicy
    /// instances) and takes 1 to 4 s.
    pub fn data(&self) -> Result<serde_json::Value, TestkitError> {
        let body = self.control("GET", "/moto-api/data.json")?;
        serde_json::from_slice(&body).map_err(|e| TestkitError::Parse {
            what: "moto's /moto-api/data.json".into(),
            reason: e.to_string(),
        })
    }

    /// Sends one query-protocol request (form POST, as IAM and STS take), to seed state without an SDK
    ///
    /// `params` should hold Action and Version, e.g. `[("Action", "CreateUser"), ("Version",
    /// "2010-05-08"), ("UserName", "alice")]`; the Authorization header names
    /// [`Moto::ACCESS_KEY_ID`] and `service` in its credential scope (the signature is a dummy).
    /// Returns the XML body; a status other than 2xx is an error carrying moto's message.
    pub fn query(&self, service: &str, params: &[(&str, &str)]) -> Result<String, TestkitError> {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/20260101/{}/{service}/aws4_request, SignedHeaders=host, Signature=0",
            Self::ACCESS_KEY_ID,
            Self::REGION,
        );
        let action = params
            .iter()
            .find(|(k, _)| *k == "Action")
            .map_or("", |(_, v)| *v);
        let what = format!("moto {service} {action}");
        let response = http::request(
            self.port,
            "POST",
            "/",
            &[
                (
                    "Content-Type",
                    "application/x-www-form-urlencoded; charset=utf-8",
                ),
                ("Authorization", &authorization),
            ],
            body.as_bytes(),
        )
        .map_err(|e| TestkitError::io(format!("send {what}"), e))?;
        let text = String::from_utf8_lossy(&response.body).into_owned();
        if (200..300).contains(&response.status) {
            Ok(text)
        } else {
            Err(TestkitError::HttpStatus {
                request: what,
                status: response.status,
                expected: "2xx".into(),
                body: tail_chars(&text, BODY_TAIL),
            })
        }
    }

    /// [`Moto::query`] for IAM (Version 2010-05-08 added), e.g. `moto.iam("CreateUser", &[("UserName", "alice")])`
    pub fn iam(&self, action: &str, params: &[(&str, &str)]) -> Result<String, TestkitError> {
        let mut all = vec![("Action", action), ("Version", "2010-05-08")];
        all.extend_from_slice(params);
        self.query("iam", &all)
    }

    /// Turns IAM's authorization on: from now on moto checks every request's signature against
    /// the access keys it issued and evaluates the caller's IAM policies, answering
    /// `AccessDenied` (403) to what they do not allow (`POST /moto-api/reset-auth` with 0 free
    /// requests)
    ///
    /// Seed first (with [`Moto::iam`], whose dummy signature is refused once this is on, or with
    /// an SDK client), and make the users whose keys the test will use with
    /// [`Moto::user_with_policy`]. moto evaluates actions and `Deny`, but IAM calls reach it
    /// with the resource `*`: a statement whose `Resource` names ARNs matches nothing there, so
    /// give test policies `"Resource": "*"`. Control requests (`/moto-api/...`) stay open.
    pub fn enable_auth(&self) -> Result<(), TestkitError> {
        self.control_with("POST", "/moto-api/reset-auth", b"0")
            .map(drop)
    }

    /// Turns authorization off again (every request allowed, as after [`Moto::start`])
    pub fn disable_auth(&self) -> Result<(), TestkitError> {
        self.control_with("POST", "/moto-api/reset-auth", b"inf")
            .map(drop)
    }

    /// Makes IAM user `name` with the inline policy `policy` (a JSON document) and an access
    /// key; returns (access key id, secret access key), for a client whose calls moto checks
    /// once [`Moto::enable_auth`] is on. Call it before that.
    pub fn user_with_policy(
        &self,
        name: &str,
        policy: &str,
    ) -> Result<(String, String), TestkitError> {
        self.iam("CreateUser", &[("UserName", name)])?;
        self.iam(
            "PutUserPolicy",
            &[
                ("UserName", name),
                ("PolicyName", "test-policy"),
                ("PolicyDocument", policy),
            ],
        )?;
        let xml = self.iam("CreateAccessKey", &[("UserName", name)])?;
        let field = |tag: &str| {
            xml_field(&xml, tag).ok_or_else(|| TestkitError::Parse {
                what: format!("moto's CreateAccessKey answer for {name}"),
                reason: format!("expected <{tag}>, found {}", tail_chars(&xml, 300)),
            })
        };
        Ok((field("AccessKeyId")?, field("SecretAccessKey")?))
    }

    /// moto_server's whole log so far (one line per request, Python tracebacks of 500s), to print when a test fails
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    /// The temp dir holding the log and the recording
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A moto-api request that must answer 2xx; its body
    fn control(&self, method: &str, path: &str) -> Result<Vec<u8>, TestkitError> {
        self.control_with(method, path, b"")
    }

    /// [`Moto::control`] with a request body
    fn control_with(&self, method: &str, path: &str, body: &[u8]) -> Result<Vec<u8>, TestkitError> {
        let what = format!("moto {method} {path}");
        let response = http::request(self.port, method, path, &[], body)
            .map_err(|e| TestkitError::io(format!("send {what}"), e))?;
        if (200..300).contains(&response.status) {
            Ok(response.body)
        } else {
            Err(TestkitError::HttpStatus {
                request: what,
                status: response.status,
                expected: "2xx".into(),
                body: format!(
                    "{}; moto's log: {}",
                    tail_chars(&String::from_utf8_lossy(&response.body), BODY_TAIL),
                    tail(&self.log(), LOG_TAIL)
                ),
            })
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.watchdog.disarm();
        terminate(&mut self.child, Duration::from_secs(5));
    }
}

/// Polls until moto answers a control request (which also creates the empty recording)
fn wait_ready(child: &mut Child, log_path: &Path, port: u16) -> Result<(), Attempt> {
    wait_until_ready(child, log_path, "moto_server", port, READY_TIMEOUT, || {
        // Asking moto itself (not just connecting) makes sure the port is ours.
        http::request(port, "POST", "/moto-api/recorder/reset-recording", &[], b"")
            .is_ok_and(|r| r.status == 200)
    })
}

fn spawn(
    program: &Path,
    dir: &Path,
    log_path: &Path,
    recording_path: &Path,
    port: u16,
) -> Result<Child, TestkitError> {
    let mut cmd = Command::new(program);
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
        // moto reads any non-empty value as true.
        .env("MOTO_ENABLE_RECORDING", "True")
        .env("MOTO_RECORDER_FILEPATH", recording_path)
        .env("PYTHONUNBUFFERED", "1")
        .current_dir(dir);
    spawn_logged(cmd, log_path, &program.display().to_string())
}

/// `$REVOKE_MOTO_SERVER`, else the venv's, else PATH's moto_server
fn moto_server() -> Result<PathBuf, TestkitError> {
    find_moto_server(
        std::env::var_os("REVOKE_MOTO_SERVER"),
        &python_dir().join(".venv/bin/moto_server"),
        std::env::var_os("PATH"),
    )
}

fn find_moto_server(
    configured: Option<std::ffi::OsString>,
    venv: &Path,
    path: Option<std::ffi::OsString>,
) -> Result<PathBuf, TestkitError> {
    find_program("REVOKE_MOTO_SERVER", configured, venv, path)
        .map_err(|searched| TestkitError::MotoMissing { searched })
}

/// The text of the first `<tag>...</tag>` in an XML answer
fn xml_field(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find('<')?;
    Some(xml[start..end].to_owned())
}

/// The last `n` characters of a text, so a 730 kB body does not flood an error
fn tail_chars(s: &str, n: usize) -> String {
    let count = s.chars().count();
    if count <= n {
        s.to_owned()
    } else {
        let tail: String = s.chars().skip(count - n).collect();
        format!("(last {n} characters) {tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two tests can draw the same free port. The second moto_server cannot bind it, but its
    /// readiness probe reaches the first one's moto, which answers: the second test must see the
    /// port taken (and pick another), never share the first test's moto and its state.
    #[test]
    fn a_moto_of_another_test_on_the_drawn_port_is_not_taken_for_ours() {
        let Ok(program) = moto_server() else {
            panic!("moto_server is not installed: run scripts/test");
        };
        let first = Moto::start().expect("first moto");
        let dir = tempfile::tempdir().expect("tmp");
        let log = dir.path().join("moto.log");
        let mut second = spawn(
            &program,
            dir.path(),
            &log,
            &dir.path().join("recording.jsonl"),
            first.port(),
        )
        .expect("spawn");
        let outcome = wait_ready(&mut second, &log, first.port());
        terminate(&mut second, Duration::from_secs(5));
        match outcome {
            Err(Attempt::PortTaken(_)) => {}
            Ok(()) => panic!("the second moto_server took the first one's for its own"),
            Err(Attempt::Failed(e)) => panic!("expected the port taken, found {e}"),
        }
    }

    #[test]
    fn moto_server_is_looked_up_in_order_and_a_miss_names_scripts_test() {
        let dir = tempfile::tempdir().expect("temp dir");
        let venv = dir.path().join("venv/moto_server");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("bin dir");
        let path = Some(bin.clone().into_os_string());

        let err = find_moto_server(None, &venv, path.clone()).expect_err("nothing installed");
        let msg = err.to_string();
        assert!(msg.contains("scripts/test"), "{msg}");
        assert!(msg.contains(&venv.display().to_string()), "{msg}");

        std::fs::write(bin.join("moto_server"), "").expect("write");
        assert_eq!(
            find_moto_server(None, &venv, path.clone()).ok(),
            Some(bin.join("moto_server"))
        );
        std::fs::create_dir(dir.path().join("venv")).expect("venv dir");
        std::fs::write(&venv, "").expect("write");
        assert_eq!(
            find_moto_server(None, &venv, path.clone()).ok(),
            Some(venv.clone())
        );

        let err = find_moto_server(Some("/nonexistent/moto_server".into()), &venv, path)
            .expect_err("a configured path that does not exist is not silently replaced");
        assert!(
            err.to_string()
                .contains("REVOKE_MOTO_SERVER=/nonexistent/moto_server"),
            "{err}"
        );
    }

    #[test]
    fn long_bodies_are_cut_to_their_tail() {
        assert_eq!(tail_chars("short", 10), "short");
        assert_eq!(tail_chars("abcdef", 2), "(last 2 characters) ef");
    }
}
