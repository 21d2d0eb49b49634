//! The GitHub connector against the testkit's stateful GitHub stand-in, behind Prism loaded with
//! GitHub's own OpenAPI description: every request and response of these tests is checked
//! against GitHub's spec, and every test ends by asserting Prism saw no violation.
//!
//! Actions run in plan order with the executor's retry rule (wait what a rate-limited or
//! retryable error says, then send again), which is what `revoke_engine::Executor` does.

use std::time::Duration;

use revoke_connector_github::{
    GithubConfig, GithubConnector, QUERIES, REMOVE_ORG_MEMBER, REMOVE_OUTSIDE_COLLABORATOR,
};
use revoke_core::{
    Action, Connector, ConnectorError, Discovery, ErrorClass, JobId, MemoryJournal, Outcome,
    ProposedAction, Subject, Verdict,
};
use revoke_testkit::github::{CredentialType, LimitScope, Permission, Role};
use revoke_testkit::{validate_graphql, GithubStandin, Prism};
use serde_json::{json, Value};

const GH: &str = "github";

struct Env {
    gh: GithubStandin,
    prism: Prism,
}

fn env() -> Env {
    let gh = GithubStandin::start().expect("github stand-in");
    let prism = gh.behind_prism().expect("prism in front of the stand-in");
    Env { gh, prism }
}

impl Env {
    fn config(&self, extra: Value) -> Value {
        let mut v = json!({
            "kind": "github",
            "orgs": ["acme"],
            "api_url": self.prism.rest_url(),
            // GitHub's OpenAPI has no /graphql: GraphQL goes to the stand-in directly, and its
            // documents are validated against GitHub's GraphQL schema instead.
            "graphql_url": self.gh.graphql_url(),
            "token": self.gh.token(),
            "mutation_spacing_ms": 0,
        });
        if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            for (k, val) in e {
                if val.is_null() {
                    m.remove(k);
                } else {
                    m.insert(k.clone(), val.clone());
                }
            }
        }
        v
    }

    fn connector(&self, extra: Value) -> GithubConnector {
        let v = self.config(extra);
        if let Err(issues) = revoke_connector_github::validate("connectors.github", &v) {
            panic!("config should be valid: {issues:?}");
        }
        GithubConnector::new(GH, GithubConfig::from_value(&v).expect("config")).expect("connector")
    }

    /// Prism saw nothing wrong, and every GraphQL document sent is valid against GitHub's schema.
    fn assert_clean(&self) {
        self.assert_clean_but(&[]);
    }

    /// The same, allowing Prism's warning for statuses a test injects on purpose that GitHub's
    /// description does not declare for that operation (a 502, a 403 secondary limit).
    fn assert_clean_but(&self, injected: &[u16]) {
        let undeclared = "Warning response: Unable to match the returned status code";
        let violations: Vec<String> = self
            .prism
            .violations()
            .into_iter()
            .filter(|v| {
                !(v.contains(undeclared)
                    && injected.iter().any(|s| v.contains(&format!("-> {s}:"))))
            })
            .collect();
        assert_eq!(violations, Vec::<String>::new(), "prism violations");
        let docs = self.gh.graphql_documents();
        validate_graphql(&docs).expect("graphql documents valid against github's schema");
    }
}

fn subject(id: &str, email: Option<&str>, login: Option<&str>) -> Subject {
    let mut s = Subject::new(id);
    s.email = email.map(str::to_string);
    if let Some(l) = login {
        s.usernames.insert(GH.into(), l.into());
    }
    s
}

/// The actions the planner would make of each subject's proposals, pinned to their accounts.
fn actions(
    conn: &GithubConnector,
    job: &str,
    subjects: &[Subject],
    found: &[Discovery],
) -> Vec<Action> {
    let job = JobId(job.to_string());
    subjects
        .iter()
        .zip(found)
        .flat_map(|(s, d)| {
            Action::from_proposals(&job, GH, d, conn.plan(s, d))
                .unwrap_or_else(|e| panic!("proposals of {} name its accounts: {e}", s.id))
        })
        .collect()
}

/// The executor's rule: a rate-limited or retryable error is sent again after the wait it names.
async fn apply_with_retries(conn: &GithubConnector, a: &Action) -> Result<Outcome, ConnectorError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match conn.apply(a, &a.key, &MemoryJournal::new()).await {
            Err(e) if attempts < 8 => match e.class {
                ErrorClass::RateLimited { retry_after } => tokio::time::sleep(retry_after).await,
                ErrorClass::Retryable { retry_after } => {
                    tokio::time::sleep(retry_after.unwrap_or(Duration::from_millis(100))).await
                }
                _ => return Err(e),
            },
            other => return other,
        }
    }
}

async fn run(conn: &GithubConnector, actions: &[Action]) -> Vec<(String, Outcome)> {
    let mut out = Vec::new();
    for a in actions {
        let outcome = apply_with_retries(conn, a)
            .await
            .unwrap_or_else(|e| panic!("{} {}: {e:?}", a.kind, a.target));
        let verdict = conn.verify(a).await.expect("verify");
        assert_eq!(verdict, Verdict::Confirmed, "{} {}", a.kind, a.target);
        out.push((a.kind.0.clone(), outcome));
    }
    out
}

fn plan_all(
    conn: &GithubConnector,
    subjects: &[Subject],
    found: &[Discovery],
) -> Vec<ProposedAction> {
    subjects
        .iter()
        .zip(found)
        .flat_map(|(s, d)| conn.plan(s, d))
        .collect()
}

/// A readable plan: one line per action, with what it waits for.
fn render(proposed: &[ProposedAction]) -> Vec<String> {
    proposed
        .iter()
        .map(|p| {
            let after: Vec<String> = p.after.iter().map(|(k, t)| format!("{k} {t}")).collect();
            let after = if after.is_empty() {
                String::new()
            } else {
                format!(" (after {})", after.join(", "))
            };
            format!("{} {} {}: {}{after}", p.phase, p.kind, p.target, p.summary)
        })
        .collect()
}

fn app_key() -> String {
    let out = std::process::Command::new("openssl")
        .args(["genrsa", "-traditional", "2048"])
        .output()
        .expect("openssl makes the test app key (apt-get install openssl)");
    assert!(out.status.success());
    String::from_utf8(out.stdout).expect("pem")
}

/// The seeded org: alice (owner, teams, a direct grant, SSO credentials, a fine-grained token,
/// known to HR by email only), eve (outside collaborator on two repositories), carol (a pending
/// invitation by login), dave (a pending invitation by email), frank (a repository invitation),
/// and bob, who stays and must keep everything.
fn seed(gh: &GithubStandin) {
    gh.world(|w| {
        let o = w.org("acme");
        o.member("alice", Role::Admin).member("bob", Role::Member);
        o.team("platform").maintainer("alice").member("bob");
        o.team("security").member("alice");
        o.repo("api")
            .collaborator("alice", Permission::Push)
            .collaborator("bob", Permission::Admin);
        o.repo("web").collaborator("eve", Permission::Pull);
        o.repo("ops.tools").collaborator("eve", Permission::Admin);
        o.repo("web").invite("frank", Permission::Push);
        o.invite("carol", Role::Member);
        o.invite_email("dave@corp.example", Role::Member);
        o.credential_authorization("alice", CredentialType::PersonalAccessToken);
        o.credential_authorization("alice", CredentialType::SshKey);
        o.credential_authorization("bob", CredentialType::SshKey);
        o.pat_grant("alice", "laptop-cli");
        o.pat_grant("bob", "ci");
        o.saml_identity("alice", "alice@corp.example");
        o.saml_identity("bob", "bob@corp.example");
    });
}

fn leavers() -> Vec<Subject> {
    vec![
        subject("E100", Some("alice@corp.example"), None),
        subject("E200", None, Some("eve")),
        subject("E300", Some("carol@corp.example"), None),
        subject("E400", Some("dave@corp.example"), None),
        subject("E500", None, Some("frank")),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_org_plan_apply_rerun_with_a_github_app() {
    let env = env();
    seed(&env.gh);
    env.gh.set_app(4242, 77);
    let conn = env.connector(json!({
        "token": null, "app_id": 4242, "installation_id": 77, "private_key": app_key(),
        "saml_sso": true, "logins": {"carol@corp.example": "carol"}
    }));
    conn.check().await.expect("check");
    let subjects = leavers();
    let found = conn.discover_many(&subjects).await.expect("discover");
    assert!(found.iter().all(|d| d.found), "{found:#?}");

    // REST discovery finds exactly the same.
    let rest = env.connector(json!({
        "token": null, "app_id": 4242, "installation_id": 77, "private_key": app_key(),
        "saml_sso": true, "logins": {"carol@corp.example": "carol"}, "discovery": "rest"
    }));
    assert_eq!(
        rest.discover_many(&subjects).await.expect("rest discover"),
        found
    );

    let proposed = plan_all(&conn, &subjects, &found);
    insta::assert_json_snapshot!("seeded_org_plan", render(&proposed));
    // Whom each subject's actions are pinned to: a user by numeric id, with every identifier
    // GitHub holds for them; dave's invitation (by email, no user) by its own id.
    let accounts: Vec<String> = found
        .iter()
        .flat_map(|d| {
            d.accounts.iter().map(move |a| {
                let ids: Vec<&str> = a.identifiers.iter().map(String::as_str).collect();
                format!(
                    "{}: {} {} = {} [{}] ({})",
                    d.subject,
                    a.name,
                    a.id_kind,
                    a.id,
                    ids.join(", "),
                    a.matched_by
                )
            })
        })
        .collect();
    insta::assert_json_snapshot!("seeded_org_accounts", accounts);

    let before = env.gh.mutations().len();
    let done = run(&conn, &actions(&conn, "job-1", &subjects, &found)).await;
    assert!(done.iter().all(|(_, o)| *o == Outcome::Done), "{done:?}");
    // One mutation per grant (the member removal may read back, never write twice).
    assert_eq!(env.gh.mutations().len() - before, proposed.len());

    for who in ["alice", "eve", "carol"] {
        assert!(!env.gh.is_member("acme", who), "{who}");
    }
    assert!(env.gh.org_invitations("acme").is_empty());
    assert!(env.gh.repo_invitations("acme", "web").is_empty());
    assert!(env.gh.outside_collaborators("acme").is_empty());
    let api: Vec<String> = env
        .gh
        .collaborators("acme", "api")
        .into_iter()
        .map(|(l, _)| l)
        .collect();
    assert_eq!(api, vec!["bob"]);
    let creds: Vec<String> = env
        .gh
        .credential_authorizations("acme")
        .into_iter()
        .map(|c| c.login)
        .collect();
    assert_eq!(creds, vec!["bob"]);
    let pats: Vec<String> = env
        .gh
        .pat_grants("acme")
        .into_iter()
        .map(|p| p.owner)
        .collect();
    assert_eq!(pats, vec!["bob"]);
    assert!(env.gh.is_member("acme", "bob"));
    assert_eq!(env.gh.team_members("acme", "platform").len(), 1);

    // A rerun of the same plan sends no mutation at all.
    let before = env.gh.mutations().len();
    let again = run(&conn, &actions(&conn, "job-1", &subjects, &found)).await;
    assert!(
        again.iter().all(|(_, o)| *o == Outcome::AlreadyDone),
        "{again:?}"
    );
    assert_eq!(env.gh.mutations().len(), before);
    // And discovery now finds nothing.
    let after = conn.discover_many(&subjects).await.expect("discover again");
    assert!(after.iter().all(|d| !d.found), "{after:#?}");

    // Each connector minted its installation token once and reused it.
    assert_eq!(conn.installation_tokens_minted(), 1);
    assert_eq!(rest.installation_tokens_minted(), 1);
    assert_eq!(env.gh.installation_tokens_issued(), 2);
    env.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installation_token_near_expiry_is_replaced_before_it_is_sent() {
    let env = env();
    seed(&env.gh);
    env.gh.set_app(9, 10);
    // Five minutes is our refresh margin: this token is due for refresh two seconds after minting.
    env.gh
        .set_installation_token_ttl(Duration::from_secs(5 * 60 + 2));
    let conn = env.connector(json!({
        "token": null, "app_id": 9, "installation_id": 10, "private_key": app_key()
    }));
    let s = [subject("E1", None, Some("alice"))];
    conn.discover_many(&s).await.expect("first");
    tokio::time::sleep(Duration::from_secs(3)).await;
    conn.discover_many(&s).await.expect("second");
    assert_eq!(env.gh.installation_tokens_issued(), 2);
    assert!(
        env.gh.requests().iter().all(|r| r.status != 401),
        "no request with a stale token"
    );
    env.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_with_a_pending_invitation_too_is_removed_and_uninvited() {
    let env = env();
    env.gh.world(|w| {
        let o = w.org("acme");
        o.member("alice", Role::Member);
        o.repo("api");
        o.invite("alice", Role::Admin);
        o.invite_email("alice@corp.example", Role::Member);
    });
    let conn = env.connector(json!({}));
    let s = [subject("E1", Some("alice@corp.example"), Some("alice"))];
    let found = conn.discover_many(&s).await.expect("discover");
    let proposed = plan_all(&conn, &s, &found);
    let kinds: Vec<&str> = proposed.iter().map(|p| p.kind.0.as_str()).collect();
    assert_eq!(kinds, vec!["cancel_org_invitation", REMOVE_ORG_MEMBER]);
    run(&conn, &actions(&conn, "job-2", &s, &found)).await;
    assert!(!env.gh.is_member("acme", "alice"));
    assert_eq!(env.gh.org_invitations("acme"), vec![]);
    env.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outside_collaborator_on_fifty_repositories_goes_in_one_call() {
    let env = env();
    env.gh.world(|w| {
        let o = w.org("acme");
        for i in 0..50 {
            o.repo(&format!("repo-{i:02}"))
                .collaborator("eve", Permission::Push);
        }
        o.repo("unrelated");
    });
    let conn = env.connector(json!({}));
    let s = [subject("E1", None, Some("eve"))];
    let found = conn.discover_many(&s).await.expect("discover");
    let grants = found[0]
        .findings
        .iter()
        .filter(|f| f.kind == "repository_collaborator")
        .count();
    assert_eq!(grants, 50);
    let proposed = plan_all(&conn, &s, &found);
    assert_eq!(proposed.len(), 1, "{:#?}", render(&proposed));
    assert_eq!(proposed[0].kind.0, REMOVE_OUTSIDE_COLLABORATOR);
    let before = env.gh.mutations().len();
    run(&conn, &actions(&conn, "job-3", &s, &found)).await;
    assert_eq!(env.gh.mutations().len() - before, 1);
    for i in 0..50 {
        assert!(env
            .gh
            .collaborators("acme", &format!("repo-{i:02}"))
            .is_empty());
    }
    env.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outside_collaborator_who_joined_since_the_plan_is_removed_as_a_member() {
    let env = env();
    env.gh.world(|w| {
        w.org("acme")
            .repo("api")
            .collaborator("eve", Permission::Push);
    });
    let conn = env.connector(json!({}));
    let s = [subject("E1", None, Some("eve"))];
    let found = conn.discover_many(&s).await.expect("discover");
    env.gh.world(|w| {
        w.org("acme").member("eve", Role::Member);
    });
    let out = run(&conn, &actions(&conn, "job-4", &s, &found)).await;
    assert_eq!(
        out,
        vec![(REMOVE_OUTSIDE_COLLABORATOR.to_string(), Outcome::Done)]
    );
    assert!(!env.gh.is_member("acme", "eve"));
    env.assert_clean();
}

/// dave (user id 1200): a member with a team, a direct grant, an SSO-authorized key and a
/// fine-grained token; bob stays.
fn seed_dave(gh: &GithubStandin) {
    gh.world(|w| {
        w.user("dave", 1200).expect("free login and id");
        let o = w.org("acme");
        o.member("dave", Role::Member).member("bob", Role::Member);
        o.team("platform").member("dave").member("bob");
        o.repo("api")
            .collaborator("dave", Permission::Push)
            .collaborator("bob", Permission::Push);
        o.credential_authorization("dave", CredentialType::SshKey);
        o.pat_grant("dave", "laptop");
        o.saml_identity("dave", "dave@corp.example");
        o.scim_identity("dave", "dsmith");
    });
}

fn dave_connector(env: &Env) -> GithubConnector {
    env.connector(json!({
        "token": null, "app_id": 5, "installation_id": 6, "private_key": app_key(),
        "saml_sso": true, "remove_team_memberships": true,
    }))
}

/// Requests since `from` that name `login` as a path segment (`/dave`, `/dave/`, `?login=dave`).
fn naming(env: &Env, from: usize, login: &str) -> Vec<String> {
    env.gh.requests()[from..]
        .iter()
        .filter(|r| {
            r.path.split('/').any(|seg| seg.eq_ignore_ascii_case(login))
                || r.query.as_deref().is_some_and(|q| {
                    q.split('&').any(|kv| {
                        kv.split('=')
                            .nth(1)
                            .is_some_and(|v| v.eq_ignore_ascii_case(login))
                    })
                })
        })
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leaver_is_one_account_pinned_by_user_id_with_every_identifier() {
    let env = env();
    seed_dave(&env.gh);
    env.gh.set_app(5, 6);
    let conn = dave_connector(&env);
    let s = [subject("E1", None, Some("Dave"))];
    let found = conn.discover_many(&s).await.expect("discover");
    let node_id = "MDQ6VXNlcjEyMDA="; // GitHub's global id of User 1200
    assert_eq!(found[0].accounts.len(), 1, "{:#?}", found[0].accounts);
    let a = &found[0].accounts[0];
    assert_eq!(
        (a.id.as_str(), a.id_kind.as_str(), a.name.as_str()),
        ("1200", "user id", "dave")
    );
    let ids: Vec<&str> = a.identifiers.iter().map(String::as_str).collect();
    assert_eq!(
        ids,
        vec!["1200", node_id, "dave", "dave@corp.example", "dsmith"]
    );
    assert_eq!(a.matched_by, "login dave (the job's username)");
    assert!(found[0]
        .findings
        .iter()
        .all(|f| f.attrs.get("user_id").map(String::as_str) == Some("1200")));
    // Every action is pinned to that account; REST discovery finds the same.
    let acts = actions(&conn, "job-p", &s, &found);
    assert_eq!(acts.len(), 5, "{acts:#?}");
    assert!(acts
        .iter()
        .all(|x| x.account.as_ref().map(|p| p.id.as_str()) == Some("1200")));
    let rest = env.connector(json!({
        "token": null, "app_id": 5, "installation_id": 6, "private_key": app_key(),
        "saml_sso": true, "discovery": "rest",
    }));
    assert_eq!(
        rest.discover_many(&s).await.expect("rest")[0].accounts,
        found[0].accounts
    );

    // Known to HR by email only: found through the SAML identity, the same account.
    let by_email = conn
        .discover_many(&[subject("E1", Some("Dave@Corp.example"), None)])
        .await
        .expect("by email");
    assert_eq!(by_email[0].accounts[0].id, "1200");
    assert_eq!(
        by_email[0].accounts[0].matched_by,
        "login dave (the SAML identity dave@corp.example)"
    );
    env.assert_clean();
}

/// Issue 12, section 7: plan leaver dave (user id 1200); before apply dave is renamed dave-old
/// and the login dave is taken by a new member (user id 2200). Nothing may reach the new dave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_renamed_and_taken_by_a_new_user_is_never_touched() {
    let env = env();
    seed_dave(&env.gh);
    env.gh.set_app(5, 6);
    let conn = dave_connector(&env);
    let s = [subject("E1", None, Some("dave"))];
    let found = conn.discover_many(&s).await.expect("discover");
    let acts = actions(&conn, "job-r", &s, &found);
    assert_eq!(acts.len(), 5);

    env.gh.world(|w| {
        w.rename_user("dave", "dave-old").expect("rename");
        w.user("dave", 2200).expect("the login is free again");
        let o = w.org("acme");
        o.member("dave", Role::Member);
        o.team("platform").member("dave");
        o.repo("api").collaborator("dave", Permission::Pull);
    });
    let from = env.gh.requests().len();
    let mutations = env.gh.mutations().len();
    for a in &acts {
        let e = conn
            .apply(a, &a.key, &MemoryJournal::new())
            .await
            .expect_err("identity changed");
        assert_eq!(
            (e.code.as_str(), e.is_retryable()),
            ("identity_changed", false),
            "{} {}: {e:?}",
            a.kind,
            a.target
        );
        for named in ["1200", "2200", "dave-old"] {
            assert!(e.message.contains(named), "{named}: {}", e.message);
        }
        let e = conn.verify(a).await.expect_err("verify refuses too");
        assert_eq!(e.code, "identity_changed");
    }
    assert_eq!(env.gh.mutations().len(), mutations, "nothing was sent");
    assert_eq!(
        naming(&env, from, "dave"),
        vec!["GET /users/dave"; acts.len() * 2],
        "the new dave is only looked up, never read or written as the leaver"
    );
    assert!(
        env.gh.is_member("acme", "dave"),
        "the new user keeps his membership"
    );
    assert!(
        env.gh.is_member("acme", "dave-old"),
        "identity_changed: left for a new plan"
    );
    assert_eq!(env.gh.team_members("acme", "platform").len(), 3);
    env.assert_clean();
}

/// The same rename without the reuse: the pinned user is removed under the login he has now,
/// by every action, including the ones read and filtered by login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_leaver_is_removed_under_his_new_login() {
    let env = env();
    seed_dave(&env.gh);
    env.gh.set_app(5, 6);
    let conn = dave_connector(&env);
    let s = [subject("E1", None, Some("dave"))];
    let found = conn.discover_many(&s).await.expect("discover");
    let acts = actions(&conn, "job-n", &s, &found);
    env.gh
        .world(|w| w.rename_user("dave", "dave-old").map(|_| ()))
        .expect("rename");
    // Before apply, verify says what is still held, and by whom now.
    match conn.verify(&acts[0]).await.expect("verify") {
        Verdict::NotConfirmed { detail } => {
            assert!(detail.contains("dave-old (user id 1200)"), "{detail}")
        }
        other => panic!("expected not confirmed, got {other:?}"),
    }
    let from = env.gh.requests().len();
    let done = run(&conn, &acts).await;
    assert!(done.iter().all(|(_, o)| *o == Outcome::Done), "{done:?}");
    let deletes: Vec<String> = env.gh.requests()[from..]
        .iter()
        .filter(|r| r.method == "DELETE" && !r.path.contains("/credential-authorizations/"))
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        deletes,
        vec![
            "/orgs/acme/teams/platform/memberships/dave-old",
            "/orgs/acme/memberships/dave-old",
            "/repos/acme/api/collaborators/dave-old",
        ]
    );
    assert!(naming(&env, from, "dave")
        .iter()
        .all(|r| r == "GET /users/dave"));
    assert!(!env.gh.is_member("acme", "dave-old"));
    assert_eq!(env.gh.collaborators("acme", "api").len(), 1);
    assert!(env.gh.credential_authorizations("acme").is_empty());
    assert!(env.gh.pat_grants("acme").is_empty());
    assert!(env.gh.is_member("acme", "bob"));
    env.assert_clean();
}

/// The pinned user's account was deleted: nothing of theirs is left, nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_leaver_is_already_gone() {
    let env = env();
    seed_dave(&env.gh);
    env.gh.set_app(5, 6);
    let conn = dave_connector(&env);
    let s = [subject("E1", None, Some("dave"))];
    let found = conn.discover_many(&s).await.expect("discover");
    let acts = actions(&conn, "job-d", &s, &found);
    env.gh
        .world(|w| w.delete_user("dave").map(|_| ()))
        .expect("delete");
    let mutations = env.gh.mutations().len();
    let out = run(&conn, &acts).await;
    assert!(
        out.iter().all(|(_, o)| *o == Outcome::AlreadyDone),
        "{out:?}"
    );
    assert_eq!(env.gh.mutations().len(), mutations);
    // Unless the org itself is out of sight: that is no success.
    env.gh.remove_org("acme");
    let e = conn
        .apply(&acts[0], &acts[0].key, &MemoryJournal::new())
        .await
        .expect_err("org gone");
    assert_eq!(e.code, "org_not_found");
    env.assert_clean();
}

/// Issue 12, section 7 (false failure): an outside collaborator with a pending org invitation.
/// The collaborator removal is verified by the outside-collaborator status it removed, not by
/// the pending membership the invitation's own action removes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outside_collaborator_with_a_pending_invitation_is_confirmed_on_its_own() {
    let env = env();
    env.gh.world(|w| {
        let o = w.org("acme");
        o.repo("web").collaborator("eve", Permission::Push);
        o.invite("eve", Role::Member);
    });
    let conn = env.connector(json!({}));
    let s = [subject("E1", None, Some("eve"))];
    let found = conn.discover_many(&s).await.expect("discover");
    let acts = actions(&conn, "job-o", &s, &found);
    let kinds: Vec<&str> = acts.iter().map(|a| a.kind.0.as_str()).collect();
    assert_eq!(kinds, vec![REMOVE_ORG_MEMBER, REMOVE_OUTSIDE_COLLABORATOR]);
    let (member, outside) = (&acts[0], &acts[1]);
    assert_eq!(
        conn.apply(outside, &outside.key, &MemoryJournal::new())
            .await
            .expect("apply"),
        Outcome::Done
    );
    assert_eq!(env.gh.org_invitations("acme").len(), 1, "still pending");
    assert_eq!(
        conn.verify(outside).await.expect("verify"),
        Verdict::Confirmed
    );
    assert!(matches!(
        conn.verify(member).await.expect("verify"),
        Verdict::NotConfirmed { .. }
    ));
    run(&conn, std::slice::from_ref(member)).await;
    assert!(env.gh.org_invitations("acme").is_empty());
    assert!(env.gh.collaborators("acme", "web").is_empty());
    // Joined since: the outside-collaborator action is not confirmed while he is an active
    // member, whatever the outside-collaborator list says.
    env.gh.world(|w| {
        w.org("acme").member("eve", Role::Member);
    });
    assert!(matches!(
        conn.verify(outside).await.expect("verify"),
        Verdict::NotConfirmed { .. }
    ));
    env.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secondary_limit_storm_is_waited_out_and_everything_converges() {
    let env = env();
    env.gh.world(|w| {
        let o = w.org("acme");
        for i in 0..6 {
            o.member(&format!("m{i}"), Role::Member);
            o.repo(&format!("r{i}"))
                .collaborator(&format!("m{i}"), Permission::Push);
        }
    });
    // The first three mutations meet a secondary limit: one with retry-after, then two without
    // (the connector must then hold everything for secondary_limit_wait_secs).
    env.gh
        .secondary_limit(1, Some(Duration::from_secs(1)), LimitScope::Mutations);
    let conn = env.connector(json!({"mutation_spacing_ms": 100, "secondary_limit_wait_secs": 2}));
    let s: Vec<Subject> = (0..6)
        .map(|i| subject(&format!("E{i}"), None, Some(&format!("m{i}"))))
        .collect();
    let found = conn.discover_many(&s).await.expect("discover");
    let proposed = plan_all(&conn, &s, &found);
    assert_eq!(proposed.len(), 12);
    let acts = actions(&conn, "job-5", &s, &found);
    let (first, rest) = acts.split_at(4);
    run(&conn, first).await;
    env.gh.set_secondary_wait(Duration::from_secs(2));
    env.gh.secondary_limit(2, None, LimitScope::Mutations);
    // The rest run concurrently, as the executor's workers would, through one governor.
    let conn = &conn;
    let results = futures_util::future::join_all(rest.iter().map(|a| async move {
        let o = apply_with_retries(conn, a).await;
        (a.target.clone(), o.map_err(|e| e.to_string()))
    }))
    .await;
    for (target, r) in &results {
        assert!(r.is_ok(), "{target}: {r:?}");
    }
    for i in 0..6 {
        assert!(!env.gh.is_member("acme", &format!("m{i}")));
        assert!(env.gh.collaborators("acme", &format!("r{i}")).is_empty());
    }
    assert_eq!(
        env.gh.pace_violations(),
        vec![],
        "no request before the allowed time"
    );
    let gap = env.gh.min_mutation_gap().expect("mutations");
    assert!(
        gap >= Duration::from_millis(95),
        "mutations {gap:?} apart, expected >= 100 ms"
    );
    let refused = env.gh.requests().iter().filter(|r| r.status == 403).count();
    assert_eq!(refused, 3);
    env.assert_clean_but(&[403]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_are_refused_before_any_request_and_odd_names_are_encoded() {
    let env = env();
    env.gh.world(|w| {
        let o = w.org("acme");
        o.member("alice", Role::Member);
        o.repo("dots.and-dashes_1")
            .collaborator("alice", Permission::Push);
    });
    let conn = env.connector(json!({"match_subject_id": true}));
    let guarded = env.connector(json!({}));
    let bad_names = [
        "../x",
        "a/b",
        "?",
        "#",
        "%2F",
        "a%2Fb",
        "\"q\"",
        "'q'",
        "*)(uid=*",
        "..",
        "x/../../orgs/acme",
        "a b",
    ];
    for bad in bad_names {
        let n = env.gh.requests().len();
        let e = conn
            .discover_many(&[subject("E1", None, Some(bad))])
            .await
            .expect_err("refused");
        assert_eq!(e.code, "invalid_login", "{bad}: {e:?}");
        assert_eq!(env.gh.requests().len(), n, "{bad}: no request sent");
        // As the subject id, with match_subject_id (revokectl plan --user '../x'): the
        // permanent invalid_login the docs promise, not "unknown user".
        let e = conn
            .discover_many(&[Subject::new(bad)])
            .await
            .expect_err("refused");
        assert_eq!(
            (e.code.as_str(), e.is_retryable()),
            ("invalid_login", false),
            "{bad}: {e:?}"
        );
        assert!(e.message.contains(&format!("{bad:?}")), "{}", e.message);
        // Without match_subject_id the id is never taken for a login: nothing found.
        let d = guarded
            .discover_many(&[Subject::new(bad)])
            .await
            .expect("discover");
        assert!(!d[0].found, "{bad}");
        assert_eq!(env.gh.requests().len(), n, "{bad}: no request sent");
    }
    let s = [subject("E1", None, Some("alice"))];
    let found = conn.discover_many(&s).await.expect("discover");
    run(&conn, &actions(&conn, "job-6", &s, &found)).await;
    assert!(env.gh.collaborators("acme", "dots.and-dashes_1").is_empty());
    assert!(env.gh.requests().iter().all(|r| !r.path.contains("/../")));
    // A tampered plan file is input too: its parameters are checked again.
    let mut a = actions(&conn, "job-6", &s, &found).remove(0);
    a.params.insert("login".into(), "../admin".into());
    let e = conn
        .apply(&a, &a.key, &MemoryJournal::new())
        .await
        .expect_err("refused");
    assert_eq!(e.code, "bad_action");
    // So is its pin: an action without one, or pinned to something that is no user id.
    let n = env.gh.requests().len();
    let mut a = actions(&conn, "job-6", &s, &found).remove(0);
    a.account = None;
    let e = conn.verify(&a).await.expect_err("no pin");
    assert_eq!(e.code, "bad_action");
    let mut a = actions(&conn, "job-6", &s, &found).remove(0);
    if let Some(pin) = a.account.as_mut() {
        pin.id = "../1".into();
    }
    let e = conn
        .apply(&a, &a.key, &MemoryJournal::new())
        .await
        .expect_err("bad pin");
    assert_eq!(e.code, "bad_action");
    assert_eq!(env.gh.requests().len(), n, "nothing sent for a bad pin");
    env.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gone_org_or_team_is_a_permanent_error_not_success() {
    let env = env();
    env.gh.world(|w| {
        let o = w.org("acme");
        o.member("alice", Role::Member);
        o.team("platform").member("alice");
    });
    let conn = env.connector(json!({"remove_team_memberships": true}));
    let s = [subject("E1", None, Some("alice"))];
    let found = conn.discover_many(&s).await.expect("discover");
    let acts = actions(&conn, "job-7", &s, &found);
    assert_eq!(acts[0].kind.0, "remove_team_member");
    env.gh.remove_team("acme", "platform");
    let e = conn
        .apply(&acts[0], &acts[0].key, &MemoryJournal::new())
        .await
        .expect_err("team gone");
    assert_eq!(
        (e.class.name(), e.code.as_str()),
        ("permanent", "team_not_found")
    );
    env.gh.remove_org("acme");
    let e = conn
        .apply(&acts[1], &acts[1].key, &MemoryJournal::new())
        .await
        .expect_err("org gone");
    assert_eq!(
        (e.class.name(), e.code.as_str()),
        ("permanent", "org_not_found")
    );
    let e = conn.discover_many(&s).await.expect_err("org gone");
    assert_eq!(e.code, "org_not_found");
    // Injected 5xx are retryable, with no mutation sent twice.
    env.gh.world(|w| {
        w.org("acme").member("alice", Role::Member);
    });
    env.gh.fail_next(1, 502);
    let e = conn
        .apply(&acts[1], &acts[1].key, &MemoryJournal::new())
        .await
        .expect_err("502");
    assert_eq!(e.class.name(), "retryable");
    assert_eq!(
        conn.apply(&acts[1], &acts[1].key, &MemoryJournal::new())
            .await
            .expect("then done"),
        Outcome::Done
    );
    env.assert_clean_but(&[502]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enterprise_server_base_url_is_honoured() {
    let gh = GithubStandin::start().expect("stand-in");
    gh.world(|w| {
        let o = w.org("acme");
        o.member("alice", Role::Member);
        o.repo("api").collaborator("alice", Permission::Pull);
    });
    // Prism cannot route a base path (see revoke_testkit::prism): GHES goes to the stand-in.
    let v = json!({
        "orgs": ["acme"], "api_url": gh.ghes_url(), "token": gh.token(), "mutation_spacing_ms": 0
    });
    let cfg = GithubConfig::from_value(&v).expect("config");
    assert!(cfg.graphql_url().ends_with("/api/graphql"));
    let conn = GithubConnector::new(GH, cfg).expect("connector");
    let s = [subject("E1", None, Some("alice"))];
    let found = conn.discover_many(&s).await.expect("discover");
    let proposed = plan_all(&conn, &s, &found);
    assert_eq!(proposed.len(), 2);
    run(&conn, &actions(&conn, "job-8", &s, &found)).await;
    assert!(!gh.is_member("acme", "alice"));
    let paths: Vec<String> = gh.requests().into_iter().map(|r| r.path).collect();
    assert!(
        paths
            .iter()
            .all(|p| p.starts_with("/api/v3/") || p == "/api/graphql"),
        "{paths:#?}"
    );
}

#[test]
fn every_graphql_document_is_valid_against_githubs_schema() {
    let docs: Vec<String> = QUERIES.iter().map(|q| q.to_string()).collect();
    validate_graphql(&docs).expect("valid");
    // The check can fail: a field GitHub does not have is refused.
    let wrong = vec![QUERIES[0].replace("membersWithRole", "membersWithRoles")];
    assert!(validate_graphql(&wrong).is_err());
}

/// A departing client (clientco.test): zed, a member through the client's SAML identity (spelt
/// in capitals); ann and sub, outside collaborators whose public emails are at the domain and a
/// subdomain of it; an invitation to a client address. Not the client's, and kept: a look-alike
/// domain, a domain that merely starts with the client's, a collaborator with no public email,
/// a member whose public email alone is at the client's domain, and our own people.
fn seed_client(gh: &GithubStandin) {
    gh.world(|w| {
        let o = w.org("acme");
        o.member("alice", Role::Admin)
            .member("zed", Role::Member)
            .member("mia", Role::Member);
        o.team("platform").member("zed").member("alice");
        o.repo("web")
            .collaborator("ann", Permission::Push)
            .collaborator("lookalike", Permission::Pull);
        o.repo("api")
            .collaborator("sub", Permission::Pull)
            .collaborator("evil", Permission::Admin)
            .collaborator("nomail", Permission::Push)
            .collaborator("alice", Permission::Admin);
        o.saml_identity("zed", "Zed@ClientCo.TEST");
        o.saml_identity("alice", "alice@corp.example");
        o.invite_email("new@clientco.test", Role::Member);
        o.invite_email("other@corp.example", Role::Member);
        w.set_public_email("ann", "ann@clientco.test");
        w.set_public_email("sub", "sub@eu.clientco.test");
        w.set_public_email("lookalike", "l@notclientco.test");
        w.set_public_email("evil", "e@clientco.test.evil.test");
        w.set_public_email("mia", "mia@clientco.test");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_departing_client_loses_every_access_of_its_people_and_nobody_else_does() {
    let env = env();
    seed_client(&env.gh);
    let conn = env.connector(json!({ "saml_sso": true }));
    assert!(conn.takes_client_jobs());
    let client =
        Subject::client(revoke_core::ClientDomain::parse("ClientCo.test").expect("domain"));
    // A person in the same batch is discovered as before, and apart from the client.
    let s = [
        client.clone(),
        subject("E1", Some("alice@corp.example"), None),
    ];
    let found = conn.discover_many(&s).await.expect("discover");
    assert_eq!(found[0].subject, "clientco.test");
    assert_eq!(found[1].subject, "E1");
    let mut names: Vec<&str> = found[0].accounts.iter().map(|a| a.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["ann", "new@clientco.test", "sub", "zed"]);
    let why: Vec<&str> = found[0]
        .accounts
        .iter()
        .map(|a| a.matched_by.as_str())
        .collect();
    assert!(
        why.contains(&"outside collaborator of acme with public email sub@eu.clientco.test"),
        "{why:#?}"
    );
    assert!(
        why.contains(&"SAML identity zed@clientco.test in acme"),
        "{why:#?}"
    );
    let proposed = conn.plan(&client, &found[0]);
    let mut lines = render(&proposed);
    lines.sort();
    assert_eq!(
        lines,
        [
            "contain cancel_org_invitation acme/invitations/1: cancel the invitation of new@clientco.test to acme".to_string(),
            "contain remove_org_member acme/members/zed: remove zed from acme (member of the org)".into(),
            "contain remove_outside_collaborator acme/outside_collaborators/ann: remove outside collaborator ann from every repository of acme (1)".into(),
            "contain remove_outside_collaborator acme/outside_collaborators/sub: remove outside collaborator sub from every repository of acme (1)".into(),
        ]
        .map(|l| l.replace("invitations/1", &format!("invitations/{}", invitation_id(&env, "new@clientco.test")))),
    );
    let before = env.gh.mutations().len();
    run(&conn, &actions(&conn, "job-client", &s[..1], &found[..1])).await;
    assert_eq!(env.gh.mutations().len() - before, 4);
    assert!(!env.gh.is_member("acme", "zed"));
    let mut outside = env.gh.outside_collaborators("acme");
    outside.sort();
    assert_eq!(outside, ["evil", "lookalike", "nomail"]);
    assert!(env.gh.is_member("acme", "mia") && env.gh.is_member("acme", "alice"));
    let left: Vec<String> = env
        .gh
        .org_invitations("acme")
        .into_iter()
        .filter_map(|i| i.email)
        .collect();
    assert_eq!(left, ["other@corp.example"]);
    // Nothing of the client is left: a new plan finds nothing to do.
    let again = conn.discover_many(&s[..1]).await.expect("rediscover");
    assert!(!again[0].found, "{:#?}", again[0]);
    env.assert_clean();
}

fn invitation_id(env: &Env, email: &str) -> u64 {
    env.gh
        .org_invitations("acme")
        .into_iter()
        .find(|i| i.email.as_deref() == Some(email))
        .map(|i| i.id)
        .expect("invitation")
}
