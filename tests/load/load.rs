//! Bounded load and hostile-connection tests: thousands of requests with a
//! share of forgeries, and a thousand slow or half-open connections. The
//! gateway's memory is read from /proc and must stay under a stated bound.

use callgate_testkit as support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use callgate::crypto::{Algorithm, Encoding};
use support::{sign, Client, Gateway, Upstream, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY: &str = "load-key-0123456789";

/// Peak and current resident memory of a process, in MiB (VmHWM, VmRSS).
fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap()
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn route(upstream: &str) -> String {
    format!("\n[[route]]\nname = \"load\"\npath = \"/cb\"\nupstream = \"{upstream}\"\nallow_ips = [\"127.0.0.1\"]\ntoken = {{ secrets = [\"t-0123456789abcdef\"] }}\nhmac = {{ algorithm = \"sha1\", header = \"x-sig\", secrets = [\"{KEY}\"] }}\n")
}

/// Requests per task and tasks: 64 × 80 = 5,120 requests, 10 % forged.
const TASKS: usize = 64;
const PER_TASK: usize = 80;
/// Stated bound for the gateway's peak RSS under this load (debug build).
const LOAD_RSS_BOUND_MIB: f64 = 48.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_requests_at_concurrency_64_with_forgeries() {
    let up = Upstream::recording().await;
    let gw = Gateway::start(&route(&up.url("/r")));
    let https = gw.https.unwrap();
    let ok = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (ok, refused, errors) = (ok.clone(), refused.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let version = if t % 2 == 0 { Version::H1 } else { Version::H2 };
            let mut session = Client::https(https, version).session().await;
            for i in 0..PER_TASK {
                let body = format!("{{\"task\":{t},\"n\":{i}}}");
                let forged = (t * PER_TASK + i).is_multiple_of(10);
                let signature = if forged {
                    "00".repeat(20)
                } else {
                    sign(Algorithm::Sha1, KEY, Encoding::Hex, body.as_bytes())
                };
                match session
                    .post(
                        "/cb?token=t-0123456789abcdef",
                        &[("x-sig", &signature)],
                        body.as_bytes(),
                    )
                    .await
                {
                    Ok(r) if r.status == 200 && !forged => ok.fetch_add(1, Ordering::Relaxed),
                    Ok(r) if r.status == 403 && forged => refused.fetch_add(1, Ordering::Relaxed),
                    other => {
                        errors
                            .lock()
                            .unwrap()
                            .push(format!("task {t} #{i} forged={forged}: {other:?}"));
                        0
                    }
                };
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed();
    let total = TASKS * PER_TASK;
    let (peak, _) = memory_mib(gw.pid());
    let errors = errors.lock().unwrap();
    println!(
        "load: {total} requests ({} valid, {} forged) at concurrency {TASKS} in {:.2}s ({:.0} req/s, debug build); gateway peak RSS {peak:.1} MiB (bound {LOAD_RSS_BOUND_MIB} MiB)",
        ok.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    assert!(
        errors.is_empty(),
        "{} unexpected answers, first: {:?}",
        errors.len(),
        errors.first()
    );
    assert_eq!(refused.load(Ordering::Relaxed), total / 10);
    assert_eq!(ok.load(Ordering::Relaxed), total - total / 10);
    // The upstream got exactly the valid ones, each once.
    let got = up.requests();
    assert_eq!(got.len(), total - total / 10);
    let mut bodies: Vec<_> = got.iter().map(|r| r.body.clone()).collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(
        bodies.len(),
        got.len(),
        "a request reached the upstream twice"
    );
    assert!(
        peak < LOAD_RSS_BOUND_MIB,
        "peak RSS {peak:.1} MiB over {LOAD_RSS_BOUND_MIB} MiB"
    );
}

use std::sync::Mutex;

/// Stated bound for what 1,000 slow or half-open connections add to the
/// gateway's RSS (24 KiB each, debug build). The growth, not the absolute
/// figure: the idle baseline moves with the binary (a debug build, the
/// preset tables compiled in), not with what a connection costs.
const SLOW_RSS_GROWTH_BOUND_MIB: f64 = 24.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_slow_connections_cost_bounded_memory_and_time_out() {
    let up = Upstream::recording().await;
    let gw = Gateway::start(&("[gateway]\ntls_handshake_timeout = \"2s\"\nheader_read_timeout = \"2s\"\nbody_read_timeout = \"2s\"\n".to_owned() + &route(&up.url("/r"))));
    let (https, http) = (gw.https.unwrap(), gw.http.unwrap());
    let (_, idle_rss) = memory_mib(gw.pid());

    let mut conns = Vec::new();
    for i in 0..1000 {
        let mut tcp = tokio::net::TcpStream::connect(if i % 5 < 2 { https } else { http })
            .await
            .unwrap();
        match i % 5 {
            // Half-open TLS: connected, never says hello.
            0 => {}
            // A TLS ClientHello cut short.
            1 => tcp
                .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
                .await
                .unwrap(),
            // Plain HTTP, not a single byte.
            2 => {}
            // Slowloris: part of a request head, then nothing.
            3 => tcp
                .write_all(b"POST /cb?token=t-0123456789abcdef HTTP/1.1\r\nHost: x\r\nX-Sig: ")
                .await
                .unwrap(),
            // A complete head promising a body that never comes.
            _ => tcp
                .write_all(b"POST /cb?token=t-0123456789abcdef HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
                .await
                .unwrap(),
        }
        conns.push(tcp);
    }
    // TLS completed, then silence: no request ever follows.
    let mut sessions = Vec::new();
    let sessions_opened = Instant::now();
    for i in 0..50 {
        let version = if i % 2 == 0 { Version::H1 } else { Version::H2 };
        sessions.push(Client::https(https, version).session().await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (peak, rss) = memory_mib(gw.pid());

    // Still serving real callbacks meanwhile.
    let body = b"{\"ok\":1}";
    let sig = sign(Algorithm::Sha1, KEY, Encoding::Hex, body);
    let r = Client::https(https, Version::H2)
        .post("/cb?token=t-0123456789abcdef", &[("x-sig", &sig)], body)
        .await;
    assert_eq!(r.status, 200);

    // Every slow connection is cut by its timeout (408 for the body, or a close).
    let deadline = Instant::now() + Duration::from_secs(6);
    let mut closed = 0;
    for tcp in conns.iter_mut() {
        let mut buf = [0u8; 256];
        let left = deadline.saturating_duration_since(Instant::now());
        loop {
            match tokio::time::timeout(left, tcp.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    closed += 1;
                    break;
                }
                Ok(Ok(_)) => continue,
                Err(_) => break,
            }
        }
    }
    println!(
        "slow connections: 1000 open; gateway RSS idle {idle_rss:.1} MiB, with them {rss:.1} MiB (peak {peak:.1}, growth {:.1}, bound {SLOW_RSS_GROWTH_BOUND_MIB} MiB); {closed} closed by timeouts",
        peak - idle_rss
    );
    assert_eq!(
        closed, 1000,
        "every slow connection must be closed by a timeout"
    );
    // Past their header_read_timeout (2 s) with margin.
    tokio::time::sleep_until((sessions_opened + Duration::from_secs(3)).into()).await;
    for (i, mut s) in sessions.into_iter().enumerate() {
        assert!(
            s.post("/cb?token=t-0123456789abcdef", &[], b"late")
                .await
                .is_err(),
            "silent TLS session {i} was not closed"
        );
    }
    assert!(
        peak - idle_rss < SLOW_RSS_GROWTH_BOUND_MIB,
        "1,000 slow connections grew RSS by {:.1} MiB, over {SLOW_RSS_GROWTH_BOUND_MIB} MiB",
        peak - idle_rss
    );
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn connections_past_max_connections_wait_their_turn() {
    let up = Upstream::recording().await;
    let gw = Gateway::start(
        &("[gateway]\nmax_connections = 2\nheader_read_timeout = \"1s\"\n".to_owned()
            + &route(&up.url("/r"))),
    );
    let http = gw.http.unwrap();
    // Two idle connections take both places.
    let a = tokio::net::TcpStream::connect(http).await.unwrap();
    let b = tokio::net::TcpStream::connect(http).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let body = b"{}";
    let sig = sign(Algorithm::Sha1, KEY, Encoding::Hex, body);
    let start = Instant::now();
    let r = Client::http(http)
        .post("/cb?token=t-0123456789abcdef", &[("x-sig", &sig)], body)
        .await;
    let waited = start.elapsed();
    assert_eq!(r.status, 200);
    // Served only once header_read_timeout freed a place.
    assert!(
        waited >= Duration::from_millis(700),
        "served after {waited:?}, before a place was free"
    );
    drop((a, b));
}

#[tokio::test]
async fn h2_pings_do_not_keep_a_connection_or_its_place() {
    let up = Upstream::recording().await;
    let gw = Gateway::start(
        &("[gateway]\nmax_connections = 5\nidle_timeout = \"1s\"\nheader_read_timeout = \"1s\"\n"
            .to_owned()
            + &route(&up.url("/r"))),
    );
    let client = Client::https(gw.https.unwrap(), Version::H2);
    let mut pingers = Vec::new();
    for _ in 0..5 {
        pingers.push(client.h2_pinging().await);
    }
    // Idle means no request, not no bytes: every pinging connection is
    // closed once it has been without a request for the timeout.
    let start = Instant::now();
    for p in pingers {
        tokio::time::timeout(Duration::from_secs(5), p)
            .await
            .expect("a connection that only sends PINGs was kept open")
            .unwrap();
    }
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    // And the places they held serve a caller.
    let body = b"{}";
    let sig = sign(Algorithm::Sha1, KEY, Encoding::Hex, body);
    let r = tokio::time::timeout(
        Duration::from_secs(3),
        client.post("/cb?token=t-0123456789abcdef", &[("x-sig", &sig)], body),
    )
    .await
    .expect("a caller waited behind pinging connections");
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn idle_keep_alive_connections_close_after_idle_timeout() {
    let up = Upstream::recording().await;
    let gw = Gateway::start(
        &("[gateway]\nidle_timeout = \"1s\"\nheader_read_timeout = \"5s\"\n".to_owned()
            + &route(&up.url("/r"))),
    );
    let body = b"{}";
    let sig = sign(Algorithm::Sha1, KEY, Encoding::Hex, body);
    for version in [Version::H1, Version::H2] {
        let mut s = Client::https(gw.https.unwrap(), version).session().await;
        assert_eq!(
            s.post("/cb?token=t-0123456789abcdef", &[("x-sig", &sig)], body)
                .await
                .unwrap()
                .status,
            200
        );
        // Within idle_timeout the connection is reused.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            s.post("/cb?token=t-0123456789abcdef", &[("x-sig", &sig)], body)
                .await
                .unwrap()
                .status,
            200
        );
        tokio::time::sleep(Duration::from_millis(2000)).await;
        assert!(
            s.post("/cb?token=t-0123456789abcdef", &[("x-sig", &sig)], body)
                .await
                .is_err(),
            "{version:?} connection outlived idle_timeout: {}",
            gw.log()
        );
    }
    assert_eq!(up.count(), 4);
}

/// Stated bound for the RSS that 100 stalled 1 MiB uploads add, with
/// buffered_body_bytes = 16 MiB (without the budget they added ~100 MiB).
const STALLED_UPLOADS_GROWTH_BOUND_MIB: f64 = 40.0;

/// A head and all but the last KiB of a 1 MiB body, then nothing.
async fn stalled_upload(
    http: std::net::SocketAddr,
    source: &str,
    chunked: bool,
) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let mut tcp = socket.connect(http).await.unwrap();
    let framing = if chunked {
        "Transfer-Encoding: chunked\r\n".to_owned()
    } else {
        format!("Content-Length: {}\r\n", 1024 * 1024)
    };
    let head = format!("POST /open HTTP/1.1\r\nHost: gw\r\nX-Sig: 00\r\n{framing}\r\n");
    let _ = tcp.write_all(head.as_bytes()).await;
    let piece = vec![b'x'; 64 * 1024];
    for _ in 0..15 {
        let sent = if chunked {
            let mut c = format!("{:x}\r\n", piece.len()).into_bytes();
            c.extend_from_slice(&piece);
            c.extend_from_slice(b"\r\n");
            tcp.write_all(&c).await
        } else {
            tcp.write_all(&piece).await
        };
        // Answered 503 and closed: the rest is not read.
        if sent.is_err() {
            break;
        }
    }
    tcp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_uploads_are_held_to_the_body_budget() {
    let up = Upstream::recording().await;
    let config = format!(
        "[gateway]\nbuffered_body_bytes = {}\nbuffered_body_bytes_per_client = {}\nbody_read_timeout = \"20s\"\n\n[[route]]\nname = \"open\"\npath = \"/open\"\nupstream = \"{}\"\nhmac = {{ algorithm = \"sha1\", header = \"x-sig\", secrets = [\"{KEY}\"] }}\n",
        16 * 1024 * 1024,
        4 * 1024 * 1024,
        up.url("/r")
    );
    let gw = Gateway::start(&config);
    let http = gw.http.unwrap();
    let (_, idle) = memory_mib(gw.pid());
    // An HMAC-only route checks nothing before the body: 100 strangers on
    // ten addresses each start a 1 MiB upload and stall.
    let mut conns = Vec::new();
    for i in 0..100 {
        // The first ten from one address: past its 4 MiB share, it is refused
        // while others are still served.
        let source = match i {
            0..10 => "127.0.0.9".to_owned(),
            _ => format!("127.0.0.{}", 10 + i % 10),
        };
        conns.push(stalled_upload(http, &source, i % 2 == 1).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (peak, rss) = memory_mib(gw.pid());
    // Those beyond the budget were answered 503 with Retry-After.
    let mut busy = 0;
    for tcp in conns.iter_mut() {
        let mut buf = vec![0u8; 1024];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(50), tcp.read(&mut buf)).await
        {
            let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
            if head.starts_with("http/1.1 503") && head.contains("retry-after: ") {
                busy += 1;
            }
        }
    }
    println!(
        "stalled uploads: 100 × 1 MiB, budget 16 MiB (4 MiB per address); RSS idle {idle:.1} MiB, with them {rss:.1} MiB (peak {peak:.1}); {busy} answered 503"
    );
    assert!(busy >= 80, "only {busy} of 100 were refused for the budget");
    assert!(
        peak - idle < STALLED_UPLOADS_GROWTH_BOUND_MIB,
        "stalled uploads grew RSS by {:.1} MiB",
        peak - idle
    );
    let log = gw.log();
    assert!(log.contains("busy: body buffers full"), "{log}");
    assert!(log.contains("busy: this address holds its share"), "{log}");
    // Once they are gone, the budget is back for callers.
    drop(conns);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let body = b"{\"ok\":1}";
    let sig = sign(Algorithm::Sha1, KEY, Encoding::Hex, body);
    let r = Client::http(http)
        .post("/open", &[("x-sig", &sig)], body)
        .await;
    assert_eq!(r.status, 200);
}

/// Strangers' stalled uploads on an HMAC-only route (nothing can be checked
/// before the body) hold all they may; an allowlisted provider's callback
/// on another route is still buffered and delivered: a part of the budget
/// is reserved for requests vouched for before their body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_is_served_while_strangers_hold_the_rest_of_the_budget() {
    let up = Upstream::recording().await;
    let mib = 1024 * 1024;
    let config = format!(
        "[gateway]\nbuffered_body_bytes = {}\nbuffered_body_bytes_per_client = {mib}\nbody_read_timeout = \"20s\"\n\n[[route]]\nname = \"open\"\npath = \"/open\"\nupstream = \"{}\"\nhmac = {{ algorithm = \"sha1\", header = \"x-sig\", secrets = [\"{KEY}\"] }}\n\n[[route]]\nname = \"provider\"\npath = \"/provider\"\nupstream = \"{}\"\nallow_ips = [\"127.0.0.100\"]\nhmac = {{ algorithm = \"sha1\", header = \"x-sig\", secrets = [\"{KEY}\"] }}\n",
        4 * mib,
        up.url("/open"),
        up.url("/provider")
    );
    let gw = Gateway::start(&config);
    let http = gw.http.unwrap();
    let mut strangers = Vec::new();
    for i in 0..12 {
        strangers.push(stalled_upload(http, &format!("127.0.0.{}", 2 + i), false).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let body = b"{\"id\":7,\"status\":\"finished\"}";
    let sig = sign(Algorithm::Sha1, KEY, Encoding::Hex, body);
    let r = Client::http(http)
        .source_ip("127.0.0.100")
        .post("/provider", &[("x-sig", &sig)], body)
        .await;
    assert_eq!(
        r.status, 200,
        "the provider is served while strangers stall"
    );
    assert_eq!(
        up.requests()
            .iter()
            .filter(|r| r.uri.path() == "/provider")
            .count(),
        1
    );
    // A stranger is not: its share of the budget is taken.
    let r = Client::http(http)
        .source_ip("127.0.0.60")
        .post("/open", &[("x-sig", &sig)], body)
        .await;
    assert_eq!(r.status, 503, "strangers never hold the reserve");
    drop(strangers);
}
