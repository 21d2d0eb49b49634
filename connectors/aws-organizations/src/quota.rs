//! AWS's closure quota, counted before CloseAccount runs into it. Pure.
//!
//! AWS: "You can close only 10% of member accounts, between 10 and 1000, within a rolling 30 day
//! period" (Organizations API reference, CloseAccount). Organizations has no API that reports how
//! much of it is used, so it is counted here:
//!
//! - members: the ACTIVE accounts of the organization, the management account left out (the older
//!   wording of the same rule says "active member accounts"; counting fewer is the safe side);
//! - limit: 10% of them, at least 10 and at most 1000; a `closure_quota_percent` below 10 scales
//!   the whole rule down alike (5 gives 5% of members, between 5 and 500), at least 1;
//! - used: every SUSPENDED or PENDING_CLOSURE account whose `revoked:closed-at` tag (written by
//!   apply just before CloseAccount) is less than 30 days old, and every such account without
//!   the tag (closed by someone else, at a time we cannot know: counted, to stay on the safe side).

use chrono::{DateTime, Duration, Utc};

use crate::config::AWS_CLOSURE_PERCENT;

/// The tag apply writes on an account just before CloseAccount: when the closure was asked for.
pub const CLOSED_AT_TAG: &str = "revoked:closed-at";
/// The length of AWS's rolling window.
pub const WINDOW_DAYS: i64 = 30;
/// AWS's bounds on the quota.
pub const AWS_MIN_CLOSURES: u64 = 10;
pub const AWS_MAX_CLOSURES: u64 = 1000;

/// How many closures the window allows and how many it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClosureQuota {
    pub members: u64,
    pub limit: u64,
    pub used: u64,
}

impl ClosureQuota {
    pub fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }
}

/// The most closures allowed per window for `members` member accounts at `percent` (1 to 10).
pub fn closure_limit(members: u64, percent: u64) -> u64 {
    let percent = percent.clamp(1, AWS_CLOSURE_PERCENT);
    let aws = (members / 10).clamp(AWS_MIN_CLOSURES, AWS_MAX_CLOSURES);
    (aws * percent / AWS_CLOSURE_PERCENT).max(1)
}

/// One account as far as the quota cares.
#[derive(Debug, Clone, Copy)]
pub struct QuotaInput<'a> {
    /// The account's state (`ACTIVE`, `SUSPENDED`, `PENDING_CLOSURE`, ...).
    pub state: &'a str,
    pub management: bool,
    /// The value of its `revoked:closed-at` tag.
    pub closed_at: Option<&'a str>,
}

/// Whether an account's closure counts against the window that ends at `now`.
pub fn counts_against(state: &str, closed_at: Option<&str>, now: DateTime<Utc>) -> bool {
    if !matches!(state, "SUSPENDED" | "PENDING_CLOSURE") {
        return false;
    }
    match closed_at.and_then(|t| DateTime::parse_from_rfc3339(t).ok()) {
        Some(t) => now.signed_duration_since(t.with_timezone(&Utc)) < Duration::days(WINDOW_DAYS),
        // Closed by someone else, or a tag we cannot read: the date is unknown.
        None => true,
    }
}

/// The quota of an organization whose accounts are `accounts`.
pub fn closure_quota<'a>(
    accounts: impl IntoIterator<Item = QuotaInput<'a>>,
    percent: u64,
    now: DateTime<Utc>,
) -> ClosureQuota {
    let (mut members, mut used) = (0, 0);
    for a in accounts {
        if a.management {
            continue;
        }
        if a.state == "ACTIVE" {
            members += 1;
        }
        if counts_against(a.state, a.closed_at, now) {
            used += 1;
        }
    }
    ClosureQuota {
        members,
        limit: closure_limit(members, percent),
        used,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_ten_percent_between_ten_and_a_thousand() {
        assert_eq!(closure_limit(0, 10), 10);
        assert_eq!(closure_limit(5, 10), 10);
        assert_eq!(closure_limit(109, 10), 10);
        assert_eq!(closure_limit(155, 10), 15, "rounded down");
        assert_eq!(closure_limit(4_000, 10), 400);
        assert_eq!(closure_limit(20_000, 10), 1000);
        // A lower percent scales the whole rule.
        assert_eq!(closure_limit(50, 5), 5);
        assert_eq!(closure_limit(2_000, 5), 100);
        assert_eq!(closure_limit(20_000, 5), 500);
        assert_eq!(closure_limit(3, 1), 1);
        assert_eq!(closure_limit(3, 0), 1, "clamped to 1 percent");
        assert_eq!(closure_limit(500, 99), 50, "never above AWS's");
    }

    #[test]
    fn closures_count_for_thirty_days_and_unknown_dates_always() {
        let now = DateTime::parse_from_rfc3339("2026-03-31T12:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let a = |state, management, closed_at| QuotaInput {
            state,
            management,
            closed_at,
        };
        let q = closure_quota(
            [
                a("ACTIVE", true, None),
                a("ACTIVE", false, None),
                a("ACTIVE", false, Some("2026-03-30T00:00:00Z")), // CloseAccount was refused
                a("SUSPENDED", false, Some("2026-03-30T00:00:00Z")),
                a("SUSPENDED", false, Some("2026-03-01T12:00:01Z")),
                a("SUSPENDED", false, Some("2026-03-01T12:00:00Z")), // exactly 30 days: out
                a("SUSPENDED", false, Some("2026-01-01T00:00:00+02:00")),
                a("PENDING_CLOSURE", false, None),
                a("SUSPENDED", false, None),
                a("SUSPENDED", false, Some("yesterday")),
                a("CLOSED", false, None),
            ],
            10,
            now,
        );
        assert_eq!(
            q,
            ClosureQuota {
                members: 2,
                limit: 10,
                used: 5
            }
        );
        assert_eq!(q.remaining(), 5);
        assert_eq!(
            ClosureQuota {
                members: 0,
                limit: 10,
                used: 12
            }
            .remaining(),
            0
        );
    }
}
