//! Read-only: the member accounts each subject owns, and the closure quota.
//!
//! One scan serves a whole batch of subjects: DescribeOrganization (once per instance),
//! ListAccounts (every page), ListTagsForResource per account (Organizations has no call that
//! lists the tags of many accounts; up to [`TAG_READS`] at a time), and ListParents only for the
//! accounts someone owns. Without an owner tag, only the closed accounts' tags are read (for the
//! quota), and none at all with `action = "move"`.

use std::collections::{BTreeMap, HashMap};

use chrono::Utc;
use futures_util::{stream, StreamExt, TryStreamExt};
use revoke_core::{Account, ConnectorError, Discovery, Finding, Subject};
use tracing::warn;

use crate::client::{AccountInfo, Client, Org};
use crate::config::{AccountAction, OrganizationsConfig};
use crate::quota::{closure_quota, ClosureQuota, QuotaInput, CLOSED_AT_TAG, WINDOW_DAYS};

/// A member account the subject owns.
pub const MEMBER_ACCOUNT: &str = "member_account";
/// The management account, when the subject owns it: reported, never acted on.
pub const MANAGEMENT_ACCOUNT: &str = "management_account";
/// The organization's closure quota when the plan was made (`limit`, `used`, `window_days`).
pub const CLOSURE_QUOTA: &str = "closure_quota";

/// ListTagsForResource calls in flight at once (Organizations throttles early).
pub const TAG_READS: usize = 4;

/// Why the management account is left alone, for the finding and the plan.
pub const MANAGEMENT_REFUSED: &str =
    "the management account of the organization is never closed or moved";

/// Every name the subject may be known by, lowercased: id, email, employee id, and the username
/// for this instance.
fn names(subject: &Subject, instance: &str) -> Vec<String> {
    let mut n: Vec<String> = [
        Some(subject.id.as_str()),
        subject.email.as_deref(),
        subject.employee_id.as_deref(),
        Some(subject.username_for(instance)),
    ]
    .into_iter()
    .flatten()
    .filter(|s| !s.trim().is_empty())
    .map(|s| s.trim().to_ascii_lowercase())
    .collect();
    n.sort();
    n.dedup();
    n
}

/// How the subject owns `account`, if they do: `tag`, `owners`, or `tag+owners`. Tag values and
/// `owners` keys are compared whole and ASCII case-insensitively (a non-ASCII letter must be
/// the same letter: no Kelvin sign for `k`, no fullwidth forms), never as patterns.
pub fn owned_via(
    cfg: &OrganizationsConfig,
    names: &[String],
    account: &str,
    tags: Option<&BTreeMap<String, String>>,
) -> Option<&'static str> {
    let by_tag = cfg.matches_tag()
        && tags
            .and_then(|t| t.get(&cfg.owner_tag))
            .is_some_and(|v| names.contains(&v.trim().to_ascii_lowercase()));
    let by_map = names.iter().any(|n| {
        cfg.owners
            .get(n)
            .is_some_and(|ids| ids.iter().any(|id| id == account))
    });
    match (by_tag, by_map) {
        (true, true) => Some("tag+owners"),
        (true, false) => Some("tag"),
        (false, true) => Some("owners"),
        (false, false) => None,
    }
}

/// The immutable id a member account's actions are pinned to is its 12-digit account id,
/// which AWS never gives to another account.
pub const ID_KIND: &str = "account id";

/// The account as discovery reports it: pinned to its id, answering to its id, name, email and
/// ARN, and why it is the subject's (`tag owner = alice@example.com`, `owners.alice`).
fn account_of(
    cfg: &OrganizationsConfig,
    names: &[String],
    a: &AccountInfo,
    tags: Option<&BTreeMap<String, String>>,
) -> Account {
    let mut why = Vec::new();
    if let Some(v) = tags.and_then(|t| t.get(&cfg.owner_tag)) {
        if cfg.matches_tag() && names.contains(&v.trim().to_ascii_lowercase()) {
            why.push(format!("tag {} = {}", cfg.owner_tag, v.trim()));
        }
    }
    for n in names {
        if cfg
            .owners
            .get(n)
            .is_some_and(|ids| ids.iter().any(|id| id == &a.id))
        {
            why.push(format!("owners.{n} = {}", a.id));
        }
    }
    let name = if a.name.trim().is_empty() {
        a.id.clone()
    } else {
        a.name.clone()
    };
    Account::new(&a.id, ID_KIND, name)
        .answers_to([
            a.id.as_str(),
            a.name.as_str(),
            a.email.as_str(),
            a.arn.as_str(),
        ])
        .matched_by(why.join(", "))
}

/// What one scan of the organization saw.
struct Scan<'a> {
    org: &'a Org,
    accounts: Vec<AccountInfo>,
    tags: HashMap<String, BTreeMap<String, String>>,
    quota: Option<ClosureQuota>,
}

async fn scan<'a>(
    client: &'a Client,
    cfg: &OrganizationsConfig,
) -> Result<Scan<'a>, ConnectorError> {
    let org = client.organization().await?;
    let accounts = client.list_accounts().await?;
    let close = cfg.action == AccountAction::Close;
    let wanted: Vec<String> = accounts
        .iter()
        .filter(|a| {
            cfg.matches_tag()
                || (close && matches!(a.state.as_str(), "SUSPENDED" | "PENDING_CLOSURE"))
        })
        .map(|a| a.id.clone())
        .collect();
    let tags: HashMap<String, BTreeMap<String, String>> = stream::iter(wanted)
        .map(|id| async move {
            let t = client.tags(&id).await?;
            Ok::<_, ConnectorError>((id, t))
        })
        .buffered(TAG_READS)
        .try_collect()
        .await?;
    let quota = close.then(|| {
        closure_quota(
            accounts.iter().map(|a| QuotaInput {
                state: &a.state,
                management: a.id == org.management_account_id,
                closed_at: tags
                    .get(&a.id)
                    .and_then(|t| t.get(CLOSED_AT_TAG))
                    .map(String::as_str),
            }),
            cfg.closure_quota_percent,
            Utc::now(),
        )
    });
    Ok(Scan {
        org,
        accounts,
        tags,
        quota,
    })
}

pub async fn discover_many(
    client: &Client,
    cfg: &OrganizationsConfig,
    instance: &str,
    subjects: &[Subject],
) -> Result<Vec<Discovery>, ConnectorError> {
    let scan = scan(client, cfg).await?;
    let mut parents: HashMap<String, String> = HashMap::new();
    let mut out = Vec::with_capacity(subjects.len());
    for subject in subjects {
        let names = names(subject, instance);
        for n in &names {
            for id in cfg.owners.get(n).into_iter().flatten() {
                if !scan.accounts.iter().any(|a| &a.id == id) {
                    warn!(connector = %instance, account = %id, "owners names an account that is not in the organization");
                }
            }
        }
        let mut findings = Vec::new();
        let mut accounts = Vec::new();
        for a in &scan.accounts {
            let Some(via) = owned_via(cfg, &names, &a.id, scan.tags.get(&a.id)) else {
                continue;
            };
            accounts.push(account_of(cfg, &names, a, scan.tags.get(&a.id)));
            let mut attrs = BTreeMap::from([
                ("id".to_string(), a.id.clone()),
                ("name".to_string(), a.name.clone()),
                ("email".to_string(), a.email.clone()),
                ("status".to_string(), a.state.clone()),
                ("owned_by".to_string(), via.to_string()),
            ]);
            let kind = if a.id == scan.org.management_account_id {
                attrs.insert("refused".into(), MANAGEMENT_REFUSED.into());
                MANAGEMENT_ACCOUNT
            } else {
                let parent = match parents.get(&a.id) {
                    Some(p) => p.clone(),
                    None => {
                        let p = client.parent(&a.id).await?;
                        parents.insert(a.id.clone(), p.clone());
                        p
                    }
                };
                attrs.insert("parent".into(), parent);
                if let Some(t) = scan.tags.get(&a.id).and_then(|t| t.get(CLOSED_AT_TAG)) {
                    attrs.insert("closed_at".into(), t.clone());
                }
                MEMBER_ACCOUNT
            };
            findings.push(Finding {
                connector: instance.to_string(),
                subject: subject.id.clone(),
                kind: kind.into(),
                target: a.id.clone(),
                attrs,
            });
        }
        let found = !findings.is_empty();
        if let Some(q) = scan.quota {
            if findings.iter().any(|f| f.kind == MEMBER_ACCOUNT) {
                findings.push(Finding {
                    connector: instance.to_string(),
                    subject: subject.id.clone(),
                    kind: CLOSURE_QUOTA.into(),
                    target: scan.org.id.clone(),
                    attrs: BTreeMap::from([
                        ("limit".to_string(), q.limit.to_string()),
                        ("used".to_string(), q.used.to_string()),
                        ("members".to_string(), q.members.to_string()),
                        ("window_days".to_string(), WINDOW_DAYS.to_string()),
                        ("percent".to_string(), cfg.closure_quota_percent.to_string()),
                    ]),
                });
            }
        }
        out.push(Discovery {
            connector: instance.to_string(),
            subject: subject.id.clone(),
            found,
            findings,
            accounts,
            notes: Vec::new(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cfg(v: serde_json::Value) -> OrganizationsConfig {
        OrganizationsConfig::from_value(&v).expect("config")
    }

    #[test]
    fn owners_match_whole_names_case_insensitively_never_patterns() {
        let c = cfg(json!({"owners": {"Alice": "111111111111", "*": "222222222222"}}));
        let mut alice = Subject::new("alice");
        alice.email = Some("Alice@Example.com".into());
        let n = names(&alice, "org");
        assert_eq!(n, ["alice", "alice@example.com"]);
        let tags = |v: &str| BTreeMap::from([("owner".to_string(), v.to_string())]);
        assert_eq!(
            owned_via(&c, &n, "333333333333", Some(&tags("ALICE@example.com "))),
            Some("tag")
        );
        assert_eq!(owned_via(&c, &n, "111111111111", None), Some("owners"));
        assert_eq!(
            owned_via(&c, &n, "111111111111", Some(&tags("alice"))),
            Some("tag+owners")
        );
        // Look-alikes are not the name: a Kelvin sign lowercases to `k` in Unicode, fullwidth
        // letters are other letters.
        let kim = names(&Subject::new("kim"), "org");
        for look_alike in ["\u{212A}im", "ｋｉｍ", "KİM"] {
            assert_eq!(
                owned_via(&c, &kim, "333333333333", Some(&tags(look_alike))),
                None,
                "{look_alike}"
            );
        }
        assert_eq!(
            owned_via(&c, &kim, "333333333333", Some(&tags("KIM"))),
            Some("tag")
        );
        for other in ["*", "alice*", "*)(uid=*", "../alice", "bob", ""] {
            assert_eq!(
                owned_via(&c, &n, "333333333333", Some(&tags(other))),
                None,
                "{other}"
            );
        }
        assert_eq!(owned_via(&c, &n, "222222222222", None), None);
        let weird = names(&Subject::new("*)(uid=*"), "org");
        assert_eq!(
            owned_via(&c, &weird, "333333333333", Some(&tags("alice"))),
            None
        );

        let off = cfg(json!({"owner_tag": "", "owners": {"bob": "444444444444"}}));
        assert_eq!(
            owned_via(&off, &n, "333333333333", Some(&tags("alice"))),
            None
        );
        let per_instance = {
            let mut s = Subject::new("e123");
            s.usernames.insert("org".into(), "ALICE".into());
            names(&s, "org")
        };
        assert_eq!(
            owned_via(&c, &per_instance, "111111111111", None),
            Some("owners")
        );
    }
}
