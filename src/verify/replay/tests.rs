use std::path::Path;
use std::sync::Arc;

use http::HeaderMap;

use super::*;
use crate::config::Config;

fn route(spec: &str) -> Arc<Route> {
    let text = format!(
        "[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"r\"\npath = \"/cb\"\nhost = [\"hooks.example.com\"]\nupstream = \"http://127.0.0.1:9/x\"\n{spec}\n"
    );
    let config = Config::from_str(&text, Path::new("t.toml")).unwrap();
    let route = config.routes.iter().next().unwrap().clone();
    route
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    h
}

fn keys_of(r: &Route, h: &HeaderMap, body: &[u8], url: Option<&str>) -> Vec<ReplayKey> {
    keys(
        r,
        &Signable {
            headers: h,
            body,
            url,
            now: 0,
            learned: &[],
        },
    )
}

fn shares_a_key(a: &[ReplayKey], b: &[ReplayKey]) -> bool {
    a.iter().any(|x| b.iter().any(|y| x.key == y.key))
}

#[test]
fn an_unsigned_delivery_id_is_a_second_key_never_the_only_one() {
    let r = route("preset = \"github\"\nhmac = { secrets = [\"s-0123456789abcdef\"] }");
    let body = br#"{"action":"opened"}"#;
    let first = keys_of(&r, &headers(&[("x-github-delivery", "d-1")]), body, None);
    assert_eq!(first.len(), 2);
    // A new id, no id, the id twice: the body still matches.
    for h in [
        headers(&[("x-github-delivery", "d-2")]),
        headers(&[]),
        headers(&[("x-github-delivery", "d-1"), ("x-github-delivery", "d-1")]),
    ] {
        assert!(shares_a_key(&first, &keys_of(&r, &h, body, None)), "{h:?}");
    }
    // The provider's redelivery of the same id matches too; another body does not.
    let same_id = keys_of(&r, &headers(&[("x-github-delivery", "d-1")]), b"{}", None);
    assert!(shares_a_key(&first, &same_id));
    let other = keys_of(&r, &headers(&[("x-github-delivery", "d-3")]), b"{}", None);
    assert!(!shares_a_key(&first, &other));
    assert!(first.iter().all(|k| !k.strict));
}

#[test]
fn a_signed_id_is_the_key_and_a_strict_one() {
    let r = route("preset = \"standard-webhooks\"\nhmac = { secrets = [\"whsec_c2VjcmV0LTAxMjM0NTY3ODlhYmNkZWY=\"] }");
    let a = keys_of(&r, &headers(&[("webhook-id", "msg_1")]), b"one", None);
    let b = keys_of(&r, &headers(&[("webhook-id", "msg_1")]), b"two", None);
    assert_eq!((a.len(), a[0].strict), (1, true));
    assert_eq!(a[0].key, b[0].key);
    assert_ne!(a[0].payload, b[0].payload);
    // The same body under another id is another message.
    let c = keys_of(&r, &headers(&[("webhook-id", "msg_2")]), b"one", None);
    assert!(!shares_a_key(&a, &c));
}

#[test]
fn stripe_keys_on_the_event_id_in_its_signed_body() {
    let r = route("preset = \"stripe\"\nhmac = { secrets = [\"whsec_x-0123456789abcdef\"] }");
    let a = keys_of(
        &r,
        &headers(&[]),
        br#"{"id":"evt_1","pending_webhooks":2}"#,
        None,
    );
    let b = keys_of(
        &r,
        &headers(&[]),
        br#"{"id":"evt_1","pending_webhooks":1}"#,
        None,
    );
    assert!(shares_a_key(&a, &b));
    assert!(!a[0].strict);
    let no_id = keys_of(&r, &headers(&[]), br#"{"object":"event"}"#, None);
    assert_eq!(no_id.len(), 1);
}

#[test]
fn twilio_keys_on_the_signed_url_and_parameters_not_the_raw_body() {
    let r = route("preset = \"twilio\"\nhmac = { secrets = [\"t-0123456789abcdef\"] }");
    let url = "https://hooks.example.com/cb";
    let a = keys_of(&r, &headers(&[]), b"To=1&From=2", Some(url));
    // Same parameters in another order: Twilio signs them sorted.
    let b = keys_of(
        &r,
        &headers(&[("i-twilio-idempotency-token", "x")]),
        b"From=2&To=1",
        Some(url),
    );
    assert!(shares_a_key(&a, &b));
    let other_url = keys_of(
        &r,
        &headers(&[]),
        b"To=1&From=2",
        Some("https://hooks.example.com/cb?x=1"),
    );
    assert!(!shares_a_key(&a, &other_url));
}

#[test]
fn routes_without_a_signature_key_on_the_body() {
    let r = route("preset = \"gengo\"\ntoken = { secrets = [\"g-0123456789abcdef\"] }");
    let a = keys_of(&r, &headers(&[]), b"job=1", None);
    assert_eq!(a.len(), 1);
    assert!(describe(&r).contains("body"));
}

#[test]
fn stored_keys_come_back_as_they_went_in() {
    let r = route("preset = \"github\"\nhmac = { secrets = [\"s-0123456789abcdef\"] }");
    let k = keys_of(&r, &headers(&[("x-github-delivery", "d")]), b"b", None);
    assert_eq!(decode(&encode(&k)), Some(k));
    assert_eq!(decode(b"short"), None);
    assert_eq!(decode(&[7u8; ENCODED_LEN]), None);
}
