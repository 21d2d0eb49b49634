//! SCIM 2.0 inbound (RFC 7644), as Entra ID and Okta provision: a deactivation is a `PATCH`
//! setting `active` to false, or a `PUT` of the user with `"active": false`. Authenticated by
//! `Authorization: Bearer <token>`, compared by SHA-256 in constant time.

use serde_json::{json, Map, Value};

use crate::auth::sha256_hex;
use crate::config::IdIs;
use crate::ctx::Ctx;
use crate::describe::describe;
use crate::error::IntakeError;
use crate::event::{EventKind, Intake};
use crate::norm::{finish, opt_string, parse_bool, parse_json, Draft};
use crate::request::Request;

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// Percent-decoding of a path segment or query value (`+` is a space only in queries).
fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The value compared in the last `eq "..."` of a SCIM filter (`userName eq "alice"`).
fn filter_value(filter: &str) -> Option<String> {
    let lower = filter.to_ascii_lowercase();
    let at = lower.rfind(" eq ")?;
    let rest = filter[at + 4..].trim();
    let inner = rest.strip_prefix('"')?;
    let mut value = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => value.push(chars.next()?),
            '"' => return Some(value),
            c => value.push(c),
        }
    }
    None
}

fn user_resource(id: &str, active: bool) -> Value {
    json!({ "schemas": [USER_SCHEMA], "id": id, "userName": id, "active": active })
}

fn list_response(resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": resources.len(),
        "startIndex": 1,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

/// `active` as a boolean or as the strings true/false in any case (Entra sends "False").
fn active_value(v: &Value, field: &str) -> Result<bool, IntakeError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") => {
            Ok(parse_bool(s).unwrap_or(false))
        }
        other => Err(IntakeError::Malformed(format!(
            "field {field}: expected true or false, found {}",
            describe(other)
        ))),
    }
}

/// The primary email of `emails`, else the first.
fn primary_email(v: Option<&Value>, field: &str) -> Result<Option<String>, IntakeError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Array(list)) => {
            let pick = list
                .iter()
                .find(|e| e.get("primary").and_then(Value::as_bool) == Some(true))
                .or_else(|| list.first());
            match pick {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(e) => opt_string(e.get("value"), &format!("{field}.value")),
            }
        }
        Some(other) => Err(IntakeError::Malformed(format!(
            "field {field}: expected a list of emails, found {}",
            describe(other)
        ))),
    }
}

/// What a request says about the user besides `active`.
#[derive(Default)]
struct Attrs {
    active: Option<bool>,
    user_name: Option<String>,
    email: Option<String>,
    external_id: Option<String>,
    employee_number: Option<String>,
    department: Option<String>,
}

impl Attrs {
    fn read_resource(&mut self, m: &Map<String, Value>, label: &str) -> Result<(), IntakeError> {
        for (k, v) in m {
            let field = format!("{label}{k}");
            match k.to_ascii_lowercase().as_str() {
                "active" => self.active = Some(active_value(v, &field)?),
                "username" => self.user_name = opt_string(Some(v), &field)?,
                "emails" => self.email = primary_email(Some(v), &field)?,
                "externalid" => self.external_id = opt_string(Some(v), &field)?,
                _ if k.eq_ignore_ascii_case(ENTERPRISE) => {
                    if let Some(n) = v.get("employeeNumber") {
                        self.employee_number =
                            opt_string(Some(n), &format!("{field}.employeeNumber"))?;
                    }
                    if let Some(n) = v.get("department") {
                        self.department = opt_string(Some(n), &format!("{field}.department"))?;
                    }
                }
                other if other.ends_with(":employeenumber") => {
                    self.employee_number = opt_string(Some(v), &field)?;
                }
                other if other.eq_ignore_ascii_case(&format!("{ENTERPRISE}:department")) => {
                    self.department = opt_string(Some(v), &field)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn read_patch(&mut self, json: &Value) -> Result<(), IntakeError> {
        let ops = match json.get("Operations").or_else(|| json.get("operations")) {
            Some(Value::Array(ops)) => ops,
            other => {
                return Err(IntakeError::Malformed(format!(
                    "field Operations: expected a list of PatchOp operations, found {}",
                    other.map_or_else(|| "nothing".to_string(), describe)
                )))
            }
        };
        for (i, op) in ops.iter().enumerate() {
            let label = format!("Operations[{i}]");
            let name = opt_string(op.get("op"), &format!("{label}.op"))?
                .unwrap_or_default()
                .to_ascii_lowercase();
            match name.as_str() {
                "add" | "replace" => {}
                "remove" => continue,
                other => {
                    return Err(IntakeError::Malformed(format!(
                        "field {label}.op: expected \"add\", \"replace\" or \"remove\", found {other:?}"
                    )))
                }
            }
            let value = op.get("value").unwrap_or(&Value::Null);
            let path = opt_string(op.get("path"), &format!("{label}.path"))?;
            match path {
                None => match value {
                    Value::Object(m) => self.read_resource(m, &format!("{label}.value."))?,
                    other => {
                        return Err(IntakeError::Malformed(format!(
                            "field {label}.value: expected a table of attributes (the operation has no path), found {}",
                            describe(other)
                        )))
                    }
                },
                Some(p) => {
                    let mut m = Map::new();
                    let key = if p.to_ascii_lowercase().starts_with("emails") {
                        "emails".to_string()
                    } else {
                        p.clone()
                    };
                    let v = if key == "emails" && value.is_string() {
                        Value::Array(vec![json!({ "value": value, "primary": true })])
                    } else {
                        value.clone()
                    };
                    m.insert(key, v);
                    self.read_resource(&m, &format!("{label}.value for "))?;
                }
            }
        }
        Ok(())
    }
}

pub(crate) fn handle(src: &Ctx<'_>, req: &Request<'_>, id_is: IdIs) -> Result<Intake, IntakeError> {
    super::check_bearer(src, req)?;
    let (path, query) = req.path.split_once('?').unwrap_or((req.path, ""));
    let trimmed = path.trim_end_matches('/');
    let rest = trimmed.strip_prefix("/scim/v2").unwrap_or(trimmed);
    let segments: Vec<&str> = rest.split('/').skip(1).collect();
    let method = req.method.to_ascii_uppercase();
    let unknown = || {
        IntakeError::Malformed(format!(
            "path: expected /scim/v2/Users or /scim/v2/Users/{{id}}, found {:?}",
            path.chars().take(80).collect::<String>()
        ))
    };
    if !rest.starts_with('/') {
        return Err(unknown());
    }
    match (method.as_str(), segments.as_slice()) {
        (_, ["Groups", ..]) => Ok(Intake::Ignored {
            source_event_id: None,
            reason: "scim groups are not used by revoked".to_string(),
        }),
        ("GET", ["Users"]) => {
            let filter = query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| k.eq_ignore_ascii_case("filter"))
                .and_then(|(_, v)| percent_decode(v, true));
            let found = filter.as_deref().and_then(filter_value);
            // There is no user store here: a looked-up user exists and is active, so the IdP
            // goes on to PATCH it when it deactivates the person.
            Ok(Intake::Challenge(list_response(
                found.iter().map(|id| user_resource(id, true)).collect(),
            )))
        }
        ("GET", ["Users", id]) => {
            let id = percent_decode(id, false).ok_or_else(unknown)?;
            Ok(Intake::Challenge(user_resource(&id, true)))
        }
        ("POST", ["Users"]) => {
            let json = parse_json(req.body)?;
            let id = opt_string(json.get("userName"), "userName")?.ok_or_else(|| {
                IntakeError::Malformed("field userName: expected a string, found nothing".to_string())
            })?;
            let mut created = json;
            if let Value::Object(m) = &mut created {
                m.insert("id".to_string(), Value::String(id));
            }
            Ok(Intake::Challenge(created))
        }
        ("DELETE", ["Users", _]) => Ok(Intake::Ignored {
            source_event_id: None,
            reason: "scim delete is not taken as a termination (IdPs delete users that leave the app's scope); deactivation is".to_string(),
        }),
        ("PATCH" | "PUT", ["Users", id]) => {
            let id = percent_decode(id, false)
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(unknown)?;
            let json = parse_json(req.body)?;
            let mut attrs = Attrs::default();
            if method == "PATCH" {
                attrs.read_patch(&json)?;
            } else {
                match &json {
                    Value::Object(m) => attrs.read_resource(m, "")?,
                    other => {
                        return Err(IntakeError::Malformed(format!(
                            "body: expected a SCIM User resource, found {}",
                            describe(other)
                        )))
                    }
                }
            }
            let event_id = sha256_hex(
                [method.as_bytes(), b"\n", id.as_bytes(), b"\n", req.body]
                    .concat()
                    .as_slice(),
            );
            if attrs.active != Some(false) {
                return Ok(Intake::Ignored {
                    source_event_id: Some(event_id),
                    reason: format!(
                        "scim {} of user {:?} does not set active to false",
                        method.to_ascii_lowercase(),
                        id.chars().take(80).collect::<String>()
                    ),
                });
            }
            let body_sha = sha256_hex(req.body);
            let mut d = Draft::new(EventKind::Termination, event_id);
            let body_employee = attrs.employee_number.clone().or(attrs.external_id.clone());
            d.department = attrs.department.clone();
            match id_is {
                IdIs::Username => {
                    d.username = Some(id.clone());
                    d.email = attrs.email;
                    d.employee_id = body_employee;
                }
                IdIs::EmployeeId => {
                    d.employee_id = Some(id.clone());
                    d.username = attrs.user_name.clone();
                    d.email = attrs.email;
                }
                IdIs::Email => {
                    d.email = Some(id.clone());
                    d.username = attrs.user_name.clone();
                    d.employee_id = body_employee;
                }
            }
            let user_name = attrs.user_name.unwrap_or_else(|| id.clone());
            d.reply = Some(json!({
                "schemas": [USER_SCHEMA],
                "id": id,
                "userName": user_name,
                "active": false,
            }));
            Ok(Intake::Event(finish(src, req, &body_sha, d)?))
        }
        (m, ["Users", ..]) => Err(IntakeError::Malformed(format!(
            "method: expected GET, POST, PUT, PATCH or DELETE on a SCIM Users path, found {m}"
        ))),
        _ => Err(unknown()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        assert_eq!(
            filter_value("userName eq \"alice\"").as_deref(),
            Some("alice")
        );
        assert_eq!(
            filter_value("emails[type eq \"work\"].value eq \"a@b.c\"").as_deref(),
            Some("a@b.c")
        );
        assert_eq!(
            filter_value("userName EQ \"x\\\"y\"").as_deref(),
            Some("x\"y")
        );
        assert_eq!(filter_value("userName sw \"a\""), None);
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%20b+c", true).as_deref(), Some("a b c"));
        assert_eq!(percent_decode("a+b", false).as_deref(), Some("a+b"));
        assert_eq!(percent_decode("%zz", false), None);
    }
}
