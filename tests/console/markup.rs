//! Markup sent from outside in every field the console shows, against the
//! real binary: route names and paths from the config, request targets,
//! methods, header values (User-Agent among them; a Host with markup is
//! refused at the door, 400, before anything is kept), signatures,
//! bodies, queued callbacks, a refused reload's error, and the query
//! parameters a page reflects. Every page is fetched raw (no markup of the
//! attacker's unescaped, yet every field shown) and opened in headless
//! Chromium (no element or attribute of the attacker's in the DOM, no
//! script run, no Content-Security-Policy violation, the text shown as sent).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use callgate_testkit as support;

use support::browser::Browser;
use support::raw::request;
use support::{Gateway, Upstream};

const PASSWORD: &str = "console-password-0123456789";
const KEY: &str = "tolq-key-0123456789abcdef";
const TOKEN: &str = "queued-token-0123456789";

/// Markup that, shown unescaped, opens an element and runs a script; inside
/// a quoted attribute, adds an attribute of its own. `surface` names the
/// field it was sent in, so each can be found on the pages.
fn markup(surface: &str) -> String {
    format!("{surface}\"data-xss=\"1'data-xss='1><x-xss>&amp;</x-xss><script>xss=1</script>")
}

/// What a request line carries (no `<`, `>`, `"` or space: hyper answers
/// 400 to those): the quote that ends a single-quoted attribute, and an
/// entity that must stay text.
fn quotes(surface: &str) -> String {
    format!("{surface}'data-xss='1&amp;")
}

/// What no page may hold: the attacker's markup unescaped. A `'` may stay
/// as it is: every attribute the console writes is double-quoted (maud
/// writes no other kind), so it is text wherever it lands; an attribute it
/// did open would show in the browser's DOM, which `browsed` probes.
const FORBIDDEN: [&str; 3] = ["<x-xss", "<script>xss", "\"data-xss"];

/// `s` for a TOML basic string.
fn toml(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// `s` as one query parameter's value.
fn encoded(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn config(up: &Upstream) -> String {
    format!(
        r#"
[listen]
http = "127.0.0.1:0"
admin = "127.0.0.1:0"

[admin]
console = {{ password = "{PASSWORD}" }}

[[route]]
name = "{shown}"
path = "/shown/{path}"
upstream = "{tolq}"
allow_ips = ["127.0.0.1"]
token = {{ secrets = ["{TOKEN}"] }}

[[route]]
name = "tolq"
path = "/tolq"
upstream = "{tolq}"
preset = "tolq"
allow_ips = ["127.0.0.1"]
hmac = {{ secrets = ["{KEY}"] }}

[[route]]
name = "{queued}"
path = "/queued"
upstream = "{orders}"
allow_ips = ["127.0.0.1"]
token = {{ secrets = ["{TOKEN}"] }}
delivery = "queue"
retry = {{ base = "100ms", cap = "100ms", max_attempts = 1 }}
"#,
        shown = toml(&markup("route-name")),
        path = toml(&markup("route-path")),
        queued = toml(&markup("queue-route")),
        tolq = up.url("/tolq.php"),
        orders = up.url("/orders.php"),
    )
}

/// `METHOD target` with the head lines given (Host among them) and a body:
/// (status, head and body text).
async fn http(
    addr: SocketAddr,
    (method, target): (&str, &str),
    head: &str,
    body: &[u8],
) -> (u16, String) {
    request(
        addr,
        (method, target),
        &format!("Connection: close\r\n{head}"),
        body,
    )
    .await
}

fn bearer() -> String {
    format!("Host: localhost\r\nAuthorization: Bearer {PASSWORD}\r\n")
}

async fn api(gw: &Gateway, target: &str) -> serde_json::Value {
    let (status, text) = http(gw.admin.unwrap(), ("GET", target), &bearer(), b"").await;
    assert_eq!(status, 200, "{target}: {text}");
    serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap()
}

/// A forged Tolq callback, a no-route request, an odd method, a queued
/// callback gone dead: markup in every field a request brings.
async fn traffic(gw: &Gateway, up: &Upstream) {
    let addr = gw.http.unwrap();
    let (status, text) = http(
        addr,
        ("GET", "/tolq"),
        &format!("Host: {}\r\n", markup("host")),
        b"",
    )
    .await;
    assert_eq!(status, 400, "a Host with markup: {text}");
    let head = format!(
        "Host: localhost\r\nUser-Agent: {}\r\nX-Note: {}\r\nX-Tolq-Signature: {}\r\nContent-Type: application/json\r\n",
        markup("user-agent"),
        markup("header-value"),
        markup("signature"),
    );
    let target = format!("/tolq?{}", quotes("target-query"));
    let (status, text) = http(addr, ("POST", &target), &head, markup("body").as_bytes()).await;
    assert_eq!(status, 403, "{text}");
    let target = format!("/nowhere/{}", quotes("target-path"));
    let (status, text) = http(addr, ("GET", &target), "Host: localhost\r\n", b"").await;
    assert_eq!(status, 404, "{text}");
    let (status, text) = http(addr, ("XSS'&", "/tolq"), "Host: localhost\r\n", b"").await;
    assert!(status >= 400, "{text}");
    // The receiver refuses it (4xx): a dead letter at once.
    up.script(&[400]);
    let target = format!("/queued?token={TOKEN}&{}", quotes("queued-query"));
    let head = format!("Host: localhost\r\nX-Note: {}\r\n", markup("queued-header"));
    let body = markup("queued-body");
    let (status, text) = http(addr, ("POST", &target), &head, body.as_bytes()).await;
    assert_eq!(status, 202, "{text}");
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

/// A reload refused for a key that holds markup: the overview shows why.
async fn refused_reload(gw: &Gateway) {
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    let bad = format!("\"{}\" = 1\n{text}", toml(&markup("reload-error")));
    std::fs::write(&gw.config_path, bad).unwrap();
    gw.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while api(gw, "/api/overview").await["reload"]["result"] != "refused" {
        assert!(Instant::now() < deadline, "the reload was not refused");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every page the console has for this traffic, and pages that reflect
/// markup from their own query or path.
async fn pages(gw: &Gateway) -> Vec<String> {
    let m = |s: &str| encoded(&markup(s));
    let mut out = vec![
        "/".to_owned(),
        "/login".to_owned(),
        "/requests".to_owned(),
        format!(
            "/requests?route={}&outcome={}",
            m("route-name"),
            m("outcome-filter")
        ),
        "/queue".to_owned(),
        format!(
            "/queue?done={}&route={}&state={}",
            m("done"),
            m("queue-filter"),
            m("state-filter")
        ),
        format!("/requests/{}", quotes("missing-request")),
        format!("/queue/{}", quotes("missing-callback")),
    ];
    for e in api(gw, "/api/requests").await.as_array().unwrap() {
        out.push(format!("/requests/{}", e["id"]));
    }
    for c in api(gw, "/api/queue").await.as_array().unwrap() {
        out.push(format!("/queue/{}", c["id"]));
    }
    out
}

/// Text with the references an escaper writes undone: what a reader sees.
fn unescaped(html: &str) -> String {
    html.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Every page fetched raw: none holds the markup unescaped; the text of
/// them all, references undone.
async fn fetched(gw: &Gateway, targets: &[String]) -> String {
    let mut all = String::new();
    for t in targets {
        let (status, text) = http(gw.admin.unwrap(), ("GET", t), &bearer(), b"").await;
        assert!(status == 200 || status == 404, "{t}: {status}");
        let (head, html) = text.split_once("\r\n\r\n").unwrap();
        let head = head.to_ascii_lowercase();
        assert!(
            head.contains("content-type: text/html; charset=utf-8"),
            "{t}: {head}"
        );
        for bad in FORBIDDEN {
            assert!(!html.contains(bad), "{t} holds {bad:?} unescaped:\n{html}");
        }
        all.push_str(&unescaped(html));
    }
    all
}

/// What every field must show, as sent.
fn shown() -> Vec<String> {
    let mut all: Vec<String> = [
        "route-name",
        "route-path",
        "queue-route",
        "user-agent",
        "header-value",
        "signature",
        "body",
        "queued-header",
        "queued-body",
        "reload-error",
        "done",
        "queue-filter",
        "state-filter",
    ]
    .map(markup)
    .into();
    for s in [
        "target-query",
        "target-path",
        "queued-query",
        "missing-request",
        "missing-callback",
    ] {
        all.push(quotes(s));
    }
    all.push("XSS'&".to_owned());
    all
}

/// Records every CSP violation from the page's first moment.
const WATCH: &str = "window.__violations = []; document.addEventListener('securitypolicyviolation', e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));";

/// What an attacker's markup left in the page open now: elements, attributes,
/// a script's effect, CSP violations.
const PROBE: &str = "JSON.stringify({ elements: document.querySelectorAll('x-xss, [data-xss]').length, ran: typeof xss !== 'undefined', violations: window.__violations || [], text: document.body.innerText })";

/// Every page opened in Chromium, logged in: the text of them all.
async fn browsed(gw: &Gateway, targets: &[String]) -> String {
    let admin = format!("http://{}", gw.admin.unwrap());
    let mut b = Browser::launch().await;
    b.call(
        "Page.addScriptToEvaluateOnNewDocument",
        serde_json::json!({ "source": WATCH }),
    )
    .await;
    b.goto(&format!("{admin}/login")).await;
    b.submit(&format!("document.querySelector('input[name=password]').value = {PASSWORD:?}; document.getElementById('login').submit()")).await;
    assert!(b.text().await.contains("Overview"));
    let mut all = String::new();
    for t in targets {
        b.goto(&format!("{admin}{t}")).await;
        let probe = b.eval(PROBE).await;
        let probe: serde_json::Value = serde_json::from_str(probe.as_str().unwrap()).unwrap();
        assert_eq!(
            probe["elements"], 0,
            "{t}: the attacker's markup is in the DOM"
        );
        assert_eq!(probe["ran"], false, "{t}: the attacker's script ran");
        assert_eq!(
            probe["violations"],
            serde_json::json!([]),
            "{t}: {}",
            probe["violations"]
        );
        all.push_str(probe["text"].as_str().unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markup_sent_in_every_field_the_console_shows_reaches_no_page_unescaped() {
    let up = Upstream::recording().await;
    let gw = Gateway::start_raw(&config(&up), &[]);
    traffic(&gw, &up).await;
    refused_reload(&gw).await;
    let targets = pages(&gw).await;
    let raw = fetched(&gw, &targets).await;
    let missing: Vec<String> = shown()
        .into_iter()
        .filter(|s| !raw.contains(s.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "fields never shown, so never tested: {missing:?}"
    );
    // Chromium sends a path's quotes percent-encoded: those pages show
    // what it sent, which the raw fetch above covered.
    let text = browsed(&gw, &targets).await;
    let missing: Vec<String> = shown()
        .into_iter()
        .filter(|s| !s.starts_with("missing-") && !text.contains(s.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "not shown as sent in the browser: {missing:?}"
    );
}
