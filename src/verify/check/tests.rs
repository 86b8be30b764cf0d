//! Every built-in preset's route, every check: what the gateway enforces
//! is what `explain` and the console judge.

use std::path::Path;
use std::sync::Arc;

use http::{HeaderMap, Method, Uri};

use super::{Check, Judgement, Passed, Seen, Step};
use crate::config::presets::{KeyForm, Preset};
use crate::config::{Config, Route};
use crate::verify::{Checked, Signable};

/// A route of preset `p` as a user would write it: its keys, a URL token
/// (every handshake that computes with the key needs one), Meta's verify
/// token, Asana's secret file (in `dir`), the public URL Twilio signs.
pub(crate) fn preset_route(p: Preset, dir: &Path) -> Arc<Route> {
    let d = p.defaults();
    let mut spec = format!(
        "preset = \"{}\"\ntoken = {{ secrets = [\"tok-0123456789abcdef\"] }}\n",
        p.name()
    );
    if let Some(h) = d.hmac {
        let secret = match h.scheme.key {
            KeyForm::Whsec => "whsec_c2VjcmV0LWtleS1ieXRlcy0wMTIzNDU2Nzg5",
            KeyForm::Raw => "hmac-key-0123456789abcdef",
        };
        let url = match p.signs_url() {
            true => ", public_url = \"https://gw.example/cb\"",
            false => "",
        };
        if d.handshake.is_some_and(|k| k.hands_over_secret()) {
            // Asana's key comes from its handshake, kept in this file.
        } else {
            spec += &format!("hmac = {{ secrets = [\"{secret}\"]{url} }}\n");
        }
    }
    if let Some(s) = d.signature {
        let key = match s.algorithm {
            crate::config::presets::PkAlgorithm::Ed25519 => "11".repeat(32),
            _ => format!("04{}", "22".repeat(64)),
        };
        spec += &format!("signature = {{ public_keys = [\"{key}\"] }}\n");
    }
    match d.handshake {
        Some(k) if k.hands_over_secret() => {
            let file = dir.join(format!("{}.secrets", p.name()));
            spec += &format!("handshake = {{ secret_file = \"{}\" }}\n", file.display());
        }
        Some(crate::config::presets::Handshake::MetaVerifyToken) => {
            spec += "handshake = { verify_token = \"meta-verify-token-0123\" }\n";
        }
        _ => {}
    }
    let text = format!("[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"r\"\npath = \"/cb\"\nupstream = \"http://127.0.0.1:9/x\"\n{spec}");
    let c = Config::from_str(&text, Path::new("t.toml"))
        .unwrap_or_else(|e| panic!("preset {}: {e}\n{text}", p.name()));
    let r = c.routes.iter().next().unwrap().clone();
    r
}

/// A stranger's request: no token, no signature, an address in no list.
fn stranger<'a>(headers: &'a HeaderMap, uri: &'a Uri, method: &'a Method) -> Seen<'a> {
    Seen {
        client: Some("192.0.2.1".parse().unwrap()),
        method,
        uri,
        req: Signable {
            headers,
            body: b"{\"event\":\"x\"}",
            url: Some("https://gw.example/cb"),
            now: 1_700_000_000,
        },
        lists: &crate::config::NoLists,
    }
}

/// Whether the gateway's verify steps run `c` on this route.
fn enforced(c: Check, route: &Route, seen: &Seen<'_>) -> bool {
    let head = super::Head {
        client: seen.client.unwrap(),
        uri: seen.uri,
        lists: seen.lists,
    };
    let mut checked = Checked {
        passed: Passed::default(),
        token_secret: None,
    };
    c.head(route, &head, &mut checked) != Step::Off || c.body(route, &seen.req) != Step::Off
}

#[test]
fn every_check_a_preset_route_runs_is_explained_and_none_that_it_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let headers = HeaderMap::new();
    let uri: Uri = "/cb?x=1".parse().unwrap();
    for p in Preset::all() {
        let route = preset_route(p, dir.path());
        for method in [Method::POST, Method::GET] {
            let seen = stranger(&headers, &uri, &method);
            for c in Check::ALL {
                let judgement = c.explain(&route, &seen);
                let configured = c.configured(&route);
                assert_eq!(
                    judgement != Judgement::Off,
                    configured,
                    "preset {}: check {c} configured {configured}, explained as {judgement:?}",
                    p.name()
                );
                if enforced(c, &route, &seen) {
                    assert!(
                        configured && judgement != Judgement::Off,
                        "preset {}: check {c} is enforced but not explained",
                        p.name()
                    );
                }
                if configured {
                    assert!(c.describe(&route).is_some(), "check lists no {c}");
                }
            }
            let explained = crate::verify::explain::explain(&route, &seen);
            let order: Vec<Check> = explained.checks.iter().map(|(c, _)| *c).collect();
            assert_eq!(order, Check::ALL, "explain judges every check, in order");
        }
    }
}

#[test]
fn a_stranger_fails_every_check_that_vouches_for_a_sender() {
    let dir = tempfile::tempdir().unwrap();
    let headers = HeaderMap::new();
    let uri: Uri = "/cb".parse().unwrap();
    for p in Preset::all() {
        let route = preset_route(p, dir.path());
        let seen = stranger(&headers, &uri, &Method::POST);
        for c in Check::ALL.into_iter().filter(|c| c.verified_as().is_some()) {
            if c.configured(&route) {
                assert!(
                    enforced(c, &route, &seen),
                    "preset {}: {c} is configured but never run",
                    p.name()
                );
            }
        }
        let (pre, failed) = crate::verify::precheck_all(
            &route,
            seen.client.unwrap(),
            &uri,
            &crate::config::NoLists,
        );
        let (done, more) = crate::verify::finish_all(&route, pre, &seen.req);
        assert!(
            !failed.is_empty() || !more.is_empty(),
            "preset {}",
            p.name()
        );
        assert!(done.passed.names_nothing(), "preset {}", p.name());
        for r in failed.iter().chain(&more) {
            assert!(
                r.check().configured(&route),
                "{r} from an unconfigured check"
            );
        }
    }
}
