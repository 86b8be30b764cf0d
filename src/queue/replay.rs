//! Replay claims as both stores keep them: one row per (route, key), in one
//! of three states. A key is claimed before its callback goes anywhere, in
//! one transaction for all of a callback's keys, so two copies arriving at
//! once (at one instance or at two sharing PostgreSQL) cannot both pass.
//!
//! - `claimed`: a direct delivery is in flight; it expires at `until_ms`
//!   (an instance that died mid-flight does not block the key for ever).
//! - `queued`: the callback is stored (pending or dead); held while it is.
//! - `delivered`: the receiver answered 2xx at `at_ms`; held for the window.
//!
//! A leaf of `queue/`: the rules here, the SQL in each backend.

use crate::verify::replay::ReplayKey;

/// What a callback asks of the replay table.
#[derive(Debug, Clone)]
pub(crate) struct ReplayClaim {
    pub(crate) route: String,
    pub(crate) keys: Vec<ReplayKey>,
    /// Who holds the keys: a random token (direct) or `q:<id>` (queued).
    pub(crate) owner: String,
    pub(crate) now_ms: i64,
    /// Rows delivered before this are out of the window.
    pub(crate) since_ms: i64,
    /// A direct claim's expiry; `None` for a queued callback's keys.
    pub(crate) until_ms: Option<i64>,
}

impl ReplayClaim {
    /// A claim made now for `route`'s keys within its `window`; `hold`: how
    /// long a direct claim lasts (`None`: a stored callback's, held while
    /// it is stored).
    pub(crate) fn now(
        route: &str,
        window: std::time::Duration,
        keys: Vec<ReplayKey>,
        owner: String,
        hold: Option<std::time::Duration>,
    ) -> ReplayClaim {
        let now = crate::clock::unix_ms();
        ReplayClaim {
            route: route.to_owned(),
            keys,
            owner,
            now_ms: now,
            since_ms: now - window.as_millis() as i64,
            until_ms: hold.map(|h| now + h.as_millis() as i64),
        }
    }

    /// The keys in one order, so that two transactions taking the same keys
    /// lock them in the same order (no deadlock on PostgreSQL).
    pub(crate) fn sorted_keys(&self) -> Vec<ReplayKey> {
        let mut keys = self.keys.clone();
        keys.sort_by_key(|k| k.key);
        keys.dedup_by(|a, b| a.key == b.key);
        keys
    }
}

/// What a claim came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// Every key is now held by the claimant.
    Won,
    /// A copy was delivered (2xx) within the window.
    Delivered,
    /// A copy is stored in the queue and will be delivered.
    Stored,
    /// A copy is in flight to the receiver until about this time.
    InFlight { until_ms: i64 },
    /// The signed id was seen with another payload.
    Conflict { stored: [u8; 32], given: [u8; 32] },
}

/// The log's reason for a conflict, with both payload digests: the same for
/// a direct refusal and a dead-lettered queued copy.
pub(crate) fn conflict_reason(stored: &[u8; 32], given: &[u8; 32]) -> String {
    format!(
        "replay: message id reused with another body (sha256 {} before, {} now)",
        hex::encode(stored),
        hex::encode(given)
    )
}

/// A row found under one of the claimed keys.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) state: String,
    pub(crate) owner: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) at_ms: i64,
    pub(crate) until_ms: Option<i64>,
    /// A `queued` row whose callback is gone (dropped by an operator).
    pub(crate) orphan: bool,
}

/// What an existing row means for one key of a claim: `None` when the key
/// is free to take (the claimant's own, expired, out of the window, orphaned).
pub(crate) fn blocks(row: &Row, key: &ReplayKey, claim: &ReplayClaim) -> Option<Claim> {
    let live = match row.state.as_str() {
        _ if row.owner == claim.owner => false,
        "delivered" => row.at_ms >= claim.since_ms,
        "claimed" => row.until_ms.is_some_and(|u| u >= claim.now_ms),
        "queued" => !row.orphan,
        // A state this version does not know: hold on to it.
        _ => true,
    };
    if !live {
        return None;
    }
    if key.strict && row.payload.as_slice() != key.payload.as_slice() {
        return Some(Claim::Conflict {
            stored: row.payload.as_slice().try_into().unwrap_or([0; 32]),
            given: key.payload,
        });
    }
    Some(match row.state.as_str() {
        "delivered" => Claim::Delivered,
        "queued" => Claim::Stored,
        _ => Claim::InFlight {
            until_ms: row.until_ms.unwrap_or(claim.now_ms),
        },
    })
}

/// The answer for several blocked keys: a conflict first, then what is
/// settled (delivered, stored), then what is still in flight.
pub(crate) fn worst(found: impl IntoIterator<Item = Claim>) -> Claim {
    let rank = |c: &Claim| match c {
        Claim::Conflict { .. } => 0,
        Claim::Delivered => 1,
        Claim::Stored => 2,
        Claim::InFlight { .. } => 3,
        Claim::Won => 4,
    };
    found.into_iter().min_by_key(rank).unwrap_or(Claim::Won)
}

/// Who holds a stored callback's keys.
pub(crate) fn queued_owner(id: i64) -> String {
    format!("q:{id}")
}

/// The callback whose keys an owner holds, if it is one.
pub(crate) fn queued_id(owner: &str) -> Option<i64> {
    owner.strip_prefix("q:")?.parse().ok()
}

/// The state a claim writes.
pub(crate) fn held_state(claim: &ReplayClaim) -> &'static str {
    match claim.until_ms {
        Some(_) => "claimed",
        None => "queued",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(strict: bool, payload: u8) -> ReplayKey {
        ReplayKey {
            key: [1; 32],
            payload: [payload; 32],
            strict,
        }
    }

    fn claim() -> ReplayClaim {
        ReplayClaim {
            route: "r".into(),
            keys: vec![key(false, 1)],
            owner: "me".into(),
            now_ms: 10_000,
            since_ms: 5_000,
            until_ms: Some(20_000),
        }
    }

    fn row(state: &str, at_ms: i64, until_ms: Option<i64>) -> Row {
        Row {
            state: state.into(),
            owner: "other".into(),
            payload: vec![1; 32],
            at_ms,
            until_ms,
            orphan: false,
        }
    }

    #[test]
    fn rows_block_only_while_they_live() {
        let (c, k) = (claim(), key(false, 1));
        assert_eq!(
            blocks(&row("delivered", 6_000, None), &k, &c),
            Some(Claim::Delivered)
        );
        assert_eq!(blocks(&row("delivered", 4_000, None), &k, &c), None);
        assert_eq!(
            blocks(&row("claimed", 9_000, Some(12_000)), &k, &c),
            Some(Claim::InFlight { until_ms: 12_000 })
        );
        assert_eq!(blocks(&row("claimed", 1_000, Some(9_000)), &k, &c), None);
        assert_eq!(blocks(&row("queued", 1, None), &k, &c), Some(Claim::Stored));
        let orphan = Row {
            orphan: true,
            ..row("queued", 1, None)
        };
        assert_eq!(blocks(&orphan, &k, &c), None);
        let mine = Row {
            owner: "me".into(),
            ..row("queued", 1, None)
        };
        assert_eq!(blocks(&mine, &k, &c), None);
    }

    #[test]
    fn a_signed_id_with_another_payload_is_a_conflict() {
        let c = claim();
        let found = blocks(&row("delivered", 6_000, None), &key(true, 2), &c);
        assert_eq!(
            found,
            Some(Claim::Conflict {
                stored: [1; 32],
                given: [2; 32]
            })
        );
        // Not strict: a redelivery that changed an unsigned detail.
        assert_eq!(
            blocks(&row("delivered", 6_000, None), &key(false, 2), &c),
            Some(Claim::Delivered)
        );
    }

    #[test]
    fn the_worst_blocking_row_decides() {
        let inflight = Claim::InFlight { until_ms: 1 };
        assert_eq!(worst([inflight, Claim::Delivered]), Claim::Delivered);
        assert_eq!(worst([Claim::Stored, inflight]), Claim::Stored);
        assert_eq!(worst([]), Claim::Won);
    }
}
