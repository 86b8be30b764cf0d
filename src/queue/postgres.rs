//! The shared store: PostgreSQL through tokio-postgres and a small
//! deadpool pool. Several callgate instances use one database: a worker
//! claims due callbacks with `FOR UPDATE SKIP LOCKED` and a lease, so each
//! is delivered by one instance at a time, and one whose instance died is
//! taken by another once the lease ran out. A callback is acknowledged only
//! after its INSERT committed. The schema is created, and later migrated,
//! at first use, under an advisory lock.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::OnceCell;
use tokio_postgres::Row;

use super::replay::{self, queued_id, queued_owner, Claim, ReplayClaim, Row as ReplayRow};
use super::rows::{Acted, Claimed, Enqueued, NewCallback, Outcome, State, StoreError, Stored};
use crate::config::pg_url::{PgTls, SslMode};
use crate::config::secret::Secret;

/// Longest any database call may take, connecting included: a callback
/// waits at most this before its 503 (the contract says within 5 s).
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(4);
/// Connections per instance: workers and requests share them.
const POOL_SIZE: usize = 8;
/// Serializes migrations of instances starting together.
const MIGRATION_LOCK: i64 = 0x6361_6c6c_6761_7465; // "callgate"

/// Each schema version's statements, applied in order.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE callgate_callbacks (
        id BIGSERIAL PRIMARY KEY,
        route TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        method TEXT NOT NULL,
        query TEXT,
        token_secret INTEGER,
        headers BYTEA NOT NULL,
        body BYTEA NOT NULL,
        verified TEXT NOT NULL,
        arrived_ms BIGINT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms BIGINT NOT NULL,
        last_error TEXT,
        claimed_until_ms BIGINT
    );
    CREATE INDEX callgate_callbacks_due ON callgate_callbacks (route, state, next_attempt_ms, id);
    CREATE TABLE callgate_delivered (
        route TEXT NOT NULL,
        digest BYTEA NOT NULL,
        at_ms BIGINT NOT NULL,
        PRIMARY KEY (route, digest)
    );
",
    "
    ALTER TABLE callgate_callbacks ADD COLUMN replay BYTEA;
    CREATE TABLE callgate_replay (
        route TEXT NOT NULL,
        key BYTEA NOT NULL,
        payload BYTEA NOT NULL,
        state TEXT NOT NULL,
        owner TEXT NOT NULL,
        callback_id BIGINT,
        at_ms BIGINT NOT NULL,
        until_ms BIGINT,
        PRIMARY KEY (route, key)
    );
    CREATE INDEX callgate_replay_by_owner ON callgate_replay (owner);
    DROP TABLE callgate_delivered;
",
    // The claim reads a route's pending head in id order (see `claim`).
    "
    CREATE INDEX callgate_callbacks_pending ON callgate_callbacks (route, id) WHERE state = 'pending';
",
    // ACME shared by every instance (`acme/shared.rs`): the account and the
    // certificate (private keys sealed), the challenge answers being validated.
    "
    CREATE TABLE callgate_acme_state (
        name TEXT PRIMARY KEY,
        chain TEXT,
        sealed BYTEA NOT NULL,
        updated_ms BIGINT NOT NULL
    );
    CREATE TABLE callgate_acme_challenges (
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        until_ms BIGINT NOT NULL,
        PRIMARY KEY (kind, name)
    );
",
    // Claims belong to their holder: an instance records an attempt only
    // under its own claim; an operator's retry or drop of a claimed callback
    // waits for the claim to end (`wanted`).
    "
    ALTER TABLE callgate_callbacks ADD COLUMN claimed_by TEXT, ADD COLUMN wanted TEXT;
    CREATE TABLE callgate_health (id INTEGER PRIMARY KEY, at_ms BIGINT NOT NULL);
",
    // An operator's noted retry or drop, found cheaply at each claim.
    "
    CREATE INDEX callgate_callbacks_wanted ON callgate_callbacks (route) WHERE wanted IS NOT NULL;
",
];

/// The operator's retries and drops noted on claims that lapsed (the
/// holder died before its claim ended), carried out; `$1` the route, `$2` now.
const LAPSED_WANTED: &str = "
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

const COLUMNS: &str = "id, route, state, method, query, token_secret, headers, body, verified, arrived_ms, attempts, next_attempt_ms, last_error, replay";

/// The PostgreSQL store.
pub(crate) struct Postgres {
    pool: Pool,
    url: Secret,
    tls: PgTls,
    lease: Duration,
    /// Where it is, without user or password.
    place: String,
    /// This instance's name on its claims (`claimed_by`): random, per process.
    me: String,
    migrated: OnceCell<()>,
}

/// Claims and completed deliveries do not wait for the WAL flush: if the
/// database crashes before it, the claim or the completion is lost and the
/// callback is delivered once more (at least once, as after any crash),
/// never lost. Acknowledgements (`enqueue`) keep the synchronous commit.
/// Without this a draining round paid two flushes (~10 ms each here).
const ASYNC_COMMIT: &str = "SET LOCAL synchronous_commit = off";

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Postgres(e.to_string())
}

impl Postgres {
    /// A pool for `url`; nothing is connected until first use.
    pub(crate) fn open(url: &Secret, tls: &PgTls, lease: Duration) -> Result<Postgres, StoreError> {
        let text = std::str::from_utf8(url.expose()).map_err(db_err)?;
        let mut config: tokio_postgres::Config = text.parse().map_err(db_err)?;
        config.connect_timeout(CALL_TIMEOUT);
        // TLS is demanded, never merely preferred: a server (or a man in the
        // middle) that says it has none gets neither callbacks nor password.
        config.ssl_mode(match tls.mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            _ => tokio_postgres::config::SslMode::Require,
        });
        let place = format!(
            "postgres {:?} database {}",
            config.get_hosts(),
            config.get_dbname().unwrap_or("(default)")
        );
        let manager = Manager::from_config(
            config,
            connector(tls)?,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CALL_TIMEOUT))
            .create_timeout(Some(CALL_TIMEOUT))
            .recycle_timeout(Some(CALL_TIMEOUT))
            .build()
            .map_err(db_err)?;
        Ok(Postgres {
            pool,
            url: url.clone(),
            tls: tls.clone(),
            lease,
            place,
            me: format!("{}-{:016x}", std::process::id(), rand::random::<u64>()),
            migrated: OnceCell::new(),
        })
    }

    pub(crate) fn describe(&self) -> String {
        self.place.clone()
    }

    pub(crate) fn is(&self, url: &Secret, tls: &PgTls, lease: Duration) -> bool {
        &self.url == url && &self.tls == tls && self.lease == lease
    }

    /// A pooled connection, the schema in place; bounded by CALL_TIMEOUT.
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        let client = self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Timeout(_) => StoreError::Timeout(CALL_TIMEOUT),
            deadpool_postgres::PoolError::Backend(e) => pg_err(&e),
            e => db_err(e),
        })?;
        self.migrated.get_or_try_init(|| migrate(&client)).await?;
        Ok(client)
    }

    /// A connection of its own, out of the pool (closed when dropped, so a
    /// session advisory lock taken on it ends with it, or with the process).
    pub(crate) async fn detached(&self) -> Result<deadpool_postgres::ClientWrapper, StoreError> {
        let work = async { Ok(deadpool_postgres::Object::take(self.client().await?)) };
        tokio::time::timeout(CALL_TIMEOUT, work)
            .await
            .unwrap_or(Err(StoreError::Timeout(CALL_TIMEOUT)))
    }

    /// Run `f` on a connection, within CALL_TIMEOUT in all.
    pub(crate) async fn call<T, F>(
        &self,
        f: impl FnOnce(deadpool_postgres::Object) -> F,
    ) -> Result<T, StoreError>
    where
        F: std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let work = async {
            let client = self.client().await?;
            f(client).await.map_err(|e| pg_err(&e))
        };
        tokio::time::timeout(CALL_TIMEOUT, work)
            .await
            .unwrap_or(Err(StoreError::Timeout(CALL_TIMEOUT)))
    }

    pub(crate) async fn enqueue(
        &self,
        c: &NewCallback,
        replay: Option<&ReplayClaim>,
    ) -> Result<Enqueued, StoreError> {
        self.call(|mut db| async move {
            let tx = db.transaction().await?;
            let row = tx.query_one(
                "INSERT INTO callgate_callbacks (route, method, query, token_secret, headers, body, verified, arrived_ms, next_attempt_ms, replay)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9) RETURNING id",
                &[&c.route, &c.method, &c.query, &c.token_secret.map(|i| i as i32), &c.headers, &c.body, &c.verified, &c.arrived_ms, &c.replay],
            ).await?;
            let id: i64 = row.get(0);
            let Some(claim) = replay else {
                tx.commit().await?;
                return Ok(Enqueued::Stored(id));
            };
            let claim = ReplayClaim {
                owner: queued_owner(id),
                ..claim.clone()
            };
            match take_keys(&tx, &claim, Some(id)).await? {
                Claim::Won => {
                    tx.commit().await?;
                    Ok(Enqueued::Stored(id))
                }
                held => {
                    tx.rollback().await?;
                    Ok(Enqueued::Copy(held))
                }
            }
        })
        .await
    }

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

    /// Claim the due prefix of the route's head among the callbacks no
    /// other instance holds, each for `lease`: within an instance a callback
    /// never overtakes an earlier one (SKIP LOCKED passes over rows another
    /// instance is claiming at this moment).
    pub(crate) async fn claim(
        &self,
        route: &str,
        limit: usize,
        now_ms: i64,
    ) -> Result<Claimed, StoreError> {
        let until = now_ms + self.lease.as_millis() as i64;
        let limit = limit as i64;
        let me = &self.me;
        let head = self.call(|mut db| async move {
            let tx = db.transaction().await?;
            // The head in id order comes from the pending index, never from
            // reading every pending row and sorting: statistics taken while
            // the table was empty (a backlog built within a minute, before
            // autovacuum's ANALYZE) make the planner choose the sort, 20-90
            // ms a round with 12,000 waiting. One round trip for both settings.
            tx.batch_execute(&format!("{ASYNC_COMMIT}; SET LOCAL enable_sort = off"))
                .await?;
            // A retry or drop noted on a claim that has lapsed since (its
            // instance died): carried out now, before anyone claims it again.
            tx.execute(LAPSED_WANTED, &[&route, &now_ms]).await?;
            let rows = tx.query(
                &format!("SELECT {COLUMNS} FROM callgate_callbacks
                 WHERE route = $1 AND state = 'pending' AND (claimed_until_ms IS NULL OR claimed_until_ms < $2)
                 ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED"),
                &[&route, &now_ms, &limit],
            ).await?;
            let due: Vec<i64> = rows
                .iter()
                .take_while(|r| r.get::<_, i64>(11) <= now_ms)
                .map(|r| r.get(0))
                .collect();
            if !due.is_empty() {
                tx.execute(
                    "UPDATE callgate_callbacks SET claimed_until_ms = $1, claimed_by = $3 WHERE id = ANY($2)",
                    &[&until, &due, &me],
                ).await?;
            }
            tx.commit().await?;
            Ok(rows)
        })
        .await?;
        let head = head.iter().map(stored).collect::<Result<Vec<_>, _>>()?;
        Ok(Claimed::due_prefix(head, now_ms))
    }

    /// Extend this instance's claims on callbacks still being delivered by
    /// one lease; the ids it still holds (a claim that lapsed and was taken,
    /// or ended by the callback's removal, is not renewed).
    pub(crate) async fn renew(&self, ids: &[i64], now_ms: i64) -> Result<Vec<i64>, StoreError> {
        let until = now_ms + self.lease.as_millis() as i64;
        let ids = ids.to_vec();
        let me = &self.me;
        self.call(|db| async move {
            let rows = db
                .query(
                    "UPDATE callgate_callbacks SET claimed_until_ms = $1
                     WHERE id = ANY($2) AND state = 'pending' AND claimed_by = $3
                     RETURNING id",
                    &[&until, &ids, &me],
                )
                .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
        .await
    }

    /// How long a claim holds.
    pub(crate) fn lease(&self) -> Duration {
        self.lease
    }

    pub(crate) async fn get(&self, id: i64) -> Result<Option<Stored>, StoreError> {
        let rows = self
            .call(|db| async move {
                db.query(
                    &format!("SELECT {COLUMNS} FROM callgate_callbacks WHERE id = $1"),
                    &[&id],
                )
                .await
            })
            .await?;
        rows.iter().map(stored).next().transpose()
    }

    pub(crate) async fn list(
        &self,
        route: Option<&str>,
        state: Option<State>,
    ) -> Result<Vec<Stored>, StoreError> {
        let state = state.map(State::as_str);
        let rows = self
            .call(|db| async move {
                db.query(
                    &format!("SELECT {COLUMNS} FROM callgate_callbacks
                     WHERE ($1::TEXT IS NULL OR route = $1) AND ($2::TEXT IS NULL OR state = $2) ORDER BY id"),
                    &[&route, &state],
                ).await
            })
            .await?;
        rows.iter().map(stored).collect()
    }

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
        self.operator(id, now(), "drop").await
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

    pub(crate) async fn depth(&self, route: &str) -> Result<(u64, u64, Option<i64>), StoreError> {
        self.call(|db| async move {
            let r = db.query_one(
                "SELECT COUNT(*) FILTER (WHERE state = 'pending'), COUNT(*) FILTER (WHERE state = 'dead'),
                        MIN(arrived_ms) FILTER (WHERE state = 'pending')
                 FROM callgate_callbacks WHERE route = $1",
                &[&route],
            ).await?;
            Ok((r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64, r.get(2)))
        })
        .await
    }

    /// The database takes a write now (a committed row, synchronously:
    /// a read-only or full database says so here, as it would to a callback).
    pub(crate) async fn health(&self) -> Result<(), StoreError> {
        self.call(|db| async move {
            db.batch_execute(
                "INSERT INTO callgate_health (id, at_ms) VALUES (1, (extract(epoch from now()) * 1000)::BIGINT)
                 ON CONFLICT (id) DO UPDATE SET at_ms = EXCLUDED.at_ms",
            )
            .await
        })
        .await
    }
}

fn now() -> i64 {
    super::rows::now_ms()
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

/// Inside a transaction: take every key of `claim` (in key order, so two
/// transactions never wait on each other crosswise), or report what holds
/// one. An upsert takes a key that is free or stale; one that returns no
/// row found a live holder, committed (an INSERT on the same key in another
/// transaction waits for it to end).
async fn take_keys(
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

/// TLS to the database as `sslmode` says (`pg_tls.rs`).
fn connector(tls: &PgTls) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    let config = super::pg_tls::client_config(tls).map_err(db_err)?;
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// A database error an operator can act on: its cause (authentication,
/// TLS, unreachable, the server's own refusal) and the server's message,
/// never the URL or a password.
pub(crate) fn pg_err(e: &tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let cause = match code {
            "28P01" | "28000" => "authentication failed",
            "3D000" => "no such database",
            c if c.starts_with("08") || c.starts_with("53") || c.starts_with("57") => {
                "the server refused the connection"
            }
            _ => "the database refused",
        };
        return StoreError::Postgres(format!("{cause}: {} (SQLSTATE {code})", db.message()));
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    let lower = text.to_ascii_lowercase();
    let cause = if lower.contains("tls") || lower.contains("certificate") || lower.contains("ssl") {
        "TLS"
    } else if e.is_closed() || lower.contains("connect") || lower.contains("timed out") {
        "unreachable"
    } else {
        "error"
    };
    StoreError::Postgres(format!("{cause}: {text}"))
}

/// Create or bring the schema up to the latest version, one instance at a time.
async fn migrate(client: &deadpool_postgres::Object) -> Result<(), StoreError> {
    client
        .batch_execute(&format!(
            "BEGIN;
             SET LOCAL client_min_messages = warning;
             SELECT pg_advisory_xact_lock({MIGRATION_LOCK});
             CREATE TABLE IF NOT EXISTS callgate_schema (version INTEGER NOT NULL);
             INSERT INTO callgate_schema (version) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM callgate_schema);"
        ))
        .await
        .map_err(db_err)?;
    let result = async {
        let version: i32 = client
            .query_one("SELECT version FROM callgate_schema", &[])
            .await?
            .get(0);
        for (i, statements) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
            client.batch_execute(statements).await?;
            client
                .execute(
                    "UPDATE callgate_schema SET version = $1",
                    &[&(i as i32 + 1)],
                )
                .await?;
        }
        client.batch_execute("COMMIT").await
    }
    .await;
    if result.is_err() {
        let _ = client.batch_execute("ROLLBACK").await;
    }
    result.map_err(db_err)
}

fn stored(r: &Row) -> Result<Stored, StoreError> {
    Ok(Stored {
        id: r.get(0),
        state: State::parse(r.get::<_, &str>(2)).map_err(StoreError::Postgres)?,
        attempts: r.get::<_, i32>(10) as u32,
        next_attempt_ms: r.get(11),
        last_error: r.get(12),
        callback: NewCallback {
            route: r.get(1),
            method: r.get(3),
            query: r.get(4),
            token_secret: r.get::<_, Option<i32>>(5).map(|i| i as usize),
            headers: r.get(6),
            body: r.get(7),
            verified: r.get(8),
            arrived_ms: r.get(9),
            replay: r.get::<_, Option<Vec<u8>>>(13).unwrap_or_default(),
        },
    })
}
