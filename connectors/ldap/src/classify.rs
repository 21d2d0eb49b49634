//! Every ldap3 error and LDAP result code, mapped to a `ConnectorError` class and a stable code.
//!
//! Only the executor retries; this module only says whether retrying can help. Result codes whose
//! meaning depends on the operation (32 noSuchObject on a delete is success, 16 noSuchAttribute on
//! a value delete is success, 65 on a member delete is the last member) are decided in apply.rs
//! before anything reaches `result`.
//!
//! Decisions worth knowing:
//! - 53 unwillingToPerform is Permanent: OpenLDAP returns it for a read-only replica ("shadow
//!   context"), an unsupported operation or a disabled feature, none of which pass by waiting.
//! - 48, 49, 50 are Auth: the service account's credentials or rights are wrong.
//! - 3, 51, 52, 80 and every transport fault (refused, reset, timed out) are Retryable; transport
//!   faults carry the code `connection` whatever the cause, the message says which.

use ldap3::result::LdapResult;
use ldap3::LdapError;
use revoke_core::ConnectorError;

/// The RFC 4511 name of a result code, for messages.
pub fn rc_name(rc: u32) -> &'static str {
    match rc {
        0 => "success",
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        5 => "compareFalse",
        6 => "compareTrue",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        10 => "referral",
        11 => "adminLimitExceeded",
        12 => "unavailableCriticalExtension",
        13 => "confidentialityRequired",
        16 => "noSuchAttribute",
        17 => "undefinedAttributeType",
        18 => "inappropriateMatching",
        19 => "constraintViolation",
        20 => "attributeOrValueExists",
        21 => "invalidAttributeSyntax",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        54 => "loopDetect",
        64 => "namingViolation",
        65 => "objectClassViolation",
        66 => "notAllowedOnNonLeaf",
        67 => "notAllowedOnRDN",
        68 => "entryAlreadyExists",
        69 => "objectClassModsProhibited",
        71 => "affectsMultipleDSAs",
        80 => "other",
        122 => "assertionFailed",
        _ => "unknown",
    }
}

/// A non-success LDAP result of `op` on `dn`, classified.
pub fn result(op: &str, dn: &str, res: &LdapResult) -> ConnectorError {
    let text = if res.text.is_empty() {
        String::new()
    } else {
        format!(": {}", res.text)
    };
    let message = format!("{op} {dn}: rc={} ({}){text}", res.rc, rc_name(res.rc));
    match res.rc {
        49 => ConnectorError::auth("invalid_credentials", message),
        50 => ConnectorError::auth("insufficient_access_rights", message),
        48 => ConnectorError::auth("inappropriate_authentication", message),
        3 => ConnectorError::retryable("time_limit_exceeded", message),
        51 => ConnectorError::retryable("busy", message),
        52 => ConnectorError::retryable("unavailable", message),
        80 => ConnectorError::retryable("other", message),
        19 => ConnectorError::conflict("constraint_violation", message),
        68 => ConnectorError::conflict("entry_already_exists", message),
        53 => ConnectorError::permanent("unwilling_to_perform", message),
        4 => ConnectorError::permanent(
            "size_limit_exceeded",
            format!("{message} (the service account's size limit is below what this search returns; raise it, e.g. OpenLDAP `limits dn.exact=<bind_dn> size=unlimited`)"),
        ),
        10 => ConnectorError::permanent(
            "referral",
            format!("{message} (referrals are not followed; point url at the server that holds the entry)"),
        ),
        n => ConnectorError::permanent(format!("ldap_rc_{n}"), message),
    }
}

/// An ldap3 error of `op` on `dn`, classified.
pub fn error(op: &str, dn: &str, err: &LdapError) -> ConnectorError {
    let message = format!("{op} {dn}: {err}");
    match err {
        LdapError::LdapResult { result: res } => result(op, dn, res),
        LdapError::Timeout { .. } => {
            ConnectorError::retryable("connection", format!("{op} {dn}: timed out"))
        }
        e if is_transport(e) => ConnectorError::retryable("connection", message),
        LdapError::Rustls { .. } | LdapError::DNSName { .. } => {
            ConnectorError::permanent("tls", message)
        }
        LdapError::UrlParsing { .. } | LdapError::UnknownScheme(_) => {
            ConnectorError::permanent("config", message)
        }
        _ => ConnectorError::permanent("client", message),
    }
}

/// Whether the error means the connection is broken (and must be made again).
pub fn is_transport(err: &LdapError) -> bool {
    matches!(
        err,
        LdapError::Io { .. }
            | LdapError::OpSend { .. }
            | LdapError::ResultRecv { .. }
            | LdapError::IdScrubSend { .. }
            | LdapError::MiscSend { .. }
            | LdapError::EndOfStream
            | LdapError::Timeout { .. }
    )
}

#[cfg(test)]
mod tests {
    use revoke_core::ErrorClass;

    use super::*;

    fn res(rc: u32) -> LdapResult {
        LdapResult {
            rc,
            matched: String::new(),
            text: "diag".into(),
            refs: vec![],
            ctrls: vec![],
        }
    }

    #[test]
    fn result_codes() {
        let cases: &[(u32, &str, &str)] = &[
            (49, "auth", "invalid_credentials"),
            (50, "auth", "insufficient_access_rights"),
            (51, "retryable", "busy"),
            (52, "retryable", "unavailable"),
            (3, "retryable", "time_limit_exceeded"),
            (80, "retryable", "other"),
            (53, "permanent", "unwilling_to_perform"),
            (68, "conflict", "entry_already_exists"),
            (19, "conflict", "constraint_violation"),
            (32, "permanent", "ldap_rc_32"),
            (65, "permanent", "ldap_rc_65"),
            (4, "permanent", "size_limit_exceeded"),
        ];
        for (rc, class, code) in cases {
            let e = result("modify", "cn=x", &res(*rc));
            assert_eq!(
                (e.class.name(), e.code.as_str()),
                (*class, *code),
                "rc {rc}"
            );
        }
        let e = result("delete", "uid=a,dc=org", &res(66));
        assert_eq!(
            e.message,
            "delete uid=a,dc=org: rc=66 (notAllowedOnNonLeaf): diag"
        );
    }

    #[test]
    fn transport_errors_are_retryable_connection() {
        let io = LdapError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let e = error("connect", "ldap://x", &io);
        assert_eq!(e.class, ErrorClass::Retryable { retry_after: None });
        assert_eq!(e.code, "connection");
        assert!(is_transport(&io));
        assert_eq!(
            error("search", "dc=x", &LdapError::FilterParsing).code,
            "client"
        );
    }
}
