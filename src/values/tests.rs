use super::*;

fn values() -> Values {
    Values::new(&["tolq_callback".to_owned(), "tolq/callback.php".to_owned()])
}

fn streamed(body: &[u8], chunk: usize) -> Result<Vec<u8>, FoundValue> {
    let mut s = ValueScan::new(values()).unwrap();
    let mut out = Vec::new();
    for c in body.chunks(chunk) {
        out.extend_from_slice(&s.feed(c)?);
    }
    out.extend_from_slice(&s.finish()?);
    assert_eq!(out, body, "what passes is the body, unchanged");
    Ok(out)
}

const HITS: &[&str] = &[
    "tolq_callback",
    "x=1&action=tolq_callback",
    "action%00%FF=tolq_callback",
    "{\"action\":\"tolq_callback\"}",
    "{\"action\":\"tolq\\u005fcallback\"}",
    "{\"a\":\"tolq\\/callback.php\"}",
    "action=TOLQ%5FCALLBACK&x",
    "action=tolq%255Fcallback",
    "action=tolq%25255fcallback",
    "action=tolq%2525255Fcallback",
    "action=%u0074olq_callback",
    "/x&action=tolq_callback",
    "/api/tolq_callback",
    "q=/tolq/callback.php",
    "tolq_callbac\u{212A}",
    "to%6cq_callback;",
    "x-tolq_callback-y",
];

const MISSES: &[&str] = &[
    "",
    "tolq_callbacks",
    "xtolq_callback",
    "tolq_callback2",
    "tolq callback",
    "tolq_call back",
    "a webhook page about tolq",
];

#[test]
fn values_are_found_under_every_decoding_as_whole_tokens() {
    for hit in HITS {
        assert!(values().found_in(hit.as_bytes()).is_some(), "{hit}");
    }
    for miss in MISSES {
        assert_eq!(values().found_in(miss.as_bytes()), None, "{miss}");
    }
}

#[test]
fn streamed_bodies_are_judged_alike_in_any_chunking() {
    for chunk in [1, 2, 3, 5, 7, 64, 1000] {
        for hit in HITS {
            let body = format!("{}&{hit}", "y".repeat(300));
            assert!(streamed(body.as_bytes(), chunk).is_err(), "{hit} / {chunk}");
        }
        for miss in MISSES {
            let body = format!("z=1&{miss}&{}", "y".repeat(300));
            assert!(streamed(body.as_bytes(), chunk).is_ok(), "{miss} / {chunk}");
        }
    }
}

#[test]
fn a_value_is_never_released_before_it_is_judged() {
    let mut s = ValueScan::new(values()).unwrap();
    let mut sent = Vec::new();
    let body = format!("{}&action=tolq_callback&more", "y".repeat(1000));
    let mut refused = false;
    for c in body.as_bytes().chunks(3) {
        match s.feed(c) {
            Ok(out) => sent.extend_from_slice(&out),
            Err(_) => {
                refused = true;
                break;
            }
        }
    }
    assert!(refused);
    assert!(!String::from_utf8_lossy(&sent).contains("tolq"));
}

#[test]
fn a_large_body_streams_with_a_bounded_hold() {
    let mut s = ValueScan::new(values()).unwrap();
    let body = vec![b'x'; 1 << 20];
    let mut sent = 0;
    for c in body.chunks(16 * 1024) {
        sent += s.feed(c).unwrap().len();
    }
    assert!(
        body.len() - sent <= values().window,
        "held {}",
        body.len() - sent
    );
}
