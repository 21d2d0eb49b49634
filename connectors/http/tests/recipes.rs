//! The shipped recipes (`connectors/http/recipes/*.toml`) against their stand-ins
//! (`revoke_testkit::recipes`): every recipe loads and passes the definition check; for each
//! vendor, a plan snapshot, apply in dependency order then a rerun that plans nothing and sends
//! no mutation, verify, a second apply of the same actions (what the executor does after a
//! crash), hostile names that cannot change a URL's shape, and the vendor's own client parsing
//! every answer of the stand-in (`tests/python/recipes_check.py`).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use revoke_connector_http::{
    check_file_secrets, parse_toml, recipe_names, recipe_text, HttpConnector, HttpFactory,
};
use revoke_core::{
    Action, Connector, ConnectorError, ConnectorFactory, Discovery, JobId, MemoryJournal, Outcome,
    Subject, Verdict,
};
use revoke_testkit::moto::python_dir;
use revoke_testkit::recipes::{
    discord, dockerhub, mattermost, rmm, slack, wordpress, zendesk, Recorded,
};
use serde_json::{json, Value};

const MM: &str = "chat";

fn instance(recipe: &str, url: &str, token: &str) -> Value {
    json!({
        "kind": "http",
        "recipe": recipe,
        "base_url": url,
        "auth": { "type": "bearer", "token": token },
    })
}

fn connector(name: &str, params: &Value) -> HttpConnector {
    match HttpConnector::from_params(name, params) {
        Ok(c) => c,
        Err(issues) => panic!("the instance should be valid: {issues:#?}"),
    }
}

fn person(username: &str, email: &str) -> Subject {
    let mut s = Subject::new(username);
    s.email = Some(email.to_string());
    s
}

fn actions(job: &str, inst: &str, d: &Discovery, conn: &HttpConnector, s: &Subject) -> Vec<Action> {
    Action::from_proposals(&JobId(job.to_string()), inst, d, conn.plan(s, d))
        .expect("the proposals name discovered accounts")
        .into_iter()
        .filter(|a| a.connector == inst)
        .collect()
}

/// The actions in an order that respects every dependency (the executor's guarantee), ties
/// broken by phase then kind then target so runs are repeatable.
fn in_order(all: &[Action]) -> Vec<Action> {
    let mut left: Vec<Action> = all.to_vec();
    left.sort_by(|a, b| (a.phase, &a.kind.0, &a.target).cmp(&(b.phase, &b.kind.0, &b.target)));
    // A prerequisite outside the list was applied before it (the executor's phases).
    let listed: BTreeSet<String> = left.iter().map(|a| a.id.0.clone()).collect();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    while !left.is_empty() {
        let i = left
            .iter()
            .position(|a| {
                a.depends_on
                    .iter()
                    .all(|d| done.contains(&d.0) || !listed.contains(&d.0))
            })
            .unwrap_or_else(|| panic!("a dependency cycle or a missing prerequisite: {left:#?}"));
        let a = left.remove(i);
        done.insert(a.id.0.clone());
        out.push(a);
    }
    out
}

async fn apply_all(
    conn: &HttpConnector,
    all: &[Action],
) -> Vec<(Action, Result<Outcome, ConnectorError>)> {
    let mut out = Vec::new();
    for a in in_order(all) {
        let j = MemoryJournal::new();
        let r = conn.apply(&a, &a.key, &j).await;
        out.push((a, r));
    }
    out
}

fn plan_text(d: &Discovery, acts: &[Action]) -> String {
    let mut s = String::new();
    for a in &d.accounts {
        s.push_str(&format!(
            "account {} ({}) {} answers to {:?}; matched by {}\n",
            a.id, a.id_kind, a.name, a.identifiers, a.matched_by
        ));
    }
    for n in &d.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    let by_id: BTreeMap<String, String> = acts
        .iter()
        .map(|a| (a.id.0.clone(), format!("{} {}", a.kind.0, a.target)))
        .collect();
    for a in in_order(acts) {
        let mut after: Vec<String> = a
            .depends_on
            .iter()
            .filter_map(|d| by_id.get(&d.0).cloned())
            .collect();
        after.sort();
        s.push_str(&format!(
            "{:?} {} {}: {}{}\n",
            a.phase,
            a.kind.0,
            a.target,
            a.summary,
            if after.is_empty() {
                String::new()
            } else {
                format!("\n    after {}", after.join(", "))
            }
        ));
    }
    s
}

fn mutation_lines(reqs: &[Recorded]) -> Vec<String> {
    reqs.iter()
        .filter(|r| r.is_mutation())
        .map(|r| format!("{} {} {} {}", r.method, r.path, r.status, r.body))
        .collect()
}

#[test]
fn every_shipped_recipe_loads_and_passes_the_definition_check() {
    let names = recipe_names();
    for want in [
        "discord",
        "dockerhub",
        "mattermost",
        "rmm_client",
        "slack",
        "slack_scim",
        "wordpress",
        "zendesk",
    ] {
        assert!(names.contains(&want), "{want} should be shipped: {names:?}");
    }
    for name in names {
        let text = recipe_text(name).expect("listed recipes have text");
        let table = parse_toml(text).unwrap_or_else(|e| panic!("recipe {name}: {e}"));
        let secrets = check_file_secrets(&format!("recipes.{name}"), &table);
        assert!(
            secrets.is_empty(),
            "recipe {name} holds a secret: {secrets:?}"
        );
    }
}

/// What `revokectl config check` does: revoked.toml loaded by revoke-config (the bearer token
/// read from its `token_file`), then validated by the connector factories, with no network.
#[test]
fn every_shipped_recipe_loads_in_config_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("token");
    std::fs::write(&token, "secret-token\n").expect("write the token file");
    let mut toml = String::new();
    for name in recipe_names() {
        toml.push_str(&format!(
            "[connectors.{inst}]\nkind = \"http\"\nrecipe = \"{name}\"\nbase_url = \"https://{name}.example.com\"\nauth = {{ type = \"bearer\", token_file = \"{}\" }}\n{vars}\n",
            token.display(),
            inst = name.replace('_', "-"),
            // WordPress needs to be told whom a deleted user's content goes to.
            // Docker Hub needs the organization.
            vars = match name {
                "wordpress" => "vars = { reassign_to = \"1\" }\n",
                "dockerhub" => "vars = { org = \"acme\" }\n",
                _ => "",
            },
        ));
    }
    let path = dir.path().join("revoked.toml");
    std::fs::write(&path, &toml).expect("write revoked.toml");
    let cfg = revoke_config::load(Some(&path)).unwrap_or_else(|e| panic!("load: {e}\n{toml}"));
    if let Err(e) = cfg.validate(&[&HttpFactory]) {
        panic!("config check should pass:\n{e}\n{toml}");
    }
    for name in recipe_names() {
        let params =
            serde_json::Value::Object(cfg.connectors[&name.replace('_', "-")].params.clone());
        HttpConnector::from_params(name, &params)
            .unwrap_or_else(|e| panic!("{name} should build: {e:?}"));
    }
}

#[test]
fn an_unknown_recipe_name_is_refused_with_its_path() {
    let params = instance("matermost", "https://chat.example.com", "t");
    let issues = HttpFactory
        .validate("connectors.chat", &params)
        .expect_err("an unknown recipe must be refused");
    let text = format!("{issues:?}");
    assert!(text.contains("connectors.chat"), "{text}");
    assert!(text.contains("matermost"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Mattermost

struct MmSeed {
    alice: String,
    bob: String,
    alice_token: String,
    secret_team: String,
    open_team: String,
    ops_private: String,
    town: String,
    alice_dm: String,
}

/// alice: two sessions, two personal access tokens, a member of the invite-only team "secret"
/// (private channel "ops-private", open channel "town") and of the open team "everyone" (private
/// channel "leads"), and a direct message with bob; bob is in the same places and stays.
fn mm_seed(mm: &mattermost::MattermostStandin) -> MmSeed {
    mm.world(|w| {
        let alice = w.user("alice", "alice@example.com");
        let bob = w.user("bob", "bob@example.com");
        w.session(&alice);
        w.session(&alice);
        w.session(&bob);
        let alice_token = w.token(&alice, "ci deploy");
        w.token(&alice, "laptop script");
        w.token(&bob, "bob bot");
        let secret_team = w.team("secret", true);
        let open_team = w.team("everyone", false);
        for t in [&secret_team, &open_team] {
            w.join_team(t, &alice);
            w.join_team(t, &bob);
        }
        let ops_private = w.channel(&secret_team, "ops-private", true);
        let town = w.channel(&secret_team, "town", false);
        let leads = w.channel(&open_team, "leads", true);
        for c in [&ops_private, &town, &leads] {
            w.join_channel(c, &alice);
            w.join_channel(c, &bob);
        }
        let alice_dm = w.direct(&alice, &bob);
        MmSeed {
            alice,
            bob,
            alice_token,
            secret_team,
            open_team,
            ops_private,
            town,
            alice_dm,
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mattermost_plan_apply_rerun_and_verify() {
    let mm = mattermost::start().expect("the mattermost stand-in should start");
    let seed = mm_seed(&mm);
    let conn = connector(MM, &instance("mattermost", &mm.url(), mm.token()));
    let alice = person("alice", "alice@example.com");

    let d = conn.discover(&alice).await.expect("discovery");
    assert!(
        mm.mutations().is_empty(),
        "discovery sent a mutation: {:?}",
        mm.mutations()
    );
    let acts = actions("job-1", MM, &d, &conn, &alice);
    insta::assert_snapshot!("mattermost_plan_alice", plan_text(&d, &acts));

    let invite_before = mm.world(|w| w.invite_id(&seed.secret_team));
    mm.clear_requests();
    for (a, r) in apply_all(&conn, &acts).await {
        match r {
            Ok(Outcome::Done) => {}
            // deactivation ends every session: revoke_sessions after it finds the user
            // deactivated on its read and sends nothing
            Ok(Outcome::AlreadyDone) if a.kind.0 == "user.revoke_sessions" => {}
            other => panic!("{} {}: {other:?}", a.kind.0, a.target),
        }
    }
    insta::assert_snapshot!(
        "mattermost_mutations_alice",
        mutation_lines(&mm.requests()).join("\n")
    );

    mm.world(|w| {
        assert!(!w.is_active(&seed.alice), "alice is deactivated");
        assert_eq!(w.sessions_of(&seed.alice), 0);
        assert_eq!(w.tokens_of(&seed.alice), Vec::<String>::new());
        assert_eq!(
            w.teams_of(&seed.alice),
            vec![seed.open_team.clone()],
            "only the open team is left"
        );
        assert_eq!(
            w.channels_of(&seed.alice),
            vec![seed.alice_dm.clone()],
            "private channels removed; the team removal took the team's open channel with it"
        );
        assert_ne!(
            w.invite_id(&seed.secret_team),
            invite_before,
            "the invite id changed"
        );
        // bob is untouched
        assert!(w.is_active(&seed.bob));
        assert_eq!(w.sessions_of(&seed.bob), 1);
        assert_eq!(w.tokens_of(&seed.bob).len(), 1);
        assert_eq!(w.teams_of(&seed.bob).len(), 2);
        assert!(w.channels_of(&seed.bob).contains(&seed.ops_private));
        assert!(w.channels_of(&seed.bob).contains(&seed.town));
    });

    for a in &acts {
        let v = conn.verify(a).await.expect("verify");
        assert_eq!(v, Verdict::Confirmed, "{} {}", a.kind.0, a.target);
    }

    // The executor may apply an action again (a crash after the request, before the outcome
    // was recorded): every action reads first (the user by id, the channel and team membership,
    // the team's invite id against the one discovery saw) and finds it done: nothing is sent.
    mm.clear_requests();
    for (a, r) in apply_all(&conn, &acts).await {
        assert!(
            matches!(r, Ok(Outcome::AlreadyDone)),
            "{} {}: {r:?}",
            a.kind.0,
            a.target
        );
    }
    let again = mutation_lines(&mm.requests());
    assert_eq!(again, Vec::<String>::new(), "a second apply sends no write");

    // A rerun: discovery sees what is left, the plan is empty, nothing is sent.
    mm.clear_requests();
    let d2 = conn.discover(&alice).await.expect("rediscovery");
    let acts2 = actions("job-2", MM, &d2, &conn, &alice);
    assert_eq!(
        acts2
            .iter()
            .map(|a| format!("{} {}", a.kind.0, a.target))
            .collect::<Vec<_>>(),
        Vec::<String>::new(),
        "the rerun plans nothing; notes: {:?}",
        d2.notes
    );
    assert!(
        d2.notes.iter().any(|n| n.contains("already deactivated")),
        "the plan says why: {:?}",
        d2.notes
    );
    assert_eq!(d2.accounts.len(), 1, "alice is still found (deactivated)");
    assert!(mm.mutations().is_empty(), "{:?}", mm.mutations());
    let _ = seed.alice_token;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mattermost_hostile_names_stay_inside_one_path_segment_and_touch_nobody() {
    let mm = mattermost::start().expect("the mattermost stand-in should start");
    let seed = mm_seed(&mm);
    let conn = connector(MM, &instance("mattermost", &mm.url(), mm.token()));
    for (username, email) in [
        ("../bob", "x@example.com"),
        ("alice/../bob", "y@example.com"),
        ("bob?x=1", "z@example.com"),
        ("bob#frag", "w@example.com"),
        ("bob%2Fsessions", "v@example.com"),
        ("bob\"", "bob@example.com\""),
    ] {
        mm.clear_requests();
        let r = conn.discover(&person(username, email)).await;
        let reqs = mm.requests();
        assert!(reqs.iter().all(|q| q.method == "GET"), "{reqs:?}");
        for q in &reqs {
            let segs: Vec<&str> = q.path.split('/').filter(|s| !s.is_empty()).collect();
            assert_eq!(
                segs.len(),
                5,
                "one segment for the name: {} (from {username:?})",
                q.path
            );
            assert!(q.query.is_none(), "no query was made up: {q:?}");
        }
        // Mattermost refuses a username or email it could not hold (400): discovery fails
        // loudly rather than calling the person absent.
        match r {
            Err(e) => assert!(e.to_string().contains("400"), "{username:?}: {e}"),
            Ok(d) => panic!("{username:?} should not be found, got {:?}", d.accounts),
        }
    }
    mm.world(|w| {
        assert!(w.is_active(&seed.bob) && w.is_active(&seed.alice));
    });
    assert!(mm.mutations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mattermost_nobody_by_that_name_is_not_found_and_a_rate_limit_waits() {
    let mm = mattermost::start().expect("the mattermost stand-in should start");
    let seed = mm_seed(&mm);
    let conn = connector(MM, &instance("mattermost", &mm.url(), mm.token()));
    let d = conn
        .discover(&person("carol", "carol@example.com"))
        .await
        .expect("discovery");
    assert!(!d.found && d.accounts.is_empty(), "{d:?}");

    // A 429 with Mattermost's X-Ratelimit-Reset on the deactivation: rate limited, retried by
    // the executor only.
    let alice = person("alice", "alice@example.com");
    let d = conn.discover(&alice).await.expect("discovery");
    let acts = actions("job-3", MM, &d, &conn, &alice);
    let deact = acts
        .iter()
        .find(|a| a.kind.0 == "user.deactivate")
        .expect("deactivate is planned");
    mm.fail_next(
        1,
        "/active",
        revoke_testkit::recipes::Reply::json(429, json!({"message": "limit exceeded"}))
            .header("X-Ratelimit-Reset", "3"),
    );
    let r = conn.apply(deact, &deact.key, &MemoryJournal::new()).await;
    let e = r.expect_err("a 429 is an error the executor retries");
    assert!(e.is_retryable(), "{e:?}");
    assert!(mm.world(|w| w.is_active(&seed.alice)));
    let r = conn.apply(deact, &deact.key, &MemoryJournal::new()).await;
    assert!(matches!(r, Ok(Outcome::Done)), "{r:?}");
}

#[test]
fn mattermosts_own_client_parses_every_answer_of_the_standin() {
    let python = python_dir().join(".venv/bin/python");
    assert!(
        python.exists(),
        "expected {} (run: tests/python/.venv/bin/pip install -r tests/python/requirements.txt)",
        python.display()
    );
    let mm = mattermost::start().expect("the mattermost stand-in should start");
    let seed = mm_seed(&mm);
    let out = Command::new(&python)
        .arg(python_dir().join("recipes_check.py"))
        .arg("mattermost")
        .env("MM_URL", mm.url())
        .env("MM_TOKEN", mm.token())
        .env("MM_USER", &seed.alice)
        .env("MM_TEAM", &seed.secret_team)
        .env("MM_CHANNEL", &seed.ops_private)
        .env("MM_TOKEN_ID", &seed.alice_token)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "recipes_check.py failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("mattermost: ok"), "{stdout}\n{stderr}");
    // The client changed what the recipe changes.
    mm.world(|w| {
        assert!(!w.is_active(&seed.alice));
        assert!(!w.channels_of(&seed.alice).contains(&seed.ops_private));
    });
}

// ---------------------------------------------------------------------------------------------
// Slack (Enterprise Grid): the Web API recipe and the SCIM recipe, two instances of one org

const SLACK: &str = "slack";
const SLACK_SCIM: &str = "slack-scim";

/// The tests' instances: the recipes' own budgets (Tier 2: 20 a minute) would make a test wait
/// minutes, so the instance replaces `rate_limit`, as an instance may.
fn slack_instances(url: &str, token: &str) -> (HttpConnector, HttpConnector) {
    let mut web = instance("slack", url, token);
    web["rate_limit"] = json!({"requests": 100, "per_secs": 1});
    let mut scim = instance("slack_scim", url, token);
    scim["rate_limit"] = json!({"requests": 100, "per_secs": 1});
    (connector(SLACK, &web), connector(SLACK_SCIM, &scim))
}

struct SlackSeed {
    alice: String,
    bob: String,
    general: String,
    privates: Vec<String>,
}

/// alice: in three private channels (bob in the first) and the public #general.
fn slack_seed(sl: &slack::SlackStandin) -> SlackSeed {
    sl.world(|w| {
        let alice = w.user("alice", "alice@example.com");
        let bob = w.user("bob", "bob@example.com");
        let general = w.channel("general", false);
        w.join(&general, &alice);
        w.join(&general, &bob);
        let privates: Vec<String> = ["deals", "hr-private", "incident-42"]
            .iter()
            .map(|n| {
                let c = w.channel(n, true);
                w.join(&c, &alice);
                c
            })
            .collect();
        w.join(&privates[0], &bob);
        SlackSeed {
            alice,
            bob,
            general,
            privates,
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_plan_apply_rerun_and_verify() {
    let sl = slack::start().expect("the slack stand-in should start");
    let seed = slack_seed(&sl);
    let (web, scim) = slack_instances(&sl.url(), sl.token());
    let alice = person("alice", "alice@example.com");

    let dw = web.discover(&alice).await.expect("web discovery");
    let ds = scim.discover(&alice).await.expect("scim discovery");
    assert!(sl.mutations().is_empty(), "{:?}", sl.mutations());
    let aw = actions("job-1", SLACK, &dw, &web, &alice);
    let as_ = actions("job-1", SLACK_SCIM, &ds, &scim, &alice);
    insta::assert_snapshot!(
        "slack_plan_alice",
        format!(
            "[{SLACK}]\n{}[{SLACK_SCIM}]\n{}",
            plan_text(&dw, &aw),
            plan_text(&ds, &as_)
        )
    );

    // The executor's phases: every contain (both instances), then revoke.
    sl.clear_requests();
    let contain_web: Vec<Action> = aw
        .iter()
        .filter(|a| a.phase == revoke_core::Phase::Contain)
        .cloned()
        .collect();
    let revoke_web: Vec<Action> = aw
        .iter()
        .filter(|a| a.phase != revoke_core::Phase::Contain)
        .cloned()
        .collect();
    let mut results = apply_all(&web, &contain_web).await;
    results.extend(apply_all(&scim, &as_).await);
    results.extend(apply_all(&web, &revoke_web).await);
    for (a, r) in &results {
        assert!(
            matches!(r, Ok(Outcome::Done)),
            "{} {}: {r:?}",
            a.kind.0,
            a.target
        );
    }
    insta::assert_snapshot!(
        "slack_mutations_alice",
        mutation_lines(&sl.requests()).join("\n")
    );
    sl.world(|w| {
        assert!(!w.is_active(&seed.alice));
        assert_eq!(w.sessions_of(&seed.alice), 0);
        assert_eq!(
            w.channels_of(&seed.alice),
            vec![seed.general.clone()],
            "public #general is left"
        );
        assert!(w.is_active(&seed.bob));
        assert_eq!(w.sessions_of(&seed.bob), 1);
        assert!(w.channels_of(&seed.bob).contains(&seed.privates[0]));
    });
    for a in &aw {
        assert_eq!(
            web.verify(a).await.expect("verify"),
            Verdict::Confirmed,
            "{} {}",
            a.kind.0,
            a.target
        );
    }
    for a in &as_ {
        assert_eq!(
            scim.verify(a).await.expect("verify"),
            Verdict::Confirmed,
            "{} {}",
            a.kind.0,
            a.target
        );
    }

    // Applied again (after a crash): each kick reads the channel's members first (the leaver is
    // not among them: already done, no kick sent); the user deactivated since makes the session
    // reset and the deactivation already done on their read.
    sl.clear_requests();
    for (conn, list) in [(&web, &aw), (&scim, &as_)] {
        for (a, r) in apply_all(conn, list).await {
            assert!(
                matches!(r, Ok(Outcome::AlreadyDone)),
                "{} {}: {r:?}",
                a.kind.0,
                a.target
            );
        }
    }
    assert_eq!(
        mutation_lines(&sl.requests()),
        Vec::<String>::new(),
        "a second apply sends no write (each kick reads the channel's members first)"
    );

    // A rerun plans nothing and sends nothing.
    sl.clear_requests();
    let dw2 = web.discover(&alice).await.expect("web rediscovery");
    let ds2 = scim.discover(&alice).await.expect("scim rediscovery");
    let n = actions("job-2", SLACK, &dw2, &web, &alice).len()
        + actions("job-2", SLACK_SCIM, &ds2, &scim, &alice).len();
    assert_eq!(n, 0, "notes: {:?} {:?}", dw2.notes, ds2.notes);
    assert!(sl.mutations().is_empty(), "{:?}", sl.mutations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_errors_in_a_200_are_classified_by_the_recipes_rules() {
    let sl = slack::start().expect("the slack stand-in should start");
    let seed = slack_seed(&sl);
    let (web, _) = slack_instances(&sl.url(), sl.token());
    let alice = person("alice", "alice@example.com");
    let d = web.discover(&alice).await.expect("discovery");
    let acts = actions("job-3", SLACK, &d, &web, &alice);
    let kick = acts
        .iter()
        .find(|a| a.kind.0 == "channel.kick")
        .expect("a kick");
    let reset = acts
        .iter()
        .find(|a| a.kind.0 == "user.reset_sessions")
        .expect("a reset");

    // Tier limits: a 429 with Retry-After, and Slack's `ratelimited` in a 200.
    sl.fail_next(
        1,
        "conversations.kick",
        revoke_testkit::recipes::Reply::json(429, json!({"ok": false, "error": "ratelimited"}))
            .header("Retry-After", "7"),
    );
    let e = web
        .apply(kick, &kick.key, &MemoryJournal::new())
        .await
        .expect_err("429");
    assert!(e.is_retryable(), "{e:?}");
    sl.fail_next(
        1,
        "conversations.kick",
        revoke_testkit::recipes::Reply::json(200, json!({"ok": false, "error": "ratelimited"})),
    );
    let e = web
        .apply(kick, &kick.key, &MemoryJournal::new())
        .await
        .expect_err("ratelimited");
    assert!(e.is_retryable(), "{e:?}");
    // A token without the admin scope: an auth error, not a success and not a retry.
    sl.fail_next(
        1,
        "session.reset",
        revoke_testkit::recipes::Reply::json(
            200,
            json!({"ok": false, "error": "missing_scope", "needed": "admin.users:write"}),
        ),
    );
    let e = web
        .apply(reset, &reset.key, &MemoryJournal::new())
        .await
        .expect_err("missing_scope");
    assert!(!e.is_retryable(), "{e:?}");
    // Slack refuses to reset the primary owner's sessions: permanent, with Slack's error.
    sl.world(|w| {
        if let Some(u) = w.users.get_mut(&seed.alice) {
            u.is_primary_owner = true;
        }
    });
    let e = web
        .apply(reset, &reset.key, &MemoryJournal::new())
        .await
        .expect_err("cannot_reset_primary_owner");
    assert!(
        !e.is_retryable() && e.to_string().contains("cannot_reset_primary_owner"),
        "{e}"
    );
    assert_eq!(sl.world(|w| w.sessions_of(&seed.alice)), 1);
    assert_eq!(sl.world(|w| w.channels_of(&seed.alice).len()), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_hostile_names_stay_inside_their_query_value_and_touch_nobody() {
    let sl = slack::start().expect("the slack stand-in should start");
    let seed = slack_seed(&sl);
    let (web, scim) = slack_instances(&sl.url(), sl.token());
    for (username, email) in [
        (
            "bob\" or userName eq \"alice",
            "alice@example.com&email=bob@example.com",
        ),
        ("../Users/x", "bob@example.com#x"),
        ("bob%22", "x@example.com?user=W00000002"),
    ] {
        sl.clear_requests();
        let s = person(username, email);
        let dw = web.discover(&s).await.expect("web discovery");
        let ds = scim.discover(&s).await.expect("scim discovery");
        assert!(
            dw.accounts.is_empty() && ds.accounts.is_empty(),
            "{username:?} {email:?}: {:?} {:?}",
            dw.accounts,
            ds.accounts
        );
        for q in sl.requests() {
            assert_eq!(q.method, "GET");
            let pairs = q.query.as_deref().unwrap_or("").split('&').count();
            assert!(pairs <= 3, "no parameter was made up: {q:?}");
            assert!(!q.path.contains(".."), "{q:?}");
        }
    }
    assert!(sl.mutations().is_empty());
    assert!(sl.world(|w| w.is_active(&seed.alice) && w.is_active(&seed.bob)));
}

#[test]
fn slacks_own_sdk_drives_the_standin() {
    let python = python_dir().join(".venv/bin/python");
    let sl = slack::start().expect("the slack stand-in should start");
    let seed = slack_seed(&sl);
    let out = Command::new(&python)
        .arg(python_dir().join("recipes_check.py"))
        .arg("slack")
        .env("SLACK_URL", sl.url())
        .env("SLACK_TOKEN", sl.token())
        .env("SLACK_USER", &seed.alice)
        .env("SLACK_CHANNEL", &seed.privates[1])
        .env("SLACK_EMAIL", "alice@example.com")
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "recipes_check.py failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("slack: ok"), "{stdout}\n{stderr}");
    assert!(sl.world(|w| !w.is_active(&seed.alice)));
}

// ---------------------------------------------------------------------------------------------
// A generic RMM client offboarding (a departing client, by its domain)

const RMM: &str = "rmm";

struct RmmSeed {
    acme: String,
    others: Vec<String>,
}

/// Acme (acme.example): sites HQ and Branch, an agent on each with packages, two policies, two
/// portal users; and three companies that must stay: Other, notacme.example (a suffix that is
/// not a subdomain) and acme.example.net.
fn rmm_seed(rmm: &rmm::RmmStandin) -> RmmSeed {
    rmm.world(|w| {
        let acme = w.company("Acme", "acme.example");
        let hq = w.site(&acme, "HQ");
        let branch = w.site(&acme, "Branch");
        let a1 = w.agent(&hq, "acme-dc01");
        let a2 = w.agent(&branch, "acme-pos07");
        w.package(&a1, "backup-agent");
        w.package(&a1, "av-suite");
        w.package(&a2, "av-suite");
        w.policy(&acme, "patch-tuesday");
        w.policy(&acme, "server-monitoring");
        w.user(&acme, "it@acme.example");
        w.user(&acme, "owner@acme.example");
        let mut others = Vec::new();
        for (name, domain) in [
            ("Other", "other.example"),
            ("NotAcme", "notacme.example"),
            ("Acme Net", "acme.example.net"),
        ] {
            let c = w.company(name, domain);
            let s = w.site(&c, "Main");
            let a = w.agent(&s, &format!("{name}-pc1"));
            w.package(&a, "av-suite");
            w.policy(&c, "patch-tuesday");
            w.user(&c, &format!("it@{domain}"));
            others.push(c);
        }
        RmmSeed { acme, others }
    })
}

fn client(domain: &str) -> Subject {
    Subject::client(revoke_core::ClientDomain::parse(domain).expect("a valid client domain"))
}

fn rmm_connector(rmm: &rmm::RmmStandin) -> HttpConnector {
    let mut params = instance("rmm_client", &rmm.url(), rmm.token());
    params["rate_limit"] = json!({"requests": 100, "per_secs": 1});
    let conn = connector(RMM, &params);
    assert!(conn.takes_client_jobs());
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmm_client_offboarding_runs_in_connectwise_order_then_reruns_with_nothing() {
    let rmm = rmm::start().expect("the rmm stand-in should start");
    let seed = rmm_seed(&rmm);
    let conn = rmm_connector(&rmm);
    let acme = client("acme.example");

    let d = conn.discover(&acme).await.expect("discovery");
    assert!(rmm.mutations().is_empty());
    assert_eq!(d.accounts.len(), 1, "only acme.example: {:?}", d.accounts);
    let acts = actions("job-1", RMM, &d, &conn, &acme);
    insta::assert_snapshot!("rmm_plan_acme", plan_text(&d, &acts));

    // Any order the dependencies allow: the stand-in refuses (409) every removal whose
    // prerequisites are still there, so each one being done proves the order.
    rmm.clear_requests();
    for (a, r) in apply_all(&conn, &acts).await {
        assert!(
            matches!(r, Ok(Outcome::Done)),
            "{} {}: {r:?}",
            a.kind.0,
            a.target
        );
    }
    insta::assert_snapshot!(
        "rmm_mutations_acme",
        mutation_lines(&rmm.requests()).join("\n")
    );
    rmm.world(|w| {
        assert_eq!(w.left_of(&seed.acme), 0, "nothing of Acme is left");
        for c in &seed.others {
            assert_eq!(w.left_of(c), 6, "company {c} is untouched");
        }
    });
    for a in &acts {
        assert_eq!(
            conn.verify(a).await.expect("verify"),
            Verdict::Confirmed,
            "{} {}",
            a.kind.0,
            a.target
        );
    }

    // Applied again: every read answers 404, so everything is already done and nothing is sent.
    rmm.clear_requests();
    for (a, r) in apply_all(&conn, &acts).await {
        assert!(
            matches!(r, Ok(Outcome::AlreadyDone)),
            "{} {}: {r:?}",
            a.kind.0,
            a.target
        );
    }
    assert!(rmm.mutations().is_empty(), "{:?}", rmm.mutations());

    let d2 = conn.discover(&acme).await.expect("rediscovery");
    assert!(d2.accounts.is_empty() && actions("job-2", RMM, &d2, &conn, &acme).is_empty());
    assert!(rmm.mutations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmm_out_of_order_removal_is_refused_and_classified_as_a_conflict() {
    let rmm = rmm::start().expect("the rmm stand-in should start");
    let seed = rmm_seed(&rmm);
    let conn = rmm_connector(&rmm);
    let acme = client("acme.example");
    let d = conn.discover(&acme).await.expect("discovery");
    let acts = actions("job-3", RMM, &d, &conn, &acme);
    let company = acts
        .iter()
        .find(|a| a.kind.0 == "company.delete")
        .expect("company.delete");
    assert!(
        !company.depends_on.is_empty(),
        "the company waits for the rest"
    );
    let e = conn
        .apply(company, &company.key, &MemoryJournal::new())
        .await
        .expect_err("a company with sites is refused");
    assert!(
        e.to_string().contains("still_in_use") || e.to_string().contains("409"),
        "{e}"
    );
    assert!(!e.is_retryable(), "{e:?}");
    assert_eq!(rmm.world(|w| w.left_of(&seed.acme)), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmm_a_client_domain_matches_itself_and_its_subdomains_only_and_a_person_nothing() {
    let rmm = rmm::start().expect("the rmm stand-in should start");
    rmm_seed(&rmm);
    rmm.world(|w| w.company("Acme EU", "eu.acme.example"));
    let conn = rmm_connector(&rmm);
    let d = conn
        .discover(&client("acme.example"))
        .await
        .expect("discovery");
    let mut names: Vec<String> = d.accounts.iter().map(|a| a.name.clone()).collect();
    names.sort();
    assert_eq!(
        names,
        vec!["Acme", "Acme EU"],
        "not notacme.example, not acme.example.net"
    );
    for a in &d.accounts {
        assert!(
            a.matched_by.contains("client's domain acme.example"),
            "{}",
            a.matched_by
        );
    }
    // A person is not a client: nothing of any company is theirs.
    let d = conn
        .discover(&person("acme.example", "it@acme.example"))
        .await
        .expect("discovery");
    assert!(d.accounts.is_empty(), "{:?}", d.accounts);
    // Hostile domains are refused before any request.
    for bad in [
        "../acme.example",
        "acme.example/x",
        "acme.example?x",
        "*.example",
        "",
    ] {
        assert!(revoke_core::ClientDomain::parse(bad).is_err(), "{bad:?}");
    }
    assert!(rmm.mutations().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Zendesk: suspend, downgrade, delete

const ZD: &str = "support";

fn zendesk_connector(zd: &zendesk::ZendeskStandin) -> HttpConnector {
    let mut params = instance("zendesk", &zd.url(), zd.token());
    params["rate_limit"] = json!({"requests": 100, "per_secs": 1});
    connector(ZD, &params)
}

/// alice: an agent with employee id E1001; malice@example.com (a search for alice's email lists
/// her too); bob an agent; the account owner.
fn zendesk_seed(zd: &zendesk::ZendeskStandin) -> (u64, u64, u64, u64) {
    zd.world(|w| {
        let alice = w.user("Alice", "Alice@Example.com", "agent");
        if let Some(u) = w.users.get_mut(&alice) {
            u.external_id = Some("E1001".into());
        }
        let malice = w.user("Mallory", "malice@example.com", "agent");
        let bob = w.user("Bob", "bob@example.com", "agent");
        let owner = w.user("Owner", "owner@example.com", "admin");
        if let Some(u) = w.users.get_mut(&owner) {
            u.owner = true;
        }
        (alice, malice, bob, owner)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zendesk_plan_apply_rerun_and_verify() {
    let zd = zendesk::start().expect("the zendesk stand-in should start");
    let (alice_id, malice, bob, _) = zendesk_seed(&zd);
    let conn = zendesk_connector(&zd);
    let mut alice = person("alice", "alice@example.com");
    alice.employee_id = Some("E1001".into());

    let d = conn.discover(&alice).await.expect("discovery");
    assert!(zd.mutations().is_empty());
    let acts = actions("job-1", ZD, &d, &conn, &alice);
    insta::assert_snapshot!("zendesk_plan_alice", plan_text(&d, &acts));

    zd.clear_requests();
    for (a, r) in apply_all(&conn, &acts).await {
        assert!(
            matches!(r, Ok(Outcome::Done)),
            "{} {}: {r:?}",
            a.kind.0,
            a.target
        );
    }
    insta::assert_snapshot!(
        "zendesk_mutations_alice",
        mutation_lines(&zd.requests()).join("\n")
    );
    zd.world(|w| {
        let a = &w.users[&alice_id];
        assert!(a.suspended && a.role == "end-user" && !a.active, "{a:?}");
        for other in [malice, bob] {
            let u = &w.users[&other];
            assert!(!u.suspended && u.role == "agent" && u.active, "{u:?}");
        }
    });
    for a in &acts {
        assert_eq!(
            conn.verify(a).await.expect("verify"),
            Verdict::Confirmed,
            "{} {}",
            a.kind.0,
            a.target
        );
    }
    // Applied again: each read by id shows the state already holds; nothing is sent.
    zd.clear_requests();
    for (a, r) in apply_all(&conn, &acts).await {
        assert!(
            matches!(r, Ok(Outcome::AlreadyDone)),
            "{} {}: {r:?}",
            a.kind.0,
            a.target
        );
    }
    assert!(zd.mutations().is_empty(), "{:?}", zd.mutations());
    // A rerun: a deleted user is not listed by the search: nothing is planned or sent.
    let d2 = conn.discover(&alice).await.expect("rediscovery");
    assert!(
        actions("job-2", ZD, &d2, &conn, &alice).is_empty(),
        "{:?}",
        d2.accounts
    );
    assert!(zd.mutations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zendesk_the_account_owner_is_refused_and_near_names_are_not_matched() {
    let zd = zendesk::start().expect("the zendesk stand-in should start");
    let (_, malice, _, owner) = zendesk_seed(&zd);
    let conn = zendesk_connector(&zd);

    // The owner: Zendesk refuses (422), a permanent error; nothing changes.
    let boss = person("owner", "owner@example.com");
    let d = conn.discover(&boss).await.expect("discovery");
    let acts = actions("job-3", ZD, &d, &conn, &boss);
    let suspend = acts
        .iter()
        .find(|a| a.kind.0 == "user.suspend")
        .expect("suspend");
    let e = conn
        .apply(suspend, &suspend.key, &MemoryJournal::new())
        .await
        .expect_err("the owner cannot be suspended");
    assert!(
        !e.is_retryable() && e.to_string().contains("refused"),
        "{e}"
    );
    assert!(zd.world(|w| !w.users[&owner].suspended));

    // Hostile or near values: the search lists malice for "alice@example.com"; the exact match
    // rule keeps nobody else, and a value cannot add a parameter.
    for (email, emp) in [
        ("lice@example.com", "E1001&query=bob"),
        ("alice@example.com&external_id=E1001", "E10"),
        ("malice@example.com\"", "E1001 "),
    ] {
        zd.clear_requests();
        let mut s = person("x", email);
        s.employee_id = Some(emp.into());
        let d = conn.discover(&s).await.expect("discovery");
        assert!(d.accounts.is_empty(), "{email:?} {emp:?}: {:?}", d.accounts);
        for q in zd.requests() {
            assert_eq!(
                q.query.as_deref().unwrap_or("").split('&').count(),
                1,
                "{q:?}"
            );
        }
    }
    assert!(zd.mutations().is_empty());
    assert!(zd.world(|w| w.users[&malice].active));
}

// ---------------------------------------------------------------------------------------------
// Four recipes side by side in one revoked.toml, through revoked's planner, executor and store

fn engine_job(id: &str) -> revoke_core::Job {
    let mut subject = person("alice", "alice@example.com");
    subject.employee_id = Some("E1001".into());
    revoke_harness::job(id, subject)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_recipes_in_one_revoked_toml_run_through_the_executor_then_a_second_plan_is_empty() {
    let mm = mattermost::start().expect("mattermost");
    let sl = slack::start().expect("slack");
    let zd = zendesk::start().expect("zendesk");
    let mm_seed = mm_seed(&mm);
    let sl_seed = slack_seed(&sl);
    let (zd_alice, ..) = zendesk_seed(&zd);
    let mut toml = String::from(
        "[executor]\nlease_secs = 1\n[executor.retry]\nbase_ms = 10\ncap_ms = 40\nmax_attempts = 20\nmax_elapsed_secs = 60\n\n",
    );
    for (name, recipe, url, token) in [
        ("chat", "mattermost", mm.url(), mm.token().to_string()),
        ("slack", "slack", sl.url(), sl.token().to_string()),
        ("slack-scim", "slack_scim", sl.url(), sl.token().to_string()),
        ("support", "zendesk", zd.url(), zd.token().to_string()),
    ] {
        toml.push_str(&format!(
            "[connectors.{name}]\nkind = \"http\"\nrecipe = \"{recipe}\"\nbase_url = \"{url}\"\nauth = {{ type = \"bearer\", token = \"{token}\" }}\nrate_limit = {{ requests = 100, per_secs = 1 }}\n\n"
        ));
    }
    let config = revoke_config::load_str(&toml).expect("config");
    let registry = revoke_engine::Registry::new().with(HttpFactory);
    registry.validate(&config).expect("valid");
    let plan = revoke_engine::plan(
        &config,
        &registry.build(&config).expect("connectors"),
        vec![engine_job("job-alice")],
        revoke_core::PlanId("p1".into()),
        chrono::Utc::now(),
    )
    .await
    .expect("plan");
    assert!(mm.mutations().is_empty() && sl.mutations().is_empty() && zd.mutations().is_empty());
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for a in &plan.actions {
        *per.entry(a.connector.clone()).or_default() += 1;
    }
    assert_eq!(
        per,
        BTreeMap::from([
            ("chat".to_string(), 8),
            ("slack".to_string(), 4),
            ("slack-scim".to_string(), 1),
            ("support".to_string(), 3),
        ]),
        "{:#?}",
        plan.actions
            .iter()
            .map(|a| (&a.connector, &a.kind.0, &a.target))
            .collect::<Vec<_>>()
    );

    let scratch = revoke_harness::scratch_store().await;
    let store = scratch.store.clone();
    let exec = revoke_engine::Executor::new(
        store.clone(),
        registry.build(&config).expect("connectors"),
        &config,
        "revokectl@test:1",
    );
    exec.record(&plan).await.expect("record");
    let summary = revoke_harness::run_to_end(&exec, &plan.id).await;
    assert_eq!(
        (
            summary.failed,
            summary.blocked,
            summary.scheduled,
            summary.not_confirmed
        ),
        (0, 0, 0, 0),
        "{summary:?}"
    );
    assert_eq!(summary.done + summary.already_done, 16, "{summary:?}");
    mm.world(|w| {
        assert!(!w.is_active(&mm_seed.alice) && w.tokens_of(&mm_seed.alice).is_empty());
        assert!(w.is_active(&mm_seed.bob));
    });
    sl.world(|w| {
        assert!(!w.is_active(&sl_seed.alice));
        assert_eq!(w.channels_of(&sl_seed.alice), vec![sl_seed.general.clone()]);
    });
    zd.world(|w| assert!(!w.users[&zd_alice].active));

    // A second plan for the same person: nothing left to do in any of the four.
    let (m0, s0, z0) = (
        mm.mutations().len(),
        sl.mutations().len(),
        zd.mutations().len(),
    );
    let again = revoke_engine::plan(
        &config,
        &registry.build(&config).expect("connectors"),
        vec![engine_job("job-alice-2")],
        revoke_core::PlanId("p2".into()),
        chrono::Utc::now(),
    )
    .await
    .expect("plan");
    let left: Vec<String> = again
        .actions
        .iter()
        .filter(|a| a.connector != revoke_core::MANUAL_CONNECTOR)
        .map(|a| format!("{} {} {}", a.connector, a.kind.0, a.target))
        .collect();
    assert_eq!(left, Vec::<String>::new());
    assert_eq!(
        (
            mm.mutations().len(),
            sl.mutations().len(),
            zd.mutations().len()
        ),
        (m0, s0, z0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_departing_client_job_runs_the_rmm_recipe_through_the_executor_in_order() {
    let rmm = rmm::start().expect("rmm");
    let seed = rmm_seed(&rmm);
    let toml = format!(
        "[executor]\nlease_secs = 1\n[executor.retry]\nbase_ms = 10\ncap_ms = 40\nmax_attempts = 3\nmax_elapsed_secs = 30\n\n\
         [connectors.msp-rmm]\nkind = \"http\"\nrecipe = \"rmm_client\"\nbase_url = \"{}\"\n\
         auth = {{ type = \"bearer\", token = \"{}\" }}\nrate_limit = {{ requests = 100, per_secs = 1 }}\n",
        rmm.url(),
        rmm.token()
    );
    let config = revoke_config::load_str(&toml).expect("config");
    let registry = revoke_engine::Registry::new().with(HttpFactory);
    registry.validate(&config).expect("valid");
    let mut job = engine_job("job-acme");
    job.subject = client("acme.example");
    let plan = revoke_engine::plan(
        &config,
        &registry.build(&config).expect("connectors"),
        vec![job],
        revoke_core::PlanId("p-acme".into()),
        chrono::Utc::now(),
    )
    .await
    .expect("plan");
    let ours = plan
        .actions
        .iter()
        .filter(|a| a.connector == "msp-rmm")
        .count();
    assert_eq!(ours, 12, "{:#?}", plan.actions);
    let scratch = revoke_harness::scratch_store().await;
    let store = scratch.store.clone();
    let exec = revoke_engine::Executor::new(
        store.clone(),
        registry.build(&config).expect("connectors"),
        &config,
        "revokectl@test:1",
    );
    exec.record(&plan).await.expect("record");
    let summary = revoke_harness::run_to_end(&exec, &plan.id).await;
    // The stand-in refuses any removal before its prerequisites (409, a permanent conflict):
    // nothing failed, so the executor kept ConnectWise's order.
    assert_eq!(
        (summary.failed, summary.blocked, summary.scheduled),
        (0, 0, 0),
        "{summary:?}"
    );
    assert_eq!(summary.done, 12, "{summary:?}");
    assert!(
        rmm.requests().iter().all(|r| r.status != 409),
        "no removal came too early"
    );
    rmm.world(|w| {
        assert_eq!(w.left_of(&seed.acme), 0);
        for c in &seed.others {
            assert_eq!(w.left_of(c), 6);
        }
    });
}

/// A run dies while Mattermost holds its answer to the deactivation it already made (the run's
/// runtime dropped, as a kill -9 leaves it: its lease held, nothing recorded); a second executor
/// takes over once the lease is over and converges with no write sent twice (the retry reads the
/// user by id first: already deactivated); a third run sends nothing but reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mattermost_run_killed_mid_apply_converges_with_no_write_twice() {
    let mm = mattermost::start().expect("mattermost");
    let seed = mm_seed(&mm);
    let toml = format!(
        "[executor]\nlease_secs = 1\n[executor.retry]\nbase_ms = 10\ncap_ms = 40\nmax_attempts = 20\nmax_elapsed_secs = 60\n\n\
         [connectors.chat]\nkind = \"http\"\nrecipe = \"mattermost\"\nbase_url = \"{}\"\n\
         auth = {{ type = \"bearer\", token = \"{}\" }}\nrate_limit = {{ requests = 100, per_secs = 1 }}\n",
        mm.url(),
        mm.token()
    );
    let config = revoke_config::load_str(&toml).expect("config");
    let registry = revoke_engine::Registry::new().with(HttpFactory);
    let plan = revoke_engine::plan(
        &config,
        &registry.build(&config).expect("connectors"),
        vec![engine_job("job-kill")],
        revoke_core::PlanId("p-kill".into()),
        chrono::Utc::now(),
    )
    .await
    .expect("plan");
    let scratch = revoke_harness::scratch_store().await;
    let store = scratch.store.clone();
    let first = revoke_engine::Executor::new(
        store.clone(),
        registry.build(&config).expect("connectors"),
        &config,
        "revokectl@first:1",
    );
    let active = format!("/api/v4/users/{}/active", seed.alice);
    mm.hold_next(&active, std::time::Duration::from_secs(20));
    // The server makes the change and holds its answer; the run dies.
    revoke_harness::kill_when(first, &store, &plan, "the deactivation sent", || {
        !mm.world(|w| w.is_active(&seed.alice))
    })
    .await;

    let second = revoke_engine::Executor::new(
        store.clone(),
        registry.build(&config).expect("connectors"),
        &config,
        "revokectl@second:2",
    );
    let summary = revoke_harness::run_to_end(&second, &plan.id).await;
    assert_eq!((summary.failed, summary.blocked), (0, 0), "{summary:?}");
    let mut writes: BTreeMap<String, usize> = BTreeMap::new();
    for r in mm.mutations() {
        *writes
            .entry(format!("{} {} {}", r.method, r.path, r.body))
            .or_default() += 1;
    }
    assert_eq!(
        writes.get(&format!("PUT {active} {{\"active\":false}}")),
        Some(&1),
        "{writes:#?}"
    );
    assert!(
        writes.values().all(|n| *n == 1),
        "no write twice: {writes:#?}"
    );
    // The session revocation is sent only if the executor ran it before the deactivation
    // (after it, its read finds the user deactivated: already done): 7 or 8 distinct writes.
    let others = writes
        .keys()
        .filter(|k| !k.contains("/sessions/revoke/all"))
        .count();
    assert_eq!(others, 7, "{writes:#?}");
    mm.world(|w| {
        assert!(w.tokens_of(&seed.alice).is_empty());
        assert_eq!(w.channels_of(&seed.alice), vec![seed.alice_dm.clone()]);
    });

    mm.clear_requests();
    let third = revoke_engine::Executor::new(
        store.clone(),
        registry.build(&config).expect("connectors"),
        &config,
        "revokectl@third:3",
    );
    third.run_plan(&plan.id).await.expect("run");
    assert!(mm.mutations().is_empty(), "{:?}", mm.mutations());
}

#[test]
fn zenpy_drives_the_zendesk_standin() {
    let python = python_dir().join(".venv/bin/python");
    let zd = zendesk::start().expect("the zendesk stand-in should start");
    let (alice, _, _, owner) = zendesk_seed(&zd);
    let out = Command::new(&python)
        .arg(python_dir().join("recipes_check.py"))
        .arg("zendesk")
        .env("ZD_URL", zd.url())
        .env("ZD_TOKEN", zd.token())
        .env("ZD_USER", alice.to_string())
        .env("ZD_OWNER", owner.to_string())
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "recipes_check.py failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("zendesk: ok"), "{stdout}\n{stderr}");
    assert!(zd.world(|w| !w.users[&alice].active));
}

// ---------------------------------------------------------------------------------------------
// Discord: the leaver is removed from the company's server

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_plan_apply_rerun_verify_and_near_names() {
    let dc = discord::start().expect("the discord stand-in should start");
    let (alice, alicia, bob) = dc.world(|w| {
        (
            w.member("Alice", Some("alice from sales")),
            w.member("alice_2", None),
            w.member("bob", Some("alice's backup")),
        )
    });
    let params = json!({
        "kind": "http",
        "recipe": "discord",
        "base_url": format!("{}/api/v10/guilds/{}", dc.url(), discord::GUILD),
        "auth": { "type": "api_key", "header": "Authorization", "prefix": "Bot ", "token": dc.token() },
        "rate_limit": { "requests": 100, "per_secs": 1 },
    });
    let conn = connector("company-discord", &params);
    let s = person("alice", "alice@example.com");
    let d = conn.discover(&s).await.expect("discovery");
    let acts = actions("job-1", "company-discord", &d, &conn, &s);
    insta::assert_snapshot!("discord_plan_alice", plan_text(&d, &acts));
    assert!(dc.mutations().is_empty());
    for (a, r) in apply_all(&conn, &acts).await {
        assert!(
            matches!(r, Ok(Outcome::Done)),
            "{} {}: {r:?}",
            a.kind.0,
            a.target
        );
    }
    assert_eq!(
        mutation_lines(&dc.requests()),
        vec![format!(
            "DELETE /api/v10/guilds/{}/members/{alice} 204 ",
            discord::GUILD
        )]
    );
    dc.world(|w| {
        assert!(!w.members.contains_key(&alice));
        assert!(w.members.contains_key(&alicia) && w.members.contains_key(&bob));
    });
    for a in &acts {
        assert_eq!(conn.verify(a).await.expect("verify"), Verdict::Confirmed);
    }
    dc.clear_requests();
    for (a, r) in apply_all(&conn, &acts).await {
        assert!(
            matches!(r, Ok(Outcome::AlreadyDone)),
            "{} {}: {r:?}",
            a.kind.0,
            a.target
        );
    }
    let d2 = conn.discover(&s).await.expect("rediscovery");
    assert!(actions("job-2", "company-discord", &d2, &conn, &s).is_empty());
    assert!(dc.mutations().is_empty(), "{:?}", dc.mutations());

    // A wrong token is an auth error; a hostile username stays in its query value.
    let mut bad = params.clone();
    bad["auth"]["token"] = json!("nope");
    let e = connector("company-discord", &bad)
        .discover(&s)
        .await
        .expect_err("401");
    assert!(!e.is_retryable(), "{e:?}");
    dc.clear_requests();
    let d = conn
        .discover(&person("bob&limit=1/../x", "x@example.com"))
        .await
        .expect("discovery");
    assert!(d.accounts.is_empty());
    for q in dc.requests() {
        assert_eq!(
            q.path,
            format!("/api/v10/guilds/{}/members/search", discord::GUILD),
            "{q:?}"
        );
        assert_eq!(
            q.query.as_deref().unwrap_or("").split('&').count(),
            2,
            "{q:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Docker Hub: the leaver leaves the company's organization (and so every team of it)

/// root is the only owner; alice is in two teams; malice and alice2 share a part of her name
/// (the member search finds them); bob shares a team with her and stays.
fn hub_seed(h: &dockerhub::DockerHubStandin) {
    h.world(|w| {
        w.member("root", "Root Owner", "root@example.com", true);
        w.member("alice", "Alice Liddell", "alice@example.com", false);
        w.member("malice", "Mal Ice", "malice@example.com", false);
        w.member("alice2", "Alice Two", "alice.two@example.com", false);
        w.member("bob", "Bob Builder", "bob@example.com", false);
        w.join("developers", "alice");
        w.join("ops", "alice");
        w.join("developers", "bob");
        w.invite("Alice@Example.com", "ops");
        w.invite("carol@example.com", "developers");
    });
}

fn hub_params(h: &dockerhub::DockerHubStandin, secret: &str) -> Value {
    json!({
        "kind": "http",
        "recipe": "dockerhub",
        "base_url": h.url(),
        "vars": { "org": dockerhub::ORG },
        "auth": {
            "type": "token_exchange",
            "url": format!("{}/v2/auth/token", h.url()),
            "json": { "identifier": dockerhub::ORG },
            "secret_field": "secret",
            "secret": secret,
            "token_path": "$.access_token",
            "ttl_secs": 600,
        },
        "rate_limit": { "requests": 100, "per_secs": 1 },
    })
}

/// Runs tests/recipes/hub_check.py on `exchanges`: (success, stdout)
fn hub_check(exchanges: &[Recorded]) -> (bool, String) {
    exchange_check("hub_check.py", exchanges)
}

/// Runs a checker of tests/recipes on `exchanges`: (success, stdout)
fn exchange_check(script: &str, exchanges: &[Recorded]) -> (bool, String) {
    let python = python_dir().join(".venv/bin/python");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("exchanges.json");
    let list: Vec<Value> = exchanges
        .iter()
        .map(|r| {
            json!({
                "method": r.method, "path": r.path, "query": r.query, "headers": r.headers,
                "body": r.body, "status": r.status, "answer": r.answer,
            })
        })
        .collect();
    std::fs::write(&file, Value::Array(list).to_string()).expect("write the exchanges");
    let out = Command::new(&python)
        .arg(python_dir().join("../recipes").join(script))
        .arg(&file)
        .output()
        .expect("python runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dockerhub_plan_apply_rerun_verify_and_near_names_checked_by_dockers_description() {
    let hub = dockerhub::start().expect("the docker hub stand-in should start");
    hub_seed(&hub);
    let oat = hub.world(|w| w.oat.clone());
    let (alice_invite, carol_invite) = hub.world(|w| {
        let ids: Vec<String> = w.invites.keys().cloned().collect();
        (ids[0].clone(), ids[1].clone())
    });
    let conn = connector("company-hub", &hub_params(&hub, &oat));
    let s = person("alice", "alice@example.com");
    let d = conn.discover(&s).await.expect("discovery");
    let acts = actions("job-1", "company-hub", &d, &conn, &s);
    insta::assert_snapshot!("dockerhub_plan_alice", plan_text(&d, &acts));
    assert!(hub.mutations().iter().all(|r| r.path == "/v2/auth/token"));
    for (a, r) in apply_all(&conn, &acts).await {
        assert!(
            matches!(r, Ok(Outcome::Done)),
            "{} {}: {r:?}",
            a.kind.0,
            a.target
        );
    }
    assert_eq!(
        mutation_lines(&hub.requests())
            .into_iter()
            .filter(|l| !l.contains("/v2/auth/token"))
            .collect::<Vec<_>>(),
        vec![
            format!("DELETE /v2/invites/{alice_invite} 204 "),
            format!("DELETE /v2/orgs/{}/members/alice 204 ", dockerhub::ORG),
        ]
    );
    hub.world(|w| {
        assert!(
            !w.invites.contains_key(&alice_invite),
            "her invitation is cancelled"
        );
        assert!(w.invites.contains_key(&carol_invite), "carol's stays");
    });
    hub.world(|w| {
        assert!(!w.members.contains_key("alice"));
        assert_eq!(w.groups_of("alice"), Vec::<String>::new(), "no team left");
        for keep in ["root", "malice", "alice2", "bob"] {
            assert!(w.members.contains_key(keep), "{keep} stays");
        }
        assert_eq!(w.groups_of("bob"), vec!["developers".to_string()]);
    });
    for a in &acts {
        assert_eq!(conn.verify(a).await.expect("verify"), Verdict::Confirmed);
    }
    // A second apply (the executor after a crash): the search before the removal no longer
    // finds alice: already done, nothing sent.
    let writes = hub.mutations().len();
    for (a, r) in apply_all(&conn, &acts).await {
        assert!(
            matches!(r, Ok(Outcome::AlreadyDone)),
            "{} {}: {r:?}",
            a.kind.0,
            a.target
        );
    }
    assert_eq!(
        hub.mutations().len(),
        writes,
        "a second apply sends no write"
    );
    let d2 = conn.discover(&s).await.expect("rediscovery");
    assert!(d2.accounts.is_empty(), "{:?}", d2.accounts);
    assert!(actions("job-2", "company-hub", &d2, &conn, &s).is_empty());
    // One token exchange served every call (the token lives 10 minutes).
    assert_eq!(hub.world(|w| w.exchanged), 1);

    // The last owner: the removal is refused, a permanent error, nothing changed.
    let root = person("root", "root@example.com");
    let d = conn.discover(&root).await.expect("discovery");
    let acts = actions("job-3", "company-hub", &d, &conn, &root);
    assert_eq!(acts.len(), 1);
    let e = conn
        .apply(&acts[0], &acts[0].key, &MemoryJournal::new())
        .await
        .expect_err("the last owner cannot be removed");
    assert!(
        !e.is_retryable() && e.to_string().contains("refused"),
        "{e}"
    );
    assert!(hub.world(|w| w.members.contains_key("root")));

    // Hostile or near names match nobody and stay inside their query value.
    for (u, e) in [
        ("alic", "lice@example.com"),
        ("../root", "x@example.com"),
        ("root&type=all", "y@example.com"),
        ("root/../../bob", "root@example.com#x"),
    ] {
        let before = hub.requests().len();
        let d = conn.discover(&person(u, e)).await.expect("discovery");
        assert!(d.accounts.is_empty(), "{u}: {:?}", d.accounts);
        for q in &hub.requests()[before..] {
            if q.path == format!("/v2/orgs/{}/invites", dockerhub::ORG) && q.query.is_none() {
                continue;
            }
            assert_eq!(
                q.path,
                format!("/v2/orgs/{}/members", dockerhub::ORG),
                "{q:?}"
            );
            let query = q.query.as_deref().unwrap_or("");
            assert_eq!(
                query.split('&').count(),
                4,
                "search, type, page, page_size: {q:?}"
            );
            assert!(query.split('&').all(|p| p.split('=').count() == 2), "{q:?}");
        }
    }
    assert_eq!(hub.world(|w| w.members.len()), 4);

    // A wrong organization access token: the exchange is refused, discovery fails as auth.
    let e = connector("company-hub", &hub_params(&hub, "dckr_oat_wrong"))
        .discover(&s)
        .await
        .expect_err("401 on the exchange");
    assert!(!e.is_retryable(), "{e:?}");

    // Every exchange of this test against Docker's own description, then the same exchanges
    // with four faults put in, each of which the check must name.
    let all = hub.requests();
    let (ok, text) = hub_check(&all);
    println!("{text}");
    assert!(ok, "hub_check.py found violations:\n{text}");
    assert!(text.contains("dockerhub: ok"), "{text}");
    for rule in [
        "members-page-is-an-object",
        "search-is-text",
        "null-page-link",
    ] {
        assert!(text.contains(&format!("[{rule}]")), "{rule} used: {text}");
    }
    let mut bad = all.clone();
    let page = bad
        .iter_mut()
        .find(|r| r.method == "GET" && r.answer.contains("\"alice\""))
        .expect("a members page naming alice");
    let mut v: Value = serde_json::from_str(&page.answer).expect("json");
    v["results"][0]["role"] = json!("Admin");
    v["next"] = json!(5);
    page.answer = v.to_string();
    let del = bad
        .iter_mut()
        .find(|r| r.method == "DELETE" && r.status == 204)
        .expect("the removal");
    del.status = 200;
    let list = bad
        .iter_mut()
        .find(|r| r.method == "GET" && r.path.ends_with("/members"))
        .expect("a listing");
    list.query = Some(format!(
        "{}&type=members",
        list.query.clone().unwrap_or_default()
    ));
    let (ok, text) = hub_check(&bad);
    println!("{text}");
    assert!(!ok, "the faults should be found:\n{text}");
    for want in [
        "'Admin' is not one of",
        "5 is not of type 'string'",
        "Unknown response http status: 200",
        "'members' is not one of",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("violation:") && l.contains(want)),
            "a violation naming {want:?}:\n{text}"
        );
    }

    // Docker Hub's 429 says when to come back in X-Retry-After (a unix time): the wait is that.
    // (After the check: the description declares no 429 on these operations.)
    let at = chrono::Utc::now().timestamp() + 30;
    hub.fail_next(
        1,
        "/members",
        revoke_testkit::recipes::Reply::json(429, json!({"detail": "Rate limit exceeded"}))
            .header("X-Retry-After", &at.to_string()),
    );
    let e = conn.discover(&s).await.expect_err("rate limited");
    let wait = e.retry_after().expect("a wait").as_secs();
    assert!(
        (1..=31).contains(&wait),
        "not the 60 s default: {wait} s: {e:?}"
    );
}

/// The leaver's system admin alt account (`alice.admin`, by the recipe's naming convention) is
/// planned beside her own account, each saying why it matched; near names (`alice.administrator`,
/// `malice.admin`) are never asked for nor matched; named in `[protected] accounts`, the alt
/// account is left out of the plan (through revoked's planner) while her own stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mattermost_sysadmin_alt_account_is_planned_near_names_never_and_a_protected_one_left_out()
{
    let mm = mattermost::start().expect("the mattermost stand-in should start");
    let (alice, alt, near, malice) = mm.world(|w| {
        let alice = w.user("alice", "alice@example.com");
        let alt = w.user("alice.admin", "alice+admin@example.com");
        let near = w.user("alice.administrator", "aa@example.com");
        let malice = w.user("malice.admin", "malice@example.com");
        for u in [&alice, &alt, &near, &malice] {
            w.session(u);
        }
        (alice, alt, near, malice)
    });
    let conn = connector(MM, &instance("mattermost", &mm.url(), mm.token()));
    let s = person("alice", "alice@example.com");
    let d = conn.discover(&s).await.expect("discovery");
    let found: BTreeMap<String, String> = d
        .accounts
        .iter()
        .map(|a| (a.name.clone(), a.matched_by.clone()))
        .collect();
    assert_eq!(
        found.keys().cloned().collect::<Vec<_>>(),
        vec!["alice".to_string(), "alice.admin".to_string()],
        "{found:#?}"
    );
    assert!(
        found["alice"].contains("$.username = alice (case ignored)"),
        "{found:#?}"
    );
    assert_eq!(
        found["alice.admin"], "user: $.username = alice.admin (case ignored)",
        "the alt account says which rule found it"
    );
    for q in mm.requests() {
        assert!(
            !q.path.contains("administrator") && !q.path.contains("malice"),
            "a near name was asked for: {q:?}"
        );
    }
    let acts = actions("job-1", MM, &d, &conn, &s);
    let deactivations: BTreeSet<String> = acts
        .iter()
        .filter(|a| a.kind.0 == "user.deactivate")
        .map(|a| a.target.clone())
        .collect();
    assert_eq!(
        deactivations,
        BTreeSet::from([format!("user/{alice}"), format!("user/{alt}")])
    );
    for (a, r) in apply_all(&conn, &acts).await {
        assert!(
            matches!(r, Ok(Outcome::Done) | Ok(Outcome::AlreadyDone)),
            "{} {}: {r:?}",
            a.kind.0,
            a.target
        );
    }
    mm.world(|w| {
        assert!(!w.is_active(&alice) && !w.is_active(&alt));
        assert!(
            w.is_active(&near) && w.is_active(&malice),
            "near names untouched"
        );
    });

    // Another company's convention, through the instance's vars: alice-sa is hers, alice.admin
    // is not asked for.
    let mm2 = mattermost::start().expect("the mattermost stand-in should start");
    let (sa, dotadmin) = mm2.world(|w| {
        w.user("alice", "alice@example.com");
        (
            w.user("alice-sa", "sa@example.com"),
            w.user("alice.admin", "aa@example.com"),
        )
    });
    let mut params = instance("mattermost", &mm2.url(), mm2.token());
    params["vars"] = json!({ "alt_suffix": "-sa" });
    let d = connector(MM, &params)
        .discover(&s)
        .await
        .expect("discovery");
    let ids: BTreeSet<String> = d.accounts.iter().map(|a| a.id.clone()).collect();
    assert!(
        ids.contains(&sa) && !ids.contains(&dotadmin),
        "{:?}",
        d.accounts
    );
    assert!(mm2.requests().iter().all(|q| !q.path.ends_with(".admin")));

    // Protected by its username: the planner leaves the alt account out, her own is planned.
    let mm = mattermost::start().expect("the mattermost stand-in should start");
    let (alice, alt) = mm.world(|w| {
        (
            w.user("alice", "alice@example.com"),
            w.user("alice.admin", "alice+admin@example.com"),
        )
    });
    let toml = format!(
        "[protected]\naccounts = [\"alice.admin\"]\n\n[connectors.chat]\nkind = \"http\"\nrecipe = \"mattermost\"\nbase_url = \"{}\"\nauth = {{ type = \"bearer\", token = \"{}\" }}\nrate_limit = {{ requests = 100, per_secs = 1 }}\n",
        mm.url(),
        mm.token()
    );
    let config = revoke_config::load_str(&toml).expect("config");
    let registry = revoke_engine::Registry::new().with(HttpFactory);
    registry.validate(&config).expect("valid");
    let plan = revoke_engine::plan(
        &config,
        &registry.build(&config).expect("connectors"),
        vec![engine_job("job-alt")],
        revoke_core::PlanId("p-alt".into()),
        chrono::Utc::now(),
    )
    .await
    .expect("plan");
    let targets: Vec<String> = plan
        .actions
        .iter()
        .filter(|a| a.connector == "chat")
        .map(|a| a.target.clone())
        .collect();
    assert!(targets.contains(&format!("user/{alice}")), "{targets:?}");
    assert!(
        targets.iter().all(|t| !t.contains(&alt)),
        "the protected alt account is left out: {targets:?}"
    );
    assert!(mm.mutations().is_empty());
}

// ---------------------------------------------------------------------------------------------
// WordPress: roles taken, application passwords revoked, the user deleted with their content
// given to the user the instance names

fn wp_params(wp: &wordpress::WordPressStandin, reassign_to: Option<u64>) -> Value {
    let mut p = json!({
        "kind": "http",
        "recipe": "wordpress",
        "base_url": wp.url(),
        "auth": { "type": "basic", "username": wordpress::ADMIN, "password": wp.token() },
        "rate_limit": { "requests": 100, "per_secs": 1 },
    });
    if let Some(id) = reassign_to {
        p["vars"] = json!({ "reassign_to": id.to_string() });
    }
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wordpress_plan_apply_rerun_verify_reassign_and_near_names_checked_by_wp_types() {
    let wp = wordpress::start().expect("the wordpress stand-in should start");
    let (alice, malice, bob, carol) = wp.world(|w| {
        let alice = w.user("alice", "alice@example.com", &["editor"]);
        let malice = w.user("malice", "malice@example.com", &["author"]);
        let bob = w.user("bob", "bob@example.com", &["author"]);
        let carol = w.user("carol", "carol@example.com", &["administrator"]);
        w.app_password(alice, "ci publisher");
        w.app_password(alice, "phone");
        w.app_password(bob, "bob's laptop");
        for _ in 0..3 {
            w.post(alice);
        }
        w.post(bob);
        (alice, malice, bob, carol)
    });

    // Without whom the content goes to, the instance is refused, naming the variable.
    let issues = HttpFactory
        .validate("connectors.blog", &wp_params(&wp, None))
        .expect_err("reassign_to is required");
    assert!(
        format!("{issues:?}").contains("vars.reassign_to"),
        "{issues:?}"
    );

    let conn = connector("blog", &wp_params(&wp, Some(1)));
    let s = person("alice", "alice@example.com");
    let d = conn.discover(&s).await.expect("discovery");
    let acts = actions("job-1", "blog", &d, &conn, &s);
    insta::assert_snapshot!("wordpress_plan_alice", plan_text(&d, &acts));
    assert!(wp.mutations().is_empty(), "discovery writes nothing");
    for (a, r) in apply_all(&conn, &acts).await {
        assert!(
            matches!(r, Ok(Outcome::Done)),
            "{} {}: {r:?}",
            a.kind.0,
            a.target
        );
    }
    insta::assert_snapshot!(
        "wordpress_mutations_alice",
        wp.mutations()
            .iter()
            .map(|r| format!(
                "{} {}?{} {} {}",
                r.method,
                r.path,
                r.query.as_deref().unwrap_or(""),
                r.status,
                r.body
            ))
            .collect::<Vec<_>>()
            .join("\n")
    );
    wp.world(|w| {
        assert!(!w.users.contains_key(&alice), "alice is deleted");
        assert_eq!(w.posts_of(1), 3, "her posts went to user 1");
        assert_eq!(w.posts_of(bob), 1);
        assert_eq!(w.users[&bob].app_passwords.len(), 1, "bob keeps his");
        assert_eq!(w.users[&malice].roles, vec!["author".to_string()]);
    });
    for a in &acts {
        assert_eq!(
            conn.verify(a).await.expect("verify"),
            Verdict::Confirmed,
            "{} {}",
            a.kind.0,
            a.target
        );
    }
    // A second apply (after a crash): every read answers 404: already done, nothing sent.
    let writes = wp.mutations().len();
    for (a, r) in apply_all(&conn, &acts).await {
        assert!(
            matches!(r, Ok(Outcome::AlreadyDone)),
            "{} {}: {r:?}",
            a.kind.0,
            a.target
        );
    }
    assert_eq!(
        wp.mutations().len(),
        writes,
        "a second apply sends no write"
    );
    let d2 = conn.discover(&s).await.expect("rediscovery");
    assert!(d2.accounts.is_empty(), "{:?}", d2.accounts);

    // Content given to the leaver herself: WordPress refuses, a permanent error, nothing changed.
    let conn_c = connector("blog", &wp_params(&wp, Some(carol)));
    let c = person("carol", "carol@example.com");
    let d = conn_c.discover(&c).await.expect("discovery");
    let del = actions("job-2", "blog", &d, &conn_c, &c)
        .into_iter()
        .find(|a| a.kind.0 == "user.delete")
        .expect("the deletion is planned");
    let e = conn_c
        .apply(&del, &del.key, &MemoryJournal::new())
        .await
        .expect_err("refused");
    assert!(
        !e.is_retryable() && e.to_string().contains("invalid_reassign"),
        "{e}"
    );
    assert!(wp.world(|w| w.users.contains_key(&carol)));

    // Near and hostile names match nobody and stay in their query value.
    for (u, e) in [
        ("alic", "lice@example.com"),
        ("../1", "x@example.com"),
        ("bob&context=view", "y@example.com"),
        ("1/application-passwords", "z@example.com#x"),
    ] {
        let before = wp.requests().len();
        let d = conn.discover(&person(u, e)).await.expect("discovery");
        assert!(d.accounts.is_empty(), "{u}: {:?}", d.accounts);
        for q in &wp.requests()[before..] {
            assert_eq!(q.path, "/wp-json/wp/v2/users", "{q:?}");
            assert_eq!(
                q.query.as_deref().unwrap_or("").split('&').count(),
                4,
                "search, context, page, per_page: {q:?}"
            );
        }
    }
    assert!(
        wp.mutations().len() == writes + 1,
        "only the refused deletion"
    );

    // Every exchange against WordPress's answer schemas and core's argument rules, then the
    // same exchanges with three faults put in, each of which the check must name.
    let all = wp.requests();
    let (ok, text) = exchange_check("wp_check.py", &all);
    println!("{text}");
    assert!(ok && text.contains("wordpress: ok"), "{text}");
    let mut bad = all.clone();
    let listing = bad
        .iter_mut()
        .find(|r| r.method == "GET" && r.answer.contains("\"slug\":\"alice\""))
        .expect("a listing with alice");
    let mut v: Value = serde_json::from_str(&listing.answer).expect("json");
    v[0].as_object_mut().expect("a user").remove("slug");
    listing.answer = v.to_string();
    let del = bad
        .iter_mut()
        .find(|r| r.method == "DELETE" && r.path.ends_with(&format!("/users/{alice}")))
        .expect("the deletion");
    del.query = Some("reassign=1".into());
    let refused = bad
        .iter_mut()
        .find(|r| r.status == 400)
        .expect("the refused deletion");
    refused.answer = json!({"code": "x", "message": "y", "data": {"status": 500}}).to_string();
    let (ok, text) = exchange_check("wp_check.py", &bad);
    println!("{text}");
    assert!(!ok, "the faults should be found:\n{text}");
    for want in [
        "'slug' is a required property",
        "force=None is not a boolean",
        "data.status is 500",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("violation:") && l.contains(want)),
            "a violation naming {want:?}:\n{text}"
        );
    }
}
