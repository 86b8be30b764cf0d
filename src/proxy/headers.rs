//! Header rewriting between the caller and the upstream: hop-by-hop removal
//! (RFC 9110 §7.6.1), X-Forwarded-*, and the verified header.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::ReservedHeaders;
use crate::verify::Passed;

/// Headers that describe one connection, never the message (RFC 9110 §7.6.1,
/// plus the pre-standard `Proxy-Connection` and `Keep-Alive`).
static HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Remove hop-by-hop headers, including every header the `Connection` header names.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // One look at the names costs less than a removal per listed name, each
    // of which hashes it; most requests carry none, most answers only
    // `Connection: keep-alive`.
    let mut present = [false; HOP_BY_HOP.len()];
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present[i] = true;
        }
    }
    if !present.contains(&true) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| connection_options(v.as_bytes()))
        // Connection options that name no header of this message.
        .filter(|t| !t.eq_ignore_ascii_case(b"close") && !t.eq_ignore_ascii_case(b"keep-alive"))
        .filter_map(|t| HeaderName::from_bytes(t).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for (name, _) in HOP_BY_HOP.iter().zip(present).filter(|(_, p)| *p) {
        headers.remove(name);
    }
}

/// The options a Connection value lists (RFC 9110 §7.6.1: a comma-
/// separated list of tokens, with optional spaces and tabs around each),
/// empty elements left out. Bytes, not text: a value with bytes outside
/// ASCII still names its ASCII options (an option naming no valid header
/// name is dropped by the caller).
fn connection_options(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(|t| t.trim_ascii_start().trim_ascii_end())
        .filter(|t| !t.is_empty())
}

/// What callgate itself saw of the caller, for X-Forwarded-*.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    /// The TCP peer (after PROXY protocol, if any) as an X-Forwarded-For
    /// value ([`forwarded_for`]), made once per connection.
    pub peer_value: &'a HeaderValue,
    /// Whether the peer is a trusted proxy whose X-Forwarded-For is kept.
    pub peer_trusted: bool,
    /// `https` or `http`: the listener the request came in on.
    pub proto: &'static str,
    /// The Host (or h2 `:authority`) the caller asked for.
    pub host: Option<&'a HeaderValue>,
}

/// A peer address as X-Forwarded-For writes it (IPv4-mapped IPv6 as IPv4).
pub fn forwarded_for(peer: IpAddr) -> HeaderValue {
    value(&peer.to_canonical().to_string())
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Turn the caller's headers into the upstream request's, all but the
/// verified header (set by [`mark_verified`] once the checks passed): hop-by-
/// hop headers out, every reserved header out in every spelling a receiver
/// folds to it, then callgate's own X-Forwarded-* from what it saw.
pub fn for_upstream(
    headers: &mut HeaderMap,
    seen: Seen<'_>,
    reserved: &ReservedHeaders,
    body_len: usize,
) {
    // One look at the names first: most callbacks carry no hop-by-hop,
    // reserved or Expect header, and then none is looked up to be removed.
    let doomed = headers
        .keys()
        .any(|n| n == header::EXPECT || HOP_BY_HOP.contains(n) || reserved.holds(n));
    if doomed {
        remove_hop_by_hop(headers);
        // The body is complete in memory: the upstream gets it framed by
        // length, and has nothing to wait for.
        headers.remove(header::EXPECT);
    }
    // Kept as it came when it already says so (no new value to format).
    let mut declared = headers.get_all(header::CONTENT_LENGTH).iter();
    if !(declared.next().is_some_and(|v| says_len(v, body_len)) && declared.next().is_none()) {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body_len));
    }

    // A trusted proxy's chain is kept (in its one exact spelling), and
    // extended by the hop callgate saw.
    let chain = seen.peer_trusted.then(|| {
        let hops: Vec<&str> = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!hops.is_empty()).then(|| {
            value(&format!(
                "{}, {}",
                hops.join(", "),
                seen.peer_value.to_str().unwrap_or("unknown")
            ))
        })
    });
    if doomed {
        remove_reserved(headers, reserved);
    }
    headers.insert(
        X_FORWARDED_FOR,
        chain.flatten().unwrap_or_else(|| seen.peer_value.clone()),
    );
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(seen.proto));
    if let Some(host) = seen.host.filter(|h| h.to_str().is_ok()) {
        headers.insert(X_FORWARDED_HOST, host.clone());
    }
}

/// The same for a pass-through request, whose body streams through as it
/// came (its framing is hyper's to write, so no Content-Length is set).
pub fn for_site(headers: &mut HeaderMap, seen: Seen<'_>, reserved: &ReservedHeaders) {
    let len = headers.get(header::CONTENT_LENGTH).cloned();
    for_upstream(headers, seen, reserved, 0);
    match len {
        Some(len) => headers.insert(header::CONTENT_LENGTH, len),
        None => headers.remove(header::CONTENT_LENGTH),
    };
}

/// Remove every header whose name a receiver reads as a reserved one: PHP's
/// `$_SERVER` and CGI fold case and `_`/`-`, and take the last copy, so
/// `X_Callgate_Verified` would speak for callgate.
fn remove_reserved(headers: &mut HeaderMap, reserved: &ReservedHeaders) {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|n| reserved.holds(n))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// Whether `v` is `n` as `HeaderValue::from(n)` writes it: digits, no
/// leading zero.
fn says_len(v: &HeaderValue, n: usize) -> bool {
    let b = v.as_bytes();
    let canonical = b.first() != Some(&b'0') || b.len() == 1;
    canonical
        && b.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()) == Some(n)
}

/// Add the one verified header callgate vouches for (every copy the caller
/// sent, in any spelling, is gone already).
pub fn mark_verified(headers: &mut HeaderMap, verified_header: &HeaderName, passed: Passed) {
    // A report-only callback that passed nothing carries no verified header at all.
    if passed.names_nothing() {
        headers.remove(verified_header);
        return;
    }
    headers.insert(
        verified_header.clone(),
        HeaderValue::from_static(passed.words()),
    );
}

fn value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

#[cfg(test)]
mod tests;
