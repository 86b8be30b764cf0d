//! Property tests over the pure core: signature checking, query handling,
//! client address resolution and header rewriting, on arbitrary input.

use std::net::IpAddr;

use callgate::config::defaults::RESERVED_HEADERS;
use callgate::crypto::{self, Algorithm, Encoding, Key};
use callgate::proxy::headers::{self, Seen};
use callgate::verify::client_ip;
use callgate::verify::query::{self, Lookup};
use callgate::verify::signature;
use callgate::verify::{Check, Passed};
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop_oneof![
        Just(Algorithm::Sha1),
        Just(Algorithm::Sha256),
        Just(Algorithm::Sha512)
    ]
}

fn encoding() -> impl Strategy<Value = Encoding> {
    prop_oneof![Just(Encoding::Hex), Just(Encoding::Base64)]
}

proptest! {
    // The regressions file by path: proptest need not look for a lib.rs
    // beside this test (it warned nine times, once per property).
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/properties.proptest-regressions"),
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn what_sign_prints_verifies(alg in algorithm(), enc in encoding(), key in prop::collection::vec(any::<u8>(), 1..80), body in prop::collection::vec(any::<u8>(), 0..2000)) {
        let k = Key::new(alg, &key);
        let sig = crypto::encode(&k.digest(&body), enc);
        prop_assert_eq!(signature::verify(std::slice::from_ref(&k), alg, enc, sig.as_bytes(), &body), Ok(()));
        prop_assert_eq!(signature::verify(&[k], alg, Encoding::Auto, sig.as_bytes(), &body), Ok(()));
    }

    #[test]
    fn any_changed_body_byte_fails(alg in algorithm(), body in prop::collection::vec(any::<u8>(), 1..500), at in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let k = Key::new(alg, b"key");
        let sig = crypto::encode(&k.digest(&body), Encoding::Hex);
        let mut tampered = body.clone();
        let i = at.index(tampered.len());
        tampered[i] ^= flip;
        prop_assert!(signature::verify(&[k], alg, Encoding::Hex, sig.as_bytes(), &tampered).is_err());
    }

    #[test]
    fn any_changed_signature_digit_fails(body in prop::collection::vec(any::<u8>(), 0..200), at in any::<prop::sample::Index>(), digit in 0u8..16) {
        let k = Key::new(Algorithm::Sha1, b"key");
        let sig = crypto::encode(&k.digest(&body), Encoding::Hex);
        let mut claim = sig.into_bytes();
        let i = at.index(claim.len());
        let new = b"0123456789abcdef"[digit as usize];
        prop_assume!(claim[i] != new);
        claim[i] = new;
        prop_assert!(signature::verify(&[k], Algorithm::Sha1, Encoding::Hex, &claim, &body).is_err());
    }

    #[test]
    fn arbitrary_claims_never_panic_and_never_pass(claim in prop::collection::vec(any::<u8>(), 0..200), alg in algorithm()) {
        let k = Key::new(alg, b"key");
        for enc in [Encoding::Hex, Encoding::Base64, Encoding::Auto] {
            prop_assert!(signature::verify(std::slice::from_ref(&k), alg, enc, &claim, b"body").is_err());
        }
    }

    #[test]
    fn token_lookup_finds_exactly_one_value(others in prop::collection::vec(("[a-s]{1,6}", "[a-z0-9]{0,6}"), 0..6), value in "[A-Z]{8,16}", pos in any::<prop::sample::Index>()) {
        let mut pieces: Vec<String> = others.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let at = pos.index(pieces.len() + 1);
        pieces.insert(at, format!("token={value}"));
        let q = pieces.join("&");
        prop_assert_eq!(query::lookup(&q, "token"), Lookup::One(value.clone().into()));
        // Stripped: the token is gone and everything else keeps its order.
        let stripped = query::strip(&q, "token");
        prop_assert!(!stripped.contains(&value));
        let rest: Vec<String> = others.iter().map(|(k, v)| format!("{k}={v}")).collect();
        prop_assert_eq!(stripped, rest.join("&"));
        // Redacted for logs: the value never shows.
        let redacted = query::redact(&q, &["token".to_owned()]);
        prop_assert!(!redacted.contains(&value));
        prop_assert!(redacted.contains("token=REDACTED"));
    }

    #[test]
    fn query_functions_never_panic(q in ".{0,200}") {
        let _ = query::lookup(&q, "token");
        let _ = query::strip(&q, "token");
        let _ = query::redact(&q, &["token".to_owned()]);
    }

    #[test]
    fn untrusted_peers_are_the_client_whatever_they_claim(peer in any::<IpAddr>(), xff in ".{0,100}") {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&xff) {
            h.insert("x-forwarded-for", v);
        }
        prop_assert_eq!(client_ip::resolve(peer, &h, &[]), peer.to_canonical());
    }

    #[test]
    fn trusted_peers_yield_the_peer_or_a_forwarded_address(xff in prop::collection::vec(any::<std::net::Ipv4Addr>(), 0..5), junk in prop::option::of("[a-z ,:]{0,10}")) {
        let mut hops: Vec<String> = xff.iter().map(|a| a.to_string()).collect();
        if let Some(j) = &junk { hops.push(j.clone()); }
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&hops.join(", ")) {
            h.insert("x-forwarded-for", v);
        }
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let got = client_ip::resolve(peer, &h, &["10.0.0.0/8".parse().unwrap()]);
        let named = |hop: &str| {
            let hop = hop.trim();
            hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        };
        let header = hops.join(", ");
        prop_assert!(got == peer || header.split(',').any(|hop| named(hop) == Some(got)), "{got} from {header:?}");
    }

    #[test]
    fn upstream_headers_carry_at_most_one_verified_header_and_no_hop_headers(
        names in prop::collection::vec("[a-zA-Z-]{1,12}", 0..10),
        spoof_casings in prop::collection::vec(prop::bool::ANY, 0..4),
        ip in any::<bool>(), token in any::<bool>(), hmac in any::<bool>(),
    ) {
        let mut h = HeaderMap::new();
        for n in &names {
            if let Ok(name) = HeaderName::from_bytes(n.as_bytes()) {
                h.append(name, HeaderValue::from_static("v"));
            }
        }
        for upper in spoof_casings {
            let name = if upper { "X-CALLGATE-VERIFIED" } else { "x-callgate-verified" };
            h.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_static("ip,token,hmac"));
        }
        h.insert("connection", HeaderValue::from_static("close, x-drop"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        let picked = [(ip, Check::Ip), (token, Check::Token), (hmac, Check::Hmac)];
        let checks: Vec<Check> = picked.iter().filter(|(on, _)| *on).map(|(_, c)| *c).collect();
        let passed = Passed::of(&checks);
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let (peer_value, host) = (headers::forwarded_for(peer), HeaderValue::from_static("gw"));
        let seen = Seen { peer_value: &peer_value, peer_trusted: false, proto: "https", host: Some(&host) };
        let verified = HeaderName::from_static("x-callgate-verified");
        let mut reserved: Vec<HeaderName> = RESERVED_HEADERS.iter().map(|h| HeaderName::from_static(h)).collect();
        reserved.push(verified.clone());
        headers::for_upstream(&mut h, seen, &callgate::config::ReservedHeaders::new(reserved), 7);
        headers::mark_verified(&mut h, &verified, passed);
        let verified: Vec<_> = h.get_all("x-callgate-verified").iter().collect();
        // At most one: the checks that passed; none at all when nothing
        // passed (a report-only route's stranger), never a forged one.
        let value = passed.header_value();
        let want: Vec<&str> = match passed.names_nothing() {
            true => vec![],
            false => vec![value.as_str()],
        };
        prop_assert_eq!(verified, want);
        for hop in ["connection", "transfer-encoding", "x-drop", "keep-alive", "upgrade", "te"] {
            prop_assert!(!h.contains_key(hop));
        }
        prop_assert_eq!(h.get_all("content-length").iter().count(), 1);
        prop_assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
    }
}
