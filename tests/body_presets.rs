//! The providers that sign the body (or `t.body`) with an HMAC in one
//! header, each as its documentation describes it, signed by openssl (an
//! implementation independent of callgate's) and sent through the gateway:
//! the right signature passes, another body does not.

use callgate_testkit as support;

use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine;
use support::{Client, Gateway, Upstream, Version};

/// name, header, digest, encoding, prefix on the value, timestamped (`t=…,v1=…` over `t.body`).
const DOCUMENTED: &[(&str, &str, &str, &str, &str, bool)] = &[
    (
        "typeform",
        "Typeform-Signature",
        "sha256",
        "base64",
        "sha256=",
        false,
    ),
    ("linear", "Linear-Signature", "sha256", "hex", "", false),
    ("lemon-squeezy", "X-Signature", "sha256", "hex", "", false),
    (
        "sentry",
        "Sentry-Hook-Signature",
        "sha256",
        "hex",
        "",
        false,
    ),
    (
        "coinbase-commerce",
        "X-CC-Webhook-Signature",
        "sha256",
        "hex",
        "",
        false,
    ),
    (
        "bitbucket",
        "X-Hub-Signature",
        "sha256",
        "hex",
        "sha256=",
        false,
    ),
    ("vercel", "x-vercel-signature", "sha1", "hex", "", false),
    ("intercom", "X-Hub-Signature", "sha1", "hex", "sha1=", false),
    (
        "woocommerce",
        "X-WC-Webhook-Signature",
        "sha256",
        "base64",
        "",
        false,
    ),
    ("gitea", "X-Gitea-Signature", "sha256", "hex", "", false),
    ("gogs", "X-Gogs-Signature", "sha256", "hex", "", false),
    ("segment", "X-Signature", "sha1", "hex", "", false),
    (
        "docusign",
        "X-DocuSign-Signature-1",
        "sha256",
        "base64",
        "",
        false,
    ),
    (
        "calendly",
        "Calendly-Webhook-Signature",
        "sha256",
        "hex",
        "",
        true,
    ),
    ("mux", "Mux-Signature", "sha256", "hex", "", true),
];

/// HMAC of `message` under `key` by openssl.
fn openssl_hmac(digest: &str, key: &str, message: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(["dgst", &format!("-{digest}"), "-hmac", key, "-binary"])
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
        .map(|(name, ..)| {
            format!("[[route]]\nname = \"{name}\"\npath = \"/{name}\"\nupstream = \"{}\"\npreset = \"{name}\"\nhmac = {{ secrets = [\"{key}\"] }}\n\n", up.url(&format!("/{name}")))
        })
        .collect();
    let gw = Gateway::start(&text);
    let c = Client::https(gw.https.unwrap(), Version::H1);
    let ts = support::now().to_string();
    for (i, (name, header, digest, encoding, prefix, timed)) in DOCUMENTED.iter().enumerate() {
        let body = format!("{{\"event\":\"test\",\"n\":{i}}}");
        let message = match timed {
            true => format!("{ts}.{body}"),
            false => body.clone(),
        };
        let mac = openssl_hmac(digest, key, message.as_bytes());
        let encoded = match *encoding {
            "hex" => hex::encode(&mac),
            _ => base64::engine::general_purpose::STANDARD.encode(&mac),
        };
        let value = match timed {
            true => format!("t={ts},v1={encoded}"),
            false => format!("{prefix}{encoded}"),
        };
        let r = c
            .post(&format!("/{name}"), &[(header, &value)], body.as_bytes())
            .await;
        assert_eq!(r.status, 200, "{name}: {}", gw.log());
        let r = c
            .post(
                &format!("/{name}"),
                &[(header, &value)],
                b"{\"event\":\"forged\"}",
            )
            .await;
        assert_eq!(r.status, 403, "{name}: another body");
    }
    assert_eq!(up.count(), DOCUMENTED.len());
    let (_, out, _) = support::gateway::run_cli(&["presets"], b"", &[]);
    for (name, ..) in DOCUMENTED {
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
