//! Failed-login rate limiting, per user name and per client address.
//!
//! An attempt is counted when it starts, before the password check, and refunded
//! only when the password turns out right: counting after the check would let
//! every request already in flight through, so simultaneous guesses would each
//! get a check however low the limit.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Entries kept per limiter before expired ones are swept.
const SWEEP_THRESHOLD: usize = 10_000;

/// One counted attempt of a key.
#[derive(Debug, Clone, Copy)]
struct Counted {
    /// When the attempt started.
    at: Instant,
    /// Which attempt, to refund exactly this one.
    id: u64,
    /// Still being checked (not yet known to have failed).
    pending: bool,
}

/// A sliding-window counter of attempts per key: once `max` attempts that failed
/// or are still being checked started within `window`, the key is blocked until
/// the oldest of them leaves the window.
#[derive(Debug)]
pub struct FailureLimiter<K> {
    max: usize,
    window: Duration,
    next_id: AtomicU64,
    entries: Mutex<HashMap<K, VecDeque<Counted>>>,
}

impl<K: Eq + Hash + Clone> FailureLimiter<K> {
    /// A limiter allowing `max` failures per `window` (max 0 disables it).
    pub fn new(max: usize, window: Duration) -> Self {
        Self {
            max,
            window,
            next_id: AtomicU64::new(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, VecDeque<Counted>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts an attempt of `key` starting `now`, unless `key` is blocked: then
    /// how long until it may try again. The attempt stays counted as a failure
    /// unless it is refunded ([`Attempt::refund`]); dropping it without a refund
    /// (a wrong password, or a request abandoned mid-check) keeps it counted.
    pub fn attempt(&self, key: &K, now: Instant) -> Result<Attempt<'_, K>, Duration> {
        if self.max == 0 {
            return Ok(Attempt {
                limiter: self,
                key: None,
                id: 0,
            });
        }
        let mut map = self.lock();
        if map.len() >= SWEEP_THRESHOLD {
            let window = self.window;
            map.retain(|_, q| {
                q.iter()
                    .any(|c| c.pending || now.saturating_duration_since(c.at) < window)
            });
        }
        let q = map.entry(key.clone()).or_default();
        // Attempts still being checked stay counted whatever their age: their
        // request ends (and settles them) within its own timeout.
        q.retain(|c| c.pending || now.saturating_duration_since(c.at) < self.window);
        if q.len() >= self.max {
            let oldest = q.iter().map(|c| c.at).min().unwrap_or(now);
            let wait = self
                .window
                .saturating_sub(now.saturating_duration_since(oldest));
            // A wait of zero (only pending attempts are this old) means "as soon as
            // a check in flight ends": at least a second, as Retry-After says.
            return Err(wait.max(Duration::from_secs(1)));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        q.push_back(Counted {
            at: now,
            id,
            pending: true,
        });
        Ok(Attempt {
            limiter: self,
            key: Some(key.clone()),
            id,
        })
    }

    /// Forgets the failures of `key` (after a successful login); attempts still
    /// being checked stay counted.
    pub fn clear_failures(&self, key: &K) {
        let mut map = self.lock();
        if let Some(q) = map.get_mut(key) {
            q.retain(|c| c.pending);
            if q.is_empty() {
                map.remove(key);
            }
        }
    }

    /// Attempts of `key` counted now (failed or being checked), for tests.
    #[cfg(test)]
    fn counted(&self, key: &K) -> usize {
        self.lock().get(key).map_or(0, VecDeque::len)
    }

    fn settle(&self, key: &K, id: u64, refund: bool) {
        let mut map = self.lock();
        let Some(q) = map.get_mut(key) else {
            return;
        };
        if refund {
            q.retain(|c| c.id != id);
        } else if let Some(c) = q.iter_mut().find(|c| c.id == id) {
            c.pending = false;
        }
        if q.is_empty() {
            map.remove(key);
        }
    }
}

/// An attempt counted by a [`FailureLimiter`]: a failure unless refunded.
#[derive(Debug)]
#[must_use = "an attempt counts as a failure unless refunded"]
pub struct Attempt<'a, K: Eq + Hash + Clone> {
    limiter: &'a FailureLimiter<K>,
    /// `None` when the limiter is disabled or the attempt is settled.
    key: Option<K>,
    id: u64,
}

impl<K: Eq + Hash + Clone> Attempt<'_, K> {
    /// Uncounts the attempt: the password was right, or no check was made.
    pub fn refund(mut self) {
        if let Some(key) = self.key.take() {
            self.limiter.settle(&key, self.id, true);
        }
    }
}

impl<K: Eq + Hash + Clone> Drop for Attempt<'_, K> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.limiter.settle(&key, self.id, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_and_recovers() {
        let l = FailureLimiter::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        drop(l.attempt(&"a", t0).unwrap());
        drop(l.attempt(&"a", t0 + Duration::from_secs(1)).unwrap());
        let wait = l.attempt(&"a", t0 + Duration::from_secs(2)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(8));
        assert!(l.attempt(&"b", t0).is_ok());
        // The first failure left the window: one more attempt may start.
        l.attempt(&"a", t0 + Duration::from_secs(10))
            .unwrap()
            .refund();
        l.clear_failures(&"a");
        assert_eq!(l.counted(&"a"), 0);
        assert!(l.attempt(&"a", t0 + Duration::from_secs(2)).is_ok());
    }

    #[test]
    fn attempts_in_flight_count_before_their_outcome() {
        let l = FailureLimiter::new(3, Duration::from_secs(60));
        let now = Instant::now();
        let in_flight: Vec<_> = (0..3).map(|_| l.attempt(&"u", now).unwrap()).collect();
        // Three checks running: a fourth is refused before any of them ends.
        assert!(l.attempt(&"u", now).is_err());
        // A success refunds its own attempt only; a clear keeps those in flight.
        let mut in_flight = in_flight.into_iter();
        in_flight.next().unwrap().refund();
        l.clear_failures(&"u");
        assert_eq!(l.counted(&"u"), 2);
        let third = l.attempt(&"u", now).unwrap();
        assert!(l.attempt(&"u", now).is_err());
        // Failures (dropped attempts) stay counted.
        drop(in_flight);
        drop(third);
        assert_eq!(l.counted(&"u"), 3);
        assert!(l.attempt(&"u", now).is_err());
    }

    #[test]
    fn max_zero_disables() {
        let l = FailureLimiter::new(0, Duration::from_secs(60));
        let now = Instant::now();
        let held: Vec<_> = (0..100).map(|_| l.attempt(&"u", now).unwrap()).collect();
        drop(held);
        assert_eq!(l.counted(&"u"), 0);
    }
}
