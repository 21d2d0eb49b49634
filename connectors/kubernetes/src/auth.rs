//! The connector's own bearer credential: a token read once (`token`, from `token_file` by the
//! config layer), a token file re-read (`token_path`), or an ExecCredential plugin
//! (`exec_command`). A client certificate is TLS's business (`client.rs`).
//!
//! As client-go does:
//! - a token file is re-read when the copy in hand is older than a minute
//!   (`transport.NewCachedFileTokenSource`'s period): kubelet rewrites a projected
//!   ServiceAccount token long before it expires (at 80% of its life, hourly by default);
//! - a plugin's token is kept until its `status.expirationTimestamp` (for ever without one);
//! - a 401 drops the copy in hand, so the next call reads the file or runs the plugin again.
//!   The refused call is not sent again here (only the executor retries): a 401 to a token
//!   taken from the cache is Retryable `credential_expired`, a 401 to one fetched for this very
//!   call is Auth `unauthorized` (a fresh credential refused is a real auth problem).
//!
//! The plugin runs with `KUBERNETES_EXEC_INFO` set to an `ExecCredential` whose
//! `spec.interactive` is false, stdin closed, `exec_env` added to the environment, and at most
//! the connector's timeout; only `client.authentication.k8s.io/v1` answers are taken, and only
//! their `status.token` (a plugin answering a client certificate instead is refused by name).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use revoke_core::ConnectorError;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::Mutex;
use tracing::debug;

use crate::classify::excerpt;
use crate::config::KubernetesConfig;

/// The ExecCredential API version asked for and accepted.
pub const EXEC_API_VERSION: &str = "client.authentication.k8s.io/v1";
/// How long a token read from `token_path` is used before the file is read again.
pub const FILE_PERIOD: Duration = Duration::from_secs(60);

/// A bearer token and whether it was fetched for this call (not taken from the cache).
#[derive(Debug)]
pub struct Bearer {
    pub token: SecretString,
    pub fresh: bool,
}

#[derive(Debug)]
struct Cached {
    token: SecretString,
    /// For a file: when it was read; for a plugin: when it expires (None: never)
    read_at: Instant,
    expires: Option<DateTime<Utc>>,
}

#[derive(Debug)]
enum Source {
    /// Client certificate only
    None,
    Static(SecretString),
    File(PathBuf),
    Exec {
        program: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        timeout: Duration,
    },
}

/// Where the connector's bearer token comes from, and the copy in hand.
#[derive(Debug)]
pub struct Credential {
    source: Source,
    cached: Mutex<Option<Cached>>,
    /// Plugin runs and file reads so far
    fetches: std::sync::atomic::AtomicU64,
}

impl Credential {
    pub fn new(cfg: &KubernetesConfig) -> Self {
        let source = if let Some(t) = &cfg.token {
            Source::Static(t.clone())
        } else if let Some(p) = &cfg.token_path {
            Source::File(p.clone())
        } else if let Some((program, args)) = cfg.exec_command.split_first() {
            Source::Exec {
                program: program.clone(),
                args: args.to_vec(),
                env: cfg.exec_env.clone(),
                timeout: cfg.timeout(),
            }
        } else {
            Source::None
        };
        Self {
            source,
            cached: Mutex::new(None),
            fetches: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Token file reads and plugin runs so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether a 401 may be cured by fetching the credential again.
    pub fn refreshes(&self) -> bool {
        matches!(self.source, Source::File(_) | Source::Exec { .. })
    }

    /// The token to send, if any (none with a client certificate alone).
    pub async fn bearer(&self) -> Result<Option<Bearer>, ConnectorError> {
        let period = match &self.source {
            Source::None => return Ok(None),
            Source::Static(t) => {
                return Ok(Some(Bearer {
                    token: t.clone(),
                    fresh: false,
                }))
            }
            Source::File(_) => Some(FILE_PERIOD),
            Source::Exec { .. } => None,
        };
        // One fetch at a time: concurrent calls wait for the same plugin run.
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            let valid = match (period, c.expires) {
                (Some(p), _) => c.read_at.elapsed() < p,
                (None, Some(exp)) => Utc::now() < exp,
                (None, None) => true,
            };
            if valid {
                return Ok(Some(Bearer {
                    token: c.token.clone(),
                    fresh: false,
                }));
            }
        }
        let (token, expires) = self.fetch().await?;
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *cached = Some(Cached {
            token: token.clone(),
            read_at: Instant::now(),
            expires,
        });
        Ok(Some(Bearer { token, fresh: true }))
    }

    /// A 401 answered `refused`: drop the copy in hand if it is still that one.
    pub async fn refused(&self, refused: &SecretString) {
        let mut cached = self.cached.lock().await;
        if cached
            .as_ref()
            .is_some_and(|c| c.token.expose_secret() == refused.expose_secret())
        {
            *cached = None;
        }
    }

    async fn fetch(&self) -> Result<(SecretString, Option<DateTime<Utc>>), ConnectorError> {
        match &self.source {
            Source::File(path) => {
                let text = tokio::fs::read_to_string(path).await.map_err(|e| {
                    ConnectorError::auth(
                        "token_file",
                        format!("cannot read the token file {}: {e}", path.display()),
                    )
                })?;
                let t = text.trim();
                if t.is_empty() || t.bytes().any(|b| b.is_ascii_whitespace()) {
                    return Err(ConnectorError::auth(
                        "token_file",
                        format!(
                            "expected one bearer token in {}, found {}",
                            path.display(),
                            if t.is_empty() {
                                "nothing"
                            } else {
                                "spaces in it"
                            }
                        ),
                    ));
                }
                debug!(path = %path.display(), "kubernetes token file read");
                Ok((SecretString::from(t.to_string()), None))
            }
            Source::Exec {
                program,
                args,
                env,
                timeout,
            } => run_plugin(program, args, env, *timeout).await,
            Source::None | Source::Static(_) => Err(ConnectorError::permanent(
                "bad_credential",
                "no credential to fetch",
            )),
        }
    }
}

fn plugin_error(program: &str, what: String) -> ConnectorError {
    ConnectorError::auth(
        "exec_plugin",
        format!("credential plugin {program}: {what}"),
    )
}

async fn run_plugin(
    program: &str,
    args: &[String],
    env: &BTreeMap<String, String>,
    timeout: Duration,
) -> Result<(SecretString, Option<DateTime<Utc>>), ConnectorError> {
    let info = serde_json::json!({
        "apiVersion": EXEC_API_VERSION,
        "kind": "ExecCredential",
        "spec": {"interactive": false},
    });
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .envs(env)
        .env("KUBERNETES_EXEC_INFO", info.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .map_err(|e| plugin_error(program, format!("cannot start: {e}")))?;
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(r) => r.map_err(|e| plugin_error(program, format!("cannot read its output: {e}")))?,
        Err(_) => {
            return Err(ConnectorError::retryable(
                "exec_plugin_timeout",
                format!(
                    "credential plugin {program}: no answer within {} s",
                    timeout.as_secs()
                ),
            ))
        }
    };
    if !out.status.success() {
        return Err(plugin_error(
            program,
            format!(
                "exited with {}: {}",
                out.status,
                excerpt(&String::from_utf8_lossy(&out.stderr))
            ),
        ));
    }
    parse_exec_credential(program, &out.stdout)
}

/// The token and expiry of an ExecCredential the plugin printed.
pub fn parse_exec_credential(
    program: &str,
    stdout: &[u8],
) -> Result<(SecretString, Option<DateTime<Utc>>), ConnectorError> {
    let v: Value = serde_json::from_slice(stdout).map_err(|e| {
        plugin_error(
            program,
            format!("expected an ExecCredential as json, found something else ({e})"),
        )
    })?;
    let api = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    if api != EXEC_API_VERSION || kind != "ExecCredential" {
        return Err(plugin_error(
            program,
            format!("expected kind ExecCredential of apiVersion {EXEC_API_VERSION}, found kind {kind:?} of {api:?}"),
        ));
    }
    let status = v.get("status").cloned().unwrap_or(Value::Null);
    let token = status.get("token").and_then(Value::as_str).unwrap_or("");
    if token.is_empty() {
        let cert = status.get("clientCertificateData").is_some();
        return Err(plugin_error(
            program,
            if cert {
                "answered a client certificate; only a token is supported from a plugin (set client_certificate_file and client_key_file instead)".to_string()
            } else {
                "expected status.token, found none".to_string()
            },
        ));
    }
    if token
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(plugin_error(
            program,
            "expected a bearer token, found one with spaces or control characters".to_string(),
        ));
    }
    let expires = match status.get("expirationTimestamp").and_then(Value::as_str) {
        None => None,
        Some(ts) => Some(
            DateTime::parse_from_rfc3339(ts)
                .map_err(|e| {
                    plugin_error(
                        program,
                        format!("expected an RFC 3339 expirationTimestamp, found {ts:?} ({e})"),
                    )
                })?
                .with_timezone(&Utc),
        ),
    };
    Ok((SecretString::from(token.to_string()), expires))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exec_credential_gives_its_token_and_expiry_and_nothing_else_passes() {
        let ok = br#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"k8s-aws-v1.abc","expirationTimestamp":"2030-01-02T03:04:05Z"}}"#;
        let (t, exp) = parse_exec_credential("aws", ok).expect("parses");
        assert_eq!(t.expose_secret(), "k8s-aws-v1.abc");
        assert_eq!(
            exp.map(|e| e.to_rfc3339()),
            Some("2030-01-02T03:04:05+00:00".to_string())
        );
        for (bad, says) in [
            (&br#"{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"x"}}"#[..], "apiVersion"),
            (br#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"clientCertificateData":"x","clientKeyData":"y"}}"#, "only a token"),
            (br#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"x","expirationTimestamp":"tomorrow"}}"#, "RFC 3339"),
            (br#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"a b"}}"#, "spaces"),
            (b"not json", "json"),
        ] {
            let e = parse_exec_credential("p", bad).expect_err("refused");
            assert_eq!(e.code, "exec_plugin");
            assert!(e.message.contains(says), "{says}: {}", e.message);
        }
    }
}
