//! The relay's shared state: the in-memory index (slots, grants), SSE subscribers, rate
//! limits, the rendezvous and metrics. Envelopes live only in the store.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};
use wire_core::proto::api::{ErrorCode, GrantKind};

use crate::config::Config;
use crate::engine::Engine;
use crate::error::ApiError;
use crate::limit::Limiter;
use crate::metrics::Metrics;
use crate::rendezvous::Rendezvous;
use crate::store::{GrantRow, Hash, Op, Outcome, Snapshot, Stored};

/// What the index keeps per slot.
#[derive(Debug, Clone)]
pub(crate) struct SlotMeta {
    pub(crate) owner_hash: Hash,
    pub(crate) last_seq: u64,
    pub(crate) floor: u64,
    /// Open streams (mailboxes; a room counts them per token).
    pub(crate) streams: usize,
    /// A room slot: read by member grants, evicts by retention, never acked.
    pub(crate) room: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Index {
    pub(crate) slots: HashMap<String, SlotMeta>,
    pub(crate) grants: HashMap<Hash, GrantRow>,
    /// Open streams per token on room slots.
    pub(crate) token_streams: HashMap<Hash, usize>,
}

/// Live SSE subscribers per slot, each with the hash of the token it streams with (a
/// revoked member's stream ends). Senders whose queue is full are dropped: the slow
/// subscriber's stream ends and it resumes from its cursor; writers never wait on it.
pub(crate) type Subscribers = Mutex<HashMap<String, Vec<(Hash, mpsc::Sender<Live>)>>>;

/// What a stream's task is told.
#[derive(Debug)]
pub(crate) enum Live {
    /// An envelope this node committed.
    Envelope(Arc<Stored>),
    /// Read the store past your cursor: another node appended (or a sweep).
    Wake,
}

/// Who may read a slot (list, stream): its owner, or a member of a room.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reader {
    /// The slot is a room.
    pub(crate) room: bool,
    /// SHA-256 of the bearer token.
    pub(crate) token_hash: Hash,
}

/// Shared by every connection.
#[derive(Debug)]
pub(crate) struct Relay {
    pub(crate) config: Config,
    pub(crate) engine: Engine,
    pub(crate) index: Mutex<Index>,
    pub(crate) subscribers: Arc<Subscribers>,
    pub(crate) ip_limit: Limiter<IpAddr>,
    pub(crate) token_limit: Limiter<Hash>,
    pub(crate) rendezvous: Mutex<Rendezvous>,
    /// Slot allocations per client IP.
    pub(crate) slot_limit: Limiter<IpAddr>,
    /// Open connections per client IP ([`IpShare`]).
    pub(crate) connections: Arc<Mutex<HashMap<IpAddr, usize>>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// This relay process's store incarnation, new at every start: list and stream answers
    /// carry it, so a client notices a store that was replaced, restored or lost while it
    /// was away (sequence numbers may repeat) and re-reads from the floor instead of
    /// trusting its cursor. A restart without loss costs each client one re-read of what it
    /// has not acked.
    pub(crate) incarnation: String,
    /// Other relay nodes write to the same store: the index reads through to it.
    pub(crate) shared: bool,
    /// This node's id among the nodes of a shared store.
    pub(crate) node: String,
    /// The rendezvous the nodes of a shared store share (else `rendezvous`, in memory).
    pub(crate) nameplates: Option<crate::nameplates::Nameplates>,
}

/// Who a bearer token is, for the slot in the path.
#[derive(Debug)]
pub(crate) enum Caller {
    Owner,
    Grant(GrantRow),
}

pub(crate) fn sha256(bytes: &[u8]) -> Hash {
    Sha256::digest(bytes).into()
}

/// Constant-time equality of two hashes.
fn same(a: &Hash, b: &Hash) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Relay {
    pub(crate) fn new(
        config: Config,
        engine: Engine,
        snapshot: Snapshot,
        subscribers: Arc<Subscribers>,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let mut index = Index::default();
        for s in snapshot.slots {
            let meta =
                SlotMeta { owner_hash: s.owner_hash, last_seq: s.last_seq, floor: s.floor, streams: 0, room: s.room };
            index.slots.insert(s.id, meta);
        }
        for g in snapshot.grants {
            index.grants.insert(g.token_hash, g);
        }
        let active = index.grants.values().filter(|g| !g.revoked).count() as u64;
        metrics.grants_active.store(active, std::sync::atomic::Ordering::Relaxed);
        metrics.slots_total.store(index.slots.len() as u64, std::sync::atomic::Ordering::Relaxed);
        metrics.nodes_live.store(1, std::sync::atomic::Ordering::Relaxed);
        Self {
            ip_limit: Limiter::new(config.ip_rate),
            token_limit: Limiter::new(config.token_rate),
            slot_limit: Limiter::new(config.slot_rate),
            connections: Arc::default(),
            rendezvous: Mutex::new(Rendezvous::default()),
            config,
            engine,
            index: Mutex::new(index),
            subscribers,
            metrics,
            shutdown,
            incarnation: random_id(8),
            shared: false,
            node: String::new(),
            nameplates: None,
        }
    }

    /// On a shared store (other nodes write to it), brings the index up to date for a
    /// request on `slot` with `token`: the slot's row when this node does not know it or
    /// `bounds` are needed (another node made it, or moved its cursors), and the token's
    /// grant when this node does not know it (another node minted it). Revocations made
    /// elsewhere are re-checked by the append's transaction and swept for reads. On one
    /// node the index is the authority: nothing to do.
    pub(crate) async fn sync_index(&self, slot: &str, token: Option<&str>, bounds: bool) -> Result<(), ApiError> {
        if !self.shared {
            return Ok(());
        }
        let hash = token.map(|t| sha256(t.as_bytes()));
        let (known_slot, known_token) = {
            let index = lock(&self.index);
            let meta = index.slots.get(slot);
            let known_token =
                hash.is_none_or(|h| index.grants.contains_key(&h) || meta.is_some_and(|m| same(&m.owner_hash, &h)));
            (meta.is_some(), known_token)
        };
        if (!known_slot || bounds)
            && let Some(row) = self.engine.slot(slot).await?
        {
            let mut index = lock(&self.index);
            let meta = index.slots.entry(row.id).or_insert(SlotMeta {
                owner_hash: row.owner_hash,
                last_seq: 0,
                floor: 0,
                streams: 0,
                room: row.room,
            });
            meta.last_seq = meta.last_seq.max(row.last_seq);
            meta.floor = meta.floor.max(row.floor);
        }
        if let (false, Some(hash)) = (known_token, hash)
            && let Some(g) = self.engine.grant(hash).await?
        {
            lock(&self.index).grants.insert(hash, g);
        }
        Ok(())
    }

    /// Identifies the bearer of `token` with respect to `slot`.
    pub(crate) fn caller(&self, slot: &str, token: Option<&str>) -> Result<Caller, ApiError> {
        let token = token.ok_or_else(ApiError::unauthorized)?;
        let hash = sha256(token.as_bytes());
        let index = lock(&self.index);
        let meta = index.slots.get(slot);
        if meta.is_some_and(|m| same(&m.owner_hash, &hash)) {
            return Ok(Caller::Owner);
        }
        match index.grants.get(&hash) {
            Some(g) if g.slot != slot => Err(ApiError::forbidden("this token is for another slot")),
            Some(g) if meta.is_none() => Err(ApiError::not_found(format!("no slot `{}` on this relay", g.slot))),
            Some(g) => Ok(Caller::Grant(g.clone())),
            None if meta.is_none() => Err(ApiError::not_found("no such slot on this relay")),
            None => Err(ApiError::unauthorized()),
        }
    }

    /// Requires the owner token of `slot`.
    pub(crate) fn owner(&self, slot: &str, token: Option<&str>) -> Result<(), ApiError> {
        match self.caller(slot, token)? {
            Caller::Owner => Ok(()),
            Caller::Grant(g) => Err(ApiError::forbidden(match g.kind {
                GrantKind::Send => "a send token can only append; this needs the slot's owner token",
                GrantKind::Intro => "an intro token can only append once; this needs the slot's owner token",
                GrantKind::Member | GrantKind::Admin => {
                    "a member token appends to, lists and streams its room; this needs the room's owner token"
                }
            })),
        }
    }

    /// Whether `slot` is a room (`None`: no such slot).
    pub(crate) fn is_room(&self, slot: &str) -> Option<bool> {
        lock(&self.index).slots.get(slot).map(|m| m.room)
    }

    /// Refuses a grant that no longer grants anything: revoked, expired, used up.
    pub(crate) fn live(&self, g: &GrantRow) -> Result<(), ApiError> {
        if g.revoked {
            let what = if g.kind.reads_room() {
                "this token was revoked: you were removed from the room"
            } else {
                "this token was revoked by the slot's owner; you are no longer paired"
            };
            return Err(ApiError::forbidden(what));
        }
        if g.expires_at.is_some_and(|e| self.now_ms() >= e) {
            return Err(ApiError::new(ErrorCode::Gone, "this token has expired; ask for a new invite"));
        }
        if g.kind == GrantKind::Intro && g.uses_left == Some(0) {
            return Err(ApiError::new(ErrorCode::Gone, "this invite was already used; ask for a new one"));
        }
        Ok(())
    }

    /// Requires a token that may read `slot`: the owner's, or a live member or admin grant
    /// of a room.
    pub(crate) fn reader(&self, slot: &str, token: Option<&str>) -> Result<Reader, ApiError> {
        let token_hash = sha256(token.unwrap_or_default().as_bytes());
        let room = self.is_room(slot).unwrap_or(false);
        match self.caller(slot, token)? {
            Caller::Owner => Ok(Reader { room, token_hash }),
            Caller::Grant(g) if room && g.kind.reads_room() => {
                self.live(&g)?;
                Ok(Reader { room, token_hash })
            }
            Caller::Grant(_) => self.owner(slot, token).map(|()| Reader { room, token_hash }),
        }
    }

    /// Requires a token that may mint a grant of `kind` on `slot`: the owner (send and
    /// intro on a mailbox, member and admin on a room), or a room's admin (members only).
    pub(crate) fn minter(&self, slot: &str, token: Option<&str>, kind: GrantKind) -> Result<(), ApiError> {
        let room = self.is_room(slot).unwrap_or(false);
        if room != kind.reads_room() {
            return Err(ApiError::bad_request(if room {
                "a room slot takes member and admin grants only"
            } else {
                "member and admin grants exist on room slots only"
            }));
        }
        match self.caller(slot, token)? {
            Caller::Owner => Ok(()),
            Caller::Grant(g) if g.kind == GrantKind::Admin && kind == GrantKind::Member => self.live(&g),
            Caller::Grant(g) if g.kind == GrantKind::Admin => {
                self.live(&g)?;
                Err(ApiError::forbidden("an admin mints member grants only; admins are the owner's to make"))
            }
            Caller::Grant(_) => self.owner(slot, token),
        }
    }

    /// Requires a token that may revoke grant `id` of `slot`: the owner, or a room's admin
    /// revoking a member grant.
    pub(crate) fn revoker(&self, slot: &str, token: Option<&str>, id: &str) -> Result<(), ApiError> {
        match self.caller(slot, token)? {
            Caller::Owner => Ok(()),
            Caller::Grant(g) if g.kind == GrantKind::Admin => {
                self.live(&g)?;
                let target = lock(&self.index).grants.values().find(|t| t.id == id && t.slot == slot).map(|t| t.kind);
                match target {
                    Some(GrantKind::Member) => Ok(()),
                    Some(_) => Err(ApiError::forbidden("an admin revokes member grants only")),
                    None => Err(ApiError::not_found("no such grant on this slot")),
                }
            }
            Caller::Grant(_) => self.owner(slot, token),
        }
    }

    /// Now, by the configured clock.
    pub(crate) fn now_ms(&self) -> u64 {
        self.config.clock.now().0
    }

    /// Grants that expired before `before`: a retention period after its expiry a grant is
    /// forgotten (until then its token still fails with "expired", not "unknown").
    pub(crate) fn dead_grants(&self, before: u64) -> Vec<String> {
        lock(&self.index)
            .grants
            .values()
            .filter(|g| g.expires_at.is_some_and(|at| at < before))
            .map(|g| g.id.clone())
            .collect()
    }

    /// The slot's cursor bounds.
    pub(crate) fn bounds(&self, slot: &str) -> Option<(u64, u64)> {
        lock(&self.index).slots.get(slot).map(|m| (m.floor, m.last_seq))
    }

    pub(crate) fn rate_limit_ip(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.ip_limit.check(ip, Instant::now()).map_err(|secs| {
            crate::metrics::Metrics::inc(&self.metrics.rate_limited_total);
            ApiError::rate_limited(secs)
        })
    }

    pub(crate) fn rate_limit_token(&self, hash: Hash) -> Result<(), ApiError> {
        self.token_limit.check(hash, Instant::now()).map_err(|secs| {
            crate::metrics::Metrics::inc(&self.metrics.rate_limited_total);
            ApiError::rate_limited(secs)
        })
    }

    /// Mirrors a committed write into the index.
    pub(crate) fn observe(&self, op: &Op, outcome: &Outcome) {
        let mut index = lock(&self.index);
        match (op, outcome) {
            (Op::CreateSlot { id, owner_hash, room, .. }, Outcome::Done) => {
                let meta = SlotMeta { owner_hash: *owner_hash, last_seq: 0, floor: 0, streams: 0, room: *room };
                index.slots.insert(id.clone(), meta);
                self.metrics.slots_total.store(index.slots.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
            (Op::PutGrant(g), Outcome::Done) => {
                let fresh = index.grants.insert(g.token_hash, g.clone()).is_none();
                self.metrics.grants_active.fetch_add(u64::from(fresh), std::sync::atomic::Ordering::Relaxed);
            }
            (Op::RevokeGrant { id, slot }, Outcome::Done) => {
                if let Some(g) = index.grants.values_mut().find(|g| &g.id == id && !g.revoked) {
                    g.revoked = true;
                    Metrics::dec(&self.metrics.grants_active);
                    // A removed member's open streams end with the revocation.
                    let hash = g.token_hash;
                    if let Some(list) = lock(&self.subscribers).get_mut(slot) {
                        list.retain(|(h, _)| *h != hash);
                    }
                }
            }
            (Op::PurgeGrants { ids }, Outcome::Done) => {
                index.grants.retain(|_, g| {
                    let purged = ids.contains(&g.id);
                    if purged && !g.revoked {
                        Metrics::dec(&self.metrics.grants_active);
                    }
                    !purged
                });
                self.metrics.grants_purged_total.fetch_add(ids.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
            (Op::Append { slot, .. }, Outcome::AppendedEvicting { seq, floor, evicted }) => {
                if let Some(meta) = index.slots.get_mut(slot) {
                    meta.last_seq = meta.last_seq.max(*seq);
                    meta.floor = meta.floor.max(*floor);
                }
                self.metrics.room_evicted_total.fetch_add(*evicted, std::sync::atomic::Ordering::Relaxed);
            }
            (Op::Append { slot, consume_grant, .. }, Outcome::Appended { seq, duplicate: false }) => {
                if let Some(meta) = index.slots.get_mut(slot) {
                    meta.last_seq = meta.last_seq.max(*seq);
                }
                if let Some(id) = consume_grant
                    && let Some(g) = index.grants.values_mut().find(|g| &g.id == id)
                {
                    g.uses_left = g.uses_left.map(|u| u.saturating_sub(1));
                }
            }
            (Op::Ack { slot, .. }, Outcome::Acked { floor, .. }) => {
                if let Some(meta) = index.slots.get_mut(slot) {
                    meta.floor = meta.floor.max(*floor);
                }
            }
            (Op::Expire { .. }, Outcome::Expired { floors }) => {
                for (slot, floor) in floors {
                    if let Some(meta) = index.slots.get_mut(slot) {
                        meta.floor = meta.floor.max(*floor);
                    }
                }
            }
            _ => {}
        }
    }
}

/// One connection's place in its client IP's share of connections; given back on drop.
#[derive(Debug)]
pub(crate) struct IpShare {
    table: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl IpShare {
    /// A place for one more connection from `ip`, unless it holds its share already.
    pub(crate) fn take(relay: &Relay, ip: IpAddr) -> Option<Self> {
        let mut open = lock(&relay.connections);
        let held = open.entry(ip).or_insert(0);
        if *held >= relay.config.max_connections_per_ip {
            return None;
        }
        *held += 1;
        Some(Self { table: relay.connections.clone(), ip })
    }
}

impl Drop for IpShare {
    fn drop(&mut self) {
        let mut open = lock(&self.table);
        if let Some(held) = open.get_mut(&self.ip) {
            *held -= 1;
            if *held == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Wakes the streams of `slot` (every stream with `None`) to read past their cursors. A
/// stream whose queue is full has reading to do already.
pub(crate) fn wake(subscribers: &Subscribers, slot: Option<&str>) {
    let subs = lock(subscribers);
    let lists: Vec<&Vec<(Hash, mpsc::Sender<Live>)>> = match slot {
        Some(slot) => subs.get(slot).into_iter().collect(),
        None => subs.values().collect(),
    };
    for (_, tx) in lists.into_iter().flatten() {
        let _ = tx.try_send(Live::Wake);
    }
}

/// Fans a committed envelope out to the slot's live subscribers (store thread).
pub(crate) fn fan_out(subscribers: &Subscribers, slot: &str, stored: Stored) {
    let mut subs = lock(subscribers);
    if let Some(list) = subs.get_mut(slot) {
        let stored = Arc::new(stored);
        list.retain(|(_, tx)| tx.try_send(Live::Envelope(stored.clone())).is_ok());
        if list.is_empty() {
            subs.remove(slot);
        }
    }
}

/// A fresh random identifier: `bytes` random bytes as base64url.
pub(crate) fn random_id(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut buf);
    wire_core::proto::b64::encode(buf)
}

/// The envelope body of an append, as stored.
pub(crate) fn stored_from(op: &Op, seq: u64) -> Option<Stored> {
    match op {
        Op::Append { lane, envelope, now, .. } => {
            Some(Stored { seq, lane: *lane, envelope: Bytes::clone(envelope), received_at: *now })
        }
        _ => None,
    }
}
