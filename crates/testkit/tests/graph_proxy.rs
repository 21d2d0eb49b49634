//! The Graph validating proxy itself, in front of a tiny axum upstream that answers what each
//! test needs: it must report a bad request body, a wrong answer shape, an unknown path and a bad
//! batch part, allow (and log) the `@odata.type` quirk, and pass a good call clean

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use reqwest::{Client, Method};
use revoke_testkit::{GraphProxy, GraphViolation};
use serde_json::{json, Value};

const USER: &str = "6e7b768e-07e2-4810-8459-485f84f8f204";

/// The upstream's own origin, for the nextLink it writes
#[derive(Clone)]
struct Up {
    origin: String,
}

/// A user as real Graph answers it: no `@odata.type` (the type is the declared one), none on the
/// complex-type items either, though the description marks it required on every object
fn user(id: &str) -> Value {
    json!({"id": id, "accountEnabled": true, "userPrincipalName": "ada@example.com",
           "assignedLicenses": [{"skuId": "c7df2760-2c81-4ef7-b578-5b5392b571df", "disabledPlans": []}]})
}

fn error(status: StatusCode, code: &str) -> Response {
    let body = json!({"error": {"code": code, "message": "from the test upstream",
                                "innerError": {"request-id": "r1", "date": "2026-12-05T14:00:00"}}});
    (status, Json(body)).into_response()
}

async fn get_user(Path(id): Path<String>) -> Response {
    match id.as_str() {
        // accountEnabled as a string: the description says boolean
        "badshape" => Json(json!({"@odata.type": "#microsoft.graph.user", "id": id,
                                  "accountEnabled": "yes"}))
        .into_response(),
        "gone" => error(StatusCode::NOT_FOUND, "Request_ResourceNotFound"),
        _ => Json(user(&id)).into_response(),
    }
}

async fn patch_user(Path(id): Path<String>) -> Response {
    if id == "patch200" {
        // A 200 with a wrong body: the 204 allowance must not cover it
        return Json(json!({"accountEnabled": "no"})).into_response();
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn member_of(State(up): State<Up>, Path(id): Path<String>) -> Json<Value> {
    if id == "untyped" {
        // Graph always names the derived type of a directoryObject: its absence is a violation.
        // And a user is no type memberOf holds.
        return Json(json!({"value": [
            {"id": "g1", "displayName": "Sales"},
            {"@odata.type": "#microsoft.graph.user", "id": "u9"}
        ]}));
    }
    Json(json!({
        "value": [
            {"@odata.type": "#microsoft.graph.group", "id": "g1", "displayName": "Sales",
             "groupTypes": ["Unified"], "mailEnabled": true, "securityEnabled": false,
             "onPremisesSyncEnabled": null, "membershipRule": null},
            {"@odata.type": "#microsoft.graph.directoryRole", "id": "r1", "displayName": "Helpdesk"}
        ],
        "@odata.nextLink": format!("{}/v1.0/users/{id}/memberOf?$skiptoken=p2", up.origin)
    }))
}

/// A phone method (in the description), a platform credential (a v1.0 type the snapshot predates)
/// and a type Graph does not have
async fn methods() -> Json<Value> {
    Json(json!({"value": [
        {"@odata.type": "#microsoft.graph.phoneAuthenticationMethod", "id": "m1",
         "phoneNumber": "+1 2065555555", "phoneType": "mobile", "smsSignInState": "notSupported"},
        {"@odata.type": "#microsoft.graph.platformCredentialAuthenticationMethod", "id": "m2"},
        {"@odata.type": "#microsoft.graph.carrierPigeonAuthenticationMethod", "id": "m3"}
    ]}))
}

async fn revoke() -> Json<Value> {
    Json(
        json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean",
                "value": true}),
    )
}

/// Answers each part: a user for /users/{id}, with a bad shape when the id says so
async fn batch(body: Bytes) -> Response {
    let doc: Value = serde_json::from_slice(&body).unwrap_or_default();
    let mut responses = Vec::new();
    for r in doc["requests"].as_array().cloned().unwrap_or_default() {
        let url = r["url"].as_str().unwrap_or_default();
        let id = url
            .trim_start_matches('/')
            .split(['/', '?'])
            .nth(1)
            .unwrap_or_default();
        let body = if id == "badshape" {
            json!({"@odata.type": "#microsoft.graph.user", "id": id, "accountEnabled": 1})
        } else {
            user(id)
        };
        responses.push(json!({"id": r["id"], "status": 200,
                              "headers": {"Content-Type": "application/json"}, "body": body}));
    }
    responses.reverse(); // Graph answers parts in any order
    Json(json!({ "responses": responses })).into_response()
}

async fn token() -> Json<Value> {
    Json(json!({"token_type": "Bearer", "expires_in": 3599, "access_token": "t0"}))
}

async fn fallback() -> Response {
    error(StatusCode::NOT_FOUND, "Request_ResourceNotFound")
}

/// The upstream on a free port and the proxy in front of it
async fn setup() -> (GraphProxy, Client) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let app = Router::new()
        .route("/v1.0/users/{id}", get(get_user).patch(patch_user))
        .route("/v1.0/users/{id}/memberOf", get(member_of))
        .route("/v1.0/users/{id}/authentication/methods", get(methods))
        .route(
            "/v1.0/users/{id}/microsoft.graph.revokeSignInSessions",
            post(revoke),
        )
        .route("/v1.0/$batch", post(batch))
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .fallback(fallback)
        .with_state(Up {
            origin: origin.clone(),
        });
    tokio::spawn(async move { axum::serve(listener, app).await });
    let upstream = format!("{origin}/v1.0");
    let began = Instant::now();
    let proxy = tokio::task::spawn_blocking(move || GraphProxy::start(&upstream))
        .await
        .expect("join")
        .expect("graph_proxy should start");
    eprintln!(
        "graph_proxy ready in {:?} (start() says {:?})",
        began.elapsed(),
        proxy.startup()
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    (proxy, Client::new())
}

async fn send(c: &Client, p: &GraphProxy, method: Method, path: &str, body: Option<Value>) -> u16 {
    let mut rb = c.request(method, format!("{}{path}", p.base_url()));
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    rb.send().await.expect("answered").status().as_u16()
}

fn report(p: &GraphProxy) -> (Vec<GraphViolation>, Vec<GraphViolation>) {
    let r = p.report().expect("the proxy's report");
    (r.violations, r.allowed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_calls_pass_clean_and_the_odata_type_quirk_is_allowed_and_logged() {
    let (p, c) = setup().await;
    let sel = "$select=id,userPrincipalName,accountEnabled,licenseAssignmentStates";
    assert_eq!(
        send(&c, &p, Method::GET, &format!("/users/{USER}?{sel}"), None).await,
        200
    );
    assert_eq!(send(&c, &p, Method::GET, "/users/gone", None).await, 404);
    let patch = json!({"accountEnabled": false});
    assert_eq!(
        send(
            &c,
            &p,
            Method::PATCH,
            &format!("/users/{USER}"),
            Some(patch)
        )
        .await,
        204
    );
    let revoke = format!("/users/{USER}/microsoft.graph.revokeSignInSessions");
    assert_eq!(send(&c, &p, Method::POST, &revoke, None).await, 200);
    let member_of = format!(
        "/users/{USER}/memberOf?$select=id,displayName,groupTypes,mailEnabled,securityEnabled,onPremisesSyncEnabled,membershipRule"
    );
    assert_eq!(send(&c, &p, Method::GET, &member_of, None).await, 200);
    p.assert_clean();
    let (_, allowed) = report(&p);
    let rules: Vec<&str> = allowed
        .iter()
        .filter_map(|a| a.message.split(']').next())
        .collect();
    assert!(
        rules.contains(&"[odata-type-in-request-body"),
        "expected the PATCH body's missing @odata.type allowed by its rule, found {allowed:?}"
    );
    assert!(
        rules.contains(&"[no-content-under-2XX"),
        "expected PATCH's 204 allowed by its rule, found {allowed:?}"
    );
    assert!(
        rules.contains(&"[select-of-derived-type"),
        "expected memberOf's group $select allowed by its rule, found {allowed:?}"
    );
    assert!(
        rules.contains(&"[odata-type-in-answer"),
        "expected the untyped user answers allowed by their rule, found {allowed:?}"
    );
    assert!(
        allowed.iter().all(|a| a.message.starts_with('[')),
        "every allowance names its rule: {allowed:?}"
    );
    let log = p.log();
    assert!(
        log.contains("allowed: PATCH") && log.contains("odata-type-in-request-body"),
        "expected the allowance in the proxy's log, found: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_request_body_is_reported_and_fails_assert_clean() {
    let (p, c) = setup().await;
    let bad = json!({"accountEnabled": "no"});
    // Recorded, not refused: the upstream still answers.
    assert_eq!(
        send(&c, &p, Method::PATCH, &format!("/users/{USER}"), Some(bad)).await,
        204
    );
    let (violations, _) = report(&p);
    assert!(
        violations.iter().any(|v| v.location == "request.body"
            && v.message.contains("accountEnabled")
            && v.message.contains("boolean")),
        "expected the string accountEnabled reported, found {violations:?}"
    );
    // The missing @odata.type of the same body is still only an allowance, not a second violation.
    assert_eq!(violations.len(), 1, "{violations:?}");
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.assert_clean()));
    let msg = panicked
        .expect_err("assert_clean should fail on a violation")
        .downcast::<String>()
        .map(|s| *s)
        .unwrap_or_default();
    assert!(msg.contains("accountEnabled"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_answer_shape_and_an_untyped_member_are_reported() {
    let (p, c) = setup().await;
    assert_eq!(
        send(&c, &p, Method::GET, "/users/badshape", None).await,
        200
    );
    assert_eq!(
        send(&c, &p, Method::GET, "/users/untyped/memberOf", None).await,
        200
    );
    let patch = json!({"accountEnabled": false});
    assert_eq!(
        send(&c, &p, Method::PATCH, "/users/patch200", Some(patch)).await,
        200
    );
    assert_eq!(
        send(
            &c,
            &p,
            Method::GET,
            &format!("/users/{USER}/authentication/methods"),
            None
        )
        .await,
        200
    );
    let (violations, allowed) = report(&p);
    assert!(
        violations.iter().any(|v| v.path == "/v1.0/users/badshape"
            && v.location == "response.body"
            && v.status == 200
            && v.message.contains("boolean")),
        "expected the string accountEnabled of the answer reported, found {violations:?}"
    );
    assert!(
        violations
            .iter()
            .any(|v| v.path == "/v1.0/users/untyped/memberOf"
                && v.message
                    .starts_with("$.value[0]: '@odata.type' is required")),
        "expected a memberOf object without @odata.type reported, found {violations:?}"
    );
    assert!(
        violations.iter().any(|v| v.path == "/v1.0/users/patch200"
            && v.status == 200
            && v.location == "response.body"
            && v.message.contains("boolean")),
        "expected PATCH's 200 with a wrong body reported (the 204 allowance is for 204s only), found {violations:?}"
    );
    assert!(
        violations
            .iter()
            .any(|v| v.path == "/v1.0/users/untyped/memberOf"
                && v.message
                    .starts_with("$.value[1]: '@odata.type' '#microsoft.graph.user' is no type")),
        "expected a user in memberOf reported, found {violations:?}"
    );
    assert!(
        violations
            .iter()
            .any(|v| v.path.ends_with("/authentication/methods")
                && v.message
                    .starts_with("$.value[2]: '@odata.type' '#microsoft.graph.carrierPigeon")),
        "expected a method type Graph does not have reported, found {violations:?}"
    );
    assert_eq!(
        violations.len(),
        5,
        "only those (the phone method and the platform credential pass): {violations:?}"
    );
    assert!(
        !allowed.iter().any(|a| a.path.ends_with("/memberOf")),
        "a violation is not also an allowance: {allowed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_methods_and_select_values_are_reported() {
    let (p, c) = setup().await;
    send(
        &c,
        &p,
        Method::GET,
        &format!("/users/{USER}/mailFolders"),
        None,
    )
    .await;
    send(
        &c,
        &p,
        Method::DELETE,
        &format!("/users/{USER}/memberOf"),
        None,
    )
    .await;
    send(
        &c,
        &p,
        Method::GET,
        &format!("/users/{USER}?$select=id,nosuch"),
        None,
    )
    .await;
    // A misspelt system query option, and a body sent without its Content-Type
    send(
        &c,
        &p,
        Method::GET,
        &format!("/users/{USER}?$selct=id"),
        None,
    )
    .await;
    let r = c
        .patch(format!("{}/users/{USER}", p.base_url()))
        .body(r#"{"accountEnabled":false}"#)
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status().as_u16(), 204);
    // memberOf: a value that is a property of no type memberOf holds
    let sel = "$select=id,displayName,groupTypes,nosuchproperty";
    send(
        &c,
        &p,
        Method::GET,
        &format!("/users/{USER}/memberOf?{sel}"),
        None,
    )
    .await;
    // A group property where only device ones are allowed
    send(
        &c,
        &p,
        Method::GET,
        &format!("/users/{USER}/ownedDevices?$select=groupTypes"),
        None,
    )
    .await;
    let (violations, _) = report(&p);
    let at = |path: &str, location: &str| {
        violations
            .iter()
            .any(|v| v.path.ends_with(path) && v.location == location)
    };
    assert!(at("/mailFolders", "request.path"), "{violations:?}");
    assert!(at("/memberOf", "request.path"), "{violations:?}");
    assert!(at("nosuch", "request.parameters.$select"), "{violations:?}");
    assert!(
        at("$selct=id", "request.parameters.$selct"),
        "{violations:?}"
    );
    assert!(
        violations
            .iter()
            .any(|v| v.method == "PATCH" && v.location == "request.headers.Content-Type"),
        "{violations:?}"
    );
    assert!(
        violations.iter().any(|v| v.path.contains("/memberOf?")
            && v.location == "request.parameters.$select"
            && v.message.contains("nosuchproperty")
            && !v.message.contains("groupTypes")),
        "expected the unknown memberOf $select value reported, found {violations:?}"
    );
    assert!(
        !violations
            .iter()
            .any(|v| v.path.contains("/memberOf?") && v.message.contains("groupTypes")),
        "groupTypes is a group property, allowed on memberOf: {violations:?}"
    );
    assert!(
        at("select=groupTypes", "request.parameters.$select"),
        "{violations:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_parts_are_checked_against_their_own_paths() {
    let (p, c) = setup().await;
    let good = json!({"requests": [
        {"id": "1", "method": "GET", "url": format!("/users/{USER}?$select=id,accountEnabled")},
        {"id": "2", "method": "PATCH", "url": format!("/users/{USER}"),
         "headers": {"Content-Type": "application/json"}, "body": {"accountEnabled": false}},
    ]});
    assert_eq!(send(&c, &p, Method::POST, "/$batch", Some(good)).await, 200);
    p.assert_clean();
    p.reset().expect("reset");
    let bad = json!({"requests": [
        {"id": "1", "method": "GET", "url": "/users/badshape"},
        {"id": "2", "method": "GET", "url": format!("/users/{USER}/nosuch")},
        {"id": "3", "method": "PATCH", "url": format!("/users/{USER}"), "body": {"accountEnabled": "no"},
         "dependsOn": ["9"]},
    ]});
    assert_eq!(send(&c, &p, Method::POST, "/$batch", Some(bad)).await, 200);
    let (violations, _) = report(&p);
    let has = |path: &str, location: &str, text: &str| {
        violations.iter().any(|v| {
            v.path.contains(path) && v.location.starts_with(location) && v.message.contains(text)
        })
    };
    assert!(
        has("[1] GET /users/badshape", "response.body", "integer")
            || has("[1] GET /users/badshape", "response.body", "boolean"),
        "{violations:?}"
    );
    assert!(has("[2] GET", "request.path", "nosuch"), "{violations:?}");
    assert!(
        has("$batch", "request.body.requests[2].dependsOn", "['9']"),
        "{violations:?}"
    );
    assert!(
        has("[3] PATCH", "request.body", "boolean"),
        "{violations:?}"
    );
    assert!(
        has(
            "[3] PATCH",
            "request.headers.Content-Type",
            "without a Content-Type"
        ),
        "{violations:?}"
    );
    p.reset().expect("reset");
    let parts: Vec<Value> = (1..=21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": format!("/users/u{i}")}))
        .collect();
    send(
        &c,
        &p,
        Method::POST,
        "/$batch",
        Some(json!({ "requests": parts })),
    )
    .await;
    let (violations, _) = report(&p);
    assert!(
        violations
            .iter()
            .any(|v| v.message.contains("1 to 20 requests, found 21")),
        "{violations:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_passes_through_and_next_links_point_at_the_proxy() {
    let (p, c) = setup().await;
    let r = c
        .post(format!("{}/tenant-1/oauth2/v2.0/token", p.origin()))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&client_id=c&client_secret=s")
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status().as_u16(), 200);
    let page: Value = c
        .get(format!("{}/users/{USER}/memberOf", p.base_url()))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    let next = page["@odata.nextLink"].as_str().unwrap_or_default();
    assert!(
        next.starts_with(&format!("{}/users/{USER}/memberOf?", p.base_url())),
        "expected the nextLink rewritten to the proxy {}, found {next}",
        p.base_url()
    );
    // Following it stays behind the proxy (and is checked: $skiptoken is no declared parameter,
    // which OpenAPI lets pass).
    let status = c
        .get(next)
        .send()
        .await
        .expect("answered")
        .status()
        .as_u16();
    assert_eq!(status, 200);
    let r = p.report().expect("report");
    assert_eq!(
        r.passthrough,
        vec!["POST /tenant-1/oauth2/v2.0/token -> 200".to_owned()]
    );
    assert_eq!(r.calls, 2, "the token call is not a checked Graph call");
    p.assert_clean();
}

#[test]
fn a_proxy_that_cannot_start_says_why() {
    let missing = std::path::Path::new("/nonexistent/graph.json");
    let err = GraphProxy::start_with_spec(missing, "http://127.0.0.1:9/v1.0")
        .expect_err("a missing description should stop the proxy");
    let msg = err.to_string();
    assert!(
        msg.contains("graph_proxy") && msg.contains("/nonexistent/graph.json"),
        "expected the proxy's own error (its log) in: {msg}"
    );
}
