//! The GitHub stand-in itself: every endpoint through Prism without a violation (so it conforms to
//! GitHub's spec), Prism's check can fail, pagination, knobs, GraphQL paging, schema validation

use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::{Client, Method, Response, StatusCode};
use revoke_testkit::github::{CredentialType, GithubStandin, LimitScope, Permission, Role};
use revoke_testkit::{validate_graphql, TestkitError};
use serde_json::{json, Value};

fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match Client::builder().build() {
        Ok(c) => c,
        Err(e) => panic!("building a reqwest client should work: {e}"),
    }
}

fn standin() -> GithubStandin {
    GithubStandin::start().expect("the github stand-in should start")
}

/// A request as the connector sends it: token, `Accept: application/json`
async fn call(c: &Client, method: Method, url: &str, token: &str, body: Option<Value>) -> Response {
    let mut rb = c
        .request(method, url)
        .bearer_auth(token)
        .header("accept", "application/json")
        .header("x-github-api-version", "2022-11-28");
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    rb.send().await.expect("the request should be answered")
}

async fn json_of(r: Response) -> Value {
    r.json().await.expect("the body should be JSON")
}

/// A small org with one of everything
/// Returns (repo invitation, org invitation, credential, PAT grant) ids
fn seed(gh: &GithubStandin) -> (u64, u64, u64, u64) {
    gh.world(|w| {
        let o = w.org("acme");
        o.member("alice", Role::Admin)
            .member("bob", Role::Member)
            .member("carol", Role::Member);
        o.team("platform").maintainer("alice").member("bob");
        o.team("security").member("carol");
        o.repo("api")
            .collaborator("bob", Permission::Push)
            .collaborator("eve", Permission::Pull);
        o.repo("web")
            .collaborator("eve", Permission::Triage)
            .private(false);
        let repo_inv = o.repo("web").invite("mallory", Permission::Push);
        let org_inv = o.invite("dave", Role::Member);
        o.invite_email("frank@example.com", Role::Admin);
        let cred = o
            .credential_authorization("bob", CredentialType::PersonalAccessToken)
            .credential_id;
        o.credential_authorization("bob", CredentialType::SshKey);
        let pat = o.pat_grant("bob", "deploy").id;
        o.saml_identity("bob", "bob@example.com");
        (repo_inv, org_inv, cred, pat)
    })
}

/// An app JWT (signature not checked by the stand-in)
fn jwt(iss: u64, exp_in: i64) -> String {
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let now = chrono::Utc::now().timestamp();
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(json!({"alg": "RS256", "typ": "JWT"})),
        b64(json!({"iat": now - 60, "exp": now + exp_in, "iss": iss}))
    )
}

#[tokio::test]
async fn every_endpoint_conforms_to_githubs_spec_through_prism() {
    let gh = standin();
    let (repo_inv, org_inv, cred, pat) = seed(&gh);
    gh.set_app(42, 7);
    let prism = gh.behind_prism().expect("prism should start");
    let base = prism.rest_url();
    let t = gh.token();
    let c = client();
    use Method as M;

    let bob_id = gh.world(|w| w.user_id("bob"));
    let bob_by_id = format!("/user/{bob_id}");
    let expect = [
        (M::GET, "/orgs/acme", 200),
        (M::GET, bob_by_id.as_str(), 200),
        (M::GET, "/user/1", 404),
        (M::GET, "/users/bob", 200),
        (M::GET, "/users/BOB", 200),
        (M::GET, "/users/nobody", 404),
        (M::GET, "/orgs/acme/memberships/alice", 200),
        (M::GET, "/orgs/acme/memberships/dave", 200),
        (M::GET, "/orgs/acme/memberships/nobody", 404),
        (M::GET, "/orgs/nope", 404),
        (M::GET, "/orgs/acme/invitations?per_page=100", 200),
        (M::GET, "/orgs/acme/outside_collaborators?per_page=100", 200),
        (M::GET, "/orgs/acme/teams?per_page=100", 200),
        (M::GET, "/orgs/acme/teams/platform", 200),
        (M::GET, "/orgs/acme/teams/nope", 404),
        (M::GET, "/orgs/acme/teams/platform/memberships/alice", 200),
        (M::GET, "/orgs/acme/teams/platform/memberships/carol", 404),
        (M::GET, "/orgs/acme/repos?per_page=100", 200),
        (
            M::GET,
            "/repos/acme/api/collaborators?affiliation=direct&per_page=100",
            200,
        ),
        (
            M::GET,
            "/repos/acme/api/collaborators?affiliation=outside",
            200,
        ),
        (M::GET, "/repos/acme/api/collaborators?affiliation=all", 200),
        (M::GET, "/repos/acme/nope/collaborators", 404),
        (M::GET, "/repos/acme/api/collaborators/eve", 204),
        (M::GET, "/repos/acme/api/collaborators/alice", 204),
        (M::GET, "/repos/acme/api/collaborators/zed", 404),
        (M::GET, "/repos/acme/web/invitations?per_page=100", 200),
        (
            M::GET,
            "/orgs/acme/credential-authorizations?login=bob",
            200,
        ),
        (M::GET, "/orgs/acme/credential-authorizations", 200),
        (M::GET, "/orgs/acme/personal-access-tokens?owner[]=bob", 200),
        (M::GET, "/orgs/acme/personal-access-tokens", 200),
    ];
    for (method, path, status) in expect {
        let r = call(&c, method.clone(), &format!("{base}{path}"), &t, None).await;
        assert_eq!(r.status().as_u16(), status, "{method} {path}");
        for h in [
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
            "x-ratelimit-used",
        ] {
            assert!(
                r.headers().contains_key(h),
                "{method} {path} should carry {h}"
            );
        }
        assert_eq!(r.headers()["x-ratelimit-resource"], "core");
    }

    // Bodies carry what the connector reads.
    let m = json_of(
        call(
            &c,
            M::GET,
            &format!("{base}/orgs/acme/memberships/dave"),
            &t,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(
        (m["state"].as_str(), m["role"].as_str()),
        (Some("pending"), Some("member"))
    );
    let outside = json_of(
        call(
            &c,
            M::GET,
            &format!("{base}/orgs/acme/outside_collaborators"),
            &t,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(outside[0]["login"], "eve");
    let direct = json_of(
        call(
            &c,
            M::GET,
            &format!("{base}/repos/acme/api/collaborators?affiliation=direct"),
            &t,
            None,
        )
        .await,
    )
    .await;
    let logins: Vec<_> = direct
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| (u["login"].clone(), u["role_name"].clone()))
        .collect();
    assert_eq!(
        logins,
        vec![
            (json!("bob"), json!("write")),
            (json!("eve"), json!("read"))
        ]
    );
    let creds = json_of(
        call(
            &c,
            M::GET,
            &format!("{base}/orgs/acme/credential-authorizations?login=bob"),
            &t,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(creds.as_array().map(Vec::len), Some(2));

    // The installation-token call (its own JWT auth) and the token it gives.
    let r = c
        .post(format!("{base}/app/installations/7/access_tokens"))
        .bearer_auth(jwt(42, 300))
        .header("accept", "application/json")
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), StatusCode::CREATED);
    let token = json_of(r).await["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(token.starts_with("ghs_"), "{token}");
    let r = call(&c, M::GET, &format!("{base}/orgs/acme"), &token, None).await;
    assert_eq!(r.status(), StatusCode::OK);

    // Every mutation.
    let mutations = [
        (
            M::DELETE,
            "/orgs/acme/teams/platform/memberships/bob".to_owned(),
            None,
            204,
        ),
        (
            M::DELETE,
            "/repos/acme/api/collaborators/bob".to_owned(),
            None,
            204,
        ),
        (
            M::DELETE,
            format!("/repos/acme/web/invitations/{repo_inv}"),
            None,
            204,
        ),
        (
            M::DELETE,
            "/orgs/acme/outside_collaborators/alice".to_owned(),
            None,
            422,
        ),
        (
            M::DELETE,
            "/orgs/acme/outside_collaborators/eve".to_owned(),
            None,
            204,
        ),
        (
            M::DELETE,
            "/orgs/acme/outside_collaborators/eve".to_owned(),
            None,
            204,
        ),
        (
            M::DELETE,
            format!("/orgs/acme/credential-authorizations/{cred}"),
            None,
            204,
        ),
        (
            M::DELETE,
            format!("/orgs/acme/credential-authorizations/{cred}"),
            None,
            404,
        ),
        (
            M::POST,
            format!("/orgs/acme/personal-access-tokens/{pat}"),
            Some(json!({"action": "revoke"})),
            204,
        ),
        (
            M::POST,
            format!("/orgs/acme/personal-access-tokens/{pat}"),
            Some(json!({"action": "revoke"})),
            404,
        ),
        (
            M::DELETE,
            format!("/orgs/acme/invitations/{org_inv}"),
            None,
            204,
        ),
        (
            M::DELETE,
            format!("/orgs/acme/invitations/{org_inv}"),
            None,
            404,
        ),
        (
            M::DELETE,
            "/orgs/acme/memberships/carol".to_owned(),
            None,
            204,
        ),
        (
            M::DELETE,
            "/orgs/acme/memberships/carol".to_owned(),
            None,
            404,
        ),
    ];
    for (method, path, body, status) in mutations {
        let r = call(&c, method.clone(), &format!("{base}{path}"), &t, body).await;
        assert_eq!(r.status().as_u16(), status, "{method} {path}");
    }

    assert!(
        prism.violations().is_empty(),
        "prism violations: {:#?}",
        prism.violations()
    );
    assert_eq!(gh.team_members("acme", "platform").len(), 1);
    assert!(!gh.is_member("acme", "carol"));
    assert!(
        gh.team_members("acme", "security").is_empty(),
        "carol's team membership goes with her"
    );
    assert!(gh.outside_collaborators("acme").is_empty());
    assert!(gh.repo_invitations("acme", "web").is_empty());
    assert!(gh.pat_grants("acme").is_empty());
    assert_eq!(gh.credential_authorizations("acme").len(), 1);
    assert_eq!(
        gh.org_invitations("acme").len(),
        1,
        "the email invitation stays"
    );
    assert_eq!(gh.installation_tokens_issued(), 1);
}

/// GitHub lets a renamed user's old login be taken by someone else: the durable id (`GET
/// /user/{id}`) follows the person, the login (`GET /users/{login}`) names whoever holds it now
#[tokio::test]
async fn a_renamed_login_can_be_taken_by_a_new_user_and_ids_follow_the_person() {
    let gh = standin();
    gh.world(|w| {
        w.user("dave", 1200).expect("free");
        let o = w.org("acme");
        o.member("dave", Role::Member);
        o.team("platform").member("dave");
        o.repo("api").collaborator("dave", Permission::Push);
        o.credential_authorization("dave", CredentialType::SshKey);
        o.pat_grant("dave", "laptop");
        o.saml_identity("dave", "dave@corp.example");
        assert!(w.user("dave", 1300).is_err(), "a login names one user");
        assert!(
            w.user("someone", 1200).is_err(),
            "an id is never given twice"
        );
    });
    let prism = gh.behind_prism().expect("prism should start");
    let (base, t, c) = (prism.rest_url(), gh.token(), client());
    let get = |path: String| {
        let c = c.clone();
        let (url, t) = (format!("{base}{path}"), t.clone());
        async move {
            let r = call(&c, Method::GET, &url, &t, None).await;
            let status = r.status().as_u16();
            let body = if status == 200 {
                json_of(r).await
            } else {
                Value::Null
            };
            (status, body)
        }
    };
    let (status, dave) = get("/user/1200".into()).await;
    assert_eq!((status, dave["login"].as_str()), (200, Some("dave")));

    gh.world(|w| {
        assert_eq!(w.rename_user("dave", "dave-old"), Ok(1200));
        assert!(w.rename_user("nobody", "x").is_err());
        w.user("dave", 2200).expect("the old login is free");
        w.org("acme").member("dave", Role::Member);
        assert!(w.rename_user("dave-old", "dave").is_err(), "taken");
    });
    let (_, by_id) = get("/user/1200".into()).await;
    assert_eq!(
        (by_id["login"].as_str(), by_id["id"].as_u64()),
        (Some("dave-old"), Some(1200))
    );
    let (_, by_login) = get("/users/dave".into()).await;
    assert_eq!(by_login["id"].as_u64(), Some(2200));
    let (_, old) = get("/users/dave-old".into()).await;
    assert_eq!(old["id"].as_u64(), Some(1200));
    // Everything of the person followed the rename; the new dave has only his membership.
    let (_, m) = get("/orgs/acme/memberships/dave-old".into()).await;
    assert_eq!(
        (m["state"].as_str(), m["user"]["id"].as_u64()),
        (Some("active"), Some(1200))
    );
    let (_, m) = get("/orgs/acme/memberships/dave".into()).await;
    assert_eq!(m["user"]["id"].as_u64(), Some(2200));
    assert_eq!(gh.team_members("acme", "platform")[0].0, "dave-old");
    assert_eq!(gh.collaborators("acme", "api")[0].0, "dave-old");
    assert_eq!(gh.credential_authorizations("acme")[0].login, "dave-old");
    assert_eq!(gh.pat_grants("acme")[0].owner, "dave-old");

    // A deleted account: its id and login answer 404, and it leaves the org.
    gh.world(|w| assert_eq!(w.delete_user("dave-old"), Ok(1200)));
    assert_eq!(get("/user/1200".into()).await.0, 404);
    assert_eq!(get("/users/dave-old".into()).await.0, 404);
    assert_eq!(get("/user/2200".into()).await.0, 200);
    assert!(gh.team_members("acme", "platform").is_empty());
    assert!(gh.collaborators("acme", "api").is_empty());
    assert!(gh.credential_authorizations("acme").is_empty());
    assert!(gh.pat_grants("acme").is_empty());
    assert_eq!(gh.members("acme"), vec![("dave".to_owned(), Role::Member)]);
    assert!(
        prism.violations().is_empty(),
        "prism violations: {:#?}",
        prism.violations()
    );
}

#[tokio::test]
async fn prism_reports_a_malformed_request_and_passes_knob_responses_with_warnings() {
    let gh = standin();
    let (_, _, _, pat) = seed(&gh);
    let prism = gh.behind_prism().expect("prism should start");
    let base = prism.rest_url();
    let t = gh.token();
    let c = client();

    // A request body GitHub's spec forbids: Prism answers 422 itself, an Error.
    let r = call(
        &c,
        Method::POST,
        &format!("{base}/orgs/acme/personal-access-tokens/{pat}"),
        &t,
        Some(json!({"action": "nope"})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let errors = prism.errors();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].contains("request.body.action"), "{errors:#?}");
    assert_eq!(
        gh.pat_grants("acme").len(),
        1,
        "prism does not forward an invalid request"
    );

    // A path GitHub does not have.
    prism.clear();
    let r = call(
        &c,
        Method::GET,
        &format!("{base}/orgs/acme/nonsense"),
        &t,
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(
        prism.errors()[0].contains("NO_PATH_MATCHED"),
        "{:?}",
        prism.errors()
    );

    // Knob answers with undeclared statuses pass through as Warnings.
    prism.clear();
    let r = call(
        &c,
        Method::GET,
        &format!("{base}/orgs/acme"),
        "ghp_wrong",
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        json_of(r).await,
        json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})
    );
    gh.fail_next(1, 502);
    let r = call(&c, Method::GET, &format!("{base}/orgs/acme"), &t, None).await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    gh.secondary_limit(2, Some(Duration::from_secs(1)), LimitScope::All);
    let r = call(&c, Method::GET, &format!("{base}/orgs/acme"), &t, None).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.headers()["retry-after"], "1");
    // GET /orgs/{org}/teams declares 403: no warning for that one.
    let r = call(
        &c,
        Method::GET,
        &format!("{base}/orgs/acme/teams"),
        &t,
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(prism.errors().is_empty(), "{:#?}", prism.errors());
    let warnings = prism.violations();
    assert_eq!(warnings.len(), 3, "{warnings:#?}");
    assert!(
        warnings
            .iter()
            .all(|w| w.contains("Unable to match the returned status code")),
        "{warnings:#?}"
    );
}

#[tokio::test]
async fn lists_paginate_with_githubs_link_header() {
    let gh = standin();
    gh.world(|w| {
        let o = w.org("big");
        for i in 0..250 {
            o.repo(&format!("repo-{i:03}"));
        }
    });
    let c = client();
    let t = gh.token();
    let r = call(
        &c,
        Method::GET,
        &format!("{}/orgs/big/repos?per_page=100", gh.url()),
        &t,
        None,
    )
    .await;
    let link = r.headers()["link"].to_str().unwrap_or_default().to_owned();
    let host = gh.url();
    assert_eq!(
        link,
        format!("<{host}/orgs/big/repos?per_page=100&page=2>; rel=\"next\", <{host}/orgs/big/repos?per_page=100&page=3>; rel=\"last\"")
    );
    assert_eq!(json_of(r).await.as_array().map(Vec::len), Some(100));

    // Follow `next` to the end.
    let mut url = format!("{}/orgs/big/repos?per_page=100", gh.url());
    let mut names = Vec::new();
    loop {
        let r = call(&c, Method::GET, &url, &t, None).await;
        let next = r.headers().get("link").and_then(|l| {
            l.to_str()
                .ok()?
                .split(", ")
                .find(|p| p.ends_with("rel=\"next\""))
                .map(|p| {
                    p.trim_start_matches('<')
                        .split('>')
                        .next()
                        .unwrap_or_default()
                        .to_owned()
                })
        });
        names.extend(
            json_of(r)
                .await
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| r["name"].as_str().unwrap_or_default().to_owned()),
        );
        match next {
            Some(n) => url = n,
            None => break,
        }
    }
    assert_eq!(names.len(), 250);
    assert_eq!(names.first().map(String::as_str), Some("repo-000"));

    // per_page is capped at 100; the default is 30; the middle page links back.
    let r = call(
        &c,
        Method::GET,
        &format!("{}/orgs/big/repos?per_page=500", gh.url()),
        &t,
        None,
    )
    .await;
    assert_eq!(json_of(r).await.as_array().map(Vec::len), Some(100));
    let r = call(
        &c,
        Method::GET,
        &format!("{}/orgs/big/repos?page=2", gh.url()),
        &t,
        None,
    )
    .await;
    let link = r.headers()["link"].to_str().unwrap_or_default().to_owned();
    assert!(
        link.contains("page=1>; rel=\"prev\"") && link.contains("page=9>; rel=\"last\""),
        "{link}"
    );
    assert_eq!(json_of(r).await.as_array().map(Vec::len), Some(30));

    // GHES prefix: same answers, links keep /api/v3.
    let r = call(
        &c,
        Method::GET,
        &format!("{}/orgs/big/repos?per_page=100", gh.ghes_url()),
        &t,
        None,
    )
    .await;
    assert!(r.headers()["link"]
        .to_str()
        .unwrap_or_default()
        .contains("/api/v3/orgs/big/repos?per_page=100&page=2"));
    assert!(json_of(r).await[0]["url"]
        .as_str()
        .unwrap_or_default()
        .contains("/api/v3/repos/big/repo-000"));
}

#[tokio::test]
async fn path_segments_are_percent_decoded_and_logins_case_insensitive() {
    let gh = standin();
    gh.world(|w| {
        w.org("acme")
            .member("Alice", Role::Member)
            .member("dependabot[bot]", Role::Member);
    });
    let c = client();
    let t = gh.token();
    let r = call(
        &c,
        Method::GET,
        &format!("{}/orgs/acme/memberships/al%69ce", gh.url()),
        &t,
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_of(r).await["user"]["login"], "Alice");
    let r = call(
        &c,
        Method::DELETE,
        &format!("{}/orgs/ACME/memberships/dependabot%5Bbot%5D", gh.url()),
        &t,
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        gh.requests().last().map(|r| r.path.clone()),
        Some("/orgs/ACME/memberships/dependabot%5Bbot%5D".to_owned())
    );
    assert!(!gh.is_member("acme", "dependabot[bot]"));
}

#[tokio::test]
async fn secondary_limit_storm_records_requests_that_do_not_wait() {
    let gh = standin();
    gh.world(|w| {
        let o = w.org("acme");
        for u in ["a", "b", "c", "d"] {
            o.member(u, Role::Member);
        }
    });
    let c = client();
    let t = gh.token();
    let del = |u: &str| format!("{}/orgs/acme/memberships/{u}", gh.url());

    gh.secondary_limit(2, Some(Duration::from_millis(600)), LimitScope::Mutations);
    // A GET is not a mutation: the storm does not hit it.
    let r = call(
        &c,
        Method::GET,
        &format!("{}/orgs/acme", gh.url()),
        &t,
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = call(&c, Method::DELETE, &del("a"), &t, None).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_ne!(
        r.headers()["x-ratelimit-remaining"],
        "0",
        "a secondary limit leaves the primary budget"
    );
    assert!(json_of(r).await["message"]
        .as_str()
        .unwrap_or_default()
        .starts_with("You have exceeded a secondary rate limit"));
    assert!(gh.pace_violations().is_empty());

    // Retrying at once is a violation (and still limited).
    let r = call(&c, Method::DELETE, &del("a"), &t, None).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let v = gh.pace_violations();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].path, "/orgs/acme/memberships/a");

    // Waiting it out is fine.
    tokio::time::sleep(Duration::from_millis(650)).await;
    let r = call(&c, Method::DELETE, &del("a"), &t, None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(gh.pace_violations().len(), 1);

    // Without retry-after the wait is the secondary-wait knob (GitHub: a minute).
    gh.set_secondary_wait(Duration::from_millis(300));
    gh.secondary_limit(1, None, LimitScope::All);
    let r = call(&c, Method::DELETE, &del("b"), &t, None).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(!r.headers().contains_key("retry-after"));
    let r = call(
        &c,
        Method::GET,
        &format!("{}/orgs/acme", gh.url()),
        &t,
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(gh.pace_violations().len(), 2);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let r = call(&c, Method::DELETE, &del("b"), &t, None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(gh.pace_violations().len(), 2);

    assert_eq!(gh.mutations().len(), 5);
    assert_eq!(gh.count("DELETE", "/orgs/acme/memberships/"), 5);
    let gap = gh.min_mutation_gap().expect("five mutations have gaps");
    assert!(gap < Duration::from_millis(300), "{gap:?}");
}

#[tokio::test]
async fn primary_limit_faults_latency_and_bad_credentials() {
    let gh = standin();
    gh.world(|w| {
        w.org("acme");
    });
    let c = client();
    let t = gh.token();
    let url = format!("{}/orgs/acme", gh.url());

    gh.set_rate_limit(3, Duration::from_secs(3_600));
    for left in ["2", "1", "0"] {
        let r = call(&c, Method::GET, &url, &t, None).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["x-ratelimit-remaining"], left);
        assert_eq!(r.headers()["x-ratelimit-limit"], "3");
    }
    let r = call(&c, Method::GET, &url, &t, None).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    let reset: u64 = r.headers()["x-ratelimit-reset"]
        .to_str()
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_default();
    assert!(
        reset > chrono::Utc::now().timestamp() as u64 + 3_500,
        "{reset}"
    );
    assert!(json_of(r).await["message"]
        .as_str()
        .unwrap_or_default()
        .starts_with("API rate limit exceeded"));
    // GraphQL has its own budget.
    let r = c
        .post(gh.graphql_url())
        .bearer_auth(&t)
        .json(&json!({"query": "query OrgMembers { x }", "variables": {"org": "acme"}}))
        .send()
        .await
        .expect("answered");
    assert_eq!(r.headers()["x-ratelimit-resource"], "graphql");
    assert_eq!(r.headers()["x-ratelimit-remaining"], "2");

    // A window of one second resets.
    gh.set_rate_limit(1, Duration::from_secs(1));
    assert_eq!(
        call(&c, Method::GET, &url, &t, None).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        call(&c, Method::GET, &url, &t, None).await.status(),
        StatusCode::FORBIDDEN
    );
    tokio::time::sleep(Duration::from_millis(2_050)).await;
    assert_eq!(
        call(&c, Method::GET, &url, &t, None).await.status(),
        StatusCode::OK
    );
    gh.set_rate_limit(5_000, Duration::from_secs(3_600));

    gh.fail_next(2, 503);
    gh.fail_matching("/teams", 1, 502);
    assert_eq!(
        call(&c, Method::GET, &url, &t, None).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        call(&c, Method::GET, &url, &t, None).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        call(&c, Method::GET, &url, &t, None).await.status(),
        StatusCode::OK
    );
    let teams = format!("{}/orgs/acme/teams", gh.url());
    assert_eq!(
        call(&c, Method::GET, &teams, &t, None).await.status(),
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(
        call(&c, Method::GET, &teams, &t, None).await.status(),
        StatusCode::OK
    );

    gh.set_latency(Duration::from_millis(150));
    let started = Instant::now();
    assert_eq!(
        call(&c, Method::GET, &url, &t, None).await.status(),
        StatusCode::OK
    );
    assert!(started.elapsed() >= Duration::from_millis(150));
    gh.set_latency(Duration::ZERO);

    for auth in [None, Some("Bearer ghp_nope"), Some("Basic abc")] {
        let mut rb = c.get(&url);
        if let Some(a) = auth {
            rb = rb.header("authorization", a);
        }
        let r = rb.send().await.expect("answered");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(json_of(r).await["message"], "Bad credentials");
    }
    let r = c
        .get(&url)
        .header("authorization", format!("token {t}"))
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), StatusCode::OK, "the `token` scheme works too");
    assert_eq!(gh.requests().last().map(|r| r.status), Some(200));
}

#[tokio::test]
async fn installation_tokens_check_the_jwt_and_expire() {
    let gh = standin();
    gh.world(|w| {
        w.org("acme");
    });
    gh.set_app(42, 7);
    gh.set_installation_token_ttl(Duration::from_millis(500));
    let c = client();
    let issue = |jwt: String, inst: u64| {
        c.post(format!(
            "{}/app/installations/{inst}/access_tokens",
            gh.url()
        ))
        .bearer_auth(jwt)
        .header("accept", "application/json")
        .send()
    };
    assert_eq!(
        issue(jwt(41, 300), 7).await.expect("answered").status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        issue(jwt(42, -10), 7).await.expect("answered").status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        issue(jwt(42, 3_600), 7).await.expect("answered").status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        issue("not-a-jwt".into(), 7)
            .await
            .expect("answered")
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        issue(jwt(42, 300), 8).await.expect("answered").status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(gh.installation_tokens_issued(), 0);

    let r = issue(jwt(42, 300), 7).await.expect("answered");
    assert_eq!(r.status(), StatusCode::CREATED);
    let body = json_of(r).await;
    let token = body["token"].as_str().unwrap_or_default().to_owned();
    let expires =
        chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap_or_default())
            .expect("rfc3339");
    assert!(expires.timestamp() <= chrono::Utc::now().timestamp() + 1);
    let url = format!("{}/orgs/acme", gh.url());
    assert_eq!(
        call(&c, Method::GET, &url, &token, None).await.status(),
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        call(&c, Method::GET, &url, &token, None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(gh.installation_tokens_issued(), 1);
}

const QUERIES: &str = r#"
query OrgMembers($org: String!, $after: String) {
  organization(login: $org) {
    membersWithRole(first: 100, after: $after) {
      pageInfo { hasNextPage endCursor }
      edges { role node { login databaseId id } }
    }
  }
}
query OrgTeams($org: String!, $after: String) {
  organization(login: $org) {
    teams(first: 100, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes {
        slug
        members(first: 100, membership: IMMEDIATE) {
          pageInfo { hasNextPage endCursor }
          edges { role node { login databaseId id } }
        }
      }
    }
  }
}
query TeamMembers($org: String!, $slug: String!, $after: String) {
  organization(login: $org) {
    team(slug: $slug) {
      members(first: 100, after: $after, membership: IMMEDIATE) {
        pageInfo { hasNextPage endCursor }
        edges { role node { login databaseId id } }
      }
    }
  }
}
query OrgRepositories($org: String!, $after: String) {
  organization(login: $org) {
    repositories(first: 100, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes {
        name
        collaborators(first: 100, affiliation: DIRECT) {
          pageInfo { hasNextPage endCursor }
          edges { permission node { login databaseId id } }
        }
      }
    }
  }
}
query RepositoryCollaborators($org: String!, $name: String!, $after: String) {
  repository(owner: $org, name: $name) {
    collaborators(first: 100, after: $after, affiliation: DIRECT) {
      pageInfo { hasNextPage endCursor }
      edges { permission node { login databaseId id } }
    }
  }
}
query SamlIdentities($org: String!, $userName: String, $login: String, $after: String) {
  organization(login: $org) {
    samlIdentityProvider {
      externalIdentities(first: 100, after: $after, userName: $userName, login: $login) {
        pageInfo { hasNextPage endCursor }
        edges {
          node {
            samlIdentity { nameId emails { value } }
            scimIdentity { username emails { value } }
            user { login databaseId }
          }
        }
      }
    }
  }
}
"#;

/// The connector's six queries, one document each
fn queries() -> Vec<String> {
    QUERIES
        .split("\nquery ")
        .filter(|q| !q.trim().is_empty())
        .map(|q| format!("query {}", q.trim().trim_start_matches("query ")))
        .collect()
}

fn query(name: &str) -> String {
    queries()
        .into_iter()
        .find(|q| q.starts_with(&format!("query {name}(")))
        .unwrap_or_default()
}

async fn graphql(c: &Client, gh: &GithubStandin, name: &str, variables: Value) -> Value {
    let r = c
        .post(gh.graphql_url())
        .bearer_auth(gh.token())
        .json(&json!({ "query": query(name), "variables": variables }))
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), StatusCode::OK);
    json_of(r).await
}

#[tokio::test]
async fn graphql_pages_every_connection_including_nested_ones() {
    let gh = standin();
    gh.world(|w| {
        w.user("user000", 100)
            .and_then(|w| w.user("outsider", 101))
            .expect("free logins and ids");
        let o = w.org("acme");
        for i in 0..150 {
            o.member(
                &format!("user{i:03}"),
                if i == 0 { Role::Admin } else { Role::Member },
            );
        }
        let t = o.team("everyone");
        for i in 0..120 {
            t.member(&format!("user{i:03}"));
        }
        o.team("small").maintainer("user000");
        let r = o.repo("mono");
        for i in 0..130 {
            r.collaborator(&format!("user{i:03}"), Permission::Push);
        }
        o.repo("tiny").collaborator("outsider", Permission::Admin);
    });
    let c = client();

    // OrgMembers: 150 over two pages.
    let p1 = graphql(&c, &gh, "OrgMembers", json!({"org": "acme", "after": null})).await;
    let conn = &p1["data"]["organization"]["membersWithRole"];
    assert_eq!(conn["edges"].as_array().map(Vec::len), Some(100));
    assert_eq!(conn["pageInfo"]["hasNextPage"], true);
    // Users carry their durable id (databaseId) and global node id.
    let user000 = json!({"login": "user000", "databaseId": 100, "id": "MDQ6VXNlcjEwMA=="});
    assert_eq!(conn["edges"][0], json!({"role": "ADMIN", "node": user000}));
    let p2 = graphql(
        &c,
        &gh,
        "OrgMembers",
        json!({"org": "acme", "after": conn["pageInfo"]["endCursor"]}),
    )
    .await;
    let conn2 = &p2["data"]["organization"]["membersWithRole"];
    assert_eq!(conn2["edges"].as_array().map(Vec::len), Some(50));
    assert_eq!(conn2["pageInfo"]["hasNextPage"], false);
    assert_eq!(conn2["edges"][0]["node"]["login"], "user100");

    // OrgTeams: the nested members connection says there is more.
    let teams = graphql(&c, &gh, "OrgTeams", json!({"org": "acme"})).await;
    let nodes = &teams["data"]["organization"]["teams"]["nodes"];
    assert_eq!(nodes[0]["slug"], "everyone");
    assert_eq!(nodes[0]["members"]["pageInfo"]["hasNextPage"], true);
    assert_eq!(
        nodes[1]["members"]["edges"][0],
        json!({"role": "MAINTAINER", "node": user000})
    );
    let cursor = nodes[0]["members"]["pageInfo"]["endCursor"].clone();
    let rest = graphql(
        &c,
        &gh,
        "TeamMembers",
        json!({"org": "acme", "slug": "everyone", "after": cursor}),
    )
    .await;
    let members = &rest["data"]["organization"]["team"]["members"];
    assert_eq!(members["edges"].as_array().map(Vec::len), Some(20));
    assert_eq!(members["pageInfo"]["hasNextPage"], false);
    let gone = graphql(
        &c,
        &gh,
        "TeamMembers",
        json!({"org": "acme", "slug": "gone"}),
    )
    .await;
    assert_eq!(gone["data"]["organization"]["team"], Value::Null);

    // OrgRepositories and the follow-up RepositoryCollaborators.
    let repos = graphql(&c, &gh, "OrgRepositories", json!({"org": "acme"})).await;
    let nodes = &repos["data"]["organization"]["repositories"]["nodes"];
    assert_eq!(nodes[0]["name"], "mono");
    assert_eq!(nodes[0]["collaborators"]["pageInfo"]["hasNextPage"], true);
    assert_eq!(
        nodes[1]["collaborators"]["edges"][0],
        json!({"permission": "ADMIN", "node": {"login": "outsider", "databaseId": 101, "id": "MDQ6VXNlcjEwMQ=="}})
    );
    let cursor = nodes[0]["collaborators"]["pageInfo"]["endCursor"].clone();
    let rest = graphql(
        &c,
        &gh,
        "RepositoryCollaborators",
        json!({"org": "acme", "name": "mono", "after": cursor}),
    )
    .await;
    let collaborators = &rest["data"]["repository"]["collaborators"];
    assert_eq!(collaborators["edges"].as_array().map(Vec::len), Some(30));
    assert_eq!(collaborators["edges"][0]["permission"], "WRITE");
    let missing = graphql(
        &c,
        &gh,
        "RepositoryCollaborators",
        json!({"org": "acme", "name": "nope"}),
    )
    .await;
    assert_eq!(missing["data"]["repository"], Value::Null);
    assert_eq!(missing["errors"][0]["type"], "NOT_FOUND");

    // SAML: null without identities, then filtered by NameID.
    let none = graphql(
        &c,
        &gh,
        "SamlIdentities",
        json!({"org": "acme", "userName": null}),
    )
    .await;
    assert_eq!(
        none["data"]["organization"]["samlIdentityProvider"],
        Value::Null
    );
    let (one_id, two_id) = gh.world(|w| {
        w.org("acme")
            .saml_identity("user001", "one@example.com")
            .saml_identity("user002", "two@example.com")
            .scim_identity("user002", "two");
        (w.user_id("user001"), w.user_id("user002"))
    });
    let one = graphql(
        &c,
        &gh,
        "SamlIdentities",
        json!({"org": "acme", "userName": "one@example.com"}),
    )
    .await;
    assert_eq!(
        one["data"]["organization"]["samlIdentityProvider"]["externalIdentities"]["edges"],
        json!([{"node": {
            "samlIdentity": {"nameId": "one@example.com", "emails": [{"value": "one@example.com"}]},
            "scimIdentity": null,
            "user": {"login": "user001", "databaseId": one_id},
        }}])
    );
    // Filtered by the linked user's login, with the SCIM identity where there is one.
    let two = graphql(
        &c,
        &gh,
        "SamlIdentities",
        json!({"org": "acme", "login": "USER002"}),
    )
    .await;
    assert_eq!(
        two["data"]["organization"]["samlIdentityProvider"]["externalIdentities"]["edges"],
        json!([{"node": {
            "samlIdentity": {"nameId": "two@example.com", "emails": [{"value": "two@example.com"}]},
            "scimIdentity": {"username": "two", "emails": [{"value": "two@example.com"}]},
            "user": {"login": "user002", "databaseId": two_id},
        }}])
    );

    // Unknown org, unknown operation, a cursor we did not issue.
    let unknown = graphql(&c, &gh, "OrgMembers", json!({"org": "x"})).await;
    assert_eq!(
        unknown,
        json!({"data": {"organization": null}, "errors": [{"type": "NOT_FOUND", "path": ["organization"], "locations": [{"line": 2, "column": 3}], "message": "Could not resolve to an Organization with the login of 'x'."}]})
    );
    let r = c
        .post(gh.graphql_url())
        .bearer_auth(gh.token())
        .json(&json!({"query": "query Viewer { viewer { login } }"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(json_of(r).await["errors"][0]["message"].is_string());
    let bad = graphql(
        &c,
        &gh,
        "OrgMembers",
        json!({"org": "acme", "after": "bm9wZQ=="}),
    )
    .await;
    assert!(bad["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("valid cursor"));

    // GHES endpoint.
    let r = c
        .post(format!("{}/api/graphql", gh.url()))
        .bearer_auth(gh.token())
        .json(&json!({"query": query("OrgMembers"), "variables": {"org": "acme"}}))
        .send()
        .await
        .expect("answered");
    assert_eq!(
        json_of(r).await["data"]["organization"]["membersWithRole"]["edges"]
            .as_array()
            .map(Vec::len),
        Some(100)
    );

    let docs = gh.graphql_documents();
    assert_eq!(
        docs.len(),
        7,
        "distinct documents: the six queries and the unknown one"
    );
    validate_graphql(&docs[..6])
        .expect("the connector's queries are valid against GitHub's schema");
}

#[test]
fn validate_graphql_accepts_the_connector_queries_and_rejects_a_wrong_one() {
    let qs = queries();
    assert_eq!(qs.len(), 6);
    validate_graphql(&qs).expect("the six queries are valid");
    let wrong = query("OrgMembers").replace(
        "edges { role node { login databaseId id } }",
        "edges { role node { login emailAddress } }",
    );
    match validate_graphql(&[wrong]) {
        Err(TestkitError::GraphqlInvalid { errors }) => {
            assert!(
                errors.contains("OrgMembers: Cannot query field \"emailAddress\" on type \"User\""),
                "{errors}"
            );
        }
        other => panic!("expected GraphqlInvalid, got {other:?}"),
    }
}

#[tokio::test]
async fn a_big_world_is_seeded_and_served_quickly() {
    let started = Instant::now();
    let gh = standin();
    gh.world(|w| {
        let o = w.org("big");
        for i in 0..1_000 {
            o.member(&format!("user{i:04}"), Role::Member);
        }
        for i in 0..2_000 {
            let r = o.repo(&format!("repo-{i:04}"));
            r.collaborator(&format!("user{:04}", i % 1_000), Permission::Push);
            r.collaborator(&format!("contractor{:03}", i % 200), Permission::Pull);
        }
        for i in 0..50 {
            let t = o.team(&format!("team-{i:02}"));
            for j in 0..20 {
                t.member(&format!("user{:04}", i * 20 + j));
            }
        }
    });
    let seeded = started.elapsed();
    let c = client();
    let mut after = Value::Null;
    let mut repos = 0;
    loop {
        let page = graphql(
            &c,
            &gh,
            "OrgRepositories",
            json!({"org": "big", "after": after}),
        )
        .await;
        let conn = &page["data"]["organization"]["repositories"];
        repos += conn["nodes"].as_array().map(Vec::len).unwrap_or_default();
        if conn["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = conn["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(repos, 2_000);
    let r = call(
        &c,
        Method::GET,
        &format!("{}/orgs/big/outside_collaborators?per_page=100", gh.url()),
        &gh.token(),
        None,
    )
    .await;
    assert!(r.headers()["link"]
        .to_str()
        .unwrap_or_default()
        .contains("page=2>; rel=\"last\""));
    let r = call(
        &c,
        Method::GET,
        &format!("{}/orgs/big/repos?per_page=100&page=20", gh.url()),
        &gh.token(),
        None,
    )
    .await;
    assert_eq!(json_of(r).await.as_array().map(Vec::len), Some(100));
    assert!(seeded < Duration::from_secs(2), "seeding took {seeded:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "all took {:?}",
        started.elapsed()
    );
}
