//! Header rewriting between the caller and the upstream: hop-by-hop removal
//! (RFC 9110 §7.6.1), X-Forwarded-*, and the verified header.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

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
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// Turn the caller's headers into the upstream request's headers.
pub fn for_upstream(
    headers: &mut HeaderMap,
    seen: Seen<'_>,
    verified_header: &HeaderName,
    passed: Passed,
    body_len: usize,
) {
    remove_hop_by_hop(headers);
    // The body is complete in memory: the upstream gets it framed by length,
    // and has nothing to wait for.
    headers.remove(header::EXPECT);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body_len));

    let chain = if seen.peer_trusted {
        let mut hops: Vec<&str> = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!hops.is_empty()).then(|| {
            hops.extend(seen.peer_value.to_str().ok());
            value(&hops.join(", "))
        })
    } else {
        // A client's own claims about the path it took are not ours to pass on.
        headers.remove(FORWARDED);
        None
    };
    headers.insert(
        X_FORWARDED_FOR,
        chain.unwrap_or_else(|| seen.peer_value.clone()),
    );
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(seen.proto));
    match seen.host.filter(|h| h.to_str().is_ok()) {
        Some(host) => {
            headers.insert(X_FORWARDED_HOST, host.clone());
        }
        None => {
            headers.remove(X_FORWARDED_HOST);
        }
    }

    // `insert` replaces every copy the caller sent, in any casing (HeaderMap
    // names are lowercase), with the one value callgate vouches for.
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
        for_upstream(
            h,
            seen(&peer_value, &host, trusted),
            &vh(),
            passed,
            body_len,
        );
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
