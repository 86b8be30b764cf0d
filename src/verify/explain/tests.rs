use std::path::Path;
use std::sync::Arc;

use http::{HeaderMap, Method, Uri};
use ring::signature::{Ed25519KeyPair, KeyPair};

use super::*;
use crate::config::presets::Preset;
use crate::config::Config;
use crate::verify::check::tests::preset_route;
use crate::verify::Signable;

fn route(spec: &str) -> Arc<Route> {
    let text = format!("[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"r\"\npath = \"/cb\"\nupstream = \"http://127.0.0.1:9/x\"\n{spec}\n");
    let c = Config::from_str(&text, Path::new("t.toml")).unwrap();
    let r = c.routes.iter().next().unwrap().clone();
    r
}

fn seen<'a>(method: &'a Method, uri: &'a Uri, headers: &'a HeaderMap, body: &'a [u8]) -> Seen<'a> {
    Seen {
        client: Some("10.1.2.3".parse().unwrap()),
        method,
        uri,
        req: Signable {
            headers,
            body,
            url: None,
            now: 1_700_000_000,
        },
        lists: &crate::config::NoLists,
    }
}

fn judgement(e: &Explanation, c: Check) -> &Judgement {
    &e.checks.iter().find(|(x, _)| *x == c).unwrap().1
}

#[test]
fn every_check_says_why_and_names_keys_by_index_only() {
    let r = route("allow_ips = [\"10.0.0.0/8\"]\ntoken = { secrets = [\"old-0123456789abcdef\", \"new-0123456789abcdef\"] }\npreset = \"github\"\nhmac = { secrets = [\"k-old-0123456789abcdef\", \"k-new-0123456789abcdef\"] }");
    let body = b"{}";
    let key = crate::crypto::Key::new(crate::crypto::Algorithm::Sha256, b"k-new-0123456789abcdef");
    let mut headers = HeaderMap::new();
    let sig = format!("sha256={}", hex::encode(key.digest(body)));
    headers.insert("x-hub-signature-256", sig.parse().unwrap());
    let uri: Uri = "/cb?token=new-0123456789abcdef".parse().unwrap();
    let found = explain(&r, &seen(&Method::POST, &uri, &headers, body));
    let text = format!("{found:?}");
    assert!(text.contains("matches secret #1"), "{text}");
    assert!(text.contains("key #1 matches (sha256 hex)"), "{text}");
    assert!(
        !text.contains("k-new") && !text.contains("\"new\""),
        "a secret was printed: {text}"
    );
    assert_eq!(found.decision, Decision::Accept);
    let uri: Uri = "/cb?token=x".parse().unwrap();
    let mut stranger = seen(&Method::POST, &uri, &headers, b"{ }");
    stranger.client = Some("192.0.2.1".parse().unwrap());
    let found = explain(&r, &stranger);
    assert!(matches!(judgement(&found, Check::Ip), Judgement::Fail(_)));
    assert!(matches!(
        judgement(&found, Check::Token),
        Judgement::Fail(_)
    ));
    assert!(format!("{:?}", judgement(&found, Check::Hmac))
        .contains("no key gives this signature (2 key(s) tried, sha256 hex)"));
    assert_eq!(found.decision, Decision::Refuse);
}

/// Discord's scheme: Ed25519 over timestamp + body, hex.
fn discord(seed: u8, ts: &str, body: &[u8]) -> (Arc<Route>, HeaderMap) {
    let real = Ed25519KeyPair::from_seed_unchecked(&[7; 32]).unwrap();
    let r = route(&format!(
        "preset = \"discord\"\nsignature = {{ public_keys = [\"{}\"] }}",
        hex::encode(real.public_key().as_ref())
    ));
    let signer = Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap();
    let signed = [ts.as_bytes(), body].concat();
    let mut h = HeaderMap::new();
    h.insert(
        "x-signature-ed25519",
        hex::encode(signer.sign(&signed).as_ref()).parse().unwrap(),
    );
    h.insert("x-signature-timestamp", ts.parse().unwrap());
    (r, h)
}

#[test]
fn a_forged_ed25519_signature_is_refused_by_the_public_key_check() {
    let body = br#"{"type":1}"#;
    let uri: Uri = "/cb".parse().unwrap();
    let (r, forged) = discord(9, "1700000000", body);
    let found = explain(&r, &seen(&Method::POST, &uri, &forged, body));
    assert_eq!(found.decision, Decision::Refuse, "{found:?}");
    match judgement(&found, Check::PublicKey) {
        Judgement::Fail(why) => assert!(why.contains("does not match"), "{why}"),
        v => panic!("{v:?}"),
    }
    assert!(matches!(
        judgement(&found, Check::Timestamp),
        Judgement::Pass(_)
    ));
    // The gateway refuses it the same way, and counts it as `hmac`.
    let pre = crate::verify::precheck(
        &r,
        "10.1.2.3".parse().unwrap(),
        &uri,
        &crate::config::NoLists,
    )
    .unwrap();
    let refusal =
        crate::verify::finish(&r, pre, &seen(&Method::POST, &uri, &forged, body).req).unwrap_err();
    assert_eq!(refusal.check(), Check::PublicKey);
    assert_eq!(refusal.check().reason().as_str(), "hmac");
    // Signed by the real key: accepted; signed too long ago: the timestamp.
    let (r, good) = discord(7, "1700000000", body);
    let found = explain(&r, &seen(&Method::POST, &uri, &good, body));
    assert_eq!(found.decision, Decision::Accept, "{found:?}");
    let (r, old) = discord(7, "1699990000", body);
    let found = explain(&r, &seen(&Method::POST, &uri, &old, body));
    assert_eq!(found.decision, Decision::Refuse, "{found:?}");
    assert!(matches!(
        judgement(&found, Check::Timestamp),
        Judgement::Fail(_)
    ));
}

#[test]
fn metas_verification_get_is_answered_as_a_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let r = preset_route(Preset::builtin("meta").unwrap(), dir.path());
    let h = HeaderMap::new();
    let get = Method::GET;
    let q = "/cb?token=tok-0123456789abcdef&hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meta-verify-token-0123";
    let uri: Uri = q.parse().unwrap();
    let found = explain(&r, &seen(&get, &uri, &h, b""));
    assert_eq!(found.decision, Decision::Handshake, "{found:?}");
    assert!(matches!(
        judgement(&found, Check::Hmac),
        Judgement::Skipped(_)
    ));
    // A wrong verify token is refused; without the URL token, too.
    let wrong: Uri = q
        .replace("meta-verify-token-0123", "guess")
        .parse()
        .unwrap();
    let found = explain(&r, &seen(&get, &wrong, &h, b""));
    assert_eq!(found.decision, Decision::Refuse, "{found:?}");
    assert!(matches!(
        judgement(&found, Check::Handshake),
        Judgement::Fail(_)
    ));
    let no_token: Uri = q
        .replace("token=tok-0123456789abcdef&", "")
        .parse()
        .unwrap();
    let found = explain(&r, &seen(&get, &no_token, &h, b""));
    assert_eq!(found.decision, Decision::Refuse, "{found:?}");
    // The same query as a POST is a callback, and unsigned.
    let found = explain(&r, &seen(&Method::POST, &uri, &h, b""));
    assert_eq!(found.decision, Decision::Refuse, "{found:?}");
}

#[test]
fn a_handshake_is_not_answered_when_a_check_before_the_body_refuses_the_query() {
    // The upstream URL sets `site`: the caller may not, and the gateway
    // refuses the query before it would answer Meta's GET.
    let text = "[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"r\"\npath = \"/cb\"\nupstream = \"http://127.0.0.1:9/x?site=main\"\npreset = \"meta\"\nhmac = { secrets = [\"meta-app-secret-0123456789\"] }\nhandshake = { verify_token = \"meta-verify-token-0123\" }\n";
    let c = Config::from_str(text, Path::new("t.toml")).unwrap();
    let r = c.routes.iter().next().unwrap().clone();
    let h = HeaderMap::new();
    let q =
        "/cb?site=evil&hub.mode=subscribe&hub.challenge=1&hub.verify_token=meta-verify-token-0123";
    let uri: Uri = q.parse().unwrap();
    let found = explain(&r, &seen(&Method::GET, &uri, &h, b""));
    assert_eq!(found.decision, Decision::Refuse, "{found:?}");
    let ok: Uri = q.replace("site=evil&", "").parse().unwrap();
    let found = explain(&r, &seen(&Method::GET, &ok, &h, b""));
    assert_eq!(found.decision, Decision::Handshake, "{found:?}");
}

#[test]
fn asanas_hook_secret_is_answered_as_a_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let r = preset_route(Preset::builtin("asana").unwrap(), dir.path());
    let mut h = HeaderMap::new();
    h.insert(
        "x-hook-secret",
        "b537207f20cbfa02357cf448134da559e8bd39d61597dcd5631b8012eae53e81"
            .parse()
            .unwrap(),
    );
    let uri: Uri = "/cb?token=tok-0123456789abcdef".parse().unwrap();
    let found = explain(&r, &seen(&Method::POST, &uri, &h, b""));
    assert_eq!(found.decision, Decision::Handshake, "{found:?}");
    h.insert("x-hook-secret", "short".parse().unwrap());
    let found = explain(&r, &seen(&Method::POST, &uri, &h, b""));
    assert_eq!(found.decision, Decision::Refuse, "{found:?}");
}

#[test]
fn without_the_source_address_the_ip_check_is_undecided() {
    let r = route("allow_ips = [\"10.0.0.0/8\"]\ntoken = { secrets = [\"tok-0123456789abcdef\"] }");
    let h = HeaderMap::new();
    let uri: Uri = "/cb?token=tok-0123456789abcdef".parse().unwrap();
    let mut s = seen(&Method::POST, &uri, &h, b"");
    s.client = None;
    let found = explain(&r, &s);
    assert_eq!(found.decision, Decision::Undecided(vec![Check::Ip]));
    // A failing check decides all the same.
    let bad: Uri = "/cb?token=nope".parse().unwrap();
    let mut s = seen(&Method::POST, &bad, &h, b"");
    s.client = None;
    assert_eq!(explain(&r, &s).decision, Decision::Refuse);
}
