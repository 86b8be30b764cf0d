//! A new upstream connection: TCP, TLS when the upstream is https (verified
//! as its upstream_tls says), then the HTTP handshake.

use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::error::ForwardError;
use super::pool::{Key, Sender};

pub(super) async fn connect(upstream: &Key) -> Result<Sender, ForwardError> {
    let authority = &upstream.authority;
    let default_port = if upstream.tls.is_some() { 443 } else { 80 };
    let port = authority.port_u16().unwrap_or(default_port);
    // An IPv6 literal keeps its brackets in the authority; the resolver wants it bare.
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|e| ForwardError::Failed(format!("connect to {authority}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    match &upstream.tls {
        None => handshake(TokioIo::new(tcp)).await,
        Some(tls) => {
            let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
            let stream = connector
                .connect(tls.server_name.clone(), tcp)
                .await
                .map_err(|e| {
                    ForwardError::Failed(format!("TLS handshake with {authority}: {e}"))
                })?;
            handshake(TokioIo::new(stream)).await
        }
    }
}

/// HTTP/1.1 over `io` (TCP, or TLS over it), its connection driven by a task.
async fn handshake<I>(io: I) -> Result<Sender, ForwardError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(io)
        .await
        .map_err(|e| ForwardError::Failed(error_chain(&e)))?;
    // With upgrades: a pass-through WebSocket takes the connection over.
    let conn = conn.with_upgrades();
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("upstream connection ended: {e}");
        }
    });
    Ok(sender)
}

/// "connection closed before message completed": the outer hyper error alone
/// says too little to an operator, so the whole chain is told.
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
