//! The pass-through promise against real engines: Apache 2.4 with mod_php
//! (prefork, pretty-URL rewrite to index.php), Apache event with php-fpm
//! (MultiViews, FallbackResource) and `php -S` serve tests/php/site behind
//! callgate. A generated table of request spellings never runs a protected
//! script (the Tolq and Gengo callback scripts, the admin directory, the
//! front controller's callback action) through callgate, on the https and
//! the http listener, over HTTP/1.1 and h2, while many of the same
//! spellings sent to the engines directly do; the site's ordinary pages
//! still work.

use callgate_testkit as support;

use std::net::SocketAddr;
use std::process::Command;

use futures_util::{stream, StreamExt};
use serde_json::Value;
use support::apache::{Apache, Engine};
use support::nginx::Nginx;
use support::{Client, Gateway, PhpReceiver, Version};

const TOKEN: &str = "site-token-protect";

/// A site engine behind callgate: its address and what its scripts ran.
enum Site {
    Apache(Apache),
    Php(PhpReceiver),
    Nginx(Nginx),
}

/// OpenCart's front-controller rules, and an API route rewritten into the
/// action parameter.
const OPENCART_RULES: &str = "RewriteRule ^api/([a-z_]+)$ index.php?action=$1 [L]\n  RewriteCond %{REQUEST_FILENAME} !-f\n  RewriteCond %{REQUEST_FILENAME} !-d\n  RewriteRule ^([^?]*) index.php?_route_=$1 [L,QSA]";

impl Site {
    fn start(name: &str) -> Site {
        match name {
            "mod_php" => Site::Apache(Apache::start(Engine::ModPhp, "site", "")),
            "mod_php opencart" => Site::Apache(Apache::start_with_rules(
                Engine::ModPhp,
                "site",
                Some(OPENCART_RULES),
                "",
            )),
            "mod_php deflate" => Site::Apache(Apache::start(
                Engine::ModPhp,
                "site",
                "SetInputFilter DEFLATE",
            )),
            "php-fpm" => Site::Apache(Apache::start(Engine::PhpFpm, "site", "")),
            "nginx" => Site::Nginx(Nginx::start("site")),
            _ => Site::Php(PhpReceiver::start_in("site")),
        }
    }

    fn addr(&self) -> SocketAddr {
        match self {
            Site::Apache(a) => a.addr,
            Site::Php(p) => p.addr,
            Site::Nginx(n) => n.addr,
        }
    }

    fn records(&self) -> Vec<Value> {
        match self {
            Site::Apache(a) => a.records(),
            Site::Php(p) => p.records(),
            Site::Nginx(n) => n.records(),
        }
    }
}

/// The config: two verified routes (a script, and the front controller's
/// action) and the site, as in examples/tolq-gengo-apache.toml.
fn gateway(site: SocketAddr, extra: &str) -> Gateway {
    Gateway::start(&format!(
        r#"
[[route]]
name = "tolq"
path = "/tolq/callback"
upstream = "http://{site}/tolq/callback.php"
allow_ips = ["127.0.0.1"]
token = {{ secrets = ["{TOKEN}"] }}

[[route]]
name = "gengo"
path = "/gengo/callback"
upstream = "http://{site}/gengo/callback.php"
token = {{ secrets = ["{TOKEN}"] }}

[[route]]
name = "front"
path = "/hooks/tolq"
upstream = "http://{site}/index.php?action=tolq_callback"
token = {{ secrets = ["{TOKEN}"] }}

[[passthrough]]
upstream = "http://{site}"
protect = ["/admin/"]
{extra}
"#
    ))
}

/// Whether a record is a protected thing having run.
fn protected_run(r: &Value) -> bool {
    let script = r["script"].as_str().unwrap_or("");
    script == "tolq/callback.php"
        || script == "admin/index.php"
        || r["receiver"] == "gengo"
        || (script == "index.php" && r["action"] == "tolq_callback")
}

fn protected_runs(site: &Site) -> Vec<String> {
    site.records()
        .iter()
        .filter(|r| protected_run(r))
        .map(|r| format!("{} {}", r["script"], r["uri"]))
        .collect()
}

/// The generated table: protected paths, each spelled with a prefix trick
/// and a suffix trick (PATH_INFO, dot-like segments, encodings, case,
/// separators), plus the routes' own paths and the front controller's action.
fn spellings() -> Vec<String> {
    let targets = [
        ("/tolq/", "callback.php"),
        ("/gengo/", "callback.php"),
        ("/admin/", "index.php"),
        ("/admin/", ""),
        ("/tolq/", "callback"),
        ("/gengo/", "callback"),
    ];
    let dirs: &[fn(&str) -> String] = &[
        |d| d.to_owned(),
        |d| d.to_uppercase(),
        |d| format!("/{d}"),
        |d| d.replacen('/', "//", 2),
        |d| format!("/.{d}"),
        |d| format!("/x/..{d}"),
        |d| format!("/x/%2e%2e{d}"),
        |d| format!("/x/%252e%252e{d}"),
        |d| format!("{d}./"),
        |d| format!("{d}%2e/"),
        |d| d.replace('/', "%2f").replacen("%2f", "/", 1),
        |d| d.replace('/', "%5c").replacen("%5c", "/", 1),
        |d| format!("{}%{:02x}{}", &d[..1], d.as_bytes()[1], &d[2..]),
        |d| format!("{d};x=1/"),
    ];
    let files: &[fn(&str) -> String] = &[
        |f| f.to_owned(),
        |f| f.to_uppercase(),
        |f| f.replace('.', "%2e"),
        |f| f.replace('.', "%252e"),
        |f| f.replacen('c', "%63", 1),
        |f| format!("{f}/"),
        |f| format!("{f}/x"),
        |f| format!("{f}/..;/"),
        |f| format!("{f}/%252e%252e/"),
        |f| format!("{f}/..%5c"),
        |f| format!("{f}/..%20/"),
        |f| format!("{f}/..%3b/"),
        |f| format!("{f}/x%5c..%5c..%5c"),
        |f| format!("{f}/%2e%2e/"),
        |f| format!("{f};jsessionid=1"),
        |f| format!("{f}."),
        |f| format!("{f}%20"),
        |f| format!("{f}?token=x"),
    ];
    let mut out = Vec::new();
    for (dir, file) in targets {
        for d in dirs {
            for f in files {
                out.push(format!("{}{}", d(dir), f(file)));
            }
        }
    }
    for path in [
        "/",
        "/index.php",
        "/anything",
        "/page.php",
        "/index.php/x",
        "/x/y.html",
    ] {
        for q in [
            "action=tolq_callback",
            "action=TOLQ_CALLBACK",
            "x=1;action=tolq_callback",
            "acti%6Fn=tolq_callback",
            "%20action=tolq_callback",
            "action[]=tolq_callback",
            "action=tolq%5Fcallback",
        ] {
            out.push(format!("{path}?{q}"));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// GET each spelling with `--path-as-is` semantics (raw request line).
async fn send_all(client: &Client, spellings: &[String]) -> Vec<(String, Vec<u16>)> {
    stream::iter(spellings.iter().cloned())
        .map(|s| async move {
            let req = format!("GET {s} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
            // No answer within the wait (a loaded machine) is no verdict: ask again.
            let mut statuses = Vec::new();
            for _ in 0..3 {
                statuses = client.raw(req.as_bytes()).await.0;
                if !statuses.is_empty() {
                    break;
                }
            }
            (s, statuses)
        })
        .buffer_unordered(8)
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_spelling_in_the_table_reaches_a_protected_script_on_any_engine() {
    let table = spellings();
    assert!(table.len() >= 500, "only {} spellings", table.len());
    for engine in ["mod_php", "php-fpm", "php -S"] {
        let site = Site::start(engine);
        // Directly, the engine runs a protected thing for many of them:
        // the table is no list of harmless strings.
        let direct = Client::http(site.addr());
        send_all(&direct, &table).await;
        let reached_directly = protected_runs(&site).len();
        assert!(
            reached_directly >= 200,
            "{engine}: only {reached_directly} reached directly"
        );
        let before = site.records().len();

        let gw = gateway(site.addr(), "");
        let https = Client::https(gw.https.unwrap(), Version::H1);
        let http = Client::http(gw.http.unwrap());
        let mut answered = send_all(&https, &table).await;
        answered.extend(send_all(&http, &table).await);
        let through: Vec<String> = protected_runs(&site)
            .into_iter()
            .skip(reached_directly)
            .collect();
        let not_refused: Vec<&(String, Vec<u16>)> = answered
            .iter()
            .filter(|(_, s)| !matches!(s.as_slice(), [403] | [400] | [404] | [405]))
            .collect();
        println!(
            "protection table, {engine}: {} spellings, {reached_directly} ran a protected script directly, {} through callgate (https and http)",
            table.len(),
            through.len()
        );
        assert!(
            through.is_empty(),
            "{engine}: through callgate: {through:?}"
        );
        assert!(
            not_refused.is_empty(),
            "{engine}: answered by the site: {not_refused:?}"
        );

        // The same families over h2 (curl, as an attacker would).
        let h2_families = [
            "/tolq/callback.php/..;/",
            "/tolq/callback.php/%252e%252e/",
            "/tolq/callback.php/..%5c",
            "/admin/x/..;/",
            "/tolq/callback/",
            "/tolq//callback",
            "/tolq/callbac%6b",
            "/anything?action=tolq_callback",
        ];
        let port = gw.https_port();
        for target in h2_families {
            let out = Command::new("curl")
                .args([
                    "-sk",
                    "--http2",
                    "--path-as-is",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code} %{http_version}",
                ])
                .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
                .arg(format!("https://localhost:{port}{target}"))
                .output()
                .unwrap();
            let out = String::from_utf8_lossy(&out.stdout).into_owned();
            assert_eq!(out, "403 2", "{engine} h2 {target}");
        }
        assert!(
            protected_runs(&site).len() == reached_directly,
            "{engine}: h2 reached a script"
        );

        // Ordinary pages still work, and the verified routes reach their scripts.
        for page in ["/", "/page.php", "/index.php?action=view", "/x/pretty-url"] {
            let r = https.request(http::Method::GET, page, &[], b"").await;
            assert_eq!(r.status, 200, "{engine} {page}");
        }
        let r = https
            .post(&format!("/tolq/callback?token={TOKEN}"), &[], b"{}")
            .await;
        assert_eq!(
            (r.status.as_u16(), &r.body[..]),
            (200, &b"callback\n"[..]),
            "{engine}"
        );
        let r = https
            .post(&format!("/hooks/tolq?token={TOKEN}"), &[], b"{}")
            .await;
        assert_eq!(&r.body[..], b"page tolq_callback\n", "{engine}");
        let runs = protected_runs(&site);
        assert_eq!(
            runs.len(),
            reached_directly + 2,
            "{engine}: {:?}",
            &runs[reached_directly..]
        );
        // Each protected run through callgate came verified.
        for r in site.records()[before..].iter().filter(|r| protected_run(r)) {
            assert!(
                r["verified"].as_str().is_some_and(|v| v.contains("token")),
                "{engine}: {r}"
            );
        }
    }
}

/// A multipart POST of `fields` as curl -F sends it.
fn multipart(fields: &[(&str, &str)]) -> (String, Vec<u8>) {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(b"--XyZ--\r\n");
    ("multipart/form-data; boundary=XyZ".into(), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_front_controllers_action_is_refused_in_every_body_and_cookie() {
    let site = Site::start("mod_php");
    let gw = gateway(site.addr(), "");
    let https = Client::https(gw.https.unwrap(), Version::H1);
    let h2 = Client::https(gw.https.unwrap(), Version::H2);
    let urlenc = "application/x-www-form-urlencoded";
    let (mp, mp_body) = multipart(&[("a", "1"), ("action", "tolq_callback")]);
    let cases: Vec<(&str, String, Vec<u8>, Option<&str>)> = vec![
        ("/anything", mp.clone(), mp_body.clone(), None),
        (
            "/",
            urlenc.into(),
            b"x=1&action=tolq_callback".to_vec(),
            None,
        ),
        (
            "/page.php",
            urlenc.into(),
            b"x=1;action=TOLQ_CALLBACK".to_vec(),
            None,
        ),
        (
            "/index.php",
            "text/plain".into(),
            b"{}".to_vec(),
            Some("action=tolq_callback"),
        ),
    ];
    for client in [&https, &h2] {
        for (path, ct, body, cookie) in &cases {
            let mut headers = vec![("content-type", ct.as_str())];
            if let Some(c) = cookie {
                headers.push(("cookie", c));
            }
            let r = client.post(path, &headers, body).await;
            assert_eq!(r.status, 403, "{path} {ct}");
        }
    }
    // Chunked, over raw HTTP/1.1: the action in the second chunk.
    let req = "POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\nx=1&\r\n14\r\naction=tolq_callback\r\n0\r\n\r\n";
    let (statuses, text) = https.raw(req.as_bytes()).await;
    assert_eq!(statuses, [403], "{text}");
    assert!(
        protected_runs(&site).is_empty(),
        "{:?}",
        protected_runs(&site)
    );
    // An ordinary form and a 2 MiB upload (over the gateway's 1 MiB) pass,
    // streamed, bounded by the pass-through's max_body_bytes instead.
    let r = https
        .post("/index.php", &[("content-type", urlenc)], b"action=view")
        .await;
    assert_eq!(&r.body[..], b"page view\n");
    let big = "y".repeat(2 << 20);
    let (mp, body) = multipart(&[("action", "view"), ("file", &big)]);
    let r = https
        .post("/index.php", &[("content-type", mp.as_str())], &body)
        .await;
    assert_eq!((r.status.as_u16(), &r.body[..]), (200, &b"page view\n"[..]));
    let body = format!("action=view&file={big}");
    let r = https
        .post("/index.php", &[("content-type", urlenc)], body.as_bytes())
        .await;
    assert_eq!((r.status.as_u16(), &r.body[..]), (200, &b"page view\n"[..]));
    let last = site.records().pop().unwrap();
    assert_eq!(last["raw_length"], body.len(), "the upload arrived whole");
    gw.wait_for_log("protected: the site would resolve it to action=tolq_callback");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_101_without_a_switch_is_no_pipe_and_unlisted_upgrades_are_plain_requests() {
    let site = Site::start("mod_php");
    let gw = gateway(site.addr(), "");
    let http = Client::http(gw.http.unwrap());
    // A WebSocket upgrade answered 101 by a page that does not switch,
    // then a request inside what would be the tunnel.
    let req = "GET /switch.php HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\nGET /tolq/callback.php HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let (statuses, text) = http.raw(req.as_bytes()).await;
    assert_eq!(statuses.first(), Some(&502), "{text}");
    assert!(!text.contains("callback\n"), "{text}");
    // An upgrade the pass-through does not name goes as a plain request.
    let req = "GET /switch.php HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\nGET /tolq/callback.php HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let (statuses, text) = http.raw(req.as_bytes()).await;
    assert_eq!(statuses.first(), Some(&502), "{text}");
    assert!(
        protected_runs(&site).is_empty(),
        "{:?}",
        protected_runs(&site)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_the_site_with_slow_uploads() {
    let site = Site::start("php -S");
    let gw = gateway(
        site.addr(),
        "max_requests_per_client = 4\nmin_body_rate = \"1KiB/s\"",
    );
    let slow = Client::http(gw.http.unwrap()).source_ip("127.0.0.2");
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut tcp = slow.connect().await;
        tokio::io::AsyncWriteExt::write_all(
            &mut tcp,
            b"POST /page.php HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\nx",
        )
        .await
        .unwrap();
        held.push(tcp);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // The fifth from the same address: 429; another address: served.
    let r = slow.request(http::Method::GET, "/page.php", &[], b"").await;
    assert_eq!(r.status, 429);
    assert!(r.headers.contains_key("retry-after"));
    let other = Client::http(gw.http.unwrap()).source_ip("127.0.0.3");
    let r = other
        .request(http::Method::GET, "/page.php", &[], b"")
        .await;
    assert_eq!(r.status, 200);
    // Past the 10 s grace at under 1 KiB/s, the uploads are cut: 408.
    let start = std::time::Instant::now();
    for mut tcp in held {
        let mut answer = String::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(15),
            tokio::io::AsyncReadExt::read_to_string(&mut tcp, &mut answer),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    assert!(start.elapsed() < std::time::Duration::from_secs(12));
    let r = slow.request(http::Method::GET, "/page.php", &[], b"").await;
    assert_eq!(r.status, 200, "the slots came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_is_no_name_gets_400_and_no_location() {
    let site = Site::start("php -S");
    let cert = support::gateway::test_cert();
    let gw = Gateway::start_raw(
        &format!(
            "[listen]\nhttps = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\nhttp_redirect = true\n[tls]\ncert = {:?}\nkey = {:?}\n[[route]]\nname = \"r\"\npath = \"/r\"\nupstream = \"http://{}/page.php\"\nallow_ips = [\"127.0.0.1\"]\n[[passthrough]]\nupstream = \"http://{}\"\n",
            cert.cert_path.display().to_string(),
            cert.key_path.display().to_string(),
            site.addr(),
            site.addr()
        ),
        &[],
    );
    for host in [
        "www.example.com@evil.example",
        "a b",
        "x:99999999",
        "[::1",
        "evil.example/x",
    ] {
        let req = format!("GET /page.php HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        for client in [
            Client::http(gw.http.unwrap()),
            Client::https(gw.https.unwrap(), Version::H1),
        ] {
            let (statuses, text) = client.raw(req.as_bytes()).await;
            assert!(statuses == [400], "{host}: {text}");
            assert!(!text.to_ascii_lowercase().contains("location:"), "{text}");
        }
    }
    let r = Client::http(gw.http.unwrap())
        .request(http::Method::GET, "/page.php", &[], b"")
        .await;
    assert_eq!(r.status, 308, "a valid Host is still redirected");
    assert!(site.records().is_empty());
}

/// h2 names the host twice when a client adds a Host header to
/// :authority. callgate routes by one, a receiver may read the other:
/// differing ones are a malformed request (RFC 9113 §8.3.1), refused with
/// 400 before any route or site sees them; the same host in another case
/// is one host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_host_that_differs_from_the_authority_gets_400() {
    let site = Site::start("php -S");
    let gw = gateway(
        site.addr(),
        "hosts = [\"localhost\"]\n\n[[passthrough]]\nhosts = [\"other.example\"]\nupstream = \"http://127.0.0.1:9\"",
    );
    let h2 = Client::https(gw.https.unwrap(), Version::H2);
    for host in ["other.example", "evil.example", "localhost:1"] {
        let r = h2
            .request(http::Method::GET, "/page.php", &[("host", host)], b"")
            .await;
        assert_eq!(r.status, 400, "Host {host} beside :authority localhost");
    }
    assert!(site.records().is_empty(), "{:?}", site.records());
    let same = format!("LOCALHOST:{}", gw.https.unwrap().port());
    let r = h2
        .request(http::Method::GET, "/page.php", &[("host", &same)], b"")
        .await;
    assert_eq!(r.status, 200, "the same host in capitals");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routes_script_is_protected_on_a_second_passthrough_to_another_port() {
    // Two servers over the same docroot: the route goes to one, the
    // second pass-through (another port) serves the same scripts.
    let first = Site::start("php -S");
    let second = Site::start("php -S");
    let gw = gateway(
        first.addr(),
        &format!("hosts = [\"localhost\"]\n\n[[passthrough]]\nhosts = [\"other.example\"]\nupstream = \"http://{}\"", second.addr()),
    );
    let http = Client::http(gw.http.unwrap());
    for target in [
        "/tolq/callback.php",
        "/gengo/callback.php/..;/",
        "/?action=tolq_callback",
        "/hooks/tolq/x",
    ] {
        let req =
            format!("GET {target} HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n");
        let (statuses, text) = http.raw(req.as_bytes()).await;
        assert_eq!(statuses, [403], "{target}: {text}");
    }
    let req = "GET /page.php HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n";
    assert_eq!(http.raw(req.as_bytes()).await.0, [200]);
    assert!(protected_runs(&second).is_empty());
    // `check` lists each pass-through, its hosts and what it protects.
    let (code, out, err) = support::gateway::run_cli(
        &["check", "--config", gw.config_path.to_str().unwrap()],
        b"",
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("passthrough[1] other.example"), "{out}");
    for p in [
        "/tolq/callback.php",
        "/gengo/callback.php",
        "action=tolq_callback",
        "/hooks/tolq (route \"front\")",
        "/admin/",
    ] {
        assert!(out.contains(p), "{p} in {out}");
    }
}

/// The server-side lock of examples/site-behind-callgate.md, on real
/// Apache: the site's vhost refuses the callback script whatever callgate
/// decides, and a second loopback vhost serves only the script, for
/// callgate's verified route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_site_vhost_refuses_the_scripts_itself_and_the_scripts_vhost_serves_only_them() {
    let root = format!("{}/tests/php/site", support::served_root());
    let scripts_port = support::apache::free_port();
    let lock = format!(
        r#"
Listen 127.0.0.1:{scripts_port}
# The site (this server's own port): the callback scripts are never run here.
<Directory {root}/tolq>
    <Files "callback.php">
        Require all denied
    </Files>
</Directory>
# The scripts, for callgate only (loopback): nothing else is served here.
<VirtualHost 127.0.0.1:{scripts_port}>
    DocumentRoot {root}
    <Location />
        Require all denied
    </Location>
    <Location /tolq/callback.php>
        Require all granted
    </Location>
</VirtualHost>
"#
    );
    let apache = Apache::start(Engine::ModPhp, "site", &lock);
    for target in [
        "/tolq/callback.php",
        "/tolq/callback.php/..;/",
        "/TOLQ/callback.php",
        "/tolq//callback.php/x",
    ] {
        let req = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let (statuses, text) = support::raw::exchange(apache.addr, req.as_bytes()).await;
        assert!(
            !text.ends_with("\r\n\r\ncallback\n"),
            "{target} ran the script: {statuses:?}"
        );
    }
    let scripts: SocketAddr = format!("127.0.0.1:{scripts_port}").parse().unwrap();
    let req = "GET /page.php HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    assert_eq!(
        support::raw::exchange(scripts, req.as_bytes()).await.0,
        [403]
    );
    let runs: Vec<Value> = apache.records().into_iter().filter(protected_run).collect();
    assert!(runs.is_empty(), "{runs:?}");
    // Behind callgate: the route to the scripts vhost, the site to the site vhost.
    let gw = Gateway::start(&format!(
        r#"
[[route]]
name = "tolq"
path = "/tolq/callback"
upstream = "http://{scripts}/tolq/callback.php"
token = {{ secrets = ["{TOKEN}"] }}

[[passthrough]]
upstream = "http://{}"
"#,
        apache.addr
    ));
    let https = Client::https(gw.https.unwrap(), Version::H1);
    let r = https
        .post(&format!("/tolq/callback?token={TOKEN}"), &[], b"{}")
        .await;
    assert_eq!((r.status.as_u16(), &r.body[..]), (200, &b"callback\n"[..]));
    let r = https
        .request(http::Method::GET, "/page.php", &[], b"")
        .await;
    assert_eq!(r.status, 200);
    let runs: Vec<Value> = apache.records().into_iter().filter(protected_run).collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["verified"], "token");
}

/// One attacking request of the second red team's families.
struct Try {
    family: &'static str,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Sent chunked, with these trailer lines.
    trailers: Option<String>,
}

impl Try {
    fn new(family: &'static str, target: &str) -> Try {
        Try {
            family,
            target: target.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            trailers: None,
        }
    }

    fn header(mut self, name: &str, value: &str) -> Try {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn body(mut self, ct: &str, body: &[u8]) -> Try {
        self.body = body.to_vec();
        self.header("Content-Type", ct)
    }

    fn trailers(mut self, t: &str) -> Try {
        self.trailers = Some(t.to_owned());
        self
    }

    /// The request as raw HTTP/1.1 bytes.
    fn raw(&self) -> Vec<u8> {
        let method = if self.body.is_empty() && self.trailers.is_none() {
            "GET"
        } else {
            "POST"
        };
        let mut out =
            format!("{method} {} HTTP/1.1\r\nHost: localhost\r\n", self.target).into_bytes();
        for (k, v) in &self.headers {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        match &self.trailers {
            Some(t) => {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
                if !self.body.is_empty() {
                    out.extend_from_slice(format!("{:x}\r\n", self.body.len()).as_bytes());
                    out.extend_from_slice(&self.body);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(format!("0\r\n{t}\r\n").as_bytes());
            }
            None => {
                out.extend_from_slice(
                    format!(
                        "Content-Length: {}\r\nConnection: close\r\n\r\n",
                        self.body.len()
                    )
                    .as_bytes(),
                );
                out.extend_from_slice(&self.body);
            }
        }
        out
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    child.wait_with_output().unwrap().stdout
}

/// The part headers PHP's rfc1867 parser reads, though not canonical.
fn multipart_spellings() -> Vec<Vec<u8>> {
    let cd = "Content-Disposition: form-data; name=\"action\"";
    let part = |headers: &str| format!("--XyZ\r\n{headers}\r\n\r\ntolq_callback\r\n--XyZ--\r\n");
    let pad: String = (0..200)
        .map(|i| format!("X-Pad-{i}: {}\r\n", "p".repeat(360)))
        .collect();
    let mut out: Vec<String> = vec![
        part("Content-Disposition: form-data;\r\n name=\"action\""),
        part("Content-Disposition: form-data;\r\n\tname=\"action\""),
        part("Content-Disposition: form-data; name=\"a\"\r\nname=\"action\""),
        part("Content-Disposition: form-data; name='action'"),
        part("Content-Disposition: form-data; name=action x"),
        part("Content-Disposition: form-data; name=\"action\"x"),
        part("Content-Disposition: form-data; name=\"action\"\0x"),
        part(&format!("X-A: 1\r\n--XyZ: x\r\n{cd}")),
        format!("--XyZ\r\n{cd}\n\r\ntolq_callback\r\n--XyZ--\r\n"),
        part(&format!("{pad}{cd}")),
        part(&format!("X-Pad: {}\r\n{cd}", "p".repeat(5200))),
    ];
    // The canonical form too: refused by its value.
    out.push(part(cd));
    out.into_iter().map(String::into_bytes).collect()
}

/// Every family of the second red team: names PHP cuts at NUL, Content-Types
/// read two ways, part headers as PHP reads them, the path copied into the
/// query by a rewrite, compressed and JSON bodies, forged reserved headers
/// and trailers.
fn families() -> Vec<Try> {
    let urlenc = "application/x-www-form-urlencoded";
    let form = b"x=1&action=tolq_callback";
    let mut out = Vec::new();
    for path in ["/", "/index.php", "/anything"] {
        for q in [
            "action%00%FF=tolq_callback",
            "action%00x=tolq_callback",
            "x=1&action%00%FF%FE=tolq_callback",
        ] {
            out.push(Try::new("non-UTF-8 names", &format!("{path}?{q}")));
        }
    }
    out.push(Try::new("non-UTF-8 names", "/").body(urlenc, b"action%00%FF=tolq_callback"));
    out.push(
        Try::new("non-UTF-8 names", "/")
            .body(urlenc, b"action%00%FF=tolq_callback")
            .trailers(""),
    );
    for ct in [
        "application/x-www-form-urlencoded; multipart",
        "application/x-www-form-urlencoded, multipart/form-data",
        "application/x-www-form-urlencoded; charset=multipart",
        "application/x-www-form-urlencoded multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded;multipart/form-data",
    ] {
        out.push(Try::new("Content-Type read two ways", "/").body(ct, form));
    }
    out.push(
        Try::new("Content-Type read two ways", "/")
            .body(urlenc, form)
            .header("Content-Type", "multipart/form-data; boundary=XyZ"),
    );
    for body in multipart_spellings() {
        out.push(
            Try::new("multipart part headers", "/")
                .body("multipart/form-data; boundary=XyZ", &body),
        );
    }
    for target in [
        "/x&action=tolq_callback",
        "/x%26action%3Dtolq_callback",
        "/api/tolq_callback",
        "/blog/x&action=tolq_callback&y=1",
        "/x&action=TOLQ_CALLBACK",
    ] {
        out.push(Try::new("path copied into the query", target));
    }
    out.push(
        Try::new("compressed body", "/")
            .body(urlenc, &gzip(form))
            .header("Content-Encoding", "gzip"),
    );
    out.push(
        Try::new("compressed body", "/index.php")
            .body(urlenc, &gzip(form))
            .header("Content-Encoding", "GZIP"),
    );
    for json in [
        &br#"{"action":"tolq_callback"}"#[..],
        br#"{"x":1,"action":"tolq\u005fcallback"}"#,
        br#"{"action":"\u0074olq_callback"}"#,
    ] {
        out.push(Try::new("JSON body", "/").body("application/json", json));
        out.push(Try::new("JSON body", "/index.php").body("application/vnd.api+json", json));
    }
    for name in [
        "X.Callgate.Verified",
        "X-Callgate.Verified",
        "x.callgate-verified",
        "X_Callgate_Verified",
    ] {
        out.push(Try::new("forged reserved headers", "/page.php").header(name, "ip,token,hmac"));
    }
    out.push(
        Try::new("trailers", "/page.php")
            .body(urlenc, b"x=1")
            .trailers("X-Callgate-Verified: ip,token,hmac\r\n"),
    );
    out.push(
        Try::new("trailers", "/")
            .body(urlenc, b"x=1")
            .trailers("Cookie: action=tolq_callback\r\n"),
    );
    out.push(Try::new("cookie", "/").header("Cookie", "a=1; action=tolq_callback"));
    out
}

/// Whether a record is a protected thing having run, or a page that
/// believed a forged verified header.
fn reached(r: &Value) -> bool {
    protected_run(r) || !r["verified"].is_null()
}

/// Send each try (raw HTTP/1.1) and answer the statuses.
async fn send_tries(client: &Client, tries: &[Try]) -> Vec<(String, Vec<u16>)> {
    stream::iter(tries.iter())
        .map(|t| async move {
            let (statuses, _) = client.raw(&t.raw()).await;
            (format!("{}: {}", t.family, t.target), statuses)
        })
        .buffer_unordered(4)
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_family_of_the_second_red_team_reaches_a_script_on_any_engine() {
    let tries = families();
    for engine in [
        "mod_php",
        "mod_php opencart",
        "mod_php deflate",
        "php-fpm",
        "php -S",
        "nginx",
    ] {
        let site = Site::start(engine);
        let direct = Client::http(site.addr());
        send_tries(&direct, &tries).await;
        let reached_directly = site.records().iter().filter(|r| reached(r)).count();
        assert!(
            reached_directly > 0,
            "{engine}: the table is no attack here"
        );
        let before = site.records().len();

        let gw = gateway(site.addr(), "");
        let https = Client::https(gw.https.unwrap(), Version::H1);
        let answered = send_tries(&https, &tries).await;
        let records = site.records();
        let through: Vec<String> = records[before..]
            .iter()
            .filter(|r| reached(r))
            .map(|r| r.to_string())
            .collect();
        println!(
            "second red team, {engine}: {} tries, {reached_directly} reached a script directly, {} through callgate",
            tries.len(),
            through.len()
        );
        assert!(through.is_empty(), "{engine}: {through:#?}");
        let answered_by_site: Vec<&(String, Vec<u16>)> = answered
            .iter()
            .filter(|(f, s)| {
                !(matches!(s.as_slice(), [400] | [403])
                    || f.starts_with("forged")
                    || f.starts_with("trailers"))
            })
            .collect();
        assert!(
            answered_by_site.is_empty(),
            "{engine}: {answered_by_site:?}"
        );
        // Ordinary pages still work.
        let r = https
            .post(
                "/index.php",
                &[("content-type", "application/json")],
                br#"{"action":"view"}"#,
            )
            .await;
        assert_eq!(&r.body[..], b"page view\n", "{engine}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_families_are_refused_over_h2_too() {
    let site = Site::start("mod_php");
    let gw = gateway(site.addr(), "");
    let h2 = Client::https(gw.https.unwrap(), Version::H2);
    for t in families().iter().filter(|t| t.trailers.is_none()) {
        let headers: Vec<(&str, &str)> = t
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .filter(|(k, _)| !k.contains('.'))
            .collect();
        let method = if t.body.is_empty() {
            http::Method::GET
        } else {
            http::Method::POST
        };
        let r = h2.request(method, &t.target, &headers, &t.body).await;
        if !t.family.starts_with("forged") {
            assert!(
                matches!(r.status.as_u16(), 400 | 403),
                "{}: {} got {}",
                t.family,
                t.target,
                r.status
            );
        }
    }
    let through: Vec<Value> = site.records().into_iter().filter(reached).collect();
    assert!(through.is_empty(), "{through:#?}");
}

/// Run `cmd`; its stdout.
fn output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The false-positive corpus: ordinary form posts, uploads and JSON API
/// calls as real clients send them (curl, Python requests, PHP's curl,
/// Chromium's own form submissions and fetch), through callgate to the
/// front controller. Each must reach the site unchanged: none is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_clients_forms_uploads_and_json_calls_pass() {
    let site = Site::start("mod_php");
    let gw = gateway(site.addr(), "");
    let url = format!("http://{}/index.php", gw.http.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("photo.jpg");
    // Bytes of every value, as an upload has.
    let data: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&bin, &data).unwrap();
    let txt = dir.path().join("notes.txt");
    std::fs::write(
        &txt,
        "Meeting notes\r\n--\r\nwebhooks, callbacks and a tolq invoice\n",
    )
    .unwrap();
    let (bin, txt) = (bin.display().to_string(), txt.display().to_string());
    let mut answers: Vec<(String, String)> = Vec::new();

    let curl_cases: Vec<Vec<String>> = vec![
        vec![
            "-F".into(),
            "action=view".into(),
            "-F".into(),
            "name=Jane Doe".into(),
            "-F".into(),
            format!("file=@{bin}"),
        ],
        vec![
            "-d".into(),
            "action=view&q=hello+world&email=a%40b.example".into(),
        ],
        vec![
            "--data-urlencode".into(),
            "action=view".into(),
            "--data-urlencode".into(),
            "text=line one\nline two & more; callback=later".into(),
        ],
        vec![
            "--json".into(),
            r#"{"action":"view","items":[1,2,3],"note":"webhooks are fine"}"#.into(),
        ],
        vec![
            "-F".into(),
            "action=view".into(),
            "-F".into(),
            format!("doc=@{txt};type=text/plain"),
            "-F".into(),
            "meta={\"a\":1};type=application/json".into(),
        ],
        vec![
            "-X".into(),
            "PUT".into(),
            "--data-binary".into(),
            format!("@{bin}"),
            "-H".into(),
            "Content-Type: application/octet-stream".into(),
            "--url-query".into(),
            "action=view".into(),
        ],
        vec![
            "-H".into(),
            "Cookie: session=abc123; cart=2".into(),
            "-H".into(),
            "Referer: https://www.example.com/shop?page=2".into(),
            "--url-query".into(),
            "action=view".into(),
        ],
    ];
    for args in &curl_cases {
        let out = output(
            Command::new("curl")
                .args(["-s", "-w", "\n%{http_code}"])
                .args(args)
                .arg(&url),
        );
        let (body, code) = out.rsplit_once('\n').unwrap();
        answers.push((format!("curl {args:?}"), format!("{code} {}", body.trim())));
    }

    let python = format!(
        r#"
import requests
u = "{url}"
data = open("{bin}", "rb").read()
for r in [
    requests.post(u, data={{"action": "view", "x": "1", "msg": "héllo wörld"}}),
    requests.post(u, data={{"action": "view"}}, files={{"file": ("photo.jpg", data, "image/jpeg")}}),
    requests.post(u, files={{"action": (None, "view"), "doc": open("{txt}", "rb")}}),
    requests.post(u, json={{"action": "view", "nested": {{"list": [1, "two"]}}}}),
    requests.put(u + "?action=view", data=data, headers={{"Content-Type": "application/octet-stream"}}),
    requests.get(u, params={{"action": "view", "q": "a&b=c"}}),
]:
    print(r.status_code, r.text.strip())
"#
    );
    for (i, line) in output(Command::new("python3").args(["-c", &python]))
        .lines()
        .enumerate()
    {
        answers.push((format!("python requests #{i}"), line.to_owned()));
    }

    if Command::new("php")
        .args(["-r", "exit(function_exists('curl_init') ? 0 : 1);"])
        .status()
        .unwrap()
        .success()
    {
        let php = format!(
            r#"
foreach ([
  ['action' => 'view', 'file' => new CURLFile('{bin}', 'image/jpeg', 'photo.jpg')],
  http_build_query(['action' => 'view', 'list' => [1, 2], 'text' => 'a & b']),
  ['action' => 'view', 'name' => 'Jane'],
] as $fields) {{
  $c = curl_init('{url}');
  curl_setopt($c, CURLOPT_POSTFIELDS, $fields);
  curl_setopt($c, CURLOPT_RETURNTRANSFER, true);
  $body = curl_exec($c);
  echo curl_getinfo($c, CURLINFO_RESPONSE_CODE), ' ', trim($body), "\n";
}}
$c = curl_init('{url}');
curl_setopt($c, CURLOPT_POSTFIELDS, json_encode(['action' => 'view', 'x' => [1]]));
curl_setopt($c, CURLOPT_HTTPHEADER, ['Content-Type: application/json']);
curl_setopt($c, CURLOPT_RETURNTRANSFER, true);
$body = curl_exec($c);
echo curl_getinfo($c, CURLINFO_RESPONSE_CODE), ' ', trim($body), "\n";
"#
        );
        for (i, line) in output(Command::new("php").args(["-r", &php]))
            .lines()
            .enumerate()
        {
            answers.push((format!("php curl #{i}"), line.to_owned()));
        }
    } else {
        println!("php has no curl extension here (install php-curl): PHP's curl not measured");
    }

    let mut browser = support::browser::Browser::launch().await;
    let page = url.replace("/index.php", "/page.php");
    let forms = [
        // A multipart form with a file, as the browser itself submits it.
        r#"const f = document.createElement('form'); f.method = 'post'; f.action = '/index.php';
           f.enctype = 'multipart/form-data';
           f.innerHTML = '<input name="action" value="view"><input name="title" value="Hello, world"><textarea name="body">line 1\nline 2</textarea><input type="file" name="upload">';
           const dt = new DataTransfer();
           dt.items.add(new File([new Uint8Array(5000).map((_, i) => i * 7)], 'a photo.jpg', {type: 'image/jpeg'}));
           f.querySelector('input[type=file]').files = dt.files;
           document.body.appendChild(f); f.submit();"#,
        r#"const f = document.createElement('form'); f.method = 'post'; f.action = '/index.php';
           f.innerHTML = '<input name="action" value="view"><input name="q" value="café & co; 100%">';
           document.body.appendChild(f); f.submit();"#,
    ];
    for (i, js) in forms.iter().enumerate() {
        browser.goto(&page).await;
        browser.submit(js).await;
        answers.push((
            format!("chromium form #{i}"),
            format!("200 {}", browser.text().await.trim()),
        ));
    }
    browser.goto(&page).await;
    let fetched = browser
        .eval(r#"fetch('/index.php', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify({action: 'view', cart: [{id: 1}]})}).then(async r => r.status + ' ' + (await r.text()).trim())"#)
        .await;
    answers.push((
        "chromium fetch json".into(),
        fetched.as_str().unwrap_or("").to_owned(),
    ));

    let refused: Vec<&(String, String)> = answers
        .iter()
        .filter(|(_, a)| a != "200 page view")
        .collect();
    println!(
        "false positives on the ordinary corpus: {} of {} requests refused or changed",
        refused.len(),
        answers.len()
    );
    assert!(refused.is_empty(), "{refused:#?}");
    assert!(answers.len() >= 17, "{answers:#?}");
}

/// A script that answers 101 with the right accept but never switches:
/// upgrades are relayed only under websocket_paths (none by default), so a
/// request written into the "tunnel" never reaches the site as one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_outside_websocket_paths_is_no_tunnel_even_with_the_right_accept() {
    for engine in ["mod_php", "php-fpm"] {
        let site = Site::start(engine);
        for extra in ["", "websocket_paths = [\"/ws/\"]"] {
            let gw = gateway(site.addr(), extra);
            let http = Client::http(gw.http.unwrap());
            for path in [
                "/fake_ws.php",
                "/ws/../fake_ws.php",
                "/ws/%2e%2e/fake_ws.php",
            ] {
                let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\nGET /tolq/callback.php HTTP/1.1\r\nHost: localhost\r\n\r\nPOST /?x=1 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 20\r\nConnection: close\r\n\r\naction=tolq_callback");
                let (statuses, text) = http.raw(req.as_bytes()).await;
                assert!(!statuses.contains(&101), "{engine} {extra} {path}: {text}");
                assert!(!text.contains("callback\n"), "{engine} {path}: {text}");
            }
        }
        let runs = protected_runs(&site);
        assert!(runs.is_empty(), "{engine}: {runs:?}");
    }
}

/// Apache answers a download before reading a slow upload and then reads
/// the rest on that connection: callgate must not hand that connection to
/// other clients' pages and verified callbacks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upload_to_a_download_does_not_hold_other_clients_requests() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let site = Site::start("mod_php");
    let gw = gateway(site.addr(), "min_body_rate = \"0\"");
    let mut uploads = Vec::new();
    for _ in 0..2 {
        let mut tcp = Client::http(gw.http.unwrap())
            .source_ip("127.0.0.2")
            .connect()
            .await;
        tcp.write_all(b"POST /download.php HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: 10000000\r\n\r\n")
            .await
            .unwrap();
        uploads.push(tokio::spawn(async move {
            // 2 KiB/s; the answer is read as it comes.
            let mut buf = vec![0u8; 64 * 1024];
            let start = std::time::Instant::now();
            while start.elapsed() < std::time::Duration::from_secs(14) {
                if tcp.write_all(&[b'u'; 205]).await.is_err() {
                    return;
                }
                let _ =
                    tokio::time::timeout(std::time::Duration::from_millis(100), tcp.read(&mut buf))
                        .await;
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let https = Client::https(gw.https.unwrap(), Version::H1);
    let mut failed = Vec::new();
    for i in 0..20 {
        let page = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            https.request(http::Method::GET, "/page.php", &[], b""),
        )
        .await;
        if !matches!(&page, Ok(r) if r.status == 200) {
            failed.push(format!("page #{i}"));
        }
        if i % 4 == 0 {
            let cb = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                https.post(&format!("/tolq/callback?token={TOKEN}"), &[], b"{}"),
            )
            .await;
            if !matches!(&cb, Ok(r) if r.status == 200) {
                failed.push(format!("callback #{i}"));
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    }
    for u in uploads {
        u.abort();
    }
    assert!(failed.is_empty(), "held behind a slow upload: {failed:?}");
}

/// Behind a trusted proxy, the per-client cap counts the client the proxy
/// names, not the proxy: one client's slow uploads leave another client
/// behind the same proxy served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_cap_counts_the_client() {
    use tokio::io::AsyncWriteExt;
    let site = Site::start("php -S");
    let gw = gateway(
        site.addr(),
        "max_requests_per_client = 4\n\n[gateway]\ntrusted_proxies = [\"127.0.0.2/32\"]",
    );
    let proxy = Client::http(gw.http.unwrap()).source_ip("127.0.0.2");
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut tcp = proxy.connect().await;
        tcp.write_all(b"POST /page.php HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 203.0.113.1\r\nContent-Length: 100000\r\n\r\nx")
            .await
            .unwrap();
        held.push(tcp);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let r = proxy
        .request(
            http::Method::GET,
            "/page.php",
            &[("x-forwarded-for", "203.0.113.2")],
            b"",
        )
        .await;
    assert_eq!(r.status, 200, "another client behind the proxy");
    let r = proxy
        .request(
            http::Method::GET,
            "/page.php",
            &[("x-forwarded-for", "203.0.113.1")],
            b"",
        )
        .await;
    assert_eq!(r.status, 429, "the client holding four");
    drop(held);
}

/// `check` lists the protected values and warns about one that ordinary
/// pages would carry (short, or an ordinary word), naming the fixes.
#[test]
fn check_lists_protected_values_and_warns_about_ordinary_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("callgate.toml");
    std::fs::write(
        &path,
        "[listen]\nhttp = \"127.0.0.1:0\"\n\n[[route]]\nname = \"cb\"\npath = \"/hooks/cb\"\nupstream = \"http://127.0.0.1:8080/index.php?action=callback&r=pay\"\nallow_ips = [\"127.0.0.1\"]\n\n[[route]]\nname = \"tolq\"\npath = \"/hooks/tolq\"\nupstream = \"http://127.0.0.1:8080/index.php?action=tolq_callback\"\nallow_ips = [\"127.0.0.1\"]\n\n[[passthrough]]\nupstream = \"http://127.0.0.1:8080\"\nprotect = [\"/cron.php\"]\nwebsocket_paths = [\"/ws/\"]\n",
    )
    .unwrap();
    let (code, out, err) =
        support::gateway::run_cli(&["check", "--config", path.to_str().unwrap()], b"", &[]);
    assert_eq!(code, 0, "{err}");
    for v in [
        "tolq_callback",
        "callback",
        "pay",
        "cron.php",
        "websocket_paths: /ws/",
    ] {
        assert!(out.contains(v), "{v} in {out}");
    }
    for v in ["\"callback\"", "\"pay\""] {
        let line = err.lines().find(|l| l.contains(v)).unwrap_or_default();
        assert!(
            line.contains("rename the action") && line.contains("protect_values = false"),
            "{v}: {err}"
        );
    }
    assert!(!err.contains("\"tolq_callback\""), "{err}");
    let off = std::fs::read_to_string(&path).unwrap() + "protect_values = false\n";
    std::fs::write(&path, off).unwrap();
    let (code, out, err) =
        support::gateway::run_cli(&["check", "--config", path.to_str().unwrap()], b"", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("protected values: off"), "{out}");
    assert!(!err.contains("rename the action"), "{err}");
}

/// HTTP/2 request trailers carrying the verified header and the action in
/// a cookie: never forwarded (php -S would believe them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_request_trailers_are_never_forwarded() {
    use http_body_util::{BodyExt, StreamBody};
    let site = Site::start("php -S");
    let gw = gateway(site.addr(), "");
    let h2 = Client::https(gw.https.unwrap(), Version::H2);
    let tls = h2.tls_connect().await;
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-callgate-verified", "ip,token,hmac".parse().unwrap());
    trailers.insert("cookie", "action=tolq_callback".parse().unwrap());
    trailers.insert("x-forwarded-for", "84.22.114.141".parse().unwrap());
    let frames: Vec<Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>> = vec![
        Ok(hyper::body::Frame::data(bytes::Bytes::from_static(b"x=1"))),
        Ok(hyper::body::Frame::trailers(trailers)),
    ];
    let body = StreamBody::new(futures_util::stream::iter(frames));
    let req = http::Request::post(format!("https://localhost:{}/page.php", gw.https_port()))
        .header("content-type", "application/x-www-form-urlencoded")
        // Declared, as hyper (and many servers) want before writing them on.
        .header("trailer", "x-callgate-verified, cookie, x-forwarded-for")
        .body(body)
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let _ = resp.into_body().collect().await;
    let records = site.records();
    let last = records.last().unwrap();
    assert!(last["verified"].is_null(), "{last}");
    assert_ne!(last["forwarded_for"], "84.22.114.141", "{last}");
    assert!(records.iter().all(|r| !protected_run(r)), "{records:?}");
}
