//! `[[passthrough]]`: the site behind callgate, and everything it must
//! never reach unverified.

use std::sync::Arc;

use super::defaults::{
    DEFAULT_MAX_REQUESTS_PER_CLIENT, DEFAULT_MIN_BODY_RATE, DEFAULT_PASSTHROUGH_MAX_BODY_BYTES,
    MAX_PASSTHROUGH_MAX_BODY_BYTES,
};
use super::load::Loader;
use super::{
    dispatch_params, raw, ConfigError, Passthrough, ProtectKind, Protected, Routes, Upstream,
};
use crate::values::Values;
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
        let values = match raw.protect_values.unwrap_or(true) {
            true => self.values(&label, &protect, &params),
            false => Values::default(),
        };
        Ok(Passthrough {
            hosts: raw.hosts.map(|h| self.hosts(&label, h)).transpose()?,
            upstream,
            protect,
            params: params.into(),
            values,
            max_body_bytes: self.number(
                raw.max_body_bytes,
                DEFAULT_PASSTHROUGH_MAX_BODY_BYTES,
                1..=MAX_PASSTHROUGH_MAX_BODY_BYTES,
                &format!("{label}.max_body_bytes must be between 1 and {MAX_PASSTHROUGH_MAX_BODY_BYTES} (1 TiB)"),
            )?,
            upgrades: self.upgrades(&label, raw.upgrades)?,
            websocket_paths: self.websocket_paths(&label, raw.websocket_paths)?,
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

    /// protect_values: the front controller's dispatch values and the
    /// protected scripts' paths (`tolq/callback.php`), each checked: a
    /// short value or an ordinary word would refuse every page that
    /// mentions it.
    fn values(&self, label: &str, protect: &[Protected], params: &[DispatchParam]) -> Values {
        let scripts = protect
            .iter()
            .filter(|p| p.kind == ProtectKind::Script)
            .map(|p| p.shown.trim_start_matches('/').to_lowercase());
        let mut values: Vec<String> = params
            .iter()
            .map(|(_, v)| v.clone())
            .chain(scripts)
            .collect();
        values.sort();
        values.dedup();
        for v in values.iter().filter(|v| too_common(v)) {
            self.warn(format!(
                "{label}: the protected value {v:?} is short or an ordinary word: every request that mentions it anywhere (a page's text, a search, a cookie) is refused (403); rename the action or lock it on the server side, or set protect_values = false on a pass-through that has no front controller"
            ));
        }
        Values::new(&values)
    }

    /// websocket_paths: where upgrades are relayed (default: nowhere).
    fn websocket_paths(
        &self,
        label: &str,
        raw: Option<Vec<Spanned<String>>>,
    ) -> Result<Vec<String>, ConfigError> {
        raw.unwrap_or_default()
            .iter()
            .map(|p| match p.get_ref() {
                s if s.starts_with('/') && !s.contains(['?', '#', '%', '\\']) && s.len() <= 1024 => {
                    Ok(s.clone())
                }
                s => Err(self.at(
                    p,
                    format!("{label}.websocket_paths: {s:?} must be a path prefix such as \"/ws/\" (no query, escapes or backslashes)"),
                )),
            })
            .collect()
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

/// Whether a protected value is short or an ordinary word: a page, a
/// search or a cookie would carry it for reasons of its own.
fn too_common(v: &str) -> bool {
    const ORDINARY: &[&str] = &[
        "account",
        "accounts",
        "callback",
        "callbacks",
        "calendar",
        "category",
        "checkout",
        "complete",
        "confirm",
        "confirmation",
        "contact",
        "customer",
        "customers",
        "dashboard",
        "default",
        "delivery",
        "document",
        "documents",
        "download",
        "feedback",
        "homepage",
        "language",
        "location",
        "messages",
        "newsletter",
        "notification",
        "notifications",
        "overview",
        "password",
        "payment",
        "payments",
        "process",
        "products",
        "question",
        "register",
        "response",
        "schedule",
        "security",
        "services",
        "settings",
        "shipping",
        "subscribe",
        "success",
        "transfer",
        "unsubscribe",
        "webhook",
        "webhooks",
    ];
    v.chars().count() < 8 || ORDINARY.contains(&v)
}
