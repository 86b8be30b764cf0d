//! Signing as a public-key provider does (`sign --preset discord
//! --private-key …`), with ring, so a test request can be made with curl.
//! The private key is the operator's own test key: callgate never holds a
//! provider's.

use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};

use crate::config::presets::{PkAlgorithm, SignatureDefaults};
use crate::crypto::Encoding;
use crate::verify::public_key::signed_string;

/// The header lines: signature (with its list prefix), timestamp, id.
pub(super) fn provider_headers(
    scheme: &SignatureDefaults,
    pem: &[u8],
    ts: i64,
    id: &str,
    body: &[u8],
) -> Result<Vec<(String, String)>, String> {
    let ts = ts.to_string();
    let message = signed_string(
        scheme.id.map(|(_, sep)| (id.as_bytes(), sep)),
        scheme.timestamp.map(|(_, sep)| (ts.as_bytes(), sep)),
        body,
    );
    let signature = sign(scheme.algorithm, &pkcs8(pem)?, &message)?;
    let encoded = match scheme.encoding {
        Encoding::Hex => hex::encode(signature),
        _ => base64::engine::general_purpose::STANDARD.encode(signature),
    };
    let mut lines = vec![(
        scheme.header.to_owned(),
        format!("{}{encoded}", scheme.list_prefix.unwrap_or("")),
    )];
    if let Some((name, _)) = scheme.timestamp {
        lines.push((name.to_owned(), ts));
    }
    if let Some((name, _)) = scheme.id {
        lines.push((name.to_owned(), id.to_owned()));
    }
    Ok(lines)
}

/// The DER inside a `-----BEGIN PRIVATE KEY-----` PEM.
fn pkcs8(pem: &[u8]) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(pem).map_err(|_| "the key is not PEM text")?;
    if !text.contains("-----BEGIN PRIVATE KEY-----") {
        return Err("not a PKCS#8 PEM (-----BEGIN PRIVATE KEY-----); convert with `openssl pkcs8 -topk8 -nocrypt`".into());
    }
    crate::config::public_key::pem_body(text)
}

fn sign(algorithm: PkAlgorithm, der: &[u8], message: &[u8]) -> Result<Vec<u8>, String> {
    let rng = SystemRandom::new();
    let wrong =
        |e: ring::error::KeyRejected| format!("not a {} private key ({e})", algorithm.name());
    match algorithm {
        PkAlgorithm::Ed25519 => {
            let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(wrong)?;
            Ok(key.sign(message).as_ref().to_vec())
        }
        PkAlgorithm::EcdsaP256Sha256 | PkAlgorithm::EcdsaP384Sha384 => {
            let alg = match algorithm {
                PkAlgorithm::EcdsaP256Sha256 => &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
                _ => &sig::ECDSA_P384_SHA384_ASN1_SIGNING,
            };
            let key = EcdsaKeyPair::from_pkcs8(alg, der, &rng).map_err(wrong)?;
            let s = key.sign(&rng, message).map_err(|_| "signing failed")?;
            Ok(s.as_ref().to_vec())
        }
        PkAlgorithm::RsaPkcs1Sha256 | PkAlgorithm::RsaPssSha256 => {
            let key = RsaKeyPair::from_pkcs8(der).map_err(wrong)?;
            let padding: &dyn sig::RsaEncoding = match algorithm {
                PkAlgorithm::RsaPkcs1Sha256 => &sig::RSA_PKCS1_SHA256,
                _ => &sig::RSA_PSS_SHA256,
            };
            let mut out = vec![0; key.public().modulus_len()];
            key.sign(padding, &rng, message, &mut out)
                .map_err(|_| "signing failed")?;
            Ok(out)
        }
    }
}
