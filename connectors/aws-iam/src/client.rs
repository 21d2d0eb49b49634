//! The clients of one instance: IAM (and Secrets Manager for rotation) per account, built
//! lazily from the account set; a bound on concurrent reads.

use std::collections::HashMap;
use std::sync::Arc;

use revoke_aws::AccountSet;
use revoke_core::ConnectorError;
use tokio::sync::{Mutex, Semaphore};

use crate::config::IamConfig;

#[derive(Debug)]
pub struct Clients {
    pub accounts: AccountSet,
    iam: Mutex<HashMap<String, aws_sdk_iam::Client>>,
    secrets: Mutex<HashMap<String, aws_sdk_secretsmanager::Client>>,
    /// Bounds the reads in flight per instance (discovery fans out per user).
    pub reads: Arc<Semaphore>,
    /// Pin lookups in flight, joined by the actions of the same user that start meanwhile.
    pub lookups: crate::pin::InFlight,
}

impl Clients {
    pub async fn new(instance: &str, cfg: &IamConfig) -> Self {
        let base = revoke_aws::sdk_config(&cfg.access).await;
        Self {
            accounts: AccountSet::new(base, &cfg.access, &format!("revoked-{instance}")),
            iam: Mutex::new(HashMap::new()),
            secrets: Mutex::new(HashMap::new()),
            reads: Arc::new(Semaphore::new(cfg.read_concurrency)),
            lookups: crate::pin::InFlight::default(),
        }
    }

    /// Whether the user with this UserId was found gone from `account` already.
    pub fn is_gone(&self, account: &str, user_id: &str) -> bool {
        self.lookups.is_gone(account, user_id)
    }

    /// Remembers that the user with this UserId is gone from `account` for good.
    pub fn mark_gone(&self, account: &str, user_id: &str) {
        self.lookups.mark_gone(account, user_id);
    }

    pub async fn iam(&self, account: &str) -> Result<aws_sdk_iam::Client, ConnectorError> {
        if let Some(c) = self.iam.lock().await.get(account) {
            return Ok(c.clone());
        }
        let conf = self.accounts.config_for(account).await?;
        let c = aws_sdk_iam::Client::new(&conf);
        self.iam.lock().await.insert(account.to_string(), c.clone());
        Ok(c)
    }

    pub async fn secrets(
        &self,
        account: &str,
    ) -> Result<aws_sdk_secretsmanager::Client, ConnectorError> {
        if let Some(c) = self.secrets.lock().await.get(account) {
            return Ok(c.clone());
        }
        let conf = self.accounts.config_for(account).await?;
        let c = aws_sdk_secretsmanager::Client::new(&conf);
        self.secrets
            .lock()
            .await
            .insert(account.to_string(), c.clone());
        Ok(c)
    }
}

/// What apply, rotation and destinations share: the clients, the config, the instance name.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub clients: &'a Clients,
    pub cfg: &'a IamConfig,
    pub instance: &'a str,
}
