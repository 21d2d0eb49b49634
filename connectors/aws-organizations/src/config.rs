//! The `[connectors.<name>]` table of an AWS Organizations instance, and its pure validation.

use std::collections::BTreeMap;
use std::time::Duration;

use revoke_aws::access::{is_account_id, validate_access, ACCESS_KEYS};
use revoke_aws::AccessConfig;
use revoke_core::keys::{check_table, describe, KeySpec, KeyType};
use revoke_core::ConfigIssue;
use serde::Deserialize;
use serde_json::Value;

/// The tag key naming an account's owner unless configured otherwise.
pub const DEFAULT_OWNER_TAG: &str = "owner";
/// Seconds between two DescribeAccount calls while a closure is pending.
pub const DEFAULT_CLOSE_POLL_SECS: u64 = 5;
/// How long one apply waits for a closure: below the executor's default action timeout (60 s)
/// with room for the TagResource and CloseAccount calls before it.
pub const DEFAULT_CLOSE_WAIT_SECS: u64 = 40;
/// AWS's share of member accounts that may be closed per rolling 30 days.
pub const AWS_CLOSURE_PERCENT: u64 = 10;

/// The connector's own keys; the shared access keys come from `revoke_aws`.
const OWN_KEYS: &[KeySpec] = &[
    KeySpec::optional("owner_tag", KeyType::Str),
    KeySpec::optional("owners", KeyType::Table),
    KeySpec::optional("action", KeyType::Str),
    KeySpec::optional("suspended_ou", KeyType::Str),
    KeySpec::optional("close_poll_secs", KeyType::Int),
    KeySpec::optional("close_wait_secs", KeyType::Int),
    KeySpec::optional("closure_quota_percent", KeyType::Int),
];

/// What happens to an account the leaver owned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountAction {
    /// CloseAccount, within the closure quota; over it, a move to `suspended_ou` when set.
    #[default]
    Close,
    /// MoveAccount into `suspended_ou`, where its service control policies deny everything.
    Move,
}

impl AccountAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountAction::Close => "close",
            AccountAction::Move => "move",
        }
    }
}

/// The typed config of one instance; build it only after `validate` passed.
#[derive(Debug, Clone)]
pub struct OrganizationsConfig {
    pub access: AccessConfig,
    /// Empty when owners are only taken from `owners`.
    pub owner_tag: String,
    /// Subject identifier (ASCII-lowercased) -> account ids.
    pub owners: BTreeMap<String, Vec<String>>,
    pub action: AccountAction,
    pub suspended_ou: Option<String>,
    pub close_poll_secs: u64,
    pub close_wait_secs: u64,
    pub closure_quota_percent: u64,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Own {
    #[serde(default = "default_owner_tag")]
    owner_tag: String,
    #[serde(default)]
    owners: BTreeMap<String, OneOrMany>,
    #[serde(default)]
    action: AccountAction,
    #[serde(default)]
    suspended_ou: Option<String>,
    #[serde(default = "default_poll")]
    close_poll_secs: u64,
    #[serde(default = "default_wait")]
    close_wait_secs: u64,
    #[serde(default = "default_percent")]
    closure_quota_percent: u64,
}

fn default_owner_tag() -> String {
    DEFAULT_OWNER_TAG.into()
}
fn default_poll() -> u64 {
    DEFAULT_CLOSE_POLL_SECS
}
fn default_wait() -> u64 {
    DEFAULT_CLOSE_WAIT_SECS
}
fn default_percent() -> u64 {
    AWS_CLOSURE_PERCENT
}

impl OrganizationsConfig {
    pub fn from_value(params: &Value) -> Result<Self, String> {
        let access = AccessConfig::from_table(params)?;
        let mut own = serde_json::Map::new();
        if let Some(t) = params.as_object() {
            for spec in OWN_KEYS {
                if let Some(v) = t.get(spec.name) {
                    own.insert(spec.name.to_string(), v.clone());
                }
            }
        }
        let own: Own = serde_json::from_value(Value::Object(own)).map_err(|e| e.to_string())?;
        let owners = own
            .owners
            .into_iter()
            .map(|(who, ids)| {
                let ids = match ids {
                    OneOrMany::One(id) => vec![id],
                    OneOrMany::Many(ids) => ids,
                };
                (who.to_ascii_lowercase(), ids)
            })
            .collect();
        Ok(Self {
            access,
            owner_tag: own.owner_tag,
            owners,
            action: own.action,
            suspended_ou: own.suspended_ou,
            close_poll_secs: own.close_poll_secs,
            close_wait_secs: own.close_wait_secs,
            closure_quota_percent: own.closure_quota_percent,
        })
    }

    pub fn close_poll(&self) -> Duration {
        Duration::from_secs(self.close_poll_secs)
    }

    /// How many DescribeAccount calls one apply makes after CloseAccount before it hands the
    /// action back to the executor as `closure_pending`.
    pub fn close_polls(&self) -> u32 {
        let n = self.close_wait_secs / self.close_poll_secs.max(1);
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Whether owners are read from a tag on the accounts.
    pub fn matches_tag(&self) -> bool {
        !self.owner_tag.is_empty()
    }
}

/// An OU id: `ou-` then 4 to 32 of `[0-9a-z]` (the root's id part), `-`, 8 to 32 of `[0-9a-z]`.
pub fn is_ou_id(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("ou-") else {
        return false;
    };
    let Some((root, own)) = rest.split_once('-') else {
        return false;
    };
    let part = |p: &str, min: usize| {
        (min..=32).contains(&p.len())
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    part(root, 4) && part(own, 8)
}

/// A tag key AWS accepts: 1 to 128 of letters, digits, spaces and `_.:/=+-@`, not `aws:`.
fn tag_key_problem(k: &str) -> Option<&'static str> {
    if k.chars().count() > 128 {
        return Some("at most 128 characters");
    }
    if k.to_ascii_lowercase().starts_with("aws:") {
        return Some("the aws: prefix is reserved");
    }
    let ok = k
        .chars()
        .all(|c| c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c));
    (!ok).then_some("letters, digits, spaces and _.:/=+-@ only")
}

/// Checks the table without any I/O; every issue names its key under `path`.
pub fn validate(path: &str, params: &Value) -> Result<(), Vec<ConfigIssue>> {
    let mut issues = Vec::new();
    let keys: Vec<KeySpec> = ACCESS_KEYS.iter().chain(OWN_KEYS).copied().collect();
    let Some(table) = check_table(path, params, &keys, &mut issues) else {
        return Err(issues);
    };
    validate_access(path, table, false, &mut issues);

    let key = |k: &str| format!("{path}.{k}");
    let s = |k: &str| table.get(k).and_then(Value::as_str);
    let n = |k: &str| table.get(k).and_then(Value::as_u64);

    let action = match s("action") {
        None | Some("close") => Some(AccountAction::Close),
        Some("move") => Some(AccountAction::Move),
        Some(other) => {
            issues.push(ConfigIssue::new(
                key("action"),
                format!("expected \"close\" or \"move\", found {other:?}"),
            ));
            None
        }
    };
    match s("suspended_ou") {
        Some(ou) if !is_ou_id(ou) => issues.push(ConfigIssue::new(
            key("suspended_ou"),
            format!("expected an OU id such as ou-ab12-cd34ef56, found {ou:?}"),
        )),
        None if action == Some(AccountAction::Move) && !table.contains_key("suspended_ou") => {
            issues.push(ConfigIssue::new(
                key("suspended_ou"),
                "missing; action = \"move\" needs the OU to move accounts into",
            ))
        }
        _ => {}
    }
    if let Some(tag) = s("owner_tag") {
        if let Some(problem) = tag_key_problem(tag) {
            issues.push(ConfigIssue::new(
                key("owner_tag"),
                format!("expected a tag key ({problem}), or \"\" to match by owners only, found {tag:?}"),
            ));
        }
    }
    let mut mapped = 0;
    if let Some(owners) = table.get("owners").and_then(Value::as_object) {
        for (who, ids) in owners {
            let at = format!("{path}.owners.{who}");
            if who.trim().is_empty() {
                issues.push(ConfigIssue::new(
                    &at,
                    "expected a subject identifier (an email, username or id), found an empty key",
                ));
            }
            let list: Vec<&Value> = match ids {
                Value::String(_) => vec![ids],
                Value::Array(a) if !a.is_empty() => a.iter().collect(),
                other => {
                    issues.push(ConfigIssue::new(
                        &at,
                        format!(
                            "expected an account id or a list of account ids, found {}",
                            if other.is_array() {
                                "an empty list".to_string()
                            } else {
                                describe(other)
                            }
                        ),
                    ));
                    continue;
                }
            };
            for id in list {
                match id.as_str() {
                    Some(id) if is_account_id(id) => mapped += 1,
                    _ => issues.push(ConfigIssue::new(
                        &at,
                        format!("expected account ids of 12 digits, found {}", describe(id)),
                    )),
                }
            }
        }
    }
    if s("owner_tag") == Some("") && mapped == 0 {
        issues.push(ConfigIssue::new(
            key("owner_tag"),
            "owner matching is off (owner_tag is \"\") and owners maps no account; expected one of them",
        ));
    }
    if let Some(p) = n("close_poll_secs") {
        if !(1..=60).contains(&p) {
            issues.push(ConfigIssue::new(
                key("close_poll_secs"),
                format!("expected 1 to 60 seconds, found {p}"),
            ));
        }
    }
    if let Some(w) = n("close_wait_secs") {
        if w > 900 {
            issues.push(ConfigIssue::new(
                key("close_wait_secs"),
                format!("expected at most 900 seconds (keep it below executor.action_timeout_secs), found {w}"),
            ));
        }
        let poll = n("close_poll_secs").unwrap_or(DEFAULT_CLOSE_POLL_SECS);
        if w > 0 && w < poll {
            issues.push(ConfigIssue::new(
                key("close_wait_secs"),
                format!("expected 0 or at least close_poll_secs ({poll}), found {w}"),
            ));
        }
    }
    if let Some(p) = n("closure_quota_percent") {
        if !(1..=AWS_CLOSURE_PERCENT).contains(&p) {
            issues.push(ConfigIssue::new(
                key("closure_quota_percent"),
                format!("expected 1 to {AWS_CLOSURE_PERCENT} (AWS closes at most {AWS_CLOSURE_PERCENT}% of member accounts per 30 days), found {p}"),
            ));
        }
    }
    if issues.is_empty() {
        if let Err(e) = OrganizationsConfig::from_value(params) {
            issues.push(ConfigIssue::new(path, e));
        }
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(issues)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn issues(v: Value) -> Vec<String> {
        match validate("connectors.org", &v) {
            Ok(()) => vec![],
            Err(i) => i.into_iter().map(|i| i.to_string()).collect(),
        }
    }

    #[test]
    fn an_empty_table_is_valid_and_has_the_documented_defaults() {
        let v = json!({"kind": "aws-organizations"});
        assert_eq!(issues(v.clone()), Vec::<String>::new());
        let cfg = OrganizationsConfig::from_value(&v).expect("config");
        assert_eq!(cfg.owner_tag, "owner");
        assert_eq!(cfg.action, AccountAction::Close);
        assert_eq!(cfg.suspended_ou, None);
        assert_eq!(cfg.close_poll_secs, 5);
        assert_eq!(cfg.close_wait_secs, 40);
        assert_eq!(cfg.close_polls(), 8);
        assert_eq!(cfg.closure_quota_percent, 10);
        assert_eq!(cfg.access.region, "us-east-1");
    }

    #[test]
    fn owners_take_one_id_or_a_list_and_keys_are_lowercased() {
        let cfg = OrganizationsConfig::from_value(&json!({
            "owners": {"Alice@Example.com": "111111111111", "bob": ["222222222222", "333333333333"]},
            "action": "move", "suspended_ou": "ou-ab12-cd34ef56",
        }))
        .expect("config");
        assert_eq!(cfg.owners["alice@example.com"], vec!["111111111111"]);
        assert_eq!(cfg.owners["bob"].len(), 2);
        assert_eq!(cfg.action, AccountAction::Move);
    }

    #[test]
    fn every_problem_names_its_key_what_was_expected_and_what_was_found() {
        assert_eq!(
            issues(json!({
                "action": "delete",
                "suspended_ou": "../x",
                "owner_tag": "aws:owner",
                "owners": {"alice": ["../x", "*)(uid=*", 7], "bob": 3, "carol": []},
                "close_poll_secs": 0,
                "close_wait_secs": 1000,
                "closure_quota_percent": 50,
                "accounts": "organization",
                "region": "Mars",
            })),
            vec![
                "connectors.org.accounts: unknown key; expected one of region, endpoint_url, access_key_id, secret_access_key, session_token, timeout_secs, connect_timeout_secs, owner_tag, owners, action, suspended_ou, close_poll_secs, close_wait_secs, closure_quota_percent",
                "connectors.org.region: expected a region such as us-east-1, found \"Mars\"",
                "connectors.org.action: expected \"close\" or \"move\", found \"delete\"",
                "connectors.org.suspended_ou: expected an OU id such as ou-ab12-cd34ef56, found \"../x\"",
                "connectors.org.owner_tag: expected a tag key (the aws: prefix is reserved), or \"\" to match by owners only, found \"aws:owner\"",
                "connectors.org.owners.alice: expected account ids of 12 digits, found \"../x\"",
                "connectors.org.owners.alice: expected account ids of 12 digits, found \"*)(uid=*\"",
                "connectors.org.owners.alice: expected account ids of 12 digits, found the number 7",
                "connectors.org.owners.bob: expected an account id or a list of account ids, found the number 3",
                "connectors.org.owners.carol: expected an account id or a list of account ids, found an empty list",
                "connectors.org.close_poll_secs: expected 1 to 60 seconds, found 0",
                "connectors.org.close_wait_secs: expected at most 900 seconds (keep it below executor.action_timeout_secs), found 1000",
                "connectors.org.closure_quota_percent: expected 1 to 10 (AWS closes at most 10% of member accounts per 30 days), found 50",
            ]
        );
    }

    #[test]
    fn move_needs_an_ou_and_some_owner_matching_is_needed() {
        assert_eq!(
            issues(json!({"action": "move", "owner_tag": "", "suspended_ou": "*)(uid=*"})),
            vec![
                "connectors.org.suspended_ou: expected an OU id such as ou-ab12-cd34ef56, found \"*)(uid=*\"",
                "connectors.org.owner_tag: owner matching is off (owner_tag is \"\") and owners maps no account; expected one of them",
            ]
        );
        assert_eq!(
            issues(json!({"action": "move"})),
            vec!["connectors.org.suspended_ou: missing; action = \"move\" needs the OU to move accounts into"]
        );
        assert_eq!(
            issues(json!({"close_poll_secs": 10, "close_wait_secs": 5})),
            vec!["connectors.org.close_wait_secs: expected 0 or at least close_poll_secs (10), found 5"]
        );
        assert_eq!(
            issues(json!({"owners": "x"})),
            vec!["connectors.org.owners: expected a table, found \"x\""]
        );
    }

    #[test]
    fn ou_ids() {
        assert!(is_ou_id("ou-ab12-cd34ef56"));
        assert!(is_ou_id("ou-a1b2c3d4e5-abcdefgh12"));
        for bad in [
            "ou-ab1-cd34ef56",
            "ou-ab12-cd34ef5",
            "OU-ab12-cd34ef56",
            "ou-ab12-cd34ef56/..",
            "r-ab12",
            "ou-ab12-cd34ef56-x",
            "",
        ] {
            assert!(!is_ou_id(bad), "{bad}");
        }
    }
}
