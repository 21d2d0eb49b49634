//! Every TOML example in the README and docs/ loads and validates as `revoked --check-config`
//! would take it: a documented example that does not load is a defect (a generic source's
//! `kind` pointer once collided with the source's own `kind`, and nobody could configure it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// README.md and every Markdown file under docs/, sorted.
fn documents() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("read docs") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    let mut out = vec![root().join("README.md")];
    walk(&root().join("docs"), &mut out);
    out.sort();
    out
}

/// The ```toml blocks of a Markdown text, with the line each starts on.
fn toml_blocks(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        let fence = line.trim_start();
        match &mut open {
            None if fence.starts_with("```toml") => open = Some((n + 1, String::new())),
            Some(_) if fence.starts_with("```") => out.push(open.take().expect("open")),
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    assert!(open.is_none(), "an unclosed ```toml block");
    out
}

/// Secret files a snippet names (`*_file = "/run/secrets/x"`) exist only on a real host: each
/// is pointed at a throwaway file holding a placeholder secret, so the rest is still checked. A
/// `private_key_file` gets a PEM, or in a `kind = "google-workspace"` table the service-account
/// JSON key Google's console hands out (with the PEM inside).
fn with_secret_files(snippet: &str, dir: &Path) -> String {
    let lines: Vec<&str> = snippet.lines().collect();
    let is_header = |l: &str| l.trim_start().starts_with('[');
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let key = line.split('=').next().unwrap_or("").trim();
        if key.ends_with("_file") && line.contains('"') {
            let file = dir.join(format!("secret-{i}"));
            let start = lines[..i].iter().rposition(|l| is_header(l)).unwrap_or(0);
            let end = lines[i..]
                .iter()
                .position(|l| is_header(l))
                .map_or(lines.len(), |n| i + n);
            let google = lines[start..end].iter().any(|l| {
                let (k, v) = l.split_once('=').unwrap_or(("", ""));
                k.trim() == "kind" && v.trim().trim_matches('"') == "google-workspace"
            });
            let placeholder = if key.contains("private_key") && google {
                GOOGLE_KEY
            } else if key.contains("private_key") {
                "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"
            } else {
                "whsec_c2VjcmV0LWZvci1kb2NzLXRlc3Q="
            };
            std::fs::write(&file, placeholder).expect("write secret");
            out.push_str(&format!("{key} = {:?}\n", file.display().to_string()));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// A service-account key as Google's console hands it out (the PEM shortened)
const GOOGLE_KEY: &str = r#"{"type": "service_account", "client_email": "sa@p.iam.gserviceaccount.com", "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "token_uri": "https://oauth2.googleapis.com/token"}"#;

#[test]
fn every_toml_example_in_the_docs_loads_and_validates() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut checked = 0;
    let mut failures = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).expect("read");
        for (line, snippet) in toml_blocks(&text) {
            checked += 1;
            let name = format!(
                "{}:{line}",
                doc.strip_prefix(root()).unwrap_or(&doc).display()
            );
            let snippet = with_secret_files(&snippet, dir.path());
            let result = revoke_config::load_str(&snippet)
                .map_err(|e| e.to_string())
                .and_then(|c| revoked::validate(&c).map_err(|e| e.to_string()));
            if let Err(e) = result {
                failures.push(format!("{name}: {e}"));
            }
        }
    }
    assert!(
        checked >= 8,
        "expected the documented examples, found {checked} blocks"
    );
    assert!(
        failures.is_empty(),
        "{} of {checked} documented TOML examples do not load:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_block_reader_finds_fenced_toml_only() {
    let text = "a\n```toml\nx = 1\n```\n```json\n{}\n```\n  ```toml\ny = 2\n  ```\n";
    let blocks = toml_blocks(text);
    assert_eq!(
        blocks,
        vec![(2, "x = 1\n".to_string()), (8, "y = 2\n".to_string())]
    );
}

#[test]
fn a_google_private_key_file_gets_a_service_account_key_and_others_a_pem() {
    let dir = tempfile::tempdir().expect("tmp");
    let snippet = r#"[connectors.google]
private_key_file = "/run/secrets/google-sa.json"
kind = "google-workspace"
admin_email = "revoked-admin@example.com"

[connectors.gh]
kind = "github"
app_id = 12345
installation_id = 67890
private_key_file = "/run/secrets/gh.pem"
orgs = ["acme"]
"#;
    let out = with_secret_files(snippet, dir.path());
    let secret = |n: usize| std::fs::read_to_string(dir.path().join(format!("secret-{n}")));
    assert_eq!(secret(1).expect("google's"), GOOGLE_KEY);
    assert!(secret(9)
        .expect("github's")
        .starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let config = revoke_config::load_str(&out).expect("loads");
    revoked::validate(&config).expect("validates");
}
