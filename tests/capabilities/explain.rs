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
    let list = format!("GET /api/requests HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {password}\r\nConnection: close\r\n\r\n");
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
        let req = format!("GET /api/requests/{id} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {password}\r\nConnection: close\r\n\r\n");
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

/// The console's JSON of request `id`, and the admin API's answer for it.
async fn exported(gw: &support::Gateway, password: &str, id: u64) -> serde_json::Value {
    let req = format!("GET /api/requests/{id} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {password}\r\nConnection: close\r\n\r\n");
    let (status, text) = support::raw::exchange(gw.admin.unwrap(), req.as_bytes()).await;
    assert_eq!(status, [200], "{text}");
    serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap()
}

/// The ids the console keeps, newest first.
async fn listed(gw: &support::Gateway, password: &str) -> Vec<u64> {
    let req = format!("GET /api/requests HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {password}\r\nConnection: close\r\n\r\n");
    let (status, text) = support::raw::exchange(gw.admin.unwrap(), req.as_bytes()).await;
    assert_eq!(status, [200], "{text}");
    let v: serde_json::Value =
        serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect()
}

/// A Discord interaction signed with `seed`'s Ed25519 key, as raw HTTP/1.1.
fn discord_interaction(seed: u8, body: &[u8]) -> Vec<u8> {
    use ring::signature::Ed25519KeyPair;
    let ts = now().to_string();
    let key = Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap();
    let sig = hex::encode(key.sign(&[ts.as_bytes(), body].concat()).as_ref());
    let head = format!(
        "POST /discord HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nX-Signature-Ed25519: {sig}\r\nX-Signature-Timestamp: {ts}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    [head.as_bytes(), body].concat()
}

/// The gateway and `explain` agree on a public-key route: a forged Ed25519
/// signature is 403 from the gateway, a refusal naming the public-key
/// check from `explain`, and the console's breakdown says the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_ed25519_request_is_refused_by_explain_and_the_console_as_by_the_gateway() {
    use ring::signature::{Ed25519KeyPair, KeyPair};
    let password = "console-password-0123456789";
    let public = Ed25519KeyPair::from_seed_unchecked(&[7; 32]).unwrap();
    let text = format!(
        "[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n[admin]\nconsole = {{ password = \"{password}\" }}\n\
[[route]]\nname = \"discord\"\npath = \"/discord\"\nupstream = \"http://127.0.0.1:9/\"\npreset = \"discord\"\nsignature = {{ public_keys = [\"{}\"] }}\n",
        hex::encode(public.public_key().as_ref())
    );
    let gw = support::Gateway::start_raw(&text, &[]);
    let body = br#"{"type":2,"data":{"name":"ban","options":[{"value":"everyone"}]}}"#;
    let forged = discord_interaction(9, body);
    let (status, answer) = support::raw::exchange(gw.http.unwrap(), &forged).await;
    assert_eq!(status, [403], "{answer}");
    // The console's breakdown names the public-key check, failed.
    let ids = listed(&gw, password).await;
    let entry = exported(&gw, password, ids[0]).await;
    let checks = entry["checks"].as_array().unwrap();
    let line = |name: &str| checks.iter().find(|c| c["check"] == name).cloned();
    let pk = line("public_key").unwrap_or_else(|| panic!("no public_key line: {entry}"));
    assert_eq!(pk["verdict"], "fail", "{entry}");
    assert!(
        pk["why"].as_str().unwrap().contains("does not match"),
        "{entry}"
    );
    assert_eq!(line("timestamp").unwrap()["verdict"], "pass", "{entry}");
    // Every check this route runs has a verdict; none is "off".
    for name in ["public_key", "timestamp", "params", "replay"] {
        let v = line(name).unwrap_or_else(|| panic!("no {name} line: {entry}"));
        assert_ne!(v["verdict"], "off", "{entry}");
    }
    // `explain`, on the raw capture and on the console's export.
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("forged.http");
    std::fs::write(&raw, &forged).unwrap();
    let cfg = gw.config_path.display().to_string();
    let (code, out, err) = explain(
        &cfg,
        "discord",
        &raw.display().to_string(),
        Some("127.0.0.1"),
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("public_key FAIL  signature does not match"),
        "{out}"
    );
    assert!(err.contains("would refuse"), "{err}");
    let json = dir.path().join("forged.json");
    std::fs::write(&json, entry.to_string()).unwrap();
    let (code, out, err) = explain(&cfg, "discord", &json.display().to_string(), None);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("public_key FAIL"), "{out}");
    // Signed with the real key: both accept it (the receiver is down: 502).
    let good = discord_interaction(7, body);
    std::fs::write(&raw, &good).unwrap();
    let (code, out, err) = explain(
        &cfg,
        "discord",
        &raw.display().to_string(),
        Some("127.0.0.1"),
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("public_key pass"), "{out}");
    assert!(out.contains("would accept"), "{out}");
    let (status, _) = support::raw::exchange(gw.http.unwrap(), &good).await;
    assert_ne!(status, [403]);
}

/// The handshakes the gateway answers itself, `explain` calls answered as
/// a handshake (exit 0); a wrong verify token is refused by both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_says_answered_as_a_handshake_where_the_gateway_answers_one() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let token = "asana-token-0123456789ab";
    let text = format!(
        "[listen]\nhttp = \"127.0.0.1:0\"\n\
[[route]]\nname = \"meta\"\npath = \"/meta\"\nupstream = \"http://127.0.0.1:9/\"\npreset = \"meta\"\nhmac = {{ secrets = [\"meta-app-secret-0123456789\"] }}\nhandshake = {{ verify_token = \"meta-verify-token-0123\" }}\n\
[[route]]\nname = \"asana\"\npath = \"/asana\"\nupstream = \"http://127.0.0.1:9/\"\npreset = \"asana\"\ntoken = {{ secrets = [\"{token}\"] }}\nhandshake = {{ secret_file = \"{}/asana.secrets\" }}\n",
        state.display()
    );
    let gw = support::Gateway::start_raw(&text, &[]);
    let cfg = gw.config_path.display().to_string();
    let meta = "GET /meta?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meta-verify-token-0123 HTTP/1.1\r\nHost: gw\r\n\r\n";
    let wrong = meta.replace("meta-verify-token-0123", "a-guess");
    let asana = format!("POST /asana?token={token} HTTP/1.1\r\nHost: gw\r\nX-Hook-Secret: b537207f20cbfa02357cf448134da559e8bd39d61597dcd5631b8012eae53e81\r\nContent-Length: 0\r\n\r\n");
    for (route, name, raw, status, code) in [
        ("meta", "meta.http", meta.to_owned(), 200, 0),
        ("meta", "wrong.http", wrong, 403, 1),
        ("asana", "asana.http", asana, 200, 0),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &raw).unwrap();
        let (c, out, err) = explain(&cfg, route, &path.display().to_string(), Some("127.0.0.1"));
        assert_eq!(c, code, "{name}: {out}{err}");
        assert_eq!(
            out.contains("answered as a handshake"),
            code == 0,
            "{name}: {out}"
        );
        let wire = raw.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n");
        let (got, answer) = support::raw::exchange(gw.http.unwrap(), wire.as_bytes()).await;
        assert_eq!(got, [status], "{name}: {answer}");
    }
}

/// Without `--from`, an allow_ips route's request is not "accepted": the
/// ip check cannot be decided, and explain says so (exit 1).
#[test]
fn explain_without_from_says_it_cannot_decide_the_ip_check() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("callgate.toml");
    std::fs::write(
        &config,
        "[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"gh\"\npath = \"/gh\"\nupstream = \"http://127.0.0.1:9/\"\npreset = \"github\"\nallow_ips = [\"192.30.252.0/22\"]\nhmac = { secrets = [\"gh-secret-0123456789abcdef\"] }\n",
    )
    .unwrap();
    let body = br#"{"action":"opened"}"#;
    let mut raw = format!(
        "POST /gh HTTP/1.1\r\nHost: hooks.example.com\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in cli("github", "gh-secret-0123456789abcdef")
        .id("d-1")
        .headers(body)
    {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    let path = dir.path().join("good.http");
    std::fs::write(&path, [raw.as_bytes(), body].concat()).unwrap();
    let cfg = config.display().to_string();
    let (code, out, err) = explain(&cfg, "gh", &path.display().to_string(), None);
    assert_eq!(code, 1, "{out}{err}");
    assert!(!out.contains("would accept"), "{out}");
    assert!(err.contains("cannot decide") && err.contains("ip"), "{err}");
    assert!(
        out.contains("ip      ?     cannot decide without the source address"),
        "{out}"
    );
    let (code, out, err) = explain(
        &cfg,
        "gh",
        &path.display().to_string(),
        Some("192.30.252.7"),
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("would accept"), "{out}");
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
