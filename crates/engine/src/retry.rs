use std::time::Duration;

use rand::Rng;
use revoke_config::RetryConfig;

/// Capped exponential backoff with full jitter, bounded by attempts and elapsed time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
    pub max_attempts: u32,
    pub max_elapsed: Duration,
}

impl From<&RetryConfig> for RetryPolicy {
    fn from(c: &RetryConfig) -> Self {
        Self {
            base: Duration::from_millis(c.base_ms),
            cap: Duration::from_millis(c.cap_ms),
            max_attempts: c.max_attempts,
            max_elapsed: Duration::from_secs(c.max_elapsed_secs),
        }
    }
}

impl RetryPolicy {
    /// The ceiling of the wait after attempt `attempt` (1-based): min(cap, base * 2^(attempt-1)).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u64
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u64::MAX);
        let ms = (self.base.as_millis() as u64).saturating_mul(factor);
        Duration::from_millis(ms).min(self.cap)
    }

    /// How long to wait before the next attempt, or `None` to give up. Full jitter: uniform in
    /// [0, ceiling]; a service's retry-after is a floor.
    pub fn next_delay(
        &self,
        attempt: u32,
        elapsed: Duration,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let ceiling = self.ceiling(attempt).as_millis() as u64;
        let jittered = Duration::from_millis(rng.random_range(0..=ceiling));
        let delay = jittered.max(retry_after.unwrap_or_default());
        if elapsed + delay > self.max_elapsed {
            return None;
        }
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(1000),
            max_attempts: 5,
            max_elapsed: Duration::from_secs(10),
        }
    }

    #[test]
    fn ceiling_doubles_then_caps() {
        let p = policy();
        let c: Vec<u64> = (1..=6).map(|a| p.ceiling(a).as_millis() as u64).collect();
        assert_eq!(c, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.ceiling(200), Duration::from_millis(1000));
    }

    #[test]
    fn jitter_stays_within_the_ceiling_and_spreads() {
        let p = policy();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let delays: Vec<Duration> = (0..200)
            .map(|_| {
                p.next_delay(3, Duration::ZERO, None, &mut rng)
                    .expect("retry")
            })
            .collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(400)));
        let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
        assert!(
            distinct.len() > 50,
            "full jitter spreads the delays, found {} distinct",
            distinct.len()
        );
    }

    #[test]
    fn retry_after_is_a_floor_and_limits_end_retries() {
        let p = policy();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let d = p
            .next_delay(1, Duration::ZERO, Some(Duration::from_secs(3)), &mut rng)
            .expect("retry");
        assert!(d >= Duration::from_secs(3));
        assert_eq!(
            p.next_delay(5, Duration::ZERO, None, &mut rng),
            None,
            "max attempts reached"
        );
        assert_eq!(
            p.next_delay(
                1,
                Duration::from_secs(9),
                Some(Duration::from_secs(2)),
                &mut rng
            ),
            None,
            "would pass max elapsed"
        );
    }
}
