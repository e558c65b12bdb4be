//! Password logins, shared by REST `POST /login` and the Flight SQL handshake: the
//! failed-login limits, the bounded argon2 check and the token issued are the same
//! whichever protocol the client speaks.

use std::net::IpAddr;
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
///
/// The attempt is counted against the user name and the address before the
/// password check and refunded only when the password is right, so requests in
/// flight at once get no more checks than the limits allow.
pub async fn login(
    state: &AppState,
    username: &str,
    password: String,
    ip: IpAddr,
) -> Result<IssuedToken, LoginError> {
    let now = Instant::now();
    let user_key = username.to_string();
    let (user_attempt, ip_attempt) = match (
        state.login_user_limiter.attempt(&user_key, now),
        state.login_ip_limiter.attempt(&ip, now),
    ) {
        (Ok(user), Ok(ip)) => (user, ip),
        (user, ip) => {
            // Refused: no password check, so whichever was counted is refunded.
            let waits = [
                user.map(crate::ratelimit::Attempt::refund).err(),
                ip.map(crate::ratelimit::Attempt::refund).err(),
            ];
            let wait = waits.into_iter().flatten().max().unwrap_or_default();
            state.metrics.login_rate_limited.inc();
            return Err(LoginError::RateLimited(wait));
        }
    };
    // argon2 is CPU-heavy: bounded concurrency, on blocking threads. No check
    // made (shutting down) refunds the attempts; a request abandoned while its
    // check runs keeps them counted (dropped unrefunded), as a wrong password.
    let Ok(permit) = state.hash_permits.acquire().await else {
        user_attempt.refund();
        ip_attempt.refund();
        return Err(LoginError::Unavailable);
    };
    let users = state.users();
    let user = user_key.clone();
    let role = tokio::task::spawn_blocking(move || users.verify(&user, &password))
        .await
        .map_err(|_| LoginError::Unavailable)?;
    drop(permit);
    let Some(role) = role else {
        // The attempts stay counted as failures.
        drop((user_attempt, ip_attempt));
        state.metrics.login_failures.inc();
        tracing::info!(%ip, "failed login");
        return Err(LoginError::WrongCredentials);
    };
    user_attempt.refund();
    ip_attempt.refund();
    state.login_user_limiter.clear_failures(&user_key);
    let (token, expires_in) = state.keys.issue(username, role).map_err(|e| {
        tracing::error!(error = %e, "cannot issue token");
        LoginError::CannotIssue
    })?;
    state.metrics.login_successes.inc();
    Ok(IssuedToken {
        token,
        expires_in,
        role,
    })
}
