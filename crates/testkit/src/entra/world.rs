//! The Entra tenant the stand-in serves: users (members and guests), groups of every kind and
//! their members, directory roles and role assignments, service principals' app role
//! assignments, authentication methods, licences (direct or by group), devices, sign-in
//! sessions, and the soft-deleted users of `directory/deletedItems`

use std::collections::{BTreeMap, BTreeSet};

/// The object id of every user's password method, as Graph gives it
pub const PASSWORD_METHOD_ID: &str = "28c10230-6103-485e-b985-444c60001490";

/// One licence a user holds: the SKU and, when it comes from a group, that group
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct License {
    /// The SKU (a GUID)
    pub sku_id: String,
    /// The group it is assigned through (`licenseAssignmentStates[].assignedByGroup`), `None`
    /// for a direct assignment
    pub by_group: Option<String>,
}

/// One user
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The object id (a GUID; immutable)
    pub id: String,
    /// `displayName`
    pub display_name: String,
    /// `userPrincipalName` (a guest's has the `#EXT#` form)
    pub upn: String,
    /// `mail`
    pub mail: Option<String>,
    /// `otherMails`
    pub other_mails: Vec<String>,
    /// `proxyAddresses` (`SMTP:` the primary, `smtp:` the others)
    pub proxy_addresses: Vec<String>,
    /// `employeeId`
    pub employee_id: Option<String>,
    /// `onPremisesImmutableId`
    pub on_prem_immutable_id: Option<String>,
    /// `onPremisesSamAccountName`
    pub on_prem_sam: Option<String>,
    /// `onPremisesSyncEnabled` (`None`: never synced)
    pub on_prem_sync_enabled: Option<bool>,
    /// `accountEnabled`
    pub account_enabled: bool,
    /// `userType`: `Member` or `Guest`
    pub user_type: String,
    /// The licences held (`assignedLicenses` is their SKUs, `licenseAssignmentStates` each one)
    pub licenses: Vec<License>,
    /// Open sign-in sessions (Graph cannot list them; the stand-in counts them, and
    /// revokeSignInSessions sets 0)
    pub sessions: u32,
    /// How many times revokeSignInSessions was called for this user
    pub revocations: u32,
    /// `signInSessionsValidFromDateTime`: when the user was made, then the last
    /// revokeSignInSessions (tokens issued before it are invalid)
    pub sessions_valid_from: String,
}

/// A group's kind, as Graph tells them apart (`groupTypes`, `mailEnabled`, `securityEnabled`,
/// `onPremisesSyncEnabled`)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    /// securityEnabled, not mailEnabled: members can be removed
    Security,
    /// Microsoft 365 (`groupTypes: ["Unified"]`): members can be removed
    Unified,
    /// mailEnabled and securityEnabled, not Unified: Exchange's (400)
    MailEnabledSecurity,
    /// A distribution list: mailEnabled, not securityEnabled, not Unified: Exchange's (400)
    Distribution,
    /// `groupTypes: ["DynamicMembership"]` with a `membershipRule` (400)
    Dynamic,
    /// A security group synced from on-premises AD (`onPremisesSyncEnabled: true`; 400)
    OnPremSynced,
}

impl GroupKind {
    /// Whether Graph lets a member be removed (the other kinds answer 400)
    pub fn removable(self) -> bool {
        matches!(self, GroupKind::Security | GroupKind::Unified)
    }
}

/// One group
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The object id (a GUID)
    pub id: String,
    /// `displayName`
    pub display_name: String,
    /// Its kind
    pub kind: GroupKind,
    /// Member object ids
    pub members: BTreeSet<String>,
}

/// A directory role assignment (`unifiedRoleAssignment`); the user is also a member of the
/// activated `directoryRole` its definition names, which `memberOf` lists
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAssignment {
    /// The assignment id
    pub id: String,
    /// `roleDefinitionId` (the role template id, a GUID)
    pub role_definition_id: String,
    /// `principalId`
    pub principal_id: String,
    /// `directoryScopeId` (`/` for the whole tenant)
    pub directory_scope_id: String,
}

/// An app role assignment of a user to a service principal
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRoleAssignment {
    /// The assignment id
    pub id: String,
    /// `appRoleId` (all zeros: the default access role)
    pub app_role_id: String,
    /// `principalId` (the user)
    pub principal_id: String,
    /// `resourceId` (the service principal)
    pub resource_id: String,
    /// `resourceDisplayName`
    pub resource_display_name: String,
}

/// An authentication method's type (the path segment `{kind}Methods`)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodKind {
    /// passwordAuthenticationMethod (cannot be deleted)
    Password,
    /// phoneAuthenticationMethod
    Phone,
    /// fido2AuthenticationMethod
    Fido2,
    /// microsoftAuthenticatorAuthenticationMethod
    MicrosoftAuthenticator,
    /// softwareOathAuthenticationMethod
    SoftwareOath,
    /// temporaryAccessPassAuthenticationMethod
    TemporaryAccessPass,
    /// windowsHelloForBusinessAuthenticationMethod
    WindowsHelloForBusiness,
    /// emailAuthenticationMethod
    Email,
}

impl MethodKind {
    /// Every kind
    pub const ALL: [MethodKind; 8] = [
        MethodKind::Password,
        MethodKind::Phone,
        MethodKind::Fido2,
        MethodKind::MicrosoftAuthenticator,
        MethodKind::SoftwareOath,
        MethodKind::TemporaryAccessPass,
        MethodKind::WindowsHelloForBusiness,
        MethodKind::Email,
    ];

    /// The path segment's prefix (`phone` in `phoneMethods`)
    pub fn segment(self) -> &'static str {
        match self {
            MethodKind::Password => "password",
            MethodKind::Phone => "phone",
            MethodKind::Fido2 => "fido2",
            MethodKind::MicrosoftAuthenticator => "microsoftAuthenticator",
            MethodKind::SoftwareOath => "softwareOath",
            MethodKind::TemporaryAccessPass => "temporaryAccessPass",
            MethodKind::WindowsHelloForBusiness => "windowsHelloForBusiness",
            MethodKind::Email => "email",
        }
    }

    /// The `@odata.type`
    pub fn odata_type(self) -> String {
        format!("#microsoft.graph.{}AuthenticationMethod", self.segment())
    }

    /// The kind of a `{kind}Methods` path segment
    pub fn from_segment(segment: &str) -> Option<MethodKind> {
        let prefix = segment.strip_suffix("Methods")?;
        MethodKind::ALL
            .into_iter()
            .find(|k| k.segment().eq_ignore_ascii_case(prefix))
    }
}

/// One authentication method of a user
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Method {
    /// Its id
    pub id: String,
    /// Its type
    pub kind: MethodKind,
    /// The user
    pub user_id: String,
}

/// One device
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The object id
    pub id: String,
    /// `displayName`
    pub display_name: String,
    /// The owners' object ids (`ownedDevices`)
    pub owners: BTreeSet<String>,
    /// The registered users' object ids (`registeredDevices`)
    pub registered_users: BTreeSet<String>,
}

/// A soft-deleted user (`directory/deletedItems`)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    /// The user as it was
    pub user: User,
    /// `deletedDateTime`
    pub deleted_at: String,
}

/// The tenant
#[derive(Debug, Default)]
pub struct World {
    pub(crate) users: BTreeMap<String, User>,
    pub(crate) groups: BTreeMap<String, Group>,
    /// Activated directory roles: id -> (displayName, roleTemplateId, members)
    pub(crate) directory_roles: BTreeMap<String, (String, String, BTreeSet<String>)>,
    /// Administrative units: id -> (displayName, members)
    pub(crate) admin_units: BTreeMap<String, (String, BTreeSet<String>)>,
    pub(crate) role_assignments: BTreeMap<String, RoleAssignment>,
    /// Service principals: id -> displayName
    pub(crate) service_principals: BTreeMap<String, String>,
    pub(crate) app_role_assignments: BTreeMap<String, AppRoleAssignment>,
    pub(crate) methods: BTreeMap<String, Method>,
    pub(crate) devices: BTreeMap<String, Device>,
    pub(crate) deleted: BTreeMap<String, Deleted>,
    /// The tenant's initial domain (`contoso.onmicrosoft.com`)
    pub(crate) domain: String,
    next: u64,
}

/// A GUID-shaped id made of a kind tag and a counter, unique in the tenant
fn guid(tag: u16, n: u64) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        n.wrapping_mul(2_654_435_761) & 0xffff_ffff,
        tag,
        (n >> 12) & 0xfff,
        n & 0xfff,
        n
    )
}

impl World {
    pub(crate) fn new(domain: &str) -> World {
        World {
            domain: domain.to_owned(),
            ..World::default()
        }
    }

    fn id(&mut self, tag: u16) -> String {
        self.next += 1;
        guid(tag, self.next)
    }

    /// The tenant's initial domain (guests' UPNs end with `#EXT#@` it)
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Adds an enabled member user with this UPN (`mail` the same, `SMTP:` proxy address, one
    /// sign-in session, a password method); returns its object id
    pub fn user(&mut self, upn: &str) -> String {
        let id = self.id(0x0001);
        let local = upn.split('@').next().unwrap_or(upn);
        self.users.insert(
            id.clone(),
            User {
                id: id.clone(),
                display_name: local.to_owned(),
                upn: upn.to_owned(),
                mail: Some(upn.to_owned()),
                other_mails: Vec::new(),
                proxy_addresses: vec![format!("SMTP:{upn}")],
                employee_id: None,
                on_prem_immutable_id: None,
                on_prem_sam: None,
                on_prem_sync_enabled: None,
                account_enabled: true,
                user_type: "Member".into(),
                licenses: Vec::new(),
                sessions: 1,
                revocations: 0,
                sessions_valid_from: "2026-01-05T09:00:00Z".into(),
            },
        );
        self.add_method(&id, MethodKind::Password);
        id
    }

    /// Adds a guest invited with `email`: UPN `local_domain#EXT#@<tenant domain>`, `mail` and
    /// `otherMails` the invited address, `userType: Guest`; returns its object id
    pub fn guest(&mut self, email: &str) -> String {
        let upn = format!("{}#EXT#@{}", email.replace('@', "_"), self.domain);
        let id = self.user(&upn);
        if let Some(u) = self.users.get_mut(&id) {
            u.mail = Some(email.to_owned());
            u.other_mails = vec![email.to_owned()];
            u.proxy_addresses = vec![format!("SMTP:{email}")];
            u.user_type = "Guest".into();
        }
        id
    }

    /// A user, to change it
    pub fn get_mut(&mut self, id: &str) -> Option<&mut User> {
        self.users.get_mut(id)
    }

    /// A user
    pub fn get(&self, id: &str) -> Option<&User> {
        self.users.get(id)
    }

    /// The id of the (not deleted) user with this UPN (case ignored)
    pub fn by_upn(&self, upn: &str) -> Option<String> {
        self.users
            .values()
            .find(|u| u.upn.eq_ignore_ascii_case(upn))
            .map(|u| u.id.clone())
    }

    /// A soft-deleted user
    pub fn deleted(&self, id: &str) -> Option<&Deleted> {
        self.deleted.get(id)
    }

    /// Adds a group of `kind`; returns its id
    pub fn group(&mut self, name: &str, kind: GroupKind) -> String {
        let id = self.id(0x0002);
        self.groups.insert(
            id.clone(),
            Group {
                id: id.clone(),
                display_name: name.into(),
                kind,
                members: BTreeSet::new(),
            },
        );
        id
    }

    /// A group
    pub fn group_of(&self, id: &str) -> Option<&Group> {
        self.groups.get(id)
    }

    /// Puts a user in a group
    pub fn add_member(&mut self, group: &str, user: &str) {
        if let Some(g) = self.groups.get_mut(group) {
            g.members.insert(user.into());
        }
    }

    /// The ids of the groups a user is a direct member of
    pub fn groups_of(&self, user: &str) -> Vec<String> {
        self.groups
            .values()
            .filter(|g| g.members.contains(user))
            .map(|g| g.id.clone())
            .collect()
    }

    /// Adds an administrative unit with this member; returns its id (memberOf lists it)
    pub fn admin_unit(&mut self, name: &str, member: &str) -> String {
        let id = self.id(0x0003);
        self.admin_units.insert(
            id.clone(),
            (name.to_owned(), BTreeSet::from([member.to_owned()])),
        );
        id
    }

    /// Assigns a directory role (by its template id, e.g. Global Administrator's
    /// `62e90394-69f5-4237-9190-012177145e10`) tenant-wide; the user also becomes a member of the
    /// activated `directoryRole`; returns the assignment id
    pub fn grant_role(&mut self, user: &str, role_template_id: &str, name: &str) -> String {
        let role = match self
            .directory_roles
            .iter()
            .find(|(_, r)| r.1 == role_template_id)
            .map(|(id, _)| id.clone())
        {
            Some(id) => id,
            None => {
                let id = self.id(0x0004);
                self.directory_roles.insert(
                    id.clone(),
                    (
                        name.to_owned(),
                        role_template_id.to_owned(),
                        BTreeSet::new(),
                    ),
                );
                id
            }
        };
        if let Some(r) = self.directory_roles.get_mut(&role) {
            r.2.insert(user.to_owned());
        }
        // Graph's role assignment ids are base64-ish strings, not GUIDs
        self.next += 1;
        let id = format!("lAPpYvVpN0KRkAEhdxReEJC2sEqbR_9Hr48lds9SGHI-{}", self.next);
        self.role_assignments.insert(
            id.clone(),
            RoleAssignment {
                id: id.clone(),
                role_definition_id: role_template_id.to_owned(),
                principal_id: user.to_owned(),
                directory_scope_id: "/".into(),
            },
        );
        id
    }

    /// The role assignments a principal holds
    pub fn roles_of(&self, user: &str) -> Vec<RoleAssignment> {
        self.role_assignments
            .values()
            .filter(|r| r.principal_id == user)
            .cloned()
            .collect()
    }

    /// Adds a service principal (an enterprise app); returns its id
    pub fn service_principal(&mut self, name: &str) -> String {
        let id = self.id(0x0005);
        self.service_principals.insert(id.clone(), name.to_owned());
        id
    }

    /// Assigns a user to a service principal's default role; returns the assignment id
    pub fn assign_app(&mut self, user: &str, service_principal: &str) -> String {
        self.next += 1;
        let id = format!("DmDFXJAmJU6bV1R6-dC1t{:06}AQ", self.next);
        let name = self
            .service_principals
            .get(service_principal)
            .cloned()
            .unwrap_or_default();
        self.app_role_assignments.insert(
            id.clone(),
            AppRoleAssignment {
                id: id.clone(),
                app_role_id: "00000000-0000-0000-0000-000000000000".into(),
                principal_id: user.to_owned(),
                resource_id: service_principal.to_owned(),
                resource_display_name: name,
            },
        );
        id
    }

    /// The app role assignments a user holds
    pub fn apps_of(&self, user: &str) -> Vec<AppRoleAssignment> {
        self.app_role_assignments
            .values()
            .filter(|a| a.principal_id == user)
            .cloned()
            .collect()
    }

    /// Registers an authentication method; returns its id (a password method's is Graph's
    /// fixed one)
    pub fn add_method(&mut self, user: &str, kind: MethodKind) -> String {
        let id = if kind == MethodKind::Password {
            format!("{PASSWORD_METHOD_ID}/{user}")
        } else {
            self.id(0x0006)
        };
        self.methods.insert(
            id.clone(),
            Method {
                id: id.clone(),
                kind,
                user_id: user.to_owned(),
            },
        );
        id
    }

    /// The methods a user has (the password's id shown as Graph's fixed one)
    pub fn methods_of(&self, user: &str) -> Vec<Method> {
        self.methods
            .values()
            .filter(|m| m.user_id == user)
            .map(|m| Method {
                id: m.id.split('/').next().unwrap_or(&m.id).to_owned(),
                ..m.clone()
            })
            .collect()
    }

    /// Assigns a licence directly
    pub fn assign_license(&mut self, user: &str, sku_id: &str) {
        self.add_license(user, sku_id, None);
    }

    /// Assigns a licence through a group (group-based licensing; the user is made a member)
    pub fn assign_license_by_group(&mut self, user: &str, sku_id: &str, group: &str) {
        self.add_member(group, user);
        self.add_license(user, sku_id, Some(group.to_owned()));
    }

    fn add_license(&mut self, user: &str, sku_id: &str, by_group: Option<String>) {
        if let Some(u) = self.users.get_mut(user) {
            let l = License {
                sku_id: sku_id.to_owned(),
                by_group,
            };
            if !u.licenses.contains(&l) {
                u.licenses.push(l);
            }
        }
    }

    /// Adds a device owned by `owner` (and registered to them when `registered`); returns its id
    pub fn device(&mut self, name: &str, owner: &str, registered: bool) -> String {
        let id = self.id(0x0007);
        let users = if registered {
            BTreeSet::from([owner.to_owned()])
        } else {
            BTreeSet::new()
        };
        self.devices.insert(
            id.clone(),
            Device {
                id: id.clone(),
                display_name: name.to_owned(),
                owners: BTreeSet::from([owner.to_owned()]),
                registered_users: users,
            },
        );
        id
    }

    /// Graph's soft delete: the user moves to `directory/deletedItems` and leaves its groups,
    /// roles and app assignments (a test's "deleted meanwhile" too)
    pub fn soft_delete(&mut self, id: &str) -> bool {
        let Some(user) = self.users.remove(id) else {
            return false;
        };
        for g in self.groups.values_mut() {
            g.members.remove(id);
        }
        for r in self.directory_roles.values_mut() {
            r.2.remove(id);
        }
        for a in self.admin_units.values_mut() {
            a.1.remove(id);
        }
        self.role_assignments.retain(|_, r| r.principal_id != id);
        self.app_role_assignments
            .retain(|_, a| a.principal_id != id);
        self.deleted.insert(
            id.to_owned(),
            Deleted {
                user,
                deleted_at: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            },
        );
        true
    }

    /// Removes a soft-deleted user for good
    pub fn purge(&mut self, id: &str) -> bool {
        let gone = self.deleted.remove(id).is_some();
        if gone {
            self.methods.retain(|_, m| m.user_id != id);
            for d in self.devices.values_mut() {
                d.owners.remove(id);
                d.registered_users.remove(id);
            }
        }
        gone
    }

    pub(crate) fn remove_role_assignment(&mut self, id: &str) -> bool {
        let Some(a) = self.role_assignments.remove(id) else {
            return false;
        };
        let still = self.role_assignments.values().any(|r| {
            r.principal_id == a.principal_id && r.role_definition_id == a.role_definition_id
        });
        if !still {
            for r in self.directory_roles.values_mut() {
                if r.1 == a.role_definition_id {
                    r.2.remove(&a.principal_id);
                }
            }
        }
        true
    }
}

/// Office 365 E3's SKU id
pub const SKU_E3: &str = "6fd2c87f-b296-42f0-b197-1e91e994b900";
/// Microsoft 365 E5's SKU id
pub const SKU_E5: &str = "06ebc4ee-1bb5-47dd-8120-11324bc54e06";
/// Global Administrator's role template id
pub const ROLE_GLOBAL_ADMIN: &str = "62e90394-69f5-4237-9190-012177145e10";
/// User Administrator's role template id
pub const ROLE_USER_ADMIN: &str = "fe930be7-5e62-47db-91af-98c3a49a38b1";

/// The ids of a leaver seeded with one of everything ([`World::leaver`])
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaver {
    /// The user's object id
    pub user: String,
    /// A security group (removable)
    pub security: String,
    /// A Microsoft 365 group (removable)
    pub unified: String,
    /// A mail-enabled security group (400)
    pub mail_security: String,
    /// A distribution list (400)
    pub distribution: String,
    /// A dynamic group (400)
    pub dynamic: String,
    /// An on-prem synced group (400)
    pub on_prem: String,
    /// The group the E5 licence comes through (a security group, removable)
    pub license_group: String,
    /// An administrative unit (memberOf lists it; not a group)
    pub admin_unit: String,
    /// User Administrator, tenant-wide
    pub role_assignment: String,
    /// The enterprise app
    pub service_principal: String,
    /// The assignment to it
    pub app_role_assignment: String,
    /// Every method but the password: phone, fido2, microsoftAuthenticator, softwareOath,
    /// temporaryAccessPass, windowsHelloForBusiness, email, in this order
    pub methods: Vec<String>,
    /// The password method's id (never deletable)
    pub password_method: String,
    /// E3, assigned directly
    pub direct_sku: String,
    /// E5, assigned through `license_group`
    pub group_sku: String,
    /// A device the user owns and registered
    pub device: String,
}

/// Many leavers sharing groups ([`World::crowd`]), for benchmarks
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crowd {
    /// The users' object ids (`leaver0001@contoso.com`, ...)
    pub users: Vec<String>,
    /// The shared security groups (every user is a member of each)
    pub groups: Vec<String>,
}

/// The ids of the odd tenant ([`World::odd_tenant`])
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OddTenant {
    /// `o'brien@contoso.com`, display name `Dara "DJ" O'Brien`, employeeId `E-0'1`
    pub quoted: String,
    /// The soft-deleted first holder of `reused@contoso.com`
    pub reused_old: String,
    /// The new object that holds `reused@contoso.com` now
    pub reused_new: String,
    /// `alias.owner@contoso.com`, whose proxyAddresses and otherMails hold
    /// `alias.target@contoso.com`
    pub alias_owner: String,
    /// `alias.target@contoso.com` (its UPN is another user's alias; its mail
    /// `a.target@contoso.com`)
    pub alias_target: String,
    /// A guest invited as `ext.user@fabrikam.com` (UPN `ext.user_fabrikam.com#EXT#@...`)
    pub guest: String,
    /// `many.groups@contoso.com`, a member of 25 security groups (memberOf pages)
    pub many_groups: String,
    /// Those 25 groups
    pub many_group_ids: Vec<String>,
    /// `synced@contoso.com`: onPremisesSyncEnabled, immutable id `Zm9vYmFy+/==`, sAMAccountName
    /// `SYNCED01`
    pub synced: String,
}

impl World {
    /// A user (`upn`, employeeId `EMP-<local part>`) with one of everything: a group of each kind,
    /// an administrative unit, a directory role, an app assignment, every method type, a direct
    /// and a group-assigned licence, a device
    pub fn leaver(&mut self, upn: &str) -> Leaver {
        let user = self.user(upn);
        let local = upn.split('@').next().unwrap_or(upn).to_owned();
        if let Some(u) = self.users.get_mut(&user) {
            u.employee_id = Some(format!("EMP-{local}"));
            u.other_mails = vec![format!("{local}@personal.example")];
        }
        let group = |w: &mut World, kind: GroupKind, name: &str| {
            let id = w.group(&format!("{name} ({local})"), kind);
            w.add_member(&id, &user);
            id
        };
        let security = group(self, GroupKind::Security, "Engineering");
        let unified = group(self, GroupKind::Unified, "Project Falcon");
        let mail_security = group(self, GroupKind::MailEnabledSecurity, "Finance Approvers");
        let distribution = group(self, GroupKind::Distribution, "All Staff");
        let dynamic = group(self, GroupKind::Dynamic, "Sales (dynamic)");
        let on_prem = group(self, GroupKind::OnPremSynced, "CORP-VPN");
        let license_group = self.group(&format!("E5 licensed ({local})"), GroupKind::Security);
        self.assign_license_by_group(&user, SKU_E5, &license_group);
        self.assign_license(&user, SKU_E3);
        let admin_unit = self.admin_unit(&format!("Region West ({local})"), &user);
        let role_assignment = self.grant_role(&user, ROLE_USER_ADMIN, "User Administrator");
        let service_principal = self.service_principal(&format!("Salesforce ({local})"));
        let app_role_assignment = self.assign_app(&user, &service_principal);
        let methods = MethodKind::ALL
            .into_iter()
            .filter(|k| *k != MethodKind::Password)
            .map(|k| self.add_method(&user, k))
            .collect();
        let device = self.device(&format!("LAPTOP-{local}"), &user, true);
        Leaver {
            user,
            security,
            unified,
            mail_security,
            distribution,
            dynamic,
            on_prem,
            license_group,
            admin_unit,
            role_assignment,
            service_principal,
            app_role_assignment,
            methods,
            password_method: PASSWORD_METHOD_ID.to_owned(),
            direct_sku: SKU_E3.to_owned(),
            group_sku: SKU_E5.to_owned(),
            device,
        }
    }

    /// `n` users (`leaver0001@contoso.com`...; employeeId `EMP-0001`...), each with E3 assigned
    /// directly, a phone method, and a member of every one of `groups` shared security groups
    pub fn crowd(&mut self, n: usize, groups: usize) -> Crowd {
        let group_ids: Vec<String> = (1..=groups)
            .map(|i| self.group(&format!("Shared {i:02}"), GroupKind::Security))
            .collect();
        let users = (1..=n)
            .map(|i| {
                let u = self.user(&format!("leaver{i:04}@contoso.com"));
                if let Some(x) = self.users.get_mut(&u) {
                    x.employee_id = Some(format!("EMP-{i:04}"));
                }
                self.assign_license(&u, SKU_E3);
                self.add_method(&u, MethodKind::Phone);
                for g in &group_ids {
                    self.add_member(g, &u);
                }
                u
            })
            .collect();
        Crowd {
            users,
            groups: group_ids,
        }
    }

    /// Soft-deletes `old` and gives its UPN (and mail) to a new object; returns the new id
    pub fn reuse_upn(&mut self, old: &str) -> Option<String> {
        let upn = self.users.get(old)?.upn.clone();
        self.soft_delete(old);
        Some(self.user(&upn))
    }

    /// A tenant as odd as the world: quotes in names and values, a UPN reused by a new object,
    /// an alias that equals another user's UPN, a guest, a user in 25 groups, a synced user
    pub fn odd_tenant(&mut self) -> OddTenant {
        let quoted = self.user("o'brien@contoso.com");
        if let Some(u) = self.users.get_mut(&quoted) {
            u.display_name = "Dara \"DJ\" O'Brien".into();
            u.employee_id = Some("E-0'1".into());
            u.other_mails = vec!["dara.o'brien@personal.example".into()];
        }
        let reused_old = self.user("reused@contoso.com");
        let reused_new = self.reuse_upn(&reused_old).unwrap_or_default();
        let alias_target = self.user("alias.target@contoso.com");
        if let Some(u) = self.users.get_mut(&alias_target) {
            // Exchange keeps proxy addresses unique: its mail is another address
            u.mail = Some("a.target@contoso.com".into());
            u.proxy_addresses = vec!["SMTP:a.target@contoso.com".into()];
        }
        let alias_owner = self.user("alias.owner@contoso.com");
        if let Some(u) = self.users.get_mut(&alias_owner) {
            u.proxy_addresses
                .push("smtp:alias.target@contoso.com".into());
            u.other_mails.push("alias.target@contoso.com".into());
        }
        let guest = self.guest("ext.user@fabrikam.com");
        let many_groups = self.user("many.groups@contoso.com");
        let many_group_ids = (1..=25)
            .map(|i| {
                let g = self.group(&format!("Team {i:02}"), GroupKind::Security);
                self.add_member(&g, &many_groups);
                g
            })
            .collect();
        let synced = self.user("synced@contoso.com");
        if let Some(u) = self.users.get_mut(&synced) {
            u.on_prem_sync_enabled = Some(true);
            u.on_prem_immutable_id = Some("Zm9vYmFy+/==".into());
            u.on_prem_sam = Some("SYNCED01".into());
        }
        OddTenant {
            quoted,
            reused_old,
            reused_new,
            alias_owner,
            alias_target,
            guest,
            many_groups,
            many_group_ids,
            synced,
        }
    }
}
