//! `[admin]`: the console's password, how many requests it keeps, and the
//! Host names the admin listener answers.

use serde::Deserialize;
use toml::Spanned;

use super::defaults::{DEFAULT_REQUESTS_KEPT, MAX_REQUESTS_KEPT};
use super::load::Loader;
use super::{token_digest, ConfigError, Listen};

/// `[admin]`: the operator's console on the admin listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    pub(crate) console: Option<Spanned<RawConsole>>,
    pub(crate) requests_kept: Option<Spanned<u64>>,
    pub(crate) hosts: Option<Spanned<Vec<String>>>,
}

/// `[admin] console = { password = SPEC }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConsole {
    pub(crate) password: Spanned<String>,
}

/// `[admin]`: the operator's console on the admin listener (off unless a
/// password is set) and how many requests it keeps in memory.
#[derive(Debug, Default)]
pub(crate) struct Admin {
    /// SHA-256 of the console's password; None: the console is off.
    pub(crate) console_password: Option<[u8; 32]>,
    /// The last requests kept for the console (0 when it is off).
    pub(crate) requests_kept: usize,
    /// Host names the admin listener answers besides localhost and IP
    /// literals (lowercase, no trailing dot).
    pub(crate) hosts: Vec<String>,
}

impl Loader<'_> {
    /// The console is on when a password is set, and needs the admin listener.
    pub(super) fn admin(
        &self,
        raw: Option<Spanned<RawAdmin>>,
        listen: &Listen,
    ) -> Result<Admin, ConfigError> {
        let Some(raw) = raw else {
            return Ok(Admin::default());
        };
        let span = raw.span();
        let mut raw = raw.into_inner();
        let hosts = self.admin_hosts(raw.hosts.take())?;
        let Some(console) = raw.console else {
            return Ok(Admin {
                hosts,
                ..Admin::default()
            });
        };
        if listen.admin.is_none() {
            return Err(self.error(Some(span), "[admin] console is served on the admin listener: add admin = \"127.0.0.1:9090\" to [listen]"));
        }
        let spec = console.into_inner().password;
        let password = self.secret(&spec, "admin.console.password");
        let requests_kept = self.number(
            raw.requests_kept,
            DEFAULT_REQUESTS_KEPT,
            1..=MAX_REQUESTS_KEPT,
            &format!("admin.requests_kept must be between 1 and {MAX_REQUESTS_KEPT}"),
        )?;
        Ok(Admin {
            console_password: Some(token_digest(password.expose())),
            requests_kept: requests_kept as usize,
            hosts,
        })
    }

    /// `[admin] hosts`: DNS names (no port, no wildcard), at most 64.
    fn admin_hosts(&self, raw: Option<Spanned<Vec<String>>>) -> Result<Vec<String>, ConfigError> {
        let Some(raw) = raw else {
            return Ok(Vec::new());
        };
        let span = raw.span();
        let hosts = raw.into_inner();
        if hosts.len() > MAX_ADMIN_HOSTS {
            return Err(self.error(
                Some(span),
                format!("admin.hosts: at most {MAX_ADMIN_HOSTS} names"),
            ));
        }
        hosts
            .into_iter()
            .map(|h| {
                let name = h.trim_end_matches('.').to_ascii_lowercase();
                let ok = !name.is_empty()
                    && name.len() <= 253
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
                match ok {
                    true => Ok(name),
                    false => Err(self.error(Some(span.clone()), format!("admin.hosts: {h:?} is not a host name: write names such as \"admin.example.com\" (no port, scheme or wildcard; localhost and IP addresses are always answered)"))),
                }
            })
            .collect()
    }
}

/// Names `[admin] hosts` may list.
const MAX_ADMIN_HOSTS: usize = 64;
