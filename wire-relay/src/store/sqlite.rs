//! The default store: SQLite in WAL mode with `synchronous = FULL`, so a committed batch
//! survives `kill -9` and power loss. Per-slot counters live in the `slots` table, so
//! start-up reads slots and grants only, however many envelopes are stored.

use std::path::Path;

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use wire_core::proto::api::{GrantKind, Lane};

use super::{GrantRow, Hash, Op, Outcome, SlotRow, Snapshot, Store, StoreError, Stored};

/// Numbered migrations; `PRAGMA user_version` records how many have run.
const MIGRATIONS: &[&str] = &[
    // 1: slots, grants, events, handles.
    "CREATE TABLE slots (
        id TEXT PRIMARY KEY,
        owner_hash BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        last_seq INTEGER NOT NULL DEFAULT 0,
        floor INTEGER NOT NULL DEFAULT 0,
        count INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0,
        intro_count INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE grants (
        id TEXT PRIMARY KEY,
        slot TEXT NOT NULL REFERENCES slots(id),
        token_hash BLOB NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        expires_at INTEGER,
        uses_left INTEGER,
        revoked INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        slot TEXT NOT NULL,
        seq INTEGER NOT NULL,
        lane INTEGER NOT NULL,
        hash BLOB NOT NULL,
        tag BLOB,
        received_at INTEGER NOT NULL,
        envelope BLOB NOT NULL
    );
    CREATE UNIQUE INDEX events_by_seq ON events(slot, seq);
    CREATE UNIQUE INDEX events_by_hash ON events(slot, hash);
    CREATE UNIQUE INDEX events_by_tag ON events(slot, tag) WHERE tag IS NOT NULL;
    CREATE INDEX events_by_age ON events(received_at);
    CREATE TABLE handles (
        nick TEXT PRIMARY KEY,
        did TEXT NOT NULL,
        card BLOB NOT NULL,
        claimed_at INTEGER NOT NULL
    );",
];

/// SQLite-backed store.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
}

fn err(e: rusqlite::Error) -> StoreError {
    StoreError(e.to_string())
}

fn lane_code(lane: Lane) -> i64 {
    match lane {
        Lane::Inbox => 0,
        Lane::Intro => 1,
    }
}

fn hash_of(blob: Vec<u8>) -> Result<Hash, rusqlite::Error> {
    blob.try_into().map_err(|_| rusqlite::Error::InvalidColumnType(0, "hash".into(), rusqlite::types::Type::Blob))
}

fn kind_name(kind: GrantKind) -> &'static str {
    match kind {
        GrantKind::Send => "send",
        GrantKind::Intro => "intro",
    }
}

impl SqliteStore {
    /// Opens (or creates) `dir/relay.sqlite3` and runs pending migrations.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError(format!("cannot create {}: {e}", dir.display())))?;
        let conn = Connection::open(dir.join("relay.sqlite3")).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(err)?;
        let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(err)?;
        if version > MIGRATIONS.len() {
            return Err(StoreError(format!(
                "database schema version {version} is newer than this relay ({}); upgrade wire",
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            conn.execute_batch(&format!("BEGIN; {sql}; PRAGMA user_version = {}; COMMIT;", i + 1)).map_err(err)?;
        }
        Ok(Self { conn })
    }
}

fn append(tx: &Transaction<'_>, op: &Op) -> Result<Outcome, rusqlite::Error> {
    let Op::Append { slot, lane, hash, tag, envelope, now, consume_grant, quota } = op else {
        unreachable!("append called with another op")
    };
    let existing: Option<u64> = tx
        .prepare_cached("SELECT seq FROM events WHERE slot = ?1 AND hash = ?2")?
        .query_row(params![slot, hash.as_slice()], |r| r.get(0))
        .optional()?;
    if let Some(seq) = existing {
        return Ok(Outcome::Appended { seq, duplicate: true });
    }
    if let Some(tag) = tag {
        let taken: Option<i64> = tx
            .prepare_cached("SELECT 1 FROM events WHERE slot = ?1 AND tag = ?2")?
            .query_row(params![slot, tag], |r| r.get(0))
            .optional()?;
        if taken.is_some() {
            return Ok(Outcome::TagTaken);
        }
    }
    let counters: Option<(u64, u64, u64, u64)> = tx
        .prepare_cached("SELECT last_seq, count, bytes, intro_count FROM slots WHERE id = ?1")?
        .query_row(params![slot], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    let Some((last_seq, count, bytes, intro)) = counters else { return Ok(Outcome::QuotaExceeded) };
    let len = envelope.len() as u64;
    if count >= quota.max_events || bytes + len > quota.max_bytes || (*lane == Lane::Intro && intro >= quota.max_intro)
    {
        return Ok(Outcome::QuotaExceeded);
    }
    if let Some(grant) = consume_grant {
        let changed = tx
            .prepare_cached(
                "UPDATE grants SET uses_left = uses_left - 1
                 WHERE id = ?1 AND revoked = 0 AND (uses_left IS NULL OR uses_left > 0)",
            )?
            .execute(params![grant])?;
        if changed == 0 {
            return Ok(Outcome::GrantExhausted);
        }
    }
    let seq = last_seq + 1;
    tx.prepare_cached(
        "INSERT INTO events (slot, seq, lane, hash, tag, received_at, envelope) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![slot, seq, lane_code(*lane), hash.as_slice(), tag, now, envelope.as_ref()])?;
    tx.prepare_cached(
        "UPDATE slots SET last_seq = ?2, count = count + 1, bytes = bytes + ?3, intro_count = intro_count + ?4 WHERE id = ?1",
    )?
    .execute(params![slot, seq, len, i64::from(*lane == Lane::Intro)])?;
    Ok(Outcome::Appended { seq, duplicate: false })
}

fn apply_one(tx: &Transaction<'_>, op: &Op) -> Result<Outcome, rusqlite::Error> {
    Ok(match op {
        Op::CreateSlot { id, owner_hash, now } => {
            tx.prepare_cached("INSERT INTO slots (id, owner_hash, created_at) VALUES (?1, ?2, ?3)")?
                .execute(params![id, owner_hash.as_slice(), now])?;
            Outcome::Done
        }
        Op::PutGrant(g) => {
            tx.prepare_cached(
                "INSERT INTO grants (id, slot, token_hash, kind, expires_at, uses_left, revoked) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![g.id, g.slot, g.token_hash.as_slice(), kind_name(g.kind), g.expires_at, g.uses_left, g.revoked])?;
            Outcome::Done
        }
        Op::RevokeGrant { slot, id } => {
            let n = tx
                .prepare_cached("UPDATE grants SET revoked = 1 WHERE id = ?1 AND slot = ?2")?
                .execute(params![id, slot])?;
            if n == 0 { Outcome::NoSuchGrant } else { Outcome::Done }
        }
        Op::Append { .. } => append(tx, op)?,
        Op::Ack { slot, through } => {
            let (removed, bytes, intro): (u64, u64, u64) = tx
                .prepare_cached(
                    "SELECT COUNT(*), COALESCE(SUM(LENGTH(envelope)), 0), COALESCE(SUM(lane), 0)
                     FROM events WHERE slot = ?1 AND seq <= ?2",
                )?
                .query_row(params![slot, through], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            tx.prepare_cached("DELETE FROM events WHERE slot = ?1 AND seq <= ?2")?.execute(params![slot, through])?;
            tx.prepare_cached(
                "UPDATE slots SET count = count - ?2, bytes = bytes - ?3, intro_count = intro_count - ?4,
                 floor = MAX(floor, ?5) WHERE id = ?1",
            )?
            .execute(params![slot, removed, bytes, intro, through])?;
            let floor: u64 =
                tx.prepare_cached("SELECT floor FROM slots WHERE id = ?1")?.query_row(params![slot], |r| r.get(0))?;
            Outcome::Acked { floor, removed }
        }
        Op::Expire { before } => {
            let rows: Vec<(String, u64, u64, u64, u64)> = tx
                .prepare_cached(
                    "SELECT slot, COUNT(*), SUM(LENGTH(envelope)), SUM(lane), MAX(seq)
                     FROM events WHERE received_at < ?1 GROUP BY slot ORDER BY slot",
                )?
                .query_map(params![before], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
                .collect::<Result<_, _>>()?;
            tx.prepare_cached("DELETE FROM events WHERE received_at < ?1")?.execute(params![before])?;
            let mut floors = Vec::with_capacity(rows.len());
            for (slot, count, bytes, intro, max_seq) in rows {
                tx.prepare_cached(
                    "UPDATE slots SET count = count - ?2, bytes = bytes - ?3, intro_count = intro_count - ?4,
                     floor = MAX(floor, ?5) WHERE id = ?1",
                )?
                .execute(params![slot, count, bytes, intro, max_seq])?;
                let floor: u64 = tx
                    .prepare_cached("SELECT floor FROM slots WHERE id = ?1")?
                    .query_row(params![slot], |r| r.get(0))?;
                floors.push((slot, floor));
            }
            Outcome::Expired { floors }
        }
        Op::ClaimHandle { nick, did, card, now } => {
            let owner: Option<String> = tx
                .prepare_cached("SELECT did FROM handles WHERE nick = ?1")?
                .query_row(params![nick], |r| r.get(0))
                .optional()?;
            match owner {
                Some(owner) if &owner != did => Outcome::HandleTaken,
                _ => {
                    tx.prepare_cached(
                        "INSERT INTO handles (nick, did, card, claimed_at) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT(nick) DO UPDATE SET card = excluded.card",
                    )?
                    .execute(params![nick, did, card, now])?;
                    Outcome::Claimed
                }
            }
        }
    })
}

impl Store for SqliteStore {
    fn load(&mut self) -> Result<Snapshot, StoreError> {
        let slots = self
            .conn
            .prepare("SELECT id, owner_hash, last_seq, floor FROM slots")
            .map_err(err)?
            .query_map([], |r| {
                Ok(SlotRow { id: r.get(0)?, owner_hash: hash_of(r.get(1)?)?, last_seq: r.get(2)?, floor: r.get(3)? })
            })
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let grants = self
            .conn
            .prepare("SELECT id, slot, token_hash, kind, expires_at, uses_left, revoked FROM grants")
            .map_err(err)?
            .query_map([], |r| {
                let kind: String = r.get(3)?;
                Ok(GrantRow {
                    id: r.get(0)?,
                    slot: r.get(1)?,
                    token_hash: hash_of(r.get(2)?)?,
                    kind: if kind == "intro" { GrantKind::Intro } else { GrantKind::Send },
                    expires_at: r.get(4)?,
                    uses_left: r.get(5)?,
                    revoked: r.get(6)?,
                })
            })
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        Ok(Snapshot { slots, grants })
    }

    fn apply(&mut self, ops: &[Op]) -> Result<Vec<Outcome>, StoreError> {
        let tx = self.conn.transaction().map_err(err)?;
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            out.push(apply_one(&tx, op).map_err(err)?);
        }
        tx.commit().map_err(err)?;
        Ok(out)
    }

    fn list_after(&mut self, slot: &str, after: u64, limit: usize) -> Result<Vec<Stored>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT seq, lane, envelope, received_at FROM events WHERE slot = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )
            .map_err(err)?
            .query_map(params![slot, after, limit as u64], |r| {
                let lane: i64 = r.get(1)?;
                let envelope: Vec<u8> = r.get(2)?;
                Ok(Stored {
                    seq: r.get(0)?,
                    lane: if lane == 1 { Lane::Intro } else { Lane::Inbox },
                    envelope: Bytes::from(envelope),
                    received_at: r.get(3)?,
                })
            })
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)
    }

    fn handle(&mut self, nick: &str) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        self.conn
            .prepare_cached("SELECT did, card FROM handles WHERE nick = ?1")
            .map_err(err)?
            .query_row(params![nick], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_store_meets_the_contract() {
        let dir = tempdir();
        super::super::contract::run(&mut SqliteStore::open(&dir).expect("open"));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn reopening_keeps_everything_and_refuses_a_newer_schema() {
        let dir = tempdir();
        {
            let mut s = SqliteStore::open(&dir).expect("open");
            s.apply(&[Op::CreateSlot { id: "s".into(), owner_hash: [3; 32], now: 1 }]).expect("apply");
        }
        let mut s = SqliteStore::open(&dir).expect("reopen");
        assert_eq!(s.load().expect("load").slots.len(), 1);
        s.conn.pragma_update(None, "user_version", 99).expect("pragma");
        drop(s);
        let e = SqliteStore::open(&dir).expect_err("newer schema refused");
        assert!(e.to_string().contains("newer than this relay"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    fn tempdir() -> std::path::PathBuf {
        let mut bytes = [0u8; 8];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
        std::env::temp_dir().join(format!("wire-relay-test-{}", hex_of(&bytes)))
    }

    fn hex_of(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
