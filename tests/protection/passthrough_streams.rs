//! Pass-through as a proxy for a whole site: WebSocket over HTTP/1.1,
//! answers streamed as they come (a 200 MiB download in flat memory, a
//! chunked answer before it ends), request bodies streamed, 100-continue,
//! h2 in and HTTP/1.1 out, and the redirect of plain HTTP to https.

use callgate_testkit as support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use support::{Client, Gateway, Version};

/// The download's size: 200 MiB, in 64 KiB chunks made on the fly.
const BIG: usize = 200 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

type Body = BoxBody<Bytes, Infallible>;

/// A site: /big (a 200 MiB download), /drip (one chunk, then another once
/// /release was asked), /ws (WebSocket echo), /echo (the request body's
/// length and the headers it saw), anything else 200 "page".
struct Site {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<http::HeaderMap>>>,
}

async fn site() -> Site {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let release = Arc::new(tokio::sync::Notify::new());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (r, s) = (release.clone(), seen.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (r, s) = (r.clone(), s.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req| serve(req, r.clone(), s.clone()));
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    Site { addr, seen }
}

fn full(text: &'static str) -> Body {
    Full::new(Bytes::from_static(text.as_bytes())).boxed()
}

async fn serve(
    mut req: Request<Incoming>,
    release: Arc<tokio::sync::Notify>,
    seen: Arc<Mutex<Vec<http::HeaderMap>>>,
) -> Result<Response<Body>, Infallible> {
    seen.lock().unwrap().push(req.headers().clone());
    let resp = match req.uri().path() {
        "/big" => {
            let chunk = Bytes::from(vec![b'x'; CHUNK]);
            let frames = futures_util::stream::iter(
                (0..BIG / CHUNK).map(move |_| Ok(Frame::data(chunk.clone()))),
            );
            Response::new(BodyExt::boxed(StreamBody::new(frames)))
        }
        "/drip" => {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(2);
            tokio::spawn(async move {
                let _ = tx
                    .send(Ok(Frame::data(Bytes::from_static(b"first;"))))
                    .await;
                release.notified().await;
                let _ = tx
                    .send(Ok(Frame::data(Bytes::from_static(b"second"))))
                    .await;
            });
            let stream = tokio_stream_from(rx);
            Response::new(BodyExt::boxed(StreamBody::new(stream)))
        }
        "/release" => {
            release.notify_one();
            Response::new(full("released"))
        }
        "/ws" => {
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(io) = upgrade.await else { return };
                let mut ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, None).await;
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() || msg.is_binary() {
                        let _ = ws.send(msg).await;
                    }
                }
            });
            let key = req.headers()["sec-websocket-key"].as_bytes();
            let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key);
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-accept", accept)
                .body(full(""))
                .unwrap()
        }
        "/echo" => {
            let n = req
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes().len())
                .unwrap_or(0);
            Response::new(Full::new(Bytes::from(format!("{n} bytes"))).boxed())
        }
        _ => Response::new(full("page")),
    };
    Ok(resp)
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn gateway(site: &Site, extra_listen: &str) -> Gateway {
    let cert = support::gateway::test_cert();
    Gateway::start_raw(
        &format!(
            "[listen]\nhttps = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\n{extra_listen}\n[tls]\ncert = {:?}\nkey = {:?}\n\n[gateway]\nidle_timeout = \"2s\"\n\n[[route]]\nname = \"cb\"\npath = \"/cb\"\nupstream = \"http://{}/cb.php\"\nallow_ips = [\"127.0.0.1\"]\n\n[[passthrough]]\nupstream = \"http://{}\"\nmax_body_bytes = 4194304\nwebsocket_paths = [\"/ws\"]\n",
            cert.cert_path.display().to_string(),
            cert.key_path.display().to_string(),
            site.addr,
            site.addr
        ),
        &[],
    )
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    kb / 1024.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_goes_through_and_closes_after_idle_timeout() {
    let site = site().await;
    let gw = gateway(&site, "");
    let tcp = TcpStream::connect(gw.http.unwrap()).await.unwrap();
    let url = format!("ws://{}/ws", gw.http.unwrap());
    let (mut ws, resp) = tokio_tungstenite::client_async(url, tcp)
        .await
        .expect("WebSocket handshake through callgate");
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    ws.send(Message::text("hello through callgate"))
        .await
        .unwrap();
    let echo = ws.next().await.unwrap().unwrap();
    assert_eq!(echo.into_text().unwrap().as_str(), "hello through callgate");
    // Traffic keeps the tunnel: 3 s in all, never 2 s (idle_timeout) apart.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
        let echo = ws.next().await.unwrap().unwrap();
        assert_eq!(echo.into_data().as_ref(), &[1u8, 2, 3][..]);
    }
    // Silent past idle_timeout: the tunnel is closed, its place given back.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let next = tokio::time::timeout(Duration::from_secs(2), ws.next()).await;
    assert!(
        matches!(next, Ok(None) | Ok(Some(Err(_)))),
        "an idle tunnel stays open: {next:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mib_download_streams_in_flat_memory() {
    let site = site().await;
    let gw = gateway(&site, "");
    let idle = rss_mib(gw.pid());
    let mut tcp = TcpStream::connect(gw.http.unwrap()).await.unwrap();
    tcp.write_all(b"GET /big HTTP/1.1\r\nHost: site\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (mut total, mut peak) = (0usize, idle);
    let mut buf = vec![0u8; 256 * 1024];
    let start = Instant::now();
    loop {
        let n = tcp.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        total += n;
        if total % (16 * 1024 * 1024) < n {
            peak = peak.max(rss_mib(gw.pid()));
        }
    }
    println!(
        "pass-through download: {} MiB in {:.1} s; gateway RSS idle {idle:.1} MiB, peak while streaming {peak:.1} MiB",
        total / (1024 * 1024),
        start.elapsed().as_secs_f64()
    );
    assert!(total > BIG, "got {total} bytes");
    assert!(
        peak - idle < 8.0,
        "RSS grew by {:.1} MiB while streaming",
        peak - idle
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_answer_arrives_before_it_ends() {
    let site = site().await;
    let gw = gateway(&site, "");
    let mut tcp = TcpStream::connect(gw.http.unwrap()).await.unwrap();
    tcp.write_all(b"GET /drip HTTP/1.1\r\nHost: site\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).contains("first;") {
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
            .await
            .expect("the first chunk was held back")
            .unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    assert!(!String::from_utf8_lossy(&got).contains("second"));
    let r = Client::http(gw.http.unwrap())
        .request(Method::GET, "/release", &[], b"")
        .await;
    assert_eq!(&r.body[..], b"released");
    while !String::from_utf8_lossy(&got).contains("second") {
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        got.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_stream_within_their_bound_and_100_continue_works() {
    let site = site().await;
    let gw = gateway(&site, "");
    // h2 in, HTTP/1.1 out, a 3 MiB body.
    let body = vec![b'y'; 3 * 1024 * 1024];
    let r = Client::https(gw.https.unwrap(), Version::H2)
        .post("/echo", &[], &body)
        .await;
    assert_eq!(
        (r.status.as_u16(), &r.body[..]),
        (200, &b"3145728 bytes"[..])
    );
    // Over max_body_bytes (4 MiB): declared, or found while streaming.
    let big = vec![b'y'; 5 * 1024 * 1024];
    let (statuses, _) = support::raw::exchange(
        gw.http.unwrap(),
        format!(
            "POST /echo HTTP/1.1\r\nHost: site\r\nContent-Length: {}\r\n\r\nyyyy",
            big.len()
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(statuses, [413]);
    let r = Client::https(gw.https.unwrap(), Version::H2)
        .post("/echo", &[], &big)
        .await;
    assert_eq!(r.status, 413);
    // Expect: 100-continue: the client hears 100 before it sends the body.
    let mut tcp = TcpStream::connect(gw.http.unwrap()).await.unwrap();
    tcp.write_all(
        b"POST /echo HTTP/1.1\r\nHost: site\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100 Continue"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    tcp.write_all(b"hello").await.unwrap();
    let mut answer = String::new();
    while !answer.contains("5 bytes") {
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "{answer}");
        answer.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // The site never saw a verified header, an Expect, or the caller's claims.
    for h in site.seen.lock().unwrap().iter() {
        assert!(!h.contains_key("x-callgate-verified"));
        assert!(!h.contains_key("expect"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_redirected_to_https_but_routes_keep_working() {
    let site = site().await;
    let gw = gateway(&site, "http_redirect = true");
    let r = Client::http(gw.http.unwrap())
        .request(Method::GET, "/a/page.php?x=1&y=2", &[], b"")
        .await;
    assert_eq!(r.status, 308);
    let port = gw.https.unwrap().port();
    assert_eq!(
        r.headers["location"],
        format!("https://localhost:{port}/a/page.php?x=1&y=2").as_str()
    );
    // A route on the http listener is still its route's (here: to a site
    // without /cb.php, whose answer comes back).
    let r = Client::http(gw.http.unwrap()).post("/cb", &[], b"{}").await;
    assert_eq!((r.status.as_u16(), &r.body[..]), (200, &b"page"[..]));
    // https is untouched.
    let r = Client::https(gw.https.unwrap(), Version::H1)
        .request(Method::GET, "/x", &[], b"")
        .await;
    assert_eq!(&r.body[..], b"page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_goes_through_over_tls_too() {
    let site = site().await;
    let gw = gateway(&site, "");
    let tcp = TcpStream::connect(gw.https.unwrap()).await.unwrap();
    let config = support::client::client_config(Version::H1, false, &[]);
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let url = format!("wss://localhost:{}/ws", gw.https_port());
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls)
        .await
        .expect("WebSocket handshake through callgate's TLS");
    ws.send(Message::text("over wss")).await.unwrap();
    let echo = ws.next().await.unwrap().unwrap();
    assert_eq!(echo.into_text().unwrap().as_str(), "over wss");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_tunnel_holds_its_connection_place() {
    let site = site().await;
    let gw = gateway(&site, "");
    // The gateway of this file allows 20,000; this test's, 2.
    let text = std::fs::read_to_string(&gw.config_path)
        .unwrap()
        .replace("[gateway]\n", "[gateway]\nmax_connections = 2\n");
    drop(gw);
    let gw = Gateway::start_raw(&text, &[]);
    let http = gw.http.unwrap();
    let mut tunnels = Vec::new();
    for _ in 0..2 {
        let tcp = TcpStream::connect(http).await.unwrap();
        let (ws, _) = tokio_tungstenite::client_async(format!("ws://{http}/ws"), tcp)
            .await
            .unwrap();
        tunnels.push(ws);
    }
    // Both places are taken by the tunnels: a third client waits.
    let client = Client::http(http);
    let third = client.request(Method::GET, "/page", &[], b"");
    let waited = tokio::time::timeout(Duration::from_millis(800), third).await;
    assert!(waited.is_err(), "served while two tunnels held both places");
    // A tunnel closes: its place is free again.
    let mut closing = tunnels.pop().unwrap();
    closing.close(None).await.unwrap();
    drop(closing);
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        Client::http(http).request(Method::GET, "/page", &[], b""),
    )
    .await
    .expect("still waiting after a tunnel closed");
    assert_eq!(&r.body[..], b"page");
}

/// SIGTERM drains tunnels like requests: a WebSocket keeps working after
/// the signal, and is cut only when drain_timeout runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_tunnel_run_until_drain_timeout() {
    let site = site().await;
    let mut gw = Gateway::start_raw(
        &format!(
            "[listen]\nhttp = \"127.0.0.1:0\"\n[gateway]\nidle_timeout = \"60s\"\ndrain_timeout = \"3s\"\n[[route]]\nname = \"cb\"\npath = \"/cb\"\nupstream = \"http://{0}/cb.php\"\nallow_ips = [\"127.0.0.1\"]\n[[passthrough]]\nupstream = \"http://{0}\"\nwebsocket_paths = [\"/ws\"]\n",
            site.addr
        ),
        &[],
    );
    let tcp = TcpStream::connect(gw.http.unwrap()).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{}/ws", gw.http.unwrap()), tcp)
        .await
        .unwrap();
    ws.send(Message::text("before")).await.unwrap();
    assert_eq!(
        ws.next()
            .await
            .unwrap()
            .unwrap()
            .into_text()
            .unwrap()
            .as_str(),
        "before"
    );
    gw.signal("TERM");
    let stopped = Instant::now();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    ws.send(Message::text("while draining")).await.unwrap();
    let echo = tokio::time::timeout(Duration::from_secs(2), ws.next()).await;
    let echo = echo.expect("no echo while draining").unwrap().unwrap();
    assert_eq!(echo.into_text().unwrap().as_str(), "while draining");
    let code = tokio::task::spawn_blocking(move || {
        let code = gw.wait_exit(Duration::from_secs(8));
        (code, gw)
    })
    .await
    .unwrap()
    .0;
    let took = stopped.elapsed();
    assert_eq!(code, Some(0));
    assert!(
        took >= Duration::from_millis(2500),
        "exited after {took:?}, before drain_timeout"
    );
    let next = tokio::time::timeout(Duration::from_secs(2), ws.next()).await;
    assert!(
        matches!(next, Ok(None) | Ok(Some(Err(_)))),
        "the tunnel outlived the process: {next:?}"
    );
    println!("tunnel drained: alive 1 s after SIGTERM, cut at drain_timeout ({took:?})");
}
