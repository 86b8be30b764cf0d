#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use callgate::cli::{Cli, Command, LogFormat};

fn main() -> ExitCode {
    // An operator should see one sentence, never a backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("callgate: internal error: {info}")
    }));
    let cli = Cli::parse();
    let format = match cli.command {
        Command::Run { log_format, .. } => log_format,
        _ => LogFormat::Text,
    };
    init_logging(format);
    let result = match cli.command {
        // Connections get threads of their own (see server::run); this
        // runtime handles signals, reloads and queue delivery.
        Command::Run {
            config, threads, ..
        } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(callgate::server::run(&config, threads))),
        Command::Check { config } => callgate::commands::check(&config),
        Command::Queue { config, action } => callgate::commands::queue(&config, action),
        Command::Sign {
            secret,
            algorithm,
            encoding,
        } => callgate::commands::sign(&secret, algorithm, encoding),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("callgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Level from RUST_LOG (default info); text or JSON lines on stderr.
fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    // journald stamps every line itself.
    let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
    match (format, under_journald) {
        (LogFormat::Json, _) => fmt.json().flatten_event(true).init(),
        (LogFormat::Text, true) => fmt.without_time().init(),
        (LogFormat::Text, false) => fmt.init(),
    }
}
