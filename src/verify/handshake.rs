//! Endpoint checks some providers make before (or between) deliveries,
//! answered by callgate from the route's own secrets so that the receiver
//! never sees them and needs no code for them. Pure: the request's query or
//! verified body in, the answer out.
//!
//! - Slack `url_verification` (signed POST): `{"challenge": …}` back.
//! - Zoom `endpoint.url_validation` (signed POST): the plainToken and its
//!   HMAC-SHA256 under the secret token, hex.
//! - Meta (Facebook, WhatsApp, Instagram) `GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`:
//!   the challenge, if the verify token is the configured one.
//! - X (Twitter) CRC `GET ?crc_token=…`: `sha256=` + base64 HMAC-SHA256 of the token.
//! - Dropbox `GET ?challenge=…`: the challenge, as text.
//! - Microsoft Graph `POST ?validationToken=…` (a new or renewed
//!   subscription): the token, decoded, as text.
//! - Asana `POST` with `X-Hook-Secret`: the signing secret itself, echoed
//!   back in the same header once callgate has kept it (the proxy keeps it;
//!   here only which request is one and whether its secret is usable).

use base64::Engine;
use subtle::ConstantTimeEq;

use crate::config::presets::Handshake;
use crate::config::secret::Secret;
use crate::crypto::Key;
use crate::learned;
use crate::verify::signature::SignatureError;
use crate::verify::Refusal;

/// callgate's own answer to a handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// 200 with this content type and body.
    Ok(&'static str, String),
    /// A verify token that is not the configured one: 403.
    Refused,
}

/// The parameters of a query, decoded.
fn params(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(all: &'a [(String, String)], name: &str) -> Option<&'a str> {
    all.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// A handshake read from the query (see `Handshake::answered_from_query`), if this request is one.
pub(crate) fn answer_get(
    kind: Handshake,
    query: Option<&str>,
    key: Option<&Key>,
    verify_token: Option<&Secret>,
) -> Option<Answer> {
    let all = params(query.unwrap_or(""));
    match kind {
        Handshake::MetaVerifyToken => {
            if param(&all, "hub.mode")? != "subscribe" {
                return None;
            }
            let challenge = param(&all, "hub.challenge")?;
            let given = param(&all, "hub.verify_token")?;
            let ok = verify_token.is_some_and(|t| bool::from(t.expose().ct_eq(given.as_bytes())));
            Some(match ok {
                true => Answer::Ok("text/plain", challenge.to_owned()),
                false => Answer::Refused,
            })
        }
        Handshake::XCrc => {
            let token = param(&all, "crc_token")?;
            let mac =
                base64::engine::general_purpose::STANDARD.encode(key?.digest(token.as_bytes()));
            let body = serde_json::json!({ "response_token": format!("sha256={mac}") });
            Some(Answer::Ok("application/json", body.to_string()))
        }
        Handshake::DropboxChallenge => {
            let challenge = param(&all, "challenge")?;
            Some(Answer::Ok("text/plain", challenge.to_owned()))
        }
        Handshake::GraphValidation => {
            let token = param(&all, "validationToken")?;
            Some(Answer::Ok("text/plain", token.to_owned()))
        }
        Handshake::SlackUrlVerification
        | Handshake::ZoomUrlValidation
        | Handshake::AsanaHookSecret => None,
    }
}

/// Asana's handshake header.
pub(crate) const HOOK_SECRET: &str = "x-hook-secret";

/// The secret an Asana handshake hands over, if this request is one:
/// `Err` when it is not one callgate could keep (repeated, empty, too long,
/// not visible ASCII).
pub(crate) fn handed_over(headers: &http::HeaderMap) -> Option<Result<&[u8], Refusal>> {
    let mut all = headers.get_all(HOOK_SECRET).iter();
    let first = all.next()?;
    let bad = Refusal::Hmac(SignatureError::Malformed(
        "X-Hook-Secret (one, of 16 to 256 visible characters)",
    ));
    Some(
        match all.next().is_none() && learned::plausible(first.as_bytes()) {
            true => Ok(first.as_bytes()),
            false => Err(bad),
        },
    )
}

/// A signed POST handshake's answer, if this verified body is one.
pub(crate) fn answer_post(kind: Handshake, body: &[u8], key: Option<&Key>) -> Option<Answer> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    match kind {
        Handshake::SlackUrlVerification => {
            if json.get("type")?.as_str()? != "url_verification" {
                return None;
            }
            let challenge = json.get("challenge")?.as_str()?;
            let body = serde_json::json!({ "challenge": challenge });
            Some(Answer::Ok("application/json", body.to_string()))
        }
        Handshake::ZoomUrlValidation => {
            if json.get("event")?.as_str()? != "endpoint.url_validation" {
                return None;
            }
            let plain = json.get("payload")?.get("plainToken")?.as_str()?;
            let encrypted = hex::encode(key?.digest(plain.as_bytes()));
            let body = serde_json::json!({ "plainToken": plain, "encryptedToken": encrypted });
            Some(Answer::Ok("application/json", body.to_string()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
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
            Some(Answer::Ok(_, body)) => {
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
            Some(Answer::Ok(
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
        let q =
            "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meta-verify-token-0123";
        assert_eq!(
            answer_get(Handshake::MetaVerifyToken, Some(q), None, Some(&token)),
            Some(Answer::Ok("text/plain", "1158201444".into()))
        );
        let wrong = "hub.mode=subscribe&hub.challenge=1&hub.verify_token=guess";
        assert_eq!(
            answer_get(Handshake::MetaVerifyToken, Some(wrong), None, Some(&token)),
            Some(Answer::Refused)
        );
        // X: sha256= base64 HMAC-SHA256(consumer secret, crc_token).
        let x = Key::new(Algorithm::Sha256, b"x-consumer-secret-0123456789");
        let mac = base64::engine::general_purpose::STANDARD.encode(x.digest(b"abc"));
        assert_eq!(
            answer_get(Handshake::XCrc, Some("crc_token=abc"), Some(&x), None),
            Some(Answer::Ok(
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
            Some(Answer::Ok("text/plain", "xyz".into()))
        );
        assert_eq!(
            answer_get(Handshake::DropboxChallenge, Some("other=1"), None, None),
            None
        );
        // Microsoft Graph: the validationToken, URL-decoded, as text.
        let q = "validationToken=Validation%3A%20Testing%20client%20application%20reachability";
        assert_eq!(
            answer_get(Handshake::GraphValidation, Some(q), None, None),
            Some(Answer::Ok(
                "text/plain",
                "Validation: Testing client application reachability".into()
            ))
        );
        assert_eq!(
            answer_get(Handshake::GraphValidation, Some("token=t"), None, None),
            None
        );
    }
}
