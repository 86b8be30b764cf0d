//! `check` and `sign`: the subcommands that do not serve.

use std::io::Read;
use std::path::Path;

use anyhow::Context;

use std::io::Write;

use crate::cli::QueueCommand;
use crate::config::Config;
use crate::queue::{store, State, Store};
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

/// `callgate queue list|show|retry|drop`.
pub fn queue(config: &Path, action: QueueCommand) -> anyhow::Result<()> {
    let dir = Config::queue_dir_of(config)?;
    if !dir.join(store::FILE_NAME).exists() {
        if let QueueCommand::List { .. } = action {
            println!(
                "no callbacks stored ({} does not exist yet)",
                dir.join(store::FILE_NAME).display()
            );
            return Ok(());
        }
        anyhow::bail!(
            "no callback store at {}",
            dir.join(store::FILE_NAME).display()
        );
    }
    let store = Store::open(&dir)?;
    match action {
        QueueCommand::List { route, state } => {
            let all = store.list(route.as_deref(), state)?;
            println!(
                "{:>6}  {:<16} {:<8} {:>8}  {:<20}  {:<20}  {:>8}  last error",
                "id", "route", "state", "attempts", "arrived (UTC)", "next attempt (UTC)", "bytes"
            );
            for c in &all {
                println!(
                    "{:>6}  {:<16} {:<8} {:>8}  {:<20}  {:<20}  {:>8}  {}",
                    c.id,
                    c.callback.route,
                    c.state.as_str(),
                    c.attempts,
                    timestamp(c.callback.arrived_ms),
                    if c.state == State::Pending {
                        timestamp(c.next_attempt_ms)
                    } else {
                        "-".into()
                    },
                    c.callback.body.len(),
                    c.last_error.as_deref().unwrap_or("-")
                );
            }
            println!("{} callback(s)", all.len());
        }
        QueueCommand::Show { id } => {
            let c = store
                .get(id)?
                .with_context(|| format!("no callback {id}"))?;
            let cb = &c.callback;
            println!("id:        {}", c.id);
            println!("route:     {}", cb.route);
            println!(
                "state:     {} after {} attempt(s)",
                c.state.as_str(),
                c.attempts
            );
            println!("arrived:   {}", timestamp(cb.arrived_ms));
            println!("verified:  {}", cb.verified);
            if let Some(e) = &c.last_error {
                println!("last error: {e}");
            }
            match &cb.query {
                Some(q) => println!("\n{} ?{q}", cb.method),
                None => println!("\n{}", cb.method),
            }
            print!("{}", String::from_utf8_lossy(&cb.headers));
            println!();
            std::io::stdout().write_all(&cb.body)?;
            if !cb.body.ends_with(b"\n") {
                println!();
            }
        }
        QueueCommand::Retry { id: Some(id), .. } => {
            anyhow::ensure!(store.retry(id, store::now_ms())?, "no callback {id}");
            println!("callback {id} will be delivered again");
        }
        QueueCommand::Retry { id: None, .. } => {
            let n = store.retry_all_dead(store::now_ms())?;
            println!("{n} dead callback(s) will be delivered again");
        }
        QueueCommand::Drop { id } => {
            anyhow::ensure!(store.drop_callback(id)?, "no callback {id}");
            println!("callback {id} dropped");
        }
    }
    Ok(())
}

fn timestamp(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}
