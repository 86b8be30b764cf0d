//! The running configuration: the TOML file turned once into typed, resolved
//! values (addresses and CIDRs parsed, secrets read, HMAC keys prepared,
//! presets applied, certificates loaded). Request handling never parses
//! config text. Each section is one file: its serde mirror, its resolved
//! type and its resolution (`listen.rs`, `gateway.rs`, `route.rs`, …);
//! [`load`] runs them in order over the whole file, [`raw`] holds the
//! file's top level and the leaf values every section parses.

mod acme;
mod admin;
mod certificates;
pub mod defaults;
pub(crate) mod deploy;
mod gateway;
pub(crate) mod ip_list;
mod listen;
mod load;
mod passthrough;
pub(crate) mod pg_url;
pub mod presets;
pub(crate) mod public_key;
mod queue;
pub(crate) mod raw;
pub(crate) mod redact;
mod route;
pub(crate) mod secret;
mod syntax;
pub(crate) mod tls;
pub(crate) mod trial;
pub(crate) mod upstream_tls;

use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};

pub(crate) use acme::{Acme, AcmeChallenge, AcmeStore};
pub(crate) use admin::Admin;
pub(crate) use certificates::Tls;
pub(crate) use defaults::*;
pub use gateway::ReservedHeaders;
pub(crate) use gateway::{Assertion, AssertionVersion, Damping, Gateway};
#[cfg(test)]
pub(crate) use ip_list::NoLists;
pub(crate) use ip_list::{NamedLists, NotAdmitted};
pub(crate) use listen::Listen;
pub(crate) use passthrough::{Passthrough, ProtectKind, Protected};
pub(crate) use queue::QueueBackend;
pub(crate) use route::{
    hosts_match, Delivery, HmacCheck, IpCheck, Retry, Route, Routes, SignatureCheck, TokenCheck,
};
pub(crate) use upstream_tls::Upstream;

/// The running configuration.
#[derive(Debug)]
pub struct Config {
    /// The file it came from.
    pub(crate) path: PathBuf,
    pub(crate) listen: Listen,
    pub(crate) tls: Option<Tls>,
    pub(crate) gateway: Gateway,
    pub(crate) routes: Routes,
    /// `[[passthrough]]` in file order: the first whose hosts match serves.
    pub(crate) passthroughs: Vec<Arc<Passthrough>>,
    /// Query parameters whose values are replaced by `REDACTED` in logs:
    /// every route's token parameter (folded as PHP reads names), so a token sent to the wrong path is hidden too.
    pub(crate) redact_params: Vec<String>,
    /// Every secret the config holds, hidden by value wherever a request is
    /// logged or shown (`config/redact.rs`).
    pub(crate) redactor: redact::Redactor,
    /// Things that work but that an operator should change (literal secrets, trial certificate).
    pub(crate) warnings: Vec<String>,
    /// Trial values it holds (self_signed, placeholder secrets), each with
    /// what to edit: served on loopback only (see [`trial`]).
    pub(crate) trial: Vec<String>,
    /// `[queue]`: where the callback store lives.
    pub(crate) queue: QueueBackend,
    /// `[admin]`: the console.
    pub(crate) admin: Admin,
    /// The address lists the routes name (`"list:NAME"`), built-in or `[[ip_list]]`.
    pub(crate) ip_lists: Vec<ip_list::IpList>,
    /// Where the last good copy of each list is kept: `ip-lists/` in the
    /// state directory (`[queue] dir`, default /var/lib/callgate).
    pub(crate) ip_lists_dir: PathBuf,
}

impl Config {
    /// The state directories callgate will trust, and where each comes
    /// from (the queue's when a store is needed, each ACME state).
    pub(crate) fn state_dirs(&self) -> Vec<(&'static str, PathBuf)> {
        let mut dirs = Vec::new();
        if let (true, QueueBackend::Sqlite { dir }) = (self.needs_store(), &self.queue) {
            dirs.push(("queue dir", dir.clone()));
        }
        if let Some(acme) = self.tls.as_ref().and_then(|t| t.acme.as_ref()) {
            dirs.push(("tls.acme state", acme.state.clone()));
        }
        if !self.ip_lists.is_empty() {
            dirs.push(("ip lists", self.ip_lists_dir.clone()));
        }
        dirs
    }

    /// Whether any route needs the store (delivery = "queue" or dedupe_window).
    pub(crate) fn needs_store(&self) -> bool {
        self.routes
            .iter()
            .any(|r| r.stores() || r.dedupe_window.is_some())
    }
}

/// A config problem, located in the file, with the fix in its text; and
/// the others found in the same run (a missing secret does not hide the
/// next one).
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    file: PathBuf,
    /// `:line:column`, or empty when the problem has no single place.
    at: String,
    message: String,
    also: Vec<ConfigError>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}: {}", self.file.display(), self.at, self.message)?;
        for e in &self.also {
            write!(f, "\n{e}")?;
        }
        if !self.also.is_empty() {
            write!(f, "\n({} problems in the config)", self.also.len() + 1)?;
        }
        Ok(())
    }
}

impl ConfigError {
    /// One problem, in `file` at `at` (":line:column" or "").
    pub(crate) fn new(file: PathBuf, at: String, message: String) -> ConfigError {
        ConfigError {
            file,
            at,
            message,
            also: Vec::new(),
        }
    }

    /// All of them as one error, the first in the file first; None if none.
    pub(crate) fn all(mut errors: Vec<ConfigError>) -> Option<ConfigError> {
        let mut first = errors.drain(..1.min(errors.len())).next()?;
        first.also = errors;
        Some(first)
    }
}

/// Hash a token for constant-time, length-hiding comparison.
pub(crate) fn token_digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}
