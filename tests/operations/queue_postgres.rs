//! Several instances, one queue: two gateways share a PostgreSQL database;
//! one is killed with callbacks acknowledged and the survivor delivers them
//! all; the database stops and starts under a running gateway.

use callgate_testkit as support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use support::postgres::{Backend, QueueStore};
use support::upstream::closed_port;
use support::{Client, Gateway, Upstream, Version};

const TOKEN: &str = "pg-token-5-0123456789";

fn config(store: &QueueStore, upstream: &str) -> String {
    format!(
        r#"
{}
[[route]]
name = "tolq"
path = "/cb"
upstream = "{upstream}/q"
token = {{ secrets = ["{TOKEN}"] }}
delivery = "queue"
upstream_timeout = "2s"
max_in_flight = 4
retry = {{ base = "50ms", cap = "300ms", max_attempts = 10000 }}

[[route]]
name = "direct"
path = "/direct"
upstream = "{upstream}/d"
token = {{ secrets = ["{TOKEN}"] }}
"#,
        store.section()
    )
}

async fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

/// Post `n` callbacks (`n=0`, `n=1`, …) through the clients in turn; each
/// must be answered 202.
async fn acknowledged(clients: &[&Client], n: usize) {
    for i in 0..n {
        let r = clients[i % clients.len()]
            .post(
                &format!("/cb?token={TOKEN}"),
                &[],
                format!("n={i}").as_bytes(),
            )
            .await;
        assert_eq!(r.status, 202, "callback {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_queue_and_the_survivor_delivers_what_the_dead_one_acknowledged() {
    const N: usize = 60;
    let store = QueueStore::new(Backend::Postgres);
    let addr = closed_port();
    let text = config(&store, &format!("http://{addr}"));
    let mut a = Gateway::start(&text);
    let b = Gateway::start(&text);
    let (ca, cb) = (
        Client::https(a.https.unwrap(), Version::H1),
        Client::https(b.https.unwrap(), Version::H2),
    );
    // The receiver is down: every callback is stored, acknowledged, retried.
    acknowledged(&[&ca, &cb], N).await;
    let pg = store.pg.as_ref().unwrap();
    assert_eq!(
        pg.psql(&store.url, "SELECT COUNT(*) FROM callgate_callbacks"),
        N.to_string()
    );
    a.wait_for_log("queue: delivery failed");
    b.wait_for_log("queue: delivery failed");

    // One instance dies mid-work (its claims die with it), then the receiver returns.
    a.signal("KILL");
    // Killed by a signal: no exit code to see, only that it is gone.
    let _ = a.wait_exit(Duration::from_secs(2));
    let up = Upstream::recording_on(addr).await;
    let took = wait_for("every callback delivered", Duration::from_secs(60), || {
        let got: BTreeSet<Vec<u8>> = up.requests().iter().map(|r| r.body.to_vec()).collect();
        got.len() == N
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = up.requests();
    let unique: BTreeSet<Vec<u8>> = all.iter().map(|r| r.body.to_vec()).collect();
    assert_eq!(unique.len(), N);
    let duplicates = all.len() - unique.len();
    // At most what the dead instance had in flight (max_in_flight = 4).
    assert!(duplicates <= 4, "{duplicates} duplicates");
    assert!(all
        .iter()
        .all(|r| r.uri.query() == Some(&format!("token={TOKEN}")[..])));
    wait_for("an empty queue", Duration::from_secs(5), || {
        pg.psql(&store.url, "SELECT COUNT(*) FROM callgate_callbacks") == "0"
    })
    .await;
    println!(
        "two instances, {N} acknowledged, one killed: all {N} delivered by the survivor in {took:?} after the receiver returned, {duplicates} duplicate(s)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_stopped_means_503_for_queue_routes_only_and_its_return_needs_no_restart() {
    let store = QueueStore::new(Backend::Postgres);
    let pg = store.pg.as_ref().unwrap();
    let up = Upstream::recording().await;
    let cert = support::gateway::test_cert();
    let text = format!(
        "[listen]\nhttps = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n[tls]\ncert = {:?}\nkey = {:?}\n{}",
        cert.cert_path,
        cert.key_path,
        config(&store, &up.url("")).replace(&store.url, "env:CALLGATE_QUEUE_URL")
    );
    let gw = Gateway::start_raw(&text, &[("CALLGATE_QUEUE_URL", &store.url)]);
    let c = Client::https(gw.https.unwrap(), Version::H1);
    let health = || async {
        let r = Client::http(gw.admin.unwrap())
            .request(http::Method::GET, "/healthz", &[], b"")
            .await;
        (
            r.status.as_u16(),
            String::from_utf8_lossy(&r.body).into_owned(),
        )
    };
    assert_eq!(
        c.post(&format!("/cb?token={TOKEN}"), &[], b"before")
            .await
            .status,
        202
    );
    wait_for("the first delivery", Duration::from_secs(10), || {
        up.count() == 1
    })
    .await;
    // ok or unavailable, nothing more (the details are the console's).
    let (status, body) = health().await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    pg.stop();
    let started = Instant::now();
    let r = c
        .post(&format!("/cb?token={TOKEN}"), &[], b"while down")
        .await;
    let took = started.elapsed();
    assert_eq!(r.status, 503, "never 202 without a commit");
    assert!(took < Duration::from_secs(6), "answered in {took:?}");
    println!("database down: queue route answered 503 in {took:?}");
    // Direct routes do not need the store.
    assert_eq!(
        c.post(&format!("/direct?token={TOKEN}"), &[], b"direct")
            .await
            .status,
        200
    );
    let (status, body) = health().await;
    assert_eq!((status, body.as_str()), (503, "unavailable\n"));

    pg.start_again();
    let mut status = 0;
    for _ in 0..50 {
        status = c
            .post(&format!("/cb?token={TOKEN}"), &[], b"after")
            .await
            .status
            .as_u16();
        if status == 202 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, 202, "the gateway reconnected without a restart");
    wait_for(
        "the delivery after the return",
        Duration::from_secs(10),
        || up.requests().iter().any(|r| &r.body[..] == b"after"),
    )
    .await;
    assert!(!up.requests().iter().any(|r| &r.body[..] == b"while down"));
    assert!(
        !gw.log().contains(&store.url),
        "the URL (a secret) is never logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_an_instance_died_delivering_are_taken_over_when_its_lease_runs_out() {
    const N: usize = 12;
    let store = QueueStore::new(Backend::Postgres);
    let up = Upstream::recording().await;
    // Slow enough that the first instance dies with deliveries in flight.
    up.delay(Duration::from_millis(1500));
    let text = config(&store, &up.url(""));
    let mut a = Gateway::start(&text);
    let client = Client::https(a.https.unwrap(), Version::H1);
    acknowledged(&[&client], N).await;
    wait_for("deliveries in flight", Duration::from_secs(5), || {
        up.count() >= 4
    })
    .await;
    a.signal("KILL");
    let _ = a.wait_exit(Duration::from_secs(2));
    let killed = Instant::now();
    let b = Gateway::start(&text);
    let pg = store.pg.as_ref().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while pg.psql(&store.url, "SELECT COUNT(*) FROM callgate_callbacks") != "0" {
        assert!(
            Instant::now() < deadline,
            "not all delivered; survivor's log:\n{}",
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = killed.elapsed();
    let unique: BTreeSet<Vec<u8>> = up.requests().iter().map(|r| r.body.to_vec()).collect();
    assert_eq!(unique.len(), N);
    let duplicates = up.count() - N;
    assert!(
        duplicates <= 4,
        "{duplicates}: more than the dead instance had in flight"
    );
    // The dead instance's claims were honoured until the lease (3 s) ran out.
    assert!(took >= Duration::from_secs(2), "taken over after {took:?}");
    println!("lease take-over: the survivor delivered all {N} within {took:?} of the kill ({duplicates} duplicate(s): the dead instance's in-flight deliveries)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_never_answers_means_503_within_5_seconds() {
    // Accepts TCP connections (the kernel's backlog) and never says a word:
    // a database host gone silent behind a firewall.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "postgres://postgres@{}/callgate",
        silent.local_addr().unwrap()
    );
    let up = Upstream::recording().await;
    let text = format!(
        "[queue]\nbackend = \"postgres\"\nurl = \"env:QUEUE_URL\"\n[[route]]\nname = \"q\"\npath = \"/cb\"\nupstream = \"{}\"\ntoken = {{ secrets = [\"{TOKEN}\"] }}\ndelivery = \"queue\"\nupstream_timeout = \"2s\"\n[[route]]\nname = \"direct\"\npath = \"/direct\"\nupstream = \"{}\"\ntoken = {{ secrets = [\"{TOKEN}\"] }}\n",
        up.url("/q"),
        up.url("/d")
    );
    let gw = Gateway::start_with(&text, &[("QUEUE_URL", &url)]);
    let c = Client::https(gw.https.unwrap(), Version::H1);
    let started = Instant::now();
    let r = c.post(&format!("/cb?token={TOKEN}"), &[], b"x").await;
    let took = started.elapsed();
    assert_eq!(r.status, 503);
    assert!(took < Duration::from_secs(5), "answered after {took:?}");
    println!("silent database: 503 after {took:?}");
    let r = c.post(&format!("/direct?token={TOKEN}"), &[], b"d").await;
    assert_eq!(r.status, 200, "direct routes keep serving");
    assert_eq!(up.count(), 1);
    drop(silent);
}

/// At RUST_LOG=trace, with the libraries' own debug output on: no token,
/// no credential and no body in the log, on PostgreSQL (whose client logs
/// query parameters at debug) and on a direct route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_inbound_reaches_the_log_at_trace() {
    let store = QueueStore::new(Backend::Postgres);
    let up = Upstream::recording().await;
    let gw = Gateway::start_with(&config(&store, &up.url("")), &[("RUST_LOG", "trace")]);
    let auth = "Basic cHJvdmlkZXI6bG9nLXNlY3JldA==";
    let body = b"{\"card\":\"BODY-SECRET-4111\"}";
    for path in ["/cb", "/direct"] {
        let r = Client::https(gw.https.unwrap(), Version::H2)
            .post(
                &format!("{path}?token={TOKEN}"),
                &[("authorization", auth), ("x-api-key", "hdr-secret-77")],
                body,
            )
            .await;
        assert!(r.status.is_success(), "{path}: {}", r.status);
    }
    wait_for("the queued delivery", Duration::from_secs(10), || {
        up.count() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = gw.log();
    assert!(log.lines().count() > 5, "trace logging is on: {log}");
    for secret in [
        TOKEN,
        "cHJvdmlkZXI6bG9nLXNlY3JldA",
        "BODY-SECRET-4111",
        "hdr-secret-77",
    ] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
        // Bytes as a library's Debug prints them: `[66, 79, 68, …]`.
        let listed = format!("{:?}", secret.as_bytes());
        let listed = listed.trim_matches(['[', ']']);
        assert!(!log.contains(listed), "{secret}, as bytes, in the log");
    }
}

/// A receiver slower than the lease: the instance delivering a callback
/// renews its claim while it waits, so the other instance never takes it
/// and the receiver sees each callback once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_slower_than_the_lease_gets_each_callback_once() {
    const N: usize = 6;
    let store = QueueStore::new(Backend::Postgres);
    let up = Upstream::recording().await;
    up.delay(Duration::from_secs(5));
    let text = config(&store, &up.url(""))
        .replace("lease = \"3s\"", "lease = \"2s\"")
        .replace("upstream_timeout = \"2s\"", "upstream_timeout = \"20s\"")
        .replace("max_in_flight = 4", "max_in_flight = 2");
    assert!(text.contains("lease = \"2s\"") && text.contains("upstream_timeout = \"20s\""));
    let a = Gateway::start(&text);
    let b = Gateway::start(&text);
    let ca = Client::https(a.https.unwrap(), Version::H1);
    let cb = Client::https(b.https.unwrap(), Version::H1);
    acknowledged(&[&ca, &cb], N).await;
    let pg = store.pg.as_ref().unwrap();
    let started = Instant::now();
    while pg.psql(&store.url, "SELECT COUNT(*) FROM callgate_callbacks") != "0" {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not all delivered:\n{}\n{}",
            a.log(),
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let unique: BTreeSet<Vec<u8>> = up.requests().iter().map(|r| r.body.to_vec()).collect();
    assert_eq!(unique.len(), N);
    let duplicates = up.count() - N;
    println!("lease 2 s, receiver 5 s, two instances: {N} callbacks, {duplicates} duplicate(s), all delivered in {:?}", started.elapsed());
    assert_eq!(
        duplicates, 0,
        "a claim ran out while its delivery was under way"
    );
}

/// The id of the only callback `queue list` shows.
fn only_id(cfg: &str) -> String {
    let (code, out, err) = support::gateway::run_cli(&["queue", "list", "--config", cfg], b"", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 callback(s)"), "{out}");
    out.lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// An operator's `queue retry` or `drop` (another process) on a callback
/// an instance is delivering right now: the live claim is left alone (on
/// main it was cleared, and the other instance delivered the callback a
/// second time while the first delivery ran). The retry of a delivery that
/// then succeeds does nothing; the drop of one that then fails is carried
/// out when its claim ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_and_drop_leave_another_instances_live_claim_alone() {
    let store = QueueStore::new(Backend::Postgres);
    let up = Upstream::recording().await;
    up.delay_when(b"slow", Duration::from_secs(4));
    let text = config(&store, &up.url(""))
        .replace("upstream_timeout = \"2s\"", "upstream_timeout = \"10s\"");
    let a = Gateway::start(&text);
    let _b = Gateway::start(&text);
    let cfg = a.config_path.to_str().unwrap().to_owned();
    let client = Client::https(a.https.unwrap(), Version::H1);
    let pg = store.pg.as_ref().unwrap();
    let rows = || pg.psql(&store.url, "SELECT COUNT(*) FROM callgate_callbacks");
    let times = |body: &[u8]| up.requests().iter().filter(|r| &r.body[..] == body).count();

    // retry while the delivery runs; the receiver then answers 200.
    assert_eq!(
        client
            .post(&format!("/cb?token={TOKEN}"), &[], b"slow-x")
            .await
            .status,
        202
    );
    wait_for("the delivery", Duration::from_secs(5), || up.count() == 1).await;
    let id = only_id(&cfg);
    let (code, out, err) =
        support::gateway::run_cli(&["queue", "retry", &id, "--config", &cfg], b"", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("is being delivered now"), "{out}");
    wait_for("the delivery recorded", Duration::from_secs(10), || {
        rows() == "0"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        times(b"slow-x"),
        1,
        "delivered again while (or after) its delivery ran"
    );

    // drop while the delivery runs; the receiver then answers 503.
    up.answer(503, vec![], b"busy");
    assert_eq!(
        client
            .post(&format!("/cb?token={TOKEN}"), &[], b"slow-y")
            .await
            .status,
        202
    );
    wait_for("the delivery", Duration::from_secs(5), || {
        times(b"slow-y") == 1
    })
    .await;
    let id = only_id(&cfg);
    let (code, out, err) =
        support::gateway::run_cli(&["queue", "drop", &id, "--config", &cfg], b"", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("is being delivered now"), "{out}");
    assert_eq!(rows(), "1", "dropped under a live claim");
    wait_for("the drop carried out", Duration::from_secs(10), || {
        rows() == "0"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        times(b"slow-y"),
        1,
        "a dropped callback was delivered again"
    );
    println!("retry and drop under another instance's live claim: each callback sent once");
}

/// Per body: (held now, most held at once, received in all).
type Held =
    std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<Vec<u8>, (usize, usize, usize)>>>;

/// A receiver that tells when a client gave up on a request: raw HTTP/1.1,
/// one request per connection, answered 200 after `delay` unless the
/// client closes first. Per body: how many are held now, and the most.
struct Patient {
    addr: std::net::SocketAddr,
    held: Held,
}

impl Patient {
    async fn start(delay: Duration) -> Patient {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held: Held = Default::default();
        let h = held.clone();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let h = h.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let body = loop {
                        let Ok(n) = tcp.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        if buf.len() >= end + 4 + len {
                            break buf[end + 4..end + 4 + len].to_vec();
                        }
                    };
                    {
                        let mut m = h.lock().unwrap();
                        let e = m.entry(body.clone()).or_default();
                        e.0 += 1;
                        e.1 = e.1.max(e.0);
                        e.2 += 1;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {
                            let _ = tcp.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
                        }
                        _ = tcp.read(&mut chunk) => {}
                    }
                    h.lock().unwrap().get_mut(&body).unwrap().0 -= 1;
                });
            }
        });
        Patient { addr, held }
    }

    /// (held now, most held at once, received in all) for a body.
    fn of(&self, body: &[u8]) -> (usize, usize, usize) {
        self.held
            .lock()
            .unwrap()
            .get(body)
            .copied()
            .unwrap_or_default()
    }
}

/// A TCP relay to PostgreSQL that can be frozen: bytes stop flowing both
/// ways, connections stay open (a cut link, not a refused one).
struct Relay {
    port: u16,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Relay {
    async fn start(to: u16) -> Relay {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let f = frozen.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let f = f.clone();
                tokio::spawn(async move {
                    while f.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::spawn(pipe(cr, sw, f.clone()));
                    pipe(sr, cw, f).await;
                });
            }
        });
        Relay { port, frozen }
    }

    fn freeze(&self) {
        self.frozen.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = [0u8; 16384];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while frozen.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// An instance whose link to the database is cut while it delivers: it
/// cannot renew its claim, so it cuts its delivery before the lease lapses
/// and the other instance takes the callback over; the receiver never holds
/// the callback from both at once (on main the first kept delivering).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_cannot_renew_its_lease_cuts_its_delivery() {
    let store = QueueStore::new(Backend::Postgres);
    let pg = store.pg.as_ref().unwrap();
    let receiver = Patient::start(Duration::from_secs(8)).await;
    let relay = Relay::start(pg.port).await;
    let text = config(&store, &format!("http://{}", receiver.addr))
        .replace("upstream_timeout = \"2s\"", "upstream_timeout = \"20s\"");
    let cut_text = text.replace(
        &format!("127.0.0.1:{}/", pg.port),
        &format!("127.0.0.1:{}/", relay.port),
    );
    assert_ne!(text, cut_text);
    let a = Gateway::start(&cut_text);
    let client = Client::https(a.https.unwrap(), Version::H1);
    assert_eq!(
        client
            .post(&format!("/cb?token={TOKEN}"), &[], b"long")
            .await
            .status,
        202
    );
    wait_for("a's delivery", Duration::from_secs(5), || {
        receiver.of(b"long").2 == 1
    })
    .await;
    let b = Gateway::start(&text);
    relay.freeze();
    let cut = Instant::now();
    wait_for("b's delivery", Duration::from_secs(15), || {
        receiver.of(b"long").2 >= 2
    })
    .await;
    let taken = cut.elapsed();
    let (_, most, sent) = receiver.of(b"long");
    println!("link cut: the other instance took the callback over after {taken:?}; held at once at most {most}, sent {sent} time(s)");
    assert_eq!(most, 1, "two instances delivered it at once:\n{}", a.log());
    assert!(a.log().contains("the delivery is cut"), "{}", a.log());
    drop(b);
}

/// A database that answers but takes no write (here: made read-only under
/// a running gateway, its sessions ended so the pool reconnects into the
/// new setting): /healthz's store probe is a real write, so it reports the
/// store unavailable (on main `SELECT 1` said ok), and queue routes answer
/// 503, never 202.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_takes_no_write_is_unavailable_to_healthz() {
    let store = QueueStore::new(Backend::Postgres);
    let pg = store.pg.as_ref().unwrap();
    let up = Upstream::recording().await;
    let cert = support::gateway::test_cert();
    let text = format!(
        "[listen]\nhttps = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n[tls]\ncert = {:?}\nkey = {:?}\n{}",
        cert.cert_path,
        cert.key_path,
        config(&store, &up.url(""))
    );
    let gw = Gateway::start_raw(&text, &[]);
    let c = Client::https(gw.https.unwrap(), Version::H1);
    let health = || async {
        let r = Client::http(gw.admin.unwrap())
            .request(http::Method::GET, "/healthz", &[], b"")
            .await;
        (
            r.status.as_u16(),
            String::from_utf8_lossy(&r.body).into_owned(),
        )
    };
    assert_eq!(
        c.post(&format!("/cb?token={TOKEN}"), &[], b"before")
            .await
            .status,
        202
    );
    wait_for("the delivery", Duration::from_secs(10), || up.count() == 1).await;
    let (status, body) = health().await;
    assert!(
        status == 200 && !body.contains("unavailable"),
        "{status} {body}"
    );

    let db = store
        .url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    pg.psql(
        "postgres",
        &format!("ALTER DATABASE {db} SET default_transaction_read_only = on"),
    );
    pg.psql(
        "postgres",
        &format!(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{db}'"
        ),
    );
    // The pool's ended sessions fail once each on their next use (so did
    // `SELECT 1`); the last answers come from new, read-only sessions.
    let mut seen = Vec::new();
    for _ in 0..20 {
        seen.push(health().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let unavailable =
        |(status, body): &(u16, String)| *status == 503 || body.contains("unavailable");
    assert!(seen[15..].iter().all(unavailable), "{:?}", &seen[15..]);
    let seen = seen.pop().unwrap();
    let r = c
        .post(&format!("/cb?token={TOKEN}"), &[], b"read-only")
        .await;
    assert_eq!(r.status, 503, "acknowledged without a write");
    println!(
        "read-only database: /healthz {} {:?}",
        seen.0,
        seen.1.lines().last()
    );
}

/// A drop noted on a live claim whose instance then dies: the claim ends by
/// lapsing, and the drop is carried out before the survivor would claim it
/// (it is never delivered again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_noted_on_a_dead_instances_claim_is_carried_out() {
    let store = QueueStore::new(Backend::Postgres);
    let up = Upstream::recording().await;
    up.delay_when(b"slow", Duration::from_secs(4));
    let text = config(&store, &up.url(""))
        .replace("upstream_timeout = \"2s\"", "upstream_timeout = \"10s\"");
    let mut a = Gateway::start(&text);
    let cfg = a.config_path.to_str().unwrap().to_owned();
    let client = Client::https(a.https.unwrap(), Version::H1);
    let pg = store.pg.as_ref().unwrap();
    let rows = || pg.psql(&store.url, "SELECT COUNT(*) FROM callgate_callbacks");
    let r = client
        .post(&format!("/cb?token={TOKEN}"), &[], b"slow-z")
        .await;
    assert_eq!(r.status, 202);
    wait_for("the delivery", Duration::from_secs(5), || up.count() == 1).await;
    let id = only_id(&cfg);
    let (code, out, err) =
        support::gateway::run_cli(&["queue", "drop", &id, "--config", &cfg], b"", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("is being delivered now"), "{out}");
    a.signal("KILL");
    let _ = a.wait_exit(Duration::from_secs(2));
    let _b = Gateway::start(&text);
    wait_for("the drop carried out", Duration::from_secs(10), || {
        rows() == "0"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(up.count(), 1, "a dropped callback was delivered again");
}
