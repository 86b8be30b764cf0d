use super::*;
use crate::verify::Check;

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

fn reserved_names() -> Vec<HeaderName> {
    crate::config::defaults::RESERVED_HEADERS
        .iter()
        .map(|h| HeaderName::from_static(h))
        .chain([vh()])
        .collect()
}

fn reserved() -> ReservedHeaders {
    ReservedHeaders::new(reserved_names())
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
    let passed = Passed::of(&[Check::Ip]);
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

const ALL: Passed = Passed::of(&[Check::Ip, Check::Token, Check::Hmac]);

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
    let passed = Passed::of(&[Check::Token]);
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

#[test]
fn the_body_length_is_sent_once_and_as_digits() {
    for sent in [
        &["1024"][..],
        &["1024", "1024"],
        &["01024"],
        &["+1024"],
        &["1024, 1024"],
        &["12"],
        &[],
    ] {
        let mut h = HeaderMap::new();
        for v in sent {
            h.append("content-length", v.parse().unwrap());
        }
        rewrite(&mut h, false, ALL, 1024);
        let lens: Vec<_> = h.get_all("content-length").iter().collect();
        assert_eq!(lens, ["1024"], "{sent:?}");
    }
}

proptest::proptest! {
    /// The reserved set's answer (lengths first, then only the names of the
    /// same length) is the one comparing with every reserved name gives.
    #[test]
    fn the_reserved_set_answers_as_comparing_with_every_name_does(
        name in "(?i)(x[-_.]?)?(callgate|forwarded|real|client|true|original|rewrite|verified|ip|host|for|proto|port|url|[a-z]{1,5})([-_.](ip|for|host|url|verified|[a-z]{1,3})){0,3}",
    ) {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else { return Ok(()) };
        let set = reserved();
        let every = reserved_names().iter().any(|r| crate::php::same_header(name.as_str(), r.as_str()));
        proptest::prop_assert_eq!(set.holds(&name), every, "{}", name);
    }
}

#[test]
fn the_reserved_set_holds_every_name_in_every_spelling() {
    let set = reserved();
    for name in &reserved_names() {
        let folded = name.as_str().replace('-', "_").to_ascii_uppercase();
        let folded = HeaderName::from_bytes(folded.as_bytes()).unwrap();
        assert!(set.holds(name) && set.holds(&folded), "{name}");
    }
    assert!(!set.holds(&HeaderName::from_static("x-forwarded-fo")));
    assert!(!set.holds(&header::CONTENT_LENGTH));
}
