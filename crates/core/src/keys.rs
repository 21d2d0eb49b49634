//! The shape check every connector's config table starts with: known keys, their types, the
//! required ones, and error messages that name the key, what was expected and what was found
//! (never the value of a secret). Pure; connectors add their own rules after it.

use serde_json::{Map, Value};

use crate::ConfigIssue;

/// The type a config key must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Str,
    Bool,
    /// A non-negative integer.
    Int,
    StrList,
    /// A table whose values are strings.
    StrTable,
    /// A string or a list of strings.
    StrOrList,
    /// A nested table, checked by the connector itself.
    Table,
}

impl KeyType {
    pub fn expected(self) -> &'static str {
        match self {
            KeyType::Str => "a string",
            KeyType::Bool => "true or false",
            KeyType::Int => "a positive integer",
            KeyType::StrList => "a list of strings",
            KeyType::StrTable => "a table of strings",
            KeyType::StrOrList => "a string or a list of strings",
            KeyType::Table => "a table",
        }
    }

    pub fn matches(self, v: &Value) -> bool {
        let str_list = |v: &Value| v.as_array().is_some_and(|a| a.iter().all(Value::is_string));
        match self {
            KeyType::Str => v.is_string(),
            KeyType::Bool => v.is_boolean(),
            KeyType::Int => v.as_u64().is_some(),
            KeyType::StrList => str_list(v),
            KeyType::StrTable => v
                .as_object()
                .is_some_and(|m| m.values().all(Value::is_string)),
            KeyType::StrOrList => v.is_string() || str_list(v),
            KeyType::Table => v.is_object(),
        }
    }
}

/// One key a config table may hold.
#[derive(Debug, Clone, Copy)]
pub struct KeySpec {
    pub name: &'static str,
    pub ty: KeyType,
    pub required: bool,
    /// A secret's value is never echoed back in an error.
    pub secret: bool,
}

impl KeySpec {
    pub const fn optional(name: &'static str, ty: KeyType) -> Self {
        Self {
            name,
            ty,
            required: false,
            secret: false,
        }
    }
    pub const fn required(name: &'static str, ty: KeyType) -> Self {
        Self {
            name,
            ty,
            required: true,
            secret: false,
        }
    }
    pub const fn required_secret(name: &'static str) -> Self {
        Self {
            name,
            ty: KeyType::Str,
            required: true,
            secret: true,
        }
    }
    pub const fn secret(name: &'static str) -> Self {
        Self {
            name,
            ty: KeyType::Str,
            required: false,
            secret: true,
        }
    }
}

/// What a value is, in words, for "found ..." (`"abc"`, the number 3, a list).
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "nothing".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("{s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a table".into(),
    }
}

/// What kind of value it is, without the value (for secrets).
pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

/// Why `url` is not an http(s) base URL, if it is not.
pub fn url_problem(url: &str) -> Option<&'static str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let Some(rest) = rest else {
        return Some("it must start with https:// or http://");
    };
    if rest.split('/').next().unwrap_or("").is_empty() {
        return Some("it has no host");
    }
    if url.contains(['?', '#', ' ']) {
        return Some("it must not have a query, a fragment or spaces");
    }
    None
}

/// Checks `params` against `keys` (the key `kind` is always allowed) and pushes one issue per
/// problem, each under `path.key`. Returns the table when `params` is one, so the caller can go
/// on with its own rules; `None` (with an issue) when it is not a table at all.
pub fn check_table<'a>(
    path: &str,
    params: &'a Value,
    keys: &[KeySpec],
    issues: &mut Vec<ConfigIssue>,
) -> Option<&'a Map<String, Value>> {
    let Some(table) = params.as_object() else {
        issues.push(ConfigIssue::new(
            path,
            format!("expected a table, found {}", kind_of(params)),
        ));
        return None;
    };
    for (k, v) in table {
        if k == "kind" {
            continue;
        }
        let Some(spec) = keys.iter().find(|s| s.name == k) else {
            let known: Vec<&str> = keys.iter().map(|s| s.name).collect();
            issues.push(ConfigIssue::new(
                format!("{path}.{k}"),
                format!("unknown key; expected one of {}", known.join(", ")),
            ));
            continue;
        };
        if !spec.ty.matches(v) {
            let found = if spec.secret {
                kind_of(v).to_string()
            } else {
                describe(v)
            };
            issues.push(ConfigIssue::new(
                format!("{path}.{k}"),
                format!("expected {}, found {found}", spec.ty.expected()),
            ));
        }
    }
    for spec in keys.iter().filter(|s| s.required) {
        if !table.contains_key(spec.name) {
            issues.push(ConfigIssue::new(
                format!("{path}.{}", spec.name),
                "missing required key",
            ));
        }
    }
    Some(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEYS: &[KeySpec] = &[
        KeySpec::required("region", KeyType::Str),
        KeySpec::optional("accounts", KeyType::StrOrList),
        KeySpec::secret("secret_access_key"),
    ];

    fn messages(v: Value) -> Vec<String> {
        let mut issues = Vec::new();
        check_table("connectors.aws", &v, KEYS, &mut issues);
        issues.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn names_the_key_what_was_expected_and_what_was_found() {
        assert_eq!(
            messages(json!({"kind": "x", "region": 3, "acounts": []})),
            vec![
                "connectors.aws.acounts: unknown key; expected one of region, accounts, secret_access_key",
                "connectors.aws.region: expected a string, found the number 3",
            ]
        );
        assert_eq!(
            messages(json!({})),
            vec!["connectors.aws.region: missing required key"]
        );
        assert_eq!(
            messages(json!([1])),
            vec!["connectors.aws: expected a table, found a list"]
        );
    }

    #[test]
    fn never_echoes_a_secret() {
        let m = messages(json!({"region": "r", "secret_access_key": ["hunter2"]}));
        assert_eq!(
            m,
            vec!["connectors.aws.secret_access_key: expected a string, found a list"]
        );
        assert!(messages(json!({"region": "r", "accounts": "organization"})).is_empty());
        assert!(messages(json!({"region": "r", "accounts": ["1", "2"]})).is_empty());
    }

    #[test]
    fn urls() {
        assert_eq!(url_problem("http://127.0.0.1:5000"), None);
        assert!(url_problem("ftp://x").is_some());
        assert!(url_problem("https:///x").is_some());
        assert!(url_problem("https://x/?a").is_some());
    }
}
