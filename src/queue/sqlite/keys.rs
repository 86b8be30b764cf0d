//! The replay table's SQL (the rules are `queue/replay.rs`): a callback's
//! keys claimed in one immediate transaction, settled by its delivery,
//! pruned.

use rusqlite::{params, Connection, OptionalExtension};

use super::{immediate, Sqlite, StoreError};
use crate::queue::replay::{self, queued_id, Claim, ReplayClaim, Row};

impl Sqlite {
    /// Claim a callback's replay keys (see [`super::replay`]).
    pub(crate) fn claim_replay(&self, claim: &ReplayClaim) -> Result<Claim, StoreError> {
        let callback = queued_id(&claim.owner);
        self.with(|conn| {
            immediate(conn, |conn| {
                let found = take_keys(conn, claim, callback)?;
                Ok((found == Claim::Won, found))
            })
        })
    }

    /// A direct delivery ended: 2xx keeps the keys as delivered, anything
    /// else lets them go so the provider's retry can pass.
    pub(crate) fn settle_replay(
        &self,
        route: &str,
        owner: &str,
        delivered_at_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        self.with(|conn| {
            match delivered_at_ms {
                Some(at) => conn.execute(
                    "UPDATE replay SET state = 'delivered', at_ms = ?3, until_ms = NULL, callback_id = NULL
                     WHERE route = ?1 AND owner = ?2",
                    params![route, owner, at],
                ),
                None => conn.execute(
                    "DELETE FROM replay WHERE route = ?1 AND owner = ?2",
                    params![route, owner],
                ),
            }
            .map(|_| ())
        })
    }

    /// Forget replay rows that hold nothing any more: delivered before
    /// `before_ms` (of one route, or of every route with `None`), claims
    /// expired by `now_ms`, and keys of callbacks that are gone.
    pub(crate) fn prune_replay(
        &self,
        route: Option<&str>,
        before_ms: i64,
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        self.with(|conn| {
            let old = conn.execute(
                "DELETE FROM replay WHERE (?1 IS NULL OR route = ?1) AND state = 'delivered' AND at_ms < ?2",
                params![route, before_ms],
            )?;
            let stale = conn.execute(
                "DELETE FROM replay WHERE (state = 'claimed' AND until_ms < ?1)
                    OR (state = 'queued' AND NOT EXISTS (SELECT 1 FROM callbacks c WHERE c.id = replay.callback_id))",
                params![now_ms],
            )?;
            Ok(old + stale)
        })
    }
}

/// Inside a transaction: take every key of `claim`, or report what holds
/// one (and take none: the caller rolls back).
pub(super) fn take_keys(
    conn: &Connection,
    claim: &ReplayClaim,
    callback: Option<i64>,
) -> rusqlite::Result<Claim> {
    let mut found = Vec::new();
    let keys = claim.sorted_keys();
    for key in &keys {
        let row = conn
            .query_row(
                "SELECT state, owner, payload, at_ms, until_ms,
                        state = 'queued' AND NOT EXISTS (SELECT 1 FROM callbacks c WHERE c.id = replay.callback_id)
                 FROM replay WHERE route = ?1 AND key = ?2",
                params![claim.route, &key.key[..]],
                |r| {
                    Ok(Row {
                        state: r.get(0)?,
                        owner: r.get(1)?,
                        payload: r.get(2)?,
                        at_ms: r.get(3)?,
                        until_ms: r.get(4)?,
                        orphan: r.get(5)?,
                    })
                },
            )
            .optional()?;
        found.extend(row.and_then(|row| replay::blocks(&row, key, claim)));
    }
    if !found.is_empty() {
        return Ok(replay::worst(found));
    }
    for key in &keys {
        conn.execute(
            "INSERT OR REPLACE INTO replay (route, key, payload, state, owner, callback_id, at_ms, until_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                claim.route,
                &key.key[..],
                &key.payload[..],
                replay::held_state(claim),
                claim.owner,
                callback,
                claim.now_ms,
                claim.until_ms
            ],
        )?;
    }
    Ok(Claim::Won)
}
