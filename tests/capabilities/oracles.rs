//! No answer is a signing oracle (issue 39): a handshake whose answer is
//! computed with the route's key (X's CRC, Zoom's URL validation) never signs
//! a forged event, report-only routes answer no handshake whose checks
//! failed, a tolerance cannot outlive the replay window, Standard Webhooks
//! v1a dedupes on its signed id, and a signature list costs a stranger at
//! most 8 verifications. Real TLS client, real gateway binary, recording
//! upstream; Ed25519 signatures made by openssl.

use callgate_testkit as support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use callgate::crypto::{Algorithm, Encoding};
use http::Method;
use support::{sign, Client, Gateway, Upstream, Version};

const X: &str = "x-consumer-secret-0123456789";
const ZOOM: &str = "zoom-secret-token-0123456789";
const TOKEN: &str = "url-token-0123456789abcdef";

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn url_encoded(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn route(up: &Upstream, name: &str, preset: &str, more: &str) -> String {
    format!(
        "[[route]]\nname = \"{name}\"\npath = \"/{name}\"\nupstream = \"{}\"\npreset = \"{preset}\"\n{more}\n\n",
        up.url(&format!("/{name}"))
    )
}

/// The `response_token` of a CRC answer, as X's signature header value.
fn crc_signature(body: &[u8]) -> String {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap();
    json["response_token"].as_str().unwrap().to_owned()
}

/// An attacker with no key (knowing the URL token at most) asks X's CRC to
/// HMAC a forged event, then sends the event with the answer as its
/// signature. On main the CRC answers any `crc_token`, and the forged event
/// is forwarded as `verified: hmac`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_x_event_cannot_be_signed_through_the_crc() {
    let up = Upstream::recording().await;
    let hmac = format!("hmac = {{ secrets = [\"{X}\"] }}");
    let text = [
        route(
            &up,
            "x",
            "x",
            &format!("{hmac}\ntoken = {{ secrets = [\"{TOKEN}\"] }}"),
        ),
        route(
            &up,
            "xro2",
            "x",
            &format!("{hmac}\ntoken = {{ secrets = [\"{TOKEN}\"] }}\nenforce = false"),
        ),
        // Report-only, its token and address both failing for the attacker.
        route(
            &up,
            "xro",
            "x",
            &format!("{hmac}\ntoken = {{ secrets = [\"{TOKEN}\"] }}\nallow_ips = [\"192.0.2.1\"]\nenforce = false"),
        ),
    ]
    .concat();
    let gw = Gateway::start(&text);
    let c = Client::https(gw.https.unwrap(), Version::H1);
    let get = |path: String| {
        let c = &c;
        async move { c.request(Method::GET, &path, &[], b"").await }
    };
    let event = br#"{"for_user_id":"2244994945","tweet_create_events":[{"text":"forged"}]}"#;
    let forged = std::str::from_utf8(event).unwrap();

    // The CRC of the forged event itself, with the URL token and without
    // it on the report-only route: refused, so there is nothing to send.
    for path in [
        format!("/x?token={TOKEN}&crc_token={}", url_encoded(forged)),
        format!("/xro?crc_token={}", url_encoded(forged)),
        "/xro?crc_token=abc123".to_owned(),
    ] {
        let r = get(path.clone()).await;
        if r.status == 200 {
            let sig = crc_signature(&r.body);
            for at in [format!("/x?token={TOKEN}"), "/xro".to_owned()] {
                let body: &[u8] = match path.contains("abc123") {
                    true => b"abc123",
                    false => event,
                };
                c.post(&at, &[("x-twitter-webhooks-signature", &sig)], body)
                    .await;
            }
        }
        assert_eq!(r.status, 403, "{path}: answered {:?}", r.body);
    }
    // A token X would send is answered; its answer signs no body the route
    // takes (X's events are JSON objects, a token never is one).
    let r = get(format!("/x?token={TOKEN}&crc_token=abc123")).await;
    assert_eq!(r.status, 200);
    let sig = crc_signature(&r.body);
    let r = c
        .post(
            &format!("/x?token={TOKEN}"),
            &[("x-twitter-webhooks-signature", &sig)],
            b"abc123",
        )
        .await;
    assert_eq!(r.status, 403, "the token's own bytes forwarded as an event");
    // The empty token signed the empty body; a GET that is no CRC is 405.
    assert_eq!(
        get(format!("/x?token={TOKEN}&crc_token=")).await.status,
        403
    );
    for path in [
        format!("/x?token={TOKEN}&anything=1"),
        format!("/x?token={TOKEN}"),
    ] {
        let r = c
            .request(
                Method::GET,
                &path,
                &[("x-twitter-webhooks-signature", &sig)],
                b"",
            )
            .await;
        assert_eq!(r.status, 405, "{path}");
    }
    assert_eq!(up.count(), 0, "a forged event reached the receiver");

    // Report-only with every check of the CRC passed: answered, and the
    // token-shaped body it signs is forwarded (report-only) but never as
    // verified by the signature.
    let r = get(format!("/xro2?token={TOKEN}&crc_token=abc123")).await;
    assert_eq!(r.status, 200, "{}", gw.log());
    let sig = crc_signature(&r.body);
    let r = c
        .post(
            &format!("/xro2?token={TOKEN}"),
            &[("x-twitter-webhooks-signature", &sig)],
            b"abc123",
        )
        .await;
    assert_eq!(r.status, 200);
    let seen = up.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers["x-callgate-verified"], "token", "{seen:?}");
    assert_eq!(&seen[0].body[..], b"abc123");

    // X's own events still go through.
    let real = br#"{"for_user_id":"2244994945","favorite_events":[]}"#;
    let sig = format!(
        "sha256={}",
        sign(Algorithm::Sha256, X, Encoding::Base64, real)
    );
    let r = c
        .post(
            &format!("/x?token={TOKEN}"),
            &[("x-twitter-webhooks-signature", &sig)],
            real,
        )
        .await;
    assert_eq!(r.status, 200, "{}", gw.log());
    assert_eq!(up.count(), 2);
}

/// Zoom's validation answers HMAC(secret, plainToken). On main an unsigned
/// validation on a report-only route is answered for
/// `plainToken = "v0:<ts>:<forged event>"`, and the answer is a valid
/// `x-zm-signature` for the forged event on that route and on an enforcing
/// route sharing the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_zoom_event_cannot_be_signed_through_the_validation() {
    let up = Upstream::recording().await;
    let hmac = format!("hmac = {{ secrets = [\"{ZOOM}\"] }}");
    let text = [
        route(
            &up,
            "zoom",
            "zoom",
            &format!("{hmac}\ntoken = {{ secrets = [\"{TOKEN}\"] }}"),
        ),
        route(
            &up,
            "zoomro",
            "zoom",
            &format!("{hmac}\ntoken = {{ secrets = [\"{TOKEN}\"] }}\nenforce = false"),
        ),
    ]
    .concat();
    let gw = Gateway::start(&text);
    let c = Client::https(gw.https.unwrap(), Version::H1);
    let ts = support::now().to_string();
    let event = r#"{"event":"meeting.started","payload":{"object":{"id":"forged"}}}"#;
    let plain = format!("v0:{ts}:{event}");
    let validation = serde_json::json!({
        "payload": { "plainToken": plain },
        "event_ts": 1654503849680u64,
        "event": "endpoint.url_validation"
    })
    .to_string();
    let v0 = |b: &[u8]| {
        format!(
            "v0={}",
            sign(
                Algorithm::Sha256,
                ZOOM,
                Encoding::Hex,
                &[format!("v0:{ts}:").as_bytes(), b].concat()
            )
        )
    };
    // Unsigned, on the report-only route, with and without its token.
    for at in [format!("/zoomro?token={TOKEN}"), "/zoomro".to_owned()] {
        let r = c
            .post(
                &at,
                &[("x-zm-request-timestamp", &ts), ("x-zm-signature", "v0=00")],
                validation.as_bytes(),
            )
            .await;
        if r.status == 200 {
            let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            let sig = format!("v0={}", json["encryptedToken"].as_str().unwrap());
            for to in [
                format!("/zoom?token={TOKEN}"),
                format!("/zoomro?token={TOKEN}"),
            ] {
                c.post(
                    &to,
                    &[("x-zm-request-timestamp", &ts), ("x-zm-signature", &sig)],
                    event.as_bytes(),
                )
                .await;
            }
        }
        assert_eq!(r.status, 403, "{at}: answered {:?}", r.body);
    }
    // Signed (Zoom itself), a plainToken that is a signed string: refused.
    let r = c
        .post(
            &format!("/zoom?token={TOKEN}"),
            &[
                ("x-zm-request-timestamp", &ts),
                ("x-zm-signature", &v0(validation.as_bytes())),
            ],
            validation.as_bytes(),
        )
        .await;
    assert_eq!(r.status, 403, "answered {:?}", r.body);
    assert_eq!(up.count(), 0, "a forged event reached the receiver");

    // Zoom's documented validation, signed, on both routes: answered.
    let doc = br#"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}"#;
    for at in [
        format!("/zoom?token={TOKEN}"),
        format!("/zoomro?token={TOKEN}"),
    ] {
        let r = c
            .post(
                &at,
                &[
                    ("x-zm-request-timestamp", &ts),
                    ("x-zm-signature", &v0(doc)),
                ],
                doc,
            )
            .await;
        assert_eq!(r.status, 200, "{at}: {}", gw.log());
        let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            json["encryptedToken"],
            sign(
                Algorithm::Sha256,
                ZOOM,
                Encoding::Hex,
                b"qgg8vlvZRS6UYooatFL8Aw"
            )
        );
    }
    assert_eq!(up.count(), 0, "a handshake reached the receiver");
}

/// Report-only relaxes nothing for handshakes: X's CRC, Meta's and
/// Dropbox's GETs, Graph's validation and Slack's url_verification are
/// refused (403) when a check of their route failed, and answered when all
/// passed. Nothing reaches the receiver either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_only_route_answers_no_handshake_whose_checks_failed() {
    let up = Upstream::recording().await;
    let ro = format!("token = {{ secrets = [\"{TOKEN}\"] }}\nenforce = false");
    let text = [
        route(&up, "x", "x", &format!("hmac = {{ secrets = [\"{X}\"] }}\n{ro}")),
        route(&up, "meta", "meta", &format!("hmac = {{ secrets = [\"meta-app-secret-0123\"] }}\nhandshake = {{ verify_token = \"meta-verify-0123456789\" }}\n{ro}")),
        route(&up, "dropbox", "dropbox", &format!("hmac = {{ secrets = [\"dropbox-secret-0123\"] }}\n{ro}")),
        route(&up, "graph", "microsoft-graph", &ro),
        route(&up, "slack", "slack", &format!("hmac = {{ secrets = [\"slack-secret-0123456\"] }}\n{ro}")),
    ]
    .concat();
    let gw = Gateway::start(&text);
    let c = Client::https(gw.https.unwrap(), Version::H1);
    let asks = [
        (Method::GET, "/x?crc_token=abc123"),
        (
            Method::GET,
            "/meta?hub.mode=subscribe&hub.challenge=42&hub.verify_token=meta-verify-0123456789",
        ),
        (Method::GET, "/dropbox?challenge=xyz42"),
        (Method::POST, "/graph?validationToken=hello"),
    ];
    for (method, path) in &asks {
        let r = c.request(method.clone(), path, &[], b"").await;
        assert_eq!(r.status, 403, "{path} without the token: {:?}", r.body);
        let sep = if path.contains('?') { '&' } else { '?' };
        let with = format!("{path}{sep}token={TOKEN}");
        let r = c.request(method.clone(), &with, &[], b"").await;
        assert_eq!(r.status, 200, "{with}: {}", gw.log());
    }
    // Slack's url_verification, token passed but unsigned: refused.
    let body = br#"{"challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let ts = support::now().to_string();
    let r = c
        .post(
            &format!("/slack?token={TOKEN}"),
            &[
                ("x-slack-request-timestamp", &ts),
                ("x-slack-signature", "v0=00"),
            ],
            body,
        )
        .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert_eq!(up.count(), 0, "a handshake reached the receiver");
    let log = gw.log();
    assert!(!log.contains(TOKEN), "{log}");
}

fn check(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("callgate.toml");
    std::fs::write(&path, format!("[listen]\nhttp = \"127.0.0.1:0\"\n{text}")).unwrap();
    let (code, out, err) =
        support::gateway::run_cli(&["check", "--config", path.to_str().unwrap()], b"", &[]);
    (code, format!("{out}{err}"))
}

fn route_text(more: &str) -> String {
    format!("[[route]]\nname = \"r\"\npath = \"/r\"\nupstream = \"http://127.0.0.1:9/r\"\n{more}\n")
}

/// A handshake computed with the route's key needs the URL token or
/// allow_ips; an operator's `[[preset]]` may attach one only where its
/// answer can never be a signed string of the scheme; a tolerance may not
/// outlive the replay window. Each is a config error naming the fix.
#[test]
fn configs_that_would_make_an_oracle_or_a_replay_hole_are_refused() {
    for preset in ["x", "zoom"] {
        let (code, out) = check(&route_text(&format!(
            "preset = \"{preset}\"\nhmac = {{ secrets = [\"s-0123456789abcdef\"] }}"
        )));
        assert_ne!(code, 0, "{preset}: {out}");
        assert!(
            out.contains("add token = {") && out.contains("allow_ips"),
            "{preset}: {out}"
        );
        // With a token (or allow_ips) it is fine.
        let (code, out) = check(&route_text(&format!(
            "preset = \"{preset}\"\nhmac = {{ secrets = [\"s-0123456789abcdef\"] }}\nallow_ips = [\"192.0.2.0/24\"]"
        )));
        assert_eq!(code, 0, "{preset}: {out}");
    }
    // A CRC on GitHub's `{body}` scheme signs any token-shaped body.
    let github = "[[preset]]\nname = \"github\"\nhandshake = \"x-crc\"\n[preset.hmac]\nalgorithm = \"sha256\"\nheader = \"x-hub-signature-256\"\nencoding = \"hex\"\n";
    let with_route = format!(
        "{github}\n{}",
        route_text(&format!("preset = \"github\"\nhmac = {{ secrets = [\"s-0123456789abcdef\"] }}\ntoken = {{ secrets = [\"{TOKEN}\"] }}"))
    );
    let (code, out) = check(&with_route);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("payload = \"json-object\""), "{out}");
    // A key-computing handshake with no HMAC of the preset's own.
    let bare = format!("[[preset]]\nname = \"acme\"\nrequires_token = true\nhandshake = \"zoom-url-validation\"\n\n{}", route_text(&format!("preset = \"acme\"\ntoken = {{ secrets = [\"{TOKEN}\"] }}\nhmac = {{ secrets = [\"s-0123456789abcdef\"], algorithm = \"sha256\", header = \"x-sig\" }}")));
    let (code, out) = check(&bare);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("[preset.hmac]"), "{out}");
    // `{timestamp}.{body}`: a token never has a '.', so the spaces are disjoint.
    let stamped = format!("[[preset]]\nname = \"acme\"\nhandshake = \"x-crc\"\n[preset.hmac]\nalgorithm = \"sha256\"\nheader = \"x-sig\"\nencoding = \"hex\"\nsigned = \"{{timestamp}}.{{body}}\"\ntimestamp_header = \"x-ts\"\n\n{}", route_text(&format!("preset = \"acme\"\nhmac = {{ secrets = [\"s-0123456789abcdef\"] }}\ntoken = {{ secrets = [\"{TOKEN}\"] }}")));
    let (code, out) = check(&stamped);
    assert_eq!(code, 0, "{out}");

    // A route sharing the X route's key under a plain `{body}` HMAC would
    // take a CRC answer as a token-shaped body's signature.
    let shared = |other: &str| {
        format!(
            "{}[[route]]\nname = \"plain\"\npath = \"/plain\"\nupstream = \"http://127.0.0.1:9/p\"\nhmac = {{ secrets = [\"{other}\"], algorithm = \"sha256\", header = \"x-sig\" }}\n",
            route_text(&format!("preset = \"x\"\nhmac = {{ secrets = [\"{X}\"] }}\nallow_ips = [\"192.0.2.0/24\"]"))
        )
    };
    let (code, out) = check(&shared(X));
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("its own secret") && !out.contains(X), "{out}");
    let (code, out) = check(&shared("another-secret-0123456789"));
    assert_eq!(code, 0, "{out}");

    // Tolerance longer than the replay window.
    for (preset, key, tolerance, window) in [
        ("discord", "signature = { public_keys = [\"0000000000000000000000000000000000000000000000000000000000000000\"], tolerance = \"1h\" }", "1h", "10m"),
        ("slack", "hmac = { secrets = [\"s-0123456789abcdef\"], tolerance = \"2h\" }", "2h", "1h"),
    ] {
        let (code, out) = check(&route_text(&format!("preset = \"{preset}\"\n{key}")));
        assert_ne!(code, 0, "{preset}: {out}");
        assert!(
            out.contains(&format!("tolerance = \"{tolerance}\""))
                && out.contains(&format!("dedupe_window = \"{window}\"")),
            "{preset}: {out}"
        );
    }
}

fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}");
    out.stdout
}

/// An Ed25519 key pair made by openssl; the raw public key.
fn ed25519(dir: &Path) -> Vec<u8> {
    openssl(dir, &["genpkey", "-algorithm", "ed25519", "-out", "ed.pem"]);
    let der = openssl(
        dir,
        &["pkey", "-in", "ed.pem", "-pubout", "-outform", "DER"],
    );
    der[der.len() - 32..].to_vec()
}

/// Standard Webhooks v1a headers for (id, ts, body), signed by openssl.
fn v1a(dir: &Path, id: &str, ts: &str, body: &[u8]) -> Vec<(String, String)> {
    std::fs::write(
        dir.join("msg.bin"),
        [id.as_bytes(), b".", ts.as_bytes(), b".", body].concat(),
    )
    .unwrap();
    let sig = openssl(
        dir,
        &[
            "pkeyutl", "-sign", "-inkey", "ed.pem", "-rawin", "-in", "msg.bin",
        ],
    );
    vec![
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), ts.into()),
        ("webhook-signature".into(), format!("v1a,{}", b64(&sig))),
    ]
}

fn pairs(h: &[(String, String)]) -> Vec<(&str, &str)> {
    h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// v1a signs its `webhook-id`: a new message whose body was delivered
/// before is a new message (on main it was answered `200 duplicate` and
/// never delivered); the same id again is not delivered twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_v1a_id_with_an_old_body_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let public = ed25519(dir.path());
    let up = Upstream::recording().await;
    let text = route(
        &up,
        "v1a",
        "standard-webhooks-v1a",
        &format!(
            "signature = {{ public_keys = [\"whpk_{}\"] }}",
            b64(&public)
        ),
    );
    let gw = Gateway::start(&text);
    let c = Client::https(gw.https.unwrap(), Version::H1);
    let body = br#"{"type":"invoice.paid","amount":100}"#;
    let ts = support::now().to_string();
    let first = v1a(dir.path(), "msg_first", &ts, body);
    assert_eq!(c.post("/v1a", &pairs(&first), body).await.status, 200);
    let again = c.post("/v1a", &pairs(&first), body).await;
    assert_eq!(up.count(), 1, "the same id delivered twice");
    assert!(again.status.is_success());
    let second = v1a(dir.path(), "msg_second", &ts, body);
    let r = c.post("/v1a", &pairs(&second), body).await;
    assert_eq!(r.status, 200, "{}", gw.log());
    assert_eq!(up.count(), 2, "a new message dropped as a duplicate");
}

/// A signature list of more than 8 entries is 403 before any is verified,
/// even when one entry is valid; 8 with the valid one last pass. The cost
/// of a 150-entry header is measured against a one-entry one (median of
/// 20 each): run with --show-output for the figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_list_of_more_than_8_entries_is_refused_unverified() {
    let dir = tempfile::tempdir().unwrap();
    let public = ed25519(dir.path());
    let up = Upstream::recording().await;
    const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let text = [
        route(
            &up,
            "v1a",
            "standard-webhooks-v1a",
            &format!(
                "signature = {{ public_keys = [\"whpk_{}\"] }}\ndedupe_window = \"0\"",
                b64(&public)
            ),
        ),
        route(
            &up,
            "v1",
            "standard-webhooks",
            &format!("hmac = {{ secrets = [\"{WHSEC}\"] }}\ndedupe_window = \"0\""),
        ),
    ]
    .concat();
    let gw = Gateway::start(&text);
    let c = Client::https(gw.https.unwrap(), Version::H1);
    let body = br#"{"type":"ping"}"#;
    let ts = support::now().to_string();
    let junk = |n: usize, prefix: &str| -> Vec<String> {
        (0..n)
            .map(|i| format!("{prefix}{}", b64(&[i as u8; 64])))
            .collect()
    };
    let list = |good: &str, n: usize, prefix: &str| {
        let mut all = junk(n - 1, prefix);
        all.push(good.to_owned());
        all.join(" ")
    };
    let signed = v1a(dir.path(), "msg_list", &ts, body);
    let good = signed[2].1.clone();
    let key = base64::engine::general_purpose::STANDARD
        .decode(WHSEC.trim_start_matches("whsec_"))
        .unwrap();
    let mac = callgate::crypto::Key::new(Algorithm::Sha256, &key)
        .digest(&[b"msg_list.", ts.as_bytes(), b".", body].concat());
    let good_v1 = format!("v1,{}", b64(&mac));
    for (path, good, prefix) in [("/v1a", &good, "v1a,"), ("/v1", &good_v1, "v1,")] {
        let mut h = signed.clone();
        h[2].1 = list(good, 8, prefix);
        let r = c.post(path, &pairs(&h), body).await;
        assert_eq!(r.status, 200, "{path}: 8 entries {}", gw.log());
        h[2].1 = list(good, 9, prefix);
        let r = c.post(path, &pairs(&h), body).await;
        assert_eq!(r.status, 403, "{path}: 9 entries");
    }
    assert_eq!(up.count(), 2);
}

/// What a stranger's signature list costs: a 150-entry `v1a,` header
/// against a one-entry one, median of 20 requests each on one connection
/// (on main: every entry verified). Run with --show-output for the figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_150_entry_signature_list_costs_no_more_than_twice_one() {
    let dir = tempfile::tempdir().unwrap();
    let public = ed25519(dir.path());
    let up = Upstream::recording().await;
    let text = route(
        &up,
        "v1a",
        "standard-webhooks-v1a",
        &format!(
            "signature = {{ public_keys = [\"whpk_{}\"] }}\ndedupe_window = \"0\"",
            b64(&public)
        ),
    );
    let gw = Gateway::start(&text);
    let c = Client::https(gw.https.unwrap(), Version::H1);
    let body = br#"{"type":"ping"}"#;
    let ts = support::now().to_string();
    let signed = v1a(dir.path(), "msg_cost", &ts, body);
    let junk = |n: usize| -> String {
        let all: Vec<String> = (0..n)
            .map(|i| format!("v1a,{}", b64(&[i as u8; 64])))
            .collect();
        all.join(" ")
    };
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let mut costs = Vec::new();
    for n in [1, 150] {
        let mut h = signed.clone();
        h[2].1 = junk(n);
        let mut session = c.session().await;
        let mut times = Vec::new();
        for _ in 0..20 {
            let start = Instant::now();
            let r = session.post("/v1a", &pairs(&h), body).await.unwrap();
            times.push(start.elapsed());
            assert_eq!(r.status, 403);
        }
        costs.push(median(times));
    }
    println!(
        "signature list cost (median of 20 requests): 1 entry {:?}, 150 entries {:?}",
        costs[0], costs[1]
    );
    assert_eq!(up.count(), 0);
    assert!(
        costs[1] <= costs[0] * 2 + Duration::from_millis(2),
        "150 entries cost {:?}, one {:?}",
        costs[1],
        costs[0]
    );
}
