//! A short-lived cache of API responses, shared by users of the same role.
//!
//! Safety across users: an entry is keyed by (role, endpoint + query), so an admin's
//! answers (the runs history) never serve a viewer; the gold data is the same for
//! every user of a role. And an entry only serves a token that the API itself has
//! accepted before (and whose expiry has not passed): a forged or expired cookie
//! never reads the cache, it goes to the API and gets its 401.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::session::{Role, Session};

/// Entries kept before expired ones are swept.
const SWEEP_ABOVE: usize = 512;

type Entry = (Instant, Arc<dyn Any + Send + Sync>);
/// A lock per key, held while one request reads that key from the API.
type Gate = Arc<tokio::sync::Mutex<()>>;

/// The cache: typed values per (role, key) for `ttl`, and the tokens the API accepted.
pub struct ResponseCache {
    ttl: Duration,
    entries: Mutex<HashMap<(Role, String), Entry>>,
    /// Token -> its `exp` claim, for tokens the API answered 200 to.
    verified: Mutex<HashMap<String, i64>>,
    gates: Mutex<HashMap<(Role, String), Gate>>,
}

impl ResponseCache {
    /// A cache whose entries live `ttl` (zero: nothing is cached).
    pub fn new(ttl: Duration) -> ResponseCache {
        ResponseCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
            verified: Mutex::new(HashMap::new()),
            gates: Mutex::new(HashMap::new()),
        }
    }

    /// The lock that one reading of (role, key) from the API holds.
    pub fn gate(&self, role: Role, key: &str) -> Gate {
        let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        if gates.len() >= SWEEP_ABOVE {
            // Keys come from URLs (any country text): drop the gates nobody holds.
            gates.retain(|_, gate| Arc::strong_count(gate) > 1);
        }
        gates.entry((role, key.to_string())).or_default().clone()
    }

    /// Whether the API accepted this session's token before and it has not expired.
    pub fn is_verified(&self, session: &Session, now_epoch: i64) -> bool {
        if session.expired_at(now_epoch) {
            return false;
        }
        let verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        verified.contains_key(&session.token)
    }

    /// Records that the API accepted this session's token.
    pub fn mark_verified(&self, session: &Session, now_epoch: i64) {
        if self.ttl.is_zero() {
            return;
        }
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= SWEEP_ABOVE * 8 {
            verified.retain(|_, exp| *exp > now_epoch);
        }
        verified.insert(session.token.clone(), session.expires_at);
    }

    /// Forgets a token (logout).
    pub fn forget(&self, token: &str) {
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        verified.remove(token);
    }

    /// The fresh value stored under (role, key), if it has type `T`.
    pub fn get<T: Any + Send + Sync>(&self, role: Role, key: &str) -> Option<Arc<T>> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (stored, value) = entries.get(&(role, key.to_string()))?;
        if stored.elapsed() >= self.ttl {
            return None;
        }
        value.clone().downcast::<T>().ok()
    }

    /// Stores `value` under (role, key).
    pub fn put<T: Any + Send + Sync>(&self, role: Role, key: &str, value: Arc<T>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= SWEEP_ABOVE {
            let ttl = self.ttl;
            entries.retain(|_, (stored, _)| stored.elapsed() < ttl);
        }
        entries.insert((role, key.to_string()), (Instant::now(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(token: &str, role: Role, exp: i64) -> Session {
        Session {
            token: token.into(),
            user: "u".into(),
            role,
            expires_at: exp,
        }
    }

    #[test]
    fn entries_are_per_role_and_typed() {
        let c = ResponseCache::new(Duration::from_secs(60));
        c.put(Role::Admin, "/gold/runs", Arc::new(vec![1u8]));
        assert!(c.get::<Vec<u8>>(Role::Viewer, "/gold/runs").is_none());
        assert_eq!(
            *c.get::<Vec<u8>>(Role::Admin, "/gold/runs").unwrap(),
            vec![1u8]
        );
        assert!(c.get::<String>(Role::Admin, "/gold/runs").is_none());
    }

    #[test]
    fn entries_expire_and_zero_ttl_disables() {
        let c = ResponseCache::new(Duration::from_millis(1));
        c.put(Role::Viewer, "k", Arc::new(1u32));
        std::thread::sleep(Duration::from_millis(5));
        assert!(c.get::<u32>(Role::Viewer, "k").is_none());
        let off = ResponseCache::new(Duration::ZERO);
        off.put(Role::Viewer, "k", Arc::new(1u32));
        assert!(off.get::<u32>(Role::Viewer, "k").is_none());
    }

    #[test]
    fn gates_are_per_key_and_swept_when_free() {
        let c = ResponseCache::new(Duration::from_secs(60));
        let a = c.gate(Role::Viewer, "k");
        assert!(Arc::ptr_eq(&a, &c.gate(Role::Viewer, "k")));
        assert!(!Arc::ptr_eq(&a, &c.gate(Role::Admin, "k")));
        for i in 0..SWEEP_ABOVE + 1 {
            drop(c.gate(Role::Viewer, &i.to_string()));
        }
        let gates = c.gates.lock().unwrap();
        assert!(gates.len() < SWEEP_ABOVE, "free gates are swept");
        assert!(
            gates.contains_key(&(Role::Viewer, "k".to_string())),
            "held gates stay"
        );
    }

    #[test]
    fn only_accepted_unexpired_tokens_are_verified() {
        let c = ResponseCache::new(Duration::from_secs(60));
        let s = session("t1", Role::Viewer, 1000);
        assert!(!c.is_verified(&s, 10));
        c.mark_verified(&s, 10);
        assert!(c.is_verified(&s, 10));
        assert!(!c.is_verified(&s, 1000), "expired");
        // A forged token claiming the same role is not verified.
        assert!(!c.is_verified(&session("forged", Role::Viewer, 1000), 10));
        c.forget("t1");
        assert!(!c.is_verified(&s, 10));
    }
}
