//! GitHub, Stripe, Slack, Shopify, Twilio and Standard Webhooks end to end:
//! `callgate sign --preset` plays the provider, the gateway verifies, a
//! recording upstream sees only what passed. Tampered bodies, wrong keys,
//! stale and future timestamps are refused; a rotated key passes; a
//! redelivered message id is answered 200 and not forwarded again.

mod support;

use support::gateway::run_cli;
use support::{Client, Gateway, Upstream, Version};

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WHSEC_OLD: &str = "whsec_b2xkLWtleS1yb3RhdGVkLWF3YXk=";

use support::now;

/// The header lines `callgate sign --preset` prints, as (name, value).
fn sign(
    preset: &str,
    secret: &str,
    body: &[u8],
    ts: i64,
    id: &str,
    url: Option<&str>,
) -> Vec<(String, String)> {
    let ts = ts.to_string();
    let mut args = vec![
        "sign",
        "--preset",
        preset,
        "--secret",
        secret,
        "--timestamp",
        &ts,
        "--id",
        id,
    ];
    if let Some(u) = url {
        args.extend(["--url", u]);
    }
    let (code, out, err) = run_cli(&args, body, &[]);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(|l| {
            let (n, v) = l.split_once(": ").unwrap();
            (n.to_owned(), v.to_owned())
        })
        .collect()
}

fn config(up: &Upstream) -> String {
    let route = |name: &str, preset: &str, secrets: &str| {
        format!(
            "[[route]]\nname = \"{name}\"\npath = \"/{name}\"\nupstream = \"{}\"\npreset = \"{preset}\"\nhmac = {{ secrets = [{secrets}] }}\ndedupe_window = \"1h\"\n\n",
            up.url(&format!("/{name}"))
        )
    };
    [
        route("github", "github", "\"gh-secret-0123456789abcdef\""),
        route("stripe", "stripe", "\"whsec_stripe-0123456789abcdef\""),
        route("slack", "slack", "\"slack-secret-0123456789abcdef\""),
        route("shopify", "shopify", "\"shop-secret-0123456789abcdef\""),
        route("twilio", "twilio", "\"twilio-token-0123456789abcdef\"").replace(
            "preset = \"twilio\"",
            "preset = \"twilio\"\nhost = [\"localhost\"]",
        ),
        route(
            "sw",
            "standard-webhooks",
            &format!("\"{WHSEC}\", \"{WHSEC_OLD}\""),
        ),
    ]
    .concat()
}

struct Case<'a> {
    route: &'a str,
    preset: &'a str,
    secret: &'a str,
    content_type: &'a str,
    body: &'a [u8],
}

const CASES: &[Case<'static>] = &[
    Case {
        route: "github",
        preset: "github",
        secret: "gh-secret-0123456789abcdef",
        content_type: "application/json",
        body: br#"{"action":"opened"}"#,
    },
    Case {
        route: "stripe",
        preset: "stripe",
        secret: "whsec_stripe-0123456789abcdef",
        content_type: "application/json",
        body: br#"{"id":"evt_42","type":"invoice.paid"}"#,
    },
    Case {
        route: "slack",
        preset: "slack",
        secret: "slack-secret-0123456789abcdef",
        content_type: "application/x-www-form-urlencoded",
        body: b"token=x&command=%2Fdeploy",
    },
    Case {
        route: "shopify",
        preset: "shopify",
        secret: "shop-secret-0123456789abcdef",
        content_type: "application/json",
        body: br#"{"order":1}"#,
    },
    Case {
        route: "twilio",
        preset: "twilio",
        secret: "twilio-token-0123456789abcdef",
        content_type: "application/x-www-form-urlencoded",
        body: b"CallSid=CA1&From=%2B15550001111",
    },
    Case {
        route: "sw",
        preset: "standard-webhooks",
        secret: WHSEC,
        content_type: "application/json",
        body: br#"{"type":"user.created"}"#,
    },
];

async fn post(gw: &Gateway, c: &Case<'_>, headers: &[(String, String)], body: &[u8]) -> u16 {
    let mut h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    h.push(("content-type", c.content_type));
    Client::https(gw.https.unwrap(), Version::H1)
        .post(&format!("/{}", c.route), &h, body)
        .await
        .status
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_preset_verifies_as_its_provider_signs() {
    let up = Upstream::recording().await;
    let gw = Gateway::start(&config(&up));
    let url = |route: &str| format!("https://localhost:{}/{route}", gw.https_port());
    for (i, c) in CASES.iter().enumerate() {
        let id = format!("msg-{i}");
        let twilio_url = (c.route == "twilio").then(|| url(c.route));
        let good = sign(
            c.preset,
            c.secret,
            c.body,
            now(),
            &id,
            twilio_url.as_deref(),
        );
        assert_eq!(
            post(&gw, c, &good, c.body).await,
            200,
            "{}: a valid callback",
            c.route
        );
        let mut tampered = c.body.to_vec();
        tampered[2] ^= 1;
        assert_eq!(
            post(&gw, c, &good, &tampered).await,
            403,
            "{}: tampered body",
            c.route
        );
        let wrong_secret = if c.preset == "standard-webhooks" {
            "whsec_d3Jvbmc="
        } else {
            "wrong"
        };
        let wrong = sign(
            c.preset,
            wrong_secret,
            c.body,
            now(),
            &id,
            twilio_url.as_deref(),
        );
        assert_eq!(
            post(&gw, c, &wrong, c.body).await,
            403,
            "{}: wrong key",
            c.route
        );
    }
    // Each valid one reached its upstream once.
    let paths: Vec<String> = up
        .requests()
        .iter()
        .map(|r| r.uri.path().to_owned())
        .collect();
    assert_eq!(
        paths,
        ["/github", "/stripe", "/slack", "/shopify", "/twilio", "/sw"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_outside_the_tolerance_are_replays() {
    let up = Upstream::recording().await;
    let gw = Gateway::start(&config(&up));
    for c in CASES
        .iter()
        .filter(|c| ["stripe", "slack", "sw"].contains(&c.route))
    {
        let stale = sign(c.preset, c.secret, c.body, now() - 600, "msg-stale", None);
        assert_eq!(
            post(&gw, c, &stale, c.body).await,
            403,
            "{}: 10 minutes old",
            c.route
        );
        let future = sign(c.preset, c.secret, c.body, now() + 600, "msg-future", None);
        let want = if c.route == "stripe" { 200 } else { 403 };
        assert_eq!(
            post(&gw, c, &future, c.body).await,
            want,
            "{}: 10 minutes ahead",
            c.route
        );
    }
    let log = gw.wait_for_log("over the tolerance");
    assert!(log.contains("reason=\"hmac: timestamp 60"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_passes_and_a_redelivered_id_is_not_forwarded_twice() {
    let up = Upstream::recording().await;
    let gw = Gateway::start(&config(&up));
    let sw = CASES.iter().find(|c| c.route == "sw").unwrap();
    // The key being rotated out still verifies.
    let old = sign(sw.preset, WHSEC_OLD, sw.body, now(), "msg-rot", None);
    assert_eq!(post(&gw, sw, &old, sw.body).await, 200);
    // A redelivery: same id, new timestamp and signature.
    let again = sign(sw.preset, WHSEC, sw.body, now() + 1, "msg-rot", None);
    let r = Client::https(gw.https.unwrap(), Version::H2)
        .post(
            "/sw",
            &again
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
            sw.body,
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), &r.body[..]),
        (200, &b"duplicate: already delivered\n"[..])
    );
    // GitHub: the same delivery id is the same delivery; so is the same
    // signed body under a new (unsigned) delivery id.
    let gh = CASES.iter().find(|c| c.route == "github").unwrap();
    let first = sign(gh.preset, gh.secret, gh.body, now(), "guid-1", None);
    assert_eq!(post(&gw, gh, &first, gh.body).await, 200);
    let body2 = br#"{"action":"opened","retry":true}"#;
    let second = sign(gh.preset, gh.secret, body2, now(), "guid-1", None);
    assert_eq!(post(&gw, gh, &second, body2).await, 200);
    let other = sign(gh.preset, gh.secret, gh.body, now(), "guid-2", None);
    assert_eq!(post(&gw, gh, &other, gh.body).await, 200);
    assert_eq!(up.count(), 2, "only the first of each reached the upstream");
}

#[test]
fn explain_says_which_check_fails_and_why_without_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("callgate.toml");
    std::fs::write(
        &config,
        "[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"gh\"\npath = \"/gh\"\nupstream = \"http://127.0.0.1:9/\"\npreset = \"github\"\nallow_ips = [\"192.30.252.0/22\"]\nhmac = { secrets = [\"gh-old-secret-0123456789abcdef\", \"gh-secret-0123456789abcdef\"] }\n\n[[route]]\nname = \"slack\"\npath = \"/slack\"\nupstream = \"http://127.0.0.1:9/\"\npreset = \"slack\"\nhmac = { secrets = [\"slack-secret-0123456789abcdef\"] }\n",
    )
    .unwrap();
    let capture = |name: &str, target: &str, headers: &[(String, String)], body: &[u8]| {
        let mut raw = format!(
            "POST {target} HTTP/1.1\r\nHost: hooks.example.com\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            raw.push_str(&format!("{k}: {v}\r\n"));
        }
        raw.push_str("\r\n");
        let path = dir.path().join(name);
        std::fs::write(&path, [raw.as_bytes(), body].concat()).unwrap();
        path.display().to_string()
    };
    let cfg = config.display().to_string();
    let body = br#"{"action":"opened"}"#;
    let good = capture(
        "good.http",
        "/gh",
        &sign(
            "github",
            "gh-secret-0123456789abcdef",
            body,
            now(),
            "d-1",
            None,
        ),
        body,
    );
    let (code, out, err) = run_cli(
        &[
            "explain",
            "--config",
            &cfg,
            "--route",
            "gh",
            "--request",
            &good,
            "--from",
            "192.30.252.7",
        ],
        b"",
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("hmac    pass  key #1 matches (sha256 hex)"),
        "{out}"
    );
    assert!(
        out.contains("ip      pass  192.30.252.7 is in allow_ips"),
        "{out}"
    );
    // Tampered, from elsewhere: two failures, each with its reason.
    let tampered = capture(
        "bad.http",
        "/gh",
        &sign(
            "github",
            "gh-secret-0123456789abcdef",
            body,
            now(),
            "d-1",
            None,
        ),
        br#"{"action":"closed"}"#,
    );
    let (code, out, err) = run_cli(
        &[
            "explain",
            "--config",
            &cfg,
            "--route",
            "gh",
            "--request",
            &tampered,
            "--from",
            "203.0.113.9",
        ],
        b"",
        &[],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("ip      FAIL  203.0.113.9 is not in allow_ips"),
        "{out}"
    );
    assert!(
        out.contains("no key gives this signature (2 key(s) tried, sha256 hex)"),
        "{out}"
    );
    assert!(err.contains("would refuse"), "{err}");
    // A stale Slack request: the skew is told.
    let slack = capture(
        "stale.http",
        "/slack",
        &sign(
            "slack",
            "slack-secret-0123456789abcdef",
            b"x=1",
            now() - 900,
            "",
            None,
        ),
        b"x=1",
    );
    let (code, out, _) = run_cli(
        &[
            "explain",
            "--config",
            &cfg,
            "--route",
            "slack",
            "--request",
            &slack,
        ],
        b"",
        &[],
    );
    assert_eq!(code, 1);
    // 900 s, or a second more if the clock ticked between signing and explaining.
    assert!(
        out.contains("FAIL  timestamp 90") && out.contains(" s old, over the tolerance"),
        "{out}"
    );
    for secret in [
        "gh-secret-0123456789abcdef",
        "gh-old-secret-0123456789abcdef",
        "slack-secret-0123456789abcdef",
    ] {
        assert!(!out.contains(secret), "a secret was printed");
    }
}

/// Twilio signs the URL it called: a request signed for another site
/// (staging) and sent here with that site's Host is never accepted, since a
/// twilio route must name its host (or its public URL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twilio_request_signed_for_another_host_is_not_accepted() {
    let up = Upstream::recording().await;
    let gw = Gateway::start(&config(&up));
    let body = b"CallSid=CA1&From=%2B15550001111";
    let staging = format!(
        "https://hooks-staging.example.com:{}/twilio",
        gw.https_port()
    );
    let headers = sign(
        "twilio",
        "twilio-token-0123456789abcdef",
        body,
        now(),
        "id-1",
        Some(&staging),
    );
    let mut req = format!(
        "POST /twilio HTTP/1.1\r\nHost: hooks-staging.example.com:{}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n",
        gw.https_port(),
        body.len()
    );
    for (n, v) in &headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    let (statuses, text) = Client::https(gw.https.unwrap(), Version::H1)
        .raw(&bytes)
        .await;
    assert_eq!(statuses, [404], "{text}");
    assert_eq!(up.count(), 0);
}

/// A request signed by the `svix` library itself, under Svix's own header
/// names, passes the svix preset (and Clerk's and Resend's, which are Svix).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_svix_library_signs_and_svix_presets_accept() {
    let up = Upstream::recording().await;
    let mut text = String::new();
    for name in ["svix", "clerk", "resend"] {
        text.push_str(&format!(
            "[[route]]\nname = \"{name}\"\npath = \"/{name}\"\nupstream = \"{}\"\npreset = \"{name}\"\nhmac = {{ secrets = [\"{WHSEC}\"] }}\n\n",
            up.url(&format!("/{name}"))
        ));
    }
    let gw = Gateway::start(&text);
    let c = Client::https(gw.https.unwrap(), Version::H1);
    for (i, name) in ["svix", "clerk", "resend"].iter().enumerate() {
        let body = format!("{{\"type\":\"user.created\",\"n\":{i}}}");
        let h = support::signers::sign(
            "svix-headers",
            WHSEC,
            &format!("msg_{name}"),
            now(),
            "",
            body.as_bytes(),
        );
        let hs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let r = c.post(&format!("/{name}"), &hs, body.as_bytes()).await;
        assert_eq!(r.status, 200, "{name}: {}", gw.log());
        let mut forged = hs.clone();
        forged.retain(|(k, _)| *k != "svix-signature");
        forged.push(("svix-signature", "v1,AAAA"));
        assert_eq!(
            c.post(&format!("/{name}"), &forged, body.as_bytes())
                .await
                .status,
            403
        );
    }
    assert_eq!(up.count(), 3);
}
