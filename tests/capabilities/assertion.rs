//! The signed assertion against a real PHP receiver that trusts it instead
//! of the verified header: callgate's assertion is accepted, and a forged,
//! altered, or replayed-to-another-path one is refused by PHP itself.

use callgate_testkit as support;

use std::time::{Duration, Instant};

use support::{Client, Gateway, PhpReceiver, Version};

const TOKEN: &str = "assert-token-5-0123456789";

fn start(php: &PhpReceiver, dir: &std::path::Path) -> Gateway {
    Gateway::start(&format!(
        r#"
[gateway]
assertion = {{ key = "assertion-test-key" }}

[queue]
dir = "{}"

[[route]]
name = "direct"
path = "/cb"
upstream = "{}"
allow_ips = ["127.0.0.1"]
token = {{ secrets = ["{TOKEN}"] }}

[[route]]
name = "queued"
path = "/q"
upstream = "{}"
token = {{ secrets = ["{TOKEN}"] }}
delivery = "queue"
"#,
        dir.display(),
        php.url("/assert.php?via=callgate"),
        php.url("/assert.php?via=queue"),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_accepts_callgates_assertion_and_refuses_forged_or_replayed_ones() {
    let php = PhpReceiver::start();
    let dir = tempfile::tempdir().unwrap();
    let gw = start(&php, dir.path());
    let body = br#"{"id":1,"status":"finished"}"#;
    let r = Client::https(gw.https.unwrap(), Version::H1)
        .post(
            &format!("/cb?token={TOKEN}"),
            &[("content-type", "application/json")],
            body,
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(&r.body[..], b"OK ip,token\n");
    let seen = php.records().pop().unwrap();
    assert_eq!(seen["accepted"], "ip,token");
    let assertion = seen["assertion"].as_str().unwrap().to_owned();
    let target = seen["uri"].as_str().unwrap().to_owned();
    assert!(assertion.starts_with("v1;t="), "{assertion}");
    assert!(
        assertion.contains(";route=direct;checks=ip,token;body="),
        "{assertion}"
    );

    // Straight to PHP, past callgate: only the exact request it vouched for passes.
    let direct = Client::http(php.addr);
    let send = |path: String, header: Option<String>, body: &'static [u8]| {
        let direct = &direct;
        async move {
            let mut h = vec![("content-type".to_owned(), "application/json".to_owned())];
            h.extend(header.map(|a| ("x-callgate-assertion".to_owned(), a)));
            let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            direct.post(&path, &h, body).await.status.as_u16()
        }
    };
    assert_eq!(
        send(target.clone(), Some(assertion.clone()), body).await,
        200,
        "the same request"
    );
    let other_path = target.replace("via=callgate", "via=elsewhere");
    assert_eq!(
        send(other_path, Some(assertion.clone()), body).await,
        403,
        "replayed to another target"
    );
    let forged = assertion.replace("checks=ip,token", "checks=ip,token,hmac");
    assert_eq!(
        send(target.clone(), Some(forged), body).await,
        403,
        "checks altered"
    );
    assert_eq!(
        send(target.clone(), Some(assertion.clone()), b"{\"id\":2}").await,
        403,
        "body altered"
    );
    let resigned = format!(
        "{};sig={}",
        &assertion[..assertion.rfind(";sig=").unwrap()],
        "00".repeat(32)
    );
    assert_eq!(
        send(target.clone(), Some(resigned), body).await,
        403,
        "signature forged"
    );
    assert_eq!(send(target.clone(), None, body).await, 403, "no assertion");
    // A caller's own assertion never reaches PHP through callgate.
    let r = Client::https(gw.https.unwrap(), Version::H2)
        .post(
            &format!("/cb?token={TOKEN}"),
            &[(
                "x_callgate_assertion",
                "v1;t=0;route=x;checks=ip,token,hmac;body=0;sig=0",
            )],
            body,
        )
        .await;
    assert_eq!(r.status, 200);
    let seen = php.records().pop().unwrap();
    assert_eq!(seen["accepted"], "ip,token", "{seen}");
    assert!(
        seen["assertion"]
            .as_str()
            .unwrap()
            .contains(";route=direct;"),
        "{seen}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_callback_is_asserted_when_it_is_delivered() {
    let php = PhpReceiver::start();
    let dir = tempfile::tempdir().unwrap();
    let gw = start(&php, dir.path());
    let r = Client::https(gw.https.unwrap(), Version::H1)
        .post(&format!("/q?token={TOKEN}&n=1"), &[], b"queued body")
        .await;
    assert_eq!(r.status, 202);
    let start = Instant::now();
    while php.records().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(10), "not delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = php.records().pop().unwrap();
    assert_eq!(seen["accepted"], "token", "{seen}");
    assert_eq!(
        seen["uri"],
        format!("/assert.php?via=queue&token={TOKEN}&n=1")
    );
}

/// A raw HTTP/1.1 POST straight to the receiver, past callgate, with this
/// Host, Content-Type and assertion.
fn raw_post(target: &str, host: &str, ct: &str, assertion: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST {target} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(a) = assertion {
        req.push_str(&format!("X-Callgate-Assertion: {a}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_binds_route_host_content_type_and_is_accepted_once() {
    let php = PhpReceiver::start();
    let gw = Gateway::start(&format!(
        r#"
[gateway]
assertion = {{ key = "assertion-test-key", version = 2 }}

[[route]]
name = "direct"
path = "/cb"
upstream = "{0}"
token = {{ secrets = ["{TOKEN}"] }}

[[route]]
name = "other"
path = "/other"
upstream = "{0}"
token = {{ secrets = ["{TOKEN}"] }}
"#,
        php.url("/assert2.php?via=callgate"),
    ));
    let body = br#"{"id":1,"status":"finished"}"#;
    let json = "application/json";
    let r = Client::https(gw.https.unwrap(), Version::H1)
        .post(
            &format!("/cb?token={TOKEN}"),
            &[("content-type", json)],
            body,
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), &r.body[..]),
        (200, &b"OK token\n"[..]),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let seen = php.records().pop().unwrap();
    let assertion = seen["assertion"].as_str().unwrap().to_owned();
    let (target, host) = (
        seen["uri"].as_str().unwrap(),
        seen["host"].as_str().unwrap(),
    );
    assert!(assertion.starts_with("v2;t="), "{assertion}");
    assert!(
        assertion.contains(&format!(
            ";route=direct;checks=token;host={host};ct={json};body="
        )),
        "{assertion}"
    );

    // Another route's callback, though callgate verified it: PHP refuses it.
    let r = Client::https(gw.https.unwrap(), Version::H1)
        .post(
            &format!("/other?token={TOKEN}"),
            &[("content-type", json)],
            body,
        )
        .await;
    assert_eq!(r.status, 403, "route other is not route direct");

    // Straight to PHP, past callgate: the captured assertion with another
    // Host, as a form, or again, is refused.
    let direct = Client::http(php.addr);
    let status = |bytes: Vec<u8>| {
        let direct = &direct;
        async move { direct.raw(&bytes).await.0.first().copied().unwrap_or(0) }
    };
    let exact = || raw_post(target, host, json, Some(&assertion), body);
    assert_eq!(
        status(exact()).await,
        403,
        "the delivery itself used the id"
    );
    // Forget the id (as if its file had been pruned): the exact request is
    // the positive control, each alteration fails on its own.
    let id = |a: &str| a.split(";id=").nth(1).unwrap()[..32].to_owned();
    let seen_file = std::env::temp_dir()
        .join("callgate-assertion-seen")
        .join(id(&assertion));
    std::fs::remove_file(&seen_file).unwrap();
    let form = "application/x-www-form-urlencoded";
    let forged = assertion.replace("checks=token", "checks=ip,token,hmac");
    for (what, req) in [
        (
            "another Host",
            raw_post(target, "evil.example", json, Some(&assertion), body),
        ),
        (
            "as a form",
            raw_post(target, host, form, Some(&assertion), body),
        ),
        (
            "another target",
            raw_post(
                "/assert2.php?via=elsewhere",
                host,
                json,
                Some(&assertion),
                body,
            ),
        ),
        (
            "checks altered",
            raw_post(target, host, json, Some(&forged), body),
        ),
        (
            "body altered",
            raw_post(target, host, json, Some(&assertion), b"{\"id\":2}"),
        ),
        ("no assertion", raw_post(target, host, json, None, body)),
    ] {
        assert_eq!(status(req).await, 403, "{what}");
    }
    assert_eq!(
        status(exact()).await,
        200,
        "the exact request, its id forgotten"
    );
    assert_eq!(status(exact()).await, 403, "and only once");
    // Each delivery carries a new id.
    let again = Client::https(gw.https.unwrap(), Version::H1)
        .post(
            &format!("/cb?token={TOKEN}&n=2"),
            &[("content-type", json)],
            body,
        )
        .await;
    assert_eq!(again.status, 200);
    let second = php.records().pop().unwrap()["assertion"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(id(&assertion), id(&second));
}

/// A multipart callback, as a provider sends one.
const MULTIPART: &[u8] = b"--XyZ\r\nContent-Disposition: form-data; name=\"event\"\r\n\r\n{\"id\":7,\"status\":\"done\"}\r\n--XyZ--\r\n";
const MULTIPART_CT: &str = "multipart/form-data; boundary=XyZ";

/// PHP parses a multipart body into $_POST and leaves php://input empty:
/// v2 cannot hash the body, so it refuses, and says why in error_log (a
/// receiver with enable_post_data_reading=0 keeps the body and accepts).
/// Without APCu and without a seen dir it refuses too: it could not tell a
/// replay. So the assertion of an empty multipart request cannot vouch for
/// a forged multipart body sent straight to PHP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_refuses_multipart_bodies_and_receivers_that_cannot_remember_ids_and_says_why() {
    let php = PhpReceiver::start();
    let raw = PhpReceiver::start_with_ini("", &["enable_post_data_reading=0"]);
    let seen = tempfile::tempdir().unwrap();
    let seen = seen.path().display().to_string();
    let url = |p: &PhpReceiver, route: &str, seen: &str| {
        p.url(&format!("/assert2_any.php?route={route}&seen={seen}"))
    };
    let route = |name: &str, upstream: String| {
        format!("[[route]]\nname = \"{name}\"\npath = \"/{name}\"\nupstream = \"{upstream}\"\ntoken = {{ secrets = [\"{TOKEN}\"] }}\n\n")
    };
    let gw = Gateway::start(&format!(
        "[gateway]\nassertion = {{ key = \"assertion-test-key\", version = 2 }}\n\n{}{}{}",
        route("mp", url(&php, "mp", &seen)),
        route("raw", url(&raw, "raw", &seen)),
        route("nowhere", url(&php, "nowhere", "none")),
    ));
    let c = Client::https(gw.https.unwrap(), Version::H1);
    let send = |name: &'static str, ct: &'static str, body: &'static [u8]| {
        let c = &c;
        async move {
            let r = c
                .post(
                    &format!("/{name}?token={TOKEN}"),
                    &[("content-type", ct)],
                    body,
                )
                .await;
            (
                r.status.as_u16(),
                String::from_utf8_lossy(&r.body).into_owned(),
            )
        }
    };

    // A real multipart callback through callgate: PHP parsed it, so v2 refuses, saying why.
    let (status, body) = send("mp", MULTIPART_CT, MULTIPART).await;
    assert_eq!(status, 403, "{body}");
    let record = php.records().pop().unwrap();
    assert_eq!(record["accepted"], false);
    assert_eq!(record["post_fields"], 1, "PHP parsed the multipart body");
    let errors = php.errors();
    assert!(
        errors.contains("callgate_assertion_v2: refused: a multipart body")
            && errors.contains("enable_post_data_reading=0"),
        "{errors}"
    );

    // The documented way: enable_post_data_reading=0 keeps the raw body in
    // php://input; the assertion holds over it, and only once.
    let (status, body) = send("raw", MULTIPART_CT, MULTIPART).await;
    assert_eq!((status, body.as_str()), (200, "OK token\n"));
    let record = raw.records().pop().unwrap();
    assert_eq!(record["raw_length"], MULTIPART.len());
    assert_eq!(record["post_fields"], 0);
    let (target, assertion) = (
        record["uri"].as_str().unwrap().to_owned(),
        record["assertion"].as_str().unwrap().to_owned(),
    );
    let again = raw_post(
        &target,
        &gw_host(&record),
        MULTIPART_CT,
        Some(&assertion),
        MULTIPART,
    );
    let direct = Client::http(raw.addr);
    assert_eq!(direct.raw(&again).await.0.first(), Some(&403), "a replay");
    assert!(
        raw.errors().contains("refused: a replay"),
        "{}",
        raw.errors()
    );

    // Neither APCu nor a seen dir: even a genuine JSON callback is refused.
    let json = "application/json";
    let (status, body) = send("nowhere", json, b"{\"id\":8}").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        php.errors()
            .contains("refused: nowhere to remember assertion ids"),
        "{}",
        php.errors()
    );

    // The assertion of an empty multipart request, captured, and a forged
    // multipart body sent with it straight to PHP: refused, as multipart.
    let (status, _) = send("nowhere", MULTIPART_CT, b"").await;
    assert_eq!(status, 403);
    let record = php.records().pop().unwrap();
    let (target, host, assertion) = (
        record["uri"].as_str().unwrap().to_owned(),
        gw_host(&record),
        record["assertion"].as_str().unwrap().to_owned(),
    );
    let forged = b"--XyZ\r\nContent-Disposition: form-data; name=\"event\"\r\n\r\n{\"id\":666,\"refund\":true}\r\n--XyZ--\r\n";
    let before = php.errors().matches("refused: a multipart body").count();
    let req = raw_post(&target, &host, MULTIPART_CT, Some(&assertion), forged);
    let status = Client::http(php.addr).raw(&req).await.0;
    assert_eq!(status.first(), Some(&403), "a forged multipart body");
    assert_eq!(
        php.errors().matches("refused: a multipart body").count(),
        before + 1,
        "refused as multipart"
    );
}

/// The Host the receiver saw, from the assertion (`host=…;ct=`).
fn gw_host(record: &serde_json::Value) -> String {
    let a = record["assertion"].as_str().unwrap();
    a.split(";host=")
        .nth(1)
        .unwrap()
        .split(";ct=")
        .next()
        .unwrap()
        .to_owned()
}
