//! Names from HR, config and GitHub itself, made safe to put in a URL path.
//!
//! A login is checked against GitHub's own rules before it is ever sent: `../x`, `*)(uid=*`
//! or `a%2Fb` can never be a login, so they never reach a request. Repository and team names
//! come from GitHub and are percent-encoded as path segments all the same.

/// GitHub's login rules: letters, digits and hyphens, not starting with a hyphen, at most 39
/// characters; Enterprise Managed Users add `_shortcode`, so an underscore is allowed too.
pub fn is_login(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && s.as_bytes()[0].is_ascii_alphanumeric()
}

/// Whether `s` can be an email address to look for (in invitations, SAML and SCIM identities):
/// one `@` between a plain local part and a domain of letters, digits, dots and hyphens.
/// Anything else (`../x`, `*)(uid=*`, `a%2Fb@x`, quotes) is no email and is never sent.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let plain_local = |b: u8| b.is_ascii_alphanumeric() || b"._+-".contains(&b);
    !local.is_empty()
        && s.len() <= 254
        && local.bytes().all(plain_local)
        && domain.contains('.')
        && !domain.starts_with(['.', '-'])
        && !domain.ends_with(['.', '-'])
        && !domain.contains("..")
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// One path segment: everything but RFC 3986 unreserved characters is percent-encoded, so a
/// `/`, `..`, `%` or `?` in a name can never change which resource a request names.
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
            out.push(b as char);
        } else if b == b'.' && !s.bytes().all(|c| c == b'.') {
            out.push('.');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query-string value, encoded the same way.
pub fn query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~' | b'.') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_follow_github_rules() {
        for ok in ["alice", "a", "bob-smith", "x1", "alice_acme", "A-B-C"] {
            assert!(is_login(ok), "{ok}");
        }
        for bad in [
            "", "-a", "../x", "a/b", "*)(uid=*", "a%2Fb", "a b", "ä", ".", "a.b", "a\"b",
        ] {
            assert!(!is_login(bad), "{bad}");
        }
        assert!(!is_login(&"a".repeat(65)));
    }

    #[test]
    fn emails_are_plain_or_refused() {
        for ok in [
            "a@b.c",
            "Dave.Smith+gh@corp.example",
            "x_y-z@sub.corp.example",
        ] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "@b.c",
            "a@",
            "a@b",
            "a@@b.c",
            "../x@b.c",
            "a/b@c.d",
            "a%2Fb@c.d",
            "*)(uid=*@c.d",
            "a@b.c/../x",
            "\"a\"@b.c",
            "a@.b.c",
            "a@b..c",
            "a@b.c?x",
            "a b@c.d",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn segments_cannot_climb_or_split_a_path() {
        assert_eq!(seg("api"), "api");
        assert_eq!(seg("my.repo"), "my.repo");
        assert_eq!(seg(".github"), ".github");
        assert_eq!(seg(".."), "%2E%2E");
        assert_eq!(seg("."), "%2E");
        assert_eq!(seg("../x"), "..%2Fx");
        assert_eq!(seg("a%2Fb"), "a%252Fb");
        assert_eq!(seg("a b?c#d"), "a%20b%3Fc%23d");
        assert_eq!(query("a@b.c"), "a%40b.c");
    }
}
