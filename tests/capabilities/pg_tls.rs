//! The queue database connection against a man in the middle and against
//! real PostgreSQL over TLS: no sslmode means verify-full, so a server that
//! answers 'N' to the TLS request (a TLS strip) gets neither callbacks nor
//! the password; verify-full, verify-ca, require and sslrootcert work as
//! libpq documents them; errors name the cause and never the password.

use callgate_testkit as support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use support::gateway::run_cli;
use support::postgres::Postgres;
use support::{Client, Gateway, Upstream, Version};

const TOKEN: &str = "pg-tls-token-0123456789";
const PASSWORD: &str = "Pa55-w0rd-SECRET";

fn config(upstream: &str) -> String {
    format!(
        r#"
[queue]
backend = "postgres"
url = "env:CALLGATE_QUEUE_URL"

[[route]]
name = "q"
path = "/q"
upstream = "{upstream}"
token = {{ secrets = ["{TOKEN}"] }}
delivery = "queue"
upstream_timeout = "5s"
retry = {{ base = "50ms", cap = "200ms" }}
"#
    )
}

/// What the stripping server saw.
#[derive(Default)]
struct Seen {
    tls_requests: usize,
    plaintext_startups: usize,
    passwords: Vec<String>,
}

/// A man in the middle: answers 'N' to every SSLRequest, then (if the
/// client goes on in plaintext) asks for the password in clear.
async fn tls_stripper() -> (u16, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let seen = record.clone();
            tokio::spawn(async move {
                let message = |len: usize| vec![0u8; len];
                let mut head = [0u8; 8];
                if tcp.read_exact(&mut head).await.is_err() {
                    return;
                }
                if head[4..8] == 80877103u32.to_be_bytes() {
                    seen.lock().unwrap().tls_requests += 1;
                    let _ = tcp.write_all(b"N").await;
                    if tcp.read_exact(&mut head).await.is_err() {
                        return;
                    }
                }
                let len = u32::from_be_bytes(head[..4].try_into().unwrap()) as usize;
                let mut rest = message(len.saturating_sub(8).min(1 << 16));
                if tcp.read_exact(&mut rest).await.is_err() {
                    return;
                }
                seen.lock().unwrap().plaintext_startups += 1;
                // AuthenticationCleartextPassword.
                let _ = tcp.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]).await;
                let mut tag = [0u8; 5];
                if tcp.read_exact(&mut tag).await.is_err() || tag[0] != b'p' {
                    return;
                }
                let len = u32::from_be_bytes(tag[1..5].try_into().unwrap()) as usize;
                let mut password = message(len.saturating_sub(4).min(1 << 16));
                if tcp.read_exact(&mut password).await.is_ok() {
                    let text = String::from_utf8_lossy(&password)
                        .trim_end_matches('\0')
                        .to_owned();
                    seen.lock().unwrap().passwords.push(text);
                }
            });
        }
    });
    (port, seen)
}

async fn post(gw: &Gateway) -> u16 {
    Client::https(gw.https.unwrap(), Version::H1)
        .post(&format!("/q?token={TOKEN}"), &[], b"callback")
        .await
        .status
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_strip_gets_neither_callbacks_nor_the_password() {
    let (port, seen) = tls_stripper().await;
    let up = Upstream::recording().await;
    let url = format!("postgres://callgate:{PASSWORD}@127.0.0.1:{port}/callgate");
    let gw = Gateway::start_raw(
        &format!("{}{}", base(), config(&up.url("/r"))),
        &[("CALLGATE_QUEUE_URL", &url)],
    );
    let start = Instant::now();
    assert_eq!(post(&gw).await, 503, "never 202 without the database");
    assert!(start.elapsed() < Duration::from_secs(6));
    let log = gw.wait_for_log("not stored");
    {
        let s = seen.lock().unwrap();
        assert!(s.tls_requests >= 1, "callgate asked for TLS");
        assert_eq!(s.plaintext_startups, 0, "and went no further in plaintext");
        assert!(s.passwords.is_empty());
    }
    assert!(log.contains("TLS"), "the cause is named: {log}");
    assert!(!log.contains(PASSWORD), "{log}");

    // The control: sslmode=disable, said explicitly, does send it in clear.
    let gw2 = Gateway::start_raw(
        &format!("{}{}", base(), config(&up.url("/r"))),
        &[("CALLGATE_QUEUE_URL", &format!("{url}?sslmode=disable"))],
    );
    assert_eq!(post(&gw2).await, 503);
    let start = Instant::now();
    while seen.lock().unwrap().passwords.is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the stripper works"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen.lock().unwrap().passwords[0], PASSWORD);
    assert!(!gw2.log().contains(PASSWORD));
}

/// `[listen]` and `[tls]` as Gateway::start writes them.
fn base() -> String {
    let cert = support::gateway::test_cert();
    format!(
        "[listen]\nhttps = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\n\n[tls]\ncert = {:?}\nkey = {:?}\n",
        cert.cert_path.display().to_string(),
        cert.key_path.display().to_string()
    )
}

#[test]
fn modes_that_fall_back_to_plaintext_and_raw_at_signs_are_config_errors_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("callgate.toml");
    std::fs::write(
        &file,
        format!("{}{}", base(), config("http://127.0.0.1:9/r")),
    )
    .unwrap();
    let path = file.display().to_string();
    for (url, says) in [
        (
            "postgres://u:hunter2-pw@db.example/q?sslmode=prefer",
            "fall back to plaintext",
        ),
        (
            "postgres://u:hunter2-pw@db.example/q?sslmode=allow",
            "fall back to plaintext",
        ),
        (
            "postgres://u:hun@ter2-pw@db.example/q",
            "percent-encode it as %40",
        ),
        (
            "postgres://u:hunter2-pw@db.example/q?sslrootcert=/nonexistent.pem",
            "sslrootcert",
        ),
    ] {
        let (code, out, err) = run_cli(
            &["check", "--config", &path],
            b"",
            &[("CALLGATE_QUEUE_URL", url)],
        );
        assert_ne!(code, 0, "{url}: {out}");
        assert!(err.contains(says), "{url}: {err}");
        assert!(
            !err.contains("hunter2") && !err.contains("ter2-pw"),
            "{err}"
        );
    }
    let (code, out, err) = run_cli(
        &["check", "--config", &path],
        b"",
        &[("CALLGATE_QUEUE_URL", "postgres://u:hunter2-pw@db.example/q")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("sslmode=verify-full, system roots"), "{out}");
    assert!(!out.contains("hunter2"), "{out}");
}

/// A CA, and signed by it a certificate for `localhost` only; the CA's PEM.
fn ca_and_leaf() -> (String, String, String) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "callgate queue test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    (ca.pem(), leaf.pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libpq_modes_against_a_real_postgres_over_tls() {
    let pg = Postgres::start();
    let (ca, cert, key) = ca_and_leaf();
    pg.enable_tls(&cert, &key);
    pg.password_role("cg", "right@pass:word");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root.pem");
    std::fs::write(&root, &ca).unwrap();
    let (other_ca, _, _) = ca_and_leaf();
    let other = dir.path().join("other.pem");
    std::fs::write(&other, other_ca).unwrap();
    let db = pg.database();
    let name = db
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let port = pg.port;
    let up = Upstream::recording().await;
    let root = root.display().to_string();
    let other = other.display().to_string();
    let cases = [
        // (host, query, stored?)
        ("localhost", format!("sslrootcert={root}"), true),
        (
            "localhost",
            format!("sslmode=verify-full&sslrootcert={root}"),
            true,
        ),
        ("127.0.0.1", format!("sslrootcert={root}"), false),
        (
            "127.0.0.1",
            format!("sslmode=verify-ca&sslrootcert={root}"),
            true,
        ),
        ("localhost", format!("sslrootcert={other}"), false),
        (
            "127.0.0.1",
            format!("sslmode=require&sslrootcert={other}"),
            false,
        ),
        ("127.0.0.1", "sslmode=require".to_owned(), true),
        ("127.0.0.1", String::new(), false),
    ];
    let mut seen = Vec::new();
    for (host, query, stored) in &cases {
        let url = format!("postgres://cg:right%40pass%3Aword@{host}:{port}/{name}?{query}");
        let gw = Gateway::start_raw(
            &format!("{}{}", base(), config(&up.url("/r"))),
            &[("CALLGATE_QUEUE_URL", &url)],
        );
        let status = post(&gw).await;
        let want = if *stored { 202 } else { 503 };
        assert_eq!(status, want, "{host} {query}: {}", gw.log());
        if !stored {
            let log = gw.wait_for_log("not stored");
            assert!(log.contains("TLS"), "{host} {query}: {log}");
        }
        assert!(!gw.log().contains("right"), "no password in the log");
        seen.push(format!("{host}?{query} -> {status}"));
    }
    // A wrong password: the cause, never either password.
    let url = format!("postgres://cg:wr%40ng-guess@localhost:{port}/{name}?sslrootcert={root}");
    let gw = Gateway::start_raw(
        &format!("{}{}", base(), config(&up.url("/r"))),
        &[("CALLGATE_QUEUE_URL", &url)],
    );
    assert_eq!(post(&gw).await, 503);
    let log = gw.wait_for_log("not stored");
    assert!(log.contains("authentication failed"), "{log}");
    assert!(!log.contains("wr@ng") && !log.contains("wr%40ng"), "{log}");
    println!("queue database TLS: {}", seen.join("; "));
}
