//! A way back after relay data loss (docs/PROTOCOL.md, "Recovery after relay data loss").
//!
//! When our relay no longer knows our slot, `wire up --reregister` gets a new slot there for
//! the same identity, re-issues our card with it, publishes the card in the handle
//! directory, and sends every pinned peer a *re-introduction*: a sealed, signed `reintro`
//! control message carrying the new card and a fresh send grant on the new slot. It goes
//! along the one route with the send token we already hold; when the peer's own slot is
//! gone too (one relay, both sides lost), we look the peer up by handle on its relays and
//! post to its new slot's intro lane instead. Until one of those works the re-introduction
//! waits in the outbox (retried with backoff, shown by `wire status`); after a week it is
//! given up and the peer is marked as needing a new pairing.
//!
//! A re-introduction is accepted only from a pinned identity, only with a card of that
//! identity that is newer than the pinned one (or the same card with a new token), so a
//! replayed one changes nothing.

use std::time::Duration;

use rand_core::OsRng;
use serde::{Deserialize, Serialize};

use super::route::{Here, Post, post_along};
use super::{Endpoint, EndpointError, Face, Result, card_capabilities, intro_tag, seal_for};
use crate::client::{Client, ClientError, Reach, RelayUrl};
use crate::home::{Account, OutboxItem, Peer, Peers};
use crate::proto::api::ErrorCode;
use crate::proto::card::{Card, Endpoint as CardEndpoint};
use crate::proto::event::{ControlBody, Event, Kind};
use crate::proto::secret::Token;
use crate::proto::signed::Signed;
#[cfg(test)]
use crate::proto::time::UnixMillis;

/// The control type of a re-introduction.
pub(crate) const REINTRO: &str = "reintro";
/// How long a re-introduction is retried before the peer is marked as needing re-pairing.
const REINTRO_TTL: Duration = Duration::from_secs(7 * 86_400);

/// The fields of a `reintro` control message (version 1).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReintroBody {
    /// The sender's new card.
    pub card: Signed,
    /// A send token on the sender's new slot, for the recipient.
    pub send_token: Token,
}

/// What became of one peer's re-introduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReintroState {
    /// It reached the peer.
    Delivered,
    /// Not yet: it waits in the outbox (the peer's mailbox is gone too and it has not
    /// re-registered, or its relay is down).
    Waiting,
    /// The peer runs a wire that cannot read re-introductions: pair again.
    NeedsRepairing,
}

/// One peer in a [`ReregisterReport`].
#[derive(Debug, Clone, Serialize)]
pub struct Reintroduction {
    /// The peer.
    pub peer: Face,
    /// Where its re-introduction is.
    pub state: ReintroState,
    /// Why it is waiting, if it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// `wire up --reregister`.
#[derive(Debug, Clone, Serialize)]
pub struct ReregisterReport {
    /// Who we are (unchanged).
    pub face: Face,
    /// The relay.
    pub relay: String,
    /// Our new slot there.
    pub slot: String,
    /// Our handle, if it was claimed again.
    pub handle: Option<String>,
    /// Each pinned peer's re-introduction.
    pub peers: Vec<Reintroduction>,
}

impl Endpoint {
    /// `wire up --reregister`: a new slot on our relay for the same identity, after the
    /// relay lost the old one; then a re-introduction to every pinned peer. Refused while
    /// the relay still knows our slot (nothing is replaced by mistake).
    pub async fn reregister(&self) -> Result<ReregisterReport> {
        let _lock = self.home.lock()?;
        let mut account = self.account()?;
        let client = self.our_client(&account)?;
        match client.list(&account.slot, &account.owner_token, None, 1).await {
            Ok(_) => return Err(EndpointError::SlotAlive { relay: account.relay.clone() }),
            Err(e) if e.code() == Some(ErrorCode::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        let fresh = client.allocate_slot().await?;
        let endpoints = account
            .card
            .body()
            .endpoints
            .iter()
            .map(|e| CardEndpoint {
                relay: e.relay.clone(),
                slot: if e.slot == account.slot { fresh.slot.clone() } else { e.slot.clone() },
            })
            .collect();
        // Strictly newer than the card peers hold, whatever the clock says.
        let at = self.home.now().max(account.card.body().created_at.saturating_add(Duration::from_millis(1)));
        let card = Card::issue(&self.identity, endpoints, card_capabilities(), at);
        let nick = card.character().nickname();
        let handle = match &account.handle {
            Some(h) => client.claim_handle(&fresh.owner_token, &nick, card.signed()).await.ok().map(|_| h.clone()),
            None => None,
        };
        account = Account {
            slot: fresh.slot,
            owner_token: fresh.owner_token,
            card,
            handle,
            cursor: 0,
            incarnation: None,
            ..account
        };
        self.home.save(&account)?;
        // Every grant we had given was on the lost slot: each peer gets a new one, in its
        // re-introduction.
        let report = self.reintroduce_all(&account).await?;
        Ok(ReregisterReport {
            face: Face::of(self.identity.did()),
            relay: account.relay.clone(),
            slot: account.slot.to_string(),
            handle: account.handle.clone(),
            peers: report,
        })
    }

    /// Mints each pinned peer a send grant on our first mailbox (`account`'s, as saved) and
    /// re-introduces us with it: queued, then tried at once. What became of each. Hold the
    /// lock.
    pub(super) async fn reintroduce_all(&self, account: &Account) -> Result<Vec<Reintroduction>> {
        let mut peers = self.home.load::<Peers>()?.unwrap_or_default();
        let (mut items, mut report) = (Vec::new(), Vec::new());
        for peer in &mut peers.peers {
            if !peer.card.speaks(Kind::Control.as_str()) {
                peer.needs_repair = true;
                let state = ReintroState::NeedsRepairing;
                report.push(Reintroduction { peer: Face::of(peer.card.did()), state, last_error: None });
                continue;
            }
            let grant = self.mint_send_grant(account).await?;
            // Its grants on our spares now go with the new grant (`wire forget` finds them).
            if let Some(old) = peer.our_grant.replace(grant.grant_id.clone()) {
                self.rekey_spare_grants(&old, &grant.grant_id)?;
            }
            items.push(self.reintro_item(account, peer, grant.token)?);
        }
        for item in &items {
            self.home.queue(item)?;
        }
        self.home.save(&peers)?;
        for item in items {
            let delivered = self.try_item(&item, &mut Default::default()).await?;
            let last_error = if delivered {
                None
            } else {
                self.home.outbox()?.into_iter().find(|i| i.event_id == item.event_id).and_then(|i| i.last_error)
            };
            let state = if delivered { ReintroState::Delivered } else { ReintroState::Waiting };
            report.push(Reintroduction { peer: Face::of(&item.to), state, last_error });
        }
        Ok(report)
    }

    /// A re-introduction for `peer` as an outbox item.
    pub(super) fn reintro_item(&self, account: &Account, peer: &Peer, token: Token) -> Result<OutboxItem> {
        let body = ReintroBody { card: account.card.signed().clone(), send_token: token };
        let serde_json::Value::Object(fields) = serde_json::to_value(&body).expect("serializes") else {
            unreachable!("a struct serializes to an object")
        };
        let control = ControlBody { kind: REINTRO.into(), v: 1, fields };
        let now = self.home.now();
        let event = Event::new(
            &self.identity,
            peer.card.did().clone(),
            Kind::Control,
            serde_json::to_value(control).expect("serializes"),
            now,
            &mut OsRng,
        );
        let mut item = seal_for(&self.identity, peer, event)?.item(peer, now)?;
        item.reintro = Some(now.saturating_add(REINTRO_TTL));
        Ok(item)
    }

    /// Posts a re-introduction: along the route with our token; else, when the peer's slot
    /// is gone or its relay refuses that token, to the intro lane of the card the peer
    /// published in its relays' handle directories (pinning that card when it is newer).
    pub(crate) async fn post_reintro(&self, peer: &Peer, envelope: &[u8]) -> Result<(), ClientError> {
        let first = match super::deliver(peer, envelope).await {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        let retry = matches!(first, ClientError::Unreachable { .. })
            || matches!(first.code(), Some(ErrorCode::NotFound | ErrorCode::Unauthorized | ErrorCode::Forbidden));
        if !retry {
            return Err(first);
        }
        let Some(card) = self.published_card(peer).await else { return Err(first) };
        if card.body().created_at > peer.card.body().created_at {
            let mut peers = self.home.load::<Peers>().ok().flatten().unwrap_or_default();
            if let Some(p) = peers.peers.iter_mut().find(|p| p.card.did() == card.did()) {
                p.card = card.clone();
                let _ = self.home.save(&peers);
            }
        }
        let slot = card.body().endpoints.first().map(|e| e.slot.to_string()).unwrap_or_default();
        let tag = intro_tag(self.identity.did(), &slot);
        let here = Here::of(card.machine(), Some(peer.tier));
        match post_along(&card.body().endpoints, here, Post::Intro(&tag), envelope).await {
            // The tag is ours: a conflict is our own re-introduction, already waiting there.
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(ErrorCode::Conflict) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The card `peer` published under its handle on one of its relays, if that is the
    /// peer's identity.
    async fn published_card(&self, peer: &Peer) -> Option<Card> {
        let nick = peer.card.character().nickname();
        for e in &peer.card.body().endpoints {
            let Ok(url) = RelayUrl::parse(&e.relay) else { continue };
            if matches!(url.reach(), Reach::Unix) {
                continue;
            }
            let Ok(found) = Client::new(url).resolve(&nick).await else { continue };
            match Card::verify(found.card) {
                Ok(card) if card.did() == peer.card.did() => return Some(card),
                _ => continue,
            }
        }
        None
    }

    /// Gives up an expired re-introduction: the peer is marked as needing re-pairing.
    /// Hold the lock.
    pub(crate) fn drop_reintro(&self, item: &OutboxItem) -> Result<()> {
        let mut peers = self.home.load::<Peers>()?.unwrap_or_default();
        if let Some(p) = peers.peers.iter_mut().find(|p| p.card.did() == &item.to) {
            p.needs_repair = true;
        }
        self.home.save(&peers)?;
        self.home.unqueue(&item.event_id)?;
        Ok(())
    }
}

/// What a received `reintro` from the pinned `peer` does to it.
#[derive(Debug)]
pub(crate) enum Reintro {
    /// Accepted: the peer now has this card and token.
    Accepted,
    /// Nothing new (a repeat).
    Repeat,
}

/// Applies a re-introduction's fields to the pinned `peer`, or says why not.
pub(crate) fn apply_reintro(
    peer: &mut Peer,
    fields: &serde_json::Map<String, serde_json::Value>,
) -> Result<Reintro, String> {
    let body: ReintroBody =
        serde_json::from_value(serde_json::Value::Object(fields.clone())).map_err(|e| e.to_string())?;
    let card = Card::verify(body.card).map_err(|e| e.to_string())?;
    if card.did() != peer.card.did() {
        return Err("its card is of another identity".into());
    }
    let (new, pinned) = (card.body().created_at, peer.card.body().created_at);
    let same_card = new == pinned && card.signed() == peer.card.signed();
    if new < pinned || (new == pinned && !same_card) {
        return Err("its card is older than the one pinned (a replay)".into());
    }
    if same_card && body.send_token == peer.send_token {
        return Ok(Reintro::Repeat);
    }
    peer.card = card;
    peer.send_token = body.send_token;
    peer.needs_repair = false;
    Ok(Reintro::Accepted)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::proto::identity::Identity;
    use crate::proto::pairing::Tier;

    fn fields(card: &Card, token: &Token) -> serde_json::Map<String, serde_json::Value> {
        let body = ReintroBody { card: card.signed().clone(), send_token: token.clone() };
        match serde_json::to_value(body).unwrap() {
            serde_json::Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_reintroduction_is_taken_only_newer_and_from_the_pinned_identity() {
        let (peer_id, stranger) = (Identity::generate(&mut OsRng), Identity::generate(&mut OsRng));
        let card_at = |id: &Identity, ms: u64| Card::issue(id, vec![], vec![], UnixMillis(ms));
        let (old, token) = (card_at(&peer_id, 10), Token::random("send", &mut OsRng));
        let mut peer =
            Peer { needs_repair: true, ..Peer::new(old.clone(), token.clone(), Tier::Verified, UnixMillis(1)) };
        let (new, fresh) = (card_at(&peer_id, 20), Token::random("send", &mut OsRng));
        assert!(matches!(apply_reintro(&mut peer, &fields(&new, &fresh)), Ok(Reintro::Accepted)));
        assert_eq!((peer.card.body().created_at, &peer.send_token, peer.needs_repair), (UnixMillis(20), &fresh, false));
        assert!(matches!(apply_reintro(&mut peer, &fields(&new, &fresh)), Ok(Reintro::Repeat)), "a repeat");
        // The same card with another token (the card was learnt from the directory first).
        let third = Token::random("send", &mut OsRng);
        assert!(matches!(apply_reintro(&mut peer, &fields(&new, &third)), Ok(Reintro::Accepted)));
        // A replay of the older one, and another identity's card, change nothing.
        assert!(apply_reintro(&mut peer, &fields(&old, &token)).unwrap_err().contains("replay"));
        assert!(apply_reintro(&mut peer, &fields(&card_at(&stranger, 30), &token)).unwrap_err().contains("another"));
        assert_eq!((peer.card.body().created_at, &peer.send_token), (UnixMillis(20), &third));
    }
}
