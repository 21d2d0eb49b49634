//! Rate limits, injected faults, latency and the request record: GitHub's pacing behaviour, so the
//! connector's backoff is tested against the real headers and messages

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::Method;

/// Which requests an injected secondary-limit storm hits
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    /// Only mutations (POST/PUT/PATCH/DELETE and GraphQL mutations; not the installation-token call)
    Mutations,
    /// Every request
    All,
}

/// One request the stand-in received
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The HTTP method
    pub method: Method,
    /// The path as received (still percent-encoded, with `/api/v3` when used)
    pub path: String,
    /// The query string, if any
    pub query: Option<String>,
    /// The status answered
    pub status: u16,
    /// When it arrived (before the latency knob)
    pub at: Instant,
    /// Whether it counts as a mutation (see [`LimitScope::Mutations`])
    pub mutation: bool,
}

/// A request that arrived while GitHub had asked the client to wait (after a secondary limit),
/// which real GitHub punishes with longer bans
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaceViolation {
    /// The HTTP method
    pub method: Method,
    /// The path as received
    pub path: String,
    /// When it arrived
    pub at: Instant,
    /// How much earlier than allowed it came
    pub early_by: Duration,
}

/// The rate-limit resource a request is counted in (`x-ratelimit-resource`)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Resource {
    Core,
    Graphql,
}

impl Resource {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Resource::Core => "core",
            Resource::Graphql => "graphql",
        }
    }
}

/// A primary rate-limit budget of one resource
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    pub(crate) used: u64,
    /// Epoch seconds when the window resets
    pub(crate) reset: u64,
}

/// What the limiter says about one request
#[derive(Debug, Clone)]
pub(crate) struct Verdict {
    pub(crate) limit: u64,
    pub(crate) remaining: u64,
    pub(crate) used: u64,
    pub(crate) reset: u64,
    pub(crate) resource: Resource,
    /// Answer this instead of the real response
    pub(crate) reject: Option<Reject>,
}

#[derive(Debug, Clone)]
pub(crate) enum Reject {
    Primary,
    Secondary { retry_after: Option<Duration> },
    Fault { status: u16 },
}

#[derive(Debug, Clone)]
struct Fault {
    remaining: u32,
    status: u16,
    path_contains: Option<String>,
}

#[derive(Debug, Clone)]
struct Storm {
    remaining: u32,
    retry_after: Option<Duration>,
    scope: LimitScope,
}

/// Knobs and records, behind one mutex
#[derive(Debug)]
pub(crate) struct Pace {
    pub(crate) latency: Duration,
    pub(crate) limit: u64,
    pub(crate) window: Duration,
    budgets: HashMap<Resource, Budget>,
    storm: Option<Storm>,
    /// How long GitHub asks to wait after a secondary limit without `retry-after`
    pub(crate) secondary_wait: Duration,
    /// No request is allowed before this instant (after a secondary limit)
    banned_until: Option<Instant>,
    faults: Vec<Fault>,
    pub(crate) requests: Vec<RecordedRequest>,
    pub(crate) violations: Vec<PaceViolation>,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            latency: Duration::ZERO,
            limit: 5_000,
            window: Duration::from_secs(3_600),
            budgets: HashMap::new(),
            storm: None,
            secondary_wait: Duration::from_secs(60),
            banned_until: None,
            faults: Vec::new(),
            requests: Vec::new(),
            violations: Vec::new(),
        }
    }
}

pub(crate) fn epoch_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl Pace {
    pub(crate) fn set_primary(&mut self, limit: u64, window: Duration) {
        self.limit = limit;
        self.window = window;
        self.budgets.clear();
    }

    pub(crate) fn storm(&mut self, n: u32, retry_after: Option<Duration>, scope: LimitScope) {
        self.storm = Some(Storm {
            remaining: n,
            retry_after,
            scope,
        });
    }

    pub(crate) fn fault(&mut self, n: u32, status: u16, path_contains: Option<String>) {
        self.faults.push(Fault {
            remaining: n,
            status,
            path_contains,
        });
    }

    /// Decides how to answer a request that arrived at `at`: records a pace violation when it
    /// came during a ban, then applies (in GitHub's order) the primary limit, a secondary-limit
    /// storm and injected faults, and charges the budget
    pub(crate) fn admit(
        &mut self,
        method: &Method,
        path: &str,
        mutation: bool,
        resource: Resource,
        at: Instant,
    ) -> Verdict {
        self.check_ban(method, path, at);

        let now = epoch_secs();
        let window = self.window.as_secs().max(1);
        let limit = self.limit;
        let budget = self.budgets.entry(resource).or_insert(Budget {
            used: 0,
            reset: now + window,
        });
        if now >= budget.reset {
            budget.used = 0;
            budget.reset = now + window;
        }
        let mut reject = None;
        if budget.used >= limit {
            reject = Some(Reject::Primary);
        } else {
            budget.used += 1;
        }
        let (used, reset) = (budget.used, budget.reset);

        if reject.is_none() {
            if let Some(storm) = &mut self.storm {
                if storm.remaining > 0 && (storm.scope == LimitScope::All || mutation) {
                    storm.remaining -= 1;
                    let retry_after = storm.retry_after;
                    self.banned_until = Some(at + retry_after.unwrap_or(self.secondary_wait));
                    reject = Some(Reject::Secondary { retry_after });
                }
            }
        }
        if reject.is_none() {
            for fault in &mut self.faults {
                let matches = fault
                    .path_contains
                    .as_deref()
                    .is_none_or(|s| path.contains(s));
                if fault.remaining > 0 && matches {
                    fault.remaining -= 1;
                    reject = Some(Reject::Fault {
                        status: fault.status,
                    });
                    break;
                }
            }
            self.faults.retain(|f| f.remaining > 0);
        }
        Verdict {
            limit,
            remaining: limit.saturating_sub(used),
            used,
            reset,
            resource,
            reject,
        }
    }

    /// Records a pace violation when the request came while GitHub had asked to wait
    pub(crate) fn check_ban(&mut self, method: &Method, path: &str, at: Instant) {
        if let Some(until) = self.banned_until {
            if at < until {
                self.violations.push(PaceViolation {
                    method: method.clone(),
                    path: path.to_owned(),
                    at,
                    early_by: until - at,
                });
            }
        }
    }

    /// The smallest gap between the arrivals of two consecutive mutations
    pub(crate) fn min_mutation_gap(&self) -> Option<Duration> {
        let mut times: Vec<Instant> = self
            .requests
            .iter()
            .filter(|r| r.mutation)
            .map(|r| r.at)
            .collect();
        times.sort();
        times
            .windows(2)
            .map(|w| w[1].saturating_duration_since(w[0]))
            .min()
    }
}
