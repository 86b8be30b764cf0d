use super::*;
use crate::verify::replay::ReplayKey;

fn callback(route: &str, body: &str) -> NewCallback {
    NewCallback {
        route: route.into(),
        method: "POST".into(),
        query: Some("a=1&token=REDACTED".into()),
        token_secret: Some(1),
        headers: b"content-type: application/json\r\n".to_vec(),
        body: body.as_bytes().to_vec(),
        verified: "token".into(),
        arrived_ms: 1_000,
        replay: Vec::new(),
    }
}

#[test]
fn enqueued_callbacks_come_back_in_order_per_route() {
    let dir = tempfile::tempdir().unwrap();
    let s = Sqlite::open(dir.path()).unwrap();
    let a = s.enqueue(&callback("r", "1"), None).unwrap().id();
    s.enqueue(&callback("other", "x"), None).unwrap().id();
    let b = s.enqueue(&callback("r", "2"), None).unwrap().id();
    let head = s.head("r", 10).unwrap();
    assert_eq!(head.iter().map(|c| c.id).collect::<Vec<_>>(), vec![a, b]);
    assert_eq!(head[0].callback.body, b"1");
    assert_eq!(head[0].callback.token_secret, Some(1));
}

#[test]
fn failures_schedule_then_kill_and_retry_revives() {
    let dir = tempfile::tempdir().unwrap();
    let s = Sqlite::open(dir.path()).unwrap();
    let id = s.enqueue(&callback("r", "1"), None).unwrap().id();
    s.failed(id, Some(5_000), "HTTP 500").unwrap();
    let c = s.get(id).unwrap().unwrap();
    assert_eq!(
        (c.attempts, c.next_attempt_ms, c.state),
        (1, 5_000, State::Pending)
    );
    s.failed(id, None, "HTTP 400").unwrap();
    assert_eq!(s.get(id).unwrap().unwrap().state, State::Dead);
    assert!(s.head("r", 10).unwrap().is_empty());
    assert_eq!(s.retry_all_dead(9).unwrap(), 1);
    assert_eq!(s.head("r", 10).unwrap()[0].attempts, 0);
}

fn key(k: u8, payload: u8, strict: bool) -> ReplayKey {
    ReplayKey {
        key: [k; 32],
        payload: [payload; 32],
        strict,
    }
}

fn claim(keys: Vec<ReplayKey>, owner: &str, now_ms: i64) -> ReplayClaim {
    ReplayClaim {
        route: "r".into(),
        keys,
        owner: owner.into(),
        now_ms,
        since_ms: now_ms - 1_000,
        until_ms: Some(now_ms + 500),
    }
}

#[test]
fn a_claim_takes_every_key_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let s = Sqlite::open(dir.path()).unwrap();
    let first = claim(vec![key(1, 9, false)], "a", 10_000);
    assert_eq!(s.claim_replay(&first).unwrap(), Claim::Won);
    // Sharing one key of two: in flight, and the other key is not taken.
    let both = claim(vec![key(2, 9, false), key(1, 9, false)], "b", 10_100);
    assert_eq!(
        s.claim_replay(&both).unwrap(),
        Claim::InFlight { until_ms: 10_500 }
    );
    assert_eq!(
        s.claim_replay(&claim(vec![key(2, 9, false)], "c", 10_100))
            .unwrap(),
        Claim::Won
    );
    // Delivered: a copy within the window is a duplicate, after it is new.
    s.settle_replay("r", "a", Some(10_200)).unwrap();
    assert_eq!(
        s.claim_replay(&claim(vec![key(1, 9, false)], "d", 11_000))
            .unwrap(),
        Claim::Delivered
    );
    assert_eq!(
        s.claim_replay(&claim(vec![key(1, 9, false)], "e", 11_300))
            .unwrap(),
        Claim::Won
    );
    // Released: the provider's retry passes at once.
    s.settle_replay("r", "e", None).unwrap();
    assert_eq!(
        s.claim_replay(&claim(vec![key(1, 9, false)], "f", 11_301))
            .unwrap(),
        Claim::Won
    );
    // An expired claim (its instance died) frees the key.
    assert_eq!(
        s.claim_replay(&claim(vec![key(1, 9, false)], "g", 12_000))
            .unwrap(),
        Claim::Won
    );
}

#[test]
fn a_signed_id_with_another_payload_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let s = Sqlite::open(dir.path()).unwrap();
    assert_eq!(
        s.claim_replay(&claim(vec![key(1, 1, true)], "a", 1_000))
            .unwrap(),
        Claim::Won
    );
    s.settle_replay("r", "a", Some(1_000)).unwrap();
    assert_eq!(
        s.claim_replay(&claim(vec![key(1, 2, true)], "b", 1_100))
            .unwrap(),
        Claim::Conflict {
            stored: [1; 32],
            given: [2; 32]
        }
    );
}

#[test]
fn a_queued_copy_is_not_stored_again_until_it_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let s = Sqlite::open(dir.path()).unwrap();
    let queued = ReplayClaim {
        until_ms: None,
        ..claim(vec![key(1, 1, false)], "", 1_000)
    };
    let id = s.enqueue(&callback("r", "1"), Some(&queued)).unwrap().id();
    assert_eq!(
        s.enqueue(&callback("r", "1"), Some(&queued)).unwrap(),
        Enqueued::Copy(Claim::Stored)
    );
    assert_eq!(s.list(None, None).unwrap().len(), 1);
    // The worker's check before delivery: its own keys pass.
    let own = ReplayClaim {
        owner: queued_owner(id),
        ..queued.clone()
    };
    assert_eq!(s.claim_replay(&own).unwrap(), Claim::Won);
    s.delivered(&[id], 1_200).unwrap();
    assert!(s.get(id).unwrap().is_none());
    assert_eq!(
        s.enqueue(&callback("r", "1"), Some(&queued)).unwrap(),
        Enqueued::Copy(Claim::Delivered)
    );
    // Pruned after the window: stored anew.
    assert_eq!(s.prune_replay(Some("r"), 1_300, 1_300).unwrap(), 1);
    let again = s.enqueue(&callback("r", "1"), Some(&queued)).unwrap().id();
    // Dropped by an operator: its keys go with it.
    assert_eq!(s.drop_callback(again).unwrap(), Acted::Done);
    assert!(matches!(
        s.enqueue(&callback("r", "1"), Some(&queued)).unwrap(),
        Enqueued::Stored(_)
    ));
}

#[test]
fn an_unknown_state_is_an_error_not_a_pending_callback() {
    let dir = tempfile::tempdir().unwrap();
    let s = Sqlite::open(dir.path()).unwrap();
    let id = s.enqueue(&callback("r", "1"), None).unwrap().id();
    s.with(|c| c.execute("UPDATE callbacks SET state = 'sent' WHERE id = ?1", [id]))
        .unwrap();
    let err = s.list(None, None).expect_err("an unknown state is refused");
    assert!(
        err.to_string().contains("unknown callback state \"sent\""),
        "{err}"
    );
    assert!(s.get(id).is_err());
}

#[test]
fn a_second_process_sees_the_same_store() {
    let dir = tempfile::tempdir().unwrap();
    let a = Sqlite::open(dir.path()).unwrap();
    let b = Sqlite::open(dir.path()).unwrap();
    let id = a.enqueue(&callback("r", "1"), None).unwrap().id();
    assert_eq!(b.drop_callback(id).unwrap(), Acted::Done);
    assert!(a.get(id).unwrap().is_none());
}

#[test]
fn an_unusable_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let err = Sqlite::open(&file.join("sub")).err().unwrap();
    assert!(
        err.to_string().contains("cannot create the directory"),
        "{err}"
    );
}
