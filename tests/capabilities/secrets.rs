//! No configured secret leaves by value: each secret the config holds (URL
//! tokens, Meta's verify token, an HMAC key, the console password, the
//! assertion key) sent under many names, places and encodings, then looked
//! for in everything callgate shows: the log at trace, the console's pages
//! and JSON (bodies kept as base64 decoded), `callgate explain` of each
//! export and of a raw capture, `callgate queue show`, the metrics and
//! `/healthz`. After a reload, the new config's secrets likewise.

use std::time::{Duration, Instant};

use callgate_testkit as support;

use base64::Engine;
use support::gateway::run_cli;
use support::raw::request;
use support::{Gateway, Upstream};

const TOKEN: &str = "tok/Real-7f3a9c1e5b";
const QTOKEN: &str = "queue-token-5e8d2c7a91";
const VERIFY: &str = "verify-Me-0b4c8e2f6a";
const APP: &str = "meta-app-key-3c9e1f7b2d";
const PASSWORD: &str = "console-pw-8a2f4c6e0b";
const ASSERT: &str = "assert-key-1d3f5b7c9e";
/// Meta's verify token after the reload.
const VERIFY2: &str = "verify-Two-6c1a9e3d7f";

const SECRETS: &[&str] = &[TOKEN, QTOKEN, VERIFY, APP, PASSWORD, ASSERT];

fn config(up: &Upstream, verify: &str) -> String {
    format!(
        r#"
[listen]
http = "127.0.0.1:0"
admin = "127.0.0.1:0"

[admin]
console = {{ password = "{PASSWORD}" }}
hosts = ["gw"]

[gateway]
assertion = {{ key = "{ASSERT}", version = 2 }}

[[route]]
name = "meta"
path = "/meta"
upstream = "{meta}"
preset = "meta"
allow_ips = ["127.0.0.1"]
hmac = {{ secrets = ["{APP}"] }}
handshake = {{ verify_token = "{verify}" }}

[[route]]
name = "direct"
path = "/direct"
upstream = "{direct}"
allow_ips = ["127.0.0.1"]
token = {{ secrets = ["{TOKEN}"] }}

[[route]]
name = "orders"
path = "/orders"
upstream = "{orders}"
allow_ips = ["127.0.0.1"]
token = {{ secrets = ["{QTOKEN}"] }}
delivery = "queue"
retry = {{ base = "100ms", cap = "100ms", max_attempts = 1 }}
"#,
        meta = up.url("/meta.php"),
        direct = up.url("/direct.php"),
        orders = up.url("/orders.php"),
    )
}

/// Every byte as `%XX` (upper case) or `%xx`.
fn percent_all(s: &str, upper: bool) -> String {
    s.bytes()
        .map(|b| match upper {
            true => format!("%{b:02X}"),
            false => format!("%{b:02x}"),
        })
        .collect()
}

/// Every other byte escaped: half plain, half `%xx`.
fn percent_mixed(s: &str) -> String {
    s.bytes()
        .enumerate()
        .map(|(i, b)| match i % 2 {
            0 => format!("%{b:02x}"),
            _ => (b as char).to_string(),
        })
        .collect()
}

fn form(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The forms a secret was sent in, each of which must never be shown.
fn forms(s: &str) -> Vec<String> {
    vec![
        s.to_owned(),
        form(s),
        percent_all(s, true),
        percent_all(s, false),
        percent_mixed(s),
        form(&form(s)),
        s.replace('/', "\\/"),
    ]
}

/// One request: target, extra head lines, body.
struct Spelling {
    target: String,
    head: String,
    body: Vec<u8>,
}

/// At least ten spellings and places of one secret, each a POST to the
/// meta route with a forged signature (refused after the body is read, so
/// the console keeps headers and body).
fn spellings(s: &str) -> Vec<Spelling> {
    let q = |target: String| Spelling {
        target,
        head: String::new(),
        body: b"{}".to_vec(),
    };
    let h = |line: String| Spelling {
        target: "/meta".into(),
        head: line,
        body: b"{}".to_vec(),
    };
    let b = |body: String| Spelling {
        target: "/meta".into(),
        head: String::new(),
        body: body.into_bytes(),
    };
    vec![
        q(format!("/meta?TOKEN={s}")),
        q(format!("/meta?tok.en={s}")),
        q(format!("/meta?tok_en={s}")),
        q(format!("/meta?a=1;token={s}")),
        q(format!("/meta?hub.verify_token={}", form(s))),
        q(format!("/meta?x={}", percent_all(s, true))),
        q(format!("/meta?x={}", percent_mixed(s))),
        q(format!("/meta?x={}", form(&form(s)))),
        q(format!("/meta/{s}?y=1")),
        h(format!("X-Note: {s}\r\n")),
        h(format!("X_Api_Key: {s}\r\n")),
        h(format!("X-Auth-Key: {s}\r\n")),
        h(format!("X-Webhook-Key: {s}\r\n")),
        h(format!("Proxy_Authorization: Basic {s}\r\n")),
        b(format!("{{\"note\":\"{}\"}}", s.replace('/', "\\/"))),
        b(format!("note={}&x=1", form(s))),
        b(format!("plain {s} text")),
    ]
}

/// `METHOD target` with head lines and a body: (status, whole answer).
async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    target: &str,
    head: &str,
    body: &[u8],
) -> (u16, String) {
    let head = format!("Host: localhost\r\nConnection: close\r\n{head}");
    request(addr, (method, target), &head, body).await
}

/// A signature that cannot match.
fn forged() -> String {
    "X-Hub-Signature-256: sha256=0000000000000000000000000000000000000000000000000000000000000000\r\nContent-Type: application/json\r\n".to_owned()
}

async fn admin(gw: &Gateway, target: &str) -> String {
    let head = format!("Authorization: Bearer {PASSWORD}\r\n");
    let (status, text) = http(gw.admin.unwrap(), "GET", target, &head, b"").await;
    assert_eq!(status, 200, "{target}: {text}");
    text.split_once("\r\n\r\n").unwrap().1.to_owned()
}

/// Send every spelling of every secret, a real Meta handshake, a real
/// token with near-miss copies, and a queued callback carrying them all.
async fn traffic(gw: &Gateway, up: &Upstream, secrets: &[&str], verify: &str) -> usize {
    let addr = gw.http.unwrap();
    let mut sent = 0;
    for s in secrets {
        for sp in spellings(s) {
            let head = format!("{}{}", forged(), sp.head);
            let (status, text) = http(addr, "POST", &sp.target, &head, &sp.body).await;
            assert!(status >= 400, "{}: {text}", sp.target);
            sent += 1;
        }
    }
    // Answered handshakes and forwarded callbacks are logged too.
    let t = format!("/meta?hub.mode=subscribe&hub.verify_token={verify}&hub.challenge=71");
    let (status, text) = http(addr, "GET", &t, "", b"").await;
    assert_eq!(status, 200, "{text}");
    let t = format!(
        "/direct?token={}&TOKEN={TOKEN}&tok.en={TOKEN}&tok_en={}&a=1;token={TOKEN}",
        form(TOKEN),
        percent_all(TOKEN, false)
    );
    let (status, text) = http(addr, "POST", &t, "", b"{}").await;
    assert_eq!(status, 200, "{text}");
    up.script(&[400]);
    let t = format!("/orders?token={QTOKEN}&TOKEN={QTOKEN}&n={}", form(TOKEN));
    let head = format!("X-Note: {verify}\r\nX-Api-Key: {APP}\r\nX_Auth_Token: {APP}\r\n");
    let body = format!("pw={}&k={ASSERT}", form(PASSWORD));
    let (status, text) = http(addr, "POST", &t, &head, body.as_bytes()).await;
    assert_eq!(status, 202, "{text}");
    sent
}

/// Everything callgate shows: the log, the console (pages and JSON, kept
/// bodies decoded), explain of each export and of a raw capture, queue
/// show, metrics and healthz.
async fn shown(gw: &Gateway, verify: &str) -> Vec<(String, String)> {
    let mut out = vec![("log".to_owned(), gw.log())];
    let list = admin(gw, "/api/requests").await;
    let entries: serde_json::Value = serde_json::from_str(&list).unwrap();
    out.push(("/api/requests".into(), list));
    out.push(("/requests".into(), admin(gw, "/requests").await));
    let cfg = gw.config_path.to_str().unwrap().to_owned();
    for e in entries.as_array().unwrap() {
        let id = e["id"].as_u64().unwrap();
        let json = admin(gw, &format!("/api/requests/{id}")).await;
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        if let Some(b64) = v["body_base64"].as_str() {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            out.push((
                format!("body_base64 of {id}"),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
        if v["route"] == "meta" && v.get("headers").is_some() {
            let file = gw.dir.path().join(format!("export-{id}.json"));
            std::fs::write(&file, &json).unwrap();
            let f = file.to_str().unwrap();
            let (_, o, err) = run_cli(
                &[
                    "explain",
                    "--config",
                    &cfg,
                    "--route",
                    "meta",
                    "--request",
                    f,
                ],
                b"",
                &[],
            );
            out.push((format!("explain of {id}"), o + &err));
        }
        out.push((format!("/api/requests/{id}"), json));
        out.push((
            format!("/requests/{id}"),
            admin(gw, &format!("/requests/{id}")).await,
        ));
    }
    out.push(explain_raw(gw, &cfg, verify));
    let queue = admin(gw, "/api/queue").await;
    let items: serde_json::Value = serde_json::from_str(&queue).unwrap();
    for item in items.as_array().unwrap() {
        let id = item["id"].as_i64().unwrap().to_string();
        out.push((
            format!("/api/queue/{id}"),
            admin(gw, &format!("/api/queue/{id}")).await,
        ));
        out.push((
            format!("/queue/{id}"),
            admin(gw, &format!("/queue/{id}")).await,
        ));
        let (code, o, err) = run_cli(&["queue", "show", &id, "--config", &cfg], b"", &[]);
        assert_eq!(code, 0, "{err}");
        assert!(o.contains("/orders.php?"), "{o}");
        out.push((format!("queue show {id}"), o + &err));
    }
    out.push(("/api/queue".into(), queue));
    out.push(("/queue".into(), admin(gw, "/queue").await));
    out.push(("/".into(), admin(gw, "/").await));
    let (_, metrics) = http(gw.admin.unwrap(), "GET", "/metrics", "", b"").await;
    let (_, health) = http(gw.admin.unwrap(), "GET", "/healthz", "", b"").await;
    out.push(("/metrics".into(), metrics));
    out.push(("/healthz".into(), health));
    out
}

/// `explain` of a raw capture holding every secret in its target, headers and body.
fn explain_raw(gw: &Gateway, cfg: &str, verify: &str) -> (String, String) {
    let target = format!(
        "/meta?hub.mode=subscribe&hub.verify_token={verify}&hub.challenge=1&TOKEN={TOKEN}&tok.en={}&x={}&y={}&z={}",
        form(APP),
        percent_all(PASSWORD, true),
        percent_mixed(ASSERT),
        QTOKEN
    );
    let body = format!("{{\"k\":\"{}\"}}", TOKEN.replace('/', "\\/"));
    let capture = format!(
        "POST {target} HTTP/1.1\r\nHost: gw\r\nX-Note: {verify}\r\nX-Api-Key: {APP}\r\nX-Hub-Signature-256: sha256=00\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let file = gw.dir.path().join("capture.http");
    std::fs::write(&file, capture).unwrap();
    let (_, o, err) = run_cli(
        &[
            "explain",
            "--config",
            cfg,
            "--route",
            "meta",
            "--request",
            file.to_str().unwrap(),
            "--from",
            "127.0.0.1",
        ],
        b"",
        &[],
    );
    assert!(o.contains("route \"meta\""), "{o}{err}");
    ("explain of a raw capture".into(), o + &err)
}

fn assert_hidden(outputs: &[(String, String)], secrets: &[&str]) {
    for (place, text) in outputs {
        for s in secrets {
            for f in forms(s) {
                assert!(
                    !text.contains(&f),
                    "{s} (as {f}) in {place}:\n{}",
                    &text[..text.len().min(20_000)]
                );
            }
            // Bytes as a library's Debug prints them: `[116, 111, …]`.
            let listed = format!("{:?}", s.as_bytes());
            assert!(
                !text.contains(listed.trim_matches(['[', ']'])),
                "{s} as bytes in {place}"
            );
        }
    }
}

async fn wait_dead(gw: &Gateway) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !admin(gw, "/api/queue?state=dead").await.contains("\"id\"") {
        assert!(
            Instant::now() < deadline,
            "the queued callback never went dead"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_configured_secret_is_shown_under_any_name_place_or_encoding() {
    let up = Upstream::recording().await;
    let gw = Gateway::start_raw(&config(&up, VERIFY), &[("RUST_LOG", "trace")]);
    let sent = traffic(&gw, &up, SECRETS, VERIFY).await;
    assert!(sent >= 10 * SECRETS.len(), "{sent} spellings");
    wait_dead(&gw).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let outputs = shown(&gw, VERIFY).await;
    assert_hidden(&outputs, SECRETS);
    // The positive controls: what was sent is there, with its secrets hidden.
    let log = &outputs[0].1;
    assert!(log.contains("/meta?TOKEN=REDACTED"), "{log}");
    assert!(log.contains("hub.verify_token=REDACTED"), "{log}");
    assert!(outputs
        .iter()
        .any(|(p, t)| p.starts_with("explain of ") && t.contains("FAIL")));
    let details: String = outputs
        .iter()
        .filter(|(p, _)| p.starts_with("/api/requests/"))
        .flat_map(|(_, t)| t.split_whitespace())
        .collect();
    assert!(
        details.contains("[\"x_api_key\",\"REDACTED\"]"),
        "{details}"
    );
    assert!(outputs
        .iter()
        .any(|(p, t)| p.starts_with("queue show") && t.contains("x-note: REDACTED")));

    // A reload: the new verify token is hidden, from the first request on.
    gw.rewrite(&config(&up, VERIFY2));
    gw.signal("HUP");
    gw.wait_for_log("config reloaded");
    traffic(&gw, &up, &[VERIFY2], VERIFY2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let outputs = shown(&gw, VERIFY2).await;
    assert!(outputs[0].1.matches("hub.verify_token=REDACTED").count() >= 4);
    assert_hidden(&outputs, &[VERIFY2, TOKEN, QTOKEN, APP, PASSWORD, ASSERT]);
}

/// A token of letters only (so it can be an HTTP method) and a hex key.
const LETTERS: &str = "TolqTokSecretAAA";
const HEXKEY: &str = "deadbeefcafebabe0123";

fn small_config(up: &Upstream) -> String {
    format!(
        r#"
[listen]
http = "127.0.0.1:0"
admin = "127.0.0.1:0"

[admin]
console = {{ password = "{PASSWORD}" }}
hosts = ["gw"]

[[route]]
name = "meta"
path = "/meta"
upstream = "{meta}"
preset = "meta"
allow_ips = ["127.0.0.1"]
hmac = {{ secrets = ["{HEXKEY}"] }}
handshake = {{ verify_token = "{VERIFY}" }}

[[route]]
name = "tolq"
path = "/tolq"
upstream = "{tolq}"
allow_ips = ["127.0.0.1"]
token = {{ secrets = ["{LETTERS}"] }}
"#,
        meta = up.url("/meta.php"),
        tolq = up.url("/tolq.php"),
    )
}

/// The log and every console page and JSON of the kept requests (bodies
/// decoded), for the attacks below.
async fn console_and_log(gw: &Gateway) -> Vec<(String, String)> {
    let mut out = vec![("log".to_owned(), gw.log())];
    let list = admin(gw, "/api/requests").await;
    let entries: serde_json::Value = serde_json::from_str(&list).unwrap();
    out.push(("/api/requests".into(), list));
    out.push(("/requests".into(), admin(gw, "/requests").await));
    for e in entries.as_array().unwrap() {
        let id = e["id"].as_u64().unwrap();
        let json = admin(gw, &format!("/api/requests/{id}")).await;
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        if let Some(b64) = v["body_base64"].as_str() {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            out.push((
                format!("body_base64 of {id}"),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
        out.push((format!("/api/requests/{id}"), json));
        out.push((
            format!("/requests/{id}"),
            admin(gw, &format!("/requests/{id}")).await,
        ));
    }
    out
}

/// No output holds `secret` in any ASCII case.
fn assert_hidden_any_case(outputs: &[(String, String)], secret: &str) {
    let lower = secret.to_ascii_lowercase();
    for (place, text) in outputs {
        assert!(
            !text.to_ascii_lowercase().contains(&lower),
            "{secret} (any case) in {place}:\n{}",
            &text[..text.len().min(20_000)]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_sent_as_the_method_is_hidden() {
    let up = Upstream::recording().await;
    let gw = Gateway::start_raw(&small_config(&up), &[("RUST_LOG", "trace")]);
    let addr = gw.http.unwrap();
    for target in ["/tolq/callback", "/meta", "/nowhere"] {
        let (status, text) = http(addr, LETTERS, target, "", b"{}").await;
        assert!(status >= 400, "{target}: {text}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let outputs = console_and_log(&gw).await;
    assert!(outputs[0].1.contains("method=REDACTED"), "{}", outputs[0].1);
    assert_hidden_any_case(&outputs, LETTERS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_in_another_ascii_case_is_hidden() {
    let up = Upstream::recording().await;
    let gw = Gateway::start_raw(&small_config(&up), &[("RUST_LOG", "trace")]);
    let addr = gw.http.unwrap();
    let upper = HEXKEY.to_ascii_uppercase();
    let sends = [
        (format!("X-{LETTERS}: v\r\n"), String::from("{}")),
        (format!("X-Note: {upper}\r\n"), format!("n={upper}")),
        (
            String::new(),
            format!("{{\"k\":\"{}\"}}", LETTERS.to_ascii_lowercase()),
        ),
    ];
    for (head, body) in sends {
        let head = format!("{}{head}", forged());
        let (status, text) = http(addr, "POST", "/meta", &head, body.as_bytes()).await;
        assert!(status >= 400, "{text}");
    }
    let t = format!("/meta?x={}", percent_all(&upper, false));
    let (status, text) = http(addr, "POST", &t, &forged(), b"{}").await;
    assert!(status >= 400, "{text}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let outputs = console_and_log(&gw).await;
    assert!(
        outputs.iter().any(|(_, t)| t.contains("x-REDACTED")),
        "the header name is kept, with the secret hidden"
    );
    assert_hidden_any_case(&outputs, LETTERS);
    assert_hidden_any_case(&outputs, HEXKEY);
}

/// A secret across the 4 KiB line where an entry's kept body is cut is
/// hidden whole: the cut comes after the redaction, so no prefix of it
/// shows (the red team saw 15 of 16 characters in the console).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_across_the_kept_bodys_cut_is_hidden() {
    let up = Upstream::recording().await;
    let gw = Gateway::start_raw(&small_config(&up), &[("RUST_LOG", "trace")]);
    let addr = gw.http.unwrap();
    for secret in [HEXKEY, LETTERS] {
        for before in [4096 - secret.len() + 1, 4096 - 8] {
            let body = format!("{}{secret}zz", "x".repeat(before));
            let (status, text) = http(addr, "POST", "/meta", &forged(), body.as_bytes()).await;
            assert!(status >= 400, "{text}");
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let outputs = console_and_log(&gw).await;
    assert!(
        outputs
            .iter()
            .any(|(p, t)| p.starts_with("body_base64") && t.contains("xxxxREDACTED")),
        "no kept body shows the redaction"
    );
    for secret in [HEXKEY, LETTERS] {
        assert_hidden_any_case(&outputs, &secret[..8]);
    }
}

/// A `whsec_` secret (Standard Webhooks, Svix) is a key in base64: the
/// key is the decoded bytes. The whole `whsec_…` text was hidden, but not
/// its base64 alone nor the key it decodes to, and a request carrying
/// either showed it in the log and the console (red team).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whsec_keys_base64_and_decoded_key_are_hidden() {
    const RAW: &str = "RawKeyBytes-0123456789ABCDEF";
    let b64 = base64::engine::general_purpose::STANDARD.encode(RAW);
    let up = Upstream::recording().await;
    let cfg = format!(
        "{}\n[[route]]\nname = \"sw\"\npath = \"/sw\"\nupstream = \"{}\"\npreset = \"standard-webhooks\"\nhmac = {{ secrets = [\"whsec_{b64}\"] }}\n",
        small_config(&up),
        up.url("/sw.php"),
    );
    let gw = Gateway::start_raw(&cfg, &[("RUST_LOG", "trace")]);
    let addr = gw.http.unwrap();
    for secret in [b64.as_str(), RAW] {
        for target in [format!("/sw?k={secret}"), format!("/nowhere?q={secret}")] {
            let head = format!("X-Note: {secret}\r\n");
            let (status, text) = http(addr, "POST", &target, &head, secret.as_bytes()).await;
            assert!(status >= 400, "{target}: {text}");
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let outputs = console_and_log(&gw).await;
    assert!(outputs[0].1.contains("/sw?k=REDACTED"), "{}", outputs[0].1);
    assert_hidden_any_case(&outputs, &b64);
    assert_hidden_any_case(&outputs, RAW);
}
