//! `revokectl --client-domain` end to end against the Google stand-in behind Prism: a departing
//! client's plan (its user of ours offboarded, every share of its people, group, domain and
//! subdomain removed, a shared-drive membership too), applied by a real `revokectl`; what is
//! not the client's (a look-alike domain, a link share) stays, and a second run finds nothing.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use revoke_testkit::google::{GoogleStandin, Permission};
use revoke_testkit::Prism;
use serde_json::Value;

struct Env {
    g: GoogleStandin,
    prism: Prism,
    _dir: tempfile::TempDir,
    config: PathBuf,
}

impl Env {
    fn new() -> Env {
        let g = GoogleStandin::start().expect("the google stand-in should start");
        let prism = g.prism().expect("prism should start in front of it");
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("google-sa.json");
        std::fs::write(&key, g.service_account_key()).expect("the key is written");
        let config = dir.path().join("revoke.toml");
        std::fs::write(
            &config,
            format!(
                r#"data_dir = "{data}"
[executor]
lease_secs = 1
[executor.retry]
base_ms = 20
cap_ms = 200
max_attempts = 20
[protected]
domains = ["example.com"]
[policies.default]
retention_days = 0
[connectors.google]
kind = "google-workspace"
private_key_file = "{key}"
admin_email = "admin@example.com"
api_url = "{url}"
transfer_to = "archive@example.com"
remove_shared_drives = true
transfer_poll_ms = 10
transfer_wait_secs = 1
"#,
                data = dir.path().join("data").display(),
                key = key.display(),
                url = prism.rest_url(),
            ),
        )
        .expect("the config is written");
        Env {
            g,
            prism,
            _dir: dir,
            config,
        }
    }

    fn ctl(&self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_revokectl"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .env_remove("RUST_LOG")
            .output()
            .expect("revokectl runs");
        assert!(
            out.status.success(),
            "revokectl {args:?} failed\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Every grantee (address or domain, lowercase) of every file and shared drive
    fn grantees(&self) -> Vec<String> {
        self.g.world(|w| {
            let mut all: Vec<String> = w
                .files
                .values()
                .flat_map(|f| f.permissions.iter())
                .chain(w.drives.values().flat_map(|d| d.permissions.iter()))
                .filter_map(|p| {
                    p.email
                        .clone()
                        .or_else(|| p.domain.clone())
                        .or_else(|| (p.kind == "anyone").then(|| "anyone".to_owned()))
                })
                .map(|e| e.to_ascii_lowercase())
                .collect();
            all.sort();
            all.dedup();
            all
        })
    }
}

fn json_lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn revokectl_client_domain_removes_every_share_of_the_client_and_only_those() {
    let env = Env::new();
    let pat = env.g.world(|w| {
        let admin = w.user("admin@example.com");
        w.edit(&admin, |u| u.is_admin = true);
        w.user("archive@example.com");
        let carol = w.user("carol@example.com");
        let pat = w.user("pat@clientco.test");
        let deliverable = w.file(&pat, "Client deliverable");
        w.share(&deliverable, "user", "lee@clientco.test", "writer");
        let roadmap = w.file(&carol, "Roadmap");
        w.share(&roadmap, "user", "Lee@ClientCo.TEST", "reader");
        w.share(&roadmap, "group", "partners@clientco.test", "writer");
        w.share(&roadmap, "domain", "eu.clientco.test", "reader");
        w.share(&roadmap, "user", "x@notclientco.test", "reader");
        w.share(&roadmap, "anyone", "", "reader");
        let project = w.shared_drive("Client project");
        w.drive_member(&project, &carol, "organizer");
        let lee = w.permission_id("user:lee@clientco.test");
        if let Some(d) = w.drives.get_mut(&project) {
            d.permissions.push(Permission {
                id: lee,
                kind: "user".into(),
                email: Some("lee@clientco.test".into()),
                domain: None,
                role: "writer".into(),
            });
        }
        pat
    });
    let before = env.grantees();
    for g in [
        "lee@clientco.test",
        "partners@clientco.test",
        "eu.clientco.test",
    ] {
        assert!(before.iter().any(|x| x == g), "{g} in {before:?}");
    }

    let plan = env.ctl(&["plan", "--client-domain", "ClientCo.test"]);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(text.contains("google"), "{text}");
    assert!(env.g.mutations().is_empty(), "planning writes nothing");

    let applied = env.ctl(&[
        "apply",
        "--client-domain",
        "clientco.test",
        "--auto-approve",
        "-o",
        "jsonl",
    ]);
    let lines = json_lines(&applied.stdout);
    assert!(!lines.is_empty());
    let unfinished: Vec<&Value> = lines
        .iter()
        .filter(|l| !matches!(l["outcome"].as_str(), Some("done" | "already_done")))
        .collect();
    assert!(unfinished.is_empty(), "{unfinished:#?}");
    assert!(
        lines.iter().all(|l| l["verdict"] == "confirmed"),
        "{lines:#?}"
    );
    // What is left: our own people, the look-alike domain's address, the link share.
    let after = env.grantees();
    assert_eq!(
        after,
        [
            "anyone",
            "archive@example.com",
            "carol@example.com",
            "x@notclientco.test"
        ],
        "{after:?}"
    );
    // The client's user of ours is offboarded, its files with the archive owner.
    assert!(env.g.user(&pat).is_none(), "pat is deleted");

    // A second run finds nothing of the client left and sends nothing.
    env.g.clear_requests();
    env.ctl(&[
        "apply",
        "--client-domain",
        "clientco.test",
        "--auto-approve",
        "-o",
        "jsonl",
    ]);
    assert_eq!(env.g.mutations(), Vec::new(), "a rerun writes nothing");
    assert_eq!(
        env.prism.errors(),
        Vec::<String>::new(),
        "prism found requests or answers that break Google's descriptions"
    );
}
