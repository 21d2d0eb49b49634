//! The OneLogin stand-in itself: OneLogin's own Python SDK drives it (so its shapes are what
//! OneLogin's client expects), then the knobs: rate budget, token expiry, pagination, the batch
//! role call, error bodies

use std::process::Command;
use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use revoke_testkit::moto::python_dir;
use revoke_testkit::onelogin::{status, OneloginStandin};
use serde_json::{json, Value};

fn standin() -> OneloginStandin {
    OneloginStandin::start().expect("the onelogin stand-in should start")
}

fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder()
        .build()
        .expect("building a reqwest client should work")
}

async fn token(c: &Client, ol: &OneloginStandin) -> String {
    let (id, secret) = ol.credentials();
    let r = c
        .post(format!("{}/auth/oauth2/v2/token", ol.url()))
        .basic_auth(id, Some(secret))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .expect("token call answered");
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    v["access_token"].as_str().expect("access_token").to_owned()
}

async fn call(
    c: &Client,
    ol: &OneloginStandin,
    t: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut rb = c
        .request(method, format!("{}{path}", ol.url()))
        .bearer_auth(t);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    rb.send().await.expect("answered")
}

#[test]
fn onelogins_python_sdk_gets_a_token_lists_reads_and_removes_role_users() {
    let python = python_dir().join(".venv/bin/python");
    assert!(
        python.exists(),
        "expected {} (run: tests/python/.venv/bin/pip install -r tests/python/requirements.txt)",
        python.display()
    );
    let ol = standin();
    let (alice, bob, admins) = ol.world(|w| {
        let alice = w.user("alice.smith@example.com", "alice");
        let bob = w.user("bob.jones@example.com", "bob");
        let admins = w.role("Admins");
        w.role("Engineering");
        w.assign(admins, alice);
        w.assign(admins, bob);
        (alice, bob, admins)
    });
    let (id, secret) = ol.credentials();
    let out = Command::new(&python)
        .arg(python_dir().join("onelogin_check.py"))
        .args([
            ol.url().as_str(),
            &id,
            &secret,
            "alice.smith@example.com",
            "Admins",
        ])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "the SDK check failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).expect("the script prints JSON");
    assert_eq!(seen["expires_in"], 36_000);
    assert_eq!(seen["user"]["id"], alice);
    assert_eq!(seen["user"]["status"], 1);
    assert_eq!(seen["pagination"]["total-count"], "1");
    assert_eq!(seen["pagination"]["total-pages"], "1");
    assert_eq!(seen["rate_limit"]["x-ratelimit-limit"], "5000");
    assert_eq!(seen["role_ids"], json!([admins]));
    assert_eq!(seen["role"]["users"], json!([alice, bob]));
    assert_eq!(seen["role_users_before"], json!([alice, bob]));
    assert_eq!(seen["role_users_after"], json!([bob]));
    assert_eq!(seen["status_after_update"], status::SUSPENDED);
    assert_eq!(seen["logout"]["http"], 200);
    assert_eq!(seen["logout"]["body"]["status"]["code"], 200);
    assert_eq!(seen["after_delete"]["status"], 404);
    assert_eq!(seen["after_delete"]["body"]["name"], "NotFoundError");
    assert_eq!(seen["bad_token"], 401);
    assert!(ol.user(alice).is_none());
    assert_eq!(ol.roles_of(bob), vec![admins]);

    // The SDK authenticates with basic auth and a JSON grant, and sends every call with the token.
    let reqs = ol.requests();
    assert_eq!(reqs[0].path, "/auth/oauth2/v2/token");
    assert_eq!(
        reqs[0].token.as_deref(),
        Some(format!("basic:{id}").as_str())
    );
    assert!(reqs[1..reqs.len() - 2]
        .iter()
        .all(|r| r.token == reqs[1].token && r.status < 300));
    let batch = reqs
        .iter()
        .find(|r| r.method == "DELETE" && r.path.ends_with("/users"))
        .expect("the batch call");
    assert_eq!(
        serde_json::from_str::<Value>(&batch.body).expect("json"),
        json!({ "user_id": [alice] })
    );
}

#[tokio::test]
async fn the_rate_budget_counts_down_then_refuses_with_429_until_the_window_resets() {
    let ol = standin();
    let c = client();
    let t = token(&c, &ol).await;
    ol.set_rate_limit(2, Duration::from_millis(1_500));
    let r = call(&c, &ol, &t, Method::GET, "/api/2/users", None).await;
    assert_eq!(r.headers()["x-ratelimit-limit"], "2");
    assert_eq!(r.headers()["x-ratelimit-remaining"], "1");
    assert_eq!(r.headers()["x-ratelimit-reset"], "2");
    let r = call(&c, &ol, &t, Method::GET, "/api/2/users", None).await;
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    let r = call(&c, &ol, &t, Method::GET, "/api/2/users", None).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["statusCode"], 429);
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let r = call(&c, &ol, &t, Method::GET, "/api/2/users", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-ratelimit-remaining"], "1");
}

#[tokio::test]
async fn tokens_expire_by_ttl_or_all_at_once_and_unknown_ones_are_401() {
    let ol = standin();
    let c = client();
    let t = token(&c, &ol).await;
    let r = call(&c, &ol, &t, Method::GET, "/api/2/roles", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    ol.expire_tokens_now();
    let r = call(&c, &ol, &t, Method::GET, "/api/2/roles", None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["statusCode"], 401);
    // v1 endpoints answer with v1's body
    let r = call(&c, &ol, &t, Method::PUT, "/api/1/users/1/logout", None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["status"]["message"], "Authentication Failure");

    ol.set_token_ttl(Duration::from_millis(300));
    let t = token(&c, &ol).await;
    assert_eq!(ol.tokens_issued(), 2);
    let r = call(&c, &ol, &t, Method::GET, "/api/2/roles", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let r = call(&c, &ol, &t, Method::GET, "/api/2/roles", None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A wrong secret gets no token.
    let (id, _) = ol.credentials();
    let r = c
        .post(format!("{}/auth/oauth2/v2/token", ol.url()))
        .basic_auth(id, Some("wrong"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn users_page_and_search_by_email_or_username_and_role_removal_is_one_call_for_many() {
    let ol = standin();
    let (role, ids) = ol.world(|w| {
        let role = w.role("Sales");
        let ids: Vec<u64> = (0..7)
            .map(|i| {
                let id = w.user(&format!("u{i}@example.com"), &format!("user{i}"));
                w.assign(role, id);
                id
            })
            .collect();
        (role, ids)
    });
    let c = client();
    let t = token(&c, &ol).await;
    let r = call(
        &c,
        &ol,
        &t,
        Method::GET,
        "/api/2/users?limit=3&page=3",
        None,
    )
    .await;
    assert_eq!(r.headers()["total-pages"], "3");
    assert_eq!(r.headers()["current-page"], "3");
    assert_eq!(r.headers()["total-count"], "7");
    assert_eq!(r.headers()["page-items"], "1");
    let r = call(
        &c,
        &ol,
        &t,
        Method::GET,
        "/api/2/users?username=USER3",
        None,
    )
    .await;
    let v: Value = r.json().await.expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(1));
    assert_eq!(v[0]["id"], ids[3]);
    assert!(v[0].get("role_ids").is_none(), "the list has no role ids");
    let r = call(
        &c,
        &ol,
        &t,
        Method::GET,
        "/api/2/users?email=*%40example.com",
        None,
    )
    .await;
    let v: Value = r.json().await.expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(7));

    let path = format!("/api/2/roles/{role}/users");
    let r = call(
        &c,
        &ol,
        &t,
        Method::DELETE,
        &path,
        Some(json!([ids[0], ids[1], ids[2], 999])),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(ol.world(|w| w.role_users(role)), ids[3..].to_vec());
    let r = call(
        &c,
        &ol,
        &t,
        Method::DELETE,
        "/api/2/roles/1/users",
        Some(json!([1])),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = call(&c, &ol, &t, Method::DELETE, &path, Some(json!("x"))).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = call(
        &c,
        &ol,
        &t,
        Method::PUT,
        &format!("/api/2/users/{}", ids[4]),
        Some(json!({"status": 6})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = call(&c, &ol, &t, Method::GET, "/api/2/users/..%2Fx", None).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(ol.mutations().len(), 4);
}
