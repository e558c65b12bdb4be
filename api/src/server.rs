//! The HTTP/1.1 server: header size limit, header read timeout, optional TLS,
//! graceful shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Server limits.
#[derive(Debug, Clone, Copy)]
pub struct ServerOptions {
    /// Largest request head, bytes (at least 8192).
    pub max_header_bytes: usize,
    /// Time allowed to send the request head.
    pub header_read_timeout: Duration,
    /// Time allowed for in-flight requests after shutdown starts.
    pub shutdown_grace: Duration,
}

/// Serves one connection (plain or TLS) until it closes or shutdown drains it.
async fn serve_connection<IO>(
    builder: hyper::server::conn::http1::Builder,
    io: IO,
    app: Router,
    peer: SocketAddr,
    watcher: Watcher,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
        let app = app.clone();
        async move { Ok::<_, Infallible>(app.oneshot(req).await.unwrap_or_else(|e| match e {})) }
    });
    let conn = watcher.watch(builder.serve_connection(TokioIo::new(io), service));
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// The next connection on `listener`, with TCP_NODELAY set (responses are written
/// whole, and Nagle would hold their last segment for the peer's delayed ACK).
/// Accept errors (typically EMFILE) are logged and retried after a pause instead
/// of spinning.
pub(crate) async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                return (stream, peer);
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves `app` on `listener` (over TLS with `tls`) until `shutdown` resolves, then
/// drains connections.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    opts: ServerOptions,
    tls: Option<TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_read_timeout)
        .max_buf_size(opts.max_header_bytes.max(8192))
        .max_headers(100)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = accept(&listener) => accepted,
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        match &tls {
            None => {
                tokio::spawn(serve_connection(builder, stream, app, peer, watcher));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let handshake_timeout = opts.header_read_timeout;
                tokio::spawn(async move {
                    // The TLS handshake counts against the header read timeout, so a
                    // client that never finishes it cannot hold a task forever.
                    if let Some(tls_stream) =
                        crate::tls::handshake(&acceptor, stream, peer, handshake_timeout).await
                    {
                        serve_connection(builder, tls_stream, app, peer, watcher).await;
                    }
                });
            }
        }
    }
    drop(listener);
    tracing::info!("shutting down: draining connections");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(opts.shutdown_grace) => {
            tracing::warn!("grace period over: closing remaining connections");
        }
    }
}
