//! Command-line definitions.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::DEFAULT_PATH;
use crate::signature::{Algorithm, Encoding};

/// callgate: a TLS-terminating gateway that verifies webhooks before they reach your receiver.
#[derive(Debug, Parser)]
#[command(name = "callgate", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve: terminate TLS, verify callbacks, forward the authentic ones.
    Run {
        /// Config file.
        #[arg(long, short, default_value = DEFAULT_PATH)]
        config: PathBuf,
        /// Log line format: human-readable text, or one JSON object per line for log shippers.
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
        /// Connection threads, each with its own event loop (default: one per CPU core).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Validate the config, resolve secrets, load certificates; print the routes.
    Check {
        /// Config file.
        #[arg(long, short, default_value = DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Inspect and act on stored callbacks (routes with delivery = "queue").
    Queue {
        /// Config file (only [queue] dir is read: no secrets are needed).
        #[arg(long, short, global = true, default_value = DEFAULT_PATH)]
        config: PathBuf,
        #[command(subcommand)]
        action: QueueCommand,
    },
    /// Read a body on stdin and print its signature (to simulate a provider).
    Sign {
        /// Secret spec: env:NAME, file:PATH, cred:NAME or a literal.
        #[arg(long)]
        secret: String,
        #[arg(long, value_enum, default_value = "sha1")]
        algorithm: Algorithm,
        #[arg(long, value_enum, default_value = "hex")]
        encoding: Encoding,
    },
}

/// `callgate queue ...`
#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// List stored callbacks, oldest first.
    List {
        /// Only this route.
        #[arg(long)]
        route: Option<String>,
        /// Only pending or dead callbacks.
        #[arg(long, value_enum)]
        state: Option<crate::queue::State>,
    },
    /// Show one callback: its request line, headers and body.
    Show { id: i64 },
    /// Deliver again: one callback, or every dead letter.
    Retry {
        #[arg(required_unless_present = "all_dead", conflicts_with = "all_dead")]
        id: Option<i64>,
        #[arg(long)]
        all_dead: bool,
    },
    /// Delete one callback for good.
    Drop { id: i64 },
}

/// How `run` writes its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}
