//! `callgate sign`: print the signature of stdin's bytes, with the same code
//! the gateway verifies with, to simulate a provider.

use std::io::Read;

use anyhow::Context;

use crate::config::presets::Preset;
use crate::config::{secret, HmacCheck};
use crate::crypto::{self, Algorithm, Encoding, Key};
use crate::verify::signature;

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

/// Print the header lines `preset`'s provider would send with stdin's body,
/// signed with the code the gateway verifies with.
pub(super) fn sign_as(
    preset: Preset,
    spec: &str,
    timestamp: Option<i64>,
    id: &str,
    url: Option<&str>,
) -> anyhow::Result<()> {
    if preset.signs_url() && url.is_none() {
        anyhow::bail!(
            "--preset {} signs the URL the provider calls: add --url https://your.host/path?query",
            preset.name()
        );
    }
    let secret = secret::resolve(spec).context("--secret")?;
    let check = HmacCheck::for_preset(preset, secret.expose()).map_err(anyhow::Error::msg)?;
    let mut body = Vec::new();
    std::io::stdin()
        .read_to_end(&mut body)
        .context("cannot read the body from stdin")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let lines = signature::provider_headers(&check, timestamp.unwrap_or(now), id, url, &body)
        .map_err(|e| anyhow::anyhow!("cannot sign as {}: {e}", preset.name()))?;
    for (name, value) in lines {
        println!("{name}: {value}");
    }
    Ok(())
}
