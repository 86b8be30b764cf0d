//! An HMAC of the provider's signed string (the raw body, or a template of
//! id, timestamp, URL and body), under any of the route's keys (configured,
//! then handed over in a handshake), in constant time: `verify/signature.rs`.

use super::{Judgement, Refusal, Seen, Step};
use crate::config::{HmacCheck, Route};
use crate::crypto::Encoding;
use crate::verify::signature::{self, Signable, SignatureError};

pub(super) fn body(route: &Route, req: &Signable<'_>) -> Step {
    // Every spelling a receiver reads as the signature header counts:
    // two of them are two signatures, and which one would it check?
    match &route.hmac {
        None => Step::Off,
        Some(h) => Step::of(
            signature::verify_scheme(h, req)
                .map(|_| ())
                .map_err(Refusal::Hmac),
        ),
    }
}

/// The signature, key by key: which matched, or why none did.
pub(super) fn explain(route: &Route, seen: &Seen<'_>) -> Judgement {
    let Some(h) = &route.hmac else {
        return Judgement::Off;
    };
    let encodings = match h.encoding {
        Encoding::Auto => "hex or base64",
        e => e.name(),
    };
    // Configured keys first, then those handed over in a handshake (Asana).
    let learned = h.learned_keys();
    let keys: Vec<_> = h.all_keys(&learned).collect();
    let tried = format!(
        "{} key(s) tried, {} {encodings}",
        keys.len(),
        h.algorithm.name()
    );
    let mut last = None;
    for (i, key) in keys.into_iter().enumerate() {
        let one = HmacCheck {
            keys: vec![key.clone()],
            learned: None,
            ..h.clone()
        };
        match signature::verify_scheme(&one, &seen.req) {
            Ok(found) => {
                let skew = found
                    .skew
                    .map(|s| format!(", timestamp skew {s} s"))
                    .unwrap_or_default();
                return Judgement::Pass(format!(
                    "key #{i} matches ({} {encodings}){skew}",
                    h.algorithm.name()
                ));
            }
            // Not about the key: the same for every one of them.
            Err(
                e @ (SignatureError::Missing
                | SignatureError::Duplicated
                | SignatureError::Timestamp
                | SignatureError::Stale(_)
                | SignatureError::Future(_)
                | SignatureError::MissingPart(_)
                | SignatureError::BodyHash
                | SignatureError::Malformed(_)
                | SignatureError::WrongAlgorithm(..)),
            ) => return Judgement::Fail(format!("{e} (header {}; {tried})", h.header)),
            Err(e) => last = Some(e),
        }
    }
    let why = last.map_or_else(|| "no key".to_owned(), |e| e.to_string());
    Judgement::Fail(format!("{why}: no key gives this signature ({tried})"))
}

/// The algorithm, header, encoding and where each key comes from.
pub(super) fn describe(route: &Route) -> Option<String> {
    let Some(h) = &route.hmac else {
        return route.signature.is_none().then(|| "(none)".to_owned());
    };
    let preset_note = match h.from_preset.is_empty() {
        true => String::new(),
        false => format!(" ({} from preset)", h.from_preset.join(", ")),
    };
    let keys = match h.sources.is_empty() {
        true => "no key in the config".to_owned(),
        false => format!("{} key(s): {}", h.sources.len(), h.sources.join(", ")),
    };
    let mut out = format!(
        "{} of the raw body, header {}, encoding {}, {keys}{preset_note}",
        h.algorithm.name(),
        h.header,
        h.encoding.name(),
    );
    if let Some(l) = &h.learned {
        out.push_str(&format!(
            "\n          + {} key(s) handed over in the provider's handshake, kept in {}",
            l.keys().len(),
            l.path().display()
        ));
    }
    Some(out)
}
