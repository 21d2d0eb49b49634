//! The Google Workspace domain the stand-in serves: users (primary email, aliases, externalIds,
//! suspended, tokens, ASPs, Gmail settings, licences, Drive files), groups and their members,
//! admin roles and their assignments, and Data Transfer API transfers

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

/// Google Drive's application id in the Data Transfer API
pub const DRIVE_APP_ID: &str = "55656082996";

/// One OAuth grant (`admin#directory#token`)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The client id of the app the grant is issued to
    pub client_id: String,
    /// The app's name
    pub display_text: String,
    /// The scopes granted
    pub scopes: Vec<String>,
}

/// One application-specific password (`admin#directory#asp`)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asp {
    /// Google's integer id
    pub code_id: i64,
    /// Its name
    pub name: String,
}

/// One user of the domain
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Google's immutable user id (21 digits)
    pub id: String,
    /// The primary email
    pub primary_email: String,
    /// Alias emails (the user answers to them as userKey)
    pub aliases: Vec<String>,
    /// Given name
    pub given_name: String,
    /// Family name
    pub family_name: String,
    /// `externalIds` values of type `organization` (an HR employee id)
    pub employee_ids: Vec<String>,
    /// Suspended
    pub suspended: bool,
    /// A super admin (may call the Admin SDK through delegation)
    pub is_admin: bool,
    /// 2-step verification enrolled
    pub two_sv: bool,
    /// OAuth grants
    pub grants: Vec<Grant>,
    /// App passwords
    pub asps: Vec<Asp>,
    /// Open web and device sessions; signOut ends them
    pub sessions: u32,
    /// Valid backup verification codes; verificationCodes.invalidate clears them
    pub backup_codes: u32,
    /// Gmail vacation settings (the answer's body)
    pub vacation: Value,
    /// Gmail auto-forwarding settings (the answer's body)
    pub auto_forwarding: Value,
    /// Gmail forwarding addresses and their verification status (`accepted`, `pending`)
    pub forwarding_addresses: BTreeMap<String, String>,
    /// Licences held: (productId, skuId)
    pub licences: BTreeSet<(String, String)>,
    /// Drive files the user owns
    pub drive_files: u64,
    /// Their size in bytes
    pub drive_bytes: u64,
}

impl User {
    /// Whether `key` (an email in any case, or the id) names this user
    pub fn answers_to(&self, key: &str) -> bool {
        self.id == key
            || self.primary_email.eq_ignore_ascii_case(key)
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(key))
    }
}

/// One member of a group
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member's id (a user's or a group's)
    pub id: String,
    /// The member's primary email
    pub email: String,
    /// `USER` or `GROUP`
    pub kind: String,
    /// `OWNER`, `MANAGER` or `MEMBER`
    pub role: String,
}

/// One group
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Google's group id
    pub id: String,
    /// The group's email
    pub email: String,
    /// Its name
    pub name: String,
    /// Direct members
    pub members: Vec<Member>,
}

/// One admin role
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// The role id (a number, as a string)
    pub id: String,
    /// Its name
    pub name: String,
    /// Whether it is the super admin role
    pub super_admin: bool,
}

/// One role assignment
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAssignment {
    /// The assignment id
    pub id: String,
    /// The role's id
    pub role_id: String,
    /// The user id it is assigned to
    pub assigned_to: String,
}

/// One Data Transfer API transfer
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// Google's transfer id
    pub id: String,
    /// The old owner's user id
    pub old_owner: String,
    /// The new owner's user id
    pub new_owner: String,
    /// The application ids and their params, as sent
    pub applications: Value,
    /// `inProgress` until `polls_left` reads of it were answered, then `completed`
    pub status: String,
    /// Reads of the transfer left before it completes
    pub polls_left: u32,
    /// When it was requested (RFC 3339)
    pub request_time: String,
}

/// The domain
#[derive(Debug, Clone)]
pub struct World {
    /// The customer id (`my_customer` also names it)
    pub customer_id: String,
    /// The primary domain
    pub domain: String,
    /// Users by id
    pub users: BTreeMap<String, User>,
    /// Groups by id
    pub groups: BTreeMap<String, Group>,
    /// Roles by id
    pub roles: BTreeMap<String, Role>,
    /// Role assignments by id
    pub role_assignments: BTreeMap<String, RoleAssignment>,
    /// Transfers by id
    pub transfers: BTreeMap<String, Transfer>,
    /// How many reads a new transfer takes to complete
    pub transfer_polls: u32,
    next: u64,
}

impl Default for World {
    fn default() -> Self {
        World {
            customer_id: "C03az79cb".to_owned(),
            domain: "example.com".to_owned(),
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            roles: BTreeMap::new(),
            role_assignments: BTreeMap::new(),
            transfers: BTreeMap::new(),
            transfer_polls: 2,
            next: 1,
        }
    }
}

impl World {
    fn next_id(&mut self, base: u64) -> String {
        self.next += 1;
        (base + self.next).to_string()
    }

    /// Adds an active user (given and family names from the local part); returns its id
    pub fn user(&mut self, primary_email: &str) -> String {
        self.next += 1;
        let id = format!("1{:020}", 4_567_890_123_000 + self.next);
        let local = primary_email.split('@').next().unwrap_or(primary_email);
        self.users.insert(
            id.clone(),
            User {
                id: id.clone(),
                primary_email: primary_email.to_owned(),
                aliases: Vec::new(),
                given_name: local.to_owned(),
                family_name: "Example".to_owned(),
                employee_ids: Vec::new(),
                suspended: false,
                is_admin: false,
                two_sv: false,
                grants: Vec::new(),
                asps: Vec::new(),
                sessions: 1,
                backup_codes: 0,
                vacation: json!({"enableAutoReply": false}),
                auto_forwarding: json!({"enabled": false}),
                forwarding_addresses: BTreeMap::new(),
                licences: BTreeSet::new(),
                drive_files: 0,
                drive_bytes: 0,
            },
        );
        id
    }

    /// Changes one user
    pub fn edit(&mut self, id: &str, f: impl FnOnce(&mut User)) {
        if let Some(u) = self.users.get_mut(id) {
            f(u);
        }
    }

    /// Adds an OAuth grant to a user
    pub fn grant(&mut self, user: &str, client_id: &str, app: &str) {
        self.edit(user, |u| {
            u.grants.push(Grant {
                client_id: client_id.to_owned(),
                display_text: app.to_owned(),
                scopes: vec!["https://www.googleapis.com/auth/drive".to_owned()],
            })
        });
    }

    /// Adds an app password to a user; returns its code id
    pub fn asp(&mut self, user: &str, name: &str) -> i64 {
        self.next += 1;
        let code_id = self.next as i64;
        self.edit(user, |u| {
            u.asps.push(Asp {
                code_id,
                name: name.to_owned(),
            })
        });
        code_id
    }

    /// Adds a group; returns its id
    pub fn group(&mut self, email: &str, name: &str) -> String {
        let id = format!("0{}", self.next_id(3_000_000_000));
        self.groups.insert(
            id.clone(),
            Group {
                id: id.clone(),
                email: email.to_owned(),
                name: name.to_owned(),
                members: Vec::new(),
            },
        );
        id
    }

    /// Makes a user (or a group, by its id) a direct member of a group
    pub fn add_member(&mut self, group: &str, member: &str) {
        let (email, kind) = if let Some(u) = self.users.get(member) {
            (u.primary_email.clone(), "USER")
        } else if let Some(g) = self.groups.get(member) {
            (g.email.clone(), "GROUP")
        } else {
            return;
        };
        if let Some(g) = self.groups.get_mut(group) {
            g.members.push(Member {
                id: member.to_owned(),
                email,
                kind: kind.to_owned(),
                role: "MEMBER".to_owned(),
            });
        }
    }

    /// Adds an admin role; returns its id
    pub fn role(&mut self, name: &str, super_admin: bool) -> String {
        let id = self.next_id(9_170_000_000_000_000);
        self.roles.insert(
            id.clone(),
            Role {
                id: id.clone(),
                name: name.to_owned(),
                super_admin,
            },
        );
        id
    }

    /// Assigns a role to a user; returns the assignment id
    pub fn assign(&mut self, role: &str, user: &str) -> String {
        let id = self.next_id(9_180_000_000_000_000);
        self.role_assignments.insert(
            id.clone(),
            RoleAssignment {
                id: id.clone(),
                role_id: role.to_owned(),
                assigned_to: user.to_owned(),
            },
        );
        id
    }

    /// The user a userKey names (primary email, alias, or id)
    pub fn find(&self, key: &str) -> Option<&User> {
        self.users.values().find(|u| u.answers_to(key))
    }

    /// The groups a user or group is a direct member of
    pub fn groups_of(&self, id: &str) -> Vec<String> {
        self.groups
            .values()
            .filter(|g| g.members.iter().any(|m| m.id == id))
            .map(|g| g.id.clone())
            .collect()
    }

    /// Deletes a user, its memberships and role assignments (as Google does)
    pub fn delete_user(&mut self, id: &str) {
        self.users.remove(id);
        for g in self.groups.values_mut() {
            g.members.retain(|m| m.id != id);
        }
        self.role_assignments.retain(|_, a| a.assigned_to != id);
    }

    /// The Directory API's User resource
    pub fn user_json(&self, u: &User) -> Value {
        let mut v = json!({
            "kind": "admin#directory#user",
            "id": u.id,
            "etag": format!("\"{}-{}\"", u.id, u.suspended),
            "primaryEmail": u.primary_email,
            "name": {
                "givenName": u.given_name,
                "familyName": u.family_name,
                "fullName": format!("{} {}", u.given_name, u.family_name),
            },
            "isAdmin": u.is_admin,
            "isDelegatedAdmin": false,
            "lastLoginTime": "2026-11-30T09:00:00.000Z",
            "creationTime": "2020-01-06T09:00:00.000Z",
            "agreedToTerms": true,
            "suspended": u.suspended,
            "archived": false,
            "changePasswordAtNextLogin": false,
            "ipWhitelisted": false,
            "emails": std::iter::once(json!({"address": u.primary_email, "primary": true}))
                .chain(u.aliases.iter().map(|a| json!({"address": a})))
                .collect::<Vec<_>>(),
            "customerId": self.customer_id,
            "orgUnitPath": "/",
            "isMailboxSetup": true,
            "isEnrolledIn2Sv": u.two_sv,
            "isEnforcedIn2Sv": false,
            "includeInGlobalAddressList": true,
        });
        if u.suspended {
            v["suspensionReason"] = json!("ADMIN");
        }
        if !u.aliases.is_empty() {
            v["aliases"] = json!(u.aliases);
        }
        if !u.employee_ids.is_empty() {
            v["externalIds"] = json!(u
                .employee_ids
                .iter()
                .map(|e| json!({"type": "organization", "value": e}))
                .collect::<Vec<_>>());
        }
        v
    }

    /// The Directory API's Group resource
    pub fn group_json(&self, g: &Group) -> Value {
        json!({
            "kind": "admin#directory#group",
            "id": g.id,
            "etag": format!("\"{}\"", g.id),
            "email": g.email,
            "name": g.name,
            "directMembersCount": g.members.len().to_string(),
            "description": "",
            "adminCreated": true,
        })
    }

    /// The Data Transfer API's DataTransfer resource
    pub fn transfer_json(&self, t: &Transfer) -> Value {
        let apps: Vec<Value> = t
            .applications
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|mut a| {
                a["applicationTransferStatus"] = json!(t.status);
                a
            })
            .collect();
        json!({
            "kind": "admin#datatransfer#DataTransfer",
            "etag": format!("\"{}-{}\"", t.id, t.status),
            "id": t.id,
            "oldOwnerUserId": t.old_owner,
            "newOwnerUserId": t.new_owner,
            "applicationDataTransfers": apps,
            "overallTransferStatusCode": t.status,
            "requestTime": t.request_time,
        })
    }

    /// Starts a transfer; returns its id
    pub fn start_transfer(
        &mut self,
        old_owner: &str,
        new_owner: &str,
        applications: Value,
    ) -> String {
        let id = format!("AKrEtIb{}", self.next_id(0));
        let polls = self.transfer_polls;
        self.transfers.insert(
            id.clone(),
            Transfer {
                id: id.clone(),
                old_owner: old_owner.to_owned(),
                new_owner: new_owner.to_owned(),
                applications,
                status: if polls == 0 {
                    "completed"
                } else {
                    "inProgress"
                }
                .to_owned(),
                polls_left: polls,
                request_time: chrono::Utc::now()
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            },
        );
        if polls == 0 {
            self.complete_transfer(&id);
        }
        id
    }

    /// Moves the old owner's Drive files to the new owner and marks the transfer completed
    pub fn complete_transfer(&mut self, id: &str) {
        let Some(t) = self.transfers.get_mut(id) else {
            return;
        };
        t.status = "completed".to_owned();
        t.polls_left = 0;
        let (old, new) = (t.old_owner.clone(), t.new_owner.clone());
        let moved = self
            .users
            .get_mut(&old)
            .map(|u| {
                let m = (u.drive_files, u.drive_bytes);
                u.drive_files = 0;
                u.drive_bytes = 0;
                m
            })
            .unwrap_or((0, 0));
        if let Some(n) = self.users.get_mut(&new) {
            n.drive_files += moved.0;
            n.drive_bytes += moved.1;
        }
    }
}
