//! `callgate explain`: a captured request judged against a route, check by
//! check, with the reason for each failure and never a secret.

use callgate_testkit as support;

use support::gateway::run_cli;
use support::now;
use support::signers::cli;

#[test]
fn explain_says_which_check_fails_and_why_without_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("callgate.toml");
    std::fs::write(
        &config,
        "[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"gh\"\npath = \"/gh\"\nupstream = \"http://127.0.0.1:9/\"\npreset = \"github\"\nallow_ips = [\"192.30.252.0/22\"]\nhmac = { secrets = [\"gh-old-secret-0123456789abcdef\", \"gh-secret-0123456789abcdef\"] }\n\n[[route]]\nname = \"slack\"\npath = \"/slack\"\nupstream = \"http://127.0.0.1:9/\"\npreset = \"slack\"\nhmac = { secrets = [\"slack-secret-0123456789abcdef\"] }\n",
    )
    .unwrap();
    let capture = |name: &str, target: &str, headers: &[(String, String)], body: &[u8]| {
        let mut raw = format!(
            "POST {target} HTTP/1.1\r\nHost: hooks.example.com\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            raw.push_str(&format!("{k}: {v}\r\n"));
        }
        raw.push_str("\r\n");
        let path = dir.path().join(name);
        std::fs::write(&path, [raw.as_bytes(), body].concat()).unwrap();
        path.display().to_string()
    };
    let cfg = config.display().to_string();
    let body = br#"{"action":"opened"}"#;
    let good = capture(
        "good.http",
        "/gh",
        &cli("github", "gh-secret-0123456789abcdef")
            .id("d-1")
            .headers(body),
        body,
    );
    let (code, out, err) = run_cli(
        &[
            "explain",
            "--config",
            &cfg,
            "--route",
            "gh",
            "--request",
            &good,
            "--from",
            "192.30.252.7",
        ],
        b"",
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("hmac    pass  key #1 matches (sha256 hex)"),
        "{out}"
    );
    assert!(
        out.contains("ip      pass  192.30.252.7 is in allow_ips"),
        "{out}"
    );
    // Tampered, from elsewhere: two failures, each with its reason.
    let tampered = capture(
        "bad.http",
        "/gh",
        &cli("github", "gh-secret-0123456789abcdef")
            .id("d-1")
            .headers(body),
        br#"{"action":"closed"}"#,
    );
    let (code, out, err) = run_cli(
        &[
            "explain",
            "--config",
            &cfg,
            "--route",
            "gh",
            "--request",
            &tampered,
            "--from",
            "203.0.113.9",
        ],
        b"",
        &[],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("ip      FAIL  203.0.113.9 is not in allow_ips"),
        "{out}"
    );
    assert!(
        out.contains("no key gives this signature (2 key(s) tried, sha256 hex)"),
        "{out}"
    );
    assert!(err.contains("would refuse"), "{err}");
    // A stale Slack request: the skew is told.
    let slack = capture(
        "stale.http",
        "/slack",
        &cli("slack", "slack-secret-0123456789abcdef")
            .timestamp(now() - 900)
            .headers(b"x=1"),
        b"x=1",
    );
    let (code, out, _) = run_cli(
        &[
            "explain",
            "--config",
            &cfg,
            "--route",
            "slack",
            "--request",
            &slack,
        ],
        b"",
        &[],
    );
    assert_eq!(code, 1);
    // 900 s, or a second more if the clock ticked between signing and explaining.
    assert!(
        out.contains("FAIL  timestamp 90") && out.contains(" s old, over the tolerance"),
        "{out}"
    );
    for secret in [
        "gh-secret-0123456789abcdef",
        "gh-old-secret-0123456789abcdef",
        "slack-secret-0123456789abcdef",
    ] {
        assert!(!out.contains(secret), "a secret was printed");
    }
}
