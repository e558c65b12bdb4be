//! Failed-login rate limiting, per user name and per client address.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept per limiter before expired ones are swept.
const SWEEP_THRESHOLD: usize = 10_000;

/// A sliding-window counter of failures per key: once `max` failures happened
/// within `window`, the key is blocked until the oldest of them leaves the window.
#[derive(Debug)]
pub struct FailureLimiter<K> {
    max: usize,
    window: Duration,
    entries: Mutex<HashMap<K, VecDeque<Instant>>>,
}

impl<K: Eq + Hash + Clone> FailureLimiter<K> {
    /// A limiter allowing `max` failures per `window` (max 0 disables it).
    pub fn new(max: usize, window: Duration) -> Self {
        Self {
            max,
            window,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, VecDeque<Instant>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// If `key` is blocked now, how long until it may try again.
    pub fn blocked_for(&self, key: &K, now: Instant) -> Option<Duration> {
        if self.max == 0 {
            return None;
        }
        let mut map = self.lock();
        let q = map.get_mut(key)?;
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            q.pop_front();
        }
        if q.len() >= self.max {
            q.front()
                .map(|oldest| self.window.saturating_sub(now.duration_since(*oldest)))
        } else {
            None
        }
    }

    /// Records a failure for `key`.
    pub fn record_failure(&self, key: &K, now: Instant) {
        if self.max == 0 {
            return;
        }
        let mut map = self.lock();
        if map.len() >= SWEEP_THRESHOLD {
            let window = self.window;
            map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        }
        let q = map.entry(key.clone()).or_default();
        q.push_back(now);
        while q.len() > self.max {
            q.pop_front();
        }
    }

    /// Forgets the failures of `key` (after a successful login).
    pub fn clear(&self, key: &K) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_and_recovers() {
        let l = FailureLimiter::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(l.blocked_for(&"a", t0).is_none());
        l.record_failure(&"a", t0);
        assert!(l.blocked_for(&"a", t0).is_none());
        l.record_failure(&"a", t0 + Duration::from_secs(1));
        let wait = l.blocked_for(&"a", t0 + Duration::from_secs(2)).unwrap();
        assert_eq!(wait, Duration::from_secs(8));
        assert!(l.blocked_for(&"b", t0).is_none());
        assert!(l.blocked_for(&"a", t0 + Duration::from_secs(10)).is_none());
        l.clear(&"a");
        assert!(l.blocked_for(&"a", t0 + Duration::from_secs(2)).is_none());
    }
}
