//! Idle HTTP/1.1 keep-alive connections are parked outside hyper between
//! requests (src/server/parking.rs). What must not change: every request on
//! a kept connection is served, pipelined and split heads included; the
//! rest of a request's body is never read as a request, whether the site
//! answered before the body ended or callgate refused it before reading
//! it; idle and stopping connections still close.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use callgate::crypto::{Algorithm, Encoding};
use callgate_testkit as support;
use support::{Client, Gateway, Upstream, Version};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const TOKEN: &str = "parking-token-0123456789";
const KEY: &str = "parking-key-0123456789";

fn start(site: &str, callback: &Upstream, gateway: &str) -> Gateway {
    Gateway::start(&format!(
        r#"
[gateway]
{gateway}

[[route]]
name = "tolq"
path = "/tolq/callback"
upstream = "{callback}"
token = {{ secrets = ["{TOKEN}"] }}
hmac = {{ algorithm = "sha1", header = "X-Tolq-Signature", encoding = "hex", secrets = ["{KEY}"] }}

[[passthrough]]
upstream = "{site}"
"#,
        callback = callback.url("/tolq/callback"),
    ))
}

/// One response off the stream: its status and body (Content-Length framed,
/// as every answer here is). None when the stream ends or stays silent.
async fn response<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> Option<(u16, String)> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let status = head.get(9..12)?.parse().ok()?;
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = read_some(s, &mut chunk).await?;
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
            buf.drain(..end + 4 + len);
            return Some((status, body));
        }
        let n = read_some(s, &mut chunk).await?;
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn read_some<S: AsyncRead + Unpin>(s: &mut S, chunk: &mut [u8]) -> Option<usize> {
    match tokio::time::timeout(Duration::from_secs(2), s.read(chunk)).await {
        Ok(Ok(n)) if n > 0 => Some(n),
        _ => None,
    }
}

fn signed_callback(body: &str) -> String {
    let sig = support::sign(Algorithm::Sha1, KEY, Encoding::Hex, body.as_bytes());
    format!(
        "POST /tolq/callback?token={TOKEN} HTTP/1.1\r\nHost: localhost\r\n\
         X-Tolq-Signature: {sig}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_connection_serves_every_request_after_each_pause() {
    let (site, callback) = (Upstream::recording().await, Upstream::recording().await);
    let gw = start(&site.url(""), &callback, "");
    let mut tls = Client::https(gw.https.unwrap(), Version::H1)
        .tls_connect()
        .await;
    let mut buf = Vec::new();
    // Idle before the first request, and between every two after it.
    tokio::time::sleep(Duration::from_millis(600)).await;
    for i in 0..3 {
        let req = format!("GET /page/{i} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        tls.write_all(req.as_bytes()).await.unwrap();
        assert_eq!(response(&mut tls, &mut buf).await, Some((200, "ok".into())));
        tls.write_all(signed_callback(&format!("{{\"n\":{i}}}")).as_bytes())
            .await
            .unwrap();
        assert_eq!(response(&mut tls, &mut buf).await.map(|r| r.0), Some(200));
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    // Two requests in one write: both answered, in order.
    tls.write_all(
        b"GET /one HTTP/1.1\r\nHost: localhost\r\n\r\nGET /two HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await
    .unwrap();
    assert_eq!(response(&mut tls, &mut buf).await.map(|r| r.0), Some(200));
    assert_eq!(response(&mut tls, &mut buf).await.map(|r| r.0), Some(200));
    // A head split by a pause (long enough to park): read as one head.
    tls.write_all(b"GET /split HTTP/1.1\r\nHo").await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    tls.write_all(b"st: localhost\r\n\r\n").await.unwrap();
    assert_eq!(response(&mut tls, &mut buf).await.map(|r| r.0), Some(200));
    // A callback whose body arrives after a pause.
    let body = "{\"late\":true}";
    let whole = signed_callback(body);
    let (head, rest) = whole.split_at(whole.len() - body.len() + 3);
    tls.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    tls.write_all(rest.as_bytes()).await.unwrap();
    assert_eq!(response(&mut tls, &mut buf).await.map(|r| r.0), Some(200));

    let paths: Vec<String> = site.requests().iter().map(|r| r.uri.to_string()).collect();
    assert_eq!(
        paths,
        ["/page/0", "/page/1", "/page/2", "/one", "/two", "/split"]
    );
    let bodies: Vec<_> = callback.requests().iter().map(|r| r.body.clone()).collect();
    assert_eq!(bodies.len(), 4, "{bodies:?}");
    assert_eq!(&bodies[3][..], body.as_bytes());
}

/// A site that answers as soon as it has a request's head, without reading
/// its body; it counts the heads it was sent at the start of a connection.
async fn early_answering_site() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = Arc::new(AtomicUsize::new(0));
    let counted = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let heads = counted.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut chunk = [0u8; 4096];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut chunk).await {
                        Ok(n) if n > 0 => seen.extend_from_slice(&chunk[..n]),
                        _ => return,
                    }
                }
                heads.fetch_add(1, Ordering::SeqCst);
                let _ = tcp
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nearly")
                    .await;
                // Then read and drop the rest, slowly, as a busy site would.
                tokio::time::sleep(Duration::from_secs(5)).await;
                while let Ok(n) = tcp.read(&mut chunk).await {
                    if n == 0 {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), heads)
}

/// The body's rest, sent after the answer: a whole request in itself.
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_of_a_body_the_site_did_not_wait_for_is_never_a_request() {
    let (site, heads) = early_answering_site().await;
    let callback = Upstream::recording().await;
    let gw = start(&site, &callback, "");
    let mut tls = Client::https(gw.https.unwrap(), Version::H1)
        .tls_connect()
        .await;
    let first = "x=1&";
    let head = format!(
        "POST /form HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n{first}",
        first.len() + SMUGGLED.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    assert_eq!(
        response(&mut tls, &mut buf).await,
        Some((200, "early".into())),
        "the site's early answer"
    );
    // Long enough for an idle connection to be parked.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = tls.write_all(SMUGGLED.as_bytes()).await;
    let next = response(&mut tls, &mut buf).await;
    assert_eq!(next, None, "the body's rest was answered as a request");
    assert_eq!(
        heads.load(Ordering::SeqCst),
        1,
        "the site was sent a second head"
    );
    assert!(callback.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_of_a_body_refused_before_it_was_read_is_never_a_request() {
    let (site, callback) = (Upstream::recording().await, Upstream::recording().await);
    let gw = start(&site.url(""), &callback, "");
    let mut tls = Client::https(gw.https.unwrap(), Version::H1)
        .tls_connect()
        .await;
    // A wrong token: refused before callgate reads the body.
    let head = format!(
        "POST /tolq/callback?token=wrong-token-0123456789 HTTP/1.1\r\nHost: localhost\r\n\
         X-Tolq-Signature: 00\r\nContent-Length: {}\r\n\r\nx",
        1 + SMUGGLED.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    assert_eq!(response(&mut tls, &mut buf).await.map(|r| r.0), Some(403));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = tls.write_all(SMUGGLED.as_bytes()).await;
    assert_eq!(response(&mut tls, &mut buf).await, None);
    assert!(site.requests().is_empty(), "{:?}", site.requests());
    assert!(callback.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_connection_still_closes_when_idle_and_when_callgate_stops() {
    let (site, callback) = (Upstream::recording().await, Upstream::recording().await);
    let mut gw = start(&site.url(""), &callback, "idle_timeout = \"1s\"");
    let client = Client::https(gw.https.unwrap(), Version::H1);
    let mut buf = Vec::new();

    let mut idle = client.tls_connect().await;
    idle.write_all(b"GET /a HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(response(&mut idle, &mut buf).await.map(|r| r.0), Some(200));
    let start = std::time::Instant::now();
    let mut rest = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "still open: {read:?}"
    );
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(3),
        "closed after {waited:?}"
    );

    let mut kept = client.tls_connect().await;
    kept.write_all(b"GET /b HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(response(&mut kept, &mut buf).await.map(|r| r.0), Some(200));
    tokio::time::sleep(Duration::from_millis(200)).await;
    gw.signal("TERM");
    let read = tokio::time::timeout(Duration::from_secs(3), kept.read(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "still open: {read:?}"
    );
    assert_eq!(gw.wait_exit(Duration::from_secs(5)), Some(0));
}
