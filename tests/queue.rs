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
    std::fs::write(&gw.config_path, without).unwrap();
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
    std::fs::write(&gw.config_path, &queued).unwrap();
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
