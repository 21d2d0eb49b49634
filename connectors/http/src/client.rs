//! The HTTP client of one instance: its credential, its default headers and its rate budget,
//! shared by every job of the instance.
//!
//! - reqwest from `revoke_http::builder`: explicit rustls, no redirects, no retries (only the
//!   executor retries; each answer is classified by the definition's rules).
//! - The credential: bearer, basic, an API key header, or an OAuth 2.0 client-credentials token
//!   fetched lazily, cached until a minute before it expires, and dropped on a 401 so the
//!   executor's next attempt fetches a new one.
//! - The budget: at most `requests` per `per_secs`, spaced evenly; a call waits for its slot.
//!   Retry-After and X-RateLimit-Reset of an answer are read by the classification (a wait the
//!   executor honours), never slept on here.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;
use revoke_core::ConnectorError;
use revoke_http::encode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::debug;

use crate::classify::{self, Reply};
use crate::config::{Auth, ClientAuth, Definition, RequestDef};
use crate::template::{render, Filter, Position, RenderError, Template, Var};

/// A request ready to send: every value already escaped for its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub method: Method,
    /// The path and query, appended to the base URL.
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Body>,
}

/// A request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Json(Value),
    Form(String),
}

impl Rendered {
    /// The path without the query, for logs and messages (a query may hold a person's email).
    pub fn path(&self) -> &str {
        self.path_and_query
            .split('?')
            .next()
            .unwrap_or(&self.path_and_query)
    }
}

/// Renders a request template with `value`; a value missing or refused is named.
pub fn render_request(
    r: &RequestDef,
    value: &dyn Fn(&Var) -> Option<String>,
    extra_query: &[(String, String)],
) -> Result<Rendered, RenderError> {
    let method = Method::from_bytes(r.method.as_bytes()).unwrap_or(Method::GET);
    let mut pq = render(&r.path, value, Position::Path)?;
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (k, v) in &r.query {
        pairs.push((k.clone(), render(v, value, Position::Raw)?));
    }
    pairs.extend(extra_query.iter().cloned());
    if !pairs.is_empty() {
        pq.push('?');
        pq.push_str(&form_encode(&pairs));
    }
    let mut headers = Vec::new();
    for (k, v) in &r.headers {
        headers.push((k.clone(), render(v, value, Position::Header)?));
    }
    let body = if let Some(j) = &r.json {
        Some(Body::Json(render_json(j, value)?))
    } else if let Some(f) = &r.form {
        let mut pairs = Vec::new();
        for (k, v) in f {
            pairs.push((k.clone(), render(v, value, Position::Raw)?));
        }
        Some(Body::Form(form_encode(&pairs)))
    } else {
        None
    };
    Ok(Rendered {
        method,
        path_and_query: pq,
        headers,
        body,
    })
}

/// `k=v&k=v`, each key and value percent-encoded whole.
pub fn form_encode(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A JSON body with every string rendered (raw: the serializer escapes it).
fn render_json(v: &Value, value: &dyn Fn(&Var) -> Option<String>) -> Result<Value, RenderError> {
    Ok(match v {
        Value::String(s) => {
            let text = render(s, value, Position::Raw)?;
            match Template::parse(s).ok().and_then(|t| t.sole_filter()) {
                Some(Filter::Number) => serde_json::from_str::<serde_json::Number>(text.trim())
                    .map(Value::Number)
                    .map_err(|_| RenderError::NotA("number", text))?,
                Some(Filter::Bool) => match text.trim() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    _ => return Err(RenderError::NotA("boolean", text)),
                },
                None => Value::String(text),
            }
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| render_json(x, value))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, x) in m {
                out.insert(k.clone(), render_json(x, value)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// The connection state of one instance.
pub struct Client {
    instance: String,
    http: reqwest::Client,
    base: String,
    auth: Auth,
    token: Mutex<Option<(SecretString, Instant)>>,
    /// The earliest time the next call may leave (the budget).
    next_slot: Mutex<Instant>,
    spacing: Option<Duration>,
    calls: AtomicU64,
    mutations: AtomicU64,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("instance", &self.instance)
            .field("base", &self.base)
            .field("spacing", &self.spacing)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds the client; makes no network call.
    pub fn new(instance: &str, def: &Definition) -> Result<Client, String> {
        let mut headers = HeaderMap::new();
        for (k, v) in &def.headers {
            let name =
                HeaderName::from_bytes(k.as_bytes()).map_err(|e| format!("header {k:?}: {e}"))?;
            let value = HeaderValue::from_str(v).map_err(|e| format!("header {k:?}: {e}"))?;
            headers.insert(name, value);
        }
        let http = revoke_http::builder(def.timeout())?
            .default_headers(headers)
            .build()
            .map_err(|e| format!("cannot build the http client: {e}"))?;
        let spacing = def
            .rate_limit
            .as_ref()
            .map(|r| Duration::from_secs_f64(r.per_secs.max(1) as f64 / r.requests.max(1) as f64));
        Ok(Client {
            instance: instance.to_string(),
            http,
            base: def.base().to_string(),
            auth: def.auth.clone(),
            token: Mutex::new(None),
            next_slot: Mutex::new(Instant::now()),
            spacing,
            calls: AtomicU64::new(0),
            mutations: AtomicU64::new(0),
        })
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Mutating requests sent (POST, PUT, PATCH, DELETE), token requests not counted.
    pub fn mutations(&self) -> u64 {
        self.mutations.load(Ordering::Relaxed)
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn wait_for_slot(&self) {
        let Some(spacing) = self.spacing else {
            return;
        };
        let at = {
            let mut next = self.next_slot.lock().await;
            let now = Instant::now();
            let at = (*next).max(now);
            *next = at + spacing;
            at
        };
        tokio::time::sleep_until(at).await;
    }

    /// The credential's header, fetching an OAuth token when none is cached.
    async fn authorization(&self) -> Result<Option<(String, SecretString)>, ConnectorError> {
        Ok(match &self.auth {
            Auth::None => None,
            Auth::Bearer { token } => Some((
                "authorization".into(),
                SecretString::from(format!("Bearer {}", token.expose_secret())),
            )),
            Auth::Basic { username, password } => {
                let raw = format!("{username}:{}", password.expose_secret());
                Some((
                    "authorization".into(),
                    SecretString::from(format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(raw)
                    )),
                ))
            }
            Auth::ApiKey {
                header,
                token,
                prefix,
            } => Some((
                header.to_ascii_lowercase(),
                SecretString::from(format!("{prefix}{}", token.expose_secret())),
            )),
            Auth::Oauth2ClientCredentials { .. } => {
                let t = self.oauth_token().await?;
                Some((
                    "authorization".into(),
                    SecretString::from(format!("Bearer {}", t.expose_secret())),
                ))
            }
            Auth::TokenExchange { header, prefix, .. } => {
                let t = self.exchanged_token().await?;
                Some((
                    header.to_ascii_lowercase(),
                    SecretString::from(format!("{prefix}{}", t.expose_secret())),
                ))
            }
        })
    }

    /// A token-exchange credential's token: cached for `ttl_secs` less a minute.
    async fn exchanged_token(&self) -> Result<SecretString, ConnectorError> {
        let Auth::TokenExchange {
            url,
            json,
            secret_field,
            secret,
            token_path,
            ttl_secs,
            ..
        } = &self.auth
        else {
            return Err(ConnectorError::permanent("bad_config", "no token exchange"));
        };
        let mut cached = self.token.lock().await;
        if let Some((t, until)) = cached.as_ref() {
            if Instant::now() < *until {
                return Ok(t.clone());
            }
        }
        let mut body = json.clone();
        body.insert(
            secret_field.clone(),
            Value::String(secret.expose_secret().to_string()),
        );
        self.wait_for_slot().await;
        self.calls.fetch_add(1, Ordering::Relaxed);
        let path = "(token exchange)";
        let resp = self
            .http
            .post(url)
            .header("accept", "application/json")
            .json(&Value::Object(body))
            .send()
            .await
            .map_err(|e| revoke_http::transport(&Method::POST, path, &e.without_url()))?;
        let reply = crate::classify::read(resp).await;
        if !(200..300).contains(&reply.status) {
            return Err(classify::token_error(&reply));
        }
        let tok = reply
            .json()
            .and_then(|j| {
                crate::jsonpath::JsonPath::parse(token_path)
                    .ok()
                    .and_then(|p| p.first(&j).and_then(Value::as_str).map(str::to_string))
            })
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                revoke_http::bad_response(
                    &Method::POST,
                    path,
                    &format!("no token at {token_path} in the answer"),
                )
            })?;
        let until = Instant::now() + Duration::from_secs(ttl_secs.saturating_sub(60).max(1));
        let t = SecretString::from(tok);
        *cached = Some((t.clone(), until));
        Ok(t)
    }

    async fn oauth_token(&self) -> Result<SecretString, ConnectorError> {
        let Auth::Oauth2ClientCredentials {
            token_url,
            client_id,
            client_secret,
            scopes,
            client_auth,
        } = &self.auth
        else {
            return Err(ConnectorError::permanent("bad_config", "no oauth client"));
        };
        let mut cached = self.token.lock().await;
        if let Some((t, until)) = cached.as_ref() {
            if Instant::now() < *until {
                return Ok(t.clone());
            }
        }
        let mut pairs = vec![("grant_type".to_string(), "client_credentials".to_string())];
        if !scopes.is_empty() {
            pairs.push(("scope".into(), scopes.join(" ")));
        }
        let mut req = self
            .http
            .post(token_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json");
        match client_auth {
            ClientAuth::Basic => {
                let raw = format!(
                    "{}:{}",
                    encode(client_id),
                    encode(client_secret.expose_secret())
                );
                req = req.header(
                    "authorization",
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(raw)
                    ),
                );
            }
            ClientAuth::Body => {
                pairs.push(("client_id".into(), client_id.clone()));
                pairs.push(("client_secret".into(), client_secret.expose_secret().into()));
            }
        }
        self.wait_for_slot().await;
        self.calls.fetch_add(1, Ordering::Relaxed);
        let path = "(token endpoint)";
        let resp = req
            .body(form_encode(&pairs))
            .send()
            .await
            .map_err(|e| revoke_http::transport(&Method::POST, path, &e.without_url()))?;
        let reply = crate::classify::read(resp).await;
        if !(200..300).contains(&reply.status) {
            return Err(classify::token_error(&reply));
        }
        let json = reply.json().unwrap_or(Value::Null);
        let Some(tok) = json.get("access_token").and_then(Value::as_str) else {
            return Err(revoke_http::bad_response(
                &Method::POST,
                path,
                "no access_token in the token answer",
            ));
        };
        let ttl = json
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(300);
        let until = Instant::now() + Duration::from_secs(ttl.saturating_sub(60).max(1));
        let t = SecretString::from(tok.to_string());
        *cached = Some((t.clone(), until));
        Ok(t)
    }

    /// Sends one rendered request to the base URL; the answer whatever its status.
    pub async fn send(&self, r: &Rendered) -> Result<Reply, ConnectorError> {
        let url = format!("{}{}", self.base, r.path_and_query);
        self.send_url(r, &url).await
    }

    /// Sends `r` to `url` (a Link header's next page: same origin and path prefix only).
    pub async fn send_url(&self, r: &Rendered, url: &str) -> Result<Reply, ConnectorError> {
        if !url.starts_with(&format!("{}/", self.base)) && url != self.base {
            return Err(ConnectorError::permanent(
                "foreign_url",
                format!(
                    "{} {}: refused to send a request outside {} (a next-page link pointing elsewhere)",
                    r.method,
                    r.path(),
                    self.base
                ),
            ));
        }
        let mut req = self.http.request(r.method.clone(), url);
        if let Some((name, value)) = self.authorization().await? {
            let mut v = HeaderValue::from_str(value.expose_secret()).map_err(|_| {
                ConnectorError::permanent("bad_credential", "the credential is not a header value")
            })?;
            v.set_sensitive(true);
            req = req.header(name, v);
        }
        for (k, v) in &r.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        match &r.body {
            Some(Body::Json(j)) => req = req.json(j),
            Some(Body::Form(f)) => {
                req = req
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(f.clone())
            }
            None => {}
        }
        self.wait_for_slot().await;
        self.calls.fetch_add(1, Ordering::Relaxed);
        if r.method != Method::GET {
            self.mutations.fetch_add(1, Ordering::Relaxed);
        }
        debug!(connector = %self.instance, method = %r.method, path = r.path(), "http request");
        let resp = req
            .send()
            .await
            .map_err(|e| revoke_http::transport(&r.method, r.path(), &e.without_url()))?;
        let reply = crate::classify::read(resp).await;
        if reply.status == 401
            && matches!(
                self.auth,
                Auth::Oauth2ClientCredentials { .. } | Auth::TokenExchange { .. }
            )
        {
            // The next attempt fetches a new token.
            *self.token.lock().await = None;
        }
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def(v: Value) -> Definition {
        let mut base = json!({
            "system": "t", "base_url": "http://127.0.0.1:9",
            "resources": {"u": {"id": "$.id", "discover": [{"path": "/u"}],
                "match": [{"path": "$.n", "equals": "{{subject.id}}"}]}}
        });
        for (k, x) in v.as_object().expect("table") {
            base[k] = x.clone();
        }
        Definition::from_value(&base).expect("a definition")
    }

    /// Virtual time (no timing assertion on the wall clock): 2 requests per second space the
    /// calls half a second apart, however many callers there are.
    #[tokio::test(start_paused = true)]
    async fn the_budget_spaces_calls_evenly() {
        let c = Client::new(
            "t",
            &def(json!({"rate_limit": {"requests": 2, "per_secs": 1}})),
        )
        .expect("client");
        let start = Instant::now();
        for _ in 0..5 {
            c.wait_for_slot().await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(2000));
        let free = Client::new("t", &def(json!({}))).expect("client");
        let start = Instant::now();
        for _ in 0..5 {
            free.wait_for_slot().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[test]
    fn a_request_is_rendered_with_every_value_escaped_for_its_place() {
        let r: RequestDef = serde_json::from_value(json!({
            "method": "POST", "path": "/t/{{item.id}}/m",
            "query": {"q": "name eq \"{{item.id}}\""},
            "headers": {"X-Who": "{{item.id}}"},
            "json": {"user": "{{item.id}}", "n": 3, "list": ["a{{item.id}}"], "num": "{{item.n | number}}", "on": "{{item.on|bool}}"}
        }))
        .expect("request");
        let v = |x: &Var| match x {
            Var::Item(f) if f == "id" => Some("a\"/b&c=d".to_string()),
            Var::Item(f) if f == "n" => Some("42".to_string()),
            Var::Item(f) if f == "on" => Some("false".to_string()),
            _ => None,
        };
        let out = render_request(&r, &v, &[("page".into(), "2".into())]).expect("renders");
        assert_eq!(
            out.path_and_query,
            "/t/a%22%2Fb%26c%3Dd/m?q=name%20eq%20%22a%22%2Fb%26c%3Dd%22&page=2"
        );
        assert_eq!(
            out.headers,
            vec![("X-Who".to_string(), "a\"/b&c=d".to_string())]
        );
        assert_eq!(
            out.body,
            Some(Body::Json(
                json!({"user": "a\"/b&c=d", "n": 3, "list": ["aa\"/b&c=d"], "num": 42, "on": false})
            ))
        );
        let not_a_number = |x: &Var| match x {
            Var::Item(f) if f == "n" => Some("4x".to_string()),
            Var::Item(_) => Some("v".to_string()),
            _ => None,
        };
        assert_eq!(
            render_request(&r, &not_a_number, &[]),
            Err(RenderError::NotA("number", "4x".into()))
        );
        let crlf = |x: &Var| matches!(x, Var::Item(_)).then(|| "x\r\nEvil: 1".to_string());
        assert!(matches!(
            render_request(&r, &crlf, &[]),
            Err(RenderError::Control(_))
        ));
    }
}
