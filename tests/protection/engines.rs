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
use support::{Client, Gateway, PhpReceiver, Version};

const TOKEN: &str = "site-token-protect";

/// A site engine behind callgate: its address and what its scripts ran.
enum Site {
    Apache(Apache),
    Php(PhpReceiver),
}

impl Site {
    fn start(name: &str) -> Site {
        match name {
            "mod_php" => Site::Apache(Apache::start(Engine::ModPhp, "site", "")),
            "php-fpm" => Site::Apache(Apache::start(Engine::PhpFpm, "site", "")),
            _ => Site::Php(PhpReceiver::start_in("site")),
        }
    }

    fn addr(&self) -> SocketAddr {
        match self {
            Site::Apache(a) => a.addr,
            Site::Php(p) => p.addr,
        }
    }

    fn records(&self) -> Vec<Value> {
        match self {
            Site::Apache(a) => a.records(),
            Site::Php(p) => p.records(),
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
    let root = format!("{}/tests/php/site", env!("CARGO_MANIFEST_DIR"));
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
