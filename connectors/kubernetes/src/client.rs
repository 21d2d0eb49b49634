//! reqwest (revoke_http's client: rustls with ring, no redirects, no retries) with the
//! connector's credential (a bearer token from `auth.rs`, and/or a client certificate presented
//! in the TLS handshake), when `ca_file` is set the cluster's CA as the only root, and the
//! instance's client-side rate budget (`budget.rs`) in front of every call.
//!
//! A TLS failure is told apart from a lost connection: a server certificate the trusted roots
//! do not vouch for is Auth `tls_untrusted`, a handshake the server refused (no client
//! certificate, or one from another CA) Auth `tls_refused`; neither is retried.
//!
//! Lists are read in pages (`limit`, then `continue` until it is empty), as the API server
//! pages them. Secrets are only ever read as metadata (`Accept:
//! application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1`): the connector needs a
//! token Secret's name, uid and annotations, never the token in it.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use reqwest::Method;
use revoke_core::ConnectorError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use secrecy::ExposeSecret;
use serde_json::Value;
use tracing::debug;

use crate::auth::Credential;
use crate::budget::Budget;
use crate::classify::{self, Reply};
use crate::config::KubernetesConfig;

/// The `Accept` of a metadata-only list (`PartialObjectMetadataList`).
pub const METADATA_LIST: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
/// The `Accept` of one object's metadata (`PartialObjectMetadata`).
pub const METADATA: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
/// Items per page of a list.
pub const PAGE: u32 = 500;
/// Pages followed at most in one list (500 000 objects).
const MAX_PAGES: usize = 1_000;

pub use revoke_http::encode;

#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    cred: Credential,
    budget: Budget,
    calls: AtomicU64,
}

/// The client certificate chain and key to present, read from PEM.
fn client_identity(
    cert_pem: &str,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("client_certificate: cannot read PEM: {e}"))?;
    if certs.is_empty() {
        return Err("expected a PEM certificate in client_certificate, found none".to_string());
    }
    let shown = key.display();
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("client_key_file {shown}: expected a PEM private key: {e}"))?;
    Ok((certs, key))
}

/// The rustls settings: `ca` (PEM) as the only roots when given, else the system's; the client
/// certificate when given.
fn tls(cfg: &KubernetesConfig) -> Result<Option<ClientConfig>, String> {
    if cfg.ca_file.is_none() && cfg.client_certificate.is_none() {
        return Ok(None);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = match &cfg.ca_file {
        Some(ca) => ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("tls: {e}"))?
            .with_root_certificates(roots(ca)?),
        None => return system_roots_with_identity(cfg).map(Some),
    };
    Ok(Some(
        match (&cfg.client_certificate, &cfg.client_key_file) {
            (Some(c), Some(k)) => {
                let (certs, key) = client_identity(c, k)?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| format!("client_certificate and client_key_file: {e}"))?
            }
            _ => builder.with_no_client_auth(),
        },
    ))
}

/// The system's roots (as revoke_http trusts them) with the client certificate.
fn system_roots_with_identity(cfg: &KubernetesConfig) -> Result<ClientConfig, String> {
    let (Some(c), Some(k)) = (&cfg.client_certificate, &cfg.client_key_file) else {
        return revoke_http::tls_config();
    };
    let (certs, key) = client_identity(c, k)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| format!("client_certificate and client_key_file: {e}"))
}

fn roots(ca: &Path) -> Result<RootCertStore, String> {
    let shown = ca.display();
    let mut roots = RootCertStore::empty();
    let certs =
        CertificateDer::pem_file_iter(ca).map_err(|e| format!("cannot read {shown}: {e}"))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("cannot read {shown}: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("{shown}: not a usable CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("expected PEM certificates in {shown}, found none"));
    }
    Ok(roots)
}

impl Client {
    /// Reads `ca_file` when set; makes no network call.
    pub fn new(cfg: &KubernetesConfig) -> Result<Self, String> {
        let mut b = revoke_http::builder(cfg.timeout())?;
        if let Some(tls) = tls(cfg)? {
            b = b.tls_backend_preconfigured(tls);
        }
        let http = b
            .build()
            .map_err(|e| format!("cannot build the http client: {e}"))?;
        Ok(Self {
            http,
            base: cfg.base_url(),
            cred: Credential::new(cfg),
            budget: Budget::new(cfg.qps, cfg.burst),
            calls: AtomicU64::new(0),
        })
    }

    /// Token file reads and credential plugin runs so far.
    pub fn credential_fetches(&self) -> u64 {
        self.cred.fetches()
    }

    /// Time spent waiting for the client-side rate budget so far.
    pub fn budget_waited(&self) -> std::time::Duration {
        self.budget.waited()
    }

    /// HTTP calls sent so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Sends one call and reads its answer in full; any status comes back.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        accept: &str,
    ) -> Result<Reply, ConnectorError> {
        self.send_as(method, path, body, accept, "application/json")
            .await
    }

    /// [`Self::send`] with the body's content type (`application/json-patch+json`).
    pub async fn send_as(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        accept: &str,
        content_type: &str,
    ) -> Result<Reply, ConnectorError> {
        let bearer = self.cred.bearer().await?;
        self.budget.acquire().await;
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("accept", accept);
        if let Some(b) = &bearer {
            req = req.header(
                "authorization",
                format!("Bearer {}", b.token.expose_secret()),
            );
        }
        if let Some(b) = body {
            req = req.header("content-type", content_type).body(b.to_string());
        }
        let resp = req.send().await.map_err(|e| transport(&method, path, e))?;
        let status = resp.status().as_u16();
        if status == 401 && self.cred.refreshes() {
            if let Some(b) = &bearer {
                self.cred.refused(&b.token).await;
                if !b.fresh {
                    return Err(ConnectorError::retryable(
                        "credential_expired",
                        format!("{method} {path}: 401 to the connector's cached credential; the next attempt fetches it again"),
                    ));
                }
            }
        }
        let headers = resp.headers().clone();
        let body = resp.text().await.map_err(|e| transport(&method, path, e))?;
        debug!(method = %method, path, status, "kubernetes api call");
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// One object, or `None` on 404.
    pub async fn get(&self, path: &str, accept: &str) -> Result<Option<Value>, ConnectorError> {
        let r = self.send(Method::GET, path, None, accept).await?;
        if r.status == 404 {
            return Ok(None);
        }
        if !r.is_success() {
            return Err(classify::status(&Method::GET, path, &r));
        }
        r.json()
            .filter(Value::is_object)
            .map(Some)
            .ok_or_else(|| classify::bad_response(&Method::GET, path, "expected a json object"))
    }

    /// Every item of a list, page by page (`limit`, `continue`).
    pub async fn list(&self, path: &str, accept: &str) -> Result<Vec<Value>, ConnectorError> {
        let mut out = Vec::new();
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut cont: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = match &cont {
                None => format!("{path}{sep}limit={PAGE}"),
                Some(c) => format!("{path}{sep}limit={PAGE}&continue={}", encode(c)),
            };
            let r = self.send(Method::GET, &page, None, accept).await?;
            if !r.is_success() {
                return Err(classify::status(&Method::GET, path, &r));
            }
            let v = r.json().ok_or_else(|| {
                classify::bad_response(&Method::GET, path, "expected a json list")
            })?;
            let items = v.get("items").and_then(Value::as_array).ok_or_else(|| {
                classify::bad_response(&Method::GET, path, "expected a list with items")
            })?;
            out.extend(items.iter().cloned());
            cont = v
                .pointer("/metadata/continue")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty())
                .map(str::to_string);
            if cont.is_none() {
                return Ok(out);
            }
        }
        Err(classify::bad_response(
            &Method::GET,
            path,
            &format!("more than {MAX_PAGES} pages"),
        ))
    }
}

/// The rustls error under a reqwest error, if the failure was TLS's.
fn tls_cause(e: &reqwest::Error) -> Option<&rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return Some(t);
        }
        // An io::Error's source() skips the error it wraps (hyper wraps rustls's twice).
        cur = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|i| i as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// A request that got no answer; a TLS failure names its cause and is not retried.
fn transport(method: &Method, path: &str, e: reqwest::Error) -> ConnectorError {
    match tls_cause(&e) {
        Some(t @ rustls::Error::InvalidCertificate(_)) => ConnectorError::auth(
            "tls_untrusted",
            format!("{method} {path}: the API server's certificate is not trusted (ca_file, else the system's roots): {t}"),
        ),
        Some(t @ rustls::Error::AlertReceived(_)) => ConnectorError::auth(
            "tls_refused",
            format!("{method} {path}: the API server refused the TLS handshake (a client certificate missing or not from its CA?): {t}"),
        ),
        Some(t) => ConnectorError::permanent("tls", format!("{method} {path}: tls: {t}")),
        None => revoke_http::transport(method, path, &e.without_url()),
    }
}
