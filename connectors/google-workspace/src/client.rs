//! The HTTP client of one Google Workspace instance: the access tokens (one per delegated
//! subject) and the pace, shared by every job and task of the instance.
//!
//! - reqwest on an explicit rustls config (ring, the system's roots), no redirects, no retries.
//! - A token is fetched with a signed assertion (auth.rs) at the key's `token_uri` and cached
//!   until five minutes before it expires; a 401 makes the client fetch a new one and send the
//!   call once more.
//! - The pace, per quota (Directory and Data Transfer; Licensing; Gmail; Drive; the token call):
//!   Directory and Licensing calls leave at most `requests_per_minute` per minute each, and Drive
//!   calls `drive_requests_per_minute`, evenly spaced, across every job of the instance (Gmail is
//!   a per-user quota a leaver barely touches: not paced). A rate-limit answer (403 `userRateLimitExceeded`, `rateLimitExceeded`,
//!   `quotaExceeded`, or 429) holds every call of the instance to that API for an exponential backoff
//!   (`backoff_ms`, doubled per consecutive refusal, at most 64 times) and is returned as
//!   `rate_limited` with that wait; a call that would wait longer than the request timeout fails
//!   at once as `rate_limited`, so the executor reschedules instead of a task sleeping. No call
//!   leaves before the hold ends.
//! - Google's batch endpoint (`batch_get`): Directory `GET`s in one `multipart/mixed` request,
//!   each part paced as a call of its own and its answer classified on its own.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use reqwest::Method;
use revoke_core::ConnectorError;
pub use revoke_http::encode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::time::Instant;
use tracing::{debug, info};

use crate::auth::Signer;
use crate::classify::{self, Reply};
use crate::config::{key_file, GoogleConfig, MobileDevices};

/// Whom a call acts as (the `sub` of its token).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Who {
    /// The configured admin: Admin SDK Directory, Data Transfer, Licensing.
    Admin,
    /// A mailbox's own user: Gmail settings (Gmail answers only its owner).
    Mailbox(String),
    /// A user reading their own Drive (the files they own, for the transfer's plan).
    Drive(String),
    /// The transfer's new owner moving what it received into the archive shared drive; a file's
    /// owner removing a departing client's share.
    DriveOwner(String),
    /// The admin on shared drives (`useDomainAdminAccess`): a token of its own, with the `drive`
    /// scope, fetched only when a shared drive is read or changed.
    AdminDrive,
}

/// The scopes of Gmail calls: vacation (basic) and forwarding (sharing).
pub const GMAIL_SCOPES: &[&str] = &[
    "https://www.googleapis.com/auth/gmail.settings.basic",
    "https://www.googleapis.com/auth/gmail.settings.sharing",
];

/// The scope of the Drive read: file metadata only (what the leaver owns and its size).
pub const DRIVE_SCOPES: &[&str] = &["https://www.googleapis.com/auth/drive.metadata.readonly"];

/// The scope of the archive move, a share's removal and the admin's shared-drive calls: Drive
/// has no narrower scope that moves or unshares files another app made.
pub const DRIVE_WRITE_SCOPES: &[&str] = &["https://www.googleapis.com/auth/drive"];

/// The scopes the admin's token asks for, from what the config makes the connector do; the
/// service account's domain-wide delegation must grant every one (docs/connectors/google-workspace.md).
pub fn admin_scopes(cfg: &GoogleConfig) -> Vec<&'static str> {
    let mut s = vec![
        "https://www.googleapis.com/auth/admin.directory.user",
        "https://www.googleapis.com/auth/admin.directory.user.security",
    ];
    if cfg.remove_groups {
        s.push("https://www.googleapis.com/auth/admin.directory.group.member");
    }
    if cfg.remove_roles {
        s.push("https://www.googleapis.com/auth/admin.directory.rolemanagement");
    }
    if cfg.transfer_to.is_some() {
        s.push("https://www.googleapis.com/auth/admin.datatransfer");
    }
    if !cfg.licences.is_empty() {
        s.push("https://www.googleapis.com/auth/apps.licensing");
    }
    match cfg.mobile_devices {
        Some(MobileDevices::List) => {
            s.push("https://www.googleapis.com/auth/admin.directory.device.mobile.readonly")
        }
        Some(MobileDevices::AccountWipe) => {
            s.push("https://www.googleapis.com/auth/admin.directory.device.mobile.action")
        }
        None => {}
    }
    s
}

struct Token {
    value: SecretString,
    generation: u64,
    fresh_until: Instant,
}

#[derive(Debug)]
struct Pace {
    interval: Duration,
    next_slot: Instant,
    hold_until: Option<Instant>,
    refusals: u32,
}

/// The quota a call counts against: each has its own pace and its own holds, so a Gmail refusal
/// does not stop Directory calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    /// Admin SDK Directory and Data Transfer: 2,400 queries per minute per user per project.
    Directory = 0,
    /// Enterprise License Manager: its own quota, paced like the Directory.
    Licensing = 1,
    /// Gmail: per-user units (15,000 per minute); a leaver costs a handful: not paced, only held.
    Gmail = 2,
    /// Drive: paced at `drive_requests_per_minute` (a client job lists every user's files).
    Drive = 3,
    /// The OAuth token endpoint: not paced, only held.
    Token = 4,
}

impl Api {
    fn of(path: &str) -> Api {
        if path.starts_with("/gmail/") {
            Api::Gmail
        } else if path.starts_with("/apps/licensing/") {
            Api::Licensing
        } else if path.starts_with("/drive/") {
            Api::Drive
        } else {
            Api::Directory
        }
    }
}

/// The connection state of one instance.
pub struct Client {
    instance: String,
    http: reqwest::Client,
    api_url: Option<String>,
    admin: String,
    admin_scopes: Vec<&'static str>,
    signer: Signer,
    max_hold: Duration,
    backoff: Duration,
    tokens: tokio::sync::Mutex<HashMap<Who, Token>>,
    generation: AtomicU64,
    paces: [Mutex<Pace>; 5],
    calls: AtomicU64,
    batched: AtomicU64,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("instance", &self.instance)
            .field("api_url", &self.api_url)
            .field("admin", &self.admin)
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds the HTTP client and parses the key; makes no network call.
    pub fn new(instance: &str, cfg: &GoogleConfig) -> Result<Self, String> {
        let key = key_file(&cfg.private_key).map_err(|e| format!("private_key: {e}"))?;
        let signer = Signer::new(&key)?;
        let http = revoke_http::client(cfg.timeout())?;
        let interval = Duration::from_micros(60_000_000 / cfg.requests_per_minute.max(1));
        Ok(Self {
            instance: instance.to_string(),
            http,
            api_url: cfg
                .api_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_string()),
            admin: cfg.admin_email.clone(),
            admin_scopes: admin_scopes(cfg),
            signer,
            max_hold: cfg.timeout(),
            backoff: Duration::from_millis(cfg.backoff_ms),
            tokens: tokio::sync::Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            paces: [
                interval,
                interval,
                Duration::ZERO,
                Duration::from_micros(60_000_000 / cfg.drive_requests_per_minute.max(1)),
                Duration::ZERO,
            ]
            .map(|interval| {
                Mutex::new(Pace {
                    interval,
                    next_slot: Instant::now(),
                    hold_until: None,
                    refusals: 0,
                })
            }),
            calls: AtomicU64::new(0),
            batched: AtomicU64::new(0),
        })
    }

    /// Access tokens fetched so far.
    pub fn tokens_fetched(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// HTTP calls sent so far (token calls included).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// API calls sent as parts of batch requests so far (each counts against the quota; the
    /// batch request itself is one of [`Client::calls`]).
    pub fn batched_calls(&self) -> u64 {
        self.batched.load(Ordering::Relaxed)
    }

    /// Sends Directory `GET`s as the admin in one request to Google's batch endpoint
    /// (`POST /batch/admin/directory_v1`, `multipart/mixed`, one `application/http` part each).
    /// Each part waits for its own slot in the Directory pace, as a call of its own would, and
    /// its answer is classified on its own: a rate-limit answer holds the pace and is that read's
    /// `rate_limited` error; any other status comes back as a reply. A refusal of the batch
    /// itself (rate limit, a second 401, an answer that is not one part per request) is the
    /// error of every read.
    pub async fn batch_get(
        &self,
        paths: &[String],
    ) -> Result<Vec<Result<Reply, ConnectorError>>, ConnectorError> {
        let method = Method::POST;
        let batch_path = BATCH_PATH;
        let mut refreshed = false;
        let boundary = format!("batch_revoked_{}", self.calls.load(Ordering::Relaxed));
        let body = multipart_request(&boundary, paths);
        loop {
            let (token, generation) = self.token(&Who::Admin).await?;
            for p in paths {
                self.wait_turn(Api::Directory, &Method::GET, p).await?;
            }
            let url = format!("{}{batch_path}", self.base(batch_path));
            let r = self
                .raw(
                    method.clone(),
                    &url,
                    batch_path,
                    Some(Body::Multipart(
                        format!("multipart/mixed; boundary={boundary}"),
                        body.clone(),
                    )),
                    Some(&token),
                )
                .await?;
            if r.status == 401 && !refreshed {
                debug!(connector = %self.instance, "google answered 401 to a batch, fetching a new token");
                self.invalidate(&Who::Admin, generation).await;
                refreshed = true;
                continue;
            }
            if !r.is_success() {
                let backoff = self.observe(Api::Directory, &r);
                return Err(classify::status(&method, batch_path, &r, backoff));
            }
            self.batched
                .fetch_add(paths.len() as u64, Ordering::Relaxed);
            let parts = r
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .and_then(boundary_of)
                .and_then(|b| parse_multipart(&b, &r.body))
                .ok_or_else(|| {
                    classify::bad_response(&method, batch_path, "expected a multipart/mixed answer")
                })?;
            let mut out: Vec<Option<Reply>> = vec![None; paths.len()];
            for (id, reply) in parts {
                let slot = id
                    .trim_start_matches("response-")
                    .strip_prefix("item")
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|n| (1..=paths.len()).contains(n));
                if let Some(n) = slot {
                    out[n - 1] = Some(reply);
                }
            }
            // A token that expired under way: a new one, and the batch once more, as a single
            // call's 401 does.
            if !refreshed && out.iter().flatten().any(|r| r.status == 401) {
                debug!(connector = %self.instance, "google answered 401 in a batch, fetching a new token");
                self.invalidate(&Who::Admin, generation).await;
                refreshed = true;
                continue;
            }
            return Ok(paths
                .iter()
                .zip(out)
                .map(|(p, reply)| {
                    let Some(reply) = reply else {
                        return Err(classify::bad_response(
                            &Method::GET,
                            p,
                            "the batch answer has no part for this request",
                        ));
                    };
                    let backoff = self.observe(Api::Directory, &reply);
                    if reply.status == 401 || classify::is_rate_limited(&reply) {
                        Err(classify::status(&Method::GET, p, &reply, backoff))
                    } else {
                        Ok(reply)
                    }
                })
                .collect());
        }
    }

    /// The base URL of the API a path belongs to.
    fn base(&self, path: &str) -> &str {
        if let Some(u) = &self.api_url {
            return u;
        }
        if path.starts_with("/gmail/") {
            "https://gmail.googleapis.com"
        } else if path.starts_with("/apps/licensing/") {
            "https://licensing.googleapis.com"
        } else if path.starts_with("/drive/") {
            "https://www.googleapis.com"
        } else {
            "https://admin.googleapis.com"
        }
    }

    /// The wait after `n` consecutive rate-limit answers: backoff, doubled each time, at most 64x.
    fn backoff_for(&self, n: u32) -> Duration {
        self.backoff * 2u32.saturating_pow(n.saturating_sub(1).min(6))
    }

    /// Waits for this call's slot in its API's pace: after any hold, and `interval` after the
    /// previous call's.
    async fn wait_turn(&self, api: Api, method: &Method, path: &str) -> Result<(), ConnectorError> {
        let slot = {
            let mut p = self.paces[api as usize]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let mut slot = p.next_slot.max(now);
            if let Some(h) = p.hold_until {
                slot = slot.max(h);
            }
            if slot - now > self.max_hold {
                let wait = slot - now;
                return Err(ConnectorError::rate_limited(
                    wait,
                    "rate_limit",
                    format!(
                        "{method} {path}: the google workspace pace of this instance is held for {} ms",
                        wait.as_millis()
                    ),
                ));
            }
            p.next_slot = slot + p.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
        Ok(())
    }

    /// Records a rate-limit answer (holds every call of the instance to that API) or a success
    /// (resets the backoff).
    fn observe(&self, api: Api, r: &Reply) -> Duration {
        let mut p = self.paces[api as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if classify::is_rate_limited(r) {
            p.refusals += 1;
            let n = p.refusals;
            let wait = classify::retry_after(&r.headers).unwrap_or_else(|| self.backoff_for(n));
            let until = Instant::now() + wait;
            if p.hold_until.is_none_or(|h| h < until) {
                p.hold_until = Some(until);
            }
            info!(connector = %self.instance, api = ?api, wait_ms = wait.as_millis() as u64, refusals = n, "google answered a rate limit, holding calls");
            wait
        } else {
            if r.is_success() {
                p.refusals = 0;
            }
            self.backoff
        }
    }

    async fn raw(
        &self,
        method: Method,
        url: &str,
        path: &str,
        body: Option<Body<'_>>,
        token: Option<&SecretString>,
    ) -> Result<Reply, ConnectorError> {
        let mut rb = self
            .http
            .request(method.clone(), url)
            .header("accept", "application/json");
        if let Some(t) = token {
            rb = rb.bearer_auth(t.expose_secret());
        }
        rb = match body {
            Some(Body::Json(b)) => rb.json(b),
            Some(Body::Form(f)) => rb
                .header("content-type", "application/x-www-form-urlencoded")
                .body(f),
            Some(Body::Multipart(ct, b)) => rb.header("content-type", ct).body(b),
            None => rb,
        };
        self.calls.fetch_add(1, Ordering::Relaxed);
        let resp = rb
            .send()
            .await
            .map_err(|e| classify::transport(&method, path, &e.without_url()))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .text()
            .await
            .map_err(|e| classify::transport(&method, path, &e.without_url()))?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// A valid token for `who`: the cached one, or a new one.
    async fn token(&self, who: &Who) -> Result<(SecretString, u64), ConnectorError> {
        let mut slots = self.tokens.lock().await;
        if let Some(t) = slots.get(who) {
            if Instant::now() < t.fresh_until {
                return Ok((t.value.clone(), t.generation));
            }
        }
        slots.remove(who);
        let (subject, scopes): (&str, &[&str]) = match who {
            Who::Admin => (&self.admin, &self.admin_scopes),
            Who::Mailbox(m) => (m, GMAIL_SCOPES),
            Who::Drive(m) => (m, DRIVE_SCOPES),
            Who::DriveOwner(m) => (m, DRIVE_WRITE_SCOPES),
            Who::AdminDrive => (&self.admin, DRIVE_WRITE_SCOPES),
        };
        let assertion = self
            .signer
            .assertion(subject, scopes)
            .map_err(|e| ConnectorError::permanent("signing_failed", e))?;
        let form = format!(
            "grant_type={}&assertion={}",
            encode("urn:ietf:params:oauth:grant-type:jwt-bearer"),
            encode(&assertion)
        );
        let method = Method::POST;
        self.wait_turn(Api::Token, &method, "token").await?;
        let uri = self.signer.token_uri.clone();
        let r = self
            .raw(method.clone(), &uri, "token", Some(Body::Form(form)), None)
            .await?;
        let backoff = self.observe(Api::Token, &r);
        if !r.is_success() {
            return Err(classify::token(&r, backoff));
        }
        let v = r.json().unwrap_or(Value::Null);
        let Some(value) = v.get("access_token").and_then(Value::as_str) else {
            return Err(classify::bad_response(
                &method,
                "token",
                "no access_token in the answer",
            ));
        };
        let expires_in =
            Duration::from_secs(v.get("expires_in").and_then(Value::as_u64).unwrap_or(3_600));
        let margin = Duration::from_secs(300).min(expires_in / 2);
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        debug!(connector = %self.instance, generation, expires_in_secs = expires_in.as_secs(), "google access token fetched");
        let value = SecretString::from(value.to_string());
        // One token per leaver (Gmail, Drive) would pile up in a long-running daemon: the
        // stale ones go whenever a new one comes.
        let now = Instant::now();
        slots.retain(|_, t| t.fresh_until > now);
        slots.insert(
            who.clone(),
            Token {
                value: value.clone(),
                generation,
                fresh_until: Instant::now() + expires_in - margin,
            },
        );
        Ok((value, generation))
    }

    /// Forgets `who`'s token of `generation` (not a newer one another task fetched meanwhile).
    async fn invalidate(&self, who: &Who, generation: u64) {
        let mut slots = self.tokens.lock().await;
        if slots.get(who).is_some_and(|t| t.generation == generation) {
            slots.remove(who);
        }
    }

    /// Sends one API call as `who`, within the pace, with a token refreshed once on a 401. Any
    /// status comes back but a rate-limit answer, which is `rate_limited`, and a second 401,
    /// which is `auth`.
    pub async fn send(
        &self,
        who: &Who,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, ConnectorError> {
        let mut refreshed = false;
        loop {
            let (token, generation) = self.token(who).await?;
            let api = Api::of(path);
            self.wait_turn(api, &method, path).await?;
            let url = format!("{}{path}", self.base(path));
            let r = self
                .raw(
                    method.clone(),
                    &url,
                    path,
                    body.map(Body::Json),
                    Some(&token),
                )
                .await?;
            let backoff = self.observe(api, &r);
            match r.status {
                401 if !refreshed => {
                    debug!(connector = %self.instance, "google answered 401, fetching a new token");
                    self.invalidate(who, generation).await;
                    refreshed = true;
                }
                401 => return Err(classify::status(&method, path, &r, backoff)),
                _ if classify::is_rate_limited(&r) => {
                    return Err(classify::status(&method, path, &r, backoff))
                }
                _ => return Ok(r),
            }
        }
    }

    /// `send` as the admin.
    pub async fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, ConnectorError> {
        self.send(&Who::Admin, method, path, body).await
    }

    /// The wait a rate-limit answer gets when Google names none.
    pub fn backoff(&self) -> Duration {
        self.backoff
    }
}

/// A request body.
#[derive(Debug, Clone)]
enum Body<'a> {
    Json(&'a Value),
    Form(String),
    /// A content type and the body.
    Multipart(String, String),
}

/// Google's batch endpoint of the Directory API (Data Transfer and Licensing have their own).
pub const BATCH_PATH: &str = "/batch/admin/directory_v1";

/// The body of a batch of `GET`s: one `application/http` part per path, `Content-ID: <itemN>`
/// (N from 1), CRLF line ends.
pub fn multipart_request(boundary: &str, paths: &[String]) -> String {
    let mut out = String::new();
    for (i, p) in paths.iter().enumerate() {
        out.push_str(&format!(
            "--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <item{}>\r\n\r\nGET {p} HTTP/1.1\r\nAccept: application/json\r\n\r\n",
            i + 1
        ));
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    out
}

/// The boundary of a `multipart/mixed` content type.
pub fn boundary_of(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/mixed") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// The parts of a batch answer: each part's `Content-ID` (without `<>`) and the HTTP answer it
/// holds; `None` when the body is not a multipart of `application/http` answers.
pub fn parse_multipart(boundary: &str, body: &str) -> Option<Vec<(String, Reply)>> {
    let delimiter = format!("--{boundary}");
    let mut sections = body.split(delimiter.as_str());
    sections.next()?; // the preamble
    let mut out = Vec::new();
    for section in sections {
        if section.starts_with("--") {
            return Some(out);
        }
        let section = section.strip_prefix("\r\n").unwrap_or(section);
        let (head, http) = split_head(section)?;
        let id = header_lines(head)
            .find(|(k, _)| k.eq_ignore_ascii_case("content-id"))
            .map(|(_, v)| v.trim_matches(['<', '>']).to_string())?;
        let (head, body) = split_head(http)?;
        let mut lines = head.lines();
        let status = lines
            .next()?
            .split_whitespace()
            .nth(1)?
            .parse::<u16>()
            .ok()?;
        let mut headers = reqwest::header::HeaderMap::new();
        for (k, v) in header_lines(head).skip(1) {
            if let (Ok(k), Ok(v)) = (
                reqwest::header::HeaderName::from_bytes(k.as_bytes()),
                reqwest::header::HeaderValue::from_str(v),
            ) {
                headers.append(k, v);
            }
        }
        let body = body.strip_suffix("\r\n").unwrap_or(body).to_string();
        out.push((
            id,
            Reply {
                status,
                headers,
                body,
            },
        ));
    }
    None
}

/// The head and the body of an HTTP message or a MIME part (split at the first empty line).
fn split_head(s: &str) -> Option<(&str, &str)> {
    s.split_once("\r\n\r\n").or_else(|| s.split_once("\n\n"))
}

/// `Name: value` lines of a head (a line without a colon, such as a status line, is skipped
/// unless it is the first: callers skip that one themselves).
fn header_lines(head: &str) -> impl Iterator<Item = (&str, &str)> {
    head.lines().map(|l| {
        l.split_once(':')
            .map(|(k, v)| (k.trim(), v.trim()))
            .unwrap_or((l.trim(), ""))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_answer_is_read_part_by_part_and_matched_by_content_id() {
        let paths = vec!["/a?x=1".to_string(), "/b".to_string()];
        let req = multipart_request("B", &paths);
        assert!(req.starts_with("--B\r\nContent-Type: application/http\r\nContent-ID: <item1>\r\n\r\nGET /a?x=1 HTTP/1.1\r\n"));
        assert!(req.ends_with("--B--\r\n"));
        let answer = "--resp\r\nContent-Type: application/http\r\nContent-ID: <response-item2>\r\n\r\nHTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n\r\n{\"error\":{\"code\":403,\"errors\":[{\"reason\":\"userRateLimitExceeded\"}]}}\r\n--resp\r\nContent-Type: application/http\r\nContent-ID: <response-item1>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{\"items\":[]}\r\n--resp--\r\n";
        assert_eq!(
            boundary_of("multipart/mixed; boundary=resp").as_deref(),
            Some("resp")
        );
        assert_eq!(boundary_of("application/json"), None);
        let parts = parse_multipart("resp", answer).expect("parsed");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].0, "response-item2");
        assert_eq!(parts[0].1.status, 403);
        assert!(classify::is_rate_limited(&parts[0].1));
        assert_eq!(parts[1].0, "response-item1");
        assert_eq!(parts[1].1.status, 200);
        assert_eq!(parts[1].1.body, "{\"items\":[]}");
        assert_eq!(
            parts[1]
                .1
                .headers
                .get("content-type")
                .expect("a content type"),
            "application/json; charset=UTF-8"
        );
        assert!(parse_multipart("resp", "no parts here").is_none());
    }
}
