//! The console in a real browser (headless Chromium over the DevTools
//! protocol) against the real binary: log in, see a refused callback and
//! why, retry a dead letter and see it delivered; a wrong password and a
//! missing CSRF token refused. Screenshots of each page land in
//! target/console-screenshots/. And the JSON API, for scripts.

use std::time::{Duration, Instant};

use callgate_testkit as support;

use callgate::crypto::{Algorithm, Encoding};
use support::browser::Browser;
use support::raw::request;
use support::{sign, Gateway, Upstream};

const PASSWORD: &str = "console-password-0123456789";
const KEY: &str = "tolq-key-0123456789abcdef";
const TOKEN: &str = "orders-token-0123456789";

fn config(up: &Upstream, console: bool) -> String {
    let admin = match console {
        true => format!("[admin]\nconsole = {{ password = \"{PASSWORD}\" }}\nrequests_kept = 20\n"),
        false => String::new(),
    };
    format!(
        r#"
[listen]
http = "127.0.0.1:0"
admin = "127.0.0.1:0"

{admin}
[[route]]
name = "tolq"
path = "/tolq"
upstream = "{tolq}"
preset = "tolq"
allow_ips = ["127.0.0.1"]
hmac = {{ secrets = ["{KEY}"] }}

[[route]]
name = "orders"
path = "/orders"
upstream = "{orders}"
allow_ips = ["127.0.0.1"]
token = {{ secrets = ["{TOKEN}"] }}
delivery = "queue"
retry = {{ base = "100ms", cap = "100ms", max_attempts = 1 }}
"#,
        tolq = up.url("/tolq.php"),
        orders = up.url("/orders.php"),
    )
}

/// `METHOD target` on `addr` with extra head lines and a body: (status, head and body text).
async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    target: &str,
    head: &str,
    body: &[u8],
) -> (u16, String) {
    let head = format!("Host: localhost\r\nConnection: close\r\n{head}");
    request(addr, (method, target), &head, body).await
}

fn bearer() -> String {
    format!("Authorization: Bearer {PASSWORD}\r\n")
}

/// The JSON body of an admin API answer.
async fn api(gw: &Gateway, target: &str) -> serde_json::Value {
    let (status, text) = http(gw.admin.unwrap(), "GET", target, &bearer(), b"").await;
    assert_eq!(status, 200, "{text}");
    let body = text.split_once("\r\n\r\n").unwrap().1;
    serde_json::from_str(body).unwrap()
}

/// A refused Tolq callback (wrong signature) and a dead queued one.
async fn traffic(gw: &Gateway, up: &Upstream) {
    let body = br#"{"order":42,"status":"finished"}"#;
    let forged = format!(
        "X-Tolq-Signature: {}\r\nContent-Type: application/json\r\n",
        sign(Algorithm::Sha1, "not-the-key-at-all", Encoding::Hex, body)
    );
    let (status, _) = http(gw.http.unwrap(), "POST", "/tolq", &forged, body).await;
    assert_eq!(status, 403);
    // The receiver refuses it (4xx): a dead letter at once.
    up.script(&[400]);
    let target = format!("/orders?token={TOKEN}");
    let (status, _) = http(gw.http.unwrap(), "POST", &target, "", b"order=7").await;
    assert_eq!(status, 202);
    let deadline = Instant::now() + Duration::from_secs(10);
    while api(gw, "/api/queue?state=dead")
        .await
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the callback never went dead");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_real_browser_the_operator_sees_why_and_retries_a_dead_letter() {
    let up = Upstream::recording().await;
    let gw = Gateway::start_raw(&config(&up, true), &[]);
    traffic(&gw, &up).await;
    let admin = format!("http://{}", gw.admin.unwrap());
    let mut b = Browser::launch().await;
    let mut shots = Vec::new();

    // Not logged in: the login form, 401.
    b.goto(&format!("{admin}/")).await;
    assert!(b.text().await.contains("Password"));
    shots.push(b.screenshot("1-login").await);

    // A wrong password is refused.
    let fill = |p: &str| {
        format!("document.querySelector('input[name=password]').value = {p:?}; document.getElementById('login').submit()")
    };
    b.submit(&fill("not-the-password")).await;
    assert!(b.text().await.contains("wrong password"));
    shots.push(b.screenshot("2-login-wrong").await);

    // The right one: the overview.
    b.submit(&fill(PASSWORD)).await;
    let text = b.text().await;
    assert!(
        text.contains("Overview") && text.contains("orders"),
        "{text}"
    );
    let bars = b
        .eval("document.querySelectorAll('svg.chart rect').length")
        .await;
    assert!(
        bars.as_u64().unwrap() >= 2,
        "the chart shows the refused and the queued: {bars}"
    );
    let cookie_js = b.eval("document.cookie").await;
    assert_eq!(
        cookie_js, "",
        "the session cookie is HttpOnly: script cannot read it"
    );
    shots.push(b.screenshot("3-overview").await);

    // The refused callback, and why.
    b.goto(&format!("{admin}/requests?outcome=refused")).await;
    let text = b.text().await;
    assert!(text.contains("tolq") && text.contains("hmac"), "{text}");
    shots.push(b.screenshot("4-requests-refused").await);
    b.submit("document.querySelector('#requests a').click()")
        .await;
    let verdicts = b
        .eval("[...document.querySelectorAll('#checks tr')].map(r => r.innerText).join('\\n')")
        .await;
    let verdicts = verdicts.as_str().unwrap();
    assert!(verdicts.contains("ip\tpass"), "{verdicts}");
    assert!(
        verdicts.contains("hmac\tfail\tsignature does not match the body: no key gives"),
        "{verdicts}"
    );
    assert!(!b.text().await.contains(KEY), "a secret on the page");
    shots.push(b.screenshot("5-request-refused").await);

    // The dead letter; a retry without its CSRF token is refused.
    b.goto(&format!("{admin}/queue?state=dead")).await;
    assert!(b.text().await.contains("dead"));
    shots.push(b.screenshot("6-queue-dead").await);
    b.submit("const f = document.querySelector('form[action$=\"/retry\"]'); f.querySelector('input[name=csrf]').remove(); f.submit()")
        .await;
    assert!(b.text().await.contains("missing or wrong CSRF token"));
    assert_eq!(
        api(&gw, "/api/queue?state=dead")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // With it: delivered.
    up.script(&[]);
    b.goto(&format!("{admin}/queue?state=dead")).await;
    b.submit("document.querySelector('form[action$=\"/retry\"]').submit()")
        .await;
    assert!(b.text().await.contains("will be delivered again"));
    let deadline = Instant::now() + Duration::from_secs(10);
    // The first attempt (refused 400) and the retry.
    let orders = || {
        up.requests()
            .iter()
            .filter(|r| r.uri.path() == "/orders.php")
            .count()
    };
    while orders() < 2 {
        assert!(
            Instant::now() < deadline,
            "the retried callback was not delivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.goto(&format!("{admin}/queue")).await;
    assert!(
        b.text().await.contains("0 callback(s)"),
        "{}",
        b.text().await
    );
    shots.push(b.screenshot("7-queue-after-retry").await);

    // Logging out ends the session.
    b.submit("document.querySelector('nav form').submit()")
        .await;
    assert!(b.location().await.ends_with("/login"));
    b.goto(&format!("{admin}/queue")).await;
    assert!(b.text().await.contains("Password"));
    for s in &shots {
        println!("screenshot: {}", s.display());
        assert!(std::fs::metadata(s).unwrap().len() > 1000);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_api_needs_the_password_or_a_session_with_its_csrf_token() {
    let up = Upstream::recording().await;
    let gw = Gateway::start_raw(&config(&up, true), &[]);
    traffic(&gw, &up).await;
    let admin = gw.admin.unwrap();
    for target in ["/api/requests", "/api/queue", "/api/overview", "/"] {
        let (status, _) = http(admin, "GET", target, "", b"").await;
        assert_eq!(status, 401, "{target}");
        let wrong = "Authorization: Bearer not-the-password\r\n";
        let (status, _) = http(admin, "GET", target, wrong, b"").await;
        assert_eq!(status, 401, "{target}");
    }
    // The contract's fields; the token REDACTED; newest first; filters.
    let all = api(&gw, "/api/requests").await;
    let list = all.as_array().unwrap();
    assert!(list.len() >= 2);
    let orders = list.iter().find(|e| e["route"] == "orders").unwrap();
    assert_eq!(orders["target"], "/orders?token=REDACTED");
    assert_eq!(orders["outcome"], "queued");
    assert!(
        orders.get("checks").is_none(),
        "only refusals carry the breakdown"
    );
    let refused = api(&gw, "/api/requests?route=tolq&outcome=refused").await;
    let refused = refused.as_array().unwrap();
    assert_eq!(refused.len(), 1);
    for field in [
        "time", "route", "client", "method", "target", "outcome", "reason", "status", "checks",
    ] {
        assert!(refused[0].get(field).is_some(), "{field}");
    }
    let raw = serde_json::to_string(&all).unwrap();
    assert!(
        !raw.contains(TOKEN) && !raw.contains(KEY),
        "a secret in the API"
    );

    // The queue, and an action by bearer (no CSRF for scripts).
    let dead = api(&gw, "/api/queue?state=dead").await;
    let id = dead[0]["id"].as_i64().unwrap();
    let one = api(&gw, &format!("/api/queue/{id}")).await;
    assert_eq!(one["route"], "orders");
    assert!(
        one["target"].as_str().unwrap().contains("REDACTED")
            || !one["target"].as_str().unwrap().contains(TOKEN)
    );
    let (status, text) = http(
        admin,
        "POST",
        &format!("/api/queue/{id}/drop"),
        &bearer(),
        b"",
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains(&format!("callback {id} dropped")));
    let (status, _) = http(
        admin,
        "POST",
        &format!("/api/queue/{id}/drop"),
        &bearer(),
        b"",
    )
    .await;
    assert_eq!(status, 404);

    // A session's POST without its CSRF token: 403; with it: done.
    let (status, text) = http(
        admin,
        "POST",
        "/login",
        "Content-Type: application/x-www-form-urlencoded\r\n",
        format!("password={PASSWORD}").as_bytes(),
    )
    .await;
    assert_eq!(status, 303, "{text}");
    let cookie_line = text
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap();
    assert!(
        cookie_line.contains("HttpOnly") && cookie_line.contains("SameSite=Strict"),
        "{cookie_line}"
    );
    let session = cookie_line
        .split_once(':')
        .unwrap()
        .1
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let with_cookie = format!("Cookie: {session}\r\n");
    let (status, _) = http(admin, "POST", "/api/queue/retry-dead", &with_cookie, b"").await;
    assert_eq!(status, 403, "no CSRF token");
    let (_, page) = http(admin, "GET", "/queue", &with_cookie, b"").await;
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let with_csrf = format!("{with_cookie}X-CSRF-Token: {csrf}\r\n");
    let (status, text) = http(admin, "POST", "/api/queue/retry-dead", &with_csrf, b"").await;
    assert_eq!(status, 200, "{text}");
    // Every answer forbids scripts and styles from anywhere else.
    assert!(page
        .to_ascii_lowercase()
        .contains("content-security-policy: default-src 'none'; script-src 'self'"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_password_there_is_no_console_and_nothing_is_recorded() {
    let up = Upstream::recording().await;
    let gw = Gateway::start_raw(&config(&up, false), &[]);
    let admin = gw.admin.unwrap();
    for target in ["/", "/login", "/api/requests"] {
        let (status, _) = http(admin, "GET", target, &bearer(), b"").await;
        assert_eq!(status, 404, "{target}");
    }
    let (status, _) = http(admin, "GET", "/metrics", "", b"").await;
    assert_eq!(status, 200);
}

#[test]
fn a_console_without_the_admin_listener_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        format!("[listen]\nhttp = \"127.0.0.1:0\"\n[admin]\nconsole = {{ password = \"{PASSWORD}\" }}\n[[route]]\nname = \"r\"\npath = \"/r\"\nupstream = \"http://127.0.0.1:9/\"\nallow_ips = [\"127.0.0.1\"]\n"),
    )
    .unwrap();
    let (code, _, err) =
        support::gateway::run_cli(&["check", "--config", path.to_str().unwrap()], b"", &[]);
    assert_eq!(code, 1);
    assert!(err.contains("[listen]") && err.contains("admin ="), "{err}");
    assert!(!err.contains(PASSWORD));
}
