//! One list fetched from its publisher: HTTPS only, the server verified
//! against the system's roots plus the list's `ca`, the answer bounded in
//! size and time.

use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::ip_list::IpList;

/// Longest a fetch may take, connection and answer included.
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest document read (GitHub's whole meta answer is about 200 KiB).
pub(crate) const MAX_DOCUMENT: usize = 4 << 20;

/// Why a fetch gave no document.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("TLS setup: {0}")]
    Tls(#[from] rustls::Error),
    #[error("{0}")]
    Transport(String),
    #[error("answered {0}")]
    Status(StatusCode),
    #[error("the answer is larger than {MAX_DOCUMENT} bytes")]
    TooLarge,
    #[error("no complete answer within {FETCH_TIMEOUT:?}")]
    Timeout,
}

/// GET the list's URL; the body of a 200 answer.
pub(crate) async fn fetch(list: &IpList) -> Result<Bytes, FetchError> {
    match tokio::time::timeout(FETCH_TIMEOUT, get(list)).await {
        Ok(r) => r,
        Err(_) => Err(FetchError::Timeout),
    }
}

async fn get(list: &IpList) -> Result<Bytes, FetchError> {
    let tls = crate::config::tls::client_config(&list.ca)?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let req = Request::get(list.url.clone())
        // GitHub's API refuses a request without a User-Agent.
        .header(
            header::USER_AGENT,
            concat!("callgate/", env!("CARGO_PKG_VERSION")),
        )
        .header(header::ACCEPT, "application/json, text/plain")
        .body(Empty::new())
        .map_err(|e| FetchError::Transport(e.to_string()))?;
    let resp = client
        .request(req)
        .await
        .map_err(|e| FetchError::Transport(transport_reason(&e)))?;
    if resp.status() != StatusCode::OK {
        return Err(FetchError::Status(resp.status()));
    }
    let body = Limited::new(resp.into_body(), MAX_DOCUMENT);
    match body.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(FetchError::TooLarge),
        Err(e) => Err(FetchError::Transport(e.to_string())),
    }
}

/// The innermost cause (a certificate error says which), not hyper's "client error (Connect)".
fn transport_reason(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e.to_string();
    let mut at = e.source();
    while let Some(inner) = at {
        last = inner.to_string();
        at = inner.source();
    }
    last
}
