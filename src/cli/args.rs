//! The command line as clap parses it.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::presets::{parse_builtin, Preset};
use crate::config::DEFAULT_PATH;
use crate::crypto::{Algorithm, Encoding};

/// callgate: a TLS-terminating gateway that verifies webhooks before they reach your receiver.
#[derive(Debug, Parser)]
#[command(name = "callgate", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `callgate presets …`
#[derive(Debug, Subcommand)]
pub enum PresetsCommand {
    /// One preset, every default it fills in, as TOML.
    Show {
        /// The preset's name (`callgate presets` lists them).
        #[arg(value_parser = parse_builtin)]
        name: Preset,
    },
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
        /// Resolve the config without reading secrets, certificates, CA
        /// files or state, and without network: routes, presets and checks
        /// as they would be (exit 0 unless the file itself is wrong).
        #[arg(long)]
        offline: bool,
        /// Where `cred:NAME` secrets are read from (DIR/NAME) when
        /// CREDENTIALS_DIRECTORY is not set: an admin's shell, e.g.
        /// /etc/callgate/secrets, the files the unit's LoadCredential= names.
        #[arg(long, value_name = "DIR")]
        credentials: Option<PathBuf>,
    },
    /// List the providers callgate knows (or show one): scheme, headers,
    /// replay default, where each is documented and where its test vector
    /// comes from.
    Presets {
        /// `show NAME`: one preset; none: the list.
        #[command(subcommand)]
        action: Option<PresetsCommand>,
        /// The list as README.md's Markdown table.
        #[arg(long)]
        markdown: bool,
    },
    /// Inspect and act on stored callbacks (routes with delivery = "queue").
    Queue {
        /// Config file (only the dir of the queue section is read: no secrets are needed).
        #[arg(long, short, global = true, default_value = DEFAULT_PATH)]
        config: PathBuf,
        /// What to do with the stored callbacks.
        #[command(subcommand)]
        action: QueueCommand,
    },
    /// Say which of a route's checks a captured request passes, and why the
    /// others fail (keys by index, never a secret). Exit 0 pass, 1 refuse.
    Explain {
        /// Config file.
        #[arg(long, short, default_value = DEFAULT_PATH)]
        config: PathBuf,
        /// The route's name.
        #[arg(long)]
        route: String,
        /// A raw HTTP/1.1 request as captured (head, blank line, body).
        #[arg(long)]
        request: PathBuf,
        /// The source address it came from (for allow_ips).
        #[arg(long)]
        from: Option<std::net::IpAddr>,
        /// The URL the provider called (for Twilio); default https:// + Host + target.
        #[arg(long)]
        url: Option<String>,
        /// Where `cred:NAME` secrets are read from (DIR/NAME) when
        /// CREDENTIALS_DIRECTORY is not set: an admin's shell, e.g.
        /// /etc/callgate/secrets, the files the unit's LoadCredential= names.
        #[arg(long, value_name = "DIR")]
        credentials: Option<PathBuf>,
    },
    /// Read a body on stdin and print its signature (to simulate a provider).
    Sign {
        /// Secret spec: env:NAME, file:PATH, cred:NAME or a literal.
        #[arg(long, required_unless_present = "private_key")]
        secret: Option<String>,
        /// With a public-key --preset (discord, telnyx, sendgrid,
        /// standard-webhooks-v1a): a secret spec holding the PKCS#8 private
        /// key, PEM (`openssl genpkey` writes one), to sign as the provider.
        #[arg(long, requires = "preset", conflicts_with = "secret")]
        private_key: Option<String>,
        /// Hash function under the HMAC.
        #[arg(long, value_enum, default_value = "sha1")]
        algorithm: Algorithm,
        /// How the digest is printed.
        #[arg(long, value_enum, default_value = "hex")]
        encoding: Encoding,
        /// Sign as this provider does and print its header lines
        /// (`Name: value`, one a line) instead of a bare signature.
        #[arg(long, value_parser = parse_builtin)]
        preset: Option<Preset>,
        /// With --preset: the signed timestamp (Unix seconds; default now).
        #[arg(long, requires = "preset")]
        timestamp: Option<i64>,
        /// With --preset: the message id (webhook-id, X-GitHub-Delivery, ...).
        #[arg(long, requires = "preset", default_value = "msg_callgate_sign")]
        id: String,
        /// With --preset twilio: the URL the provider calls.
        #[arg(long, requires = "preset")]
        url: Option<String>,
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
        state: Option<QueueState>,
    },
    /// Show one callback: its request line, headers and body.
    Show {
        /// The callback's id, as `list` shows it.
        id: i64,
    },
    /// Deliver again: one callback, or every dead letter.
    Retry {
        /// The callback's id.
        #[arg(required_unless_present = "all_dead", conflicts_with = "all_dead")]
        id: Option<i64>,
        /// Every dead letter instead of one callback.
        #[arg(long)]
        all_dead: bool,
    },
    /// Delete one callback for good.
    Drop {
        /// The callback's id.
        id: i64,
    },
}

/// How `run` writes its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where a stored callback stands, as `queue list --state` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueueState {
    /// Waiting for (re)delivery.
    Pending,
    /// Given up on; `callgate queue retry` revives it.
    Dead,
}
