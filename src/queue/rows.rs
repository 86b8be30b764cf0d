//! The rows both stores keep, and how headers are stored: what the
//! interface (`store.rs`) and each backend share. A leaf of `queue/`.

use std::path::PathBuf;

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("queue store: {0}")]
    Untrusted(#[from] crate::trusted::TrustError),
    #[error("queue store {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("queue database: {0}")]
    Postgres(String),
    #[error(
        "queue database: no answer within {0:?} (is PostgreSQL up and reachable at [queue] url?)"
    )]
    Timeout(std::time::Duration),
}

/// Where a stored callback stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Waiting for (re)delivery.
    Pending,
    /// Given up on: a 4xx answer, or retries exhausted. `callgate queue retry` revives it.
    Dead,
}

impl State {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Dead => "dead",
        }
    }

    /// A stored state; anything else is a damaged or newer database, which
    /// must not be mistaken for a callback to deliver.
    pub(super) fn parse(s: &str) -> Result<State, String> {
        match s {
            "pending" => Ok(State::Pending),
            "dead" => Ok(State::Dead),
            other => Err(format!("unknown callback state {other:?} in the store")),
        }
    }
}

/// A verified callback about to be stored.
#[derive(Debug, Clone)]
pub(crate) struct NewCallback {
    pub(crate) route: String,
    pub(crate) method: String,
    /// The caller's query with the token's value replaced by REDACTED.
    pub(crate) query: Option<String>,
    /// Which of the route's token secrets matched: put back at delivery, never stored.
    pub(crate) token_secret: Option<usize>,
    /// Headers as prepared for the upstream, one `name: value\r\n` line each.
    pub(crate) headers: Vec<u8>,
    pub(crate) body: Vec<u8>,
    /// The verified header's value (e.g. `ip,token,hmac`).
    pub(crate) verified: String,
    pub(crate) arrived_ms: i64,
    /// Its replay keys (`verify::replay::encode`), checked again before
    /// delivery; empty on a route without a window.
    pub(crate) replay: Vec<u8>,
}

/// What came of storing a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Enqueued {
    /// Stored under this id.
    Stored(i64),
    /// Not stored: a copy holds one of its replay keys.
    Copy(super::replay::Claim),
}

impl Enqueued {
    /// The id it was stored under (tests).
    #[cfg(test)]
    pub(crate) fn id(self) -> i64 {
        match self {
            Enqueued::Stored(id) => id,
            Enqueued::Copy(c) => panic!("not stored: a copy holds a key ({c:?})"),
        }
    }
}

/// A stored callback.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) id: i64,
    pub(crate) state: State,
    pub(crate) attempts: u32,
    pub(crate) next_attempt_ms: i64,
    pub(crate) last_error: Option<String>,
    pub(crate) callback: NewCallback,
}

/// What came of one claimed callback, as the store records it. A worker
/// records each as it happens (those done meanwhile in one transaction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The receiver answered 2xx: removed, its replay keys delivered.
    Delivered(i64),
    /// An attempt failed: counted, and rescheduled at `next_attempt_ms`, or
    /// dead with `None`.
    Failed {
        id: i64,
        next_attempt_ms: Option<i64>,
        error: String,
    },
    /// A copy was delivered or is stored: removed undelivered.
    Dropped(i64),
    /// Claimed but never attempted (its worker stopped): given back as it was.
    Released(i64),
}

/// What an operator's retry or drop of one callback came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acted {
    Done,
    /// An instance is delivering it now: its claim is left alone, and the
    /// action is carried out when the claim ends (nothing, if delivered).
    WhenClaimEnds,
    NotFound,
}

/// Callbacks of a route that are due now, and when the next one will be.
#[derive(Debug, Default)]
pub(crate) struct Claimed {
    /// Claimed for delivery (a lease on PostgreSQL), oldest first.
    pub(crate) due: Vec<Stored>,
    /// When the earliest callback not returned becomes due, if known.
    pub(crate) next_ms: Option<i64>,
}

impl Claimed {
    /// The due prefix of a route's head, oldest first: a callback never
    /// overtakes an earlier one that waits for its next attempt.
    pub(crate) fn due_prefix(mut head: Vec<Stored>, now_ms: i64) -> Claimed {
        let due = head
            .iter()
            .take_while(|c| c.next_attempt_ms <= now_ms)
            .count();
        let next_ms = head.get(due).map(|c| c.next_attempt_ms);
        head.truncate(due);
        Claimed { due: head, next_ms }
    }
}

/// Headers as HTTP/1 lines (`name: value\r\n`), for the callback store:
/// exact bytes, no re-encoding.
pub(crate) fn to_lines(headers: &HeaderMap) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The inverse of [`to_lines`].
pub(crate) fn from_lines(lines: &[u8]) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    for line in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or("stored header without a colon")?;
        let name = HeaderName::from_bytes(&line[..colon]).map_err(|e| e.to_string())?;
        let value = HeaderValue::from_bytes(
            line[colon + 1..]
                .strip_prefix(b" ")
                .unwrap_or(&line[colon + 1..]),
        )
        .map_err(|e| e.to_string())?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// Milliseconds since the Unix epoch.

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lines_round_trip() {
        let mut h = HeaderMap::new();
        h.append("content-type", "application/json".parse().unwrap());
        h.append("x-multi", "a".parse().unwrap());
        h.append("x-multi", "b: c".parse().unwrap());
        h.append("x-bytes", HeaderValue::from_bytes(b"\xff\xfe").unwrap());
        assert_eq!(from_lines(&to_lines(&h)).unwrap(), h);
    }
}
