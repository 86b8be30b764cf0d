//! `token = { param, secrets }`: the URL token.

use serde::Deserialize;
use toml::Spanned;

use super::At;
use crate::config::defaults::DEFAULT_TOKEN_PARAM;
use crate::config::load::Loader;
use crate::config::{secret, ConfigError};
use crate::php;

/// `token = { param = "token", secrets = [...] }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawToken {
    pub(crate) param: Option<Spanned<String>>,
    pub(crate) secrets: Vec<Spanned<String>>,
}

/// The URL token check. The given token is compared with each secret in
/// constant time over the secret's length (`verify/check/token.rs`).
#[derive(Debug)]
pub(crate) struct TokenCheck {
    /// The query parameter, as PHP names it (`api.key` is `api_key`).
    pub(crate) param: String,
    /// The tokens themselves: compared with the given one, and put back into
    /// a queued callback (stored without its token) when it is delivered.
    pub(crate) secrets: Vec<secret::Secret>,
    /// Where each token came from (`env:X`, `file:…`, `literal`), for `check`.
    pub(crate) sources: Vec<String>,
}

impl Loader<'_> {
    pub(super) fn token(
        &self,
        at: &At<'_>,
        raw: Option<Spanned<RawToken>>,
    ) -> Result<Option<TokenCheck>, ConfigError> {
        let label = at.label;
        let Some(t) = raw else {
            if at.preset.is_some_and(|d| d.requires_token) {
                return Err(self.error(Some(at.span.clone()), format!("{label}: preset {} requires a URL token (the provider signs nothing): add token = {{ param = \"token\", secrets = [\"env:GENGO_CALLBACK_TOKEN\"] }}", at.preset_name)));
            }
            return Ok(None);
        };
        let t_span = t.span();
        let t = t.into_inner();
        let param = match &t.param {
            Some(p) if p.get_ref().is_empty() => {
                return Err(self.at(
                    p,
                    format!(
                        "{label}.token.param is empty: name the query parameter, e.g. \"token\""
                    ),
                ))
            }
            Some(p) => php::folded(p.get_ref()),
            None => DEFAULT_TOKEN_PARAM.to_owned(),
        };
        let (secrets, sources) = self.secrets(label, "token", t_span, &t.secrets)?;
        Ok(Some(TokenCheck {
            param,
            secrets,
            sources,
        }))
    }
}
