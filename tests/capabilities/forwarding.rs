//! Verified callbacks reach a real upstream byte for byte, over HTTP/1.1 and
//! h2, with the verified header, and the upstream's answer comes back.

use callgate_testkit as support;

use std::time::Duration;

use callgate::crypto::{Algorithm, Encoding};
use support::upstream::closed_port;
use support::{sign, Client, Gateway, Upstream, Version};

const KEY: &str = "tolq-api-key-0123456789";
const TOKEN: &str = "s3cret-token-0123456789";

fn tolq_route(upstream: &str, extra: &str) -> String {
    format!(
        r#"
[[route]]
name = "tolq"
path = "/tolq/callback"
upstream = "{upstream}"
allow_ips = ["127.0.0.1/32", "::1"]
token = {{ param = "token", secrets = ["{TOKEN}"] }}
hmac = {{ algorithm = "sha1", header = "X-Tolq-Signature", encoding = "hex", secrets = ["old-key-0123456789abcdef", "{KEY}"] }}
{extra}
"#
    )
}

/// A JSON body with bytes that are not UTF-8, to prove nothing re-encodes it.
fn body() -> Vec<u8> {
    let mut b = br#"{"id":42,"status":"finished","note":""#.to_vec();
    b.extend_from_slice(&[0xff, 0xfe, 0x00, 0xc3, 0x28]);
    b.extend_from_slice(br#""}"#);
    b
}

#[tokio::test]
async fn valid_callback_arrives_byte_for_byte_over_h1_and_h2() {
    let up = Upstream::recording().await;
    up.answer(
        201,
        vec![("x-receiver", "legacy"), ("content-type", "text/plain")],
        b"stored\n",
    );
    let gw = Gateway::start(&tolq_route(&up.url("/tolq/callback.php?site=1"), ""));
    let body = body();
    let sig = sign(Algorithm::Sha1, KEY, Encoding::Hex, &body);
    let path = format!("/tolq/callback?a=1&token={TOKEN}&b=%20x+y");

    for (i, version) in [Version::H1, Version::H2].into_iter().enumerate() {
        let reply = Client::https(gw.https.unwrap(), version)
            .post(
                &path,
                &[
                    ("content-type", "application/json; charset=utf-8"),
                    ("x-tolq-signature", &sig),
                    ("X-Callgate-Verified", "ip,token,hmac"),
                    ("x-callgate-VERIFIED", "spoofed"),
                    ("x-request-id", "abc-123"),
                ],
                &body,
            )
            .await;
        let want_alpn: &[u8] = if version == Version::H2 {
            b"h2"
        } else {
            b"http/1.1"
        };
        assert_eq!(reply.alpn.as_deref(), Some(want_alpn));
        assert_eq!(reply.status, 201, "{version:?}");
        assert_eq!(reply.headers["x-receiver"], "legacy");
        assert_eq!(&reply.body[..], b"stored\n");

        let got = &up.requests()[i];
        assert_eq!(got.method, "POST");
        assert_eq!(got.uri.path(), "/tolq/callback.php");
        assert_eq!(
            got.uri.query(),
            Some(format!("site=1&a=1&token={TOKEN}&b=%20x+y").as_str())
        );
        assert_eq!(&got.body[..], &body[..], "body must arrive byte for byte");
        let verified: Vec<_> = got.headers.get_all("x-callgate-verified").iter().collect();
        assert_eq!(
            verified,
            vec!["ip,token,hmac"],
            "exactly one verified header, ours"
        );
        assert_eq!(
            got.headers["content-type"],
            "application/json; charset=utf-8"
        );
        assert_eq!(got.headers["x-tolq-signature"], sig.as_str());
        assert_eq!(got.headers["x-request-id"], "abc-123");
        assert_eq!(
            got.headers["content-length"],
            body.len().to_string().as_str()
        );
        assert_eq!(got.headers["x-forwarded-for"], "127.0.0.1");
        assert_eq!(got.headers["x-forwarded-proto"], "https");
        assert_eq!(
            got.headers["x-forwarded-host"],
            format!("localhost:{}", gw.https_port()).as_str()
        );
    }
    assert_eq!(up.count(), 2);
}

/// ALPN names the protocol on TLS; a client that offers none speaks HTTP/1.1.
#[tokio::test]
async fn a_tls_client_without_alpn_is_served_http1() {
    let up = Upstream::recording().await;
    let gw = Gateway::start(&tolq_route(&up.url("/r"), ""));
    let sig = sign(Algorithm::Sha1, KEY, Encoding::Hex, b"{}");
    let reply = Client::https(gw.https.unwrap(), Version::H1)
        .no_alpn()
        .post(
            &format!("/tolq/callback?token={TOKEN}"),
            &[("x-tolq-signature", &sig)],
            b"{}",
        )
        .await;
    assert_eq!(reply.alpn, None);
    assert_eq!(reply.status, 200);
    assert_eq!(&up.requests()[0].body[..], b"{}");
}

#[tokio::test]
async fn client_forwarding_claims_are_replaced() {
    let up = Upstream::recording().await;
    let gw = Gateway::start(&tolq_route(&up.url("/r"), ""));
    let sig = sign(Algorithm::Sha1, KEY, Encoding::Hex, b"{}");
    let reply = Client::https(gw.https.unwrap(), Version::H1)
        .post(
            &format!("/tolq/callback?token={TOKEN}"),
            &[
                ("x-tolq-signature", &sig),
                ("x-forwarded-for", "84.22.114.141"),
                ("forwarded", "for=84.22.114.141"),
                ("x-forwarded-proto", "gopher"),
            ],
            b"{}",
        )
        .await;
    assert_eq!(reply.status, 200);
    let got = &up.requests()[0];
    assert_eq!(got.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(got.headers["x-forwarded-proto"], "https");
    assert!(!got.headers.contains_key("forwarded"));
}

#[tokio::test]
async fn hop_by_hop_headers_stop_at_callgate() {
    let up = Upstream::recording().await;
    let gw = Gateway::start(&tolq_route(&up.url("/r"), ""));
    let sig = sign(Algorithm::Sha1, KEY, Encoding::Hex, b"x");
    let reply = Client::https(gw.https.unwrap(), Version::H1)
        .post(
            &format!("/tolq/callback?token={TOKEN}"),
            &[
                ("x-tolq-signature", &sig),
                ("connection", "keep-alive, x-hop"),
                ("x-hop", "1"),
                ("keep-alive", "timeout=5"),
            ],
            b"x",
        )
        .await;
    assert_eq!(reply.status, 200);
    let got = &up.requests()[0];
    for h in ["x-hop", "keep-alive", "transfer-encoding", "upgrade"] {
        assert!(!got.headers.contains_key(h), "{h} must not be forwarded");
    }
}

#[tokio::test]
async fn rotated_second_secret_passes() {
    let up = Upstream::recording().await;
    let route = format!(
        r#"
[[route]]
name = "rot"
path = "/cb"
upstream = "{}"
token = {{ secrets = ["first-0123456789abcdef", "second-0123456789abcdef"] }}
hmac = {{ algorithm = "sha1", header = "X-Sig", secrets = ["k1-0123456789abcdef", "k2-0123456789abcdef"] }}
"#,
        up.url("/r")
    );
    let gw = Gateway::start(&route);
    let client = Client::https(gw.https.unwrap(), Version::H2);
    for (token, key) in [
        ("first-0123456789abcdef", "k1-0123456789abcdef"),
        ("second-0123456789abcdef", "k2-0123456789abcdef"),
        ("first-0123456789abcdef", "k2-0123456789abcdef"),
    ] {
        let sig = sign(Algorithm::Sha1, key, Encoding::Hex, b"b");
        let r = client
            .post(&format!("/cb?token={token}"), &[("x-sig", &sig)], b"b")
            .await;
        assert_eq!(r.status, 200, "token {token} key {key}");
    }
    assert_eq!(up.count(), 3);
    assert_eq!(
        up.requests()[0].headers["x-callgate-verified"],
        "token,hmac"
    );
}

#[tokio::test]
async fn sha256_base64_route_and_prefixed_uppercase_hex() {
    let up = Upstream::recording().await;
    let route = format!(
        r#"
[[route]]
name = "b64"
path = "/b64"
upstream = "{0}"
hmac = {{ algorithm = "sha256", header = "X-Hub-Signature-256", encoding = "base64", secrets = ["k-0123456789abcdef"] }}

[[route]]
name = "hex"
path = "/hex"
upstream = "{0}"
hmac = {{ algorithm = "sha512", header = "X-Sig", secrets = ["k-0123456789abcdef"] }}
"#,
        up.url("/r")
    );
    let gw = Gateway::start(&route);
    let c = Client::https(gw.https.unwrap(), Version::H1);
    let b64 = sign(
        Algorithm::Sha256,
        "k-0123456789abcdef",
        Encoding::Base64,
        b"payload",
    );
    assert_eq!(
        c.post("/b64", &[("x-hub-signature-256", &b64)], b"payload")
            .await
            .status,
        200
    );
    let hex = format!(
        "sha512={}",
        sign(
            Algorithm::Sha512,
            "k-0123456789abcdef",
            Encoding::Hex,
            b"payload"
        )
        .to_uppercase()
    );
    assert_eq!(
        c.post("/hex", &[("x-sig", &hex)], b"payload").await.status,
        200
    );
    // The same digest in the other encoding is not accepted by a strict route.
    let as_hex = sign(
        Algorithm::Sha256,
        "k-0123456789abcdef",
        Encoding::Hex,
        b"payload",
    );
    assert_eq!(
        c.post("/b64", &[("x-hub-signature-256", &as_hex)], b"payload")
            .await
            .status,
        403
    );
    assert_eq!(up.count(), 2);
    assert_eq!(up.requests()[0].headers["x-callgate-verified"], "hmac");
}

#[tokio::test]
async fn upstream_status_and_body_are_relayed() {
    let up = Upstream::recording().await;
    up.answer(
        500,
        vec![("content-type", "text/html")],
        b"<b>Fatal error</b>",
    );
    let gw = Gateway::start(&tolq_route(&up.url("/r"), ""));
    let sig = sign(Algorithm::Sha1, KEY, Encoding::Hex, b"x");
    let r = Client::https(gw.https.unwrap(), Version::H2)
        .post(
            &format!("/tolq/callback?token={TOKEN}"),
            &[("x-tolq-signature", &sig)],
            b"x",
        )
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(&r.body[..], b"<b>Fatal error</b>");
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn upstream_down_gives_502() {
    let dead = closed_port();
    let gw = Gateway::start(&tolq_route(&format!("http://{dead}/r"), ""));
    let sig = sign(Algorithm::Sha1, KEY, Encoding::Hex, b"x");
    let r = Client::https(gw.https.unwrap(), Version::H1)
        .post(
            &format!("/tolq/callback?token={TOKEN}"),
            &[("x-tolq-signature", &sig)],
            b"x",
        )
        .await;
    assert_eq!(r.status, 502);
    let log = gw.wait_for_log("status=502");
    assert!(log.contains("Connection refused"), "{log}");
}

#[tokio::test]
async fn slow_upstream_gives_504_after_the_route_timeout() {
    let up = Upstream::recording().await;
    up.delay(Duration::from_secs(3));
    let gw = Gateway::start(&tolq_route(&up.url("/r"), "upstream_timeout = \"300ms\""));
    let sig = sign(Algorithm::Sha1, KEY, Encoding::Hex, b"x");
    let start = std::time::Instant::now();
    let r = Client::https(gw.https.unwrap(), Version::H1)
        .post(
            &format!("/tolq/callback?token={TOKEN}"),
            &[("x-tolq-signature", &sig)],
            b"x",
        )
        .await;
    assert_eq!(r.status, 504);
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn strip_token_removes_only_the_token() {
    let up = Upstream::recording().await;
    let gw = Gateway::start(&tolq_route(&up.url("/r"), "strip_token = true"));
    let sig = sign(Algorithm::Sha1, KEY, Encoding::Hex, b"x");
    let r = Client::https(gw.https.unwrap(), Version::H1)
        .post(
            &format!("/tolq/callback?z=9&token={TOKEN}&a=%2F"),
            &[("x-tolq-signature", &sig)],
            b"x",
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(up.requests()[0].uri.query(), Some("z=9&a=%2F"));
}

#[tokio::test]
async fn plain_http_listener_forwards_with_http_proto() {
    let up = Upstream::recording().await;
    let gw = Gateway::start(&tolq_route(&up.url("/r"), ""));
    let sig = sign(Algorithm::Sha1, KEY, Encoding::Hex, b"x");
    let r = Client::http(gw.http.unwrap())
        .post(
            &format!("/tolq/callback?token={TOKEN}"),
            &[("x-tolq-signature", &sig)],
            b"x",
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(up.requests()[0].headers["x-forwarded-proto"], "http");
}

#[tokio::test]
async fn ipv6_loopback_client_matches_ipv6_allowlist() {
    let up = Upstream::recording().await;
    let cert = support::gateway::test_cert();
    let route = format!(
        "[[route]]\nname = \"v6\"\npath = \"/cb\"\nupstream = \"{}\"\nallow_ips = [\"::1/128\"]\n",
        up.url("/r")
    );
    let text = format!(
        "[listen]\nhttp = \"[::1]:0\"\nhttps = \"[::1]:0\"\n[tls]\ncert = {:?}\nkey = {:?}\n{route}",
        cert.cert_path.display().to_string(),
        cert.key_path.display().to_string(),
    );
    let gw = Gateway::start_raw(&text, &[]);
    let r = Client::https(gw.https.unwrap(), Version::H2)
        .post("/cb", &[], b"v6")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(up.requests()[0].headers["x-forwarded-for"], "::1");
    assert_eq!(up.requests()[0].headers["x-callgate-verified"], "ip");
}

#[tokio::test]
async fn tls_1_2_and_1_3_are_both_served_with_either_protocol() {
    let up = Upstream::recording().await;
    let gw = Gateway::start(&tolq_route(&up.url("/r"), ""));
    let sig = sign(Algorithm::Sha1, KEY, Encoding::Hex, b"x");
    let path = format!("/tolq/callback?token={TOKEN}");
    for version in [Version::H1, Version::H2] {
        let r = Client::https(gw.https.unwrap(), version)
            .tls12()
            .post(&path, &[("x-tolq-signature", &sig)], b"x")
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.tls_version, Some(rustls::ProtocolVersion::TLSv1_2));
        let r = Client::https(gw.https.unwrap(), version)
            .post(&path, &[("x-tolq-signature", &sig)], b"x")
            .await;
        assert_eq!(r.tls_version, Some(rustls::ProtocolVersion::TLSv1_3));
    }
    assert_eq!(up.count(), 4);
}

#[tokio::test]
async fn extra_methods_are_forwarded_when_the_route_allows_them() {
    let up = Upstream::recording().await;
    let gw = Gateway::start(&tolq_route(&up.url("/r"), "methods = [\"POST\", \"PUT\"]"));
    let c = Client::https(gw.https.unwrap(), Version::H1);
    let sig = sign(Algorithm::Sha1, KEY, Encoding::Hex, b"x");
    let path = format!("/tolq/callback?token={TOKEN}");
    let r = c
        .request(
            http::Method::PUT,
            &path,
            &[("x-tolq-signature", &sig)],
            b"x",
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(up.requests()[0].method, "PUT");
    let r = c
        .request(http::Method::GET, &path, &[("x-tolq-signature", &sig)], b"")
        .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.headers["allow"], "POST, PUT");
    assert_eq!(up.count(), 1);
}

/// Upstream connections are kept alive and reused, whatever the upstream
/// answers, and one it closed while idle is never used again: the next
/// callback still arrives (no 502).
#[tokio::test]
async fn upstream_connections_are_reused_and_dropped_once_closed() {
    let up = Upstream::recording().await;
    up.keep_alive_timeout(Duration::from_millis(300));
    let gw = Gateway::start(&tolq_route(&up.url("/r"), ""));
    let sig = sign(Algorithm::Sha1, KEY, Encoding::Hex, b"{}");
    let path = format!("/tolq/callback?token={TOKEN}");
    let headers = [("x-tolq-signature", sig.as_str())];
    // One client connection: one serving thread, so one upstream pool.
    let mut session = Client::https(gw.https.unwrap(), Version::H1)
        .session()
        .await;
    for status in [200, 500, 404, 200] {
        up.script(&[status]);
        let reply = session.post(&path, &headers, b"{}").await.unwrap();
        assert_eq!(reply.status, status);
    }
    let conns: Vec<usize> = up.requests().iter().map(|r| r.conn).collect();
    assert_eq!(conns, [0, 0, 0, 0], "one kept-alive upstream connection");

    // The upstream closes the idle connection; the gateway must notice.
    tokio::time::sleep(Duration::from_millis(800)).await;
    for _ in 0..3 {
        let reply = session.post(&path, &headers, b"{}").await.unwrap();
        assert_eq!(reply.status, 200);
    }
    let conns: Vec<usize> = up.requests().iter().map(|r| r.conn).collect();
    assert_eq!(conns, [0, 0, 0, 0, 1, 1, 1]);
}

/// An upstream that answers `Connection: close` gets a new connection for
/// the next callback.
#[tokio::test]
async fn an_upstream_closing_after_its_answer_gets_a_new_connection() {
    let up = Upstream::recording().await;
    up.answer(200, vec![("connection", "close")], b"bye");
    let gw = Gateway::start(&tolq_route(&up.url("/r"), ""));
    let sig = sign(Algorithm::Sha1, KEY, Encoding::Hex, b"{}");
    let mut session = Client::https(gw.https.unwrap(), Version::H1)
        .session()
        .await;
    for _ in 0..3 {
        let reply = session
            .post(
                &format!("/tolq/callback?token={TOKEN}"),
                &[("x-tolq-signature", &sig)],
                b"{}",
            )
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(&reply.body[..], b"bye");
        assert!(!reply.headers.contains_key("connection"), "hop-by-hop");
    }
    let conns: Vec<usize> = up.requests().iter().map(|r| r.conn).collect();
    assert_eq!(conns, [0, 1, 2]);
}
