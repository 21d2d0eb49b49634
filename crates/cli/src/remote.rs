//! `revokectl --server URL`: the daemon's JSON API, with the same bodies the daemon uses
//! (`revoked::types`), so both ends agree on every field.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use reqwest::{Method, StatusCode, Url};
use revoked::types::ErrorBody;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// How long one API request may take, connecting included.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Where the daemon is and the bearer token to show it.
#[derive(Debug, Clone)]
pub struct Remote {
    base: Url,
    token: Option<String>,
    http: reqwest::Client,
}

/// The HTTP client of every command that talks to a server (installs the TLS crypto provider once).
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    // reqwest is built without a default provider: the process picks ring, once.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .user_agent(concat!("revokectl/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the HTTP client")
}

/// Parses an `http(s)://` URL given by the user; `what` names the flag.
pub fn parse_url(what: &str, url: &str) -> anyhow::Result<Url> {
    let parsed = Url::parse(url.trim())
        .map_err(|e| anyhow!("{what}: expected an http:// or https:// URL, found {url:?} ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        bail!(
            "{what}: expected an http:// or https:// URL, found the scheme {:?}",
            parsed.scheme()
        );
    }
    Ok(parsed)
}

/// The token from `--token-file` (first line, trimmed) or `--token`/`REVOKE_TOKEN`.
pub fn resolve_token(
    token: Option<String>,
    token_file: Option<&Path>,
) -> anyhow::Result<Option<String>> {
    if let Some(path) = token_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--token-file: cannot read {}", path.display()))?;
        let t = text.trim();
        if t.is_empty() {
            bail!(
                "--token-file: expected a token in {}, found an empty file",
                path.display()
            );
        }
        return Ok(Some(t.to_string()));
    }
    Ok(token
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty()))
}

/// Says what an error answer means: the status, and the server's own message.
pub fn describe_error(status: StatusCode, body: &str) -> String {
    let message = serde_json::from_str::<ErrorBody>(body)
        .map(|e| e.error)
        .unwrap_or_else(|_| {
            let t = body.trim();
            if t.is_empty() {
                "no message".to_string()
            } else {
                t.chars().take(500).collect()
            }
        });
    let code = status.as_u16();
    let reason = status.canonical_reason().unwrap_or("error").to_lowercase();
    match status {
        StatusCode::UNAUTHORIZED => format!(
            "the server refused the request ({code} {reason}): {message}; pass an API token with --token, --token-file or REVOKE_TOKEN (`revokectl token new` makes one)"
        ),
        StatusCode::FORBIDDEN => format!(
            "the server refused the request ({code} {reason}): {message}; `revokectl token new --scope operator` makes a token that may change jobs"
        ),
        _ => format!("the server answered {code}: {message}"),
    }
}

/// The `cursor` parameter of the `rel="next"` target in a `Link` header value.
fn next_cursor(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next");
        if !is_next {
            return None;
        }
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let url = Url::parse("http://relative.invalid/")
            .ok()?
            .join(target)
            .ok()?;
        let cursor = url
            .query_pairs()
            .find(|(k, _)| k == "cursor")?
            .1
            .into_owned();
        Some(cursor)
    })
}

impl Remote {
    pub fn new(server: &str, token: Option<String>) -> anyhow::Result<Self> {
        Ok(Self {
            base: parse_url("--server", server)?,
            token,
            http: http_client()?,
        })
    }

    /// The URL of an API path, each segment percent-encoded.
    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> anyhow::Result<Url> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| {
                anyhow!(
                    "--server: expected a URL that can have a path, found {}",
                    self.base
                )
            })?
            .pop_if_empty()
            .extend(segments);
        url.set_query(None);
        if !query.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// Sends a request; a non-2xx answer becomes an error carrying the server's message.
    async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<(StatusCode, String)> {
        let (status, _, text) = self
            .send_with_headers(method, segments, query, body)
            .await?;
        Ok((status, text))
    }

    /// `send`, also giving the answer's headers.
    async fn send_with_headers(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<(StatusCode, reqwest::header::HeaderMap, String)> {
        let url = self.url(segments, query)?;
        let mut req = self.http.request(method.clone(), url.clone());
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| anyhow!("cannot reach the server at {}: {e}", self.base))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp
            .text()
            .await
            .map_err(|e| anyhow!("{method} {}: cannot read the answer: {e}", url.path()))?;
        if !status.is_success() {
            bail!("{}", describe_error(status, &text));
        }
        Ok((status, headers, text))
    }

    /// A GET of one page of a listing: the decoded body and the `cursor` of its
    /// `Link: <...>; rel="next"` header (none on the last page, or from a daemon without paging).
    pub async fn get_page<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> anyhow::Result<(T, Option<String>)> {
        let (_, headers, text) = self
            .send_with_headers(Method::GET, segments, query, None)
            .await?;
        let value = serde_json::from_str(&text).map_err(|e| {
            anyhow!(
                "{}: expected the daemon's JSON answer, found something else ({e})",
                segments.join("/")
            )
        })?;
        let next = headers
            .get_all(reqwest::header::LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(next_cursor);
        Ok((value, next))
    }

    /// A JSON request and its decoded answer.
    pub async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&impl Serialize>,
    ) -> anyhow::Result<(StatusCode, T)> {
        let body = body.map(serde_json::to_value).transpose()?;
        let (status, text) = self.send(method, segments, query, body.as_ref()).await?;
        let value = serde_json::from_str(&text).map_err(|e| {
            anyhow!(
                "{}: expected the daemon's JSON answer, found something else ({e})",
                segments.join("/")
            )
        })?;
        Ok((status, value))
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> anyhow::Result<T> {
        Ok(self
            .json(Method::GET, segments, query, None::<&()>)
            .await?
            .1)
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &impl Serialize,
    ) -> anyhow::Result<(StatusCode, T)> {
        self.json(Method::POST, segments, &[], Some(body)).await
    }

    /// A GET whose answer is text (evidence exports).
    pub async fn get_text(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> anyhow::Result<String> {
        Ok(self.send(Method::GET, segments, query, None).await?.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_cursor_is_read_from_a_link_header() {
        assert_eq!(
            next_cursor("</api/v1/jobs?state=failed&cursor=3132>; rel=\"next\"").as_deref(),
            Some("3132")
        );
        assert_eq!(
            next_cursor("<http://h/a?cursor=1>; rel=\"prev\", <http://h/a?x=1&cursor=2>; rel=next")
                .as_deref(),
            Some("2")
        );
        assert_eq!(next_cursor("</api/v1/jobs?limit=5>; rel=\"next\""), None);
        assert_eq!(next_cursor("garbage"), None);
    }

    #[test]
    fn urls_keep_a_base_path_and_encode_segments() {
        let r = Remote::new("http://h:1/revoked/", None).expect("remote");
        let u = r
            .url(
                &["api", "v1", "jobs", "a/b c"],
                &[("state", "failed".into())],
            )
            .expect("url");
        assert_eq!(
            u.as_str(),
            "http://h:1/revoked/api/v1/jobs/a%2Fb%20c?state=failed"
        );
        let r = Remote::new("http://h:1", None).expect("remote");
        let u = r.url(&["api", "v1", "status"], &[]).expect("url");
        assert_eq!(u.as_str(), "http://h:1/api/v1/status");
    }

    #[test]
    fn errors_name_the_status_and_the_server_message() {
        let m = describe_error(StatusCode::FORBIDDEN, r#"{"error":"expected operator"}"#);
        assert!(
            m.contains("403 forbidden") && m.contains("expected operator"),
            "{m}"
        );
        let m = describe_error(StatusCode::UNAUTHORIZED, "");
        assert!(m.contains("401") && m.contains("--token"), "{m}");
        let m = describe_error(StatusCode::CONFLICT, r#"{"error":"not held"}"#);
        assert!(m.contains("409") && m.contains("not held"), "{m}");
    }

    #[test]
    fn only_http_urls() {
        assert!(parse_url("--server", "ftp://x").is_err());
        assert!(parse_url("--server", "localhost:8470").is_err());
        assert!(parse_url("--server", "https://revoked.example").is_ok());
    }
}
