//! `upstream = "https://…"` against a real nginx with certificates from a CA
//! the test makes: the verified callback delivered over a verified
//! connection; a wrong name, an expired certificate and an unknown CA all
//! refused (502); a receiver that requires callgate's client certificate;
//! a queue route whose TLS receiver (h2) is down, then up; `verify = false`
//! warned at start and shown by `check`; h2 by ALPN where the receiver
//! offers it (callbacks byte for byte, one pooled connection), HTTP/1.1
//! where it does not; a WebSocket through the pass-through to a TLS site.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use callgate_testkit::gateway::run_cli;
use callgate_testkit::pebble::free_port;
use callgate_testkit::{Client, Gateway};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

type Ca = CertifiedIssuer<'static, KeyPair>;

fn make_ca(dir: &Path, name: &str) -> (Ca, PathBuf) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("callgate {name}"));
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let path = dir.join(format!("{name}.pem"));
    std::fs::write(&path, ca.pem()).unwrap();
    (ca, path)
}

/// A certificate for `names` signed by `ca` (expired when `expired`): its
/// PEM files (certificate, key).
fn leaf(dir: &Path, name: &str, ca: &Ca, names: &[&str], expired: bool) -> (PathBuf, PathBuf) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    let (c, k) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

/// nginx on 127.0.0.1:`port` over TLS with `cert`, answering every request
/// with what callgate sent it (the verified header, the Host); with
/// `client_ca`, it demands a client certificate from that CA. Its access
/// log has a line per request: protocol, method, target, connection number.
struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Nginx {
    fn start(dir: &Path, port: u16, cert: &(PathBuf, PathBuf), client_ca: Option<&Path>) -> Nginx {
        let mtls = client_ca.map_or(String::new(), |ca| {
            format!(
                "ssl_verify_client on;\nssl_client_certificate {};",
                ca.display()
            )
        });
        Nginx::serve(dir, port, cert, "ssl", &format!("{mtls}\n{ECHO}"))
    }

    /// The same echo, on a listener that offers h2 by ALPN.
    fn start_h2(dir: &Path, port: u16, cert: &(PathBuf, PathBuf)) -> Nginx {
        Nginx::serve(dir, port, cert, "ssl http2", ECHO)
    }

    /// nginx with `listen … {listen}` (e.g. "ssl http2") and `server` inside its server block.
    fn serve(
        dir: &Path,
        port: u16,
        cert: &(PathBuf, PathBuf),
        listen: &str,
        server: &str,
    ) -> Nginx {
        let dir = dir.join(format!("nginx-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n log_format proto '$server_protocol $request_method $request_uri $connection';\n access_log {d}/access.log proto;\n client_body_temp_path {d}/b; proxy_temp_path {d}/p; fastcgi_temp_path {d}/f; uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;\n\
             server {{\n  listen 127.0.0.1:{port} {listen};\n  server_name localhost;\n  ssl_certificate {};\n  ssl_certificate_key {};\n  {server}\n }}\n}}\n",
            cert.0.display(),
            cert.1.display()
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx (apt install nginx)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx { child, dir }
    }

    fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx's answer: what callgate sent it.
const ECHO: &str = "location / { return 200 \"verified=$http_x_callgate_verified host=$host uri=$request_uri\\n\"; }";

fn route(port: u16, tls: &str, extra: &str) -> String {
    format!(
        "[[route]]\nname = \"r\"\npath = \"/cb\"\nupstream = \"https://localhost:{port}/hook.php?x=1\"\nallow_ips = [\"127.0.0.1\"]\nupstream_tls = {{ {tls} }}\n{extra}\n"
    )
}

async fn post(gw: &Gateway) -> callgate_testkit::Reply {
    Client::http(gw.http.unwrap()).post("/cb", &[], b"{}").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_behind_tls_gets_the_verified_callback_over_a_verified_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_pem) = make_ca(dir.path(), "ca");
    let port = free_port();
    let _nginx = Nginx::start(
        dir.path(),
        port,
        &leaf(dir.path(), "good", &ca, &["localhost"], false),
        None,
    );
    let gw = Gateway::start(&route(
        port,
        &format!("ca = {:?}", ca_pem.display().to_string()),
        "",
    ));
    for _ in 0..3 {
        let reply = post(&gw).await;
        assert_eq!(reply.status, 200, "{}", gw.log());
        let body = String::from_utf8_lossy(&reply.body).into_owned();
        assert!(body.contains("verified=ip"), "{body}");
        assert!(
            body.contains("host=localhost") && body.contains("uri=/hook.php?x=1"),
            "{body}"
        );
    }
    // This nginx offers HTTP/1.1 only: that is what it got.
    let log = _nginx.access_log();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("HTTP/1.1 POST /hook.php?x=1 ")),
        "{log}"
    );
    let config = gw.config_path.display().to_string();
    let (code, out, err) = run_cli(&["check", "--config", &config], b"", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("upstream TLS, verify on (system roots + "),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_name_an_expired_certificate_and_an_unknown_ca_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_pem) = make_ca(dir.path(), "ca");
    let (other, _) = make_ca(dir.path(), "other");
    let cases = [
        (
            "wrong name",
            leaf(dir.path(), "wrong", &ca, &["other.example"], false),
            "not valid for name \\\"localhost\\\"",
        ),
        (
            "expired",
            leaf(dir.path(), "expired", &ca, &["localhost"], true),
            "expired",
        ),
        (
            "unknown CA",
            leaf(dir.path(), "unknown", &other, &["localhost"], false),
            "unknown",
        ),
    ];
    for (what, cert, reason) in cases {
        let port = free_port();
        let nginx = Nginx::start(dir.path(), port, &cert, None);
        let gw = Gateway::start(&route(
            port,
            &format!("ca = {:?}", ca_pem.display().to_string()),
            "",
        ));
        let reply = post(&gw).await;
        assert_eq!(reply.status, 502, "{what}");
        let log = gw.wait_for_log("TLS handshake with");
        assert!(
            log.contains(&format!("TLS handshake with localhost:{port}")),
            "{what}: {log}"
        );
        let line = log
            .lines()
            .find(|l| l.contains("status=502"))
            .unwrap_or_default()
            .to_owned();
        assert!(
            line.to_lowercase().contains(&reason.to_lowercase()),
            "{what}: {line}"
        );
        assert!(
            nginx.access_log().is_empty(),
            "{what}: a request crossed an unverified connection"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_requires_a_client_certificate_gets_callgates() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_pem) = make_ca(dir.path(), "ca");
    let (clients, clients_pem) = make_ca(dir.path(), "clients");
    let port = free_port();
    let _nginx = Nginx::start(
        dir.path(),
        port,
        &leaf(dir.path(), "good", &ca, &["localhost"], false),
        Some(&clients_pem),
    );
    let roots = format!("ca = {:?}", ca_pem.display().to_string());
    // Without one, nginx refuses the request (400, its own answer).
    let gw = Gateway::start(&route(port, &roots, ""));
    assert_eq!(post(&gw).await.status, 400);
    drop(gw);
    let (cert, key) = leaf(dir.path(), "client", &clients, &["callgate.example"], false);
    let tls = format!(
        "{roots}, client_cert = {:?}, client_key = {:?}",
        cert.display().to_string(),
        key.display().to_string()
    );
    let gw = Gateway::start(&route(port, &tls, ""));
    let reply = post(&gw).await;
    assert_eq!(reply.status, 200, "{}", gw.log());
    assert!(String::from_utf8_lossy(&reply.body).contains("verified=ip"));
}

/// The receiver speaks h2: the queue's retry survives its shared connection
/// going away with it, as for any transport error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_route_whose_tls_receiver_is_down_then_up_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_pem) = make_ca(dir.path(), "ca");
    let cert = leaf(dir.path(), "good", &ca, &["localhost"], false);
    let port = free_port();
    let queue = "delivery = \"queue\"\nretry = { base = \"200ms\", cap = \"500ms\" }";
    let gw = Gateway::start(&route(
        port,
        &format!("ca = {:?}", ca_pem.display().to_string()),
        queue,
    ));
    assert_eq!(post(&gw).await.status, 202);
    gw.wait_for_log("connect to localhost");
    let nginx = Nginx::start_h2(dir.path(), port, &cert);
    wait_for_deliveries(&nginx, 1, &gw);
    // Down again, its h2 connection with it; a callback fails at least
    // once; up again: delivered.
    drop(nginx);
    let refused = gw.log().matches("connect to localhost").count();
    assert_eq!(post(&gw).await.status, 202);
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.log().matches("connect to localhost").count() == refused {
        assert!(Instant::now() < deadline, "no failed attempt: {}", gw.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let nginx = Nginx::start_h2(dir.path(), port, &cert);
    wait_for_deliveries(&nginx, 2, &gw);
    let log = nginx.access_log();
    assert!(log.lines().all(|l| l.starts_with("HTTP/2.0 POST")), "{log}");
}

/// Wait until nginx's access log has `n` callbacks.
fn wait_for_deliveries(nginx: &Nginx, n: usize, gw: &Gateway) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while nginx.access_log().matches("POST /hook.php?x=1").count() < n {
        assert!(
            Instant::now() < deadline,
            "not delivered; log:\n{}",
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_false_is_warned_at_start_and_shown_by_check() {
    let dir = tempfile::tempdir().unwrap();
    let (other, _) = make_ca(dir.path(), "other");
    let port = free_port();
    let _nginx = Nginx::start(
        dir.path(),
        port,
        &leaf(dir.path(), "unknown", &other, &["localhost"], false),
        None,
    );
    let gw = Gateway::start(&route(port, "verify = false", ""));
    let log = gw.wait_for_log("verify = false");
    assert!(
        log.contains("WARN") && log.contains("NOT verified"),
        "{log}"
    );
    assert_eq!(post(&gw).await.status, 200);
    let config = gw.config_path.display().to_string();
    let (code, out, err) = run_cli(&["check", "--config", &config], b"", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("verify OFF"), "{out}");
    assert!(err.contains("NOT verified"), "{err}");
}

/// A callgate with one serving thread (so one pool), the v2 assertion, a
/// route to `/assert2.php` and a pass-through, both at `https://localhost:{port}`.
fn one_thread_gateway(port: u16, roots: &str) -> Gateway {
    let cert = callgate_testkit::gateway::test_cert();
    let text = format!(
        "[listen]\nhttp = \"127.0.0.1:0\"\n\n[tls]\ncert = {:?}\nkey = {:?}\n\n\
         [gateway]\nassertion = {{ key = \"assertion-test-key\", version = 2 }}\n\n\
         [[route]]\nname = \"direct\"\npath = \"/cb\"\nupstream = \"https://localhost:{port}/assert2.php\"\nallow_ips = [\"127.0.0.1\"]\nupstream_tls = {{ {roots} }}\n\n\
         [[passthrough]]\nupstream = \"https://localhost:{port}\"\nupstream_tls = {{ {roots} }}\n",
        cert.cert_path.display().to_string(),
        cert.key_path.display().to_string(),
    );
    Gateway::launch(&text, &[], &[], &["--threads", "1"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_offers_h2_gets_callbacks_and_site_requests_over_one_h2_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_pem) = make_ca(dir.path(), "ca");
    let php = callgate_testkit::PhpReceiver::start();
    let port = free_port();
    // nginx speaks h2 on its TLS listener and hands each request to PHP,
    // which checks callgate's assertion (route, target, Host, Content-Type,
    // body) and records the body's digest and the verified header.
    let proxy = format!(
        "location / {{ proxy_pass http://{}; proxy_set_header Host $http_host; }}",
        php.addr
    );
    let cert = leaf(dir.path(), "good", &ca, &["localhost"], false);
    let nginx = Nginx::serve(dir.path(), port, &cert, "ssl http2", &proxy);
    let gw = one_thread_gateway(port, &format!("ca = {:?}", ca_pem.display().to_string()));
    // Every byte value, past h2's initial 64 KiB window (several DATA frames).
    let body: Vec<u8> = (0..=255u8).cycle().take(70_001).collect();
    let digest = hex(ring::digest::digest(&ring::digest::SHA256, &body).as_ref());
    let headers = [("content-type", "application/octet-stream")];
    for _ in 0..3 {
        let reply = Client::http(gw.http.unwrap())
            .post("/cb", &headers, &body)
            .await;
        let text = String::from_utf8_lossy(&reply.body).into_owned();
        assert_eq!(
            (reply.status.as_u16(), text.as_str()),
            (200, "OK ip\n"),
            "{}",
            gw.log()
        );
    }
    let site = Client::http(gw.http.unwrap())
        .request(http::Method::GET, "/dump.php?page=2", &[], b"")
        .await;
    assert_eq!(site.status, 200, "{}", gw.log());
    let records: Vec<_> = php
        .records()
        .into_iter()
        .filter(|r| r["receiver"] == "assert2")
        .collect();
    assert_eq!(records.len(), 3, "{records:?}");
    for r in &records {
        assert_eq!(r["accepted"], "ip", "{r}");
        assert_eq!(r["verified"], "ip", "{r}");
        assert_eq!(r["raw_length"], body.len(), "{r}");
        assert_eq!(r["raw_sha256"], digest.as_str(), "{r}");
    }
    // nginx saw HTTP/2.0 every time; the callbacks on one connection (the
    // pass-through has its own upstream_tls, so its own pool).
    let log = nginx.access_log();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 4, "{log}");
    assert!(lines.iter().all(|l| l.starts_with("HTTP/2.0 ")), "{log}");
    assert_eq!(
        connections(&lines[..3]),
        1,
        "not one pooled h2 connection: {log}"
    );
}

/// How many connections these access log lines came over.
fn connections(lines: &[&str]) -> usize {
    let conns: std::collections::HashSet<_> = lines.iter().map(|l| l.rsplit(' ').next()).collect();
    conns.len()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A site over TLS that offers h2 and HTTP/1.1 by ALPN, as most do.
struct TlsSite {
    addr: SocketAddr,
    /// Each connection's protocol, in order.
    protocols: Arc<Mutex<Vec<String>>>,
    seen: Arc<Seen>,
}

#[derive(Default)]
struct Seen {
    /// Requests to /hold in flight now, and the most at once.
    held: AtomicUsize,
    peak: AtomicUsize,
    /// The length of each body /count read to its end.
    bodies: Mutex<Vec<usize>>,
}

/// The site with `cert`: /ws a WebSocket echo (over HTTP/1.1, the only way
/// to upgrade), /hold answers after 300 ms, /count reads the body, any
/// other path "page".
async fn tls_site(cert: &(PathBuf, PathBuf)) -> TlsSite {
    let certs = CertificateDer::pem_file_iter(&cert.0)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&cert.1).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let protocols = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::new(Seen::default());
    let (protos, site_seen) = (protocols.clone(), seen.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, protos, seen) = (acceptor.clone(), protos.clone(), site_seen.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let alpn = tls.get_ref().1.alpn_protocol().unwrap_or(b"none");
                protos
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(alpn).into_owned());
                let svc = hyper::service::service_fn(move |req| answer(req, seen.clone()));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    TlsSite {
        addr,
        protocols,
        seen,
    }
}

async fn answer(
    req: http::Request<hyper::body::Incoming>,
    seen: Arc<Seen>,
) -> Result<http::Response<Full<Bytes>>, std::convert::Infallible> {
    match req.uri().path() {
        "/ws" => Ok(websocket_echo(req)),
        "/hold" => {
            let now = seen.held.fetch_add(1, Ordering::SeqCst) + 1;
            seen.peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(300)).await;
            seen.held.fetch_sub(1, Ordering::SeqCst);
            Ok(http::Response::new(Full::new(Bytes::from_static(b"held"))))
        }
        "/count" => {
            if let Ok(body) = req.into_body().collect().await {
                seen.bodies.lock().unwrap().push(body.to_bytes().len());
            }
            Ok(http::Response::new(Full::new(Bytes::from_static(
                b"counted",
            ))))
        }
        _ => Ok(http::Response::new(Full::new(Bytes::from_static(b"page")))),
    }
}

fn websocket_echo(mut req: http::Request<hyper::body::Incoming>) -> http::Response<Full<Bytes>> {
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(io) = upgrade.await else { return };
        let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, None).await;
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_text() || msg.is_binary() {
                let _ = ws.send(msg).await;
            }
        }
    });
    let key = req.headers()["sec-websocket-key"].as_bytes();
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key);
    http::Response::builder()
        .status(http::StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", accept)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// The pass-through keeps WebSocket over a TLS upstream that also offers
/// h2: the upgrade goes over an HTTP/1.1 connection (h2 has no upgrade),
/// the site's other requests over h2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_goes_through_to_a_tls_upstream_that_offers_h2() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_pem) = make_ca(dir.path(), "ca");
    let cert = leaf(dir.path(), "good", &ca, &["localhost"], false);
    let site = tls_site(&cert).await;
    let gw = Gateway::start_raw(
        &format!(
            "[listen]\nhttp = \"127.0.0.1:0\"\n\n[[route]]\nname = \"cb\"\npath = \"/cb\"\n\
             upstream = \"http://127.0.0.1:9/never-reached-hook.php\"\nallow_ips = [\"127.0.0.1\"]\n\n[[passthrough]]\nupstream = \"https://localhost:{}\"\n\
             upstream_tls = {{ ca = {:?} }}\nwebsocket_paths = [\"/ws\"]\n",
            site.addr.port(),
            ca_pem.display().to_string()
        ),
        &[],
    );
    let page = Client::http(gw.http.unwrap())
        .request(http::Method::GET, "/index", &[], b"")
        .await;
    assert_eq!(
        (page.status.as_u16(), &page.body[..]),
        (200, &b"page"[..]),
        "{}",
        gw.log()
    );
    let tcp = tokio::net::TcpStream::connect(gw.http.unwrap())
        .await
        .unwrap();
    let url = format!("ws://{}/ws", gw.http.unwrap());
    let (mut ws, resp) = tokio_tungstenite::client_async(url, tcp)
        .await
        .unwrap_or_else(|e| {
            std::thread::sleep(Duration::from_millis(300));
            panic!("WebSocket handshake through callgate: {e}\n{}", gw.log())
        });
    assert_eq!(resp.status(), http::StatusCode::SWITCHING_PROTOCOLS);
    ws.send(Message::text("over TLS to the site"))
        .await
        .unwrap();
    let echo = ws.next().await.unwrap().unwrap();
    assert_eq!(echo.into_text().unwrap().as_str(), "over TLS to the site");
    let bytes: Vec<u8> = (0..=255u8).collect();
    ws.send(Message::binary(bytes.clone())).await.unwrap();
    let echo = ws.next().await.unwrap().unwrap();
    assert_eq!(echo.into_data().as_ref(), &bytes[..]);
    assert_eq!(*site.protocols.lock().unwrap(), ["h2", "http/1.1"]);
}

/// h2 multiplexes: without a limit, callbacks reach the receiver all at
/// once over one connection; `max_concurrency` still holds it to its limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrency_holds_an_h2_receiver_to_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_pem) = make_ca(dir.path(), "ca");
    let cert = leaf(dir.path(), "good", &ca, &["localhost"], false);
    let site = tls_site(&cert).await;
    let upstream = format!("https://localhost:{}/hold", site.addr.port());
    let roots = format!("ca = {:?}", ca_pem.display().to_string());
    let routes = format!(
        "[[route]]\nname = \"free\"\npath = \"/free\"\nupstream = \"{upstream}\"\nallow_ips = [\"127.0.0.1\"]\nupstream_tls = {{ {roots} }}\n\n\
         [[route]]\nname = \"held\"\npath = \"/held\"\nupstream = \"{upstream}\"\nallow_ips = [\"127.0.0.1\"]\nupstream_tls = {{ {roots} }}\nmax_concurrency = 2\n"
    );
    let gw = Gateway::launch(&routes_gateway(&routes), &[], &[], &["--threads", "1"]);
    let free = burst(&gw, "/free", 8).await;
    assert!(free.iter().all(|&s| s == 200), "{free:?}\n{}", gw.log());
    let peak_free = site.seen.peak.swap(0, Ordering::SeqCst);
    assert!(peak_free > 2, "h2 carried only {peak_free} at once");
    let held = burst(&gw, "/held", 8).await;
    assert!(held.iter().all(|&s| s == 200), "{held:?}\n{}", gw.log());
    let peak = site.seen.peak.load(Ordering::SeqCst);
    assert!(peak <= 2, "peak {peak} with max_concurrency = 2");
    // One h2 connection per route (each its own upstream_tls).
    assert_eq!(*site.protocols.lock().unwrap(), ["h2", "h2"]);
}

/// A gateway on plain http with these routes.
fn routes_gateway(routes: &str) -> String {
    format!("[listen]\nhttp = \"127.0.0.1:0\"\n\n{routes}")
}

/// `n` callbacks to `path` at once; their statuses.
async fn burst(gw: &Gateway, path: &str, n: usize) -> Vec<u16> {
    let mut all = Vec::new();
    for i in 0..n {
        let (addr, path) = (gw.http.unwrap(), path.to_owned());
        all.push(tokio::spawn(async move {
            let body = format!("{{\"n\":{i}}}");
            let reply = Client::http(addr).post(&path, &[], body.as_bytes()).await;
            reply.status.as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for s in all {
        statuses.push(s.await.unwrap());
    }
    statuses
}

/// A pass-through body streamed over its bound to a receiver on h2: the
/// client gets 413 (callgate's answer, not a 502 from the reset stream),
/// and the receiver never reads a complete body; one within it arrives
/// whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_streamed_over_its_bound_to_an_h2_receiver_is_413_and_never_complete() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_pem) = make_ca(dir.path(), "ca");
    let cert = leaf(dir.path(), "good", &ca, &["localhost"], false);
    let site = tls_site(&cert).await;
    let text = routes_gateway(&format!(
        "[[route]]\nname = \"cb\"\npath = \"/cb\"\nupstream = \"http://127.0.0.1:9/never-reached-hook.php\"\nallow_ips = [\"127.0.0.1\"]\n\n\
         [[passthrough]]\nupstream = \"https://localhost:{}\"\nupstream_tls = {{ ca = {:?} }}\nmax_body_bytes = 1024\n",
        site.addr.port(),
        ca_pem.display().to_string()
    ));
    let gw = Gateway::launch(&text, &[], &[], &["--threads", "1"]);
    let within = Client::http(gw.http.unwrap())
        .post("/count", &[], &[b'a'; 1000])
        .await;
    assert_eq!(within.status, 200, "{}", gw.log());
    // Chunked, so the bound is found while the body streams to the receiver.
    let mut tcp = tokio::net::TcpStream::connect(gw.http.unwrap())
        .await
        .unwrap();
    let head = "POST /count HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n";
    tcp.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..4 {
        let _ = tcp.write_all(b"200\r\n").await;
        let _ = tcp.write_all(&[b'z'; 512]).await;
        let _ = tcp.write_all(b"\r\n").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut answer = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}\n{}", gw.log());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(*site.seen.bodies.lock().unwrap(), [1000]);
    assert_eq!(*site.protocols.lock().unwrap(), ["h2"]);
}

/// An h2 receiver that ends its connections gracefully (GOAWAY after a few
/// requests, as nginx does after `keepalive_requests`): the callbacks that
/// were in flight beyond its last accepted stream were never processed, so
/// callgate sends them again on a new connection (RFC 9113 §6.8) instead of
/// answering 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_in_flight_when_an_h2_receiver_goes_away_are_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_pem) = make_ca(dir.path(), "ca");
    let cert = leaf(dir.path(), "good", &ca, &["localhost"], false);
    let port = free_port();
    let nginx = Nginx::serve(
        dir.path(),
        port,
        &cert,
        "ssl http2",
        &format!("keepalive_requests 3;\n{ECHO}"),
    );
    let roots = format!("ca = {:?}", ca_pem.display().to_string());
    let gw = Gateway::launch(
        &routes_gateway(&route(port, &roots, "")),
        &[],
        &[],
        &["--threads", "1"],
    );
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.extend(burst(&gw, "/cb", 12).await);
    }
    let failed = statuses.iter().filter(|s| **s != 200).count();
    assert_eq!(failed, 0, "{statuses:?}\n{}", gw.log());
    let log = nginx.access_log();
    assert!(log.lines().all(|l| l.starts_with("HTTP/2.0 ")), "{log}");
    // Each processed once: a stream the receiver took is never sent again.
    assert_eq!(log.lines().count(), statuses.len(), "{log}");
    assert!(connections(&log.lines().collect::<Vec<_>>()) > 10, "{log}");
}
