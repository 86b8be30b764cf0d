//! Serde mirror of the TOML file. Every table denies unknown keys: a misspelt
//! `alow_ips` must stop the gateway, not silently drop a check. Leaf values
//! are parsed here (addresses, CIDRs, durations, header names), so toml
//! reports a bad value with its line and column.

use std::net::SocketAddr;
use std::time::Duration;

use http::{HeaderName, Method};
use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use super::presets::PresetFile;
use crate::crypto::{Algorithm, Encoding};

/// A string value turned into `$ty` by `$parse`, whose error text tells the operator what to write.
macro_rules! parsed_string {
    ($(#[$doc:meta])* $name:ident, $ty:ty, $parse:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub(crate) struct $name(pub $ty);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                let parse: fn(&str) -> Result<$ty, String> = $parse;
                parse(&s).map($name).map_err(serde::de::Error::custom)
            }
        }
    };
}

parsed_string!(
    /// `"0.0.0.0:443"`, `"[::]:443"`.
    ListenAddr,
    SocketAddr,
    |s| s.parse().map_err(|_| format!("invalid listen address {s:?}: write it as \"0.0.0.0:443\", \"127.0.0.1:8080\" or \"[::]:443\""))
);

parsed_string!(
    /// A CIDR or a bare address (a /32 or /128).
    Cidr,
    IpNet,
    parse_cidr
);

/// A CIDR or a bare address; the error says what to write.
pub(crate) fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("invalid address or CIDR {s:?}: write 84.22.114.141, 84.22.114.0/24 or 2001:db8::/32"))
}

/// One `allow_ips` entry: an address or CIDR, or `"list:NAME"` (a provider's
/// published list, kept current at run time).
#[derive(Debug, Clone)]
pub(crate) enum AllowEntry {
    Net(IpNet),
    List(String),
}

impl<'de> Deserialize<'de> for AllowEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.trim().strip_prefix("list:") {
            Some(name) => Ok(AllowEntry::List(name.to_owned())),
            None => parse_cidr(&s).map(AllowEntry::Net).map_err(|e| {
                serde::de::Error::custom(format!(
                    "{e}, or \"list:github\" for a provider's published list"
                ))
            }),
        }
    }
}

parsed_string!(
    /// `"500ms"`, `"10s"`, `"2m"`.
    Dur,
    Duration,
    |s| match humantime::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(format!("duration {s:?} is zero: give a positive duration such as \"10s\"")),
        Err(e) => Err(format!("invalid duration {s:?} ({e}): write it as \"500ms\", \"10s\" or \"2m\"")),
    }
);

/// Longest replay window: rows of a longer one would pile up for months.
pub(crate) const MAX_DEDUPE_WINDOW: Duration = Duration::from_secs(90 * 24 * 3600);

parsed_string!(
    /// A replay window: `"72h"`, `"10m"`; `"0"` turns replay protection off.
    Window,
    Option<Duration>,
    |s| match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Ok(None),
        Ok(d) if d > MAX_DEDUPE_WINDOW => Err(format!("dedupe_window {s:?} is longer than 90 days")),
        Ok(d) => Ok(Some(d)),
        Err(e) => Err(format!("invalid duration {s:?} ({e}): write it as \"72h\", \"10m\" or \"0\" (off)")),
    }
);

parsed_string!(
    /// Deliveries per time: `"20/s"`, `"600/m"`, `"1000/h"`; per second.
    Rate,
    f64,
    |s| {
        let bad = || format!("invalid rate {s:?}: write it as \"20/s\", \"600/m\" or \"1000/h\" (1 to 100000)");
        let (n, unit) = s.trim().split_once('/').ok_or_else(bad)?;
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        let per = match unit.trim() {
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        match n {
            1..=100_000 => Ok(f64::from(n) / per),
            _ => Err(bad()),
        }
    }
);

parsed_string!(
    /// `"1KiB/s"`, `"512B/s"`, `"2MiB/s"`; `"0"` turns the bound off.
    ByteRate,
    u64,
    |s| parse_byte_rate(s).ok_or_else(|| format!("invalid rate {s:?}: write it as \"1KiB/s\", \"512B/s\" or \"0\" (off)"))
);

/// Bytes per second from `"1KiB/s"`; at most 1 GiB/s.
fn parse_byte_rate(s: &str) -> Option<u64> {
    let s = s.trim();
    if s == "0" {
        return Some(0);
    }
    let per = s.strip_suffix("/s")?;
    let split = per.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = per.split_at(split);
    let unit = match unit.trim() {
        "B" => 1,
        "KiB" | "KB" | "kB" => 1024,
        "MiB" | "MB" => 1024 * 1024,
        _ => return None,
    };
    let rate = n.parse::<u64>().ok()?.checked_mul(unit)?;
    (rate <= 1 << 30).then_some(rate)
}

parsed_string!(
    /// An HTTP header name.
    HeaderNameValue,
    HeaderName,
    |s| HeaderName::from_bytes(s.as_bytes()).map_err(|_| format!("{s:?} is not a valid HTTP header name"))
);

parsed_string!(
    /// An HTTP method, e.g. `"POST"`.
    MethodValue,
    Method,
    |s| {
        if s.is_empty() || s.bytes().any(|b| b.is_ascii_lowercase()) {
            return Err(format!("method {s:?} must be an upper-case HTTP method such as \"POST\""));
        }
        Method::from_bytes(s.as_bytes()).map_err(|_| format!("{s:?} is not an HTTP method"))
    }
);

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) listen: Spanned<RawListen>,
    pub(crate) tls: Option<Spanned<RawTls>>,
    #[serde(default)]
    pub(crate) gateway: RawGateway,
    pub(crate) queue: Option<RawQueue>,
    #[serde(default, rename = "route")]
    pub(crate) routes: Vec<Spanned<RawRoute>>,
    #[serde(default, rename = "passthrough")]
    pub(crate) passthroughs: Vec<Spanned<RawPassthrough>>,
    pub(crate) admin: Option<Spanned<RawAdmin>>,
    /// Providers the operator describes (or built-in ones overridden).
    #[serde(default, rename = "preset")]
    pub(crate) presets: Vec<Spanned<PresetFile>>,
    /// Address lists a provider publishes (`allow_ips = ["list:NAME"]`).
    #[serde(default, rename = "ip_list")]
    pub(crate) ip_lists: Vec<Spanned<RawIpList>>,
}

/// `[[ip_list]]`: name, url, format ("json" with path, or "lines"), ca, refresh.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIpList {
    pub(crate) name: Spanned<String>,
    pub(crate) url: Spanned<String>,
    pub(crate) format: Spanned<String>,
    pub(crate) path: Option<Spanned<String>>,
    pub(crate) ca: Option<Spanned<String>>,
    pub(crate) refresh: Option<Spanned<Dur>>,
}

/// `[admin]`: the operator's console on the admin listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    pub(crate) console: Option<Spanned<RawConsole>>,
    pub(crate) requests_kept: Option<Spanned<u64>>,
    pub(crate) hosts: Option<Spanned<Vec<String>>>,
}

/// `[admin] console = { password = SPEC }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConsole {
    pub(crate) password: Spanned<String>,
}

/// `[listen]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListen {
    pub(crate) https: Option<ListenAddr>,
    pub(crate) http: Option<ListenAddr>,
    pub(crate) admin: Option<ListenAddr>,
    pub(crate) proxy_protocol: Option<bool>,
    pub(crate) proxy_protocol_from: Option<Vec<Cidr>>,
    pub(crate) http_redirect: Option<bool>,
}

/// `[tls]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub(crate) cert: Option<Spanned<String>>,
    pub(crate) key: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) self_signed: bool,
    #[serde(default, rename = "certificate")]
    pub(crate) certificates: Vec<Spanned<RawCertificate>>,
    pub(crate) acme: Option<Spanned<RawAcme>>,
}

/// `[tls.acme]`: certificates obtained and renewed by callgate itself.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAcme {
    pub(crate) domains: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) contact: Vec<Spanned<String>>,
    pub(crate) directory: Option<Spanned<String>>,
    pub(crate) challenge: Option<Spanned<String>>,
    pub(crate) ca_roots: Option<Spanned<String>>,
    pub(crate) state: Option<String>,
    pub(crate) renew_before: Option<Dur>,
    pub(crate) store: Option<Spanned<String>>,
    pub(crate) store_key: Option<Spanned<String>>,
}

/// `[[tls.certificate]]`: a certificate for some host names, chosen by SNI.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCertificate {
    pub(crate) hosts: Vec<Spanned<String>>,
    pub(crate) cert: Spanned<String>,
    pub(crate) key: Spanned<String>,
}

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

/// `[queue]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQueue {
    pub(crate) dir: Option<String>,
    pub(crate) backend: Option<Spanned<String>>,
    pub(crate) url: Option<Spanned<String>>,
    pub(crate) lease: Option<Dur>,
}

/// `handshake = { verify_token = SPEC }`: what a provider's endpoint check needs beyond the route's keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHandshake {
    pub(crate) verify_token: Option<Spanned<String>>,
    pub(crate) secret_file: Option<Spanned<String>>,
}

/// `signature = { algorithm, header, encoding, public_keys }`: a public-key signature.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSignature {
    pub(crate) algorithm: Option<Spanned<String>>,
    pub(crate) header: Option<HeaderNameValue>,
    pub(crate) encoding: Option<Encoding>,
    pub(crate) public_keys: Vec<Spanned<String>>,
    pub(crate) tolerance: Option<Dur>,
}

/// How a verified callback reaches the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Delivery {
    Direct,
    Queue,
}

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

/// `upstream_tls = { ca, client_cert, client_key, verify }` (https upstreams).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstreamTls {
    pub(crate) ca: Option<Spanned<String>>,
    pub(crate) client_cert: Option<Spanned<String>>,
    pub(crate) client_key: Option<Spanned<String>>,
    pub(crate) verify: Option<bool>,
}

/// `retry = { base = "1s", cap = "5m", max_attempts = 20, max_age = "2d" }`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetry {
    pub(crate) base: Option<Dur>,
    pub(crate) cap: Option<Dur>,
    pub(crate) max_attempts: Option<u32>,
    pub(crate) max_age: Option<Dur>,
}

/// `token = { param = "token", secrets = [...] }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawToken {
    pub(crate) param: Option<Spanned<String>>,
    pub(crate) secrets: Vec<Spanned<String>>,
}

/// `hmac = { algorithm, header, encoding, secrets }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHmac {
    pub(crate) algorithm: Option<Algorithm>,
    pub(crate) header: Option<HeaderNameValue>,
    pub(crate) encoding: Option<Encoding>,
    pub(crate) secrets: Vec<Spanned<String>>,
    pub(crate) tolerance: Option<Dur>,
    pub(crate) public_url: Option<Spanned<String>>,
}
