//! The embedded store: SQLite (through rusqlite) in WAL mode with
//! `synchronous = FULL`, so a callback is on disk before the provider hears
//! 202, a crash at any moment leaves a usable database, and the `callgate
//! queue` commands can read and change it while the gateway runs. Its calls
//! block; [`super::store::Store`] runs them off the async threads.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection};

use super::replay::{queued_owner, Claim, ReplayClaim};
use super::rows::{Acted, Claimed, Enqueued, NewCallback, Outcome, State, StoreError, Stored};
use crate::trusted::{self, TrustError};
use keys::take_keys;

mod keys;

/// File name of the store inside `[queue] dir`.
pub(crate) const FILE_NAME: &str = "callgate-queue.sqlite3";
/// How long a writer waits for another process (a `callgate queue` command) to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite store; one connection, shared.
pub(crate) struct Sqlite {
    path: PathBuf,
    /// This open created the database file (said once, in the log: taken
    /// by the first [`Sqlite::take_created`]).
    created: std::sync::atomic::AtomicBool,
    conn: Mutex<Connection>,
}

impl Sqlite {
    /// Open (or create) the store in `dir`.
    pub(crate) fn open(dir: &Path) -> Result<Sqlite, StoreError> {
        let path = dir.join(FILE_NAME);
        let created = std::fs::symlink_metadata(&path).is_err();
        private_files(dir, &path)?;
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        // secure_delete zeroes what a delivered callback leaves in the
        // database; the checkpoints after deletions take it out of the WAL.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA secure_delete = ON;
             CREATE TABLE IF NOT EXISTS callbacks (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 route TEXT NOT NULL,
                 state TEXT NOT NULL DEFAULT 'pending',
                 method TEXT NOT NULL,
                 query TEXT,
                 token_secret INTEGER,
                 headers BLOB NOT NULL,
                 body BLOB NOT NULL,
                 verified TEXT NOT NULL,
                 arrived_ms INTEGER NOT NULL,
                 attempts INTEGER NOT NULL DEFAULT 0,
                 next_attempt_ms INTEGER NOT NULL,
                 last_error TEXT
             );
             CREATE INDEX IF NOT EXISTS callbacks_by_route ON callbacks (route, state, id);
             CREATE TABLE IF NOT EXISTS replay (
                 route TEXT NOT NULL,
                 key BLOB NOT NULL,
                 payload BLOB NOT NULL,
                 state TEXT NOT NULL,
                 owner TEXT NOT NULL,
                 callback_id INTEGER,
                 at_ms INTEGER NOT NULL,
                 until_ms INTEGER,
                 PRIMARY KEY (route, key)
             );
             CREATE INDEX IF NOT EXISTS replay_by_owner ON replay (owner);
             CREATE TABLE IF NOT EXISTS health (id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL);
             DROP TABLE IF EXISTS delivered;",
        )
        .map_err(err)?;
        // Stores made before replay keys: each callback keeps its keys for
        // the worker's check before delivery.
        let has_keys: bool = conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('callbacks') WHERE name = 'replay'",
                [],
                |r| r.get::<_, i64>(0).map(|n| n > 0),
            )
            .map_err(err)?;
        if !has_keys {
            conn.execute_batch("ALTER TABLE callbacks ADD COLUMN replay BLOB")
                .map_err(err)?;
        }
        Ok(Sqlite {
            path,
            created: created.into(),
            conn: Mutex::new(conn),
        })
    }

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this open created it, true once: "created now" is said at
    /// creation, not at every reload, on the console or in health answers.
    pub(crate) fn take_created(&self) -> bool {
        self.created
            .swap(false, std::sync::atomic::Ordering::Relaxed)
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&conn).map_err(|source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        })
    }

    /// Store a callback durably (committed and synced) and claim its replay
    /// keys in the same transaction: its id, or what holds a key already
    /// (then nothing is stored).
    pub(crate) fn enqueue(
        &self,
        c: &NewCallback,
        replay: Option<&ReplayClaim>,
    ) -> Result<Enqueued, StoreError> {
        self.with(|conn| {
            immediate(conn, |conn| {
                conn.execute(
                    "INSERT INTO callbacks (route, method, query, token_secret, headers, body, verified, arrived_ms, next_attempt_ms, replay)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9)",
                    params![c.route, c.method, c.query, c.token_secret.map(|i| i as i64), c.headers, c.body, c.verified, c.arrived_ms, c.replay],
                )?;
                let id = conn.last_insert_rowid();
                let Some(claim) = replay else {
                    return Ok((true, Enqueued::Stored(id)));
                };
                let claim = ReplayClaim {
                    owner: queued_owner(id),
                    ..claim.clone()
                };
                Ok(match take_keys(conn, &claim, Some(id))? {
                    Claim::Won => (true, Enqueued::Stored(id)),
                    held => (false, Enqueued::Copy(held)),
                })
            })
        })
    }

    /// The oldest `limit` pending callbacks of a route, in arrival order.
    pub(crate) fn head(&self, route: &str, limit: usize) -> Result<Vec<Stored>, StoreError> {
        self.select(
            "WHERE route = ?1 AND state = 'pending' ORDER BY id LIMIT ?2",
            params![route, limit as i64],
        )
    }

    /// The due prefix of the route's head, passing over `skip` (the
    /// worker's own callbacks still under way): one instance owns this
    /// file, so a claim needs no lease, and a callback never overtakes an
    /// earlier one that waits for its next attempt.
    pub(crate) fn claim(
        &self,
        route: &str,
        limit: usize,
        now_ms: i64,
        skip: &[i64],
    ) -> Result<Claimed, StoreError> {
        let mut head = self.head(route, limit + skip.len())?;
        head.retain(|c| !skip.contains(&c.id));
        head.truncate(limit);
        Ok(Claimed::due_prefix(head, now_ms))
    }

    /// The file takes a write now: one committed (and synced) row, so a
    /// full disk or a read-only file says so here, as it would to a callback.
    pub(crate) fn health(&self) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                "INSERT OR REPLACE INTO health (id, at_ms) VALUES (1, ?1)",
                params![crate::clock::unix_ms()],
            )
            .map(|_| ())
        })
    }

    /// One callback by id.
    pub(crate) fn get(&self, id: i64) -> Result<Option<Stored>, StoreError> {
        Ok(self.select("WHERE id = ?1", params![id])?.pop())
    }

    /// Callbacks, optionally of one route and state, oldest first.
    pub(crate) fn list(
        &self,
        route: Option<&str>,
        state: Option<State>,
    ) -> Result<Vec<Stored>, StoreError> {
        self.select(
            "WHERE (?1 IS NULL OR route = ?1) AND (?2 IS NULL OR state = ?2) ORDER BY id",
            params![route, state.map(State::as_str)],
        )
    }

    fn select(
        &self,
        clause: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<Stored>, StoreError> {
        let sql = format!(
            "SELECT id, route, state, method, query, token_secret, headers, body, verified, arrived_ms, attempts, next_attempt_ms, last_error, replay
             FROM callbacks {clause}"
        );
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params, |r| {
                Ok(Stored {
                    id: r.get(0)?,
                    state: State::parse(&r.get::<_, String>(2)?).map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(
                            2,
                            rusqlite::types::Type::Text,
                            e.into(),
                        )
                    })?,
                    attempts: r.get(10)?,
                    next_attempt_ms: r.get(11)?,
                    last_error: r.get(12)?,
                    callback: NewCallback {
                        route: r.get(1)?,
                        method: r.get(3)?,
                        query: r.get(4)?,
                        token_secret: r.get::<_, Option<i64>>(5)?.map(|i| i as usize),
                        headers: r.get(6)?,
                        body: r.get(7)?,
                        verified: r.get(8)?,
                        arrived_ms: r.get(9)?,
                        replay: r.get::<_, Option<Vec<u8>>>(13)?.unwrap_or_default(),
                    },
                })
            })?;
            rows.collect()
        })
    }

    /// The upstream acknowledged it: remove it, its replay keys now delivered.
    /// What came of claimed callbacks, in one transaction (one sync), the
    /// delivered ones at `at_ms`.
    pub(crate) fn record(&self, outcomes: &[Outcome], at_ms: i64) -> Result<(), StoreError> {
        self.with(|conn| {
            let tx = conn.unchecked_transaction()?;
            let mut deleted = false;
            for o in outcomes {
                match o {
                    Outcome::Delivered(id) => {
                        tx.execute(
                            "UPDATE replay SET state = 'delivered', at_ms = ?2, until_ms = NULL, callback_id = NULL
                             WHERE owner = ?1",
                            params![queued_owner(*id), at_ms],
                        )?;
                        tx.execute("DELETE FROM callbacks WHERE id = ?1", params![id])?;
                        deleted = true;
                    }
                    Outcome::Failed { id, next_attempt_ms, error } => {
                        failed(&tx, *id, *next_attempt_ms, error)?;
                    }
                    Outcome::Dropped(id) => {
                        tx.execute("DELETE FROM callbacks WHERE id = ?1", params![id])?;
                        tx.execute("DELETE FROM replay WHERE owner = ?1", params![queued_owner(*id)])?;
                        deleted = true;
                    }
                    Outcome::Released(_) => {}
                }
            }
            tx.commit()?;
            if deleted {
                checkpoint(conn)?;
            }
            Ok(())
        })
    }

    #[cfg(test)]
    pub(crate) fn delivered(&self, ids: &[i64], at_ms: i64) -> Result<(), StoreError> {
        let outcomes: Vec<Outcome> = ids.iter().map(|&id| Outcome::Delivered(id)).collect();
        self.record(&outcomes, at_ms)
    }

    /// A failed attempt: count it, and either schedule the next or give up.
    #[cfg(test)]
    pub(crate) fn failed(
        &self,
        id: i64,
        next_attempt_ms: Option<i64>,
        error: &str,
    ) -> Result<(), StoreError> {
        self.with(|conn| failed(conn, id, next_attempt_ms, error))
    }

    /// Make a dead (or waiting) callback pending again, due now. False if no such id.
    /// One process delivers from this file and never delivers a callback
    /// twice at once, whatever its row says: nothing to wait for.
    pub(crate) fn retry(&self, id: i64, now_ms: i64) -> Result<Acted, StoreError> {
        self.with(|conn| {
            conn.execute(
                "UPDATE callbacks SET state = 'pending', attempts = 0, next_attempt_ms = ?2 WHERE id = ?1",
                params![id, now_ms],
            )
            .map(acted)
        })
    }

    /// Revive every dead callback; how many.
    pub(crate) fn retry_all_dead(&self, now_ms: i64) -> Result<usize, StoreError> {
        self.with(|conn| {
            conn.execute(
                "UPDATE callbacks SET state = 'pending', attempts = 0, next_attempt_ms = ?1 WHERE state = 'dead'",
                params![now_ms],
            )
        })
    }

    /// Delete a callback for good. False if no such id.
    pub(crate) fn drop_callback(&self, id: i64) -> Result<Acted, StoreError> {
        self.with(|conn| {
            let tx = conn.unchecked_transaction()?;
            let n = tx.execute("DELETE FROM callbacks WHERE id = ?1", params![id])?;
            tx.execute(
                "DELETE FROM replay WHERE owner = ?1",
                params![queued_owner(id)],
            )?;
            tx.commit()?;
            checkpoint(conn)?;
            Ok(acted(n))
        })
    }

    /// Pending and dead counts and the oldest pending arrival of a route.
    pub(crate) fn depth(&self, route: &str) -> Result<(u64, u64, Option<i64>), StoreError> {
        self.with(|conn| {
            conn.query_row(
                "SELECT COALESCE(SUM(state = 'pending'), 0), COALESCE(SUM(state = 'dead'), 0),
                        MIN(CASE WHEN state = 'pending' THEN arrived_ms END)
                 FROM callbacks WHERE route = ?1",
                params![route],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)? as u64,
                        r.get::<_, i64>(1)? as u64,
                        r.get(2)?,
                    ))
                },
            )
        })
    }
}

/// A failed attempt: count it, and either schedule the next or give up.
fn failed(
    conn: &Connection,
    id: i64,
    next_attempt_ms: Option<i64>,
    error: &str,
) -> rusqlite::Result<()> {
    match next_attempt_ms {
        Some(next) => conn.execute(
            "UPDATE callbacks SET attempts = attempts + 1, next_attempt_ms = ?2, last_error = ?3 WHERE id = ?1",
            params![id, next, error],
        ),
        None => conn.execute(
            "UPDATE callbacks SET attempts = attempts + 1, state = 'dead', last_error = ?2 WHERE id = ?1",
            params![id, error],
        ),
    }
    .map(|_| ())
}

fn acted(rows: usize) -> Acted {
    match rows {
        0 => Acted::NotFound,
        _ => Acted::Done,
    }
}

/// `BEGIN IMMEDIATE`: the write lock before the first read, so a claim's
/// look and its write are one step even against a `callgate queue`
/// command in another process. `f` says whether to commit.
fn immediate<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<(bool, T)>,
) -> rusqlite::Result<T> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    match f(conn) {
        Ok((true, value)) => conn.execute_batch("COMMIT").map(|_| value),
        Ok((false, value)) => conn.execute_batch("ROLLBACK").map(|_| value),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Move the WAL into the database and empty it, so a deleted callback's
/// bytes do not linger there. Busy readers may keep part of it till the next.
fn checkpoint(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
}

/// The store's directory (created 0700) and files (0600), whatever the
/// umask, and only when they are ours (`trusted.rs`): callbacks are
/// provider data, readable by callgate alone, and a database someone else
/// planted (or a link to another file) is never opened. SQLite gives its
/// -wal and -shm files the database file's mode.
fn private_files(dir: &Path, db: &Path) -> Result<(), TrustError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    trusted::private_dir(dir)?;
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", db.display()));
        match trusted::open_private(&file)? {
            Some(f) => {
                let meta = f.metadata().map_err(|source| TrustError::Io {
                    path: file.clone(),
                    source,
                })?;
                if meta.permissions().mode() & 0o077 != 0 {
                    f.set_permissions(std::fs::Permissions::from_mode(0o600))
                        .map_err(|source| TrustError::Io {
                            path: file.clone(),
                            source,
                        })?;
                }
            }
            None if suffix.is_empty() => {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                    .mode(0o600)
                    .open(&file)
                    .map_err(|source| TrustError::Io { path: file, source })?;
            }
            None => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
