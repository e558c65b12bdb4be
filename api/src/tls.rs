//! Optional TLS for both listeners (REST and Flight SQL) from one PEM certificate
//! chain and key, with rustls and its `ring` provider (the one tonic uses too).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use crate::config::ConfigError;

/// The certificate chain and key, as read at start-up.
#[derive(Clone)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert_pem: Vec<u8>,
    /// PEM private key.
    pub key_pem: Vec<u8>,
    cert_path: PathBuf,
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("TlsFiles")
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

impl TlsFiles {
    /// Reads both files.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, ConfigError> {
        Ok(Self {
            cert_pem: read("TLS certificate", cert)?,
            key_pem: read("TLS key", key)?,
            cert_path: cert.to_path_buf(),
        })
    }

    /// A rustls acceptor for the REST server (HTTP/1.1).
    pub fn acceptor(&self) -> Result<TlsAcceptor, ConfigError> {
        let invalid = |what: &str, e: &dyn std::fmt::Display| {
            ConfigError::Invalid(format!("TLS: {what} in {}: {e}", self.cert_path.display()))
        };
        let certs = CertificateDer::pem_slice_iter(&self.cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid("bad certificate", &e))?;
        if certs.is_empty() {
            return Err(invalid("no certificate", &"empty chain"));
        }
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem).map_err(|e| {
            ConfigError::Invalid(format!(
                "TLS: the key file holds no usable private key: {e}"
            ))
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("protocol versions", &e))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| invalid("certificate and key do not fit", &e))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}
