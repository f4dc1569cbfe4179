//! What endpoint operations return: typed reports that derive `Serialize` (the CLI
//! renders them, `--json` prints them).

use serde::Serialize;

use crate::proto::character::Character;
use crate::proto::did::Did;
use crate::proto::pairing::Tier;
use crate::proto::time::UnixMillis;

/// How an agent looks, for output.
#[derive(Debug, Clone, Serialize)]
pub struct Face {
    /// DID.
    pub did: String,
    /// `adjective-noun`.
    pub nickname: String,
    /// One emoji.
    pub emoji: String,
    /// `#rrggbb`.
    pub color: String,
    /// xterm-256 colour.
    pub ansi256: u8,
    /// Fingerprint for out-of-band comparison.
    pub fingerprint: String,
}

impl Face {
    /// The face of `did`.
    pub fn of(did: &Did) -> Self {
        let c = Character::of(did);
        Self {
            did: did.to_string(),
            nickname: c.nickname(),
            emoji: c.emoji.to_owned(),
            color: c.palette.primary.hex(),
            ansi256: c.palette.ansi256,
            fingerprint: did.fingerprint(),
        }
    }
}

/// `wire init` / `wire up`.
#[derive(Debug, Serialize)]
pub struct InitReport {
    /// False when everything already existed.
    pub created: bool,
    /// Who we are.
    #[serde(flatten)]
    pub face: Face,
    /// Relay URL.
    pub relay: String,
    /// Our slot.
    pub slot: String,
    /// Claimed handle.
    pub handle: Option<String>,
    /// Anything the operator should know.
    pub notes: Vec<String>,
}

/// `wire whoami`.
#[derive(Debug, Serialize)]
pub struct Whoami {
    /// Who we are.
    #[serde(flatten)]
    pub face: Face,
    /// Relay URL.
    pub relay: String,
    /// Our slot.
    pub slot: String,
    /// Claimed handle.
    pub handle: Option<String>,
    /// WIRE_HOME in use.
    pub home: String,
}

/// A pinned peer, for output.
#[derive(Debug, Serialize)]
pub struct PeerReport {
    /// Its face.
    #[serde(flatten)]
    pub face: Face,
    /// `VERIFIED` or `LOCAL`.
    pub tier: Tier,
    /// When pairing completed.
    pub paired_at: UnixMillis,
    /// Last event from it.
    pub last_contact: Option<UnixMillis>,
    /// Its relay.
    pub relay: Option<String>,
}

/// `wire send`.
#[derive(Debug, Serialize)]
pub struct SendReport {
    /// `delivered` or `queued`.
    pub verdict: &'static str,
    /// The event id.
    pub event_id: String,
    /// The recipient.
    pub to: Face,
    /// The relay's sequence number, when delivered.
    pub seq: Option<u64>,
    /// The relay address that carried it (Unix socket, loopback, LAN or remote).
    pub via: Option<String>,
    /// Why it was queued.
    pub reason: Option<String>,
}

/// `wire pull`.
#[derive(Debug, Default, Serialize)]
pub struct PullReport {
    /// Events appended to the inbox.
    pub received: usize,
    /// Duplicates dropped (already in the inbox).
    pub duplicates: usize,
    /// Peers pinned by this pull.
    pub paired: Vec<Face>,
    /// Strangers who asked to pair.
    pub requests: Vec<Face>,
    /// Pairings the other side declined.
    pub declined: Vec<Face>,
    /// Peers that unpaired us.
    pub closed: Vec<Face>,
    /// Inbound events refused (including `unsupported`).
    pub rejected: usize,
    /// Of those, events of a kind (or control type) from a newer peer: not readable by
    /// this build, recorded in `wire status`.
    pub unsupported: usize,
    /// Queued envelopes delivered.
    pub flushed: usize,
    /// Queued envelopes still waiting.
    pub still_queued: usize,
    /// Pairing answers parked in the outbox, not delivered yet (`wire pending` lists them).
    pub answers_waiting: usize,
    /// Relay cursor after the pull.
    pub cursor: u64,
}

impl PullReport {
    /// Counts an outbox item that is still waiting.
    pub(crate) fn count_waiting(&mut self, item: &crate::home::OutboxItem) {
        if item.answer.is_some() {
            self.answers_waiting += 1;
        } else {
            self.still_queued += 1;
        }
    }
}
