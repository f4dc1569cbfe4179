//! The sent log: every event we sign and send to a peer, and what became of it
//! (`sent/<did>.jsonl`, one JSON record per line, fsynced; docs/PROTOCOL.md beside the
//! inbox contract). With the inbox it holds both sides of every conversation.
//!
//! Records only ever append: the event when it is sent or queued, `relayed` when a queued
//! one reaches the peer's relay later, `failed` when it cannot be sent, and each signed
//! `receipt` the peer returns. A message's state is the fold of its records; only a
//! receipt, whose signature is the peer's, makes it `delivered` or `read`.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Home, HomeError, io};
use crate::proto::did::Did;
use crate::proto::event::{Event, EventId, Kind};
use crate::proto::signed::Signed;
use crate::proto::time::UnixMillis;

/// What a receipt says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptState {
    /// The event is durably in the recipient's inbox.
    Delivered,
    /// The recipient's agent has read it.
    Read,
}

/// One line of the sent log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SentRecord {
    /// An event we signed: sent to the peer's relay, or queued for it.
    Sent {
        /// The event as signed.
        event: Event,
        /// When.
        at: UnixMillis,
        /// Queued (the relay was unreachable) rather than taken by the relay.
        queued: bool,
    },
    /// A queued event reached the peer's relay.
    Relayed {
        /// The event.
        id: EventId,
        /// When.
        at: UnixMillis,
    },
    /// The event could not be sent.
    Failed {
        /// The event.
        id: EventId,
        /// When.
        at: UnixMillis,
        /// Why.
        reason: String,
    },
    /// The peer's signed receipt for some of our events.
    Receipt {
        /// Delivered or read.
        state: ReceiptState,
        /// The events it covers.
        ids: Vec<EventId>,
        /// When it reached us.
        at: UnixMillis,
        /// The peer's signed control event, so the receipt can be verified again.
        signed: Signed,
    },
}

/// Where a sent event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SentState {
    /// Could not be sent.
    Failed,
    /// Waiting in our outbox for the peer's relay.
    Queued,
    /// On the peer's relay; no receipt yet.
    Sent,
    /// The peer's signed receipt says it is in its inbox.
    Delivered,
    /// The peer's signed receipt says its agent read it.
    Read,
}

/// A sent event and its state (`wire sent`).
#[derive(Debug, Clone, Serialize)]
pub struct SentView {
    /// The event id.
    pub id: EventId,
    /// The recipient.
    pub to: Did,
    /// Its kind.
    pub kind: Kind,
    /// Its body.
    pub body: serde_json::Value,
    /// When we created it.
    pub created_at: UnixMillis,
    /// Where it stands.
    pub state: SentState,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the delivered receipt reached us.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<UnixMillis>,
    /// When the read receipt reached us.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_at: Option<UnixMillis>,
}

impl SentView {
    fn apply(&mut self, record: &SentRecord) {
        match record {
            SentRecord::Sent { .. } => {}
            SentRecord::Relayed { .. } => {
                if self.state < SentState::Sent {
                    self.state = SentState::Sent;
                    self.reason = None;
                }
            }
            SentRecord::Failed { reason, .. } => {
                if self.state <= SentState::Queued {
                    self.state = SentState::Failed;
                    self.reason = Some(reason.clone());
                }
            }
            SentRecord::Receipt { state, at, .. } => {
                let (reached, slot) = match state {
                    ReceiptState::Delivered => (SentState::Delivered, &mut self.delivered_at),
                    ReceiptState::Read => (SentState::Read, &mut self.read_at),
                };
                slot.get_or_insert(*at);
                if self.state < reached {
                    self.state = reached;
                    self.reason = None;
                }
            }
        }
    }
}

impl Home {
    fn sent_path(&self, peer: &Did) -> PathBuf {
        let name = peer.as_str().trim_start_matches("did:key:");
        self.path("sent").join(format!("{name}.jsonl"))
    }

    /// Appends records to a peer's sent log and fsyncs.
    pub fn record_sent(&self, peer: &Did, records: &[SentRecord]) -> Result<(), HomeError> {
        if records.is_empty() {
            return Ok(());
        }
        let path = self.sent_path(peer);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let mut buf = Vec::new();
        for r in records {
            serde_json::to_writer(&mut buf, r).expect("sent records serialize");
            buf.push(b'\n');
        }
        // One write of whole lines on an O_APPEND file: concurrent writers do not interleave.
        let mut file = OpenOptions::new().create(true).append(true).mode(0o600).open(&path).map_err(io(&path))?;
        file.write_all(&buf).and_then(|()| file.sync_all()).map_err(io(&path))
    }

    /// A peer's sent events with their states, oldest first. A torn last line is skipped.
    /// The events we signed to `peer`, as signed, oldest first.
    pub fn sent_events(&self, peer: &Did) -> Result<Vec<Event>, HomeError> {
        let path = self.sent_path(peer);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&path)(e)),
        };
        Ok(text
            .lines()
            .filter_map(|l| match serde_json::from_str::<SentRecord>(l) {
                Ok(SentRecord::Sent { event, .. }) => Some(event),
                _ => None,
            })
            .collect())
    }

    pub fn sent_of(&self, peer: &Did) -> Result<Vec<SentView>, HomeError> {
        let path = self.sent_path(peer);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&path)(e)),
        };
        let mut views: Vec<SentView> = Vec::new();
        let mut index: HashMap<EventId, usize> = HashMap::new();
        for line in text.lines().filter(|l| !l.is_empty()) {
            let Ok(record) = serde_json::from_str::<SentRecord>(line) else { continue };
            let ids: Vec<EventId> = match &record {
                SentRecord::Sent { event, queued, .. } => {
                    index.insert(event.id, views.len());
                    views.push(SentView {
                        id: event.id,
                        to: event.to.clone(),
                        kind: event.kind,
                        body: event.body.clone(),
                        created_at: event.created_at,
                        state: if *queued { SentState::Queued } else { SentState::Sent },
                        reason: None,
                        delivered_at: None,
                        read_at: None,
                    });
                    continue;
                }
                SentRecord::Relayed { id, .. } | SentRecord::Failed { id, .. } => vec![*id],
                SentRecord::Receipt { ids, .. } => ids.clone(),
            };
            for id in ids {
                if let Some(i) = index.get(&id) {
                    views[*i].apply(&record);
                }
            }
        }
        Ok(views)
    }

    /// Sent events to every peer (or one), oldest first, at most the last `limit`.
    pub fn sent(&self, only: Option<&Did>, limit: usize) -> Result<Vec<SentView>, HomeError> {
        let peers: Vec<Did> = match only {
            Some(did) => vec![did.clone()],
            None => self
                .list_dir("sent")?
                .into_iter()
                .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
                .filter_map(|p| Did::parse(&format!("did:key:{}", p.file_stem()?.to_str()?)).ok())
                .collect(),
        };
        let mut all = Vec::new();
        for did in peers {
            all.extend(self.sent_of(&did)?);
        }
        all.sort_by_key(|v| v.created_at);
        let skip = all.len().saturating_sub(limit);
        Ok(all.split_off(skip))
    }
}
