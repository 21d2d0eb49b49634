//! The Organizations client of one instance: built on first use (building the connector makes no
//! call), SDK retries off, each failure classified where it happens.

use std::collections::BTreeMap;

use aws_sdk_organizations::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_organizations::types::{Account, Tag};
use revoke_aws::{sdk_config, AccessConfig, Fault};
use revoke_core::ConnectorError;
use tokio::sync::OnceCell;
use tracing::debug;

use crate::classify::classify;

type Sdk = aws_sdk_organizations::Client;

/// The organization the credentials belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    pub id: String,
    pub management_account_id: String,
    pub all_features: bool,
}

/// An account as the connector uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    pub id: String,
    pub name: String,
    pub email: String,
    /// `arn:aws:organizations::MGMT:account/o-ORG/ID`, one more identifier it answers to.
    pub arn: String,
    /// `state` where AWS sends it (the newer field), else `status`: `ACTIVE`, `SUSPENDED`,
    /// `PENDING_CLOSURE`, `PENDING_ACTIVATION`, `CLOSED`.
    pub state: String,
}

impl AccountInfo {
    fn of(a: &Account) -> Self {
        let state = a
            .state()
            .map(|s| s.as_str().to_string())
            .or_else(|| a.status().map(|s| s.as_str().to_string()))
            .unwrap_or_default();
        Self {
            id: a.id().unwrap_or_default().to_string(),
            name: a.name().unwrap_or_default().to_string(),
            email: a.email().unwrap_or_default().to_string(),
            arn: a.arn().unwrap_or_default().to_string(),
            state,
        }
    }
}

/// Closed, or as closed as AWS makes it (SUSPENDED for 90 days, then CLOSED).
pub fn is_closed(state: &str) -> bool {
    matches!(state, "SUSPENDED" | "CLOSED")
}

#[derive(Debug)]
pub struct Client {
    access: AccessConfig,
    sdk: OnceCell<Sdk>,
    org: OnceCell<Org>,
}

/// An SDK failure as a classified error.
fn fail<E>(
    op: &str,
    e: &SdkError<E, aws_sdk_organizations::config::http::HttpResponse>,
) -> ConnectorError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    classify(&format!("organizations:{op}"), &Fault::of(e), None)
}

/// The code of a service error, to tell expected answers apart before classifying.
fn code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    e.as_service_error().and_then(ProvideErrorMetadata::code)
}

fn missing(op: &str, what: &str) -> ConnectorError {
    ConnectorError::permanent(
        "bad_answer",
        format!("organizations:{op} answered without {what}"),
    )
}

impl Client {
    pub fn new(access: AccessConfig) -> Self {
        Self {
            access,
            sdk: OnceCell::new(),
            org: OnceCell::new(),
        }
    }

    async fn sdk(&self) -> &Sdk {
        self.sdk
            .get_or_init(|| async { Sdk::new(&sdk_config(&self.access).await) })
            .await
    }

    /// DescribeOrganization, asked once per instance (the management account never changes).
    pub async fn organization(&self) -> Result<&Org, ConnectorError> {
        self.org
            .get_or_try_init(|| async {
                let op = "DescribeOrganization";
                let out = self
                    .sdk()
                    .await
                    .describe_organization()
                    .send()
                    .await
                    .map_err(|e| fail(op, &e))?;
                let o = out
                    .organization()
                    .ok_or_else(|| missing(op, "an organization"))?;
                Ok(Org {
                    id: o.id().unwrap_or_default().to_string(),
                    management_account_id: o
                        .master_account_id()
                        .ok_or_else(|| missing(op, "the management account id"))?
                        .to_string(),
                    all_features: o.feature_set().is_none_or(|f| f.as_str() == "ALL"),
                })
            })
            .await
    }

    /// ListAccounts, every page.
    pub async fn list_accounts(&self) -> Result<Vec<AccountInfo>, ConnectorError> {
        let sdk = self.sdk().await;
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = sdk
                .list_accounts()
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| fail("ListAccounts", &e))?;
            out.extend(page.accounts().iter().map(AccountInfo::of));
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    /// The tags of one account (ListTagsForResource, every page).
    pub async fn tags(&self, account: &str) -> Result<BTreeMap<String, String>, ConnectorError> {
        let sdk = self.sdk().await;
        let mut out = BTreeMap::new();
        let mut token: Option<String> = None;
        loop {
            let page = sdk
                .list_tags_for_resource()
                .resource_id(account)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| fail("ListTagsForResource", &e))?;
            for t in page.tags() {
                out.insert(t.key().to_string(), t.value().to_string());
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    /// The account's parent (the root or an OU); an account has exactly one.
    pub async fn parent(&self, account: &str) -> Result<String, ConnectorError> {
        let op = "ListParents";
        let out = self
            .sdk()
            .await
            .list_parents()
            .child_id(account)
            .send()
            .await
            .map_err(|e| fail(op, &e))?;
        out.parents()
            .first()
            .and_then(|p| p.id())
            .map(str::to_string)
            .ok_or_else(|| missing(op, "a parent"))
    }

    pub async fn describe_account(&self, account: &str) -> Result<AccountInfo, ConnectorError> {
        let op = "DescribeAccount";
        let out = self
            .sdk()
            .await
            .describe_account()
            .account_id(account)
            .send()
            .await
            .map_err(|e| fail(op, &e))?;
        out.account()
            .map(AccountInfo::of)
            .ok_or_else(|| missing(op, "an account"))
    }

    /// Whether the OU exists (DescribeOrganizationalUnit).
    pub async fn ou_exists(&self, ou: &str) -> Result<bool, ConnectorError> {
        match self
            .sdk()
            .await
            .describe_organizational_unit()
            .organizational_unit_id(ou)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if code(&e) == Some("OrganizationalUnitNotFoundException") => Ok(false),
            Err(e) => Err(fail("DescribeOrganizationalUnit", &e)),
        }
    }

    /// TagResource on an account.
    pub async fn tag(&self, account: &str, key: &str, value: &str) -> Result<(), ConnectorError> {
        let op = "TagResource";
        let tag = Tag::builder()
            .key(key)
            .value(value)
            .build()
            .map_err(|e| ConnectorError::permanent("bad_request", format!("{op}: {e}")))?;
        debug!(account, key, value, "tagging account");
        match self
            .sdk()
            .await
            .tag_resource()
            .resource_id(account)
            .tags(tag)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let reason = e
                    .as_service_error()
                    .and_then(|s| match s {
                        aws_sdk_organizations::operation::tag_resource::TagResourceError::ConstraintViolationException(c) => c.reason(),
                        _ => None,
                    })
                    .map(|r| r.as_str().to_string());
                Err(classify(
                    &format!("organizations:{op}"),
                    &Fault::of(&e),
                    reason.as_deref(),
                ))
            }
        }
    }

    /// CloseAccount. `Ok(false)` when AWS says the account is closed already.
    pub async fn close_account(&self, account: &str) -> Result<bool, ConnectorError> {
        use aws_sdk_organizations::operation::close_account::CloseAccountError;
        match self
            .sdk()
            .await
            .close_account()
            .account_id(account)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if code(&e) == Some("AccountAlreadyClosedException") => Ok(false),
            Err(e) => {
                let reason = e
                    .as_service_error()
                    .and_then(|s| match s {
                        CloseAccountError::ConstraintViolationException(c) => c.reason(),
                        _ => None,
                    })
                    .map(|r| r.as_str().to_string());
                Err(classify(
                    "organizations:CloseAccount",
                    &Fault::of(&e),
                    reason.as_deref(),
                ))
            }
        }
    }

    /// MoveAccount. `Ok(false)` when AWS says it is in the destination already.
    pub async fn move_account(
        &self,
        account: &str,
        from: &str,
        to: &str,
    ) -> Result<bool, ConnectorError> {
        match self
            .sdk()
            .await
            .move_account()
            .account_id(account)
            .source_parent_id(from)
            .destination_parent_id(to)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if code(&e) == Some("DuplicateAccountException") => Ok(false),
            Err(e) => Err(fail("MoveAccount", &e)),
        }
    }
}
