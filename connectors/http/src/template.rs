//! `{{name}}` templates and their escaping by position.
//!
//! The author never escapes: a value is escaped for where it lands, so no subject value can
//! change a URL's shape or a body's structure.
//! - path: each value is percent-encoded whole (`revoke_http::encode`: everything but RFC 3986
//!   unreserved characters), so `../x`, `a/b`, `?`, `#` and `%2F` stay inside their segment;
//! - query and form: the whole rendered value is percent-encoded (the URL is built from the
//!   encoded pairs, never parsed back);
//! - JSON: the rendered text becomes a JSON string through the serializer, so quotes and
//!   backslashes cannot end it;
//! - header: a value holding CR, LF or any other control character is refused (nothing is sent).

use std::fmt;

use revoke_http::encode;

/// A variable a template names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    /// `subject.id`, `subject.username`, `subject.email`, `subject.employee_id`,
    /// `subject.client_domain`.
    Subject(String),
    /// `item.id` or `item.<dotted field>`.
    Item(String),
    /// `parent.id` or `parent.<dotted field>`.
    Parent(String),
    /// `account.id`: the pinned account's immutable id.
    AccountId,
    /// `action.key`: the action's idempotency key.
    ActionKey,
    /// `vars.<name>`: a value of the instance (`[vars] reassign_to = "1"`).
    Vars(String),
}

pub const SUBJECT_FIELDS: &[&str] = &["id", "username", "email", "employee_id", "client_domain"];

impl Var {
    /// The name as written (`item.id`).
    pub fn name(&self) -> String {
        match self {
            Var::Subject(f) => format!("subject.{f}"),
            Var::Item(f) => format!("item.{f}"),
            Var::Parent(f) => format!("parent.{f}"),
            Var::AccountId => "account.id".into(),
            Var::ActionKey => "action.key".into(),
            Var::Vars(n) => format!("vars.{n}"),
        }
    }

    fn parse(s: &str) -> Result<Var, String> {
        let field_ok = |f: &str| {
            !f.is_empty()
                && f.split('.').all(|p| {
                    !p.is_empty()
                        && p.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                })
        };
        if let Some(f) = s.strip_prefix("subject.") {
            if SUBJECT_FIELDS.contains(&f) {
                return Ok(Var::Subject(f.to_string()));
            }
            return Err(format!(
                "expected subject.{} in {{{{...}}}}, found {s:?}",
                SUBJECT_FIELDS.join(", subject.")
            ));
        }
        if let Some(f) = s.strip_prefix("item.") {
            if field_ok(f) {
                return Ok(Var::Item(f.to_string()));
            }
        }
        if let Some(f) = s.strip_prefix("parent.") {
            if field_ok(f) {
                return Ok(Var::Parent(f.to_string()));
            }
        }
        if let Some(n) = s.strip_prefix("vars.") {
            if !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Ok(Var::Vars(n.to_string()));
            }
        }
        match s {
            "account.id" => Ok(Var::AccountId),
            "action.key" => Ok(Var::ActionKey),
            _ => Err(format!(
                "expected subject.*, item.<field>, parent.<field>, account.id, action.key or vars.<name> in {{{{...}}}}, found {s:?}"
            )),
        }
    }
}

/// Where a rendered template goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// A URL path: values percent-encoded, the literal text as written.
    Path,
    /// A query or form value, or a JSON string, or plain text: values as they are (the caller
    /// encodes the whole result for its position).
    Raw,
    /// A header value: a control character in a value is refused.
    Header,
}

/// A parsed template: literal text and variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var(Var, Option<Filter>),
}

/// A conversion of a JSON body value that is one variable alone: `"{{item.id | number}}"`
/// becomes the number 42, not the string "42".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Number,
    Bool,
}

/// Why a template could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderError {
    /// The value of this variable is not known (the subject has no email, the item no field).
    Missing(String),
    /// A header value holds a control character.
    Control(String),
    /// A `| number` or `| bool` value that is not one (what was expected, the value).
    NotA(&'static str, String),
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenderError::Missing(v) => write!(f, "no value for {{{{{v}}}}}"),
            RenderError::NotA(what, v) => write!(f, "expected a {what}, found {v:?}"),
            RenderError::Control(v) => write!(
                f,
                "the value of {{{{{v}}}}} holds a control character (CR, LF, ...) and cannot go in a header"
            ),
        }
    }
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Lit(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                return Err(format!("expected }} to close {{{{ in {text:?}"));
            };
            let inner = &after[..end];
            let (name, filter) = match inner.split_once('|') {
                Some((n, f)) => (
                    n,
                    Some(match f.trim() {
                        "number" => Filter::Number,
                        "bool" => Filter::Bool,
                        other => {
                            return Err(format!(
                                "expected | number or | bool after a name, found | {other:?} in {text:?}"
                            ))
                        }
                    }),
                ),
                None => (inner, None),
            };
            parts.push(Part::Var(Var::parse(name.trim())?, filter));
            rest = &after[end + 2..];
        }
        if rest.contains("}}") {
            return Err(format!("found }} without {{{{ in {text:?}"));
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_string()));
        }
        Ok(Template { parts })
    }

    pub fn vars(&self) -> impl Iterator<Item = &Var> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v, _) => Some(v),
            Part::Lit(_) => None,
        })
    }

    /// The literal text alone.
    pub fn literal_text(&self) -> String {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Lit(s) => Some(s.as_str()),
                Part::Var(..) => None,
            })
            .collect()
    }

    /// The filter of a template that is one variable alone, if it has one.
    pub fn sole_filter(&self) -> Option<Filter> {
        match self.parts.as_slice() {
            [Part::Var(_, f)] => *f,
            _ => None,
        }
    }

    /// Whether any variable has a filter.
    pub fn has_filter(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Var(_, Some(_))))
    }

    /// Renders with `value` for each variable, escaped for `pos`.
    pub fn render(
        &self,
        value: &dyn Fn(&Var) -> Option<String>,
        pos: Position,
    ) -> Result<String, RenderError> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(v, _) => {
                    let x = value(v).ok_or_else(|| RenderError::Missing(v.name()))?;
                    match pos {
                        Position::Path => out.push_str(&encode(&x)),
                        Position::Raw => out.push_str(&x),
                        Position::Header => {
                            if x.chars().any(char::is_control) {
                                return Err(RenderError::Control(v.name()));
                            }
                            out.push_str(&x);
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Renders `text` (already validated) for `pos`.
pub fn render(
    text: &str,
    value: &dyn Fn(&Var) -> Option<String>,
    pos: Position,
) -> Result<String, RenderError> {
    Template::parse(text)
        .map_err(RenderError::Missing)?
        .render(value, pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(v: &Var) -> Option<String> {
        match v {
            Var::Subject(f) if f == "username" => Some("../admin?x=1#f%2Fq\"'\r\nX: y".into()),
            Var::Item(f) if f == "id" => Some("42".into()),
            _ => None,
        }
    }

    #[test]
    fn a_value_in_a_path_stays_one_segment_whatever_it_holds() {
        let t = Template::parse("/users/{{subject.username}}/x").expect("a value");
        let s = t.render(&vals, Position::Path).expect("a value");
        assert_eq!(
            s,
            "/users/..%2Fadmin%3Fx%3D1%23f%252Fq%22%27%0D%0AX%3A%20y/x"
        );
        assert_eq!(s.matches('/').count(), 3);
        assert!(!s.contains(['?', '#', '"', '\'', '\r', '\n', ' ']));
    }

    #[test]
    fn a_header_refuses_control_characters_and_missing_values_are_named() {
        let t = Template::parse("Bearer {{subject.username}}").expect("a value");
        assert_eq!(
            t.render(&vals, Position::Header),
            Err(RenderError::Control("subject.username".into()))
        );
        let t = Template::parse("{{subject.email}}").expect("a value");
        assert_eq!(
            t.render(&vals, Position::Raw),
            Err(RenderError::Missing("subject.email".into()))
        );
    }

    #[test]
    fn names_are_checked() {
        assert!(Template::parse("{{subject.mail}}").is_err());
        assert!(Template::parse("{{item.}}").is_err());
        assert!(Template::parse("{{item.id").is_err());
        assert!(Template::parse("x}}").is_err());
        assert!(Template::parse("{{item.id | upper}}").is_err());
        let t = Template::parse("{{ item.id | number }}").expect("a value");
        assert_eq!(t.sole_filter(), Some(Filter::Number));
        assert_eq!(
            Template::parse("x{{item.id|bool}}")
                .expect("a value")
                .sole_filter(),
            None
        );
        let t = Template::parse("{{ item.profile.email }}-{{account.id}}").expect("a value");
        assert_eq!(
            t.vars().cloned().collect::<Vec<_>>(),
            vec![Var::Item("profile.email".into()), Var::AccountId]
        );
    }
}
