//! One generated company across every stand-in, for the company-scale benchmark and the demo
//!
//! [`Company::generate`] makes N people from a seed, the same for the same seed: each has one
//! employee id, email and username that every system agrees on, and the odd parts of a real
//! company: people with the same name (`jsmith`, `jsmith2`), aliases (a second `uid` and `mail`),
//! people renamed after a marriage whose GitHub login, IAM user and OneLogin username still carry
//! the old name, contractors who are outside collaborators on GitHub and only mapped by a login
//! table, admins, service users owned by an engineer, and a protected `breakglass` account.
//!
//! [`CompanyStack::start`] starts every stand-in (slapd, moto, the GitHub stand-in, the OneLogin
//! stand-in, scim2-server, the Okta and Entra ID stand-ins) and seeds each with its part of the company;
//! [`CompanyStack::connectors_toml`] writes the `[connectors.*]` tables (and secret files) that
//! point revoked at them; [`CompanyStack::counts`] says what each stand-in received since
//! [`CompanyStack::mark`], and [`Company::floor`] what the offboarding of some leavers needs at
//! least, so a benchmark can put the two side by side.
//!
//! What the systems hold, per person (fractions are of the seeded draws, not exact):
//!
//! | system | what |
//! |---|---|
//! | LDAP | an `inetOrgPerson` (uid, mail, employeeNumber); groups `staff` and the department (`groupOfNames`), the engineering team (`groupOfUniqueNames`), `vpn` (`posixGroup`, memberUid) for about half |
//! | GitHub `acme` | engineers and about 15% of the others as members (1 in 25 admin), SAML identity by email, team membership, about 30% an SSO credential authorization, about 10% a direct repository grant; contractors as outside collaborators |
//! | AWS IAM | about 60% of engineers and 80% of ops: a user tagged `email`, 1-2 keys, a console password for half, an inline and a managed policy, a group; one service user per team owned by an engineer (tag `owner`) with an active key |
//! | OneLogin | everyone: a user (email, username), roles `Employee`, the department, `Admins` for 1 in 30 |
//! | SCIM app `wiki` | about 70%: userName = email, externalId and employeeNumber = employee id, a department group |
//! | Okta | everyone: login and email = email, secondEmail = the mail alias, employeeNumber; the department's OKTA_GROUP; 1 in 5 the AD-imported `ad-staff` (APP_GROUP: a person's step); Slack assigned directly, Jira through a group for engineers; a push factor; a grant for 1 in 3; USER_ADMIN for the admins; a protected `breakglass@example.org` super admin |
//! | Entra ID | everyone: UPN and mail = email, employeeId, the mail alias as a proxy address; the department's security group, the team's Microsoft 365 group, the `dl-all-staff` distribution list (only Exchange changes it: a person's step); an E3 licence; Salesforce's app role for sales; User Administrator for the admins |

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use serde_json::{json, Value};

use crate::entra::{EntraStandin, GroupKind, ROLE_USER_ADMIN, SKU_E3};
use crate::github::{CredentialType, GithubStandin, Permission, Role};
use crate::moto::{count_calls, http};
use crate::okta::{GroupType, OktaStandin};
use crate::onelogin::OneloginStandin;
use crate::{Moto, OpCounts, Scim2Server, Slapd, TestkitError};

/// The GitHub organization of the company
pub const GITHUB_ORG: &str = "acme";
/// The scim2-server tenant that stands in for the company's SCIM app
pub const SCIM_TENANT: &str = "wiki";
/// The managed policy every IAM user has attached
pub const MANAGED_POLICY: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";

const GIVEN: [&str; 24] = [
    "james",
    "mary",
    "john",
    "patricia",
    "robert",
    "jennifer",
    "michael",
    "linda",
    "david",
    "elizabeth",
    "william",
    "barbara",
    "richard",
    "susan",
    "joseph",
    "jessica",
    "thomas",
    "sarah",
    "charles",
    "karen",
    "chris",
    "nancy",
    "daniel",
    "lisa",
];
const SURNAMES: [&str; 24] = [
    "smith",
    "johnson",
    "williams",
    "brown",
    "jones",
    "garcia",
    "miller",
    "davis",
    "rodriguez",
    "martinez",
    "hernandez",
    "lopez",
    "gonzalez",
    "wilson",
    "anderson",
    "thomas",
    "taylor",
    "moore",
    "jackson",
    "martin",
    "lee",
    "perez",
    "thompson",
    "white",
];
/// Departments and their weights out of 100
const DEPARTMENTS: [(&str, u64); 5] = [
    ("engineering", 40),
    ("sales", 20),
    ("support", 15),
    ("finance", 10),
    ("ops", 15),
];
/// Engineering teams: an LDAP group, a GitHub team with two repositories, a service user each
pub const TEAMS: [&str; 5] = ["platform", "web", "mobile", "data", "security"];

/// A small deterministic generator (SplitMix64), so the company depends on the seed alone
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True with probability `percent` / 100
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A person's GitHub presence
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubAccount {
    /// Their login (not their username: GitHub logins are their own)
    pub login: String,
    /// An org owner
    pub admin: bool,
    /// A contractor: an outside collaborator, not a member, with no SAML identity (mapped by `logins`)
    pub outside: bool,
    /// SSO credential authorizations (a token or an SSH key)
    pub credentials: u8,
    /// A direct grant on this repository (beyond what membership gives)
    pub direct_repo: Option<String>,
}

/// A person's IAM user
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamAccount {
    /// The user name (the username they had when it was made)
    pub name: String,
    /// Active access keys (1 or 2)
    pub active_keys: u8,
    /// A second, inactive key
    pub inactive_key: bool,
    /// A console password (login profile)
    pub console: bool,
}

/// A service user a person owns (tag `owner` = their email): its key is rotated when they leave
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUser {
    /// The IAM user name
    pub name: String,
    /// The owner's index in [`Company::people`]
    pub owner: usize,
}

/// One person of the company
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// HR's employee id (`E10042`), LDAP `employeeNumber`, SCIM `externalId`
    pub employee_id: String,
    /// The username today (LDAP `uid`)
    pub username: String,
    /// A second `uid` value
    pub uid_alias: Option<String>,
    /// The email today
    pub email: String,
    /// A second `mail` value
    pub mail_alias: Option<String>,
    /// The username before a rename, still used by GitHub, IAM and OneLogin
    pub former_username: Option<String>,
    /// Given name
    pub given: String,
    /// Surname
    pub surname: String,
    /// Department (`engineering`, `sales`, `support`, `finance`, `ops`)
    pub department: &'static str,
    /// Engineering team
    pub team: Option<&'static str>,
    /// In the LDAP posixGroup `vpn`
    pub vpn: bool,
    /// GitHub, if they have it
    pub github: Option<GithubAccount>,
    /// AWS IAM, if they have it
    pub iam: Option<IamAccount>,
    /// OneLogin roles (every person has a OneLogin user)
    pub onelogin_roles: Vec<String>,
    /// Has a user in the SCIM app
    pub scim: bool,
}

impl Person {
    /// Their LDAP DN
    pub fn dn(&self) -> String {
        format!("uid={},{}", self.username, Slapd::PEOPLE)
    }

    /// The name OneLogin has for them (the old one after a rename)
    pub fn onelogin_username(&self) -> &str {
        self.former_username.as_deref().unwrap_or(&self.username)
    }

    /// The LDAP groups (cn) they are in
    pub fn ldap_groups(&self) -> Vec<String> {
        let mut g = vec!["staff".to_owned(), self.department.to_owned()];
        if let Some(t) = self.team {
            g.push(format!("team-{t}"));
        }
        if self.vpn {
            g.push("vpn".to_owned());
        }
        g
    }

    /// The `data` of a signed termination as HR sends it (high risk: contained at once)
    /// Holds an admin role (Okta's USER_ADMIN, Entra's User Administrator), as OneLogin's Admins
    pub fn is_admin(&self) -> bool {
        self.onelogin_roles.iter().any(|r| r == "Admins")
    }

    /// The Okta groups: the department's (OKTA_GROUP) and, for one in five, a group imported
    /// from AD (APP_GROUP: Okta cannot change it, the plan asks a person)
    pub fn okta_groups(&self, index: usize) -> Vec<(String, GroupType)> {
        let mut g = vec![(format!("dept-{}", self.department), GroupType::OktaGroup)];
        if index.is_multiple_of(5) {
            g.push(("ad-staff".to_owned(), GroupType::AppGroup));
        }
        g
    }

    /// The Entra groups: the department's security group, the team's Microsoft 365 group, and
    /// the all-staff distribution list (only Exchange changes it: a person's step)
    pub fn entra_groups(&self) -> Vec<(String, GroupKind)> {
        let mut g = vec![(format!("sg-{}", self.department), GroupKind::Security)];
        if let Some(t) = self.team {
            g.push((format!("m365-{t}"), GroupKind::Unified));
        }
        g.push(("dl-all-staff".to_owned(), GroupKind::Distribution));
        g
    }

    pub fn termination(&self) -> Value {
        json!({
            "employee_id": self.employee_id,
            "email": self.email,
            "username": self.username,
            "reason": "terminated for cause",
            "involuntary": true,
            "high_risk": true,
        })
    }
}

/// The generated company
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Company {
    /// The seed it was made from
    pub seed: u64,
    /// Everyone, in employee id order
    pub people: Vec<Person>,
    /// IAM service users owned by people
    pub service_users: Vec<ServiceUser>,
}

/// What offboarding some leavers needs at least, per system: one lookup per leaver who has an
/// account there, and one write per thing removed now (contain, transfer and revoke; the delete
/// phase waits for the retention)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Floor {
    /// Reads
    pub reads: u64,
    /// Writes
    pub writes: u64,
    /// Leavers with an account there
    pub leavers: u64,
}

/// What one stand-in received since [`CompanyStack::mark`]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Received {
    /// Requests or operations that only read
    pub reads: u64,
    /// Requests or operations that may have changed something
    pub writes: u64,
    /// Answers that asked the client to slow down (403/429 rate limits)
    pub throttled: u64,
    /// Anything else worth saying (LDAP binds, token calls, pace)
    pub note: String,
}

impl Company {
    /// A company of `people` people made from `seed`: the same seed gives the same company
    pub fn generate(people: usize, seed: u64) -> Company {
        let mut rng = Rng(seed ^ 0x5EED_C0DE_0000_0001);
        let mut names: HashSet<String> = ["breakglass", "nobody", "admin"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        let mut emails: HashSet<String> = HashSet::new();
        let mut logins: HashSet<String> = HashSet::new();
        let mut out = Vec::with_capacity(people);
        for i in 0..people {
            let given = GIVEN[rng.below(GIVEN.len() as u64) as usize].to_owned();
            let mut surname = SURNAMES[rng.below(SURNAMES.len() as u64) as usize].to_owned();
            let roll = rng.below(100);
            let mut acc = 0;
            let mut department = DEPARTMENTS[0].0;
            for (d, w) in DEPARTMENTS {
                acc += w;
                if roll < acc {
                    department = d;
                    break;
                }
            }
            let team = (department == "engineering")
                .then(|| TEAMS[rng.below(TEAMS.len() as u64) as usize]);

            // Renamed (1 in 13): the old name stays in GitHub, IAM and OneLogin.
            let former_username = if i % 13 == 6 {
                let old = unique(&mut names, &format!("{}{surname}", initial(&given)));
                surname = SURNAMES[(rng.below(SURNAMES.len() as u64 - 1) as usize
                    + 1
                    + SURNAMES.iter().position(|s| *s == surname).unwrap_or(0))
                    % SURNAMES.len()]
                .to_owned();
                Some(old)
            } else {
                None
            };
            let username = unique(&mut names, &format!("{}{surname}", initial(&given)));
            let email = format!(
                "{}@example.org",
                unique(&mut emails, &format!("{given}.{surname}"))
            );
            let (uid_alias, mail_alias) = if i % 9 == 4 {
                let alias = unique(&mut names, &format!("{given}.{surname}"));
                let mail = format!("{}@example.org", unique(&mut emails, &alias));
                (Some(alias), Some(mail))
            } else {
                (None, None)
            };
            let vpn = rng.chance(50);

            let on_github = department == "engineering" || rng.chance(15);
            let github = on_github.then(|| {
                let base = former_username.as_deref().unwrap_or(&username);
                let wanted = match i % 3 {
                    0 => base.to_owned(),
                    1 => format!("{base}-acme"),
                    _ => format!("{}{}", capital(&given), capital(&surname)),
                };
                let login = unique_ci(&mut logins, &wanted);
                let outside = department == "engineering" && i % 23 == 11;
                GithubAccount {
                    admin: !outside && i % 25 == 7,
                    credentials: if !outside && rng.chance(30) { 1 } else { 0 },
                    direct_repo: (outside || rng.chance(10)).then(|| {
                        let t = team.unwrap_or(TEAMS[rng.below(TEAMS.len() as u64) as usize]);
                        format!("{t}-api")
                    }),
                    login,
                    outside,
                }
            });
            let wants_iam = match department {
                "engineering" => rng.chance(60),
                "ops" => rng.chance(80),
                _ => false,
            };
            let iam = wants_iam.then(|| {
                let two = rng.chance(50);
                IamAccount {
                    name: former_username.clone().unwrap_or_else(|| username.clone()),
                    active_keys: if two && rng.chance(66) { 2 } else { 1 },
                    inactive_key: two,
                    console: rng.chance(50),
                }
            });
            let iam = iam.map(|mut a| {
                if a.active_keys == 2 {
                    a.inactive_key = false;
                }
                a
            });
            let mut onelogin_roles = vec!["Employee".to_owned(), capital(department)];
            if i % 30 == 12 {
                onelogin_roles.push("Admins".to_owned());
            }
            let scim = rng.chance(70);
            out.push(Person {
                employee_id: format!("E{}", 10_000 + i),
                username,
                uid_alias,
                email,
                mail_alias,
                former_username,
                given,
                surname,
                department,
                team,
                vpn,
                github,
                iam,
                onelogin_roles,
                scim,
            });
        }

        // One service user per team (and one for ops), owned by someone there with an IAM user.
        let mut service_users = Vec::new();
        for (what, owner) in TEAMS
            .iter()
            .map(|t| {
                (
                    format!("svc-{t}-deploy"),
                    out.iter()
                        .position(|p| p.team == Some(*t) && p.iam.is_some()),
                )
            })
            .chain(std::iter::once((
                "svc-backup".to_owned(),
                out.iter()
                    .position(|p| p.department == "ops" && p.iam.is_some()),
            )))
        {
            if let Some(owner) = owner {
                service_users.push(ServiceUser { name: what, owner });
            }
        }
        Company {
            seed,
            people: out,
            service_users,
        }
    }

    /// `n` leavers (at most everyone), picked by the seed and spread over the company
    pub fn leavers(&self, n: usize) -> Vec<&Person> {
        let mut order: Vec<usize> = (0..self.people.len()).collect();
        let mut rng = Rng(self.seed ^ 0x1EA7_E500_0000_0002);
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        order.truncate(n);
        order.sort_unstable();
        order.into_iter().map(|i| &self.people[i]).collect()
    }

    /// The directory: every person, the groups, and the protected `breakglass`
    pub fn ldif(&self) -> String {
        let mut s = String::new();
        for (i, p) in self.people.iter().enumerate() {
            s += &format!(
                "dn: {}\nobjectClass: inetOrgPerson\nuid: {}\n",
                p.dn(),
                p.username
            );
            if let Some(a) = &p.uid_alias {
                s += &format!("uid: {a}\n");
            }
            s += &format!(
                "cn: {} {}\ngivenName: {}\nsn: {}\nmail: {}\n",
                capital(&p.given),
                capital(&p.surname),
                capital(&p.given),
                capital(&p.surname),
                p.email
            );
            if let Some(m) = &p.mail_alias {
                s += &format!("mail: {m}\n");
            }
            s += &format!(
                "employeeNumber: {}\nuserPassword: pw-{i}\n\n",
                p.employee_id
            );
        }
        s += &format!(
            "dn: uid=breakglass,{}\nobjectClass: inetOrgPerson\nuid: breakglass\ncn: Break Glass\nsn: Glass\nuserPassword: breakglass\n\n",
            Slapd::PEOPLE
        );
        let mut groups: BTreeMap<String, Vec<&Person>> = BTreeMap::new();
        for p in &self.people {
            for g in p.ldap_groups() {
                groups.entry(g).or_default().push(p);
            }
        }
        let admin = format!("uid=breakglass,{}", Slapd::PEOPLE);
        for (cn, members) in &groups {
            let dn = format!("cn={cn},{}", Slapd::GROUPS);
            if cn == "vpn" {
                s += &format!("dn: {dn}\nobjectClass: posixGroup\ncn: vpn\ngidNumber: 5000\n");
                for m in members {
                    s += &format!("memberUid: {}\n", m.username);
                }
            } else if cn.starts_with("team-") {
                s += &format!("dn: {dn}\nobjectClass: groupOfUniqueNames\ncn: {cn}\n");
                for m in members {
                    s += &format!("uniqueMember: {}\n", m.dn());
                }
            } else {
                s += &format!("dn: {dn}\nobjectClass: groupOfNames\ncn: {cn}\n");
                for m in members {
                    s += &format!("member: {}\n", m.dn());
                }
                if cn == "staff" {
                    s += &format!("member: {admin}\n");
                }
            }
            s += "\n";
        }
        s
    }

    /// The `logins` table for people GitHub's SAML identities do not map (the contractors)
    pub fn github_logins(&self) -> BTreeMap<String, String> {
        self.people
            .iter()
            .filter_map(|p| {
                p.github
                    .as_ref()
                    .filter(|g| g.outside)
                    .map(|g| (p.email.clone(), g.login.clone()))
            })
            .collect()
    }

    /// The service users owned by person `index`
    pub fn owned_by(&self, index: usize) -> impl Iterator<Item = &ServiceUser> {
        self.service_users.iter().filter(move |s| s.owner == index)
    }

    fn index_of(&self, p: &Person) -> usize {
        self.people
            .iter()
            .position(|q| q.employee_id == p.employee_id)
            .unwrap_or(usize::MAX)
    }

    /// The least each system needs for these leavers (see [`Floor`]), by system name
    /// (`ldap`, `github`, `aws-iam`, `onelogin`, `scim`)
    pub fn floor(&self, leavers: &[&Person]) -> BTreeMap<&'static str, Floor> {
        let mut f: BTreeMap<&'static str, Floor> = BTreeMap::new();
        let mut roles: BTreeSet<&str> = BTreeSet::new();
        for p in leavers {
            // LDAP: find the entry, lock it, one modify per group.
            let l = f.entry("ldap").or_default();
            l.leavers += 1;
            l.reads += 1;
            l.writes += 1 + p.ldap_groups().len() as u64;
            // GitHub: the membership (or the outside collaborator), each credential, a direct
            // grant of a member (an outside collaborator's grants go with that one call).
            if let Some(g) = &p.github {
                let e = f.entry("github").or_default();
                e.leavers += 1;
                e.reads += 1;
                e.writes += 1 + u64::from(g.credentials);
                if !g.outside && g.direct_repo.is_some() {
                    e.writes += 1;
                }
            }
            // IAM: quarantine, deactivate each active key, delete the console password; rotate
            // each owned service user's key (create the new one, deactivate the old one).
            let owned = self.owned_by(self.index_of(p)).count() as u64;
            if p.iam.is_some() || owned > 0 {
                let e = f.entry("aws-iam").or_default();
                e.leavers += 1;
                e.reads += 1;
                if let Some(a) = &p.iam {
                    e.writes += 1 + u64::from(a.active_keys) + u64::from(a.console);
                }
                e.writes += 2 * owned;
            }
            // OneLogin: suspend, sign out; roles go in one call per role for every leaver.
            let e = f.entry("onelogin").or_default();
            e.leavers += 1;
            e.reads += 1;
            e.writes += 2;
            roles.extend(p.onelogin_roles.iter().map(String::as_str));
            // SCIM: deactivate, one PATCH per group.
            if p.scim {
                let e = f.entry("scim").or_default();
                e.leavers += 1;
                e.reads += 1;
                e.writes += 2;
            }
        }
        if let Some(e) = f.get_mut("onelogin") {
            e.writes += roles.len() as u64;
        }
        for p in leavers {
            let i = self.index_of(p);
            // suspend, end sessions, reset factors, the department group, the direct app;
            // revoke grants when there are some, the admin role; an APP_GROUP is a person's
            let e = f.entry("okta").or_default();
            e.leavers += 1;
            e.reads += 1;
            e.writes += 5 + u64::from(i.is_multiple_of(3)) + u64::from(p.is_admin());
            // disable, revoke sessions, each changeable group, the licence, the admin role,
            // the sales app's role; the distribution list is a person's
            let e = f.entry("entra").or_default();
            e.leavers += 1;
            e.reads += 1;
            let changeable = p
                .entra_groups()
                .iter()
                .filter(|(_, k)| k.removable())
                .count();
            e.writes += 3
                + changeable as u64
                + u64::from(p.is_admin())
                + u64::from(p.department == "sales");
        }
        f
    }
}

/// Every stand-in, started and seeded with one company
#[derive(Debug)]
pub struct CompanyStack {
    /// The company they hold
    pub company: Company,
    /// The directory
    pub slapd: Slapd,
    /// AWS IAM
    pub moto: Moto,
    /// GitHub
    pub github: GithubStandin,
    /// OneLogin
    pub onelogin: OneloginStandin,
    /// The SCIM app (tenant [`SCIM_TENANT`])
    pub scim: Scim2Server,
    /// Okta, the identity provider
    pub okta: OktaStandin,
    /// Entra ID, where mail and Microsoft 365 live
    pub entra: EntraStandin,
    ldap_mark: OpCounts,
    github_mark: usize,
    scim_mark: usize,
}

impl CompanyStack {
    /// Starts slapd, moto and scim2-server (side by side) and the in-process GitHub, OneLogin, Okta
    /// and Entra ID
    /// stand-ins, seeds each with `company`, then [`CompanyStack::mark`]s
    pub fn start(company: Company) -> Result<CompanyStack, TestkitError> {
        let (slapd, moto, scim) = std::thread::scope(|s| {
            let slapd = s.spawn(|| -> Result<Slapd, TestkitError> {
                let slapd = Slapd::start()?;
                slapd.add_ldif(&company.ldif())?;
                Ok(slapd)
            });
            let moto = s.spawn(Moto::start);
            let scim = s.spawn(Scim2Server::start);
            (join(slapd), join(moto), join(scim))
        });
        let (slapd, moto, scim) = (slapd?, moto?, scim?);
        let github = GithubStandin::start()?;
        let onelogin = OneloginStandin::start()?;
        let okta = OktaStandin::start()?;
        let entra = EntraStandin::start()?;
        let mut stack = CompanyStack {
            company,
            slapd,
            moto,
            github,
            onelogin,
            scim,
            okta,
            entra,
            ldap_mark: OpCounts::default(),
            github_mark: 0,
            scim_mark: 0,
        };
        std::thread::scope(|s| {
            let iam = s.spawn(|| stack.seed_iam());
            let scim = s.spawn(|| stack.seed_scim());
            stack.seed_github();
            stack.seed_onelogin();
            stack.seed_okta();
            stack.seed_entra();
            join(iam).and(join(scim))
        })?;
        stack.mark()?;
        Ok(stack)
    }

    /// Starts counting anew: what each stand-in received before is left out of [`CompanyStack::counts`]
    pub fn mark(&mut self) -> Result<(), TestkitError> {
        self.ldap_mark = self.slapd.op_counts()?;
        self.moto.clear_recording()?;
        self.github_mark = self.github.requests().len();
        self.onelogin.clear_requests();
        self.okta.clear_requests();
        self.entra.clear_requests();
        self.scim_mark = self.scim.log().lines().count();
        Ok(())
    }

    fn seed_github(&self) {
        let c = &self.company;
        self.github.world(|w| {
            let o = w.org(GITHUB_ORG);
            for t in TEAMS {
                o.team(t);
                o.repo(&format!("{t}-api")).private(true);
                o.repo(&format!("{t}-app")).private(true);
            }
            o.repo("handbook");
            for p in &c.people {
                let Some(g) = &p.github else { continue };
                if g.outside {
                    if let Some(r) = &g.direct_repo {
                        o.repo(r).collaborator(&g.login, Permission::Push);
                    }
                    continue;
                }
                let role = if g.admin { Role::Admin } else { Role::Member };
                o.member(&g.login, role);
                o.saml_identity(&g.login, &p.email);
                if let Some(t) = p.team {
                    o.team(t).member(&g.login);
                }
                if let Some(r) = &g.direct_repo {
                    o.repo(r).collaborator(&g.login, Permission::Admin);
                }
                for k in 0..g.credentials {
                    let kind = if k % 2 == 0 {
                        CredentialType::PersonalAccessToken
                    } else {
                        CredentialType::SshKey
                    };
                    o.credential_authorization(&g.login, kind);
                }
            }
        });
    }

    fn seed_onelogin(&self) {
        let c = &self.company;
        self.onelogin.world(|w| {
            let mut roles: BTreeMap<String, u64> = BTreeMap::new();
            for p in &c.people {
                let id = w.user(&p.email, p.onelogin_username());
                w.set_external_id(id, &p.employee_id);
                for r in &p.onelogin_roles {
                    let rid = *roles.entry(r.clone()).or_insert_with(|| w.role(r));
                    w.assign(rid, id);
                }
            }
            let bg = w.user("breakglass@example.org", "breakglass");
            if let Some(admins) = roles.get("Admins") {
                w.assign(*admins, bg);
            }
        });
    }

    fn seed_okta(&self) {
        let c = &self.company;
        self.okta.world(|w| {
            let mut groups: BTreeMap<String, String> = BTreeMap::new();
            let slack = w.app("Slack");
            let jira = w.app("Jira");
            for (i, p) in c.people.iter().enumerate() {
                let id = w.user(&p.email, &p.email);
                if let Some(u) = w.get_mut(&id) {
                    u.employee_number = Some(p.employee_id.clone());
                    u.second_email = p.mail_alias.clone();
                }
                for (name, kind) in p.okta_groups(i) {
                    let gid = groups
                        .entry(name.clone())
                        .or_insert_with(|| w.group(&name, kind))
                        .clone();
                    w.add_member(&gid, &id);
                }
                w.assign_app(&slack, &id, "USER");
                if p.department == "engineering" {
                    // through a group: reported, not removed per user
                    w.assign_app(&jira, &id, "GROUP");
                }
                w.add_factor(&id, "push");
                if i.is_multiple_of(3) {
                    w.add_grant(&id);
                }
                if p.is_admin() {
                    w.grant_role(&id, "USER_ADMIN", "USER");
                }
            }
            let bg = w.user("breakglass@example.org", "breakglass@example.org");
            w.grant_role(&bg, "SUPER_ADMIN", "USER");
        });
    }

    fn seed_entra(&self) {
        let c = &self.company;
        self.entra.world(|w| {
            let mut groups: BTreeMap<String, String> = BTreeMap::new();
            let salesforce = w.service_principal("Salesforce");
            for p in &c.people {
                let id = w.user(&p.email);
                if let Some(u) = w.get_mut(&id) {
                    u.employee_id = Some(p.employee_id.clone());
                    u.display_name = format!("{} {}", capital(&p.given), capital(&p.surname));
                    if let Some(a) = &p.mail_alias {
                        u.proxy_addresses.push(format!("smtp:{a}"));
                    }
                }
                for (name, kind) in p.entra_groups() {
                    let gid = groups
                        .entry(name.clone())
                        .or_insert_with(|| w.group(&name, kind))
                        .clone();
                    w.add_member(&gid, &id);
                }
                w.assign_license(&id, SKU_E3);
                if p.department == "sales" {
                    w.assign_app(&id, &salesforce);
                }
                if p.is_admin() {
                    w.grant_role(&id, ROLE_USER_ADMIN, "User Administrator");
                }
            }
            w.user("breakglass@example.org");
        });
    }

    fn seed_iam(&self) -> Result<(), TestkitError> {
        let m = &self.moto;
        m.stop_recording()?;
        for g in ["developers", "operators"] {
            m.iam("CreateGroup", &[("GroupName", g)])?;
        }
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
        let user = |name: &str, tags: &[(&str, &str)]| -> Result<(), TestkitError> {
            let mut params = vec![("UserName".to_owned(), name.to_owned())];
            for (n, (k, v)) in tags.iter().enumerate() {
                params.push((format!("Tags.member.{}.Key", n + 1), (*k).to_owned()));
                params.push((format!("Tags.member.{}.Value", n + 1), (*v).to_owned()));
            }
            let refs: Vec<(&str, &str)> = params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            m.iam("CreateUser", &refs).map(drop)
        };
        let key = |name: &str, active: bool| -> Result<(), TestkitError> {
            let xml = m.iam("CreateAccessKey", &[("UserName", name)])?;
            if !active {
                let id = xml_field(&xml, "AccessKeyId").ok_or_else(|| TestkitError::Parse {
                    what: format!("moto's CreateAccessKey answer for {name}"),
                    reason: "expected <AccessKeyId>".into(),
                })?;
                m.iam(
                    "UpdateAccessKey",
                    &[
                        ("UserName", name),
                        ("AccessKeyId", &id),
                        ("Status", "Inactive"),
                    ],
                )?;
            }
            Ok(())
        };
        for p in &self.company.people {
            let Some(a) = &p.iam else { continue };
            user(
                &a.name,
                &[("email", &p.email), ("employee", &p.employee_id)],
            )?;
            for _ in 0..a.active_keys {
                key(&a.name, true)?;
            }
            if a.inactive_key {
                key(&a.name, false)?;
            }
            if a.console {
                m.iam(
                    "CreateLoginProfile",
                    &[("UserName", &a.name), ("Password", "Initial-Passw0rd!")],
                )?;
            }
            m.iam(
                "PutUserPolicy",
                &[
                    ("UserName", &a.name),
                    ("PolicyName", "workstation"),
                    ("PolicyDocument", policy),
                ],
            )?;
            m.iam(
                "AttachUserPolicy",
                &[("UserName", &a.name), ("PolicyArn", MANAGED_POLICY)],
            )?;
            let group = if p.department == "ops" {
                "operators"
            } else {
                "developers"
            };
            m.iam(
                "AddUserToGroup",
                &[("UserName", &a.name), ("GroupName", group)],
            )?;
        }
        for s in &self.company.service_users {
            let owner = &self.company.people[s.owner];
            user(&s.name, &[("owner", &owner.email)])?;
            key(&s.name, true)?;
        }
        user("breakglass", &[("email", "breakglass@example.org")])?;
        key("breakglass", true)?;
        m.clear_recording()?;
        m.start_recording()
    }

    fn scim_call(&self, method: &str, path: &str, body: &Value) -> Result<Value, TestkitError> {
        let auth = format!("Bearer {}", Scim2Server::TOKEN);
        let full = format!("/{SCIM_TENANT}/v2{path}");
        let what = format!("scim2-server {method} {full}");
        let r = http::request(
            self.scim.port(),
            method,
            &full,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/scim+json"),
            ],
            body.to_string().as_bytes(),
        )
        .map_err(|e| TestkitError::io(format!("send {what}"), e))?;
        let text = String::from_utf8_lossy(&r.body).into_owned();
        if !(200..300).contains(&r.status) {
            return Err(TestkitError::HttpStatus {
                request: what,
                status: r.status,
                expected: "2xx".into(),
                body: text,
            });
        }
        serde_json::from_str(&text).map_err(|e| TestkitError::Parse {
            what,
            reason: e.to_string(),
        })
    }

    fn seed_scim(&self) -> Result<(), TestkitError> {
        const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        let mut groups: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        for p in self.company.people.iter().filter(|p| p.scim) {
            let v = self.scim_call(
                "POST",
                "/Users",
                &json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
                    "userName": p.email,
                    "externalId": p.employee_id,
                    "active": true,
                    "displayName": format!("{} {}", capital(&p.given), capital(&p.surname)),
                    "emails": [{"value": p.email, "primary": true}],
                    ENTERPRISE: {"employeeNumber": p.employee_id},
                }),
            )?;
            let id = v["id"].as_str().unwrap_or_default().to_owned();
            groups
                .entry(p.department)
                .or_default()
                .push(json!({ "value": id }));
        }
        for (dept, members) in groups {
            self.scim_call(
                "POST",
                "/Groups",
                &json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": format!("wiki-{dept}"),
                    "members": members,
                }),
            )?;
        }
        Ok(())
    }

    /// The `[connectors.*]` tables for GitHub (`github`), AWS IAM (`aws`), OneLogin (`onelogin`)
    /// and the SCIM app (`wiki`), with their secrets written into files under `dir` (which must
    /// exist); `github_spacing_ms` is GitHub's `mutation_spacing_ms` (GitHub asks for 1000)
    pub fn connectors_toml(
        &self,
        dir: &Path,
        github_spacing_ms: u64,
    ) -> Result<String, TestkitError> {
        let secret = |name: &str, value: &str| -> Result<String, TestkitError> {
            let path = dir.join(name);
            std::fs::write(&path, format!("{value}\n"))
                .map_err(|e| TestkitError::io(format!("write {}", path.display()), e))?;
            Ok(toml_str(&path.display().to_string()))
        };
        let rotated = dir.join("rotated-keys");
        std::fs::create_dir_all(&rotated)
            .map_err(|e| TestkitError::io(format!("create {}", rotated.display()), e))?;
        let logins = self
            .company
            .github_logins()
            .iter()
            .map(|(e, l)| format!("{} = {}", toml_str(e), toml_str(l)))
            .collect::<Vec<_>>()
            .join(", ");
        let (ol_id, ol_secret) = self.onelogin.credentials();
        Ok(format!(
            r#"
[connectors.github]
kind = "github"
orgs = ["{org}"]
api_url = {gh_url}
token_file = {gh_token}
saml_sso = true
logins = {{ {logins} }}
mutation_spacing_ms = {github_spacing_ms}

[connectors.aws]
kind = "aws-iam"
endpoint_url = {moto}
region = "us-east-1"
access_key_id = "testing"
secret_access_key_file = {aws_secret}
match_tag = "email"
owner_tag = "owner"
rotation_destination = "file"
secrets_dir = {rotated}

[connectors.onelogin]
kind = "onelogin"
base_url = {ol_url}
client_id = {ol_id}
client_secret_file = {ol_secret}
match_by = "email"

[connectors.wiki]
kind = "scim"
base_url = {scim_url}
token_file = {scim_token}

[connectors.okta]
kind = "okta"
org_url = {okta_url}
token_file = {okta_token}

[connectors.entra]
kind = "entra"
tenant_id = {entra_tenant}
client_id = {entra_client}
client_secret_file = {entra_secret}
token_url = {entra_token_url}
graph_url = {entra_graph}
"#,
            org = GITHUB_ORG,
            gh_url = toml_str(&self.github.url()),
            gh_token = secret("github-token", &self.github.token())?,
            moto = toml_str(&self.moto.endpoint()),
            aws_secret = secret("aws-secret", "testing")?,
            rotated = toml_str(&rotated.display().to_string()),
            ol_url = toml_str(&self.onelogin.url()),
            ol_id = toml_str(&ol_id),
            ol_secret = secret("onelogin-secret", &ol_secret)?,
            scim_url = toml_str(&self.scim.tenant_url(SCIM_TENANT)),
            scim_token = secret("scim-token", Scim2Server::TOKEN)?,
            okta_url = toml_str(&self.okta.url()),
            okta_token = secret("okta-token", &self.okta.token())?,
            entra_tenant = toml_str(&self.entra.tenant_id()),
            entra_client = toml_str(&self.entra.client_id()),
            entra_secret = secret("entra-secret", &self.entra.client_secret())?,
            entra_token_url = toml_str(&self.entra.token_url()),
            entra_graph = toml_str(&self.entra.graph_url()),
        ))
    }

    /// The `[connectors.NAME]` table of the directory, binding as slapd's rootdn with the
    /// password written to `dir/ldap-password`
    pub fn ldap_toml(&self, name: &str, dir: &Path) -> Result<String, TestkitError> {
        let path = dir.join("ldap-password");
        std::fs::write(&path, format!("{}\n", Slapd::ROOT_PW))
            .map_err(|e| TestkitError::io(format!("write {}", path.display()), e))?;
        Ok(format!(
            r#"
[connectors.{name}]
kind = "ldap"
url = {url}
bind_dn = {root}
bind_password_file = {pw}
user_base_dn = {people}
group_base_dn = {groups}
user_object_class = "inetOrgPerson"
lock_method = "ppolicy"
group_placeholder_dn = {placeholder}
delete_entry = true
"#,
            url = toml_str(&self.slapd.url()),
            root = toml_str(Slapd::ROOT_DN),
            pw = toml_str(&path.display().to_string()),
            people = toml_str(Slapd::PEOPLE),
            groups = toml_str(Slapd::GROUPS),
            placeholder = toml_str(Slapd::PLACEHOLDER),
        ))
    }

    /// What each stand-in received since [`CompanyStack::mark`], by system name (as [`Company::floor`])
    pub fn counts(&self) -> Result<BTreeMap<&'static str, Received>, TestkitError> {
        let mut out = BTreeMap::new();

        let l = self.slapd.op_counts()?.since(&self.ldap_mark);
        out.insert(
            "ldap",
            Received {
                reads: l.search + l.compare,
                writes: l.mutations(),
                throttled: 0,
                note: format!(
                    "{} search, {} compare, {} modify, {} delete, {} modrdn, {} bind",
                    l.search, l.compare, l.modify, l.delete, l.modrdn, l.bind
                ),
            },
        );

        let gh = self.github.requests();
        let gh = gh.get(self.github_mark..).unwrap_or_default();
        let writes = gh.iter().filter(|r| r.mutation).count() as u64;
        let gap = self
            .github
            .min_mutation_gap()
            .map_or("none".to_owned(), |g| format!("{} ms", g.as_millis()));
        out.insert(
            "github",
            Received {
                reads: gh.len() as u64 - writes,
                writes,
                throttled: gh
                    .iter()
                    .filter(|r| r.status == 429 || r.status == 403)
                    .count() as u64,
                note: format!(
                    "closest mutations {gap} apart, {} requests during a ban",
                    self.github.pace_violations().len()
                ),
            },
        );

        let calls = self.moto.recorded()?;
        let c = count_calls(&calls);
        let by_action = calls.iter().fold(BTreeMap::<&str, u64>::new(), |mut m, c| {
            *m.entry(c.action.as_str()).or_default() += 1;
            m
        });
        out.insert(
            "aws-iam",
            Received {
                reads: c.reads as u64,
                writes: c.mutations as u64,
                throttled: 0,
                note: by_action
                    .iter()
                    .map(|(a, n)| format!("{a} {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            },
        );

        let ol = self.onelogin.requests();
        let token_calls = ol
            .iter()
            .filter(|r| r.token.as_deref().is_some_and(|t| t.starts_with("basic:")))
            .count() as u64;
        let writes = ol.iter().filter(|r| r.is_mutation()).count() as u64;
        out.insert(
            "onelogin",
            Received {
                reads: ol.len() as u64 - writes - token_calls,
                writes,
                throttled: ol.iter().filter(|r| r.status == 429).count() as u64,
                note: format!("{token_calls} token calls"),
            },
        );

        let log = self.scim.log();
        let mut s = Received::default();
        for line in log.lines().skip(self.scim_mark) {
            // 127.0.0.1 - - [05/Dec/2026 06:37:58] "POST /wiki/v2/Users HTTP/1.1" 201 521
            let Some((_, rest)) = line.split_once("] \"") else {
                continue;
            };
            let method = rest.split(' ').next().unwrap_or_default();
            let status = rest
                .split("\" ")
                .nth(1)
                .and_then(|t| t.split(' ').next())
                .unwrap_or_default();
            match method {
                "GET" | "HEAD" => s.reads += 1,
                "POST" | "PUT" | "PATCH" | "DELETE" => s.writes += 1,
                _ => continue,
            }
            if status == "429" {
                s.throttled += 1;
            }
        }
        out.insert("scim", s);

        let ok = self.okta.requests();
        let writes = ok.iter().filter(|r| r.is_mutation()).count() as u64;
        out.insert(
            "okta",
            Received {
                reads: ok.len() as u64 - writes,
                writes,
                throttled: ok.iter().filter(|r| r.status == 429).count() as u64,
                note: format!("{} requests before a reset", self.okta.early_requests()),
            },
        );

        let en = self.entra.requests();
        let writes = en.iter().filter(|r| r.is_mutation()).count() as u64;
        let token_calls = en.iter().filter(|r| !r.path.starts_with("/v1.0/")).count() as u64;
        let batches = en
            .iter()
            .filter(|r| r.method == "POST" && r.path.contains("batch") && !r.in_batch)
            .count();
        out.insert(
            "entra",
            Received {
                reads: en.len() as u64 - writes - token_calls - batches as u64,
                writes,
                throttled: en.iter().filter(|r| r.status == 429).count() as u64,
                note: format!(
                    "{token_calls} token calls, {batches} $batch round trips, {} requests before a Retry-After ended",
                    self.entra.early_requests()
                ),
            },
        );
        Ok(out)
    }
}

fn join<T>(
    h: std::thread::ScopedJoinHandle<'_, Result<T, TestkitError>>,
) -> Result<T, TestkitError> {
    h.join().unwrap_or_else(|_| {
        Err(TestkitError::io(
            "start a stand-in",
            std::io::Error::other("the starting thread panicked"),
        ))
    })
}

/// `base`, or `base2`, `base3`... whichever is not taken yet (and takes it)
fn unique(taken: &mut HashSet<String>, base: &str) -> String {
    let mut n = 1;
    loop {
        let candidate = if n == 1 {
            base.to_owned()
        } else {
            format!("{base}{n}")
        };
        if taken.insert(candidate.clone()) {
            return candidate;
        }
        n += 1;
    }
}

/// [`unique`] case-insensitively, keeping the spelling asked for
fn unique_ci(taken: &mut HashSet<String>, base: &str) -> String {
    let mut n = 1;
    loop {
        let candidate = if n == 1 {
            base.to_owned()
        } else {
            format!("{base}{n}")
        };
        if taken.insert(candidate.to_lowercase()) {
            return candidate;
        }
        n += 1;
    }
}

fn initial(s: &str) -> &str {
    s.get(..1).unwrap_or(s)
}

fn capital(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn toml_str(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

fn xml_field(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_makes_the_same_company_and_another_seed_another() {
        let a = Company::generate(300, 7);
        assert_eq!(a, Company::generate(300, 7));
        assert_ne!(a, Company::generate(300, 8));
        assert_eq!(a.leavers(20), Company::generate(300, 7).leavers(20));
    }

    #[test]
    fn identities_are_unique_and_the_world_is_odd() {
        let c = Company::generate(500, 1);
        let mut names = HashSet::new();
        let mut emails = HashSet::new();
        for p in &c.people {
            for n in std::iter::once(&p.username)
                .chain(&p.uid_alias)
                .chain(&p.former_username)
            {
                assert!(names.insert(n.clone()), "{n} is given twice");
            }
            for e in std::iter::once(&p.email).chain(&p.mail_alias) {
                assert!(emails.insert(e.clone()), "{e} is given twice");
            }
        }
        assert!(
            c.people.iter().any(|p| p.username.ends_with('2')),
            "reused names"
        );
        assert!(
            c.people.iter().any(|p| p.former_username.is_some()),
            "renamed people"
        );
        assert!(c.people.iter().any(|p| p.uid_alias.is_some()), "aliases");
        assert!(
            c.people
                .iter()
                .any(|p| p.github.as_ref().is_some_and(|g| g.outside)),
            "contractors"
        );
        assert!(!c.service_users.is_empty(), "service users");
        let logins: HashSet<String> = c
            .people
            .iter()
            .filter_map(|p| p.github.as_ref().map(|g| g.login.to_lowercase()))
            .collect();
        assert_eq!(
            logins.len(),
            c.people.iter().filter(|p| p.github.is_some()).count()
        );
    }

    #[test]
    fn leavers_are_distinct_and_the_floor_counts_each_system() {
        let c = Company::generate(200, 3);
        let l = c.leavers(50);
        assert_eq!(l.len(), 50);
        let ids: HashSet<&str> = l.iter().map(|p| p.employee_id.as_str()).collect();
        assert_eq!(ids.len(), 50);
        let f = c.floor(&l);
        assert_eq!(f["ldap"].leavers, 50);
        assert_eq!(f["onelogin"].leavers, 50);
        assert!(
            f["ldap"].writes >= 50 * 3,
            "lock + staff + department at least"
        );
        assert!(f["github"].writes >= f["github"].leavers);
    }
}
