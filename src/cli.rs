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
    },
    /// Validate the config, resolve secrets, load certificates; print the routes.
    Check {
        /// Config file.
        #[arg(long, short, default_value = DEFAULT_PATH)]
        config: PathBuf,
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

/// How `run` writes its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}
