//! Command line and environment configuration.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::auth::KeyMaterial;
use crate::client_addr::ProxyNet;

/// Aurum's gold API: JWT-secured, paginated REST over the gold datamarts.
#[derive(Debug, Parser)]
#[command(name = "aurum-api", version, about)]
pub struct Cli {
    /// What to do instead of serving (the default).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Server options.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read a password from stdin and print its argon2id hash (or a users-file line).
    HashPassword(HashPasswordArgs),
}

/// Options of `hash-password`.
#[derive(Debug, Args)]
pub struct HashPasswordArgs {
    /// Print a whole users-file line `USERNAME:HASH:ROLE` for this user.
    #[arg(long)]
    pub username: Option<String>,
    /// Role for the users-file line.
    #[arg(long, default_value = "viewer", requires = "username")]
    pub role: String,
}

/// JWT signing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a shared secret.
    #[value(name = "HS256")]
    Hs256,
    /// RSA PKCS#1 v1.5 with SHA-256.
    #[value(name = "RS256")]
    Rs256,
    /// ECDSA P-256 with SHA-256.
    #[value(name = "ES256")]
    Es256,
}

/// Options of the server.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "AURUM_LISTEN", default_value = "0.0.0.0:8000")]
    pub listen: SocketAddr,
    /// PostgreSQL URL of the gold database.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Schema holding the gold tables.
    #[arg(long, env = "AURUM_DB_SCHEMA", default_value = "public")]
    pub db_schema: String,
    /// Maximum connections in the pool.
    #[arg(long, env = "AURUM_DB_POOL_SIZE", default_value_t = 8)]
    pub db_pool_size: usize,
    /// How often to check `gold_runs` for newly published tables, in milliseconds.
    #[arg(long, env = "AURUM_REFRESH_INTERVAL_MS", default_value_t = 1000)]
    pub refresh_interval_ms: u64,
    /// File of `username:argon2id-hash:role` lines (e.g. a mounted Kubernetes Secret).
    #[arg(long, env = "AURUM_USERS_FILE")]
    pub users_file: Option<PathBuf>,
    /// How often to re-read the users file for changes, in seconds.
    #[arg(long, env = "AURUM_USERS_RELOAD_SECS", default_value_t = 10)]
    pub users_reload_secs: u64,
    /// Development mode: adds a built-in admin user `dev` (password from
    /// AURUM_DEV_PASSWORD or generated and logged) and allows a generated JWT secret.
    #[arg(long, env = "AURUM_DEV")]
    pub dev: bool,
    /// JWT signing algorithm.
    #[arg(long, env = "AURUM_JWT_ALGORITHM", value_enum, default_value = "HS256")]
    pub jwt_algorithm: JwtAlgorithm,
    /// File holding the HS256 secret (at least 32 bytes); or set AURUM_JWT_SECRET.
    #[arg(long, env = "AURUM_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,
    /// PEM private key for RS256/ES256 (omit to only verify tokens).
    #[arg(long, env = "AURUM_JWT_PRIVATE_KEY_FILE")]
    pub jwt_private_key_file: Option<PathBuf>,
    /// PEM public key for RS256/ES256.
    #[arg(long, env = "AURUM_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,
    /// `iss` claim issued and required.
    #[arg(long, env = "AURUM_JWT_ISSUER", default_value = "aurum-api")]
    pub jwt_issuer: String,
    /// `aud` claim issued and required.
    #[arg(long, env = "AURUM_JWT_AUDIENCE", default_value = "aurum")]
    pub jwt_audience: String,
    /// Access token lifetime in seconds.
    #[arg(long, env = "AURUM_TOKEN_TTL_SECS", default_value_t = 900)]
    pub token_ttl_secs: u64,
    /// Clock leeway when checking `exp`/`iat`, in seconds.
    #[arg(long, env = "AURUM_JWT_LEEWAY_SECS", default_value_t = 5)]
    pub jwt_leeway_secs: u64,
    /// Failed logins allowed per user name within the window (0 disables).
    #[arg(long, env = "AURUM_LOGIN_MAX_FAILURES_PER_USER", default_value_t = 5)]
    pub login_max_failures_per_user: usize,
    /// Failed logins allowed per client address within the window (0 disables).
    #[arg(long, env = "AURUM_LOGIN_MAX_FAILURES_PER_IP", default_value_t = 20)]
    pub login_max_failures_per_ip: usize,
    /// Proxies (ingress controller, the dashboard) whose `X-Forwarded-For` names the
    /// client for the per-address login limits: addresses or networks, comma
    /// separated (e.g. `10.244.0.0/16`). Empty: the peer is the client.
    #[arg(long, env = "AURUM_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<ProxyNet>,
    /// The failed-login window, in seconds.
    #[arg(long, env = "AURUM_LOGIN_FAILURE_WINDOW_SECS", default_value_t = 300)]
    pub login_failure_window_secs: u64,
    /// Origins allowed by CORS (comma separated; empty: CORS off). `*` allows any.
    #[arg(long, env = "AURUM_CORS_ALLOW_ORIGINS", value_delimiter = ',')]
    pub cors_allow_origins: Vec<String>,
    /// Per-request timeout, in seconds.
    #[arg(long, env = "AURUM_REQUEST_TIMEOUT_SECS", default_value_t = 10)]
    pub request_timeout_secs: u64,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "AURUM_MAX_BODY_BYTES", default_value_t = 16 * 1024)]
    pub max_body_bytes: usize,
    /// Largest accepted request head (request line plus headers), in bytes (>= 8192).
    #[arg(long, env = "AURUM_MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub max_header_bytes: usize,
    /// Seconds a client has to send its request head.
    #[arg(long, env = "AURUM_HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,
    /// Seconds to let in-flight requests finish after SIGTERM.
    #[arg(long, env = "AURUM_SHUTDOWN_GRACE_SECS", default_value_t = 20)]
    pub shutdown_grace_secs: u64,
    /// PEM certificate chain: serve REST and Flight SQL over TLS (with --tls-key-file).
    #[arg(long, env = "AURUM_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file.
    #[arg(long, env = "AURUM_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
    /// How often to re-read the TLS files for a renewed certificate, in seconds.
    #[arg(long, env = "AURUM_TLS_RELOAD_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub tls_reload_secs: u64,
    /// Flight SQL options.
    #[command(flatten)]
    pub flight: FlightArgs,
}

/// Options of the Arrow Flight SQL endpoint.
#[derive(Debug, Clone, Args)]
pub struct FlightArgs {
    /// Address of the Arrow Flight SQL endpoint.
    #[arg(
        id = "flight_listen",
        long = "flight-listen",
        env = "AURUM_FLIGHT_LISTEN",
        default_value = "0.0.0.0:50051"
    )]
    pub listen: SocketAddr,
    /// Do not serve Arrow Flight SQL.
    #[arg(
        id = "flight_disabled",
        long = "flight-disabled",
        env = "AURUM_FLIGHT_DISABLED"
    )]
    pub disabled: bool,
    /// Rows per Arrow record batch streamed to clients.
    #[arg(
        id = "flight_batch_rows",
        long = "flight-batch-rows",
        env = "AURUM_FLIGHT_BATCH_ROWS",
        default_value_t = 8192
    )]
    pub batch_rows: usize,
    /// Most rows one Flight SQL query may return (more fails the query).
    #[arg(
        id = "flight_max_rows",
        long = "flight-max-rows",
        env = "AURUM_FLIGHT_MAX_ROWS",
        default_value_t = 10_000_000
    )]
    pub max_rows: u64,
    /// PostgreSQL statement_timeout of a Flight SQL query, in seconds.
    #[arg(
        id = "flight_query_timeout_secs",
        long = "flight-query-timeout-secs",
        env = "AURUM_FLIGHT_QUERY_TIMEOUT_SECS",
        default_value_t = 300
    )]
    pub query_timeout_secs: u64,
    /// Connections to PostgreSQL for Flight SQL queries (a pool apart from REST's, so
    /// long analytical pulls cannot starve the REST API).
    #[arg(
        id = "flight_db_pool_size",
        long = "flight-db-pool-size",
        env = "AURUM_FLIGHT_DB_POOL_SIZE",
        default_value_t = 4
    )]
    pub db_pool_size: usize,
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A setting is missing or invalid.
    #[error("{0}")]
    Invalid(String),
    /// A file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// Which setting.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Minimum HS256 secret length.
pub const MIN_SECRET_BYTES: usize = 32;

fn read_file(what: &'static str, path: &PathBuf) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|source| ConfigError::Read {
        what,
        path: path.clone(),
        source,
    })
}

impl ServeArgs {
    /// Reads the JWT key material the flags point at. `dev` allows a random secret.
    pub fn key_material(&self) -> Result<KeyMaterial, ConfigError> {
        match self.jwt_algorithm {
            JwtAlgorithm::Hs256 => {
                let secret = if let Some(path) = &self.jwt_secret_file {
                    let mut s = read_file("JWT secret file", path)?;
                    while s.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                        s.pop();
                    }
                    Some(s)
                } else {
                    std::env::var_os("AURUM_JWT_SECRET").map(|v| v.into_encoded_bytes())
                };
                match secret {
                    Some(s) if s.len() >= MIN_SECRET_BYTES => Ok(KeyMaterial::Hs256(s)),
                    Some(s) => Err(ConfigError::Invalid(format!(
                        "the JWT secret is {} bytes; at least {MIN_SECRET_BYTES} are required \
                         (e.g. `head -c 48 /dev/urandom | base64`)",
                        s.len()
                    ))),
                    None if self.dev => {
                        let mut s = vec![0u8; 48];
                        rand::fill(&mut s[..]);
                        tracing::warn!("dev mode: using a random JWT secret for this process");
                        Ok(KeyMaterial::Hs256(s))
                    }
                    None => Err(ConfigError::Invalid(
                        "no JWT secret: set --jwt-secret-file or AURUM_JWT_SECRET (>= 32 bytes)"
                            .into(),
                    )),
                }
            }
            alg => {
                let public = self.jwt_public_key_file.as_ref().ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "{alg:?} needs --jwt-public-key-file (and --jwt-private-key-file to issue tokens)"
                    ))
                })?;
                let public_pem = read_file("JWT public key", public)?;
                let private_pem = self
                    .jwt_private_key_file
                    .as_ref()
                    .map(|p| read_file("JWT private key", p))
                    .transpose()?;
                Ok(if alg == JwtAlgorithm::Rs256 {
                    KeyMaterial::Rs256 {
                        private_pem,
                        public_pem,
                    }
                } else {
                    KeyMaterial::Es256 {
                        private_pem,
                        public_pem,
                    }
                })
            }
        }
    }

    /// Checks settings that clap cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.database_url.is_none() {
            return Err(ConfigError::Invalid(
                "no database: set --database-url or DATABASE_URL".into(),
            ));
        }
        if self.users_file.is_none() && !self.dev {
            return Err(ConfigError::Invalid(
                "no users: set --users-file (lines `username:argon2id-hash:role`, see \
                 `aurum-api hash-password`) or use --dev"
                    .into(),
            ));
        }
        if self.db_pool_size == 0 {
            return Err(ConfigError::Invalid(
                "--db-pool-size must be at least 1".into(),
            ));
        }
        if self.token_ttl_secs == 0 {
            return Err(ConfigError::Invalid(
                "--token-ttl-secs must be positive".into(),
            ));
        }
        if self.flight.batch_rows == 0 || self.flight.batch_rows > 1_000_000 {
            return Err(ConfigError::Invalid(
                "--flight-batch-rows must be between 1 and 1000000".into(),
            ));
        }
        if self.flight.db_pool_size == 0 {
            return Err(ConfigError::Invalid(
                "--flight-db-pool-size must be at least 1".into(),
            ));
        }
        if self.flight.query_timeout_secs == 0 {
            return Err(ConfigError::Invalid(
                "--flight-query-timeout-secs must be positive".into(),
            ));
        }
        if self.db_schema.is_empty() {
            return Err(ConfigError::Invalid("--db-schema must not be empty".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "aurum-api",
            "--listen",
            "127.0.0.1:1",
            "--flight-listen",
            "127.0.0.1:2",
            "--flight-batch-rows",
            "10",
        ])
        .unwrap();
        assert_eq!(cli.serve.listen.port(), 1);
        assert_eq!(cli.serve.flight.listen.port(), 2);
        assert_eq!(cli.serve.flight.batch_rows, 10);
        assert!(Cli::try_parse_from(["aurum-api", "--tls-cert-file", "c.pem"]).is_err());
    }
}
