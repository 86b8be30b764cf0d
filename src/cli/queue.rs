//! `callgate queue list|show|retry|drop`: inspect and act on stored
//! callbacks, beside a running gateway (the store takes both).

use std::path::Path;

use anyhow::Context;

use super::args::{QueueCommand, QueueState};
use crate::config::{Config, QueueBackend};
use crate::queue::ops::Action;
use crate::queue::{self, State, Store};

/// Run one `callgate queue` action against the store `config`'s `[queue]` names.
pub(super) fn queue(config: &Path, action: QueueCommand) -> anyhow::Result<()> {
    let backend = Config::queue_of(config)?;
    if let QueueBackend::Sqlite { dir } = &backend {
        let file = dir.join(queue::FILE_NAME);
        if !file.exists() {
            if let QueueCommand::List { .. } = action {
                println!(
                    "no callbacks stored ({} does not exist yet)",
                    file.display()
                );
                return Ok(());
            }
            anyhow::bail!("no callback store at {}", file.display());
        }
    }
    let store = Store::open(&backend)?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(act(&store, config, action))
}

async fn act(store: &Store, config: &Path, action: QueueCommand) -> anyhow::Result<()> {
    match action {
        QueueCommand::List { route, state } => {
            let state = state.map(|s| match s {
                QueueState::Pending => State::Pending,
                QueueState::Dead => State::Dead,
            });
            list(store, route, state).await?
        }
        QueueCommand::Show { id } => show(store, config, id).await?,
        QueueCommand::Retry { id: Some(id), .. } => {
            println!("{}", act_on(store, Action::Retry(id)).await?)
        }
        QueueCommand::Retry { id: None, .. } => {
            println!("{}", act_on(store, Action::RetryAllDead).await?)
        }
        QueueCommand::Drop { id } => println!("{}", act_on(store, Action::Drop(id)).await?),
    }
    Ok(())
}

/// The console's code path, with the CLI's error text.
async fn act_on(store: &Store, action: Action) -> anyhow::Result<String> {
    Ok(queue::ops::act(store, action).await?)
}

async fn list(store: &Store, route: Option<String>, state: Option<State>) -> anyhow::Result<()> {
    let all = store.list(route, state).await?;
    println!(
        "{:>6}  {:<16} {:<8} {:>8}  {:<20}  {:<20}  {:>8}  last error",
        "id", "route", "state", "attempts", "arrived (UTC)", "next attempt (UTC)", "bytes"
    );
    for c in &all {
        let next = match c.state {
            State::Pending => timestamp(c.next_attempt_ms),
            State::Dead => "-".into(),
        };
        println!(
            "{:>6}  {:<16} {:<8} {:>8}  {:<20}  {:<20}  {:>8}  {}",
            c.id,
            c.callback.route,
            c.state.as_str(),
            c.attempts,
            timestamp(c.callback.arrived_ms),
            next,
            c.callback.body.len(),
            c.last_error.as_deref().unwrap_or("-")
        );
    }
    println!("{} callback(s)", all.len());
    Ok(())
}

async fn show(store: &Store, config: &Path, id: i64) -> anyhow::Result<()> {
    let c = store
        .get(id)
        .await?
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
        println!("last error: {}", printable(e.as_bytes()));
    }
    // The target as it will be sent (token REDACTED: it is never stored),
    // from the route's upstream; every secret the config holds REDACTED.
    let routes = with_secrets(config);
    let hide = routes
        .as_ref()
        .map(|c| c.redactor.clone())
        .unwrap_or_default();
    let route = routes
        .as_ref()
        .and_then(|c| c.routes.iter().find(|r| r.name == cb.route));
    let target = match route {
        Some(r) => crate::upstream::upstream_uri(r, cb.query.as_deref()).to_string(),
        None => cb
            .query
            .as_ref()
            .map_or("(route not in the config)".into(), |q| {
                format!("(route not in the config) ?{q}")
            }),
    };
    println!(
        "\n{} {}",
        hide.text(&cb.method),
        printable(&hide.bytes(target.as_bytes()))
    );
    let headers = queue::store::from_lines(&cb.headers).unwrap_or_default();
    for (name, value) in headers.iter() {
        let (name, value) = hide.header(name.as_str(), value.as_bytes());
        println!(
            "{}: {}",
            printable(name.as_bytes()),
            printable(value.as_bytes())
        );
    }
    println!();
    let body = printable(&hide.bytes(&cb.body));
    print!("{body}");
    if !body.ends_with('\n') {
        println!();
    }
    Ok(())
}

/// The config with its secrets, to hide them; offline (credential headers
/// and token parameters still hidden by name) with a warning when they
/// cannot be read here.
fn with_secrets(config: &Path) -> Option<Config> {
    match Config::load(config) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("warning: the config's secrets cannot be read here, so copies of them under other names are not hidden ({e})");
            Config::load_offline(config).ok()
        }
    }
}

/// Stored bytes as a terminal may show them: a provider's (or an
/// attacker's) control bytes and escape sequences come out as `\xNN`,
/// never as commands to the operator's terminal.
fn printable(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' | '\t' => out.push(c),
                c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

fn timestamp(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}
