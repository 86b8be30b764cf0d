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
//!
//! X's CRC and Zoom's validation are answered with an HMAC under the route's
//! own key: their token must look like one ([`token_shaped`]), a string no
//! scheme they are attached to ever signs (`config/presets/schema.rs`
//! refuses any other pairing), so the answer is never an event's signature.
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
pub(crate) enum Reply {
    /// 200 with this content type and body.
    Ok(&'static str, String),
    /// Not answered, 403 for this reason: a verify token that is not the
    /// configured one, a token not of the provider's shape.
    Refused(Refusal),
}

/// X's `crc_token` and Zoom's `plainToken` as the providers send them: 1 to
/// 256 characters of `A-Za-z0-9+/=_-`. No signed string is of that shape
/// (events are JSON objects; timestamps are joined with `.` or `:`; a URL
/// has `:`), so the HMAC of such a token signs no message.
pub(crate) fn token_shaped(token: &str) -> bool {
    (1..=256).contains(&token.len()) && token.bytes().all(token_byte)
}

/// A character of such a token.
pub(crate) fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"+/=_-".contains(&b)
}

/// What a refused token says in the log.
const NOT_A_TOKEN: &str = "is not 1 to 256 characters of A-Za-z0-9+/=_-";

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
) -> Option<Reply> {
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
                true => Reply::Ok("text/plain", challenge.to_owned()),
                false => Reply::Refused(Refusal::Token(crate::verify::TokenFailure::Mismatch)),
            })
        }
        Handshake::XCrc => {
            let mut tokens = all.iter().filter(|(k, _)| k == "crc_token");
            let token = tokens.next()?.1.as_str();
            if tokens.next().is_some() || !token_shaped(token) {
                return Some(Reply::Refused(Refusal::Param(format!(
                    "crc_token {NOT_A_TOKEN} (once)"
                ))));
            }
            let mac =
                base64::engine::general_purpose::STANDARD.encode(key?.digest(token.as_bytes()));
            let body = serde_json::json!({ "response_token": format!("sha256={mac}") });
            Some(Reply::Ok("application/json", body.to_string()))
        }
        Handshake::DropboxChallenge => {
            let challenge = param(&all, "challenge")?;
            Some(Reply::Ok("text/plain", challenge.to_owned()))
        }
        Handshake::GraphValidation => {
            let token = param(&all, "validationToken")?;
            Some(Reply::Ok("text/plain", token.to_owned()))
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
pub(crate) fn answer_post(kind: Handshake, body: &[u8], key: Option<&Key>) -> Option<Reply> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    match kind {
        Handshake::SlackUrlVerification => {
            if json.get("type")?.as_str()? != "url_verification" {
                return None;
            }
            let challenge = json.get("challenge")?.as_str()?;
            let body = serde_json::json!({ "challenge": challenge });
            Some(Reply::Ok("application/json", body.to_string()))
        }
        Handshake::ZoomUrlValidation => {
            if json.get("event")?.as_str()? != "endpoint.url_validation" {
                return None;
            }
            let plain = json.get("payload")?.get("plainToken")?.as_str()?;
            if !token_shaped(plain) {
                return Some(Reply::Refused(Refusal::Param(format!(
                    "plainToken {NOT_A_TOKEN}"
                ))));
            }
            let encrypted = hex::encode(key?.digest(plain.as_bytes()));
            let body = serde_json::json!({ "plainToken": plain, "encryptedToken": encrypted });
            Some(Reply::Ok("application/json", body.to_string()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
