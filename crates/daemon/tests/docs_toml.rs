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
/// is pointed at a throwaway file holding a placeholder secret, so the rest is still checked.
fn with_secret_files(snippet: &str, dir: &Path) -> String {
    let mut out = String::new();
    for (i, line) in snippet.lines().enumerate() {
        let key = line.split('=').next().unwrap_or("").trim();
        if key.ends_with("_file") && line.contains('"') {
            let file = dir.join(format!("secret-{i}"));
            let placeholder = if key.contains("private_key") {
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
