//! TLS server configuration: PEM files (or a trial self-signed certificate)
//! → rustls `ServerConfig`, TLS 1.2 and 1.3, ALPN h2 and http/1.1.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::ring;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Why TLS material could not be loaded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    #[error("cannot read certificate chain {path}: {reason} (give a PEM file with the certificate first, then intermediates)")]
    Cert { path: String, reason: String },
    #[error("certificate file {0} holds no PEM certificate")]
    NoCert(String),
    #[error("cannot read private key {path}: {reason} (give a PEM key: PKCS#8, PKCS#1 or SEC1)")]
    Key { path: String, reason: String },
    #[error("certificate and key do not fit together: {0}")]
    Mismatch(String),
    #[error("cannot generate the self-signed certificate: {0}")]
    SelfSigned(String),
}

impl TlsError {
    /// True when the key file, rather than the certificate, is at fault.
    pub(crate) fn is_about_key(&self) -> bool {
        matches!(self, TlsError::Key { .. } | TlsError::Mismatch(_))
    }
}

/// Load a PEM chain and key; returns the config and the chain's length.
pub(crate) fn from_pem_files(
    cert: &Path,
    key: &Path,
) -> Result<(Arc<ServerConfig>, usize), TlsError> {
    let cert_err = |reason: String| TlsError::Cert {
        path: cert.display().to_string(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::NoCert(cert.display().to_string()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        reason: e.to_string(),
    })?;
    let n = chain.len();
    Ok((build(chain, key)?, n))
}

/// An in-memory certificate for localhost, 127.0.0.1 and ::1: lets a
/// newcomer try callgate with no files at all. Never for production.
pub(crate) fn self_signed() -> Result<Arc<ServerConfig>, TlsError> {
    let names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let certified = rcgen::generate_simple_self_signed(names)
        .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    build(vec![certified.cert.der().clone()], key)
}

fn build(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Mismatch(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Mismatch(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
