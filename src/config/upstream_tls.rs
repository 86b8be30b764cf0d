//! `upstream = "https://…"` and `upstream_tls = { ca, client_cert,
//! client_key, verify }` (routes and `[[passthrough]]`): the rustls client
//! configuration callgate uses towards a receiver behind TLS. The receiver's
//! certificate is verified against the system's roots plus `ca`, for the
//! upstream's host name (SNI); `verify = false` is a loud trial setting.

use std::path::Path;
use std::sync::Arc;

use http::uri::{Authority, Scheme};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::Deserialize;
use toml::Spanned;

use super::load::Loader;
use super::ConfigError;

/// `upstream_tls = { ca, client_cert, client_key, verify }` (https upstreams).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstreamTls {
    pub(crate) ca: Option<Spanned<String>>,
    pub(crate) client_cert: Option<Spanned<String>>,
    pub(crate) client_key: Option<Spanned<String>>,
    pub(crate) verify: Option<bool>,
}

/// Where verified callbacks go: `http(s)://authority/path?query`.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    pub(crate) scheme: Scheme,
    /// https: how callgate speaks TLS to it (set by the section that names it).
    pub(crate) tls: Option<Arc<UpstreamTls>>,
    pub(crate) authority: Authority,
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    /// The names of `query`'s parameters as PHP names them: a caller who
    /// sends one of them would override it.
    pub(crate) params: Vec<String>,
}

impl Upstream {
    /// `http://host:port/path?query` → its parts, ready to join with a
    /// request's query; the error says what to write instead.
    pub(crate) fn parse(s: &str) -> Result<Upstream, String> {
        // Errors quote the URL with any `user:password@` left out.
        let raw = s;
        let shown = without_userinfo(raw);
        let s = shown.as_str();
        let uri: http::Uri = raw.parse().map_err(|e| {
            format!("{s:?} is not a URL ({e}); write it as \"http://127.0.0.1:8080/callback.php\"")
        })?;
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::HTTP,
            Some("https") => Scheme::HTTPS,
            _ => return Err(format!("{s:?} must be an absolute http:// or https:// URL, e.g. \"http://127.0.0.1:8080/callback.php\"")),
        };
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("{s:?} has no host"))?;
        if shown != raw || authority.as_str().contains('@') {
            return Err(format!(
                "{s:?}: credentials (user:password@) in the upstream URL are not supported: remove them"
            ));
        }
        Ok(Upstream {
            scheme,
            tls: None,
            authority,
            path: uri.path().to_owned(),
            params: uri
                .query()
                .map(|q| {
                    form_urlencoded::parse(q.as_bytes())
                        .filter_map(|(k, _)| Some(crate::php::php_name(&k)?.base))
                        .collect()
                })
                .unwrap_or_default(),
            query: uri.query().map(str::to_owned),
        })
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.path)?;
        match &self.query {
            Some(q) => write!(f, "?{q}"),
            None => Ok(()),
        }
    }
}

/// How callgate speaks TLS to one receiver.
pub(crate) struct UpstreamTls {
    /// Offers h2 and HTTP/1.1 by ALPN.
    pub(crate) config: Arc<rustls::ClientConfig>,
    /// The same, offering HTTP/1.1 only: for upgrades (a WebSocket), which
    /// take over an HTTP/1.1 connection.
    pub(crate) h1_only: Arc<rustls::ClientConfig>,
    /// The upstream's host name (or address), sent as SNI and verified.
    pub(crate) server_name: ServerName<'static>,
    /// What `check` prints: roots, client certificate, verification.
    pub(crate) describe: String,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe)
    }
}

/// Every certificate accepted, the handshake's own signatures still checked
/// as TLS requires, so the session is at least encrypted: `upstream_tls =
/// { verify = false }` (trials only), and the queue database's `sslmode =
/// require` without roots (libpq's meaning, `queue/pg_tls.rs`).
#[derive(Debug)]
pub(crate) struct Unverified(pub(crate) Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The files `upstream_tls` names, read.
struct Material {
    roots: Vec<CertificateDer<'static>>,
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
}

impl Loader<'_> {
    /// The TLS an https upstream needs; none for http (where `upstream_tls` is an error).
    pub(super) fn upstream_tls(
        &self,
        label: &str,
        upstream: &Upstream,
        raw: Option<Spanned<RawUpstreamTls>>,
    ) -> Result<Option<Arc<UpstreamTls>>, ConfigError> {
        if upstream.scheme != http::uri::Scheme::HTTPS {
            return match raw {
                Some(t) => Err(self.at(&t, format!("{label}.upstream_tls is for an https:// upstream: remove it, or write the upstream as https://"))),
                None => Ok(None),
            };
        }
        let span = raw.as_ref().map(Spanned::span);
        let t = raw.map(Spanned::into_inner).unwrap_or_default();
        let verify = t.verify.unwrap_or(true);
        let material = match self.offline {
            true => Material {
                roots: Vec::new(),
                client: None,
            },
            false => self.tls_material(label, &t)?,
        };
        let host = upstream
            .authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let server_name = ServerName::try_from(host.to_owned()).map_err(|_| {
            self.error(
                span.clone(),
                format!("{label}.upstream: {host:?} is not a host name TLS can verify"),
            )
        })?;
        let config = client_config(&material, verify)
            .map_err(|e| self.error(span.clone(), format!("{label}.upstream_tls: {e}")))?;
        if !verify {
            self.warn(format!("{label}.upstream_tls.verify = false: the receiver's certificate is NOT verified, so anyone on the path can pose as it and read every callback. Trials only: give its CA as upstream_tls.ca instead"));
        }
        let describe = format!(
            "TLS, verify {}{}{}",
            match verify {
                true => "on (system roots",
                false => "OFF (no certificate is checked",
            },
            match (&t.ca, verify) {
                (Some(c), true) => format!(" + {})", c.get_ref()),
                _ => ")".into(),
            },
            t.client_cert.as_ref().map_or(String::new(), |c| format!(
                ", client certificate {}",
                c.get_ref()
            )),
        );
        let mut h1_only = config.clone();
        h1_only.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(Arc::new(UpstreamTls {
            config: Arc::new(config),
            h1_only: Arc::new(h1_only),
            server_name,
            describe,
        })))
    }

    fn tls_material(&self, label: &str, t: &RawUpstreamTls) -> Result<Material, ConfigError> {
        let roots = match &t.ca {
            Some(path) => crate::trusted::pem_certs(Path::new(path.get_ref()))
                .map_err(|e| self.at(path, format!("{label}.upstream_tls.ca: cannot read {}: {e} (give a PEM file of CA certificates)", path.get_ref())))?,
            None => Vec::new(),
        };
        let client = match (&t.client_cert, &t.client_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                let certs = crate::trusted::pem_certs(Path::new(cert.get_ref()))
                    .map_err(|e| self.at(cert, format!("{label}.upstream_tls.client_cert: cannot read {}: {e}", cert.get_ref())))?;
                let pk = crate::trusted::pem_key(Path::new(key.get_ref()))
                    .map_err(|e| self.at(key, format!("{label}.upstream_tls.client_key: cannot read {}: {e} (a PEM private key)", key.get_ref())))?;
                Some((certs, pk))
            }
            (Some(c), None) => return Err(self.at(c, format!("{label}.upstream_tls: client_cert needs client_key (the certificate's private key)"))),
            (None, Some(k)) => return Err(self.at(k, format!("{label}.upstream_tls: client_key needs client_cert"))),
        };
        Ok(Material { roots, client })
    }
}

/// TLS 1.2/1.3 (ring), the system's roots plus `ca` (or no verification),
/// the client certificate when given; h2 or HTTP/1.1 by ALPN.
fn client_config(m: &Material, verify: bool) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(crate::config::tls::provider());
    let verifier: Arc<dyn ServerCertVerifier> = match verify {
        true => Arc::new(rustls_platform_verifier::Verifier::new_with_extra_roots(
            m.roots.iter().cloned(),
            provider.clone(),
        )?),
        false => Arc::new(Unverified(provider.clone())),
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match &m.client {
        Some((certs, key)) => builder.with_client_auth_cert(certs.clone(), key.clone_key())?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// `s` with the `user:password@` of its authority, if any, written as
/// `USER:PASSWORD@`: what an error may quote.
fn without_userinfo(s: &str) -> String {
    let Some((scheme, rest)) = s.split_once("://") else {
        return s.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://USER:PASSWORD{}", &rest[at..]),
        None => s.to_owned(),
    }
}
