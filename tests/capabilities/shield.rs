//! Protecting the receiver, against a real receiver process that counts how
//! many callbacks it holds at once (tests/receivers/counting.py): a route's
//! max_concurrency and rate, and `on_failure = "queue"` with its circuit
//! breaker.

use callgate_testkit as support;

use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::pebble::free_port;
use support::{Client, Gateway, Version};

const TOKEN: &str = "shield-token-0123456789";

/// The counting receiver, killed on drop.
struct Receiver {
    child: Child,
    port: u16,
}

impl Receiver {
    fn start() -> Receiver {
        let port = free_port();
        let child = Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/receivers/counting.py"
            ))
            .arg(port.to_string())
            .spawn()
            .expect("python3 runs the counting receiver");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "receiver did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Receiver { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/cb", self.port)
    }

    async fn mode(&self, status: u16, delay: f64) {
        let c = Client::http(([127, 0, 0, 1], self.port).into());
        c.post(&format!("/_mode?status={status}&delay={delay}"), &[], b"")
            .await;
    }

    /// (count, peak, ok)
    async fn stats(&self) -> (u64, u64, u64) {
        let c = Client::http(([127, 0, 0, 1], self.port).into());
        let r = c.request(http::Method::GET, "/_stats", &[], b"").await;
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let n = |k: &str| v[k].as_u64().unwrap();
        (n("count"), n("peak"), n("ok"))
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn route(upstream: &str, extra: &str) -> String {
    format!(
        "[[route]]\nname = \"r\"\npath = \"/r\"\nupstream = \"{upstream}\"\ntoken = {{ secrets = [\"{TOKEN}\"] }}\n{extra}\n"
    )
}

/// `n` callbacks at once (distinct bodies); their statuses.
async fn burst(gw: &Gateway, n: usize) -> Vec<u16> {
    let client = Arc::new(Client::https(gw.https.unwrap(), Version::H1));
    let mut all = Vec::new();
    for i in 0..n {
        let client = client.clone();
        all.push(tokio::spawn(async move {
            let body = format!("{{\"n\":{i}}}");
            client
                .post(&format!("/r?token={TOKEN}"), &[], body.as_bytes())
                .await
                .status
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for s in all {
        statuses.push(s.await.unwrap());
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrency_holds_the_receiver_to_its_limit() {
    let rx = Receiver::start();
    rx.mode(200, 0.4).await;
    let unlimited = Gateway::start(&route(&rx.url(), ""));
    let statuses = burst(&unlimited, 8).await;
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    let (_, peak_without, _) = rx.stats().await;

    let rx = Receiver::start();
    rx.mode(200, 0.4).await;
    let gw = Gateway::start(&route(&rx.url(), "max_concurrency = 2"));
    let statuses = burst(&gw, 8).await;
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    let (count, peak, _) = rx.stats().await;
    assert_eq!(count, 8);
    assert!(peak <= 2, "peak {peak} with max_concurrency = 2");
    println!("shield: 8 callbacks at once to a 0.4 s receiver: peak {peak_without} without a limit, {peak} with max_concurrency = 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_spaces_the_deliveries() {
    let rx = Receiver::start();
    let gw = Gateway::start(&route(&rx.url(), "rate = \"5/s\""));
    let start = Instant::now();
    let statuses = burst(&gw, 10).await;
    let took = start.elapsed();
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    // Five at once (one second's worth), five more at 5/s.
    assert!(
        took >= Duration::from_millis(800),
        "10 at 5/s took {took:?}"
    );
    assert_eq!(rx.stats().await.0, 10);
    println!("shield: 10 callbacks at rate = 5/s took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_queue_stores_what_the_receiver_refuses_and_delivers_it_later() {
    let rx = Receiver::start();
    rx.mode(503, 0.0).await;
    let gw = Gateway::start(&route(
        &rx.url(),
        "on_failure = \"queue\"\nretry = { base = \"200ms\", cap = \"300ms\" }",
    ));
    let c = Client::https(gw.https.unwrap(), Version::H1);
    let r = c
        .post(&format!("/r?token={TOKEN}"), &[], b"{\"n\":1}")
        .await;
    assert_eq!((r.status.as_u16(), &r.body[..]), (202, &b"accepted\n"[..]));
    let log = gw.wait_for_log("the receiver failed");
    assert!(log.contains("the receiver failed"), "{log}");
    // The receiver comes back: the worker delivers the stored callback.
    rx.mode(200, 0.0).await;
    let start = Instant::now();
    while rx.stats().await.2 < 1 {
        assert!(start.elapsed() < Duration::from_secs(10), "not delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A working receiver's answer comes back as it is.
    let r = c
        .post(&format!("/r?token={TOKEN}"), &[], b"{\"n\":2}")
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_opens_after_five_failures_and_stores_without_trying() {
    let rx = Receiver::start();
    rx.mode(500, 0.0).await;
    let gw = Gateway::start(&route(
        &rx.url(),
        "on_failure = \"queue\"\nretry = { base = \"1h\", cap = \"1h\" }",
    ));
    let c = Client::https(gw.https.unwrap(), Version::H1);
    for i in 0..5 {
        let r = c
            .post(
                &format!("/r?token={TOKEN}"),
                &[],
                format!("{{\"n\":{i}}}").as_bytes(),
            )
            .await;
        assert_eq!(r.status, 202);
    }
    gw.wait_for_log("circuit open");
    let r = c
        .post(&format!("/r?token={TOKEN}"), &[], b"{\"n\":99}")
        .await;
    assert_eq!(r.status, 202);
    // Stored at once, the receiver not tried inline.
    let log = gw.wait_for_log("the circuit is open: stored as");
    assert!(log.contains("outcome=\"queued\""), "{log}");
}
