//! How a claim ends: the worker's outcomes recorded, and the operator's
//! retries and drops, carried out now or, on a live claim, when it ends.

use super::{Postgres, StoreError, ASYNC_COMMIT};
use crate::queue::replay::queued_owner;
use crate::queue::rows::{Acted, Outcome};

/// The operator's retries and drops noted on claims that lapsed (the
/// holder died before its claim ended), carried out; `$1` the route, `$2` now.
pub(super) const LAPSED_WANTED: &str = "
    WITH lapsed AS (
        SELECT id, wanted FROM callgate_callbacks
        WHERE route = $1 AND wanted IS NOT NULL AND (claimed_until_ms IS NULL OR claimed_until_ms < $2)
        FOR UPDATE SKIP LOCKED
    ), dropped AS (
        DELETE FROM callgate_callbacks c USING lapsed l WHERE c.id = l.id AND l.wanted = 'drop' RETURNING c.id
    ), retried AS (
        UPDATE callgate_callbacks c SET state = 'pending', attempts = 0, next_attempt_ms = $2,
            wanted = NULL, claimed_by = NULL, claimed_until_ms = NULL
        FROM lapsed l WHERE c.id = l.id AND l.wanted = 'retry' RETURNING c.id
    )
    DELETE FROM callgate_replay WHERE owner IN (SELECT 'q:' || id FROM dropped)";

impl Postgres {
    /// What came of this instance's claims, in one transaction. A delivery
    /// (2xx) removes the callback whoever holds it now: it arrived. Anything
    /// else is recorded only under this instance's own claim (a lapsed claim
    /// another instance took is theirs), and then an operator's retry or drop
    /// that waited for the claim to end is carried out.
    pub(crate) async fn record(&self, outcomes: &[Outcome], at_ms: i64) -> Result<(), StoreError> {
        let me = &self.me;
        self.call(|mut db| async move {
            let tx = db.transaction().await?;
            tx.batch_execute(ASYNC_COMMIT).await?;
            let (mut delivered, mut ended) = (Vec::new(), Vec::new());
            for o in outcomes {
                match o {
                    Outcome::Delivered(id) => delivered.push(*id),
                    Outcome::Failed { id, next_attempt_ms, error } => {
                        tx.execute(
                            "UPDATE callgate_callbacks SET attempts = attempts + 1,
                                 state = CASE WHEN $2::BIGINT IS NULL THEN 'dead' ELSE state END,
                                 next_attempt_ms = COALESCE($2, next_attempt_ms), last_error = $3,
                                 claimed_until_ms = NULL, claimed_by = NULL
                             WHERE id = $1 AND claimed_by = $4",
                            &[id, next_attempt_ms, error, &me],
                        )
                        .await?;
                        ended.push(*id);
                    }
                    Outcome::Dropped(id) => {
                        tx.execute(
                            "UPDATE callgate_callbacks SET wanted = 'drop', claimed_until_ms = NULL, claimed_by = NULL
                             WHERE id = $1 AND claimed_by = $2",
                            &[id, &me],
                        )
                        .await?;
                        ended.push(*id);
                    }
                    Outcome::Released(id) => {
                        tx.execute(
                            "UPDATE callgate_callbacks SET claimed_until_ms = NULL, claimed_by = NULL
                             WHERE id = $1 AND claimed_by = $2",
                            &[id, &me],
                        )
                        .await?;
                        ended.push(*id);
                    }
                }
            }
            if !delivered.is_empty() {
                remove(&tx, &delivered, Some(at_ms)).await?;
            }
            if !ended.is_empty() {
                carry_out_wanted(&tx, &ended, at_ms).await?;
            }
            tx.commit().await
        })
        .await
    }

    /// Pending again, due now, attempts counted afresh; while an instance
    /// holds a live claim on it, only noted, and done when the claim ends
    /// in anything but a delivery (`carry_out_wanted`).
    pub(crate) async fn retry(&self, id: i64, now_ms: i64) -> Result<Acted, StoreError> {
        self.operator(id, now_ms, "retry").await
    }

    /// Every dead callback pending again (a dead one holds no claim).
    pub(crate) async fn retry_all_dead(&self, now_ms: i64) -> Result<usize, StoreError> {
        self.call(|db| async move {
            db.execute(
                "UPDATE callgate_callbacks SET state = 'pending', attempts = 0, next_attempt_ms = $1,
                     claimed_until_ms = NULL, claimed_by = NULL, wanted = NULL
                 WHERE state = 'dead' AND (claimed_until_ms IS NULL OR claimed_until_ms < $1)",
                &[&now_ms],
            ).await.map(|n| n as usize)
        })
        .await
    }

    /// Removed for good; while an instance holds a live claim on it, only
    /// noted, and done when the claim ends.
    pub(crate) async fn drop_callback(&self, id: i64) -> Result<Acted, StoreError> {
        self.operator(id, crate::clock::unix_ms(), "drop").await
    }

    /// An operator's `retry` or `drop` of one callback: noted on a live
    /// claim (never cleared: its holder may be delivering it this moment),
    /// else carried out now.
    async fn operator(&self, id: i64, now_ms: i64, wanted: &str) -> Result<Acted, StoreError> {
        self.call(|mut db| async move {
            let tx = db.transaction().await?;
            let live = tx
                .query_opt(
                    "UPDATE callgate_callbacks SET wanted = $3
                     WHERE id = $1 AND claimed_until_ms >= $2 RETURNING id",
                    &[&id, &now_ms, &wanted],
                )
                .await?;
            if live.is_some() {
                tx.commit().await?;
                return Ok(Acted::WhenClaimEnds);
            }
            let n = tx
                .execute(
                    "UPDATE callgate_callbacks SET wanted = $2, claimed_until_ms = NULL, claimed_by = NULL WHERE id = $1",
                    &[&id, &wanted],
                )
                .await?;
            carry_out_wanted(&tx, &[id], now_ms).await?;
            tx.commit().await?;
            Ok(if n == 0 { Acted::NotFound } else { Acted::Done })
        })
        .await
    }
}

/// Inside a transaction: remove callbacks and their replay keys; delivered
/// at `delivered_at_ms`, the keys stay as delivered for the window.
async fn remove(
    tx: &deadpool_postgres::Transaction<'_>,
    ids: &[i64],
    delivered_at_ms: Option<i64>,
) -> Result<(), tokio_postgres::Error> {
    let owners: Vec<String> = ids.iter().map(|id| queued_owner(*id)).collect();
    match delivered_at_ms {
        Some(at) => tx.execute(
            "UPDATE callgate_replay SET state = 'delivered', at_ms = $2, until_ms = NULL, callback_id = NULL
             WHERE owner = ANY($1)",
            &[&owners, &at],
        ).await?,
        None => tx.execute("DELETE FROM callgate_replay WHERE owner = ANY($1)", &[&owners]).await?,
    };
    tx.execute("DELETE FROM callgate_callbacks WHERE id = ANY($1)", &[&ids])
        .await
        .map(|_| ())
}

/// Inside a transaction: the operator's retry or drop noted on callbacks
/// whose claim has ended, carried out now.
async fn carry_out_wanted(
    tx: &deadpool_postgres::Transaction<'_>,
    ids: &[i64],
    now_ms: i64,
) -> Result<(), tokio_postgres::Error> {
    let drop: Vec<i64> = tx
        .query(
            "SELECT id FROM callgate_callbacks WHERE id = ANY($1) AND claimed_by IS NULL AND wanted = 'drop'",
            &[&ids],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !drop.is_empty() {
        remove(tx, &drop, None).await?;
    }
    tx.execute(
        "UPDATE callgate_callbacks SET state = 'pending', attempts = 0, next_attempt_ms = $2, wanted = NULL
         WHERE id = ANY($1) AND claimed_by IS NULL AND wanted = 'retry'",
        &[&ids, &now_ms],
    )
    .await
    .map(|_| ())
}
