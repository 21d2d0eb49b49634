//! Shared setup of the LDAP connector tests: a real slapd from the testkit, a connector built the
//! way the engine builds it (factory: validate, then build), and actions made from proposals.

#![allow(dead_code)]

use std::sync::Arc;

use revoke_connector_ldap::LdapFactory;
use revoke_core::{
    Action, Connector, ConnectorError, ConnectorFactory, Discovery, JobId, MemoryJournal, Outcome,
    Subject, Verdict,
};
use revoke_testkit::{Slapd, DEMO_LDIF};
use serde_json::{json, Value};

pub const INSTANCE: &str = "corp-ldap";
pub const ALICE: &str = "uid=alice,ou=people,dc=example,dc=org";
pub const ALICE_PW: &str = "alice-password";

/// A slapd with the demo users and groups.
pub fn demo() -> Slapd {
    let slapd = Slapd::start().expect("slapd starts");
    slapd.add_ldif(DEMO_LDIF).expect("demo ldif loads");
    slapd
}

/// A valid config table for `slapd`, with `extra` keys merged over it.
pub fn params(url: &str, extra: Value) -> Value {
    let mut p = json!({
        "kind": "ldap",
        "url": url,
        "bind_dn": Slapd::ROOT_DN,
        "bind_password": Slapd::ROOT_PW,
        "user_base_dn": Slapd::PEOPLE,
        "group_base_dn": Slapd::GROUPS,
        "user_attribute": "uid",
        "user_object_class": "inetOrgPerson",
        "timeout_secs": 5,
    });
    if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            p.insert(k.clone(), v.clone());
        }
    }
    p
}

pub fn build(params: &Value) -> Arc<dyn Connector> {
    let f = LdapFactory;
    f.validate(&format!("connectors.{INSTANCE}"), params)
        .expect("config is valid");
    f.build(INSTANCE, params).expect("connector builds")
}

pub fn connector(slapd: &Slapd, extra: Value) -> Arc<dyn Connector> {
    build(&params(&slapd.url(), extra))
}

/// Discovers and plans the subject, and turns the proposals into actions as the planner does.
pub async fn planned(c: &dyn Connector, subject: &Subject) -> Vec<Action> {
    let d = c.discover(subject).await.expect("discovery");
    actions_of(c, subject, &d)
}

/// The actions the planner makes of one discovery.
pub fn actions_of(c: &dyn Connector, subject: &Subject, d: &Discovery) -> Vec<Action> {
    let proposals = c.plan(subject, d);
    Action::from_proposals(&JobId("job-1".into()), INSTANCE, d, proposals)
        .expect("proposals name discovered accounts")
}

pub async fn apply(c: &dyn Connector, a: &Action) -> Result<Outcome, ConnectorError> {
    c.apply(a, &a.key, &MemoryJournal::new()).await
}

pub async fn apply_all(c: &dyn Connector, actions: &[Action]) -> Vec<Outcome> {
    let mut out = Vec::new();
    for a in actions {
        out.push(
            apply(c, a)
                .await
                .unwrap_or_else(|e| panic!("{} failed: {e}", a.summary)),
        );
    }
    out
}

pub async fn verify_all(c: &dyn Connector, actions: &[Action]) -> Vec<Verdict> {
    let mut out = Vec::new();
    for a in actions {
        out.push(
            c.verify(a)
                .await
                .unwrap_or_else(|e| panic!("verify {} failed: {e}", a.summary)),
        );
    }
    out
}

/// The result code of a simple bind as `dn` (0 success, 49 invalid credentials).
pub async fn bind_rc(url: &str, dn: &str, pw: &str) -> u32 {
    let (conn, mut ldap) = ldap3::LdapConnAsync::new(url).await.expect("connect");
    ldap3::drive!(conn);
    let rc = ldap.simple_bind(dn, pw).await.expect("bind answered").rc;
    let _ = ldap.unbind().await;
    rc
}

/// `dn:` lines of an ldapsearch output, in order.
pub fn dns(ldif: &str) -> Vec<String> {
    ldif.lines()
        .filter_map(|l| l.strip_prefix("dn: "))
        .map(str::to_string)
        .collect()
}

/// The values of `attr` in an ldapsearch output.
pub fn values(ldif: &str, attr: &str) -> Vec<String> {
    let prefix = format!("{attr}: ");
    ldif.lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .map(str::to_string)
        .collect()
}

pub fn kinds(actions: &[Action]) -> Vec<(&str, &str)> {
    actions
        .iter()
        .map(|a| (a.kind.0.as_str(), a.target.as_str()))
        .collect()
}
