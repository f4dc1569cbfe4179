//! Captured protocol events replayed (the relay, or anyone holding a copy, plays them
//! back): a paired peer's events count only on the inbox lane, protocol events dated before
//! the pairing are refused, and a protocol event applied once is dropped when it comes
//! again. In-process against a real relay, with one manual clock (crate::clock::World).

use std::time::Duration;

use rand_core::OsRng;
use wire_core::client::{Client, RelayUrl};
use wire_core::endpoint::Endpoint;
use wire_core::home::{Account, Peers};
use wire_core::proto::envelope;
use wire_core::proto::event::{Event, Kind};

use crate::clock::World;

fn pair(w: &World, a: &Endpoint, b: &Endpoint) {
    let url = w.rt.block_on(a.invite(1, Duration::from_secs(600))).unwrap().url;
    w.rt.block_on(b.accept_invite(&url)).unwrap();
    w.rt.block_on(a.pull()).unwrap();
    w.rt.block_on(b.pull()).unwrap();
    // Each side's first pull after pinning tells the other its lineage: take those too.
    w.rt.block_on(a.pull()).unwrap();
    w.rt.block_on(b.pull()).unwrap();
}

fn pinned(ep: &Endpoint) -> usize {
    ep.peers().unwrap().len()
}

/// The envelopes waiting on `ep`'s slot, as the relay holds them.
fn waiting(w: &World, ep: &Endpoint) -> Vec<(wire_core::proto::api::Lane, Vec<u8>)> {
    let account = ep.home.load::<Account>().unwrap().unwrap();
    let client = Client::new(RelayUrl::parse(&account.relay).unwrap());
    let page = w.rt.block_on(client.list(&account.slot, &account.owner_token, Some(account.cursor), 100)).unwrap();
    page.events.into_iter().map(|e| (e.lane, e.envelope)).collect()
}

fn last_rejection(ep: &Endpoint) -> String {
    ep.home.rejected().unwrap().last().map(|r| r.reason.clone()).unwrap_or_default()
}

#[test]
fn a_captured_close_replayed_after_a_new_pairing_changes_nothing() {
    let w = World::new("replay-close");
    let (a, b) = (w.agent("a"), w.agent("b"));
    pair(&w, &a, &b);
    // B unpairs; the `close` is captured before A takes it.
    w.rt.block_on(b.forget(&a.identity.did().to_string())).unwrap();
    let captured = waiting(&w, &a);
    assert_eq!(captured.len(), 1);
    let close = captured[0].1.clone();
    w.rt.block_on(a.pull()).unwrap();
    assert_eq!(pinned(&a), 0, "the real close unpins");

    // Later they pair again.
    w.clock.advance(Duration::from_secs(600));
    pair(&w, &a, &b);
    assert_eq!(pinned(&a), 1);
    let account = a.home.load::<Account>().unwrap().unwrap();
    let client = Client::new(RelayUrl::parse(&account.relay).unwrap());

    // Replayed on the intro lane (no token needed there): refused for its lane.
    w.rt.block_on(client.intro(&account.slot, &[7u8; 16], &close)).unwrap();
    let pulled = w.rt.block_on(a.pull()).unwrap();
    assert_eq!((pulled.rejected, pinned(&a)), (1, 1), "{pulled:?}");
    assert!(last_rejection(&a).contains("intro lane"), "{}", last_rejection(&a));

    // Injected on the inbox lane (as a relay could): refused for its date.
    w.rt.block_on(client.append(&account.slot, &account.owner_token, &close)).unwrap();
    let pulled = w.rt.block_on(a.pull()).unwrap();
    assert_eq!((pulled.rejected, pinned(&a)), (1, 1), "{pulled:?}");
    assert!(last_rejection(&a).contains("before this pairing"), "{}", last_rejection(&a));
}

#[test]
fn a_protocol_event_applied_once_is_dropped_when_it_comes_again() {
    let w = World::new("replay-seen");
    let (a, b) = (w.agent("a"), w.agent("b"));
    pair(&w, &a, &b);
    // A card update from B, sealed and posted with B's token, as B's own wire would.
    let peers = b.home.load::<Peers>().unwrap().unwrap();
    let to_a = &peers.peers[0];
    let card = b.home.load::<Account>().unwrap().unwrap().card;
    let body = serde_json::to_value(card.signed()).unwrap();
    let event = Event::new(&b.identity, a.identity.did().clone(), Kind::CardUpdate, body, b.home.now(), &mut OsRng);
    let sealed = envelope::seal(&event.sign(&b.identity).unwrap(), &to_a.card.x25519_public(), &mut OsRng).unwrap().0;
    let endpoint = &to_a.card.body().endpoints[0];
    let client = Client::new(RelayUrl::parse(&endpoint.relay).unwrap());
    w.rt.block_on(client.append(&endpoint.slot, &to_a.send_token, &sealed)).unwrap();
    let first = w.rt.block_on(a.pull()).unwrap();
    assert_eq!((first.duplicates, first.rejected), (0, 0), "{first:?}");

    // The same envelope again (acked and deleted, so the relay stores it anew): dropped as
    // a repeat by its id, not applied and not refused.
    w.rt.block_on(client.append(&endpoint.slot, &to_a.send_token, &sealed)).unwrap();
    let again = w.rt.block_on(a.pull()).unwrap();
    assert_eq!((again.duplicates, again.rejected), (1, 0), "{again:?}");
    assert_eq!(pinned(&a), 1);
}
