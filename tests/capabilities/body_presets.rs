//! The providers that sign the body (or `t.body`) with an HMAC in one
//! header, each as its documentation describes it, signed by openssl (an
//! implementation independent of callgate's) and sent through the gateway:
//! the right signature passes, another body does not.

use callgate_testkit as support;

use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine;
use support::{Client, Gateway, Upstream, Version};

/// How one provider signs, as its documentation describes it: name,
/// signature header, digest, encoding, the header's value around the
/// signature (`{sig}`, `{ts}`), the signed string (`{body}`, `{ts}`) and
/// the header carrying the timestamp, when apart.
struct Documented {
    name: &'static str,
    header: &'static str,
    digest: &'static str,
    encoding: &'static str,
    value: &'static str,
    message: &'static str,
    ts_header: Option<&'static str>,
}

const fn body(
    name: &'static str,
    header: &'static str,
    digest: &'static str,
    encoding: &'static str,
    value: &'static str,
) -> Documented {
    Documented {
        name,
        header,
        digest,
        encoding,
        value,
        message: "{body}",
        ts_header: None,
    }
}

const DOCUMENTED: &[Documented] = &[
    body(
        "typeform",
        "Typeform-Signature",
        "sha256",
        "base64",
        "sha256={sig}",
    ),
    body("linear", "Linear-Signature", "sha256", "hex", "{sig}"),
    body("lemon-squeezy", "X-Signature", "sha256", "hex", "{sig}"),
    body("sentry", "Sentry-Hook-Signature", "sha256", "hex", "{sig}"),
    body(
        "coinbase-commerce",
        "X-CC-Webhook-Signature",
        "sha256",
        "hex",
        "{sig}",
    ),
    body(
        "bitbucket",
        "X-Hub-Signature",
        "sha256",
        "hex",
        "sha256={sig}",
    ),
    body("vercel", "x-vercel-signature", "sha1", "hex", "{sig}"),
    body("intercom", "X-Hub-Signature", "sha1", "hex", "sha1={sig}"),
    body(
        "woocommerce",
        "X-WC-Webhook-Signature",
        "sha256",
        "base64",
        "{sig}",
    ),
    body("gitea", "X-Gitea-Signature", "sha256", "hex", "{sig}"),
    body("gogs", "X-Gogs-Signature", "sha256", "hex", "{sig}"),
    body("segment", "X-Signature", "sha1", "hex", "{sig}"),
    body(
        "docusign",
        "X-DocuSign-Signature-1",
        "sha256",
        "base64",
        "{sig}",
    ),
    body("paystack", "x-paystack-signature", "sha512", "hex", "{sig}"),
    body("razorpay", "X-Razorpay-Signature", "sha256", "hex", "{sig}"),
    body(
        "heroku",
        "Heroku-Webhook-Hmac-SHA256",
        "sha256",
        "base64",
        "{sig}",
    ),
    body(
        "notion",
        "X-Notion-Signature",
        "sha256",
        "hex",
        "sha256={sig}",
    ),
    body("xero", "x-xero-signature", "sha256", "base64", "{sig}"),
    body("intuit", "intuit-signature", "sha256", "base64", "{sig}"),
    body("cal-com", "X-Cal-Signature-256", "sha256", "hex", "{sig}"),
    body("webex", "X-Spark-Signature", "sha1", "hex", "{sig}"),
    body("pusher", "X-Pusher-Signature", "sha256", "hex", "{sig}"),
    body(
        "hookdeck",
        "x-hookdeck-signature",
        "sha256",
        "base64",
        "{sig}",
    ),
    body("onfido", "X-SHA2-Signature", "sha256", "hex", "{sig}"),
    body(
        "circleci",
        "circleci-signature",
        "sha256",
        "hex",
        "v1={sig}",
    ),
    body("forgejo", "X-Forgejo-Signature", "sha256", "hex", "{sig}"),
    body("gocardless", "Webhook-Signature", "sha256", "hex", "{sig}"),
    body("checkout-com", "Cko-Signature", "sha256", "hex", "{sig}"),
    body(
        "dwolla",
        "X-Request-Signature-SHA-256",
        "sha256",
        "hex",
        "{sig}",
    ),
    body("alchemy", "X-Alchemy-Signature", "sha256", "hex", "{sig}"),
    body(
        "todoist",
        "X-Todoist-Hmac-SHA256",
        "sha256",
        "base64",
        "{sig}",
    ),
    body("clickup", "X-Signature", "sha256", "hex", "{sig}"),
    body("mailersend", "Signature", "sha256", "hex", "{sig}"),
    body("tally", "Tally-Signature", "sha256", "base64", "{sig}"),
    body("acuity", "X-Acuity-Signature", "sha256", "base64", "{sig}"),
    body(
        "helpscout",
        "X-HelpScout-Signature",
        "sha1",
        "base64",
        "{sig}",
    ),
    body(
        "pagerduty",
        "X-PagerDuty-Signature",
        "sha256",
        "hex",
        "v1={sig}",
    ),
    body(
        "grafana",
        "X-Grafana-Alerting-Signature",
        "sha256",
        "hex",
        "{sig}",
    ),
    body("jira", "X-Hub-Signature", "sha256", "hex", "sha256={sig}"),
    Documented {
        name: "calendly",
        header: "Calendly-Webhook-Signature",
        digest: "sha256",
        encoding: "hex",
        value: "t={ts},v1={sig}",
        message: "{ts}.{body}",
        ts_header: None,
    },
    Documented {
        name: "mux",
        header: "Mux-Signature",
        digest: "sha256",
        encoding: "hex",
        value: "t={ts},v1={sig}",
        message: "{ts}.{body}",
        ts_header: None,
    },
    Documented {
        name: "buildkite",
        header: "X-Buildkite-Signature",
        digest: "sha256",
        encoding: "hex",
        value: "timestamp={ts},signature={sig}",
        message: "{ts}.{body}",
        ts_header: None,
    },
    Documented {
        name: "persona",
        header: "Persona-Signature",
        digest: "sha256",
        encoding: "hex",
        value: "t={ts},v1={sig}",
        message: "{ts}.{body}",
        ts_header: None,
    },
    Documented {
        name: "elevenlabs",
        header: "ElevenLabs-Signature",
        digest: "sha256",
        encoding: "hex",
        value: "t={ts},v0={sig}",
        message: "{ts}.{body}",
        ts_header: None,
    },
    Documented {
        name: "customer-io",
        header: "X-CIO-Signature",
        digest: "sha256",
        encoding: "hex",
        value: "{sig}",
        message: "v0:{ts}:{body}",
        ts_header: Some("X-CIO-Timestamp"),
    },
];

/// HMAC of `message` under `key` (any bytes) by openssl.
fn openssl_hmac(digest: &str, key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(["dgst", &format!("-{digest}"), "-mac", "HMAC", "-macopt"])
        .arg(format!("hexkey:{}", hex::encode(key)))
        .arg("-binary")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl runs");
    child.stdin.take().unwrap().write_all(message).unwrap();
    child.wait_with_output().unwrap().stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_body_hmac_preset_verifies_its_providers_signature() {
    let up = Upstream::recording().await;
    let key = "provider-signing-secret-0123456789";
    let text: String = DOCUMENTED
        .iter()
        .map(|Documented { name, .. }| {
            format!("[[route]]\nname = \"{name}\"\npath = \"/{name}\"\nupstream = \"{}\"\npreset = \"{name}\"\nhmac = {{ secrets = [\"{key}\"] }}\n\n", up.url(&format!("/{name}")))
        })
        .collect();
    let gw = Gateway::start(&text);
    let c = Client::https(gw.https.unwrap(), Version::H1);
    let ts = support::now().to_string();
    for (i, d) in DOCUMENTED.iter().enumerate() {
        let name = d.name;
        let body = format!("{{\"event\":\"test\",\"n\":{i}}}");
        let message = d.message.replace("{ts}", &ts).replace("{body}", &body);
        let mac = openssl_hmac(d.digest, key.as_bytes(), message.as_bytes());
        let encoded = match d.encoding {
            "hex" => hex::encode(&mac),
            _ => base64::engine::general_purpose::STANDARD.encode(&mac),
        };
        let value = d.value.replace("{ts}", &ts).replace("{sig}", &encoded);
        let mut headers = vec![(d.header, value.as_str())];
        if let Some(h) = d.ts_header {
            headers.push((h, &ts));
        }
        let r = c.post(&format!("/{name}"), &headers, body.as_bytes()).await;
        assert_eq!(r.status, 200, "{name}: {}", gw.log());
        let r = c
            .post(&format!("/{name}"), &headers, b"{\"event\":\"forged\"}")
            .await;
        assert_eq!(r.status, 403, "{name}: another body");
    }
    assert_eq!(up.count(), DOCUMENTED.len());
    let (_, out, _) = support::gateway::run_cli(&["presets"], b"", &[]);
    for Documented { name, .. } in DOCUMENTED {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("{name} "))),
            "{name} not listed"
        );
    }
    println!(
        "body presets: {} providers verified against openssl's HMAC",
        DOCUMENTED.len()
    );
}

/// OpenAI and Replicate sign as Standard Webhooks do: `id.timestamp.body`
/// under the base64-decoded `whsec_` key, `v1,<base64>` entries; openssl
/// signs, the gateway verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_webhooks_providers_verify_an_openssl_signature() {
    let up = Upstream::recording().await;
    let raw_key = b"standard-webhooks-key-0123456789";
    let whsec = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(raw_key)
    );
    let names = ["openai", "replicate"];
    let text: String = names
        .iter()
        .map(|name| format!("[[route]]\nname = \"{name}\"\npath = \"/{name}\"\nupstream = \"{}\"\npreset = \"{name}\"\nhmac = {{ secrets = [\"{whsec}\"] }}\n\n", up.url(&format!("/{name}"))))
        .collect();
    let gw = Gateway::start(&text);
    let c = Client::https(gw.https.unwrap(), Version::H1);
    let ts = support::now().to_string();
    for name in names {
        let id = format!("msg_{name}_1");
        let body = format!("{{\"type\":\"response.completed\",\"from\":\"{name}\"}}");
        let mac = openssl_hmac("sha256", raw_key, format!("{id}.{ts}.{body}").as_bytes());
        let sig = format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac)
        );
        let headers = [
            ("webhook-id", id.as_str()),
            ("webhook-timestamp", ts.as_str()),
            ("webhook-signature", sig.as_str()),
        ];
        let r = c.post(&format!("/{name}"), &headers, body.as_bytes()).await;
        assert_eq!(r.status, 200, "{name}: {}", gw.log());
        let other_id = [("webhook-id", "msg_other"), headers[1], headers[2]];
        let r = c
            .post(&format!("/{name}"), &other_id, body.as_bytes())
            .await;
        assert_eq!(r.status, 403, "{name}: the id is signed");
    }
    assert_eq!(up.count(), 2);
}

/// Mandrill signs the URL it called followed by each POST parameter,
/// sorted by name, as name+value (base64 HMAC-SHA1); openssl signs that
/// string, the gateway rebuilds it from `public_url` and the form it read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mandrill_signs_the_url_and_sorted_form_parameters() {
    let up = Upstream::recording().await;
    let key = "mandrill-webhook-key-0123456789";
    let public = "https://hooks.example.com";
    let text = format!(
        "[[route]]\nname = \"mandrill\"\npath = \"/mandrill\"\nupstream = \"{}\"\npreset = \"mandrill\"\nhmac = {{ secrets = [\"{key}\"], public_url = \"{public}\" }}\n",
        up.url("/mandrill")
    );
    let gw = Gateway::start(&text);
    let c = Client::https(gw.https.unwrap(), Version::H1);
    let events = r#"[{"event":"send","_id":"abc"}]"#;
    let body = format!(
        "mandrill_events={}&extra=1",
        form_urlencoded::byte_serialize(events.as_bytes()).collect::<String>()
    );
    // Sorted by name: extra, then mandrill_events.
    let signed = format!("{public}/mandrill?x=1extra1mandrill_events{events}");
    let mac = openssl_hmac("sha1", key.as_bytes(), signed.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac);
    let form = ("content-type", "application/x-www-form-urlencoded");
    // The signed URL passes; another URL (x=2) does not.
    for (target, want) in [("/mandrill?x=1", 200), ("/mandrill?x=2", 403)] {
        let headers = [form, ("X-Mandrill-Signature", sig.as_str())];
        let r = c.post(target, &headers, body.as_bytes()).await;
        assert_eq!(r.status, want, "{target}: {}", gw.log());
    }
    assert_eq!(up.count(), 1);
}

/// An operator describes a provider callgate does not know with
/// `[[preset]]` (the schema `callgate presets show` prints) and routes use
/// it by name; a built-in one can be overridden the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_own_preset_verifies_through_the_gateway() {
    let up = Upstream::recording().await;
    let key = "acme-signing-secret-0123456789";
    let text = format!(
        r#"
[[preset]]
name = "acme-corp"
summary = "ACME: X-Acme-Signature: t=...,s=<base64> over t.body"
dedupe_window = "1h"
[preset.hmac]
algorithm = "sha512"
header = "X-Acme-Signature"
encoding = "base64"
signed = "{{timestamp}}.{{body}}"
claims = "fields"
signature_field = "s"
timestamp_field = "t"

[[route]]
name = "acme"
path = "/acme"
upstream = "{}"
preset = "acme-corp"
hmac = {{ secrets = ["{key}"] }}
"#,
        up.url("/acme")
    );
    let gw = Gateway::start(&text);
    let c = Client::https(gw.https.unwrap(), Version::H1);
    let ts = support::now().to_string();
    let body = br#"{"order":42}"#;
    let mac = openssl_hmac(
        "sha512",
        key.as_bytes(),
        &[ts.as_bytes(), b".", body].concat(),
    );
    let value = format!(
        "t={ts},s={}",
        base64::engine::general_purpose::STANDARD.encode(mac)
    );
    let r = c.post("/acme", &[("X-Acme-Signature", &value)], body).await;
    assert_eq!(r.status, 200, "{}", gw.log());
    // The preset's replay window: the same signed callback again is not forwarded.
    let r = c.post("/acme", &[("X-Acme-Signature", &value)], body).await;
    assert_eq!(r.status, 200);
    let stale = format!("t=1000000000,s={}", value.split(",s=").nth(1).unwrap());
    let r = c.post("/acme", &[("X-Acme-Signature", &stale)], body).await;
    assert_eq!(r.status, 403, "an old timestamp");
    assert_eq!(up.count(), 1);
}
