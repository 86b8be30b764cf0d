//! `check` and `sign`: the subcommands that do not serve.

use std::io::Read;
use std::path::Path;

use anyhow::Context;

use crate::config::Config;
use crate::secret;
use crate::signature::{self, Algorithm, Encoding, Key};

/// Load everything `run` would and print the effective routes.
pub fn check(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    print!("{}", config.summary());
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    Ok(())
}

/// Print the signature of stdin's bytes, exactly as `verify` computes it.
pub fn sign(spec: &str, algorithm: Algorithm, encoding: Encoding) -> anyhow::Result<()> {
    let secret = secret::resolve(spec).context("--secret")?;
    let mut body = Vec::new();
    std::io::stdin()
        .read_to_end(&mut body)
        .context("cannot read the body from stdin")?;
    let digest = Key::new(algorithm, secret.expose()).digest(&body);
    println!("{}", signature::encode(&digest, encoding));
    Ok(())
}
