//! One route's resolution: presets' defaults, the rules between keys.

use std::path::Path;

use std::time::Duration;

use super::Route;
use crate::config::Config;
use std::sync::Arc;

fn route(spec: &str) -> Arc<Route> {
    let text = format!("[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"r\"\npath = \"/cb\"\nupstream = \"http://127.0.0.1:9/x\"\n{spec}\n");
    let config = Config::from_str(&text, Path::new("t.toml")).unwrap();
    let route = config.routes.iter().next().unwrap().clone();
    route
}

#[test]
fn gengo_retries_for_12_hours_with_bodies_of_at_most_64_kib() {
    let r = route("preset = \"gengo\"\ntoken = { secrets = [\"g-0123456789abcdef\"] }");
    assert_eq!(r.dedupe_window, Some(Duration::from_secs(12 * 3600)));
    assert_eq!(r.max_body_bytes, 64 * 1024);
    let own = route("preset = \"gengo\"\ntoken = { secrets = [\"g-0123456789abcdef\"] }\ndedupe_window = \"1h\"\nmax_body_bytes = 1000");
    assert_eq!(
        (own.dedupe_window, own.max_body_bytes),
        (Some(Duration::from_secs(3600)), 1000)
    );
}

#[test]
fn presets_with_a_replay_story_dedupe_by_default_and_0_turns_it_off() {
    let hours = |spec: &str| route(spec).dedupe_window.map(|w| w.as_secs() / 3600);
    assert_eq!(
        hours("preset = \"github\"\nhmac = { secrets = [\"s-0123456789abcdef\"] }"),
        Some(72)
    );
    assert_eq!(
        hours("preset = \"shopify\"\nhmac = { secrets = [\"s-0123456789abcdef\"] }"),
        Some(48)
    );
    assert_eq!(
        hours("preset = \"tolq\"\nhmac = { secrets = [\"s-0123456789abcdef\"] }"),
        None,
        "Tolq's replay story is its source address"
    );
    assert_eq!(
        hours("preset = \"github\"\nhmac = { secrets = [\"s-0123456789abcdef\"] }\ndedupe_window = \"0\""),
        None
    );
    assert_eq!(
        hours("hmac = { secrets = [\"s-0123456789abcdef\"], algorithm = \"sha256\", header = \"x-sig\" }"),
        None
    );
    let text = "[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"r\"\npath = \"/cb\"\nupstream = \"http://127.0.0.1:9/x\"\nhmac = { secrets = [\"s-0123456789abcdef\"], algorithm = \"sha256\", header = \"x-sig\" }\ndedupe_window = \"1000d\"\n";
    let err = Config::from_str(text, Path::new("t.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("longer than 90 days"), "{err}");
}

#[test]
fn asanas_handshake_needs_a_secret_file_and_the_url_token_to_guard_it() {
    let err = |spec: &str| {
        let text = format!("[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"r\"\npath = \"/cb\"\nupstream = \"http://127.0.0.1:9/x\"\n{spec}\n");
        Config::from_str(&text, Path::new("t.toml"))
            .unwrap_err()
            .to_string()
    };
    let token = "token = { secrets = [\"u-0123456789abcdef\"] }";
    let e = err(&format!("preset = \"asana\"\n{token}"));
    assert!(e.contains("add handshake = { secret_file ="), "{e}");
    let e = err("preset = \"asana\"\nhandshake = { secret_file = \"/var/lib/callgate/a.secrets\" }\nallow_ips = [\"10.0.0.1\"]");
    assert!(e.contains("URL token must guard it"), "{e}");
    let e = err(&format!(
        "preset = \"asana\"\n{token}\nhandshake = {{ secret_file = \"a.secrets\" }}"
    ));
    assert!(e.contains("must be an absolute path"), "{e}");
    let e = err(&format!("preset = \"dropbox\"\n{token}\nhmac = {{ secrets = [\"d-0123456789abcdef\"] }}\nhandshake = {{ secret_file = \"/x/a\" }}"));
    assert!(
        e.contains("secret_file is for a provider that hands"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("asana.secrets");
    let r = route(&format!(
        "preset = \"asana\"\n{token}\nhandshake = {{ secret_file = {:?} }}",
        file.display().to_string()
    ));
    let h = r.hmac.as_ref().expect("the preset's check");
    assert!(h.keys.is_empty());
    assert_eq!(h.learned_keys().map(|k| k.len()), Some(0));
    assert_eq!(h.header.as_str(), "x-hook-signature");
}

#[test]
fn a_twilio_route_needs_its_host_or_public_url() {
    let text = "[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"r\"\npath = \"/cb\"\nupstream = \"http://127.0.0.1:9/x\"\npreset = \"twilio\"\nhmac = { secrets = [\"twilio-auth-token-1\"] }\n";
    let err = Config::from_str(text, Path::new("t.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("add host = [") && err.contains("hmac.public_url"),
        "{err}"
    );
    route("preset = \"twilio\"\nhost = [\"www.example.com\"]\nhmac = { secrets = [\"t-0123456789abcdef\"] }");
    route("preset = \"twilio\"\nhmac = { secrets = [\"t-0123456789abcdef\"], public_url = \"https://www.example.com\" }");
}

#[test]
fn a_whsec_key_must_be_base64_and_tolerance_is_the_routes_to_set() {
    let text = "[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"r\"\npath = \"/cb\"\nupstream = \"http://127.0.0.1:9/x\"\npreset = \"standard-webhooks\"\nhmac = { secrets = [\"whsec_!!-0123456789abcdef\"] }\n";
    let err = Config::from_str(text, Path::new("t.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not a whsec_ key"), "{err}");
    let r = route(
        "preset = \"slack\"\nhmac = { secrets = [\"s-0123456789abcdef\"], tolerance = \"1m\" }",
    );
    let h = r.hmac.as_ref().unwrap();
    assert_eq!(h.tolerance, Duration::from_secs(60));
    assert_eq!(h.header.as_str(), "x-slack-signature");
}

#[test]
fn a_routes_script_is_protected_on_every_passthrough_unless_opted_out() {
    let text = "[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"r\"\npath = \"/cb\"\nupstream = \"http://localhost:8080/cb.php\"\nallow_ips = [\"10.0.0.0/8\"]\n[[passthrough]]\nupstream = \"http://127.0.0.1:8080\"\n[[passthrough]]\nupstream = \"http://127.0.0.1:8081\"\n[[passthrough]]\nupstream = \"http://127.0.0.1:8082\"\nprotect_routes = false\n";
    let config = Config::from_str(text, Path::new("t.toml")).unwrap();
    let protected: Vec<Vec<String>> = config
        .passthroughs
        .iter()
        .map(|p| p.protect.iter().map(|p| p.shown.clone()).collect())
        .collect();
    assert_eq!(
        protected,
        [
            vec!["/cb.php", "/cb (route \"r\")"],
            vec!["/cb.php", "/cb (route \"r\")"],
            vec!["/cb (route \"r\")"]
        ],
        "the route's path everywhere; its script unless protect_routes = false"
    );
}
