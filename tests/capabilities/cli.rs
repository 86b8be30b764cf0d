//! `callgate check` and `callgate sign` as an operator runs them.

use callgate_testkit as support;

use support::gateway::{run_cli, test_cert};

fn write_config(dir: &std::path::Path, body: &str) -> String {
    let path = dir.join("callgate.toml");
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

const GOOD: &str = r#"
[listen]
http = "127.0.0.1:0"

[[route]]
name = "tolq"
path = "/tolq/callback"
upstream = "http://127.0.0.1:8080/tolq/callback.php"
preset = "tolq"
token = { secrets = ["env:CG_TEST_TOKEN"] }
hmac = { secrets = ["env:CG_TEST_KEY"] }
"#;

#[test]
fn check_prints_routes_and_effective_checks() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), GOOD);
    let (code, out, err) = run_cli(
        &["check", "--config", &path],
        b"",
        &[
            ("CG_TEST_TOKEN", "t-0123456789abcdef"),
            ("CG_TEST_KEY", "k-0123456789abcdef"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("route \"tolq\""), "{out}");
    assert!(out.contains("84.22.114.141/32 (from preset)"), "{out}");
    assert!(
        out.contains("sha1 of the raw body, header x-tolq-signature, encoding auto"),
        "{out}"
    );
    assert!(out.contains("env:CG_TEST_KEY"), "{out}");
    assert!(!out.contains("=k") && !err.contains("panicked"));
}

#[test]
fn an_admin_listener_off_loopback_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let warned = GOOD.replace("[listen]\n", "[listen]\nadmin = \"0.0.0.0:9090\"\n");
    let env = [
        ("CG_TEST_TOKEN", "t-0123456789abcdef"),
        ("CG_TEST_KEY", "k-0123456789abcdef"),
    ];
    let (code, _, err) = run_cli(
        &["check", "--config", &write_config(dir.path(), &warned)],
        b"",
        &env,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: listen.admin = \"0.0.0.0:9090\" is not a loopback address"),
        "{err}"
    );
    let local = GOOD.replace("[listen]\n", "[listen]\nadmin = \"[::1]:9090\"\n");
    let (code, _, err) = run_cli(
        &["check", "--config", &write_config(dir.path(), &local)],
        b"",
        &env,
    );
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("listen.admin"), "{err}");
}

#[test]
fn check_loads_real_certificates() {
    let cert = test_cert();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[listen]\nhttps = \"127.0.0.1:0\"\n[tls]\ncert = {:?}\nkey = {:?}\n[[route]]\nname = \"a\"\npath = \"/a\"\nupstream = \"http://127.0.0.1:1/\"\nallow_ips = [\"10.0.0.0/8\"]\n",
        cert.cert_path.display().to_string(),
        cert.key_path.display().to_string()
    );
    let path = write_config(dir.path(), &text);
    let (code, out, err) = run_cli(&["check", "--config", &path], b"", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 in chain"), "{out}");

    let broken = text.replace(
        &cert.key_path.display().to_string(),
        &cert.cert_path.display().to_string(),
    );
    let path = write_config(dir.path(), &broken);
    let (code, _, err) = run_cli(&["check", "--config", &path], b"", &[]);
    assert_eq!(code, 1);
    assert!(err.contains("private key"), "{err}");
}

/// Each broken config: exit 1, no panic, the file named, and the words that
/// tell the operator what is wrong.
#[test]
fn config_errors_name_the_file_the_place_and_the_problem() {
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        ("unknown key", GOOD.replace("preset = \"tolq\"", "preset = \"tolq\"\nalow_ips = [\"1.2.3.4\"]"), vec!["unknown field `alow_ips`", ":10:1"]),
        ("bad CIDR", GOOD.replace("preset = \"tolq\"", "preset = \"tolq\"\nallow_ips = [\"84.22.114.300/32\"]"), vec!["invalid address or CIDR", "84.22.114.300/32", ":10:"]),
        ("missing env secret", GOOD.to_owned(), vec!["CG_TEST_TOKEN is not set", "route[0] (\"tolq\").token.secrets[0]", ":10:22"]),
        ("route without checks", "[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"open\"\npath = \"/x\"\nupstream = \"http://127.0.0.1:1/\"\n".to_owned(), vec!["has no check", "allow_ips, token, hmac or signature"]),
        ("tolq preset without key", GOOD.replace("hmac = { secrets = [\"env:CG_TEST_KEY\"] }", ""), vec!["preset tolq", "add hmac = { secrets"]),
        ("gengo preset without token", "[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"gengo\"\npath = \"/g\"\nupstream = \"http://127.0.0.1:1/\"\npreset = \"gengo\"\n".to_owned(), vec!["preset gengo requires a URL token", "add token = {"]),
        ("unknown preset", GOOD.replace("preset = \"tolq\"", "preset = \"tolk\""), vec!["unknown preset \"tolk\"", "did you mean \"tolq\"", "callgate presets"]),
        ("bad duration", GOOD.replace("[listen]", "[gateway]\nbody_read_timeout = \"soon\"\n[listen]"), vec!["invalid duration", "\"soon\""]),
        ("https without tls", "[listen]\nhttps = \"127.0.0.1:0\"\n".to_owned(), vec!["needs a [tls] table"]),
        ("upstream_tls on http", GOOD.replace("preset = \"tolq\"", "preset = \"tolq\"\nupstream_tls = { verify = false }"), vec!["upstream_tls is for an https:// upstream"]),
        ("unknown address list", GOOD.replace("preset = \"tolq\"", "preset = \"tolq\"\nallow_ips = [\"list:gitlab\"]"), vec!["\"list:gitlab\", which is no list", "github, stripe, zoom", "[[ip_list]]"]),
        ("bad algorithm", GOOD.replace("hmac = { secrets", "hmac = { algorithm = \"md5\", secrets"), vec!["unknown variant `md5`"]),
        ("not toml", "[listen\n".to_owned(), vec![":1:"]),
    ];
    for (name, text, wants) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), &text);
        let env: &[(&str, &str)] = if name == "missing env secret" {
            &[("CG_TEST_KEY", "k-0123456789abcdef")]
        } else {
            &[
                ("CG_TEST_TOKEN", "t-0123456789abcdef"),
                ("CG_TEST_KEY", "k-0123456789abcdef"),
            ]
        };
        let (code, _, err) = run_cli(&["check", "--config", &path], b"", env);
        assert_eq!(code, 1, "{name}: {err}");
        assert!(err.contains(&path), "{name}: file not named: {err}");
        for want in wants {
            assert!(err.contains(want), "{name}: {want:?} not in: {err}");
        }
        assert!(
            !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
            "{name}: {err}"
        );
    }
}

#[test]
fn run_refuses_a_broken_config_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "[listen]\nhttp = \"127.0.0.1:0\"\nbogus = 1\n");
    let (code, _, err) = run_cli(&["run", "--config", &path], b"", &[]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown field `bogus`"), "{err}");
}

#[test]
fn missing_config_file_is_named() {
    let (code, _, err) = run_cli(
        &["check", "--config", "/nonexistent/callgate.toml"],
        b"",
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("/nonexistent/callgate.toml") && err.contains("cannot read"),
        "{err}"
    );
}

fn openssl_hmac(alg: &str, key: &str, body: &[u8], binary: bool) -> Vec<u8> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut args = vec![
        "dgst".to_owned(),
        format!("-{alg}"),
        "-hmac".to_owned(),
        key.to_owned(),
    ];
    if binary {
        args.push("-binary".into());
    }
    let mut child = Command::new("openssl")
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl is installed");
    child.stdin.take().unwrap().write_all(body).unwrap();
    child.wait_with_output().unwrap().stdout
}

#[test]
fn sign_agrees_with_openssl() {
    use base64::Engine;
    let body = b"{\"id\":42,\"status\":\"finished\"}\n\xff";
    let (code, out, err) = run_cli(&["sign", "--secret", "the-key"], body, &[]);
    assert_eq!(code, 0, "{err}");
    let openssl = String::from_utf8(openssl_hmac("sha1", "the-key", body, false)).unwrap();
    let openssl_hex = openssl.trim().rsplit(' ').next().unwrap();
    assert_eq!(out.trim(), openssl_hex);

    let (code, out, _) = run_cli(
        &[
            "sign",
            "--secret",
            "env:CG_SIGN_KEY",
            "--algorithm",
            "sha256",
            "--encoding",
            "base64",
        ],
        body,
        &[("CG_SIGN_KEY", "k2")],
    );
    assert_eq!(code, 0);
    let raw = openssl_hmac("sha256", "k2", body, true);
    assert_eq!(
        out.trim(),
        base64::engine::general_purpose::STANDARD.encode(raw)
    );

    let (code, out, _) = run_cli(
        &["sign", "--secret", "k", "--algorithm", "sha512"],
        b"",
        &[],
    );
    assert_eq!(code, 0);
    assert_eq!(out.trim().len(), 128);
}

#[test]
fn sign_with_a_missing_secret_fails_cleanly() {
    let (code, _, err) = run_cli(&["sign", "--secret", "env:CG_NOT_SET_ANYWHERE"], b"x", &[]);
    assert_eq!(code, 1);
    assert!(err.contains("CG_NOT_SET_ANYWHERE is not set"), "{err}");
}

#[test]
fn the_shipped_example_configs_pass_check() {
    let root = env!("CARGO_MANIFEST_DIR");
    let (code, out, err) = run_cli(
        &["check", "--config", &format!("{root}/config.example.toml")],
        b"",
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("route \"tolq\"") && out.contains("route \"gengo\""),
        "{out}"
    );
    assert!(
        err.contains("self_signed") && err.contains("written in the config file"),
        "warnings expected: {err}"
    );

    // The Apache example, with its certificate paths and systemd credentials
    // pointed at test files.
    let (text, dir) = support::gateway::apache_example();
    let path = write_config(dir.path(), &text);
    let creds = dir.path().display().to_string();
    let (code, out, err) = run_cli(
        &["check", "--config", &path],
        b"",
        &[("CREDENTIALS_DIRECTORY", &creds)],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("ip      allow 84.22.114.141/32 (from preset)"),
        "{out}"
    );
    assert!(
        out.contains("cred:tolq-api-key (algorithm, header, encoding from preset)"),
        "{out}"
    );
    assert!(out.contains("stripped before forwarding"), "{out}");
    assert!(out.contains("payload GengoForm"), "{out}");
    assert!(err.is_empty(), "no warnings for a production config: {err}");

    // Without systemd's credentials directory the operator is told what to add.
    let (code, _, err) = run_cli(&["check", "--config", &path], b"", &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cred:tolq-callback-token")
            && err.contains("LoadCredential=tolq-callback-token:"),
        "{err}"
    );
}

/// The config is read as TOML defines it: dotted keys and implicit tables
/// mean what the explicit tables mean, everywhere.
#[test]
fn dotted_keys_and_implicit_tables_are_the_same_config() {
    let cert = test_cert();
    let (c, k) = (
        cert.cert_path.display().to_string(),
        cert.key_path.display().to_string(),
    );
    let explicit = format!(
        r#"
[listen]
https = "127.0.0.1:0"
[tls]
cert = {c:?}
key = {k:?}
[[tls.certificate]]
hosts = ["api.example.com"]
cert = {c:?}
key = {k:?}
[gateway]
max_body_bytes = 65536
[gateway.damping]
failures = 5
window = "1m"
cooldown = "10m"
[[route]]
name = "gh"
path = "/gh"
upstream = "http://127.0.0.1:9/gh"
preset = "github"
[route.hmac]
secrets = ["gh-secret-0123456789abcdef"]
"#
    );
    let dotted = format!(
        r#"
listen.https = "127.0.0.1:0"
gateway.max_body_bytes = 65536
gateway.damping.failures = 5
gateway.damping.window = "1m"
gateway.damping.cooldown = "10m"
[tls]
cert = {c:?}
key = {k:?}
[[tls.certificate]]
hosts = ["api.example.com"]
cert = {c:?}
key = {k:?}
[[route]]
name = "gh"
path = "/gh"
upstream = "http://127.0.0.1:9/gh"
preset = "github"
hmac.secrets = ["gh-secret-0123456789abcdef"]
"#
    );
    // [[tls.certificate]] with no [tls] before it: an implicit table.
    let implicit = format!(
        r#"
[listen]
https = "127.0.0.1:0"
[[tls.certificate]]
hosts = ["api.example.com"]
cert = {c:?}
key = {k:?}
[tls]
cert = {c:?}
key = {k:?}
[gateway.damping]
failures = 5
window = "1m"
cooldown = "10m"
[gateway]
max_body_bytes = 65536
[[route]]
name = "gh"
path = "/gh"
upstream = "http://127.0.0.1:9/gh"
preset = "github"
hmac = {{ secrets = ["gh-secret-0123456789abcdef"] }}
"#
    );
    let dir = tempfile::tempdir().unwrap();
    let mut outputs = Vec::new();
    for text in [&explicit, &dotted, &implicit] {
        let path = write_config(dir.path(), text);
        let (code, out, err) = run_cli(&["check", "--config", &path], b"", &[]);
        assert_eq!(code, 0, "{err}\n{text}");
        outputs.push(out);
    }
    assert_eq!(outputs[0], outputs[1], "dotted keys");
    assert_eq!(outputs[0], outputs[2], "implicit tables");
}

/// Neither `explain` nor a config error prints a secret: the URL token is
/// REDACTED in the target, and a secret written in the wrong shape is not
/// quoted back.
#[test]
fn explain_and_config_errors_never_print_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "tolq-url-token-0123456789";
    let path = write_config(
        dir.path(),
        &format!(
            "[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"t\"\npath = \"/t\"\nupstream = \"http://127.0.0.1:9/t\"\ntoken = {{ secrets = [\"{secret}\"] }}\n"
        ),
    );
    let capture = dir.path().join("request.http");
    std::fs::write(
        &capture,
        format!("POST /t?a=1&token={secret} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{{}}"),
    )
    .unwrap();
    let (code, out, err) = run_cli(
        &[
            "explain",
            "--config",
            &path,
            "--route",
            "t",
            "--request",
            capture.to_str().unwrap(),
        ],
        b"",
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("target /t?a=1&token=REDACTED"), "{out}");
    assert!(!out.contains(secret) && !err.contains(secret), "{out}{err}");

    let wrong_shape = write_config(
        dir.path(),
        &format!(
            "[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"t\"\npath = \"/t\"\nupstream = \"http://127.0.0.1:9/t\"\ntoken = {{ secrets = \"{secret}\" }}\n"
        ),
    );
    let (code, out, err) = run_cli(&["check", "--config", &wrong_shape], b"", &[]);
    assert_ne!(code, 0);
    assert!(
        err.contains("invalid type: string (value not shown)"),
        "{err}"
    );
    assert!(!out.contains(secret) && !err.contains(secret), "{out}{err}");
}

/// Values that pass a parser but would crash, blind or undo callgate are
/// refused at load, with the range or the fix.
#[test]
fn dangerous_values_are_refused_with_the_range_or_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let route = |checks: &str, more: &str| {
        format!("[[route]]\nname = \"r\"\npath = \"/r\"\nupstream = \"http://127.0.0.1:9/r\"\n{checks}\n{more}\n")
    };
    let token = "token = { secrets = [\"a-token-of-twenty-chars\"] }";
    let hmac = "hmac = { secrets = [\"a-key-of-twenty-chars-\"], algorithm = \"sha256\", header = \"x-sig\"";
    let pg = "[queue]\nbackend = \"postgres\"\nurl = \"postgres://cg@db.example/q\"\n";
    let cases: Vec<(String, &str)> = vec![
        (
            format!("[gateway]\nmax_headers = 4294967295\n{}", route(token, "")),
            "gateway.max_headers must be between 1 and 1000",
        ),
        (
            format!(
                "[gateway]\nmax_header_bytes = 4294967295\n{}",
                route(token, "")
            ),
            "gateway.max_header_bytes must be between",
        ),
        (
            route("allow_ips = [\"0.0.0.0/0\", \"::/0\"]", ""),
            "it is the route's only check",
        ),
        (
            format!(
                "[gateway]\ntrusted_proxies = [\"0.0.0.0/0\"]\n{}",
                route(token, "")
            ),
            "trusts every address",
        ),
        (route("token = { secrets = [\"short\"] }", ""), "too short"),
        (
            format!(
                "[gateway]\nassertion = {{ key = \"k\" }}\n{}",
                route(token, "")
            ),
            "assertion.secrets[0]: a secret of 1 bytes is too short",
        ),
        (
            route(&format!("{hmac}, tolerance = \"100000y\" }}"), ""),
            "hmac.tolerance = \"100000years\" is out of range",
        ),
        (
            route(
                token,
                "delivery = \"queue\"\nretry = { base = \"100000d\" }",
            ),
            "retry.base",
        ),
        (
            route(
                token,
                "delivery = \"queue\"\nretry = { max_attempts = 4000000000 }",
            ),
            "retry.max_attempts",
        ),
        (
            format!(
                "[gateway]\nverified_header = \"transfer-encoding\"\n{}",
                route(token, "")
            ),
            "names a header that frames",
        ),
        (
            format!(
                "[gateway]\nverified_header = \"Content_Length\"\n{}",
                route(token, "")
            ),
            "names a header that frames",
        ),
        (
            format!("[gateway]\nidle_timeout = \"10000d\"\n{}", route(token, "")),
            "gateway.idle_timeout",
        ),
        (
            route("token = { secrets = [\"file:/dev/zero\"] }", ""),
            "not a regular file",
        ),
        (
            format!(
                "{pg}lease = \"500ms\"\n{}",
                route(token, "delivery = \"queue\"")
            ),
            "queue.lease",
        ),
    ];
    for (body, says) in &cases {
        let path = write_config(
            dir.path(),
            &format!("[listen]\nhttp = \"127.0.0.1:0\"\n{body}"),
        );
        let (code, out, err) = run_cli(&["check", "--config", &path], b"", &[]);
        assert_ne!(code, 0, "accepted:\n{body}\n{out}");
        assert!(err.contains(says), "{says:?} missing for\n{body}\n{err}");
    }
    // An allow-everything list beside a real check only warns.
    let path = write_config(
        dir.path(),
        &format!(
            "[listen]\nhttp = \"127.0.0.1:0\"\n{}",
            route(&format!("{token}\nallow_ips = [\"0.0.0.0/0\"]"), "")
        ),
    );
    let (code, out, err) = run_cli(&["check", "--config", &path], b"", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        format!("{out}{err}").contains("which is every address"),
        "{out}{err}"
    );
}

/// `check --offline` reads a config on any machine: the shipped Apache
/// example names Let's Encrypt files and systemd credentials that do not
/// exist here, yet its routes, presets and checks are shown (and no secret
/// is resolved); plain `check` still refuses it. A wrong file is still wrong.
#[test]
fn check_offline_shows_the_shipped_example_without_its_files() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/tolq-gengo-apache.toml"
    );
    let (code, out, err) = run_cli(&["check", "--offline", "--config", example], b"", &[]);
    assert_eq!(code, 0, "{err}");
    for line in [
        "offline: secrets, certificates, CA files and state were not read",
        "route \"tolq\": POST /tolq/callback",
        "84.22.114.141/32 (from preset)",
        "cred:tolq-api-key",
        "(not read: --offline)",
        "route \"gengo\"",
    ] {
        assert!(out.contains(line), "{line:?} missing from\n{out}");
    }
    assert!(
        !out.contains("offline-placeholder") && !out.contains("whsec_b2Zm"),
        "{out}"
    );
    let (code, _, _) = run_cli(&["check", "--config", example], b"", &[]);
    assert_ne!(code, 0, "without --offline the missing files are errors");
    let dir = tempfile::tempdir().unwrap();
    let bad = write_config(dir.path(), "[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"r\"\npath = \"nope\"\nupstream = \"http://127.0.0.1:9/\"\ntoken = { secrets = [\"env:UNSET_ANYWHERE\"] }\n");
    let (code, _, err) = run_cli(&["check", "--offline", "--config", &bad], b"", &[]);
    assert_ne!(code, 0);
    assert!(err.contains("must be an absolute path"), "{err}");
}

/// Errors name the fix: the flag to add, the file's remedy.
#[test]
fn errors_name_the_flag_or_the_fix() {
    let (code, _, err) = run_cli(
        &[
            "sign",
            "--preset",
            "twilio",
            "--secret",
            "twilio-auth-token-0123456789",
        ],
        b"To=1",
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("add --url"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        "[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"r\"\npath = \"/r\"\nupstream = \"http://127.0.0.1:9/\"\ntoken = { secrets = [\"file:/etc/callgate/nonexistent-token\"] }\n",
    );
    let (code, _, err) = run_cli(&["check", "--config", &path], b"", &[]);
    assert_ne!(code, 0);
    assert!(
        err.contains("/etc/callgate/nonexistent-token") && err.contains("LoadCredential="),
        "{err}"
    );
}

/// Plain `check` resolves everything and reports every problem it finds in
/// one run: the operator fixes them all, not one per attempt.
#[test]
fn check_reports_every_problem_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        r#"
[listen]
https = "127.0.0.1:0"

[tls]
cert = "/nonexistent/fullchain.pem"
key = "/nonexistent/privkey.pem"

[[route]]
name = "tolq"
path = "/tolq"
upstream = "http://127.0.0.1:9/"
preset = "tolq"
hmac = { secrets = ["env:CG_CHECK_UNSET_KEY"] }

[[route]]
name = "gengo"
path = "/gengo"
upstream = "http://127.0.0.1:9/"
preset = "gengo"
token = { secrets = ["file:/nonexistent/gengo-token"] }

[[route]]
name = "broken"
path = "no-slash"
upstream = "http://127.0.0.1:9/"
token = { secrets = ["env:CG_CHECK_UNSET_TOKEN"] }

[[route]]
name = "weak"
path = "/weak"
upstream = "http://127.0.0.1:9/"
token = { secrets = ["short"] }
"#,
    );
    let (code, out, err) = run_cli(&["check", "--config", &path], b"", &[]);
    assert_eq!(code, 1, "{out}{err}");
    for problem in [
        "tls: ",
        "CG_CHECK_UNSET_KEY",
        "/nonexistent/gengo-token",
        "no-slash",
        "too short",
        "problems in the config",
    ] {
        assert!(err.contains(problem), "{problem:?} not reported:\n{err}");
    }
    assert!(!err.contains("short\""), "a secret was printed: {err}");
    // Each problem on its own line, located in the file.
    let located = err.lines().filter(|l| l.contains("callgate.toml:")).count();
    assert!(located >= 5, "{err}");
}

/// `callgate presets` lists every provider with its scheme, replay default
/// and documentation; `presets show` prints one as TOML.
#[test]
fn presets_lists_every_provider_and_shows_one() {
    let (code, out, err) = run_cli(&["presets"], b"", &[]);
    assert_eq!(code, 0, "{err}");
    for name in [
        "tolq",
        "gengo",
        "github",
        "stripe",
        "slack",
        "shopify",
        "twilio",
        "standard-webhooks",
        "svix",
        "clerk",
        "resend",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("{name} "))),
            "{name} missing:\n{out}"
        );
    }
    assert!(out.contains("https://docs.github.com/"), "{out}");
    let (code, out, _) = run_cli(&["presets", "show", "svix"], b"", &[]);
    assert_eq!(code, 0);
    for line in [
        "name = \"svix\"",
        "header = \"svix-signature\"",
        "timestamp_header = \"svix-timestamp\"",
        "signed = \"{id}.{timestamp}.{body}\"",
        "id_header = \"svix-id\"",
        "dedupe_window = \"2days\"",
    ] {
        assert!(out.contains(line), "{line:?} missing:\n{out}");
    }
    let (code, _, err) = run_cli(&["presets", "show", "nobody"], b"", &[]);
    assert_ne!(code, 0);
    assert!(err.contains("unknown preset \"nobody\""), "{err}");
}

/// README's provider table is `callgate presets --markdown`, exactly.
#[test]
fn the_readme_provider_table_is_the_registrys() {
    let (code, table, err) = run_cli(&["presets", "--markdown"], b"", &[]);
    assert_eq!(code, 0, "{err}");
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("<!-- presets:begin")
        .expect("README marks the table");
    let body = &readme[readme[start..].find('\n').unwrap() + start + 1..];
    let end = body
        .find("<!-- presets:end -->")
        .expect("README marks the table's end");
    let stale = body[..end]
        .lines()
        .zip(table.lines())
        .find(|(readme, registry)| readme != registry);
    assert!(
        stale.is_none() && body[..end].lines().count() == table.lines().count(),
        "README.md's provider table is stale (first difference: {stale:?}): paste `callgate presets --markdown` between the markers"
    );
    assert!(
        table.lines().count() >= 62,
        "{} presets",
        table.lines().count() - 2
    );
}

/// A `[[preset]]` is checked like every table: unknown keys, a broken
/// scheme and an unknown preset name are errors that name the fix; a
/// built-in name overridden is said.
#[test]
fn operator_presets_are_checked_and_named_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let write = |text: &str| {
        let path = dir.path().join("callgate.toml");
        std::fs::write(&path, format!("[listen]\nhttp = \"127.0.0.1:0\"\n{text}")).unwrap();
        path.to_string_lossy().into_owned()
    };
    let route = "[[route]]\nname = \"a\"\npath = \"/a\"\nupstream = \"http://127.0.0.1:9/a\"\nhmac = { secrets = [\"a-secret-of-sixteen-bytes\"] }\n";
    let preset = "[[preset]]\nname = \"acme\"\n[preset.hmac]\nalgorithm = \"sha256\"\nheader = \"x-acme\"\nencoding = \"hex\"\n";
    let cases = [
        (
            format!("{route}preset = \"acme\"\n"),
            "unknown preset \"acme\"",
        ),
        (
            format!("{preset}colour = \"red\"\n{route}"),
            "unknown field `colour`",
        ),
        (
            format!("{}{route}", preset.replace("hex", "hexadecimal")),
            "unknown variant `hexadecimal`",
        ),
        (
            format!("{preset}claims = \"prefixed\"\n{route}"),
            "needs hmac.prefix",
        ),
        (format!("{preset}{preset}{route}"), "names must be unique"),
    ];
    for (text, want) in cases {
        let path = write(&text);
        let (code, _, err) = run_cli(&["check", "--offline", "--config", &path], b"", &[]);
        assert_eq!(code, 1, "{text}");
        assert!(err.contains(want), "{want:?} not in:\n{err}");
        assert!(err.contains("callgate.toml"), "{err}");
    }
    let path = write(&format!(
        "{}{route}preset = \"github\"\n",
        preset.replace("acme", "github")
    ));
    let (code, out, err) = run_cli(&["check", "--offline", "--config", &path], b"", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        format!("{out}{err}").contains("overrides the built-in preset"),
        "{out}{err}"
    );
}

/// An admin's shell has no CREDENTIALS_DIRECTORY: `check` and `explain`
/// read `cred:NAME` from `--credentials DIR`, the error without it names
/// the flag, and `explain --route X` reads X's secrets and no other's.
#[test]
fn check_and_explain_read_credentials_from_a_shell() {
    let (text, creds) = support::gateway::apache_example();
    let cfg_dir = tempfile::tempdir().unwrap();
    let path = write_config(cfg_dir.path(), &text);
    let creds_path = creds.path().display().to_string();

    let (code, _, err) = run_cli(&["check", "--config", &path], b"", &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--credentials DIR"),
        "the flag is named: {err}"
    );

    let (code, out, err) = run_cli(
        &["check", "--config", &path, "--credentials", &creds_path],
        b"",
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("cred:tolq-api-key"), "{out}");

    let (code, _, err) = run_cli(
        &[
            "check",
            "--config",
            &path,
            "--credentials",
            "/nonexistent/creds",
        ],
        b"",
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("--credentials /nonexistent/creds: not a directory"),
        "{err}"
    );

    // Only gengo's token in the directory: explaining gengo needs no other.
    let only_gengo = tempfile::tempdir().unwrap();
    std::fs::copy(
        creds.path().join("gengo-callback-token"),
        only_gengo.path().join("gengo-callback-token"),
    )
    .unwrap();
    let body = "job=%7B%22job_id%22%3A1%7D";
    let request = cfg_dir.path().join("gengo.http");
    std::fs::write(
        &request,
        format!(
            "POST /gengo/callback?token=g-0123456789abcdef HTTP/1.1\r\nHost: www.example.com\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .unwrap();
    let request = request.display().to_string();
    let gengo_dir = only_gengo.path().display().to_string();
    let args = [
        "explain",
        "--config",
        &path,
        "--route",
        "gengo",
        "--request",
        &request,
        "--from",
        "203.0.113.9",
        "--credentials",
        &gengo_dir,
    ];
    let (code, out, err) = run_cli(&args, b"", &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("would accept"), "{out}");
    assert!(
        !err.contains("tolq-api-key") && !err.contains("tolq-callback-token"),
        "another route's secrets were read: {err}"
    );
    // The route explained still needs its own.
    let mut tolq = args;
    tolq[4] = "tolq";
    let (code, _, err) = run_cli(&tolq, b"", &[]);
    assert_eq!(code, 1);
    assert!(err.contains("tolq-callback-token"), "{err}");
}

/// callgate.service has no capabilities: a `[listen]` port below 1024 works
/// only when a shipped socket unit passes it (443: callgate.socket, 80:
/// callgate-http.socket). `check` fails for any other, even run as root
/// (which could bind it; the unit cannot), naming the unit to edit.
#[test]
fn check_fails_for_a_privileged_port_the_units_do_not_pass() {
    let cert = test_cert();
    let (_, creds) = support::gateway::apache_example();
    let creds_path = creds.path().display().to_string();
    let root = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{root}/examples/tolq-gengo-apache.toml"))
        .unwrap()
        .replace(
            "/etc/letsencrypt/live/www.example.com/fullchain.pem",
            &cert.cert_path.display().to_string(),
        )
        .replace(
            "/etc/letsencrypt/live/www.example.com/privkey.pem",
            &cert.key_path.display().to_string(),
        );
    let dir = tempfile::tempdir().unwrap();
    let check = |text: &str| {
        let path = write_config(dir.path(), text);
        run_cli(
            &["check", "--config", &path, "--credentials", &creds_path],
            b"",
            &[],
        )
    };
    // As shipped: 443 and 80, both passed by the socket units.
    let (code, _, err) = check(&text);
    assert_eq!(code, 0, "{err}");
    let cases = [
        (
            text.replace("0.0.0.0:443", "0.0.0.0:444"),
            "listen.https = \"0.0.0.0:444\": port 444 is below",
            "callgate.socket passes port 443",
        ),
        (
            text.replace("0.0.0.0:80", "0.0.0.0:81"),
            "listen.http = \"0.0.0.0:81\"",
            "callgate-http.socket passes port 80",
        ),
        (
            text.replace(
                "http_redirect = true",
                "http_redirect = true\nadmin = \"127.0.0.1:90\"",
            ),
            "listen.admin = \"127.0.0.1:90\"",
            "no shipped socket unit passes an admin listener",
        ),
    ];
    let start: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024);
    if start <= 90 {
        eprintln!("skipped: this kernel lets anyone bind from port {start}");
        return;
    }
    for (text, what, fix) in cases {
        let (code, _, err) = check(&text);
        assert_eq!(code, 1, "{what}: {err}");
        assert!(err.contains(what) && err.contains(fix), "{err}");
    }
}

/// `presets show NAME` pastes into a config as it is: a `[[preset]]` with
/// `[preset.hmac]` (not `[hmac]`, which gave "unknown field `hmac`"), for
/// every built-in preset.
#[test]
fn every_shown_preset_pastes_into_a_config() {
    let (code, list, _) = run_cli(&["presets"], b"", &[]);
    assert_eq!(code, 0);
    let names: Vec<&str> = list
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(names.len() >= 70, "{list}");
    let dir = tempfile::tempdir().unwrap();
    let mut bad = Vec::new();
    for name in &names {
        let (code, shown, err) = run_cli(&["presets", "show", name], b"", &[]);
        assert_eq!(code, 0, "{err}");
        assert!(!shown.lines().any(|l| l == "[hmac]"), "{shown}");
        let renamed = shown.replace(&format!("name = \"{name}\""), "name = \"pasted\"");
        // Pasted at the end of a config (after a [[route]]), as an operator would.
        let path = write_config(dir.path(), &format!("{GOOD}\n{renamed}"));
        let (code, out, err) = run_cli(&["check", "--offline", "--config", &path], b"", &[]);
        if code != 0 || !out.contains("route \"tolq\"") {
            bad.push(format!("{name}: {err}"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// `[route]` written for `[[route]]` (and the other lists) gets the fix,
/// not only serde's "invalid type: map, expected a sequence".
#[test]
fn a_single_bracket_list_table_gets_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    for (written, fix) in [
        ("[[route]]", "[route]"),
        ("[[passthrough]]", "[passthrough]"),
    ] {
        let text = match written {
            "[[route]]" => GOOD.replace(written, fix),
            _ => format!("{GOOD}\n{fix}\nupstream = \"http://127.0.0.1:8080\"\n"),
        };
        let path = write_config(dir.path(), &text);
        let (code, _, err) = run_cli(&["check", "--config", &path], b"", &[]);
        assert_eq!(code, 1);
        assert!(
            err.contains(&format!("write {written}, with two brackets")),
            "{err}"
        );
    }
}

/// Every bad element of a list is reported, each at its own line:column,
/// not only the first (two bad CIDRs: both), and across lists.
#[test]
fn every_bad_element_of_a_list_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let text = GOOD.replace(
        "preset = \"tolq\"\n",
        "preset = \"tolq\"\nallow_ips = [\"1.2.3.4\", \"1.2.3.999\",\n  \"10.0.0.0/8\", \"fe80::zz\"]\n",
    ) + "\n[gateway]\ntrusted_proxies = [\"10.0.0.300/8\"]\n";
    let path = write_config(dir.path(), &text);
    let (code, _, err) = run_cli(&["check", "--config", &path], b"", &[]);
    assert_eq!(code, 1);
    for (at, value) in [
        (":10:25:", "1.2.3.999"),
        (":11:17:", "fe80::zz"),
        (":16:20:", "10.0.0.300/8"),
    ] {
        assert!(
            err.lines().any(|l| l.contains(at) && l.contains(value)),
            "{at} {value}: {err}"
        );
    }
    assert!(err.contains("(3 problems in the config)"), "{err}");
}
