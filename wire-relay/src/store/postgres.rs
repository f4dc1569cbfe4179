//! The PostgreSQL store: many relay nodes on one database (`--store postgres://...`).
//!
//! Everything the relay must agree on across nodes is in the database: per-slot counters
//! (last sequence number, floor, count, bytes, pending intros) on the slot's row, the
//! idempotency map as a unique `(slot, hash)` index, grants with their uses and revocation.
//! Nothing is rebuilt at start-up (a node loads slots and grants, never envelopes).
//!
//! A batch is one transaction. A batch of plain appends is one call of `wire_append` (see
//! `bulk.rs`), committed on its own; any other first locks the rows of every slot it appends
//! to or acks, in slot-id order, so two nodes' batches never wait on each other in a cycle.
//! Each append then dedupes on the hash, re-checks the grant it was authorised by (revoked
//! or expired on another node: refused) and the quotas, takes `last_seq + 1` and inserts.
//! Per slot, commits land in sequence order, so a reader never sees seq n+1 before n.
//!
//! After each commit that stored envelopes, once its answers are out, `NOTIFY wire_appends`
//! (a hint: a line per envelope, carrying it when the batch fits in one notification) goes
//! out on a second session with `synchronous_commit = off`; other nodes hand carried
//! envelopes to their streams and wake the streams of slots only named, and a periodic sweep
//! catches what a lost hint missed. It is never sent inside the append transaction
//! (PostgreSQL serialises every notifying commit).

use std::collections::BTreeSet;

use bytes::Bytes;
use postgres::{Client, NoTls, Statement, Transaction};
use wire_core::proto::api::Lane;

use super::{GrantRow, Hash, Op, Outcome, SlotRow, Snapshot, Store, StoreError, Stored};

mod bulk;
mod hint;
mod schema;

use hint::hint_payloads;
pub use hint::{CHANNEL, Hint, parse_hint};
use schema::migrate;

/// The advisory lock of the retention leader: one node expires at a time.
const RETENTION_LOCK: i64 = 0x7769_7265_0002;

/// Prepared statements of the store's session.
struct Statements {
    lock_slots: Statement,
    dedupe: Statement,
    tag_taken: Statement,
    grant_ok: Statement,
    use_grant: Statement,
    insert: Statement,
    counters: Statement,
    oldest: Statement,
    delete_through: Statement,
    list: Statement,
    /// `wire_append` (plain appends in one call).
    append: Statement,
}

/// PostgreSQL-backed store.
pub struct PostgresStore {
    client: Client,
    /// The session that sends append hints (`synchronous_commit = off`), opened with the
    /// first hint (a node's read session never sends one).
    notifier: Option<(Client, Statement)>,
    /// The `drop-hints` failpoint (`WIRE_RELAY_FAILPOINT`): a node that sends none.
    drop_hints: bool,
    st: Statements,
    /// This node's id in its hints (it skips its own).
    node: String,
    /// Where to reconnect.
    url: String,
    /// The last batch's hint, sent once its answers are out.
    hints: Vec<String>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PostgresStore(..)")
    }
}

fn err(e: postgres::Error) -> StoreError {
    StoreError(format!("postgres: {e}"))
}

/// Connects to `url` (a `postgres://` URL or `key=value` pairs).
pub fn connect(url: &str) -> Result<Client, StoreError> {
    Client::connect(url, NoTls).map_err(|e| StoreError(format!("cannot connect to the database: {e}")))
}

fn lane_code(lane: Lane) -> i16 {
    match lane {
        Lane::Inbox => 0,
        Lane::Intro => 1,
    }
}

fn hash_of(bytes: Vec<u8>) -> Hash {
    bytes.try_into().unwrap_or([0; 32])
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl PostgresStore {
    /// Connects (two sessions), runs pending migrations and prepares the statements;
    /// `node` names this relay node in its append hints.
    pub fn open(url: &str, node: &str) -> Result<Self, StoreError> {
        let mut client = connect(url)?;
        migrate(&mut client)?;
        let (client, st) = prepared(client)?;
        let drop_hints = std::env::var("WIRE_RELAY_FAILPOINT").is_ok_and(|f| f == "drop-hints");
        Ok(Self {
            client,
            notifier: None,
            drop_hints,
            st,
            node: node.to_owned(),
            url: url.to_owned(),
            hints: Vec::new(),
        })
    }

    /// Reconnects when the database went away (it restarted): the batch that met the
    /// broken session failed as a whole, the next one runs on a new session.
    fn ensure(&mut self) -> Result<(), StoreError> {
        if self.client.is_closed() {
            (self.client, self.st) = prepared(connect(&self.url)?)?;
        }
        Ok(())
    }
}

/// `client` with the store's statements prepared on it.
fn prepared(mut client: Client) -> Result<(Client, Statements), StoreError> {
    {
        let mut prepare = |sql: &str| client.prepare(sql).map_err(err);
        let st = Statements {
            lock_slots: prepare(
                "SELECT id, last_seq, floor, count, bytes, intro, room FROM slots
                 WHERE id = ANY($1) ORDER BY id FOR UPDATE",
            )?,
            dedupe: prepare("SELECT seq FROM events WHERE slot = $1 AND hash = $2")?,
            tag_taken: prepare("SELECT 1 FROM events WHERE slot = $1 AND tag = $2")?,
            grant_ok: prepare(
                "SELECT 1 FROM grants WHERE id = $1 AND NOT revoked AND (expires_at IS NULL OR expires_at > $2)",
            )?,
            use_grant: prepare(
                "UPDATE grants SET uses_left = uses_left - 1
                 WHERE id = $1 AND NOT revoked AND (uses_left IS NULL OR uses_left > 0)",
            )?,
            insert: prepare(
                "INSERT INTO events (slot, seq, lane, len, hash, tag, received_at, envelope)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )?,
            counters: prepare(
                "UPDATE slots s SET last_seq = u.last_seq, floor = u.floor, count = u.count, bytes = u.bytes,
                 intro = u.intro
                 FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[])
                 AS u(id, last_seq, floor, count, bytes, intro) WHERE s.id = u.id",
            )?,
            oldest: prepare("SELECT seq, len FROM events WHERE slot = $1 AND seq > $2 ORDER BY seq LIMIT $3")?,
            delete_through: prepare("DELETE FROM events WHERE slot = $1 AND seq <= $2 RETURNING len, lane")?,
            list: prepare(
                "SELECT seq, lane, envelope, received_at FROM events WHERE slot = $1 AND seq > $2
                 ORDER BY seq LIMIT $3",
            )?,
            append: prepare(bulk::CALL)?,
        };
        Ok((client, st))
    }
}

/// A slot's counters, as locked for the batch.
#[derive(Debug, Clone, Default)]
struct Counters {
    last_seq: u64,
    floor: u64,
    count: u64,
    bytes: u64,
    intro: u64,
    room: bool,
}

/// The batch in progress: the locked slots' counters, written back before the commit.
struct Batch<'a, 'b> {
    tx: &'a mut Transaction<'b>,
    st: &'a Statements,
    slots: std::collections::HashMap<String, Counters>,
    dirty: BTreeSet<String>,
}

impl Batch<'_, '_> {
    /// Deletes `slot`'s envelopes through `through`, adjusting its counters and floor.
    fn delete_through(&mut self, slot: &str, through: u64) -> Result<u64, postgres::Error> {
        let rows = self.tx.query(&self.st.delete_through, &[&slot, &i(through)])?;
        let Some(c) = self.slots.get_mut(slot) else { return Ok(0) };
        let removed = rows.len() as u64;
        let bytes: i64 = rows.iter().map(|r| i64::from(r.get::<_, i32>(0))).sum();
        let intro = rows.iter().filter(|r| r.get::<_, i16>(1) == 1).count() as u64;
        c.floor = c.floor.max(through);
        (c.count, c.bytes, c.intro) =
            (c.count.saturating_sub(removed), c.bytes.saturating_sub(u(bytes)), c.intro.saturating_sub(intro));
        self.dirty.insert(slot.to_owned());
        Ok(removed)
    }

    fn append(&mut self, op: &Op) -> Result<Outcome, postgres::Error> {
        let Op::Append { slot, lane, hash, tag, envelope, now, consume_grant, authorised_by, quota } = op else {
            unreachable!("append called with another op")
        };
        let Some(c) = self.slots.get(slot).cloned() else { return Ok(Outcome::QuotaExceeded) };
        if let Some(row) = self.tx.query_opt(&self.st.dedupe, &[slot, &hash.as_slice()])? {
            return Ok(Outcome::Appended { seq: u(row.get(0)), duplicate: true });
        }
        if let Some(grant) = authorised_by
            && self.tx.query_opt(&self.st.grant_ok, &[grant, &i(*now)])?.is_none()
        {
            // Revoked (or expired) on another node since this one cached it.
            return Ok(Outcome::GrantExhausted);
        }
        if let Some(tag) = tag
            && self.tx.query_opt(&self.st.tag_taken, &[slot, tag])?.is_some()
        {
            return Ok(Outcome::TagTaken);
        }
        let len = envelope.len() as u64;
        let fits = quota.fits(c.count, c.bytes, len) && (*lane != Lane::Intro || c.intro < quota.max_intro);
        let mut evicted = None;
        if !fits {
            // A room keeps its newest: evict the oldest until the envelope fits.
            if !(c.room && *lane == Lane::Inbox && quota.fits(0, 0, len)) {
                return Ok(Outcome::QuotaExceeded);
            }
            let (mut count, mut bytes, mut through) = (c.count, c.bytes, c.floor);
            while !quota.fits(count, bytes, len) {
                let rows = self.tx.query(&self.st.oldest, &[slot, &i(through), &256i64])?;
                if rows.is_empty() {
                    break;
                }
                for r in rows {
                    if quota.fits(count, bytes, len) {
                        break;
                    }
                    let row_len = u(i64::from(r.get::<_, i32>(1)));
                    (count, bytes, through) = (count - 1, bytes.saturating_sub(row_len), u(r.get(0)));
                }
            }
            evicted = Some(self.delete_through(slot, through)?);
        }
        if let Some(grant) = consume_grant
            && self.tx.execute(&self.st.use_grant, &[grant])? == 0
        {
            return Ok(Outcome::GrantExhausted);
        }
        let c = self.slots.get_mut(slot).expect("locked above");
        let seq = c.last_seq + 1;
        self.tx.execute(
            &self.st.insert,
            &[slot, &i(seq), &lane_code(*lane), &(len as i32), &hash.as_slice(), tag, &i(*now), &envelope.as_ref()],
        )?;
        (c.last_seq, c.count, c.bytes) = (seq, c.count + 1, c.bytes + len);
        c.intro += u64::from(*lane == Lane::Intro);
        let floor = c.floor;
        self.dirty.insert(slot.clone());
        Ok(match evicted {
            Some(evicted) => Outcome::AppendedEvicting { seq, floor, evicted },
            None => Outcome::Appended { seq, duplicate: false },
        })
    }

    /// Plain appends through `wire_append`, which reads and writes the slots' rows: the
    /// counters changed before go first, and what it stored is counted after.
    fn bulk(&mut self, ops: &[Op]) -> Result<Vec<Outcome>, postgres::Error> {
        write_counters(self)?;
        let done = bulk::append(self.tx, &self.st.append, ops, false)?;
        for (op, outcome) in ops.iter().zip(&done) {
            if let (Some(a), Outcome::Appended { seq, duplicate: false }) = (bulk::fields(op), outcome)
                && let Some(c) = self.slots.get_mut(a.slot)
            {
                (c.last_seq, c.count, c.bytes) = (*seq, c.count + 1, c.bytes + a.envelope.len() as u64);
                c.intro += u64::from(a.lane == Lane::Intro);
            }
        }
        Ok(done)
    }

    fn apply_one(&mut self, op: &Op) -> Result<Outcome, postgres::Error> {
        Ok(match op {
            Op::CreateSlot { id, owner_hash, now, room } => {
                self.tx.execute(
                    "INSERT INTO slots (id, owner_hash, created_at, room) VALUES ($1, $2, $3, $4)",
                    &[id, &owner_hash.as_slice(), &i(*now), room],
                )?;
                self.slots.insert(id.clone(), Counters { room: *room, ..Counters::default() });
                Outcome::Done
            }
            Op::PutGrant(g) => {
                self.tx.execute(
                    "INSERT INTO grants (id, slot, token_hash, kind, expires_at, uses_left, revoked)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[
                        &g.id,
                        &g.slot,
                        &g.token_hash.as_slice(),
                        &g.kind.token_prefix(),
                        &g.expires_at.map(i),
                        &g.uses_left.map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
                        &g.revoked,
                    ],
                )?;
                Outcome::Done
            }
            Op::RevokeGrant { slot, id } => {
                let n = self.tx.execute(
                    "UPDATE grants SET revoked = TRUE, revoked_seq = nextval('grant_revocations')
                     WHERE id = $1 AND slot = $2",
                    &[id, slot],
                )?;
                if n == 0 { Outcome::NoSuchGrant } else { Outcome::Done }
            }
            Op::PurgeGrants { ids } => {
                self.tx.execute("DELETE FROM grants WHERE id = ANY($1)", &[ids])?;
                Outcome::Done
            }
            Op::Append { .. } => self.append(op)?,
            Op::Ack { slot, through } => match self.slots.contains_key(slot) {
                true => {
                    let removed = self.delete_through(slot, *through)?;
                    Outcome::Acked { floor: self.slots.get(slot).map_or(0, |c| c.floor), removed }
                }
                false => Outcome::Acked { floor: 0, removed: 0 },
            },
            Op::Expire { .. } => unreachable!("expiry runs in its own transaction"),
            Op::ClaimHandle { nick, did, card, slot, now } => {
                let owner: Option<String> =
                    self.tx.query_opt("SELECT did FROM handles WHERE nick = $1", &[nick])?.map(|r| r.get(0));
                match owner {
                    Some(owner) if &owner != did => Outcome::HandleTaken,
                    _ => {
                        self.tx.execute("DELETE FROM handles WHERE slot = $1 AND nick <> $2", &[slot, nick])?;
                        self.tx.execute(
                            "INSERT INTO handles (nick, did, card, claimed_at, slot) VALUES ($1, $2, $3, $4, $5)
                             ON CONFLICT (nick) DO UPDATE SET card = excluded.card, slot = excluded.slot",
                            &[nick, did, card, &i(*now), slot],
                        )?;
                        Outcome::Claimed
                    }
                }
            }
        })
    }
}

impl PostgresStore {
    /// Retention: every envelope received before `before`, slot by slot in id order (each
    /// slot's row locked like an append's), by one node at a time.
    fn expire(&mut self, before: u64) -> Result<Outcome, postgres::Error> {
        let mut tx = self.client.transaction()?;
        let leader: bool = tx.query_one("SELECT pg_try_advisory_xact_lock($1)", &[&RETENTION_LOCK])?.get(0);
        if !leader {
            return Ok(Outcome::Expired { floors: Vec::new() });
        }
        let due: Vec<(String, i64)> = tx
            .query(
                "SELECT slot, max(seq) FROM events WHERE received_at < $1 GROUP BY slot ORDER BY slot LIMIT 10000",
                &[&i(before)],
            )?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        if due.is_empty() {
            return Ok(Outcome::Expired { floors: Vec::new() });
        }
        let ids: Vec<String> = due.iter().map(|(s, _)| s.clone()).collect();
        let slots = lock(&mut tx, &self.st, &ids)?;
        let mut batch = Batch { tx: &mut tx, st: &self.st, slots, dirty: BTreeSet::new() };
        let mut floors = Vec::new();
        for (slot, max_seq) in due {
            if batch.slots.contains_key(&slot) {
                batch.delete_through(&slot, u(max_seq))?;
                floors.push((slot.clone(), batch.slots.get(&slot).map_or(0, |c| c.floor)));
            }
        }
        write_counters(&mut batch)?;
        tx.commit()?;
        Ok(Outcome::Expired { floors })
    }
}

/// Locks the rows of `ids` in id order and reads their counters.
fn lock(
    tx: &mut Transaction<'_>,
    st: &Statements,
    ids: &[String],
) -> Result<std::collections::HashMap<String, Counters>, postgres::Error> {
    let rows = tx.query(&st.lock_slots, &[&ids])?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let c = Counters {
                last_seq: u(r.get(1)),
                floor: u(r.get(2)),
                count: u(r.get(3)),
                bytes: u(r.get(4)),
                intro: u(r.get(5)),
                room: r.get(6),
            };
            (r.get::<_, String>(0), c)
        })
        .collect())
}

/// Writes the changed slots' counters back, in one statement.
fn write_counters(batch: &mut Batch<'_, '_>) -> Result<(), postgres::Error> {
    let dirty = std::mem::take(&mut batch.dirty);
    if dirty.is_empty() {
        return Ok(());
    }
    let counters: Vec<&Counters> = dirty.iter().map(|s| &batch.slots[s]).collect();
    let column = |f: fn(&Counters) -> u64| counters.iter().map(|c| i(f(c))).collect::<Vec<i64>>();
    let ids: Vec<&str> = dirty.iter().map(String::as_str).collect();
    batch.tx.execute(
        &batch.st.counters,
        &[
            &ids,
            &column(|c| c.last_seq),
            &column(|c| c.floor),
            &column(|c| c.count),
            &column(|c| c.bytes),
            &column(|c| c.intro),
        ],
    )?;
    Ok(())
}

impl Store for PostgresStore {
    fn load(&mut self) -> Result<Snapshot, StoreError> {
        self.ensure()?;
        let slots = self
            .client
            .query("SELECT id, owner_hash, last_seq, floor, room FROM slots", &[])
            .map_err(err)?
            .into_iter()
            .map(|r| SlotRow {
                id: r.get(0),
                owner_hash: hash_of(r.get(1)),
                last_seq: u(r.get(2)),
                floor: u(r.get(3)),
                room: r.get(4),
            })
            .collect();
        let grants = self
            .client
            .query("SELECT id, slot, token_hash, kind, expires_at, uses_left, revoked FROM grants", &[])
            .map_err(err)?
            .into_iter()
            .map(grant_row)
            .collect();
        Ok(Snapshot { slots, grants })
    }

    fn apply(&mut self, ops: &[Op]) -> Result<Vec<Outcome>, StoreError> {
        self.ensure()?;
        // Expiry locks slots of its own choosing: it runs in a transaction of its own, and
        // the writes around it in theirs.
        let mut out = Vec::with_capacity(ops.len());
        for part in ops.split_inclusive(|op| matches!(op, Op::Expire { .. })) {
            let (writes, expire) = match part.split_last() {
                Some((Op::Expire { before }, writes)) => (writes, Some(*before)),
                _ => (part, None),
            };
            if !writes.is_empty() {
                out.extend(self.apply_writes(writes)?);
            }
            if let Some(before) = expire {
                out.push(self.expire(before).map_err(err)?);
            }
        }
        Ok(out)
    }

    fn list_after(&mut self, slot: &str, after: u64, limit: usize) -> Result<Vec<Stored>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|c, st| {
            Ok(c.query(&st.list, &[&slot, &i(after), &limit])?
                .into_iter()
                .map(|r| Stored {
                    seq: u(r.get(0)),
                    lane: if r.get::<_, i16>(1) == 1 { Lane::Intro } else { Lane::Inbox },
                    envelope: Bytes::from(r.get::<_, Vec<u8>>(2)),
                    received_at: u(r.get(3)),
                })
                .collect())
        })
    }

    fn handle(&mut self, nick: &str) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        self.read(|c, _| {
            Ok(c.query_opt("SELECT did, card FROM handles WHERE nick = $1", &[&nick])?.map(|r| (r.get(0), r.get(1))))
        })
    }

    fn slot(&mut self, id: &str) -> Result<Option<SlotRow>, StoreError> {
        self.read(|c, _| {
            Ok(c.query_opt("SELECT id, owner_hash, last_seq, floor, room FROM slots WHERE id = $1", &[&id])?.map(|r| {
                SlotRow {
                    id: r.get(0),
                    owner_hash: hash_of(r.get(1)),
                    last_seq: u(r.get(2)),
                    floor: u(r.get(3)),
                    room: r.get(4),
                }
            }))
        })
    }

    fn grant(&mut self, token_hash: &Hash) -> Result<Option<GrantRow>, StoreError> {
        self.read(|c, _| {
            Ok(c.query_opt(
                "SELECT id, slot, token_hash, kind, expires_at, uses_left, revoked FROM grants WHERE token_hash = $1",
                &[&token_hash.as_slice()],
            )?
            .map(grant_row))
        })
    }

    fn shared(&self) -> bool {
        true
    }

    fn after_answers(&mut self) {
        self.send_hints();
    }

    fn incarnation(&mut self) -> Result<Option<String>, StoreError> {
        self.read(|c, _| Ok(Some(c.query_one("SELECT incarnation FROM wire_meta", &[])?.get(0))))
    }

    fn heartbeat(&mut self, now: u64, window: u64) -> Result<u32, StoreError> {
        let node = self.node.clone();
        self.read(|c, _| {
            c.execute(
                "INSERT INTO nodes (id, seen_at) VALUES ($1, $2)
                 ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
                &[&node, &i(now)],
            )?;
            c.execute("DELETE FROM nodes WHERE seen_at < $1", &[&i(now.saturating_sub(10 * window))])?;
            let live: i64 = c
                .query_one("SELECT count(*) FROM nodes WHERE seen_at >= $1", &[&i(now.saturating_sub(window))])?
                .get(0);
            Ok(u32::try_from(live).unwrap_or(1).max(1))
        })
    }

    fn revoked_since(&mut self, after: u64) -> Result<(Vec<Hash>, u64), StoreError> {
        self.read(|c, _| {
            let rows = c.query(
                "SELECT token_hash, revoked_seq FROM grants WHERE revoked_seq > $1 ORDER BY revoked_seq LIMIT 10000",
                &[&i(after)],
            )?;
            let last = rows.last().map_or(after, |r| u(r.get(1)));
            Ok((rows.into_iter().map(|r| hash_of(r.get(0))).collect(), last))
        })
    }
}

impl PostgresStore {
    /// Runs a read (or an idempotent write); once more on new sessions if the database went
    /// away under it (a restart: the session is only known to be broken once used).
    fn read<T>(&mut self, f: impl Fn(&mut Client, &Statements) -> Result<T, postgres::Error>) -> Result<T, StoreError> {
        self.ensure()?;
        match f(&mut self.client, &self.st) {
            Err(_) if self.client.is_closed() => {
                self.ensure()?;
                f(&mut self.client, &self.st).map_err(err)
            }
            other => other.map_err(err),
        }
    }
}

impl PostgresStore {
    /// Appends, acks, grants, slots and handles in one transaction; a batch of plain
    /// appends alone in one call that commits on its own.
    fn apply_writes(&mut self, ops: &[Op]) -> Result<Vec<Outcome>, StoreError> {
        if let Some(Op::Expire { before }) = ops.iter().find(|op| matches!(op, Op::Expire { .. })) {
            return Err(StoreError(format!("expiry (before {before}) is applied alone, not in a batch")));
        }
        let mut out = Vec::with_capacity(ops.len());
        if ops.iter().all(bulk::plain) {
            match bulk::append(&mut self.client, &self.st.append, ops, true) {
                Ok(done) => out = done,
                Err(e) if bulk::evicts(&e) => {}
                Err(e) => return Err(err(e)),
            }
        }
        let rest = &ops[out.len()..];
        if !rest.is_empty() {
            let mut ids: Vec<String> = rest
                .iter()
                .filter_map(|op| match op {
                    Op::Append { slot, .. } | Op::Ack { slot, .. } => Some(slot.clone()),
                    _ => None,
                })
                .collect();
            ids.sort();
            ids.dedup();
            let mut tx = self.client.transaction().map_err(err)?;
            let slots = lock(&mut tx, &self.st, &ids).map_err(err)?;
            let mut batch = Batch { tx: &mut tx, st: &self.st, slots, dirty: BTreeSet::new() };
            let mut at = 0;
            while at < rest.len() {
                let run = rest[at..].iter().take_while(|op| bulk::plain(op)).count();
                if run > 0 {
                    let done = batch.bulk(&rest[at..at + run]).map_err(err)?;
                    at += done.len();
                    out.extend(done);
                }
                // What the call did not take: another kind of write, or a room's eviction.
                if let Some(op) = rest.get(at) {
                    out.push(batch.apply_one(op).map_err(err)?);
                    at += 1;
                }
            }
            write_counters(&mut batch).map_err(err)?;
            tx.commit().map_err(err)?;
        }
        self.hint(ops, &out);
        Ok(out)
    }

    /// Tells the other nodes what `ops` stored (best effort: their sweep catches a lost
    /// hint). A line per envelope, `slot seq`; when the whole batch fits in one
    /// notification, each line also carries its envelope (`lane received_at base64`), so the
    /// other nodes' streams deliver it without reading it back.
    fn hint(&mut self, ops: &[Op], outcomes: &[Outcome]) {
        let stored: Vec<(&str, Stored)> = ops
            .iter()
            .zip(outcomes)
            .filter_map(|(op, o)| match op {
                Op::Append { slot, .. } => Some((slot.as_str(), crate::state::stored_from(op, o.fresh_seq()?)?)),
                _ => None,
            })
            .collect();
        if stored.is_empty() || self.drop_hints {
            return;
        }
        self.hints.extend(hint_payloads(&self.node, &stored));
    }

    /// Sends the hint [`Self::hint`] made.
    fn send_hints(&mut self) {
        if self.hints.is_empty() {
            return;
        }
        let payloads = std::mem::take(&mut self.hints);
        if self.notifier.as_ref().is_none_or(|(c, _)| c.is_closed()) {
            self.notifier = connect(&self.url)
                .and_then(|mut c| {
                    c.batch_execute("SET synchronous_commit = off").map_err(err)?;
                    let notify = c.prepare("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p").map_err(err)?;
                    Ok((c, notify))
                })
                .ok();
        }
        let Some((notifier, notify)) = self.notifier.as_mut() else { return };
        let _ = notifier.query(&*notify, &[&CHANNEL, &payloads]);
    }
}

fn grant_row(r: postgres::Row) -> GrantRow {
    let kind: String = r.get(3);
    GrantRow {
        id: r.get(0),
        slot: r.get(1),
        token_hash: hash_of(r.get(2)),
        kind: super::grant_kind(&kind),
        expires_at: r.get::<_, Option<i64>>(4).map(u),
        uses_left: r.get::<_, Option<i32>>(5).map(|n| u32::try_from(n).unwrap_or(0)),
        revoked: r.get(6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire_core::proto::api::GrantKind;

    #[test]
    #[ignore = "needs the private PostgreSQL cluster `.ci/test` starts (WIRE_TEST_PG)"]
    fn postgres_store_meets_the_contract() {
        let url = wire_testkit::relay::fresh_database("contract");
        super::super::contract::run(&mut PostgresStore::open(&url, "n1").expect("open"));
        // A second node on the same database sees the same state at once.
        let mut other = PostgresStore::open(&url, "n2").expect("a second node");
        let snap = other.load().expect("load");
        assert!(snap.slots.iter().any(|s| s.id == "s1" && s.last_seq == 4 && s.floor == 3), "{:?}", snap.slots);
        assert_eq!(other.slot("r1").expect("slot").map(|s| s.room), Some(true));
        assert_eq!(other.grant(&[40; 32]).expect("grant").map(|g| g.kind), Some(GrantKind::Member));
    }
}
