//! `handshake = { verify_token, secret_file }`: the provider's endpoint
//! check, answered by callgate, and what it needs beyond the route's keys.

use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::At;
use crate::config::load::Loader;
use crate::config::{secret, ConfigError, Route};
use crate::crypto::{Algorithm, Key};
use crate::learned::Learned;

/// `handshake = { verify_token = SPEC }`: what a provider's endpoint check needs beyond the route's keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHandshake {
    pub(crate) verify_token: Option<Spanned<String>>,
    pub(crate) secret_file: Option<Spanned<String>>,
}

/// A route's handshake as `Route` keeps it: the kind, and Meta's verify token.
pub(super) type RouteHandshake = Option<(super::presets::Handshake, Option<secret::Secret>)>;

impl Loader<'_> {
    /// The preset's endpoint check, with Meta's verify token, or the file
    /// that keeps the secret Asana hands over.
    pub(super) fn handshake(
        &self,
        at: &At<'_>,
        raw: Option<Spanned<RawHandshake>>,
        (has_token, has_ips): (bool, bool),
    ) -> Result<(RouteHandshake, Option<Arc<Learned>>), ConfigError> {
        let label = at.label;
        let Some(kind) = at.preset.and_then(|d| d.handshake) else {
            if let Some(r) = raw {
                return Err(self.error(Some(r.span()), format!("{label}.handshake is for presets whose provider checks the endpoint (meta, zoom, x, dropbox, slack, microsoft-graph, asana)")));
            }
            return Ok((None, None));
        };
        // Its answer is an HMAC under the route's key: only the provider may ask.
        if kind.computes_with_key() && !has_token && !has_ips {
            return Err(self.error(Some(at.span.clone()), format!("{label}: preset {} answers the {} handshake with an HMAC under the route's key, so only the provider may ask it: add token = {{ secrets = [\"env:URL_TOKEN\"] }} and give the provider the URL with ?token=…, or allow_ips = [the provider's addresses]", at.preset_name, kind.name())));
        }
        let (spec, file) = match raw {
            Some(r) => {
                let r = r.into_inner();
                (r.verify_token, r.secret_file)
            }
            None => (None, None),
        };
        if let (false, Some(f)) = (kind.hands_over_secret(), &file) {
            return Err(self.at(f, format!("{label}.handshake.secret_file is for a provider that hands its secret over in the handshake (asana); remove it")));
        }
        let learned = match kind.hands_over_secret() {
            true => Some(self.secret_file(at, file, has_token)?),
            false => None,
        };
        let token = match (kind, spec) {
            (super::presets::Handshake::MetaVerifyToken, None) => {
                return Err(self.error(Some(at.span.clone()), format!("{label}: preset meta answers Meta's verification request itself and needs the verify token you gave Meta: add handshake = {{ verify_token = \"env:META_VERIFY_TOKEN\" }}")));
            }
            (_, None) => None,
            (_, Some(spec)) if self.offline => {
                let _ = spec;
                Some(secret::Secret::from(b"offline".to_vec()))
            }
            (_, Some(spec)) => {
                let key = format!("{label}.handshake.verify_token");
                let resolved = secret::resolve(spec.get_ref())
                    .map_err(|e| self.at(&spec, format!("{key}: {e}")));
                if let Ok(s) = &resolved {
                    self.keep(&key, s);
                }
                Some(self.or_defer(resolved, || secret::Secret::from(b"stand-in".to_vec())))
            }
        };
        Ok((Some((kind, token)), learned))
    }

    /// `handshake = { secret_file = PATH }`: where the secrets Asana hands
    /// over are kept. Its handshake is signed by nothing, so the route's
    /// URL token must guard it.
    pub(super) fn secret_file(
        &self,
        at: &At<'_>,
        file: Option<Spanned<String>>,
        has_token: bool,
    ) -> Result<Arc<Learned>, ConfigError> {
        let label = at.label;
        let Some(file) = file else {
            return Err(self.error(Some(at.span.clone()), format!("{label}: preset {} hands its signing secret over in a handshake, and callgate keeps it: add handshake = {{ secret_file = \"/var/lib/callgate/{}.secrets\" }} (a file in a directory of callgate's own)", at.preset_name, at.preset_name)));
        };
        if !has_token {
            return Err(self.error(Some(at.span.clone()), format!("{label}: the {} handshake is signed by nothing, so anyone could hand callgate a key; the route's URL token must guard it: add token = {{ secrets = [\"env:ASANA_URL_TOKEN\"] }} and give Asana the URL with ?token=…", at.preset_name)));
        }
        let path = std::path::Path::new(file.get_ref());
        if !path.is_absolute() {
            return Err(self.at(&file, format!("{label}.handshake.secret_file must be an absolute path such as \"/var/lib/callgate/asana.secrets\"")));
        }
        let algorithm = at
            .preset
            .and_then(|d| d.hmac)
            .map_or(Algorithm::Sha256, |h| h.algorithm);
        if self.offline {
            return Ok(Learned::detached(path, algorithm));
        }
        let learned = Learned::open(path, algorithm)
            .map_err(|e| self.at(&file, format!("{label}.handshake.secret_file: {e}")))?;
        if learned.keys().is_empty() {
            self.warn(format!("{label}: no secret in {} yet; signed events are refused until the provider's handshake (with the URL token) hands one over", path.display()));
        }
        Ok(learned)
    }

    /// A key a handshake answers with (X's CRC, Zoom's validation: HMAC of
    /// any token the caller chooses) must sign nothing that could be a
    /// token on another route either: a route holding the same key under
    /// `{body}` without a JSON-object payload would take the answer as the
    /// signature of a token-shaped body.
    pub(super) fn no_shared_oracle_key(&self, routes: &[Arc<Route>]) -> Result<(), ConfigError> {
        if self.offline {
            return Ok(()); // stand-in secrets, all alike
        }
        let id = |k: &Key| k.digest(b"callgate: is this the same key?");
        let answering = routes.iter().filter_map(|r| {
            let (kind, _) = r
                .handshake
                .as_ref()
                .filter(|(k, _)| k.computes_with_key())?;
            Some((
                r,
                *kind,
                r.hmac.as_ref()?.keys.iter().map(id).collect::<Vec<_>>(),
            ))
        });
        for (oracle, kind, keys) in answering {
            let token_taking = routes.iter().find(|r| {
                let takes = r.hmac.as_ref().filter(|h| {
                    h.scheme.signed == super::presets::Signed::Body
                        && r.payload != Some(super::presets::Payload::JsonObject)
                });
                takes.is_some_and(|h| h.keys.iter().any(|k| keys.contains(&id(k))))
            });
            if let Some(r) = token_taking {
                return Err(self.error(None, format!("route {:?} signs with the key of route {:?}, whose {} handshake answers an HMAC of any token the caller chooses; {:?} checks an HMAC of the body alone, so a token-shaped body signed by that answer would pass. Give each route its own secret (the provider issues one per endpoint)", r.name, oracle.name, kind.name(), r.name)));
            }
        }
        Ok(())
    }
}
