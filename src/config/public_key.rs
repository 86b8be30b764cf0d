//! `signature = { … public_keys = [...] }` → keys as ring reads them. A key
//! is given as the provider shows it: PEM (`-----BEGIN PUBLIC KEY-----`),
//! base64 or hex of an X.509 SubjectPublicKeyInfo (SendGrid), or the raw
//! key (Discord's 32-byte Ed25519 key in hex; Standard Webhooks' `whpk_`
//! base64; an uncompressed EC point).
//! Keys are never fetched from a URL a request names.

use base64::Engine;
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::presets::PkAlgorithm;

/// The DER between a PEM's `-----BEGIN …-----` and `-----END …-----` lines
/// (public keys here, `callgate sign --private-key`'s PKCS#8).
pub(crate) fn pem_body(text: &str) -> Result<Vec<u8>, String> {
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map_err(|e| format!("the PEM body is not base64 ({e})"))
}

/// The key's bytes in ring's form for `algorithm`, or what is wrong.
pub(super) fn parse(algorithm: PkAlgorithm, text: &str) -> Result<Vec<u8>, String> {
    let text = text.trim();
    // Standard Webhooks writes its Ed25519 public keys as whpk_<base64>.
    let text = text.strip_prefix("whpk_").unwrap_or(text);
    let bytes = if text.starts_with("-----BEGIN") {
        pem_body(text)?
    } else if text.len().is_multiple_of(2) && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).map_err(|e| e.to_string())?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| "not PEM, hex or base64".to_owned())?
    };
    let raw = match SubjectPublicKeyInfo::from_der(&bytes) {
        Ok(([], spki)) => spki.subject_public_key.data.to_vec(),
        _ => bytes,
    };
    let fits = match algorithm {
        PkAlgorithm::Ed25519 => raw.len() == 32,
        PkAlgorithm::EcdsaP256Sha256 => raw.len() == 65 && raw[0] == 4,
        PkAlgorithm::EcdsaP384Sha384 => raw.len() == 97 && raw[0] == 4,
        PkAlgorithm::RsaPkcs1Sha256 | PkAlgorithm::RsaPssSha256 => {
            raw.len() >= 200 && raw[0] == 0x30
        }
    };
    match fits {
        true => Ok(raw),
        false => Err(format!(
            "not a {} public key ({} bytes once decoded)",
            algorithm.name(),
            raw.len()
        )),
    }
}
