//! Commands that need neither a store nor a daemon token: `token new`, `token hash`, and `send`
//! (a signed Standard Webhooks sample event to an intake endpoint).

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use revoked::types::IntakeAnswer;
use sha2::{Digest, Sha256};

use crate::remote::{http_client, parse_url};
use crate::{Format, ScopeArg};

/// What every token starts with, so a leaked one is recognisable (and scannable).
pub const TOKEN_PREFIX: &str = "rvk_";

/// Hex SHA-256 of a token, as `[api.tokens.NAME] sha256` holds it.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn scope_str(scope: ScopeArg) -> &'static str {
    match scope {
        ScopeArg::Read => "read",
        ScopeArg::Operator => "operator",
    }
}

/// `token new`: 32 random bytes, shown once; the configuration keeps only the hash.
pub fn token_new(name: &str, scope: ScopeArg, output: Format) -> anyhow::Result<u8> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("--name: expected letters, digits, - or _ (a TOML key), found {name:?}");
    }
    let bytes: [u8; 32] = rand::random();
    let token = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let sha256 = token_sha256(&token);
    let scope = scope_str(scope);
    let toml = format!("[api.tokens.{name}]\nsha256 = \"{sha256}\"\nscope = \"{scope}\"\n");
    match output {
        Format::Table => {
            outln!(
                "# The token, shown this once: give it to its user (REVOKE_TOKEN or --token-file)"
            );
            outln!("# and keep it in a secret manager. revoked stores only its hash.");
            outln!("{token}");
            outln!();
            outln!("# Add this to the daemon's configuration and restart it:");
            out!("{toml}");
        }
        _ => {
            let v = serde_json::json!({
                "name": name,
                "scope": scope,
                "token": token,
                "sha256": sha256,
                "toml": toml,
            });
            crate::out::document(&v, output)?;
        }
    }
    Ok(0)
}

/// `token hash`: the SHA-256 of the token read on stdin (surrounding whitespace ignored, as the
/// daemon ignores it in the Authorization header).
pub fn token_hash() -> anyhow::Result<u8> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("cannot read the token from stdin")?;
    let token = text.trim();
    if token.is_empty() {
        bail!("stdin: expected a token, found nothing");
    }
    if token.lines().count() > 1 {
        bail!("stdin: expected one token on one line, found several lines");
    }
    outln!("{}", token_sha256(token));
    Ok(0)
}

/// What `send` sends.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The intake endpoint: http://HOST:PORT/intake/NAME
    pub url: String,
    /// The environment variable holding the whsec_ secret
    #[arg(
        long,
        value_name = "VAR",
        required_unless_present = "secret_file",
        conflicts_with = "secret_file"
    )]
    pub secret_env: Option<String>,
    /// The file holding the whsec_ secret
    #[arg(long, value_name = "PATH")]
    pub secret_file: Option<PathBuf>,
    /// The leaver's HR id (a cancellation cancels this person's open jobs)
    #[arg(long, value_name = "ID")]
    pub employee_id: Option<String>,
    /// The leaver's email
    #[arg(long, value_name = "EMAIL")]
    pub email: Option<String>,
    /// The leaver's directory login
    #[arg(long, value_name = "USERNAME")]
    pub username: Option<String>,
    /// Why (reasons like "misconduct" make the job high risk under `[risk]`)
    #[arg(long)]
    pub reason: Option<String>,
    /// When access must end: RFC 3339, a date (YYYY-MM-DD) or now
    #[arg(long, value_name = "TIME")]
    pub effective_at: Option<String>,
    /// An involuntary termination (high risk when `[risk] involuntary_is_high`)
    #[arg(long)]
    pub involuntary: bool,
    /// Contain at once
    #[arg(long)]
    pub high_risk: bool,
    /// Send employee.termination_cancelled instead of employee.terminated
    #[arg(long)]
    pub cancel: bool,
    /// The webhook-id (the intake's dedup key); default: a fresh one
    #[arg(long, value_name = "ID")]
    pub event_id: Option<String>,
    /// When the event happened (RFC 3339): the body's `timestamp`, and `effective_at` unless
    /// given; default: now. A redelivery of one `--event-id` must repeat it, since the intake
    /// refuses the same event id with another body
    #[arg(long, value_name = "TIME")]
    pub occurred_at: Option<String>,
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: Format,
}

/// The whsec_ secret, from an environment variable or a file (never from the command line,
/// where `ps` and shell history would show it).
fn read_secret(env: Option<&str>, file: Option<&Path>) -> anyhow::Result<String> {
    let (secret, from) = match (env, file) {
        (Some(var), _) => (
            std::env::var(var).map_err(|_| {
                anyhow!("--secret-env: expected the environment variable {var} to hold a whsec_ secret, found it unset (or not UTF-8)")
            })?,
            format!("the environment variable {var}"),
        ),
        (None, Some(path)) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("--secret-file: cannot read {}", path.display()))?,
            path.display().to_string(),
        ),
        (None, None) => bail!("expected --secret-env VAR or --secret-file PATH, found neither"),
    };
    let secret = secret.trim().to_string();
    if secret.is_empty() {
        bail!("expected a whsec_ secret in {from}, found nothing");
    }
    Ok(secret)
}

/// `--effective-at` as the event carries it: RFC 3339, a date, or now.
fn effective_at(value: Option<&str>, now: DateTime<Utc>) -> anyhow::Result<String> {
    let now_text = || now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let Some(v) = value.map(str::trim) else {
        return Ok(now_text());
    };
    if v.eq_ignore_ascii_case("now") {
        return Ok(now_text());
    }
    if DateTime::parse_from_rfc3339(v).is_ok() || NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok() {
        return Ok(v.to_string());
    }
    bail!("--effective-at: expected an RFC 3339 time (2026-12-01T17:00:00Z), a date (2026-12-01) or now, found {v:?}")
}

/// The Standard Webhooks event body the `standard_webhooks` intake source reads.
pub fn event_body(a: &SendArgs, now: DateTime<Utc>) -> anyhow::Result<serde_json::Value> {
    let now = match a.occurred_at.as_deref().map(str::trim) {
        None => now,
        Some(v) => DateTime::parse_from_rfc3339(v)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                anyhow!(
                    "--occurred-at: expected an RFC 3339 time (2026-12-01T17:00:00Z), found {v:?}"
                )
            })?,
    };
    let clean = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let (employee_id, email, username) =
        (clean(&a.employee_id), clean(&a.email), clean(&a.username));
    if employee_id.is_none() && email.is_none() && username.is_none() {
        bail!("expected --employee-id, --email or --username, found none");
    }
    let mut data = serde_json::Map::new();
    for (k, v) in [
        ("employee_id", employee_id),
        ("email", email),
        ("username", username),
    ] {
        if let Some(v) = v {
            data.insert(k.into(), v.into());
        }
    }
    if let Some(r) = clean(&a.reason) {
        data.insert("reason".into(), r.into());
    }
    let kind = if a.cancel {
        "employee.termination_cancelled"
    } else {
        data.insert(
            "effective_at".into(),
            effective_at(a.effective_at.as_deref(), now)?.into(),
        );
        data.insert("involuntary".into(), a.involuntary.into());
        if a.high_risk {
            data.insert("high_risk".into(), true.into());
        }
        "employee.terminated"
    };
    Ok(serde_json::json!({
        "type": kind,
        "timestamp": now.to_rfc3339_opts(SecondsFormat::Secs, true),
        "data": data,
    }))
}

/// `send URL`: signs a sample event with the source's secret and posts it.
pub async fn send(a: SendArgs) -> anyhow::Result<u8> {
    let url = parse_url("URL", &a.url)?;
    let secret = read_secret(a.secret_env.as_deref(), a.secret_file.as_deref())?;
    let now = Utc::now();
    let body = event_body(&a, now)?;
    let bytes = serde_json::to_vec(&body)?;
    let msg_id = match a.event_id.as_deref().map(str::trim) {
        Some("") => bail!("--event-id: expected an id, found an empty string"),
        Some(id) => id.to_string(),
        None => format!("msg_{}", uuid::Uuid::new_v4().simple()),
    };
    let ts = now.timestamp();
    let signature = revoke_intake::standard_webhooks_sign(&secret, &msg_id, ts, &bytes)
        .map_err(|e| anyhow!("cannot sign the event: {e}"))?;
    let resp = http_client()?
        .post(url.clone())
        .header("content-type", "application/json")
        .header("webhook-id", &msg_id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(bytes)
        .send()
        .await
        .map_err(|e| anyhow!("cannot reach {url}: {e}"))?;
    let status = resp.status();
    let text = resp
        .text()
        .await
        .map_err(|e| anyhow!("{url}: cannot read the answer: {e}"))?;
    let kind = body["type"].as_str().unwrap_or_default();
    if !status.is_success() {
        let mut m = crate::remote::describe_error(status, &text);
        if status == reqwest::StatusCode::UNAUTHORIZED {
            m = format!(
                "the intake endpoint refused the event ({} unauthorized): {}; expected the secret configured for this source",
                status.as_u16(),
                serde_json::from_str::<revoked::types::ErrorBody>(&text)
                    .map(|e| e.error)
                    .unwrap_or_else(|_| text.trim().to_string())
            );
        }
        bail!("{m}");
    }
    if a.output != Format::Table {
        let v: serde_json::Value =
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        crate::out::document(
            &serde_json::json!({
                "status": status.as_u16(),
                "webhook_id": msg_id,
                "type": kind,
                "answer": v,
            }),
            a.output,
        )?;
        return Ok(0);
    }
    outln!(
        "sent {kind} {msg_id} to {url}: {} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    // The answer as the daemon gave it (scripts read `"job_id"` from it), then what it means.
    match serde_json::from_str::<IntakeAnswer>(&text) {
        Ok(answer) => {
            outln!("{}", serde_json::to_string_pretty(&answer)?);
            let server = url
                .as_str()
                .split_once("/intake/")
                .map_or_else(|| url.to_string(), |(base, _)| base.to_string());
            for j in &answer.jobs {
                if j.duplicate {
                    outln!(
                        "job {} was made by the first delivery of this event ({})",
                        j.job_id,
                        j.state
                    );
                } else {
                    outln!("new job {} ({})", j.job_id, j.state);
                }
                outln!("  follow it: revokectl --server {server} show {}", j.job_id);
            }
            for c in &answer.cancelled {
                outln!("cancelled job {c}");
            }
            if let Some(why) = &answer.ignored {
                outln!("ignored: {why}");
            }
            if answer.jobs.is_empty() && answer.cancelled.is_empty() && answer.ignored.is_none() {
                outln!("nothing new: this event was received before");
            }
        }
        Err(_) => outln!("{}", text.trim()),
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> SendArgs {
        SendArgs {
            url: "http://x/intake/hr".into(),
            secret_env: None,
            secret_file: None,
            employee_id: Some("E1".into()),
            email: None,
            username: Some("alice".into()),
            reason: Some("misconduct".into()),
            effective_at: None,
            involuntary: true,
            high_risk: false,
            cancel: false,
            event_id: None,
            occurred_at: None,
            output: Format::Table,
        }
    }

    #[test]
    fn a_redelivery_with_the_same_occurred_at_is_the_same_body() {
        let mut a = args();
        a.occurred_at = Some("2026-12-01T17:00:00Z".into());
        let first = event_body(&a, Utc::now()).expect("body");
        let later = event_body(&a, Utc::now() + chrono::Duration::seconds(61)).expect("body");
        assert_eq!(first, later);
        assert_eq!(first["timestamp"], "2026-12-01T17:00:00Z");
        assert_eq!(first["data"]["effective_at"], "2026-12-01T17:00:00Z");
        a.occurred_at = Some("yesterday".into());
        let err = event_body(&a, Utc::now()).expect_err("not a time");
        assert!(err.to_string().starts_with("--occurred-at:"), "{err}");
    }

    #[test]
    fn the_body_has_the_standard_webhooks_shape() {
        let now = Utc::now();
        let b = event_body(&args(), now).expect("body");
        assert_eq!(b["type"], "employee.terminated");
        assert_eq!(b["data"]["employee_id"], "E1");
        assert_eq!(b["data"]["username"], "alice");
        assert_eq!(b["data"]["involuntary"], true);
        assert!(b["data"].get("high_risk").is_none());
        assert!(b["data"].get("email").is_none());
        assert!(b["data"]["effective_at"].is_string());
        let b = event_body(
            &SendArgs {
                cancel: true,
                ..args()
            },
            now,
        )
        .expect("body");
        assert_eq!(b["type"], "employee.termination_cancelled");
        assert!(b["data"].get("effective_at").is_none());
    }

    #[test]
    fn effective_at_is_checked() {
        let now = Utc::now();
        assert!(effective_at(Some("2026-12-01"), now).is_ok());
        assert!(effective_at(Some("2026-12-01T17:00:00+01:00"), now).is_ok());
        assert!(effective_at(Some("NOW"), now).is_ok());
        assert!(effective_at(Some("tomorrow"), now).is_err());
        let none = SendArgs {
            employee_id: None,
            username: None,
            ..args()
        };
        assert!(event_body(&none, now).is_err());
    }

    #[test]
    fn token_hash_is_hex_sha256() {
        assert_eq!(
            token_sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
