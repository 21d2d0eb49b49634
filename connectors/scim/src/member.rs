//! Whether a group lists a user, judged by us from what the app returns, never from a filter.
//!
//! Apps name a group's members differently: RFC 7643 says `members[].value` is the member's
//! `id` (scim2-server), Canaille puts the member's userName there and a `$ref` to the user's
//! location. A member entry names the pinned user when its value is the user's id, when its
//! `$ref` is the user's location (or ends in `/Users/<id>`), or when its value is the user's
//! userName and the app resolves that value to the pinned id (`GET /Users/<value>`); a userName
//! alone never decides, since on an RFC app that value would be another user's id.
//!
//! The user's own `groups` attribute, where the app sends one, is the second witness: a user is
//! "not a member" only when neither the group's members nor the user's groups list it.

use revoke_core::ConnectorError;
use serde_json::Value;

use crate::client::Client;
use crate::escape::segment;

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// The pinned user as the app knows it now: what a member entry may call it.
#[derive(Debug, Clone)]
pub struct Who {
    pub id: String,
    pub user_name: String,
    /// `meta.location`, the URL a `$ref` to the user holds.
    pub location: Option<String>,
}

impl Who {
    pub fn of(user: &Value, id: &str) -> Self {
        Self {
            id: id.to_string(),
            user_name: str_at(user, "userName").unwrap_or_default().to_string(),
            location: user
                .pointer("/meta/location")
                .and_then(Value::as_str)
                .map(str::to_string),
        }
    }
}

/// What a member entry says about the user without asking the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Names {
    Yes,
    /// Its value is the user's userName: the app must say whom that value names.
    Maybe,
    No,
}

/// Whether `r` (a `$ref`) points at `/<endpoint>/<id>`: the last two path segments.
fn ref_points_at(r: &str, endpoint: &str, id: &str) -> bool {
    let path = r
        .split(['?', '#'])
        .next()
        .unwrap_or(r)
        .trim_end_matches('/');
    path.ends_with(&format!("/{endpoint}/{}", segment(id)))
        || path.ends_with(&format!("/{endpoint}/{id}"))
}

fn names(member: &Value, who: &Who) -> Names {
    let value = str_at(member, "value");
    if value == Some(who.id.as_str()) {
        return Names::Yes;
    }
    if let Some(r) = str_at(member, "$ref") {
        if who.location.as_deref() == Some(r) || ref_points_at(r, "Users", &who.id) {
            return Names::Yes;
        }
        // A $ref to another place is another resource, whatever its value says.
        return Names::No;
    }
    match value {
        Some(v) if !who.user_name.is_empty() && v.eq_ignore_ascii_case(&who.user_name) => {
            Names::Maybe
        }
        _ => Names::No,
    }
}

/// The entries of `group`'s `members` that name the user; `None` when the group has no
/// `members` at all (asked for explicitly, an app leaves it out when the group is empty).
pub async fn entries_naming(
    client: &Client,
    group: &Value,
    who: &Who,
) -> Result<Option<Vec<Value>>, ConnectorError> {
    let members = match group.get("members") {
        Some(Value::Array(m)) => m,
        None | Some(Value::Null) => return Ok(None),
        Some(_) => {
            return Err(crate::classify::bad_response(
                "GET /Groups",
                "expected members to be a list",
            ))
        }
    };
    let mut out = Vec::new();
    for m in members {
        let yes = match names(m, who) {
            Names::Yes => true,
            Names::No => false,
            Names::Maybe => {
                // Whom does the app take this value for? Only the pinned id makes it the user.
                let v = str_at(m, "value").unwrap_or_default();
                client
                    .get("/Users", v, Some("id"))
                    .await?
                    .is_some_and(|u| str_at(&u.body, "id") == Some(who.id.as_str()))
            }
        };
        if yes {
            out.push(m.clone());
        }
    }
    Ok(Some(out))
}

/// Whether the user's own `groups` attribute lists group `gid`; `None` when the app sends no
/// `groups` attribute for users.
pub fn user_lists_group(user: &Value, gid: &str) -> Option<bool> {
    let groups = user.get("groups")?.as_array()?;
    Some(groups.iter().any(|g| {
        str_at(g, "value") == Some(gid)
            || str_at(g, "$ref").is_some_and(|r| ref_points_at(r, "Groups", gid))
    }))
}

/// The groups the user's own `groups` attribute lists, as (id, display name).
pub fn groups_listed_by(user: &Value) -> Option<Vec<(String, String)>> {
    let groups = user.get("groups")?.as_array()?;
    Some(
        groups
            .iter()
            .filter_map(|g| {
                let id = str_at(g, "value")?.to_string();
                let name = str_at(g, "display").unwrap_or_default().to_string();
                Some((id, name))
            })
            .collect(),
    )
}

/// A group's members with the entries that name the user left out, as sent back in a replace:
/// only `value`, `$ref` and `type` (display is read-only).
pub fn others(group: &Value, entries: &[Value]) -> Vec<Value> {
    group
        .get("members")
        .and_then(Value::as_array)
        .map(|ms| {
            ms.iter()
                .filter(|m| !entries.contains(m))
                .map(|m| {
                    let mut o = serde_json::Map::new();
                    for k in ["value", "$ref", "type"] {
                        if let Some(v) = m.get(k) {
                            o.insert(k.to_string(), v.clone());
                        }
                    }
                    Value::Object(o)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn dave() -> Who {
        Who {
            id: "7c55".into(),
            user_name: "dave".into(),
            location: Some("http://h/scim/v2/Users/dave".into()),
        }
    }

    #[test]
    fn a_member_is_the_user_by_id_or_ref_and_a_bare_username_is_only_a_maybe() {
        let w = dave();
        assert_eq!(names(&json!({"value": "7c55"}), &w), Names::Yes);
        assert_eq!(
            names(
                &json!({"value": "dave", "$ref": "http://h/scim/v2/Users/dave"}),
                &w
            ),
            Names::Yes
        );
        assert_eq!(
            names(
                &json!({"value": "x", "$ref": "https://o/v2/Users/7c55"}),
                &w
            ),
            Names::Yes
        );
        // The $ref points at someone else: the value does not matter.
        assert_eq!(
            names(
                &json!({"value": "dave", "$ref": "http://h/scim/v2/Users/dave2"}),
                &w
            ),
            Names::No
        );
        assert_eq!(names(&json!({"value": "DAVE"}), &w), Names::Maybe);
        assert_eq!(names(&json!({"value": "erin"}), &w), Names::No);
        assert_eq!(names(&json!({"display": "dave"}), &w), Names::No);
    }

    #[test]
    fn the_users_groups_attribute_is_read_by_value_or_ref() {
        let u = json!({"groups": [{"value": "g1", "display": "eng"}, {"value": "x", "$ref": "http://h/v2/Groups/g2"}]});
        assert_eq!(user_lists_group(&u, "g1"), Some(true));
        assert_eq!(user_lists_group(&u, "g2"), Some(true));
        assert_eq!(user_lists_group(&u, "g3"), Some(false));
        assert_eq!(user_lists_group(&json!({}), "g1"), None);
        let g = json!({"members": [{"value": "dave", "$ref": "r1", "display": "Dave"}, {"value": "erin", "$ref": "r2", "display": "Erin"}]});
        let mine = vec![g["members"][0].clone()];
        assert_eq!(
            others(&g, &mine),
            vec![json!({"value": "erin", "$ref": "r2"})]
        );
    }
}
