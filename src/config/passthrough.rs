//! `[[passthrough]]`: the site behind callgate, and everything it must
//! never reach unverified.

use std::sync::Arc;

use super::defaults::{
    DEFAULT_MAX_REQUESTS_PER_CLIENT, DEFAULT_MIN_BODY_RATE, DEFAULT_PASSTHROUGH_MAX_BODY_BYTES,
    MAX_PASSTHROUGH_MAX_BODY_BYTES,
};
use super::load::Loader;
use super::{dispatch_params, raw, ConfigError, Passthrough, Protected, Routes, Upstream};
use toml::Spanned;

impl Loader<'_> {
    /// Every `[[passthrough]]`.
    pub(super) fn passthroughs(
        &self,
        raw: Vec<Spanned<raw::RawPassthrough>>,
        routes: &Routes,
    ) -> Result<Vec<Arc<Passthrough>>, ConfigError> {
        raw.into_iter()
            .enumerate()
            .map(|(i, spanned)| {
                self.passthrough(i, spanned.into_inner(), routes)
                    .map(Arc::new)
            })
            .collect()
    }

    /// One `[[passthrough]]`: its origin, what it must never reach
    /// unverified, its limits.
    fn passthrough(
        &self,
        i: usize,
        mut raw: raw::RawPassthrough,
        routes: &Routes,
    ) -> Result<Passthrough, ConfigError> {
        let label = format!("passthrough[{i}]");
        let mut upstream = Upstream::parse(raw.upstream.get_ref())
            .map_err(|m| self.at(&raw.upstream, format!("{label}.upstream: {m}")))?;
        upstream.tls = self.upstream_tls(&label, &upstream, raw.upstream_tls.take())?;
        if upstream.path != "/" || upstream.query.is_some() {
            return Err(self.at(&raw.upstream, format!("{label}.upstream must be an origin such as \"http://127.0.0.1:8080\": the request's own path and query are kept")));
        }
        let (protect, params) = self.protected(&label, &raw, routes)?;
        Ok(Passthrough {
            hosts: raw.hosts.map(|h| self.hosts(&label, h)).transpose()?,
            upstream,
            protect,
            params: params.into(),
            max_body_bytes: self.number(
                raw.max_body_bytes,
                DEFAULT_PASSTHROUGH_MAX_BODY_BYTES,
                1..=MAX_PASSTHROUGH_MAX_BODY_BYTES,
                &format!("{label}.max_body_bytes must be between 1 and {MAX_PASSTHROUGH_MAX_BODY_BYTES} (1 TiB)"),
            )?,
            upgrades: self.upgrades(&label, raw.upgrades)?,
            max_requests_per_client: self.number(
                raw.max_requests_per_client,
                DEFAULT_MAX_REQUESTS_PER_CLIENT,
                1..=100_000,
                &format!("{label}.max_requests_per_client must be between 1 and 100000"),
            )?,
            min_body_rate: match raw.min_body_rate {
                None => DEFAULT_MIN_BODY_RATE,
                Some(r) => r.into_inner().0,
            },
        })
    }

    /// What a pass-through must never reach unverified: its `protect` list,
    /// each route's path, and each route's upstream script (a path, or the
    /// dispatch parameters of its query).
    fn protected(
        &self,
        label: &str,
        raw: &raw::RawPassthrough,
        routes: &Routes,
    ) -> Result<(Vec<Protected>, Vec<DispatchParam>), ConfigError> {
        let mut protect = Vec::new();
        for p in &raw.protect {
            if !p.get_ref().starts_with('/') {
                return Err(self.at(
                    p,
                    format!(
                        "{label}.protect: {:?} must be a path such as \"/admin/\" or \"/cron.php\"",
                        p.get_ref()
                    ),
                ));
            }
            protect.push(Protected::path(p.get_ref()));
        }
        // A route's script is protected on every pass-through, whatever
        // its address: a second vhost or port may serve the same files.
        let protect_routes = raw.protect_routes.unwrap_or(true);
        let mut params = Vec::new();
        for r in routes.iter().filter(|_| protect_routes) {
            match r.upstream.query.as_deref() {
                Some(q) => params.extend(dispatch_params(q)),
                None => protect.push(Protected::path(&r.upstream.path)),
            }
        }
        protect.extend(
            routes
                .iter()
                .map(|r| Protected::route_path(&r.path, &r.name)),
        );
        params.dedup();
        Ok((protect, params))
    }

    /// The upgrade protocols a pass-through relays (default: websocket).
    fn upgrades(
        &self,
        label: &str,
        raw: Option<Vec<Spanned<String>>>,
    ) -> Result<Vec<String>, ConfigError> {
        let Some(list) = raw else {
            return Ok(vec!["websocket".to_owned()]);
        };
        list.iter()
            .map(|u| {
                upgrade_token(u.get_ref()).ok_or_else(|| {
                    self.at(
                        u,
                        format!(
                            "{label}.upgrades: {:?} is not an upgrade token such as \"websocket\"",
                            u.get_ref()
                        ),
                    )
                })
            })
            .collect()
    }
}

/// A front controller's parameter and the value that dispatches to a route's script.
type DispatchParam = (String, String);

/// An upgrade protocol name as RFC 9110 writes it (`websocket`,
/// `h2c`), lower case; None if it is no token.
fn upgrade_token(s: &str) -> Option<String> {
    let ok = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&b));
    ok.then(|| s.to_ascii_lowercase())
}
