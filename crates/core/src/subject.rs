use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The person leaving, with every identifier the connected systems know them by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Subject {
    /// The identifier the job was raised with (an employee id, a username or an email).
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Username per connector instance, where it differs from `id`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub usernames: BTreeMap<String, String>,
}

impl Subject {
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            employee_id: None,
            email: None,
            usernames: BTreeMap::new(),
        }
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
