//! Checking a provider's claimed signature against the raw body: decode the
//! header value (prefix, hex or base64), then compare in constant time with
//! every key. The keys and digests themselves are [`crate::crypto`]'s, the
//! same code `callgate sign` prints with, so what it prints is what passes.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use subtle::{Choice, ConstantTimeEq};

use crate::crypto::{Algorithm, Encoding, Key};

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
}

// Providers differ on base64 padding; the digest length is fixed, so accepting
// either costs nothing in strength.
const BASE64_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
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
    let as_hex = |v: &[u8]| match (v.len() == 2 * n).then(|| hex::decode(v)) {
        Some(Ok(d)) => Ok(d),
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

#[cfg(test)]
mod tests {
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
}
