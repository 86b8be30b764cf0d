//! Providers' endpoint checks answered by callgate itself, from the route's
//! secrets, as each provider documents them; the receiver never sees one,
//! while the provider's real (signed) deliveries still reach it.

use callgate_testkit as support;

use base64::Engine;
use callgate::crypto::{Algorithm, Encoding};
use http::Method;
use support::{sign, Client, Gateway, Upstream, Version};

const SLACK: &str = "slack-signing-secret-0123456789";
const ZOOM: &str = "zoom-secret-token-0123456789";
const META_APP: &str = "meta-app-secret-0123456789";
const META_VERIFY: &str = "meta-verify-token-0123456789";
const X: &str = "x-consumer-secret-0123456789";
const DROPBOX: &str = "dropbox-app-secret-0123456789";

fn now() -> String {
    support::now().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_checks_are_answered_at_the_edge_and_deliveries_go_through() {
    let up = Upstream::recording().await;
    let route = |name: &str, more: &str| {
        format!("[[route]]\nname = \"{name}\"\npath = \"/{name}\"\nupstream = \"{}\"\npreset = \"{name}\"\n{more}\n\n", up.url(&format!("/{name}")))
    };
    let text = [
        route("slack", &format!("hmac = {{ secrets = [\"{SLACK}\"] }}")),
        // Their answers are HMACs under the route's key: only the provider may ask.
        route("zoom", &format!("hmac = {{ secrets = [\"{ZOOM}\"] }}\nallow_ips = [\"127.0.0.1\"]")),
        route("meta", &format!("hmac = {{ secrets = [\"{META_APP}\"] }}\nhandshake = {{ verify_token = \"{META_VERIFY}\" }}")),
        route("x", &format!("hmac = {{ secrets = [\"{X}\"] }}\nallow_ips = [\"127.0.0.1\"]")),
        route("dropbox", &format!("hmac = {{ secrets = [\"{DROPBOX}\"] }}")),
    ]
    .concat();
    let gw = Gateway::start(&text);
    let c = Client::https(gw.https.unwrap(), Version::H1);

    // Slack url_verification (its documented body), signed v0:ts:body.
    let ts = now();
    let body = br#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let v0 = |secret: &str, b: &[u8]| {
        format!(
            "v0={}",
            sign(
                Algorithm::Sha256,
                secret,
                Encoding::Hex,
                &[format!("v0:{ts}:").as_bytes(), b].concat()
            )
        )
    };
    let r = c
        .post(
            "/slack",
            &[
                ("x-slack-request-timestamp", &ts),
                ("x-slack-signature", &v0(SLACK, body)),
            ],
            body,
        )
        .await;
    assert_eq!(r.status, 200);
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        json["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );
    // Unsigned, it is no handshake: refused.
    let r = c
        .post(
            "/slack",
            &[
                ("x-slack-request-timestamp", &ts),
                ("x-slack-signature", "v0=00"),
            ],
            body,
        )
        .await;
    assert_eq!(r.status, 403);

    // Zoom endpoint.url_validation (its documented body).
    let body = br#"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}"#;
    let r = c
        .post(
            "/zoom",
            &[
                ("x-zm-request-timestamp", &ts),
                ("x-zm-signature", &v0(ZOOM, body)),
            ],
            body,
        )
        .await;
    assert_eq!(r.status, 200);
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(json["plainToken"], "qgg8vlvZRS6UYooatFL8Aw");
    assert_eq!(
        json["encryptedToken"],
        sign(
            Algorithm::Sha256,
            ZOOM,
            Encoding::Hex,
            b"qgg8vlvZRS6UYooatFL8Aw"
        )
    );

    // Meta's verification GET: the challenge only with the right verify token.
    let get = |path: String| {
        let c = &c;
        async move { c.request(Method::GET, &path, &[], b"").await }
    };
    let r = get(format!(
        "/meta?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={META_VERIFY}"
    ))
    .await;
    assert_eq!((r.status.as_u16(), &r.body[..]), (200, &b"1158201444"[..]));
    let r = get("/meta?hub.mode=subscribe&hub.challenge=1&hub.verify_token=guess".into()).await;
    assert_eq!(r.status, 403);

    // X's CRC: sha256= base64 HMAC-SHA256(consumer secret, crc_token).
    let r = get("/x?crc_token=abc123".into()).await;
    assert_eq!(r.status, 200);
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let mac = base64::engine::general_purpose::STANDARD
        .encode(callgate::crypto::Key::new(Algorithm::Sha256, X.as_bytes()).digest(b"abc123"));
    assert_eq!(json["response_token"], format!("sha256={mac}"));

    // Dropbox's challenge, echoed as text.
    let r = get("/dropbox?challenge=xyz-42".into()).await;
    assert_eq!((r.status.as_u16(), &r.body[..]), (200, &b"xyz-42"[..]));
    assert_eq!(r.headers["x-content-type-options"], "nosniff");

    assert_eq!(up.count(), 0, "no handshake reached the receiver");

    // Real deliveries still go through, verified.
    let body = br#"{"list_folder":{"accounts":["dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"]}}"#;
    let sig = sign(Algorithm::Sha256, DROPBOX, Encoding::Hex, body);
    let r = c
        .post("/dropbox", &[("x-dropbox-signature", &sig)], body)
        .await;
    assert_eq!(r.status, 200);
    let meta = br#"{"object":"page","entry":[]}"#;
    let sig = format!(
        "sha256={}",
        sign(Algorithm::Sha256, META_APP, Encoding::Hex, meta)
    );
    let r = c
        .post("/meta", &[("x-hub-signature-256", &sig)], meta)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(up.count(), 2);
    // A GET that is no handshake is refused, not forwarded.
    assert_eq!(get("/dropbox".into()).await.status, 403);
    assert_eq!(up.count(), 2);
}

#[test]
fn meta_needs_its_verify_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("callgate.toml");
    std::fs::write(
        &path,
        format!("[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"m\"\npath = \"/m\"\nupstream = \"http://127.0.0.1:9/\"\npreset = \"meta\"\nhmac = {{ secrets = [\"{META_APP}\"] }}\n"),
    )
    .unwrap();
    let (code, _, err) =
        support::gateway::run_cli(&["check", "--config", path.to_str().unwrap()], b"", &[]);
    assert_ne!(code, 0);
    assert!(err.contains("handshake = { verify_token"), "{err}");
}

/// Microsoft Graph: creating or renewing a subscription POSTs
/// `?validationToken=…` (documented example below, empty text/plain body)
/// and wants the decoded token back as text within 10 s; callgate answers it
/// once the route's URL token passed, and the receiver never sees it. Real
/// notifications (JSON) are forwarded; without the URL token nothing is
/// answered or forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn microsoft_graphs_validation_is_answered_at_the_edge() {
    const TOKEN: &str = "graph-url-token-0123456789";
    let up = Upstream::recording().await;
    let text = format!(
        "[[route]]\nname = \"graph\"\npath = \"/graph\"\nupstream = \"{}\"\npreset = \"microsoft-graph\"\ntoken = {{ secrets = [\"{TOKEN}\"] }}\n",
        up.url("/graph")
    );
    let gw = Gateway::start(&text);
    let c = Client::https(gw.https.unwrap(), Version::H1);
    let validation = "Validation%3A%20Testing%20client%20application%20reachability%20for%20subscription%20Request-Id%3A%2001234567-89ab-cdef-0123-456789abcdef";
    let r = c
        .post(
            &format!("/graph?token={TOKEN}&validationToken={validation}"),
            &[("content-type", "text/plain; charset=utf-8")],
            b"",
        )
        .await;
    assert_eq!(r.status, 200, "{}", gw.log());
    assert_eq!(
        std::str::from_utf8(&r.body).unwrap(),
        "Validation: Testing client application reachability for subscription Request-Id: 01234567-89ab-cdef-0123-456789abcdef"
    );
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    assert_eq!(up.count(), 0, "the validation reached the receiver");

    // Without the route's token: refused, neither answered nor forwarded.
    let r = c
        .post(&format!("/graph?validationToken={validation}"), &[], b"")
        .await;
    assert_eq!(r.status, 403);
    // A notification goes through to the receiver.
    let note = br#"{"value":[{"subscriptionId":"s-1","clientState":"secretClientValue","changeType":"created"}]}"#;
    let r = c
        .post(
            &format!("/graph?token={TOKEN}"),
            &[("content-type", "application/json")],
            note,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(up.count(), 1);
    let log = gw.wait_for_log("handshake");
    assert!(log.contains("handshake"), "{log}");
}

/// Asana hands its signing secret over in an unsigned POST (`X-Hook-Secret`)
/// and signs every event with it (`X-Hook-Signature`, hex HMAC-SHA256 of
/// the body). callgate keeps the secret (the route's URL token guarding the
/// handshake), echoes it, and checks events with it from then on, across
/// reloads and restarts; the receiver sees only verified events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asanas_handshake_secret_is_kept_and_checks_its_events() {
    const TOKEN: &str = "asana-url-token-0123456789";
    // developers.asana.com/reference/createwebhook: the handshake example.
    const SECRET: &str = "b537207f20cbfa02357cf448134da559e8bd39d61597dcd5631b8012eae53e81";
    const SECOND: &str = "9f0c1e2d3b4a5968778695a4b3c2d1e0f0e1d2c3b4a5968778695a4b3c2d1e0f";
    let up = Upstream::recording().await;
    let state = tempfile::tempdir().unwrap();
    let file = state.path().join("state/asana.secrets");
    let text = format!(
        "[[route]]\nname = \"asana\"\npath = \"/asana\"\nupstream = \"{}\"\npreset = \"asana\"\ntoken = {{ secrets = [\"{TOKEN}\"] }}\nhandshake = {{ secret_file = {:?} }}\n",
        up.url("/asana"),
        file.display().to_string()
    );
    let gw = Gateway::start(&text);
    gw.wait_for_log("signed events are refused until");
    let c = Client::https(gw.https.unwrap(), Version::H1);
    let event =
        br#"{"events":[{"action":"changed","resource":{"gid":"1199","resource_type":"task"}}]}"#;
    let signed = |secret: &str| sign(Algorithm::Sha256, secret, Encoding::Hex, event);
    let at = format!("/asana?token={TOKEN}");

    // Before any handshake, no key: even a correctly signed event is refused.
    let r = c
        .post(&at, &[("x-hook-signature", &signed(SECRET))], event)
        .await;
    assert_eq!(r.status, 403);
    // A handshake without the URL token (or with a wrong one) keeps nothing.
    for path in ["/asana", "/asana?token=guess-guess-guess-guess"] {
        let r = c.post(path, &[("x-hook-secret", SECRET)], b"").await;
        assert_eq!(r.status, 403, "{path}");
        assert!(!r.headers.contains_key("x-hook-secret"));
    }
    assert!(!file.exists(), "a secret kept without the token");
    // A secret callgate could not keep safely: refused.
    let r = c.post(&at, &[("x-hook-secret", "a b")], b"").await;
    assert_eq!(r.status, 403);

    // The handshake: kept (0600), echoed, never forwarded.
    let r = c.post(&at, &[("x-hook-secret", SECRET)], b"").await;
    assert_eq!(r.status, 200, "{}", gw.log());
    assert_eq!(r.headers["x-hook-secret"], SECRET);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(up.count(), 0, "the handshake reached the receiver");

    // Events signed with it pass; others do not.
    let r = c
        .post(&at, &[("x-hook-signature", &signed(SECRET))], event)
        .await;
    assert_eq!(r.status, 200, "{}", gw.log());
    assert_eq!(up.count(), 1);
    assert_eq!(&up.requests()[0].body[..], event);
    let r = c
        .post(&at, &[("x-hook-signature", &signed(SECOND))], event)
        .await;
    assert_eq!(r.status, 403);

    // A second webhook to the same URL: both secrets check events.
    let r = c.post(&at, &[("x-hook-secret", SECOND)], b"").await;
    assert_eq!(r.status, 200);
    let other = br#"{"events":[{"action":"added","resource":{"gid":"1200"}}]}"#;
    let sig = sign(Algorithm::Sha256, SECOND, Encoding::Hex, other);
    let r = c.post(&at, &[("x-hook-signature", &sig)], other).await;
    assert_eq!(r.status, 200);

    // A reload keeps them (read back from the file).
    gw.signal("HUP");
    gw.wait_for_log("config reloaded");
    let third = br#"{"events":[{"action":"removed","resource":{"gid":"1201"}}]}"#;
    let sig = sign(Algorithm::Sha256, SECRET, Encoding::Hex, third);
    let r = c.post(&at, &[("x-hook-signature", &sig)], third).await;
    assert_eq!(r.status, 200, "{}", gw.log());
    assert_eq!(up.count(), 3);
    let log = gw.log();
    assert!(!log.contains(SECRET) && !log.contains(SECOND), "{log}");
    drop(gw);

    // So does a restart; `check` counts them without showing them.
    let gw = Gateway::start(&text);
    let c = Client::https(gw.https.unwrap(), Version::H1);
    let fourth = br#"{"events":[{"action":"deleted","resource":{"gid":"1202"}}]}"#;
    let sig = sign(Algorithm::Sha256, SECOND, Encoding::Hex, fourth);
    let r = c.post(&at, &[("x-hook-signature", &sig)], fourth).await;
    assert_eq!(r.status, 200, "{}", gw.log());
    assert_eq!(up.count(), 4);
    let cfg = gw.config_dir().join("callgate.toml");
    let (code, out, err) =
        support::gateway::run_cli(&["check", "--config", cfg.to_str().unwrap()], b"", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2 key(s) handed over"), "{out}");
    assert!(!out.contains(SECRET) && !err.contains(SECRET), "{out}{err}");
}
