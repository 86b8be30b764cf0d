//! `[gateway]`: limits, timeouts, buffers, damping and the assertion, each
//! bounded.

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
use super::{raw, Assertion, AssertionVersion, ConfigError, Damping, Gateway};
use crate::crypto::{Algorithm, Key};
use http::HeaderName;
use toml::Spanned;

impl Loader<'_> {
    /// `[gateway]`, and the default upstream timeout routes inherit.
    pub(super) fn gateway(
        &self,
        mut raw: raw::RawGateway,
    ) -> Result<(Gateway, Duration), ConfigError> {
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
}
