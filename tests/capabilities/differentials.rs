//! What callgate checks is what PHP reads: each attempt to make a real
//! `php -S` receiver read something other than what callgate verified (a
//! header spelt with `_`, a token PHP folds to the same name, an upstream
//! URL's parameter sent again, a Gengo field twice) is refused, and what
//! passes is read by PHP exactly as checked.

use callgate_testkit as support;

use serde_json::Value;
use support::{Client, Gateway, PhpReceiver, Version};

const TOKEN: &str = "diff-token-9-0123456789";

fn start() -> (PhpReceiver, Gateway) {
    let php = PhpReceiver::start();
    let config = format!(
        r#"
[[route]]
name = "ip-only"
path = "/ip"
upstream = "{dump}"
allow_ips = ["127.0.0.1"]

[[route]]
name = "front"
path = "/front"
upstream = "{dump}?action=tolq_callback"
token = {{ secrets = ["{TOKEN}"] }}

[[route]]
name = "stripped"
path = "/stripped"
upstream = "{dump}"
token = {{ secrets = ["{TOKEN}"] }}
strip_token = true

[[route]]
name = "gengo"
path = "/gengo"
upstream = "{dump}"
preset = "gengo"
token = {{ secrets = ["{TOKEN}"] }}
"#,
        dump = php.url("/dump.php")
    );
    (php, Gateway::start(&config))
}

async fn post(gw: &Gateway, path: &str, headers: &[(&str, &str)], body: &[u8]) -> u16 {
    Client::https(gw.https.unwrap(), Version::H1)
        .post(path, headers, body)
        .await
        .status
        .as_u16()
}

/// The one record PHP wrote since `before` records.
fn last(php: &PhpReceiver, before: usize) -> Value {
    let records = php.records();
    assert_eq!(
        records.len(),
        before + 1,
        "PHP got {} requests",
        records.len() - before
    );
    records.last().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_headers_in_any_spelling_never_reach_php() {
    let (php, gw) = start();
    let status = post(
        &gw,
        "/ip",
        &[
            ("X-Callgate-Verified", "junk"),
            ("X_Callgate_Verified", "ip,token,hmac"),
            ("X_Forwarded_For", "84.22.114.141"),
            ("X-Forwarded_For", "84.22.114.141"),
            ("X-Real-IP", "84.22.114.141"),
            ("Client-IP", "84.22.114.141"),
            ("X-Original-URL", "/admin"),
            ("X-Rewrite-URL", "/admin"),
            ("X-HTTP-Method-Override", "DELETE"),
        ],
        b"{}",
    )
    .await;
    assert_eq!(status, 200);
    let seen = last(&php, 0);
    let server = &seen["server"];
    assert_eq!(server["HTTP_X_CALLGATE_VERIFIED"], "ip", "{server}");
    assert_eq!(server["HTTP_X_FORWARDED_FOR"], "127.0.0.1", "{server}");
    for gone in [
        "HTTP_X_REAL_IP",
        "HTTP_CLIENT_IP",
        "HTTP_X_ORIGINAL_URL",
        "HTTP_X_REWRITE_URL",
        "HTTP_X_HTTP_METHOD_OVERRIDE",
    ] {
        assert!(server.get(gone).is_none(), "{gone} reached PHP: {server}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_urls_parameters_cannot_be_overridden() {
    let (php, gw) = start();
    let ok = format!("/front?token={TOKEN}&id=7");
    assert_eq!(post(&gw, &ok, &[], b"{}").await, 200);
    let seen = last(&php, 0);
    assert_eq!(seen["get"]["action"], "tolq_callback");
    assert_eq!(seen["get"]["token"], TOKEN);
    for attack in [
        "&action=delete_all",
        "&act%69on=delete_all",
        "&+action=delete_all",
        "&action[]=delete_all",
        "&action%00x=delete_all",
    ] {
        let path = format!("/front?token={TOKEN}{attack}");
        assert_eq!(post(&gw, &path, &[], b"{}").await, 403, "{attack}");
    }
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let path = format!("/front?token={TOKEN}");
    assert_eq!(post(&gw, &path, &form, b"action=delete_all").await, 403);
    assert_eq!(php.records().len(), 1, "a refused request reached PHP");
    assert!(gw
        .wait_for_log("reason=\"param: ")
        .contains("is set by the upstream URL"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_php_folds_to_the_token_is_the_token() {
    let (php, gw) = start();
    for attack in [
        format!("?token={TOKEN}&+token=EVIL"),
        format!("?token={TOKEN}&token%00x=EVIL"),
        format!("?token={TOKEN}&token[]=EVIL"),
        format!("?token={TOKEN}&%20token=EVIL"),
    ] {
        let path = format!("/front{attack}");
        assert_eq!(post(&gw, &path, &[], b"{}").await, 403, "{attack}");
    }
    // In a form body the token would win in $_REQUEST.
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let path = format!("/front?token={TOKEN}");
    assert_eq!(post(&gw, &path, &form, b"token=EVIL").await, 403);
    assert_eq!(php.records().len(), 0, "a refused request reached PHP");
    // A leading blank is dropped by PHP: it is the token, and PHP reads it so.
    let path = format!("/front?%20token={TOKEN}");
    assert_eq!(post(&gw, &path, &[], b"{}").await, 200);
    assert_eq!(last(&php, 0)["get"]["token"], TOKEN);
    // strip_token removes every spelling of it.
    for query in [
        format!("token={TOKEN}&x=1"),
        format!("%20token={TOKEN}&x=1"),
    ] {
        let before = php.records().len();
        let path = format!("/stripped?{query}");
        assert_eq!(post(&gw, &path, &[], b"{}").await, 200);
        let seen = last(&php, before);
        assert!(seen["get"].get("token").is_none(), "{seen}");
        assert_eq!(seen["get"]["x"], "1");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gengo_field_php_reads_is_the_one_checked() {
    let (php, gw) = start();
    let path = format!("/gengo?token={TOKEN}");
    let form = [("content-type", "application/x-www-form-urlencoded")];
    for attack in [
        &b"job=%7B%22a%22%3A1%7D&job[]=x"[..],
        b"job=%7B%22a%22%3A1%7D&%20job=y",
        b"job=%7B%22a%22%3A1%7D&job%00z=y",
        b"job[x]=%7B%22a%22%3A1%7D",
        b"comment=%7B%22a%22%3A1%7D&job=%7B%7D",
    ] {
        let status = post(&gw, &path, &form, attack).await;
        assert_eq!(status, 403, "{}", String::from_utf8_lossy(attack));
    }
    // Content-Type named as hop-by-hop would reach PHP without it: an empty $_POST.
    let hop = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("connection", "Content-Type"),
    ];
    assert_eq!(post(&gw, &path, &hop, b"job=%7B%22a%22%3A1%7D").await, 403);
    assert_eq!(php.records().len(), 0, "a refused request reached PHP");
    let status = post(&gw, &path, &form, b"job=%7B%22job_id%22%3A%2242%22%7D&x=1").await;
    assert_eq!(status, 200);
    let seen = last(&php, 0);
    assert_eq!(seen["post"]["job"], "{\"job_id\":\"42\"}");
    assert_eq!(seen["server"]["HTTP_X_CALLGATE_VERIFIED"], "token");
}
