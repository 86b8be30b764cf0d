//! Public-key signatures (Ed25519, ECDSA, RSA) with ring: the signature
//! header exactly once, the signed timestamp (when the scheme has one)
//! within the tolerance, then each listed key in turn (rotation). The
//! signed string is the body, or the timestamp, a separator and the body
//! (Discord, SendGrid: nothing between; Telnyx: `|`), or the message id,
//! the timestamp and the body (Standard Webhooks v1a: `id.timestamp.body`,
//! space-separated `v1a,<base64>` entries).

use base64::Engine;
use ring::signature::{self as sig, UnparsedPublicKey, VerificationAlgorithm};

use super::signature::{
    fresh, one_header, Signable, SignatureError, BASE64_ANY_PADDING, MAX_CLAIMS, TOO_MANY,
};
use crate::config::presets::PkAlgorithm;
use crate::config::SignatureCheck;
use crate::crypto::Encoding;

fn algorithm(a: PkAlgorithm) -> &'static dyn VerificationAlgorithm {
    match a {
        PkAlgorithm::Ed25519 => &sig::ED25519,
        PkAlgorithm::EcdsaP256Sha256 => &sig::ECDSA_P256_SHA256_ASN1,
        PkAlgorithm::EcdsaP384Sha384 => &sig::ECDSA_P384_SHA384_ASN1,
        PkAlgorithm::RsaPkcs1Sha256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        PkAlgorithm::RsaPssSha256 => &sig::RSA_PSS_2048_8192_SHA256,
    }
}

/// Whether one of the route's public keys signed this request.
pub(crate) fn verify(check: &SignatureCheck, req: &Signable<'_>) -> Result<(), SignatureError> {
    let value = one_header(req.headers, check.header.as_str())?.ok_or(SignatureError::Missing)?;
    let claims: Vec<&[u8]> = match check.list_prefix {
        None => vec![value.trim_ascii()],
        Some(prefix) => value
            .split(|&b| b == b' ')
            .filter_map(|entry| entry.strip_prefix(prefix.as_bytes()))
            .collect(),
    };
    if claims.len() > MAX_CLAIMS {
        return Err(TOO_MANY);
    }
    let message = message(check, req)?;
    let alg = algorithm(check.algorithm);
    let mut problem = SignatureError::Malformed("a signature entry");
    let mut decoded_any = false;
    for claim in claims {
        let claimed = match decode(claim, check.encoding) {
            Ok(c) => c,
            Err(e) => {
                problem = e;
                continue;
            }
        };
        decoded_any = true;
        let signed = check.keys.iter().any(|k| {
            UnparsedPublicKey::new(alg, k)
                .verify(&message, &claimed)
                .is_ok()
        });
        if signed {
            return Ok(());
        }
    }
    Err(match decoded_any {
        true => SignatureError::Mismatch,
        false => problem,
    })
}

/// The signed string: [id, separator,] [timestamp (fresh), separator,] body.
fn message(check: &SignatureCheck, req: &Signable<'_>) -> Result<Vec<u8>, SignatureError> {
    let id = match check.id {
        Some((name, separator)) => Some((
            one_header(req.headers, name)?
                .ok_or(SignatureError::MissingPart("the message id header"))?,
            separator,
        )),
        None => None,
    };
    let ts = match check.timestamp {
        Some((name, separator)) => {
            let raw = one_header(req.headers, name)?.ok_or(SignatureError::Timestamp)?;
            fresh(raw, req.now, check.tolerance, true)?;
            Some((raw, separator))
        }
        None => None,
    };
    Ok(signed_string(id, ts, req.body))
}

/// What a public-key scheme signs: [id, separator,] [timestamp, separator,]
/// body. One builder for verifying and for `callgate sign --private-key`.
pub(crate) fn signed_string(
    id: Option<(&[u8], &str)>,
    timestamp: Option<(&[u8], &str)>,
    body: &[u8],
) -> Vec<u8> {
    let mut message = Vec::with_capacity(body.len() + 64);
    for (part, separator) in [id, timestamp].into_iter().flatten() {
        message.extend_from_slice(part);
        message.extend_from_slice(separator.as_bytes());
    }
    message.extend_from_slice(body);
    message
}

fn decode(value: &[u8], encoding: Encoding) -> Result<Vec<u8>, SignatureError> {
    let hex = || hex::decode(value).map_err(|_| SignatureError::Malformed("hex"));
    let b64 = || {
        BASE64_ANY_PADDING
            .decode(value)
            .map_err(|_| SignatureError::Malformed("base64"))
    };
    match encoding {
        Encoding::Hex => hex(),
        Encoding::Base64 => b64(),
        Encoding::Auto => hex().or_else(|_| b64()),
    }
}
