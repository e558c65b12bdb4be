//! Shared application state.

use std::net::IpAddr;
use std::sync::Arc;

use deadpool_postgres::Pool;
use tokio::sync::Semaphore;

use crate::auth::JwtKeys;
use crate::client_addr::TrustedProxies;
use crate::gold::store::GoldStore;
use crate::metrics::Metrics;
use crate::ratelimit::FailureLimiter;
use crate::users::UserStore;

/// Everything handlers need.
pub struct AppState {
    /// Connection pool to the gold database.
    pub pool: Pool,
    /// In-memory snapshots of the gold tables.
    pub gold: Arc<GoldStore>,
    /// JWT keys and validation.
    pub keys: JwtKeys,
    /// Users allowed to log in (swapped when the users file changes).
    pub users: std::sync::RwLock<Arc<UserStore>>,
    /// Failed logins per user name.
    pub login_user_limiter: FailureLimiter<String>,
    /// Failed logins per client address.
    pub login_ip_limiter: FailureLimiter<IpAddr>,
    /// Whose `X-Forwarded-For` names the client of a login.
    pub trusted_proxies: TrustedProxies,
    /// Bounds concurrent argon2 verifications (CPU-heavy).
    pub hash_permits: Semaphore,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Schema of the gold tables (quoted when used).
    pub schema: String,
}

impl AppState {
    /// The current users.
    pub fn users(&self) -> Arc<UserStore> {
        self.users.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the users.
    pub fn set_users(&self, users: UserStore) {
        *self.users.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(users);
    }
}
