//! The file's top level ([`RawConfig`], each table's mirror in its
//! section's file) and the leaf values every section parses. Every table
//! denies unknown keys: a misspelt `alow_ips` must stop the gateway, not
//! silently drop a check. Leaf values are parsed here (addresses, CIDRs,
//! durations, header names), so toml reports a bad value with its line and
//! column.

use std::net::SocketAddr;
use std::time::Duration;

use http::{HeaderName, Method};
use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use super::admin::RawAdmin;
use super::certificates::RawTls;
use super::gateway::RawGateway;
use super::ip_list::RawIpList;
use super::listen::RawListen;
use super::passthrough::RawPassthrough;
use super::presets::PresetFile;
use super::queue::RawQueue;
use super::route::RawRoute;

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
    if leading_zero(s) {
        return Err(format!("{s:?} has a number with a leading zero, which some readers take as octal: write 10.0.0.0/24, not 010.0.0.0/24"));
    }
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("invalid address or CIDR {s:?}: write 84.22.114.141, 84.22.114.0/24 or 2001:db8::/32"))
}

/// A dotted IPv4 number or a prefix length written with a leading zero
/// (`010.0.0.0/24`: octal to some readers, decimal to others).
fn leading_zero(entry: &str) -> bool {
    let (addr, prefix) = entry.trim().split_once('/').unwrap_or((entry.trim(), ""));
    let dotted = addr.rsplit(':').next().unwrap_or("");
    let zero = |n: &str| n.len() > 1 && n.starts_with('0');
    (dotted.contains('.') && dotted.split('.').any(zero)) || zero(prefix)
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
