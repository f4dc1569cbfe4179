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
    /// Our lineage: rotations so far and the key we sign with now.
    pub lineage: LineageView,
}

/// A pinned peer, for output.
#[derive(Debug, Serialize)]
pub struct PeerReport {
    /// Its face.
    #[serde(flatten)]
    pub face: Face,
    /// `VERIFIED`, `TOFU` or `LOCAL`.
    pub tier: Tier,
    /// When pairing completed.
    pub paired_at: UnixMillis,
    /// Last event from it.
    pub last_contact: Option<UnixMillis>,
    /// Its relay.
    pub relay: Option<String>,
    /// Its identity lineage as we follow it.
    pub lineage: LineageView,
}

/// A lineage as `wire peers` and `wire whois` show it: the face is the inception DID's,
/// the key below is the one it signs with now.
#[derive(Debug, Clone, Serialize)]
pub struct LineageView {
    /// Rotations so far (0: its first key).
    pub seq: u64,
    /// The fingerprint of its current signing key (the face's fingerprint until it rotates).
    pub key_fingerprint: String,
    /// `active`, `frozen` (two different rotations were seen: pair again) or `revoked`.
    pub standing: &'static str,
    /// Whether it committed to its next key (its statements reached us): only then can a
    /// rotation be checked.
    pub committed: bool,
}

impl LineageView {
    /// The view of a pin.
    pub fn of(pin: &crate::proto::lineage::Pin) -> Self {
        use crate::proto::lineage::Standing;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&pin.key)
            .map(|k| crate::proto::did::Did::from_verifying_key(&k).fingerprint())
            .unwrap_or_default();
        LineageView {
            seq: pin.seq,
            key_fingerprint: key,
            standing: match pin.standing {
                Standing::Active => "active",
                Standing::Frozen { .. } => "frozen",
                Standing::Revoked { .. } => "revoked",
            },
            committed: pin.next.is_some(),
        }
    }
}

/// What became of a sent message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The peer's relay stored it. Only the peer's signed receipt says more (`wire sent`).
    Sent,
    /// In the outbox, sent at a later sync.
    Queued,
}

/// `wire send`.
#[derive(Debug, Serialize)]
pub struct SendReport {
    /// Delivered or queued.
    pub verdict: Verdict,
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
    /// Envelopes from blocked identities, dropped (`wire blocked` counts them per identity).
    pub blocked: usize,
    /// Of those, events of a kind (or control type) from a newer peer: not readable by
    /// this build, recorded in `wire status`.
    pub unsupported: usize,
    /// Queued envelopes delivered.
    pub flushed: usize,
    /// Queued envelopes still waiting.
    pub still_queued: usize,
    /// Pairing answers parked in the outbox, not delivered yet (`wire pending` lists them).
    pub answers_waiting: usize,
    /// Peers whose re-introduction (a new card and send token after their relay lost
    /// their mailbox) was accepted.
    pub reintroduced: Vec<Face>,
    /// Peers whose key rotation was followed (same face, new keys).
    pub rotated: Vec<Face>,
    /// Peers whose pin froze: two different rotations were seen; pair again.
    pub frozen: Vec<Face>,
    /// Peers whose identity was revoked by its owner.
    pub revoked: Vec<Face>,
    /// The relay restarted, or its store was replaced or lost data, since the last pull
    /// (another store incarnation, or our cursor outside its window): what it holds was read
    /// again from its floor, repeats dropped against the whole inbox.
    pub reread: bool,
    /// Relay cursor after the pull.
    pub cursor: u64,
    /// Mailboxes we moved from that could not be read this time (relay: error); they block
    /// nothing else.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mailbox_errors: Vec<String>,
    /// What rooms did: joined, received, committed, failing.
    pub rooms: super::rooms::RoomSyncReport,
}

impl PullReport {
    /// Counts an outbox item that is still waiting.
    pub(crate) fn count_waiting(&mut self, item: &crate::home::OutboxItem) {
        if item.answer.is_some() {
            self.answers_waiting += 1;
        } else if !item.quiet {
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

/// `wire whois`: where the card came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WhoisSource {
    /// Our pinned copy.
    Pinned,
    /// The relay's handle directory (verified).
    Directory,
    /// Only the DID was given and it is not pinned: its face, nothing more.
    Did,
}

/// `wire whois`.
#[derive(Debug, Serialize)]
pub struct WhoisReport {
    /// Its face.
    pub face: Face,
    /// Where the card came from.
    pub source: WhoisSource,
    /// Whether we have pinned this identity.
    pub pinned: bool,
    /// Its card's addresses (with a card).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Vec<crate::proto::card::Endpoint>>,
    /// When its card was issued (with a card).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card_created_at: Option<UnixMillis>,
    /// Pinned peers that wear the same nickname (compare fingerprints).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nickname_collides_with: Option<Vec<String>>,
    /// Its lineage: as pinned, or as its card alone shows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lineage: Option<LineageView>,
}

/// `wire invite`.
#[derive(Debug, Serialize)]
pub struct InviteReport {
    /// The invite URL (a secret until redeemed).
    pub url: String,
    /// How many times it may be redeemed.
    pub uses: u32,
    /// When it stops working.
    pub expires_at: UnixMillis,
}

/// Where a pairing we asked for stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    /// Asked; the other side answers at its next sync (or after its operator's consent).
    Requested,
    /// We were paired already: nothing was sent.
    AlreadyPaired,
}

/// `wire accept <URL>` and `wire dial`.
#[derive(Debug, Serialize)]
pub struct RequestReport {
    /// Where it stands.
    pub state: RequestState,
    /// The other side.
    pub peer: Face,
}

/// `wire forget`.
#[derive(Debug, Serialize)]
pub struct ForgetReport {
    /// The peer unpinned.
    pub forgotten: Face,
    /// Whether it was told (a `close` reached its relay).
    pub told: bool,
}

/// Whether a relay answers.
#[derive(Debug, Serialize)]
pub struct Reachability {
    /// It answered.
    pub ok: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Whether our relay still knows our slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mailbox {
    /// It does.
    Ok,
    /// It does not: its data was lost or reset (`wire up --reregister`).
    Gone,
    /// Not known: the relay did not answer.
    Unknown,
}

/// `wire status`: our relay.
#[derive(Debug, Serialize)]
pub struct RelayStatus {
    /// Its address.
    pub url: String,
    /// Whether it answers.
    pub reachable: Reachability,
    /// Whether it knows our slot.
    pub mailbox: Mailbox,
    /// Our cursor there.
    pub cursor: u64,
}

/// `wire status`: another mailbox of ours (a spare, or one we moved from).
#[derive(Debug, Serialize)]
pub struct OtherMailbox {
    /// `spare` or `moved_from`.
    pub role: &'static str,
    /// The relay and our mailbox there.
    #[serde(flatten)]
    pub status: RelayStatus,
}

/// An outbox item that failed at least once.
#[derive(Debug, Serialize)]
pub struct FailingItem {
    /// The recipient's nickname.
    pub to: String,
    /// Failed attempts.
    pub attempts: u32,
    /// The last failure.
    pub last_error: Option<String>,
}

/// `wire status`: the outbox.
#[derive(Debug, Serialize)]
pub struct OutboxStatus {
    /// Items waiting.
    pub queued: usize,
    /// Those that failed at least once.
    pub failing: Vec<FailingItem>,
}

/// `wire status`: pairings in progress.
#[derive(Debug, Serialize)]
pub struct PendingCounts {
    /// Strangers waiting for consent.
    pub requests: usize,
    /// Our requests in flight.
    pub outgoing: usize,
    /// Invites not used up.
    pub invites_open: usize,
}

/// `wire status`: refused inbound events.
#[derive(Debug, Serialize)]
pub struct RejectedCounts {
    /// How many.
    pub total: usize,
    /// How many per reason.
    pub reasons: std::collections::BTreeMap<String, usize>,
}

/// A re-introduction still waiting (after `wire up --reregister`).
#[derive(Debug, Serialize)]
pub struct WaitingReintro {
    /// The peer.
    pub to: Face,
    /// Failed attempts.
    pub attempts: u32,
    /// The last failure.
    pub last_error: Option<String>,
}

/// `wire status`.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    /// Who we are.
    pub identity: Whoami,
    /// Our relay and mailbox.
    pub relay: RelayStatus,
    /// Our other mailboxes, each with its relay's health.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mailboxes: Vec<OtherMailbox>,
    /// Pinned peers.
    pub peers: usize,
    /// Inbox events.
    pub inbox: usize,
    /// Inbox events the agent has not read (up to 1,000 counted).
    pub unread: usize,
    /// Our sent events by state (queued, sent, delivered, read, failed).
    pub sent: std::collections::BTreeMap<crate::home::SentState, usize>,
    /// The outbox.
    pub outbox: OutboxStatus,
    /// Pairings in progress.
    pub pending: PendingCounts,
    /// Refused inbound events.
    pub rejected: RejectedCounts,
    /// Re-introductions not delivered yet.
    pub reintroductions: Vec<WaitingReintro>,
    /// Peers whose re-introduction was given up: pair with them again.
    pub needs_repair: Vec<Face>,
    /// Our rooms.
    pub rooms: Vec<super::rooms::RoomView>,
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

    #[test]
    fn the_other_reports_keep_their_documented_json_shapes() {
        let did = crate::proto::did::Did::parse("did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK").unwrap();
        let face = Face::of(&did);
        let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        let whois = WhoisReport {
            face: face.clone(),
            source: WhoisSource::Did,
            pinned: false,
            endpoints: None,
            card_created_at: None,
            nickname_collides_with: None,
            lineage: None,
        };
        let v = serde_json::to_value(&whois).unwrap();
        assert_eq!(
            (keys(&v), v["source"].as_str()),
            (vec!["face".into(), "pinned".into(), "source".into()], Some("did"))
        );
        let v = serde_json::to_value(RequestReport { state: RequestState::AlreadyPaired, peer: face.clone() }).unwrap();
        assert_eq!((keys(&v), v["state"].as_str()), (vec!["peer".into(), "state".into()], Some("already_paired")));
        let v = serde_json::to_value(ForgetReport { forgotten: face.clone(), told: true }).unwrap();
        assert_eq!(keys(&v), ["forgotten", "told"]);
        let v = serde_json::to_value(InviteReport { url: "wire://pair".into(), uses: 1, expires_at: UnixMillis(5) })
            .unwrap();
        assert_eq!(
            (keys(&v), v["expires_at"].as_u64()),
            (vec!["expires_at".into(), "url".into(), "uses".into()], Some(5))
        );
        let send = SendReport {
            verdict: Verdict::Queued,
            event_id: "e".into(),
            to: face.clone(),
            seq: None,
            via: None,
            reason: Some("down".into()),
        };
        assert_eq!(serde_json::to_value(&send).unwrap()["verdict"], "queued");
        let status = StatusReport {
            identity: Whoami {
                face: face.clone(),
                relay: "r".into(),
                slot: "s".into(),
                handle: None,
                home: "h".into(),
                lineage: LineageView { seq: 0, key_fingerprint: "f".into(), standing: "active", committed: true },
            },
            relay: RelayStatus {
                url: "r".into(),
                reachable: Reachability { ok: true, error: None },
                mailbox: Mailbox::Gone,
                cursor: 3,
            },
            mailboxes: Vec::new(),
            peers: 1,
            inbox: 2,
            unread: 1,
            sent: [(crate::home::SentState::Read, 1)].into_iter().collect(),
            outbox: OutboxStatus { queued: 0, failing: vec![] },
            pending: PendingCounts { requests: 0, outgoing: 0, invites_open: 0 },
            rejected: RejectedCounts { total: 0, reasons: Default::default() },
            reintroductions: vec![],
            needs_repair: vec![face],
            rooms: vec![],
        };
        let v = serde_json::to_value(&status).unwrap();
        assert_eq!(
            keys(&v),
            [
                "identity",
                "inbox",
                "needs_repair",
                "outbox",
                "peers",
                "pending",
                "reintroductions",
                "rejected",
                "relay",
                "rooms",
                "sent",
                "unread"
            ]
        );
        assert_eq!(v["sent"], serde_json::json!({ "read": 1 }));
        assert_eq!(keys(&v["relay"]), ["cursor", "mailbox", "reachable", "url"]);
        assert_eq!(
            (v["relay"]["reachable"].to_string(), v["relay"]["mailbox"].as_str()),
            ("{\"ok\":true}".into(), Some("gone"))
        );
        assert_eq!(v["identity"]["nickname"], whois.face.nickname, "the identity is a flattened face");
    }
}
