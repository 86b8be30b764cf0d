//! `upstream = "https://…"` against a real nginx with certificates from a CA
//! the test makes: the verified callback delivered over a verified
//! connection; a wrong name, an expired certificate and an unknown CA all
//! refused (502); a receiver that requires callgate's client certificate;
//! a queue route whose TLS receiver is down, then up; `verify = false`
//! warned at start and shown by `check`.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
/// `client_ca`, it demands a client certificate from that CA.
struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Nginx {
    fn start(dir: &Path, port: u16, cert: &(PathBuf, PathBuf), client_ca: Option<&Path>) -> Nginx {
        let dir = dir.join(format!("nginx-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.display();
        let mtls = client_ca.map_or(String::new(), |ca| {
            format!(
                "ssl_verify_client on;\nssl_client_certificate {};",
                ca.display()
            )
        });
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n access_log {d}/access.log;\n client_body_temp_path {d}/b; proxy_temp_path {d}/p; fastcgi_temp_path {d}/f; uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;\n\
             server {{\n  listen 127.0.0.1:{port} ssl;\n  server_name localhost;\n  ssl_certificate {};\n  ssl_certificate_key {};\n  {mtls}\n\
             location / {{ return 200 \"verified=$http_x_callgate_verified host=$host uri=$request_uri\\n\"; }}\n }}\n}}\n",
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_route_whose_tls_receiver_is_down_then_up_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_pem) = make_ca(dir.path(), "ca");
    let port = free_port();
    let queue = "delivery = \"queue\"\nretry = { base = \"200ms\", cap = \"500ms\" }";
    let gw = Gateway::start(&route(
        port,
        &format!("ca = {:?}", ca_pem.display().to_string()),
        queue,
    ));
    assert_eq!(post(&gw).await.status, 202);
    gw.wait_for_log("connect to localhost");
    let nginx = Nginx::start(
        dir.path(),
        port,
        &leaf(dir.path(), "good", &ca, &["localhost"], false),
        None,
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !nginx.access_log().contains("POST /hook.php?x=1") {
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
