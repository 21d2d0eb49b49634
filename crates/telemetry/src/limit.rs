//! Rate-limited log lines: requests nobody authenticated must not grow the logs either.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Distinct keys remembered at most; past it, keys whose window has passed are forgotten, and
/// if none has, every key is (a flood of new keys then logs one line per key per window at most
/// twice, which is still bounded by the caller's choice of keys).
const MAX_KEYS: usize = 4096;

/// Lets one log line per key through per window and counts the ones it holds back, so that the
/// line that does get through can say how many were suppressed. Keys must be low-cardinality
/// (a configured source name and a reason label), never something taken from a request.
#[derive(Debug)]
pub struct LogLimiter {
    window: Duration,
    keys: Mutex<HashMap<String, Slot>>,
}

#[derive(Debug)]
struct Slot {
    /// When the last line for this key was let through.
    logged_at: Instant,
    /// Lines held back since then.
    suppressed: u64,
}

impl LogLimiter {
    /// At most one line per key per `window`.
    pub fn new(window: Duration) -> LogLimiter {
        LogLimiter {
            window,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(suppressed)` when a line for `key` may be written now (with how many lines for it
    /// were held back since the previous one), `None` when this one is held back.
    pub fn allow(&self, key: &str) -> Option<u64> {
        self.allow_at(key, Instant::now())
    }

    fn allow_at(&self, key: &str, now: Instant) -> Option<u64> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = keys.get_mut(key) {
            if now.saturating_duration_since(slot.logged_at) < self.window {
                slot.suppressed += 1;
                return None;
            }
            let suppressed = slot.suppressed;
            *slot = Slot {
                logged_at: now,
                suppressed: 0,
            };
            return Some(suppressed);
        }
        if keys.len() >= MAX_KEYS {
            let window = self.window;
            keys.retain(|_, s| now.saturating_duration_since(s.logged_at) < window);
            if keys.len() >= MAX_KEYS {
                keys.clear();
            }
        }
        keys.insert(
            key.to_owned(),
            Slot {
                logged_at: now,
                suppressed: 0,
            },
        );
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_key_per_window_and_the_next_says_how_many_were_held_back() {
        let l = LogLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(l.allow_at("bob:unauthenticated", t0), Some(0));
        for i in 1..=499 {
            assert_eq!(
                l.allow_at("bob:unauthenticated", t0 + Duration::from_millis(i)),
                None
            );
        }
        // Another key has its own window.
        assert_eq!(l.allow_at("bob:malformed", t0), Some(0));
        assert_eq!(
            l.allow_at("bob:unauthenticated", t0 + Duration::from_secs(10)),
            Some(499)
        );
        assert_eq!(
            l.allow_at("bob:unauthenticated", t0 + Duration::from_secs(11)),
            None
        );
    }

    #[test]
    fn the_number_of_remembered_keys_is_bounded() {
        let l = LogLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        for i in 0..(MAX_KEYS * 3) {
            assert_eq!(l.allow_at(&format!("k{i}"), t0), Some(0));
        }
        let n = l.keys.lock().map(|k| k.len()).unwrap_or(usize::MAX);
        assert!(n <= MAX_KEYS, "{n}");
    }
}
