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

/// Groups that may list the user: groupOfNames by DN, posixGroup by any of the usernames, and
/// every groupOfUniqueNames (OpenLDAP's `uniqueMember=<dn>` does not match a value carrying the
/// optional `#'...'B` UID, so those are read whole and checked by the caller).
pub fn group_filter(user_dn: &str, usernames: &[String]) -> String {
    let posix = if usernames.is_empty() {
        String::new()
    } else {
        format!(
            "(&(objectClass=posixGroup){})",
            any_of(usernames.iter().map(|u| ("memberUid", u.as_str())))
        )
    };
    format!(
        "(|(&(objectClass=groupOfNames){})(objectClass=groupOfUniqueNames){posix})",
        eq("member", user_dn),
    )
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
        let f = group_filter("uid=a\\2Cb,ou=people", &["a*".into(), "b)".into()]);
        assert!(f.contains("(member=uid=a\\5c2Cb,ou=people)"), "{f}");
        assert!(f.contains("(|(memberUid=a\\2a)(memberUid=b\\29))"), "{f}");
        assert!(f.contains("(objectClass=groupOfUniqueNames)"), "{f}");
        let f = group_filter("cn=zoe,ou=people", &[]);
        assert!(!f.contains("posixGroup"), "{f}");
    }
}
