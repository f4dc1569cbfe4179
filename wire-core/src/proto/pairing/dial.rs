//! The dial flow: pairing with a stranger found by handle, with the operator's consent.
//!
//! ```text
//! dialer                                       stranger
//!   dial(card) ---- pair_request (intro lane) -->  receive_request -> PendingDial
//!                                                  (listed by `wire pending`)
//!              <--- pair_accept | pair_reject ---  accept(token) | reject()
//!   AwaitingDialAnswer::receive -> Accepted(Paired) | Rejected
//! ```
//!
//! Nothing from the stranger is pinned or answered until the operator accepts.

use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};

use super::{
    Extras, Lane, Outgoing, PairAcceptBody, PairRejectBody, PairRequestBody, Paired, PairingError, Tier, send_to,
    sender_card,
};
use crate::proto::card::Card;
use crate::proto::event::{Acceptance, EventId, Kind, SignedEvent};
use crate::proto::identity::Identity;
use crate::proto::secret::Token;
use crate::proto::time::UnixMillis;

/// Longest note a dialer may attach (longer notes are cut).
pub const MAX_NOTE_CHARS: usize = 280;

/// Most dial requests kept waiting for the operator by default (`WIRE_MAX_PENDING_REQUESTS`
/// sets another); past it new ones are refused (and logged) until the operator decides some. With [`MAX_NOTE_CHARS`] and the card bound this
/// keeps `pending.json` under about 1.5 MiB whatever strangers send.
pub const MAX_PENDING_REQUESTS: usize = 64;

/// A stranger's request, waiting for the operator.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingDial {
    /// The request's event id.
    pub request_id: EventId,
    /// The stranger's verified card.
    pub from: Card,
    pub(crate) token: Token,
    /// Its signed prekey bundle and tokens on its further mailboxes.
    #[serde(default)]
    pub(crate) extras: Extras,
    /// What the dialer wrote, if anything.
    pub note: Option<String>,
    /// When we received it.
    pub received_at: UnixMillis,
}

/// The dialer's state until the answer arrives.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AwaitingDialAnswer {
    /// The card we dialed.
    pub peer: Card,
    /// Our request's event id.
    pub request_id: EventId,
}

/// The stranger's answer.
#[derive(Debug)]
pub enum DialAnswer {
    /// Paired: pin it.
    Accepted(Box<Paired>),
    /// Declined.
    Rejected {
        /// Their reason, if given.
        reason: Option<String>,
    },
}

/// Builds a `pair_request` for the stranger whose card was resolved from the directory.
#[allow(clippy::too_many_arguments)]
pub fn dial(
    me: &Identity,
    my_card: &Card,
    mine: &Extras,
    their_card: &Card,
    token_for_them: Token,
    note: Option<String>,
    now: UnixMillis,
    rng: &mut impl CryptoRngCore,
) -> Result<(AwaitingDialAnswer, Outgoing), PairingError> {
    if their_card.did() == me.did() {
        return Err(PairingError::SelfPairing);
    }
    let note = note.map(|n| n.chars().take(MAX_NOTE_CHARS).collect());
    let body = PairRequestBody::Dial {
        card: my_card.signed().clone(),
        send_token: token_for_them,
        note,
        prekeys: mine.prekeys.clone(),
        tokens: mine.tokens.clone(),
    };
    let out = send_to(me, their_card, Kind::PairRequest, &body, None, Lane::Intro, None, now, rng)?;
    Ok((AwaitingDialAnswer { peer: their_card.clone(), request_id: out.event_id }, out))
}

impl PendingDial {
    /// The operator consented: answer with a send token on our slot.
    pub fn accept(
        self,
        me: &Identity,
        my_card: &Card,
        mine: &Extras,
        token_for_them: Token,
        now: UnixMillis,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(Paired, Outgoing), PairingError> {
        let Extras { prekeys, tokens } = mine.for_card(&self.from);
        let body = PairAcceptBody { card: my_card.signed().clone(), send_token: token_for_them, prekeys, tokens };
        let out = send_to(
            me,
            &self.from,
            Kind::PairAccept,
            &body,
            Some(self.request_id),
            Lane::Inbox,
            Some(self.token.clone()),
            now,
            rng,
        )?;
        Ok((Paired { card: self.from, send_token: self.token, tier: Tier::Tofu, extras: self.extras }, out))
    }

    /// The operator declined: tell the dialer. Nothing is pinned.
    pub fn reject(
        self,
        me: &Identity,
        reason: Option<String>,
        now: UnixMillis,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Outgoing, PairingError> {
        let body = PairRejectBody { reason };
        send_to(me, &self.from, Kind::PairReject, &body, Some(self.request_id), Lane::Inbox, Some(self.token), now, rng)
    }
}

impl AwaitingDialAnswer {
    /// Checks the stranger's answer. On error the state is unchanged.
    pub fn receive(&self, me: &Identity, event: SignedEvent, now: UnixMillis) -> Result<DialAnswer, PairingError> {
        let verified = event.verify_as(&self.peer, &Acceptance::new(me.did(), now))?;
        if verified.event().reply_to != Some(self.request_id) {
            return Err(PairingError::NotAReply);
        }
        match verified.event().kind {
            Kind::PairAccept => {
                let body: PairAcceptBody = super::body_of(&verified, Kind::PairAccept)?;
                let card = sender_card(body.card, &verified)?;
                let extras = Extras { prekeys: body.prekeys, tokens: body.tokens };
                let paired = Paired { card, send_token: body.send_token, tier: Tier::Tofu, extras };
                Ok(DialAnswer::Accepted(Box::new(paired)))
            }
            Kind::PairReject => {
                let body: PairRejectBody = super::body_of(&verified, Kind::PairReject)?;
                Ok(DialAnswer::Rejected { reason: body.reason })
            }
            got => Err(PairingError::WrongKind { expected: Kind::PairAccept, got }),
        }
    }
}
