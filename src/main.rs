#![forbid(unsafe_code)]
//! The `callgate` binary: parse the command line, set up logging, run the
//! subcommand, turn an error into one sentence and exit status 1.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use callgate::cli::{self, Cli, Command, LogFormat};

// jemalloc, with its background threads purging freed pages: memory a burst
// of connections took goes back to the system within seconds of their
// closing (glibc's per-thread arenas kept it, and each burst added to it).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    // An operator should see one sentence, never a backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("callgate: internal error: {info}")
    }));
    // Unused pages are returned by jemalloc's own threads after its decay
    // time (10 s), without waiting for the next allocation.
    #[cfg(feature = "jemalloc")]
    let _ = tikv_jemalloc_ctl::background_thread::write(true);
    let cli = Cli::parse();
    let format = match cli.command {
        Command::Run { log_format, .. } => log_format,
        _ => LogFormat::Text,
    };
    init_logging(format);
    match cli::execute(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("callgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Libraries whose debug and trace output carries what callgate must never
/// log (query parameters with stored headers and bodies, request and frame
/// contents, ACME payloads): held at info whatever RUST_LOG says.
const QUIET_BELOW_INFO: &[&str] = &[
    "tokio_postgres",
    "postgres_protocol",
    "deadpool_postgres",
    "deadpool",
    "rusqlite",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "tokio_rustls",
    "rustls_platform_verifier",
    "instant_acme",
    "reqwest",
    "tungstenite",
];

/// Level from RUST_LOG (default info); text or JSON lines on stderr.
fn init_logging(format: LogFormat) {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    for target in QUIET_BELOW_INFO {
        // A later directive for the same target replaces RUST_LOG's.
        if let Ok(d) = format!("{target}=info").parse() {
            filter = filter.add_directive(d);
        }
    }
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
