//! The Okta org the stand-in serves: users with their status and profile, groups (OKTA_GROUP,
//! APP_GROUP, BUILT_IN) and members, apps and their assignments (scope USER or GROUP), admin role
//! assignments, sessions, factors and OAuth grants

use std::collections::{BTreeMap, BTreeSet};

/// One user
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// `00u` and 17 letters or digits
    pub id: String,
    /// STAGED, PROVISIONED, ACTIVE, RECOVERY, PASSWORD_EXPIRED, LOCKED_OUT, SUSPENDED, DEPROVISIONED
    pub status: String,
    /// `profile.login`
    pub login: String,
    /// `profile.email`
    pub email: String,
    /// `profile.secondEmail`
    pub second_email: Option<String>,
    /// `profile.employeeNumber`
    pub employee_number: Option<String>,
    /// Open sessions (Okta cannot list them; the stand-in counts them)
    pub sessions: u32,
    /// OAuth tokens issued to the user
    pub oauth_tokens: u32,
    /// Enrolled factors: (id, factorType)
    pub factors: Vec<(String, String)>,
    /// OAuth consent grants: ids
    pub grants: Vec<String>,
}

/// A group's type
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupType {
    /// Managed in Okta
    OktaGroup,
    /// Imported from a directory or app; Okta cannot change its members
    AppGroup,
    /// Everyone
    BuiltIn,
}

impl GroupType {
    /// Okta's name of the type
    pub fn as_str(self) -> &'static str {
        match self {
            GroupType::OktaGroup => "OKTA_GROUP",
            GroupType::AppGroup => "APP_GROUP",
            GroupType::BuiltIn => "BUILT_IN",
        }
    }
}

/// One group
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// `00g...`
    pub id: String,
    /// `profile.name`
    pub name: String,
    /// Its type
    pub kind: GroupType,
    /// Member user ids
    pub members: BTreeSet<String>,
}

/// One app with its user assignments
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// `0oa...`
    pub id: String,
    /// Its label
    pub label: String,
    /// user id -> scope (`USER` or `GROUP`)
    pub users: BTreeMap<String, String>,
}

/// One admin role assignment
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAssignment {
    /// `ra1...`
    pub id: String,
    /// The user holding it
    pub user_id: String,
    /// SUPER_ADMIN, ORG_ADMIN, APP_ADMIN, USER_ADMIN, ...
    pub role_type: String,
    /// `USER` (assigned to the user) or `GROUP` (through a group)
    pub assignment_type: String,
}

/// The org
#[derive(Debug, Default)]
pub struct World {
    pub(crate) users: BTreeMap<String, User>,
    pub(crate) groups: BTreeMap<String, Group>,
    pub(crate) apps: BTreeMap<String, App>,
    pub(crate) roles: BTreeMap<String, RoleAssignment>,
    next: u64,
}

impl World {
    fn id(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{:017}", self.next)
    }

    /// Adds an ACTIVE user with one session and one OAuth token; returns its id
    pub fn user(&mut self, login: &str, email: &str) -> String {
        let id = self.id("00u");
        self.users.insert(
            id.clone(),
            User {
                id: id.clone(),
                status: "ACTIVE".into(),
                login: login.into(),
                email: email.into(),
                second_email: None,
                employee_number: None,
                sessions: 1,
                oauth_tokens: 1,
                factors: Vec::new(),
                grants: Vec::new(),
            },
        );
        id
    }

    /// A user, to change it
    pub fn get_mut(&mut self, id: &str) -> Option<&mut User> {
        self.users.get_mut(id)
    }

    /// The id of the user with this login (ASCII case ignored)
    pub fn by_login(&self, login: &str) -> Option<String> {
        self.users
            .values()
            .find(|u| u.login.eq_ignore_ascii_case(login))
            .map(|u| u.id.clone())
    }

    /// A user
    pub fn get(&self, id: &str) -> Option<&User> {
        self.users.get(id)
    }

    /// Adds a group of `kind`; returns its id
    pub fn group(&mut self, name: &str, kind: GroupType) -> String {
        let id = self.id("00g");
        self.groups.insert(
            id.clone(),
            Group {
                id: id.clone(),
                name: name.into(),
                kind,
                members: BTreeSet::new(),
            },
        );
        id
    }

    /// The id of the group named `name`
    pub fn group_id(&self, name: &str) -> Option<String> {
        self.groups
            .values()
            .find(|g| g.name == name)
            .map(|g| g.id.clone())
    }

    /// Takes `user` out of `group` (as an import from the group's source would)
    pub fn remove_member(&mut self, group: &str, user: &str) {
        if let Some(g) = self.groups.get_mut(group) {
            g.members.remove(user);
        }
    }

    /// Puts a user in a group
    pub fn add_member(&mut self, group: &str, user: &str) {
        if let Some(g) = self.groups.get_mut(group) {
            g.members.insert(user.into());
        }
    }

    /// Adds an app; returns its id
    pub fn app(&mut self, label: &str) -> String {
        let id = self.id("0oa");
        self.apps.insert(
            id.clone(),
            App {
                id: id.clone(),
                label: label.into(),
                users: BTreeMap::new(),
            },
        );
        id
    }

    /// Assigns a user to an app, with scope `USER` (direct) or `GROUP`
    pub fn assign_app(&mut self, app: &str, user: &str, scope: &str) {
        if let Some(a) = self.apps.get_mut(app) {
            a.users.insert(user.into(), scope.into());
        }
    }

    /// Gives a user an admin role (`assignment_type` USER or GROUP); returns the assignment id
    pub fn grant_role(&mut self, user: &str, role_type: &str, assignment_type: &str) -> String {
        let id = self.id("ra1");
        self.roles.insert(
            id.clone(),
            RoleAssignment {
                id: id.clone(),
                user_id: user.into(),
                role_type: role_type.into(),
                assignment_type: assignment_type.into(),
            },
        );
        id
    }

    /// Enrolls a factor (`sms`, `token:software:totp`, ...); returns its id
    pub fn add_factor(&mut self, user: &str, factor_type: &str) -> String {
        let id = self.id("mfa");
        if let Some(u) = self.users.get_mut(user) {
            u.factors.push((id.clone(), factor_type.into()));
        }
        id
    }

    /// Adds an OAuth consent grant; returns its id
    pub fn add_grant(&mut self, user: &str) -> String {
        let id = self.id("oag");
        if let Some(u) = self.users.get_mut(user) {
            u.grants.push(id.clone());
        }
        id
    }

    /// The ids of the groups a user is in
    pub fn groups_of(&self, user: &str) -> Vec<String> {
        self.groups
            .values()
            .filter(|g| g.members.contains(user))
            .map(|g| g.id.clone())
            .collect()
    }

    /// (app id, scope) of each app a user is assigned to
    pub fn apps_of(&self, user: &str) -> Vec<(String, String)> {
        self.apps
            .values()
            .filter_map(|a| a.users.get(user).map(|s| (a.id.clone(), s.clone())))
            .collect()
    }

    /// The role assignments a user holds
    pub fn roles_of(&self, user: &str) -> Vec<RoleAssignment> {
        self.roles
            .values()
            .filter(|r| r.user_id == user)
            .cloned()
            .collect()
    }

    /// Okta's deactivation: DEPROVISIONED, signed out, deprovisioned from every app
    pub(crate) fn deactivate(&mut self, id: &str) {
        if let Some(u) = self.users.get_mut(id) {
            u.status = "DEPROVISIONED".into();
            u.sessions = 0;
            u.oauth_tokens = 0;
        }
        for a in self.apps.values_mut() {
            a.users.remove(id);
        }
    }

    /// Removes a user and everything that names it (the second DELETE; also a test's "deleted
    /// meanwhile")
    pub fn remove_user(&mut self, id: &str) {
        self.users.remove(id);
        for g in self.groups.values_mut() {
            g.members.remove(id);
        }
        for a in self.apps.values_mut() {
            a.users.remove(id);
        }
        self.roles.retain(|_, r| r.user_id != id);
    }
}
