//! The running configuration: the TOML file turned once into typed, resolved
//! values (addresses and CIDRs parsed, secrets read, HMAC keys prepared,
//! presets applied, certificates loaded). Request handling never parses
//! config text. [`load`] does the turning; this file holds the types.

mod acme;
mod admin;
mod certificates;
pub mod defaults;
pub(crate) mod deploy;
mod gateway;
pub(crate) mod ip_list;
mod load;
mod passthrough;
pub(crate) mod pg_url;
pub mod presets;
pub(crate) mod public_key;
mod queue;
pub(crate) mod raw;
pub(crate) mod redact;
mod route;
pub(crate) mod secret;
pub(crate) mod tls;
pub(crate) mod trial;
pub(crate) mod upstream_tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::{HeaderName, Method};
use ipnet::IpNet;
use sha2::{Digest, Sha256};

use crate::crypto::{Algorithm, Encoding, Key};
pub(crate) use defaults::*;
#[cfg(test)]
pub(crate) use ip_list::NoLists;
pub(crate) use ip_list::{NamedLists, NotAdmitted};
use presets::{Payload, Preset};
pub(crate) use raw::Delivery;

/// The running configuration.
#[derive(Debug)]
pub struct Config {
    /// The file it came from.
    pub(crate) path: PathBuf,
    pub(crate) listen: Listen,
    pub(crate) tls: Option<Tls>,
    pub(crate) gateway: Gateway,
    pub(crate) routes: Routes,
    /// `[[passthrough]]` in file order: the first whose hosts match serves.
    pub(crate) passthroughs: Vec<Arc<Passthrough>>,
    /// Query parameters whose values are replaced by `REDACTED` in logs:
    /// every route's token parameter (folded as PHP reads names), so a token sent to the wrong path is hidden too.
    pub(crate) redact_params: Vec<String>,
    /// Every secret the config holds, hidden by value wherever a request is
    /// logged or shown (`config/redact.rs`).
    pub(crate) redactor: redact::Redactor,
    /// Things that work but that an operator should change (literal secrets, trial certificate).
    pub(crate) warnings: Vec<String>,
    /// Trial values it holds (self_signed, placeholder secrets), each with
    /// what to edit: served on loopback only (see [`trial`]).
    pub(crate) trial: Vec<String>,
    /// `[queue]`: where the callback store lives.
    pub(crate) queue: QueueBackend,
    /// `[admin]`: the console.
    pub(crate) admin: Admin,
    /// The address lists the routes name (`"list:NAME"`), built-in or `[[ip_list]]`.
    pub(crate) ip_lists: Vec<ip_list::IpList>,
    /// Where the last good copy of each list is kept: `ip-lists/` in the
    /// state directory (`[queue] dir`, default /var/lib/callgate).
    pub(crate) ip_lists_dir: PathBuf,
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

impl Config {
    /// The state directories callgate will trust, and where each comes
    /// from (the queue's when a store is needed, each ACME state).
    pub(crate) fn state_dirs(&self) -> Vec<(&'static str, PathBuf)> {
        let mut dirs = Vec::new();
        if let (true, QueueBackend::Sqlite { dir }) = (self.needs_store(), &self.queue) {
            dirs.push(("queue dir", dir.clone()));
        }
        if let Some(acme) = self.tls.as_ref().and_then(|t| t.acme.as_ref()) {
            dirs.push(("tls.acme state", acme.state.clone()));
        }
        if !self.ip_lists.is_empty() {
            dirs.push(("ip lists", self.ip_lists_dir.clone()));
        }
        dirs
    }

    /// Whether any route needs the store (delivery = "queue" or dedupe_window).
    pub(crate) fn needs_store(&self) -> bool {
        self.routes
            .iter()
            .any(|r| r.stores() || r.dedupe_window.is_some())
    }
}

/// `[listen]`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listen {
    pub(crate) https: Option<SocketAddr>,
    pub(crate) http: Option<SocketAddr>,
    /// `/healthz` and `/metrics`, plain HTTP: meant for 127.0.0.1.
    pub(crate) admin: Option<SocketAddr>,
    /// Every connection on https/http starts with a PROXY v1/v2 header naming the client.
    pub(crate) proxy_protocol: bool,
    /// The peers whose PROXY headers are believed; any other peer is refused.
    pub(crate) proxy_protocol_from: Vec<IpNet>,
    /// Plain-HTTP requests that match no route are answered 308 to https.
    pub(crate) http_redirect: bool,
}

/// Loaded TLS material.
#[derive(Clone)]
pub(crate) struct Tls {
    pub(crate) server_config: Arc<rustls::ServerConfig>,
    /// Where the default certificate came from, for `check` and logs.
    pub(crate) description: String,
    /// Every certificate served, for `check`: the hosts it is for
    /// (`default` for the [tls] one), its subject and its expiry.
    pub(crate) certificates: Vec<(Vec<String>, String, i64)>,
    pub(crate) self_signed: bool,
    /// `[tls.acme]`: certificates callgate obtains itself.
    pub(crate) acme: Option<Acme>,
}

/// `[queue]`, resolved: which store holds queued callbacks and dedupe rows.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum QueueBackend {
    /// The embedded SQLite file in `dir`: one machine, no server.
    Sqlite { dir: PathBuf },
    /// A PostgreSQL database several instances share.
    Postgres {
        /// The `postgres://` URL without its TLS parameters (it may hold a password).
        url: secret::Secret,
        /// The TLS the connection demands (`sslmode`, `sslrootcert`).
        tls: pg_url::PgTls,
        /// How long a claim on a callback lasts before another instance may take it.
        lease: Duration,
    },
}

impl std::fmt::Debug for QueueBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueueBackend::Sqlite { dir } => write!(f, "sqlite in {}", dir.display()),
            QueueBackend::Postgres { lease, tls, .. } => {
                write!(f, "postgres ({}, lease {lease:?})", tls.describe())
            }
        }
    }
}

/// `[tls.acme]`, resolved: one certificate for all `domains`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Acme {
    /// Lower case, no wildcards (those need dns-01).
    pub(crate) domains: Vec<String>,
    /// `mailto:` URLs.
    pub(crate) contact: Vec<String>,
    pub(crate) directory: String,
    pub(crate) challenge: AcmeChallenge,
    /// Roots trusted, besides the system's, for reaching the directory.
    pub(crate) ca_roots: Vec<rustls_pki_types::CertificateDer<'static>>,
    pub(crate) state: PathBuf,
    pub(crate) renew_before: Duration,
    /// Where the account, the certificate and the challenge answers live.
    pub(crate) store: AcmeStore,
}

/// `[tls.acme] store`: this instance's state directory, or the queue's
/// PostgreSQL database shared by every instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AcmeStore {
    Files,
    /// Keys sealed with `store_key` (`acme/seal.rs`); the state directory
    /// keeps a copy of the certificate for starts without the database.
    Postgres {
        key: secret::Secret,
    },
}

/// How the ACME server is shown that callgate serves the domains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AcmeChallenge {
    /// RFC 8737: a special certificate on the https listener, ALPN `acme-tls/1`.
    TlsAlpn01,
    /// A token under `/.well-known/acme-challenge/` on the http listener.
    Http01,
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
pub(crate) struct Gateway {
    pub(crate) verified_header: HeaderName,
    pub(crate) max_body_bytes: u64,
    pub(crate) trusted_proxies: Vec<IpNet>,
    pub(crate) tls_handshake_timeout: Duration,
    pub(crate) header_read_timeout: Duration,
    pub(crate) body_read_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_connections: usize,
    /// Request-body bytes held in memory at once, all requests together.
    pub(crate) buffered_body_bytes: u64,
    /// The share of `buffered_body_bytes` one client address (IPv6: /64) may hold.
    pub(crate) buffered_body_bytes_per_client: u64,
    /// Bound on a request head (HTTP/1.1) or header list (h2); beyond: 431.
    pub(crate) max_header_bytes: usize,
    /// Bound on the number of request headers (HTTP/1.1); beyond: 431.
    pub(crate) max_headers: usize,
    pub(crate) drain_timeout: Duration,
    /// Time the upstream has to answer: a route's default, the pass-through's.
    pub(crate) upstream_timeout: Duration,
    /// Every header name callgate alone sets: [`RESERVED_HEADERS`], the
    /// verified header and the assertion header.
    pub(crate) reserved_headers: Vec<HeaderName>,
    /// The signed assertion added to each forwarded callback; None: off.
    pub(crate) assertion: Option<Assertion>,
    /// Brute-force damping; None: off.
    pub(crate) damping: Option<Damping>,
}

/// `[gateway] assertion`, resolved: the header, and the HMAC-SHA256 key.
#[derive(Debug, Clone)]
pub(crate) struct Assertion {
    pub(crate) header: HeaderName,
    pub(crate) key: Key,
    pub(crate) version: AssertionVersion,
}

/// Which assertion format receivers check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AssertionVersion {
    /// `v1;t;route;checks;body`
    V1,
    /// v1 and a unique id, the Host and the Content-Type.
    V2,
}

/// `[gateway] damping = { failures, window, cooldown }`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Damping {
    /// Failed verifications allowed per `window`, refilling evenly.
    pub(crate) failures: std::num::NonZeroU32,
    /// The window the failures are counted in.
    pub(crate) window: Duration,
    /// How long an address over the limit is answered 429.
    pub(crate) cooldown: Duration,
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
}

impl Route {
    /// Whether callbacks of this route may be stored (queue delivery, or
    /// `on_failure = "queue"`): the route then has a delivery worker.
    pub(crate) fn stores(&self) -> bool {
        self.delivery == Delivery::Queue || self.on_failure_queue
    }
}

/// Redelivery schedule for queued callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retry {
    /// First wait; doubled after each failure, up to `cap`, with jitter.
    pub(crate) base: Duration,
    pub(crate) cap: Duration,
    /// After this many attempts the callback is a dead letter.
    pub(crate) max_attempts: u32,
    /// A callback older than this is a dead letter after its next failure.
    pub(crate) max_age: Duration,
}

/// The source-address allowlist: addresses and CIDRs written in the config,
/// and named lists (`"list:github"`) whose ranges are runtime state, looked
/// up through a [`NamedLists`] at each request.
#[derive(Debug)]
pub(crate) struct IpCheck {
    pub(crate) nets: Vec<IpNet>,
    /// Names of `[[ip_list]]`s or built-in lists, in the order written.
    pub(crate) lists: Vec<String>,
    pub(crate) from_preset: bool,
}

/// The URL token check. Only SHA-256 digests of the tokens are kept, so the
/// comparison is constant-time and does not reveal the token's length.
#[derive(Debug)]
pub(crate) struct TokenCheck {
    /// The query parameter, as PHP names it (`api.key` is `api_key`).
    pub(crate) param: String,
    pub(crate) digests: Vec<[u8; 32]>,
    /// The tokens themselves: a queued callback is stored without its token,
    /// which is put back when it is delivered.
    pub(crate) secrets: Vec<secret::Secret>,
    /// Where each token came from (`env:X`, `file:…`, `literal`), for `check`.
    pub(crate) sources: Vec<String>,
}

/// The body signature check.
#[derive(Debug, Clone)]
pub(crate) struct HmacCheck {
    pub(crate) algorithm: Algorithm,
    pub(crate) header: HeaderName,
    pub(crate) encoding: Encoding,
    pub(crate) keys: Vec<Key>,
    pub(crate) sources: Vec<String>,
    /// Which of algorithm/header/encoding the preset filled in.
    pub(crate) from_preset: Vec<&'static str>,
    /// What is signed, and how the header carries it (a preset's, or a
    /// plain HMAC of the body).
    pub(crate) scheme: presets::Scheme,
    /// How far a signed timestamp may be from now.
    pub(crate) tolerance: Duration,
    /// The public base URL (`https://example.com`) when callgate sits
    /// behind another proxy: Twilio signs the URL it called.
    pub(crate) public_url: Option<String>,
    /// Secrets the provider handed over in its handshake (Asana), checked
    /// after `keys`.
    pub(crate) learned: Option<Arc<crate::learned::Learned>>,
    /// The route answers a handshake with an HMAC of a token under these
    /// keys (X, Zoom): a signed string shaped like such a token is refused,
    /// whatever the template, so no answer ever passes as a signature.
    pub(crate) refuse_tokens: bool,
}

impl HmacCheck {
    /// The keys handed over so far, if the route learns any.
    pub(crate) fn learned_keys(&self) -> Option<arc_swap::Guard<Arc<Vec<Key>>>> {
        self.learned.as_ref().map(|l| l.keys())
    }

    /// Every key a signature is checked with: the configured ones, then
    /// those in `learned` (this check's [`HmacCheck::learned_keys`]).
    pub(crate) fn all_keys<'a>(
        &'a self,
        learned: &'a Option<arc_swap::Guard<Arc<Vec<Key>>>>,
    ) -> impl Iterator<Item = &'a Key> {
        self.keys
            .iter()
            .chain(learned.iter().flat_map(|k| k.iter()))
    }
}

/// A route's public-key signature check, resolved.
#[derive(Debug, Clone)]
pub(crate) struct SignatureCheck {
    pub(crate) algorithm: presets::PkAlgorithm,
    pub(crate) header: HeaderName,
    pub(crate) encoding: Encoding,
    /// Public keys as ring reads them (raw Ed25519, EC point, RSAPublicKey DER).
    pub(crate) keys: Vec<Vec<u8>>,
    pub(crate) sources: Vec<String>,
    /// The header holding a signed timestamp, and what joins it to the body.
    pub(crate) timestamp: Option<(&'static str, &'static str)>,
    /// A signed message-id header, and what joins it to the timestamp.
    pub(crate) id: Option<(&'static str, &'static str)>,
    /// Space-separated `prefix<signature>` entries; None: one signature.
    pub(crate) list_prefix: Option<&'static str>,
    pub(crate) tolerance: Duration,
}

/// Where verified callbacks go: `http(s)://authority/path?query`.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    pub(crate) scheme: Scheme,
    /// https: how callgate speaks TLS to it (set by the section that names it).
    pub(crate) tls: Option<Arc<upstream_tls::UpstreamTls>>,
    pub(crate) authority: Authority,
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    /// The names of `query`'s parameters as PHP names them: a caller who
    /// sends one of them would override it.
    pub(crate) params: Vec<String>,
}

impl Upstream {
    /// `http://host:port/path?query` → its parts, ready to join with a
    /// request's query; the error says what to write instead.
    pub(crate) fn parse(s: &str) -> Result<Upstream, String> {
        let uri: http::Uri = s.parse().map_err(|e| {
            format!("{s:?} is not a URL ({e}); write it as \"http://127.0.0.1:8080/callback.php\"")
        })?;
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::HTTP,
            Some("https") => Scheme::HTTPS,
            _ => return Err(format!("{s:?} must be an absolute http:// or https:// URL, e.g. \"http://127.0.0.1:8080/callback.php\"")),
        };
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
            scheme,
            tls: None,
            authority,
            path: uri.path().to_owned(),
            params: uri
                .query()
                .map(|q| {
                    form_urlencoded::parse(q.as_bytes())
                        .filter_map(|(k, _)| Some(crate::php::php_name(&k)?.base))
                        .collect()
                })
                .unwrap_or_default(),
            query: uri.query().map(str::to_owned),
        })
    }
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

/// A config problem, located in the file, with the fix in its text; and
/// the others found in the same run (a missing secret does not hide the
/// next one).
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    file: PathBuf,
    /// `:line:column`, or empty when the problem has no single place.
    at: String,
    message: String,
    also: Vec<ConfigError>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}: {}", self.file.display(), self.at, self.message)?;
        for e in &self.also {
            write!(f, "\n{e}")?;
        }
        if !self.also.is_empty() {
            write!(f, "\n({} problems in the config)", self.also.len() + 1)?;
        }
        Ok(())
    }
}

impl ConfigError {
    /// One problem, in `file` at `at` (":line:column" or "").
    pub(crate) fn new(file: PathBuf, at: String, message: String) -> ConfigError {
        ConfigError {
            file,
            at,
            message,
            also: Vec::new(),
        }
    }

    /// All of them as one error, the first in the file first; None if none.
    pub(crate) fn all(mut errors: Vec<ConfigError>) -> Option<ConfigError> {
        let mut first = errors.drain(..1.min(errors.len())).next()?;
        first.also = errors;
        Some(first)
    }
}

/// Hash a token for constant-time, length-hiding comparison.
pub(crate) fn token_digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}
