//! A stateful Kubernetes API server stand-in (RBAC bindings, ServiceAccounts, Secrets) served
//! in process
//!
//! No real kube-apiserver can be installed here (no apiserver, k3s or envtest package in the
//! registries; envtest downloads binaries), so [`KubeStandin`] keeps the semantics the
//! Kubernetes connector relies on, from a [`World`] that tests seed and inspect:
//! - one `resourceVersion` counter moved by every write (a no-op update keeps the version), a
//!   `uid` per object for life, `201` on create (`409 AlreadyExists` when it exists);
//! - `PUT` with a stale `metadata.resourceVersion`, or another `metadata.uid`, is `409 Conflict`;
//!   a `PUT` of a missing binding with a resourceVersion is `404`, without one it creates it
//!   (RBAC allows create on update); `roleRef` cannot change (`422 Invalid`);
//! - `DELETE` with a `DeleteOptions` body whose `preconditions` (uid, resourceVersion) do not
//!   match is `409 Conflict` (`Precondition failed: UID in precondition: ...`); success is `200`
//!   with a `Success` Status; a missing object `404 NotFound` Status;
//! - lists page with `limit` and `continue` and answer `metadata.resourceVersion`; secrets filter
//!   on `fieldSelector=type=...` (another field is `400`); `Accept:
//!   application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1` (or `PartialObjectMetadata`
//!   on one object) answers metadata only, as the API server's metadata client gets them;
//! - deleting a ServiceAccount deletes its token Secrets (the token controller); creating a token
//!   Secret fills in its ServiceAccount's uid and a token;
//! - `Authorization: Bearer <token>` ([`KubeStandin::token`]) or `401 Unauthorized`; the token
//!   can be rotated ([`KubeStandin::set_token`]: a projected token rewritten, an exec plugin's
//!   token expired), and [`KubeStandin::trust_client_certificates`] accepts calls without one
//!   (behind a TLS front that demands a client certificate from its CA, as the API server's
//!   x509 authenticator does).
//!
//! Scripted faults: [`KubeStandin::throttle`] answers the next calls `429 TooManyRequests` with
//! `Retry-After` and `details.retryAfterSeconds` (API Priority and Fairness); [`KubeStandin::interfere`]
//! changes the world just before a given request is handled (another client's write racing the
//! connector's); [`KubeStandin::stall`] makes a write, then holds its answer until
//! [`KubeStandin::release`] (for kill -9 tests). Every request is recorded.
//!
//! Checked against Kubernetes' own description: `tests/python/kube_check.py` drives the
//! stand-in with the official Python client (`kubernetes` 37.0.2, strict models) and validates
//! each answer that the spec describes against `tests/kubernetes/kubernetes-rbac.trimmed.json`
//! (openapi-core). The spec declares no 404 or 409 answers; those are checked by the models'
//! `V1Status` only.
//!
//! `PATCH` takes a JSON Patch (`application/json-patch+json`, RFC 6902: add, remove, replace,
//! test) applied to the object as stored now: a failed operation is `422 Invalid` ("the server
//! rejected our request due to an error in our request", the library's words as the cause) and
//! changes nothing, as the API server's `jsonPatcher` answers; other patch types are `415`.
//!
//! Simplifications, on purpose: no watch, no merge or strategic merge patch, no label selectors, no namespaces objects
//! (any namespace exists), no admission, no authorization (the token may do everything).

mod world;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

pub use world::{group, service_account, status, user, Key, Res, World};

use crate::serve::ServerThread;
use crate::TestkitError;

/// One request the stand-in received
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The HTTP method
    pub method: String,
    /// The path as received (still percent-encoded)
    pub path: String,
    /// The query string, if any
    pub query: Option<String>,
    /// The request body, as sent
    pub body: String,
    /// The `Accept` header (metadata-only reads say `as=PartialObjectMetadata...`)
    pub accept: String,
    /// The status answered (0 while held by [`KubeStandin::stall`])
    pub status: u16,
    /// Whether an `Authorization` header came with it
    pub authorization: bool,
    /// The `Content-Type` of its body (a JSON Patch is `application/json-patch+json`)
    pub content_type: String,
}

impl RecordedRequest {
    /// Whether it asks for a change (every non-GET)
    pub fn is_mutation(&self) -> bool {
        self.method != "GET"
    }
}

type Hook = Box<dyn FnOnce(&mut World) + Send>;

struct Shared {
    world: Mutex<World>,
    token: Mutex<String>,
    /// Calls without a token are accepted (a TLS front checked a client certificate)
    anonymous: AtomicBool,
    requests: Mutex<Vec<RecordedRequest>>,
    /// (calls left, retry-after seconds)
    throttle: Mutex<(u32, u64)>,
    /// A server-side rate: (per second, burst, tokens, last refill); 429 beyond it
    rate: Mutex<Option<(f64, f64, f64, std::time::Instant)>>,
    /// (method, path) -> a change made just before that request is handled, once
    hooks: Mutex<Vec<(String, String, Hook)>>,
    /// (method, path) -> a refusal answered instead, until cleared
    refusals: Mutex<Vec<(String, String, u16, Value)>>,
    stall: Mutex<Option<(String, String)>>,
    released: AtomicBool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The Kubernetes stand-in: an axum server on a free 127.0.0.1 port, on its own thread
#[derive(Debug)]
pub struct KubeStandin {
    shared: Arc<Shared>,
    server: ServerThread,
}

impl KubeStandin {
    /// Starts an empty cluster with a fresh bearer token
    pub fn start() -> Result<KubeStandin, TestkitError> {
        let token: String = (0..40)
            .map(|_| {
                let c = rand::random::<u8>() % 36;
                (if c < 10 { b'0' + c } else { b'a' + c - 10 }) as char
            })
            .collect();
        let shared = Arc::new(Shared {
            world: Mutex::new(World::default()),
            token: Mutex::new(token),
            anonymous: AtomicBool::new(false),
            requests: Mutex::new(Vec::new()),
            throttle: Mutex::new((0, 0)),
            rate: Mutex::new(None),
            hooks: Mutex::new(Vec::new()),
            refusals: Mutex::new(Vec::new()),
            stall: Mutex::new(None),
            released: AtomicBool::new(false),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let server = ServerThread::start("kubernetes stand-in", app)?;
        Ok(KubeStandin { shared, server })
    }

    /// The API server URL (`http://127.0.0.1:PORT`), in place of `https://k8s:6443`
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The bearer token every call must carry
    pub fn token(&self) -> String {
        lock(&self.shared.token).clone()
    }

    /// From now on only `token` is accepted (the old one is refused `401`)
    pub fn set_token(&self, token: &str) {
        *lock(&self.shared.token) = token.to_owned();
    }

    /// Accepts calls that carry no `Authorization` header: put the stand-in behind a TLS front
    /// that requires a client certificate from its CA (the x509 authenticator); a wrong bearer
    /// token is still refused
    pub fn trust_client_certificates(&self) {
        self.shared.anonymous.store(true, Ordering::SeqCst);
    }

    /// The stand-in's plain address (`127.0.0.1:PORT`), for a TLS front in front of it
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.addr()
    }

    /// Seeds or inspects the cluster; returns what the closure returns
    pub fn world<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        f(&mut lock(&self.shared.world))
    }

    /// Every request received, in order
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// The requests that asked for a change
    pub fn mutations(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(RecordedRequest::is_mutation)
            .collect()
    }

    /// Forgets the requests received so far
    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// The next `calls` requests are refused `429 TooManyRequests` with `Retry-After: secs`
    pub fn throttle(&self, calls: u32, secs: u64) {
        *lock(&self.shared.throttle) = (calls, secs);
    }

    /// From now on at most `per_second` calls a second (bursts of `burst`) are served; the rest
    /// are refused `429 TooManyRequests` with `Retry-After: 1`, as API Priority and Fairness
    /// rejects what its queues cannot hold (a token bucket standing in for APF's seats and
    /// queues: enough to show a client leaning on 429s against one that paces itself)
    pub fn limit_rate(&self, per_second: u32, burst: u32) {
        let burst = f64::from(burst.max(1));
        *lock(&self.shared.rate) = Some((
            f64::from(per_second.max(1)),
            burst,
            burst,
            std::time::Instant::now(),
        ));
    }

    /// How many calls [`Self::limit_rate`] refused so far
    pub fn rate_limited(&self) -> usize {
        lock(&self.shared.requests)
            .iter()
            .filter(|r| r.status == 429)
            .count()
    }

    /// Runs `change` on the world just before the first `method` request on `path` is handled
    pub fn interfere(
        &self,
        method: &str,
        path: &str,
        change: impl FnOnce(&mut World) + Send + 'static,
    ) {
        lock(&self.shared.hooks).push((method.to_owned(), path.to_owned(), Box::new(change)));
    }

    /// Answers every `method` request on `path` with `code` and a `Failure` Status of `reason`
    /// and `message`, changing nothing: what authorization or admission refuses (a binding
    /// update RBAC's escalation check forbids), which the stand-in does not decide itself
    pub fn refuse(&self, method: &str, path: &str, code: u16, reason: &str, message: &str) {
        lock(&self.shared.refusals).push((
            method.to_owned(),
            path.to_owned(),
            code,
            status(code, reason, message, None),
        ));
    }

    /// Holds the answer to `method` on `path` (after the change is made) until [`Self::release`]
    pub fn stall(&self, method: &str, path: &str) {
        self.shared.released.store(false, Ordering::SeqCst);
        *lock(&self.shared.stall) = Some((method.to_owned(), path.to_owned()));
    }

    /// Lets every held answer go and stops holding
    pub fn release(&self) {
        *lock(&self.shared.stall) = None;
        self.shared.released.store(true, Ordering::SeqCst);
    }
}

fn reply(code: u16, body: &Value) -> Response {
    let mut r = (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body.to_string(),
    )
        .into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

/// The route a path names: (resource, namespace, name); `None` namespace = every namespace
#[derive(Debug)]
struct Route {
    res: Res,
    namespace: Option<String>,
    name: Option<String>,
}

fn decode(seg: &str) -> String {
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn route(path: &str) -> Option<Route> {
    let segs: Vec<String> = path.split('/').skip(1).map(decode).collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    type Resolver = fn(&str) -> Option<Res>;
    let (res, rest): (Resolver, &[&str]) = match s.as_slice() {
        ["apis", "rbac.authorization.k8s.io", "v1", rest @ ..] => (
            |p| match p {
                "clusterrolebindings" => Some(Res::ClusterRoleBinding),
                "rolebindings" => Some(Res::RoleBinding),
                _ => None,
            },
            rest,
        ),
        ["api", "v1", rest @ ..] => (
            |p| match p {
                "serviceaccounts" => Some(Res::ServiceAccount),
                "secrets" => Some(Res::Secret),
                _ => None,
            },
            rest,
        ),
        _ => return None,
    };
    let r = |res: Res, namespace: Option<&str>, name: Option<&str>| {
        (res.namespaced() == namespace.is_some() || name.is_none()).then(|| Route {
            res,
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
        })
    };
    match rest {
        [p] => r(res(p)?, None, None),
        [p, name] => {
            let x = res(p)?;
            (!x.namespaced()).then_some(())?;
            r(x, None, Some(name))
        }
        ["namespaces", ns, p] => {
            let x = res(p)?;
            x.namespaced().then_some(())?;
            r(x, Some(ns), None)
        }
        ["namespaces", ns, p, name] => {
            let x = res(p)?;
            x.namespaced().then_some(())?;
            r(x, Some(ns), Some(name))
        }
        _ => None,
    }
}

fn query_param(q: Option<&str>, key: &str) -> Option<String> {
    form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Metadata only: `as=PartialObjectMetadataList` (a list) or `as=PartialObjectMetadata` (one)
fn wants_metadata(accept: &str) -> Option<&'static str> {
    let a = accept.replace(' ', "");
    if a.contains("as=PartialObjectMetadataList;g=meta.k8s.io;v=v1") {
        Some("PartialObjectMetadataList")
    } else if a.contains("as=PartialObjectMetadata;g=meta.k8s.io;v=v1") {
        Some("PartialObjectMetadata")
    } else {
        None
    }
}

fn partial(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let accept = req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let bytes = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let body = String::from_utf8_lossy(&bytes).into_owned();
    let index = {
        let mut r = lock(&shared.requests);
        r.push(RecordedRequest {
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            body: body.clone(),
            accept: accept.clone(),
            status: 0,
            authorization: !auth.is_empty(),
            content_type: content_type.clone(),
        });
        r.len() - 1
    };
    let (code, answer, extra) = answer(
        &shared,
        &method,
        &path,
        query.as_deref(),
        &Headers {
            auth: &auth,
            accept: &accept,
            content_type: &content_type,
        },
        &body,
    );
    let held = lock(&shared.stall)
        .as_ref()
        .is_some_and(|(m, p)| *m == method && *p == path);
    if held {
        while !shared.released.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    } else if let Some(r) = lock(&shared.requests).get_mut(index) {
        r.status = code;
    }
    let mut resp = reply(code, &answer);
    if let Some((k, v)) = extra {
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

type Answer = (u16, Value, Option<(&'static str, String)>);

/// The request headers an answer depends on
#[derive(Debug, Clone, Copy)]
struct Headers<'a> {
    auth: &'a str,
    accept: &'a str,
    content_type: &'a str,
}

fn answer(
    shared: &Shared,
    method: &str,
    path: &str,
    query: Option<&str>,
    headers: &Headers<'_>,
    body: &str,
) -> Answer {
    let Headers {
        auth,
        accept,
        content_type,
    } = *headers;
    let anonymous_ok = auth.is_empty() && shared.anonymous.load(Ordering::SeqCst);
    if !anonymous_ok && auth.strip_prefix("Bearer ") != Some(lock(&shared.token).as_str()) {
        return (401, status(401, "Unauthorized", "Unauthorized", None), None);
    }
    if let Some((qps, burst, tokens, at)) = lock(&shared.rate).as_mut() {
        let now = std::time::Instant::now();
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * *qps).min(*burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
        } else {
            return (
                429,
                status(
                    429,
                    "TooManyRequests",
                    "Too many requests, please try again later.",
                    Some(json!({"retryAfterSeconds": 1})),
                ),
                Some(("retry-after", "1".to_string())),
            );
        }
    }
    {
        let mut t = lock(&shared.throttle);
        if t.0 > 0 {
            t.0 -= 1;
            let secs = t.1;
            return (
                429,
                status(
                    429,
                    "TooManyRequests",
                    "Too many requests, please try again later.",
                    Some(json!({"retryAfterSeconds": secs})),
                ),
                Some(("retry-after", secs.to_string())),
            );
        }
    }
    let refused = lock(&shared.refusals)
        .iter()
        .find(|(m, p, _, _)| m == method && p == path)
        .map(|(_, _, code, body)| (*code, body.clone()));
    if let Some((code, body)) = refused {
        return (code, body, None);
    }
    let hook = {
        let mut hooks = lock(&shared.hooks);
        hooks
            .iter()
            .position(|(m, p, _)| m == method && p == path)
            .map(|i| hooks.remove(i).2)
    };
    let mut world = lock(&shared.world);
    if let Some(h) = hook {
        h(&mut world);
    }
    let Some(rt) = route(path) else {
        return (
            404,
            status(
                404,
                "NotFound",
                "the server could not find the requested resource",
                Some(json!({})),
            ),
            None,
        );
    };
    let res = rt.res;
    let ns = rt.namespace.clone().unwrap_or_default();
    let parsed = || -> Result<Value, Answer> {
        serde_json::from_str::<Value>(body).map_err(|e| {
            (
                400,
                status(
                    400,
                    "BadRequest",
                    &format!("the body of the request was in an unknown format: {e}"),
                    None,
                ),
                None,
            )
        })
    };
    let meta = wants_metadata(accept);
    let out = |r: Result<(u16, Value), (u16, Value)>| -> Answer {
        match r {
            Ok((c, v)) => (c, v, None),
            Err((c, v)) => (c, v, None),
        }
    };
    match (method, rt.name.as_deref()) {
        ("GET", None) => list(&world, &rt, query, meta),
        ("POST", None) if rt.namespace.is_some() || !res.namespaced() => match parsed() {
            Ok(v) => out(world.create(res, &ns, v).map(|o| (201, o))),
            Err(a) => a,
        },
        ("GET", Some(name)) => match world.get(res, &ns, name) {
            Some(o) => match meta {
                Some("PartialObjectMetadataList") => (
                    406,
                    status(406, "NotAcceptable", "only the following media types are accepted: application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1", None),
                    None,
                ),
                Some(_) => (200, partial(o), None),
                None => (200, o.clone(), None),
            },
            None => (
                404,
                status(
                    404,
                    "NotFound",
                    &format!("{} \"{name}\" not found", res.qualified()),
                    Some(json!({"name": name, "group": res.group(), "kind": res.plural()})),
                ),
                None,
            ),
        },
        ("PUT", Some(name)) => match parsed() {
            Ok(v) => out(
                world
                    .update(res, &ns, name, v)
                    .map(|(o, created)| (if created { 201 } else { 200 }, o)),
            ),
            Err(a) => a,
        },
        ("PATCH", Some(name)) => {
            let media = content_type.split(';').next().unwrap_or_default().trim();
            if media != "application/json-patch+json" {
                return (
                    415,
                    status(
                        415,
                        "UnsupportedMediaType",
                        &format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json (the stand-in knows no other patch type), found {media:?}"),
                        None,
                    ),
                    None,
                );
            }
            match parsed() {
                Ok(ops) => out(world.patch(res, &ns, name, &ops).map(|o| (200, o))),
                Err(a) => a,
            }
        }
        ("DELETE", Some(name)) => {
            let opts = if body.trim().is_empty() {
                None
            } else {
                match parsed() {
                    Ok(v) => Some(v),
                    Err(a) => return a,
                }
            };
            out(world.delete(res, &ns, name, opts.as_ref()).map(|s| (200, s)))
        }
        _ => (
            405,
            status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", None),
            None,
        ),
    }
}

fn list(world: &World, rt: &Route, query: Option<&str>, meta: Option<&str>) -> Answer {
    let res = rt.res;
    if meta == Some("PartialObjectMetadata") {
        return (
            406,
            status(406, "NotAcceptable", "only the following media types are accepted: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1", None),
            None,
        );
    }
    let mut items = world.list(res, rt.namespace.as_deref());
    if let Some(sel) = query_param(query, "fieldSelector").filter(|s| !s.is_empty()) {
        for term in sel.split(',') {
            let (field, want) = term.split_once('=').unwrap_or((term, ""));
            let want = want.trim_start_matches('=');
            let getter: fn(&Value) -> Option<&str> = match (res, field) {
                (_, "metadata.name") => |o| o.pointer("/metadata/name").and_then(Value::as_str),
                (_, "metadata.namespace") => {
                    |o| o.pointer("/metadata/namespace").and_then(Value::as_str)
                }
                (Res::Secret, "type") => |o| o.get("type").and_then(Value::as_str),
                _ => {
                    return (
                        400,
                        status(
                            400,
                            "BadRequest",
                            &format!("field label not supported: {field}"),
                            None,
                        ),
                        None,
                    )
                }
            };
            items.retain(|(_, o)| getter(o) == Some(want));
        }
    }
    let limit = query_param(query, "limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let start = match query_param(query, "continue").filter(|c| !c.is_empty()) {
        Some(c) => match c
            .split_once(':')
            .and_then(|(rv, after)| Some((rv.parse::<u64>().ok()?, after.to_string())))
        {
            Some((_, after)) => items
                .iter()
                .position(|((_, ns, n), _)| format!("{ns}/{n}") > after)
                .unwrap_or(items.len()),
            None => {
                return (
                    400,
                    status(400, "BadRequest", "invalid continue token", None),
                    None,
                )
            }
        },
        None => 0,
    };
    let end = limit.map_or(items.len(), |l| (start + l).min(items.len()));
    let page = &items[start..end];
    let mut list_meta = json!({"resourceVersion": world.revision().to_string()});
    if end < items.len() {
        if let Some(((_, ns, n), _)) = page.last() {
            list_meta["continue"] = json!(format!("{}:{ns}/{n}", world.revision()));
            list_meta["remainingItemCount"] = json!(items.len() - end);
        }
    }
    let body = match meta {
        Some(_) => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": list_meta,
            "items": page.iter().map(|(_, o)| partial(o)).collect::<Vec<_>>(),
        }),
        None => json!({
            "kind": format!("{}List", res.kind()),
            "apiVersion": res.api_version(),
            "metadata": list_meta,
            // Items of a typed list carry no kind or apiVersion, as the API server sends them.
            "items": page.iter().map(|(_, o)| {
                let mut o = o.clone();
                if let Some(m) = o.as_object_mut() {
                    m.remove("kind");
                    m.remove("apiVersion");
                }
                o
            }).collect::<Vec<_>>(),
        }),
    };
    (200, body, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_name_resource_namespace_and_name() {
        let r = route("/apis/rbac.authorization.k8s.io/v1/namespaces/a/rolebindings/b%2Fc")
            .expect("route");
        assert_eq!(
            (r.res, r.namespace.as_deref(), r.name.as_deref()),
            (Res::RoleBinding, Some("a"), Some("b/c"))
        );
        let r = route("/apis/rbac.authorization.k8s.io/v1/rolebindings").expect("route");
        assert_eq!((r.res, r.namespace, r.name), (Res::RoleBinding, None, None));
        assert!(
            route("/apis/rbac.authorization.k8s.io/v1/rolebindings/x").is_none(),
            "a namespaced object needs its namespace"
        );
        assert!(
            route("/apis/rbac.authorization.k8s.io/v1/namespaces/a/clusterrolebindings").is_none()
        );
        assert!(route("/api/v1/namespaces/a/pods").is_none());
    }
}
