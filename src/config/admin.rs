//! `[admin]`: the console's password and how many requests it keeps.

use toml::Spanned;

use super::defaults::{DEFAULT_REQUESTS_KEPT, MAX_REQUESTS_KEPT};
use super::load::Loader;
use super::{raw, token_digest, Admin, ConfigError, Listen};

impl Loader<'_> {
    /// The console is on when a password is set, and needs the admin listener.
    pub(super) fn admin(
        &self,
        raw: Option<Spanned<raw::RawAdmin>>,
        listen: &Listen,
    ) -> Result<Admin, ConfigError> {
        let Some(raw) = raw else {
            return Ok(Admin::default());
        };
        let span = raw.span();
        let raw = raw.into_inner();
        let Some(console) = raw.console else {
            return Ok(Admin::default());
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
        })
    }
}
