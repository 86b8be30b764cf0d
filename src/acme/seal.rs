//! Private keys as the shared database keeps them: sealed with AES-256-GCM
//! (ring) under a key derived from `[tls.acme] store_key`, a fresh random
//! nonce each time, and the row's name as associated data, so a sealed
//! value moved to another row, or altered, does not open. Someone who reads
//! the table, a backup or the wire learns certificates (public anyway),
//! never a key.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

/// What a sealed value starts with: the format, so a later one can differ.
const VERSION: &[u8] = b"cg1";

/// Why a sealed value did not open.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SealError {
    #[error("the stored value does not open with tls.acme.store_key (another key wrote it, or it was altered): give every instance the same store_key")]
    Open,
    #[error("no random bytes for a nonce")]
    Random,
}

/// The sealing key.
pub(crate) struct Seal {
    key: LessSafeKey,
    random: SystemRandom,
}

impl Seal {
    /// The key for `secret` (any length: it is hashed with a label).
    pub(crate) fn new(secret: &[u8]) -> Seal {
        let derived = Sha256::new()
            .chain_update(b"callgate acme store key v1\0")
            .chain_update(secret)
            .finalize();
        let key = UnboundKey::new(&AES_256_GCM, &derived).expect("32 bytes for AES-256");
        Seal {
            key: LessSafeKey::new(key),
            random: SystemRandom::new(),
        }
    }

    /// `plain` sealed for the row `name`: version, nonce, ciphertext and tag.
    pub(crate) fn seal(&self, name: &str, plain: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| SealError::Random)?;
        let mut data = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(name.as_bytes()),
                &mut data,
            )
            .map_err(|_| SealError::Random)?;
        Ok([VERSION, &nonce, &data].concat())
    }

    /// The plain bytes of a value sealed for the row `name`.
    pub(crate) fn open(&self, name: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let rest = sealed.strip_prefix(VERSION).ok_or(SealError::Open)?;
        if rest.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, data) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut data = data.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(name.as_bytes()), &mut data)
            .map_err(|_| SealError::Open)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_key_opens_only_with_its_key_and_row() {
        let seal = Seal::new(b"store-key-0123456789abcdef");
        let key_pem = b"-----BEGIN PRIVATE KEY-----\nMIG...\n-----END PRIVATE KEY-----\n";
        let sealed = seal.seal("certificate:a.example", key_pem).unwrap();
        assert!(!sealed.windows(10).any(|w| w == &key_pem[..10]), "in clear");
        assert_eq!(
            seal.open("certificate:a.example", &sealed).unwrap(),
            key_pem
        );
        // Fresh nonce each time.
        assert_ne!(sealed, seal.seal("certificate:a.example", key_pem).unwrap());
        // Another row, another key, a flipped bit, a cut value: refused.
        assert!(seal.open("certificate:b.example", &sealed).is_err());
        let other = Seal::new(b"another-key-0123456789abcdef");
        assert!(other.open("certificate:a.example", &sealed).is_err());
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(seal.open("certificate:a.example", &flipped).is_err());
        assert!(seal.open("certificate:a.example", &sealed[..10]).is_err());
        assert!(seal.open("certificate:a.example", b"").is_err());
    }
}
