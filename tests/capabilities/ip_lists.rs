//! Provider address lists (`allow_ips = ["list:NAME"]`, `[[ip_list]]`)
//! against a real HTTPS server the test starts (a CA the test makes; the
//! list's `ca` points at it), serving GitHub's meta format and Stripe's
//! JSON: refreshes that add a range, refreshes that must not replace the
//! copy (500, garbage, every address, an untrusted certificate), a restart
//! with the server gone, a stored copy planted by someone else, no copy.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use callgate_testkit::gateway::run_cli;
use callgate_testkit::{Client, Gateway, Upstream};

/// What the list server answers, changed by the test between refreshes.
type Answer = Arc<Mutex<(u16, Vec<u8>)>>;

/// A real HTTPS server on 127.0.0.1 answering every request with the
/// current `Answer`; its port, and a switch that closes it for good.
/// Its certificate is signed by `ca`.
fn list_server(
    ca: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    answer: Answer,
) -> (u16, Arc<AtomicBool>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, ca)
        .unwrap();
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            while !stopped.load(Ordering::Relaxed) {
                let accepted = tokio::time::timeout(Duration::from_millis(50), listener.accept());
                let Ok(Ok((tcp, _))) = accepted.await else {
                    continue;
                };
                let (acceptor, answer) = (acceptor.clone(), answer.clone());
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    let (status, body) = answer.lock().unwrap().clone();
                    let head = format!("HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                    let _ = tls.write_all(head.as_bytes()).await;
                    let _ = tls.write_all(&body).await;
                    let _ = tls.shutdown().await;
                });
            }
            // Dropped here: the port is closed.
        });
    });
    (port, stop)
}

/// A CA the test makes, and its PEM written to `dir/name`.
fn test_ca(dir: &Path, name: &str) -> (rcgen::CertifiedIssuer<'static, rcgen::KeyPair>, PathBuf) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "callgate list test CA");
    let ca =
        rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, ca.pem()).unwrap();
    (ca, path)
}

fn answer(status: u16, body: &str) -> Answer {
    Arc::new(Mutex::new((status, body.as_bytes().to_vec())))
}

fn set(a: &Answer, status: u16, body: &str) {
    *a.lock().unwrap() = (status, body.as_bytes().to_vec());
}

/// A route admitting `list:NAME` only, the list served on `port`, the
/// state (and the stored copy) in `state`.
fn config(upstream: &str, name: &str, port: u16, format: &str, ca: &Path, state: &Path) -> String {
    format!(
        "[[route]]\nname = \"hooks\"\npath = \"/hooks\"\nupstream = {upstream:?}\nallow_ips = [\"list:{name}\"]\n\n\
         [[ip_list]]\nname = \"{name}\"\nurl = \"https://127.0.0.1:{port}/list\"\n{format}\nca = {:?}\n\n\
         [queue]\ndir = {:?}\n",
        ca.display().to_string(),
        state.display().to_string()
    )
}

const GITHUB: &str = "format = \"json\"\npath = \"hooks\"";

/// callgate with `sections`, listening on http and admin (for /metrics).
fn start(sections: &str) -> Gateway {
    Gateway::start_raw(
        &format!("[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n{sections}\n"),
        &[],
    )
}

/// GET `path` on the admin listener: the body.
async fn admin_get(gw: &Gateway, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(gw.admin.unwrap())
        .await
        .unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

async fn post_from(gw: &Gateway, ip: &str) -> u16 {
    Client::http(gw.http.unwrap())
        .source_ip(ip)
        .post("/hooks", &[], b"{}")
        .await
        .status
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_meta_list_admits_its_ranges_and_a_refresh_adds_one_without_restart() {
    let up = Upstream::recording().await;
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_pem) = test_ca(dir.path(), "ca.pem");
    let served = answer(
        200,
        r#"{"verifiable_password_authentication":false,"hooks":["127.0.0.2/32","2a0a:a440::/29"],"web":["127.0.0.3/32"]}"#,
    );
    let (port, _) = list_server(&ca, served.clone());
    let state = dir.path().join("state");
    let gw = start(&config(
        &up.url("/hook.php"),
        "github",
        port,
        GITHUB,
        &ca_pem,
        &state,
    ));
    gw.wait_for_log_times("list:github refreshed", 1, Duration::from_secs(20));
    assert_eq!(post_from(&gw, "127.0.0.2").await, 200);
    // `web` is not `hooks`: the path picks the array.
    assert_eq!(post_from(&gw, "127.0.0.3").await, 403);
    assert_eq!(up.count(), 1);
    // The last good copy is kept, 0600, in the state directory.
    let stored = state.join("ip-lists/github.json");
    let mode = std::fs::metadata(&stored).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(std::fs::read_to_string(&stored)
        .unwrap()
        .contains("127.0.0.2/32"));

    set(&served, 200, r#"{"hooks":["127.0.0.2/32","127.0.0.3/32"]}"#);
    gw.signal("HUP");
    gw.wait_for_log_times("list:github refreshed", 2, Duration::from_secs(20));
    assert_eq!(post_from(&gw, "127.0.0.3").await, 200);
    assert_eq!(up.count(), 2);
    let metrics = admin_get(&gw, "/metrics").await;
    assert!(
        metrics.contains("callgate_ip_list_age_seconds{list=\"github\"} "),
        "{metrics}"
    );
    assert!(
        metrics.contains("callgate_ip_list_refreshes_total{list=\"github\",result=\"ok\"} 2"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stripe_webhooks_list_of_addresses_admits_them() {
    let up = Upstream::recording().await;
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_pem) = test_ca(dir.path(), "ca.pem");
    let served = answer(
        200,
        r#"{"API":["127.0.0.3"],"WEBHOOKS":["127.0.0.2","127.0.0.4"]}"#,
    );
    let (port, _) = list_server(&ca, served);
    let state = dir.path().join("state");
    let stripe = "format = \"json\"\npath = \"WEBHOOKS\"";
    let gw = start(&config(
        &up.url("/s.php"),
        "stripe",
        port,
        stripe,
        &ca_pem,
        &state,
    ));
    gw.wait_for_log_times("list:stripe refreshed", 1, Duration::from_secs(20));
    assert_eq!(post_from(&gw, "127.0.0.4").await, 200);
    assert_eq!(post_from(&gw, "127.0.0.3").await, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_answering_500_garbage_or_every_address_keeps_the_old_list() {
    let up = Upstream::recording().await;
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_pem) = test_ca(dir.path(), "ca.pem");
    let served = answer(200, r#"{"hooks":["127.0.0.2/32"]}"#);
    let (port, _) = list_server(&ca, served.clone());
    let state = dir.path().join("state");
    let gw = start(&config(
        &up.url("/hook.php"),
        "github",
        port,
        GITHUB,
        &ca_pem,
        &state,
    ));
    gw.wait_for_log_times("list:github refreshed", 1, Duration::from_secs(20));
    let many: Vec<String> = (0..10_001)
        .map(|i| format!("\"10.{}.{}.0/24\"", i / 256, i % 256))
        .collect();
    let many = format!("{{\"hooks\":[\"127.0.0.3/32\",{}]}}", many.join(","));
    let bad: [(u16, &str); 6] = [
        (500, r#"{"hooks":["127.0.0.3/32"]}"#),
        (200, "<html>rate limited</html>"),
        (200, r#"{"hooks":["127.0.0.3/32","0.0.0.0/0"]}"#),
        (200, r#"{"hooks":["::/0","127.0.0.3/32"]}"#),
        (200, r#"{"hooks":[]}"#),
        (200, &many),
    ];
    for (i, (status, body)) in bad.iter().enumerate() {
        set(&served, *status, body);
        gw.signal("HUP");
        gw.wait_for_log_times("list:github refresh failed", i + 1, Duration::from_secs(20));
        assert_eq!(post_from(&gw, "127.0.0.2").await, 200, "after {body:.40}");
        assert_eq!(post_from(&gw, "127.0.0.3").await, 403, "after {body:.40}");
    }
    assert!(std::fs::read_to_string(state.join("ip-lists/github.json"))
        .unwrap()
        .contains("127.0.0.2/32"));
    let log = gw.log();
    assert!(log.contains("every address"), "{log}");
    assert!(log.contains("more than 10000"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_that_together_cover_too_much_never_replace_the_good_list_nor_load_from_disk() {
    let up = Upstream::recording().await;
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_pem) = test_ca(dir.path(), "ca.pem");
    let served = answer(200, r#"{"hooks":["127.0.0.2/32"]}"#);
    let (port, stop) = list_server(&ca, served.clone());
    let state = dir.path().join("state");
    let text = config(
        &up.url("/hook.php"),
        "github",
        port,
        GITHUB,
        &ca_pem,
        &state,
    );
    let gw = start(&text);
    gw.wait_for_log_times("list:github refreshed", 1, Duration::from_secs(20));
    // Each covers 127.0.0.3 (or, for IPv6, every IPv6 caller) without a /0.
    let wide = [
        r#"{"hooks":["0.0.0.0/1","128.0.0.0/1"]}"#,
        r#"{"hooks":["127.0.0.2/32","::/1","8000::/1"]}"#,
        r#"{"hooks":["0.0.0.0/1"]}"#,
        r#"{"hooks":["127.0.0.0/8","126.0.0.0/8"]}"#,
    ];
    for (i, body) in wide.iter().enumerate() {
        set(&served, 200, body);
        gw.signal("HUP");
        gw.wait_for_log_times("list:github refresh failed", i + 1, Duration::from_secs(20));
        assert_eq!(post_from(&gw, "127.0.0.2").await, 200, "after {body}");
        assert_eq!(post_from(&gw, "127.0.0.3").await, 403, "after {body}");
    }
    let log = gw.log();
    assert!(log.contains("more than a /8's worth"), "{log}");
    assert_eq!(up.count(), 4);
    drop(gw);
    stop.store(true, Ordering::Relaxed);
    // A stored copy is judged the same way: one of callgate's own making
    // (0600, ours) whose ranges cover everything is not used.
    let stored = state.join("ip-lists/github.json");
    let planted = format!(
        "{{\"url\":\"https://127.0.0.1:{port}/list\",\"fetched_at\":{},\"ranges\":[\"0.0.0.0/1\",\"128.0.0.0/1\"]}}",
        callgate_testkit::now()
    );
    std::fs::write(&stored, planted).unwrap();
    std::fs::set_permissions(&stored, std::fs::Permissions::from_mode(0o600)).unwrap();
    let gw = start(&text);
    let log = gw.wait_for_log("the stored copy is not used");
    assert!(log.contains("every address"), "{log}");
    assert_eq!(post_from(&gw, "127.0.0.3").await, 403);
    assert_eq!(up.count(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_server_whose_certificate_is_not_from_the_lists_ca_is_not_believed() {
    let up = Upstream::recording().await;
    let dir = tempfile::tempdir().unwrap();
    let (ca, _) = test_ca(dir.path(), "ca.pem");
    let (_, other_pem) = test_ca(dir.path(), "other.pem");
    let (port, _) = list_server(&ca, answer(200, r#"{"hooks":["127.0.0.2/32"]}"#));
    let state = dir.path().join("state");
    let gw = start(&config(
        &up.url("/hook.php"),
        "github",
        port,
        GITHUB,
        &other_pem,
        &state,
    ));
    let log = gw.wait_for_log("list:github refresh failed");
    assert!(log.contains("list:github refresh failed"), "{log}");
    assert!(log.to_lowercase().contains("certificate"), "{log}");
    assert_eq!(post_from(&gw, "127.0.0.2").await, 403);
    assert!(!state.join("ip-lists/github.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_the_list_server_down_uses_the_stored_list() {
    let up = Upstream::recording().await;
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_pem) = test_ca(dir.path(), "ca.pem");
    let (port, stop) = list_server(&ca, answer(200, r#"{"hooks":["127.0.0.2/32"]}"#));
    let state = dir.path().join("state");
    let text = config(
        &up.url("/hook.php"),
        "github",
        port,
        GITHUB,
        &ca_pem,
        &state,
    );
    let gw = start(&text);
    gw.wait_for_log_times("list:github refreshed", 1, Duration::from_secs(20));
    drop(gw);
    stop.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(200));
    let gw = start(&text);
    gw.wait_for_log("list:github uses its stored copy");
    // Fresh enough not to be fetched at start; a SIGHUP fetches, and fails.
    assert_eq!(post_from(&gw, "127.0.0.2").await, 200);
    gw.signal("HUP");
    let log = gw.wait_for_log("list:github refresh failed");
    assert!(log.contains("the copy of 1 ranges"), "{log}");
    assert_eq!(post_from(&gw, "127.0.0.2").await, 200);
    assert_eq!(post_from(&gw, "127.0.0.3").await, 403);
    // `check` says where the list comes from, and its copy's size and age.
    let config_path = gw.config_path.display().to_string();
    let (code, out, err) = run_cli(&["check", "--config", &config_path], b"", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!(
            "list:github ([[ip_list]]) https://127.0.0.1:{port}/list as json (hooks)"
        )),
        "{out}"
    );
    assert!(out.contains("stored copy: 1 ranges, fetched"), "{out}");
    assert!(out.contains("allow list:github"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_list_planted_by_another_user_or_writable_or_a_link_is_refused() {
    let up = Upstream::recording().await;
    let dir = tempfile::tempdir().unwrap();
    let (_, ca_pem) = test_ca(dir.path(), "ca.pem");
    // Nothing listens: only a stored copy could admit anyone.
    let closed = callgate_testkit::upstream::closed_port().port();
    let state = dir.path().join("state");
    let lists = state.join("ip-lists");
    std::fs::create_dir_all(&lists).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(&lists, std::fs::Permissions::from_mode(0o700)).unwrap();
    let planted = format!(
        "{{\"url\":\"https://127.0.0.1:{closed}/list\",\"fetched_at\":{},\"ranges\":[\"127.0.0.0/8\"]}}",
        callgate_testkit::now()
    );
    let stored = lists.join("github.json");
    let elsewhere = dir.path().join("elsewhere.json");
    std::fs::write(&elsewhere, &planted).unwrap();
    let text = config(
        &up.url("/hook.php"),
        "github",
        closed,
        GITHUB,
        &ca_pem,
        &state,
    );
    type Plant = fn(&Path, &Path);
    let plants: [(&str, Plant); 3] = [
        ("owned by uid 65534", |file, _| {
            std::os::unix::fs::chown(file, Some(65534), Some(65534)).unwrap();
        }),
        ("mode 0666", |file, _| {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o666)).unwrap();
        }),
        ("symbolic link", |file, target| {
            std::fs::remove_file(file).unwrap();
            std::os::unix::fs::symlink(target, file).unwrap();
        }),
    ];
    for (how, plant) in plants {
        let _ = std::fs::remove_file(&stored);
        std::fs::write(&stored, &planted).unwrap();
        std::fs::set_permissions(&stored, std::fs::Permissions::from_mode(0o600)).unwrap();
        plant(&stored, &elsewhere);
        let gw = start(&text);
        let log = gw.wait_for_log("the stored copy is not used");
        assert!(
            log.contains("list:github: the stored copy is not used"),
            "{how}: {log}"
        );
        assert_eq!(post_from(&gw, "127.0.0.2").await, 403, "{how}");
        let log = gw.wait_for_log("has no copy yet (not fetched, none stored)");
        assert!(log.contains("list:github has no copy yet"), "{how}: {log}");
        assert_eq!(up.count(), 0, "{how}");
    }
    // The same file, ours and 0600: used.
    let _ = std::fs::remove_file(&stored);
    std::fs::write(&stored, &planted).unwrap();
    std::fs::set_permissions(&stored, std::fs::Permissions::from_mode(0o600)).unwrap();
    let gw = start(&text);
    gw.wait_for_log("list:github uses its stored copy");
    assert_eq!(post_from(&gw, "127.0.0.2").await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_list_yet_the_route_refuses_and_says_why() {
    let up = Upstream::recording().await;
    let dir = tempfile::tempdir().unwrap();
    let (_, ca_pem) = test_ca(dir.path(), "ca.pem");
    let closed = callgate_testkit::upstream::closed_port().port();
    let state = dir.path().join("state");
    let mut text = config(
        &up.url("/hook.php"),
        "github",
        closed,
        GITHUB,
        &ca_pem,
        &state,
    );
    // A written address still admits its caller while the list has no copy.
    text = text.replace(
        "allow_ips = [\"list:github\"]",
        "allow_ips = [\"list:github\", \"127.0.0.5\"]",
    );
    let gw = start(&text);
    let log = gw.wait_for_log("list:github refresh failed");
    assert!(log.contains("list:github has no copy yet"), "{log}");
    assert_eq!(post_from(&gw, "127.0.0.2").await, 403);
    assert_eq!(post_from(&gw, "127.0.0.5").await, 200);
    let log = gw.wait_for_log("has no copy yet (not fetched, none stored)");
    assert!(
        log.contains("ip: list:github has no copy yet (not fetched, none stored)"),
        "{log}"
    );
    let config_path = gw.config_path.display().to_string();
    let (code, out, err) = run_cli(&["check", "--config", &config_path], b"", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("no copy yet: routes naming it refuse"),
        "{out}"
    );
}

#[test]
fn explain_judges_a_named_list_by_its_stored_copy() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ca_pem) = test_ca(dir.path(), "ca.pem");
    let state = dir.path().join("state");
    let lists = state.join("ip-lists");
    std::fs::create_dir_all(&lists).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(&lists, std::fs::Permissions::from_mode(0o700)).unwrap();
    let stored = lists.join("acme.json");
    std::fs::write(
        &stored,
        format!(
            "{{\"url\":\"https://127.0.0.1:1/list\",\"fetched_at\":{},\"ranges\":[\"192.0.2.0/24\"]}}",
            callgate_testkit::now()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&stored, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = dir.path().join("callgate.toml");
    std::fs::write(
        &cfg,
        format!(
            "[listen]\nhttp = \"127.0.0.1:0\"\n{}",
            config("http://127.0.0.1:9/x", "acme", 1, GITHUB, &ca_pem, &state)
        ),
    )
    .unwrap();
    let req = dir.path().join("req.txt");
    std::fs::write(
        &req,
        "POST /hooks HTTP/1.1\r\nHost: hooks.example.com\r\nContent-Length: 2\r\n\r\n{}",
    )
    .unwrap();
    let (cfg, req) = (cfg.display().to_string(), req.display().to_string());
    let explain = |from: &str| {
        run_cli(
            &[
                "explain",
                "--config",
                &cfg,
                "--route",
                "hooks",
                "--request",
                &req,
                "--from",
                from,
            ],
            b"",
            &[],
        )
    };
    let (code, out, err) = explain("192.0.2.7");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("would accept"), "{out}");
    let (code, out, err) = explain("198.51.100.7");
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("would refuse"), "{err}");
}

#[test]
fn list_and_upstream_credentials_and_query_secrets_are_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ca_pem) = test_ca(dir.path(), "ca.pem");
    let state = dir.path().join("state");
    let cfg = dir.path().join("callgate.toml");
    let cfg_s = cfg.display().to_string();
    let base = format!(
        "[listen]\nhttp = \"127.0.0.1:0\"\n{}",
        config("http://127.0.0.1:9/x", "acme", 1, GITHUB, &ca_pem, &state)
    );
    let check = |text: &str| {
        std::fs::write(&cfg, text).unwrap();
        run_cli(&["check", "--config", &cfg_s], b"", &[])
    };
    // userinfo in a list's URL: refused, the password not echoed.
    let text = base.replace(
        "https://127.0.0.1:1/",
        "https://hook:LISTPASS-0xdeadbeef@127.0.0.1:1/",
    );
    let (code, out, err) = check(&text);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("user:password@"), "{err}");
    assert!(!format!("{out}{err}").contains("LISTPASS"), "{out}{err}");
    // userinfo in a route's upstream: refused, the password not echoed.
    let text = base.replace(
        "http://127.0.0.1:9/x",
        "http://u:UPPASS-0xdeadbeef@127.0.0.1:9/x",
    );
    let (code, out, err) = check(&text);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("credentials"), "{err}");
    assert!(!format!("{out}{err}").contains("UPPASS"), "{out}{err}");
    // A list URL's query may carry a key: shown as REDACTED.
    let text = base.replace(
        "127.0.0.1:1/list",
        "127.0.0.1:1/list?key=QUERYKEY-0xdeadbeef",
    );
    let (code, out, err) = check(&text);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("https://127.0.0.1:1/list?REDACTED"), "{out}");
    assert!(!format!("{out}{err}").contains("QUERYKEY"), "{out}{err}");
}

/// `run_cli`, failing the test (not hanging it) when the command takes
/// longer than `secs`; `fifos` are opened for writing then, to free it.
fn cli_within(args: &[&str], secs: u64, fifos: &[&Path]) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let _ = tx.send(run_cli(&args, b"", &[]));
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(out) => out,
        Err(_) => {
            for f in fifos {
                use std::os::unix::fs::OpenOptionsExt;
                let _ = std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc_nonblock())
                    .open(f);
            }
            panic!("callgate did not finish within {secs}s (hung on a planted file)");
        }
    }
}

/// O_NONBLOCK on Linux.
fn libc_nonblock() -> i32 {
    0o4000
}

fn mkfifo(path: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfifo {}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_or_device_planted_as_a_stored_list_or_a_ca_hangs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ca_pem) = test_ca(dir.path(), "ca.pem");
    let closed = callgate_testkit::upstream::closed_port().port();
    let state = dir.path().join("state");
    let lists = state.join("ip-lists");
    std::fs::create_dir_all(&lists).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(&lists, std::fs::Permissions::from_mode(0o700)).unwrap();
    let fifo = lists.join("github.json");
    mkfifo(&fifo);
    let text = format!(
        "[listen]\nhttp = \"127.0.0.1:0\"\n{}",
        config(
            "http://127.0.0.1:9/x",
            "github",
            closed,
            GITHUB,
            &ca_pem,
            &state
        )
    );
    let cfg = dir.path().join("callgate.toml");
    std::fs::write(&cfg, &text).unwrap();
    let cfg_s = cfg.display().to_string();
    let (code, out, err) = cli_within(&["check", "--config", &cfg_s], 20, &[&fifo]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("not a regular file"), "{out}");
    // The gateway starts, and says why the stored copy is not used.
    let gw = start(&text.replace("[listen]\nhttp = \"127.0.0.1:0\"\n", ""));
    let log = gw.wait_for_log("the stored copy is not used");
    assert!(log.contains("not a regular file"), "{log}");
    drop(gw);
    // A CA named in the config that is a FIFO, or a device, is refused at once.
    let ca_fifo = dir.path().join("ca-fifo.pem");
    mkfifo(&ca_fifo);
    for (ca, fifos) in [
        (ca_fifo.as_path(), vec![ca_fifo.as_path()]),
        (Path::new("/dev/zero"), vec![]),
    ] {
        let text = format!(
            "[listen]\nhttp = \"127.0.0.1:0\"\n{}",
            config("http://127.0.0.1:9/x", "github", closed, GITHUB, ca, &state)
        );
        std::fs::write(&cfg, &text).unwrap();
        let (code, out, err) = cli_within(&["check", "--config", &cfg_s], 20, &fifos);
        assert_ne!(code, 0, "{out}");
        assert!(
            err.contains("not a regular file"),
            "{}: {err}",
            ca.display()
        );
        let text = format!(
            "[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"tls\"\npath = \"/tls\"\nupstream = \"https://127.0.0.1:9/x\"\nupstream_tls = {{ ca = {:?} }}\nhmac = {{ secrets = [\"0123456789abcdef0123456789abcdef\"] }}\n",
            ca.display().to_string()
        );
        std::fs::write(&cfg, &text).unwrap();
        let (code, out, err) = cli_within(&["check", "--config", &cfg_s], 20, &fifos);
        assert_ne!(code, 0, "{out}");
        assert!(
            err.contains("not a regular file"),
            "{}: {err}",
            ca.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_health_shows_each_lists_source_size_age_and_last_refresh() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = Upstream::recording().await;
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_pem) = test_ca(dir.path(), "ca.pem");
    let served = answer(200, r#"{"hooks":["127.0.0.2/32","127.0.0.8/31"]}"#);
    let (port, _) = list_server(&ca, served.clone());
    let state = dir.path().join("state");
    let text = config(&up.url("/h.php"), "github", port, GITHUB, &ca_pem, &state)
        .replace("/list\"", "/list?key=QUERYKEY-0xdeadbeef\"");
    let gw = start(&format!(
        "{text}\n[admin]\nconsole = {{ password = \"list-console-password-0123\" }}\n"
    ));
    gw.wait_for_log_times("list:github refreshed", 1, Duration::from_secs(20));
    let health = || async {
        let mut s = tokio::net::TcpStream::connect(gw.admin.unwrap())
            .await
            .unwrap();
        let req = "GET /api/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Bearer list-console-password-0123\r\n\r\n";
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(!out.contains("QUERYKEY"), "{out}");
        let body = out.split_once("\r\n\r\n").unwrap().1.to_owned();
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    let v = health().await;
    let l = &v["lists"][0];
    assert_eq!(l["name"], "github", "{v}");
    assert_eq!(
        l["source"],
        format!("https://127.0.0.1:{port}/list?REDACTED"),
        "{v}"
    );
    assert_eq!(l["ranges"], 2, "{v}");
    assert!(l["age_seconds"].as_i64().unwrap() >= 0, "{v}");
    assert_eq!(l["last_refresh"]["ok"], true, "{v}");
    set(&served, 503, "{}");
    gw.signal("HUP");
    gw.wait_for_log("list:github refresh failed");
    let v = health().await;
    let l = &v["lists"][0];
    assert_eq!(l["ranges"], 2, "the copy stays: {v}");
    assert_eq!(l["last_refresh"]["ok"], false, "{v}");
    assert!(
        l["last_refresh"]["error"].as_str().unwrap().contains("503"),
        "{v}"
    );
    assert!(!gw.log().contains("QUERYKEY"), "{}", gw.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_first_fetch_is_retried_soon_and_the_route_opens_without_sighup() {
    let up = Upstream::recording().await;
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_pem) = test_ca(dir.path(), "ca.pem");
    let served = answer(503, "busy");
    let (port, _) = list_server(&ca, served.clone());
    let state = dir.path().join("state");
    let gw = start(&config(
        &up.url("/hook.php"),
        "github",
        port,
        GITHUB,
        &ca_pem,
        &state,
    ));
    gw.wait_for_log("list:github refresh failed");
    assert_eq!(post_from(&gw, "127.0.0.2").await, 403);
    set(&served, 200, r#"{"hooks":["127.0.0.2/32"]}"#);
    // No SIGHUP: the retry (seconds, not the 24 h refresh) fetches it.
    gw.wait_for_log_times("list:github refreshed", 1, Duration::from_secs(15));
    assert_eq!(post_from(&gw, "127.0.0.2").await, 200);
    assert_eq!(up.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalling_list_server_holds_up_no_other_list() {
    let up = Upstream::recording().await;
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_pem) = test_ca(dir.path(), "ca.pem");
    let (port, _) = list_server(&ca, answer(200, r#"{"hooks":["127.0.0.2/32"]}"#));
    // Connections are taken by the kernel and never answered: a fetch
    // waits for its 30 s timeout.
    let stall = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stall_port = stall.local_addr().unwrap().port();
    let state = dir.path().join("state");
    let ca = ca_pem.display().to_string();
    let gw = start(&format!(
        "[[route]]\nname = \"slow\"\npath = \"/slow\"\nupstream = {:?}\nallow_ips = [\"list:aaslow\"]\n\n\
         [[route]]\nname = \"hooks\"\npath = \"/hooks\"\nupstream = {:?}\nallow_ips = [\"list:zzfast\"]\n\n\
         [[ip_list]]\nname = \"aaslow\"\nurl = \"https://127.0.0.1:{stall_port}/list\"\n{GITHUB}\nca = {ca:?}\n\n\
         [[ip_list]]\nname = \"zzfast\"\nurl = \"https://127.0.0.1:{port}/list\"\n{GITHUB}\nca = {ca:?}\n\n\
         [queue]\ndir = {:?}\n",
        up.url("/s.php"),
        up.url("/h.php"),
        state.display().to_string()
    ));
    gw.wait_for_log_times("list:zzfast refreshed", 1, Duration::from_secs(8));
    assert_eq!(post_from(&gw, "127.0.0.2").await, 200);
    drop(stall);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_copy_dated_in_the_future_is_stale_and_fetched_again_at_start() {
    let up = Upstream::recording().await;
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_pem) = test_ca(dir.path(), "ca.pem");
    let (port, _) = list_server(&ca, answer(200, r#"{"hooks":["127.0.0.3/32"]}"#));
    let state = dir.path().join("state");
    let lists = state.join("ip-lists");
    std::fs::create_dir_all(&lists).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(&lists, std::fs::Permissions::from_mode(0o700)).unwrap();
    let stored = lists.join("github.json");
    let future = callgate_testkit::now() + 365 * 86_400;
    std::fs::write(
        &stored,
        format!("{{\"url\":\"https://127.0.0.1:{port}/list\",\"fetched_at\":{future},\"ranges\":[\"127.0.0.2/32\"]}}"),
    )
    .unwrap();
    std::fs::set_permissions(&stored, std::fs::Permissions::from_mode(0o600)).unwrap();
    let gw = start(&config(
        &up.url("/hook.php"),
        "github",
        port,
        GITHUB,
        &ca_pem,
        &state,
    ));
    gw.wait_for_log_times("list:github refreshed", 1, Duration::from_secs(10));
    assert_eq!(post_from(&gw, "127.0.0.3").await, 200);
    let metrics = admin_get(&gw, "/metrics").await;
    assert!(
        !metrics.contains("callgate_ip_list_age_seconds{list=\"github\"} -"),
        "{metrics}"
    );
}
