use std::collections::BTreeSet;

use revoke_core::{ConfigIssue, ConnectorFactory, MANUAL_CONNECTOR};

use crate::load::is_secret_key;
use crate::{Config, ConfigError, ConnectorSection};

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

impl Config {
    /// Checks everything without I/O: every issue names its key, what was expected and what was found.
    pub fn validate(&self, factories: &[&dyn ConnectorFactory]) -> Result<(), ConfigError> {
        let mut issues = Vec::new();
        let url = self.store_url();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres:")
            || url.starts_with("postgresql:"))
        {
            issues.push(ConfigIssue::new(
                "store.url",
                format!(
                    "expected sqlite://PATH or postgres://..., found {:?}",
                    url.split(':').next().unwrap_or("")
                ),
            ));
        }
        let r = &self.executor.retry;
        if r.base_ms == 0 {
            issues.push(ConfigIssue::new(
                "executor.retry.base_ms",
                "expected a positive number of milliseconds, found 0",
            ));
        }
        if r.cap_ms < r.base_ms {
            issues.push(ConfigIssue::new(
                "executor.retry.cap_ms",
                format!(
                    "expected at least base_ms ({}), found {}",
                    r.base_ms, r.cap_ms
                ),
            ));
        }
        if r.max_attempts == 0 {
            issues.push(ConfigIssue::new(
                "executor.retry.max_attempts",
                "expected at least 1, found 0",
            ));
        }
        if self.executor.lease_secs == 0 {
            issues.push(ConfigIssue::new(
                "executor.lease_secs",
                "expected at least 1, found 0",
            ));
        }
        if self.executor.concurrency == 0 {
            issues.push(ConfigIssue::new(
                "executor.concurrency",
                "expected at least 1, found 0",
            ));
        }
        if self.executor.action_timeout_secs == 0 {
            issues.push(ConfigIssue::new(
                "executor.action_timeout_secs",
                "expected at least 1, found 0",
            ));
        }
        for (name, section) in &self.connectors {
            let path = format!("connectors.{name}");
            if !is_name(name) || name == MANUAL_CONNECTOR {
                issues.push(ConfigIssue::new(
                    &path,
                    format!("expected an instance name of lowercase letters, digits, '-' and '_' other than \"manual\", found {name:?}"),
                ));
            }
            if section.concurrency == Some(0) {
                issues.push(ConfigIssue::new(
                    format!("{path}.concurrency"),
                    "expected at least 1, found 0",
                ));
            }
            match factories.iter().find(|f| f.kind() == section.kind) {
                None => {
                    let known: Vec<&str> = factories.iter().map(|f| f.kind()).collect();
                    issues.push(ConfigIssue::new(
                        format!("{path}.kind"),
                        format!(
                            "expected one of {}, found {:?}",
                            known.join(", "),
                            section.kind
                        ),
                    ));
                }
                Some(f) => {
                    if let Err(mut found) =
                        f.validate(&path, &serde_json::Value::Object(section.params.clone()))
                    {
                        issues.append(&mut found);
                    }
                }
            }
        }
        for (pname, p) in &self.policies {
            let path = format!("policies.{pname}");
            for c in p.connectors.iter().flatten() {
                if !self.connectors.contains_key(c) {
                    issues.push(ConfigIssue::new(
                        format!("{path}.connectors"),
                        format!(
                            "expected names of configured connectors ({}), found {c:?}",
                            self.connectors
                                .keys()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
            let mut seen = BTreeSet::new();
            for (i, step) in p.manual.iter().enumerate() {
                let sp = format!("{path}.manual[{i}]");
                if !is_name(&step.id) {
                    issues.push(ConfigIssue::new(
                        format!("{sp}.id"),
                        format!(
                            "expected lowercase letters, digits, '-' and '_', found {:?}",
                            step.id
                        ),
                    ));
                }
                if !seen.insert(step.id.as_str()) {
                    issues.push(ConfigIssue::new(
                        format!("{sp}.id"),
                        format!("expected a unique id, found {:?} twice", step.id),
                    ));
                }
                if step.title.trim().is_empty() {
                    issues.push(ConfigIssue::new(
                        format!("{sp}.title"),
                        "expected a title, found an empty string",
                    ));
                }
            }
        }
        for (i, a) in self.protected.accounts.iter().enumerate() {
            if a.trim().is_empty() {
                issues.push(ConfigIssue::new(
                    format!("protected.accounts[{i}]"),
                    "expected an identifier, found an empty string",
                ));
            }
        }
        if issues.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(issues))
        }
    }
}

impl std::fmt::Debug for ConnectorSection {
    /// Secrets never reach a log: secret-looking keys are shown redacted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted: serde_json::Map<String, serde_json::Value> = self
            .params
            .iter()
            .map(|(k, v)| {
                let v = if is_secret_key(k) {
                    serde_json::Value::String("[redacted]".into())
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .collect();
        f.debug_struct("ConnectorSection")
            .field("kind", &self.kind)
            .field("concurrency", &self.concurrency)
            .field("params", &redacted)
            .finish()
    }
}
