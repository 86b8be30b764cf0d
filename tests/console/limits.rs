//! The console under a flood and a guesser (issue 42), against the real
//! binary and, where a browser is involved, real headless Chromium:
//! every page and API answer stays under 2 MiB and loads fast after a
//! flood of large refused requests; a guesser gets 5 tries a minute while
//! the operator logs in at once; a DNS-rebinding page gets 421; a password
//! change ends the sessions; `/healthz` says ok or unavailable only, and
//! answers while `max_connections` is full.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use callgate_testkit as support;

use callgate::crypto::{Algorithm, Encoding};
use support::browser::Browser;
use support::raw::{exchange, request_bytes, talk};
use support::{sign, Gateway, Upstream};

const PASSWORD: &str = "console-password-0123456789";
const KEY: &str = "tolq-key-0123456789abcdef";
/// What the issue's limits say.
const MAX_ANSWER: usize = 2 * 1024 * 1024;
/// The RSS bound README states for a flooded console.
const RSS_BOUND_MB: u64 = 200;

fn config(up: &Upstream, kept: usize, extra: &str) -> String {
    format!(
        r#"
[listen]
http = "127.0.0.1:0"
admin = "127.0.0.1:0"

[gateway]
max_header_bytes = 65536
{extra}

[admin]
console = {{ password = "{PASSWORD}" }}
requests_kept = {kept}

[[route]]
name = "tolq"
path = "/tolq"
upstream = "{tolq}"
preset = "tolq"
allow_ips = ["127.0.0.1"]
hmac = {{ secrets = ["{KEY}"] }}
"#,
        tolq = up.url("/tolq.php"),
    )
}

/// The gateway's log at warn, but for the lines that say where it listens
/// (every request is logged at info: a flood would fill the test's memory).
fn quiet(text: &str) -> Gateway {
    Gateway::start_raw(text, &[("RUST_LOG", "warn,callgate::server=info")])
}

/// `METHOD target` with extra head lines and a body, from `from` if given:
/// (status, head and body text).
async fn http_from(
    from: Option<&str>,
    addr: SocketAddr,
    (method, target): (&str, &str),
    head: &str,
    body: &[u8],
) -> (u16, String) {
    let head = format!("Host: 127.0.0.1\r\nConnection: close\r\n{head}");
    let req = request_bytes(method, target, &head, body);
    let (statuses, text) = match from {
        None => exchange(addr, &req).await,
        Some(ip) => {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            s.bind(format!("{ip}:0").parse().unwrap()).unwrap();
            talk(s.connect(addr).await.unwrap(), &req).await
        }
    };
    (statuses.first().copied().unwrap_or(0), text)
}

async fn http(addr: SocketAddr, method: &str, target: &str, head: &str) -> (u16, String) {
    http_from(None, addr, (method, target), head, b"").await
}

fn bearer(password: &str) -> String {
    format!("Authorization: Bearer {password}\r\n")
}

fn form() -> &'static str {
    "Content-Type: application/x-www-form-urlencoded\r\n"
}

fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let head = text.split("\r\n\r\n").next()?;
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The session cookie a 303 answer to POST /login sets.
fn session_of(text: &str) -> String {
    header(text, "set-cookie")
        .unwrap_or_else(|| panic!("no cookie: {text}"))
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

fn rss_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

/// A flood of large refused requests over a few pipelining connections:
/// no-route requests with 15 KB targets full of characters HTML escapes,
/// and forged Tolq callbacks with 40 KB of headers and 16 KB bodies.
async fn flood(gw: &Gateway, requests: usize, callback_every: usize) {
    // What a URI may carry that HTML escapes five-fold (one parameter:
    // thousands of them would cost a debug build more than the console).
    let nasty = "'".repeat(15_000);
    let no_route = format!("GET /nothing?q={nasty} HTTP/1.1\r\nHost: gw\r\n\r\n").into_bytes();
    let body = "&".repeat(16 * 1024);
    let forged = sign(
        Algorithm::Sha1,
        "not-the-key",
        Encoding::Hex,
        body.as_bytes(),
    );
    let headers: String = (0..40)
        .map(|i| format!("X-Junk-{i}: {}\r\n", "&<".repeat(500)))
        .collect();
    let callback = format!(
        "POST /tolq?x={} HTTP/1.1\r\nHost: gw\r\nX-Tolq-Signature: {forged}\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        "'".repeat(4_000),
        body.len()
    )
    .into_bytes();
    let addr = gw.http.unwrap();
    let per_conn = 50;
    let mut batch = Vec::new();
    for i in 0..per_conn {
        let one = match i % callback_every {
            0 => &callback,
            _ => &no_route,
        };
        batch.extend_from_slice(one);
    }
    let batch = std::sync::Arc::new(batch);
    let mut tasks = tokio::task::JoinSet::new();
    let mut answered = 0;
    while answered < requests {
        while tasks.len() < 8 {
            let batch = batch.clone();
            tasks.spawn(async move { pipelined(addr, &batch).await });
        }
        let n = tasks.join_next().await.unwrap().unwrap();
        assert!(n > 0, "a connection got no answer");
        answered += n;
    }
    while let Some(n) = tasks.join_next().await {
        answered += n.unwrap();
    }
    println!("  {answered} answered");
}

/// Write `batch` (pipelined requests) and read every answer; how many.
async fn pipelined(addr: SocketAddr, batch: &[u8]) -> usize {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = tcp.split();
    let write = async {
        let _ = wr.write_all(batch).await;
        let _ = wr.shutdown().await;
    };
    let read = async {
        let mut buf = vec![0u8; 65536];
        let mut answers = 0;
        let mut tail = Vec::new();
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(k) => {
                    tail.extend_from_slice(&buf[..k]);
                    let text = String::from_utf8_lossy(&tail);
                    answers += text.matches("HTTP/1.1 ").count();
                    let keep = tail.len().saturating_sub(8);
                    tail.drain(..keep);
                }
            }
        }
        answers
    };
    let ((), answers) = tokio::join!(write, read);
    answers
}

/// Every page and API answer, opened in Chromium (logged in): for each,
/// (target, bytes, load ms).
async fn open_everything(gw: &Gateway) -> Vec<(String, usize, f64)> {
    let admin = format!("http://{}", gw.admin.unwrap());
    let newest = {
        let (_, text) = http(
            gw.admin.unwrap(),
            "GET",
            "/api/requests?limit=1",
            &bearer(PASSWORD),
        )
        .await;
        let body = text.split_once("\r\n\r\n").unwrap().1;
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        v[0]["id"].as_u64().unwrap()
    };
    let refused = {
        let t = "/api/requests?limit=1&outcome=refused&route=tolq";
        let (_, text) = http(gw.admin.unwrap(), "GET", t, &bearer(PASSWORD)).await;
        let v: serde_json::Value =
            serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap();
        v[0]["id"].as_u64().unwrap()
    };
    let mut b = Browser::launch().await;
    b.goto(&format!("{admin}/login")).await;
    b.submit(&format!("document.querySelector('input[name=password]').value = {PASSWORD:?}; document.getElementById('login').submit()")).await;
    assert!(b.text().await.contains("Overview"));
    let targets = [
        "/".to_owned(),
        "/requests".to_owned(),
        "/requests?limit=500".to_owned(),
        "/requests?outcome=refused&limit=500".to_owned(),
        format!("/requests?before={}&limit=500", newest - 100),
        format!("/requests/{refused}"),
        "/queue".to_owned(),
        "/api/overview".to_owned(),
        "/api/requests".to_owned(),
        "/api/requests?limit=500".to_owned(),
        "/api/requests?outcome=refused&limit=100000".to_owned(),
        format!("/api/requests/{refused}"),
        "/api/queue".to_owned(),
        "/api/health".to_owned(),
    ];
    let mut seen = Vec::new();
    for t in targets {
        let started = Instant::now();
        b.goto(&format!("{admin}{t}")).await;
        let wall = started.elapsed().as_secs_f64() * 1000.0;
        let nav = b
            .eval("(() => { const n = performance.getEntriesByType('navigation')[0]; return [n.responseStatus, n.decodedBodySize, n.loadEventEnd - n.startTime, n.responseEnd - n.startTime]; })()")
            .await;
        let status = nav[0].as_u64().unwrap();
        let bytes = nav[1].as_u64().unwrap() as usize;
        let ms = nav[2].as_f64().unwrap();
        let answered = nav[3].as_f64().unwrap();
        assert_eq!(status, 200, "{t}");
        assert!(bytes <= MAX_ANSWER, "{t}: {bytes} bytes");
        println!("  {t}: {bytes} bytes, answered in {answered:.0} ms, loaded in {ms:.0} ms (navigation {wall:.0} ms)");
        seen.push((t, bytes, ms));
    }
    seen
}

async fn flooded(kept: usize, requests: usize, callback_every: usize) {
    let up = Upstream::recording().await;
    let gw = quiet(&config(&up, kept, ""));
    let pid = gw.pid();
    let before = rss_kb(pid, "VmRSS:");
    let started = Instant::now();
    flood(&gw, requests, callback_every).await;
    let flood_s = started.elapsed().as_secs_f64();
    let after_flood = rss_kb(pid, "VmRSS:");
    println!(
        "requests_kept = {kept}: {requests} large refused requests in {flood_s:.1} s; RSS {} MB before, {} MB after the flood",
        before / 1024,
        after_flood / 1024
    );
    // Paging walks the whole ring, ids strictly decreasing.
    let admin = gw.admin.unwrap();
    let mut target = "/api/requests?limit=500".to_owned();
    let (mut kept_seen, mut last_id, mut pages) = (0, u64::MAX, 0);
    loop {
        let (status, text) = http(admin, "GET", &target, &bearer(PASSWORD)).await;
        assert_eq!(status, 200);
        let body = text.split_once("\r\n\r\n").unwrap().1;
        assert!(body.len() <= MAX_ANSWER);
        let list: Vec<serde_json::Value> = serde_json::from_str(body).unwrap();
        for e in &list {
            let id = e["id"].as_u64().unwrap();
            assert!(id < last_id, "ids newest first");
            last_id = id;
            assert!(e["target"].as_str().unwrap().len() <= 4096);
        }
        assert!(
            list.iter().any(|e| e["cut"] == true),
            "a cut is marked: {}",
            list.first()
                .map(|e| e.to_string())
                .unwrap_or_default()
                .chars()
                .take(3000)
                .collect::<String>()
        );
        kept_seen += list.len();
        pages += 1;
        match header(&text, "link") {
            Some(link) => {
                target = link
                    .strip_prefix('<')
                    .and_then(|l| l.split_once(">; rel=\"next\""))
                    .unwrap()
                    .0
                    .to_owned();
                assert!(target.starts_with("/api/requests?before="), "{target}");
            }
            None => break,
        }
    }
    println!("  the ring holds {kept_seen} entries ({pages} API pages)");
    let shown = open_everything(&gw).await;
    let after_pages = rss_kb(pid, "VmRSS:");
    let peak = rss_kb(pid, "VmHWM:");
    let largest = shown.iter().map(|s| s.1).max().unwrap();
    let slowest = shown.iter().map(|s| s.2).fold(0.0, f64::max);
    println!(
        "requests_kept = {kept}: RSS {} MB after every page (peak {} MB); largest answer {largest} bytes; slowest load {slowest:.0} ms",
        after_pages / 1024,
        peak / 1024
    );
    assert!(
        peak / 1024 < RSS_BOUND_MB,
        "peak RSS {} MB over the README's bound",
        peak / 1024
    );
    // Alive, and still serving.
    let (status, _) = http(admin, "GET", "/healthz", "").await;
    assert_eq!(status, 200);
}

/// Issue 42 item 1 at the default `requests_kept`: on main the Requests
/// page was 75 MB after such a flood.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_at_the_default_requests_kept_leaves_every_page_small() {
    flooded(1_000, 2_000, 2).await;
}

/// Issue 42 item 1 at the maximum `requests_kept`: on main the process
/// aborted building the page. Large entries fill the ring's 64 MiB before
/// its 100,000 places: 20,000 of them (one in ten a forged callback with
/// 40 KB of headers and a 16 KB body) fill it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_at_the_maximum_requests_kept_leaves_every_page_small() {
    flooded(100_000, 20_000, 10).await;
}

/// Issue 42 items 2 and 3: wrong bearers and wrong passwords count alike,
/// per address; the guesser gets 5 tries a minute, the operator logs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guesser_gets_five_tries_a_minute_and_the_operator_logs_in_at_once() {
    let up = Upstream::recording().await;
    let gw = quiet(&config(&up, 100, ""));
    let admin = gw.admin.unwrap();
    let guesser = Some("127.0.0.2");
    let mut answered = Vec::new();
    for i in 0..20 {
        let (status, text) = match i % 2 {
            0 => {
                let h = bearer(&format!("guess-{i}"));
                http_from(guesser, admin, ("GET", "/api/requests"), &h, b"").await
            }
            _ => {
                let body = format!("password=guess-{i}");
                http_from(guesser, admin, ("POST", "/login"), form(), body.as_bytes()).await
            }
        };
        if status == 429 {
            let wait: u64 = header(&text, "retry-after").unwrap().parse().unwrap();
            assert!((1..=60).contains(&wait), "{wait}");
        }
        answered.push(status);
    }
    let tries = answered.iter().filter(|s| **s == 401).count();
    println!("the guesser's 20 tries: {answered:?}");
    assert_eq!(tries, 5, "{answered:?}");
    assert!(answered[5..].iter().all(|s| *s == 429), "{answered:?}");
    // Even the right password, from the guesser's address: refused unread.
    let right = format!("password={PASSWORD}");
    let (status, _) = http_from(guesser, admin, ("POST", "/login"), form(), right.as_bytes()).await;
    assert_eq!(status, 429);
    // The operator, at once, by form and by bearer.
    let (status, text) = http_from(None, admin, ("POST", "/login"), form(), right.as_bytes()).await;
    assert_eq!(status, 303, "{text}");
    let (status, _) = http(admin, "GET", "/api/requests", &bearer(PASSWORD)).await;
    assert_eq!(status, 200);
}

/// Issue 42 item 3: a page of another origin on loopback, in the
/// operator's own browser (same address), posts wrong passwords: they are
/// refused unread and never lock the operator out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_site_page_cannot_lock_the_operator_out() {
    let up = Upstream::recording().await;
    let gw = quiet(&config(&up, 100, ""));
    let admin = gw.admin.unwrap();
    let mut b = Browser::launch().await;
    // Another origin: the gateway's public listener (a 404 page will do).
    b.goto(&format!(
        "http://localhost:{}/elsewhere",
        gw.http.unwrap().port()
    ))
    .await;
    let js = format!(
        r#"(async () => {{
            for (let i = 0; i < 20; i++) {{
                await fetch('http://127.0.0.1:{port}/login', {{ method: 'POST', mode: 'no-cors',
                    body: 'password=guess' + i,
                    headers: {{ 'Content-Type': 'application/x-www-form-urlencoded' }} }});
            }}
            return true;
        }})()"#,
        port = admin.port()
    );
    b.eval(&js).await;
    let log = gw.log();
    assert!(!log.contains("wrong password"), "{log}");
    b.goto(&format!("http://127.0.0.1:{}/login", admin.port()))
        .await;
    b.submit(&format!("document.querySelector('input[name=password]').value = {PASSWORD:?}; document.getElementById('login').submit()")).await;
    let text = b.text().await;
    assert!(
        text.contains("Overview"),
        "the operator was locked out: {text}"
    );
}

/// Issue 42 item 4: a page that rebinds its own name to the admin
/// listener's address, in real Chromium, reads nothing and locks nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_rebinding_page_gets_421_for_metrics_healthz_and_login() {
    let up = Upstream::recording().await;
    let gw = quiet(&config(&up, 100, ""));
    let admin = gw.admin.unwrap();
    let port = admin.port();
    let mut b = Browser::launch_with(&["--host-resolver-rules=MAP rebind.test 127.0.0.1"]).await;
    b.goto(&format!("http://rebind.test:{port}/login")).await;
    let status = b
        .eval("performance.getEntriesByType('navigation')[0].responseStatus")
        .await;
    assert_eq!(status, 421, "{}", b.text().await);
    // The page's script, same-origin with rebind.test.
    let js = format!(
        r#"(async () => {{
            const out = {{}};
            out.metrics = (await fetch('/metrics')).status;
            out.healthz = (await fetch('/healthz')).status;
            out.api = (await fetch('/api/requests', {{ headers: {{ Authorization: 'Bearer guess' }} }})).status;
            out.logins = [];
            for (let i = 0; i < 10; i++) {{
                const r = await fetch('/login', {{ method: 'POST', body: 'password=guess' + i,
                    headers: {{ 'Content-Type': 'application/x-www-form-urlencoded' }} }});
                out.logins.push(r.status);
            }}
            out.right = (await fetch('/api/requests', {{ headers: {{ Authorization: 'Bearer {PASSWORD}' }} }})).status;
            out.body = await (await fetch('/metrics')).text();
            return out;
        }})()"#
    );
    let out = b.eval(&js).await;
    println!("the rebinding page saw: {out}");
    assert_eq!(out["metrics"], 421);
    assert_eq!(out["healthz"], 421);
    assert_eq!(out["api"], 421);
    assert_eq!(out["right"], 421, "not even with the password");
    assert!(out["logins"].as_array().unwrap().iter().all(|s| *s == 421));
    assert!(!out["body"].as_str().unwrap().contains("callgate_"));
    // The operator's own browser, by localhost: answered, not locked out.
    b.goto(&format!("http://localhost:{port}/login")).await;
    b.submit(&format!("document.querySelector('input[name=password]').value = {PASSWORD:?}; document.getElementById('login').submit()")).await;
    assert!(b.text().await.contains("Overview"));
    b.goto(&format!("http://127.0.0.1:{port}/metrics")).await;
    assert!(b.text().await.contains("callgate_"));
}

/// `[admin] hosts` adds names the admin listener answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_hosts_names_the_listener_answers_besides_localhost() {
    let up = Upstream::recording().await;
    let text =
        config(&up, 100, "").replace("[admin]\n", "[admin]\nhosts = [\"Admin.Example.com\"]\n");
    let gw = quiet(&text);
    let admin = gw.admin.unwrap();
    for (host, want) in [
        ("admin.example.com:9090", 200),
        ("localhost", 200),
        ("[::1]:1", 200),
        ("other.example.com", 421),
    ] {
        let req = format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let (statuses, _) = exchange(admin, req.as_bytes()).await;
        assert_eq!(statuses, [want], "{host}");
    }
}

/// Issue 42 item 5: rotating the password (SIGHUP) ends the sessions and
/// bearers made with the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_password_ends_every_session_at_the_reload() {
    let up = Upstream::recording().await;
    let gw = quiet(&config(&up, 100, ""));
    let admin = gw.admin.unwrap();
    let body = format!("password={PASSWORD}");
    let (status, text) = http_from(None, admin, ("POST", "/login"), form(), body.as_bytes()).await;
    assert_eq!(status, 303);
    let cookie = format!("Cookie: {}\r\n", session_of(&text));
    let (status, page) = http(admin, "GET", "/queue", &cookie).await;
    assert_eq!(status, 200);
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let act = format!("{cookie}X-CSRF-Token: {csrf}\r\n");
    let new = "a-new-console-password-987654321";
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    gw.rewrite(&text.replace(PASSWORD, new));
    gw.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while http(admin, "GET", "/api/requests", &bearer(new)).await.0 != 200 {
        assert!(Instant::now() < deadline, "the reload never took");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _) = http(admin, "GET", "/", &cookie).await;
    assert_eq!(status, 401, "the old session still works");
    let (status, _) = http(admin, "POST", "/api/queue/retry-dead", &act).await;
    assert_eq!(status, 401, "the old session's CSRF-protected action");
    let (status, _) = http(admin, "GET", "/api/requests", &bearer(PASSWORD)).await;
    assert_eq!(status, 401, "the old bearer");
}

/// Issue 42 item 6 / INTERFACE: `/healthz` says ok or unavailable and
/// nothing more; the details are behind the console's credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_tells_strangers_only_ok_and_the_details_need_the_password() {
    let up = Upstream::recording().await;
    let text = config(&up, 100, "").replace("hmac = {", "delivery = \"queue\"\nhmac = {");
    let gw = quiet(&text);
    let admin = gw.admin.unwrap();
    let (status, text) = http(admin, "GET", "/healthz", "").await;
    assert_eq!(status, 200);
    assert_eq!(text.split_once("\r\n\r\n").unwrap().1, "ok\n");
    let dir = gw.config_dir().display().to_string();
    assert!(!text.contains(&dir) && !text.contains("sqlite"), "{text}");
    let (status, _) = http(admin, "GET", "/api/health", "").await;
    assert_eq!(status, 401);
    let (status, text) = http(admin, "GET", "/api/health", &bearer(PASSWORD)).await;
    assert_eq!(status, 200, "{text}");
    let v: serde_json::Value =
        serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(v["status"], "ok");
    assert!(
        v["store"]["state"].as_str().unwrap().starts_with("ok ("),
        "{v}"
    );
}

/// Issue 41 item 5: the admin listener has its own connection budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_while_max_connections_is_full_of_idle_clients() {
    let up = Upstream::recording().await;
    let gw = quiet(&config(
        &up,
        100,
        "max_connections = 8\nheader_read_timeout = \"30s\"\nidle_timeout = \"60s\"",
    ));
    let mut idle = Vec::new();
    for _ in 0..16 {
        idle.push(
            tokio::net::TcpStream::connect(gw.http.unwrap())
                .await
                .unwrap(),
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let req = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let (statuses, text) =
        tokio::time::timeout(Duration::from_secs(5), exchange(gw.admin.unwrap(), req))
            .await
            .expect("/healthz did not answer within 5 s while the public listeners were full");
    assert_eq!(statuses, [200], "{text}");
    println!(
        "/healthz answered in {:?} with max_connections full",
        started.elapsed()
    );
    drop(idle);
}

/// Issue 42 item 6: off loopback, the warning names what travels in clear.
#[test]
fn the_admin_listener_off_loopback_warns_that_the_password_travels_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        format!("[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"0.0.0.0:9090\"\n[admin]\nconsole = {{ password = \"{PASSWORD}\" }}\n[[route]]\nname = \"r\"\npath = \"/r\"\nupstream = \"http://127.0.0.1:9/\"\nallow_ips = [\"127.0.0.1\"]\n"),
    )
    .unwrap();
    let (code, _, err) =
        support::gateway::run_cli(&["check", "--config", path.to_str().unwrap()], b"", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("password and session cookie travel in clear"),
        "{err}"
    );
    assert!(!err.contains(PASSWORD));
}
