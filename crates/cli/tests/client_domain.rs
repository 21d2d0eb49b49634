//! A departing client is one job and one plan across every system that can find what its
//! domain reaches: `revokectl plan --client-domain` against slapd (which takes no client jobs
//! and is named as not searched), the GitHub stand-in and the Google stand-in, each behind Prism
//! with the vendor's own API description. The client's outside collaborator and its Drive shares
//! go; a look-alike domain's share, our own people and their files stay; planning again finds
//! nothing of the client left.

mod common;

use common::Env;
use revoke_testkit::github::{Permission, Role};
use revoke_testkit::google::GoogleStandin;
use revoke_testkit::{GithubStandin, Prism};
use serde_json::Value;

struct Stack {
    env: Env,
    gh: GithubStandin,
    g: GoogleStandin,
    _prisms: (Prism, Prism),
    /// Holds the service-account key the config names.
    _keys: tempfile::TempDir,
}

fn stack() -> Stack {
    let gh = GithubStandin::start().expect("github stand-in");
    let gh_prism = gh.behind_prism().expect("prism in front of github");
    let g = GoogleStandin::start().expect("google stand-in");
    let g_prism = g.prism().expect("prism in front of google");
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("google-sa.json");
    std::fs::write(&key, g.service_account_key()).expect("key");
    let extra = format!(
        r#"[connectors.github]
kind = "github"
orgs = ["acme"]
api_url = "{gh_api}"
graphql_url = "{gh_graphql}"
token = "{gh_token}"
mutation_spacing_ms = 0
[connectors.google]
kind = "google-workspace"
private_key_file = "{key}"
admin_email = "admin@example.com"
api_url = "{g_api}"
transfer_to = "archive@example.com"
transfer_poll_ms = 10
transfer_wait_secs = 1
"#,
        gh_api = gh_prism.rest_url(),
        gh_graphql = gh.graphql_url(),
        gh_token = gh.token(),
        key = key.display(),
        g_api = g_prism.rest_url(),
    );
    let env = Env::new("", &extra);
    Stack {
        env,
        gh,
        g,
        _prisms: (gh_prism, g_prism),
        _keys: dir,
    }
}

#[test]
fn a_departing_client_is_one_plan_across_github_and_google_and_only_its_access_goes() {
    let s = stack();
    s.gh.world(|w| {
        let o = w.org("acme");
        o.member("bob", Role::Member);
        o.repo("web")
            .collaborator("ann", Permission::Push)
            .collaborator("lookalike", Permission::Pull)
            .collaborator("bob", Permission::Push);
        w.set_public_email("ann", "Ann@ClientCo.test");
        w.set_public_email("lookalike", "l@notclientco.test");
    });
    let (kept_share, client_share, roadmap) = s.g.world(|w| {
        let admin = w.user("admin@example.com");
        w.edit(&admin, |u| u.is_admin = true);
        w.user("archive@example.com");
        let alice = w.user("alice@example.com");
        let roadmap = w.file(&alice, "Roadmap");
        let client_share = w.share(&roadmap, "user", "lee@clientco.test", "writer");
        let kept_share = w.share(&roadmap, "user", "x@notclientco.test", "reader");
        (kept_share, client_share, roadmap)
    });

    let plan_file = s.env.path("client.json");
    let plan_path = plan_file.to_str().expect("utf-8");
    let run = s.env.ctl(&[
        "plan",
        "--client-domain",
        "ClientCo.test",
        "-out",
        plan_path,
        "-o",
        "json",
    ]);
    let out = run.ok();
    assert!(
        s.gh.mutations().is_empty() && s.g.mutations().is_empty(),
        "planning writes nothing"
    );
    let plan: Value = serde_json::from_str(&std::fs::read_to_string(&plan_file).expect("plan"))
        .expect("plan json");
    assert_eq!(plan["jobs"][0]["subject"]["client_domain"], "clientco.test");
    let mut by: Vec<(String, String)> = plan["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| {
            (
                a["connector"].as_str().unwrap_or_default().to_string(),
                a["kind"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    by.sort();
    by.dedup();
    assert!(
        by.contains(&("github".into(), "remove_outside_collaborator".into()))
            && by.iter().any(|(c, _)| c == "google"),
        "one plan across both systems: {by:?}\n{}",
        out.stdout
    );
    assert!(
        by.iter()
            .all(|(c, _)| c == "github" || c == "google" || c == "manual"),
        "nothing for the directory that takes no client jobs (the policy's manual steps stay): {by:?}"
    );
    let notes: Vec<&str> = plan["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .filter_map(|n| n["message"].as_str())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("not searched: corp-ldap (ldap) does not take client jobs")),
        "{notes:?}"
    );

    s.env.ctl(&["apply", plan_path, "--auto-approve"]).ok();
    let mut outside = s.gh.outside_collaborators("acme");
    outside.sort();
    assert_eq!(outside, ["lookalike"], "ann went, the look-alike stayed");
    assert!(s.gh.is_member("acme", "bob"));
    let left: Vec<String> = s.g.world(|w| {
        w.files[&roadmap]
            .permissions
            .iter()
            .map(|p| p.id.clone())
            .collect()
    });
    assert!(!left.contains(&client_share), "{left:?}");
    assert!(left.contains(&kept_share), "{left:?}");

    // Nothing of the client is left to remove.
    let again = s
        .env
        .ctl(&[
            "plan",
            "--client-domain",
            "clientco.test",
            "--detailed-exitcode",
        ])
        .ok();
    assert!(
        again
            .stderr
            .contains("clientco.test: already offboarded (job ")
            && again.stderr.contains("nothing left to remove"),
        "{}",
        again.stderr
    );
    let before = (s.gh.mutations().len(), s.g.mutations().len());
    let _ = s.env.ctl(&[
        "apply",
        "--client-domain",
        "clientco.test",
        "--auto-approve",
    ]);
    assert_eq!(
        (s.gh.mutations().len(), s.g.mutations().len()),
        before,
        "a rerun sends nothing"
    );
}
