//! Running at the edge: SIGHUP reload under load, SIGTERM drain, sd_notify,
//! the admin listener's metrics, socket activation, JSON logs, and the
//! systemd units themselves.

use callgate_testkit as support;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::gateway::test_cert;
use support::{Client, Gateway, Upstream, Version};

fn listen_and_tls() -> String {
    let cert = test_cert();
    format!(
        "[listen]\nhttps = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n[tls]\ncert = {:?}\nkey = {:?}\n",
        cert.cert_path.display().to_string(),
        cert.key_path.display().to_string()
    )
}

fn route(name: &str, path: &str, upstream: &str) -> String {
    format!("\n[[route]]\nname = \"{name}\"\npath = \"{path}\"\nupstream = \"{upstream}\"\ntoken = {{ secrets = [\"t-0123456789abcdef\"] }}\n")
}

/// After a reload the listeners keep their addresses; only the file changes.
fn rewrite(gw: &Gateway, text: &str) {
    gw.rewrite(text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reload_under_load_loses_no_request() {
    let up = Upstream::recording().await;
    let base = listen_and_tls() + &route("a", "/a", &up.url("/a"));
    let gw = Gateway::start_raw(&base, &[]);
    let https = gw.https.unwrap();

    let failures = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (failures, done) = (failures.clone(), done.clone());
        let version = if w % 2 == 0 { Version::H1 } else { Version::H2 };
        workers.push(tokio::spawn(async move {
            // A fresh connection now and then, so reloads meet new handshakes too.
            for batch in 0..10 {
                let mut session = Client::https(https, version).session().await;
                for i in 0..50 {
                    let body = format!("w{w}-b{batch}-{i}");
                    match session
                        .post("/a?token=t-0123456789abcdef", &[], body.as_bytes())
                        .await
                    {
                        Ok(r) if r.status == 200 => {}
                        other => {
                            eprintln!("request failed: {other:?}");
                            failures.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }

    let wait_until = |n: usize| {
        let done = done.clone();
        async move {
            while done.load(Ordering::SeqCst) < n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };

    // 1. A reload that adds a route: it must work at once.
    wait_until(200).await;
    rewrite(&gw, &(base.clone() + &route("b", "/b", &up.url("/b"))));
    gw.signal("HUP");
    let start = Instant::now();
    loop {
        let r = Client::https(https, Version::H1)
            .post("/b?token=t-0123456789abcdef", &[], b"probe")
            .await;
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 404);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "new route never appeared"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // 2. A broken config is refused; the old one keeps serving.
    wait_until(800).await;
    rewrite(&gw, &(base.clone() + "\n[[route]]\nname = \"broken\"\n"));
    gw.signal("HUP");
    let log = gw.wait_for_log("reload refused");
    assert!(
        log.contains("reload refused, the previous config keeps serving"),
        "{log}"
    );
    let r = Client::https(https, Version::H2)
        .post("/b?token=t-0123456789abcdef", &[], b"still")
        .await;
    assert_eq!(r.status, 200, "route b survives a broken reload");

    // 3. More plain reloads while the load goes on.
    for _ in 0..3 {
        wait_until(done.load(Ordering::SeqCst) + 150).await;
        rewrite(&gw, &(base.clone() + &route("b", "/b", &up.url("/b"))));
        gw.signal("HUP");
    }

    for w in workers {
        w.await.unwrap();
    }
    assert_eq!(done.load(Ordering::SeqCst), 2000);
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "requests failed during reloads"
    );
    let to_a = up
        .requests()
        .iter()
        .filter(|r| r.uri.path() == "/a")
        .count();
    assert_eq!(to_a, 2000, "each request reached the upstream exactly once");
    assert!(gw.log().matches("config reloaded").count() >= 4);
}

#[tokio::test]
async fn reload_picks_up_a_renewed_certificate() {
    let up = Upstream::recording().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (
        dir.path().join("fullchain.pem"),
        dir.path().join("privkey.pem"),
    );
    let old = test_cert();
    std::fs::copy(&old.cert_path, &cert_path).unwrap();
    std::fs::copy(&old.key_path, &key_path).unwrap();
    let text = format!(
        "[listen]\nhttps = \"127.0.0.1:0\"\n[tls]\ncert = {:?}\nkey = {:?}\n{}",
        cert_path.display().to_string(),
        key_path.display().to_string(),
        route("a", "/a", &up.url("/a"))
    );
    let gw = Gateway::start_raw(&text, &[]);
    let renewed = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let client = Client::https(gw.https.unwrap(), Version::H1).trust(renewed.cert.der().to_vec());
    let before = client.session().await;
    assert_eq!(before.peer_cert.as_deref(), Some(&old.cert_der[..]));

    // What certbot's renewal does: new files in place, then `systemctl reload`.
    std::fs::write(&cert_path, renewed.cert.pem()).unwrap();
    std::fs::write(&key_path, renewed.signing_key.serialize_pem()).unwrap();
    gw.signal("HUP");
    gw.wait_for_log("config reloaded");
    let after = client.session().await;
    assert_eq!(after.peer_cert.as_deref(), Some(&renewed.cert.der()[..]));
}

#[tokio::test]
async fn sigterm_lets_the_request_in_flight_finish_and_exits_0() {
    let up = Upstream::recording().await;
    up.delay(Duration::from_millis(1500));
    let mut gw = Gateway::start_raw(&(listen_and_tls() + &route("a", "/a", &up.url("/a"))), &[]);
    let https = gw.https.unwrap();
    let in_flight = tokio::spawn(async move {
        Client::https(https, Version::H1)
            .post("/a?token=t-0123456789abcdef", &[], b"slow")
            .await
    });
    while up.count() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gw.signal("TERM");

    // New connections are refused while the old request drains.
    let start = Instant::now();
    loop {
        if tokio::net::TcpStream::connect(https).await.is_err() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "still accepting after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, 200, "the request in flight completes");
    assert_eq!(gw.wait_exit(Duration::from_secs(10)), Some(0));
    assert_eq!(up.count(), 1);
}

/// A request still waiting for its receiver when drain_timeout ends is cut,
/// and still gets its log line.
#[tokio::test]
async fn a_request_cut_at_drain_timeout_gets_its_log_line() {
    let up = Upstream::recording().await;
    up.delay(Duration::from_secs(20));
    let text = listen_and_tls()
        + "\n[gateway]\ndrain_timeout = \"1s\"\n"
        + &route("a", "/a", &up.url("/a"));
    let mut gw = Gateway::start_raw(&text, &[]);
    let https = gw.https.unwrap();
    let in_flight = tokio::spawn(async move {
        Client::https(https, Version::H1)
            .post("/a?token=t-0123456789abcdef", &[], b"slow")
            .await
    });
    while up.count() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gw.signal("TERM");
    assert_eq!(gw.wait_exit(Duration::from_secs(10)), Some(0));
    in_flight.abort();
    let log = gw.log();
    let line = log
        .lines()
        .find(|l| l.contains("request cut before its answer"))
        .unwrap_or_else(|| panic!("no log line for the cut request:\n{log}"));
    assert!(
        line.contains("uri=/a?token=REDACTED") && line.contains("outcome=\"cut\""),
        "{line}"
    );
}

#[tokio::test]
async fn sd_notify_reports_ready_reloading_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let up = Upstream::recording().await;
    let mut gw = Gateway::start_raw(
        &(listen_and_tls() + &route("a", "/a", &up.url("/a"))),
        &[("NOTIFY_SOCKET", socket_path.to_str().unwrap())],
    );
    let recv = || {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(recv().contains("READY=1"));
    gw.signal("HUP");
    let reloading = recv();
    assert!(
        reloading.contains("RELOADING=1") && reloading.contains("MONOTONIC_USEC="),
        "{reloading}"
    );
    assert!(recv().contains("READY=1"));
    gw.signal("TERM");
    assert!(recv().contains("STOPPING=1"));
    assert_eq!(gw.wait_exit(Duration::from_secs(10)), Some(0));
}

async fn scrape(gw: &Gateway, path: &str) -> (u16, String) {
    let r = Client::http(gw.admin.unwrap())
        .request(http::Method::GET, path, &[], b"")
        .await;
    (
        r.status.as_u16(),
        String::from_utf8_lossy(&r.body).into_owned(),
    )
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.trim().parse().ok())
    })
}

#[tokio::test]
async fn metrics_count_known_traffic() {
    use tokio::io::AsyncWriteExt;
    let up = Upstream::recording().await;
    let cfg = listen_and_tls()
        + &format!(
            "\n[[route]]\nname = \"tolq\"\npath = \"/tolq\"\nupstream = \"{}\"\nhmac = {{ algorithm = \"sha1\", header = \"x-sig\", secrets = [\"k-0123456789abcdef\"] }}\n",
            up.url("/t")
        );
    let gw = Gateway::start_raw(&cfg, &[]);
    assert_eq!(scrape(&gw, "/healthz").await, (200, "ok\n".to_owned()));
    let c = Client::https(gw.https.unwrap(), Version::H2);
    let sig = support::sign(
        callgate::crypto::Algorithm::Sha1,
        "k-0123456789abcdef",
        callgate::crypto::Encoding::Hex,
        b"x",
    );
    for _ in 0..2 {
        assert_eq!(c.post("/tolq", &[("x-sig", &sig)], b"x").await.status, 200);
    }
    assert_eq!(c.post("/tolq", &[("x-sig", "00")], b"x").await.status, 403);
    assert_eq!(c.post("/nowhere", &[], b"x").await.status, 404);
    // A client that is not TLS at all.
    let mut raw = tokio::net::TcpStream::connect(gw.https.unwrap())
        .await
        .unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    drop(raw);
    gw.signal("HUP");
    gw.wait_for_log("config reloaded");

    let start = Instant::now();
    let text = loop {
        let (status, text) = scrape(&gw, "/metrics").await;
        assert_eq!(status, 200);
        if metric(&text, "callgate_tls_handshake_failures_total") == Some(1.0)
            || start.elapsed() > Duration::from_secs(5)
        {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for (series, want) in [
        (
            "callgate_requests_total{route=\"tolq\",outcome=\"forwarded\"}",
            2.0,
        ),
        (
            "callgate_requests_total{route=\"tolq\",outcome=\"refused\"}",
            1.0,
        ),
        (
            "callgate_refusals_total{route=\"tolq\",reason=\"hmac\",enforced=\"true\"}",
            1.0,
        ),
        (
            "callgate_refusals_total{route=\"-\",reason=\"no_route\",enforced=\"true\"}",
            1.0,
        ),
        (
            "callgate_upstream_responses_total{route=\"tolq\",class=\"2xx\"}",
            2.0,
        ),
        (
            "callgate_upstream_duration_seconds_count{route=\"tolq\"}",
            2.0,
        ),
        ("callgate_config_reloads_total{result=\"ok\"}", 1.0),
        ("callgate_tls_handshake_failures_total", 1.0),
    ] {
        assert_eq!(metric(&text, series), Some(want), "{series} in:\n{text}");
    }
    // The scraping connection itself is open.
    assert!(
        metric(&text, "callgate_open_connections").is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert_eq!(scrape(&gw, "/other").await.0, 404);
}

#[tokio::test]
async fn json_log_lines_carry_the_request_fields() {
    let up = Upstream::recording().await;
    let gw = Gateway::launch(
        &(listen_and_tls() + &route("a", "/a", &up.url("/a"))),
        &[],
        &[],
        &["--log-format", "json"],
    );
    let r = Client::https(gw.https.unwrap(), Version::H1)
        .post("/a?token=t-0123456789abcdef", &[], b"x")
        .await;
    assert_eq!(r.status, 200);
    let log = gw.wait_for_log("\"status\":200");
    let line = log.lines().find(|l| l.contains("\"status\":200")).unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["route"], "a");
    assert_eq!(v["outcome"], "forwarded");
    assert_eq!(v["uri"], "/a?token=REDACTED");
    assert_eq!(v["client"], "127.0.0.1");
    // Numbers are JSON numbers, for log shippers' range queries.
    assert!(v["status"].is_u64(), "{line}");
    assert!(v["duration_ms"].is_f64(), "duration_ms is a number: {line}");
}

#[tokio::test]
async fn socket_activation_serves_on_the_passed_listener() {
    let Ok(_) = Command::new("systemd-socket-activate")
        .arg("--help")
        .stdout(Stdio::null())
        .status()
    else {
        eprintln!("skipped: systemd-socket-activate is not installed");
        return;
    };
    let up = Upstream::recording().await;
    let port = support::upstream::closed_port().port();
    // The config asks for another port: the passed socket wins.
    let text = listen_and_tls().replace("admin = \"127.0.0.1:0\"\n", "")
        + &route("a", "/a", &up.url("/a"));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("callgate.toml");
    std::fs::write(&config, text).unwrap();
    let mut child = Command::new("systemd-socket-activate")
        .args([
            "-l",
            &format!("127.0.0.1:{port}"),
            "--fdname=https",
            "-E",
            "RUST_LOG=info",
        ])
        .arg(support::gateway::binary())
        .args(["run", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // systemd-socket-activate binds, then starts callgate on the first connection.
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "socket never bound"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let r = Client::https(addr, Version::H2)
        .post("/a?token=t-0123456789abcdef", &[], b"activated")
        .await;
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(r.status, 200, "{log}");
    assert!(
        log.contains(&format!("listener=\"https\" addr=127.0.0.1:{port}")),
        "{log}"
    );
    assert_eq!(up.count(), 1);
}

/// The shipped units pass 443 (callgate.socket, `https`) and 80
/// (callgate-http.socket, `http`): both named descriptors are served, the
/// https one with the routes, the http one with the redirect to https, and
/// neither port is bound by callgate itself.
#[tokio::test]
async fn socket_activation_serves_https_and_http_by_name() {
    let up = Upstream::recording().await;
    let https = support::upstream::closed_port().port();
    let http = support::upstream::closed_port().port();
    let text = listen_and_tls().replace("admin = \"127.0.0.1:0\"\n", "http_redirect = true\n")
        + &route("a", "/a", &up.url("/a"));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("callgate.toml");
    std::fs::write(&config, text).unwrap();
    let (l1, l2) = (format!("127.0.0.1:{https}"), format!("127.0.0.1:{http}"));
    let mut child = Command::new("systemd-socket-activate")
        .args([
            "-l",
            &l1,
            "-l",
            &l2,
            "--fdname=https:http",
            "-E",
            "RUST_LOG=info",
        ])
        .arg(support::gateway::binary())
        .args(["run", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status_line = loop {
        use std::io::{Read, Write};
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "http never answered"
        );
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", http)) else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let _ = s.write_all(
            b"GET /page?x=1 HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n",
        );
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        if !answer.is_empty() {
            break answer;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let addr = l1.parse().unwrap();
    let r = Client::https(addr, Version::H2)
        .post("/a?token=t-0123456789abcdef", &[], b"activated")
        .await;
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(status_line.starts_with("HTTP/1.1 308"), "{status_line}");
    assert!(
        status_line.contains(&format!(
            "location: https://www.example.com:{https}/page?x=1"
        )) || status_line.contains("location: https://www.example.com/page?x=1"),
        "{status_line}"
    );
    assert_eq!(r.status, 200, "{log}");
    for (name, port) in [("https", https), ("http", http)] {
        assert!(
            log.contains(&format!("listener=\"{name}\" addr=127.0.0.1:{port}")),
            "{log}"
        );
    }
    assert_eq!(up.count(), 1);
}

/// `systemd-analyze verify` must print nothing (it reports bad keys as
/// warnings with exit 0) and the exposure score must be at most 1.5.
#[test]
fn systemd_units_verify_clean_and_score_ok() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    for unit in [
        "callgate.service",
        "callgate.socket",
        "callgate-http.socket",
    ] {
        let text = std::fs::read_to_string(format!("{root}/systemd/{unit}")).unwrap();
        // verify checks that ExecStart's binary exists: point it at the one under test.
        std::fs::write(
            dir.path().join(unit),
            text.replace("/usr/bin/callgate", support::gateway::binary()),
        )
        .unwrap();
    }
    let out = Command::new("systemd-analyze")
        .current_dir(dir.path())
        .args([
            "verify",
            "./callgate.service",
            "./callgate.socket",
            "./callgate-http.socket",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );

    let out = Command::new("systemd-analyze")
        .current_dir(dir.path())
        .args(["security", "--offline=true", "./callgate.service"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for callgate.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score in:\n{text}"));
    eprintln!("systemd-analyze security exposure: {score}");
    assert!(score <= 1.5, "exposure {score} > 1.5:\n{text}");
}

/// `callgate run ARGS`, given at most 10 s to exit: its exit code (None:
/// still serving, then killed) and its log.
fn run_briefly(prefix: &[&str], args: &[&str], poke: Option<u16>) -> (Option<i32>, String) {
    let mut cmd = match prefix.split_first() {
        Some((wrapper, rest)) => {
            let mut c = Command::new(wrapper);
            c.args(rest).arg(support::gateway::binary());
            c
        }
        None => Command::new(support::gateway::binary()),
    };
    let mut child = cmd
        .arg("run")
        .args(args)
        .env_remove("CREDENTIALS_DIRECTORY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        // systemd-socket-activate starts callgate on the first connection.
        if let Some(port) = poke {
            let _ = std::net::TcpStream::connect(("127.0.0.1", port));
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    (code, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The shipped example's trial values (self_signed, the CHANGE-ME secrets)
/// are served on loopback only: the README's first command keeps working,
/// while the same file on a public address, or given a public socket by
/// systemd, is refused by `check` and `run`, naming each value to edit.
#[test]
fn trial_values_are_served_on_loopback_only() {
    let root = env!("CARGO_MANIFEST_DIR");
    let example = std::fs::read_to_string(format!("{root}/config.example.toml")).unwrap();
    assert!(example.contains("https = \"127.0.0.1:8443\""));
    // Its state in a directory of the test's own, never /var/lib/callgate
    // (a root-owned one there would stop the package's service user).
    let dir = tempfile::tempdir().unwrap();
    let on_loopback = example.replace("https = \"127.0.0.1:8443\"", "https = \"127.0.0.1:0\"")
        + &format!(
            "\n[queue]\ndir = {:?}\n",
            dir.path().join("q").display().to_string()
        );
    let gw = Gateway::start_raw(&on_loopback, &[]);
    assert!(gw.https.is_some(), "the trial serves on loopback");
    drop(gw);

    let public = dir.path().join("public.toml");
    let text = example.replace("https = \"127.0.0.1:8443\"", "https = \"0.0.0.0:0\"")
        + &format!(
            "\n[queue]\ndir = {:?}\n",
            dir.path().join("q").display().to_string()
        );
    std::fs::write(&public, text).unwrap();
    let public = public.display().to_string();
    let named = |said: &str| {
        said.contains("listen.https = \"0.0.0.0:0\"")
            && said.contains("[tls] self_signed = true (give cert and key)")
            && said.contains("token.secrets[0] (a CHANGE-ME placeholder")
            && said.contains("hmac.secrets[0] (a CHANGE-ME placeholder")
            && !said.contains("demo-tolq-token")
    };
    let (code, _, err) = support::gateway::run_cli(&["check", "--config", &public], b"", &[]);
    assert_eq!(code, 1, "{err}");
    assert!(named(&err), "{err}");
    let (code, log) = run_briefly(&[], &["--config", &public], None);
    assert_eq!(code, Some(1), "{log}");
    assert!(named(&log), "{log}");

    // The file says loopback; systemd passes a public socket.
    let loopback = dir.path().join("loopback.toml");
    let text = example
        + &format!(
            "\n[queue]\ndir = {:?}\n",
            dir.path().join("q").display().to_string()
        );
    std::fs::write(&loopback, text).unwrap();
    let port = support::upstream::closed_port().port();
    let listen = format!("0.0.0.0:{port}");
    let wrapper = ["systemd-socket-activate", "-l", &listen, "--fdname=https"];
    let (code, log) = run_briefly(
        &wrapper,
        &["--config", &loopback.display().to_string()],
        Some(port),
    );
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains(&format!("listen.https = \"0.0.0.0:{port}\"")),
        "{log}"
    );
    assert!(log.contains("[tls] self_signed = true"), "{log}");
}
