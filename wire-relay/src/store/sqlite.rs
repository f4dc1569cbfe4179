//! The default store: SQLite in WAL mode with `synchronous = FULL`, so a committed batch
//! survives `kill -9` and power loss.
//!
//! An append is one `INSERT` into the table and one index, both in arrival order, so a
//! commit writes the last pages of two B-trees however many slots its batch touched
//! (an index by slot took a page per slot per commit: docs/BENCHMARKS.md). Per-slot
//! counters (last sequence number, count, bytes, pending intros), each slot's stored rows
//! in sequence order (sequence number -> row id) and the idempotency map (128-bit envelope
//! hash prefix -> sequence number) live in memory and are rebuilt at open from the covering
//! arrival index, so start-up reads index entries, never envelopes; only the floor (moved
//! by acks and expiry) is stored per slot. Retention deletes a rowid prefix.
//!
//! WAL checkpoints run on a background thread with their own connection every 10 ms, off
//! the store thread's path. Under steady load that alone never lets the WAL start over (a
//! new commit always lands before the checkpoint catches up), so when the WAL passes 2,048
//! frames (`WAL_RESET_FRAMES`) the store thread checkpoints the little that is left
//! between two batches and the next commit starts the WAL from its beginning: the WAL file
//! stays near that size instead of growing to the hard limit, where a checkpoint of
//! everything would run inside a commit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use wire_core::proto::api::{GrantKind, Lane};

use super::{GrantRow, Hash, Op, Outcome, SlotRow, Snapshot, Store, StoreError, Stored};

/// Numbered migrations; `PRAGMA user_version` records how many have run.
const MIGRATIONS: &[&str] = &[
    // 1: slots, grants, events, handles.
    "CREATE TABLE slots (
        key INTEGER PRIMARY KEY, -- compact key used by events
        id TEXT NOT NULL UNIQUE,
        owner_hash BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        floor INTEGER NOT NULL DEFAULT 0
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
        slot INTEGER NOT NULL, -- slots.key
        seq INTEGER NOT NULL,
        lane INTEGER NOT NULL,
        len INTEGER NOT NULL,
        hash BLOB NOT NULL, -- first 16 bytes of SHA-256(envelope)
        tag BLOB,
        received_at INTEGER NOT NULL,
        envelope BLOB NOT NULL
    );
    CREATE INDEX events_by_seq ON events(slot, seq, lane, len, hash);
    CREATE UNIQUE INDEX events_by_tag ON events(slot, tag) WHERE tag IS NOT NULL;
    CREATE TABLE handles (
        nick TEXT PRIMARY KEY,
        did TEXT NOT NULL,
        card BLOB NOT NULL,
        claimed_at INTEGER NOT NULL
    );",
    // 2: the slot a handle was claimed from (one handle per slot; older rows have none).
    "ALTER TABLE handles ADD COLUMN slot TEXT;
    CREATE INDEX handles_by_slot ON handles(slot);",
    // 3: the covering index in arrival order (appends touch its last page only); lookups
    // by slot and sequence number use the rows held in memory.
    "DROP INDEX events_by_seq;
    CREATE INDEX events_by_arrival ON events(id, slot, seq, lane, len, hash);",
    // 4: room slots (evict by retention, read by member grants).
    "ALTER TABLE slots ADD COLUMN room INTEGER NOT NULL DEFAULT 0;",
];

/// A checkpoint is forced inside a commit only if the WAL passes this many pages (the
/// reset below keeps it far smaller).
const WAL_HARD_LIMIT_PAGES: i64 = 16_384;
/// WAL frames past which the store thread lets the WAL start over (about 8 MiB).
const WAL_RESET_FRAMES: i64 = 2_048;
/// How often the background thread checkpoints.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(10);

#[derive(Debug, Clone, Default)]
struct Counters {
    key: i64,
    owner_hash: Hash,
    last_seq: u64,
    floor: u64,
    count: u64,
    bytes: u64,
    intro: u64,
    room: bool,
}

/// Idempotency key: the first 16 bytes of the envelope's SHA-256.
type Key = [u8; 16];

/// One stored envelope, as held in memory.
#[derive(Debug, Clone, Copy)]
struct Row {
    seq: u64,
    id: i64,
    /// Envelopes are at most a few MiB.
    len: u32,
    intro: bool,
}

/// A slot's stored envelopes: rows in sequence order and idempotency keys.
#[derive(Debug, Clone, Default)]
struct Held {
    rows: std::collections::VecDeque<Row>,
    keys: HashMap<Key, u64>,
}

impl Held {
    /// The rows after `after` (sequence numbers only grow, so this is a suffix).
    fn after(&self, after: u64) -> impl Iterator<Item = &Row> {
        let start = self.rows.partition_point(|r| r.seq <= after);
        self.rows.range(start..)
    }

    fn push(&mut self, row: Row, key: Key) {
        self.rows.push_back(row);
        self.keys.insert(key, row.seq);
    }

    fn remove_through(&mut self, through: u64) {
        while self.rows.front().is_some_and(|r| r.seq <= through) {
            self.rows.pop_front();
        }
        self.keys.retain(|_, seq| *seq > through);
    }
}

fn key(hash: &Hash) -> Key {
    let mut k = [0; 16];
    k.copy_from_slice(&hash[..16]);
    k
}

/// SQLite-backed store.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    slots: HashMap<String, Counters>,
    /// Per slot: what it stores.
    held: HashMap<String, Held>,
    checkpointer: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
    /// WAL frames as of the background thread's last checkpoint.
    wal_frames: Arc<AtomicI64>,
    /// `relay.lock`, held exclusively while open: one relay per data directory.
    _lock: std::fs::File,
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
    kind.token_prefix()
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(err)?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
    conn.pragma_update(None, "synchronous", "FULL").map_err(err)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(err)?;
    Ok(conn)
}

/// Takes `dir/relay.lock` exclusively (one relay per data directory), held while the file is.
fn take_lock(dir: &Path) -> Result<std::fs::File, StoreError> {
    std::fs::create_dir_all(dir).map_err(|e| StoreError(format!("cannot create {}: {e}", dir.display())))?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("relay.lock"))
        .map_err(|e| StoreError(format!("cannot open {}: {e}", dir.join("relay.lock").display())))?;
    if lock.try_lock().is_err() {
        return Err(StoreError(format!(
            "another relay is running on {} (it holds relay.lock); stop it first, or give this one another --data",
            dir.display()
        )));
    }
    Ok(lock)
}

/// Refuses a data directory another relay holds, before anything is announced.
pub fn check_free(dir: &Path) -> Result<(), StoreError> {
    take_lock(dir).map(drop)
}

impl SqliteStore {
    /// Opens (or creates) `dir/relay.sqlite3`, runs pending migrations and rebuilds the
    /// per-slot counters from the index.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError(format!("cannot create {}: {e}", dir.display())))?;
        let lock = take_lock(dir)?;
        let path = dir.join("relay.sqlite3");
        let conn = connect(&path)?;
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
        conn.pragma_update(None, "wal_autocheckpoint", WAL_HARD_LIMIT_PAGES).map_err(err)?;
        let mut slots: HashMap<String, Counters> = HashMap::new();
        {
            let mut stmt = conn.prepare("SELECT key, id, owner_hash, floor, room FROM slots").map_err(err)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        hash_of(r.get(2)?)?,
                        r.get::<_, u64>(3)?,
                        r.get::<_, bool>(4)?,
                    ))
                })
                .map_err(err)?;
            for row in rows {
                let (key, id, owner_hash, floor, room) = row.map_err(err)?;
                slots.insert(id, Counters { key, owner_hash, last_seq: floor, floor, room, ..Counters::default() });
            }
        }
        let ids: HashMap<i64, String> = slots.iter().map(|(id, c)| (c.key, id.clone())).collect();
        // Covering-index scan in arrival order: reads index entries, never envelopes. Rows
        // are gathered by the slot's integer key, and each slot's maps built in one go
        // at the end (filling a thousand maps in arrival order misses the cache each time).
        let mut by_key: HashMap<i64, Vec<(Row, Key)>> = HashMap::new();
        {
            let mut stmt = conn
                .prepare("SELECT id, slot, seq, lane, len, hash FROM events INDEXED BY events_by_arrival")
                .map_err(err)?;
            let mut rows = stmt.query([]).map_err(err)?;
            while let Some(row) = rows.next().map_err(err)? {
                let (id, slot_key, seq, lane, len): (i64, i64, u64, u64, u64) = (
                    row.get(0).map_err(err)?,
                    row.get(1).map_err(err)?,
                    row.get(2).map_err(err)?,
                    row.get(3).map_err(err)?,
                    row.get(4).map_err(err)?,
                );
                let hash: Key =
                    row.get_ref(5).map_err(err)?.as_blob().ok().and_then(|b| b.try_into().ok()).unwrap_or_default();
                by_key.entry(slot_key).or_default().push((Row { seq, id, len: len as u32, intro: lane == 1 }, hash));
            }
        }
        let mut held: HashMap<String, Held> = HashMap::with_capacity(by_key.len());
        for (slot_key, rows) in by_key {
            let Some(slot) = ids.get(&slot_key) else { continue };
            let c = slots.get_mut(slot).expect("ids come from slots");
            let mut h = Held {
                rows: std::collections::VecDeque::with_capacity(rows.len()),
                keys: HashMap::with_capacity(rows.len()),
            };
            for (r, k) in rows {
                c.last_seq = c.last_seq.max(r.seq);
                (c.count, c.bytes, c.intro) = (c.count + 1, c.bytes + u64::from(r.len), c.intro + u64::from(r.intro));
                h.push(r, k);
            }
            held.insert(slot.clone(), h);
        }
        // Arrival order is sequence order within a slot, except after a restore; be sure.
        for h in held.values_mut() {
            h.rows.make_contiguous().sort_by_key(|r| r.seq);
        }
        let wal_frames = Arc::new(AtomicI64::new(0));
        let checkpointer = Some(spawn_checkpointer(path, wal_frames.clone())?);
        Ok(Self { conn, slots, held, checkpointer, wal_frames, _lock: lock })
    }
}

/// Copies the WAL back into the database every [`CHECKPOINT_EVERY`] on its own
/// connection, and publishes how long the WAL is.
fn spawn_checkpointer(
    path: PathBuf,
    wal_frames: Arc<AtomicI64>,
) -> Result<(Arc<AtomicBool>, std::thread::JoinHandle<()>), StoreError> {
    let conn = connect(&path)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("wire-relay-checkpoint".into())
        .spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(CHECKPOINT_EVERY);
                // The row is (busy, frames in the WAL, frames checkpointed).
                if let Ok(frames) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1)) {
                    wal_frames.store(frames, Ordering::Relaxed);
                }
            }
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        })
        .map_err(|e| StoreError(format!("cannot start the checkpoint thread: {e}")))?;
    Ok((stop, thread))
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.checkpointer.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = thread.join();
        }
    }
}

/// What the batch in progress changed; merged into the store only after the commit.
struct Overlay<'a> {
    base: &'a HashMap<String, Counters>,
    held: &'a HashMap<String, Held>,
    changed: HashMap<String, Counters>,
    added: HashMap<String, Held>,
    removed_through: HashMap<String, u64>,
}

impl Overlay<'_> {
    fn get(&mut self, slot: &str) -> Option<&mut Counters> {
        if !self.changed.contains_key(slot) {
            let c = self.base.get(slot)?.clone();
            self.changed.insert(slot.to_owned(), c);
        }
        self.changed.get_mut(slot)
    }

    fn removed(&self, slot: &str) -> u64 {
        self.removed_through.get(slot).copied().unwrap_or(0)
    }

    /// The seq of a stored envelope with this key, as of this point in the batch.
    fn stored_seq(&self, slot: &str, k: &Key) -> Option<u64> {
        if let Some(seq) = self.added.get(slot).and_then(|h| h.keys.get(k)) {
            return Some(*seq);
        }
        self.held.get(slot).and_then(|h| h.keys.get(k)).copied().filter(|seq| *seq > self.removed(slot))
    }

    fn record(&mut self, slot: &str, row: Row, k: Key) {
        self.added.entry(slot.to_owned()).or_default().push(row, k);
    }

    /// The rows stored that this batch has not removed yet, oldest first.
    fn rows(&self, slot: &str) -> impl Iterator<Item = Row> + '_ {
        let removed = self.removed(slot);
        let held = self.held.get(slot).into_iter().flat_map(move |h| h.after(removed));
        let added = self.added.get(slot).into_iter().flat_map(|h| h.rows.iter());
        held.chain(added).copied()
    }

    /// The rows stored through `through` that this batch has not removed yet.
    fn rows_through(&self, slot: &str, through: u64) -> Vec<Row> {
        self.rows(slot).take_while(|r| r.seq <= through).collect()
    }

    fn remove_through(&mut self, slot: &str, through: u64) {
        let r = self.removed_through.entry(slot.to_owned()).or_insert(0);
        *r = (*r).max(through);
        if let Some(h) = self.added.get_mut(slot) {
            h.remove_through(through);
        }
    }
}

fn append(tx: &Transaction<'_>, counters: &mut Overlay<'_>, op: &Op) -> Result<Outcome, rusqlite::Error> {
    let Op::Append { slot, lane, hash, tag, envelope, now, consume_grant, quota, .. } = op else {
        unreachable!("append called with another op")
    };
    let k = key(hash);
    let Some(slot_key) = counters.get(slot).map(|c| c.key) else { return Ok(Outcome::QuotaExceeded) };
    if let Some(seq) = counters.stored_seq(slot, &k) {
        return Ok(Outcome::Appended { seq, duplicate: true });
    }
    if let Some(tag) = tag {
        let taken: Option<i64> = tx
            .prepare_cached("SELECT 1 FROM events WHERE slot = ?1 AND tag = ?2")?
            .query_row(params![slot_key, tag], |r| r.get(0))
            .optional()?;
        if taken.is_some() {
            return Ok(Outcome::TagTaken);
        }
    }
    let c = counters.get(slot).expect("checked above");
    let len = envelope.len() as u64;
    let seq = c.last_seq + 1;
    let room = c.room;
    let fits = quota.fits(c.count, c.bytes, len) && (*lane != Lane::Intro || c.intro < quota.max_intro);
    let mut evicted = None;
    if !fits {
        // A room keeps its newest: evict the oldest until the envelope fits.
        let through = if room && *lane == Lane::Inbox { evict_through(counters, slot, quota, len) } else { None };
        let Some(through) = through else { return Ok(Outcome::QuotaExceeded) };
        evicted = Some(delete_through(tx, counters, slot, through)?);
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
    tx.prepare_cached(
        "INSERT INTO events (slot, seq, lane, len, hash, tag, received_at, envelope) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![slot_key, seq, lane_code(*lane), len, k.as_slice(), tag, now, envelope.as_ref()])?;
    let id = tx.last_insert_rowid();
    let c = counters.get(slot).expect("checked above");
    (c.last_seq, c.count, c.bytes) = (seq, c.count + 1, c.bytes + len);
    c.intro += u64::from(*lane == Lane::Intro);
    counters.record(slot, Row { seq, id, len: len as u32, intro: *lane == Lane::Intro }, k);
    Ok(match evicted {
        Some(evicted) => {
            let floor = counters.get(slot).map_or(0, |c| c.floor);
            Outcome::AppendedEvicting { seq, floor, evicted }
        }
        None => Outcome::Appended { seq, duplicate: false },
    })
}

/// The sequence number through which a room must evict so an envelope of `len` bytes fits;
/// `None` if it cannot fit even alone.
fn evict_through(counters: &mut Overlay<'_>, slot: &str, quota: &super::Quota, len: u64) -> Option<u64> {
    let (mut count, mut bytes) = counters.get(slot).map(|c| (c.count, c.bytes))?;
    if !quota.fits(0, 0, len) {
        return None;
    }
    let mut through = None;
    for row in counters.rows(slot) {
        if quota.fits(count, bytes, len) {
            break;
        }
        (count, bytes, through) = (count - 1, bytes - u64::from(row.len), Some(row.seq));
    }
    through
}

/// Deletes `slot`'s envelopes through `through` (by row id), adjusting counters and the
/// floor; returns how many.
fn delete_through(
    tx: &Transaction<'_>,
    counters: &mut Overlay<'_>,
    slot: &str,
    through: u64,
) -> Result<u64, rusqlite::Error> {
    let rows = counters.rows_through(slot, through);
    let mut delete = tx.prepare_cached("DELETE FROM events WHERE id = ?1")?;
    for row in &rows {
        delete.execute(params![row.id])?;
    }
    let Some(c) = counters.get(slot) else { return Ok(0) };
    let removed = rows.len() as u64;
    let bytes: u64 = rows.iter().map(|r| u64::from(r.len)).sum();
    let intro = rows.iter().filter(|r| r.intro).count() as u64;
    c.floor = c.floor.max(through);
    (c.count, c.bytes, c.intro) = (c.count - removed, c.bytes - bytes, c.intro - intro);
    let floor = c.floor;
    tx.prepare_cached("UPDATE slots SET floor = ?2 WHERE id = ?1")?.execute(params![slot, floor])?;
    counters.remove_through(slot, through);
    Ok(removed)
}

fn apply_one(tx: &Transaction<'_>, counters: &mut Overlay<'_>, op: &Op) -> Result<Outcome, rusqlite::Error> {
    Ok(match op {
        Op::CreateSlot { id, owner_hash, now, room } => {
            tx.prepare_cached("INSERT INTO slots (id, owner_hash, created_at, room) VALUES (?1, ?2, ?3, ?4)")?
                .execute(params![id, owner_hash.as_slice(), now, room])?;
            let key = tx.last_insert_rowid();
            let c = Counters { key, owner_hash: *owner_hash, room: *room, ..Counters::default() };
            counters.changed.insert(id.clone(), c);
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
        Op::PurgeGrants { ids } => {
            let mut stmt = tx.prepare_cached("DELETE FROM grants WHERE id = ?1")?;
            for id in ids {
                stmt.execute(params![id])?;
            }
            Outcome::Done
        }
        Op::Append { .. } => append(tx, counters, op)?,
        Op::Ack { slot, through } => match counters.get(slot).is_some() {
            true => {
                let removed = delete_through(tx, counters, slot, *through)?;
                let floor = counters.get(slot).map_or(0, |c| c.floor);
                Outcome::Acked { floor, removed }
            }
            false => Outcome::Acked { floor: 0, removed: 0 },
        },
        Op::Expire { before } => {
            // Rows are in arrival order: find where the expired prefix ends.
            let mut stmt = tx.prepare_cached("SELECT slot, seq, received_at FROM events ORDER BY id")?;
            let mut rows = stmt.query([])?;
            let mut last_by_key: HashMap<i64, u64> = HashMap::new();
            while let Some(row) = rows.next()? {
                let received_at: u64 = row.get(2)?;
                if received_at >= *before {
                    break;
                }
                last_by_key.insert(row.get(0)?, row.get(1)?);
            }
            drop(rows);
            let last: Vec<(String, u64)> = counters
                .base
                .iter()
                .chain(counters.changed.iter())
                .filter_map(|(id, c)| last_by_key.get(&c.key).map(|seq| (id.clone(), *seq)))
                .collect::<std::collections::BTreeMap<_, _>>()
                .into_iter()
                .collect();
            let mut floors: Vec<(String, u64)> = Vec::with_capacity(last.len());
            for (slot, max_seq) in last {
                if counters.get(&slot).is_some() {
                    delete_through(tx, counters, &slot, max_seq)?;
                    floors.push((slot.clone(), counters.get(&slot).map_or(0, |c| c.floor)));
                }
            }
            floors.sort();
            Outcome::Expired { floors }
        }
        Op::ClaimHandle { nick, did, card, slot, now } => {
            let owner: Option<String> = tx
                .prepare_cached("SELECT did FROM handles WHERE nick = ?1")?
                .query_row(params![nick], |r| r.get(0))
                .optional()?;
            match owner {
                Some(owner) if &owner != did => Outcome::HandleTaken,
                _ => {
                    tx.prepare_cached("DELETE FROM handles WHERE slot = ?1 AND nick != ?2")?
                        .execute(params![slot, nick])?;
                    tx.prepare_cached(
                        "INSERT INTO handles (nick, did, card, claimed_at, slot) VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT(nick) DO UPDATE SET card = excluded.card, slot = excluded.slot",
                    )?
                    .execute(params![nick, did, card, now, slot])?;
                    Outcome::Claimed
                }
            }
        }
    })
}

impl Store for SqliteStore {
    fn load(&mut self) -> Result<Snapshot, StoreError> {
        let slots = self
            .slots
            .iter()
            .map(|(id, c)| SlotRow {
                id: id.clone(),
                owner_hash: c.owner_hash,
                last_seq: c.last_seq,
                floor: c.floor,
                room: c.room,
            })
            .collect();
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
                    kind: super::grant_kind(&kind),
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
        let mut overlay = Overlay {
            base: &self.slots,
            held: &self.held,
            changed: HashMap::new(),
            added: HashMap::new(),
            removed_through: HashMap::new(),
        };
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            out.push(apply_one(&tx, &mut overlay, op).map_err(err)?);
        }
        tx.commit().map_err(err)?;
        let Overlay { changed, added, removed_through, .. } = overlay;
        self.slots.extend(changed);
        for (slot, through) in removed_through {
            if let Some(h) = self.held.get_mut(&slot) {
                h.remove_through(through);
            }
        }
        for (slot, new) in added {
            let h = self.held.entry(slot).or_default();
            h.rows.extend(new.rows);
            h.keys.extend(new.keys);
        }
        // Let the WAL start over (module docs): the background thread has copied nearly all
        // of it, so this is the tail of the last few milliseconds.
        if self.wal_frames.load(Ordering::Relaxed) > WAL_RESET_FRAMES {
            self.wal_frames.store(0, Ordering::Relaxed);
            let _ = self.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        }
        Ok(out)
    }

    fn list_after(&mut self, slot: &str, after: u64, limit: usize) -> Result<Vec<Stored>, StoreError> {
        let Some(held) = self.held.get(slot) else { return Ok(Vec::new()) };
        let mut stmt =
            self.conn.prepare_cached("SELECT lane, envelope, received_at FROM events WHERE id = ?1").map_err(err)?;
        held.after(after)
            .take(limit)
            .map(|row| {
                stmt.query_row(params![row.id], |r| {
                    let lane: i64 = r.get(0)?;
                    let envelope: Vec<u8> = r.get(1)?;
                    Ok(Stored {
                        seq: row.seq,
                        lane: if lane == 1 { Lane::Intro } else { Lane::Inbox },
                        envelope: Bytes::from(envelope),
                        received_at: r.get(2)?,
                    })
                })
                .map_err(err)
            })
            .collect()
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
            s.apply(&[Op::CreateSlot { id: "s".into(), owner_hash: [3; 32], now: 1, room: false }]).expect("apply");
        }
        let append = |byte: u8| Op::Append {
            slot: "s".into(),
            lane: Lane::Inbox,
            hash: [byte; 32],
            tag: None,
            envelope: Bytes::from(vec![byte; 10]),
            now: 1,
            consume_grant: None,
            authorised_by: None,
            quota: super::super::Quota { max_events: 3, max_bytes: 1_000, max_intro: 1 },
        };
        {
            let mut s = SqliteStore::open(&dir).expect("reopen");
            let out = s.apply(&[append(1), append(2)]).expect("apply");
            assert_eq!(out[1], Outcome::Appended { seq: 2, duplicate: false });
        }
        // Counters and the idempotency map come back from the index alone.
        let mut s = SqliteStore::open(&dir).expect("reopen");
        assert_eq!(s.load().expect("load").slots[0].last_seq, 2);
        let out = s.apply(&[append(2), append(3), append(4)]).expect("apply");
        assert_eq!(out[0], Outcome::Appended { seq: 2, duplicate: true });
        assert_eq!(out[1], Outcome::Appended { seq: 3, duplicate: false });
        assert_eq!(out[2], Outcome::QuotaExceeded, "the count of 3 was rebuilt");
        let seqs = |s: &mut SqliteStore, after| {
            s.list_after("s", after, 10).expect("list").iter().map(|e| (e.seq, e.envelope[0])).collect::<Vec<_>>()
        };
        assert_eq!(seqs(&mut s, 0), vec![(1, 1), (2, 2), (3, 3)], "rows by sequence come back from the index");
        assert_eq!(seqs(&mut s, 2), vec![(3, 3)]);
        // An ack and a re-append of the acked envelope in one batch: it is stored anew.
        let out = s.apply(&[Op::Ack { slot: "s".into(), through: 3 }, append(1)]).expect("apply");
        assert_eq!(out[1], Outcome::Appended { seq: 4, duplicate: false });
        assert_eq!(seqs(&mut s, 0), vec![(4, 1)]);
        assert_eq!(s.load().expect("load").slots.len(), 1);
        // A store from before the arrival index (schema 2) is migrated with its envelopes.
        s.conn
            .execute_batch(
                "DROP INDEX events_by_arrival; CREATE INDEX events_by_seq ON events(slot, seq, lane, len, hash);
                 ALTER TABLE slots DROP COLUMN room; PRAGMA user_version = 2;",
            )
            .expect("downgrade");
        drop(s);
        let mut s = SqliteStore::open(&dir).expect("migrate");
        assert_eq!(seqs(&mut s, 0), vec![(4, 1)]);
        assert!(!s.load().expect("load").slots[0].room, "slots from before rooms are mailboxes");
        assert_eq!(s.apply(&[append(1)]).expect("apply")[0], Outcome::Appended { seq: 4, duplicate: true });
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
