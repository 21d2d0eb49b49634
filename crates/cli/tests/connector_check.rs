//! `revokectl connector check FILE`: a definition is validated without the network (every
//! problem by its field path, a secret written in the file refused), and with `--connect
//! --subject X` its discovery runs read-only against a real scim2-server and prints each account
//! matched and why, and what a plan would do; the server is left as it was.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use revoke_testkit::Scim2Server;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../connectors/http/tests/fixtures/scim.toml"
);

fn revokectl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_revokectl"))
        .args(args)
        .stdin(Stdio::null())
        .env_remove("RUST_LOG")
        .env_remove("REVOKE_CONFIG")
        .output()
        .expect("revokectl runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn as_str(p: &Path) -> &str {
    p.to_str().expect("utf-8")
}

#[test]
fn a_definition_is_checked_without_the_network_and_problems_name_their_field() {
    let ok = revokectl(&["connector", "check", FIXTURE]);
    assert!(ok.status.success(), "{}", text(&ok));
    let out = text(&ok);
    assert!(out.contains("a valid definition of Example SCIM"), "{out}");
    assert!(out.contains("delete delete after deactivate"), "{out}");

    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    let def = std::fs::read_to_string(FIXTURE).expect("fixture");
    std::fs::write(
        &bad,
        def.replace("result = \"done\"", "result = \"fine\"")
            .replace(
                "client_secret_file = \"/run/secrets/scim\"",
                "client_secret = \"s3cret\"",
            ),
    )
    .expect("write");
    let o = revokectl(&["connector", "check", as_str(&bad)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    for want in [
        "auth.client_secret: expected the secret through client_secret_file",
        "resources.user.actions[0].outcomes[0].result: expected one of done,",
        "resources.user.actions[1].outcomes: expected a rule with result = \"done\"",
    ] {
        assert!(out.contains(want), "no {want:?} in {out}");
    }
    assert!(!out.contains("s3cret"), "the secret was echoed: {out}");
}

#[test]
fn connect_runs_discovery_read_only_and_says_why_each_account_matched() {
    let server = Scim2Server::start().expect("scim2-server starts");
    let url = server.tenant_url("check");
    let http = reqwest::blocking_client();
    for (name, email) in [
        ("alice", "alice@example.com"),
        ("alice-sysadmin", "ALICE@example.com"),
        ("alice2", "alice2@example.com"),
    ] {
        let status = http(
            "POST",
            &format!("{url}/Users"),
            &serde_json::json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": name, "emails": [{"value": email}], "active": true,
            })
            .to_string(),
        );
        assert_eq!(status, 201);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("token");
    std::fs::write(&secret, format!("{}\n", Scim2Server::TOKEN)).expect("secret");
    let def = std::fs::read_to_string(FIXTURE).expect("fixture");
    let auth_start = def.find("[auth]").expect("an auth table");
    let auth_end = def[auth_start..].find("\n\n").expect("its end") + auth_start;
    let def = format!(
        "{}[auth]\ntype = \"bearer\"\ntoken_file = \"{}\"{}",
        &def[..auth_start],
        secret.display(),
        &def[auth_end..]
    );
    let file = dir.path().join("scim.toml");
    std::fs::write(&file, def).expect("write");

    let o = revokectl(&[
        "connector",
        "check",
        as_str(&file),
        "--base-url",
        &url,
        "--connect",
        "--subject",
        "alice",
        "--email",
        "alice@example.com",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("2 account(s)"), "{out}");
    assert!(
        out.contains("$.userName = alice (case ignored); $.emails[*].value = alice@example.com (case ignored)"),
        "{out}"
    );
    assert!(
        out.contains("account alice-sysadmin") && out.contains("ALICE@example.com (case ignored)"),
        "{out}"
    );
    assert!(!out.contains("alice2"), "a prefix is not a match: {out}");
    assert!(out.contains("a plan would hold 4 action(s)"), "{out}");
    assert!(
        !out.contains(Scim2Server::TOKEN),
        "the token was echoed: {out}"
    );
    // Read-only: the two discovery GETs and nothing else went out.
    assert!(out.contains("(read-only, 2 request(s))"), "{out}");
}

/// One HTTP/1.1 request over a plain TCP stream (the stand-in is on 127.0.0.1, no TLS): method,
/// url, body -> status.
mod reqwest {
    use std::io::{Read, Write};

    pub fn blocking_client() -> impl Fn(&str, &str, &str) -> u16 {
        |method: &str, url: &str, body: &str| {
            let rest = url.strip_prefix("http://").expect("http url");
            let (host, path) = rest.split_at(rest.find('/').expect("a path"));
            let mut s = std::net::TcpStream::connect(host).expect("connects");
            write!(
                s,
                "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nContent-Type: application/scim+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                revoke_testkit::Scim2Server::TOKEN,
                body.len()
            )
            .expect("sent");
            let mut answer = String::new();
            s.read_to_string(&mut answer).expect("answer");
            answer
                .split(' ')
                .nth(1)
                .and_then(|c| c.parse().ok())
                .expect("a status line")
        }
    }
}

#[test]
fn a_yaml_definition_is_checked_the_same_way_and_its_traps_are_refused() {
    let yaml = FIXTURE.replace("scim.toml", "scim.yaml");
    let ok = revokectl(&["connector", "check", &yaml]);
    assert!(ok.status.success(), "{}", text(&ok));
    let out = text(&ok);
    assert!(out.contains("a valid definition of Example SCIM"), "{out}");
    assert!(out.contains("delete delete after deactivate"), "{out}");

    let dir = tempfile::tempdir().expect("tempdir");
    let def = std::fs::read_to_string(&yaml).expect("fixture");
    // A problem named by the same field path as in TOML; a secret written in the file refused
    // and not echoed.
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        def.replace("result: retry", "result: fine").replace(
            "client_secret_file: /run/secrets/scim",
            "client_secret: s3cret",
        ),
    )
    .expect("write");
    let o = revokectl(&["connector", "check", as_str(&bad)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("resources.user.actions[0].outcomes[4].result"),
        "{out}"
    );
    assert!(out.contains("auth.client_secret"), "{out}");
    assert!(!out.contains("s3cret"), "{out}");
    // A duplicate key is an error, not the last value winning.
    let dup = dir.path().join("dup.yaml");
    std::fs::write(&dup, format!("system: Other\n{def}")).expect("write");
    let o = revokectl(&["connector", "check", as_str(&dup)]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).to_lowercase().contains("duplicate"),
        "{}",
        text(&o)
    );
}
