//! The in-memory GitHub world the stand-in serves: organizations, their members, teams,
//! repositories, invitations and credentials
//!
//! Logins, team slugs and repository names are matched case-insensitively, as GitHub does; the
//! spelling given when seeding is the one the stand-in answers with.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use sha2::{Digest, Sha256};

/// A role in an organization (REST `admin|member`, GraphQL `ADMIN|MEMBER`)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// An organization owner
    Admin,
    /// A plain member
    Member,
}

impl Role {
    /// The REST spelling
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
}

/// A role in a team (REST `maintainer|member`, GraphQL `MAINTAINER|MEMBER`)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TeamRole {
    /// May manage the team
    Maintainer,
    /// A plain member
    Member,
}

impl TeamRole {
    /// The REST spelling
    pub fn as_str(self) -> &'static str {
        match self {
            TeamRole::Maintainer => "maintainer",
            TeamRole::Member => "member",
        }
    }
}

/// A repository permission (REST `pull|triage|push|maintain|admin`, GraphQL
/// `READ|TRIAGE|WRITE|MAINTAIN|ADMIN`)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// Read
    Pull,
    /// Read and manage issues
    Triage,
    /// Write
    Push,
    /// Write and manage the repository without destructive rights
    Maintain,
    /// Everything
    Admin,
}

impl Permission {
    /// The REST spelling (`permission` query values, `permissions` booleans)
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Pull => "pull",
            Permission::Triage => "triage",
            Permission::Push => "push",
            Permission::Maintain => "maintain",
            Permission::Admin => "admin",
        }
    }

    /// The role name GitHub shows for it (`role_name`, repository-invitation `permissions`)
    pub fn role_name(self) -> &'static str {
        match self {
            Permission::Pull => "read",
            Permission::Triage => "triage",
            Permission::Push => "write",
            Permission::Maintain => "maintain",
            Permission::Admin => "admin",
        }
    }

    /// The GraphQL `RepositoryPermission` value
    pub fn graphql(self) -> &'static str {
        match self {
            Permission::Pull => "READ",
            Permission::Triage => "TRIAGE",
            Permission::Push => "WRITE",
            Permission::Maintain => "MAINTAIN",
            Permission::Admin => "ADMIN",
        }
    }
}

/// The kind of credential a SAML SSO authorization is for
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialType {
    /// A classic personal access token
    PersonalAccessToken,
    /// An SSH key
    SshKey,
}

impl CredentialType {
    /// The REST spelling
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialType::PersonalAccessToken => "personal access token",
            CredentialType::SshKey => "SSH key",
        }
    }
}

/// A pending invitation to join an organization
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgInvitation {
    /// Its id (`DELETE /orgs/{org}/invitations/{id}`)
    pub id: u64,
    /// The invitee's login, when invited by login
    pub login: Option<String>,
    /// The invitee's email, when invited by email
    pub email: Option<String>,
    /// The role offered
    pub role: Role,
    /// Who invited
    pub inviter: String,
    /// When
    pub created_at: DateTime<Utc>,
}

/// A pending invitation to collaborate on a repository
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoInvitation {
    /// Its id (`DELETE /repos/{owner}/{repo}/invitations/{id}`)
    pub id: u64,
    /// The invitee's login
    pub invitee: String,
    /// The permission offered
    pub permission: Permission,
    /// Who invited
    pub inviter: String,
    /// When
    pub created_at: DateTime<Utc>,
}

/// A credential (PAT or SSH key) authorized for the organization's SAML SSO
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialAuthorization {
    /// Its id (`DELETE /orgs/{org}/credential-authorizations/{credential_id}`)
    pub credential_id: u64,
    /// The owner's login
    pub login: String,
    /// PAT or SSH key
    pub credential_type: CredentialType,
    /// The last eight characters of a token (PATs only)
    pub token_last_eight: Option<String>,
    /// The SSH key fingerprint (SSH keys only)
    pub fingerprint: Option<String>,
    /// The scopes of a token
    pub scopes: Vec<String>,
    /// When the credential was authorized for SSO
    pub credential_authorized_at: DateTime<Utc>,
    /// When it was last used, if ever
    pub credential_accessed_at: Option<DateTime<Utc>>,
    /// The id of the underlying token or key
    pub authorized_credential_id: Option<u64>,
    /// The title of an SSH key or the note of a token
    pub authorized_credential_title: Option<String>,
    /// When the token expires, if it does
    pub authorized_credential_expires_at: Option<DateTime<Utc>>,
}

/// A fine-grained personal access token granted access to the organization's resources
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatGrant {
    /// The grant id (`POST /orgs/{org}/personal-access-tokens/{pat_id}`)
    pub id: u64,
    /// The token owner's login
    pub owner: String,
    /// The token's name
    pub token_name: String,
    /// The token's id
    pub token_id: u64,
    /// `none|all|subset`
    pub repository_selection: String,
    /// When access was granted
    pub access_granted_at: DateTime<Utc>,
    /// Whether the token has expired
    pub token_expired: bool,
    /// When it expires, if it does
    pub token_expires_at: Option<DateTime<Utc>>,
    /// When it was last used, if ever
    pub token_last_used_at: Option<DateTime<Utc>>,
}

/// A SAML external identity linked (or not) to a GitHub user
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamlIdentity {
    /// The linked GitHub login, `None` when the identity is not linked to a user
    pub login: Option<String>,
    /// The SAML NameID (usually the email)
    pub name_id: String,
    /// The emails of the identity
    pub emails: Vec<String>,
    /// The SCIM identity's `userName`, when the IdP provisions the org by SCIM too
    pub scim_username: Option<String>,
}

/// A team of an organization
#[derive(Debug, Clone)]
pub struct Team {
    pub(crate) id: u64,
    pub(crate) slug: String,
    pub(crate) name: String,
    /// lowercased login -> (login, role)
    pub(crate) members: BTreeMap<String, (String, TeamRole)>,
}

impl Team {
    /// Adds (or re-roles) a plain member; the user should also be an organization member
    pub fn member(&mut self, login: &str) -> &mut Team {
        self.members
            .insert(key(login), (login.to_owned(), TeamRole::Member));
        self
    }

    /// Adds (or re-roles) a maintainer
    pub fn maintainer(&mut self, login: &str) -> &mut Team {
        self.members
            .insert(key(login), (login.to_owned(), TeamRole::Maintainer));
        self
    }

    /// Sets the display name (the slug stays)
    pub fn name(&mut self, name: &str) -> &mut Team {
        self.name = name.to_owned();
        self
    }

    /// The team's slug
    pub fn slug(&self) -> &str {
        &self.slug
    }

    /// Members and their team roles, sorted by login
    pub fn members(&self) -> Vec<(String, TeamRole)> {
        self.members.values().cloned().collect()
    }
}

/// A repository of an organization
#[derive(Debug, Clone)]
pub struct Repo {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) private: bool,
    /// lowercased login -> (login, permission): direct grants
    pub(crate) collaborators: BTreeMap<String, (String, Permission)>,
    pub(crate) invitations: Vec<RepoInvitation>,
    pub(crate) next_id: IdSource,
}

impl Repo {
    /// Grants `login` a direct permission (an outside collaborator when not an org member)
    pub fn collaborator(&mut self, login: &str, permission: Permission) -> &mut Repo {
        self.collaborators
            .insert(key(login), (login.to_owned(), permission));
        self
    }

    /// Invites `login` to collaborate; returns the invitation id
    pub fn invite(&mut self, login: &str, permission: Permission) -> u64 {
        let id = self.next_id.next();
        self.invitations.push(RepoInvitation {
            id,
            invitee: login.to_owned(),
            permission,
            inviter: "octocat".to_owned(),
            created_at: seed_time(id),
        });
        id
    }

    /// Makes the repository public or private (private by default)
    pub fn private(&mut self, private: bool) -> &mut Repo {
        self.private = private;
        self
    }

    /// The repository name
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Direct collaborators and their permissions, sorted by login
    pub fn collaborators(&self) -> Vec<(String, Permission)> {
        self.collaborators.values().cloned().collect()
    }

    /// Pending invitations
    pub fn invitations(&self) -> &[RepoInvitation] {
        &self.invitations
    }
}

/// One organization and everything in it
#[derive(Debug, Clone)]
pub struct Org {
    pub(crate) id: u64,
    pub(crate) login: String,
    /// lowercased login -> (login, role)
    pub(crate) members: BTreeMap<String, (String, Role)>,
    pub(crate) invitations: Vec<OrgInvitation>,
    /// lowercased slug -> team
    pub(crate) teams: BTreeMap<String, Team>,
    /// lowercased name -> repo
    pub(crate) repos: BTreeMap<String, Repo>,
    pub(crate) credential_authorizations: Vec<CredentialAuthorization>,
    pub(crate) pat_grants: Vec<PatGrant>,
    pub(crate) saml_identities: Vec<SamlIdentity>,
    pub(crate) next_id: IdSource,
}

impl Org {
    /// Adds (or re-roles) a member
    pub fn member(&mut self, login: &str, role: Role) -> &mut Org {
        self.members.insert(key(login), (login.to_owned(), role));
        self
    }

    /// Adds many plain members at once (big worlds for benchmarks)
    pub fn members<'a>(&mut self, logins: impl IntoIterator<Item = &'a str>) -> &mut Org {
        for login in logins {
            self.member(login, Role::Member);
        }
        self
    }

    /// The team with this slug, created (name = slug) when missing
    pub fn team(&mut self, slug: &str) -> &mut Team {
        let id = self.next_id.clone();
        self.teams.entry(key(slug)).or_insert_with(|| Team {
            id: id.next(),
            slug: slug.to_owned(),
            name: slug.to_owned(),
            members: BTreeMap::new(),
        })
    }

    /// The repository with this name, created (private) when missing
    pub fn repo(&mut self, name: &str) -> &mut Repo {
        let ids = self.next_id.clone();
        self.repos.entry(key(name)).or_insert_with(|| Repo {
            id: ids.next(),
            name: name.to_owned(),
            private: true,
            collaborators: BTreeMap::new(),
            invitations: Vec::new(),
            next_id: ids,
        })
    }

    /// Invites a user by login; returns the invitation id (their membership is then `pending`)
    pub fn invite(&mut self, login: &str, role: Role) -> u64 {
        let id = self.next_id.next();
        self.invitations.push(OrgInvitation {
            id,
            login: Some(login.to_owned()),
            email: None,
            role,
            inviter: "octocat".to_owned(),
            created_at: seed_time(id),
        });
        id
    }

    /// Invites someone by email only (no GitHub account yet); returns the invitation id
    pub fn invite_email(&mut self, email: &str, role: Role) -> u64 {
        let id = self.next_id.next();
        self.invitations.push(OrgInvitation {
            id,
            login: None,
            email: Some(email.to_owned()),
            role,
            inviter: "octocat".to_owned(),
            created_at: seed_time(id),
        });
        id
    }

    /// Authorizes a credential of `login` for SAML SSO; tweak the returned entry as needed
    pub fn credential_authorization(
        &mut self,
        login: &str,
        credential_type: CredentialType,
    ) -> &mut CredentialAuthorization {
        let id = self.next_id.next();
        let pat = credential_type == CredentialType::PersonalAccessToken;
        self.credential_authorizations
            .push(CredentialAuthorization {
                credential_id: id,
                login: login.to_owned(),
                credential_type,
                token_last_eight: pat.then(|| format!("{:08x}", id % 0xffff_ffff)),
                fingerprint: (!pat).then(|| format!("SHA256:{}", base64_id(id))),
                scopes: if pat {
                    vec!["repo".to_owned(), "read:org".to_owned()]
                } else {
                    vec![]
                },
                credential_authorized_at: seed_time(id),
                credential_accessed_at: Some(seed_time(id) + ChronoDuration::days(3)),
                authorized_credential_id: Some(id + 500_000),
                authorized_credential_title: Some(format!(
                    "{login}'s {}",
                    credential_type.as_str()
                )),
                authorized_credential_expires_at: None,
            });
        let last = self.credential_authorizations.len() - 1;
        &mut self.credential_authorizations[last]
    }

    /// Grants a fine-grained PAT of `owner` access to the organization; tweak the returned entry as needed
    pub fn pat_grant(&mut self, owner: &str, token_name: &str) -> &mut PatGrant {
        let id = self.next_id.next();
        self.pat_grants.push(PatGrant {
            id,
            owner: owner.to_owned(),
            token_name: token_name.to_owned(),
            token_id: id + 700_000,
            repository_selection: "all".to_owned(),
            access_granted_at: seed_time(id),
            token_expired: false,
            token_expires_at: Some(seed_time(id) + ChronoDuration::days(365)),
            token_last_used_at: None,
        });
        let last = self.pat_grants.len() - 1;
        &mut self.pat_grants[last]
    }

    /// Links a SAML identity (NameID, also its only email) to `login`
    pub fn saml_identity(&mut self, login: &str, name_id: &str) -> &mut Org {
        self.saml_identities.push(SamlIdentity {
            login: Some(login.to_owned()),
            name_id: name_id.to_owned(),
            emails: vec![name_id.to_owned()],
            scim_username: None,
        });
        self
    }

    /// Gives the SAML identity of `login` a SCIM identity with this `userName` too
    pub fn scim_identity(&mut self, login: &str, user_name: &str) -> &mut Org {
        let k = key(login);
        for i in &mut self.saml_identities {
            if i.login.as_deref().map(key).as_deref() == Some(k.as_str()) {
                i.scim_username = Some(user_name.to_owned());
            }
        }
        self
    }

    /// The organization's login
    pub fn login(&self) -> &str {
        &self.login
    }

    /// The member's role, `None` when not a member
    pub fn role_of(&self, login: &str) -> Option<Role> {
        self.members.get(&key(login)).map(|(_, r)| *r)
    }

    /// Members and roles, sorted by login
    pub fn member_list(&self) -> Vec<(String, Role)> {
        self.members.values().cloned().collect()
    }

    /// A team by slug
    pub fn team_ref(&self, slug: &str) -> Option<&Team> {
        self.teams.get(&key(slug))
    }

    /// A repository by name
    pub fn repo_ref(&self, name: &str) -> Option<&Repo> {
        self.repos.get(&key(name))
    }

    /// Removes a team (simulates it being deleted under the connector's feet)
    pub fn remove_team(&mut self, slug: &str) -> bool {
        self.teams.remove(&key(slug)).is_some()
    }

    /// Logins (as first seen) of direct collaborators of any repository who are not members,
    /// sorted case-insensitively
    pub fn outside_collaborators(&self) -> Vec<String> {
        let mut out: BTreeMap<&str, &str> = BTreeMap::new();
        for repo in self.repos.values() {
            for (k, (login, _)) in &repo.collaborators {
                if !self.members.contains_key(k) {
                    out.entry(k.as_str()).or_insert(login.as_str());
                }
            }
        }
        out.into_values().map(str::to_owned).collect()
    }

    /// Whether `login` has a pending invitation by login
    pub(crate) fn pending_invitation(&self, login: &str) -> Option<&OrgInvitation> {
        let k = key(login);
        self.invitations
            .iter()
            .find(|i| i.login.as_deref().map(key).as_deref() == Some(k.as_str()))
    }

    /// Whether the lowercased login `k` appears anywhere in the organization
    pub(crate) fn names_user(&self, k: &str) -> bool {
        self.spelling_of(k).is_some()
    }

    /// The login as seeded, where the lowercased login `k` appears in the organization
    pub(crate) fn spelling_of(&self, k: &str) -> Option<String> {
        let same = |l: &str| key(l) == k;
        if let Some((l, _)) = self.members.get(k) {
            return Some(l.clone());
        }
        for t in self.teams.values() {
            if let Some((l, _)) = t.members.get(k) {
                return Some(l.clone());
            }
        }
        for r in self.repos.values() {
            if let Some((l, _)) = r.collaborators.get(k) {
                return Some(l.clone());
            }
            if let Some(i) = r.invitations.iter().find(|i| same(&i.invitee)) {
                return Some(i.invitee.clone());
            }
        }
        self.invitations
            .iter()
            .filter_map(|i| i.login.as_deref())
            .chain(
                self.credential_authorizations
                    .iter()
                    .map(|c| c.login.as_str()),
            )
            .chain(self.pat_grants.iter().map(|g| g.owner.as_str()))
            .chain(
                self.saml_identities
                    .iter()
                    .filter_map(|i| i.login.as_deref()),
            )
            .find(|l| same(l))
            .map(str::to_owned)
    }

    /// Everything of the lowercased login `old` now under the login `to`
    pub(crate) fn rename(&mut self, old: &str, to: &str) {
        let new = key(to);
        let moved = |l: &mut String| {
            if key(l) == old {
                *l = to.to_owned();
            }
        };
        if let Some((_, role)) = self.members.remove(old) {
            self.members.insert(new.clone(), (to.to_owned(), role));
        }
        for t in self.teams.values_mut() {
            if let Some((_, role)) = t.members.remove(old) {
                t.members.insert(new.clone(), (to.to_owned(), role));
            }
        }
        for r in self.repos.values_mut() {
            if let Some((_, p)) = r.collaborators.remove(old) {
                r.collaborators.insert(new.clone(), (to.to_owned(), p));
            }
            r.invitations.iter_mut().for_each(|i| moved(&mut i.invitee));
        }
        for i in &mut self.invitations {
            if let Some(l) = i.login.as_mut() {
                moved(l);
            }
        }
        self.credential_authorizations
            .iter_mut()
            .for_each(|c| moved(&mut c.login));
        self.pat_grants.iter_mut().for_each(|g| moved(&mut g.owner));
        for i in &mut self.saml_identities {
            if let Some(l) = i.login.as_mut() {
                moved(l);
            }
        }
    }

    /// Everything of the lowercased login `k` gone (the account was deleted); a SAML identity
    /// stays, unlinked
    pub(crate) fn forget(&mut self, k: &str) {
        let other = |l: &str| key(l) != k;
        self.members.remove(k);
        for t in self.teams.values_mut() {
            t.members.remove(k);
        }
        for r in self.repos.values_mut() {
            r.collaborators.remove(k);
            r.invitations.retain(|i| other(&i.invitee));
        }
        self.invitations
            .retain(|i| i.login.as_deref().is_none_or(other));
        self.credential_authorizations.retain(|c| other(&c.login));
        self.pat_grants.retain(|g| other(&g.owner));
        for i in &mut self.saml_identities {
            if i.login.as_deref().is_some_and(|l| !other(l)) {
                i.login = None;
            }
        }
    }

    /// Removes a member with every team membership and credential authorization (what GitHub
    /// does when someone leaves an organization); whether they were a member
    pub(crate) fn remove_member(&mut self, login: &str) -> bool {
        let k = key(login);
        if self.members.remove(&k).is_none() {
            return false;
        }
        for team in self.teams.values_mut() {
            team.members.remove(&k);
        }
        self.credential_authorizations
            .retain(|c| key(&c.login) != k);
        true
    }
}

/// Every organization, keyed by lowercased login
#[derive(Debug, Default)]
pub struct World {
    pub(crate) orgs: BTreeMap<String, Org>,
    pub(crate) users: Users,
    pub(crate) ids: IdSource,
    /// user id -> the public email of the profile (GitHub shows only a verified address)
    pub(crate) public_emails: BTreeMap<u64, String>,
}

impl World {
    /// Makes `email` the public email of `login`'s profile (it follows the account on a rename)
    pub fn set_public_email(&mut self, login: &str, email: &str) {
        let id = self.users.id(login);
        self.public_emails.insert(id, email.to_owned());
    }

    /// The public email of the account with this id, if it shows one
    pub fn public_email(&self, id: u64) -> Option<&str> {
        self.public_emails.get(&id).map(String::as_str)
    }

    /// The organization with this login, created when missing
    pub fn org(&mut self, login: &str) -> &mut Org {
        let ids = self.ids.clone();
        self.orgs.entry(key(login)).or_insert_with(|| Org {
            id: ids.next(),
            login: login.to_owned(),
            members: BTreeMap::new(),
            invitations: Vec::new(),
            teams: BTreeMap::new(),
            repos: BTreeMap::new(),
            credential_authorizations: Vec::new(),
            pat_grants: Vec::new(),
            saml_identities: Vec::new(),
            next_id: ids,
        })
    }

    /// The organization, if it exists
    pub fn org_ref(&self, login: &str) -> Option<&Org> {
        self.orgs.get(&key(login))
    }

    /// The organization for changes, if it exists (unlike [`World::org`], creates nothing)
    pub fn org_mut(&mut self, login: &str) -> Option<&mut Org> {
        self.orgs.get_mut(&key(login))
    }

    /// Removes an organization (simulates it being deleted or renamed)
    pub fn remove_org(&mut self, login: &str) -> bool {
        self.orgs.remove(&key(login)).is_some()
    }

    /// The numeric id GitHub would give this login: stable per login (a hash), unique in this world
    pub fn user_id(&mut self, login: &str) -> u64 {
        self.users.id(login)
    }

    /// Creates the user `login` with the numeric id `id` (GitHub's `id` / GraphQL `databaseId`),
    /// as when someone signs up; fails when the login names a user already or the id was ever
    /// given out (GitHub never reuses a user id)
    pub fn user(&mut self, login: &str, id: u64) -> Result<&mut World, String> {
        if self.user_exists(login) {
            return Err(format!("login {login:?} already names a user"));
        }
        if !self.users.taken.insert(id) {
            return Err(format!("user id {id} was given out already"));
        }
        self.users.by_login.insert(key(login), id);
        Ok(self)
    }

    /// Whether `login` names a user: one created with [`World::user`], given an id, or named
    /// anywhere in an organization (members, collaborators, invitations, credentials, tokens)
    pub fn user_exists(&self, login: &str) -> bool {
        let k = key(login);
        self.users.by_login.contains_key(&k) || self.orgs.values().any(|o| o.names_user(&k))
    }

    /// The user with this numeric id now: its current login (`None`: no such user, or deleted)
    pub fn login_of(&self, id: u64) -> Option<String> {
        let k = self
            .users
            .by_login
            .iter()
            .find(|(_, v)| **v == id)
            .map(|(k, _)| k.clone())?;
        Some(self.spelling(&k))
    }

    /// How the login is spelled where it was seeded (the lowercased key when nowhere)
    fn spelling(&self, k: &str) -> String {
        self.orgs
            .values()
            .find_map(|o| o.spelling_of(k))
            .unwrap_or_else(|| k.to_owned())
    }

    /// Renames a user, as GitHub does: the id stays, every membership, team, grant, invitation,
    /// credential, token and SAML identity follows the new login, and the old login is free
    /// for anyone to take (with [`World::user`]); returns the user's id
    pub fn rename_user(&mut self, from: &str, to: &str) -> Result<u64, String> {
        if !self.user_exists(from) {
            return Err(format!("no user {from:?} to rename"));
        }
        if self.user_exists(to) {
            return Err(format!("login {to:?} already names a user"));
        }
        let id = self.users.id(from);
        let (old, new) = (key(from), key(to));
        self.users.by_login.remove(&old);
        self.users.by_login.insert(new, id);
        for o in self.orgs.values_mut() {
            o.rename(&old, to);
        }
        Ok(id)
    }

    /// Deletes a user account: the id and the login answer 404 from then on, and the user
    /// leaves every organization (memberships, teams, grants, invitations, credentials, tokens)
    pub fn delete_user(&mut self, login: &str) -> Result<u64, String> {
        if !self.user_exists(login) {
            return Err(format!("no user {login:?} to delete"));
        }
        let id = self.users.id(login);
        let k = key(login);
        self.users.by_login.remove(&k);
        for o in self.orgs.values_mut() {
            o.forget(&k);
        }
        Ok(id)
    }
}

/// Numeric user ids, derived from the login so they are the same in every test
#[derive(Debug, Default)]
pub(crate) struct Users {
    by_login: BTreeMap<String, u64>,
    taken: std::collections::HashSet<u64>,
}

impl Users {
    pub(crate) fn id(&mut self, login: &str) -> u64 {
        let k = key(login);
        if let Some(id) = self.by_login.get(&k) {
            return *id;
        }
        let digest = Sha256::digest(k.as_bytes());
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&digest[..8]);
        let mut id = 10_000_000 + u64::from_be_bytes(bytes) % 90_000_000;
        while !self.taken.insert(id) {
            id += 1;
        }
        self.by_login.insert(k, id);
        id
    }
}

/// A shared counter for ids of seeded things (orgs, teams, repos, invitations, credentials), so
/// ids are unique across the world and the same for the same seeding order
#[derive(Debug, Clone)]
pub(crate) struct IdSource(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl Default for IdSource {
    fn default() -> Self {
        IdSource(std::sync::Arc::new(std::sync::atomic::AtomicU64::new(
            1_000,
        )))
    }
}

impl IdSource {
    pub(crate) fn next(&self) -> u64 {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}

/// The case-insensitive key GitHub matches logins, slugs and repository names by
pub(crate) fn key(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// A plausible fixed creation time for seeded things, so answers are reproducible
pub(crate) fn seed_time(id: u64) -> DateTime<Utc> {
    let base = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
    base + ChronoDuration::minutes((id % 100_000) as i64)
}

fn base64_id(id: u64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(Sha256::digest(id.to_be_bytes()))
}
