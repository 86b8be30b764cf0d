//! `Config::load`: the TOML file turned once into typed, resolved values:
//! addresses and CIDRs parsed, secrets read, HMAC keys prepared, presets
//! applied, certificates loaded. Request handling never parses config text.

pub mod raw;
mod summary;

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::{HeaderName, Method, Uri};
use ipnet::IpNet;
use sha2::{Digest, Sha256};
use toml::Spanned;

use crate::presets::{Payload, Preset};
use crate::secret;
use crate::signature::{Algorithm, Encoding, Key};
use crate::tls;
pub use raw::Delivery;

/// Default path of the config file.
pub const DEFAULT_PATH: &str = "/etc/callgate/callgate.toml";
/// Default name of the header that tells the upstream what was verified.
pub const DEFAULT_VERIFIED_HEADER: &str = "x-callgate-verified";
/// Default bound on a request body: 1 MiB (provider callbacks are small).
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
/// Default time a client has to finish the TLS handshake.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a client has to send the request head.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a client has to send the whole body.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default keep-alive idle time.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time the upstream has to answer.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);
/// Default bound on open client connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default time in-flight requests get to finish on SIGTERM.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound on a request head: 16 KiB (hyper's floor is 8 KiB).
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// Smallest accepted max_header_bytes: hyper's HTTP/1.1 read buffer cannot be smaller.
pub const MIN_MAX_HEADER_BYTES: usize = 8 * 1024;
/// Default bound on the number of request headers.
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// Default query parameter holding the URL token.
pub const DEFAULT_TOKEN_PARAM: &str = "token";
/// Largest body bound accepted in config: bodies are held in memory.
pub const MAX_MAX_BODY_BYTES: u64 = 256 * 1024 * 1024;

/// The running configuration.
#[derive(Debug)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    pub listen: Listen,
    pub tls: Option<Tls>,
    pub gateway: Gateway,
    pub routes: Routes,
    /// Query parameters whose values are replaced by `REDACTED` in logs:
    /// every route's token parameter, so a token sent to the wrong path is hidden too.
    pub redact_params: Vec<String>,
    /// Things that work but that an operator should change (literal secrets, trial certificate).
    pub warnings: Vec<String>,
    /// `[queue] dir`: where the callback store lives.
    pub queue_dir: PathBuf,
}

impl Config {
    /// Whether any route needs the store (delivery = "queue" or dedupe_window).
    pub fn needs_store(&self) -> bool {
        self.routes
            .iter()
            .any(|r| r.delivery == Delivery::Queue || r.dedupe_window.is_some())
    }
}

/// `[listen]`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub https: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    /// `/healthz` and `/metrics`, plain HTTP: meant for 127.0.0.1.
    pub admin: Option<SocketAddr>,
    /// Every connection on https/http starts with a PROXY v1/v2 header naming the client.
    pub proxy_protocol: bool,
}

/// Loaded TLS material.
#[derive(Clone)]
pub struct Tls {
    pub server_config: Arc<rustls::ServerConfig>,
    /// Where the certificate came from, for `check` and logs.
    pub description: String,
    pub self_signed: bool,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

/// `[gateway]`, resolved.
#[derive(Debug, Clone)]
pub struct Gateway {
    pub verified_header: HeaderName,
    pub max_body_bytes: u64,
    pub trusted_proxies: Vec<IpNet>,
    pub tls_handshake_timeout: Duration,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// Bound on a request head (HTTP/1.1) or header list (h2); beyond: 431.
    pub max_header_bytes: usize,
    /// Bound on the number of request headers (HTTP/1.1); beyond: 431.
    pub max_headers: usize,
    pub drain_timeout: Duration,
    /// Brute-force damping; None: off.
    pub damping: Option<crate::damping::Settings>,
}

/// Routes by exact path, plus their order in the file.
#[derive(Debug, Default)]
pub struct Routes {
    by_path: HashMap<String, Arc<Route>>,
    in_order: Vec<Arc<Route>>,
}

impl Routes {
    /// The route serving exactly this path.
    pub fn get(&self, path: &str) -> Option<&Arc<Route>> {
        self.by_path.get(path)
    }

    /// All routes in file order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.in_order.iter()
    }
}

/// One route, with every check ready to run.
#[derive(Debug)]
pub struct Route {
    pub name: String,
    pub path: String,
    pub upstream: Upstream,
    pub preset: Option<Preset>,
    pub methods: Vec<Method>,
    pub allow_ips: Option<IpCheck>,
    pub token: Option<TokenCheck>,
    pub hmac: Option<HmacCheck>,
    pub payload: Option<Payload>,
    pub strip_token: bool,
    pub upstream_timeout: Duration,
    pub delivery: Delivery,
    /// Status answered once a queued callback is stored (delivery = "queue").
    pub ack_status: http::StatusCode,
    /// Deliveries of this route's queue in flight at once (1 keeps arrival order).
    pub max_in_flight: usize,
    pub retry: Retry,
    /// A callback whose body (SHA-256) was delivered this recently is not forwarded again.
    pub dedupe_window: Option<Duration>,
    /// This route's counters, once looked up.
    pub metrics: crate::metrics::RouteCache,
}

/// Redelivery schedule for queued callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// First wait; doubled after each failure, up to `cap`, with jitter.
    pub base: Duration,
    pub cap: Duration,
    /// After this many attempts the callback is a dead letter.
    pub max_attempts: u32,
    /// A callback older than this is a dead letter after its next failure.
    pub max_age: Duration,
}

/// Default first redelivery wait.
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(1);
/// Default longest redelivery wait.
pub const DEFAULT_RETRY_CAP: Duration = Duration::from_secs(300);
/// Default attempts before a dead letter.
pub const DEFAULT_RETRY_MAX_ATTEMPTS: u32 = 20;
/// Default age after which a failing callback becomes a dead letter.
pub const DEFAULT_RETRY_MAX_AGE: Duration = Duration::from_secs(2 * 24 * 3600);
/// Default answer to the provider once a callback is stored.
pub const DEFAULT_ACK_STATUS: u16 = 202;
/// Default directory of the callback store.
pub const DEFAULT_QUEUE_DIR: &str = "/var/lib/callgate";

/// The source-address allowlist.
#[derive(Debug)]
pub struct IpCheck {
    pub nets: Vec<IpNet>,
    pub from_preset: bool,
}

/// The URL token check. Only SHA-256 digests of the tokens are kept, so the
/// comparison is constant-time and does not reveal the token's length.
#[derive(Debug)]
pub struct TokenCheck {
    pub param: String,
    pub digests: Vec<[u8; 32]>,
    /// The tokens themselves: a queued callback is stored without its token,
    /// which is put back when it is delivered.
    pub secrets: Vec<secret::Secret>,
    /// Where each token came from (`env:X`, `file:…`, `literal`), for `check`.
    pub sources: Vec<String>,
}

/// The body signature check.
#[derive(Debug)]
pub struct HmacCheck {
    pub algorithm: Algorithm,
    pub header: HeaderName,
    pub encoding: Encoding,
    pub keys: Vec<Key>,
    pub sources: Vec<String>,
    /// Which of algorithm/header/encoding the preset filled in.
    pub from_preset: Vec<&'static str>,
}

/// Where verified callbacks go: `http://authority/path?query`.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub scheme: Scheme,
    pub authority: Authority,
    pub path: String,
    pub query: Option<String>,
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.path)?;
        match &self.query {
            Some(q) => write!(f, "?{q}"),
            None => Ok(()),
        }
    }
}

/// A config problem, located in the file, with the fix in its text.
#[derive(Debug, thiserror::Error)]
#[error("{file}{at}: {message}")]
pub struct ConfigError {
    pub file: PathBuf,
    /// `:line:column`, or empty when the problem has no single place.
    at: String,
    pub message: String,
}

/// Hash a token for constant-time, length-hiding comparison.
pub fn token_digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl Config {
    /// Read, parse and resolve the config file, loading secrets and certificates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            at: String::new(),
            message: format!("cannot read the config file: {e}"),
        })?;
        Config::from_str(&text, path)
    }

    /// Parse and resolve config text; `path` names the file in errors.
    pub fn from_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let loader = Loader {
            text,
            path,
            warnings: RefCell::new(Vec::new()),
        };
        let raw: raw::RawConfig = toml::from_str(text).map_err(|e| {
            let mut message = e.message().trim_end().to_owned();
            if message.starts_with("unknown field") {
                message.push_str(" (callgate refuses unknown keys: a misspelt key could silently disable a check)");
            }
            loader.error(e.span(), message)
        })?;
        loader.resolve(raw)
    }

    /// Just `[queue] dir` of a config file, without resolving secrets or
    /// loading certificates: what the `callgate queue` commands need.
    pub fn queue_dir_of(path: &Path) -> Result<PathBuf, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            at: String::new(),
            message: format!("cannot read the config file: {e}"),
        })?;
        let loader = Loader {
            text: &text,
            path,
            warnings: RefCell::new(Vec::new()),
        };
        let raw: raw::RawConfig =
            toml::from_str(&text).map_err(|e| loader.error(e.span(), e.message().trim_end()))?;
        Ok(raw
            .queue
            .and_then(|q| q.dir)
            .map_or_else(|| PathBuf::from(DEFAULT_QUEUE_DIR), PathBuf::from))
    }

    /// A human summary of listeners and each route's effective checks.
    pub fn summary(&self) -> String {
        summary::render(self)
    }
}

/// Resolution context: the text, to turn byte spans into line:column.
struct Loader<'a> {
    text: &'a str,
    path: &'a Path,
    warnings: RefCell<Vec<String>>,
}

impl Loader<'_> {
    fn error(&self, span: Option<Range<usize>>, message: impl Into<String>) -> ConfigError {
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

    fn warn(&self, text: String) {
        self.warnings.borrow_mut().push(text);
    }

    fn at<T>(&self, value: &Spanned<T>, message: impl Into<String>) -> ConfigError {
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
        };
        if listen.https.is_none() && listen.http.is_none() {
            return Err(self.error(Some(listen_span), "[listen] has no listener: set https = \"0.0.0.0:443\" (with [tls]) or http = \"127.0.0.1:8080\""));
        }

        let tls = self.tls(raw.tls)?;
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

        let mut routes = Routes::default();
        for (i, spanned) in raw.routes.into_iter().enumerate() {
            let span = spanned.span();
            let route = self.route(i, span.clone(), spanned.into_inner(), upstream_timeout)?;
            if routes.in_order.iter().any(|r| r.name == route.name) {
                return Err(self.error(
                    Some(span),
                    format!(
                        "route[{i}]: the name {:?} is used by another route; names must be unique",
                        route.name
                    ),
                ));
            }
            if routes.by_path.contains_key(&route.path) {
                return Err(self.error(Some(span), format!("route[{i}] ({:?}): path {:?} is already served by another route; paths must be unique", route.name, route.path)));
            }
            let route = Arc::new(route);
            routes.by_path.insert(route.path.clone(), route.clone());
            routes.in_order.push(route);
        }
        let mut redact_params: Vec<String> = routes
            .iter()
            .filter_map(|r| r.token.as_ref().map(|t| t.param.clone()))
            .collect();
        redact_params.sort();
        redact_params.dedup();

        if tls.as_ref().is_some_and(|t| t.self_signed) {
            self.warn("[tls] self_signed = true: an in-memory certificate for localhost. Providers will refuse it. TRIALS ONLY: set cert and key for production".into());
        }
        Ok(Config {
            path: self.path.to_owned(),
            listen,
            tls,
            gateway,
            routes,
            redact_params,
            warnings: self.warnings.take(),
            queue_dir: raw
                .queue
                .and_then(|q| q.dir)
                .map_or_else(|| PathBuf::from(DEFAULT_QUEUE_DIR), PathBuf::from),
        })
    }

    fn tls(&self, raw: Option<Spanned<raw::RawTls>>) -> Result<Option<Tls>, ConfigError> {
        let Some(raw) = raw else { return Ok(None) };
        let span = raw.span();
        let raw = raw.into_inner();
        let (cert, key) = match (raw.self_signed, raw.cert, raw.key) {
            (true, None, None) => {
                let server_config = tls::self_signed()
                    .map_err(|e| self.error(Some(span), format!("tls.self_signed: {e}")))?;
                return Ok(Some(Tls {
                    server_config,
                    description: "self-signed certificate for localhost (TRIALS ONLY)".into(),
                    self_signed: true,
                }));
            }
            (true, _, _) => {
                return Err(self.error(Some(span), "[tls]: self_signed = true cannot be combined with cert/key; remove one or the other"))
            }
            (false, Some(cert), Some(key)) => (cert, key),
            _ => {
                return Err(self.error(Some(span), "[tls] needs both cert and key (PEM files), or self_signed = true for a trial"))
            }
        };
        let (server_config, chain_len) =
            tls::from_pem_files(Path::new(cert.get_ref()), Path::new(key.get_ref())).map_err(
                |e| {
                    let at = if e.is_about_key() {
                        key.span()
                    } else {
                        cert.span()
                    };
                    self.error(Some(at), format!("tls: {e}"))
                },
            )?;
        Ok(Some(Tls {
            server_config,
            description: format!(
                "cert {} ({chain_len} in chain), key {}",
                cert.get_ref(),
                key.get_ref()
            ),
            self_signed: false,
        }))
    }

    /// A number from the file within `valid`, or `default` when absent.
    fn number<T: PartialOrd + Copy>(
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

    /// `[gateway]`, and the default upstream timeout routes inherit.
    fn gateway(&self, raw: raw::RawGateway) -> Result<(Gateway, Duration), ConfigError> {
        let max_body_bytes = self.number(
            raw.max_body_bytes,
            DEFAULT_MAX_BODY_BYTES,
            1..=MAX_MAX_BODY_BYTES,
            &format!("gateway.max_body_bytes must be between 1 and {MAX_MAX_BODY_BYTES} (bodies are held in memory to be verified)"),
        )?;
        let max_connections = self.number(
            raw.max_connections,
            DEFAULT_MAX_CONNECTIONS,
            1..=usize::MAX,
            "gateway.max_connections must be at least 1",
        )?;
        let max_header_bytes = self.number(
            raw.max_header_bytes,
            DEFAULT_MAX_HEADER_BYTES,
            MIN_MAX_HEADER_BYTES..=u32::MAX as usize,
            &format!("gateway.max_header_bytes must be at least {MIN_MAX_HEADER_BYTES} (hyper's smallest read buffer)"),
        )?;
        let max_headers = self.number(
            raw.max_headers,
            DEFAULT_MAX_HEADERS,
            1..=usize::MAX,
            "gateway.max_headers must be at least 1",
        )?;
        let damping = match raw.damping {
            None => None,
            Some(s) => {
                let span = s.span();
                let s = s.into_inner();
                let failures = std::num::NonZeroU32::new(s.failures).ok_or_else(|| {
                    self.error(Some(span), "gateway.damping.failures must be at least 1 (remove damping to turn it off)")
                })?;
                Some(crate::damping::Settings {
                    failures,
                    window: s.window.0,
                    cooldown: s.cooldown.0,
                })
            }
        };
        let d = |v: Option<raw::Dur>, default: Duration| v.map_or(default, |d| d.0);
        let gateway = Gateway {
            damping,
            max_header_bytes,
            max_headers,
            verified_header: raw
                .verified_header
                .map_or(HeaderName::from_static(DEFAULT_VERIFIED_HEADER), |h| h.0),
            max_body_bytes,
            trusted_proxies: raw.trusted_proxies.into_iter().map(|c| c.0).collect(),
            tls_handshake_timeout: d(raw.tls_handshake_timeout, DEFAULT_TLS_HANDSHAKE_TIMEOUT),
            header_read_timeout: d(raw.header_read_timeout, DEFAULT_HEADER_READ_TIMEOUT),
            body_read_timeout: d(raw.body_read_timeout, DEFAULT_BODY_READ_TIMEOUT),
            idle_timeout: d(raw.idle_timeout, DEFAULT_IDLE_TIMEOUT),
            max_connections,
            drain_timeout: d(raw.drain_timeout, DEFAULT_DRAIN_TIMEOUT),
        };
        Ok((gateway, d(raw.upstream_timeout, DEFAULT_UPSTREAM_TIMEOUT)))
    }

    fn route(
        &self,
        i: usize,
        span: Range<usize>,
        raw: raw::RawRoute,
        default_upstream_timeout: Duration,
    ) -> Result<Route, ConfigError> {
        let name = raw.name.get_ref().trim().to_owned();
        if name.is_empty() {
            return Err(self.at(
                &raw.name,
                format!("route[{i}].name is empty: give the route a name for logs and metrics"),
            ));
        }
        let label = format!("route[{i}] ({name:?})");
        let path = raw.path.get_ref().clone();
        if !path.starts_with('/') || path.contains(['?', '#']) {
            return Err(self.at(&raw.path, format!("{label}.path {path:?} must be an absolute path such as \"/tolq/callback\", without query or fragment")));
        }
        let upstream = parse_upstream(raw.upstream.get_ref())
            .map_err(|m| self.at(&raw.upstream, format!("{label}.upstream: {m}")))?;
        let defaults = raw.preset.map(Preset::defaults);
        let preset_name = raw.preset.map_or("", Preset::name);

        let allow_ips = match raw.allow_ips {
            Some(list) if list.is_empty() => {
                return Err(self.error(Some(span), format!("{label}.allow_ips is empty, which would refuse every caller: list the provider's addresses, or remove the key")))
            }
            Some(list) => Some(IpCheck { nets: list.into_iter().map(|c| c.0).collect(), from_preset: false }),
            None => match defaults {
                Some(d) if !d.allow_ips.is_empty() => Some(IpCheck {
                    nets: d.allow_ips.iter().map(|s| s.parse().expect("preset CIDRs are valid")).collect(),
                    from_preset: true,
                }),
                _ => None,
            },
        };

        let token = match raw.token {
            None => None,
            Some(t) => {
                let t_span = t.span();
                let t = t.into_inner();
                let param = match &t.param {
                    Some(p) if p.get_ref().is_empty() => {
                        return Err(self.at(p, format!("{label}.token.param is empty: name the query parameter, e.g. \"token\"")))
                    }
                    Some(p) => p.get_ref().clone(),
                    None => DEFAULT_TOKEN_PARAM.to_owned(),
                };
                let (secrets, sources) = self.secrets(&label, "token", t_span, &t.secrets)?;
                Some(TokenCheck {
                    param,
                    digests: secrets.iter().map(|s| token_digest(s.expose())).collect(),
                    secrets,
                    sources,
                })
            }
        };
        if token.is_none() && defaults.is_some_and(|d| d.requires_token) {
            return Err(self.error(Some(span), format!("{label}: preset {preset_name} requires a URL token (the provider signs nothing): add token = {{ param = \"token\", secrets = [\"env:GENGO_CALLBACK_TOKEN\"] }}")));
        }

        let preset_hmac = defaults.and_then(|d| d.hmac);
        let hmac = match raw.hmac {
            None if preset_hmac.is_some() => {
                return Err(self.error(Some(span), format!("{label}: preset {preset_name} checks the body signature and needs the provider's key: add hmac = {{ secrets = [\"env:TOLQ_API_KEY\"] }} (the Tolq API key)")))
            }
            None => None,
            Some(h) => {
                let h_span = h.span();
                let h = h.into_inner();
                let mut from_preset = Vec::new();
                let algorithm = match (h.algorithm, preset_hmac) {
                    (Some(a), _) => a,
                    (None, Some(p)) => {
                        from_preset.push("algorithm");
                        p.algorithm
                    }
                    (None, None) => {
                        return Err(self.error(Some(h_span), format!("{label}.hmac.algorithm is missing: add algorithm = \"sha256\" (or \"sha1\", \"sha512\")")))
                    }
                };
                let header = match (h.header, preset_hmac) {
                    (Some(v), _) => v.0,
                    (None, Some(p)) => {
                        from_preset.push("header");
                        HeaderName::from_static(p.header)
                    }
                    (None, None) => {
                        return Err(self.error(Some(h_span), format!("{label}.hmac.header is missing: add header = \"X-Signature\" (the header carrying the provider's signature)")))
                    }
                };
                let encoding = match (h.encoding, preset_hmac) {
                    (Some(e), _) => e,
                    (None, Some(p)) => {
                        from_preset.push("encoding");
                        p.encoding
                    }
                    (None, None) => Encoding::Hex,
                };
                let (secrets, sources) = self.secrets(&label, "hmac", h_span, &h.secrets)?;
                Some(HmacCheck {
                    algorithm,
                    header,
                    encoding,
                    keys: secrets.iter().map(|s| Key::new(algorithm, s.expose())).collect(),
                    sources,
                    from_preset,
                })
            }
        };

        if allow_ips.is_none() && token.is_none() && hmac.is_none() {
            return Err(self.error(Some(span), format!("{label} has no check: configure at least one of allow_ips, token or hmac (an unchecked route would forward anything)")));
        }
        if raw.strip_token && token.is_none() {
            return Err(self.error(Some(span), format!("{label}: strip_token = true but the route has no token; remove strip_token or add a token")));
        }
        let methods = match raw.methods {
            None => vec![Method::POST],
            Some(m) if m.get_ref().is_empty() => {
                return Err(self.at(
                    &m,
                    format!("{label}.methods is empty: list at least \"POST\", or remove the key"),
                ))
            }
            Some(m) => m.into_inner().into_iter().map(|m| m.0).collect(),
        };
        let delivery = raw.delivery.unwrap_or(Delivery::Direct);
        let ack_status = match raw.ack_status {
            None => http::StatusCode::from_u16(DEFAULT_ACK_STATUS).expect("valid status"),
            Some(s) => match http::StatusCode::from_u16(*s.get_ref()) {
                Ok(code) if code.is_success() => code,
                _ => {
                    return Err(self.at(
                        &s,
                        format!("{label}.ack_status must be a 2xx status such as 202 or 200"),
                    ))
                }
            },
        };
        let max_in_flight = self.number(
            raw.max_in_flight,
            1,
            1..=usize::MAX,
            &format!("{label}.max_in_flight must be at least 1 (1 keeps arrival order)"),
        )?;
        let raw_retry = raw.retry.unwrap_or_default();
        let retry = Retry {
            base: raw_retry.base.map_or(DEFAULT_RETRY_BASE, |d| d.0),
            cap: raw_retry.cap.map_or(DEFAULT_RETRY_CAP, |d| d.0),
            max_attempts: raw_retry
                .max_attempts
                .unwrap_or(DEFAULT_RETRY_MAX_ATTEMPTS)
                .max(1),
            max_age: raw_retry.max_age.map_or(DEFAULT_RETRY_MAX_AGE, |d| d.0),
        };

        Ok(Route {
            name,
            path,
            upstream,
            preset: raw.preset,
            methods,
            allow_ips,
            token,
            hmac,
            payload: defaults.and_then(|d| d.payload),
            strip_token: raw.strip_token,
            upstream_timeout: raw
                .upstream_timeout
                .map_or(default_upstream_timeout, |d| d.0),
            delivery,
            ack_status,
            max_in_flight,
            retry,
            dedupe_window: raw.dedupe_window.map(|d| d.0),
            metrics: Default::default(),
        })
    }

    /// Resolve a non-empty list of secret specs; errors point at the failing entry.
    fn secrets(
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
            let s = secret::resolve(spec.get_ref())
                .map_err(|e| self.at(spec, format!("{label}.{table}.secrets[{j}]: {e}")))?;
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

/// `http://host:port/path?query` → its parts, ready to join with a request's query.
fn parse_upstream(s: &str) -> Result<Upstream, String> {
    let uri: Uri = s.parse().map_err(|e| {
        format!("{s:?} is not a URL ({e}); write it as \"http://127.0.0.1:8080/callback.php\"")
    })?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!("{s:?}: https upstreams are not supported; callgate forwards to a receiver on the local network over http://"))
        }
        _ => return Err(format!("{s:?} must be an absolute http:// URL, e.g. \"http://127.0.0.1:8080/callback.php\"")),
    }
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| format!("{s:?} has no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!(
            "{s:?}: credentials in the upstream URL are not supported"
        ));
    }
    Ok(Upstream {
        scheme: Scheme::HTTP,
        authority,
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
    })
}
