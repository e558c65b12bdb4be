//! Command line and environment configuration. Flag names follow `aurum-api`'s
//! (`--listen`, `--shutdown-grace-secs`); every flag also reads `AURUM_<FLAG>`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Aurum's dashboard: the gold datamarts in a browser, read through the gold API.
#[derive(Debug, Clone, Parser)]
#[command(name = "aurum-dashboard", version, about)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "AURUM_LISTEN", default_value = "0.0.0.0:8050")]
    pub listen: SocketAddr,
    /// Base URL of the gold API (`aurum-api`): `http://`, or `https://` with
    /// --api-ca-file.
    #[arg(long, env = "AURUM_API_URL", default_value = "http://127.0.0.1:8000")]
    pub api_url: String,
    /// PEM file of the CA certificate(s) that signed the API's TLS certificate, the
    /// only roots trusted for an `https://` --api-url.
    #[arg(long, env = "AURUM_API_CA_FILE")]
    pub api_ca_file: Option<PathBuf>,
    /// Mark the session cookie `Secure` (set it when the dashboard is served over HTTPS,
    /// e.g. behind a TLS-terminating ingress).
    #[arg(long, env = "AURUM_COOKIE_SECURE")]
    pub cookie_secure: bool,
    /// How long API responses are reused, in seconds (0 disables the cache).
    #[arg(long, env = "AURUM_CACHE_TTL_SECS", default_value_t = 10)]
    pub cache_ttl_secs: u64,
    /// The most API responses the cache holds (the least used go first).
    #[arg(long, env = "AURUM_CACHE_MAX_ENTRIES", default_value_t = crate::cache::DEFAULT_MAX_ENTRIES)]
    pub cache_max_entries: u64,
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
        let https = match url.split_once("://") {
            Some(("http", host)) if !host.is_empty() => false,
            Some(("https", host)) if !host.is_empty() => true,
            _ => {
                return Err(ConfigError(format!(
                    "--api-url must be an http:// or https:// URL, got `{}`",
                    self.api_url
                )));
            }
        };
        // The API's certificate comes from a private CA (the cluster's, a
        // cert-manager issuer): which one is trusted is said, never guessed.
        match (https, &self.api_ca_file) {
            (true, None) => {
                return Err(ConfigError(
                    "an https:// --api-url needs --api-ca-file, the CA that signed the API's \
                     certificate"
                        .into(),
                ));
            }
            (false, Some(_)) => {
                return Err(ConfigError(
                    "--api-ca-file is only used with an https:// --api-url".into(),
                ));
            }
            _ => {}
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
