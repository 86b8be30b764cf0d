//! Store-and-forward: verified callbacks are stored before the provider
//! hears 202, and reach the receiver once it is back, in order, through
//! failures, dead letters and a crash of callgate itself.

use callgate_testkit as support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use support::gateway::run_cli;
use support::postgres::{Backend, QueueStore};
use support::upstream::closed_port;
use support::{Client, Gateway, Upstream, Version};

const TOKEN: &str = "queue-token-77-0123456789";

/// A queue route on `store` (SQLite or PostgreSQL).
fn config(upstream: &str, store: &QueueStore, extra: &str) -> String {
    config_with(upstream, &store.section(), extra)
}

/// A queue route on the SQLite store in `queue_dir`.
fn config_dir(upstream: &str, queue_dir: &Path, extra: &str) -> String {
    config_with(
        upstream,
        &format!("[queue]\ndir = \"{}\"\n", queue_dir.display()),
        extra,
    )
}

fn config_with(upstream: &str, queue: &str, extra: &str) -> String {
    format!(
        r#"
{queue}

[[route]]
name = "tolq"
path = "/cb"
upstream = "{upstream}"
token = {{ secrets = ["other-token-0123456789abcdef", "{TOKEN}"] }}
delivery = "queue"
upstream_timeout = "2s"
retry = {{ base = "50ms", cap = "200ms", max_attempts = 1000 }}
{extra}
"#
    )
}

/// Each test run against both stores.
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(Backend::Postgres).await
            }
        }
    )*};
}

both!(
    receiver_down_then_up_gets_every_callback_once_in_order,
    a_failing_receiver_gets_it_on_the_fourth_attempt,
    a_refused_callback_is_a_dead_letter_until_retried,
    duplicates_within_the_window_are_forwarded_once,
    queue_metrics_follow_the_deliveries,
    old_dedupe_rows_are_pruned_by_the_running_gateway,
    a_reload_that_removes_a_queue_route_stops_its_worker,
    delivery_keeps_another_routes_token_parameter_as_sent,
    sigterm_finishes_a_delivery_under_way,
);

async fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn bodies(up: &Upstream) -> Vec<String> {
    up.requests()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect()
}

async fn receiver_down_then_up_gets_every_callback_once_in_order(backend: Backend) {
    let store = QueueStore::new(backend);
    let addr = closed_port();
    let gw = Gateway::start(&config(&format!("http://{addr}/receiver.php"), &store, ""));
    let mut session = Client::https(gw.https.unwrap(), Version::H1)
        .session()
        .await;
    for i in 0..200 {
        let r = session
            .post(
                &format!("/cb?token={TOKEN}&n={i}"),
                &[("content-type", "application/json")],
                format!("{{\"n\":{i}}}").as_bytes(),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 202, "callback {i}");
        assert_eq!(&r.body[..], b"accepted\n");
    }
    if let Some(pg) = &store.pg {
        let stored = pg.psql(&store.url, &format!("SELECT COUNT(*), COUNT(*) FILTER (WHERE query LIKE '%{TOKEN}%' OR position('{TOKEN}'::bytea in headers) > 0) FROM callgate_callbacks"));
        assert_eq!(stored, "200|0", "200 stored, none with the token");
    }
    // The receiver comes back.
    let up = Upstream::recording_on(addr).await;
    wait_for("200 deliveries", Duration::from_secs(60), || {
        up.count() >= 200
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = bodies(&up);
    let want: Vec<String> = (0..200).map(|i| format!("{{\"n\":{i}}}")).collect();
    assert_eq!(got, want, "each callback exactly once, in arrival order");
    let first = &up.requests()[0];
    assert_eq!(first.uri.path(), "/receiver.php");
    assert_eq!(
        first.uri.query(),
        Some(format!("token={TOKEN}&n=0").as_str()),
        "the token is put back as it was"
    );
    assert_eq!(first.headers["x-callgate-verified"], "token");
    assert_eq!(first.headers["content-type"], "application/json");
    // The token never touched the disk.
    for entry in std::fs::read_dir(store.dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
            "token stored on disk"
        );
    }
}

// Blocking helpers (wait_for_log, run_cli) must not starve the in-process upstream.
async fn a_failing_receiver_gets_it_on_the_fourth_attempt(backend: Backend) {
    let store = QueueStore::new(backend);
    let up = Upstream::recording().await;
    up.script(&[500, 503, 500]);
    let gw = Gateway::start(&config(&up.url("/r"), &store, ""));
    let r = Client::https(gw.https.unwrap(), Version::H2)
        .post(&format!("/cb?token={TOKEN}"), &[], b"finished")
        .await;
    assert_eq!(r.status, 202);
    wait_for("4 attempts", Duration::from_secs(10), || up.count() >= 4).await;
    let log = gw.wait_for_log("queue: delivered");
    assert!(log.contains("attempts=4"), "{log}");
    // Waits read as people write them: whole milliseconds at most.
    for line in log.lines().filter(|l| l.contains("next attempt in")) {
        assert!(!line.contains("us") && !line.contains("ns"), "{line}");
    }
    if let Backend::Sqlite = backend {
        assert!(
            log.contains("(created now, 0600 in a 0700 directory)"),
            "{log}"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(up.count(), 4, "no attempt after the 2xx");
}

// Blocking helpers (wait_for_log, run_cli) must not starve the in-process upstream.
async fn a_refused_callback_is_a_dead_letter_until_retried(backend: Backend) {
    let store = QueueStore::new(backend);
    let up = Upstream::recording().await;
    up.script(&[400]);
    let gw = Gateway::start(&config(&up.url("/r"), &store, ""));
    let r = Client::https(gw.https.unwrap(), Version::H1)
        .post(
            &format!("/cb?token={TOKEN}"),
            &[
                ("x-tolq-signature", "abc"),
                ("authorization", "Basic cHJvdmlkZXI6c2VjcmV0"),
                ("proxy-authorization", "Basic cHJveHk6c2VjcmV0"),
            ],
            b"{\"id\":9,\"x\":\"\x1b]0;owned\x07\"}",
        )
        .await;
    assert_eq!(r.status, 202);
    gw.wait_for_log("dead letter");
    let cfg = gw.config_path.to_str().unwrap().to_owned();

    let (code, out, err) = run_cli(
        &["queue", "list", "--state", "dead", "--config", &cfg],
        b"",
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("tolq")
            && out.contains("dead")
            && out.contains("HTTP 400")
            && out.contains("1 callback(s)"),
        "{out}"
    );
    let id = out
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();

    let (code, out, _) = run_cli(&["queue", "show", &id, "--config", &cfg], b"", &[]);
    assert_eq!(code, 0);
    assert!(
        out.contains("verified:  token")
            && out.contains("{\"id\":9,\"x\":\"\\x1b]0;owned\\x07\"}")
            && out.contains("x-tolq-signature: abc"),
        "{out}"
    );
    assert!(
        !out.contains('\x1b') && !out.contains('\x07'),
        "no control byte reaches the terminal"
    );
    assert!(
        !out.to_ascii_lowercase().contains("authorization") && !out.contains("c2VjcmV0"),
        "credentials are not stored: {out}"
    );
    assert!(
        out.contains("\nPOST /r?token=REDACTED\n") && !out.contains(TOKEN),
        "the token is never shown: {out}"
    );

    // The receiver is fixed; the operator retries.
    let (code, out, _) = run_cli(
        &["queue", "retry", "--all-dead", "--config", &cfg],
        b"",
        &[],
    );
    assert_eq!(code, 0);
    assert!(out.contains("1 dead callback(s)"), "{out}");
    wait_for("redelivery", Duration::from_secs(5), || up.count() >= 2).await;
    wait_for("empty queue", Duration::from_secs(5), || {
        run_cli(&["queue", "list", "--config", &cfg], b"", &[])
            .1
            .contains("0 callback(s)")
    })
    .await;

    // drop: a callback removed for good is never delivered.
    up.script(&[400]);
    let r = Client::https(gw.https.unwrap(), Version::H1)
        .post(&format!("/cb?token={TOKEN}"), &[], b"drop me")
        .await;
    assert_eq!(r.status, 202);
    wait_for("second dead letter", Duration::from_secs(5), || {
        run_cli(
            &["queue", "list", "--state", "dead", "--config", &cfg],
            b"",
            &[],
        )
        .1
        .contains("1 callback(s)")
    })
    .await;
    let out = run_cli(&["queue", "list", "--config", &cfg], b"", &[]).1;
    let id = out
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(
        run_cli(&["queue", "drop", &id, "--config", &cfg], b"", &[]).0,
        0
    );
    assert_eq!(
        run_cli(&["queue", "retry", &id, "--config", &cfg], b"", &[]).0,
        1,
        "dropped is gone"
    );
}

// Blocking helpers (wait_for_log, run_cli) must not starve the in-process upstream.
async fn duplicates_within_the_window_are_forwarded_once(backend: Backend) {
    let store = QueueStore::new(backend);
    let up = Upstream::recording().await;
    let sections = config(&up.url("/q"), &store, "dedupe_window = \"1h\"")
        + &format!("\n[[route]]\nname = \"direct\"\npath = \"/direct\"\nupstream = \"{}\"\ntoken = {{ secrets = [\"{TOKEN}\"] }}\ndedupe_window = \"1h\"\n", up.url("/d"));
    let gw = Gateway::start(&sections);
    let c = Client::https(gw.https.unwrap(), Version::H1);

    assert_eq!(
        c.post(&format!("/direct?token={TOKEN}"), &[], b"job-1")
            .await
            .status,
        200
    );
    let again = c
        .post(&format!("/direct?token={TOKEN}"), &[], b"job-1")
        .await;
    assert_eq!(again.status, 200, "a provider retry is answered 200");
    assert_eq!(
        c.post(&format!("/direct?token={TOKEN}"), &[], b"job-2")
            .await
            .status,
        200
    );

    assert_eq!(
        c.post(&format!("/cb?token={TOKEN}"), &[], b"job-1")
            .await
            .status,
        202
    );
    wait_for("queued delivery", Duration::from_secs(5), || {
        up.requests().iter().any(|r| r.uri.path() == "/q")
    })
    .await;
    let copy = c.post(&format!("/cb?token={TOKEN}"), &[], b"job-1").await;
    assert_eq!(
        (copy.status.as_u16(), &copy.body[..]),
        (202, &b"accepted\n"[..]),
        "already delivered on this route: acknowledged, not stored again"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let per_path: BTreeMap<String, Vec<String>> =
        up.requests().iter().fold(BTreeMap::new(), |mut m, r| {
            m.entry(r.uri.path().to_owned())
                .or_default()
                .push(String::from_utf8_lossy(&r.body).into_owned());
            m
        });
    assert_eq!(per_path["/d"], vec!["job-1", "job-2"]);
    assert_eq!(
        per_path["/q"],
        vec!["job-1"],
        "dedupe is per route: the same body on another route is new"
    );
}

// Blocking helpers (wait_for_log, run_cli) must not starve the in-process upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_store_answers_503_never_202() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let up = Upstream::recording().await;
    let gw = Gateway::start(&config_dir(&up.url("/r"), &file.join("queue"), ""));
    let r = Client::https(gw.https.unwrap(), Version::H1)
        .post(&format!("/cb?token={TOKEN}"), &[], b"x")
        .await;
    assert_eq!(r.status, 503, "the provider will retry");
    let log = gw.wait_for_log("not stored");
    assert!(log.contains("cannot create the directory"), "{log}");
    assert_eq!(up.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_delivery_loses_no_acknowledged_callback() {
    const N: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let up = Upstream::recording().await;
    up.delay(Duration::from_millis(25));
    let text = config_dir(&up.url("/r"), dir.path(), "");
    let mut gw = Gateway::start(&text);
    let mut session = Client::https(gw.https.unwrap(), Version::H2)
        .session()
        .await;
    let mut acknowledged = 0;
    for i in 0..N {
        if session
            .post(
                &format!("/cb?token={TOKEN}"),
                &[],
                format!("cb-{i:03}").as_bytes(),
            )
            .await
            .unwrap()
            .status
            == 202
        {
            acknowledged += 1;
        }
    }
    wait_for("some deliveries", Duration::from_secs(10), || {
        up.count() >= 20
    })
    .await;
    gw.signal("KILL");
    assert_eq!(
        gw.wait_exit(Duration::from_secs(5)),
        None,
        "killed by a signal, no exit code"
    );
    let before_restart = up.count();

    let _gw = Gateway::start(&text);
    wait_for("all deliveries", Duration::from_secs(30), || {
        let mut b = bodies(&up);
        b.sort();
        b.dedup();
        b.len() >= N
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let all = bodies(&up);
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    println!(
        "crash test: {acknowledged} acknowledged, {} delivered before kill -9, {} unique delivered in all, {} duplicate(s)",
        before_restart,
        unique.len(),
        all.len() - unique.len()
    );
    assert_eq!(acknowledged, N);
    assert_eq!(
        unique.len(),
        N,
        "every acknowledged callback reached the upstream"
    );
    assert!(
        all.len() - unique.len() <= 1,
        "only a callback in flight at the crash may come twice"
    );
    let mut sorted = all.clone();
    sorted.dedup();
    assert_eq!(sorted, unique, "still in arrival order");
}

async fn queue_metrics_follow_the_deliveries(backend: Backend) {
    let store = QueueStore::new(backend);
    let up = Upstream::recording().await;
    up.script(&[503, 503]);
    let cert = support::gateway::test_cert();
    let text = format!(
        "[listen]\nhttps = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n[tls]\ncert = {:?}\nkey = {:?}\n{}",
        cert.cert_path.display().to_string(),
        cert.key_path.display().to_string(),
        config(&up.url("/r"), &store, "")
    );
    let gw = Gateway::start_raw(&text, &[]);
    let r = Client::https(gw.https.unwrap(), Version::H1)
        .post(&format!("/cb?token={TOKEN}"), &[], b"m")
        .await;
    assert_eq!(r.status, 202);
    wait_for("delivery", Duration::from_secs(10), || up.count() >= 3).await;
    let scrape = || async {
        let r = Client::http(gw.admin.unwrap())
            .request(http::Method::GET, "/metrics", &[], b"")
            .await;
        String::from_utf8_lossy(&r.body).into_owned()
    };
    let mut text = scrape().await;
    for _ in 0..50 {
        if text.contains(
            "callgate_queue_delivery_attempts_total{route=\"tolq\",result=\"delivered\"} 1",
        ) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        text = scrape().await;
    }
    for line in [
        "callgate_queue_delivery_attempts_total{route=\"tolq\",result=\"retry\"} 2",
        "callgate_queue_delivery_attempts_total{route=\"tolq\",result=\"delivered\"} 1",
        "callgate_requests_total{route=\"tolq\",outcome=\"queued\"} 1",
        "callgate_queue_depth{route=\"tolq\",state=\"dead\"} 0",
        "callgate_queue_oldest_pending_seconds{route=\"tolq\"}",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
}

async fn old_dedupe_rows_are_pruned_by_the_running_gateway(backend: Backend) {
    let store = QueueStore::new(backend);
    let up = Upstream::recording().await;
    let sections = format!(
        "{}\n[[route]]\nname = \"direct\"\npath = \"/direct\"\nupstream = \"{}\"\ntoken = {{ secrets = [\"{TOKEN}\"] }}\ndedupe_window = \"1s\"\n",
        store.section(),
        up.url("/d")
    );
    let gw = Gateway::start(&sections);
    let client = Client::https(gw.https.unwrap(), Version::H1);
    for body in ["a", "b", "c"] {
        let r = client
            .post(&format!("/direct?token={TOKEN}"), &[], body.as_bytes())
            .await;
        assert_eq!(r.status, 200);
    }
    let rows = || store.count("replay");
    assert_eq!(rows(), 3, "each delivery is remembered for its window");
    // The window is 1 s: the rows must be gone soon after, without any new request.
    wait_for(
        "the dedupe rows to be pruned",
        Duration::from_secs(5),
        || rows() == 0,
    )
    .await;
}

// Blocking helpers (wait_for_log, run_cli) must not starve the in-process upstream.
async fn a_reload_that_removes_a_queue_route_stops_its_worker(backend: Backend) {
    let store = QueueStore::new(backend);
    let addr = closed_port();
    let gw = Gateway::start(&config(&format!("http://{addr}/r"), &store, ""));
    let queued = std::fs::read_to_string(&gw.config_path).unwrap();
    let r = Client::https(gw.https.unwrap(), Version::H1)
        .post(&format!("/cb?token={TOKEN}"), &[], b"kept")
        .await;
    assert_eq!(r.status, 202);
    gw.wait_for_log("queue: delivery failed");
    // The same file without the queue route: a direct route elsewhere.
    let cert = support::gateway::test_cert();
    let without = format!(
        "[listen]\nhttps = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\n\n[tls]\ncert = {:?}\nkey = {:?}\n{}\n[[route]]\nname = \"other\"\npath = \"/other\"\nupstream = \"http://{addr}/o\"\ntoken = {{ secrets = [\"x-0123456789abcdef\"] }}\n",
        cert.cert_path.display().to_string(),
        cert.key_path.display().to_string(),
        store.section()
    );
    gw.rewrite(&without);
    gw.signal("HUP");
    let log = gw.wait_for_log("its worker stops");
    assert!(
        log.contains("route=tolq") && log.contains("queue: route removed; its worker stops"),
        "{log}"
    );
    // The receiver comes back, but nothing delivers the removed route's callback…
    let up = Upstream::recording_on(addr).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(up.count(), 0, "a stopped worker delivered");
    // …which stays stored, and is delivered once the route is back.
    gw.rewrite(&queued);
    gw.signal("HUP");
    wait_for("the delivery", Duration::from_secs(10), || up.count() == 1).await;
    assert_eq!(&up.requests()[0].body[..], b"kept");
}

// Blocking helpers (wait_for_log, run_cli) must not starve the in-process upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_is_private_and_keeps_no_delivered_body() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("state").join("queue");
    let up = Upstream::recording().await;
    let gw = Gateway::start(&config_dir(&up.url("/r"), &dir, ""));
    const MARKER: &str = "provider-data-7f3a9c";
    let r = Client::https(gw.https.unwrap(), Version::H1)
        .post(&format!("/cb?token={TOKEN}"), &[], MARKER.as_bytes())
        .await;
    assert_eq!(r.status, 202);
    wait_for("the delivery", Duration::from_secs(10), || up.count() == 1).await;
    gw.wait_for_log("queue: delivered");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "the queue directory");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        files += 1;
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
            "a delivered body lingers in {}",
            path.display()
        );
    }
    assert!(files >= 1);
}

async fn delivery_keeps_another_routes_token_parameter_as_sent(backend: Backend) {
    let store = QueueStore::new(backend);
    let up = Upstream::recording().await;
    // Another route's token parameter is redacted in logs, but a parameter of
    // that name on this route is no secret of this route: it is stored and
    // delivered as sent.
    let other = format!(
        "\n[[route]]\nname = \"other\"\npath = \"/other\"\nupstream = \"{}\"\ntoken = {{ param = \"api_key\", secrets = [\"k-0123456789abcdef\"] }}\n",
        up.url("/o")
    );
    let gw = Gateway::start(&(config(&up.url("/r"), &store, "") + &other));
    let r = Client::https(gw.https.unwrap(), Version::H1)
        .post(
            &format!("/cb?api_key=not-ours&token={TOKEN}&n=1"),
            &[],
            b"q",
        )
        .await;
    assert_eq!(r.status, 202);
    wait_for("the delivery", Duration::from_secs(10), || up.count() == 1).await;
    assert_eq!(
        up.requests()[0].uri.query(),
        Some(format!("api_key=not-ours&token={TOKEN}&n=1").as_str())
    );
    let log = gw.wait_for_log("outcome=\"queued\"");
    assert!(log.contains("api_key=REDACTED"), "{log}");
}

/// SIGTERM while the receiver is still working on a callback: callgate
/// waits for its answer (within drain_timeout) and records the delivery,
/// so the restarted gateway does not deliver it again.
async fn sigterm_finishes_a_delivery_under_way(backend: Backend) {
    let store = QueueStore::new(backend);
    let up = Upstream::recording().await;
    up.delay(Duration::from_millis(1500));
    let text = format!(
        "[gateway]\ndrain_timeout = \"10s\"\n{}",
        config(&up.url("/receiver.php"), &store, "")
    );
    let mut gw = Gateway::start(&text);
    let c = Client::https(gw.https.unwrap(), Version::H1);
    let r = c
        .post(&format!("/cb?token={TOKEN}"), &[], b"slow one")
        .await;
    assert_eq!(r.status, 202);
    wait_for("the delivery to start", Duration::from_secs(5), || {
        up.count() == 1
    })
    .await;
    gw.signal("TERM");
    let stopped = Instant::now();
    let code = tokio::task::spawn_blocking(move || gw.wait_exit(Duration::from_secs(8)))
        .await
        .unwrap();
    let took = stopped.elapsed();
    assert_eq!(code, Some(0));
    assert!(
        took >= Duration::from_millis(1000),
        "exited after {took:?}: the delivery was cut"
    );
    assert_eq!(store.count("callbacks"), 0, "the delivery was not recorded");
    // Restarted on the same store: nothing left to deliver again.
    let _again = Gateway::start(&text);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(up.count(), 1, "delivered again after the restart");
    println!("SIGTERM with a delivery under way: exited after {took:?}, delivered once");
}

/// How many times each body reached the receiver.
fn tally(up: &Upstream) -> BTreeMap<String, usize> {
    bodies(up).into_iter().fold(BTreeMap::new(), |mut m, b| {
        *m.entry(b).or_default() += 1;
        m
    })
}

/// A small random number for the moments of the kills (no seed to keep).
fn random_below(n: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    (nanos ^ (nanos >> 7)).wrapping_mul(0x9E37_79B9_7F4A_7C15) % n
}

both!(
    kill_9_at_random_moments_repeats_at_most_what_was_in_flight,
    sigterm_repeats_only_the_delivery_it_cut,
    a_reload_storm_never_runs_two_workers_on_a_route,
);

/// kill -9 × 20 at random moments while a backlog drains through a receiver
/// that takes 0.1 s, `max_in_flight = 4`. Every callback arrives; a kill
/// repeats at most the 4 deliveries that were in flight (each outcome is
/// recorded as it comes, not at the end of a round of 16).
async fn kill_9_at_random_moments_repeats_at_most_what_was_in_flight(backend: Backend) {
    const N: usize = 600;
    const KILLS: usize = 20;
    const IN_FLIGHT: usize = 4;
    let store = QueueStore::new(backend);
    let up = Upstream::recording().await;
    up.delay(Duration::from_millis(100));
    let text = config(&up.url("/r"), &store, "max_in_flight = 4");
    let mut gw = Gateway::start(&text);
    let mut session = Client::https(gw.https.unwrap(), Version::H2)
        .session()
        .await;
    for i in 0..N {
        let r = session
            .post(
                &format!("/cb?token={TOKEN}"),
                &[],
                format!("id-{i:04}").as_bytes(),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 202, "callback {i}");
    }
    // Where each life of the gateway ends in the receiver's record, and
    // how many requests the receiver was still answering at each kill.
    let (mut ends, mut answering) = (Vec::new(), Vec::new());
    for kill in 0..KILLS {
        if kill > 0 {
            gw = Gateway::start(&text);
        }
        // At a random moment once this life delivers.
        let before = ends.last().copied().unwrap_or(0);
        let start = Instant::now();
        while up.count() == before && start.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(random_below(600))).await;
        answering.push(up.answering());
        gw.signal("KILL");
        gw = tokio::task::spawn_blocking(move || {
            gw.wait_exit(Duration::from_secs(5));
            gw
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        ends.push(up.count());
    }
    let _last = Gateway::start(&text);
    wait_for("every callback", Duration::from_secs(90), || {
        tally(&up).len() >= N
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = bodies(&up);
    let lives: Vec<&[String]> = std::iter::once(0)
        .chain(ends.iter().copied())
        .zip(ends.iter().copied().chain(std::iter::once(all.len())))
        .map(|(from, to)| &all[from..to])
        .collect();
    let mut per_kill = Vec::new();
    for (k, life) in lives.iter().enumerate().take(KILLS) {
        let later: std::collections::BTreeSet<&String> =
            lives[k + 1..].iter().flat_map(|l| l.iter()).collect();
        per_kill.push(life.iter().filter(|b| later.contains(b)).count());
    }
    let unique = tally(&up).len();
    let duplicates = all.len() - unique;
    println!(
        "kill -9 ({backend:?}): {KILLS} kills, {N} acknowledged, {unique} delivered, lost {}, {duplicates} duplicate(s); per kill {per_kill:?} (most {}), receiver answering at each kill {answering:?}",
        N - unique,
        per_kill.iter().max().unwrap(),
    );
    assert_eq!(unique, N, "an acknowledged callback was lost");
    assert_eq!(
        per_kill.iter().sum::<usize>(),
        duplicates,
        "a duplicate within one life of the gateway"
    );
    for (k, d) in per_kill.iter().enumerate() {
        assert!(
            *d <= IN_FLIGHT,
            "kill {k} repeated {d} deliveries, more than the {IN_FLIGHT} in flight: {per_kill:?}"
        );
    }
}

/// SIGTERM while one delivery of a backlog takes 20 s and the others took
/// milliseconds: drain_timeout (1 s) cuts the slow one, and after the
/// restart only it is delivered again; the others' 2xx were recorded as
/// they came.
async fn sigterm_repeats_only_the_delivery_it_cut(backend: Backend) {
    let store = QueueStore::new(backend);
    let addr = closed_port();
    let text = format!(
        "[gateway]\ndrain_timeout = \"1s\"\n{}",
        config(&format!("http://{addr}/r"), &store, "max_in_flight = 4")
            .replace("upstream_timeout = \"2s\"", "upstream_timeout = \"60s\"")
    );
    let mut gw = Gateway::start(&text);
    let c = Client::https(gw.https.unwrap(), Version::H1);
    for body in std::iter::once("slow".to_owned()).chain((0..16).map(|i| format!("n-{i:02}"))) {
        let r = c
            .post(&format!("/cb?token={TOKEN}"), &[], body.as_bytes())
            .await;
        assert_eq!(r.status, 202);
    }
    // The receiver comes up; the slow one takes 20 s.
    let up = Upstream::recording_on(addr).await;
    up.delay_when(b"slow", Duration::from_secs(20));
    wait_for(
        "16 deliveries besides the slow one",
        Duration::from_secs(10),
        || tally(&up).len() >= 16 && up.answering() <= 1,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw.signal("TERM");
    let code = tokio::task::spawn_blocking(move || gw.wait_exit(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
    let before = tally(&up);
    let _again = Gateway::start(&text);
    wait_for("every callback delivered", Duration::from_secs(15), || {
        tally(&up).len() == 17
    })
    .await;
    // The slow one again (after its lease on PostgreSQL), and nothing else.
    wait_for("the slow one again", Duration::from_secs(15), || {
        tally(&up).get("slow").copied().unwrap_or(0) >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let after = tally(&up);
    let repeated: Vec<&String> = after
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(b, _)| b)
        .collect();
    println!(
        "SIGTERM ({backend:?}) with one slow delivery: {} delivered before the stop, repeated after the restart: {repeated:?}",
        before.len()
    );
    assert_eq!(repeated, vec!["slow"], "only the cut delivery repeats");
}

/// A reload storm removes and restores a queue route while its backlog
/// drains through a slow receiver: the restored route's worker waits for
/// the old one's deliveries, so no callback is delivered twice and the
/// receiver never holds more than `max_in_flight`.
async fn a_reload_storm_never_runs_two_workers_on_a_route(backend: Backend) {
    const N: usize = 120;
    let store = QueueStore::new(backend);
    let up = Upstream::recording().await;
    up.delay(Duration::from_millis(250));
    let gw = Gateway::start(&config(&up.url("/r"), &store, "max_in_flight = 4"));
    let with = std::fs::read_to_string(&gw.config_path).unwrap();
    let mut session = Client::https(gw.https.unwrap(), Version::H2)
        .session()
        .await;
    for i in 0..N {
        let r = session
            .post(
                &format!("/cb?token={TOKEN}"),
                &[],
                format!("id-{i:04}").as_bytes(),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 202);
    }
    // The same file without the queue route (a direct route instead).
    let start = with.find("[[route]]").unwrap();
    let without = format!(
        "{}[[route]]\nname = \"other\"\npath = \"/other\"\nupstream = \"{}\"\ntoken = {{ secrets = [\"x-0123456789abcdef\"] }}\n",
        &with[..start],
        up.url("/o")
    );
    for _ in 0..15 {
        gw.rewrite(&without);
        gw.signal("HUP");
        tokio::time::sleep(Duration::from_millis(50 + random_below(200))).await;
        gw.rewrite(&with);
        gw.signal("HUP");
        tokio::time::sleep(Duration::from_millis(50 + random_below(300))).await;
    }
    wait_for("every callback", Duration::from_secs(60), || {
        tally(&up).len() >= N
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let duplicates = up.count() - N;
    println!(
        "reload storm ({backend:?}): 30 reloads, {N} callbacks, {duplicates} duplicate(s), most at the receiver at once {}",
        up.peak()
    );
    assert_eq!(duplicates, 0, "two workers delivered the same callback");
    assert!(
        up.peak() <= 4,
        "more than max_in_flight at once: {}",
        up.peak()
    );
}

/// A small tmpfs mounted for one test (root only), unmounted at the end.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs(dir))
    }

    /// Fill it to the last byte; the filler file, to remove when space returns.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.0.path().join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        for chunk in [65536, 4096, 1] {
            let bytes = vec![0u8; chunk];
            while f.write_all(&bytes).is_ok() {}
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .args(["-l"])
            .arg(self.0.path())
            .status();
    }
}

/// The store's filesystem fills up under a running gateway. While full:
/// a new callback gets 503 (never 202), /healthz says the store is
/// unavailable, the worker owes what it could not record and delivers
/// nothing new, retrying the write with the route's backoff: a receiver
/// answering 503 sees attempts within the retry schedule, and one answering
/// 200 gets the callback once (on main: 163 attempts in 10 s, and 217
/// deliveries of one callback). When space returns nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_deliveries_until_their_outcomes_are_recorded() {
    let Some(disk) = Tmpfs::mount("2m") else {
        eprintln!("SKIPPED: mounting a tmpfs needs root");
        return;
    };
    let dir = disk.0.path().join("queue");
    let up = Upstream::recording().await;
    up.answer(503, vec![], b"busy");
    let cert = support::gateway::test_cert();
    let text = format!(
        "[listen]\nhttps = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n[tls]\ncert = {:?}\nkey = {:?}\n{}",
        cert.cert_path.display().to_string(),
        cert.key_path.display().to_string(),
        config_dir(&up.url("/r"), &dir, "").replace(
            "retry = { base = \"50ms\", cap = \"200ms\", max_attempts = 1000 }",
            "retry = { base = \"400ms\", cap = \"2s\", max_attempts = 1000 }"
        )
    );
    let gw = Gateway::start_raw(&text, &[]);
    let client = Client::https(gw.https.unwrap(), Version::H1);
    let admin = Client::http(gw.admin.unwrap());
    let post = |body: &'static str| {
        let c = &client;
        async move {
            c.post(&format!("/cb?token={TOKEN}"), &[], body.as_bytes())
                .await
                .status
        }
    };
    let get = |path: &'static str| {
        let a = &admin;
        async move {
            let r = a.request(http::Method::GET, path, &[], b"").await;
            (
                r.status.as_u16(),
                String::from_utf8_lossy(&r.body).into_owned(),
            )
        }
    };
    assert_eq!(post("first").await, 202);
    wait_for("a first attempt", Duration::from_secs(5), || {
        up.count() >= 1
    })
    .await;

    // Full, the receiver answering 503.
    let filler = disk.fill();
    assert_eq!(
        post("while-full-1").await,
        503,
        "acknowledged on a full disk"
    );
    let window = Duration::from_secs(4);
    let from = up.count();
    tokio::time::sleep(window).await;
    let attempts_503 = up.count() - from;
    // The schedule from base 400 ms: waits of at least 200, 400, 800, 1000 ms…
    let schedule_503 = 6;
    assert!(
        attempts_503 <= schedule_503,
        "{attempts_503} attempts in {window:?}"
    );
    let (status, health) = get("/healthz").await;
    assert!(
        status == 503 || health.contains("unavailable"),
        "{status} {health}"
    );
    let (_, metrics) = get("/metrics").await;
    assert!(
        metrics.contains("callgate_queue_unrecorded_outcomes{route=\"tolq\"} 1"),
        "{metrics}"
    );
    std::fs::remove_file(&filler).unwrap();
    wait_for("the owed outcome recorded", Duration::from_secs(10), || {
        gw.log().contains("the store records again")
    })
    .await;
    let (status, health) = get("/healthz").await;
    assert!(
        status == 200 && !health.contains("unavailable"),
        "{status} {health}"
    );

    // Full again, the receiver answering 200.
    let filler = disk.fill();
    up.answer(200, vec![], b"ok");
    let from = up.count();
    tokio::time::sleep(window).await;
    let deliveries_200 = up.count() - from;
    assert!(
        deliveries_200 <= 1,
        "delivered {deliveries_200} times while full"
    );
    assert_eq!(
        post("while-full-2").await,
        503,
        "acknowledged on a full disk"
    );
    std::fs::remove_file(&filler).unwrap();

    // Space is back: nothing acknowledged is lost, nothing delivered twice.
    assert_eq!(post("after").await, 202);
    wait_for(
        "every acknowledged callback",
        Duration::from_secs(15),
        || {
            let t = tally(&up);
            t.contains_key("first") && t.contains_key("after")
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let log = gw.log();
    let first_failures = log.matches("cannot record what came of deliveries").count();
    println!(
        "full disk: receiver answering 503: {attempts_503} attempt(s) in {window:?} (the schedule allows {schedule_503}); answering 200: {deliveries_200} delivery(ies) in {window:?}; lost 0; log lines at first failure: {first_failures}"
    );
    assert_eq!(
        first_failures, 2,
        "one log line per spell of failures:\n{log}"
    );
    let t = tally(&up);
    assert!(!t.contains_key("while-full-1") && !t.contains_key("while-full-2"));
    assert_eq!(t["after"], 1);
    assert_eq!(store_rows(&dir), 0, "the queue is empty");
}

fn store_rows(dir: &Path) -> i64 {
    let conn = rusqlite::Connection::open(dir.join("callgate-queue.sqlite3")).unwrap();
    conn.query_row("SELECT COUNT(*) FROM callbacks", [], |r| r.get(0))
        .unwrap()
}

/// "(created now, …)" is said when the store is created, once: not again
/// at a reload, nor when a restart opens the same file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_now_is_said_only_at_creation() {
    let dir = tempfile::tempdir().unwrap();
    let text = config_dir("http://127.0.0.1:9/r", &dir.path().join("q"), "");
    let gw = Gateway::start(&text);
    gw.wait_for_log("callback store open");
    gw.signal("HUP");
    gw.wait_for_log("config reloaded");
    let log = gw.log();
    assert_eq!(log.matches("callback store open").count(), 2, "{log}");
    assert_eq!(log.matches("created now").count(), 1, "{log}");
    drop(gw);
    let again = Gateway::start(&text);
    let log = again.wait_for_log("callback store open");
    assert!(!log.contains("created now"), "{log}");
}
