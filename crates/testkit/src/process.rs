//! Running helper programs, stopping children and the dead-parent watchdog

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::TestkitError;

/// Whether we run as root, because initdb and pg_ctl refuse root and need `runuser`
pub(crate) fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Runs a program to completion, feeding `stdin` from a thread (no pipe deadlock on big LDIF),
/// and returns its stdout when it succeeds
pub(crate) fn run(
    mut cmd: Command,
    what: &str,
    stdin: Option<&str>,
) -> Result<String, TestkitError> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| TestkitError::io(format!("run {what}"), e))?;
    let writer = match (stdin, child.stdin.take()) {
        (Some(input), Some(mut pipe)) => {
            let input = input.to_owned();
            Some(std::thread::spawn(move || pipe.write_all(input.as_bytes())))
        }
        _ => None,
    };
    let out = child
        .wait_with_output()
        .map_err(|e| TestkitError::io(format!("wait for {what}"), e))?;
    if let Some(writer) = writer {
        // A write error (EPIPE) only matters when the program also failed, which is reported below.
        let _ = writer.join();
    }
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(TestkitError::ToolFailed {
            program: what.to_owned(),
            status: out.status,
            output: format!("{}{}", stdout.trim_end(), prefixed("\n", stderr.trim_end())),
        })
    }
}

fn prefixed(prefix: &str, s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!("{prefix}{s}")
    }
}

/// The last `n` lines of a log, so errors stay readable
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    let mut out = lines[start..].join("\n");
    if out.is_empty() {
        out.push_str("(empty)");
    } else if start > 0 {
        out.insert_str(0, &format!("(last {n} lines)\n"));
    }
    out
}

/// Reads a log file as text, empty when it does not exist yet
pub(crate) fn read_log(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Starts `cmd` with stdin closed and stdout and stderr both appended to a new `log_path`;
/// `what` names the program in errors.
///
/// Unless the caller set `HOME`, the program's `HOME` is the directory of its log (every stand-in
/// keeps its log in its own temp dir): tests run in parallel processes, and a program that writes
/// under `~` through a fixed name (OpenBao's dev server writes `~/.vault-token.tmp` then renames
/// it) made two stand-ins starting at once race, and one of them exit.
pub(crate) fn spawn_logged(
    mut cmd: std::process::Command,
    log_path: &Path,
    what: &str,
) -> Result<Child, TestkitError> {
    if !cmd.get_envs().any(|(k, _)| k == "HOME") {
        if let Some(dir) = log_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            cmd.env("HOME", dir);
        }
    }
    let log = std::fs::File::create(log_path)
        .map_err(|e| TestkitError::io(format!("create {}", log_path.display()), e))?;
    let log_err = log
        .try_clone()
        .map_err(|e| TestkitError::io(format!("duplicate the {what} log handle"), e))?;
    cmd.stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|e| TestkitError::io(format!("run {what}"), e))
}

/// Sends SIGTERM, waits up to `grace`, then SIGKILL, so a child never outlives its owner
pub(crate) fn terminate(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Single-quotes a string for `sh -c`
pub(crate) fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A `sh` that runs a cleanup script when this process dies without dropping the owner
///
/// It blocks reading a pipe whose only write end we hold (Rust opens pipes close-on-exec, so no
/// other child inherits it); our death closes it and `read` returns. It runs in its own process
/// group and ignores SIGINT/SIGHUP so a terminal Ctrl-C cannot kill it before it cleans up.
#[derive(Debug)]
pub(crate) struct Watchdog {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Watchdog {
    pub(crate) fn spawn(cleanup: &str) -> Result<Watchdog, TestkitError> {
        let script = format!("trap '' INT HUP; read -r _ignored; {cleanup}");
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| TestkitError::io("run the watchdog sh", e))?;
        let stdin = child.stdin.take();
        Ok(Watchdog { child, stdin })
    }

    /// Kills the watchdog without running its cleanup, because the owner cleans up itself
    pub(crate) fn disarm(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stdin = None;
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.disarm();
    }
}

/// The watchdog cleanup of a stand-in process: SIGTERM, up to 5 s for it to exit, SIGKILL, then
/// its temp dir removed
pub(crate) fn stop_script(pid: u32, dir: &Path) -> String {
    format!(
        "kill -TERM {pid} 2>/dev/null; i=0; \
         while [ $i -lt 50 ] && [ -e /proc/{pid} ] && ! grep -q '^State:[[:space:]]*Z' /proc/{pid}/status 2>/dev/null; \
         do sleep 0.1; i=$((i+1)); done; \
         kill -KILL {pid} 2>/dev/null; rm -rf {dir}",
        dir = sh_quote(&dir.to_string_lossy()),
    )
}

/// A stand-in program: `configured` (the value of env var `var`) when set, else the venv's, else
/// the first of that name on `path`; the error says where it looked
pub(crate) fn find_program(
    var: &str,
    configured: Option<std::ffi::OsString>,
    venv: &Path,
    path: Option<std::ffi::OsString>,
) -> Result<std::path::PathBuf, String> {
    if let Some(p) = configured {
        let p = std::path::PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("{var}={}", p.display()))
        };
    }
    if venv.is_file() {
        return Ok(venv.to_owned());
    }
    let name = venv.file_name().unwrap_or_default().to_owned();
    path.and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join(&name))
            .find(|p| p.is_file())
    })
    .ok_or_else(|| format!("{} or on PATH", venv.display()))
}

/// Sleeps in small steps until `f` returns `Some` or `timeout` passes
pub(crate) fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `Command` that runs as the postgres user when we are root (initdb/pg_ctl refuse root)
pub(crate) fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

/// How one start of a stand-in on a picked port went.
pub(crate) enum Attempt {
    /// Another process took the port first: pick another and start again.
    PortTaken(String),
    Failed(TestkitError),
}

/// Polls `ready` until it says yes, the child exits, or `timeout` passes; a failure is named
/// from the stand-in's log (`what` is its name, e.g. "moto_server").
pub(crate) fn wait_until_ready(
    child: &mut Child,
    log_path: &Path,
    what: &str,
    port: u16,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<(), Attempt> {
    const LOG_TAIL: usize = 40;
    let addr = format!("127.0.0.1:{port}");
    let pid = child.id();
    let outcome = poll(timeout, || {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(Err(status));
        }
        // A stand-in of another test that won the same free port answers `ready` too: only a
        // listener our child (or its descendant) holds counts.
        (ready() && listens_on(pid, port)).then_some(Ok(()))
    });
    let log = read_log(log_path);
    match outcome {
        Some(Ok(())) => Ok(()),
        // Python says "Address already in use", Go (bao, whose dev server also binds the port
        // after its own for the cluster) "bind: address already in use".
        Some(Err(_)) if log.to_ascii_lowercase().contains("address already in use") => {
            Err(Attempt::PortTaken(tail(&log, LOG_TAIL)))
        }
        Some(Err(status)) => Err(Attempt::Failed(TestkitError::Exited {
            what: format!("{what} on {addr}"),
            status,
            log: tail(&log, LOG_TAIL),
        })),
        None => Err(Attempt::Failed(TestkitError::NotReady {
            what: what.into(),
            addr,
            waited: timeout,
            log: tail(&log, LOG_TAIL),
        })),
    }
}

/// Whether `pid` or one of its descendants holds the listening TCP socket on 127.0.0.1:`port`
/// (Linux `/proc`). Two tests can draw the same free port; the loser's server fails to bind,
/// but a readiness probe on that port reaches the winner's server and would share it.
pub(crate) fn listens_on(pid: u32, port: u16) -> bool {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return false;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    for entry in procs.flatten() {
        let Some(p) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{p}/fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .ok()
                .and_then(|l| {
                    l.to_str()
                        .and_then(|l| l.strip_prefix("socket:["))
                        .and_then(|l| l.strip_suffix(']'))
                        .and_then(|i| i.parse::<u64>().ok())
                })
                .is_some_and(|i| inodes.contains(&i))
        });
        if holds && descends_from(p, pid) {
            return true;
        }
    }
    false
}

/// The inodes of listening sockets on 127.0.0.1:`port` or the IPv4/IPv6 wildcard.
fn listening_inodes(port: u16) -> Vec<u64> {
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let (Some(local), Some(state), Some(inode)) = (cols.get(1), cols.get(3), cols.get(9))
            else {
                continue;
            };
            let Some((_, p)) = local.rsplit_once(':') else {
                continue;
            };
            if *state == "0A" && u16::from_str_radix(p, 16).ok() == Some(port) {
                if let Ok(i) = inode.parse() {
                    out.push(i);
                }
            }
        }
    }
    out
}

/// Whether process `p` is `ancestor` or runs under it.
fn descends_from(mut p: u32, ancestor: u32) -> bool {
    for _ in 0..64 {
        if p == ancestor {
            return true;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            return false;
        };
        // pid (comm) state ppid ...: comm may hold spaces and parentheses.
        let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u32>().ok())
        else {
            return false;
        };
        if ppid <= 1 {
            return false;
        }
        p = ppid;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stand_in_s_home_is_its_own_dir_unless_the_caller_set_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("own.log");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "printf '%s' \"$HOME\""]);
        spawn_logged(cmd, &log, "sh")
            .expect("spawn")
            .wait()
            .expect("wait");
        let seen = std::fs::read_to_string(&log).expect("log");
        assert_eq!(seen, dir.path().display().to_string());

        let log = dir.path().join("given.log");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "printf '%s' \"$HOME\""])
            .env("HOME", "/nonexistent-given");
        spawn_logged(cmd, &log, "sh")
            .expect("spawn")
            .wait()
            .expect("wait");
        assert_eq!(
            std::fs::read_to_string(&log).expect("log"),
            "/nonexistent-given"
        );
    }

    #[test]
    fn a_listener_counts_only_for_the_process_that_holds_it() {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        assert!(listens_on(std::process::id(), port));
        // Another process (here a child that holds nothing) does not own our listener.
        let mut other = Command::new("sleep").arg("5").spawn().expect("sleep");
        assert!(!listens_on(other.id(), port));
        terminate(&mut other, Duration::from_secs(1));
        drop(listener);
        assert!(!listens_on(std::process::id(), port));
    }
}
