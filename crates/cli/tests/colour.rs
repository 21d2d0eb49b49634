//! revokectl's log lines on stderr carry ANSI colour only on a terminal, and never with
//! `NO_COLOR` set: a file or a pipe gets plain text.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const ESC: u8 = 0x1b;

/// A configuration with only a store, so `-vv jobs` opens it and logs at debug level.
fn config(dir: &Path) -> PathBuf {
    let path = dir.join("revoke.toml");
    std::fs::write(
        &path,
        format!("data_dir = \"{}\"\n", dir.join("data").display()),
    )
    .expect("write config");
    path
}

fn revokectl(config: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_revokectl"));
    c.arg("--config")
        .arg(config)
        .args(["-vv", "jobs"])
        .stdin(Stdio::null())
        .env_remove("RUST_LOG")
        .env_remove("REVOKE_SERVER")
        .env_remove("NO_COLOR");
    c
}

#[test]
fn stderr_redirected_to_a_file_has_no_escape_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let log = dir.path().join("stderr.log");
    let status = revokectl(&cfg)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("create log file"))
        .status()
        .expect("revokectl runs");
    assert!(status.success());
    let bytes = std::fs::read(&log).expect("read log");
    assert!(
        String::from_utf8_lossy(&bytes).contains("DEBUG"),
        "expected debug lines on stderr, found {:?}",
        String::from_utf8_lossy(&bytes)
    );
    assert!(
        !bytes.contains(&ESC),
        "expected no ESC byte in redirected stderr, found {:?}",
        String::from_utf8_lossy(&bytes)
    );
}

/// Runs revokectl with every standard stream on a pseudo-terminal (util-linux `script`) and
/// returns what the terminal showed; `None` where `script` is missing.
fn on_a_terminal(cfg: &Path, no_color: Option<&str>) -> Option<Vec<u8>> {
    let exe = env!("CARGO_BIN_EXE_revokectl");
    let mut c = Command::new("script");
    c.args(["-q", "-e", "-c"])
        .arg(format!("'{exe}' --config '{}' -vv jobs", cfg.display()))
        .arg("/dev/null")
        .stdin(Stdio::null())
        .env_remove("RUST_LOG")
        .env_remove("REVOKE_SERVER")
        .env_remove("NO_COLOR");
    if let Some(v) = no_color {
        c.env("NO_COLOR", v);
    }
    let out = c.output().ok()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(out.stdout)
}

#[test]
fn a_terminal_gets_colour_unless_no_color_is_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let Some(plain) = on_a_terminal(&cfg, None) else {
        eprintln!("script(1) is missing: the terminal case is not checked here");
        return;
    };
    assert!(
        plain.contains(&ESC),
        "expected colour on a terminal, found {:?}",
        String::from_utf8_lossy(&plain)
    );
    for value in ["1", "0", "false"] {
        let shown = on_a_terminal(&cfg, Some(value)).expect("script runs");
        assert!(
            String::from_utf8_lossy(&shown).contains("DEBUG"),
            "{:?}",
            String::from_utf8_lossy(&shown)
        );
        assert!(
            !shown.contains(&ESC),
            "NO_COLOR={value}: expected no ESC byte, found {:?}",
            String::from_utf8_lossy(&shown)
        );
    }
}
