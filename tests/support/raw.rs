//! Raw bytes over plain TCP, for requests no well-behaved client would send.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// `METHOD target HTTP/1.1`, the `head` lines as given (each ending in
/// CRLF), a Content-Length for `body`, then `body`.
pub fn request_bytes(method: &str, target: &str, head: &str, body: &[u8]) -> Vec<u8> {
    [
        format!(
            "{method} {target} HTTP/1.1\r\n{head}Content-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
        body,
    ]
    .concat()
}

/// [`request_bytes`] sent by [`exchange`]: (the first status, or 0 for
/// none; the whole answer).
pub async fn request(
    addr: SocketAddr,
    (method, target): (&str, &str),
    head: &str,
    body: &[u8],
) -> (u16, String) {
    let (statuses, text) = exchange(addr, &request_bytes(method, target, head, body)).await;
    (statuses.first().copied().unwrap_or(0), text)
}

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
