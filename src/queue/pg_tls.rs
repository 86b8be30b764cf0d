//! The TLS client for the queue database, one per `sslmode`
//! (`config::pg_url`): verify-full checks the chain and the host name,
//! verify-ca the chain only, require nothing beyond the handshake unless
//! `sslrootcert` names roots (then like verify-ca, as libpq does). The
//! roots are the system's and those of `sslrootcert`.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, SignatureScheme};

use crate::config::pg_url::{PgTls, Roots, SslMode};
use crate::config::upstream_tls::Unverified;

/// The rustls client configuration `tls` calls for.
pub(crate) fn client_config(tls: &PgTls) -> Result<rustls::ClientConfig, Error> {
    let provider = Arc::new(crate::config::tls::provider());
    // sslrootcert names extra roots (the contract's word), beside the system's.
    let extra = match &tls.roots {
        Roots::System => Vec::new(),
        Roots::File { certs, .. } => certs.clone(),
    };
    let chain: Arc<dyn ServerCertVerifier> = Arc::new(
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())?,
    );
    let verifier: Arc<dyn ServerCertVerifier> = match (tls.mode, &tls.roots) {
        (SslMode::VerifyFull | SslMode::Disable, _) => chain,
        (SslMode::VerifyCa, _) | (SslMode::Require, Roots::File { .. }) => Arc::new(AnyName(chain)),
        (SslMode::Require, Roots::System) => Arc::new(Unverified(provider.clone())),
    };
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// verify-ca: the chain must lead to the roots; the name may be any.
#[derive(Debug)]
struct AnyName(Arc<dyn ServerCertVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(Error::InvalidCertificate(
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
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
