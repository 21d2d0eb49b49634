//! The HTTP side: one reqwest client per app (rustls with ring and the system's roots, no
//! redirects, no retries), the auth header, and the few SCIM reads every module needs.

use std::time::Duration;

use base64::Engine;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::Value;
use tokio::sync::OnceCell;
use tracing::debug;

use crate::classify::{self, Failure};
use crate::config::ScimConfig;
use crate::escape::{query, segment};

/// SCIM's media type (RFC 7644 §8.1), sent as Content-Type and Accept.
pub const SCIM_JSON: &str = "application/scim+json";

/// How many list pages, and resources in all, are read at most (a leaver in more groups than
/// that is reported, not silently cut).
const MAX_PAGES: usize = 50;
const MAX_RESULTS: usize = 5000;

/// What the app's ServiceProviderConfig says about the features we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// `etag.supported`: writes carry If-Match with the version read just before.
    pub etag: bool,
    /// `patch.supported`: informational; deactivation and member removal need PATCH anyway.
    pub patch: bool,
}

/// One HTTP answer, whatever its status.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub etag: Option<String>,
    pub retry_after: Option<Duration>,
    pub body: Option<Value>,
    pub text: String,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn failure(&self) -> Failure {
        Failure {
            status: self.status,
            retry_after: self.retry_after,
            body: self.body.clone(),
            text: self.text.chars().take(300).collect(),
        }
    }
}

/// A SCIM resource as read, with the version to send back in If-Match.
#[derive(Debug, Clone)]
pub struct Resource {
    pub body: Value,
    /// The ETag header, else `meta.version`.
    pub version: Option<String>,
}

/// One SCIM app: the HTTP client, its root and what its ServiceProviderConfig announced.
pub struct Client {
    http: reqwest::Client,
    root: String,
    /// `count` per list page; 0 sends none.
    page_size: usize,
    features: OnceCell<Features>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds the client; no request is made.
    pub fn new(cfg: &ScimConfig) -> Result<Self, String> {
        let auth = match (&cfg.token, &cfg.username, &cfg.password) {
            (Some(token), _, _) => format!("Bearer {}", token.expose_secret()),
            (None, Some(user), Some(pass)) => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}:{}", pass.expose_secret()))
            ),
            _ => return Err("expected token or username + password, found neither".into()),
        };
        let mut auth = HeaderValue::from_str(&auth)
            .map_err(|_| "the credentials hold characters not allowed in a header".to_string())?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        headers.insert(ACCEPT, HeaderValue::from_static(SCIM_JSON));
        // No redirects (they would carry the credentials elsewhere; an app's SCIM root is
        // fixed) and no retries (the executor's).
        let http = revoke_http::builder(cfg.timeout())?
            .default_headers(headers)
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        Ok(Self {
            http,
            root: cfg.root().to_string(),
            page_size: cfg.page_size,
            features: OnceCell::new(),
        })
    }

    /// Sends one request to `path` (below the root, with its query) and returns the answer,
    /// whatever its status; only a transport fault is an error.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Reply, crate::ConnectorError> {
        let what = format!("{method} {path}");
        let mut req = self.http.request(method, format!("{}{path}", self.root));
        if let Some(b) = body {
            req = req
                .header(CONTENT_TYPE, SCIM_JSON)
                .body(serde_json::to_vec(b).map_err(|e| classify::bad_response(&what, e))?);
        }
        if let Some(v) = if_match {
            req = req.header("If-Match", v);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| classify::transport(&what, &e))?;
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let etag = header("etag");
        let retry_after = classify::retry_after(header("retry-after").as_deref());
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| classify::transport(&what, &e))?;
        let body = serde_json::from_slice::<Value>(&bytes).ok();
        let text = if body.is_none() {
            String::from_utf8_lossy(&bytes[..bytes.len().min(1000)]).into_owned()
        } else {
            String::new()
        };
        debug!(request = %what, status, "scim request");
        Ok(Reply {
            status,
            etag,
            retry_after,
            body,
            text,
        })
    }

    /// The ServiceProviderConfig's etag and patch support, read once per connector. An app that
    /// has none (404) is taken as PATCH without ETags.
    pub async fn features(&self) -> Result<Features, crate::ConnectorError> {
        self.features
            .get_or_try_init(|| async {
                let r = self
                    .send(Method::GET, "/ServiceProviderConfig", None, None)
                    .await?;
                if r.status == 404 {
                    return Ok(Features {
                        etag: false,
                        patch: true,
                    });
                }
                if !r.ok() {
                    return Err(classify::status(
                        "GET /ServiceProviderConfig",
                        &r.failure(),
                    ));
                }
                let supported = |name: &str| {
                    r.body
                        .as_ref()
                        .and_then(|b| b.get(name))
                        .and_then(|f| f.get("supported"))
                        .and_then(Value::as_bool)
                };
                let f = Features {
                    etag: supported("etag").unwrap_or(false),
                    patch: supported("patch").unwrap_or(true),
                };
                debug!(root = %self.root, etag = f.etag, patch = f.patch, "scim service provider config");
                Ok(f)
            })
            .await
            .copied()
    }

    /// One resource by id (`/Users`, `/Groups`); `None` when the app answers 404.
    pub async fn get(
        &self,
        endpoint: &str,
        id: &str,
        attributes: Option<&str>,
    ) -> Result<Option<Resource>, crate::ConnectorError> {
        let mut path = format!("{endpoint}/{}", segment(id));
        if let Some(a) = attributes {
            path.push('?');
            path.push_str(&query(&[("attributes", a)]));
        }
        let r = self.send(Method::GET, &path, None, None).await?;
        if r.status == 404 {
            return Ok(None);
        }
        if !r.ok() {
            return Err(classify::status(&format!("GET {path}"), &r.failure()));
        }
        let Some(body) = r.body.filter(Value::is_object) else {
            return Err(classify::bad_response(
                &format!("GET {path}"),
                "expected a JSON object",
            ));
        };
        let version = r.etag.or_else(|| {
            body.pointer("/meta/version")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        Ok(Some(Resource { body, version }))
    }

    /// The query of one list page from `start`: `count` only when the app takes one.
    pub fn page_query<'a>(&self, start: &'a str, count: &'a str) -> Vec<(&'static str, &'a str)> {
        let mut pairs = vec![("startIndex", start)];
        if self.page_size > 0 {
            pairs.push(("count", count));
        }
        pairs
    }

    /// Every resource of `endpoint` the app answers for `filter`, page by page. The app is not
    /// trusted to have applied the filter (some ignore it and list everything): callers check
    /// each resource themselves.
    pub async fn list(
        &self,
        endpoint: &str,
        filter: &str,
        attributes: Option<&str>,
    ) -> Result<Vec<Value>, crate::ConnectorError> {
        let mut out = Vec::new();
        let mut start = 1usize;
        let what = format!("GET {endpoint}?filter={filter}");
        let count_s = self.page_size.to_string();
        for _ in 0..MAX_PAGES {
            let start_s = start.to_string();
            // An empty filter lists every resource.
            let mut pairs = if filter.is_empty() {
                vec![]
            } else {
                vec![("filter", filter)]
            };
            pairs.extend(self.page_query(&start_s, &count_s));
            if let Some(a) = attributes {
                pairs.push(("attributes", a));
            }
            let path = format!("{endpoint}?{}", query(&pairs));
            let r = self.send(Method::GET, &path, None, None).await?;
            if !r.ok() {
                return Err(classify::status(&what, &r.failure()));
            }
            let body = r.body.unwrap_or(Value::Null);
            let page: Vec<Value> = match body.get("Resources") {
                Some(Value::Array(a)) => a.clone(),
                None | Some(Value::Null) => vec![],
                Some(_) => {
                    return Err(classify::bad_response(
                        &what,
                        "expected Resources to be a list",
                    ))
                }
            };
            let total = body
                .get("totalResults")
                .and_then(Value::as_u64)
                .unwrap_or(0) as usize;
            let got = page.len();
            out.extend(page);
            if got == 0 || out.len() >= total {
                return Ok(out);
            }
            if out.len() > MAX_RESULTS {
                break;
            }
            start += got;
        }
        Err(classify::bad_response(
            &what,
            format!("expected at most {MAX_RESULTS} results in {MAX_PAGES} pages, found more"),
        ))
    }
}
