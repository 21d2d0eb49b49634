//! Untrusted values into SCIM filters, URL path segments and query strings.
//!
//! A filter's comparison value is a JSON string (RFC 7644 §3.4.2.2), so it is written with JSON's
//! own quoting: `"` and `\` escaped, control characters as `\uXXXX`. The whole filter is then
//! percent-encoded as a query value; ids from the server are percent-encoded as path segments, so
//! an id such as `../x` stays one segment.

pub use revoke_http::encode as percent_encode;

/// A SCIM filter comparison value: the JSON string of `value`, quotes included.
pub fn filter_value(value: &str) -> String {
    // serde_json writes a str as a JSON string and cannot fail for one.
    serde_json::to_string(value).unwrap_or_else(|_| "\"\"".to_string())
}

/// `attr eq "value"`, the value quoted and escaped.
pub fn eq_filter(attr: &str, value: &str) -> String {
    format!("{attr} eq {}", filter_value(value))
}

/// The value path that selects one member of a group: `members[value eq "id"]`.
pub fn member_path(user_id: &str) -> String {
    format!("members[{}]", eq_filter("value", user_id))
}

/// One path segment from an id; `.` and `..` are encoded too, so no segment climbs.
pub fn segment(id: &str) -> String {
    match id {
        "." => "%2E".to_string(),
        ".." => "%2E%2E".to_string(),
        other => percent_encode(other),
    }
}

/// A query string from (name, value) pairs, each percent-encoded.
pub fn query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_values_are_json_strings() {
        assert_eq!(eq_filter("userName", "alice"), r#"userName eq "alice""#);
        assert_eq!(
            eq_filter("userName", r#"a"b) or userName pr or (x\"#),
            r#"userName eq "a\"b) or userName pr or (x\\""#
        );
        assert_eq!(
            eq_filter("userName", "*)(uid=*"),
            r#"userName eq "*)(uid=*""#
        );
        assert_eq!(eq_filter("userName", "a\nb"), r#"userName eq "a\nb""#);
        assert_eq!(member_path("ab\"c"), r#"members[value eq "ab\"c"]"#);
    }

    #[test]
    fn urls_keep_untrusted_parts_in_their_place() {
        assert_eq!(segment("../x"), "..%2Fx");
        assert_eq!(segment(".."), "%2E%2E");
        assert_eq!(segment("a b?c#d"), "a%20b%3Fc%23d");
        assert_eq!(
            query(&[("filter", r#"userName eq "a&b=c""#)]),
            "filter=userName%20eq%20%22a%26b%3Dc%22"
        );
    }
}
