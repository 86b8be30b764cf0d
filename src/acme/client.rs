//! The HTTPS client that reaches the ACME directory: the system's roots
//! (rustls-platform-verifier), plus `ca_roots` for private ACME servers.

use bytes::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, HttpClient};
use rustls_pki_types::CertificateDer;

/// An HTTP client for instant-acme trusting the system's roots and `extra`.
pub(super) fn http(
    extra: &[CertificateDer<'static>],
) -> Result<Box<dyn HttpClient>, instant_acme::Error> {
    let tls = crate::config::tls::client_config(extra)
        .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    let client: Client<_, BodyWrapper<Bytes>> =
        Client::builder(TokioExecutor::new()).build::<_, BodyWrapper<Bytes>>(connector);
    Ok(Box::new(client))
}
