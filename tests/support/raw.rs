//! Raw bytes over plain TCP, for requests no well-behaved client would send.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Send `bytes` and read until the server closes, or goes quiet once it has
/// answered (the connection may stay open for keep-alive). Returns every
/// status code seen (pipelined requests get several) and the text.
pub async fn exchange(addr: SocketAddr, bytes: &[u8]) -> (Vec<u16>, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    talk(tcp, bytes).await
}

/// Send `bytes` on an open stream and read as [`exchange`] does.
pub async fn talk<S: AsyncRead + AsyncWrite + Unpin>(
    mut tcp: S,
    bytes: &[u8],
) -> (Vec<u16>, String) {
    let _ = tcp.write_all(bytes).await;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let wait = if out.is_empty() {
            Duration::from_secs(3)
        } else {
            Duration::from_millis(200)
        };
        match tokio::time::timeout(wait, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let statuses = text
        .match_indices("HTTP/1.")
        .filter(|(i, _)| text.get(i + 8..i + 9) == Some(" "))
        .filter_map(|(i, _)| text.get(i + 9..i + 12)?.parse().ok())
        .collect();
    (statuses, text)
}
