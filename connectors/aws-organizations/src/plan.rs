//! Pure: what happens to each account the leaver owned, in the contain phase (an account is
//! access in itself: whoever holds its root or its roles keeps it until it is closed or parked).
//!
//! - `action = "close"`: `close_account` while the closure quota (from the `closure_quota`
//!   finding) has room, counting this plan's own closures; past it, `move_account` into
//!   `suspended_ou` when one is configured, else still `close_account`, with a summary saying
//!   AWS will refuse it, so the reviewer sees it before it happens.
//! - `action = "move"`: `move_account` into `suspended_ou`.
//! - An account already SUSPENDED or CLOSED needs nothing; one PENDING_CLOSURE gets a
//!   `close_account` that only waits (it counts against the quota already). An account already
//!   in `suspended_ou` is not moved again.
//! - The management account gets no action; its finding says why.

use std::collections::BTreeMap;

use revoke_core::{ActionKind, Discovery, Finding, Phase, ProposedAction};

use crate::client::is_closed;
use crate::config::{AccountAction, OrganizationsConfig};
use crate::discover::{CLOSURE_QUOTA, MEMBER_ACCOUNT};

/// CloseAccount, then wait for SUSPENDED.
pub const CLOSE_ACCOUNT: &str = "close_account";
/// MoveAccount into the suspended OU.
pub const MOVE_ACCOUNT: &str = "move_account";

fn attr<'a>(f: &'a Finding, k: &str) -> &'a str {
    f.attrs.get(k).map(String::as_str).unwrap_or("")
}

fn num(f: &Finding, k: &str) -> Option<u64> {
    attr(f, k).parse().ok()
}

fn action(
    kind: &str,
    f: &Finding,
    params: BTreeMap<String, String>,
    summary: String,
) -> ProposedAction {
    ProposedAction {
        kind: ActionKind::from(kind),
        target: f.target.clone(),
        params,
        phase: Phase::Contain,
        after: vec![],
        summary,
        account: f.target.clone(),
        delay: None,
    }
}

pub fn plan(cfg: &OrganizationsConfig, discovery: &Discovery) -> Vec<ProposedAction> {
    if !discovery.found {
        return vec![];
    }
    let quota = discovery
        .findings
        .iter()
        .find(|f| f.kind == CLOSURE_QUOTA)
        .and_then(|f| Some((num(f, "limit")?, num(f, "used")?, num(f, "window_days")?)));
    let mut used = quota.map(|(_, u, _)| u).unwrap_or(0);
    let mut accounts: Vec<&Finding> = discovery
        .findings
        .iter()
        .filter(|f| f.kind == MEMBER_ACCOUNT)
        .collect();
    accounts.sort_by(|a, b| a.target.cmp(&b.target));

    let mut out = Vec::new();
    for f in accounts {
        let id = f.target.as_str();
        let name = attr(f, "name");
        let state = attr(f, "status");
        let parent = attr(f, "parent");
        if is_closed(state) {
            continue;
        }
        let base = BTreeMap::from([
            ("account_id".to_string(), id.to_string()),
            ("name".to_string(), name.to_string()),
        ]);
        let move_to = |ou: &str, why: &str| {
            let mut p = base.clone();
            p.insert("source_parent".into(), parent.to_string());
            p.insert("destination".into(), ou.to_string());
            action(
                MOVE_ACCOUNT,
                f,
                p,
                format!("move account {id} ({name}) from {parent} to the suspended OU {ou}{why}"),
            )
        };
        let parked = |ou: &Option<String>| ou.as_deref() == Some(parent);

        if state == "PENDING_CLOSURE" {
            if cfg.action == AccountAction::Close {
                out.push(action(
                    CLOSE_ACCOUNT,
                    f,
                    base.clone(),
                    format!("wait for the pending closure of account {id} ({name}); it counts against the closure quota already"),
                ));
            }
            continue;
        }
        match cfg.action {
            AccountAction::Move => {
                if let (Some(ou), false) = (&cfg.suspended_ou, parked(&cfg.suspended_ou)) {
                    out.push(move_to(ou, ""));
                }
            }
            AccountAction::Close => {
                let Some((limit, _, days)) = quota else {
                    out.push(action(
                        CLOSE_ACCOUNT,
                        f,
                        base.clone(),
                        format!("close account {id} ({name}); closure quota unknown"),
                    ));
                    continue;
                };
                if used < limit {
                    used += 1;
                    out.push(action(
                        CLOSE_ACCOUNT,
                        f,
                        base.clone(),
                        format!("close account {id} ({name}); closure quota {used} of {limit} used in {days} days"),
                    ));
                } else if let Some(ou) = &cfg.suspended_ou {
                    if !parked(&cfg.suspended_ou) {
                        out.push(move_to(
                            ou,
                            &format!(" instead of closing it: closure quota {used} of {limit} used in {days} days"),
                        ));
                    }
                } else {
                    out.push(action(
                        CLOSE_ACCOUNT,
                        f,
                        base.clone(),
                        format!("close account {id} ({name}); AWS will refuse this: closure quota {used} of {limit} used in {days} days (set suspended_ou to move it instead)"),
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::discover::MANAGEMENT_ACCOUNT;

    fn account(id: &str, name: &str, status: &str, parent: &str) -> Finding {
        Finding {
            connector: "org".into(),
            subject: "alice".into(),
            kind: MEMBER_ACCOUNT.into(),
            target: id.into(),
            attrs: BTreeMap::from([
                ("id".to_string(), id.to_string()),
                ("name".to_string(), name.to_string()),
                ("status".to_string(), status.to_string()),
                ("parent".to_string(), parent.to_string()),
            ]),
        }
    }

    fn quota(limit: u64, used: u64) -> Finding {
        Finding {
            connector: "org".into(),
            subject: "alice".into(),
            kind: CLOSURE_QUOTA.into(),
            target: "o-abc".into(),
            attrs: BTreeMap::from([
                ("limit".to_string(), limit.to_string()),
                ("used".to_string(), used.to_string()),
                ("window_days".to_string(), "30".to_string()),
            ]),
        }
    }

    fn summaries(cfg: serde_json::Value, findings: Vec<Finding>) -> Vec<String> {
        let cfg = OrganizationsConfig::from_value(&cfg).expect("config");
        let d = Discovery {
            connector: "org".into(),
            subject: "alice".into(),
            found: true,
            findings,
            accounts: vec![],
            notes: Vec::new(),
        };
        plan(&cfg, &d)
            .into_iter()
            .map(|a| {
                assert_eq!(a.phase, Phase::Contain);
                assert_eq!(a.account, a.target);
                format!("{} {}: {}", a.kind, a.target, a.summary)
            })
            .collect()
    }

    #[test]
    fn closes_within_the_quota_and_moves_the_rest() {
        let findings = vec![
            account("333333333333", "c", "ACTIVE", "r-root"),
            account("111111111111", "sandbox-alice", "ACTIVE", "r-root"),
            account("222222222222", "b", "ACTIVE", "ou-root-parkedxx"),
            quota(10, 8),
        ];
        assert_eq!(
            summaries(json!({"suspended_ou": "ou-root-suspendd"}), findings.clone()),
            [
                "close_account 111111111111: close account 111111111111 (sandbox-alice); closure quota 9 of 10 used in 30 days",
                "close_account 222222222222: close account 222222222222 (b); closure quota 10 of 10 used in 30 days",
                "move_account 333333333333: move account 333333333333 (c) from r-root to the suspended OU ou-root-suspendd instead of closing it: closure quota 10 of 10 used in 30 days",
            ]
        );
        assert_eq!(
            summaries(json!({}), findings)[2],
            "close_account 333333333333: close account 333333333333 (c); AWS will refuse this: closure quota 10 of 10 used in 30 days (set suspended_ou to move it instead)"
        );
    }

    #[test]
    fn move_policy_skips_closed_and_parked_accounts_and_the_management_account() {
        let mut mgmt = account("123456789012", "master", "ACTIVE", "r-root");
        mgmt.kind = MANAGEMENT_ACCOUNT.into();
        let findings = vec![
            mgmt,
            account("111111111111", "a", "ACTIVE", "r-root"),
            account("222222222222", "b", "SUSPENDED", "r-root"),
            account("333333333333", "c", "ACTIVE", "ou-root-suspendd"),
            account("444444444444", "d", "PENDING_CLOSURE", "r-root"),
        ];
        let cfg = json!({"action": "move", "suspended_ou": "ou-root-suspendd"});
        assert_eq!(
            summaries(cfg, findings.clone()),
            ["move_account 111111111111: move account 111111111111 (a) from r-root to the suspended OU ou-root-suspendd"]
        );
        let got = summaries(json!({}), findings);
        assert_eq!(
            got,
            [
                "close_account 111111111111: close account 111111111111 (a); closure quota unknown",
                "close_account 333333333333: close account 333333333333 (c); closure quota unknown",
                "close_account 444444444444: wait for the pending closure of account 444444444444 (d); it counts against the closure quota already",
            ]
        );
    }

    #[test]
    fn params_carry_what_apply_needs() {
        let cfg = OrganizationsConfig::from_value(
            &json!({"action": "move", "suspended_ou": "ou-root-suspendd"}),
        )
        .expect("config");
        let d = Discovery {
            connector: "org".into(),
            subject: "alice".into(),
            found: true,
            findings: vec![account("111111111111", "a", "ACTIVE", "r-root")],
            accounts: vec![],
            notes: Vec::new(),
        };
        let a = &plan(&cfg, &d)[0];
        assert_eq!(a.params["account_id"], "111111111111");
        assert_eq!(a.params["source_parent"], "r-root");
        assert_eq!(a.params["destination"], "ou-root-suspendd");
        assert!(plan(&cfg, &Discovery { found: false, ..d }).is_empty());
    }
}
