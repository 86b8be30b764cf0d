//! The HTTPS client that reaches the ACME directory: the system's roots
//! (rustls-platform-verifier), plus `ca_roots` for private ACME servers.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use rustls_pki_types::CertificateDer;

/// Longest one request to the ACME server may take: a server that accepts
/// the connection and never answers must not stall issuance for ever.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Every request bounded by [`CALL_TIMEOUT`].
struct Timed(Box<dyn HttpClient>);

impl HttpClient for Timed {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let what = format!("{} {}", req.method(), req.uri());
        let call = self.0.request(req);
        Box::pin(async move {
            match tokio::time::timeout(CALL_TIMEOUT, call).await {
                Ok(result) => result,
                Err(_) => Err(instant_acme::Error::Other(Box::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer to {what} within {CALL_TIMEOUT:?}"),
                )))),
            }
        })
    }
}

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
    Ok(Box::new(Timed(Box::new(client))))
}
