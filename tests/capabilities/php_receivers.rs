//! The promise to legacy receivers: real PHP scripts (php -S) behind
//! callgate get Tolq and Gengo callbacks intact, forged ones never.

use callgate_testkit as support;

use callgate::crypto::{Algorithm, Encoding};
use sha2::{Digest, Sha256};
use support::{sign, Client, Gateway, PhpReceiver, Version};

const TOLQ_KEY: &str = "tolq-api-key-5b2c";
const TOLQ_TOKEN: &str = "tolq-url-token-81f0";
const GENGO_TOKEN: &str = "gengo-url-token-4d7e";

/// Tolq and Gengo routes as an operator writes them: one preset line each.
/// Loopback stands in for Tolq's address (the preset default is overridden).
fn config(php: &PhpReceiver) -> String {
    format!(
        r#"
[[route]]
name = "tolq"
path = "/tolq/callback"
upstream = "{}"
preset = "tolq"
allow_ips = ["127.0.0.1"]
token = {{ secrets = ["env:TOLQ_CALLBACK_TOKEN"] }}
hmac = {{ secrets = ["env:TOLQ_API_KEY"] }}

[[route]]
name = "gengo"
path = "/gengo/callback"
upstream = "{}"
preset = "gengo"
token = {{ secrets = ["env:GENGO_CALLBACK_TOKEN"] }}
"#,
        php.url("/tolq/callback.php"),
        php.url("/gengo/callback.php"),
    )
}

fn start() -> (PhpReceiver, Gateway) {
    let php = PhpReceiver::start();
    let gw = Gateway::start_with(
        &config(&php),
        &[
            ("TOLQ_API_KEY", TOLQ_KEY),
            ("TOLQ_CALLBACK_TOKEN", TOLQ_TOKEN),
            ("GENGO_CALLBACK_TOKEN", GENGO_TOKEN),
        ],
    );
    (php, gw)
}

fn fixture() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tolq-finished.json"
    ))
    .unwrap()
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn form(fields: &[(&str, &str)]) -> Vec<u8> {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
        .into_bytes()
}

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

#[tokio::test]
async fn tolq_finished_callback_reaches_php_intact() {
    let (php, gw) = start();
    let body = fixture();
    let expected: serde_json::Value = serde_json::from_slice(&body).unwrap();
    for (version, encoding) in [
        (Version::H1, Encoding::Hex),
        (Version::H2, Encoding::Base64),
    ] {
        let sig = sign(Algorithm::Sha1, TOLQ_KEY, encoding, &body);
        let r = Client::https(gw.https.unwrap(), version)
            .post(
                &format!("/tolq/callback?token={TOLQ_TOKEN}"),
                &[
                    ("content-type", "application/json"),
                    ("x-tolq-signature", &sig),
                ],
                &body,
            )
            .await;
        assert_eq!(r.status, 200, "{version:?}");
        assert_eq!(&r.body[..], b"OK\n", "the receiver's own answer comes back");
    }
    let records = php.records();
    assert_eq!(records.len(), 2);
    for rec in &records {
        assert_eq!(rec["receiver"], "tolq");
        assert_eq!(
            rec["decoded"], expected,
            "every field intact after json_decode"
        );
        assert_eq!(rec["raw_sha256"], sha256_hex(&body), "raw bytes identical");
        assert_eq!(rec["verified"], "ip,token,hmac");
        assert_eq!(
            rec["query"]["token"], TOLQ_TOKEN,
            "receivers that check the token themselves keep working"
        );
        assert_eq!(rec["forwarded_for"], "127.0.0.1");
    }
}

#[tokio::test]
async fn gengo_job_and_comment_callbacks_reach_php_intact() {
    let (php, gw) = start();
    let job = r#"{"job_id":"384920","order_id":"112233","status":"approved","lc_src":"en","lc_tgt":"ja","body_src":"Hello & welcome","body_tgt":"ようこそ","custom_data":"{\"sku\":\"A-1\"}","ctime":1763805123}"#;
    let comment = r#"{"job_id":384920,"body":"Could you clarify \"SKU\"?","ctime":1763805999,"custom_data":"order-112233"}"#;
    let c = Client::https(gw.https.unwrap(), Version::H1);
    let r = c
        .post(
            &format!("/gengo/callback?token={GENGO_TOKEN}"),
            &[FORM],
            &form(&[("job", job)]),
        )
        .await;
    assert_eq!(r.status, 200);
    let comment_body = form(&[("comment", comment)]);
    let r = Client::https(gw.https.unwrap(), Version::H2)
        .post(
            &format!("/gengo/callback?token={GENGO_TOKEN}"),
            &[FORM],
            &comment_body,
        )
        .await;
    assert_eq!(r.status, 200);

    let records = php.records();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["kind"], "job");
    assert_eq!(
        records[0]["job"],
        serde_json::from_str::<serde_json::Value>(job).unwrap()
    );
    assert_eq!(records[0]["verified"], "token");
    assert_eq!(records[1]["kind"], "comment");
    assert_eq!(
        records[1]["comment"],
        serde_json::from_str::<serde_json::Value>(comment).unwrap()
    );
    assert_eq!(records[1]["raw_sha256"], sha256_hex(&comment_body));
    assert_eq!(
        records[1]["content_type"],
        "application/x-www-form-urlencoded"
    );
}

#[tokio::test]
async fn forged_callbacks_never_reach_php() {
    let (php, gw) = start();
    let body = fixture();
    let good_sig = sign(Algorithm::Sha1, TOLQ_KEY, Encoding::Hex, &body);
    let bad_sig = sign(Algorithm::Sha1, "guessed-key", Encoding::Hex, &body);
    let tolq = format!("/tolq/callback?token={TOLQ_TOKEN}");
    let gengo = format!("/gengo/callback?token={GENGO_TOKEN}");
    let job = form(&[("job", r#"{"job_id":"1","status":"approved"}"#)]);

    let https = gw.https.unwrap();
    struct Forged<'a>(&'a str, Client, String, Vec<(&'a str, &'a str)>, Vec<u8>);
    let cases = vec![
        Forged(
            "tolq bad signature",
            Client::https(https, Version::H1),
            tolq.clone(),
            vec![("x-tolq-signature", &bad_sig)],
            body.clone(),
        ),
        Forged(
            "tolq wrong token",
            Client::https(https, Version::H1),
            "/tolq/callback?token=nope".into(),
            vec![("x-tolq-signature", &good_sig)],
            body.clone(),
        ),
        Forged(
            "tolq wrong source",
            Client::https(https, Version::H2).source_ip("127.0.0.2"),
            tolq.clone(),
            vec![("x-tolq-signature", &good_sig)],
            body.clone(),
        ),
        Forged(
            "tolq body tampered",
            Client::https(https, Version::H2),
            tolq.clone(),
            vec![("x-tolq-signature", &good_sig)],
            [&body[..], b" "].concat(),
        ),
        Forged(
            "gengo wrong token",
            Client::https(https, Version::H1),
            "/gengo/callback?token=nope".into(),
            vec![FORM],
            job.clone(),
        ),
        Forged(
            "gengo no token",
            Client::https(https, Version::H1),
            "/gengo/callback".into(),
            vec![FORM],
            job.clone(),
        ),
        Forged(
            "gengo json body",
            Client::https(https, Version::H1),
            gengo.clone(),
            vec![("content-type", "application/json")],
            br#"{"job":{"job_id":"1"}}"#.to_vec(),
        ),
        Forged(
            "gengo form without job",
            Client::https(https, Version::H2),
            gengo.clone(),
            vec![FORM],
            form(&[("status", "approved")]),
        ),
        Forged(
            "gengo job not json",
            Client::https(https, Version::H1),
            gengo.clone(),
            vec![FORM],
            form(&[("job", "approved")]),
        ),
    ];
    for Forged(name, client, path, headers, body) in cases {
        let r = client.post(&path, &headers, &body).await;
        assert_eq!(r.status, 403, "{name}");
    }
    assert!(
        php.records().is_empty(),
        "PHP received a forged callback: {:?}",
        php.records()
    );
    let log = gw.wait_for_log("payload: the job/comment field is not a JSON object");
    assert!(
        log.contains("payload: the job/comment field is not a JSON object"),
        "{log}"
    );
    assert!(
        log.contains("payload: Content-Type is not application/x-www-form-urlencoded"),
        "{log}"
    );
}

#[tokio::test]
async fn php_status_codes_are_what_the_caller_sees() {
    let (php, gw) = start();
    let job = form(&[("job", r#"{"job_id":"7","status":"approved"}"#)]);
    let r = Client::https(gw.https.unwrap(), Version::H1)
        .post(
            &format!("/gengo/callback?token={GENGO_TOKEN}&fail=1"),
            &[FORM],
            &job,
        )
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(&r.body[..], b"receiver failed\n");
    let body = fixture();
    let sig = sign(Algorithm::Sha1, TOLQ_KEY, Encoding::Hex, &body);
    let r = Client::https(gw.https.unwrap(), Version::H2)
        .post(
            &format!("/tolq/callback?fail=1&token={TOLQ_TOKEN}"),
            &[("x-tolq-signature", &sig)],
            &body,
        )
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(
        php.records().len(),
        2,
        "each callback reached PHP exactly once"
    );
}
