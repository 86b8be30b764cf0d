use super::*;
use crate::crypto::encode;
use base64::engine::general_purpose::STANDARD;

// RFC 2202 test case 2 and RFC 4231 test case 2: key "Jefe".
const JEFE_BODY: &[u8] = b"what do ya want for nothing?";
const JEFE_SHA1: &str = "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79";
const JEFE_SHA256: &str = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";

fn keys(alg: Algorithm, secrets: &[&str]) -> Vec<Key> {
    secrets
        .iter()
        .map(|s| Key::new(alg, s.as_bytes()))
        .collect()
}

#[test]
fn digests_match_the_rfc_vectors() {
    assert_eq!(
        hex::encode(Key::new(Algorithm::Sha1, b"Jefe").digest(JEFE_BODY)),
        JEFE_SHA1
    );
    assert_eq!(
        hex::encode(Key::new(Algorithm::Sha256, b"Jefe").digest(JEFE_BODY)),
        JEFE_SHA256
    );
}

#[test]
fn hex_is_accepted_in_either_case() {
    let k = keys(Algorithm::Sha1, &["Jefe"]);
    for claim in [JEFE_SHA1.to_owned(), JEFE_SHA1.to_uppercase()] {
        assert_eq!(
            verify(
                &k,
                Algorithm::Sha1,
                Encoding::Hex,
                claim.as_bytes(),
                JEFE_BODY
            ),
            Ok(())
        );
    }
}

#[test]
fn algorithm_prefix_is_accepted_only_for_the_route_algorithm() {
    let k = keys(Algorithm::Sha1, &["Jefe"]);
    let good = format!("sha1={JEFE_SHA1}");
    let upper = format!("SHA1={JEFE_SHA1}");
    let wrong = format!("sha256={JEFE_SHA1}");
    let unknown = format!("md5={JEFE_SHA1}");
    assert_eq!(
        verify(
            &k,
            Algorithm::Sha1,
            Encoding::Hex,
            good.as_bytes(),
            JEFE_BODY
        ),
        Ok(())
    );
    assert_eq!(
        verify(
            &k,
            Algorithm::Sha1,
            Encoding::Hex,
            upper.as_bytes(),
            JEFE_BODY
        ),
        Ok(())
    );
    assert_eq!(
        verify(
            &k,
            Algorithm::Sha1,
            Encoding::Hex,
            wrong.as_bytes(),
            JEFE_BODY
        ),
        Err(SignatureError::WrongAlgorithm("sha256", "sha1"))
    );
    assert!(matches!(
        verify(
            &k,
            Algorithm::Sha1,
            Encoding::Hex,
            unknown.as_bytes(),
            JEFE_BODY
        ),
        Err(SignatureError::Malformed(_))
    ));
}

#[test]
fn base64_with_or_without_padding() {
    let k = keys(Algorithm::Sha256, &["Jefe"]);
    let digest = hex::decode(JEFE_SHA256).unwrap();
    let padded = STANDARD.encode(&digest);
    assert!(padded.ends_with('='));
    let bare = padded.trim_end_matches('=');
    for claim in [padded.as_str(), bare] {
        assert_eq!(
            verify(
                &k,
                Algorithm::Sha256,
                Encoding::Base64,
                claim.as_bytes(),
                JEFE_BODY
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                &k,
                Algorithm::Sha256,
                Encoding::Auto,
                claim.as_bytes(),
                JEFE_BODY
            ),
            Ok(())
        );
    }
    let prefixed = format!("sha256={padded}");
    assert_eq!(
        verify(
            &k,
            Algorithm::Sha256,
            Encoding::Base64,
            prefixed.as_bytes(),
            JEFE_BODY
        ),
        Ok(())
    );
}

#[test]
fn auto_accepts_hex_and_base64_but_not_garbage() {
    let k = keys(Algorithm::Sha1, &["Jefe"]);
    let b64 = STANDARD.encode(hex::decode(JEFE_SHA1).unwrap());
    assert_eq!(
        verify(
            &k,
            Algorithm::Sha1,
            Encoding::Auto,
            JEFE_SHA1.as_bytes(),
            JEFE_BODY
        ),
        Ok(())
    );
    assert_eq!(
        verify(
            &k,
            Algorithm::Sha1,
            Encoding::Auto,
            b64.as_bytes(),
            JEFE_BODY
        ),
        Ok(())
    );
    assert!(matches!(
        verify(&k, Algorithm::Sha1, Encoding::Auto, b"zz", JEFE_BODY),
        Err(SignatureError::Malformed(_))
    ));
}

#[test]
fn encoding_is_strict_when_not_auto() {
    let k = keys(Algorithm::Sha1, &["Jefe"]);
    let b64 = STANDARD.encode(hex::decode(JEFE_SHA1).unwrap());
    assert!(matches!(
        verify(
            &k,
            Algorithm::Sha1,
            Encoding::Hex,
            b64.as_bytes(),
            JEFE_BODY
        ),
        Err(SignatureError::Malformed("hex"))
    ));
    assert!(matches!(
        verify(
            &k,
            Algorithm::Sha1,
            Encoding::Base64,
            JEFE_SHA1.as_bytes(),
            JEFE_BODY
        ),
        Err(SignatureError::Malformed("base64"))
    ));
}

#[test]
fn truncated_or_extended_signatures_are_malformed() {
    let k = keys(Algorithm::Sha1, &["Jefe"]);
    for claim in [&JEFE_SHA1[..39], &JEFE_SHA1[..38], ""] {
        assert!(matches!(
            verify(
                &k,
                Algorithm::Sha1,
                Encoding::Hex,
                claim.as_bytes(),
                JEFE_BODY
            ),
            Err(SignatureError::Malformed(_))
        ));
    }
    let long = format!("{JEFE_SHA1}00");
    assert!(verify(
        &k,
        Algorithm::Sha1,
        Encoding::Hex,
        long.as_bytes(),
        JEFE_BODY
    )
    .is_err());
}

#[test]
fn surrounding_blanks_are_ignored() {
    let k = keys(Algorithm::Sha1, &["Jefe"]);
    let claim = format!(" \t{JEFE_SHA1} ");
    assert_eq!(
        verify(
            &k,
            Algorithm::Sha1,
            Encoding::Hex,
            claim.as_bytes(),
            JEFE_BODY
        ),
        Ok(())
    );
}

#[test]
fn any_rotated_key_passes_and_others_fail() {
    let k = keys(Algorithm::Sha1, &["old", "Jefe"]);
    assert_eq!(
        verify(
            &k,
            Algorithm::Sha1,
            Encoding::Hex,
            JEFE_SHA1.as_bytes(),
            JEFE_BODY
        ),
        Ok(())
    );
    let k = keys(Algorithm::Sha1, &["old", "other"]);
    assert_eq!(
        verify(
            &k,
            Algorithm::Sha1,
            Encoding::Hex,
            JEFE_SHA1.as_bytes(),
            JEFE_BODY
        ),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn a_flipped_bit_in_body_or_signature_fails() {
    let k = keys(Algorithm::Sha1, &["Jefe"]);
    let mut body = JEFE_BODY.to_vec();
    body[0] ^= 1;
    assert_eq!(
        verify(
            &k,
            Algorithm::Sha1,
            Encoding::Hex,
            JEFE_SHA1.as_bytes(),
            &body
        ),
        Err(SignatureError::Mismatch)
    );
    let mut claim = JEFE_SHA1.as_bytes().to_vec();
    claim[39] = if claim[39] == b'9' { b'8' } else { b'9' };
    assert_eq!(
        verify(&k, Algorithm::Sha1, Encoding::Hex, &claim, JEFE_BODY),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn sha512_round_trips_through_encode() {
    let k = Key::new(Algorithm::Sha512, b"k");
    let sig = encode(&k.digest(b"body"), Encoding::Base64);
    assert_eq!(
        verify(
            &[k],
            Algorithm::Sha512,
            Encoding::Base64,
            sig.as_bytes(),
            b"body"
        ),
        Ok(())
    );
}

mod schemes {
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
            let body = format!("CallSid=CA1234567890ABCDE&Caller={phone}&Digits=1234&From={phone}&To=%2B18005551212");
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
}

mod properties {
    use super::super::*;
    use crate::config::presets::Preset;
    use http::HeaderValue;
    use proptest::prelude::*;

    /// Every built-in preset that signs with an HMAC.
    fn signing() -> Vec<Preset> {
        Preset::all()
            .filter(|p| p.defaults().hmac.is_some())
            .collect()
    }

    fn check(p: Preset) -> HmacCheck {
        let whsec = p
            .defaults()
            .hmac
            .is_some_and(|h| h.scheme.key == crate::config::presets::KeyForm::Whsec);
        let secret: &[u8] = if whsec {
            b"whsec_c2VjcmV0LWtleS1ieXRlcw=="
        } else {
            b"secret"
        };
        HmacCheck::for_preset(p, secret).unwrap()
    }

    proptest! {
        #[test]
        fn what_a_provider_signs_verifies_and_any_change_does_not(
            which in 0..64usize,
            body in prop::collection::vec(any::<u8>(), 0..300),
            ts in 1_000_000_000i64..2_000_000_000,
            id in "[A-Za-z0-9_-]{1,30}",
            flip in any::<prop::sample::Index>(),
        ) {
            let all = signing();
            let preset = all[which % all.len()];
            let h = check(preset);
            let url = "https://example.com/hook?x=1";
            let lines = provider_headers(&h, ts, &id, Some(url), &body).unwrap();
            let mut headers = HeaderMap::new();
            for (k, v) in &lines {
                headers.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
            }
            let req = Signable { headers: &headers, body: &body, url: Some(url), now: ts, learned: &[] };
            prop_assert!(verify_scheme(&h, &req).is_ok());
            if !body.is_empty() && !preset.signs_url() {
                let mut changed = body.clone();
                changed[flip.index(body.len())] ^= 0x20;
                let req = Signable { body: &changed, ..req };
                prop_assert!(verify_scheme(&h, &req).is_err());
            }
        }

        #[test]
        fn any_header_value_gets_a_verdict_and_never_passes(
            which in 0..64usize,
            value in "[ -~]{0,200}",
            ts in "[0-9]{0,12}",
        ) {
            let all = signing();
            let preset = all[which % all.len()];
            let h = check(preset);
            let mut headers = HeaderMap::new();
            headers.insert(h.header.clone(), HeaderValue::from_str(&value).unwrap());
            for name in ["x-slack-request-timestamp", "webhook-timestamp"] {
                headers.insert(name, HeaderValue::from_str(&ts).unwrap());
            }
            headers.insert("webhook-id", HeaderValue::from_static("msg_1"));
            let req = Signable { headers: &headers, body: b"fixed body", url: Some("https://x/"), now: 1_700_000_000, learned: &[] };
            prop_assert!(verify_scheme(&h, &req).is_err());
        }
    }
}
