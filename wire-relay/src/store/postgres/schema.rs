//! The schema: numbered migrations, run at start under an advisory lock.

use postgres::Client;

use super::{bulk, err};
use crate::store::StoreError;

/// Numbered migrations, run at start under an advisory lock; `wire_schema` records how many
/// have run.
const MIGRATIONS: &[&str] = &[
    // 1: slots with their counters, grants, events, handles.
    "CREATE TABLE slots (
        id TEXT PRIMARY KEY,
        owner_hash BYTEA NOT NULL,
        created_at BIGINT NOT NULL,
        room BOOLEAN NOT NULL DEFAULT FALSE,
        last_seq BIGINT NOT NULL DEFAULT 0,
        floor BIGINT NOT NULL DEFAULT 0,
        count BIGINT NOT NULL DEFAULT 0,
        bytes BIGINT NOT NULL DEFAULT 0,
        intro BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE grants (
        id TEXT PRIMARY KEY,
        slot TEXT NOT NULL REFERENCES slots(id),
        token_hash BYTEA NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        expires_at BIGINT,
        uses_left INTEGER,
        revoked BOOLEAN NOT NULL DEFAULT FALSE,
        revoked_seq BIGINT -- from grant_revocations: nodes sweep what they have not seen
    );
    CREATE SEQUENCE grant_revocations;
    CREATE INDEX grants_by_revocation ON grants (revoked_seq) WHERE revoked_seq IS NOT NULL;
    -- The store's identity: list and stream answers carry it on every node.
    CREATE TABLE wire_meta (incarnation TEXT NOT NULL);
    INSERT INTO wire_meta VALUES (md5(random()::text || clock_timestamp()::text));
    CREATE TABLE events (
        slot TEXT NOT NULL,
        seq BIGINT NOT NULL,
        lane SMALLINT NOT NULL,
        len INTEGER NOT NULL,
        hash BYTEA NOT NULL,
        tag BYTEA,
        received_at BIGINT NOT NULL,
        envelope BYTEA NOT NULL,
        PRIMARY KEY (slot, seq)
    );
    CREATE UNIQUE INDEX events_by_hash ON events (slot, hash);
    CREATE UNIQUE INDEX events_by_tag ON events (slot, tag) WHERE tag IS NOT NULL;
    -- Retention reads by age: a BRIN index (envelopes arrive in time order) costs appends
    -- almost nothing, where a B-tree on the time cost a page write each.
    CREATE INDEX events_by_time ON events USING brin (received_at);
    CREATE TABLE handles (
        nick TEXT PRIMARY KEY,
        did TEXT NOT NULL,
        card BYTEA NOT NULL,
        claimed_at BIGINT NOT NULL,
        slot TEXT
    );
    CREATE INDEX handles_by_slot ON handles (slot);",
    // 2: the rendezvous, shared by the nodes; unlogged (a crash ends pairings in progress).
    "CREATE UNLOGGED TABLE nameplates (
        number INTEGER PRIMARY KEY,
        side0 BYTEA NOT NULL,
        ip0 TEXT NOT NULL,
        side1 BYTEA,
        ip1 TEXT,
        expires_at BIGINT NOT NULL,
        closed BOOLEAN NOT NULL DEFAULT FALSE
    );
    CREATE UNLOGGED TABLE nameplate_messages (
        number INTEGER NOT NULL REFERENCES nameplates (number) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        side SMALLINT NOT NULL,
        body BYTEA NOT NULL,
        PRIMARY KEY (number, seq)
    );",
    // 3: the nodes' heartbeats (rate limits are shared among the live ones).
    "CREATE UNLOGGED TABLE nodes (id TEXT PRIMARY KEY, seen_at BIGINT NOT NULL);",
    // 4: plain appends in one call (`bulk.rs`).
    bulk::WIRE_APPEND,
];

/// The advisory lock migrations run under (any constant the relay alone uses).
const MIGRATION_LOCK: i64 = 0x7769_7265_0001;

/// Runs the pending migrations under [`MIGRATION_LOCK`] (nodes starting together run them
/// once); refuses a schema newer than this relay.
pub(super) fn migrate(client: &mut Client) -> Result<(), StoreError> {
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).map_err(err)?;
    let result = (|| {
        client.batch_execute("CREATE TABLE IF NOT EXISTS wire_schema (version INTEGER NOT NULL); ").map_err(err)?;
        let version: i32 = match client.query_opt("SELECT version FROM wire_schema", &[]).map_err(err)? {
            Some(row) => row.get(0),
            None => {
                client.execute("INSERT INTO wire_schema (version) VALUES (0)", &[]).map_err(err)?;
                0
            }
        };
        let version = usize::try_from(version).unwrap_or(0);
        if version > MIGRATIONS.len() {
            return Err(StoreError(format!(
                "database schema version {version} is newer than this relay ({}); upgrade wire",
                MIGRATIONS.len()
            )));
        }
        for (n, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            let mut tx = client.transaction().map_err(err)?;
            tx.batch_execute(sql).map_err(err)?;
            tx.execute("UPDATE wire_schema SET version = $1", &[&(n as i32 + 1)]).map_err(err)?;
            tx.commit().map_err(err)?;
        }
        Ok(())
    })();
    client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).map_err(err)?;
    result
}
