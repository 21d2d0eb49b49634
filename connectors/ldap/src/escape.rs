//! Filters built from untrusted values.
//!
//! Every value that reaches a filter goes through `ldap3::ldap_escape` (RFC 4515); nothing here
//! concatenates a raw value. Attribute names come from validated configuration. DNs are parsed
//! and compared by `revoke_core::dn` (RFC 4514).

use ldap3::ldap_escape;

/// `(attr=value)` with the value escaped; `attr` must be a validated attribute name.
pub fn eq(attr: &str, value: &str) -> String {
    format!("({attr}={})", ldap_escape(value))
}

/// `(|(a=x)(b=y))` of the pairs, escaped; one pair needs no `|`, none matches nothing.
pub fn any_of<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let terms: Vec<String> = pairs.into_iter().map(|(a, v)| eq(a, v)).collect();
    match terms.len() {
        0 => "(!(objectClass=*))".to_string(),
        1 => terms.concat(),
        _ => format!("(|{})", terms.concat()),
    }
}

/// The filter that finds user entries by any of (attribute, value).
pub fn user_filter<'a>(
    object_class: Option<&str>,
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    let any = any_of(pairs);
    match object_class {
        Some(oc) => format!("(&{}{any})", eq("objectClass", oc)),
        None => any,
    }
}

/// Groups that may list one of the users (DN, usernames): groupOfNames by DN, posixGroup by any
/// of the usernames, and every groupOfUniqueNames (OpenLDAP's `uniqueMember=<dn>` does not match
/// a value carrying the optional `#'...'B` UID, so those are read whole and checked by the
/// caller). One filter for a whole discovery batch.
pub fn groups_filter(users: &[(&str, Vec<String>)]) -> String {
    let members = any_of(users.iter().map(|(dn, _)| ("member", *dn)));
    let uids = any_of(
        users
            .iter()
            .flat_map(|(_, names)| names.iter().map(|u| ("memberUid", u.as_str()))),
    );
    let posix = if users.iter().all(|(_, n)| n.is_empty()) {
        String::new()
    } else {
        format!("(&(objectClass=posixGroup){uids})")
    };
    format!("(|(&(objectClass=groupOfNames){members})(objectClass=groupOfUniqueNames){posix})")
}

/// The filter a group action's target group is found by: its RDN (values as
/// `revoke_core::dn::normalize_dn` gives them). A superset at worst; the caller keeps only the
/// entries whose DN is the target.
pub fn rdn_filter(dn: &str) -> Option<String> {
    let rdn = revoke_core::dn::first_rdn(dn)?;
    let pairs = revoke_core::dn::normalize_dn(rdn).into_iter().next()?;
    let name_ok = |a: &str| {
        !a.is_empty()
            && a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    if !pairs.iter().all(|(a, _)| name_ok(a)) {
        return None;
    }
    match pairs.len() {
        0 => None,
        1 => Some(eq(&pairs[0].0, &pairs[0].1)),
        _ => Some(format!(
            "(&{})",
            pairs.iter().map(|(a, v)| eq(a, v)).collect::<String>()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_values_are_escaped() {
        assert_eq!(
            user_filter(None, [("uid", "*)(uid=*")]),
            "(uid=\\2a\\29\\28uid=\\2a)"
        );
        assert_eq!(
            user_filter(Some("inetOrgPerson"), [("uid", "admin)(|(uid=*")]),
            "(&(objectClass=inetOrgPerson)(uid=admin\\29\\28|\\28uid=\\2a))"
        );
        assert_eq!(
            user_filter(
                Some("inetOrgPerson"),
                [
                    ("uid", "1004"),
                    ("mail", "1004"),
                    ("employeeNumber", "1004")
                ]
            ),
            "(&(objectClass=inetOrgPerson)(|(uid=1004)(mail=1004)(employeeNumber=1004)))"
        );
        assert_eq!(user_filter(None, []), "(!(objectClass=*))");
        let f = groups_filter(&[("uid=a\\2Cb,ou=people", vec!["a*".into(), "b)".into()])]);
        assert!(f.contains("(member=uid=a\\5c2Cb,ou=people)"), "{f}");
        assert!(f.contains("(|(memberUid=a\\2a)(memberUid=b\\29))"), "{f}");
        assert!(f.contains("(objectClass=groupOfUniqueNames)"), "{f}");
        let f = groups_filter(&[("cn=zoe,ou=people", vec![])]);
        assert!(!f.contains("posixGroup"), "{f}");
    }
}
