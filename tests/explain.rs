//! `callgate explain`: a captured request judged against a route, check by
//! check, with the reason for each failure and never a secret.

use callgate_testkit as support;

use support::gateway::run_cli;
use support::now;
use support::signers::cli;

/// `callgate explain --config CFG --route ROUTE --request FILE [--from IP]`.
fn explain(cfg: &str, route: &str, request: &str, from: Option<&str>) -> (i32, String, String) {
    let mut args = vec![
        "explain",
        "--config",
        cfg,
        "--route",
        route,
        "--request",
        request,
    ];
    if let Some(ip) = from {
        args.extend(["--from", ip]);
    }
    run_cli(&args, b"", &[])
}

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
    let (code, out, err) = explain(&cfg, "gh", &good, Some("192.30.252.7"));
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
    let (code, out, err) = explain(&cfg, "gh", &tampered, Some("203.0.113.9"));
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
    let (code, out, _) = explain(&cfg, "slack", &slack, None);
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

/// What the console exports of a refused request (`GET /api/requests/ID`)
/// is what `explain --request` reads: the same verdicts, the client address
/// the gateway saw, and the token (never kept) told as unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_reads_a_refusal_the_console_exported() {
    use support::raw::exchange;
    let key = "tolq-key-0123456789abcdef";
    let token = "gengo-token-0123456789ab";
    let password = "console-password-0123456789";
    let text = format!(
        "[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n[admin]\nconsole = {{ password = \"{password}\" }}\n\
[[route]]\nname = \"tolq\"\npath = \"/tolq\"\nupstream = \"http://127.0.0.1:9/\"\npreset = \"tolq\"\nallow_ips = [\"127.0.0.1\"]\nhmac = {{ secrets = [\"{key}\"] }}\n\
[[route]]\nname = \"gengo\"\npath = \"/gengo\"\nupstream = \"http://127.0.0.1:9/\"\nallow_ips = [\"127.0.0.2\"]\ntoken = {{ secrets = [\"{token}\"] }}\n"
    );
    let gw = support::Gateway::start_raw(&text, &[]);
    let body = br#"{"order":1}"#;
    let forged = [
        format!(
            "POST /tolq HTTP/1.1\r\nHost: gw\r\nX-Tolq-Signature: {}\r\nContent-Length: {}\r\n\r\n",
            "ab".repeat(20),
            body.len()
        )
        .as_bytes(),
        body,
    ]
    .concat();
    assert_eq!(exchange(gw.http.unwrap(), &forged).await.0, [403]);
    let wrong_ip =
        format!("POST /gengo?token={token} HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(
        exchange(gw.http.unwrap(), wrong_ip.as_bytes()).await.0,
        [403]
    );
    // The console's ids, oldest first (newest first in the list).
    let list = format!("GET /api/requests HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {password}\r\nConnection: close\r\n\r\n");
    let (status, text) = exchange(gw.admin.unwrap(), list.as_bytes()).await;
    assert_eq!(status, [200], "{text}");
    let listed: serde_json::Value =
        serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap();
    let ids: Vec<u64> = listed
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{listed}");
    let dir = tempfile::tempdir().unwrap();
    let export = |id: u64| {
        let req = format!("GET /api/requests/{id} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {password}\r\nConnection: close\r\n\r\n");
        let gw_admin = gw.admin.unwrap();
        let path = dir.path().join(format!("{id}.json"));
        async move {
            let (status, text) = exchange(gw_admin, req.as_bytes()).await;
            assert_eq!(status, [200], "{text}");
            std::fs::write(&path, text.split_once("\r\n\r\n").unwrap().1).unwrap();
            path.display().to_string()
        }
    };
    let tolq = export(ids[0]).await;
    let gengo = export(ids[1]).await;
    assert!(
        !std::fs::read_to_string(&gengo).unwrap().contains(token),
        "the token was exported"
    );
    let cfg = gw.config_path.display().to_string();
    let (code, out, err) = explain(&cfg, "tolq", &tolq, None);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("ip      pass  127.0.0.1 is in allow_ips"),
        "{out}"
    );
    assert!(
        out.contains("hmac    FAIL  signature does not match the body"),
        "{out}"
    );
    let (code, out, err) = explain(&cfg, "gengo", &gengo, None);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("ip      FAIL  127.0.0.1 is not in allow_ips"),
        "{out}"
    );
    assert!(
        out.contains("token   ?     the capture has the token REDACTED"),
        "{out}"
    );
    assert!(!out.contains(token) && !err.contains(token));
}

/// README's capture recipe, run as written (its port, paths and the binary
/// substituted): python3 captures the request curl sends, and `explain`
/// accepts it. No nc or socat, which a fresh machine lacks.
#[test]
fn the_readmes_capture_recipe_works_as_written() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let recipe = readme
        .split("```sh\n")
        .filter_map(|b| b.split("\n```").next())
        .find(|b| b.contains("python3 - 9099 > request.http"))
        .expect("the capture recipe");
    assert!(!recipe.contains("nc -l") && !recipe.contains("socat"));
    let port = support::upstream::closed_port().port().to_string();
    let binary = support::gateway::binary();
    let script = recipe
        .replace("9099", &port)
        .replace(
            "config.example.toml",
            &format!("{root}/config.example.toml"),
        )
        .replace("callgate explain", &format!("{binary} explain"));
    let body = r#"{"id":1,"status":"finished"}"#;
    let (_, sig, _) = run_cli(
        &["sign", "--secret", "demo-tolq-api-key-CHANGE-ME"],
        body.as_bytes(),
        &[],
    );
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("timeout")
        .args(["90", "bash", "-c", &script])
        .current_dir(dir.path())
        .env("SIG", sig.trim())
        .env("BODY", body)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("would accept"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
