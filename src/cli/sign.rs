//! `callgate sign`: print the signature of stdin's bytes, with the same code
//! the gateway verifies with, to simulate a provider.

use std::io::Read;

use anyhow::Context;

use crate::config::secret;
use crate::crypto::{self, Algorithm, Encoding, Key};

/// Print the signature of stdin's bytes, exactly as `verify` computes it.
pub(super) fn sign(spec: &str, algorithm: Algorithm, encoding: Encoding) -> anyhow::Result<()> {
    let secret = secret::resolve(spec).context("--secret")?;
    let mut body = Vec::new();
    std::io::stdin()
        .read_to_end(&mut body)
        .context("cannot read the body from stdin")?;
    let digest = Key::new(algorithm, secret.expose()).digest(&body);
    println!("{}", crypto::encode(&digest, encoding));
    Ok(())
}
