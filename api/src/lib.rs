//! `aurum-api`: the gold API of Aurum.
//!
//! Serves the four gold datamarts from in-memory snapshots that are refreshed when
//! `gold_runs` records a newer successful run, behind JWT authentication.

pub mod auth;
pub mod client_addr;
pub mod config;
pub mod flight;
pub mod gold;
pub mod login;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod ratelimit;
pub mod routes;
pub mod server;
pub mod state;
pub mod tls;
pub mod users;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aurum_gold::postgres::PgConfig;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

use crate::client_addr::TrustedProxies;
use crate::config::{ConfigError, ServeArgs};
use crate::gold::store::{GoldStore, run_refresher};
use crate::ratelimit::FailureLimiter;
use crate::state::AppState;
use crate::users::{Role, User, UserStore};

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration (exit code 2).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The users file is unusable (exit code 2).
    #[error(transparent)]
    Users(#[from] users::UsersError),
    /// The JWT keys are unusable (exit code 2).
    #[error(transparent)]
    Keys(#[from] auth::KeyError),
    /// The database URL is invalid (exit code 2).
    #[error("invalid DATABASE_URL: {0}")]
    DatabaseUrl(String),
    /// The Flight SQL server failed.
    #[error("Flight SQL server: {0}")]
    Flight(String),
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl StartError {
    /// Whether the failure is a usage/configuration error (exit code 2).
    pub fn is_config(&self) -> bool {
        !matches!(self, StartError::Bind { .. } | StartError::Flight(_))
    }
}

/// Builds a connection pool (connections are opened lazily).
pub fn build_pool(url: &str, max_size: usize) -> Result<Pool, StartError> {
    // sslmode and sslrootcert as libpq reads them (aurum_gold::postgres).
    let parsed = PgConfig::from_url(url).map_err(|e| StartError::DatabaseUrl(e.to_string()))?;
    let tls = parsed.tls();
    let mut pg = parsed.config;
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(Duration::from_secs(5));
    }
    if pg.get_application_name().is_none() {
        pg.application_name("aurum-api");
    }
    let mgr = Manager::from_config(
        pg,
        tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(mgr)
        .max_size(max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()
        .map_err(|e| StartError::DatabaseUrl(e.to_string()))
}

/// The built-in dev user, if `--dev`.
type DevUsers = Option<HashMap<String, User>>;

fn load_users(args: &ServeArgs) -> Result<(UserStore, DevUsers), StartError> {
    let mut dev_users = None;
    let mut store = match &args.users_file {
        Some(path) => Some(UserStore::load(path)?),
        None => None,
    };
    if args.dev {
        let password = match std::env::var("AURUM_DEV_PASSWORD") {
            Ok(p) if !p.is_empty() => p,
            _ => {
                let mut b = [0u8; 12];
                rand::fill(&mut b);
                let p: String = b.iter().map(|x| format!("{x:02x}")).collect();
                // Printed on stderr, not logged: dev mode only.
                eprintln!("aurum-api --dev: log in as `dev` with password `{p}` (role admin)");
                p
            }
        };
        let hash = users::hash_password(&password, None)?;
        let mut map = HashMap::new();
        map.insert(
            "dev".to_string(),
            User {
                hash,
                role: Role::Admin,
            },
        );
        if let Some(existing) = &store
            && existing.is_empty()
        {
            store = None;
        }
        store = Some(match store {
            None => UserStore::from_users(map.clone())?,
            Some(s) => s.with_extra(map.clone())?,
        });
        dev_users = Some(map);
    }
    let store = store.ok_or_else(|| ConfigError::Invalid("no users configured".into()))?;
    Ok((store, dev_users))
}

/// Re-reads the users file every `interval` and swaps the user set when its content
/// changed (a mounted Kubernetes Secret is updated in place). A file that cannot be
/// read or parsed is reported and the previous users are kept.
async fn run_users_reloader(
    state: Arc<AppState>,
    path: std::path::PathBuf,
    dev_users: DevUsers,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut last = tokio::fs::read(&path).await.ok();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let content = match tokio::fs::read(&path).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot re-read users file; keeping the current users");
                continue;
            }
        };
        if last.as_deref() == Some(content.as_slice()) {
            continue;
        }
        let p = path.clone();
        let extra = dev_users.clone();
        let text = String::from_utf8_lossy(&content).into_owned();
        let parsed = tokio::task::spawn_blocking(move || {
            let store = UserStore::parse(&p, &text)?;
            match extra {
                Some(map) => store.with_extra(map),
                None => Ok(store),
            }
        })
        .await;
        match parsed {
            Ok(Ok(store)) => {
                tracing::info!(users = store.len(), "users file changed: users reloaded");
                state.set_users(store);
                last = Some(content);
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "users file changed but is invalid; keeping the current users");
                last = Some(content);
            }
            Err(e) => tracing::warn!(error = %e, "users reload failed"),
        }
    }
}

async fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, StartError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

/// Resolves when `rx` says shutdown started.
async fn stopping(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Runs the REST server and the Flight SQL server until SIGTERM/SIGINT.
pub async fn serve(args: ServeArgs) -> Result<(), StartError> {
    args.validate()?;
    let material = args.key_material()?;
    let keys = auth::JwtKeys::new(
        material,
        &args.jwt_issuer,
        &args.jwt_audience,
        args.token_ttl_secs,
        args.jwt_leeway_secs,
    )?;
    if !keys.can_issue() {
        tracing::warn!("no private key: /login is disabled, tokens are only verified");
    }
    let (users, dev_users) = load_users(&args)?;
    tracing::info!(users = users.len(), "users loaded");
    let url = args.database_url.clone().unwrap_or_default();
    let pool = build_pool(&url, args.db_pool_size)?;
    let gold = Arc::new(GoldStore::new(&args.db_schema));
    let window = Duration::from_secs(args.login_failure_window_secs);
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let state = Arc::new(AppState {
        pool: pool.clone(),
        gold: gold.clone(),
        keys,
        users: std::sync::RwLock::new(Arc::new(users)),
        login_user_limiter: FailureLimiter::new(args.login_max_failures_per_user, window),
        login_ip_limiter: FailureLimiter::new(args.login_max_failures_per_ip, window),
        trusted_proxies: TrustedProxies::new(args.trusted_proxies.iter().copied()),
        hash_permits: tokio::sync::Semaphore::new(cpus),
        metrics: metrics::Metrics::default(),
        schema: args.db_schema.clone(),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let users_reloader = args.users_file.clone().map(|path| {
        tokio::spawn(run_users_reloader(
            state.clone(),
            path,
            dev_users,
            Duration::from_secs(args.users_reload_secs.max(1)),
            stop_rx.clone(),
        ))
    });
    let app = routes::router(
        state.clone(),
        &routes::RouterOptions {
            max_body_bytes: args.max_body_bytes,
            request_timeout: Duration::from_secs(args.request_timeout_secs),
            cors_allow_origins: args
                .cors_allow_origins
                .iter()
                .filter(|o| !o.trim().is_empty())
                .cloned()
                .collect(),
        },
    );
    let certificate = match (&args.tls_cert_file, &args.tls_key_file) {
        (Some(cert), Some(key)) => Some(tls::ServerCertificate::load(cert, key)?),
        _ => None,
    };
    let acceptor = certificate
        .as_ref()
        .map(|c| c.acceptor(&[b"http/1.1"]))
        .transpose()?;
    let flight_acceptor = certificate
        .as_ref()
        .map(|c| c.acceptor(&[b"h2"]))
        .transpose()?;
    let listener = bind(args.listen).await?;
    let local = listener.local_addr().unwrap_or(args.listen);
    let flight = if args.flight.disabled {
        None
    } else {
        let flight_pool = build_pool(&url, args.flight.db_pool_size)?;
        let runner = flight::query::QueryRunner::new(
            flight_pool.clone(),
            flight::query::QueryLimits {
                batch_rows: args.flight.batch_rows,
                max_rows: args.flight.max_rows,
                timeout: Duration::from_secs(args.flight.query_timeout_secs),
            },
        );
        let service = flight::service::AurumFlightSql::new(state.clone(), runner)
            .map_err(|e| StartError::Flight(e.message().to_string()))?;
        let flight_listener = bind(args.flight.listen).await?;
        Some((flight_listener, service, flight_pool))
    };

    // First load before accepting traffic, bounded so a down database does not block start-up.
    let loaded = tokio::time::timeout(Duration::from_secs(30), gold.refresh_all(&pool)).await;
    if loaded.is_err() {
        tracing::warn!("initial datamart load timed out; continuing in the background");
    }
    let refresher = tokio::spawn(run_refresher(
        gold.clone(),
        pool.clone(),
        Duration::from_millis(args.refresh_interval_ms.max(50)),
        stop_rx,
    ));
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    tracing::info!(addr = %local, "listening on {scheme}://{local}");
    // One signal stops both servers.
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = shutdown_tx.send(true);
    });
    let grace = Duration::from_secs(args.shutdown_grace_secs);
    let header_read_timeout = Duration::from_secs(args.header_read_timeout_secs.max(1));
    let tls_reloader = certificate.map(|c| {
        tokio::spawn(tls::run_reloader(
            c,
            Duration::from_secs(args.tls_reload_secs),
            shutdown_rx.clone(),
        ))
    });
    let rest = server::serve(
        listener,
        app,
        server::ServerOptions {
            max_header_bytes: args.max_header_bytes,
            header_read_timeout,
            shutdown_grace: grace,
        },
        acceptor,
        stopping(shutdown_rx.clone()),
    );
    let (flight_result, flight_pool) = match flight {
        None => {
            rest.await;
            (Ok(()), None)
        }
        Some((flight_listener, service, flight_pool)) => {
            let flight_addr = flight_listener.local_addr().unwrap_or(args.flight.listen);
            let scheme = if flight_acceptor.is_some() {
                "grpc+tls"
            } else {
                "grpc"
            };
            tracing::info!(addr = %flight_addr, "Flight SQL listening on {scheme}://{flight_addr}");
            let flight = flight::serve(
                flight_listener,
                state.clone(),
                service,
                flight_acceptor.map(|a| (a, header_read_timeout)),
                stopping(shutdown_rx.clone()),
                grace,
            );
            let ((), result) = tokio::join!(rest, flight);
            (result, Some(flight_pool))
        }
    };
    let _ = stop_tx.send(true);
    let _ = refresher.await;
    if let Some(r) = users_reloader {
        let _ = r.await;
    }
    if let Some(r) = tls_reloader {
        r.abort();
    }
    pool.close();
    if let Some(p) = flight_pool {
        p.close();
    }
    if let Err(e) = flight_result {
        tracing::error!(error = %e, "Flight SQL server failed");
        return Err(StartError::Flight(e.to_string()));
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}
