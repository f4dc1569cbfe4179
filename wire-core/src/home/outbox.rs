//! The outbox: envelopes waiting for a relay, one file each (`outbox/<event id>.json`).

use std::fs;

use serde::{Deserialize, Serialize};

use super::{Home, HomeError, io};
use crate::proto::did::Did;
use crate::proto::event::EventId;
use crate::proto::secret::Token;
use crate::proto::time::UnixMillis;

/// An envelope waiting for a relay.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxItem {
    /// Format version.
    pub v: u64,
    /// The event id inside.
    pub event_id: EventId,
    /// The recipient.
    pub to: Did,
    /// Relay base URL.
    pub relay: String,
    /// Slot there.
    pub slot: crate::proto::api::SlotId,
    /// Our send token on it.
    pub token: Token,
    /// Envelope bytes (empty when there was no key to seal to when queued).
    #[serde(with = "crate::proto::b64::bytes")]
    pub envelope: Vec<u8>,
    /// The signed event, for a peer that publishes prekeys: sealed anew at every attempt to
    /// its newest prekey, so nothing waits here sealed to a key that may be deleted first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<crate::proto::signed::Signed>,
    /// When it was queued.
    pub queued_at: UnixMillis,
    /// Failed delivery attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// The last failure.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Not retried before this time (backoff after a failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<UnixMillis>,
    /// Set when this is a pairing answer, parked until it reaches the peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<ParkedAnswer>,
    /// Set when this is a re-introduction after our relay lost our slot: given up (the
    /// peer then needs re-pairing) after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reintro: Option<UnixMillis>,
    /// Set when the event is in the sent log (`wire send`): reaching the relay is recorded
    /// there as `relayed`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub logged: bool,
    /// Set when this carries bookkeeping of the protocol, not a message: our receipt, or
    /// our lineage statements. Not counted as a message waiting or flushed. (Stored as
    /// `receipt`, its first use.)
    #[serde(default, skip_serializing_if = "std::ops::Not::not", rename = "receipt")]
    pub quiet: bool,
}

/// A pairing answer waiting in the outbox: the peer is pinned with `grant_id`, and the
/// answer carries that grant's token. When it expires undelivered (with the invite it
/// answers) or the operator drops it, the grant is revoked and the peer unpinned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedAnswer {
    /// The send grant we minted on our slot for the peer.
    pub grant_id: String,
    /// Given up (grant revoked, peer unpinned) after this time.
    pub expires_at: UnixMillis,
}

impl OutboxItem {
    /// A fresh item carrying `envelope` (event `event_id`) to a pinned peer; `None` when its
    /// card lists no endpoint.
    pub fn to_peer(peer: &super::Peer, event_id: EventId, envelope: Vec<u8>, now: UnixMillis) -> Option<Self> {
        let endpoint = peer.card.body().endpoints.first()?;
        Some(Self {
            v: 1,
            event_id,
            to: peer.card.did().clone(),
            relay: endpoint.relay.clone(),
            slot: endpoint.slot.clone(),
            token: peer.send_token.clone(),
            envelope,
            signed: None,
            queued_at: now,
            attempts: 0,
            last_error: None,
            not_before: None,
            answer: None,
            reintro: None,
            logged: false,
            quiet: false,
        })
    }

    /// The wait before retry number `attempts + 1`: 1 s doubling to 5 minutes.
    pub fn backoff(attempts: u32) -> std::time::Duration {
        std::time::Duration::from_secs(1u64 << attempts.min(9)).min(std::time::Duration::from_secs(300))
    }
}

impl Home {
    /// Queues an envelope. Hold the lock.
    pub fn queue(&self, item: &OutboxItem) -> Result<(), HomeError> {
        let bytes = serde_json::to_vec(item).expect("outbox items serialize");
        self.write_atomic(&self.path("outbox").join(format!("{}.json", item.event_id)), &bytes)
    }

    /// Queued envelopes, oldest first.
    pub fn outbox(&self) -> Result<Vec<OutboxItem>, HomeError> {
        let mut items = Vec::new();
        for path in self.list_dir("outbox")? {
            if path.extension().is_some_and(|e| e == "json") {
                let bytes = fs::read(&path).map_err(io(&path))?;
                let item = serde_json::from_slice(&bytes)
                    .map_err(|e| HomeError::Corrupt { path: path.clone(), detail: e.to_string() })?;
                items.push(item);
            }
        }
        items.sort_by_key(|i: &OutboxItem| i.queued_at);
        Ok(items)
    }

    /// Removes a delivered envelope from the outbox.
    pub fn unqueue(&self, event_id: &EventId) -> Result<(), HomeError> {
        let path = self.path("outbox").join(format!("{event_id}.json"));
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&path)(e)),
            _ => Ok(()),
        }
    }
}
