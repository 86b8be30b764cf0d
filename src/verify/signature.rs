//! Checking a provider's claimed signature against the raw body: decode the
//! header value (prefix, hex or base64), then compare in constant time with
//! every key. The keys and digests themselves are [`crate::crypto`]'s, the
//! same code `callgate sign` prints with, so what it prints is what passes.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use subtle::{Choice, ConstantTimeEq};

use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::config::presets::{Claims, IdSource, Scheme, Signed};
use crate::config::HmacCheck;
use crate::crypto::{Algorithm, Encoding, Key};
use crate::php;

/// Why a claimed signature was not accepted. Shown in logs, never to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature header.
    #[error("signature header missing")]
    Missing,
    /// Two or more signature headers: which one would the receiver read?
    #[error("signature header sent more than once")]
    Duplicated,
    /// Not the expected encoding, or not a digest's length.
    #[error("signature is not {0} of the right length")]
    Malformed(&'static str),
    /// An `algo=` prefix naming another algorithm than the route's.
    #[error("signature names algorithm {0}, route expects {1}")]
    WrongAlgorithm(&'static str, &'static str),
    /// Well-formed, but no key gives this digest of the body.
    #[error("signature does not match the body")]
    Mismatch,
    /// The signed timestamp is missing or not Unix seconds.
    #[error("timestamp missing or not a number of seconds")]
    Timestamp,
    /// The signed timestamp is older than the tolerance: a replay.
    #[error("timestamp {0} s old, over the tolerance")]
    Stale(i64),
    /// The signed timestamp is further in the future than the tolerance.
    #[error("timestamp {0} s in the future, over the tolerance")]
    Future(i64),
    /// A part of the signed string is missing from the request (an id header, the URL).
    #[error("{0} missing from the request")]
    MissingPart(&'static str),
    /// Twilio's bodySHA256 parameter is not the body's digest.
    #[error("bodySHA256 does not match the body")]
    BodyHash,
}

// Providers differ on base64 padding; the digest length is fixed, so accepting
// either costs nothing in strength.
pub(crate) const BASE64_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decode a header value into the claimed digest: trims blanks, accepts an
/// `algo=` prefix naming the route's algorithm (any case), then hex or base64.
pub fn decode_claim(
    value: &[u8],
    algorithm: Algorithm,
    encoding: Encoding,
) -> Result<Vec<u8>, SignatureError> {
    let value = value.trim_ascii();
    let value = strip_algorithm_prefix(value, algorithm)?;
    let n = algorithm.digest_len();
    let as_hex = |v: &[u8]| match (v.len() == 2 * n).then(|| hex_digits(v)) {
        Some(Some(d)) => Ok(d),
        _ => Err(SignatureError::Malformed("hex")),
    };
    let as_base64 = |v: &[u8]| match BASE64_ANY_PADDING.decode(v) {
        Ok(d) if d.len() == n => Ok(d),
        _ => Err(SignatureError::Malformed("base64")),
    };
    match encoding {
        Encoding::Hex => as_hex(value),
        Encoding::Base64 => as_base64(value),
        Encoding::Auto if value.len() == 2 * n => as_hex(value),
        Encoding::Auto => as_base64(value).map_err(|_| SignatureError::Malformed("hex or base64")),
    }
}

/// What `hex::decode` makes of `v` (either case; None for an odd length or
/// any other byte), in a tenth of its instructions: every callback with a
/// hex signature comes through here.
fn hex_digits(v: &[u8]) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    if !v.len().is_multiple_of(2) {
        return None;
    }
    let mut out = Vec::with_capacity(v.len() / 2);
    for pair in v.chunks_exact(2) {
        out.push(nibble(pair[0])? << 4 | nibble(pair[1])?);
    }
    Some(out)
}

fn strip_algorithm_prefix(value: &[u8], algorithm: Algorithm) -> Result<&[u8], SignatureError> {
    // '=' only ends base64 and never appears in hex, so a '=' with text after
    // it can only be a prefix.
    let Some(eq) = value.iter().position(|&b| b == b'=') else {
        return Ok(value);
    };
    if value[eq + 1..].iter().all(|&b| b == b'=') {
        return Ok(value); // base64 padding
    }
    let named = &value[..eq];
    match Algorithm::ALL
        .into_iter()
        .find(|a| named.eq_ignore_ascii_case(a.name().as_bytes()))
    {
        Some(a) if a == algorithm => Ok(&value[eq + 1..]),
        Some(a) => Err(SignatureError::WrongAlgorithm(a.name(), algorithm.name())),
        None => Err(SignatureError::Malformed("a known algorithm prefix")),
    }
}

/// Check a claimed signature against every key (rotation: any one passes).
/// Every key is tried, so timing does not reveal which one matched.
pub fn verify(
    keys: &[Key],
    algorithm: Algorithm,
    encoding: Encoding,
    claim: &[u8],
    body: &[u8],
) -> Result<(), SignatureError> {
    let claimed = decode_claim(claim, algorithm, encoding)?;
    let mut ok = Choice::from(0);
    for key in keys {
        ok |= key.digest(body).ct_eq(&claimed);
    }
    if bool::from(ok) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// What a scheme's check needs of the request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signable<'a> {
    pub(crate) headers: &'a HeaderMap,
    pub(crate) body: &'a [u8],
    /// The public URL the provider called (Twilio signs it).
    pub(crate) url: Option<&'a str>,
    /// Unix seconds now.
    pub(crate) now: i64,
    /// The keys the provider has handed over so far (Asana's handshake),
    /// as the gateway keeps them: checked after the route's own, for a
    /// route with a `secret_file` only.
    pub(crate) learned: &'a [Key],
}

/// What a check found, beyond passing: the signed timestamp's skew (for
/// `explain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Found {
    pub(crate) skew: Option<i64>,
}

/// Check a request against a route's signature scheme: the signature
/// header exactly once (in any spelling a receiver folds to it), the signed
/// timestamp within the tolerance, then every claimed signature against
/// every key, in constant time.
pub(crate) fn verify_scheme(h: &HmacCheck, req: &Signable<'_>) -> Result<Found, SignatureError> {
    let value = one_header(req.headers, h.header.as_str())?.ok_or(SignatureError::Missing)?;
    let (ts_field, claims) = claims(h.scheme.claims, value);
    if claims.len() > MAX_CLAIMS {
        return Err(TOO_MANY);
    }
    let mut found = Found::default();
    let ts = if h.scheme.timed() {
        let raw = match h.scheme.timestamp {
            Some(name) => one_header(req.headers, name)?.ok_or(SignatureError::Timestamp)?,
            None => ts_field.ok_or(SignatureError::Timestamp)?,
        };
        found.skew = Some(fresh(raw, req.now, h.tolerance, h.scheme.both_ways)?);
        Some(raw)
    } else {
        None
    };
    let (mut parts, with_form) = message(h.scheme, req, ts)?;
    let form = with_form.then(|| twilio_params(req.body));
    append_form(&mut parts, form.as_deref());
    // What a handshake of this route would answer for: never a signature
    // (it is the HMAC of the caller's token, not the provider's message).
    if h.refuse_tokens && token_shaped(&parts) {
        return Err(SignatureError::Mismatch);
    }
    let mut ok = Choice::from(0);
    let mut problem = SignatureError::Malformed("a signature entry");
    let mut decoded_any = false;
    // Each key's digest once, whatever the number of claims.
    let mut digests = None;
    for claim in claims {
        match decode_claim(claim, h.algorithm, h.encoding) {
            Ok(claimed) => {
                decoded_any = true;
                let digests = digests.get_or_insert_with(|| {
                    let all = h.all_keys(req.learned);
                    all.map(|k| k.digest_parts(&parts)).collect::<Vec<_>>()
                });
                for digest in digests.iter() {
                    ok |= digest.ct_eq(&claimed);
                }
            }
            Err(e) => problem = e,
        }
    }
    match (bool::from(ok), decoded_any) {
        (true, _) => Ok(found),
        (false, true) => Err(SignatureError::Mismatch),
        (false, false) => Err(problem),
    }
}

/// Whether a signed string, in parts, is shaped like a handshake's token
/// (`handshake::token_shaped`), without joining the parts.
fn token_shaped(parts: &[&[u8]]) -> bool {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    (1..=256).contains(&len)
        && parts
            .iter()
            .flat_map(|p| p.iter())
            .all(|&b| crate::verify::handshake::token_byte(b))
}

/// Most signatures one header may claim (`v1,…` list entries, Stripe's
/// `v1=` fields, `v1a,…` public-key entries): one per key in rotation, and
/// no provider rotates through more. A longer list is refused before any
/// entry is checked, so a stranger's header costs at most this many checks.
pub(crate) const MAX_CLAIMS: usize = 8;

/// The refusal of a longer list.
pub(crate) const TOO_MANY: SignatureError =
    SignatureError::Malformed("a list of at most 8 entries");

/// The one value of a header, in any spelling a receiver folds to it.
pub(crate) fn one_header<'h>(
    headers: &'h HeaderMap,
    name: &str,
) -> Result<Option<&'h [u8]>, SignatureError> {
    let mut values = headers
        .iter()
        .filter(|(n, _)| php::same_header(n.as_str(), name))
        .map(|(_, v)| v.as_bytes());
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(_), Some(_)) => Err(SignatureError::Duplicated),
        (Some(v), None) => Ok(Some(v)),
    }
}

/// The signatures a header value claims, and a timestamp field if it has one.
pub(crate) fn claims(form: Claims, value: &[u8]) -> (Option<&[u8]>, Vec<&[u8]>) {
    match form {
        Claims::Whole => (None, vec![value]),
        Claims::Prefixed(prefix) => match value.trim_ascii().strip_prefix(prefix.as_bytes()) {
            Some(rest) => (None, vec![rest]),
            None => (None, vec![]),
        },
        Claims::Fields { sig, ts } => {
            let mut stamp = None;
            let mut sigs = Vec::new();
            for field in value.split(|&b| b == b',') {
                let Some(eq) = field.iter().position(|&b| b == b'=') else {
                    continue;
                };
                let (k, v) = (field[..eq].trim_ascii(), field[eq + 1..].trim_ascii());
                if k == ts.as_bytes() {
                    stamp = Some(v);
                } else if k == sig.as_bytes() {
                    sigs.push(v);
                }
            }
            (stamp, sigs)
        }
        Claims::List { prefix } => (
            None,
            value
                .split(|&b| b == b' ')
                .filter_map(|entry| entry.strip_prefix(prefix.as_bytes()))
                .collect(),
        ),
    }
}

/// The timestamp's skew (now - timestamp), if within the tolerance.
/// Also for public-key schemes (`public_key.rs`); `both_ways`: refuse
/// timestamps too far in the future too.
pub(crate) fn fresh(
    raw: &[u8],
    now: i64,
    tolerance: std::time::Duration,
    both_ways: bool,
) -> Result<i64, SignatureError> {
    let ts: i64 = std::str::from_utf8(raw)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or(SignatureError::Timestamp)?;
    let skew = now.saturating_sub(ts);
    let tolerance = tolerance.as_secs() as i64;
    if skew > tolerance {
        return Err(SignatureError::Stale(skew));
    }
    if both_ways && -skew > tolerance {
        return Err(SignatureError::Future(-skew));
    }
    Ok(skew)
}

/// The signed string's parts, and whether the sorted form parameters follow
/// them (Twilio's form bodies).
fn message<'a>(
    scheme: Scheme,
    req: &Signable<'a>,
    ts: Option<&'a [u8]>,
) -> Result<(Vec<&'a [u8]>, bool), SignatureError> {
    let ts = || ts.ok_or(SignatureError::Timestamp);
    let parts = match scheme.signed {
        Signed::Body => vec![req.body],
        Signed::TimestampBody => vec![ts()?, b".", req.body],
        Signed::SlackV0 => vec![b"v0:", ts()?, b":", req.body],
        Signed::IdTimestampBody => {
            let name = match scheme.id {
                IdSource::Header(name) => name,
                _ => "the message id",
            };
            let id = one_header(req.headers, name)?
                .ok_or(SignatureError::MissingPart("the message id header"))?;
            vec![id, b".", ts()?, b".", req.body]
        }
        Signed::Twilio => {
            let url = req
                .url
                .ok_or(SignatureError::MissingPart("the public URL"))?;
            // A JSON body is signed by its digest in the URL, not by parameters.
            if let Some(claimed) = twilio_body_hash(url) {
                let digest = hex::encode(Sha256::digest(req.body));
                if !bool::from(
                    digest
                        .as_bytes()
                        .ct_eq(claimed.to_ascii_lowercase().as_bytes()),
                ) {
                    return Err(SignatureError::BodyHash);
                }
                return Ok((vec![url.as_bytes()], false));
            }
            return Ok((vec![url.as_bytes()], true));
        }
    };
    Ok((parts, false))
}

/// The signed string of a request as one buffer: what a handshake's input
/// must never be (the handshake property test).
#[cfg(test)]
pub(crate) fn signed_string<'a>(
    scheme: Scheme,
    req: &Signable<'a>,
    ts: Option<&'a [u8]>,
) -> Result<Vec<u8>, SignatureError> {
    let (mut parts, with_form) = message(scheme, req, ts)?;
    let form = with_form.then(|| twilio_params(req.body));
    append_form(&mut parts, form.as_deref());
    Ok(parts.concat())
}

/// Twilio's `bodySHA256` query parameter, if the URL has one.
fn twilio_body_hash(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "bodySHA256")
        .map(|(_, v)| v.into_owned())
}

/// Twilio's signed string goes on with each sorted parameter as name+value.
fn append_form<'a>(parts: &mut Vec<&'a [u8]>, form: Option<&'a [(String, String)]>) {
    for (k, v) in form.unwrap_or_default() {
        parts.extend([k.as_bytes(), v.as_bytes()]);
    }
}

/// A form body's parameters sorted by name, then value, as Twilio signs them.
fn twilio_params(body: &[u8]) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    params.sort();
    params
}

/// Signature headers whose provider writes `sha256=` (or `sha1=`) before the signature.
const ALGORITHM_PREFIXED: &[&str] = &[
    "x-hub-signature-256",
    "x-hub-signature",
    "typeform-signature",
    "x-twitter-webhooks-signature",
];

/// The header lines a provider would send with `body` (for `callgate sign
/// --preset`), signed with the same code the gateway verifies with.
pub(crate) fn provider_headers(
    h: &HmacCheck,
    ts: i64,
    id: &str,
    url: Option<&str>,
    body: &[u8],
) -> Result<Vec<(String, String)>, SignatureError> {
    let ts_text = ts.to_string();
    let mut headers = HeaderMap::new();
    let mut out = Vec::new();
    if let IdSource::Header(name) = h.scheme.id {
        out.push((name.to_owned(), id.to_owned()));
        headers.insert(
            name,
            http::HeaderValue::from_str(id)
                .map_err(|_| SignatureError::MissingPart("a valid id"))?,
        );
    }
    let req = Signable {
        headers: &headers,
        body,
        url,
        now: ts,
        learned: &[],
    };
    let ts_part = h.scheme.timed().then_some(ts_text.as_bytes());
    let (mut parts, with_form) = message(h.scheme, &req, ts_part)?;
    let form = with_form.then(|| twilio_params(body));
    append_form(&mut parts, form.as_deref());
    let key = h.keys.first().ok_or(SignatureError::MissingPart("a key"))?;
    let sig = crate::crypto::encode(&key.digest_parts(&parts), h.encoding);
    if let Some(name) = h.scheme.timestamp {
        out.push((name.to_owned(), ts_text.clone()));
    }
    let value = match h.scheme.claims {
        // Providers that name the algorithm before the signature.
        Claims::Whole if ALGORITHM_PREFIXED.contains(&h.header.as_str()) => {
            format!("{}={sig}", h.algorithm.name())
        }
        Claims::Whole => sig,
        Claims::Prefixed(prefix) => format!("{prefix}{sig}"),
        Claims::Fields { sig: name, ts } => format!("{ts}={ts_text},{name}={sig}"),
        Claims::List { prefix } => format!("{prefix}{sig}"),
    };
    out.push((h.header.as_str().to_owned(), value));
    Ok(out)
}

/// What the provider signs, without its timestamp: the replay key of a
/// message whose id is not signed (Twilio: the URL, then the sorted
/// parameters of a form body; everyone else: the body).
pub(crate) fn replay_payload<'a>(scheme: Scheme, req: &Signable<'a>) -> std::borrow::Cow<'a, [u8]> {
    match (scheme.signed, req.url) {
        (Signed::Twilio, Some(url)) => {
            let mut parts = vec![url.as_bytes()];
            let form = twilio_body_hash(url)
                .is_none()
                .then(|| twilio_params(req.body));
            append_form(&mut parts, form.as_deref());
            std::borrow::Cow::Owned(parts.concat())
        }
        _ => std::borrow::Cow::Borrowed(req.body),
    }
}

/// The message id a provider gave this callback, for redelivery dedupe.
pub(crate) fn message_id(scheme: Scheme, headers: &HeaderMap, body: &[u8]) -> Option<String> {
    match scheme.id {
        IdSource::None => None,
        IdSource::Header(name) => one_header(headers, name)
            .ok()
            .flatten()
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::to_owned),
        IdSource::JsonField(field) => serde_json::from_slice::<serde_json::Value>(body)
            .ok()?
            .get(field)?
            .as_str()
            .map(str::to_owned),
    }
}

#[cfg(test)]
mod tests;
