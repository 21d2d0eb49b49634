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
        for (i, d) in self.protected.domains.iter().enumerate() {
            if let Err(e) = revoke_core::ClientDomain::parse(d.trim()) {
                issues.push(ConfigIssue::new(
                    format!("protected.domains[{i}]"),
                    format!("expected a domain name, found {d:?} ({})", e.expected),
                ));
            }
        }
        issues.extend(self.daemon_issues());
        if issues.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(issues))
        }
    }

    /// The daemon's own sections (intake kinds are validated by the intake crate).
    fn daemon_issues(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.daemon.listen.parse::<std::net::SocketAddr>().is_err() {
            issues.push(ConfigIssue::new(
                "daemon.listen",
                format!(
                    "expected HOST:PORT with an IP address, found {:?}",
                    self.daemon.listen
                ),
            ));
        }
        if self.daemon.workers == 0 {
            issues.push(ConfigIssue::new(
                "daemon.workers",
                "expected at least 1, found 0",
            ));
        }
        if self.daemon.poll_ms == 0 {
            issues.push(ConfigIssue::new(
                "daemon.poll_ms",
                "expected at least 1, found 0",
            ));
        }
        let bounds = [
            (
                "daemon.header_read_timeout_secs",
                self.daemon.header_read_timeout_secs,
                crate::model::MAX_HEADER_READ_TIMEOUT_SECS,
            ),
            (
                "daemon.body_read_timeout_secs",
                self.daemon.body_read_timeout_secs,
                crate::model::MAX_BODY_READ_TIMEOUT_SECS,
            ),
            (
                "daemon.max_connections",
                self.daemon.max_connections as u64,
                crate::model::MAX_CONNECTIONS as u64,
            ),
        ];
        for (key, value, max) in bounds {
            if value == 0 || value > max {
                issues.push(ConfigIssue::new(
                    key,
                    format!("expected 1 to {max}, found {value}"),
                ));
            }
        }
        for (name, t) in &self.api.tokens {
            let ok = t.sha256.len() == 64 && t.sha256.chars().all(|c| c.is_ascii_hexdigit());
            if !ok {
                issues.push(ConfigIssue::new(
                    format!("api.tokens.{name}.sha256"),
                    format!(
                        "expected the 64 hex digits of the token's SHA-256 (revokectl token new), found {} characters",
                        t.sha256.len()
                    ),
                ));
            }
        }
        for (name, section) in &self.intake {
            if !is_name(name) {
                issues.push(ConfigIssue::new(
                    format!("intake.{name}"),
                    format!("expected a source name of lowercase letters, digits, '-' and '_', found {name:?}"),
                ));
            }
            if let Some(p) = &section.policy {
                if self.policy(p).is_none() {
                    issues.push(ConfigIssue::new(
                        format!("intake.{name}.policy"),
                        format!(
                            "expected a configured policy ({}), found {p:?}",
                            self.policies.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
        }
        if self.guard.max_jobs > 0 && self.guard.window_secs == 0 {
            issues.push(ConfigIssue::new(
                "guard.window_secs",
                "expected at least 1 while guard.max_jobs is set, found 0",
            ));
        }
        if self.evidence.sla_hours == 0 {
            issues.push(ConfigIssue::new(
                "evidence.sla_hours",
                "expected at least 1, found 0",
            ));
        }
        issues
    }
}

impl std::fmt::Debug for crate::IntakeSection {
    /// Secrets never reach a log: secret-looking keys are shown redacted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntakeSection")
            .field("kind", &self.kind)
            .field("policy", &self.policy)
            .field("params", &redacted(&self.params))
            .finish()
    }
}

/// `params` with the values of secret-looking keys replaced.
fn redacted(
    params: &serde_json::Map<String, serde_json::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    params
        .iter()
        .map(|(k, v)| {
            let v = if is_secret_key(k) {
                serde_json::Value::String("[redacted]".into())
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect()
}

impl std::fmt::Debug for ConnectorSection {
    /// Secrets never reach a log: secret-looking keys are shown redacted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorSection")
            .field("kind", &self.kind)
            .field("concurrency", &self.concurrency)
            .field("params", &redacted(&self.params))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use crate::{load_str, ConfigError};

    fn issues(toml: &str) -> Vec<String> {
        let c = load_str(toml).expect("loads");
        match c.validate(&[]) {
            Ok(()) => Vec::new(),
            Err(ConfigError::Invalid(v)) => v.into_iter().map(|i| i.to_string()).collect(),
            Err(other) => panic!("expected invalid configuration, found {other}"),
        }
    }

    #[test]
    fn daemon_http_bounds_have_defaults_and_refuse_zero_or_absurd_values() {
        let c = load_str("").expect("loads");
        assert_eq!(c.daemon.header_read_timeout_secs, 10);
        assert_eq!(c.daemon.body_read_timeout_secs, 30);
        assert_eq!(c.daemon.max_connections, 1024);
        assert!(issues("").is_empty());
        assert_eq!(
            issues(
                "[daemon]\nheader_read_timeout_secs = 0\nbody_read_timeout_secs = 86400\nmax_connections = 0\n"
            ),
            vec![
                "daemon.header_read_timeout_secs: expected 1 to 300, found 0",
                "daemon.body_read_timeout_secs: expected 1 to 3600, found 86400",
                "daemon.max_connections: expected 1 to 65536, found 0",
            ]
        );
        assert_eq!(
            issues("[daemon]\nheader_read_timeout_secs = 301\nmax_connections = 65537\n"),
            vec![
                "daemon.header_read_timeout_secs: expected 1 to 300, found 301",
                "daemon.max_connections: expected 1 to 65536, found 65537",
            ]
        );
    }
}
