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

mod properties;
mod schemes;

proptest::proptest! {
    /// The hand-written hex decoder reads what the hex crate reads, and
    /// refuses what it refuses (odd lengths, any byte not a hex digit).
    #[test]
    fn hex_digits_decode_as_the_hex_crate_does(v in proptest::collection::vec(
        proptest::prop_oneof![proptest::sample::select(b"0123456789abcdefABCDEF".to_vec()), proptest::num::u8::ANY],
        0..48,
    )) {
        proptest::prop_assert_eq!(hex_digits(&v), hex::decode(&v).ok());
    }
}
