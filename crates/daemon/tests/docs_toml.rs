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

/// Secret files a snippet names (`*_file = "/run/secrets/x"`, also inside an inline table such
/// as `auth = { type = "bearer", token_file = "..." }`) exist only on a real host: each is
/// pointed at a throwaway file holding a placeholder, so the rest is still checked. A
/// `private_key_file` gets a real PKCS#8 RSA key (connectors parse it when they validate), or in a
/// `kind = "google-workspace"` table the service-account JSON key Google's console hands out
/// (with a PEM inside).
fn with_secret_files(snippet: &str, dir: &Path, rsa_pem: &str) -> String {
    let lines: Vec<&str> = snippet.lines().collect();
    let is_header = |l: &str| l.trim_start().starts_with('[');
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let start = lines[..i].iter().rposition(|l| is_header(l)).unwrap_or(0);
        let end = lines[i..]
            .iter()
            .position(|l| is_header(l))
            .map_or(lines.len(), |n| i + n);
        let google = lines[start..end].iter().any(|l| {
            let (k, v) = l.split_once('=').unwrap_or(("", ""));
            k.trim() == "kind" && v.trim().trim_matches('"') == "google-workspace"
        });
        let mut rest = *line;
        let mut done = String::new();
        let mut n = 0;
        // Each `NAME_file = "PATH"` before a comment: the path replaced, the rest kept.
        while let Some(at) = rest.find("_file") {
            let code_end = rest.find('#').unwrap_or(rest.len());
            if at > code_end {
                break;
            }
            let key_start = rest[..at]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(0, |k| k + 1);
            let key = &rest[key_start..at];
            let after = &rest[at + "_file".len()..];
            let eq = after.trim_start();
            let Some(value) = eq.strip_prefix('=').map(str::trim_start) else {
                done.push_str(&rest[..at + "_file".len()]);
                rest = after;
                continue;
            };
            let Some(quoted) = value.strip_prefix('"') else {
                done.push_str(&rest[..at + "_file".len()]);
                rest = after;
                continue;
            };
            let Some(close) = quoted.find('"') else { break };
            let file = dir.join(format!("secret-{i}-{n}"));
            n += 1;
            let placeholder = if key.contains("private_key") && google {
                GOOGLE_KEY
            } else if key.contains("private_key") {
                rsa_pem
            } else {
                "whsec_c2VjcmV0LWZvci1kb2NzLXRlc3Q="
            };
            std::fs::write(&file, placeholder).expect("write secret");
            done.push_str(&rest[..at]);
            done.push_str(&format!("_file = {:?}", file.display().to_string()));
            rest = &quoted[close + 1..];
        }
        done.push_str(rest);
        out.push_str(&done);
        out.push('\n');
    }
    out
}

/// A whole HTTP connector definition as a file of its own (`system = ...` at the top, for
/// `revokectl connector check FILE`), checked as the instance `[connectors.doc]` that embeds it.
fn as_instance_if_definition(snippet: &str) -> String {
    let top_level_system = snippet
        .lines()
        .take_while(|l| !l.trim_start().starts_with('['))
        .any(|l| l.split('=').next().is_some_and(|k| k.trim() == "system"));
    if !top_level_system {
        return snippet.to_string();
    }
    let mut out = String::from("[connectors.doc]\nkind = \"http\"\n");
    for line in snippet.lines() {
        let t = line.trim_start();
        if let Some(h) = t.strip_prefix("[[") {
            out.push_str(&format!("[[connectors.doc.{h}\n"));
        } else if let Some(h) = t.strip_prefix('[') {
            out.push_str(&format!("[connectors.doc.{h}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// A fresh 2048-bit RSA key as PKCS#8 PEM, as `openssl genpkey` makes it.
fn rsa_pkcs8_pem() -> String {
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .expect("openssl genpkey (apt-get install openssl)");
    assert!(out.status.success(), "openssl genpkey: {:?}", out);
    String::from_utf8(out.stdout).expect("PEM")
}

/// A service-account key as Google's console hands it out (the PEM shortened)
const GOOGLE_KEY: &str = r#"{"type": "service_account", "client_email": "sa@p.iam.gserviceaccount.com", "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "token_uri": "https://oauth2.googleapis.com/token"}"#;

#[test]
fn every_toml_example_in_the_docs_loads_and_validates() {
    let dir = tempfile::tempdir().expect("tmp");
    let rsa_pem = rsa_pkcs8_pem();
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
            let snippet =
                as_instance_if_definition(&with_secret_files(&snippet, dir.path(), &rsa_pem));
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
    let pem = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    let out = with_secret_files(snippet, dir.path(), pem);
    let secret = |n: usize| std::fs::read_to_string(dir.path().join(format!("secret-{n}-0")));
    assert_eq!(secret(1).expect("google's"), GOOGLE_KEY);
    assert_eq!(secret(9).expect("github's"), pem);
    let config = revoke_config::load_str(&out).expect("loads");
    revoked::validate(&config).expect("validates");
}

#[test]
fn a_secret_file_in_an_inline_table_is_replaced_and_a_comment_is_left_alone() {
    let dir = tempfile::tempdir().expect("tmp");
    let line =
        r#"auth = { type = "bearer", token_file = "/run/secrets/x" }   # not token_file = "/y""#;
    let out = with_secret_files(line, dir.path(), "");
    let file = dir.path().join("secret-0-0");
    assert_eq!(
        out.trim_end(),
        format!(
            r#"auth = {{ type = "bearer", token_file = {:?} }}   # not token_file = "/y""#,
            file.display().to_string()
        )
    );
    assert!(file.exists() && !dir.path().join("secret-0-1").exists());
}

#[test]
fn a_whole_http_definition_is_checked_as_an_instance_and_a_config_is_left_as_it_is() {
    let definition = "system = \"X\"\nbase_url = \"https://x.example\"\n[resources.user]\nid = \"$.id\"\n[[resources.user.actions]]\nname = \"a\"\n";
    assert_eq!(
        as_instance_if_definition(definition),
        "[connectors.doc]\nkind = \"http\"\nsystem = \"X\"\nbase_url = \"https://x.example\"\n[connectors.doc.resources.user]\nid = \"$.id\"\n[[connectors.doc.resources.user.actions]]\nname = \"a\"\n"
    );
    let config = "[connectors.x]\nkind = \"http\"\nsystem = \"X\"\n";
    assert_eq!(as_instance_if_definition(config), config);
}
