//! `[[passthrough]]`: the site behind callgate, and everything it must
//! never reach unverified.

use std::sync::Arc;

use super::defaults::{
    DEFAULT_MAX_REQUESTS_PER_CLIENT, DEFAULT_MIN_BODY_RATE, DEFAULT_PASSTHROUGH_MAX_BODY_BYTES,
    MAX_PASSTHROUGH_MAX_BODY_BYTES,
};
use super::load::Loader;
use super::raw::ByteRate;
use super::upstream_tls::RawUpstreamTls;
use super::{ConfigError, Routes, Upstream};
use crate::values::Values;
use serde::Deserialize;
use toml::Spanned;

/// One `[[passthrough]]`: the site behind callgate.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPassthrough {
    pub(crate) hosts: Option<Vec<Spanned<String>>>,
    pub(crate) upstream: Spanned<String>,
    #[serde(default)]
    pub(crate) protect: Vec<Spanned<String>>,
    pub(crate) max_body_bytes: Option<Spanned<u64>>,
    pub(crate) upgrades: Option<Vec<Spanned<String>>>,
    pub(crate) protect_routes: Option<bool>,
    pub(crate) protect_values: Option<bool>,
    pub(crate) websocket_paths: Option<Vec<Spanned<String>>>,
    pub(crate) max_requests_per_client: Option<Spanned<usize>>,
    pub(crate) min_body_rate: Option<Spanned<ByteRate>>,
    pub(crate) upstream_tls: Option<Spanned<RawUpstreamTls>>,
}

/// What kind of thing a protected path is, for how a request reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProtectKind {
    /// `/admin/`: the directory and everything below it.
    Directory,
    /// `/cron.php`: the script, with PATH_INFO after it, and under
    /// MultiViews its stem (`/cron`); an `index.*` script for its directory.
    Script,
    /// A route's own path: equal, extended (`/tolq/callback.php`) or below.
    RoutePath,
}

/// A path the pass-through must never reach unverified, ready to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Protected {
    /// As configured or derived, for logs and `callgate check`.
    pub(crate) shown: String,
    /// Decoded, lower-case segments ([`crate::paths::configured`]).
    pub(crate) segments: Vec<String>,
    pub(crate) kind: ProtectKind,
}

impl Protected {
    /// A configured path (`/admin/`, `/cron.php`) or a route's script.
    pub(crate) fn path(path: &str) -> Protected {
        let (segments, dir) = crate::paths::configured(path);
        let kind = if dir {
            ProtectKind::Directory
        } else {
            ProtectKind::Script
        };
        Protected {
            shown: path.to_owned(),
            segments,
            kind,
        }
    }

    /// A route's own path (`/tolq/callback`).
    pub(crate) fn route_path(path: &str, route: &str) -> Protected {
        Protected {
            kind: ProtectKind::RoutePath,
            shown: format!("{path} (route {route:?})"),
            ..Protected::path(path.trim_end_matches('/'))
        }
    }
}

/// The `(name, value)` pairs of a route's upstream query, as PHP names
/// them (values lower-case): a front controller dispatches on them.
pub(crate) fn dispatch_params(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .filter_map(|(k, v)| Some((crate::php::php_name(&k)?.base, v.to_lowercase())))
        .collect()
}

/// The site behind callgate: requests that match no route, streamed to it.
#[derive(Debug)]
pub(crate) struct Passthrough {
    /// Host names served (lower case; `*.example.org` for one label); None: any.
    pub(crate) hosts: Option<Vec<String>>,
    /// The origin: the request's own path and query are kept.
    pub(crate) upstream: Upstream,
    /// Paths never reached unverified: configured ones, every route's
    /// upstream script (unless protect_routes = false) and every route's path.
    pub(crate) protect: Vec<Protected>,
    /// A front controller's dispatch parameters (from routes' upstream
    /// queries): refused on every path, in query, cookies and form body.
    pub(crate) params: std::sync::Arc<[(String, String)]>,
    /// protect_values: the params' values and the protected scripts' paths,
    /// refused anywhere in a request ([`crate::values`]); empty
    /// when off.
    pub(crate) values: crate::values::Values,
    pub(crate) max_body_bytes: u64,
    /// Upgrade tokens relayed (lower case); `websocket` needs a valid accept.
    pub(crate) upgrades: Vec<String>,
    /// websocket_paths: upgrades are relayed only under these path prefixes.
    pub(crate) websocket_paths: Vec<String>,
    /// Concurrent pass-through requests and tunnels per client (IPv6: /64).
    pub(crate) max_requests_per_client: usize,
    /// Bytes per second an upload must keep up after its first 10 s; 0: off.
    pub(crate) min_body_rate: u64,
}

#[cfg(test)]
impl Passthrough {
    /// A pass-through with these protected paths, route paths and params.
    pub(crate) fn for_tests(
        paths: &[&str],
        routes: &[&str],
        params: &[(&str, &str)],
    ) -> Passthrough {
        let mut protect: Vec<Protected> = paths.iter().map(|p| Protected::path(p)).collect();
        protect.extend(routes.iter().map(|p| Protected::route_path(p, "r")));
        Passthrough {
            hosts: None,
            upstream: Upstream::parse("http://127.0.0.1:8080").unwrap(),
            protect,
            params: params
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            max_body_bytes: 1 << 20,
            values: crate::values::Values::new(
                &params
                    .iter()
                    .map(|(_, v)| v.to_string())
                    .collect::<Vec<_>>(),
            ),
            upgrades: vec!["websocket".into()],
            websocket_paths: Vec::new(),
            max_requests_per_client: 32,
            min_body_rate: 1024,
        }
    }
}

impl Loader<'_> {
    /// Every `[[passthrough]]`.
    pub(super) fn passthroughs(
        &self,
        raw: Vec<Spanned<RawPassthrough>>,
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
        mut raw: RawPassthrough,
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
        raw: &RawPassthrough,
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
