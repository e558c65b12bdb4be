//! Command line and environment configuration. Flag names follow `aurum-api`'s
//! (`--listen`, `--shutdown-grace-secs`); every flag also reads `AURUM_<FLAG>`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

/// Aurum's dashboard: the gold datamarts in a browser, read through the gold API.
#[derive(Debug, Clone, Parser)]
#[command(name = "aurum-dashboard", version, about)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "AURUM_LISTEN", default_value = "0.0.0.0:8050")]
    pub listen: SocketAddr,
    /// Base URL of the gold API (`aurum-api`), plain HTTP.
    #[arg(long, env = "AURUM_API_URL", default_value = "http://127.0.0.1:8000")]
    pub api_url: String,
    /// Mark the session cookie `Secure` (set it when the dashboard is served over HTTPS,
    /// e.g. behind a TLS-terminating ingress).
    #[arg(long, env = "AURUM_COOKIE_SECURE")]
    pub cookie_secure: bool,
    /// How long API responses are reused, in seconds (0 disables the cache).
    #[arg(long, env = "AURUM_CACHE_TTL_SECS", default_value_t = 10)]
    pub cache_ttl_secs: u64,
    /// Timeout of one request to the API, in seconds.
    #[arg(long, env = "AURUM_API_TIMEOUT_SECS", default_value_t = 10)]
    pub api_timeout_secs: u64,
    /// Seconds to let in-flight requests finish after SIGTERM.
    #[arg(long, env = "AURUM_SHUTDOWN_GRACE_SECS", default_value_t = 20)]
    pub shutdown_grace_secs: u64,
    /// How many of the most valuable customers the overview lists.
    #[arg(long, env = "AURUM_TOP_CUSTOMERS", default_value_t = 10)]
    pub top_customers: usize,
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Checks what clap cannot: the API URL's shape and positive limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let url = self.api_url.trim_end_matches('/');
        // Plain HTTP only: the API is reached inside the cluster (or on loopback), and
        // leaving TLS out keeps a second TLS stack out of the binary.
        if !url.starts_with("http://") || url.len() <= "http://".len() {
            return Err(ConfigError(format!(
                "--api-url must be an http:// URL, got `{}`",
                self.api_url
            )));
        }
        if self.api_timeout_secs == 0 {
            return Err(ConfigError("--api-timeout-secs must be positive".into()));
        }
        if self.top_customers == 0 || self.top_customers > 1000 {
            return Err(ConfigError("--top-customers must be 1 to 1000".into()));
        }
        Ok(())
    }

    /// The API base URL without a trailing slash.
    pub fn api_base(&self) -> String {
        self.api_url.trim_end_matches('/').to_string()
    }

    /// How long cached API responses stay fresh.
    pub fn cache_ttl(&self) -> Duration {
        Duration::from_secs(self.cache_ttl_secs)
    }
}
