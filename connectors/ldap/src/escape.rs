//! Filters and DNs built from untrusted values, and DN comparison.
//!
//! Every value that reaches a filter goes through `ldap3::ldap_escape` (RFC 4515) and every value
//! that reaches a DN through `ldap3::dn_escape` (RFC 4514); nothing here concatenates a raw value.

use ldap3::ldap_escape;

/// `(attr=value)` with the value escaped; `attr` must be a validated attribute name.
pub fn eq(attr: &str, value: &str) -> String {
    format!("({attr}={})", ldap_escape(value))
}

/// The filter that finds a user entry by its login attribute.
pub fn user_filter(object_class: Option<&str>, user_attribute: &str, username: &str) -> String {
    match object_class {
        Some(oc) => format!(
            "(&{}{})",
            eq("objectClass", oc),
            eq(user_attribute, username)
        ),
        None => eq(user_attribute, username),
    }
}

/// Groups of the three kinds that list the user, by DN or by username.
pub fn group_filter(user_dn: &str, username: &str) -> String {
    format!(
        "(|(&(objectClass=groupOfNames){})(&(objectClass=groupOfUniqueNames){})(&(objectClass=posixGroup){}))",
        eq("member", user_dn),
        eq("uniqueMember", user_dn),
        eq("memberUid", username),
    )
}

/// Whether `name` is an attribute description we accept: a keystring or a numeric OID.
pub fn is_attribute_name(name: &str) -> bool {
    let b = name.as_bytes();
    match b.first() {
        Some(c) if c.is_ascii_alphabetic() => {
            b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        }
        Some(c) if c.is_ascii_digit() => name
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit())),
        _ => false,
    }
}

/// The raw RDN strings of a DN, split at unescaped commas (escapes and quotes respected).
pub fn split_rdns(dn: &str) -> Vec<&str> {
    split_unescaped(dn, b",;")
}

/// The first RDN of a DN, as written (escapes kept), for a move that keeps the entry's name.
pub fn first_rdn(dn: &str) -> Option<&str> {
    split_rdns(dn)
        .into_iter()
        .next()
        .map(str::trim)
        .filter(|r| !r.is_empty())
}

fn split_unescaped<'a>(s: &'a str, seps: &[u8]) -> Vec<&'a str> {
    let mut out = Vec::new();
    let (mut start, mut escaped, mut quoted) = (0, false, false);
    for (i, c) in s.bytes().enumerate() {
        if escaped {
            escaped = false;
        } else if c == b'\\' {
            escaped = true;
        } else if c == b'"' {
            quoted = !quoted;
        } else if !quoted && seps.contains(&c) {
            out.push(&s[start..i]);
            start = i + 1;
        }
    }
    out.push(&s[start..]);
    out
}

/// Why a DN does not parse, in words for a config message.
pub fn dn_problem(dn: &str) -> Option<String> {
    if dn.trim().is_empty() {
        return Some("the DN is empty".into());
    }
    for rdn in split_rdns(dn) {
        for ava in split_unescaped(rdn, b"+") {
            let Some((attr, value)) = ava.split_once('=') else {
                return Some(format!("\"{}\" is not attr=value", ava.trim()));
            };
            if !is_attribute_name(attr.trim()) {
                return Some(format!("\"{}\" is not an attribute name", attr.trim()));
            }
            if value.trim().is_empty() {
                return Some(format!("\"{}\" has an empty value", ava.trim()));
            }
        }
    }
    None
}

/// A comparable form of a DN: types and values lowercased, escapes decoded, spaces trimmed.
///
/// Good enough for the case-insensitive naming attributes directories use (uid, cn, ou, dc); the
/// server remains the judge wherever a comparison decides a write (compare, modify).
pub fn normalize_dn(dn: &str) -> Vec<Vec<(String, String)>> {
    split_rdns(dn)
        .into_iter()
        .filter(|r| !r.trim().is_empty())
        .map(|rdn| {
            let mut avas: Vec<(String, String)> = split_unescaped(rdn, b"+")
                .into_iter()
                .map(|ava| {
                    let (t, v) = ava.split_once('=').unwrap_or((ava, ""));
                    (
                        t.trim().to_ascii_lowercase(),
                        unescape_value(v.trim()).to_lowercase(),
                    )
                })
                .collect();
            avas.sort();
            avas
        })
        .collect()
}

/// Whether two DNs name the same entry (see `normalize_dn`).
pub fn same_dn(a: &str, b: &str) -> bool {
    normalize_dn(a) == normalize_dn(b)
}

/// Whether `dn` is `base` or lies below it.
pub fn is_under(dn: &str, base: &str) -> bool {
    let (d, b) = (normalize_dn(dn), normalize_dn(base));
    d.len() >= b.len() && d[d.len() - b.len()..] == b[..]
}

fn unescape_value(v: &str) -> String {
    let v = v
        .strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(v);
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(byte) => {
                    out.push(byte);
                    i += 3;
                }
                None => {
                    out.push(b[i + 1]);
                    i += 2;
                }
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_values_are_escaped() {
        assert_eq!(
            user_filter(None, "uid", "*)(uid=*"),
            "(uid=\\2a\\29\\28uid=\\2a)"
        );
        assert_eq!(
            user_filter(Some("inetOrgPerson"), "uid", "admin)(|(uid=*"),
            "(&(objectClass=inetOrgPerson)(uid=admin\\29\\28|\\28uid=\\2a))"
        );
        let f = group_filter("uid=a\\2Cb,ou=people", "a*");
        assert!(f.contains("(member=uid=a\\5c2Cb,ou=people)"), "{f}");
        assert!(f.contains("(memberUid=a\\2a)"), "{f}");
    }

    #[test]
    fn attribute_names() {
        for ok in ["uid", "employeeNumber", "x-foo", "2.5.4.3"] {
            assert!(is_attribute_name(ok), "{ok}");
        }
        for bad in ["", "1uid", "u id", "uid)", "2.5..3", "-x", "uid="] {
            assert!(!is_attribute_name(bad), "{bad}");
        }
    }

    #[test]
    fn dns_parse_and_compare() {
        assert_eq!(dn_problem("uid=a,ou=people,dc=example,dc=org"), None);
        assert_eq!(dn_problem("uid=a\\,b+cn=x,dc=org"), None);
        assert_eq!(
            dn_problem("ou=people,example"),
            Some("\"example\" is not attr=value".into())
        );
        assert_eq!(
            dn_problem("ou=,dc=org"),
            Some("\"ou=\" has an empty value".into())
        );
        assert_eq!(dn_problem(" "), Some("the DN is empty".into()));
        assert!(same_dn(
            "UID=Alice, ou=People,dc=example,dc=org",
            "uid=alice,ou=people,dc=example,dc=org"
        ));
        assert!(same_dn("uid=a\\3Db,dc=org", "uid=a\\=b,dc=org"));
        assert!(!same_dn("uid=a\\,b,dc=org", "uid=a,b=,dc=org"));
        assert!(is_under("uid=a,ou=disabled,dc=org", "ou=Disabled, dc=org"));
        assert!(!is_under("uid=a,ou=people,dc=org", "ou=disabled,dc=org"));
        assert!(!is_under("dc=org", "ou=disabled,dc=org"));
        assert_eq!(first_rdn("uid=a\\,b,ou=people,dc=org"), Some("uid=a\\,b"));
    }
}
