//! The HTTP server: routes, response headers common to every page, and the
//! graceful shutdown on SIGTERM / Ctrl-C.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::http::header::{CACHE_CONTROL, HeaderName};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

use crate::api_client::ApiClient;
use crate::cache::ResponseCache;
use crate::config::Config;
use crate::data::GoldSource;
use crate::pages::{self, AppState, SharedState};

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

impl ServeError {
    /// Whether this is a usage or configuration error (exit code 2).
    pub fn is_config(&self) -> bool {
        matches!(self, ServeError::Config(_) | ServeError::Bind { .. })
    }
}

/// The router of the dashboard over `state`.
pub fn router(state: SharedState) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/login", get(pages::login_form).post(pages::login_submit))
        .route("/logout", post(pages::logout))
        .route("/runs", get(pages::runs))
        .route("/csv/{file}", get(pages::csv_download))
        .route("/static/style.css", get(pages::style))
        .route("/healthz", get(pages::healthz))
        .route("/readyz", get(pages::readyz))
        .route("/metrics", get(pages::metrics))
        .fallback(pages::not_found)
        .method_not_allowed_fallback(|| async {
            pages::error_page(
                StatusCode::METHOD_NOT_ALLOWED,
                "Not allowed",
                "This address does not take that kind of request.",
            )
        })
        .with_state(state)
        .layer(middleware::from_fn(common_headers))
}

/// Adds security headers, `Cache-Control: no-store` on pages (they hold a user's
/// data), `Server-Timing` with the time spent serving, and logs the request.
async fn common_headers(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let mut response = next.run(request).await;
    let elapsed = started.elapsed();
    let headers = response.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name: &'static str, value: &'static str| {
        h.entry(HeaderName::from_static(name))
            .or_insert(HeaderValue::from_static(value));
    };
    // No scripts at all: the pages work without JavaScript, so none is allowed.
    set(
        headers,
        "content-security-policy",
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "referrer-policy", "same-origin");
    set(headers, "x-frame-options", "DENY");
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if let Ok(v) = HeaderValue::from_str(&format!("app;dur={:.2}", elapsed.as_secs_f64() * 1000.0))
    {
        headers.insert(HeaderName::from_static("server-timing"), v);
    }
    tracing::info!(
        %method,
        path,
        status = response.status().as_u16(),
        ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    response
}

/// The CA certificates of `--api-ca-file`.
fn api_roots(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, ServeError> {
    let bad = |why: String| ServeError::Config(format!("--api-ca-file {}: {why}", path.display()));
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let roots = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(e.to_string()))?;
    if roots.is_empty() {
        return Err(bad("no PEM certificate in the file".into()));
    }
    Ok(roots)
}

/// The state the handlers share, built from `config`.
pub fn app_state(config: Config) -> Result<SharedState, ServeError> {
    config
        .validate()
        .map_err(|e| ServeError::Config(e.to_string()))?;
    let roots = match &config.api_ca_file {
        Some(path) => api_roots(path)?,
        None => Vec::new(),
    };
    let api = ApiClient::new(
        config.api_base(),
        Duration::from_secs(config.api_timeout_secs),
        roots,
    )
    .map_err(|e| ServeError::Config(e.to_string()))?;
    let gold = GoldSource::new(
        api,
        ResponseCache::new(config.cache_ttl(), config.cache_max_entries),
    );
    Ok(Arc::new(AppState { config, gold }))
}

/// Resolves on SIGTERM or Ctrl-C.
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
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Serves the dashboard until SIGTERM, then lets requests finish for up to the
/// configured grace period.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    let addr = config.listen;
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let state = app_state(config)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    tracing::info!(listen = %local, api = state.gold.api().base(), "aurum-dashboard serving");
    let stopping = Arc::new(tokio::sync::Notify::new());
    let notify = stopping.clone();
    // The peer address reaches the login handler, which forwards it to the API.
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        notify.notify_one();
    });
    tokio::select! {
        result = server => result?,
        _ = async {
            stopping.notified().await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace_secs = grace.as_secs(), "requests still running after the grace period; exiting");
        }
    }
    tracing::info!("stopped");
    Ok(())
}
