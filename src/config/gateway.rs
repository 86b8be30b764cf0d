//! `[gateway]`: limits, timeouts, buffers, damping and the assertion, each
//! bounded: the serde mirror, the resolved [`Gateway`], its resolution.

use std::time::Duration;

use super::defaults::{
    BUFFERED_PER_CLIENT_DIVISOR, BUFFERED_SHARE_OF_BODY, DEFAULT_ASSERTION_HEADER,
    DEFAULT_BODY_READ_TIMEOUT, DEFAULT_DRAIN_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HEADERS,
    DEFAULT_MAX_HEADER_BYTES, DEFAULT_TLS_HANDSHAKE_TIMEOUT, DEFAULT_UPSTREAM_TIMEOUT,
    DEFAULT_VERIFIED_HEADER, MAX_DEFAULT_BUFFERED_BODY_BYTES, MAX_MAX_BODY_BYTES,
    MAX_MAX_CONNECTIONS, MAX_MAX_HEADERS, MAX_MAX_HEADER_BYTES, MAX_UPSTREAM_TIMEOUT,
    MIN_MAX_HEADER_BYTES, MIN_TIMEOUT, RESERVED_HEADERS,
};
use super::load::{too_short, Loader};
use super::raw::{Cidr, Dur, HeaderNameValue};
use super::ConfigError;
use crate::crypto::{Algorithm, Key};
use crate::php;
use http::HeaderName;
use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

/// `[gateway]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGateway {
    pub(crate) verified_header: Option<HeaderNameValue>,
    pub(crate) max_body_bytes: Option<Spanned<u64>>,
    #[serde(default)]
    pub(crate) trusted_proxies: Vec<Cidr>,
    pub(crate) tls_handshake_timeout: Option<Dur>,
    pub(crate) header_read_timeout: Option<Dur>,
    pub(crate) body_read_timeout: Option<Dur>,
    pub(crate) idle_timeout: Option<Dur>,
    pub(crate) upstream_timeout: Option<Dur>,
    pub(crate) max_connections: Option<Spanned<usize>>,
    pub(crate) buffered_body_bytes: Option<Spanned<u64>>,
    pub(crate) buffered_body_bytes_per_client: Option<Spanned<u64>>,
    pub(crate) max_header_bytes: Option<Spanned<usize>>,
    pub(crate) max_headers: Option<Spanned<usize>>,
    pub(crate) drain_timeout: Option<Dur>,
    pub(crate) damping: Option<Spanned<RawDamping>>,
    pub(crate) assertion: Option<Spanned<RawAssertion>>,
}

/// `assertion = { key = "cred:callgate-assertion-key", header = "X-Callgate-Assertion" }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAssertion {
    pub(crate) key: Spanned<String>,
    pub(crate) header: Option<HeaderNameValue>,
    pub(crate) version: Option<Spanned<i64>>,
}

/// `damping = { failures = 20, window = "1m", cooldown = "10m" }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDamping {
    pub(crate) failures: u32,
    pub(crate) window: Dur,
    pub(crate) cooldown: Dur,
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
    pub(crate) reserved_headers: ReservedHeaders,
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

impl Loader<'_> {
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
        if FRAMING.iter().any(|f| php::same_header(name.as_str(), f)) {
            return Err(self.error(None, format!("{key} = \"{name}\" names a header that frames, routes or authenticates the request: choose a name of its own, such as X-Callgate-Verified")));
        }
        Ok(())
    }
}

impl Loader<'_> {
    /// `[gateway]`, each value bounded.
    pub(super) fn gateway(&self, mut raw: RawGateway) -> Result<Gateway, ConfigError> {
        let max_body_bytes = self.number(
            raw.max_body_bytes.take(),
            DEFAULT_MAX_BODY_BYTES,
            1..=MAX_MAX_BODY_BYTES,
            &format!("gateway.max_body_bytes must be between 1 and {MAX_MAX_BODY_BYTES} (bodies are held in memory to be verified)"),
        )?;
        let max_connections = self.number(
            raw.max_connections.take(),
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
        let (max_header_bytes, max_headers) = self.header_bounds(&mut raw)?;
        let damping = raw.damping.take().map(|d| self.damping(d)).transpose()?;
        let assertion = (raw.assertion.take())
            .map(|a| self.assertion(a))
            .transpose()?;
        let verified_header = (raw.verified_header.take())
            .map_or(HeaderName::from_static(DEFAULT_VERIFIED_HEADER), |h| h.0);
        self.own_header(&verified_header, "gateway.verified_header")?;
        let trusted_proxies = self.trusted_proxies(std::mem::take(&mut raw.trusted_proxies))?;
        let t = self.timeouts(raw)?;
        Ok(Gateway {
            damping,
            max_header_bytes,
            max_headers,
            reserved_headers: reserved_headers(&verified_header, assertion.as_ref()),
            assertion,
            verified_header,
            max_body_bytes,
            trusted_proxies,
            tls_handshake_timeout: t.tls_handshake,
            header_read_timeout: t.header_read,
            body_read_timeout: t.body_read,
            idle_timeout: t.idle,
            max_connections,
            buffered_body_bytes,
            buffered_body_bytes_per_client,
            drain_timeout: t.drain,
            upstream_timeout: t.upstream,
        })
    }

    /// `max_header_bytes` and `max_headers`. Each header slot is allocated
    /// up front for every request: a bound keeps one stranger's request
    /// from asking for gigabytes.
    fn header_bounds(&self, raw: &mut RawGateway) -> Result<(usize, usize), ConfigError> {
        let max_header_bytes = self.number(
            raw.max_header_bytes.take(),
            DEFAULT_MAX_HEADER_BYTES,
            MIN_MAX_HEADER_BYTES..=MAX_MAX_HEADER_BYTES,
            &format!("gateway.max_header_bytes must be between {MIN_MAX_HEADER_BYTES} (hyper's smallest read buffer) and {MAX_MAX_HEADER_BYTES}"),
        )?;
        let max_headers = self.number(
            raw.max_headers.take(),
            DEFAULT_MAX_HEADERS,
            1..=MAX_MAX_HEADERS,
            &format!("gateway.max_headers must be between 1 and {MAX_MAX_HEADERS}"),
        )?;
        Ok((max_header_bytes, max_headers))
    }

    /// `trusted_proxies`: never every address.
    fn trusted_proxies(&self, raw: Vec<Cidr>) -> Result<Vec<IpNet>, ConfigError> {
        let nets: Vec<IpNet> = raw.into_iter().map(|c| c.0).collect();
        if let Some(all) = nets.iter().find(|n| n.prefix_len() == 0) {
            return Err(self.error(None, format!("gateway.trusted_proxies = [\"{all}\"] trusts every address: any client could then name its own address in X-Forwarded-For and pass an allowlist. List your proxies' addresses only")));
        }
        Ok(nets)
    }

    /// Every timeout of `[gateway]`, each within its bound.
    fn timeouts(&self, raw: RawGateway) -> Result<Timeouts, ConfigError> {
        let secs = Duration::from_secs;
        let d = |v: Option<Dur>, default: Duration, max: Duration, key: &str| {
            self.duration(v, default, MIN_TIMEOUT..=max, &format!("gateway.{key}"))
        };
        Ok(Timeouts {
            tls_handshake: d(
                raw.tls_handshake_timeout,
                DEFAULT_TLS_HANDSHAKE_TIMEOUT,
                secs(300),
                "tls_handshake_timeout",
            )?,
            header_read: d(
                raw.header_read_timeout,
                DEFAULT_HEADER_READ_TIMEOUT,
                secs(300),
                "header_read_timeout",
            )?,
            body_read: d(
                raw.body_read_timeout,
                DEFAULT_BODY_READ_TIMEOUT,
                secs(3600),
                "body_read_timeout",
            )?,
            idle: d(
                raw.idle_timeout,
                DEFAULT_IDLE_TIMEOUT,
                secs(3600),
                "idle_timeout",
            )?,
            drain: d(
                raw.drain_timeout,
                DEFAULT_DRAIN_TIMEOUT,
                secs(3600),
                "drain_timeout",
            )?,
            upstream: d(
                raw.upstream_timeout,
                DEFAULT_UPSTREAM_TIMEOUT,
                MAX_UPSTREAM_TIMEOUT,
                "upstream_timeout",
            )?,
        })
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
    fn damping(&self, raw: Spanned<RawDamping>) -> Result<Damping, ConfigError> {
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

    /// `[gateway] assertion`: its key, resolved like any secret; its header
    /// one of callgate's own.
    fn assertion(&self, raw: Spanned<RawAssertion>) -> Result<Assertion, ConfigError> {
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
        .and_then(|a| {
            self.own_header(&a.header, "gateway.assertion.header")?;
            Ok(a)
        })
    }
}

/// `[gateway]`'s timeouts, resolved.
struct Timeouts {
    tls_handshake: Duration,
    header_read: Duration,
    body_read: Duration,
    idle: Duration,
    drain: Duration,
    upstream: Duration,
}

/// Every header name callgate alone sets: the reserved ones, the verified
/// header and the assertion header (the default's name, and its own).
fn reserved_headers(verified: &HeaderName, assertion: Option<&Assertion>) -> ReservedHeaders {
    ReservedHeaders::new(
        RESERVED_HEADERS
            .iter()
            .map(|h| HeaderName::from_static(h))
            .chain([
                verified.clone(),
                HeaderName::from_static(DEFAULT_ASSERTION_HEADER),
            ])
            .chain(assertion.map(|a| a.header.clone())),
    )
}

/// The header names callgate alone sets, ready for the question every
/// request asks of each of its header names: does a receiver read this one
/// as a reserved name? PHP's `$_SERVER` and CGI fold case and every
/// character other than a letter or digit, never a name's length, so only
/// the reserved names of the same length are compared, and a name of no
/// reserved length is ruled out by one bit test.
#[derive(Debug, Clone)]
pub struct ReservedHeaders {
    /// Each name as a receiver reads it (`php::header_byte` on every byte).
    folded: Vec<Box<[u8]>>,
    /// Bit `n` set: some reserved name is `n` bytes long (63: 63 or more).
    lengths: u64,
}

impl ReservedHeaders {
    /// The set of `names` (in any order, duplicates allowed).
    pub fn new(names: impl IntoIterator<Item = HeaderName>) -> ReservedHeaders {
        let mut folded: Vec<Box<[u8]>> = names
            .into_iter()
            .map(|n| n.as_str().bytes().map(php::header_byte).collect())
            .collect();
        folded.sort_unstable();
        folded.dedup();
        let lengths = folded.iter().fold(0, |set, n| set | length_bit(n.len()));
        ReservedHeaders { folded, lengths }
    }

    /// Whether a receiver reads `name` as one of these names.
    pub fn holds(&self, name: &HeaderName) -> bool {
        let name = name.as_str().as_bytes();
        if self.lengths & length_bit(name.len()) == 0 {
            return false;
        }
        self.folded
            .iter()
            .filter(|r| r.len() == name.len())
            .any(|r| r.iter().zip(name).all(|(&r, &n)| r == php::header_byte(n)))
    }
}

/// A length's bit; every length from 63 on shares the last one.
fn length_bit(len: usize) -> u64 {
    1 << len.min(63)
}
