use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Who a job is about: a person leaving, with every identifier the connected systems know
/// them by, or a departing client, named by its email domain ([`Subject::client`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Subject {
    /// The identifier the job was raised with (an employee id, a username or an email); for a
    /// client, its domain.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Username per connector instance, where it differs from `id`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub usernames: BTreeMap<String, String>,
    /// Set when the job is about a departing client rather than a person: every share,
    /// collaborator and account of this domain (and its subdomains) is what the job removes.
    /// Only connectors that [take client jobs](crate::Connector::takes_client_jobs) see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_domain: Option<ClientDomain>,
}

impl Subject {
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            employee_id: None,
            email: None,
            usernames: BTreeMap::new(),
            client_domain: None,
        }
    }

    /// A departing client: the job removes what the domain's addresses can reach.
    pub fn client(domain: ClientDomain) -> Self {
        let mut s = Self::new(domain.as_str());
        s.client_domain = Some(domain);
        s
    }

    /// The client's domain when this is a client job.
    pub fn client_domain(&self) -> Option<&ClientDomain> {
        self.client_domain.as_ref()
    }

    /// The name this subject has in one connector instance.
    pub fn username_for(&self, instance: &str) -> &str {
        self.usernames
            .get(instance)
            .map(String::as_str)
            .unwrap_or(&self.id)
    }

    /// Every identifier of the subject, for matching against protected accounts.
    pub fn identifiers(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.id.as_str())
            .chain(self.employee_id.as_deref())
            .chain(self.email.as_deref())
            .chain(self.usernames.values().map(String::as_str))
    }
}

/// A departing client's email domain: lowercase ASCII labels (`clientco.com`, IDNs in their
/// `xn--` form), checked where it enters revoked so no connector sees `*`, `../x` or a quote.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientDomain(String);

/// Why a client domain was refused; the message says what was expected and what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("client domain: expected {expected}, found {found:?}")]
pub struct ClientDomainError {
    pub expected: &'static str,
    pub found: String,
}

impl ClientDomain {
    /// Checks and lowercases a domain name. A trailing dot is dropped; anything but ASCII
    /// letters, digits, hyphens and dots is refused, as are domains with a single label.
    pub fn parse(raw: &str) -> Result<Self, ClientDomainError> {
        let err = |expected| ClientDomainError {
            expected,
            found: raw.chars().take(64).collect(),
        };
        let d = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
        if d.is_empty() || d.len() > 253 {
            return Err(err("a domain name of 1 to 253 characters"));
        }
        if !d
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            return Err(err(
                "only ASCII letters, digits, '-' and '.' (write an IDN in its xn-- form)",
            ));
        }
        let labels: Vec<&str> = d.split('.').collect();
        if labels.len() < 2 {
            return Err(err("at least two labels, like clientco.com"));
        }
        for l in &labels {
            if l.is_empty() || l.len() > 63 {
                return Err(err("labels of 1 to 63 characters between dots"));
            }
            if l.starts_with('-') || l.ends_with('-') {
                return Err(err("labels that neither start nor end with '-'"));
            }
        }
        if labels
            .last()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(err("a domain name, not an IP address"));
        }
        Ok(Self(d))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `domain` is this domain or one of its subdomains (`eu.clientco.com`), ignoring
    /// case and a trailing dot; `notclientco.com` and `clientco.com.evil.com` are not.
    pub fn matches_domain(&self, domain: &str) -> bool {
        let d = domain.strip_suffix('.').unwrap_or(domain);
        if d.len() < self.0.len() {
            return false;
        }
        let (head, tail) = d.split_at(d.len() - self.0.len());
        tail.eq_ignore_ascii_case(&self.0) && (head.is_empty() || head.ends_with('.'))
    }

    /// Whether an email address is at this domain or one of its subdomains: the part after its
    /// last `@`. An address without `@` matches nothing.
    pub fn matches_email(&self, address: &str) -> bool {
        match address.rsplit_once('@') {
            Some((local, domain)) if !local.is_empty() => self.matches_domain(domain),
            _ => false,
        }
    }
}

impl TryFrom<String> for ClientDomain {
    type Error = ClientDomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ClientDomain> for String {
    fn from(d: ClientDomain) -> String {
        d.0
    }
}

impl fmt::Display for ClientDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_domains_are_checked_and_lowercased() {
        assert_eq!(
            ClientDomain::parse("ClientCo.COM.")
                .expect("test value")
                .as_str(),
            "clientco.com"
        );
        assert_eq!(
            ClientDomain::parse("xn--bcher-kva.example")
                .expect("test value")
                .as_str(),
            "xn--bcher-kva.example"
        );
        for bad in [
            "",
            "*",
            "com",
            "../x",
            "a..b",
            ".clientco.com",
            "client co.com",
            "*.clientco.com",
            "clientco.com/x",
            "\"clientco.com",
            "-a.com",
            "a-.com",
            "10.0.0.1",
            "bücher.de",
            "clientco.com@x",
            "a\u{200b}.com",
        ] {
            let e = ClientDomain::parse(bad).expect_err(bad);
            assert!(e.to_string().starts_with("client domain: expected "), "{e}");
        }
        assert!(ClientDomain::parse(&format!("{}.com", "a".repeat(64))).is_err());
    }

    #[test]
    fn a_client_domain_matches_itself_and_its_subdomains_only() {
        let d = ClientDomain::parse("clientco.test").expect("test value");
        for yes in [
            "a@clientco.test",
            "A@ClientCo.Test",
            "x@eu.clientco.test",
            "a@clientco.test.",
        ] {
            assert!(d.matches_email(yes), "{yes}");
        }
        for no in [
            "a@notclientco.test",
            "a@clientco.test.evil.test",
            "clientco.test",
            "@clientco.test",
            "a@clientco.tes",
            "a@xclientco.test",
        ] {
            assert!(!d.matches_email(no), "{no}");
        }
        assert!(d.matches_domain("clientco.test") && d.matches_domain("EU.clientco.test"));
        assert!(!d.matches_domain("notclientco.test"));
    }

    #[test]
    fn a_client_subject_round_trips_and_a_forged_domain_does_not_load() {
        let s = Subject::client(ClientDomain::parse("clientco.test").expect("test value"));
        assert_eq!(s.id, "clientco.test");
        let json = serde_json::to_string(&s).expect("test value");
        assert_eq!(
            serde_json::from_str::<Subject>(&json).expect("test value"),
            s
        );
        let person: Subject = serde_json::from_str(r#"{"id":"alice"}"#).expect("test value");
        assert_eq!(person.client_domain(), None);
        let forged = r#"{"id":"x","client_domain":"*)(uid=*"}"#;
        assert!(serde_json::from_str::<Subject>(forged).is_err());
    }
}
