//! Header rewriting between the caller and the upstream: hop-by-hop removal
//! (RFC 9110 §7.6.1), X-Forwarded-*, and the verified header.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::php;
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
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        // Connection options that name no header of this message.
        .filter(|t| !t.eq_ignore_ascii_case("close") && !t.eq_ignore_ascii_case("keep-alive"))
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for (name, _) in HOP_BY_HOP.iter().zip(present).filter(|(_, p)| *p) {
        headers.remove(name);
    }
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
    reserved: &[HeaderName],
    body_len: usize,
) {
    remove_hop_by_hop(headers);
    // The body is complete in memory: the upstream gets it framed by length,
    // and has nothing to wait for.
    headers.remove(header::EXPECT);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body_len));

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
    remove_reserved(headers, reserved);
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
pub fn for_site(headers: &mut HeaderMap, seen: Seen<'_>, reserved: &[HeaderName]) {
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
fn remove_reserved(headers: &mut HeaderMap, reserved: &[HeaderName]) {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|n| {
            reserved
                .iter()
                .any(|r| php::same_header(n.as_str(), r.as_str()))
        })
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// Add the one verified header callgate vouches for (every copy the caller
/// sent, in any spelling, is gone already).
pub fn mark_verified(headers: &mut HeaderMap, verified_header: &HeaderName, passed: Passed) {
    // A report-only callback that passed nothing carries no verified header at all.
    if passed == Passed::default() {
        headers.remove(verified_header);
        return;
    }
    headers.insert(
        verified_header.clone(),
        HeaderValue::from_static(passed.header_value()),
    );
}

fn value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: &str = "::ffff:127.0.0.1";

    fn seen<'a>(peer_value: &'a HeaderValue, host: &'a HeaderValue, trusted: bool) -> Seen<'a> {
        Seen {
            peer_value,
            peer_trusted: trusted,
            proto: "https",
            host: Some(host),
        }
    }

    /// `for_upstream` as the service calls it, from a peer at PEER asking for gw.example.
    fn rewrite(h: &mut HeaderMap, trusted: bool, passed: Passed, body_len: usize) {
        let peer_value = forwarded_for(PEER.parse().unwrap());
        let host = HeaderValue::from_static("gw.example");
        for_upstream(h, seen(&peer_value, &host, trusted), &reserved(), body_len);
        mark_verified(h, &vh(), passed);
    }

    fn reserved() -> Vec<HeaderName> {
        let mut r: Vec<HeaderName> = crate::config::defaults::RESERVED_HEADERS
            .iter()
            .map(|h| HeaderName::from_static(h))
            .collect();
        r.push(vh());
        r
    }

    #[test]
    fn reserved_headers_go_in_every_spelling_a_receiver_folds() {
        let mut h = HeaderMap::new();
        for (name, v) in [
            ("X-Callgate-Verified", "junk"),
            ("X_Callgate_Verified", "ip,token,hmac"),
            ("x_forwarded_for", "6.6.6.6"),
            ("X-Forwarded_For", "6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
            ("X_Real_IP", "6.6.6.6"),
            ("client-ip", "6.6.6.6"),
            ("true_client_ip", "6.6.6.6"),
            ("x-original-url", "/admin"),
            ("X_Rewrite_URL", "/admin"),
            ("x-http-method-override", "DELETE"),
            ("x-forwarded-port", "1"),
            ("x_forwarded_host", "evil"),
            ("x-forwarded-proto", "http"),
            ("forwarded", "for=6.6.6.6"),
            ("x-keep-me", "1"),
            ("x_keep_me_too", "1"),
        ] {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let passed = Passed {
            ip: true,
            token: false,
            hmac: false,
        };
        rewrite(&mut h, false, passed, 0);
        let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "content-length",
                "x-callgate-verified",
                "x-forwarded-for",
                "x-forwarded-host",
                "x-forwarded-proto",
                "x-keep-me",
                "x_keep_me_too"
            ]
        );
        assert_eq!(h["x-callgate-verified"], "ip");
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
        assert_eq!(h["x-forwarded-host"], "gw.example");
        assert_eq!(h["x-forwarded-proto"], "https");
    }

    const ALL: Passed = Passed {
        ip: true,
        token: true,
        hmac: true,
    };

    fn vh() -> HeaderName {
        HeaderName::from_static("x-callgate-verified")
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, x-secret-hop".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-secret-hop", "1".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("upgrade", "h2c".parse().unwrap());
        h.insert("te", "trailers".parse().unwrap());
        h.insert("content-type", "application/json".parse().unwrap());
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("content-type"));
    }

    #[test]
    fn a_keep_alive_answer_loses_only_its_connection_header() {
        let mut h = HeaderMap::new();
        h.insert("connection", "Keep-Alive, close".parse().unwrap());
        h.insert("content-type", "text/plain".parse().unwrap());
        h.insert("content-length", "2".parse().unwrap());
        remove_hop_by_hop(&mut h);
        let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-length", "content-type"]);
        // Nothing hop-by-hop: nothing changes.
        let before = h.clone();
        remove_hop_by_hop(&mut h);
        assert_eq!(h, before);
    }

    #[test]
    fn spoofed_verified_headers_are_replaced_by_one() {
        let mut h = HeaderMap::new();
        h.append("X-Callgate-Verified", "ip,token,hmac".parse().unwrap());
        h.append("x-CALLGATE-verified", "hmac".parse().unwrap());
        let passed = Passed {
            ip: false,
            token: true,
            hmac: false,
        };
        rewrite(&mut h, false, passed, 0);
        let all: Vec<_> = h.get_all("x-callgate-verified").iter().collect();
        assert_eq!(all, vec!["token"]);
    }

    #[test]
    fn untrusted_peer_replaces_forwarding_headers() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "84.22.114.141".parse().unwrap());
        h.insert("forwarded", "for=84.22.114.141".parse().unwrap());
        h.insert("x-forwarded-proto", "http".parse().unwrap());
        rewrite(&mut h, false, ALL, 3);
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "gw.example");
        assert!(!h.contains_key("forwarded"));
        assert_eq!(h["content-length"], "3");
    }

    #[test]
    fn trusted_peer_gets_appended_to_the_chain() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "1.1.1.1".parse().unwrap());
        h.append("x-forwarded-for", "2.2.2.2".parse().unwrap());
        rewrite(&mut h, true, ALL, 0);
        assert_eq!(h["x-forwarded-for"], "1.1.1.1, 2.2.2.2, 127.0.0.1");
    }

    #[test]
    fn expect_is_not_forwarded() {
        let mut h = HeaderMap::new();
        h.insert("expect", "100-continue".parse().unwrap());
        rewrite(&mut h, false, ALL, 0);
        assert!(!h.contains_key("expect"));
    }
}
