//! `callgate explain`: each check of a route, run on a captured request,
//! with why it passes or fails: which key (by index) and encoding matched
//! or were tried, the signed timestamp's skew. Never a secret. Pure: the
//! same checks the gateway runs, one at a time.

use std::net::IpAddr;

use http::Uri;

use super::signature::{self, Signable, SignatureError};
use super::{check_body_params, check_payload, check_query_params, check_token};
use crate::config::{NamedLists, NotAdmitted, Route};
use crate::crypto::Encoding;

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Pass(String),
    Fail(String),
    /// Configured, but the capture cannot tell (no source address given).
    Unknown(String),
    NotConfigured,
}

/// The checks in the gateway's order, each with its verdict.
/// `lists`: what the named address lists hold (the gateway's copies, or
/// those stored in the state directory).
pub(crate) fn explain(
    route: &Route,
    from: Option<IpAddr>,
    lists: &dyn NamedLists,
    uri: &Uri,
    req: &Signable<'_>,
) -> Vec<(&'static str, Verdict)> {
    let query = uri.query().unwrap_or("");
    let ip = match (&route.allow_ips, from) {
        (None, _) => Verdict::NotConfigured,
        (Some(_), None) => Verdict::Unknown("give --from ADDRESS to check allow_ips".into()),
        (Some(a), Some(ip)) => match a.admits(ip, lists) {
            Ok(()) => Verdict::Pass(format!("{ip} is in allow_ips")),
            Err(NotAdmitted::Outside) => Verdict::Fail(format!("{ip} is not in allow_ips")),
            Err(NotAdmitted::NoCopy(name)) => Verdict::Fail(format!(
                "{ip} is not in allow_ips' addresses, and list:{name} has no copy yet"
            )),
        },
    };
    let token = match &route.token {
        None => Verdict::NotConfigured,
        Some(t) => match check_token(t, query) {
            Ok(i) => Verdict::Pass(format!("parameter {:?} matches secret #{i}", t.param)),
            Err(refusal) => Verdict::Fail(refusal.to_string()),
        },
    };
    let params = match check_query_params(route, query)
        .and_then(|()| check_body_params(route, req.headers, req.body))
    {
        Ok(()) => Verdict::Pass("no parameter a receiver would read differently".into()),
        Err(refusal) => Verdict::Fail(refusal.to_string()),
    };
    let payload = match route.payload {
        None => Verdict::NotConfigured,
        Some(p) => match check_payload(p, req.headers, req.body) {
            Ok(()) => Verdict::Pass("the body has the preset's shape".into()),
            Err(why) => Verdict::Fail(why.into()),
        },
    };
    vec![
        ("ip", ip),
        ("token", token),
        ("params", params),
        ("hmac", hmac(route, req)),
        ("payload", payload),
    ]
}

/// The signature, key by key: which matched, or why none did.
fn hmac(route: &Route, req: &Signable<'_>) -> Verdict {
    let Some(h) = &route.hmac else {
        return Verdict::NotConfigured;
    };
    let encodings = match h.encoding {
        Encoding::Auto => "hex or base64",
        e => e.name(),
    };
    // Configured keys first, then those handed over in a handshake (Asana).
    let learned = h.learned_keys();
    let keys: Vec<_> = h.all_keys(&learned).collect();
    let tried = format!(
        "{} key(s) tried, {} {encodings}",
        keys.len(),
        h.algorithm.name()
    );
    let mut last = None;
    for (i, key) in keys.into_iter().enumerate() {
        let one = crate::config::HmacCheck {
            keys: vec![key.clone()],
            learned: None,
            ..h.clone()
        };
        match signature::verify_scheme(&one, req) {
            Ok(found) => {
                let skew = found
                    .skew
                    .map(|s| format!(", timestamp skew {s} s"))
                    .unwrap_or_default();
                return Verdict::Pass(format!(
                    "key #{i} matches ({} {encodings}){skew}",
                    h.algorithm.name()
                ));
            }
            // Not about the key: the same for every one of them.
            Err(
                e @ (SignatureError::Missing
                | SignatureError::Duplicated
                | SignatureError::Timestamp
                | SignatureError::Stale(_)
                | SignatureError::Future(_)
                | SignatureError::MissingPart(_)
                | SignatureError::BodyHash
                | SignatureError::Malformed(_)
                | SignatureError::WrongAlgorithm(..)),
            ) => return Verdict::Fail(format!("{e} (header {}; {tried})", h.header)),
            Err(e) => last = Some(e),
        }
    }
    let why = last.map_or_else(|| "no key".to_owned(), |e| e.to_string());
    Verdict::Fail(format!("{why}: no key gives this signature ({tried})"))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use http::HeaderMap;

    use super::*;
    use crate::config::Config;

    fn route(spec: &str) -> std::sync::Arc<Route> {
        let text = format!("[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"r\"\npath = \"/cb\"\nupstream = \"http://127.0.0.1:9/x\"\n{spec}\n");
        let c = Config::from_str(&text, Path::new("t.toml")).unwrap();
        let r = c.routes.iter().next().unwrap().clone();
        r
    }

    #[test]
    fn every_check_says_why_and_names_keys_by_index_only() {
        let r = route("allow_ips = [\"10.0.0.0/8\"]\ntoken = { secrets = [\"old-0123456789abcdef\", \"new-0123456789abcdef\"] }\npreset = \"github\"\nhmac = { secrets = [\"k-old-0123456789abcdef\", \"k-new-0123456789abcdef\"] }");
        let body = b"{}";
        let key =
            crate::crypto::Key::new(crate::crypto::Algorithm::Sha256, b"k-new-0123456789abcdef");
        let mut headers = HeaderMap::new();
        let sig = format!("sha256={}", hex::encode(key.digest(body)));
        headers.insert("x-hub-signature-256", sig.parse().unwrap());
        let req = Signable {
            headers: &headers,
            body,
            url: None,
            now: 0,
        };
        let uri: Uri = "/cb?token=new-0123456789abcdef".parse().unwrap();
        let found = explain(
            &r,
            Some("10.1.2.3".parse().unwrap()),
            &crate::config::NoLists,
            &uri,
            &req,
        );
        let text = format!("{found:?}");
        assert!(text.contains("matches secret #1"), "{text}");
        assert!(text.contains("key #1 matches (sha256 hex)"), "{text}");
        assert!(
            !text.contains("k-new") && !text.contains("\"new\""),
            "a secret was printed: {text}"
        );
        let found = explain(
            &r,
            Some("192.0.2.1".parse().unwrap()),
            &crate::config::NoLists,
            &"/cb?token=x".parse().unwrap(),
            &Signable {
                body: b"{ }",
                ..req
            },
        );
        assert!(matches!(found[0].1, Verdict::Fail(_)));
        assert!(matches!(found[1].1, Verdict::Fail(_)));
        assert!(format!("{:?}", found[3].1)
            .contains("no key gives this signature (2 key(s) tried, sha256 hex)"));
    }
}
