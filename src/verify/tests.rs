use super::*;
use crate::config::Config;
use crate::crypto::{encode, Algorithm, Encoding, Key};
use crate::verify::signature::SignatureError;
use std::path::Path;
use std::sync::Arc;

fn route(spec: &str) -> Arc<Route> {
    let text = format!(
        "[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"r\"\npath = \"/cb\"\nupstream = \"http://127.0.0.1:9/x\"\n{spec}\n"
    );
    let cfg = Config::from_str(&text, Path::new("test.toml")).unwrap();
    let r = cfg.routes.get("/cb", None).unwrap().clone();
    r
}

/// The precheck with no named list held (these routes write addresses only).
fn precheck(r: &Route, client: IpAddr, u: &Uri) -> Result<Prechecked, Refusal> {
    super::precheck(r, client, u, &crate::config::NoLists)
}

fn uri(s: &str) -> Uri {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn signed(alg: Algorithm, key: &str, enc: Encoding, header: &str, body: &[u8]) -> HeaderMap {
    let mut h = HeaderMap::new();
    let sig = encode(&Key::new(alg, key.as_bytes()).digest(body), enc);
    h.insert(
        http::HeaderName::from_bytes(header.as_bytes()).unwrap(),
        sig.parse().unwrap(),
    );
    h
}

const FULL: &str = r#"
allow_ips = ["127.0.0.1", "::1/128"]
token = { secrets = ["t0k-0123456789abcdef"] }
hmac = { algorithm = "sha1", header = "X-Sig", secrets = ["key-0123456789abcdef"] }
"#;

#[test]
fn all_checks_pass_and_are_reported_in_order() {
    let r = route(FULL);
    let body = b"{\"id\":1}";
    let h = signed(
        Algorithm::Sha1,
        "key-0123456789abcdef",
        Encoding::Hex,
        "x-sig",
        body,
    );
    let p = check(
        &r,
        ip("127.0.0.1"),
        &uri("/cb?token=t0k-0123456789abcdef"),
        &h,
        body,
    )
    .unwrap();
    assert_eq!(p.passed.header_value(), "ip,token,hmac");
}

#[test]
fn wrong_source_address_is_refused_first() {
    let r = route(FULL);
    let got = check(
        &r,
        ip("127.0.0.2"),
        &uri("/cb?token=bad"),
        &HeaderMap::new(),
        b"",
    );
    assert_eq!(got, Err(Refusal::Ip(ip("127.0.0.2"))));
}

#[test]
fn ipv4_mapped_client_matches_ipv4_allowlist() {
    let r = route(FULL);
    assert!(precheck(
        &r,
        ip("::ffff:127.0.0.1"),
        &uri("/cb?token=t0k-0123456789abcdef")
    )
    .is_ok());
}

#[test]
fn ipv6_allowlist_entries_work() {
    let r = route(FULL);
    assert!(precheck(&r, ip("::1"), &uri("/cb?token=t0k-0123456789abcdef")).is_ok());
    assert!(precheck(&r, ip("::2"), &uri("/cb?token=t0k-0123456789abcdef")).is_err());
}

#[test]
fn token_failures_are_told_apart() {
    let r = route(FULL);
    let p = |q: &str| precheck(&r, ip("127.0.0.1"), &uri(q));
    assert_eq!(p("/cb"), Err(Refusal::Token(TokenFailure::Missing)));
    assert_eq!(p("/cb?token="), Err(Refusal::Token(TokenFailure::Mismatch)));
    assert_eq!(
        p("/cb?token=t0K"),
        Err(Refusal::Token(TokenFailure::Mismatch))
    );
    assert_eq!(
        p("/cb?token=t0k-0123456789abcdef&token=t0k-0123456789abcdef"),
        Err(Refusal::Token(TokenFailure::Repeated))
    );
    assert_eq!(
        p("/cb?TOKEN=t0k-0123456789abcdef"),
        Err(Refusal::Token(TokenFailure::Missing))
    );
    assert!(p("/cb?x=1&token=t%30k-0123456789abcdef").is_ok());
}

#[test]
fn second_token_passes_for_rotation() {
    let r = route("token = { param = \"key\", secrets = [\"old-0123456789abcdef\", \"new-0123456789abcdef\"] }");
    assert!(precheck(&r, ip("10.1.1.1"), &uri("/cb?key=new-0123456789abcdef")).is_ok());
    assert!(precheck(&r, ip("10.1.1.1"), &uri("/cb?key=old-0123456789abcdef")).is_ok());
    assert!(precheck(&r, ip("10.1.1.1"), &uri("/cb?key=older")).is_err());
}

#[test]
fn signature_missing_duplicated_or_wrong_is_refused() {
    let r = route(FULL);
    let u = uri("/cb?token=t0k-0123456789abcdef");
    let body = b"payload";
    let c = |h: &HeaderMap, b: &[u8]| check(&r, ip("127.0.0.1"), &u, h, b);
    assert_eq!(
        c(&HeaderMap::new(), body),
        Err(Refusal::Hmac(SignatureError::Missing))
    );
    let mut dup = signed(
        Algorithm::Sha1,
        "key-0123456789abcdef",
        Encoding::Hex,
        "x-sig",
        body,
    );
    let v = dup["x-sig"].clone();
    dup.append("x-sig", v);
    assert_eq!(
        c(&dup, body),
        Err(Refusal::Hmac(SignatureError::Duplicated))
    );
    let other_key = signed(Algorithm::Sha1, "nope", Encoding::Hex, "x-sig", body);
    assert_eq!(
        c(&other_key, body),
        Err(Refusal::Hmac(SignatureError::Mismatch))
    );
    let good = signed(
        Algorithm::Sha1,
        "key-0123456789abcdef",
        Encoding::Hex,
        "x-sig",
        body,
    );
    assert_eq!(
        c(&good, b"payloaD"),
        Err(Refusal::Hmac(SignatureError::Mismatch))
    );
}

#[test]
fn hmac_only_route_reports_only_hmac() {
    let r = route("hmac = { algorithm = \"sha256\", header = \"X-Sig\", encoding = \"base64\", secrets = [\"k-0123456789abcdef\"] }");
    let h = signed(
        Algorithm::Sha256,
        "k-0123456789abcdef",
        Encoding::Base64,
        "x-sig",
        b"b",
    );
    let p = check(&r, ip("203.0.113.1"), &uri("/cb"), &h, b"b").unwrap();
    assert_eq!(p.passed.header_value(), "hmac");
}

#[test]
fn tolq_preset_fills_ip_and_hmac_defaults() {
    let r = route("preset = \"tolq\"\nhmac = { secrets = [\"apikey-0123456789abcdef\"] }");
    let body = br#"{"id":42,"status":"finished"}"#;
    let h = signed(
        Algorithm::Sha1,
        "apikey-0123456789abcdef",
        Encoding::Hex,
        "x-tolq-signature",
        body,
    );
    assert_eq!(
        check(&r, ip("84.22.114.141"), &uri("/cb"), &h, body)
            .unwrap()
            .passed
            .header_value(),
        "ip,hmac"
    );
    assert_eq!(
        check(&r, ip("127.0.0.1"), &uri("/cb"), &h, body),
        Err(Refusal::Ip(ip("127.0.0.1")))
    );
}

fn form(ct: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("content-type", ct.parse().unwrap());
    h
}

#[test]
fn gengo_preset_accepts_job_and_comment_forms() {
    let r = route("preset = \"gengo\"\ntoken = { secrets = [\"g-0123456789abcdef\"] }");
    let u = uri("/cb?token=g-0123456789abcdef");
    let h = form("application/x-www-form-urlencoded; charset=UTF-8");
    let job = b"job=%7B%22job_id%22%3A%22123%22%2C%22status%22%3A%22approved%22%7D";
    assert_eq!(
        check(&r, ip("1.2.3.4"), &u, &h, job)
            .unwrap()
            .passed
            .header_value(),
        "token"
    );
    let comment = b"comment=%7B%22job_id%22%3A1%2C%22body%22%3A%22hi%22%7D&x=1";
    assert!(check(&r, ip("1.2.3.4"), &u, &h, comment).is_ok());
}

#[test]
fn gengo_preset_refuses_bodies_of_the_wrong_shape() {
    let r = route("preset = \"gengo\"\ntoken = { secrets = [\"g-0123456789abcdef\"] }");
    let u = uri("/cb?token=g-0123456789abcdef");
    let formh = form("application/x-www-form-urlencoded");
    let c = |h: &HeaderMap, b: &[u8]| check(&r, ip("1.2.3.4"), &u, h, b);
    assert!(matches!(
        c(&form("application/json"), br#"{"job":{}}"#),
        Err(Refusal::Payload(_))
    ));
    assert!(matches!(
        c(&HeaderMap::new(), b"job=%7B%7D"),
        Err(Refusal::Payload(_))
    ));
    assert!(matches!(c(&formh, b"other=1"), Err(Refusal::Payload(_))));
    assert!(matches!(
        c(&formh, b"job=not-json"),
        Err(Refusal::Payload(_))
    ));
    assert!(matches!(
        c(&formh, b"job=%5B1%5D"),
        Err(Refusal::Payload(_))
    ));
    assert!(matches!(
        c(&formh, b"job=%7B%7D&job=%7B%7D"),
        Err(Refusal::Payload(_))
    ));
    // The token is checked before the body is looked at.
    let bad = uri("/cb?token=x");
    assert_eq!(
        check(&r, ip("1.2.3.4"), &bad, &formh, b"job=%7B%7D"),
        Err(Refusal::Token(TokenFailure::Mismatch))
    );
}

#[test]
fn header_values_cover_every_combination() {
    let all = [
        (false, false, false, "none"),
        (true, false, false, "ip"),
        (false, true, false, "token"),
        (false, false, true, "hmac"),
        (true, true, false, "ip,token"),
        (true, false, true, "ip,hmac"),
        (false, true, true, "token,hmac"),
        (true, true, true, "ip,token,hmac"),
    ];
    for (ip, token, hmac, want) in all {
        let mut p = Passed::default();
        for (on, c) in [(ip, Check::Ip), (token, Check::Token), (hmac, Check::Hmac)] {
            if on {
                p.insert(c);
            }
        }
        assert_eq!(p.header_value(), want);
        // A public-key signature is `hmac` too; checks that vouch for
        // nobody add nothing.
        if hmac {
            p.insert(Check::PublicKey);
        }
        p.insert(Check::Params);
        p.insert(Check::Payload);
        assert_eq!(p.header_value(), want);
        assert_eq!(p.names_nothing(), want == "none");
    }
}

#[test]
fn the_precheck_names_the_matching_token_secret_once_for_the_whole_request() {
    let r = route("token = { secrets = [\"old-0123456789abcdef\", \"new-0123456789abcdef\", \"newer-0123456789abcdef\"] }");
    for (i, t) in [
        "old-0123456789abcdef",
        "new-0123456789abcdef",
        "newer-0123456789abcdef",
    ]
    .iter()
    .enumerate()
    {
        let u = uri(&format!("/cb?token={t}"));
        let pre = precheck(&r, ip("10.1.1.1"), &u).unwrap();
        // finish() takes the precheck's finding as it is: no second look at the token.
        let empty = HeaderMap::new();
        let req = Signable {
            headers: &empty,
            body: b"",
            url: None,
            now: 0,
            learned: &[],
        };
        let done = finish(&r, pre, &req).unwrap();
        assert_eq!(done.token_secret, Some(i));
        assert_eq!(done.passed.header_value(), "token");
    }
    let no_token = route("allow_ips = [\"10.0.0.0/8\"]");
    let pre = precheck(&no_token, ip("10.1.1.1"), &uri("/cb")).unwrap();
    assert_eq!(
        finish(
            &no_token,
            pre,
            &Signable {
                headers: &HeaderMap::new(),
                body: b"",
                url: None,
                now: 0,
                learned: &[],
            }
        )
        .unwrap()
        .token_secret,
        None
    );
}
