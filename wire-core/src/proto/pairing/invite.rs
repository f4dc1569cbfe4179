//! The invite flow.
//!
//! ```text
//! issuer                                   guest
//!   Invite::issue -> URL  ---- operator ---->  join(invite)
//!                         <-- pair_request --  (sealed to issuer, posted with intro token;
//!                                               proof = HMAC(secret, label||id||guest||issuer))
//!   receive_request -> InviteClaim
//!   IssuedInvite::redeem -> InviteRequest
//!   InviteRequest::answer -- pair_accept --->  AwaitingInviteAccept::receive -> Paired
//!   -> Paired
//! ```

use hmac::{Hmac, Mac};
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{
    Extras, Lane, Outgoing, PairAcceptBody, PairRequestBody, Paired, PairingError, Tier, body_of, send_to, sender_card,
};
use crate::proto::b64;
use crate::proto::card::{Card, Endpoint};
use crate::proto::did::Did;
use crate::proto::event::{Acceptance, EventId, Kind, SignedEvent};
use crate::proto::identity::Identity;
use crate::proto::invite::Invite;
use crate::proto::labels;
use crate::proto::secret::{Secret32, Token};
use crate::proto::time::UnixMillis;

/// The issuer's record of an invite, persisted until used up or expired.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IssuedInvite {
    /// Invite id.
    #[serde(with = "b64::fixed")]
    pub id: [u8; 16],
    /// The secret the guest must prove.
    pub secret: Secret32,
    /// Expiry.
    pub expires_at: UnixMillis,
    /// Remaining redemptions.
    pub uses_left: u32,
    /// The only identity that may redeem it (a bid's invite), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only: Option<crate::proto::did::Did>,
}

/// A `pair_request` naming an invite, not yet checked against the issued invite.
#[derive(Debug)]
pub struct InviteClaim {
    /// The invite id it names.
    pub invite_id: [u8; 16],
    pub(crate) request_id: EventId,
    pub(crate) guest_extras: Extras,
    pub(crate) guest: Card,
    pub(crate) guest_token: Token,
    pub(crate) proof: [u8; 32],
}

/// A redeemed invite request: mint a send token for the guest, then [`Self::answer`].
#[derive(Debug)]
pub struct InviteRequest {
    request_id: EventId,
    guest: Card,
    guest_token: Token,
    guest_extras: Extras,
}

/// The guest's state after sending its `pair_request`, persisted until the accept arrives.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AwaitingInviteAccept {
    /// The issuer's card from the invite.
    pub issuer: Card,
    /// Our request's event id; the accept must reply to it.
    pub request_id: EventId,
    /// The invite's id.
    #[serde(with = "b64::fixed")]
    pub invite_id: [u8; 16],
}

fn proof(secret: &Secret32, invite_id: &[u8; 16], guest: &Did, issuer: &Did) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.expose()).expect("HMAC takes any key length");
    mac.update(labels::INVITE_PROOF);
    mac.update(invite_id);
    mac.update(guest.as_str().as_bytes());
    mac.update(&[0]);
    mac.update(issuer.as_str().as_bytes());
    mac
}

impl IssuedInvite {
    /// The record to keep for an invite just issued, redeemable `uses` times.
    pub fn new(invite: &Invite, uses: u32) -> Self {
        let body = invite.body();
        Self { id: body.id, secret: body.secret.clone(), expires_at: body.expires_at, uses_left: uses, only: None }
    }

    /// Checks a claim against this invite and consumes one use. On error nothing changes.
    pub fn redeem(
        &mut self,
        me: &Identity,
        claim: InviteClaim,
        now: UnixMillis,
    ) -> Result<InviteRequest, PairingError> {
        if claim.invite_id != self.id {
            return Err(PairingError::UnknownInvite);
        }
        if now >= self.expires_at {
            return Err(PairingError::InviteExpired(self.expires_at));
        }
        if self.uses_left == 0 {
            return Err(PairingError::InviteUsedUp);
        }
        proof(&self.secret, &self.id, claim.guest.did(), me.did())
            .verify_slice(&claim.proof)
            .map_err(|_| PairingError::BadProof)?;
        if self.only.as_ref().is_some_and(|d| d != claim.guest.did()) {
            return Err(PairingError::InviteForAnother);
        }
        self.uses_left -= 1;
        Ok(InviteRequest {
            request_id: claim.request_id,
            guest: claim.guest,
            guest_token: claim.guest_token,
            guest_extras: claim.guest_extras,
        })
    }
}

impl InviteRequest {
    /// The guest's verified card (to show the operator).
    pub fn guest(&self) -> &Card {
        &self.guest
    }

    /// Answers with `pair_accept` carrying `token_for_guest` (a send token on our slot).
    pub fn answer(
        self,
        me: &Identity,
        my_card: &Card,
        mine: &Extras,
        token_for_guest: Token,
        now: UnixMillis,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(Paired, Outgoing), PairingError> {
        // Only a guest that publishes prekeys reads them (older accept bodies deny unknown fields).
        let Extras { prekeys, tokens } = mine.for_card(&self.guest);
        let body = PairAcceptBody { card: my_card.signed().clone(), send_token: token_for_guest, prekeys, tokens };
        let out = send_to(
            me,
            &self.guest,
            Kind::PairAccept,
            &body,
            Some(self.request_id),
            Lane::Inbox,
            Some(self.guest_token.clone()),
            now,
            rng,
        )?;
        Ok((
            Paired { card: self.guest, send_token: self.guest_token, tier: Tier::Verified, extras: self.guest_extras },
            out,
        ))
    }
}

/// The guest redeems `invite`: builds the sealed `pair_request` carrying `token_for_issuer`
/// (a send token on the guest's own slot).
pub fn join(
    me: &Identity,
    my_card: &Card,
    mine: &Extras,
    invite: &Invite,
    token_for_issuer: Token,
    now: UnixMillis,
    rng: &mut impl CryptoRngCore,
) -> Result<(AwaitingInviteAccept, Outgoing), PairingError> {
    let issuer = invite.issuer();
    if issuer.did() == me.did() {
        return Err(PairingError::SelfPairing);
    }
    let body = invite.body();
    let mac = proof(&body.secret, &body.id, me.did(), issuer.did()).finalize().into_bytes();
    let request = PairRequestBody::Invite {
        invite: body.id,
        card: my_card.signed().clone(),
        send_token: token_for_issuer,
        proof: mac.into(),
        prekeys: mine.prekeys.clone(),
        tokens: mine.tokens.clone(),
    };
    let mut out =
        send_to(me, issuer, Kind::PairRequest, &request, None, Lane::Inbox, Some(body.intro_token.clone()), now, rng)?;
    // The invite names the exact slot to redeem at: its address first, then the card's other
    // addresses of that same slot.
    let named = Endpoint { relay: body.relay.clone(), slot: body.slot.clone() };
    out.endpoints.retain(|e| e.slot == body.slot && e.relay != body.relay);
    out.endpoints.insert(0, named);
    let state = AwaitingInviteAccept { issuer: issuer.clone(), request_id: out.event_id, invite_id: body.id };
    Ok((state, out))
}

impl AwaitingInviteAccept {
    /// Checks the issuer's `pair_accept`. On error the state is unchanged (a stray or forged
    /// message does not end the wait).
    pub fn receive(&self, me: &Identity, event: SignedEvent, now: UnixMillis) -> Result<Paired, PairingError> {
        let verified = event.verify_as(&self.issuer, &Acceptance::new(me.did(), now))?;
        let body: PairAcceptBody = body_of(&verified, Kind::PairAccept)?;
        if verified.event().reply_to != Some(self.request_id) {
            return Err(PairingError::NotAReply);
        }
        let card = sender_card(body.card, &verified)?;
        let extras = Extras { prekeys: body.prekeys, tokens: body.tokens };
        Ok(Paired { card, send_token: body.send_token, tier: Tier::Verified, extras })
    }
}
