//! Pairing: how two agents come to hold each other's card and a send token.
//!
//! Three flows, each a sans-io state machine that consumes received messages and returns
//! what to send; the caller owns all I/O, persistence and token minting:
//!
//! - [`invite`]: the issuer prints a `wire://pair?` URL; the guest's sealed `pair_request`
//!   proves it saw the URL's secret; the issuer answers `pair_accept`. Pasting the URL is
//!   the issuer's consent.
//! - [`dial`]: a `pair_request` to a stranger found by handle waits for the operator's
//!   consent, then `pair_accept` or `pair_reject`.
//! - [`code`]: SPAKE2 over a short spoken code, key confirmation, cards and tokens
//!   exchanged under the PAKE key, a 6-digit SAS both operators compare, two-phase
//!   finalize.

pub mod code;
pub mod dial;
pub mod invite;

use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};

pub use super::api::Lane;
use super::b64;
use super::card::{Card, CardError, Endpoint};
use super::envelope::{self, SealError, SealedEnvelope};
use super::event::{Event, EventError, EventId, Kind, SignedEvent, VerifiedEvent};
use super::identity::Identity;
use super::secret::Token;
use super::signed::Signed;
use super::time::UnixMillis;

/// How a pinned peer was verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Tier {
    /// Paired through an invite (a secret handed over out of band) or a code with a compared
    /// SAS, or raised from TOFU by the operator comparing fingerprints (`wire verify`).
    Verified,
    /// Paired through a consented dial: the key came from a relay's directory and nothing
    /// checked it (trust on first use). `wire verify` raises it after a fingerprint check.
    Tofu,
    /// Sessions of one OS user on one machine; the filesystem is the trust anchor.
    Local,
}

/// A completed pairing: what to pin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paired {
    /// The peer's verified card.
    pub card: Card,
    /// The capability to append to the peer's slot.
    pub send_token: Token,
    /// How the peer was verified.
    pub tier: Tier,
    /// What the peer sent besides its card and token: its prekey bundle, send tokens on
    /// its further mailboxes (checked at pinning).
    #[serde(default)]
    pub extras: Extras,
}

/// A send token on one mailbox (slot) a card lists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotToken {
    /// The mailbox.
    pub slot: crate::proto::api::SlotId,
    /// The capability to append to it.
    pub token: Token,
}

/// What a side of a pairing sends besides its card and the send token on its first
/// mailbox: its signed prekey bundle (docs/PROTOCOL.md 7.1) and a send token on each
/// further mailbox its card lists (several relays).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extras {
    /// The signed prekey bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prekeys: Option<Signed>,
    /// Send tokens on further mailboxes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<SlotToken>,
}

impl Extras {
    /// What goes in an answer to a peer whose card is `to`: nothing for a wire older than
    /// prekeys (older accept bodies deny unknown fields).
    pub(crate) fn for_card(&self, to: &Card) -> Self {
        if to.speaks(crate::proto::prekey::FEATURE) { self.clone() } else { Self::default() }
    }
}

/// A sealed message and where to post it.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// Where it may go, in the target's order: the target card's endpoints (for an invite
    /// redemption, the invite's own address first). The runtime's one route picks among
    /// them, closest first.
    pub endpoints: Vec<Endpoint>,
    /// The target card's machine tag ([`Card::machine`]), which tells the route whether the
    /// target's Unix-socket and loopback addresses are ours too.
    pub machine: Option<String>,
    /// Lane of the slot.
    pub lane: Lane,
    /// Capability to present, if the lane needs one.
    pub token: Option<Token>,
    /// The event id inside (for logs and replies).
    pub event_id: EventId,
    /// The envelope bytes.
    pub envelope: SealedEnvelope,
}

/// Body of a `pair_request` event, tagged by flow.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "flow", rename_all = "snake_case")]
pub(crate) enum PairRequestBody {
    /// Redeeming an invite URL.
    Invite {
        #[serde(with = "b64::fixed")]
        invite: [u8; 16],
        card: Signed,
        send_token: Token,
        #[serde(with = "b64::fixed")]
        proof: [u8; 32],
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prekeys: Option<Signed>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tokens: Vec<SlotToken>,
    },
    /// Dialing a stranger.
    Dial {
        card: Signed,
        send_token: Token,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prekeys: Option<Signed>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tokens: Vec<SlotToken>,
    },
}

/// Body of a `pair_accept` event.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PairAcceptBody {
    pub(crate) card: Signed,
    pub(crate) send_token: Token,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) prekeys: Option<Signed>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) tokens: Vec<SlotToken>,
}

/// Body of a `pair_reject` event.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PairRejectBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
}

/// Why a pairing message was refused. Refusing a message never changes the state it
/// was offered to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PairingError {
    /// The event itself failed verification.
    #[error(transparent)]
    Event(#[from] EventError),
    /// Another kind of event than this step expects.
    #[error("expected a `{expected}` event, got `{got}`")]
    WrongKind {
        /// What the step expects.
        expected: Kind,
        /// What arrived.
        got: Kind,
    },
    /// The event body is not the expected shape.
    #[error("malformed pairing message: {0}")]
    MalformedBody(#[source] serde_json::Error),
    /// The card inside is invalid.
    #[error("the peer's card is invalid: {0}")]
    Card(#[from] CardError),
    /// The card inside belongs to another DID than the event's signer.
    #[error("the card in the pairing message belongs to another agent than its sender")]
    CardMismatch,
    /// The card lists no relay endpoint to answer to.
    #[error("the peer's card lists no relay endpoint; it cannot be answered")]
    NoEndpoint,
    /// A request for an invite this issuer does not hold (or of another flow).
    #[error("pair request names an invite this identity did not issue (or already forgot)")]
    UnknownInvite,
    /// The request does not prove knowledge of the invite secret.
    #[error("pair request does not prove knowledge of the invite secret; refused")]
    BadProof,
    /// The invite has no uses left.
    #[error("invite was already used; ask for a new one (`wire invite`)")]
    InviteUsedUp,
    /// The invite was minted for one identity (a bid's invite for its customer).
    #[error("this invite is for another agent")]
    InviteForAnother,
    /// The invite expired.
    #[error("invite expired at {0}; ask for a new one (`wire invite`)")]
    InviteExpired(UnixMillis),
    /// An answer that does not answer our request.
    #[error("pairing answer does not reply to our request")]
    NotAReply,
    /// Pairing with oneself.
    #[error("cannot pair an identity with itself")]
    SelfPairing,
    /// Sealing failed.
    #[error(transparent)]
    Seal(#[from] SealError),
}

/// Builds, signs and seals a protocol event for `to` (any of its card's endpoints).
#[allow(clippy::too_many_arguments)]
pub(crate) fn send_to(
    me: &Identity,
    to: &Card,
    kind: Kind,
    body: &impl Serialize,
    reply_to: Option<EventId>,
    lane: Lane,
    token: Option<Token>,
    now: UnixMillis,
    rng: &mut impl CryptoRngCore,
) -> Result<Outgoing, PairingError> {
    if to.body().endpoints.is_empty() {
        return Err(PairingError::NoEndpoint);
    }
    let body = serde_json::to_value(body).expect("pairing bodies serialize");
    let mut event = Event::new(me, to.did().clone(), kind, body, now, rng);
    event.reply_to = reply_to;
    let event_id = event.id;
    let signed = event.sign(me).expect("event is from `me`");
    let envelope = envelope::seal(&signed, &to.x25519_public(), rng)?;
    Ok(Outgoing {
        endpoints: to.body().endpoints.clone(),
        machine: to.machine().map(str::to_owned),
        lane,
        token,
        event_id,
        envelope,
    })
}

/// Checks that `event` has `kind` and parses its body.
pub(crate) fn body_of<T: serde::de::DeserializeOwned>(event: &VerifiedEvent, kind: Kind) -> Result<T, PairingError> {
    if event.event().kind != kind {
        return Err(PairingError::WrongKind { expected: kind, got: event.event().kind });
    }
    serde_json::from_value(event.event().body.clone()).map_err(PairingError::MalformedBody)
}

/// Verifies a card carried in a pairing message and checks it is the sender's.
pub(crate) fn sender_card(signed: Signed, event: &VerifiedEvent) -> Result<Card, PairingError> {
    let card = Card::verify(signed)?;
    if card.did() != &event.event().from {
        return Err(PairingError::CardMismatch);
    }
    Ok(card)
}

/// An incoming `pair_request`, verified against the sender's self-certifying DID.
#[derive(Debug)]
pub enum IncomingRequest {
    /// Redeems an invite: look up the [`invite::IssuedInvite`] by id and call `redeem`.
    Invite(invite::InviteClaim),
    /// A stranger asks to pair: keep it pending until the operator decides.
    Dial(dial::PendingDial),
}

/// Verifies and classifies a `pair_request` opened from an envelope.
pub fn receive_request(me: &Identity, event: SignedEvent, now: UnixMillis) -> Result<IncomingRequest, PairingError> {
    let verified = event.verify_from_stranger(&super::event::Acceptance::new(me.did(), now))?;
    if &verified.event().from == me.did() {
        return Err(PairingError::SelfPairing);
    }
    match body_of::<PairRequestBody>(&verified, Kind::PairRequest)? {
        PairRequestBody::Invite { invite, card, send_token, proof, prekeys, tokens } => {
            let card = sender_card(card, &verified)?;
            Ok(IncomingRequest::Invite(invite::InviteClaim {
                invite_id: invite,
                request_id: verified.event().id,
                guest: card,
                guest_token: send_token,
                guest_extras: Extras { prekeys, tokens },
                proof,
            }))
        }
        PairRequestBody::Dial { card, send_token, note, prekeys, tokens } => {
            let card = sender_card(card, &verified)?;
            let note = note.map(|n| n.chars().take(dial::MAX_NOTE_CHARS).collect());
            Ok(IncomingRequest::Dial(dial::PendingDial {
                request_id: verified.event().id,
                from: card,
                token: send_token,
                extras: Extras { prekeys, tokens },
                note,
                received_at: now,
            }))
        }
    }
}
