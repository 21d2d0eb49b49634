//! The OneLogin account the stand-in serves: users (email, username, status, state) and roles

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

/// OneLogin's user status codes (the `status` field of a user)
pub mod status {
    /// Unactivated
    pub const UNACTIVATED: u8 = 0;
    /// Active; only active users can sign in
    pub const ACTIVE: u8 = 1;
    /// Suspended
    pub const SUSPENDED: u8 = 2;
    /// Locked
    pub const LOCKED: u8 = 3;
    /// Password expired
    pub const PASSWORD_EXPIRED: u8 = 4;
    /// Awaiting password reset
    pub const AWAITING_PASSWORD_RESET: u8 = 5;
    /// Password pending
    pub const PASSWORD_PENDING: u8 = 7;
    /// Security questions required
    pub const SECURITY_QUESTIONS_REQUIRED: u8 = 8;

    /// Every status OneLogin accepts
    pub const ALL: [u8; 8] = [0, 1, 2, 3, 4, 5, 7, 8];
}

/// One OneLogin user
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// OneLogin's numeric id
    pub id: u64,
    /// The email, which OneLogin also accepts as login
    pub email: String,
    /// The username (may be empty, answered as null)
    pub username: Option<String>,
    /// The external id a directory or HR sync set (answered as null when unset)
    pub external_id: Option<String>,
    /// First name
    pub firstname: String,
    /// Last name
    pub lastname: String,
    /// A status code of [`status`]
    pub status: u8,
    /// The approval state (0 unapproved, 1 approved, 2 rejected, 3 unlicensed)
    pub state: u8,
    /// Open OneLogin sessions; `PUT /api/1/users/:id/logout` ends them
    pub sessions: u32,
    /// How often the user was logged out through the API
    pub logouts: u32,
}

/// One OneLogin role
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// OneLogin's numeric id
    pub id: u64,
    /// Its name
    pub name: String,
    /// Users assigned to it
    pub users: BTreeSet<u64>,
}

/// The whole account; seed it with [`World::user`], [`World::role`] and [`World::assign`]
#[derive(Debug, Clone)]
pub struct World {
    pub(crate) users: BTreeMap<u64, User>,
    pub(crate) roles: BTreeMap<u64, Role>,
    next_user: u64,
    next_role: u64,
}

impl Default for World {
    fn default() -> Self {
        Self {
            users: BTreeMap::new(),
            roles: BTreeMap::new(),
            next_user: 50_000_001,
            next_role: 400_001,
        }
    }
}

/// The timestamp every seeded record carries (OneLogin's format: UTC with milliseconds)
pub(crate) const SEEDED_AT: &str = "2024-01-15T09:20:15.990Z";

impl World {
    /// Adds an active user with one open session; returns its id
    pub fn user(&mut self, email: &str, username: &str) -> u64 {
        let id = self.next_user;
        self.next_user += 1;
        let (first, last) = email
            .split('@')
            .next()
            .and_then(|local| local.split_once('.'))
            .unwrap_or((email, ""));
        self.users.insert(
            id,
            User {
                id,
                email: email.to_owned(),
                username: (!username.is_empty()).then(|| username.to_owned()),
                external_id: None,
                firstname: first.to_owned(),
                lastname: last.to_owned(),
                status: status::ACTIVE,
                state: 1,
                sessions: 1,
                logouts: 0,
            },
        );
        id
    }

    /// Adds a role without users; returns its id
    pub fn role(&mut self, name: &str) -> u64 {
        let id = self.next_role;
        self.next_role += 1;
        self.roles.insert(
            id,
            Role {
                id,
                name: name.to_owned(),
                users: BTreeSet::new(),
            },
        );
        id
    }

    /// Assigns a user to a role (both must exist; returns whether they did)
    pub fn assign(&mut self, role: u64, user: u64) -> bool {
        if !self.users.contains_key(&user) {
            return false;
        }
        match self.roles.get_mut(&role) {
            Some(r) => {
                r.users.insert(user);
                true
            }
            None => false,
        }
    }

    /// Sets a user's status code
    pub fn set_status(&mut self, user: u64, status: u8) {
        if let Some(u) = self.users.get_mut(&user) {
            u.status = status;
        }
    }

    /// Sets a user's external id (an employee id from HR, say)
    pub fn set_external_id(&mut self, user: u64, external_id: &str) {
        if let Some(u) = self.users.get_mut(&user) {
            u.external_id = Some(external_id.to_owned());
        }
    }

    /// Renames a user (its username), as an admin might
    pub fn set_username(&mut self, user: u64, username: &str) {
        if let Some(u) = self.users.get_mut(&user) {
            u.username = Some(username.to_owned());
        }
    }

    /// Deletes a user and its role assignments, as an admin might; returns whether it existed
    pub fn remove_user(&mut self, user: u64) -> bool {
        self.delete_user(user)
    }

    /// A user by id
    pub fn get(&self, user: u64) -> Option<&User> {
        self.users.get(&user)
    }

    /// Removes a role, as if an admin deleted it
    pub fn remove_role(&mut self, role: u64) -> bool {
        self.roles.remove(&role).is_some()
    }

    /// The ids of the roles a user holds, ascending
    pub fn roles_of(&self, user: u64) -> Vec<u64> {
        self.roles
            .values()
            .filter(|r| r.users.contains(&user))
            .map(|r| r.id)
            .collect()
    }

    /// The user ids of a role, ascending (empty when there is no such role)
    pub fn role_users(&self, role: u64) -> Vec<u64> {
        self.roles
            .get(&role)
            .map(|r| r.users.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Deletes a user and every role assignment; returns whether it existed
    pub(crate) fn delete_user(&mut self, user: u64) -> bool {
        for r in self.roles.values_mut() {
            r.users.remove(&user);
        }
        self.users.remove(&user).is_some()
    }

    /// The user as `GET /api/2/users` lists it (no role ids, like OneLogin's list)
    pub(crate) fn listed(&self, u: &User) -> Value {
        json!({
            "id": u.id,
            "email": u.email,
            "username": u.username,
            "firstname": u.firstname,
            "lastname": u.lastname,
            "title": null,
            "department": null,
            "company": null,
            "comment": null,
            "group_id": null,
            "phone": null,
            "state": u.state,
            "status": u.status,
            "directory_id": null,
            "trusted_idp_id": null,
            "manager_ad_id": null,
            "manager_user_id": null,
            "samaccountname": null,
            "member_of": null,
            "userprincipalname": null,
            "distinguished_name": null,
            "external_id": u.external_id,
            "activated_at": SEEDED_AT,
            "last_login": if u.sessions > 0 { Value::from(SEEDED_AT) } else { Value::Null },
            "invitation_sent_at": null,
            "updated_at": SEEDED_AT,
            "preferred_locale_code": null,
            "created_at": SEEDED_AT,
            "invalid_login_attempts": 0,
            "locked_until": null,
            "password_changed_at": SEEDED_AT,
        })
    }

    /// The user as `GET /api/2/users/:id` answers it: the listed fields plus `role_ids` and
    /// `custom_attributes`
    pub(crate) fn detailed(&self, u: &User) -> Value {
        let mut v = self.listed(u);
        if let Some(o) = v.as_object_mut() {
            o.insert("role_ids".into(), json!(self.roles_of(u.id)));
            o.insert("custom_attributes".into(), json!({}));
        }
        v
    }

    /// The role as `GET /api/2/roles` lists it
    pub(crate) fn role_json(&self, r: &Role) -> Value {
        json!({
            "id": r.id,
            "name": r.name,
            "apps": [],
            "users": r.users.iter().collect::<Vec<_>>(),
            "admins": [],
        })
    }
}

/// OneLogin's search match: exact and case-insensitive, `*` matches any run of characters
pub(crate) fn matches(pattern: &str, value: &str) -> bool {
    let p = pattern.to_lowercase();
    let v = value.to_lowercase();
    if !p.contains('*') {
        return p == v;
    }
    let parts: Vec<&str> = p.split('*').collect();
    let mut rest = v.as_str();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn search_is_exact_or_wildcard() {
        assert!(matches("a@x.io", "A@X.io"));
        assert!(!matches("a@x.io", "ba@x.io"));
        assert!(matches("*@x.io", "ba@x.io"));
        assert!(matches("b*", "ba@x.io"));
        assert!(matches("b*x*o", "ba@x.io"));
        assert!(!matches("c*", "ba@x.io"));
    }
}
