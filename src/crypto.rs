//! Keyed digests: the hash algorithms, how a digest is written, and HMAC
//! keys prepared once. A leaf module: config prepares keys with it when it
//! loads, verify checks claims with it, and `callgate sign` prints with it.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};

/// Hash function under the HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// SHA-1 (Tolq; still safe under HMAC).
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-512.
    Sha512,
}

impl Algorithm {
    /// Name as written in config and in `sha1=<hex>` prefixes.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }

    pub(crate) const ALL: [Algorithm; 3] = [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512];
}

/// How the digest is written in the signature header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Hex, either case.
    Hex,
    /// Standard base64, padding optional.
    Base64,
    /// Hex or base64, told apart by length (they never share one for these digests).
    #[value(skip)]
    Auto,
}

impl Encoding {
    /// Name as written in config.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Hex => "hex",
            Encoding::Base64 => "base64",
            Encoding::Auto => "auto",
        }
    }
}

/// An HMAC key with its inner/outer pads already computed, cloned per request.
#[derive(Clone)]
pub enum Key {
    /// HMAC-SHA1.
    Sha1(Hmac<sha1::Sha1>),
    /// HMAC-SHA256.
    Sha256(Hmac<sha2::Sha256>),
    /// HMAC-SHA512.
    Sha512(Hmac<sha2::Sha512>),
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(REDACTED)")
    }
}

impl Key {
    /// Prepare a key; HMAC accepts keys of any length.
    pub fn new(algorithm: Algorithm, secret: &[u8]) -> Key {
        const ANY_LEN: &str = "HMAC accepts keys of any length";
        match algorithm {
            Algorithm::Sha1 => Key::Sha1(KeyInit::new_from_slice(secret).expect(ANY_LEN)),
            Algorithm::Sha256 => Key::Sha256(KeyInit::new_from_slice(secret).expect(ANY_LEN)),
            Algorithm::Sha512 => Key::Sha512(KeyInit::new_from_slice(secret).expect(ANY_LEN)),
        }
    }

    /// The HMAC of the concatenated `parts` under this key, without
    /// joining them first (the body is one of them, and may be large).
    pub fn digest_parts(&self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac + Clone>(m: &M, parts: &[&[u8]]) -> Vec<u8> {
            let mut m = m.clone();
            for p in parts {
                m.update(p);
            }
            m.finalize().into_bytes().to_vec()
        }
        match self {
            Key::Sha1(m) => run(m, parts),
            Key::Sha256(m) => run(m, parts),
            Key::Sha512(m) => run(m, parts),
        }
    }

    /// The HMAC of `body` under this key.
    pub fn digest(&self, body: &[u8]) -> Vec<u8> {
        fn run<M: Mac + Clone>(m: &M, body: &[u8]) -> Vec<u8> {
            let mut m = m.clone();
            m.update(body);
            m.finalize().into_bytes().to_vec()
        }
        match self {
            Key::Sha1(m) => run(m, body),
            Key::Sha256(m) => run(m, body),
            Key::Sha512(m) => run(m, body),
        }
    }
}

/// Encode a digest the way `callgate sign` prints it (hex is lowercase).
pub fn encode(digest: &[u8], encoding: Encoding) -> String {
    match encoding {
        Encoding::Hex | Encoding::Auto => hex::encode(digest),
        Encoding::Base64 => STANDARD.encode(digest),
    }
}
