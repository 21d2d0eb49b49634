//! A throwaway PostgreSQL cluster for tests

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::process::{as_postgres, is_root, read_log, run, sh_quote, tail, Watchdog};
use crate::{free_port, TestkitError};

const PORT_ATTEMPTS: u32 = 5;
const LOG_TAIL: usize = 40;
const PG_ROOT: &str = "/usr/lib/postgresql";

/// A throwaway PostgreSQL cluster on a free 127.0.0.1 port, so the store is tested against the real server
///
/// initdb (`--auth=trust -U postgres`, no locale, UTF8) into a temp dir, started with
/// `pg_ctl -w start` and `-c listen_addresses=127.0.0.1 -c fsync=off`, its unix socket in the same
/// dir. As root, initdb and pg_ctl run through `runuser -u postgres --` (they refuse root) and the
/// temp dir (under /tmp, which the postgres user can reach) is chowned to postgres. Binaries come
/// from `PG_BIN` or the newest `/usr/lib/postgresql/<version>/bin`.
///
/// `Drop` runs `pg_ctl stop -m immediate` and removes the temp dir. If this process dies first
/// (or never drops it: [`Postgres::shared`] lives in a static, which Rust never drops), a watchdog
/// `sh` sees the pipe from this process close at exit and runs the same stop and removal.
#[derive(Debug)]
pub struct Postgres {
    port: u16,
    bin: PathBuf,
    log_path: PathBuf,
    databases: AtomicU64,
    watchdog: Watchdog,
    dir: tempfile::TempDir,
}

impl Postgres {
    /// Starts a new cluster of its own, for a test that needs the whole server (most use [`Postgres::shared`])
    pub fn start() -> Result<Postgres, TestkitError> {
        let bin = find_bin()?;
        let mut builder = tempfile::Builder::new();
        builder.prefix("revoke-pg-");
        let dir = if is_root() {
            builder.tempdir_in("/tmp")
        } else {
            builder.tempdir()
        }
        .map_err(|e| TestkitError::io("create a temp dir for postgres", e))?;
        let data = dir.path().to_path_buf();
        if is_root() {
            let mut chown = Command::new("chown");
            chown.arg("postgres").arg(&data);
            run(chown, "chown postgres (the postgres data dir)", None)?;
        }

        let mut initdb = as_postgres(&bin.join("initdb"));
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-locale",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        run(initdb, "initdb", None)?;

        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let log_path = data.join(format!("server-{port}.log"));
            let options = format!(
                "-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off",
                sock = sh_quote(&data.to_string_lossy())
            );
            let mut start = as_postgres(&bin.join("pg_ctl"));
            start
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(&log_path)
                .args(["-o", &options, "-w", "-t", "30", "start"]);
            match run(start, &format!("pg_ctl start (port {port})"), None) {
                Ok(_) => {
                    let watchdog = Watchdog::spawn(&format!(
                        "{stop} >/dev/null 2>&1; rm -rf {dir}",
                        stop = stop_command(&bin, &data),
                        dir = sh_quote(&data.to_string_lossy()),
                    ));
                    let watchdog = match watchdog {
                        Ok(w) => w,
                        Err(e) => {
                            stop(&bin, &data);
                            return Err(e);
                        }
                    };
                    return Ok(Postgres {
                        port,
                        bin,
                        log_path,
                        databases: AtomicU64::new(0),
                        watchdog,
                        dir,
                    });
                }
                Err(e) => {
                    let log = read_log(&log_path);
                    if log.contains("could not bind") || log.contains("Address already in use") {
                        last_log = tail(&log, LOG_TAIL);
                        continue;
                    }
                    return Err(match e {
                        TestkitError::ToolFailed {
                            program,
                            status,
                            output,
                        } => TestkitError::ToolFailed {
                            program,
                            status,
                            output: format!("{output}\nserver log:\n{}", tail(&log, LOG_TAIL)),
                        },
                        other => other,
                    });
                }
            }
        }
        Err(TestkitError::PortRace {
            what: "postgres".into(),
            attempts: PORT_ATTEMPTS,
            log: last_log,
        })
    }

    /// One cluster shared by every test of this test binary, so tests pay initdb once and isolate with [`Postgres::fresh_database`]
    ///
    /// It is never dropped (it lives in a process-wide `OnceLock`): its watchdog stops it with
    /// `pg_ctl stop -m immediate` and removes its dir when the test process exits. Panics when the
    /// cluster cannot be started, with the reason.
    pub fn shared() -> &'static Postgres {
        static SHARED: OnceLock<Postgres> = OnceLock::new();
        SHARED.get_or_init(|| match Postgres::start() {
            Ok(pg) => pg,
            Err(e) => panic!("the shared postgres should start: {e}"),
        })
    }

    /// The URL of the `postgres` database, e.g. `postgres://postgres@127.0.0.1:41234/postgres`
    pub fn url(&self) -> String {
        self.database_url("postgres")
    }

    /// The port the cluster listens on (on 127.0.0.1)
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates a new, uniquely named, empty database and returns its URL, so tests do not see each other's data
    pub fn fresh_database(&self) -> Result<String, TestkitError> {
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        let name = format!("test_{}_{n}", std::process::id());
        self.psql("postgres", &format!("CREATE DATABASE {name}"))?;
        Ok(self.database_url(&name))
    }

    /// Runs SQL with psql against a database of this cluster and returns psql's unaligned, tuples-only output, for assertions
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, TestkitError> {
        let mut cmd = Command::new(self.bin.join("psql"));
        cmd.args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
        ])
        .arg("-p")
        .arg(self.port.to_string())
        .args(["-d", database, "-c", sql]);
        run(cmd, &format!("psql -d {database} -c {sql:?}"), None)
    }

    /// The server log so far, to print when a test fails
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    fn database_url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The data directory (also the unix socket directory)
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.watchdog.disarm();
        stop(&self.bin, self.dir.path());
    }
}

fn stop(bin: &Path, data: &Path) {
    let mut cmd = as_postgres(&bin.join("pg_ctl"));
    cmd.arg("-D")
        .arg(data)
        .args(["-m", "immediate", "-w", "stop"]);
    let _ = run(cmd, "pg_ctl stop", None);
}

fn stop_command(bin: &Path, data: &Path) -> String {
    let pg_ctl = sh_quote(&bin.join("pg_ctl").to_string_lossy());
    let data = sh_quote(&data.to_string_lossy());
    let runuser = if is_root() {
        "runuser -u postgres -- "
    } else {
        ""
    };
    format!("{runuser}{pg_ctl} -D {data} -m immediate -w stop")
}

/// `PG_BIN`, else the newest `/usr/lib/postgresql/<version>/bin` holding initdb
fn find_bin() -> Result<PathBuf, TestkitError> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(PG_ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| TestkitError::NoPostgres {
            searched: PathBuf::from(PG_ROOT),
        })
}
