//! GitHub, Stripe, Slack, Shopify, Twilio and Standard Webhooks end to end:
//! `callgate sign --preset` plays the provider, the gateway verifies, a
//! recording upstream sees only what passed. Tampered bodies, wrong keys,
//! stale and future timestamps are refused; a rotated key passes; a
//! redelivered message id is answered 200 and not forwarded again.

use callgate_testkit as support;

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
    support::signers::cli(preset, secret)
        .timestamp(ts)
        .id(id)
        .url(url)
        .headers(body)
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
/// names, passes the svix preset (and Clerk's, Resend's and Stytch's, which are Svix).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_svix_library_signs_and_svix_presets_accept() {
    let up = Upstream::recording().await;
    let mut text = String::new();
    for name in ["svix", "clerk", "resend", "stytch"] {
        text.push_str(&format!(
            "[[route]]\nname = \"{name}\"\npath = \"/{name}\"\nupstream = \"{}\"\npreset = \"{name}\"\nhmac = {{ secrets = [\"{WHSEC}\"] }}\n\n",
            up.url(&format!("/{name}"))
        ));
    }
    let gw = Gateway::start(&text);
    let c = Client::https(gw.https.unwrap(), Version::H1);
    for (i, name) in ["svix", "clerk", "resend", "stytch"].iter().enumerate() {
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
    assert_eq!(up.count(), 4);
}
