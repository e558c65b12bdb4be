//! A short-lived cache of API responses, shared by users of the same role.
//!
//! Safety across users: an entry is keyed by (role, endpoint + query), so an admin's
//! answers (the runs history) never serve a viewer; the gold data is the same for
//! every user of a role. And an entry only serves a token that the API itself has
//! accepted before (and whose expiry has not passed): a forged or expired cookie
//! never reads the cache, it goes to the API and gets its 401.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::session::{Role, Session};

/// Tokens remembered before expired ones are swept.
const SWEEP_TOKENS_ABOVE: usize = 4096;

/// Entries kept when `--cache-max-entries` is not given.
pub const DEFAULT_MAX_ENTRIES: u64 = 256;

type Value = Arc<dyn Any + Send + Sync>;

/// How [`ResponseCache::get_or_load`] came by its value.
pub enum Loaded<T, E> {
    /// This caller's loader ran and succeeded: the API accepted its token.
    Mine(Arc<T>),
    /// Another caller loaded it (this one waited): the caller's token is not
    /// checked by that.
    Theirs(Arc<T>),
    /// This caller's loader failed.
    Failed(E),
    /// Another caller's loader failed (perhaps for its own token), or the cache is
    /// off: the caller loads for itself, uncached.
    NotLoaded,
}

/// The cache: typed values per (role, key) for `ttl`, at most `max_entries` of
/// them (the least used go first), and the tokens the API accepted.
pub struct ResponseCache {
    ttl: Duration,
    max_entries: u64,
    /// None when the TTL is zero (caching off).
    entries: Option<moka::future::Cache<(Role, String), Value>>,
    /// Token -> its `exp` claim, for tokens the API answered 200 to.
    verified: Mutex<HashMap<String, i64>>,
}

impl ResponseCache {
    /// A cache whose entries live `ttl` (zero: nothing is cached), holding at most
    /// `max_entries` entries.
    pub fn new(ttl: Duration, max_entries: u64) -> ResponseCache {
        let entries = (!ttl.is_zero()).then(|| {
            moka::future::Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(ttl)
                .build()
        });
        ResponseCache {
            ttl,
            max_entries,
            entries,
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// The configured maximum of entries.
    pub fn max_entries(&self) -> u64 {
        self.max_entries
    }

    /// Entries held now (after pending evictions have run): at most
    /// [`max_entries`](Self::max_entries). Shown as
    /// `aurum_dashboard_cache_entries` on `/metrics`.
    pub async fn entry_count(&self) -> u64 {
        match &self.entries {
            Some(c) => {
                c.run_pending_tasks().await;
                c.entry_count()
            }
            None => 0,
        }
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
        if verified.len() >= SWEEP_TOKENS_ABOVE {
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
    pub async fn get<T: Any + Send + Sync>(&self, role: Role, key: &str) -> Option<Arc<T>> {
        let entries = self.entries.as_ref()?;
        let value = entries.get(&(role, key.to_string())).await?;
        value.downcast::<T>().ok()
    }

    /// Stores `value` under (role, key).
    pub async fn put<T: Any + Send + Sync>(&self, role: Role, key: &str, value: Arc<T>) {
        if let Some(entries) = &self.entries {
            entries.insert((role, key.to_string()), value).await;
        }
    }

    /// The value under (role, key), loaded with `load` when absent. Callers that
    /// miss together share one load: the first runs its loader, the others wait
    /// for its value.
    pub async fn get_or_load<T, E, Fut>(&self, role: Role, key: &str, load: Fut) -> Loaded<T, E>
    where
        T: Any + Send + Sync,
        Fut: Future<Output = Result<T, E>>,
    {
        let Some(entries) = &self.entries else {
            return Loaded::NotLoaded;
        };
        let ran = AtomicBool::new(false);
        // The loader's own error stays with its caller (waiters get a marker), so
        // it needs neither `Clone` nor sharing.
        let error = Mutex::new(None);
        let init = async {
            ran.store(true, Ordering::Relaxed);
            match load.await {
                Ok(v) => Ok(Arc::new(v) as Value),
                Err(e) => {
                    *error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    Err(())
                }
            }
        };
        let result = entries.try_get_with((role, key.to_string()), init).await;
        let mine = ran.load(Ordering::Relaxed);
        match result {
            Ok(value) => match value.downcast::<T>() {
                Ok(v) if mine => Loaded::Mine(v),
                Ok(v) => Loaded::Theirs(v),
                // Another type under the same key: a caller bug; load uncached.
                Err(_) => Loaded::NotLoaded,
            },
            Err(_) if mine => match error.lock().unwrap_or_else(|p| p.into_inner()).take() {
                Some(e) => Loaded::Failed(e),
                None => Loaded::NotLoaded,
            },
            Err(_) => Loaded::NotLoaded,
        }
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

    #[tokio::test]
    async fn entries_are_per_role_and_typed() {
        let c = ResponseCache::new(Duration::from_secs(60), 10);
        c.put(Role::Admin, "/gold/runs", Arc::new(vec![1u8])).await;
        assert!(c.get::<Vec<u8>>(Role::Viewer, "/gold/runs").await.is_none());
        assert_eq!(
            *c.get::<Vec<u8>>(Role::Admin, "/gold/runs").await.unwrap(),
            vec![1u8]
        );
        assert!(c.get::<String>(Role::Admin, "/gold/runs").await.is_none());
    }

    #[tokio::test]
    async fn entries_expire_and_zero_ttl_disables() {
        let c = ResponseCache::new(Duration::from_millis(1), 10);
        c.put(Role::Viewer, "k", Arc::new(1u32)).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(c.get::<u32>(Role::Viewer, "k").await.is_none());
        let off = ResponseCache::new(Duration::ZERO, 10);
        off.put(Role::Viewer, "k", Arc::new(1u32)).await;
        assert!(off.get::<u32>(Role::Viewer, "k").await.is_none());
        assert!(matches!(
            off.get_or_load(Role::Viewer, "k", async { Ok::<_, ()>(1u32) })
                .await,
            Loaded::NotLoaded
        ));
    }

    #[tokio::test]
    async fn the_entry_count_stays_under_the_cap() {
        let c = ResponseCache::new(Duration::from_secs(60), 16);
        for i in 0..500 {
            c.put(
                Role::Viewer,
                &format!("/gold/top-products?scope={i}"),
                Arc::new(i),
            )
            .await;
        }
        let n = c.entry_count().await;
        assert!(n <= 16, "{n} entries");
    }

    #[tokio::test]
    async fn a_failed_load_is_the_loaders_and_not_cached() {
        let c = ResponseCache::new(Duration::from_secs(60), 16);
        match c
            .get_or_load::<u32, _, _>(Role::Viewer, "k", async { Err("401") })
            .await
        {
            Loaded::Failed(e) => assert_eq!(e, "401"),
            _ => panic!("the loader's error is returned"),
        }
        assert!(matches!(
            c.get_or_load(Role::Viewer, "k", async { Ok::<_, &str>(7u32) })
                .await,
            Loaded::Mine(v) if *v == 7
        ));
        assert!(matches!(
            c.get_or_load(Role::Viewer, "k", async { Ok::<_, &str>(8u32) })
                .await,
            Loaded::Theirs(v) if *v == 7
        ));
    }

    #[test]
    fn only_accepted_unexpired_tokens_are_verified() {
        let c = ResponseCache::new(Duration::from_secs(60), 10);
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
