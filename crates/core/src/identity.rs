//! Accounts and their identities: what an action is pinned to, and what a protected account is
//! recognised by.
//!
//! Discovery reports every account it found for a subject as an [`Account`]: the immutable id the
//! system gives it (which never names another account, whatever is renamed or reused) and every
//! identifier it answers to. The planner checks the protected list against all of them and pins
//! each action to its account's immutable id ([`AccountPin`]); at apply and verify time the
//! connector resolves that id, and touches nothing if the planned name now names someone else.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{dn, ConnectorError};

/// One account (or other principal: an invitation, a member account) a connector found for a
/// subject, with every identifier it answers to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Account {
    /// The immutable identity actions on this account are pinned to: an LDAP entryUUID, an IAM
    /// UserId, a GitHub numeric user id, a SCIM id. It never comes to name another account.
    pub id: String,
    /// What `id` is, in the system's own words (`entryUUID`, `UserId`, `user id`).
    pub id_kind: String,
    /// How people name the account: a DN, `account/user`, a login.
    pub name: String,
    /// Every identifier the account answers to, as the system holds them: usernames and every
    /// alias value, emails, employee id, DN, ARN, numeric ids. `id` and `name` need not repeat.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub identifiers: BTreeSet<String>,
    /// Why this account belongs to the subject, for the plan's reader (`uid = ivan`,
    /// `tag owner = dana@example.org`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub matched_by: String,
}

impl Account {
    pub fn new(id: impl Into<String>, id_kind: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            id_kind: id_kind.into(),
            name: name.into(),
            identifiers: BTreeSet::new(),
            matched_by: String::new(),
        }
    }

    /// Adds identifiers the account answers to; empty values are dropped.
    pub fn answers_to<I, S>(mut self, identifiers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.identifiers.extend(
            identifiers
                .into_iter()
                .map(Into::into)
                .filter(|s: &String| !s.trim().is_empty()),
        );
        self
    }

    pub fn matched_by(mut self, why: impl Into<String>) -> Self {
        self.matched_by = why.into();
        self
    }

    /// Every identifier, with the id and the name.
    pub fn all_identifiers(&self) -> impl Iterator<Item = &str> {
        [self.id.as_str(), self.name.as_str()]
            .into_iter()
            .chain(self.identifiers.iter().map(String::as_str))
    }

    /// The pin an action on this account carries.
    pub fn pin(&self) -> AccountPin {
        AccountPin {
            id: self.id.clone(),
            id_kind: self.id_kind.clone(),
            name: self.name.clone(),
        }
    }
}

/// The account an action is pinned to: the immutable id discovery saw, and the name it had then.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AccountPin {
    pub id: String,
    pub id_kind: String,
    pub name: String,
}

impl AccountPin {
    /// The permanent `identity_changed` error: the planned name now names `now`, another account
    /// than the one pinned; nothing was sent.
    pub fn changed(&self, now: impl std::fmt::Display) -> ConnectorError {
        ConnectorError::permanent(
            "identity_changed",
            format!(
                "{} was planned as {} {}, but now names {now}; nothing was sent (plan again to act on the account as it is now)",
                self.name, self.id_kind, self.id
            ),
        )
    }
}

impl std::fmt::Display for AccountPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({} {})", self.name, self.id_kind, self.id)
    }
}

/// The one spelling two identifiers are compared in: trimmed and lowercased, and a DN in its
/// canonical RFC 4514 form (`UID=a, OU=x` and `uid=a,ou=x` are one identifier).
pub fn canonical_identifier(s: &str) -> String {
    let t = s.trim();
    dn::canonical(t).unwrap_or_else(|| t.to_lowercase())
}

/// The protected accounts from configuration, in canonical spelling: an account is protected
/// when any identifier it answers to is listed, in whatever form it was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Protected {
    /// canonical -> as written in the configuration
    listed: BTreeMap<String, String>,
}

impl Protected {
    pub fn new<I, S>(entries: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self {
            listed: entries
                .into_iter()
                .filter(|e| !e.as_ref().trim().is_empty())
                .map(|e| (canonical_identifier(e.as_ref()), e.as_ref().to_string()))
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.listed.is_empty()
    }

    /// The configured entry `identifier` matches, if any.
    pub fn entry_for(&self, identifier: &str) -> Option<&str> {
        self.listed
            .get(&canonical_identifier(identifier))
            .map(String::as_str)
    }

    /// Why `account` is protected: (the identifier it answers to, the configured entry).
    pub fn match_account<'a>(&'a self, account: &'a Account) -> Option<(&'a str, &'a str)> {
        account
            .all_identifiers()
            .find_map(|i| self.entry_for(i).map(|e| (i, e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin() -> Account {
        Account::new(
            "5f3c-uuid",
            "entryUUID",
            "uid=admin,ou=admins,ou=people,dc=acme,dc=test",
        )
        .answers_to(["admin", "root@acme.test", "1", ""])
    }

    #[test]
    fn a_protected_account_is_known_by_every_identifier() {
        let a = admin();
        assert!(!a.identifiers.contains(""));
        for entry in [
            "admin",
            "ADMIN",
            "Root@Acme.Test",
            "1",
            "5F3C-UUID",
            "UID=admin, OU=admins, OU=people, DC=acme, DC=test",
        ] {
            let p = Protected::new([entry]);
            assert_eq!(
                p.match_account(&a).map(|(_, e)| e),
                Some(entry),
                "{entry} protects the account"
            );
        }
        for entry in [
            "admins",
            "root",
            "uid=admin,ou=people,dc=acme,dc=test",
            "11",
        ] {
            assert_eq!(Protected::new([entry]).match_account(&a), None, "{entry}");
        }
        assert!(Protected::new(["", "  "]).is_empty());
    }

    #[test]
    fn identity_changed_names_both_accounts() {
        let e = admin()
            .pin()
            .changed("entryUUID 77aa (uid=admin,ou=sales,dc=acme,dc=test)");
        assert_eq!(e.code, "identity_changed");
        assert!(!e.is_retryable());
        assert!(e.message.contains("5f3c-uuid"), "{}", e.message);
        assert!(e.message.contains("77aa"), "{}", e.message);
    }
}
