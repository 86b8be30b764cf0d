//! One `[[route]]`: its serde mirror, the resolved [`Route`] with every
//! check ready to run, and its resolution (the preset's defaults, the rules
//! between keys). Each check's own table is a file in `route/`; how the
//! callback is delivered is `route/delivery.rs`.

mod allow_ips;
mod delivery;
mod handshake;
mod hmac;
mod replay;
mod signature;
mod token;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use serde::Deserialize;
use toml::Spanned;

pub(crate) use allow_ips::{AllowEntry, IpCheck};
use delivery::RawRetry;
pub(crate) use delivery::{Delivery, Retry};
use handshake::{RawHandshake, RouteHandshake};
pub(crate) use hmac::HmacCheck;
use hmac::RawHmac;
use signature::RawSignature;
pub(crate) use signature::SignatureCheck;
use token::RawToken;
pub(crate) use token::TokenCheck;

use super::load::Loader;
use super::presets::{self, Defaults, Payload, Preset};
use super::raw::{Dur, MethodValue, Rate, Window};
use super::upstream_tls::RawUpstreamTls;
use super::{secret, ConfigError, Upstream};

/// One `[[route]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub(crate) name: Spanned<String>,
    pub(crate) host: Option<Vec<Spanned<String>>>,
    pub(crate) path: Spanned<String>,
    pub(crate) upstream: Spanned<String>,
    pub(crate) preset: Option<Spanned<String>>,
    pub(crate) allow_ips: Option<Vec<AllowEntry>>,
    pub(crate) token: Option<Spanned<RawToken>>,
    pub(crate) hmac: Option<Spanned<RawHmac>>,
    pub(crate) methods: Option<Spanned<Vec<MethodValue>>>,
    #[serde(default)]
    pub(crate) strip_token: bool,
    pub(crate) delivery: Option<Delivery>,
    pub(crate) upstream_timeout: Option<Dur>,
    pub(crate) ack_status: Option<Spanned<u16>>,
    pub(crate) max_in_flight: Option<Spanned<usize>>,
    pub(crate) retry: Option<RawRetry>,
    pub(crate) dedupe_window: Option<Window>,
    pub(crate) max_body_bytes: Option<Spanned<u64>>,
    pub(crate) enforce: Option<bool>,
    pub(crate) store_credentials: Option<bool>,
    pub(crate) signature: Option<Spanned<RawSignature>>,
    pub(crate) handshake: Option<Spanned<RawHandshake>>,
    pub(crate) max_concurrency: Option<Spanned<usize>>,
    pub(crate) rate: Option<Rate>,
    pub(crate) on_failure: Option<Spanned<String>>,
    pub(crate) upstream_tls: Option<Spanned<RawUpstreamTls>>,
}

/// One route, with every check ready to run.
#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) name: String,
    /// Host names this route answers for (lower case); None: any.
    pub(crate) hosts: Option<Vec<String>>,
    pub(crate) path: String,
    pub(crate) upstream: Upstream,
    pub(crate) preset: Option<Preset>,
    pub(crate) methods: Vec<Method>,
    pub(crate) allow_ips: Option<IpCheck>,
    pub(crate) token: Option<TokenCheck>,
    pub(crate) hmac: Option<HmacCheck>,
    /// A public-key signature of the body (Ed25519, ECDSA, RSA).
    pub(crate) signature: Option<SignatureCheck>,
    /// The provider's endpoint check, answered by callgate (its preset's),
    /// and Meta's verify token.
    pub(crate) handshake: Option<(presets::Handshake, Option<secret::Secret>)>,
    pub(crate) payload: Option<Payload>,
    pub(crate) strip_token: bool,
    /// false: report-only; a failed check is logged and counted
    /// (`would_refuse`), and the callback is forwarded with the checks that passed.
    pub(crate) enforce: bool,
    /// A queue route stores `Authorization` and `Proxy-Authorization`
    /// (off: they are dropped before storing; the receiver never needed them).
    pub(crate) store_credentials: bool,
    /// Callbacks in flight to the receiver at once (direct and queued alike).
    pub(crate) max_concurrency: Option<usize>,
    /// Deliveries per second (a token bucket holding one second's worth).
    pub(crate) rate: Option<f64>,
    /// A direct route stores the callback (and answers ack_status) when the
    /// receiver fails, and its worker delivers it later.
    pub(crate) on_failure_queue: bool,
    pub(crate) upstream_timeout: Duration,
    pub(crate) delivery: Delivery,
    /// Status answered once a queued callback is stored (delivery = "queue").
    pub(crate) ack_status: http::StatusCode,
    /// Deliveries of this route's queue in flight at once (1 keeps arrival order).
    pub(crate) max_in_flight: usize,
    pub(crate) retry: Retry,
    /// A callback whose body (SHA-256), or message id where the provider
    /// sends one, was delivered this recently is not forwarded again.
    pub(crate) dedupe_window: Option<Duration>,
    /// The largest body this route takes (the gateway's, or a preset's below it).
    pub(crate) max_body_bytes: u64,
    /// Parameters a form body must not carry (the token, the upstream
    /// URL's), as PHP names them: in `$_REQUEST` the body's win.
    pub(crate) reserved_params: Vec<String>,
    /// This route's counters, once looked up.
    pub(crate) metrics: crate::metrics::RouteCache,
    /// This route's receiver protection, once looked up.
    pub(crate) shield_found: std::sync::OnceLock<std::sync::Arc<crate::shield::Shield>>,
}

impl Route {
    /// The receiver's protection: this route's shield among `shields`.
    pub(crate) fn shield(
        &self,
        shields: &crate::shield::Shields,
    ) -> std::sync::Arc<crate::shield::Shield> {
        shields.of(
            &self.shield_found,
            &self.name,
            (self.max_concurrency, self.rate),
        )
    }

    /// Whether callbacks of this route may be stored (queue delivery, or
    /// `on_failure = "queue"`): the route then has a delivery worker.
    pub(crate) fn stores(&self) -> bool {
        self.delivery == Delivery::Queue || self.on_failure_queue
    }
}

/// Routes by exact path (and host), plus their order in the file.
#[derive(Debug, Default)]
pub(crate) struct Routes {
    /// Several routes may share a path when their hosts differ.
    by_path: HashMap<String, Vec<Arc<Route>>>,
    in_order: Vec<Arc<Route>>,
}

impl Routes {
    /// The route serving exactly this path for this host (lower case,
    /// without port), if any.
    pub(crate) fn get(&self, path: &str, host: Option<&str>) -> Option<&Arc<Route>> {
        self.by_path
            .get(path)?
            .iter()
            .find(|r| hosts_match(r.hosts.as_deref(), host))
    }

    /// All routes in file order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.in_order.iter()
    }
}

/// Whether two host lists could both match one request.
pub(crate) fn hosts_overlap(a: Option<&[String]>, b: Option<&[String]>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.iter().any(|h| b.contains(h)),
        _ => true,
    }
}

/// Whether a request for `host` is one for `hosts` (None: any host).
pub(crate) fn hosts_match(hosts: Option<&[String]>, host: Option<&str>) -> bool {
    match (hosts, host) {
        (None, _) => true,
        (Some(hosts), Some(host)) => hosts.iter().any(|h| match h.strip_prefix("*.") {
            Some(parent) => host.strip_suffix(parent).is_some_and(|label| {
                label.ends_with('.') && !label[..label.len() - 1].contains('.')
            }),
            None => h == host,
        }),
        (Some(_), None) => false,
    }
}

impl Loader<'_> {
    /// Every `[[route]]`; names unique, and one path served by two routes
    /// only for hosts that do not overlap.
    pub(super) fn routes(
        &self,
        raw: Vec<Spanned<RawRoute>>,
        inherited: Inherited,
    ) -> Result<Routes, ConfigError> {
        let mut routes = Routes::default();
        for (i, spanned) in raw.into_iter().enumerate() {
            let span = spanned.span();
            let raw_route = spanned.into_inner();
            let online = self.online_for(&raw_route);
            let loader = online.as_ref().unwrap_or(self);
            let route = loader.route(i, span.clone(), raw_route, inherited);
            if let Some(online) = online {
                self.absorb(online);
            }
            // A broken route is reported with the others; the next is checked.
            let Some(route) = self.or_defer(route.map(Some), || None) else {
                continue;
            };
            let taken = |msg: String| Err(self.error(Some(span.clone()), msg));
            if routes.in_order.iter().any(|r| r.name == route.name) {
                return taken(format!(
                    "route[{i}]: the name {:?} is used by another route; names must be unique",
                    route.name
                ));
            }
            let same_path = routes.by_path.entry(route.path.clone()).or_default();
            if let Some(other) = same_path
                .iter()
                .find(|o| hosts_overlap(o.hosts.as_deref(), route.hosts.as_deref()))
            {
                return taken(format!("route[{i}] ({:?}): path {:?} is already served by route {:?} for the same host; give each a distinct host = [...], or a distinct path", route.name, route.path, other.name));
            }
            let route = Arc::new(route);
            same_path.push(route.clone());
            routes.in_order.push(route);
        }
        self.no_shared_oracle_key(&routes.in_order)?;
        let report_only: Vec<&str> = routes
            .iter()
            .filter(|r| !r.enforce)
            .map(|r| r.name.as_str())
            .collect();
        if !report_only.is_empty() {
            self.warn(format!(
                "{} route(s) do not enforce their checks (enforce = false, report-only): {}; failed callbacks are forwarded and logged as would_refuse",
                report_only.len(),
                report_only.join(", ")
            ));
        }
        Ok(routes)
    }
}

/// What a route inherits from `[gateway]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Inherited {
    pub(super) upstream_timeout: Duration,
    pub(super) max_body_bytes: u64,
}

/// A route's checks, resolved, before the route is built.
struct Checks {
    allow_ips: Option<IpCheck>,
    token: Option<TokenCheck>,
    hmac: Option<HmacCheck>,
    signature: Option<SignatureCheck>,
    handshake: RouteHandshake,
}

/// What every part of one route's resolution needs to name it in errors.
struct At<'a> {
    /// `route[3] ("tolq")`
    label: &'a str,
    /// The whole `[[route]]` table, for problems with no single key.
    span: Range<usize>,
    preset: Option<Defaults>,
    preset_name: &'static str,
}

impl Loader<'_> {
    pub(super) fn route(
        &self,
        i: usize,
        span: Range<usize>,
        mut raw: RawRoute,
        inherited: Inherited,
    ) -> Result<Route, ConfigError> {
        let (name, label) = self.route_name(i, &raw.name)?;
        let path = raw.path.get_ref().clone();
        if !path.starts_with('/') || path.contains(['?', '#']) {
            return Err(self.at(&raw.path, format!("{label}.path {path:?} must be an absolute path such as \"/tolq/callback\", without query or fragment")));
        }
        let mut upstream = Upstream::parse(raw.upstream.get_ref())
            .map_err(|m| self.at(&raw.upstream, format!("{label}.upstream: {m}")))?;
        upstream.tls = self.upstream_tls(&label, &upstream, raw.upstream_tls.take())?;
        let preset = raw.preset.as_ref().map(|p| self.preset(p)).transpose()?;
        let at = At {
            label: &label,
            span,
            preset: preset.map(Preset::defaults),
            preset_name: preset.map_or("", Preset::name),
        };
        let checks = self.checks(&at, &mut raw)?;
        self.vouched(&at, &checks)?;
        if raw.strip_token && checks.token.is_none() {
            return Err(self.error(Some(at.span.clone()), format!("{label}: strip_token = true but the route has no token; remove strip_token or add a token")));
        }
        let hosts = raw.host.take().map(|h| self.hosts(&label, h)).transpose()?;
        self.signed_url_has_a_host(&at, checks.hmac.as_ref(), hosts.is_some())?;
        let window = raw.dedupe_window.take().map(|w| w.0);
        let (hmac, signature) = (checks.hmac.as_ref(), checks.signature.as_ref());
        let dedupe_window = self.replay_window(&at, window, hmac, signature)?;
        let reserved_params = (checks.token.iter().map(|t| t.param.clone()))
            .chain(upstream.params.iter().cloned())
            .collect();
        Ok(Route {
            name,
            hosts,
            path,
            upstream,
            preset,
            methods: self.methods(&at, raw.methods.take())?,
            allow_ips: checks.allow_ips,
            token: checks.token,
            hmac: checks.hmac,
            signature: checks.signature,
            handshake: checks.handshake,
            payload: at.preset.and_then(|d| d.payload),
            strip_token: raw.strip_token,
            enforce: raw.enforce.unwrap_or(true),
            store_credentials: raw.store_credentials.unwrap_or(false),
            max_concurrency: self.max_concurrency(&label, raw.max_concurrency.take())?,
            rate: raw.rate.take().map(|r| r.0),
            on_failure_queue: self.on_failure(&label, raw.on_failure.as_ref(), raw.delivery)?,
            upstream_timeout: self.route_timeout(
                &label,
                raw.upstream_timeout.take(),
                &inherited,
            )?,
            delivery: raw.delivery.unwrap_or(Delivery::Direct),
            ack_status: self.ack_status(&at, raw.ack_status.take())?,
            max_in_flight: self.max_in_flight(&label, raw.max_in_flight.take())?,
            retry: self.retry(&label, raw.retry.take().unwrap_or_default())?,
            dedupe_window,
            max_body_bytes: self.body_bound(&at, raw.max_body_bytes, inherited.max_body_bytes)?,
            reserved_params,
            metrics: Default::default(),
            shield_found: Default::default(),
        })
    }

    /// The route's name (trimmed, not empty) and its label in errors:
    /// `route[3] ("tolq")`.
    fn route_name(&self, i: usize, raw: &Spanned<String>) -> Result<(String, String), ConfigError> {
        let name = raw.get_ref().trim().to_owned();
        if name.is_empty() {
            return Err(self.at(
                raw,
                format!("route[{i}].name is empty: give the route a name for logs and metrics"),
            ));
        }
        let label = format!("route[{i}] ({name:?})");
        Ok((name, label))
    }

    /// Each check the route configures (its own keys, else its preset's),
    /// in the order the gateway runs them.
    fn checks(&self, at: &At<'_>, raw: &mut RawRoute) -> Result<Checks, ConfigError> {
        let allow_ips = self.allow_ips(at, raw.allow_ips.take())?;
        let token = self.token(at, raw.token.take())?;
        let guarded = (token.is_some(), allow_ips.is_some());
        let (handshake, learned) = self.handshake(at, raw.handshake.take(), guarded)?;
        let mut hmac = self.hmac(at, raw.hmac.take(), learned)?;
        if let (Some(h), Some((kind, _))) = (hmac.as_mut(), &handshake) {
            h.refuse_tokens = kind.computes_with_key();
        }
        let signature = self.signature(at, raw.signature.take())?;
        Ok(Checks {
            allow_ips,
            token,
            hmac,
            signature,
            handshake,
        })
    }

    /// The "no check" rule, written here only: a route needs a check that
    /// vouches for its sender. An allowlist holding every address vouches
    /// for nobody: alone it is refused, beside another check it is a warning.
    fn vouched(&self, at: &At<'_>, checks: &Checks) -> Result<(), ConfigError> {
        let label = at.label;
        // Every check that vouches for the sender, besides the address.
        let others = [
            checks.token.is_some(),
            checks.hmac.is_some(),
            checks.signature.is_some(),
        ];
        let others = others.contains(&true);
        let Some(ips) = &checks.allow_ips else {
            return match others {
                true => Ok(()),
                false => Err(self.error(Some(at.span.clone()), format!("{label} has no check: configure at least one of allow_ips, token, hmac or signature (an unchecked route would forward anything)"))),
            };
        };
        let Some(all) = ips.nets.iter().find(|n| n.prefix_len() == 0) else {
            return Ok(());
        };
        let msg = format!(
            "{label}.allow_ips contains \"{all}\", which is every address: it checks nothing"
        );
        if !others {
            return Err(self.error(Some(at.span.clone()), format!("{msg}, and it is the route's only check (an anonymous POST would be forwarded as verified \"ip\"). List the provider's addresses, or add a token or hmac")));
        }
        self.warn(format!(
            "{msg}; remove it, or list the provider's addresses"
        ));
        Ok(())
    }

    /// The route's body bound: its own, the preset's, or the gateway's, never above that.
    fn body_bound(
        &self,
        at: &At<'_>,
        raw: Option<Spanned<u64>>,
        gateway: u64,
    ) -> Result<u64, ConfigError> {
        let preset = at.preset.and_then(|d| d.max_body_bytes);
        self.number(
            raw,
            preset.map_or(gateway, |p| p.min(gateway)),
            1..=gateway,
            &format!(
                "{}.max_body_bytes must be between 1 and gateway.max_body_bytes ({gateway})",
                at.label
            ),
        )
    }

    fn methods(
        &self,
        at: &At<'_>,
        raw: Option<Spanned<Vec<MethodValue>>>,
    ) -> Result<Vec<Method>, ConfigError> {
        let by_get = at
            .preset
            .and_then(|d| d.handshake)
            .is_some_and(presets::Handshake::by_get);
        match raw {
            // The provider's endpoint check comes as a GET: answered, never forwarded.
            None if by_get => Ok(vec![Method::POST, Method::GET]),
            None => Ok(vec![Method::POST]),
            Some(m) if m.get_ref().is_empty() => Err(self.at(
                &m,
                format!(
                    "{}.methods is empty: list at least \"POST\", or remove the key",
                    at.label
                ),
            )),
            Some(m) => Ok(m.into_inner().into_iter().map(|m| m.0).collect()),
        }
    }
}

#[cfg(test)]
mod tests;
