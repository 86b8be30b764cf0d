//! The pass-through promise against real engines: Apache 2.4 with mod_php
//! (prefork, pretty-URL rewrite to index.php), Apache event with php-fpm
//! (MultiViews, FallbackResource) and `php -S` serve tests/php/site behind
//! callgate. A generated table of request spellings never runs a protected
//! script (the Tolq and Gengo callback scripts, the admin directory, the
//! front controller's callback action) through callgate, on the https and
//! the http listener, over HTTP/1.1 and h2, while many of the same
//! spellings sent to the engines directly do; the site's ordinary pages
//! still work.

mod support;

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
    for path in ["/", "/index.php", "/anything", "/page.php", "/index.php/x", "/x/y.html"] {
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
            let (statuses, _) = client.raw(req.as_bytes()).await;
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
        assert!(reached_directly >= 200, "{engine}: only {reached_directly} reached directly");
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
        assert!(through.is_empty(), "{engine}: through callgate: {through:?}");
        assert!(not_refused.is_empty(), "{engine}: answered by the site: {not_refused:?}");

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
                .args(["-sk", "--http2", "--path-as-is", "-o", "/dev/null", "-w", "%{http_code} %{http_version}"])
                .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
                .arg(format!("https://localhost:{port}{target}"))
                .output()
                .unwrap();
            let out = String::from_utf8_lossy(&out.stdout).into_owned();
            assert_eq!(out, "403 2", "{engine} h2 {target}");
        }
        assert!(protected_runs(&site).len() == reached_directly, "{engine}: h2 reached a script");

        // Ordinary pages still work, and the verified routes reach their scripts.
        for page in ["/", "/page.php", "/index.php?action=view", "/x/pretty-url"] {
            let r = https.request(http::Method::GET, page, &[], b"").await;
            assert_eq!(r.status, 200, "{engine} {page}");
        }
        let r = https.post(&format!("/tolq/callback?token={TOKEN}"), &[], b"{}").await;
        assert_eq!((r.status.as_u16(), &r.body[..]), (200, &b"callback\n"[..]), "{engine}");
        let r = https.post(&format!("/hooks/tolq?token={TOKEN}"), &[], b"{}").await;
        assert_eq!(&r.body[..], b"page tolq_callback\n", "{engine}");
        let runs = protected_runs(&site);
        assert_eq!(runs.len(), reached_directly + 2, "{engine}: {:?}", &runs[reached_directly..]);
        // Each protected run through callgate came verified.
        for r in site.records()[before..].iter().filter(|r| protected_run(r)) {
            assert!(r["verified"].as_str().is_some_and(|v| v.contains("token")), "{engine}: {r}");
        }
    }
}
