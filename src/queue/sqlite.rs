//! The embedded store: SQLite (through rusqlite) in WAL mode with
//! `synchronous = FULL`, so a callback is on disk before the provider hears
//! 202, a crash at any moment leaves a usable database, and the `callgate
//! queue` commands can read and change it while the gateway runs. Its calls
//! block; [`super::store::Store`] runs them off the async threads.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use super::rows::{Claimed, NewCallback, State, StoreError, Stored};

/// File name of the store inside `[queue] dir`.
pub(crate) const FILE_NAME: &str = "callgate-queue.sqlite3";
/// How long a writer waits for another process (a `callgate queue` command) to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite store; one connection, shared.
pub(crate) struct Sqlite {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl Sqlite {
    /// Open (or create) the store in `dir`.
    pub(crate) fn open(dir: &Path) -> Result<Sqlite, StoreError> {
        let path = dir.join(FILE_NAME);
        private_files(dir, &path).map_err(|source| StoreError::Dir {
            path: dir.to_owned(),
            source,
        })?;
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
             CREATE TABLE IF NOT EXISTS delivered (
                 route TEXT NOT NULL,
                 digest BLOB NOT NULL,
                 at_ms INTEGER NOT NULL,
                 PRIMARY KEY (route, digest)
             );",
        )
        .map_err(err)?;
        Ok(Sqlite {
            path,
            conn: Mutex::new(conn),
        })
    }

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&conn).map_err(|source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        })
    }

    /// Store a callback durably (committed and synced); its id.
    pub(crate) fn enqueue(&self, c: &NewCallback) -> Result<i64, StoreError> {
        self.with(|conn| {
            conn.execute(
                "INSERT INTO callbacks (route, method, query, token_secret, headers, body, verified, arrived_ms, next_attempt_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                params![c.route, c.method, c.query, c.token_secret.map(|i| i as i64), c.headers, c.body, c.verified, c.arrived_ms],
            )?;
            Ok(conn.last_insert_rowid())
        })
    }

    /// The oldest `limit` pending callbacks of a route, in arrival order.
    pub(crate) fn head(&self, route: &str, limit: usize) -> Result<Vec<Stored>, StoreError> {
        self.select(
            "WHERE route = ?1 AND state = 'pending' ORDER BY id LIMIT ?2",
            params![route, limit as i64],
        )
    }

    /// The due prefix of the route's head: one instance owns this file, so a
    /// claim needs no lease, and a callback never overtakes an earlier one.
    pub(crate) fn claim(
        &self,
        route: &str,
        limit: usize,
        now_ms: i64,
    ) -> Result<Claimed, StoreError> {
        let head = self.head(route, limit)?;
        Ok(Claimed::due_prefix(head, now_ms))
    }

    /// The file answers.
    pub(crate) fn health(&self) -> Result<(), StoreError> {
        self.with(|conn| conn.query_row("SELECT 1", [], |_| Ok(())))
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
            "SELECT id, route, state, method, query, token_secret, headers, body, verified, arrived_ms, attempts, next_attempt_ms, last_error
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
                    },
                })
            })?;
            rows.collect()
        })
    }

    /// The upstream acknowledged it: remove it (and remember its digest for dedupe).
    pub(crate) fn delivered(
        &self,
        id: i64,
        dedupe: Option<(&str, &[u8], i64)>,
    ) -> Result<(), StoreError> {
        self.with(|conn| {
            let tx = conn.unchecked_transaction()?;
            if let Some((route, digest, at_ms)) = dedupe {
                tx.execute(
                    "INSERT OR REPLACE INTO delivered (route, digest, at_ms) VALUES (?1, ?2, ?3)",
                    params![route, digest, at_ms],
                )?;
            }
            tx.execute("DELETE FROM callbacks WHERE id = ?1", params![id])?;
            tx.commit()?;
            checkpoint(conn)
        })
    }

    /// A failed attempt: count it, and either schedule the next or give up.
    pub(crate) fn failed(
        &self,
        id: i64,
        next_attempt_ms: Option<i64>,
        error: &str,
    ) -> Result<(), StoreError> {
        self.with(|conn| {
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
        })
    }

    /// Make a dead (or waiting) callback pending again, due now. False if no such id.
    pub(crate) fn retry(&self, id: i64, now_ms: i64) -> Result<bool, StoreError> {
        self.with(|conn| {
            conn.execute(
                "UPDATE callbacks SET state = 'pending', attempts = 0, next_attempt_ms = ?2 WHERE id = ?1",
                params![id, now_ms],
            )
            .map(|n| n > 0)
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
    pub(crate) fn drop_callback(&self, id: i64) -> Result<bool, StoreError> {
        self.with(|conn| {
            let n = conn.execute("DELETE FROM callbacks WHERE id = ?1", params![id])?;
            checkpoint(conn)?;
            Ok(n > 0)
        })
    }

    /// Whether this body was delivered on this route at or after `since_ms`.
    pub(crate) fn delivered_since(
        &self,
        route: &str,
        digest: &[u8],
        since_ms: i64,
    ) -> Result<bool, StoreError> {
        self.with(|conn| {
            conn.query_row(
                "SELECT 1 FROM delivered WHERE route = ?1 AND digest = ?2 AND at_ms >= ?3",
                params![route, digest, since_ms],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
        })
    }

    /// Remember a delivery made directly (delivery = "direct" with dedupe_window).
    pub(crate) fn remember_delivery(
        &self,
        route: &str,
        digest: &[u8],
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                "INSERT OR REPLACE INTO delivered (route, digest, at_ms) VALUES (?1, ?2, ?3)",
                params![route, digest, at_ms],
            )
            .map(|_| ())
        })
    }

    /// Forget deliveries older than `before_ms`: of one route, or of every
    /// route (`None`). A dedupe window is bounded, so are its rows.
    pub(crate) fn prune_delivered(
        &self,
        route: Option<&str>,
        before_ms: i64,
    ) -> Result<usize, StoreError> {
        self.with(|conn| {
            conn.execute(
                "DELETE FROM delivered WHERE (?1 IS NULL OR route = ?1) AND at_ms < ?2",
                params![route, before_ms],
            )
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

/// Move the WAL into the database and empty it, so a deleted callback's
/// bytes do not linger there. Busy readers may keep part of it till the next.
fn checkpoint(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
}

/// The store's directory (created 0700) and files (0600), whatever the
/// umask: callbacks are provider data, and readable by callgate alone.
/// SQLite gives its -wal and -shm files the database file's mode.
fn private_files(dir: &Path, db: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(db)?;
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", db.display()));
        match std::fs::metadata(&file) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        }
    }

    #[test]
    fn enqueued_callbacks_come_back_in_order_per_route() {
        let dir = tempfile::tempdir().unwrap();
        let s = Sqlite::open(dir.path()).unwrap();
        let a = s.enqueue(&callback("r", "1")).unwrap();
        s.enqueue(&callback("other", "x")).unwrap();
        let b = s.enqueue(&callback("r", "2")).unwrap();
        let head = s.head("r", 10).unwrap();
        assert_eq!(head.iter().map(|c| c.id).collect::<Vec<_>>(), vec![a, b]);
        assert_eq!(head[0].callback.body, b"1");
        assert_eq!(head[0].callback.token_secret, Some(1));
    }

    #[test]
    fn failures_schedule_then_kill_and_retry_revives() {
        let dir = tempfile::tempdir().unwrap();
        let s = Sqlite::open(dir.path()).unwrap();
        let id = s.enqueue(&callback("r", "1")).unwrap();
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

    #[test]
    fn delivered_removes_and_remembers_the_digest() {
        let dir = tempfile::tempdir().unwrap();
        let s = Sqlite::open(dir.path()).unwrap();
        let id = s.enqueue(&callback("r", "1")).unwrap();
        s.delivered(id, Some(("r", b"digest", 2_000))).unwrap();
        assert!(s.get(id).unwrap().is_none());
        assert!(s.delivered_since("r", b"digest", 1_500).unwrap());
        assert!(!s.delivered_since("r", b"digest", 2_500).unwrap());
        assert!(!s.delivered_since("other", b"digest", 0).unwrap());
        s.remember_delivery("other", b"digest", 2_000).unwrap();
        assert_eq!(s.prune_delivered(Some("r"), 3_000).unwrap(), 1);
        assert!(s.delivered_since("other", b"digest", 0).unwrap());
        assert_eq!(s.prune_delivered(None, 3_000).unwrap(), 1);
    }

    #[test]
    fn an_unknown_state_is_an_error_not_a_pending_callback() {
        let dir = tempfile::tempdir().unwrap();
        let s = Sqlite::open(dir.path()).unwrap();
        let id = s.enqueue(&callback("r", "1")).unwrap();
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
        let id = a.enqueue(&callback("r", "1")).unwrap();
        assert!(b.drop_callback(id).unwrap());
        assert!(a.get(id).unwrap().is_none());
    }

    #[test]
    fn an_unusable_directory_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "x").unwrap();
        let err = Sqlite::open(&file.join("sub")).err().unwrap();
        assert!(
            err.to_string()
                .contains("cannot create the queue directory"),
            "{err}"
        );
    }
}
