use super::*;

fn record(route: &str, outcome: Outcome) -> Record {
    let route = crate::config::Config::from_str(
        &format!("[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"{route}\"\npath = \"/p\"\nupstream = \"http://127.0.0.1:9/\"\nallow_ips = [\"127.0.0.1\"]\n"),
        std::path::Path::new("t.toml"),
    )
    .unwrap()
    .routes
    .iter()
    .next()
    .unwrap()
    .clone();
    Record {
        route: Who::Route(route),
        client: "127.0.0.1".parse().unwrap(),
        method: Method::POST,
        target: "/t".into(),
        outcome,
        reason: "r".into(),
        status: 200,
        duration_ms: 1.23,
        detail: None,
    }
}

#[test]
fn the_ring_keeps_the_newest_cap_entries_and_finds_them_by_id() {
    let recent = Recent::new(3);
    for i in 0..10 {
        recent.record(record(&format!("r{i}"), Outcome::Forwarded), 1_000 * i);
    }
    let all = recent.list(|_| true);
    let routes: Vec<String> = all.iter().map(|e| e.view().route.to_owned()).collect();
    assert_eq!(routes, ["r9", "r8", "r7"], "newest first, three kept");
    let step = 1;
    let newest = all[0].id;
    assert!(recent.get(newest).unwrap().is_route("r9"));
    assert!(recent.get(newest - 2 * step).unwrap().is_route("r7"));
    assert!(
        recent.get(newest - 3 * step).is_none(),
        "gone from the ring"
    );
    assert!(recent.get(newest + step).is_none(), "not yet recorded");
    assert!(recent.get(0).is_none());
    let refused: Vec<_> = recent.list(|e| e.is_route("r8"));
    assert_eq!(refused.len(), 1);
}

#[test]
fn a_ring_of_zero_keeps_one() {
    let recent = Recent::new(0);
    recent.record(record("a", Outcome::Refused), 0);
    recent.record(record("b", Outcome::Refused), 0);
    assert_eq!(recent.list(|_| true).len(), 1);
}

#[test]
fn minutes_cover_the_last_hour_and_forget_older_ones() {
    let recent = Recent::new(10);
    let minute = 60_000;
    recent.record(record("a", Outcome::Forwarded), 0);
    recent.record(record("a", Outcome::Refused), 10 * minute);
    recent.record(record("a", Outcome::Refused), 10 * minute + 5);
    recent.record(record("a", Outcome::Forwarded), 65 * minute);
    let m = recent.minutes(65 * minute);
    assert_eq!(m.len(), MINUTES);
    assert_eq!(m.last().unwrap().at, 65);
    assert_eq!(m.first().unwrap().at, 6, "minute 0 is over an hour old");
    let at10 = m.iter().find(|x| x.at == 10).unwrap();
    assert_eq!(at10.counts[1], 2, "two refusals in minute 10");
    let total: u32 = m.iter().map(|x| x.counts.iter().sum::<u32>()).sum();
    assert_eq!(total, 3);
    for shard in recent.shards.iter() {
        assert!(shard.lock().unwrap().len() <= MINUTES);
    }
}

#[test]
fn credentials_in_headers_and_tokens_in_targets_are_redacted() {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("authorization", "Bearer s3cret"),
        ("cookie", "sid=abc"),
        ("x-api-key", "k"),
        ("x-gengo-token", "t"),
        ("x-client-secret", "c"),
        ("x-tolq-signature", "deadbeef"),
        ("content-type", "application/json"),
    ] {
        h.append(
            http::HeaderName::from_static(k),
            http::HeaderValue::from_static(v),
        );
    }
    let shown = redact_headers(&h, &Redactor::default());
    let value = |n: &str| shown.iter().find(|(k, _)| k == n).unwrap().1.clone();
    for n in [
        "authorization",
        "cookie",
        "x-api-key",
        "x-gengo-token",
        "x-client-secret",
    ] {
        assert_eq!(value(n), "REDACTED", "{n}");
    }
    assert_eq!(
        value("x-tolq-signature"),
        "deadbeef",
        "a signature is evidence, not a secret"
    );
    assert_eq!(value("content-type"), "application/json");
    let uri: Uri = "/gengo?a=1&token=SECRET&tok%65n=SECRET2".parse().unwrap();
    let t = redacted_target(&uri, &["token".to_owned()], &Redactor::default());
    assert!(!t.contains("SECRET"), "{t}");
    assert!(t.contains("a=1"), "{t}");
}

#[test]
fn configured_secrets_are_redacted_by_value_under_any_name() {
    let redactor = Redactor::new([b"real-token-0123".as_slice(), b"verify-me-9876"]);
    let uri: Uri = "/cb/real-token-0123?TOKEN=real-token-0123&tok.en=real%2Dtoken%2D0123&hub.verify_token=verify-me-9876&token=x"
        .parse()
        .unwrap();
    let t = redacted_target(&uri, &["token".to_owned()], &redactor);
    assert_eq!(
        t,
        "/cb/REDACTED?TOKEN=REDACTED&tok.en=REDACTED&hub.verify_token=REDACTED&token=REDACTED"
    );
    let mut h = HeaderMap::new();
    h.append("x_api_key", http::HeaderValue::from_static("k"));
    h.append("x-note", http::HeaderValue::from_static("verify-me-9876"));
    let shown = redact_headers(&h, &redactor);
    assert_eq!(
        shown,
        vec![
            ("x_api_key".to_owned(), "REDACTED".to_owned()),
            ("x-note".to_owned(), "REDACTED".to_owned())
        ]
    );
}

#[test]
fn entries_serialize_with_the_contract_fields() {
    let recent = Recent::new(2);
    recent.record(record("tolq", Outcome::Refused), 1_700_000_000_000);
    let id = recent.list(|_| true)[0].id;
    let e = recent.get(id).unwrap();
    let v = serde_json::to_value(e.view()).unwrap();
    for field in [
        "time", "route", "client", "method", "target", "outcome", "reason", "status",
    ] {
        assert!(v.get(field).is_some(), "{field} missing: {v}");
    }
    assert_eq!(v["time"], "2023-11-14T22:13:20.000Z");
    assert!(v.get("checks").is_none(), "no detail, no checks");
}

#[test]
fn threads_record_side_by_side_within_the_bound() {
    let recent = Arc::new(Recent::new(100));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let recent = recent.clone();
            std::thread::spawn(move || {
                for i in 0..1_000 {
                    recent.record(record(&format!("t{t}"), Outcome::Forwarded), i);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let list = recent.list(|_| true);
    assert_eq!(list.len(), 100);
    assert!(
        list.windows(2).all(|w| w[0].at_ms >= w[1].at_ms),
        "newest first"
    );
    assert!(
        list.windows(2).all(|w| w[0].id > w[1].id),
        "ids follow time"
    );
    assert_eq!(list[0].at_ms, 999, "the last requests recorded are there");
    let ids: std::collections::HashSet<u64> = list.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), list.len(), "ids are unique across shards");
    assert!(list
        .iter()
        .all(|e| recent.get(e.id).is_some_and(|g| g.id == e.id)));
    let counted: u32 = recent.minutes(999).iter().map(|m| m.counts[0]).sum();
    assert_eq!(counted, 4_000, "every request counted in its minute");
}

/// Issue 42 item 7: the ring was sharded per serving thread; one later
/// request on a busy thread evicted a refusal while 1,000 older entries
/// of other threads stayed, and ids were out of time order.
#[test]
fn the_ring_keeps_the_newest_n_in_time_order_across_threads() {
    let recent = Arc::new(Recent::new(1_000));
    // Another thread records 999 entries first (older).
    let other = recent.clone();
    std::thread::spawn(move || {
        for i in 0..999 {
            other.record(record("old", Outcome::Forwarded), i);
        }
    })
    .join()
    .unwrap();
    // This thread: a refusal, then one more request: 1,001 in all.
    recent.record(record("refusal", Outcome::Refused), 1_000);
    recent.record(record("later", Outcome::Forwarded), 1_001);
    let all = recent.list(|_| true);
    assert_eq!(all.len(), 1_000);
    assert!(
        all.iter().any(|e| e.is_route("refusal")),
        "the refusal was evicted while older entries stayed"
    );
    assert_eq!(all.iter().filter(|e| e.is_route("old")).count(), 998);
    let ids: Vec<u64> = all.iter().map(|e| e.id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "ids newest first: {:?}",
        &ids[..8]
    );
    assert!(all.windows(2).all(|w| w[0].at_ms >= w[1].at_ms));
}

#[test]
fn pages_go_back_from_before_and_say_when_there_is_more() {
    let recent = Recent::new(50);
    for i in 0..30 {
        let outcome = if i % 3 == 0 {
            Outcome::Refused
        } else {
            Outcome::Forwarded
        };
        recent.record(record("r", outcome), i);
    }
    let first = recent.page(|_| true, None, 10);
    assert_eq!(first.entries.len(), 10);
    assert!(first.more);
    let last = first.entries.last().unwrap().id;
    let second = recent.page(|_| true, Some(last), 10);
    assert_eq!(second.entries[0].id, last - 1, "the next older one");
    let refused = recent.page(|e| e.is_outcome("refused"), None, 100);
    assert_eq!(refused.entries.len(), 10);
    assert!(!refused.more);
    let tail = recent.page(|_| true, Some(first.entries[0].id - 25), 10);
    assert_eq!(tail.entries.len(), 4);
    assert!(!tail.more);
}

#[test]
fn an_entry_keeps_4_kib_of_target_and_8_kib_of_headers_and_marks_the_cut() {
    let recent = Recent::new(10);
    let mut r = record("r", Outcome::Refused);
    r.target = format!("/x?{}", "é&".repeat(10_000));
    r.detail = Some(Box::new(Detail {
        checks: Vec::new(),
        headers: (0..100)
            .map(|i| (format!("x-h{i}"), "v".repeat(200)))
            .collect(),
        body: "b".repeat(BODY_KEPT),
        body_base64: String::new(),
        body_bytes: 20_000,
        body_read: true,
    }));
    recent.record(r, 0);
    let e = recent.list(|_| true).pop().unwrap();
    let v = e.view();
    assert!(v.target.len() <= TARGET_KEPT && v.target.len() > TARGET_KEPT - 4);
    let d = v.detail.unwrap();
    let bytes: usize = d.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
    assert!(bytes <= HEADERS_KEPT, "{bytes}");
    assert!(v.cut);
    assert_eq!(v.cut_fields, ["target", "headers", "body"]);
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["cut"], true);
    recent.record(record("small", Outcome::Refused), 1);
    let small = serde_json::to_value(recent.list(|_| true)[0].view()).unwrap();
    assert!(small.get("cut").is_none(), "{small}");
}

#[test]
fn large_entries_are_kept_within_the_memory_budget() {
    let recent = Recent::new(100_000);
    for i in 0..30_000 {
        let mut r = record("r", Outcome::Refused);
        r.target = "/".repeat(20_000);
        recent.record(r, i);
    }
    let ring = recent.ring.lock().unwrap();
    assert!(ring.bytes <= RING_BYTES, "{}", ring.bytes);
    let actual: usize = ring.entries.iter().map(|e| e.weight()).sum();
    assert_eq!(actual, ring.bytes);
    assert!(ring.entries.len() > 10_000, "{}", ring.entries.len());
    assert_eq!(
        ring.entries.back().unwrap().at_ms,
        29_999,
        "the newest stay"
    );
}
