//! Several instances, one set of certificates: with the queue on a real
//! PostgreSQL, `[tls.acme]` keeps the account, the certificate (keys
//! sealed) and the challenge answers there. A real pebble validates against
//! the second instance while the first places the order: one order, both
//! serve the same certificate; a restart orders nothing; an instance with
//! no local state serves the shared certificate; the database gone, both
//! keep serving; the ordering instance killed during validation, the other
//! orders and completes.

use callgate_testkit as support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use support::pebble::{free_port, Pebble};
use support::postgres::Postgres;
use support::{Gateway, Upstream};

const DOMAIN: &str = "cluster.callgate.test";
const STORE_KEY: &str = "acme-store-key-0123456789abcdef";

struct Ports {
    https: u16,
    http: u16,
}

impl Ports {
    fn new() -> Ports {
        Ports {
            https: free_port(),
            http: free_port(),
        }
    }
}

fn config(ports: &Ports, pebble: &Pebble, url: &str, state: &Path, upstream: &str) -> String {
    format!(
        r#"[listen]
https = "127.0.0.1:{https}"
http = "127.0.0.1:{http}"

[queue]
backend = "postgres"
url = "{url}"

[tls.acme]
domains = ["{DOMAIN}"]
contact = ["mailto:ops@callgate.test"]
state = {state:?}
directory = {directory:?}
ca_roots = {ca_roots:?}
store_key = "{STORE_KEY}"

[[route]]
name = "cb"
path = "/cb"
upstream = "{upstream}"
token = {{ secrets = ["cluster-token-0123456789"] }}
"#,
        https = ports.https,
        http = ports.http,
        directory = pebble.directory,
        ca_roots = pebble.ca_roots,
    )
}

fn wait_log(gw: &Gateway, needle: &str, times: usize, within: Duration) -> Duration {
    gw.wait_for_log_times(needle, times, within)
}

/// The certificate an instance presents for DOMAIN, if it is one `root` signed.
async fn presented(https: u16, root: &[u8]) -> Option<Vec<u8>> {
    let addr = SocketAddr::from(([127, 0, 0, 1], https));
    support::client::presented_certificate(addr, DOMAIN, &[root])
        .await
        .ok()
}

/// Until the instance serves `cert` (signed by `root`); how long it took.
async fn until_serving(https: u16, root: &[u8], cert: &[u8], within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if presented(https, root).await.as_deref() == Some(cert) {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "port {https} does not serve it");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Cluster {
    pg: Postgres,
    url: String,
    pebble: Pebble,
    upstream: Upstream,
    /// Pebble validates on these: the second instance's.
    b: Ports,
    _dirs: tempfile::TempDir,
    dirs: std::path::PathBuf,
}

impl Cluster {
    async fn new() -> Cluster {
        let pg = Postgres::start();
        let url = pg.database();
        let b = Ports::new();
        let pebble = Pebble::start(b.http, b.https, None);
        let dirs = tempfile::tempdir().unwrap();
        Cluster {
            url,
            pg,
            pebble,
            upstream: Upstream::recording().await,
            b,
            dirs: dirs.path().to_owned(),
            _dirs: dirs,
        }
    }

    /// A started and ordering (it holds the lock), then B started.
    async fn a_ordering_then_b() -> (Cluster, Ports, Gateway, Gateway) {
        let cluster = Cluster::new().await;
        let a_ports = Ports::new();
        let a = cluster.start(&a_ports, "a");
        wait_log(
            &a,
            "acme: ordering a certificate for every instance",
            1,
            Duration::from_secs(30),
        );
        let b = cluster.start(&cluster.b, "b");
        (cluster, a_ports, a, b)
    }

    fn start(&self, ports: &Ports, name: &str) -> Gateway {
        Gateway::start_raw(&self.config(ports, name), &[])
    }

    /// An instance's config: its ports, its own state directory `name`.
    fn config(&self, ports: &Ports, name: &str) -> String {
        config(
            ports,
            &self.pebble,
            &self.url,
            &self.dirs.join(name),
            &self.upstream.url("/receiver.php"),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_place_one_order_and_serve_one_certificate() {
    // B starts while A orders: it must not order, and it answers the CA.
    let (cluster, a_ports, a, b) = Cluster::a_ordering_then_b().await;
    wait_log(&a, "acme: certificate issued", 1, Duration::from_secs(60));
    let issued = Instant::now();
    let root = cluster.pebble.issuing_root();
    let cert = loop {
        if let Some(cert) = presented(a_ports.https, &root).await {
            break cert;
        }
        assert!(
            issued.elapsed() < Duration::from_secs(5),
            "A does not serve it"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    until_serving(cluster.b.https, &root, &cert, Duration::from_secs(10)).await;
    let lag = issued.elapsed();
    println!("issuance (A's log line) to the second instance serving it: {lag:?}");
    assert!(lag < Duration::from_secs(5), "{lag:?}");
    assert!(
        b.log().contains("tls-alpn-01 challenge answered"),
        "the CA validated against B: {}",
        b.log()
    );
    assert!(!b.log().contains("acme: ordering"), "{}", b.log());
    assert_eq!(cluster.pebble.orders(), 1, "{}", cluster.pebble.log());

    // The database holds the chain, never a key in clear.
    let rows = cluster.pg.psql(
        &cluster.url,
        "SELECT name || ' ' || (chain IS NOT NULL) || ' ' || encode(sealed, 'escape') FROM callgate_acme_state ORDER BY name",
    );
    assert!(
        rows.contains("account:") && rows.contains(&format!("certificate:{DOMAIN} true")),
        "{rows}"
    );
    // Sealed: neither the certificate's PEM key nor the account's PKCS#8
    // key (instant-acme's `key_pkcs8`) is there in clear.
    assert!(
        !rows.contains("PRIVATE KEY") && !rows.contains("key_pkcs8"),
        "{rows}"
    );
    assert_eq!(rows.matches(" cg1").count(), 2, "both rows sealed: {rows}");
    let answers = cluster.pg.psql(
        &cluster.url,
        "SELECT count(*) FROM callgate_acme_challenges",
    );
    assert_eq!(answers, "0", "answers withdrawn after the order");

    // Both restarted: the shared certificate, no new order.
    drop(a);
    drop(b);
    let a = cluster.start(&a_ports, "a");
    let b = cluster.start(&cluster.b, "b");
    until_serving(a_ports.https, &root, &cert, Duration::from_secs(10)).await;
    until_serving(cluster.b.https, &root, &cert, Duration::from_secs(10)).await;
    // A new instance with no local state: served at start, no order.
    let c_ports = Ports::new();
    let c = cluster.start(&c_ports, "c");
    let took = until_serving(c_ports.https, &root, &cert, Duration::from_secs(10)).await;
    println!("a new instance served the shared certificate {took:?} after its start");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(cluster.pebble.orders(), 1, "{}", cluster.pebble.log());
    for gw in [&a, &b, &c] {
        assert!(!gw.log().contains("acme: ordering"), "{}", gw.log());
        assert!(!gw.log().contains(STORE_KEY), "{}", gw.log());
    }

    // The database gone: every instance keeps serving what it has.
    cluster.pg.stop();
    wait_log(
        &b,
        "cannot read the shared ACME state",
        1,
        Duration::from_secs(15),
    );
    for port in [a_ports.https, cluster.b.https, c_ports.https] {
        assert_eq!(presented(port, &root).await.as_deref(), Some(&cert[..]));
    }
    // And an instance started while it is gone serves its local copy.
    drop(a);
    let a = cluster.start(&a_ports, "a");
    until_serving(a_ports.https, &root, &cert, Duration::from_secs(10)).await;
    assert!(a.log().contains("local copy"), "{}", a.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_instance_completes_when_the_ordering_one_dies_during_validation() {
    let (cluster, _, a, b) = Cluster::a_ordering_then_b().await;
    wait_log(
        &a,
        "acme: challenge answer published for every instance",
        1,
        Duration::from_secs(30),
    );
    a.signal("KILL");
    // B takes over: its own order, validated against itself.
    wait_log(&b, "acme: certificate issued", 1, Duration::from_secs(90));
    let root = cluster.pebble.issuing_root();
    assert!(presented(cluster.b.https, &root).await.is_some());
    let orders = cluster.pebble.orders();
    println!("orders with the first instance killed during validation: {orders}");
    assert!((1..=2).contains(&orders), "{}", cluster.pebble.log());
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_with_another_store_key_serves_nothing_it_cannot_open_and_says_so_once() {
    let cluster = Cluster::new().await;
    // A on the ports pebble validates.
    let a = cluster.start(&cluster.b, "a");
    wait_log(&a, "acme: certificate issued", 1, Duration::from_secs(60));
    let b_ports = Ports::new();
    let text = cluster
        .config(&b_ports, "b")
        .replace(STORE_KEY, "another-store-key-0123456789abcdef");
    let b = Gateway::start_raw(&text, &[]);
    wait_log(
        &b,
        "does not open with tls.acme.store_key",
        1,
        Duration::from_secs(10),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let root = cluster.pebble.issuing_root();
    assert!(presented(b_ports.https, &root).await.is_none());
    let log = b.log();
    assert_eq!(
        log.matches("the shared certificate cannot be served")
            .count(),
        1,
        "said once, not every second: {log}"
    );
    assert!(!log.contains("acme: certificate issued"), "{log}");
    drop(a);
}
