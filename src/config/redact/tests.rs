//! Every secret hidden by value: raw, encoded, in any case; nothing else changed.

use super::*;

const TOKEN: &str = "tok-3f9a/b+c d";

fn redactor() -> Redactor {
    Redactor::new([TOKEN.as_bytes(), b"hmac-key-0123456789", b"abc"])
}

#[test]
fn raw_values_anywhere_are_hidden() {
    let r = redactor();
    assert_eq!(
        r.text("/cb?TOKEN=tok-3f9a/b+c d&x=1"),
        "/cb?TOKEN=REDACTED&x=1"
    );
    assert_eq!(r.text("/tok-3f9a/b+c d/x"), "/REDACTED/x");
    assert_eq!(
        r.text("{\"k\":\"hmac-key-0123456789\"}"),
        "{\"k\":\"REDACTED\"}"
    );
    assert_eq!(
        r.text("tok-3f9a/b+c dhmac-key-0123456789"),
        "REDACTED",
        "touching values are one"
    );
}

#[test]
fn encoded_values_are_hidden_whole() {
    let r = redactor();
    for (shown, want) in [
        ("a=tok-3f9a%2Fb%2Bc+d&b=2", "a=REDACTED&b=2"),
        ("a=tok-3f9a%2fb%2bc%20d", "a=REDACTED"),
        ("a=%74%6F%6b-3f9a/b%2Bc%20d", "a=REDACTED"),
        ("a=tok-3f9a%252Fb%252Bc%2520d", "a=REDACTED"),
        ("p/tok-3f9a/b+c%20d;x", "p/REDACTED;x"),
        ("{\"t\":\"tok-3f9a\\/b+c\\u0020d\"}", "{\"t\":\"REDACTED\"}"),
        ("h=hmac%2Dkey%2D0123456789", "h=REDACTED"),
    ] {
        assert_eq!(r.text(shown), want, "{shown}");
    }
}

#[test]
fn nothing_else_changes() {
    let r = redactor();
    for s in ["/cb?token=other&x=%41", "tok-3f9a", "abc abc", "%zz+%", ""] {
        assert!(matches!(r.text(s), Cow::Borrowed(_)), "{s}");
    }
    let empty = Redactor::default();
    assert!(matches!(empty.text(TOKEN), Cow::Borrowed(_)));
}

#[test]
fn short_secrets_are_not_searched_for_and_duplicates_are_one() {
    let r = Redactor::new([b"abc".as_slice(), b"abcd", b"abcd"]);
    assert_eq!(r.len(), 1);
    assert_eq!(r.text("abc abcd"), "abc REDACTED");
}

#[test]
fn credential_headers_are_hidden_in_every_spelling() {
    for name in [
        "authorization",
        "proxy_authorization",
        "Proxy-Authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x_api_key",
        "X-API.KEY",
        "x-auth-key",
        "x-access-key",
        "x-signing-key",
        "x-webhook-key",
        "x-private-key",
        "x-jwt",
        "x-auth-token",
        "x-access-token",
        "api-key",
        "apikey",
        "x-csrf-token",
        "x-gitlab-token",
        "x-session-id",
        "x-client-secret",
        "x-password",
    ] {
        assert!(is_credential_header(name), "{name}");
        assert_eq!(redactor().header(name, b"anything").1, REDACTED, "{name}");
    }
    for name in ["content-type", "x-hub-signature-256", "user-agent", "host"] {
        assert!(!is_credential_header(name), "{name}");
    }
}

#[test]
fn other_headers_hide_secrets_by_value_in_names_and_values() {
    let r = redactor();
    assert_eq!(
        r.header("x-note", b"see tok-3f9a/b+c d"),
        ("x-note".to_owned(), "see REDACTED".to_owned())
    );
    assert_eq!(
        r.header("x-tok-3f9a/b+c d", b"1"),
        ("x-REDACTED".to_owned(), "1".to_owned())
    );
}

#[test]
fn the_loader_keeps_every_secret_the_config_holds() {
    let text = r#"
[listen]
http = "127.0.0.1:0"
admin = "127.0.0.1:0"
[admin]
console = { password = "console-password-0123456789" }
[gateway]
assertion = { key = "assertion-key-0123456789" }
[queue]
backend = "postgres"
url = "postgres://cg:db-password-0123456789@db.internal/cg"
[[route]]
name = "meta"
path = "/m"
upstream = "http://127.0.0.1:9/"
preset = "meta"
allow_ips = ["127.0.0.1"]
hmac = { secrets = ["meta-app-secret-0123456789"] }
handshake = { verify_token = "meta-verify-token" }
[[route]]
name = "t"
path = "/t"
upstream = "http://127.0.0.1:9/"
token = { secrets = ["url-token-0123456789", "url-token-9876543210"] }
"#;
    let c = crate::config::Config::from_str(text, std::path::Path::new("t.toml")).unwrap();
    for s in [
        "console-password-0123456789",
        "assertion-key-0123456789",
        "db-password-0123456789",
        "meta-app-secret-0123456789",
        "meta-verify-token",
        "url-token-0123456789",
        "url-token-9876543210",
    ] {
        assert_eq!(c.redactor.text(&format!("x={s}")), "x=REDACTED", "{s}");
    }
    let short = text.replace("meta-verify-token", "vt1");
    let c = crate::config::Config::from_str(&short, std::path::Path::new("t.toml")).unwrap();
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("handshake.verify_token is 3 bytes: too short to be hidden")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn binary_and_cut_text_do_not_panic() {
    let r = Redactor::new([b"\xffsecret\xfe".as_slice(), "é-secret".as_bytes()]);
    assert_eq!(r.bytes(b"a\xffsecret\xfeb").as_ref(), b"aREDACTEDb");
    assert_eq!(r.text("xé-secret"), "xREDACTED");
    assert_eq!(r.text("x%C3%A9-secret"), "xREDACTED");
    assert_eq!(r.text("%"), "%");
    assert_eq!(r.text("\\u12"), "\\u12");
}

#[test]
fn ascii_case_does_not_hide_a_secret() {
    let r = Redactor::new([b"TolqTokSecretAAA".as_slice(), b"deadbeefcafebabe0123"]);
    assert_eq!(r.text("x-tolqtoksecretaaa"), "x-REDACTED");
    assert_eq!(r.text("k=DEADBEEFCAFEBABE0123"), "k=REDACTED");
    assert_eq!(r.text("k=%44EADBEEFCAFEBABE0123"), "k=REDACTED");
    assert_eq!(
        r.text("{\"k\":\"\\u0044eadbeefcafebabe0123\"}"),
        "{\"k\":\"REDACTED\"}"
    );
}

#[test]
fn hex_and_base64_forms_of_a_whole_secret_are_hidden() {
    use base64::Engine;
    let secret = b"TolqTokSecretAA?>";
    let r = Redactor::new([secret.as_slice()]);
    let b64 = base64::engine::general_purpose::STANDARD;
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    for form in [
        hex.clone(),
        hex.to_ascii_uppercase(),
        b64.encode(secret),
        url.encode(secret),
    ] {
        let shown = r.text(&format!("v={form}&x=1")).into_owned();
        assert!(shown.starts_with("v=REDACTED"), "{form}: {shown}");
        assert!(!shown.contains(&form[..form.len() - 2]), "{form}: {shown}");
    }
}

#[test]
fn json_escapes_inside_percent_encoding_and_html_entities_are_undone() {
    let r = Redactor::new([b"Tolq<&>secret".as_slice()]);
    let json: String = "Tolq<&>secret"
        .chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect();
    let form: String =
        form_urlencoded::byte_serialize(format!("{{\"a\":\"{json}\"}}").as_bytes()).collect();
    let shown = r.text(&format!("other={form}")).into_owned();
    assert!(!shown.contains("5Cu0054"), "{shown}");
    assert!(shown.contains("REDACTED"), "{shown}");
    for html in [
        "&#84;olq&lt;&amp;&gt;secret",
        "&#x54;olq&#60;&#38;&#62;secret",
    ] {
        assert_eq!(
            r.text(&format!("<p>{html}</p>")),
            "<p>REDACTED</p>",
            "{html}"
        );
    }
}

/// Not a timed assertion: prints what a hostile target costs
/// (`cargo test --lib redact -- --show-output`).
#[test]
fn a_hostile_target_costs_linear_time() {
    let r = Redactor::new([b"TolqTokSecretAAA".as_slice(), b"deadbeefcafebabe0123"]);
    for n in [5_000, 20_000] {
        let hostile = "%25".repeat(n);
        let start = std::time::Instant::now();
        let shown = r.text(&hostile);
        println!(
            "{} bytes of %25: {:.2} ms",
            hostile.len(),
            start.elapsed().as_secs_f64() * 1000.0
        );
        assert_eq!(shown, hostile);
    }
}

proptest::proptest! {
    /// The length shortcut rests on this: no view of a text (a percent
    /// decoding, `+` as space or not, JSON escapes or HTML references
    /// undone) is longer than the text itself.
    #[test]
    fn no_view_is_longer_than_its_text(
        raw in "(%[0-9a-fA-F]{2}|%|\\+|\\\\u[0-9a-fA-F]{4}|\\\\[nrt\"/\\\\]|&#[0-9]{1,7};|&#x[0-9a-fA-F]{1,6};|&(lt|gt|amp|quot|apos);|[a-z]){0,24}",
    ) {
        let raw = raw.as_bytes();
        let id = View::identity(raw);
        let mut views = vec![id.json_unescaped(), id.html_unescaped()];
        for plus in [false, true] {
            let once = id.percent_decoded(plus);
            views.push(once.as_ref().and_then(View::json_unescaped));
            views.push(once.as_ref().and_then(|v| v.percent_decoded(plus)));
            views.push(once);
        }
        for v in views.into_iter().flatten() {
            proptest::prop_assert!(v.bytes.len() <= raw.len());
        }
    }
}

#[test]
fn a_text_as_long_as_the_shortest_secret_is_still_searched() {
    let r = Redactor::new([b"abcdefgh".as_slice(), b"0123456789abcdef".as_slice()]);
    assert_eq!(r.text("abcdefgh"), "REDACTED");
    assert_eq!(r.text("ABCDEFG"), "ABCDEFG");
    assert_eq!(r.text("POST"), "POST");
}
