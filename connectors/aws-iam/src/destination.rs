//! Where a rotated key's new secret goes: AWS Secrets Manager or a file. Only the key id is
//! ever read back (to check which key a destination holds); the secret is written and dropped.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use revoke_core::{ConnectorError, Sha256Hex};
use secrecy::{ExposeSecret, SecretString};

use crate::classify::CallError;
use crate::client::Ctx;
use crate::config::{self, IamConfig};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    SecretsManager(String),
    File(PathBuf),
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::SecretsManager(n) => write!(f, "secrets_manager:{n}"),
            Destination::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

/// The JSON a destination holds; `AccessKeyId` is read back, the secret never is.
fn document(key_id: &str, secret: &SecretString) -> String {
    serde_json::json!({
        "AccessKeyId": key_id,
        "SecretAccessKey": secret.expose_secret(),
    })
    .to_string()
}

fn key_id_in(doc: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(doc)
        .ok()?
        .get("AccessKeyId")?
        .as_str()
        .map(str::to_string)
}

impl Destination {
    pub fn parse(s: &str) -> Result<Self, ConnectorError> {
        match s.split_once(':') {
            Some(("secrets_manager", n)) if !n.is_empty() => {
                Ok(Destination::SecretsManager(n.to_string()))
            }
            Some(("file", p)) if p.starts_with('/') && !p.split('/').any(|c| c == "..") => {
                Ok(Destination::File(PathBuf::from(p)))
            }
            _ => Err(ConnectorError::permanent(
                "bad_destination",
                format!("expected secrets_manager:NAME or file:/ABSOLUTE/PATH, found {s:?}"),
            )),
        }
    }

    /// Writes the new key; `token` (the action key) makes a Secrets Manager write idempotent.
    pub async fn write(
        &self,
        ctx: &Ctx<'_>,
        account: &str,
        _user: &str,
        key_id: &str,
        secret: &SecretString,
        token: &str,
    ) -> Result<(), ConnectorError> {
        match self {
            Destination::SecretsManager(name) => {
                let sm = ctx.clients.secrets(account).await?;
                // One version per (action, new key): a resend after a lost answer is the same
                // version, not a second one.
                let version: String = Sha256Hex::new()
                    .field(token)
                    .field(key_id)
                    .finish()
                    .chars()
                    .take(64)
                    .collect();
                let put = sm
                    .put_secret_value()
                    .secret_id(name)
                    .secret_string(document(key_id, secret))
                    .client_request_token(&version)
                    .send()
                    .await;
                match put {
                    Ok(_) => Ok(()),
                    Err(e) => {
                        let e = CallError::of("secretsmanager:PutSecretValue", &e);
                        if !e.is_gone() {
                            return Err(e.into());
                        }
                        sm.create_secret()
                            .name(name)
                            .description("access key rotated by revoked")
                            .secret_string(document(key_id, secret))
                            .client_request_token(&version)
                            .send()
                            .await
                            .map_err(|e| CallError::of("secretsmanager:CreateSecret", &e))?;
                        Ok(())
                    }
                }
            }
            // Permanent: a directory that is missing or read-only does not mend itself between
            // two attempts, and each attempt would make (and have to discard) another key.
            Destination::File(path) => write_file(path, &document(key_id, secret))
                .map_err(|e| unwritable(&path.display().to_string(), &e.to_string())),
        }
    }

    /// Whether the destination can take a secret now, asked before a key is made: a file's
    /// directory must exist and take a new file (a probe file is made and removed). Secrets
    /// Manager is only known by writing, so it is not probed.
    pub fn probe(&self) -> Result<(), ConnectorError> {
        match self {
            Destination::SecretsManager(_) => Ok(()),
            Destination::File(path) => match path.parent() {
                Some(dir) => match dir_problem(dir) {
                    Some(reason) => Err(unwritable(&dir.display().to_string(), &reason)),
                    None => Ok(()),
                },
                None => Err(unwritable(
                    &path.display().to_string(),
                    "no parent directory",
                )),
            },
        }
    }

    /// Whether the destination holds `key_id`.
    pub async fn holds(
        &self,
        ctx: &Ctx<'_>,
        account: &str,
        key_id: &str,
    ) -> Result<bool, ConnectorError> {
        match self {
            Destination::SecretsManager(name) => {
                let sm = ctx.clients.secrets(account).await?;
                match sm.get_secret_value().secret_id(name).send().await {
                    Ok(o) => Ok(o
                        .secret_string()
                        .and_then(key_id_in)
                        .is_some_and(|k| k == key_id)),
                    Err(e) => {
                        let e = CallError::of("secretsmanager:GetSecretValue", &e);
                        if e.is_gone() {
                            Ok(false)
                        } else {
                            Err(e.into())
                        }
                    }
                }
            }
            Destination::File(path) => match std::fs::read_to_string(path) {
                Ok(s) => Ok(key_id_in(&s).is_some_and(|k| k == key_id)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(ConnectorError::retryable(
                    "destination_unreadable",
                    format!("{}: {e}", path.display()),
                )),
            },
        }
    }
}

/// The permanent `destination_unwritable` error.
fn unwritable(what: &str, reason: &str) -> ConnectorError {
    ConnectorError::permanent(
        "destination_unwritable",
        format!("expected {what} to take the rotated key's secret, found: {reason}"),
    )
}

/// Why `dir` cannot take a new file, if it cannot: missing, not a directory, or a file cannot
/// be made in it (read-only, no permission, full).
pub fn dir_problem(dir: &Path) -> Option<String> {
    match std::fs::metadata(dir) {
        Err(e) => return Some(e.to_string()),
        Ok(m) if !m.is_dir() => return Some("not a directory".into()),
        Ok(_) => {}
    }
    let probe = dir.join(format!(".revoked-probe-{}", std::process::id()));
    let made = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe);
    match made {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) => Some(e.to_string()),
    }
}

/// Why the configured file destination cannot take secrets now, if it cannot (None for
/// Secrets Manager and when rotation is off): what `check` and discovery report.
pub fn problem(cfg: &IamConfig) -> Option<String> {
    match (&cfg.rotation, &cfg.secrets_dir) {
        (Some(config::Destination::File), Some(dir)) => {
            dir_problem(dir).map(|r| format!("secrets_dir {}: {r}", dir.display()))
        }
        (Some(config::Destination::File), None) => Some("secrets_dir is not set".into()),
        _ => None,
    }
}

/// Writes `body` to `path` through a temp file beside it (mode 0600) and a rename; a temp file
/// left by a failure is removed.
fn write_file(path: &PathBuf, body: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("no parent directory"))?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("secret")
    ));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(body.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse_and_refuse_escapes() {
        assert_eq!(
            Destination::parse("secrets_manager:revoked/1/svc").ok(),
            Some(Destination::SecretsManager("revoked/1/svc".into()))
        );
        assert!(Destination::parse("file:/tmp/x.json").is_ok());
        for bad in [
            "file:relative",
            "file:/tmp/../etc/passwd",
            "s3:x",
            "secrets_manager:",
        ] {
            assert!(Destination::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_the_key_id_is_read_back() {
        let doc = document("AKIANEW", &SecretString::from("s3cr3t".to_string()));
        assert_eq!(key_id_in(&doc).as_deref(), Some("AKIANEW"));
        assert_eq!(key_id_in("not json"), None);
    }
}
