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

/// SGR sequences (`ESC [ ... m`: colour, bold) in what a terminal showed.
fn sgr_count(shown: &[u8]) -> usize {
    let text = String::from_utf8_lossy(shown);
    let mut n = 0;
    let mut rest = text.as_ref();
    while let Some(i) = rest.find('\u{1b}') {
        let seq: String = rest[i + 1..]
            .chars()
            .take_while(|c| !c.is_ascii_alphabetic())
            .collect();
        if rest[i + 1 + seq.len()..].starts_with('m') {
            n += 1;
        }
        rest = &rest[i + 1..];
    }
    n
}

/// The text without escape sequences (colour, erase-line).
fn plain(shown: &[u8]) -> String {
    let text = String::from_utf8_lossy(shown);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `import` at -vv on a terminal: the log and the progress bar are the two places colour is
/// used; with `NO_COLOR` set neither has any (the bar still moves with cursor controls).
#[test]
fn no_color_turns_off_the_colour_of_the_log_and_of_the_progress_bar_together() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let exe = env!("CARGO_BIN_EXE_revokectl");
    let run = |file: &Path, no_color: Option<&str>| -> Option<Vec<u8>> {
        let mut c = Command::new("script");
        c.args(["-q", "-e", "-c"])
            .arg(format!(
                "'{exe}' --config '{}' -vv import '{}'",
                cfg.display(),
                file.display()
            ))
            .arg("/dev/null")
            .stdin(Stdio::null())
            .env("TERM", "xterm-256color")
            .env_remove("RUST_LOG")
            .env_remove("REVOKE_SERVER")
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE");
        if let Some(v) = no_color {
            c.env("NO_COLOR", v);
        }
        let out = c.output().ok()?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        Some(out.stdout)
    };
    let file = |n: usize| {
        let f = dir.path().join(format!("leavers{n}.csv"));
        std::fs::write(
            &f,
            format!("username,event_id\nleaver{n},ev-{n}\nother{n},ev-o{n}\n"),
        )
        .expect("write import file");
        f
    };
    let Some(coloured) = run(&file(0), None) else {
        eprintln!("script(1) is missing: the terminal case is not checked here");
        return;
    };
    let text = plain(&coloured);
    assert!(
        text.contains("imported [") && text.contains("] 2/2 events") && text.contains("DEBUG"),
        "expected the bar and debug lines: {text:?}"
    );
    assert!(sgr_count(&coloured) > 0, "expected colour: {text:?}");
    for (i, value) in ["1", "0", "false"].into_iter().enumerate() {
        let shown = run(&file(i + 1), Some(value)).expect("script runs");
        let text = plain(&shown);
        assert!(
            text.contains("imported [") && text.contains("] 2/2 events") && text.contains("DEBUG"),
            "NO_COLOR={value}: expected the bar and debug lines: {text:?}"
        );
        assert_eq!(
            sgr_count(&shown),
            0,
            "NO_COLOR={value}: expected no colour, found some in {text:?}"
        );
    }
}
