//! Where posts go: sealing for a pinned peer, the one route to a peer's mailbox (closest
//! address first), and pairing posts to the lane they name.

use rand_core::OsRng;

use super::{EndpointError, Face, Result, intro_tag};
use crate::client::{Client, ClientError, RelayUrl};
use crate::home::Peer;
use crate::proto::api::{ErrorCode, Lane};
use crate::proto::envelope;
use crate::proto::event::{Event, EventId, SignedEvent};
use crate::proto::identity::Identity;
use crate::proto::pairing::Outgoing;

pub(crate) fn seal_for(me: &Identity, peer: &Peer, event: Event) -> Result<(EventId, Vec<u8>)> {
    // New kinds go only to peers that list them: an older peer could not read them.
    if !peer.card.speaks(event.kind.as_str()) {
        return Err(EndpointError::PeerLacksKind { peer: Face::of(peer.card.did()).nickname, kind: event.kind });
    }
    let id = event.id;
    let signed: SignedEvent = event.sign(me).expect("events built here are from `me`");
    Ok((id, envelope::seal(&signed, &peer.card.x25519_public(), &mut OsRng)?.0))
}

/// Appends to the peer's slot through the closest of its card's relay addresses that answers
/// (Unix socket, loopback, LAN, remote). Returns the sequence number and the address used.
pub(crate) async fn deliver(peer: &Peer, envelope: &[u8]) -> Result<(u64, String), ClientError> {
    let mut routes: Vec<(RelayUrl, &crate::proto::api::SlotId)> = Vec::new();
    for e in &peer.card.body().endpoints {
        if let Ok(url) = RelayUrl::parse(&e.relay) {
            routes.push((url, &e.slot));
        }
    }
    routes.sort_by_key(|(url, _)| url.reach()); // stable: the card's order within a class
    let mut last = ClientError::BadUrl("peer card lists no usable relay".into());
    for (url, slot) in routes {
        let via = url.to_string();
        match Client::new(url).append(slot, &peer.send_token, envelope).await {
            Ok(r) => return Ok((r.seq, via)),
            // Nobody answered there: the next address may still reach the same mailbox.
            Err(e @ ClientError::Unreachable { .. }) => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

pub(super) fn refusal(face: &Face, e: ClientError) -> EndpointError {
    match e.code() {
        Some(ErrorCode::Forbidden | ErrorCode::Unauthorized) => EndpointError::Revoked(face.nickname.clone()),
        Some(ErrorCode::QuotaExceeded) => EndpointError::MailboxFull(face.nickname.clone()),
        _ => e.into(),
    }
}

/// Posts a pairing message where it says it goes.
pub(crate) async fn post(me: &Identity, out: &Outgoing) -> Result<()> {
    let client = Client::new(RelayUrl::parse(&out.relay)?);
    match (out.lane, &out.token) {
        (Lane::Inbox, Some(token)) => client.append(&out.slot, token, &out.envelope.0).await?,
        (Lane::Intro, _) => client.intro(&out.slot, &intro_tag(me.did(), out.slot.as_str()), &out.envelope.0).await?,
        (Lane::Inbox, None) => return Err(EndpointError::Argument("internal: an inbox post without a token".into())),
    };
    Ok(())
}
