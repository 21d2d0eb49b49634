//! scim2-server, an in-memory SCIM 2.0 server (RFC 7643/7644) for the SCIM connector's tests
//!
//! [`Scim2Server`] runs scim2-server 0.8.3 (from the venv `scripts/test` creates in
//! `tests/python/.venv`) on a free 127.0.0.1 port, with a bearer token and dynamic tenants: a
//! tenant is made on the first request to `/NAME`, so each test takes its own
//! [`Scim2Server::tenant_url`] and starts from an empty app, with no reset needed.
//!
//! What it does, checked by hand with 0.8.3: ServiceProviderConfig announces etag, patch, filter,
//! sort, bulk and changePassword; every resource has `meta.version` (`W/"n"`, one counter per
//! tenant) and an ETag header; a stale If-Match is 412; PATCH and DELETE answer 204, DELETE of a
//! missing user 404; a duplicate userName is 409; filters are parsed strictly (a bad quote is 400
//! `invalidFilter`).
//!
//! Where it is more lenient than real apps, so tests must not take its word for it:
//! - a User has no `groups` attribute; groups are found through `/Groups?filter=members.value`
//! - a deleted user stays listed in `Group.members`
//! - a PATCH `remove` whose filter matches no member answers 204 (RFC 7644 asks for 400 noTarget)
//! - it serves one request at a time (wsgiref, HTTP/1.0)

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use crate::moto::http;
use crate::moto::python_dir;
use crate::process::{
    find_program, read_log, spawn_logged, stop_script, terminate, wait_until_ready, Attempt,
    Watchdog,
};
use crate::{free_port, TestkitError};

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const PORT_ATTEMPTS: u32 = 5;

/// A throwaway scim2-server on a free 127.0.0.1 port, so SCIM connectors are tested against a real SCIM implementation
#[derive(Debug)]
pub struct Scim2Server {
    port: u16,
    child: Child,
    watchdog: Watchdog,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Scim2Server {
    /// The bearer token the server accepts
    pub const TOKEN: &'static str = "revoke-test-scim-token";

    /// Starts scim2-server on a free port with dynamic tenants, retrying on a port race
    ///
    /// scim2-server is `$REVOKE_SCIM2_SERVER` when set, else `tests/python/.venv/bin/scim2-server`,
    /// else the first on PATH.
    pub fn start() -> Result<Scim2Server, TestkitError> {
        let program = find_program(
            "REVOKE_SCIM2_SERVER",
            std::env::var_os("REVOKE_SCIM2_SERVER"),
            &python_dir().join(".venv/bin/scim2-server"),
            std::env::var_os("PATH"),
        )
        .map_err(|searched| TestkitError::Scim2ServerMissing { searched })?;
        let dir = tempfile::Builder::new()
            .prefix("revoke-scim2-")
            .tempdir()
            .map_err(|e| TestkitError::io("create a temp dir for scim2-server", e))?;
        let log_path = dir.path().join("scim2-server.log");
        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let mut child = spawn(&program, dir.path(), &log_path, port)?;
            let mut watchdog = match Watchdog::spawn(&stop_script(child.id(), dir.path())) {
                Ok(w) => w,
                Err(e) => {
                    terminate(&mut child, Duration::from_secs(5));
                    return Err(e);
                }
            };
            match wait_ready(&mut child, &log_path, port) {
                Ok(()) => {
                    return Ok(Scim2Server {
                        port,
                        child,
                        watchdog,
                        log_path,
                        _dir: dir,
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
            what: "scim2-server".into(),
            attempts: PORT_ATTEMPTS,
            log: last_log,
        })
    }

    /// The SCIM root of tenant `name` (`http://127.0.0.1:PORT/NAME/v2`), made on first use
    ///
    /// `name` should be a plain path segment (letters, digits, `-`, `_`).
    pub fn tenant_url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}/v2", self.port)
    }

    /// The port it listens on (on 127.0.0.1)
    pub fn port(&self) -> u16 {
        self.port
    }

    /// scim2-server's log so far, to print when a test fails
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }
}

impl Drop for Scim2Server {
    fn drop(&mut self) {
        self.watchdog.disarm();
        terminate(&mut self.child, Duration::from_secs(5));
    }
}

/// Polls until the server answers GET ServiceProviderConfig with our token, in a tenant of its
/// own (with dynamic tenants, /v2 itself is not served)
fn wait_ready(child: &mut Child, log_path: &Path, port: u16) -> Result<(), Attempt> {
    let auth = format!("Bearer {}", Scim2Server::TOKEN);
    wait_until_ready(child, log_path, "scim2-server", port, READY_TIMEOUT, || {
        // Asking with our token (not just connecting) makes sure the port is ours.
        http::request(
            port,
            "GET",
            "/revoke-ready/v2/ServiceProviderConfig",
            &[("Authorization", &auth)],
            b"",
        )
        .is_ok_and(|r| r.status == 200)
    })
}

fn spawn(program: &Path, dir: &Path, log_path: &Path, port: u16) -> Result<Child, TestkitError> {
    let mut cmd = Command::new(program);
    cmd.args([
        "--hostname",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--bearer-token",
        Scim2Server::TOKEN,
        "--dynamic-tenants",
    ])
    .env("PYTHONUNBUFFERED", "1")
    .current_dir(dir);
    spawn_logged(cmd, log_path, &program.display().to_string())
}
