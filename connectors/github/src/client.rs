//! The octocrab clients (REST and GraphQL) of one instance, behind the instance's governor.
//!
//! octocrab is built without its `retry`, `follow-redirect` and `jwt` features: it never sends a
//! request twice on its own. Every request goes through [`Client::send`], which adds the
//! credentials (auth.rs), takes a governor permit, applies the timeout, reads GitHub's
//! rate-limit headers and classifies failures. Paths are always relative, so octocrab's base URL
//! (github.com or an Enterprise Server's `/api/v3`) is prepended and the credentials go only there.

use std::time::Duration;

use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use octocrab::Octocrab;
use revoke_core::ConnectorError;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use crate::auth::{AppAuth, Auth};

use crate::classify;
use crate::config::GithubConfig;
use crate::pace::{Governor, Verdict};
use crate::reply::{excerpt, Reply};

/// GitHub's REST API version we were written against.
const API_VERSION: &str = "2022-11-28";
const PAGE: usize = 100;

#[derive(Debug)]
pub struct Client {
    instance: String,
    rest: Octocrab,
    rest_base_path: String,
    graphql: Octocrab,
    graphql_path: String,
    auth: Auth,
    gov: Governor,
    timeout: Duration,
}

/// An octocrab client for `base` with no credentials of its own: `send` adds them, so App
/// tokens can be refreshed without rebuilding the client.
fn build(cfg: &GithubConfig, base: &str) -> Result<Octocrab, String> {
    let uri: Uri = base
        .parse()
        .map_err(|e| format!("expected an http(s) url, found {base:?} ({e})"))?;
    Octocrab::builder()
        .base_uri(uri)
        .map_err(|e| format!("base url {base:?}: {e}"))?
        .add_header(http::header::ACCEPT, "application/json".into())
        .add_header(
            HeaderName::from_static("x-github-api-version"),
            API_VERSION.into(),
        )
        .add_header(
            http::header::USER_AGENT,
            concat!("revoked/", env!("CARGO_PKG_VERSION")).into(),
        )
        .set_connect_timeout(Some(cfg.timeout()))
        .set_read_timeout(Some(cfg.timeout()))
        .set_write_timeout(Some(cfg.timeout()))
        .build()
        .map_err(|e| format!("building the github client: {e}"))
}

/// Splits `https://h/api/graphql` into the base octocrab prepends and the path we send.
fn split_last_segment(url: &str) -> (String, String) {
    match url.rfind('/') {
        Some(i) if url[..i].contains("://") && i > url.find("://").unwrap_or(0) + 2 => {
            (url[..i].to_string(), url[i..].to_string())
        }
        _ => (url.to_string(), "/".into()),
    }
}

fn base_path(url: &str) -> String {
    url.parse::<Uri>()
        .map(|u| u.path().trim_end_matches('/').to_string())
        .unwrap_or_default()
}

/// Which way a request goes and how it is paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    Read,
    Mutation,
    Graphql,
    /// Minting an installation token: a read for pacing, authenticated by the App's JWT.
    Mint,
}

impl Client {
    /// Builds both clients without any network call (the App token is minted on first use).
    pub fn new(instance: &str, cfg: &GithubConfig) -> Result<Self, String> {
        let rest = build(cfg, cfg.api_url())?;
        let (gql_base, graphql_path) = split_last_segment(&cfg.graphql_url());
        let graphql = build(cfg, &gql_base)?;
        let auth = match (
            cfg.app_id,
            cfg.private_key.as_ref(),
            cfg.installation_id,
            cfg.token.as_ref(),
        ) {
            (Some(app), Some(key), Some(inst), _) => {
                Auth::App(Box::new(AppAuth::new(app, inst, key)?))
            }
            (_, _, _, Some(token)) => Auth::Token(token.clone()),
            _ => return Err("expected a token or a GitHub App, found neither".into()),
        };
        Ok(Self {
            instance: instance.to_string(),
            rest,
            rest_base_path: base_path(cfg.api_url()),
            graphql,
            graphql_path,
            auth,
            gov: Governor::new(
                instance,
                cfg.read_concurrency as usize,
                cfg.mutation_spacing(),
                cfg.secondary_limit_wait(),
            ),
            timeout: cfg.timeout(),
        })
    }

    /// Installation tokens minted so far (0 with a personal access token).
    pub fn tokens_minted(&self) -> u64 {
        match &self.auth {
            Auth::App(a) => a.minted(),
            Auth::Token(_) => 0,
        }
    }

    /// The Authorization header: the token, or a fresh installation token (minted when the
    /// cached one has less than five minutes left).
    async fn authorization(&self) -> Result<HeaderValue, ConnectorError> {
        let token = match &self.auth {
            Auth::Token(t) => t.clone(),
            Auth::App(app) => {
                let mut slot = app.slot().await;
                match AppAuth::fresh(&slot) {
                    Some(t) => t,
                    None => {
                        let (t, exp) = self.mint(app).await?;
                        *slot = Some((t.clone(), exp));
                        app.count_minted();
                        t
                    }
                }
            }
        };
        let mut v =
            HeaderValue::from_str(&format!("Bearer {}", token.expose_secret())).map_err(|_| {
                ConnectorError::auth(
                    "bad_credentials",
                    "the token has characters a header cannot carry",
                )
            })?;
        v.set_sensitive(true);
        Ok(v)
    }

    /// `POST /app/installations/{id}/access_tokens`, authenticated by the App's JWT.
    async fn mint(&self, app: &AppAuth) -> Result<(SecretString, DateTime<Utc>), ConnectorError> {
        let path = format!("/app/installations/{}/access_tokens", app.installation_id);
        let jwt = app.jwt().map_err(|e| ConnectorError::auth("app_jwt", e))?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {jwt}"))
            .map_err(|_| ConnectorError::auth("app_jwt", "the jwt is not a valid header"))?;
        auth.set_sensitive(true);
        let r = self
            .exchange(Lane::Mint, Method::POST, &path, None, auth)
            .await?;
        if r.status != StatusCode::CREATED && r.status != StatusCode::OK {
            let mut e = classify::status(&Method::POST, &path, &r);
            if r.status == StatusCode::NOT_FOUND {
                e = ConnectorError::auth(
                    "app_installation",
                    format!("{} (is installation_id right?)", e.message),
                );
            }
            return Err(e);
        }
        let v = r.json()?;
        let token = v.get("token").and_then(Value::as_str);
        let exp = v
            .get("expires_at")
            .and_then(Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok());
        match (token, exp) {
            (Some(t), Some(exp)) => {
                tracing::info!(connector = %self.instance, expires_at = %exp, "minted a github app installation token");
                Ok((SecretString::from(t.to_string()), exp.with_timezone(&Utc)))
            }
            _ => Err(ConnectorError::permanent(
                "bad_response",
                format!(
                    "POST {path}: expected token and expires_at, found {}",
                    excerpt(&r.body)
                ),
            )),
        }
    }

    /// One request with credentials; an App's 401 (a token revoked or expired early) is
    /// answered by minting a new token and sending once more: authentication, not a retry.
    async fn send(
        &self,
        lane: Lane,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, ConnectorError> {
        let auth = self.authorization().await?;
        let r = self
            .exchange(lane, method.clone(), path, body, auth)
            .await?;
        if let (StatusCode::UNAUTHORIZED, Auth::App(app)) = (r.status, &self.auth) {
            *app.slot().await = None;
            let auth = self.authorization().await?;
            return self.exchange(lane, method, path, body, auth).await;
        }
        Ok(r)
    }

    /// One request through the governor; a rate-limit refusal is an error here, any other
    /// status is the caller's to judge.
    async fn exchange(
        &self,
        lane: Lane,
        method: Method,
        path: &str,
        body: Option<&Value>,
        auth: HeaderValue,
    ) -> Result<Reply, ConnectorError> {
        let crab = if lane == Lane::Graphql {
            &self.graphql
        } else {
            &self.rest
        };
        let permit = if lane == Lane::Mutation {
            self.gov.mutation().await
        } else {
            self.gov.read().await
        };
        tracing::debug!(connector = %self.instance, %method, path, "github request");
        let call = async {
            let builder = http::Request::builder()
                .method(method.clone())
                .uri(path)
                .header(http::header::AUTHORIZATION, auth);
            let req = crab.build_request(builder, body)?;
            let resp = crab.execute(req).await?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = crab.body_to_string(resp).await?;
            Ok::<_, octocrab::Error>(Reply {
                status,
                headers,
                body,
            })
        };
        let reply = match tokio::time::timeout(self.timeout, call).await {
            Err(_) => {
                return Err(ConnectorError::retryable(
                    "timeout",
                    format!("{method} {path}: no answer within {:?}", self.timeout),
                ))
            }
            Ok(Err(e)) => return Err(classify::transport(&method, path, &e)),
            Ok(Ok(r)) => r,
        };
        let verdict = self.gov.observe(reply.status, &reply.headers, &reply.body);
        drop(permit);
        if let Verdict::Limited { wait, reason } = verdict {
            return Err(classify::limited(&method, path, &reply, wait, reason));
        }
        Ok(reply)
    }

    pub async fn get(&self, path: &str) -> Result<Reply, ConnectorError> {
        self.send(Lane::Read, Method::GET, path, None).await
    }

    pub async fn delete(&self, path: &str) -> Result<Reply, ConnectorError> {
        self.send(Lane::Mutation, Method::DELETE, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Reply, ConnectorError> {
        self.send(Lane::Mutation, Method::POST, path, Some(body))
            .await
    }

    /// A JSON object, or `None` on 404.
    pub async fn get_opt(&self, path: &str) -> Result<Option<Value>, ConnectorError> {
        let r = self.get(path).await?;
        match r.status {
            StatusCode::OK => r.json().map(Some),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(classify::status(&Method::GET, path, &r)),
        }
    }

    /// Every item of a paged list (`per_page=100`, following `Link: rel="next"`); `None` on 404.
    pub async fn list(&self, path: &str) -> Result<Option<Vec<Value>>, ConnectorError> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut next = Some(format!("{path}{sep}per_page={PAGE}"));
        let mut out = Vec::new();
        while let Some(p) = next.take() {
            let r = self.get(&p).await?;
            match r.status {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND if out.is_empty() => return Ok(None),
                _ => return Err(classify::status(&Method::GET, &p, &r)),
            }
            match r.json()? {
                Value::Array(items) => out.extend(items),
                other => {
                    return Err(ConnectorError::permanent(
                        "bad_response",
                        format!(
                            "GET {p}: expected a list, found {}",
                            excerpt(&other.to_string())
                        ),
                    ))
                }
            }
            next = next_link(&r.headers).map(|u| self.relative(&u));
        }
        Ok(Some(out))
    }

    /// A `Link` URL made relative again, so it goes through octocrab's base (and credentials).
    fn relative(&self, url: &str) -> String {
        let pq = url
            .parse::<Uri>()
            .ok()
            .and_then(|u| u.path_and_query().map(|pq| pq.as_str().to_string()))
            .unwrap_or_else(|| url.to_string());
        match pq.strip_prefix(&self.rest_base_path) {
            Some(rest) if !self.rest_base_path.is_empty() && rest.starts_with('/') => {
                rest.to_string()
            }
            _ => pq,
        }
    }

    /// One GraphQL query; returns `data`, or the errors GitHub gave, classified.
    pub async fn graphql(&self, query: &str, variables: Value) -> Result<Value, ConnectorError> {
        let body = json!({ "query": query, "variables": variables });
        let r = self
            .send(Lane::Graphql, Method::POST, &self.graphql_path, Some(&body))
            .await?;
        if r.status != StatusCode::OK {
            return Err(classify::status(&Method::POST, &self.graphql_path, &r));
        }
        let v = r.json()?;
        if let Some(errors) = v.get("errors").and_then(Value::as_array) {
            if !errors.is_empty() {
                return Err(classify::graphql(errors));
            }
        }
        Ok(v.get("data").cloned().unwrap_or(Value::Null))
    }
}

/// The `rel="next"` URL of a GitHub `Link` header.
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = headers.get(http::header::LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
    })
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn next_link_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::LINK,
            HeaderValue::from_static(
                "<https://api.github.com/orgs/a/repos?per_page=100&page=3>; rel=\"next\", <https://api.github.com/orgs/a/repos?per_page=100&page=9>; rel=\"last\"",
            ),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://api.github.com/orgs/a/repos?per_page=100&page=3")
        );
        h.insert(
            http::header::LINK,
            HeaderValue::from_static("<https://x/a?page=1>; rel=\"prev\""),
        );
        assert_eq!(next_link(&h), None);
    }

    #[test]
    fn graphql_url_splits_into_base_and_path() {
        assert_eq!(
            split_last_segment("https://api.github.com/graphql"),
            ("https://api.github.com".into(), "/graphql".into())
        );
        assert_eq!(
            split_last_segment("https://ghe.corp/api/graphql"),
            ("https://ghe.corp/api".into(), "/graphql".into())
        );
        assert_eq!(base_path("https://ghe.corp/api/v3"), "/api/v3");
        assert_eq!(base_path("https://api.github.com"), "");
    }
}
