//! `validate` is pure and names every issue: the key, what was expected, what was found.

use revoke_connector_ldap::{LdapConfig, LdapFactory};
use revoke_core::{ConfigIssue, ConnectorFactory};
use serde_json::{json, Value};

const P: &str = "connectors.corp-ldap";

fn good() -> Value {
    json!({
        "kind": "ldap",
        "url": "ldap://127.0.0.1:3890",
        "bind_dn": "cn=revoked,ou=services,dc=example,dc=org",
        "bind_password": "s3cret-bind-pw",
        "user_base_dn": "ou=people,dc=example,dc=org",
        "group_base_dn": "ou=groups,dc=example,dc=org",
    })
}

fn with(changes: Value) -> Value {
    let mut v = good();
    for (k, x) in changes.as_object().expect("object") {
        if x.is_null() {
            v.as_object_mut().expect("object").remove(k);
        } else {
            v[k] = x.clone();
        }
    }
    v
}

fn issues(v: &Value) -> Vec<(String, String)> {
    match LdapFactory.validate(P, v) {
        Ok(()) => vec![],
        Err(list) => list
            .into_iter()
            .map(|ConfigIssue { path, message }| (path, message))
            .collect(),
    }
}

fn expect(v: Value, want: &[(&str, &str)]) {
    let got = issues(&v);
    let mut want: Vec<(String, String)> = want
        .iter()
        .map(|(p, m)| (format!("{P}.{p}"), m.to_string()))
        .collect();
    // validate reports issues ordered by path
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, want, "config: {v}");
}

#[test]
fn good_configs_pass() {
    expect(good(), &[]);
    expect(
        with(json!({
            "url": "ldaps://ldap.example.org:636", "tls_ca_file": "/etc/ssl/corp-ca.pem",
            "lock_method": "attribute", "lock_attribute": "nsAccountLock", "lock_value": "TRUE",
            "group_placeholder_dn": "cn=nobody,ou=people,dc=example,dc=org",
            "user_attribute": "employeeNumber", "remove_groups": false, "delete_entry": true,
            "timeout_secs": 30,
        })),
        &[],
    );
    expect(
        with(
            json!({"starttls": true, "lock_method": "move", "disabled_base_dn": "ou=disabled,dc=example,dc=org"}),
        ),
        &[],
    );
    let c = LdapConfig::from_value(&with(json!({"timeout_secs": 3}))).expect("parses");
    assert_eq!(c.timeout_secs, 3);
}

#[test]
fn bad_configs_name_every_issue() {
    expect(
        with(json!({"url": "http://x"})),
        &[(
            "url",
            "expected an ldap:// or ldaps:// url, found \"http://x\"",
        )],
    );
    expect(
        with(json!({"url": "ldap://h/dc=example"})),
        &[(
            "url",
            "expected an ldap:// or ldaps:// url with only a host and port, found \"ldap://h/dc=example\"",
        )],
    );
    expect(
        with(json!({"url": "ldaps://h", "starttls": true})),
        &[(
            "starttls",
            "expected starttls = false with an ldaps:// url (it is TLS already), found true with \"ldaps://h\"",
        )],
    );
    expect(
        with(json!({"url": null, "bind_password": null, "group_base_dn": null})),
        &[
            ("url", "missing required key"),
            ("bind_password", "missing required key"),
            ("group_base_dn", "missing required key"),
        ],
    );
    expect(
        with(json!({"lock_method": "attribute"})),
        &[
            (
                "lock_attribute",
                "missing; required with lock_method = \"attribute\"",
            ),
            (
                "lock_value",
                "missing; required with lock_method = \"attribute\"",
            ),
        ],
    );
    expect(
        with(json!({"lock_method": "move"})),
        &[(
            "disabled_base_dn",
            "missing; required with lock_method = \"move\"",
        )],
    );
    expect(
        with(json!({"lock_method": "freeze"})),
        &[(
            "lock_method",
            "expected one of ppolicy, attribute, move, found \"freeze\"",
        )],
    );
    expect(
        with(json!({"user_base_dn": "ou=people,example", "bind_dn": "cn=revoked,=x"})),
        &[
            ("bind_dn", "expected a DN of attr=value parts separated by commas (\"\" is not an attribute name), found \"cn=revoked,=x\""),
            ("user_base_dn", "expected a DN of attr=value parts separated by commas (\"example\" is not attr=value), found \"ou=people,example\""),
        ],
    );
    expect(
        with(json!({"user_attribute": "uid)(x", "user_object_class": "2bad"})),
        &[
            (
                "user_attribute",
                "expected an attribute name (letters, digits and hyphens, or an OID), found \"uid)(x\"",
            ),
            (
                "user_object_class",
                "expected an attribute name (letters, digits and hyphens, or an OID), found \"2bad\"",
            ),
        ],
    );
    expect(
        with(json!({"tls_ca_file": "/ca.pem", "timeout_secs": 0, "starttls": "yes"})),
        &[
            ("starttls", "expected true or false, found \"yes\""),
            (
                "tls_ca_file",
                "only used with an ldaps:// url or starttls = true, found \"ldap://127.0.0.1:3890\" without starttls",
            ),
            ("timeout_secs", "expected 1 to 300 seconds, found 0"),
        ],
    );
    expect(
        with(json!({"bind_password_file": "/run/secrets/pw", "lock_attribute": "x"})),
        &[
            ("bind_password_file", "unknown key; expected one of url, starttls, tls_ca_file, bind_dn, bind_password, user_base_dn, group_base_dn, user_attribute, user_object_class, email_attribute, employee_id_attribute, id_attribute, lock_method, lock_attribute, lock_value, disabled_base_dn, group_placeholder_dn, remove_groups, delete_entry, timeout_secs"),
            ("lock_attribute", "only used with lock_method = \"attribute\", found lock_method = \"ppolicy\""),
        ],
    );
}

#[test]
fn the_id_attribute_must_be_an_immutable_attribute() {
    let c = LdapConfig::from_value(&good()).expect("parses");
    assert_eq!(
        c.id_attribute, "entryUUID",
        "OpenLDAP's entryUUID by default"
    );
    expect(with(json!({"id_attribute": "nsUniqueId"})), &[]);
    expect(with(json!({"id_attribute": "1.3.6.1.1.16.4"})), &[]);
    expect(
        with(json!({"id_attribute": "uid"})),
        &[(
            "id_attribute",
            "expected an immutable attribute the directory assigns (entryUUID on OpenLDAP, nsUniqueId on 389 DS), found \"uid\", which is also user_attribute and can be renamed or reused",
        )],
    );
    expect(
        with(json!({"id_attribute": "EmployeeNumber"})),
        &[(
            "id_attribute",
            "expected an immutable attribute the directory assigns (entryUUID on OpenLDAP, nsUniqueId on 389 DS), found \"EmployeeNumber\", which is also employee_id_attribute and can be renamed or reused",
        )],
    );
    expect(
        with(json!({"id_attribute": "mail", "email_attribute": "rfc822Mailbox"})),
        &[(
            "id_attribute",
            "expected an immutable attribute the directory assigns (entryUUID on OpenLDAP, nsUniqueId on 389 DS), found \"mail\", which can be renamed or reused",
        )],
    );
    expect(
        with(json!({"id_attribute": "entryUUID)(x", "email_attribute": "", "employee_id_attribute": 7})),
        &[
            ("email_attribute", "expected an attribute name (letters, digits and hyphens, or an OID), found \"\""),
            ("employee_id_attribute", "expected a string, found the number 7"),
            ("id_attribute", "expected an attribute name (letters, digits and hyphens, or an OID), found \"entryUUID)(x\""),
        ],
    );
}

#[test]
fn not_a_table() {
    let got = LdapFactory
        .validate(P, &json!("ldap://x"))
        .expect_err("invalid");
    assert_eq!(
        got,
        vec![ConfigIssue::new(P, "expected a table, found a string")]
    );
}

#[test]
fn the_password_never_shows() {
    let v = with(json!({"bind_password": ["s3cret-bind-pw"], "url": "ftp://s3cret"}));
    let text = format!("{:?}", LdapFactory.validate(P, &v));
    assert!(text.contains("bind_password"), "{text}");
    assert!(!text.contains("s3cret-bind-pw"), "{text}");
    let c = LdapConfig::from_value(&good()).expect("parses");
    assert!(!format!("{c:?}").contains("s3cret-bind-pw"));
    let conn = LdapFactory.build("corp-ldap", &good()).expect("builds");
    assert!(!format!("{conn:?}").contains("s3cret-bind-pw"));
}

/// A throwaway self-signed CA certificate (its key was discarded), for tls_ca_file.
const CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBizCCATGgAwIBAgIUPjCaRI6ETAi8bwJNE6mZT8FoghgwCgYIKoZIzj0EAwIw
GjEYMBYGA1UEAwwPcmV2b2tlZCB0ZXN0IENBMCAXDTI2MTEyMzExMTU0OVoYDzIx
MjYxMDMwMTExNTQ5WjAaMRgwFgYDVQQDDA9yZXZva2VkIHRlc3QgQ0EwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAASTXMGnSMoEeEyPU2335e2IPWm9rrsC4+Pd60IU
Zq8qP0wRA44GrN8TCq4wA+aiZci38usDbRUuA1Fq6FEG+1Ovo1MwUTAdBgNVHQ4E
FgQUbpdTMbqoEGledGMAQsUO3ZdXq/0wHwYDVR0jBBgwFoAUbpdTMbqoEGledGMA
QsUO3ZdXq/0wDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEA0Qdd
RuP4FvT+Rq/Bf6XdKz7Ef3XTAgAOOuECyQLKP4QCIDZuglKQmMJnMifBncsN9hkf
oXYzYAdcJIDnHJkghcmz
-----END CERTIFICATE-----
";

#[test]
fn tls_ca_file_is_loaded_at_build() {
    let dir = std::env::temp_dir().join(format!("revoke-ldap-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (ca, empty) = (dir.join("ca.pem"), dir.join("empty.pem"));
    std::fs::write(&ca, CA_PEM).expect("write ca");
    std::fs::write(&empty, "not a certificate\n").expect("write empty");
    let cfg =
        |path: &std::path::Path| with(json!({"url": "ldaps://h", "tls_ca_file": path.to_str()}));

    LdapFactory.validate(P, &cfg(&ca)).expect("valid");
    LdapFactory
        .build("corp-ldap", &cfg(&ca))
        .expect("a PEM CA builds");
    let err = LdapFactory
        .build("corp-ldap", &cfg(&empty))
        .expect_err("no certificate");
    assert_eq!(err.path, format!("{P}.tls_ca_file"));
    assert_eq!(
        err.message,
        format!(
            "expected PEM certificates in {}, found none",
            empty.display()
        )
    );
    let missing = dir.join("missing.pem");
    let err = LdapFactory
        .build("corp-ldap", &cfg(&missing))
        .expect_err("missing file");
    assert!(
        err.message
            .starts_with(&format!("cannot read {}", missing.display())),
        "{}",
        err.message
    );
    let _ = std::fs::remove_dir_all(&dir);
}
