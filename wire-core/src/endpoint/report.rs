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

/// `wire pending`.
#[derive(Debug, Serialize)]
pub struct PendingReport {
    /// Strangers who asked to pair, waiting for the operator.
    pub requests: Vec<PendingRequest>,
    /// Our own requests in flight.
    pub outgoing: Vec<OutgoingRequest>,
    /// Pairing answers parked in the outbox, not delivered yet.
    pub answers: Vec<WaitingAnswer>,
    /// Invites we issued that can still be redeemed.
    pub invites_open: usize,
}

/// A stranger's pair request.
#[derive(Debug, Serialize)]
pub struct PendingRequest {
    /// Who asked.
    pub from: Face,
    /// Their note (peer-authored text).
    pub note: Option<String>,
    /// When it arrived.
    pub received_at: UnixMillis,
}

/// How we asked to pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Flow {
    /// We redeemed their invite.
    Invite,
    /// We dialed their handle.
    Dial,
}

/// One of our pair requests in flight.
#[derive(Debug, Serialize)]
pub struct OutgoingRequest {
    /// Whom we asked.
    pub to: Face,
    /// How.
    pub flow: Flow,
}

/// A parked pairing answer.
#[derive(Debug, Serialize)]
pub struct WaitingAnswer {
    /// The peer it answers.
    pub to: Face,
    /// Failed deliveries so far.
    pub attempts: u32,
    /// The last failure.
    pub last_error: Option<String>,
    /// Given up (unpinned, grant revoked) after this.
    pub expires_at: UnixMillis,
}

/// The operator's decision on a pair request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Paired.
    Accepted,
    /// Declined; nothing pinned.
    Rejected,
    /// A parked answer given up: unpinned, grant revoked.
    Dropped,
}

/// Where an accepted request's answer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerState {
    /// The dialer's relay took it.
    Delivered,
    /// Parked in the outbox, retried at every sync.
    Queued,
}

/// `wire accept <nick>` / `wire reject <nick>`.
#[derive(Debug, Serialize)]
pub struct DecisionReport {
    /// The peer decided on.
    pub peer: Face,
    /// What was decided.
    pub decision: Decision,
    /// After an accept, where the answer is.
    pub answer: Option<AnswerState>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pending_and_decision_reports_keep_their_documented_json_shapes() {
        let did = crate::proto::did::Did::parse("did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK").unwrap();
        let face = Face::of(&did);
        let decision = DecisionReport { peer: face.clone(), decision: Decision::Dropped, answer: None };
        let v = serde_json::to_value(&decision).unwrap();
        assert_eq!((v["decision"].as_str(), v["answer"].is_null()), (Some("dropped"), true));
        let accepted =
            DecisionReport { peer: face.clone(), decision: Decision::Accepted, answer: Some(AnswerState::Queued) };
        assert_eq!(serde_json::to_value(&accepted).unwrap()["answer"], "queued");
        let pending = PendingReport {
            requests: vec![PendingRequest { from: face.clone(), note: None, received_at: UnixMillis(1) }],
            outgoing: vec![OutgoingRequest { to: face.clone(), flow: Flow::Dial }],
            answers: vec![WaitingAnswer { to: face, attempts: 2, last_error: None, expires_at: UnixMillis(3) }],
            invites_open: 1,
        };
        let v = serde_json::to_value(&pending).unwrap();
        let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&v), ["answers", "invites_open", "outgoing", "requests"]);
        assert_eq!(keys(&v["requests"][0]), ["from", "note", "received_at"]);
        assert_eq!(v["outgoing"][0]["flow"], "dial");
        assert_eq!(keys(&v["answers"][0]), ["attempts", "expires_at", "last_error", "to"]);
    }
}
