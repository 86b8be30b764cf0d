//! Certificates by ACME against a real ACME server (Debian's pebble):
//! issuance over tls-alpn-01 and http-01, a callback served over the issued
//! certificate, reuse of the stored certificate at restart, renewal under an
//! open connection, an unreachable directory that stops nothing else, and
//! the state files' permissions.

use callgate_testkit as support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use support::gateway::{run_cli, test_cert};
use support::pebble::{free_port, Pebble};
use support::upstream::closed_port;
use support::{Client, Gateway, Upstream, Version};
use tokio_rustls::TlsConnector;

const DOMAIN: &str = "acme.callgate.test";
const TOKEN: &str = "s3cr3t-acme-token";

/// A gateway on fixed ports (pebble must know them first) with `[tls.acme]`.
fn config(
    https: u16,
    http: u16,
    acme: &str,
    state: &Path,
    upstream: &str,
    default_cert: bool,
) -> String {
    let default = if default_cert {
        let c = test_cert();
        format!("cert = {:?}\nkey = {:?}\n", c.cert_path, c.key_path)
    } else {
        String::new()
    };
    format!(
        r#"[listen]
https = "127.0.0.1:{https}"
http = "127.0.0.1:{http}"
admin = "127.0.0.1:0"

[tls]
{default}
[tls.acme]
domains = ["{DOMAIN}"]
contact = ["mailto:ops@callgate.test"]
state = {state:?}
{acme}

[[route]]
name = "cb"
path = "/cb"
upstream = "{upstream}"
token = {{ secrets = ["{TOKEN}"] }}
"#
    )
}

fn acme_keys(pebble: &Pebble, challenge: &str) -> String {
    format!(
        "directory = {:?}\nca_roots = {:?}\nchallenge = {challenge:?}\n",
        pebble.directory, pebble.ca_roots
    )
}

fn wait_log(gw: &Gateway, needle: &str, times: usize, within: Duration) -> Duration {
    gw.wait_for_log_times(needle, times, within)
}

/// A TLS connection asking for `name`, trusting only `root`: the
/// certificate presented and an HTTP/1.1 sender on it.
async fn connect(
    addr: std::net::SocketAddr,
    name: &str,
    root: &[u8],
) -> Result<(Vec<u8>, SendRequest<Full<Bytes>>), String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(root.to_vec())).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(name.to_owned()).unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let cert = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    Ok((cert, sender))
}

async fn post(sender: &mut SendRequest<Full<Bytes>>, path: &str) -> Result<u16, String> {
    sender.ready().await.map_err(|e| e.to_string())?;
    let req = http::Request::post(path)
        .header("host", DOMAIN)
        .body(Full::new(Bytes::from_static(b"{\"ok\":1}")))
        .unwrap();
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    resp.into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(status)
}

async fn metrics(gw: &Gateway) -> String {
    let reply = Client::http(gw.admin.unwrap())
        .request(http::Method::GET, "/metrics", &[], b"")
        .await;
    String::from_utf8_lossy(&reply.body).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A pebble and a gateway whose `[tls.acme]` uses it (`challenge`,
/// certificates valid `validity` seconds), waited for until the first
/// certificate is installed. The pebble, the upstream and the state live as
/// long as it does.
struct Issued {
    pebble: Pebble,
    upstream: Upstream,
    _state: tempfile::TempDir,
    /// The ACME state directory (created by callgate).
    state_dir: std::path::PathBuf,
    text: String,
    gw: Gateway,
    /// From listening to the certificate installed.
    took: Duration,
}

async fn issued(challenge: &str, validity: Option<u64>) -> Issued {
    let (https, http) = (free_port(), free_port());
    let pebble = Pebble::start(http, https, validity);
    let upstream = Upstream::recording().await;
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().join("acme");
    let text = config(
        https,
        http,
        &acme_keys(&pebble, challenge),
        &state_dir,
        &upstream.url("/receiver.php"),
        false,
    );
    let gw = Gateway::start_raw(&text, &[]);
    let took = wait_log(&gw, "acme: certificate issued", 1, Duration::from_secs(60));
    Issued {
        pebble,
        upstream,
        _state: state,
        state_dir,
        text,
        gw,
        took,
    }
}

#[tokio::test]
async fn tls_alpn_01_issues_serves_a_callback_and_a_restart_reuses_the_stored_certificate() {
    let Issued {
        pebble,
        upstream,
        _state,
        state_dir,
        text,
        gw,
        took,
    } = issued("tls-alpn-01", None).await;
    println!("tls-alpn-01 issuance took {took:?} (from listening to installed)");
    assert!(
        gw.log().contains("tls-alpn-01 challenge answered"),
        "{}",
        gw.log()
    );

    let root = pebble.issuing_root();
    let (first, mut sender) = connect(gw.https.unwrap(), DOMAIN, &root).await.unwrap();
    let path = format!("/cb?token={TOKEN}");
    assert_eq!(post(&mut sender, &path).await, Ok(200));
    assert_eq!(upstream.count(), 1, "the callback reached the upstream");
    // No certificate for a name that is neither ACME's nor configured.
    assert!(connect(gw.https.unwrap(), "other.callgate.test", &root)
        .await
        .is_err());

    // State: directory 0700, every file 0600.
    assert_eq!(mode(&state_dir), 0o700);
    let files: Vec<_> = std::fs::read_dir(&state_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 2, "account and certificate: {files:?}");
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }

    let m = metrics(&gw).await;
    assert!(
        m.contains("callgate_acme_orders_total{result=\"ok\"} 1"),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "callgate_certificate_expiry_seconds{{host=\"{DOMAIN}\"}}"
        )),
        "{m}"
    );
    assert!(
        m.contains("callgate_requests_total{route=\"cb\",outcome=\"forwarded\"} 1"),
        "{m}"
    );

    // `check` shows the stored certificate without asking the ACME server.
    let config_path = gw.config_path.to_str().unwrap().to_owned();
    let (code, out, err) = run_cli(&["check", "--config", &config_path], b"", &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!(
            "tls acme certificate for {DOMAIN}: issuer CN=Pebble Intermediate CA"
        )),
        "{out}"
    );
    assert!(out.contains("renewal from"), "{out}");

    // Restart: the stored certificate serves, no new order.
    let orders = pebble.orders();
    assert_eq!(orders, 1, "{}", pebble.log());
    drop(sender);
    drop(gw);
    let gw = Gateway::start_raw(&text, &[]);
    wait_log(
        &gw,
        "acme: serving the stored certificate",
        1,
        Duration::from_secs(10),
    );
    let (again, mut sender) = connect(gw.https.unwrap(), DOMAIN, &root).await.unwrap();
    assert_eq!(again, first, "the stored certificate, not a new one");
    assert_eq!(post(&mut sender, &path).await, Ok(200));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(pebble.orders(), orders, "no new order at restart");
    assert!(!gw.log().contains("certificate issued"), "{}", gw.log());
}

#[tokio::test]
async fn http_01_issues_over_the_http_listener_and_answers_only_published_tokens() {
    let t = issued("http-01", None).await;
    println!(
        "http-01 issuance took {:?} (from listening to installed)",
        t.took
    );
    assert!(
        t.gw.log().contains("acme http-01 challenge answered"),
        "{}",
        t.gw.log()
    );
    let root = t.pebble.issuing_root();
    let (_, mut sender) = connect(t.gw.https.unwrap(), DOMAIN, &root).await.unwrap();
    assert_eq!(
        post(&mut sender, &format!("/cb?token={TOKEN}")).await,
        Ok(200)
    );
    // Once validated, the answers are withdrawn: the path is no one's.
    let reply = Client::http(t.gw.http.unwrap())
        .request(
            http::Method::GET,
            "/.well-known/acme-challenge/anything",
            &[],
            b"",
        )
        .await;
    assert_eq!(reply.status, 404);
}

#[tokio::test]
async fn a_short_lived_certificate_is_renewed_while_a_connection_stays_open() {
    // 9 s certificates: renewal a third ahead, 6 s after issuance.
    let t = issued("tls-alpn-01", Some(9)).await;
    let root = t.pebble.issuing_root();
    let path = format!("/cb?token={TOKEN}");
    let (first, mut open) = connect(t.gw.https.unwrap(), DOMAIN, &root).await.unwrap();
    assert_eq!(post(&mut open, &path).await, Ok(200));

    wait_log(
        &t.gw,
        "acme: certificate issued",
        2,
        Duration::from_secs(60),
    );
    let (renewed, mut fresh) = connect(t.gw.https.unwrap(), DOMAIN, &root).await.unwrap();
    assert_ne!(
        renewed, first,
        "a new connection gets the renewed certificate"
    );
    assert_eq!(post(&mut fresh, &path).await, Ok(200));
    // The connection opened before the renewal was not dropped.
    assert_eq!(post(&mut open, &path).await, Ok(200));
    assert_eq!(t.upstream.count(), 3);
}

#[tokio::test]
async fn an_unreachable_directory_keeps_the_default_certificate_serving() {
    let upstream = Upstream::recording().await;
    let state = tempfile::tempdir().unwrap();
    let acme = format!(
        "directory = \"https://{}/dir\"\nca_roots = {:?}\n",
        closed_port(),
        test_cert().cert_path
    );
    let text = config(
        free_port(),
        free_port(),
        &acme,
        state.path(),
        &upstream.url("/receiver.php"),
        true,
    );
    let gw = Gateway::start_raw(&text, &[]);
    wait_log(
        &gw,
        "acme: ordering a certificate failed",
        1,
        Duration::from_secs(20),
    );
    // Served at once, with the configured certificate: for localhost…
    let reply = Client::https(gw.https.unwrap(), Version::H1)
        .post(&format!("/cb?token={TOKEN}"), &[], b"{}")
        .await;
    assert_eq!(reply.status, 200);
    // … and for the ACME name while it has no certificate of its own: the
    // chain is trusted (it is the test certificate), only the name differs.
    let err = connect(gw.https.unwrap(), DOMAIN, &test_cert().cert_der)
        .await
        .err()
        .unwrap();
    assert!(err.contains("not valid for name"), "{err}");
    let m = metrics(&gw).await;
    assert!(
        m.contains("callgate_acme_orders_total{result=\"failed\"} 1"),
        "{m}"
    );
    assert!(
        !m.contains("callgate_acme_last_error_timestamp_seconds 0\n"),
        "{m}"
    );
    assert!(
        m.contains("callgate_certificate_expiry_seconds{host=\"default\"}"),
        "{m}"
    );
    let (code, out, _) = run_cli(
        &["check", "--config", gw.config_path.to_str().unwrap()],
        b"",
        &[],
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("tls acme certificate: none stored yet"),
        "{out}"
    );
}

#[tokio::test]
async fn a_failed_renewal_keeps_the_current_certificate_serving() {
    // 9 s certificates: renewal due 6 s after issuance.
    let t = issued("tls-alpn-01", Some(9)).await;
    let root = t.pebble.issuing_root();
    let (issued, _) = connect(t.gw.https.unwrap(), DOMAIN, &root).await.unwrap();
    // The CA goes away before the renewal is due.
    drop(t.pebble);
    wait_log(
        &t.gw,
        "acme: ordering a certificate failed",
        1,
        Duration::from_secs(20),
    );
    let (served, mut sender) = connect(t.gw.https.unwrap(), DOMAIN, &root).await.unwrap();
    assert_eq!(served, issued, "the current certificate keeps serving");
    assert_eq!(
        post(&mut sender, &format!("/cb?token={TOKEN}")).await,
        Ok(200)
    );
    let m = metrics(&t.gw).await;
    assert!(
        m.contains("callgate_acme_orders_total{result=\"failed\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("callgate_acme_orders_total{result=\"ok\"} 1"),
        "{m}"
    );
}

/// A real HTTPS listener on its own thread that completes the TLS handshake
/// and then never answers; the PEM of the CA it chains to.
fn hanging_directory(dir: &Path) -> (u16, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let ca_pem = dir.join("hanging-ca.pem");
    std::fs::write(&ca_pem, ca.pem()).unwrap();
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
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    use tokio::io::AsyncReadExt;
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        let mut buf = [0u8; 4096];
                        // Read the request, answer nothing, keep it open.
                        while let Ok(n) = tls.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                        }
                    }
                });
            }
        });
    });
    (port, ca_pem)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_that_never_answers_is_a_logged_counted_failure() {
    let upstream = Upstream::recording().await;
    let state = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (port, ca) = hanging_directory(keys.path());
    let acme = format!("directory = \"https://127.0.0.1:{port}/dir\"\nca_roots = {ca:?}\n");
    let text = config(
        free_port(),
        free_port(),
        &acme,
        state.path(),
        &upstream.url("/r"),
        true,
    );
    let gw = Gateway::start_raw(&text, &[]);
    wait_log(
        &gw,
        "acme: ordering a certificate",
        1,
        Duration::from_secs(5),
    );
    let took = wait_log(
        &gw,
        "acme: ordering a certificate failed",
        1,
        Duration::from_secs(40),
    );
    let log = gw.log();
    assert!(log.contains("no answer to"), "{log}");
    let m = metrics(&gw).await;
    assert!(
        m.contains("callgate_acme_orders_total{result=\"failed\"} 1"),
        "{m}"
    );
    assert!(
        !m.contains("callgate_acme_last_error_timestamp_seconds 0\n"),
        "{m}"
    );
    println!(
        "acme: a directory that completes TLS and never answers fails the order after {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_account_is_reported_once_until_the_file_changes() {
    use sha2::Digest;
    let upstream = Upstream::recording().await;
    let state = tempfile::tempdir().unwrap();
    std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let directory = format!("https://{}/dir", closed_port());
    let hash = hex::encode(&sha2::Sha256::digest(directory.as_bytes())[..6]);
    let account = state.path().join(format!("account-{hash}.json"));
    std::fs::write(&account, "{ not json").unwrap();
    std::fs::set_permissions(&account, std::fs::Permissions::from_mode(0o600)).unwrap();
    let acme = format!(
        "directory = {directory:?}\nca_roots = {:?}\n",
        test_cert().cert_path
    );
    let text = config(
        free_port(),
        free_port(),
        &acme,
        state.path(),
        &upstream.url("/r"),
        true,
    );
    let gw = Gateway::start_raw(&text, &[]);
    let needle = "stored account credentials are unreadable";
    wait_log(&gw, needle, 1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(
        gw.log().matches(needle).count(),
        1,
        "reported once, not retried"
    );
    std::fs::write(&account, "{ still not json }").unwrap();
    wait_log(&gw, "the account file changed", 1, Duration::from_secs(15));
    wait_log(&gw, needle, 2, Duration::from_secs(10));
}
