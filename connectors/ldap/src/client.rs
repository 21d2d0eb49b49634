//! One lazily made, bound, shared LDAP connection, remade after it breaks.
//!
//! ldap3's `Ldap` handle is `Clone` and multiplexes operations over one connection, so every task
//! clones the cached handle; the mutex is held only while a connection is being made. Transport
//! results come back classified; LDAP result codes come back raw, for the caller to judge.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use ldap3::controls::RawControl;
use ldap3::result::LdapResult;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Mod, Scope, SearchEntry};
use revoke_core::ConnectorError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use secrecy::ExposeSecret;
use tokio::sync::Mutex;
use tracing::{debug, warn};

use crate::classify;
use crate::config::LdapConfig;

/// The connection of one connector instance.
pub struct Client {
    instance: String,
    cfg: Arc<LdapConfig>,
    tls: Option<Arc<ClientConfig>>,
    conn: Mutex<Option<Ldap>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("instance", &self.instance)
            .field("url", &self.cfg.url)
            .finish_non_exhaustive()
    }
}

/// The TLS settings: the system's roots plus `tls_ca_file`, with the ring provider named explicitly.
pub fn tls_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let shown = path.display();
        let mut added = 0;
        let certs =
            CertificateDer::pem_file_iter(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("cannot read {shown}: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("{shown}: not a usable CA certificate: {e}"))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!("expected PEM certificates in {shown}, found none"));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Search results: the entries, and the final result (its code unjudged).
pub type Found = (Vec<SearchEntry>, LdapResult);

impl Client {
    pub fn new(instance: &str, cfg: Arc<LdapConfig>, tls: Option<Arc<ClientConfig>>) -> Self {
        Self {
            instance: instance.to_string(),
            cfg,
            tls,
            conn: Mutex::new(None),
        }
    }

    /// Makes a new connection and binds; the result replaces the cached connection.
    pub async fn reconnect(&self) -> Result<Ldap, ConnectorError> {
        let mut slot = self.conn.lock().await;
        *slot = None;
        let ldap = self.connect().await?;
        *slot = Some(ldap.clone());
        Ok(ldap)
    }

    /// The cached connection, made (and bound) first if there is none or it has closed.
    async fn handle(&self) -> Result<Ldap, ConnectorError> {
        let mut slot = self.conn.lock().await;
        if let Some(l) = slot.as_mut() {
            if !l.is_closed() {
                return Ok(l.clone());
            }
            debug!(connector = %self.instance, "ldap connection closed, reconnecting");
        }
        *slot = None;
        let ldap = self.connect().await?;
        *slot = Some(ldap.clone());
        Ok(ldap)
    }

    async fn connect(&self) -> Result<Ldap, ConnectorError> {
        let cfg = &self.cfg;
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(cfg.timeout())
            .set_starttls(cfg.starttls);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &cfg.url)
            .await
            .map_err(|e| classify::error("connect to", &cfg.url, &e))?;
        let instance = self.instance.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                warn!(connector = %instance, error = %e, "ldap connection ended with an error");
            }
        });
        let res = ldap
            .with_timeout(cfg.timeout())
            .simple_bind(&cfg.bind_dn, cfg.bind_password.expose_secret())
            .await
            .map_err(|e| classify::error("bind as", &cfg.bind_dn, &e))?;
        if res.rc != 0 {
            return Err(classify::result("bind as", &cfg.bind_dn, &res));
        }
        debug!(connector = %self.instance, url = %cfg.url, tls = cfg.uses_tls(), "ldap connection bound");
        Ok(ldap)
    }

    /// Classifies a transport error and forgets the connection so that the next call makes a new one.
    async fn fail(&self, op: &str, dn: &str, e: LdapError) -> ConnectorError {
        if classify::is_transport(&e) {
            *self.conn.lock().await = None;
        }
        classify::error(op, dn, &e)
    }

    pub async fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Found, ConnectorError> {
        let mut l = self.handle().await?;
        debug!(connector = %self.instance, dn = %base, filter = %filter, "ldap search");
        match l
            .with_timeout(self.cfg.timeout())
            .search(base, scope, filter, attrs.to_vec())
            .await
        {
            Ok(r) => Ok((r.0.into_iter().map(SearchEntry::construct).collect(), r.1)),
            Err(e) => Err(self.fail("search", base, e).await),
        }
    }

    /// Modifies `dn`; with `assert`, only while the entry matches that filter (RFC 4528).
    pub async fn modify(
        &self,
        dn: &str,
        mods: Vec<Mod<String>>,
        assert: Option<&Assertion>,
    ) -> Result<LdapResult, ConnectorError> {
        let mut l = self.handle().await?;
        debug!(connector = %self.instance, dn = %dn, assertion = ?assert, "ldap modify");
        let mut op = l.with_timeout(self.cfg.timeout());
        if let Some(a) = assert {
            op = op.with_controls(a.control());
        }
        match op.modify(dn, mods).await {
            Ok(r) => Ok(r),
            Err(e) => Err(self.fail("modify", dn, e).await),
        }
    }

    /// Moves `dn` under `new_sup`, keeping `rdn`; with `assert`, only while the entry matches.
    pub async fn modifydn(
        &self,
        dn: &str,
        rdn: &str,
        new_sup: &str,
        assert: Option<&Assertion>,
    ) -> Result<LdapResult, ConnectorError> {
        let mut l = self.handle().await?;
        debug!(connector = %self.instance, dn = %dn, new_superior = %new_sup, assertion = ?assert, "ldap modrdn");
        let mut op = l.with_timeout(self.cfg.timeout());
        if let Some(a) = assert {
            op = op.with_controls(a.control());
        }
        match op.modifydn(dn, rdn, false, Some(new_sup)).await {
            Ok(r) => Ok(r),
            Err(e) => Err(self.fail("move", dn, e).await),
        }
    }

    /// Deletes `dn`; with `assert`, only while the entry matches.
    pub async fn delete(
        &self,
        dn: &str,
        assert: Option<&Assertion>,
    ) -> Result<LdapResult, ConnectorError> {
        let mut l = self.handle().await?;
        debug!(connector = %self.instance, dn = %dn, assertion = ?assert, "ldap delete");
        let mut op = l.with_timeout(self.cfg.timeout());
        if let Some(a) = assert {
            op = op.with_controls(a.control());
        }
        match op.delete(dn).await {
            Ok(r) => Ok(r),
            Err(e) => Err(self.fail("delete", dn, e).await),
        }
    }
}

/// An RFC 4528 assertion sent with a write: the server performs the write only if the entry
/// still matches the filter (rc 122 assertionFailed otherwise). Sent non-critical, so a server
/// without the control performs the write as before (OpenLDAP honours it).
#[derive(Debug, Clone)]
pub struct Assertion(String, bool);

impl Assertion {
    /// The filter, checked to parse (ldap3 would panic on one that does not).
    pub fn new(filter: String) -> Result<Self, ConnectorError> {
        match ldap3::parse_filter(&filter) {
            Ok(_) => Ok(Self(filter, false)),
            Err(()) => Err(ConnectorError::permanent(
                "bad_filter",
                format!("expected an LDAP filter for the assertion, found {filter:?}"),
            )),
        }
    }

    /// The same assertion sent critical: a server that does not support the control refuses
    /// the write (rc 12 unavailableCriticalExtension) instead of performing it unchecked. A blind
    /// write (one not preceded by a read of the entry) is safe only with this.
    pub fn critical(mut self) -> Self {
        self.1 = true;
        self
    }

    fn control(&self) -> Vec<RawControl> {
        let mut c = ldap3::controls::Assertion::new(self.0.as_str());
        c.crit = self.1;
        vec![c]
    }
}

/// A modification of one attribute with the given values.
pub fn values(v: &[&str]) -> HashSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The values of an attribute of an entry, whatever case the server spelled its name in.
pub fn attr<'a>(entry: &'a SearchEntry, name: &str) -> &'a [String] {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
        .unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use revoke_testkit::{Slapd, DEMO_LDIF};
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn slapd_refuses_a_write_whose_assertion_does_not_hold() {
        let slapd = Slapd::start().expect("slapd");
        slapd.add_ldif(DEMO_LDIF).expect("demo");
        let cfg = LdapConfig::from_value(&json!({
            "url": slapd.url(), "bind_dn": Slapd::ROOT_DN, "bind_password": Slapd::ROOT_PW,
            "user_base_dn": Slapd::PEOPLE, "group_base_dn": Slapd::GROUPS,
        }))
        .expect("config");
        let client = Client::new("dir", Arc::new(cfg), None);
        let alice = "uid=alice,ou=people,dc=example,dc=org";
        let set = |v: &str| vec![Mod::Replace("description".to_string(), values(&[v]))];
        let wrong = Assertion::new("(entryUUID=00000000-0000-0000-0000-000000000000)".into())
            .expect("filter");
        let res = client
            .modify(alice, set("wrong"), Some(&wrong))
            .await
            .expect("answered");
        assert_eq!(res.rc, 122, "assertionFailed: {res:?}");
        let right = Assertion::new("(uid=alice)".into()).expect("filter");
        let res = client
            .modify(alice, set("right"), Some(&right))
            .await
            .expect("answered");
        assert_eq!(res.rc, 0);
        let out = slapd
            .search(alice, "(objectClass=*)", &["description"])
            .expect("search");
        assert!(out.contains("description: right"), "{out}");
        assert!(
            Assertion::new("(uid=a".into()).is_err(),
            "checked, not a panic"
        );
    }
}
