//! A definition of kind = "http" through revoked's own config layer, planner, executor and
//! SQLite store, against scim2-server behind a small counting proxy of ours: the definition is
//! written inline in revoked.toml (its camelCase keys survive the config layer), a protected
//! account named by its username is left out while the person's own account is not, and a run
//! dies while the proxy holds the answer to a deactivation the server already made (its runtime
//! dropped, as a kill -9 leaves it: its lease held, nothing recorded); a second executor takes
//! over once the lease is over and converges with no write twice (its retry reads by id first);
//! a third run sends nothing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use revoke_connector_http::HttpFactory;
use revoke_core::{Job, PlanId, Subject};
use revoke_engine::{plan, Executor, Registry};
use revoke_testkit::Scim2Server;
use serde_json::{json, Value};

const DEFINITION: &str = include_str!("fixtures/scim.toml");

#[derive(Debug, Default)]
struct ProxyState {
    upstream: String,
    /// Every request: "METHOD /path".
    seen: Mutex<Vec<String>>,
    /// Hold the answer to this request ("METHOD /path") once, after forwarding it.
    stall: Mutex<Option<String>>,
    released: AtomicBool,
}

type Shared = Arc<ProxyState>;

async fn forward(
    State(st): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let line = format!("{method} {}", uri.path());
    st.seen.lock().expect("seen").push(line.clone());
    let http = revoke_http::client(Duration::from_secs(30)).expect("client");
    let mut req = http.request(
        reqwest::Method::from_bytes(method.as_str().as_bytes()).expect("method"),
        format!(
            "{}{}",
            st.upstream,
            uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
        ),
    );
    for (k, v) in &headers {
        if k != "host" && k != "content-length" {
            req = req.header(k.as_str(), v.as_bytes());
        }
    }
    let r = req
        .body(body.to_vec())
        .send()
        .await
        .expect("upstream answers");
    let status = r.status().as_u16();
    let bytes = r.bytes().await.expect("body");
    let hold = {
        let mut s = st.stall.lock().expect("stall");
        if s.as_deref() == Some(line.as_str()) {
            *s = None;
            true
        } else {
            false
        }
    };
    if hold {
        while !st.released.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    (
        axum::http::StatusCode::from_u16(status).expect("status"),
        [("content-type", "application/scim+json")],
        bytes,
    )
        .into_response()
}

/// The proxy on its own thread and runtime (it must outlive the runtime the test drops).
fn proxy(upstream: String) -> (String, Shared) {
    let st: Shared = Arc::new(ProxyState {
        upstream,
        ..ProxyState::default()
    });
    let app = axum::Router::new().fallback(forward).with_state(st.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("proxy runtime");
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(listener).expect("listener");
            let _ = axum::serve(l, app).await;
        });
    });
    (format!("http://{addr}"), st)
}

/// The fixture as `[connectors.NAME]` of revoked.toml, with this server and token, no grace
/// period before the delete.
fn config_toml(name: &str, url: &str, token: &str, extra: &str) -> String {
    let mut out = format!("{extra}\n[connectors.{name}]\nkind = \"http\"\n");
    let mut in_auth = false;
    for line in DEFINITION.lines() {
        if line.starts_with("[auth]") {
            in_auth = true;
            continue;
        }
        if in_auth {
            if line.starts_with('[') {
                in_auth = false;
            } else {
                continue;
            }
        }
        if line.starts_with("base_url") || line.starts_with("delay_days") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("[[") {
            out.push_str(&format!("[[connectors.{name}.{rest}\n"));
        } else if let Some(rest) = line.strip_prefix('[') {
            out.push_str(&format!("[connectors.{name}.{rest}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
        if line.starts_with("system") {
            out.push_str(&format!(
                "base_url = \"{url}\"\nauth = {{ type = \"bearer\", token = \"{token}\" }}\n"
            ));
        }
    }
    out
}

async fn create(url: &str, name: &str, email: &str) -> String {
    let r = revoke_http::client(Duration::from_secs(30))
        .expect("client")
        .post(format!("{url}/Users"))
        .bearer_auth(Scim2Server::TOKEN)
        .header("Content-Type", "application/scim+json")
        .body(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": name, "emails": [{"value": email}], "active": true})
            .to_string(),
        )
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status().as_u16(), 201);
    let v: Value = r.json().await.expect("json");
    v["id"].as_str().expect("id").to_string()
}

async fn get(url: &str, id: &str) -> (u16, Value) {
    let r = revoke_http::client(Duration::from_secs(30))
        .expect("client")
        .get(format!("{url}/Users/{id}"))
        .bearer_auth(Scim2Server::TOKEN)
        .send()
        .await
        .expect("answers");
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

fn job(id: &str, username: &str, email: &str) -> Job {
    let mut subject = Subject::new(username);
    subject.email = Some(email.to_string());
    revoke_harness::job(id, subject)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_apply_converges_with_no_write_twice_and_a_protected_alt_account_stays() {
    let server = Scim2Server::start().expect("scim2-server starts");
    let upstream = server.tenant_url("exec");
    let alice = create(&upstream, "alice", "alice@example.com").await;
    let alt = create(&upstream, "alice-root", "Alice@example.com").await;
    let (url, px) = proxy(upstream.clone());
    let config = revoke_config::load_str(&config_toml(
        "app",
        &url,
        Scim2Server::TOKEN,
        r#"
[executor]
lease_secs = 1
[executor.retry]
base_ms = 10
cap_ms = 40
max_attempts = 20
max_elapsed_secs = 60
[protected]
accounts = ["ALICE-ROOT"]
"#,
    ))
    .expect("config");
    let registry = Registry::new().with(HttpFactory);
    registry.validate(&config).expect("valid");
    let connectors = registry.build(&config).expect("connectors");
    let plan = plan(
        &config,
        &connectors,
        vec![job("job-alice", "alice", "alice@example.com")],
        PlanId("p1".into()),
        Utc::now(),
    )
    .await
    .expect("plan");
    // The alt account matched by email is protected by its username: left out, and said so.
    let pinned: Vec<String> = plan
        .actions
        .iter()
        .filter_map(|a| a.account.as_ref().map(|p| p.id.clone()))
        .collect();
    assert!(pinned.iter().all(|p| *p != alt), "{pinned:?}");
    assert_eq!(
        pinned.iter().filter(|p| **p == alice).count(),
        2,
        "{:#?}",
        plan.actions
    );
    let notes = serde_json::to_string(&plan.notes).expect("json");
    assert!(notes.contains("ALICE-ROOT"), "{notes}");
    assert!(
        px.seen
            .lock()
            .expect("seen")
            .iter()
            .all(|l| l.starts_with("GET ")),
        "planning is read-only"
    );

    let scratch = revoke_harness::scratch_store().await;
    let store = scratch.store.clone();
    let first = Executor::new(store.clone(), connectors, &config, "revokectl@first:1");
    let path = format!("/Users/{alice}");
    *px.stall.lock().expect("stall") = Some(format!("PATCH {path}"));
    // The server makes the change and holds its answer; the run dies.
    revoke_harness::kill_when(first, &store, &plan, "the PATCH sent", || {
        px.stall.lock().expect("stall").is_none()
    })
    .await;
    px.released.store(true, Ordering::SeqCst);
    assert_eq!(get(&upstream, &alice).await.1["active"], json!(false));

    let second = Executor::new(
        store.clone(),
        registry.build(&config).expect("connectors"),
        &config,
        "revokectl@second:2",
    );
    let summary = revoke_harness::run_to_end(&second, &plan.id).await;
    assert_eq!((summary.failed, summary.blocked), (0, 0), "{summary:?}");
    assert_eq!(get(&upstream, &alice).await.0, 404, "alice is deleted");
    let (s, v) = get(&upstream, &alt).await;
    assert_eq!(
        (s, v["active"].clone()),
        (200, json!(true)),
        "the alt account is untouched"
    );
    let mut writes: BTreeMap<String, usize> = BTreeMap::new();
    for l in px
        .seen
        .lock()
        .expect("seen")
        .iter()
        .filter(|l| !l.starts_with("GET "))
    {
        *writes.entry(l.clone()).or_default() += 1;
    }
    assert_eq!(
        writes,
        BTreeMap::from([(format!("PATCH {path}"), 1), (format!("DELETE {path}"), 1)]),
        "no write twice"
    );

    // A third run: everything is settled, nothing is sent.
    px.seen.lock().expect("seen").clear();
    let third = Executor::new(
        store.clone(),
        registry.build(&config).expect("connectors"),
        &config,
        "revokectl@third:3",
    );
    third.run_plan(&plan.id).await.expect("run");
    let seen = px.seen.lock().expect("seen").clone();
    assert!(seen.iter().all(|l| l.starts_with("GET ")), "{seen:?}");
}
