//! GitHub's pace: one governor per connector instance, shared by every job and every task.
//!
//! - Mutations are serial and at least `mutation_spacing` apart (GitHub asks for 1 s).
//! - Reads run at most `read_concurrency` at a time, and never while a mutation is in flight:
//!   a mutation is sent when no read is out, and reads start again only once its answer has
//!   been read. So when GitHub refuses a mutation, no request of ours is already on its way
//!   (the requests of many jobs' actions interleave: each resolves its account and reads
//!   before it writes).
//! - When GitHub says stop (primary limit exhausted, `retry-after`, a secondary limit without
//!   one), nothing at all is sent before the time it allows: the governor holds every request
//!   until then. The request that was refused still fails, classified as rate-limited, so the
//!   executor (the only one that retries) decides when to send it again.
//!
//! Time spent waiting is the histogram `revoke_connector_wait_seconds{connector, reason}` (its
//! `_sum` is the total).

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, StatusCode};
use tokio::sync::{
    Mutex as AsyncMutex, RwLock, RwLockReadGuard, RwLockWriteGuard, Semaphore, SemaphorePermit,
};
use tokio::time::Instant;

/// Why a request was held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitReason {
    Spacing,
    RateLimit,
    SecondaryLimit,
}

impl WaitReason {
    fn as_str(self) -> &'static str {
        match self {
            WaitReason::Spacing => "mutation_spacing",
            WaitReason::RateLimit => "rate_limit",
            WaitReason::SecondaryLimit => "secondary_limit",
        }
    }
}

/// What GitHub said about our pace in one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Fine,
    /// Refused; no request before `wait` from now.
    Limited {
        wait: Duration,
        reason: WaitReason,
    },
}

#[derive(Debug)]
pub struct Governor {
    instance: String,
    reads: Semaphore,
    mutation: AsyncMutex<Option<Instant>>,
    /// Shared by reads in flight, exclusive for a mutation in flight.
    flight: RwLock<()>,
    spacing: Duration,
    secondary_wait: Duration,
    blocked: Mutex<Option<(Instant, WaitReason)>>,
}

/// Held while a request is in flight.
#[derive(Debug)]
pub enum Permit<'a> {
    Read(
        #[allow(dead_code)] Option<SemaphorePermit<'a>>,
        #[allow(dead_code)] RwLockReadGuard<'a, ()>,
    ),
    Mutation(
        tokio::sync::MutexGuard<'a, Option<Instant>>,
        #[allow(dead_code)] RwLockWriteGuard<'a, ()>,
    ),
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let Permit::Mutation(last, _) = self {
            **last = Some(Instant::now());
        }
    }
}

impl Governor {
    pub fn new(
        instance: &str,
        read_concurrency: usize,
        spacing: Duration,
        secondary_wait: Duration,
    ) -> Self {
        Self {
            instance: instance.to_string(),
            reads: Semaphore::new(read_concurrency.max(1)),
            mutation: AsyncMutex::new(None),
            flight: RwLock::new(()),
            spacing,
            secondary_wait,
            blocked: Mutex::new(None),
        }
    }

    /// Waits for a read slot, for no mutation in flight, and for any pause GitHub asked for
    /// (checked after the mutation's answer, so a refusal it met holds this read too).
    pub async fn read(&self) -> Permit<'_> {
        // The semaphore is never closed; were it, the read would go without a slot.
        let slot = self.reads.acquire().await.ok();
        let flight = self.flight.read().await;
        self.wait_unblocked().await;
        Permit::Read(slot, flight)
    }

    /// Waits for the mutation slot, the spacing after the previous mutation, for the reads in
    /// flight to be answered, and for any pause.
    pub async fn mutation(&self) -> Permit<'_> {
        let last = self.mutation.lock().await;
        if let Some(at) = *last {
            let due = at + self.spacing;
            let now = Instant::now();
            if due > now {
                self.sleep(due - now, WaitReason::Spacing).await;
            }
        }
        let flight = self.flight.write().await;
        self.wait_unblocked().await;
        Permit::Mutation(last, flight)
    }

    async fn wait_unblocked(&self) {
        loop {
            let until = *self.blocked.lock().unwrap_or_else(|e| e.into_inner());
            match until {
                Some((at, reason)) if at > Instant::now() => {
                    self.sleep(at - Instant::now(), reason).await;
                }
                _ => return,
            }
        }
    }

    async fn sleep(&self, d: Duration, reason: WaitReason) {
        tokio::time::sleep(d).await;
        metrics::histogram!(
            "revoke_connector_wait_seconds",
            "connector" => self.instance.clone(),
            "reason" => reason.as_str(),
        )
        .record(d.as_secs_f64());
    }

    /// Reads GitHub's rate-limit headers off a response; a refusal pauses every request.
    pub fn observe(&self, status: StatusCode, headers: &HeaderMap, body: &str) -> Verdict {
        let verdict = judge(status, headers, body, self.secondary_wait, now_epoch());
        if let Verdict::Limited { wait, reason } = verdict {
            let until = Instant::now() + wait;
            let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
            if blocked.is_none_or(|(at, _)| at < until) {
                *blocked = Some((until, reason));
            }
            tracing::warn!(
                connector = %self.instance,
                wait_ms = wait.as_millis() as u64,
                reason = reason.as_str(),
                "github asked us to slow down; holding every request"
            );
        } else if let Some(wait) = exhausted_until(headers, now_epoch()) {
            // The last request of the window went through: hold the next ones until the reset.
            let until = Instant::now() + wait;
            let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
            if blocked.is_none_or(|(at, _)| at < until) {
                *blocked = Some((until, WaitReason::RateLimit));
            }
        }
        verdict
    }
}

fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// When `x-ratelimit-remaining` is 0: how long until `x-ratelimit-reset` (at least 1 s).
fn exhausted_until(headers: &HeaderMap, now: u64) -> Option<Duration> {
    if header_u64(headers, "x-ratelimit-remaining") != Some(0) {
        return None;
    }
    let reset = header_u64(headers, "x-ratelimit-reset")?;
    Some(Duration::from_secs(reset.saturating_sub(now).max(1)))
}

/// GitHub's rules, as documented: a 403 or 429 is a rate limit when `retry-after` is present
/// (wait that long), when `x-ratelimit-remaining` is 0 (wait for `x-ratelimit-reset`), or when
/// the message says secondary rate limit (wait at least `secondary_wait`, 60 s by default).
pub fn judge(
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
    secondary_wait: Duration,
    now: u64,
) -> Verdict {
    if status != StatusCode::FORBIDDEN && status != StatusCode::TOO_MANY_REQUESTS {
        return Verdict::Fine;
    }
    let secondary = body.to_ascii_lowercase().contains("secondary rate limit");
    if let Some(secs) = header_u64(headers, "retry-after") {
        let reason = if secondary || status == StatusCode::TOO_MANY_REQUESTS {
            WaitReason::SecondaryLimit
        } else {
            WaitReason::RateLimit
        };
        return Verdict::Limited {
            wait: Duration::from_secs(secs.max(1)),
            reason,
        };
    }
    if !secondary {
        if let Some(wait) = exhausted_until(headers, now) {
            return Verdict::Limited {
                wait,
                reason: WaitReason::RateLimit,
            };
        }
    }
    if secondary || status == StatusCode::TOO_MANY_REQUESTS {
        return Verdict::Limited {
            wait: secondary_wait,
            reason: WaitReason::SecondaryLimit,
        };
    }
    Verdict::Fine
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn github_rate_limit_rules() {
        let cases: Vec<(StatusCode, HeaderMap, &str, Verdict)> = vec![
            (
                StatusCode::OK,
                headers(&[("x-ratelimit-remaining", "0")]),
                "",
                Verdict::Fine,
            ),
            (
                StatusCode::FORBIDDEN,
                headers(&[("retry-after", "7")]),
                "You have exceeded a secondary rate limit",
                Verdict::Limited {
                    wait: Duration::from_secs(7),
                    reason: WaitReason::SecondaryLimit,
                },
            ),
            (
                StatusCode::FORBIDDEN,
                headers(&[]),
                "{\"message\":\"You have exceeded a secondary rate limit. Please wait\"}",
                Verdict::Limited {
                    wait: MIN,
                    reason: WaitReason::SecondaryLimit,
                },
            ),
            (
                StatusCode::FORBIDDEN,
                headers(&[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "1030"),
                ]),
                "API rate limit exceeded",
                Verdict::Limited {
                    wait: Duration::from_secs(30),
                    reason: WaitReason::RateLimit,
                },
            ),
            (
                StatusCode::TOO_MANY_REQUESTS,
                headers(&[]),
                "",
                Verdict::Limited {
                    wait: MIN,
                    reason: WaitReason::SecondaryLimit,
                },
            ),
            // A plain 403 (missing permission, SSO enforcement) is not a rate limit.
            (
                StatusCode::FORBIDDEN,
                headers(&[("x-ratelimit-remaining", "4999")]),
                "Resource protected by organization SAML enforcement",
                Verdict::Fine,
            ),
        ];
        for (status, h, body, want) in cases {
            assert_eq!(judge(status, &h, body, MIN, 1000), want, "{status} {body}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn mutations_are_serial_and_spaced_and_a_refusal_holds_reads_too() {
        let g = Governor::new("gh", 4, Duration::from_secs(1), MIN);
        let t0 = tokio::time::Instant::now();
        drop(g.mutation().await);
        drop(g.mutation().await);
        assert!(t0.elapsed() >= Duration::from_secs(1));
        let v = g.observe(
            StatusCode::FORBIDDEN,
            &headers(&[("retry-after", "5")]),
            "secondary rate limit",
        );
        assert!(matches!(v, Verdict::Limited { .. }));
        let t1 = tokio::time::Instant::now();
        drop(g.read().await);
        assert!(t1.elapsed() >= Duration::from_secs(5) - Duration::from_millis(5));
    }

    #[tokio::test(start_paused = true)]
    async fn no_read_is_sent_while_a_mutation_is_in_flight() {
        let g = std::sync::Arc::new(Governor::new("gh", 4, Duration::ZERO, MIN));
        let read = g.read().await;
        // The mutation waits for the read in flight...
        let m = tokio::spawn({
            let g = g.clone();
            async move {
                let p = g.mutation().await;
                // ...and, in flight, meets a secondary limit.
                tokio::time::sleep(Duration::from_millis(50)).await;
                g.observe(
                    StatusCode::FORBIDDEN,
                    &headers(&[("retry-after", "3")]),
                    "secondary rate limit",
                );
                drop(p);
            }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!m.is_finished(), "the mutation waited for the read");
        drop(read);
        tokio::time::sleep(Duration::from_millis(10)).await;
        // A read asked for while the mutation is out goes only after its refusal's pause.
        let t = tokio::time::Instant::now();
        drop(g.read().await);
        assert!(t.elapsed() >= Duration::from_secs(3), "{:?}", t.elapsed());
        m.await.expect("mutation task");
    }
}
