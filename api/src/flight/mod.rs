//! Arrow Flight SQL over the gold datamarts, next to the REST API and sharing its
//! users, password check, JWT keys, metrics and shutdown.
//!
//! - [`guard`]: every call but `Handshake` needs `authorization: Bearer <jwt>`.
//! - [`service`]: handshake (basic credentials → the JWT `/login` issues),
//!   catalog listings, statements and prepared statements.
//! - [`sql`]: only one read-only SELECT over the gold tables is accepted.
//! - [`query`]: queries run in READ ONLY transactions and stream as record batches.
//! - [`pg_arrow`]: PostgreSQL types as Arrow types, decoded exactly.
//! - [`catalog`]: the tables and their schemas.
//! - [`keys`], [`type_info`]: primary keys (no foreign keys) and type info, for
//!   JDBC/ODBC-style clients.
//! - [`call_metrics`]: calls by method and status code in `/metrics`.

pub mod call_metrics;
pub mod catalog;
pub mod guard;
pub mod keys;
pub mod pg_arrow;
pub mod query;
pub mod service;
pub mod sql;
pub mod type_info;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tower::layer::layer_fn;

use crate::flight::call_metrics::CallMetrics;
use crate::flight::guard::BearerGuard;
use crate::flight::service::AurumFlightSql;
use crate::state::AppState;
use crate::tls::TlsFiles;

/// A boxed future, as the Flight middlewares return.
pub(crate) type BoxFuture<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;

/// Largest message a client may send (parameter batches, handshakes), in bytes.
const MAX_DECODING_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Serves Flight SQL on `listener` until `shutdown` resolves, then lets running
/// calls finish for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    service: AurumFlightSql,
    tls: Option<&TlsFiles>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> Result<(), tonic::transport::Error> {
    let mut builder = Server::builder().http2_keepalive_interval(Some(Duration::from_secs(30)));
    if let Some(files) = tls {
        builder = builder.tls_config(
            ServerTlsConfig::new().identity(Identity::from_pem(&files.cert_pem, &files.key_pem)),
        )?;
    }
    let server = builder
        .layer(layer_fn({
            let state = state.clone();
            move |inner| CallMetrics::new(inner, state.clone())
        }))
        .layer(layer_fn(move |inner| {
            BearerGuard::new(inner, state.clone())
        }))
        .add_service(
            FlightServiceServer::new(service).max_decoding_message_size(MAX_DECODING_MESSAGE_BYTES),
        );
    let (fired_tx, mut fired_rx) = tokio::sync::watch::channel(false);
    let signal = async move {
        shutdown.await;
        let _ = fired_tx.send(true);
    };
    // The builder's tcp_nodelay only applies to listeners tonic binds itself; ours
    // needs it on the incoming, or Nagle holds each small response frame back for
    // the client's delayed ACK (40 ms per GetFlightInfo).
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let serving = server.serve_with_incoming_shutdown(incoming, signal);
    tokio::pin!(serving);
    let grace_over = async move {
        let _ = fired_rx.wait_for(|fired| *fired).await;
        tracing::info!("flight: shutting down: letting running calls finish");
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = &mut serving => result,
        () = grace_over => {
            tracing::warn!("flight: grace period over: closing remaining calls");
            Ok(())
        }
    }
}
