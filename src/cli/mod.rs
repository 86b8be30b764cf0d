//! The command line: [`Cli`] as clap parses it, and [`execute`], which runs
//! one subcommand. `run` goes to [`crate::server`]; the others live here.

mod args;
mod check;
mod explain;
mod presets;
mod queue;
mod sign;

pub use args::{Cli, Command, LogFormat, PresetsCommand, QueueCommand, QueueState};

/// Run one subcommand to its end.
pub fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        // Connections get threads of their own (see server::run); this
        // runtime handles signals, reloads and queue delivery.
        Command::Run {
            config, threads, ..
        } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(crate::server::run(&config, threads))),
        Command::Check {
            config,
            offline,
            credentials,
        } => {
            shell_credentials(credentials)?;
            check::check(&config, offline)
        }
        Command::Explain {
            config,
            route,
            request,
            from,
            url,
            credentials,
        } => {
            shell_credentials(credentials)?;
            explain::explain(&config, &route, &request, from, url)
        }
        Command::Queue { config, action } => queue::queue(&config, action),
        Command::Presets { action, markdown } => {
            print!("{}", presets_text(action, markdown));
            Ok(())
        }
        Command::Sign {
            secret: Some(secret),
            algorithm,
            encoding,
            preset: None,
            ..
        } => sign::sign(&secret, algorithm, encoding),
        Command::Sign {
            secret,
            private_key,
            preset: Some(preset),
            timestamp,
            id,
            url,
            ..
        } => {
            let key = match (private_key, secret) {
                (Some(spec), _) => sign::SigningKey::Private(spec),
                (None, Some(spec)) => sign::SigningKey::Secret(spec),
                (None, None) => anyhow::bail!("add --secret SPEC (or --private-key SPEC)"),
            };
            let provider = sign::Provider {
                timestamp,
                id: &id,
                url: url.as_deref(),
            };
            sign::sign_as(preset, &key, &provider)
        }
        Command::Sign { secret: None, .. } => {
            anyhow::bail!("add --secret SPEC (the HMAC key)")
        }
    }
}

/// `--credentials DIR`: where `cred:NAME` is read from in an admin's shell
/// (CREDENTIALS_DIRECTORY, set by systemd, still comes first).
fn shell_credentials(dir: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let Some(dir) = dir else {
        return Ok(());
    };
    if !dir.is_dir() {
        anyhow::bail!(
            "--credentials {}: not a directory (give the directory that holds the files LoadCredential= names, e.g. /etc/callgate/secrets)",
            dir.display()
        );
    }
    if std::env::var_os("CREDENTIALS_DIRECTORY").is_some() {
        eprintln!("note: CREDENTIALS_DIRECTORY is set: cred: secrets are read from there, not from --credentials");
    }
    crate::config::secret::credentials_from(dir);
    Ok(())
}

/// `callgate presets [--markdown]` or `callgate presets show NAME`.
fn presets_text(action: Option<PresetsCommand>, markdown: bool) -> String {
    match action {
        Some(PresetsCommand::Show { name }) => presets::show(name),
        None if markdown => presets::markdown(),
        None => presets::list(),
    }
}
