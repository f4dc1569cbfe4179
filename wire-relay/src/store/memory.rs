//! An in-memory store with the same behaviour as SQLite, for tests and demos.

use std::collections::{BTreeMap, HashMap};

use super::{GrantRow, Op, Outcome, SlotRow, Snapshot, Store, StoreError, Stored};
use wire_core::proto::api::Lane;

#[derive(Debug, Default)]
struct Slot {
    row: Option<SlotRow>,
    events: BTreeMap<u64, (Stored, super::Hash, Option<Vec<u8>>)>,
    by_hash: HashMap<super::Hash, u64>,
    bytes: u64,
    intro: u64,
}

impl Slot {
    fn removed(&mut self, e: &(Stored, super::Hash, Option<Vec<u8>>)) {
        self.bytes -= e.0.envelope.len() as u64;
        self.intro -= u64::from(e.0.lane == Lane::Intro);
        self.by_hash.remove(&e.1);
    }
}

/// Everything in maps; lost when dropped.
#[derive(Debug, Default)]
pub struct MemoryStore {
    slots: HashMap<String, Slot>,
    grants: HashMap<String, GrantRow>,
    /// nick -> (did, card, slot).
    handles: HashMap<String, (String, Vec<u8>, String)>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn apply_one(&mut self, op: &Op) -> Outcome {
        match op {
            Op::CreateSlot { id, owner_hash, room, .. } => {
                let row = SlotRow { id: id.clone(), owner_hash: *owner_hash, last_seq: 0, floor: 0, room: *room };
                self.slots.insert(id.clone(), Slot { row: Some(row), ..Slot::default() });
                Outcome::Done
            }
            Op::PutGrant(grant) => {
                self.grants.insert(grant.id.clone(), grant.clone());
                Outcome::Done
            }
            Op::RevokeGrant { slot, id } => match self.grants.get_mut(id) {
                Some(g) if &g.slot == slot => {
                    g.revoked = true;
                    Outcome::Done
                }
                _ => Outcome::NoSuchGrant,
            },
            Op::PurgeGrants { ids } => {
                for id in ids {
                    self.grants.remove(id);
                }
                Outcome::Done
            }
            Op::Append { slot, lane, hash, tag, envelope, now, consume_grant, quota, .. } => {
                let Some(s) = self.slots.get_mut(slot) else { return Outcome::QuotaExceeded };
                if let Some(seq) = s.by_hash.get(hash) {
                    return Outcome::Appended { seq: *seq, duplicate: true };
                }
                // Only intro envelopes carry tags, and a slot holds few of them.
                if tag.is_some() && s.events.values().any(|(_, _, t)| t == tag) {
                    return Outcome::TagTaken;
                }
                let len = envelope.len() as u64;
                let room = s.row.as_ref().is_some_and(|r| r.room) && *lane == Lane::Inbox;
                let fits = |s: &Slot| quota.fits(s.events.len() as u64, s.bytes, len);
                let mut evicted = 0;
                if room && quota.fits(0, 0, len) {
                    // A room keeps its newest: evict the oldest until the envelope fits.
                    while !fits(s) {
                        let Some((seq, e)) = s.events.pop_first() else { break };
                        s.removed(&e);
                        let row = s.row.as_mut().expect("slot row exists");
                        row.floor = row.floor.max(seq);
                        evicted += 1;
                    }
                }
                if !fits(s) || (*lane == Lane::Intro && s.intro >= quota.max_intro) {
                    return Outcome::QuotaExceeded;
                }
                if let Some(id) = consume_grant {
                    match self.grants.get_mut(id) {
                        Some(g) if !g.revoked && g.uses_left != Some(0) => {
                            g.uses_left = g.uses_left.map(|u| u - 1);
                        }
                        _ => return Outcome::GrantExhausted,
                    }
                }
                let row = s.row.as_mut().expect("slot row exists");
                row.last_seq += 1;
                let seq = row.last_seq;
                let stored = Stored { seq, lane: *lane, envelope: envelope.clone(), received_at: *now };
                s.events.insert(seq, (stored, *hash, tag.clone()));
                s.by_hash.insert(*hash, seq);
                s.bytes += len;
                s.intro += u64::from(*lane == Lane::Intro);
                match evicted {
                    0 => Outcome::Appended { seq, duplicate: false },
                    _ => Outcome::AppendedEvicting { seq, floor: s.row.as_ref().map_or(0, |r| r.floor), evicted },
                }
            }
            Op::Ack { slot, through } => {
                let Some(s) = self.slots.get_mut(slot) else { return Outcome::Acked { floor: 0, removed: 0 } };
                let keep = s.events.split_off(&(through + 1));
                let removed = std::mem::replace(&mut s.events, keep);
                for e in removed.values() {
                    s.removed(e);
                }
                let row = s.row.as_mut().expect("slot row exists");
                row.floor = row.floor.max(*through);
                Outcome::Acked { floor: row.floor, removed: removed.len() as u64 }
            }
            Op::Expire { before } => {
                let mut floors = Vec::new();
                for (id, s) in &mut self.slots {
                    let old: Vec<u64> =
                        s.events.iter().filter(|(_, (e, _, _))| e.received_at < *before).map(|(k, _)| *k).collect();
                    if let Some(max) = old.iter().max() {
                        for k in &old {
                            if let Some(e) = s.events.remove(k) {
                                s.removed(&e);
                            }
                        }
                        let row = s.row.as_mut().expect("slot row exists");
                        row.floor = row.floor.max(*max);
                        floors.push((id.clone(), row.floor));
                    }
                }
                floors.sort();
                Outcome::Expired { floors }
            }
            Op::ClaimHandle { nick, did, card, slot, .. } => match self.handles.get(nick) {
                Some((owner, _, _)) if owner != did => Outcome::HandleTaken,
                _ => {
                    self.handles.retain(|n, (_, _, s)| s != slot || n == nick);
                    self.handles.insert(nick.clone(), (did.clone(), card.clone(), slot.clone()));
                    Outcome::Claimed
                }
            },
        }
    }
}

impl Store for MemoryStore {
    fn load(&mut self) -> Result<Snapshot, StoreError> {
        Ok(Snapshot {
            slots: self.slots.values().filter_map(|s| s.row.clone()).collect(),
            grants: self.grants.values().cloned().collect(),
        })
    }

    fn apply(&mut self, ops: &[Op]) -> Result<Vec<Outcome>, StoreError> {
        Ok(ops.iter().map(|op| self.apply_one(op)).collect())
    }

    fn list_after(&mut self, slot: &str, after: u64, limit: usize) -> Result<Vec<Stored>, StoreError> {
        Ok(self
            .slots
            .get(slot)
            .map(|s| s.events.range(after + 1..).take(limit).map(|(_, (e, _, _))| e.clone()).collect())
            .unwrap_or_default())
    }

    fn handle(&mut self, nick: &str) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        Ok(self.handles.get(nick).map(|(did, card, _)| (did.clone(), card.clone())))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_store_meets_the_contract() {
        super::super::contract::run(&mut super::MemoryStore::new());
    }
}
