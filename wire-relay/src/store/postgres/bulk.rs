//! Appends in bulk: a batch's plain appends (no intro tag, no grant use, fitting their
//! slot) are deduped, checked against their grants and inserted with one statement each,
//! whatever their number, so a commit costs a handful of round trips. Anything else, or
//! an append that may need its room's oldest evicted, first flushes what is pending and
//! then takes the one-by-one path.

use std::collections::{HashMap, HashSet};

use super::{Batch, i};
use crate::store::{Hash, Op, Outcome};

/// A plain append waiting for the flush: its place among the batch's outcomes.
pub(super) struct Pending<'o> {
    pub(super) at: usize,
    pub(super) op: &'o Op,
}

/// What pending appends would hold per slot if all were stored: `(count, bytes)`.
pub(super) type Projected = HashMap<String, (u64, u64)>;

/// Whether `op` may wait for the bulk flush: plain, and fitting its slot even if every
/// append pending before it is stored.
pub(super) fn plain(batch: &Batch<'_, '_>, projected: &mut Projected, op: &Op) -> bool {
    let Op::Append { slot, tag: None, consume_grant: None, envelope, quota, .. } = op else { return false };
    let Some(c) = batch.slots.get(slot) else { return false };
    let (count, bytes) = projected.entry(slot.clone()).or_insert((c.count, c.bytes));
    let len = envelope.len() as u64;
    if !quota.fits(*count, *bytes, len) {
        return false;
    }
    (*count, *bytes) = (*count + 1, *bytes + len);
    true
}

impl Batch<'_, '_> {
    /// Stores the pending appends; their outcomes go to `out`.
    pub(super) fn flush(
        &mut self,
        pending: &mut Vec<Pending<'_>>,
        projected: &mut Projected,
        out: &mut [Option<Outcome>],
    ) -> Result<(), postgres::Error> {
        projected.clear();
        if pending.is_empty() {
            return Ok(());
        }
        fn fields<'o>(p: &Pending<'o>) -> (&'o String, &'o Hash, &'o Option<String>) {
            match p.op {
                Op::Append { slot, hash, authorised_by, .. } => (slot, hash, authorised_by),
                _ => unreachable!("only appends are pending"),
            }
        }
        // Grants revoked or expired on another node since this one cached them.
        let grants: Vec<&String> = pending.iter().filter_map(|p| fields(p).2.as_ref()).collect();
        let live: HashSet<String> = if grants.is_empty() {
            HashSet::new()
        } else {
            let now = pending.iter().map(|p| if let Op::Append { now, .. } = p.op { *now } else { 0 }).max();
            self.tx
                .query(
                    "SELECT id FROM grants WHERE id = ANY($1) AND NOT revoked AND (expires_at IS NULL OR expires_at > $2)",
                    &[&grants, &i(now.unwrap_or(0))],
                )?
                .into_iter()
                .map(|r| r.get(0))
                .collect()
        };
        let (slots, hashes): (Vec<&str>, Vec<&[u8]>) =
            pending.iter().map(|p| (fields(p).0.as_str(), fields(p).1.as_slice())).unzip();
        let mut stored: HashMap<(String, Hash), u64> = self
            .tx
            .query(
                "SELECT e.slot, e.hash, e.seq FROM events e
                 JOIN unnest($1::text[], $2::bytea[]) AS k(slot, hash) ON e.slot = k.slot AND e.hash = k.hash",
                &[&slots, &hashes],
            )?
            .into_iter()
            .map(|r| ((r.get::<_, String>(0), super::hash_of(r.get(1))), super::u(r.get(2))))
            .collect();
        let mut rows = Rows::default();
        for p in pending.drain(..) {
            let Op::Append { slot, lane, hash, envelope, now, authorised_by, quota, .. } = p.op else {
                unreachable!("only appends are pending")
            };
            if authorised_by.as_ref().is_some_and(|g| !live.contains(g)) {
                out[p.at] = Some(Outcome::GrantExhausted);
                continue;
            }
            if let Some(seq) = stored.get(&(slot.clone(), *hash)) {
                out[p.at] = Some(Outcome::Appended { seq: *seq, duplicate: true });
                continue;
            }
            let c = self.slots.get_mut(slot).expect("pending appends are to locked slots");
            let len = envelope.len() as u64;
            let intro = *lane == crate::store::Lane::Intro;
            if !quota.fits(c.count, c.bytes, len) || (intro && c.intro >= quota.max_intro) {
                out[p.at] = Some(Outcome::QuotaExceeded);
                continue;
            }
            let seq = c.last_seq + 1;
            (c.last_seq, c.count, c.bytes) = (seq, c.count + 1, c.bytes + len);
            c.intro += u64::from(intro);
            stored.insert((slot.clone(), *hash), seq);
            self.dirty.insert(slot.clone());
            self.stored.push((slot.clone(), seq));
            rows.push(slot, seq, super::lane_code(*lane), len, hash, *now, envelope);
            out[p.at] = Some(Outcome::Appended { seq, duplicate: false });
        }
        if !rows.slot.is_empty() {
            self.tx.execute(
                "INSERT INTO events (slot, seq, lane, len, hash, received_at, envelope)
                 SELECT * FROM unnest($1::text[], $2::int8[], $3::int2[], $4::int4[], $5::bytea[], $6::int8[], $7::bytea[])",
                &[&rows.slot, &rows.seq, &rows.lane, &rows.len, &rows.hash, &rows.at, &rows.envelope],
            )?;
        }
        Ok(())
    }
}

/// Columns of the rows to insert.
#[derive(Default)]
struct Rows<'a> {
    slot: Vec<&'a str>,
    seq: Vec<i64>,
    lane: Vec<i16>,
    len: Vec<i32>,
    hash: Vec<&'a [u8]>,
    at: Vec<i64>,
    envelope: Vec<&'a [u8]>,
}

impl<'a> Rows<'a> {
    #[allow(clippy::too_many_arguments)]
    fn push(&mut self, slot: &'a str, seq: u64, lane: i16, len: u64, hash: &'a Hash, at: u64, envelope: &'a [u8]) {
        self.slot.push(slot);
        self.seq.push(i(seq));
        self.lane.push(lane);
        self.len.push(i32::try_from(len).unwrap_or(i32::MAX));
        self.hash.push(hash.as_slice());
        self.at.push(i(at));
        self.envelope.push(envelope);
    }
}
