//! `callgate sign`: print the signature of stdin's bytes, with the same code
//! the gateway verifies with, to simulate a provider.

use std::io::Read;

use anyhow::Context;

use crate::config::presets::Preset;
use crate::config::{secret, HmacCheck};
use crate::crypto::{self, Algorithm, Encoding, Key};
use crate::verify::signature;

mod private_key;

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

/// What a provider signs with.
pub(super) enum SigningKey {
    /// A secret spec: the HMAC key.
    Secret(String),
    /// A secret spec holding a PKCS#8 private key, PEM.
    Private(String),
}

/// What else the provider puts in the signed string.
pub(super) struct Provider<'a> {
    /// Unix seconds (default now).
    pub(super) timestamp: Option<i64>,
    pub(super) id: &'a str,
    /// The URL it calls (Twilio, Mandrill).
    pub(super) url: Option<&'a str>,
}

/// Print the header lines `preset`'s provider would send with stdin's body,
/// signed with the code the gateway verifies with.
pub(super) fn sign_as(preset: Preset, key: &SigningKey, p: &Provider<'_>) -> anyhow::Result<()> {
    if preset.signs_url() && p.url.is_none() {
        anyhow::bail!(
            "--preset {} signs the URL the provider calls: add --url https://your.host/path?query",
            preset.name()
        );
    }
    let mut body = Vec::new();
    std::io::stdin()
        .read_to_end(&mut body)
        .context("cannot read the body from stdin")?;
    let now = crate::clock::unix_secs();
    let ts = p.timestamp.unwrap_or(now);
    let lines = match (key, preset.defaults().signature) {
        (SigningKey::Private(spec), Some(scheme)) => {
            let pem = secret::resolve(spec).context("--private-key")?;
            private_key::provider_headers(&scheme, pem.expose(), ts, p.id, &body)
                .map_err(|e| anyhow::anyhow!("--private-key: {e}"))?
        }
        (SigningKey::Private(_), None) => anyhow::bail!(
            "--preset {} signs with an HMAC: give --secret SPEC instead of --private-key",
            preset.name()
        ),
        (SigningKey::Secret(_), Some(s)) => anyhow::bail!(
            "--preset {} signs with a private key ({}): give --private-key SPEC (a PKCS#8 PEM, as `openssl genpkey` writes it)",
            preset.name(),
            s.algorithm.name()
        ),
        (SigningKey::Secret(spec), None) => {
            let secret = secret::resolve(spec).context("--secret")?;
            let check =
                HmacCheck::for_preset(preset, secret.expose()).map_err(anyhow::Error::msg)?;
            signature::provider_headers(&check, ts, p.id, p.url, &body)
                .map_err(|e| anyhow::anyhow!("cannot sign as {}: {e}", preset.name()))?
        }
    };
    for (name, value) in lines {
        println!("{name}: {value}");
    }
    Ok(())
}
