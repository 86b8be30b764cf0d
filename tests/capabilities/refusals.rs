//! Every failing check gets its deliberate answer, and nothing refused ever
//! reaches the upstream. Secrets and token values never reach the log.

use callgate_testkit as support;

use http::Method;

use callgate::crypto::{Algorithm, Encoding};
use support::{sign, Client, Gateway, Upstream, Version};

const KEY: &str = "tolq-api-key-9f8e";
const TOKEN: &str = "tok-7c1d2e-0123456789";

fn sections(upstream: &str) -> String {
    format!(
        r#"
[gateway]
max_body_bytes = 1024

[[route]]
name = "tolq"
path = "/tolq/callback"
upstream = "{upstream}"
allow_ips = ["127.0.0.1"]
token = {{ secrets = ["{TOKEN}"] }}
hmac = {{ algorithm = "sha1", header = "X-Tolq-Signature", encoding = "hex", secrets = ["{KEY}"] }}
"#
    )
}

struct Case {
    name: &'static str,
    source: &'static str,
    query: String,
    signature: Option<String>,
}

#[tokio::test]
async fn each_failing_check_alone_gives_403_and_reaches_nobody() {
    let up = Upstream::recording().await;
    let gw = Gateway::start(&sections(&up.url("/r")));
    let body = br#"{"id":1,"status":"finished"}"#;
    let good_sig = sign(Algorithm::Sha1, KEY, Encoding::Hex, body);
    let good_query = format!("?token={TOKEN}");
    let wrong_key_sig = sign(Algorithm::Sha1, "not-the-key", Encoding::Hex, body);
    let cases = vec![
        Case {
            name: "wrong signature",
            source: "127.0.0.1",
            query: good_query.clone(),
            signature: Some(wrong_key_sig),
        },
        Case {
            name: "missing signature",
            source: "127.0.0.1",
            query: good_query.clone(),
            signature: None,
        },
        Case {
            name: "truncated signature",
            source: "127.0.0.1",
            query: good_query.clone(),
            signature: Some(good_sig[..39].to_owned()),
        },
        Case {
            name: "empty signature",
            source: "127.0.0.1",
            query: good_query.clone(),
            signature: Some(String::new()),
        },
        Case {
            name: "wrong token",
            source: "127.0.0.1",
            query: "?token=guess".into(),
            signature: Some(good_sig.clone()),
        },
        Case {
            name: "missing token",
            source: "127.0.0.1",
            query: String::new(),
            signature: Some(good_sig.clone()),
        },
        Case {
            name: "token twice",
            source: "127.0.0.1",
            query: format!("?token={TOKEN}&token={TOKEN}"),
            signature: Some(good_sig.clone()),
        },
        Case {
            name: "source not allowed",
            source: "127.0.0.2",
            query: good_query.clone(),
            signature: Some(good_sig.clone()),
        },
    ];
    for version in [Version::H1, Version::H2] {
        for case in &cases {
            let client = Client::https(gw.https.unwrap(), version).source_ip(case.source);
            let mut headers = vec![("content-type", "application/json")];
            if let Some(sig) = &case.signature {
                headers.push(("x-tolq-signature", sig));
            }
            let r = client
                .post(&format!("/tolq/callback{}", case.query), &headers, body)
                .await;
            assert_eq!(r.status, 403, "{} over {version:?}", case.name);
            assert_eq!(
                &r.body[..],
                b"forbidden\n",
                "{}: the reason stays in the log",
                case.name
            );
        }
    }
    assert_eq!(up.count(), 0, "no refused request may reach the upstream");

    // The control: the same request, correct, does pass.
    let r = Client::https(gw.https.unwrap(), Version::H1)
        .post(
            &format!("/tolq/callback{good_query}"),
            &[("x-tolq-signature", &good_sig)],
            body,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(up.count(), 1);

    let log = gw.wait_for_log("status=200");
    for reason in [
        "hmac: signature does not match",
        "hmac: signature header missing",
        "hmac: signature is not hex",
        "token: does not match",
        "token: missing",
        "token: parameter sent more than once",
        "ip: 127.0.0.2 is not in allow_ips",
    ] {
        assert!(log.contains(reason), "log lacks {reason:?}:\n{log}");
    }
    assert!(!log.contains(TOKEN), "token value leaked into the log");
    assert!(!log.contains(KEY), "key leaked into the log");
    assert!(log.contains("token=REDACTED"));
}

#[tokio::test]
async fn unknown_path_is_404_and_wrong_method_is_405() {
    let up = Upstream::recording().await;
    let gw = Gateway::start(&sections(&up.url("/r")));
    for version in [Version::H1, Version::H2] {
        let c = Client::https(gw.https.unwrap(), version);
        let r = c.post("/tolq/callback/", &[], b"").await;
        assert_eq!(r.status, 404);
        let r = c.post("/other", &[], b"").await;
        assert_eq!(r.status, 404);
        for m in [Method::GET, Method::PUT, Method::DELETE] {
            let r = c
                .request(
                    m.clone(),
                    &format!("/tolq/callback?token={TOKEN}"),
                    &[],
                    b"",
                )
                .await;
            assert_eq!(r.status, 405, "{m}");
            assert_eq!(r.headers["allow"], "POST");
        }
    }
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn body_over_the_limit_is_413_whether_declared_or_streamed() {
    let up = Upstream::recording().await;
    let gw = Gateway::start(&sections(&up.url("/r")));
    let big = vec![b'a'; 2048];
    let sig = sign(Algorithm::Sha1, KEY, Encoding::Hex, &big);
    for version in [Version::H1, Version::H2] {
        let r = Client::https(gw.https.unwrap(), version)
            .post(
                &format!("/tolq/callback?token={TOKEN}"),
                &[("x-tolq-signature", &sig)],
                &big,
            )
            .await;
        assert_eq!(r.status, 413, "{version:?}");
    }
    // At the limit exactly it passes.
    let edge = vec![b'a'; 1024];
    let sig = sign(Algorithm::Sha1, KEY, Encoding::Hex, &edge);
    let r = Client::https(gw.https.unwrap(), Version::H1)
        .post(
            &format!("/tolq/callback?token={TOKEN}"),
            &[("x-tolq-signature", &sig)],
            &edge,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn chunked_body_over_the_limit_is_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = Upstream::recording().await;
    let gw = Gateway::start(&sections(&up.url("/r")));
    // Plain HTTP so the raw chunked framing is ours to write.
    let mut tcp = tokio::net::TcpStream::connect(gw.http.unwrap())
        .await
        .unwrap();
    let head = format!("POST /tolq/callback?token={TOKEN} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nx-tolq-signature: 00\r\n\r\n");
    tcp.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..4 {
        let _ = tcp.write_all(b"200\r\n").await;
        let _ = tcp.write_all(&[b'z'; 512]).await;
        let _ = tcp.write_all(b"\r\n").await;
    }
    let mut answer = vec![0u8; 64];
    let n = tcp.read(&mut answer).await.unwrap();
    assert!(
        String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 413"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn repeated_failures_are_damped_but_never_on_a_route_that_allowlists_the_client() {
    let up = Upstream::recording().await;
    let config = format!(
        r#"
[gateway]
damping = {{ failures = 3, window = "1m", cooldown = "2s" }}

[[route]]
name = "gengo"
path = "/gengo"
upstream = "{0}"
token = {{ secrets = ["{TOKEN}"] }}

[[route]]
name = "tolq"
path = "/tolq"
upstream = "{0}"
allow_ips = ["127.0.0.1"]
hmac = {{ algorithm = "sha1", header = "x-sig", secrets = ["{KEY}"] }}
"#,
        up.url("/r")
    );
    let gw = Gateway::start(&config);
    let attacker = Client::https(gw.https.unwrap(), Version::H1).source_ip("127.0.0.2");
    let provider = Client::https(gw.https.unwrap(), Version::H2);
    let sig = sign(Algorithm::Sha1, KEY, Encoding::Hex, b"x");
    let good = format!("/gengo?token={TOKEN}");

    // Three failures are tolerated; the fourth starts the cool-down.
    for _ in 0..4 {
        assert_eq!(
            attacker.post("/gengo?token=guess", &[], b"x").await.status,
            403
        );
    }
    let r = attacker.post(&good, &[], b"x").await;
    assert_eq!(r.status, 429, "even a right token waits out the cool-down");
    assert!(
        r.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            <= 3
    );

    // Meanwhile the allowlisted provider is untouched, even by its own failures.
    for _ in 0..6 {
        assert_eq!(
            provider
                .post("/tolq", &[("x-sig", "00")], b"x")
                .await
                .status,
            403
        );
    }
    assert_eq!(
        provider
            .post("/tolq", &[("x-sig", &sig)], b"x")
            .await
            .status,
        200
    );
    assert_eq!(provider.post(&good, &[], b"x").await.status, 200);

    // The exemption is the route's own: failing on a route that does not
    // allowlist it, the provider's address is damped there, yet its own
    // route still serves it.
    for _ in 0..4 {
        let r = provider.post("/gengo?token=guess", &[], b"x").await;
        assert_eq!(r.status, 403);
    }
    assert_eq!(provider.post(&good, &[], b"x").await.status, 429);
    assert_eq!(
        provider
            .post("/tolq", &[("x-sig", &sig)], b"x")
            .await
            .status,
        200,
        "a provider is never cut off from its own route"
    );

    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    assert_eq!(
        attacker.post(&good, &[], b"x").await.status,
        200,
        "the cool-down ends"
    );
    assert_eq!(up.count(), 4);
    assert!(gw
        .wait_for_log("damped: too many failed verifications")
        .contains("status=429"));
}

/// An early refusal over h2 (a wrong token: decided before the body is
/// read) reaches curl as the 403, every time, with uploads of every size
/// in flight: callgate reads and drops the rest of the upload first, so
/// the stream ends cleanly instead of being reset under the answer.
#[test]
fn an_early_refusal_over_h2_reaches_curl_as_403_every_time() {
    let gw = Gateway::start(&format!(
        "[[route]]\nname = \"tolq\"\npath = \"/tolq/callback\"\nupstream = \"http://127.0.0.1:9/r\"\ntoken = {{ secrets = [\"{TOKEN}\"] }}\n"
    ));
    let port = gw.https.unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut outcomes = Vec::new();
    for round in 0..4 {
        let workers: Vec<_> = [1usize, 1000, 30_000, 200_000, 900_000]
            .into_iter()
            .enumerate()
            .map(|(i, size)| {
                let file = dir.path().join(format!("body-{round}-{i}"));
                std::fs::write(&file, vec![b'a'; size]).unwrap();
                std::thread::spawn(move || {
                    let out = std::process::Command::new("curl")
                        .args(["-sk", "--http2", "-o", "/dev/null", "-w", "%{http_code}"])
                        .arg("--data-binary")
                        .arg(format!("@{}", file.display()))
                        .arg(format!(
                            "https://localhost:{port}/tolq/callback?token=guess"
                        ))
                        .output()
                        .expect("curl runs");
                    (
                        size,
                        out.status.code(),
                        String::from_utf8_lossy(&out.stdout).into_owned(),
                    )
                })
            })
            .collect();
        for w in workers {
            outcomes.push(w.join().unwrap());
        }
    }
    let bad: Vec<_> = outcomes
        .iter()
        .filter(|(_, code, status)| *code != Some(0) || status != "403")
        .collect();
    assert!(
        bad.is_empty(),
        "{} of {}: {bad:?}",
        bad.len(),
        outcomes.len()
    );
    println!(
        "h2 early refusal: {} of {} curl requests saw the 403",
        outcomes.len() - bad.len(),
        outcomes.len()
    );
}

/// What curl --http2 shows for one upload: its exit code and the status.
fn curl_h2_upload(port: u16, target: &str, body: &std::path::Path, expect: bool) -> (i32, String) {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sk", "--http2", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg("--data-binary")
        .arg(format!("@{}", body.display()));
    if expect {
        cmd.args(["-H", "Expect: 100-continue"]);
    }
    let out = cmd
        .arg(format!("https://localhost:{port}{target}"))
        .output()
        .expect("curl runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// An upload over max_body_bytes over h2 reaches curl as the 413 (and a
/// refused token as the 403), with and without `Expect: 100-continue`, at
/// 1 MiB + 1 and at 10 MB: callgate reads and drops the rest of the upload
/// (up to 16 MiB, 5 s) before it closes the stream, instead of resetting it
/// under the answer (curl then said "(92) Stream error" or "(52) Empty
/// reply" while the log said 413). The site behind callgate likewise, for
/// what it refuses before the body (a declared length over its bound, a
/// protected path).
#[test]
fn an_oversize_upload_over_h2_reaches_curl_as_413_and_a_refusal_as_403() {
    let gw = Gateway::start(&format!(
        "[gateway]\nmax_body_bytes = 1048576\n\n[[route]]\nname = \"tolq\"\npath = \"/tolq/callback\"\nupstream = \"http://127.0.0.1:9/r\"\ntoken = {{ secrets = [\"{TOKEN}\"] }}\n\n[[passthrough]]\nupstream = \"http://127.0.0.1:9\"\nmax_body_bytes = 1048576\nprotect = [\"/cron.php\"]\n"
    ));
    let port = gw.https.unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut bad = Vec::new();
    let mut seen = 0;
    for size in [(1usize << 20) + 1, 10_000_000] {
        let file = dir.path().join(format!("body-{size}"));
        std::fs::write(&file, vec![b'a'; size]).unwrap();
        for expect in [false, true] {
            let targets = [
                (format!("/tolq/callback?token={TOKEN}"), "413"),
                ("/tolq/callback?token=guess".into(), "403"),
                ("/upload.php".into(), "413"),
                ("/cron.php".into(), "403"),
            ];
            for (target, want) in targets {
                let (code, status) = curl_h2_upload(port, &target, &file, expect);
                seen += 1;
                if code != 0 || status != want {
                    bad.push((size, expect, want, code, status));
                }
            }
        }
    }
    assert!(bad.is_empty(), "{} of {seen}: {bad:?}", bad.len());
    println!("h2 oversize uploads: {seen} of {seen} curl requests saw the 413 or 403");
}
