//! Where posts go. One route for every post (messages, the outbox, pairing answers, dials):
//! a target's card endpoints, closest first (Unix socket, loopback, LAN, remote; the card's
//! order within a class), moving on when an address does not answer or its relay does not
//! know the slot. Unix-socket and loopback addresses name *this* machine, so they are used
//! only for a target on this machine: tier LOCAL, or a card whose machine tag is ours. A
//! card with no machine tag at all (release 0.1) keeps 0.1's rule, every address.

use rand_core::OsRng;

use super::{EndpointError, Face, Result, intro_tag};
use crate::client::{Client, ClientError, Reach, RelayUrl};
use crate::home::{OutboxItem, Peer};
use crate::proto::api::{ErrorCode, Lane, SlotId};
use crate::proto::card::Endpoint;
use crate::proto::did::Did;
use crate::proto::envelope;
use crate::proto::event::{Event, EventId, SignedEvent};
use crate::proto::identity::Identity;
use crate::proto::pairing::{Outgoing, PairingError, Tier};
use crate::proto::prekey;
use crate::proto::secret::Token;
use crate::proto::signed::Signed;
use crate::proto::time::UnixMillis;

pub(crate) fn seal_for(me: &Identity, peer: &Peer, event: Event) -> Result<Sealed> {
    // New kinds go only to peers that list them: an older peer could not read them.
    if !peer.card.speaks(event.kind.as_str()) {
        return Err(EndpointError::PeerLacksKind { peer: Face::of(peer.card.did()).nickname, kind: event.kind });
    }
    let (id, now) = (event.id, event.created_at);
    let quiet = super::prekeys::is_key_management(event.kind, event.body.get("type").and_then(|t| t.as_str()));
    let signed: SignedEvent = event.sign(me).expect("events built here are from `me`");
    let envelope = seal_now(peer, signed.signed(), now, quiet)?;
    Ok(Sealed { id, to: peer.card.did().clone(), signed: signed.signed().clone(), envelope })
}

/// An event signed for a pinned peer, and its envelope when there is a key to seal it to
/// now (none when the peer publishes prekeys and we hold no usable one).
pub(crate) struct Sealed {
    pub(crate) id: EventId,
    to: Did,
    signed: Signed,
    envelope: Option<Vec<u8>>,
}

impl Sealed {
    /// The envelope, to post now.
    pub(crate) fn envelope(&self) -> Result<&[u8]> {
        self.envelope.as_deref().ok_or_else(|| EndpointError::PrekeysStale(Face::of(&self.to).nickname))
    }

    /// An outbox item for it. To a peer that publishes prekeys the item keeps the signed
    /// event, and every attempt to a pinned peer seals it anew to the newest prekey
    /// ([`seal_now`]); the envelope sealed now serves a recipient that is not pinned (a room
    /// member reached by the route its join request gave).
    pub(crate) fn item(self, peer: &Peer, now: UnixMillis) -> Result<OutboxItem> {
        let fresh = peer.card.speaks(prekey::FEATURE);
        let mut item = OutboxItem::to_peer(peer, self.id, self.envelope.unwrap_or_default(), now)
            .ok_or(PairingError::NoEndpoint)?;
        item.signed = fresh.then_some(self.signed);
        Ok(item)
    }
}

/// Seals `signed` for `peer` at `now`: to the newest usable prekey of a peer that publishes
/// them (never to its long-term key: `None` when it has none usable), to the long-term key
/// otherwise. The prekey messages themselves carry nothing secret and go to the long-term
/// key (`key_management`), so a peer whose prekeys we lack can still be asked for them.
pub(crate) fn seal_now(peer: &Peer, signed: &Signed, now: UnixMillis, key_management: bool) -> Result<Option<Vec<u8>>> {
    let key = if peer.card.speaks(prekey::FEATURE) && !key_management {
        match peer.prekeys.as_ref().and_then(|b| b.seal_key(now)) {
            Some(key) => key,
            None => return Ok(None),
        }
    } else {
        peer.card.x25519_public()
    };
    Ok(Some(envelope::seal_signed(signed, &key, &mut OsRng)?.0))
}

/// Whether a target is on this machine, as far as its addresses are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Here {
    /// Tier LOCAL, or the same machine tag: every address.
    Yes,
    /// Another machine tag: no Unix-socket or loopback address.
    No,
    /// A card without a tag (release 0.1): every address, as 0.1 did.
    Unknown,
}

impl Here {
    /// For a target whose card lists `machine` (and a pinned `tier`, if any).
    pub(crate) fn of(machine: Option<&str>, tier: Option<Tier>) -> Self {
        if tier == Some(Tier::Local) {
            return Here::Yes;
        }
        match machine {
            None => Here::Unknown,
            Some(m) if crate::files::machine_tag().as_deref() == Some(m) => Here::Yes,
            Some(_) => Here::No,
        }
    }
}

/// The addresses a post to `endpoints` may use, in the order to try them.
pub(crate) fn route(endpoints: &[Endpoint], here: Here) -> Vec<(RelayUrl, SlotId)> {
    let mut routes: Vec<(RelayUrl, SlotId)> = endpoints
        .iter()
        .filter_map(|e| RelayUrl::parse(&e.relay).ok().map(|url| (url, e.slot.clone())))
        .filter(|(url, _)| here != Here::No || !matches!(url.reach(), Reach::Unix | Reach::Loopback))
        .collect();
    routes.sort_by_key(|(url, _)| url.reach()); // stable: the card's order within a class
    routes
}

/// What a post does at the address it reaches.
pub(super) enum Post<'a> {
    Append(&'a Token),
    Intro(&'a [u8]),
}

/// Tries each address of the route until one takes the envelope; the sequence number (0
/// for the intro lane) and the address used.
pub(super) async fn post_along(
    endpoints: &[Endpoint],
    here: Here,
    how: Post<'_>,
    envelope: &[u8],
) -> Result<(u64, String), ClientError> {
    let mut last = ClientError::BadUrl("the card lists no address this machine may use".into());
    for (url, slot) in route(endpoints, here) {
        let via = url.to_string();
        let client = Client::new(url);
        let sent = match how {
            Post::Append(token) => client.append(&slot, token, envelope).await.map(|r| r.seq),
            Post::Intro(tag) => client.intro(&slot, tag, envelope).await.map(|_| 0),
        };
        match sent {
            Ok(seq) => return Ok((seq, via)),
            // Nobody answered there, or that relay does not know the slot (an old address
            // of a moved mailbox): the next address may still reach it.
            Err(e @ ClientError::Unreachable { .. }) => last = e,
            Err(e) if e.code() == Some(ErrorCode::NotFound) => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// Appends to a pinned peer's mailbox along the route. Returns the sequence number and the
/// address used. A card may list several mailboxes (slots), in its order; each is tried
/// with its own token, and a refusal of any kind at one moves on to the next (within one
/// mailbox only an address that does not answer, or does not know the slot, does).
pub(crate) async fn deliver(peer: &Peer, envelope: &[u8]) -> Result<(u64, String), ClientError> {
    let here = Here::of(peer.card.machine(), Some(peer.tier));
    let endpoints = &peer.card.body().endpoints;
    let mut slots: Vec<&SlotId> = Vec::new();
    for e in endpoints {
        if !slots.contains(&&e.slot) {
            slots.push(&e.slot);
        }
    }
    let mut last = None;
    for (i, slot) in slots.into_iter().enumerate() {
        let token = match i {
            0 => Some(&peer.send_token),
            _ => peer.tokens.iter().find(|t| &t.slot == slot).map(|t| &t.token),
        };
        let Some(token) = token else { continue };
        let mailbox: Vec<Endpoint> = endpoints.iter().filter(|e| &e.slot == slot).cloned().collect();
        match post_along(&mailbox, here, Post::Append(token), envelope).await {
            Ok(done) => return Ok(done),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| ClientError::BadUrl("the card lists no address this machine may use".into())))
}

/// Posts a sealed event now; `Ok(None)` when it cannot be sealed now (the peer's prekeys
/// we hold are all stale: queue it).
pub(crate) async fn deliver_sealed(peer: &Peer, sealed: &Sealed) -> Result<Option<(u64, String)>, ClientError> {
    match &sealed.envelope {
        Some(envelope) => deliver(peer, envelope).await.map(Some),
        None => Ok(None),
    }
}

/// A failed send, in words that fit a send.
pub(super) fn refusal(face: &Face, e: ClientError) -> EndpointError {
    match e.code() {
        Some(ErrorCode::Forbidden | ErrorCode::Unauthorized) => EndpointError::Revoked(face.nickname.clone()),
        Some(ErrorCode::QuotaExceeded) => EndpointError::MailboxFull(face.nickname.clone()),
        Some(ErrorCode::NotFound) => EndpointError::PeerSlotGone(face.nickname.clone()),
        _ if matches!(e, ClientError::Unreachable { .. }) => EndpointError::PeerUnreachable(face.nickname.clone(), e),
        _ => e.into(),
    }
}

/// Posts a pairing message along the route to the lane it names.
pub(crate) async fn post(me: &Identity, out: &Outgoing) -> Result<()> {
    let here = Here::of(out.machine.as_deref(), None);
    let tag;
    let how = match (out.lane, &out.token) {
        (Lane::Inbox, Some(token)) => Post::Append(token),
        (Lane::Intro, _) => {
            // The intro tag names the slot; every address of the route is the same slot.
            let slot = out.endpoints.first().map(|e| e.slot.as_str()).unwrap_or_default();
            tag = intro_tag(me.did(), slot);
            Post::Intro(&tag)
        }
        (Lane::Inbox, None) => return Err(EndpointError::Internal("an inbox post without a token")),
    };
    post_along(&out.endpoints, here, how, &out.envelope.0).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ep(relay: &str) -> Endpoint {
        Endpoint { relay: relay.into(), slot: SlotId::new("slot-aaaaaaaaaaaaaaaa".to_owned()).unwrap() }
    }

    #[test]
    fn the_route_is_closest_first_and_keeps_this_machine_to_itself() {
        let card = [
            ep("https://relay.example"),
            ep("unix:/run/wire.sock"),
            ep("http://127.0.0.1:8771"),
            ep("http://192.168.1.5:8771"),
        ];
        let all: Vec<String> = route(&card, Here::Yes).into_iter().map(|(u, _)| u.to_string()).collect();
        assert_eq!(all[0], "unix:/run/wire.sock");
        assert!(
            all[1].contains("127.0.0.1") && all[2].contains("192.168.1.5") && all[3].contains("relay.example"),
            "{all:?}"
        );
        let remote: Vec<String> = route(&card, Here::No).into_iter().map(|(u, _)| u.to_string()).collect();
        assert_eq!(remote.len(), 2, "no socket, no loopback for another machine: {remote:?}");
        assert!(remote[0].contains("192.168.1.5"));
        assert_eq!(route(&card, Here::Unknown).len(), 4, "a card without a tag keeps the 0.1 rule");
        assert_eq!(Here::of(Some("not-this-machine"), Some(Tier::Local)), Here::Yes);
        assert_eq!(Here::of(Some("not-this-machine"), Some(Tier::Verified)), Here::No);
        assert_eq!(Here::of(None, None), Here::Unknown);
    }
}
