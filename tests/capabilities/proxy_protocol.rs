//! Behind an L4 balancer (HAProxy, AWS NLB) with `proxy_protocol = true`:
//! the PROXY header names the client for the allowlist and X-Forwarded-For;
//! a connection without a valid header is closed.

use callgate_testkit as support;

use std::net::SocketAddr;
use std::time::Duration;

use ppp::v2;
use support::gateway::test_cert;
use support::raw::exchange;
use support::{Client, Gateway, Upstream, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn config(upstream: &str) -> String {
    let cert = test_cert();
    format!(
        "[listen]\nhttps = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\nproxy_protocol = true\nproxy_protocol_from = [\"127.0.0.1/32\"]\n[tls]\ncert = {:?}\nkey = {:?}\n\
         [[route]]\nname = \"tolq\"\npath = \"/cb\"\nupstream = \"{upstream}\"\nallow_ips = [\"84.22.114.141\"]\n",
        cert.cert_path.display().to_string(),
        cert.key_path.display().to_string()
    )
}

fn v2_header(source: &str) -> Vec<u8> {
    v2::Builder::with_addresses(
        v2::Version::Two | v2::Command::Proxy,
        v2::Protocol::Stream,
        (
            source.parse::<SocketAddr>().unwrap(),
            "127.0.0.1:443".parse::<SocketAddr>().unwrap(),
        ),
    )
    .build()
    .unwrap()
}

#[tokio::test]
async fn the_proxy_header_names_the_client() {
    let up = Upstream::recording().await;
    let gw = Gateway::start_raw(&config(&up.url("/r")), &[]);
    // v1 before the TLS handshake, h1 and h2.
    for version in [Version::H1, Version::H2] {
        let v1 = b"PROXY TCP4 84.22.114.141 127.0.0.1 55555 443\r\n".to_vec();
        let r = Client::https(gw.https.unwrap(), version)
            .preamble(v1)
            .post("/cb", &[], b"tolq")
            .await;
        assert_eq!(r.status, 200, "{version:?}");
    }
    // v2 on the plain listener.
    let r = Client::http(gw.http.unwrap())
        .preamble(v2_header("84.22.114.141:4000"))
        .post("/cb", &[], b"v2")
        .await;
    assert_eq!(r.status, 200);
    // A client the allowlist does not know.
    let r = Client::https(gw.https.unwrap(), Version::H1)
        .preamble(v2_header("203.0.113.7:4000"))
        .post("/cb", &[], b"stranger")
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(up.count(), 3);
    for got in up.requests() {
        assert_eq!(got.headers["x-forwarded-for"], "84.22.114.141");
    }
}

#[tokio::test]
async fn a_local_header_is_the_balancer_itself() {
    let up = Upstream::recording().await;
    let gw = Gateway::start_raw(&config(&up.url("/r")), &[]);
    let local = v2::Builder::new(
        v2::Version::Two | v2::Command::Local,
        v2::AddressFamily::Unspecified | v2::Protocol::Unspecified,
    )
    .build()
    .unwrap();
    // A health check from the balancer: served, judged as the TCP peer (not allowed here).
    let r = Client::http(gw.http.unwrap())
        .preamble(local)
        .post("/cb", &[], b"health")
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn connections_without_a_valid_header_are_closed() {
    let up = Upstream::recording().await;
    let gw = Gateway::start_raw(&config(&up.url("/r")), &[]);
    // Plain HTTP with no header: closed without an answer.
    let (statuses, text) = exchange(
        gw.http.unwrap(),
        b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx",
    )
    .await;
    assert!(
        statuses.is_empty(),
        "answered without a PROXY header: {text}"
    );
    // A forged header the client wrote itself, but malformed.
    let (statuses, _) = exchange(
        gw.http.unwrap(),
        b"PROXY TCP4 84.22.114.141 nonsense\r\nPOST /cb HTTP/1.1\r\n\r\n",
    )
    .await;
    assert!(statuses.is_empty());
    // TLS straight away: the ClientHello is not a PROXY header.
    let mut tcp = tokio::net::TcpStream::connect(gw.https.unwrap())
        .await
        .unwrap();
    tcp.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut buf))
        .await
        .expect("closed promptly")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert_eq!(up.count(), 0);
}

/// Only the balancers named in proxy_protocol_from are believed: any other
/// peer naming an allowlisted client in its own PROXY header is refused,
/// and proxy_protocol without the list is a config error.
#[tokio::test]
async fn a_proxy_header_from_a_peer_outside_proxy_protocol_from_is_refused() {
    let up = Upstream::recording().await;
    let gw = Gateway::start_raw(&config(&up.url("/r")), &[]);
    // On the https listener, closed before any TLS.
    for client in [
        Client::http(gw.http.unwrap()),
        Client::http(gw.https.unwrap()),
    ] {
        let (statuses, text) = client
            .source_ip("127.0.0.2")
            .raw(b"PROXY TCP4 84.22.114.141 127.0.0.1 55555 443\r\nPOST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx")
            .await;
        assert!(statuses.is_empty(), "answered: {text}");
    }
    // The same from the listed balancer passes.
    let r = Client::http(gw.http.unwrap())
        .preamble(b"PROXY TCP4 84.22.114.141 127.0.0.1 55555 443\r\n".to_vec())
        .post("/cb", &[], b"x")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(up.count(), 1);
    let unlisted = config(&up.url("/r")).replace("proxy_protocol_from = [\"127.0.0.1/32\"]\n", "");
    let path = std::env::temp_dir().join(format!("pp-from-{}.toml", std::process::id()));
    std::fs::write(&path, unlisted).unwrap();
    let (code, _, err) =
        support::gateway::run_cli(&["check", "--config", path.to_str().unwrap()], b"", &[]);
    let _ = std::fs::remove_file(&path);
    assert_ne!(code, 0);
    assert!(err.contains("proxy_protocol_from"), "{err}");
}
