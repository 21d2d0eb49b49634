//! A small, documented subset of JSONPath (RFC 9535): `$` followed by `.name`, `['name']`,
//! `[n]`, `[*]` and `.*`. No filters, no recursive descent, no slices: what a definition needs to
//! reach items, ids and fields, and nothing a typo could turn into "matches everything".

use serde_json::Value;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
    All,
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    text: String,
    steps: Vec<Step>,
}

impl JsonPath {
    /// Parses `text`; the error says what was expected where.
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        let Some(mut rest) = text.strip_prefix('$') else {
            return Err(format!(
                "expected a JSONPath starting with $, found {text:?}"
            ));
        };
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix(".*") {
                steps.push(Step::All);
                rest = r;
            } else if let Some(r) = rest.strip_prefix('.') {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                let name = &r[..end];
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '$')
                {
                    return Err(format!(
                        "expected a member name after . in {text:?} (use ['...'] for other characters), found {name:?}"
                    ));
                }
                steps.push(Step::Key(name.to_string()));
                rest = &r[end..];
            } else if let Some(r) = rest.strip_prefix("[*]") {
                steps.push(Step::All);
                rest = r;
            } else if let Some(r) = rest.strip_prefix("['") {
                let Some(end) = r.find("']") else {
                    return Err(format!("expected '] to close a name in {text:?}"));
                };
                steps.push(Step::Key(r[..end].to_string()));
                rest = &r[end + 2..];
            } else if let Some(r) = rest.strip_prefix('[') {
                let Some(end) = r.find(']') else {
                    return Err(format!("expected ] in {text:?}"));
                };
                let n: usize = r[..end].parse().map_err(|_| {
                    format!(
                        "expected [n], [*] or ['name'] in {text:?}, found [{}] (filters and slices are not supported)",
                        &r[..end]
                    )
                })?;
                steps.push(Step::Index(n));
                rest = &r[end + 1..];
            } else {
                return Err(format!(
                    "expected .name, ['name'], [n] or [*] in {text:?}, found {rest:?}"
                ));
            }
        }
        Ok(JsonPath {
            text: text.to_string(),
            steps,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Every value the path reaches in `v` (none when a step is missing).
    pub fn select<'a>(&self, v: &'a Value) -> Vec<&'a Value> {
        let mut cur = vec![v];
        for step in &self.steps {
            let mut next = Vec::new();
            for c in cur {
                match step {
                    Step::Key(k) => next.extend(c.get(k.as_str())),
                    Step::Index(i) => next.extend(c.as_array().and_then(|a| a.get(*i))),
                    Step::All => match c {
                        Value::Array(a) => next.extend(a.iter()),
                        Value::Object(m) => next.extend(m.values()),
                        _ => {}
                    },
                }
            }
            cur = next;
        }
        cur
    }

    /// The first value reached, if any.
    pub fn first<'a>(&self, v: &'a Value) -> Option<&'a Value> {
        self.select(v).into_iter().next()
    }
}

/// A scalar as text: a string as it is, a number or boolean in its JSON form; None otherwise.
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The value at a dotted field path from the item's root (`profile.email`), for `{{item.x.y}}`.
pub fn field<'a>(v: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(v, |cur, k| match cur {
        Value::Array(a) => k.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => cur.get(k),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_subset_reaches_items_fields_and_quoted_names() {
        let v = json!({"Resources": [{"id": "a", "emails": [{"value": "x@y"}, {"value": "z@y"}],
            "urn:ext:User": {"employeeNumber": 7}}, {"id": "b"}]});
        let p = |s: &str| JsonPath::parse(s).expect("a value");
        assert_eq!(p("$.Resources[*]").select(&v).len(), 2);
        assert_eq!(p("$.Resources[1].id").first(&v), Some(&json!("b")));
        assert_eq!(
            p("$.Resources[0].emails[*].value").select(&v),
            vec![&json!("x@y"), &json!("z@y")]
        );
        assert_eq!(
            p("$.Resources[0]['urn:ext:User'].employeeNumber").first(&v),
            Some(&json!(7))
        );
        assert_eq!(p("$").select(&v), vec![&v]);
        assert!(p("$.missing[*]").select(&v).is_empty());
    }

    #[test]
    fn filters_slices_and_bad_starts_are_refused() {
        for bad in ["Resources", "$..id", "$[?(@.a)]", "$[0:2]", "$.", "$['x"] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
    }
}
