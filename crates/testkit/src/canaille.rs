//! Canaille, an OpenID Connect provider with a SCIM 2.0 server, as a second real SCIM app for
//! the SCIM connector's tests
//!
//! [`Canaille`] runs Canaille 0.3.6 (from the venv `scripts/test` creates in
//! `tests/python/canaille/.venv`, apart from scim2-server's because it needs older scim2
//! packages) on a free 127.0.0.1 port with a SQLite database in a temp dir, and an OAuth client
//! (client credentials) whose token [`Canaille::token`] gives. There are no tenants: tests share
//! one server and keep apart by the names they give their users and groups.
//!
//! Where it differs from RFC 7643/7644 and from scim2-server (checked by hand with 0.3.6, and by
//! `crates/testkit/tests/canaille.rs`), which is why it is a stand-in worth having:
//! - `filter` is ignored: every list answers every resource, so a client must check each one
//! - any `count` query parameter answers 500 (a client must be able to leave it out)
//! - `Group.members[].value` is the member's **userName** (RFC: its id) with a `$ref` to
//!   `/Users/<userName>`, which is also the user's `meta.location`; `GET /Users/<userName>`
//!   answers the user, as `GET /Users/<id>` does
//! - a group with no members comes back without `members`; POST of a group needs members, each
//!   with a `$ref`
//! - the user's own `groups` attribute is right; deleting a user takes it out of its groups
//! - a PATCH `remove` of `members[value eq "..."]` answers 500 and a `remove` of `members`
//!   400 (members is required): only `replace` of `members` takes a member out
//! - PATCH answers 200 with the resource and a new weak ETag; a stale If-Match is 412; ETags have
//!   one-second resolution (two writes within a second share one)
//! - externalId is not kept; the enterprise `employeeNumber` is

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use base64::Engine;

use crate::moto::http;
use crate::moto::python_dir;
use crate::process::{
    find_program, read_log, run, spawn_logged, stop_script, terminate, wait_until_ready, Attempt,
    Watchdog,
};
use crate::{free_port, TestkitError};

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const PORT_ATTEMPTS: u32 = 5;
const CLIENT_ID: &str = "revoke-test";
const CLIENT_SECRET: &str = "revoke-test-canaille-secret";

/// A throwaway Canaille on a free 127.0.0.1 port, so the SCIM connector meets a second real SCIM
/// implementation with other habits than scim2-server's
#[derive(Debug)]
pub struct Canaille {
    port: u16,
    token: String,
    child: Child,
    watchdog: Watchdog,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Canaille {
    /// Installs a database, makes the OAuth client and starts `canaille run` on a free port,
    /// retrying on a port race (about 12 s in all)
    ///
    /// canaille is `$REVOKE_CANAILLE` when set, else `tests/python/canaille/.venv/bin/canaille`,
    /// else the first on PATH.
    pub fn start() -> Result<Canaille, TestkitError> {
        let program = find_program(
            "REVOKE_CANAILLE",
            std::env::var_os("REVOKE_CANAILLE"),
            &python_dir().join("canaille/.venv/bin/canaille"),
            std::env::var_os("PATH"),
        )
        .map_err(|searched| {
            TestkitError::io(
                format!("find canaille at {searched} (run scripts/test, which creates tests/python/canaille/.venv, or set REVOKE_CANAILLE)"),
                std::io::Error::from(std::io::ErrorKind::NotFound),
            )
        })?;
        let dir = tempfile::Builder::new()
            .prefix("revoke-canaille-")
            .tempdir()
            .map_err(|e| TestkitError::io("create a temp dir for canaille", e))?;
        let config = dir.path().join("canaille.toml");
        let log_path = dir.path().join("canaille.log");
        // The database and the client do not depend on the port.
        write_config(&config, dir.path(), 0)?;
        let cli = |args: &[&str], what: &str| {
            let mut cmd = Command::new(&program);
            cmd.args(args)
                .env("CANAILLE_CONFIG", &config)
                .current_dir(dir.path());
            run(cmd, what, None)
        };
        cli(&["install"], "canaille install")?;
        cli(
            &[
                "create",
                "client",
                "--client-id",
                CLIENT_ID,
                "--client-secret",
                CLIENT_SECRET,
                "--grant-types",
                "client_credentials",
                "--token-endpoint-auth-method",
                "client_secret_basic",
                "--scope",
                "openid",
            ],
            "canaille create client",
        )?;
        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            // Flask routes by SERVER_NAME: it must be the address clients use.
            write_config(&config, dir.path(), port)?;
            let mut child = spawn(&program, &config, dir.path(), &log_path, port)?;
            let mut watchdog = match Watchdog::spawn(&stop_script(child.id(), dir.path())) {
                Ok(w) => w,
                Err(e) => {
                    terminate(&mut child, Duration::from_secs(5));
                    return Err(e);
                }
            };
            let mut token = None;
            let ready = wait_until_ready(
                &mut child,
                &log_path,
                "canaille",
                port,
                READY_TIMEOUT,
                || {
                    token = fetch_token(port).ok();
                    token.is_some()
                },
            );
            match (ready, token) {
                (Ok(()), Some(token)) => {
                    return Ok(Canaille {
                        port,
                        token,
                        child,
                        watchdog,
                        log_path,
                        _dir: dir,
                    })
                }
                (Err(Attempt::PortTaken(log)), _) => {
                    last_log = log;
                    watchdog.disarm();
                    terminate(&mut child, Duration::from_secs(5));
                }
                (Err(Attempt::Failed(e)), _) => {
                    watchdog.disarm();
                    terminate(&mut child, Duration::from_secs(5));
                    return Err(e);
                }
                // Ready means a token was fetched; kept total all the same.
                (Ok(()), None) => {
                    watchdog.disarm();
                    terminate(&mut child, Duration::from_secs(5));
                    return Err(TestkitError::NotReady {
                        what: "canaille's token endpoint".into(),
                        addr: format!("127.0.0.1:{port}"),
                        waited: READY_TIMEOUT,
                        log: read_log(&log_path),
                    });
                }
            }
        }
        Err(TestkitError::PortRace {
            what: "canaille".into(),
            attempts: PORT_ATTEMPTS,
            log: last_log,
        })
    }

    /// The SCIM root (`http://127.0.0.1:PORT/scim/v2`)
    pub fn scim_url(&self) -> String {
        format!("http://127.0.0.1:{}/scim/v2", self.port)
    }

    /// A bearer token of the OAuth client (client credentials; valid for ten days)
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The OAuth client's id and secret (`POST /oauth/token`, client_secret_basic)
    pub fn client_credentials(&self) -> (&'static str, &'static str) {
        (CLIENT_ID, CLIENT_SECRET)
    }

    /// The port it listens on (on 127.0.0.1)
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Canaille's log so far, to print when a test fails
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }
}

impl Drop for Canaille {
    fn drop(&mut self) {
        self.watchdog.disarm();
        terminate(&mut self.child, Duration::from_secs(5));
    }
}

fn write_config(path: &Path, dir: &Path, port: u16) -> Result<(), TestkitError> {
    let db = dir.join("canaille.sqlite");
    let text = format!(
        "SECRET_KEY = \"revoke-testkit-only\"\nSERVER_NAME = \"127.0.0.1:{port}\"\nPREFERRED_URL_SCHEME = \"http\"\n\n[CANAILLE_SQL]\nDATABASE_URI = \"sqlite:///{}\"\n",
        db.display()
    );
    std::fs::write(path, text).map_err(|e| TestkitError::io(format!("write {}", path.display()), e))
}

/// A client-credentials token, when the server answers one (so the port is ours and ready)
fn fetch_token(port: u16) -> Result<String, String> {
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    let auth = format!("Basic {basic}");
    let r = http::request(
        port,
        "POST",
        "/oauth/token",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        b"grant_type=client_credentials",
    )
    .map_err(|e| e.to_string())?;
    if r.status != 200 {
        return Err(format!("token: http {}", r.status));
    }
    let v: serde_json::Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
    v.get("access_token")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| "no access_token".to_string())
}

fn spawn(
    program: &Path,
    config: &Path,
    dir: &Path,
    log_path: &Path,
    port: u16,
) -> Result<Child, TestkitError> {
    let mut cmd = Command::new(program);
    cmd.args(["run", "--bind", &format!("127.0.0.1:{port}")])
        .env("CANAILLE_CONFIG", config)
        .env("PYTHONUNBUFFERED", "1")
        .current_dir(dir);
    spawn_logged(cmd, log_path, &program.display().to_string())
}
