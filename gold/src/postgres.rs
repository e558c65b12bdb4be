//! PostgreSQL connections that honour `sslmode` and `sslrootcert` as libpq does,
//! with rustls: one implementation for the API, the job-runner and the operator.
//!
//! | sslmode | TLS | certificate checked |
//! |---|---|---|
//! | `disable` | never | - |
//! | `prefer` (default) | if the server offers it | no |
//! | `require` | always | no; with `sslrootcert`, as `verify-ca` (as libpq does) |
//! | `verify-ca` | always | chain to `sslrootcert` |
//! | `verify-full` | always | chain to `sslrootcert` and the host name |
//!
//! tokio-postgres knows only `disable`, `prefer` and `require` and refuses
//! unknown parameters, so [`PgConfig::from_url`] takes `sslmode` and
//! `sslrootcert` out of the URL (URL or key=value form) before handing the rest
//! to [`tokio_postgres::Config`]. There is no system trust store here: the
//! verifying modes need `sslrootcert`.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::SslMode as DriverSslMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{
    CryptoProvider, ring, verify_tls12_signature, verify_tls13_signature,
};
use tokio_rustls::rustls::{
    self, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// How a connection uses TLS, libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, unverified; plain otherwise.
    Prefer,
    /// Always TLS; the certificate is not checked (unless `sslrootcert` is given).
    Require,
    /// Always TLS; the certificate chains to `sslrootcert`.
    VerifyCa,
    /// Always TLS; the certificate chains to `sslrootcert` and names the host.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, PgError> {
        match value {
            "disable" => Ok(SslMode::Disable),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            other => Err(PgError::SslMode(other.to_owned())),
        }
    }

    /// libpq's name of the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A database URL that cannot be used (the caller says which URL).
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The URL does not parse (the driver's message; no password in it).
    #[error("{0}")]
    BadUrl(String),
    /// `sslmode` has a value libpq does not know, or that is not supported.
    #[error(
        "sslmode={0} is not supported \
         (use disable, prefer, require, verify-ca or verify-full)"
    )]
    SslMode(String),
    /// A verifying mode without a CA to verify against.
    #[error(
        "sslmode={0} needs sslrootcert=<file with the CA certificates \
         (PEM)> to check the server's certificate against"
    )]
    NoRootCert(SslMode),
    /// The CA file cannot be read or holds no certificate.
    #[error("cannot use sslrootcert {path}: {reason}")]
    RootCert {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// A parsed database URL: the driver's configuration and the TLS to use with it.
#[derive(Clone)]
pub struct PgConfig {
    /// The driver's configuration, `sslmode` set to what it can do
    /// (`verify-ca` and `verify-full` are `require` plus [`PgConfig::tls`]'s checks).
    pub config: tokio_postgres::Config,
    /// The `sslmode` asked for.
    pub ssl_mode: SslMode,
    /// The `sslrootcert` file, if any.
    pub root_cert: Option<PathBuf>,
    tls: MakeRustlsConnect,
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The driver's Debug hides the password.
        f.debug_struct("PgConfig")
            .field("config", &self.config)
            .field("ssl_mode", &self.ssl_mode)
            .field("root_cert", &self.root_cert)
            .finish()
    }
}

impl PgConfig {
    /// Parses a database URL (`postgres://…?sslmode=…&sslrootcert=…` or libpq's
    /// `key=value` form) and reads the CA file it names.
    pub fn from_url(url: &str) -> Result<PgConfig, PgError> {
        let (rest, params) = take_tls_params(url);
        let mut ssl_mode = SslMode::Prefer;
        let mut root_cert = None;
        for (key, value) in params {
            match key.as_str() {
                "sslmode" => ssl_mode = SslMode::parse(&value)?,
                _ => root_cert = Some(PathBuf::from(value)),
            }
        }
        let mut config: tokio_postgres::Config = rest
            .parse()
            .map_err(|e: tokio_postgres::Error| PgError::BadUrl(e.to_string()))?;
        config.ssl_mode(match ssl_mode {
            SslMode::Disable => DriverSslMode::Disable,
            SslMode::Prefer => DriverSslMode::Prefer,
            _ => DriverSslMode::Require,
        });
        let tls = MakeRustlsConnect::new(ssl_mode, root_cert.as_deref())?;
        Ok(PgConfig {
            config,
            ssl_mode,
            root_cert,
            tls,
        })
    }

    /// The TLS connector for [`tokio_postgres::Config::connect`] or a pool.
    pub fn tls(&self) -> MakeRustlsConnect {
        self.tls.clone()
    }

    /// Connects; on failure, the error as [`explain`] words it.
    pub async fn connect(
        &self,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio_postgres::Connection<
                tokio_postgres::Socket,
                RustlsStream<tokio_postgres::Socket>,
            >,
        ),
        String,
    > {
        self.config
            .connect(self.tls())
            .await
            .map_err(|e| explain(&e, self.ssl_mode, self.root_cert.as_deref()))
    }
}

/// Takes `sslmode` and `sslrootcert` out of a URL, in either form; returns the
/// rest and the taken (key, value) pairs in order.
fn take_tls_params(url: &str) -> (String, Vec<(String, String)>) {
    let ours = |key: &str| key == "sslmode" || key == "sslrootcert";
    let mut taken = Vec::new();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return (url.to_owned(), taken);
        };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if ours(key) {
                taken.push((key.to_owned(), percent_decode(value)));
            } else {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return (rest, taken);
    }
    // key=value form: values may be quoted ('a b') with backslash escapes.
    let mut kept: Vec<&str> = Vec::new();
    let bytes = url.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &url[start..i];
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == b'=' {
            i += 1;
        }
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = Vec::new();
        if i < bytes.len() && bytes[i] == b'\'' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'\'' {
                if bytes[i] == b'\\' && i + 1 < bytes.len() {
                    i += 1;
                }
                value.push(bytes[i]);
                i += 1;
            }
            i += 1;
        } else {
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                if bytes[i] == b'\\' && i + 1 < bytes.len() {
                    i += 1;
                }
                value.push(bytes[i]);
                i += 1;
            }
        }
        let end = i.min(bytes.len());
        if ours(key) {
            taken.push((key.to_owned(), String::from_utf8_lossy(&value).into_owned()));
        } else {
            kept.push(&url[start..end]);
        }
    }
    (kept.join(" "), taken)
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Makes rustls connections for tokio-postgres, checking the server's
/// certificate as the `sslmode` asks.
#[derive(Clone)]
pub struct MakeRustlsConnect {
    config: Arc<ClientConfig>,
}

impl MakeRustlsConnect {
    fn new(mode: SslMode, root_cert: Option<&Path>) -> Result<MakeRustlsConnect, PgError> {
        let provider = Arc::new(ring::default_provider());
        let roots = match (mode, root_cert) {
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
                return Err(PgError::NoRootCert(mode));
            }
            (SslMode::Disable | SslMode::Prefer, _) | (SslMode::Require, None) => None,
            (_, Some(path)) => Some(read_roots(path)?),
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| PgError::BadUrl(format!("TLS setup: {e}")))?;
        let root_error = |e: rustls::Error| PgError::RootCert {
            path: root_cert.map(Path::to_path_buf).unwrap_or_default(),
            reason: e.to_string(),
        };
        let config = match (mode, roots) {
            (SslMode::VerifyFull, Some(roots)) => {
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            // libpq: require with a root certificate behaves as verify-ca.
            (_, Some(roots)) => {
                let chain =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| root_error(rustls::Error::General(e.to_string())))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(Verifier {
                        provider,
                        chain: Some(chain),
                    }))
                    .with_no_client_auth()
            }
            (_, None) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Verifier {
                    provider,
                    chain: None,
                }))
                .with_no_client_auth(),
        };
        Ok(MakeRustlsConnect {
            config: Arc::new(config),
        })
    }
}

fn read_roots(path: &Path) -> Result<RootCertStore, PgError> {
    let fail = |reason: String| PgError::RootCert {
        path: path.to_path_buf(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| fail(format!("not PEM certificates: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| fail(format!("not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(fail("no certificate in it".into()));
    }
    Ok(roots)
}

/// The certificate check of `prefer`, `require` and `verify-ca`: with `chain`,
/// the chain must lead to a trusted CA but the name is not checked; without, any
/// certificate is taken (as libpq does). The handshake's signatures are checked
/// either way.
#[derive(Debug)]
struct Verifier {
    provider: Arc<CryptoProvider>,
    chain: Option<Arc<WebPkiServerVerifier>>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        // webpki checks the chain before the name: a name error means the chain held.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl<S> MakeTlsConnect<S> for MakeRustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, io::Error> {
        // tokio-postgres asks with "" for Unix sockets, where the server never
        // offers TLS: a bad name is an error only once a handshake needs it.
        Ok(RustlsConnect {
            config: self.config.clone(),
            name: ServerName::try_from(domain.to_owned()).map_err(|e| e.to_string()),
        })
    }
}

/// One TLS handshake with a server of a given name.
pub struct RustlsConnect {
    config: Arc<ClientConfig>,
    name: Result<ServerName<'static>, String>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let name = self.name.map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("server name: {e}"))
            })?;
            let tls = TlsConnector::from(self.config)
                .connect(name, stream)
                .await?;
            Ok(RustlsStream(tls))
        })
    }
}

/// A TLS connection to PostgreSQL.
pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        // SCRAM without channel binding, as with libpq's channel_binding=prefer
        // against a server that does not insist.
        ChannelBinding::none()
    }
}

/// A connection error in words an operator can act on: which TLS check failed
/// and what to change, or the server's own message (never the password).
pub fn explain(error: &tokio_postgres::Error, mode: SslMode, root_cert: Option<&Path>) -> String {
    let ca = root_cert.map_or_else(|| "(none)".to_owned(), |p| p.display().to_string());
    if let Some(db) = error.as_db_error() {
        let message = db.message();
        if message.ends_with("no encryption") {
            return format!(
                "{message}: the server accepts this login over TLS only, and sslmode={mode}; \
                 set sslmode=verify-full (with sslrootcert) or require in the database URL"
            );
        }
        return message.to_owned();
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        let tls = e.downcast_ref::<rustls::Error>().or_else(|| {
            e.downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(tls) = tls {
            return match tls {
                rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                ) => format!(
                    "TLS: the server's certificate does not name the host in the database URL \
                     ({tls}); sslmode=verify-full checks the host name: connect by a name the \
                     certificate holds"
                ),
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
                    "TLS: the server's certificate is not signed by a CA in sslrootcert {ca} \
                     ({tls}); give the CA that signed the server's certificate"
                ),
                rustls::Error::InvalidCertificate(_) => {
                    format!("TLS: the server's certificate is refused: {tls}")
                }
                other => format!("TLS handshake failed: {other}"),
            };
        }
        source = e.source();
    }
    let text = chain(error);
    if text.contains("server does not support TLS") {
        return format!(
            "the server does not offer TLS, and sslmode={mode} demands it; \
             turn ssl on in the server, or use sslmode=prefer"
        );
    }
    text
}

fn chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_tls_parameters_out_of_urls() {
        let (rest, taken) = take_tls_params(
            "postgres://u:p@db:5432/gold?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.crt",
        );
        assert_eq!(rest, "postgres://u:p@db:5432/gold?application_name=x");
        assert_eq!(
            taken,
            [
                ("sslmode".to_owned(), "verify-full".to_owned()),
                ("sslrootcert".to_owned(), "/etc/ca.crt".to_owned())
            ]
        );
        let (rest, taken) = take_tls_params("postgres://u@db/gold?sslmode=verify-ca");
        assert_eq!(rest, "postgres://u@db/gold");
        assert_eq!(taken.len(), 1);
        let (rest, taken) = take_tls_params(
            "host=db user=u sslmode = verify-full password='a b\\'c' sslrootcert='/my ca.crt' dbname=gold",
        );
        assert_eq!(rest, "host=db user=u password='a b\\'c' dbname=gold");
        assert_eq!(
            taken,
            [
                ("sslmode".to_owned(), "verify-full".to_owned()),
                ("sslrootcert".to_owned(), "/my ca.crt".to_owned())
            ]
        );
    }

    #[test]
    fn modes_and_their_errors() {
        let cfg = PgConfig::from_url("postgres://u@localhost/gold").unwrap();
        assert_eq!(cfg.ssl_mode, SslMode::Prefer);
        assert_eq!(cfg.config.get_ssl_mode(), DriverSslMode::Prefer);
        let cfg = PgConfig::from_url("host=localhost user=u sslmode=disable").unwrap();
        assert_eq!(cfg.config.get_ssl_mode(), DriverSslMode::Disable);
        let cfg = PgConfig::from_url("postgres://u@localhost/gold?sslmode=require").unwrap();
        assert_eq!(cfg.config.get_ssl_mode(), DriverSslMode::Require);
        let e = PgConfig::from_url("postgres://u@localhost/gold?sslmode=verify-full").unwrap_err();
        assert!(e.to_string().contains("needs sslrootcert"), "{e}");
        let e = PgConfig::from_url("postgres://u@localhost/gold?sslmode=allow").unwrap_err();
        assert!(
            e.to_string().contains("sslmode=allow is not supported"),
            "{e}"
        );
        let e = PgConfig::from_url(
            "postgres://u@localhost/gold?sslmode=verify-ca&sslrootcert=/nonexistent/ca.crt",
        )
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.crt"), "{e}");
        let e = PgConfig::from_url("postgres://u:secret@localhost/gold?bogus=1").unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
    }
}
