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
use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tonic::transport::Server;
use tonic::transport::server::{Connected, TcpIncoming};
use tower::layer::layer_fn;

use crate::flight::call_metrics::CallMetrics;
use crate::flight::guard::BearerGuard;
use crate::flight::service::AurumFlightSql;
use crate::state::AppState;
use crate::tls::accepted_connections;

/// A boxed future, as the Flight middlewares return.
pub(crate) type BoxFuture<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;

/// Largest message a client may send (parameter batches, handshakes), in bytes.
const MAX_DECODING_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Serves Flight SQL on `listener` (over TLS with `tls`, an acceptor offering h2)
/// until `shutdown` resolves, then lets running calls finish for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    service: AurumFlightSql,
    tls: Option<(TlsAcceptor, Duration)>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> Result<(), tonic::transport::Error> {
    match tls {
        // The builder's tcp_nodelay only applies to listeners tonic binds itself; ours
        // needs it on the incoming, or Nagle holds each small response frame back for
        // the client's delayed ACK (40 ms per GetFlightInfo).
        None => {
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            serve_on(incoming, state, service, shutdown, grace).await
        }
        // TLS is ours rather than tonic's, so that a renewed certificate is served
        // without a restart (see crate::tls).
        Some((acceptor, handshake_timeout)) => {
            let incoming = accepted_connections(listener, acceptor, handshake_timeout);
            serve_on(incoming, state, service, shutdown, grace).await
        }
    }
}

async fn serve_on<I, IO, IE>(
    incoming: I,
    state: Arc<AppState>,
    service: AurumFlightSql,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> Result<(), tonic::transport::Error>
where
    I: Stream<Item = Result<IO, IE>>,
    IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let server = Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
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
