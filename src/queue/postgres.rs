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

use super::replay::{queued_owner, Claim, ReplayClaim};
use super::rows::{Claimed, Enqueued, NewCallback, State, StoreError, Stored};
use crate::config::pg_url::{PgTls, SslMode};
use crate::config::secret::Secret;
use ending::LAPSED_WANTED;
use keys::take_keys;
use schema::migrate;

mod ending;
mod keys;
mod schema;

/// Longest any database call may take, connecting included: a callback
/// waits at most this before its 503 (the contract says within 5 s).
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(4);
/// Connections per instance: workers and requests share them.
const POOL_SIZE: usize = 8;

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
