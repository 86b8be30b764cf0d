//! Certificates per host: SNI picks among [[tls.certificate]] (exact and
//! `*.` wildcard names) and falls back to [tls]'s; a reload swaps them;
//! `callgate check` shows each one's subject and expiry.

use callgate_testkit as support;

use std::path::{Path, PathBuf};

use support::gateway::{run_cli, test_cert};
use support::Gateway;

/// A self-signed certificate for `names`, written as PEM files in `dir`; its DER.
fn make(dir: &Path, stem: &str, names: &[&str]) -> (PathBuf, PathBuf, Vec<u8>) {
    let ck =
        rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    let (cert, key) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    );
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (cert, key, ck.cert.der().to_vec())
}

/// The certificate the gateway presents to a client asking for `name`.
async fn presented(gw: &Gateway, name: &str, trusted: &[&[u8]]) -> Vec<u8> {
    support::client::presented_certificate(gw.https.unwrap(), name, trusted)
        .await
        .unwrap_or_else(|e| panic!("TLS for {name}: {e}"))
}

fn config(dir: &Path) -> String {
    let def = test_cert();
    format!(
        "[listen]\nhttps = \"127.0.0.1:0\"\n[tls]\ncert = {:?}\nkey = {:?}\n\n[[tls.certificate]]\nhosts = [\"api.test\"]\ncert = {:?}\nkey = {:?}\n\n[[tls.certificate]]\nhosts = [\"*.wild.test\", \"other.test\"]\ncert = {:?}\nkey = {:?}\n\n[[route]]\nname = \"r\"\npath = \"/r\"\nupstream = \"http://127.0.0.1:9/\"\nallow_ips = [\"127.0.0.1\"]\n",
        def.cert_path.display().to_string(),
        def.key_path.display().to_string(),
        dir.join("api.pem").display().to_string(),
        dir.join("api.key").display().to_string(),
        dir.join("wild.pem").display().to_string(),
        dir.join("wild.key").display().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_the_certificate_and_a_reload_swaps_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, api) = make(dir.path(), "api", &["api.test"]);
    let (_, _, wild) = make(dir.path(), "wild", &["*.wild.test", "other.test"]);
    let def = test_cert().cert_der.clone();
    let gw = Gateway::start_raw(&config(dir.path()), &[]);
    let all: [&[u8]; 3] = [&api, &wild, &def];
    assert_eq!(presented(&gw, "api.test", &all).await, api);
    assert_eq!(presented(&gw, "x.wild.test", &all).await, wild);
    assert_eq!(presented(&gw, "other.test", &all).await, wild);
    assert_eq!(
        presented(&gw, "localhost", &all).await,
        def,
        "no match: the default"
    );

    // A renewed certificate for api.test, then SIGHUP.
    let (_, _, renewed) = make(dir.path(), "api", &["api.test"]);
    gw.signal("HUP");
    gw.wait_for_log("config reloaded");
    let all: [&[u8]; 4] = [&api, &renewed, &wild, &def];
    assert_eq!(presented(&gw, "api.test", &all).await, renewed);
}

#[test]
fn check_shows_each_hosts_certificate_and_expiry() {
    let dir = tempfile::tempdir().unwrap();
    make(dir.path(), "api", &["api.test"]);
    make(dir.path(), "wild", &["*.wild.test", "other.test"]);
    let path = dir.path().join("callgate.toml");
    std::fs::write(&path, config(dir.path())).unwrap();
    let (code, out, err) = run_cli(&["check", "--config", path.to_str().unwrap()], b"", &[]);
    assert_eq!(code, 0, "{err}");
    for host in ["default", "api.test", "*.wild.test, other.test"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("tls certificate for {host}: ")))
            .unwrap_or_else(|| panic!("no line for {host}:\n{out}"));
        assert!(line.contains("CN=rcgen self signed cert"), "{line}");
        assert!(line.contains(", expires "), "{line}");
    }
}
