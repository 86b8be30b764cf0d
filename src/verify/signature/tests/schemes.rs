//! The providers' published vectors, each through its preset's scheme.

use super::super::*;
use crate::config::presets::Preset;
use http::HeaderValue;

fn check(preset: &str, secret: &str) -> HmacCheck {
    HmacCheck::for_preset(Preset::builtin(preset).unwrap(), secret.as_bytes()).unwrap()
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

fn run(
    h: &HmacCheck,
    pairs: &[(&'static str, &str)],
    body: &[u8],
    url: Option<&str>,
    now: i64,
) -> Result<Found, SignatureError> {
    let headers = headers(pairs);
    verify_scheme(
        h,
        &Signable {
            headers: &headers,
            body,
            url,
            now,
            learned: &[],
        },
    )
}

/// docs.github.com, "Validating webhook deliveries", test values.
#[test]
fn github_vector() {
    let h = check("github", "It's a Secret to Everybody");
    let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert!(run(
        &h,
        &[("x-hub-signature-256", sig)],
        b"Hello, World!",
        None,
        0
    )
    .is_ok());
    assert_eq!(
        run(
            &h,
            &[("x-hub-signature-256", sig)],
            b"Hello, World?",
            None,
            0
        ),
        Err(SignatureError::Mismatch)
    );
}

/// api.slack.com, "Verifying requests from Slack", the worked example.
#[test]
fn slack_vector_and_its_window() {
    let h = check("slack", "8f742231b10e8888abcd99yyyzzz85a5");
    let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    let pairs = [
        ("x-slack-request-timestamp", "1531420618"),
        (
            "x-slack-signature",
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        ),
    ];
    assert_eq!(
        run(&h, &pairs, body, None, 1531420618 + 299).unwrap().skew,
        Some(299)
    );
    assert_eq!(
        run(&h, &pairs, body, None, 1531420618 + 301),
        Err(SignatureError::Stale(301))
    );
    assert_eq!(
        run(&h, &pairs, body, None, 1531420618 - 301),
        Err(SignatureError::Future(301))
    );
}

/// The Standard Webhooks reference vector (the spec's libraries' tests).
#[test]
fn standard_webhooks_vector_with_rotation() {
    let h = check(
        "standard-webhooks",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    );
    let body = br#"{"test": 2432232314}"#;
    let pairs = |sig: &'static str| {
        [
            ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
            ("webhook-timestamp", "1614265330"),
            ("webhook-signature", sig),
        ]
    };
    let sig = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    assert!(run(&h, &pairs(sig), body, None, 1614265330).is_ok());
    let rotated = "v1,bm9wZQ== v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    assert!(run(&h, &pairs(rotated), body, None, 1614265330).is_ok());
    assert_eq!(
        run(&h, &pairs(sig), body, None, 1614265330 + 600),
        Err(SignatureError::Stale(600))
    );
    let other_id = [
        ("webhook-id", "msg_other"),
        ("webhook-timestamp", "1614265330"),
        ("webhook-signature", sig),
    ];
    assert_eq!(
        run(&h, &other_id, body, None, 1614265330),
        Err(SignatureError::Mismatch)
    );
    let provided =
        provider_headers(&h, 1614265330, "msg_p5jXN8AQM9LWM0D4loKWxJek", None, body).unwrap();
    assert!(
        provided.contains(&("webhook-signature".into(), sig.into())),
        "{provided:?}"
    );
}

/// twilio.com, "Webhooks security": the worked example, as the docs
/// gave it before and after they changed the phone numbers.
#[test]
fn twilio_vectors() {
    let h = check("twilio", "12345");
    let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    for (phone, sig) in [
        ("%2B12349013030", "0/KCTR6DLpKmkAf8muzZqo1nDgQ="),
        ("%2B14158675310", "GvWf1cFY/Q7PnoempGyD5oXAezc="),
    ] {
        let body = format!(
            "CallSid=CA1234567890ABCDE&Caller={phone}&Digits=1234&From={phone}&To=%2B18005551212"
        );
        assert!(
            run(
                &h,
                &[("x-twilio-signature", sig)],
                body.as_bytes(),
                Some(url),
                0
            )
            .is_ok(),
            "{sig}"
        );
        let other = "https://mycompany.com/myapp.php?foo=1&bar=3";
        assert_eq!(
            run(
                &h,
                &[("x-twilio-signature", sig)],
                body.as_bytes(),
                Some(other),
                0
            ),
            Err(SignatureError::Mismatch)
        );
    }
}

#[test]
fn twilio_json_bodies_are_signed_by_their_digest_in_the_url() {
    let h = check("twilio", "12345");
    let body = br#"{"event":"x"}"#;
    let digest = hex::encode(Sha256::digest(body));
    let url = format!("https://example.com/hook?bodySHA256={digest}");
    let lines = provider_headers(&h, 0, "", Some(&url), body).unwrap();
    let sig = lines
        .iter()
        .find(|(n, _)| n == "x-twilio-signature")
        .unwrap()
        .1
        .clone();
    assert!(run(
        &h,
        &[(
            "x-twilio-signature",
            Box::leak(sig.clone().into_boxed_str())
        )],
        body,
        Some(&url),
        0
    )
    .is_ok());
    assert_eq!(
        run(
            &h,
            &[("x-twilio-signature", Box::leak(sig.into_boxed_str()))],
            b"{}",
            Some(&url),
            0
        ),
        Err(SignatureError::BodyHash)
    );
}

#[test]
fn stripe_checks_only_old_timestamps_and_any_v1() {
    let h = check("stripe", "whsec_stripe_test");
    let body = br#"{"id":"evt_1","object":"event"}"#;
    let lines = provider_headers(&h, 1000, "", None, body).unwrap();
    let value = lines
        .iter()
        .find(|(n, _)| n == "stripe-signature")
        .unwrap()
        .1
        .clone();
    assert!(value.starts_with("t=1000,v1="), "{value}");
    let v: &'static str = Box::leak(value.into_boxed_str());
    assert!(run(&h, &[("stripe-signature", v)], body, None, 1000 + 300).is_ok());
    assert_eq!(
        run(&h, &[("stripe-signature", v)], body, None, 1000 + 301),
        Err(SignatureError::Stale(301))
    );
    assert!(
        run(&h, &[("stripe-signature", v)], body, None, 1000 - 3600).is_ok(),
        "future is Stripe's own business"
    );
    let rotated: &'static str = Box::leak(format!("t=1000,v1=00,{}", &v[7..]).into_boxed_str());
    assert!(run(&h, &[("stripe-signature", rotated)], body, None, 1000).is_ok());
    assert_eq!(
        message_id(h.scheme, &HeaderMap::new(), body).as_deref(),
        Some("evt_1")
    );
}

#[test]
fn tolq_accepts_its_client_librarys_sha1_prefix() {
    let h = check("tolq", "apikey");
    let body = br#"{"id":1}"#;
    let hex = hex::encode(Key::new(Algorithm::Sha1, b"apikey").digest(body));
    let prefixed: &'static str = Box::leak(format!("sha1={hex}").into_boxed_str());
    assert!(run(&h, &[("x-tolq-signature", prefixed)], body, None, 0).is_ok());
}
