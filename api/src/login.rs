//! Password logins, shared by REST `POST /login` and the Flight SQL handshake: the
//! failed-login limits, the bounded argon2 check and the token issued are the same
//! whichever protocol the client speaks.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::state::AppState;
use crate::users::Role;

/// Why a login was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Too many recent failures for this user name or client address.
    #[error("too many failed logins; try again in {} s", retry_after_secs(*.0))]
    RateLimited(Duration),
    /// Unknown user or wrong password (which of the two is not told).
    #[error("wrong user name or password")]
    WrongCredentials,
    /// The server is shutting down or the check could not run.
    #[error("the password check is unavailable")]
    Unavailable,
    /// This instance has no signing key (verify-only).
    #[error("this instance cannot issue tokens")]
    CannotIssue,
}

/// Whole seconds to wait, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// A successful login: the access token and its lifetime.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The JWT.
    pub token: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
    /// The user's role.
    pub role: Role,
}

/// Checks `username`/`password` from `ip` against the users, under the failed-login
/// limits, and issues an access token. Counts the outcome in the login metrics.
pub async fn login(
    state: &AppState,
    username: &str,
    password: String,
    ip: IpAddr,
) -> Result<IssuedToken, LoginError> {
    let now = Instant::now();
    let blocked = [
        state
            .login_user_limiter
            .blocked_for(&username.to_string(), now),
        state.login_ip_limiter.blocked_for(&ip, now),
    ]
    .into_iter()
    .flatten()
    .max();
    if let Some(wait) = blocked {
        state
            .metrics
            .login_rate_limited
            .fetch_add(1, Ordering::Relaxed);
        return Err(LoginError::RateLimited(wait));
    }
    // argon2 is CPU-heavy: bounded concurrency, on blocking threads.
    let permit = state
        .hash_permits
        .acquire()
        .await
        .map_err(|_| LoginError::Unavailable)?;
    let users = state.users();
    let user = username.to_string();
    let role = tokio::task::spawn_blocking(move || users.verify(&user, &password))
        .await
        .map_err(|_| LoginError::Unavailable)?;
    drop(permit);
    let Some(role) = role else {
        state
            .login_user_limiter
            .record_failure(&username.to_string(), Instant::now());
        state.login_ip_limiter.record_failure(&ip, Instant::now());
        state.metrics.login_failures.fetch_add(1, Ordering::Relaxed);
        tracing::info!(%ip, "failed login");
        return Err(LoginError::WrongCredentials);
    };
    state.login_user_limiter.clear(&username.to_string());
    let (token, expires_in) = state.keys.issue(username, role).map_err(|e| {
        tracing::error!(error = %e, "cannot issue token");
        LoginError::CannotIssue
    })?;
    state
        .metrics
        .login_successes
        .fetch_add(1, Ordering::Relaxed);
    Ok(IssuedToken {
        token,
        expires_in,
        role,
    })
}
