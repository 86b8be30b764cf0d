//! The schema: each version's statements, and the migration that brings a
//! database up to the latest under an advisory lock (instances starting
//! together migrate one at a time).

use super::db_err;
use crate::queue::rows::StoreError;

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

/// Create or bring the schema up to the latest version, one instance at a time.
pub(super) async fn migrate(client: &deadpool_postgres::Object) -> Result<(), StoreError> {
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
