//! Distinguished names (RFC 4514): parsing, comparison and one canonical spelling.
//!
//! A directory may spell one DN many ways (`UID=Ann, OU=People` and `uid=ann,ou=people`); the
//! protected-accounts check and identity pinning compare DNs in the canonical form made here.
//! Attribute types and values are folded to lowercase: the naming attributes directories use
//! (uid, cn, ou, dc, o) match case-insensitively, and where that is too broad it errs towards
//! "the same entry", which for a protected account means "left out".

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
        .map(trim_spaces)
        .filter(|r| !r.is_empty())
}

/// Drops the spaces around a DN part (RFC 4514 allows only U+0020 there), but not an escaped
/// trailing space (`a\ `) and no other whitespace, which belongs to the value.
fn trim_spaces(s: &str) -> &str {
    let s = s.trim_start_matches(' ');
    let b = s.as_bytes();
    let mut end = b.len();
    while end > 0 && b[end - 1] == b' ' {
        let backslashes = b[..end - 1]
            .iter()
            .rev()
            .take_while(|c| **c == b'\\')
            .count();
        if backslashes % 2 == 1 {
            break;
        }
        end -= 1;
    }
    &s[..end]
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
            if unescape_value(trim_spaces(value)).is_empty() {
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
                        unescape_value(trim_spaces(v)).to_lowercase(),
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
            // Two hex digits exactly: from_str_radix alone would also read `+b` as 11.
            let hex = b
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
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

/// One canonical spelling of a DN: types and values lowercased, escapes decoded and re-encoded
/// minimally, spaces around separators dropped, the AVAs of a multi-valued RDN sorted. `None`
/// when `dn` does not parse as a DN (`admin`, `root@example.org`).
pub fn canonical(dn: &str) -> Option<String> {
    if dn_problem(dn).is_some() {
        return None;
    }
    let rdns: Vec<String> = normalize_dn(dn)
        .into_iter()
        .map(|avas| {
            avas.into_iter()
                .map(|(t, v)| format!("{t}={}", escape_value(&v)))
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    Some(rdns.join(","))
}

/// A value escaped for a DN (RFC 4514 section 2.4), with nothing escaped that need not be.
pub fn escape_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let edge_space = c == ' ' && (i == 0 || i == last);
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || edge_space
            || (c == '#' && i == 0)
        {
            out.push('\\');
            out.push(c);
        } else if c == '\0' {
            out.push_str("\\00");
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn escaped_values_come_back_as_written() {
        // Found by crates/fuzz: `\+b` was read as the byte 0x0b (from_str_radix takes a sign),
        // an escaped trailing space was trimmed to a lone backslash, and whitespace other than
        // U+0020 was trimmed from values.
        for value in [
            "a+b",
            "+10000",
            "x+1",
            "trailing ",
            " both ",
            "\u{2028}",
            "\u{b}",
            "\u{a0}x\u{a0}",
            "a\\ ",
        ] {
            let dn = format!("uid={},ou=people,dc=org", escape_value(value));
            assert_eq!(dn_problem(&dn), None, "{dn:?}");
            assert_eq!(
                normalize_dn(&dn)[0],
                vec![("uid".to_string(), value.to_lowercase())],
                "{dn:?}"
            );
            assert_eq!(
                first_rdn(&dn),
                Some(format!("uid={}", escape_value(value)).as_str())
            );
            let c = canonical(&dn).expect("canonical");
            assert_eq!(canonical(&c), Some(c.clone()), "{dn:?}");
        }
        assert!(!same_dn("cn=a\\+b,dc=x", "cn=a\\0b,dc=x"));
        // A quoted empty value is empty: no canonical form that does not parse.
        assert_eq!(canonical("cn=\"\",dc=x"), None);
        assert_eq!(
            canonical("cn=\\\n\\,ou=people,dc=x"),
            Some("cn=\n\\,ou\\=people,dc=x".to_string())
        );
    }

    #[test]
    fn one_canonical_spelling() {
        let want = Some("uid=breakglass,ou=admins,ou=people,dc=acme,dc=test".to_string());
        for spelling in [
            "UID=breakglass, OU=admins, OU=people, DC=acme, DC=test",
            "uid=breakglass,ou=admins,ou=people,dc=acme,dc=test",
            " uid = BreakGlass ,ou=Admins;ou=people,dc=acme,dc=test ",
            "uid=\\62reakglass,ou=admins,ou=people,dc=acme,dc=test",
        ] {
            assert_eq!(canonical(spelling), want, "{spelling}");
        }
        assert_eq!(
            canonical("cn=Doe\\, Jane+uid=jd,dc=x"),
            Some("cn=doe\\, jane+uid=jd,dc=x".to_string())
        );
        assert_ne!(canonical("cn=a\\,b,dc=x"), canonical("cn=a,b=,dc=x"));
        for not_a_dn in ["admin", "root@acme.test", "1004", "", "a=b,c"] {
            assert_eq!(canonical(not_a_dn), None, "{not_a_dn}");
        }
    }
}
