//! A real `revokectl` run by the kill -9 tests, and its `apply` killed by SIGKILL at a point the
//! stand-in names (a request received, an answer held), never by a timer.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long [`apply_killed_when`] waits for its point before the test fails.
pub const KILL_POINT_WAIT: Duration = Duration::from_secs(120);

/// `revokectl --config CONFIG ARGS`, stdin closed, without the caller's `RUST_LOG`.
pub fn revokectl(config: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_revokectl"));
    c.arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .env_remove("RUST_LOG");
    c
}

/// Runs [`revokectl`] and answers its stdout; fails the test, with both outputs, when it does
/// not succeed.
pub fn revokectl_ok(config: &Path, args: &[&str]) -> String {
    let out = revokectl(config, args).output().expect("revokectl runs");
    assert!(
        out.status.success(),
        "revokectl {args:?} failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn as_str(p: &Path) -> &str {
    p.to_str().expect("utf-8")
}

/// Starts `apply` (a [`revokectl`] command, its output dropped) and SIGKILLs it once `reached()`
/// holds. Fails the test when it ends before that point or the point does not come within
/// [`KILL_POINT_WAIT`]; `what` names the point, `seen()` says what the stand-in had received.
pub fn apply_killed_when(
    mut apply: Command,
    what: &str,
    reached: impl Fn() -> bool,
    seen: impl Fn() -> String,
) {
    let mut child = apply
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("apply starts");
    let deadline = Instant::now() + KILL_POINT_WAIT;
    while !reached() {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "apply ended before {what}: {}",
            seen()
        );
        assert!(Instant::now() < deadline, "{what} was never sent");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
}
