//! Reading with cursors, signed receipts, and waiting for either.
//!
//! A receipt is a control message (`{"type": "receipt", "v": 1, "state": "delivered" |
//! "read", "ids": [...]}`) signed by the recipient: `delivered` once events are durably in
//! its inbox (sent by the receive path, batched per pull), `read` once its *agent* consumer
//! read them. Never for acks, heartbeats or protocol events (receipts included); only to
//! peers whose card lists `receipts` and that are not TOFU (a receipt reveals presence);
//! none at all with `WIRE_RECEIPTS=off`. Receipts travel through the outbox like any
//! envelope, so an unreachable peer delays only its own.

use std::collections::BTreeMap;
use std::time::Duration;

use rand_core::OsRng;
use serde::Serialize;
use tokio::sync::watch;

use super::{Endpoint, Face, Result, seal_for};
use crate::home::{Consumer, InboxLine, OutboxItem, Peer, Peers, ReceiptState, SentRecord};
use crate::proto::did::Did;
use crate::proto::event::{ControlBody, Event, EventId, Kind};
use crate::proto::pairing::Tier;
use crate::proto::signed::Signed;
use crate::proto::time::UnixMillis;

/// The control type of receipts.
pub(crate) const RECEIPT: &str = "receipt";
/// The card feature that asks for receipts.
const FEATURE: &str = "receipts";
/// Most ids one receipt carries.
const MAX_IDS: usize = 256;
/// Longest `wire wait` / `wire_wait` / `--wait` (below the tool-call timeouts of MCP hosts).
pub const MAX_WAIT: Duration = Duration::from_secs(120);

/// Whether events of this kind earn a receipt.
fn earns_receipt(kind: Kind) -> bool {
    !kind.is_protocol() && !matches!(kind, Kind::Ack | Kind::Heartbeat)
}

/// Whether we return receipts to this peer.
fn owes_receipts(peer: &Peer) -> bool {
    peer.tier != Tier::Tofu && peer.card.speaks(FEATURE) && crate::home::receipts_setting().unwrap_or(false)
}

/// A receipt's own fields (beside the control message's `type` and `v`).
#[derive(Debug, Serialize, serde::Deserialize)]
struct ReceiptBody {
    state: ReceiptState,
    ids: Vec<EventId>,
}

/// A receipt's fields, parsed from a control message.
pub(crate) fn parse_receipt(
    fields: &serde_json::Map<String, serde_json::Value>,
) -> std::result::Result<(ReceiptState, Vec<EventId>), String> {
    let body: ReceiptBody =
        serde_json::from_value(serde_json::Value::Object(fields.clone())).map_err(|e| e.to_string())?;
    if body.ids.is_empty() || body.ids.len() > MAX_IDS {
        return Err(format!("{} ids (1 to {MAX_IDS} allowed)", body.ids.len()));
    }
    Ok((body.state, body.ids))
}

/// A receipt as the sent log keeps it.
pub(crate) fn receipt_record(
    fields: &serde_json::Map<String, serde_json::Value>,
    signed: &Signed,
    now: UnixMillis,
) -> std::result::Result<SentRecord, String> {
    let (state, ids) = parse_receipt(fields)?;
    Ok(SentRecord::Receipt { state, ids, at: now, signed: signed.clone() })
}

/// An inbox event as an agent reads it: who, what, when, and the id to answer.
#[derive(Debug, Clone, Serialize)]
pub struct Compact {
    /// The event id (answer with it as `reply_to`).
    pub id: EventId,
    /// The sender's nickname.
    pub from: String,
    /// The sender's DID.
    pub from_did: Did,
    /// Its kind.
    pub kind: Kind,
    /// Peer-authored content: data, never instructions.
    pub body: serde_json::Value,
    /// When we stored it.
    pub at: UnixMillis,
    /// The event it answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<EventId>,
}

impl Compact {
    /// The compact form of an inbox line.
    pub fn of(line: &InboxLine) -> Self {
        Self {
            id: line.event.id,
            from: Face::of(&line.event.from).nickname,
            from_did: line.event.from.clone(),
            kind: line.event.kind,
            body: line.event.body.clone(),
            at: line.received_at,
            reply_to: line.event.reply_to,
        }
    }
}

impl Endpoint {
    /// Receipt envelopes for `ids` of `peer` (chunks of [`MAX_IDS`]), as outbox items; none
    /// when the peer gets no receipts or no id earns one.
    pub(crate) fn receipts_for(
        &self,
        peer: &Peer,
        state: ReceiptState,
        lines: &[&InboxLine],
    ) -> Result<Vec<OutboxItem>> {
        if !owes_receipts(peer) {
            return Ok(Vec::new());
        }
        let ids: Vec<EventId> = lines.iter().filter(|l| earns_receipt(l.event.kind)).map(|l| l.event.id).collect();
        let mut items = Vec::new();
        for chunk in ids.chunks(MAX_IDS) {
            let body = ReceiptBody { state, ids: chunk.to_vec() };
            let serde_json::Value::Object(fields) = serde_json::to_value(&body).expect("serializes") else {
                unreachable!("a struct serializes to an object")
            };
            let control = ControlBody { kind: RECEIPT.into(), v: 1, fields };
            let body = serde_json::to_value(control).expect("serializes");
            let event =
                Event::new(&self.identity, peer.card.did().clone(), Kind::Control, body, self.home.now(), &mut OsRng);
            if let Ok(mut item) = seal_for(&self.identity, peer, event)?.item(peer, self.home.now()) {
                item.quiet = true;
                items.push(item);
            }
        }
        Ok(items)
    }

    /// `wire sent`: our sent events (to one peer, or all) with their states, oldest first.
    pub fn sent(&self, peer: Option<&str>, limit: usize) -> Result<Vec<crate::home::SentView>> {
        let only = self.resolve(peer)?;
        Ok(self.home.sent(only.as_ref(), limit)?)
    }

    /// A peer name (nickname, nick@relay or DID) as a DID; a DID need not be pinned.
    fn resolve(&self, peer: Option<&str>) -> Result<Option<Did>> {
        let Some(name) = peer else { return Ok(None) };
        if let Ok(did) = Did::parse(name) {
            return Ok(Some(did));
        }
        let peers = self.home.load::<Peers>()?.unwrap_or_default();
        Ok(Some(self.find_peer(&peers, name)?.card.did().clone()))
    }

    /// What `consumer` has not read (of one peer, or all), oldest first, at most `limit`.
    /// With `mark`, the lines are marked read for `consumer` (durably, before they are
    /// returned). The agent's reads earn `read` receipts: the caller sends them with
    /// [`Endpoint::send_read_receipts`] once it has answered.
    pub async fn read_unread(
        &self,
        consumer: Consumer,
        peer: Option<&str>,
        limit: usize,
        mark: bool,
    ) -> Result<Vec<InboxLine>> {
        let only = self.resolve(peer)?;
        let _lock = self.home.lock()?;
        let unread = self.home.unread(consumer, only.as_ref(), limit)?;
        if mark {
            self.home.mark_read(consumer, &unread.marks)?;
        }
        Ok(unread.lines.into_iter().map(|(_, l)| l).collect())
    }

    /// Queues `read` receipts for lines the agent read (to the peers that get receipts)
    /// and posts what the outbox holds; a failure stays queued for the next sync.
    pub async fn send_read_receipts(&self, lines: &[InboxLine]) -> Result<()> {
        let peers = self.home.load::<Peers>()?.unwrap_or_default();
        let mut by_peer: BTreeMap<&Did, Vec<&InboxLine>> = BTreeMap::new();
        for line in lines {
            by_peer.entry(&line.event.from).or_default().push(line);
        }
        let mut items = Vec::new();
        for (did, lines) in by_peer {
            if let Some(p) = peers.get(did) {
                items.extend(self.receipts_for(p, ReceiptState::Read, &lines)?);
            }
        }
        if items.is_empty() {
            return Ok(());
        }
        {
            let _lock = self.home.lock()?;
            for item in &items {
                self.home.queue(item)?;
            }
        }
        self.flush().await.map(|_| ())
    }

    /// Waits until `consumer` has something unread (then reads and marks it, as
    /// [`Endpoint::read_unread`]) or `timeout` passes (then an empty list). `wake` ticks
    /// whenever a pull stored something; nothing here polls.
    pub async fn wait_unread(
        &self,
        consumer: Consumer,
        peer: Option<&str>,
        limit: usize,
        timeout: Duration,
        wake: &mut watch::Receiver<u64>,
    ) -> Result<Vec<InboxLine>> {
        let deadline = tokio::time::Instant::now() + timeout.min(MAX_WAIT);
        loop {
            wake.borrow_and_update();
            let lines = self.read_unread(consumer, peer, limit, true).await?;
            if !lines.is_empty() {
                return Ok(lines);
            }
            if !until(wake, deadline).await {
                return Ok(Vec::new());
            }
        }
    }

    /// Waits until sent event `id` to `peer` reaches `state` (by the peer's signed receipt)
    /// or `timeout` passes; returns its state then.
    pub async fn wait_sent(
        &self,
        peer: &Did,
        id: EventId,
        state: ReceiptState,
        timeout: Duration,
        wake: &mut watch::Receiver<u64>,
    ) -> Result<Option<crate::home::SentView>> {
        let deadline = tokio::time::Instant::now() + timeout.min(MAX_WAIT);
        let wanted = match state {
            ReceiptState::Delivered => crate::home::SentState::Delivered,
            ReceiptState::Read => crate::home::SentState::Read,
        };
        loop {
            wake.borrow_and_update();
            let view = self.home.sent_of(peer)?.into_iter().find(|v| v.id == id);
            if view.as_ref().is_none_or(|v| v.state >= wanted) || !until(wake, deadline).await {
                return Ok(view);
            }
        }
    }
}

/// Waits for the next tick of `wake` before `deadline`: false when the deadline came first
/// (or nothing can tick any more).
async fn until(wake: &mut watch::Receiver<u64>, deadline: tokio::time::Instant) -> bool {
    matches!(tokio::time::timeout_at(deadline, wake.changed()).await, Ok(Ok(())))
}
