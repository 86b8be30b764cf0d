//! Report-only routes (`enforce = false`): a callback that fails a check is
//! forwarded anyway, with a verified header naming only what passed, and
//! the would-be refusal is logged and counted; after a reload with
//! `enforce = true` the same callback is refused. A real PHP receiver sees
//! exactly what the header says.

use callgate_testkit as support;

use std::time::Duration;

use callgate::crypto::{Algorithm, Encoding};
use support::{sign, Client, Gateway, PhpReceiver, Version};

const KEY: &str = "report-only-api-key";
const TOKEN: &str = "report-only-token";

fn config(php: &PhpReceiver, enforce: bool) -> String {
    let cert = support::gateway::test_cert();
    format!(
        "[listen]\nhttps = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n[tls]\ncert = {:?}\nkey = {:?}\n\n[[route]]\nname = \"tolq\"\npath = \"/tolq/callback\"\nupstream = \"{}\"\nallow_ips = [\"127.0.0.1\"]\ntoken = {{ secrets = [\"{TOKEN}\"] }}\nhmac = {{ algorithm = \"sha1\", header = \"X-Tolq-Signature\", encoding = \"hex\", secrets = [\"{KEY}\"] }}\nenforce = {enforce}\n",
        cert.cert_path.display().to_string(),
        cert.key_path.display().to_string(),
        php.url("/tolq/callback.php")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_only_route_forwards_what_it_would_refuse_and_says_so() {
    let php = PhpReceiver::start();
    let gw = Gateway::start_raw(&config(&php, false), &[]);
    let https = Client::https(gw.https.unwrap(), Version::H1);
    let body = br#"{"id":7,"status":"finished"}"#;
    // A forged signature: forwarded, verified header without hmac.
    let forged = [("x-tolq-signature", "0000")];
    let r = https
        .post(&format!("/tolq/callback?token={TOKEN}"), &forged, body)
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // A callback with a good signature: the verified header says all three.
    let good = sign(Algorithm::Sha1, KEY, Encoding::Hex, body);
    let r = https
        .post(
            &format!("/tolq/callback?token={TOKEN}"),
            &[("x-tolq-signature", &good)],
            body,
        )
        .await;
    assert_eq!(r.status, 200);
    // From an address outside allow_ips, no token, no signature: nothing
    // passed, so no verified header at all.
    let stranger = Client::https(gw.https.unwrap(), Version::H2).source_ip("127.0.0.2");
    let r = stranger
        .post(
            "/tolq/callback",
            &[("x-callgate-verified", "ip,token,hmac")],
            body,
        )
        .await;
    assert_eq!(r.status, 200);
    let seen = php.records();
    let verified: Vec<&serde_json::Value> = seen.iter().map(|r| &r["verified"]).collect();
    assert_eq!(
        verified,
        [
            &serde_json::json!("ip,token"),
            &serde_json::json!("ip,token,hmac"),
            &serde_json::Value::Null
        ],
        "{seen:?}"
    );
    let log = gw.wait_for_log("outcome=\"would_refuse\" reason=\"ip:");
    let line = log
        .lines()
        .find(|l| l.contains("would_refuse") && l.contains("hmac: "))
        .expect("the would-refuse line");
    println!("would-refuse log line: {line}");
    assert!(line.contains("status=200"), "{line}");
    assert!(!line.contains(TOKEN) && !line.contains(KEY), "{line}");
    let metrics = Client::http(gw.admin.unwrap())
        .request(http::Method::GET, "/metrics", &[], b"")
        .await;
    let metrics = String::from_utf8_lossy(&metrics.body).into_owned();
    let counted: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("callgate_refusals_total{route=\"tolq\""))
        .collect();
    println!("would-refuse metric: {counted:?}");
    assert!(
        counted.contains(
            &"callgate_refusals_total{route=\"tolq\",reason=\"hmac\",enforced=\"false\"} 1"
        ),
        "{counted:?}"
    );
    assert!(
        counted.contains(
            &"callgate_refusals_total{route=\"tolq\",reason=\"ip\",enforced=\"false\"} 1"
        ),
        "{counted:?}"
    );
    assert!(
        metrics.contains("callgate_requests_total{route=\"tolq\",outcome=\"would_refuse\"} 2"),
        "{metrics}"
    );
    // check says so loudly, and the start warned.
    let (code, out, err) = support::gateway::run_cli(
        &["check", "--config", gw.config_path.to_str().unwrap()],
        b"",
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("REPORT-ONLY (enforce = false)"), "{out}");
    assert!(
        err.contains("1 route(s) do not enforce their checks"),
        "{err}"
    );
    assert!(gw.log().contains("do not enforce their checks"));

    // Enforcing after a reload: the same forged callback is refused.
    let enforcing = std::fs::read_to_string(&gw.config_path)
        .unwrap()
        .replace("enforce = false", "enforce = true");
    gw.rewrite(&enforcing);
    gw.signal("HUP");
    gw.wait_for_log("config reloaded");
    let mut status = 0;
    for _ in 0..50 {
        let r = https
            .post(&format!("/tolq/callback?token={TOKEN}"), &forged, body)
            .await;
        status = r.status.as_u16();
        if status == 403 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 403);
    assert_eq!(
        php.records().len(),
        3,
        "the refused callback never reached PHP"
    );
}
