//! Plain appends (no intro tag, no grant use) in one call of the database function
//! `wire_append`: it locks the batch's slots in id order, dedupes on the hash, re-checks
//! the grants and the quotas, numbers, inserts and writes the counters. A batch of them
//! costs one round trip, its commit included when it runs outside a transaction. At the
//! first append that needs its room's oldest evicted it stops (in a transaction: the caller
//! applies that one and the rest) or, outside one, undoes everything (the caller applies
//! the batch in a transaction), so a batch is still all or nothing.

use std::collections::HashMap;

use postgres::GenericClient;
use postgres::types::ToSql;

use super::{i, u};
use crate::store::{Lane, Op, Outcome};

/// Migration 4. The decisions are those of `Batch::append` (the one-by-one path) in the
/// same order: no such slot, then a stored duplicate, then the grant, then the quotas
/// (`Quota::fits` and the intro limit). Codes: 0 appended, 1 duplicate, 2 grant revoked or
/// expired, 3 over quota, NULL not taken.
pub(super) const WIRE_APPEND: &str = "
CREATE FUNCTION wire_append(
    ids TEXT[],          -- the batch's slots, distinct, in id order
    ix INT4[],           -- per append: its slot's place in ids (from 1)
    hashes BYTEA[], lanes INT2[], lens INT4[], ats INT8[], envelopes BYTEA[],
    grant_ids TEXT[],    -- per append: the grant that authorised it, or NULL
    max_events INT8[], max_bytes INT8[], max_intro INT8[],
    prev INT4[],         -- per append: the last earlier append of its slot and hash, or 0
    whole BOOL           -- all or none: an eviction raises (outside a transaction)
) RETURNS TABLE (out_seq INT8, out_code INT2)
LANGUAGE plpgsql AS $fn$
DECLARE
    m INT := coalesce(cardinality(ids), 0);
    n INT := coalesce(cardinality(ix), 0);
    hit BOOL[] := array_fill(FALSE, ARRAY[m]);
    touched BOOL[] := array_fill(FALSE, ARRAY[m]);
    tids TEXT[] := '{}';
    rm BOOL[] := array_fill(FALSE, ARRAY[m]);
    lst INT8[] := array_fill(0::INT8, ARRAY[m]);
    cnt INT8[] := array_fill(0::INT8, ARRAY[m]);
    byt INT8[] := array_fill(0::INT8, ARRAY[m]);
    itr INT8[] := array_fill(0::INT8, ARRAY[m]);
    dup INT8[] := array_fill(NULL::INT8, ARRAY[n]);
    ok BOOL[] := array_fill(TRUE, ARRAY[n]);
    sq INT8[] := array_fill(NULL::INT8, ARRAY[n]);
    res INT2[] := array_fill(NULL::INT2, ARRAY[n]);
    r RECORD;
    s INT;
BEGIN
    FOR r IN SELECT array_position(ids, sl.id) AS p, sl.last_seq, sl.count, sl.bytes, sl.intro, sl.room
             FROM slots sl WHERE sl.id = ANY(ids) ORDER BY sl.id FOR UPDATE LOOP
        hit[r.p] := TRUE; rm[r.p] := r.room; lst[r.p] := r.last_seq;
        cnt[r.p] := r.count; byt[r.p] := r.bytes; itr[r.p] := r.intro;
    END LOOP;
    -- Read after the locks: every append committed to these slots is seen. Each lookup is
    -- a subquery per append, so a plan cached while the tables were small stays an index
    -- probe (a join could be planned as a scan of every stored envelope).
    SELECT array_agg((SELECT e.seq FROM events e WHERE e.slot = ids[k.p] AND e.hash = k.h) ORDER BY k.o),
           array_agg(CASE WHEN k.g IS NULL THEN TRUE ELSE EXISTS (
               SELECT 1 FROM grants g WHERE g.id = k.g AND NOT g.revoked
               AND (g.expires_at IS NULL OR g.expires_at > k.at)) END ORDER BY k.o)
        INTO dup, ok
        FROM unnest(ix, hashes, grant_ids, ats) WITH ORDINALITY AS k(p, h, g, at, o);
    FOR j IN 1..n LOOP
        s := ix[j];
        IF NOT hit[s] THEN
            res[j] := 3;
        ELSIF dup[j] IS NOT NULL THEN
            sq[j] := dup[j]; res[j] := 1;
        ELSIF prev[j] > 0 AND res[prev[j]] IN (0, 1) THEN
            sq[j] := sq[prev[j]]; res[j] := 1;
        ELSIF NOT ok[j] THEN
            res[j] := 2;
        ELSIF cnt[s] < max_events[j] AND byt[s] + lens[j] <= max_bytes[j]
              AND (lanes[j] <> 1 OR itr[s] < max_intro[j]) THEN
            lst[s] := lst[s] + 1; cnt[s] := cnt[s] + 1; byt[s] := byt[s] + lens[j];
            itr[s] := itr[s] + (lanes[j] = 1)::INT;
            IF NOT touched[s] THEN touched[s] := TRUE; tids := tids || ids[s]; END IF;
            sq[j] := lst[s]; res[j] := 0;
        ELSIF rm[s] AND lanes[j] = 0 AND max_events[j] > 0 AND lens[j] <= max_bytes[j] THEN
            -- A room evicts its oldest first: the caller takes it from here.
            IF whole THEN
                RAISE EXCEPTION 'a room evicts' USING ERRCODE = 'WR001';
            END IF;
            EXIT;
        ELSE
            res[j] := 3;
        END IF;
    END LOOP;
    INSERT INTO events (slot, seq, lane, len, hash, received_at, envelope)
        SELECT ids[k.p], sq[k.o], k.lane, k.len, k.h, k.at, k.env
        FROM unnest(ix, lanes, lens, hashes, ats, envelopes) WITH ORDINALITY AS k(p, lane, len, h, at, env, o)
        WHERE res[k.o] = 0;
    UPDATE slots sl SET last_seq = lst[array_position(ids, sl.id)], count = cnt[array_position(ids, sl.id)],
        bytes = byt[array_position(ids, sl.id)], intro = itr[array_position(ids, sl.id)]
        WHERE sl.id = ANY(tids);
    RETURN QUERY SELECT sq[k.o], res[k.o] FROM generate_subscripts(ix, 1) AS k(o) ORDER BY k.o;
END
$fn$;";

/// The statement that calls it.
pub(super) const CALL: &str =
    "SELECT out_seq, out_code FROM wire_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

/// Whether `op` is an append `wire_append` takes.
pub(super) fn plain(op: &Op) -> bool {
    matches!(op, Op::Append { tag: None, consume_grant: None, .. })
}

/// The error `wire_append` raises when `whole` and a room must evict.
pub(super) fn evicts(e: &postgres::Error) -> bool {
    e.code().is_some_and(|c| c.code() == "WR001")
}

/// Applies `ops` (all [`plain`]) with one call on `client`: the outcomes, in order. In a
/// transaction (`whole` false) only a prefix may be taken; on the session itself (`whole`:
/// the call commits on its own) all, or none with an error that [`evicts`].
pub(super) fn append(
    client: &mut impl GenericClient,
    call: &postgres::Statement,
    ops: &[Op],
    whole: bool,
) -> Result<Vec<Outcome>, postgres::Error> {
    let mut ids: Vec<&str> = ops.iter().filter_map(|op| fields(op).map(|a| a.slot)).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut cols = Columns::default();
    let mut last: HashMap<(&str, &[u8]), i32> = HashMap::new();
    for (at, op) in ops.iter().enumerate() {
        let a = fields(op).expect("only plain appends are taken");
        let place = ids.binary_search(&a.slot).unwrap_or(0);
        let at = i32::try_from(at + 1).unwrap_or(i32::MAX);
        cols.prev.push(last.insert((a.slot, a.hash), at).unwrap_or(0));
        cols.ix.push(i32::try_from(place + 1).unwrap_or(i32::MAX));
        cols.hash.push(a.hash);
        cols.lane.push(super::lane_code(a.lane));
        cols.len.push(i32::try_from(a.envelope.len()).unwrap_or(i32::MAX));
        cols.at.push(i(a.now));
        cols.envelope.push(a.envelope);
        cols.grant.push(a.authorised_by);
        cols.max_events.push(i(a.quota.max_events));
        cols.max_bytes.push(i(a.quota.max_bytes));
        cols.max_intro.push(i(a.quota.max_intro));
    }
    let params: [&(dyn ToSql + Sync); 13] = [
        &ids,
        &cols.ix,
        &cols.hash,
        &cols.lane,
        &cols.len,
        &cols.at,
        &cols.envelope,
        &cols.grant,
        &cols.max_events,
        &cols.max_bytes,
        &cols.max_intro,
        &cols.prev,
        &whole,
    ];
    let mut out = Vec::with_capacity(ops.len());
    for row in client.query(call, &params)? {
        let (seq, code): (Option<i64>, Option<i16>) = (row.get(0), row.get(1));
        out.push(match code {
            Some(0) => Outcome::Appended { seq: u(seq.unwrap_or(0)), duplicate: false },
            Some(1) => Outcome::Appended { seq: u(seq.unwrap_or(0)), duplicate: true },
            Some(2) => Outcome::GrantExhausted,
            Some(_) => Outcome::QuotaExceeded,
            None => break,
        });
    }
    Ok(out)
}

/// What `wire_append` reads of an append.
pub(super) struct Fields<'o> {
    pub(super) slot: &'o str,
    pub(super) lane: Lane,
    hash: &'o [u8],
    pub(super) envelope: &'o [u8],
    now: u64,
    authorised_by: Option<&'o str>,
    quota: crate::store::Quota,
}

pub(super) fn fields(op: &Op) -> Option<Fields<'_>> {
    match op {
        Op::Append { slot, lane, hash, envelope, now, authorised_by, quota, .. } => Some(Fields {
            slot,
            lane: *lane,
            hash: hash.as_slice(),
            envelope,
            now: *now,
            authorised_by: authorised_by.as_deref(),
            quota: *quota,
        }),
        _ => None,
    }
}

/// The call's per-append columns.
#[derive(Default)]
struct Columns<'o> {
    ix: Vec<i32>,
    hash: Vec<&'o [u8]>,
    lane: Vec<i16>,
    len: Vec<i32>,
    at: Vec<i64>,
    envelope: Vec<&'o [u8]>,
    grant: Vec<Option<&'o str>>,
    max_events: Vec<i64>,
    max_bytes: Vec<i64>,
    max_intro: Vec<i64>,
    prev: Vec<i32>,
}
