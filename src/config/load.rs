//! `Config::load`: read the file, deserialize it ([`super::raw`]), then
//! resolve every table into its typed value, with errors that name the file,
//! the line and column, and the fix.

use std::cell::RefCell;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::defaults::{
    BUFFERED_PER_CLIENT_DIVISOR, BUFFERED_SHARE_OF_BODY, DEFAULT_ASSERTION_HEADER,
    DEFAULT_BODY_READ_TIMEOUT, DEFAULT_DRAIN_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HEADERS,
    DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_REQUESTS_PER_CLIENT, DEFAULT_MIN_BODY_RATE,
    DEFAULT_PASSTHROUGH_MAX_BODY_BYTES, DEFAULT_TLS_HANDSHAKE_TIMEOUT, DEFAULT_UPSTREAM_TIMEOUT,
    DEFAULT_VERIFIED_HEADER, MAX_DEFAULT_BUFFERED_BODY_BYTES, MAX_MAX_BODY_BYTES,
    MAX_MAX_CONNECTIONS, MAX_MAX_HEADERS, MAX_MAX_HEADER_BYTES, MAX_PASSTHROUGH_MAX_BODY_BYTES,
    MAX_UPSTREAM_TIMEOUT, MIN_MAX_HEADER_BYTES, MIN_SECRET_BYTES, MIN_TIMEOUT, RESERVED_HEADERS,
};
use super::{
    dispatch_params, hosts_overlap, raw, secret, tls, Assertion, AssertionVersion, Config,
    ConfigError, Damping, Gateway, Listen, Passthrough, Protected, QueueBackend, Routes, Tls,
    Upstream,
};
use crate::crypto::{Algorithm, Key};
use http::HeaderName;
use toml::Spanned;

impl Config {
    /// Read, parse and resolve the config file, loading secrets and certificates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::from_str(&read_file(path)?, path)
    }

    /// Read and resolve the config file without touching anything it names:
    /// no secret is resolved (env, files, credentials: placeholders stand in),
    /// no certificate or CA file is read. What `check --offline` shows.
    pub fn load_offline(path: &Path) -> Result<Config, ConfigError> {
        Config::parse(&read_file(path)?, path, true)
    }

    /// Parse and resolve config text; `path` names the file in errors.
    pub fn from_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Config::parse(text, path, false)
    }

    fn parse(text: &str, path: &Path, offline: bool) -> Result<Config, ConfigError> {
        let loader = Loader {
            text,
            path,
            warnings: RefCell::new(Vec::new()),
            offline,
        };
        let raw: raw::RawConfig = toml::from_str(text).map_err(|e| {
            let mut message = without_values(e.message().trim_end());
            if message.starts_with("unknown field") {
                message.push_str(" (callgate refuses unknown keys: a misspelt key could silently disable a check)");
            }
            loader.error(e.span(), message)
        })?;
        loader.resolve(raw)
    }

    /// Just `[queue]` of a config file, without loading certificates or
    /// route secrets: what the `callgate queue` commands need.
    pub(crate) fn queue_of(path: &Path) -> Result<QueueBackend, ConfigError> {
        let text = read_file(path)?;
        let loader = Loader {
            text: &text,
            path,
            warnings: RefCell::new(Vec::new()),
            offline: false,
        };
        let raw: raw::RawConfig = toml::from_str(&text)
            .map_err(|e| loader.error(e.span(), without_values(e.message().trim_end())))?;
        loader.queue(raw.queue, false)
    }
}

/// The config file's text, or an error naming it and the fix.
fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_owned(),
        at: String::new(),
        message: format!("cannot read the config file: {e} (check the path, and that callgate's user may read it)"),
    })
}

/// Resolution context: the text, to turn byte spans into line:column.
pub(super) struct Loader<'a> {
    text: &'a str,
    path: &'a Path,
    warnings: RefCell<Vec<String>>,
    /// `check --offline`: secrets and the files the config names are not read.
    pub(super) offline: bool,
}

impl Loader<'_> {
    pub(super) fn error(
        &self,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> ConfigError {
        let at = match span {
            Some(span) => {
                let before = &self.text[..span.start.min(self.text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!(":{line}:{column}")
            }
            None => String::new(),
        };
        ConfigError {
            file: self.path.to_owned(),
            at,
            message: message.into(),
        }
    }

    pub(super) fn warn(&self, text: String) {
        self.warnings.borrow_mut().push(text);
    }

    pub(super) fn at<T>(&self, value: &Spanned<T>, message: impl Into<String>) -> ConfigError {
        self.error(Some(value.span()), message)
    }

    fn resolve(&self, raw: raw::RawConfig) -> Result<Config, ConfigError> {
        let listen_span = raw.listen.span();
        let raw_listen = raw.listen.into_inner();
        let listen = Listen {
            https: raw_listen.https.map(|a| a.0),
            http: raw_listen.http.map(|a| a.0),
            admin: raw_listen.admin.map(|a| a.0),
            proxy_protocol: raw_listen.proxy_protocol.unwrap_or(false),
            http_redirect: raw_listen.http_redirect.unwrap_or(false),
        };
        if listen.https.is_none() && listen.http.is_none() {
            return Err(self.error(Some(listen_span), "[listen] has no listener: set https = \"0.0.0.0:443\" (with [tls]) or http = \"127.0.0.1:8080\""));
        }

        let tls = self.tls(raw.tls, &listen)?;
        if listen.https.is_some() && tls.is_none() {
            return Err(self.error(Some(listen_span), "listen.https needs a [tls] table: give cert and key PEM files, or self_signed = true for a trial"));
        }

        let (gateway, upstream_timeout) = self.gateway(raw.gateway)?;
        if raw.routes.is_empty() {
            return Err(self.error(
                None,
                "no [[route]]: add at least one route (name, path, upstream and a check)",
            ));
        }

        let routes = self.routes(raw.routes, upstream_timeout, gateway.max_body_bytes)?;
        let passthroughs = self.passthroughs(raw.passthroughs, &routes)?;
        let mut redact_params: Vec<String> = routes
            .iter()
            .filter_map(|r| r.token.as_ref().map(|t| t.param.clone()))
            .collect();
        redact_params.sort();
        redact_params.dedup();

        if let Some(a) = listen
            .admin
            .filter(|a| !a.ip().to_canonical().is_loopback())
        {
            self.warn(format!("listen.admin = \"{a}\" is not a loopback address: /metrics and /healthz answer anyone who reaches it. Bind it to 127.0.0.1 or [::1], or make sure a firewall does"));
        }
        if tls.as_ref().is_some_and(|t| t.self_signed) {
            self.warn("[tls] self_signed = true: an in-memory certificate for localhost. Providers will refuse it. TRIALS ONLY: set cert and key for production".into());
        }
        Ok(Config {
            path: self.path.to_owned(),
            listen,
            tls,
            gateway,
            passthroughs,
            redact_params,
            queue: self
                .queue(raw.queue, true)
                .and_then(|q| self.lease_fits(q, &routes))?,
            routes,
            warnings: self.warnings.take(),
        })
    }

    /// A queue claim must outlast the longest delivery: a lease at or below
    /// a queue route's upstream_timeout lets another instance take a
    /// callback still in flight (a duplicate in normal operation).
    fn lease_fits(&self, q: QueueBackend, routes: &Routes) -> Result<QueueBackend, ConfigError> {
        if let QueueBackend::Postgres { lease, .. } = &q {
            let longest = routes
                .iter()
                .filter(|r| r.stores())
                .map(|r| r.upstream_timeout)
                .max();
            if let Some(t) = longest.filter(|t| lease <= t) {
                return Err(self.error(None, format!(
                    "queue.lease = \"{}\" is not longer than a queue route's upstream_timeout ({}): another instance would take callbacks still being delivered. Make the lease longer (at least twice the timeout)",
                    humantime::format_duration(*lease),
                    humantime::format_duration(t)
                )));
            }
        }
        Ok(q)
    }

    /// A header callgate sets itself must not be one that frames or routes
    /// the request (every callback would break, or be smuggled).
    pub(super) fn own_header(&self, name: &HeaderName, key: &str) -> Result<(), ConfigError> {
        const FRAMING: &[&str] = &[
            "host",
            "content-length",
            "transfer-encoding",
            "connection",
            "keep-alive",
            "proxy-connection",
            "te",
            "trailer",
            "upgrade",
            "content-type",
            "content-encoding",
            "expect",
            "cookie",
            "authorization",
            "x-forwarded-for",
            "forwarded",
        ];
        if FRAMING
            .iter()
            .any(|f| crate::php::same_header(name.as_str(), f))
        {
            return Err(self.error(None, format!("{key} = \"{name}\" names a header that frames, routes or authenticates the request: choose a name of its own, such as X-Callgate-Verified")));
        }
        Ok(())
    }

    /// Every `[[route]]`; names unique, and one path served by two routes
    /// only for hosts that do not overlap.
    fn routes(
        &self,
        raw: Vec<Spanned<raw::RawRoute>>,
        upstream_timeout: Duration,
        max_body_bytes: u64,
    ) -> Result<Routes, ConfigError> {
        let mut routes = Routes::default();
        for (i, spanned) in raw.into_iter().enumerate() {
            let span = spanned.span();
            let route = self.route(
                i,
                span.clone(),
                spanned.into_inner(),
                upstream_timeout,
                max_body_bytes,
            )?;
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

    /// Every `[[passthrough]]`: its origin, and what it must never reach
    /// unverified (its `protect` list, and each route's upstream path on the
    /// same upstream, with that URL's query parameters).
    #[allow(clippy::too_many_lines)]
    fn passthroughs(
        &self,
        raw: Vec<Spanned<raw::RawPassthrough>>,
        routes: &Routes,
    ) -> Result<Vec<Arc<Passthrough>>, ConfigError> {
        let mut out = Vec::new();
        for (i, spanned) in raw.into_iter().enumerate() {
            let label = format!("passthrough[{i}]");
            let raw = spanned.into_inner();
            let upstream = Upstream::parse(raw.upstream.get_ref())
                .map_err(|m| self.at(&raw.upstream, format!("{label}.upstream: {m}")))?;
            if upstream.path != "/" || upstream.query.is_some() {
                return Err(self.at(&raw.upstream, format!("{label}.upstream must be an origin such as \"http://127.0.0.1:8080\": the request's own path and query are kept")));
            }
            let mut protect = Vec::new();
            for p in &raw.protect {
                if !p.get_ref().starts_with('/') {
                    return Err(self.at(p, format!("{label}.protect: {:?} must be a path such as \"/admin/\" or \"/cron.php\"", p.get_ref())));
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
            let upgrades = match raw.upgrades {
                None => vec!["websocket".to_owned()],
                Some(list) => list
                    .iter()
                    .map(|u| upgrade_token(u.get_ref()).ok_or_else(|| self.at(u, format!("{label}.upgrades: {:?} is not an upgrade token such as \"websocket\"", u.get_ref()))))
                    .collect::<Result<_, _>>()?,
            };
            out.push(Arc::new(Passthrough {
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
                upgrades,
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
            }));
        }
        Ok(out)
    }

    /// Host names as compared: lower case, no port, no trailing dot.
    pub(super) fn hosts(
        &self,
        label: &str,
        raw: Vec<Spanned<String>>,
    ) -> Result<Vec<String>, ConfigError> {
        if raw.is_empty() {
            return Err(self.error(None, format!("{label}: an empty host list would match nothing; list names, or remove the key")));
        }
        raw.iter()
            .map(|h| {
                let name = h.get_ref().trim().trim_end_matches('.').to_ascii_lowercase();
                let bare = name.strip_prefix("*.").unwrap_or(&name);
                let valid = !bare.is_empty() && bare.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
                if valid {
                    Ok(name)
                } else {
                    Err(self.at(h, format!("{label}: {:?} is not a host name (write www.example.com, or *.example.com for one label)", h.get_ref())))
                }
            })
            .collect()
    }

    fn tls(
        &self,
        raw: Option<Spanned<raw::RawTls>>,
        listen: &Listen,
    ) -> Result<Option<Tls>, ConfigError> {
        let Some(raw) = raw else { return Ok(None) };
        let span = raw.span();
        let mut raw = raw.into_inner();
        let acme = raw.acme.take().map(|a| self.acme(a, listen)).transpose()?;
        let mut sni = tls::Sni::default();
        let mut certificates = Vec::new();
        let (description, self_signed) = match (raw.self_signed, raw.cert, raw.key) {
            (true, None, None) => {
                let loaded = tls::self_signed()
                    .map_err(|e| self.error(Some(span.clone()), format!("tls.self_signed: {e}")))?;
                certificates.push((vec!["default".to_owned()], loaded.subject, loaded.not_after));
                sni.set_default(loaded.key);
                ("self-signed certificate for localhost (TRIALS ONLY)".to_owned(), true)
            }
            (true, _, _) => {
                return Err(self.error(Some(span), "[tls]: self_signed = true cannot be combined with cert/key; remove one or the other"))
            }
            (false, Some(cert), Some(key)) => {
                let loaded = self.certificate("tls", &cert, &key)?;
                let description = match self.offline {
                    true => format!("cert {}, key {} (not read: --offline)", cert.get_ref(), key.get_ref()),
                    false => format!("cert {} ({} in chain), key {}", cert.get_ref(), loaded.chain_len, key.get_ref()),
                };
                certificates.push((vec!["default".to_owned()], loaded.subject, loaded.not_after));
                sni.set_default(loaded.key);
                (description, false)
            }
            (false, None, None) if !raw.certificates.is_empty() || acme.is_some() => {
                ("no default certificate: clients naming no listed host fail the handshake".to_owned(), false)
            }
            _ => {
                return Err(self.error(Some(span), "[tls] needs both cert and key (PEM files), [[tls.certificate]] entries, [tls.acme], or self_signed = true for a trial"))
            }
        };
        for (i, c) in raw.certificates.into_iter().enumerate() {
            let label = format!("tls.certificate[{i}]");
            let c = c.into_inner();
            let hosts = self.hosts(&label, c.hosts)?;
            let loaded = self.certificate(&label, &c.cert, &c.key)?;
            for h in &hosts {
                sni.add(h, loaded.key.clone());
            }
            certificates.push((hosts, loaded.subject, loaded.not_after));
        }
        let server_config =
            tls::server_config(sni).map_err(|e| self.error(Some(span), format!("tls: {e}")))?;
        Ok(Some(Tls {
            server_config,
            description,
            certificates,
            self_signed,
            acme,
        }))
    }

    /// One certificate and key from PEM files; errors point at the culprit.
    fn certificate(
        &self,
        label: &str,
        cert: &Spanned<String>,
        key: &Spanned<String>,
    ) -> Result<tls::Loaded, ConfigError> {
        if self.offline {
            // Not read: an in-memory stand-in keeps the rest of the config resolvable.
            return tls::self_signed()
                .map_err(|e| self.error(Some(cert.span()), format!("{label}: {e}")));
        }
        tls::load(Path::new(cert.get_ref()), Path::new(key.get_ref())).map_err(|e| {
            let at = if e.is_about_key() {
                key.span()
            } else {
                cert.span()
            };
            self.error(Some(at), format!("{label}: {e}"))
        })
    }

    /// A duration from the file within `valid`, or `default` when absent.
    /// (Durations carry no position: the message names the key.)
    pub(super) fn duration(
        &self,
        value: Option<raw::Dur>,
        default: Duration,
        valid: std::ops::RangeInclusive<Duration>,
        key: &str,
    ) -> Result<Duration, ConfigError> {
        let Some(v) = value else {
            return Ok(default);
        };
        if valid.contains(&v.0) {
            return Ok(v.0);
        }
        let show = |d: Duration| humantime::format_duration(d).to_string();
        Err(self.error(
            None,
            format!(
                "{key} = \"{}\" is out of range: give a duration from {} to {}",
                show(v.0),
                show(*valid.start()),
                show(*valid.end())
            ),
        ))
    }

    /// A number from the file within `valid`, or `default` when absent.
    pub(super) fn number<T: PartialOrd + Copy>(
        &self,
        value: Option<Spanned<T>>,
        default: T,
        valid: std::ops::RangeInclusive<T>,
        problem: &str,
    ) -> Result<T, ConfigError> {
        match value {
            None => Ok(default),
            Some(v) if valid.contains(v.get_ref()) => Ok(*v.get_ref()),
            Some(v) => Err(self.at(&v, problem)),
        }
    }

    /// The body-buffer budget and its per-client share. By default each
    /// connection gets 1/64 of max_body_bytes (at least 4 bodies, at most
    /// 256 MiB in all), and one address 1/8 of that (at least one body).
    fn buffers(
        &self,
        total: Option<Spanned<u64>>,
        per_client: Option<Spanned<u64>>,
        max_body_bytes: u64,
        max_connections: usize,
    ) -> Result<(u64, u64), ConfigError> {
        let by_connections = (max_connections as u64)
            .saturating_mul(max_body_bytes / BUFFERED_SHARE_OF_BODY)
            .min(MAX_DEFAULT_BUFFERED_BODY_BYTES);
        let total = self.number(
            total,
            by_connections.max(4 * max_body_bytes),
            max_body_bytes..=u64::MAX,
            "gateway.buffered_body_bytes must be at least max_body_bytes (one whole body must fit)",
        )?;
        let per_client = self.number(
            per_client,
            (total / BUFFERED_PER_CLIENT_DIVISOR).max(max_body_bytes),
            max_body_bytes..=total,
            "gateway.buffered_body_bytes_per_client must be between max_body_bytes and buffered_body_bytes",
        )?;
        Ok((total, per_client))
    }

    /// `[gateway] damping`.
    fn damping(&self, raw: Spanned<raw::RawDamping>) -> Result<Damping, ConfigError> {
        let span = raw.span();
        let s = raw.into_inner();
        let failures = std::num::NonZeroU32::new(s.failures).ok_or_else(|| {
            self.error(
                Some(span),
                "gateway.damping.failures must be at least 1 (remove damping to turn it off)",
            )
        })?;
        let secs = Duration::from_secs;
        Ok(Damping {
            failures,
            window: self.duration(
                Some(s.window),
                secs(60),
                secs(1)..=secs(86_400),
                "gateway.damping.window",
            )?,
            cooldown: self.duration(
                Some(s.cooldown),
                secs(600),
                secs(1)..=secs(7 * 86_400),
                "gateway.damping.cooldown",
            )?,
        })
    }

    /// `[gateway] assertion`: its key, resolved like any secret.
    fn assertion(&self, raw: Spanned<raw::RawAssertion>) -> Result<Assertion, ConfigError> {
        let span = raw.span();
        let raw = raw.into_inner();
        let (secrets, _) = self.secrets(
            "[gateway]",
            "assertion",
            span,
            std::slice::from_ref(&raw.key),
        )?;
        let version = match raw.version.as_ref().map(|v| *v.get_ref()) {
            None | Some(1) => AssertionVersion::V1,
            Some(2) => AssertionVersion::V2,
            Some(_) => {
                let at = raw.version.as_ref().expect("matched Some");
                return Err(self.at(
                    at,
                    "[gateway] assertion.version must be 1 (default) or 2 (adds id, host and ct)",
                ));
            }
        };
        Ok(Assertion {
            header: raw
                .header
                .map_or(HeaderName::from_static(DEFAULT_ASSERTION_HEADER), |h| h.0),
            key: match too_short(&secrets[0]) {
                Some(why) => {
                    return Err(self.at(&raw.key, format!("[gateway] assertion.key: {why}")))
                }
                None => Key::new(Algorithm::Sha256, secrets[0].expose()),
            },
            version,
        })
    }

    /// `[gateway]`, and the default upstream timeout routes inherit.
    fn gateway(&self, mut raw: raw::RawGateway) -> Result<(Gateway, Duration), ConfigError> {
        let max_body_bytes = self.number(
            raw.max_body_bytes,
            DEFAULT_MAX_BODY_BYTES,
            1..=MAX_MAX_BODY_BYTES,
            &format!("gateway.max_body_bytes must be between 1 and {MAX_MAX_BODY_BYTES} (bodies are held in memory to be verified)"),
        )?;
        let max_connections = self.number(
            raw.max_connections,
            DEFAULT_MAX_CONNECTIONS,
            1..=MAX_MAX_CONNECTIONS,
            &format!("gateway.max_connections must be between 1 and {MAX_MAX_CONNECTIONS}"),
        )?;
        let (buffered_body_bytes, buffered_body_bytes_per_client) = self.buffers(
            raw.buffered_body_bytes.take(),
            raw.buffered_body_bytes_per_client.take(),
            max_body_bytes,
            max_connections,
        )?;
        let max_header_bytes = self.number(
            raw.max_header_bytes,
            DEFAULT_MAX_HEADER_BYTES,
            MIN_MAX_HEADER_BYTES..=MAX_MAX_HEADER_BYTES,
            &format!("gateway.max_header_bytes must be between {MIN_MAX_HEADER_BYTES} (hyper's smallest read buffer) and {MAX_MAX_HEADER_BYTES}"),
        )?;
        // Each header slot is allocated up front for every request: a
        // bound keeps one stranger's request from asking for gigabytes.
        let max_headers = self.number(
            raw.max_headers,
            DEFAULT_MAX_HEADERS,
            1..=MAX_MAX_HEADERS,
            &format!("gateway.max_headers must be between 1 and {MAX_MAX_HEADERS}"),
        )?;
        let damping = raw.damping.take().map(|d| self.damping(d)).transpose()?;
        let assertion = raw
            .assertion
            .take()
            .map(|a| self.assertion(a))
            .transpose()?;
        if let Some(a) = &assertion {
            self.own_header(&a.header, "gateway.assertion.header")?;
        }
        let secs = Duration::from_secs;
        let d = |v: Option<raw::Dur>, default: Duration, max: Duration, key: &str| {
            self.duration(v, default, MIN_TIMEOUT..=max, &format!("gateway.{key}"))
        };
        let verified_header = raw
            .verified_header
            .map_or(HeaderName::from_static(DEFAULT_VERIFIED_HEADER), |h| h.0);
        self.own_header(&verified_header, "gateway.verified_header")?;
        let trusted_proxies: Vec<ipnet::IpNet> =
            raw.trusted_proxies.into_iter().map(|c| c.0).collect();
        if let Some(all) = trusted_proxies.iter().find(|n| n.prefix_len() == 0) {
            return Err(self.error(None, format!("gateway.trusted_proxies = [\"{all}\"] trusts every address: any client could then name its own address in X-Forwarded-For and pass an allowlist. List your proxies' addresses only")));
        }
        let gateway = Gateway {
            damping,
            max_header_bytes,
            max_headers,
            reserved_headers: RESERVED_HEADERS
                .iter()
                .map(|h| HeaderName::from_static(h))
                .chain([
                    verified_header.clone(),
                    HeaderName::from_static(DEFAULT_ASSERTION_HEADER),
                ])
                .chain(assertion.as_ref().map(|a| a.header.clone()))
                .collect(),
            assertion,
            verified_header,
            max_body_bytes,
            trusted_proxies,
            tls_handshake_timeout: d(
                raw.tls_handshake_timeout,
                DEFAULT_TLS_HANDSHAKE_TIMEOUT,
                secs(300),
                "tls_handshake_timeout",
            )?,
            header_read_timeout: d(
                raw.header_read_timeout,
                DEFAULT_HEADER_READ_TIMEOUT,
                secs(300),
                "header_read_timeout",
            )?,
            body_read_timeout: d(
                raw.body_read_timeout,
                DEFAULT_BODY_READ_TIMEOUT,
                secs(3600),
                "body_read_timeout",
            )?,
            idle_timeout: d(
                raw.idle_timeout,
                DEFAULT_IDLE_TIMEOUT,
                secs(3600),
                "idle_timeout",
            )?,
            max_connections,
            buffered_body_bytes,
            buffered_body_bytes_per_client,
            drain_timeout: d(
                raw.drain_timeout,
                DEFAULT_DRAIN_TIMEOUT,
                secs(3600),
                "drain_timeout",
            )?,
            upstream_timeout: d(
                raw.upstream_timeout,
                DEFAULT_UPSTREAM_TIMEOUT,
                MAX_UPSTREAM_TIMEOUT,
                "upstream_timeout",
            )?,
        };
        let upstream_timeout = gateway.upstream_timeout;
        Ok((gateway, upstream_timeout))
    }

    /// Resolve a non-empty list of secret specs; errors point at the failing entry.
    pub(super) fn secrets(
        &self,
        label: &str,
        table: &str,
        table_span: Range<usize>,
        specs: &[Spanned<String>],
    ) -> Result<(Vec<secret::Secret>, Vec<String>), ConfigError> {
        if specs.is_empty() {
            return Err(self.error(Some(table_span), format!("{label}.{table}.secrets is empty: give at least one, e.g. [\"env:NAME\"], [\"file:/etc/callgate/key\"] or [\"cred:NAME\"]")));
        }
        let mut secrets = Vec::with_capacity(specs.len());
        for (j, spec) in specs.iter().enumerate() {
            if self.offline {
                secrets.push(secret::Secret::from(OFFLINE_SECRET.as_bytes().to_vec()));
                continue;
            }
            let s = secret::resolve(spec.get_ref())
                .map_err(|e| self.at(spec, format!("{label}.{table}.secrets[{j}]: {e}")))?;
            if let Some(why) = too_short(&s) {
                return Err(self.at(spec, format!("{label}.{table}.secrets[{j}]: {why}")));
            }
            secrets.push(s);
            if secret::describe(spec.get_ref()) == "literal" {
                self.warn(format!("{label}.{table}.secrets[{j}] is written in the config file: move it to env:, file: or cred: before production"));
            }
        }
        Ok((
            secrets,
            specs
                .iter()
                .map(|s| secret::describe(s.get_ref()))
                .collect(),
        ))
    }
}

/// What stands in for every secret offline: valid as a raw key and as a
/// `whsec_` key, and never a real one.
const OFFLINE_SECRET: &str = "whsec_b2ZmbGluZS1wbGFjZWhvbGRlci1ub3QtYS1zZWNyZXQ=";

/// A key or token short enough to guess protects nothing.
fn too_short(secret: &secret::Secret) -> Option<String> {
    let n = secret.expose().len();
    (n < MIN_SECRET_BYTES).then(|| format!("a secret of {n} bytes is too short to protect anything: use at least {MIN_SECRET_BYTES} (e.g. `openssl rand -hex 32`)"))
}

/// An upgrade protocol name as RFC 9110 writes it (`websocket`,
/// `h2c`), lower case; None if it is no token.
fn upgrade_token(s: &str) -> Option<String> {
    let ok = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&b));
    ok.then(|| s.to_ascii_lowercase())
}

/// A parser message without the string values it quotes: `invalid type:
/// string "tolq-token-…", expected a sequence` would print a secret written
/// in the wrong shape. The key and the position say where; the value is
/// the operator's to look at.
fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("string \"") {
        out.push_str(&rest[..at + "string ".len()]);
        let quoted = &rest[at + "string \"".len()..];
        // The literal ends at the first quote not escaped by a backslash.
        let mut end = None;
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    end = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        match end {
            Some(i) => {
                out.push_str("(value not shown)");
                rest = &quoted[i + 1..];
            }
            None => {
                out.push_str("(value not shown)");
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod value_tests {
    use super::without_values;

    #[test]
    fn quoted_strings_in_parser_messages_are_not_shown() {
        assert_eq!(
            without_values("invalid type: string \"tolq-secret\", expected a sequence"),
            "invalid type: string (value not shown), expected a sequence"
        );
        assert_eq!(
            without_values("invalid type: string \"a\\\"b\", expected x"),
            "invalid type: string (value not shown), expected x"
        );
        assert_eq!(without_values("unknown field `x`"), "unknown field `x`");
    }
}
