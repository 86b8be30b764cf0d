//! Replay, tried as an attacker would with captured callbacks signed by the
//! providers' own libraries: a new or missing delivery-id header, copies
//! racing a slow receiver, a reused signed id with a new body, copies of a
//! queued message, two instances on one database. Each is forwarded once.

use callgate_testkit as support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::gateway::run_cli;
use support::postgres::{Backend, QueueStore};
use support::signers;
use support::{Client, Gateway, Reply, Upstream, Version};

const GITHUB_SECRET: &str = "gh-replay-secret";
const SHOPIFY_SECRET: &str = "shopify-replay-secret";
const TWILIO_TOKEN: &str = "twilio-replay-token";
const SLACK_SECRET: &str = "slack-replay-secret";
const STRIPE_SECRET: &str = "whsec_stripe_replay";
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const PUBLIC: &str = "https://hooks.example.com";

use support::now;

/// One route per provider, all to `up`, on `store` (SQLite when `None`).
fn config(up: &Upstream, queue: &str, extra: &str) -> String {
    let route = |name: &str, preset: &str, secret: &str, more: &str| {
        format!(
            "[[route]]\nname = \"{name}\"\npath = \"/{name}\"\nupstream = \"{}\"\npreset = \"{preset}\"\nhmac = {{ secrets = [\"{secret}\"]{more} }}\n{extra}\n\n",
            up.url(&format!("/{name}"))
        )
    };
    [
        queue.to_owned(),
        route("github", "github", GITHUB_SECRET, ""),
        route("shopify", "shopify", SHOPIFY_SECRET, ""),
        route(
            "twilio",
            "twilio",
            TWILIO_TOKEN,
            &format!(", public_url = \"{PUBLIC}\""),
        ),
        route("slack", "slack", SLACK_SECRET, ""),
        route("stripe", "stripe", STRIPE_SECRET, ""),
        route("sw", "standard-webhooks", WHSEC, ""),
    ]
    .concat()
}

async fn post(client: &Client, path: &str, headers: &[(String, String)], body: &[u8]) -> Reply {
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    client.post(path, &h, body).await
}

fn without(headers: &[(String, String)], name: &str) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case(name))
        .cloned()
        .collect()
}

fn with(headers: &[(String, String)], name: &str, value: &str) -> Vec<(String, String)> {
    let mut h = without(headers, name);
    h.push((name.to_owned(), value.to_owned()));
    h
}

/// `callgate sign --preset shopify` (Shopify publishes no signing library).
fn shopify(body: &[u8], id: &str) -> Vec<(String, String)> {
    support::signers::cli("shopify", SHOPIFY_SECRET)
        .id(id)
        .headers(body)
}

/// A route's path, its unsigned id header, the provider's headers, the body.
type Case = (&'static str, &'static str, Vec<(String, String)>, Vec<u8>);

fn count(up: &Upstream, path: &str) -> usize {
    up.requests()
        .iter()
        .filter(|r| r.uri.path() == path)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_callback_with_a_new_missing_or_doubled_id_header_is_not_forwarded_again() {
    let up = Upstream::recording().await;
    let gw = Gateway::start(&config(&up, "", ""));
    let c = Client::https(gw.https.unwrap(), Version::H1);
    let cases: Vec<Case> = vec![
        {
            let body = br#"{"action":"opened","number":7}"#.to_vec();
            let h = signers::sign("github", GITHUB_SECRET, "gh-d-1", 0, "", &body);
            ("/github", "x-github-delivery", h, body)
        },
        {
            let body = br#"{"id":820982911946154508,"total":"9.99"}"#.to_vec();
            (
                "/shopify",
                "x-shopify-webhook-id",
                shopify(&body, "sh-1"),
                body,
            )
        },
        {
            let body = b"MessageSid=SM1&From=%2B15551234567&Body=hello".to_vec();
            let url = format!("{PUBLIC}/twilio");
            let h = signers::sign("twilio", TWILIO_TOKEN, "tw-1", 0, &url, &body);
            ("/twilio", "i-twilio-idempotency-token", h, body)
        },
    ];
    for (path, id_header, headers, body) in &cases {
        let first = post(&c, path, headers, body).await;
        assert_eq!(first.status, 200, "{path}: the provider's delivery");
        let replays = [
            with(headers, id_header, "attacker-fresh-id"),
            without(headers, id_header),
            {
                let mut twice = headers.clone();
                twice.push((id_header.to_string(), "attacker-second".into()));
                twice
            },
        ];
        for (i, replay) in replays.iter().enumerate() {
            let r = post(&c, path, replay, body).await;
            assert_eq!(
                (r.status.as_u16(), &r.body[..]),
                (200, &b"duplicate: already delivered\n"[..]),
                "{path}: replay {i}"
            );
        }
        assert_eq!(count(&up, path), 1, "{path}: forwarded once");
    }
    // Twilio signs the sorted parameters: a reordered form is the same message.
    let (_, _, headers, _) = &cases[2];
    let reordered = b"Body=hello&From=%2B15551234567&MessageSid=SM1";
    let r = post(&c, "/twilio", headers, reordered).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        count(&up, "/twilio"),
        1,
        "a reordered twilio form is a replay"
    );
    println!("replay: new, missing and doubled id headers on github, shopify, twilio: each forwarded once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_retries_newly_timestamped_are_redeliveries() {
    let up = Upstream::recording().await;
    let gw = Gateway::start(&config(&up, "", ""));
    let c = Client::https(gw.https.unwrap(), Version::H2);
    // Slack retries the same body with a new timestamp and signature.
    let body = br#"{"type":"event_callback","event_id":"Ev1"}"#;
    let first = signers::sign("slack", SLACK_SECRET, "", now(), "", body);
    assert_eq!(post(&c, "/slack", &first, body).await.status, 200);
    let retry = signers::sign("slack", SLACK_SECRET, "", now() + 1, "", body);
    let r = post(&c, "/slack", &retry, body).await;
    assert_eq!(
        (r.status.as_u16(), &r.body[..]),
        (200, &b"duplicate: already delivered\n"[..])
    );
    // Stripe re-signs an event under its id; pending_webhooks may change.
    let event = br#"{"id":"evt_replay_1","object":"event","pending_webhooks":2}"#;
    let h = signers::sign("stripe", STRIPE_SECRET, "", now(), "", event);
    assert_eq!(post(&c, "/stripe", &h, event).await.status, 200);
    let later = br#"{"id":"evt_replay_1","object":"event","pending_webhooks":1}"#;
    let h = signers::sign("stripe", STRIPE_SECRET, "", now() + 60, "", later);
    assert_eq!(post(&c, "/stripe", &h, later).await.status, 200);
    // Standard Webhooks, signed by the svix library: same id, new timestamp.
    let msg = br#"{"type":"invoice.paid"}"#;
    let h = signers::sign("svix", WHSEC, "msg_retry_1", now(), "", msg);
    assert_eq!(post(&c, "/sw", &h, msg).await.status, 200);
    let h = signers::sign("svix", WHSEC, "msg_retry_1", now() + 2, "", msg);
    assert_eq!(post(&c, "/sw", &h, msg).await.status, 200);
    assert_eq!(
        (
            count(&up, "/slack"),
            count(&up, "/stripe"),
            count(&up, "/sw")
        ),
        (1, 1, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_signed_id_with_another_body_is_refused_409_replay() {
    let up = Upstream::recording().await;
    let gw = Gateway::start(&config(&up, "", ""));
    let c = Client::https(gw.https.unwrap(), Version::H1);
    let a = br#"{"type":"user.created","id":1}"#;
    let h = signers::sign("standard-webhooks", WHSEC, "msg_reused", now(), "", a);
    assert_eq!(post(&c, "/sw", &h, a).await.status, 200);
    // Validly signed, same id, another body: not a redelivery.
    let b = br#"{"type":"user.deleted","id":1}"#;
    let h = signers::sign("standard-webhooks", WHSEC, "msg_reused", now(), "", b);
    let r = post(&c, "/sw", &h, b).await;
    assert_eq!((r.status.as_u16(), &r.body[..]), (409, &b"conflict\n"[..]));
    let log = gw.wait_for_log("reason=\"replay: message id reused");
    let digest = |b: &[u8]| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b));
    assert!(
        log.contains(&digest(a)) && log.contains(&digest(b)),
        "both digests logged: {log}"
    );
    assert_eq!(count(&up, "/sw"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_concurrent_copies_reach_a_slow_receiver_once() {
    let up = Upstream::recording().await;
    up.delay(Duration::from_millis(800));
    let gw = Gateway::start(&config(&up, "", ""));
    let body = br#"{"action":"race"}"#.to_vec();
    let headers = signers::sign("github", GITHUB_SECRET, "gh-race", 0, "", &body);
    let client = Arc::new(Client::https(gw.https.unwrap(), Version::H1));
    let mut copies = Vec::new();
    for _ in 0..6 {
        let (client, headers, body) = (client.clone(), headers.clone(), body.clone());
        copies.push(tokio::spawn(async move {
            post(&client, "/github", &headers, &body).await
        }));
    }
    let mut statuses = Vec::new();
    for copy in copies {
        let r = copy.await.unwrap();
        if r.status == 409 {
            let after: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=60).contains(&after), "Retry-After {after}");
        }
        statuses.push(r.status.as_u16());
    }
    statuses.sort();
    assert_eq!(count(&up, "/github"), 1, "answers {statuses:?}");
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(
        statuses.iter().all(|&s| s == 200 || s == 409),
        "{statuses:?}"
    );
    // Copies 0.2 s apart while a 1 s receiver works on the first.
    up.delay(Duration::from_millis(1000));
    let body2 = br#"{"action":"staggered"}"#.to_vec();
    let h2 = signers::sign("github", GITHUB_SECRET, "gh-stagger", 0, "", &body2);
    let mut staggered = Vec::new();
    for _ in 0..4 {
        let (client, h2, body2) = (client.clone(), h2.clone(), body2.clone());
        staggered.push(tokio::spawn(async move {
            post(&client, "/github", &h2, &body2).await.status.as_u16()
        }));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut later = Vec::new();
    for s in staggered {
        later.push(s.await.unwrap());
    }
    assert_eq!(count(&up, "/github"), 2, "staggered answers {later:?}");
    println!(
        "replay race: 6 concurrent copies -> 1 forwarded (answers {statuses:?}); 4 copies 0.2 s apart, 1 s receiver -> 1 forwarded (answers {later:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delivery_lets_the_providers_retry_through() {
    let up = Upstream::recording().await;
    up.script(&[500]);
    let gw = Gateway::start(&config(&up, "", ""));
    let c = Client::https(gw.https.unwrap(), Version::H1);
    let body = br#"{"action":"retry-me"}"#;
    let h = signers::sign("github", GITHUB_SECRET, "gh-fail", 0, "", body);
    assert_eq!(post(&c, "/github", &h, body).await.status, 500);
    assert_eq!(
        post(&c, "/github", &h, body).await.status,
        200,
        "the retry passes"
    );
    let r = post(&c, "/github", &h, body).await;
    assert_eq!(&r.body[..], b"duplicate: already delivered\n");
    assert_eq!(count(&up, "/github"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedupe_window_0_turns_replay_protection_off_and_check_shows_each_window() {
    let up = Upstream::recording().await;
    let text = config(&up, "", "");
    let gw = Gateway::start(&text.replacen(
        "preset = \"github\"",
        "preset = \"github\"\ndedupe_window = \"0\"",
        1,
    ));
    let c = Client::https(gw.https.unwrap(), Version::H1);
    let body = br#"{"action":"twice"}"#;
    let h = signers::sign("github", GITHUB_SECRET, "gh-off", 0, "", body);
    for _ in 0..2 {
        assert_eq!(post(&c, "/github", &h, body).await.status, 200);
    }
    assert_eq!(count(&up, "/github"), 2);
    let config_path = gw.config_path.display().to_string();
    let (code, out, err) = run_cli(&["check", "--config", &config_path], b"", &[]);
    assert_eq!(code, 0, "{err}");
    for line in [
        "replay  off (dedupe_window = \"0\"",
        "replay  window 2days, key: sha256 of the body, and x-shopify-webhook-id when sent",
        "replay  window 1day, key: sha256 of the signed URL and parameters, and i-twilio-idempotency-token when sent",
        "replay  window 1h, key: sha256 of the body",
        "replay  window 3days, key: the body's \"id\"",
        "replay  window 2days, key: the signed webhook-id (a reused id with another body: 409)",
    ] {
        assert!(out.contains(line), "{line:?} missing from\n{out}");
    }
}

/// Queue routes on either store: copies of a stored message are
/// acknowledged and not stored again; delivered once when the receiver is back.
async fn queued_copies_are_delivered_once(backend: Backend) {
    let store = QueueStore::new(backend);
    let up = Upstream::recording().await;
    up.script(&[503, 503, 503, 503, 503, 503]);
    let text = config(
        &up,
        &store.section(),
        "delivery = \"queue\"\nupstream_timeout = \"2s\"\nretry = { base = \"100ms\", cap = \"200ms\", max_attempts = 1000 }",
    );
    let gw = Gateway::start(&text);
    let c = Client::https(gw.https.unwrap(), Version::H1);
    let body = br#"{"action":"queued"}"#;
    let h = signers::sign("github", GITHUB_SECRET, "gh-queued", 0, "", body);
    for i in 0..3 {
        let r = post(
            &c,
            "/github",
            &with(&h, "x-github-delivery", &format!("id-{i}")),
            body,
        )
        .await;
        assert_eq!(
            (r.status.as_u16(), &r.body[..]),
            (202, &b"accepted\n"[..]),
            "copy {i}"
        );
    }
    assert_eq!(store.count("callbacks"), 1, "stored once");
    let start = Instant::now();
    while !up.requests().iter().any(|r| r.uri.path() == "/github") || up.count() < 7 {
        assert!(start.elapsed() < Duration::from_secs(20), "no delivery");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // 6 refused attempts, then one 2xx: one message delivered.
    assert_eq!(count(&up, "/github"), 7);
    let r = post(&c, "/github", &h, body).await;
    assert_eq!(r.status, 202, "a copy after delivery: acknowledged");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&up, "/github"), 7, "and not delivered again");
    assert_eq!(store.count("callbacks"), 0);
    println!("replay queue ({backend:?}): 3 copies while the receiver answered 503 -> 1 delivered with a 2xx");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_copies_are_delivered_once_sqlite() {
    queued_copies_are_delivered_once(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_copies_are_delivered_once_postgres() {
    queued_copies_are_delivered_once(Backend::Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_postgres_forward_a_copy_once() {
    let store = QueueStore::new(Backend::Postgres);
    let up = Upstream::recording().await;
    up.delay(Duration::from_millis(600));
    let text = config(&up, &store.section(), "");
    let (a, b) = (Gateway::start(&text), Gateway::start(&text));
    let clients = Arc::new([
        Client::https(a.https.unwrap(), Version::H1),
        Client::https(b.https.unwrap(), Version::H1),
    ]);
    let mut forwarded = Vec::new();
    for round in 0..5 {
        let body = format!("{{\"round\":{round}}}").into_bytes();
        let h = signers::sign(
            "github",
            GITHUB_SECRET,
            &format!("gh-pg-{round}"),
            0,
            "",
            &body,
        );
        let before = count(&up, "/github");
        let mut copies = Vec::new();
        for i in 0..4 {
            let (clients, h, body) = (clients.clone(), h.clone(), body.clone());
            copies.push(tokio::spawn(async move {
                post(&clients[i % 2], "/github", &h, &body)
                    .await
                    .status
                    .as_u16()
            }));
        }
        let mut statuses = Vec::new();
        for c in copies {
            statuses.push(c.await.unwrap());
        }
        assert!(statuses.contains(&200), "{statuses:?}");
        forwarded.push(count(&up, "/github") - before);
    }
    assert_eq!(
        forwarded,
        vec![1; 5],
        "two instances, 4 copies at once, 5 rounds"
    );
    println!("replay across instances: 2 gateways on one PostgreSQL, 4 copies at once x 5 rounds -> 1 forwarded each");
}
