//! Optional TLS for both listeners (REST and Flight SQL) from one PEM certificate
//! chain and key, with rustls and its `ring` provider (the one tonic uses too).
//!
//! Certificates are renewed in place (cert-manager rewrites the mounted Secret), so
//! the files are read again every `--tls-reload-secs`: a changed pair that parses
//! and fits is served to new connections from then on; one that does not is logged
//! and the current certificate kept. Connections already open keep theirs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::Stream;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::server::TlsStream;

use crate::config::ConfigError;

/// The server certificate of both listeners, re-read from its files when they change.
pub struct ServerCertificate {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<rustls::crypto::CryptoProvider>,
    /// The pair being served.
    current: RwLock<Arc<CertifiedKey>>,
    /// The file contents it came from (or last failed to load), to notice changes.
    loaded: Mutex<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for ServerCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("ServerCertificate")
            .field("cert_path", &self.cert_path)
            .finish_non_exhaustive()
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|source| ConfigError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Parses a PEM chain and key into a pair rustls can serve, checking they fit.
fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
    provider: &rustls::crypto::CryptoProvider,
) -> Result<CertifiedKey, String> {
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad certificate: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in the certificate file".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| format!("the key file holds no usable private key: {e}"))?;
    CertifiedKey::from_der(certs, key, provider)
        .map_err(|e| format!("certificate and key do not fit: {e}"))
}

impl ServerCertificate {
    /// Reads and checks both files.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Self>, ConfigError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (cert_pem, key_pem) = (read("TLS certificate", cert)?, read("TLS key", key)?);
        let pair = certified_key(&cert_pem, &key_pem, &provider)
            .map_err(|e| ConfigError::Invalid(format!("TLS: {}: {e}", cert.display())))?;
        Ok(Arc::new(Self {
            cert_path: cert.to_path_buf(),
            key_path: key.to_path_buf(),
            provider,
            current: RwLock::new(Arc::new(pair)),
            loaded: Mutex::new((cert_pem, key_pem)),
        }))
    }

    /// Reads the files again; when they changed, serves the new pair if it is
    /// valid. Returns whether the served certificate changed; an error says why
    /// changed files were not taken (reported once per change).
    pub fn reload(&self) -> Result<bool, String> {
        let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        let files = (read(&self.cert_path)?, read(&self.key_path)?);
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if *loaded == files {
            return Ok(false);
        }
        // A renewal writes the two files one after the other: an unfitting pair is
        // remembered, so it is reported once, and retried when either file changes.
        let pair = certified_key(&files.0, &files.1, &self.provider);
        *loaded = files;
        let pair = pair.map_err(|e| format!("{}: {e}", self.cert_path.display()))?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(pair);
        Ok(true)
    }

    /// A rustls acceptor serving this certificate, offering `alpn` protocols.
    pub fn acceptor(self: &Arc<Self>, alpn: &[&[u8]]) -> Result<TlsAcceptor, ConfigError> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::Invalid(format!("TLS: protocol versions: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

impl ResolvesServerCert for ServerCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

/// The TLS handshake of `stream` from `peer`, at most `timeout` long; `None` (logged
/// at debug level) when it fails or times out.
pub async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    timeout: Duration,
) -> Option<TlsStream<TcpStream>> {
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, %peer, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

/// The TLS connections accepted on `listener`, for a server that takes a stream of
/// connections (tonic). Handshakes run concurrently, each bounded by
/// `handshake_timeout`, so a slow or silent client holds up nobody; failed ones are
/// dropped. Accepting stops when the stream is dropped.
pub fn accepted_connections(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
) -> impl Stream<Item = std::io::Result<TlsStream<TcpStream>>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (stream, peer) = tokio::select! {
                accepted = crate::server::accept(&listener) => accepted,
                () = tx.closed() => return,
            };
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                if let Some(tls) = handshake(&acceptor, stream, peer, handshake_timeout).await {
                    let _ = tx.send(Ok(tls)).await;
                }
            });
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
}

/// Re-reads the certificate every `every` until `stop` turns true.
pub async fn run_reloader(
    certificate: Arc<ServerCertificate>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        let cert = certificate.clone();
        match tokio::task::spawn_blocking(move || cert.reload()).await {
            Ok(Ok(true)) => tracing::info!(
                cert = %certificate.cert_path.display(),
                "TLS certificate reloaded; new connections get it"
            ),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "TLS certificate not reloaded; serving the previous one")
            }
            Err(e) => tracing::warn!(error = %e, "TLS reload task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate and its key, made by openssl.
    fn self_signed(dir: &Path, name: &str) -> (Vec<u8>, Vec<u8>) {
        let (cert, key) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        let ok = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args([
                "-nodes",
                "-days",
                "1",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("run openssl")
            .status
            .success();
        assert!(ok, "openssl");
        (std::fs::read(cert).unwrap(), std::fs::read(key).unwrap())
    }

    fn served(c: &ServerCertificate) -> Vec<u8> {
        c.current.read().unwrap().cert[0].as_ref().to_vec()
    }

    #[test]
    fn a_renewed_pair_is_served_and_a_broken_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (a_cert, a_key) = self_signed(dir.path(), "a");
        let (b_cert, b_key) = self_signed(dir.path(), "b");
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        std::fs::write(&cert, &a_cert).unwrap();
        std::fs::write(&key, &a_key).unwrap();
        let c = ServerCertificate::load(&cert, &key).unwrap();
        let first = served(&c);
        assert_eq!(c.reload(), Ok(false), "unchanged files");

        // Half a renewal: the new certificate with the old key does not fit.
        std::fs::write(&cert, &b_cert).unwrap();
        let err = c.reload().unwrap_err();
        assert!(err.contains("do not fit"), "{err}");
        assert_eq!(served(&c), first);
        assert_eq!(
            c.reload(),
            Ok(false),
            "the same broken pair is reported once"
        );

        // The renewal completes.
        std::fs::write(&key, &b_key).unwrap();
        assert_eq!(c.reload(), Ok(true));
        assert_ne!(served(&c), first);

        // Garbage keeps the current pair.
        std::fs::write(&cert, b"not a certificate").unwrap();
        assert!(c.reload().is_err());
        assert_ne!(served(&c), first);
    }

    #[test]
    fn a_key_that_does_not_fit_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let (a_cert, _) = self_signed(dir.path(), "a");
        let (_, b_key) = self_signed(dir.path(), "b");
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        std::fs::write(&cert, a_cert).unwrap();
        std::fs::write(&key, b_key).unwrap();
        let err = ServerCertificate::load(&cert, &key)
            .unwrap_err()
            .to_string();
        assert!(err.contains("do not fit"), "{err}");
    }
}
