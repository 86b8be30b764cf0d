//! The replay table's SQL (the rules are `queue/replay.rs`): a callback's
//! keys claimed in one transaction, settled by its delivery, pruned.

use super::{Postgres, StoreError};
use crate::queue::replay::{self, queued_id, Claim, ReplayClaim, Row as ReplayRow};

impl Postgres {
    /// Claim a callback's replay keys (see [`super::replay`]): one
    /// transaction, so two instances taking the same key cannot both win.
    pub(crate) async fn claim_replay(&self, claim: &ReplayClaim) -> Result<Claim, StoreError> {
        let callback = queued_id(&claim.owner);
        self.call(|mut db| async move {
            let tx = db.transaction().await?;
            let found = take_keys(&tx, claim, callback).await?;
            match found {
                Claim::Won => tx.commit().await?,
                _ => tx.rollback().await?,
            }
            Ok(found)
        })
        .await
    }

    pub(crate) async fn settle_replay(
        &self,
        route: &str,
        owner: &str,
        delivered_at_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        self.call(|db| async move {
            match delivered_at_ms {
                Some(at) => db.execute(
                    "UPDATE callgate_replay SET state = 'delivered', at_ms = $3, until_ms = NULL, callback_id = NULL
                     WHERE route = $1 AND owner = $2",
                    &[&route, &owner, &at],
                ).await,
                None => db.execute(
                    "DELETE FROM callgate_replay WHERE route = $1 AND owner = $2",
                    &[&route, &owner],
                ).await,
            }
            .map(|_| ())
        })
        .await
    }

    pub(crate) async fn prune_replay(
        &self,
        route: Option<&str>,
        before_ms: i64,
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        self.call(|db| async move {
            let old = db.execute(
                "DELETE FROM callgate_replay WHERE ($1::TEXT IS NULL OR route = $1) AND state = 'delivered' AND at_ms < $2",
                &[&route, &before_ms],
            ).await?;
            let stale = db.execute(
                "DELETE FROM callgate_replay WHERE (state = 'claimed' AND until_ms < $1)
                    OR (state = 'queued' AND NOT EXISTS (SELECT 1 FROM callgate_callbacks c WHERE c.id = callgate_replay.callback_id))",
                &[&now_ms],
            ).await?;
            Ok((old + stale) as usize)
        })
        .await
    }
}

/// Inside a transaction: take every key of `claim` (in key order, so two
/// transactions never wait on each other crosswise), or report what holds
/// one. An upsert takes a key that is free or stale; one that returns no
/// row found a live holder, committed (an INSERT on the same key in another
/// transaction waits for it to end).
pub(super) async fn take_keys(
    tx: &deadpool_postgres::Transaction<'_>,
    claim: &ReplayClaim,
    callback: Option<i64>,
) -> Result<Claim, tokio_postgres::Error> {
    let mut found = Vec::new();
    let state = replay::held_state(claim);
    for key in claim.sorted_keys() {
        let taken = tx
            .query_opt(
                "INSERT INTO callgate_replay (route, key, payload, state, owner, callback_id, at_ms, until_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (route, key) DO UPDATE SET payload = EXCLUDED.payload, state = EXCLUDED.state,
                     owner = EXCLUDED.owner, callback_id = EXCLUDED.callback_id, at_ms = EXCLUDED.at_ms,
                     until_ms = EXCLUDED.until_ms
                 WHERE callgate_replay.owner = EXCLUDED.owner
                    OR (callgate_replay.state = 'delivered' AND callgate_replay.at_ms < $9)
                    OR (callgate_replay.state = 'claimed' AND callgate_replay.until_ms < $7)
                    OR (callgate_replay.state = 'queued' AND NOT EXISTS
                        (SELECT 1 FROM callgate_callbacks c WHERE c.id = callgate_replay.callback_id))
                 RETURNING 1",
                &[
                    &claim.route,
                    &&key.key[..],
                    &&key.payload[..],
                    &state,
                    &claim.owner,
                    &callback,
                    &claim.now_ms,
                    &claim.until_ms,
                    &claim.since_ms,
                ],
            )
            .await?;
        if taken.is_some() {
            continue;
        }
        let row = tx
            .query_one(
                "SELECT state, owner, payload, at_ms, until_ms,
                        state = 'queued' AND NOT EXISTS (SELECT 1 FROM callgate_callbacks c WHERE c.id = r.callback_id)
                 FROM callgate_replay r WHERE route = $1 AND key = $2",
                &[&claim.route, &&key.key[..]],
            )
            .await?;
        let row = ReplayRow {
            state: row.get(0),
            owner: row.get(1),
            payload: row.get(2),
            at_ms: row.get(3),
            until_ms: row.get(4),
            orphan: row.get(5),
        };
        // The upsert saw it live; if it just went stale, the copy waits a moment.
        found.push(
            replay::blocks(&row, &key, claim).unwrap_or(Claim::InFlight {
                until_ms: claim.now_ms + 1000,
            }),
        );
    }
    Ok(replay::worst(found))
}
