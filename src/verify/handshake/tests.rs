use super::*;

#[test]
fn asanas_documented_handshake_hands_over_its_secret() {
    // developers.asana.com/reference/createwebhook: the handshake example.
    let secret = "b537207f20cbfa02357cf448134da559e8bd39d61597dcd5631b8012eae53e81";
    let mut h = http::HeaderMap::new();
    assert!(handed_over(&h).is_none());
    h.insert("X-Hook-Secret", secret.parse().unwrap());
    assert_eq!(handed_over(&h).unwrap().unwrap(), secret.as_bytes());
    h.append("X-Hook-Secret", secret.parse().unwrap());
    assert!(handed_over(&h).unwrap().is_err(), "two secrets: which one?");
    h.insert("X-Hook-Secret", "short".parse().unwrap());
    assert!(handed_over(&h).unwrap().is_err());
}
use crate::crypto::Algorithm;

#[test]
fn each_handshake_is_answered_as_its_provider_documents() {
    let key = Key::new(Algorithm::Sha256, b"zoom-secret-token-0123456789");
    // Zoom: encryptedToken = hex HMAC-SHA256(secret token, plainToken).
    let zoom = br#"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}"#;
    let want = hex::encode(key.digest(b"qgg8vlvZRS6UYooatFL8Aw"));
    match answer_post(Handshake::ZoomUrlValidation, zoom, Some(&key)) {
        Some(Reply::Ok(_, body)) => {
            assert!(
                body.contains(&want) && body.contains("qgg8vlvZRS6UYooatFL8Aw"),
                "{body}"
            )
        }
        other => panic!("{other:?}"),
    }
    // Slack's documented url_verification.
    let slack = br#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    assert_eq!(
        answer_post(Handshake::SlackUrlVerification, slack, None),
        Some(Reply::Ok(
            "application/json",
            r#"{"challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}"#.into()
        ))
    );
    assert_eq!(
        answer_post(
            Handshake::SlackUrlVerification,
            br#"{"type":"event_callback"}"#,
            None
        ),
        None
    );
    // Meta: the challenge, only with the configured verify token.
    let token = Secret::from(b"meta-verify-token-0123".to_vec());
    let q = "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meta-verify-token-0123";
    assert_eq!(
        answer_get(Handshake::MetaVerifyToken, Some(q), None, Some(&token)),
        Some(Reply::Ok("text/plain", "1158201444".into()))
    );
    let wrong = "hub.mode=subscribe&hub.challenge=1&hub.verify_token=guess";
    assert_eq!(
        answer_get(Handshake::MetaVerifyToken, Some(wrong), None, Some(&token)),
        Some(Reply::Refused(Refusal::Token(
            crate::verify::TokenFailure::Mismatch
        )))
    );
    // X: sha256= base64 HMAC-SHA256(consumer secret, crc_token).
    let x = Key::new(Algorithm::Sha256, b"x-consumer-secret-0123456789");
    let mac = base64::engine::general_purpose::STANDARD.encode(x.digest(b"abc"));
    assert_eq!(
        answer_get(Handshake::XCrc, Some("crc_token=abc"), Some(&x), None),
        Some(Reply::Ok(
            "application/json",
            format!("{{\"response_token\":\"sha256={mac}\"}}")
        ))
    );
    // Dropbox: the challenge as it came.
    assert_eq!(
        answer_get(
            Handshake::DropboxChallenge,
            Some("challenge=xyz"),
            None,
            None
        ),
        Some(Reply::Ok("text/plain", "xyz".into()))
    );
    assert_eq!(
        answer_get(Handshake::DropboxChallenge, Some("other=1"), None, None),
        None
    );
    // Microsoft Graph: the validationToken, URL-decoded, as text.
    let q = "validationToken=Validation%3A%20Testing%20client%20application%20reachability";
    assert_eq!(
        answer_get(Handshake::GraphValidation, Some(q), None, None),
        Some(Reply::Ok(
            "text/plain",
            "Validation: Testing client application reachability".into()
        ))
    );
    assert_eq!(
        answer_get(Handshake::GraphValidation, Some("token=t"), None, None),
        None
    );
}

/// The attacker's side of every handshake: for a message it wants
/// delivered, it hands the message's signed string to the handshake as its
/// input, and tries every digest in the answer as the message's signature.
mod oracle {
    use std::sync::Arc;

    use proptest::prelude::*;
    use proptest::test_runner::{Config as Cases, TestCaseError, TestRunner};

    use super::super::{answer_get, answer_post, Reply};
    use crate::config::presets::{Handshake, Preset};
    use crate::config::{Config, Route};
    use crate::verify::signature::{decode_claim, provider_headers, signed_string, Signable};
    use crate::verify::{finish, precheck};

    const TOKEN: &str = "url-token-0123456789abcdef";
    const VERIFY: &str = "meta-verify-token-0123456789";
    const NOW: i64 = 1_700_000_000;
    const URL: &str = "https://www.example.com/r?token=url-token-0123456789abcdef";

    /// Operator presets: every handshake on every signed-string template,
    /// with and without a JSON-object payload.
    fn operator_presets() -> Vec<String> {
        let handshakes = [
            "x-crc",
            "zoom-url-validation",
            "slack-url-verification",
            "meta-verify-token",
            "dropbox-challenge",
            "microsoft-graph-validation",
        ];
        let templates = [
            "{body}",
            "{timestamp}.{body}",
            "{id}.{timestamp}.{body}",
            "v0:{timestamp}:{body}",
            "{url}{params}",
        ];
        let mut out = Vec::new();
        for (i, h) in handshakes.iter().enumerate() {
            for (j, t) in templates.iter().enumerate() {
                for (k, payload) in ["", "payload = \"json-object\"\n"].iter().enumerate() {
                    let ts = if t.contains("{timestamp}") {
                        "timestamp_header = \"x-ts\"\n"
                    } else {
                        ""
                    };
                    let id = if t.contains("{id}") {
                        "id_header = \"x-id\"\n"
                    } else {
                        ""
                    };
                    let enc = ["hex", "base64"][(i + j + k) % 2];
                    out.push(format!("[[preset]]\nname = \"op-{i}-{j}-{k}\"\nhandshake = \"{h}\"\n{payload}[preset.hmac]\nalgorithm = \"sha256\"\nheader = \"x-sig\"\nencoding = \"{enc}\"\nsigned = \"{t}\"\n{ts}{id}"));
                }
            }
        }
        out
    }

    /// One route for a preset, with everything its config may ask for.
    fn route_for(
        name: &str,
        preset_text: &str,
        dir: &std::path::Path,
    ) -> Result<Arc<Route>, String> {
        let def = match preset_text.is_empty() {
            true => Preset::builtin(name).map(|p| p.defaults()),
            false => None,
        };
        let hmac = match def.is_none_or(|d| d.hmac.is_some()) {
            true => match def.and_then(|d| d.hmac).map(|h| h.scheme.key) {
                Some(crate::config::presets::KeyForm::Whsec) => "hmac = { secrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"] }\n".to_owned(),
                _ => "hmac = { secrets = [\"route-key-0123456789abcdef\"], public_url = \"https://www.example.com\" }\n".to_owned(),
            },
            false => String::new(),
        };
        let hmac = match name == "asana" {
            true => String::new(),
            false => hmac,
        };
        let handshake = match name {
            "meta" => format!("handshake = {{ verify_token = \"{VERIFY}\" }}\n"),
            "asana" => format!(
                "handshake = {{ secret_file = {:?} }}\n",
                dir.join("asana.secrets").display().to_string()
            ),
            _ if preset_text.contains("meta-verify-token") => {
                format!("handshake = {{ verify_token = \"{VERIFY}\" }}\n")
            }
            _ => String::new(),
        };
        let text = format!("[listen]\nhttp = \"127.0.0.1:0\"\n{preset_text}\n[[route]]\nname = \"r\"\npath = \"/r\"\nupstream = \"http://127.0.0.1:9/r\"\npreset = \"{name}\"\ntoken = {{ secrets = [\"{TOKEN}\"] }}\n{hmac}{handshake}");
        let config =
            Config::from_str(&text, std::path::Path::new("t.toml")).map_err(|e| e.to_string())?;
        let route = config.routes.iter().next().expect("one route").clone();
        Ok(route)
    }

    /// Every preset with a handshake: the built-in ones (which must load)
    /// and the operator ones the config accepts (a refused one is safe).
    fn routes(dir: &std::path::Path) -> Vec<(String, Arc<Route>)> {
        let mut out = Vec::new();
        for p in Preset::all().filter(|p| p.defaults().handshake.is_some()) {
            let route =
                route_for(p.name(), "", dir).unwrap_or_else(|e| panic!("{}: {e}", p.name()));
            out.push((p.name().to_owned(), route));
        }
        for text in operator_presets() {
            let name = text.split('"').nth(1).expect("a name").to_owned();
            if let Ok(route) = route_for(&name, &text, dir) {
                out.push((text, route));
            }
        }
        out
    }

    fn enc(s: &[u8]) -> String {
        form_urlencoded::byte_serialize(s).collect()
    }

    /// The handshake's answer to the attacker's input, as text (empty when
    /// it is not answered).
    fn answer(kind: Handshake, route: &Route, input: &str) -> String {
        let key = route.hmac.as_ref().and_then(|h| h.keys.first());
        let verify = route.handshake.as_ref().and_then(|(_, t)| t.as_ref());
        let got = match kind {
            Handshake::XCrc => answer_get(kind, Some(&format!("crc_token={}", enc(input.as_bytes()))), key, verify),
            Handshake::DropboxChallenge => answer_get(kind, Some(&format!("challenge={}", enc(input.as_bytes()))), key, verify),
            Handshake::GraphValidation => answer_get(kind, Some(&format!("validationToken={}", enc(input.as_bytes()))), key, verify),
            Handshake::MetaVerifyToken => answer_get(kind, Some(&format!("hub.mode=subscribe&hub.verify_token={VERIFY}&hub.challenge={}", enc(input.as_bytes()))), key, verify),
            Handshake::SlackUrlVerification => answer_post(kind, serde_json::json!({"type": "url_verification", "challenge": input}).to_string().as_bytes(), key),
            Handshake::ZoomUrlValidation => answer_post(kind, serde_json::json!({"event": "endpoint.url_validation", "payload": {"plainToken": input}}).to_string().as_bytes(), key),
            // The secret handed over is echoed: the caller's own bytes.
            Handshake::AsanaHookSecret => return input.to_owned(),
        };
        match got {
            Some(Reply::Ok(_, body)) => body,
            _ => String::new(),
        }
    }

    /// Whether the request (message + claimed signature) passes the route.
    fn passes(route: &Route, headers: &http::HeaderMap, body: &[u8]) -> bool {
        let uri: http::Uri = format!("/r?token={TOKEN}").parse().unwrap();
        let client = "127.0.0.1".parse().unwrap();
        let req = Signable {
            headers,
            body,
            url: Some(URL),
            now: NOW,
            learned: &[],
        };
        precheck(route, client, &uri, &crate::config::NoLists)
            .and_then(|pre| finish(route, pre, &req))
            .is_ok()
    }

    /// One attack: the message's signed string as the handshake's input;
    /// every digest of the answer as the message's signature.
    fn attack(label: &str, route: &Route, body: &[u8], id: &str) -> Result<(), TestCaseError> {
        let Some((kind, _)) = route.handshake else {
            return Ok(());
        };
        let Some(h) = route.hmac.as_ref().filter(|h| !h.keys.is_empty()) else {
            return Ok(());
        };
        let lines = provider_headers(h, NOW, id, Some(URL), body)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut headers = http::HeaderMap::new();
        for (k, v) in &lines {
            headers.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let ts = NOW.to_string();
        let req = Signable {
            headers: &headers,
            body,
            url: Some(URL),
            now: NOW,
            learned: &[],
        };
        let stamped = h.scheme.timed().then_some(ts.as_bytes());
        let signed = signed_string(h.scheme, &req, stamped)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let Ok(input) = String::from_utf8(signed) else {
            return Ok(());
        };
        let real = crate::crypto::encode(&h.keys[0].digest(input.as_bytes()), h.encoding);
        let text = answer(kind, route, &input);
        let candidates = text.split(|c: char| !(c.is_ascii_alphanumeric() || "+/=_-".contains(c)));
        for candidate in candidates.filter(|c| !c.is_empty()) {
            let Ok(digest) = decode_claim(
                candidate.as_bytes(),
                h.algorithm,
                crate::crypto::Encoding::Auto,
            ) else {
                continue;
            };
            let forged = crate::crypto::encode(&digest, h.encoding);
            let mut attacked = headers.clone();
            let value = attacked[h.header.as_str()]
                .to_str()
                .unwrap()
                .replace(&real, &forged);
            attacked.insert(h.header.clone(), value.parse().unwrap());
            prop_assert!(
                !passes(route, &attacked, body),
                "{label}: the {kind:?} answer to {input:?} ({text}) signs the message {:?}",
                String::from_utf8_lossy(body)
            );
        }
        Ok(())
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            "[A-Za-z0-9+/=_-]{1,64}".prop_map(String::into_bytes),
            "[a-z]{1,8}".prop_map(|k| format!("{{\"{k}\":\"forged\"}}").into_bytes()),
            "[ -~]{0,64}".prop_map(String::into_bytes),
            "[a-z]{1,6}=[A-Za-z0-9]{0,12}(&[a-z]{1,6}=[A-Za-z0-9]{0,12}){0,2}"
                .prop_map(String::into_bytes),
        ]
    }

    /// For attacker-chosen handshake input, no answer of any preset with a
    /// handshake (built in or an operator's) verifies as the signature of a
    /// message its scheme accepts.
    #[test]
    fn no_handshake_answer_is_the_signature_of_a_message_its_scheme_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let routes = routes(dir.path());
        // 7 built in; of the 60 operator presets, only the two key-computing
        // handshakes on a bare `{body}` are refused.
        assert_eq!(
            routes.len(),
            7 + 58,
            "{:?}",
            routes.iter().map(|(l, _)| l).collect::<Vec<_>>()
        );
        let mut runner = TestRunner::new(Cases {
            cases: 128,
            failure_persistence: None,
            ..Cases::default()
        });
        let strategy = (body(), "[A-Za-z0-9_]{1,24}");
        let result = runner.run(&strategy, |(body, id)| {
            for (label, route) in &routes {
                attack(label, route, &body, &id)?;
            }
            Ok(())
        });
        if let Err(e) = result {
            panic!("{e}");
        }
        // The model is not vacuous: a message's own signature passes.
        let x = routes.iter().find(|(l, _)| l == "x").expect("x");
        let h = x.1.hmac.as_ref().unwrap();
        let body = br#"{"for_user_id":"1"}"#;
        let lines = provider_headers(h, NOW, "id", Some(URL), body).unwrap();
        let mut headers = http::HeaderMap::new();
        for (k, v) in &lines {
            headers.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        assert!(passes(&x.1, &headers, body));
    }
}
