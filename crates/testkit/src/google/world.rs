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
    /// 2-step verification enforced on the user (by policy)
    pub two_sv_enforced: bool,
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

/// One mobile device managed by Google's endpoint management (`admin#directory#mobiledevice`)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MobileDevice {
    /// Google's id of the device in the API (`resourceId`)
    pub resource_id: String,
    /// The device's own id (`deviceId`)
    pub device_id: String,
    /// The owner's email addresses (`email`)
    pub owner_emails: Vec<String>,
    /// The model
    pub model: String,
    /// `ANDROID`, `IOS_SYNC`, ...
    pub kind: String,
    /// `APPROVED`; `ACCOUNT_WIPING` after `admin_account_wipe`, `WIPING` after `admin_remote_wipe`
    pub status: String,
    /// Every action received, in order
    pub actions: Vec<String>,
}

/// One Drive permission (`drive#permission`)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    /// The permission id (for a user or group: the same id on every file)
    pub id: String,
    /// `user`, `group`, `domain` or `anyone`
    pub kind: String,
    /// The grantee's address, as Google holds it (`user` and `group`)
    pub email: Option<String>,
    /// The grantee domain (`domain`)
    pub domain: Option<String>,
    /// `owner`, `organizer`, `fileOrganizer`, `writer`, `commenter`, `reader`
    pub role: String,
}

/// One Drive file or folder
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveFile {
    /// The file id
    pub id: String,
    /// Its name
    pub name: String,
    /// `application/vnd.google-apps.folder` for a folder
    pub mime_type: String,
    /// The owner's user id (`None` in a shared drive, which owns its files)
    pub owner: Option<String>,
    /// The shared drive it is in
    pub drive_id: Option<String>,
    /// The parent folder (or drive, or `root-<owner id>` for My Drive's root)
    pub parents: Vec<String>,
    /// Its permissions, the owner's included
    pub permissions: Vec<Permission>,
    /// `appProperties`
    pub app_properties: BTreeMap<String, String>,
    /// Its size in bytes
    pub size: u64,
}

/// One shared drive and its members
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedDrive {
    /// The drive id (also the id of its root folder)
    pub id: String,
    /// Its name
    pub name: String,
    /// Its members
    pub permissions: Vec<Permission>,
}

/// The mime type of a Drive folder
pub const FOLDER: &str = "application/vnd.google-apps.folder";

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
    /// Mobile devices by resource id
    pub mobile_devices: BTreeMap<String, MobileDevice>,
    /// Drive files and folders by id (beside each user's counted `drive_files`)
    pub files: BTreeMap<String, DriveFile>,
    /// Shared drives by id
    pub drives: BTreeMap<String, SharedDrive>,
    /// The permission id of each grantee (`user:<email>`, `domain:<domain>`), the same on every file
    pub permission_ids: BTreeMap<String, String>,
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
            mobile_devices: BTreeMap::new(),
            files: BTreeMap::new(),
            drives: BTreeMap::new(),
            permission_ids: BTreeMap::new(),
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
                two_sv_enforced: false,
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
            "isEnforcedIn2Sv": u.two_sv_enforced,
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
        // Google puts what it moved in a folder of the new owner's My Drive named after the old
        // owner's address (Admin help, "Transfer Drive files to a new owner").
        let old_email = self.users.get(&old).map(|u| u.primary_email.clone());
        let own: Vec<String> = self
            .files
            .values()
            .filter(|f| f.owner.as_deref() == Some(old.as_str()))
            .map(|f| f.id.clone())
            .collect();
        if let (Some(email), true) = (old_email, moved.0 > 0 || !own.is_empty()) {
            let folder = self.file(&new, &email);
            self.edit_file(&folder, |f| f.mime_type = FOLDER.to_owned());
            for id in own {
                let perm = self.user_permission(&new, "owner");
                self.edit_file(&id, |f| {
                    f.owner = Some(new.clone());
                    f.parents = vec![folder.clone()];
                    f.permissions.retain(|p| p.role != "owner");
                    if let Some(p) = perm {
                        f.permissions.insert(0, p);
                    }
                });
            }
        }
    }

    /// The permission id of a grantee key (`user:<email>`, `group:<email>`, `domain:<domain>`)
    pub fn permission_id(&mut self, key: &str) -> String {
        let key = key.to_ascii_lowercase();
        if let Some(id) = self.permission_ids.get(&key) {
            return id.clone();
        }
        let id = if key.starts_with("domain:") {
            format!("{}k", self.next_id(7_000_000_000_000_000))
        } else {
            self.next_id(1_000_000_000_000_000)
        };
        self.permission_ids.insert(key, id.clone());
        id
    }

    /// A user's permission with this role (`None` for an unknown user)
    pub fn user_permission(&mut self, user: &str, role: &str) -> Option<Permission> {
        let email = self.users.get(user)?.primary_email.clone();
        Some(Permission {
            id: self.permission_id(&format!("user:{email}")),
            kind: "user".to_owned(),
            email: Some(email),
            domain: None,
            role: role.to_owned(),
        })
    }

    /// A file in a user's My Drive (owner permission included); returns its id
    pub fn file(&mut self, owner: &str, name: &str) -> String {
        let id = format!("1F{}", self.next_id(0));
        let perm = self.user_permission(owner, "owner");
        self.files.insert(
            id.clone(),
            DriveFile {
                id: id.clone(),
                name: name.to_owned(),
                mime_type: "application/vnd.google-apps.document".to_owned(),
                owner: Some(owner.to_owned()),
                drive_id: None,
                parents: vec![format!("root-{owner}")],
                permissions: perm.into_iter().collect(),
                app_properties: BTreeMap::new(),
                size: 1_024,
            },
        );
        id
    }

    /// Changes one file
    pub fn edit_file(&mut self, id: &str, f: impl FnOnce(&mut DriveFile)) {
        if let Some(x) = self.files.get_mut(id) {
            f(x);
        }
    }

    /// Shares a file: `kind` `user`/`group` with an address, `domain` with a domain, `anyone`;
    /// returns the permission id
    pub fn share(&mut self, file: &str, kind: &str, grantee: &str, role: &str) -> String {
        let id = match kind {
            "anyone" => "anyoneWithLink".to_owned(),
            "domain" => self.permission_id(&format!("domain:{grantee}")),
            _ => self.permission_id(&format!("user:{grantee}")),
        };
        let p = Permission {
            id: id.clone(),
            kind: kind.to_owned(),
            email: matches!(kind, "user" | "group").then(|| grantee.to_owned()),
            domain: (kind == "domain").then(|| grantee.to_owned()),
            role: role.to_owned(),
        };
        self.edit_file(file, |f| f.permissions.push(p));
        id
    }

    /// A shared drive with no member; returns its id
    pub fn shared_drive(&mut self, name: &str) -> String {
        let id = format!("0A{}Uk9PVA", self.next_id(0));
        self.drives.insert(
            id.clone(),
            SharedDrive {
                id: id.clone(),
                name: name.to_owned(),
                permissions: Vec::new(),
            },
        );
        id
    }

    /// A file in a shared drive (no owner: the drive owns it); returns its id
    pub fn drive_file(&mut self, drive: &str, name: &str) -> String {
        let id = format!("1D{}", self.next_id(0));
        self.files.insert(
            id.clone(),
            DriveFile {
                id: id.clone(),
                name: name.to_owned(),
                mime_type: "application/vnd.google-apps.spreadsheet".to_owned(),
                owner: None,
                drive_id: Some(drive.to_owned()),
                parents: vec![drive.to_owned()],
                permissions: Vec::new(),
                app_properties: BTreeMap::new(),
                size: 2_048,
            },
        );
        id
    }

    /// Makes a user a member of a shared drive (`organizer`, `fileOrganizer`, `writer`, ...);
    /// returns the permission id
    pub fn drive_member(&mut self, drive: &str, user: &str, role: &str) -> String {
        let Some(p) = self.user_permission(user, role) else {
            return String::new();
        };
        let id = p.id.clone();
        if let Some(d) = self.drives.get_mut(drive) {
            d.permissions.retain(|x| x.id != id);
            d.permissions.push(p);
        }
        id
    }

    /// A mobile device of a user (its addresses as owner, status `APPROVED`); returns its resource id
    pub fn mobile_device(&mut self, user: &str, model: &str, kind: &str) -> String {
        let id = format!("AFiQxQ{}", self.next_id(0));
        let emails = self
            .users
            .get(user)
            .map(|u| vec![u.primary_email.clone()])
            .unwrap_or_default();
        self.mobile_devices.insert(
            id.clone(),
            MobileDevice {
                resource_id: id.clone(),
                device_id: format!("android-{id}"),
                owner_emails: emails,
                model: model.to_owned(),
                kind: kind.to_owned(),
                status: "APPROVED".to_owned(),
                actions: Vec::new(),
            },
        );
        id
    }

    /// The Directory API's MobileDevice resource
    pub fn mobile_json(&self, d: &MobileDevice) -> Value {
        json!({
            "kind": "admin#directory#mobiledevice",
            "etag": format!("\"{}-{}\"", d.resource_id, d.status),
            "resourceId": d.resource_id,
            "deviceId": d.device_id,
            "email": d.owner_emails,
            "name": d.owner_emails.iter().map(|e| e.split('@').next().unwrap_or("")).collect::<Vec<_>>(),
            "model": d.model,
            "type": d.kind,
            "status": d.status,
            "os": "Android 14",
            "firstSync": "2025-01-06T09:00:00.000Z",
            "lastSync": "2026-11-30T09:00:00.000Z",
        })
    }

    /// The Drive API's Permission resource
    pub fn permission_json(p: &Permission) -> Value {
        let mut v = json!({"kind": "drive#permission", "id": p.id, "type": p.kind, "role": p.role});
        if let Some(e) = &p.email {
            v["emailAddress"] = json!(e);
        }
        if let Some(d) = &p.domain {
            v["domain"] = json!(d);
        }
        v
    }

    /// The Drive API's File resource
    pub fn file_json(&self, f: &DriveFile) -> Value {
        let mut v = json!({
            "kind": "drive#file",
            "id": f.id,
            "name": f.name,
            "mimeType": f.mime_type,
            "parents": f.parents,
            "size": f.size.to_string(),
            "trashed": false,
        });
        // Drive fills `permissions` only outside shared drives; inside, it says whether the file
        // has permissions of its own (`hasAugmentedPermissions`) and gives their ids.
        let ids: Vec<&str> = f.permissions.iter().map(|p| p.id.as_str()).collect();
        if f.drive_id.is_some() {
            v["hasAugmentedPermissions"] = json!(!f.permissions.is_empty());
            v["permissionIds"] = json!(ids);
        } else {
            v["permissions"] = json!(f
                .permissions
                .iter()
                .map(World::permission_json)
                .collect::<Vec<_>>());
        }
        if let Some(o) = f.owner.as_ref().and_then(|o| self.users.get(o)) {
            let pid = self
                .permission_ids
                .get(&format!("user:{}", o.primary_email.to_ascii_lowercase()))
                .cloned()
                .unwrap_or_default();
            v["owners"] = json!([{"kind": "drive#user", "emailAddress": o.primary_email, "permissionId": pid, "me": false}]);
        }
        if let Some(d) = &f.drive_id {
            v["driveId"] = json!(d);
        }
        if !f.app_properties.is_empty() {
            v["appProperties"] = json!(f.app_properties);
        }
        v
    }
}
