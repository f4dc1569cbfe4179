//! Storage behind a narrow trait: load the index, apply a batch of writes atomically,
//! list after a cursor, resolve a handle. Two backends run the same contract suite:
//! [`sqlite::SqliteStore`] (the default) and [`memory::MemoryStore`] (tests).
//!
//! The store is the authority for sequence numbers, quotas, idempotency and intro-token
//! uses; the relay's in-memory index only mirrors what it needs for authentication and
//! cursor checks. The store never holds a key, a token (only SHA-256 hashes) or plaintext.

pub mod memory;
pub mod postgres;
pub mod sqlite;

use bytes::Bytes;
use wire_core::proto::api::{GrantKind, Lane};

/// SHA-256 of a token or an envelope.
pub type Hash = [u8; 32];

/// A grant kind from its stored name (its token prefix; unknown names read as send).
pub(crate) fn grant_kind(name: &str) -> GrantKind {
    match name {
        "intro" => GrantKind::Intro,
        "member" => GrantKind::Member,
        "admin" => GrantKind::Admin,
        _ => GrantKind::Send,
    }
}

/// A slot as the index needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRow {
    /// Slot id.
    pub id: String,
    /// SHA-256 of the owner token.
    pub owner_hash: Hash,
    /// Highest sequence number ever assigned.
    pub last_seq: u64,
    /// Highest sequence number deleted (acked or expired); cursors below it are gone.
    pub floor: u64,
    /// A room slot: evicts its oldest instead of refusing, never acked.
    pub room: bool,
}

/// A grant as the index needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    /// Grant id (revocation handle).
    pub id: String,
    /// The slot it grants on.
    pub slot: String,
    /// SHA-256 of the token.
    pub token_hash: Hash,
    /// Send or intro.
    pub kind: GrantKind,
    /// Expiry, Unix ms.
    pub expires_at: Option<u64>,
    /// Remaining uses (intro grants).
    pub uses_left: Option<u32>,
    /// Revoked grants stay known so their tokens fail with a clear message.
    pub revoked: bool,
}

/// One stored envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Sequence number.
    pub seq: u64,
    /// Lane.
    pub lane: Lane,
    /// The envelope.
    pub envelope: Bytes,
    /// Relay clock at append, Unix ms.
    pub received_at: u64,
}

/// What the relay loads at start-up: slots and grants, never envelopes.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Every slot.
    pub slots: Vec<SlotRow>,
    /// Every grant, revoked ones included.
    pub grants: Vec<GrantRow>,
}

/// Quotas checked inside the append transaction.
#[derive(Debug, Clone, Copy)]
pub struct Quota {
    /// Stored envelopes per slot.
    pub max_events: u64,
    /// Stored bytes per slot.
    pub max_bytes: u64,
    /// Pending intro-lane envelopes per slot.
    pub max_intro: u64,
}

impl Quota {
    /// Whether a slot holding `count` envelopes of `bytes` has room for one of `len`.
    pub(crate) fn fits(&self, count: u64, bytes: u64, len: u64) -> bool {
        count < self.max_events && bytes + len <= self.max_bytes
    }
}

/// A write. A batch of writes is applied in one transaction.
#[derive(Debug, Clone)]
pub enum Op {
    /// A new slot.
    CreateSlot {
        /// Slot id.
        id: String,
        /// Owner token hash.
        owner_hash: Hash,
        /// Unix ms.
        now: u64,
        /// A room slot ([`SlotRow::room`]).
        room: bool,
    },
    /// A new grant.
    PutGrant(GrantRow),
    /// Revoke a grant of `slot`.
    RevokeGrant {
        /// The slot the caller owns.
        slot: String,
        /// Grant id.
        id: String,
    },
    /// Forget grants for good (retention of dead grants); unknown ids are skipped.
    PurgeGrants {
        /// Grant ids.
        ids: Vec<String>,
    },
    /// Append an envelope (idempotent by hash). On a room slot over its quota the oldest
    /// envelopes are evicted to make room (never refused, unless the envelope alone is too
    /// large).
    Append {
        /// Slot id.
        slot: String,
        /// Lane.
        lane: Lane,
        /// SHA-256 of the envelope.
        hash: Hash,
        /// Intro-lane sender tag: one pending envelope per tag.
        tag: Option<Vec<u8>>,
        /// The envelope.
        envelope: Bytes,
        /// Unix ms.
        now: u64,
        /// Consume one use of this grant (intro tokens).
        consume_grant: Option<String>,
        /// The grant that authorised the append (not the owner's token): a shared store
        /// re-checks in the transaction that it is neither revoked nor expired, so a
        /// revocation on one node refuses at once on every other. A single-node store's
        /// index is the authority already.
        authorised_by: Option<String>,
        /// Limits.
        quota: Quota,
    },
    /// Delete everything through `through`.
    Ack {
        /// Slot id.
        slot: String,
        /// Sequence number.
        through: u64,
    },
    /// Delete every envelope received before `before` (retention).
    Expire {
        /// Unix ms.
        before: u64,
    },
    /// Claim a handle for a DID (first come, first served; the same DID may re-claim). A
    /// slot holds one handle: claiming another releases the slot's earlier one.
    ClaimHandle {
        /// Nickname.
        nick: String,
        /// The slot whose owner claims it.
        slot: String,
        /// DID string.
        did: String,
        /// Signed card JSON.
        card: Vec<u8>,
        /// Unix ms.
        now: u64,
    },
}

/// The result of one write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done, nothing to report.
    Done,
    /// The grant to revoke does not exist on that slot.
    NoSuchGrant,
    /// Stored (or already stored: `duplicate`).
    Appended {
        /// Sequence number.
        seq: u64,
        /// Already stored; nothing changed.
        duplicate: bool,
    },
    /// Stored on a room slot after evicting its oldest envelopes through `floor`.
    AppendedEvicting {
        /// Sequence number.
        seq: u64,
        /// New floor.
        floor: u64,
        /// Envelopes evicted.
        evicted: u64,
    },
    /// The slot is full.
    QuotaExceeded,
    /// The intro lane already holds a request with this tag.
    TagTaken,
    /// The intro token has no uses left (or was revoked meanwhile).
    GrantExhausted,
    /// Deleted through `floor`.
    Acked {
        /// New floor.
        floor: u64,
        /// Envelopes deleted.
        removed: u64,
    },
    /// Retention: new floors of the slots that lost envelopes.
    Expired {
        /// `(slot, new floor)`.
        floors: Vec<(String, u64)>,
    },
    /// The handle now points at the DID.
    Claimed,
    /// The handle belongs to another DID.
    HandleTaken,
}

impl Outcome {
    /// The sequence number of a newly stored envelope (not a duplicate).
    pub fn fresh_seq(&self) -> Option<u64> {
        match self {
            Self::Appended { seq, duplicate: false } | Self::AppendedEvicting { seq, .. } => Some(*seq),
            _ => None,
        }
    }
}

/// A storage failure (disk, corruption). The whole batch failed; nothing was applied.
#[derive(Debug, thiserror::Error)]
#[error("store failure: {0}")]
pub struct StoreError(pub String);

/// The storage interface.
pub trait Store: Send + 'static {
    /// The slots and grants, for the in-memory index.
    fn load(&mut self) -> Result<Snapshot, StoreError>;
    /// Applies `ops` in one transaction; outcomes are in the same order.
    fn apply(&mut self, ops: &[Op]) -> Result<Vec<Outcome>, StoreError>;
    /// Up to `limit` envelopes of `slot` with `seq > after`, oldest first.
    fn list_after(&mut self, slot: &str, after: u64, limit: usize) -> Result<Vec<Stored>, StoreError>;
    /// The DID and card behind a handle.
    fn handle(&mut self, nick: &str) -> Result<Option<(String, Vec<u8>)>, StoreError>;
    /// One slot as stored now (a shared store: another node may have made or moved it).
    fn slot(&mut self, _id: &str) -> Result<Option<SlotRow>, StoreError> {
        Ok(None)
    }
    /// One grant by its token's hash, as stored now (a shared store).
    fn grant(&mut self, _token_hash: &Hash) -> Result<Option<GrantRow>, StoreError> {
        Ok(None)
    }
    /// Runs after the last batch's answers went out: what may follow a commit but need not
    /// hold up its answers (a shared store's hint to the other nodes).
    fn after_answers(&mut self) {}
    /// Whether other relay nodes share this store: the index then reads through to it on a
    /// miss and refreshes cursors from it.
    fn shared(&self) -> bool {
        false
    }
    /// The store's own identity, when it outlives relay processes and is shared by nodes
    /// (else each process draws its own).
    fn incarnation(&mut self) -> Result<Option<String>, StoreError> {
        Ok(None)
    }
    /// Records this node as alive at `now` (a shared store); how many nodes were alive in
    /// the last `window` ms, this one included.
    fn heartbeat(&mut self, _now: u64, _window: u64) -> Result<u32, StoreError> {
        Ok(1)
    }
    /// Token hashes of grants revoked after revocation number `after` (a shared store, so
    /// each node's sweep learns other nodes' revocations), and the last number seen.
    fn revoked_since(&mut self, after: u64) -> Result<(Vec<Hash>, u64), StoreError> {
        Ok((Vec::new(), after))
    }
}

#[cfg(test)]
pub(crate) mod contract {
    //! The behaviour every backend must show; run against each in its own module.
    use super::*;

    const Q: Quota = Quota { max_events: 3, max_bytes: 1_000, max_intro: 1 };

    fn append(slot: &str, byte: u8, now: u64) -> Op {
        append_with(slot, byte, now, 100, Lane::Inbox, None, None)
    }

    fn append_with(
        slot: &str,
        byte: u8,
        now: u64,
        len: usize,
        lane: Lane,
        tag: Option<&[u8]>,
        grant: Option<&str>,
    ) -> Op {
        Op::Append {
            slot: slot.into(),
            lane,
            hash: [byte; 32],
            tag: tag.map(<[u8]>::to_vec),
            envelope: Bytes::from(vec![byte; len]),
            now,
            consume_grant: grant.map(str::to_owned),
            authorised_by: None,
            quota: Q,
        }
    }

    fn one(store: &mut dyn Store, op: Op) -> Outcome {
        store.apply(&[op]).expect("apply").remove(0)
    }

    pub(crate) fn run(store: &mut dyn Store) {
        assert_eq!(
            one(store, Op::CreateSlot { id: "s1".into(), owner_hash: [1; 32], now: 1, room: false }),
            Outcome::Done
        );
        one(store, Op::CreateSlot { id: "s2".into(), owner_hash: [2; 32], now: 1, room: false });

        // Sequence numbers per slot, idempotent by hash, in one batch.
        let out = store
            .apply(&[append("s1", 1, 10), append("s1", 2, 11), append("s1", 1, 12), append("s2", 1, 12)])
            .expect("apply");
        assert_eq!(
            out,
            vec![
                Outcome::Appended { seq: 1, duplicate: false },
                Outcome::Appended { seq: 2, duplicate: false },
                Outcome::Appended { seq: 1, duplicate: true },
                Outcome::Appended { seq: 1, duplicate: false },
            ]
        );
        let listed = store.list_after("s1", 0, 10).expect("list");
        assert_eq!(listed.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(listed[1].envelope, Bytes::from(vec![2u8; 100]));
        assert_eq!(listed[0].received_at, 10);
        assert_eq!(store.list_after("s1", 1, 10).expect("list").len(), 1);
        assert_eq!(store.list_after("s1", 0, 1).expect("list").len(), 1, "limit");

        // Quota: 3 events per slot.
        assert_eq!(one(store, append("s1", 3, 13)), Outcome::Appended { seq: 3, duplicate: false });
        assert_eq!(one(store, append("s1", 4, 14)), Outcome::QuotaExceeded);
        let big = append_with("s2", 9, 14, 2_000, Lane::Inbox, None, None);
        assert_eq!(one(store, big), Outcome::QuotaExceeded, "byte quota");

        // Ack frees quota and raises the floor; sequence numbers never repeat.
        assert_eq!(one(store, Op::Ack { slot: "s1".into(), through: 2 }), Outcome::Acked { floor: 2, removed: 2 });
        assert_eq!(one(store, append("s1", 4, 15)), Outcome::Appended { seq: 4, duplicate: false });
        assert_eq!(store.list_after("s1", 2, 10).expect("list").iter().map(|s| s.seq).collect::<Vec<_>>(), vec![3, 4]);

        // Intro lane: one pending per tag, intro quota, grant uses.
        let grant = GrantRow {
            id: "g1".into(),
            slot: "s2".into(),
            token_hash: [7; 32],
            kind: GrantKind::Intro,
            expires_at: Some(99),
            uses_left: Some(1),
            revoked: false,
        };
        one(store, Op::PutGrant(grant.clone()));
        let intro =
            |byte: u8, tag: &[u8], grant: Option<&str>| append_with("s2", byte, 20, 100, Lane::Intro, Some(tag), grant);
        assert_eq!(one(store, intro(5, b"tag-a", Some("g1"))), Outcome::Appended { seq: 2, duplicate: false });
        assert_eq!(one(store, intro(6, b"tag-a", None)), Outcome::TagTaken);
        assert_eq!(one(store, intro(6, b"tag-b", None)), Outcome::QuotaExceeded, "one pending intro per slot here");
        let inbox_with_grant = append_with("s2", 8, 21, 100, Lane::Inbox, None, Some("g1"));
        assert_eq!(one(store, inbox_with_grant), Outcome::GrantExhausted);
        assert_eq!(store.list_after("s2", 1, 10).expect("list")[0].lane, Lane::Intro);

        // Grants load back; revocation sticks and is scoped to the owner's slot.
        assert_eq!(one(store, Op::RevokeGrant { slot: "s1".into(), id: "g1".into() }), Outcome::NoSuchGrant);
        assert_eq!(one(store, Op::RevokeGrant { slot: "s2".into(), id: "g1".into() }), Outcome::Done);
        let snap = store.load().expect("load");
        let g = snap.grants.iter().find(|g| g.id == "g1").expect("grant kept");
        assert!(g.revoked);
        assert_eq!(g.uses_left, Some(0));
        let s1 = snap.slots.iter().find(|s| s.id == "s1").expect("slot");
        assert_eq!((s1.last_seq, s1.floor, s1.owner_hash), (4, 2, [1; 32]));

        // Purged grants are gone for good; unknown ids are skipped.
        assert_eq!(one(store, Op::PurgeGrants { ids: vec!["g1".into(), "nope".into()] }), Outcome::Done);
        assert!(store.load().expect("load").grants.iter().all(|g| g.id != "g1"));

        // Retention deletes by age and raises floors.
        match one(store, Op::Expire { before: 15 }) {
            Outcome::Expired { floors } => assert_eq!(floors, vec![("s1".to_owned(), 3), ("s2".to_owned(), 1)]),
            other => panic!("expected Expired, got {other:?}"),
        }
        assert_eq!(store.list_after("s1", 0, 10).expect("list").iter().map(|s| s.seq).collect::<Vec<_>>(), vec![4]);

        // Handles: first come first served, same DID may re-claim.
        let claim = |nick: &str, did: &str| Op::ClaimHandle {
            nick: nick.into(),
            slot: format!("slot-of-{did}"),
            did: did.into(),
            card: did.as_bytes().to_vec(),
            now: 1,
        };
        assert_eq!(one(store, claim("brave-otter", "did:a")), Outcome::Claimed);
        assert_eq!(one(store, claim("brave-otter", "did:b")), Outcome::HandleTaken);
        assert_eq!(one(store, claim("brave-otter", "did:a")), Outcome::Claimed);
        assert_eq!(store.handle("brave-otter").expect("handle"), Some(("did:a".into(), b"did:a".to_vec())));
        assert_eq!(store.handle("quiet-lantern").expect("handle"), None);
        // One handle per slot: the slot's new claim releases its earlier one.
        assert_eq!(one(store, claim("quiet-lantern", "did:a")), Outcome::Claimed);
        assert_eq!(store.handle("brave-otter").expect("handle"), None);
        assert!(store.handle("quiet-lantern").expect("handle").is_some());

        mixed(store);
        rooms(store);
    }

    /// One batch of every kind of write: appends around a new slot and an ack, a repeat, an
    /// append to no slot. Each sees what the ones before it did.
    fn mixed(store: &mut dyn Store) {
        let out = store
            .apply(&[
                Op::CreateSlot { id: "m1".into(), owner_hash: [5; 32], now: 1, room: false },
                append("m1", 1, 50),
                append("m1", 2, 51),
                append("m1", 1, 52),
                Op::Ack { slot: "m1".into(), through: 1 },
                append("m1", 3, 53),
                append("m1", 2, 54),
                append("no-such-slot", 4, 55),
            ])
            .expect("apply");
        assert_eq!(
            out,
            vec![
                Outcome::Done,
                Outcome::Appended { seq: 1, duplicate: false },
                Outcome::Appended { seq: 2, duplicate: false },
                Outcome::Appended { seq: 1, duplicate: true },
                Outcome::Acked { floor: 1, removed: 1 },
                Outcome::Appended { seq: 3, duplicate: false },
                Outcome::Appended { seq: 2, duplicate: true },
                Outcome::QuotaExceeded,
            ]
        );
        let snap = store.load().expect("load");
        let m1 = snap.slots.iter().find(|s| s.id == "m1").expect("m1");
        assert_eq!((m1.last_seq, m1.floor), (3, 1));
        assert_eq!(store.list_after("m1", 0, 10).expect("list").iter().map(|s| s.seq).collect::<Vec<_>>(), vec![2, 3]);
        // The counters the batch left are those the next one reads.
        assert_eq!(
            store.apply(&[append("m1", 4, 56)]).expect("apply"),
            vec![Outcome::Appended { seq: 4, duplicate: false }]
        );
    }

    /// Room slots evict their oldest instead of refusing; member grants load back.
    fn rooms(store: &mut dyn Store) {
        one(store, Op::CreateSlot { id: "r1".into(), owner_hash: [4; 32], now: 1, room: true });
        let out = store.apply(&[append("r1", 1, 30), append("r1", 2, 31), append("r1", 3, 32)]).expect("apply");
        assert!(out.iter().all(|o| matches!(o, Outcome::Appended { duplicate: false, .. })), "{out:?}");
        // A fourth: the first is evicted (3 events per slot), in the same batch as a fifth.
        let out = store.apply(&[append("r1", 4, 33), append("r1", 5, 34)]).expect("apply");
        assert_eq!(
            out,
            vec![
                Outcome::AppendedEvicting { seq: 4, floor: 1, evicted: 1 },
                Outcome::AppendedEvicting { seq: 5, floor: 2, evicted: 1 },
            ]
        );
        assert_eq!(
            store.list_after("r1", 0, 10).expect("list").iter().map(|s| s.seq).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        // By bytes: a 900-byte envelope evicts as many as it takes (1,000 bytes per slot).
        let big = append_with("r1", 6, 35, 900, Lane::Inbox, None, None);
        assert_eq!(one(store, big), Outcome::AppendedEvicting { seq: 6, floor: 4, evicted: 2 });
        // An evicted envelope is no longer a duplicate; one too large alone is refused.
        assert!(matches!(one(store, append("r1", 3, 36)), Outcome::AppendedEvicting { seq: 7, .. }));
        let huge = append_with("r1", 7, 37, 2_000, Lane::Inbox, None, None);
        assert_eq!(one(store, huge), Outcome::QuotaExceeded);
        let grant = |id: &str, kind: GrantKind, byte: u8| GrantRow {
            id: id.into(),
            slot: "r1".into(),
            token_hash: [byte; 32],
            kind,
            expires_at: None,
            uses_left: None,
            revoked: false,
        };
        one(store, Op::PutGrant(grant("m1", GrantKind::Member, 40)));
        one(store, Op::PutGrant(grant("a1", GrantKind::Admin, 41)));
        let snap = store.load().expect("load");
        let r1 = snap.slots.iter().find(|s| s.id == "r1").expect("room");
        assert_eq!((r1.room, r1.floor, r1.last_seq), (true, 5, 7));
        assert!(snap.slots.iter().filter(|s| s.id != "r1").all(|s| !s.room));
        let kinds = |id: &str| snap.grants.iter().find(|g| g.id == id).map(|g| g.kind);
        assert_eq!((kinds("m1"), kinds("a1")), (Some(GrantKind::Member), Some(GrantKind::Admin)));
    }
}
