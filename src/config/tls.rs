//! TLS server configuration: PEM files (or a trial self-signed certificate)
//! → rustls `ServerConfig`, TLS 1.2 and 1.3, ALPN h2 and http/1.1, the
//! certificate chosen by the name the client asks for (SNI).

use std::path::Path;
use std::sync::Arc;

use std::collections::HashMap;

use rustls::crypto::{ring, CryptoProvider};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
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

/// One certificate and its key, ready to serve, with what `check` shows.
pub(crate) struct Loaded {
    pub(crate) key: Arc<CertifiedKey>,
    pub(crate) chain_len: usize,
    /// The leaf's subject, e.g. `CN=api.example.com`.
    pub(crate) subject: String,
    /// The leaf's issuer, e.g. `CN=Pebble Intermediate CA`.
    pub(crate) issuer: String,
    /// The leaf's notBefore and notAfter, in seconds since the Unix epoch.
    pub(crate) not_before: i64,
    pub(crate) not_after: i64,
    /// The leaf's DNS names (subjectAltName), lower case.
    pub(crate) names: Vec<String>,
}

/// A chain and its key from PEM text (one file holding both is fine).
pub(crate) fn from_pem(chain: &[u8], key: &[u8]) -> Result<Loaded, TlsError> {
    let cert_err = |reason: String| TlsError::Cert {
        path: "(stored)".to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_slice_iter(chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::NoCert("(stored)".to_owned()));
    }
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| TlsError::Key {
        path: "(stored)".to_owned(),
        reason: e.to_string(),
    })?;
    from_der(chain, key)
}

/// Load a PEM chain and key, checking that they fit together.
pub(crate) fn load(cert: &Path, key: &Path) -> Result<Loaded, TlsError> {
    let cert_err = |reason: String| TlsError::Cert {
        path: cert.display().to_string(),
        reason,
    };
    let chain = crate::trusted::pem_certs(cert).map_err(cert_err)?;
    if chain.is_empty() {
        return Err(TlsError::NoCert(cert.display().to_string()));
    }
    let key = crate::trusted::pem_key(key).map_err(|reason| TlsError::Key {
        path: key.display().to_string(),
        reason,
    })?;
    from_der(chain, key).map_err(|e| match e {
        TlsError::Cert { reason, .. } => cert_err(reason),
        e => e,
    })
}

/// An in-memory certificate for localhost, 127.0.0.1 and ::1: lets a
/// newcomer try callgate with no files at all. Never for production.
pub(crate) fn self_signed() -> Result<Loaded, TlsError> {
    let names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let certified_key = rcgen::generate_simple_self_signed(names)
        .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified_key.signing_key.serialize_der(),
    ));
    from_der(vec![certified_key.cert.der().clone()], key)
}

/// A certificate and key served as they are: RFC 8737's challenge
/// certificate carries a critical extension webpki does not know, so the
/// fit check (which parses the certificate) cannot run on it.
pub(crate) fn unchecked(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Mismatch(e.to_string()))?;
    Ok(Arc::new(CertifiedKey::new(vec![cert], signing)))
}

/// A chain (leaf first) and its key, checked to fit together.
pub(crate) fn from_der(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Loaded, TlsError> {
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).map_err(|e| TlsError::Cert {
        path: String::new(),
        reason: format!("the first certificate is not X.509: {e}"),
    })?;
    let names = leaf
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => {
                        Some(d.to_ascii_lowercase())
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let (subject, issuer) = (leaf.subject().to_string(), leaf.issuer().to_string());
    let validity = leaf.validity();
    let (not_before, not_after) = (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    );
    let chain_len = chain.len();
    let key = CertifiedKey::from_der(chain, key, &provider())
        .map_err(|e| TlsError::Mismatch(e.to_string()))?;
    Ok(Loaded {
        key: Arc::new(key),
        chain_len,
        subject,
        issuer,
        not_before,
        not_after,
        names,
    })
}

pub(crate) fn provider() -> CryptoProvider {
    ring::default_provider()
}

/// A TLS client configuration for callgate's own outbound connections (the
/// ACME directory, the queue database): the system's roots
/// (rustls-platform-verifier) plus `extra_roots`.
pub(crate) fn client_config(
    extra_roots: &[CertificateDer<'static>],
) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(provider());
    let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(
        extra_roots.iter().cloned(),
        provider.clone(),
    )?;
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// Certificates by the name a client asks for (SNI): exact names first,
/// then `*.parent` for one label, then the default.
#[derive(Debug, Default)]
pub(crate) struct Sni {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl Sni {
    /// Serve `key` for `host` (lower case; `*.example.org` for one label).
    pub(crate) fn add(&mut self, host: &str, key: Arc<CertifiedKey>) {
        match host.strip_prefix("*.") {
            Some(parent) => self.wildcard.insert(parent.to_owned(), key),
            None => self.exact.insert(host.to_owned(), key),
        };
    }

    /// Serve `key` to clients whose name matches no other certificate.
    pub(crate) fn set_default(&mut self, key: Arc<CertifiedKey>) {
        self.default = Some(key);
    }

    fn pick(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = name.map(|n| n.trim_end_matches('.').to_ascii_lowercase()) else {
            return self.default.clone();
        };
        let one_up = name.split_once('.').map(|(_, parent)| parent);
        self.exact
            .get(&name)
            .or_else(|| one_up.and_then(|p| self.wildcard.get(p)))
            .or(self.default.as_ref())
            .cloned()
    }
}

impl ResolvesServerCert for Sni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name())
    }
}

/// The server configuration: TLS 1.3 and 1.2, ALPN h2 and http/1.1,
/// certificates chosen by SNI.
pub(crate) fn server_config(sni: Sni) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_for(sni, vec![b"h2".to_vec(), b"http/1.1".to_vec()])
}

/// A server configuration offering exactly `alpn` (RFC 8737's challenge
/// handshake offers only `acme-tls/1`).
pub(crate) fn server_config_for(
    sni: Sni,
    alpn: Vec<Vec<u8>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Mismatch(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(sni));
    config.alpn_protocols = alpn;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sni_prefers_the_exact_name_then_one_label_wildcards_then_the_default() {
        let key = |_: &str| self_signed().unwrap().key;
        let (a, w, d) = (key("a"), key("w"), key("d"));
        let mut sni = Sni::default();
        sni.add("api.example.com", a.clone());
        sni.add("*.example.org", w.clone());
        sni.set_default(d.clone());
        let pick = |n: Option<&str>| sni.pick(n).unwrap();
        assert!(Arc::ptr_eq(&pick(Some("api.example.com")), &a));
        assert!(Arc::ptr_eq(&pick(Some("API.Example.COM.")), &a));
        assert!(Arc::ptr_eq(&pick(Some("www.example.org")), &w));
        assert!(
            Arc::ptr_eq(&pick(Some("a.b.example.org")), &d),
            "one label only"
        );
        assert!(Arc::ptr_eq(&pick(Some("example.org")), &d));
        assert!(Arc::ptr_eq(&pick(None), &d));
        assert!(Sni::default().pick(Some("x")).is_none());
    }
}
