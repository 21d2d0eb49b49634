//! A stateful GitHub stand-in (REST, GraphQL, GitHub App tokens) served in process
//!
//! [`GithubStandin`] answers the REST operations and GraphQL queries the GitHub connector uses,
//! from an in-memory [`World`] that tests seed and inspect, with GitHub's rate-limit headers,
//! error bodies and pacing behaviour (knobs for latency, primary and secondary rate limits, 5xx).
//! Every REST answer conforms to GitHub's own OpenAPI description (`ghec.json` of
//! `@octokit/openapi`); put [`crate::Prism`] in front to check that on every request.
//!
//! Routes are served at `/` (github.com) and under `/api/v3` (GitHub Enterprise Server), GraphQL
//! at `/graphql` and `/api/graphql`. URLs in bodies and `Link` headers are built from the `Host`
//! header the request came with, so a client that follows them stays behind Prism.
//!
//! Simplifications, on purpose: a GraphQL request costs one point of the `graphql` budget
//! whatever its shape; a primary-limit refusal is a 403 for GraphQL too; org members have read
//! access to every repository (owners admin), which is what `affiliation=all` and the
//! collaborator check report for them; removing a member keeps their direct repository grants
//! (the connector must remove those itself, as the outside-collaborator call does).

mod graphql;
mod pace;
mod rest;
mod world;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::json;

pub use pace::{LimitScope, PaceViolation, RecordedRequest};
pub use world::{
    CredentialAuthorization, CredentialType, Org, OrgInvitation, PatGrant, Permission, Repo,
    RepoInvitation, Role, SamlIdentity, Team, TeamRole, World,
};

use crate::serve::ServerThread;
use crate::TestkitError;
use pace::{Pace, Reject, Resource};

/// The GitHub stand-in: an axum server on a free 127.0.0.1 port, on its own thread
///
/// One per test: starting takes about a millisecond. Dropping it stops the server.
///
/// ```no_run
/// use revoke_testkit::github::{GithubStandin, Permission, Role};
///
/// let gh = GithubStandin::start().unwrap();
/// gh.world(|w| {
///     let o = w.org("acme");
///     o.member("alice", Role::Admin).member("bob", Role::Member);
///     o.team("platform").maintainer("alice").member("bob");
///     o.repo("api").collaborator("eve", Permission::Push);
/// });
/// // point the client at gh.url() with gh.token(); then:
/// assert!(gh.is_member("acme", "alice"));
/// ```
#[derive(Debug)]
pub struct GithubStandin {
    shared: Arc<Shared>,
    server: ServerThread,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) world: Mutex<World>,
    pub(crate) pace: Mutex<Pace>,
    pub(crate) auth: Mutex<Auth>,
    pub(crate) graphql_documents: Mutex<Vec<String>>,
}

#[derive(Debug)]
pub(crate) struct Auth {
    pat: String,
    app: Option<(u64, u64)>,
    ttl: Duration,
    installation_tokens: HashMap<String, Instant>,
    issued: u64,
}

/// Where a request came in: `http://HOST` plus `/api/v3` when it used the GHES prefix, and its
/// full path and query, so bodies and `Link` headers point back the way the client came
#[derive(Debug, Clone)]
pub(crate) struct Here {
    pub(crate) base: String,
    pub(crate) path: String,
    pub(crate) query: Option<String>,
}

impl Shared {
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        lock(&self.world)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl GithubStandin {
    /// Starts an empty stand-in
    pub fn start() -> Result<GithubStandin, TestkitError> {
        let shared = Arc::new(Shared {
            world: Mutex::new(World::default()),
            pace: Mutex::new(Pace::default()),
            auth: Mutex::new(Auth {
                pat: format!("ghp_{}", random_alnum(36)),
                app: None,
                ttl: Duration::from_secs(3_600),
                installation_tokens: HashMap::new(),
                issued: 0,
            }),
            graphql_documents: Mutex::new(Vec::new()),
        });
        let api = rest::routes().route("/graphql", post(graphql::handle));
        let app = Router::new()
            .merge(api.clone())
            .nest("/api/v3", api)
            .route("/api/graphql", post(graphql::handle))
            .fallback(rest::no_route)
            .layer(axum::middleware::from_fn_with_state(shared.clone(), gate))
            .with_state(shared.clone());
        let server = ServerThread::start("github stand-in", app)?;
        Ok(GithubStandin { shared, server })
    }

    /// The REST base URL for github.com-style clients (`http://127.0.0.1:PORT`)
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The REST base URL of GitHub Enterprise Server (`http://127.0.0.1:PORT/api/v3`); Prism
    /// cannot route a base path, so GHES clients talk to the stand-in directly
    pub fn ghes_url(&self) -> String {
        format!("{}/api/v3", self.url())
    }

    /// The GraphQL endpoint (github.com style)
    pub fn graphql_url(&self) -> String {
        format!("{}/graphql", self.url())
    }

    /// A valid personal access token (`ghp_...`)
    pub fn token(&self) -> String {
        lock(&self.shared.auth).pat.clone()
    }

    /// Configures the GitHub App whose JWTs `POST /app/installations/{id}/access_tokens` accepts
    pub fn set_app(&self, app_id: u64, installation_id: u64) {
        lock(&self.shared.auth).app = Some((app_id, installation_id));
    }

    /// How long installation tokens live (GitHub: one hour)
    pub fn set_installation_token_ttl(&self, ttl: Duration) {
        lock(&self.shared.auth).ttl = ttl;
    }

    /// How many installation tokens were issued, to check a client caches them
    pub fn installation_tokens_issued(&self) -> u64 {
        lock(&self.shared.auth).issued
    }

    /// Seeds or inspects the world; returns what the closure returns
    pub fn world<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        f(&mut self.shared.world())
    }

    /// Forgets the whole world and every record and knob (the token stays valid)
    pub fn reset(&self) {
        *self.shared.world() = World::default();
        *lock(&self.shared.pace) = Pace::default();
        lock(&self.shared.graphql_documents).clear();
    }

    /// Removes an organization, as if it had been deleted
    pub fn remove_org(&self, org: &str) -> bool {
        self.shared.world().remove_org(org)
    }

    /// Removes a team, as if it had been deleted
    pub fn remove_team(&self, org: &str, slug: &str) -> bool {
        self.shared
            .world()
            .org_mut(org)
            .is_some_and(|o| o.remove_team(slug))
    }

    /// Whether `login` is an active member of `org`
    pub fn is_member(&self, org: &str, login: &str) -> bool {
        self.member_role(org, login).is_some()
    }

    /// The member's role in `org`, `None` when not a member
    pub fn member_role(&self, org: &str, login: &str) -> Option<Role> {
        self.shared.world().org_ref(org)?.role_of(login)
    }

    /// Members of `org` with their roles
    pub fn members(&self, org: &str) -> Vec<(String, Role)> {
        self.with_org(org, Org::member_list)
    }

    /// Members of a team with their team roles (empty when the team does not exist)
    pub fn team_members(&self, org: &str, slug: &str) -> Vec<(String, TeamRole)> {
        self.with_org(org, |o| {
            o.team_ref(slug).map(Team::members).unwrap_or_default()
        })
    }

    /// Direct collaborators of a repository with their permissions
    pub fn collaborators(&self, org: &str, repo: &str) -> Vec<(String, Permission)> {
        self.with_org(org, |o| {
            o.repo_ref(repo)
                .map(Repo::collaborators)
                .unwrap_or_default()
        })
    }

    /// Direct collaborators of any repository of `org` who are not members
    pub fn outside_collaborators(&self, org: &str) -> Vec<String> {
        self.with_org(org, Org::outside_collaborators)
    }

    /// Pending organization invitations
    pub fn org_invitations(&self, org: &str) -> Vec<OrgInvitation> {
        self.with_org(org, |o| o.invitations.clone())
    }

    /// Pending invitations of a repository
    pub fn repo_invitations(&self, org: &str, repo: &str) -> Vec<RepoInvitation> {
        self.with_org(org, |o| {
            o.repo_ref(repo)
                .map(|r| r.invitations.clone())
                .unwrap_or_default()
        })
    }

    /// SAML SSO credential authorizations of `org`
    pub fn credential_authorizations(&self, org: &str) -> Vec<CredentialAuthorization> {
        self.with_org(org, |o| o.credential_authorizations.clone())
    }

    /// Fine-grained PAT grants of `org`
    pub fn pat_grants(&self, org: &str) -> Vec<PatGrant> {
        self.with_org(org, |o| o.pat_grants.clone())
    }

    fn with_org<R: Default>(&self, org: &str, f: impl FnOnce(&Org) -> R) -> R {
        self.shared.world().org_ref(org).map(f).unwrap_or_default()
    }

    /// Delays every answer by `latency` (after the request is recorded), like a far-away API
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.shared.pace).latency = latency;
    }

    /// The primary rate limit: `limit` requests per `window` for each resource (core, graphql);
    /// GitHub: 5,000 per hour (the default)
    pub fn set_rate_limit(&self, limit: u64, window: Duration) {
        lock(&self.shared.pace).set_primary(limit, window);
    }

    /// A secondary-limit storm: the next `n` matching requests get GitHub's 403 "You have
    /// exceeded a secondary rate limit" (with `retry-after` when given); every request that
    /// arrives before the wait is over is recorded as a [`PaceViolation`]
    pub fn secondary_limit(&self, n: u32, retry_after: Option<Duration>, scope: LimitScope) {
        lock(&self.shared.pace).storm(n, retry_after, scope);
    }

    /// How long a client must wait after a secondary limit without `retry-after` before a
    /// request is not a violation (GitHub: "at least one minute"; the default 60 s)
    pub fn set_secondary_wait(&self, wait: Duration) {
        lock(&self.shared.pace).secondary_wait = wait;
    }

    /// The next `n` requests get `status` (502 or 503, GitHub's bodies)
    pub fn fail_next(&self, n: u32, status: u16) {
        lock(&self.shared.pace).fault(n, status, None);
    }

    /// The next `n` requests whose path contains `path_contains` get `status`
    pub fn fail_matching(&self, path_contains: &str, n: u32, status: u16) {
        lock(&self.shared.pace).fault(n, status, Some(path_contains.to_owned()));
    }

    /// Every request received, in the order they were answered
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.pace).requests.clone()
    }

    /// How many requests with this method have a path (without `/api/v3`) starting with `path_prefix`
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        lock(&self.shared.pace)
            .requests
            .iter()
            .filter(|r| {
                r.method.as_str().eq_ignore_ascii_case(method)
                    && strip_ghes(&r.path).starts_with(path_prefix)
            })
            .count()
    }

    /// The mutations received (see [`LimitScope::Mutations`])
    pub fn mutations(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.pace)
            .requests
            .iter()
            .filter(|r| r.mutation)
            .cloned()
            .collect()
    }

    /// The smallest gap between two consecutive mutations' arrivals (`None` with fewer than two)
    pub fn min_mutation_gap(&self) -> Option<Duration> {
        lock(&self.shared.pace).min_mutation_gap()
    }

    /// Requests that came while GitHub had asked to wait after a secondary limit
    pub fn pace_violations(&self) -> Vec<PaceViolation> {
        lock(&self.shared.pace).violations.clone()
    }

    /// The distinct GraphQL documents received, in first-seen order (for [`crate::validate_graphql`])
    pub fn graphql_documents(&self) -> Vec<String> {
        lock(&self.shared.graphql_documents).clone()
    }

    /// Starts Prism in front of this stand-in, checking every exchange against GitHub's spec
    pub fn behind_prism(&self) -> Result<crate::Prism, TestkitError> {
        crate::Prism::start(&self.url())
    }
}

fn strip_ghes(path: &str) -> &str {
    path.strip_prefix("/api/v3").unwrap_or(path)
}

/// Everything GitHub does before and after an endpoint: records the request, waits the latency,
/// checks credentials, applies rate limits and injected faults, and adds the rate-limit headers
async fn gate(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let at = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let rel = strip_ghes(&path);
    let is_graphql = rel == "/graphql" || path == "/api/graphql";
    let token_call = method == Method::POST && rel.starts_with("/app/installations/");

    // A GraphQL request is a mutation when its document is; read the body to know.
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 16 << 20)
        .await
        .unwrap_or_default();
    let mutation = if is_graphql {
        graphql::is_mutation(&bytes)
    } else {
        !token_call && !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS)
    };
    let mut req = Request::from_parts(parts, Body::from(bytes));
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_owned();
    let prefix = if path.starts_with("/api/v3/") {
        "/api/v3"
    } else {
        ""
    };
    req.extensions_mut().insert(Here {
        base: format!("http://{host}{prefix}"),
        path: path.clone(),
        query: query.clone(),
    });

    let latency = lock(&shared.pace).latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let resource = if is_graphql {
        Resource::Graphql
    } else {
        Resource::Core
    };
    let authorized = token_call || shared.authorized(req.headers());
    let verdict = {
        let mut pace = lock(&shared.pace);
        if authorized {
            Some(pace.admit(&method, &path, mutation, resource, at))
        } else {
            pace.check_ban(&method, &path, at);
            None
        }
    };
    let mut response = match &verdict {
        None => error(StatusCode::UNAUTHORIZED, "Bad credentials", DOCS_REST),
        Some(v) => match &v.reject {
            None => next.run(req).await,
            Some(Reject::Primary) => error(
                StatusCode::FORBIDDEN,
                "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please include the request ID 0000:0000:0000000:0000000:00000000.",
                "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
            ),
            Some(Reject::Secondary { retry_after }) => {
                let mut r = error(
                    StatusCode::FORBIDDEN,
                    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID 0000:0000:0000000:0000000:00000000.",
                    "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
                );
                if let Some(wait) = retry_after {
                    let secs = wait.as_secs_f64().ceil() as u64;
                    r.headers_mut()
                        .insert("retry-after", HeaderValue::from(secs));
                }
                r
            }
            Some(Reject::Fault { status }) => {
                let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY);
                let message = match status {
                    StatusCode::SERVICE_UNAVAILABLE => "Service Unavailable",
                    StatusCode::GATEWAY_TIMEOUT => "We couldn't respond to your request in time. Sorry about that. Please try resubmitting your request and contact us if the problem persists.",
                    _ => "Server Error",
                };
                (status, axum::Json(json!({ "message": message }))).into_response()
            }
        },
    };

    // Unauthenticated answers carry the (unauthenticated) core budget, like GitHub's.
    let (limit, remaining, used, reset, resource) = match &verdict {
        Some(v) => (v.limit, v.remaining, v.used, v.reset, v.resource),
        None => (60, 59, 1, pace::epoch_secs() + 3_600, Resource::Core),
    };
    let h = response.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from(limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    h.insert("x-ratelimit-reset", HeaderValue::from(reset));
    h.insert("x-ratelimit-used", HeaderValue::from(used));
    h.insert(
        "x-ratelimit-resource",
        HeaderValue::from_static(resource.as_str()),
    );
    h.insert(
        "x-github-media-type",
        HeaderValue::from_static("github.v3; format=json"),
    );

    lock(&shared.pace).requests.push(RecordedRequest {
        method,
        path,
        query,
        status: response.status().as_u16(),
        at,
        mutation,
    });
    response
}

impl Shared {
    /// Whether the request carries the PAT or an unexpired installation token
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(token) = bearer(headers) else {
            return false;
        };
        let auth = lock(&self.auth);
        token == auth.pat
            || auth
                .installation_tokens
                .get(token)
                .is_some_and(|expiry| Instant::now() < *expiry)
    }
}

/// The credential of `Authorization: Bearer X` or `Authorization: token X`
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
        .then_some(token.trim())
}

pub(crate) const DOCS_REST: &str = "https://docs.github.com/rest";

/// GitHub's error body
pub(crate) fn error(status: StatusCode, message: &str, documentation_url: &str) -> Response {
    (
        status,
        axum::Json(json!({ "message": message, "documentation_url": documentation_url })),
    )
        .into_response()
}

fn random_alnum(n: usize) -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), n)
}
