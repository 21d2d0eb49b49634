//! `revokectl completions SHELL` and `revokectl man`: the scripts load in the real shells and
//! complete subcommands and values; the manual page renders without warnings. A shell or
//! formatter missing on this machine is said on stderr and its check skipped (bash, groff and
//! man are on every machine scripts/lib.sh sets up; zsh and fish only where installed).

use std::path::Path;
use std::process::{Command, Stdio};

fn revokectl(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_revokectl"))
        .args(args)
        .stdin(Stdio::null())
        .env_remove("REVOKE_CONFIG")
        .env_remove("REVOKE_SERVER")
        .output()
        .expect("revokectl runs");
    assert!(
        out.status.success(),
        "revokectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn has(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs a bash script (with the completion script at `$1`) and returns its stdout.
fn bash(script: &str, completion: &Path) -> String {
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", script, "bash"])
        .arg(completion)
        .stdin(Stdio::null())
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "bash failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// What bash offers for the words of a command line (the last word is being completed), the
/// way readline calls the function `complete -p revokectl` names.
fn bash_completes(completion: &Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        r#"set -e
source "$1"
spec=$(complete -p revokectl)
fn=$(printf '%s\n' "$spec" | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
[ -n "$fn" ] || {{ echo "no -F function in: $spec" >&2; exit 1; }}
COMP_WORDS=({words})
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
COMPREPLY=()
"$fn" revokectl "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#,
        words = quoted.join(" ")
    );
    bash(&script, completion)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn the_bash_script_parses_registers_and_completes_subcommands_and_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("revokectl.bash");
    std::fs::write(&file, revokectl(&["completions", "bash"])).expect("write script");

    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&file)
        .output()
        .expect("bash -n runs");
    assert!(
        syntax.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    let spec = bash(r#"source "$1"; complete -p revokectl"#, &file);
    assert!(
        spec.contains("-F ") && spec.trim_end().ends_with(" revokectl"),
        "expected `complete -F FUNCTION ... revokectl`, found {spec:?}"
    );

    let offered = bash_completes(&file, &["revokectl", "ap"]);
    assert_eq!(
        offered,
        ["apply", "approve"],
        "expected the two subcommands that begin with ap"
    );
    let offered = bash_completes(&file, &["revokectl", ""]);
    for sub in ["plan", "apply", "import", "jobs", "completions", "man"] {
        assert!(
            offered.iter().any(|o| o == sub),
            "expected {sub} among {offered:?}"
        );
    }
    let formats = bash_completes(&file, &["revokectl", "jobs", "-o", ""]);
    assert_eq!(formats, ["table", "json", "jsonl", "yaml"]);
    let shells = bash_completes(&file, &["revokectl", "completions", ""]);
    assert!(
        ["bash", "zsh", "fish"]
            .iter()
            .all(|s| shells.iter().any(|o| o == s)),
        "{shells:?}"
    );
    let states = bash_completes(&file, &["revokectl", "jobs", "--state", "awa"]);
    assert_eq!(states, ["awaiting_approval"]);
}

#[test]
fn the_zsh_and_fish_scripts_parse_where_those_shells_exist() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (shell, check) in [
        ("zsh", ["-n"].as_slice()),
        ("fish", ["--no-execute"].as_slice()),
    ] {
        let text = revokectl(&["completions", shell]);
        assert!(
            text.contains("revokectl") && text.contains("apply"),
            "{shell}: {text}"
        );
        if !has(shell) {
            eprintln!("{shell} is not installed: its script is generated but not parsed here");
            continue;
        }
        let file = dir.path().join(format!("revokectl.{shell}"));
        std::fs::write(&file, &text).expect("write script");
        let out = Command::new(shell)
            .args(check)
            .arg(&file)
            .output()
            .expect("shell runs");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{shell} {check:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if has("fish") {
        // fish completes from the script: the subcommands that begin with `ap`.
        let file = dir.path().join("revokectl.fish");
        let out = Command::new("fish")
            .args(["--no-config", "-c"])
            .arg(format!(
                "source '{}'; complete -C 'revokectl ap'",
                file.display()
            ))
            .env("HOME", dir.path())
            .output()
            .expect("fish runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let offered: Vec<&str> = text
            .lines()
            .map(|l| l.split('\t').next().unwrap_or(""))
            .collect();
        assert_eq!(offered, ["apply", "approve"], "{text}");
    }
}

/// The sections every page must have, in roff.
fn assert_sections(page: &str, name: &str) {
    assert!(
        page.starts_with(".ie \\n(.g .ds Aq \\(aq") || page.contains(".TH "),
        "{name}: not roff: {}",
        &page[..page.len().min(200)]
    );
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH DESCRIPTION", ".SH OPTIONS"] {
        assert!(page.contains(section), "{name}: expected {section}");
    }
}

/// Renders a page with groff, warnings on; returns the text and the warnings.
fn groff(page: &Path) -> (String, String) {
    let out = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww"])
        .arg(page)
        .env("LC_ALL", "C.UTF-8")
        .output()
        .expect("groff runs");
    assert!(out.status.success(), "groff failed on {}", page.display());
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_man_page_renders_with_every_subcommand() {
    let page = revokectl(&["man"]);
    assert_sections(&page, "revokectl.1");
    assert!(page.contains(".TH revokectl 1"), "{}", &page[..200]);
    assert!(page.contains(".SH SUBCOMMANDS"));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("revokectl.1");
    std::fs::write(&file, &page).expect("write page");
    if !has("groff") {
        eprintln!("groff is not installed: the page's sections are checked, not its rendering");
        return;
    }
    let (text, warnings) = groff(&file);
    assert!(warnings.is_empty(), "groff warnings: {warnings}");
    // groff may hyphenate or break lines: look at the words.
    let plain = strip_overstrike(&text);
    for word in [
        "NAME",
        "SYNOPSIS",
        "revokectl",
        "apply",
        "import",
        "completions",
        "REVOKE_SERVER",
    ] {
        assert!(plain.contains(word), "expected {word} in:\n{plain}");
    }
    if has("man") {
        let out = Command::new("man")
            .arg("-l")
            .arg(&file)
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .expect("man runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let shown = strip_overstrike(&String::from_utf8_lossy(&out.stdout));
        assert!(
            shown.contains("SUBCOMMANDS") && shown.contains("completions"),
            "{shown}"
        );
    }
}

#[test]
fn man_dir_writes_one_page_per_subcommand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("man1");
    let _ = revokectl(&["man", "--dir", out.to_str().expect("utf-8")]);
    let mut pages: Vec<String> = std::fs::read_dir(&out)
        .expect("dir written")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for want in [
        "revokectl.1",
        "revokectl-apply.1",
        "revokectl-import.1",
        "revokectl-token-new.1",
        "revokectl-audit-verify.1",
        "revokectl-completions.1",
    ] {
        assert!(
            pages.iter().any(|p| p == want),
            "expected {want} in {pages:?}"
        );
    }
    assert!(
        !pages.iter().any(|p| p.contains("help")),
        "no page for clap's help subcommand: {pages:?}"
    );
    for p in &pages {
        let text = std::fs::read_to_string(out.join(p)).expect("read page");
        assert_sections(&text, p);
        if has("groff") {
            let (_, warnings) = groff(&out.join(p));
            assert!(warnings.is_empty(), "{p}: groff warnings: {warnings}");
        }
    }
    let apply = std::fs::read_to_string(out.join("revokectl-apply.1")).expect("apply page");
    assert!(apply.contains("auto\\-approve"), "{apply}");
}

/// Text without the backspace overstrikes (bold, underline) a terminal formatter writes.
fn strip_overstrike(s: &str) -> String {
    let mut out: Vec<char> = Vec::with_capacity(s.len());
    for c in s.chars() {
        if c == '\u{8}' {
            out.pop();
        } else {
            out.push(c);
        }
    }
    // SGR sequences where groff writes colour instead of overstrikes.
    let text: String = out.into_iter().collect();
    let mut clean = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            clean.push(c);
        }
    }
    clean
}
