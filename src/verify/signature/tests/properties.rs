//! Properties every HMAC preset holds (proptest).

use super::super::*;
use crate::config::presets::Preset;
use http::HeaderValue;
use proptest::prelude::*;

/// Every built-in preset that signs with an HMAC.
fn signing() -> Vec<Preset> {
    Preset::all()
        .filter(|p| p.defaults().hmac.is_some())
        .collect()
}

fn check(p: Preset) -> HmacCheck {
    let whsec = p
        .defaults()
        .hmac
        .is_some_and(|h| h.scheme.key == crate::config::presets::KeyForm::Whsec);
    let secret: &[u8] = if whsec {
        b"whsec_c2VjcmV0LWtleS1ieXRlcw=="
    } else {
        b"secret"
    };
    HmacCheck::for_preset(p, secret).unwrap()
}

proptest! {
    #[test]
    fn what_a_provider_signs_verifies_and_any_change_does_not(
        which in 0..64usize,
        body in prop::collection::vec(any::<u8>(), 0..300),
        ts in 1_000_000_000i64..2_000_000_000,
        id in "[A-Za-z0-9_-]{1,30}",
        flip in any::<prop::sample::Index>(),
    ) {
        let all = signing();
        let preset = all[which % all.len()];
        let h = check(preset);
        let url = "https://example.com/hook?x=1";
        let lines = provider_headers(&h, ts, &id, Some(url), &body).unwrap();
        let mut headers = HeaderMap::new();
        for (k, v) in &lines {
            headers.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        let req = Signable { headers: &headers, body: &body, url: Some(url), now: ts, learned: &[] };
        prop_assert!(verify_scheme(&h, &req).is_ok());
        if !body.is_empty() && !preset.signs_url() {
            let mut changed = body.clone();
            changed[flip.index(body.len())] ^= 0x20;
            let req = Signable { body: &changed, ..req };
            prop_assert!(verify_scheme(&h, &req).is_err());
        }
    }

    #[test]
    fn any_header_value_gets_a_verdict_and_never_passes(
        which in 0..64usize,
        value in "[ -~]{0,200}",
        ts in "[0-9]{0,12}",
    ) {
        let all = signing();
        let preset = all[which % all.len()];
        let h = check(preset);
        let mut headers = HeaderMap::new();
        headers.insert(h.header.clone(), HeaderValue::from_str(&value).unwrap());
        for name in ["x-slack-request-timestamp", "webhook-timestamp"] {
            headers.insert(name, HeaderValue::from_str(&ts).unwrap());
        }
        headers.insert("webhook-id", HeaderValue::from_static("msg_1"));
        let req = Signable { headers: &headers, body: b"fixed body", url: Some("https://x/"), now: 1_700_000_000, learned: &[] };
        prop_assert!(verify_scheme(&h, &req).is_err());
    }
}
