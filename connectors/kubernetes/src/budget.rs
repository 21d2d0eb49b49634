//! The client-side rate budget of one connector instance: a token bucket of `burst` calls
//! refilled at `qps` a second, shared by every job that uses the instance (the connector is
//! built once per instance), as client-go's `flowcontrol.NewTokenBucketRateLimiter(qps, burst)`
//! with its defaults of 5 and 10. A call waits for its turn before it is sent: a large batch
//! paces itself instead of leaning on API Priority and Fairness's 429s. The server's 429s are
//! still honoured through the executor (`Retry-After`).
//!
//! A waiting call reserves its turn (the bucket may go below zero), so calls are served in the
//! order they asked and none starves.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug)]
pub struct Budget {
    /// None: no budget (`qps = 0`)
    rate: Option<(f64, f64)>,
    bucket: Mutex<Bucket>,
    waited_micros: AtomicU64,
}

impl Budget {
    pub fn new(qps: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: (qps > 0).then(|| (f64::from(qps), burst)),
            bucket: Mutex::new(Bucket {
                tokens: burst,
                at: Instant::now(),
            }),
            waited_micros: AtomicU64::new(0),
        }
    }

    /// How long this call must wait for its turn; the turn is taken.
    pub fn reserve(&self) -> Duration {
        self.reserve_at(Instant::now())
    }

    fn reserve_at(&self, now: Instant) -> Duration {
        let Some((qps, burst)) = self.rate else {
            return Duration::ZERO;
        };
        let mut b = self
            .bucket
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let refill = now.saturating_duration_since(b.at).as_secs_f64() * qps;
        b.tokens = (b.tokens + refill).min(burst);
        b.at = now;
        b.tokens -= 1.0;
        if b.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-b.tokens / qps)
        }
    }

    /// Waits for this call's turn.
    pub async fn acquire(&self) {
        let wait = self.reserve();
        if !wait.is_zero() {
            self.waited_micros.fetch_add(
                u64::try_from(wait.as_micros()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// The time calls have waited so far.
    pub fn waited(&self) -> Duration {
        Duration::from_micros(self.waited_micros.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(d: Duration) -> u128 {
        (d.as_secs_f64() * 1000.0).round() as u128
    }

    #[test]
    fn a_burst_goes_at_once_and_the_rest_waits_its_turn_in_order() {
        let b = Budget::new(5, 10);
        let t0 = b.bucket.lock().expect("bucket").at;
        for _ in 0..10 {
            assert_eq!(b.reserve_at(t0), Duration::ZERO);
        }
        // The 11th, 12th, 13th wait 1/5 s more each.
        let waits: Vec<u128> = (0..3).map(|_| ms(b.reserve_at(t0))).collect();
        assert_eq!(waits, [200, 400, 600]);
        // A second later five turns have come back: the two owed and three more.
        let t1 = t0 + Duration::from_secs(1);
        for _ in 0..2 {
            assert_eq!(b.reserve_at(t1), Duration::ZERO);
        }
        assert_eq!(ms(b.reserve_at(t1)), 200);
        // After a long pause the bucket holds a burst, not more.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..10 {
            assert_eq!(b.reserve_at(t2), Duration::ZERO);
        }
        assert_eq!(ms(b.reserve_at(t2)), 200);
    }

    #[test]
    fn qps_zero_is_no_budget() {
        let b = Budget::new(0, 0);
        for _ in 0..1000 {
            assert_eq!(b.reserve(), Duration::ZERO);
        }
    }
}
