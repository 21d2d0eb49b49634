//! `apply` and `import` draw a progress bar on stderr when it is a terminal (a pseudo-terminal
//! from util-linux `script` here), and write plain lines otherwise: no escape byte, no carriage
//! return. The bar honours `NO_COLOR`. Nothing here depends on how fast anything runs: the bar's
//! last state is drawn when it finishes, whatever happened before.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::Env;

const ESC: char = '\u{1b}';
const PLACEHOLDER: &str = r#"group_placeholder_dn = "cn=nobody,ou=people,dc=example,dc=org""#;

fn has_script() -> bool {
    Command::new("sh")
        .args(["-c", "command -v script"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs revokectl with every standard stream on a pseudo-terminal and returns what the terminal
/// showed (stdout and stderr together, as a person would see them).
fn on_a_terminal(config: &Path, args: &[&str], no_color: Option<&str>) -> String {
    on_a_terminal_as(config, args, no_color, "xterm-256color")
}

/// As [`on_a_terminal`], with this `TERM`.
fn on_a_terminal_as(config: &Path, args: &[&str], no_color: Option<&str>, term: &str) -> String {
    let exe = env!("CARGO_BIN_EXE_revokectl");
    let mut line = format!("'{exe}' --config '{}'", config.display());
    for a in args {
        line.push_str(&format!(" '{a}'"));
    }
    let mut c = Command::new("script");
    c.args(["-q", "-e", "-c", &line, "/dev/null"])
        .stdin(Stdio::null())
        .env("TERM", term)
        .env_remove("RUST_LOG")
        .env_remove("REVOKE_SERVER")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE");
    if let Some(v) = no_color {
        c.env("NO_COLOR", v);
    }
    let out = c.output().expect("script runs");
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "revokectl {args:?} on a terminal failed:\n{shown}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    shown
}

/// The last state of the bar: (word, position, length, unit), from `  applied [===] 5/5 actions`.
fn last_bar(shown: &str) -> Option<(String, u64, u64, String)> {
    let plain = strip_sgr(shown);
    let mut last = None;
    for piece in plain.split(['\r', '\n']) {
        let Some((head, rest)) = piece.split_once(" [") else {
            continue;
        };
        let Some((bar, tail)) = rest.split_once("] ") else {
            continue;
        };
        if !bar.chars().all(|c| matches!(c, '=' | '>' | ' ')) || bar.len() != 30 {
            continue;
        }
        let mut words = tail.split_whitespace();
        let (Some(count), Some(unit)) = (words.next(), words.next()) else {
            continue;
        };
        let Some((pos, len)) = count.split_once('/') else {
            continue;
        };
        if let (Ok(pos), Ok(len)) = (pos.parse(), len.parse()) {
            last = Some((
                head.split(ESC)
                    .next_back()
                    .unwrap_or(head)
                    .trim()
                    .to_string(),
                pos,
                len,
                unit.to_string(),
            ));
        }
    }
    last
}

/// The text without SGR (colour) sequences and the erase-line sequences bars use.
fn strip_sgr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == ESC {
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

/// The SGR sequences (`ESC [ ... m`): colour and weight.
fn sgr_sequences(s: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find(ESC) {
        let seq: String = rest[i..]
            .chars()
            .take_while(|c| !c.is_ascii_alphabetic())
            .collect();
        let end = rest[i + seq.len()..].chars().next();
        if end == Some('m') {
            found.push(format!("{seq}m"));
        }
        rest = &rest[i + ESC.len_utf8()..];
    }
    found
}

/// Lines of the `apply` table that report one finished action.
fn result_lines(text: &str) -> usize {
    strip_sgr(text)
        .split(['\r', '\n'])
        .filter(|l| l.contains(" (attempt "))
        .count()
}

#[test]
fn apply_draws_a_bar_on_a_terminal_that_ends_at_every_action_run() {
    if !has_script() {
        eprintln!("script(1) is missing: the terminal case is not checked here");
        return;
    }
    let env = Env::new(PLACEHOLDER, "");
    let shown = on_a_terminal(
        &env.config,
        &["apply", "--user", "alice", "--auto-approve"],
        None,
    );
    let (word, pos, len, unit) =
        last_bar(&shown).unwrap_or_else(|| panic!("expected a progress bar in:\n{shown:?}"));
    assert_eq!((word.as_str(), unit.as_str()), ("applied", "actions"));
    assert_eq!(pos, len, "the bar ends full:\n{shown:?}");
    assert_eq!(
        len as usize,
        result_lines(&shown),
        "one step per action that ran (the delete phase waits for retention, the manual step for an acknowledgement):\n{shown}"
    );
    assert!(strip_sgr(&shown).contains("Summary: 5 done"), "{shown}");
    assert!(
        !sgr_sequences(&shown).is_empty(),
        "expected colour on a terminal without NO_COLOR:\n{shown:?}"
    );
}

#[test]
fn no_color_leaves_the_bar_without_colour() {
    if !has_script() {
        eprintln!("script(1) is missing: the terminal case is not checked here");
        return;
    }
    let env = Env::new(PLACEHOLDER, "");
    let shown = on_a_terminal(
        &env.config,
        &["apply", "--user", "alice", "--auto-approve"],
        Some("1"),
    );
    assert!(last_bar(&shown).is_some(), "a bar still:\n{shown:?}");
    let sgr = sgr_sequences(&shown);
    assert!(
        sgr.is_empty(),
        "NO_COLOR=1: expected no colour, found {sgr:?} in {shown:?}"
    );
}

#[test]
fn without_a_terminal_apply_writes_plain_lines_only() {
    let env = Env::new(PLACEHOLDER, "");
    let run = env
        .command(&["apply", "--user", "alice", "--auto-approve"])
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .output()
        .expect("revokectl runs");
    assert!(run.status.success());
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    for (name, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        assert!(
            !text.contains(ESC) && !text.contains('\r'),
            "{name}: expected plain lines, found {text:?}"
        );
    }
    assert!(last_bar(&stderr).is_none(), "no bar: {stderr}");
    assert_eq!(result_lines(&stdout), 5, "{stdout}");
    assert!(stdout.contains("Summary: 5 done"), "{stdout}");
}

fn import_file(dir: &Path, n: usize) -> std::path::PathBuf {
    let file = dir.join("leavers.csv");
    let mut text = String::from("username,reason,event_id\n");
    for i in 0..n {
        text.push_str(&format!("leaver{i},offboarding,ev-{i}\n"));
    }
    std::fs::write(&file, text).expect("write import file");
    file
}

fn store_only_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("revoke.toml");
    std::fs::write(
        &path,
        format!("data_dir = \"{}\"\n", dir.join("data").display()),
    )
    .expect("write config");
    path
}

#[test]
fn import_draws_a_bar_on_a_terminal_and_plain_lines_otherwise() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = store_only_config(dir.path());
    let file = import_file(dir.path(), 7);
    let file = file.to_str().expect("utf-8");
    if has_script() {
        let shown = on_a_terminal(&cfg, &["import", file], None);
        let (word, pos, len, unit) =
            last_bar(&shown).unwrap_or_else(|| panic!("expected a progress bar in:\n{shown:?}"));
        assert_eq!(
            (word.as_str(), pos, len, unit.as_str()),
            ("imported", 7, 7, "events"),
            "{shown:?}"
        );
        assert!(
            strip_sgr(&shown).contains("7 event(s): 7 new job(s)"),
            "{shown}"
        );
    } else {
        eprintln!("script(1) is missing: the terminal case is not checked here");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_revokectl"))
        .arg("--config")
        .arg(&cfg)
        .args(["import", file])
        .stdin(Stdio::null())
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .env_remove("REVOKE_SERVER")
        .output()
        .expect("revokectl runs");
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stdout.contains(ESC) && !stderr.contains(ESC) && !stderr.contains('\r'),
        "{stdout:?} {stderr:?}"
    );
    assert!(
        stdout.contains("7 event(s): 0 new job(s), 7 already imported"),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().filter(|l| l.contains(" duplicate ")).count(),
        7,
        "a plain line per event: {stdout}"
    );
}

#[test]
fn a_dumb_terminal_gets_no_bar() {
    if !has_script() {
        eprintln!("script(1) is missing: the terminal case is not checked here");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = store_only_config(dir.path());
    let file = import_file(dir.path(), 3);
    let shown = on_a_terminal_as(
        &cfg,
        &["import", file.to_str().expect("utf-8")],
        None,
        "dumb",
    );
    assert!(
        !shown.contains(ESC) && last_bar(&shown).is_none(),
        "TERM=dumb: expected no bar, found {shown:?}"
    );
    assert!(shown.contains("3 event(s): 3 new job(s)"), "{shown}");
}
