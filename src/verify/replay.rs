//! Replay keys: what makes two callbacks the same message, from signed bytes
//! only. An attacker holding a captured callback can change anything the
//! provider did not sign (a delivery-id header, the timestamp of a scheme
//! that signs none), so such a value is at most an *additional* key, never
//! the only one.
//!
//! - A scheme that signs its message id (Standard Webhooks' `webhook-id`,
//!   HMAC `v1` and Ed25519 `v1a` alike) keys on the id, strictly: the same id
//!   with another body is a conflict, a new id with an old body is new.
//! - An id inside the signed body (Stripe's event `id`) keys on the id; a
//!   redelivery may differ in fields the provider updates, so no conflict.
//! - Otherwise the key is the digest of what the provider signs, without a
//!   timestamp (the body; Twilio: the URL and the sorted parameters), and an
//!   unsigned id header, when present, is a second key.
//!
//! A request matching any key of a message seen within the window is a
//! redelivery.

use sha2::{Digest, Sha256};

use super::signature::{self, Signable};
use crate::config::presets::{IdSource, Signed};
use crate::config::Route;

/// Bytes of one key in its stored form: flags, key, payload digest.
const ENCODED_LEN: usize = 1 + 32 + 32;

/// One replay key of a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplayKey {
    /// SHA-256 over the key's kind and bytes.
    pub(crate) key: [u8; 32],
    /// SHA-256 of the signed payload, to tell a reused id from a redelivery.
    pub(crate) payload: [u8; 32],
    /// The id is signed: the same key with another payload is a conflict.
    pub(crate) strict: bool,
}

/// What a route keys on, for `check` and the docs.
pub(crate) fn describe(route: &Route) -> String {
    let Some(h) = &route.hmac else {
        return match route.signature.as_ref().and_then(|s| s.id) {
            Some((name, _)) => format!("the signed {name} (a reused id with another body: 409)"),
            None => "sha256 of the body".into(),
        };
    };
    let payload = match h.scheme.signed {
        Signed::Twilio => "sha256 of the signed URL and parameters",
        _ => "sha256 of the body",
    };
    match h.scheme.id {
        IdSource::Header(name) if h.scheme.signed == Signed::IdTimestampBody => {
            format!("the signed {name} (a reused id with another body: 409)")
        }
        IdSource::Header(name) => format!("{payload}, and {name} when sent"),
        IdSource::JsonField(field) => format!("the body's \"{field}\" (else {payload})"),
        IdSource::None => payload.into(),
    }
}

/// The replay keys of a request that passed its route's checks.
pub(crate) fn keys(route: &Route, req: &Signable<'_>) -> Vec<ReplayKey> {
    let payload = match &route.hmac {
        Some(h) => signature::replay_payload(h.scheme, req),
        None => std::borrow::Cow::Borrowed(req.body),
    };
    // The payload is hashed once: its key is made of its digest.
    let payload_digest: [u8; 32] = Sha256::digest(&payload).into();
    let payload_key = key(b"payload", &payload_digest, payload_digest, false);
    let Some(h) = &route.hmac else {
        return match signed_id(route, req) {
            Some(id) => vec![key(b"signed-id", id, payload_digest, true)],
            None => vec![payload_key],
        };
    };
    let id = signature::message_id(h.scheme, req.headers, req.body);
    match (h.scheme.id, id) {
        (IdSource::Header(_), Some(id)) if h.scheme.signed == Signed::IdTimestampBody => {
            vec![key(b"signed-id", id.as_bytes(), payload_digest, true)]
        }
        (IdSource::JsonField(_), Some(id)) => {
            vec![key(b"body-id", id.as_bytes(), payload_digest, false)]
        }
        (IdSource::Header(_), Some(id)) => vec![
            payload_key,
            key(b"header-id", id.as_bytes(), payload_digest, false),
        ],
        _ => vec![payload_key],
    }
}

/// The message id a public-key scheme signs (Standard Webhooks v1a's
/// `webhook-id`), as the request carries it.
fn signed_id<'a>(route: &Route, req: &Signable<'a>) -> Option<&'a [u8]> {
    let (name, _) = route.signature.as_ref()?.id?;
    signature::one_header(req.headers, name).ok().flatten()
}

fn key(kind: &[u8], bytes: &[u8], payload: [u8; 32], strict: bool) -> ReplayKey {
    let key = Sha256::new()
        .chain_update(b"callgate-replay\0")
        .chain_update(kind)
        .chain_update(b"\0")
        .chain_update(bytes)
        .finalize()
        .into();
    ReplayKey {
        key,
        payload,
        strict,
    }
}

/// The keys as stored with a queued callback.
pub(crate) fn encode(keys: &[ReplayKey]) -> Vec<u8> {
    let mut out = Vec::with_capacity(keys.len() * ENCODED_LEN);
    for k in keys {
        out.push(u8::from(k.strict));
        out.extend_from_slice(&k.key);
        out.extend_from_slice(&k.payload);
    }
    out
}

/// Keys stored by [`encode`]; `None` if the bytes are not such keys.
pub(crate) fn decode(bytes: &[u8]) -> Option<Vec<ReplayKey>> {
    if !bytes.len().is_multiple_of(ENCODED_LEN) {
        return None;
    }
    bytes
        .chunks_exact(ENCODED_LEN)
        .map(|c| {
            Some(ReplayKey {
                strict: match c[0] {
                    0 => false,
                    1 => true,
                    _ => return None,
                },
                key: c[1..33].try_into().ok()?,
                payload: c[33..].try_into().ok()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
