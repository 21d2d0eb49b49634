//! Prism (Stoplight) in proxy mode in front of the GitHub stand-in, checking every request and
//! response against GitHub's own OpenAPI description, and GraphQL documents against GitHub's schema
//!
//! The chain is `client -> recorder -> prism proxy --errors -> stand-in`. The recorder (in
//! process) reads Prism's verdicts off each answer (the `sl-violations` header, and Prism's own
//! `application/problem+json` errors), because with `--errors` Prism's log says only "Request/
//! Response not valid" without the details. The spec is `ghec.json` of `@octokit/openapi`
//! trimmed to the operations the connector uses (`tests/github/trim-spec.mjs`, cached in
//! `tests/github/.cache`); with it Prism is ready in about 2.7 s (2 cores; 15 s with the full spec).
//!
//! What Prism does, found by experiment (Prism 5.14.2, `--errors`):
//! - a response whose body breaks the schema (a missing required field, a wrong type or enum):
//!   Prism answers 500 `application/problem+json` (type `.../errors#VIOLATIONS`) instead of the
//!   stand-in's answer; severity Error
//! - a request that breaks the spec (a body `{"action":"nope"}`, `per_page=abc`): Prism answers
//!   422 (type `.../errors#UNPROCESSABLE_ENTITY`) itself and does not forward it; severity Error
//! - a path the spec does not have: 404 (type `.../errors#NO_PATH_MATCHED_ERROR`); severity Error
//! - a status the operation does not declare (the 401 Bad credentials, the 403 rate limits on
//!   most GETs, injected 502/503, 404 on `DELETE .../teams/{slug}/memberships/{u}` and
//!   `DELETE /repos/.../invitations/{id}`): passed through unchanged with an `sl-violations`
//!   Warning "Unable to match the returned status code with those defined in the document"
//! - a declared error status (the 422 of `DELETE /orgs/{org}/outside_collaborators/{u}` for a
//!   member, 404s that are declared, 403 where declared): passed through, no violation
//! - `Accept` is not negotiated in proxy mode: `application/vnd.github+json`, `application/json`
//!   and `*/*` all pass without a violation (the 406 noted in docs was not seen in proxy mode)
//! - `POST /graphql` is no path of the spec (404 NO_PATH_MATCHED): GraphQL goes to the stand-in
//!   directly ([`crate::GithubStandin::graphql_url`]), its documents are checked by
//!   [`validate_graphql`]
//! - the query `owner[]=a&owner[]=b` of `GET /orgs/{org}/personal-access-tokens` passes
//! - authentication is not checked by Prism (the stand-in does)
//!
//! GitHub Enterprise Server: Prism routes on the path alone and ignores the spec's `servers` base
//! path (the GHES descriptions declare `{protocol}://{hostname}/api/v3`; `/api/v3/orgs/x` is
//! "no path matched" even with them), and the GHES descriptions lack credential-authorizations
//! and org invitations. So GHES tests talk to the stand-in's `/api/v3` prefix directly
//! ([`crate::GithubStandin::ghes_url`]); the bodies there are the same as at `/`.

use std::fmt;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::process::{poll, read_log, run, sh_quote, tail, terminate, Watchdog};
use crate::serve::ServerThread;
use crate::{free_port, TestkitError};

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const PORT_ATTEMPTS: u32 = 5;
const LOG_TAIL: usize = 40;

/// `tests/github`, where package.json, the node scripts and node_modules are
pub fn github_node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/github")
}

/// Fails with a message saying how to install the node packages when they are missing
fn node_dir() -> Result<PathBuf, TestkitError> {
    let dir = github_node_dir();
    let needed = [
        "node_modules/.bin/prism",
        "node_modules/@octokit/openapi/generated/ghec.json",
        "node_modules/@octokit/graphql-schema/schema.json",
        "node_modules/graphql/package.json",
    ];
    if needed.iter().all(|p| dir.join(p).exists()) {
        Ok(dir)
    } else {
        Err(TestkitError::NodeModulesMissing { dir })
    }
}

/// The trimmed spec, made (or found in the cache) once per process
fn trimmed_spec() -> Result<PathBuf, TestkitError> {
    static SPEC: OnceLock<PathBuf> = OnceLock::new();
    if let Some(p) = SPEC.get() {
        return Ok(p.clone());
    }
    let dir = node_dir()?;
    let mut cmd = Command::new("node");
    cmd.arg("trim-spec.mjs").current_dir(&dir);
    let out = run(cmd, "node tests/github/trim-spec.mjs", None)?;
    let path = PathBuf::from(out.trim());
    Ok(SPEC.get_or_init(|| path).clone())
}

/// One verdict of Prism on one exchange
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrismViolation {
    /// The request method
    pub method: String,
    /// The request path and query
    pub path: String,
    /// The status the client got
    pub status: u16,
    /// `Error` (the exchange breaks the spec) or `Warning` (an undeclared status code)
    pub severity: String,
    /// Where, e.g. `response.body` or `request.body.action`
    pub location: String,
    /// Prism's message
    pub message: String,
}

impl fmt::Display for PrismViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} -> {}: {} {}: {}",
            self.method, self.path, self.status, self.severity, self.location, self.message
        )
    }
}

/// Prism in proxy mode (`--errors`) in front of an upstream, with a recorder in front of Prism
/// that collects every violation; Prism is killed on Drop (and by a watchdog if this process dies)
#[derive(Debug)]
pub struct Prism {
    front: ServerThread,
    violations: Arc<Mutex<Vec<PrismViolation>>>,
    child: Child,
    watchdog: Watchdog,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

#[derive(Debug, Clone)]
struct Front {
    prism: String,
    client: Client<HttpConnector, Body>,
    violations: Arc<Mutex<Vec<PrismViolation>>>,
}

impl Prism {
    /// Starts `prism proxy` for `upstream` (e.g. [`crate::GithubStandin::url`]) with the trimmed
    /// GitHub spec; fails with a clear message when `tests/github/node_modules` is missing
    pub fn start(upstream: &str) -> Result<Prism, TestkitError> {
        Self::start_with_spec(&trimmed_spec()?, upstream)
    }

    /// The same with another Swagger 2.0 or OpenAPI description (the Google stand-in's, made by
    /// `tests/google/make-spec.mjs`); Prism itself still comes from `tests/github/node_modules`
    pub fn start_with_spec(spec: &Path, upstream: &str) -> Result<Prism, TestkitError> {
        let dir = node_dir()?;
        let tmp = tempfile::Builder::new()
            .prefix("revoke-prism-")
            .tempdir()
            .map_err(|e| TestkitError::io("create a temp dir for prism", e))?;
        let log_path = tmp.path().join("prism.log");
        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let log = std::fs::File::create(&log_path)
                .map_err(|e| TestkitError::io(format!("create {}", log_path.display()), e))?;
            let log_err = log
                .try_clone()
                .map_err(|e| TestkitError::io("clone the prism log handle", e))?;
            let mut child = Command::new(dir.join("node_modules/.bin/prism"))
                .args(["proxy", "-h", "127.0.0.1", "-p", &port.to_string()])
                .arg(spec)
                .arg(upstream)
                .arg("--errors")
                .current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err)
                .spawn()
                .map_err(|e| TestkitError::io("run tests/github/node_modules/.bin/prism", e))?;
            let watchdog = match Watchdog::spawn(&format!(
                "kill -TERM {pid} 2>/dev/null; sleep 1; kill -KILL {pid} 2>/dev/null; rm -rf {dir}",
                pid = child.id(),
                dir = sh_quote(&tmp.path().to_string_lossy()),
            )) {
                Ok(w) => w,
                Err(e) => {
                    terminate(&mut child, Duration::from_secs(2));
                    return Err(e);
                }
            };
            let ready = poll(READY_TIMEOUT, || {
                if TcpStream::connect(("127.0.0.1", port)).is_ok()
                    && crate::process::listens_on(child.id(), port)
                {
                    return Some(true);
                }
                matches!(child.try_wait(), Ok(Some(_))).then_some(false)
            });
            match ready {
                Some(true) => {
                    let violations = Arc::new(Mutex::new(Vec::new()));
                    let front = Front {
                        prism: format!("http://127.0.0.1:{port}"),
                        // Node closes an idle keep-alive connection after 5 s; a pooled one
                        // reused as it closes is a 502. Drop ours well before that.
                        client: Client::builder(TokioExecutor::new())
                            .pool_idle_timeout(Duration::from_secs(2))
                            .build_http(),
                        violations: violations.clone(),
                    };
                    let app = Router::new().fallback(forward).with_state(front);
                    let front = match ServerThread::start("prism recorder", app) {
                        Ok(f) => f,
                        Err(e) => {
                            terminate(&mut child, Duration::from_secs(2));
                            return Err(e);
                        }
                    };
                    return Ok(Prism {
                        front,
                        violations,
                        child,
                        watchdog,
                        log_path,
                        _dir: tmp,
                    });
                }
                Some(false) => {
                    // It exited: most likely another process took the port first; try another.
                    last_log = read_log(&log_path);
                    if !last_log.contains("EADDRINUSE") {
                        let status = child
                            .wait()
                            .map_err(|e| TestkitError::io("wait for prism", e))?;
                        return Err(TestkitError::Exited {
                            what: format!("prism on 127.0.0.1:{port}"),
                            status,
                            log: tail(&last_log, LOG_TAIL),
                        });
                    }
                    drop(watchdog);
                }
                None => {
                    terminate(&mut child, Duration::from_secs(2));
                    return Err(TestkitError::NotReady {
                        what: "prism".into(),
                        addr: format!("127.0.0.1:{port}"),
                        waited: READY_TIMEOUT,
                        log: tail(&read_log(&log_path), LOG_TAIL),
                    });
                }
            }
        }
        Err(TestkitError::PortRace {
            what: "prism".into(),
            attempts: PORT_ATTEMPTS,
            log: tail(&last_log, LOG_TAIL),
        })
    }

    /// The base URL clients use: the recorder in front of Prism
    pub fn rest_url(&self) -> String {
        format!("http://{}", self.front.addr())
    }

    /// Every violation so far, one line each (`GET /orgs/acme -> 500: Error response.body: ...`)
    pub fn violations(&self) -> Vec<String> {
        self.details().iter().map(ToString::to_string).collect()
    }

    /// Only the Error violations: broken bodies, malformed requests, unknown paths (not the
    /// Warnings about undeclared status codes, which the knobs produce on purpose)
    pub fn errors(&self) -> Vec<String> {
        self.details()
            .iter()
            .filter(|v| v.severity != "Warning")
            .map(ToString::to_string)
            .collect()
    }

    /// Every violation so far, structured
    pub fn details(&self) -> Vec<PrismViolation> {
        self.violations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Forgets the violations seen so far
    pub fn clear(&self) {
        self.violations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Prism's log, to read when something is off
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }
}

impl Drop for Prism {
    fn drop(&mut self) {
        self.watchdog.disarm();
        terminate(&mut self.child, Duration::from_secs(2));
    }
}

/// Forwards one request to Prism and records its verdicts
async fn forward(State(front): State<Front>, req: Request) -> Response {
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let (mut parts, body) = req.into_parts();
    parts.uri = match format!("{}{path}", front.prism).parse() {
        Ok(uri) => uri,
        Err(_) => return (http::StatusCode::BAD_REQUEST, "bad uri").into_response(),
    };
    let response = match front.client.request(Request::from_parts(parts, body)).await {
        Ok(r) => r,
        Err(e) => {
            return (
                http::StatusCode::BAD_GATEWAY,
                format!("the prism recorder could not reach prism: {e}"),
            )
                .into_response()
        }
    };
    let (parts, body) = response.into_parts();
    let status = parts.status.as_u16();
    let mut found = Vec::new();
    let mut add = |severity: &str, location: String, message: String| {
        found.push(PrismViolation {
            method: method.clone(),
            path: path.clone(),
            status,
            severity: severity.to_owned(),
            location,
            message,
        })
    };
    if let Some(header) = parts.headers.get("sl-violations") {
        let list: Vec<Value> = serde_json::from_slice(header.as_bytes()).unwrap_or_default();
        for v in list {
            add(
                v["severity"].as_str().unwrap_or("Error"),
                location(&v),
                v["message"].as_str().unwrap_or_default().to_owned(),
            );
        }
    }
    let problem = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|c| c.as_bytes().starts_with(b"application/problem+json"));
    let body = if problem {
        // Prism's own error: read it (small) for the details, then pass it on unchanged.
        let bytes = axum::body::to_bytes(Body::new(body), 1 << 20)
            .await
            .unwrap_or_default();
        let p: Value = serde_json::from_slice(&bytes).unwrap_or_default();
        if !parts.headers.contains_key("sl-violations") {
            // A refused request's locations lack the `request.` prefix the header has.
            let prefix = if p["type"]
                .as_str()
                .unwrap_or_default()
                .ends_with("UNPROCESSABLE_ENTITY")
            {
                "request."
            } else {
                ""
            };
            match p["validation"].as_array() {
                Some(list) if !list.is_empty() => {
                    for v in list {
                        add(
                            v["severity"].as_str().unwrap_or("Error"),
                            format!("{prefix}{}", location(v)),
                            v["message"].as_str().unwrap_or_default().to_owned(),
                        );
                    }
                }
                _ => add(
                    "Error",
                    p["type"].as_str().unwrap_or("prism").to_owned(),
                    format!(
                        "{}: {}",
                        p["title"].as_str().unwrap_or_default(),
                        p["detail"].as_str().unwrap_or_default()
                    ),
                ),
            }
        }
        Body::from(bytes)
    } else {
        Body::new(body)
    };
    front
        .violations
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(found);
    Response::from_parts(parts, body)
}

fn location(v: &Value) -> String {
    v["location"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|s| {
                    s.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| s.to_string())
                })
                .collect::<Vec<_>>()
                .join(".")
        })
        .unwrap_or_default()
}

/// Validates GraphQL documents against GitHub's public schema (`@octokit/graphql-schema`) with
/// graphql-js, because the stand-in answers by operation name and cannot catch a wrong field
pub fn validate_graphql(documents: &[String]) -> Result<(), TestkitError> {
    let dir = node_dir()?;
    let input = serde_json::to_string(documents).unwrap_or_else(|_| "[]".to_owned());
    let mut cmd = Command::new("node");
    cmd.arg("validate-graphql.mjs").current_dir(&dir);
    match run(cmd, "node tests/github/validate-graphql.mjs", Some(&input)) {
        Ok(_) => Ok(()),
        Err(TestkitError::ToolFailed { status, output, .. }) if status.code() == Some(1) => {
            Err(TestkitError::GraphqlInvalid { errors: output })
        }
        Err(e) => Err(e),
    }
}
