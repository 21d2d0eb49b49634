//! The accounts a connector acts in, and a config per account through sts AssumeRole.

use std::collections::HashMap;
use std::sync::Arc;

use aws_config::sts::AssumeRoleProvider;
use aws_config::SdkConfig;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_organizations::types::AccountStatus;
use revoke_core::ConnectorError;
use tokio::sync::{Mutex, OnceCell};
use tracing::debug;

use crate::fault::{classify, Fault};
use crate::{AccessConfig, AccountSelection};

/// The accounts of one connector instance and their configs. Cheap to share; each account's
/// assumed-role credentials are cached and refreshed by the SDK's identity cache.
#[derive(Debug)]
pub struct AccountSet {
    base: SdkConfig,
    selection: AccountSelection,
    role_name: String,
    external_id: Option<String>,
    session_name: String,
    own: OnceCell<String>,
    configs: Mutex<HashMap<String, SdkConfig>>,
}

impl AccountSet {
    /// `session_name` shows in the member accounts' CloudTrail as who acted (`revoked-<instance>`).
    pub fn new(base: SdkConfig, access: &AccessConfig, session_name: &str) -> Self {
        Self {
            base,
            selection: access.accounts.clone(),
            role_name: access.role_name.clone(),
            external_id: access.external_id.clone(),
            session_name: session_name.chars().take(64).collect(),
            own: OnceCell::new(),
            configs: Mutex::new(HashMap::new()),
        }
    }

    /// The config of the configured credentials themselves.
    pub fn base(&self) -> &SdkConfig {
        &self.base
    }

    /// The account of the configured credentials (sts GetCallerIdentity, asked once).
    pub async fn own_account(&self) -> Result<String, ConnectorError> {
        self.own
            .get_or_try_init(|| async {
                let sts = aws_sdk_sts::Client::new(&self.base);
                let out = sts
                    .get_caller_identity()
                    .send()
                    .await
                    .map_err(|e| classify("sts:GetCallerIdentity", &Fault::of(&e)))?;
                out.account.ok_or_else(|| {
                    ConnectorError::permanent(
                        "no_account",
                        "sts:GetCallerIdentity answered without an account",
                    )
                })
            })
            .await
            .cloned()
    }

    /// The accounts to act in, sorted: the configured list, every ACTIVE member of the
    /// organization, or the own account.
    pub async fn accounts(&self) -> Result<Vec<String>, ConnectorError> {
        let mut ids = match &self.selection {
            AccountSelection::Own => vec![self.own_account().await?],
            AccountSelection::Listed(ids) => ids.clone(),
            AccountSelection::Organization => {
                let org = aws_sdk_organizations::Client::new(&self.base);
                let mut ids = Vec::new();
                let mut next: Option<String> = None;
                loop {
                    let out = org
                        .list_accounts()
                        .set_next_token(next.take())
                        .send()
                        .await
                        .map_err(|e| classify("organizations:ListAccounts", &Fault::of(&e)))?;
                    for a in out.accounts() {
                        if a.status() == Some(&AccountStatus::Active) {
                            if let Some(id) = a.id() {
                                ids.push(id.to_string());
                            }
                        }
                    }
                    match out.next_token {
                        Some(t) if !t.is_empty() => next = Some(t),
                        _ => break,
                    }
                }
                ids
            }
        };
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// The config to act in `account` with: the base config for the own account, else one
    /// whose credentials come from AssumeRole into `role_name` there. No request is sent until
    /// a client built from it sends one.
    pub async fn config_for(&self, account: &str) -> Result<SdkConfig, ConnectorError> {
        if matches!(self.selection, AccountSelection::Own) || self.own_account().await? == account {
            return Ok(self.base.clone());
        }
        let mut configs = self.configs.lock().await;
        if let Some(c) = configs.get(account) {
            return Ok(c.clone());
        }
        let arn = format!("arn:aws:iam::{account}:role/{}", self.role_name);
        debug!(account, role = %arn, "assuming role");
        let mut b = AssumeRoleProvider::builder(arn).session_name(&self.session_name);
        if let Some(x) = &self.external_id {
            b = b.external_id(x);
        }
        let provider = b.configure(&self.base).build().await;
        let conf = self
            .base
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(provider))
            .build();
        configs.insert(account.to_string(), conf.clone());
        Ok(conf)
    }
}

/// The shared handle connectors keep.
pub type SharedAccounts = Arc<AccountSet>;
