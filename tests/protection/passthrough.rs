//! A whole site behind callgate: pages pass through to a real `php -S`,
//! callbacks are verified on their routes, and no spelling of a callback
//! script's path reaches it unverified.

use callgate_testkit as support;

use http::Method;
use serde_json::Value;
use support::raw::exchange;
use support::{Client, Gateway, PhpReceiver, Version};

const TOKEN: &str = "site-token-3-0123456789";

fn start(php: &PhpReceiver) -> Gateway {
    Gateway::start(&format!(
        r#"
[[route]]
name = "tolq"
path = "/tolq/callback"
upstream = "{site}/tolq/callback.php"
allow_ips = ["127.0.0.1"]
token = {{ secrets = ["{TOKEN}"] }}

[[route]]
name = "front"
path = "/hooks/tolq"
upstream = "{site}/index.php?action=tolq_callback"
token = {{ secrets = ["{TOKEN}"] }}

[[passthrough]]
upstream = "{site}"
protect = ["/admin/"]
"#,
        site = php.url("")
    ))
}

/// The scripts PHP ran, in order.
fn scripts(php: &PhpReceiver) -> Vec<String> {
    php.records()
        .iter()
        .map(|r: &Value| {
            format!(
                "{}{}",
                r["script"].as_str().unwrap_or("?"),
                r["action"]
                    .as_str()
                    .map(|a| format!(" {a}"))
                    .unwrap_or_default()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_pass_through_and_callbacks_are_verified() {
    let php = PhpReceiver::start_in("site");
    let gw = start(&php);
    let https = Client::https(gw.https.unwrap(), Version::H1);
    let h2 = Client::https(gw.https.unwrap(), Version::H2);
    let r = https.request(Method::GET, "/", &[], b"").await;
    assert_eq!((r.status.as_u16(), &r.body[..]), (200, &b"page home\n"[..]));
    let r = h2.request(Method::GET, "/page.php?x=1", &[], b"").await;
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with(b"<html>"));
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let r = https
        .request(Method::POST, "/index.php", &form, b"action=view")
        .await;
    assert_eq!(&r.body[..], b"page view\n");
    // The callbacks, on their verified routes.
    let r = https
        .post(&format!("/tolq/callback?token={TOKEN}"), &[], b"{}")
        .await;
    assert_eq!((r.status.as_u16(), &r.body[..]), (200, &b"callback\n"[..]));
    let r = h2
        .post(&format!("/hooks/tolq?token={TOKEN}"), &[], b"{}")
        .await;
    assert_eq!(&r.body[..], b"page tolq_callback\n");
    // A refused callback never falls through to the site.
    let r = https.post("/tolq/callback?token=wrong", &[], b"{}").await;
    assert_eq!(r.status, 403);
    assert_eq!(
        scripts(&php),
        [
            "index.php home",
            "page.php",
            "index.php view",
            "tolq/callback.php",
            "index.php tolq_callback"
        ]
    );
    let records = php.records();
    assert_eq!(records[3]["verified"], "ip,token");
    assert!(
        records[0]["verified"].is_null(),
        "a page got a verified header"
    );
}

/// Each is a way `php -S` (or Apache) would run the callback script, the
/// front controller's callback action, or the admin pages.
const BYPASSES: &[&str] = &[
    "/tolq/callback.php",
    "/tolq/callback.php?token=x",
    "/tolq//callback.php",
    "//tolq/callback.php",
    "/tolq/./callback.php",
    "/x/../tolq/callback.php",
    "/tolq/callback%2ephp",
    "/tolq%2Fcallback.php",
    "/%74olq/callback.php",
    "/tolq/callback.php/extra",
    "/tolq/callback.php%00.jpg",
    "/TOLQ/callback.php",
    "/tolq/callback.php.",
    "/tolq\\callback.php",
    "/tolq/callback.php;x=1",
    "/?action=tolq_callback",
    "/index.php?action=tolq_callback",
    "/index.php?acti%6Fn=tolq_callback",
    "/index.php?+action=tolq_callback",
    "/index.php/x?action=tolq_callback",
    "/admin/",
    "/admin",
    "/admin/index.php",
    "/Admin/index.php",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_spelling_of_a_protected_path_reaches_php() {
    let php = PhpReceiver::start_in("site");
    let gw = start(&php);
    // Without callgate, php -S runs the callback script for these spellings.
    for target in [
        "/tolq//callback.php",
        "/x/../tolq/callback.php",
        "/tolq/callback.php/extra",
        "/?action=tolq_callback",
    ] {
        let (_, text) = exchange(
            php.addr,
            format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        assert!(
            text.contains("callback"),
            "php -S did not run it for {target}: {text}"
        );
    }
    let ran_directly = php.records().len();
    for target in BYPASSES {
        let request =
            format!("GET {target} HTTP/1.1\r\nHost: site.example\r\nConnection: close\r\n\r\n");
        let (statuses, text) = exchange(gw.http.unwrap(), request.as_bytes()).await;
        assert!(statuses == [403] || statuses == [400], "{target}: {text}");
    }
    let form = "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 22\r\nConnection: close\r\n\r\naction=tolq_callback&x";
    let (statuses, text) = exchange(gw.http.unwrap(), form.as_bytes()).await;
    assert_eq!(statuses, [403], "{text}");
    assert_eq!(
        php.records().len(),
        ran_directly,
        "PHP ran: {:?}",
        &scripts(&php)[ran_directly..]
    );
    let log = gw.wait_for_log("reason=\"protected: ");
    assert!(log.contains("outcome=\"refused\" reason=\"protected: the site would resolve it to /tolq/callback.php\""), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_apache_example_serves_the_site_and_its_callbacks() {
    let php = PhpReceiver::start_in("site");
    let (text, creds) = support::gateway::apache_example();
    let text = text
        .replace("127.0.0.1:8080", &php.addr.to_string())
        .replace("127.0.0.1:8081", &php.addr.to_string())
        .replace("\"www.example.com\", \"example.com\"", "\"localhost\"");
    let gw = Gateway::start_raw(
        &text,
        &[("CREDENTIALS_DIRECTORY", creds.path().to_str().unwrap())],
    );
    let https = Client::https(gw.https.unwrap(), Version::H2);
    // A page of the site.
    let r = https.request(Method::GET, "/?x=1", &[], b"").await;
    assert_eq!((r.status.as_u16(), &r.body[..]), (200, &b"page home\n"[..]));
    // A Gengo callback, verified by its token.
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let job = b"job=%7B%22job_id%22%3A%2242%22%2C%22status%22%3A%22approved%22%7D";
    let r = https
        .post("/gengo/callback?token=g-0123456789abcdef", &form, job)
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // The scripts themselves, and plain HTTP.
    let r = https.post("/gengo/callback.php", &form, job).await;
    assert_eq!(r.status, 403);
    let r = https.post("/tolq//callback.php", &[], b"{}").await;
    assert_eq!(r.status, 403);
    let r = Client::http(gw.http.unwrap())
        .request(Method::GET, "/page.php", &[], b"")
        .await;
    assert_eq!(r.status, 308);
    let seen = php.records();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1]["receiver"], "gengo");
    assert_eq!(seen[1]["job"]["job_id"], "42");
    assert_eq!(seen[1]["verified"], "token");
}

/// examples/site-behind-callgate.md word for word, on real Apache with
/// mod_php: the guide's own step-4b Apache block (only the document root
/// and the scripts' port changed), the shipped example config (only its
/// ports, certificate and names changed). The routes reach the scripts
/// through their own vhost, the site's vhost refuses a direct hit itself,
/// callgate refuses it too, port 80 (the http listener) answers 308, and
/// `check` passes without warning of the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_steps_work_on_real_apache() {
    let root = env!("CARGO_MANIFEST_DIR");
    let guide =
        std::fs::read_to_string(format!("{root}/examples/site-behind-callgate.md")).unwrap();
    let block = guide
        .split("```apache\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains("Listen 127.0.0.1:8081"))
        .expect("the guide's step 4b Apache block");
    let scripts_port = support::apache::free_port();
    let lock = block
        .replace(
            "/var/www/site",
            &format!("{}/tests/php/site", support::served_root()),
        )
        .replace("127.0.0.1:8081", &format!("127.0.0.1:{scripts_port}"));
    let apache = support::apache::Apache::start(support::apache::Engine::ModPhp, "site", &lock);

    let (text, creds) = support::gateway::apache_example();
    let text = text
        .replace("127.0.0.1:8080", &apache.addr.to_string())
        .replace("127.0.0.1:8081", &format!("127.0.0.1:{scripts_port}"))
        .replace("\"www.example.com\", \"example.com\"", "\"localhost\"");
    let creds_dir = creds.path().to_str().unwrap();
    let gw = Gateway::start_raw(&text, &[("CREDENTIALS_DIRECTORY", creds_dir)]);
    let (code, _, err) = support::gateway::run_cli(
        &[
            "check",
            "--config",
            gw.config_path.to_str().unwrap(),
            "--credentials",
            creds_dir,
        ],
        b"",
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("also serves and protects"), "{err}");

    let https = Client::https(gw.https.unwrap(), Version::H1);
    let r = https.request(Method::GET, "/page.php", &[], b"").await;
    assert_eq!(r.status, 200, "the site");
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let job = b"job=%7B%22job_id%22%3A%2242%22%2C%22status%22%3A%22approved%22%7D";
    let r = https
        .post("/gengo/callback?token=g-0123456789abcdef", &form, job)
        .await;
    assert_eq!(
        r.status,
        200,
        "{} {}",
        String::from_utf8_lossy(&r.body),
        apache.error_log()
    );
    // A direct hit: refused by callgate, and by Apache itself on the site's vhost.
    assert_eq!(
        https.post("/gengo/callback.php", &form, job).await.status,
        403
    );
    let req = "POST /gengo/callback.php HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let (statuses, _) = support::raw::exchange(apache.addr, req.as_bytes()).await;
    assert_eq!(statuses, [403], "the site's vhost denies the script itself");
    // Port 80: the redirect.
    let r = Client::http(gw.http.unwrap())
        .request(Method::GET, "/page?x=1", &[], b"")
        .await;
    assert_eq!(r.status, 308);
    let runs: Vec<_> = apache
        .records()
        .into_iter()
        .filter(|r| r["receiver"] == "gengo")
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["verified"], "token");

    // The example's routes pointed at the site's vhost: check warns.
    let locked = text.replace(
        &format!("127.0.0.1:{scripts_port}"),
        &apache.addr.to_string(),
    );
    let path = gw.dir.path().join("locked.toml");
    std::fs::write(&path, locked).unwrap();
    let (code, _, err) = support::gateway::run_cli(
        &[
            "check",
            "--config",
            path.to_str().unwrap(),
            "--credentials",
            creds_dir,
        ],
        b"",
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("route \"gengo\" delivers to") && err.contains("also serves and protects"),
        "{err}"
    );
}
