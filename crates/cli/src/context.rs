use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use revoke_config::Config;
use revoke_engine::{Connectors, Executor, Registry};
use revoke_store::Store;

/// Every connector type revokectl knows.
pub fn registry() -> Registry {
    Registry::new()
        .with(revoke_connector_ldap::LdapFactory)
        .with(revoke_connector_github::GithubFactory)
        .with(revoke_connector_aws_iam::IamFactory)
        .with(revoke_connector_aws_organizations::OrganizationsFactory)
        .with(revoke_connector_scim::ScimFactory)
        .with(revoke_connector_onelogin::OneLoginFactory)
        .with(revoke_connector_google_workspace::GoogleFactory)
        .with(revoke_connector_okta::OktaFactory)
        .with(revoke_connector_entra::EntraFactory)
        .with(revoke_connector_http::HttpFactory)
        .with(revoke_connector_vault::VaultFactory)
        .with(revoke_connector_kubernetes::KubernetesFactory)
}

/// Loaded, validated configuration and the connectors built from it.
pub struct Context {
    pub config: Config,
    pub connectors: Connectors,
}

impl Context {
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let path: PathBuf = match path {
            Some(p) => p.to_path_buf(),
            None if Path::new("revoke.toml").exists() => PathBuf::from("revoke.toml"),
            None => bail!("no configuration: pass --config FILE, set REVOKE_CONFIG, or create ./revoke.toml (see config/revoke.example.toml)"),
        };
        let config = revoke_config::load(Some(&path))?;
        let registry = registry();
        registry.validate(&config)?;
        let connectors = registry.build(&config)?;
        Ok(Self { config, connectors })
    }

    pub async fn store(&self) -> anyhow::Result<Arc<dyn Store>> {
        let url = self.config.store_url();
        revoke_store::open(&url)
            .await
            .with_context(|| format!("cannot open the store at {}", redact_url(&url)))
    }

    /// The store if it exists already (a SQLite file that is not there yet is not created):
    /// for read-only commands that only look at what earlier runs recorded.
    pub async fn existing_store(&self) -> anyhow::Result<Option<Arc<dyn Store>>> {
        let url = self.config.store_url();
        if let Some(path) = url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or(path);
            if !Path::new(path).exists() {
                return Ok(None);
            }
        }
        Ok(Some(self.store().await?))
    }

    pub async fn executor(&self) -> anyhow::Result<Executor> {
        Ok(Executor::new(
            self.store().await?,
            self.connectors.clone(),
            &self.config,
            owner(),
        ))
    }
}

/// This process as an executor and actor: `revokectl@HOST:PID`.
pub fn owner() -> String {
    format!("revokectl@{}:{}", hostname(), std::process::id())
}

/// The person running the command, for `requested_by` and acknowledgements.
pub fn operator() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "localhost".into())
}

/// Hides a password in a database URL.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
