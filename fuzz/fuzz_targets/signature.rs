//! Signature parsing: arbitrary header values never panic and never verify.
#![no_main]
use callgate::crypto::{self, Algorithm, Encoding, Key};
use callgate::verify::signature;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let keys = [Key::new(Algorithm::Sha1, b"fuzz-key")];
    for alg in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
        for enc in [Encoding::Hex, Encoding::Base64, Encoding::Auto] {
            let _ = signature::decode_claim(data, alg, enc);
        }
    }
    assert!(signature::verify(&keys, Algorithm::Sha1, Encoding::Auto, data, b"fixed body").is_err());
});
