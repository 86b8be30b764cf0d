//! `[queue]` → [`QueueBackend`]: the embedded SQLite file (default) or a
//! PostgreSQL database shared by several instances.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::load::Loader;
use super::raw::Dur;
use super::{pg_url, secret, ConfigError, DEFAULT_QUEUE_DIR, DEFAULT_QUEUE_LEASE};

/// `[queue]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQueue {
    pub(crate) dir: Option<String>,
    pub(crate) backend: Option<Spanned<String>>,
    pub(crate) url: Option<Spanned<String>>,
    pub(crate) lease: Option<Dur>,
}

/// `[queue]`, resolved: which store holds queued callbacks and dedupe rows.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum QueueBackend {
    /// The embedded SQLite file in `dir`: one machine, no server.
    Sqlite { dir: PathBuf },
    /// A PostgreSQL database several instances share.
    Postgres {
        /// The `postgres://` URL without its TLS parameters (it may hold a password).
        url: secret::Secret,
        /// The TLS the connection demands (`sslmode`, `sslrootcert`).
        tls: pg_url::PgTls,
        /// How long a claim on a callback lasts before another instance may take it.
        lease: Duration,
    },
}

impl std::fmt::Debug for QueueBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueueBackend::Sqlite { dir } => write!(f, "sqlite in {}", dir.display()),
            QueueBackend::Postgres { lease, tls, .. } => {
                write!(f, "postgres ({}, lease {lease:?})", tls.describe())
            }
        }
    }
}

/// Where the named address lists are kept: the state directory, whichever
/// store the queue uses.
pub(super) fn lists_dir(queue: Option<&RawQueue>) -> std::path::PathBuf {
    Path::new(
        queue
            .and_then(|q| q.dir.as_deref())
            .unwrap_or(super::DEFAULT_QUEUE_DIR),
    )
    .join("ip-lists")
}

/// Whether every host of the URL is this machine (a Unix socket, or a
/// loopback name or address).
fn loopback_only(config: &tokio_postgres::Config) -> bool {
    use tokio_postgres::config::Host;
    config.get_hosts().iter().all(|h| match h {
        Host::Tcp(name) => {
            name == "localhost"
                || name
                    .trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        Host::Unix(_) => true,
    })
}

impl Loader<'_> {
    /// `warn`: whether to note things an operator should change (off for the CLI).
    pub(super) fn queue(
        &self,
        raw: Option<RawQueue>,
        warn: bool,
    ) -> Result<QueueBackend, ConfigError> {
        let raw = raw.unwrap_or_default();
        match raw.backend.as_ref().map(|b| b.get_ref().as_str()) {
            None | Some("sqlite") => {
                if let Some(url) = &raw.url {
                    return Err(self.at(url, "queue.url is for backend = \"postgres\"; the sqlite store lives in [queue] dir"));
                }
                let dir = raw
                    .dir
                    .map_or_else(|| PathBuf::from(DEFAULT_QUEUE_DIR), PathBuf::from);
                Ok(QueueBackend::Sqlite { dir })
            }
            Some("postgres") => {
                let Some(spec) = raw.url else {
                    return Err(self.error(None, "[queue] backend = \"postgres\" needs url = \"env:CALLGATE_QUEUE_URL\" (a secret spec holding a postgres:// URL)"));
                };
                let url = match self.offline {
                    true => secret::Secret::from(b"postgres://offline.invalid/callgate".to_vec()),
                    false => self.or_defer(
                        secret::resolve(spec.get_ref())
                            .map_err(|e| self.at(&spec, format!("queue.url: {e}"))),
                        || secret::Secret::from(b"postgres://unresolved.invalid/callgate".to_vec()),
                    ),
                };
                let text = std::str::from_utf8(url.expose()).unwrap_or("");
                if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
                    return Err(self.at(&spec, "queue.url must hold a postgres:// URL, e.g. postgres://callgate@db.internal/callgate (TLS with the host name checked, by default)"));
                }
                let (stripped, tls) =
                    pg_url::parse(text).map_err(|e| self.at(&spec, format!("queue.url: {e}")))?;
                let parsed: tokio_postgres::Config = stripped.parse().map_err(|e| {
                    self.at(
                        &spec,
                        format!("queue.url is not a connection URL tokio-postgres reads ({e})"),
                    )
                })?;
                if let Some(password) = parsed.get_password().filter(|_| !self.offline) {
                    self.keep(
                        "queue.url's password",
                        &secret::Secret::from(password.to_vec()),
                    );
                }
                if warn && secret::describe(spec.get_ref()) == "literal" {
                    self.warn("queue.url is written in the config file: it may hold a password; move it to env:, file: or cred:".into());
                }
                if warn && tls.mode == pg_url::SslMode::Disable && !loopback_only(&parsed) {
                    self.warn("queue.url has sslmode=disable towards a host that is not loopback: callbacks and the password cross the network in clear".into());
                }
                Ok(QueueBackend::Postgres {
                    url: secret::Secret::from(stripped.into_bytes()),
                    tls,
                    lease: self.duration(
                        raw.lease,
                        DEFAULT_QUEUE_LEASE,
                        std::time::Duration::from_secs(1)..=std::time::Duration::from_secs(3600),
                        "queue.lease",
                    )?,
                })
            }
            Some(other) => {
                let at = raw.backend.as_ref().expect("matched Some");
                Err(self.at(
                    at,
                    format!(
                        "queue.backend = {other:?}: write \"sqlite\" (default) or \"postgres\""
                    ),
                ))
            }
        }
    }
}
